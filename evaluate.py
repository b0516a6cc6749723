"""The paper's metrics, folder scoring, spectrogram pictures and a speed benchmark (METHOD.md section 7).

    python evaluate.py --clean CLEAN --enhanced ENHANCED --noisy NOISY   # per-file CSV, JSON and markdown summary
    python evaluate.py --enhanced ENHANCED --dnsmos                       # no reference: DNSMOS (needs speechmos)
    python evaluate.py --clean C --enhanced E --noisy N --plot p287_001   # and a PNG spectrogram (needs matplotlib)
    python evaluate.py --clean C --noisy N --enhanced T S --names teacher student --out OUT --page   # listening page
    python evaluate.py --benchmark --preset small --device cuda           # teacher (30-step PC) vs student speed
    python evaluate.py --benchmark --batch 1 8 --precision fp32 bf16      # one run per batch size and precision
    python evaluate.py --benchmark --calls-only --batch 1 8 --precision fp32 tf32 bf16 fp16 --peak-tflops 765
    python evaluate.py --benchmark --calls-only --batch 8 --precision fp16 --compile --cuda-graph --peak-tflops 765
    python evaluate.py --curves runs/teacher/log.jsonl runs/rosecd/log.jsonl --out .   # training_curves.png
    python evaluate.py --compare scores/rosecd scores/teacher   # paired differences of two scored folders

The metric functions take 16 kHz float numpy arrays of equal length, the reference first.
Folders are matched by relative path without extension (clean/a/b.wav goes with enhanced/a/b.flac).
"""
import argparse
import csv
import importlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data import AUDIO_EXTS, DEMO, HOP, SAMPLE_RATE, DataError, crop_samples, load_audio, read_audio, \
    resample, wav_to_spec
from enhance import PRECISIONS, enhance_batch, optimise, pick_device, precision
from listen import LABELS, spectrogram_db, write_atomic, write_page
from model import NUM_FREQS, PRESETS, Denoiser, load_model, pad_spec

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
    """DNSMOS P.835 SIG, BAK, OVRL (1 to 5) of a recording, no reference needed (speechmos)."""
    from speechmos import dnsmos as model
    r = model.run(np.asarray(estimate, np.float32), sr=SAMPLE_RATE)
    return {"dnsmos_sig": float(r["sig_mos"]), "dnsmos_bak": float(r["bak_mos"]), "dnsmos_ovrl": float(r["ovrl_mos"])}


def require(module, package, option):
    """Stop before any work, with the install line, when an optional package is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise DataError(f"{option} needs the optional package {package}, which is not installed "
                        f"(pip install {package})") from None


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


def check_request(clean, noisy, use_dnsmos):
    if not clean and not use_dnsmos:
        raise DataError("--clean is required (without a clean reference only --dnsmos can score)")
    if noisy and not clean:
        raise DataError("--noisy needs --clean (the noise is noisy - clean)")


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
    """{metric: {mean, std, n}} over the files where the metric is finite (PESQ may be NaN);
    std is the population standard deviation (numpy's default, ddof = 0)."""
    summary = {}
    for key in rows[0]:
        if key != "file":
            v = np.array([r[key] for r in rows], np.float64)
            v = v[np.isfinite(v)]
            summary[key] = {"mean": float(v.mean()) if v.size else float("nan"),
                            "std": float(v.std()) if v.size else float("nan"), "n": int(v.size)}
    return summary


def markdown_table(summary):
    lines = ["| metric | mean | std | files |", "|---|---|---|---|"]
    lines += [f"| {k} | {s['mean']:.3f} | {s['std']:.3f} | {s['n']} |" for k, s in summary.items()]
    return "\n".join(lines) + "\n"


def check_writable(paths, overwrite):
    """Refuse to replace earlier results unless asked to (checked before any work)."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists: pass --overwrite to replace it, or choose another --out")


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
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
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


# ----------------------------------------------------------------------------- pictures

def save_png(fig, png, dpi):
    """Write a matplotlib figure through a temporary file and a rename, then close it."""
    import matplotlib.pyplot as plt
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png.with_name(png.name + ".tmp"), format="png", dpi=dpi)
    os.replace(png.with_name(png.name + ".tmp"), png)
    plt.close(fig)


def plot_spectrograms(paths, png):
    """One PNG of the log-magnitude spectrograms of paths {role: file} (noisy, enhanced, clean,
    left to right), STFT 510/128 as the model sees it, one colour scale: 80 dB below the loudest bin."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    roles = [r for r in ("noisy", "enhanced", "clean") if r in paths]
    specs = {r: spectrogram_db(load_audio(paths[r])) for r in roles}
    vmax = max(s.max() for s in specs.values())
    fig, axes = plt.subplots(1, len(roles), figsize=(4 * len(roles) + 1, 4), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, r in zip(axes[0], roles):
        seconds = specs[r].shape[1] * HOP / SAMPLE_RATE
        im = ax.imshow(specs[r], origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                       extent=(0, seconds, 0, SAMPLE_RATE / 2000))
        ax.set_title(f"{r}: {Path(paths[r]).name}")
        ax.set_xlabel("time [s]")
    axes[0][0].set_ylabel("frequency [kHz]")
    fig.colorbar(im, ax=list(axes[0]), label="dB")
    save_png(fig, png, dpi=100)


def read_log(path):
    """The JSON-lines log of teacher.py / distill.py as a list of dicts; a clear error when unreadable."""
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable training log ({str(e).splitlines()[0][:200]})")


def plot_curves(logs, png, smooth=20):
    """Training curves of teacher.py / distill.py runs (their log.jsonl files) in one PNG: a column
    per kind (teacher, student), rows: training loss (moving mean over `smooth` log entries), and
    the validation PESQ and SI-SDR of the EMA weights (a student's one step, dashed: its teacher)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = {}
    for path in logs:
        entries = read_log(path)
        # a distill.py run: its start entry's config names a teacher, or it validated a student
        kind = "student" if any("teacher" in e.get("config", {}) or "student_pesq" in e for e in entries) else "teacher"
        runs.setdefault(kind, []).append((Path(path).parent.name, entries))
    fig, axes = plt.subplots(3, len(runs), figsize=(6 * len(runs), 9), squeeze=False, layout="constrained")
    for col, (kind, named) in enumerate(sorted(runs.items(), key=lambda kv: kv[0] != "teacher")):
        loss_key, prefix = ("loss", "") if kind == "teacher" else ("consistency", "student_")
        for name, entries in named:
            train = [e for e in entries if e.get("event") == "train" and loss_key in e]
            valid = [e for e in entries if e.get("event") == "valid"]
            if train:
                values = np.convolve([e[loss_key] for e in train], np.ones(smooth) / smooth, mode="valid") \
                    if len(train) >= smooth else [e[loss_key] for e in train]
                axes[0][col].plot([e["step"] for e in train][len(train) - len(values):], values, label=name)
            for row, metric in ((1, "pesq"), (2, "si_sdr")):
                line = axes[row][col].plot([e["step"] for e in valid], [e[prefix + metric] for e in valid], "o-",
                                           label=name)
                if kind == "student" and valid:
                    axes[row][col].axhline(valid[0][f"teacher_{metric}"], ls="--", color=line[0].get_color())
        axes[0][col].set(title=f"{kind}: training loss ({loss_key})", yscale="log")
        axes[1][col].set(title="validation PESQ" + (" (one step; dashed: teacher)" if kind == "student" else ""))
        axes[2][col].set(title="validation SI-SDR [dB]", xlabel="update")
        for row in range(3):
            axes[row][col].legend(fontsize=8)
            axes[row][col].grid(alpha=0.3)
    save_png(fig, png, dpi=90)


# ----------------------------------------------------------------------------- speed

def load_denoiser(checkpoint, preset, c_in, device):
    """(network, description): a checkpoint's EMA weights, or a fresh network of the preset
    (speed does not depend on the weights)."""
    if not checkpoint:
        return Denoiser(preset, c_in).to(device).eval(), f"{preset}, random weights"
    D, _, kind = load_model(checkpoint, device)  # a teacher or a student checkpoint (ours or official), checked
    return D, f"{D.preset or 'nf ' + str(D.shape['nf'])} {kind}, {checkpoint}"


@torch.no_grad()
def flops_per_call(D, num_samples):
    """FLOPs of one network call on the padded spectrogram of num_samples samples, counted by
    torch.utils.flop_counter (2 per multiply-add of convolutions, matmuls and attention)."""
    from torch.utils.flop_counter import FlopCounterMode
    device = next(D.parameters()).device
    y, _ = pad_spec(wav_to_spec(torch.randn(num_samples, device=device))[None])
    with FlopCounterMode(display=False) as counter:
        D(y, y, torch.full((1,), D.sde.T, device=device))
    return counter.get_total_flops()


def synchronize(device):
    """Wait for the device's queued work (a GPU's kernels run asynchronously; a CPU's have finished)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_enhance(models, noisy, repeats=5, warmup=1, seed=0, batch=1, mode="fp32"):
    """{role: (median seconds, network calls, all timed seconds)} of enhance_batch (the whole pipeline:
    normalisation, STFT, sampler, inverse STFT) on `batch` copies of noisy, for models
    {role: (D, steps)} on one device, with the network's arithmetic `mode` (enhance.precision).

    The models take turns, run by run, so that a change in the machine's load affects them alike.
    Each timed run follows `warmup` untimed one-call enhancements by the same network: the first
    ones build the kernels and memory pools for this input shape, the later ones bring its weights
    back into the caches after the other model ran (as when one model enhances file after file).
    On a GPU the clock is read after torch.cuda.synchronize().
    """
    device = next(next(iter(models.values()))[0].parameters()).device
    noisy = np.tile(noisy, (batch, 1))
    times, calls = {role: [] for role in models}, {}
    with precision(mode, device):
        for _ in range(repeats):
            for role, (D, steps) in models.items():
                for _ in range(warmup):
                    enhance_batch(D, D.sde, noisy, 1, torch.Generator(device=device).manual_seed(seed))
                generator = torch.Generator(device=device).manual_seed(seed)
                synchronize(device)
                t0 = time.perf_counter()
                _, calls[role] = enhance_batch(D, D.sde, noisy, steps, generator)
                synchronize(device)
                times[role].append(time.perf_counter() - t0)
    return {role: (float(np.median(times[role])), calls[role], times[role]) for role in models}


def benchmark_device(device, batch, cuda_graph):
    """The torch.device of a benchmark, its options checked."""
    if batch < 1:
        raise DataError(f"--batch {batch}: must be at least 1")
    device = pick_device(device)
    if cuda_graph and device.type != "cuda":
        raise DataError(f"--cuda-graph: CUDA graphs need a GPU; the device is {device}")
    return device


def benchmark(preset="reference", checkpoint_teacher="", checkpoint_student="", device="auto", steps=30,
              repeats=5, warmup=1, seconds=4.0, input_path="", seed=0, threads=0, batch=1, mode="fp32",
              compiled=False, cuda_graph=False):
    """Teacher (PC, N = steps, 2N calls) and student (one call) on the same input and device:
    median time, real-time factor RTF = time / audio duration (batch x the input's), speedup,
    FLOPs and the FLOP rate achieved. threads > 0 sets torch's CPU threads for the run (one
    thread is steadier on a busy machine). mode: fp32, tf32, bf16 or fp16 (enhance.precision).
    Both networks go through enhance.optimise (the memory format, cuDNN's algorithm search), torch.compile
    if compiled, a CUDA graph of the input's shape if cuda_graph (the warm-up calls compile and capture)."""
    default_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    device = benchmark_device(device, batch, cuda_graph)
    input_path = input_path or str(DEMO / "vbdmd" / "noisy" / "p287_003.wav")
    noisy = load_audio(input_path)
    if seconds > 0:
        noisy = np.resize(noisy, int(seconds * SAMPLE_RATE))  # crop, or repeat the file, to `seconds`
    duration = len(noisy) / SAMPLE_RATE * batch
    (teacher, teacher_what), (student, student_what) = (load_denoiser(checkpoint_teacher, preset, "edm", device),
                                                        load_denoiser(checkpoint_student, preset, "one", device))
    flops = {role: flops_per_call(D, len(noisy)) * batch for role, D in (("teacher", teacher), ("student", student))}
    frames = -(-(1 + len(noisy) // HOP) // 64) * 64  # STFT frames of the input, padded to a multiple of 64
    for D in (teacher, student):  # after counting the FLOPs: a replayed graph shows no operations to count
        optimise(D, device, compiled, (batch, 4, NUM_FREQS, frames) if cuda_graph else None)
    timed = time_enhance({"teacher": (teacher, steps), "student": (student, 1)}, noisy, repeats, warmup, seed,
                         batch, mode)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "input": input_path,
              "seconds": duration, "batch": batch, "precision": mode, "compiled": compiled, "cuda_graph": cuda_graph,
              "repeats": repeats, "warmup": warmup}
    for role, what in (("teacher", teacher_what), ("student", student_what)):
        median, calls, times = timed[role]
        result[role] = {"model": what, "steps": steps if role == "teacher" else 1, "calls": calls, "time_s": median,
                        "times_s": times, "rtf": median / duration, "gflop_per_call": flops[role] / 1e9,
                        "gflop_per_audio_second": flops[role] * calls / duration / 1e9,
                        "tflop_per_s": flops[role] * calls / median / 1e12}
    result["speedup"] = result["teacher"]["time_s"] / result["student"]["time_s"]
    result["call_ratio"] = result["teacher"]["calls"] / result["student"]["calls"]
    torch.set_num_threads(default_threads)
    return result


@torch.no_grad()
def time_calls(D, x_T, y, t, mode="fp32", repeats=20, warmup=3):
    """(seconds of each of `repeats` network calls D(x_T, y, t) alone, the last output): no STFT, no
    sampler, no copies to or from the device, after `warmup` untimed calls (they compile and capture
    where asked); on a GPU each call is timed between two synchronisations."""
    device = x_T.device
    times = []
    with precision(mode, device):
        for _ in range(warmup + repeats):
            synchronize(device)
            t0 = time.perf_counter()
            out = D(x_T, y, t)
            synchronize(device)
            times.append(time.perf_counter() - t0)
    return times[warmup:], out


def benchmark_calls(preset="reference", checkpoint="", device="auto", batch=1, mode="fp32", frames=256, repeats=20,
                    warmup=3, compiled=False, cuda_graph=False, peak_tflops=0.0, threads=0, seed=0):
    """One network call of the student (checkpoint, or random weights of preset) alone: median ms per call,
    RTF per call (time / the batch's audio, batch x (frames - 1) x 128 samples), FLOPs and TFLOP/s
    achieved, and with peak_tflops > 0 (the device's measured ceiling) the percentage of it; and the
    relative error of the timed call's output against the plain float32 call, ||D - D_32|| / ||D_32||.
    Random weights: NCSN++ starts its output layers at zero, which would make the output the skip
    term alone; such layers get N(0, 0.01^2) weights here, so that every path reaches the output."""
    default_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    if frames < 64 or frames % 64:
        raise DataError(f"--frames {frames}: must be a positive multiple of 64 (the U-Net halves it 6 times)")
    device = benchmark_device(device, batch, cuda_graph)
    D, what = load_denoiser(checkpoint, preset, "one", device)
    generator = torch.Generator(device=device).manual_seed(seed)
    if not checkpoint:
        with torch.no_grad():
            for p in D.parameters():
                if not p.any():
                    p.normal_(0, 0.01, generator=generator)
    flops = flops_per_call(D, crop_samples(frames)) * batch  # before optimise: a replayed graph shows no operations
    x_T, y = (0.1 * torch.randn(batch, 1, NUM_FREQS, frames, dtype=torch.complex64, device=device,
                                generator=generator) for _ in range(2))
    t = torch.full((batch,), D.sde.T, device=device)
    with torch.no_grad(), precision("fp32", device):
        exact = D(x_T, y, t)  # plain float32, before optimise: the reference of the error
    optimise(D, device, compiled, (batch, 4, NUM_FREQS, frames) if cuda_graph else None)
    times, out = time_calls(D, x_T, y, t, mode, repeats, warmup)
    error = float(torch.linalg.norm(out - exact) / torch.linalg.norm(exact))
    median, duration = float(np.median(times)), batch * crop_samples(frames) / SAMPLE_RATE
    result = {"kind": "calls", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "model": what, "batch": batch,
              "frames": frames, "seconds": duration, "precision": mode, "compiled": compiled, "cuda_graph": cuda_graph,
              "repeats": repeats, "warmup": warmup, "ms_per_call": 1e3 * median, "times_s": times,
              "rtf": median / duration, "gflop_per_call": flops / 1e9, "tflop_per_s": flops / median / 1e12,
              "peak_tflops": peak_tflops, "rel_error_vs_fp32": error,
              "percent_of_peak": 100 * flops / median / 1e12 / peak_tflops if peak_tflops > 0 else None}
    torch.set_num_threads(default_threads)
    return result


def network_variant(r):
    return ("compiled" if r["compiled"] else "eager") + (" + CUDA graph" if r["cuda_graph"] else "")


def calls_table(results):
    """One markdown row per run of the calls-only benchmark."""
    lines = ["| device | model | batch | frames | precision | network | ms/call | RTF | GFLOP/call | TFLOP/s "
             "| % of peak | error vs fp32 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        peak = f"{r['percent_of_peak']:.1f} % of {r['peak_tflops']:g}" if r["percent_of_peak"] is not None else "-"
        lines.append(f"| {r['device']} | {r['model']} | {r['batch']} | {r['frames']} | {r['precision']} "
                     f"| {network_variant(r)} | {r['ms_per_call']:.2f} | {r['rtf']:.5f} | {r['gflop_per_call']:.1f} "
                     f"| {r['tflop_per_s']:.2f} | {peak} | {r['rel_error_vs_fp32']:.1e} |")
    return "\n".join(lines) + "\n"


def benchmark_table(r):
    lines = [f"speed on {r['device']} ({r['threads']} threads), batch {r['batch']} x {r['seconds'] / r['batch']:.2f} s "
             f"of audio, {r['precision']}, {network_variant(r)}, median of {r['repeats']} runs, each after "
             f"{r['warmup']} untimed one-call warm-up",
             f"{'':8s} {'model':34s} {'steps':>5s} {'calls':>5s} {'GFLOP/call':>10s} {'GFLOP/s audio':>13s}"
             f" {'time [s]':>9s} {'RTF':>8s} {'TFLOP/s':>8s}"]
    for role in ("teacher", "student"):
        m = r[role]
        lines.append(f"{role:8s} {m['model'][:34]:34s} {m['steps']:5d} {m['calls']:5d} {m['gflop_per_call']:10.2f}"
                     f" {m['gflop_per_audio_second']:13.1f} {m['time_s']:9.4f} {m['rtf']:8.4f} {m['tflop_per_s']:8.2f}")
    lines.append(f"speedup (teacher time / student time): {r['speedup']:.1f}"
                 f"  (ratio of network calls: {r['call_ratio']:.0f})")
    return "\n".join(lines) + "\n"


def summary_table(results):
    """One markdown row per (batch, precision) run of the benchmark."""
    lines = ["| batch | precision | network | teacher s | teacher RTF | student ms | student RTF | student TFLOP/s "
             "| speedup |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t, s = r["teacher"], r["student"]
        lines.append(f"| {r['batch']} | {r['precision']} | {network_variant(r)} | {t['time_s']:.3f} | {t['rtf']:.4f} | {1e3 * s['time_s']:.2f} "
                     f"| {s['rtf']:.5f} | {s['tflop_per_s']:.1f} | {r['speedup']:.1f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line

def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("scoring")
    g.add_argument("--clean", default="", metavar="DIR", help="folder of clean references")
    g.add_argument("--enhanced", nargs="+", default=[], metavar="DIR",
                   help="folder of enhanced files to score (subfolders too); several: one results folder OUT/NAME each")
    g.add_argument("--noisy", default="", metavar="DIR",
                   help="folder of noisy inputs: adds SI-SIR and SI-SAR (noise = noisy - clean)")
    g.add_argument("--out", default="", metavar="DIR", help="results folder (scores.csv, scores.json, scores.md, PNGs; "
                   "benchmark.json); empty: the --enhanced folder, or no file for --benchmark; required with several "
                   "--enhanced folders or --page")
    g.add_argument("--overwrite", action="store_true", help="replace earlier result files in --out")
    g.add_argument("--pesq-mode", default="wb", choices=("wb", "nb"),
                   help="PESQ wide-band or narrow-band (column pesq_nb)")
    g.add_argument("--sir-sar", default="sgmse", choices=("sgmse", "projection"),
                   help="SI-SIR/SI-SAR decomposition: SGMSE+'s energy_ratios or the joint least-squares projection")
    g.add_argument("--composite", action="store_true", help="add CSIG/CBAK/COVL (needs pysepm-evo)")
    g.add_argument("--dnsmos", action="store_true",
                   help="add DNSMOS SIG/BAK/OVRL (needs speechmos); works without --clean")
    g.add_argument("--max-length-diff", type=int, default=MAX_LENGTH_DIFF, metavar="N",
                   help="samples at 16 kHz by which matched files may differ (trimmed to the shorter)")
    g.add_argument("--plot", nargs="+", default=[], metavar="NAME",
                   help="files (relative path, extension optional) to draw as OUT/NAME.png (needs matplotlib)")
    g = p.add_argument_group("listening page")
    g.add_argument("--names", nargs="+", default=[], metavar="NAME",
                   help="a name for each --enhanced folder, in order: its results folder OUT/NAME and its column on "
                   "the page; empty: the folders' own names")
    g.add_argument("--page", action="store_true",
                   help="also write OUT/index.html: per file, a player, a spectrogram and the scores of the noisy "
                   "input (scored too, into OUT/noisy), of each --enhanced folder and of the clean reference; audio "
                   "and PNGs in OUT/NAME/, linked by relative paths")
    g.add_argument("--page-rows", type=int, default=0, metavar="N",
                   help="files on the page: the N/2 with the lowest and the N/2 with the highest --page-sort of the "
                   "first --enhanced folder; 0: every file")
    g.add_argument("--page-sort", default="pesq", choices=list(LABELS), metavar="METRIC",
                   help="score that --page-rows picks files by: " + ", ".join(LABELS))
    g = p.add_argument_group("speed benchmark")
    g.add_argument("--benchmark", action="store_true", help="time the teacher and the student instead of scoring")
    g.add_argument("--preset", default="reference", choices=sorted(PRESETS), help="network size without checkpoints")
    g.add_argument("--checkpoint-teacher", default="", metavar="CKPT",
                   help="teacher checkpoint (this project's or an official .ckpt); empty: random weights of --preset")
    g.add_argument("--checkpoint-student", default="", metavar="CKPT",
                   help="student checkpoint (this project's or an official .ckpt); empty: random weights of --preset")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--steps", type=int, default=30, help="teacher sampler steps N (2N network calls)")
    g.add_argument("--repeats", type=int, default=5, help="timed runs of each model (the median is reported)")
    g.add_argument("--warmup", type=int, default=1, help="untimed one-call enhancements before each timed run")
    g.add_argument("--seconds", type=float, default=4.0, help="audio length: --input cropped or repeated (0: as is)")
    g.add_argument("--input", default="", metavar="FILE",
                   help="noisy file to enhance; empty: demo/vbdmd/noisy/p287_003.wav")
    g.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    g.add_argument("--seed", type=int, default=0, help="seed of the samplers' noise")
    g.add_argument("--batch", type=int, nargs="+", default=[1], metavar="B",
                   help="copies of the input enhanced together; several values: one run each")
    g.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS,
                   help="network arithmetic: fp32 (TF32 off), tf32, bf16 or fp16 (autocast; fp16 on a GPU only); "
                   "several: one run each")
    g.add_argument("--compile", dest="compiled", action="store_true",
                   help="compile the networks with torch.compile (the warm-up calls compile)")
    g.add_argument("--cuda-graph", action="store_true",
                   help="GPU only: replay the networks from a CUDA graph of the timed shape (captured in warm-up)")
    g.add_argument("--calls-only", action="store_true",
                   help="time only the student's network call D(x_T, y, T) on a random [batch, 1, 256, --frames] "
                   "spectrogram: ms per call, RTF, TFLOP/s (--checkpoint-student or --preset; no teacher, no STFT)")
    g.add_argument("--frames", type=int, default=256,
                   help="spectrogram frames per call for --calls-only (256 = 2.04 s, the training crop)")
    g.add_argument("--peak-tflops", type=float, default=0.0, metavar="TF",
                   help="the device's measured peak TFLOP/s (e.g. 765: a bf16 matrix product on the H100 of "
                   "RESULTS.md): report the percentage achieved; 0: no percentage")
    g = p.add_argument_group("paired comparison")
    g.add_argument("--compare", nargs=2, default=[], metavar=("A", "B"),
                   help="two results folders of this scoring (scores.csv): mean difference A - B per metric over "
                   "the files both hold, its standard error and how many files A wins")
    g = p.add_argument_group("training curves")
    g.add_argument("--curves", nargs="+", default=[], metavar="LOG",
                   help="log.jsonl files of teacher.py / distill.py runs: draw OUT/training_curves.png (needs matplotlib)")
    return p


def run_curves(a):
    require("matplotlib", "matplotlib", "--curves")
    png = Path(a.out or ".") / "training_curves.png"
    check_writable([png], a.overwrite)
    plot_curves(a.curves, png)
    print(f"training curves of {len(a.curves)} runs in {png}")


def run_benchmark(a):
    json_path = Path(a.out) / "benchmark.json" if a.out else None
    if json_path:
        check_writable([json_path], a.overwrite)
    results = []
    for batch in a.batch:
        for mode in a.precision:
            if a.calls_only:
                results.append(benchmark_calls(a.preset, a.checkpoint_student, a.device, batch, mode, a.frames,
                                               a.repeats, a.warmup, a.compiled, a.cuda_graph, a.peak_tflops,
                                               a.threads, a.seed))
                table = calls_table(results).splitlines()  # the header with the first run, then a row per run
                print("\n".join(table if len(results) == 1 else table[-1:]), flush=True)
                continue
            results.append(benchmark(a.preset, a.checkpoint_teacher, a.checkpoint_student, a.device, a.steps,
                                     a.repeats, a.warmup, a.seconds, a.input, a.seed, a.threads, batch, mode,
                                     a.compiled, a.cuda_graph))
            print(benchmark_table(results[-1]), end="", flush=True)
    if len(results) > 1 and not a.calls_only:
        print(summary_table(results), end="")
    if json_path:
        write_atomic(json_path, json.dumps(results, indent=2) + "\n")
    return results


def plan_versions(a):
    """({name: folder to score}, {name: its results folder}). One --enhanced folder without --page: the
    version 'enhanced', results in --out or else the folder itself. Several folders, or --page: results in
    OUT/NAME, each NAME from --names or the folder's own name; with --page and --noisy the noisy input is
    scored too, as the version 'noisy'. No results folder may be an input folder, lie in one or hold one."""
    if not a.enhanced:
        raise DataError("--enhanced is required (or --benchmark)")
    if a.page_rows and not a.page:
        raise DataError("--page-rows needs --page")
    if len(a.enhanced) == 1 and not a.page:
        if a.names:
            raise DataError("--names names several --enhanced folders, or the columns of --page")
        return {"enhanced": a.enhanced[0]}, {"enhanced": Path(a.out or a.enhanced[0])}
    if not a.out:
        raise DataError("--out is required with several --enhanced folders or --page")
    names = a.names or [Path(folder).resolve().name for folder in a.enhanced]
    if len(names) != len(a.enhanced):
        raise DataError(f"--names gives {len(names)} names for {len(a.enhanced)} --enhanced folders")
    folders = {}
    for name, folder in zip(names, a.enhanced):
        if not re.fullmatch(r"\w[\w.-]*", name):
            raise DataError(f"--names {name!r}: a name becomes a folder name: letters, digits, '_', '-' and '.'")
        if name in folders or a.page and name in ("noisy", "clean"):
            raise DataError(f"the name {name} is taken (by another folder, or a column of the page: noisy, clean); "
                            "choose others with --names")
        folders[name] = folder
    if a.page and a.noisy:
        folders["noisy"] = a.noisy
    outs = {name: Path(a.out) / name for name in folders}
    written = list(outs.values()) + ([Path(a.out) / "clean"] if a.page and a.clean else [])
    for folder in filter(None, (a.clean, a.noisy, *a.enhanced)):
        i = Path(folder).resolve()
        for r in written:
            if r.resolve() == i or i in r.resolve().parents or r.resolve() in i.parents:
                raise DataError(f"{r}: would be written in or around the input folder {folder}; choose another --out")
    return folders, outs


def run_scoring(a):
    """Score each version of plan_versions and write its results, and with --page the listening page.
    Returns (rows, summary, skipped) for one --enhanced folder without --page, else {name: that triple}."""
    single = len(a.enhanced) == 1 and not a.page
    folders, outs = plan_versions(a)
    check_request(a.clean, a.noisy, a.dnsmos)
    if a.composite:
        require("pysepm", "pysepm-evo", "--composite")
    if a.dnsmos:
        require("speechmos", "speechmos", "--dnsmos")
    if a.plot and not single:
        raise DataError("--plot draws the files of one --enhanced folder (--page shows a spectrogram of each file)")
    if a.plot:
        require("matplotlib", "matplotlib", "--plot")
    found = {role: audio_files(folder) for role, folder in
             (("enhanced", a.enhanced[0]), ("clean", a.clean), ("noisy", a.noisy)) if folder}
    names = [str(Path(n).with_suffix("")) if Path(n).suffix.lower() in AUDIO_EXTS else n for n in a.plot]
    for n in names:
        if n not in found["enhanced"]:
            raise DataError(f"--plot {n}: no such file in {a.enhanced[0]}")
    out = Path(a.out or a.enhanced[0])
    order = sorted(folders, key=lambda name: name != "noisy")  # the page's columns: noisy first, then --enhanced
    page_files = [out / "index.html"] + [out / name for name in order + ["clean"] * bool(a.clean)] if a.page else []
    check_writable([outs[name] / f for name in outs for f in RESULT_FILES] + page_files
                   + [out / f"{n}.png" for n in names], a.overwrite)

    scored = {}
    for name, folder in folders.items():
        if not single:
            print(f"scoring {name}: {folder}", flush=True)
        scored[name] = score_folders(folder, a.clean, a.noisy, a.pesq_mode, a.sir_sar, a.composite, a.dnsmos,
                                     a.max_length_diff)
    first = next(iter(folders))  # the first --enhanced folder: --page-rows picks files by its scores
    metrics = [k for k in scored[first][0][0] if k != "file"]
    if a.page_rows and a.page_sort not in metrics:
        raise DataError(f"--page-sort {a.page_sort}: {first} has no such score ({', '.join(metrics)})")
    results = {}
    for name, (rows, skipped) in scored.items():
        summary = summarise(rows)
        meta = {"clean": a.clean, "enhanced": folders[name], "noisy": a.noisy, "pesq_mode": a.pesq_mode,
                "sir_sar": a.sir_sar if a.noisy else None}
        write_results(outs[name], rows, summary, skipped, meta)
        print(("" if single else f"{name}\n") + markdown_table(summary), end="")
        print(f"{len(rows)} files scored, {len(skipped)} skipped; results in {outs[name]}/")
        results[name] = rows, summary, skipped
    for n in names:
        plot_spectrograms({role: files[n] for role, files in found.items() if n in files}, out / f"{n}.png")
    if a.page:
        sources = {name: folders[name] for name in order} | ({"clean": a.clean} if a.clean else {})
        columns = {name: audio_files(folder) for name, folder in sources.items()}
        shown = write_page(out, columns, {name: results[name][0] for name in order},
                           {name: results[name][1] for name in order}, sources, first, a.page_sort, a.page_rows)
        print(f"listening page of {shown} files: {out / 'index.html'}")
    return results["enhanced"] if single else results


def main(argv=None):
    a = make_parser().parse_args(argv)
    try:
        if a.curves:
            return run_curves(a)
        if a.compare:
            diff = paired_differences(read_scores(a.compare[0]), read_scores(a.compare[1]))
            print(compare_table(diff, *a.compare), end="")
            return diff
        return run_benchmark(a) if a.benchmark else run_scoring(a)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
