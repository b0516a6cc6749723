"""The network, its preconditioning and its checkpoints (METHOD.md section 3).

NCSNpp    a compact NCSN++ U-Net: 4 real channels in (Re, Im of x_t and of y), 2 out.
PRESETS   its shapes, as plain data: "reference" (the published 65.6 M teacher), "small", "tiny".
Denoiser  the EDM-preconditioned mean estimator D(x_t, y, t), complex in / complex out:
          D = c_skip x_t + c_out F(c_in x_t, c_in y, t), with sigma = sigma(t) of the OUVE SDE.
pad_spec / crop_spec   pad the time axis to a multiple of 64 and crop it back.
save_checkpoint / load_checkpoint / export_checkpoint / load_model   the checkpoint files.

The U-Net halves the frequency and time axes once per level after the first, so with L levels
the input needs F and T divisible by 2^(L-1); the presets have at most 7 levels (6 halvings),
so F = 256 and any T that is a multiple of 64 always work.
"""
import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import DataError
from sde import SDE, bcast

NUM_FREQS = 256  # frequency bins of the spectrogram (METHOD.md 1); level i has 256 / 2^i of them

PRESETS = {
    # the published teacher (SGMSE+ / ROSE-CD NCSN++), 65.6 M parameters
    "reference": dict(nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,)),
    # same topology at a quarter of the width: ~4.1 M parameters, 8 MB in float16
    "small": dict(nf=32, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,)),
    # tests and CPU demos: narrower, 1 block per level and 5 levels (4 halvings), so still fine
    # for T a multiple of 64; attention at 16 bins as in the reference
    "tiny": dict(nf=16, ch_mult=(1, 1, 2, 2, 2), num_res_blocks=1, attn_resolutions=(16,)),
}


def conv(c_in, c_out, k, scale=1.0):
    """k x k convolution with the DDPM default init: Xavier-uniform (fan_avg) weights times
    sqrt(scale), zero bias. scale=0 gives an all-zero layer (NCSN++ uses 1e-10, i.e. zero)."""
    layer = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    nn.init.xavier_uniform_(layer.weight, gain=math.sqrt(scale))
    nn.init.zeros_(layer.bias)
    return layer


def linear(c_in, c_out):
    layer = nn.Linear(c_in, c_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm, the same parameters and state_dict keys. With per_channel_moments set (enhance.optimise
    sets it for torch.compile on a GPU) it computes the same normalisation in another order: the mean and
    the variance of each channel over (F, T) first, then those of each group from its channels. torch.compile
    stores activations channels-last around cuDNN's convolutions, where the channels of a group are not
    contiguous; reductions per channel read that layout in long coalesced runs. Measured on the H100, one
    reference call at batch 8 in fp16, compiled and CUDA-graphed: 18.4 ms with these, 26.6 ms with
    nn.GroupNorm's own (RESULTS.md 5)."""

    per_channel_moments = False

    def forward(self, x):
        if not self.per_channel_moments:
            return super().forward(x)
        B, C, G = x.shape[0], x.shape[1], self.num_groups
        x32 = x.float()
        mean_c = x32.mean(dim=(2, 3))                                     # [B, C]
        mean_g = mean_c.view(B, G, -1).mean(-1)                           # [B, G]: groups hold equal channels
        mean = mean_g.repeat_interleave(C // G, dim=1)                    # [B, C]
        var_c = (x32 - mean[:, :, None, None]).square().mean(dim=(2, 3))  # two passes: no cancellation
        rstd = torch.rsqrt(var_c.view(B, G, -1).mean(-1) + self.eps).repeat_interleave(C // G, dim=1)
        scale = rstd * self.weight
        return x32 * scale[:, :, None, None] + (self.bias - mean * scale)[:, :, None, None]


def group_norm(c):
    return GroupNorm(min(c // 4, 32), c, eps=1e-6)


def _pad(x, dim):
    """One zero on each side of axis dim (2: frequency, 3: time) of x [B, C, F, T]."""
    return F.pad(x, (1, 1) if dim == 3 else (0, 0, 1, 1))


def downsample(x):
    """FIR down-sampling by 2 on both axes: blur with the [1, 3, 3, 1] / 8 filter (zero padding 1), keep
    every 2nd sample. Per axis, in polyphase form with p = the padded x: out[i] = (p[2i] + 3 p[2i+1] +
    3 p[2i+2] + p[2i+3]) / 8. Slices and sums, not a depthwise convolution: they are plain memory-bound
    element-wise work that torch.compile fuses into its neighbours, where a depthwise convolution is a
    separate library kernel (and cuDNN's is slow)."""
    for dim in (2, 3):
        n = x.shape[dim]
        pairs = _pad(x, dim).unflatten(dim, (n // 2 + 1, 2))  # p[2i + j] = pairs[i, j], i = 0 .. n/2
        even, odd = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)  # p[2i], p[2i + 1]
        first, second = even.narrow(dim, 0, n // 2), odd.narrow(dim, 0, n // 2)  # p[2i], p[2i + 1], i < n/2
        third, fourth = even.narrow(dim, 1, n // 2), odd.narrow(dim, 1, n // 2)  # p[2i + 2], p[2i + 3]
        x = (first + 3 * (second + third) + fourth) * 0.125
    return x


def upsample(x):
    """FIR up-sampling by 2 on both axes: zero-stuffing then the [1, 3, 3, 1] / 4 filter (gain 2 per axis
    keeps the mean). Per axis, in polyphase form with zeros beyond the edges: out[2m] = (x[m-1] + 3 x[m]) / 4,
    out[2m+1] = (3 x[m] + x[m+1]) / 4, the two phases stacked and interleaved (see downsample for why)."""
    for dim in (2, 3):
        n, p = x.shape[dim], _pad(x, dim)
        before, here, after = p.narrow(dim, 0, n), p.narrow(dim, 1, n), p.narrow(dim, 2, n)
        phases = torch.stack([before + 3 * here, 3 * here + after], dim=dim + 1) * 0.25  # [.., n, 2, ..]
        x = phases.flatten(dim, dim + 1)
    return x


class ResBlock(nn.Module):
    """BigGAN-style residual block (NCSN++ 'biggan'), optionally resampling by 2 with FIR.

    h = Conv1(SiLU(GN(Conv0(resample(SiLU(GN(x)))) + Dense(SiLU(temb)))));
    out = (skip(resample(x)) + h) / sqrt(2).   Dropout is 0 in the published model, so absent.
    """

    def __init__(self, c_in, c_out, temb_dim, up=False, down=False):
        super().__init__()
        self.up, self.down = up, down
        self.norm0 = group_norm(c_in)
        self.conv0 = conv(c_in, c_out, 3)
        self.dense = linear(temb_dim, c_out)
        self.norm1 = group_norm(c_out)
        self.conv1 = conv(c_out, c_out, 3, scale=0.0)  # zero-init: the block starts as its skip path
        self.skip = conv(c_in, c_out, 1) if (c_in != c_out or up or down) else nn.Identity()

    def forward(self, x, temb):
        h = F.silu(self.norm0(x))
        if self.up:
            h, x = upsample(h), upsample(x)
        if self.down:
            h, x = downsample(h), downsample(x)
        h = self.conv0(h) + self.dense(F.silu(temb))[:, :, None, None]  # time conditioning as a bias
        h = self.conv1(F.silu(self.norm1(h)))
        return (self.skip(x) + h) / math.sqrt(2)  # skip_rescale


class AttnBlock(nn.Module):
    """Single-head self-attention over all (frequency, time) positions, residual, rescaled."""

    def __init__(self, c):
        super().__init__()
        self.norm = group_norm(c)
        self.q, self.k, self.v = conv(c, c, 1, 0.1), conv(c, c, 1, 0.1), conv(c, c, 1, 0.1)
        self.out = conv(c, c, 1, scale=0.0)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x)
        q, k, v = (m(h).flatten(2).transpose(1, 2) for m in (self.q, self.k, self.v))  # [B, HW, C]
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v
        h = self.out(h.transpose(1, 2).reshape(B, C, H, W))
        return (x + h) / math.sqrt(2)


class NCSNpp(nn.Module):
    """Compact NCSN++: [B, 4, F, T] real, t [B] -> [B, 2, F, T] real.

    Down path: per level, num_res_blocks blocks (+ attention where F at that level is in
    attn_resolutions), then a down-sampling block; the input, FIR-down-sampled alongside, is added
    after a 1x1 conv ("input_skip", combined by sum). Middle: block, attention, block. Up path:
    per level, num_res_blocks + 1 blocks on [h, skip] (+ attention), then an output branch
    GN-SiLU-conv3x3 to 4 channels summed into an FIR-up-sampled pyramid ("output_skip"), then an
    up-sampling block. A final 1x1 conv maps the 4 pyramid channels to 2.
    """

    def __init__(self, nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 fourier_scale=16.0):
        super().__init__()
        levels, temb_dim = len(ch_mult), 4 * nf
        # Gaussian Fourier features of ln t: nf random frequencies W ~ N(0, scale^2), never trained. A buffer,
        # so checkpoints keep it (net.fourier_W; the official code's all_modules.0.W), and float32 always, even
        # in a float16 network or file (_apply, export_checkpoint): W ln t reaches ~1e3 rad, so a float16-rounded
        # W would scramble the time embedding. A new network draws W from seed 0; so did this project's
        # checkpoints from before W was stored, and loading one of those restores that draw (fill_fourier_W).
        self.fourier_scale = fourier_scale
        self.register_buffer("fourier_W", fourier_frequencies(nf, fourier_scale))
        self.register_load_state_dict_pre_hook(fill_fourier_W)
        self.temb = nn.Sequential(linear(2 * nf, temb_dim), nn.SiLU(), linear(temb_dim, temb_dim))
        self.conv_in = conv(4, nf, 3)

        ch, skips = nf, [nf]  # channel counts of the tensors kept for the up path
        self.down = nn.ModuleList()
        for i, mult in enumerate(ch_mult):
            level, attn = nn.Module(), (NUM_FREQS >> i) in attn_resolutions
            level.blocks, level.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                level.blocks.append(ResBlock(ch, nf * mult, temb_dim))
                ch = nf * mult
                level.attn.append(AttnBlock(ch) if attn else nn.Identity())
                skips.append(ch)
            if i < levels - 1:
                level.resample = ResBlock(ch, ch, temb_dim, down=True)
                level.combine = conv(4, ch, 1)  # input skip: 1x1 conv of the down-sampled input
                skips.append(ch)
            self.down.append(level)

        self.mid_block0, self.mid_attn, self.mid_block1 = \
            ResBlock(ch, ch, temb_dim), AttnBlock(ch), ResBlock(ch, ch, temb_dim)

        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.blocks.append(ResBlock(ch + skips.pop(), nf * ch_mult[i], temb_dim))
                ch = nf * ch_mult[i]
            level.attn = AttnBlock(ch) if (NUM_FREQS >> i) in attn_resolutions else nn.Identity()
            level.norm_out, level.conv_out = group_norm(ch), conv(ch, 4, 3, scale=0.0)  # output skip
            if i > 0:
                level.resample = ResBlock(ch, ch, temb_dim, up=True)
            self.up.append(level)
        self.conv_final = nn.Conv2d(4, 2, 1)  # 4 pyramid channels -> Re, Im (PyTorch default init)

    def forward(self, x, t):
        dtype = self.conv_in.weight.dtype  # compute in the weights' dtype (autocast may lower it)
        proj = torch.log(t.float())[:, None] * self.fourier_W[None, :] * 2 * math.pi  # float32, the official order
        temb = self.temb(torch.cat([torch.sin(proj), torch.cos(proj)], dim=1).to(dtype))

        # the input in the weights' memory format: channels-last (NHWC) once the network was converted to it
        layout = torch.channels_last if self.conv_in.weight.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        x = x.to(dtype, memory_format=layout)
        pyramid = x
        hs = [self.conv_in(x)]
        for level in self.down:
            for block, attn in zip(level.blocks, level.attn):
                hs.append(attn(block(hs[-1], temb)))
            if hasattr(level, "resample"):
                pyramid = downsample(pyramid)
                hs.append(level.resample(hs[-1], temb) + level.combine(pyramid))  # input skip, sum

        h = self.mid_block1(self.mid_attn(self.mid_block0(hs[-1], temb)), temb)

        pyramid = None
        for level in self.up:
            for block in level.blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            h = level.attn(h)
            out = level.conv_out(F.silu(level.norm_out(h)))
            pyramid = out if pyramid is None else upsample(pyramid) + out  # output skip, sum
            if hasattr(level, "resample"):
                h = level.resample(h, temb)
        return self.conv_final(pyramid)

    def _apply(self, fn, recurse=True):
        """What .to(), .half(), .cuda() ... call: W moves to the new device but stays float32."""
        W = self.fourier_W
        super()._apply(fn, recurse)
        self.fourier_W = W.to(self.fourier_W.device)
        return self


def fourier_frequencies(nf, scale=16.0):
    """The Gaussian Fourier frequencies of a new network: W ~ N(0, scale^2), a seed-0 draw."""
    return torch.randn(nf, generator=torch.Generator().manual_seed(0)) * scale


def fill_fourier_W(net, state_dict, prefix, *args):
    """load_state_dict pre-hook of NCSNpp: a state_dict without W, written before W was stored, gets the
    seed-0 draw its network was trained with."""
    state_dict.setdefault(prefix + "fourier_W", fourier_frequencies(len(net.fourier_W), net.fourier_scale))


class Denoiser(nn.Module):
    """EDM-preconditioned estimate of the marginal mean mu(t) (METHOD.md 3).

    x_t, y complex [B, 1, F, T]; t float [B]. With sigma = sigma(t) and sd = sigma_data:
      c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
      c_in = 1 / sqrt(sigma^2 + sd^2) ("edm", the teacher) or 1 ("one", the student),
      D = c_skip x_t + c_out F(c_in x_t, c_in y, t).
    The network sees t itself (its Fourier features take ln t). Its shape is a preset's name
    (Denoiser("small")) or given in full (nf, ch_mult, num_res_blocks, attn_resolutions: any NCSN++
    width, e.g. an official checkpoint's). A checkpoint rebuilds the model with
    Denoiser(**denoiser.config()); config() names the shape in full.
    """

    def __init__(self, preset=None, c_in="edm", sigma_data=0.1, sde=None,
                 nf=None, ch_mult=None, num_res_blocks=None, attn_resolutions=None):
        super().__init__()
        if c_in not in ("edm", "one"):
            raise ValueError(f"c_in must be 'edm' or 'one', got {c_in!r}")
        shape = dict(nf=nf, ch_mult=ch_mult, num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions)
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
            if any(v is not None for v in shape.values()):
                raise ValueError("give a preset or the network's shape, not both")
            shape = PRESETS[preset]
        elif any(v is None for v in shape.values()):
            raise ValueError(f"give a preset ({', '.join(PRESETS)}) or all of {', '.join(shape)}")
        self.shape = dict(nf=int(shape["nf"]), ch_mult=tuple(shape["ch_mult"]),
                          num_res_blocks=int(shape["num_res_blocks"]), attn_resolutions=tuple(shape["attn_resolutions"]))
        self.preset = next((name for name, p in PRESETS.items() if p == self.shape), None)  # None: no preset's shape
        self.c_in, self.sigma_data = c_in, sigma_data
        self.sde = SDE() if sde is None else sde
        self.net = NCSNpp(**self.shape)

    def config(self):
        return {**self.shape, "c_in": self.c_in, "sigma_data": self.sigma_data}

    def preconditioning(self, t):
        """(c_skip, c_out, c_in), each [B], for times t [B]."""
        sigma, sd = self.sde.sigma(t), self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / torch.sqrt(sigma ** 2 + sd ** 2)
        c_in = 1 / torch.sqrt(sigma ** 2 + sd ** 2) if self.c_in == "edm" else torch.ones_like(sigma)
        return c_skip, c_out, c_in

    def forward(self, x_t, y, t):
        c_skip, c_out, c_in = (bcast(c, x_t) for c in self.preconditioning(t))
        a, b = c_in * x_t, c_in * y
        out = self.net(torch.cat([a.real, a.imag, b.real, b.imag], dim=1), t)  # complex -> 4 real channels
        out = out.to(x_t.real.dtype)  # back to the input's precision before forming a complex map
        return c_skip * x_t + c_out * torch.complex(out[:, 0:1], out[:, 1:2])

    def score(self, x_t, y, t):
        """s(x_t) = (D - x_t) / sigma(t)^2."""
        return self.sde.score(self(x_t, y, t), x_t, t)


def pad_spec(x, multiple=64):
    """Zero-pad the last (time) axis up to a multiple of `multiple`; returns (x_padded, T).

    Zero padding, as SGMSE+ does by default: it works for any length (reflection fails when the
    pad exceeds the signal, and for complex tensors) and padded frames look like the silence the
    model sees in zero-padded training crops. Usage, for a sampler or a one-step student:
        y_pad, T = pad_spec(y)
        x_hat = crop_spec(sample(denoiser, y_pad), T)
    """
    T = x.shape[-1]
    return F.pad(x, (0, (-T) % multiple)), T


def crop_spec(x, T):
    """Undo pad_spec: keep the first T frames."""
    return x[..., :T]


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, **state):
    """One file, written atomically: a crash mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, device="cpu"):
    """The checkpoint dict; a clear DataError for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise DataError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:200]})")
    if not isinstance(ckpt, dict) or not {"kind", "model", "ema"} <= ckpt.keys():
        raise DataError(f"{path}: not a checkpoint of this project (no kind/model/ema entries)")
    return ckpt


def load_model(path, device="cpu"):
    """(D, sde, kind) from a checkpoint: Denoiser(**model) with its EMA weights, in eval mode."""
    ckpt = load_checkpoint(path, device)
    kind = ckpt["kind"]
    if kind not in ("student", "teacher"):
        raise DataError(f"{path}: a checkpoint of kind {kind!r}; expected a ROSE-CD student or its teacher")
    try:
        sde = SDE(**ckpt["sde"])
        D = Denoiser(**ckpt["model"], sde=sde)
        D.load_state_dict(ckpt["ema"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: its weights do not fit the model it describes ({reason})")
    return D.to(device).eval(), sde, kind


def export_checkpoint(src, dst, dtype=torch.float16):
    """python teacher.py export SRC DST: the small file that enhancement and distillation need: kind, model,
    sde, config, step and the EMA weights in `dtype` (float16 halves the size; the loaders cast back to
    float32), except the Fourier frequencies W, float32 always. Raw weights and optimizer state are left
    out, so an exported file cannot be resumed."""
    ckpt = load_checkpoint(src)
    if Path(dst).exists():
        raise DataError(f"{dst}: exists; remove it first or choose another name")
    ema = {k: v.to(dtype) if v.is_floating_point() and not k.endswith("fourier_W") else v  # W stays float32
           for k, v in ckpt["ema"].items()}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, kind=ckpt["kind"], config=ckpt.get("config"), model=ckpt["model"], sde=ckpt["sde"],
                    ema=ema, step=ckpt.get("step"))


def main():
    for name in PRESETS:
        n = count_parameters(Denoiser(name))
        line = f"{name:10s} {n:>12,d} parameters ({n / 1e6:.2f} M)"
        if name == "reference":
            line += f", {100 * (n - 65.6e6) / 65.6e6:+.2f} % from the published 65.6 M"
        print(line)


if __name__ == "__main__":
    main()
