"""Distil the teacher into a one-step student by robust consistency distillation (docs/method.md, section 5).

    python distill.py --teacher CKPT                          # ROSE-CD with the published settings
    python distill.py --teacher CKPT --trajectory deterministic --sisdr-weight 0 --mrstft-weight 0
                                                              # plain consistency distillation
    torchrun --nproc_per_node=2 distill.py --teacher CKPT     # DDP, as teacher.py

One training step (rosecd_loss below): draw an adjacent pair t_n > t_{n+1} of the 30-point grid,
x_{t_n} from the forward marginal, take one Heun step of the teacher's probability-flow ODE to
t_{n+1}, re-inject fresh diffusion noise there (the randomized trajectory), and pull the student
at t_n towards the target network at t_{n+1}; plus negative SI-SDR and a multi-resolution STFT
loss on the student's output waveform. The target network is the EMA of the student.

The training machinery (data, DDP, checkpoint, resume, log) is teacher.py's.
"""
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import data
from data import DataError, crop_samples, spec_to_wav, wav_to_spec
from evaluate import score, write_atomic
from fast import keep_freed_memory, optimise
from model import Denoiser, load_model
from sde import bcast, heun_step, randn_like, time_grid
from teacher import (TrainConfig, fit, option, parse_config, preflight, set_determinism, setup_distributed, validate,
                     weights_hash)

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


@dataclass
class Config(TrainConfig):
    teacher: str = option(str(CHECKPOINTS / "teacher-small.pt"),
                          "the teacher checkpoint (teacher.py's or an official one)")  # distill() reads it first
    out: str = option("runs/rosecd", "the student's checkpoint.pt and log.jsonl go here", path="out")
    steps: int = option(20_000, "optimizer updates of the student (docs/method.md gives no length)", minimum=1)
    batch_size: int = option(14, "per process and micro-batch (published 14 with 2 accumulation steps)", minimum=1)
    num_scales: int = option(30, "N: grid points t_1 = 1 > ... > t_N = t_eps", minimum=2)
    trajectory: str = option("randomized", "teacher trajectory: randomized (ROSE-CD) or deterministic (plain CD)",
                             choices=("randomized", "deterministic"))
    sisdr_weight: float = option(5e-5, "weight of the negative SI-SDR loss (published)", minimum=0)
    mrstft_weight: float = option(2e-4, "weight of the multi-resolution STFT loss (not published; see README)",
                                  minimum=0)
    pesq_weight: float = option(0.0, "weight of a differentiable PESQ loss (needs the torch-pesq package)", minimum=0)
    student_c_in: str = option("one", "the student's input scaling: one (published) or edm (as the teacher)",
                               choices=("one", "edm"))
    student_init: str = option("", "start the student from this checkpoint's EMA weights, of its own width, "
                                   "instead of the teacher's (e.g. checkpoints/teacher-small.pt under a medium "
                                   "teacher: a student for slower CPUs; the paper's student is its teacher's copy)",
                               path="file")


# ----------------------------------------------------------------------------- auxiliary losses

def si_sdr_loss(estimate, reference, eps=1e-8):
    """Negative SI-SDR in dB, averaged over the batch; waveforms [B, N]."""
    a = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = a * reference
    ratio = target.pow(2).sum(-1) / ((target - estimate).pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


def mrstft_loss(estimate, reference, fft_sizes=(256, 512, 1024), eps=1e-7):
    """Multi-resolution STFT loss: spectral convergence + log-magnitude L1, hop = FFT / 4,
    averaged over the resolutions."""
    total = 0.0
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=estimate.device, dtype=estimate.dtype)
        S_est, S_ref = (torch.stft(w, n_fft, n_fft // 4, window=window, return_complex=True).abs()
                        for w in (estimate, reference))
        convergence = torch.linalg.norm(S_ref - S_est, dim=(-2, -1)) / (torch.linalg.norm(S_ref, dim=(-2, -1)) + eps)
        log_magnitude = (torch.log(S_est + eps) - torch.log(S_ref + eps)).abs().mean(dim=(-2, -1))
        total = total + (convergence + log_magnitude).mean()
    return total / len(fft_sizes)


def pesq_loss_fn(weight):
    """A differentiable PESQ loss (torch-pesq), or None when its weight is 0."""
    if weight == 0:
        return None
    try:
        from torch_pesq import PesqLoss
    except ImportError:
        raise DataError("--pesq-weight needs a differentiable PESQ package: pip install torch-pesq")
    return PesqLoss(1.0, sample_rate=data.SAMPLE_RATE)


# ----------------------------------------------------------------------------- the ROSE-CD step

def draw(batch, N, like, generator):
    """The random draws of one step, in a fixed order: grid index n, z for x_{t_n}, z' for the trajectory."""
    n = torch.randint(0, N - 1, (batch,), device=like.device, generator=generator)  # pair (t_n, t_{n+1})
    return n, randn_like(like, generator), randn_like(like, generator)


def fresh_noise(sde, t_n, N, z_prime):
    """The randomized trajectory's noise after the teacher's Heun step from t_n: g(t_n) sqrt(T/N) z'."""
    return bcast(sde.g(t_n), z_prime) * math.sqrt(sde.T / N) * z_prime


def teacher_step(teacher, sde, x, y, t_n, N, z_prime, trajectory="randomized"):
    """The teacher's step from t_n, as the official code's heun_solver takes it: one Heun step of the
    probability-flow ODE with dt = -T/N (not the grid spacing (T - t_eps)/(N - 1): its second drift is
    evaluated at t_n - T/N, a little off the grid point t_{n+1}), then, for the randomized trajectory,
    fresh noise g(t_n) sqrt(T/N) z'. Returns (x_mean, x_{t_{n+1}})."""
    if trajectory not in ("randomized", "deterministic"):
        raise ValueError(f"trajectory must be randomized or deterministic, not {trajectory!r}")
    x_mean, _ = heun_step(sde, teacher, x, y, t_n, t_n - sde.T / N)
    if trajectory == "deterministic":
        return x_mean, x_mean
    return x_mean, x_mean + fresh_noise(sde, t_n, N, z_prime)  # randomized trajectory


def rosecd_loss(student, target, teacher, sde, x, y, clean, cfg, generator, pesq_loss=None):
    """The distillation loss of one micro-batch (docs/method.md, section 5.3), its parts for the log, and the
    step's tensors (n, t_n, t_{n+1}, x_{t_n}, the teacher's Heun mean, x_{t_{n+1}}, both estimates) for tests
    and figures.py.

    x, y: clean and noisy spectrograms [B, 1, 256, T]; clean: the clean waveform [B, samples].
    """
    ts = time_grid(sde, cfg.num_scales, x.device)
    n, z, z_prime = draw(x.shape[0], cfg.num_scales, x, generator)
    t_n, t_next = ts[n], ts[n + 1]
    x_tn = sde.mu(x, y, bcast(t_n, x)) + bcast(sde.sigma(t_n), x) * z  # x_{t_n} from the forward marginal
    with torch.no_grad():
        x_mean, x_next = teacher_step(teacher, sde, x_tn, y, t_n, cfg.num_scales, z_prime, cfg.trajectory)
        D_target = target(x_next, y, t_next)  # the target at the grid point t_{n+1}
    D_student = student(x_tn, y, t_n)
    consistency = (D_student - D_target).abs().pow(2).mean()  # uniform weight over bins and batch
    loss, parts = consistency, {"consistency": consistency.detach()}
    if cfg.sisdr_weight or cfg.mrstft_weight or pesq_loss is not None:
        estimate = spec_to_wav(D_student.to(torch.complex64), clean.shape[-1])  # back to a waveform
        if cfg.sisdr_weight:
            sisdr = si_sdr_loss(estimate, clean)
            loss, parts["neg_si_sdr"] = loss + cfg.sisdr_weight * sisdr, sisdr.detach()
        if cfg.mrstft_weight:
            mrstft = mrstft_loss(estimate, clean)
            loss, parts["mrstft"] = loss + cfg.mrstft_weight * mrstft, mrstft.detach()
        if pesq_loss is not None:
            pesq = pesq_loss(clean, estimate).mean()
            loss, parts["pesq_loss"] = loss + cfg.pesq_weight * pesq, pesq.detach()
    return loss, parts, {"n": n, "t_n": t_n, "t_next": t_next, "x_tn": x_tn, "x_mean": x_mean, "x_next": x_next,
                         "D_student": D_student.detach(), "D_target": D_target}


# ----------------------------------------------------------------------------- validation

def results_table(rows):
    """Markdown table of {name: (steps, metrics)}."""
    lines = ["| model | steps | PESQ | ESTOI | SI-SDR |", "|---|---|---|---|---|"]
    for name, (steps, m) in rows.items():
        lines.append(f"| {name} | {steps} | {m['pesq']:.3f} | {m['estoi']:.3f} | {m['si_sdr']:.2f} |")
    return "\n".join(lines)


def validator(teacher, sde, sets, cfg):
    """validate_fn for teacher.fit: on each validation set {name: pairs}, the student's one-step output
    against the teacher's valid_steps-step output on the same held-out files. Metrics noisy_pesq,
    teacher_pesq, student_pesq, ...; with several sets NAME/... each.

    The teacher's and the noisy input's scores do not change during a run: they are computed once and kept
    in out/valid_reference.json beside what they depend on (the teacher's weights, the files, the steps, the
    seed, the device type, whose random generator draws the sampler's noise). A resumed run reads them
    instead of running the teacher's sampler again, and so does another student of the same teacher whose
    --out is given a copy of the file."""
    path = Path(cfg.out) / "valid_reference.json"
    key, reference = None, {}

    def validate_fn(ema):
        nonlocal key, reference
        if key is None:  # at the first validation: rank 0 only, the teacher on its device
            key = {"teacher": weights_hash(teacher), "device": next(teacher.parameters()).device.type,
                   "steps": cfg.valid_steps, "seed": cfg.seed,
                   "files": {name: [p[0] for p in pairs] for name, pairs in sets.items()}}
            reference = read_reference(path, key)
        metrics, tables = {}, []
        for set_name, pairs in sets.items():
            if set_name not in reference:
                reference[set_name] = {
                    "noisy": ("-", {k: float(np.nanmean([score(c, y)[k] for _, c, y in pairs]))
                                    for k in ("pesq", "estoi", "si_sdr")}),
                    "teacher": (cfg.valid_steps, validate(teacher, sde, pairs, cfg.valid_steps, cfg.seed))}
                write_atomic(path, json.dumps({"key": key, "scores": reference}, indent=1) + "\n")
            rows = dict(reference[set_name], student=(1, validate(ema, sde, pairs, 1, cfg.seed)))
            prefix = f"{set_name}/" if len(sets) > 1 else ""
            metrics.update({f"{prefix}{name}_{k}": v for name, (_, m) in rows.items() for k, v in m.items()})
            tables.append((f"{set_name}:\n" if len(sets) > 1 else "") + results_table(rows))
        return metrics, "\n".join(tables)
    return validate_fn


def read_reference(path, key):
    """The scores of valid_reference.json where they were made under `key`, else {} (no file, another
    teacher, other files: computed anew)."""
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return stored.get("scores", {}) if isinstance(stored, dict) and stored.get("key") == key else {}


# ----------------------------------------------------------------------------- training

def load_teacher(path, device):
    """The frozen teacher (its EMA weights) from a teacher.py checkpoint or an official teacher (.ckpt)."""
    teacher, sde, kind = load_model(path, device)
    if kind != "teacher":
        raise DataError(f"{path} is a {kind} checkpoint: --teacher needs one written by teacher.py "
                        "or an official SGMSE+ / ROSE-CD teacher (c_in edm)")
    return teacher.requires_grad_(False), sde


def student_and_loss(cfg, teacher, sde, device, pesq_loss=None, start=None):
    """The student and the loss_fn of teacher.fit for distilling `teacher` (already on `device`): the student
    and its target start as copies of the teacher's EMA weights (fit makes the target as the EMA copy), or of
    those of `start` (--student-init's network, which may be narrower or wider than the teacher's)."""
    start = teacher if start is None else start
    student = Denoiser(**{**start.config(), "c_in": cfg.student_c_in}, sde=sde).to(device)
    student.load_state_dict(start.state_dict())
    if cfg.channels_last:  # the student is converted by teacher.fit, with its target
        teacher.to(memory_format=torch.channels_last)
    if cfg.compile:
        optimise(teacher, device, compiled=True, compile_mode="reduce-overhead" if cfg.cuda_graphs else None)

    def loss_fn(D, target, clean, noisy, generator):
        loss, parts, _ = rosecd_loss(D, target, teacher, sde, wav_to_spec(clean), wav_to_spec(noisy), clean, cfg,
                                     generator, pesq_loss)
        return loss, parts
    return student, loss_fn


def distill(cfg):
    if crop_samples(cfg.num_frames) < 1024:
        raise DataError("--num-frames must be at least 9 for the 1024-point STFT of the auxiliary loss")
    pesq_loss = pesq_loss_fn(cfg.pesq_weight)
    teacher, sde = load_teacher(cfg.teacher, "cpu")  # a wrong file fails here, before the audio is loaded
    start = load_model(cfg.student_init, "cpu")[0] if cfg.student_init else None  # and here
    resume = preflight(cfg, "student")
    # read by every process before any work, so that a bad file fails at the start (only rank 0 validates)
    sets = data.validation_sets(cfg.data, cfg.valid, cfg.valid_files) if cfg.valid_files else {}
    rank, world, device = setup_distributed(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()  # the allocator reuses what the process frees: no page faults for every new tensor
    set_determinism(cfg)
    student, loss_fn = student_and_loss(cfg, teacher.to(device), sde, device, pesq_loss, start)
    return fit(cfg, "student", student, loss_fn, validator(teacher, sde, sets, cfg), sde, rank, world, device,
               resume)


def main(argv=None):
    cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0])
    try:
        distill(cfg)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
