"""What ``cpu_heap.keep_heap()`` (called by ``zerosnet-train`` on CPU) changes in a training step: page faults, step
time and peak RSS, with glibc's defaults and with the heap kept.

The allocator setting is process-wide, so each measurement is its own worker process; the two settings alternate
worker by worker (default, kept, kept, default, ...) for ``--rounds`` rounds, and the time ratio is the median of
the per-round ratios. Each worker builds one model, warms it up and times ``--steps`` training steps (SGD,
cross-entropy, random data), counting minor page faults over them.

Usage::

    python benchmarks/bench_keep_heap.py                                  # preresnet50, lmresnet50 (batch 8)
    python benchmarks/bench_keep_heap.py --models lmresnet20_cifar,zerosnet20_cifar --rounds 4
    python benchmarks/bench_keep_heap.py --quick                          # smoke configuration
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as bench  # noqa: E402  (also makes the repository importable and registers our models)
from bench_pairs import fill_defaults  # noqa: E402

from timm_zerosnet.cpu_heap import allocator_env, require_kept_heap  # noqa: E402

SETTINGS = ("default", "kept")


def measure_steps(cfg: dict[str, Any]) -> dict[str, Any]:
    """One worker: the allocator setting first, then one model's training steps."""
    note = require_kept_heap("kept setting") if cfg["mode"] == "kept" else "glibc defaults"
    torch.set_num_threads(cfg["threads"])
    model, x, y, opt = bench.setup_model(cfg["model"], cfg["batch"], cfg["img_size"])
    step = bench.make_steps(model.train(), opt, x, y)["train"]
    for _ in range(cfg["warmup"]):
        step()
    times = []
    f0 = bench.minor_faults()
    for _ in range(cfg["steps"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    faults = (bench.minor_faults() - f0) / cfg["steps"]
    return dict(
        model=cfg["model"],
        mode=cfg["mode"],
        step_s=statistics.median(times),
        faults=faults,
        peak_rss_mb=bench.peak_rss_mb(),
        note=note,
    )


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Runs of one model, in rounds of (default, kept) in either order: medians and the per-round time ratio."""
    by = {s: [r for r in runs if r["mode"] == s] for s in SETTINGS}
    if len(by["default"]) != len(by["kept"]) or not by["kept"]:
        raise ValueError(
            f"one default and one kept run per round expected, got {len(by['default'])} and {len(by['kept'])}"
        )
    out: dict[str, float] = {}
    for s, rs in by.items():
        out[f"{s}_ms"] = statistics.median(r["step_s"] for r in rs) * 1e3
        out[f"{s}_faults"] = statistics.median(r["faults"] for r in rs)
        out[f"{s}_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in rs)
    out["time_ratio"] = statistics.median(k["step_s"] / d["step_s"] for d, k in zip(by["default"], by["kept"]))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="comma separated (default preresnet50,lmresnet50)")
    p.add_argument("--rounds", type=int, default=None, help="(default, kept) worker pairs per model (default 3)")
    p.add_argument("--steps", type=int, default=None, help="timed training steps per worker (default 5)")
    p.add_argument("--warmup", type=int, default=None, help="(default 2)")
    p.add_argument("--batch-size", "-b", type=int, default=8, help="batch of 224-style models")
    p.add_argument("--batch-size-cifar", type=int, default=None, help="batch of 32x32 models (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch threads, at least 1 (default: all cores)")
    p.add_argument(
        "--out",
        default=None,
        help="markdown result (default: results/keep_heap.md; with --quick results/quick/keep_heap.md, git-ignored)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke configuration: lmresnet20_cifar at batch 2, 1 round of 1 step (options given explicitly win)",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    full = dict(models="preresnet50,lmresnet50", rounds=3, steps=5, warmup=2, batch_size_cifar=64)
    full.update(out=str(bench.RESULTS / "keep_heap.md"))
    quick = dict(models="lmresnet20_cifar", rounds=1, steps=1, warmup=1, batch_size_cifar=2)
    quick.update(out=str(bench.QUICK_RESULTS / "keep_heap.md"))  # a smoke run never replaces the published result
    fill_defaults(args, quick if args.quick else full)
    # before the first worker: a batch of 0 timed empty steps into the table, --threads 0 meant all cores (every other
    # script refuses it), and a misspelt model, or an --out that cannot be written, lost the models measured before it
    bench.check_ranges(p, args, counts=("rounds", "steps", "warmup", "batch_size", "batch_size_cifar", "threads"))
    args.threads = args.threads or bench.core_count()
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.model_list:
        p.error(f"--models {args.models!r} names no model; give comma separated names, e.g. lmresnet20_cifar")
    if sized := [m for m in args.model_list if "@" in m]:
        p.error(f"--models: {', '.join(sized)}: this script takes no NAME@SIZE (32x32 for *_cifar, 224 otherwise)")
    if unknown := [m for m in args.model_list if not bench.is_known(m)]:
        p.error(
            f"--models: unknown {', '.join(map(repr, unknown))} (timm's models, ours or timm-resnet<depth>_cifar); "
            "check the spelling"
        )
    if args.worker is None:  # a worker writes nothing
        bench.check_output(p, "--out", args.out, file_example="keep_heap.md")
    return args


def run(args: argparse.Namespace, log=print) -> dict[str, dict[str, float]]:
    if chosen := allocator_env():
        raise SystemExit(f"unset {', '.join(chosen)}: this benchmark compares glibc's defaults with the kept heap")
    results = {}
    lines = [
        "# Training steps with glibc's default allocator settings and with the heap kept (cpu_heap.keep_heap)",
        "",
        f"{bench.cpu_name()}, {args.threads} threads, torch {torch.__version__}; {args.rounds} rounds x "
        f"{args.steps} training steps per worker",
        "",
        "| model | batch | ms/step default | ms/step kept | kept / default [per-round median] | faults/step default "
        "| faults/step kept | peak RSS MB default | peak RSS MB kept |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for spec in args.model_list:
        cifar = spec.endswith("_cifar")
        batch, size = (args.batch_size_cifar, 32) if cifar else (args.batch_size, 224)
        runs = []
        for r in range(args.rounds):
            for setting in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
                cfg = dict(
                    model=spec,
                    mode=setting,  # the allocator setting; run_isolated names its errors by model and mode
                    batch=batch,
                    img_size=size,
                    threads=args.threads,
                    warmup=args.warmup,
                    steps=args.steps,
                )
                log(f"[keep-heap] {spec} round {r + 1}/{args.rounds}: {setting}", flush=True)
                res = bench.run_isolated(cfg, script=Path(__file__))
                if "error" in res:
                    raise SystemExit(f"{spec} ({setting}): {res['error']}")
                runs.append(res)
        s = results[spec] = summarize(runs)
        lines.append(
            f"| {spec} | {batch} | {s['default_ms']:.1f} | {s['kept_ms']:.1f} | {s['time_ratio']:.3f} | "
            f"{s['default_faults']:.0f} | {s['kept_faults']:.0f} | {s['default_rss_mb']:.0f} | {s['kept_rss_mb']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    log(text)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        bench.worker_main(args.worker, measure_steps)
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
