"""Train the score-based teacher (docs/method.md, section 4).

    python teacher.py --preset tiny --steps 200          # CPU demo on the bundled audio
    python teacher.py --data /path/to/VoiceBank-DEMAND   # the published setting (reference preset)
    torchrun --nproc_per_node=2 teacher.py ...           # several GPUs (or CPU processes) with DDP
    python teacher.py export runs/teacher/checkpoint.pt teacher.pt   # EMA weights only, float16
    python teacher.py pack runs/teacher/checkpoint.pt state/ [MIB]   # resumable, in parts < 16 MiB (or MIB)
    python teacher.py unpack state/ runs/teacher/checkpoint.pt       # ... joined again: the same command goes on

The loss: t ~ U(t_eps, 1), x_t = mu(t) + sigma(t) z, and a weighted squared error between the
preconditioned network D(x_t, y, t) and mu(t). Adam, EMA of the weights (the EMA weights sample).

This file also holds the training machinery that distill.py reuses: options from a dataclass, the checks
before the first update (preflight), distributed set-up, the training loop (fit) that a stop signal ends
with a checkpoint, EMA, validation and the JSON-lines log. The batches come from data.make_batches, the
checkpoint files from model.py.
"""
import argparse
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

import data
from data import TRAIN_SNR, DataError, check_seed, wav_to_spec
from enhance import enhance_wav, pick_device
from evaluate import require, score
from fast import keep_freed_memory, optimise
from model import (PART_BYTES, PRESETS, Denoiser, export_checkpoint, load_checkpoint, pack_checkpoint,
                   save_checkpoint, unpack_checkpoint)
from sde import SDE, bcast, randn_like


def option(default, help, choices=None, minimum=None, maximum=None, multiple=None, path=None, check=None):
    """A dataclass field that carries its own command-line description and, where it has them, its fixed
    choices, its range (minimum, maximum; or a positive multiple of `multiple`), for a path what it names:
    "file", "folder" or "folders" ("a,b", data.folders) that must exist, where given, or "out" (a folder to
    write into, not a file), and a check(value) that raises DataError for a value it refuses."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum,
                                                         "maximum": maximum, "multiple": multiple, "path": path,
                                                         "check": check})


@dataclass
class TrainConfig:
    """Options of the training loop that teacher.py and distill.py share (published defaults)."""
    data: str = option("", "VoiceBank-DEMAND folder (either layout); empty: bundled demo speech", path="folder")
    speech: str = option("", "or: clean speech to mix with noise on the fly, folders 'a,b' searched recursively",
                         path="folders")
    noise: str = option("", "optional noise recordings for that mixing, folders 'a,b' searched recursively",
                        path="folders")
    snr_low: float = option(TRAIN_SNR[0], "lowest SNR in dB of that mixing: each crop's SNR is drawn uniformly "
                                          "from --snr-low to --snr-high (--data's pairs come mixed)")
    snr_high: float = option(TRAIN_SNR[1], "highest SNR in dB of that mixing")
    valid: str = option("", "validation sets, folders 'a,b' each with clean/ and noisy/ (python data.py testset "
                            "writes one); empty: data's valid split or the bundled p287 pairs", path="folders")
    out: str = option("runs/teacher", "checkpoint.pt and log.jsonl go here; a checkpoint of the same run there "
                                      "is continued", path="out")
    steps: int = option(100_000, "optimizer updates (docs/method.md gives no length)", minimum=1)
    batch_size: int = option(16, "per process and micro-batch (published 16)", minimum=1)
    grad_accum: int = option(2, "micro-batches per update (published 2)", minimum=1)
    lr: float = option(1e-4, "Adam learning rate", minimum=0)
    ema_decay: float = option(0.999, "decay of the EMA of the weights (after the warm-up of ema_decay())", minimum=0,
                              maximum=1)
    num_frames: int = option(256, "STFT frames per training crop (256: 2.04 s; the U-Net halves them 6 times)",
                             multiple=64)
    bf16: bool = option(False, "bf16 autocast on GPU")
    compile: bool = option(False, "torch.compile the U-Nets of a training step "
                                  "(GPU; the small one took over 4 min to compile on an H100)")
    channels_last: bool = option(False, "the networks of a training step (model, EMA target, distill.py's teacher) "
                                        "and their inputs in channels-last (NHWC) memory, the layout of cuDNN's "
                                        "bf16 convolutions. Same results; eager on an H200 it measured a third slower "
                                        "(group norm converts back), compiled 10 %% slower (63.7 against 70.0 crops/s)")
    cuda_graphs: bool = option(False, "with --compile on a GPU: the compiled U-Nets replayed from CUDA graphs "
                                      "(torch.compile's reduce-overhead mode), so that the CPU no longer launches "
                                      "each kernel. Same updates, up to 2 min more compiling. Pays where the GPU "
                                      "waits: on one H200 a medium student's distillation went from 108 to 148 "
                                      "crops/s at batch 16; the reference one stayed at 70 (its GPU 94 %% busy), "
                                      "the small teacher gained 4 %%. On a CPU it changes nothing")
    grad_clip: float = option(0.0, "clip the gradient norm to this (0: off)", minimum=0)
    valid_every: int = option(2000, "validate every so many updates (0: only at the end)", minimum=0)
    valid_files: int = option(4, "held-out utterances of each validation set enhanced at each validation "
                                 "(0: no validation)", minimum=0)
    valid_steps: int = option(30, "predictor-corrector steps of the teacher at validation", minimum=1)
    save_every: int = option(1000, "write the checkpoint every so many updates (and at a stop: SIGTERM, Ctrl-C)",
                             minimum=1)
    max_minutes: float = option(0.0, "stop after this many minutes, with a checkpoint and a validation (0: no limit)",
                                minimum=0)
    log_every: int = option(10, "write a log line (and read the losses from the device) every so many updates",
                            minimum=1)
    seed: int = option(0, "seed of the random draws: initial weights, training crops and noise, validation",
                       minimum=0, check=check_seed)
    resume: bool = option(False, "continue out/checkpoint.pt even where options that define the run (preset, data, "
                                 "batch, seed ...) differ from those it was written with: this command's then apply. "
                                 "Without --resume a checkpoint there is continued only by the same run")
    fresh: bool = option(False, "start anew where out/ holds a checkpoint, which is moved with its log into "
                                "out/replaced-TIME/ (nothing is deleted)")
    warm_start: str = option("", "or: start from the EMA weights of this checkpoint (an export will do) with fresh "
                                 "Adam moments, continuing its update count and GPU-minutes: for a run whose "
                                 "resumable state was lost. It begins a run: refused where out/ holds another",
                             path="file")
    device: str = option("auto", "auto, cpu, cuda, cuda:1 ...", check=pick_device)
    deterministic: bool = option(False, "deterministic kernels (for exact-resume checks)")


# The options in which a continued run may differ from the run that wrote its checkpoint: how long, how fast,
# where, what is logged and validated. A difference in any other option is another run: refused unless --resume.
MAY_CHANGE = ("out", "steps", "lr", "grad_clip", "bf16", "compile", "cuda_graphs", "channels_last", "deterministic",
              "device", "valid", "valid_every", "valid_files", "valid_steps", "save_every", "max_minutes", "log_every",
              "resume", "fresh", "warm_start")


@dataclass
class Config(TrainConfig):
    preset: str = option("reference", "network size: reference (published, 65.6 M), medium (6.4 M), "
                                      "small (4.1 M), tiny (0.49 M)",
                         choices=tuple(PRESETS))


# ----------------------------------------------------------------------------- options

def make_parser(cls, description=None):
    """argparse generated from a dataclass: every field becomes --field with its default, its
    description (the field's help) and, where it has them, its choices or its range; a value out of
    its range, or a path that is not what the field names, is refused as it is parsed (checked_type)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(cls):
        name, meaning = f"--{f.name.replace('_', '-')}", f.metadata["help"]
        if f.type in (bool, "bool"):
            parser.add_argument(name, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=meaning)
        else:
            limits = value_range(f.metadata)
            parser.add_argument(name, dest=f.name, default=f.default, type=checked_type(f),
                                help=meaning + (f"; {limits}" if limits else ""), choices=f.metadata["choices"])
    return parser


def value_range(m):
    """The words for the range in a field's metadata m: "at least 1", "from 0 to 1", "a positive multiple of 64"."""
    if m["multiple"]:
        return f"a positive multiple of {m['multiple']}"
    if m["maximum"] is not None:
        return f"from {m['minimum']} to {m['maximum']}"
    return f"at least {m['minimum']}" if m["minimum"] is not None else ""


def checked_type(field):
    """argparse's type for a dataclass field: the text as the default's type, refused (one error line) where a number
    is not finite or outside the field's range, where a path given is not the file or folder that the field names,
    or where the field's check refuses it."""
    kind, m = type(field.default), field.metadata

    def parse(text):
        value = kind(text)
        if kind in (int, float) and not (math.isfinite(value) and (m["minimum"] is None or value >= m["minimum"])
                                         and (m["maximum"] is None or value <= m["maximum"])
                                         and (not m["multiple"] or value > 0 and value % m["multiple"] == 0)):
            raise argparse.ArgumentTypeError(f"{text}: must be {value_range(m) or 'a finite number'}")
        if value and m["path"] in ("file", "folder", "folders"):  # each folder of "a,b" for "folders"
            for path in data.folders(value) if m["path"] == "folders" else [Path(value)]:
                if not (path.is_file() if m["path"] == "file" else path.is_dir()):
                    raise argparse.ArgumentTypeError(f"{path}: no such {'file' if m['path'] == 'file' else 'folder'}")
        if value and m["path"] == "out" and Path(value).exists() and not Path(value).is_dir():
            raise argparse.ArgumentTypeError(f"{value}: a file, not a folder; choose another")
        if m["check"]:
            try:
                m["check"](value)
            except DataError as e:  # "--device gpu: expected ..." becomes "argument --device: gpu: expected ..."
                raise argparse.ArgumentTypeError(str(e).split(" ", 1)[1]) from None
        return value
    parse.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def parse_config(cls, argv=None, description=None):
    return cls(**vars(make_parser(cls, description).parse_args(argv)))


# ----------------------------------------------------------------------------- processes and devices

def setup_distributed(device):
    """(rank, world_size, device). Under torchrun: one process per GPU (nccl) or CPU process (gloo)."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, pick_device(device)  # auto: a GPU where there is one; a name that is no device is refused
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    use_cuda = pick_device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")


def set_determinism(cfg):
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def step_generator(seed, step, rank, device):
    """The random draws of one update are a function of (seed, step, rank): a resumed run
    draws exactly what an uninterrupted one would, with no RNG state to carry over."""
    return torch.Generator(device=device).manual_seed(((seed * 1_000_003 + step) * 1_009 + rank) % 2 ** 63)


# ----------------------------------------------------------------------------- checks first, stops cleanly

def preflight(cfg, kind):
    """Check before the first update what the run needs later, so that it fails at its start, in one error
    line, and not at its first validation: the packages of validation (and of --compile on a GPU), the
    output folder writable, and what out/checkpoint.pt holds. Every process checks the same, before the
    process group exists; only rank 0 prints or moves anything. Returns whether to continue that checkpoint
    (fit loads it).

    A checkpoint of this kind is continued where it comes from the same run: its options equal this
    command's except those of MAY_CHANGE. --resume continues it whatever the difference (this command's
    options then apply). --fresh starts anew all the same, with that checkpoint and its log moved
    into out/replaced-TIME/ (nothing is deleted). --warm-start begins a run: where out/ holds one it is
    continued only by the command that began it."""
    if cfg.resume and cfg.fresh:
        raise DataError("--resume and --fresh contradict each other: pass one of them")
    if cfg.resume and cfg.warm_start:
        raise DataError("give --resume or --warm-start, not both")
    if cfg.valid_files:
        for module in ("pesq", "pystoi"):
            require(module, module, f"validation (--valid-files {cfg.valid_files}; 0: none)")
    if cfg.compile and cfg.device != "cpu" and torch.cuda.is_available():
        require("triton", "triton", "--compile on a GPU")
    if cfg.cuda_graphs and not cfg.compile:
        raise DataError("--cuda-graphs replays the compiled U-Nets: add --compile")
    if not (math.isfinite(cfg.snr_low) and math.isfinite(cfg.snr_high)) or cfg.snr_low > cfg.snr_high:
        raise DataError(f"--snr-low {cfg.snr_low:g} --snr-high {cfg.snr_high:g}: two finite numbers of dB, "
                        "the low one not above the high one")
    if cfg.data and (cfg.snr_low, cfg.snr_high) != TRAIN_SNR:
        raise DataError("--snr-low and --snr-high set how --speech is mixed with noise; the pairs of --data come "
                        "mixed already: drop them, or train on --speech")
    out = Path(cfg.out)
    probe = out / f".write-test-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(f"--out {out}: cannot write there ({e.strerror or type(e).__name__})")
    path, rank0 = out / "checkpoint.pt", os.environ.get("RANK", "0") == "0"
    if not path.exists():
        if cfg.resume:
            raise DataError(f"--resume: {path} does not exist, there is nothing to continue")
        return False
    ckpt = load_checkpoint(path)
    if ckpt["kind"] != kind:
        raise DataError(f"{path} is a {ckpt['kind']} checkpoint, not a {kind} one: choose another --out")
    if cfg.fresh:  # the old run set aside, whole: its checkpoint and its log
        if rank0:
            aside = out / time.strftime("replaced-%Y%m%d-%H%M%S")
            aside.mkdir()
            for name in ("checkpoint.pt", "log.jsonl"):
                if (out / name).exists():
                    os.replace(out / name, aside / name)
            print(f"--fresh: starting anew; the run that was in {out} (update {ckpt['step']}) is now in "
                  f"{aside}", flush=True)
        return False
    if "raw" not in ckpt:
        raise DataError(f"{path} holds EMA weights only (an exported checkpoint): it cannot be resumed; "
                        "--warm-start from it in another --out")
    stored = ckpt.get("config") or {}
    if cfg.warm_start and stored.get("warm_start") != cfg.warm_start:
        raise DataError(f"{path} holds a run at update {ckpt['step']}, and --warm-start {cfg.warm_start} begins "
                        "one: drop --warm-start to continue it, or choose another --out")
    differ = [(f"--{f.name.replace('_', '-')}", stored.get(f.name, f.default), getattr(cfg, f.name))
              for f in dataclasses.fields(cfg) if f.name not in MAY_CHANGE
              and stored.get(f.name, f.default) != getattr(cfg, f.name)]
    was = " ".join(f"{name} {shlex.quote(str(old))}" for name, old, _ in differ)
    now = " ".join(f"{name} {shlex.quote(str(new))}" for name, _, new in differ)
    if differ and not cfg.resume:
        raise DataError(f"{path} comes from another run: it has {was}, this command {now}; pass --resume to "
                        "continue it with this command's options, or choose another --out")
    if rank0:
        print(f"resuming {path} at update {ckpt['step']} of {cfg.steps}"
              + (f", with {now} instead of {was}" if differ else "")
              + (": the run is complete (a larger --steps goes on, --fresh starts anew)"
                 if ckpt["step"] >= cfg.steps else ""), flush=True)
    return True


class StopSignals:
    """Within a with block, SIGTERM (a scheduler's stop, torchrun passing one on) and SIGINT (Ctrl-C) only
    note their number in .signum, the first one: fit reads it after each update, finishes that update,
    writes the checkpoint and exits. A repeated signal changes nothing, since torchrun passes on to its
    processes the signal that the scheduler or the terminal has already sent them; kill -9 stops at once
    (the last checkpoint stays). The previous handlers come back at the end of the block."""

    def __init__(self):
        self.signum, self.previous = 0, {}

    def note(self, signum, frame):
        self.signum = self.signum or signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # the only thread that may set handlers
            self.previous = {s: signal.signal(s, self.note) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------- EMA and checkpoints

def ema_decay(decay, n):
    """The decay of EMA update n (n = 1, 2, ...) with the official code's warm-up (torch_ema's
    use_num_updates): min(decay, (1 + n) / (10 + n)), 2/11 at the first update, 0.999 from n = 8,990 on."""
    return min(decay, (1 + n) / (10 + n))


@torch.no_grad()
def ema_update(ema, model, decay):
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, for all weights in one call: on a GPU a few kernels
    instead of one per weight tensor (646 of them in the medium preset)."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def to_channels_last(model, ema, opt):
    """--channels-last: the 4-D weights of model and EMA in channels-last memory, and Adam's moments beside them
    (a resumed checkpoint holds them in the default layout; fused Adam wants a weight's layout in its moments).
    The U-Net turns its input to its weights' layout (NCSNpp.forward); gradients take their weights' layout."""
    for m in (model, ema):
        m.to(memory_format=torch.channels_last)  # in place: Adam keeps the same parameters
    for p in model.parameters():
        state = opt.state.get(p, {})
        for k, v in state.items():
            if torch.is_tensor(v) and v.dim() == 4:
                state[k] = v.to(memory_format=torch.channels_last)


def peak_memory(device):
    """{"peak_memory_gib": the most GPU memory this process has held so far} for a log line (a rate beside
    the memory it took); {} on a CPU."""
    if device.type != "cuda":
        return {}
    return {"peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30}


def weights_hash(module):
    """A short hash of a module's weights, to check that DDP ranks agree."""
    h = hashlib.sha256()
    for v in module.state_dict().values():
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- validation and log

def validate(D, sde, pairs, steps, seed=0):
    """Mean PESQ / ESTOI / SI-SDR of D's enhancement (steps: 1 = one-step, else PC) on pairs."""
    results = []
    for k, (name, clean, noisy) in enumerate(pairs):
        generator = torch.Generator(device=next(D.parameters()).device).manual_seed(seed + k)
        enhanced, _ = enhance_wav(D, sde, noisy, steps, generator)
        results.append(score(clean, enhanced))
    return {key: float(np.nanmean([r[key] for r in results])) for key in results[0]}


class JsonLog:
    """One JSON object per line: easy to plot, easy to append to after --resume."""

    def __init__(self, path, enabled=True):
        self.path, self.enabled = Path(path), enabled

    def write(self, **entry):
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")


# ----------------------------------------------------------------------------- the teacher

def teacher_loss(D, sde, x, y, generator, sigma_data=0.1):
    """0.5 * sum over bins of w(sigma) |D(x_t, y, t) - mu(t)|^2, averaged over the batch."""
    B = x.shape[0]
    t = sde.t_eps + (1 - sde.t_eps) * torch.rand(B, device=x.device, generator=generator)  # t ~ U(t_eps, 1)
    mu = sde.mu(x, y, bcast(t, x))
    sigma = bcast(sde.sigma(t), x)
    x_t = mu + sigma * randn_like(x, generator)
    sd = sigma_data
    w = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2  # EDM weight: unit loss scale at every sigma
    return 0.5 * (w * (D(x_t, y, t) - mu).abs() ** 2).sum(dim=(1, 2, 3)).mean()


def fit(cfg, kind, model, loss_fn, validate_fn, sde, rank, world, device, resume=False):
    """The training loop shared by teacher.py and distill.py.

    loss_fn(D, ema, clean, noisy, generator) -> (loss, {name: detached tensor}) for one micro-batch of
    waveforms; validate_fn(ema) -> ({metric: value}, text to print). Adam on the model, EMA of its
    weights after every update, checkpoint / resume (resume: preflight's verdict on out/checkpoint.pt),
    JSON-lines log, DDP under torchrun. SIGTERM or Ctrl-C (StopSignals) ends the update in flight (under
    DDP: every process at the same update, the next one that writes a log line), writes the checkpoint
    and exits with 128 + the signal's number.
    Fast on a GPU: the batches are mixed on the GPU from audio held in its memory (data.make_batches),
    Adam is fused, no step waits for the GPU (losses are read every log_every updates), and with
    --compile the U-Nets of the model and of the EMA (distill.py's target) are compiled, as for
    inference (fast.optimise), with --cuda-graphs for replay from CUDA graphs; validation runs them eagerly,
    since whole files have other shapes.
    """
    t_start = time.time()  # GPU time counts from here: loading the audio holds the GPU too
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type == "cuda")
    step, gpu_seconds = 0, 0.0  # gpu_seconds: wall time x processes, summed over every resumed stint
    ckpt_path = out / "checkpoint.pt"
    if resume:  # before the audio is loaded: a network of another shape fails at once
        ckpt = load_checkpoint(ckpt_path, device)
        if ckpt["model"] != model.config():
            raise DataError(f"{ckpt_path} holds a network {ckpt['model']}, this command builds {model.config()}")
        model.load_state_dict(ckpt["raw"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        for group in opt.param_groups:  # this command's learning rate, not the stored one
            group["lr"] = cfg.lr
        step, gpu_seconds = ckpt["step"], ckpt.get("gpu_seconds", 0.0)
        del ckpt  # on the device: its memory is the training's
    elif cfg.warm_start:  # raw and EMA weights := the stored EMA weights; Adam starts afresh
        ckpt = load_checkpoint(cfg.warm_start, device)
        if ckpt["kind"] != kind or ckpt["model"] != model.config():
            raise DataError(f"{cfg.warm_start}: a {ckpt['kind']} of shape {ckpt['model']}; this run trains a "
                            f"{kind} of shape {model.config()}")
        model.load_state_dict(ckpt["ema"])
        ema.load_state_dict(ckpt["ema"])
        step, gpu_seconds = ckpt.get("step") or 0, ckpt.get("gpu_seconds", 0.0)
        del ckpt
    if cfg.channels_last:  # before compiling and DDP: both take the layout the weights have then
        to_channels_last(model, ema, opt)
    batches = data.make_batches(cfg.data, cfg.speech, cfg.noise, cfg.num_frames, device, (cfg.snr_low, cfg.snr_high))
    if cfg.compile:  # the U-Nets of model and EMA compiled in place; validation runs them eagerly (below)
        mode = "reduce-overhead" if cfg.cuda_graphs else None
        optimise(model, device, compiled=True, compile_mode=mode)
        optimise(ema, device, compiled=True, compile_mode=mode)
    D = DDP(model) if world > 1 else model

    def gpu_minutes():
        return (gpu_seconds + world * (time.time() - t_start)) / 60

    def checkpoint():
        if rank == 0:
            save_checkpoint(ckpt_path, kind=kind, config=dataclasses.asdict(cfg), model=model.config(),
                            sde=dataclasses.asdict(sde), ema=ema.state_dict(), raw=model.state_dict(),
                            optimizer=opt.state_dict(), step=step, rng={"seed": cfg.seed, "step": step},
                            gpu_seconds=60 * gpu_minutes())

    log = JsonLog(out / "log.jsonl", enabled=rank == 0)
    log.write(event="start", step=step, world_size=world, device=str(device), parameters=sum(
        p.numel() for p in model.parameters()), config=dataclasses.asdict(cfg))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    bar = tqdm(total=cfg.steps, initial=step, disable=rank != 0, desc=kind, dynamic_ncols=True)
    t0, parts = time.time(), []
    deadline = time.time() + 60 * cfg.max_minutes if cfg.max_minutes > 0 else float("inf")
    last, stopped = step >= cfg.steps, 0  # stopped: the number of the signal that stops the run, if one does
    with StopSignals() as stop:
        while not last:
            generator = step_generator(cfg.seed, step, rank, device)
            for a in range(cfg.grad_accum):
                if cfg.cuda_graphs:  # the graphs' outputs of the micro-batch before are no longer read
                    torch.compiler.cudagraph_mark_step_begin()
                clean, noisy = batches(cfg.batch_size, generator)
                sync = a == cfg.grad_accum - 1 or world == 1  # DDP all-reduces on the last micro-batch only
                with autocast, (contextlib.nullcontext() if sync else D.no_sync()):
                    loss, terms = loss_fn(D, ema, clean, noisy, generator)
                    (loss / cfg.grad_accum).backward()
                parts.append(dict(loss=loss.detach(), **terms))
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema_update(ema, model, ema_decay(cfg.ema_decay, step + 1))
            step += 1
            bar.update(1)
            last = step >= cfg.steps
            if step % cfg.log_every == 0 or last or (world == 1 and stop.signum):
                stopped = stop.signum
                last = last or bool(stopped) or time.time() > deadline
                if world > 1:  # the processes agree: a signal to any of them, or its clock, stops all at this update
                    flags = torch.tensor([float(last), float(stopped)], device=device)
                    dist.all_reduce(flags, dist.ReduceOp.MAX)
                    last, stopped = bool(flags[0].item()), int(flags[1].item())
                means = {k: torch.stack([p[k] for p in parts]).float().mean().item() for k in parts[0]}
                samples = len(parts) * cfg.batch_size * world
                seconds = time.time() - t0
                log.write(event="train", step=step, **means, samples_per_s=samples / seconds,
                          frames_per_s=samples * cfg.num_frames / seconds, elapsed_s=time.time() - t_start,
                          gpu_minutes=gpu_minutes(), **peak_memory(device))
                bar.set_postfix(loss=f"{means['loss']:.4g}")
                t0, parts = time.time(), []
            if step % cfg.save_every == 0 or last:
                checkpoint()
            if (rank == 0 and cfg.valid_files and not stopped
                    and ((cfg.valid_every and step % cfg.valid_every == 0) or last)):
                # compiled U-Nets run eagerly here: whole files have other shapes, which would compile anew
                with torch.compiler.set_stance("force_eager") if cfg.compile else contextlib.nullcontext():
                    metrics, text = validate_fn(ema)
                log.write(event="valid", step=step, gpu_minutes=gpu_minutes(), **metrics)
                bar.write(f"step {step}:\n{text}")
                t0 = time.time()  # validation time is not training time
        bar.close()
        hashes = [weights_hash(model)]
        if world > 1:  # every rank must end with the same weights
            hashes = [None] * world
            dist.all_gather_object(hashes, weights_hash(model))
            dist.destroy_process_group()
        log.write(event="end", step=step, rank_weight_hashes=hashes,
                  **({"stopped_by": signal.Signals(stopped).name} if stopped else {}))
    if stopped:
        if rank == 0:
            print(f"stopped by {signal.Signals(stopped).name} after update {step} of {cfg.steps}: {ckpt_path} holds "
                  f"it, and the same command{' without --fresh' if cfg.fresh else ''} continues from there",
                  file=sys.stderr, flush=True)
        raise SystemExit(128 + stopped)
    return ema, model


def network_and_loss(cfg, device):
    """A fresh teacher network of cfg.preset on `device`, its SDE and the loss_fn of fit."""
    sde = SDE()
    model = Denoiser(cfg.preset, c_in="edm").to(device)

    def loss_fn(D, ema, clean, noisy, generator):
        return teacher_loss(D, sde, wav_to_spec(clean), wav_to_spec(noisy), generator, model.sigma_data), {}
    return model, sde, loss_fn


def train(cfg):
    resume = preflight(cfg, "teacher")
    # read by every process before any work, so that a bad file fails at the start (only rank 0 validates)
    sets = data.validation_sets(cfg.data, cfg.valid, cfg.valid_files) if cfg.valid_files else {}
    rank, world, device = setup_distributed(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()  # the allocator reuses what the process frees: no page faults for every new tensor
    set_determinism(cfg)
    model, sde, loss_fn = network_and_loss(cfg, device)

    def validate_fn(ema):  # one set: pesq, estoi, si_sdr; several: NAME/pesq, ... for each
        metrics = {}
        for name, pairs in sets.items():
            prefix = f"{name}/" if len(sets) > 1 else ""
            metrics.update({prefix + k: v for k, v in validate(ema, sde, pairs, cfg.valid_steps, cfg.seed).items()})
        return metrics, "  ".join(f"{k} {v:.3f}" for k, v in metrics.items())

    return fit(cfg, "teacher", model, loss_fn, validate_fn, sde, rank, world, device, resume)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["export"]:  # python teacher.py export SRC DST: EMA weights in float16 only
            if len(argv) != 3:
                raise DataError("usage: python teacher.py export CHECKPOINT OUTPUT.pt")
            return export_checkpoint(argv[1], argv[2])
        if argv[:1] == ["pack"]:  # python teacher.py pack CHECKPOINT FOLDER [MIB]: resumable, in parts < 16 MiB
            if len(argv) not in (3, 4) or (len(argv) == 4 and not argv[3].replace(".", "", 1).isdigit()):
                raise DataError("usage: python teacher.py pack CHECKPOINT FOLDER [PART_MIB, default 16]")
            if len(argv) == 4 and not 0.01 <= float(argv[3]) <= 16:
                raise DataError(f"part size {argv[3]} MiB: choose 0.01 to 16")
            part_bytes = int(float(argv[3]) * 2 ** 20) if len(argv) == 4 else PART_BYTES
            manifest = pack_checkpoint(argv[1], argv[2], part_bytes)
            print(f"{argv[2]}: {len(manifest['parts'])} parts, {manifest['bytes'] / 2 ** 20:.1f} MiB, "
                  f"{manifest['kind']} at update {manifest['step']}")
            return manifest
        if argv[:1] == ["unpack"]:  # python teacher.py unpack FOLDER CHECKPOINT: the parts joined again
            if len(argv) != 3:
                raise DataError("usage: python teacher.py unpack FOLDER CHECKPOINT")
            return unpack_checkpoint(argv[1], argv[2])
        cfg = parse_config(Config, argv, description=__doc__.split("\n\n")[0] + " Also: python teacher.py export "
                           "CHECKPOINT OUTPUT.pt (its EMA weights only, in float16); pack CHECKPOINT FOLDER [MIB] "
                           "(a resumable checkpoint in parts < 16 MiB, or MIB); unpack FOLDER CHECKPOINT (the parts "
                           "joined again).")
        train(cfg)
    except DataError as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # export, pack, unpack read through DataError: this is their output (a file on its path,
        if argv[:1] not in (["export"], ["pack"], ["unpack"]):  # no permission, a full disk); training's goes up
            raise
        sys.exit(f"error: {e.filename}: cannot write there ({e.strerror or type(e).__name__})")


if __name__ == "__main__":
    main()
