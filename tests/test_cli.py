"""The command lines explain themselves: every option has a meaning and a default in --help,
and every option with a fixed set of values refuses any other at once, listing the set. A bad value of any
option ends a script before any work with one 'error:' line, a non-zero exit status and no traceback, in this
process and as a user runs it (python SCRIPT.py ...)."""
import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import data
import distill
import enhance
import evaluate
import figures
import listen
import speed
import teacher

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"teacher.py": teacher.Config, "distill.py": distill.Config}
PARSERS = {"teacher.py": lambda: teacher.make_parser(teacher.Config),
           "distill.py": lambda: teacher.make_parser(distill.Config),
           "enhance.py": enhance.make_parser, "evaluate.py": evaluate.make_parser, "speed.py": speed.make_parser,
           "listen.py": listen.make_parser, "figures.py": figures.make_parser}
FIXED_SETS = {"teacher.py": {"--preset": set(teacher.PRESETS)},
              "distill.py": {"--trajectory": {"randomized", "deterministic"}, "--student-c-in": {"one", "edm"}},
              "enhance.py": {"--precision": {"auto", "fp32", "tf32", "bf16", "fp16"}, "--out-rate": {"input", "16000"}},
              "evaluate.py": {"--pesq-mode": {"wb", "nb"}, "--sir-sar": {"sgmse", "projection"}},
              "speed.py": {"--precision": {"fp32", "tf32", "bf16", "fp16"}, "--preset": set(teacher.PRESETS)},
              "listen.py": {"--pesq-mode": {"wb", "nb"}, "--sir-sar": {"sgmse", "projection"},
                            "--sort": set(listen.LABELS)},
              "figures.py": {"figure": set(figures.FIGURES)}}


def options(parser):
    return {a.option_strings[-1] if a.option_strings else a.dest: a for a in parser._actions if a.dest != "help"}


@pytest.mark.parametrize("script", PARSERS)
def test_every_option_has_a_meaning_and_a_default(script):
    parser = PARSERS[script]()
    shows_defaults = parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter
    for name, action in options(parser).items():
        assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, f"{script} {name}: no help"
        if action.option_strings and not action.required:  # an option, not a positional or a required one
            assert shows_defaults or "default" in action.help, f"{script} {name}: no default in --help"
    if script in CONFIGS:  # generated from the dataclass: one option per field, in order
        assert [a.dest for a in options(parser).values()] == [f.name for f in dataclasses.fields(CONFIGS[script])]


@pytest.mark.parametrize("script", PARSERS)
def test_every_help_text_prints_as_written(script):
    """argparse formats each help text with %: a bare '%' prints the option's whole record instead (or fails)."""
    parser = PARSERS[script]()
    for name, action in options(parser).items():
        shown = " ".join(parser._get_formatter()._expand_help(action).split())
        written = " ".join(action.help.replace("%%", "%").split())
        assert shown.startswith(written.split("%(")[0]), f"{script} {name}: its help prints as {shown[:120]!r}"


@pytest.mark.parametrize("script", PARSERS)
def test_options_with_a_fixed_set_have_choices(script):
    found = options(PARSERS[script]())
    for name, values in FIXED_SETS[script].items():
        assert set(found[name].choices) == values, f"{script} {name}"


def test_teacher_help_names_its_export_pack_and_unpack_commands(capsys):
    with pytest.raises(SystemExit) as e:
        teacher.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0
    for usage in ("teacher.py export CHECKPOINT OUTPUT.pt", "pack CHECKPOINT FOLDER [MIB]", "unpack FOLDER CHECKPOINT"):
        assert usage in shown, usage


def test_a_wrong_trajectory_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        distill.main(["--trajectory", "sideways"])
    message = capsys.readouterr().err
    assert e.value.code == 2 and "--trajectory" in message and "randomized" in message and "deterministic" in message


# ----------------------------------------------------------------------------- bad values

MAINS = {"data.py": data.main, "teacher.py": teacher.main, "distill.py": distill.main, "enhance.py": enhance.main,
         "evaluate.py": evaluate.main, "listen.py": listen.main, "speed.py": speed.main, "figures.py": figures.main}
NOISY = "demo/vbdmd/noisy/p287_002.wav"


def bad_values(tmp):
    """{script: [(arguments, words of the one error line)]}: a bad value of each kind that a script reads (counts
    below 1, weights below 0, numbers out of range, missing files and folders, an output that is an existing file)."""
    existing, missing, out = tmp / "existing.wav", tmp / "missing", str(tmp / "out")
    existing.write_bytes(b"a user's file")
    (tmp / "folder.png").mkdir()
    training = [(["--steps", "0"], "at least 1"), (["--batch-size", "0"], "at least 1"),
                (["--grad-accum", "0"], "at least 1"), (["--lr", "-0.5"], "at least 0"),
                (["--ema-decay", "1.5"], "from 0 to 1"), (["--num-frames", "100"], "a positive multiple of 64"),
                (["--grad-clip", "-1"], "at least 0"), (["--valid-every", "-1"], "at least 0"),
                (["--valid-files", "-1"], "at least 0"), (["--valid-steps", "0"], "at least 1"),
                (["--save-every", "0"], "at least 1"), (["--max-minutes", "nan"], "at least 0"),
                (["--log-every", "0"], "at least 1"), (["--seed", "-1"], "at least 0"),
                (["--seed", 2 ** 64], "at most"),
                (["--data", missing], "no such folder"), (["--speech", missing], "no such folder"),
                (["--speech", f"demo/speech_train,{missing}"], f"{missing}: no such folder"),
                (["--noise", missing], "no such folder"), (["--valid", f"demo/vbdmd,{missing}"], "no such folder"),
                (["--warm-start", missing], "no such file"), (["--snr-low", "nan"], "finite"),
                (["--snr-low", "9", "--snr-high", "3"], "the low one not above the high one"),
                (["--data", "demo/vbdmd", "--snr-low", "-10"], "come mixed already"),
                (["--out", existing], "a file, not a folder"), (["--device", "gpu"], "expected auto, cpu, cuda")]
    scoring = ["--clean", "demo/vbdmd/clean", "--enhanced", "demo/vbdmd/noisy"]
    return {
        "data.py": [(["testset", "--speech", missing, "--out", out], "no such folder"),
                    (["testset", "--speech", f"demo/speech_test,{missing}", "--out", out], "no such folder"),
                    (["testset", "--speech", ",", "--out", out], "no folder given"),
                    (["testset", "--speech", "demo/speech_test", "--noise", missing, "--out", out], "no such folder"),
                    (["testset", "--speech", "demo/speech_test", "--out", existing], "exists"),
                    (["testset", "--speech", "demo/speech_test", "--snr", "nan", "3", "--out", out], "finite"),
                    (["testset", "--speech", "demo/speech_test", "--snr", "9", "3", "--out", out], "above the high"),
                    (["testset", "--speech", "demo/speech_test", "--seed", 2 ** 64, "--out", out], "at most"),
                    (["testset", "--speech", "demo/speech_test", "--out", existing / "set"], "cannot write there"),
                    (["test", "--speech", "demo/speech_test", "--out", out], "invalid choice")],
        "teacher.py": training + [(["--preset", "huge"], "invalid choice"),
                                  (["export", missing, tmp / "e.pt"], "no such checkpoint"),
                                  (["export", "checkpoints/teacher-small.pt", existing], "exists"),
                                  (["export", "checkpoints/teacher-small.pt", existing / "e.pt"], "cannot write there"),
                                  (["pack", "checkpoints/teacher-small.pt", tmp / "p", "0"], "choose 0.01 to 16"),
                                  (["unpack", missing, tmp / "u.pt"], "no readable manifest.json")],
        "distill.py": training + [(["--teacher", missing], "no such checkpoint"), (["--num-scales", "1"], "at least 2"),
                                  (["--sisdr-weight", "-1"], "at least 0"), (["--mrstft-weight", "-1"], "at least 0"),
                                  (["--pesq-weight", "-1"], "at least 0"), (["--trajectory", "up"], "invalid choice")],
        "enhance.py": [([NOISY, "-o", existing], "a file, not a folder"),
                       ([NOISY, "-o", tmp / "new.wav"], "looks like a file name"),
                       ([NOISY, "-o", out, "--steps", "0"], "at least 1"),
                       ([NOISY, "-o", out, "--batch", "0"], "at least 1"),
                       ([NOISY, "-o", out, "--seed", "-1"], "at least 0"),
                       ([NOISY, "-o", out, "--seed", 2 ** 64], "at most"),
                       ([NOISY, "-o", out, "--checkpoint", missing], "no such checkpoint"),
                       ([NOISY, "-o", out, "--device", "gpu"], "expected auto"), ([missing, "-o", out], "no such file"),
                       ([NOISY, "-o", out, "--precision", "fp64"], "invalid choice")],
        "evaluate.py": [(["--clean", missing, "--enhanced", "demo/vbdmd/noisy", "--out", out], "no such folder"),
                        (["--clean", "demo/vbdmd/clean", "--enhanced", missing, "--out", out], "no such folder"),
                        ([*scoring, "--noisy", missing, "--out", out], "no such folder"),
                        ([*scoring, "--out", existing], "a file, not a folder"),
                        ([*scoring, "--out", out, "--max-length-diff", "-1"], "at least 0"),
                        (["--compare", missing, missing], "not a scores.csv")],
        "listen.py": [([*scoring, "--names", "x", "--out", out, "--rows", "-1"], "at least 0"),
                      ([*scoring, "--names", "x", "--out", existing], "a file, not a folder"),
                      (["--clean", "demo/vbdmd/clean", "--enhanced", missing, "--out", out], "no such folder"),
                      ([*scoring, "--names", "x"], "--out is required")],
        "speed.py": [(["--steps", "0"], "at least 1"), (["--repeats", "0"], "at least 1"),
                     (["--warmup", "-1"], "at least 0"), (["--batch", "1", "0"], "at least 1"),
                     (["--seconds", "-1"], "at least 0"), (["--threads", "-1"], "at least 0"),
                     (["--peak-tflops", "-1"], "at least 0"), (["--calls-only", "--frames", "100"], "multiple of 64"),
                     (["--out", existing], "a file, not a folder"),
                     (["--input", missing], "no such file"), (["--checkpoint-student", missing], "no such checkpoint"),
                     (["--device", "gpu"], "expected auto")],
        "figures.py": [(["sampling", "--seed", "-1", "--out", tmp / "f.png"], "at least 0"),
                       (["sampling", "--seed", 2 ** 64, "--out", tmp / "f.png"], "at most"),
                       (["sampling", "--max-seconds", "0", "--out", tmp / "f.png"], "positive"),
                       (["training-step", "--num-frames", "100", "--out", tmp / "f.png"], "multiple of 64"),
                       (["sampling", "--out", tmp / "folder.png"], "a folder"),
                       (["sampling", "--out", existing], "a PNG file"),
                       (["sampling", "--out", tmp / "f.png", "--noisy", missing], "no such file"),
                       (["sampling", "--out", tmp / "f.png", "--teacher", missing], "no such checkpoint"),
                       (["curves", "--logs", missing, "--out", tmp / "f.png"], "not a readable training log"),
                       (["curves", "--smooth", "0", "--logs", missing, "--out", tmp / "f.png"], "at least 1"),
                       (["spectrograms", "--out", tmp / "f.png"], "needs --enhanced")],
    }


@pytest.mark.parametrize("script", MAINS)
def test_a_bad_value_ends_in_one_error_line(script, tmp_path, capsys):
    """Each bad value ends the script before any work, with a non-zero exit status and one 'error:' line that says
    what is wrong (argparse's own, or the script's); no traceback (any other exception would fail this test)."""
    for argv, words in bad_values(tmp_path)[script]:
        with pytest.raises(SystemExit) as e:
            MAINS[script]([str(a) for a in argv])
        code = e.value.code
        lines = capsys.readouterr().err.splitlines() + ([code] if isinstance(code, str) else [])
        errors = [line for line in lines if "error:" in line]
        assert code not in (0, None) and len(errors) == 1 and words in errors[0], (script, argv, code, lines)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["existing.wav", "folder.png"]  # nothing written
    assert (tmp_path / "existing.wav").read_bytes() == b"a user's file"


def test_good_values_pass_as_they_are_typed(tmp_path):
    """The checks refuse only bad values: numbers in range, existing files and folders ("a,b" for several), a new
    output folder all parse into the config as given."""
    argv = ["--steps", "3", "--lr", "0.001", "--ema-decay", "1", "--num-frames", "128", "--valid-files", "0",
            "--speech", "demo/speech_train,demo/speech_test", "--valid", "demo/vbdmd", "--out", str(tmp_path / "run"),
            "--warm-start", "checkpoints/teacher-small.pt", "--teacher", "checkpoints/teacher-small.pt"]
    cfg = teacher.parse_config(distill.Config, argv)
    assert (cfg.steps, cfg.lr, cfg.ema_decay, cfg.num_frames, cfg.valid_files) == (3, 0.001, 1.0, 128, 0)
    assert (cfg.speech, cfg.valid) == ("demo/speech_train,demo/speech_test", "demo/vbdmd")
    assert cfg.out == str(tmp_path / "run")
    assert cfg.warm_start == cfg.teacher == "checkpoints/teacher-small.pt" and cfg.data == ""


def run_command(argv, words):
    """python argv as a user runs it, from the repository root: one 'error:' line with words in it, a non-zero exit
    status, no traceback."""
    r = subprocess.run([sys.executable, *map(str, argv)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(errors) == 1 and words in errors[0], r.stderr


@pytest.mark.parametrize("script", MAINS)
def test_a_bad_value_on_the_command_line_ends_in_one_error_line(script, tmp_path):
    """The script's first bad value of bad_values, through `python SCRIPT.py` (about 3 s each: torch is imported)."""
    argv, words = bad_values(tmp_path)[script][0]
    run_command([script, *argv], words)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["existing.wav", "folder.png"]  # nothing written


@pytest.mark.parametrize("argv, words", [(["enhance.py", NOISY, "-o", "EXISTING"], "a file, not a folder"),
                                         (["distill.py", "--batch-size", "0", "--steps", "1"], "at least 1")])
def test_the_commands_of_issue_21_end_in_one_error_line(argv, words, tmp_path):
    """The two commands of the bad-input battery that ended in a traceback, run as they were."""
    existing = tmp_path / "EXISTING.wav"
    existing.write_bytes(b"a user's file")
    run_command([existing if a == "EXISTING" else a for a in argv], words)
    assert existing.read_bytes() == b"a user's file"
