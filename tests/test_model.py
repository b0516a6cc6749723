"""Tests for model.py: shapes, padding, parameter counts, EDM preconditioning, rebuilding, W in checkpoints.
The official checkpoints are tests/test_official.py's."""
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import PRESETS, Denoiser, GroupNorm, count_parameters, crop_spec, downsample, export_checkpoint, load_checkpoint, \
    load_model, pad_spec, save_checkpoint, upsample  # noqa: E402
from sde import SDE  # noqa: E402


def randomize_zero_layers(d, std=0.05):
    """NCSN++ zero-initialises the last conv of every block and the output convs, so a fresh
    network ignores its input. Fill those with noise so every path really contributes."""
    with torch.no_grad():
        for p in d.parameters():
            if p.dim() > 1 and p.abs().max() == 0:
                p.normal_(0, std)
    return d


def complex_spec(B, T, F=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(B, 1, F, T, generator=g), torch.randn(B, 1, F, T, generator=g)) * 0.1


@pytest.mark.parametrize("preset,B,T", [("tiny", 2, 64), ("tiny", 2, 128), ("small", 2, 64),
                                        ("small", 1, 128), ("reference", 1, 64)])
def test_shape_dtype_finite(preset, B, T):
    torch.manual_seed(0)
    d = randomize_zero_layers(Denoiser(preset)).eval()
    x, y = complex_spec(B, T, seed=1), complex_spec(B, T, seed=2)
    t = torch.linspace(0.03, 1.0, B)
    with torch.no_grad():
        D = d(x, y, t)
    assert D.shape == x.shape and D.dtype == torch.complex64
    assert torch.isfinite(D.real).all() and torch.isfinite(D.imag).all()


def test_output_depends_on_x_y_and_t():
    torch.manual_seed(0)
    d = randomize_zero_layers(Denoiser("tiny")).eval()
    x, y, t = complex_spec(1, 64, seed=1), complex_spec(1, 64, seed=2), torch.tensor([0.5])
    with torch.no_grad():
        D = d(x, y, t)
        assert not torch.allclose(D, d(x, complex_spec(1, 64, seed=3), t))       # conditioned on y
        net = lambda t: d.net(torch.cat([x.real, x.imag, y.real, y.imag], 1), t)  # noqa: E731
        assert not torch.allclose(net(torch.tensor([0.5])), net(torch.tensor([0.6])))  # on t


@pytest.mark.parametrize("T", [100, 37, 64, 1])
def test_padding_round_trip(T):
    d = randomize_zero_layers(Denoiser("tiny")).eval()
    x, y = complex_spec(1, T, seed=1), complex_spec(1, T, seed=2)
    x_pad, T0 = pad_spec(x)
    y_pad, _ = pad_spec(y)
    assert T0 == T and x_pad.shape[-1] % 64 == 0 and x_pad.shape[-1] - T < 64
    assert torch.equal(crop_spec(x_pad, T0), x) and (x_pad[..., T:] == 0).all()
    with torch.no_grad():
        D = crop_spec(d(x_pad, y_pad, torch.tensor([0.5])), T0)
    assert D.shape == x.shape and torch.isfinite(D.real).all()


def test_parameter_counts():
    n = {name: count_parameters(Denoiser(name)) for name in PRESETS}
    assert abs(n["reference"] - 65.6e6) / 65.6e6 < 0.03
    assert 3e6 <= n["small"] < n["medium"] < 7.5e6  # medium still fits a 16 MB file in float16
    assert n["tiny"] < 0.5e6
    # attention sits only where the frequency axis has 16 bins: 2 down + 1 middle + 1 up
    ref = Denoiser("reference").net
    assert sum(type(m).__name__ == "AttnBlock" for m in ref.modules()) == 4


def test_main_prints_counts():
    r = subprocess.run([sys.executable, "model.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("reference"))
    n = int(line.split()[1].replace(",", ""))
    assert abs(n - 65.6e6) / 65.6e6 < 0.03 and "%" in line


def test_fir_resampling_keeps_a_constant():
    x = torch.full((1, 3, 16, 16), 2.0)
    assert torch.allclose(downsample(x)[..., 1:-1, 1:-1], x[..., :6, :6])  # away from the zero padding
    assert torch.allclose(upsample(x)[..., 2:-2, 2:-2], torch.full((1, 3, 28, 28), 2.0))
    assert downsample(x).shape[-2:] == (8, 8) and upsample(x).shape[-2:] == (32, 32)


def fir_by_convolution(x, up):
    """The definition of NCSN++'s FIR resampling: a depthwise 4 x 4 convolution with [1, 3, 3, 1] (x) [1, 3, 3, 1]
    of sum 1 (down: stride 2, padding 1) or sum 4 (up: zero-stuffing, i.e. a transposed convolution)."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    w = (torch.outer(k, k) / 64 * (4 if up else 1)).repeat(x.shape[1], 1, 1, 1)
    conv = F.conv_transpose2d if up else F.conv2d
    return conv(x.double(), w, stride=2, padding=1, groups=x.shape[1])


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_polyphase_fir_resampling_equals_the_depthwise_convolution(layout):
    x = torch.randn(2, 3, 8, 16, generator=torch.Generator().manual_seed(0)).to(memory_format=layout)
    for fn, up in ((downsample, False), (upsample, True)):
        out = fn(x)
        assert out.shape == fir_by_convolution(x, up).shape and out.dtype == x.dtype
        assert torch.allclose(out.double(), fir_by_convolution(x, up), atol=1e-6), fn.__name__
    for dtype in (torch.bfloat16, torch.float16):  # lower precisions keep their dtype and stay close
        assert upsample(x.to(dtype)).dtype == dtype
        assert (downsample(x.to(dtype)).double() - fir_by_convolution(x, False)).abs().max() < 0.05


def test_group_norm_from_per_channel_moments_equals_nn_group_norm(monkeypatch):
    gn = GroupNorm(4, 16, eps=1e-6)
    with torch.no_grad():
        gn.weight.normal_(generator=torch.Generator().manual_seed(0))
        gn.bias.normal_(generator=torch.Generator().manual_seed(1))
    # mean 1000, std 1: a one-pass variance E[x^2] - E[x]^2 in float32 is 16 % off here, the two-pass one is not
    x = 1000 + torch.randn(2, 16, 8, 12, generator=torch.Generator().manual_seed(2))
    ref = gn(x)
    monkeypatch.setattr(gn, "per_channel_moments", True)
    out = gn(x)
    assert torch.allclose(out, ref, atol=1e-3), (out - ref).abs().max()  # 3e-4 here
    assert sorted(gn.state_dict()) == ["bias", "weight"]  # the same keys as nn.GroupNorm: checkpoints load


def test_preconditioning_coefficients():
    d = Denoiser("tiny", sigma_data=0.1)
    t = torch.tensor([0.03, 0.4, 1.0])
    c_skip, c_out, c_in = d.preconditioning(t)
    s_min, s_max, gamma, sd = 0.05, 0.5, 1.5, 0.1
    L = math.log(s_max / s_min)
    for i, ti in enumerate(t.tolist()):  # docs/method.md, sections 2 and 3, written out by hand
        sigma = math.sqrt(s_min ** 2 * ((s_max / s_min) ** (2 * ti) - math.exp(-2 * gamma * ti)) * L / (gamma + L))
        assert c_skip[i].item() == pytest.approx(sd ** 2 / (sigma ** 2 + sd ** 2), rel=1e-5)
        assert c_out[i].item() == pytest.approx(sigma * sd / math.sqrt(sigma ** 2 + sd ** 2), rel=1e-5)
        assert c_in[i].item() == pytest.approx(1 / math.sqrt(sigma ** 2 + sd ** 2), rel=1e-5)
    assert c_skip[2].item() == pytest.approx(0.01 / (0.3890 ** 2 + 0.01), rel=1e-3)  # sigma(1) = 0.3890
    assert torch.equal(Denoiser("tiny", c_in="one").preconditioning(t)[2], torch.ones(3))


def capture_net_input(d, output=None):
    """Replace d.net.forward by a stub that records its input and returns `output` (or zeros)."""
    seen = {}

    def stub(inp, t):
        seen["inp"], seen["t"] = inp, t
        return torch.zeros(inp.shape[0], 2, *inp.shape[2:]) if output is None else output

    d.net.forward = stub
    return seen


@pytest.mark.parametrize("c_in", ["edm", "one"])
def test_zero_network_gives_c_skip_x(c_in):
    d = Denoiser("tiny", c_in=c_in)
    capture_net_input(d)
    x, y, t = complex_spec(3, 64, seed=1), complex_spec(3, 64, seed=2), torch.tensor([0.03, 0.4, 1.0])
    c_skip = d.preconditioning(t)[0]
    assert torch.equal(d(x, y, t), c_skip.view(-1, 1, 1, 1) * x)


def test_network_input_scaling_and_output_mapping():
    x, y, t = complex_spec(2, 64, seed=1), complex_spec(2, 64, seed=2), torch.tensor([0.2, 0.9])
    d = Denoiser("tiny", c_in="one")  # the student: x_t and y reach the network unscaled
    seen = capture_net_input(d)
    d(x, y, t)
    assert torch.equal(seen["inp"], torch.cat([x.real, x.imag, y.real, y.imag], dim=1))
    assert torch.equal(seen["t"], t)  # the network's time input is t itself
    d = Denoiser("tiny", c_in="edm")  # the teacher: both scaled by c_in
    seen = capture_net_input(d)
    d(x, y, t)
    c = d.preconditioning(t)[2].view(-1, 1, 1, 1)
    assert torch.allclose(seen["inp"], torch.cat([(c * x).real, (c * x).imag, (c * y).real, (c * y).imag], 1))
    # the two output channels are read as Re and Im: D = c_skip x + c_out (F0 + i F1)
    out = torch.randn(2, 2, 256, 64)
    capture_net_input(d, output=out)
    c_skip, c_out, _ = (v.view(-1, 1, 1, 1) for v in d.preconditioning(t))
    assert torch.allclose(d(x, y, t), c_skip * x + c_out * torch.complex(out[:, :1], out[:, 1:]))


def test_score_from_D():
    d = randomize_zero_layers(Denoiser("tiny")).eval()
    x, y, t = complex_spec(2, 64, seed=1), complex_spec(2, 64, seed=2), torch.tensor([0.1, 0.7])
    with torch.no_grad():
        s, D = d.score(x, y, t), d(x, y, t)
    assert torch.allclose(s, (D - x) / SDE().sigma(t).view(-1, 1, 1, 1) ** 2)


@pytest.mark.parametrize("cfg", [dict(preset="tiny", c_in="one", sigma_data=0.2), dict(preset="small"),
                                 dict(nf=8, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[64])])
def test_config_rebuilds_the_same_model(cfg):
    d = randomize_zero_layers(Denoiser(**cfg)).eval()
    with torch.no_grad():
        d.net.fourier_W.normal_(0, 16)  # W is stored with the weights: another draw than the seed-0 one of a new net
    e = Denoiser(**d.config()).eval()
    assert d.config() == e.config() and e.preset == cfg.get("preset")  # the shape in full; a preset where it is one
    assert {k: d.config()[k] for k in ("nf", "num_res_blocks")} == \
        {k: (PRESETS[cfg["preset"]] if "preset" in cfg else cfg)[k] for k in ("nf", "num_res_blocks")}
    sd, se = d.state_dict(), e.state_dict()
    assert list(sd) == list(se) and all(sd[k].shape == se[k].shape for k in sd) and "net.fourier_W" in sd
    e.load_state_dict(sd)  # same weights and W -> same function
    x, y, t = complex_spec(1, 64, seed=1), complex_spec(1, 64, seed=2), torch.tensor([0.3])
    with torch.no_grad():
        assert torch.equal(d(x, y, t), e(x, y, t))


def test_old_checkpoints_without_W_get_the_seed_0_draw_they_were_trained_with():
    d = Denoiser("tiny")
    old = {k: v for k, v in d.state_dict().items() if k != "net.fourier_W"}  # a state_dict from before W was stored
    e = Denoiser("tiny")
    with torch.no_grad():
        e.net.fourier_W.zero_()
    e.load_state_dict(old)
    expected = torch.randn(16, generator=torch.Generator().manual_seed(0)) * 16  # what NCSNpp drew before
    assert torch.equal(e.net.fourier_W, expected) and torch.equal(d.net.fourier_W, expected)


def test_exported_float16_checkpoint_keeps_W_bit_exact_in_float32(tmp_path):
    d = Denoiser("tiny")
    with torch.no_grad():
        d.net.fourier_W.normal_(0, 16, generator=torch.Generator().manual_seed(3))  # not the seed-0 fallback
    save_checkpoint(tmp_path / "full.pt", kind="teacher", config={}, model=d.config(), sde=dataclasses.asdict(SDE()),
                    ema=d.state_dict(), raw=d.state_dict(), step=1)
    export_checkpoint(tmp_path / "full.pt", tmp_path / "small.pt")
    ema = load_checkpoint(tmp_path / "small.pt")["ema"]
    assert ema["net.fourier_W"].dtype == torch.float32 and torch.equal(ema["net.fourier_W"], d.net.fourier_W)
    assert ema["net.conv_in.weight"].dtype == torch.float16
    D, _, _ = load_model(tmp_path / "small.pt")
    assert torch.equal(D.net.fourier_W, d.net.fourier_W) and D.net.conv_in.weight.dtype == torch.float32
    assert D.half().net.fourier_W.dtype == torch.float32  # .half() leaves W alone as well


def test_half_precision_weights_keep_float32_time_features():
    d = randomize_zero_layers(Denoiser("tiny")).eval()
    # 64 x 64 input (the net takes any size divisible by 2^4) keeps bfloat16 on the CPU quick
    x, y, t = complex_spec(1, 64, F=64, seed=1), complex_spec(1, 64, F=64, seed=2), torch.tensor([0.3])
    W = d.net.fourier_W.clone()
    with torch.no_grad():
        D = d(x, y, t)
        D_bf16 = d.to(torch.bfloat16)(x, y, t)
    assert torch.equal(d.net.fourier_W, W) and D_bf16.dtype == torch.complex64
    assert (D_bf16 - D).abs().max() < 0.05 * D.abs().max()


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="c_in"):
        Denoiser("tiny", c_in="unit")
    with pytest.raises(ValueError, match="preset"):
        Denoiser("huge")
    with pytest.raises(ValueError, match="not both"):
        Denoiser("tiny", nf=8)
    with pytest.raises(ValueError, match="all of nf"):
        Denoiser(nf=8)
