"""The method in pictures: spectrograms of a real recording as the teacher, the student and a training step see it,
the training curves of the runs, and the spectrograms of enhanced files.

    python figures.py sampling --overwrite        # redraws docs/sampling.png from the bundled p287_002 and checkpoints
    python figures.py training-step --overwrite   # redraws docs/training-step.png
    python figures.py sampling --noisy N.wav --clean C.wav --teacher T.pt --student S.pt --out sampling.png
    python figures.py curves --logs runs/teacher/log.jsonl runs/rosecd/log.jsonl   # ./training_curves.png
    python figures.py spectrograms --noisy N.wav --enhanced E.wav --clean C.wav --out E.png   # ./spectrograms.png

sampling: the noisy input y; the teacher's predictor-corrector sampler (sde.pc_sample, 30 steps) from its
start x_T = y + sigma(T) z through its states after steps 5, 10 and 20 to its output; the student's one-step
output D(x_T, y, T) from the same x_T (the same seed draws the same z); and the clean reference. The pipeline
is enhance.py's for a file of one chunk: noisy-peak normalisation, data.wav_to_spec, model.pad_spec, the
sampler, model.crop_spec (tests/test_figures.py checks that both outputs are enhance_wav's).

training-step: one step of distill.rosecd_loss, the training code itself, on a 256-frame crop of the clean /
noisy pair (the whole utterance divided by its noisy peak, then cropped, as data.PairBatches does): x_{t_n}
from the forward marginal at the drawn t_n, the teacher's Heun step to t_{n+1} (the deterministic x_{t_{n+1}}
of plain consistency distillation), the randomized x_{t_{n+1}} (ROSE-CD: fresh noise added), the student's
estimate from x_{t_n}, the target's from x_{t_{n+1}}, and their difference, which the consistency loss
shrinks. An exported student checkpoint holds only the target's (EMA) weights, so they stand in for both the
student and the target here.

Every panel of these two is the STFT magnitude in dB (the amplitude compression undone), of the signal divided
by the noisy peak, on one colour scale (80 dB below the figure's loudest bin up to it).

curves: the log.jsonl files of teacher.py and distill.py runs, a column per kind (teacher, student): the
training loss (a moving mean over --smooth log entries) and the validation PESQ and SI-SDR of the EMA weights;
no checkpoint or audio is read.

spectrograms: the noisy, enhanced and clean versions of one file side by side (any of --noisy and --clean may be
left out), STFT 510/128 as the model sees it, on one colour scale; no checkpoint is read.
"""
import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from data import ALPHA, BETA, DEMO, HOP, SAMPLE_RATE, DataError, check_one_window, check_seed, crop_samples, \
    load_audio, normalise, random_crop, wav_to_spec
from distill import CHECKPOINTS, Config, load_teacher, rosecd_loss
from enhance import pick_device
from evaluate import require
from fast import optimise
from listen import spectrogram_db
from model import crop_spec, load_model, pad_spec
from sde import pc_sample, time_grid

FIGURES = ("sampling", "training-step", "curves", "spectrograms")
NOISY = DEMO / "vbdmd" / "noisy" / "p287_002.wav"  # 3.3 s of VoiceBank-DEMAND speech in noise, held out
CLEAN = DEMO / "vbdmd" / "clean" / "p287_002.wav"
TEACHER = CHECKPOINTS / "teacher-small.pt"
STUDENT = CHECKPOINTS / "rosecd-small.pt"
STEPS = 30               # the teacher's predictor-corrector steps (docs/method.md, section 4.3)
SHOWN_STEPS = (5, 10, 20)  # the sampler's states drawn between its start and its output
DYNAMIC_RANGE = 80       # dB of the colour scale
LEVELS = 32              # colours of the scale: steps of 2.5 dB
DPI = 100
SMOOTH = 20              # curves: log entries in the moving mean of the training loss


def magnitude_db(spec):
    """dB of the STFT magnitude [256, frames] of a compressed spectrogram [1, 1, 256, frames]:
    |c| = (|c'| / beta)^(1 / alpha) undoes the amplitude compression (docs/method.md, section 1)."""
    return 20 * np.log10((spec[0, 0].abs().cpu().double().numpy() / BETA) ** (1 / ALPHA) + 1e-8)


# ----------------------------------------------------------------------------- sampling and training-step

@torch.no_grad()
def sampling_panels(teacher, sde, student, noisy, clean=None, seed=0, steps=STEPS, shown=SHOWN_STEPS):
    """[(title, spectrogram [1, 1, 256, frames])] of the sampling figure; noisy (and clean) are 16 kHz waveforms of
    equal length; the teacher samples in `steps` steps, and its states after the steps `shown` are drawn. Its teacher
    and student outputs are those of enhance.enhance_wav with the same seed."""
    device = next(teacher.parameters()).device
    peak = float(np.abs(noisy).max())
    scale = peak if peak > 0 else 1.0  # the whole file divided by its noisy peak (docs/method.md, section 1)
    y, num_frames = pad_spec(wav_to_spec(torch.from_numpy(noisy / scale).float().to(device))[None])
    ts = time_grid(sde, steps).tolist() + [0.0]  # the state after step i is at ts[i]; the last step ends at 0

    states = {}

    def keep(i, x, x_mean):  # the sampler's callback: x_T (i = 0) and the states after the shown steps
        if i == 0 or i in shown:
            states[i] = crop_spec(x, num_frames)

    generator = torch.Generator(device=device).manual_seed(seed)
    x_teacher, calls = pc_sample(sde, teacher, y, N=steps, generator=generator, callback=keep)
    generator.manual_seed(seed)  # the same z: the student starts from the teacher's x_T
    x_T = student.sde.prior_sample(y, generator)
    x_student = student(x_T, y, torch.full((1,), student.sde.T, device=device))  # one network evaluation

    panels = [("noisy input $y$", crop_spec(y, num_frames)),
              (rf"sampler's start $x_T = y + \sigma(T)\,z$, t = {sde.T:g}", states[0])]
    panels += [(f"teacher after step {i} of {steps}: $x$ at t = {ts[i]:.2f}", states[i]) for i in shown]
    panels += [(f"teacher output: {steps} steps, {calls} network calls", crop_spec(x_teacher, num_frames)),
               (r"student output $D_\theta(x_T, y, T)$, the same $x_T$: 1 call", crop_spec(x_student, num_frames))]
    if clean is not None:
        panels.append(("clean reference $x$", wav_to_spec(torch.from_numpy(clean / scale).float())[None]))
    return panels


@torch.no_grad()
def training_step_panels(teacher, sde, student, noisy, clean, num_frames=256, seed=0):
    """([(title, spectrogram [1, 1, 256, frames])], suptitle) of one ROSE-CD training step (distill.rosecd_loss with
    the published configuration) on a num_frames crop of the pair; the student's weights serve as student and target."""
    device = next(teacher.parameters()).device
    clean, noisy, _ = normalise(clean, noisy)  # the whole utterance by its noisy peak, as data.PairBatches
    clean, noisy = random_crop([clean, noisy], crop_samples(num_frames), np.random.default_rng(seed))
    clean = torch.from_numpy(clean).float()[None].to(device)
    x, y = wav_to_spec(clean), wav_to_spec(torch.from_numpy(noisy).float()[None].to(device))
    cfg = Config()  # N = 30, the randomized trajectory, the auxiliary SI-SDR and MR-STFT losses
    generator = torch.Generator(device=device).manual_seed(seed)
    loss, parts, step = rosecd_loss(student, student, teacher, sde, x, y, clean, cfg, generator)

    panels = [("clean $x$", x), ("noisy $y$", y),
              (r"$x_{t_n} = \mu(t_n) + \sigma(t_n)\,z$", step["x_tn"]),
              (r"student $D_\theta(x_{t_n}, y, t_n)$", step["D_student"]),
              (r"teacher's Heun step: deterministic $x_{t_{n+1}}$ (CD)", step["x_mean"]),
              (r"randomized $x_{t_{n+1}}$ = Heun + $g(t_n)\sqrt{T/N}\,z'$", step["x_next"]),
              (r"target $D_{\theta^-}(x_{t_{n+1}}, y, t_{n+1})$", step["D_target"]),
              (r"$D_\theta - D_{\theta^-}$: what the consistency loss shrinks", step["D_student"] - step["D_target"])]
    n, t_n, t_next = int(step["n"][0]), float(step["t_n"][0]), float(step["t_next"][0])
    suptitle = (f"n = {n + 1} of N = {cfg.num_scales}: t_n = {t_n:.3f}, t_(n+1) = {t_next:.3f};  "
                f"loss {loss.item():.2e} = consistency {parts['consistency'].item():.2e} + {cfg.sisdr_weight:.0e} x "
                f"(-SI-SDR = {parts['neg_si_sdr'].item():.1f} dB) + {cfg.mrstft_weight:.0e} x MR-STFT "
                f"{parts['mrstft'].item():.2f}")
    return panels, suptitle


def draw(panels, png, title):
    """The panels [(title, compressed spectrogram)] as magnitudes in dB, in a grid of two rows sharing the time and
    frequency axes and one colour scale; written to png. Returns the panel titles."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [(name, magnitude_db(spec)) for name, spec in panels]
    vmax = max(float(db.max()) for _, db in panels)
    columns = (len(panels) + 1) // 2
    fig, axes = plt.subplots(2, columns, figsize=(3.3 * columns + 1, 5.2), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    for ax, (name, db) in zip(axes.flat, panels):
        seconds = db.shape[1] * HOP / SAMPLE_RATE
        image = ax.imshow(db, origin="lower", aspect="auto", cmap=plt.get_cmap("magma", LEVELS),
                          vmin=vmax - DYNAMIC_RANGE, vmax=vmax, extent=(0, seconds, 0, SAMPLE_RATE / 2000),
                          interpolation="nearest")
        ax.set_title(name, fontsize=9)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("time [s]")
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency [kHz]")
    fig.colorbar(image, ax=axes, label="dB", shrink=0.9)
    fig.suptitle(title, fontsize=10)
    save_png(fig, png)
    return [name for name, _ in panels]


def save_png(fig, png, dpi=DPI):
    """Write a matplotlib figure as a PNG of 128 palette colours (a quarter of the size of matplotlib's RGBA file
    of these noisy pictures, the same look), through a temporary file and a rename; then close it."""
    import matplotlib.pyplot as plt
    from PIL import Image  # a dependency of matplotlib
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    png = Path(png)
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp")
    try:
        image = Image.open(buffer).convert("RGB").quantize(128, dither=Image.Dither.NONE)
        image.save(tmp, format="PNG", optimize=True)
        os.replace(tmp, png)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{png}: cannot write ({e.strerror or e})")


# ----------------------------------------------------------------------------- training curves

def read_log(path):
    """The JSON-lines log of teacher.py / distill.py as a list of dicts; a clear error when unreadable."""
    try:
        entries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        if not all(isinstance(e, dict) for e in entries):
            raise ValueError("a line is not a JSON object")
        return entries
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable training log ({str(e).splitlines()[0][:200]})")


def run_name(path):
    """A log's run name: its folder's for a run's own log.jsonl, else the file's (results/.../teacher-medium.jsonl)."""
    return Path(path).parent.name if Path(path).name == "log.jsonl" else Path(path).stem


def validation_sets(entry, metric):
    """{set name: key} of a validation entry's metric: "" for a single set (pesq, student_pesq), else each
    set's NAME/pesq (teacher.py and distill.py with several --valid folders)."""
    return {key.rpartition("/")[0]: key for key in entry if key.rpartition("/")[2] == metric}


def plot_curves(logs, png, smooth=SMOOTH, x="update"):
    """Training curves of teacher.py / distill.py runs (their log.jsonl files) in one PNG: a column
    per kind (teacher, student), rows: training loss (moving mean over `smooth` log entries), and
    the validation PESQ and SI-SDR of the EMA weights (a student's one step, dashed: its teacher), one
    line per validation set. x: "update", or "gpu-minutes" (summed over every allocation of a resumed
    run; a log appended across allocations is one curve). Returns {kind: [run names]}, left to right."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = {}
    for path in logs:
        entries = read_log(path)
        if not any(e.get("event") in ("train", "valid") for e in entries):  # not even one point: an empty figure
            raise DataError(f"{path}: no training or validation entries yet; nothing to draw")
        # a distill.py run: its start entry's config names a teacher, or it validated a student (on one set or more)
        kind = "student" if any("teacher" in e.get("config", {}) or validation_sets(e, "student_pesq")
                                for e in entries) else "teacher"
        runs.setdefault(kind, []).append((path, entries))
    runs = dict(sorted(runs.items(), key=lambda kv: kv[0] != "teacher"))
    fig, axes = plt.subplots(3, len(runs), figsize=(6 * len(runs), 9), squeeze=False, layout="constrained")
    for col, (kind, paths) in enumerate(runs.items()):
        loss_key, prefix = ("loss", "") if kind == "teacher" else ("consistency", "student_")
        for i, (path, entries) in enumerate(paths):
            name = run_name(path)
            # tab20 holds pairs of a dark and a light shade: a run's loss and first validation set take the dark
            # one, its second set the light one, so that a run keeps its colour across rows past ten lines
            shade = lambda j: plt.cm.tab20.colors[(2 * i + j) % 20]
            at = (lambda e: e["step"]) if x == "update" else (lambda e: e["gpu_minutes"])
            try:
                train = [e for e in entries if e.get("event") == "train" and loss_key in e]
                valid = [e for e in entries if e.get("event") == "valid"]
                if train:
                    values = np.convolve([e[loss_key] for e in train], np.ones(smooth) / smooth, mode="valid") \
                        if len(train) >= smooth else [e[loss_key] for e in train]
                    axes[0][col].plot([at(e) for e in train][len(train) - len(values):], values, label=name,
                                      color=shade(0))
                for row, metric in ((1, "pesq"), (2, "si_sdr")):
                    sets = validation_sets(valid[0], prefix + metric) if valid else {}  # a run that never validated
                    for j, (set_name, key) in enumerate(sets.items()):
                        line = axes[row][col].plot([at(e) for e in valid], [e[key] for e in valid], "o-",
                                                   label=f"{name} {set_name}".strip(),
                                                   color=shade(j) if len(sets) <= 2 else None)
                        if kind == "student":
                            teacher_key = key.replace(prefix + metric, f"teacher_{metric}")
                            axes[row][col].axhline(valid[0][teacher_key], ls="--", color=line[0].get_color())
            except (KeyError, TypeError, ValueError) as e:
                plt.close(fig)
                what = f"an entry without {e}" if isinstance(e, KeyError) else str(e).splitlines()[0][:200]
                raise DataError(f"{path}: not a log of teacher.py or distill.py ({what})") from None
        axes[0][col].set(title=f"{kind}: training loss ({loss_key})", yscale="log")
        axes[1][col].set(title="validation PESQ" + (" (one step; dashed: teacher)" if kind == "student" else ""))
        axes[2][col].set(title="validation SI-SDR [dB]", xlabel="update" if x == "update" else "GPU-minutes")
        for row in range(3):
            if not axes[row][col].lines:  # no run of this kind trained / validated: say so, not an empty frame
                what = "training" if row == 0 else "validation"
                axes[row][col].text(0.5, 0.5, f"no {what} entries in these logs", ha="center", va="center",
                                    transform=axes[row][col].transAxes)
                axes[row][col].set(xticks=[], yticks=[])
            else:
                axes[row][col].legend(fontsize=8, framealpha=0.5)  # lines behind it stay visible
            axes[row][col].grid(alpha=0.3)
    save_png(fig, png, dpi=90)
    return {kind: [run_name(path) for path, _ in paths] for kind, paths in runs.items()}


# ----------------------------------------------------------------------------- spectrograms of files

def plot_spectrograms(paths, png):
    """One PNG of the log-magnitude spectrograms of paths {role: file} (noisy, enhanced, clean,
    left to right), STFT 510/128 as the model sees it, one colour scale: 80 dB below the loudest bin.
    Returns the panel titles."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    roles = [r for r in ("noisy", "enhanced", "clean") if r in paths]
    wavs = {r: load_audio(paths[r]) for r in roles}
    for r in roles:
        check_one_window(wavs[r], paths[r], "a figure")
    specs = {r: spectrogram_db(wavs[r]) for r in roles}
    vmax = max(s.max() for s in specs.values())
    fig, axes = plt.subplots(1, len(roles), figsize=(4 * len(roles) + 1, 4), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, r in zip(axes[0], roles):
        seconds = specs[r].shape[1] * HOP / SAMPLE_RATE
        im = ax.imshow(specs[r], origin="lower", aspect="auto", cmap="magma", vmin=vmax - DYNAMIC_RANGE, vmax=vmax,
                       extent=(0, seconds, 0, SAMPLE_RATE / 2000))
        ax.set_title(f"{r}: {Path(paths[r]).name}")
        ax.set_xlabel("time [s]")
    axes[0][0].set_ylabel("frequency [kHz]")
    fig.colorbar(im, ax=list(axes[0]), label="dB")
    save_png(fig, png)
    return [f"{r}: {Path(paths[r]).name}" for r in roles]


# ----------------------------------------------------------------------------- command line

def read_pair(noisy, clean, max_seconds):
    """16 kHz waveforms of the noisy file and of its clean reference (or None), of equal length, cut to
    max_seconds."""
    noisy_path, noisy = noisy, load_audio(noisy)
    if clean is not None:
        clean = load_audio(clean)
        n = min(len(noisy), len(clean))
        noisy, clean = noisy[:n], clean[:n]
    if max_seconds is not None:
        n = int(max_seconds * SAMPLE_RATE)
        noisy, clean = noisy[:n], None if clean is None else clean[:n]
    check_one_window(noisy, noisy_path, "a figure", f" within --max-seconds {max_seconds:g}" if max_seconds else "")
    return noisy, clean


def make_figure(figure, noisy=None, clean=None, teacher=str(TEACHER), student=str(STUDENT), out=None, seed=0,
                device="cpu", max_seconds=None, num_frames=256, logs=(), smooth=SMOOTH, x="update", enhanced=None,
                overwrite=False):
    """The command line's work: draw `figure` into `out` (default docs/FIGURE.png; for curves training_curves.png
    and for spectrograms spectrograms.png in the current folder); a file already there only with overwrite.
    noisy None: the bundled p287_002 for sampling and training-step, none for spectrograms. Returns the panel
    titles, for curves {kind: [run names]}."""
    if figure not in FIGURES:
        raise DataError(f"{figure}: choose one of {', '.join(FIGURES)}")
    default = {"curves": Path("training_curves.png"), "spectrograms": Path("spectrograms.png")}.get(
        figure, Path(__file__).resolve().parent / "docs" / f"{figure}.png")
    out = Path(out) if out else default
    if out.suffix.lower() != ".png":
        raise DataError(f"--out {out}: the figure is a PNG file; name it NAME.png")
    if not out.parent.is_dir():
        raise DataError(f"--out {out}: no such folder {out.parent}; create it first")
    if out.is_dir():
        raise DataError(f"--out {out}: a folder; name the figure's file NAME.png")
    if out.exists() and not overwrite:
        raise DataError(f"--out {out}: exists; pass --overwrite to replace it")
    if figure == "curves":  # the logs only: no checkpoint, no audio
        if not logs:
            raise DataError("curves needs --logs: the log.jsonl files of teacher.py / distill.py runs")
        if smooth < 1:
            raise DataError(f"--smooth {smooth}: must be at least 1")
        require("matplotlib", "matplotlib", "figures.py")
        return plot_curves(logs, out, smooth, x)
    if figure == "spectrograms":  # the files only: no checkpoint
        if not enhanced:
            raise DataError("spectrograms needs --enhanced: the enhanced file (--noisy, --clean: drawn beside it)")
        require("matplotlib", "matplotlib", "figures.py")
        return plot_spectrograms({role: path for role, path in (("noisy", noisy), ("enhanced", enhanced),
                                                                ("clean", clean)) if path}, out)
    noisy = noisy or str(NOISY)
    if max_seconds is not None and not max_seconds > 0:
        raise DataError(f"--max-seconds {max_seconds}: must be positive")
    check_seed(seed)
    if num_frames < 64 or num_frames % 64:
        raise DataError(f"--num-frames {num_frames}: must be a positive multiple of 64 (the U-Net's down-sampling)")
    if clean is None and Path(noisy).resolve() == NOISY:
        clean = str(CLEAN)  # the bundled file's clean counterpart
    if figure == "training-step" and clean is None:
        raise DataError("training-step needs --clean: a training step starts from the clean spectrogram")
    require("matplotlib", "matplotlib", "figures.py")  # before any work
    noisy_wav, clean_wav = read_pair(noisy, clean, max_seconds)
    device = pick_device(device)
    teacher_D, sde = load_teacher(teacher, device)
    student_D, _, kind = load_model(student, device)
    if kind != "student":
        raise DataError(f"{student} is a {kind} checkpoint: --student needs a ROSE-CD student (distill.py's, "
                        "or an official one)")
    optimise(teacher_D, device)  # as enhance.py does: channels-last on a CPU, oneDNN's fast layout
    optimise(student_D, device)
    name = Path(noisy).name
    if figure == "sampling":
        panels = sampling_panels(teacher_D, sde, student_D, noisy_wav, clean_wav, seed)
        title = f"Sampling {name}: the teacher's {STEPS}-step predictor-corrector and the student's one step"
    else:
        panels, numbers = training_step_panels(teacher_D, sde, student_D, noisy_wav, clean_wav, num_frames, seed)
        title = f"One ROSE-CD training step on a {num_frames}-frame crop of {name}\n{numbers}"
    return draw(panels, out, title)


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=FIGURES,
                        help="sampling: the teacher's sampler and the student's one step; training-step: one "
                        "ROSE-CD training step; curves: the training curves of teacher.py / distill.py runs; "
                        "spectrograms: the noisy, enhanced and clean versions of a file")
    parser.add_argument("--noisy", metavar="FILE", default=None,
                        help="sampling, training-step: noisy recording (any rate, channels averaged); spectrograms: "
                        "the noisy file, drawn left (default: demo/vbdmd/noisy/p287_002.wav for sampling and "
                        "training-step, none for spectrograms)")
    parser.add_argument("--clean", metavar="FILE", default=None,
                        help="sampling, training-step, spectrograms: its clean reference; training-step needs it "
                        "(default: demo/vbdmd/clean/p287_002.wav for the default --noisy, else none)")
    parser.add_argument("--enhanced", metavar="FILE", default=None,
                        help="spectrograms: the enhanced file, drawn between --noisy and --clean on their colour "
                        "scale (default: none; spectrograms needs it)")
    parser.add_argument("--teacher", metavar="CKPT", default=str(TEACHER),
                        help="sampling, training-step: teacher checkpoint, this project's or an official one "
                        "(default: checkpoints/teacher-small.pt)")
    parser.add_argument("--student", metavar="CKPT", default=str(STUDENT),
                        help="sampling, training-step: ROSE-CD student checkpoint; its EMA weights are also the "
                        "target in training-step (default: checkpoints/rosecd-small.pt)")
    parser.add_argument("--logs", metavar="LOG", nargs="+", default=[],
                        help="curves: the log.jsonl files of teacher.py / distill.py runs, each named by its folder "
                        "(default: none; curves needs them)")
    parser.add_argument("--out", metavar="PNG", default=None,
                        help="the figure's file, in an existing folder (default: docs/FIGURE.png beside figures.py; "
                        "for curves training_curves.png and for spectrograms spectrograms.png in the current folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the file at --out where there is one, as to redraw the figures of docs/ "
                        "(default: off: an existing file is kept and nothing is drawn)")
    parser.add_argument("--seed", metavar="N", type=int, default=0,
                        help="sampling, training-step: seed of every random draw: the noise z, and in training-step "
                        "the crop, n, z' (default: 0)")
    parser.add_argument("--device", metavar="D", default="cpu",
                        help="sampling, training-step: auto, cpu, cuda or cuda:K (default: cpu, the same figure on "
                        "every machine)")
    parser.add_argument("--max-seconds", metavar="S", type=float, default=None,
                        help="sampling, training-step: use only the first S seconds of the recording "
                        "(default: all of it)")
    parser.add_argument("--num-frames", metavar="F", type=int, default=256,
                        help="training-step: STFT frames of the training crop, a multiple of 64 (default: 256, "
                        "2.04 s, the published crop)")
    parser.add_argument("--smooth", metavar="N", type=int, default=SMOOTH,
                        help=f"curves: the training loss is a moving mean over N log entries (default: {SMOOTH})")
    parser.add_argument("--x", choices=("update", "gpu-minutes"), default="update",
                        help="curves: the horizontal axis, updates or GPU-minutes summed over every allocation of "
                        "a run (default: update)")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        return make_figure(**vars(args))
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
