"""speed.py: the fast inference paths (channels-last, torch.compile, CUDA-graph dispatch with the capture
faked on the CPU) give the eager output, and the benchmarks time what they say (teacher against student
through the whole pipeline; the student's network call alone, with its FLOP rate)."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import enhance
import speed
from data import wav_to_spec
from model import Denoiser, GroupNorm, save_checkpoint
from sde import SDE
from test_enhance import Wide, demo_speech, tiny


def run_main(*args):
    """speed.main() in this process; returns the error message it exits with, or None."""
    try:
        speed.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return None


# ----------------------------------------------------------------------------- fast inference

def test_channels_last_network_gives_the_contiguous_output():
    D = tiny("one")
    y = wav_to_spec(torch.from_numpy(demo_speech(1.0)))[None, ..., :64]
    x_T, t = D.sde.prior_sample(y, torch.Generator().manual_seed(0)), torch.ones(1)
    with torch.no_grad():
        ref = D(x_T, y, t)
        speed.optimise(D, "cpu")  # channels-last: the same arithmetic in another memory layout
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
    speed.optimise(D, "cuda", compiled=True)
    assert torch.backends.cudnn.benchmark  # cuDNN times its algorithms once per shape
    assert D.net.conv_in.weight.is_contiguous()  # NCHW on a GPU
    norms = [m for m in D.net.modules() if isinstance(m, GroupNorm)]
    assert norms and all(m.per_channel_moments for m in norms)
    cpu = tiny("one")
    speed.optimise(cpu, "cpu", compiled=True)
    assert not any(m.per_channel_moments for m in cpu.net.modules() if isinstance(m, GroupNorm))


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

    monkeypatch.setattr(speed, "capture_graph", capture)
    net, eager = tiny("one").net, tiny("one").net  # the same weights; the second is never graphed
    graphed = speed.GraphedNet(net, (1, 4, 256, 64))
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
    speed.optimise(D, "cpu", compiled=True)
    out, calls = enhance.enhance_wav(D, D.sde, noisy, generator=torch.Generator().manual_seed(0), **kwargs)
    assert calls == 2 and np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()


# ----------------------------------------------------------------------------- benchmarks

def test_benchmark_speedup_is_close_to_the_ratio_of_network_calls(tmp_path, capsys):
    (r,) = speed.main(["--preset", "tiny", "--device", "cpu", "--steps", "30", "--repeats", "5", "--seconds", "0.5",
                       "--threads", "1", "--out", str(tmp_path)])
    assert r["teacher"]["calls"] == 60 and r["student"]["calls"] == 1 and r["call_ratio"] == 60
    assert 45 <= r["speedup"] <= 75, r
    for m in (r["teacher"], r["student"]):
        assert len(m["times_s"]) == 5 and m["time_s"] == np.median(m["times_s"])
        assert m["rtf"] == pytest.approx(m["time_s"] / 0.5)
        assert m["gflop_per_call"] > 0.5  # tiny on 256 x 64 bins: ~1.5 GFLOP
        assert m["gflop_per_audio_second"] == pytest.approx(m["gflop_per_call"] * m["calls"] / 0.5)
    assert r["teacher"]["gflop_per_call"] == r["student"]["gflop_per_call"]
    out = capsys.readouterr().out
    assert "speedup" in out and "teacher" in out and "student" in out and "RTF" in out
    assert json.loads((tmp_path / "benchmark.json").read_text())[0]["speedup"] == r["speedup"]


def test_benchmark_loads_checkpoints_and_refuses_foreign_files(tmp_path):
    D = Denoiser("tiny", "one")
    save_checkpoint(tmp_path / "student.pt", kind="student", model=D.config(), sde=dataclasses.asdict(SDE()),
                    ema=D.state_dict())
    r = speed.benchmark("small", checkpoint_student=str(tmp_path / "student.pt"), device="cpu", steps=1, repeats=1,
                        seconds=0.1, threads=1)
    assert r["student"]["model"].startswith("tiny student") and r["teacher"]["model"] == "small, random weights"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    message = run_main("--checkpoint-teacher", tmp_path / "junk.pt", "--device", "cpu")
    assert message.startswith("error:") and "not a readable checkpoint" in message


def test_calls_only_benchmark_times_the_network_and_reports_flop_rates(tmp_path, capsys, monkeypatch):
    asked = []

    def optimise(D, device, compiled=False, graph_shape=None):  # records the request; compiling is tested above
        asked.append((compiled, graph_shape))
        return D

    monkeypatch.setattr(speed, "optimise", optimise)
    results = speed.main(["--calls-only", "--preset", "tiny", "--device", "cpu", "--batch", "1", "2",
                          "--precision", "fp32", "bf16", "--frames", "64", "--repeats", "3", "--warmup", "1",
                          "--peak-tflops", "0.5", "--threads", "1", "--compile", "--out", str(tmp_path)])
    assert [(r["batch"], r["precision"]) for r in results] == [(1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]
    assert asked == [(True, None)] * 4
    one = speed.flops_per_call(Denoiser("tiny", "one"), 63 * 128) / 1e9  # 64 frames = 63 x 128 samples
    for r in results:
        assert r["kind"] == "calls" and r["compiled"] and not r["cuda_graph"] and len(r["times_s"]) == 3
        median = np.median(r["times_s"])
        assert r["ms_per_call"] == pytest.approx(1e3 * median)
        assert r["rtf"] == pytest.approx(median / (r["batch"] * 63 * 128 / 16000))
        assert r["gflop_per_call"] == pytest.approx(r["batch"] * one)  # FLOPs grow with the batch, not the precision
        assert r["tflop_per_s"] == pytest.approx(r["gflop_per_call"] / median / 1e3)
        assert r["percent_of_peak"] == pytest.approx(100 * r["tflop_per_s"] / 0.5)
        if r["precision"] == "fp32":  # the same arithmetic as the reference call
            assert r["rel_error_vs_fp32"] < 1e-5
        else:  # bf16 rounds; the zero-initialised output layers were filled, so the error is not the skip's 0
            assert 1e-4 < r["rel_error_vs_fp32"] < 5e-2, r["rel_error_vs_fp32"]
    out = capsys.readouterr().out
    assert out.count("| device | model | batch |") == 1 and out.count("| cpu | tiny, random weights |") == 4
    assert "| compiled |" in out and "% of 0.5 |" in out
    assert json.loads((tmp_path / "benchmark.json").read_text()) == json.loads(json.dumps(results))


def test_calls_only_benchmark_refuses_what_it_cannot_time():
    assert "--frames 100: must be a positive multiple of 64" in run_main(
        "--calls-only", "--preset", "tiny", "--device", "cpu", "--frames", "100")
    assert "CUDA graphs need a GPU" in run_main("--calls-only", "--preset", "tiny", "--device", "cpu", "--cuda-graph")


def test_an_earlier_benchmark_json_is_kept_unless_overwrite(tmp_path):
    (tmp_path / "benchmark.json").write_text("[]\n")
    message = run_main("--calls-only", "--preset", "tiny", "--device", "cpu", "--out", tmp_path)
    assert "benchmark.json exists: pass --overwrite" in message
    assert (tmp_path / "benchmark.json").read_text() == "[]\n"  # refused before any work


def test_benchmark_on_a_missing_gpu_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "no CUDA device" in run_main("--preset", "tiny", "--device", "cuda")


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        speed.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--preset", "--checkpoint-teacher", "--checkpoint-student", "--device", "--steps", "--repeats",
                   "--warmup", "--seconds", "--input", "--threads", "--seed", "--batch", "--precision", "--compile",
                   "--cuda-graph", "--calls-only", "--frames", "--peak-tflops", "--out", "--overwrite"):
        assert option in text
    assert "(default: 30)" in text and "(default: reference)" in text
