"""Evaluate a checkpoint or a pretrained model: top-1/top-5 and loss, optionally under input noise.

Usage::

    zerosnet-validate --checkpoint runs/demo                       # a run directory (reads run.json)
    zerosnet-validate --checkpoint runs/demo/model.safetensors --noise randn:0.1,rand:0.1,const:0.1
    zerosnet-validate --model zerosnet20_cifar --pretrained --dataset torch/cifar10 --data-dir ~/data

Noise robustness (the ZeroSNet paper's study): the perturbation is added in [0, 1] pixel space, clamped to [0, 1] and
only then normalised: 'randn' x + c*N(0, 1), 'rand' x + c*U[0, 1), 'const' x + c. It is a transform step between the
tensor conversion and Normalize because where the noise enters decides what c means: added after normalisation (as
the authors' CIFAR-100 script did, a bug) a scale c becomes c*std of the pixels and nothing is clamped, so results are
not comparable across datasets or with the paper's CIFAR-10 numbers. The noise of each image is drawn from a
generator seeded by ``(--noise-seed, image index)``, the index in the full split also under --num-samples:
reproducible whatever the batch size, workers, processes or subset.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from accelerate import Accelerator, PartialState
from safetensors.torch import load_file
from timm.data import create_transform, resolve_data_config
from timm.models import clean_state_dict
from torch.utils.data import DataLoader
from torchvision import transforms

from .data import TransformDataset, create_datasets, dataset_name, holds_split_folders, used_num_samples
from .release import _first_line
from .run_layout import (
    CHECKPOINT_ENTRIES,
    WEIGHT_FILES,
    check_output_file,
    published_config,
    run_architecture,
    state_weights_kind,
    weights_kind,
)
from .train import (
    INTERPOLATIONS,
    USAGE_ERRORS,
    DefaultsHelpFormatter,
    _atomic_write_text,
    _KeyValueAction,
    built_model_kwargs,
    check_compile_backend,
    check_empty_paths,
    check_minimums,
    check_ranges,
    check_stat_counts,
    create_model_checked,
    evaluate,
    image_mode,
    match_channels,
    refuse_lone_processes,
    resolve_weights,
    usage_error,
)

__all__ = ["PixelNoise", "build_parser", "create_eval_transform", "load_model", "main", "parse_noise", "validate"]

NOISE_KINDS = ("randn", "rand", "const")


class PixelNoise:
    """Add noise to a [0, 1] image tensor and clamp to [0, 1] (run it before Normalize).

    Args:
        kind: 'randn' (x + c*N(0,1)), 'rand' (x + c*U[0,1), note the non-zero mean) or 'const' (x + c).
        scale: c.
    """

    def __init__(self, kind: str, scale: float):
        if kind not in NOISE_KINDS:
            raise ValueError(f"Unknown noise {kind!r}; use one of {', '.join(NOISE_KINDS)}")
        if not math.isfinite(float(scale)):
            raise ValueError(f"noise {kind}:{scale}: the strength c must be a finite number (e.g. {kind}:0.1)")
        if kind == "randn" and scale < 0:
            raise ValueError(f"noise randn:{scale}: c is the standard deviation of the noise, so at least 0")
        if kind == "const" and abs(scale) >= 1:
            raise ValueError(
                f"noise const:{scale}: pixels are in [0, 1], so an offset of {scale} clamps every pixel to "
                f"{1 if scale > 0 else 0} and the images carry nothing; give an offset between -1 and 1 "
                "(e.g. const:0.1)"
            )
        self.kind, self.scale = kind, float(scale) + 0.0  # -0.0 is 0: one condition, labelled 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "randn":
            x = x + self.scale * torch.randn_like(x)
        elif self.kind == "rand":
            x = x + self.scale * torch.rand_like(x)
        else:
            x = x + self.scale
        return x.clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, scale={self.scale})"


class _ToUnitFloat:
    """uint8 CHW tensor (timm's un-normalised output) -> float in [0, 1], as ToTensor would give."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def parse_noise(spec: str | None) -> list[tuple[str, float]]:
    """``'randn:0.1,rand:0.1,const:0.1'`` -> [('randn', 0.1), ...]; a bare kind means c = 0.1."""
    out = []
    if spec is None:
        return out
    for item in spec.split(","):
        item = item.strip()
        if not item:  # a stray comma (or an empty --noise) was dropped without a word
            raise ValueError(
                f"--noise {spec!r}: an empty condition; list conditions such as randn:0.1,rand:0.1 separated by "
                "single commas, or leave --noise out for the clean evaluation only"
            )
        kind, colon, scale = item.partition(":")
        if colon and not scale.strip():  # 'randn:' (a strength left out) was read as randn:0.1 without a word
            raise ValueError(
                f"--noise {item!r}: no strength c after the colon; give one (e.g. {kind.strip()}:0.1), or the bare "
                f"kind ({kind.strip()}) for c = 0.1"
            )
        try:
            strength = float(scale) if colon else 0.1
        except ValueError:
            raise ValueError(
                f"--noise {item}: the strength c must be a number (e.g. {kind.strip()}:0.1), got {scale!r}"
            ) from None
        noise = PixelNoise(kind.strip(), strength)
        if (noise.kind, noise.scale) in out:
            raise ValueError(
                f"--noise lists {noise_label(noise.kind, noise.scale)} twice (results are keyed by it); give each "
                "condition once"
            )
        out.append((noise.kind, noise.scale))
    return out


def noise_label(kind: str, scale: float) -> str:
    """A condition's key in the results: 'randn:0.1' (c with %g where that is c exactly, else all its digits:
    randn:0.1234567 was labelled randn:0.123457, and with randn:0.1234568 refused as listed twice)."""
    short = f"{scale:g}"
    return f"{kind}:{short if float(short) == scale else repr(scale)}"


def create_eval_transform(data_config: dict, noise: tuple[str, float] | None = None) -> Callable:
    """timm's eval transform; with noise, timm's resize/crop, then [0, 1] tensor -> noise -> clamp -> Normalize."""
    if noise is None:
        return create_transform(**data_config, is_training=False)
    geometry = create_transform(**data_config, is_training=False, normalize=False)
    return transforms.Compose(
        list(geometry.transforms)
        + [
            _ToUnitFloat(),
            PixelNoise(*noise),
            transforms.Normalize(mean=torch.tensor(data_config["mean"]), std=torch.tensor(data_config["std"])),
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zerosnet-validate",
        description="Evaluate a checkpoint (run directory or weights file) or a pretrained timm model.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default=None, help="run directory or .safetensors file (run.json next to it)")
    p.add_argument(
        "--weights",
        default=None,
        choices=tuple(WEIGHT_FILES),
        help="which weights of a run directory (default: final); with a file, the kind it is, or 'ema' for the EMA "
        "state dict of a training checkpoint of timm's train.py",
    )
    p.add_argument("--model", default=None, help="model name (default: from run.json)")
    p.add_argument("--pretrained", action="store_true", help="evaluate the model's own pretrained weights")
    p.add_argument(
        "--model-kwargs",
        nargs="*",
        default=None,
        action=_KeyValueAction,
        help="k=v family options (default: from run.json)",
    )
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--in-chans", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default=None, help="dataset name (default: the run's dataset, else digits)")
    p.add_argument("--split", default=None, help="evaluation split (default: the run's val split)")
    p.add_argument("--dataset-download", action="store_true")
    p.add_argument("--class-map", default="")
    p.add_argument(
        "--input-img-mode",
        default=None,
        help="PIL mode the images are converted to (default: the run's, else L / RGB / RGBA for 1 / 3 / 4 channels)",
    )
    p.add_argument("--input-key", default=None, help="image column of an hfds/ dataset (default: the run's)")
    p.add_argument("--target-key", default=None, help="label column of an hfds/ dataset (default: the run's)")
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="evenly spaced subset of the split (default: the run's --val-num-samples; 0: the whole split)",
    )
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--crop-pct", type=float, default=None)
    p.add_argument(
        "--crop-mode",
        default=None,
        choices=("center", "squash", "border"),
        help="eval crop (timm's): center crop, squash the whole image, or fit it inside a border (default: the run's)",
    )
    p.add_argument("--mean", type=float, nargs="+", default=None)
    p.add_argument("--std", type=float, nargs="+", default=None)
    p.add_argument(
        "--interpolation", default=None, choices=INTERPOLATIONS, help="resize interpolation (default: the run's)"
    )
    p.add_argument("-b", "--batch-size", type=int, default=256)
    p.add_argument("-j", "--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--torchcompile", nargs="?", const="inductor", default=None, help="torch.compile backend")
    p.add_argument(
        "--noise",
        default=None,
        help="input-noise conditions kind:c, e.g. randn:0.1,rand:0.1,const:0.1, evaluated besides the clean images "
        "(a bare kind: c = 0.1). The noise is added to the [0, 1] pixels, clamped to [0, 1], then normalised: randn "
        "x + c*N(0, 1), rand x + c*U[0, 1), const x + c",
    )
    p.add_argument(
        "--noise-seed",
        type=int,
        default=None,
        help="seed of the --noise draws, made per image: the same for any batch size, workers or --num-samples "
        "(default: 0)",
    )
    p.add_argument(
        "--results-file",
        default=None,
        help="write the results: a .json file gets everything (options, data, each condition), a .csv file one "
        "row per condition (as timm's validate.py writes CSV)",
    )
    p.add_argument("--mixed-precision", default=None, choices=("no", "fp16", "bf16", "fp8"))
    p.add_argument("--cpu", action="store_true")
    return p


def load_model(args: argparse.Namespace) -> tuple[nn.Module, dict | None]:
    """The model to evaluate and the run.json it came from (None for a bare file or a pretrained model)."""
    model, info, _, _ = _load_model(args)
    return model, info


def _load_model(args: argparse.Namespace) -> tuple[nn.Module, dict | None, Path | None, dict[str, Any]]:
    """``load_model``, the weights file it loaded (None: timm's pretrained weights) and the family options the model
    was built with (the run's, updated by --model-kwargs)."""
    info = None
    model_kwargs: dict[str, Any] = {}
    weights = None
    if not args.checkpoint and not args.pretrained:
        raise ValueError("Nothing to evaluate: pass --checkpoint (a run directory or weights file) or --pretrained")
    if args.checkpoint and args.pretrained:
        raise ValueError(
            "--pretrained evaluates the model's released weights and --checkpoint a file or run of yours: pass one "
            "of them"
        )
    if args.pretrained and args.weights is not None:
        raise ValueError(
            f"--weights {args.weights} chooses among a run directory's weights (--checkpoint); --pretrained evaluates "
            "the released weights of --model, which are one file: leave --weights out"
        )
    if args.checkpoint:
        weights, info = resolve_weights(args.checkpoint, args.weights or "final", option="--checkpoint")
        _check_weights_option(args, weights, info)
    if info is not None:
        model_kwargs = dict(info.get("model_kwargs") or {})
    if args.model_kwargs is not None:
        model_kwargs.update(args.model_kwargs)
    # a run's architecture, not its --model: a run started from hf-hub:ORG/NAME builds without the Hub
    name = args.model or (run_architecture(info) if info is not None else None)
    if name is None:
        raise ValueError("Pass --model (the checkpoint has no run.json to read the architecture from)")
    num_classes = args.num_classes or (info or {}).get("num_classes")
    in_chans = args.in_chans or (info or {}).get("in_chans")
    model = create_model_checked(
        name,
        model_kwargs,
        pretrained=args.pretrained,
        num_classes=num_classes,
        in_chans=in_chans,
        global_pool=(info or {}).get("global_pool"),
    )
    released = model.pretrained_cfg.get("num_classes") if args.pretrained else None
    if released and args.num_classes and args.num_classes != released:
        raise ValueError(
            f"--num-classes {args.num_classes}: the released weights of {name} classify {released} classes, and "
            f"timm gives the model a new, untrained head for {args.num_classes}, whose accuracy means nothing; leave "
            "--num-classes out, or fine-tune the weights for your classes first (zerosnet-train --pretrained)"
        )
    if weights is not None:
        # a training state's EMA file is the EMA's state dict itself, not a checkpoint holding it beside the model's
        ema = args.weights == "ema" and _is_file(args) and state_weights_kind(weights) != "ema"
        state_dict, key, other = read_checkpoint_weights(weights, ema=ema)
        if other is not None and args.weights is None:  # the choice that zerosnet-train makes the other way
            PartialState().print(
                f"note: {weights} holds the model's weights ({key}) and their EMA ({other}): evaluating {key}, as "
                f"timm's validate.py does without --use-ema; --weights ema evaluates {other}, the weights that "
                "zerosnet-train --pretrained-path fine-tunes from"
            )
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as e:
            detail = " ".join(str(e).split())  # torch's message spans lines: one error line
            raise ValueError(
                f"{weights} does not fit {name} (num_classes={num_classes}, in_chans={in_chans}, "
                f"kwargs={model_kwargs}); pass the --model, --num-classes, --in-chans and --model-kwargs it was "
                "trained with (a run's run.json holds them). "
                f"{detail[:400]}{'...' if len(detail) > 400 else ''}"
            ) from None
    return model, info, weights, model_kwargs


def read_state_dict(
    weights: Path, ema: bool = False, instead: str = "evaluate another weights file of the run (--weights)"
) -> dict[str, torch.Tensor]:
    """The state dict of a weights file: a .safetensors file as it is; a pickle file with
    ``torch.load(weights_only=True)`` (plus the ``argparse.Namespace`` that timm's training checkpoints hold, as
    timm's own loader allows). Of a training checkpoint (timm's train.py: ``state_dict``, ``state_dict_ema``; or
    ``model`` / ``model_ema``) it takes the model's weights, the EMA ones with ``ema``, without the ``module.`` /
    ``_orig_mod.`` prefixes of DDP and torch.compile (timm's ``clean_state_dict``).

    ``instead``: what to do about a damaged file, besides copying it again.

    Raises:
        ValueError: the file is not a weights file (or not of the format its name says), cannot be read, holds
            objects that weights_only refuses, or has no EMA weights.
    """
    return read_checkpoint_weights(weights, ema, instead)[0]


def read_checkpoint_weights(
    weights: Path, ema: bool = False, instead: str = "evaluate another weights file of the run (--weights)"
) -> tuple[dict[str, torch.Tensor], str | None, str | None]:
    """:func:`read_state_dict`, with the entry of a training checkpoint it took (None: the file is a state dict) and
    the entry of the other weights it holds (the EMA ones beside the model's, or the model's beside the EMA ones;
    None if it holds no others)."""
    _check_weights_format(weights)
    try:
        if weights.suffix == ".safetensors":
            return load_file(str(weights)), None, None
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{weights} holds Python objects that torch.load(weights_only=True) refuses ({_first_line(e)}). Where you "
            f"trust its origin, save its state dict alone (torch.save(model.state_dict(), PATH)) or as .safetensors"
        ) from None
    except Exception as e:  # safetensors' header errors, pickle's EOFError, zip errors, ...
        raise ValueError(
            f"cannot read {weights} ({type(e).__name__}: {e}); the file is damaged or truncated: {instead} or copy "
            "it again"
        ) from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{weights} holds a {type(checkpoint).__name__}, not a state dict or a training checkpoint")
    model_key, ema_key = (
        next((k for k in CHECKPOINT_ENTRIES[kind] if isinstance(checkpoint.get(k), dict)), None)
        for kind in ("final", "ema")
    )
    key, other = (ema_key, model_key) if ema else (model_key, ema_key)
    if ema and key is None:
        raise ValueError(
            f"--weights ema: {weights} holds no EMA weights (no state_dict_ema or model_ema entry); leave --weights "
            f"out to evaluate its weights"
        )
    return clean_state_dict(checkpoint[key] if key else checkpoint), key, other if key else None


def _weights_format(path: Path) -> str | None:
    """The format of a file by its first bytes: 'safetensors' (an 8-byte header length, then the JSON header),
    'torch' (torch.save's zip archive holding data.pkl, or its legacy pickle), or None: neither."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 0:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):  # a truncated archive: torch.load says it is damaged
            return "torch"
        return "torch" if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names) else None
    return "torch" if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") else None


def _check_weights_format(weights: Path) -> None:
    """Refuse a file that is no weights file (a JSON, text, image or NumPy file was reported as damaged, or as
    holding objects to trust and torch.load unsafely), and one whose name says another format than it holds (read
    by its name, as timm reads weights, it failed as damaged)."""
    if weights.stat().st_size == 0:
        return  # an empty file: read_state_dict says it is damaged or truncated
    found = _weights_format(weights)
    named = "safetensors" if weights.suffix == ".safetensors" else "torch"
    if found is None:
        with open(weights, "rb") as f:
            head = f.read(16)
        raise ValueError(
            f"{weights} is not a weights file (neither safetensors nor torch.save's format; it starts with {head!r}); "
            "pass a .safetensors file, or a torch.save state dict or training checkpoint (.pth, .bin, .pth.tar)"
        )
    if found != named:
        what, wanted = ("a safetensors", ".safetensors") if found == "safetensors" else ("a torch.save", ".pth")
        name = f"named {weights.suffix}" if weights.suffix else "named without a suffix"
        read_as = "safetensors" if named == "safetensors" else "a torch.save file (torch.load)"
        raise ValueError(
            f"{weights} is {what} file but {name}, which is read as {read_as}, as timm reads weights: name it "
            f"{weights.stem}{wanted} (a copy will do)"
        )


def _is_file(args: argparse.Namespace) -> bool:
    return not Path(args.checkpoint).expanduser().is_dir()


def _check_weights_option(args: argparse.Namespace, weights: Path, info: dict | None) -> None:
    """--weights chooses among a run directory's weights; a file is the weights it is. Refuse a choice it is not
    (a pickle file may still hold a training checkpoint's EMA weights: read_state_dict checks)."""
    if args.weights is None or not _is_file(args):
        return
    kind = weights_kind(weights.name, info)
    of_state = state_weights_kind(weights)
    if (kind or of_state) == args.weights:
        return
    if kind is None and of_state is None and args.weights == "ema" and weights.suffix != ".safetensors":
        return
    if kind:
        what = f"the run's {kind} weights"
    elif of_state:
        what = f"its training state's {of_state} weights"
    else:
        what = "one weights file"
    raise ValueError(
        f"--weights {args.weights}: {weights} is {what}. --weights chooses among a run directory's weights: pass "
        f"the run directory with it, or leave --weights out"
    )


def _weights_choice(args: argparse.Namespace, weights: Path | None, info: dict | None) -> str | None:
    """Which of a run's weights were evaluated: --weights for a run directory; for a file, the run's name for it
    (run.json), 'ema' for a training checkpoint's EMA weights, else None (a bare file)."""
    if weights is None:
        return None
    if not _is_file(args):
        return args.weights or "final"
    return weights_kind(weights.name, info) or state_weights_kind(weights) or ("ema" if args.weights == "ema" else None)


def _published_image_mode(published: dict | None) -> str | None:
    """The image mode an export's config.json records (``input_img_mode``, a run's --input-img-mode such as YCbCr)
    for a model loaded from ``local-dir:`` or ``hf-hub:`` (timm's pretrained cfg has no such field); else None."""
    mode = (published or {}).get("input_img_mode")
    return mode if isinstance(mode, str) else None


def _data_args(
    args: argparse.Namespace,
    info: dict | None,
    in_chans: int,
    class_names: list | None = None,
    published_mode: str | None = None,
) -> dict:
    """The data to evaluate: the options, else the run's. ``class_names``: the model's classes by name (default: the
    run's label names; a pretrained cfg's), by which an ImageFolder's class folders are labelled. ``published_mode``:
    the image mode of a published model's config.json, used where neither --input-img-mode nor a run gives one."""
    ds = (info or {}).get("dataset") or {}
    if args.dataset is not None:
        name = args.dataset
    elif args.data_dir is not None and ds.get("name") == "digits":
        name = None  # --data-dir alone on a digits run: that folder (the digits read no data dir: it would be ignored)
    else:
        name = ds.get("name")
    # the run's folder, split, class map, columns and sample count are its dataset's: other data (--dataset, or a
    # --data-dir on a digits run) inherits none of them ('folder' names the ImageFolder that run.json records as '',
    # timm's torch/ names in any case)
    run = ds if name is not None and _same_dataset(name, ds.get("name")) else {}
    return {
        "dataset": name,
        "data_dir": args.data_dir if args.data_dir is not None else run.get("data_dir"),
        "val_split": args.split or run.get("val_split"),
        "dataset_download": args.dataset_download,
        "class_map": args.class_map or run.get("class_map"),
        "input_key": args.input_key or run.get("input_key"),
        "target_key": args.target_key or run.get("target_key"),
        # an ImageFolder's labels are the checkpoint's classes, by name (not the evaluated folder's own order)
        "class_names": class_names if class_names is not None else (info or {}).get("label_names"),
        # the model's input: --input-img-mode, else the run's own (YCbCr, RGBA, ...) or the export's, else the
        # channel count's
        "input_img_mode": image_mode(in_chans, args.input_img_mode or ds.get("input_img_mode") or published_mode),
        "val_num_samples": (args.num_samples or None) if args.num_samples is not None else run.get("val_num_samples"),
        # a count taken from the run is not an option the user passed: the note names where it came from
        "val_num_samples_option": "--num-samples"
        if args.num_samples is not None or not run.get("val_num_samples")
        else "the run's --val-num-samples",
    }


def _check_split_folder(args: argparse.Namespace, data_args: dict) -> None:
    """An ImageFolder --data-dir that is a split folder itself (class folders, no train/ or val/) is read whole, as
    timm's validate.py reads it: --split has nothing to choose there (it was ignored, and recorded in the results),
    and the run's split is not what is evaluated."""
    name, data_dir = dataset_name({"dataset": data_args["dataset"] or ""}), data_args["data_dir"]  # torch/folder too
    if "/" in name or name == "digits" or data_dir is None:
        return
    data_dir = os.path.expanduser(str(data_dir))
    if not os.path.isdir(data_dir) or holds_split_folders(data_dir, (args.split,) if args.split else ()):
        return
    if args.split:
        raise ValueError(
            f"--split {args.split}: --data-dir {data_dir} is a split folder itself (class folders, no train/ or val/ "
            "sub-folders), which is evaluated whole; leave --split out, or pass the dataset's root folder with it"
        )
    data_args["val_split"] = None  # the results record no split: the folder is the data


def _same_dataset(given: str, recorded: str | None) -> bool:
    def canonical(name: str | None) -> str:
        return dataset_name({"dataset": name, "data_dir": "-"}).lower()

    return recorded is not None and canonical(given) == canonical(recorded)


def _check_results_file(results_file: str | None, weights: Path | None = None) -> None:
    """Refuse a --results-file that cannot be written, or that would overwrite the weights evaluated, a file of a
    run (run.json, metrics, weights, training states) or any file that is not an earlier results file, before
    evaluating, not after."""
    if results_file is None:
        return
    if not results_file.strip():  # '' wrote nothing, without a word
        raise ValueError("--results-file '': name a .json or .csv file to write the results to, or leave it out")
    if weights is not None and Path(results_file).expanduser().resolve() == weights.resolve():
        raise ValueError(f"--results-file {results_file} is the weights file being evaluated; name another file")
    check_output_file(results_file, "--results-file", "a results file of zerosnet-validate", _is_results_file)
    suffix = Path(results_file).suffix
    if suffix and suffix.lower() not in (".json", ".csv"):
        raise ValueError(
            f"--results-file {results_file}: zerosnet-validate writes the results as JSON (a .json file) or CSV (a "
            f".csv file), which a {suffix} file would hold without saying so; name a .json or .csv file"
        )


# the columns of a --results-file .csv: one row per condition (timm's validate.py writes model, top1, top1_err, ...)
_CSV_COLUMNS = (
    "model condition top1 top1_err top5 top5_err loss count correct1 correct5 weights_file img_size crop_pct "
    "interpolation mixed_precision"
).split()


def _is_results_file(path: Path) -> bool:
    """Whether ``path`` holds what --results-file writes (an earlier evaluation, fine to replace): its JSON, or its
    CSV (the header of ``_CSV_COLUMNS``)."""
    try:
        with open(path, newline="") as f:
            if path.suffix.lower() == ".csv":
                return next(csv.reader(f), None) == _CSV_COLUMNS
            payload = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return False
    return isinstance(payload, dict) and {"results", "data_config", "weights_file"} <= set(payload)


def _results_csv(out: dict) -> str:
    """The results as CSV: one row per condition ('clean', 'randn:0.1', ...) with the model and how it was fed."""
    text = io.StringIO()
    writer = csv.DictWriter(text, _CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    data = out["data_config"]
    for condition, r in out["results"].items():
        writer.writerow(
            dict(
                model=out["model"],
                condition=condition,
                top1=round(r["top1"], 4),
                top1_err=round(100.0 - r["top1"], 4),
                top5=round(r["top5"], 4),
                top5_err=round(100.0 - r["top5"], 4),
                loss=round(r["loss"], 6),
                count=r["count"],
                correct1=r["correct1"],
                correct5=r["correct5"],
                weights_file=out["weights_file"] or "",
                img_size=data["input_size"][-1],
                crop_pct=data["crop_pct"],
                interpolation=data["interpolation"],
                mixed_precision=out["mixed_precision"],
            )
        )
    return text.getvalue()


def validate(args: argparse.Namespace) -> dict:
    """Evaluate as configured; returns a JSON-ready dict with one entry per condition ('clean', 'randn:0.1', ...)."""
    check_minimums(args, dict(num_samples=0, batch_size=1, workers=0, threads=1, num_classes=1, in_chans=1, img_size=1))
    check_ranges(args)
    check_compile_backend(args.torchcompile)
    # "$DATA" of an empty shell variable evaluated the run's data (or the digits) without a word
    check_empty_paths(args, {"data_dir": "name the dataset's folder, or leave --data-dir out for the run's data"})
    if args.noise_seed is not None and args.noise is None:
        raise ValueError("--noise-seed seeds the draws of --noise: add --noise (e.g. randn:0.1), or leave it out")
    parse_noise(args.noise)  # a malformed --noise fails here, before the model and data are loaded
    given = Path(args.checkpoint).expanduser() if args.checkpoint else None
    _check_results_file(args.results_file, given if given is not None and given.is_file() else None)
    if args.threads:
        torch.set_num_threads(args.threads)
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=args.cpu, dynamo_backend=args.torchcompile)
    refuse_lone_processes(accelerator, "evaluate the whole split by itself and write the same results file", "evaluate")
    if accelerator.mixed_precision == "fp16" and not accelerator.native_amp:
        raise ValueError(
            f"--mixed-precision fp16 needs a GPU: on {accelerator.device} accelerate would evaluate in float32 "
            "without a word; use bf16 (CPU autocast) or leave --mixed-precision out"
        )
    model, info, weights, model_kwargs = _load_model(args)
    _check_results_file(args.results_file, weights)
    in_chans = getattr(model, "in_chans", None) or (info or {}).get("in_chans") or 3
    check_stat_counts(args, in_chans)
    overrides = {
        k: getattr(args, k)
        for k in ("img_size", "crop_pct", "crop_mode", "mean", "std", "interpolation")
        if getattr(args, k) is not None
    }
    if info is not None:
        data_config = dict(info["data_config"])
        data_config["input_size"] = tuple(data_config["input_size"])
        if "img_size" in overrides:
            size = overrides.pop("img_size")
            data_config["input_size"] = (in_chans, size, size)
        data_config.update(overrides)
    else:
        data_config = resolve_data_config({"in_chans": in_chans, **overrides}, model=model)
    data_config = match_channels(data_config, in_chans)

    # the weights' classes by name: a run's, else (--pretrained) its pretrained cfg's; a bare weights file names none
    class_names = (info or {}).get("label_names")
    if class_names is None and args.pretrained:
        class_names = list(model.pretrained_cfg.get("label_names") or ()) or None
    published = published_config(model)  # read once (for an hf-hub: model it asks the Hub): image mode, model_args
    published_mode = _published_image_mode(published) if args.pretrained else None
    data_args = _data_args(args, info, in_chans, class_names, published_mode)
    _check_split_folder(args, data_args)
    splits = create_datasets(data_args, train=False)
    for note in splits.notes:
        accelerator.print(f"note: {note}")
    num_classes = accelerator.unwrap_model(model).num_classes
    if class_names is None and splits.label_names and len(splits.label_names) < num_classes:
        accelerator.print(
            f"warning: the weights name no classes (no run.json), so the data's {len(splits.label_names)} classes "
            f"({', '.join(map(str, splits.label_names[:5]))}, ...) are taken as the model's classes 0 to "
            f"{len(splits.label_names) - 1} in that order, of its {num_classes}; if they are others, pass --class-map "
            "(a file of the model's classes in order) or evaluate the run directory"
        )
    if len(splits.label_names) > num_classes:
        trained = (info or {}).get("label_names")
        trained_on = f" (it was trained on {', '.join(map(str, trained[:5]))}, ...)" if trained else ""
        raise ValueError(
            f"the dataset has {len(splits.label_names)} classes ({', '.join(splits.label_names[:5])}, ...) but the "
            f"model predicts {num_classes}{trained_on}; evaluate it on data with those classes (--dataset / "
            "--data-dir / --class-map), or pass the checkpoint trained for this dataset"
        )
    if info is not None and info.get("label_names") and list(info["label_names"]) != splits.label_names:
        accelerator.print(
            f"warning: the dataset's classes {splits.label_names[:5]}... differ from the checkpoint's "
            f"{info['label_names'][:5]}..."
        )
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = accelerator.prepare_model(model, evaluation_mode=True)  # device placement (and --torchcompile), no DDP

    conditions: list[tuple[str, tuple[str, float] | None]] = [("clean", None)]
    conditions += [(noise_label(kind, scale), (kind, scale)) for kind, scale in parse_noise(args.noise)]
    results: dict[str, dict] = {}
    for label, noise in conditions:
        dataset = TransformDataset(
            splits.val,
            create_eval_transform(data_config, noise),
            seed=(args.noise_seed or 0) if noise else None,
            img_mode=data_args["input_img_mode"],
            source_index=True,  # an image's noise is the same in a --num-samples subset
        )
        loader = accelerator.prepare(
            DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers)
        )
        results[label] = evaluate(model, loader, accelerator, args.channels_last, desc=label)
        r = results[label]
        accelerator.print(
            f"{label:>12s}: top1 {r['top1']:.2f}% ({r['correct1']}/{r['count']}), top5 {r['top5']:.2f}%, "
            f"loss {r['loss']:.4f}"
        )
    unwrapped = accelerator.unwrap_model(model)
    # absolute, as run.json records it: the results name the same folder from any directory
    data_dir = os.path.abspath(os.path.expanduser(str(data_args["data_dir"]))) if data_args["data_dir"] else None
    out = {
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "weights": _weights_choice(args, weights, info),
        "weights_file": str(weights) if weights is not None else None,
        "model": args.model or (info or {}).get("model") or unwrapped.pretrained_cfg.get("architecture"),
        "num_classes": unwrapped.num_classes,
        "in_chans": in_chans,
        "input_img_mode": data_args["input_img_mode"],  # what the images were converted to: the option, the run's, ...
        # family options: with --model-kwargs lam=-2 (or a published model's own) the same weights are another model
        "model_kwargs": built_model_kwargs(model_kwargs, published),
        # what was evaluated: two evaluations on other data or in another precision differ here
        "dataset": {
            "name": dataset_name(data_args),
            "data_dir": data_dir,
            "split": splits.val_split,  # the one read (the given, the run's, or the one found: val/, validation/)
            "num_samples": used_num_samples(splits.val, data_args["val_num_samples"]),  # None: the whole split
            "class_map": data_args["class_map"],
            "samples": len(splits.val),
        },
        "mixed_precision": accelerator.mixed_precision,
        "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "noise_seed": (args.noise_seed or 0) if args.noise else None,
        "results": results,
    }
    if args.results_file and accelerator.is_main_process:
        path = Path(args.results_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        csv_file = path.suffix.lower() == ".csv"
        _atomic_write_text(path, _results_csv(out) if csv_file else json.dumps(out, indent=2))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``zerosnet-validate``: 0, or 2 with one ``error:`` line for bad input (options, files)."""
    try:
        validate(build_parser().parse_args(argv))
    except USAGE_ERRORS as e:
        return usage_error("zerosnet-validate", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
