"""Audio loading, the spectrogram transform and the two datasets."""
import numpy as np
import pytest
import soundfile as sf
import torch

import data
from data import DataError


def test_transform_then_inverse_reproduces_the_waveform():
    wav = torch.randn(3, 40_000, dtype=torch.float64)
    back = data.spec_to_wav(data.wav_to_spec(wav), wav.shape[-1])
    assert ((back - wav).norm() / wav.norm()).item() < 1e-5
    wav32 = torch.from_numpy(data.load_audio(data.DEMO / "vbdmd" / "clean" / "p287_001.wav"))
    back32 = data.spec_to_wav(data.wav_to_spec(wav32), len(wav32))
    assert ((back32 - wav32).norm() / wav32.norm()).item() < 1e-5


def test_spectrogram_shape_and_compression():
    wav = torch.randn(2, data.crop_samples(256))
    spec = data.wav_to_spec(wav)
    assert spec.shape == (2, 1, 256, 256) and spec.dtype == torch.complex64
    window = torch.hann_window(510, periodic=True)
    raw = torch.stft(wav, 510, 128, window=window, center=True, return_complex=True)
    torch.testing.assert_close(spec[:, 0].abs(), 0.15 * raw.abs() ** 0.5, rtol=1e-5, atol=1e-6)
    big = raw.abs() > 1e-3  # the phase is kept: equal unit phasors
    torch.testing.assert_close(spec[:, 0][big] / spec[:, 0][big].abs(), raw[big] / raw[big].abs(), rtol=1e-4, atol=1e-4)


def test_stereo_is_averaged_and_other_rates_resampled(tmp_path):
    t = np.arange(8000) / 8000
    left, right = np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "stereo8k.wav", np.stack([left, right], 1), 8000)
    wav, sr = data.read_audio(tmp_path / "stereo8k.wav")
    assert sr == 8000 and wav.ndim == 1
    np.testing.assert_allclose(wav, 0.75 * np.sin(2 * np.pi * 440 * t), atol=1e-3)
    wav16 = data.load_audio(tmp_path / "stereo8k.wav")
    assert len(wav16) == 16000
    spectrum = np.abs(np.fft.rfft(wav16))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over 1 s: still a 440 Hz tone


@pytest.mark.parametrize("sr_in,sr_out", [(48000, 16000), (44100, 16000), (22050, 16000), (8000, 16000),
                                          (16000, 48000), (16000, 44100)])
def test_fir_resampling_equals_scipy_resample_poly_on_speech(sr_in, sr_out):
    """The conv1d resampler has resample_poly's filter and alignment: equal to float32 rounding
    (~2e-7 of the peak), whatever the length; 1e-5 leaves room for other BLAS, not for a shifted tap."""
    from scipy.signal import resample_poly
    speech = data.read_audio(data.DEMO / "vbdmd" / "noisy" / "p287_003.wav")[0]
    k = np.gcd(sr_in, sr_out)
    for n in (sr_in + 7, 5, 1):  # a second of speech, and lengths shorter than the filter
        x = np.resize(speech, n)
        ours, ref = data.resample(x, sr_in, sr_out), resample_poly(x, sr_out // k, sr_in // k)
        assert ours.dtype == np.float32 and ours.shape == ref.shape == (-(-n * sr_out // sr_in),)
        assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max(), (n, np.abs(ours - ref).max())


def test_fir_resampling_keeps_the_passband_and_removes_what_would_alias():
    t = np.arange(48000) / 48000
    for f, low, high in ((1000, 0.998, 1.002), (10000, 0.0, 0.005)):  # 10 kHz would fold to 6 kHz at 16 kHz
        y = data.resample(np.sin(2 * np.pi * f * t).astype(np.float32), 48000, 16000)[1000:-1000]  # no edges
        amplitude = np.sqrt(2 * np.mean(y ** 2))
        assert low <= amplitude <= high, (f, amplitude)  # 1.0010 and 0.0014 (-57 dB)
    tone = data.resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 48000, 16000)
    assert np.argmax(np.abs(np.fft.rfft(tone))) == 1000  # 1 Hz bins: the tone is still at 1 kHz
    # a batch of waveforms is resampled row by row, and an unusual ratio falls back to scipy
    x = np.random.default_rng(0).standard_normal((2, 3, 999)).astype(np.float32)
    y = data.resample(x, 48000, 16000)
    assert y.shape == (2, 3, 333) and np.abs(y[1, 2] - data.resample(x[1, 2], 48000, 16000)).max() < 1e-6
    assert data.resample(x[0, 0], 16001, 16000).shape == (-(-999 * 16000 // 16001),)


def test_bad_audio_files_raise_clear_errors(tmp_path):
    (tmp_path / "fake.wav").write_text("not audio")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="not a readable audio file"):
        data.read_audio(tmp_path / "fake.wav")
    with pytest.raises(DataError, match="NaN"):
        data.read_audio(tmp_path / "nan.wav")
    with pytest.raises(DataError, match="no samples"):
        data.read_audio(tmp_path / "empty.wav")
    with pytest.raises(DataError, match="no such file"):
        data.read_audio(tmp_path / "missing.wav")


def make_pairs(folder, names, sr=16000):
    for sub in ("clean", "noisy"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            sf.write(folder / sub / f"{name}.wav", np.random.default_rng(0).standard_normal(sr // 4) * 0.1, sr)


def test_find_pairs_accepts_both_voicebank_layouts(tmp_path):
    make_pairs(tmp_path / "sgmse" / "train", ["p230_001", "p230_002"])
    make_pairs(tmp_path / "sgmse" / "valid", ["p287_001"])
    assert [c.stem for c, n in data.find_pairs(tmp_path / "sgmse", "train")] == ["p230_001", "p230_002"]
    assert [c.stem for c, n in data.find_pairs(tmp_path / "sgmse", "valid")] == ["p287_001"]

    original = tmp_path / "original"
    make_pairs(original, ["p226_001", "p230_001", "p287_002"], sr=48000)
    (original / "clean").rename(original / "clean_trainset_28spk_wav")
    (original / "noisy").rename(original / "noisy_trainset_28spk_wav")
    train = data.find_pairs(original, "train")
    assert [c.stem for c, n in train] == ["p230_001"]  # p226 and p287 are the validation speakers
    assert [c.stem for c, n in data.find_pairs(original, "valid")] == ["p226_001", "p287_002"]
    assert all(c.name == n.name and c.parent != n.parent for c, n in train)
    clean, noisy = data.PairBatches(train, num_frames=64)(1, torch.Generator().manual_seed(0))
    assert clean.shape == noisy.shape == (1, data.crop_samples(64))  # 48 kHz resampled, then padded


def test_find_pairs_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        data.find_pairs(tmp_path / "nowhere")
    (tmp_path / "empty" / "clean").mkdir(parents=True)
    (tmp_path / "empty" / "noisy").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        data.find_pairs(tmp_path / "empty")
    make_pairs(tmp_path / "mismatch", ["a", "b"])
    (tmp_path / "mismatch" / "noisy" / "b.wav").rename(tmp_path / "mismatch" / "noisy" / "c.wav")
    with pytest.raises(DataError, match="do not match"):
        data.find_pairs(tmp_path / "mismatch")
    make_pairs(tmp_path / "broken", ["a"])
    (tmp_path / "broken" / "noisy" / "a.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(DataError, match="not a readable audio file"):
        data.find_pairs(tmp_path / "broken")


def test_pair_batches_normalise_by_the_noisy_peak_and_crop_both_sides_alike():
    pairs = data.find_pairs(data.DEMO / "vbdmd")[:1]
    (_, wc, wy), = data.load_pairs(pairs)
    wc, wy = wc / np.abs(wy).max(), wy / np.abs(wy).max()
    clean, noisy = data.PairBatches(pairs, num_frames=64)(8, torch.Generator().manual_seed(3))
    assert clean.shape == noisy.shape == (8, data.crop_samples(64)) and noisy.abs().max() <= 1.0 + 1e-6
    n = clean.shape[1]
    for c, y in zip(clean.numpy(), noisy.numpy()):  # the same stretch of both files, divided by the noisy peak
        starts = np.flatnonzero(np.abs(wy[:len(wy) - n + 1] - y[0]) < 1e-7)
        assert any(np.allclose(wy[k:k + n], y, atol=1e-6) and np.allclose(wc[k:k + n], c, atol=1e-6) for k in starts)
    # the whole-utterance factor: a crop longer than the file holds the noisy peak, exactly 1
    full = data.PairBatches(pairs[:1], num_frames=2000)(1, torch.Generator().manual_seed(0))[1]
    assert full.abs().max().item() == pytest.approx(1.0, abs=1e-6)


def test_mix_batches_are_a_function_of_the_generator_and_respect_the_snr_range():
    mix = data.MixBatches(data.DEMO / "speech_train", data.DEMO / "noise", num_frames=128, snr_range=(0.0, 10.0),
                          gain_db=0.0)
    assert mix.types == ["babble", "coloured", "modulated", "recording"]
    a, b = mix(24, torch.Generator().manual_seed(5)), mix(24, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(mix(24, torch.Generator().manual_seed(6))[1], a[1])
    clean, noisy = a
    assert clean.shape == noisy.shape == (24, data.crop_samples(128))
    torch.testing.assert_close(noisy.abs().amax(-1), torch.ones(24))  # divided by the noisy peak
    speech = clean.pow(2).mean(-1) > 1e-8
    snrs = 10 * torch.log10(clean.pow(2).mean(-1) / (noisy - clean).pow(2).mean(-1))[speech]
    assert snrs.min() > -0.01 and snrs.max() < 10.01 and snrs.max() - snrs.min() > 3


def test_mix_reports_each_items_noise_type_and_snr():
    """MixBatches.mix's draws, which `data.py testset` writes to mixtures.csv: the SNR is that of the mixture, and
    an item called "recording" carries a crop of one of the noise recordings, which no other item does."""
    mix = data.MixBatches(data.DEMO / "speech_train", data.DEMO / "noise", num_frames=64, snr_range=(-5.0, 5.0),
                          speeds=(1.0,))
    g = torch.Generator().manual_seed(3)
    utterance = torch.randint(mix.utterances, (32,), generator=g)
    clean = mix.speech.random_crop(utterance, mix.n, g)
    noisy, kind, snr = mix.mix(clean, utterance, g)
    assert kind.shape == snr.shape == (32,) and set(kind.tolist()) == {0, 1, 2, 3}  # every type drawn
    noise = (noisy - clean).numpy()
    measured = 10 * np.log10(clean.pow(2).mean(-1).numpy() / (noise ** 2).mean(-1))
    np.testing.assert_allclose(measured, snr.numpy(), atol=1e-3)
    recordings = [np.tile(r, 2)[:len(r) + mix.n] for r in map(data.load_audio, data.audio_files(data.DEMO / "noise"))]
    for n, k in zip(noise, kind.tolist()):  # n's best normalised match with any window of a (looped) recording
        best = 0.0
        for r in recordings:
            L = 2 ** int(np.ceil(np.log2(len(r) + mix.n)))  # no wrap-around in the circular correlation
            dots = np.fft.irfft(np.fft.rfft(r, L) * np.conj(np.fft.rfft(n, L)), L)[:len(r) - mix.n + 1]
            total = np.concatenate([[0.0], np.cumsum(r.astype(np.float64) ** 2)])
            energy = total[mix.n:] - total[:-mix.n]  # of every window of n samples
            best = max(best, float((dots / np.sqrt(energy * (n ** 2).sum() + 1e-20)).max()))
        assert (best > 0.999) == (mix.types[k] == "recording"), (mix.types[k], best)


def test_make_batches_mixes_speech_at_the_snr_range_it_is_given():  # teacher.py / distill.py --snr-low, --snr-high
    mix = data.make_batches(speech=str(data.DEMO / "speech_train"), num_frames=128, snr_range=(-10.0, -8.0))
    assert data.make_batches(speech=str(data.DEMO / "speech_train")).snr_range == data.TRAIN_SNR == (-5.0, 20.0)
    mix.gain_db = 0.0
    clean, noisy = mix(16, torch.Generator().manual_seed(0))
    speech = clean.pow(2).mean(-1) > 1e-8
    snrs = 10 * torch.log10(clean.pow(2).mean(-1) / (noisy - clean).pow(2).mean(-1))[speech]
    assert snrs.min() > -10.01 and snrs.max() < -7.99


def test_mix_batches_gain_lowers_the_peak_of_both_sides_alike():
    mix = data.MixBatches(data.DEMO / "speech_train", num_frames=64, speeds=(1.0,), gain_db=12.0)
    clean, noisy = mix(64, torch.Generator().manual_seed(0))
    peak = noisy.abs().amax(-1)
    assert peak.max() <= 1 + 1e-6 and peak.min() >= 10 ** (-12 / 20) - 1e-6 and peak.min() < 0.5
    plain = data.MixBatches(data.DEMO / "speech_train", num_frames=64, speeds=(1.0,), gain_db=0.0)
    c0, y0 = plain(64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(clean, c0 * peak[:, None])  # the same mixture, one gain for both sides
    torch.testing.assert_close(noisy, y0 * peak[:, None])


def test_speed_perturbation_changes_length_and_pitch_by_the_factor():
    tone = np.sin(2 * np.pi * 400 * np.arange(16000) / 16000).astype(np.float32)
    for factor in (0.85, 1.15):
        out = data.speed_perturb(tone, factor)
        assert abs(len(out) - 16000 / factor) <= 1
        spectrum = np.abs(np.fft.rfft(out[1000:-1000]))
        peak_hz = np.argmax(spectrum) * 16000 / len(out[1000:-1000])
        assert peak_hz == pytest.approx(400 * factor, rel=0.01)


def test_demo_splits_never_overlap():
    train = {p.name for p in data.list_audio(data.DEMO / "speech_train")}
    test = {p.name for p in data.list_audio(data.DEMO / "speech_test")}
    assert len(train) >= 90 and len(test) >= 10 and not train & test
    vb = {c.stem for c, n in data.find_pairs(data.DEMO / "vbdmd")}
    assert vb and not {n.split(".")[0] for n in train} & vb


def test_bundled_out_of_domain_mixtures_are_mixture_pairs_written_to_disk():
    pairs = data.mixture_pairs()
    files = data.list_audio(data.DEMO / "ood_noisy")
    assert [p.stem for p in files] == [name for name, _, _ in pairs] and len(pairs) == 12
    for path, (name, clean, noisy) in zip(files, pairs):
        assert len(data.load_audio(path)) == len(noisy)
        assert np.abs(data.load_audio(path) - noisy).max() <= 1 / 32768 + 1e-7  # 16-bit rounding only
        snr = 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))
        assert -10.01 <= snr <= -4.99  # below the training range (-5 to 20 dB)


def test_bundled_in_domain_mixtures_are_indomain_pairs_written_to_disk():
    pairs = data.indomain_pairs()
    files = data.list_audio(data.DEMO / "indomain_noisy")
    assert [p.stem for p in files] == [name for name, _, _ in pairs] == [p.stem for p in data.list_audio(
        data.DEMO / "speech_test")]
    for path, (name, clean, noisy) in zip(files, pairs):
        np.testing.assert_allclose(clean, data.load_audio(data.DEMO / "speech_test" / path.name), atol=1e-7)
        assert np.abs(data.load_audio(path) - noisy).max() <= 1 / 32768 + 1e-6  # 16-bit rounding only
        snr = 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))
        assert -0.01 <= snr <= 10.01  # inside the training range (-5 to 20 dB)


def test_testset_command_writes_pairs_from_folders_searched_recursively(tmp_path):
    """python data.py testset: held-out speech in subfolders (a LibriSpeech-like layout) and noise recordings
    -> OUT/clean and OUT/noisy, the same names, the same draws for the same seed; an existing OUT is refused."""
    import shutil
    for k, path in enumerate(data.list_audio(data.DEMO / "speech_test")[:3]):
        (tmp_path / "speech" / f"speaker{k % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / "speech" / f"speaker{k % 2}" / path.name)
    args = ["testset", "--speech", str(tmp_path / "speech"), "--noise", str(data.DEMO / "noise"), "--snr", "0", "5"]
    data.main(args + ["--out", str(tmp_path / "a")])
    data.main(args + ["--out", str(tmp_path / "b")])
    pairs = data.find_pairs(tmp_path / "a", "test")
    assert len(pairs) == 3 and [c.parent.name for c, _ in pairs] == ["clean"] * 3
    lines = (tmp_path / "a" / "mixtures.csv").read_text().splitlines()  # each file's noise type and SNR
    listed = {line.split(",")[0]: line.split(",")[1:] for line in lines[1:]}
    assert lines[0] == "file,noise,snr_db" and len(lines) == 4 and sorted(listed) == [c.stem for c, _ in pairs]
    for clean, noisy in pairs:
        c, y = data.load_audio(clean), data.load_audio(noisy)
        assert len(c) == len(y) and 0 < np.abs(y).max() < 1 and not np.allclose(c, y)
        snr = 10 * np.log10(np.mean(c ** 2) / np.mean((y - c) ** 2))
        assert -0.5 < snr < 5.5, snr  # within --snr, up to the 16-bit rounding
        noise, listed_snr = listed[clean.stem]
        assert noise in ("babble", "coloured", "modulated", "recording") and abs(float(listed_snr) - snr) < 0.05
        assert np.array_equal(y, data.load_audio(tmp_path / "b" / "noisy" / noisy.name))  # the seed fixes every draw
    with pytest.raises(SystemExit, match="exists"):
        data.main(args + ["--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="no such folder"):
        data.main(["testset", "--speech", str(tmp_path / "none"), "--out", str(tmp_path / "c")])


def test_testset_out_inside_a_searched_folder_is_refused(tmp_path):
    """A test set written inside --speech (or --noise) would be found by the next recursive search of that folder."""
    import shutil
    shutil.copytree(data.DEMO / "speech_test", tmp_path / "speech")
    with pytest.raises(SystemExit, match="^error: .*inside --speech"):
        data.main(["testset", "--speech", str(tmp_path / "speech"), "--out", str(tmp_path / "speech" / "set")])
    assert not (tmp_path / "speech" / "set").exists()


def test_one_speech_file_is_refused_in_one_line(tmp_path):
    """Babble mixes the other utterances: a single speech file is a clear error (testset, teacher.py, distill.py)."""
    import shutil
    (tmp_path / "speech").mkdir()
    shutil.copy(data.list_audio(data.DEMO / "speech_test")[0], tmp_path / "speech")
    with pytest.raises(DataError, match="at least 2"):
        data.MixBatches(tmp_path / "speech", num_frames=64, speeds=(1.0,))
    with pytest.raises(SystemExit, match="^error: .*at least 2"):
        data.main(["testset", "--speech", str(tmp_path / "speech"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
