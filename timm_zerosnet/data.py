"""Datasets for training and evaluation.

The default dataset is scikit-learn's handwritten digits (1,797 real 8x8 grey images, 10 classes), which ships with
scikit-learn: every example, test and demo runs on it without touching the network. Other sources go through timm's
``create_dataset`` (ImageFolder directories, ``torch/cifar10`` and friends with ``--dataset-download``, ``hfds/...``).

Datasets are created *without* transforms; :class:`TransformDataset` applies them, optionally with a per-sample seed so
random augmentation (and evaluation noise) is a pure function of ``(seed, epoch, index)``. That makes a run
independent of the number of data-loader workers and of accelerate's one-batch look-ahead, which is what lets a
resumed run be bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple
from urllib.error import URLError

import numpy as np
import torch
from PIL import Image, ImageOps
from timm.data import ImageDataset, create_dataset
from timm.data import auto_augment as _auto_augment
from timm.data.dataset_factory import (
    _EVAL_SYNONYM,
    _TRAIN_SYNONYM,
    _search_split,  # the split folder timm's create_dataset reads
)
from torch.utils.data import Dataset, IterableDataset, Sampler, Subset

__all__ = [
    "DIGITS_IMAGE_SIZE",
    "DigitsDataset",
    "DatasetSplits",
    "DatasetUnavailableError",
    "EpochShuffleSampler",
    "TransformDataset",
    "convert_image",
    "create_datasets",
    "holds_split_folders",
    "label_names_of",
    "seeded_rng",
]

DIGITS_IMAGE_SIZE = 32
"""The 8x8 digits are stored upsampled to this size, the input size of the CIFAR-style models."""

_logger = logging.getLogger(__name__)


class DatasetUnavailableError(RuntimeError):
    """A named dataset is not under its data dir (and may be downloaded there), or its download failed. The message
    says what to do; the entry points print it as one line."""


def _posterize(img: Image.Image, bits_to_keep: int, **__: Any) -> Image.Image:
    """timm's posterize op, where 0 bits gives the black image that it gave before Pillow 13 refused 0 bits. timm's
    policies draw 0 bits (v0, and rand-m9-mstd0.5-inc1 when the magnitude reaches 10), so training with them failed
    in the first epochs with Pillow's "bits must be between or equal to 1 and 8"."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def _pillow_refuses_zero_bits() -> bool:
    try:
        ImageOps.posterize(Image.new("L", (1, 1)), 0)
    except ValueError:
        return True
    return False


if _pillow_refuses_zero_bits():  # timm's AugmentOp takes its function from NAME_TO_OP when a policy is built
    for _name, _op in list(_auto_augment.NAME_TO_OP.items()):
        if _op is _auto_augment.posterize:
            _auto_augment.NAME_TO_OP[_name] = _posterize

_SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
_RANGES_OF_MODES = {"I": (-(2**31), 2**31 - 1), "F": (-np.inf, np.inf), **dict.fromkeys(_SIXTEEN_BIT_GREY, (0, 65535))}


def convert_image(img: Image.Image, mode: str, name: str | None = None) -> Image.Image:
    """``img.convert(mode)``, except where PIL's conversion would lose values without a word. To an 8-bit mode:
    16-bit grey images (a 16-bit PNG, mode 'I;16') are scaled to 8 bits first (0..65535 to 0..255; PIL clipped them
    at 255, turning most of an image white), and 32-bit integer or float images ('I', 'F') are converted only if
    their values lie in 0..255 (their range is not known, so anything else is refused instead of clipped). To a
    wide mode ('I', 'I;16'), PIL's conversion is used where it is exact: a 32-bit or float image must hold whole
    values within the target's range. Any image goes to 'F' as PIL converts it: float32, which rounds integers
    beyond 2**24 to its 24-bit mantissa. ``name`` (the file, where ``img.filename`` is empty: an image opened from a
    file object) names the image in the error."""
    if img.mode == mode:
        return img
    wide = mode in _RANGES_OF_MODES
    if img.mode in ("I", "F") and not (wide and mode == "F"):  # (the same mode returned above)
        values = np.asarray(img)
        low, high = _RANGES_OF_MODES[mode] if wide else (0, 255)
        # whole values matter only to a wide mode (to 8 bits they are rounded): no pass over the image otherwise
        whole = not wide or img.mode == "I" or bool(np.all(np.mod(values, 1) == 0))
        # the bounds compared as Python floats (float64): in float32, I's 2**31 - 1 rounds up to 2**31, which wraps
        vmin, vmax = float(values.min()), float(values.max())
        if vmin < low or vmax > high or not whole:
            name = name or getattr(img, "filename", "") or "an image"
            what = "whole values" if wide else "values"
            raise ValueError(
                f"{name}: a {img.mode} (32-bit) image with values {vmin:g}..{vmax:g}, which mode "
                f"{mode} cannot hold exactly ({what} in {low:g}..{high:g}); save the images with 8 bits per channel "
                "(or as 16-bit grey PNGs, which are scaled), or pick an --input-img-mode that holds them"
            )
        if not wide:
            img = Image.fromarray(values.round().astype(np.uint8), "L")
    elif img.mode in _SIXTEEN_BIT_GREY and not wide:
        values = np.asarray(img).astype(np.uint32)
        img = Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L")
    return img if img.mode == mode else img.convert(mode)


def _check_img_mode(mode: str) -> None:
    """Refuse a name that is no PIL mode up front: PIL refused it only at the first image, inside a data-loader
    worker, with "image has wrong mode"."""
    try:
        Image.getmodebands(mode)
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f"--input-img-mode {mode!r} is not a PIL image mode; pass one such as L (grey), RGB or RGBA (the names are "
            "case-sensitive)"
        ) from None


def _open_image(path: str) -> Image.Image:
    img = Image.open(path)
    img.load()  # decode here, where a broken file is caught (a conversion may not decode it)
    return img


# what a file that cannot be read as an image raises: PIL's DecompressionBombError (an image over twice
# Image.MAX_IMAGE_PIXELS) is no OSError, so it stopped a run with a traceback that did not name the file
_UNREADABLE = (OSError, Image.DecompressionBombError)


def _reason(path: str, error: Exception) -> str:
    if isinstance(error, Image.DecompressionBombError):
        return (
            f"{error} PIL refuses images over twice Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS} pixels): resize it"
        )
    return str(error).replace(f" {path!r}", "")  # PIL's "cannot identify image file 'PATH'" names the file again


#: The suffixes of the images an ImageFolder split is read from, in any case: torchvision's IMG_EXTENSIONS and GIF,
#: all of which PIL opens. timm's folder reader takes .png, .jpg and .jpeg only, and skipped the others without a word.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


#: Suffixes of image formats that a split folder may hold and that are not read (PIL opens most of them; HEIC and
#: JPEG XL need plugins). timm's reader leaves them out without a word, so a note counts them.
UNREAD_IMAGE_SUFFIXES = (
    ".jfif", ".jpe", ".pbm", ".pnm", ".dib", ".tga", ".ico", ".avif", ".apng", ".jp2", ".j2k", ".jpx", ".qoi",
    ".psd", ".pcx", ".xbm", ".xpm", ".sgi", ".ras", ".dds", ".icns", ".heic", ".heif", ".jxl",
)  # fmt: skip


def _unread_images_note(root: str, split: str) -> str | None:
    """A note when the split folder ``root`` holds files of :data:`UNREAD_IMAGE_SUFFIXES`, which the split leaves
    out: how many of each suffix, and one of them."""
    counts: collections.Counter = collections.Counter()
    example = ""
    for folder, _, files in os.walk(root, followlinks=True):  # as timm's reader walks
        for file in files:
            suffix = os.path.splitext(file)[1].lower()
            if suffix in UNREAD_IMAGE_SUFFIXES:
                counts[suffix] += 1
                example = example or os.path.join(folder, file)
    if not counts:
        return None
    total = sum(counts.values())
    kinds = ", ".join(f"{n} {suffix}" for suffix, n in counts.most_common())
    return (
        f"{root} (the {split!r} split): {total} image file(s) are left out, as their suffixes are not read ({kinds}; "
        f"e.g. {example}); convert them to one of {', '.join(IMAGE_EXTENSIONS)} to use them"
    )


class _FolderImages(ImageDataset):
    """timm's ImageFolder dataset, with the images converted by :func:`convert_image` (timm's ``input_img_mode``
    converts with PIL's, which clips 16-bit images) and read from every suffix of :data:`IMAGE_EXTENSIONS`. Takes no
    transform (:class:`TransformDataset` applies them).

    A file that does not decode is refused, naming it. timm instead returned the next sample, with that sample's
    label, so an evaluation counted the neighbour twice. A training split (``stand_in=True``) may go on, as timm's
    train.py does: another image of the same class stands in, with a warning that names both files; the labels are
    unchanged."""

    def __init__(self, root: str, class_map: dict[str, int] | str | None, img_mode: str, stand_in: bool = False):
        from timm.data.readers.reader_image_folder import ReaderImageFolder

        # timm's reader takes the suffixes to look for as its input_key, ';'-separated (matched in any case)
        reader = ReaderImageFolder(root, class_map=class_map or "", input_key=";".join(IMAGE_EXTENSIONS))
        super().__init__(root, reader=reader, input_img_mode=None)
        self.img_mode = img_mode
        self.stand_in = stand_in
        self._warned: set[str] = set()

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.reader.samples[index]
        try:
            img = _open_image(path)
        except _UNREADABLE as e:
            if not self.stand_in:
                raise ValueError(
                    f"{path} cannot be read as an image ({_reason(path, e)}); remove it from the folder or replace "
                    "it with a readable copy"
                ) from None
            img, path = self._same_class_image(index, e)
        return convert_image(img, self.img_mode, name=path), target

    def _same_class_image(self, index: int, error: Exception) -> tuple[Image.Image, str]:
        """The next readable image of the class of the unreadable sample ``index``, and its path (as many tries as
        timm makes)."""
        samples = self.reader.samples
        path, target = samples[index]
        same = [i for i, (_, t) in enumerate(samples) if t == target]
        k = same.index(index)
        unreadable = [f"{path} ({_reason(path, error)})"]
        for i in (same[k + 1 :] + same[:k])[: self._max_retries - 1]:
            try:
                img = _open_image(samples[i][0])
            except _UNREADABLE as e:
                unreadable.append(f"{samples[i][0]} ({_reason(samples[i][0], e)})")
                continue
            if path not in self._warned:
                self._warned.add(path)
                _logger.warning(
                    f"{path} cannot be read as an image ({_reason(path, error)}); training uses {samples[i][0]}, "
                    "same class, in its place: remove the file from the folder or replace it with a readable copy"
                )
            return img, samples[i][0]
        label = next((c for c, t in self.reader.class_to_idx.items() if t == target), target)
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        raise ValueError(
            f"class {label!r}: {len(unreadable)} images in a row cannot be read as images, so none stands in for "
            f"the first: {', '.join(unreadable[:3])}{more}; remove them from the folder or replace them with readable "
            "copies"
        )


def _digits_split(targets: np.ndarray, split: str) -> np.ndarray:
    """Deterministic stratified split: within each class, every 5th sample (positions 4, 9, ...) is validation.

    Gives 1,442 training and 355 validation images; 355 is odd on purpose, so a validation set sharded over two
    processes needs padding and proves that metrics count each sample exactly once.
    """
    val = np.zeros(len(targets), dtype=bool)
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        val[idx[4::5]] = True
    if split in ("train", "training"):
        return np.flatnonzero(~val)
    if split in ("val", "validation", "test", "eval", "evaluation"):
        return np.flatnonzero(val)
    raise ValueError(f"Unknown digits split {split!r}; use 'train' or 'validation'.")


class DigitsDataset(Dataset):
    """scikit-learn's digits as an image dataset of PIL images.

    The 8x8 images (values 0..16) are scaled to 0..255 and upsampled once with bicubic interpolation to 32x32, so
    timm's transforms (crops, padding) act at the resolution the model sees.

    Args:
        split: 'train' or 'validation' (aliases 'val', 'test').
        img_mode: PIL mode of the returned images ('RGB' for 3-channel models, 'L' for in_chans=1).
        transform: Optional transform applied to the PIL image.
        target_transform: Optional transform applied to the integer target.
    """

    classes: list[str] = [str(i) for i in range(10)]

    def __init__(
        self,
        split: str = "train",
        img_mode: str = "RGB",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ):
        from sklearn.datasets import load_digits

        _check_img_mode(img_mode)
        digits = load_digits()
        indices = _digits_split(digits.target, split)
        grey = np.clip(digits.images[indices] * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
        self.images = np.stack(
            [
                np.asarray(Image.fromarray(img, "L").resize((DIGITS_IMAGE_SIZE,) * 2, Image.Resampling.BICUBIC))
                for img in grey
            ]
        )
        self.targets = [int(t) for t in digits.target[indices]]
        self.split = split
        self.img_mode = img_mode
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img = Image.fromarray(self.images[index], "L")
        if self.img_mode != "L":
            img = img.convert(self.img_mode)
        target = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run a block with the CPU torch, numpy and Python RNGs seeded by ``seed``; restore their states afterwards."""
    # the default generator directly: torch.manual_seed / fork_rng also visit every accelerator backend (50x slower)
    gen = torch.default_generator
    torch_state, py_state, np_state = gen.get_state(), random.getstate(), np.random.get_state()
    gen.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        gen.set_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    # SplitMix64-style mixing: distinct, well-spread seeds for neighbouring (epoch, index) pairs.
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return (z ^ (z >> 31)) % 2**63


class TransformDataset(Dataset):
    """Apply an image transform to a map-style dataset of ``(PIL image, target)`` pairs.

    Args:
        dataset: The source dataset, returning untransformed PIL images.
        transform: Image transform (timm's ``create_transform`` output or any callable).
        seed: When given, the transform runs under RNGs seeded by ``(seed, epoch, index)``: augmentation becomes
            reproducible per sample and does not consume the global RNG streams (dropout, mixup) of the
            training loop. ``None`` runs the transform on the global RNGs.
        img_mode: Convert images to this PIL mode first ('L' for one-channel models), when they are not already.
        source_index: Seed by the image's index in the full dataset, through ``Subset`` views, not by its position:
            an image gets the same draws in a subset (``--num-samples`` of an evaluation under noise) as in the whole
            split. Training keeps the position (a run's subset is fixed; its augmentation streams stay as they were).
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable | None,
        seed: int | None = None,
        img_mode: str | None = None,
        source_index: bool = False,
    ):
        if isinstance(dataset, IterableDataset):
            raise TypeError("Only map-style datasets are supported (folder, torch/..., hfds/...); got an iterable one.")
        if img_mode is not None:
            _check_img_mode(img_mode)
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.img_mode = img_mode
        self.source_index = source_index
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating; workers pick it up on creation)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = self.dataset[index]
        if self.img_mode is not None and isinstance(img, Image.Image):
            img = convert_image(img, self.img_mode)
        if self.transform is None:
            return img, target
        if self.seed is None:
            return self.transform(img), target
        if self.source_index:
            index = _source_index(self.dataset, index)
        with seeded_rng(_sample_seed(self.seed, self.epoch, index)):
            return self.transform(img), target


def _source_index(dataset: Dataset, index: int) -> int:
    """The index in the full dataset of item ``index`` of ``dataset``, through (nested) ``Subset`` views."""
    while isinstance(dataset, Subset):
        index, dataset = int(dataset.indices[index]), dataset.dataset
    return index


def _is_count(value: Any) -> bool:
    """A whole number >= 0 (numpy's included; not a bool, which int() would read as 0 or 1)."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= 0


class EpochShuffleSampler(Sampler[int]):
    """Shuffle with a permutation that depends only on ``(seed, epoch)``.

    Every process computes the same permutation and accelerate's batch-sampler sharding gives each its share, so
    no generator has to be synchronised between processes and a resumed epoch replays the same order.
    """

    def __init__(self, num_samples: int, seed: int = 0):
        # checked here: torch refused a bad value only at the first epoch ("randperm(): argument 'n' must be int", or
        # None * int for seed=None)
        if not _is_count(num_samples):
            raise ValueError(
                f"EpochShuffleSampler num_samples={num_samples!r}: pass the dataset's size, a whole number >= 0 "
                "(e.g. len(dataset))"
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(
                f"EpochShuffleSampler seed={seed!r}: the permutation of every epoch follows from the seed, so it must "
                "be a whole number (e.g. the run's --seed, default 0)"
            )
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        # modulo 2**64: a torch seed is 64-bit (a negative one already wraps, so this changes no working seed)
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**64)
        return iter(torch.randperm(self.num_samples, generator=g).tolist())


class DatasetSplits(NamedTuple):
    """Untransformed train and validation datasets and the class names (index i is class i); ``notes``: what the
    caller should tell the user (a sample count past the size of its split, which reads the whole split);
    ``val_split``: the split the validation set was read from (an ImageFolder's: the folder found, val/ for
    'validation' where there is no validation/; None for a split folder read whole)."""

    train: Dataset | None
    val: Dataset | None
    label_names: list[str]
    notes: tuple[str, ...] = ()
    val_split: str | None = None


def label_names_of(dataset: Dataset) -> list[str] | None:
    """Class names of a dataset in index order, when the dataset knows them."""
    while isinstance(dataset, (Subset, TransformDataset)):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    if classes is not None:
        return [str(c) for c in classes]
    reader = getattr(dataset, "reader", None)
    class_to_idx = getattr(reader, "class_to_idx", None) or getattr(dataset, "class_to_idx", None)
    if class_to_idx:
        return [str(name) for name, _ in sorted(class_to_idx.items(), key=lambda kv: kv[1])]
    return None


def _evenly_spaced_subset(dataset: Dataset, num_samples: int | None) -> Dataset:
    """The first-to-last evenly spaced ``num_samples`` items (class-sorted folders keep every class); the whole
    ``dataset`` for a count of at least its size (:func:`_past_the_split` says so)."""
    if not num_samples or num_samples >= len(dataset):
        return dataset
    indices = np.unique(np.linspace(0, len(dataset) - 1, num_samples).round().astype(int))
    return Subset(dataset, indices.tolist())


def _past_the_split(dataset: Dataset, num_samples: int | None, option: str, split: str) -> str | None:
    """The note for a sample count larger than its split, which reads the whole split (it was clamped without a
    word, and recorded as if that many had been used); None otherwise."""
    if not num_samples or num_samples <= len(dataset):
        return None
    return (
        f"{option} {num_samples}: the {split!r} split has only {len(dataset)} images, so all {len(dataset)} are used "
        "(and recorded as the whole split, with no count)"
    )


def used_num_samples(dataset: Dataset, num_samples: int | None) -> int | None:
    """The sample count a split of :func:`create_datasets` was read with, as run.json and the results record it:
    ``num_samples`` where the split holds that many, None where it is the whole split (no count, or one past its
    size)."""
    return num_samples if num_samples and len(dataset) == num_samples else None


def _get(args: Any, name: str, default: Any = None) -> Any:
    value = args.get(name, default) if isinstance(args, dict) else getattr(args, name, default)
    return default if value is None else value


_FOLDER_NAMES = ("folder", "imagefolder", "image_folder")


def dataset_name(args: Any) -> str:
    """The dataset a config selects: ``digits`` unless ``--dataset`` or a ``--data-dir`` (ImageFolder) is given."""
    name = _get(args, "dataset")
    if name is None:
        return "" if _get(args, "data_dir") else "digits"
    if not isinstance(name, str):
        # failed with "'int' object has no attribute 'lower'"
        raise TypeError(
            f"--dataset {name!r}: a dataset is named by a string, e.g. 'digits' (the default), 'folder' (an "
            "ImageFolder under --data-dir) or a timm name such as 'torch/cifar10'"
        )
    if name.lower() == "digits":
        return "digits"
    # timm's torch/folder and torch/image_folder are torchvision's ImageFolder: read as an ImageFolder here too, with
    # its checks (torchvision's numbered the val split's classes by its own folders, and read the whole root for a
    # missing split)
    folder = name.lower() in _FOLDER_NAMES or _torch_dataset(name) in ("folder", "image_folder")
    return "" if folder else name


def _torch_dataset(name: str) -> str | None:
    """The torchvision dataset a torch/ name reads, as timm reads it (lower case, after its last prefix); else None."""
    return name.split("/", 2)[-1].lower() if name.lower().startswith("torch/") else None


def _check_data_dir(name: str, data_dir: str, download: bool) -> None:
    """A data dir that must exist and does not: say so (timm's folder reader asserts without a message)."""
    if os.path.exists(data_dir):
        return
    prefix = name.partition("/")[0].lower() if "/" in name else ""
    if not prefix:  # ImageFolder (or an image .tar)
        raise FileNotFoundError(
            f"data dir {data_dir!r} does not exist; pass --data-dir a folder with train/ and val/ (or validation/) "
            "sub-folders of class folders, or --dataset digits for the embedded data"
        )
    if _torch_dataset(name) == "imagenet":
        raise FileNotFoundError(
            f"data dir {data_dir!r} does not exist; torchvision cannot download ImageNet: pass --data-dir the folder "
            f"that holds {_imagenet_archives()} (or what torchvision extracted from them)"
        )
    if prefix == "torch" and not download:
        raise FileNotFoundError(
            f"data dir {data_dir!r} does not exist; pass --data-dir the folder that holds {name!r}, or add "
            "--dataset-download to download it there"
        )


def _folder_split(data_dir: str, split: str, option: str, dataset: str = "") -> None:
    """Refuse an ImageFolder root without a sub-folder for ``split``: timm would read the whole root instead (so a
    missing val/ made the training images the validation set). ``dataset``: the --dataset name the root was given
    with; a bare name of one of timm's torch/ datasets (cifar10) is an ImageFolder as timm reads it, and the error
    names the torch/ one, which reads torchvision's files (cifar-10-batches-py/)."""
    name = split.split("[")[0]
    candidates = [name] + [s for s in _split_synonyms(name) if s != name]
    if any(os.path.isdir(os.path.join(data_dir, c)) for c in candidates):
        return
    folders = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    raise FileNotFoundError(
        f"{data_dir} has no folder for the {split!r} split (looked for {', '.join(c + '/' for c in candidates)}; it "
        f"holds {', '.join(f + '/' for f in folders) or 'no folders'}): an ImageFolder dataset needs train/ and val/ "
        f"(or validation/) sub-folders of class folders; name other ones with {option}"
        + (
            f". For torchvision's files of {dataset} pass --dataset torch/{dataset.lower()}"
            if dataset.lower() in _TORCH_NAMES and dataset.lower() not in _FOLDER_NAMES
            else ""
        )
    )


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _holds_images(folder: str) -> bool:
    return any(e.is_file() and _is_image(e.name) for e in os.scandir(folder))


def _is_split_folder(folder: str) -> bool:
    """Whether a folder holds class folders: a sub-folder with images, or sub-folders and no images of its own (a
    folder of images is a class, such as CIFAR-100's class 'train')."""
    subfolders = [e.path for e in os.scandir(folder) if e.is_dir()]
    return bool(subfolders) and (not _holds_images(folder) or any(_holds_images(f) for f in subfolders))


def _split_synonyms(name: str) -> tuple[str, ...]:
    """The folder names timm's split search takes for the split ``name`` (a training or an evaluation one), in its
    order; () for a name it has no synonyms for."""
    return next((tuple(group) for group in (_TRAIN_SYNONYM, _EVAL_SYNONYM) if name in group), ())


def _other_split_folders(root: str, split: str, found: str, option: str) -> str | None:
    """A note when ``root`` holds more than one folder that timm's search takes for ``split`` (val/ and
    validation/, train/ and training/): the one read is the split's own name, else the first synonym."""
    synonyms = _split_synonyms(split.split("[")[0])
    if not synonyms:
        return None
    present = [s for s in synonyms if os.path.isdir(os.path.join(root, s))]
    read = os.path.basename(os.path.normpath(found))
    others = [s for s in present if s != read]
    if read not in present or not others:
        return None
    return (
        f"{root!r} holds {', '.join(s + '/' for s in present)} for the {split!r} split: read {read}/ (timm's search "
        f"takes the split's own name, else the first of {', '.join(synonyms)}); pass {option} "
        f"{others[0]} to read {others[0]}/"
    )


def holds_split_folders(data_dir: str, names: Sequence[str] = ()) -> bool:
    """Whether a folder has a sub-folder named as a split (train/, val/, validation/, test/, ..., or one of
    ``names``: a split asked for by name, such as holdout/) that holds class folders: it is a dataset root, not a
    split folder (whose class folders may bear such names)."""
    splits = [os.path.join(data_dir, s) for s in (*_TRAIN_SYNONYM, *_EVAL_SYNONYM, "test", *names) if s]
    return any(os.path.isdir(s) and _is_split_folder(s) for s in splits)


def _holds_images_below(folder: str) -> bool:
    """Whether a folder or any folder below it holds an image (stops at the first)."""
    return any(any(map(_is_image, files)) for _, _, files in os.walk(folder, followlinks=True))


def _folder_images(root: str, class_map: dict[str, int] | None, img_mode: str, stand_in: bool) -> Dataset:
    """A split folder as a dataset; a folder without images in class folders is refused (timm's RuntimeError), and
    so is an empty class folder of a split that takes its classes from its own folders."""
    try:
        dataset = _FolderImages(root, class_map, img_mode, stand_in)
    except RuntimeError as e:
        if "Found 0 images" not in str(e):
            raise
        raise ValueError(
            f"{root} holds no images in class folders: an ImageFolder split is a folder with one sub-folder of "
            f"images per class (images are files ending in {', '.join(IMAGE_EXTENSIONS)}, in any case)"
        ) from None
    _check_class_folders(root, [path for path, _ in dataset.reader.samples])
    if not class_map:
        # timm numbers the classes it finds images of: an empty class folder was left out without a word, so the
        # model got one class less and the classes after it other labels than their folder order
        empty = sorted(
            e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".") and not _holds_images_below(e)
        )
        if empty:
            raise ValueError(
                f"{root}: class folder(s) {', '.join(empty[:10])} hold no images, so their class would be left out "
                "of the labels; put their images in, remove the folders, or pass --class-map naming every class"
            )
    return dataset


def _check_class_folders(root: str, paths: Sequence[str]) -> None:
    """Refuse a split (the folder ``root``, holding the images ``paths``) that timm's folder reader would label by
    surprise: it names an image's class after the folder that holds it, so an image directly in the split folder
    became a class named '' (shifting every label), and class folders of the same name in different places
    (cat/2019 and dog/2019) became one class."""
    places = collections.defaultdict(set)  # class name -> the folders (relative to root) named so that hold images
    for folder in {os.path.dirname(path) for path in paths}:
        rel = os.path.relpath(folder, root)
        rel = "" if rel == os.curdir else rel
        places[os.path.basename(rel)].add(rel)
    if "" in places:
        raise ValueError(
            f"{root} holds images directly, outside class folders: an ImageFolder split has one folder per class; "
            "move them into their class folders"
        )
    shared = {name: sorted(folders) for name, folders in sorted(places.items()) if len(folders) > 1}
    if shared:
        groups = [
            f"{' and '.join(f + '/' for f in folders)} would be one class {name!r}" for name, folders in shared.items()
        ]
        more = f" (and {len(groups) - 5} more such names)" if len(groups) > 5 else ""
        raise ValueError(
            f"{root}: an image's class is the name of the folder that holds it, and class folders in different "
            f"places share a name, so {'; '.join(groups[:5])}{more}; give every class folder its own name (e.g. "
            "cat_2019/ and dog_2019/), or move the images of the nested folders up into their class folders"
        )


def _class_to_idx(dataset: Dataset | None) -> dict[str, int] | None:
    return getattr(getattr(dataset, "reader", None), "class_to_idx", None)


def _check_split_classes(root: str, split: str, classes: dict[str, int], source: str) -> None:
    """Refuse a split (the folder ``root``) with class folders the labels do not know: timm's folder reader skips
    their images silently (and a val split read without the train split's classes would be mislabelled)."""
    from timm.data.readers.reader_image_folder import find_images_and_targets

    images, found = find_images_and_targets(root, types=IMAGE_EXTENSIONS)
    _check_class_folders(root, [path for path, _ in images])
    unknown = sorted(set(found) - set(classes))
    if unknown:
        fix = "add them to the class map" if source.startswith("--class-map") else "pass --class-map"
        raise ValueError(
            f"{root} (the {split!r} split) has class folders that {source} lacks: {', '.join(unknown[:10])}; "
            f"their images would be left out or mislabelled. Use the classes of {source} (or {fix})"
        )


def _checked_labels(mapping: Any, what: str) -> dict[str, int]:
    """A {class name: label} dict whose labels are 0 .. N-1, one per name: the labels index the model's outputs (a
    label of N or more failed deep in the loss) and the class names (a gap or a shared label misnamed them)."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{what} holds a {type(mapping).__name__}, not a dict of class name -> label")
    if not mapping:
        # timm reads an empty map as none: the classes would be numbered from the folders without a word
        raise ValueError(
            f"{what} is empty, so it names no class; pass a dict {{class name: label}} naming every class folder "
            "(labels 0 .. N-1), or no class map to number the class folders in sorted order"
        )
    labels = list(mapping.values())
    if any(isinstance(v, bool) or not isinstance(v, int) for v in labels) or sorted(labels) != list(range(len(labels))):
        shown = ", ".join(f"{k!r}: {v!r}" for k, v in list(mapping.items())[:5])
        raise ValueError(
            f"{what} maps its {len(labels)} class names to labels {{{shown}{', ...' if len(labels) > 5 else ''}}}; "
            f"the labels must be 0 .. {len(labels) - 1}, one per class name"
        )
    return mapping


def _checked_class_names(names: Any) -> list[str]:
    """Class names in label order, as a list of distinct strings: a plain string was split into its characters, and
    a repeated name kept only its last label, so the labels went past the number of classes."""
    try:
        if isinstance(names, str | bytes):
            raise TypeError
        names = [str(n) for n in names]
    except TypeError:
        raise TypeError(
            f"class_names {names!r}: the class names are a list in label order (e.g. a checkpoint's label_names), "
            f"not a {type(names).__name__}; for one class pass [name]"
        ) from None
    repeated = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(
            f"class_names name class(es) {', '.join(map(repr, repeated[:10]))} more than once, so their labels would "
            "go past the number of classes; pass each class folder's name once, in label order (or --class-map)"
        )
    return names


def read_class_map(class_map: str | dict, data_dir: str | None = None) -> dict[str, int]:
    """A class map as ``{class name: label}``, from a dict, or from a file as timm reads it (``.txt``: one class
    name per line, line n is label n - 1; ``.pkl``: a pickled dict), found as given or under ``data_dir``.

    Stricter than timm's reader, whose mistakes are silent: a blank line inside a .txt would become a class named ''
    and shift every label after it, a repeated name would keep only its last line. Blank lines at the end are
    ignored."""
    from timm.data.readers.class_map import load_class_map

    if isinstance(class_map, dict):
        return _checked_labels(class_map, "the class map")
    if not isinstance(class_map, str | os.PathLike):
        # a list of names failed inside os.stat ("path should be string, bytes, os.PathLike or integer, not list")
        raise TypeError(
            f"--class-map {class_map!r}: a class map is a file (.txt, one class name per line, or a pickled .pkl "
            f"dict) or a dict {{class name: label}}, not a {type(class_map).__name__!r} object; for class names in "
            "label order pass {name: i for i, name in enumerate(names)}"
        )
    class_map = os.fspath(class_map)
    path = class_map
    if not os.path.isfile(path) and data_dir and os.path.isfile(os.path.join(data_dir, path)):
        path = os.path.join(data_dir, path)
    if not os.path.isfile(path):
        where = f" or under {data_dir}" if data_dir else ""
        raise FileNotFoundError(f"--class-map {class_map}: no such file (looked for it as given{where})")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".pkl":
        try:
            loaded = load_class_map(path)
        except Exception as e:  # pickle raises many types (UnpicklingError, EOFError, AttributeError, ...)
            raise ValueError(
                f"--class-map {class_map}: the file cannot be unpickled ({type(e).__name__}: {e}); a .pkl class map "
                "is a pickled dict {class name: label}, or use a .txt file with one class name per line"
            ) from None
        return _checked_labels(loaded, f"--class-map {class_map}")
    if ext != ".txt":
        raise ValueError(
            f"--class-map {class_map}: a class map is a .txt file (one class name per line) or a .pkl dict, "
            f"not {ext or 'a file without extension'}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--class-map {class_map}: the file is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 "
            "with one class name per line"
        ) from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError(f"--class-map {class_map}: the file names no class (one class name per line)")
    blank = [str(i + 1) for i, line in enumerate(lines) if not line]
    if blank:
        raise ValueError(
            f"--class-map {class_map}: line(s) {', '.join(blank[:10])} are blank; line n names the class of label "
            "n - 1, so a blank line would be a class named '' and shift the labels after it: remove it"
        )
    repeated = sorted(name for name, n in collections.Counter(lines).items() if n > 1)
    if repeated:
        raise ValueError(f"--class-map {class_map}: class name(s) on more than one line: {', '.join(repeated[:10])}")
    return {name: i for i, name in enumerate(lines)}


# timm's create_dataset reads these torch/ datasets' train split for a train synonym and their test split for any
# other name; the split names that mean either (timm's synonyms, and torchvision's 'test')
_TORCH_TRAIN_TEST = ("cifar10", "cifar100", "mnist", "kmnist", "fashion_mnist", "qmnist")
_TORCH_SPLITS = ("train", "training", "test", "val", "valid", "validation", "eval", "evaluation")


def _check_torch_options(name: str, class_map: Any, splits: tuple[tuple[str, bool, str], ...]) -> None:
    """Refuse what timm's torch/ datasets would silently ignore: a class map (timm does not pass it to torchvision),
    and a split name of a train/test dataset that is no split (timm reads a typo as the test split)."""
    if not name.lower().startswith("torch/"):
        return
    if class_map is not None:
        raise ValueError(
            f"--class-map {class_map}: {name} has its own labels, and timm does not apply a class map to torch/ "
            "datasets; leave --class-map out (it applies to ImageFolder and hfds/ datasets)"
        )
    if _torch_dataset(name) not in _TORCH_TRAIN_TEST:
        return
    for split, wanted, option in splits:
        if wanted and split not in _TORCH_SPLITS:
            raise ValueError(
                f"{option} {split!r}: {name} has a train and a test split, which timm names "
                f"{', '.join(_TORCH_SPLITS[:2])} (train) or {', '.join(_TORCH_SPLITS[2:])} (test)"
            )


# the prefixes timm's create_dataset knows (timm/data/dataset_factory.py); it reads any other name as a folder
_TIMM_PREFIXES = ("torch", "hfds", "hfids", "tfds", "wds")
# timm reads these as iterable (streaming) datasets, which TransformDataset (seeded by the image's index) cannot take
_STREAMED = {
    "hfids": "a streamed Hugging Face dataset",
    "tfds": "a TensorFlow Datasets dataset",
    "wds": "a WebDataset",
}
# the torchvision datasets behind timm's torch/ prefix (other names fail an assert inside timm)
_TORCH_NAMES = (*_TORCH_TRAIN_TEST, "imagenet", "inaturalist", "inat", "places365", "image_folder", "folder")


def _imagenet_archives(splits: Sequence[str] = ("train", "val")) -> str:
    """The archives torchvision's ImageNet reads (it cannot download them), for the splits named."""
    from torchvision.datasets.imagenet import ARCHIVE_META

    names = [ARCHIVE_META[s][0] for s in ("devkit", *splits) if s in ARCHIVE_META]
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]


def _check_prefix(name: str, download: bool) -> None:
    """Refuse a name timm would not read as asked: an unknown prefix (timm read 'foo/bar' as a folder, without the
    split checks, so the validation set was the whole root), a streamed dataset (it failed inside timm without its
    optional package, and this tool could not take it with one), a torch/ name torchvision lacks, and a download of
    ImageNet (timm dropped the flag without a word)."""
    head, colon, path = name.partition(":")
    if colon and head.lower() in ("folder", "imagefolder", "image_folder"):
        # no such syntax: the path was ignored (--data-dir was read) or failed inside timm (no --data-dir)
        raise ValueError(
            f"--dataset {name!r}: a folder is not named in --dataset; pass --dataset folder --data-dir "
            f"{path or 'DIR'} (a folder with train/ and val/ sub-folders of class folders)"
        )
    if "/" not in name:
        return
    prefix, _, rest = name.partition("/")
    prefix = prefix.lower()
    if prefix not in _TIMM_PREFIXES:
        path = name if not prefix or os.path.isdir(name) else "DIR"  # a path given as the name: its own advice
        raise ValueError(
            f"--dataset {name!r}: {prefix + '/'!r} is no dataset prefix timm knows "
            f"({', '.join(p + '/' for p in _TIMM_PREFIXES)}), and timm would read the name as a folder without its "
            f"split folders; for an ImageFolder pass --dataset folder --data-dir {path} (a folder with train/ and "
            "val/ sub-folders of class folders)"
        )
    if prefix in _STREAMED:
        torch_name = rest.lower() if rest.lower() in _TORCH_NAMES else None
        same = f"hfds/{rest}" if prefix == "hfids" else f"torch/{torch_name}" if torch_name else None
        raise ValueError(
            f"--dataset {name!r} is {_STREAMED[prefix]}, which timm reads as an iterable (streaming) dataset; this "
            "tool reads map-style datasets only (each image's augmentation is seeded by its index): pass "
            + (f"--dataset {same}, " if same else "")
            + "an ImageFolder (--dataset folder --data-dir ...), a torch/ dataset or hfds/<name>"
        )
    if prefix == "torch":
        torch_name = _torch_dataset(name)
        if torch_name not in _TORCH_NAMES:
            raise ValueError(
                f"--dataset {name!r}: timm's torch/ datasets are {', '.join(_TORCH_NAMES)}; for another torchvision "
                "dataset, save its images as an ImageFolder and pass --dataset folder --data-dir ..."
            )
        if torch_name == "imagenet" and download:
            raise ValueError(
                f"--dataset-download: torchvision cannot download ImageNet (image-net.org hands out its archives "
                f"after registration); place {_imagenet_archives()} under --data-dir and leave --dataset-download out"
            )


def _folders_near(data_dir: str | None, depth: int = 2) -> set[str]:
    """``data_dir`` and the folders up to ``depth`` levels below it (where torchvision's downloads make theirs)."""
    if data_dir is None or not os.path.isdir(data_dir):
        return set()
    found, level = {data_dir}, [data_dir]
    for _ in range(depth):
        level = [e.path for folder in level for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
        found.update(level)
    return found


def _remove_new_empty_folders(data_dir: str | None, before: set[str]) -> None:
    """Remove the folders near ``data_dir`` that a failed download made (not in ``before``) and left empty."""
    for folder in sorted(_folders_near(data_dir) - before, key=lambda f: f.count(os.sep), reverse=True):
        with contextlib.suppress(OSError):  # not empty: the download put something there
            os.rmdir(folder)


def _download_failed(name: str, data_dir: str | None, reason: Any) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"Downloading {name!r} into {data_dir!r} failed ({reason}); connect to the network and retry, or put the "
        "dataset's files under --data-dir yourself (as torchvision stores them, e.g. cifar-10-batches-py/ for "
        "torch/cifar10) and run without --dataset-download"
    )


def create_datasets(args: Any, train: bool = True, val: bool = True) -> DatasetSplits:
    """Create the untransformed train/validation datasets a config asks for.

    Args:
        args: A namespace or dict with ``dataset`` ('digits' (default), '' or 'folder' for an ImageFolder under
            ``data_dir`` with train/ and val/ (or validation/) sub-folders, 'torch/cifar10', 'torch/cifar100',
            'hfds/<name>' or another of timm's torch/ names), ``data_dir``, ``dataset_download``, ``train_split``,
            ``val_split``, ``class_map``, ``input_img_mode``, ``train_num_samples``, ``val_num_samples``, ``seed``,
            ``input_key`` / ``target_key`` (the image and label columns of an hfds/ dataset) and ``class_names``
            (an ImageFolder's classes in label order, e.g. a checkpoint's label names, when ``class_map`` is not
            given). An ImageFolder's val split takes its labels from the train split (or
            ``class_names``), by class name: a class folder that those do not have is an error.
        train: Create the training split.
        val: Create the validation split.

    Returns:
        The splits (``None`` for those not asked for) and the class names.
    """
    if not (train or val):
        # both splits left out: the class names of no split could be read ("pass --class-map" would not help)
        raise ValueError(
            "create_datasets was asked for no split (train=False, val=False); pass train=True, val=True or both"
        )
    name = dataset_name(args)
    given_class_map = _get(args, "class_map")
    if isinstance(given_class_map, dict) and not given_class_map:
        # {} is falsy: it was read as no class map without a word
        _checked_labels(given_class_map, "--class-map {}")
    img_mode = _get(args, "input_img_mode", "RGB")
    _check_img_mode(img_mode)
    val_count = "--val-num-samples" if train else _get(args, "val_num_samples_option", "--num-samples")
    for key, option in (("train_num_samples", "--train-num-samples"), ("val_num_samples", val_count)):
        count = _get(args, key)
        if count is not None and not _is_count(count):
            # numpy refused a negative count ("Number of samples, -5, must be non-negative"), True read as 1
            raise ValueError(f"{option} {count!r}: a sample count is a whole number >= 0 (0 or none: the whole split)")
    train_split = _get(args, "train_split", "train")
    val_split = _get(args, "val_split", "validation")
    splits: dict[str, Dataset | None] = {"train": None, "val": None}
    columns = {key: _get(args, key) for key in ("input_key", "target_key") if _get(args, key)}
    if columns and not name.lower().startswith("hfds/"):
        flags = " and ".join(f"--{key.replace('_', '-')} {value}" for key, value in columns.items())
        raise ValueError(
            f"{flags} name(s) columns of a Hugging Face dataset (--dataset hfds/<name>); {name or 'an ImageFolder'} "
            "has none: leave them out"
        )

    if name == "digits":
        options = (("--data-dir", "data_dir"), ("--class-map", "class_map"), ("--dataset-download", "dataset_download"))
        if ignored := [flag for flag, key in options if _get(args, key)]:
            raise ValueError(
                f"{', '.join(ignored)}: the dataset is the embedded digits (--dataset digits, which the digits_demo "
                "recipe sets), which reads no files; pass --dataset folder to use the ImageFolder under --data-dir "
                "(or a timm name such as torch/cifar10), or leave them out"
            )
        if train:
            splits["train"] = DigitsDataset(train_split, img_mode=img_mode)
        if val:
            splits["val"] = DigitsDataset(val_split, img_mode=img_mode)
    else:
        data_dir = _get(args, "data_dir")
        download = bool(_get(args, "dataset_download", False))
        _check_prefix(name, download)
        if data_dir is None and name.lower().startswith("torch/"):
            imagenet = _torch_dataset(name) == "imagenet"  # which torchvision cannot download
            raise ValueError(
                f"--data-dir is required for {name!r}: it is where the dataset is read from "
                + ("(torchvision's ImageNet archives)." if imagenet else "(and downloaded to with --dataset-download).")
            )
        if data_dir is None and not name:
            raise ValueError("An ImageFolder dataset needs --data-dir (a folder with train/ and val/ sub-folders).")
        if data_dir is None and "/" not in name:
            raise ValueError(
                f"--dataset {name!r} is not a dataset name this tool knows: use 'digits' (the default), 'folder' with "
                f"--data-dir, or a timm name with its prefix and --data-dir, e.g. 'torch/{name.lower()}'"
            )
        if data_dir is not None:
            data_dir = os.path.expanduser(str(data_dir))
            _check_data_dir(name, data_dir, download)
            if name.lower().startswith("torch/") and os.path.exists(data_dir) and not os.path.isdir(data_dir):
                # torchvision said "Dataset not found or corrupted", which we turned into "pass --dataset-download";
                # a download cannot go into a file either
                raise ValueError(
                    f"--data-dir {data_dir} is a file; {name} is read from (and downloaded into) a folder, where "
                    "torchvision keeps its files (e.g. cifar-10-batches-py/ for torch/cifar10): pass that folder"
                )
            if "/" not in name and not os.path.isdir(data_dir):
                raise ValueError(
                    f"--data-dir {data_dir} is a file: an ImageFolder dataset is a folder with train/ and val/ (or "
                    "validation/) sub-folders of class folders. An image .tar holds no splits: extract it into that "
                    "layout"
                )
        # an ImageFolder: no name, or a name without a prefix (timm reads any such name as a folder)
        folder = "/" not in name and data_dir is not None and os.path.isdir(data_dir)
        if folder and download:
            raise ValueError(
                f"--dataset-download fetches timm's named datasets (torch/..., hfds/...); {data_dir} is an "
                "ImageFolder, read as it is: leave --dataset-download out"
            )
        class_map = _get(args, "class_map", None) or None
        val_option = "--val-split" if train else "--split"  # evaluation alone: zerosnet-validate's option
        _check_torch_options(name, class_map, ((train_split, train, "--train-split"), (val_split, val, val_option)))
        given_map = class_map
        if folder and class_map is not None:
            class_map = read_class_map(class_map, data_dir)
        names = _get(args, "class_names")
        if folder and class_map is None and names:
            class_map = {str(n): i for i, n in enumerate(_checked_class_names(names))}
        if folder:
            counts = (("--train-num-samples", train_split, train, "--train-split"),)
            counts += (("--val-num-samples" if train else "--num-samples", val_split, val, val_option),)
            for count, split, wanted, option in counts:
                if wanted and "[" in split:
                    raise ValueError(
                        f"{option} {split!r}: a [...] slice takes part of a split of a Hugging Face (hfds/) dataset; "
                        f"an ImageFolder split is a folder, read whole. Pass {option} "
                        f"{split.split('[')[0]!r}, and {count} N for an evenly spaced subset of N images"
                    )
        # evaluation alone may point --data-dir at the split folder itself (as timm's validate.py), read as it is:
        # timm would take a class folder named as the split (CIFAR-100 has a class 'train') for the split
        is_root = folder and (train or holds_split_folders(data_dir, (val_split,)))
        split_dirs = {s: _search_split(data_dir, s) if is_root else data_dir for s in (train_split, val_split)}
        if folder and train:
            # both splits from one root: a split folder timm does not find would be the whole root, i.e. validation
            # on the training images (evaluation alone may point --data-dir at the split folder itself, as timm's)
            for split, wanted, option in ((train_split, train, "--train-split"), (val_split, val, "--val-split")):
                if wanted:
                    _folder_split(data_dir, split, option, name)
        elif is_root and val:
            # evaluation alone, a root with split folders: a split it lacks (a typo) would read the whole root
            _folder_split(data_dir, val_split, "--split", name)
        common = dict(
            root=data_dir,
            class_map=class_map,
            download=download,
            input_img_mode=img_mode,
            seed=_get(args, "seed", 42),
        )
        for key, split, is_training, wanted in (("train", train_split, True, train), ("val", val_split, False, val)):
            if not wanted:
                continue
            if folder and given_map is not None:
                _check_split_classes(split_dirs[split], split, class_map, f"--class-map {given_map}")
            elif folder and key == "val":
                # the val labels are the train split's (or the given names'), by class name, not its own folder order
                classes = _class_to_idx(splits["train"]) or common["class_map"]
                if classes:
                    source = "the train split" if splits["train"] is not None else "the checkpoint"
                    _check_split_classes(split_dirs[split], split, classes, source)
                    common["class_map"] = dict(classes)
            if name.lower().startswith("hfds/"):
                try:
                    import datasets  # noqa: F401
                except ImportError:
                    raise ValueError(
                        f"{name!r} is a Hugging Face dataset: it needs the 'datasets' package (pip install datasets)"
                    ) from None
            # the folders a download may make (MNIST/raw), to remove those it left empty when it fails
            before = _folders_near(data_dir) if download and not folder else set()
            try:
                if folder:
                    splits[key] = _folder_images(split_dirs[split], common["class_map"], img_mode, is_training)
                else:
                    splits[key] = create_dataset(name, split=split, is_training=is_training, **common, **columns)
            except (URLError, ConnectionError, TimeoutError) as e:
                if not download:
                    raise
                _remove_new_empty_folders(data_dir, before)
                # from None: the urllib traceback says nothing the message does not
                raise _download_failed(name, data_dir, getattr(e, "reason", None) or e) from None
            except RuntimeError as e:
                imagenet = _torch_dataset(name) == "imagenet"
                if imagenet and "not present" in str(e):  # torchvision's "The archive ... is not present"
                    asked = [s for s, wanted in (("train", train), ("val", val)) if wanted]  # torchvision's splits
                    raise DatasetUnavailableError(
                        f"{name!r} was not found under {data_dir!r}, and torchvision cannot download ImageNet: place "
                        f"{_imagenet_archives(asked)} there (from image-net.org), which torchvision "
                        f"extracts on first use. ({e})"
                    ) from None
                if "download" in str(e).lower() and not download:
                    raise DatasetUnavailableError(
                        f"{name!r} was not found under {data_dir!r}; pass --dataset-download to fetch it. ({e})"
                    ) from e
                if download and str(e).startswith("Error downloading"):
                    # torchvision's MNIST family catches the URLError of each mirror and raises this, over lines
                    _remove_new_empty_folders(data_dir, before)
                    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
                    raise _download_failed(name, data_dir, f"{lines[0].rstrip(':')}: {lines[-1]}") from None
                raise

    label_names = None
    for ds in (splits["train"], splits["val"]):
        if ds is not None and label_names is None:
            label_names = label_names_of(ds)
    if label_names is None:
        raise ValueError(f"Could not determine the class names of dataset {name!r}; pass --class-map.")

    notes = []
    # val_count: evaluation alone names zerosnet-validate's option, or what it names for a count it took from the run
    for key, option, split in (("train", "--train-num-samples", train_split), ("val", val_count, val_split)):
        if splits[key] is not None:
            count = _get(args, f"{key}_num_samples")
            notes.append(_past_the_split(splits[key], count, option, split))
            splits[key] = _evenly_spaced_subset(splits[key], count)
    read_from = val_split
    if name != "digits" and folder:
        for key, split in (("train", train_split), ("val", val_split)):
            if splits[key] is not None:
                notes.append(_unread_images_note(split_dirs[split], split))
        # the folder timm's search found, or none: the split folder itself
        read_from = os.path.basename(os.path.normpath(split_dirs[val_split])) if is_root else None
        if is_root:
            for key, split, option in (("train", train_split, "--train-split"), ("val", val_split, val_option)):
                if splits[key] is not None:
                    notes.append(_other_split_folders(data_dir, split, split_dirs[split], option))
    return DatasetSplits(splits["train"], splits["val"], label_names, tuple(filter(None, notes)), read_from)
