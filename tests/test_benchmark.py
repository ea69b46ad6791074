"""Smoke test of benchmarks/benchmark.py with tiny settings: outputs are produced and ratios computed (not timed)."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
import timm
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("zerosnet_benchmark", ROOT / "benchmarks" / "benchmark.py")

TINY = ["--threads", "1", "--batch-size-cifar", "2", "--reps", "2", "--warmup", "1", "--min-rep-s", "0"]
UNWRITABLE = Path("/proc/zerosnet-no-such-folder")  # Linux refuses every folder made in /proc, even to root


def test_quick_run_writes_table_csv_png_and_ratios(tmp_path):
    args = bench.parse_args(
        [
            "--quick",
            "--models",
            "zerosnet20_cifar,preresnet20_cifar",
            "--modes",
            "eager",
            "--out-dir",
            str(tmp_path),
            *TINY,
        ]
    )
    out = bench.run_benchmark(args, log=lambda *a: None)

    # the timm references are added and measured in the same run: timm's pre-activation ResNetV2 (same block type,
    # target 1) and its post-activation ResNet (the 'x post' column and the quick baseline)
    assert list(out["infos"]) == [
        "timm-resnet20_cifar",
        "timm-resnetv2_20_cifar",
        "preresnet20_cifar",
        "zerosnet20_cifar",
    ]
    assert out["infos"]["timm-resnetv2_20_cifar"]["preact"] and not out["infos"]["timm-resnet20_cifar"]["preact"]
    for key in ("md", "csv", "json", "png"):
        assert out["paths"][key].is_file() and out["paths"][key].stat().st_size > 0
    assert out["paths"]["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = {(r["model"], r["phase"]): r for r in out["rows"]}
    assert len(rows) == 8
    for r in rows.values():
        assert r["status"] == "ok" and r["img_s"] > 0 and r["gmacs"] > 0 and r["params_m"] > 0
        assert r["gmac_s"] == pytest.approx(r["gmacs"] * r["macs_factor"] * r["img_s"])
        assert r["img_s_q1"] <= r["img_s"] <= r["img_s_q3"]
        assert r["mem_mb"] is not None
    z = rows[("zerosnet20_cifar", "train")]
    ref, post = rows[("timm-resnetv2_20_cifar", "train")], rows[("timm-resnet20_cifar", "train")]
    assert z["ref"] == "timm-resnetv2_20_cifar" and z["post"] == "timm-resnet20_cifar"
    assert z["euler"] == "preresnet20_cifar"
    assert z["x_ref"] == pytest.approx(z["gmac_s"] / ref["gmac_s"])
    assert z["x_post"] == pytest.approx(z["gmac_s"] / post["gmac_s"])
    assert z["x_euler"] is not None and z["x_base"] is not None
    assert z["x_ref_lo"] <= z["x_ref"] <= z["x_ref_hi"]

    checks = out["checks"]
    assert {c["check"] for c in checks} == {
        "1 efficiency",
        "2 memory @ batch 2 (after the timed steps)",  # in-process (--quick): no memory-only workers
        "2 memory (live tensors, exact) @ batch 2 (after the timed steps)",
    }
    assert all(c["against"] == "timm-resnetv2_20_cifar" for c in checks if c["check"] == "1 efficiency")
    assert z["saved_mb"] > 0 and rows[("zerosnet20_cifar", "infer")].get("saved_mb") is None
    params_mb = z["params_m"] * 4
    assert rows[("zerosnet20_cifar", "infer")]["tensor_mb"] > params_mb and z["tensor_mb"] > 2 * params_mb
    assert all(c["result"].split()[0] in ("PASS", "MISS") for c in checks)

    md = out["paths"]["md"].read_text()
    assert "torch " + torch.__version__ in md and "## Target checks" in md and "| zerosnet20_cifar | eager |" in md
    # the memory of check 2 is not the allocator of a training run, and the tables' mem MB is the timed workers'
    assert "That is not the allocator a training run has" in " ".join(md.split())
    with open(out["paths"]["csv"]) as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 8 and float(csv_rows[0]["img_s"]) > 0
    assert json.loads(out["paths"]["json"].read_text())["checks"] == checks


def _fake_result(model, mode, step_s, mem, **overrides):
    ph = dict(
        first_s=1.0,
        iters=1,
        step_s=step_s,
        mem_mb=mem,
        step_mem_mb=mem / 2,
        peak_mb=mem + 300,
        mem_method="test",
        status="ok",
    )
    ph.update(overrides)
    return dict(model=model, mode=mode, phases={"infer": dict(ph), "train": dict(ph)})


def _info(model, family, preact, params_m, gmacs):
    return dict(
        model=model,
        family=family,
        style="imagenet",
        block="bottleneck",
        preact=preact,
        depth=50,
        img_size=224,
        batch=8,
        params_m=params_m,
        gmacs=gmacs,
    )


def test_ratios_and_checks_on_synthetic_results():
    args = bench.parse_args(["--models", "zerosnet50", "--modes", "eager,compile"])
    infos = {
        "resnet50": _info("resnet50", "timm", False, 25.6, 4.0),
        "resnetv2_50": _info("resnetv2_50", "timm", True, 25.5, 4.0),
        "preresnet50": _info("preresnet50", "preresnet", True, 25.5, 4.0),
        "zerosnet50": _info("zerosnet50", "zerosnet", True, 26.0, 4.2),
    }
    results = [
        _fake_result("resnet50", "eager", [1.0, 1.0, 1.0], 1000),
        _fake_result("resnet50", "compile", [0.8] * 3, 1000),
        _fake_result("resnetv2_50", "eager", [1.05] * 3, 1000),
        _fake_result("resnetv2_50", "compile", [0.84] * 3, 1000),
        _fake_result("preresnet50", "eager", [1.0] * 3, 1000),
        _fake_result("preresnet50", "compile", [0.8] * 3, 1000),
        _fake_result("zerosnet50", "eager", [1.2] * 3, 1150),
        _fake_result("zerosnet50", "compile", [0.84] * 3, 1200),
    ]
    rows = bench.make_rows(infos, results, args)
    idx = {(r["model"], r["mode"], r["phase"]): r for r in rows}
    z = idx[("zerosnet50", "eager", "train")]
    assert z["img_s"] == pytest.approx(8 / 1.2)
    assert z["gmac_s"] == pytest.approx(4.2 * 3 * 8 / 1.2)
    # same block type (pre-activation): timm's ResNetV2; 'x post': timm's post-activation ResNet
    assert (z["ref"], z["post"]) == ("resnetv2_50", "resnet50")
    assert z["x_ref"] == pytest.approx((4.2 / 1.2) / (4.0 / 1.05))  # 0.91875
    assert z["x_post"] == pytest.approx((4.2 / 1.2) / (4.0 / 1.0))  # 0.875
    assert z["x_euler"] == pytest.approx(0.875)
    assert idx[("resnetv2_50", "eager", "train")]["ref"] is None
    assert idx[("resnetv2_50", "eager", "train")]["x_post"] == pytest.approx(1 / 1.05)
    assert idx[("resnet50", "eager", "train")]["post"] is None
    assert idx[("zerosnet50", "compile", "infer")]["compile_speedup"] == pytest.approx(1.2 / 0.84)
    assert idx[("resnet50", "compile", "infer")]["compile_speedup"] == pytest.approx(1.25)

    mem_extra = [
        dict(model="zerosnet50", pair="zerosnet50", batch=32, mem_mb=3090.0, mem_mb_runs=[3090.0], tensor_mb=2774.0),
        dict(model="preresnet50", pair="zerosnet50", batch=32, mem_mb=3000.0, mem_mb_runs=[3000.0], tensor_mb=2682.0),
    ]
    checks = {(c["check"], c["model"], c["phase"], c["mode"]): c for c in bench.run_checks(rows, args, mem_extra)}
    eff = checks[("1 efficiency", "zerosnet50", "train", "eager")]
    assert eff["result"] == "MISS" and eff["measured"] == pytest.approx(0.91875) and eff["against"] == "resnetv2_50"
    assert checks[("1 efficiency", "zerosnet50", "infer", "compile")]["result"] == "PASS"  # 4.2/0.84 / (4/0.84) = 1.05
    assert checks[("1 efficiency", "preresnet50", "train", "eager")]["result"] == "PASS"
    mem = checks[("2 memory @ batch 8 (after the timed steps)", "zerosnet50", "train", "eager")]
    assert mem["measured"] == pytest.approx(1.15) and mem["result"] == "MISS"
    mem32 = checks[("2 memory @ batch 32", "zerosnet50", "train", "eager")]
    assert mem32["measured"] == pytest.approx(1.03) and mem32["result"] == "PASS" and mem32["against"] == "preresnet50"
    exact32 = checks[("2 memory (live tensors, exact) @ batch 32", "zerosnet50", "train", "eager")]
    assert exact32["measured"] == pytest.approx(2774 / 2682)
    spd = checks[("3 compile speed-up", "zerosnet50", "train", "compile")]
    assert spd["measured"] == pytest.approx((1.2 / 0.84) / 1.25) and spd["result"] == "PASS"
    assert "resnetv2_50 (same block type): 1.25x" in spd["detail"]
    assert bench.checks_text(list(checks.values())).count("|") > 10

    # a memory-only process measured the batch of the run as well: its lines replace the timed workers' ones
    pinned = "VmHWM reset before the step, own process, malloc mmap threshold pinned before the model was built"
    mem_extra += [
        dict(model="zerosnet50", pair="zerosnet50", batch=8, mem_mb=1070.0, mem_mb_runs=[1070.0], mem_method=pinned),
        dict(model="preresnet50", pair="zerosnet50", batch=8, mem_mb=1000.0, mem_mb_runs=[1000.0], mem_method=pinned),
    ]
    names = [c["check"] for c in bench.run_checks(rows, args, mem_extra) if c["check"].startswith("2 memory @")]
    assert names == ["2 memory @ batch 32", "2 memory @ batch 8 (memory-only process)"]
    mem8 = next(c for c in bench.run_checks(rows, args, mem_extra) if c["check"].endswith("(memory-only process)"))
    assert mem8["measured"] == pytest.approx(1.07) and mem8["result"] == "PASS"


def _spread_rows():
    """Three rounds of spread-out repetitions (and of memory steps) of zerosnet50 and its reference, equal GMACs, so
    that every statistic below can be worked out by hand from the step times:

    zerosnet50 eager, pooled:  1.0 1.1 1.2 1.6 3.0 s -> q1 1.1, median 1.2, q3 1.6 (mean 1.58)
    resnetv2_50 eager, pooled: 0.9 1.0 1.08 1.2 1.3 s -> q1 1.0, median 1.08, q3 1.2
    (with 5 values, the 'inclusive' quartiles are exactly the 2nd, 3rd and 4th of the sorted values)
    zerosnet50 memory rounds: 1000, 4000, 1100 MB -> median 1100 (mean 2033, sum 6100)."""
    args = bench.parse_args(["--models", "zerosnet50", "--modes", "eager,channels_last,compile,compile_cl"])
    infos = {
        "resnetv2_50": _info("resnetv2_50", "timm", True, 25.5, 4.0),
        "zerosnet50": _info("zerosnet50", "zerosnet", True, 26.0, 4.0),
    }
    results = [
        _fake_result("resnetv2_50", "eager", [1.3, 0.9], 1000),
        _fake_result("zerosnet50", "eager", [1.6, 1.0], 1000, first_s=2.0),
        _fake_result("zerosnet50", "channels_last", [1.0] * 3, 1000),
        _fake_result("zerosnet50", "compile", [0.96] * 3, 1000),
        _fake_result("zerosnet50", "compile_cl", [0.5] * 3, 1000),
        _fake_result("resnetv2_50", "eager", [1.08, 1.2], 1000),  # round 2
        _fake_result("zerosnet50", "eager", [3.0, 1.1], 4000, first_s=1.5),
        _fake_result("resnetv2_50", "eager", [1.0], 1000),  # round 3
        _fake_result("zerosnet50", "eager", [1.2], 1100, first_s=3.0),
    ]
    rows = bench.make_rows(infos, results, args)
    return args, rows, {(r["model"], r["mode"], r["phase"]): r for r in rows}


def test_spread_repetitions_give_median_quartiles_and_the_median_memory_round():
    """step ms is the median of the pooled repetitions (not their mean), img/s q1 / q3 come from the opposite
    quartiles of the step time (batch / q3, batch / q1), min / max from the slowest / fastest step, first s is the
    fastest first step of the rounds, and mem / step mem / peak MB are the median over the memory rounds."""
    _, _, idx = _spread_rows()
    z = idx[("zerosnet50", "eager", "train")]
    assert z["n"] == 5
    assert z["step_ms"] == pytest.approx(1200.0)  # median; the mean would be 1580
    assert z["img_s"] == pytest.approx(8 / 1.2)
    assert (z["img_s_q1"], z["img_s_q3"]) == (pytest.approx(8 / 1.6), pytest.approx(8 / 1.1))
    assert (z["img_s_min"], z["img_s_max"]) == (pytest.approx(8 / 3.0), pytest.approx(8 / 1.0))
    assert z["gmac_s"] == pytest.approx(4.0 * 3 * 8 / 1.2)
    assert (z["gmac_s_q1"], z["gmac_s_q3"]) == (pytest.approx(4.0 * 3 * 8 / 1.6), pytest.approx(4.0 * 3 * 8 / 1.1))
    assert z["first_s"] == 1.5
    assert z["mem_mb"] == pytest.approx(1100)  # median of 1000, 4000, 1100 (mean 2033, sum 6100)
    assert z["step_mem_mb"] == pytest.approx(550) and z["peak_mb"] == pytest.approx(1400)
    assert z["mem_mb_runs"] == [1000, 4000, 1100]
    assert idx[("resnetv2_50", "eager", "infer")]["step_ms"] == pytest.approx(1080.0)


def test_ratio_range_pairs_opposite_quartiles_and_check_one_judges_the_point_value():
    """x ref is the ratio of the GMAC/s medians; its range runs from our q1 over the reference's q3 to our q3 over
    the reference's q1 (in step times: ref q1 / our q3 .. ref q3 / our q1). Check 1 passes on the point value only:
    0.90 with a range 0.625-1.09 that holds 0.95 is a MISS within noise, not a PASS."""
    args, rows, idx = _spread_rows()
    z = idx[("zerosnet50", "eager", "train")]
    assert z["ref"] == "resnetv2_50"
    assert z["x_ref"] == pytest.approx(1.08 / 1.2)  # 0.90
    assert z["x_ref_lo"] == pytest.approx(1.0 / 1.6)  # 0.625 (q1 over q1 would give 1.2 / 1.6 = 0.75)
    assert z["x_ref_hi"] == pytest.approx(1.2 / 1.1)  # 1.0909
    checks = {(c["check"], c["model"], c["phase"], c["mode"]): c for c in bench.run_checks(rows, args)}
    for phase in ("infer", "train"):
        eff = checks[("1 efficiency", "zerosnet50", phase, "eager")]
        assert eff["measured"] == pytest.approx(0.9) and eff["target"] == ">= 0.95"
        assert (eff["lo"], eff["hi"]) == (pytest.approx(0.625), pytest.approx(1.2 / 1.1))
        assert eff["result"] == "MISS (within noise)"


def test_compile_cl_speedup_is_against_channels_last():
    """The compile speed-up is img/s compiled over img/s of the same memory format uncompiled: compile over eager
    (1.2 / 0.96 = 1.25), compile_cl over channels_last (1.0 / 0.5 = 2.0; over eager it would be 2.4)."""
    _, _, idx = _spread_rows()
    for phase in ("infer", "train"):
        assert idx[("zerosnet50", "compile", phase)]["compile_speedup"] == pytest.approx(1.25)
        assert idx[("zerosnet50", "compile_cl", phase)]["compile_speedup"] == pytest.approx(2.0)
        assert idx[("zerosnet50", "channels_last", phase)]["compile_speedup"] is None
        assert idx[("zerosnet50", "eager", phase)]["compile_speedup"] is None


def test_csv_keeps_six_significant_digits(tmp_path):
    """Floats go to the CSV with 6 significant digits: 8 / 1.2 img/s is 6.66667, the range 0.625-1.09091."""
    _, rows, _ = _spread_rows()
    bench.write_csv(tmp_path / "b.csv", rows)
    with open(tmp_path / "b.csv") as f:
        got = {(r["model"], r["mode"], r["phase"]): r for r in csv.DictReader(f)}
    z = got[("zerosnet50", "eager", "train")]
    assert (z["img_s"], z["img_s_q3"], z["step_ms"]) == ("6.66667", "7.27273", "1200")
    assert (z["x_ref"], z["x_ref_lo"], z["x_ref_hi"]) == ("0.9", "0.625", "1.09091")
    assert z["gmac_s"] == "80" and z["mem_mb"] == "1100"
    assert got[("zerosnet50", "compile_cl", "infer")]["compile_speedup"] == "2"


def test_worker_subprocess_and_compile_failure_is_recorded(monkeypatch):
    cfg = dict(
        model="preresnet20_cifar",
        mode="eager",
        phases=["infer", "train"],
        device="cpu",
        amp=False,
        threads=1,
        img_size=32,
        batch=2,
        warmup=1,
        reps=1,
        min_rep_s=0.0,
        max_iters=1,
        compile_backend="inductor",
        compile_mode=None,
    )
    res = bench.run_isolated(cfg, timeout=600)
    assert "error" not in res, res.get("error")
    for phase in ("infer", "train"):
        assert res["phases"][phase]["status"] == "ok" and len(res["phases"][phase]["step_s"]) == 1
        assert res["phases"][phase]["peak_mb"] > 0
    assert res["phases"]["train"]["mem_mb"] >= 0

    def broken_compile(model, **kwargs):
        def run(*a, **k):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

        return run

    monkeypatch.setattr(bench.torch, "compile", broken_compile)
    res = bench.measure(dict(cfg, mode="compile"))
    assert res["phases"]["infer"]["status"].startswith("compile failed: RuntimeError: InvalidCxxCompiler")
    assert "compile_error" in res


def test_model_expansion_pairing_and_cifar_reference():
    names = bench.expand_models("zerosnet2*_cifar, resnet18@32, timm-resnet5*")
    assert names == ["zerosnet20_cifar", "zerosnet20_tra_cifar", "resnet18@32", "timm-resnet56_cifar"]
    with pytest.raises(SystemExit):
        bench.expand_models("no_such_model")
    assert bench.euler_for("zerosnet50_tra") == "preresnet50"
    assert bench.euler_for("lmresnet20_cifar") == "preresnet20_cifar"
    assert bench.euler_for("resnet50") is None

    args = bench.parse_args(["--quick"])
    info = bench.model_info("zerosnet164_cifar", args)
    assert (info["style"], info["block"], info["img_size"], info["preact"]) == ("cifar", "bottleneck", 32, True)
    assert bench.reference_for(info, args) == "timm-resnetv2_164_cifar"
    assert bench.post_reference_for(info, args) == "timm-resnet164_cifar"
    full = bench.parse_args([])  # 224x224 (--quick runs everything at 64x64)
    v2 = bench.model_info("resnetv2_50", full)
    assert (v2["depth"], v2["preact"], bench.reference_for(v2, full)) == (50, True, None)
    assert bench.post_reference_for(v2, full) == "resnet50"
    tau = bench.model_info("tauresnet20_cifar", args)
    assert not tau["preact"] and bench.reference_for(tau, args) == "timm-resnet20_cifar"
    # timm's ResNet of the model's depth (zerosnet34 was compared with resnetv2_18, zerosnet101 with resnetv2_50),
    # and none for a DiffStride net, whose full-resolution convs and pooling no timm ResNet does
    for name, ref, post in (("zerosnet34", "resnetv2_34", "resnet34"), ("lmresnet101", "resnetv2_101", "resnet101")):
        info = bench.model_info(name, full)
        assert (bench.reference_for(info, full), bench.post_reference_for(info, full)) == (ref, post)
        assert bench.count_macs(timm.create_model(ref, device="meta"), (3, 224, 224)) == pytest.approx(
            bench.count_macs(
                timm.create_model(name.replace("zeros", "preres").replace("lm", "pre"), device="meta"), (3, 224, 224)
            ),
            rel=0.01,
        )
    diffstride = bench.model_info("zerosnet18_diffstride_cifar", args)
    assert diffstride["downsample"] == "diffstride" and bench.reference_for(diffstride, args) is None
    assert "zerosnet18_diffstride_cifar" in bench.unreferenced({"zerosnet18_diffstride_cifar": diffstride}, args)
    r18 = bench.model_info("resnet18@32", args)
    assert (r18["style"], r18["block"], r18["img_size"]) == ("cifar", "basic", 32)

    # timm's ResNet and ResNetV2 classes in the CIFAR shape do exactly the conv work of our PreResNet of that depth
    for depth in (20, 164):
        ours = bench.count_macs(timm.create_model(f"preresnet{depth}_cifar", device="meta"), (3, 32, 32))
        for preact in (False, True):
            ref = bench.timm_cifar_resnet(depth, preact=preact)
            assert bench.is_preact(ref) == preact
            assert ref(torch.randn(2, 3, 32, 32)).shape == (2, 10)
            assert bench.count_macs(ref, (3, 32, 32), "cpu") == pytest.approx(ours)


def test_profile_script_variants_are_equivalent_and_restored(capsys):
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    from timm_zerosnet.models import multistep
    from timm_zerosnet.schemes import EulerUpdate, LinearMultistepUpdate, ZeroStableUpdate

    def patched():
        return (
            multistep.F,
            EulerUpdate.forward,
            LinearMultistepUpdate.forward,
            ZeroStableUpdate.forward,
            multistep.Projection.forward,
            multistep.PreActBlock._folded_branch,
            multistep.PreActBlock.forward,
        )

    before = patched()
    names = ("lmresnet20_cifar", "zerosnet20_tra_cifar", "zerosnet20_cifar")
    for name in names:
        prof.check_equivalent(name)
    out = capsys.readouterr().out
    assert out.count("-> same") == len(names) * (len(prof.VARIANTS) - 1) and "DIFFERENT" not in out
    assert "zerosnet20_tra_cifar strided: " in out  # the strided projections are one of the variants
    with prof.variant("history_adjoint"):  # the fixed ZeroSNet's multistep blocks run the variant's Function
        model = timm.create_model("zerosnet20_cifar").train()
        x = torch.randn(2, 16, 8, 8, requires_grad=True)
        out, x_next, last_next = model.stages[0][2](x, x * 2, x * 3)
    assert type(out.grad_fn).__name__ == "_AdjointCombineBackward" and x_next.grad_fn is out.grad_fn
    assert patched() == before
    assert prof.category("aten::convolution_backward") == "convolution"
    assert prof.category("aten::clamp_min") == "activation"
    assert prof.category("aten::add_") == "elementwise add/mul"
    assert prof.category("autograd::engine::evaluate_function: AddBackward0") == "autograd engine / framework"
    # the subsampled 1x1 projections (bmm) and small-batch 1x1 convs were "other aten", a transpose a linear layer,
    # a weight-gradient sum a view
    for op, want in (
        ("aten::bmm", "convolution"),
        ("aten::_slow_conv2d_forward", "convolution"),
        ("aten::_slow_conv2d_backward", "convolution"),
        ("aten::t", "views / metadata"),
        ("aten::sum", "reductions"),
        ("aten::dot", "reductions"),
        ("aten::mm", "pool / linear / loss"),
    ):
        assert prof.category(op) == want, op


def test_profile_script_cost_variants_drop_the_history_terms(monkeypatch, capsys):
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    from timm_zerosnet.models import multistep
    from timm_zerosnet.schemes import ZeroStableUpdate

    x, last, llast = (torch.randn(2, 4, 3, 3, dtype=torch.float64) for _ in range(3))
    before = (ZeroStableUpdate.forward, multistep.Projection.forward)
    for upd in (ZeroStableUpdate(coefficients=(0.25, 0.5, 0.25, 2.0)), ZeroStableUpdate(lam_init=-1.8).double()):
        (a0, a1, a2), (b0, *_) = upd.coefficients()
        f = torch.randn_like(x)
        with prof.variant("no_history"):  # h b0 f + a0 x: the history terms are gone, nothing else changes
            assert torch.allclose(upd(f.clone(), x, last, llast), b0 * f + a0 * x)
        with prof.variant("euler_update"):
            assert torch.equal(upd(f.clone(), x, last, llast), f + x)
        assert torch.allclose(upd(f.clone(), x, last, llast), b0 * f + a0 * x + a1 * last + a2 * llast)
    assert (ZeroStableUpdate.forward, multistep.Projection.forward) == before
    # no_history_projections: a projection of x_{n-1} / x_{n-2} gives zeros outside the graph, the others run, and
    # the blocks keep folding (the update modules are not patched); the history-dropping variants stop the folding
    proj = multistep.Projection(4, 8, 2).double()
    shortcut = multistep.Projection(4, 8, 2).double()
    prof._HISTORY_PROJECTIONS.add(proj)
    folding = multistep.PreActBlock._folded_branch
    with prof.variant("no_history_projections"):
        zeros = proj(x.requires_grad_())
        assert zeros.shape == (2, 8, 2, 2) and not zeros.any() and zeros.grad_fn is None
        assert torch.equal(shortcut(x), shortcut.conv(x)) and multistep.PreActBlock._folded_branch is folding
    with prof.variant("no_history"):
        assert multistep.PreActBlock._folded_branch is not folding
    assert torch.equal(proj(x), proj.conv(x)) and multistep.PreActBlock._folded_branch is folding
    with pytest.raises(ValueError, match="unknown variant 'fused'"):
        with prof.variant("fused"):
            pass
    # the ablation never checks them for equivalence (they change the network), and its table labels them
    checked = []
    monkeypatch.setattr(prof, "check_equivalent", lambda name, variants: checked.append(list(variants)))
    monkeypatch.setattr(prof, "_variant_memory", lambda name, v, args: dict(peak_mb=1.0, saved_mb=1.0))
    argv = ["--ablate", "--models", "zerosnet20_cifar", "--batch", "2", "--reps", "1", "--warmup", "1"]
    assert prof.main([*argv, "--variants", "no_history,strided"]) == 0
    assert checked == [["current", "strided"]]
    assert "| no_history (changes the network: a cost bound) |" in capsys.readouterr().out


def test_profile_script_memory_worker_with_glibc_defaults_or_pinned(monkeypatch, capsys):
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    pins = []
    monkeypatch.setattr(prof, "pin_malloc", lambda: pins.append(1) or True)
    cfg = dict(name="preresnet20_cifar", variant="no_history", batch=2, img_size=32, phase="train", warmup=1)
    cfg.update(channels_last=False, threads=None, mem_steps=1)
    for malloc, n_pins in (("glibc", 0), ("pinned", 1)):  # glibc: the allocator is left as the process has it
        pins.clear()
        prof._mem_worker(json.dumps(dict(cfg, malloc=malloc)))
        got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert len(pins) == n_pins and got["peak_mb"] > 0 and got["saved_mb"] > 0
    with pytest.raises(SystemExit):  # argparse: invalid choice
        prof.main(["--ablate", "--malloc", "jemalloc"])


def test_load_warning_discounts_the_benchmarks_own_threads():
    machine = dict(loadavg_start=(0.2, 0, 0), loadavg_end=(2.1, 0, 0), threads=2, cores=2)
    assert bench.foreign_load(machine) == pytest.approx(0.2)  # the end load is the workers' own 2 threads
    assert bench.foreign_load(dict(machine, loadavg_start=(1.5, 0, 0))) == pytest.approx(1.5)
    assert bench.foreign_load(dict(machine, loadavg_end=(3.9, 0, 0))) == pytest.approx(1.9)
    assert bench.foreign_load(dict(machine, loadavg_start=None)) == 0.0


def test_model_names_sizes_and_pairings_of_the_edge_cases():
    with pytest.raises(ValueError, match="whole number of pixels"):
        bench.split_name("resnet18@0")
    assert bench.split_name("resnet18@1") == ("resnet18", 1)
    # a name given twice, and again inside a wildcard, is measured once, where it first appears
    names = bench.expand_models("resnet18, resnet18, resnet1*")
    assert names[0] == "resnet18" and names.count("resnet18") == 1 and len(set(names)) == len(names)
    assert {"resnet101", "resnet152", "resnet18d"} <= set(names)
    # the PreResNet counterpart drops the variant suffixes (_tra: trainable scheme, _nobn: no batch norm)
    assert bench.euler_for("tauresnet50_nobn") == "preresnet50"
    assert bench.euler_for("tauresnet20_nobn_cifar") == "preresnet20_cifar"
    # only a pre-activation model gets a post-activation reference ('x post'): a post-activation tau-ResNet's
    # 'ref' is already timm's post-activation ResNet
    args = bench.parse_args(["--quick"])
    tau = bench.model_info("tauresnet20_cifar", args)
    assert not tau["preact"] and bench.post_reference_for(tau, args) is None


def test_count_macs_matches_the_published_resnet18():
    """GMACs are multiply-adds (FlopCounterMode's flops / 2): timm's resnet18 at 224 is 1.82 GMACs."""
    gmacs = bench.count_macs(timm.create_model("resnet18", device="meta"), (3, 224, 224))
    assert gmacs == pytest.approx(1.82, rel=0.01)  # counting each multiply-add as 2 would give 3.63


def test_x_base_img_s_compares_images_not_gmacs():
    """x base divides GMAC/s, x base img/s divides img/s: twice the images per second, each of twice the GMACs, is
    4x and 2x."""
    args = bench.parse_args(["--models", "zerosnet50", "--modes", "eager", "--baseline", "resnet50"])
    infos = {
        "resnet50": _info("resnet50", "timm", False, 25.6, 4.0),
        "zerosnet50": _info("zerosnet50", "zerosnet", True, 26.0, 8.0),
    }
    results = [_fake_result("resnet50", "eager", [1.0], 1000), _fake_result("zerosnet50", "eager", [0.5], 1000)]
    rows = bench.make_rows(infos, results, args)
    z = next(r for r in rows if r["model"] == "zerosnet50" and r["phase"] == "train")
    assert z["baseline"] == "resnet50"
    assert z["x_base"] == pytest.approx(4.0)  # 2x the images, each of 2x the GMACs
    assert z["x_base_img_s"] == pytest.approx(2.0)


def test_checks_summary_counts_a_pass_within_noise_as_a_pass():
    def check(result):
        row = dict(check="1", model="m", phase="train", mode="eager", against="r", measured=0.96, lo=0.9, hi=1.0)
        return dict(row, target=">= 0.95", result=result)

    assert bench.verdict(True, 0.9, 1.0, 0.95) == "PASS (within noise)"
    checks = [check("PASS (within noise)"), check("PASS"), check("MISS (within noise)")]
    assert bench.checks_text(checks).splitlines()[-1] == "2/3 PASS, 1 MISS"


def test_report_warns_of_a_load_above_half_the_cores():
    args = bench.parse_args(["--quick"])
    machine = dict(cpu="c", cores=2, threads=1, device="cpu", device_name="c", torch="t", timm="t", python="p")
    machine.update(date="d", loadavg_start=(1.5, 0, 0), loadavg_end=(1.5, 0, 0))
    report = bench.markdown_report(machine, {}, [], [], args)
    assert "WARNING: a load of 1.5 besides this benchmark on 2 cores" in report
    quiet = dict(machine, loadavg_start=(0.9, 0, 0), loadavg_end=(0.9, 0, 0))
    assert "WARNING" not in bench.markdown_report(quiet, {}, [], [], args)


def test_the_baseline_is_measured_and_compiled_with_or_without_auto_add():
    args = bench.parse_args(["--models", "zerosnet20_cifar", "--baseline", "resnet18@32"])
    infos = bench.resolve_models(args)
    assert {"resnet18@32", "preresnet20_cifar", "timm-resnetv2_20_cifar", "timm-resnet20_cifar"} <= set(infos)
    assert "resnet18@32" in bench.compile_selection(infos, args)  # --compile-models auto: the checks' models
    args = bench.parse_args(["--models", "zerosnet20_cifar", "--no-auto-add", "--baseline", "resnet18@32"])
    assert list(bench.resolve_models(args)) == ["resnet18@32", "zerosnet20_cifar"]


def test_memory_jobs_list_each_batch_once_and_need_the_preresnet():
    infos = {
        "preresnet50": _info("preresnet50", "preresnet", True, 25.5, 4.0),
        "zerosnet50": _info("zerosnet50", "zerosnet", True, 26.0, 4.0),
    }
    args = bench.parse_args(["--models", "zerosnet50", "--mem-batch", "8,32"])  # 8: the batch of the run
    assert bench.memory_jobs(infos, args) == [("zerosnet50", 8), ("zerosnet50", 32)]
    # without its PreResNet in the run there is nothing to compare with: no job, and nothing is measured
    alone = {"zerosnet50": infos["zerosnet50"]}
    args = bench.parse_args(["--models", "zerosnet50", "--no-auto-add", "--mem-batch", "32"])
    assert bench.memory_jobs(alone, args) == []

    def never(cfg, _args):
        raise AssertionError(f"measured {cfg['model']}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "run_job", never)
        assert bench.memory_at_batches(alone, args, log=lambda *a: None) == []


def test_rounds_alternate_the_order_of_the_models(tmp_path, monkeypatch):
    order = []
    machine = dict(device_name="x", threads=1, cores=2, cpu="c", device="cpu", torch="t", timm="t", python="p")
    monkeypatch.setattr(bench, "machine_info", lambda args: dict(machine, date="d"))
    monkeypatch.setattr(
        bench, "run_job", lambda cfg, args: order.append(cfg["model"]) or dict(model=cfg["model"], mode=cfg["mode"])
    )
    monkeypatch.setattr(bench, "memory_at_batches", lambda infos, args, log=None: [])
    argv = ["--quick", "--models", "preresnet20_cifar,preresnet32_cifar", "--no-auto-add", "--baseline", ""]
    argv += ["--modes", "eager", "--rounds", "3", "--isolate", "subprocess", "--no-chart", "--out-dir", str(tmp_path)]
    bench.run_benchmark(bench.parse_args(argv), log=lambda *a: None)
    a, b = "preresnet20_cifar", "preresnet32_cifar"
    assert order == [a, b, b, a, a, b]  # neither model always runs first (or last) on a warming machine


def test_memory_at_batches_measures_each_zerosnet_pair_memory_only(monkeypatch):
    args = bench.parse_args(["--models", "zerosnet50", "--mem-batch", "16,32"])
    infos = {
        name: _info(name, fam, True, 25.5, 4.0)
        for name, fam in (("preresnet50", "preresnet"), ("zerosnet50", "zerosnet"))
    }
    cfgs = []

    def fake_run_job(cfg, _args):
        cfgs.append(cfg)
        ph = dict(status="ok", step_s=[], mem_mb=float(cfg["batch"]), mem_mb_runs=[1.0], tensor_mb=2.0, saved_mb=3.0)
        return dict(model=cfg["model"], mode=cfg["mode"], phases={"train": ph})

    monkeypatch.setattr(bench, "run_job", fake_run_job)
    out = bench.memory_at_batches(infos, args, log=lambda *a: None)
    assert [(c["model"], c["batch"]) for c in cfgs] == [  # the batch of the run (8) first, then --mem-batch
        ("zerosnet50", 8),
        ("preresnet50", 8),
        ("zerosnet50", 16),
        ("preresnet50", 16),
        ("zerosnet50", 32),
        ("preresnet50", 32),
    ]
    for c in cfgs:  # eager training, one warm-up step, no timed repetition, the run's memory steps
        assert (c["mode"], c["phases"], c["warmup"], c["reps"], c["mem_steps"]) == ("eager", ["train"], 1, 0, 3)
        assert c["pin_malloc"] == "start"  # glibc's policy fixed before the worker builds the model
    # in-process (no isolation) only the extra batches, and nothing pins this process's allocator
    cfgs.clear()
    bench.memory_at_batches(infos, bench.parse_args(["--isolate", "none", "--mem-batch", "16"]), log=lambda *a: None)
    assert [(c["model"], c["batch"], c["pin_malloc"]) for c in cfgs] == [
        ("zerosnet50", 16, False),
        ("preresnet50", 16, False),
    ]
    assert [(m["model"], m["pair"], m["batch"], m["mem_mb"]) for m in out][:2] == [
        ("zerosnet50", "zerosnet50", 8, 8.0),
        ("preresnet50", "zerosnet50", 8, 8.0),
    ]


def test_memory_only_worker_pins_malloc_before_it_builds_the_model(monkeypatch):
    events = []
    build = bench.setup_model
    monkeypatch.setattr(bench, "pin_malloc", lambda: events.append("pin") or True)
    monkeypatch.setattr(bench, "setup_model", lambda *a, **k: events.append("build") or build(*a, **k))
    args = bench.parse_args(["--quick"])
    info = dict(img_size=32, batch=2)
    for pin, order, method in (
        ("start", ["pin", "build"], "own process, malloc mmap threshold pinned before the model was built"),
        (True, ["build", "pin"], "malloc mmap threshold pinned after the timed steps"),
        (False, ["build"], "VmHWM reset before the step"),
    ):
        events.clear()
        cfg = bench.job_cfg(args, "preresnet20_cifar", info, "eager", phases=["train"], reps=0, pin_malloc=pin)
        ph = bench.measure(cfg)["phases"]["train"]
        assert events == order
        assert ph["mem_method"].endswith(method) and ph["mem_mb"] > 0 and ph["tensor_mb"] > 0


pairs = _load("zerosnet_bench_pairs", ROOT / "benchmarks" / "bench_pairs.py")


def test_paired_ratio_divides_adjacent_repetitions():
    # A does 10% more MACs; repetition by repetition it takes 2x / 1.25x / 1x the reference's time
    r = pairs.paired_ratio([2.0, 2.5, 3.0], [1.0, 2.0, 3.0], gmacs_a=1.1, gmacs_b=1.0)
    assert r["ratio"] == pytest.approx(1.1 / 1.25)
    assert (r["lo"], r["hi"]) == (pytest.approx((0.55 + 0.88) / 2), pytest.approx((0.88 + 1.1) / 2))
    assert (r["a_ms"], r["b_ms"]) == (pytest.approx(2500.0), pytest.approx(2000.0))
    with pytest.raises(ValueError, match="paired repetitions"):
        pairs.paired_ratio([1.0, 2.0], [1.0], 1.0, 1.0)
    assert bench.verdict(False, 0.9, 1.0, 0.95) == "MISS (within noise)"
    assert bench.verdict(True, 0.96, 1.0, 0.95) == "PASS"


def test_malloc_settings_name_what_the_workers_inherit(monkeypatch):
    for key in bench.MALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    assert bench.malloc_settings() == "glibc defaults"
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1073741824")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432")
    assert bench.malloc_settings() == (
        "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432, MALLOC_TRIM_THRESHOLD_=1073741824"
    )


def test_pool_workers_keeps_repetitions_paired_and_lists_each_worker():
    w1 = dict(phases=dict(train=dict(a_s=[2.0, 2.0], b_s=[1.0, 1.0], a_faults=[10, 30], b_faults=[0, 0])))
    w2 = dict(phases=dict(train=dict(a_s=[1.0, 3.0], b_s=[1.0, 3.0], a_faults=[20, 40], b_faults=[5, 5])))
    pooled = pairs.pool_workers([w1, w2], gmacs_a=1.0, gmacs_b=1.0)["train"]
    assert (pooled["a_s"], pooled["b_s"]) == ([2.0, 2.0, 1.0, 3.0], [1.0, 1.0, 1.0, 3.0])
    assert pooled["worker_ratios"] == [0.5, 1.0]
    assert (pooled["a_faults"], pooled["b_faults"]) == (25.0, 2.5)


def test_quick_pair_run_times_model_and_reference_alternately(tmp_path, monkeypatch):
    built = []
    real_create = pairs.bench.create_bench_model
    monkeypatch.setattr(pairs.bench, "create_bench_model", lambda spec: built.append(spec) or real_create(spec))
    args = pairs.parse_args(["--quick", "--out-dir", str(tmp_path), "--reps", "3", "--workers", "2"])
    out = pairs.run_pairs(args, log=lambda *a, **k: None)
    # the second worker builds the reference first (the calls before are the MAC counts)
    assert built[-4:] == ["zerosnet20_cifar", "timm-resnetv2_20_cifar", "timm-resnetv2_20_cifar", "zerosnet20_cifar"]
    assert [(r["model"], r["ref"], r["phase"], r["mode"]) for r in out["rows"]] == [
        ("zerosnet20_cifar", "timm-resnetv2_20_cifar", "infer", "eager"),
        ("zerosnet20_cifar", "timm-resnetv2_20_cifar", "train", "eager"),
    ]
    for r in out["rows"]:
        assert len(r["a_s"]) == len(r["b_s"]) == 6 and min(r["a_s"] + r["b_s"]) > 0
        assert len(r["worker_ratios"]) == 2 and r["a_faults"] >= 0 and r["b_faults"] >= 0
        expect = pairs.paired_ratio(r["a_s"], r["b_s"], r["macs_ratio"], 1.0)["ratio"]
        assert r["ratio"] == pytest.approx(expect)
        assert r["macs_ratio"] > 1.0  # ZeroSNet's transition projections are counted
        assert r["result"].split()[0] in ("PASS", "MISS")
    assert json.loads(out["paths"]["json"].read_text())["rows"][0]["model"] == "zerosnet20_cifar"
    text = out["paths"]["md"].read_text()
    assert "| zerosnet20_cifar | timm-resnetv2_20_cifar | 2 x 32x32 | train | eager |" in text  # batch x size
    assert f"CPU allocator: {bench.malloc_settings()}" in text


def test_pair_worker_runs_in_a_subprocess_and_bad_selections_say_why():
    cfg = dict(
        model="lmresnet20_cifar",
        ref="timm-resnetv2_20_cifar",
        mode="eager",
        phases=["train"],
        batch=2,
        img_size=32,
        threads=1,
        warmup=1,
        reps=2,
        min_rep_s=0.0,
        max_iters=1,
        keep_heap=True,  # a worker may change its own allocator (never this process's)
    )
    res = bench.run_isolated(cfg, timeout=600, script=ROOT / "benchmarks" / "bench_pairs.py")
    assert "error" not in res, res.get("error")
    assert list(res["phases"]) == ["train"] and len(res["phases"]["train"]["a_s"]) == 2
    # with the allocator configured from outside, --keep-heap refuses instead of measuring something else
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
        res = bench.run_isolated(cfg, timeout=600, script=ROOT / "benchmarks" / "bench_pairs.py")
    assert "--keep-heap: CPU allocator left as configured by MALLOC_TRIM_THRESHOLD_" in res["error"]
    with pytest.raises(SystemExit, match="none of the checked families"):
        pairs.run_pairs(pairs.parse_args(["--quick", "--models", "resnet18"]))
    with pytest.raises(SystemExit):
        pairs.parse_args(["--modes", "compile_cl"])
    with pytest.raises(SystemExit):
        pairs.parse_args(["--workers", "0"])


def test_time_alternated_rotates_the_order_and_sizes_repetitions_per_step():
    calls = []
    steps = [lambda i=i: calls.append(i) for i in range(3)]
    t = pairs.time_alternated(steps, warmup=1, reps=3, min_rep_s=0.0, max_iters=5)
    assert calls == [0, 1, 2] + [0, 1, 2] + [1, 2, 0] + [2, 0, 1]  # warm-up, then one rotation per repetition
    assert t["iters"] == [1, 1, 1] and [len(s) for s in t["s"]] == [3, 3, 3] and len(t["faults"][2]) == 3
    # each step gets its own number of calls per repetition: a slow one few, a fast one up to max_iters
    t = pairs.time_alternated([lambda: time.sleep(0.02), lambda: None], 1, 2, min_rep_s=0.05, max_iters=5)
    assert t["iters"][0] in (2, 3) and t["iters"][1] == 5
    assert min(t["s"][0]) >= 0.02 > max(t["s"][1])


speedup = _load("zerosnet_bench_speedup", ROOT / "benchmarks" / "bench_speedup.py")


def test_speedup_ratio_divides_speed_ups_repetition_by_repetition():
    mine = dict(eager_s=[2.0, 3.0, 4.0], compiled_s=[1.0, 1.0, 1.0])  # speed-ups 2, 3, 4
    theirs = dict(eager_s=[2.0, 2.0, 2.0], compiled_s=[2.0, 1.0, 1.0])  # 1, 2, 2
    r = speedup.speedup_ratio(mine, theirs)
    assert r["ratio"] == pytest.approx(2.0)  # median of 2, 1.5, 2
    assert (r["lo"], r["hi"]) == (pytest.approx(1.75), pytest.approx(2.0))
    assert (r["speedup"], r["other_speedup"]) == (pytest.approx(3.0), pytest.approx(2.0))
    with pytest.raises(ValueError, match="same number"):
        speedup.speedup_ratio(mine, dict(eager_s=[1.0], compiled_s=[1.0]))


def test_speedup_ratio_needs_paired_repetitions_and_reports_median_speed_ups():
    even = dict(eager_s=[1.0] * 3, compiled_s=[1.0] * 3)
    with pytest.raises(ValueError, match="same number"):  # our compiled repetitions short of our eager ones
        speedup.speedup_ratio(dict(eager_s=[2.0, 3.0, 4.0], compiled_s=[1.0, 1.0]), even)
    with pytest.raises(ValueError, match="same number"):
        speedup.speedup_ratio(even, dict(eager_s=[1.0] * 3, compiled_s=[1.0, 1.0]))
    # speed-ups 1, 1 and 10: the median is 1 (the mean would be 4)
    r = speedup.speedup_ratio(dict(eager_s=[1.0, 1.0, 10.0], compiled_s=[1.0] * 3), even)
    assert (r["speedup"], r["other_speedup"], r["ratio"]) == (pytest.approx(1.0), 1.0, pytest.approx(1.0))
    r = speedup.speedup_ratio(even, dict(eager_s=[1.0, 1.0, 10.0], compiled_s=[1.0] * 3))
    assert r["other_speedup"] == pytest.approx(1.0)


def test_speedup_pool_keeps_repetitions_paired_and_lists_each_worker():
    def net(e, c):
        return dict(eager_s=e, compiled_s=c)

    w1 = dict(phases=dict(train=[net([2.0], [1.0]), net([1.0], [1.0])]))  # ours 2x, baseline 1x
    w2 = dict(phases=dict(train=[net([3.0], [1.0]), net([4.0], [2.0])]))  # ours 3x, baseline 2x
    pooled = speedup.pool([w1, w2])["train"]
    assert (pooled[0]["eager_s"], pooled[1]["compiled_s"]) == ([2.0, 3.0], [1.0, 2.0])
    assert pooled[0]["worker_ratios"] == [2.0, 1.5]


def test_quick_speedup_run_alternates_eager_and_compiled_steps(tmp_path, monkeypatch):
    built = []
    real_create = speedup.bench.create_bench_model
    monkeypatch.setattr(speedup.bench, "create_bench_model", lambda spec: built.append(spec) or real_create(spec))
    compiled = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(kw) or real_compile(m, **kw))
    # the 'eager' backend: dynamo traces, nothing is code-generated (seconds instead of minutes)
    args = speedup.parse_args(
        ["--quick", "--backend", "eager", "--reps", "3", "--workers", "2", "--out-dir", str(tmp_path)]
    )
    out = speedup.run_speedups(args, log=lambda *a, **k: None)
    names = ["zerosnet20_cifar", "timm-resnet20_cifar", "timm-resnetv2_20_cifar"]
    assert built[-6:] == names + names[1:] + names[:1]  # the second worker builds the other nets first
    assert compiled == [dict(backend="eager")] * 7  # parse_args checks --backend, then 3 nets in each of 2 workers
    assert [(r["model"], r["baseline"], r["ref"], r["phase"]) for r in out["rows"]] == [
        (*names, "infer"),
        (*names, "train"),
    ]
    for r in out["rows"]:
        assert all(len(n["eager_s"]) == len(n["compiled_s"]) == 6 for n in r["nets"])
        assert r["ratio"] == pytest.approx(speedup.speedup_ratio(r["nets"][0], r["nets"][1])["ratio"])
        assert r["x_ref"] == pytest.approx(speedup.speedup_ratio(r["nets"][0], r["nets"][2])["ratio"])
        assert len(r["worker_ratios"]) == 2 and r["result"].split()[0] in ("PASS", "MISS")
    assert json.loads(out["paths"]["json"].read_text())["rows"][1]["phase"] == "train"
    assert "| zerosnet20_cifar | 2 x 32x32 | train |" in out["paths"]["md"].read_text()  # batch x size
    # a failed worker becomes a row that says why, not a ratio
    monkeypatch.setattr(speedup, "measure_speedups", lambda cfg: dict(error="worker exited with 1: boom"))
    out = speedup.run_speedups(args, log=lambda *a, **k: None)
    sizes = dict(batch=2, img_size=32, baseline_batch=2, baseline_img_size=32)
    assert out["rows"] == [
        dict(model=names[0], baseline=names[1], ref=names[2], error="worker exited with 1: boom", **sizes)
    ]
    assert "| zerosnet20_cifar | 2 x 32x32 | - |" in out["text"] and "boom" in out["text"]


def test_speedup_worker_runs_in_a_subprocess_and_bad_selections_say_why():
    nets = [dict(spec=s, batch=2, img_size=32) for s in ("lmresnet20_cifar", "timm-resnet20_cifar")]
    cfg = dict(nets=nets, phases=["train"], threads=1, warmup=1, reps=2, min_rep_s=0.0, max_iters=1, backend="eager")
    cfg.update(model="lmresnet20_cifar", mode="compile")
    res = bench.run_isolated(cfg, timeout=600, script=ROOT / "benchmarks" / "bench_speedup.py")
    assert "error" not in res, res.get("error")
    assert [len(n["compiled_s"]) for n in res["phases"]["train"]] == [2, 2]
    with pytest.MonkeyPatch.context() as mp:  # --keep-heap refuses where the allocator is set from outside
        mp.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
        res = bench.run_isolated(
            dict(cfg, keep_heap=True), timeout=600, script=ROOT / "benchmarks" / "bench_speedup.py"
        )
    assert "--keep-heap: CPU allocator left as configured by MALLOC_TRIM_THRESHOLD_" in res["error"]
    with pytest.raises(SystemExit, match="none of the checked families"):
        speedup.run_speedups(speedup.parse_args(["--quick", "--models", "resnet18"]))
    with pytest.raises(SystemExit, match="--baseline 'resnet_nope'"):
        speedup.run_speedups(speedup.parse_args(["--quick", "--baseline", "resnet_nope"]))
    with pytest.raises(SystemExit):
        speedup.parse_args(["--phases", "eval"])


keep = _load("zerosnet_bench_keep_heap", ROOT / "benchmarks" / "bench_keep_heap.py")


def test_keep_heap_summary_pairs_the_rounds():
    run = lambda mode, s, f, rss: dict(mode=mode, step_s=s, faults=f, peak_rss_mb=rss)  # noqa: E731
    runs = [run("default", 2.0, 100, 10), run("kept", 1.0, 0, 12), run("kept", 3.0, 2, 14), run("default", 3.0, 50, 10)]
    s = keep.summarize(runs)
    assert s["time_ratio"] == pytest.approx((0.5 + 1.0) / 2)
    assert (s["default_ms"], s["kept_ms"]) == (pytest.approx(2500.0), pytest.approx(2000.0))
    assert (s["default_faults"], s["kept_faults"], s["kept_rss_mb"]) == (75, 1, 13)
    with pytest.raises(ValueError, match="one default and one kept"):
        keep.summarize(runs[:3])


def test_keep_heap_quick_run_never_writes_over_the_published_result():
    assert keep.parse_args(["--quick"]).out == str(bench.QUICK_RESULTS / "keep_heap.md")
    assert keep.parse_args([]).out == str(bench.RESULTS / "keep_heap.md")
    assert keep.parse_args(["--quick", "--out", "x.md"]).out == "x.md"


def test_keep_heap_quick_run_measures_both_settings_in_workers(monkeypatch, tmp_path):
    for key in bench.MALLOC_ENV:  # ALLOCATOR_ENV and the arena count
        monkeypatch.delenv(key, raising=False)
    out = keep.run(keep.parse_args(["--quick", "--out", str(tmp_path / "k.md")]), log=lambda *a, **k: None)
    assert "| lmresnet20_cifar | 2 |" in (tmp_path / "k.md").read_text()
    s = out["lmresnet20_cifar"]
    assert s["default_ms"] > 0 and s["kept_ms"] > 0 and s["time_ratio"] > 0
    assert s["default_rss_mb"] > 0 and s["kept_rss_mb"] > 0
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    with pytest.raises(SystemExit, match="unset MALLOC_TRIM_THRESHOLD_"):
        keep.run(keep.parse_args(["--quick", "--out", str(tmp_path / "k.md")]))


def test_projection_benchmark_checks_the_forms_and_prints_ratios(capsys, monkeypatch):
    proj = _load("zerosnet_bench_projection", ROOT / "benchmarks" / "bench_projection.py")
    proj.main(["--reps", "1", "--inner", "1", "--shapes", "1", "--threads", "1"])
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in next(line for line in lines if line.startswith("| batch")).split("|")]
    rows = [[c.strip() for c in line.split("|")] for line in lines if line.startswith("| 64, 16 -> 32")]
    assert [row[header.index("phase")] for row in rows] == ["infer", "train"]
    assert all(float(row[header.index("strided / package")]) > 0 for row in rows)
    assert {row[header.index("Projection runs")] for row in rows} == {"package"}  # 16x16 outputs
    # 1024 -> 2048 channels, 7x7 outputs: the two phases run different convs (both were labelled "conv")
    assert proj.form_used(proj.SHAPES[-1], "infer") == "strided conv (output < 8x8)"
    assert proj.form_used(proj.SHAPES[-1], "train") == "subsampled conv (output < 8x8)"
    # a form that computed something else is caught before anything is timed
    right = lambda x, w, s=2: torch.conv2d(x, w, stride=s)  # noqa: E731
    monkeypatch.setattr(proj, "forms", lambda s: {"a": right, "b": lambda x, w: right(x, w * 1.01)})
    with pytest.raises(AssertionError):
        proj.check_agree(proj.SHAPES[0])
    from timm_zerosnet.models.multistep import Projection

    calls = []
    monkeypatch.setattr(
        torch.nn.functional, "conv2d", lambda x, w, *a: calls.append(tuple(x.shape[-2:])) or right(x, w)
    )
    projection = Projection(8, 16, stride=2)
    x = torch.randn(1, 8, 14, 14)
    with torch.no_grad():
        projection(x)
    projection(x)
    assert calls == [(14, 14), (7, 7)]  # what the labels say: the strided conv, then the subsampled one


def test_cuda_memory_step_subtracts_what_was_allocated_before_the_model(monkeypatch):
    """On CUDA, mem MB is the allocator peak of the step less the memory in use before the model was built (what
    earlier in-process models left); the step's own growth is peak less what was allocated just before it."""
    allocated = {"now": 700 * 2**20, "peak": 0}
    calls = []

    def step():
        calls.append("step")
        allocated["peak"] = allocated["now"] + 300 * 2**20

    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: allocated["peak"])
    res = bench.memory_step(step, lambda: None, torch.device("cuda"), rss_base=200.0, can_reset=False)
    assert calls == ["reset", "step"]
    assert res["peak_mb"] == 1000 and res["mem_mb"] == 800 and res["step_mem_mb"] == 300
    assert res["mem_method"].startswith("cuda max_memory_allocated, less")


def test_cuda_device_gets_the_index_set_device_needs():
    assert bench.cuda_device(torch.device("cuda")) == torch.device("cuda", 0)
    assert bench.cuda_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="specified index"):  # why: every GPU measurement failed on this
        torch.cuda.set_device(torch.device("cuda"))


def test_quick_keeps_224_style_models_in_their_style():
    """--quick runs everything at 64 x 64; a 224-style model keeps its batch and its reference of the same block
    type (it was taken for a CIFAR net and paired with a 3-stage CIFAR ResNet); an explicit @32 asks for CIFAR."""
    args = bench.parse_args(["--quick", "--models", "zerosnet50"])
    info = bench.model_info("zerosnet50", args)
    assert (info["style"], info["img_size"], info["batch"], info["block"]) == ("imagenet", 64, 2, "bottleneck")
    assert bench.reference_for(info, args) == "resnetv2_50"
    assert bench.model_info("resnetv2_50", args)["img_size"] == 64
    assert bench.model_info("resnet18@32", args)["style"] == "cifar"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reps", "0"], "--reps 0 (must be at least 1)"),
        (["--rounds", "0"], "--rounds 0 (must be at least 1)"),
        (["--batch-size-cifar", "0"], "--batch-size-cifar 0"),
        (["--phases", ","], "--modes and --phases need at least one entry each"),
        (["--device", "cuda"], "torch sees no CUDA device here"),
        (["--no-auto-add", "--baseline", "nosuchnet"], "'nosuchnet' is not a known model"),
        (["--threads", "0"], "--threads 0 (must be at least 1)"),  # was a traceback in every worker
        (["--max-iters", "0"], "--max-iters 0 (must be at least 1)"),  # was a run of empty repetitions
        (["--mem-steps", "0", "--eff-tol", "1.5"], "--mem-steps 0 (must be at least 1); --eff-tol 1.5"),
        (["--worker-timeout", "-1"], "--worker-timeout -1.0 (must be above 0)"),
        (["--worker-timeout", "0"], "--worker-timeout 0.0 (must be above 0)"),
        (["--eff-tol", "1"], "--eff-tol 1.0 (must be in [0, 1))"),
        (["--mem-batch", "0"], "--mem-batch [0]: batches must be at least 1"),
        (["--timer", "cpu", "--threads", "2"], "--timer cpu needs --device cpu --threads 1"),
        # a misspelt reference silently dropped every ratio against it
        (["--ref-preact-cifar", "timm-resnetv2_{depht}_cifar"], "--ref-preact-cifar 'timm-resnetv2_{depht}_cifar'"),
        (["--ref-bottleneck", "resnet05"], "--ref-bottleneck 'resnet05': not a known model"),
        (["--ref-basic", "resnet18@x"], "--ref-basic 'resnet18@x': not a known model"),  # was a ValueError traceback
        (["--ref-cifar", "timm-resnet{depth[0]}_cifar"], "--ref-cifar 'timm-resnet{depth[0]}_cifar'"),  # TypeError
        # a misspelt compile backend or mode ended every compiled measurement in an error row, after the eager ones
        (["--modes", "eager,compile", "--compile-backend", "inductr"], "Invalid backend: 'inductr'"),
        (["--modes", "compile_cl", "--compile-mode", "max-autotun"], "Unrecognized mode=max-autotun"),
        # an empty --models ran no model and wrote empty tables; an unknown one was refused only after --out-dir
        (["--models", ","], "--models ',' names no model; give names, wildcards or a set (default, imagenet-basic)"),
        (["--models", "zerosnet20_cifar,zerosnet21_cifar"], "--models: unknown model 'zerosnet21_cifar'"),
        # a name of weights: a tag was timm's 'Invalid pretrained tag' traceback for its reference pair, hf-hub:
        # 'unknown model'; what is measured does not depend on weights
        (["--models", "zerosnet20_cifar.digits"], "'zerosnet20_cifar.digits' names weights, not an architecture"),
        (["--models", "hf-hub:timm/resnet50.a1_in1k"], "names weights, not an architecture: the benchmarks build"),
        (["--models", "zerosnet20_cifar.digits@32"], "; pass zerosnet20_cifar"),
        # a compile option without a compiled mode compiled nothing, silently
        (["--modes", "eager", "--compile-mode", "max-autotune"], "--modes eager has none; add compile"),
        (["--modes", "eager,channels_last", "--compile-backend", "aot_eager"], "--modes eager,channels_last has none"),
        (["--modes", "eager", "--compile-models", "zerosnet20_cifar"], "--compile-models apply to the compiled modes"),
        # any device string is checked here: 'foo' ended every worker in an error row (a report of them), and a device
        # torch cannot use here in a traceback from the in-process warm-up (--quick)
        (["--device", "foo"], "--device foo: not a device torch knows (Expected one of cpu, cuda"),
        (["--device", "cuda:x"], "--device cuda:x: not a device torch knows"),
        (["--device", "meta"], "--device meta: meta tensors hold no data"),
        # '' wrote hidden .md / .csv files, a '/' was "cannot write there" about --out-dir
        (["--tag", ""], "--tag '': give a file name stem"),
        (["--tag", "gpu/run1"], "--tag 'gpu/run1': give a file name stem (no '/'"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(extra, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--quick", "--models", "zerosnet20_cifar", *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_references_given_as_options_are_still_used():
    """The reference check accepts what the defaults and the help name: templates with {depth}, timm's nets."""
    args = bench.parse_args(["--ref-cifar", "resnet18@32", "--ref-preact-bottleneck", "resnetv2_50d"])
    assert bench.reference_for(bench.model_info("zerosnet20_cifar", args), args, "post") == "resnet18@32"
    assert bench.reference_for(bench.model_info("zerosnet50", args), args) == "resnetv2_50d"
    # a template known at another depth than 20 (timm's resnet18 at 32x32 for the CIFAR ResNet-18)
    args = bench.parse_args(["--ref-cifar", "resnet{depth}@32", "--ref-preact-cifar", "resnetv2_{depth}@32"])
    assert bench.reference_for(bench.model_info("preresnet18_cifar", args), args, "post") == "resnet18@32"
    # ... and the models it names none for are listed, not left out without a word
    infos = {s: bench.model_info(s, args) for s in ("preresnet18_cifar", "zerosnet20_cifar", "resnet18@32")}
    assert bench.unreferenced(infos, args) == ["zerosnet20_cifar"]


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("pairs", ["--threads", "0"], "--threads 0 (must be at least 1)"),
        ("pairs", ["--min-rep-s", "-1", "--eff-tol", "2"], "--min-rep-s -1.0 (must be at least 0); --eff-tol 2.0"),
        ("speedup", ["--batch-size-cifar", "0"], "--batch-size-cifar 0 (must be at least 1)"),
        ("speedup", ["--img-size", "-5"], "--img-size -5 (must be at least 1)"),
        ("profile", ["--steps", "0"], "--steps 0 (must be at least 1)"),
        ("profile", ["--row-limit", "0"], "--row-limit 0: give a number of rows (at least 1), or -1 for all"),
        ("profile", ["--warmup", "-1"], "--warmup -1 (must be at least 0)"),
    ],
)
def test_the_other_benchmark_scripts_refuse_numbers_out_of_range(script, argv, message, capsys):
    """They ended in tracebacks (torch.set_num_threads(0)) or ran and measured nothing (--max-iters 0)."""
    if script == "profile":
        parse = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py").main
    else:
        parse = (pairs if script == "pairs" else speedup).parse_args
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_output_folders_under_a_file_and_unknown_names_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    """bench_pairs, bench_speedup and bench_keep_heap wrote their results only after the whole measurement, into an
    --out-dir / --out under a file: a NotADirectoryError traceback that lost the run; bench_speedup's misspelt
    --backend was a traceback from torch._dynamo in-process (--quick), profile_multistep's unknown model timm's
    RuntimeError after the models before it had been profiled, and its empty --models a run that printed nothing."""
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    monkeypatch.setattr(prof, "build", lambda *a: pytest.fail("built a model before refusing the options"))
    taken = tmp_path / "taken"
    taken.write_text("x")
    profile = ["--batch", "1", "--steps", "1", "--warmup", "0"]
    cases = [
        (pairs.parse_args, ["--quick", "--out-dir", str(taken)], f"--out-dir {taken}: {taken} is a file"),
        (pairs.parse_args, ["--quick", "--out-dir", str(taken / "sub")], f"--out-dir {taken / 'sub'}: {taken} is a"),
        (speedup.parse_args, ["--quick", "--out-dir", str(taken / "sub")], "and the results are written into a folder"),
        (speedup.parse_args, ["--quick", "--backend", "inductr"], "--backend 'inductr': Invalid backend: 'inductr'"),
        (keep.parse_args, ["--quick", "--out", str(taken / "k.md")], f"--out {taken / 'k.md'}: {taken} is a file"),
        (keep.parse_args, ["--quick", "--out", str(tmp_path)], f"--out {tmp_path} is a folder; give the file to"),
        (prof.main, ["--models", "zerosnet20_cifar,nosuchnet", *profile], "--models: unknown 'nosuchnet'"),
        (prof.main, ["--ablate", "--models", "nosuchnet", "--batch", "1"], "--models: unknown 'nosuchnet'"),
        (prof.main, ["--models", ",", *profile], "--models ',' names no model"),
        (prof.main, ["--models", "zerosnet20_cifar@64", *profile], "takes no NAME@SIZE; pass --img-size instead"),
        (prof.main, ["--models", "zerosnet20_cifar", "--trace-dir", str(taken / "t"), *profile], f"{taken} is a file"),
    ]
    for parse, argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            parse(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err, (argv, err)
    assert taken.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_profile_comparison_takes_minus_one_for_every_row(capsys):
    """--row-limit -1 is torch's 'all rows'; the comparison table sliced [:-1] and dropped the last op."""
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    ops = {f"aten::op{i}": dict(calls=1, self_ms=float(i), self_mb=0.0) for i in range(3)}
    totals = dict(step_ms=3.0, mem_mb=1.0, saved_mb=1.0, params=1)
    a = dict(name="a", ops=ops, **totals)
    b = dict(name="b", ops={"aten::op0": dict(calls=1, self_ms=1.0, self_mb=0.0)}, **totals)
    prof.compare(a, b, -1)
    out = capsys.readouterr().out
    assert all(f"| aten::op{i} |" in out for i in range(3))


def test_profile_comparison_ratios_are_the_first_model_over_the_second(capsys):
    """The summary line divides the first model's step time, peak RSS growth and saved activations by the
    second's, and the category table's shares and deltas follow the same order."""
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    a = dict(name="a", ops={"aten::add": dict(calls=2, self_ms=3.0, self_mb=0.0)})
    b = dict(name="b", ops={"aten::add": dict(calls=1, self_ms=1.0, self_mb=0.0)})
    a.update(step_ms=150.0, mem_mb=300.0, saved_mb=60.0, params=2_000_000)
    b.update(step_ms=100.0, mem_mb=100.0, saved_mb=40.0, params=1_000_000)
    prof.compare(a, b, 5)
    out = capsys.readouterr().out
    assert "150 ms vs 100 ms (1.500x)" in out
    assert "300 MB vs 100 MB (3.000x)" in out and "60 MB vs 40 MB (1.500x)" in out
    assert "params 2.00 M vs 1.00 M" in out and "| aten::add | 2 | 3.0 | 0 | 1 | 1.0 | 0 | +2.0 |" in out


def test_a_compile_models_pattern_that_matches_nothing_is_refused(tmp_path, monkeypatch):
    """A misspelt pattern left those models out of the compile modes without a word."""
    monkeypatch.setattr(bench, "machine_info", lambda args: {})
    argv = ["--quick", "--models", "zerosnet20_cifar", "--modes", "compile", "--out-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"--compile-models: 'zerosnt\*' matches no model of this run"):
        bench.run_benchmark(bench.parse_args([*argv, "--compile-models", "zerosnt*"]), log=lambda *a: None)
    args = bench.parse_args([*argv, "--compile-models", "zero*,timm-resnetv2_*"])
    assert bench.compile_selection(bench.resolve_models(args), args) == {"zerosnet20_cifar", "timm-resnetv2_20_cifar"}


def test_an_unwritable_out_dir_is_refused_before_the_sweep(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")

    def never(*args, **kwargs):
        raise AssertionError("measured before checking --out-dir")

    monkeypatch.setattr(bench, "machine_info", never)
    args = bench.parse_args(["--quick", "--models", "zerosnet20_cifar", "--out-dir", str(blocker / "sub")])
    with pytest.raises(SystemExit, match="file is a file, and the results are written into a folder; choose a folder"):
        bench.run_benchmark(args, log=lambda *a: None)


def test_quick_runs_never_write_over_the_published_results():
    """--quick writes to benchmarks/results/quick (git-ignored), a full run to benchmarks/results; --out-dir wins."""
    results = ROOT / "benchmarks" / "results"
    for parse in (bench.parse_args, pairs.parse_args, speedup.parse_args):
        assert Path(parse(["--quick"]).out_dir) == results / "quick", parse
        assert Path(parse([]).out_dir) == results, parse
        assert parse(["--quick", "--out-dir", "/tmp/x"]).out_dir == "/tmp/x", parse


def test_an_explicit_size_keeps_the_reference_of_the_same_skeleton_at_that_size():
    """zerosnet50@128 is compared with resnetv2_50@128 (it was resnetv2_50 at 224), zerosnet50@64 with
    resnetv2_50@64 (it was a basic-block CIFAR net); the CIFAR models and the defaults are unchanged."""
    args = bench.parse_args(["--no-auto-add"])
    expected = {
        "zerosnet50@128": ("resnetv2_50@128", "resnet50@128"),
        "zerosnet50@64": ("resnetv2_50@64", "resnet50@64"),
        "lmresnet18@96": ("resnetv2_18@96", "resnet18@96"),
        "zerosnet50": ("resnetv2_50", "resnet50"),
        "zerosnet20_cifar": ("timm-resnetv2_20_cifar", "timm-resnet20_cifar"),
    }
    for spec, (pre, post) in expected.items():
        info = bench.model_info(spec, args)
        assert (bench.reference_for(info, args), bench.post_reference_for(info, args)) == (pre, post), spec


def test_every_benchmark_script_is_in_the_readme_table():
    """bench_train_overhead.py and profile_gpu.py were missing from the table of scripts that opens the README."""
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    table = readme.split("\n\n")[1]  # the table right under the title
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    scripts = {p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".py", ".sh")}
    assert scripts <= listed, sorted(scripts - listed)


def test_train_overhead_names_the_allocator_both_arms_ran_on(tmp_path, capsys):
    """The wrapper arm stood for zerosnet-train's loop but ran on glibc's defaults, where zerosnet-train keeps the
    heap on CPU; the allocator is now chosen (--keep-heap by default) and reported with the ratio."""
    overhead = _load("zerosnet_bench_train_overhead", ROOT / "benchmarks" / "bench_train_overhead.py")
    out = tmp_path / "new" / "overhead.json"  # a folder that does not exist yet is made (it was a traceback)
    argv = ["--rounds", "1", "--train-num-samples", "64", "--json", str(out), "--no-keep-heap"]
    assert overhead.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["cpu_allocator"] == "glibc's defaults (--no-keep-heap)"
    assert result["images_per_epoch"] == 64 and result["ratio_images_per_s"] > 0
    assert "CPU allocator: glibc's defaults (--no-keep-heap)" in capsys.readouterr().out
    assert overhead.build_parser().parse_args([]).keep_heap is True


def test_train_overhead_refuses_bad_numbers_and_outputs_before_training(tmp_path, monkeypatch, capsys):
    """--rounds 0 and --threads 0 were tracebacks (from statistics after the warm-up epochs, from torch), a
    --train-num-samples of 0 silently trained on every sample, and a --json under a file or naming a folder lost the
    run at its end; all are usage errors now, before any allocator or training is set up."""
    overhead = _load("zerosnet_bench_train_overhead", ROOT / "benchmarks" / "bench_train_overhead.py")
    monkeypatch.setattr(overhead, "keep_heap", lambda: pytest.fail("set up the allocator before refusing"))
    monkeypatch.setattr(overhead.Trainer, "from_args", lambda *a: pytest.fail("trained before refusing"))
    monkeypatch.setattr(overhead.torch, "set_num_threads", lambda n: pytest.fail(f"set {n} threads before refusing"))
    taken = tmp_path / "taken"
    taken.write_text("x")
    cases = [
        (["--rounds", "0"], "--rounds 0 (must be at least 1)"),
        (["--threads", "0"], "--threads 0 (must be at least 1)"),
        (["--train-num-samples", "0"], "--train-num-samples 0 (must be at least 1)"),
        # was zerosnet-train's ValueError traceback, advising its --batch-size, which this script does not take
        (["--train-num-samples", "31"], "--train-num-samples 31: an epoch needs at least one batch of the digits_demo"),
        (["--json", str(UNWRITABLE / "o.json")], f"--json {UNWRITABLE / 'o.json'}: cannot write there"),
        (["--json", str(taken / "o.json")], f"--json {taken / 'o.json'}: {taken} is a file"),
        (["--json", str(tmp_path)], f"--json {tmp_path} is a folder; give the file to write"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            overhead.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err, (argv, err)
    assert taken.read_text() == "x"


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("bench_lm_backward", ["--reps", "0"], "--reps 0 (must be at least 1)"),
        ("bench_lm_backward", ["--threads", "0"], "--threads 0 (must be at least 1)"),
        ("bench_lm_backward", ["--models", ","], "names no model"),
        (
            "bench_lm_backward",
            ["--models", "lmresnet20_cifar,zerosnet20_cifar"],
            "'zerosnet20_cifar': not an LM-ResNet",
        ),
        ("bench_lm_backward", ["--models", "lmresnet_typo"], "'lmresnet_typo': not an LM-ResNet"),
        ("bench_diffstride", ["--reps", "0"], "--reps 0 (must be at least 1)"),
        ("bench_diffstride", ["--batch", "0", "--size", "-1"], "--batch 0 (must be at least 1); --size -1"),
        ("bench_diffstride", ["--stride", "nan"], "--stride nan: a downsampling stride is at least 1"),
        ("bench_diffstride", ["--stride", "0.5"], "--stride 0.5: a downsampling stride is at least 1"),
        ("bench_diffstride", ["--device", "foo"], "--device foo: not a device torch knows"),  # was a traceback
        ("bench_projection", ["--inner", "0"], "--inner 0 (must be at least 1)"),
        ("bench_projection", ["--shapes", "999"], "--shapes 999: there are"),
    ],
)
def test_small_benchmark_scripts_refuse_bad_options_before_anything_runs(script, argv, message, monkeypatch, capsys):
    """bench_lm_backward, bench_diffstride and bench_projection took any number: --reps 0 ended in a statistics
    traceback, --threads 0 in torch's, an unknown model in timm's after the others had been timed, and a model
    without LM-ResNet updates was timed against itself (a ratio of 1 that meant nothing)."""
    module = _load(f"zerosnet_{script}", ROOT / "benchmarks" / f"{script}.py")
    monkeypatch.setattr(module.torch, "set_num_threads", lambda n: pytest.fail("set threads before refusing"))
    monkeypatch.setattr(module.torch, "randn", lambda *a, **k: pytest.fail("built inputs before refusing"))
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err


def test_outputs_that_cannot_be_written_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    """bench_pairs, bench_speedup, bench_keep_heap and profile_multistep checked only for a file in the way: a folder
    that cannot be made or written in (here in /proc) ended the run in a traceback when it wrote its results, after
    the whole measurement. benchmark.check_output is the one check of them all, benchmark.py's included."""
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    monkeypatch.setattr(prof, "build", lambda *a: pytest.fail("built a model before refusing the options"))
    cases = [
        (pairs.parse_args, ["--quick", "--out-dir", str(UNWRITABLE)], f"--out-dir {UNWRITABLE}: cannot write there"),
        (speedup.parse_args, ["--quick", "--out-dir", str(UNWRITABLE / "a")], "cannot write there"),
        (keep.parse_args, ["--quick", "--out", str(UNWRITABLE / "k.md")], f"--out {UNWRITABLE / 'k.md'}: cannot write"),
        (prof.main, ["--models", "zerosnet20_cifar", "--trace-dir", str(UNWRITABLE)], "cannot write there"),
    ]
    for parse, argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            parse(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and "pass another" in err, (argv, err)
    monkeypatch.setattr(bench, "machine_info", lambda args: pytest.fail("measured before checking --out-dir"))
    args = bench.parse_args(["--quick", "--models", "zerosnet20_cifar", "--out-dir", str(UNWRITABLE)])
    with pytest.raises(SystemExit, match=f"--out-dir {UNWRITABLE}: cannot write there"):
        bench.run_benchmark(args, log=lambda *a: None)


def test_check_output_leaves_nothing_behind_and_accepts_new_folders(tmp_path):
    """The probe makes the missing folders and a file, and removes them again: a check that passes (or a usage
    error found after it) leaves no trace; the scripts make the folders when they write."""
    bench.check_output(None, "--out-dir", tmp_path / "a" / "b")
    bench.check_output(None, "--out", tmp_path / "c" / "r.json", file_example="r.json")
    (tmp_path / "r.md").write_text("earlier result")
    bench.check_output(None, "--out", tmp_path / "r.md", file_example="r.md")  # an earlier result is written over
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["r.md"] and (tmp_path / "r.md").read_text() == "earlier result"
    )
    with pytest.raises(SystemExit, match=f"--out {tmp_path} is a folder; give the file to write, e.g. {tmp_path}/r.md"):
        bench.check_output(None, "--out", tmp_path, file_example="r.md")
    with pytest.raises(SystemExit, match=f"{tmp_path / 'r.md'} is a file, and the results are written into a folder"):
        bench.check_output(None, "--out-dir", tmp_path / "r.md" / "sub")


def test_keep_heap_refuses_bad_sizes_threads_and_models_before_the_first_worker(monkeypatch, capsys):
    """--batch-size-cifar 0 wrote a table of empty-batch timings, --threads 0 silently meant all cores (benchmark.py
    and the others refuse it), and a misspelt second model threw away the first one's measurement."""
    # (keep imports benchmark.py as a module of its own: patch that one)
    monkeypatch.setattr(keep.bench, "run_isolated", lambda *a, **k: pytest.fail("started a worker before refusing"))
    cases = [
        (["--batch-size-cifar", "0"], "--batch-size-cifar 0 (must be at least 1)"),
        (["--batch-size", "-2"], "--batch-size -2 (must be at least 1)"),
        (["--threads", "0"], "--threads 0 (must be at least 1)"),
        (["--models", "lmresnet20_cifar,lmresnet20_cifr"], "--models: unknown 'lmresnet20_cifr'"),
        (["--models", ","], "--models ',' names no model"),
        (["--models", "lmresnet20_cifar@64"], "this script takes no NAME@SIZE"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            keep.run(keep.parse_args(["--quick", *argv]))
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err, (argv, err)
    assert keep.parse_args(["--quick", "--models", "lmresnet20_cifar,timm-resnet20_cifar"]).model_list == [
        "lmresnet20_cifar",
        "timm-resnet20_cifar",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        # options of the ablation without --ablate: the run profiled as if they had not been given
        (["--variants", "strided", "--reps", "3"], "--variants, --reps: only --ablate reads them"),
        (["--timer", "cpu"], "--timer: only --ablate reads them"),
        (["--malloc", "glibc", "--mem-steps", "2"], "--malloc, --mem-steps: only --ablate reads them"),
        (["--timer", "wall"], "--timer: only --ablate reads them"),  # given, though it is the default
        # and the profile's with it
        (["--ablate", "--steps", "3"], "--steps: only the profile reads them"),
        (["--ablate", "--row-limit", "5", "--trace-dir", "/tmp/t"], "--row-limit, --trace-dir: only the profile"),
        (["--ablate", "--mem-steps", "3"], "--mem-steps: only --malloc glibc takes steps after the warm-up"),
    ],
)
def test_profile_script_refuses_options_of_the_other_mode(argv, message, monkeypatch, capsys):
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    monkeypatch.setattr(prof, "build", lambda *a: pytest.fail("built a model before refusing the options"))
    with pytest.raises(SystemExit) as exc:
        prof.main(["--models", "zerosnet20_cifar", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err


def test_profile_script_takes_the_options_of_its_mode(monkeypatch):
    """The documented ablation (README: --variants, --malloc glibc, --reps) still runs, with the defaults filled in."""
    prof = _load("zerosnet_profile_multistep", ROOT / "benchmarks" / "profile_multistep.py")
    seen = []
    monkeypatch.setattr(prof, "ablate", lambda name, args: seen.append((name, args)))
    argv = ["--ablate", "--models", "zerosnet20_cifar", "--variants", "strided", "--malloc", "glibc"]
    assert prof.main([*argv, "--mem-steps", "2", "--reps", "3"]) == 0
    args = seen[0][1]
    assert (args.variant_list, args.reps, args.mem_steps, args.timer) == (["current", "strided"], 3, 2, "wall")
    assert prof.main(["--ablate", "--models", "zerosnet20_cifar"]) == 0
    assert (seen[1][1].reps, seen[1][1].malloc, seen[1][1].mem_steps, seen[1][1].steps) == (7, "pinned", 6, 2)


def test_projection_benchmark_names_only_options_it_takes(capsys):
    """It printed keep_heap()'s '(--no-keep-heap: off)', an option it refused; it takes the option now."""
    proj = _load("zerosnet_bench_projection", ROOT / "benchmarks" / "bench_projection.py")
    tiny = ["--reps", "1", "--inner", "1", "--shapes", "1", "--threads", "1"]

    def allocator_line(argv):
        proj.main([*tiny, *argv])
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("CPU allocator:"))

    named = re.findall(r"--[a-z][a-z-]+", allocator_line([]))  # '--no-keep-heap' where glibc keeps the heap
    assert allocator_line(named)  # each option the line names is one the script takes
    assert allocator_line(["--no-keep-heap"]).startswith("CPU allocator: glibc's defaults (--no-keep-heap);")


def test_a_device_torch_knows_but_cannot_use_here_is_refused(monkeypatch):
    """--quick --device mps ended in a traceback from the in-process warm-up; a GPU index past the last one is
    refused without making a CUDA context in this process."""
    if not torch.backends.mps.is_available():
        with pytest.raises(SystemExit, match="--device mps: not available here"):
            bench.check_device(None, "mps")
    assert bench.check_device(None, "cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert bench.check_device(None, "cuda:0") == torch.device("cuda", 0)
    with pytest.raises(SystemExit, match=r"--device cuda:1: torch sees 1 CUDA device\(s\) here; pass cuda:0$"):
        bench.check_device(None, "cuda:1")
