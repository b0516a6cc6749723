"""Teacher training: the loss falls, a resume continues exactly, DDP ranks agree, bad data fails clearly, a run
checks first what it needs later, and a stopped run writes its checkpoint and continues from it (issue 23)."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import teacher
from teacher import Config, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(preset="tiny", batch_size=2, grad_accum=1, num_frames=64, valid_files=0, log_every=1,
            save_every=1000)
SPEECH = str(ROOT / "demo" / "speech_test")  # 12 utterances: loaded in a second (the default's 100: ten)
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")  # the environment of the commands that tests start


def read_log(out):
    return [json.loads(line) for line in open(Path(out) / "log.jsonl")]


@pytest.fixture
def one_thread():
    """One thread, in here as in the commands run with ONE_THREAD: the same sums in the same order (and no
    threads that wait for each other on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_teacher_loss_falls_in_200_cpu_steps(tmp_path):
    train(Config(**FAST, steps=200, out=str(tmp_path)))
    losses = [e["loss"] for e in read_log(tmp_path) if e["event"] == "train"]
    assert len(losses) == 200
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.8 * first, (first, last)


def test_log_lines_carry_the_peak_gpu_memory_on_a_gpu_only(monkeypatch):
    assert teacher.peak_memory(torch.device("cpu")) == {}
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 3 * 2 ** 30 if device.index == 1 else 0)
    assert teacher.peak_memory(torch.device("cuda:1")) == {"peak_memory_gib": 3.0}


def test_resume_continues_bit_identically(tmp_path):
    common = dict(FAST, grad_accum=2, deterministic=True)  # with gradient accumulation too
    train(Config(**common, steps=6, out=str(tmp_path / "straight")))
    train(Config(**common, steps=3, out=str(tmp_path / "resumed")))
    train(Config(**common, steps=6, out=str(tmp_path / "resumed")))  # its checkpoint is continued by default
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for key in ("raw", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    # and the run really trained: the weights moved from their initial values
    init = teacher.Denoiser("tiny").state_dict()
    assert any(not torch.equal(init[k], a["raw"][k]) for k in init)


def test_checkpoint_holds_everything_to_resume_and_loads_weights_only(tmp_path):
    train(Config(**FAST, steps=2, out=str(tmp_path)))
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {"kind", "config", "model", "sde", "ema", "raw", "optimizer", "step", "rng"} <= ckpt.keys()
    assert ckpt["kind"] == "teacher" and ckpt["model"] == {**teacher.PRESETS["tiny"], "c_in": "edm", "sigma_data": 0.1}
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(teacher.DataError, match="comes from another run"):  # never overwrite a run by accident
        train(Config(**FAST, steps=2, seed=1, out=str(tmp_path)))


def start_and_wait_for_an_update(command, out, stderr, env=None):
    """The command started, once its log shows an update; stderr: an open file (a pipe could fill up)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    log, start = Path(out) / "log.jsonl", time.time()
    while not (log.exists() and '"event": "train"' in log.read_text()):
        if process.poll() is not None or time.time() > start + 300:
            process.kill()
            raise AssertionError("no update within 300 s, or the run ended before its first update")
        time.sleep(0.02)
    return process


def test_torchrun_two_processes_stop_at_one_update_and_the_same_command_continues(tmp_path):
    """SIGTERM to torchrun (Ctrl-C and schedulers reach it so; it passes the signal on to both processes):
    both stop at the same update, rank 0 writes the checkpoint, and the same command goes on from there."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "teacher.py",
           "--preset", "tiny", "--steps", "8", "--batch-size", "1", "--grad-accum", "2", "--num-frames", "64",
           "--valid-files", "0", "--log-every", "1", "--device", "cpu", "--speech", SPEECH, "--out", str(out)]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = start_and_wait_for_an_update(cmd, out, stderr, ONE_THREAD)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=300) != 0
    assert "stopped by SIGTERM" in (tmp_path / "stderr.txt").read_text()
    log = read_log(out)
    assert log[0]["world_size"] == 2 and log[-1]["event"] == "end" and log[-1]["stopped_by"] == "SIGTERM"
    stopped = log[-1]["step"]
    hashes = log[-1]["rank_weight_hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert 1 <= stopped < 8 and load_checkpoint(out / "checkpoint.pt")["step"] == stopped

    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {out / 'checkpoint.pt'} at update {stopped} of 8" in result.stdout
    log = read_log(out)
    hashes = log[-1]["rank_weight_hashes"]
    assert log[-1]["step"] == 8 and "stopped_by" not in log[-1] and len(hashes) == 2 and hashes[0] == hashes[1]
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 8


def test_sigterm_writes_a_checkpoint_and_the_same_command_continues_bit_identically(tmp_path, one_thread):
    out = tmp_path / "stopped"
    options = dict(FAST, speech=SPEECH, deterministic=True, device="cpu", steps=10)
    command = [sys.executable, "teacher.py", "--preset", "tiny", "--batch-size", "2", "--grad-accum", "1",
               "--num-frames", "64", "--valid-files", "0", "--log-every", "1", "--device", "cpu", "--deterministic",
               "--speech", SPEECH, "--steps", "10", "--out", str(out)]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = start_and_wait_for_an_update(command, out, stderr, ONE_THREAD)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)  # a repeated signal (torchrun passes one on) changes nothing
        assert process.wait(timeout=300) == 128 + signal.SIGTERM
    stopped = load_checkpoint(out / "checkpoint.pt")["step"]
    assert 1 <= stopped < 10
    last = (tmp_path / "stderr.txt").read_text().strip().splitlines()[-1]
    assert last == (f"stopped by SIGTERM after update {stopped} of 10: {out / 'checkpoint.pt'} holds it, "
                    "and the same command continues from there")
    end = read_log(out)[-1]
    assert end["event"] == "end" and end["step"] == stopped and end["stopped_by"] == "SIGTERM"

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0] == f"resuming {out / 'checkpoint.pt'} at update {stopped} of 10"
    train(Config(**options, out=str(tmp_path / "straight")))
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["step"] == b["step"] == 10
    for key in ("raw", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


KILLED_WHILE_WRITING = """
import io, os, signal, sys, torch, teacher
save = torch.save
def killed_half_way(state, f):  # half the file written and on the disk, then the process is gone
    whole = io.BytesIO()
    save(state, whole)
    f.write(whole.getvalue()[:len(whole.getvalue()) // 2])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = killed_half_way
teacher.main(sys.argv[1:])
"""


def test_a_process_killed_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, one_thread):
    options = dict(FAST, speech=SPEECH, out=str(tmp_path), save_every=1)
    train(Config(**options, steps=2))
    command = [sys.executable, "-c", KILLED_WHILE_WRITING, "--preset", "tiny", "--batch-size", "2", "--grad-accum", "1",
               "--num-frames", "64", "--valid-files", "0", "--log-every", "1", "--save-every", "1", "--speech", SPEECH,
               "--steps", "3", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert result.stdout.startswith(f"resuming {tmp_path / 'checkpoint.pt'} at update 2 of 3")
    assert (tmp_path / "checkpoint.pt.tmp").exists() and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    train(Config(**options, steps=3))  # continues the previous checkpoint
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3 and not (tmp_path / "checkpoint.pt.tmp").exists()
    assert [e["step"] for e in read_log(tmp_path) if e["event"] == "start"] == [0, 2, 2]


def test_a_missing_validation_package_is_one_error_line_before_any_update(tmp_path):
    """Issue 23: without pesq a run used to die at its first validation, minutes in."""
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / "pesq.py").write_text("raise ModuleNotFoundError(\"No module named 'pesq'\", name='pesq')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path / "hidden"),
                                                                    os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "teacher.py", "--preset", "tiny", "--valid-files", "2",
                             "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "error: validation (--valid-files 2; 0: none) needs the optional package pesq, which is not installed or "
        "incomplete (No module named 'pesq'): pip install pesq"]
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_a_checkpoint_in_out_is_continued_by_the_same_run_and_refused_to_another(tmp_path, capsys, one_thread):
    out, path = str(tmp_path / "run"), tmp_path / "run" / "checkpoint.pt"
    train(Config(**FAST, speech=SPEECH, steps=1, out=out))
    capsys.readouterr()
    same = Config(**dict(FAST, valid_files=2), speech=SPEECH, steps=5, lr=3e-4, device="cpu", out=out)  # may change
    assert teacher.preflight(same, "teacher") is True
    assert capsys.readouterr().out == f"resuming {path} at update 1 of 5\n"
    assert teacher.preflight(dataclasses.replace(same, steps=1), "teacher") is True  # fit then ends at once
    assert capsys.readouterr().out.endswith("at update 1 of 1: the run is complete (a larger --steps goes on, "
                                            "--fresh starts anew)\n")
    other = dataclasses.replace(same, batch_size=1, seed=3)
    with pytest.raises(teacher.DataError) as refused:
        teacher.preflight(other, "teacher")
    assert str(refused.value) == (f"{path} comes from another run: it has --batch-size 2 --seed 0, this command "
                                  "--batch-size 1 --seed 3; pass --resume to continue it with this command's "
                                  "options, or choose another --out")
    assert teacher.preflight(dataclasses.replace(other, resume=True), "teacher") is True
    assert capsys.readouterr().out.endswith(", with --batch-size 1 --seed 3 instead of --batch-size 2 --seed 0\n")
    with pytest.raises(teacher.DataError, match="holds a network"):  # --resume, but another network: at once
        train(dataclasses.replace(same, preset="small", resume=True))
    refusals = {"contradict": dict(fresh=True, resume=True),
                "not both": dict(warm_start="export.pt", resume=True),
                "holds a run at update 1, and --warm-start export.pt begins one: drop --warm-start to continue it":
                    dict(warm_start="export.pt"),
                "is a teacher checkpoint, not a student one": dict(kind="student"),
                "nothing to continue": dict(out=str(tmp_path / "empty"), resume=True),
                "cannot write there": dict(out=str(path / "below_a_file"))}
    for message, change in refusals.items():
        kind = change.pop("kind", "teacher")
        with pytest.raises(teacher.DataError, match=message):
            teacher.preflight(dataclasses.replace(same, **change), kind)
    capsys.readouterr()
    assert teacher.preflight(dataclasses.replace(same, fresh=True), "teacher") is False  # the old run set aside
    aside = [p for p in path.parent.iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and sorted(p.name for p in aside[0].iterdir()) == ["checkpoint.pt", "log.jsonl"]
    assert not path.exists() and capsys.readouterr().out.startswith("--fresh: starting anew; the run that was in ")


def test_an_unreadable_validation_file_fails_before_any_update(tmp_path):
    folder, message = bad_data_folders(tmp_path)["not_audio"]
    with pytest.raises(teacher.DataError, match=message):
        train(Config(**dict(FAST, valid_files=1), steps=1, valid=str(folder), out=str(tmp_path / "run")))
    assert not (tmp_path / "run" / "log.jsonl").exists()


def run_teacher(*args):
    return subprocess.run([sys.executable, "teacher.py", "--preset", "tiny", "--steps", "1", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def bad_data_folders(tmp_path):
    (tmp_path / "no_audio" / "clean").mkdir(parents=True)
    (tmp_path / "no_audio" / "noisy").mkdir()
    (tmp_path / "no_audio" / "clean" / "notes.txt").write_text("hello")
    for name, noisy_name in (("mismatch", "b.wav"), ("not_audio", "a.wav")):
        for sub in ("clean", "noisy"):
            (tmp_path / name / sub).mkdir(parents=True)
        sf.write(tmp_path / name / "clean" / "a.wav", np.zeros(16000, np.float32), 16000)
        sf.write(tmp_path / name / "noisy" / noisy_name, np.zeros(16000, np.float32), 16000)
    (tmp_path / "not_audio" / "noisy" / "a.wav").write_text("this is text, not a wave file")
    return {"missing": (tmp_path / "does_not_exist", "no such folder"),
            "no_audio": (tmp_path / "no_audio", "no audio files"),
            "mismatch": (tmp_path / "mismatch", "do not match"),
            "not_audio": (tmp_path / "not_audio", "not a readable audio file")}


@pytest.mark.parametrize("case", ["missing", "no_audio", "mismatch", "not_audio"])
def test_bad_data_gives_one_error_line(tmp_path, case):
    folder, message = bad_data_folders(tmp_path)[case]
    result = run_teacher("--data", str(folder), "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]  # a missing folder: argparse's usage too
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_cuda_graphs_compile_for_replay_and_mark_each_micro_batch(tmp_path, monkeypatch):
    """--cuda-graphs: the U-Nets of model and EMA compiled in torch.compile's reduce-overhead mode, and before
    each micro-batch the graphs' earlier outputs released (nothing is compiled here: optimise is recorded)."""
    asked, marks = [], []
    monkeypatch.setattr(teacher, "optimise", lambda D, device, compiled=False, compile_mode=None:
                        asked.append((compiled, compile_mode)))
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    train(Config(**{**FAST, "grad_accum": 2}, steps=3, compile=True, cuda_graphs=True, out=str(tmp_path / "graphs")))
    assert asked == [(True, "reduce-overhead")] * 2 and len(marks) == 3 * 2
    asked.clear(), marks.clear()
    train(Config(**FAST, steps=1, compile=True, out=str(tmp_path / "plain")))
    assert asked == [(True, None)] * 2 and not marks
    result = run_teacher("--cuda-graphs", "--out", str(tmp_path / "refused"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: --cuda-graphs replays the compiled U-Nets: add --compile" in result.stderr
    assert not (tmp_path / "refused").exists()


def test_a_run_on_a_cpu_keeps_freed_memory(tmp_path, monkeypatch):
    """A run on a CPU tells the allocator to reuse freed memory (fast.keep_freed_memory; distill.py: test_distill)."""
    calls = []
    monkeypatch.setattr(teacher, "keep_freed_memory", lambda: calls.append(1))
    train(Config(**FAST, steps=1, out=str(tmp_path)))
    assert calls == [1]


def test_max_minutes_stops_early_with_a_checkpoint(tmp_path):
    train(Config(**FAST, steps=10_000, max_minutes=1e-4, out=str(tmp_path)))  # 6 ms: stops after the first update
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert 1 <= ckpt["step"] < 10_000
    end = read_log(tmp_path)[-1]
    assert end["event"] == "end" and end["step"] == ckpt["step"]


def test_export_keeps_the_ema_weights_in_float16_and_cannot_be_resumed(tmp_path):
    train(Config(**FAST, steps=2, out=str(tmp_path / "run")))
    teacher.main(["export", str(tmp_path / "run" / "checkpoint.pt"), str(tmp_path / "slim.pt")])
    full, slim = load_checkpoint(tmp_path / "run" / "checkpoint.pt"), load_checkpoint(tmp_path / "slim.pt")
    assert not {"raw", "optimizer"} & slim.keys() and slim["kind"] == "teacher" and slim["step"] == 2
    for k, v in full["ema"].items():
        assert slim["ema"][k].dtype == (torch.float16 if v.is_floating_point() and k != "net.fourier_W" else v.dtype)
        assert torch.allclose(slim["ema"][k].float(), v.float(), rtol=1e-3, atol=1e-4)
    from model import load_model
    D, _, _ = load_model(tmp_path / "slim.pt", "cpu")  # loads into a float32 network
    assert next(D.parameters()).dtype == torch.float32
    with pytest.raises(SystemExit, match="exists"):  # never replaces a file
        teacher.main(["export", str(tmp_path / "run" / "checkpoint.pt"), str(tmp_path / "slim.pt")])
    (tmp_path / "again").mkdir()
    os.replace(tmp_path / "slim.pt", tmp_path / "again" / "checkpoint.pt")
    with pytest.raises(SystemExit, match="cannot be resumed"):
        teacher.main(["--preset", "tiny", "--out", str(tmp_path / "again"), "--resume", "--steps", "4",
                      "--valid-files", "0", "--batch-size", "2", "--num-frames", "64"])


def test_ema_has_the_official_warm_up():
    """torch_ema with use_num_updates: decay min(0.999, (1 + n) / (10 + n)) at update n = 1, 2, ..."""
    assert teacher.ema_decay(0.999, 1) == pytest.approx(2 / 11)
    assert teacher.ema_decay(0.999, 100) == pytest.approx(101 / 110)
    assert teacher.ema_decay(0.999, 8_990) == teacher.ema_decay(0.999, 100_000) == 0.999
    model, ema = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(1.0), ema.weight.fill_(0.0)
    teacher.ema_update(ema, model, teacher.ema_decay(0.999, 1))
    torch.testing.assert_close(ema.weight, torch.full((1, 3), 9 / 11))  # the first update moves 9/11 of the way


def test_ema_update_moves_every_weight_and_copies_the_buffers():
    """The one-call update against the formula applied weight by weight, on a network with many tensors."""
    from model import Denoiser
    model, ema = Denoiser("tiny", "edm"), Denoiser("tiny", "edm")
    torch.nn.init.normal_(model.net.fourier_W)  # a buffer or a parameter: either way the EMA must follow it
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    teacher.ema_update(ema, model, 0.9)
    params = dict(model.named_parameters())
    for name, value in ema.state_dict().items():
        expected = 0.9 * before[name] + 0.1 * params[name] if name in params else model.state_dict()[name]
        torch.testing.assert_close(value, expected, msg=name)


def test_training_uses_the_warm_up_and_a_resumed_run_continues_its_count(tmp_path, monkeypatch):
    seen = []
    original = teacher.ema_update
    monkeypatch.setattr(teacher, "ema_update", lambda ema, model, decay: (seen.append(decay), original(ema, model, decay)))
    train(Config(**FAST, steps=2, out=str(tmp_path)))
    train(Config(**FAST, steps=3, out=str(tmp_path), resume=True))
    assert seen == pytest.approx([2 / 11, 3 / 12, 4 / 13])


def test_packed_state_is_small_in_parts_and_resumes_training_closely(tmp_path):
    """pack -> unpack -> --resume continues the run: raw weights exact, EMA and Adam moments rounded to
    bfloat16 (the EMA as its difference from the raw weights), so the resumed run stays much closer to
    the uninterrupted one than the weights move in the resumed updates."""
    import model
    common = dict(FAST, deterministic=True, lr=1e-3)
    train(Config(**common, steps=8, out=str(tmp_path / "straight")))
    train(Config(**common, steps=4, out=str(tmp_path / "first")))
    full_path = tmp_path / "first" / "checkpoint.pt"
    manifest = model.pack_checkpoint(full_path, tmp_path / "parts", part_bytes=300_000)
    sizes = [p.stat().st_size for p in sorted((tmp_path / "parts").glob("state.*"))]
    assert len(sizes) == len(manifest["parts"]) >= 2 and max(sizes) <= 300_000 and sum(sizes) == manifest["bytes"]
    n = sum(v.numel() for v in load_checkpoint(full_path)["raw"].values())
    assert manifest["bytes"] < 11 * n + 100_000 < 0.75 * full_path.stat().st_size  # ~10 bytes per parameter, not 16

    teacher.main(["unpack", str(tmp_path / "parts"), str(tmp_path / "moved" / "checkpoint.pt")])
    full, moved = load_checkpoint(full_path), load_checkpoint(tmp_path / "moved" / "checkpoint.pt")
    assert moved["step"] == 4 and moved["config"] == full["config"] and moved["gpu_seconds"] == full["gpu_seconds"]
    for k, v in full["raw"].items():
        assert torch.equal(moved["raw"][k], v)
        error = (moved["ema"][k] - full["ema"][k]).abs()
        assert moved["ema"][k].dtype == v.dtype and bool((error <= 2 ** -8 * (full["ema"][k] - v).abs() + 1e-12).all())
    for i, s in full["optimizer"]["state"].items():
        for k in ("exp_avg", "exp_avg_sq"):
            assert moved["optimizer"]["state"][i][k].dtype == torch.float32
            torch.testing.assert_close(moved["optimizer"]["state"][i][k], s[k], rtol=2 ** -8, atol=0)

    train(Config(**common, steps=8, out=str(tmp_path / "moved"), resume=True))
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "moved" / "checkpoint.pt")
    for key in ("raw", "ema"):
        moved_by = sum((straight[key][k] - full[key][k]).float().norm() ** 2 for k in full[key]) ** 0.5
        differs = sum((straight[key][k] - resumed[key][k]).float().norm() ** 2 for k in full[key]) ** 0.5
        assert 0 < differs < 0.02 * moved_by, (key, differs, moved_by)
    losses = lambda run: [e["loss"] for e in read_log(tmp_path / run) if e["event"] == "train"][-4:]
    np.testing.assert_allclose(losses("moved"), losses("straight"), rtol=1e-2)


def test_packed_state_refuses_damaged_parts_and_never_overwrites(tmp_path):
    import model
    train(Config(**FAST, steps=2, out=str(tmp_path / "run")))
    ckpt = tmp_path / "run" / "checkpoint.pt"
    model.pack_checkpoint(ckpt, tmp_path / "parts", part_bytes=200_000)
    with pytest.raises(teacher.DataError, match="not empty"):  # a folder that holds something is left alone
        model.pack_checkpoint(ckpt, tmp_path / "parts")
    with pytest.raises(SystemExit, match="exists"):
        teacher.main(["unpack", str(tmp_path / "parts"), str(ckpt)])
    part = tmp_path / "parts" / "state.001"
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="state.001: damaged"):
        teacher.main(["unpack", str(tmp_path / "parts"), str(tmp_path / "new.pt")])
    part.unlink()
    with pytest.raises(SystemExit, match="state.001: missing"):
        teacher.main(["unpack", str(tmp_path / "parts"), str(tmp_path / "new.pt")])
    assert not (tmp_path / "new.pt").exists()
    teacher.main(["pack", str(ckpt), str(tmp_path / "small-parts"), "0.25"])  # the part size in MiB
    assert max(p.stat().st_size for p in (tmp_path / "small-parts").glob("state.*")) <= 2 ** 18
    with pytest.raises(SystemExit, match="17 MiB: choose 0.01 to 16"):
        teacher.main(["pack", str(ckpt), str(tmp_path / "more-parts"), "17"])
    teacher.main(["export", str(ckpt), str(tmp_path / "slim.pt")])
    with pytest.raises(SystemExit, match="nothing to resume"):
        teacher.main(["pack", str(tmp_path / "slim.pt"), str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="^error: .*a file, not a folder"):  # FOLDER names an existing file
        teacher.main(["pack", str(ckpt), str(tmp_path / "slim.pt")])
    for parts in (5, [{"name": "state.000"}], ["state.000"]):  # a hand-edited manifest: one error line, no file
        (tmp_path / "small-parts" / "manifest.json").write_text(json.dumps({"parts": parts}))
        with pytest.raises(SystemExit, match="^error: .*no readable manifest.json"):
            teacher.main(["unpack", str(tmp_path / "small-parts"), str(tmp_path / "new.pt")])
    assert not (tmp_path / "new.pt").exists()


def test_resume_takes_the_new_learning_rate_and_adds_up_gpu_time(tmp_path):
    train(Config(**FAST, steps=2, out=str(tmp_path)))
    first = load_checkpoint(tmp_path / "checkpoint.pt")
    assert first["optimizer"]["param_groups"][0]["lr"] == 1e-4 and first["gpu_seconds"] > 0
    train(Config(**FAST, steps=4, out=str(tmp_path), resume=True, lr=3e-5))
    second = load_checkpoint(tmp_path / "checkpoint.pt")
    assert second["optimizer"]["param_groups"][0]["lr"] == 3e-5
    assert second["gpu_seconds"] > first["gpu_seconds"]
    minutes = [e["gpu_minutes"] for e in read_log(tmp_path) if e["event"] == "train"]
    assert minutes == sorted(minutes) and minutes[2] > first["gpu_seconds"] / 60


def test_validation_on_several_sets_logs_each_by_name(tmp_path):
    import data
    data.write_mixtures(data.indomain_pairs()[:2], tmp_path / "heldout", with_clean=True)
    valid = f"{tmp_path / 'heldout'},{data.DEMO / 'vbdmd'}"
    train(Config(**dict(FAST, valid_files=1, valid_steps=2), steps=1, valid=valid, out=str(tmp_path / "run")))
    entry = [e for e in read_log(tmp_path / "run") if e["event"] == "valid"][-1]
    assert {"heldout/pesq", "heldout/si_sdr", "vbdmd/pesq", "vbdmd/estoi"} <= entry.keys() and entry["gpu_minutes"] > 0


def test_warm_start_from_an_export_continues_the_count_with_its_weights(tmp_path):
    quick = dict(FAST, speech=SPEECH)  # 12 utterances: loaded in a second
    train(Config(**quick, steps=3, out=str(tmp_path / "run")))
    teacher.main(["export", str(tmp_path / "run" / "checkpoint.pt"), str(tmp_path / "slim.pt")])
    slim = load_checkpoint(tmp_path / "slim.pt")
    assert slim["step"] == 3 and slim["gpu_seconds"] > 0
    train(Config(**quick, steps=4, out=str(tmp_path / "warm"), warm_start=str(tmp_path / "slim.pt")))  # one update
    warm = load_checkpoint(tmp_path / "warm" / "checkpoint.pt")
    assert warm["step"] == 4 and warm["gpu_seconds"] > slim["gpu_seconds"]
    # fresh Adam moments: its first step moves every weight by at most lr (1e-4) from the exported EMA weights
    steps = torch.cat([(warm["raw"][k] - v.float()).abs().flatten() for k, v in slim["ema"].items() if "fourier" not in k])
    assert 0 < steps.max() <= 1.001e-4 and all(s["step"] == 1 for s in warm["optimizer"]["state"].values())
    # the same command continues the run it began (a stop, a lost machine), and so does one without --warm-start
    train(Config(**quick, steps=5, out=str(tmp_path / "warm"), warm_start=str(tmp_path / "slim.pt")))
    train(Config(**quick, steps=6, out=str(tmp_path / "warm")))
    assert load_checkpoint(tmp_path / "warm" / "checkpoint.pt")["step"] == 6
    assert [e["step"] for e in read_log(tmp_path / "warm") if e["event"] == "start"] == [3, 4, 5]
    with pytest.raises(teacher.DataError, match="shape"):
        train(Config(**dict(quick, preset="small"), steps=4, out=str(tmp_path / "other"), warm_start=str(tmp_path / "slim.pt")))
    with pytest.raises(teacher.DataError, match="not both"):
        train(Config(**quick, steps=4, out=str(tmp_path / "warm"), resume=True, warm_start=str(tmp_path / "slim.pt")))
