"""Where the GPU time of a training step goes: torch.profiler's device kernels, grouped by what they do.

For each model: one eager training step (forward, backward, SGD) under bf16 autocast, or with ``--phase infer`` one
inference forward (eval mode, no gradients), profiled after a warm-up,
with the multistep combination as ``fused_combine``'s Triton kernel (the default) and, with ``--plain``, again as
plain ops (``TIMM_ZEROSNET_TRITON=0``). It prints each run's kernel time by category (convolution and matrix
products, batch norm, elementwise, the fused combination, reductions, optimizer, layout copies, other), in ms per
step and as a share, and the top kernels. On a CPU device it profiles CPU ops instead (a rehearsal of the script).

Usage::

    python benchmarks/profile_gpu.py --models zerosnet50,lmresnet50,preresnet50,resnetv2_50 --batch 64 --plain
    python benchmarks/profile_gpu.py --models zerosnet50,resnetv2_50 --batch 128 --phase infer --channels-last --plain
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import check_device, check_ranges, split_name  # noqa: E402

import timm_zerosnet  # noqa: E402,F401  (registers the families)
from timm_zerosnet.layers import fused_combine  # noqa: E402
from timm_zerosnet.schemes import multistep_updates  # noqa: E402

# (category, pattern over the kernel name), first match wins
CATEGORIES = (
    ("fused combination", r"combine_(forward|backward)"),
    ("layout copies", r"nchwToNhwc|nhwcToNchw|transpose|permute|copy_kernel|CatArray"),
    ("convolution / matmul", r"conv|cudnn|gemm|xmma|wgrad|dgrad|fprop|cutlass|sm\d+_|implicit|winograd|cublas"),
    ("batch norm", r"batch_norm|batchnorm|bn_|welford|Welford"),
    ("optimizer", r"multi_tensor|foreach|_fused_sgd"),
    ("reduction", r"reduce|Reduce"),
    ("elementwise", r"elementwise|vectorized|unrolled|Elementwise|pointwise|relu|add|mul|lerp|fill"),
)


def category(name: str) -> str:
    for cat, pattern in CATEGORIES:
        if re.search(pattern, name):
            return cat
    return "other"


def train_step(model, opt, x, t, device):
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), t)
    loss.backward()
    opt.step()


def infer_step(model, x, device):
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        model(x)


def profile_one(name: str, args, device) -> bool:
    """Profiles ``name`` and prints its tables; returns whether it has multistep updates (the fused combination)."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=1000).to(device).train(args.phase == "train")
    multistep = bool(multistep_updates(model))
    size = model.pretrained_cfg["input_size"][-1] if args.img_size is None else args.img_size
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, size, size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (args.batch,), device=device)
    if args.phase == "train":
        step = functools.partial(train_step, model, opt, x, t, device)
    else:
        step = functools.partial(infer_step, model, x, device)
    for _ in range(args.warmup):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    acts = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        for _ in range(args.steps):
            step()
        sync()
    per_cat: dict[str, float] = {}
    kernels: list[tuple[float, str]] = []
    for e in prof.key_averages():
        us = e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total
        if us <= 0 or (device.type == "cpu" and not e.key.startswith("aten::")):
            continue
        ms = us / 1e3 / args.steps
        per_cat[category(e.key)] = per_cat.get(category(e.key), 0.0) + ms
        kernels.append((ms, e.key))
    total = sum(per_cat.values())
    print(f"\n## {name}: {total:.2f} ms of {'kernel' if device.type == 'cuda' else 'op'} time per step")
    print("| category | ms / step | share |\n|---|---:|---:|")
    for cat, ms in sorted(per_cat.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {ms:.2f} | {ms / max(total, 1e-9):.1%} |")
    print("\n| top kernels | ms / step |\n|---|---:|")
    for ms, key in sorted(kernels, reverse=True)[: args.top]:
        print(f"| {key[:110]} | {ms:.3f} |")
    return multistep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="zerosnet50,lmresnet50,preresnet50,resnetv2_50")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--img-size", type=int, default=None, help="default: the model's own")
    p.add_argument("--phase", default="train", choices=("train", "infer"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--plain", action="store_true", help="also profile with TIMM_ZEROSNET_TRITON=0")
    args = p.parse_args(argv)
    # before the first model: an unusable device was a traceback from torch, --steps 0 an empty profile, --batch 0 the
    # profile of an empty batch, and a misspelt model timm's error after the models before it had been profiled
    check_ranges(p, args, counts=("batch", "steps", "top", "img_size"), at_least_0=("warmup",))
    device = check_device(p, args.device)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        p.error(f"--models {args.models!r} names no model; give comma separated names, e.g. zerosnet50,resnetv2_50")
    for name in models:  # a name of weights: refused as benchmark.py refuses it
        try:
            split_name(name)
        except ValueError as e:
            p.error(f"--models: {e}")
    if unknown := [m for m in models if not timm.is_model(m)]:
        p.error(f"--models: unknown {', '.join(map(repr, unknown))} (timm's models or ours); check the spelling")
    what = "training step" if args.phase == "train" else "inference forward"
    layout = "channels_last" if args.channels_last else "NCHW"
    print(f"# bf16 autocast {what}, {layout}, batch {args.batch}, {device}, torch {torch.__version__}")
    for name in models:
        if profile_one(name, args, device) and args.plain:
            with fused_combine.disabled():
                print(f"\n(plain ops, {fused_combine.ENV_SWITCH}=0)")
                profile_one(name, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
