"""Forward+backward time of DiffStride against fixed spectral pooling (and plain subsampling, for scale).

Usage: ``python benchmarks/bench_diffstride.py [--batch 64 --channels 256 --size 32 --reps 10]``. Prints a markdown
table; the layers are timed in alternation in one run so that the ratio is not skewed by machine drift.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from timm_zerosnet.layers.diffstride import DiffStride, FixedSpectralPooling, Subsample

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import check_device, check_ranges  # noqa: E402


def _fwd_bwd(layer: nn.Module, x: torch.Tensor) -> tuple[float, tuple[int, int]]:
    """Seconds for one forward+backward through `layer`, and the output size."""
    x.grad = None
    layer.zero_grad(set_to_none=True)
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = layer(x)
    out.sum().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, tuple(out.shape[-2:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--stride", type=float, default=2.0)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    # before anything is built: 0 or less was a traceback from torch or statistics, or an empty measurement
    check_ranges(parser, args, counts=("batch", "channels", "size", "reps"), at_least_0=("warmup",))
    if not args.stride >= 1:  # nan too
        parser.error(f"--stride {args.stride}: a downsampling stride is at least 1")
    check_device(parser, args.device)

    torch.manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.size, args.size, device=args.device, requires_grad=True)
    layers = {
        "DiffStride": DiffStride(args.stride).to(args.device),
        "FixedSpectralPooling": FixedSpectralPooling(args.stride),
        "Subsample": Subsample(round(args.stride)),
    }
    times: dict[str, list[float]] = {name: [] for name in layers}
    sizes: dict[str, tuple[int, int]] = {}
    for rep in range(args.warmup + args.reps):
        for name, layer in layers.items():
            seconds, sizes[name] = _fwd_bwd(layer, x)
            if rep >= args.warmup:
                times[name].append(seconds)

    medians = {name: statistics.median(t) for name, t in times.items()}
    reference = medians["FixedSpectralPooling"]
    print(
        f"Forward+backward, input {args.batch}x{args.channels}x{args.size}x{args.size} float32, stride {args.stride}, "
        f"{args.device} ({torch.get_num_threads()} threads), median of {args.reps} after {args.warmup} warm-up\n"
    )
    print("| layer | output | median ms | min ms | / FixedSpectralPooling |")
    print("|---|---|---:|---:|---:|")
    for name, median in medians.items():
        h, w = sizes[name]
        print(f"| {name} | {h}x{w} | {median * 1e3:.1f} | {min(times[name]) * 1e3:.1f} | {median / reference:.2f}x |")


if __name__ == "__main__":
    main()
