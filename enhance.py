"""Enhance noisy speech with a trained teacher or student (METHOD.md section 6).

enhance_wav is the whole pipeline for one waveform: noisy-peak normalisation, compressed
spectrogram, padding to a multiple of 64 frames, the sampler, and back to a waveform.
"""
import numpy as np
import torch

from data import spec_to_wav, wav_to_spec
from model import crop_spec, pad_spec
from sde import pc_sample


@torch.no_grad()
def enhance_wav(D, sde, noisy, steps=30, generator=None):
    """Enhanced 16 kHz waveform (numpy) of a noisy 16 kHz waveform, and the network calls made.

    steps == 1: one-step estimate x_hat = D(x_T, y, T) with x_T = y + sigma(T) z (the student);
    steps > 1: the predictor-corrector sampler with N = steps (the teacher, 2 calls per step).
    """
    device = next(D.parameters()).device
    peak = float(np.abs(noisy).max())
    scale = peak if peak > 0 else 1.0
    y = wav_to_spec(torch.from_numpy(noisy / scale).float().to(device))[None]  # [1, 1, 256, T]
    y, num_frames = pad_spec(y)
    if steps == 1:
        t = torch.full((1,), sde.T, device=device)
        x, calls = D(sde.prior_sample(y, generator), y, t), 1
    else:
        x, calls = pc_sample(sde, D, y, N=steps, generator=generator)
    x = crop_spec(x, num_frames)
    return spec_to_wav(x, len(noisy))[0].cpu().numpy() * scale, calls
