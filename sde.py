"""The OUVE stochastic process and its samplers (docs/method.md, sections 2, 4 and 5).

Forward SDE:  dx = gamma (y - x) dt + g(t) dw,   g(t) = s_min (s_max/s_min)^t sqrt(2 ln(s_max/s_min))
It pulls the clean spectrogram x towards the noisy one y while adding noise that grows
exponentially in t. Everything here works on complex tensors [B, 1, F, T] and on any
"denoiser" callable D(x_t, y, t) -> estimate of the marginal mean mu(t) (model.py).

Samplers:
  pc_sample        30-step predictor-corrector of the teacher (2 network calls per step)
  ode_sample       probability-flow ODE, Euler or Heun, N steps
  heun_step        one Heun step of the probability-flow ODE (what distillation uses)
Each sampler returns (estimate, number_of_network_calls).
"""
import math
from dataclasses import dataclass

import torch


@dataclass
class SDE:
    gamma: float = 1.5        # stiffness of the pull towards y
    sigma_min: float = 0.05   # s_min
    sigma_max: float = 0.5    # s_max
    T: float = 1.0            # start of the reverse process
    t_eps: float = 0.03       # end of the reverse process (t = 0 is never used)

    @property
    def L(self):
        return math.log(self.sigma_max / self.sigma_min)

    def g(self, t):
        """Diffusion coefficient g(t)."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t * math.sqrt(2 * self.L)

    def mu(self, x, y, t):
        """Marginal mean: e^(-gamma t) x + (1 - e^(-gamma t)) y."""
        a = torch.exp(-self.gamma * t)
        return a * x + (1 - a) * y

    def sigma(self, t):
        """Marginal standard deviation sigma(t) (closed form of the OU variance integral)."""
        var = self.sigma_min ** 2 * ((self.sigma_max / self.sigma_min) ** (2 * t) - torch.exp(-2 * self.gamma * t)) \
            * self.L / (self.gamma + self.L)
        return torch.sqrt(var)

    def prior_sample(self, y, generator=None):
        """x_T = y + sigma(T) z."""
        t = torch.full((y.shape[0],), self.T, device=y.device)
        return y + bcast(self.sigma(t), y) * randn_like(y, generator)

    def score(self, D, x_t, t):
        """Score from a mean estimate: s = (D - x_t) / sigma(t)^2."""
        return (D - x_t) / bcast(self.sigma(t), x_t) ** 2

    def ode_drift(self, D, x_t, y, t):
        """Probability-flow ODE drift f(x, t) = gamma (y - x) - 0.5 g(t)^2 s(x, t)."""
        return self.gamma * (y - x_t) - 0.5 * bcast(self.g(t), x_t) ** 2 * self.score(D, x_t, t)

    def reverse_drift(self, D, x_t, y, t):
        """Reverse SDE drift gamma (y - x) - g(t)^2 s(x, t) (the diffusion term is g(t) dw)."""
        return self.gamma * (y - x_t) - bcast(self.g(t), x_t) ** 2 * self.score(D, x_t, t)


def bcast(v, like):
    """A per-sample value [B] viewed as [B, 1, 1, ...] to broadcast against `like`."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def randn_like(x, generator=None):
    """Standard normal noise shaped like x; complex x gets unit variance per complex entry."""
    if x.is_complex():
        re = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.real.dtype)
        im = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.real.dtype)
        return torch.complex(re, im) / math.sqrt(2)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def time_grid(sde, N, device=None):
    """N evenly spaced points from T down to t_eps (t_1 = T > ... > t_N = t_eps)."""
    return torch.linspace(sde.T, sde.t_eps, N, device=device)


@torch.no_grad()
def pc_sample(sde, D, y, N=30, snr=0.5, generator=None, z=None, callback=None):
    """Predictor-corrector sampler of the teacher (docs/method.md, section 4.3).

    At each grid point t_i: one annealed-Langevin corrector step (step size 2 (r sigma(t))^2),
    then one reverse-diffusion predictor step of size t_i - t_{i+1}, and from the last point
    t_N = t_eps of size t_eps (down to 0), as the official sampler steps. 2 calls per point, 2N in all.
    Returns the last noise-free mean (the predictor's mean without the injected noise).
    z: optional iterator of the 2N + 1 standard normal draws (prior, then per point corrector and
    predictor), to replay recorded noise; by default they are drawn from `generator`.
    callback: optional callback(i, x, x_mean), called with the prior sample x_T (i = 0, x_mean = x) and after
    each predictor step i = 1..N with the new state and its noise-free mean (figures.py draws them); it
    reads them only, so the result is the same with it or without.
    """
    ts = time_grid(sde, N)
    steps = (ts[:-1] - ts[1:]).tolist() + [ts[-1].item()]  # the grid spacing, then t_eps at the last point
    ts = ts.to(y.device)
    draw = (lambda like: next(z)) if z is not None else (lambda like: randn_like(like, generator))
    x = y + sde.sigma(torch.tensor(sde.T)).item() * draw(y)  # x_T = y + sigma(T) z
    calls = 0
    x_mean = x
    if callback is not None:
        callback(0, x, x_mean)
    for i, step in enumerate(steps):
        t = ts[i].expand(y.shape[0])
        # corrector: x <- x + eps s(x, t) + sqrt(2 eps) z, eps = 2 (r sigma(t))^2
        s = sde.score(D(x, y, t), x, t)
        calls += 1
        eps = bcast(2 * (snr * sde.sigma(t)) ** 2, x)
        x = x + eps * s + torch.sqrt(2 * eps) * draw(x)
        # predictor: reverse-diffusion (Euler-Maruyama on the reverse SDE, backwards by `step`)
        f = sde.reverse_drift(D(x, y, t), x, y, t)
        calls += 1
        x_mean = x - f * step
        x = x_mean + bcast(sde.g(t), x) * math.sqrt(step) * draw(x)
        if callback is not None:
            callback(i + 1, x, x_mean)
    return x_mean, calls


def heun_step(sde, D, x, y, t, t_next):
    """One Heun step of the probability-flow ODE from t to t_next (dt = t_next - t < 0).

    d1 = f(x, t); x~ = x + d1 dt; d2 = f(x~, t_next); x_next = x + 0.5 (d1 + d2) dt.
    t and t_next are [B] tensors. Returns (x_next, 2 network calls).
    """
    dt = bcast(t_next - t, x)
    d1 = sde.ode_drift(D(x, y, t), x, y, t)
    x_tilde = x + d1 * dt
    d2 = sde.ode_drift(D(x_tilde, y, t_next), x_tilde, y, t_next)
    return x + 0.5 * (d1 + d2) * dt, 2


@torch.no_grad()
def ode_sample(sde, D, y, N=30, method="heun", generator=None, x_T=None):
    """Probability-flow ODE sampler from T to t_eps over N grid points (N-1 steps).

    Euler takes one call per step; Heun two. Returns a sample of the marginal at t_eps, which still
    holds noise of std sigma(t_eps); enhance.py follows it with the denoiser's mean estimate D(x, y, t_eps).
    """
    ts = time_grid(sde, N, y.device)
    x = sde.prior_sample(y, generator) if x_T is None else x_T
    calls = 0
    for i in range(N - 1):
        t, t_next = ts[i].expand(y.shape[0]), ts[i + 1].expand(y.shape[0])
        if method == "heun":
            x, c = heun_step(sde, D, x, y, t, t_next)
        elif method == "euler":
            x, c = x + sde.ode_drift(D(x, y, t), x, y, t) * bcast(t_next - t, x), 1
        else:
            raise ValueError(f"unknown ODE method {method!r} (euler or heun)")
        calls += c
    return x, calls
