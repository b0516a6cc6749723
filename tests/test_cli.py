"""The command lines explain themselves: every option has a meaning and a default in --help,
and every option with a fixed set of values refuses any other at once, listing the set."""
import argparse
import dataclasses

import pytest

import distill
import enhance
import evaluate
import figures
import listen
import speed
import teacher

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
              "listen.py": {"--pesq-mode": {"wb", "nb"}, "--sir-sar": {"sgmse", "projection"}, "--sort": set(listen.LABELS)},
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
def test_options_with_a_fixed_set_have_choices(script):
    found = options(PARSERS[script]())
    for name, values in FIXED_SETS[script].items():
        assert set(found[name].choices) == values, f"{script} {name}"


def test_a_wrong_trajectory_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        distill.main(["--trajectory", "sideways"])
    message = capsys.readouterr().err
    assert e.value.code == 2 and "--trajectory" in message and "randomized" in message and "deterministic" in message
