"""Overhead of zerosnet-train's loop against a bare PyTorch loop: same model, data, transform and batch size.

Both arms train zerosnet20_cifar on the embedded digits (1,440 images per epoch at batch 32, 32x32, the demo recipe's
augmentation) with SGD and cross-entropy, in one process, with the same torch thread count:

* bare: ``DataLoader(shuffle=True)`` -> forward -> loss -> backward -> ``optimizer.step()``;
* wrapper: ``Trainer.train_one_epoch`` -- accelerate (prepare, accumulate, backward), the per-sample seeded
  augmentation, the per-step non-finite check (a gather and a host sync), timm's scheduler ``step_update``, the
  running loss, and the mid-epoch bookkeeping.

The arms alternate (bare, wrapper, bare, ...) so load drift on a shared machine hits both, and the report gives the
median images/s of each and their ratio, by wall clock and by CPU time of the process (the latter is steadier on a
loaded machine). Checkpoint saving and evaluation are not part of the measured epoch. Both arms run on the heap
that zerosnet-train keeps on CPU (``cpu_heap.keep_heap``; ``--no-keep-heap``: glibc's defaults).

    python benchmarks/bench_train_overhead.py [--rounds 5] [--train-num-samples 1442] [--threads N] [--json out.json]
        [--no-keep-heap]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn as nn
from accelerate.state import AcceleratorState, GradientState
from torch.utils.data import DataLoader

if __package__ in (None, ""):  # run as a script: make the repository importable without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark import check_output, check_ranges  # noqa: E402

import timm_zerosnet  # noqa: E402,F401  (registers the models)
from timm_zerosnet.cpu_heap import keep_heap  # noqa: E402
from timm_zerosnet.data import TransformDataset  # noqa: E402
from timm_zerosnet.train import Trainer, parse_args  # noqa: E402

RECIPE = "digits_demo"


def recipe_batch() -> int:
    """The images of one optimizer update in the recipe both arms train with (its batch size and accumulation)."""
    recipe = parse_args(["-c", RECIPE])
    return recipe.batch_size * recipe.grad_accum_steps


def bare_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer) -> int:
    """One epoch of the plainest loop; returns the number of images."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    seen = 0
    for x, y in loader:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += x.shape[0]
    return seen


def timed(fn) -> tuple[float, float]:
    """Wall and CPU (this process, all threads) seconds of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per arm")
    parser.add_argument(
        "--train-num-samples", type=int, default=None, help="a subset per epoch, at least one batch (default: all)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--keep-heap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="both arms on the kept heap of zerosnet-train on CPU (cpu_heap.keep_heap); --no-keep-heap: glibc's "
        "defaults",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # before the warm-up epochs: --rounds 0 and --threads 0 were tracebacks (statistics, torch), --train-num-samples 0
    # silently meant all of them, a subset smaller than one batch was zerosnet-train's traceback naming its own
    # --batch-size, and a --json that cannot be written lost the run at its end
    check_ranges(parser, args, counts=("rounds", "threads", "train_num_samples"))
    batch = recipe_batch()
    if args.train_num_samples is not None and args.train_num_samples < batch:
        parser.error(
            f"--train-num-samples {args.train_num_samples}: an epoch needs at least one batch of the {RECIPE} recipe "
            f"({batch} images); pass at least {batch}, or leave it out for the whole training set"
        )
    if args.json is not None:
        check_output(parser, "--json", args.json, file_example="overhead.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    # the allocator zerosnet-train's entry point runs under (Trainer itself leaves it alone), for both arms alike
    allocator = keep_heap() if args.keep_heap else "glibc's defaults (--no-keep-heap)"

    with tempfile.TemporaryDirectory() as tmp:
        argv_train = ["-c", RECIPE, "--output", tmp, "--experiment", "bench", "--epochs", str(args.rounds + 1)]
        if args.train_num_samples is not None:
            argv_train += ["--train-num-samples", str(args.train_num_samples)]
        trainer = Trainer.from_args(parse_args(argv_train))
        cfg = trainer.args

        # the bare arm: its own model (same init), the same transform without per-sample seeding, a plain loader
        torch.manual_seed(cfg.seed)
        bare_model = timm.create_model(cfg.model, num_classes=cfg.num_classes)
        bare_opt = torch.optim.SGD(
            bare_model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        plain = TransformDataset(trainer.train_dataset.dataset, trainer.train_dataset.transform, seed=None)
        bare_loader = DataLoader(
            plain, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=cfg.workers
        )

        # untimed warm-up of both arms (allocator, oneDNN primitive caches)
        bare_epoch(bare_model, bare_loader, bare_opt)
        trainer.train_one_epoch(0)
        images = len(bare_loader) * cfg.batch_size
        times: dict[str, list[tuple[float, float]]] = {"bare": [], "wrapper": []}
        for epoch in range(1, args.rounds + 1):
            times["bare"].append(timed(lambda: bare_epoch(bare_model, bare_loader, bare_opt)))
            times["wrapper"].append(timed(lambda e=epoch: trainer.train_one_epoch(e)))
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()

    result = {"model": cfg.model, "images_per_epoch": images, "batch_size": cfg.batch_size, "rounds": args.rounds}
    result["torch_threads"] = torch.get_num_threads()
    result["cpu_allocator"] = allocator
    for arm, samples in times.items():
        result[f"{arm}_images_per_s"] = [images / wall for wall, _ in samples]
        result[f"{arm}_images_per_cpu_s"] = [images / cpu for _, cpu in samples]
        result[f"{arm}_median_images_per_s"] = statistics.median(result[f"{arm}_images_per_s"])
        result[f"{arm}_median_images_per_cpu_s"] = statistics.median(result[f"{arm}_images_per_cpu_s"])
    for unit in ("images_per_s", "images_per_cpu_s"):
        result[f"ratio_{unit}"] = result[f"wrapper_median_{unit}"] / result[f"bare_median_{unit}"]
    print(
        f"{cfg.model}, batch {cfg.batch_size}, {images} images/epoch, {result['torch_threads']} torch threads, "
        f"{args.rounds} alternating rounds (median; per-round values in brackets); CPU allocator: {allocator}"
    )
    for arm, label in (("bare", "bare PyTorch loop  "), ("wrapper", "zerosnet-train loop")):
        wall = result[f"{arm}_images_per_s"]
        cpu = result[f"{arm}_images_per_cpu_s"]
        print(
            f"  {label} {result[f'{arm}_median_images_per_s']:7.1f} images/s {[round(v, 1) for v in wall]}"
            f"   {result[f'{arm}_median_images_per_cpu_s']:7.1f} images/CPU-s {[round(v, 1) for v in cpu]}"
        )
    print(
        f"  ratio wrapper / bare: {result['ratio_images_per_s']:.3f} (wall clock), "
        f"{result['ratio_images_per_cpu_s']:.3f} (CPU time)"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
