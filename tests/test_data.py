"""The embedded digits dataset, seeded transforms, the epoch sampler and create_datasets' dispatch (never downloads)."""

from __future__ import annotations

import os
import random
import re
import sys
import tarfile
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

import timm_zerosnet.data as data_mod
from conftest import FakeHfds, write_tiny_mnist
from timm_zerosnet.data import (
    DigitsDataset,
    EpochShuffleSampler,
    TransformDataset,
    convert_image,
    create_datasets,
    label_names_of,
    used_num_samples,
)


@pytest.fixture(scope="module")
def digits():
    return create_datasets({})


def test_digits_split_sizes_are_fixed_and_val_is_odd(digits):
    assert len(digits.train) == 1442 and len(digits.val) == 355
    assert len(digits.val) % 2 == 1  # a two-process validation needs padding: proves gather_for_metrics de-duplicates
    assert digits.label_names == [str(i) for i in range(10)]


def test_digits_split_is_stratified_disjoint_and_deterministic(digits):
    counts = np.bincount(digits.val.targets, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 36
    again = DigitsDataset("validation")
    assert np.array_equal(again.images, digits.val.images) and again.targets == digits.val.targets
    train_rows = {img.tobytes() for img in digits.train.images}
    assert not any(img.tobytes() in train_rows for img in digits.val.images[:50])


def test_digits_images_are_real_upsampled_digits(digits):
    img, target = digits.train[0]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
    arr = np.asarray(img)
    assert arr.min() == 0 and arr.max() > 200 and isinstance(target, int)
    grey, _ = DigitsDataset("train", img_mode="L")[0]
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), arr[..., 0])


def test_unknown_digits_split_is_an_error():
    with pytest.raises(ValueError, match="split"):
        DigitsDataset("holdout")


class _Noise:
    def __call__(self, img):
        return torch.rand(3) + random.random() + float(np.random.rand())


def test_seeded_transform_is_per_sample_and_leaves_global_rng_alone(digits):
    ds = TransformDataset(digits.val, _Noise(), seed=7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    py_before, np_before = random.getstate(), np.random.get_state()
    a3, a5 = ds[3][0], ds[5][0]
    assert torch.equal(torch.get_rng_state(), before)
    assert random.getstate() == py_before and np.array_equal(np.random.get_state()[1], np_before[1])
    # order and repetition do not matter; index, epoch and seed do
    assert torch.equal(ds[5][0], a5) and torch.equal(ds[3][0], a3) and not torch.equal(a3, a5)
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], a3)
    assert not torch.equal(TransformDataset(digits.val, _Noise(), seed=8)[3][0], a3)


def test_an_image_draws_the_same_in_a_subset_as_in_the_full_dataset(digits):
    """The draws were seeded by the position in the subset: with --num-samples an image got other noise than in the
    full evaluation (the noise docs promise a seed by image index)."""
    from torch.utils.data import Subset

    full = TransformDataset(digits.val, _Noise(), seed=7, source_index=True)
    view = Subset(Subset(digits.val, [9, 3, 40, 7]), [3, 1])
    subset = TransformDataset(view, _Noise(), seed=7, source_index=True)
    assert torch.equal(subset[0][0], full[7][0]) and torch.equal(subset[1][0], full[3][0])
    assert subset[0][1] == full[7][1]
    # training keeps seeding by the position (a run's augmentation streams stay as they were)
    assert torch.equal(TransformDataset(view, _Noise(), seed=7)[0][0], full[0][0])


def test_unseeded_transform_uses_global_rng(digits):
    ds = TransformDataset(digits.val, _Noise(), seed=None)
    torch.manual_seed(0)
    first = ds[0][0]
    assert not torch.equal(ds[0][0], first)


def test_transform_dataset_converts_mode(digits):
    img, _ = TransformDataset(digits.val, None, img_mode="L")[0]
    assert img.mode == "L"


def test_epoch_shuffle_sampler_depends_only_on_seed_and_epoch():
    s = EpochShuffleSampler(50, seed=3)
    e0 = list(s)
    assert sorted(e0) == list(range(50)) and e0 != list(range(50))
    assert list(s) == e0
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0
    other = EpochShuffleSampler(50, seed=3)
    other.set_epoch(1)
    assert list(other) == e1


def test_num_samples_takes_an_evenly_spaced_subset():
    splits = create_datasets({"train_num_samples": 100, "val_num_samples": 21})
    assert len(splits.train) == 100 and len(splits.val) == 21
    targets = [splits.train[i][1] for i in range(100)]
    assert len(set(targets)) == 10  # spread over the whole set, not its first rows
    assert label_names_of(splits.val) == [str(i) for i in range(10)]
    assert splits.notes == ()
    assert (used_num_samples(splits.train, 100), used_num_samples(splits.val, None)) == (100, None)


def test_a_sample_count_past_a_split_reads_it_whole_and_says_so():
    """It was clamped without a word, and recorded (run.json, the results) as the count used."""
    splits = create_datasets({"train_num_samples": 100000, "val_num_samples": 355})
    assert (len(splits.train), len(splits.val)) == (1442, 355)
    assert splits.notes == (
        "--train-num-samples 100000: the 'train' split has only 1442 images, so all 1442 are used (and recorded as "
        "the whole split, with no count)",
    )
    assert (used_num_samples(splits.train, 100000), used_num_samples(splits.val, 355)) == (None, 355)
    alone = create_datasets({"val_num_samples": 400}, train=False)  # evaluation alone: zerosnet-validate's option
    assert len(alone.val) == 355 and alone.notes[0].startswith("--num-samples 400: the 'validation' split has only")


def _write_folder(root, classes=("cat", "dog", "emu"), per_split=(4, 2)):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_split):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.png")


def test_image_folder_from_data_dir(tmp_path):
    _write_folder(tmp_path)
    splits = create_datasets(SimpleNamespace(dataset=None, data_dir=str(tmp_path)))
    assert splits.label_names == ["cat", "dog", "emu"]
    assert len(splits.train) == 12 and len(splits.val) == 6
    img, target = splits.val[5]
    assert isinstance(img, Image.Image) and img.size == (10, 12) and target == 2
    # 'folder' names the same thing explicitly; grey mode is honoured
    grey = create_datasets({"dataset": "folder", "data_dir": str(tmp_path), "input_img_mode": "L"}, train=False)
    assert grey.train is None and grey.val[0][0].mode == "L"


def _write_split(root, split, classes, n=2):
    for c in classes:
        (root / split / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (10, 12), (10 * i, 0, 0)).save(root / split / c / f"{c}{i}.png")


def test_image_folder_without_a_split_folder_is_refused(tmp_path):
    """timm reads the whole root for a split folder it does not find: validation on the training images."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    with pytest.raises(
        FileNotFoundError,
        match=r"no folder for the 'validation' split \(looked for validation/, val/.*"
        r"it holds train/\).*--val-split",
    ):
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"no folder for the 'train' split .*it holds cat/, dog/"):
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path / "train")})  # the split folder itself
    with pytest.raises(FileNotFoundError, match="'tset' split"):
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path), "val_split": "tset"})
    _write_split(tmp_path, "eval", ("cat", "dog"))  # a synonym, as timm finds it
    assert len(create_datasets({"dataset": "folder", "data_dir": str(tmp_path)}).val) == 4


def test_image_folder_with_two_folders_for_a_split_notes_the_one_read(tmp_path):
    """timm's search reads validation/ for the default split where val/ is there too: a note names the folder read
    and the option for the other one (for each split, and with zerosnet-validate's option when evaluating alone)."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"), n=1)
    base = {"dataset": "folder", "data_dir": str(tmp_path)}
    assert create_datasets(base).notes == ()  # one folder for each split: nothing to say
    _write_split(tmp_path, "validation", ("cat", "dog"), n=3)
    _write_split(tmp_path, "training", ("cat", "dog"))
    splits = create_datasets(base)
    assert (len(splits.val), splits.val_split) == (6, "validation")
    assert splits.notes == (
        f"{str(tmp_path)!r} holds train/, training/ for the 'train' split: read train/ (timm's search takes the "
        "split's own name, else the first of train, training); pass --train-split training to read training/",
        f"{str(tmp_path)!r} holds val/, validation/ for the 'validation' split: read validation/ (timm's search "
        "takes the split's own name, else the first of val, valid, validation, eval, evaluation); pass --val-split "
        "val to read val/",
    )
    alone = create_datasets({**base, "val_split": "eval"}, train=False)  # no eval/: timm's first synonym, val/
    assert (len(alone.val), alone.val_split) == (2, "val")
    assert alone.notes == (
        f"{str(tmp_path)!r} holds val/, validation/ for the 'eval' split: read val/ (timm's search takes the "
        "split's own name, else the first of val, valid, validation, eval, evaluation); pass --split validation "
        "to read validation/",
    )


def test_image_files_of_suffixes_not_read_are_counted_in_a_note(tmp_path):
    """timm's reader leaves out images of other suffixes (.tga, .jfif, .heic) without a word: a note counts them per
    split, names one, and says what to do; evaluation of the split folder itself notes them too."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    base = {"dataset": "folder", "data_dir": str(tmp_path)}
    assert create_datasets(base).notes == ()
    for name in ("a.tga", "b.TGA"):
        Image.new("RGB", (10, 12)).save(tmp_path / "train" / "cat" / name, format="TGA")
    (tmp_path / "train" / "dog" / "c.jfif").write_bytes(b"")
    (tmp_path / "val" / "dog" / "d.heic").write_bytes(b"")
    (tmp_path / "val" / "dog" / "notes.txt").write_text("not an image")
    splits = create_datasets(base)
    assert (len(splits.train), len(splits.val)) == (4, 4)  # still left out
    train_note, val_note = splits.notes
    assert train_note.startswith(f"{tmp_path / 'train'} (the 'train' split): 3 image file(s) are left out, as their ")
    assert "(2 .tga, 1 .jfif; e.g. " in train_note and train_note.endswith(".gif to use them")
    assert val_note.startswith(f"{tmp_path / 'val'} (the 'validation' split): 1 image file(s) are left out")
    assert f"(1 .heic; e.g. {tmp_path / 'val' / 'dog' / 'd.heic'})" in val_note
    alone = create_datasets({**base, "data_dir": str(tmp_path / "val")}, train=False)
    assert alone.notes == (val_note,)


def test_image_folder_val_labels_follow_the_train_classes_by_name(tmp_path):
    """A val split with fewer classes: its 'emu' images are class 2 (train's), not 1 (its own folder order)."""
    _write_split(tmp_path, "train", ("cat", "dog", "emu"))
    _write_split(tmp_path, "val", ("cat", "emu"))
    splits = create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})
    assert splits.label_names == ["cat", "dog", "emu"]
    assert sorted({splits.val[i][1] for i in range(len(splits.val))}) == [0, 2]
    # evaluation alone (zerosnet-validate): the checkpoint's label names give the order
    alone = create_datasets(
        {"dataset": "folder", "data_dir": str(tmp_path), "class_names": ["cat", "dog", "emu"]}, train=False
    )
    assert sorted({alone.val[i][1] for i in range(len(alone.val))}) == [0, 2]
    _write_split(tmp_path, "val", ("fox",))
    with pytest.raises(ValueError, match="class folders that the train split lacks: fox"):
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="class folders that the checkpoint lacks: fox"):
        create_datasets({"data_dir": str(tmp_path), "class_names": ["cat", "dog", "emu"]}, train=False)
    Image.new("RGB", (10, 12)).save(tmp_path / "val" / "loose.png")
    with pytest.raises(ValueError, match="holds images directly, outside class folders"):
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})


def test_a_class_map_is_read_strictly_and_must_name_every_class_folder(tmp_path):
    """timm's reader made a blank line a class named '' (shifting the labels after it), kept the last of two equal
    lines, and skipped the images of a folder the map does not name; all three are refused, naming the fix."""
    _write_split(tmp_path, "train", ("cat", "dog", "emu"))
    _write_split(tmp_path, "val", ("cat", "emu"))
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    (tmp_path / "map.txt").write_text("emu\ncat\ndog\n\n\n")  # blank lines at the end are harmless
    splits = create_datasets({**cfg, "class_map": str(tmp_path / "map.txt")})
    assert splits.label_names == ["emu", "cat", "dog"]
    assert sorted({splits.val[i][1] for i in range(len(splits.val))}) == [0, 1] and len(splits.train) == 6
    assert len(create_datasets({**cfg, "class_map": "map.txt"}).train) == 6  # found under --data-dir, as timm does
    (tmp_path / "blank.txt").write_text("emu\n\ncat\ndog\n")
    with pytest.raises(ValueError, match=r"blank.txt: line\(s\) 2 are blank; .* shift the labels after it"):
        create_datasets({**cfg, "class_map": str(tmp_path / "blank.txt")})
    (tmp_path / "twice.txt").write_text("emu\ncat\ndog\ncat\n")
    with pytest.raises(ValueError, match="class name\\(s\\) on more than one line: cat"):
        create_datasets({**cfg, "class_map": str(tmp_path / "twice.txt")})
    (tmp_path / "short.txt").write_text("cat\nemu\n")
    with pytest.raises(
        ValueError, match=r"train \(the 'train' split\) has class folders that --class-map .*short.txt lacks: dog;"
    ):
        create_datasets({**cfg, "class_map": str(tmp_path / "short.txt")})
    assert len(create_datasets({**cfg, "class_map": str(tmp_path / "short.txt")}, train=False).val) == 4
    _write_split(tmp_path, "val", ("fox",))
    with pytest.raises(
        ValueError, match=r"/val \(the 'validation' split\) has .* lacks: fox; .* add them to the class map"
    ):
        create_datasets({**cfg, "class_map": str(tmp_path / "map.txt")})
    (tmp_path / "map.csv").write_text("cat,0\n")
    with pytest.raises(ValueError, match="a .txt file .* or a .pkl dict, not .csv"):
        create_datasets({**cfg, "class_map": str(tmp_path / "map.csv")})
    with pytest.raises(FileNotFoundError, match="--class-map nomap.txt: no such file"):
        create_datasets({**cfg, "class_map": "nomap.txt"})


def test_a_pickled_class_map_labels_its_classes_zero_to_n_minus_one(tmp_path):
    """A .pkl map with a label past its class count (it failed in the loss: 'Target 12 is out of bounds'), a gap or
    two names on one label (the class names were misaligned) is refused; 0 .. N-1 in any order loads."""
    import pickle

    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    for bad in ({"cat": 0, "dog": 12}, {"cat": 1, "dog": 1}, {"cat": 0, "dog": "1"}, {"cat": 0, "dog": True}):
        (tmp_path / "map.pkl").write_bytes(pickle.dumps(bad))
        with pytest.raises(ValueError, match=r"map.pkl maps its 2 class names to labels .*must be 0 \.\. 1, one per"):
            create_datasets({**cfg, "class_map": str(tmp_path / "map.pkl")})
    (tmp_path / "map.pkl").write_bytes(pickle.dumps({"dog": 0, "cat": 1}))
    splits = create_datasets({**cfg, "class_map": str(tmp_path / "map.pkl")})
    assert splits.label_names == ["dog", "cat"] and {label for _, label in splits.train} == {0, 1}


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    """PIL's convert clipped a 16-bit grey PNG at 255 (a ramp became almost all white); it is scaled to 8 bits.
    A 32-bit image outside 0..255 is refused, not clipped."""
    ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)  # 0..65535 in 256 steps
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(ramp).save(tmp_path / split / "a" / "0.png")
    assert Image.open(tmp_path / "train" / "a" / "0.png").mode == "I;16"
    for mode in ("L", "RGB"):
        splits = create_datasets({"data_dir": str(tmp_path), "input_img_mode": mode})
        img = np.asarray(splits.train[0][0])
        assert img.dtype == np.uint8 and img.shape[:2] == (16, 16)
        grey = img if mode == "L" else img[..., 0]
        assert np.array_equal(grey.ravel(), np.arange(256)), "the ramp keeps its 256 levels"
    wide_target = np.asarray(convert_image(Image.open(tmp_path / "train" / "a" / "0.png"), "I"))
    assert np.array_equal(wide_target.ravel(), ramp.ravel().astype(np.int32))  # to a 32-bit mode: every level kept
    wide = Image.fromarray(np.full((4, 4), 1000, dtype=np.int32), "I")
    with pytest.raises(ValueError, match=r"a I \(32-bit\) image with values 1000..1000, which mode L cannot hold"):
        convert_image(wide, "L")
    assert np.asarray(convert_image(Image.fromarray(np.full((4, 4), 7, dtype=np.int32), "I"), "RGB")).max() == 7
    # to a wide mode only exact conversions: PIL would wrap 1e10 to -2**31, truncate -3.7 or clip 70000 at 65535
    for values, mode in (((1e10,), "I"), ((-3.7,), "I"), ((0.6,), "I"), ((70000,), "I;16"), ((1e10,), "I;16")):
        dtype = np.int32 if float(values[0]).is_integer() and abs(values[0]) < 2**31 else np.float32
        src = Image.fromarray(np.full((2, 2), values[0], dtype=dtype), "I" if dtype == np.int32 else "F")
        with pytest.raises(ValueError, match=f"which mode {re.escape(mode)} cannot hold exactly"):
            convert_image(src, mode)
    whole = Image.fromarray(np.full((2, 2), -3.0, dtype=np.float32), "F")
    assert np.asarray(convert_image(whole, "I")).tolist() == [[-3, -3], [-3, -3]]
    assert np.asarray(convert_image(Image.fromarray(np.full((2, 2), 1e10, dtype=np.float32), "F"), "F")).max() == 1e10


def test_evaluation_alone_may_read_the_split_folder_itself(tmp_path):
    """As timm's validate.py: --data-dir the val folder (only training needs both split folders under one root)."""
    _write_split(tmp_path, "val", ("cat", "emu"))
    alone = create_datasets({"data_dir": str(tmp_path / "val"), "class_names": ["cat", "dog", "emu"]}, train=False)
    assert sorted({alone.val[i][1] for i in range(len(alone.val))}) == [0, 2]


def test_a_prefix_free_timm_name_is_an_image_folder_with_the_same_checks(tmp_path):
    _write_split(tmp_path, "train", ("cat", "dog"))
    with pytest.raises(FileNotFoundError, match="no folder for the 'validation' split"):
        create_datasets({"dataset": "imagenet", "data_dir": str(tmp_path)})
    # torchvision's files under a bare name of one of timm's torch/ datasets: the error names the torch/ one
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    hint = r"it holds cifar-10-batches-py/\): an ImageFolder .*\. For torchvision's files of CIFAR10 pass --dataset "
    with pytest.raises(FileNotFoundError, match=hint + "torch/cifar10$"):
        create_datasets({"dataset": "CIFAR10", "data_dir": str(tmp_path / "cifar")})
    with pytest.raises(FileNotFoundError, match=r"name other ones with --val-split$"):  # a folder has nothing to hint
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})


def test_image_folder_needs_data_dir():
    with pytest.raises(ValueError, match="--data-dir"):
        create_datasets({"dataset": "folder"})


class _FakeCifar(Dataset):
    calls: list[dict] = []
    classes = ["airplane", "automobile"]

    def __init__(self, root, train, download, **kwargs):
        type(self).calls.append(dict(root=root, train=train, download=download, **kwargs))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return Image.new("RGB", (32, 32)), i % 2


@pytest.mark.parametrize("name", ["torch/cifar10", "torch/cifar100"])
def test_torch_cifar_is_created_through_timm_with_download(monkeypatch, tmp_path, name):
    import timm.data.dataset_factory as factory
    import torchvision.datasets

    def no_network(self, *args, **kwargs):
        raise AssertionError("the test reached torchvision's download")

    for cls in (torchvision.datasets.CIFAR10, torchvision.datasets.CIFAR100):
        monkeypatch.setattr(cls, "download", no_network)
    _FakeCifar.calls = []
    monkeypatch.setitem(factory._TORCH_BASIC_DS, name.split("/")[1], _FakeCifar)
    splits = create_datasets({"dataset": name, "data_dir": str(tmp_path), "dataset_download": True})
    assert [(c["train"], c["download"], c["root"]) for c in _FakeCifar.calls] == [
        (True, True, str(tmp_path)),
        (False, True, str(tmp_path)),
    ]
    assert splits.label_names == ["airplane", "automobile"]


def test_torch_dataset_needs_data_dir():
    with pytest.raises(ValueError, match="--data-dir is required"):
        create_datasets({"dataset": "torch/cifar10", "dataset_download": True})


def test_missing_torch_dataset_suggests_download(monkeypatch, tmp_path):
    def missing(*args, **kwargs):
        raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    monkeypatch.setattr(data_mod, "create_dataset", missing)
    with pytest.raises(RuntimeError, match="--dataset-download"):
        create_datasets({"dataset": "torch/cifar10", "data_dir": str(tmp_path)})


@pytest.mark.parametrize("name", [None, "folder", "torch/cifar10"])
def test_missing_data_dir_is_named(tmp_path, name):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(FileNotFoundError, match=f"data dir '{missing}' does not exist; pass --data-dir"):
        create_datasets({"dataset": name, "data_dir": str(missing)})


def test_failed_download_says_so_in_one_line(monkeypatch, tmp_path):
    from urllib.error import URLError

    import torchvision.datasets

    def offline(self, *args, **kwargs):
        os.makedirs(self.root, exist_ok=True)  # as torchvision's download_url does before it connects
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(RuntimeError, match="Downloading 'torch/cifar10' into .* failed .*name resolution") as e:
        create_datasets({"dataset": "torch/cifar10", "data_dir": str(tmp_path), "dataset_download": True})
    assert "cifar-10-batches-py" in str(e.value) and e.value.__suppress_context__ and "\n" not in str(e.value)
    assert tmp_path.is_dir()  # a folder that was there stays
    # one that the failed download made is not left behind, empty
    with pytest.raises(RuntimeError, match="Downloading 'torch/cifar10' into .* failed"):
        create_datasets({"dataset": "torch/cifar10", "data_dir": str(tmp_path / "new"), "dataset_download": True})
    assert not (tmp_path / "new").exists()


def test_hfds_goes_through_timm_create_dataset(monkeypatch):
    calls = []

    def fake_create_dataset(name, **kwargs):
        calls.append((name, kwargs["split"], kwargs["is_training"], kwargs["root"]))
        return FakeHfds(["zero", "one"], 3)

    monkeypatch.setattr(data_mod, "create_dataset", fake_create_dataset)
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed: said so, before timm's reader fails
    with pytest.raises(ValueError, match=r"needs the 'datasets' package \(pip install datasets\)"):
        create_datasets({"dataset": "hfds/user/set", "data_dir": "/cache"})
    assert not calls
    monkeypatch.setitem(sys.modules, "datasets", types.ModuleType("datasets"))
    splits = create_datasets({"dataset": "hfds/user/set", "data_dir": "/cache", "val_split": "test"})
    assert calls == [("hfds/user/set", "train", True, "/cache"), ("hfds/user/set", "test", False, "/cache")]
    assert splits.label_names == ["zero", "one"]


def test_hfds_columns_reach_timm_and_other_datasets_refuse_them(monkeypatch, tmp_path):
    """--input-key / --target-key name the image and label columns of an hfds/ dataset (uoft-cs/cifar10 calls them
    'img' and 'label'); unset, timm's defaults apply; for any other dataset they would be ignored, so they are
    refused."""
    seen = []
    monkeypatch.setattr(
        data_mod, "create_dataset", lambda name, **kwargs: seen.append(kwargs) or FakeHfds(["zero", "one"], 3)
    )
    monkeypatch.setitem(sys.modules, "datasets", types.ModuleType("datasets"))
    config = {"dataset": "hfds/uoft-cs/cifar100", "data_dir": "/cache", "input_key": "img", "target_key": "fine_label"}
    create_datasets(config)
    assert [(k["input_key"], k["target_key"]) for k in seen] == [("img", "fine_label")] * 2
    seen.clear()
    create_datasets({"dataset": "hfds/user/set", "data_dir": "/cache"})
    assert len(seen) == 2 and not any({"input_key", "target_key"} & set(k) for k in seen)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for config, flags, what in (
        (
            {"dataset": "torch/cifar10", "data_dir": str(tmp_path), "input_key": "img"},
            "--input-key img",
            "torch/cifar10",
        ),
        ({"target_key": "y"}, "--target-key y", "digits"),
        (
            {"data_dir": str(tmp_path), "input_key": "a", "target_key": "b"},
            "--input-key a and --target-key b",
            "an Image",
        ),
    ):
        with pytest.raises(ValueError, match=rf"^{flags} name\(s\) columns of a Hugging Face dataset .*; {what}"):
            create_datasets(config)


def test_sixteen_bit_grey_is_rounded_to_eight_bits():
    """16-bit grey to 8 bits is round(v * 255 / 65535) (v / 257 is never exactly half-way): 255 -> 1 and
    65280 -> 254, which floor division (by 256 or of v * 255 by 65535) gets wrong."""
    values = [0, 128, 129, 255, 383, 386, 32767, 32896, 65280, 65535]
    expected = [0, 0, 1, 1, 1, 2, 127, 128, 254, 255]  # by hand: 0.50 -> 1 (129), 1.49 -> 1 (383), 1.50 -> 2 (386)
    assert expected == [round(v * 255 / 65535) for v in values]
    img = Image.fromarray(np.array([values], dtype=np.uint16))
    assert img.mode == "I;16"
    assert np.asarray(convert_image(img, "L")).ravel().tolist() == expected
    rgb = np.asarray(convert_image(img, "RGB"))
    assert all(rgb[0, :, c].tolist() == expected for c in range(3))


def test_negative_32_bit_values_are_refused_not_wrapped():
    """A 32-bit 'I' image with -1 (outside 0..255) is refused for an 8-bit mode; -1 must not wrap to 255."""
    img = Image.fromarray(np.array([[-1, 0, 200]], dtype=np.int32), "I")
    for mode in ("L", "RGB"):
        with pytest.raises(ValueError, match=r"a I \(32-bit\) image with values -1..200, which mode \w+ cannot hold"):
            convert_image(img, mode)
    ok = Image.fromarray(np.array([[0, 255, 200]], dtype=np.int32), "I")  # within 0..255: converted as it is
    assert np.asarray(convert_image(ok, "L")).tolist() == [[0, 255, 200]]


def test_num_samples_of_a_class_sorted_folder_keep_every_class(tmp_path):
    """An image folder lists its samples class by class: the evenly spaced subset runs from the first sample to the
    last, so 3 of 3 classes x 4 images are one of each class (the first 3 would all be class 0)."""
    _write_split(tmp_path, "train", ("cat", "dog", "emu"), n=4)
    _write_split(tmp_path, "val", ("cat", "dog", "emu"), n=4)
    cfg = {"dataset": "folder", "data_dir": str(tmp_path), "train_num_samples": 3, "val_num_samples": 3}
    splits = create_datasets(cfg)
    for ds in (splits.train, splits.val):
        assert len(ds) == 3 and [ds[i][1] for i in range(3)] == [0, 1, 2]
        assert ds.indices == [0, 6, 11]  # linspace(0, 11, 3) rounded: first, middle, last


def test_float_images_are_rounded_to_eight_bits_and_wide_ranges_are_inclusive():
    """A float image goes to 8 bits rounded (2.6 -> 3, not truncated to 2); the ranges a wide mode holds are its
    whole range, both ends included (I;16: 0..65535, I: from -2**31), and one value past an end is refused."""
    floats = Image.fromarray(np.array([[0.4, 2.6, 254.7]], dtype=np.float32), "F")
    assert np.asarray(convert_image(floats, "L")).tolist() == [[0, 3, 255]]
    top = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), "I")
    assert np.asarray(convert_image(top, "I;16")).tolist() == [[0, 65535]]
    with pytest.raises(ValueError, match=r"values 0..65536, which mode I;16 cannot hold exactly \(whole values in 0"):
        convert_image(Image.fromarray(np.array([[0, 65536]], dtype=np.int32), "I"), "I;16")
    lowest = Image.fromarray(np.array([[-(2.0**31), 5.0]], dtype=np.float32), "F")  # both exact in float32
    assert np.asarray(convert_image(lowest, "I")).tolist() == [[-(2**31), 5]]
    # one past I's top: float32 cannot hold 2**31 - 1 (it rounds to 2**31), so the bound is compared in float64
    with pytest.raises(ValueError, match=r"values 2.14748e\+09..2.14748e\+09, which mode I cannot hold exactly"):
        convert_image(Image.fromarray(np.array([[2.0**31]], dtype=np.float32), "F"), "I")
    below = Image.fromarray(np.array([[2.0**31 - 128]], dtype=np.float32), "F")  # the largest float32 below 2**31
    assert np.asarray(convert_image(below, "I")).tolist() == [[2**31 - 128]]
    with pytest.raises(ValueError, match=r"which mode L cannot hold exactly \(values in 0..255\)"):
        convert_image(Image.fromarray(np.array([[256]], dtype=np.int32), "I"), "L")


def test_digits_pixels_aliases_and_transforms():
    """The 8x8 digits (0..16) are scaled to 0..255, rounded, and upsampled bicubic; the split aliases name the same
    rows; the transform and target transform are applied."""
    from sklearn.datasets import load_digits

    first = load_digits().images[0]  # sample 0 is the first of class 0: a training row
    grey = Image.fromarray((first * 255 / 16).round().astype(np.uint8), "L")
    expected = np.asarray(grey.resize((32, 32), Image.Resampling.BICUBIC))
    train = DigitsDataset("training", img_mode="L", transform=np.asarray, target_transform=lambda t: t + 100)
    img, target = train[0]
    assert isinstance(img, np.ndarray) and np.array_equal(img, expected) and target == 100 and len(train) == 1442
    val = DigitsDataset("validation")
    for alias in ("val", "test", "eval", "evaluation"):
        assert DigitsDataset(alias).targets == val.targets
    swapped = create_datasets({"train_split": "validation", "val_split": "train"})
    assert len(swapped.train) == 355 and len(swapped.val) == 1442


def test_digits_refuses_folder_options_and_creates_only_the_splits_asked_for(tmp_path):
    for key, value in (("data_dir", str(tmp_path)), ("class_map", "map.txt"), ("dataset_download", True)):
        flag = "--" + key.replace("_", "-")
        with pytest.raises(ValueError, match=f"^{flag}: the dataset is the embedded digits"):
            create_datasets({"dataset": "digits", key: value})
    only_val = create_datasets({"dataset": "DIGITS"}, train=False)  # names are case-insensitive
    assert only_val.train is None and len(only_val.val) == 355
    only_train = create_datasets({}, val=False)
    assert only_train.val is None and len(only_train.train) == 1442
    assert len(create_datasets({"train_num_samples": 0}, val=False).train) == 1442  # 0: all of them, as None


class _OneStream:
    """A transform drawing from one RNG only, so each stream's seeding is seen on its own."""

    def __init__(self, draw):
        self.draw = draw

    def __call__(self, img):
        return self.draw()


_STREAMS = {
    "torch": lambda: torch.rand(()).item(),
    "random": random.random,
    "numpy": lambda: float(np.random.rand()),
}


@pytest.mark.parametrize("stream", sorted(_STREAMS))
def test_each_rng_stream_is_seeded_per_sample(digits, stream):
    """Each RNG (torch, random, numpy) is seeded from (seed, epoch, index): a sample's draw does not depend on the
    global state before it, and neighbouring samples draw differently."""
    ds = TransformDataset(digits.val, _OneStream(_STREAMS[stream]), seed=7)
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        np.random.seed(global_seed)
        draws.append((ds[3][0], ds[4][0]))
    assert draws[0] == draws[1] and draws[0][0] != draws[0][1]


def test_seeded_rng_restores_the_global_states_after_an_error():
    torch.manual_seed(0)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    with pytest.raises(RuntimeError, match="augmentation failed"):
        with data_mod.seeded_rng(123):
            raise RuntimeError("augmentation failed")
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])


def test_sample_seeds_are_distinct_over_seeds_epochs_and_indices():
    """(seed, epoch, index) triples do not share a seed: epoch e's sample i must not replay epoch e - 1's i + 1."""
    seeds = [data_mod._sample_seed(s, e, i) for s in range(3) for e in range(4) for i in range(100)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)


class _Tensors(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return torch.full((2,), float(i)), i


class _Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([])


def test_transform_dataset_length_refusals_and_non_image_samples(digits):
    assert len(TransformDataset(digits.val, None)) == 355
    # not an image: passed as it is (no mode to convert)
    x, target = TransformDataset(_Tensors(), None, img_mode="L")[4]
    assert torch.equal(x, torch.full((2,), 4.0)) and target == 4
    with pytest.raises(TypeError, match="Only map-style datasets"):
        TransformDataset(_Stream(), None)


def test_epoch_shuffle_orders_differ_for_every_seed_and_epoch():
    """seed * 1_000_003 + epoch: (seed 0, epoch 1) and (seed 1, epoch 0) are different runs and shuffle differently."""
    orders = set()
    for seed in range(4):
        for epoch in range(4):
            s = EpochShuffleSampler(20, seed=seed)
            s.set_epoch(epoch)
            orders.add(tuple(s))
    assert len(orders) == 16
    default = EpochShuffleSampler(20)
    assert len(default) == 20 and list(default) == list(EpochShuffleSampler(20, seed=0))


class _Named(Dataset):
    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return Image.new("L", (2, 2)), i


def test_label_names_of_unwraps_and_orders_by_label(digits):
    nested = torch.utils.data.Subset(TransformDataset(torch.utils.data.Subset(digits.val, [0, 1]), None), [1])
    assert label_names_of(nested) == [str(i) for i in range(10)]
    assert label_names_of(_Named(classes=[0, 1])) == ["0", "1"]
    assert label_names_of(_Named(class_to_idx={"b": 1, "a": 0})) == ["a", "b"]  # torchvision's ImageFolder
    reader = SimpleNamespace(class_to_idx={"two": 2, "zero": 0, "one": 1})
    assert label_names_of(_Named(reader=reader)) == ["zero", "one", "two"]
    assert label_names_of(_Named()) is None


def test_what_timm_ignores_for_torch_datasets_is_refused(tmp_path):
    """timm passes no class map to torchvision, and reads any split name of a train/test dataset other than a train
    synonym as the test split: a class map, or a split typo (which evaluated, or trained on, the test images), is
    refused naming the option; the real names still work."""
    root = write_tiny_mnist(tmp_path / "mnist", "validation", range(0, 6), range(6, 10))
    base = {"dataset": "torch/mnist", "data_dir": str(root)}
    with pytest.raises(ValueError, match="--class-map missing.txt: torch/mnist has its own labels"):
        create_datasets({**base, "class_map": "missing.txt"})
    with pytest.raises(ValueError, match="--train-split 'trian': torch/mnist has a train and a test split"):
        create_datasets({**base, "train_split": "trian"})
    with pytest.raises(ValueError, match="--val-split 'tset': torch/mnist has a train and a test split"):
        create_datasets({**base, "val_split": "tset"})
    with pytest.raises(ValueError, match="--split 'trian': "):  # evaluation alone: zerosnet-validate's option
        create_datasets({**base, "val_split": "trian"}, train=False)
    splits = create_datasets({**base, "train_split": "training", "val_split": "test"})
    assert (len(splits.train), len(splits.val)) == (6, 4)
    assert len(create_datasets({**base, "val_split": "train"}, train=False).val) == 6  # a train split evaluated


def test_dataset_without_class_names_is_refused(monkeypatch):
    monkeypatch.setattr(data_mod, "create_dataset", lambda name, **kwargs: _Named())
    with pytest.raises(ValueError, match="Could not determine the class names of dataset 'torch/mnist'"):
        create_datasets({"dataset": "torch/mnist", "data_dir": "/"})


def test_timm_dataset_gets_seed_and_download_as_given(monkeypatch, tmp_path):
    """The seed (0 too, not replaced by the default 42) and download flag reach timm; a torch dataset may be
    downloaded into a data dir that does not exist yet; without --dataset-download a network error is not reworded."""
    from urllib.error import URLError

    calls = []

    def fake_create_dataset(name, **kwargs):
        calls.append((kwargs["seed"], kwargs["download"], kwargs["root"]))
        return _Named(classes=["a", "b"])

    monkeypatch.setattr(data_mod, "create_dataset", fake_create_dataset)
    new_dir = str(tmp_path / "new")
    create_datasets({"dataset": "torch/cifar10", "data_dir": new_dir, "dataset_download": True, "seed": 0}, val=False)
    create_datasets({"dataset": "torch/cifar10", "data_dir": str(tmp_path)}, val=False)
    assert calls == [(0, True, new_dir), (42, False, str(tmp_path))]

    def offline(name, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(data_mod, "create_dataset", offline)
    with pytest.raises(URLError):
        create_datasets({"dataset": "torch/cifar10", "data_dir": str(tmp_path)})


def test_dataset_names_without_data_dir_are_refused_or_expanded(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=r"--dataset 'cifar10' is not a dataset name .* e.g. 'torch/cifar10'"):
        create_datasets({"dataset": "cifar10"})
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    monkeypatch.setenv("HOME", str(tmp_path.parent))
    for alias in ("ImageFolder", "image_folder"):
        assert data_mod.dataset_name({"dataset": alias}) == ""  # the ImageFolder, not a timm name
        with pytest.raises(ValueError, match="An ImageFolder dataset needs --data-dir"):
            create_datasets({"dataset": alias})
        splits = create_datasets({"dataset": alias, "data_dir": f"~/{tmp_path.name}"})
        assert splits.label_names == ["cat", "dog"] and len(splits.val) == 4


def test_image_folder_checks_only_the_splits_asked_for(tmp_path):
    """Training without validation needs no val/ folder."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    splits = create_datasets({"dataset": "folder", "data_dir": str(tmp_path)}, val=False)
    assert splits.val is None and len(splits.train) == 4


def test_class_map_as_dict_pickle_or_loose_text(tmp_path):
    """A dict is used as it is and wins over class_names; a .pkl holds a pickled dict; a .TXT with Windows line
    ends and stray spaces reads as the plain names; an empty file is refused."""
    import pickle

    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    given = create_datasets({**cfg, "class_map": {"dog": 0, "cat": 1}, "class_names": ["cat", "dog"]})
    assert given.label_names == ["dog", "cat"] and [given.val[i][1] for i in range(4)] == [1, 1, 0, 0]
    (tmp_path / "map.pkl").write_bytes(pickle.dumps({"dog": 0, "cat": 1}))
    assert create_datasets({**cfg, "class_map": "map.pkl"}).label_names == ["dog", "cat"]
    (tmp_path / "MAP.TXT").write_bytes(b"dog \r\n cat\r\n")
    assert create_datasets({**cfg, "class_map": "MAP.TXT"}).label_names == ["dog", "cat"]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt: the file names no class"):
        create_datasets({**cfg, "class_map": "empty.txt"})


def test_a_missing_timm_dataset_is_reported_as_unavailable_only_without_download(monkeypatch, tmp_path):
    """Without --dataset-download, torchvision's 'not found ... download=True' says to pass the flag, as a
    DatasetUnavailableError (which the entry points print as one line); with the flag given that advice would be
    wrong, so the error comes as it is. The image mode is handed to timm with the other options."""
    message = "Dataset not found or corrupted. You can use download=True to download it"
    modes = []

    def missing(name, **kwargs):
        modes.append(kwargs["input_img_mode"])
        raise RuntimeError(message)

    monkeypatch.setattr(data_mod, "create_dataset", missing)
    cfg = {"dataset": "torch/cifar10", "data_dir": str(tmp_path), "input_img_mode": "L"}
    with pytest.raises(data_mod.DatasetUnavailableError, match="pass --dataset-download to fetch it"):
        create_datasets(cfg)
    with pytest.raises(RuntimeError) as e:
        create_datasets({**cfg, "dataset_download": True})
    assert str(e.value) == message and not isinstance(e.value, data_mod.DatasetUnavailableError)
    assert modes == ["L", "L"]


def test_an_image_tar_or_a_file_as_data_dir_is_refused(tmp_path):
    """timm reads an image .tar as one split, and its class names live where label_names_of does not look: the
    error said to pass --class-map, which did not help. A file as --data-dir is refused, naming the layout."""
    src = tmp_path / "src"
    for c, value in (("cat", 10), ("dog", 200)):
        (src / c).mkdir(parents=True)
        Image.new("RGB", (6, 4), (value, 0, 0)).save(src / c / "0.png")
    with tarfile.open(tmp_path / "images.tar", "w") as tar:
        for c in ("cat", "dog"):
            tar.add(src / c, arcname=c)
    for train in (True, False):
        with pytest.raises(ValueError, match=r"images\.tar is a file: an ImageFolder dataset is a folder with train/"):
            create_datasets({"data_dir": str(tmp_path / "images.tar")}, train=train)


def test_a_split_folder_without_images_is_refused_in_one_line(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)  # class folders, no images (timm: RuntimeError)
    with pytest.raises(ValueError, match=r"train holds no images in class folders: an ImageFolder split is a folder"):
        create_datasets({"data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match=r"val holds no images in class folders"):
        create_datasets({"data_dir": str(tmp_path / "val")}, train=False)


def _break(path, keep=None):
    """Overwrite an image file with the first ``keep`` bytes of a noise image (it opens, and fails to decode), or
    with no image."""
    if keep:
        noise = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path, path.suffix[1:].replace("jpg", "jpeg"))
    path.write_bytes(path.read_bytes()[:keep] if keep else b"not an image at all")


def test_an_unreadable_image_in_evaluation_is_an_error_naming_it(tmp_path):
    """timm's dataset returned the next sample, with its label, for a file that does not open or decode: the
    neighbour was counted twice under 'Skipped sample'. Each such file is refused, naming it and what to do."""
    _write_split(tmp_path, "val", ("cat", "dog"), n=3)
    _break(tmp_path / "val" / "cat" / "cat1.png", keep=60)  # the header is whole: it opens, and fails to decode
    _break(tmp_path / "val" / "dog" / "dog0.png")  # no image: PIL's open fails (timm's dataset skipped it itself)
    (tmp_path / "val" / "dog" / "dog2.png").rename(tmp_path / "val" / "dog" / "dog2.jpg")
    _break(tmp_path / "val" / "dog" / "dog2.jpg", keep=-20)  # an RGB JPEG for an RGB model: no conversion decodes it
    for name in ("cat/cat1.png", "dog/dog2.jpg"):
        assert Image.open(tmp_path / "val" / name).size == (10, 12)  # they open: only decoding finds them broken
    splits = create_datasets({"data_dir": str(tmp_path / "val"), "class_names": ["cat", "dog"]}, train=False)
    files = [os.path.relpath(splits.val.filename(i, absolute=True), tmp_path) for i in range(len(splits.val))]
    assert files == [f"val/{c}/{c}{i}.png" for c in ("cat", "dog") for i in range(3)][:5] + ["val/dog/dog2.jpg"]
    for i, name in enumerate(files):
        if name in ("val/cat/cat1.png", "val/dog/dog0.png", "val/dog/dog2.jpg"):
            with pytest.raises(ValueError) as e:
                splits.val[i]
            message = str(e.value)
            assert message.startswith(f"{tmp_path / name} cannot be read as an image (") and "\n" not in message
            assert message.endswith("; remove it from the folder or replace it with a readable copy")
            assert message.count(name) == 1  # PIL's 'cannot identify image file PATH' does not name it twice
        else:
            img, label = splits.val[i]
            assert label == ("cat", "dog").index(name.split("/")[1]) and img.getpixel((0, 0))[0] == 10 * int(name[-5])


def test_training_stands_in_an_image_of_the_same_class_for_an_unreadable_one(tmp_path, caplog):
    """Training goes on past an unreadable file, as timm's train.py does, but with an image of the same class (the
    next one, wrapping around) and its label, not the next sample's; the warning names both files, once."""
    _write_split(tmp_path, "train", ("cat", "dog"), n=3)
    _write_split(tmp_path, "val", ("cat", "dog"))
    _break(tmp_path / "train" / "cat" / "cat2.png", keep=60)  # the last cat: timm's next sample was dog0.png
    splits = create_datasets({"data_dir": str(tmp_path)})
    with caplog.at_level("WARNING"):
        for _ in range(2):
            img, label = splits.train[2]
            assert label == 0 and img.getpixel((0, 0)) == (0, 0, 0)  # cat0.png
    warnings = [r.getMessage() for r in caplog.records if r.name == "timm_zerosnet.data"]
    assert warnings == [
        f"{tmp_path}/train/cat/cat2.png cannot be read as an image (image file is truncated); training uses "
        f"{tmp_path}/train/cat/cat0.png, same class, in its place: remove the file from the folder or replace it "
        "with a readable copy"
    ]
    assert [splits.train[i][1] for i in range(6)] == [0, 0, 0, 1, 1, 1]


def test_a_run_of_unreadable_images_is_a_value_error_naming_them(tmp_path):
    """Ten unreadable files in a row were timm's 'RuntimeError: Failed to load 10 consecutive samples' traceback,
    naming none; it is a ValueError (a one-line usage error of the entry points) that names them."""
    _write_split(tmp_path, "train", ("cat", "dog"), n=12)
    _write_split(tmp_path, "val", ("cat", "dog"))
    for i in range(12):
        _break(tmp_path / "train" / "cat" / f"cat{i}.png")
    _break(tmp_path / "train" / "dog" / "dog0.png")
    _break(tmp_path / "train" / "dog" / "dog1.png", keep=60)
    _break(tmp_path / "train" / "dog" / "dog2.png")
    splits = create_datasets({"data_dir": str(tmp_path)})
    with pytest.raises(ValueError) as e:
        splits.train[0]
    cat = tmp_path / "train" / "cat"
    assert str(e.value) == (
        f"class 'cat': 10 images in a row cannot be read as images, so none stands in for the first: "
        f"{cat}/cat0.png (cannot identify image file), {cat}/cat1.png (cannot identify image file), "
        f"{cat}/cat2.png (cannot identify image file) and 7 more; remove them from the folder or replace them with "
        "readable copies"
    )
    assert splits.train[12][1] == 1  # dog3.png stands in for dog0.png, past two more unreadable dogs
    _write_split(tmp_path / "two", "train", ("emu",))
    _write_split(tmp_path / "two", "val", ("emu",))
    for i in range(2):
        _break(tmp_path / "two" / "train" / "emu" / f"emu{i}.png")
    with pytest.raises(ValueError, match=r"^class 'emu': 2 images in a row cannot be read .*emu1.png \(cannot"):
        create_datasets({"data_dir": str(tmp_path / "two")}).train[1]  # every image of the class: no endless loop


def test_an_image_refused_for_its_mode_names_its_file(tmp_path):
    """timm's reader hands PIL a file object, so the refusal of a 32-bit float image said 'an image'."""
    (tmp_path / "val" / "cat").mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 1000.5, dtype=np.float32), "F").save(tmp_path / "val" / "cat" / "f.png", "TIFF")
    splits = create_datasets({"data_dir": str(tmp_path / "val"), "class_names": ["cat"]}, train=False)
    path = re.escape(str(tmp_path / "val" / "cat" / "f.png"))  # a TIFF: timm reads .png, .jpg and .jpeg only
    with pytest.raises(ValueError, match=rf"^{path}: a F \(32-bit\) image with values 1000.5..1000.5, which mode RGB"):
        splits.val[0]
    with pytest.raises(ValueError, match=r"^x\.tif: a F \(32-bit\) image"):
        convert_image(Image.fromarray(np.full((4, 4), 1000.5, dtype=np.float32), "F"), "L", name="x.tif")


def test_a_sliced_image_folder_split_is_refused_naming_the_subset_option(tmp_path):
    """timm drops an ImageFolder split's [...] slice: 'val[:10]' evaluated the whole folder."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    slice_text = r"a \[\.\.\.\] slice takes part of a split of a Hugging Face \(hfds/\) dataset"
    with pytest.raises(ValueError, match=rf"^--train-split 'train\[:2\]': {slice_text}.* Pass --train-split 'train', "):
        create_datasets({**cfg, "train_split": "train[:2]"}, val=False)
    with pytest.raises(ValueError, match=r"^--val-split 'val\[50%:\]': .* and --val-num-samples N for an evenly"):
        create_datasets({**cfg, "val_split": "val[50%:]"})
    for data_dir in (tmp_path, tmp_path / "val"):  # zerosnet-validate: a root or the split folder itself
        with pytest.raises(ValueError, match=r"^--split 'val\[:10\]': .* Pass --split 'val', and --num-samples N "):
            create_datasets({"data_dir": str(data_dir), "val_split": "val[:10]"}, train=False)


def test_a_split_folder_with_classes_named_like_splits_is_read_as_it_is(tmp_path):
    """CIFAR-100 has a class 'train': its val folder given as --data-dir was taken for a dataset root and refused
    (no 'validation' split); a class 'val' was read as the split. A folder is a root only if a split-named
    sub-folder holds class folders; a root's typo is still refused."""
    _write_split(tmp_path, "val", ("bus", "train"))
    alone = create_datasets({"data_dir": str(tmp_path / "val"), "class_names": ["bus", "train"]}, train=False)
    assert len(alone.val) == 4 and [alone.val[i][1] for i in range(4)] == [0, 0, 1, 1]
    _write_split(tmp_path, "val", ("val",))
    names = ["bus", "train", "val"]
    alone = create_datasets({"data_dir": str(tmp_path / "val"), "class_names": names}, train=False)
    assert [alone.val[i][1] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(FileNotFoundError, match=r"no folder for the 'vall' split .*it holds val/\).*--split"):
        create_datasets({"data_dir": str(tmp_path), "val_split": "vall", "class_names": names}, train=False)
    root = create_datasets({"data_dir": str(tmp_path), "class_names": names}, train=False)
    assert len(root.val) == 6


@pytest.mark.parametrize("split_of_the_empty_class", ["train", "val"])
def test_an_empty_class_folder_is_refused_where_the_split_numbers_its_own_classes(tmp_path, split_of_the_empty_class):
    """timm numbers the classes it finds images of: an empty class folder was left out without a word, so training
    got a model of one class less (and evaluation alone labelled the classes after it one lower). A split that takes
    its labels from a class map (or from the train split) keeps the class, so there it is not an error."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    (tmp_path / split_of_the_empty_class / "bee").mkdir()
    (tmp_path / split_of_the_empty_class / "bee" / "notes.txt").write_text("no images here")
    (tmp_path / split_of_the_empty_class / ".ipynb_checkpoints").mkdir()  # hidden folders are no classes
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    training = split_of_the_empty_class == "train"
    with pytest.raises(ValueError, match=r"class folder\(s\) bee hold no images.*pass --class-map naming every class"):
        create_datasets(cfg, train=training)
    mapped = create_datasets({**cfg, "class_map": {"bee": 0, "cat": 1, "dog": 2}}, train=training)
    assert mapped.label_names == ["bee", "cat", "dog"]
    if not training:  # the val split reads the train split's classes: no class of its own is left out
        assert create_datasets(cfg).label_names == ["cat", "dog"]


@pytest.mark.parametrize("mode", ["rgb", "XYZ", ""])
def test_an_unknown_image_mode_is_refused_up_front(mode):
    """PIL refused it only at the first image (inside a data-loader worker) with a bare "image has wrong mode"."""
    match = rf"^--input-img-mode {re.escape(repr(mode))} is not a PIL image mode; pass one such as L"
    with pytest.raises(ValueError, match=match):
        create_datasets({"input_img_mode": mode})
    with pytest.raises(ValueError, match=match):
        DigitsDataset("validation", img_mode=mode)
    with pytest.raises(ValueError, match=match):
        TransformDataset([], None, img_mode=mode)


@pytest.mark.parametrize("count", [-5, 2.5, "10", True])
@pytest.mark.parametrize("option", ["train_num_samples", "val_num_samples"])
def test_a_sample_count_must_be_a_whole_number_of_at_least_zero(option, count):
    """-5 failed inside numpy ("Number of samples, -5, must be non-negative"), 2.5 and '10' with bare TypeErrors,
    and True was read as one sample."""
    flag = "--" + option.replace("_", "-")
    with pytest.raises(ValueError, match=rf"^{flag} {re.escape(repr(count))}: a sample count is a whole number >= 0"):
        create_datasets({option: count})
    assert len(getattr(create_datasets({option: np.int64(3)}), option.split("_")[0])) == 3  # a NumPy integer works


def test_a_class_map_of_the_wrong_type_or_an_unreadable_file_is_named(tmp_path):
    """A list of names failed inside os.stat, a broken .pkl with a bare UnpicklingError, a .txt that is not UTF-8
    with a UnicodeDecodeError; none said which option was wrong."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    for given in (["cat", "dog"], ("cat", "dog"), 5):
        with pytest.raises(TypeError, match=r"a class map is a file .* or a dict \{class name: label\}, not a '"):
            create_datasets({**cfg, "class_map": given})
    (tmp_path / "map.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"--class-map map\.pkl: the file cannot be unpickled"):
        create_datasets({**cfg, "class_map": "map.pkl"})
    (tmp_path / "map.txt").write_bytes("cat\nchien\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"--class-map map\.txt: the file is not UTF-8 text .*save it as UTF-8"):
        create_datasets({**cfg, "class_map": "map.txt"})
    (tmp_path / "map.txt").write_text("dog\ncat\n", encoding="utf-8")
    assert create_datasets({**cfg, "class_map": tmp_path / "map.txt"}).label_names == ["dog", "cat"]  # a Path works


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_samples": -1}, ValueError, r"num_samples=-1: pass the dataset's size, a whole number >= 0"),
        ({"num_samples": 2.5}, ValueError, r"num_samples=2.5: pass the dataset's size"),
        ({"num_samples": True}, ValueError, r"num_samples=True: pass the dataset's size"),
        ({"num_samples": 5, "seed": None}, TypeError, r"seed=None: .* must be a whole number"),
        ({"num_samples": 5, "seed": 1.5}, TypeError, r"seed=1.5: .* must be a whole number"),
    ],
)
def test_epoch_shuffle_sampler_refuses_a_bad_size_or_seed_up_front(kwargs, error, match):
    """A negative or float size, or seed=None, failed only at the first epoch with a bare torch error."""
    with pytest.raises(error, match=match):
        EpochShuffleSampler(**kwargs)
    numpy_sized = EpochShuffleSampler(np.int64(7), seed=np.int64(3))
    assert len(numpy_sized) == 7 and list(numpy_sized) == list(EpochShuffleSampler(7, seed=3))
    assert list(EpochShuffleSampler(0)) == []


def test_epoch_shuffle_sampler_takes_any_whole_seed():
    """seed * 1_000_003 + epoch past 64 bits overflowed torch's manual_seed at the first epoch; a negative seed keeps
    the order it had (torch wraps it modulo 2**64)."""
    huge = EpochShuffleSampler(30, seed=2**62)
    huge.set_epoch(3)
    assert sorted(huge) == list(range(30))
    expected = torch.randperm(30, generator=torch.Generator().manual_seed(-3 * 1_000_003 + 2)).tolist()
    negative = EpochShuffleSampler(30, seed=-3)
    negative.set_epoch(2)
    assert list(negative) == expected


def test_an_empty_class_map_is_refused_not_read_as_none(tmp_path):
    """class_map={} is falsy: it was read as no class map and the classes were numbered from the folders."""
    _write_folder(tmp_path)
    with pytest.raises(ValueError, match=r"--class-map \{\} is empty, so it names no class; pass a dict"):
        create_datasets({"data_dir": str(tmp_path), "class_map": {}})
    with pytest.raises(ValueError, match=r"the class map is empty"):
        data_mod.read_class_map({})
    assert create_datasets({"data_dir": str(tmp_path), "class_map": ""}).label_names == ["cat", "dog", "emu"]


@pytest.mark.parametrize(
    "names, error, match",
    [
        (["cat", "dog", "cat", "emu"], ValueError, r"class_names name class\(es\) 'cat' more than once"),
        ("cde", TypeError, r"class_names 'cde': the class names are a list in label order"),
        (3, TypeError, r"class_names 3: the class names are a list in label order .*, not a int"),
    ],
)
def test_class_names_must_be_a_list_of_distinct_names(tmp_path, names, error, match):
    """A repeated name kept only its last label (labels past the number of classes); a string was split into its
    characters."""
    _write_folder(tmp_path)
    with pytest.raises(error, match=match):
        create_datasets({"data_dir": str(tmp_path), "class_names": names}, train=False)
    given = create_datasets({"data_dir": str(tmp_path), "class_names": ("emu", "dog", "cat")}, train=False)
    assert given.label_names == ["emu", "dog", "cat"]


def test_a_dataset_name_that_is_no_string_is_refused():
    """dataset=5 failed with "'int' object has no attribute 'lower'"."""
    with pytest.raises(TypeError, match=r"--dataset 5: a dataset is named by a string, e.g. 'digits'"):
        create_datasets({"dataset": 5})


def test_a_file_as_the_data_dir_of_a_torch_dataset_is_named_not_sent_to_download(tmp_path):
    """The advice was "pass --dataset-download", which cannot download into a file either."""
    path = tmp_path / "cifar.tar.gz"
    path.write_bytes(b"not a folder")
    for download in (False, True):
        with pytest.raises(ValueError, match=r"cifar\.tar\.gz is a file; torch/cifar10 is read from .* a folder"):
            create_datasets({"dataset": "torch/cifar10", "data_dir": str(path), "dataset_download": download})


def test_asking_for_no_split_is_refused_naming_the_flags():
    """train=False, val=False said "pass --class-map", which did not help."""
    with pytest.raises(ValueError, match=r"asked for no split \(train=False, val=False\); pass train=True"):
        create_datasets({}, train=False, val=False)


def test_a_name_with_a_prefix_timm_does_not_know_is_refused(tmp_path):
    """timm reads 'foo/bar' as a folder: it was handed to timm without the split checks, so with only train/ under
    --data-dir the validation set was the whole root (the training images)."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    known = r"is no dataset prefix timm knows \(torch/, hfds/, hfids/, tfds/, wds/\)"
    for train in (True, False):
        with pytest.raises(
            ValueError, match=rf"^--dataset 'Foo/bar': 'foo/' {known}.* --dataset folder --data-dir DIR"
        ):
            create_datasets({"dataset": "Foo/bar", "data_dir": str(tmp_path)}, train=train)
    with pytest.raises(ValueError, match=rf"'/' {known}.*pass --dataset folder --data-dir {tmp_path} \(a folder"):
        create_datasets({"dataset": str(tmp_path)})  # a path given as the name
    # no folder:PATH syntax: the path failed inside timm (a TypeError on os.stat(None)) or was silently ignored
    for name, data_dir in (("folder:/tmp/nonexist", None), ("folder:elsewhere", str(tmp_path))):
        with pytest.raises(ValueError, match=rf"^--dataset '{name}': a folder is not named in --dataset; pass "):
            create_datasets({"dataset": name, "data_dir": data_dir})
    with pytest.raises(ValueError, match=r"pass --dataset folder --data-dir /tmp/nonexist \(a folder with train/"):
        create_datasets({"dataset": "folder:/tmp/nonexist"})


@pytest.mark.parametrize("installed", [False, True])
@pytest.mark.parametrize(
    "name, advice",
    [
        ("tfds/mnist", r"is a TensorFlow Datasets dataset, .* pass --dataset torch/mnist, an ImageFolder"),
        ("wds/shards", r"is a WebDataset, .* only \(each image's augmentation is seeded by its index\): pass an "),
        ("hfids/user/set", r"is a streamed Hugging Face dataset, .* pass --dataset hfds/user/set, an ImageFolder"),
    ],
)
def test_streamed_datasets_are_refused_in_one_line_with_or_without_their_package(
    monkeypatch, tmp_path, name, advice, installed
):
    """tfds/ failed with ModuleNotFoundError (tensorflow), wds/ with "Please install webdataset 0.2.x", both as
    tracebacks; with the package installed timm returns an iterable dataset, which this tool cannot read either."""
    for module in ("tensorflow", "tensorflow_datasets", "webdataset", "datasets"):
        monkeypatch.setitem(sys.modules, module, types.ModuleType(module) if installed else None)

    def reached_timm(*args, **kwargs):
        raise AssertionError("the name reached timm's create_dataset")

    monkeypatch.setattr(data_mod, "create_dataset", reached_timm)
    for data_dir in (None, str(tmp_path)):
        with pytest.raises(ValueError, match=rf"^--dataset '{name}' {advice}"):
            create_datasets({"dataset": name, "data_dir": data_dir, "dataset_download": True})


def test_a_torch_name_torchvision_lacks_is_refused():
    """timm failed an assert ("Unknown torchvision dataset foo"), a traceback."""
    with pytest.raises(ValueError, match=r"^--dataset 'torch/foo': timm's torch/ datasets are cifar10, cifar100, "):
        create_datasets({"dataset": "torch/foo", "data_dir": "/"})


def test_missing_imagenet_asks_for_its_archives_not_for_a_download(tmp_path):
    """torchvision cannot download ImageNet, yet the advice was "pass --dataset-download", which timm then dropped
    without a word (and torchvision's error came as a traceback)."""
    with pytest.raises(data_mod.DatasetUnavailableError) as e:
        create_datasets({"dataset": "torch/imagenet", "data_dir": str(tmp_path)})  # reads no network: no download
    assert "--dataset-download" not in str(e.value) and "\n" not in str(e.value)
    assert re.match(
        rf"'torch/imagenet' was not found under '{tmp_path}', and torchvision cannot download ImageNet: place "
        r"ILSVRC2012_devkit_t12\.tar\.gz, ILSVRC2012_img_train\.tar and ILSVRC2012_img_val\.tar there \(from image-net",
        str(e.value),
    )
    with pytest.raises(data_mod.DatasetUnavailableError, match=r"place ILSVRC2012_devkit_t12\.tar\.gz and .*_val\.tar"):
        create_datasets({"dataset": "torch/imagenet", "data_dir": str(tmp_path)}, train=False)
    archives = r"ILSVRC2012_devkit_t12\.tar\.gz, ILSVRC2012_img_train\.tar and ILSVRC2012_img_val\.tar"
    with pytest.raises(
        ValueError, match=rf"^--dataset-download: torchvision cannot download ImageNet .*place {archives}"
    ):
        create_datasets({"dataset": "torch/imagenet", "data_dir": str(tmp_path), "dataset_download": True})
    with pytest.raises(
        FileNotFoundError, match=rf"cannot download ImageNet: pass --data-dir the folder that holds {archives}"
    ):
        create_datasets({"dataset": "torch/imagenet", "data_dir": str(tmp_path / "none")})
    with pytest.raises(
        ValueError, match=r"--data-dir is required for 'torch/imagenet': .* \(torchvision's ImageNet arch"
    ):
        create_datasets({"dataset": "torch/imagenet"})


@pytest.mark.parametrize("name", ["torch/folder", "torch/image_folder", "TORCH/Image_Folder"])
def test_timms_torch_folder_names_are_an_image_folder_with_its_checks(tmp_path, name):
    """torchvision's ImageFolder behind timm's torch/folder numbered a val split's classes by its own folders (the
    val images of 'emu' were scored as 'dog') and read the whole root for a missing split."""
    _write_split(tmp_path, "train", ("cat", "dog", "emu"))
    with pytest.raises(FileNotFoundError, match="no folder for the 'validation' split"):
        create_datasets({"dataset": name, "data_dir": str(tmp_path)})
    _write_split(tmp_path, "val", ("cat", "emu"))
    splits = create_datasets({"dataset": name, "data_dir": str(tmp_path)})
    assert splits.label_names == ["cat", "dog", "emu"] and splits.val_split == "val"
    assert sorted({splits.val[i][1] for i in range(len(splits.val))}) == [0, 2]
    assert data_mod.dataset_name({"dataset": name}) == ""  # recorded as the ImageFolder it is
    with pytest.raises(ValueError, match="is an ImageFolder, read as it is: leave --dataset-download out"):
        create_datasets({"dataset": name, "data_dir": str(tmp_path), "dataset_download": True})


def _write_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (10, 12), (20 * i, 0, 0)).save(folder / name)


@pytest.mark.parametrize("split", ["train", "val"])
def test_class_folders_of_one_name_in_different_places_are_refused(tmp_path, split):
    """timm labels an image by the folder that holds it: cat/2019 and dog/2019 became one class '2019'."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    cfg = {"dataset": "folder", "data_dir": str(tmp_path)}
    extra = tmp_path / split / "cat" / "extra"  # a nested folder of a name of its own: labelled as timm labels it
    _write_images(extra, ["0.png"])
    assert "extra" in (create_datasets(cfg) if split == "train" else create_datasets(cfg, train=False)).label_names
    for animal in ("cat", "dog"):
        _write_images(tmp_path / split / animal / "2019", ["0.png", "1.png"])
    message = rf"{split}: an image's class is the name of the folder that holds it, .* so cat/2019/ and dog/2019/ "
    message += r"would be one class '2019'; give every class folder its own name"
    with pytest.raises(ValueError, match=message):
        create_datasets(cfg)
    with pytest.raises(ValueError, match=message):  # with a class map naming the shared name too
        create_datasets({**cfg, "class_map": {"cat": 0, "dog": 1, "extra": 2, "2019": 3}})


def test_an_image_directly_in_the_train_split_is_refused(tmp_path):
    """It became a class named '' (label 0), which shifted every label and added a model output."""
    _write_split(tmp_path, "train", ("cat", "dog"))
    _write_split(tmp_path, "val", ("cat", "dog"))
    _write_images(tmp_path / "train", ["stray.png"])
    with pytest.raises(ValueError, match=r"train holds images directly, outside class folders: .*move them into"):
        create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})


def test_images_of_every_suffix_pil_reads_are_read_in_any_case(tmp_path):
    """timm's reader took .png, .jpg and .jpeg only: two thirds of a folder of .png, .webp and .bmp images were
    dropped without a word, and a folder of .tif images was said to hold no images."""
    suffixes = [".webp", ".BMP", ".tif", ".tiff", ".ppm", ".pgm", ".gif", ".JPG", ".jpeg", ".png"]
    _write_images(tmp_path / "train" / "cat", [f"{i}{s}" for i, s in enumerate(suffixes)])
    _write_images(tmp_path / "train" / "dog", ["0.tif", "1.webp"])
    (tmp_path / "train" / "dog" / "notes.txt").write_text("no image")  # not read
    _write_images(tmp_path / "val" / "cat", ["0.tif"])
    _write_images(tmp_path / "val" / "dog", ["0.TIFF"])
    splits = create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})
    assert (len(splits.train), len(splits.val)) == (12, 2)
    names = sorted(os.path.basename(p) for p, _ in splits.train.reader.samples)
    assert names == sorted([f"{i}{s}" for i, s in enumerate(suffixes)] + ["0.tif", "1.webp"])
    assert [splits.train[i][0].size for i in range(len(splits.train))] == [(10, 12)] * 12  # each one decodes
    assert [splits.val[i][1] for i in range(2)] == [0, 1]
    # evaluation alone finds the split folders of .tif images too
    assert len(create_datasets({"data_dir": str(tmp_path), "class_names": ["cat", "dog"]}, train=False).val) == 2
    (tmp_path / "other" / "cat").mkdir(parents=True)
    (tmp_path / "other" / "cat" / "0.txt").write_text("no image")
    with pytest.raises(ValueError, match=r"other holds no images in class folders: .*files ending in .*\.webp"):
        create_datasets({"data_dir": str(tmp_path / "other")}, train=False)


@pytest.mark.parametrize("name", ["torch/mnist", "torch/fashion_mnist", "torch/qmnist"])
def test_a_failed_download_of_an_mnist_is_one_line_and_leaves_no_empty_folders(monkeypatch, tmp_path, name):
    """torchvision's MNIST family catches each mirror's URLError and raises its own RuntimeError over several lines
    (QMNIST lets the URLError through): a traceback, with the empty MNIST/raw/ it made left behind."""
    from urllib.error import URLError

    import torchvision.datasets.mnist

    def offline(url, download_root, *args, **kwargs):
        assert os.path.isdir(download_root)  # torchvision made its raw/ folder before it connects
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    for data_dir in (tmp_path / "new", tmp_path):
        with pytest.raises(data_mod.DatasetUnavailableError, match=rf"Downloading '{name}' into .* failed") as e:
            create_datasets(
                {"dataset": name, "data_dir": str(data_dir), "dataset_download": True, "input_img_mode": "L"}
            )
        assert "Name or service not known" in str(e.value) and "\n" not in str(e.value)
        assert e.value.__suppress_context__
    assert not (tmp_path / "new").exists()  # made by the download, left empty: removed
    assert tmp_path.is_dir() and os.listdir(tmp_path) == []  # there before: kept, without the empty folders


def test_an_image_over_pils_pixel_limit_is_named_or_stood_in_for(tmp_path, monkeypatch, caplog):
    """PIL's DecompressionBombError is no OSError: it stopped evaluation and training with a traceback that did not
    name the file."""
    _write_split(tmp_path, "train", ("cat", "dog"), n=3)
    _write_split(tmp_path, "val", ("cat", "dog"))
    for split in ("train", "val"):
        Image.new("RGB", (30, 30)).save(tmp_path / split / "cat" / "cat1.png")  # 900 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # refused over 600; the others have 120
    splits = create_datasets({"dataset": "folder", "data_dir": str(tmp_path)})
    big = str(tmp_path / "val" / "cat" / "cat1.png")
    message = rf"{re.escape(big)} cannot be read as an image \(Image size \(900 pixels\) exceeds limit .* resize it\)"
    with pytest.raises(ValueError, match=message):
        splits.val[1]
    img, target = splits.train[1]  # training: the next image of the class stands in, with a warning
    assert (img.size, target) == ((10, 12), 0) and "cat1.png cannot be read as an image" in caplog.text
