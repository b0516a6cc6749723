"""The OUVE SDE: closed forms against simulation, samplers against exact scores."""
import math

import pytest
import torch

from sde import SDE, heun_step, ode_sample, pc_sample


def test_published_sigma_values():
    sigma = SDE().sigma(torch.tensor([0.03, 1.0], dtype=torch.float64))
    assert sigma[0].item() == pytest.approx(0.0188, abs=5e-5)
    assert sigma[1].item() == pytest.approx(0.3890, abs=5e-5)


def test_g_matches_the_derivative_of_the_variance():
    # For the OU process, d sigma^2 / dt = -2 gamma sigma^2 + g^2.
    sde, t, h = SDE(), torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), 1e-6
    dvar = (sde.sigma(t + h) ** 2 - sde.sigma(t - h) ** 2) / (2 * h)
    torch.testing.assert_close(dvar, -2 * sde.gamma * sde.sigma(t) ** 2 + sde.g(t) ** 2, rtol=1e-6, atol=1e-9)


def test_mu_and_sigma_agree_with_euler_maruyama_simulation():
    sde, n_paths, n_steps = SDE(), 40_000, 2000
    gen = torch.Generator().manual_seed(0)
    x0, y = 1.0, -0.5
    x = torch.full((n_paths,), x0, dtype=torch.float64)
    dt = 1.0 / n_steps
    checks = {60: 0.03, 600: 0.3, 2000: 1.0}
    for i in range(1, n_steps + 1):
        t = (i - 1) * dt
        x = x + sde.gamma * (y - x) * dt + sde.g(t) * math.sqrt(dt) * torch.randn(n_paths, generator=gen, dtype=torch.float64)
        if i in checks:
            tt = torch.tensor(checks[i], dtype=torch.float64)
            mu = sde.mu(torch.tensor(x0), torch.tensor(y), tt).item()
            sigma = sde.sigma(tt).item()
            # sampling error: sigma / sqrt(n) for the mean, sigma / sqrt(2n) for the std; 5 standard errors
            assert x.mean().item() == pytest.approx(mu, abs=5 * sigma / math.sqrt(n_paths) + 1e-4)
            assert x.std().item() == pytest.approx(sigma, rel=5 / math.sqrt(2 * n_paths) + 0.01)


def gaussian_toy(sde, m, v0, y):
    """Data x ~ N(m, v0): x_t ~ N(m_t, v_t) with m_t = a m + (1 - a) y, v_t = a^2 v0 + sigma^2, and the
    exact score -(x - m_t) / v_t turned into the mean estimate D = x + sigma^2 s that the samplers take."""
    def marginal(t):
        a = torch.exp(-sde.gamma * t)
        return a * m + (1 - a) * y, a ** 2 * v0 + sde.sigma(t) ** 2

    def D(x, y_, t):
        m_t, v_t = marginal(t)
        return x - sde.sigma(t)[:, None] ** 2 * (x - m_t[:, None]) / v_t[:, None]
    return marginal, D


@pytest.mark.parametrize("method,N", [("heun", 60), ("euler", 400)])
def test_probability_flow_carries_the_prior_to_the_data_marginal(method, N):
    sde, n = SDE(), 20_000
    m, v0, y_value = 0.7, 0.05, -0.2
    marginal, D = gaussian_toy(sde, m, v0, y_value)
    gen = torch.Generator().manual_seed(1)
    y = torch.full((n, 1), y_value, dtype=torch.float64)
    m_T, v_T = marginal(torch.tensor(sde.T, dtype=torch.float64))
    x_T = m_T + v_T.sqrt() * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    x, calls = ode_sample(sde, D, y, N=N, method=method, x_T=x_T)
    m_eps, v_eps = marginal(torch.tensor(sde.t_eps, dtype=torch.float64))
    assert calls == (2 if method == "heun" else 1) * (N - 1)
    assert x.mean().item() == pytest.approx(m_eps.item(), abs=0.01)
    assert x.var().item() == pytest.approx(v_eps.item(), rel=0.05)
    # the flow is deterministic: it maps quantiles to quantiles, so each sample's z-score is kept
    z_T = (x_T - m_T) / v_T.sqrt()
    z_eps = (x - m_eps) / v_eps.sqrt()
    assert (z_T - z_eps).abs().max().item() < 0.05


def test_heun_step_is_second_order():
    # Over a fixed interval, halving the step must cut Heun's error by about 4 or more (Euler: 2).
    sde = SDE()
    marginal, D = gaussian_toy(sde, 0.3, 0.1, 0.0)
    x0 = torch.tensor([[0.5]], dtype=torch.float64)
    y = torch.zeros(1, 1, dtype=torch.float64)

    def integrate(n):
        x, ts = x0, torch.linspace(0.8, 0.2, n + 1, dtype=torch.float64)
        for i in range(n):
            x, calls = heun_step(sde, D, x, y, ts[i:i + 1], ts[i + 1:i + 2])
            assert calls == 2
        return x

    ref = integrate(4000)
    errors = [(integrate(n) - ref).abs().item() for n in (2, 4, 8)]
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5


def test_pc_sampler_makes_60_calls_for_30_steps():
    sde, calls = SDE(), [0]

    def D(x, y, t):
        calls[0] += 1
        assert x.shape == y.shape and t.shape == (x.shape[0],)
        return y
    y = torch.randn(2, 1, 8, 4, dtype=torch.complex64)
    x, reported = pc_sample(sde, D, y, N=30)
    assert calls[0] == 60 and reported == 60
    assert x.shape == y.shape and torch.isfinite(x.real).all()


def test_pc_sampler_callback_sees_every_state_and_changes_nothing():
    sde = SDE()
    D = lambda x, y, t: 0.5 * x + 0.4 * y  # noqa: E731
    y = torch.randn(2, 1, 8, 4, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    plain, _ = pc_sample(sde, D, y, N=10, generator=torch.Generator().manual_seed(1))
    seen = []
    hooked, _ = pc_sample(sde, D, y, N=10, generator=torch.Generator().manual_seed(1),
                          callback=lambda i, x, x_mean: seen.append((i, x.clone(), x_mean.clone())))
    assert torch.equal(hooked, plain)  # the same draws, the same arithmetic
    assert [i for i, _, _ in seen] == list(range(11))  # the prior x_T, then after each of the 10 steps
    assert torch.equal(seen[0][1], seen[0][2]) and torch.equal(seen[-1][2], plain)  # x_T; the output
    torch.manual_seed(1)
    x_T = y + sde.sigma(torch.tensor(1.0)) * torch.complex(torch.randn(y.shape), torch.randn(y.shape)) / 2 ** 0.5
    assert torch.allclose(seen[0][1], x_T)  # the sampler's first draw: x_T = y + sigma(T) z


def test_pc_sampler_with_the_exact_score_reaches_the_data_distribution():
    sde, n = SDE(), 20_000
    m, v0, y_value = 0.7, 0.05, -0.2
    marginal, D = gaussian_toy(sde, m, v0, y_value)
    y = torch.full((n, 1), y_value, dtype=torch.float64)
    x, _ = pc_sample(sde, D, y, N=200, generator=torch.Generator().manual_seed(2))
    # The sampler ends between the marginal at t_eps and the data distribution N(m, v0), far from
    # the prior's mean y: the last step runs towards t = 0 with a score taken at t_eps.
    m_eps, v_eps = (v.item() for v in marginal(torch.tensor(sde.t_eps, dtype=torch.float64)))
    assert m_eps - 0.01 < x.mean().item() < m + 0.01
    assert 0.9 * v_eps < x.var().item() < 1.1 * v0
