"""Train timm models (the ZeroSNet families included) with accelerate.

timm provides the parts (create_model, transforms, Mixup/CutMix, losses, create_optimizer_v2, create_scheduler_v2,
ModelEmaV3, accuracy/AverageMeter); accelerate provides device placement, DDP, mixed precision (from
``accelerate launch --mixed_precision ...`` via the environment), gradient accumulation, clipping, metric gathering
and state checkpointing. Arguments use timm's train.py names.

Usage::

    zerosnet-train -c digits_demo --output runs --experiment demo
    accelerate launch --num_processes 8 --mixed_precision bf16 -m timm_zerosnet.train -c zerosnet_imagenet18 \\
        --data-dir /data/imagenet
    zerosnet-train -c zerosnet_cifar10 --dataset torch/cifar10 --data-dir ~/data --dataset-download

A run directory holds ``args.yaml``, ``metrics.csv``/``metrics.json``, ``curves.png``, ``model.safetensors`` (and
``model_ema.safetensors``, ``best.safetensors``), ``run.json`` (everything needed to rebuild and evaluate the model)
and ``checkpoints/`` (accelerate states written atomically plus a ``latest`` pointer; ``--resume auto``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import csv
import difflib
import functools
import importlib.resources
import inspect
import io
import json
import math
import os
import pickle
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn as nn
import yaml
from accelerate import Accelerator, PartialState
from accelerate.utils import DynamoBackend, ProjectConfiguration, broadcast, broadcast_object_list, set_seed
from accelerate.utils import load as accelerate_load
from PIL import Image, ImageMode
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from timm.data import Mixup, create_transform, resolve_data_config
from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform
from timm.data.transforms import MaybeToTensor
from timm.data.transforms_factory import transforms_imagenet_eval
from timm.layers import convert_sync_batchnorm
from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.models import parse_model_name
from timm.optim import create_optimizer_v2, get_optimizer_info, param_groups_layer_decay
from timm.scheduler import PlateauLRScheduler, create_scheduler_v2
from timm.scheduler.scheduler_factory import scheduler_kwargs
from timm.utils import AverageMeter, ModelEmaV3, accuracy
from torch.utils.data import DataLoader
from torchvision import transforms

from .cpu_heap import keep_heap
from .data import (
    DatasetUnavailableError,
    EpochShuffleSampler,
    TransformDataset,
    create_datasets,
    dataset_name,
    used_num_samples,
)
from .layers.diffstride import DiffStride, stride_regularizer
from .models.multistep import POOL_TYPES
from .release import INTERPOLATIONS, ReleaseError, respect_umask
from .run_layout import (
    WEIGHT_FILES,
    architecture_name,
    architecture_options,
    file_in_the_way,
    published_config,
    read_run_info,
    resolve_weights,
    run_architecture,
    state_object_file,
)
from .stop_signals import stopping_like_ctrl_c

__all__ = [
    "EXIT_NON_FINITE",
    "CheckpointManager",
    "NonFiniteLossError",
    "TrainState",
    "Trainer",
    "TrainingInterrupted",
    "build_parser",
    "create_model_checked",
    "create_model_from_args",
    "create_optimizer_from_args",
    "evaluate",
    "find_recipe",
    "list_recipes",
    "main",
    "match_channels",
    "parse_args",
    "pretrained_overlay",
    "pretrained_source",
    "recorded_pretrained_source",
    "train",
]

EXIT_NON_FINITE = 3
"""Exit status of ``zerosnet-train`` when the loss became non-finite."""
EXIT_USAGE = 2
"""Exit status of ``zerosnet-train`` / ``zerosnet-validate`` for bad input (options, files): one ``error:`` line."""

DEFAULT_MODEL = "zerosnet20_cifar"
RUN_FORMAT = "timm_zerosnet.run/1"


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the offending step was not applied."""

    def __init__(
        self,
        loss: float,
        epoch: int,
        num_epochs: int,
        batch: int,
        num_batches: int,
        update: int,
        checkpoint: Path | None,
    ):
        """``epoch`` and ``batch`` are 0-based indices (the message counts from 1); ``update`` counts done updates."""
        self.loss, self.epoch, self.batch, self.update, self.checkpoint = loss, epoch, batch, update, checkpoint
        where = f"epoch {epoch + 1}/{num_epochs}, step {batch + 1}/{num_batches} of that epoch (after {update} updates)"
        last = (
            f"Last checkpoint with finite weights: {checkpoint}: resume it with --resume {checkpoint} and --clip-grad "
            f"(a resume keeps the state's --lr and schedule), or start a new run from its weights with "
            f"--pretrained-path {checkpoint / 'model.safetensors'} and a lower --lr."
            if checkpoint
            else "No checkpoint with finite weights was saved before it (nothing to resume from; lower --lr or enable "
            "--clip-grad)."
        )
        super().__init__(f"Non-finite training loss ({loss}) at {where}; training stopped before this step. {last}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, or SIGTERM / SIGHUP under ``zerosnet-train`` (a scheduler's preemption, ``kill``, a closed terminal),
    stopped a training run; ``str()`` says where it stood and how to resume it. A KeyboardInterrupt, so code that
    catches Ctrl-C still does.
    """

    def __init__(self, message: str = "interrupted", signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


def _raise_on_stop_signal(signum: int, frame: Any) -> None:
    what = "hung up" if signum == getattr(signal, "SIGHUP", None) else "terminated"
    raise TrainingInterrupted(f"{what} ({signal.Signals(signum).name})", signum)


# --------------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------------


# a fraction of two numbers, as the papers write lambda (-9/5) and zerosnet-analyze --lam takes it
_FRACTION = re.compile(r"\s*([+-]?\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*")


def _literal(text: str) -> Any:
    """A command-line value as a Python literal, else a fraction p/q as its float, else YAML (true/null/1e-4), else
    the string itself."""
    fraction = _FRACTION.fullmatch(text)
    if fraction and float(fraction.group(2)) != 0:  # lam=-9/5 was the string '-9/5', which the model refused
        return float(fraction.group(1)) / float(fraction.group(2))
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class _KeyValueAction(argparse.Action):
    """``--model-kwargs a=1 b=(2,3) c=name`` -> dict, merged over a dict from the config file."""

    def __call__(self, parser, namespace, values, option_string=None):
        merged = dict(getattr(namespace, self.dest, None) or {})
        given: dict[str, str] = {}
        for item in values:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                parser.error(f"{option_string} expects key=value pairs, got {item!r}")
            key = key.strip()
            if key in given:  # the last one won without a word
                parser.error(f"{option_string} gives {key} twice ({given[key]!r} and {item!r}); give it once")
            given[key] = item
            if not value.strip():  # an empty shell variable (lam=$LAM): None, the model's default, without a word
                parser.error(
                    f"{option_string} {item}: no value after '='; give one ({key}=...), {key}=null for the default, "
                    f"or leave {key} out"
                )
            merged[key] = _literal(value)
        setattr(namespace, self.dest, merged)


# an on/off option: --flag and --no-flag, so that the command line can switch off what a recipe switches on
_ON_OFF: dict[str, Any] = dict(action=argparse.BooleanOptionalAction, default=False)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, except where the help already says what the default is ('(default: from
    run.json)' or 'default: the run's' was followed by '(default: None)')."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if "default:" in (action.help or "").lower():
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; names follow timm's train.py wherever the concept is the same."""
    p = argparse.ArgumentParser(
        prog="zerosnet-train",
        description="Train a timm model with accelerate (run it through `accelerate launch` for several processes).",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("-c", "--config", default=None, help="YAML file or packaged recipe name; command line overrides it")

    g = p.add_argument_group("Dataset")
    g.add_argument("--data-dir", default=None, help="dataset root (ImageFolder with train/ and val/, or torch/ root)")
    g.add_argument("--dataset", default=None, help="'digits' (default), 'folder', 'torch/cifar10', 'hfds/<name>', ...")
    g.add_argument("--train-split", default="train")
    g.add_argument("--val-split", default="validation")
    g.add_argument("--dataset-download", **_ON_OFF, help="download torch/ datasets into --data-dir")
    g.add_argument("--class-map", default="", help="class map file (ImageFolder / hfds)")
    g.add_argument("--input-img-mode", default=None, help="PIL mode; default RGB, or L when --in-chans 1")
    g.add_argument("--input-key", default=None, help="image column of an hfds/ dataset (timm's default: image)")
    g.add_argument("--target-key", default=None, help="label column of an hfds/ dataset (timm's default: label)")
    g.add_argument("--train-num-samples", type=int, default=None, help="use an evenly spaced subset of the train set")
    g.add_argument("--val-num-samples", type=int, default=None, help="use an evenly spaced subset of the val set")

    g = p.add_argument_group("Model")
    g.add_argument("--model", default=DEFAULT_MODEL)
    g.add_argument("--pretrained", **_ON_OFF, help="start from the model's pretrained weights")
    g.add_argument("--pretrained-path", default=None, help="weights file or run directory to fine-tune from")
    g.add_argument("--num-classes", type=int, default=None, help="default: number of classes of the dataset")
    g.add_argument("--in-chans", type=int, default=None, help="input channels (1 for grey images)")
    g.add_argument(
        "--gp",
        default=None,
        choices=POOL_TYPES,
        help="global pool type (timm's; '' is no pooling); default: a --pretrained-path run's, else the model's",
    )
    g.add_argument("--model-kwargs", nargs="*", default={}, action=_KeyValueAction, help="family options k=v ...")
    g.add_argument("--freeze-backbone", **_ON_OFF, help="train the classifier only (BN stats frozen too)")
    g.add_argument("--img-size", type=int, default=None)
    g.add_argument("--input-size", type=int, nargs=3, default=None, metavar="N")
    g.add_argument("--crop-pct", type=float, default=None)
    g.add_argument("--mean", type=float, nargs="+", default=None)
    g.add_argument("--std", type=float, nargs="+", default=None)
    g.add_argument("--interpolation", default="", choices=("", *INTERPOLATIONS), help="default: the model's")
    g.add_argument("-b", "--batch-size", type=int, default=128, help="per-process batch size")
    g.add_argument("-vb", "--validation-batch-size", type=int, default=None)
    g.add_argument("--channels-last", **_ON_OFF)
    g.add_argument("--grad-checkpointing", **_ON_OFF)
    g.add_argument(
        "--sync-bn",
        **_ON_OFF,
        help="batch-norm statistics over the global batch of all processes (torch's SyncBatchNorm; GPUs only)",
    )
    g.add_argument("--grad-accum-steps", type=int, default=1)
    g.add_argument("--torchcompile", nargs="?", const="inductor", default=None, help="torch.compile backend")
    g.add_argument(
        "--no-torchcompile", dest="torchcompile", action="store_const", const=None, help="eager (undoes a recipe's)"
    )

    g = p.add_argument_group("Optimizer")
    g.add_argument("--opt", default="sgd")
    g.add_argument("--opt-eps", type=float, default=None)
    g.add_argument("--opt-betas", type=float, nargs="+", default=None)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--clip-grad", type=float, default=None)
    g.add_argument("--clip-mode", default="norm", choices=("norm", "value"))
    g.add_argument("--layer-decay", type=float, default=None)
    g.add_argument(
        "--decay-lambda",
        **_ON_OFF,
        help="weight-decay ZeroSNet Tra's lambdas with the conv / linear weights (the ZeroSNet ImageNet recipe)",
    )
    g.add_argument("--opt-kwargs", nargs="*", default={}, action=_KeyValueAction)

    g = p.add_argument_group("Learning rate schedule")
    g.add_argument("--sched", default="cosine")
    g.add_argument("--sched-on-updates", **_ON_OFF)
    g.add_argument("--lr", type=float, default=None, help="default: --lr-base scaled to the global batch size")
    g.add_argument("--lr-base", type=float, default=0.1)
    g.add_argument(
        "--lr-base-size",
        type=int,
        default=128,
        help="the global batch --lr-base is for (the papers' CIFAR batch; timm: 256)",
    )
    g.add_argument(
        "--lr-base-scale",
        default=None,
        choices=("linear", "sqrt"),
        help="rule from --lr-base-size to the global batch; default as timm's train.py: sqrt for the adaptive "
        "optimisers (an --opt name with 'ada' or 'lamb'), linear otherwise",
    )
    g.add_argument("--warmup-lr", type=float, default=1e-5)
    g.add_argument("--min-lr", type=float, default=0.0)
    g.add_argument("--epochs", type=int, default=100)
    g.add_argument("--decay-milestones", type=int, nargs="+", default=[90, 180, 270])
    g.add_argument(
        "--decay-epochs",
        type=float,
        default=None,
        help="step: epochs between decays (default 90); wsd / rsqrt: length of the decay phase, a value in (0, 1) a "
        "fraction of the schedule (default 0.2)",
    )
    g.add_argument("--warmup-epochs", type=int, default=0)
    g.add_argument("--warmup-prefix", **_ON_OFF)
    g.add_argument("--cooldown-epochs", type=int, default=0)
    g.add_argument(
        "--patience-epochs",
        type=int,
        default=10,
        help="plateau: epochs without improvement of --eval-metric of the trained model (with --model-ema too; "
        "timm's train.py reads the EMA's)",
    )
    g.add_argument("--decay-rate", "--dr", type=float, default=0.1)

    g = p.add_argument_group("Augmentation and regularization")
    g.add_argument("--no-aug", action="store_true", help="no train augmentation (--aug undoes a recipe's --no-aug)")
    g.add_argument("--aug", dest="no_aug", action="store_false", help=argparse.SUPPRESS)
    g.add_argument("--train-crop-mode", default=None, choices=("rrc", "rkrc", "rkrr"))
    g.add_argument("--scale", type=float, nargs=2, default=None)
    g.add_argument("--ratio", type=float, nargs=2, default=None)
    g.add_argument(
        "--crop-padding",
        type=int,
        default=0,
        help="CIFAR-style random crop after padding by N pixels, of the view evaluation takes (the short side resized "
        "to size / crop_pct, the centre cropped) instead of the random-resized crop",
    )
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--vflip", type=float, default=0.0)
    g.add_argument("--color-jitter", type=float, default=0.0)
    g.add_argument("--aa", default=None, help="auto-augment policy, e.g. rand-m9-mstd0.5")
    g.add_argument("--reprob", type=float, default=0.0)
    g.add_argument("--remode", default="pixel", choices=("pixel", "rand", "const"), help="random-erasing fill")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--train-interpolation", default="random", choices=("random", *INTERPOLATIONS))
    g.add_argument("--mixup", type=float, default=0.0)
    g.add_argument("--cutmix", type=float, default=0.0)
    g.add_argument("--cutmix-minmax", type=float, nargs=2, default=None)
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch", choices=("batch", "pair", "elem"))
    g.add_argument("--mixup-off-epoch", type=int, default=0)
    g.add_argument("--smoothing", type=float, default=0.0)
    g.add_argument(
        "--bce-loss", **_ON_OFF, help="binary cross-entropy (timm's BinaryCrossEntropy) instead of softmax CE"
    )
    g.add_argument("--bce-sum", **_ON_OFF, help="BCE summed over classes, then averaged over the batch")
    g.add_argument("--bce-target-thresh", type=float, default=None, help="BCE targets above it become 1, others 0")
    g.add_argument("--bce-pos-weight", type=float, default=None, help="BCE weight of the positive targets")
    g.add_argument(
        "--stride-reg",
        type=float,
        default=0.0,
        help="weight lambda of DiffStride's stride regulariser J(S), the sum of its layers' output areas relative to "
        "the input (the paper's proxy for compute and memory), added to the loss: a larger lambda pushes the learned "
        "strides up. For a model with DiffStride layers (downsample=diffstride); 0: none",
    )
    g.add_argument("--drop", type=float, default=None, help="dropout rate before the classifier")
    g.add_argument("--drop-path", type=float, default=None)

    g = p.add_argument_group("Model EMA")
    g.add_argument("--model-ema", **_ON_OFF)
    g.add_argument("--model-ema-decay", type=float, default=0.9998)
    g.add_argument("--model-ema-warmup", **_ON_OFF)

    g = p.add_argument_group("Run, checkpoints and logging")
    g.add_argument("--output", default="output", help="parent folder of run directories")
    g.add_argument("--experiment", default=None, help="run directory name (default: date-model)")
    g.add_argument("--resume", default=None, help="state dir, run dir, 'latest' (must exist) or 'auto' (if any)")
    g.add_argument("--checkpoint-every", type=int, default=1, help="save a training state every N epochs")
    g.add_argument("--save-state-every-n-steps", type=int, default=0, help="also save mid-epoch every N updates")
    g.add_argument("--checkpoint-hist", type=int, default=2, help="training states to keep")
    g.add_argument("--eval-metric", default="top1", choices=("top1", "top5", "loss"))
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("-j", "--workers", type=int, default=2)
    g.add_argument("--threads", type=int, default=None, help="torch intra-op threads per process (default: torch's)")
    g.add_argument("--pin-mem", **_ON_OFF)
    g.add_argument("--log-interval", type=int, default=50, help="batches between log lines")
    g.add_argument("--log-with", default=None, help="accelerate tracker(s): tensorboard, wandb, ... (comma separated)")
    g.add_argument(
        "--mixed-precision",
        default=None,
        choices=("no", "fp16", "bf16", "fp8"),
        help="override accelerate's setting (normally from `accelerate launch --mixed_precision`)",
    )
    g.add_argument("--cpu", **_ON_OFF, help="run on CPU even when an accelerator is available")
    g.add_argument(
        "--keep-heap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on CPU, keep freed memory in the process (--no-keep-heap: let glibc return it to the OS every step; "
        "see cpu_heap.py)",
    )
    return p


def list_recipes() -> list[str]:
    """Names of the packaged recipes (``-c NAME``)."""
    root = importlib.resources.files("timm_zerosnet").joinpath("recipes")
    return sorted(entry.name[: -len(".yaml")] for entry in root.iterdir() if entry.name.endswith(".yaml"))


def find_recipe(name_or_path: str) -> Path:
    """A config file path: an existing file, else a packaged recipe called ``name_or_path`` (.yaml optional)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    packaged = Path(str(importlib.resources.files("timm_zerosnet").joinpath("recipes", f"{stem}.yaml")))
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(
        f"Config {name_or_path!r} is neither a file nor a packaged recipe; recipes: {', '.join(list_recipes())}"
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key_node, deep=deep) for key_node, _ in node.value]
        for key in keys:
            if keys.count(key) > 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"setting {key!r} is given more than once", node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _config_value(action: argparse.Action, value: Any, where: str) -> Any:
    """A config file value checked and converted as the command line would do it (type, choices, nargs).

    A list option also takes a single value (``decay_milestones: 80`` is ``--decay-milestones 80``); a quoted number
    is read as a number, as on the command line; ``null`` leaves an option unset where its default is null, empty or
    {}, and is refused elsewhere.
    """
    flag = next(o for o in action.option_strings if o.startswith("--"))  # --batch-size, not -b; --cpu, not --no-cpu

    def bad(problem: str) -> ValueError:
        return ValueError(f"{where}: {problem} (it is the value of {flag})")

    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise bad(f"must be true or false (unquoted), got {value!r}")
        return value
    if value is None and action.default in (None, "", {}, []):  # null: the option left unset
        return copy.copy(action.default)
    if isinstance(action, _KeyValueAction):
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(item, str) and "=" in item for item in items):
            pairs = [item.partition("=") for item in items]
            if all(key.strip() for key, _, _ in pairs):
                return {key.strip(): _literal(text) for key, _, text in pairs}
        raise bad(f"must be a mapping (e.g. {{lam: -1.5}}) or a list of key=value strings, got {value!r}")
    if value is None:
        if action.default is None:
            return None
        raise bad(f"cannot be null (its default is {action.default!r})")

    def convert(v: Any) -> Any:
        if action.type is int:
            text = v.strip() if isinstance(v, str) else None
            if isinstance(v, bool) or not (isinstance(v, int) or (text and text.lstrip("+-").isdecimal())):
                raise bad(f"must be an integer, got {v!r}")
            v = int(v)
        elif action.type is float:
            try:
                if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                    raise ValueError
                v = float(v)
            except ValueError:
                raise bad(f"must be a number, got {v!r}") from None
        elif action.type is None:
            if isinstance(v, bool):
                raise bad(f"must be a string, got {v!r}: YAML reads unquoted no / yes / off / on as booleans, quote it")
            if not isinstance(v, (str, int, float)):
                raise bad(f"must be a string, got {v!r}")
            v = str(v)
        else:
            raise bad(f"has no config-file support for type {action.type!r}")
        if action.choices is not None and v not in action.choices:
            raise bad(f"must be one of {', '.join(str(c) if c else repr(c) for c in action.choices)}, got {v!r}")
        return v

    if action.nargs in (None, "?"):
        if isinstance(value, (list, dict)):
            raise bad(f"takes a single value, got {value!r}")
        if action.nargs == "?" and value is True:  # `torchcompile: true` is the bare flag
            return action.const
        return convert(value)
    values = value if isinstance(value, list) else [value]
    if isinstance(action.nargs, int) and len(values) != action.nargs:
        raise bad(f"takes {action.nargs} values, got {value!r}")
    if action.nargs == "+" and not values:
        raise bad("takes one or more values, got an empty list")
    return [convert(v) for v in values]


def load_config(name_or_path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a YAML config; keys are argument names (``weight_decay`` or ``weight-decay``), values are checked and
    converted like command-line values (types, choices, number of values)."""
    path = find_recipe(name_or_path)
    with open(path) as f:
        try:
            cfg = yaml.load(f, Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not a valid config file: {e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: a config file must be a mapping of argument names to values")
    actions: dict[str, argparse.Action] = {}
    for a in parser._actions:  # the first action of a dest: --no-aug, not its hidden undo --aug
        if not isinstance(a, argparse._HelpAction):
            actions.setdefault(a.dest, a)
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            raise ValueError(f"{path}: unknown setting {key!r} (not an argument of zerosnet-train)")
        if dest in out:
            raise ValueError(f"{path}: setting {dest!r} is given twice (as {key!r} and with the other spelling)")
        out[dest] = _config_value(actions[dest], value, f"{path}: {key}")
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse arguments: defaults < config file (``-c``) < command line."""
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config", default=None)
    known, _ = pre.parse_known_args(argv)
    loaded = load_config(known.config, parser) if known.config else {}
    parser.set_defaults(**loaded)
    args = parser.parse_args(argv)
    if args.config:
        config = find_recipe(args.config)
        check_moved_run(config, loaded, args)
        # a run's args.yaml names the recipe it was made from (its own -c): that stays the recipe of a run it starts,
        # e.g. a resume with `-c <run>/args.yaml`, instead of the args.yaml itself
        args.config = loaded.get("config") or str(config)
    return args


def check_moved_run(config: Path, loaded: dict[str, Any], args: argparse.Namespace) -> None:
    """Refuse `-c <run>/args.yaml --resume ...` where the run's folder was moved (or copied) away from the --output
    and --experiment its args.yaml records, and nothing is left there: --resume auto trained a new run from scratch in
    the old place without a word, and a state of the moved run was continued there."""
    folder = config.parent.absolute()
    if args.resume is None or config.name != "args.yaml" or not (folder / "run.json").is_file():
        return
    if not args.experiment or (args.output, args.experiment) != (loaded.get("output"), loaded.get("experiment")):
        return  # the command line names the run directory
    recorded = Path(args.output).expanduser().absolute() / args.experiment
    if recorded.resolve() == folder.resolve() or (recorded / "run.json").is_file():
        return
    raise ValueError(
        f"-c {config} is the args.yaml of the run in {folder}, which it records in {recorded} (its --output and "
        f"--experiment), where no run is: the run was moved, and --resume {args.resume} would train in {recorded}. "
        f"Pass --output {folder.parent} --experiment {folder.name} to continue the run where it is now"
    )


_AT_LEAST_ONE = (
    "epochs batch_size validation_batch_size grad_accum_steps lr_base_size checkpoint_every checkpoint_hist "
    "train_num_samples val_num_samples num_classes in_chans img_size threads recount"
).split()
_AT_LEAST_ZERO = (
    "workers save_state_every_n_steps log_interval warmup_epochs cooldown_epochs patience_epochs crop_padding "
    "mixup_off_epoch"
).split()
_IMG_MODE_OF_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
_SEEDS = 2**32  # seeds numpy takes: 0 <= seed < 2**32
# intervals of float options ("[" / "(" closed / open ends; "each": every value of a list); NaN and inf always refused
_RANGES = {
    "(0, inf)": "clip_grad decay_epochs decay_rate opt_eps bce_pos_weight",
    "[0, inf)": "lr lr_base warmup_lr min_lr weight_decay color_jitter mixup cutmix stride_reg",
    "[0, 1)": "momentum smoothing drop drop_path bce_target_thresh",
    "[0, 1]": "model_ema_decay hflip vflip reprob mixup_prob mixup_switch_prob",
    "(0, 1]": "layer_decay",
    "(0, inf) each": "crop_pct std ratio",
    "(-inf, inf) each": "mean",
    "[0, 1) each": "opt_betas",
    "[0, 1] each": "scale cutmix_minmax",
}


def _out_of_range(value: float, bounds: str) -> bool:
    low, high = bounds.split(" ")[0], bounds.split(" ")[1]
    lo, hi = float(low[1:-1]), float(high[:-1])
    if not math.isfinite(value):
        return True
    below = value < lo if low[0] == "[" else value <= lo
    above = value > hi if high[-1] == "]" else value >= hi
    return below or above


def check_minimums(args: argparse.Namespace, minimums: dict[str, int]) -> None:
    """Refuse an integer option below its minimum (``{dest: minimum}``; unset options are left alone)."""
    for name, low in minimums.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            flag = "--" + name.replace("_", "-")
            unset = " (leave it out for the default)" if name in ("num_classes", "in_chans", "threads") else ""
            raise ValueError(f"{flag} must be at least {low}, got {value}{unset}")


def check_ranges(args: argparse.Namespace) -> None:
    """Refuse a float option outside its interval in ``_RANGES`` (NaN and inf everywhere); options that are unset,
    or that ``args`` does not have (zerosnet-validate's), are left alone."""
    for bounds, names in _RANGES.items():
        for name in names.split():
            value = getattr(args, name, None)
            values = [] if value is None else value if isinstance(value, (list, tuple)) else [value]
            bad = [v for v in values if _out_of_range(float(v), bounds.replace(" each", ""))]
            if bad:
                each = " (each value)" if bounds.endswith("each") else ""
                raise ValueError(
                    f"--{name.replace('_', '-')} must be in {bounds.replace(' each', '')}{each}, got {bad[0]}"
                    + (" (leave it out for no clipping)" if name == "clip_grad" else "")
                )


# options naming a path that are unset by default, with what an empty value did: "$STATE" of an empty shell variable
_PATH_OPTIONS = {
    "resume": "name a training state or run directory to continue, or auto / latest (with --experiment); leave "
    "--resume out to start a new run (it started one without a word)",
    "pretrained_path": "name the weights file or run directory to fine-tune; leave --pretrained-path out to train "
    "from a random initialisation (it did so without a word)",
    "data_dir": "name the dataset's folder; leave --data-dir out for the embedded digits (it read them without a word)",
}


def check_empty_paths(args: argparse.Namespace, options: dict[str, str]) -> None:
    """Refuse an empty value of a path option that is unset by default (``{dest: what to do}``): an empty shell
    variable left it as unset as if it had not been given."""
    for name, advice in options.items():
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"--{name.replace('_', '-')} {value!r}: {advice}")


def check_compile_backend(name: str | None) -> None:
    """``--torchcompile NAME``: a backend accelerate passes to torch.compile (its DynamoBackend); None is eager."""
    if name is None:
        return
    known = [b.value.lower() for b in DynamoBackend if b is not DynamoBackend.NO]
    if name.lower() not in known:
        raise ValueError(
            f"--torchcompile {name}: not a torch.compile backend accelerate knows; use one of {', '.join(known)} "
            "(--torchcompile alone is inductor), or leave it out to run eagerly"
        )


def check_trackers(value: str | None) -> None:
    """``--log-with``: trackers accelerate knows and finds installed. accelerate drops a tracker whose package is
    missing with a debug message only, so the run would go unlogged without a word."""
    if value is None:
        return
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    names = [t.strip() for t in value.split(",")]
    known = [t.value for t in LoggerType]
    installed = [str(t.value) for t in get_available_trackers()]
    installed_text = ", ".join(installed) if installed else "none"
    for name in names:
        if name.lower() not in known:
            raise ValueError(
                f"--log-with {value}: {name!r} is no tracker accelerate knows; use one of {', '.join(known)} (comma "
                "separated)"
            )
        if name.lower() == "all" and not installed:
            raise ValueError(
                f"--log-with {value}: no tracker package is installed (e.g. pip install tensorboard), so nothing "
                "would be logged; install one or leave --log-with out"
            )
        if name.lower() != "all" and name.lower() not in installed:
            raise ValueError(
                f"--log-with {value}: the {name} package is not installed, so accelerate would train without logging "
                f"to it; pip install {name}, or leave it out (installed trackers: {installed_text})"
            )


def _given_flags(args: argparse.Namespace, options: Sequence[str]) -> list[str]:
    """``options`` given a value other than their default, as flags with their values."""
    parser = build_parser()
    given = [name for name in options if getattr(args, name) != parser.get_default(name)]
    return [f"--{n.replace('_', '-')}{_flag_value(getattr(args, n))}" for n in given]


def _flag_value(value: Any) -> str:
    if value is True:
        return ""
    if isinstance(value, (list, tuple)):
        return " " + " ".join(map(str, value))
    return f" {value}"


def _refuse_options_of_an_off_switch(
    args: argparse.Namespace, switch: str, options: Sequence[str], what: str, on: bool | None = None
) -> None:
    """Options that only tune ``switch`` (given a value other than their default) while it is off would be ignored:
    a clear error instead. ``on`` says whether it is on where that is not the value of ``args.<switch>``; the
    message then names ``switch`` as the flag(s) that turn it on."""
    if getattr(args, switch) if on is None else on:
        return
    flags = _given_flags(args, options)
    if flags:
        how = f"--{switch.replace('_', '-')}" if on is None else switch
        raise ValueError(f"{' and '.join(flags)} set(s) {what}, which is off: add {how} to use it, or leave them out")


_AUGMENTATIONS = ("crop_padding", "train_crop_mode", "scale", "ratio", "hflip", "vflip", "color_jitter", "aa", "reprob")
# the schedules of timm's create_scheduler_v2 that read each option (the others leave it out without a word)
_SCHEDULER_OPTIONS = {
    "decay_epochs": ("step", "wsd", "rsqrt"),
    "decay_milestones": ("multistep",),
    "patience_epochs": ("plateau",),
    "decay_rate": ("step", "multistep", "plateau", "poly"),
    "min_lr": ("cosine", "tanh", "poly", "plateau", "wsd", "rsqrt"),
    "cooldown_epochs": ("cosine", "tanh", "poly"),
    "warmup_prefix": ("cosine", "tanh", "step", "multistep", "poly", "wsd", "rsqrt", "constant"),
}


def unused_option_notes(args: argparse.Namespace) -> list[str]:
    """Options given (on the command line or by the recipe) that another option makes unused, for the log: an
    option a recipe sets stays given when the command line switches off what it tunes (``-c recipe --no-aug``), so
    these are notes, not errors."""
    notes = []
    augmenting = [name for name in _AUGMENTATIONS if getattr(args, name)]  # hflip 0 and the like change nothing
    if args.no_aug and (flags := _given_flags(args, augmenting)):
        notes.append(
            f"--no-aug trains on resized, centre-cropped images and does not use {' and '.join(flags)} (--aug does)"
        )
    unread = [name for name, scheds in _SCHEDULER_OPTIONS.items() if args.sched not in scheds]
    if flags := _given_flags(args, unread):
        notes.append(f"--sched {args.sched} does not read {' and '.join(flags)}, so the schedule does not use it")
    if args.sched == "multistep" and (late := [m for m in args.decay_milestones or () if m > args.epochs]):
        # timm's milestone m lowers the lr of epoch m (1-based) on, after a warm-up prefix
        notes.append(
            f"--decay-milestones {' '.join(map(str, late))}: past the {args.epochs} epochs of --epochs, so the lr "
            f"never drops there"
        )
    # (--warmup-prefix where the schedule does not read it is named above)
    warmup = [name for name in ("warmup_lr", "warmup_prefix") if name not in unread]
    if not args.warmup_epochs and (flags := _given_flags(args, warmup)):
        notes.append(f"--warmup-epochs 0 (no warm-up) does not use {' and '.join(flags)} (--warmup-epochs N does)")
    if args.lr is not None and (flags := _given_flags(args, ["lr_base", "lr_base_size", "lr_base_scale"])):
        notes.append(
            f"--lr {args.lr:g} is the learning rate as given: {' and '.join(flags)} (which scale a base lr to the "
            "global batch when --lr is left out) are not used"
        )
    if args.pretrained and args.pretrained_path:
        notes.append(
            f"--pretrained-path {args.pretrained_path} gives the starting weights: --pretrained (the model's "
            "released weights) is not used"
        )
    if args.freeze_backbone and not (args.pretrained or args.pretrained_path or args.resume):
        notes.append(
            "--freeze-backbone trains the classifier on a backbone left at its random initialisation; give "
            "--pretrained or --pretrained-path to fine-tune learned features"
        )
    # only the classifier trains: layer decay leaves the last layer at the full lr, and the lambdas are frozen
    if args.freeze_backbone and (flags := _given_flags(args, ["layer_decay", "decay_lambda"])):
        notes.append(
            f"--freeze-backbone trains the classifier only: {' and '.join(flags)} (which tune the backbone's layers "
            "and lambdas) are not used"
        )
    return notes


def check_schedule(args: argparse.Namespace) -> None:
    """--sched names a schedule the training loop can step (timm's 'none' is no scheduler object, and its plateau
    schedule steps per epoch only: an AssertionError from timm's factory)."""
    if args.sched == "none":
        raise ValueError(
            "--sched none: timm builds no scheduler for it; --sched constant keeps the lr at --lr (after a warm-up of "
            "--warmup-epochs, if any)"
        )
    if args.sched == "plateau" and args.sched_on_updates:
        raise ValueError(
            "--sched plateau steps once per epoch, on the validation metric; drop --sched-on-updates, or choose a "
            "schedule that steps per update (cosine, step, ...)"
        )
    milestones = list(args.decay_milestones or ())
    if args.sched == "multistep" and (min(milestones, default=1) < 1 or milestones != sorted(set(milestones))):
        # timm bisects the list as given: '3 2' dropped the lr once by decay_rate^2, at epoch 1
        raise ValueError(
            f"--decay-milestones {' '.join(map(str, milestones))}: give the epochs at which the lr drops as positive "
            "numbers in increasing order, each once"
        )


# timm's optimizers with Nesterov momentum, which torch refuses at momentum 0, and their plain-momentum forms
_NESTEROV_OPTIMIZERS = {
    "sgd": "momentum",
    "nesterov": "momentum",
    "nlars": "lars",
    "nlarc": "larc",
    "sgdw": None,
    "nesterovw": None,
    "sgdc": None,
    "csgdc": None,
    "csgdw": None,
}

# the arguments of timm's create_optimizer_v2 that zerosnet-train sets from an option of its own
_OPTIMIZER_FLAGS = {
    "opt": "--opt",
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "momentum": "--momentum",
    "eps": "--opt-eps",
    "betas": "--opt-betas",
    "layer_decay": "--layer-decay",
}
_ALWAYS_SET = ("opt", "lr", "weight_decay", "momentum")  # options that always give a value (lr: the resolved one)


def check_optimizer_options(args: argparse.Namespace) -> None:
    """--opt names an optimizer timm knows, and the options that only some optimizers take are not given to one
    that would drop them (timm's factory silently leaves out betas, eps and momentum an optimizer has none of)."""
    try:  # timm's create_optimizer_v2 wraps lookahead_<name> around <name>
        info = get_optimizer_info(args.opt.lower().removeprefix("lookahead_"))
    except ValueError:
        raise ValueError(
            f"--opt {args.opt}: not an optimizer timm knows; e.g. sgd (Nesterov), momentum, adamw, lamb, rmsproptf "
            "(timm.optim.list_optimizers() lists them all)"
        ) from None
    ignored = _given_flags(
        args, [name for name, has in (("opt_betas", info.has_betas), ("opt_eps", info.has_eps)) if not has]
    )
    if not info.has_momentum:
        ignored += _given_flags(args, ["momentum"])
    if ignored:
        raise ValueError(
            f"{' and '.join(ignored)}: --opt {args.opt} takes no such value (timm would drop it); leave it out or "
            "choose an optimizer that takes it"
        )
    if args.opt_betas is not None and len(args.opt_betas) != info.num_betas:
        raise ValueError(
            f"--opt-betas {' '.join(map(str, args.opt_betas))}: --opt {args.opt} takes {info.num_betas} betas"
        )
    base = args.opt.lower().removeprefix("lookahead_")
    if base in _NESTEROV_OPTIMIZERS and args.momentum <= 0:
        # torch's "Nesterov momentum requires a momentum and zero dampening" named neither option nor way out
        plain = _NESTEROV_OPTIMIZERS[base]
        raise ValueError(
            f"--momentum {args.momentum:g}: --opt {args.opt} uses Nesterov momentum, which needs a momentum > 0; "
            + (
                f"pass --opt {plain}, its form with plain momentum (with --momentum 0: none)"
                if plain
                else "pass --momentum > 0"
            )
        )
    # an --opt-kwargs key with a flag of its own replaced the flag's value: run.json and the log named the flag's
    # (--opt-kwargs opt=adamw lr=0.001 trained AdamW at 0.001 where both said SGD at 0.05)
    # (eps, betas and layer_decay have no value unless their option is given: then only the option's is recorded)
    if overridden := [
        key
        for key in (args.opt_kwargs or {})
        if key in _OPTIMIZER_FLAGS
        and (key in _ALWAYS_SET or getattr(args, _OPTIMIZER_FLAGS[key][2:].replace("-", "_")) is not None)
    ]:
        flags = ", ".join(f"{key}= (use {_OPTIMIZER_FLAGS[key]})" for key in overridden)
        raise ValueError(
            f"--opt-kwargs {flags}: these have options of their own, which run.json and the log record; pass them "
            "there and keep --opt-kwargs for the optimizer's other arguments"
        )


_AA_EXAMPLES = "rand-m9-mstd0.5-inc1, augmix-m5-w4-d2, original, v0, 3a"


def check_augment_policy(policy: str | None) -> None:
    """--aa names a policy timm can build (timm fails on the first training batch's transform build with a bare
    assertion otherwise)."""
    if not policy:
        return
    hparams = dict(translate_const=10, img_mean=(124, 116, 104))
    if policy.startswith("rand"):
        build = rand_augment_transform
    elif policy.startswith("augmix"):
        build = augment_and_mix_transform
    else:
        build = auto_augment_transform
    try:
        build(policy, hparams)
    except (AssertionError, KeyError, ValueError, IndexError, TypeError) as e:
        detail = str(e).strip() or type(e).__name__
        raise ValueError(
            f"--aa {policy}: not an augmentation policy timm can build ({detail}); e.g. {_AA_EXAMPLES}"
        ) from None


def check_augment_mode(args: argparse.Namespace) -> None:
    """--aa with an image mode its policies cannot take: timm's autocontrast, equalize, posterize and solarize work
    on L and RGB images only (PIL failed with "not supported for mode RGBA" in the first batch). Call once
    --input-img-mode is resolved (:func:`resolve_in_chans`)."""
    mode = args.input_img_mode
    if args.aa and not args.no_aug and mode not in ("L", "RGB"):
        raise ValueError(
            f"--aa {args.aa} with images of mode {mode} (--in-chans {args.in_chans}"
            + (f", --input-img-mode {mode}" if mode != _IMG_MODE_OF_CHANNELS.get(args.in_chans) else "")
            + "): timm's augmentation policies work on L (grey) and RGB images only; leave --aa out to train in "
            f"{mode}, or train on RGB images (--in-chans 3) with it"
        )


def check_output(args: argparse.Namespace) -> None:
    """--output is a folder, or a path whose nearest existing part is a folder (a run is a folder inside it)."""
    blocker = file_in_the_way(args.output)
    if blocker is not None:
        raise ValueError(
            f"--output {args.output}: {blocker} is a file, and runs are folders inside --output; choose a folder"
        )
    name = args.experiment
    if name is not None and (not name.strip() or name != Path(name).name or name in (".", "..")):
        raise ValueError(
            f"--experiment {name!r}: the name of the run's folder inside --output (no '/' or '..', not empty); "
            "choose one such as zerosnet20-c10-s0, or leave --experiment out for a dated name"
        )
    output = Path(args.output).expanduser().absolute()
    if name is not None and (output / name).exists() and not (output / name).is_dir():
        raise ValueError(
            f"--experiment {name}: {output / name} is a file, and a run is a folder of that name inside --output; "
            "choose another --experiment (or --output)"
        )
    for folder in (output, *output.parents):
        inside = folder.parent if folder.name == "checkpoints" and (folder.parent / "run.json").is_file() else None
        if (folder / "run.json").is_file() or inside is not None:
            raise ValueError(
                f"--output {args.output} lies inside the run in {inside or folder}, whose folders hold its own files "
                "and training states: runs are folders side by side in --output; choose a folder outside any run"
            )


def refuse_lone_processes(accelerator: Accelerator, each_would: str, verb: str) -> None:
    """Refuse a launch of several processes that accelerate runs one by one (no GPU and no ``--cpu``): each would
    ``each_would`` (``verb``: what they do together with ``--cpu``)."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes != launched:
        raise ValueError(
            f"{launched} processes were launched (WORLD_SIZE={launched}) but accelerate runs this one alone "
            f"({accelerator.num_processes} process, {accelerator.device}): each would {each_would}. Without GPUs, "
            f"pass --cpu to {verb} with the {launched} processes together (gloo)."
        )


def process_seed(seed: int, process_index: int) -> int:
    """The seed of one process's dropout / mixup streams: the run's seed plus the process index, kept in numpy's
    seed range (``--seed 4294967295`` overflowed it on the second process)."""
    return (seed + process_index) % _SEEDS


def check_args(args: argparse.Namespace) -> None:
    """Refuse option values and combinations that cannot work, before anything is built (a clear message instead of
    an assertion or a shape error during the first step)."""
    check_model_name(args.model)  # before the data is read
    check_minimums(args, {**dict.fromkeys(_AT_LEAST_ONE, 1), **dict.fromkeys(_AT_LEAST_ZERO, 0)})
    if not 0 <= args.seed < _SEEDS:  # numpy's "Seed must be between 0 and 2**32 - 1", after the data was loaded
        raise ValueError(
            f"--seed must be a whole number from 0 to {_SEEDS - 1} (accelerate seeds numpy, whose seeds are 32-bit), "
            f"got {args.seed}"
        )
    check_ranges(args)
    check_compile_backend(args.torchcompile)
    check_trackers(args.log_with)
    for name in ("scale", "ratio", "cutmix_minmax"):
        pair = getattr(args, name, None)
        if pair is not None and pair[0] > pair[1]:
            raise ValueError(f"--{name.replace('_', '-')} takes (min, max) with min <= max, got {pair}")
    if args.crop_padding and not args.no_aug:
        # 'rrc' is the default crop mode (the ImageNet recipes name it): only another one would be ignored
        modes = args.train_crop_mode not in (None, "rrc")
        ignored = [f"--{n.replace('_', '-')}" for n in ("scale", "ratio") if getattr(args, n)] + (
            ["--train-crop-mode"] if modes else []
        )
        if ignored:
            raise ValueError(
                f"--crop-padding {args.crop_padding} (CIFAR's pad-and-crop) replaces the random-resized crop, so "
                f"{', '.join(ignored)} would be ignored: pass --crop-padding 0 to crop with them instead"
            )
    if args.color_jitter and args.aa and "3a" not in args.aa and not args.no_aug:
        # timm's transform factory turns colour jitter off under an augmentation policy (its '3a' ones excepted);
        # --color-jitter is 0 unless given (the recipes leave it at 0)
        raise ValueError(
            f"--color-jitter {args.color_jitter:g} with --aa {args.aa}: timm leaves colour jitter out under an "
            "augmentation policy (other than its '3a' ones), so it would be ignored: pass --color-jitter 0 to augment "
            "with the policy alone, or leave --aa out to jitter the colours"
        )
    if args.cutmix_minmax is not None and args.cutmix not in (0.0, 1.0):
        # timm's Mixup cuts boxes of a size drawn from --cutmix-minmax and sets its cutmix alpha to 1.0
        raise ValueError(
            f"--cutmix {args.cutmix:g} with --cutmix-minmax {' '.join(f'{v:g}' for v in args.cutmix_minmax)}: "
            "timm's cutmix then draws its box sizes from --cutmix-minmax and takes an alpha of 1.0, so --cutmix "
            f"{args.cutmix:g} would be ignored: leave --cutmix out (--cutmix-minmax alone turns cutmix on), or leave "
            "--cutmix-minmax out to draw the boxes with --cutmix's alpha"
        )
    if args.sync_bn and args.freeze_backbone:
        raise ValueError(
            "--sync-bn with --freeze-backbone: the frozen backbone's batch norms use their running statistics, so "
            "there is nothing to synchronise; drop --sync-bn"
        )
    _refuse_options_of_an_off_switch(
        args, "bce_loss", ("bce_sum", "bce_target_thresh", "bce_pos_weight"), "the BCE loss"
    )
    _refuse_options_of_an_off_switch(args, "model_ema", ("model_ema_decay", "model_ema_warmup"), "the weight EMA")
    _refuse_options_of_an_off_switch(args, "clip_grad", ("clip_mode",), "gradient clipping")
    mixing = bool(args.mixup or args.cutmix or args.cutmix_minmax)
    _refuse_options_of_an_off_switch(
        args,
        "--mixup or --cutmix",
        ("mixup_prob", "mixup_switch_prob", "mixup_mode", "mixup_off_epoch"),
        "mixup / cutmix",
        on=mixing,
    )
    _refuse_options_of_an_off_switch(args, "--reprob", ("remode", "recount"), "random erasing", on=bool(args.reprob))
    check_optimizer_options(args)
    check_schedule(args)
    check_augment_policy(args.aa)
    check_output(args)
    check_empty_paths(args, _PATH_OPTIONS)
    if args.input_size is not None:
        if min(args.input_size) < 1:
            raise ValueError(f"--input-size takes channels, height and width, each at least 1; got {args.input_size}")
        if args.img_size is not None and tuple(args.input_size[1:]) != (args.img_size, args.img_size):
            raise ValueError(
                f"--img-size {args.img_size} and --input-size {' '.join(map(str, args.input_size))} disagree; "
                "give only one of them"
            )


def resolve_in_chans(args: argparse.Namespace, source: dict | None = None) -> int:
    """The input channels of model and data alike: ``--in-chans``, else the first of ``--input-size``, else those of
    the ``--pretrained-path`` source (its run.json or first conv; ``source``: as :func:`pretrained_source` read it,
    or a training state recorded it, default: read it now), else 3. Also fills in (and checks)
    ``--input-img-mode``."""
    from_size = args.input_size[0] if args.input_size is not None else None
    if args.in_chans is not None and from_size is not None and args.in_chans != from_size:
        raise ValueError(
            f"--in-chans {args.in_chans} but --input-size {' '.join(map(str, args.input_size))} has {from_size} "
            "channels; give one channel count (or make them agree)"
        )
    in_chans = args.in_chans or from_size
    if in_chans is None and args.pretrained_path:
        if source is not None:
            source_input_size = source["overlay"].get("input_size")
        else:
            source_input_size = _pretrained_source(args.pretrained_path, args.model)[3]
        in_chans = source_input_size[0] if source_input_size else None
    in_chans = int(in_chans or 3)
    args.input_img_mode = image_mode(in_chans, args.input_img_mode)
    check_stat_counts(args, in_chans)
    return in_chans


def image_mode(in_chans: int, mode: str | None) -> str:
    """The PIL mode images are converted to for a model of ``in_chans`` channels: ``mode`` (--input-img-mode)
    checked against the channel count, else the default mode of that count.

    Raises:
        ValueError: ``mode`` is not a PIL mode or has another number of bands, or no default mode fits.
    """
    if mode is None:
        if in_chans not in _IMG_MODE_OF_CHANNELS:
            raise ValueError(
                f"--in-chans {in_chans}: no default image mode has {in_chans} channels; pass --input-img-mode "
                f"(a PIL mode with {in_chans} bands) or use 1 (L), 3 (RGB) or 4 (RGBA) channels"
            )
        return _IMG_MODE_OF_CHANNELS[in_chans]
    try:
        bands = Image.getmodebands(mode)
    except (KeyError, ValueError):
        raise ValueError(f"--input-img-mode {mode!r} is not a PIL image mode (L, RGB, ...)") from None
    if bands != in_chans:
        raise ValueError(
            f"--input-img-mode {mode} gives {bands}-channel images but the model takes {in_chans} "
            f"channel(s); leave --input-img-mode out ({_IMG_MODE_OF_CHANNELS.get(in_chans, '?')} is used for "
            f"{in_chans}) or pass --in-chans {bands}"
        )
    if mode in ("P", "PA") or ImageMode.getmode(mode).typestr != "|u1":
        # timm's transforms scale 8-bit pixels to [0, 1], where mean / std (and pixel noise) apply: I and I;16 gave
        # integer tensors that Normalize refused (a traceback in the first batch), F unscaled 0..255 values (a loss
        # of hundreds), P palette indices
        default = _IMG_MODE_OF_CHANNELS.get(in_chans)
        raise ValueError(
            f"--input-img-mode {mode}: its pixels are not 8-bit intensities that timm's transforms scale to [0, 1] "
            f"for the model's mean and std; use an 8-bit mode ({default or 'L, RGB, RGBA'}, ...): 16-bit and float "
            "images are converted to it, rounded"
        )
    return mode


def check_stat_counts(args: argparse.Namespace, in_chans: int) -> None:
    """--mean / --std: one value per input channel, or one for all (never silently averaged to fit)."""
    for key in ("mean", "std"):
        values = getattr(args, key)
        if values is not None and len(values) not in (1, in_chans):
            raise ValueError(
                f"--{key} has {len(values)} values but the model takes {in_chans} channel(s); give one value per "
                f"channel ({in_chans}) or a single value for all of them"
            )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)


# --------------------------------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------------------------------


def _weights_file_shapes(weights: Path, model_name: str) -> tuple[int | None, int | None]:
    """(classes, input channels) of a bare weights file (.safetensors, or a .pth / .bin state dict or training
    checkpoint, read as zerosnet-validate reads it), from its classifier and first conv (the keys the model's
    pretrained cfg names); None for what the file does not tell."""
    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
    except RuntimeError:
        return None, None
    if cfg is None:
        return None, None
    if weights.suffix == ".safetensors":
        with safe_open(str(weights), framework="pt") as f:
            shapes = {name: list(f.get_slice(name).get_shape()) for name in f.keys()}
    else:
        from .validate import read_state_dict  # a ValueError naming a damaged or unsafe file

        try:
            state_dict = read_state_dict(weights, instead="pick other weights")
            shapes = {name: list(t.shape) for name, t in state_dict.items() if hasattr(t, "shape")}
        except ValueError as e:
            raise ValueError(f"--pretrained-path {e}") from None

    def shape(key: Any) -> list[int] | None:
        return shapes.get(f"{key}.weight") if isinstance(key, str) else None

    head, stem = shape(cfg.classifier), shape(cfg.first_conv)
    num_classes = head[0] if head is not None and len(head) == 2 else None
    in_chans = stem[1] if stem is not None and len(stem) == 4 else None
    return num_classes, in_chans


def _pretrained_source(path: str | Path, model: str) -> tuple[Path, dict | None, int | None, tuple | None]:
    """The weights at ``path`` (a run directory or a file), their run.json, and the source's classes and input size
    (from run.json, else from the file's classifier and first conv, read with ``model``'s pretrained cfg)."""
    weights, info = resolve_weights(path, pass_file_as=("fine-tune", "--pretrained-path"))  # it has no --weights
    if weights.suffix == ".safetensors":  # a damaged file named here, not by the loader's bare header error
        try:
            with safe_open(str(weights), framework="pt") as f:
                f.keys()
        except Exception as e:
            raise _damaged(weights, e) from None
    if info is not None:
        return weights, info, info["num_classes"], tuple(info["data_config"]["input_size"])
    num_classes, in_chans = _weights_file_shapes(weights, model)
    input_size = None
    if in_chans is not None:
        default = timm.models.get_pretrained_cfg(model).input_size
        input_size = (in_chans, *default[1:])
    return weights, None, num_classes, input_size


def pretrained_overlay(path: str | Path, model: str) -> tuple[dict, dict | None]:
    """timm's ``pretrained_cfg_overlay`` for loading the weights at ``path`` (a run directory or a weights file) into
    ``model``, and their run.json (None for a bare file).

    The overlay names the file and the source's classes and input size (run.json's, else read from the file's
    classifier and first conv), so that timm drops the classifier and adapts the stem only where they differ, and a
    run's preprocessing (run.json's mean / std, interpolation and crop), which its weights were trained with: the
    model's pretrained cfg, from which the data config is resolved, as for timm's released weights. A run of another
    architecture is refused (ValueError).
    """
    weights, info, source_classes, source_input_size = _pretrained_source(path, model)
    # architectures, not names: a run fine-tuned from a released tag recorded --model with its tag
    if info is not None and model != info["model"] and architecture_name(model) != run_architecture(info):
        raise ValueError(
            f"{weights} holds a {run_architecture(info)!r} (see its run.json) but --model is {model!r}; pass "
            f"--model {run_architecture(info)}"
        )
    overlay: dict[str, Any] = {"file": str(weights)}
    if source_classes is not None:
        overlay["num_classes"] = source_classes
    if source_input_size is not None:
        overlay["input_size"] = source_input_size
    if info is not None:  # a fine-tune normalised its inputs with the model's defaults, not the source's
        source_data = info.get("data_config") or {}
        for key in _SOURCE_PREPROCESSING:
            if source_data.get(key) is not None:
                value = source_data[key]
                overlay[key] = tuple(value) if isinstance(value, list) else value
    return overlay, info


_SOURCE_PREPROCESSING = ("mean", "std", "interpolation", "crop_pct", "crop_mode")  # a source run's, from its run.json


def pretrained_source(path: str | Path, model: str) -> dict:
    """What the ``--pretrained-path`` source at ``path`` gives ``model`` besides its weights, as JSON: timm's
    ``pretrained_cfg_overlay`` (:func:`pretrained_overlay`) and the family options and global pool of a source run
    (None for a bare file). Training states record it, so that a resume builds the same model when the source is
    gone."""
    overlay, info = pretrained_overlay(path, model)
    model_kwargs = None if info is None else _jsonable(info.get("model_kwargs") or {})
    # a run's global pool, which its classifier learned on: --gp max fine-tuned with avg pooling without a word
    global_pool = None if info is None else info.get("global_pool")
    return {"overlay": _jsonable(overlay), "model_kwargs": model_kwargs, "global_pool": global_pool}


def checkpoint_choice_note(source: dict | None) -> str | None:
    """What to say of a ``--pretrained-path`` source (as :func:`pretrained_source` gives it) that is a training
    checkpoint holding both the model's weights and their EMA (timm's train.py writes model_best.pth.tar so): timm's
    loader fine-tunes the EMA ones, as timm's train.py --initial-checkpoint does, while zerosnet-validate evaluates
    the others unless given --weights ema. None for any other source (one set of weights)."""
    file = (source or {}).get("overlay", {}).get("file")
    if not file or Path(file).suffix == ".safetensors":
        return None
    from .validate import read_checkpoint_weights

    _, model_key, ema_key = read_checkpoint_weights(Path(file), instead="pick other weights")
    if ema_key is None:
        return None
    return (
        f"--pretrained-path {file} holds the model's weights ({model_key}) and their EMA ({ema_key}): fine-tuning "
        f"starts from {ema_key}, as timm's train.py --initial-checkpoint does (zerosnet-validate --checkpoint "
        f"evaluates {model_key}, and {ema_key} with --weights ema). To fine-tune {model_key} instead, save it alone "
        f"and pass that file: python -c \"import torch; torch.save(torch.load('{file}', weights_only=False)"
        f"['{model_key}'], '{model_key}.pth')\""
    )


def recorded_pretrained_source(state: Path, pretrained_path: str) -> tuple[dict, str] | None:
    """The ``--pretrained-path`` source of the run of training state ``state``, as :func:`pretrained_source` gives
    it, from what was recorded instead of the source (moved or deleted since): the state's settings, else its run's
    run.json (the model's pretrained cfg) with the state's settings (the family options the model was built with);
    and what it was read from. None where the state was saved with another ``--pretrained-path`` or none (the
    resume fails on the missing source, as it did).

    Raises:
        FileNotFoundError: nothing recorded rebuilds the model (a state of an older version): says that the source
            is missing, where it was expected and to put it back there.
    """
    expected = _absolute(pretrained_path, keep_missing=False)
    saved, complete = _saved_settings(state)
    if complete and (not saved.get("pretrained_path") or _absolute(saved["pretrained_path"], False) != expected):
        return None
    if complete and saved.get("pretrained_source") is not None:
        return saved["pretrained_source"], f"the settings of {state}"
    run_json = state.parent.parent / "run.json"
    if complete:  # an older version's settings, without the source's cfg: its run's run.json records the model's
        with contextlib.suppress(ValueError):  # a damaged run.json: the error below says what to do
            info = read_run_info(run_json.parent) or {}
            cfg, training = info.get("pretrained_cfg"), info.get("training") or {}
            recorded_path = training.get("pretrained_path") if isinstance(training, dict) else None
            same_run = info.get("model") == saved.get("model") and isinstance(cfg, dict) and recorded_path
            if same_run and _absolute(recorded_path, keep_missing=False) == expected:
                keys = ("file", "num_classes", "input_size", *_SOURCE_PREPROCESSING)
                overlay = {key: cfg[key] for key in keys if cfg.get(key) is not None}
                source = {"overlay": overlay, "model_kwargs": saved.get("model_kwargs")}
                return source, f"{run_json} and the settings of {state}"
    gave = "what the source gave the model (its pretrained cfg and family options)"
    lacking = f"records not {gave}, nor does {run_json}" if complete else f"was saved without its settings ({gave})"
    raise FileNotFoundError(
        f"--pretrained-path {pretrained_path}: the source this run fine-tunes is missing (nothing at {expected}), "
        f"and the model cannot be built without it: {state}, of an older version, {lacking}. Put the source back at "
        f"{expected} and resume again"
    )


def _trained_with_own_pool(state: Path) -> bool:
    """Whether training state ``state`` of a ``--pretrained-path`` run trained the model with its own global pool:
    no --gp recorded, nor a source's pool (saved before a source run's pool became the default, or continuing one)."""
    saved, complete = _saved_settings(state)
    return not complete or (
        saved.get("gp") is None and (saved.get("pretrained_source") or {}).get("global_pool") is None
    )


def _source_missing(path: str) -> bool:
    """Whether no weights are at ``--pretrained-path`` ``path`` (moved or deleted): a file that is there but
    unusable is not missing (building the model says what is wrong with it)."""
    try:
        resolve_weights(path, pass_file_as=("fine-tune", "--pretrained-path"))
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return False


def create_model_from_args(
    args: argparse.Namespace,
    num_classes: int | None = None,
    in_chans: int | None = None,
    source: dict | None = None,
    read_weights: bool = True,
) -> nn.Module:
    """timm.create_model with the run's options; ``--pretrained-path`` adapts the head and stem of a checkpoint.

    A ``--pretrained-path`` inside a run directory (run.json) must name the same architecture; its family options
    (``model_kwargs``) are used, ``--model-kwargs`` going over them key by key (``lam=null`` for a default), as over
    a published model's, and so is its global pool where ``--gp`` is not given. For a bare .safetensors file the
    classes and input channels are read from its classifier and first conv.

    ``source``: the ``--pretrained-path`` source as :func:`pretrained_source` read it (default: read it now);
    ``read_weights=False`` builds the model with its pretrained cfg and family options but without its weights
    (nor any others), for a resume whose state replaces them all when the source is gone.
    """
    overlay = None
    if args.pretrained_path:
        source = source if source is not None else pretrained_source(args.pretrained_path, args.model)
        overlay = {key: tuple(v) if isinstance(v, list) else v for key, v in source["overlay"].items()}
        if source["model_kwargs"] is not None:  # a run's: the family options the source was trained with
            # (--model-kwargs pretrained_strict=False alone dropped them: a tau=0.5 source fine-tuned with the
            # default tau, without a word)
            args.model_kwargs = {**source["model_kwargs"], **(args.model_kwargs or {})}
        if args.gp is None and source.get("global_pool") is not None:  # --gp goes over it
            args.gp = source["global_pool"]
    try:
        return _create_model(args, overlay, num_classes, in_chans, read_weights)
    except (EOFError, pickle.UnpicklingError) as e:  # a damaged pickle file (torch.load)
        raise _damaged(args.pretrained_path, e) from None


def _damaged(path: Any, e: BaseException) -> ValueError:
    return ValueError(
        f"--pretrained-path {path}: cannot read it ({type(e).__name__}: {e}); the file is damaged or truncated: "
        "copy it again or pick other weights"
    )


def _create_model(
    args: argparse.Namespace, overlay: dict | None, num_classes: int | None, in_chans: int | None, read_weights: bool
):
    return create_model_checked(
        args.model,
        args.model_kwargs,
        pretrained=bool(args.pretrained or args.pretrained_path) and read_weights,
        pretrained_cfg_overlay=overlay,
        num_classes=num_classes,
        in_chans=in_chans,
        global_pool=args.gp,
        drop_rate=args.drop,
        drop_path_rate=args.drop_path,
    )


def built_model_kwargs(model_kwargs: dict | None, published: dict | None) -> dict[str, Any]:
    """The family options a model was built with: --model-kwargs over those of the published model it came from
    (``published``: the config.json of a ``local-dir:`` / ``hf-hub:`` model, ``run_layout.published_config``; its
    ``model_args`` are what timm's loader passes on). What run.json records, so that the tools that build a run's
    model from it (validate, zerosnet-hub export, --pretrained-path) build this one: a lambda is no tensor, and the
    weights load as well into a model with another."""
    source = (published or {}).get("model_args")
    source = {k: v for k, v in source.items() if k not in _MODEL_OPTION_FLAGS} if isinstance(source, dict) else {}
    return architecture_options({**source, **(model_kwargs or {})})  # pretrained_strict=False: how weights loaded


# the timm.create_model arguments that the entry points set from an option of their own
_MODEL_OPTION_FLAGS = {
    "drop_rate": "--drop",
    "drop_path_rate": "--drop-path",
    "global_pool": "--gp",
    "in_chans": "--in-chans",
    "num_classes": "--num-classes",
}


def check_model_name(name: str) -> None:
    """Refuse (ValueError) a ``--model`` that timm does not know: an unregistered architecture (with the closest
    registered ones), or a pretrained tag it has no cfg for (``zerosnet20_cifar.nonexist``, which timm refuses with a
    RuntimeError even without weights), with the tags it has. Names with a source (``hf-hub:ORG/NAME``,
    ``local-dir:PATH``) go to timm as they are."""
    source, _ = parse_model_name(name)
    if source is not None:
        return
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"--model {name!r} is not a registered model{hint} (timm.list_models('zerosnet*') lists the ZeroSNets, "
            "and so on for lmresnet*, preresnet*, tauresnet*; any timm model works too)"
        )
    architecture, tag = timm.models.split_model_name_tag(name)
    if not tag or name in timm.list_models(f"{architecture}.*", include_tags=True):
        return
    released, listing = timm.list_pretrained(f"{architecture}.*"), f"timm.list_pretrained('{architecture}.*')"
    if not released:
        raise ValueError(
            f"--model {name!r}: {architecture} has no pretrained tag {tag!r}, nor any other with weights ({listing} "
            f"lists none): pass --model {architecture}"
        )
    more = len(released) - _TAGS_SHOWN
    shown = ", ".join(released[:_TAGS_SHOWN]) + (f" and {more} more" if more > 0 else "")
    raise ValueError(
        f"--model {name!r}: {architecture} has no pretrained tag {tag!r}; those with weights are {shown} ({listing}): "
        f"pass one of them, or --model {architecture} for its default"
    )


_TAGS_SHOWN = 8  # of an unknown tag's architecture (a ViT has dozens)


def create_model_checked(name: str, model_kwargs: dict | None, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs, **model_kwargs)`` with the bad input of the entry points as ValueError:
    a name timm does not know (with the closest registered ones) and ``--model-kwargs`` the model does not take or
    cannot use (timm's TypeError, the model's ValueError), named as the flag. Names with a source
    (``hf-hub:ORG/NAME``, ``local-dir:PATH``) go to timm as they are."""
    check_model_name(name)
    try:
        return timm.create_model(name, **kwargs, **(model_kwargs or {}))
    except (TypeError, ValueError) as e:  # a model argument it does not take, or a value it refuses
        # an option's argument that another timm model has no use for (vgg11 and --drop-path: a TypeError traceback)
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        key = unknown.group(1) if unknown else None
        if key in _MODEL_OPTION_FLAGS and kwargs.get(key) is not None and key not in (model_kwargs or {}):
            flag = _MODEL_OPTION_FLAGS[key]
            raise ValueError(f"{flag} {kwargs[key]}: {name} takes no {key} ({e}); leave {flag} out") from None
        if not model_kwargs:
            raise
        given = " ".join(f"{k}={v!r}" for k, v in model_kwargs.items())
        raise ValueError(f"--model-kwargs {given}: {name} cannot be built with them ({e})") from None


def sync_batchnorm(model: nn.Module, accelerator: Accelerator) -> nn.Module:
    """--sync-bn: every batch norm of ``model`` (timm's BatchNormAct2d included) as a SyncBatchNorm, whose training
    statistics are those of the global batch. Its parameters and buffers keep their names, so checkpoints, EMA
    weights and exports load into the plain model. One process has nothing to synchronise, and a model without batch
    norm nothing to convert: both are said and the model is left as it is."""
    if accelerator.num_processes == 1:
        accelerator.print("note: --sync-bn: one process, so there is nothing to synchronise; batch norm left as is")
        return model
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        accelerator.print(f"note: --sync-bn: {type(model).__name__} has no batch norm; nothing to synchronise")
        return model
    model = convert_sync_batchnorm(model)
    count = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    accelerator.print(f"--sync-bn: {count} batch norm layers synchronised over {accelerator.num_processes} processes")
    return model


def freeze_backbone(model: nn.Module) -> list[nn.Module]:
    """Freeze everything but ``model.get_classifier()``; returns the backbone's norm layers (kept in eval mode)."""
    head = model.get_classifier()
    head_params = {id(p) for p in head.parameters()}
    if not head_params:
        raise ValueError("--freeze-backbone needs a classifier with parameters (num_classes > 0)")
    for p in model.parameters():
        p.requires_grad_(id(p) in head_params)
    head_modules = set(head.modules())
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m not in head_modules]


def _model_param_groups(model: nn.Module, hook: Callable, args: argparse.Namespace) -> list[dict]:
    """The model's own parameter groups, with ``--layer-decay`` scales multiplied in when asked for."""
    params = inspect.signature(hook).parameters
    kwargs = {"weight_decay": args.weight_decay, "lr": args.lr}
    groups = hook(**{k: v for k, v in kwargs.items() if k in params})
    groups = [dict(g, params=[p for p in g["params"] if p.requires_grad]) for g in groups if "params" in g]
    groups = [g for g in groups if g["params"]]
    if not args.layer_decay:
        return groups
    scale = {
        id(p): g["lr_scale"]
        for g in param_groups_layer_decay(model, weight_decay=0.0, layer_decay=args.layer_decay)
        for p in g["params"]
    }
    split = []
    for g in groups:
        by_scale: dict[float, list] = {}
        for p in g["params"]:
            by_scale.setdefault(scale.get(id(p), 1.0), []).append(p)
        for s, ps in by_scale.items():
            split.append(dict(g, params=ps, lr_scale=g.get("lr_scale", 1.0) * s))
    return split


def _lambda_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """``--decay-lambda``: conv / linear weights and ZeroSNet Tra's lambdas decayed, everything else (norms, biases,
    the other scheme scalars, ``no_weight_decay()``) not."""
    lams = {name for name, _ in model.named_parameters() if name.endswith(".lam")}
    skip = set(getattr(model, "no_weight_decay", lambda: ())()) - lams
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if name in lams or (param.ndim > 1 and name not in skip) else no_decay).append(param)
    return [dict(params=no_decay, weight_decay=0.0), dict(params=decay, weight_decay=weight_decay)]


def create_optimizer_from_args(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    """timm's create_optimizer_v2; a model's ``optimizer_param_groups(weight_decay, lr)`` hook wins when present.

    The hook returns torch parameter groups. A group may set ``weight_decay``, an absolute ``lr`` (the schedule then
    scales it like the base lr) or an ``lr_scale`` (multiplied in by timm's schedulers), e.g. tau-ResNet's biases
    and tau at lr/10 and DiffStride's strides without weight decay. Without the hook timm builds the groups:
    no weight decay for 1-d parameters and ``model.no_weight_decay()``, layer decay through ``group_matcher()``.
    ``--decay-lambda`` decays ZeroSNet Tra's lambdas too (RECIPES.md, ZeroSNet ImageNet: "conv/linear weights and
    lambda; not BN").
    """
    kwargs: dict[str, Any] = dict(opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum)
    if args.opt_eps is not None:
        kwargs["eps"] = args.opt_eps
    if args.opt_betas is not None:
        kwargs["betas"] = tuple(args.opt_betas)
    kwargs.update(args.opt_kwargs or {})
    try:
        return _create_optimizer(model, args, kwargs)
    except (TypeError, ValueError) as e:
        if not args.opt_kwargs or isinstance(e, ValueError) and "--" in str(e):  # our own refusals name an option
            raise
        given = " ".join(f"{k}={v!r}" for k, v in args.opt_kwargs.items())
        what = "does not take it" if "keyword argument" in str(e) else "refuses it"
        raise ValueError(f"--opt-kwargs {given}: --opt {args.opt} {what} ({e})") from None
    except AssertionError as e:  # timm's factory asserts what an optimizer needs (fused ones: CUDA)
        raise ValueError(f"--opt {args.opt}: {str(e).strip() or 'timm cannot build it here'}") from None


def _create_optimizer(model: nn.Module, args: argparse.Namespace, kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    hook = getattr(model, "optimizer_param_groups", None)
    if getattr(args, "decay_lambda", False):
        if callable(hook) or args.layer_decay:
            raise ValueError(
                f"--decay-lambda builds the parameter groups of a ZeroSNet model; it cannot be combined with "
                f"{'--layer-decay' if args.layer_decay else f'the parameter groups {type(model).__name__} defines'}"
            )
        groups = _lambda_decay_groups(model, args.weight_decay)
        return create_optimizer_v2(model, param_group_fn=lambda _: groups, **kwargs)
    if callable(hook):
        groups = _model_param_groups(model, hook, args)
        return create_optimizer_v2(model, param_group_fn=lambda _: groups, **kwargs)
    return create_optimizer_v2(model, layer_decay=args.layer_decay, **kwargs)


def match_channels(data_config: dict, in_chans: int) -> dict:
    """Mean/std with one entry per input channel, following how timm adapts pretrained RGB stem filters
    (``adapt_input_conv``): a grey model gets the average of the RGB statistics (its filter is their sum), any other
    count repeats them channel by channel (RGBA: R, G, B, then R's for alpha, as the filters are repeated). An
    explicit single --mean/--std value already came in as one value per channel."""
    cfg = dict(data_config)
    for key in ("mean", "std"):
        values = tuple(cfg[key])
        if len(values) == in_chans:
            continue
        if in_chans == 1 or len(values) == 1:
            cfg[key] = (sum(values) / len(values),) * in_chans
        else:
            cfg[key] = tuple(values[i % len(values)] for i in range(in_chans))
    cfg["input_size"] = (in_chans, *cfg["input_size"][1:])
    return cfg


def create_train_transform(args: argparse.Namespace, data_config: dict) -> Callable:
    """timm's training transform; ``--crop-padding N`` swaps its random-resized crop for CIFAR's pad-and-crop."""
    common = dict(
        input_size=data_config["input_size"],
        is_training=True,
        no_aug=args.no_aug,
        train_crop_mode=args.train_crop_mode,
        scale=args.scale,
        ratio=args.ratio,
        hflip=args.hflip,
        vflip=args.vflip,
        color_jitter=args.color_jitter or None,
        auto_augment=args.aa,
        interpolation=args.train_interpolation,
        mean=data_config["mean"],
        std=data_config["std"],
        re_prob=args.reprob,
        re_mode=args.remode,
        re_count=args.recount,
    )
    if args.no_aug or not args.crop_padding:
        return create_transform(**common)
    _, secondary, final = create_transform(**common, separate=True)
    size = tuple(data_config["input_size"][1:])
    interpolation = args.train_interpolation
    interpolation = interpolation if interpolation not in ("random", "") else "bilinear"
    # the view evaluation takes (the short side resized to size / crop_pct, the centre cropped: a squash to size
    # distorted a non-square image, which evaluation then saw undistorted), in the train interpolation; for a
    # square image at crop_pct 1 it is the resize to size it was
    evaluated = transforms_imagenet_eval(
        size,
        crop_pct=data_config.get("crop_pct"),
        crop_mode=data_config.get("crop_mode"),
        interpolation=interpolation,
        mean=data_config["mean"],
        std=data_config["std"],
    )
    geometry = [t for t in evaluated.transforms if not isinstance(t, (MaybeToTensor, transforms.Normalize))]
    primary = [*geometry, transforms.RandomCrop(size, padding=args.crop_padding)]
    if args.hflip > 0:
        primary.append(transforms.RandomHorizontalFlip(args.hflip))
    if args.vflip > 0:
        primary.append(transforms.RandomVerticalFlip(args.vflip))
    return transforms.Compose(primary + list(secondary.transforms) + list(final.transforms))


def data_config_for_run(data_config: dict) -> dict:
    """The JSON-safe preprocessing fields recorded in run.json."""
    keys = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")
    return {k: _jsonable(data_config.get(k)) for k in keys}


def build_loss_fns(args: argparse.Namespace, mixup_active: bool, device: torch.device | None = None) -> nn.Module:
    """Training loss: soft-target CE under mixup/cutmix (which smooth the labels), else (smoothed) CE; with
    --bce-loss timm's BinaryCrossEntropy in both cases (it smooths integer labels itself, mixup's soft targets are
    taken as they are). Unlike timm's train.py, --bce-loss without mixup or smoothing is BCE too, not plain CE.
    ``device``: where BCE keeps its --bce-pos-weight."""
    if args.bce_loss:
        return BinaryCrossEntropy(
            smoothing=0.0 if mixup_active else args.smoothing,
            target_threshold=args.bce_target_thresh,
            sum_classes=args.bce_sum,
            pos_weight=args.bce_pos_weight,
        ).to(device)
    if mixup_active:
        return SoftTargetCrossEntropy()
    if args.smoothing:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return nn.CrossEntropyLoss()


def resolve_lr(args: argparse.Namespace, global_batch_size: int) -> float:
    """``--lr`` or ``--lr-base`` scaled from ``--lr-base-size`` to the global batch: by ``--lr-base-scale``, or as
    timm's train.py picks the rule, the square root for adaptive optimisers (Adam, LAMB, ...) and linear otherwise."""
    if args.lr is not None:
        return args.lr
    ratio = global_batch_size / args.lr_base_size
    scale = args.lr_base_scale or ("sqrt" if any(o in args.opt.lower() for o in ("ada", "lamb")) else "linear")
    return args.lr_base * (math.sqrt(ratio) if scale == "sqrt" else ratio)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, accelerator: Accelerator, channels_last: bool = False, desc: str = "val"
) -> dict[str, float]:
    """Loss, top-1 and top-5 over a (prepared) loader, every sample counted exactly once across processes.

    Returns ``loss``, ``top1``, ``top5`` (percent), ``count`` and the integer ``correct1``/``correct5``.
    """
    model.eval()
    loss_m, top1_m, top5_m = AverageMeter(), AverageMeter(), AverageMeter()
    for x, y in _progress(loader, accelerator, desc):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            logits = model(x)
        # gather_for_metrics drops the samples duplicated to even out the last batch across processes
        logits, y = accelerator.gather_for_metrics((logits.float(), y))
        n = y.numel()
        if n == 0:
            continue
        acc1, acc5 = accuracy(logits, y, topk=(1, min(5, logits.shape[1])))
        loss_m.update(nn.functional.cross_entropy(logits, y).item(), n)
        top1_m.update(acc1.item(), n)
        top5_m.update(acc5.item(), n)
    # the meters' sums are 100 x the number of correct samples
    correct1, correct5, count = round(top1_m.sum / 100.0), round(top5_m.sum / 100.0), top1_m.count
    return {
        "loss": loss_m.avg,
        "top1": 100.0 * correct1 / max(count, 1),
        "top5": 100.0 * correct5 / max(count, 1),
        "count": count,
        "correct1": correct1,
        "correct5": correct5,
    }


def _progress(iterable, accelerator: Accelerator, desc: str, total: int | None = None, initial: int = 0):
    """tqdm on the main process when stdout is a terminal; the bare iterable otherwise."""
    if not (accelerator.is_main_process and sys.stdout.isatty()):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints and run state
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Training progress, saved with every accelerate state (registered for checkpointing)."""

    epoch: int = 0  # epoch in progress (0-based); equals the number of completed epochs between epochs
    step_in_epoch: int = 0  # batches of `epoch` already trained
    num_updates: int = 0  # optimizer updates so far
    epoch_loss_sum: float = 0.0  # running sums of the epoch in progress, so a resumed epoch logs the same loss
    epoch_samples: int = 0
    epoch_train_time: float = 0.0
    best_metric: float | None = None
    best_epoch: int | None = None
    best_source: str | None = None
    history: list[dict] = field(default_factory=list)
    settings: dict | None = None  # Trainer.settings() of the saving run: what a resume must not change (threads: noted)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@contextlib.contextmanager
def _atomic_target(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file next to ``path`` to write; renamed onto ``path`` when the block succeeds, removed when it
    fails (a full disk, an error): no half-written file is ever left behind."""
    tmp = path.with_name(f".{path.name}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when writing failed


def _atomic_write_text(path: Path, text: str) -> None:
    with _atomic_target(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _atomic_save_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    with _atomic_target(path) as tmp:
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        respect_umask(tmp)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


def _saved_at(state: Path) -> int:
    """When a state was saved: its progress file's modification time (ns)."""
    try:
        return (state / state_object_file("progress")).stat().st_mtime_ns
    except OSError:  # not a complete state: oldest first
        return 0


def _has_finite_weights(state: Path) -> bool:
    """Whether the model weights and buffers of training state ``state`` are all there and finite."""
    try:
        tensors = load_file(str(state / "model.safetensors"))
    except (OSError, SafetensorError):
        return False
    return all(t.isfinite().all() for t in tensors.values() if t.is_floating_point())


class CheckpointManager:
    """Accelerate states under ``<run>/checkpoints``, each complete or absent.

    A state is written into a hidden temporary folder and renamed into place; only then is the ``latest`` pointer
    (a one-line file, itself replaced atomically) moved to it. A crash at any moment leaves ``latest`` naming a
    complete state.
    """

    POINTER = "latest"

    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = max(1, keep)

    @staticmethod
    def state_name(epoch: int, step_in_epoch: int) -> str:
        return f"state-e{epoch:04d}-b{step_in_epoch:06d}"

    def states(self) -> list[Path]:
        """The complete states here (those with their progress file), oldest saved first."""
        if not self.dir.is_dir():
            return []
        return sorted((p for p in self.dir.glob("state-*") if _saved_at(p)), key=lambda p: (_saved_at(p), p.name))

    def _pointed(self) -> Path | None:
        pointer = self.dir / self.POINTER
        if not pointer.is_file():
            return None
        name = pointer.read_text(errors="replace").strip()
        target = self.dir / name
        return target if name and "/" not in name and target.is_dir() else None

    def latest(self) -> Path | None:
        """The state ``latest`` points to; where it names none (a crash between a first state's rename and the
        pointer's write, a pointer edited, a state removed by hand), the complete state saved last; or None."""
        found = self._pointed()
        if found is not None:
            return found
        states = self.states()
        return states[-1] if states else None

    def latest_finite(self) -> Path | None:
        """The latest state whose model weights and buffers are all finite (a diverging run saves states whose
        batch-norm statistics are already infinite before its loss is), newest first from :meth:`latest`."""
        newest = self.latest()
        states = [p for p in reversed(self.states()) if p != newest]
        for state in [newest, *states] if newest is not None else states:
            if _has_finite_weights(state):
                return state
        return None

    def pointer_note(self) -> str | None:
        """What :meth:`latest` says when it does not follow the pointer, for the log."""
        if self._pointed() is not None or not (states := self.states()):
            return None
        pointer = self.dir / self.POINTER
        names = f"names {pointer.read_text(errors='replace').strip()[:80]!r}, no state" if pointer.is_file() else None
        return (
            f"{pointer} {names or 'is missing'}; the latest complete state is the one saved last, {states[-1].name} "
            f"(of {', '.join(p.name for p in states)})"
        )

    def save(self, accelerator: Accelerator, name: str, attach: Sequence[Path] = ()) -> Path:
        """Save accelerate's state as ``name`` (a collective call: every process must enter it), with a copy of each
        existing file of ``attach`` (hard-linked where possible: the run replaces its files, never rewrites them)."""
        final, tmp = self.dir / name, self.dir / f".tmp-{name}"
        if accelerator.is_main_process:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for weights in tmp.glob("*.safetensors"):  # accelerate writes the model's with safetensors (0600)
                respect_umask(weights)
            for source in attach:
                if source.is_file():
                    _link_or_copy(source, tmp / source.name)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _atomic_write_text(self.dir / self.POINTER, name + "\n")
            self._prune(keep_also=final)
        accelerator.wait_for_everyone()
        return final

    def _prune(self, keep_also: Path) -> None:
        """Keep the ``keep`` states saved last (and ``keep_also``). By time of saving, not by name: after a resume
        from an earlier state, the states of the abandoned later epochs sort after the new ones by name."""
        states = sorted((p for p in self.dir.glob("state-*") if p.is_dir()), key=lambda p: (_saved_at(p), p.name))
        for old in states[: -self.keep]:
            if old != keep_also:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.dir.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def resolve(self, resume: str | None) -> Path | None:
        """The state to resume from: a state dir, a run dir, 'latest' (required) or 'auto' (if any)."""
        if not resume:
            return None
        if resume in ("auto", "latest"):
            found = self.latest()
            if found is None and resume == "latest":
                raise FileNotFoundError(f"--resume latest: no complete state under {self.dir}")
            return found
        path = Path(resume).expanduser()
        if (path / "checkpoints").is_dir() and (found := CheckpointManager(path).latest()) is not None:
            return found  # a run directory
        if path.name == "checkpoints" and (found := CheckpointManager(path.parent).latest()) is not None:
            return found  # its folder of states
        # a state: the scheduler and the progress are always its first custom objects; one of them alone is a state
        # with a file missing, which resuming names with the state to resume instead
        if any((path / state_object_file(kind)).is_file() for kind in ("scheduler", "progress")):
            return path
        raise FileNotFoundError(f"--resume {resume}: not a training state, a run directory, 'latest' or 'auto'")


# --------------------------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------------------------


BEST_FILE = WEIGHT_FILES["best"]
RUN_FILES = ("run.json", *WEIGHT_FILES.values(), "metrics.json", "args.yaml")
"""Files that only a run writes: a directory holding any of them (or a training state) holds a run. args.yaml is
written first: alone, it is a run killed in its first epoch (SIGKILL, a crash) or one still in it."""


def existing_run(run_dir: str | Path) -> list[str]:
    """What in ``run_dir`` belongs to a run already there: its outputs (RUN_FILES) and ``checkpoints/`` states."""
    run_dir = Path(run_dir)
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    states = run_dir / "checkpoints"
    if states.is_dir() and any(
        p.name == CheckpointManager.POINTER or p.name.startswith("state-") for p in states.iterdir()
    ):
        found.append("checkpoints/")
    return found


def check_run_dir(run_dir: Path, resume_from: Path | None, resume: str | None) -> str | None:
    """Refuse to start a run over another one: a fresh run needs a run directory without a run in it, a resumed one
    its own directory or one without a run (continuing another run's state there). ``--resume auto`` starts a run
    again that never saved a training state or final weights (it failed or was stopped in its first epochs); the
    returned note says so."""
    held = existing_run(run_dir)
    if not held:
        return None
    what = f"{run_dir} already holds a run ({', '.join(held)})"
    if resume_from is None:
        has_state = CheckpointManager(run_dir).latest() is not None
        unfinished = not has_state and not (run_dir / "model.safetensors").exists()
        if unfinished and resume == "auto":
            return (
                f"{run_dir} holds no training state and no final weights (a run that stopped early): starting it again"
            )
        if not resume and has_state:
            how = "pass --resume auto to continue it, choose another --experiment / --output, or remove it"
        elif unfinished:
            how = (
                "it stopped before saving a training state or final weights: pass --resume auto to start it again, "
                "choose another --experiment / --output, or remove it"
            )
        else:
            how = (
                "it has no complete training state to continue; choose another --experiment / --output, "
                f"fine-tune from its weights with --pretrained-path {run_dir}, or remove it"
            )
        prefix = f"--resume {resume} found no training state, but " if resume else ""
        raise FileExistsError(f"{prefix}{what}; {how}")
    if resume_from.resolve().parent != (run_dir / "checkpoints").resolve():
        if held == ["args.yaml"]:  # the same command stopped in its first epoch: it starts again from that state
            return f"{run_dir} holds only the args.yaml of a run that stopped before saving anything: starting it again"
        if CheckpointManager(run_dir).latest() is None and not (run_dir / "model.safetensors").exists():
            # the same command stopped (Ctrl-C, SIGTERM: run.json records it) before its first state: refused, and
            # the --resume auto advised started the run from scratch, not from the state it continues
            return (
                f"{run_dir} holds a run that stopped before saving a training state or final weights: starting it "
                f"again from {resume_from}"
            )
        raise FileExistsError(
            f"--resume {resume} is a state of another run ({resume_from.parent.parent}), but {what}, which resuming "
            f"would overwrite; to continue that run in a new directory pass an --experiment / --output that holds no "
            f"run yet, or pass --resume auto to continue {run_dir}'s own run"
        )
    return None


def _run_dir(args: argparse.Namespace) -> Path:
    if not args.experiment:
        # one folder name, also for a model named with a source and a path (local-dir:/x/y, hf-hub:org/name)
        model = re.sub(r"[^\w.-]+", "-", args.model).strip("-.")[:80]
        args.experiment = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{model}"
    return Path(args.output).expanduser() / args.experiment


def make_accelerator(args: argparse.Namespace) -> Accelerator:
    """The run's Accelerator. Without --experiment, every process of a launch takes the main process's default
    name (each one's own clock could differ by a second and split the run in two directories). A launch of several
    processes that accelerate runs as one (no GPU and no --cpu) is refused: each would train alone into the same
    directory."""
    defaulted = not args.experiment
    run_dir = _run_dir(args)
    log_with = [t.strip() for t in args.log_with.split(",")] if args.log_with else None
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,  # None: accelerate's own setting (launch flags / env)
        gradient_accumulation_steps=args.grad_accum_steps,
        cpu=args.cpu,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        dynamo_backend=args.torchcompile,
        step_scheduler_with_optimizer=False,
    )
    refuse_lone_processes(accelerator, "train by itself into the same run directory", "train")
    if accelerator.mixed_precision == "fp16" and not accelerator.native_amp:
        raise ValueError(
            f"fp16 mixed precision (--mixed-precision or `accelerate launch --mixed_precision`) needs a GPU: on "
            f"{accelerator.device} accelerate would train in float32 and the run would be recorded as fp16; use bf16 "
            "(CPU autocast) or no mixed precision"
        )
    if args.sync_bn and accelerator.num_processes > 1 and accelerator.device.type == "cpu":
        raise ValueError(
            f"--sync-bn: torch's SyncBatchNorm runs on GPUs only, and these {accelerator.num_processes} processes run "
            "on the CPU; drop --sync-bn (each process then normalises over its own batch)"
        )
    if defaulted and accelerator.num_processes > 1:
        args.experiment = broadcast_object_list([args.experiment])[0]
        run_dir = _run_dir(args)
        accelerator.project_configuration.project_dir = str(run_dir)
        accelerator.project_configuration.logging_dir = str(run_dir / "logs")
    return accelerator


RESUME_SETTINGS = (
    # the model (its weights are restored; --pretrained-path names what the run fine-tunes, as run.json reports it)
    "model model_kwargs num_classes gp freeze_backbone pretrained pretrained_path "
    # optimizer and schedule: their states (momentum buffers, param-group lr/weight decay, the scheduler's length
    # and milestones) are restored, so new values would be silently ignored
    "opt momentum weight_decay decay_lambda opt_eps opt_betas opt_kwargs layer_decay lr epochs sched sched_on_updates "
    "min_lr "
    "warmup_lr warmup_epochs warmup_prefix cooldown_epochs decay_milestones decay_epochs decay_rate patience_epochs "
    "eval_metric model_ema model_ema_decay model_ema_warmup "
    # the data order and the batches the schedule counts
    "seed batch_size grad_accum_steps train_num_samples "
    # the data, its preprocessing and augmentation, the loss and the regularisation: the recipe the run trains
    # with, which run.json and args.yaml report (a resume with others mixed two recipes in one run, and a finished
    # run's records were rewritten with settings it never trained with); --data-dir may move
    "dataset train_split val_split class_map input_img_mode input_key target_key val_num_samples img_size input_size "
    "crop_pct mean std interpolation train_interpolation train_crop_mode crop_padding scale ratio hflip vflip "
    "color_jitter aa no_aug reprob remode recount mixup cutmix cutmix_minmax mixup_prob mixup_switch_prob mixup_mode "
    "mixup_off_epoch smoothing bce_loss bce_sum bce_target_thresh bce_pos_weight stride_reg drop drop_path clip_grad "
    "clip_mode"
).split()
_PATH_SETTINGS = ("pretrained_path", "class_map")  # settings that name a file: recorded as absolute paths


_DERIVED_SETTINGS = {
    "in_chans": "input channels",
    "num_processes": "number of processes",
    "updates_per_epoch": "updates per epoch",
    "train_samples": "training images",
    "threads": "torch intra-op threads",
    "mixed_precision": "mixed precision (--mixed-precision)",
}
# derived settings that no option of args.yaml sets, and how a resume gives the state's
_LAUNCH_SETTINGS = {
    "num_processes": "{saved} process(es) (`accelerate launch --num_processes {saved} -m timm_zerosnet.train ...`, "
    "with --cpu on CPUs)",
    "mixed_precision": "its mixed precision (--mixed-precision {saved})",
    "train_samples": "the training data it was saved with ({saved} images)",
}
# recorded with a state but not checked on a resume: what --pretrained-path gave the model besides its weights, to
# build it again where the source is gone; a source that is there is read as it is now, as it always was
_RECORDED_SETTINGS = ("pretrained_source",)
# settings a state may be resumed with changed, with a note of what follows: the run goes on, but no longer gives
# the same bits as one that was never interrupted (CPU kernels split their sums by thread), or (gradient clipping,
# the way out of a diverging run) goes on differently from there
_NOTED_SETTINGS = {
    "threads": "training goes on, but its results differ in the last bits from a run that was not interrupted "
    "(--threads {saved} gives the state's)",
    "clip_grad": "gradient clipping follows the new setting from here on; args.yaml records it for the whole run",
    "clip_mode": "gradient clipping follows the new setting from here on; args.yaml records it for the whole run",
}


def _saved_settings(state_dir: Path) -> tuple[dict, bool]:
    """The settings recorded with a training state, and whether it recorded them all (older states record none:
    their number of processes is still known, from the RNG state accelerate saves per process)."""
    with _reading_state(state_dir):
        state = torch.load(state_dir / state_object_file("progress"), map_location="cpu", weights_only=True)
    settings = state.get("settings") if isinstance(state, dict) else None
    if settings is not None:
        return {**_LATER_SETTINGS, **settings}, True
    # the highest process's file, not a count: one missing among them is still a process the state was saved with
    indices = [int(m.group(1)) for f in state_dir.glob("random_states_*.pkl") if (m := _RNG_FILE.fullmatch(f.name))]
    return ({"num_processes": max(indices) + 1} if indices else {}), False


# settings that states saved before they existed do not record, with the value those states trained with (so that
# a resume with another value is refused as for any recorded setting)
_LATER_SETTINGS = {"stride_reg": 0.0}

_RNG_FILE = re.compile(r"random_states_(\d+)\.pkl")  # accelerate's save_state: the RNG state of each process
_RNG_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")  # what its load_state sets on every device


def check_rng_states(state_dir: Path) -> None:
    """Refuse a training state whose RNG file of any process it was saved with (``random_states_<i>.pkl``; their
    number is the one its settings record, for an older state the files there) is damaged or missing, before any of
    it is loaded: accelerate's load_state skips such a file with a line at info level, and the resumed run then
    draws its dropout, drop path, mixup and augmentations unlike the uninterrupted one, without a word.

    Raises:
        ValueError: as for any other damaged file of the state (:func:`_reading_state`): which file, the state and
            the earlier one to resume.
    """
    saved, _ = _saved_settings(state_dir)
    for index in range(saved.get("num_processes") or 1):
        file = state_dir / f"random_states_{index}.pkl"
        what = f"{file.name}, the RNG state of process {index},"
        if not file.is_file():
            raise _unreadable_state(state_dir, f"{what} is missing")
        # whatever torch.load makes of a damaged pickle is named as damage (its first line says to unpickle unsafely)
        try:
            rng = accelerate_load(file)
        except Exception as e:
            raise _unreadable_state(state_dir, f"{what} cannot be read: {type(e).__name__}") from None
        missing = [key for key in _RNG_KEYS if not isinstance(rng, dict) or key not in rng]
        if missing:
            raise _unreadable_state(state_dir, f"{what} holds no {', '.join(missing)}")


@contextlib.contextmanager
def _reading_state(path: Path) -> Iterator[None]:
    """Reading the training state ``path``: a file of it that is damaged or missing (its progress file as well as the
    model's, the optimizer's, ...) becomes one ValueError that names the state and the earlier one to resume."""
    try:
        yield
    except (SafetensorError, EOFError, pickle.UnpicklingError, FileNotFoundError, RuntimeError) as e:
        # torch.load's zip reader, or accelerate counting fewer custom_checkpoint_<i>.pkl files than it has objects
        unreadable = ("PytorchStreamReader", "Number of custom checkpoints in folder")
        if isinstance(e, RuntimeError) and not any(text in str(e) for text in unreadable):
            raise  # not an unreadable or missing file, e.g. weights that do not fit the model
        first_line = (str(e).strip().splitlines() or [""])[0]
        detail = f"{type(e).__name__}: {first_line}" if first_line else type(e).__name__  # an empty file: EOFError
        raise _unreadable_state(path, detail) from None


def _unreadable_state(path: Path, detail: str) -> ValueError:
    """The error for training state ``path`` with a damaged or missing file (``detail``: which, or the reader's
    error), naming the earlier state of its run to resume instead."""
    earlier = [p for p in sorted(path.parent.glob("state-*")) if p.is_dir() and p.name < path.name]
    advice = (
        f"resume the state before it with --resume {earlier[-1]}"
        if earlier
        else "no earlier state of the run is left: start again, or fine-tune from its weights with --pretrained-path"
    )
    return ValueError(f"cannot load the training state {path} ({detail}); a file of it is damaged or missing: {advice}")


def _describe_setting(name: str, value: Any) -> str:
    if name in _DERIVED_SETTINGS:
        return f"{_DERIVED_SETTINGS[name]} {value}"
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"no {flag}"
    if value is None:
        return f"no {flag}"
    if isinstance(value, dict):
        return f"{flag} {' '.join(f'{k}={v}' for k, v in value.items())}" if value else f"no {flag}"
    if isinstance(value, list):
        return f"{flag} {' '.join(map(str, value))}"
    return f"{flag} {value}"


class _CompleteSchedulerState:
    """The checkpointed state of a timm scheduler. timm's plateau schedule saves its best metric and epoch only, not
    the counters of torch's ReduceLROnPlateau inside it (epochs without improvement, cool-down) nor the lr its noise
    displaced: a resumed run cut its lr at other epochs. Those are saved too; a state saved before loads as it was."""

    def __init__(self, scheduler: Any):
        self.scheduler = scheduler

    def state_dict(self) -> dict:
        inner = getattr(self.scheduler, "lr_scheduler", None)
        if not isinstance(self.scheduler, PlateauLRScheduler) or inner is None:
            return self.scheduler.state_dict()
        return {
            "timm": self.scheduler.state_dict(),
            "torch": inner.state_dict(),
            "restore_lr": self.scheduler.restore_lr,
        }

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.scheduler, PlateauLRScheduler) and "torch" in state:
            self.scheduler.load_state_dict(state["timm"])
            self.scheduler.lr_scheduler.load_state_dict(state["torch"])
            self.scheduler.restore_lr = state["restore_lr"]
        else:
            self.scheduler.load_state_dict(state)


@dataclass
class Trainer:
    """Everything a run needs; build it with :meth:`from_args`, run it with :meth:`fit`."""

    args: argparse.Namespace
    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: DataLoader
    val_loader: DataLoader
    train_dataset: TransformDataset
    loss_fn: nn.Module
    mixup_fn: Mixup | None
    model_ema: ModelEmaV3 | None
    data_config: dict
    label_names: list[str]
    num_classes: int
    in_chans: int
    run_dir: Path
    checkpoints: CheckpointManager
    state: TrainState
    updates_per_epoch: int
    frozen_norms: list[nn.Module]
    total_epochs: int  # the scheduler's: --epochs plus a warm-up prefix and cool-down (--epochs stays as given)
    given_args: dict = field(default_factory=dict)  # the options before resolution: what args.yaml records
    num_samples: dict = field(default_factory=dict)  # --train/val-num-samples as used (None: the whole split)
    pretrained_source: dict | None = None  # what --pretrained-path gave besides weights (pretrained_source())
    val_split: str | None = None  # the split the val set was read from (an ImageFolder's folder found: val/, ...)
    resumed_from: Path | None = None  # the state this launch resumed (resume())

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, accelerator: Accelerator | None = None, recorded_source: dict | None = None
    ) -> Trainer:
        """Build datasets, model, optimizer, scheduler and loaders; prepare them with accelerate.

        ``recorded_source``: the ``--pretrained-path`` source as a training state recorded it
        (:func:`recorded_pretrained_source`), for a resume whose source is gone: the model is built from it and
        the source is not read (the state then gives every weight).
        """
        check_args(args)
        # args.yaml records the options as given, not the values resolved below from the data, the channels and
        # the global batch: `-c <run>/args.yaml` with another dataset, channel count or batch resolves them again
        given_args = dict(vars(args))
        # what the --pretrained-path source gives the model besides its weights, read once (it is a state's record
        # where the source is gone)
        source = recorded_source
        if args.pretrained_path and source is None:
            source = pretrained_source(args.pretrained_path, args.model)
        # model and data pipeline take the same channels (the model is never left to pick them from a checkpoint)
        args.in_chans = in_chans = resolve_in_chans(args, source)
        check_augment_mode(args)
        if accelerator is None:
            accelerator = make_accelerator(args)
        run_dir = _run_dir(args)

        if args.threads:
            torch.set_num_threads(args.threads)
        with accelerator.main_process_first():  # one process downloads (--dataset-download), the others then read
            splits = create_datasets(args)
        for note in splits.notes:
            accelerator.print(f"note: {note}")
        # what run.json records: a count past the size of its split read the whole split
        num_samples = {
            "train_num_samples": used_num_samples(splits.train, args.train_num_samples),
            "val_num_samples": used_num_samples(splits.val, args.val_num_samples),
        }
        if len(splits.label_names) < 2:
            # one output: softmax cross-entropy is 0 whatever the model does, so nothing is learnt and all is top-1
            raise ValueError(
                f"The dataset has a single class ({splits.label_names[0]!r}), and a classifier needs at least two "
                "(with one, the loss is 0 and every image is scored right whatever the model learns): give the "
                "ImageFolder one class folder per class under train/ and val/ (or a --class-map naming two or more)"
            )
        num_classes = args.num_classes or len(splits.label_names)
        if len(splits.label_names) != num_classes:
            raise ValueError(
                f"--num-classes {num_classes} but the dataset has {len(splits.label_names)} classes "
                f"({', '.join(splits.label_names[:5])}, ...); leave --num-classes unset to use the dataset's"
            )
        args.num_classes = num_classes

        set_seed(args.seed)  # identical initial weights on every process
        model = create_model_from_args(args, num_classes, args.in_chans, source, read_weights=recorded_source is None)
        if recorded_source is None and (note := checkpoint_choice_note(source)):
            accelerator.print(f"note: {note}")
        if args.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if args.sync_bn:
            model = sync_batchnorm(model, accelerator)
        frozen_norms = freeze_backbone(model) if args.freeze_backbone else []
        data_config = match_channels(resolve_data_config(vars(args), model=model), in_chans)

        # img_mode: timm's torch/ datasets (MNIST's grey, CIFAR's RGB images) ignore --input-img-mode
        mode = args.input_img_mode
        train_dataset = TransformDataset(
            splits.train, create_train_transform(args, data_config), seed=args.seed, img_mode=mode
        )
        val_dataset = TransformDataset(splits.val, create_transform(**data_config, is_training=False), img_mode=mode)
        mixing = bool(args.mixup or args.cutmix or args.cutmix_minmax)  # --cutmix-minmax alone turns cutmix on
        if mixing and args.batch_size % 2:
            raise ValueError(
                f"mixup/cutmix pair samples within a batch: use an even --batch-size, not {args.batch_size}"
            )
        # an epoch shorter than one update of the global batch would make that update of fewer images, at its lr
        if len(train_dataset) < args.batch_size * accelerator.num_processes * args.grad_accum_steps:
            accumulated = f" x {args.grad_accum_steps} accumulation steps" if args.grad_accum_steps > 1 else ""
            raise ValueError(
                f"The training set has {len(train_dataset)} images, fewer than one global batch "
                f"({args.batch_size} x {accelerator.num_processes} processes{accumulated}); lower --batch-size"
                + (" or --grad-accum-steps" if accumulated else "")
            )
        loader_kwargs = dict(num_workers=args.workers, pin_memory=args.pin_mem, persistent_workers=False)
        train_loader = DataLoader(
            train_dataset,
            batch_size=args.batch_size,
            sampler=EpochShuffleSampler(len(train_dataset), seed=args.seed),
            drop_last=True,
            # a private generator: the loader's base-seed draw must not consume the global torch RNG
            generator=torch.Generator().manual_seed(args.seed),
            **loader_kwargs,
        )
        val_loader = DataLoader(
            val_dataset,
            batch_size=args.validation_batch_size or args.batch_size,
            shuffle=False,
            generator=torch.Generator().manual_seed(args.seed),
            **loader_kwargs,
        )

        mixup_fn = None
        if mixing:
            mixup_fn = Mixup(
                mixup_alpha=args.mixup,
                cutmix_alpha=args.cutmix,
                cutmix_minmax=args.cutmix_minmax,
                prob=args.mixup_prob,
                switch_prob=args.mixup_switch_prob,
                mode=args.mixup_mode,
                label_smoothing=args.smoothing,
                num_classes=num_classes,
            )
        loss_fn = build_loss_fns(args, mixup_active=mixup_fn is not None, device=accelerator.device)

        global_batch = args.batch_size * accelerator.num_processes * args.grad_accum_steps
        args.lr = resolve_lr(args, global_batch)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = create_optimizer_from_args(model, args)
        if args.stride_reg and not any(isinstance(m, DiffStride) for m in model.modules()):
            raise ValueError(
                f"--stride-reg {args.stride_reg:g} weighs DiffStride's stride regulariser, and {args.model} has no "
                "DiffStride layer (no learnable strides): leave --stride-reg out, or build the model with "
                "--model-kwargs downsample=diffstride"
            )
        if args.decay_lambda and not any(name.endswith(".lam") for name, _ in model.named_parameters()):
            accelerator.print(
                f"note: {args.model} has no trainable lambda (the _tra models do): --decay-lambda does nothing"
            )

        model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
        updates_per_epoch = math.ceil(len(train_loader) / args.grad_accum_steps)
        # timm's scheduler is not a torch LRScheduler: not prepared, stepped here, checkpointed as a custom object
        scheduler, num_epochs = create_scheduler_v2(
            optimizer, **scheduler_kwargs(args), updates_per_epoch=updates_per_epoch
        )
        model_ema = None
        if args.model_ema:
            # outside prepare, fed the unwrapped model; identical on every process
            model_ema = ModelEmaV3(
                accelerator.unwrap_model(model, keep_torch_compile=False),
                decay=args.model_ema_decay,
                use_warmup=args.model_ema_warmup,
            )
        state = TrainState()
        # in the order of run_layout.STATE_OBJECTS, which names their files in a state
        accelerator.register_for_checkpointing(_CompleteSchedulerState(scheduler))
        accelerator.register_for_checkpointing(state)
        if model_ema is not None:
            accelerator.register_for_checkpointing(model_ema)
        set_seed(process_seed(args.seed, accelerator.process_index))  # dropout / mixup streams differ per process

        trainer = cls(
            args=args,
            accelerator=accelerator,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            train_loader=train_loader,
            val_loader=val_loader,
            train_dataset=train_dataset,
            loss_fn=loss_fn,
            mixup_fn=mixup_fn,
            model_ema=model_ema,
            data_config=data_config,
            label_names=splits.label_names,
            num_classes=num_classes,
            in_chans=in_chans,
            run_dir=run_dir,
            checkpoints=CheckpointManager(run_dir, keep=args.checkpoint_hist),
            state=state,
            updates_per_epoch=updates_per_epoch,
            frozen_norms=frozen_norms,
            total_epochs=num_epochs,
            given_args=given_args,
            num_samples=num_samples,
            pretrained_source=source,
            val_split=splits.val_split,
        )
        state.settings = trainer.settings()
        return trainer

    # ---------------------------------------------------------------------------------------------------------- run

    @property
    def unwrapped_model(self) -> nn.Module:
        """The plain model: without DDP and without torch.compile's wrapper, whose state dict names every key
        '_orig_mod.' (weights saved from it would load nowhere else)."""
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def log(self, message: str) -> None:
        self.accelerator.print(message)

    def settings(self) -> dict:
        """What a training state can only be resumed with (RESUME_SETTINGS and what follows from them), as JSON."""
        out = {name: _jsonable(getattr(self.args, name)) for name in RESUME_SETTINGS}
        for name in _PATH_SETTINGS:  # absolute: a resume from another directory names the same file
            out[name] = _absolute(out[name], keep_missing=name != "pretrained_path") if out[name] else out[name]
        if out.get("decay_epochs") is None:  # timm's default for the schedule, as states saved it when it was ours
            out["decay_epochs"] = 0.2 if self.args.sched in ("wsd", "rsqrt") else 90
        out.update(
            in_chans=self.in_chans,
            num_processes=self.accelerator.num_processes,
            updates_per_epoch=self.updates_per_epoch,
            train_samples=len(self.train_dataset),
            threads=torch.get_num_threads(),
            # the option or accelerate's own setting (launch flags, env): what run.json records for the whole run
            mixed_precision=str(self.accelerator.mixed_precision),
            pretrained_source=self.pretrained_source,  # not checked on a resume (_RECORDED_SETTINGS)
        )
        return out

    def check_resume_settings(self, path: Path) -> None:
        """Refuse to resume a state with settings it cannot honour (the restored optimizer, schedule, EMA and data
        order follow the state's, and run.json would report the new ones)."""
        (saved, complete), current = _saved_settings(path), self.settings()
        if not complete:
            self.log(
                f"warning: {path} was saved without its settings (an older version); only the number of processes "
                "is checked: resume it with the settings it was trained with"
            )
        # a path a state saved relative (older versions) is the same file where it resolves to the same absolute one
        same = {
            name: saved[name] and _absolute(saved[name]) == current[name] for name in _PATH_SETTINGS if name in saved
        }
        changed = [
            name
            for name in current
            if name in saved and name not in _RECORDED_SETTINGS and saved[name] != current[name] and not same.get(name)
        ]
        for name in [n for n in changed if n in _NOTED_SETTINGS]:
            changed.remove(name)
            self.log(
                f"note: resuming {path} with {_describe_setting(name, current[name])} (the state: "
                f"{_describe_setting(name, saved[name])}): {_NOTED_SETTINGS[name].format(saved=saved[name])}"
            )
        if not changed:
            return
        diffs = "; ".join(
            f"{_describe_setting(n, current[n])} (the state: {_describe_setting(n, saved[n])})" for n in changed
        )
        args_yaml = path.parent.parent / "args.yaml"
        # args.yaml names the run of the state (its --output and --experiment): a resume into another run directory
        # keeps the one asked for (a finished run refused the suggested command, an interrupted one went on in it)
        source, target = path.parent.parent.resolve(), self.run_dir.resolve()
        elsewhere = "" if target.parent == source.parent else f" --output {target.parent}"
        elsewhere += "" if target.name == source.name else f" --experiment {self.run_dir.name}"
        again = f" (`-c {args_yaml}{elsewhere} --resume {path}` repeats them)" if args_yaml.is_file() else ""
        # what args.yaml does not repeat: the suggested command alone was refused again
        launch = [_LAUNCH_SETTINGS[n].format(saved=saved[n]) for n in changed if n in _LAUNCH_SETTINGS]
        again += f" and {' and '.join(launch)}" if launch else ""
        raise ValueError(
            f"Cannot resume {path} with changed settings, which the restored state would not honour: {diffs}. "
            f"Resume with the settings it was saved with{again}, or start a new run from its weights with "
            f"--pretrained-path {path / 'model.safetensors'} (and another --experiment)"
        )

    def resume(self, path: str | Path) -> None:
        """Load an accelerate state (model, optimizer, scheduler, EMA, progress, RNG states of every process)."""
        path = self.resumed_from = Path(path)
        check_rng_states(path)  # first: accelerate would skip a damaged one without a word
        self.check_resume_settings(path)
        with _reading_state(path):
            self.accelerator.load_state(str(path))
        # the settings this run trains with from here on, for the states it saves: the loaded ones are the state's
        # (a --clip-grad or --threads given on the resume was recorded as the state's)
        self.state.settings = self.settings()
        self.check_not_rewinding_finished(path)
        self.restore_best(path)
        self.point_latest_at(path)
        self.log(
            f"Resumed from {path}: epoch {self.state.epoch + 1}, batch {self.state.step_in_epoch}, "
            f"{self.state.num_updates} updates done"
        )

    def last_finite_state(self) -> Path | None:
        """The run's latest state with finite weights, else the one it continues of another run where finite (a run
        continuing another run's state that diverged before its own first save said there was nothing to resume)."""
        found = self.checkpoints.latest_finite()
        if found is None and self.resumed_from is not None and _has_finite_weights(self.resumed_from):
            return self.resumed_from
        return found

    def point_latest_at(self, path: Path) -> None:
        """Point this run's ``latest`` at the state it continues from: after resuming an earlier state of its own
        (the last finite one after a NaN, say), ``latest`` still named the abandoned later state, which a stop before
        the next save then named to continue from, and which ``--resume auto`` continued."""
        if self.accelerator.is_main_process and path.resolve().parent == self.checkpoints.dir.resolve():
            latest = self.checkpoints.latest()  # a pointer naming it already is left as it is (nothing written)
            if latest is None or latest.resolve() != path.resolve():
                _atomic_write_text(self.checkpoints.dir / CheckpointManager.POINTER, path.name + "\n")
        self.accelerator.wait_for_everyone()

    def check_not_rewinding_finished(self, path: Path) -> None:
        """Refuse to continue an earlier state of a finished run in its own directory: training its last epochs
        again would replace the final weights and records it finished with (a nondeterministic run, e.g. on a GPU,
        would not even give them back). A run that stopped may go back to an earlier state (after a loss that
        became NaN, say): it has no final weights to lose.

        Raises:
            FileExistsError: which run, what it holds and how to branch from the state instead.
        """
        info, state = self._finished_run(), self.state
        completed = info["epochs"].get("completed") if info else None
        if not isinstance(completed, int) or (state.epoch, state.step_in_epoch) >= (completed, 0):
            return
        raise FileExistsError(
            f"--resume {path} is a state at epoch {state.epoch + 1}, batch {state.step_in_epoch} of {self.run_dir}, "
            f"which finished its {completed} epochs with final weights {info['weights']['final']}; continuing the "
            "state there would train its last epochs again and replace them. To train from that state again, pass a "
            "new --experiment (the state is continued in a directory of its own, and this run stays as it is)"
        )

    def save_state(self) -> Path:
        """Save the training state atomically and point ``latest`` at it; the state keeps the run's best weights so
        far, which a resume restores (see :meth:`restore_best`)."""
        return self.checkpoints.save(
            self.accelerator,
            CheckpointManager.state_name(self.state.epoch, self.state.step_in_epoch),
            attach=[self.run_dir / BEST_FILE],
        )

    def restore_best(self, path: Path) -> None:
        """Make ``best.safetensors`` the best weights of the resumed state ``path``: the run directory may hold none
        (a state resumed in a new directory) or those of a later epoch (an earlier state resumed), which run.json
        would name as the best of the epoch the state recorded. A state of an older version holds no copy: its
        best epoch is kept when run.json shows that the run's file is that epoch's, and forgotten otherwise (the
        next evaluated epoch becomes the best)."""
        state, target = self.state, self.run_dir / BEST_FILE
        if state.best_epoch is None:
            kept = None
        elif (path / BEST_FILE).is_file():
            kept = path / BEST_FILE
        elif target.is_file() and _run_json_best_epoch(self.run_dir) == state.best_epoch:
            return
        else:
            self.log(
                f"note: {path} holds no copy of the best weights (epoch {state.best_epoch}) and {target} does not "
                "hold them: the best is tracked again from the next epoch"
            )
            state.best_metric = state.best_epoch = state.best_source = None
            kept = None
        if self.accelerator.is_main_process:
            if kept is None:
                target.unlink(missing_ok=True)
            else:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                with _atomic_target(target) as tmp:
                    shutil.copy2(kept, tmp)
        self.accelerator.wait_for_everyone()

    def sync_ema_buffers(self) -> None:
        """Give every process rank 0's EMA buffers (a collective call).

        The parameters are the same everywhere (DDP), but each process's BatchNorm statistics come from its own
        shard, so each EMA copy would average different buffers: the evaluated EMA (each process on its shard) would
        not be the saved one (rank 0's). Rank 0's is also what a resumed run loads on every process, so syncing
        after every update keeps a resumed run bit-identical to an uninterrupted one.
        """
        if self.accelerator.num_processes == 1:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for buffer in self.model_ema.module.buffers():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
        for buffers in by_dtype.values():  # one broadcast per dtype, not one per buffer
            flat = broadcast(torch.cat([b.reshape(-1) for b in buffers]), from_process=0)
            offset = 0
            for b in buffers:
                b.copy_(flat[offset : offset + b.numel()].view_as(b))
                offset += b.numel()

    def current_lr(self) -> float:
        return max(group["lr"] for group in self.optimizer.param_groups)

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (from ``state.step_in_epoch`` when resuming mid-epoch); returns loss and throughput."""
        args, acc, state = self.args, self.accelerator, self.state
        self.model.train()
        for m in self.frozen_norms:
            m.eval()
        if self.mixup_fn is not None:
            self.mixup_fn.mixup_enabled = not (args.mixup_off_epoch and epoch >= args.mixup_off_epoch)
        if state.epoch != epoch or state.step_in_epoch == 0:
            state.epoch, state.step_in_epoch = epoch, 0
            state.epoch_loss_sum, state.epoch_samples, state.epoch_train_time = 0.0, 0, 0.0
        skip = state.step_in_epoch
        self.train_dataset.set_epoch(epoch)
        self.train_loader.set_epoch(epoch)
        loader = acc.skip_first_batches(self.train_loader, skip) if skip else self.train_loader
        num_batches = len(self.train_loader)
        # accelerate divides each loss by --grad-accum-steps; the epoch's last group may hold fewer batches, whose
        # losses are then divided by their own number, as timm's train.py does (its update had their share only)
        tail = num_batches % args.grad_accum_steps
        tic = time.perf_counter()
        for batch_idx, (x, y) in enumerate(
            _progress(loader, acc, f"epoch {epoch + 1}", total=num_batches, initial=skip), start=skip
        ):
            if self.mixup_fn is not None:
                x, y = self.mixup_fn(x, y)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with acc.accumulate(self.model):
                loss = self.loss_fn(self.model(x), y)
                if args.stride_reg:  # after the forward, which clips the strides: J of the strides it used
                    loss = loss + args.stride_reg * stride_regularizer(self.unwrapped_model)
                losses = acc.gather(loss.detach().float().reshape(1))
                if not torch.isfinite(losses).all():
                    bad = losses[~torch.isfinite(losses)][0].item()
                    raise NonFiniteLossError(
                        bad,
                        epoch,
                        self.total_epochs,
                        batch_idx,
                        num_batches,
                        state.num_updates,
                        self.last_finite_state(),
                    )
                acc.backward(
                    loss * (args.grad_accum_steps / tail) if tail and batch_idx >= num_batches - tail else loss
                )
                if acc.sync_gradients and args.clip_grad:
                    if args.clip_mode == "value":
                        acc.clip_grad_value_(self.model.parameters(), args.clip_grad)
                    else:
                        acc.clip_grad_norm_(self.model.parameters(), args.clip_grad)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)

            n = x.shape[0] * acc.num_processes
            state.epoch_loss_sum += losses.mean().item() * n
            state.epoch_samples += n
            state.step_in_epoch = batch_idx + 1
            if acc.sync_gradients:
                state.num_updates += 1
                if self.model_ema is not None:
                    self.model_ema.update(self.unwrapped_model, step=state.num_updates)
                    self.sync_ema_buffers()
                self.scheduler.step_update(
                    num_updates=state.num_updates, metric=state.epoch_loss_sum / state.epoch_samples
                )
                every = args.save_state_every_n_steps
                if every and state.num_updates % every == 0 and state.step_in_epoch < num_batches:
                    state.epoch_train_time += time.perf_counter() - tic
                    tic = time.perf_counter()
                    self.save_state()
            if args.log_interval and (batch_idx % args.log_interval == 0 or batch_idx + 1 == num_batches):
                self.log(
                    f"Train: {epoch + 1}/{self.total_epochs} [{batch_idx + 1:>4d}/{num_batches}] "
                    f"loss {losses.mean().item():.4f} ({state.epoch_loss_sum / state.epoch_samples:.4f}) "
                    f"lr {self.current_lr():.3e}"
                )
        state.epoch_train_time += time.perf_counter() - tic
        return {
            "train_loss": state.epoch_loss_sum / max(state.epoch_samples, 1),
            "train_time": state.epoch_train_time,
            "images_per_s": state.epoch_samples / max(state.epoch_train_time, 1e-9),
        }

    def evaluate(self, model: nn.Module | None = None, desc: str = "val") -> dict[str, float]:
        # not `model or self.model`: bool() of a compiled module calls len() on the model
        model = self.model if model is None else model
        return evaluate(model, self.val_loader, self.accelerator, self.args.channels_last, desc)

    def scheme_state(self) -> dict[str, float]:
        """The model's scheme parameters (ZeroSNet lambda, LM-ResNet k, tau, strides) when it reports them."""
        fn = getattr(self.unwrapped_model, "scheme_state", None)
        if not callable(fn):
            return {}
        return {f"scheme/{k}": float(v) for k, v in fn().items()}

    def _better(self, value: float) -> bool:
        if self.state.best_metric is None:
            return True
        if self.args.eval_metric == "loss":
            return value < self.state.best_metric
        return value > self.state.best_metric

    def fit(self) -> dict:
        """Train for the remaining epochs, evaluating, checkpointing and writing the run directory."""
        args, acc, state = self.args, self.accelerator, self.state
        finished = self._finished_record()
        if finished is not None:
            final = self.run_dir / (finished["weights"].get("final") or "model.safetensors")
            self.log(
                f"Nothing to train: {self.run_dir} already finished its {self.total_epochs} epochs, and its records "
                f"stay as they are. To train further, start a new run from its weights: --pretrained-path {final}"
            )
            return finished
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # --output absolute: `-c <run>/args.yaml --resume auto` from another directory finds this run again
            output = str(Path(args.output).expanduser().absolute())
            # --resume is what this launch did, not a setting of the run: `-c <run>/args.yaml` of a resumed run
            # starts like one of the run that was never interrupted (with --resume given again where it should resume)
            recorded = dict(self.given_args or vars(args), experiment=args.experiment, output=output, resume=None)
            for name in ("data_dir", *_PATH_SETTINGS):  # and the data and weights it reads, from anywhere
                if recorded.get(name):
                    recorded[name] = _absolute(recorded[name], keep_missing=name != "pretrained_path")
            _atomic_write_text(self.run_dir / "args.yaml", yaml.safe_dump(_jsonable(recorded), sort_keys=False))
        # No scheduler step before the first update: timm's schedulers apply their first value (warm-up lr, per-group
        # lr_scale) when they are built, and a resumed run restores the optimizer's lrs. A step(0) here would set the
        # plateau schedule's lr to --warmup-lr for good (it treats epoch 0 as warm-up even with no warm-up epochs).
        if args.log_with:
            acc.init_trackers(args.experiment, config=_tracker_config(args))
        self.log(
            f"Training {args.model} on {dataset_name(args) or args.data_dir} ({self.num_classes} classes) for "
            f"{self.total_epochs} epochs: {acc.num_processes} process(es) on {acc.device}, "
            f"mixed precision {acc.mixed_precision}, global batch "
            f"{args.batch_size * acc.num_processes * args.grad_accum_steps}, lr {args.lr:g}; run dir {self.run_dir}"
        )
        try:
            for epoch in range(state.epoch, self.total_epochs):
                train_metrics = self.train_one_epoch(epoch)
                lr = self.current_lr()
                eval_tic = time.perf_counter()
                try:
                    val = self.evaluate()
                    ema = None if self.model_ema is None else self.evaluate(self.model_ema.module, desc="val ema")
                except Exception:
                    self._save_trained_pass()
                    raise
                row = {
                    "epoch": epoch + 1,
                    "train_loss": train_metrics["train_loss"],
                    "val_loss": val["loss"],
                    "top1": val["top1"],
                    "top5": val["top5"],
                    "val_samples": val["count"],
                    "val_correct1": val["correct1"],
                    "val_correct5": val["correct5"],
                }
                candidates = {"model": val}
                if ema is not None:
                    row.update(ema_val_loss=ema["loss"], ema_top1=ema["top1"], ema_top5=ema["top5"])
                    candidates["ema"] = ema
                row.update(
                    lr=lr,
                    epoch_time=train_metrics["train_time"] + time.perf_counter() - eval_tic,
                    images_per_s=train_metrics["images_per_s"],
                    **self.scheme_state(),
                )
                # a NaN loss (batch-norm statistics gone infinite) is never the best: a first one stayed the best for
                # good (nothing compares below NaN), and one of the model hid the EMA's finite loss
                metric = {k: v[args.eval_metric] for k, v in candidates.items() if math.isfinite(v[args.eval_metric])}
                pick = min if args.eval_metric == "loss" else max
                source = pick(metric, key=metric.get) if metric else None
                improved = source is not None and self._better(metric[source])
                if improved:
                    state.best_metric, state.best_epoch, state.best_source = metric[source], epoch + 1, source
                state.history.append(row)
                self.scheduler.step(epoch + 1, metric=val[args.eval_metric])
                state.epoch, state.step_in_epoch = epoch + 1, 0
                state.epoch_loss_sum, state.epoch_samples, state.epoch_train_time = 0.0, 0, 0.0
                if acc.is_main_process:
                    if improved:
                        best_model = self.model_ema.module if source == "ema" else self.unwrapped_model
                        _atomic_save_safetensors(best_model.state_dict(), self.run_dir / BEST_FILE)
                    self.write_metrics()
                    self.write_run_json(status="running")
                if (epoch + 1) % max(args.checkpoint_every, 1) == 0 or epoch + 1 == self.total_epochs:
                    self.save_state()
                if args.log_with:
                    acc.log({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
                self.log(
                    f"Epoch {epoch + 1}/{self.total_epochs}: train loss {row['train_loss']:.4f}, val loss "
                    f"{row['val_loss']:.4f}, top1 {row['top1']:.2f}% ({val['correct1']}/{val['count']}), top5 "
                    f"{row['top5']:.2f}%, lr {lr:.3e}, {row['images_per_s']:.0f} img/s"
                    + (f", EMA top1 {row['ema_top1']:.2f}%" if "ema_top1" in row else "")
                )
            summary = self.finish()  # a stop while the final files are written is recorded like one in an epoch
        except BaseException as e:
            # run.json must not say "running" for a run that stopped: failed (an error) or interrupted (Ctrl-C,
            # SIGTERM), with where it stood; the error itself goes on up
            interrupted = isinstance(e, KeyboardInterrupt)
            note = str(e) if isinstance(e, NonFiniteLossError) else self._stopped_note(e, interrupted)
            if acc.is_main_process:
                with contextlib.suppress(Exception):  # e.g. a full disk: the error being raised is the one to report
                    self.write_run_json(status="interrupted" if interrupted else "failed", error=note)
            if args.log_with:
                acc.end_training()
            if interrupted:
                raise TrainingInterrupted(note, getattr(e, "signum", signal.SIGINT)) from None
            raise
        if args.log_with:
            acc.end_training()
        return summary

    def _finished_record(self) -> dict | None:
        """run.json of this run directory where it records this (resumed) state's end as a finished run with its
        final weights: then nothing is left to train, and nothing to write."""
        state = self.state
        if state.epoch < self.total_epochs or state.step_in_epoch:
            return None
        info = self._finished_run()
        return info if info and info["epochs"].get("completed") == state.epoch else None

    def _finished_run(self) -> dict | None:
        """run.json of this run directory where it records a finished run whose final weights are there."""
        info = read_run_info(self.run_dir)
        if not info or info.get("status") != "finished" or not isinstance(info.get("epochs"), dict):
            return None
        final = (info.get("weights") or {}).get("final")
        return info if final and (self.run_dir / final).is_file() else None

    def _save_trained_pass(self) -> None:
        """Save the state of an epoch whose training pass is done and whose evaluation failed (an unreadable val
        image is found only there), so that a resume evaluates it again instead of training it again. One process
        only: the others would be waiting in the evaluation's gather, not in the save's."""
        if self.accelerator.num_processes == 1 and self.state.step_in_epoch == len(self.train_loader):
            with contextlib.suppress(Exception):  # e.g. a full disk: the evaluation's error is the one to report
                self.save_state()

    def _stopped_note(self, e: BaseException, interrupted: bool) -> str:
        """Where a run stood when ``e`` stopped it, and how to go on."""
        state = self.state
        what = (str(e) or "interrupted") if interrupted else f"{type(e).__name__}: {e}"
        latest = self.checkpoints.latest()
        resume = (
            f"the latest complete state is {latest}: the same command with --experiment {self.args.experiment} "
            f"--resume auto (or `zerosnet-train -c {self.run_dir.absolute() / 'args.yaml'} --resume auto`) "
            "continues from it"
            if latest is not None
            else f"no training state of this run was saved yet: the same command (--resume {self.resumed_from}) "
            "starts it again from that state"
            if self.resumed_from is not None
            else "no training state was saved yet (nothing to resume: --resume auto starts it again)"
        )
        if state.epoch >= self.total_epochs:
            return f"{what} while the final weights and records were written, after all {state.epoch} epochs; {resume}"
        return (
            f"{what} in epoch {state.epoch + 1}/{self.total_epochs} after {state.step_in_epoch} of its "
            f"{len(self.train_loader)} batches; {resume}"
        )

    # ------------------------------------------------------------------------------------------------------ outputs

    def finish(self) -> dict:
        """Write the final weights, run.json and the curves; returns the run summary (run.json's content)."""
        acc = self.accelerator
        acc.wait_for_everyone()
        summary = self.run_summary(status="finished")
        if acc.is_main_process:
            _atomic_save_safetensors(self.unwrapped_model.state_dict(), self.run_dir / "model.safetensors")
            if self.model_ema is not None:
                _atomic_save_safetensors(self.model_ema.module.state_dict(), self.run_dir / "model_ema.safetensors")
            self.write_metrics()
            plot_curves(self.state.history, self.run_dir / "curves.png")
            self.write_run_json(status="finished")  # last: a run stopped before it finishes on --resume
            final = summary["metrics"].get("final") or {}
            self.log(
                f"Done: top1 {final.get('top1', float('nan')):.2f}% after {len(self.state.history)} epochs; "
                f"run directory {self.run_dir}"
            )
        acc.wait_for_everyone()
        return summary

    def write_metrics(self) -> None:
        history = self.state.history
        _atomic_write_text(self.run_dir / "metrics.json", json.dumps(history, indent=1))
        columns: list[str] = []
        for row in history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        _atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())

    def run_summary(self, status: str, error: str | None = None) -> dict:
        args, state = self.args, self.state
        best_row = next((r for r in state.history if r["epoch"] == state.best_epoch), None)
        weights = {
            "final": "model.safetensors" if status == "finished" else None,
            "ema": "model_ema.safetensors" if (self.model_ema is not None and status == "finished") else None,
            "best": BEST_FILE if best_row is not None else None,
        }
        pretrained_cfg = getattr(self.unwrapped_model, "pretrained_cfg", None) or {}
        pretrained_path = _absolute(args.pretrained_path, keep_missing=False) if args.pretrained_path else None
        return {
            "format": RUN_FORMAT,
            "status": status,
            "error": error,
            "model": args.model,
            "model_kwargs": _jsonable(self.built_model_kwargs),
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "global_pool": args.gp,
            "label_names": list(self.label_names),
            "data_config": data_config_for_run(self.data_config),
            "dataset": {
                "name": dataset_name(args),
                "data_dir": _absolute(args.data_dir) if args.data_dir else None,
                "train_split": args.train_split,
                # the split read (val/ for the default 'validation' where there is no validation/), as the results of
                # zerosnet-validate record it, and which it reads again
                "val_split": self.val_split or args.val_split,
                "class_map": _absolute(args.class_map) if args.class_map else None,
                "input_img_mode": args.input_img_mode,
                "input_key": args.input_key,
                "target_key": args.target_key,
                "train_num_samples": self.num_samples.get("train_num_samples", args.train_num_samples),
                "val_num_samples": self.num_samples.get("val_num_samples", args.val_num_samples),
                "num_train": len(self.train_dataset),
                "num_val": self.state.history[-1]["val_samples"] if self.state.history else None,
            },
            "weights": weights,
            "eval_metric": args.eval_metric,
            "metrics": {
                "final": state.history[-1] if state.history else None,
                "best": dict(best_row, source=state.best_source) if best_row else None,
            },
            "epochs": {"completed": state.epoch, "planned": self.total_epochs},
            "training": {
                "recipe": args.config,
                "num_processes": self.accelerator.num_processes,
                "mixed_precision": str(self.accelerator.mixed_precision),
                "global_batch_size": args.batch_size * self.accelerator.num_processes * args.grad_accum_steps,
                "batch_size": args.batch_size,
                "grad_accum_steps": args.grad_accum_steps,
                "opt": args.opt,
                "lr": args.lr,
                "weight_decay": args.weight_decay,
                "sched": args.sched,
                "seed": args.seed,
                "model_ema": bool(args.model_ema),
                "num_updates": state.num_updates,
                "pretrained": bool(args.pretrained),
                "pretrained_path": pretrained_path,
                "pretrained_strict": bool((args.model_kwargs or {}).get("pretrained_strict", True)),
                "freeze_backbone": bool(args.freeze_backbone),
            },
            "pretrained_cfg": _jsonable(dict(pretrained_cfg)),
            "versions": _versions(),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    @functools.cached_property
    def built_model_kwargs(self) -> dict[str, Any]:
        """run.json's ``model_kwargs`` (:func:`built_model_kwargs`), read once: for an ``hf-hub:`` model, reading its
        config.json asks the Hub whether it changed, and run.json is written every epoch."""
        return built_model_kwargs(self.args.model_kwargs, published_config(self.unwrapped_model))

    def write_run_json(self, status: str, error: str | None = None) -> None:
        text = json.dumps(self.run_summary(status, error), indent=2)
        _atomic_write_text(self.run_dir / "run.json", text)


def _run_json_best_epoch(run_dir: Path) -> int | None:
    """The epoch of the best weights that run.json in ``run_dir`` reports, or None (none, or no readable run.json)."""
    try:
        metrics = (read_run_info(run_dir) or {}).get("metrics")
    except (OSError, ValueError):
        return None
    best = metrics.get("best") if isinstance(metrics, dict) else None
    return best.get("epoch") if isinstance(best, dict) else None


def _absolute(path: str, keep_missing: bool = True) -> str:
    """A path as run.json records it: absolute, so that the run is read the same from any directory. A class map
    that is not a file here is left as given (``keep_missing``): timm also looks for it under the data dir. A
    ``--pretrained-path`` source is not (``keep_missing=False``): a resume without it names the same path."""
    resolved = Path(path).expanduser().absolute()
    return str(resolved) if resolved.exists() or not keep_missing else path


def _versions() -> dict[str, str]:
    import accelerate

    from . import __version__

    return {
        "timm_zerosnet": __version__,
        "timm": timm.__version__,
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
    }


def _tracker_config(args: argparse.Namespace) -> dict:
    """Hyper-parameters as scalars (TensorBoard's hparams accept no lists or None)."""
    out = {}
    for key, value in vars(args).items():
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif value is not None:
            out[key] = json.dumps(_jsonable(value))
    return out


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss, accuracy, learning rate and scheme parameters per epoch, as a PNG (Agg, no pyplot state)."""
    if not history:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    scheme_keys = [k for k in history[-1] if k.startswith("scheme/")]
    panels = 4 if scheme_keys else 3
    fig = Figure(figsize=(4.2 * panels, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in history], label="val")
    axes[0].set(title="loss", xlabel="epoch", yscale="log")
    axes[1].plot(epochs, [r["top1"] for r in history], label="top-1")
    axes[1].plot(epochs, [r["top5"] for r in history], label="top-5")
    if "ema_top1" in history[-1]:
        axes[1].plot(epochs, [r.get("ema_top1") for r in history], label="EMA top-1")
    axes[1].set(title="validation accuracy (%)", xlabel="epoch")
    axes[2].plot(epochs, [r["lr"] for r in history])
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log" if min(r["lr"] for r in history) > 0 else "linear")
    if scheme_keys:
        for key in scheme_keys[:24]:
            axes[3].plot(epochs, [r.get(key) for r in history], label=key[len("scheme/") :])
        axes[3].set(title="scheme parameters", xlabel="epoch")
        if len(scheme_keys) <= 8:
            axes[3].legend(fontsize="x-small")
    for ax in axes[:2]:
        ax.legend(fontsize="small")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    with _atomic_target(path, ".tmp.png") as tmp:
        fig.savefig(tmp, dpi=110)


# --------------------------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> dict:
    """Run (or resume) a training run described by parsed arguments; returns the run summary."""
    check_args(args)
    if args.resume in ("auto", "latest") and not args.experiment:
        raise ValueError(
            f"--resume {args.resume} continues the run named by --experiment, and without one every run gets a new "
            f"dated folder under --output {args.output}, with nothing in it to continue: pass --experiment NAME (the "
            "run's folder name), or --resume with the run directory or a state of it"
        )
    accelerator = make_accelerator(args)  # first: it settles the run's name
    run_dir = _run_dir(args)
    checkpoints = CheckpointManager(run_dir)
    resume_from = checkpoints.resolve(args.resume)
    notes = [check_run_dir(run_dir, resume_from, args.resume)]
    if resume_from is not None and args.resume in ("auto", "latest"):
        notes.append(checkpoints.pointer_note())
    notes += unused_option_notes(args)
    recorded = None
    if resume_from is not None and args.pretrained_path and _source_missing(args.pretrained_path):
        found = recorded_pretrained_source(resume_from, args.pretrained_path)
        if found is not None:
            recorded, where = found
            notes.append(
                f"--pretrained-path {args.pretrained_path} was not found (moved or deleted): the model is built "
                f"from what {where} recorded of it (its pretrained cfg and family options), without reading it; "
                "the state gives every weight"
            )
    if resume_from is not None and args.pretrained_path and args.gp is None and _trained_with_own_pool(resume_from):
        # the model it trained, with its own global pool, not the source run's (the state gives every weight)
        recorded = dict(recorded or pretrained_source(args.pretrained_path, args.model), global_pool=None)
    trainer = Trainer.from_args(args, accelerator, recorded)
    for note in filter(None, notes):
        trainer.log(f"note: {note}")
    if resume_from is not None:
        trainer.resume(resume_from)
    return trainer.fit()


def _runs_on_cpu(args: argparse.Namespace) -> bool:
    accelerators = (torch.cuda.is_available(), torch.backends.mps.is_available())
    return args.cpu or not any(accelerators)


USAGE_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ReleaseError, DatasetUnavailableError)
"""What the entry points report as bad input (what was wrong and what to do) instead of a traceback: values and
files, a run directory that is taken, released weights that cannot be loaded, a dataset that is not there."""


def usage_error(prog: str, e: BaseException) -> int:
    """Print ``prog: error: ...`` once (the main process of a launch) and return ``EXIT_USAGE``."""
    if os.environ.get("RANK", "0") == "0":
        print(f"{prog}: error: {_worker_message(e)}", file=sys.stderr)
    return EXIT_USAGE


def _worker_message(e: BaseException) -> str:
    """The message of an error raised in a DataLoader worker (a bad image, say), without the "Caught ValueError in
    DataLoader worker process 0." and the worker's traceback that torch wraps it in."""
    text = str(e)
    wrapped = re.match(r"Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback", text)
    if wrapped:
        _, sep, message = text.rpartition(f"\n{wrapped.group(1)}: ")
        if sep:
            return message.strip()
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """``zerosnet-train``: returns 0, EXIT_NON_FINITE when the loss became NaN/inf, EXIT_USAGE for bad input, or
    128 + the signal's number when Ctrl-C (130), SIGTERM (143) or SIGHUP (129) stopped it.

    The entry point owns its process, so on CPU it keeps freed memory in the heap (``cpu_heap.keep_heap``);
    ``train()`` and ``Trainer`` leave the allocator of their caller alone."""
    try:
        args = parse_args(argv)
    except USAGE_ERRORS as e:  # a recipe that is missing or holds a bad value
        return usage_error("zerosnet-train", e)
    if args.keep_heap and _runs_on_cpu(args):
        note = keep_heap()
        # RANK (set by accelerate launch / torchrun), not PartialState: the Accelerator must be the first to build it
        if os.environ.get("RANK", "0") == "0":
            print(note, flush=True)
    try:
        # SIGTERM and SIGHUP stop the run like Ctrl-C (run.json records it); the handlers are the entry point's,
        # restored on return. Under `nohup`, SIGHUP stays ignored (torchrun's agent, behind a launch of several
        # processes, hands its workers SIGHUP by its own handler: README).
        with stopping_like_ctrl_c(_raise_on_stop_signal):
            train(args)
    except NonFiniteLossError as e:
        if PartialState().is_main_process:
            print(f"zerosnet-train: error: {e}", file=sys.stderr)  # the prefix of every other error it reports
        return EXIT_NON_FINITE
    except USAGE_ERRORS as e:
        return usage_error("zerosnet-train", e)
    except KeyboardInterrupt as e:
        if os.environ.get("RANK", "0") == "0":
            # a closed terminal (SIGHUP) takes stderr with it: the status, not an OSError traceback, says what stopped
            with contextlib.suppress(OSError):
                print(f"zerosnet-train: {str(e) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)  # the shell's status for a process stopped by the signal
    return 0


if __name__ == "__main__":
    sys.exit(main())
