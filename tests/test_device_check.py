"""benchmarks/device_check.py, the correctness checks a lent GPU runs, exercised here on the CPU: they pass on the
package, and they catch a device model that computes something else."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("zerosnet_device_check", ROOT / "benchmarks" / "device_check.py")
dc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dc)


def _by_check(path: Path) -> dict[str, dict]:
    return {r["check"]: r for r in json.loads(path.read_text())["results"]}


def test_checks_pass_on_the_package_and_write_json(tmp_path):
    out = tmp_path / "dc.json"
    logs = []
    argv = ["--device", "cpu", "--models", "zerosnet20_tra_cifar", "--no-compile", "--out", str(out)]
    rc = dc.main(argv, logs.append)
    assert rc == 0, "\n".join(logs)
    checks = _by_check(out)
    expected = {"fp32 logits", "fp32 grads", "channels_last logits", "channels_last grads", "grad_ckpt grads"}
    assert expected | {"features_only", "features = intermediates", "forward_intermediates"} == set(checks)
    for name in expected - {"grad_ckpt grads"}:  # a real comparison: float32 is not bit-equal to float64
        assert 0 < checks[name]["err"] < dc.LIMITS[name] / 10, checks[name]
    assert json.loads(out.read_text())["environment"]["device"] == "cpu"
    assert "| zerosnet20_tra_cifar | fp32 grads |" in logs[-2] and logs[-1] == "8 of 8 checks passed"


def test_a_device_model_that_differs_fails_the_checks(tmp_path, monkeypatch):
    make = dc.make_model

    def other_weights_on_float32(name, device, dtype=torch.float32, seed=0):
        return make(name, device, dtype, seed + (dtype == torch.float32))  # the float64 reference keeps seed 0

    monkeypatch.setattr(dc, "make_model", other_weights_on_float32)
    out = tmp_path / "dc.json"
    rc = dc.main(["--device", "cpu", "--models", "preresnet20_cifar", "--no-compile", "--out", str(out)], print)
    checks = _by_check(out)
    assert rc == 1
    assert not checks["fp32 logits"]["ok"] and not checks["fp32 grads"]["ok"]
    assert checks["channels_last grads"]["ok"]  # compared with the device's own NCHW run, same weights


def test_amp_checks_and_fp16_scaler_steps_on_cpu(tmp_path):
    out = tmp_path / "dc.json"
    dc.main(
        ["--device", "cpu", "--models", "tauresnet20_nobn_cifar", "--no-compile", "--cpu-amp", "--fp16-steps", "2",
         "--out", str(out)],
        print,
    )  # fmt: skip
    checks = _by_check(out)
    for key in ("bf16 logits", "bf16 grads", "fp16 logits", "fp16 grads", "fp16 GradScaler steps"):
        assert checks[key]["ok"], checks[key]
    assert 1e-4 < checks["bf16 logits"]["err"] < dc.LIMITS["bf16 logits"]  # rounding, not bit-equal
    assert "2/2 steps taken, final scale" in checks["fp16 GradScaler steps"]["note"]


def test_fp16_check_fails_when_the_scaler_skips_every_step(monkeypatch):
    """Every gradient inf: the GradScaler skips each step and halves its scale; parameters stay finite, so only the
    count of steps taken can tell (the check passed such a run before)."""
    make = dc.make_model

    def poisoned(name, device, train=False):
        model = make(name, device, train=train)
        for p in model.parameters():
            p.register_hook(lambda g: torch.full_like(g, float("inf")))
        return model

    monkeypatch.setattr(dc, "make_model", poisoned)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    err, limit, note = dc.fp16_training("preresnet20_cifar", x, t, torch.device("cpu"), 3)
    assert err > limit and "0/3 steps taken" in note


def test_rel_err_fails_on_nan_and_shape_mismatch():
    a = torch.ones(3)
    assert dc.rel_err(a, a) == 0.0
    assert math.isnan(dc.rel_err(torch.tensor([1.0, float("nan"), 1.0]), a))
    results = []
    dc._record(results, "m", "c", math.nan, 1e-4)
    assert results[0]["ok"] is False
    with pytest.raises(ValueError, match="shapes differ"):
        dc.rel_err(torch.ones(2), a)


def test_compile_failure_is_a_failed_check_with_its_reason(monkeypatch):
    def broken_compile(model, **kwargs):
        raise RuntimeError("graph break in forward\nmore")

    monkeypatch.setattr(torch, "compile", broken_compile)
    args = dc.parse_args(["--device", "cpu", "--models", "preresnet20_cifar"])
    results = []
    m = dc.make_model("preresnet20_cifar", "cpu")
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    dc.compile_check("preresnet20_cifar", m, x, t, None, None, torch.device("cpu"), args, results)
    assert results == [
        dict(
            model="preresnet20_cifar",
            check="compile",
            err=None,
            limit=None,
            ok=False,
            note="RuntimeError: graph break in forward",
        )
    ]


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        dc.parse_args(["--models", "resnet50"])
    with pytest.raises(SystemExit):
        dc.parse_args(["--batch", "1"])


UNWRITABLE = Path("/proc/zerosnet-no-such-folder")  # Linux refuses every folder made in /proc, even to root


@pytest.mark.parametrize(
    "argv, message",
    [
        # a misspelt --compile-models was never compiled: no compile row, and "8 of 8 checks passed"
        (
            ["--compile-models", "zerosnet20_cifr"],
            "--compile-models: ['zerosnet20_cifr'] are not models this script checks; name models of this run's "
            "--models (zerosnet20_cifar,lmresnet20_cifar)",
        ),
        (
            ["--compile-models", "preresnet20_cifar"],
            "'preresnet20_cifar' not in --models, which checks zerosnet20_cifar",
        ),
        (
            ["--no-compile", "--compile-models", "zerosnet20_cifar"],
            "--no-compile and --compile-models zerosnet20_cifar",
        ),
        # --fp16-steps 0 was an IndexError filed as the model crashing
        (["--cpu-amp", "--fp16-steps", "0"], "--fp16-steps 0 (must be at least 1)"),
        # the device was checked for 'cuda' only, and the --out path when the first model had been checked
        (["--device", "foo"], "--device foo: not a device torch knows"),
        (["--out", "."], "--out . is a folder; give the file to write, e.g. device_check.json"),
        (["--out", str(UNWRITABLE / "dc.json")], f"--out {UNWRITABLE / 'dc.json'}: cannot write there"),
    ],
)
def test_options_are_refused_before_the_first_model(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(dc, "check_model", lambda *a: pytest.fail("checked a model before refusing the options"))
    models = ["--models", "zerosnet20_cifar,lmresnet20_cifar"] if "zerosnet20_cifr" in argv else []
    with pytest.raises(SystemExit) as exc:
        dc.main(["--device", "cpu", "--models", "zerosnet20_cifar", *models, *argv], print)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err


def test_compile_models_default_to_those_of_the_run():
    """The default compile list is COMPILE_MODELS among --models; a named one is compiled as named."""
    args = dc.parse_args(["--device", "cpu", "--models", "preresnet20_cifar,lmresnet20_cifar,zerosnet20_cifar"])
    assert args.compile_list == ["zerosnet20_cifar", "lmresnet20_cifar"]  # in COMPILE_MODELS' order
    assert dc.parse_args(["--device", "cpu", "--models", "preresnet20_cifar"]).compile_list == []
    assert dc.parse_args(["--device", "cpu", "--no-compile"]).compile_list == []
    argv = ["--device", "cpu", "--models", "preresnet20_cifar", "--compile-models", "preresnet20_cifar"]
    assert dc.parse_args(argv).compile_list == ["preresnet20_cifar"]


def test_compile_check_runs_fullgraph_and_matches_eager(tmp_path):
    out = tmp_path / "dc.json"
    argv = ["--device", "cpu", "--models", "zerosnet20_tra_cifar", "--compile-models", "zerosnet20_tra_cifar"]
    rc = dc.main([*argv, "--compile-backend", "aot_eager", "--out", str(out)], print)
    checks = _by_check(out)
    assert rc == 0
    for key in ("compile logits", "compile grads"):
        assert checks[key]["ok"] and "aot_eager, fullgraph=True" in checks[key]["note"], checks[key]


def test_learned_strides_are_compiled_with_graph_breaks_allowed(monkeypatch):
    seen = {}

    def fake_compile(model, backend, fullgraph):
        seen["fullgraph"] = fullgraph
        return model  # eager stands in for the compiled model: the comparison then must find no difference

    monkeypatch.setattr(torch, "compile", fake_compile)
    args = dc.parse_args(["--device", "cpu", "--models", "zerosnet18_diffstride_cifar"])
    m = dc.make_model("zerosnet18_diffstride_cifar", "cpu")
    assert dc.has_diffstride(m) and not dc.has_diffstride(dc.make_model("zerosnet20_cifar", "cpu"))
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    out, grad = dc.step(m, x, t)
    results = []
    dc.compile_check("zerosnet18_diffstride_cifar", m, x, t, out, grad, torch.device("cpu"), args, results)
    assert seen == {"fullgraph": False}
    assert [r["check"] for r in results] == ["compile logits", "compile grads"] and all(r["ok"] for r in results)


def test_reason_of_an_exception_without_a_message():
    assert dc._reason(RuntimeError("first line\nsecond")) == "RuntimeError: first line"
    assert dc._reason(KeyError()) == "KeyError: "


_gspec = importlib.util.spec_from_file_location("zerosnet_profile_gpu", ROOT / "benchmarks" / "profile_gpu.py")
profile_gpu = importlib.util.module_from_spec(_gspec)
_gspec.loader.exec_module(profile_gpu)


@pytest.mark.parametrize(
    "kernel, category",
    [  # kernel names as torch.profiler reported them on the H200 (benchmarks/results/gpu_h200/fused/session.log)
        ("combine_backward", "fused combination"),
        (
            "void cudnn::engines_precompiled::nchwToNhwcKernel<__nv_bfloat16, __nv_bfloat16, float, false",
            "layout copies",
        ),
        ("void at::native::batch_norm_backward_kernel<c10::BFloat16, float, float, int>(", "batch norm"),
        ("void at::native::batch_norm_collect_statistics_kernel<at::native::Var, c10::BFloat16", "batch norm"),
        (
            "sm90_xmma_wgrad_indexed_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64",
            "convolution / matmul",
        ),
        (
            "void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_bf16_256x128_64x3_nn_align2>",
            "convolution / matmul",
        ),
        ("void at::native::vectorized_elementwise_kernel<8, at::native::CUDAFunctor_add<c10::BFloat16>", "elementwise"),
        ("void at::native::(anonymous namespace)::max_pool_backward_nchw<c10::BFloat16, float, int>", "other"),
    ],
)
def test_profile_gpu_sorts_kernels_into_categories(kernel, category):
    assert profile_gpu.category(kernel) == category


def test_profile_gpu_rehearsal_on_cpu(capsys):
    """On a CPU device the script profiles CPU ops: one table per run, the plain-ops run after the fused one."""
    argv = ["--device", "cpu", "--models", "zerosnet20_cifar", "--batch", "2", "--warmup", "1", "--steps", "1"]
    assert profile_gpu.main([*argv, "--top", "3", "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.count("## zerosnet20_cifar:") == 2 and "(plain ops, TIMM_ZEROSNET_TRITON=0)" in out
    assert "| convolution / matmul |" in out and out.count("| top kernels | ms / step |") == 2
    # a network without multistep updates has nothing to compare: one run
    assert profile_gpu.main([*argv[:2], "--models", "preresnet20_cifar", *argv[4:], "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.count("## preresnet20_cifar:") == 1 and "plain ops" not in out
    # --phase infer: an eval-mode forward without gradients (no backward, no optimizer), channels_last named
    assert profile_gpu.main([*argv, "--phase", "infer", "--channels-last", "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# bf16 autocast inference forward, channels_last, batch 2, cpu")
    assert out.count("## zerosnet20_cifar:") == 2 and "backward" not in out and "| optimizer |" not in out
    assert "| batch norm |" in out  # eval batch norm is still timed


@pytest.mark.parametrize(
    "argv, message",
    [
        # a GPU-only device on a CPU machine was torch's traceback, 'foo' too
        (["--device", "cuda"], "--device cuda: torch sees no CUDA device here"),
        (["--device", "foo"], "--device foo: not a device torch knows"),
        # --steps 0 printed an empty profile, --batch 0 the profile of an empty batch
        (["--steps", "0", "--batch", "0"], "--batch 0 (must be at least 1); --steps 0 (must be at least 1)"),
        (["--top", "0", "--warmup", "-1"], "--top 0 (must be at least 1); --warmup -1 (must be at least 0)"),
        # a misspelt model failed after the ones before it had been profiled
        (["--models", "zerosnet20_cifar,zerosnet20_cifr"], "--models: unknown 'zerosnet20_cifr'"),
        (["--models", ","], "--models ',' names no model"),
        # weights, not an architecture: hf-hub: was 'unknown ... check the spelling'
        (["--models", "hf-hub:timm/resnet50.a1_in1k"], "'hf-hub:timm/resnet50.a1_in1k' names weights, not an arch"),
    ],
)
def test_profile_gpu_refuses_bad_options_before_profiling(argv, message, monkeypatch, capsys):
    if argv[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    monkeypatch.setattr(profile_gpu, "profile_one", lambda *a: pytest.fail("profiled before refusing the options"))
    with pytest.raises(SystemExit) as exc:
        profile_gpu.main(["--device", "cpu", "--models", "zerosnet20_cifar", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err


def test_bottleneck_nets_have_their_own_autocast_gradient_limits():
    # the 64x64 bottleneck nets' autocast gradients are further from float64 (see LIMITS_BOTTLENECK); the CIFAR nets
    # and every other check keep the common limits
    assert dc.limit("zerosnet50", "bf16 grads") == dc.LIMITS_BOTTLENECK["bf16 grads"] > dc.LIMITS["bf16 grads"]
    assert dc.limit("zerosnet20_cifar", "bf16 grads") == dc.LIMITS["bf16 grads"]
    assert dc.limit("zerosnet50", "fp32 grads") == dc.LIMITS["fp32 grads"]
