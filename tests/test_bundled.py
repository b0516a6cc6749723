"""The checkpoints a fresh clone enhances and distils with (checkpoints/, made on the H100, RESULTS.md)."""
from pathlib import Path

import numpy as np
import torch

import data
import distill
import enhance
import evaluate
from model import PRESETS, load_checkpoint, load_model

ROOT = Path(__file__).resolve().parents[1]
TEACHER, STUDENT = ROOT / "checkpoints" / "teacher-small.pt", ROOT / "checkpoints" / "rosecd-small.pt"


def test_bundled_checkpoints_are_small_float16_ema_files_and_the_defaults():
    for path, kind in ((TEACHER, "teacher"), (STUDENT, "student")):
        assert path.stat().st_size <= 16 * 2 ** 20
        ckpt = load_checkpoint(path)
        assert ckpt["kind"] == kind and load_model(path)[0].preset == "small"  # the shape is stored in full
        W = ckpt["ema"].pop("net.fourier_W")  # the Fourier frequencies stay float32, stored with the weights
        assert W.dtype == torch.float32 and {v.dtype for v in ckpt["ema"].values() if v.is_floating_point()} == {
            torch.float16}
    assert enhance.DEFAULT_CHECKPOINT == STUDENT
    assert Path(distill.Config().teacher) == TEACHER


def test_bundled_student_enhances_the_held_out_pairs_in_one_step():
    """RESULTS.md 2: on the p287 pairs the student gains 0.10 PESQ and 1.3 dB SI-SDR over its input."""
    D, sde, kind = load_model(STUDENT, "cpu")
    noisy_scores, enhanced_scores = [], []
    for k, (name, clean, noisy) in enumerate(data.validation_pairs(limit=None)):
        enhanced, calls = enhance.enhance_wav(D, sde, noisy, 1, torch.Generator().manual_seed(k))
        assert calls == 1
        noisy_scores.append(evaluate.score(clean, noisy))
        enhanced_scores.append(evaluate.score(clean, enhanced))
    gain = {m: np.mean([e[m] - n[m] for e, n in zip(enhanced_scores, noisy_scores)]) for m in ("pesq", "si_sdr")}
    assert gain["pesq"] > 0.03 and gain["si_sdr"] > 0.2, gain


def test_distill_runs_from_the_bundled_teacher_by_default(tmp_path):
    distill.main(["--steps", "2", "--batch-size", "1", "--grad-accum", "1", "--num-frames", "64",
                  "--valid-files", "0", "--out", str(tmp_path)])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["kind"] == "student" and ckpt["step"] == 2
    assert {k: ckpt["model"][k] for k in PRESETS["small"]} == PRESETS["small"]  # the teacher's shape, in full
    assert ckpt["config"]["teacher"] == str(TEACHER)
