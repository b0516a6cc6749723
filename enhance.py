"""Enhance noisy speech with a ROSE-CD student or its teacher (docs/method.md, section 6).

    python enhance.py noisy.wav -o enhanced/                     # the default student checkpoint
    python enhance.py NOISY_DIR more.flac -o enhanced/           # folders are searched recursively
    python enhance.py NOISY_DIR -o out/ --checkpoint runs/teacher/checkpoint.pt   # the 30-step teacher
    python enhance.py NOISY_DIR -o out/ --checkpoint official.ckpt      # an official SGMSE+ / ROSE-CD file
    python enhance.py NOISY_DIR -o out/ --precision fp32 --batch 1               # exact float32, chunk by chunk

A student (checkpoint kind "student") enhances in one network call: x_T = y + sigma(1) z,
x_hat = D(x_T, y, 1). A teacher samples with the N-step predictor-corrector (2N calls), or with
--sampler ode along the probability-flow ODE the student was distilled from, or with --steps 1 gives
its own one-step estimate, a baseline for the student.

enhance_wav is the whole pipeline for one 16 kHz waveform: noisy-peak normalisation (over the
whole file), then chunk by chunk the compressed spectrogram, padding to a multiple of 64 frames,
the sampler, and back to a waveform, the chunks cross-faded into one output. enhance_file adds
reading (any rate, channels averaged), resampling and the safe write; main() only parses options.

Fast by default where it is safe: on a GPU the network runs in float16 autocast (the STFTs, the
preconditioning and the Fourier features stay float32; a file whose output overflows float16 is redone in
float32) on 8 chunks of a long file per call, with cuDNN's fastest convolution algorithms; --compile adds
torch.compile, --cuda-graph replays the U-Net from a CUDA graph for full chunks (fast.optimise, fast.GraphedNet).
On a CPU the defaults are channels-last memory format, chunk by chunk, and float32, except for a student on a
CPU with bfloat16 instructions (AVX-512 BF16 or AMX): bf16 autocast there, 0.6 x the time, the same scores.
"""
import argparse
import contextlib
import math
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data import AUDIO_EXTS, HOP, N_FFT, SAMPLE_RATE, DataError, check_seed, crop_samples, read_audio, resample, \
    spec_to_wav, wav_to_spec
from fast import cpu_has_bf16, optimise
from model import NUM_FREQS, crop_spec, load_model, pad_spec
from sde import ode_sample, pc_sample

# the many-voices medium student (RESULTS.md 7.8); its training noise is for research use only: checkpoints/README.md
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "rosecd-medium.pt"
CHUNK_FRAMES = 512    # STFT frames per chunk: 511 * 128 = 65,408 samples = 4.09 s at 16 kHz
OVERLAP_FRAMES = 64   # frames neighbouring chunks share, cross-faded: 8,192 samples = 0.51 s
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # arithmetic of the network calls (see precision())
GPU_BATCH = 8         # chunks per network call on a GPU by default (on a CPU: 1, memory stays per chunk)
# float16 rather than bfloat16 on a GPU by default: on the H100 a reference call in bf16 is 1.1e-2 to 2.5e-2
# away from float32 (relative L2 error), in fp16 1.3e-3 to 2.9e-3, at the same speed (RESULTS.md 5)
GPU_PRECISION = "fp16"
SAMPLERS = ("pc", "ode")  # a teacher's: predictor-corrector, or the probability-flow ODE (Heun) and a last mean estimate
# Output format by extension. WAV as 32-bit float: the enhanced samples are written exactly, with
# no 16-bit rounding and no clipping where the estimate goes above full scale (it may: the output
# is scaled back by the noisy peak), so metrics computed from the files equal those in memory.
# FLAC stores integers only, hence 24 bit (clipped to full scale); OGG is Vorbis.
FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}


# ----------------------------------------------------------------------------- one waveform

def chunk_starts(n, length, overlap):
    """First samples of the chunks of `length` samples that cover n samples: one every
    length - overlap samples, the last one moved back to end at n, so every chunk is full length
    (and the last one overlaps its neighbour by at least `overlap`)."""
    if n <= length:
        return [0]
    hop = length - overlap
    later = math.ceil((n - length) / hop)  # chunks after the first
    return [i * hop for i in range(later)] + [n - length]


def chunk_weight(starts, i, length, overlap):
    """Overlap-add weight of chunk i: a raised-cosine fade-in over the last `overlap` samples of
    chunk i - 1 (zero before them), a fade-out over its own last `overlap` samples. Where two
    chunks meet, the fade-out sin^2 and the fade-in 1 - sin^2 sum to one."""
    w = torch.ones(length, dtype=torch.float64)
    ramp = torch.sin(0.5 * math.pi * (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap) ** 2
    if i > 0:
        a = starts[i - 1] + length - overlap - starts[i]  # where chunk i - 1 starts fading out
        w[:a] = 0
        w[a:a + overlap] = ramp
    if i < len(starts) - 1:
        w[length - overlap:] = 1 - ramp
    return w.float()


def enhance_chunk(D, sde, y_wav, steps, generator, sampler="pc"):
    """Enhanced waveforms of normalised noisy waveforms y_wav ([n], or [B, n] of equal length, on D's
    device), and the network calls made (a call enhances the whole batch). steps > 1 samples with the
    predictor-corrector (sampler "pc") or the probability-flow ODE (sampler "ode")."""
    n = y_wav.shape[-1]
    y_wav = F.pad(y_wav, (0, max(0, N_FFT - n)))  # the centred STFT needs more than n_fft / 2 samples
    y = wav_to_spec(y_wav.reshape(-1, y_wav.shape[-1]))  # [B, 1, 256, T]
    y, num_frames = pad_spec(y)   # T up to a multiple of 64, zero frames
    if steps == 1:  # x_T = y + sigma(T) z;  x_hat = D(x_T, y, T): one network evaluation
        t = torch.full((y.shape[0],), sde.T, device=y.device)
        x_T = torch.cat([sde.prior_sample(row[None], generator) for row in y])  # z row by row: see enhance_wav
        x, calls = D(x_T, y, t), 1
    elif sampler == "pc":
        x, calls = pc_sample(sde, D, y, N=steps, generator=generator)
    else:  # Heun along the ODE to t_eps (a sample of that marginal, noise sigma(t_eps) in it); then, like the
        # predictor-corrector's last noise-free mean, the denoiser's estimate of the clean mean there: one call more
        x, calls = ode_sample(sde, D, y, N=steps, method="heun", generator=generator)
        x, calls = D(x, y, torch.full((y.shape[0],), sde.t_eps, device=y.device)), calls + 1
    x = spec_to_wav(crop_spec(x, num_frames).to(torch.complex64), y_wav.shape[-1])[:, :n]
    return x.reshape(*y_wav.shape[:-1], n), calls


@torch.no_grad()
def enhance_batch(D, sde, noisy, steps=1, generator=None):
    """Enhanced waveforms of a batch of equal-length noisy 16 kHz waveforms [B, n] (numpy), each
    normalised by its own peak, all in one pass (one network call for steps == 1)."""
    device = next(D.parameters()).device
    peak = np.abs(noisy).max(axis=-1, keepdims=True)
    scale = np.where(peak > 0, peak, 1.0)
    x, calls = enhance_chunk(D, sde, torch.from_numpy(noisy / scale).float().to(device), steps, generator)
    return x.float().cpu().numpy() * scale, calls


def check_precision(mode, device):
    if mode not in PRECISIONS:
        raise DataError(f"precision {mode!r}: choose one of {', '.join(PRECISIONS)}")
    if mode == "fp16" and torch.device(device).type != "cuda":
        raise DataError("precision fp16 is for GPUs (a CPU emulates float16 convolutions, many times slower); "
                        "use fp32 or bf16")


def auto_precision(device, kind):
    """--precision auto: GPU_PRECISION on a GPU. On a CPU bf16 for a student where the CPU computes bfloat16
    itself (fast.cpu_has_bf16; the bundled student's RTF on two cores 0.17 instead of 0.26 to 0.29, its scores
    within 0.002 PESQ of float32 on average, RESULTS.md 7.12), else fp32; a teacher's 60 calls stay fp32 on a
    CPU (not measured in bf16 there)."""
    if torch.device(device).type == "cuda":
        return GPU_PRECISION
    return "bf16" if kind == "student" and cpu_has_bf16() else "fp32"


@contextlib.contextmanager
def precision(mode, device):
    """Arithmetic of the network calls inside: fp32 (exact float32: TF32 off for matmuls and
    convolutions), tf32 (float32 data, TF32 tensor cores), bf16 or fp16 (autocast to bfloat16 or float16:
    convolutions and matmuls in 16 bits with float32 sums, normalisations in float32; the network's Fourier
    features and the STFTs stay float32). On a CPU, tf32 is fp32 and fp16 is refused (CPUs emulate it)."""
    check_precision(mode, device)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        with torch.autocast(torch.device(device).type, dtype=torch.float16 if mode == "fp16" else torch.bfloat16,
                            enabled=mode in ("bf16", "fp16")):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.no_grad()
def enhance_wav(D, sde, noisy, steps=30, generator=None, chunk_frames=None, overlap_frames=OVERLAP_FRAMES,
                batch=1, sampler="pc"):
    """Enhanced 16 kHz waveform (numpy) of a noisy 16 kHz waveform, and the network calls made.

    steps == 1: one-step estimate x_hat = D(x_T, y, T) with x_T = y + sigma(T) z (the student);
    steps > 1: the teacher's sampler with N = steps: the predictor-corrector (2 calls per step), or with
    sampler "ode" Heun along the probability-flow ODE (2 calls per step, and one for the last mean estimate).
    chunk_frames=None enhances the whole utterance at once (validation, evaluation); otherwise
    chunks of chunk_frames STFT frames overlapping by overlap_frames are enhanced `batch` at a time
    (one network call per group for steps == 1) and cross-faded, so memory stays bounded for long
    files. Both divide by the peak of the whole waveform (docs/method.md, section 1) and multiply it back.
    For steps == 1 the output does not depend on `batch` (up to float rounding): the noise z of each
    chunk is drawn in turn from the generator, as one by one. The sampler of steps > 1 draws its
    noise for the whole group at once, so there the output depends on `batch` (not its distribution).
    """
    device = next(D.parameters()).device
    peak = float(np.abs(noisy).max())
    scale = peak if peak > 0 else 1.0
    y = torch.from_numpy(noisy / scale).float()  # the whole file stays on the CPU; chunks go to the device
    n = len(y)
    if chunk_frames is not None and chunk_frames < 2 * overlap_frames + 1:
        raise ValueError(f"chunk_frames ({chunk_frames}) must exceed twice overlap_frames ({overlap_frames})")
    length = n if chunk_frames is None else min(n, crop_samples(chunk_frames))
    overlap = overlap_frames * HOP
    starts = chunk_starts(n, length, overlap)
    if len(starts) == 1:  # the whole waveform is one chunk
        x, calls = enhance_chunk(D, sde, y.to(device), steps, generator, sampler)
        return x.float().cpu().numpy() * scale, calls
    out, calls = torch.zeros(n), 0
    for first in range(0, len(starts), batch):
        group = starts[first:first + batch]
        x, c = enhance_chunk(D, sde, torch.stack([y[s:s + length] for s in group]).to(device), steps, generator,
                             sampler)
        for i, (s, x_i) in enumerate(zip(group, x.float().cpu()), first):
            out[s:s + length] += chunk_weight(starts, i, length, overlap) * x_i  # overlap-add
        calls += c
    return out.numpy() * scale, calls


# ----------------------------------------------------------------------------- files

def write_audio(path, wav, rate):
    """Write through a temporary file in the same folder and a rename: a failure leaves no file."""
    fmt, subtype = FORMATS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(tmp), wav, rate, format=fmt, subtype=subtype)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):  # soundfile's LibsndfileError is a RuntimeError
            raise DataError(f"{path}: cannot write ({str(e).strip() or type(e).__name__})")
        raise


def enhance_file(D, sde, src, dst, steps=1, seed=0, out_rate="input", overwrite=False, mode="fp32", batch=1,
                 sampler="pc"):
    """Enhance the file src into dst, the network calls in precision `mode`, `batch` chunks per call, a teacher
    with `steps` > 1 by its `sampler` ("pc" or "ode", see enhance_wav).
    Returns (seconds of audio, network calls, [warnings])."""
    if not src.is_file():
        raise DataError(f"{src}: no such file")
    if dst.suffix.lower() not in FORMATS:
        raise DataError(f"{src}: not a {', '.join(AUDIO_EXTS)} file")
    if dst.exists() and not overwrite:
        raise DataError(f"{dst}: exists; pass --overwrite to replace it")
    noisy, sr = read_audio(src)  # mono (channels averaged), float32, finite
    wav = resample(noisy, sr)
    warnings = []
    if not np.abs(wav).max() > 0:
        enhanced, calls = np.zeros_like(wav), 0
        warnings.append(f"{src}: all samples are zero; wrote silence")
    else:
        device = next(D.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)  # per file: output = f(file, seed)
        with precision(mode, device):
            enhanced, calls = enhance_wav(D, sde, wav, steps, generator, chunk_frames=CHUNK_FRAMES, batch=batch,
                                          sampler=sampler)
        if mode == "fp16" and not np.isfinite(enhanced).all():  # float16 overflows above 65,504: redo in float32
            warnings.append(f"{src}: the float16 network overflowed; enhanced again in float32")
            generator.manual_seed(seed)
            with precision("fp32", device):
                enhanced, calls = enhance_wav(D, sde, wav, steps, generator, chunk_frames=CHUNK_FRAMES, batch=batch,
                                              sampler=sampler)
        if not np.isfinite(enhanced).all():
            raise DataError(f"{src}: the network's output is not finite; is the checkpoint broken?")
    if out_rate == "input":
        rate = sr
        enhanced = resample(enhanced, SAMPLE_RATE, sr)[:len(noisy)]
        enhanced = np.pad(enhanced, (0, len(noisy) - len(enhanced)))  # exactly the input's length
    else:
        rate = SAMPLE_RATE
    if FORMATS[dst.suffix.lower()][1] != "FLOAT" and np.abs(enhanced).max() > 1:
        warnings.append(f"{dst}: {int((np.abs(enhanced) > 1).sum())} samples above full scale were clipped")
        enhanced = np.clip(enhanced, -1, 1)
    write_audio(dst, enhanced, rate)
    return len(noisy) / sr, calls, warnings


def plan_jobs(inputs, outdir):
    """[(src, dst), ...] for files and folders (searched recursively), and [error, ...] for inputs
    that hold no audio. Raises DataError where an output would land in or on an input."""
    outdir_r = outdir.resolve()
    jobs, errors = [], []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            root = p.resolve()
            if outdir_r == root or root in outdir_r.parents:
                raise DataError(f"{outdir}: the output folder is the input folder {p} or inside it; choose another -o")
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTS)
            if not files:
                errors.append(f"{p}: no audio files ({', '.join(AUDIO_EXTS)}) in this folder")
            jobs += [(f, outdir / f.relative_to(p)) for f in files]
        else:  # a file, or a missing one: that fails when read, as one of the files
            jobs.append((p, outdir / p.name))
    jobs = list(dict.fromkeys(jobs))  # the same file named twice is enhanced once
    sources = {src.resolve(): src for src, _ in jobs}
    seen = {}
    for src, dst in jobs:
        d = dst.resolve()
        if d in sources:
            raise DataError(f"{dst}: would overwrite the input {sources[d]}; choose another -o")
        if d in seen:
            raise DataError(f"{seen[d]} and {src}: both would be written to {dst}; enhance them separately")
        seen[d] = src
    return jobs, errors


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DataError(f"--device {name}: expected auto, cpu, cuda or cuda:K")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"--device {name}: this machine has no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DataError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def enhance_files(inputs, out, checkpoint=None, steps=None, seed=0, device="auto", overwrite=False,
                  out_rate="input", mode="auto", batch=None, compiled=False, cuda_graph=False, sampler="pc"):
    """The command line's work: every input file, or every audio file under an input folder, into
    the folder `out`. A file that fails gets an 'error:' line and no output, and the rest go on.
    mode "auto": auto_precision; batch None is GPU_BATCH chunks on a GPU, 1 on a CPU.
    Returns the exit status: 1 when any input failed, else 0."""
    if steps is not None and steps < 1:
        raise DataError(f"--steps {steps}: must be at least 1")
    if batch is not None and batch < 1:
        raise DataError(f"--batch {batch}: must be at least 1")
    if Path(out).exists() and not Path(out).is_dir():
        raise DataError(f"-o {out}: a file, not a folder; -o names the folder the outputs go into")
    if not Path(out).exists() and Path(out).suffix.lower() in AUDIO_EXTS:  # not a folder named like a file
        raise DataError(f"-o {out}: names a folder, and this looks like a file name: the outputs keep their "
                        f"inputs' names inside the folder -o (e.g. -o {Path(out).parent / 'enhanced'})")
    jobs, errors = plan_jobs(inputs, Path(out))
    device = pick_device(device)
    if cuda_graph and device.type != "cuda":
        raise DataError(f"--cuda-graph: CUDA graphs need a GPU; the device is {device}")
    if mode != "auto":
        check_precision(mode, device)
    batch = batch or (GPU_BATCH if device.type == "cuda" else 1)
    checkpoint = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: no such checkpoint; train one with distill.py or pass --checkpoint")
    D, sde, kind = load_model(checkpoint, device)
    mode = auto_precision(device, kind) if mode == "auto" else mode
    optimise(D, device, compiled, (batch, 4, NUM_FREQS, CHUNK_FRAMES) if cuda_graph else None, autotune=False)
    steps = steps or (1 if kind == "student" else 30)
    if kind == "student" and steps > 1:
        raise DataError(f"--steps {steps}: a ROSE-CD student enhances in one step ({checkpoint} is a student); "
                        "pass a teacher checkpoint for multi-step sampling")
    if kind == "student" and sampler != "pc":
        raise DataError(f"--sampler {sampler}: a ROSE-CD student enhances in one step, without a sampler "
                        f"({checkpoint} is a student); pass a teacher checkpoint")
    if sampler == "ode" and steps == 1:
        raise DataError("--sampler ode --steps 1: the ODE needs at least 2 grid points; --steps 1 alone gives the "
                        "teacher's one-step estimate")

    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    seconds, calls, done = 0.0, 0, 0
    t0 = time.time()
    how = f"{steps} step{'s' * (steps > 1)}" + (f", {sampler}" if steps > 1 else "")
    for src, dst in tqdm(jobs, desc=f"enhance ({kind}, {how})", unit="file",
                         dynamic_ncols=True):
        try:
            s, c, warnings = enhance_file(D, sde, src, dst, steps, seed, out_rate, overwrite, mode, batch, sampler)
        except DataError as e:
            tqdm.write(f"error: {e}", file=sys.stderr)
            continue
        for w in warnings:
            tqdm.write(f"warning: {w}", file=sys.stderr)
        seconds, calls, done = seconds + s, calls + c, done + 1
    elapsed = time.time() - t0
    rtf = f"{elapsed / seconds:.3f}" if seconds > 0 else "n/a"
    print(f"{done} file(s), {seconds:.1f} s of audio in {elapsed:.1f} s: RTF {rtf} (processing time / audio "
          f"duration), {calls} network calls, on {device} in {mode}")
    failed = len(jobs) - done + len(errors)
    if failed:
        print(f"{failed} of {len(jobs) + len(errors)} input(s) failed (see the error lines above)"
              + ("; the others were enhanced" if done else ""), file=sys.stderr)
    return 1 if failed else 0


def make_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog=textwrap.fill(
        f"Every input is averaged to mono, resampled to 16 kHz and enhanced in chunks of {CHUNK_FRAMES} STFT "
        f"frames ({crop_samples(CHUNK_FRAMES) / SAMPLE_RATE:.2f} s) that overlap by {OVERLAP_FRAMES} frames "
        f"({OVERLAP_FRAMES * HOP / SAMPLE_RATE:.2f} s, raised-cosine cross-fade); the output is one mono file of "
        "the input's length and format (.wav as 32-bit float, .flac as 24 bit). A file that fails is reported "
        "on an 'error:' line and skipped, the others are still enhanced, and the exit status is then 1."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help=f"noisy audio files or folders (searched recursively for {', '.join(AUDIO_EXTS)})")
    parser.add_argument("-o", "--out", required=True, metavar="OUTDIR",
                        help="output folder; mirrors each input folder's layout, and may not lie inside one")
    parser.add_argument("--checkpoint", metavar="CKPT", default=None,
                        help="student or teacher checkpoint: this project's .pt or an official SGMSE+ / ROSE-CD "
                        f"Lightning .ckpt (default: checkpoints/{DEFAULT_CHECKPOINT.name} beside enhance.py, the "
                        "many-voices student, research use only; checkpoints/rosecd-small-mv.pt: its faster, weaker "
                        "small sibling, research use only; checkpoints/rosecd-small.pt: as fast, one voice, public "
                        "domain)")
    parser.add_argument("--steps", metavar="N", type=int, default=None,
                        help="sampling steps (default: 1 for a student, its only choice; 30 for a teacher's "
                        "predictor-corrector, where 1 gives the teacher's one-step estimate)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="pc",
                        help="a teacher's sampler over --steps grid points: pc, the predictor-corrector (2 calls "
                        "per step); ode, Heun along the probability-flow ODE, the path a student is distilled "
                        "from, without the corrector's noise (2 calls per step, 1 more for the last mean "
                        "estimate). A student takes neither (default: pc)")
    parser.add_argument("--seed", metavar="S", type=int, default=0,
                        help="seed of the noise z in x_T = y + sigma(1) z, set afresh for every file: the same seed "
                        "gives bit-identical outputs on the same device (z is drawn there: a GPU and a CPU start "
                        "from different noise) (default: 0)")
    parser.add_argument("--device", metavar="D", default="auto", help="auto, cpu, cuda or cuda:K (default: auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: off)")
    parser.add_argument("--out-rate", choices=("input", "16000"), default="input",
                        help="sample rate of the outputs: the input's, or the model's 16 kHz (default: input)")
    parser.add_argument("--precision", dest="mode", choices=("auto",) + PRECISIONS, default="auto",
                        help="arithmetic of the network: fp32, tf32 (float32 data on TF32 tensor cores), bf16 autocast "
                        "or fp16 autocast (GPU only); the STFTs stay float32. auto is fp16 on a GPU; on a CPU bf16 "
                        "for a student where the CPU has bfloat16 instructions (AVX-512 BF16 or AMX), else fp32 "
                        "(default: auto)")
    parser.add_argument("--batch", metavar="B", type=int, default=None,
                        help=f"chunks of a long file per network call; one-step outputs do not depend on it "
                        f"(default: {GPU_BATCH} on a GPU, 1 on a CPU)")
    parser.add_argument("--compile", dest="compiled", action="store_true",
                        help="compile the network with torch.compile: faster calls after a slow first one (default: off)")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="GPU only: replay the network from a CUDA graph for full chunks of --batch x "
                        f"{CHUNK_FRAMES} frames; shorter inputs run eagerly (default: off)")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        check_seed(args.seed)
        status = enhance_files(**vars(args))
    except DataError as e:
        sys.exit(f"error: {e}")
    sys.exit(status)


if __name__ == "__main__":
    main()
