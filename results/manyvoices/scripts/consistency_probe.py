"""The ROSE-CD consistency loss on one fixed batch, for several resumable student states (RESULTS 7.11).

The training log's consistency loss is measured on a fresh random batch at every update, between the raw student
at x_{t_n} and its EMA target at x_{t_{n+1}} (the teacher's Heun step plus, for the randomized trajectory, fresh
noise). To see whether its rise over a run is the student moving away from its teacher's trajectory or the raw
weights moving away from their EMA, this script draws one batch (crops, grid indices, z, z') with a fixed seed,
takes the teacher's step once, and evaluates for every state (teacher.py unpack output, raw and EMA weights):
  train   |raw(x_tn, t_n) - ema(x_next, t_next)|^2   the logged quantity, on the fixed batch
  export  |ema(x_tn, t_n) - ema(x_next, t_next)|^2   the exported (EMA) student's own consistency
  gap     |raw(x_tn, t_n) - ema(x_tn, t_n)|^2        raw against EMA at the same input
  clean   |ema(x_tn, t_n) - x_0|^2                   the EMA student's distance from the clean spectrogram
and, with --draws K > 1 (randomized trajectory), the part of `train` that no student can remove: the variance of
the target ema(x_next, t_next) over K draws of the fresh noise z' (unbiased; a student at x_tn does not see z'):
  floor   E_z' |ema(x_next) - E_z' ema(x_next)|^2
Usage: python results/manyvoices/scripts/consistency_probe.py TEACHER.pt STATE.pt [STATE.pt ...]
       [--speech DIR] [--noise DIR] [--batch 48] [--trajectory randomized|deterministic] [--draws K]
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import data  # noqa: E402
from distill import draw, fresh_noise, teacher_step  # noqa: E402
from model import Denoiser, load_checkpoint, load_model  # noqa: E402
from sde import bcast, randn_like, time_grid  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("teacher")
p.add_argument("states", nargs="+")
p.add_argument("--speech", default="../shared/data/librispeech_mini/train")
p.add_argument("--noise", default="../shared/data/noise_nonspeech100")
p.add_argument("--batch", type=int, default=48)
p.add_argument("--chunk", type=int, default=8, help="crops per network call")
p.add_argument("--trajectory", default="randomized", choices=["randomized", "deterministic"])
p.add_argument("--seed", type=int, default=1234)
p.add_argument("--draws", type=int, default=1, help="draws of z' for the floor column (randomized trajectory)")
args = p.parse_args()
torch.set_grad_enabled(False)

teacher, sde, _ = load_model(args.teacher)
mix = data.MixBatches(args.speech, args.noise, speeds=(1.0,))
g = torch.Generator().manual_seed(args.seed)
clean, noisy = mix(args.batch, g)
x0, y = data.wav_to_spec(clean), data.wav_to_spec(noisy)
N = 30
ts = time_grid(sde, N, x0.device)
n, z, z_prime = draw(args.batch, N, x0, g)
t_n, t_next = ts[n], ts[n + 1]
x_tn = sde.mu(x0, y, bcast(t_n, x0)) + bcast(sde.sigma(t_n), x0) * z


def chunked(f, *tensors):
    return torch.cat([f(*(t[i:i + args.chunk] for t in tensors)) for i in range(0, args.batch, args.chunk)])


def mse(a, b):
    return (a - b).abs().pow(2).mean().item()


steps = [teacher_step(teacher, sde, x_tn[i:i + args.chunk], y[i:i + args.chunk], t_n[i:i + args.chunk], N,
                      z_prime[i:i + args.chunk], args.trajectory) for i in range(0, args.batch, args.chunk)]
x_mean, x_next = (torch.cat(parts) for parts in zip(*steps))  # the teacher's Heun mean and x_{t_{n+1}}
# more draws of the trajectory's fresh noise, added to the same Heun mean as teacher_step adds it
more = [x_mean + fresh_noise(sde, t_n, N, randn_like(x_mean, g))
        for _ in range(args.draws - 1)] if args.trajectory == "randomized" else []
print(f"batch {args.batch}, grid indices {n.tolist()}", flush=True)
print("| state | step | train | export | gap | clean |" + (" floor |" if more else ""))
print("|---|---|---|---|---|---|" + ("---|" if more else ""))
for path in args.states:
    ck = load_checkpoint(path, "cpu")
    nets = {}
    for which in ("raw", "ema"):
        D = Denoiser(**ck["model"], sde=sde)
        D.load_state_dict(ck[which])
        nets[which] = D.eval()
    raw_tn = chunked(nets["raw"], x_tn, y, t_n)
    ema_tn = chunked(nets["ema"], x_tn, y, t_n)
    ema_next = chunked(nets["ema"], x_next, y, t_next)
    floor = ""
    if more:
        targets = torch.stack([ema_next] + [chunked(nets["ema"], x, y, t_next) for x in more])
        floor = f" {(targets - targets.mean(0)).abs().pow(2).sum(0).mean().item() / (len(targets) - 1):.4e} |"
    print(f"| {Path(path).name} | {ck['step']} | {mse(raw_tn, ema_next):.4e} | {mse(ema_tn, ema_next):.4e} | "
          f"{mse(raw_tn, ema_tn):.4e} | {mse(ema_tn, x0):.4e} |{floor}", flush=True)
