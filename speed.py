"""Speed benchmarks: how fast the teacher and the student enhance, and how fast one network call runs.

    python speed.py --preset small --device cuda           # teacher (30-step PC) vs student speed
    python speed.py --batch 1 8 --precision fp32 bf16      # one run per batch size and precision
    python speed.py --calls-only --batch 1 8 --precision fp32 tf32 bf16 fp16 --peak-tflops 765
    python speed.py --calls-only --batch 8 --precision fp16 --compile --cuda-graph --peak-tflops 765
    python speed.py --profile distill --device cuda --batch 14 --precision bf16 --repeats 3 --warmup 3
    python speed.py --profile teacher --preset small --device cuda --batch 64 --precision bf16

A tool on top of the method, not needed to understand it. benchmark times the teacher's predictor-corrector
against the student's one step through the whole enhancement pipeline (enhance.enhance_batch), benchmark_calls
the student's network call alone (RESULTS.md sections 3 and 5); both make the networks fast as enhance.py does
(fast.optimise: memory format, torch.compile, CUDA graphs). profile_training profiles training updates of
distill.py or teacher.py as teacher.fit runs them, and sums the time by kernel family (issue 22, RESULTS.md).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data import DEMO, HOP, SAMPLE_RATE, DataError, check_one_window, crop_samples, load_audio, wav_to_spec
from distill import Config as DistillConfig, load_teacher, student_and_loss
from enhance import PRECISIONS, enhance_batch, pick_device, precision
from evaluate import check_writable, write_atomic
from fast import optimise
from model import NUM_FREQS, PRESETS, Denoiser, load_model, pad_spec
from teacher import Config as TeacherConfig, fit, network_and_loss, set_determinism


# ----------------------------------------------------------------------------- benchmarks

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
    Both networks go through optimise (the memory format, cuDNN's algorithm search), torch.compile
    if compiled, a CUDA graph of the input's shape if cuda_graph (the warm-up calls compile and capture)."""
    default_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    device = benchmark_device(device, batch, cuda_graph)
    input_path = input_path or str(DEMO / "vbdmd" / "noisy" / "p287_003.wav")
    noisy = load_audio(input_path)
    if seconds > 0:
        noisy = np.resize(noisy, int(seconds * SAMPLE_RATE))  # crop, or repeat the file, to `seconds`
    check_one_window(noisy, input_path, "the benchmark", f" with --seconds {seconds:g}" if seconds > 0 else "")
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


# ----------------------------------------------------------------------------- profile of a training update

# (family, substrings of the lower-cased kernel name, or on a CPU of the op name): the first family that matches.
# The order matters: cuDNN's layout kernels before the convolutions, convolutions (implicit GEMM) before GEMMs,
# group norm (its own moments and reductions) before reductions. Copies include autocast's dtype casts.
KERNEL_FAMILIES = (
    ("optimizer (Adam, EMA)", ("adam", "multi_tensor_apply", "_foreach_", "lerp")),
    ("layout conversion, copies", ("nchwtonhwc", "nhwctonchw", "copy_kernel", "aten::copy_", "aten::clone",
                                   "aten::_to_copy", "memcpy", "catarraybatchedcopy", "aten::cat", "reorder")),
    ("FFT", ("fft", "stft")),
    ("group norm", ("group_norm", "groupnorm", "rowwisemoments", "computefusedparams", "gammabeta",
                    "compute1dbackward", "computeinternalgradients", "computebackwardfusedparams")),
    ("convolution", ("convolution", "conv1d", "conv2d", "implicit_gemm", "implicit_convolve", "winograd", "fprop",
                     "dgrad", "wgrad", "cudnn", "mkldnn")),
    ("matrix multiply", ("gemm", "gemv", "matmul", "cublas", "aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm",
                         "scaled_dot_product", "flash", "fmha")),
    ("reduction", ("reduce", "aten::sum", "aten::mean", "norm", "aten::max", "aten::min", "aten::amax")),
    ("element-wise", ("elementwise", "aten::add", "aten::sub", "aten::mul", "aten::div", "aten::silu", "aten::sigmoid",
                      "aten::exp", "aten::log", "aten::pow", "aten::sqrt", "aten::rsqrt", "aten::reciprocal",
                      "aten::abs", "aten::neg", "aten::sin", "aten::cos", "aten::where", "aten::clamp", "aten::fill_",
                      "aten::zero_", "aten::pad", "aten::constant_pad", "softmax",
                      "aten::rand", "aten::normal_", "aten::uniform_", "aten::complex",
                      "aten::view_as_real", "aten::angle", "aten::atan2", "aten::real", "aten::imag")),
)
FAMILIES = [family for family, _ in KERNEL_FAMILIES] + ["other"]


def kernel_family(name):
    """The family of a GPU kernel or CPU op, by its name (KERNEL_FAMILIES); 'other' where none matches."""
    name = name.lower()
    return next((family for family, parts in KERNEL_FAMILIES if any(part in name for part in parts)), "other")


def profile_training(kind="distill", preset="reference", checkpoint_teacher="", device="auto", batch=14,
                     mode="bf16", frames=256, updates=3, warmup=3, compiled=False, seed=0, threads=0,
                     channels_last=False, cuda_graph=False):
    """Profile of `updates` training updates of distill.py (kind 'distill': rosecd_loss, the student and its
    EMA target started from a teacher: checkpoint_teacher, or random weights of preset) or of teacher.py
    ('teacher': teacher_loss on a fresh network of preset), run by teacher.fit itself (its batches, autocast,
    fused Adam, EMA, --compile) with one micro-batch of `batch` crops of `frames` frames per update.

    After `warmup` untimed updates, `updates` are timed (time per update, crops/s) and as many
    after them profiled with torch.profiler (it slows the launches, so it is not the clock): on a GPU the
    kernels' device time, on a CPU the ops' self time, summed by kernel_family. mode: fp32 or bf16 (fit's
    autocast, GPU only). channels_last, cuda_graph: fit's --channels-last, --cuda-graphs. The first update's
    time is reported apart (first_update_s: with compiled, mostly compiling); on a GPU, gpu_busy_percent: the
    kernels' time over the timed update's, and peak_memory_gib: the most memory tensors held at any point of the
    profile, warm-up included (CUDA graphs allocate their memory pool while warm-up captures them, and replays
    allocate nothing: a peak taken after warm-up would miss it)."""
    default_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    if cuda_graph and not compiled:
        raise DataError("--cuda-graph with --profile replays the compiled step: add --compile")
    device = benchmark_device(device, batch, cuda_graph)
    if mode not in ("fp32", "bf16") or (mode == "bf16" and device.type != "cuda"):
        raise DataError(f"--precision {mode}: training profiles take fp32, or bf16 on a GPU (teacher.fit's autocast)")
    if frames < 64 or frames % 64:
        raise DataError(f"--frames {frames}: must be a positive multiple of 64 (the U-Net halves it 6 times)")
    if updates < 1 or warmup < 0:
        raise DataError(f"--repeats {updates} / --warmup {warmup}: at least 1 profiled update, no negative warm-up")
    if device.type == "cuda":  # the peak of this profile from its first allocation (a run may hold several)
        torch.cuda.reset_peak_memory_stats(device)
    work = tempfile.TemporaryDirectory()  # fit's log and final checkpoint, thrown away
    options = dict(out=work.name, steps=warmup + 2 * updates + 1, batch_size=batch, grad_accum=1, num_frames=frames,
                   bf16=mode == "bf16", compile=compiled, cuda_graphs=cuda_graph, channels_last=channels_last,
                   valid_files=0, log_every=10 ** 9, save_every=10 ** 9, seed=seed, device=str(device))
    if kind == "distill":  # as distill.distill builds its step
        cfg = DistillConfig(**options)
        set_determinism(cfg)
        if checkpoint_teacher:
            frozen, sde = load_teacher(checkpoint_teacher, device)
        else:
            frozen = Denoiser(preset, "edm").to(device).eval().requires_grad_(False)
            sde = frozen.sde
        model, loss_fn = student_and_loss(cfg, frozen, sde, device)
        what = f"distill, {checkpoint_teacher or preset + ' random'} teacher"
    elif kind == "teacher":  # as teacher.train builds its step
        cfg = TeacherConfig(preset=preset, **options)
        set_determinism(cfg)
        model, sde, loss_fn = network_and_loss(cfg, device)
        what = f"teacher, {preset}"
    else:
        raise DataError(f"--profile {kind}: expected distill or teacher")

    cuda = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    profiler = torch.profiler.profile(activities=activities)
    clock, calls = {}, 0

    def timed_loss_fn(*args):  # one call per update (grad_accum 1): marks the updates' boundaries
        nonlocal calls
        if calls in (0, 1, warmup, warmup + updates, warmup + 2 * updates):
            synchronize(device)
            clock[calls] = time.perf_counter()
        if calls == warmup + updates:
            profiler.start()
        if calls == warmup + 2 * updates:
            profiler.stop()
        calls += 1
        return loss_fn(*args)

    with work:
        fit(cfg, kind if kind == "teacher" else "student", model, timed_loss_fn, lambda ema: ({}, ""), sde, 0, 1,
            device)
    times = {}  # microseconds of each kernel (GPU) or op's self time (CPU), summed over the profiled updates
    for event in profiler.key_averages():
        if (event.device_type == torch.autograd.DeviceType.CUDA) == cuda:
            times[event.key] = times.get(event.key, 0.0) + (event.self_device_time_total if cuda
                                                            else event.self_cpu_time_total)
    families = dict.fromkeys(FAMILIES, 0.0)
    for name, us in times.items():
        families[kernel_family(name)] += us / 1e3 / updates
    total = sum(families.values())
    seconds = (clock[warmup + updates] - clock[warmup]) / updates
    top = sorted(times.items(), key=lambda item: -item[1])[:10]
    result = {"kind": "profile", "step": kind, "model": what, "device": torch.cuda.get_device_name(device) if cuda
              else "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__, "batch": batch,
              "frames": frames, "precision": mode, "compiled": compiled, "cuda_graph": cuda_graph,
              "channels_last": channels_last,
              "updates": updates, "warmup": warmup, "first_update_s": clock[1] - clock[0],
              "time_per_update_ms": 1e3 * seconds, "crops_per_s": batch / seconds,
              "frames_per_s": batch * frames / seconds, "profiled_ms_per_update": total,
              # kernel time over the timed update's wall time: far below 100 %, the GPU waits for the CPU's launches
              "gpu_busy_percent": 100 * total / (1e3 * seconds) if cuda else None,
              "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if cuda else None,
              "families_ms_per_update": families,
              "shares_percent": {f: 100 * ms / total if total else 0.0 for f, ms in families.items()},
              "top": [{"name": name, "family": kernel_family(name), "ms_per_update": us / 1e3 / updates}
                      for name, us in top]}
    torch.set_num_threads(default_threads)
    return result


def profile_table(r):
    """The profile as markdown: time per kernel family, then the ten longest kernels (or CPU ops)."""
    clock = "device" if r["device"] != "cpu" else "CPU self"
    peak = f", peak memory {r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] is not None else ""
    first = f"; the first update took {r['first_update_s']:.1f} s" if "first_update_s" in r else ""  # (older files)
    busy = (f"; kernels run for {r['gpu_busy_percent']:.0f} % of an update's time"
            if r.get("gpu_busy_percent") is not None else "")
    lines = [f"{r['model']} on {r['device']}: batch {r['batch']} x {r['frames']} frames, {r['precision']}, "
             f"{'compiled' if r['compiled'] else 'eager'}{', CUDA graphs' if r.get('cuda_graph') else ''}"
             f"{', channels-last' if r.get('channels_last') else ''}, "
             f"{r['updates']} updates timed and {r['updates']} profiled "
             f"after {r['warmup']} warm-up",
             f"{r['time_per_update_ms']:.1f} ms per update, {r['crops_per_s']:.1f} crops/s "
             f"({r['frames_per_s']:.0f} frames/s){peak}{first}{busy}", "",
             f"| kernel family | {clock} time ms per update | share % |", "|---|---|---|"]
    for family, ms in r["families_ms_per_update"].items():
        lines.append(f"| {family} | {ms:.2f} | {r['shares_percent'][family]:.1f} |")
    lines += [f"| total | {r['profiled_ms_per_update']:.2f} | 100.0 |", "",
              "| longest kernels | family | ms per update |", "|---|---|---|"]
    lines += [f"| `{k['name'][:90]}` | {k['family']} | {k['ms_per_update']:.2f} |" for k in r["top"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line

def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="reference", choices=sorted(PRESETS), help="network size without checkpoints")
    p.add_argument("--checkpoint-teacher", default="", metavar="CKPT",
                   help="teacher checkpoint (this project's or an official .ckpt); empty: random weights of --preset")
    p.add_argument("--checkpoint-student", default="", metavar="CKPT",
                   help="student checkpoint (this project's or an official .ckpt); empty: random weights of --preset")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--steps", type=int, default=30, help="teacher sampler steps N (2N network calls)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each model (the median is reported); "
                   "--profile: updates timed, and as many profiled after them")
    p.add_argument("--warmup", type=int, default=1, help="untimed one-call enhancements before each timed run; "
                   "--profile: untimed training updates first (with --compile: 3 or more)")
    p.add_argument("--seconds", type=float, default=4.0, help="audio length: --input cropped or repeated (0: as is)")
    p.add_argument("--input", default="", metavar="FILE",
                   help="noisy file to enhance; empty: demo/vbdmd/noisy/p287_003.wav")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samplers' noise")
    p.add_argument("--batch", type=int, nargs="+", default=[1], metavar="B",
                   help="copies of the input enhanced together; several values: one run each")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS,
                   help="network arithmetic: fp32 (TF32 off), tf32, bf16 or fp16 (autocast; fp16 on a GPU only); "
                   "several: one run each")
    p.add_argument("--compile", dest="compiled", action="store_true",
                   help="compile the networks with torch.compile (the warm-up calls compile)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="GPU only: replay the networks from a CUDA graph of the timed shape (captured in warm-up); "
                   "--profile: the training step's --cuda-graphs (with --compile)")
    p.add_argument("--calls-only", action="store_true",
                   help="time only the student's network call D(x_T, y, T) on a random [batch, 1, 256, --frames] "
                   "spectrogram: ms per call, RTF, TFLOP/s (--checkpoint-student or --preset; no teacher, no STFT)")
    p.add_argument("--frames", type=int, default=256,
                   help="spectrogram frames per call for --calls-only (256 = 2.04 s, the training crop)")
    p.add_argument("--peak-tflops", type=float, default=0.0, metavar="TF",
                   help="the device's measured peak TFLOP/s (e.g. 765: a bf16 matrix product on the H100 of "
                   "RESULTS.md): report the percentage achieved; 0: no percentage")
    p.add_argument("--profile", default="", choices=("", "distill", "teacher"),
                   help="profile training updates instead, run by teacher.fit: distill.py's (a random --preset "
                   "teacher, or --checkpoint-teacher) or teacher.py's (--preset), --batch crops of --frames frames "
                   "per update; a table of the time per kernel family, crops/s and peak GPU memory")
    p.add_argument("--channels-last", action="store_true",
                   help="--profile: the training step's networks in channels-last memory (teacher.py and "
                   "distill.py --channels-last)")
    p.add_argument("--out", default="", metavar="DIR", help="folder for benchmark.json (every run's numbers; "
                   "--profile: profile.json, with the tables); empty: no file")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark.json or profile.json in "
                   "--out")
    return p


def run_benchmark(a):
    """The command line's work: a benchmark per (--batch, --precision), its options checked before the first."""
    for option, value, least in (("--steps", a.steps, 1), ("--repeats", a.repeats, 1), ("--warmup", a.warmup, 0),
                                 ("--seconds", a.seconds, 0), ("--threads", a.threads, 0),
                                 ("--peak-tflops", a.peak_tflops, 0), *(("--batch", b, 1) for b in a.batch)):
        if not value >= least:
            raise DataError(f"{option} {value}: must be at least {least}")
    if a.channels_last and not a.profile:
        raise DataError("--channels-last is an option of --profile (the training step's layout)")
    if a.out and Path(a.out).exists() and not Path(a.out).is_dir():
        raise DataError(f"--out {a.out}: a file, not a folder; choose another")
    json_path = Path(a.out) / ("profile.json" if a.profile else "benchmark.json") if a.out else None
    check_writable([json_path] if json_path else [], a.overwrite)
    results = []
    for batch in a.batch:
        for mode in a.precision:
            if a.profile:
                results.append(profile_training(a.profile, a.preset, a.checkpoint_teacher, a.device, batch, mode,
                                                a.frames, a.repeats, a.warmup, a.compiled, a.seed, a.threads,
                                                a.channels_last, a.cuda_graph))
                results[-1]["table"] = profile_table(results[-1])
                print(results[-1]["table"], flush=True)
                continue
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
    if len(results) > 1 and not (a.calls_only or a.profile):
        print(summary_table(results), end="")
    if json_path:
        write_atomic(json_path, json.dumps(results, indent=2) + "\n")
    return results


def main(argv=None):
    a = make_parser().parse_args(argv)
    try:
        return run_benchmark(a)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
