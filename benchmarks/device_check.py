"""Do the model families compute the same thing on an accelerator? One script for a lent GPU, also runnable on CPU.

For each model (one of each family and variant: ZeroSNet Opt and Tra, LM-ResNet, PreResNet, tau-ResNet with and
without BN, DiffStride, the ImageNet-style bottleneck nets at 64x64) it runs one forward + backward with BatchNorm
in eval mode and compares, as ||a - b|| / ||b|| over the logits and over all parameter gradients. (BatchNorm in
training mode at batch 4 makes the gradients so ill-conditioned that float32 re-orderings move them by up to 4e-2
on the CPU alone, which would hide a real difference; the fp16 training steps below use training mode.)

- ``fp32``: the device in float32 (TF32 off) against the CPU in float64;
- ``channels_last``: channels_last on the device against NCHW on the device;
- ``grad_ckpt``: ``set_grad_checkpointing()`` against plain, on the device;
- ``bf16`` / ``fp16``: autocast on the device against the float64 reference; fp16 then takes ``--fp16-steps`` SGD
  steps with a ``GradScaler``, whose loss, parameters and scale must stay finite;
- ``compile`` (``--compile-models``): ``torch.compile`` (inductor) against eager on the device, with
  ``fullgraph=True`` unless ``--allow-graph-breaks``;
- ``fused`` (CUDA, multistep models): the Triton combination (``fused_combine``) against the plain ops
  (``TIMM_ZEROSNET_TRITON=0``) in float32, with the number of kernel launches (0 fails: the kernel must have run);
  and ``bf16 grads (plain ops)``, the bf16 check without the kernel, to tell its rounding from the network's;
- ``api``: ``features_only`` and ``forward_intermediates`` on the device give the channels and reductions that
  ``feature_info`` announces.

It prints a table (each check's error and its limit) and writes JSON. Exit status 1 if a check failed.

Usage::

    python benchmarks/device_check.py --device cuda --out results/device_check.json
    python benchmarks/device_check.py --device cpu --models zerosnet20_cifar --no-compile   # the reference on CPU
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import check_device, check_output, check_ranges  # noqa: E402  (also makes the repository importable)

from timm_zerosnet import DiffStride  # noqa: E402  (importing the package registers the families)
from timm_zerosnet.layers import fused_combine  # noqa: E402
from timm_zerosnet.schemes import multistep_updates  # noqa: E402

# (model, input size): every family and variant at the size it is built for; the bottleneck nets at 64x64 (their
# arithmetic is the same at 224, the check is about the ops)
MODELS = (
    ("zerosnet20_cifar", 32),
    ("zerosnet20_tra_cifar", 32),
    ("lmresnet20_cifar", 32),
    ("preresnet20_cifar", 32),
    ("tauresnet20_cifar", 32),
    ("tauresnet20_nobn_cifar", 32),
    ("zerosnet18_diffstride_cifar", 32),
    ("preresnet18_spectral_cifar", 32),
    ("zerosnet50", 64),
    ("zerosnet50_tra", 64),
    ("lmresnet50", 64),
    ("preresnet50", 64),
)
COMPILE_MODELS = ("zerosnet20_cifar", "zerosnet20_tra_cifar", "lmresnet20_cifar", "zerosnet18_diffstride_cifar")

# limits on ||a - b|| / ||b||: float32 logits, re-ordered or not, land far under 1e-4 (METHOD: far under 1e-3).
# Gradients too (1e-7 to 1e-5), except where a ReLU input near 0 flips sign between two orders of summation: the
# plain PreResNets moved by up to 5e-4 so on the CPU (fp32 against fp64, channels_last against NCHW).
# Autocast against float64, on the CPU: logits 4e-3 to 5e-3 (bf16) and 3e-4 to 6e-4 (fp16); gradients 1e-2 to 5e-2
# (bf16) and 4e-3 to 1.5e-2 (fp16), the plain PreResNet-20 within the same ranges.
LIMITS = {
    "fp32 logits": 1e-4,
    "fp32 grads": 2e-3,
    "channels_last logits": 1e-4,
    "channels_last grads": 2e-3,
    "grad_ckpt grads": 1e-5,
    "compile logits": 1e-4,
    "compile grads": 2e-3,
    "api": 1e-4,
    "bf16 logits": 3e-2,
    "bf16 grads": 0.15,
    "bf16 grads (plain ops)": 0.15,
    "fused logits": 1e-4,
    "fused grads": 2e-3,
    "fp16 logits": 5e-3,
    "fp16 grads": 5e-2,
}
# The ImageNet-style bottleneck nets (at 64x64) under autocast against float64: gradients 0.10-0.21 (bf16) and
# 0.04-0.08 (fp16) on the CPU, 0.10-0.24 and 0.04-0.08 on the H200, with the plain ops as with the fused kernel.
# In bf16, each conv's gradient is 10-47% off in PreResNet-50 as in ZeroSNet-50 (batch 4, BatchNorm in eval mode);
# ZeroSNet-50's total is larger because its gradient norm is 14x PreResNet-50's (b0 = 1.78 scales every branch) and
# largest in the stem and the first stages, where that error is largest - not because a kernel is off.
LIMITS_BOTTLENECK = {"bf16 grads": 0.3, "bf16 grads (plain ops)": 0.3, "fp16 grads": 0.12}


def limit(model: str, check: str) -> float:
    """The limit of ``check`` for ``model``: ``LIMITS``, or ``LIMITS_BOTTLENECK`` for the nets checked at 64x64."""
    if dict(MODELS).get(model) == 64 and check in LIMITS_BOTTLENECK:
        return LIMITS_BOTTLENECK[check]
    return LIMITS[check]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64 on the CPU; NaN anywhere gives NaN (which no limit passes)."""
    a = a.detach().double().cpu().flatten()
    b = b.detach().double().cpu().flatten()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return math.nan
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def grad_vector(model: nn.Module) -> torch.Tensor:
    """All parameter gradients in one vector (missing ones as zeros, so a lost gradient shows as an error)."""
    parts = []
    for p in model.parameters():
        if p.requires_grad:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            parts.append(g.detach().double().cpu().flatten())
    return torch.cat(parts)


def step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, amp: torch.dtype | None = None):
    """One forward + backward (in the model's mode); returns (logits, gradients)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
        out = model(x)
        loss = F.cross_entropy(out.float(), target)
    loss.backward()
    return out.detach().float(), grad_vector(model)


def make_model(name: str, device, dtype=torch.float32, seed: int = 0, train: bool = False) -> nn.Module:
    """The model with num_classes=10 and the weights of ``seed``; BatchNorm in eval mode unless ``train``."""
    torch.manual_seed(seed)
    return timm.create_model(name, num_classes=10).to(device=device, dtype=dtype).train(train)


def has_diffstride(model: nn.Module) -> bool:
    """Learned strides: the output size follows the strides' values (a data-dependent shape)."""
    return any(isinstance(m, DiffStride) for m in model.modules())


def _record(results: list, model: str, check: str, err: float | None, limit: float | None, note: str = "") -> None:
    ok = err is not None and limit is not None and err <= limit  # NaN compares False: fails
    results.append(dict(model=model, check=check, err=err, limit=limit, ok=bool(ok), note=note))


def _compare(results: list, model: str, check: str, a: torch.Tensor, b: torch.Tensor, note: str) -> None:
    """Record ||a - b|| / ||b|| against the check's limit (``limit``)."""
    _record(results, model, check, rel_err(a, b), limit(model, check), note)


def _reason(e: Exception) -> str:
    """An exception's type and the first line of its message, for the table."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:160] if lines else ''}"


def check_model(name: str, size: int, device: torch.device, args: argparse.Namespace, results: list) -> None:
    g = torch.Generator().manual_seed(1)
    x64 = torch.randn(args.batch, 3, size, size, generator=g, dtype=torch.float64)
    target = torch.randint(0, 10, (args.batch,), generator=g)
    # the float64 CPU reference (same initial weights: same seed, then cast)
    ref = make_model(name, "cpu", torch.float64)
    ref_out, ref_grad = step(ref, x64, target)

    x, t = x64.float().to(device), target.to(device)
    m = make_model(name, device)
    out, grad = step(m, x, t)
    _compare(results, name, "fp32 logits", out, ref_out, "device fp32 vs CPU fp64")
    _compare(results, name, "fp32 grads", grad, ref_grad, "device fp32 vs CPU fp64")

    m_cl = make_model(name, device).to(memory_format=torch.channels_last)
    out_cl, grad_cl = step(m_cl, x.contiguous(memory_format=torch.channels_last), t)
    _compare(results, name, "channels_last logits", out_cl, out, "vs NCHW")
    _compare(results, name, "channels_last grads", grad_cl, grad, "vs NCHW")

    m_ck = make_model(name, device)
    m_ck.set_grad_checkpointing(True)
    out_ck, grad_ck = step(m_ck, x, t)
    _compare(results, name, "grad_ckpt grads", grad_ck, grad, "vs no checkpointing")

    if device.type == "cuda" or args.cpu_amp:
        for dtype, key in ((torch.bfloat16, "bf16"), (torch.float16, "fp16")):
            m_amp = make_model(name, device)
            out_a, grad_a = step(m_amp, x, t, amp=dtype)
            for what, a, b in (("logits", out_a, ref_out), ("grads", grad_a, ref_grad)):
                _compare(results, name, f"{key} {what}", a, b, "autocast vs CPU fp64")
        _record(results, name, "fp16 GradScaler steps", *fp16_training(name, x, t, device, args.fp16_steps))
    if device.type == "cuda" and multistep_updates(m):
        fused_check(name, x, t, ref_grad, device, results)

    api_check(name, size, device, results)
    if name in args.compile_list:
        compile_check(name, m, x, t, out, grad, device, args, results)


def _count_launches(fn):
    counted = [0]

    def wrapper(*a, **k):
        counted[0] += 1
        return fn(*a, **k)

    return wrapper, counted


def fused_check(name: str, x, t, ref_grad, device, results: list) -> None:
    """The fp32 step of ``check_model`` (which ran with the fused combination, the default) against the same step
    with plain ops; then bf16 autocast with plain ops against the float64 reference."""
    fwd, n_fwd = _count_launches(fused_combine._launch_forward)
    bwd, n_bwd = _count_launches(fused_combine._launch_backward)
    saved = fused_combine._launch_forward, fused_combine._launch_backward
    fused_combine._launch_forward, fused_combine._launch_backward = fwd, bwd
    try:
        out_f, grad_f = step(make_model(name, device), x, t)
    finally:
        fused_combine._launch_forward, fused_combine._launch_backward = saved
    with fused_combine.disabled():
        out_p, grad_p = step(make_model(name, device), x, t)
        _, grad_a = step(make_model(name, device), x, t, amp=torch.bfloat16)
    note = f"Triton vs plain ops, fp32; {n_fwd[0]} forward / {n_bwd[0]} backward launches in one step"
    ran = n_fwd[0] > 0 and n_bwd[0] > 0
    for what, a, b in (("logits", out_f, out_p), ("grads", grad_f, grad_p)):
        err = rel_err(a, b) if ran else None  # no launch: the kernel never ran, a failed check
        _record(results, name, f"fused {what}", err, limit(name, f"fused {what}"), note)
    _compare(results, name, "bf16 grads (plain ops)", grad_a, ref_grad, "autocast vs CPU fp64, TIMM_ZEROSNET_TRITON=0")


def fp16_training(name: str, x, t, device, steps: int) -> tuple[float, float, str]:
    """``steps`` SGD steps under fp16 autocast with a GradScaler: 0 if loss, parameters and scale stay finite and
    the scaler took at least one step (a scale that collapses, or NaN weights, gives 1)."""
    model = make_model(name, device, train=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type)
    losses, taken = [], 0
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16):
            loss = F.cross_entropy(model(x).float(), t)
        scaler.scale(loss).backward()
        before = float(scaler.get_scale())
        scaler.step(opt)
        scaler.update()
        taken += float(scaler.get_scale()) >= before  # a skipped step (inf / NaN gradients) halves the scale
        losses.append(float(loss.detach()))
    finite = all(math.isfinite(v) for v in losses) and all(torch.isfinite(p).all() for p in model.parameters())
    scale = float(scaler.get_scale())
    ok = finite and math.isfinite(scale) and scale >= 1.0 and taken > 0
    note = f"losses {losses[0]:.3f} -> {losses[-1]:.3f}, {taken}/{steps} steps taken, final scale {scale:g}"
    return (0.0 if ok else 1.0), 0.5, note


def api_check(name: str, size: int, device, results: list) -> None:
    """features_only and forward_intermediates on the device: the feature maps have the channels that feature_info
    announces (and its reductions, where strides are fixed), and equal forward_intermediates' maps; the head on the
    last map equals the forward."""
    torch.manual_seed(0)
    feat = timm.create_model(name, features_only=True).to(device).eval()
    torch.manual_seed(0)
    full = timm.create_model(name).to(device).eval()  # the same weights: same seed, same construction order
    x = torch.randn(2, 3, size, size, device=device)
    with torch.no_grad():
        maps = feat(x)
        last, inter = full.forward_intermediates(x)
        logits = full(x)
    info = feat.feature_info
    fixed = not has_diffstride(full)
    bad = [
        i
        for i, (f, c, r) in enumerate(zip(maps, info.channels(), info.reduction()))
        if f.shape[1] != c or f.device.type != device.type or (fixed and f.shape[-1] != math.ceil(size / r))
    ]
    if len(maps) != len(info) or len(inter) != len(maps):
        bad.append(f"{len(maps)} maps, {len(inter)} intermediates, {len(info)} in feature_info")
    sizes = "reductions" if fixed else "sizes follow the learned strides"
    note = f"mismatched {bad}" if bad else f"{len(maps)} maps, channels {info.channels()}, {sizes}"
    _record(results, name, "features_only", float(len(bad)), 0.5, note)
    err = max((rel_err(f, i) for f, i in zip(maps, inter)), default=math.nan)
    _record(results, name, "features = intermediates", err, LIMITS["api"], "largest error over the maps")
    err = rel_err(full.forward_head(last), logits)
    _record(results, name, "forward_intermediates", err, LIMITS["api"], f"{len(inter)} maps; head(last) vs forward")


def compile_check(name, eager_model, x, t, out, grad, device, args, results) -> None:
    """torch.compile of the same weights against eager, forward and backward. ``fullgraph=True`` unless
    ``--allow-graph-breaks`` or the model has learned strides (their output size is a Python int read from the
    strides' values, a graph break by design)."""
    torch._dynamo.reset()
    m = make_model(name, device)
    m.load_state_dict(eager_model.state_dict())
    fullgraph = not (args.allow_graph_breaks or has_diffstride(m))
    t0 = time.perf_counter()
    try:
        cm = torch.compile(m, backend=args.compile_backend, fullgraph=fullgraph)
        out_c, grad_c = step(cm, x, t)
    except Exception as e:  # a graph break under fullgraph, or a backend error: a failed check, with the reason
        _record(results, name, "compile", None, None, _reason(e))
        return
    secs = time.perf_counter() - t0
    # the eager step ran with BatchNorm in eval mode, so the running stats load_state_dict copied are the initial ones
    note = f"{args.compile_backend}, fullgraph={fullgraph}, first step {secs:.0f} s"
    _compare(results, name, "compile logits", out_c, out, note)
    _compare(results, name, "compile grads", grad_c, grad, note)


def environment(device: torch.device) -> dict[str, Any]:
    env = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        timm=timm.__version__,
        device=str(device),
        machine=platform.machine(),
    )
    if device.type == "cuda":
        env.update(
            gpu=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            capability=".".join(map(str, torch.cuda.get_device_capability(device))),
        )
    return env


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| model | check | error | limit | ok | note |", "|---|---|---:|---:|---|---|"]
    for r in results:
        err = "-" if r["err"] is None else f"{r['err']:.2e}"
        lim = "-" if r["limit"] is None else f"{r['limit']:.2g}"
        lines.append(f"| {r['model']} | {r['check']} | {err} | {lim} | {'yes' if r['ok'] else 'NO'} | {r['note']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default=",".join(m for m, _ in MODELS), help="comma separated (default: %(default)s)")
    p.add_argument(
        "--compile-models",
        default=None,
        help="comma separated, from --models; '' for none (default: those of --models among "
        f"{','.join(COMPILE_MODELS)})",
    )
    p.add_argument("--no-compile", action="store_true", help="same as --compile-models ''")
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--allow-graph-breaks", action="store_true", help="compile without fullgraph=True")
    p.add_argument("--cpu-amp", action="store_true", help="also run the bf16 / fp16 checks on a CPU device")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--fp16-steps", type=int, default=10, help="GradScaler steps of the fp16 check (at least 1)")
    p.add_argument("--out", default=None, help="JSON file for the results and the environment")
    args = p.parse_args(argv)
    sizes = dict(MODELS)
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.model_list if m not in sizes]
    if unknown:
        p.error(f"--models: {unknown} are not in this script's list; choose from {sorted(sizes)}")
    args.sizes = sizes
    if args.compile_models is None:  # the default: those of the chosen models that compile checks are meant for
        args.compile_list = [] if args.no_compile else [m for m in COMPILE_MODELS if m in args.model_list]
    else:  # named: each must be one this run checks (a misspelt one skipped the compile check, and all passed)
        args.compile_list = [m.strip() for m in args.compile_models.split(",") if m.strip()]
        if args.no_compile and args.compile_list:
            p.error(f"--no-compile and --compile-models {args.compile_models} contradict each other; pass one of them")
        if unknown := [m for m in args.compile_list if m not in sizes]:
            p.error(
                f"--compile-models: {unknown} are not models this script checks; name models of this run's --models "
                f"({','.join(args.model_list)})"
            )
        if outside := [m for m in args.compile_list if m not in args.model_list]:
            p.error(
                f"--compile-models: {', '.join(map(repr, outside))} not in --models, which checks "
                f"{','.join(args.model_list)}; name models from there (add them to --models if need be)"
            )
    if args.batch < 2:
        p.error("--batch must be at least 2 (BatchNorm in training mode needs more than one value per channel)")
    check_ranges(p, args, counts=("fp16_steps",))  # 0: no step to judge, a crash filed as the model's
    check_device(p, args.device)
    if args.out is not None:  # written after every model: a bad path failed after the first one
        check_output(p, "--out", args.out, file_example="device_check.json")
    return args


def main(argv: list[str] | None = None, log: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        # the fp32 comparisons are about float32 arithmetic; TF32 (cuDNN's default for convs) would be ~1e-3
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    env = environment(device)
    log(json.dumps(env))
    results: list[dict[str, Any]] = []
    for name in args.model_list:
        t0 = time.perf_counter()
        try:
            check_model(name, args.sizes[name], device, args, results)
        except Exception as e:  # one model's crash is that model's failed check; the others still run
            traceback.print_exc()
            _record(results, name, "crashed", None, None, _reason(e))
        failed = sum(not r["ok"] for r in results if r["model"] == name)
        log(f"{name}: {time.perf_counter() - t0:.1f} s, {failed} failed")
        if args.out:  # after every model, so that a run stopped at its time limit keeps what it measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(dict(environment=env, results=results), indent=1))
    log(table(results))
    failed = [r for r in results if not r["ok"]]
    log(f"{len(results) - len(failed)} of {len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
