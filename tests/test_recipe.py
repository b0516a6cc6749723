"""README's "Reproduce the paper" recipe, run line by line on the data that is here (issue 14), so that it
cannot rot: a VoiceBank-DEMAND release layout built from the six bundled p287 pairs, and the small
official-format checkpoint of tests/official as the published teacher M3. Each line runs exactly as README
writes it, with options appended (argparse keeps the last value) that make it a few updates long on a CPU."""
import csv
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "demo" / "vbdmd"
M3 = ROOT / "tests" / "official" / "ncsnpp_v2_nf8.ckpt"
# appended to each script's lines: tiny, CPU, float32, eager; the resumed run goes on from 2 to 3 updates
DRY = {"distill.py": "--steps 2 --batch-size 2 --grad-accum 1 --num-frames 64 --valid-files 1 --valid-steps 2 "
                     "--save-every 1 --device cpu --no-bf16 --no-compile",
       "teacher.py": "", "enhance.py": "--device cpu", "evaluate.py": ""}
RESUMED = "--steps 3"


def recipe():
    """The bash block of README's "Reproduce the paper" section: (variables {name: value}, command lines)."""
    section = (ROOT / "README.md").read_text().split("## Reproduce the paper", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    variables, commands = {}, []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if re.fullmatch(r"[A-Z0-9_]+=\S+", line):
            name, value = line.split("=", 1)
            variables[name] = value
        elif line:
            commands.append(line)
    return variables, commands


def release_layout(base):
    """The release's four folders from the p287 pairs: p287_001 (the shortest, 2 s) as test speaker p232,
    p287_002 in the training folders as itself (the loaders take speaker p287 out as the validation split),
    the other four as training speaker p239."""
    names = sorted(p.name for p in (PAIRS / "clean").glob("*.wav"))
    place = {n: ("trainset_28spk_wav", n.replace("p287", "p239")) for n in names[2:]}
    place[names[1]] = ("trainset_28spk_wav", names[1])
    place[names[0]] = ("testset_wav", names[0].replace("p287", "p232"))
    for name, (folder, new) in place.items():
        for kind in ("clean", "noisy"):
            (base / f"{kind}_{folder}").mkdir(parents=True, exist_ok=True)
            shutil.copy(PAIRS / kind / name, base / f"{kind}_{folder}" / new)


def test_the_recipe_has_the_steps_its_text_describes():
    variables, commands = recipe()
    assert set(variables) == {"VB", "M3"}
    scripts = [shlex.split(c)[1] for c in commands]
    assert scripts == ["distill.py", "distill.py", "teacher.py", "enhance.py", "enhance.py", "evaluate.py"]
    assert commands[1] == commands[0].replace(" --max-minutes 300", "")  # the same run continued: no --resume needed
    assert "--steps 41300" in commands[0]  # the published schedule: 100 epochs of 11,572 pairs at 14 x 2


def test_the_recipe_runs_end_to_end_on_the_bundled_pairs(tmp_path):
    variables, commands = recipe()
    vb = tmp_path / "VoiceBank-DEMAND"
    release_layout(vb)
    env = {"VB": str(vb), "M3": str(M3)}
    for i, command in enumerate(commands):
        words = shlex.split(command)
        assert words[0] == "python" and words[1] in DRY, command
        words = [sys.executable, str(ROOT / words[1])] + [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], w)
                                                        for w in words[2:]]
        words += shlex.split(DRY[Path(words[1]).name]) + (shlex.split(RESUMED) if i == 1 else [])
        run = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{command}\n{run.stderr[-3000:]}"

    log = (tmp_path / "runs" / "rosecd" / "log.jsonl").read_text()
    assert '"step": 3' in log  # the resumed run went on from its checkpoint at update 2
    assert (tmp_path / "runs" / "rosecd.pt").is_file()
    for model in ("m3", "rosecd"):
        enhanced = sorted(p.name for p in (tmp_path / "runs" / "test" / model).iterdir())
        assert enhanced == ["p232_001.wav"]
        rows = list(csv.DictReader(open(tmp_path / "runs" / "scores" / model / "scores.csv")))
        assert [r["file"] for r in rows] == ["p232_001"] and all(float(r["pesq"]) > 1 for r in rows)
