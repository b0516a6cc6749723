"""RESULTS.md's paired comparisons of the many-voices students and their teacher (sections 7.4 to 7.17) against
the per-file scores they were computed from (results/manyvoices/scores/SET/MODEL/scores.csv, committed), the GPU
validation tables of 7.15 to 7.17 against the committed logs (results/manyvoices/logs/*.jsonl), section 8's DNSMOS
comparisons against results/dns3_real/NAME/scores.csv, and section 1.2's profiled rates against the profiles
(results/profile/*.json): a table edited by hand, or scores replaced without the table, fails here."""
import csv
import functools
import json
from pathlib import Path

import pytest

import evaluate
import figures

ROOT = Path(__file__).resolve().parents[1]
SCORES = ROOT / "results" / "manyvoices" / "scores"
MODELS = {  # the comparison's name in RESULTS.md -> (model A, model B), folders under SCORES/SET/
    "medium - noisy": ("rosecd-medium-5450", "noisy"),
    "medium - small": ("rosecd-medium-5450", "rosecd-small"),
    "randomized - deterministic, with aux": ("rosecd-medium-5450", "det-aux"),
    "randomized - deterministic, no aux": ("rand-noaux", "det-noaux"),
    "low SNR - medium": ("rosecd-lowsnr", "rosecd-medium-5450"),
    "low SNR - noisy": ("rosecd-lowsnr", "noisy"),
}
SETS = {"libri_test": "libri", "p287": "p287", "out of domain": "ood"}
SNR_SETS = {"libri_test at -10 to -5 dB": "libri_low", "out of domain at 0 to 10 dB": "ood_high"}  # section 7.5
TEACHER = {"teacher - noisy": ("teacher-medium", "noisy"),
           "teacher - medium": ("teacher-medium", "rosecd-medium-5450")}
SNR_ROWS = ({(m, s) for m in ("medium - noisy", "low SNR - medium") for s in SNR_SETS}
            | {(m, "libri_test at -10 to -5 dB") for m in TEACHER})  # the teacher on four of its files
FOUR = ("libri_test", "libri_test at -10 to -5 dB", "out of domain at 0 to 10 dB", "out of domain")
FIVE, LOW_AND_0_10, LOW_AND_OOD = FOUR + ("p287",), FOUR[:2], (FOUR[1], FOUR[3])
# section 7.6, the teacher's two samplers and its low-SNR stint: comparison -> (model A, model B, the sets of its rows)
SAMPLERS = {
    "teacher PC - noisy": ("teacher-medium-pc-gpu", "noisy", FOUR),
    "teacher PC - medium": ("teacher-medium-pc-gpu", "rosecd-medium-5450", FOUR),
    "teacher ODE end - medium": ("teacher-medium-ode-end-gpu", "rosecd-medium-5450", FOUR),
    "teacher PC - teacher ODE end": ("teacher-medium-pc-gpu", "teacher-medium-ode-end-gpu", FOUR),
    # the ODE as enhance.py --sampler ode ends it, on the GPU on every set, and against its CPU run on four files
    "teacher ODE - noisy": ("teacher-medium-ode-gpu", "noisy", FIVE),
    "teacher ODE - medium": ("teacher-medium-ode-gpu", "rosecd-medium-5450", FIVE),
    "teacher ODE - teacher ODE end": ("teacher-medium-ode-gpu", "teacher-medium-ode-end-gpu", FOUR),
    "teacher PC - teacher ODE": ("teacher-medium-pc-gpu", "teacher-medium-ode-gpu", FOUR),
    "teacher ODE, GPU - CPU": ("teacher-medium-ode-gpu", "teacher-medium-ode-cpu", LOW_AND_0_10),
    "low-SNR teacher - teacher, PC": ("teacher-lowsnr-pc-gpu", "teacher-medium-pc-gpu", LOW_AND_OOD),
    "low-SNR teacher - teacher, ODE end": ("teacher-lowsnr-ode-end-gpu", "teacher-medium-ode-end-gpu", LOW_AND_OOD),
    "low-SNR teacher PC - noisy": ("teacher-lowsnr-pc-gpu", "noisy", LOW_AND_OOD),
}
SAMPLER_ROWS = {(m, s) for m, (_, _, sets) in SAMPLERS.items() for s in sets}
THREE = ("libri_test", "p287", "out of domain")  # the sets the deterministic + aux export of 5,450 was scored on
CONTINUED = {
    # section 7.8, ROSE-CD continued from its export of update 5,450 to 13,700
    "13,700 - 5,450": ("rosecd-medium-13700", "rosecd-medium-5450", FIVE),
    "13,700 - noisy": ("rosecd-medium-13700", "noisy", FIVE),
    "teacher PC - 13,700": ("teacher-medium-pc-gpu", "rosecd-medium-13700", FOUR),
    "teacher ODE - 13,700": ("teacher-medium-ode-gpu", "rosecd-medium-13700", FIVE),
    # section 7.9, the deterministic + aux student continued from its export of update 5,450 to 12,550
    "randomized 13,700 - deterministic 12,550, with aux": ("rosecd-medium-13700", "det-aux-12550", FIVE),
    "deterministic + aux, 12,550 - 5,450": ("det-aux-12550", "det-aux", THREE),
    "deterministic + aux, 12,550 - noisy": ("det-aux-12550", "noisy", FIVE),
    # section 7.10, the ROSE-CD student resumed from its full state of 13,700 to 22,450 updates (not bundled)
    "22,450 - 13,700": ("rosecd-medium-22450", "rosecd-medium-13700", FIVE),
    "22,450 - noisy": ("rosecd-medium-22450", "noisy", FIVE),
    "teacher PC - 22,450": ("teacher-medium-pc-gpu", "rosecd-medium-22450", FOUR),
    # section 7.11, resumed again from its full state of 22,450 to 25,600 updates (not bundled)
    "25,600 - 22,450": ("rosecd-medium-25600", "rosecd-medium-22450", FIVE),
    "25,600 - 13,700": ("rosecd-medium-25600", "rosecd-medium-13700", FIVE),
    "25,600 - noisy": ("rosecd-medium-25600", "noisy", FIVE),
    "teacher PC - 25,600": ("teacher-medium-pc-gpu", "rosecd-medium-25600", FOUR),
    # section 7.12, the bundled student's bf16 outputs on an AMX CPU, and a small student under the medium teacher
    "bf16 - float32, medium 13,700": ("rosecd-medium-13700-bf16", "rosecd-medium-13700", THREE),
    "small 5,950 - noisy": ("rosecd-small-mv-5950", "noisy", FIVE),
    "small 5,950 - one-voice small": ("rosecd-small-mv-5950", "rosecd-small", THREE),
    "medium 13,700 - small 5,950": ("rosecd-medium-13700", "rosecd-small-mv-5950", FIVE),
    "teacher PC - small 5,950": ("teacher-medium-pc-gpu", "rosecd-small-mv-5950", FOUR),
    "bf16 - float32, small 5,950": ("rosecd-small-mv-5950-bf16", "rosecd-small-mv-5950", ("libri_test", "p287")),
    # section 7.13, the small student resumed from its full state of 5,950 to 14,150 updates (bundled until 7.14)
    "small 14,150 - 5,950": ("rosecd-small-mv-14150", "rosecd-small-mv-5950", FIVE),
    "small 14,150 - noisy": ("rosecd-small-mv-14150", "noisy", FIVE),
    "small 14,150 - one-voice small": ("rosecd-small-mv-14150", "rosecd-small", THREE),
    "medium 13,700 - small 14,150": ("rosecd-medium-13700", "rosecd-small-mv-14150", FIVE),
    "teacher PC - small 14,150": ("teacher-medium-pc-gpu", "rosecd-small-mv-14150", FOUR),
    # section 7.14, the small student warm-started from its export of 14,150 (the state was lost) to 25,250 (bundled)
    "small 25,250 - 14,150": ("rosecd-small-mv-25250", "rosecd-small-mv-14150", FIVE),
    "small 25,250 - noisy": ("rosecd-small-mv-25250", "noisy", FIVE),
    "small 25,250 - one-voice small": ("rosecd-small-mv-25250", "rosecd-small", THREE),
    "medium 13,700 - small 25,250": ("rosecd-medium-13700", "rosecd-small-mv-25250", FIVE),
    "teacher PC - small 25,250": ("teacher-medium-pc-gpu", "rosecd-small-mv-25250", FOUR),
    # section 7.15, resumed (full state) and warm-started (export) from 25,250 side by side; the warm-started bundled
    "warm-started 33,300 - resumed 32,700": ("rosecd-small-warm-33300", "rosecd-small-mv-32700", FIVE),
    "resumed 32,700 - 25,250": ("rosecd-small-mv-32700", "rosecd-small-mv-25250", FIVE),
    "warm-started 33,300 - 25,250": ("rosecd-small-warm-33300", "rosecd-small-mv-25250", FIVE),
    "warm-started 33,300 - noisy": ("rosecd-small-warm-33300", "noisy", FIVE),
    "medium 13,700 - warm-started 33,300": ("rosecd-medium-13700", "rosecd-small-warm-33300", FIVE),
    "teacher PC - warm-started 33,300": ("teacher-medium-pc-gpu", "rosecd-small-warm-33300", FOUR),
    # section 7.17, warm-started from the export of 33,300 again, at a quarter of the learning rate (not bundled)
    "lr 5e-5 41,750 - 33,300": ("rosecd-small-anneal-41750", "rosecd-small-warm-33300", FIVE),
    "lr 5e-5 41,750 - noisy": ("rosecd-small-anneal-41750", "noisy", FIVE),
    "teacher PC - lr 5e-5 41,750": ("teacher-medium-pc-gpu", "rosecd-small-anneal-41750", FOUR),
}
CONTINUED_ROWS = {(m, s) for m, (_, _, sets) in CONTINUED.items() for s in sets}
# every name a row of 7.4 to 7.17 may hold
ALL_MODELS = {**MODELS, **TEACHER, **{m: (a, b) for m, (a, b, _) in {**SAMPLERS, **CONTINUED}.items()}}
ALL_SETS = {**SETS, **SNR_SETS}
COLUMNS = {"PESQ": ("pesq", 3), "ESTOI": ("estoi", 3), "SI-SDR [dB]": ("si_sdr", 2)}  # header -> metric, decimals


def table_cells(line, unbold=False):
    """The cells of one row of a Markdown table, stripped (and of their ** marks, with unbold)."""
    return [c.strip().strip("*") if unbold else c.strip() for c in line.strip().strip("|").split("|")]


def section_rows():
    """(header cells, row cells) of every comparison row of RESULTS.md section 7's tables from 7.4 on."""
    text = (ROOT / "RESULTS.md").read_text()
    section = text[text.index("### 7.4"):text.index("\n## 8.")]
    rows, header = [], None
    for line in section.splitlines():
        cells = table_cells(line) if line.startswith("|") else None
        if cells and cells[0] == "comparison":
            header = cells
        elif cells and header and cells[0] in ALL_MODELS:
            rows.append((header, cells))
        elif not cells:
            header = None
    return rows


def test_section_7_holds_every_comparison():
    named = [(cells[0], cells[1]) for _, cells in section_rows()]
    assert len(named) == len(set(named))
    assert set(named) == {(m, s) for m in MODELS for s in SETS} | SNR_ROWS | SAMPLER_ROWS | CONTINUED_ROWS


@pytest.mark.parametrize("header, cells", section_rows())
def test_each_comparison_row_is_what_the_committed_scores_give(header, cells):
    a, b = ALL_MODELS[cells[0]]
    folder = SCORES / ALL_SETS[cells[1]]
    diff = evaluate.paired_differences(evaluate.read_scores(folder / a), evaluate.read_scores(folder / b))
    for title, cell in zip(header[2:], cells[2:]):
        metric, decimals = COLUMNS[title]
        d = diff[metric]
        expected = f"{d['mean']:+.{decimals}f} ± {d['sem']:.{decimals}f} ({d['wins']}/{d['n']})"
        assert cell == expected, f"{cells[0]}, {cells[1]}, {title}"


PROFILES = ROOT / "results" / "profile"
# RESULTS.md 1.2's tables of the distillation step: (preset, row) -> (batch, CUDA graphs, the profile speed.py wrote)
PROFILE_ROWS = {
    ("reference", "batch 14, `--compile --cuda-graphs` (above)"): (14, True, "distill-reference-compiled-graphs.json"),
    ("reference", "batch 14, `--compile --channels-last`"):
        (14, False, "distill-reference-compiled-channels-last.json"),
    ("reference", "batch 28, `--compile --cuda-graphs`"): (28, True, "distill-reference-compiled-graphs-b28.json"),
    ("reference", "batch 14, `--compile --cuda-graphs`, again"):
        (14, True, "distill-reference-compiled-graphs-again.json"),
    ("medium", "batch 16, `--compile`"): (16, False, "distill-medium-compiled.json"),
    ("medium", "batch 16, `--compile --cuda-graphs`"): (16, True, "distill-medium-compiled-graphs.json"),
    ("medium", "batch 32, `--compile --cuda-graphs`"): (32, True, "distill-medium-compiled-graphs-b32.json"),
}


def test_the_profiled_rates_are_what_the_committed_profiles_say():
    text = (ROOT / "RESULTS.md").read_text()
    rows, preset = {}, None
    for line in text[text.index("### 1.2"):text.index("## 2.")].splitlines():
        cells = table_cells(line, unbold=True)
        if cells[0].endswith("distillation, this tree"):  # a table's header names the preset
            preset = cells[0].split()[0]
        elif (preset, cells[0]) in PROFILE_ROWS:
            rows[preset, cells[0]] = cells[1:]
    assert rows.keys() == PROFILE_ROWS.keys()
    for (preset, label), (ms, rate, busy, peak, first) in rows.items():
        batch, graphs, name = PROFILE_ROWS[preset, label]
        p = json.loads((PROFILES / name).read_text())[0]
        assert p["kind"] == "profile" and p["step"] == "distill" and p["compiled"], label
        assert (p["model"].split()[1], p["batch"], p["cuda_graph"]) == (preset, batch, graphs), label
        assert (ms, rate, busy) == (f"{p['time_per_update_ms']:.1f}", f"{p['crops_per_s']:.1f}",
                                    f"{p['gpu_busy_percent']:.0f} %"), label
        assert first == f"{p['first_update_s']:.0f} s", label
        assert peak == "not recorded" or peak == f"{p['peak_memory_gib']:.1f} GiB", label


def test_the_noise_type_table_is_what_the_scores_and_mixtures_give():
    """RESULTS.md 7.7: the mean gains of each noise type of the held-out LibriSpeech sets, recomputed from the
    per-file scores and the sets' mixtures.csv (data.py testset)."""
    text = (ROOT / "RESULTS.md").read_text()
    section = text[text.index("### 7.7"):text.index("### 7.8")]
    rows = [table_cells(line) for line in section.splitlines() if line.startswith("| libri_test")]
    assert len(rows) == 8
    for label, noise, files, snr, noisy_pesq, *gains in rows:
        folder = SCORES / ALL_SETS[label]
        with open(folder / "mixtures.csv", newline="") as f:
            mixtures = [row for row in csv.DictReader(f) if row["noise"] == noise]
        names, snrs = [row["file"] for row in mixtures], [float(row["snr_db"]) for row in mixtures]
        noisy = evaluate.read_scores(folder / "noisy")
        assert files == str(len(names)) and snr == f"{sum(snrs) / len(snrs):.1f}"
        assert noisy_pesq == f"{sum(noisy[n]['pesq'] for n in names) / len(names):.2f}"
        assert len(gains) == 4
        models = ("teacher-medium-pc-gpu", "rosecd-medium-5450", "teacher-medium-ode-gpu", "rosecd-medium-13700")
        for model, cell in zip(models, gains):
            scores = evaluate.read_scores(folder / model)
            gain = {m: sum(scores[n][m] - noisy[n][m] for n in names) / len(names) for m in ("pesq", "si_sdr")}
            assert cell == f"{gain['pesq']:+.2f} / {gain['si_sdr']:+.1f}", (label, noise, model)


DNS = ROOT / "results" / "dns3_real"
# RESULTS.md 8's paired DNSMOS comparisons: row -> (folder A, folder B) under results/dns3_real/
DNS_ROWS = {
    "student - noisy": ("student", "noisy"),
    "DeepFilterNet3 - noisy": ("deepfilternet3", "noisy"),
    "student - DeepFilterNet3": ("student", "deepfilternet3"),
    "teacher - noisy": ("teacher", "noisy"),
    "student - teacher": ("student", "teacher"),
    "many-voices teacher - noisy": ("teacher_medium", "noisy"),
    "many-voices teacher - DeepFilterNet3": ("teacher_medium", "deepfilternet3"),
    "many-voices teacher - student": ("teacher_medium", "student"),
    "many-voices student 5,450 - noisy": ("student_medium_5450", "noisy"),
    "many-voices student 5,450 - student": ("student_medium_5450", "student"),
    "many-voices student 5,450 - DeepFilterNet3": ("student_medium_5450", "deepfilternet3"),
    "many-voices student 5,450 - many-voices teacher": ("student_medium_5450", "teacher_medium"),
    "many-voices student 13,700 - noisy": ("student_medium", "noisy"),
    "many-voices student 13,700 - 5,450": ("student_medium", "student_medium_5450"),
    "many-voices student 13,700 - DeepFilterNet3": ("student_medium", "deepfilternet3"),
    "many-voices student 13,700 - many-voices teacher": ("student_medium", "teacher_medium"),
    "many-voices small student 14,150 - noisy": ("student_small_mv", "noisy"),
    "many-voices small student 14,150 - student": ("student_small_mv", "student"),
    "many-voices small student 14,150 - many-voices student 13,700": ("student_small_mv", "student_medium"),
    "many-voices small student 14,150 - DeepFilterNet3": ("student_small_mv", "deepfilternet3"),
    "many-voices small student 25,250 - noisy": ("student_small_mv_25250", "noisy"),
    "many-voices small student 25,250 - 14,150": ("student_small_mv_25250", "student_small_mv"),
    "many-voices small student 25,250 - many-voices student 13,700": ("student_small_mv_25250", "student_medium"),
    "many-voices small student 25,250 - DeepFilterNet3": ("student_small_mv_25250", "deepfilternet3"),
    "many-voices small student 33,300 - noisy": ("student_small_mv_33300", "noisy"),
    "many-voices small student 33,300 - 25,250": ("student_small_mv_33300", "student_small_mv_25250"),
    "many-voices small student 33,300 - many-voices student 13,700": ("student_small_mv_33300", "student_medium"),
    "many-voices small student 33,300 - DeepFilterNet3": ("student_small_mv_33300", "deepfilternet3"),
}


def test_the_dnsmos_comparisons_are_what_the_committed_scores_give():
    """RESULTS.md 8: every paired DNSMOS row recomputed from results/dns3_real/NAME/scores.csv."""
    text = (ROOT / "RESULTS.md").read_text()
    start = text.index("\n## 8.")
    end = text.find("\n## ", start + 1)  # the next section, if any
    section = text[start:end if end > 0 else None]
    rows = {}
    for line in section.splitlines():
        cells = table_cells(line, unbold=True)
        if line.startswith("|") and cells[0] in DNS_ROWS:
            rows[cells[0]] = cells[1:]
    assert rows.keys() == DNS_ROWS.keys()
    for name, cells in rows.items():
        a, b = DNS_ROWS[name]
        diff = evaluate.paired_differences(evaluate.read_scores(DNS / a), evaluate.read_scores(DNS / b))
        expected = [f"{d['mean']:+.3f} ± {d['sem']:.3f} ({d['wins']}/{d['n']})"
                    for d in (diff[m] for m in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"))]
        assert [c.replace("**", "") for c in cells] == expected, name


LOGS = ROOT / "results" / "manyvoices" / "logs"
# the GPU validation tables of 7.15 to 7.17: the run's name in a row -> (the committed log its numbers come from,
# the update its stint started at: the table holds every validation after it)
VALIDATION_LOGS = {"resumed": ("rosecd-small-mv-resumed-a20.jsonl", 25250),
                   "warm-started": ("rosecd-small-mv.jsonl", 25250),
                   "warm-started from 33,300": ("rosecd-small-mv-lost-a21.jsonl", 33300),
                   "warm-started at lr 5e-5": ("rosecd-small-mv-anneal-a22.jsonl", 33300)}


def validation_rows():
    """The cells of every row of the validation tables of RESULTS.md from 7.15 on (run, update, GPU-min, two sets)."""
    text = (ROOT / "RESULTS.md").read_text()
    rows = []
    for line in text[text.index("### 7.15"):text.index("\n## 8.")].splitlines():
        cells = table_cells(line) if line.startswith("|") else None
        if cells and cells[0] in VALIDATION_LOGS:
            rows.append(cells)
    return rows


@functools.lru_cache(maxsize=None)  # each parametrized row asks again: read each log once
def validations(log):
    return [e for e in figures.read_log(LOGS / log) if e["event"] == "valid"]


def test_the_validation_tables_from_7_15_on_hold_every_logged_validation():
    rows = validation_rows()
    for run, (log, start) in VALIDATION_LOGS.items():
        logged = {e["step"] for e in validations(log) if e["step"] > start}
        assert {int(c[1].replace(",", "")) for c in rows if c[0] == run} == logged, run


@pytest.mark.parametrize("cells", validation_rows())
def test_each_validation_row_is_what_its_log_says(cells):
    log, _ = VALIDATION_LOGS[cells[0]]
    step = int(cells[1].replace(",", ""))
    entry = [e for e in validations(log) if e["step"] == step][-1]  # where stints overlap, the newest
    assert cells[2] == f"{entry['gpu_minutes']:.1f}"
    for cell, prefix in zip(cells[3:], ("libri_test", "vbdmd")):
        scores = [f"{entry[f'{prefix}/student_{m}']:.{d}f}" for m, d in (("pesq", 3), ("estoi", 3), ("si_sdr", 2))]
        assert cell == " / ".join(scores), f"{cells[0]} {cells[1]} {prefix}"
