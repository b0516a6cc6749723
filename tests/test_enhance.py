"""enhance.py: one call per chunk (or group of chunks), seamless overlap-add, bounded memory, seeds,
the network's precision, and a command line that survives every bad input with one clear error line and
never leaves a partial file. The fast paths enhance.py takes from fast.py (channels-last, torch.compile,
CUDA graphs) are tested in tests/test_fast.py.

The tiny NCSN++ costs about a second of CPU per 4-s chunk, so the tests that need many chunks
(call counting, memory) swap its U-Net for Wide, a cheap stand-in of the same interface; all
else, the Denoiser's preconditioning included, is the real code."""
import contextlib
import dataclasses
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import enhance  # noqa: E402
from data import DataError, load_audio  # noqa: E402
from model import Denoiser, load_model, save_checkpoint  # noqa: E402
from sde import SDE  # noqa: E402

NOISY = sorted((ROOT / "demo" / "vbdmd" / "noisy").glob("*.wav"))
CHUNK = 511 * 128  # samples in a chunk of 512 frames
HOP = CHUNK - 64 * 128  # between chunk starts: 64 frames of overlap


def tiny(c_in, seed=0):
    """A tiny Denoiser whose zero-initialised layers are filled with noise, so that every path,
    the noise z included, reaches the output."""
    torch.manual_seed(seed)
    d = Denoiser("tiny", c_in=c_in)
    with torch.no_grad():
        for p in d.parameters():
            if p.dim() > 1 and p.abs().max() == 0:
                p.normal_(0, 0.05)
    return d.eval()


class Wide(torch.nn.Module):
    """Stand-in for the U-Net F(x, t): two 1x1 convolutions through 96 channels. Per 512-frame
    chunk its activations take ~100 MB (the tiny NCSN++ ~150 MB), at 1/20 of the compute."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(4, 96, 1), torch.nn.Conv2d(96, 2, 1)

    def forward(self, x, t):
        return self.b(torch.nn.functional.silu(self.a(x)))


def write_checkpoint(path, kind, d, **changes):
    state = dict(kind=kind, config={}, model=d.config(), sde=dataclasses.asdict(SDE()), ema=d.state_dict(), step=0)
    save_checkpoint(path, **{**state, **changes})
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    base = tmp_path_factory.mktemp("ckpt")
    return {"student": write_checkpoint(base / "student.pt", "student", tiny("one")),
            "teacher": write_checkpoint(base / "teacher.pt", "teacher", tiny("edm"))}


def demo_speech(seconds):
    """Real noisy speech (the bundled VoiceBank-DEMAND files, concatenated), 16 kHz."""
    wav = np.concatenate([load_audio(p) for p in NOISY])
    return np.resize(wav, int(seconds * 16000)).astype(np.float32)


# ----------------------------------------------------------------------------- the chunked pipeline

def test_one_step_calls_the_network_once_per_chunk():
    D = tiny("one")
    D.net = Wide()
    calls = []
    D.register_forward_hook(lambda *_: calls.append(1))
    # shorter than one chunk (2 s): one chunk. 65,408 + 57,216 + 1,000 samples: chunks start at
    # 0 and 57,216, and a third one, moved back to end with the file
    for n, chunks in ((32000, 1), (CHUNK + HOP + 1000, 3)):
        calls.clear()
        out, reported = enhance.enhance_wav(D, D.sde, demo_speech(n / 16000), steps=1, chunk_frames=512)
        assert reported == len(calls) == chunks, (n, reported, len(calls))
        assert out.shape == (n,) and np.isfinite(out).all()


@pytest.mark.parametrize("sampler", ["pc", "ode"])
def test_a_teachers_samplers_call_the_network_at_their_grid_times(sampler):
    # pc: corrector and predictor at each of the N grid points (2N calls); ode: Heun from each point to the
    # next (2 calls per step, N - 1 steps), then the mean estimate at t_eps of the ODE's last state (1 call)
    D, N, times = tiny("edm"), 4, []
    D.register_forward_hook(lambda module, args, out: times.append(round(args[2][0].item(), 6)))
    gen = torch.Generator().manual_seed(0)
    out, calls = enhance.enhance_wav(D, D.sde, demo_speech(1.0), steps=N, generator=gen, sampler=sampler)
    grid = [round(t, 6) for t in torch.linspace(D.sde.T, D.sde.t_eps, N).tolist()]
    if sampler == "pc":
        expected = [t for t in grid for _ in (0, 1)]
    else:
        expected = [t for a, b in zip(grid, grid[1:]) for t in (a, b)] + [grid[-1]]
    assert calls == len(times) == len(expected) and times == expected
    assert out.shape == (16000,) and np.isfinite(out).all()
    # the ODE is deterministic after its prior draw x_T: the same seed gives the same output, another seed another
    again, _ = enhance.enhance_wav(D, D.sde, demo_speech(1.0), steps=N, generator=torch.Generator().manual_seed(0),
                                   sampler=sampler)
    other, _ = enhance.enhance_wav(D, D.sde, demo_speech(1.0), steps=N, generator=torch.Generator().manual_seed(1),
                                   sampler=sampler)
    assert np.array_equal(out, again) and not np.allclose(out, other)


class Identity(torch.nn.Module):
    """D(x_t, y, t) = y: the enhanced waveform is the noisy one, up to the STFT round trip."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))  # enhance_wav reads the device off a parameter
        self.calls = 0

    def forward(self, x_t, y, t):
        self.calls += 1
        return y


@pytest.mark.parametrize("seconds", [12.3, 4.0])
def test_chunked_overlap_add_is_seamless(seconds):
    noisy = demo_speech(seconds)
    noisy[5000] = 0.9  # a loud click: the peak normalisation must be undone exactly too
    D = Identity()
    out, calls = enhance.enhance_wav(D, SDE(), noisy, steps=1, chunk_frames=512)
    err = np.abs(out - noisy).max() / np.abs(noisy).max()
    assert err < 1e-5, err  # 3e-7 here; a fade misplaced by one sample gives 1e-4
    # 12.3 s = 196,800 samples: starts 0, 57,216, 114,432, and 131,392 (moved back); 4 s: one chunk
    assert calls == D.calls == (4 if seconds > 5 else 1)


def test_a_batch_is_normalised_row_by_row_and_enhanced_in_one_call():
    noisy = np.stack([demo_speech(2.0), 0.01 * demo_speech(2.0)[::-1]])  # two files, peaks 100x apart
    D = Identity()
    out, calls = enhance.enhance_batch(D, SDE(), noisy, steps=1)
    assert out.shape == noisy.shape and calls == D.calls == 1
    for row, ref in zip(out, noisy):
        assert np.abs(row - ref).max() / np.abs(ref).max() < 1e-5


def test_bf16_changes_the_arithmetic_but_stays_close_to_fp32():
    D = tiny("one")
    noisy = demo_speech(1.0)[None]
    out = {}
    for mode in ("fp32", "tf32", "bf16"):
        with enhance.precision(mode, "cpu"):
            out[mode], _ = enhance.enhance_batch(D, D.sde, noisy, 1, torch.Generator().manual_seed(0))
    assert np.array_equal(out["fp32"], out["tf32"])  # a CPU has no TF32
    err = np.linalg.norm(out["bf16"] - out["fp32"]) / np.linalg.norm(out["fp32"])
    assert 0 < err < 0.05, err
    with pytest.raises(DataError, match="choose one of"):
        with enhance.precision("fp8", "cpu"):
            pass
    with pytest.raises(DataError, match="fp16 is for GPUs"):  # a CPU would emulate it, many times slower
        with enhance.precision("fp16", "cpu"):
            pass


def test_batched_chunks_give_the_one_by_one_output():
    """The real tiny U-Net (so z reaches the output), 4 chunks of 128 frames: in groups of 3 (a full
    and a partial group) and all at once, the noise z of each chunk is the one it gets alone."""
    D, noisy = tiny("one"), demo_speech(3.0)
    out, calls = {}, {}
    for batch in (1, 3, 8):
        out[batch], calls[batch] = enhance.enhance_wav(D, D.sde, noisy, 1, torch.Generator().manual_seed(5),
                                                       chunk_frames=128, overlap_frames=32, batch=batch)
    assert calls == {1: 4, 3: 2, 8: 1}
    for batch in (3, 8):
        err = np.abs(out[batch] - out[1]).max() / np.abs(out[1]).max()
        assert err < 1e-5, (batch, err)  # 1e-7 here; z drawn for the whole batch at once: 1.0
    other, _ = enhance.enhance_wav(D, D.sde, noisy, 1, torch.Generator().manual_seed(6), chunk_frames=128,
                                   overlap_frames=32, batch=3)
    assert np.abs(other - out[3]).max() > 1e-3 * np.abs(out[3]).max()  # the seed matters: z is in the output


def test_a_float16_overflow_is_enhanced_again_in_float32(tmp_path, monkeypatch):
    """fp16 needs a GPU; here precision() is faked so that the network's output overflows in "fp16" only."""
    modes = []

    @contextlib.contextmanager
    def fake_precision(mode, device):
        modes.append(mode)
        yield

    class Overflowing(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            out = self.net(x, t)
            return out * float("inf") if modes[-1] == "fp16" else out

    monkeypatch.setattr(enhance, "precision", fake_precision)
    D = tiny("one")
    src = tmp_path / "a.wav"
    sf.write(src, demo_speech(0.5), 16000)
    enhance.enhance_file(D, D.sde, src, tmp_path / "ref.wav", mode="fp32")
    D.net = Overflowing(D.net)
    _, calls, warnings = enhance.enhance_file(D, D.sde, src, tmp_path / "out.wav", mode="fp16")
    assert modes == ["fp32", "fp16", "fp32"] and calls == 1
    assert len(warnings) == 1 and "overflowed; enhanced again in float32" in warnings[0]
    assert np.array_equal(sf.read(tmp_path / "out.wav")[0], sf.read(tmp_path / "ref.wav")[0])  # the same seed


def test_chunk_layout_covers_the_file_with_full_chunks():
    for n in (CHUNK, CHUNK + 1, CHUNK + HOP, CHUNK + HOP + 1, 10 * CHUNK + 17):
        starts = enhance.chunk_starts(n, CHUNK, 64 * 128)
        assert starts[0] == 0 and starts[-1] + CHUNK == n
        assert all(0 < b - a <= HOP for a, b in zip(starts, starts[1:]))
        total = np.zeros(n)
        for i, s in enumerate(starts):
            total[s:s + CHUNK] += enhance.chunk_weight(starts, i, CHUNK, 64 * 128).numpy()
        assert np.abs(total - 1).max() < 1e-6, n


def test_a_file_shorter_than_a_chunk_is_enhanced_as_one_utterance():
    """Teacher validation calls enhance_wav on whole utterances: the chunked path must agree."""
    D, noisy = tiny("edm"), demo_speech(0.5)
    whole, c1 = enhance.enhance_wav(D, D.sde, noisy, 2, torch.Generator().manual_seed(3))
    chunked, c2 = enhance.enhance_wav(D, D.sde, noisy, 2, torch.Generator().manual_seed(3), chunk_frames=512)
    assert c1 == c2 == 4 and np.array_equal(whole, chunked)


# ----------------------------------------------------------------------------- files, seeds, memory

def test_seed_makes_the_output_bit_identical(tmp_path):
    """Samples are compared: a float WAV also holds libsndfile's PEAK chunk, which carries the
    time of writing, so two files written in different seconds differ in that one field."""
    D, src = tiny("one"), tmp_path / "in.wav"
    sf.write(src, demo_speech(0.5), 16000)
    outs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        enhance.enhance_file(D, D.sde, src, tmp_path / name / "in.wav", seed=seed)
        outs[name] = sf.read(tmp_path / name / "in.wav", dtype="float32")[0]
    assert np.array_equal(outs["a"], outs["b"])
    assert np.abs(outs["a"] - outs["c"]).max() > 1e-3


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    D, src = tiny("one"), tmp_path / "in.wav"
    sf.write(src, demo_speech(0.5), 16000)

    def broken_write(path, *args, **kwargs):
        Path(path).write_bytes(b"RIFF half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(enhance.sf, "write", broken_write)
    with pytest.raises(DataError, match="cannot write"):
        enhance.enhance_file(D, D.sde, src, tmp_path / "out" / "in.wav")
    assert list((tmp_path / "out").iterdir()) == []


MEMORY_CHILD = r"""
import re, sys, torch
from pathlib import Path
sys.path.insert(0, "tests")
import enhance, model
from test_enhance import Wide
def kb(field):
    return int(re.search(field + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1))
D, sde, kind = model.load_model(sys.argv[1], torch.device("cpu"))
D.net = Wide()
open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark VmHWM to the current RSS
base = kb("VmRSS")
seconds, calls, _ = enhance.enhance_file(D, sde, Path(sys.argv[2]), Path(sys.argv[3]))
print(base, kb("VmHWM"), calls)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_long_file_keeps_its_length_and_rate_and_memory_stays_bounded(tmp_path, ckpts):
    """Peak resident memory of the enhancement itself for 60 s within 1.5 x that for 10 s, each
    measured in a fresh process: the peak resident set (VmHWM) while enhancing, less the resident
    set after importing torch and loading the model (~300 MB), the high-water mark being reset
    there. The increments are compared, not the totals: the fixed ~300 MB would hide a 1.5 x
    growth of the part that matters. (Not ru_maxrss: Linux carries it over from the parent at
    fork + exec, so under pytest it reports the pytest process's size.) Both files span several
    full chunks and reach the network's per-chunk peak; what grows with length is only the
    waveforms, about 10 MB per copy at 60 s. Enhanced whole, the 60-s increment is ~4 x the 10-s one."""
    rate, peaks = 22050, {}
    rng = np.random.default_rng(0)
    for seconds in (10, 60):
        src = tmp_path / f"in{seconds}.wav"
        speech = np.resize(demo_speech(10), seconds * 16000)
        noisy = enhance.resample(speech, 16000, rate)[:seconds * rate] + 0.01 * rng.standard_normal(seconds * rate)
        sf.write(src, noisy.astype(np.float32), rate, subtype="PCM_16")
        dst = tmp_path / "out" / src.name
        result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ckpts["student"]), str(src), str(dst)],
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        base, peak, calls = map(int, result.stdout.split())
        peaks[seconds] = peak - base  # kB
        info = sf.info(str(dst))
        assert info.samplerate == rate and info.frames == seconds * rate and info.channels == 1
        assert calls == {10: 3, 60: 17}[seconds]  # 1 + ceil((n - 65,408) / 57,216) chunks of 16 kHz samples
    assert peaks[10] > 50_000, peaks  # the chunk's network activations are really in the measurement
    assert peaks[60] < 1.5 * peaks[10], peaks


# ----------------------------------------------------------------------------- loading and planning

@pytest.mark.parametrize("case,message", [
    ("foreign", "not a checkpoint of this project"),
    ("vocoder", "expected a ROSE-CD student or its teacher"),
    ("mismatch", "do not fit the model"),
    ("no_sde", "do not fit the model"),
])
def test_a_foreign_checkpoint_is_refused_clearly(tmp_path, case, message):
    path = tmp_path / "c.pt"
    if case == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif case == "vocoder":
        write_checkpoint(path, "vocoder", tiny("one"))
    elif case == "mismatch":  # tiny weights under a small model
        write_checkpoint(path, "student", tiny("one"), model={"preset": "small", "c_in": "one", "sigma_data": 0.1})
    else:
        write_checkpoint(path, "student", tiny("one"), sde={"gamma": 1.5, "colour": "blue"})
    with pytest.raises(DataError, match=message):
        load_model(path, torch.device("cpu"))


def test_outputs_never_land_on_inputs(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a.wav", "sub/b.flac", "sub/notes.txt"):
        (tmp_path / "in" / name).touch()
    jobs, errors = enhance.plan_jobs([str(tmp_path / "in")], tmp_path / "out")
    assert [(s.name, d.relative_to(tmp_path).as_posix()) for s, d in jobs] == [
        ("a.wav", "out/a.wav"), ("b.flac", "out/sub/b.flac")] and errors == []
    for out in ("in", "in/sub", "in/new/deeper"):
        with pytest.raises(DataError, match="inside it"):
            enhance.plan_jobs([str(tmp_path / "in")], tmp_path / out)
    with pytest.raises(DataError, match="would overwrite the input"):
        enhance.plan_jobs([str(tmp_path / "in" / "a.wav")], tmp_path / "in")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.wav").touch()
    with pytest.raises(DataError, match="both would be written"):
        enhance.plan_jobs([str(tmp_path / "in" / "a.wav"), str(tmp_path / "other" / "a.wav")], tmp_path / "out")


def test_precision_auto_on_a_cpu_and_bf16_reaches_the_files(tmp_path, ckpts, capsys, monkeypatch):
    """auto on a CPU: fp32, except bf16 for a student where the CPU has bfloat16 instructions; a teacher stays
    fp32 there."""
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", demo_speech(0.5), 16000)
    outs = {}
    for has_bf16, mode, expected in ((False, "auto", "fp32"), (False, "fp32", "fp32"), (False, "bf16", "bf16"),
                                     (True, "auto", "bf16"), (True, "fp32", "fp32")):
        monkeypatch.setattr(enhance, "cpu_has_bf16", lambda: has_bf16)
        out = tmp_path / f"{mode}-{has_bf16}"
        assert enhance.enhance_files([str(tmp_path / "in")], out, ckpts["student"], device="cpu", mode=mode) == 0
        outs[mode, has_bf16] = sf.read(out / "a.wav", dtype="float32")[0]
        assert f"on cpu in {expected}" in capsys.readouterr().out
    assert np.array_equal(outs["auto", False], outs["fp32", False])
    assert np.array_equal(outs["auto", True], outs["bf16", False])
    err = np.linalg.norm(outs["bf16", False] - outs["fp32", False]) / np.linalg.norm(outs["fp32", False])
    assert 0 < err < 0.05, err
    assert enhance.enhance_files([str(tmp_path / "in")], tmp_path / "t", ckpts["teacher"], device="cpu", steps=2) == 0
    assert "on cpu in fp32" in capsys.readouterr().out
    with pytest.raises(DataError, match="CUDA graphs need a GPU"):
        enhance.enhance_files([str(tmp_path / "in")], tmp_path / "g", ckpts["student"], device="cpu", cuda_graph=True)
    with pytest.raises(DataError, match="--batch 0: must be at least 1"):
        enhance.enhance_files([str(tmp_path / "in")], tmp_path / "b", ckpts["student"], device="cpu", batch=0)


def test_devices():
    assert enhance.pick_device("cpu") == torch.device("cpu")
    for name in ("tpu", "cuda:99", "nonsense:x"):
        with pytest.raises(DataError, match="--device"):
            enhance.pick_device(name)


def test_a_missing_default_checkpoint_says_how_to_get_one(tmp_path, monkeypatch):
    sf.write(tmp_path / "a.wav", demo_speech(0.5), 16000)
    missing = tmp_path / "checkpoints" / "rosecd-medium.pt"
    monkeypatch.setattr(enhance, "DEFAULT_CHECKPOINT", missing)
    with pytest.raises(SystemExit) as e:
        enhance.main([str(tmp_path / "a.wav"), "-o", str(tmp_path / "out")])
    assert e.value.code == f"error: {missing}: no such checkpoint; train one with distill.py or pass --checkpoint"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the command line

def make_inputs(d):
    """The inputs of every command-line case, each case in its own folder d/<case>/in."""
    def folder(case):
        (d / case / "in").mkdir(parents=True)
        return d / case / "in"

    folder("missing")
    sf.write(folder("empty") / "a.wav", np.zeros(0, np.float32), 16000)
    (folder("not_audio") / "a.wav").write_text("this is text, not a wave file")
    nan = demo_speech(0.5)
    nan[100] = np.nan
    sf.write(folder("nan") / "a.wav", nan, 16000, subtype="FLOAT")
    for case in ("checkpoint_corrupt", "student_steps", "student_sampler", "ode_one_step", "out_inside", "exists",
                 "overwrite", "several"):
        sf.write(folder(case) / "a.wav", demo_speech(0.5), 16000)
    odd = folder("odd")
    sf.write(odd / "zeros.wav", np.zeros(16000, np.float32), 16000)
    sf.write(odd / "stereo_8k.wav", np.stack([demo_speech(1.5)[::2], demo_speech(1.5)[1::2]], axis=1), 8000)
    sf.write(odd / "short.flac", demo_speech(0.1), 16000)
    (d / "several" / "in" / "sub").mkdir()
    sf.write(d / "several" / "in" / "sub" / "b.wav", demo_speech(0.7), 16000)
    (d / "several" / "in" / "sub" / "c.wav").write_bytes(b"")  # a 0-byte file
    (d / "several" / "empty_dir").mkdir()
    for case in ("exists", "overwrite"):
        (d / case / "out").mkdir()
        (d / case / "out" / "a.wav").write_bytes(b"an earlier output")
    (d / "corrupt.pt").write_bytes(b"\x80\x02 not a pickle at all")


def cli_cases(d, ckpts):
    """name -> (arguments, expected exit status, expected text of the one error line)."""
    s, t = ["--checkpoint", str(ckpts["student"])], ["--checkpoint", str(ckpts["teacher"])]

    def io(case):
        return [str(d / case / "in" / "a.wav"), "-o", str(d / case / "out")]

    return {
        "missing": ([*io("missing"), *s], 1, "no such file"),
        "empty": ([*io("empty"), *s], 1, "the file holds no samples"),
        "not_audio": ([*io("not_audio"), *s], 1, "not a readable audio file"),
        "nan": ([*io("nan"), *s], 1, "NaN"),
        "checkpoint_corrupt": ([*io("checkpoint_corrupt"), "--checkpoint", str(d / "corrupt.pt")], 1,
                               "not a readable checkpoint"),
        "student_steps": ([*io("student_steps"), *s, "--steps", "30"], 1, "a ROSE-CD student enhances in one step"),
        "student_sampler": ([*io("student_sampler"), *s, "--sampler", "ode"], 1, "without a sampler"),
        "ode_one_step": ([*io("ode_one_step"), *t, "--sampler", "ode", "--steps", "1"], 1, "at least 2 grid points"),
        "out_inside": ([str(d / "out_inside" / "in"), "-o", str(d / "out_inside" / "in" / "enhanced"), *s], 1,
                       "inside it"),
        "exists": ([*io("exists"), *s], 1, "exists; pass --overwrite"),
        # the teacher, 2 predictor-corrector steps: 4 network calls
        "overwrite": ([*io("overwrite"), *t, "--steps", "2", "--overwrite"], 0, None),
        "odd": ([str(d / "odd" / "in"), "-o", str(d / "odd" / "out"), *s], 0, None),
        "several": ([str(d / "several" / "in"), str(d / "several" / "empty_dir"), "-o", str(d / "several" / "out"),
                     *s], 1, None),
    }


@pytest.fixture(scope="module")
def cli(tmp_path_factory, ckpts):
    """Every command-line case, run as `python enhance.py ...`, two at a time."""
    d = tmp_path_factory.mktemp("cli")
    make_inputs(d)
    cases = cli_cases(d, ckpts)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(args):
        return subprocess.run([sys.executable, "enhance.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env=env)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(cases, pool.map(run, [c[0] for c in cases.values()])))
    return d, cases, results


def error_lines(stderr):
    return [line for line in re.split(r"[\r\n]+", stderr) if line.startswith("error:")]


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("case", ["missing", "empty", "not_audio", "nan", "checkpoint_corrupt", "student_steps",
                                  "student_sampler", "ode_one_step", "out_inside", "exists"])
def test_a_bad_input_gives_one_error_line_and_writes_nothing(cli, case):
    d, cases, results = cli
    r, (_, status, message) = results[case], cases[case]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == status, r.stderr[-3000:]
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and message in errors[0], r.stderr[-3000:]
    assert files_under(d / case / "in") == ([] if case == "missing" else ["a.wav"])  # the inputs as they were
    if case == "exists":  # not overwritten without --overwrite
        assert (d / case / "out" / "a.wav").read_bytes() == b"an earlier output"
        assert files_under(d / case / "out") == ["a.wav"]
    else:
        assert files_under(d / case / "out") == []


def test_overwrite_replaces_an_existing_output_and_reports_rtf(cli):
    d, _, results = cli
    r = results["overwrite"]
    assert r.returncode == 0 and "Traceback" not in r.stderr and not error_lines(r.stderr), r.stderr[-3000:]
    assert files_under(d / "overwrite" / "out") == ["a.wav"]  # no temporary file left beside it
    out, rate = sf.read(str(d / "overwrite" / "out" / "a.wav"))
    assert rate == 16000 and len(out) == 8000 and np.abs(out).max() > 0
    # the summary line: duration, time, RTF and network calls (2 steps x 2 calls)
    assert re.search(r"1 file\(s\), 0\.5 s of audio in [0-9.]+ s: RTF [0-9.]+ .*, 4 network calls", r.stdout), r.stdout


def test_silence_8khz_stereo_and_a_short_clip_are_enhanced(cli):
    d, _, results = cli
    r = results["odd"]
    assert r.returncode == 0 and "Traceback" not in r.stderr and not error_lines(r.stderr), r.stderr[-3000:]
    assert files_under(d / "odd" / "out") == ["short.flac", "stereo_8k.wav", "zeros.wav"]
    for name in ("short.flac", "stereo_8k.wav", "zeros.wav"):
        noisy, noisy_rate = sf.read(str(d / "odd" / "in" / name))
        out, rate = sf.read(str(d / "odd" / "out" / name))
        assert rate == noisy_rate and out.ndim == 1 and len(out) == len(noisy), name  # mono, same rate and length
        assert np.isfinite(out).all() and (np.abs(out).max() > 0) == (name != "zeros.wav"), name
    warnings = [line for line in re.split(r"[\r\n]+", r.stderr) if line.startswith("warning:")]
    assert len(warnings) == 1 and "zeros.wav: all samples are zero; wrote silence" in warnings[0], r.stderr
    assert "2 network calls" in r.stdout  # one per clip, none for the silence


def test_several_inputs_enhance_the_good_files_and_report_the_bad(cli):
    d, _, results = cli
    r = results["several"]
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 2, r.stderr
    assert any("c.wav" in e and "not a readable audio file" in e for e in errors), errors
    assert any("empty_dir" in e and "no audio files" in e for e in errors), errors
    assert "2 of 4 input(s) failed" in r.stderr
    assert files_under(d / "several" / "out") == ["a.wav", "sub/b.wav"]  # mirrors the input folder
    assert "2 file(s), 1.2 s of audio" in r.stdout


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        enhance.main(["--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    for option in ("--checkpoint", "--steps", "--seed", "--device", "--overwrite", "--out-rate", "--precision",
                   "--batch", "--compile", "--cuda-graph"):
        assert option in text
    assert text.count("default") >= 6 and "checkpoints/rosecd-medium.pt" in text and "512 STFT" in text
