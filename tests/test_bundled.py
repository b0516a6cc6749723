"""The checkpoints a fresh clone enhances and distils with (checkpoints/, made on H100 and H200 GPUs, RESULTS.md)."""
from pathlib import Path

import numpy as np
import pytest
import torch

import data
import distill
import enhance
import evaluate
from model import PRESETS, load_checkpoint, load_model

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "checkpoints"
TEACHER, STUDENT = CHECKPOINTS / "teacher-small.pt", CHECKPOINTS / "rosecd-small.pt"  # distill.py's default teacher
TEACHER_MEDIUM, STUDENT_MEDIUM = CHECKPOINTS / "teacher-medium.pt", CHECKPOINTS / "rosecd-medium.pt"  # many voices
STUDENT_SMALL_MV = CHECKPOINTS / "rosecd-small-mv.pt"  # many voices too: the small width, from the medium teacher


def test_bundled_checkpoints_are_small_float16_ema_files_and_the_defaults():
    for path, kind, preset in ((TEACHER, "teacher", "small"), (STUDENT, "student", "small"),
                               (TEACHER_MEDIUM, "teacher", "medium"), (STUDENT_MEDIUM, "student", "medium"),
                               (STUDENT_SMALL_MV, "student", "small")):
        assert path.stat().st_size <= 16 * 2 ** 20
        ckpt = load_checkpoint(path)
        assert ckpt["kind"] == kind and load_model(path)[0].preset == preset  # the shape is stored in full
        W = ckpt["ema"].pop("net.fourier_W")  # the Fourier frequencies stay float32, stored with the weights
        assert W.dtype == torch.float32 and {v.dtype for v in ckpt["ema"].values() if v.is_floating_point()} == {
            torch.float16}
    assert enhance.DEFAULT_CHECKPOINT == STUDENT_MEDIUM
    assert Path(distill.Config().teacher) == TEACHER
    for student in (STUDENT_MEDIUM, STUDENT_SMALL_MV):  # both distilled from the many-voices teacher
        assert Path(load_checkpoint(student)["config"]["teacher"]).name == TEACHER_MEDIUM.name


@pytest.mark.parametrize("student, min_pesq_gain, min_si_sdr_gain", [
    (STUDENT_MEDIUM, 0.30, 2.0),  # RESULTS.md 7.8: +0.577 PESQ and +3.96 dB (issue 20 asks for 0.30 and 2 dB)
    (STUDENT_SMALL_MV, 0.30, 2.0),  # RESULTS.md 7.15: +0.449 PESQ and +3.22 dB (+0.464 and +3.07 with these seeds)
    (STUDENT, 0.03, 0.2),         # RESULTS.md 2 and 7.4: +0.17 PESQ and +1.5 to +1.7 dB (one voice, minutes)
])
def test_bundled_students_enhance_the_held_out_pairs_in_one_step(student, min_pesq_gain, min_si_sdr_gain):
    """The real VoiceBank-DEMAND p287 pairs, never trained on: gains over the noisy input, in one call each."""
    D, sde, kind = load_model(student, "cpu")
    noisy_scores, enhanced_scores = [], []
    for k, (name, clean, noisy) in enumerate(data.validation_pairs(limit=None)):
        enhanced, calls = enhance.enhance_wav(D, sde, noisy, 1, torch.Generator().manual_seed(k))
        assert calls == 1
        noisy_scores.append(evaluate.score(clean, noisy))
        enhanced_scores.append(evaluate.score(clean, enhanced))
    gain = {m: np.mean([e[m] - n[m] for e, n in zip(enhanced_scores, noisy_scores)]) for m in ("pesq", "si_sdr")}
    assert gain["pesq"] > min_pesq_gain and gain["si_sdr"] > min_si_sdr_gain, gain


def test_distill_runs_from_the_bundled_teacher_by_default(tmp_path):
    distill.main(["--steps", "2", "--batch-size", "1", "--grad-accum", "1", "--num-frames", "64",
                  "--valid-files", "0", "--out", str(tmp_path)])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["kind"] == "student" and ckpt["step"] == 2
    assert {k: ckpt["model"][k] for k in PRESETS["small"]} == PRESETS["small"]  # the teacher's shape, in full
    assert ckpt["config"]["teacher"] == str(TEACHER)
