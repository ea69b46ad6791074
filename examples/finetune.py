"""Fine-tune a checkpoint with a new head and a one-channel stem, on the embedded digits.

The task changes from "which digit" (10 classes, RGB) to "even or odd" (2 classes, grey images): the example writes
the digits as grey PNGs into an ImageFolder (even/ and odd/ under train/ and val/), then `zerosnet-train` loads the
checkpoint with ``--pretrained-path``; timm drops the 10-class classifier for a new 2-class one and sums the RGB
filters of the first conv into a grey one (``--in-chans 1``). The backbone is frozen (``--freeze-backbone``), so
only the head trains and an epoch costs little more than a forward pass.

    python examples/finetune.py [--source runs/demo]

Without --source it starts from runs/demo (``make demo`` writes it) or, when there is none, first trains a short
source run; a --source that holds no weights is an error. A run of any family fine-tunes as the architecture its
run.json names; a bare weights file is read as zerosnet20_cifar unless --model names its architecture.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import timm_zerosnet  # noqa: F401  (registers the models with timm)
from timm_zerosnet.data import DigitsDataset
from timm_zerosnet.run_layout import file_in_the_way, run_architecture
from timm_zerosnet.train import USAGE_ERRORS, parse_args, pretrained_overlay, resolve_weights, train, usage_error


def write_parity_folder(root: Path) -> Path:
    """The digits as grey PNGs in an ImageFolder with classes even/odd."""
    for split in ("train", "val"):
        ds = DigitsDataset(split, img_mode="L")
        for parity in ("even", "odd"):
            (root / split / parity).mkdir(parents=True, exist_ok=True)
        for i in range(len(ds)):
            img, target = ds[i]
            img.save(root / split / ("odd" if target % 2 else "even") / f"{i:04d}.png")
    return root


DEMO_RUN, DEFAULT_MODEL = Path("runs/demo"), "zerosnet20_cifar"  # what `make demo` writes, and its model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", default=None, help=f"run directory or weights file to start from (default: {DEMO_RUN} if there)"
    )
    parser.add_argument("--output", default="runs", help="parent of the run directories written here")
    parser.add_argument(
        "--model",
        default=None,
        help=f"architecture to fine-tune (default: the source run's, from its run.json; else {DEFAULT_MODEL})",
    )
    args = parser.parse_args(argv)
    blocker = file_in_the_way(args.output)
    if blocker is not None:  # before a source run is trained, and before the images are written under it
        parser.error(
            f"--output {args.output}: {blocker} is a file, and the runs and the parity images are folders inside "
            "--output; choose a folder"
        )
    tic = time.perf_counter()

    source = Path(args.source or DEMO_RUN)
    try:
        _, info = resolve_weights(source, pass_file_as=("fine-tune", "--source"))  # as --pretrained-path reads it
        has_weights = True
    except (FileNotFoundError, ValueError) as e:
        if args.source is not None:
            parser.error(f"--source: {e}")
        has_weights, info = False, None
    # a run of another family was refused with "pass --model ...", an option this script did not have
    model = args.model or (run_architecture(info) if info is not None else None) or DEFAULT_MODEL
    try:
        if has_weights:  # --pretrained-path's checks (a --model of another architecture) before any image is written
            pretrained_overlay(source, model)
        else:
            print(f"No checkpoint at {source}: training a short source run first")
            source = Path(args.output) / "finetune-source"
            argv = ["-c", "digits_demo", "--model", model, "--epochs", "2", "--output", args.output]
            argv += ["--experiment", source.name]
            train(parse_args([*argv, "--resume", "auto"]))
        data = write_parity_folder(Path(args.output) / "digits-parity")
        options = (
            "-c digits_demo --dataset folder --in-chans 1 --freeze-backbone --epochs 3 --lr 0.05 --warmup-epochs 0"
        )
        where = ["--model", model, "--data-dir", str(data), "--pretrained-path", str(source), "--output", args.output]
        summary = train(parse_args([*options.split(), *where, "--experiment", "finetune-parity", "--resume", "auto"]))
    except USAGE_ERRORS as e:  # e.g. an earlier finetune-parity run from another --source: one line, not a traceback
        return usage_error("finetune.py", e)
    final = summary["metrics"]["final"]
    print(
        f"\nFine-tuned {summary['model']} from {source}: classes {summary['label_names']}, in_chans "
        f"{summary['in_chans']}, frozen backbone; top-1 {final['top1']:.2f}% ({final['val_correct1']}/"
        f"{final['val_samples']}) in {time.perf_counter() - tic:.0f} s. Run directory: {args.output}/finetune-parity"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
