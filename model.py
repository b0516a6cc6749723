"""The network, its preconditioning and its checkpoints (docs/method.md, section 3).

NCSNpp    a compact NCSN++ U-Net: 4 real channels in (Re, Im of x_t and of y), 2 out.
PRESETS   its shapes, as plain data: "reference" (the published 65.6 M teacher), "medium", "small", "tiny".
Denoiser  the EDM-preconditioned mean estimator D(x_t, y, t), complex in / complex out:
          D = c_skip x_t + c_out F(c_in x_t, c_in y, t), with sigma = sigma(t) of the OUVE SDE.
pad_spec / crop_spec   pad the time axis to a multiple of 64 and crop it back.
Checkpoints: load_model reads this project's files (teacher.py, distill.py, exports) and the official
SGMSE+ / ROSE-CD PyTorch Lightning .ckpt files alike, telling them apart by content; save_checkpoint,
load_checkpoint and export_checkpoint handle the project's own, pack_checkpoint / unpack_checkpoint cut a
resumable one into parts small enough to move between machines and join them; convert_checkpoint turns an official
file into one of those (python model.py convert OFFICIAL.ckpt OUT.pt). Nothing is ever downloaded.

The U-Net halves the frequency and time axes once per level after the first, so with L levels
the input needs F and T divisible by 2^(L-1); the presets have at most 7 levels (6 halvings),
so F = 256 and any T that is a multiple of 64 always work.
"""
import argparse
import dataclasses
import math
import os
import pickle
import re
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import ALPHA, BETA, HOP, N_FFT, SAMPLE_RATE, DataError
from sde import SDE, bcast

NUM_FREQS = 256  # frequency bins of the spectrogram (docs/method.md, section 1); level i has 256 / 2^i of them

PRESETS = {
    # the published teacher (SGMSE+ / ROSE-CD NCSN++), 65.6 M parameters
    "reference": dict(nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,)),
    # same topology at a quarter of the width: ~4.1 M parameters, 8 MB in float16
    "small": dict(nf=32, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,)),
    # between them: 5/16 of the width, ~6.4 M parameters, 12.9 MB in float16
    "medium": dict(nf=40, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,)),
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
    """nn.GroupNorm, the same parameters and state_dict keys. With per_channel_moments set (fast.optimise
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
    """EDM-preconditioned estimate of the marginal mean mu(t) (docs/method.md, section 3.2).

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


# ----------------------------------------------------------------------------- this project's checkpoints

def save_checkpoint(path, **state):
    """One file, written atomically: a process killed mid-write, or a machine taken away, leaves the previous
    checkpoint intact (the new one is written beside it, on the disk, before a rename puts it in its place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Missing:
    """Stands in for a class or function that a checkpoint's pickle names but that is not loaded here, such
    as the official code's sgmse.data_module.SpecsDataModule in its hyper_parameters: it keeps the name
    and can never be called, so no code of the file runs."""
    name = "?"

    def __new__(cls, *args, **kwargs):
        raise DataError(f"loading it would call {cls.name}; only tensors and plain data are read")


def read_checkpoint(path, device="cpu"):
    """What a torch.save file holds, read by torch.load(weights_only=True): tensors and plain data, nothing
    that runs. The classes an official Lightning checkpoint names (see Missing) are read as inert stand-ins
    where weights_only would refuse the whole file; a pickle that would call one of them, or anything but
    torch's tensor rebuilds, is refused. One DataError line for a missing, truncated, foreign or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        stand_ins = [(type(f"Missing({name})", (Missing,), {"name": name}), name) for name in names]
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location=device, weights_only=True)
    except DataError as e:
        raise DataError(f"{path}: refused: {e}")
    except pickle.UnpicklingError as e:  # torch's own refusals: a global of a blocked module (os, sys ...) and more
        reason = re.search(r"(Trying to|Unsupported|Can only)[^\n]*", str(e))
        raise DataError(f"{path}: refused: its pickle asks for more than tensors and plain data"
                        + (f" ({reason.group(0)})" if reason else ""))
    except Exception as e:
        reason = (str(e).strip() or type(e).__name__).splitlines()[0][:200]
        raise DataError(f"{path}: not a readable checkpoint ({reason})")


def is_lightning(ckpt):
    """Whether a checkpoint read by read_checkpoint is an official PyTorch Lightning one, by its content."""
    return isinstance(ckpt, dict) and {"state_dict", "hyper_parameters"} <= ckpt.keys()


def project_checkpoint(ckpt, path):
    """ckpt itself where it is one of this project's checkpoints; else a DataError that says what it is."""
    if is_lightning(ckpt):
        raise DataError(f"{path}: an official (PyTorch Lightning) checkpoint, not one of this project's; "
                        f"convert it first: python model.py convert {path} OUT.pt")
    if not isinstance(ckpt, dict) or not {"kind", "model", "ema"} <= ckpt.keys():
        raise DataError(f"{path}: not a checkpoint of this project (no kind/model/ema entries)")
    return ckpt


def load_checkpoint(path, device="cpu"):
    """The checkpoint dict of teacher.py, distill.py or an export; a clear DataError for a missing, corrupt or
    foreign file (an official one too: load_model reads those, convert_checkpoint converts them)."""
    return project_checkpoint(read_checkpoint(path, device), path)


def load_model(path, device="cpu"):
    """(D, sde, kind) from a checkpoint, in eval mode on device, with its EMA weights: one of this project's
    (Denoiser(**model)) or an official Lightning one (official_model), told apart by their content."""
    ckpt = read_checkpoint(path)
    if is_lightning(ckpt):
        D, sde, kind = official_model(ckpt, path)
        return D.to(device).eval(), sde, kind
    ckpt = project_checkpoint(ckpt, path)
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


def save_exported(dst, dtype=torch.float16, **state):
    """Write the small file that enhancement and distillation need, state's ema weights in dtype (float16
    halves the size; the loaders cast back to float32) except the Fourier frequencies W, float32 always."""
    state["ema"] = {k: v.to(dtype) if v.is_floating_point() and not k.endswith("fourier_W") else v
                    for k, v in state["ema"].items()}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, **state)


def export_checkpoint(src, dst, dtype=torch.float16):
    """python teacher.py export SRC DST: kind, model, sde, config, step, GPU time and the EMA weights of a
    checkpoint of this project in `dtype` (save_exported). Raw weights and optimizer state are left out, so an
    exported file cannot be resumed."""
    if Path(dst).exists():
        raise DataError(f"{dst}: exists; remove it first or choose another name")
    ckpt = load_checkpoint(src)
    save_exported(dst, dtype, kind=ckpt["kind"], config=ckpt.get("config"), model=ckpt["model"], sde=ckpt["sde"],
                  ema=ckpt["ema"], step=ckpt.get("step"), gpu_seconds=ckpt.get("gpu_seconds"))


# A resumable checkpoint cut into parts that each fit a 16 MiB transfer, for runs that move between machines.
PART_BYTES = 16 * 2 ** 20 - 2 ** 16


def pack_checkpoint(src, folder, part_bytes=PART_BYTES):
    """python teacher.py pack CHECKPOINT FOLDER: a resumable checkpoint made small and cut into parts
    FOLDER/state.000, .001, ... of at most part_bytes each, with FOLDER/manifest.json (sizes and SHA-256).

    What is kept exactly: the raw weights (float32), the step, the config, the gradient-free rest.
    What is rounded: Adam's moments (exp_avg, exp_avg_sq) to bfloat16, whose 8-bit exponent holds their
    range (a relative error of 2^-9 in the update's direction and size, once per move); and the EMA
    weights, stored as their difference from the raw weights in bfloat16, so the error is 2^-9 of that
    difference, not of the weights. About 10 bytes per parameter instead of 16. unpack_checkpoint undoes it."""
    import hashlib, io, json
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: a file, not a folder; choose a new folder")
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"{folder}: exists and is not empty; choose a new folder")
    ckpt = load_checkpoint(src)
    if "raw" not in ckpt or "optimizer" not in ckpt:
        raise DataError(f"{src}: holds EMA weights only (an exported checkpoint): nothing to resume")
    raw = ckpt["raw"]
    small = dict(ckpt, packed={"ema": "bfloat16 difference from raw", "moments": "bfloat16"})
    small["ema"] = {k: (v.float() - raw[k].float()).to(torch.bfloat16) if v.is_floating_point() else v
                    for k, v in ckpt["ema"].items()}
    small["optimizer"] = {"param_groups": ckpt["optimizer"]["param_groups"], "state": {
        i: {k: v.to(torch.bfloat16) if k in ("exp_avg", "exp_avg_sq") else v for k, v in s.items()}
        for i, s in ckpt["optimizer"]["state"].items()}}
    buffer = io.BytesIO()
    torch.save(small, buffer)
    blob = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, start in enumerate(range(0, len(blob), part_bytes)):
        piece = blob[start:start + part_bytes]
        (folder / f"state.{k:03d}").write_bytes(piece)
        parts.append({"name": f"state.{k:03d}", "bytes": len(piece), "sha256": hashlib.sha256(piece).hexdigest()})
    manifest = {"kind": ckpt["kind"], "step": ckpt.get("step"), "bytes": len(blob), "parts": parts,
                "sha256": hashlib.sha256(blob).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def unpack_checkpoint(folder, dst):
    """python teacher.py unpack FOLDER CHECKPOINT: join the parts of pack_checkpoint, check every part's
    SHA-256, and write the resumable checkpoint again (EMA = raw + difference, moments in float32)."""
    import hashlib, io, json
    folder, dst = Path(folder), Path(dst)
    if dst.exists():
        raise DataError(f"{dst}: exists; remove it first or choose another name")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        parts = [{"name": str(part["name"]), "sha256": part["sha256"]} for part in manifest["parts"]]
    except (OSError, ValueError, KeyError, TypeError) as e:  # TypeError: parts not a list of {name, sha256}
        raise DataError(f"{folder}: no readable manifest.json of packed state ({type(e).__name__})")
    blob = b""
    for part in parts:
        path = folder / part["name"]
        piece = path.read_bytes() if path.is_file() else None
        if piece is None or hashlib.sha256(piece).hexdigest() != part["sha256"]:
            raise DataError(f"{path}: {'missing' if piece is None else 'damaged (its SHA-256 differs)'}")
        blob += piece
    try:
        small = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{folder}: the joined parts are not a checkpoint ({type(e).__name__})")
    small = project_checkpoint(small, folder)
    raw = small["raw"]
    small.pop("packed", None)
    small["ema"] = {k: raw[k].float() + v.float() if v.is_floating_point() else v for k, v in small["ema"].items()}
    small["optimizer"]["state"] = {i: {k: v.float() if k in ("exp_avg", "exp_avg_sq") else v for k, v in s.items()}
                                   for i, s in small["optimizer"]["state"].items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, **small)
    return small


# ----------------------------------------------------------------------------- the official checkpoints

# hyper_parameters of an official checkpoint that must equal the choices fixed in this code (data.py: STFT and
# compression; sde.py: the OUVE SDE; here: the NCSN++ v2 network and EDM preconditioning of its output)
OFFICIAL_REQUIRED = {"backbone": "ncsnpp_v2", "sde": "ouve", "loss_type": "precond_denoiser", "c_out": "edm",
                     "c_skip": "edm", "n_fft": N_FFT, "hop_length": HOP, "spec_factor": BETA,
                     "spec_abs_exponent": ALPHA, "normalize": "noisy"}
# ... and those that must equal them where a file records them: the rest of the sound path, and the arguments
# of the official NCSNpp_v2 that fix its topology (its defaults, which NCSNpp here implements)
OFFICIAL_IF_PRESENT = {"sr": SAMPLE_RATE, "window": "hann", "transform_type": "exponent", "network_scaling": None,
                       "embedding_type": "fourier", "fourier_scale": 16, "resblock_type": "biggan",
                       "nonlinearity": "swish", "progressive": "output_skip", "progressive_input": "input_skip",
                       "progressive_combine": "sum", "fir": True, "fir_kernel": [1, 3, 3, 1], "skip_rescale": True,
                       "image_size": NUM_FREQS}
# ... and those taken over as they are: the network's shape, c_in, sigma_data and the SDE's numbers
SHAPE = ("nf", "ch_mult", "num_res_blocks", "attn_resolutions")
OFFICIAL_TAKEN = SHAPE + ("c_in", "sigma_data", "theta", "sigma_min", "sigma_max")

# the layers of the official ResnetBlockBigGANpp and AttnBlockpp, by the names of this file's ResBlock and AttnBlock
OFFICIAL_LAYERS = {"norm0": "GroupNorm_0", "conv0": "Conv_0", "dense": "Dense_0", "norm1": "GroupNorm_1",
                   "conv1": "Conv_1", "skip": "Conv_2", "norm": "GroupNorm_0"}
OFFICIAL_NIN = {"q": "NIN_0", "k": "NIN_1", "v": "NIN_2", "out": "NIN_3"}  # 1x1 layers as x^T W + b: weight = W^T


def official_names(net):
    """{key of NCSNpp's state_dict: key of the official NCSNpp_v2's}. The official network keeps its layers in
    one list, all_modules, in the order its forward uses them: the Fourier projection (W), the two time-MLP
    layers, the input conv; per level down, the residual blocks (each followed by its attention where the
    level has one), the down-sampling block and the input-skip Combine (its Conv_0); the middle block,
    attention and block; per level up, the blocks, the attention, the output-skip GroupNorm and conv, the
    up-sampling block. Its output_layer is conv_final here."""
    modules = [net.temb[0], net.temb[2], net.conv_in]  # all_modules.1 to 3
    for level in net.down:
        for block, attn in zip(level.blocks, level.attn):
            modules += [block] + ([attn] if isinstance(attn, AttnBlock) else [])
        if hasattr(level, "resample"):
            modules += [level.resample, level.combine]
    modules += [net.mid_block0, net.mid_attn, net.mid_block1]
    for level in net.up:
        modules += list(level.blocks) + ([level.attn] if isinstance(level.attn, AttnBlock) else [])
        modules += [level.norm_out, level.conv_out] + ([level.resample] if hasattr(level, "resample") else [])
    combiners = {id(level.combine) for level in net.down if hasattr(level, "combine")}
    our_name = {id(m): name for name, m in net.named_modules()}
    names = {"fourier_W": "all_modules.0.W", "conv_final.weight": "output_layer.weight",
             "conv_final.bias": "output_layer.bias"}
    for i, module in enumerate(modules, start=1):
        for key in module.state_dict():  # weight, bias, or layer.weight ... inside a block
            layer, _, param = key.rpartition(".")
            if layer in OFFICIAL_NIN:
                theirs = f"{OFFICIAL_NIN[layer]}.{'W' if param == 'weight' else 'b'}"
            elif layer:
                theirs = f"{OFFICIAL_LAYERS[layer]}.{param}"
            else:
                theirs = f"Conv_0.{param}" if id(module) in combiners else param
            names[f"{our_name[id(module)]}.{key}"] = f"all_modules.{i}.{theirs}"
    assert names.keys() == net.state_dict().keys(), "official_names misses a layer of NCSNpp"
    return names


def official_state_dict(D, weights, path="the official weights"):
    """The state_dict of Denoiser D from the official network's weights {name: tensor} (state_dict names
    without 'dnn.'): every official tensor used exactly once, every shape equal, or one DataError line."""
    target, names = D.state_dict(), official_names(D.net)
    state = {}
    for ours, theirs in names.items():
        if theirs not in weights:
            raise DataError(f"{path}: the official network has no {theirs} (this network's net.{ours})")
        w = weights[theirs]
        if theirs.split(".")[-2].startswith("NIN_") and theirs.endswith(".W"):
            w = w.t()[:, :, None, None]  # x^T W: a 1x1 convolution with weight W^T
        if w.shape != target["net." + ours].shape:
            raise DataError(f"{path}: {theirs} is {tuple(w.shape)}, this network's net.{ours} "
                            f"{tuple(target['net.' + ours].shape)}")
        state["net." + ours] = w
    unused = sorted(weights.keys() - set(names.values()))
    if unused:
        raise DataError(f"{path}: {len(unused)} official tensor(s) have no place in this network, e.g. {unused[0]}")
    return state


def official_weights(ckpt, path, raw=False):
    """{name: tensor} of an official checkpoint's network (its state_dict names without 'dnn.'): the EMA
    weights, torch_ema's shadow_params, a list in the order of dnn.parameters() and so of the state_dict;
    or, raw=True, the raw weights of the state_dict."""
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and k.startswith("dnn.") for k in state):
        raise DataError(f"{path}: its state_dict holds more than the network (dnn.*)")
    tensors = list(state.values())
    if not raw:
        ema = ckpt.get("ema")
        shadow = ema.get("shadow_params") if isinstance(ema, dict) else None
        if not isinstance(shadow, list):
            raise DataError(f"{path}: it has no EMA weights (ema.shadow_params); convert its raw weights with --raw")
        if len(shadow) != len(tensors) or not all(isinstance(a, torch.Tensor) and a.shape == b.shape
                                                  for a, b in zip(shadow, tensors)):
            raise DataError(f"{path}: its EMA weights ({len(shadow)} tensors) do not line up with its state_dict "
                            f"({len(tensors)})")
        tensors = shadow
    return {name[len("dnn."):]: v for name, v in zip(state, tensors)}


def check_hyper_parameters(hp, path):
    """One DataError line for the first hyper_parameter of an official checkpoint this code cannot follow."""
    if not isinstance(hp, dict):
        raise DataError(f"{path}: its hyper_parameters are not a dict")
    for field, expected in {**OFFICIAL_REQUIRED, **{k: v for k, v in OFFICIAL_IF_PRESENT.items() if k in hp}}.items():
        if field not in hp:
            raise DataError(f"{path}: hyper_parameters has no {field} (this code implements {expected!r})")
        value = list(hp[field]) if isinstance(hp[field], tuple) else hp[field]
        if value != expected:
            raise DataError(f"{path}: hyper_parameters {field} is {hp[field]!r}; this code implements {expected!r}")
    missing = [field for field in OFFICIAL_TAKEN if field not in hp]
    if missing:
        raise DataError(f"{path}: hyper_parameters has no {', '.join(missing)}")
    if str(hp["c_in"]) not in ("edm", "1"):
        raise DataError(f"{path}: hyper_parameters c_in is {hp['c_in']!r}; this code implements 'edm' (a teacher) "
                        "or '1' (a one-step student)")


def official_model(ckpt, path, raw=False):
    """(D, sde, kind) from an official SGMSE+ / ROSE-CD PyTorch Lightning checkpoint (read by read_checkpoint):
    its hyper_parameters checked (check_hyper_parameters), its network's shape, c_in, sigma_data and SDE
    (theta is gamma) taken over, its EMA weights (raw=True: its raw weights) in D. c_in "edm" makes a
    teacher, c_in "1" a one-step student."""
    hp = ckpt["hyper_parameters"]
    check_hyper_parameters(hp, path)
    c_in = "edm" if str(hp["c_in"]) == "edm" else "one"
    try:
        sde = SDE(gamma=float(hp["theta"]), sigma_min=float(hp["sigma_min"]), sigma_max=float(hp["sigma_max"]),
                  t_eps=float(hp.get("t_eps", SDE.t_eps)))
        D = Denoiser(c_in=c_in, sigma_data=float(hp["sigma_data"]), sde=sde, **{k: hp[k] for k in SHAPE})
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: its hyper_parameters {', '.join(SHAPE)} describe no network this code builds ({e})")
    D.load_state_dict(official_state_dict(D, official_weights(ckpt, path, raw), path))
    return D, sde, "teacher" if c_in == "edm" else "student"


def convert_checkpoint(src, dst, raw=False, dtype=torch.float16):
    """python model.py convert SRC DST [--raw]: an official Lightning checkpoint as this project's exported
    file (export_checkpoint's format: kind, model with the network's shape, sde, EMA weights in float16
    with W float32, step; config records the source and its plain hyper_parameters). Returns (kind, D)."""
    if Path(dst).exists():
        raise DataError(f"{dst}: exists; remove it first or choose another name")
    ckpt = read_checkpoint(src)
    if not is_lightning(ckpt):
        project = isinstance(ckpt, dict) and {"kind", "model", "ema"} <= ckpt.keys()
        raise DataError(f"{src}: not an official (PyTorch Lightning) checkpoint"
                        + ("; it is one of this project's already (python teacher.py export shrinks it)" if project else ""))
    D, sde, kind = official_model(ckpt, src, raw)
    plain = (bool, int, float, str, type(None))
    hp = {k: v for k, v in ckpt["hyper_parameters"].items()
          if isinstance(v, plain) or (isinstance(v, (list, tuple)) and all(isinstance(x, plain) for x in v))}
    save_exported(dst, dtype, kind=kind, model=D.config(), sde=dataclasses.asdict(sde), ema=D.state_dict(),
                  step=ckpt.get("global_step"), config={"converted_from": Path(src).name,
                                                        "weights": "raw" if raw else "ema", "hyper_parameters": hp})
    return kind, D


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["convert"]:
        parser = argparse.ArgumentParser(prog="python model.py convert", description=convert_checkpoint.__doc__)
        parser.add_argument("src", metavar="OFFICIAL.ckpt", help="an official SGMSE+ / ROSE-CD Lightning checkpoint")
        parser.add_argument("dst", metavar="OUT.pt", help="the file to write (never replaced)")
        parser.add_argument("--raw", action="store_true", help="its raw weights rather than its EMA weights")
        args = parser.parse_args(argv[1:])
        try:
            kind, D = convert_checkpoint(args.src, args.dst, args.raw)
        except DataError as e:
            sys.exit(f"error: {e}")
        print(f"{args.dst}: a {kind}, network shape {D.shape}" + (f" (the {D.preset} preset)" if D.preset else "")
              + f", {count_parameters(D):,d} parameters, its {'raw' if args.raw else 'EMA'} weights in float16")
        return
    for name in PRESETS:
        n = count_parameters(Denoiser(name))
        line = f"{name:10s} {n:>12,d} parameters ({n / 1e6:.2f} M)"
        if name == "reference":
            line += f", {100 * (n - 65.6e6) / 65.6e6:+.2f} % from the published 65.6 M"
        print(line)


if __name__ == "__main__":
    main()
