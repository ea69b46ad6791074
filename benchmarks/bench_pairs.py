"""Target 1 of the speed issue, measured pair by pair: each of our models and its timm reference in one process,
timed in alternation.

``benchmark.py`` measures every (model, mode) in its own interpreter, one after the other, so a ratio between two
models compares two moments of the machine; on a shared 2-core VM that moves a ratio by 10-15% from run to run.
Here both models of a pair live in the same worker and their repetitions alternate (A B B A A B ...), so drift hits
both alike; each repetition of A is paired with the adjacent one of B, and the ratio is reported as the median of
those paired ratios with their quartiles.

One process still favours one of its two models in a way that alternation cannot cancel: glibc's heap ends up laid
out differently for each, and a training step that finds its memory returned to the OS pays page faults again (tens
of ms per step on this VM, up to 50 MB re-faulted per step, and a different amount for each model and process). So
every pair runs in ``--workers`` processes, building the model first in half of them and the reference first in the
other half; the paired ratios of all workers are pooled, the per-worker medians are listed, and so are the minor
page faults per step of each model. The ratio is the one of target 1: achieved GMAC/s of the model divided
by that of its reference (timm's pre-activation ResNetV2 of the same block type and style, chosen as in
``benchmark.py``), i.e. (GMACs_A / GMACs_B) x (time_B / time_A).

Usage::

    python benchmarks/bench_pairs.py                                  # the six checked models, eager + compile
    python benchmarks/bench_pairs.py --models zerosnet20_cifar --modes eager --phases train --reps 15
    python benchmarks/bench_pairs.py --quick                          # smoke configuration, in-process
    python benchmarks/bench_pairs.py --keep-heap --out-dir benchmarks/results/kept_heap   # as zerosnet-train runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as bench  # noqa: E402  (also makes the repository importable and registers our models)

from timm_zerosnet.cpu_heap import require_kept_heap  # noqa: E402

MODES = ("eager", "channels_last", "compile")


def time_alternated(
    steps: list[Callable[[], None]], warmup: int, reps: int, min_rep_s: float, max_iters: int
) -> dict[str, list]:
    """Warm every step up (the first call compiles), then time them in turn, ``reps`` times, each repetition
    starting one step later in the list (A B, B A, ... for two), so that drift of the machine hits all alike. Each
    step runs enough times per repetition to last ``min_rep_s``. Returns, per step, the seconds per call of each
    repetition (``s``), the minor page faults per call of each repetition (``faults``) and the calls per repetition
    (``iters``)."""
    last = [0.0] * len(steps)
    for i, step in enumerate(steps):
        for _ in range(warmup):
            t0 = time.perf_counter()
            step()
            last[i] = time.perf_counter() - t0
    iters = [bench.steps_per_rep(min_rep_s, t, max_iters) for t in last]
    times: list[list[float]] = [[] for _ in steps]
    faults: list[list[float]] = [[] for _ in steps]
    for r in range(reps):
        for j in range(len(steps)):
            i = (r + j) % len(steps)
            f0 = bench.minor_faults()
            t0 = time.perf_counter()
            for _ in range(iters[i]):
                steps[i]()
            times[i].append((time.perf_counter() - t0) / iters[i])
            faults[i].append((bench.minor_faults() - f0) / iters[i])
    return dict(s=times, faults=faults, iters=iters)


def measure_pair(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build model A and its reference B, and time their steps in alternation, phase by phase."""
    if cfg.get("keep_heap"):
        require_kept_heap("--keep-heap")
    torch.set_num_threads(cfg["threads"])
    fmt = torch.channels_last if cfg["mode"] == "channels_last" else torch.contiguous_format
    runs: list[Any] = [None, None]
    steps_of: list[Any] = [None, None]
    for i in (1, 0) if cfg.get("ref_first") else (0, 1):  # which one is built first: see the module docstring
        spec = (cfg["model"], cfg["ref"])[i]
        model, x, y, opt = bench.setup_model(spec, cfg["batch"], cfg["img_size"], fmt=fmt)
        run = torch.compile(model) if cfg["mode"] == "compile" else model
        runs[i] = model
        steps_of[i] = bench.make_steps(run, opt, x, y)
    bench.prime("cpu")
    phases = {}
    for phase in cfg["phases"]:
        for model in runs:
            model.train(phase == "train")
        t = time_alternated(
            [s[phase] for s in steps_of], cfg["warmup"], cfg["reps"], cfg["min_rep_s"], cfg["max_iters"]
        )
        phases[phase] = dict(a_s=t["s"][0], b_s=t["s"][1], a_faults=t["faults"][0], b_faults=t["faults"][1])
        phases[phase]["iters"] = t["iters"]
    if cfg["mode"] == "compile":
        torch._dynamo.reset()
    return dict(model=cfg["model"], ref=cfg["ref"], mode=cfg["mode"], phases=phases)


def paired_ratio(a_s: list[float], b_s: list[float], gmacs_a: float, gmacs_b: float) -> dict[str, float]:
    """Target 1's ratio, achieved GMAC/s of A over B, for each pair of adjacent repetitions: median and quartiles."""
    if len(a_s) != len(b_s) or not a_s:
        raise ValueError(f"paired repetitions expected, got {len(a_s)} and {len(b_s)} times")
    ratios = [(gmacs_a / ta) / (gmacs_b / tb) for ta, tb in zip(a_s, b_s)]
    q1, med, q3 = bench.quartiles(ratios)
    return dict(ratio=med, lo=q1, hi=q3, a_ms=statistics.median(a_s) * 1e3, b_ms=statistics.median(b_s) * 1e3)


def pool_workers(results: list[dict[str, Any]], gmacs_a: float, gmacs_b: float) -> dict[str, dict[str, Any]]:
    """Phase by phase, the repetitions of all workers of one pair (each list stays paired: A's i-th repetition with
    B's i-th), the median ratio of each worker, and the median minor page faults per step of A and B."""
    pooled: dict[str, dict[str, Any]] = {}
    for res in results:
        for phase, t in res["phases"].items():
            p = pooled.setdefault(phase, dict(a_s=[], b_s=[], a_faults=[], b_faults=[], worker_ratios=[]))
            for key in ("a_s", "b_s", "a_faults", "b_faults"):
                p[key] += t[key]
            p["worker_ratios"].append(paired_ratio(t["a_s"], t["b_s"], gmacs_a, gmacs_b)["ratio"])
    for p in pooled.values():
        p["a_faults"], p["b_faults"] = statistics.median(p["a_faults"]), statistics.median(p["b_faults"])
    return pooled


def pairs_for(args: argparse.Namespace, bargs: argparse.Namespace) -> list[tuple[dict, dict]]:
    """(info of our model, info of its reference) for every checked model of the selection."""
    out = []
    for spec in bench.expand_models(args.models):
        info = bench.model_info(spec, bargs)
        if info["family"] not in bench.CHECKED:
            continue
        ref = bench.reference_for(info, bargs)
        if ref is None:
            raise SystemExit(f"{spec}: no timm reference of the same block type; pick another model")
        out.append((info, bench.model_info(ref, bargs)))
    if not out:
        raise SystemExit(f"--models {args.models!r} selects none of the checked families {bench.CHECKED}")
    return out


def input_of(row: dict[str, Any], prefix: str = "") -> str:
    """The 'input' column: the batch and the image size a row was measured at ('64 x 32x32'); ``prefix`` picks
    another net's (``baseline_``: ``baseline_batch`` and ``baseline_img_size``)."""
    size = row[f"{prefix}img_size"]
    return f"{row[f'{prefix}batch']} x {size}x{size}"


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, machine: dict[str, Any]) -> str:
    lines = [
        "# Target 1, paired: achieved GMAC/s of each model over its timm reference, timed in alternation",
        "",
        f"- {machine['cpu']}, {machine['threads']} threads; torch {torch.__version__}; load average "
        f"{machine['load_start']:.2f} at start / {machine['load_end']:.2f} at end; CPU allocator: {machine['malloc']}",
        f"- {args.workers} worker processes per pair (half of them build the reference first), {args.reps} alternated "
        f"repetitions per model and phase in each, each >= {args.min_rep_s} s; ratio = median of the paired ratios "
        "(GMACs_A / GMACs_B) x (time_B / time_A) of all workers, quartiles in brackets, then each worker's median; "
        "faults = minor page faults per step (4 KiB each) of the model / of the reference",
        "",
        "| model | reference | input | phase | mode | ms/step | ref ms/step | GMACs / ref | x ref [q1-q3] "
        "| per worker | faults | target | result |",
        "|---|---|---|---|---|---:|---:|---:|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['model']} | {r['ref']} | {input_of(r)} | - | {r['mode']} | - | - | - | - | - | - | - "
                f"| {r['error']} |"
            )
            continue
        per_worker = " / ".join(f"{w:.2f}" for w in r["worker_ratios"])
        lines.append(
            f"| {r['model']} | {r['ref']} | {input_of(r)} | {r['phase']} | {r['mode']} | {r['a_ms']:.1f} | "
            f"{r['b_ms']:.1f} | "
            f"{r['macs_ratio']:.3f} | {r['ratio']:.3f} [{r['lo']:.2f}-{r['hi']:.2f}] | {per_worker} | "
            f"{r['a_faults']:.0f} / {r['b_faults']:.0f} | >= {1 - args.eff_tol:.2f} | {r['result']} |"
        )
    ok = sum(r.get("result", "").startswith("PASS") for r in rows)
    lines += ["", f"{ok}/{len(rows)} PASS"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="our models (names or wildcards); default: the checked six")
    p.add_argument("--modes", default=None, help=f"comma separated, from {','.join(MODES)} (default eager,compile)")
    p.add_argument("--phases", default="infer,train")
    p.add_argument("--reps", type=int, default=None, help="alternated repetitions per worker and phase (default 7)")
    p.add_argument("--workers", type=int, default=None, help="worker processes per pair and mode (default 2)")
    p.add_argument("--min-rep-s", type=float, default=None, help="a repetition lasts at least this (default 0.4)")
    p.add_argument("--max-iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per model and phase (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--batch-size", "-b", type=int, default=None, help="batch of 224-style models (default 8)")
    p.add_argument("--batch-size-cifar", type=int, default=None, help="batch of 32x32 models (default 64)")
    p.add_argument("--img-size", type=int, default=None, help="input size of 224-style models (default: theirs)")
    p.add_argument(
        "--keep-heap",
        action="store_true",
        help="workers keep freed memory in the heap, as zerosnet-train does on CPU (timm_zerosnet/cpu_heap.py)",
    )
    p.add_argument("--eff-tol", type=float, default=0.05, help="the ratio must be >= 1 - this")
    p.add_argument("--isolate", choices=("subprocess", "none"), default=None, help="a worker per pair and mode")
    p.add_argument("--worker-timeout", type=float, default=1800)
    p.add_argument("--out-dir", default=None, help="default: benchmarks/results (--quick: benchmarks/results/quick)")
    p.add_argument("--quick", action="store_true", help="smoke configuration: one CIFAR pair, tiny, in-process")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = dict(models="zerosnet20_cifar", modes="eager", reps=2, workers=1, min_rep_s=0.0, isolate="none", threads=1)
    quick.update(out_dir=str(bench.QUICK_RESULTS), batch_size=2, batch_size_cifar=2, warmup=1)
    fill_defaults(args, quick if args.quick else full_defaults() | dict(modes="eager,compile"))
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.phase_list = [ph.strip() for ph in args.phases.split(",") if ph.strip()]
    if bad := [m for m in args.mode_list if m not in MODES]:
        p.error(f"--modes: unknown {bad}; choose from {MODES}")
    if bad := [ph for ph in args.phase_list if ph not in bench.PHASES]:
        p.error(f"--phases: unknown {bad}; choose from {bench.PHASES}")
    if not args.phase_list or not getattr(args, "mode_list", [None]):
        p.error("--phases (and --modes) need at least one entry")
    if args.reps < 2 or args.warmup < 1 or args.workers < 1:
        p.error(
            "--reps must be >= 2 (the ratio pairs repetitions), --warmup >= 1 (the first step compiles) and "
            "--workers >= 1"
        )
    check_numbers(p, args)
    if args.worker is None:  # a worker writes nothing
        bench.check_output(p, "--out-dir", args.out_dir)
    return args


def check_numbers(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The numeric options this script and ``bench_speedup.py`` share, in range (``bench.check_ranges``)."""
    counts = ("max_iters", "threads", "batch_size", "batch_size_cifar", "img_size")
    fractions = ("eff_tol",) if hasattr(args, "eff_tol") else ()  # bench_speedup's target is fixed at 1.0
    bench.check_ranges(
        p, args, counts=counts, at_least_0=("min_rep_s",), positive=("worker_timeout",), fractions=fractions
    )


def full_defaults() -> dict[str, Any]:
    """The settings of a full run that this script and ``bench_speedup.py`` share (an explicit option wins)."""
    return dict(
        models=",".join(s for s in bench.DEFAULT_MODELS if bench.family_of(s) in bench.CHECKED),
        reps=7,
        workers=2,
        min_rep_s=0.4,
        isolate="subprocess",
        threads=bench.core_count(),
        batch_size=8,
        batch_size_cifar=64,
        warmup=2,
        out_dir=str(bench.RESULTS),
    )


def fill_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> None:
    for key, value in defaults.items():  # an explicit option wins over --quick and the full run
        if getattr(args, key) is None:
            setattr(args, key, value)


def machine_of(args: argparse.Namespace) -> dict[str, Any]:
    """The header facts of a run: CPU, threads, the allocator the workers run with, the load at the start."""
    return dict(
        cpu=bench.cpu_name(),
        threads=args.threads,
        malloc="heap kept (cpu_heap.keep_heap)" if args.keep_heap else bench.malloc_settings(),
        load_start=os.getloadavg()[0],
    )


def run_workers(
    cfg: dict[str, Any], args: argparse.Namespace, measure: Callable, script: Path, label: str, log=print
) -> list[dict[str, Any]]:
    """``measure(cfg)`` in ``args.workers`` workers (subprocesses of ``script``, or in-process with
    ``--isolate none``); the odd ones get ``ref_first`` and build the other nets before the model."""
    results = []
    for w in range(args.workers):
        log(f"{label}, worker {w + 1}/{args.workers}", flush=True)
        cfg["ref_first"] = w % 2 == 1
        if args.isolate == "subprocess":
            results.append(bench.run_isolated(cfg, args.worker_timeout, script=script))
        else:
            results.append(measure(cfg))
    return results


def write_outputs(
    rows: list[dict[str, Any]], machine: dict[str, Any], text: str, out_dir: str, stem: str, log=print
) -> dict[str, Any]:
    """``<stem>.md`` (``text``) and ``<stem>.json`` (machine and rows, raw times included) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{stem}.md", "json": out / f"{stem}.json"}
    paths["md"].write_text(text)
    paths["json"].write_text(json.dumps(dict(machine=machine, rows=rows), indent=1))
    log(text)
    return dict(rows=rows, text=text, paths=paths)


def run_pairs(args: argparse.Namespace, log=print) -> dict[str, Any]:
    # the styles, references and sizes of benchmark.py (its modes do not matter: eager spares the compile check)
    sizes = ["--batch-size", str(args.batch_size), "--batch-size-cifar", str(args.batch_size_cifar)]
    bargs = bench.parse_args([*sizes, "--modes", "eager"])
    bargs.img_size = args.img_size
    pairs = pairs_for(args, bargs)
    machine = machine_of(args)
    rows = []
    for info, ref in pairs:
        for mode in args.mode_list:
            cfg = dict(
                model=info["model"],
                ref=ref["model"],
                mode=mode,
                phases=args.phase_list,
                batch=info["batch"],
                img_size=info["img_size"],
                threads=args.threads,
                warmup=args.warmup,
                reps=args.reps,
                min_rep_s=args.min_rep_s,
                max_iters=args.max_iters,
                keep_heap=args.keep_heap,
            )
            label = f"[pairs] {info['model']} vs {ref['model']} ({mode})"
            where = dict(batch=info["batch"], img_size=info["img_size"])
            results = run_workers(cfg, args, measure_pair, Path(__file__), label, log)
            if errors := [res["error"] for res in results if "error" in res]:
                rows.append(dict(model=info["model"], ref=ref["model"], mode=mode, error=errors[0], **where))
                continue
            for phase, t in pool_workers(results, info["gmacs"], ref["gmacs"]).items():
                r = paired_ratio(t["a_s"], t["b_s"], info["gmacs"], ref["gmacs"])
                ok = r["ratio"] >= 1 - args.eff_tol
                rows.append(
                    dict(
                        model=info["model"],
                        ref=ref["model"],
                        phase=phase,
                        mode=mode,
                        macs_ratio=info["gmacs"] / ref["gmacs"],
                        **where,
                        result=bench.verdict(ok, r["lo"], r["hi"], 1 - args.eff_tol),
                        **t,
                        **r,
                    )
                )
    machine["load_end"] = os.getloadavg()[0]
    return write_outputs(rows, machine, markdown(rows, args, machine), args.out_dir, "pairs", log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        bench.worker_main(args.worker, measure_pair)
        return 0
    run_pairs(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
