"""ROSE-CD distillation: the loss by hand, the randomized trajectory, the auxiliary losses, the script."""
import copy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import data
import distill
import evaluate
import teacher
from distill import draw, mrstft_loss, rosecd_loss, si_sdr_loss
from enhance import enhance_wav
from model import Denoiser, save_checkpoint
from sde import SDE, time_grid

ROOT = Path(__file__).resolve().parents[1]
N = 30


def toy_D(x, y, t):
    """A transparent stand-in for a network: D = 0.3 x + 0.5 y + 0.1 t."""
    return 0.3 * x + 0.5 * y + 0.1 * t.reshape(-1, 1, 1, 1)


def toy_input(seed=0, B=3):
    g = torch.Generator().manual_seed(seed)
    noise = lambda: torch.complex(*(torch.randn(B, 1, 8, 4, generator=g, dtype=torch.float64) for _ in range(2)))
    x = noise()
    return x, x + 0.3 * noise()


def cfg(trajectory):
    return SimpleNamespace(num_scales=N, trajectory=trajectory, sisdr_weight=0.0, mrstft_weight=0.0, pesq_weight=0.0)


@pytest.mark.parametrize("trajectory", ["deterministic", "randomized"])
def test_consistency_loss_equals_one_heun_step_by_hand(trajectory):
    sde = SDE()
    x, y = toy_input()
    loss, parts, _ = rosecd_loss(toy_D, toy_D, toy_D, sde, x, y, None, cfg(trajectory), torch.Generator().manual_seed(5))

    # by hand, with the same draws
    n, z, z_prime = draw(x.shape[0], N, x, torch.Generator().manual_seed(5))
    grid = np.linspace(1.0, 0.03, N)
    total = 0.0
    for b in range(x.shape[0]):
        t, t1 = float(grid[n[b]]), float(grid[n[b] + 1])
        sig = lambda s: np.sqrt(0.05 ** 2 * ((10 ** (2 * s)) - np.exp(-2 * 1.5 * s)) * np.log(10) / (1.5 + np.log(10)))
        g = lambda s: 0.05 * 10 ** s * np.sqrt(2 * np.log(10))
        a = np.exp(-1.5 * t)
        xb, yb = x[b, 0].numpy(), y[b, 0].numpy()
        x_t = a * xb + (1 - a) * yb + sig(t) * z[b, 0].numpy()
        D = lambda v, s: 0.3 * v + 0.5 * yb + 0.1 * s
        f = lambda v, s: 1.5 * (yb - v) - 0.5 * g(s) ** 2 * (D(v, s) - v) / sig(s) ** 2  # PF-ODE drift
        dt = -1.0 / N  # the official heun_solver's step, not the grid spacing t1 - t
        d1 = f(x_t, t)
        d2 = f(x_t + d1 * dt, t + dt)
        x_next = x_t + 0.5 * (d1 + d2) * dt
        if trajectory == "randomized":
            x_next = x_next + g(t) * np.sqrt(-dt) * z_prime[b, 0].numpy()
        total += np.sum(np.abs(D(x_t, t) - D(x_next, t1)) ** 2)
    expected = total / x.numel()
    assert loss.item() == pytest.approx(expected, rel=1e-5)  # the code's grid is float32
    assert parts["consistency"].item() == pytest.approx(expected, rel=1e-5)


def test_randomized_and_deterministic_targets_differ_only_by_the_injected_noise():
    sde = SDE()
    g = torch.Generator().manual_seed(0)
    B = 16
    x = torch.complex(torch.randn(B, 1, 64, 64, generator=g), torch.randn(B, 1, 64, 64, generator=g)).to(torch.complex128)
    y = x * 0.8
    _, _, det = rosecd_loss(toy_D, toy_D, toy_D, sde, x, y, None, cfg("deterministic"), torch.Generator().manual_seed(9))
    _, _, ran = rosecd_loss(toy_D, toy_D, toy_D, sde, x, y, None, cfg("randomized"), torch.Generator().manual_seed(9))
    assert torch.equal(det["x_tn"], ran["x_tn"]) and torch.equal(det["x_mean"], ran["x_mean"])
    assert torch.equal(det["x_next"], det["x_mean"])
    injected = ran["x_next"] - det["x_next"]
    expected_std = sde.g(ran["t_n"]) * (ran["t_n"] - ran["t_next"]).abs().sqrt()  # g(t_n) sqrt(|dt|)
    empirical_std = injected.abs().pow(2).mean(dim=(1, 2, 3)).sqrt()  # complex: E|z'|^2 = 1
    torch.testing.assert_close(empirical_std.float(), expected_std.float(), rtol=0.03, atol=0)
    assert injected.real.mean().abs() < 0.01 * expected_std.mean()


def test_si_sdr_loss_is_minus_si_sdr_and_scale_invariant():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 8000))
    est = ref + 0.5 * rng.standard_normal((4, 8000))
    expected = -np.mean([evaluate.si_sdr(r, e) for r, e in zip(ref, est)])
    loss = si_sdr_loss(torch.from_numpy(est), torch.from_numpy(ref)).item()
    assert loss == pytest.approx(expected, abs=1e-6)
    assert si_sdr_loss(torch.from_numpy(3.7 * est), torch.from_numpy(ref)).item() == pytest.approx(loss, abs=1e-6)


def test_mrstft_loss_is_zero_for_identical_signals_and_positive_otherwise():
    ref = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    assert mrstft_loss(ref, ref).item() == pytest.approx(0.0, abs=1e-6)
    assert mrstft_loss(ref + 0.1 * torch.randn(2, 16000), ref).item() > 0.05
    assert mrstft_loss(0.5 * ref, ref).item() > 0.05  # unlike SI-SDR, it sees the level


def test_time_grid_is_the_published_one():
    ts = time_grid(SDE(), N)
    assert ts[0].item() == 1.0 and ts[-1].item() == pytest.approx(0.03) and len(ts) == 30


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A tiny teacher trained for a few hundred CPU steps on the bundled speech."""
    out = tmp_path_factory.mktemp("teacher")
    teacher.train(teacher.Config(preset="tiny", steps=200, batch_size=4, grad_accum=1, num_frames=64,
                                 valid_files=0, lr=1e-3, out=str(out)))
    return out / "checkpoint.pt"


FAST = dict(batch_size=4, grad_accum=1, num_frames=64, valid_files=0, log_every=1)


def test_student_and_target_start_from_the_teacher_ema(tiny_teacher, tmp_path):
    distill.distill(distill.Config(teacher=str(tiny_teacher), steps=1, lr=0.0, out=str(tmp_path), **FAST))
    t, s = teacher.load_checkpoint(tiny_teacher), teacher.load_checkpoint(tmp_path / "checkpoint.pt")
    assert s["kind"] == "student" and s["model"] == {**t["model"], "c_in": "one"}
    for name, w in t["ema"].items():
        assert torch.equal(s["raw"][name], w) and torch.equal(s["ema"][name], w)


def test_student_init_starts_a_narrower_student_from_its_own_weights(tiny_teacher, tmp_path):
    """--student-init: the student takes that checkpoint's width and EMA weights (with the student's c_in); the
    teacher's ODE step still comes from --teacher, and the export is a student of the narrower width."""
    t = teacher.load_checkpoint(tiny_teacher)
    narrow = {**t["model"], "nf": 8}
    init = Denoiser(**narrow, sde=SDE())
    save_checkpoint(tmp_path / "init.pt", kind="teacher", model=narrow, sde=t["sde"], ema=init.state_dict())
    distill.distill(distill.Config(teacher=str(tiny_teacher), student_init=str(tmp_path / "init.pt"), steps=1, lr=0.0,
                                   out=str(tmp_path / "run"), **FAST))
    s = teacher.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert s["model"] == {**narrow, "c_in": "one"} != {**t["model"], "c_in": "one"}
    for name, w in init.state_dict().items():
        assert torch.equal(s["raw"][name], w) and torch.equal(s["ema"][name], w)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    result = run_distill("--teacher", str(tiny_teacher), "--student-init", str(tmp_path / "junk.pt"),
                         "--out", str(tmp_path / "bad"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a readable checkpoint" in lines[0], result.stderr
    assert not (tmp_path / "bad" / "log.jsonl").exists()


def test_a_run_on_a_cpu_keeps_freed_memory(tiny_teacher, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(distill, "keep_freed_memory", lambda: calls.append(1))
    distill.distill(distill.Config(teacher=str(tiny_teacher), steps=1, out=str(tmp_path), **FAST))
    assert calls == [1]


def test_resume_continues_bit_identically(tiny_teacher, tmp_path):
    common = dict(FAST, teacher=str(tiny_teacher), deterministic=True)
    distill.distill(distill.Config(steps=4, out=str(tmp_path / "a"), **common))
    distill.distill(distill.Config(steps=2, out=str(tmp_path / "b"), **common))
    distill.distill(distill.Config(steps=4, out=str(tmp_path / "b"), resume=True, **common))
    a, b = teacher.load_checkpoint(tmp_path / "a" / "checkpoint.pt"), teacher.load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert all(torch.equal(a["raw"][k], b["raw"][k]) for k in a["raw"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


def test_channels_last_gives_the_same_loss_and_gradients(tiny_teacher):
    """--channels-last (issue 22) changes the memory layout of student, target and teacher, not the mathematics:
    one update's loss and gradients, on the same crops and draws, agree to float32 rounding (the convolutions
    sum in another order)."""
    g = torch.Generator().manual_seed(1)
    clean = 0.1 * torch.randn(4, data.crop_samples(64), generator=g)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=g)

    def one_update(channels_last):
        frozen, sde = distill.load_teacher(tiny_teacher, "cpu")
        config = distill.Config(teacher=str(tiny_teacher), channels_last=channels_last, **FAST)
        student, loss_fn = distill.student_and_loss(config, frozen, sde, torch.device("cpu"))
        target = copy.deepcopy(student)
        if channels_last:  # as teacher.fit does
            teacher.to_channels_last(student, target, torch.optim.Adam(student.parameters()))
        assert frozen.net.conv_in.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert student.net.conv_in.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        loss, _ = loss_fn(student, target, clean, noisy, torch.Generator().manual_seed(0))
        loss.backward()
        return loss.detach(), {name: p.grad for name, p in student.named_parameters()}

    loss_a, grads_a = one_update(False)
    loss_b, grads_b = one_update(True)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=0)
    largest = max(gr.abs().max() for gr in grads_a.values())
    assert largest > 0
    for name, gr in grads_a.items():
        # 1e-4 of the largest gradient: measured differences reach 4.3e-5 of it; bf16 arithmetic would be ~1e-2
        torch.testing.assert_close(grads_b[name], gr, rtol=1e-3, atol=1e-4 * largest, msg=name)


def test_one_batch_of_2b_is_the_update_of_b_with_two_accumulation_steps(tiny_teacher, monkeypatch):
    """README's recipe may run the published 14 x 2 as one batch of 28 (issue 22): on the same crops and draws
    the loss of one batch of 4 is the mean of two micro-batches of 2, and so are the gradients that
    teacher.fit accumulates as (loss / grad_accum).backward(). Every term (consistency, SI-SDR, MR-STFT) is a
    mean over the batch of per-crop values, and group norm normalises each crop alone."""
    g = torch.Generator().manual_seed(2)
    clean = 0.1 * torch.randn(4, data.crop_samples(64), generator=g)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=g)
    frozen, sde = distill.load_teacher(tiny_teacher, "cpu")
    config = distill.Config(teacher=str(tiny_teacher), **FAST)
    assert config.sisdr_weight > 0 and config.mrstft_weight > 0  # the auxiliary losses take part
    like = data.wav_to_spec(clean)
    n = torch.randint(0, N - 1, (4,), generator=g)
    z, z_prime = (torch.randn(like.shape, dtype=like.dtype, generator=g) for _ in range(2))
    halves = iter([slice(0, 2), slice(2, 4)])

    def fixed_draw(batch, N, like, generator):  # each crop gets the same draws in the whole batch and its half
        rows = slice(0, 4) if batch == 4 else next(halves)
        return n[rows], z[rows], z_prime[rows]
    monkeypatch.setattr(distill, "draw", fixed_draw)

    student, loss_fn = distill.student_and_loss(config, frozen, sde, torch.device("cpu"))
    target = copy.deepcopy(student)
    whole, _ = loss_fn(student, target, clean, noisy, None)
    whole.backward()
    grads_whole = {name: p.grad.clone() for name, p in student.named_parameters()}
    student.zero_grad()
    losses = []
    for rows in (slice(0, 2), slice(2, 4)):  # as teacher.fit accumulates two micro-batches
        loss, _ = loss_fn(student, target, clean[rows], noisy[rows], None)
        (loss / 2).backward()
        losses.append(loss.detach())
    torch.testing.assert_close(whole.detach(), (losses[0] + losses[1]) / 2, rtol=1e-5, atol=0)
    assert abs(losses[0] - losses[1]) > 1e-3 * abs(whole)  # the halves differ: the mean is a real check
    largest = max(gr.abs().max() for gr in grads_whole.values())
    for name, p in student.named_parameters():
        torch.testing.assert_close(p.grad, grads_whole[name], rtol=1e-3, atol=1e-5 * largest, msg=name)


def test_a_run_switches_to_channels_last_on_resume_with_its_adam_moments(tiny_teacher, tmp_path):
    common = dict(FAST, teacher=str(tiny_teacher))
    distill.distill(distill.Config(steps=2, out=str(tmp_path), **common))
    before = teacher.load_checkpoint(tmp_path / "checkpoint.pt")
    distill.distill(distill.Config(steps=3, out=str(tmp_path), channels_last=True, **common))
    after = teacher.load_checkpoint(tmp_path / "checkpoint.pt")
    conv = "net.conv_in.weight"
    nhwc = torch.channels_last
    assert before["raw"][conv].is_contiguous() and not before["raw"][conv].is_contiguous(memory_format=nhwc)
    assert after["step"] == 3 and after["raw"][conv].is_contiguous(memory_format=nhwc)
    moments = [v for s in after["optimizer"]["state"].values() for k, v in s.items() if k == "exp_avg" and v.dim() == 4]
    assert moments and all(v.is_contiguous(memory_format=nhwc) for v in moments)
    assert not torch.equal(after["raw"][conv], before["raw"][conv])  # the resumed update changed the weights


def test_channels_last_converts_the_teacher_of_the_step(tiny_teacher):
    frozen, sde = distill.load_teacher(tiny_teacher, "cpu")
    for layout, expected in ((False, torch.contiguous_format), (True, torch.channels_last)):
        config = distill.Config(teacher=str(tiny_teacher), channels_last=layout, **FAST)
        distill.student_and_loss(config, frozen, sde, torch.device("cpu"))
        assert frozen.net.conv_in.weight.is_contiguous(memory_format=expected)


def test_cuda_graphs_compile_the_frozen_teacher_for_replay_too(tiny_teacher, monkeypatch):
    """The teacher's two calls of each step go through the same reduce-overhead compile as student and target
    (teacher.fit compiles those two: tests/test_teacher.py)."""
    asked = []
    monkeypatch.setattr(distill, "optimise", lambda D, device, compiled=False, compile_mode=None:
                        asked.append((D, compiled, compile_mode)))
    frozen, sde = distill.load_teacher(tiny_teacher, "cpu")
    for graphs, mode in ((True, "reduce-overhead"), (False, None)):
        config = distill.Config(teacher=str(tiny_teacher), compile=True, cuda_graphs=graphs, **FAST)
        distill.student_and_loss(config, frozen, sde, torch.device("cpu"))
        assert asked.pop() == (frozen, True, mode)


def test_validation_runs_the_teacher_once_and_a_resumed_run_reads_its_scores(tiny_teacher, tmp_path, monkeypatch):
    frozen, sde = distill.load_teacher(tiny_teacher, "cpu")
    sets = data.validation_sets("", "", 2)  # two of the bundled p287 pairs
    config = distill.Config(teacher=str(tiny_teacher), out=str(tmp_path), valid_steps=2, **FAST)
    steps, real = [], distill.validate
    monkeypatch.setattr(distill, "validate",
                        lambda D, sde, pairs, n, seed=0: steps.append(n) or real(D, sde, pairs, n, seed))
    student = copy.deepcopy(frozen)
    first, _ = distill.validator(frozen, sde, sets, config)(student)
    assert steps == [2, 1] and (tmp_path / "valid_reference.json").is_file()  # the teacher's 2-step PC, the student
    steps.clear()
    again, _ = distill.validator(frozen, sde, sets, config)(student)  # a resumed run builds a new validator
    read_back = lambda metrics: {k: v for k, v in metrics.items() if not k.startswith("student")}
    assert steps == [1] and read_back(again) == read_back(first) and again == pytest.approx(first)
    with torch.no_grad():
        frozen.net.conv_final.bias.add_(0.01)  # another teacher: its scores are computed anew
    steps.clear()
    other, _ = distill.validator(frozen, sde, sets, config)(student)
    assert steps == [2, 1] and other["teacher_pesq"] != first["teacher_pesq"]


def test_distilled_student_beats_the_noisy_input(tiny_teacher, tmp_path):
    # A sanity check, not a quality claim: held-out speech in held-out real noise at -10 to -5 dB.
    # A teacher of 200 CPU steps is no better than its input, so the test leans on the auxiliary
    # SI-SDR loss (weight 5e-4, 10x the published) and a fast EMA (0.9) for the target of 100 steps.
    target, _ = distill.distill(distill.Config(teacher=str(tiny_teacher), steps=100, lr=1e-3, sisdr_weight=5e-4,
                                               ema_decay=0.9, out=str(tmp_path), **FAST))
    pairs = distill.data.mixture_pairs(limit=4)
    noisy = np.mean([evaluate.si_sdr(c, y) for _, c, y in pairs])
    enhanced = np.mean([evaluate.si_sdr(c, enhance_wav(target, teacher.SDE(), y, 1)[0]) for _, c, y in pairs])
    assert enhanced > noisy, (noisy, enhanced)  # +0.66 dB on an H100 run of the same recipe (notes/gpu-runs.md)


def run_distill(*args):
    return subprocess.run([sys.executable, "distill.py", "--steps", "1", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_bad_teacher_checkpoints_give_one_error_line(tiny_teacher, tmp_path):
    distill.distill(distill.Config(teacher=str(tiny_teacher), steps=1, out=str(tmp_path / "s"), **FAST))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    cases = {str(tmp_path / "missing.pt"): "no such checkpoint", str(tmp_path / "junk.pt"): "not a readable checkpoint",
             str(tmp_path / "s" / "checkpoint.pt"): "needs one written by teacher.py"}
    for path, message in cases.items():
        result = run_distill("--teacher", path, "--out", str(tmp_path / "run"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


def test_pesq_weight_without_the_package_is_a_clear_error(tiny_teacher, tmp_path):
    try:  # torch-pesq is optional; where it is installed the option must simply work
        import torch_pesq  # noqa: F401
        pytest.skip("torch-pesq is installed here")
    except ImportError:
        pass
    result = run_distill("--teacher", str(tiny_teacher), "--pesq-weight", "5e-4", "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "pip install torch-pesq" in result.stderr


def test_distill_checks_first_what_it_needs_later(tiny_teacher, tmp_path, monkeypatch):
    """Issue 23: a missing package of validation, or an --out that holds a teacher, fails before the audio is loaded."""
    monkeypatch.setitem(sys.modules, "pystoi", None)  # hidden: importing it raises ImportError
    with pytest.raises(SystemExit, match="needs the optional package pystoi, which is not installed"):
        distill.main(["--teacher", str(tiny_teacher), "--valid-files", "1", "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="is a teacher checkpoint, not a student one: choose another --out"):
        distill.main(["--teacher", str(tiny_teacher), "--valid-files", "0", "--out", str(tiny_teacher.parent)])
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_an_unknown_trajectory_is_refused_by_the_teacher_step():
    sde = SDE()
    x, y = toy_input()
    with pytest.raises(ValueError, match="randomized or deterministic"):
        rosecd_loss(toy_D, toy_D, toy_D, sde, x, y, None, cfg("randomised"), torch.Generator().manual_seed(0))


def probe_rows(state, teacher_path, *args):
    """The table rows that results/manyvoices/scripts/consistency_probe.py (RESULTS 7.11) prints for one state."""
    result = subprocess.run([sys.executable, "results/manyvoices/scripts/consistency_probe.py", str(teacher_path),
                             str(state), "--speech", "demo/speech_train", "--noise", "demo/noise", "--batch", "2",
                             "--chunk", "2", *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [[c.strip() for c in line.strip("|").split("|")] for line in result.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| state |")]


def test_consistency_probe_splits_off_the_noise_floor(tiny_teacher, tmp_path):
    """A state whose raw and EMA weights are the same: no raw-EMA gap, the logged loss is the export's own, and only
    the randomized trajectory's target has a floor (its variance over the fresh noise z'), which is positive."""
    t = teacher.load_checkpoint(tiny_teacher)
    state = tmp_path / "state.pt"
    torch.save({"kind": "student", "model": {**t["model"], "c_in": "one"}, "sde": t["sde"], "raw": t["ema"],
                "ema": t["ema"], "step": 7}, state)
    (row,) = probe_rows(state, tiny_teacher, "--draws", "3")
    name, step, train, export, gap, clean, floor = row
    assert (name, step, float(gap)) == ("state.pt", "7", 0.0) and train == export
    assert float(floor) > 0 and float(clean) > 0
    (row,) = probe_rows(state, tiny_teacher, "--draws", "3", "--trajectory", "deterministic")
    assert len(row) == 6 and float(row[4]) == 0.0
