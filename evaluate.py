"""The paper's metrics, folder scoring and paired comparison (docs/method.md, section 7).

    python evaluate.py --clean CLEAN --enhanced ENHANCED --noisy NOISY   # per-file CSV, JSON and markdown summary
    python evaluate.py --enhanced ENHANCED --dnsmos       # no reference: DNSMOS (pip install -r requirements-dnsmos.txt)
    python evaluate.py --clean C --noisy N --enhanced T S --names teacher student --out OUT   # OUT/teacher, OUT/student
    python evaluate.py --compare scores/rosecd scores/teacher   # paired differences of two scored folders

The metric functions take 16 kHz float numpy arrays of equal length, the reference first.
Folders are matched by relative path without extension (clean/a/b.wav goes with enhanced/a/b.flac).
The speed benchmark is speed.py. The pictures are figures.py's: a file's spectrograms are
`python figures.py spectrograms --noisy N --enhanced E --clean C`, the training curves `python figures.py curves`.
"""
import argparse
import csv
import importlib
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data import AUDIO_EXTS, SAMPLE_RATE, DataError, read_audio, resample

EPS = 1e-12
MAX_LENGTH_DIFF = 16  # samples at 16 kHz (1 ms): longer differences are a mismatch, shorter ones are trimmed
RESULT_FILES = ("scores.csv", "scores.json", "scores.md")


# ----------------------------------------------------------------------------- metrics

def si_sdr(reference, estimate):
    """Scale-invariant SDR in dB: 10 log10 |a s|^2 / |a s - s_hat|^2 with a = <s_hat, s> / |s|^2."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    a = np.dot(estimate, reference) / (np.dot(reference, reference) + EPS)
    target = a * reference
    return 10 * np.log10((np.sum(target ** 2) + EPS) / (np.sum((target - estimate) ** 2) + EPS))


def si_sir_sar(reference, estimate, noise, method="sgmse"):
    """(SI-SIR, SI-SAR) in dB of an estimate s_hat of the speech s in the mixture s + n.

    Both methods split s_hat = e_target + e_interf + e_artif around the SI-SDR target
    e_target = <s_hat, s> / |s|^2 s and report
      SI-SIR = 10 log10 |e_target|^2 / |e_interf|^2,   SI-SAR = 10 log10 |e_target|^2 / |e_artif|^2.
    "sgmse" (SGMSE+'s energy_ratios, the usual evaluation of this model family, so presumably that of
      the published table): the noise part is the projection on n alone,
      e_interf = <s_hat, n> / |n|^2 n,  e_artif = s_hat - e_target - e_interf.
    "projection" (Le Roux et al. 2019, "SDR - half-baked or well done?"): P = least-squares projection
      of s_hat on span{s, n}, e_interf = P - e_target, e_artif = s_hat - P. The three parts are then
      orthogonal, so 10^(-SI-SDR/10) = 10^(-SI-SIR/10) + 10^(-SI-SAR/10).
    The two agree when <s, n> = 0. Real speech and noise correlate slightly (|<s, n>| / |s||n| ~ 0.01),
    which is enough to move either ratio by several dB once it is above ~25 dB (by tenths below ~15 dB).
    """
    s, n, s_hat = (np.asarray(v, np.float64) for v in (reference, noise, estimate))
    e_target = np.dot(s_hat, s) / (np.dot(s, s) + EPS) * s
    if method == "sgmse":
        e_interf = np.dot(s_hat, n) / (np.dot(n, n) + EPS) * n
        e_artif = s_hat - e_target - e_interf
    elif method == "projection":
        basis = np.stack([s, n], axis=1)
        P = basis @ np.linalg.lstsq(basis, s_hat, rcond=None)[0]  # least-squares fit c_s s + c_n n
        e_interf, e_artif = P - e_target, s_hat - P
    else:
        raise ValueError(f"unknown SI-SIR/SI-SAR method {method!r} (sgmse or projection)")
    target = np.sum(e_target ** 2) + EPS
    return 10 * np.log10(target / (np.sum(e_interf ** 2) + EPS)), 10 * np.log10(target / (np.sum(e_artif ** 2) + EPS))


def pesq_mos(reference, estimate, mode="wb"):
    """PESQ at 16 kHz, wide-band "wb" (ITU-T P.862.2, the paper's) or narrow-band "nb" (P.862);
    NaN where PESQ cannot score (silence, too short)."""
    from pesq import pesq
    try:
        return float(pesq(SAMPLE_RATE, reference, estimate, mode))
    except Exception:  # the pesq package raises NoUtterancesError / BufferTooShortError
        return float("nan")


def pesq_wb(reference, estimate):
    """PESQ wide-band (ITU-T P.862.2) at 16 kHz; NaN where PESQ cannot score (silence, too short)."""
    return pesq_mos(reference, estimate, "wb")


def estoi(reference, estimate):
    """Extended STOI (pystoi, extended=True)."""
    from pystoi import stoi
    return float(stoi(reference, estimate, SAMPLE_RATE, extended=True))


def score(reference, estimate, noise=None, pesq_mode="wb", sir_sar="sgmse"):
    """{'pesq', 'estoi', 'si_sdr'} of one estimate ('pesq_nb' for narrow-band PESQ), and
    'si_sir', 'si_sar' (by the method sir_sar) when the noise (noisy - clean) is given."""
    out = {"pesq" if pesq_mode == "wb" else "pesq_nb": pesq_mos(reference, estimate, pesq_mode),
           "estoi": estoi(reference, estimate), "si_sdr": float(si_sdr(reference, estimate))}
    if noise is not None:
        out["si_sir"], out["si_sar"] = (float(v) for v in si_sir_sar(reference, estimate, noise, sir_sar))
    return out


def composite(reference, estimate):
    """CSIG, CBAK, COVL (Hu and Loizou 2008 composite measures, 1 to 5) from pysepm-evo."""
    import pysepm
    csig, cbak, covl = pysepm.composite(reference, estimate, SAMPLE_RATE)
    return {"csig": float(csig), "cbak": float(cbak), "covl": float(covl)}


def dnsmos(estimate):
    """DNSMOS P.835 SIG, BAK, OVRL (1 to 5) of a 16 kHz recording, no reference needed (Reddy et al., ICASSP
    2022): Microsoft's ONNX models as shipped inside the speechmos package, averaged over 9.01-s windows one
    second apart (a shorter recording is repeated to 9.01 s). A recording above full scale is scaled down to fit
    first, as the listening page plays it (speechmos refuses it)."""
    from speechmos import dnsmos as model
    x = np.asarray(estimate, np.float32)
    peak = float(np.abs(x).max())
    r = model.run(x / peak if peak > 1 else x, sr=SAMPLE_RATE)
    return {"dnsmos_sig": float(r["sig_mos"]), "dnsmos_bak": float(r["bak_mos"]), "dnsmos_ovrl": float(r["ovrl_mos"])}


def require(module, package, option, install=""):
    """Stop before any work, with the install line (pip install INSTALL, or the package), when an optional
    package, or one it imports, is missing."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise DataError(f"{option} needs the optional package {package}, which is not installed or incomplete "
                        f"({e}): pip install {install or package}") from None


# ----------------------------------------------------------------------------- folders

def audio_files(folder):
    """{relative path without extension: path} of the audio files in folder and below."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS)
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in files}


def match_files(enhanced, clean=None, noisy=None):
    """([(name, {role: path}), ...] for enhanced files with every counterpart, [{file, reason}, ...]
    for those without one and for clean files that were never enhanced)."""
    folders = {"enhanced": enhanced, "clean": clean, "noisy": noisy}
    found = {role: audio_files(folder) for role, folder in folders.items() if folder}
    if not found["enhanced"]:
        raise DataError(f"{enhanced}: no audio files ({', '.join(AUDIO_EXTS)}) in this folder or below")
    jobs, skipped = [], []
    for name in found["enhanced"]:
        missing = [role for role in found if name not in found[role]]
        if missing:
            skipped.append({"file": name, "reason": " and ".join(f"no {r} file in {folders[r]}" for r in missing)})
        else:
            jobs.append((name, {role: found[role][name] for role in found}))
    for name in sorted(found.get("clean", {}).keys() - found["enhanced"].keys()):
        skipped.append({"file": name, "reason": f"no enhanced file in {enhanced}"})
    return jobs, skipped


def load_matched(paths, max_length_diff=MAX_LENGTH_DIFF):
    """{role: 16 kHz waveform} of one name, all of one length; DataError if they do not match:
    an unreadable file, different sample rates in the files, or lengths (at 16 kHz) that differ by
    more than max_length_diff samples. Smaller differences are trimmed to the shortest."""
    wavs, rates = {}, {}
    for role, path in paths.items():
        wav, rates[role] = read_audio(path)
        wavs[role] = resample(wav, rates[role])
    if len(set(rates.values())) > 1:
        raise DataError("sample rates differ (" + ", ".join(f"{r} {sr} Hz" for r, sr in rates.items()) + ")")
    lengths = {role: len(w) for role, w in wavs.items()}
    if max(lengths.values()) - min(lengths.values()) > max_length_diff:
        raise DataError(f"lengths differ by more than {max_length_diff} samples ("
                        + ", ".join(f"{r} {n}" for r, n in lengths.items()) + " samples at 16 kHz)")
    n = min(lengths.values())
    return {role: w[:n] for role, w in wavs.items()}


def check_request(clean, noisy, use_dnsmos, page=False):
    if not clean and not use_dnsmos:
        raise DataError("--clean is required (without a clean reference only --dnsmos can score)")
    if noisy and not clean and not page:
        raise DataError("--noisy needs --clean (the noise is noisy - clean), or listen.py (the page's noisy column)")


def score_folders(enhanced, clean=None, noisy=None, pesq_mode="wb", sir_sar="sgmse", use_composite=False,
                  use_dnsmos=False, max_length_diff=MAX_LENGTH_DIFF):
    """(rows, skipped): one row {file, metric: value, ...} per scored enhanced file, and one
    {file, reason} per file that could not be scored; each skip is printed as it is found."""
    check_request(clean, noisy, use_dnsmos)
    jobs, skipped = match_files(enhanced, clean, noisy)
    for s in skipped:
        print(f"skipped {s['file']}: {s['reason']}", file=sys.stderr)
    rows = []
    for name, paths in tqdm(jobs, desc="scoring", unit="file", dynamic_ncols=True, disable=None):
        try:
            wav = load_matched(paths, max_length_diff)
            if clean and not np.any(wav["clean"]):  # SI-SDR near -140 dB and a PESQ of nothing: not a score
                raise DataError("the clean reference is silent: there is nothing to measure against")
        except DataError as e:
            skipped.append({"file": name, "reason": str(e)})
            tqdm.write(f"skipped {name}: {e}", file=sys.stderr)
            continue
        row = {"file": name}
        if clean:
            noise = wav["noisy"] - wav["clean"] if noisy else None  # n = noisy - clean
            row.update(score(wav["clean"], wav["enhanced"], noise, pesq_mode, sir_sar))
            if use_composite:
                row.update(composite(wav["clean"], wav["enhanced"]))
        if use_dnsmos:
            row.update(dnsmos(wav["enhanced"]))
        rows.append(row)
    if not rows:
        raise DataError(f"nothing could be scored: all {len(skipped)} files were skipped (listed above)")
    return rows, skipped


def summarise(rows):
    """{metric: {mean, std, sem, n}} over the files where the metric is finite (PESQ may be NaN);
    std is the population standard deviation (numpy's default, ddof = 0), sem the standard error of
    the mean, std (ddof = 1) / sqrt(n)."""
    summary = {}
    for key in rows[0]:
        if key != "file":
            v = np.array([r[key] for r in rows], np.float64)
            v = v[np.isfinite(v)]
            summary[key] = {"mean": float(v.mean()) if v.size else float("nan"),
                            "std": float(v.std()) if v.size else float("nan"),
                            "sem": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"),
                            "n": int(v.size)}
    return summary


def markdown_table(summary):
    lines = ["| metric | mean | std | standard error | files |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {s['mean']:.3f} | {s['std']:.3f} | {s['sem']:.3f} | {s['n']} |" for k, s in summary.items()]
    return "\n".join(lines) + "\n"


def check_writable(paths, overwrite):
    """Refuse to replace earlier results unless asked to (checked before any work)."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists: pass --overwrite to replace it, or choose another --out")


def write_atomic(path, data):
    """Write text or bytes through a temporary file and a rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def write_results(out, rows, summary, skipped, meta):
    """out/scores.csv (one row per file, full precision), scores.json (summary, skipped files and
    the options) and scores.md (the summary table)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    out = Path(out)
    write_atomic(out / "scores.csv", buf.getvalue())
    write_atomic(out / "scores.json", json.dumps({**meta, "files": len(rows), "metrics": summary,
                                                  "skipped": skipped}, indent=2) + "\n")
    write_atomic(out / "scores.md", markdown_table(summary))


def read_scores(folder):
    """{file: {metric: value}} from the scores.csv that scoring wrote into folder."""
    path = Path(folder) / "scores.csv"
    try:
        reader = csv.DictReader(io.StringIO(path.read_text()))
        if "file" not in (reader.fieldnames or []):  # an empty file or another table: not "no file in common"
            raise ValueError("its header has no 'file' column")
        rows = list(reader)
        for r in rows:  # a cut or edited file: DictReader gives a short row None values, a long one a None key
            if None in r or None in r.values():
                raise ValueError(f"the row of {r.get('file')!r} has {'more' if None in r else 'fewer'} fields than "
                                 "the header")
        return {r["file"]: {k: float(v) for k, v in r.items() if k != "file"} for r in rows}
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{path}: not a scores.csv written by evaluate.py ({str(e).splitlines()[0][:200]})")


def paired_differences(a, b):
    """Model A minus model B, file by file, over the files and metrics both score (finite values):
    {metric: {mean, sem, wins, n}}; sem = std (ddof 1) / sqrt(n), wins = files where A is higher."""
    files = sorted(a.keys() & b.keys())
    if not files:
        raise DataError("the two score sets share no file")
    out = {}
    for key in a[files[0]]:
        d = np.array([a[f][key] - b[f][key] for f in files if key in b[f]], np.float64)
        d = d[np.isfinite(d)]
        if d.size:
            out[key] = {"mean": float(d.mean()), "sem": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1
                        else float("nan"), "wins": int((d > 0).sum()), "n": int(d.size)}
    return out


def compare_table(diff, a, b):
    lines = [f"{a} - {b}, file by file", "| metric | mean difference | standard error | A higher |",
             "|---|---|---|---|"]
    for key, d in diff.items():
        lines.append(f"| {key} | {d['mean']:+.3f} | {d['sem']:.3f} | {d['wins']}/{d['n']} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line

def scoring_parser():
    """The scoring options: evaluate.py's, and listen.py's, which scores before it draws its page (an argparse
    parent: no --help of its own)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("scoring")
    g.add_argument("--clean", default="", metavar="DIR", help="folder of clean references")
    g.add_argument("--enhanced", nargs="+", default=[], metavar="DIR",
                   help="folder of enhanced files to score (subfolders too); several: one results folder OUT/NAME each")
    g.add_argument("--noisy", default="", metavar="DIR",
                   help="folder of noisy inputs: adds SI-SIR and SI-SAR (noise = noisy - clean); in listen.py, the "
                   "page's first column (scored too, into OUT/noisy), with --clean, or without it where --dnsmos "
                   "scores")
    g.add_argument("--out", default="", metavar="DIR", help="results folder (scores.csv, scores.json, scores.md); "
                   "empty: the --enhanced folder; required with several --enhanced folders, and by listen.py")
    g.add_argument("--overwrite", action="store_true", help="replace earlier result files in --out")
    g.add_argument("--names", nargs="+", default=[], metavar="NAME",
                   help="a name for each of several --enhanced folders, in order: its results folder OUT/NAME (and "
                   "its column on listen.py's page); empty: the folders' own names")
    g.add_argument("--pesq-mode", default="wb", choices=("wb", "nb"),
                   help="PESQ wide-band or narrow-band (column pesq_nb)")
    g.add_argument("--sir-sar", default="sgmse", choices=("sgmse", "projection"),
                   help="SI-SIR/SI-SAR decomposition: SGMSE+'s energy_ratios or the joint least-squares projection")
    g.add_argument("--composite", action="store_true", help="add CSIG/CBAK/COVL (needs pysepm-evo)")
    g.add_argument("--dnsmos", action="store_true",
                   help="add DNSMOS SIG/BAK/OVRL (needs speechmos); works without --clean")
    g.add_argument("--max-length-diff", type=int, default=MAX_LENGTH_DIFF, metavar="N",
                   help="samples at 16 kHz by which matched files may differ (trimmed to the shorter)")
    return p


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[scoring_parser()],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("paired comparison")
    g.add_argument("--compare", nargs=2, default=[], metavar=("A", "B"),
                   help="two results folders of this scoring (scores.csv): mean difference A - B per metric over "
                   "the files both hold, its standard error and how many files A wins")
    return p


def check_scoring(a, page=False):
    """The scoring options checked before any work: the folders they name, the references they need, the
    optional packages. page: for listen.py's page, where --noisy without --clean is a column to listen to."""
    for folder in (a.clean, a.noisy, *a.enhanced):
        if folder and not Path(folder).is_dir():
            raise DataError(f"{folder}: no such folder")
    if a.out and Path(a.out).exists() and not Path(a.out).is_dir():
        raise DataError(f"--out {a.out}: a file, not a folder; choose another")
    if a.max_length_diff < 0:
        raise DataError(f"--max-length-diff {a.max_length_diff}: must be at least 0")
    check_request(a.clean, a.noisy, a.dnsmos, page)
    if a.composite:
        require("pysepm", "pysepm-evo", "--composite")
    if a.dnsmos:
        require("speechmos.dnsmos", "speechmos", "--dnsmos", f"-r {Path(__file__).parent / 'requirements-dnsmos.txt'}")


def name_versions(enhanced, names):
    """{name: folder} of --enhanced folders, each NAME from --names or the folder's own name: a folder name."""
    names = names or [Path(folder).resolve().name for folder in enhanced]
    if len(names) != len(enhanced):
        raise DataError(f"--names gives {len(names)} names for {len(enhanced)} --enhanced folders")
    folders = {}
    for name, folder in zip(names, enhanced):
        if not re.fullmatch(r"\w[\w.-]*", name):
            raise DataError(f"--names {name!r}: a name becomes a folder name: letters, digits, '_', '-' and '.'")
        if name in folders:
            raise DataError(f"the name {name} is taken by another folder; choose others with --names")
        folders[name] = folder
    return folders


def check_apart(written, inputs):
    """No folder written may be an input folder, lie in one or hold one."""
    for folder in filter(None, inputs):
        i = Path(folder).resolve()
        for r in written:
            if r.resolve() == i or i in r.resolve().parents or r.resolve() in i.parents:
                raise DataError(f"{r}: would be written in or around the input folder {folder}; choose another --out")


def plan_versions(a):
    """({name: folder to score}, {name: its results folder}). One --enhanced folder: the version 'enhanced',
    results in --out or else the folder itself. Several folders: results in OUT/NAME (name_versions), none of
    them an input folder, in one or around one."""
    if not a.enhanced:
        raise DataError("--enhanced is required")
    if len(a.enhanced) == 1:
        if a.names:
            raise DataError("--names names several --enhanced folders (their results folders OUT/NAME)")
        return {"enhanced": a.enhanced[0]}, {"enhanced": Path(a.out or a.enhanced[0])}
    if not a.out:
        raise DataError("--out is required with several --enhanced folders")
    folders = name_versions(a.enhanced, a.names)
    outs = {name: Path(a.out) / name for name in folders}
    check_apart(outs.values(), (a.clean, a.noisy, *a.enhanced))
    return folders, outs


def score_versions(folders, a):
    """{name: (rows, skipped)} of each folder {name: folder}, scored with the options of a."""
    scored = {}
    for name, folder in folders.items():
        if len(folders) > 1:
            print(f"scoring {name}: {folder}", flush=True)
        scored[name] = score_folders(folder, a.clean, a.noisy if a.clean else "", a.pesq_mode, a.sir_sar,
                                     a.composite, a.dnsmos, a.max_length_diff)  # no clean: noisy is a column only
    return scored


def write_versions(scored, folders, outs, a):
    """Each version's results written into its results folder outs[name], its table printed:
    {name: (rows, summary, skipped)}."""
    results = {}
    for name, (rows, skipped) in scored.items():
        summary = summarise(rows)
        meta = {"clean": a.clean, "enhanced": folders[name], "noisy": a.noisy, "pesq_mode": a.pesq_mode,
                "sir_sar": a.sir_sar if a.noisy and a.clean else None}
        write_results(outs[name], rows, summary, skipped, meta)
        print(("" if len(scored) == 1 else f"{name}\n") + markdown_table(summary), end="")
        print(f"{len(rows)} files scored, {len(skipped)} skipped; results in {outs[name]}/")
        results[name] = rows, summary, skipped
    return results


def run_scoring(a):
    """Score each version of plan_versions and write its results. Returns (rows, summary, skipped) for one
    --enhanced folder, else {name: that triple}."""
    check_scoring(a)
    folders, outs = plan_versions(a)
    check_writable([outs[name] / f for name in outs for f in RESULT_FILES], a.overwrite)
    results = write_versions(score_versions(folders, a), folders, outs, a)
    return results["enhanced"] if len(a.enhanced) == 1 else results


def main(argv=None):
    a = make_parser().parse_args(argv)
    try:
        if a.compare:
            diff = paired_differences(read_scores(a.compare[0]), read_scores(a.compare[1]))
            print(compare_table(diff, *a.compare), end="")
            return diff
        return run_scoring(a)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
