"""The strided 1x1 projection of ``multistep.Projection``: the package's eager CPU form (``_SubsampledConv1x1``, one
matrix product of the subsampled input) against the strided conv and against the stride-1 conv of the subsampled
input, at the shapes of the registered networks' projections.

For each shape the three forms run in alternation (A B C A B C ...), so that machine drift hits them alike, in
inference (``no_grad``) and in training (forward + backward of x and W). It prints the median time of each and the
ratio strided conv / package (> 1: the package's form is faster), first checking that all three agree, and which
form ``Projection`` picks at that shape. The forms run on the heap that zerosnet-train keeps on CPU
(``cpu_heap.keep_heap``; ``--no-keep-heap``: glibc's defaults).

Usage::

    python benchmarks/bench_projection.py                  # CIFAR shapes (batch 64) and ImageNet shapes (batch 8)
    python benchmarks/bench_projection.py --reps 31 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from timm_zerosnet.cpu_heap import keep_heap
from timm_zerosnet.models.multistep import _SubsampledConv1x1, matmul_projection_pays

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import check_ranges  # noqa: E402

# (batch, in channels, out channels, input size, stride): the strided projections of ResNet-20 / ResNet-50 shapes
SHAPES = (
    (64, 16, 32, 32, 2),
    (64, 32, 64, 16, 2),
    (8, 256, 512, 56, 2),
    (8, 512, 1024, 28, 2),
    (8, 1024, 2048, 14, 2),
)
FORMS = ("strided conv", "subsampled conv", "package")


def forms(stride: int):
    return {
        "strided conv": lambda x, w: F.conv2d(x, w, stride=stride),
        "subsampled conv": lambda x, w: F.conv2d(x[:, :, ::stride, ::stride], w),
        "package": lambda x, w: _SubsampledConv1x1.apply(x, w, stride, stride),
    }


def form_used(shape: tuple[int, ...], phase: str) -> str:
    """The form ``Projection`` runs at this shape in eager CPU float32 ``phase`` ('infer' or 'train'): the package's
    where its output is 8x8 or larger, else the strided conv without gradients and the subsampled conv with them."""
    b, c, o, size, stride = shape
    if matmul_projection_pays(size, size, stride, stride):
        return "package"
    return f"{'subsampled' if phase == 'train' else 'strided'} conv (output < 8x8)"


def check_agree(shape: tuple[int, ...]) -> None:
    """The three forms give the same output and gradients (float64), or this raises."""
    b, c, o, size, stride = shape
    x = torch.randn(2, c, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(o, c, 1, 1, dtype=torch.float64, requires_grad=True)
    g = None
    results = []
    for fn in forms(stride).values():
        out = fn(x, w)
        g = torch.randn_like(out) if g is None else g
        results.append((out, *torch.autograd.grad(out, (x, w), g)))
    for other in results[1:]:
        for a, r in zip(other, results[0]):
            torch.testing.assert_close(a, r)


def time_shape(shape: tuple[int, ...], reps: int, inner: int) -> dict[str, dict[str, float]]:
    b, c, o, size, stride = shape
    x = torch.randn(b, c, size, size, requires_grad=True)
    w = torch.randn(o, c, 1, 1, requires_grad=True)
    fns = forms(stride)

    def infer(fn):
        with torch.no_grad():
            fn(x, w)

    def train(fn):
        out = fn(x, w)
        torch.autograd.grad(out, (x, w), torch.ones_like(out))

    medians: dict[str, dict[str, float]] = {}
    for phase, run in (("infer", infer), ("train", train)):
        times: dict[str, list[float]] = {name: [] for name in fns}
        for fn in fns.values():
            run(fn)  # warm-up
        for _ in range(reps):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(inner):
                    run(fn)
                times[name].append((time.perf_counter() - t0) / inner * 1e3)
        medians[phase] = {name: statistics.median(ts) for name, ts in times.items()}
    return medians


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=15, help="alternated repetitions per form and phase")
    p.add_argument("--inner", type=int, default=5, help="calls per repetition")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", type=int, default=len(SHAPES), help="the first N shapes only")
    p.add_argument(
        "--keep-heap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time on the heap zerosnet-train keeps on CPU (cpu_heap.keep_heap); --no-keep-heap: glibc's defaults",
    )
    args = p.parse_args(argv)
    check_ranges(p, args, counts=("reps", "inner", "threads", "shapes"))  # 0: tracebacks or an empty table
    if args.shapes > len(SHAPES):
        p.error(f"--shapes {args.shapes}: there are {len(SHAPES)} shapes; pass at most {len(SHAPES)}")
    torch.set_num_threads(args.threads)
    allocator = keep_heap() if args.keep_heap else "glibc's defaults (--no-keep-heap)"
    print(f"CPU allocator: {allocator}; {args.threads} threads, torch {torch.__version__}")
    print(
        "| batch, in -> out channels, size, stride | phase | "
        + " | ".join(f"{n} ms" for n in FORMS)
        + " | strided / package | Projection runs |"
    )
    print("|---|---|" + "---:|" * (len(FORMS) + 1) + "---|")
    for shape in SHAPES[: args.shapes]:
        check_agree(shape)
        for phase, med in time_shape(shape, args.reps, args.inner).items():
            b, c, o, size, stride = shape
            cells = " | ".join(f"{med[n]:.3f}" for n in FORMS)
            ratio, used = med["strided conv"] / med["package"], form_used(shape, phase)
            print(f"| {b}, {c} -> {o}, {size}, {stride} | {phase} | {cells} | {ratio:.2f} | {used} |")


if __name__ == "__main__":
    main()
