"""RESULTS.md's paired comparisons of the many-voices students (section 7.4) against the per-file scores they were
computed from (results/manyvoices/scores/SET/MODEL/scores.csv, committed): a table edited by hand, or scores
replaced without the table, fails here."""
from pathlib import Path

import pytest

import evaluate

ROOT = Path(__file__).resolve().parents[1]
SCORES = ROOT / "results" / "manyvoices" / "scores"
MODELS = {  # the comparison's name in RESULTS.md -> (model A, model B), folders under SCORES/SET/
    "medium - noisy": ("rosecd-medium", "noisy"),
    "medium - small": ("rosecd-medium", "rosecd-small"),
    "randomized - deterministic, with aux": ("rosecd-medium", "det-aux"),
    "randomized - deterministic, no aux": ("rand-noaux", "det-noaux"),
}
SETS = {"libri_test": "libri", "p287": "p287", "out of domain": "ood"}
COLUMNS = {"PESQ": ("pesq", 3), "ESTOI": ("estoi", 3), "SI-SDR [dB]": ("si_sdr", 2)}  # header -> metric, decimals


def section_rows():
    """(header cells, row cells) of every comparison row of RESULTS.md section 7.4's tables."""
    text = (ROOT / "RESULTS.md").read_text()
    section = text[text.index("### 7.4"):text.index("\n## 8.")]
    rows, header = [], None
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells and cells[0] == "comparison":
            header = cells
        elif cells and header and cells[0] in MODELS:
            rows.append((header, cells))
        elif not cells:
            header = None
    return rows


def test_section_7_4_holds_every_comparison():
    named = {(cells[0], cells[1]) for _, cells in section_rows()}
    assert named == {(m, s) for m in MODELS for s in SETS}


@pytest.mark.parametrize("header, cells", section_rows())
def test_each_comparison_row_is_what_the_committed_scores_give(header, cells):
    a, b = MODELS[cells[0]]
    folder = SCORES / SETS[cells[1]]
    diff = evaluate.paired_differences(evaluate.read_scores(folder / a), evaluate.read_scores(folder / b))
    for title, cell in zip(header[2:], cells[2:]):
        metric, decimals = COLUMNS[title]
        d = diff[metric]
        expected = f"{d['mean']:+.{decimals}f} ± {d['sem']:.{decimals}f} ({d['wins']}/{d['n']})"
        assert cell == expected, f"{cells[0]}, {cells[1]}, {title}"

