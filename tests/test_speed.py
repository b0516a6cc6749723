"""speed.py: the benchmarks time what they say (teacher against student through the whole pipeline; the
student's network call alone, with its FLOP rate). The fast paths they use are tested in tests/test_fast.py."""
import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import speed
from model import Denoiser, save_checkpoint
from sde import SDE


def run_main(*args):
    """speed.main() in this process; returns the error message it exits with, or None."""
    try:
        speed.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return None


# ----------------------------------------------------------------------------- benchmarks

def test_benchmark_speedup_is_close_to_the_ratio_of_network_calls(tmp_path, capsys):
    (r,) = speed.main(["--preset", "tiny", "--device", "cpu", "--steps", "30", "--repeats", "5", "--seconds", "0.5",
                       "--threads", "1", "--out", str(tmp_path)])
    assert r["teacher"]["calls"] == 60 and r["student"]["calls"] == 1 and r["call_ratio"] == 60
    # the teacher's 60 calls against the student's one: near 60 on an idle CPU; the bound is loose, since a
    # busy machine (a scorer running beside the tests) moves single timings by tens of per cent
    assert r["speedup"] == pytest.approx(r["teacher"]["time_s"] / r["student"]["time_s"])
    assert 20 <= r["speedup"] <= 120, r
    for m in (r["teacher"], r["student"]):
        assert len(m["times_s"]) == 5 and m["time_s"] == np.median(m["times_s"])
        assert m["rtf"] == pytest.approx(m["time_s"] / 0.5)
        assert m["gflop_per_call"] > 0.5  # tiny on 256 x 64 bins: ~1.5 GFLOP
        assert m["gflop_per_audio_second"] == pytest.approx(m["gflop_per_call"] * m["calls"] / 0.5)
    assert r["teacher"]["gflop_per_call"] == r["student"]["gflop_per_call"]
    out = capsys.readouterr().out
    assert "speedup" in out and "teacher" in out and "student" in out and "RTF" in out
    assert json.loads((tmp_path / "benchmark.json").read_text())[0]["speedup"] == r["speedup"]


def test_benchmark_loads_checkpoints_and_refuses_foreign_files(tmp_path):
    D = Denoiser("tiny", "one")
    save_checkpoint(tmp_path / "student.pt", kind="student", model=D.config(), sde=dataclasses.asdict(SDE()),
                    ema=D.state_dict())
    r = speed.benchmark("small", checkpoint_student=str(tmp_path / "student.pt"), device="cpu", steps=1, repeats=1,
                        seconds=0.1, threads=1)
    assert r["student"]["model"].startswith("tiny student") and r["teacher"]["model"] == "small, random weights"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    message = run_main("--checkpoint-teacher", tmp_path / "junk.pt", "--device", "cpu")
    assert message.startswith("error:") and "not a readable checkpoint" in message


def test_calls_only_benchmark_times_the_network_and_reports_flop_rates(tmp_path, capsys, monkeypatch):
    asked = []

    def optimise(D, device, compiled=False, graph_shape=None):  # records the request; tests/test_fast.py compiles
        asked.append((compiled, graph_shape))
        return D

    monkeypatch.setattr(speed, "optimise", optimise)
    results = speed.main(["--calls-only", "--preset", "tiny", "--device", "cpu", "--batch", "1", "2",
                          "--precision", "fp32", "bf16", "--frames", "64", "--repeats", "3", "--warmup", "1",
                          "--peak-tflops", "0.5", "--threads", "1", "--compile", "--out", str(tmp_path)])
    assert [(r["batch"], r["precision"]) for r in results] == [(1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]
    assert asked == [(True, None)] * 4
    one = speed.flops_per_call(Denoiser("tiny", "one"), 63 * 128) / 1e9  # 64 frames = 63 x 128 samples
    for r in results:
        assert r["kind"] == "calls" and r["compiled"] and not r["cuda_graph"] and len(r["times_s"]) == 3
        median = np.median(r["times_s"])
        assert r["ms_per_call"] == pytest.approx(1e3 * median)
        assert r["rtf"] == pytest.approx(median / (r["batch"] * 63 * 128 / 16000))
        assert r["gflop_per_call"] == pytest.approx(r["batch"] * one)  # FLOPs grow with the batch, not the precision
        assert r["tflop_per_s"] == pytest.approx(r["gflop_per_call"] / median / 1e3)
        assert r["percent_of_peak"] == pytest.approx(100 * r["tflop_per_s"] / 0.5)
        if r["precision"] == "fp32":  # the same arithmetic as the reference call
            assert r["rel_error_vs_fp32"] < 1e-5
        else:  # bf16 rounds; the zero-initialised output layers were filled, so the error is not the skip's 0
            assert 1e-4 < r["rel_error_vs_fp32"] < 5e-2, r["rel_error_vs_fp32"]
    out = capsys.readouterr().out
    assert out.count("| device | model | batch |") == 1 and out.count("| cpu | tiny, random weights |") == 4
    assert "| compiled |" in out and "% of 0.5 |" in out
    assert json.loads((tmp_path / "benchmark.json").read_text()) == json.loads(json.dumps(results))


def test_calls_only_benchmark_refuses_what_it_cannot_time():
    assert "--frames 100: must be a positive multiple of 64" in run_main(
        "--calls-only", "--preset", "tiny", "--device", "cpu", "--frames", "100")
    assert "CUDA graphs need a GPU" in run_main("--calls-only", "--preset", "tiny", "--device", "cpu", "--cuda-graph")


def test_an_earlier_benchmark_json_is_kept_unless_overwrite(tmp_path):
    (tmp_path / "benchmark.json").write_text("[]\n")
    message = run_main("--calls-only", "--preset", "tiny", "--device", "cpu", "--out", tmp_path)
    assert "benchmark.json exists: pass --overwrite" in message
    assert (tmp_path / "benchmark.json").read_text() == "[]\n"  # refused before any work


def test_an_input_shorter_than_one_stft_window_is_one_error_line(tmp_path):
    sf.write(tmp_path / "short.wav", np.full(100, 0.1, np.float32), 16000)
    args = ("--preset", "tiny", "--device", "cpu", "--steps", "1", "--repeats", "1")
    assert "100 samples at 16 kHz; the benchmark needs at least" in run_main(*args, "--input", tmp_path / "short.wav",
                                                                              "--seconds", "0")
    assert "16 samples at 16 kHz with --seconds 0.001" in run_main(*args, "--seconds", "0.001")


def test_benchmark_on_a_missing_gpu_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "no CUDA device" in run_main("--preset", "tiny", "--device", "cuda")


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        speed.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--preset", "--checkpoint-teacher", "--checkpoint-student", "--device", "--steps", "--repeats",
                   "--warmup", "--seconds", "--input", "--threads", "--seed", "--batch", "--precision", "--compile",
                   "--cuda-graph", "--calls-only", "--frames", "--peak-tflops", "--profile", "--channels-last", "--out", "--overwrite"):
        assert option in text
    assert "(default: 30)" in text and "(default: reference)" in text


# ----------------------------------------------------------------------------- profile of a training update

@pytest.mark.parametrize("name, family", [
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution"),
    ("sm80_xmma_dgrad_implicit_gemm_indexed_wo_smem_bf16bf16_bf16f32_f32_nhwckrsc_nchw", "convolution"),
    ("ampere_scudnn_winograd_128x128_ldg1_ldg4_relu_tile148t_nt_v1", "convolution"),
    ("aten::mkldnn_convolution", "convolution"), ("aten::convolution_backward", "convolution"),
    ("ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_64x3_nn", "matrix multiply"),
    ("aten::addmm", "matrix multiply"),
    ("void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16, __nv_bfloat16, float, false, true>",
     "layout conversion, copies"),
    ("void cudnn::ops::nhwcToNchwKernel<float, float, float, true, false>", "layout conversion, copies"),
    ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)",
     "layout conversion, copies"), ("Memcpy DtoD (Device -> Device)", "layout conversion, copies"),
    ("void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<float, float>", "group norm"),
    ("void at::native::(anonymous namespace)::ComputeFusedParamsCUDAKernel<float>", "group norm"),
    ("aten::native_group_norm_backward", "group norm"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::silu_kernel(at::TensorIteratorBase&)",
     "element-wise"),
    ("aten::silu_backward", "element-wise"),
    ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::MeanOps<float, float>",
     "reduction"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous namespace)::"
     "FusedOptimizerTensorListMetadata<4>, at::native::(anonymous namespace)::FusedAdamMathFunctor<float, 4>",
     "optimizer (Adam, EMA)"), ("Optimizer.step#Adam.step", "optimizer (Adam, EMA)"),
    ("void regular_fft<256u, 16u, 16u, padding_t::none, twiddle_t::none>", "FFT"), ("fft_c2r_kernel", "FFT"),
    ("aten::_fft_r2c", "FFT"), ("Memset (Device)", "other"), ("aten::empty", "other"),
])
def test_kernel_names_fall_into_their_family(name, family):
    assert speed.kernel_family(name) == family


def test_profile_of_distillation_updates_on_cpu_sums_to_the_whole(tmp_path, capsys):
    (r,) = speed.main(["--profile", "distill", "--preset", "tiny", "--device", "cpu", "--batch", "2",
                       "--frames", "64", "--repeats", "1", "--warmup", "1", "--threads", "1", "--out", str(tmp_path)])
    assert r["kind"] == "profile" and r["step"] == "distill" and r["peak_memory_gib"] is None
    assert r["gpu_busy_percent"] is None  # CPU op time is the update's time: no GPU waiting to report
    assert list(r["families_ms_per_update"]) == speed.FAMILIES
    assert sum(r["shares_percent"].values()) == pytest.approx(100)
    assert sum(r["families_ms_per_update"].values()) == pytest.approx(r["profiled_ms_per_update"])
    assert r["shares_percent"]["convolution"] > 20  # a U-Net's update is mostly convolutions on a CPU
    assert r["crops_per_s"] == pytest.approx(2000 / r["time_per_update_ms"])
    assert r["frames_per_s"] == pytest.approx(64 * r["crops_per_s"])
    assert r["top"] and all(k["family"] == speed.kernel_family(k["name"]) for k in r["top"])
    out = capsys.readouterr().out
    assert "| kernel family | CPU self time ms per update | share % |" in out and "crops/s" in out
    assert json.loads((tmp_path / "profile.json").read_text())[0]["table"] == r["table"]


def test_profile_of_teacher_updates_and_what_it_refuses():
    r = speed.profile_training("teacher", "tiny", device="cpu", batch=2, mode="fp32", frames=64, updates=1,
                               warmup=0, threads=1, channels_last=True)
    assert r["step"] == "teacher" and sum(r["shares_percent"].values()) == pytest.approx(100)
    assert r["channels_last"] and r["first_update_s"] > 0
    assert "optimizer (Adam, EMA)" in speed.profile_table(r) and "eager, channels-last" in speed.profile_table(r)
    assert "kernels run for" not in speed.profile_table(r)
    gpu = {**r, "device": "NVIDIA H200", "peak_memory_gib": 10.0, "gpu_busy_percent": 35.4}  # as a GPU run writes it
    assert "peak memory 10.0 GiB" in speed.profile_table(gpu) and "kernels run for 35 % of an update's time" in (
        speed.profile_table(gpu))
    assert "an option of --profile" in run_main("--channels-last", "--device", "cpu")
    assert "bf16 on a GPU" in run_main("--profile", "teacher", "--preset", "tiny", "--device", "cpu",
                                       "--precision", "bf16")
    assert "--frames 100" in run_main("--profile", "teacher", "--preset", "tiny", "--device", "cpu", "--frames", "100")
    assert "add --compile" in run_main("--profile", "teacher", "--preset", "tiny", "--device", "cpu", "--cuda-graph")
    assert "need a GPU" in run_main("--profile", "teacher", "--preset", "tiny", "--device", "cpu", "--cuda-graph",
                                    "--compile")
