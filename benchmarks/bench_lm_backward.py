"""LM-ResNet's eager update: the package's own backward against autograd's plain ``lerp`` backward.

The package runs ``lerp(x, last, k) + h f`` through ``schemes._LerpAddFunction`` in eager training: k's gradient is
two dot products instead of autograd's ``sum(g * (last - x))`` with two full-size temporaries per block. This script
times whole training steps of LM-ResNets with either implementation, alternating A B A B ... so that machine drift
hits both alike, and prints the ratio (plain / package > 1: the package's backward is faster).

Usage::

    python benchmarks/bench_lm_backward.py                       # lmresnet20_cifar (batch 64) and lmresnet50 (8)
    python benchmarks/bench_lm_backward.py --models lmresnet56_cifar --reps 9
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

import timm_zerosnet  # noqa: F401
from timm_zerosnet.schemes import LinearMultistepUpdate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import check_ranges  # noqa: E402


def plain_lerp(self, f: torch.Tensor, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    return torch.lerp(x, last, self.k).add_(f, alpha=self.step_size)


def step_fn(name: str):
    model = timm.create_model(name)
    size = int(model.pretrained_cfg["input_size"][-1])
    batch = 64 if size <= 64 else 8
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step, batch


def time_ms(step, inner: int) -> float:
    step()  # one untimed step after switching the implementation
    t0 = time.perf_counter()
    for _ in range(inner):
        step()
    return (time.perf_counter() - t0) / inner * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lmresnet20_cifar,lmresnet50")
    p.add_argument("--reps", type=int, default=7, help="alternated repetitions per implementation")
    p.add_argument("--inner", type=int, default=3, help="timed steps per repetition")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    # before anything is built: --reps 0 was a statistics traceback, --threads 0 a torch one, an unknown name timm's
    # RuntimeError after the models before it had run, and a model without LM-ResNet updates was timed against itself
    check_ranges(p, args, counts=("reps", "inner", "threads"))
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names:
        p.error(f"--models {args.models!r} names no model; give comma separated LM-ResNets, e.g. lmresnet20_cifar")
    if others := [n for n in names if n not in timm.list_models("lmresnet*")]:
        p.error(
            f"--models: {', '.join(map(repr, others))}: not an LM-ResNet of this package (its update is what is "
            f"timed); pick from {', '.join(timm.list_models('lmresnet*')[:4])}, ..."
        )
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    package = LinearMultistepUpdate._forward_python
    impls = {"package": package, "plain": plain_lerp}
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.reps} alternated repetitions\n")
    print("| model | batch | package ms/step | plain lerp ms/step | plain / package |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        step, batch = step_fn(name)
        res: dict[str, list[float]] = {k: [] for k in impls}
        try:
            for _ in range(args.reps):
                for key, impl in impls.items():
                    LinearMultistepUpdate._forward_python = impl
                    res[key].append(time_ms(step, args.inner))
        finally:
            LinearMultistepUpdate._forward_python = package
        a, b = statistics.median(res["package"]), statistics.median(res["plain"])
        print(f"| {name} | {batch} | {a:.1f} | {b:.1f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
