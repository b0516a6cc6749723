"""Audio in, spectrograms out (docs/method.md, section 1).

- read_audio / load_audio: soundfile, stereo averaged to mono, resampled to 16 kHz (fir_resample:
  resample_poly's polyphase filter as one torch conv1d).
- wav_to_spec / spec_to_wav: STFT 510/128 with a periodic Hann window, amplitude compression
  c' = beta |c|^alpha e^(i angle c), and its exact inverse. Everyone else calls these two.
- PairBatches: crops of clean/noisy pairs (VoiceBank-DEMAND in either layout, or any two folders).
- MixBatches: pairs mixed on the fly from a speech folder (and optionally a noise folder), with
  speed perturbation: babble, coloured and modulated coloured noise, real noise files, at a random SNR.
Both hold their audio in memory on the training device (AudioBank) and return a batch of waveform
crops (clean, noisy) [B, samples], divided by the noisy peak, as tensor operations on that device:
no loader processes. The training scripts turn them into spectrograms there.

A batch is a pure function of the generator it is given: the training loop seeds one per
(seed, update, rank), so a resumed run sees exactly the data an uninterrupted one sees.
"""
import csv
import functools
import math
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 510            # 256 frequency bins
HOP = 128
ALPHA = 0.5            # amplitude compression exponent
BETA = 0.15            # amplitude compression factor
AUDIO_EXTS = (".wav", ".flac", ".ogg")
DEMO = Path(__file__).resolve().parent / "demo"
MAX_POLYPHASE = 1 << 22  # entries of fir_resample's filter matrix (16 MB) above which resample uses scipy


class DataError(Exception):
    """An expected problem with the user's data: the scripts print it as one line and exit."""


SEED_MAX = 2 ** 63 - 1  # every script's --seed runs from 0 to here, which torch's and numpy's generators both take


def check_seed(seed):
    """seed, where every script's random generators take it; otherwise one DataError line naming --seed."""
    if not 0 <= seed <= SEED_MAX:
        raise DataError(f"--seed {seed}: must be " + ("at least 0" if seed < 0 else f"at most {SEED_MAX} (2**63 - 1)"))
    return seed


# ----------------------------------------------------------------------------- audio files

def read_audio(path):
    """(mono float32 waveform, sample rate) of an audio file; channels are averaged."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        raise DataError(f"{path}: not a readable audio file ({str(e).strip() or type(e).__name__})")
    wav = wav.mean(axis=1)
    if wav.size == 0:
        raise DataError(f"{path}: the file holds no samples")
    if not np.isfinite(wav).all():
        raise DataError(f"{path}: the audio contains NaN or infinite samples")
    return wav, sr


def resample(wav, sr_in, sr_out=SAMPLE_RATE):
    """Resample a float waveform (numpy, [..., n]) by the reduced ratio up / down = sr_out / sr_in with
    fir_resample: the same filter and alignment as scipy's resample_poly, through one convolution."""
    if sr_in == sr_out:
        return wav
    k = math.gcd(sr_in, sr_out)
    up, down = sr_out // k, sr_in // k
    if up * (down + 20) > MAX_POLYPHASE:  # an unusual ratio (say 16001 Hz): scipy's loop, no big matrix
        from scipy.signal import resample_poly
        return resample_poly(wav, up, down, axis=-1).astype(np.float32)
    return fir_resample(torch.from_numpy(np.asarray(wav, np.float32)), up, down).numpy()


def fir_resample(x, up, down):
    """x [..., n] (a float tensor, any device) resampled by up / down (coprime): [..., ceil(n up / down)].

    The filter is resample_poly's: a Kaiser-windowed sinc (beta 5) with cutoff at the lower of the
    two Nyquist frequencies, half-length L = 10 max(up, down), gain up, zero padding at both ends:
        y[k] = sum_n x[n] h(n up - k down),  h(d) = up w(d) sinc(d / max(up, down)) / sum_d w sinc.
    Polyphase form: output k = j up + c (c < up) reads x from j down on, always with the same
    weights W[c, m] = h((a + m) up - c down). So y is one strided conv1d: `up` output channels,
    stride `down`, kernel W [up, 1, K]; the channels, interleaved, are the output samples."""
    n, rate, L = x.shape[-1], max(up, down), 10 * max(up, down)
    d = torch.arange(-L, L + 1, dtype=torch.float64)
    h = torch.kaiser_window(2 * L + 1, periodic=False, beta=5.0, dtype=torch.float64) * torch.sinc(d / rate)
    h = up * h / h.sum()
    a = -(L // up)                      # the first input sample (relative to j down) any phase reads
    K = ((up - 1) * down + L) // up - a + 1
    taps = (a + torch.arange(K)) * up - torch.arange(up)[:, None] * down  # [up, K]: arguments d of h
    W = torch.where(taps.abs() <= L, h[(taps + L).clamp(0, 2 * L)], 0.0)
    n_out = -(-n * up // down)
    J = -(-n_out // up)                 # blocks of `up` outputs
    xp = F.pad(x.reshape(-1, 1, n), (-a, max(0, (J - 1) * down + K + a - n)))
    y = F.conv1d(xp, W.to(x.dtype).to(x.device)[:, None], stride=down)[..., :J]  # [B, up, J]
    return y.transpose(1, 2).reshape(*x.shape[:-1], J * up)[..., :n_out]


def load_audio(path):
    """Mono float32 waveform at 16 kHz."""
    wav, sr = read_audio(path)
    return resample(wav, sr)


def list_audio(folder, recursive=False):
    """Sorted audio files of a folder (with recursive=True, of its subfolders too); every one is
    checked to be readable audio."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_EXTS)
    if not files:
        raise DataError(f"{folder}: no audio files ({', '.join(AUDIO_EXTS)}) in this folder"
                        + (" or its subfolders" if recursive else ""))
    for p in files:
        try:
            sf.info(str(p))
        except Exception as e:
            raise DataError(f"{p}: not a readable audio file ({str(e).strip() or type(e).__name__})")
    return files


def folders(text):
    """The folders of an option that takes several, separated by commas: "a,b" -> [Path(a), Path(b)]."""
    return [Path(part.strip()) for part in str(text).split(",") if part.strip()]


def audio_files(text):
    """Every audio file of one or more folders ("a,b"), each searched recursively."""
    return [path for folder in folders(text) for path in list_audio(folder, recursive=True)]


# ----------------------------------------------------------------------------- spectrograms

def check_one_window(wav, source, needs, given=""):
    """One DataError line where a waveform is shorter than one STFT window (the centred STFT reflects half a
    window): source names the file, given how it was cut, needs what reads it."""
    if len(wav) < N_FFT:
        raise DataError(f"{source}: {len(wav)} samples at 16 kHz{given}; {needs} needs at least {N_FFT} "
                        f"({N_FFT / SAMPLE_RATE * 1000:.0f} ms)")


def wav_to_spec(wav):
    """Waveform [..., N] -> compressed complex spectrogram [..., 1, 256, T], T = 1 + N // 128."""
    shape = wav.shape[:-1]
    window = torch.hann_window(N_FFT, periodic=True, device=wav.device, dtype=wav.dtype)
    X = torch.stft(wav.reshape(-1, wav.shape[-1]), N_FFT, HOP, window=window, center=True, return_complex=True)
    X = BETA * X.abs() ** ALPHA * torch.exp(1j * X.angle())  # c' = beta |c|^alpha e^(i angle c)
    return X.reshape(*shape, 1, *X.shape[-2:])


def spec_to_wav(spec, length):
    """Inverse of wav_to_spec: [..., 1, 256, T] -> waveform [..., length]."""
    shape = spec.shape[:-3]
    X = spec.reshape(-1, *spec.shape[-2:])
    X = (X.abs() / BETA) ** (1 / ALPHA) * torch.exp(1j * X.angle())  # undo the compression
    window = torch.hann_window(N_FFT, periodic=True, device=X.device, dtype=X.real.dtype)
    wav = torch.istft(X, N_FFT, HOP, window=window, center=True, length=length)
    return wav.reshape(*shape, length)


def crop_samples(num_frames):
    """Samples in a crop of num_frames STFT frames: (256 - 1) * 128 = 32,640 for the default."""
    return (num_frames - 1) * HOP


def random_crop(wavs, length, rng):
    """The same random crop of `length` samples from each array in wavs (zero-padded when short)."""
    n = len(wavs[0])
    if n < length:
        return [np.pad(w, (0, length - n)) for w in wavs]
    start = int(rng.integers(0, n - length + 1))
    return [w[start:start + length] for w in wavs]


def normalise(clean, noisy):
    """Divide both by max|noisy| (docs/method.md, section 1); the factor is returned to undo it afterwards."""
    peak = float(np.abs(noisy).max())
    scale = peak if peak > 0 else 1.0
    return clean / scale, noisy / scale, scale


# ----------------------------------------------------------------------------- pairs on disk

# The original VoiceBank-DEMAND release folders; "valid" takes speakers p226 and p287 out of
# the training set, as the SGMSE+ split does.
ORIGINAL_LAYOUT = {
    "train": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav"),
    "valid": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav"),
    "test": ("clean_testset_wav", "noisy_testset_wav"),
}
VALID_SPEAKERS = ("p226", "p287")


def find_pairs(base, split="train"):
    """[(clean_path, noisy_path), ...] for one split, matched by file name (stem).

    Accepts base/{split}/clean + base/{split}/noisy (SGMSE+ layout), the original release
    folders (ORIGINAL_LAYOUT), or a folder holding clean/ and noisy/ directly.
    """
    base = Path(base)
    if not base.is_dir():
        raise DataError(f"{base}: no such folder")
    keep = lambda name: True
    if (base / split / "clean").is_dir():
        clean_dir, noisy_dir = base / split / "clean", base / split / "noisy"
    elif (base / ORIGINAL_LAYOUT[split][0]).is_dir():
        clean_dir, noisy_dir = (base / d for d in ORIGINAL_LAYOUT[split])
        if split == "valid":
            keep = lambda name: name.startswith(VALID_SPEAKERS)
        elif split == "train":
            keep = lambda name: not name.startswith(VALID_SPEAKERS)
    elif (base / "clean").is_dir():
        clean_dir, noisy_dir = base / "clean", base / "noisy"
    else:
        raise DataError(f"{base}: expected {split}/clean and {split}/noisy, the original VoiceBank-DEMAND "
                        f"folders ({ORIGINAL_LAYOUT[split][0]}, ...), or clean/ and noisy/")
    clean = {p.stem: p for p in list_audio(clean_dir) if keep(p.stem)}
    noisy = {p.stem: p for p in list_audio(noisy_dir) if keep(p.stem)}
    only_clean, only_noisy = sorted(clean.keys() - noisy.keys()), sorted(noisy.keys() - clean.keys())
    if only_clean or only_noisy:
        example = (only_clean or only_noisy)[0]
        raise DataError(f"{clean_dir} and {noisy_dir}: file names do not match ({len(only_clean)} clean "
                        f"without noisy, {len(only_noisy)} noisy without clean, e.g. {example!r})")
    if not clean:
        raise DataError(f"{clean_dir}: no files of split {split!r}")
    return [(clean[k], noisy[k]) for k in sorted(clean)]


def load_pairs(pairs, limit=None):
    """Whole utterances [(name, clean, noisy), ...] as 16 kHz float32 arrays, for validation."""
    out = []
    for clean_path, noisy_path in pairs[:limit]:
        clean, noisy = load_audio(clean_path), load_audio(noisy_path)
        if len(clean) != len(noisy):
            raise DataError(f"{clean_path} and {noisy_path}: lengths differ ({len(clean)} and {len(noisy)} samples)")
        out.append((clean_path.stem, clean, noisy))
    return out


class AudioBank:
    """Waveforms held in memory on one device as one flat tensor, cropped many at a time by indexing."""

    def __init__(self, wavs, device="cpu"):
        lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
        self.lengths, self.offsets = lengths.to(device), (lengths.cumsum(0) - lengths).to(device)
        self.flat = torch.from_numpy(np.concatenate(wavs).astype(np.float32)).to(device)

    def __len__(self):
        return len(self.lengths)

    def starts(self, index, n, generator):
        """Random offsets [B] of n-sample crops of the entries index [B] (0 where an entry is shorter)."""
        L = self.lengths[index]
        return (torch.rand(len(index), device=L.device, generator=generator) * (L - n + 1).clamp(min=1)).long()

    def crop(self, index, n, start, loop=False):
        """Crops [B, n] of the entries index [B] from the offsets start [B]. An entry shorter than n
        is zero-padded at its end, or with loop=True repeated (noise recordings)."""
        L = self.lengths[index][:, None]
        pos = start[:, None] + torch.arange(n, device=L.device)
        if loop:
            pos = pos % L
        samples = self.flat[(self.offsets[index][:, None] + pos).clamp(max=len(self.flat) - 1)]
        return torch.where(pos < L, samples, 0.0)

    def random_crop(self, index, n, generator, loop=False):
        return self.crop(index, n, self.starts(index, n, generator), loop)


def uniform(shape, low, high, generator, device):
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def normalise_batch(clean, noisy):
    """Divide each pair [B, n] by max|noisy| of that row (docs/method.md, section 1)."""
    peak = noisy.abs().amax(-1, keepdim=True)
    scale = torch.where(peak > 0, peak, 1.0)
    return clean / scale, noisy / scale


class PairBatches:
    """Random crops of clean/noisy pairs (VoiceBank-DEMAND), held in memory on the training device;
    each utterance is divided by its noisy peak once, on loading. batches(B, generator) -> (clean, noisy)."""

    def __init__(self, pairs, num_frames=256, device="cpu"):
        clean, noisy = [], []
        for clean_path, noisy_path in pairs:
            c, y = load_audio(clean_path), load_audio(noisy_path)
            n = min(len(c), len(y))
            c, y, _ = normalise(c[:n], y[:n])
            clean.append(c)
            noisy.append(y)
        self.clean, self.noisy = AudioBank(clean, device), AudioBank(noisy, device)
        self.n, self.device = crop_samples(num_frames), torch.device(device)

    def __call__(self, batch, generator):
        k = torch.randint(len(self.clean), (batch,), generator=generator, device=self.device)
        start = self.clean.starts(k, self.n, generator)  # the same crop of both sides of each pair
        return self.clean.crop(k, self.n, start), self.noisy.crop(k, self.n, start)


SPEEDS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)  # speed perturbation factors of MixBatches
TRAIN_SNR = (-5.0, 20.0)  # dB: MixBatches' SNR range by default (teacher.py / distill.py --snr-low, --snr-high)


def speed_perturb(wav, factor):
    """Play wav `factor` times faster (tempo and pitch together, as a tape would): resample it as if it
    had been recorded at 16 kHz * factor. 0.85 to 1.15 gives lower and higher voices from one reader."""
    if factor == 1:
        return wav
    from fractions import Fraction
    from scipy.signal import resample_poly  # on the CPU 15 times faster than fir_resample for these ratios
    ratio = Fraction(SAMPLE_RATE, round(SAMPLE_RATE * factor))
    return resample_poly(wav, ratio.numerator, ratio.denominator).astype(np.float32)


@functools.lru_cache(maxsize=2)
def perturbed_speech(speech, speeds):
    """Every utterance of the speech folders ("a,b", searched recursively) at every speed factor,
    speed by speed (kept for the next caller)."""
    wavs = [load_audio(p) for p in audio_files(speech)]
    return [speed_perturb(w, s) for s in speeds for w in wavs]


def coloured_noise(shape, exponent, generator, device):
    """Gaussian noise [B, n] with power spectrum ~ 1/f^exponent per row (0 white, 1 pink, 2 brown, -1 blue)."""
    n = shape[-1]
    spectrum = torch.fft.rfft(torch.randn(shape, generator=generator, device=device))
    f = torch.fft.rfftfreq(n, device=device)
    f[0] = f[1]
    return torch.fft.irfft(spectrum * f ** (-exponent[:, None] / 2), n)


class MixBatches:
    """Noisy speech mixed on the fly on the training device: clean crop + noise at a random SNR.

    Speech: every utterance of one or more folders ("a,b", searched recursively: any corpus, any
    number of speakers) at the speed factors SPEEDS (speed_perturb), held in memory. Noise types,
    drawn with equal probability per crop: babble (3 to 6 other training utterances, each at its own
    level, 0 to -10 dB), coloured noise (spectral exponent -1 to 2), coloured noise under a slow random
    amplitude envelope (non-stationary), and, when noise folders are given, a crop of one of their
    recordings (looped when short). After the noisy-peak normalisation both sides get one more random gain of
    0 to -gain_db dB: enhancement divides a whole file by its peak, so a 2-s stretch of it mostly
    peaks below 1; a gain before the normalisation would be cancelled by it.
    batches(B, generator) -> (clean, noisy), [B, samples] each, every draw from `generator`.
    """

    def __init__(self, speech, noise=None, num_frames=256, snr_range=TRAIN_SNR, speeds=SPEEDS, gain_db=12.0,
                 device="cpu"):
        wavs = perturbed_speech(str(speech), tuple(speeds))
        self.utterances = len(wavs) // len(speeds)
        if self.utterances < 2:  # babble mixes other utterances than the one it covers
            raise DataError(f"{speech}: one speech file; mixing needs at least 2 (babble is made of the others)")
        self.speech = AudioBank(wavs, device)  # entry s * U + u: utterance u at speed s
        self.noise = AudioBank([load_audio(p) for p in audio_files(noise)], device) if noise else None
        self.types = ["babble", "coloured", "modulated"] + (["recording"] if noise else [])
        self.n, self.snr_range, self.gain_db = crop_samples(num_frames), snr_range, gain_db
        self.device = torch.device(device)

    def __call__(self, batch, generator):
        k = torch.randint(len(self.speech), (batch,), generator=generator, device=self.device)  # utterance and speed
        clean = self.speech.random_crop(k, self.n, generator)
        noisy, _, _ = self.mix(clean, k % self.utterances, generator)
        clean, noisy = normalise_batch(clean, noisy)
        gain = 10 ** (uniform((batch, 1), -self.gain_db, 0.0, generator, self.device) / 20)
        return clean * gain, noisy * gain

    def mix(self, clean, utterance, generator):
        """(noisy [B, n], noise type [B], SNR in dB [B]) for clean [B, n] of the speech utterances `utterance`
        [B] (left out of their own babble): each mixed with noise of a random type (an index into self.types)
        at a random SNR."""
        (B, n), dev, g = clean.shape, self.device, generator
        # babble: 6 other talkers (any speed) at their own levels, the first 3 to 6 of them kept
        U, speeds = self.utterances, len(self.speech) // self.utterances
        others = (utterance[:, None] + 1 + torch.randint(U - 1, (B, 6), generator=g, device=dev)) % U  # never itself
        others = others + U * torch.randint(speeds, (B, 6), generator=g, device=dev)
        talkers = self.speech.random_crop(others.flatten(), n, g).view(B, 6, n)
        rms = talkers.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8
        level = 10 ** (uniform((B, 6, 1), -10.0, 0.0, g, dev) / 20) / rms
        keep = torch.arange(6, device=dev) < torch.randint(3, 7, (B, 1), generator=g, device=dev)
        babble = (talkers * level * keep[..., None]).sum(1)
        # coloured noise, and the same under a slow envelope between 0.1 and 1 at 0.5 to 4 Hz
        coloured = coloured_noise((B, n), uniform(B, -1.0, 2.0, g, dev), g, dev)
        t = torch.arange(n, device=dev) / SAMPLE_RATE
        rate, phase = uniform((B, 1), 0.5, 4.0, g, dev), uniform((B, 1), 0.0, 2 * math.pi, g, dev)
        modulated = coloured_noise((B, n), uniform(B, -1.0, 2.0, g, dev), g, dev) * (0.55 + 0.45 * torch.sin(
            2 * math.pi * rate * t + phase))
        kinds = [babble, coloured, modulated]
        if self.noise is not None:
            recording = torch.randint(len(self.noise), (B,), generator=g, device=dev)
            kinds.append(self.noise.random_crop(recording, n, g, loop=True))
        kind = torch.randint(len(kinds), (B,), generator=g, device=dev)
        noise = torch.stack(kinds, 1)[torch.arange(B, device=dev), kind]
        # scale the noise to the SNR: 10 log10(P_clean / P_noise) = snr
        snr = uniform((B, 1), *self.snr_range, g, dev)
        p_clean, p_noise = clean.pow(2).mean(-1, keepdim=True), noise.pow(2).mean(-1, keepdim=True) + 1e-12
        p_ref = torch.where(p_clean > 1e-10, p_clean, 1e-4)  # a silent crop still gets audible noise
        return clean + noise * torch.sqrt(p_ref / (p_noise * 10 ** (snr / 10))), kind, snr[:, 0]


def mixture_pairs(speech=DEMO / "speech_test", noise=DEMO / "noise", snr_range=(-10.0, -5.0), seed=1234, limit=None):
    """Whole held-out utterances [(name, clean, noisy), ...] mixed with real noise recordings at a
    fixed random SNR each. The default is the out-of-domain set: held-out speech, DEMAND noise (not
    a default training noise type) and SNRs below the training range."""
    rng = np.random.default_rng(seed)
    noises = [load_audio(p) for p in list_audio(noise)]
    out = []
    for path in list_audio(speech)[:limit]:
        clean = load_audio(path)
        recording = noises[int(rng.integers(len(noises)))]
        (noise,) = random_crop([np.resize(recording, max(len(clean), len(recording)))], len(clean), rng)
        snr = rng.uniform(*snr_range)
        noise = noise * np.sqrt(np.mean(clean ** 2) / (np.mean(noise ** 2) * 10 ** (snr / 10)))
        out.append((path.stem, clean, (clean + noise).astype(np.float32)))
    return out


def indomain_mixtures(speech=DEMO / "speech_test", noise=None, snr_range=(0.0, 10.0), seed=1234):
    """An in-domain test set: whole held-out utterances [(name, clean, noisy, noise type, SNR in dB), ...],
    each mixed with one of the training noise types of MixBatches (babble of the other held-out utterances,
    coloured, modulated coloured, and with noise folders a crop of one of their recordings) at a random SNR in
    snr_range; the types are named as in MixBatches.types. The default is demo/indomain_noisy (made by
    write_mixtures); `python data.py testset` writes others."""
    mix = MixBatches(speech, noise, snr_range=snr_range, speeds=(1.0,), gain_db=0.0)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for u, path in enumerate(audio_files(speech)):
        clean = mix.speech.crop(torch.tensor([u]), int(mix.speech.lengths[u]), torch.zeros(1, dtype=torch.long))
        noisy, kind, snr = mix.mix(clean, torch.tensor([u]), generator)
        out.append((path.stem, clean[0].numpy(), noisy[0].numpy(), mix.types[int(kind[0])], float(snr[0])))
    return out


def indomain_pairs(speech=DEMO / "speech_test", noise=None, snr_range=(0.0, 10.0), seed=1234):
    """indomain_mixtures without the noise types and SNRs: [(name, clean, noisy), ...]."""
    return [mixture[:3] for mixture in indomain_mixtures(speech, noise, snr_range, seed)]


def write_mixtures(pairs, folder, with_clean=False):
    """Write the noisy side of [(name, clean, noisy), ...] as folder/name.flac (16-bit), so that the
    command-line tools can enhance and score a set that lives in memory (demo/ood_noisy was made so).
    with_clean=True writes folder/clean/ and folder/noisy/ instead: a test set that validation and
    evaluate.py read as pairs."""
    folder = Path(folder)
    sides = {"clean": 1, "noisy": 2} if with_clean else {"": 2}
    for side in sides:
        (folder / side).mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        name, noisy = pair[0], pair[2]
        if np.abs(noisy).max() >= 1:
            raise DataError(f"{name}: the mixture clips (peak {np.abs(noisy).max():.2f}); lower its level first")
        for side, k in sides.items():
            sf.write(str(folder / side / f"{name}.flac"), pair[k], SAMPLE_RATE, subtype="PCM_16")


def make_batches(data="", speech="", noise="", num_frames=256, device="cpu", snr_range=TRAIN_SNR):
    """The training batches a script's options describe, on `device`: VoiceBank-DEMAND pairs (data),
    speech folders mixed with noise at SNRs drawn uniformly from snr_range (speech, noise: "a,b" each), or
    the bundled demo speech mixed so when neither is given."""
    if data:
        return PairBatches(find_pairs(data, "train"), num_frames, device)
    return MixBatches(speech or DEMO / "speech_train", noise or None, num_frames, snr_range, device=device)


def validation_pairs(data="", valid="", limit=4):
    """Held-out whole utterances for validation: valid if given, else data's valid split,
    else the bundled VoiceBank-DEMAND p287 pairs."""
    if valid:
        pairs = find_pairs(valid, "test")
    elif data:
        pairs = find_pairs(data, "valid")
    else:
        pairs = find_pairs(DEMO / "vbdmd", "test")
    return load_pairs(pairs, limit)


def validation_sets(data="", valid="", limit=4):
    """{name: pairs} of validation_pairs: one set per folder of valid ("a,b", each holding clean/ and
    noisy/, named by its folder), or the one set of validation_pairs when valid is empty."""
    if not valid:
        return {"valid": validation_pairs(data, "", limit)}
    sets = {}
    for folder in folders(valid):
        name = folder.name if folder.name not in sets else str(folder)
        sets[name] = validation_pairs("", str(folder), limit)
    return sets


# ----------------------------------------------------------------------------- the command line

def main(argv=None):
    """python data.py testset --speech HELD_OUT --noise NOISE --out DIR: write a held-out test set."""
    import argparse
    parser = argparse.ArgumentParser(description="Write a held-out in-domain test set (DIR/clean, DIR/noisy, and "
                                     "DIR/mixtures.csv: each file's noise type and SNR): "
                                     "each utterance of --speech mixed with one of the training noise types "
                                     "(babble of the other held-out utterances, coloured, modulated coloured, a "
                                     "recording of --noise) at a random SNR, all draws from --seed.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("command", choices=["testset"], help="what to write")
    parser.add_argument("--speech", required=True, help="held-out clean speech, folders 'a,b' searched recursively")
    parser.add_argument("--noise", default="", help="noise recordings, folders 'a,b' searched recursively (empty: "
                        "babble and coloured noises only)")
    parser.add_argument("--out", required=True, help="the new folder (refused if it exists)")
    parser.add_argument("--snr", type=float, nargs=2, default=(0.0, 10.0), metavar=("LOW", "HIGH"),
                        help="SNR range in dB")
    parser.add_argument("--seed", type=int, default=1234, help="seed of every random draw")
    args = parser.parse_args(argv)
    try:  # the options first, each as it is read: nothing is written when one of them is wrong
        check_seed(args.seed)
        if not folders(args.speech):
            raise DataError("--speech: no folder given")
        for option, text in (("--speech", args.speech), ("--noise", args.noise)):
            for folder in folders(text):
                if not folder.is_dir():
                    raise DataError(f"{option} {folder}: no such folder")
                if Path(args.out).resolve().is_relative_to(folder.resolve()):  # its recursive search would read it
                    raise DataError(f"--out {args.out}: inside {option} {folder}, whose audio is searched "
                                    "recursively; write the test set elsewhere")
        if Path(args.out).exists():
            raise DataError(f"{args.out} exists: choose a new folder (nothing is overwritten)")
        if not all(map(math.isfinite, args.snr)):
            raise DataError(f"--snr {args.snr[0]:g} {args.snr[1]:g}: must be finite numbers of dB")
        if args.snr[0] > args.snr[1]:
            raise DataError(f"--snr {args.snr[0]:g} {args.snr[1]:g}: the low end is above the high end")
        mixtures = indomain_mixtures(args.speech, args.noise or None, tuple(args.snr), args.seed)
        peak = max(float(np.abs(noisy).max()) for _, _, noisy, _, _ in mixtures)
        pairs = [mixture[:3] for mixture in mixtures]
        if peak >= 0.99:  # one gain for the whole set keeps its levels comparable and 16 bits unclipped
            pairs = [(name, clean * 0.9 / peak, noisy * 0.9 / peak) for name, clean, noisy in pairs]
        try:
            write_mixtures(pairs, args.out, with_clean=True)
            with open(Path(args.out) / "mixtures.csv", "w", newline="") as f:  # what each file was mixed with
                table = csv.writer(f)
                table.writerow(["file", "noise", "snr_db"])
                table.writerows((name, kind, f"{snr:.2f}") for name, _, _, kind, snr in mixtures)
        except OSError as e:  # a file on the path of --out, no permission, a full disk
            raise DataError(f"--out {args.out}: cannot write there ({e.strerror or type(e).__name__})")
    except DataError as e:
        sys.exit(f"error: {e}")
    print(f"{len(pairs)} pairs written to {args.out}/clean and {args.out}/noisy, their noise types and SNRs to "
          f"{args.out}/mixtures.csv")


if __name__ == "__main__":
    main()
