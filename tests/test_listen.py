"""listen.py, the listening page: links that resolve, the CSV's numbers, one colour scale per row, the rows limit,
bad requests, and a real browser's rendering where Chromium is installed."""
import io
import json
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

import listen
from data import DEMO, load_audio
from test_evaluate import read_csv, stand_in_dnsmos
from test_evaluate import run_main as evaluate_main

CLEAN, NOISY = DEMO / "vbdmd" / "clean", DEMO / "vbdmd" / "noisy"
FILES = {"a": "p287_001", "sub/b c": "p287_002", "d": "p287_003"}  # a subfolder and a space: links must be quoted


def run_main(*args):
    """listen.main() in this process; returns the error message it exits with, or None."""
    try:
        listen.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return None


def tiny_folders(root):
    """clean/, noisy/, teacher/ and student/ of three 1.5-s files; the student nearer the clean speech, the teacher
    above full scale (float WAV). The student also holds a file that the teacher lacks: it is scored, but not shown."""
    for name, source in FILES.items():
        clean, noisy = load_audio(CLEAN / f"{source}.wav")[:24000], load_audio(NOISY / f"{source}.wav")[:24000]
        for folder, wav in (("clean", clean), ("noisy", noisy), ("teacher", 4 * (0.7 * noisy + 0.3 * clean)),
                            ("student", 0.4 * noisy + 0.6 * clean)):
            (root / folder / name).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / folder / f"{name}.wav", wav, 16000, subtype="FLOAT")
    for folder, source in (("clean", CLEAN), ("noisy", NOISY), ("student", NOISY)):
        sf.write(root / folder / "extra.wav", load_audio(source / "p287_004.wav")[:24000], 16000)
    return ["--clean", root / "clean", "--noisy", root / "noisy", "--enhanced", root / "teacher", root / "student"]


class Page(HTMLParser):
    """A page's links (src, href) and its numbers {(version, file, metric): text}; file 'mean' for the mean table."""

    def __init__(self, text):
        super().__init__()
        self.links, self.numbers, self.file, self.version, self.metric = [], {}, None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.links += [a[k] for k in ("src", "href") if k in a]
        if tag == "tr":
            self.file, self.version = a.get("data-file", "mean"), a.get("data-version")
        if tag == "td" and "data-version" in a:
            self.version = a["data-version"]
        self.metric = a.get("data-metric")

    def handle_data(self, data):
        if self.metric:
            self.numbers[self.version, self.file, self.metric] = data
            self.metric = None


def printed(text, value):
    """True where text is value rounded to the digits it shows."""
    return abs(float(text) - value) <= 0.51 * 10.0 ** -len(text.split(".")[1])


def test_every_link_resolves_and_the_scores_are_those_of_the_csv(tmp_path, monkeypatch):
    rows_of_colours = []
    png = listen.spectrogram_png
    monkeypatch.setattr(listen, "spectrogram_png", lambda db, vmax: rows_of_colours.append((db.max(), vmax)) or
                        png(db, vmax))
    out = tmp_path / "page"
    assert run_main(*tiny_folders(tmp_path), "--names", "teacher", "student", "--out", out) is None
    page = Page((out / "index.html").read_text())
    columns = ["noisy", "teacher", "student", "clean"]
    audio = [link for link in page.links if link.endswith(".wav")]
    assert sorted(audio) == sorted(f"{c}/{f.replace(' ', '%20')}.wav" for c in columns for f in FILES)
    assert len([link for link in page.links if link.endswith(".png")]) == len(audio)
    assert {link for link in page.links if link.endswith(".csv")} == {f"{c}/scores.csv" for c in columns[:3]}
    for link in page.links:
        path = (out / unquote(link)).resolve()
        assert path.is_file() and out.resolve() in path.parents, link
    for link in audio:
        info = sf.info(out / unquote(link))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
    text = (out / "index.html").read_text()
    assert text.count("audio scaled by") == len(FILES)  # the teacher's files only, each above full scale
    for version in columns[:3]:
        rows = read_csv(out / version / "scores.csv")
        assert sorted(rows) == sorted(list(FILES) + ["extra"] * (version != "teacher"))
        for file in FILES:
            for metric in ("pesq", "estoi", "si_sdr"):
                assert printed(page.numbers[version, file, metric], rows[file][metric]), (version, file, metric)
        for metric, s in json.loads((out / version / "scores.json").read_text())["metrics"].items():
            mean, std = page.numbers[version, "mean", metric].split(" ± ")
            assert printed(mean, s["mean"]) and printed(std, s["std"]), (version, metric)
    assert ("student", "extra", "pesq") not in page.numbers
    assert "All 3 files, in name order. Not shown: 1 file(s)" in text
    # one colour scale per row: every picture of a row tops out at the row's loudest bin
    assert len(rows_of_colours) == len(audio)
    for i in range(0, len(rows_of_colours), len(columns)):
        row = rows_of_colours[i:i + len(columns)]
        assert len({vmax for _, vmax in row}) == 1 and row[0][1] == max(top for top, _ in row)
    assert not list(out.rglob("*.tmp"))


def test_the_png_writer_needs_no_imaging_package_and_decodes_back():
    levels = np.linspace(-100, 0, 128)  # dB of each pair of bins, rising from the lowest frequency to the highest
    db = np.repeat(levels, 2)[:, None] * np.ones(10)
    data = listen.spectrogram_png(db, vmax=0.0)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = {}, 8
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        assert int.from_bytes(data[i + 8 + n:i + 12 + n], "big") == zlib.crc32(kind + body)
        chunks[kind] = body
        i += 12 + n
    width, height = int.from_bytes(chunks[b"IHDR"][:4], "big"), int.from_bytes(chunks[b"IHDR"][4:8], "big")
    assert (width, height) == (5, 128)  # one pixel per 2 bins and 2 frames
    pixels = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, width + 1)
    assert (pixels[:, 0] == 0).all()  # filter type 0 on every line
    index = pixels[:, 1:]
    assert (index == index[:, :1]).all()
    expected = np.clip(np.round((levels + 80) / 80 * 255), 0, 255)[::-1]  # 0 dB at the top: 255, -80 dB and below: 0
    np.testing.assert_array_equal(index[:, 0], expected)
    assert len(chunks[b"PLTE"]) == 3 * 256


def test_audio_above_full_scale_is_scaled_down_not_clipped():
    wav = np.sin(np.linspace(0, 200, 16000)) * np.linspace(0, 2, 16000)  # about 6 dB above full scale
    peak = np.abs(wav).max()
    data, gain_db = listen.wav_bytes(wav)
    back, rate = sf.read(io.BytesIO(data))
    assert rate == 16000 and gain_db == pytest.approx(-20 * np.log10(peak)) and gain_db < -5.9
    np.testing.assert_allclose(back, wav / peak, atol=1 / 32768)
    data, gain_db = listen.wav_bytes(wav / 4)  # within full scale: copied at its level
    assert gain_db == 0 and np.abs(sf.read(io.BytesIO(data))[0] - wav / 4).max() <= 1 / 32768


def test_a_page_of_recordings_without_clean_files_shows_their_dnsmos(tmp_path, monkeypatch):
    """Two short real recordings without a clean reference, and two versions of them, one above full scale: no
    clean column, every link resolves, each cell holds the DNSMOS SIG, BAK and OVRL of its CSV, and the page says
    why. DNSMOS is a stand-in computed from the waveform it is given (the real one: tests/test_evaluate.py)."""
    stand_in_dnsmos(monkeypatch, lambda x, sr: {"sig_mos": 1 + 4 * float(np.abs(x).max()),
                                                "bak_mos": 1 + 40 * float(np.sqrt(np.mean(x ** 2))),
                                                "ovrl_mos": 1 + len(x) / sr, "p808_mos": 0.0})
    recordings = {"rec one": "p287_001", "rec2": "p287_004"}
    for name, source in recordings.items():
        noisy = load_audio(NOISY / f"{source}.wav")[:32000]
        for folder, wav in (("noisy", noisy), ("teacher", 3 * noisy), ("student", 0.5 * noisy)):
            (tmp_path / folder).mkdir(exist_ok=True)
            sf.write(tmp_path / folder / f"{name}.wav", wav, 16000, subtype="FLOAT")
    args = ["--noisy", tmp_path / "noisy", "--enhanced", tmp_path / "teacher", tmp_path / "student"]
    out = tmp_path / "page"
    assert "only --dnsmos can score" in run_main(*args, "--out", out)
    assert "--noisy needs --clean" in evaluate_main(*args[:2], "--enhanced", tmp_path / "student", "--dnsmos")
    assert not out.exists()
    assert run_main(*args, "--out", out, "--dnsmos") is None
    text = (out / "index.html").read_text()
    page = Page(text)
    columns = ["noisy", "teacher", "student"]
    assert sorted(p.name for p in out.iterdir()) == ["index.html"] + sorted(columns)  # no clean column
    audio = [link for link in page.links if link.endswith(".wav")]
    assert sorted(audio) == sorted(f"{c}/{f.replace(' ', '%20')}.wav" for c in columns for f in recordings)
    assert len([link for link in page.links if link.endswith(".png")]) == len(audio)
    assert {link for link in page.links if link.endswith(".csv")} == {f"{c}/scores.csv" for c in columns}
    for link in page.links:
        assert (out / unquote(link)).is_file(), link
    metrics = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
    for version in columns:
        rows = read_csv(out / version / "scores.csv")
        assert sorted(rows) == sorted(recordings)
        for file in recordings:
            assert set(rows[file]) == set(metrics)
            for metric in metrics:
                assert printed(page.numbers[version, file, metric], rows[file][metric]), (version, file, metric)
        for metric, s in json.loads((out / version / "scores.json").read_text())["metrics"].items():
            mean, std = page.numbers[version, "mean", metric].split(" ± ")
            assert printed(mean, s["mean"]) and printed(std, s["std"]), (version, metric)
    noisy, teacher, student = (read_csv(out / c / "scores.csv")["rec2"] for c in columns)
    peak = float(np.abs(load_audio(tmp_path / "noisy" / "rec2.wav")).max())
    assert noisy["dnsmos_sig"] == pytest.approx(1 + 4 * peak) and noisy["dnsmos_ovrl"] == pytest.approx(3.0)
    assert student["dnsmos_bak"] == pytest.approx(1 + 0.5 * (noisy["dnsmos_bak"] - 1))
    assert teacher["dnsmos_sig"] == pytest.approx(5.0)  # above full scale: scored as played, scaled down to fit
    assert text.count("audio scaled by") == len(recordings)
    assert "No clean reference: these recordings are scored by DNSMOS P.835 alone" in text
    assert 'data-metric="pesq"' not in text and "reference" not in text.split('<table class="files">')[1]


def test_page_rows_shows_the_lowest_and_the_highest_and_says_so(tmp_path):
    out = tmp_path / "page"
    assert run_main(*tiny_folders(tmp_path), "--names", "teacher", "student", "--out", out, "--rows", "2",
                    "--sort", "si_sdr") is None
    text = (out / "index.html").read_text()
    page = Page(text)
    sdr = read_csv(out / "teacher" / "scores.csv")
    ranked = sorted(FILES, key=lambda f: sdr[f]["si_sdr"])
    assert [f for (v, f, m) in page.numbers if v == "noisy" and m == "si_sdr" and f != "mean"] == [ranked[0], ranked[-1]]
    assert "2 of 3 files: the 1 with the lowest and the 1 with the highest SI-SDR of teacher" in text
    assert "files left out" in text
    assert not (out / "teacher" / f"{ranked[1]}.wav").exists() and (out / "teacher" / f"{ranked[0]}.wav").exists()


def test_pick_files_counts_nan_as_the_lowest():
    scores = {f"f{i}": {"pesq": v} for i, v in enumerate([2.0, float("nan"), 3.0, 1.0, 4.0])}
    assert listen.pick_files(scores, "pesq", 0, "x") == (sorted(scores), "All 5 files, in name order.")
    shown, rule = listen.pick_files(scores, "pesq", 3, "student")
    assert shown == ["f1", "f3", None, "f4"] and rule.startswith("3 of 5 files: the 2 with the lowest and the 1")


def test_several_folders_without_a_page_score_each_as_alone(tmp_path):
    """evaluate.py scores several --enhanced folders as listen.py does, without the noisy version and the page."""
    args = tiny_folders(tmp_path)
    assert evaluate_main(*args, "--out", tmp_path / "both") is None
    assert evaluate_main(*args[:4], "--enhanced", tmp_path / "student", "--out", tmp_path / "one") is None
    both, one = read_csv(tmp_path / "both" / "student" / "scores.csv"), read_csv(tmp_path / "one" / "scores.csv")
    assert both.keys() == one.keys()
    for file in one:  # pystoi differs from call to call in the last digits
        assert both[file] == pytest.approx(one[file], rel=1e-12, abs=0)
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["student", "teacher"]  # noisy: the page's


def test_bad_page_requests_fail_clearly_before_anything_is_written(tmp_path):
    args = tiny_folders(tmp_path)
    out = tmp_path / "page"
    for extra, message in [([], "--out is required"),
                           (["--out", out, "--names", "one"], "1 names for 2"),
                           (["--out", out, "--names", "x", "x"], "the name x is taken"),
                           (["--out", out, "--names", "noisy", "x"], "the name noisy is taken"),
                           (["--out", out, "--names", "a/b", "x"], "a name becomes a folder name"),
                           (["--out", tmp_path / "student"], "in or around the input folder"),
                           (["--out", tmp_path / "noisy" / "page"], "in or around the input folder"),
                           (["--out", out, "--pesq-mode", "nb", "--rows", "2"], "--sort pesq: teacher has no")]:
        assert message in run_main(*args, *extra), extra
        assert not out.exists()
    assert "--enhanced is required" in run_main("--clean", tmp_path / "clean", "--out", out)
    assert run_main(*args, "--out", out) is None
    (out / "index.html").write_text("earlier page")
    assert "--overwrite" in run_main(*args, "--out", out)
    assert (out / "index.html").read_text() == "earlier page"
    assert run_main(*args, "--out", out, "--overwrite") is None
    assert "<audio" in (out / "index.html").read_text()


def test_the_page_renders_in_a_real_browser(tmp_path):
    """Chromium draws the page: its screenshot holds far more than that of an empty page."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the page was not rendered")
    out = tmp_path / "page"
    assert run_main(*tiny_folders(tmp_path), "--out", out) is None
    sizes = {}
    for name, url in (("page", (out / "index.html").resolve().as_uri()), ("blank", "about:blank")):
        png = tmp_path / f"{name}.png"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={png}", "--window-size=1400,1000", url], capture_output=True, timeout=60)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        sizes[name] = png.stat().st_size
    assert sizes["page"] > 10 * sizes["blank"], sizes
