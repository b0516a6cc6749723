"""Evaluation: metrics against direct calls and closed forms, folder matching, bad input (a file's spectrograms:
tests/test_figures.py; the speed benchmark: tests/test_speed.py)."""
import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import evaluate
from data import DEMO, load_audio

ROOT = Path(__file__).resolve().parents[1]
CLEAN, NOISY = DEMO / "vbdmd" / "clean", DEMO / "vbdmd" / "noisy"


def read_csv(path):
    with open(path) as f:
        return {r["file"]: {k: float(v) for k, v in r.items() if k != "file"} for r in csv.DictReader(f)}


def run_main(*args):
    """main() in this process; returns the error message it exits with, or None."""
    try:
        evaluate.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return None


# ----------------------------------------------------------------------------- metrics

def test_per_file_pesq_and_estoi_equal_direct_calls_on_voicebank_demand(tmp_path):
    from pesq import pesq
    from pystoi import stoi
    assert run_main("--clean", CLEAN, "--enhanced", NOISY, "--noisy", NOISY, "--out", tmp_path) is None
    rows = read_csv(tmp_path / "scores.csv")
    assert sorted(rows) == [f"p287_00{i}" for i in range(1, 7)]
    for name, row in rows.items():
        clean, noisy = load_audio(CLEAN / f"{name}.wav"), load_audio(NOISY / f"{name}.wav")
        assert row["pesq"] == pesq(16000, clean, noisy, "wb")
        # pystoi itself differs from call to call in the last digits (~1e-15)
        assert row["estoi"] == pytest.approx(stoi(clean, noisy, 16000, extended=True), rel=1e-12, abs=0)
        assert row["si_sdr"] == pytest.approx(evaluate.si_sdr(clean, noisy), abs=1e-9)
        assert set(row) == {"pesq", "estoi", "si_sdr", "si_sir", "si_sar"}
    summary = json.loads((tmp_path / "scores.json").read_text())
    assert summary["files"] == 6 and summary["skipped"] == []
    for key, s in summary["metrics"].items():
        values = [r[key] for r in rows.values()]
        assert s["mean"] == pytest.approx(np.mean(values)) and s["std"] == pytest.approx(np.std(values)) and s["n"] == 6
    assert "| pesq | 1.413 |" in (tmp_path / "scores.md").read_text()  # noisy VoiceBank-DEMAND p287: PESQ ~1.4
    assert not list(tmp_path.glob("*.tmp"))


def test_narrow_band_pesq_is_its_own_column(tmp_path):
    from pesq import pesq
    assert run_main("--clean", CLEAN, "--enhanced", NOISY, "--out", tmp_path, "--pesq-mode", "nb") is None
    row = read_csv(tmp_path / "scores.csv")["p287_001"]
    assert "pesq" not in row and "si_sir" not in row
    assert row["pesq_nb"] == pesq(16000, load_audio(CLEAN / "p287_001.wav"), load_audio(NOISY / "p287_001.wav"), "nb")


def test_a_file_scored_against_itself_gets_pesq_4_64_and_estoi_1():
    clean = load_audio(CLEAN / "p287_002.wav")
    s = evaluate.score(clean, clean)
    assert set(s) == {"pesq", "estoi", "si_sdr"}  # what teacher.py's validation reads
    assert round(s["pesq"], 2) == 4.64
    assert s["estoi"] == pytest.approx(1.0, abs=1e-6)
    assert s["si_sdr"] > 100


def mixture_parts():
    """Real clean speech s and noise n = noisy - clean, and a signal r orthogonal to both, |r| = |s|."""
    s = load_audio(CLEAN / "p287_002.wav").astype(np.float64)
    n = load_audio(NOISY / "p287_002.wav").astype(np.float64) - s
    r = np.random.default_rng(0).standard_normal(len(s))
    basis = np.stack([s, n], axis=1)
    r -= basis @ np.linalg.lstsq(basis, r, rcond=None)[0]
    return s, n, r * np.linalg.norm(s) / np.linalg.norm(r)


@pytest.mark.parametrize("a, b, c", [(1.0, 0.1, 0.05), (0.7, -0.3, 0.2), (2.0, 0.01, 0.01), (1.0, 1.0, 0.5)])
def test_si_sdr_sir_sar_equal_their_closed_forms(a, b, c):
    s, n, r = mixture_parts()
    est = a * s + b * n + c * r
    ss, nn, sn, rr = s @ s, n @ n, s @ n, r @ r
    assert abs(sn) / np.sqrt(ss * nn) > 1e-3  # real speech and noise are not exactly orthogonal
    db = lambda x: 10 * np.log10(x)
    # projection on span{s, n}: e_target = (a + b sn/ss) s, e_interf = b n_perp, e_artif = c r
    target = (a + b * sn / ss) ** 2 * ss
    interf = b ** 2 * (nn - sn ** 2 / ss)  # |n_perp|^2, n_perp = n - (sn/ss) s
    assert evaluate.si_sdr(s, est) == pytest.approx(db(target / (interf + c ** 2 * rr)), abs=0.01)
    sir, sar = evaluate.si_sir_sar(s, est, n, "projection")
    assert sir == pytest.approx(db(target / interf), abs=0.01)
    assert sar == pytest.approx(db(target / (c ** 2 * rr)), abs=0.01)
    assert 10 ** (-evaluate.si_sdr(s, est) / 10) == pytest.approx(10 ** (-sir / 10) + 10 ** (-sar / 10), rel=1e-6)
    # SGMSE+: e_target = alpha_s s, e_interf = alpha_n n, e_artif = est - alpha_s s - alpha_n n
    alpha_s, alpha_n = a + b * sn / ss, b + a * sn / nn
    artif = (b * sn / ss) ** 2 * ss + (a * sn / nn) ** 2 * nn + 2 * (b * sn / ss) * (a * sn / nn) * sn + c ** 2 * rr
    sir, sar = evaluate.si_sir_sar(s, est, n, "sgmse")
    assert sir == pytest.approx(db(alpha_s ** 2 * ss / (alpha_n ** 2 * nn)), abs=0.01)
    assert sar == pytest.approx(db(alpha_s ** 2 * ss / artif), abs=0.01)


def test_both_decompositions_agree_when_speech_and_noise_are_orthogonal():
    s, n, r = mixture_parts()
    n = n - (s @ n) / (s @ s) * s
    est = 0.9 * s + 0.05 * n + 0.02 * r
    np.testing.assert_allclose(evaluate.si_sir_sar(s, est, n, "sgmse"), evaluate.si_sir_sar(s, est, n, "projection"),
                               atol=1e-6)
    with pytest.raises(ValueError, match="unknown"):
        evaluate.si_sir_sar(s, est, n, "bss")


def test_summary_skips_nan_pesq_and_reports_the_count():
    rows = [{"file": "a", "pesq": float("nan"), "si_sdr": 3.0}, {"file": "b", "pesq": 2.0, "si_sdr": 5.0}]
    summary = evaluate.summarise(rows)
    assert summary["pesq"]["mean"] == 2.0 and summary["pesq"]["std"] == 0.0 and summary["pesq"]["n"] == 1
    assert np.isnan(summary["pesq"]["sem"])  # one file: no standard error
    assert summary["si_sdr"] == {"mean": 4.0, "std": 1.0, "sem": 1.0, "n": 2}  # sem = std (ddof 1) / sqrt(n)
    assert evaluate.markdown_table(summary).splitlines()[2] == "| pesq | 2.000 | 0.000 | nan | 1 |"
    assert evaluate.markdown_table(summary).splitlines()[3] == "| si_sdr | 4.000 | 1.000 | 1.000 | 2 |"


# ----------------------------------------------------------------------------- matching and bad input

def mismatch_folders(tmp_path):
    clean, noisy = load_audio(CLEAN / "p287_001.wav")[:24000], load_audio(NOISY / "p287_001.wav")[:24000]
    c, e = tmp_path / "clean", tmp_path / "enhanced"
    (c / "sub").mkdir(parents=True)
    (e / "sub").mkdir(parents=True)
    for name in ("a", "b", "c", "d", "e", "g"):
        sf.write(c / f"{name}.wav", clean, 16000)
    sf.write(c / "s.wav", np.zeros_like(clean), 16000)     # a silent reference
    sf.write(e / "s.wav", noisy, 16000)                    # against it: skipped
    sf.write(c / "sub" / "h.wav", clean, 16000)
    sf.write(e / "a.wav", noisy, 16000)                    # scored
    sf.write(e / "b.wav", noisy[:-1000], 16000)            # 1000 samples short: mismatch
    sf.write(e / "c.wav", noisy[::2], 8000)                # another sample rate: mismatch
    sf.write(e / "d.wav", noisy[:-10], 16000)              # 10 samples short: trimmed and scored
    sf.write(e / "f.wav", noisy, 16000)                    # no clean reference
    (e / "g.wav").write_text("not audio")                  # unreadable
    sf.write(e / "sub" / "h.flac", noisy, 16000)           # matched by relative path, any extension
    return c, e, clean, noisy                              # clean e.wav was never enhanced


def test_mismatched_files_are_reported_one_line_each_and_the_run_goes_on(tmp_path):
    c, e, clean, noisy = mismatch_folders(tmp_path)
    result = subprocess.run([sys.executable, "evaluate.py", "--clean", str(c), "--enhanced", str(e),
                             "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    reasons = {"b": "lengths differ", "c": "sample rates differ", "e": "no enhanced file", "f": "no clean file",
               "g": "not a readable audio file", "s": "the clean reference is silent"}
    lines = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(lines) == len(reasons), result.stderr
    for name, reason in reasons.items():
        assert any(line.startswith(f"skipped {name}: ") and reason in line for line in lines), (name, lines)
    summary = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert {s["file"]: s["reason"] for s in summary["skipped"]}.keys() == reasons.keys()
    rows = read_csv(tmp_path / "out" / "scores.csv")
    assert sorted(rows) == ["a", "d", "sub/h"]
    expected = evaluate.score(clean[:-10], noisy[:-10])
    assert rows["d"] == pytest.approx(expected)
    assert "| pesq |" in result.stdout and "3 files scored, 6 skipped" in result.stdout


def test_bad_input_exits_with_one_error_line(tmp_path):
    result = subprocess.run([sys.executable, "evaluate.py", "--clean", str(tmp_path / "nowhere"), "--enhanced",
                             str(NOISY), "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no such folder" in lines[0], result.stderr


def test_nothing_scorable_and_other_bad_requests_fail_clearly(tmp_path):
    c, e, _, _ = mismatch_folders(tmp_path)
    for name in ("a", "d", "f"):
        (e / f"{name}.wav").unlink()
    (e / "sub" / "h.flac").unlink()
    assert "nothing could be scored" in run_main("--clean", c, "--enhanced", e, "--out", tmp_path / "o")
    assert not (tmp_path / "o" / "scores.csv").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no audio files" in run_main("--clean", CLEAN, "--enhanced", empty)
    assert "--clean is required" in run_main("--enhanced", NOISY, "--out", tmp_path / "o")
    assert "--noisy needs --clean" in run_main("--enhanced", NOISY, "--noisy", NOISY, "--dnsmos", "--out", tmp_path)


def test_results_are_never_overwritten_without_the_option(tmp_path):
    args = ["--clean", CLEAN, "--enhanced", NOISY, "--out", tmp_path]
    assert run_main(*args) is None
    (tmp_path / "scores.csv").write_text("earlier results")
    assert "--overwrite" in run_main(*args)
    assert (tmp_path / "scores.csv").read_text() == "earlier results"
    assert run_main(*args, "--overwrite") is None
    assert len(read_csv(tmp_path / "scores.csv")) == 6


# ----------------------------------------------------------------------------- optional packages

@pytest.mark.parametrize("option, module", [("--composite", "pysepm"), ("--dnsmos", "speechmos")])
def test_a_missing_optional_package_is_named_before_any_work(tmp_path, option, module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules: the import fails, installed or not
    message = run_main("--clean", CLEAN, "--enhanced", NOISY, "--out", tmp_path, option)
    assert message.startswith("error:") and option in message and "pip install" in message
    assert not list(tmp_path.iterdir())


def stand_in_dnsmos(monkeypatch, run):
    """speechmos replaced by a module whose dnsmos.run(x, sr) is run, installed or not."""
    speechmos, model = types.ModuleType("speechmos"), types.ModuleType("speechmos.dnsmos")
    model.run, speechmos.dnsmos = run, model
    monkeypatch.setitem(sys.modules, "speechmos", speechmos)
    monkeypatch.setitem(sys.modules, "speechmos.dnsmos", model)


def test_composite_and_dnsmos_columns_with_stand_in_packages(tmp_path, monkeypatch):
    pysepm = types.ModuleType("pysepm")
    pysepm.composite = lambda ref, est, fs: (3.5, 2.5, 3.0) if fs == 16000 and len(ref) == len(est) else None
    monkeypatch.setitem(sys.modules, "pysepm", pysepm)
    stand_in_dnsmos(monkeypatch, lambda x, sr: {"sig_mos": 3.1, "bak_mos": 3.9, "ovrl_mos": 2.7, "p808_mos": 3.3})
    assert run_main("--clean", CLEAN, "--enhanced", NOISY, "--out", tmp_path / "ref", "--composite", "--dnsmos") is None
    row = read_csv(tmp_path / "ref" / "scores.csv")["p287_003"]
    assert {k: row[k] for k in ("csig", "cbak", "covl", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")} == \
        {"csig": 3.5, "cbak": 2.5, "covl": 3.0, "dnsmos_sig": 3.1, "dnsmos_bak": 3.9, "dnsmos_ovrl": 2.7}
    # recordings without a clean reference: DNSMOS only
    assert run_main("--enhanced", NOISY, "--out", tmp_path / "noref", "--dnsmos") is None
    rows = read_csv(tmp_path / "noref" / "scores.csv")
    assert len(rows) == 6 and set(rows["p287_001"]) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}


def test_dnsmos_scores_real_recordings_with_the_models_inside_speechmos(tmp_path):
    """The real DNSMOS where its optional packages are installed (pip install -r requirements-dnsmos.txt; CI
    does): clean speech gets a far better background and overall score than the same speech in real noise."""
    try:
        evaluate.require("speechmos.dnsmos", "speechmos", "--dnsmos", "-r requirements-dnsmos.txt")
    except evaluate.DataError as e:
        pytest.skip(f"DNSMOS was not run: {e}")
    clean, noisy = load_audio(CLEAN / "p287_004.wav"), load_audio(NOISY / "p287_004.wav")  # noisy: 4.9 s at -0.8 dB
    s_clean, s_noisy = evaluate.dnsmos(clean), evaluate.dnsmos(noisy)
    assert all(1 <= v <= 5 for v in (*s_clean.values(), *s_noisy.values())), (s_clean, s_noisy)
    assert s_clean["dnsmos_bak"] > s_noisy["dnsmos_bak"] + 1 and s_clean["dnsmos_ovrl"] > s_noisy["dnsmos_ovrl"] + 1
    # a recording above full scale is scored as scaled down to fit (speechmos itself refuses it)
    loud = noisy / np.abs(noisy).max()
    assert evaluate.dnsmos(2 * loud) == evaluate.dnsmos(loud)
    # the command line, without a clean reference: the same numbers in the CSV
    (tmp_path / "rec").mkdir()
    sf.write(tmp_path / "rec" / "p287_004.wav", noisy, 16000, subtype="FLOAT")
    assert run_main("--enhanced", tmp_path / "rec", "--dnsmos", "--out", tmp_path / "out") is None
    assert read_csv(tmp_path / "out" / "scores.csv") == {"p287_004": s_noisy}


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--clean", "--enhanced", "--noisy", "--out", "--overwrite", "--pesq-mode", "--sir-sar",
                   "--composite", "--dnsmos", "--max-length-diff", "--names", "--compare"):
        assert option in text
    assert "(default: 16)" in text and "(default: sgmse)" in text
    assert "--benchmark" not in text and "--calls-only" not in text  # the speed benchmark is speed.py
    assert "--curves" not in text  # the training curves are figures.py's: python figures.py curves --logs LOG ...
    assert "--plot" not in text  # a file's spectrograms too: python figures.py spectrograms --enhanced FILE ...
    assert "--page" not in text  # the listening page is listen.py's: python listen.py --clean C --enhanced E ...
    for gone in (["--curves", "log.jsonl"], ["--plot", "p287_001"], ["--page"]):
        with pytest.raises(SystemExit) as e:
            evaluate.main(gone)
        assert e.value.code == 2  # refused by argparse


def test_compare_reports_paired_differences_of_two_scored_folders(tmp_path, capsys):
    rows_a = [{"file": f"f{i}", "pesq": 2.0 + i, "si_sdr": 10.0 - i} for i in range(4)]
    rows_b = [{"file": f"f{i}", "pesq": 1.5 + 2 * i, "si_sdr": 9.0 - i} for i in range(4)]
    rows_b.append({"file": "only_in_b", "pesq": 9.0, "si_sdr": 9.0})  # ignored: A did not score it
    for name, rows in (("a", rows_a), ("b", rows_b)):
        evaluate.write_results(tmp_path / name, rows, evaluate.summarise(rows), [], {})
    diff = evaluate.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b")])
    d = np.array([0.5, -0.5, -1.5, -2.5])  # pesq: A - B = 0.5 - i
    assert diff["pesq"]["mean"] == pytest.approx(d.mean()) and diff["pesq"]["n"] == 4
    assert diff["pesq"]["sem"] == pytest.approx(d.std(ddof=1) / 2) and diff["pesq"]["wins"] == 1
    assert diff["si_sdr"] == {"mean": pytest.approx(1.0), "sem": pytest.approx(0.0), "wins": 4, "n": 4}
    assert "| si_sdr | +1.000 |" in capsys.readouterr().out
    assert "not a scores.csv" in run_main("--compare", tmp_path / "missing", tmp_path / "b")


def test_compare_refuses_a_cut_or_edited_scores_csv_in_one_line(tmp_path):
    rows = [{"file": f"f{i}", "pesq": 2.0 + i, "si_sdr": 10.0 - i} for i in range(3)]
    evaluate.write_results(tmp_path / "a", rows, evaluate.summarise(rows), [], {})
    text = (tmp_path / "a" / "scores.csv").read_text()
    for name, cut in (("short", text.splitlines()[0] + "\nf0,2.0\n"), ("long", text + "f9,1.0,2.0,3.0\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.csv").write_text(cut)
        message = run_main("--compare", tmp_path / "a", tmp_path / name)
        assert message.startswith("error:") and "not a scores.csv" in message and "fields" in message, message
    for name, text in (("empty", ""), ("other", "some notes\none more line\n")):  # said "share no file" before
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.csv").write_text(text)
        assert "not a scores.csv written by evaluate.py (its header has no 'file' column)" in run_main(
            "--compare", tmp_path / "a", tmp_path / name)
