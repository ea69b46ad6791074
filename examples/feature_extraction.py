"""A ZeroSNet backbone as a multi-scale feature extractor (``features_only=True``) feeding a small head.

The backbone returns one feature map per stage (16x32x32, 32x16x16, 64x8x8 for zerosnet20_cifar); each is
average-pooled and the three vectors are concatenated into a 112-d descriptor. The backbone stays frozen, so the
descriptors are computed once and a linear head trains on them in a fraction of a second.

    python examples/feature_extraction.py [--checkpoint runs/demo/model.safetensors] [--model NAME]

With the demo's checkpoint (``make demo``), another run of ``zerosnet-train`` or a weights file (read as
``--pretrained-path`` reads them: architecture, channels, options and preprocessing of the run) the features come from
a trained network; without one from a randomly initialised network (still a usable baseline on digits). ``--model``
defaults to the architecture the run's run.json names (a bare weights file: zerosnet20_cifar).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn as nn
from timm.data import create_transform, resolve_data_config

import timm_zerosnet  # noqa: F401  (registers the models with timm)
from timm_zerosnet.data import create_datasets
from timm_zerosnet.run_layout import run_architecture
from timm_zerosnet.train import match_channels, pretrained_overlay, resolve_weights


@torch.no_grad()
def extract(backbone: nn.Module, dataset, transform, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled multi-scale descriptors and labels of a whole dataset."""
    feats, labels = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = torch.stack([transform(img) for img, _ in items])
        maps = backbone(x)
        feats.append(torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1))
        labels.append(torch.tensor([t for _, t in items]))
    return torch.cat(feats), torch.cat(labels)


def load_backbone(model: str, checkpoint: Path | None) -> tuple[nn.Module, dict]:
    """A ``features_only`` backbone (random without a checkpoint) and the preprocessing its weights expect.

    The checkpoint is read as ``zerosnet-train --pretrained-path`` reads it: a run directory (or a weights file in
    one) brings its architecture options, input channels and data config from run.json; for a bare weights file the
    classes and channels come from its classifier and first conv.
    """
    kwargs, data_config = {}, None
    if checkpoint is not None:
        # the classifier of the checkpoint is not part of a features_only model; timm drops it
        overlay, info = pretrained_overlay(checkpoint, model)
        kwargs = dict((info or {}).get("model_kwargs") or {}, pretrained=True, pretrained_cfg_overlay=overlay)
        data_config = info["data_config"] if info is not None else None
    backbone = timm.create_model(model, features_only=True, **kwargs).eval()
    data_config = data_config or resolve_data_config(model=backbone)  # the overlay's input size, RGB statistics
    return backbone, match_channels(data_config, data_config["input_size"][0])


DEMO_MODEL, DEMO_WEIGHTS = "zerosnet20_cifar", Path("runs/demo/model.safetensors")  # what `make demo` trains


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=None,
        help=f"architecture (default: the run's, from the run.json of a run or of a weights file in one; else "
        f"{DEMO_MODEL})",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help=f"weights file or run directory (default: {DEMO_WEIGHTS} for {DEMO_MODEL} if `make demo` wrote it)",
    )
    args = parser.parse_args(argv)
    tic = time.perf_counter()
    torch.manual_seed(0)

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if checkpoint is None and args.model in (None, DEMO_MODEL) and DEMO_WEIGHTS.is_file():
        checkpoint = DEMO_WEIGHTS
    model = args.model
    if model is None and checkpoint is not None:  # a run of any family: the architecture its run.json names
        try:
            _, info = resolve_weights(checkpoint, pass_file_as=("use", "--checkpoint"))
        except (FileNotFoundError, ValueError) as e:
            parser.error(f"--checkpoint {checkpoint}: {e}")
        model = run_architecture(info) if info is not None else None
    model = model or DEMO_MODEL
    if checkpoint is None:
        print(f"No checkpoint for {model} (run `make demo` or pass --checkpoint): a random backbone")
    try:
        backbone, data_config = load_backbone(model, checkpoint)
    except (FileNotFoundError, RuntimeError, ValueError) as e:  # no weights, an unknown name, another architecture
        parser.error(f"cannot build {model}{f' from {checkpoint}' if checkpoint else ''}: {e}")
    levels = backbone.feature_info
    print(f"{model} features: channels {levels.channels()}, reductions {levels.reduction()}")

    transform = create_transform(**data_config, is_training=False)
    img_mode = "L" if data_config["input_size"][0] == 1 else "RGB"
    splits = create_datasets({"dataset": "digits", "input_img_mode": img_mode})
    x_train, y_train = extract(backbone, splits.train, transform)
    x_val, y_val = extract(backbone, splits.val, transform)

    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    head = nn.Linear(x_train.shape[1], len(splits.label_names))
    optimizer = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head((x_train - mean) / std), y_train) + 1e-4 * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        top1 = (head((x_val - mean) / std).argmax(1) == y_val).float().mean().item() * 100
    seconds = time.perf_counter() - tic
    print(f"Linear head on {x_train.shape[1]}-d pooled features: validation top-1 {top1:.2f}% ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
