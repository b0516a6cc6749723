"""figures.py: both method figures drawn from a bundled recording with tiny random checkpoints (seconds on a CPU),
the sampling figure's outputs equal to enhance.py's, the training curves and a file's spectrograms
drawn from the right numbers, and bad input refused with one error line. matplotlib is optional: without it the
drawing tests are skipped (or use a stand-in) and the figures refuse to start with the install line."""
import dataclasses
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
from data import DEMO, load_audio, spec_to_wav  # noqa: E402
from enhance import enhance_wav  # noqa: E402
from model import Denoiser, save_checkpoint  # noqa: E402
from sde import SDE  # noqa: E402
from test_enhance import tiny  # noqa: E402

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is optional and not installed")
SHORT = ["--max-seconds", "0.5"]  # 0.5 s: 63 STFT frames, padded to 64
CLEAN, NOISY = DEMO / "vbdmd" / "clean", DEMO / "vbdmd" / "noisy"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    base = tmp_path_factory.mktemp("ckpt")
    for kind, c_in in (("teacher", "edm"), ("student", "one")):
        d = tiny(c_in)
        save_checkpoint(base / f"{kind}.pt", kind=kind, model=d.config(), sde=dataclasses.asdict(SDE()),
                        ema=d.state_dict())
    return ["--teacher", str(base / "teacher.pt"), "--student", str(base / "student.pt")]


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_matplotlib
def test_sampling_figure_has_the_input_the_start_three_states_both_outputs_and_the_clean(ckpts, tmp_path):
    png = tmp_path / "sampling.png"
    titles = figures.main(["sampling", *ckpts, "--out", str(png), *SHORT])  # the bundled noisy file and its clean
    assert is_png(png)
    assert len(titles) == 8
    assert titles[0].startswith("noisy input") and "x_T" in titles[1]
    assert [t.split(":")[0] for t in titles[2:5]] == [f"teacher after step {i} of 30" for i in (5, 10, 20)]
    assert "30 steps, 60 network calls" in titles[5] and "student output" in titles[6] and "clean" in titles[7]


def test_sampling_outputs_are_enhance_wavs_and_the_hook_changes_nothing():
    teacher, student = tiny("edm"), tiny("one")
    noisy = load_audio(figures.NOISY)[:8000]
    panels = figures.sampling_panels(teacher, teacher.sde, student, noisy, seed=3, steps=6, shown=(2, 4))
    assert len(panels) == 6  # y, x_T, 2 states, the teacher's and the student's outputs; no clean reference
    scale = np.abs(noisy).max()
    for D, steps, spec in ((teacher, 6, panels[-2][1]), (student, 1, panels[-1][1])):
        expected, _ = enhance_wav(D, D.sde, noisy, steps, torch.Generator().manual_seed(3))
        drawn = spec_to_wav(spec, len(noisy))[0].numpy() * scale
        np.testing.assert_allclose(drawn, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


@needs_matplotlib
def test_training_step_figure_shows_the_step_of_rosecd_loss(ckpts, tmp_path):
    png = tmp_path / "step.png"
    titles = figures.main(["training-step", *ckpts, "--out", str(png), "--num-frames", "64", *SHORT])
    assert is_png(png) and len(titles) == 8
    assert "x_{t_n}" in titles[2] and "student" in titles[3] and "deterministic" in titles[4]
    assert "randomized" in titles[5] and "target" in titles[6] and "consistency loss" in titles[7]


def test_training_step_panels_are_the_tensors_of_one_rosecd_step():
    teacher, student = tiny("edm"), tiny("one")
    clean, noisy = load_audio(figures.CLEAN), load_audio(figures.NOISY)
    panels, suptitle = figures.training_step_panels(teacher, teacher.sde, student, noisy, clean, num_frames=64)
    spec = dict(zip(["x", "y", "x_tn", "D_student", "x_mean", "x_next", "D_target", "difference"],
                    (s for _, s in panels)))
    assert all(s.shape == (1, 1, 256, 64) for s in spec.values())
    assert not torch.equal(spec["x_next"], spec["x_mean"])  # the randomized trajectory added fresh noise
    torch.testing.assert_close(spec["difference"], spec["D_student"] - spec["D_target"])
    assert "n = " in suptitle and "consistency" in suptitle


def error_of(*argv):
    with pytest.raises(SystemExit) as e:
        figures.main(list(argv))
    return str(e.value.code)


@needs_matplotlib
def test_bad_input_is_one_error_line(ckpts, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    sf.write(tmp_path / "short.wav", np.full(100, 0.1, np.float32), 16000)  # shorter than one STFT window
    out = ["--out", str(tmp_path / "f.png")]
    cases = {("sampling", "--noisy", str(tmp_path / "missing.wav"), *ckpts, *out): "no such file",
             ("sampling", *ckpts[:2], "--student", str(tmp_path / "junk.pt"), *out): "not a readable checkpoint",
             ("sampling", *ckpts, "--out", str(tmp_path / "no" / "f.png")): "no such folder",
             ("sampling", *ckpts, "--out", str(tmp_path / "f.jpg")): "PNG",
             ("sampling", "--teacher", ckpts[3], "--student", ckpts[3], *out): "--teacher needs",
             ("sampling", *ckpts[:2], "--student", ckpts[1], *out): "--student needs a ROSE-CD student",
             ("training-step", "--noisy", str(figures.CLEAN), *ckpts, *out): "needs --clean",
             ("training-step", *ckpts, "--num-frames", "100", *out): "multiple of 64",
             ("sampling", "--noisy", str(tmp_path / "short.wav"), *ckpts, *out): "100 samples",
             ("sampling", *ckpts, "--max-seconds", "0.001", *out): "16 samples at 16 kHz within --max-seconds",
             ("spectrograms", "--enhanced", str(tmp_path / "short.wav"), *out): "a figure needs at least"}
    for argv, message in cases.items():
        line = error_of(*argv)
        assert line.startswith("error:") and message in line and "\n" not in line, (argv, line)
    assert not (tmp_path / "f.png").exists()


def test_without_matplotlib_the_error_says_how_to_install_it(ckpts, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    line = error_of("sampling", *ckpts, "--out", str(tmp_path / "f.png"))
    assert line.startswith("error:") and "pip install matplotlib" in line and "\n" not in line


@needs_matplotlib
@pytest.mark.parametrize("argv, message", [(["sampling", "--noisy", "missing.wav"], "no such file"),
                                           (["curves", "--logs", "missing.jsonl"], "not a readable training log")])
def test_a_missing_input_exits_non_zero_with_one_line(tmp_path, argv, message):
    argv = [str(tmp_path / a) if a.startswith("missing") else a for a in argv]
    result = subprocess.run([sys.executable, "figures.py", *argv, "--out", str(tmp_path / "f.png")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "f.png").exists()


# ----------------------------------------------------------------------------- training curves, spectrograms

def stand_in_matplotlib(monkeypatch, axes):
    """matplotlib replaced by a recorder (it is optional, and absent where these tests were written):
    pyplot.subplots(rows, cols) returns a figure and axes(rows, cols), and the figure saves a small real PNG,
    which save_png reduces to its palette."""
    Image = pytest.importorskip("PIL.Image")
    fig, pyplot = mock.MagicMock(), mock.MagicMock()
    fig.savefig.side_effect = lambda buffer, **kw: Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    pyplot.subplots.side_effect = lambda rows, cols, **kw: (fig, axes(rows, cols))
    matplotlib = types.ModuleType("matplotlib")
    matplotlib.use, matplotlib.pyplot = (lambda backend: None), pyplot
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)


def test_spectrograms_show_noisy_enhanced_clean_on_one_colour_scale(tmp_path, monkeypatch):
    """The spectrograms figure's picture (test_spectrograms_draws_the_files_it_is_given: which files it is given)."""
    panels = []
    stand_in_matplotlib(monkeypatch, lambda rows, cols: [panels.append([mock.MagicMock() for _ in range(cols)])
                                                         or panels[-1]])
    for name in ("p287_001", "p287_002"):
        figures.plot_spectrograms({"enhanced": NOISY / f"{name}.wav", "clean": CLEAN / f"{name}.wav",
                                   "noisy": NOISY / f"{name}.wav"}, tmp_path / f"{name}.png")
    assert is_png(tmp_path / "p287_001.png") and is_png(tmp_path / "p287_002.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p287_001.png", "p287_002.png"]  # no temporary file left
    assert len(panels) == 2
    for axes in panels:
        assert [ax.set_title.call_args.args[0].split(":")[0] for ax in axes] == ["noisy", "enhanced", "clean"]
        scales = {(ax.imshow.call_args.kwargs["vmin"], ax.imshow.call_args.kwargs["vmax"]) for ax in axes}
        assert len(scales) == 1  # one colour scale for the three panels
        (vmin, vmax), = scales
        assert vmax - vmin == 80 and vmax == max(ax.imshow.call_args.args[0].max() for ax in axes)


@needs_matplotlib
def test_spectrograms_are_a_real_png_where_matplotlib_is_installed(tmp_path):
    figures.plot_spectrograms({"noisy": NOISY / "p287_001.wav", "enhanced": NOISY / "p287_001.wav",
                               "clean": CLEAN / "p287_001.wav"}, tmp_path / "p287_001.png")
    assert is_png(tmp_path / "p287_001.png")


def test_spectrograms_draws_the_files_it_is_given(tmp_path, monkeypatch):
    """python figures.py spectrograms: each file named in its role, into --out or ./spectrograms.png; the drawing is
    replaced by a recorder, and matplotlib, which is optional, by a stand-in."""
    stand_in_matplotlib(monkeypatch, lambda rows, cols: [[mock.MagicMock() for _ in range(cols)]])
    draw, drawn = figures.plot_spectrograms, []
    monkeypatch.setattr(figures, "plot_spectrograms", lambda paths, png: drawn.append((paths, png)) or draw(paths, png))
    files = {"noisy": str(NOISY / "p287_001.wav"), "enhanced": str(NOISY / "p287_002.wav"),
             "clean": str(CLEAN / "p287_001.wav")}
    titles = figures.main(["spectrograms", *(x for role, path in files.items() for x in (f"--{role}", path)),
                           "--out", str(tmp_path / "a.png")])
    assert titles == ["noisy: p287_001.wav", "enhanced: p287_002.wav", "clean: p287_001.wav"]
    monkeypatch.chdir(tmp_path)
    figures.main(["spectrograms", "--enhanced", files["enhanced"]])  # no noisy, no clean: only the enhanced
    assert drawn == [(files, tmp_path / "a.png"), ({"enhanced": files["enhanced"]}, Path("spectrograms.png"))]
    assert is_png(tmp_path / "a.png") and is_png(tmp_path / "spectrograms.png")
    out = ["--out", str(tmp_path / "bad.png")]
    for argv, message in {("spectrograms", *out): "spectrograms needs --enhanced",
                          ("spectrograms", "--enhanced", str(tmp_path / "missing.wav"), *out): "no such file"}.items():
        line = error_of(*argv)
        assert line.startswith("error:") and message in line and "\n" not in line, (argv, line)
    assert not (tmp_path / "bad.png").exists()


def test_curves_put_teacher_and_student_runs_in_their_own_columns(tmp_path, monkeypatch):
    """python figures.py curves with a stand-in matplotlib: which numbers go to which panel; no checkpoint and no
    audio is read."""
    grids = []
    stand_in_matplotlib(monkeypatch, lambda rows, cols: grids.append([[mock.MagicMock() for _ in range(cols)]
                                                                      for _ in range(rows)]) or grids[-1])
    for name in ("load_teacher", "load_model", "load_audio"):
        monkeypatch.setattr(figures, name, mock.Mock(side_effect=AssertionError("curves read a checkpoint or audio")))
    logs = {"teacher": [{"event": "start", "step": 0}] + [{"event": "train", "step": 10 * i, "loss": 100.0 - i}
                                                          for i in range(1, 4)]
            + [{"event": "valid", "step": 30, "pesq": 1.4, "estoi": 0.5, "si_sdr": 6.0}],
            "student": [{"event": "train", "step": 10, "loss": 1e-3, "consistency": 5e-4}]
            + [{"event": "valid", "step": 10, "teacher_pesq": 1.38, "teacher_si_sdr": 6.3, "student_pesq": 1.39,
                "student_si_sdr": 6.7}],
            "quiet": [{"event": "start", "step": 0, "config": {"teacher": "t.pt"}},  # a student that never
                      {"event": "train", "step": 10, "consistency": 4e-4}]}         # validated: told by its --teacher
    for name, entries in logs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    log = {name: str(tmp_path / name / "log.jsonl") for name in logs}
    monkeypatch.chdir(tmp_path)  # the default --out: training_curves.png in the current folder
    # the student's log first: the teacher still takes the first column
    assert figures.main(["curves", "--logs", log["student"], log["teacher"], log["quiet"]]) == \
        {"teacher": ["teacher"], "student": ["student", "quiet"]}
    assert is_png(tmp_path / "training_curves.png")
    grid = grids[-1]
    steps, losses = grid[0][0].plot.call_args.args[:2]
    assert list(steps) == [10, 20, 30] and list(losses) == [99.0, 98.0, 97.0]  # fewer entries than the smoothing
    assert [list(c.args[1]) for c in grid[0][1].plot.call_args_list] == [[5e-4], [4e-4]]  # consistency terms
    assert grid[2][0].plot.call_args.args[1] == [6.0] and grid[2][1].plot.call_args_list[0].args[1] == [6.7]
    assert grid[1][1].axhline.call_args.args[0] == 1.38  # the teacher's score, dashed
    assert [c.kwargs["label"] for c in grid[1][1].plot.call_args_list] == ["student"]  # "quiet" has no line there
    # --smooth 2: a moving mean over two entries, drawn at the later one's step
    figures.main(["curves", "--logs", log["teacher"], "--out", str(tmp_path / "smooth.png"), "--smooth", "2"])
    steps, losses = grids[-1][0][0].plot.call_args.args[:2]
    assert list(steps) == [20, 30] and list(losses) == [98.5, 97.5] and is_png(tmp_path / "smooth.png")
    # a file at --out is kept, before any drawing, unless --overwrite
    again, before = ["curves", "--logs", log["teacher"], "--out", str(tmp_path / "smooth.png")], len(grids)
    kept = (tmp_path / "smooth.png").read_bytes()
    assert "exists; pass --overwrite" in error_of(*again) and (tmp_path / "smooth.png").read_bytes() == kept
    assert len(grids) == before
    figures.main(again + ["--overwrite"])
    assert len(grids) == before + 1 and is_png(tmp_path / "smooth.png")

    (tmp_path / "broken.jsonl").write_text("not json")
    (tmp_path / "stepless.jsonl").write_text(json.dumps({"event": "train", "loss": 1.0}) + "\n")
    (tmp_path / "started.jsonl").write_text(json.dumps({"event": "start", "step": 0}) + "\n")
    out = ["--out", str(tmp_path / "bad.png")]
    cases = {("curves", "--logs", str(tmp_path / "broken.jsonl"), *out): "not a readable training log",
             ("curves", "--logs", str(tmp_path / "missing.jsonl"), *out): "not a readable training log",
             ("curves", "--logs", str(tmp_path / "stepless.jsonl"), *out): "an entry without 'step'",
             ("curves", "--logs", log["teacher"], str(tmp_path / "started.jsonl"), *out): "started.jsonl: no training",
             ("curves", *out): "curves needs --logs",
             ("curves", "--logs", log["teacher"], "--smooth", "0", *out): "--smooth 0"}
    for argv, message in cases.items():
        line = error_of(*argv)
        assert line.startswith("error:") and message in line and "\n" not in line, (argv, line)
    assert not (tmp_path / "bad.png").exists()


@needs_matplotlib
def test_curves_keep_a_runs_colour_and_say_where_nothing_validated(tmp_path, monkeypatch):
    """With matplotlib itself: each run's loss line and first validation set share a dark shade and its second set
    takes the light one of the same pair (past ten lines, a plain colour cycle gave two runs one colour); a column
    whose runs never validated says so instead of drawing an empty frame."""
    import matplotlib.pyplot as plt
    figs = []
    monkeypatch.setattr(figures, "save_png", lambda fig, png, dpi=None: figs.append(fig))
    logs = []
    for i in range(6):  # six students validated on two sets: twelve lines per validation panel
        entries = [{"event": "train", "step": 10, "consistency": 1e-4 * (i + 1)},
                   {"event": "valid", "step": 10, **{f"{s}/{w}_{m}": 1.0 + i for s in ("libri", "p287")
                                                     for w in ("student", "teacher") for m in ("pesq", "si_sdr")}}]
        logs.append(tmp_path / f"s{i}.jsonl")
        logs[-1].write_text("".join(json.dumps(e) + "\n" for e in entries))
    teacher = tmp_path / "t.jsonl"  # a teacher that never validated
    teacher.write_text(json.dumps({"event": "train", "step": 10, "loss": 5.0}) + "\n")
    quiet = tmp_path / "q.jsonl"  # and one that only validated: its loss panel is the one without lines
    quiet.write_text(json.dumps({"event": "valid", "step": 10, "pesq": 1.5, "si_sdr": 7.0}) + "\n")
    figures.plot_curves([str(p) for p in logs] + [str(teacher)], tmp_path / "c.png", smooth=1)
    figures.plot_curves([str(quiet)], tmp_path / "q.png", smooth=1)
    axes = np.array(figs[0].axes).reshape(3, 2)
    pairs = plt.cm.tab20.colors
    for i in range(6):
        loss = axes[0][1].lines[i].get_color()
        pesq = {line.get_label(): line.get_color() for line in axes[1][1].lines}
        assert loss == pesq[f"s{i} libri"] == pairs[2 * i] and pesq[f"s{i} p287"] == pairs[2 * i + 1]
    assert len({line.get_color() for line in axes[1][1].lines}) == 12
    for row in (1, 2):
        assert [t.get_text() for t in axes[row][0].texts] == ["no validation entries in these logs"]
        assert not axes[row][0].lines and axes[row][0].get_legend() is None
    assert [t.get_text() for t in figs[1].axes[0].texts] == ["no training entries in these logs"]
    assert [len(ax.lines) for ax in figs[1].axes] == [0, 1, 1] and not figs[1].axes[1].texts
    plt.close(figs[0]), plt.close(figs[1])


def test_curves_over_gpu_minutes_draw_one_line_per_validation_set(tmp_path, monkeypatch):
    """A run validated on several sets (teacher.py --valid a,b) across allocations: x is the summed GPU-minutes,
    one line per set, named by the log file where it is not a run's own log.jsonl."""
    grids = []
    stand_in_matplotlib(monkeypatch, lambda rows, cols: grids.append([[mock.MagicMock() for _ in range(cols)]
                                                                      for _ in range(rows)]) or grids[-1])
    entries = [{"event": "train", "step": 50 * i, "loss": 9.0 - i, "gpu_minutes": 1.5 * i} for i in (1, 2)] + [
        {"event": "valid", "step": 100, "gpu_minutes": 3.5, "libri/pesq": 1.7, "libri/si_sdr": 11.0,
         "p287/pesq": 1.5, "p287/si_sdr": 10.0},
        {"event": "start", "step": 100},  # the next allocation appended to the same file
        {"event": "valid", "step": 200, "gpu_minutes": 7.0, "libri/pesq": 1.8, "libri/si_sdr": 11.5,
         "p287/pesq": 1.6, "p287/si_sdr": 10.5}]
    (tmp_path / "teacher-medium.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert figures.main(["curves", "--logs", str(tmp_path / "teacher-medium.jsonl"), "--x", "gpu-minutes", "--out",
                         str(tmp_path / "c.png"), "--smooth", "1"]) == {"teacher": ["teacher-medium"]}
    grid = grids[-1]
    assert [list(v) for v in grid[0][0].plot.call_args.args[:2]] == [[1.5, 3.0], [8.0, 7.0]]
    lines = {c.kwargs["label"]: (list(c.args[0]), list(c.args[1])) for c in grid[1][0].plot.call_args_list}
    assert lines == {"teacher-medium libri": ([3.5, 7.0], [1.7, 1.8]), "teacher-medium p287": ([3.5, 7.0], [1.5, 1.6])}
    assert grid[2][0].set.call_args.kwargs["xlabel"] == "GPU-minutes"


def test_every_option_has_a_meaning_and_a_default():
    parser = figures.make_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and (not action.option_strings or "default" in action.help), action.dest
    assert next(a for a in parser._actions if a.dest == "figure").choices == figures.FIGURES
