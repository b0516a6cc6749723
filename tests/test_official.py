"""The official SGMSE+ / ROSE-CD code, number for number: its outputs (tests/official, described in its README)
against this code's network, preconditioning, SDE and spectrogram; its checkpoints loaded safely by every
entry point, converted to this project's format, and refused clearly where they do not fit."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import data
import distill
import speed
from data import DataError
from model import Denoiser, count_parameters, load_checkpoint, load_model, official_names, official_state_dict, \
    read_checkpoint
from sde import SDE, pc_sample

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT / "tests" / "official"
CKPT = OFFICIAL / "ncsnpp_v2_nf8.ckpt"  # the official ScoreModel at nf = 8, random weights, Lightning layout
NF8 = dict(nf=8, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,))


@pytest.fixture(scope="module")
def fx():
    return torch.load(OFFICIAL / "fixtures.pt", weights_only=True)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def one_error_line(result, message):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


def official_variant(path, **changes):
    """A copy of the official checkpoint with changed hyper_parameters (None: the field removed)."""
    ckpt = read_checkpoint(CKPT)
    hp = {k: v for k, v in ckpt["hyper_parameters"].items() if k != "data_module_cls"}  # a stand-in: not picklable
    hp.update(changes)
    ckpt["hyper_parameters"] = {k: v for k, v in hp.items() if v is not None}
    torch.save(ckpt, path)
    return path


# ----------------------------------------------------------------------------- number for number

def test_network_and_preconditioning_match_the_official_code(fx):
    D, sde, kind = load_model(CKPT)  # the EMA weights, as the official enhancement uses
    assert kind == "teacher" and D.c_in == "edm" and D.shape == NF8 and D.preset is None
    assert count_parameters(D) + D.net.fourier_W.numel() == 266_182  # W is a buffer here, a frozen parameter there
    student = Denoiser(**{**D.config(), "c_in": "one"}, sde=sde).eval()  # the one-step student's input scaling
    student.load_state_dict(D.state_dict())
    x, y, t = fx["x_t"], fx["y"], fx["t"]
    with torch.no_grad():
        out = D.net(torch.cat([x.real, x.imag, y.real, y.imag], dim=1), t)
        errors = {"F": rel(torch.complex(out[:, 0:1], out[:, 1:2]), fx["F"]), "D_edm": rel(D(x, y, t), fx["D_edm"]),
                  "score_edm": rel(D.score(x, y, t), fx["score_edm"]), "D_one": rel(student(x, y, t), fx["D_one"])}
    assert all(e < 1e-5 for e in errors.values()), errors  # measured: 2.9e-7, 2.7e-8, 1.9e-7, 2.9e-8


def test_sde_matches_the_official_code(fx):
    sde, t = SDE(), fx["sde_t"]
    x0, y0 = fx["x_t"][0, 0, :2, :2], fx["y"][0, 0, :2, :2]
    errors = {"sigma": rel(sde.sigma(t), fx["sde_std"]), "g": rel(sde.g(t), fx["sde_g"]),
              "mu": rel(sde.mu(x0, y0, t[:, None, None]), fx["sde_mean"])}
    assert all(e < 1e-5 for e in errors.values()), errors


def test_spectrogram_and_its_inverse_match_the_official_code(fx):
    spec = data.wav_to_spec(fx["wav"])
    assert spec.shape == fx["spec"].shape and rel(spec, fx["spec"]) < 1e-5
    assert rel(data.spec_to_wav(fx["spec"], fx["wav"].shape[-1]), fx["wav_back"]) < 1e-5


def test_pc_sampler_matches_the_official_code_with_its_recorded_noise(fx):
    """The 30-step predictor-corrector, replaying the official run's 61 draws (seeds 1000 + i): the
    predictor steps by the grid spacing and, from t_eps, by t_eps, as the official sampler does."""
    D, sde, _ = load_model(CKPT)
    y = fx["pc_y"]
    draws = iter([torch.randn(y.shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(
        int(fx["pc_noise_seed0"]) + i)) for i in range(int(fx["pc_draws"]))])
    out, calls = pc_sample(sde, D, y, N=30, snr=0.5, z=draws)
    assert calls == int(fx["pc_nfe"]) == 60 and next(draws, None) is None  # every recorded draw used, once
    assert rel(out, fx["pc_out"]) < 1e-5, rel(out, fx["pc_out"])


@pytest.mark.parametrize("trajectory", ["deterministic", "randomized"])
def test_cd_teacher_step_matches_the_official_heun_solver(fx, trajectory):
    """One CD teacher step: Heun on the PF ODE with dt = -1/N, plus g(t) sqrt(1/N) z for the randomized trajectory."""
    D, sde, _ = load_model(CKPT)
    z = torch.randn(fx["cd_x_t"].shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(
        int(fx["cd_noise_seed"])))
    with torch.no_grad():
        x_mean, x_next = distill.teacher_step(D, sde, fx["cd_x_t"], fx["cd_y"], fx["cd_t"], 30, z, trajectory)
    assert rel(x_mean, fx["cd_x_next_mean"]) < 1e-5, rel(x_mean, fx["cd_x_next_mean"])
    expected = fx["cd_x_next"] if trajectory == "randomized" else fx["cd_x_next_mean"]
    assert rel(x_next, expected) < 1e-5, rel(x_next, expected)


def test_the_published_teacher_layout_maps_onto_the_reference_preset():
    layout = json.loads((OFFICIAL / "m3_state_dict_layout.json").read_text())
    weights = {name: torch.empty(shape, device="meta") for name, shape in layout}  # shapes only, no memory
    D = Denoiser("reference")
    state, target = official_state_dict(D, weights), D.state_dict()
    assert state.keys() == target.keys() and all(state[k].shape == target[k].shape for k in target)
    assert sorted(official_names(D.net).values()) == sorted(weights)  # every official tensor used, once
    assert sum(math.prod(shape) for _, shape in layout) == count_parameters(D) + D.net.fourier_W.numel() == 65_590_822
    # a tensor too many, one missing, or one of another shape: one clear error each
    with pytest.raises(DataError, match="no place in this network, e.g. all_modules.99.weight"):
        official_state_dict(D, {**weights, "all_modules.99.weight": torch.empty(1, device="meta")})
    with pytest.raises(DataError, match=r"has no all_modules.3.weight \(this network's net.conv_in.weight\)"):
        official_state_dict(D, {k: v for k, v in weights.items() if k != "all_modules.3.weight"})
    with pytest.raises(DataError, match=r"all_modules.3.weight is \(64, 4, 3, 3\), this network's net.conv_in"):
        official_state_dict(D, {**weights, "all_modules.3.weight": torch.empty(64, 4, 3, 3, device="meta")})


# ----------------------------------------------------------------------------- every entry point takes the file

def test_enhance_runs_the_official_teacher(tmp_path):
    # one 2-s file and 2 predictor-corrector steps keep it quick; the folder and 30 steps work the same
    result = run("enhance.py", "demo/vbdmd/noisy/p287_001.wav", "-o", tmp_path, "--checkpoint", CKPT, "--steps", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p287_001.wav").is_file() and "4 network calls" in result.stdout


def test_distill_starts_from_the_official_teacher(tmp_path):
    distill.main(["--teacher", str(CKPT), "--steps", "2", "--batch-size", "1", "--grad-accum", "1", "--num-frames", "64",
                  "--valid-files", "0", "--out", str(tmp_path)])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["kind"] == "student" and ckpt["step"] == 2
    assert ckpt["model"] == {**NF8, "c_in": "one", "sigma_data": 0.1}
    teacher, _, _ = load_model(CKPT)
    assert torch.equal(ckpt["ema"]["net.fourier_W"], teacher.net.fourier_W)  # the checkpoint's own frequencies


def test_benchmark_times_the_official_teacher():
    r = speed.benchmark("tiny", checkpoint_teacher=str(CKPT), device="cpu", steps=1, repeats=1, seconds=0.1,
                        threads=1)
    assert r["teacher"]["model"].startswith("nf 8 teacher") and r["student"]["model"] == "tiny, random weights"


def test_c_in_1_is_a_one_step_student(tmp_path):
    path = official_variant(tmp_path / "student.ckpt", c_in="1")
    D, _, kind = load_model(path)
    assert kind == "student" and D.c_in == "one"
    with pytest.raises(DataError, match="--teacher needs one written by teacher.py or an official"):
        distill.load_teacher(path, "cpu")


def test_convert_writes_the_project_format(tmp_path, fx):
    out = tmp_path / "teacher-nf8.pt"
    result = run("model.py", "convert", CKPT, out)
    assert result.returncode == 0 and "teacher" in result.stdout, result.stderr
    ckpt = load_checkpoint(out)
    assert ckpt["kind"] == "teacher" and ckpt["step"] == 1000 and ckpt["model"] == {**NF8, "c_in": "edm", "sigma_data": 0.1}
    assert ckpt["sde"] == {"gamma": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "T": 1.0, "t_eps": 0.03}
    assert ckpt["config"]["weights"] == "ema" and ckpt["config"]["hyper_parameters"]["backbone"] == "ncsnpp_v2"
    assert not {"raw", "optimizer"} & ckpt.keys()
    W = read_checkpoint(CKPT)["ema"]["shadow_params"][2]  # all_modules.0.W, third in dnn.parameters()
    assert ckpt["ema"]["net.fourier_W"].dtype == torch.float32 and torch.equal(ckpt["ema"]["net.fourier_W"], W)
    assert {v.dtype for k, v in ckpt["ema"].items() if k != "net.fourier_W"} == {torch.float16}
    D, _, _ = load_model(out)
    with torch.no_grad():
        assert rel(D(fx["x_t"], fx["y"], fx["t"]), fx["D_edm"]) < 2e-3  # float16 weights
    one_error_line(run("model.py", "convert", CKPT, out), "exists")
    raw = tmp_path / "raw.pt"
    assert run("model.py", "convert", CKPT, raw, "--raw").returncode == 0
    assert load_checkpoint(raw)["config"]["weights"] == "raw"
    assert not torch.equal(load_checkpoint(raw)["ema"]["net.conv_in.weight"], ckpt["ema"]["net.conv_in.weight"])


# ----------------------------------------------------------------------------- refused, one line each

def test_each_format_where_the_other_is_expected(tmp_path):
    one_error_line(run("model.py", "convert", ROOT / "checkpoints" / "teacher-small.pt", tmp_path / "x.pt"),
                   "not an official (PyTorch Lightning) checkpoint; it is one of this project's already")
    one_error_line(run("teacher.py", "export", CKPT, tmp_path / "x.pt"), "an official (PyTorch Lightning) checkpoint")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("changes,message", [
    (dict(backbone="ncsnpp"), "hyper_parameters backbone is 'ncsnpp'; this code implements 'ncsnpp_v2'"),
    (dict(sde="ve"), "hyper_parameters sde is 've'; this code implements 'ouve'"),
    (dict(n_fft=512), "hyper_parameters n_fft is 512; this code implements 510"),
    (dict(c_skip="one"), "hyper_parameters c_skip is 'one'; this code implements 'edm'"),
    (dict(c_in="none"), "hyper_parameters c_in is 'none'; this code implements 'edm' (a teacher) or '1'"),
    (dict(progressive="residual"), "hyper_parameters progressive is 'residual'; this code implements 'output_skip'"),
    (dict(nf=None), "hyper_parameters has no nf"),
    (dict(loss_type=None), "hyper_parameters has no loss_type"),
])
def test_hyper_parameters_this_code_cannot_follow(tmp_path, changes, message):
    path = official_variant(tmp_path / "other.ckpt", **changes)
    with pytest.raises(DataError) as e:
        load_model(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_another_backbone_fails_in_one_line_at_the_command_line(tmp_path):
    path = official_variant(tmp_path / "dcunet.ckpt", backbone="dcunet")
    one_error_line(run("enhance.py", "demo/vbdmd/noisy", "-o", tmp_path / "out", "--checkpoint", path),
                   "backbone is 'dcunet'; this code implements 'ncsnpp_v2'")


def test_a_truncated_file(tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(CKPT.read_bytes()[:1_000_000])
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_model(path)
    one_error_line(run("model.py", "convert", path, tmp_path / "x.pt"), "not a readable checkpoint")


class Runs:
    """Pickles as a call of fn(*args): what a malicious checkpoint holds."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("call", ["posix.system", "shutil.copyfile"])  # torch blocks os; a stand-in refuses the other
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, call):
    marker = tmp_path / "marker"
    payload = Runs(os.system, f"touch {marker}") if call == "posix.system" else Runs(shutil.copyfile, str(CKPT), str(marker))
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": "ncsnpp_v2", "x": payload}}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [call]  # the file does name the function
    with pytest.raises(DataError, match="refused"):
        load_model(path)
    one_error_line(run("model.py", "convert", path, tmp_path / "x.pt"), "refused")
    one_error_line(run("enhance.py", "demo/vbdmd/noisy", "-o", tmp_path / "out", "--checkpoint", path), "refused")
    assert not marker.exists() and not (tmp_path / "x.pt").exists()


def test_the_official_class_names_stay_inert_stand_ins():
    hp = read_checkpoint(CKPT)["hyper_parameters"]
    stand_in = hp["data_module_cls"]  # sgmse.data_module.SpecsDataModule is not installed here
    assert stand_in.name == "sgmse.data_module.SpecsDataModule"
    with pytest.raises(DataError, match="would call sgmse.data_module.SpecsDataModule"):
        stand_in()
