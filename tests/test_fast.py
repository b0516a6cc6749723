"""fast.py: the fast inference paths (channels-last, torch.compile, CUDA-graph dispatch with the capture faked on
the CPU) give the eager output."""
import numpy as np
import pytest
import soundfile as sf
import torch

import enhance
import fast
from data import wav_to_spec
from model import GroupNorm
from test_enhance import Wide, demo_speech, tiny, write_checkpoint


def test_channels_last_network_gives_the_contiguous_output():
    D = tiny("one")
    y = wav_to_spec(torch.from_numpy(demo_speech(1.0)))[None, ..., :64]
    x_T, t = D.sde.prior_sample(y, torch.Generator().manual_seed(0)), torch.ones(1)
    with torch.no_grad():
        ref = D(x_T, y, t)
        fast.optimise(D, "cpu")  # channels-last: the same arithmetic in another memory layout
        assert D.net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        layouts = []
        D.net.conv_in.register_forward_pre_hook(
            lambda m, inp: layouts.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
        out = D(x_T, y, t)
    assert layouts == [True]  # the input follows the weights into NHWC
    err = ((out - ref).abs().max() / ref.abs().max()).item()
    assert err < 1e-5, err


def test_optimise_for_a_gpu_keeps_nchw_and_compiles_with_per_channel_moments(monkeypatch):
    """What optimise changes for a GPU, checked on a CPU model (nothing here runs on a GPU)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    D = tiny("one")
    fast.optimise(D, "cuda", compiled=True)
    assert torch.backends.cudnn.benchmark  # cuDNN times its algorithms once per shape
    assert D.net.conv_in.weight.is_contiguous()  # NCHW on a GPU
    norms = [m for m in D.net.modules() if isinstance(m, GroupNorm)]
    assert norms and all(m.per_channel_moments for m in norms)
    cpu = tiny("one")
    fast.optimise(cpu, "cpu", compiled=True)
    assert not any(m.per_channel_moments for m in cpu.net.modules() if isinstance(m, GroupNorm))
    modes = []
    cpu.net.compile = lambda **kwargs: modes.append(kwargs)  # the request only: test_compiled_network_... compiles
    fast.optimise(cpu, "cpu", compiled=True, compile_mode="reduce-overhead")  # teacher.py --cuda-graphs
    assert modes == [{"mode": "reduce-overhead"}]


def test_enhance_turns_cudnn_autotuning_off(tmp_path, monkeypatch):
    """enhance.py's inputs change shape with every file length: timing cuDNN's algorithms for each new shape cost
    more than it saved (RESULTS.md 5), so it asks optimise for no autotuning, which turns cudnn.benchmark off even
    where an earlier call turned it on."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    fast.optimise(tiny("one"), "cuda", autotune=False)
    assert not torch.backends.cudnn.benchmark
    fast.optimise(tiny("one"), "cuda")  # training and speed.py: one shape repeats, autotuned
    assert torch.backends.cudnn.benchmark
    calls = []
    monkeypatch.setattr(enhance, "optimise", lambda D, *args, **kwargs: calls.append(kwargs) or D)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", demo_speech(0.5), 16000)
    student = write_checkpoint(tmp_path / "student.pt", "student", tiny("one"))
    assert enhance.enhance_files([str(tmp_path / "in")], tmp_path / "out", student, device="cpu") == 0
    assert calls == [{"autotune": False}]


class FakeGraph:
    """CPU stand-in for a captured CUDA graph: replay() recomputes fn() into the recorded output, as
    the recorded kernels rewrite the recorded output buffer on a GPU."""

    def __init__(self, fn, out):
        self.fn, self.out, self.replays = fn, out, 0

    def replay(self):
        self.replays += 1
        self.out.copy_(self.fn())


def test_graphed_net_replays_its_shape_and_runs_other_shapes_eagerly(monkeypatch):
    captured = []

    def capture(fn):
        captured.append(FakeGraph(fn, fn()))
        return captured[-1], captured[-1].out

    monkeypatch.setattr(fast, "capture_graph", capture)
    net, eager = tiny("one").net, tiny("one").net  # the same weights; the second is never graphed
    graphed = fast.GraphedNet(net, (1, 4, 256, 64))
    rng = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, 4, 256, frames, generator=rng) for frames in (64, 64, 128)]
    t = torch.ones(1)
    with torch.no_grad():
        outs = [graphed(x, t) for x in xs]  # two calls of the captured shape (64 frames), one of 128 frames
        refs = [eager(x, t) for x in xs]
    assert len(captured) == 1 and captured[0].replays == 2  # captured once, replayed for 64 frames only
    for out, ref in zip(outs, refs):  # the first output is a copy: the second replay did not overwrite it
        assert out.shape == ref.shape and torch.allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_compiled_network_gives_the_eager_output():
    """torch.compile (inductor, here on the CPU) of the cheap stand-in: ~16 s with a cold compile cache, 5 s warm."""
    D, noisy = tiny("one"), demo_speech(3.0)
    D.net = Wide()
    kwargs = dict(steps=1, chunk_frames=128, overlap_frames=32, batch=2)
    ref, _ = enhance.enhance_wav(D, D.sde, noisy, generator=torch.Generator().manual_seed(0), **kwargs)
    fast.optimise(D, "cpu", compiled=True)
    out, calls = enhance.enhance_wav(D, D.sde, noisy, generator=torch.Generator().manual_seed(0), **kwargs)
    assert calls == 2 and np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()


def test_on_a_cpu_freed_memory_is_reused_without_page_faults():
    """keep_freed_memory (optimise on a CPU): after a warm-up, a chain of new 64 MB outputs, as a network's layers
    make them, reuses the memory the previous chain freed instead of mapping fresh pages (without it, glibc maps
    each such block and unmaps it when it is freed: about 147,000 page faults here)."""
    resource = pytest.importorskip("resource")  # POSIX only
    if not fast.keep_freed_memory():
        pytest.skip("the C library is not glibc")
    x = torch.ones(16 * 2 ** 20)  # 64 MB of float32, above the largest block glibc serves from its heap by default

    def layers():
        return float(torch.sigmoid(x * 2 + 1)[0])

    for _ in range(3):  # the heap grows to the chain's peak once
        layers()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        layers()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 1000, faults


def test_cpu_has_bf16_reads_the_flags_of_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    for flags, expected in (("fpu sse2 avx2 avx512f avx512bw", False), ("avx2 avx512f avx512_bf16", True),
                            ("avx2 amx_bf16 amx_tile", True), ("avx2 avx512_bf16x", False)):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert fast.cpu_has_bf16(info) is expected, flags
    assert fast.cpu_has_bf16(tmp_path / "missing") is False
