"""A listening page: each file's noisy input, enhanced versions and clean reference side by side.

    python listen.py --clean C --noisy N --enhanced T S --names teacher student --out OUT
    python listen.py --clean C --noisy N --enhanced T S --out OUT --rows 20 --sort si_sdr   # 10 lowest, 10 highest

A tool on top of evaluate.py: it scores each version with evaluate.py's options, into OUT/NAME as
`evaluate.py --out OUT` does (the noisy input too, as the version noisy), and write_page writes
OUT/index.html: the mean scores on top, then one row per file with, for every version, an audio player,
its spectrogram (one colour scale per row) and its scores, the numbers of OUT/NAME/scores.csv. The audio
(16-bit PCM WAV at 16 kHz) and the pictures (PNG) lie beside the page as OUT/NAME/FILE.wav and OUT/NAME/FILE.png, linked
by relative paths, so the folder opens from the file system and can be zipped or served as it is.
No JavaScript and no network. The PNGs are written with zlib, so no imaging package is needed.

Real recordings have no clean reference: then the page has no clean column, shows each file's DNSMOS SIG, BAK
and OVRL where PESQ, ESTOI and SI-SDR would be, and says so on top.

    python listen.py --noisy N --enhanced T S --names teacher student --out OUT --dnsmos
"""
import argparse
import html
import io
import struct
import sys
import zlib
from pathlib import Path
from urllib.parse import quote

import numpy as np
import soundfile as sf
import torch

import evaluate
from data import HOP, N_FFT, SAMPLE_RATE, DataError, load_audio
from evaluate import write_atomic

DYNAMIC_RANGE = 80  # dB: a row's colour scale runs from this far below its loudest bin up to it
CELL_METRICS = ("pesq", "pesq_nb", "estoi", "si_sdr", "dnsmos_ovrl")  # the scores under each player, where present
NO_REFERENCE_METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")  # in their place where no row has a clean reference
LABELS = {"pesq": "PESQ", "pesq_nb": "PESQ-NB", "estoi": "ESTOI", "si_sdr": "SI-SDR", "si_sir": "SI-SIR",
          "si_sar": "SI-SAR", "csig": "CSIG", "cbak": "CBAK", "covl": "COVL", "dnsmos_sig": "DNSMOS SIG",
          "dnsmos_bak": "DNSMOS BAK", "dnsmos_ovrl": "DNSMOS OVRL"}
MAGMA = np.array([[0, 0, 4], [28, 16, 68], [81, 18, 124], [130, 37, 129], [183, 55, 121], [229, 80, 100],
                  [252, 137, 97], [254, 194, 135], [252, 253, 191]])  # matplotlib's magma at 0, 1/8, ..., 1
PALETTE = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(MAGMA)), MAGMA[:, c])
                    for c in range(3)], axis=1).round().astype(np.uint8)  # 256 colours, black to light yellow
STYLE = """body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }
table.files { table-layout: fixed; width: 100%; }
table.files th.file { width: 8em; text-align: left; word-break: break-all; }
table.files audio, table.files img { display: block; width: 100%; }
table.files img { height: 128px; margin-top: 4px; }
td.gap { text-align: center; color: #666; }
.scores { font-size: 90%; margin-top: 2px; }
.score { white-space: nowrap; }
.note { font-size: 90%; color: #a40; }"""


def spectrogram_db(wav):
    """Log magnitude in dB, [256 frequencies, frames], of a 16 kHz waveform: the STFT 510/128 the model sees."""
    window = torch.hann_window(N_FFT, periodic=True)
    X = torch.stft(torch.from_numpy(np.asarray(wav, np.float32)), N_FFT, HOP, window=window, return_complex=True)
    return 20 * np.log10(X.abs().numpy() + 1e-8)


def png_chunk(kind, data):
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def spectrogram_png(db, vmax):
    """The PNG file (bytes) of a spectrogram in dB [256 bins, frames], low frequencies at the bottom, one pixel
    per 2 bins and 2 frames (their mean: a quarter of the file): 8-bit indices into PALETTE, from
    vmax - DYNAMIC_RANGE (black) to vmax (light yellow)."""
    db = db[:, :db.shape[1] // 2 * 2]
    db = db.reshape(db.shape[0] // 2, 2, -1, 2).mean(axis=(1, 3))
    index = np.clip((db - vmax + DYNAMIC_RANGE) / DYNAMIC_RANGE * 255, 0, 255).round().astype(np.uint8)[::-1]
    height, width = index.shape
    raw = np.hstack([np.zeros((height, 1), np.uint8), index]).tobytes()  # each line: filter type 0, then its pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8 bits, colour type 3 (palette)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"PLTE", PALETTE.tobytes())
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def wav_bytes(wav):
    """(a 16-bit PCM WAV file at 16 kHz as bytes, the format every browser plays; its gain in dB): a waveform
    that goes above full scale is scaled down to fit (gain < 0) rather than clipped, the others keep their level."""
    peak = float(np.abs(wav).max())
    gain = 1 / peak if peak > 1 else 1.0
    buf = io.BytesIO()
    sf.write(buf, np.clip(gain * wav, -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue(), 20 * np.log10(gain)


def pick_files(scores, metric, count, version):
    """(files to show, in order, and the sentence that states the rule) from scores {file: {metric: value}}
    of one version: all files in name order, or with 0 < count < the number of files the (count + 1) // 2
    with the lowest and the count // 2 with the highest value of metric (NaN counts as the lowest), each group
    in rising order, a None between the groups where files are left out."""
    files = sorted(scores)
    if count <= 0 or count >= len(files):
        return files, f"All {len(files)} files, in name order."
    ranked = sorted(files, key=lambda f: (np.nan_to_num(scores[f][metric], nan=-np.inf), f))
    low, high = ranked[:(count + 1) // 2], ranked[len(files) - count // 2:]
    rule = (f"{count} of {len(files)} files: the {len(low)} with the lowest and the {len(high)} with the highest "
            f"{LABELS.get(metric, metric)} of {version}, each group from lowest to highest.")
    return low + [None] + high, rule


def fmt(metric, value):
    """A score as the page prints it: dB to 2 decimals, the others to 3."""
    return f"{value:.2f}" if metric.startswith("si_") else f"{value:.3f}"


def cell_scores(row, metrics=CELL_METRICS):
    """The scores under a player, from a row of score_folders; the clean reference (None) has none."""
    if row is None:
        return "reference"
    return " &middot; ".join(f'<span class="score">{LABELS[m]} <span data-metric="{m}">{fmt(m, row[m])}</span>'
                             + " dB" * m.startswith("si_") + "</span>" for m in metrics if m in row)


def link(version, file, ext):
    """The relative address of a version's copy of a file, as written by write_page."""
    return quote(f"{version}/{file}.{ext}")


def page_html(columns, scores, summaries, folders, shown, rule, notes):
    """The page's HTML: the mean table of summaries {version: {metric: {mean, std, n}}}, the rule, then one
    row per shown file with a cell per column (a version, or the clean reference): its player, its picture,
    its scores and its note from notes {(column, file): text}, if any."""
    e = html.escape
    metrics = list(next(iter(summaries.values())))
    referenced = "pesq" in metrics or "pesq_nb" in metrics  # scored against a clean reference
    if referenced:
        scoring = "Each file is scored against its clean reference (the last column)."
    else:
        scoring = ("No clean reference: these recordings are scored by DNSMOS P.835 alone (SIG: the speech, BAK: "
                   "the background noise, OVRL: overall; 1 to 5, higher is better): networks that predict "
                   "listeners' ratings from the recording alone. They estimate; nothing is compared with clean "
                   "speech, so listen too.")
    lines = ["<!doctype html>", '<html lang="en">', '<head><meta charset="utf-8"><title>Listening page</title>',
             f"<style>\n{STYLE}\n</style></head>", "<body>", "<h1>Listening page</h1>", "<ul>"]
    lines += [f"<li>{e(name)}: <code>{e(str(folder))}</code></li>" for name, folder in folders.items()]
    lines += ["</ul>", '<table class="means">', "<tr><th>version</th><th>files</th>"
              + "".join(f"<th>{e(LABELS.get(m, m))}</th>" for m in metrics) + "</tr>"]
    for name, summary in summaries.items():
        cells = "".join(f'<td data-metric="{m}">{fmt(m, s["mean"])} &plusmn; {fmt(m, s["std"])}</td>'
                        for m, s in summary.items())
        lines.append(f'<tr data-version="{e(name)}"><th><a href="{link(name, "scores", "csv")}">{e(name)}</a></th>'
                     f"<td>{len(scores[name])}</td>{cells}</tr>")
    lines += ["</table>", "<p>Mean &plusmn; standard deviation over the files"
              + " (SI-SDR, SI-SIR and SI-SAR in dB)" * referenced + "; each version's name links its "
              "<code>scores.csv</code>.</p>",
              f"<p><b>Scores.</b> {e(scoring)}</p>", f"<p><b>Rows.</b> {e(rule)}</p>",
              f"<p><b>Spectrograms.</b> STFT 510/128 magnitude, 0 to 8 kHz from bottom to top; one colour scale per "
              f"row, from {DYNAMIC_RANGE} dB below the loudest bin of the row (black) to that bin (light yellow). "
              "They show each file at the level it was scored at.</p>",
              "<p><b>Audio.</b> 16-bit WAV at 16 kHz. A file that goes above full scale is scaled down to fit, "
              "not clipped, and its cell says by how much.</p>",
              '<table class="files">', '<tr><th class="file">file</th>'
              + "".join(f"<th>{e(name)}</th>" for name in columns) + "</tr>"]
    for file in shown:
        if file is None:
            lines.append(f'<tr><td class="gap" colspan="{len(columns) + 1}">&hellip; files left out &hellip;</td></tr>')
            continue
        lines.append(f'<tr data-file="{e(file)}"><th class="file">{e(file)}</th>')
        for name in columns:
            text = cell_scores(scores.get(name, {}).get(file), CELL_METRICS if referenced else NO_REFERENCE_METRICS)
            text += f'<div class="note">{e(notes[name, file])}</div>' if (name, file) in notes else ""
            lines.append(f'<td data-version="{e(name)}"><audio controls preload="metadata" '
                         f'src="{link(name, file, "wav")}"></audio><img src="{link(name, file, "png")}" '
                         f'alt="spectrogram of {e(name)} {e(file)}"><div class="scores">{text}</div></td>')
        lines.append("</tr>")
    lines += ["</table>", "</body>", "</html>"]
    return "\n".join(lines) + "\n"


def write_page(out, columns, rows, summaries, folders, sort_version, sort_metric="pesq", count=0):
    """Write out/index.html and, for every shown file and column, out/NAME/FILE.wav and out/NAME/FILE.png.

    columns: {name: {file: path}} in the page's order (noisy, enhanced versions, clean if any); rows: {name: rows
    of score_folders} of the scored columns; summaries: {name: summary} (the mean table); folders:
    {name: folder}, listed on top. Shows the files that every scored column scored, count of them picked
    by sort_metric of sort_version where count > 0 (pick_files). Returns the number of files shown."""
    scores = {name: {r["file"]: r for r in version_rows} for name, version_rows in rows.items()}
    common = set.intersection(*(set(s) for s in scores.values()), *(set(c) for c in columns.values()))
    shown, rule = pick_files({f: scores[sort_version][f] for f in common}, sort_metric, count, sort_version)
    left_out = len(set().union(*(set(s) for s in scores.values()))) - len(common)
    if left_out:
        rule += f" Not shown: {left_out} file(s) that only some of the versions scored."
    out, notes = Path(out), {}
    for file in filter(None, shown):
        wavs = {name: load_audio(files[file]) for name, files in columns.items()}
        specs = {name: spectrogram_db(wav) for name, wav in wavs.items()}
        vmax = max(db.max() for db in specs.values())  # one colour scale for the row
        for name in columns:
            data, gain_db = wav_bytes(wavs[name])
            write_atomic(out / name / f"{file}.wav", data)
            if gain_db < 0:
                notes[name, file] = f"audio scaled by {gain_db:.1f} dB: it goes above full scale"
            write_atomic(out / name / f"{file}.png", spectrogram_png(specs[name], vmax))
    write_atomic(out / "index.html", page_html(columns, scores, summaries, folders, shown, rule, notes))
    return len(shown) - shown.count(None)


# ----------------------------------------------------------------------------- command line

def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[evaluate.scoring_parser()],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("the page")
    g.add_argument("--rows", type=int, default=0, metavar="N",
                   help="files on the page: the N/2 with the lowest and the N/2 with the highest --sort of the first "
                   "--enhanced folder; 0: every file")
    g.add_argument("--sort", default="pesq", choices=list(LABELS), metavar="METRIC",
                   help="score that --rows picks files by: " + ", ".join(LABELS))
    return p


def make_page(a):
    """The command line's work: score the noisy input and each --enhanced folder into OUT/NAME (the page's columns,
    in that order, then the clean reference), and write OUT/index.html. Returns {name: (rows, summary, skipped)}."""
    if not a.enhanced:
        raise DataError("--enhanced is required")
    if not a.out:
        raise DataError("--out is required: the folder of the page")
    if a.rows < 0:
        raise DataError(f"--rows {a.rows}: must be at least 0 (0: every file)")
    evaluate.check_scoring(a, page=True)  # --noisy without --clean: a column to listen to, not scored against
    versions = evaluate.name_versions(a.enhanced, a.names)
    taken = sorted(versions.keys() & {"noisy", "clean"})
    if taken:
        raise DataError(f"the name {taken[0]} is taken by a column of the page (noisy, clean); choose another")
    folders = ({"noisy": a.noisy} if a.noisy else {}) | versions
    out = Path(a.out)
    outs = {name: out / name for name in folders}
    columns = [*outs.values()] + [out / "clean"] * bool(a.clean)  # the folders of the page's audio and pictures
    evaluate.check_apart(columns, (a.clean, a.noisy, *a.enhanced))
    evaluate.check_writable([out / "index.html", *columns], a.overwrite)

    scored = evaluate.score_versions(folders, a)
    first = next(iter(versions))  # the first --enhanced folder: --rows picks files by its scores
    metrics = [k for k in scored[first][0][0] if k != "file"]
    if a.rows and a.sort not in metrics:
        raise DataError(f"--sort {a.sort}: {first} has no such score ({', '.join(metrics)})")
    results = evaluate.write_versions(scored, folders, outs, a)
    sources = folders | ({"clean": a.clean} if a.clean else {})
    shown = write_page(out, {name: evaluate.audio_files(folder) for name, folder in sources.items()},
                       {name: r[0] for name, r in results.items()}, {name: r[1] for name, r in results.items()},
                       sources, first, a.sort, a.rows)
    print(f"listening page of {shown} files: {out / 'index.html'}")
    return results


def main(argv=None):
    a = make_parser().parse_args(argv)
    try:
        return make_page(a)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
