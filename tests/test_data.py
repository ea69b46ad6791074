"""The embedded digits dataset, seeded transforms, the epoch sampler and create_datasets' dispatch (never downloads)."""

from __future__ import annotations

import random
import re
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

import timm_zerosnet.data as data_mod
from timm_zerosnet.data import (
    DigitsDataset,
    EpochShuffleSampler,
    TransformDataset,
    convert_image,
    create_datasets,
    label_names_of,
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
    with pytest.raises(ValueError, match="'train' split .* class folders that --class-map .*short.txt lacks: dog;"):
        create_datasets({**cfg, "class_map": str(tmp_path / "short.txt")})
    assert len(create_datasets({**cfg, "class_map": str(tmp_path / "short.txt")}, train=False).val) == 4
    _write_split(tmp_path, "val", ("fox",))
    with pytest.raises(ValueError, match="'validation' split .* lacks: fox; .* add them to the class map"):
        create_datasets({**cfg, "class_map": str(tmp_path / "map.txt")})
    (tmp_path / "map.csv").write_text("cat,0\n")
    with pytest.raises(ValueError, match="a .txt file .* or a .pkl dict, not .csv"):
        create_datasets({**cfg, "class_map": str(tmp_path / "map.csv")})
    with pytest.raises(FileNotFoundError, match="--class-map nomap.txt: no such file"):
        create_datasets({**cfg, "class_map": "nomap.txt"})


def test_sixteen_bit_images_are_scaled_not_clipped_and_broken_files_skipped(tmp_path, caplog):
    """PIL's convert clipped a 16-bit grey PNG at 255 (a ramp became almost all white); it is scaled to 8 bits.
    A 32-bit image outside 0..255 is refused, not clipped; a file that does not decode is skipped, as timm does."""
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
    (tmp_path / "train" / "a" / "1.png").write_bytes((tmp_path / "train" / "a" / "0.png").read_bytes()[:60])
    splits = create_datasets({"data_dir": str(tmp_path), "input_img_mode": "L"})
    with caplog.at_level("WARNING"):
        assert np.asarray(splits.train[1][0]).max() == 255  # index 1 is broken: the next image (0.png) comes
    # it opens (the header is whole) and fails to decode: skipped here, not by timm's ImageDataset
    assert [r.name for r in caplog.records if "Skipped sample (index 1)" in r.message] == ["timm_zerosnet.data"]
    # also where no conversion is needed (an RGB JPEG for an RGB model), which decoded nothing before the transform
    jpeg = tmp_path / "rgb"
    for split in ("train", "val"):
        (jpeg / split / "a").mkdir(parents=True)
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            jpeg / split / "a" / "0.jpg"
        )
    whole = (jpeg / "train" / "a" / "0.jpg").read_bytes()
    (jpeg / "train" / "a" / "1.jpg").write_bytes(whole[: len(whole) * 3 // 4])
    splits = create_datasets({"data_dir": str(jpeg), "input_img_mode": "RGB"})
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert np.asarray(splits.train[1][0]).shape == (32, 32, 3)  # 1.jpg is cut short: 0.jpg comes instead
    assert "Skipped sample (index 1)" in caplog.text


def test_evaluation_alone_may_read_the_split_folder_itself(tmp_path):
    """As timm's validate.py: --data-dir the val folder (only training needs both split folders under one root)."""
    _write_split(tmp_path, "val", ("cat", "emu"))
    alone = create_datasets({"data_dir": str(tmp_path / "val"), "class_names": ["cat", "dog", "emu"]}, train=False)
    assert sorted({alone.val[i][1] for i in range(len(alone.val))}) == [0, 2]


def test_a_prefix_free_timm_name_is_an_image_folder_with_the_same_checks(tmp_path):
    _write_split(tmp_path, "train", ("cat", "dog"))
    with pytest.raises(FileNotFoundError, match="no folder for the 'validation' split"):
        create_datasets({"dataset": "imagenet", "data_dir": str(tmp_path)})


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
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(RuntimeError, match="Downloading 'torch/cifar10' into .* failed .*name resolution") as e:
        create_datasets({"dataset": "torch/cifar10", "data_dir": str(tmp_path), "dataset_download": True})
    assert "cifar-10-batches-py" in str(e.value) and e.value.__suppress_context__ and "\n" not in str(e.value)


def test_hfds_goes_through_timm_create_dataset(monkeypatch):
    calls = []

    class Reader:
        class_to_idx = {"zero": 0, "one": 1}

    class FakeHf(Dataset):
        reader = Reader()

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return Image.new("RGB", (8, 8)), i % 2

    def fake_create_dataset(name, **kwargs):
        calls.append((name, kwargs["split"], kwargs["is_training"], kwargs["root"]))
        return FakeHf()

    monkeypatch.setattr(data_mod, "create_dataset", fake_create_dataset)
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed: said so, before timm's reader fails
    with pytest.raises(ValueError, match=r"needs the 'datasets' package \(pip install datasets\)"):
        create_datasets({"dataset": "hfds/user/set", "data_dir": "/cache"})
    assert not calls
    monkeypatch.setitem(sys.modules, "datasets", types.ModuleType("datasets"))
    splits = create_datasets({"dataset": "hfds/user/set", "data_dir": "/cache", "val_split": "test"})
    assert calls == [("hfds/user/set", "train", True, "/cache"), ("hfds/user/set", "test", False, "/cache")]
    assert splits.label_names == ["zero", "one"]


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
