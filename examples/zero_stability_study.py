"""A miniature of the ZeroSNet paper's experiment: does zero stability predict accuracy?

Trains the same deep CIFAR-style network on the embedded digits data with several schemes (ZeroSNet Opt,
lambda = 1, lambda = -1.2, the non-zero-stable coefficients (1, 1, 1, 1), and LM-ResNet / Euler for reference),
a few seeds each, and plots validation accuracy against the largest spurious-root modulus of each scheme
(``timm_zerosnet.analysis``). A run whose loss becomes non-finite is recorded as diverged (chance accuracy).

    python examples/zero_stability_study.py [--depth 56] [--epochs 4] [--seeds 0 1 2] [--img-size 16]

Writes ``runs/zero_stability_study/{results.csv,results.md,accuracy_vs_modulus.png}``. Defaults take about
6 minutes on two CPU cores (README); the 8x8 digits are trained at 16x16 to keep a 56-layer network affordable.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import sys
import time
from pathlib import Path

import timm

import timm_zerosnet  # noqa: F401  (registers the models)
from timm_zerosnet.analysis.stability import analyze_scheme
from timm_zerosnet.run_layout import file_in_the_way
from timm_zerosnet.train import USAGE_ERRORS, NonFiniteLossError, parse_args, train, usage_error

# (label, family, model kwargs)
SCHEMES = [
    ("ZeroSNet Opt (lambda=-9/5)", "zerosnet", {}),
    ("ZeroSNet lambda=1", "zerosnet", {"lam": 1.0}),
    ("ZeroSNet lambda=-1.2", "zerosnet", {"lam": -1.2}),
    ("ZeroSNet (1, 1, 1, 1)", "zerosnet", {"coefficients": (1.0, 1.0, 1.0, 1.0)}),
    ("LM-ResNet", "lmresnet", {}),
    ("Euler (PreResNet)", "preresnet", {}),
]


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: an interrupted or failed write leaves an earlier file as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when writing failed


def scheme_modulus(model_name: str, kwargs: dict) -> float:
    """Largest spurious-root modulus over the model's multistep blocks, at initialisation."""
    model = timm.create_model(model_name, **kwargs)
    worst = 0.0
    for row in model.block_coefficients():
        if row["role"] == "multistep":
            worst = max(worst, analyze_scheme(row["a"], row["b"]).max_spurious_modulus)
    return worst


def run_one(
    model_name: str,
    kwargs: dict,
    seed: int,
    args: argparse.Namespace,
    out: Path,
    tag: str,
) -> tuple[float, str]:
    argv = [
        "-c",
        "digits_demo",
        "--model",
        model_name,
        "--epochs",
        str(args.epochs),
        "--seed",
        str(seed),
        "--img-size",
        str(args.img_size),
        "--output",
        str(out),
        # one directory per setting, continued (or, when finished, reused) by a rerun with the same --out
        "--experiment",
        f"{tag}-e{args.epochs}-s{args.img_size}-seed{seed}",
        "--resume",
        "auto",
    ]
    for key, value in kwargs.items():
        argv += ["--model-kwargs", f"{key}={value!r}".replace(" ", "")]
    try:
        summary = train(parse_args(argv))
    except NonFiniteLossError as e:
        print(f"  diverged: {e}", file=sys.stderr)
        return 10.0, "diverged"  # chance level on 10 classes
    return float(summary["metrics"]["final"]["top1"]), "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=56, choices=(20, 32, 44, 56, 110))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--img-size", type=int, default=16)
    parser.add_argument("--out", default="runs/zero_stability_study")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < len(args.seeds):  # a repeated seed reuses one run and would count it twice
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: each seed once")
    if bad := [seed for seed in args.seeds if not 0 <= seed < 2**32]:  # was train's traceback at its first run
        parser.error(f"--seeds: {bad[0]} is not a seed; seeds are whole numbers from 0 to {2**32 - 1}")
    for flag, value in (("--epochs", args.epochs), ("--img-size", args.img_size)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    out = Path(args.out)
    blocker = file_in_the_way(out)
    if blocker is not None:
        parser.error(f"--out {out}: {blocker} is a file, and the study writes a folder of results; choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only place, /proc/...: mkdir's bare traceback before
        parser.error(f"--out {out}: cannot create the folder ({e.strerror or e}); choose a folder you can write to")

    rows = []
    tic = time.perf_counter()
    for index, (label, family, kwargs) in enumerate(SCHEMES):
        model_name = f"{family}{args.depth}_cifar"
        modulus = scheme_modulus(model_name, kwargs)
        accs, notes = [], []
        for seed in args.seeds:
            print(f"== {label}, seed {seed}")
            try:
                acc, note = run_one(model_name, kwargs, seed, args, out / "runs", tag=f"{index}-{model_name}")
            except USAGE_ERRORS as e:  # e.g. an earlier run in --out with other settings: one line, not a traceback
                return usage_error("zero_stability_study.py", e)
            accs.append(acc)
            notes.append(note)
        rows.append(
            dict(
                scheme=label,
                model=model_name,
                max_spurious_modulus=modulus,  # unrounded: 4 digits, then 3 in the table, made 0.82446 read 0.825
                top1_mean=round(statistics.mean(accs), 2),
                top1_std=round(statistics.pstdev(accs), 2),
                runs=len(accs),
                diverged=notes.count("diverged"),
            )
        )
    seconds = time.perf_counter() - tic

    # each output whole or not at all: a failure (a full disk, Ctrl-C) keeps the earlier study's file intact
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({**r, "max_spurious_modulus": round(r["max_spurious_modulus"], 4)} for r in rows)
    write_atomically(out / "results.csv", buffer.getvalue().encode())
    table = [
        "| scheme | model | largest spurious root modulus | top-1 % (mean +- std) | runs | diverged |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['scheme']} | {r['model']} | {r['max_spurious_modulus']:.3f} | "
            f"{r['top1_mean']:.2f} +- {r['top1_std']:.2f} | {r['runs']} | {r['diverged']} |"
        )
    header = (
        f"digits (1,442 train / 355 val) at {args.img_size}x{args.img_size}, {args.epochs} epochs, "
        f"seeds {args.seeds}, {seconds / 60:.1f} min"
    )
    write_atomically(out / "results.md", (header + "\n\n" + "\n".join(table) + "\n").encode())
    print(header)
    print("\n".join(table))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.errorbar(r["max_spurious_modulus"], r["top1_mean"], yerr=r["top1_std"], fmt="o", capsize=4)
        ax.annotate(
            r["scheme"],
            (r["max_spurious_modulus"], r["top1_mean"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("largest spurious-root modulus (> 1: not zero stable)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"{args.depth}-layer networks on digits: accuracy vs zero stability")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    plt.close(fig)
    write_atomically(out / "accuracy_vs_modulus.png", image.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
