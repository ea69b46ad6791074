"""Shared helpers: the registered names of each family and tiny versions of them for the expensive checks."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import timm
import torch
from PIL import Image
from torch.utils.data import Dataset

import timm_zerosnet  # noqa: F401  (registers the models)
from timm_zerosnet.models.multistep import MultistepResNet
from timm_zerosnet.models.tauresnet import TauResNet

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
torch.set_num_threads(1)  # two cores, two xdist workers


def reset_accelerate() -> None:
    """Forget the Accelerator singletons, so that the next training / evaluation run builds its own."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture
def fresh_accelerate_state():
    """Each test starts from fresh Accelerator state and gets back the thread count it started with (runs use
    --threads 1: fast on a busy two-core machine)."""
    threads = torch.get_num_threads()
    yield
    reset_accelerate()
    torch.set_num_threads(threads)


FAMILY_MODULES = ("zerosnet", "lmresnet", "preresnet", "tauresnet")


def family_models() -> list[str]:
    names = []
    for module in FAMILY_MODULES:
        names += timm.list_models(module=module)
    return sorted(names)


# One registered name per distinct (scheme, skeleton, block) combination: the expensive checks (script, compile,
# export, ONNX, pretrained adaptation) run on these.
REPRESENTATIVES = [
    "zerosnet20_cifar",
    "zerosnet164_cifar",
    "zerosnet18",
    "zerosnet50",
    "zerosnet20_tra_cifar",
    "zerosnet164_tra_cifar",
    "zerosnet18_tra",
    "zerosnet50_tra",
    "lmresnet20_cifar",
    "lmresnet164_cifar",
    "lmresnet18",
    "lmresnet50",
    "preresnet20_cifar",
    "preresnet164_cifar",
    "preresnet18",
    "preresnet50",
    "tauresnet20_cifar",
    "tauresnet20_nobn_cifar",
    "tauresnet50",
    "tauresnet50_nobn",
]


_MODEL_ARGS = ("num_classes", "in_chans", "global_pool", "drop_rate", "drop_path_rate", "output_stride")


@functools.cache
def _reference(name: str, family_args: tuple = ()) -> MultistepResNet | TauResNet:
    """The registered model on the meta device, built once (tauresnet1202_cifar takes two seconds): tiny models
    read only its frozen configuration (net, scheme, tau) and a copy of its pretrained_cfg."""
    return timm.create_model(name, device="meta", **dict(family_args))


def _tiny_layers(net) -> tuple[int, ...]:
    return (3, 2, 1) if len(net.layers) == 3 else (2, 2, 1, 1)


def tiny_model(name: str, **kwargs) -> MultistepResNet | TauResNet:
    """The registered model with fewer blocks: same class, scheme (or tau) and skeleton, every block role still
    present (start-up steps, multistep steps inside a stage, transitions). Family options (lam, tau, ...) are passed
    to the registered entrypoint, the rest to the model class."""
    family_args = {k: v for k, v in kwargs.items() if k not in _MODEL_ARGS}
    model_args = {k: v for k, v in kwargs.items() if k in _MODEL_ARGS}
    try:
        ref = _reference(name, tuple(sorted(family_args.items())))
    except TypeError:  # an unhashable option value (a list): built afresh
        ref = timm.create_model(name, device="meta", **family_args)
    layers = _tiny_layers(ref.net)
    model_args.setdefault("num_classes", 7)
    net = dataclasses.replace(ref.net, layers=layers)
    if isinstance(ref, TauResNet):
        model = TauResNet(net, tau=ref.tau_init, **model_args)
    else:
        model = MultistepResNet(net, ref.scheme, **model_args)
    model.pretrained_cfg = dict(ref.pretrained_cfg)
    return model


def distinct_tiny(names: list[str]) -> list[str]:
    """One of ``names``, the shallowest, for each distinct tiny model. Registered depths that differ only in their
    blocks per stage (zerosnet20/32/44/56/110_cifar) give one and the same tiny model, so a check on tiny models runs
    it once; a different class, skeleton, block, scheme or tau (tau-ResNet's depends on the depth) is a model of its
    own."""
    first = {}
    for name in sorted(names, key=lambda n: int(re.search(r"\d+", n).group())):
        ref = _reference(name)
        tau = ref.tau_init if isinstance(ref, TauResNet) else None
        scheme = None if isinstance(ref, TauResNet) else ref.scheme
        key = (type(ref), dataclasses.replace(ref.net, layers=_tiny_layers(ref.net)), scheme, tau)
        first.setdefault(key, name)
    return [n for n in names if n in first.values()]


def tiny_input(model: MultistepResNet, batch: int = 2, in_chans: int = 3) -> torch.Tensor:
    size = 32 if model.net.stem == "cifar" else 64
    return torch.randn(batch, in_chans, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class FakeHfds(Dataset):
    """What timm's create_dataset returns for an hfds/ name, without the datasets package or the Hub: ``length``
    images whose labels cycle through ``classes``, which its reader names."""

    def __init__(self, classes: list[str], length: int):
        self.reader = SimpleNamespace(class_to_idx={name: i for i, name in enumerate(classes)})
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return Image.new("RGB", (16, 16), (4 * i % 256, 0, 0)), i % len(self.reader.class_to_idx)


def write_tiny_mnist(root: Path, digits_split: str, train: range, test: range) -> Path:
    """An MNIST as torchvision stores it (``root/MNIST/raw``, idx files) made of scikit-learn's digits (the images of
    ``digits_split`` at ``train`` / ``test`` indices, upsampled to 28x28), so torch/mnist loads without a download.
    Returns ``root``."""
    from timm_zerosnet.data import DigitsDataset

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    digits = DigitsDataset(digits_split, img_mode="L")
    for prefix, indices in (("train", train), ("t10k", test)):
        images = [digits[i] for i in indices]
        pixels = b"".join(img.resize((28, 28)).tobytes() for img, _ in images)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, len(images), 28, 28) + pixels)
        labels = bytes(target for _, target in images)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, len(images)) + labels)
    return root
