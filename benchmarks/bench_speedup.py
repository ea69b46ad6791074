"""Target 3 of the speed issue, measured in alternation: the torch.compile speed-up of each model against the one
timm's ``resnet50`` gets, with the eager and the compiled steps of both (and of the model's timm reference of the
same block type) timed in turn in one worker.

``benchmark.py`` times eager and compiled in separate interpreters, one after the other, so its speed-up ratio
divides four moments of the machine. On a shared 2-core VM that moved target 3 from 10 of 12 passing to 2 of 12
between two runs of the same code. Here one worker builds the model, ``resnet50`` and the reference, wraps each in
``torch.compile`` (the compiled module shares the eager one's weights and optimizer), and runs the six steps in
turn, repetition by repetition. Each repetition gives the speed-ups eager time / compiled time of all three, and
the ratio of target 3 is the model's over resnet50's, repetition by repetition: its median over all workers, with
quartiles, and each worker's median. Half of the workers build the other models first (heap layout, see
``bench_pairs.py``).

Usage::

    python benchmarks/bench_speedup.py                                  # the six checked models, about 40 min
    python benchmarks/bench_speedup.py --models zerosnet20_cifar --phases train --reps 9
    python benchmarks/bench_speedup.py --quick                          # smoke configuration, in-process
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as bench  # noqa: E402  (also makes the repository importable and registers our models)
from bench_pairs import (  # noqa: E402
    check_numbers,
    fill_defaults,
    full_defaults,
    input_of,
    machine_of,
    run_workers,
    time_alternated,
    write_outputs,
)

from timm_zerosnet.cpu_heap import require_kept_heap  # noqa: E402

ROLES = ("model", "baseline", "ref")  # the order of the entries of a worker's cfg["nets"]


def measure_speedups(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build every net of ``cfg['nets']`` (spec, batch, img_size), eager and compiled, and time the two steps of each
    in turn, phase by phase. Returns per phase and net the seconds per step of each repetition, eager and
    compiled."""
    if cfg.get("keep_heap"):
        require_kept_heap("--keep-heap")
    torch.set_num_threads(cfg["threads"])
    nets = cfg["nets"]
    order = list(range(len(nets)))
    if cfg.get("ref_first"):  # which one is built first: see the module docstring
        order = order[1:] + order[:1]
    modules: list[Any] = [None] * len(nets)
    steps: list[Any] = [None] * len(nets)
    for k in order:
        model, x, y, opt = bench.setup_model(nets[k]["spec"], nets[k]["batch"], nets[k]["img_size"])
        compiled = torch.compile(model, backend=cfg.get("backend", "inductor"))
        modules[k] = model
        steps[k] = (bench.make_steps(model, opt, x, y), bench.make_steps(compiled, opt, x, y))
    bench.prime("cpu")
    phases = {}
    for phase in cfg["phases"]:
        for model in modules:
            model.train(phase == "train")
        flat = [s[phase] for pair in steps for s in pair]  # net 0 eager, net 0 compiled, net 1 eager, ...
        t = time_alternated(flat, cfg["warmup"], cfg["reps"], cfg["min_rep_s"], cfg["max_iters"])
        phases[phase] = [
            dict(eager_s=t["s"][2 * k], compiled_s=t["s"][2 * k + 1], iters=t["iters"][2 * k : 2 * k + 2])
            for k in range(len(nets))
        ]
    torch._dynamo.reset()
    return dict(model=nets[0]["spec"], mode="compile", phases=phases)


def speedup_ratio(mine: dict[str, list[float]], theirs: dict[str, list[float]]) -> dict[str, float]:
    """Target 3 repetition by repetition: (eager / compiled time of mine) / (eager / compiled time of theirs), the
    median and quartiles, with the median speed-up of each."""
    n = len(mine["eager_s"])
    if not n or any(len(d[key]) != n for d in (mine, theirs) for key in ("eager_s", "compiled_s")):
        raise ValueError("speed-ups need the same number of eager and compiled repetitions for both nets")
    own = [e / c for e, c in zip(mine["eager_s"], mine["compiled_s"])]
    other = [e / c for e, c in zip(theirs["eager_s"], theirs["compiled_s"])]
    q1, med, q3 = bench.quartiles([a / b for a, b in zip(own, other)])
    return dict(ratio=med, lo=q1, hi=q3, speedup=statistics.median(own), other_speedup=statistics.median(other))


def pool(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Phase by phase and net by net, the repetitions of all workers (still paired position by position), with
    each worker's target-3 ratio of the model over the baseline."""
    pooled: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        for phase, nets in res["phases"].items():
            slots = pooled.setdefault(phase, [dict(eager_s=[], compiled_s=[], worker_ratios=[]) for _ in nets])
            for slot, t in zip(slots, nets):
                slot["eager_s"] += t["eager_s"]
                slot["compiled_s"] += t["compiled_s"]
            slots[0]["worker_ratios"].append(speedup_ratio(nets[0], nets[1])["ratio"])
    return pooled


def nets_for(args: argparse.Namespace, bargs: argparse.Namespace) -> list[list[dict[str, Any]]]:
    """For every checked model of the selection: [model, baseline, (its reference)] with their batch and size."""
    base = bench.model_info(args.baseline, bargs)
    out = []
    for spec in bench.expand_models(args.models):
        info = bench.model_info(spec, bargs)
        if info["family"] not in bench.CHECKED:
            continue
        chosen = [info, base]
        if args.ref:
            ref = bench.reference_for(info, bargs)
            if ref is None:
                raise SystemExit(f"{spec}: no timm reference of the same block type; pass --no-ref")
            chosen.append(bench.model_info(ref, bargs))
        out.append([dict(spec=i["model"], batch=i["batch"], img_size=i["img_size"]) for i in chosen])
    if not out:
        raise SystemExit(f"--models {args.models!r} selects none of the checked families {bench.CHECKED}")
    return out


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, machine: dict[str, Any]) -> str:
    lines = [
        f"# Target 3, alternated: the torch.compile speed-up of each model over the one {args.baseline} gets",
        "",
        f"- {machine['cpu']}, {machine['threads']} threads; torch {torch.__version__}; load average "
        f"{machine['load_start']:.2f} at start / {machine['load_end']:.2f} at end; CPU allocator: {machine['malloc']}",
        f"- {args.workers} worker processes per model (half of them build the other nets first), {args.reps} "
        f"repetitions per step and phase in each, each >= {args.min_rep_s} s, the eager and compiled steps of the "
        "model, the baseline and the reference timed in turn; speed-up = eager time / compiled time of one "
        "repetition (median in the table); x baseline = the model's speed-up over the baseline's, repetition by "
        "repetition: median of all workers, quartiles in brackets, then each worker's median; x ref = the same "
        "against timm's model of the same block type (not a target)",
        "",
        "| model | input | phase | eager ms | compiled ms | speed-up | baseline | its input | its speed-up "
        "| x baseline [q1-q3] | per worker | ref | its speed-up | x ref | target | result |",
        "|---|---|---|---:|---:|---:|---|---|---:|---|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['model']} | {input_of(r)} | - | - | - | - | {r['baseline']} | {input_of(r, 'baseline_')} | "
                f"- | - | - | - | - | - | - | {r['error']} |"
            )
            continue
        per_worker = " / ".join(f"{w:.2f}" for w in r["worker_ratios"])
        ref = (r["ref"], f"{r['ref_speedup']:.2f}x", f"{r['x_ref']:.3f}") if r.get("ref") else ("-", "-", "-")
        lines.append(
            f"| {r['model']} | {input_of(r)} | {r['phase']} | {r['eager_ms']:.1f} | {r['compiled_ms']:.1f} | "
            f"{r['speedup']:.2f}x | {r['baseline']} | {input_of(r, 'baseline_')} | {r['other_speedup']:.2f}x | "
            f"{r['ratio']:.3f} [{r['lo']:.2f}-{r['hi']:.2f}] | "
            f"{per_worker} | {ref[0]} | {ref[1]} | {ref[2]} | >= 1.00 | {r['result']} |"
        )
    ok = sum(r.get("result", "").startswith("PASS") for r in rows)
    lines += ["", f"{ok}/{len(rows)} PASS"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="our models (names or wildcards); default: the checked six")
    p.add_argument(
        "--baseline", default=None, help="the model whose speed-up ours must reach (target 3; default resnet50)"
    )
    p.add_argument("--no-ref", dest="ref", action="store_false", help="skip timm's model of the same block type")
    p.add_argument("--phases", default="infer,train")
    p.add_argument("--reps", type=int, default=None, help="repetitions per worker and phase (default 7)")
    p.add_argument("--workers", type=int, default=None, help="worker processes per model (default 2)")
    p.add_argument("--min-rep-s", type=float, default=None, help="a repetition lasts at least this (default 0.4)")
    p.add_argument("--max-iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per step function (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--batch-size", "-b", type=int, default=None, help="batch of 224-style models (default 8)")
    p.add_argument("--batch-size-cifar", type=int, default=None, help="batch of 32x32 models (default 64)")
    p.add_argument("--img-size", type=int, default=None, help="input size of 224-style models (default: theirs)")
    p.add_argument("--backend", default="inductor", help="torch.compile backend")
    p.add_argument("--keep-heap", action="store_true", help="workers keep freed memory in the heap (cpu_heap.py)")
    p.add_argument("--isolate", choices=("subprocess", "none"), default=None, help="a worker process per model")
    p.add_argument("--worker-timeout", type=float, default=2400)
    p.add_argument("--out-dir", default=None, help="default: benchmarks/results (--quick: benchmarks/results/quick)")
    p.add_argument("--quick", action="store_true", help="smoke configuration: one CIFAR model, tiny, in-process")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = dict(models="zerosnet20_cifar", baseline="timm-resnet20_cifar", reps=2, workers=1, min_rep_s=0.0)
    quick.update(isolate="none", threads=1, batch_size=2, batch_size_cifar=2, warmup=1)
    quick.update(out_dir=str(bench.QUICK_RESULTS))
    fill_defaults(args, quick if args.quick else full_defaults() | dict(baseline="resnet50"))
    args.phase_list = [ph.strip() for ph in args.phases.split(",") if ph.strip()]
    if bad := [ph for ph in args.phase_list if ph not in bench.PHASES]:
        p.error(f"--phases: unknown {bad}; choose from {bench.PHASES}")
    if not args.phase_list or not getattr(args, "mode_list", [None]):
        p.error("--phases (and --modes) need at least one entry")
    if args.reps < 2 or args.warmup < 1 or args.workers < 1:
        p.error("--reps must be >= 2, --warmup >= 1 (the first step compiles) and --workers >= 1")
    check_numbers(p, args)
    if args.worker is None:  # a worker: its parent did, and it writes nothing
        bench.check_compile(p, args.backend, None, f"--backend {args.backend!r}")
        bench.check_output(p, "--out-dir", args.out_dir)
    return args


def run_speedups(args: argparse.Namespace, log=print) -> dict[str, Any]:
    # the styles, references and sizes of benchmark.py (its modes do not matter: eager spares the compile check)
    sizes = ["--batch-size", str(args.batch_size), "--batch-size-cifar", str(args.batch_size_cifar)]
    bargs = bench.parse_args([*sizes, "--modes", "eager"])
    bargs.img_size = args.img_size
    if not bench.is_known(args.baseline):
        raise SystemExit(f"--baseline {args.baseline!r} is neither a timm model nor one of the benchmark's own")
    selection = nets_for(args, bargs)
    machine = machine_of(args)
    rows = []
    for nets in selection:
        cfg = dict(
            nets=nets,
            phases=args.phase_list,
            threads=args.threads,
            warmup=args.warmup,
            reps=args.reps,
            min_rep_s=args.min_rep_s,
            max_iters=args.max_iters,
            keep_heap=args.keep_heap,
            backend=args.backend,
            model=nets[0]["spec"],
            mode="compile",
        )
        names = dict(model=nets[0]["spec"], baseline=nets[1]["spec"], ref=nets[2]["spec"] if len(nets) > 2 else None)
        names.update(batch=nets[0]["batch"], img_size=nets[0]["img_size"])
        names.update(baseline_batch=nets[1]["batch"], baseline_img_size=nets[1]["img_size"])
        label = f"[speedup] {' / '.join(n['spec'] for n in nets)}"
        results = run_workers(cfg, args, measure_speedups, Path(__file__), label, log)
        if errors := [res["error"] for res in results if "error" in res]:
            rows.append(dict(**names, error=errors[0]))
            continue
        for phase, slots in pool(results).items():
            r = speedup_ratio(slots[0], slots[1])
            row = dict(**names, phase=phase, worker_ratios=slots[0]["worker_ratios"], **r)
            row["eager_ms"] = statistics.median(slots[0]["eager_s"]) * 1e3
            row["compiled_ms"] = statistics.median(slots[0]["compiled_s"]) * 1e3
            if len(slots) > 2:
                against_ref = speedup_ratio(slots[0], slots[2])
                row.update(x_ref=against_ref["ratio"], ref_speedup=against_ref["other_speedup"])
            row["result"] = bench.verdict(r["ratio"] >= 1.0, r["lo"], r["hi"], 1.0)
            row["nets"] = slots
            rows.append(row)
    machine["load_end"] = os.getloadavg()[0]
    return write_outputs(rows, machine, markdown(rows, args, machine), args.out_dir, "speedup", log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        bench.worker_main(args.worker, measure_speedups)
        return 0
    run_speedups(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
