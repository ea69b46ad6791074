"""zerosnet-hub export: the Hub-ready folder, its model card, atomic writes and the errors for bad inputs.

Also home of the helpers the other hub tests import: a train-like run directory (the layout ``zerosnet-train``
writes) and an isolated, offline Hugging Face cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import PIL.Image
import pytest
import safetensors.torch
import timm
import torch
import yaml

from timm_zerosnet.hub import HubError
from timm_zerosnet.hub.cache import install_local
from timm_zerosnet.hub.cli import main
from timm_zerosnet.hub.export import EXPORT_NAMES, export, read_export, read_run, verify_export
from timm_zerosnet.hub.push import push
from timm_zerosnet.release import ReleaseError, check_golden, load_weights

MODEL = "zerosnet20_cifar"
REPO = "testorg/zerosnet20_cifar.c10"
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
EXPORT_FILES = {"README.md", "config.json", "golden.safetensors", "model.safetensors", "release.json"}


# ----- helpers shared with the other hub tests -----


def trained_like_model(seed: int = 0, num_classes: int = 10) -> torch.nn.Module:
    """A zerosnet20_cifar whose BN statistics and affine parameters are not at their init values."""
    torch.manual_seed(seed)
    model = timm.create_model(MODEL, num_classes=num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def make_run(run_dir: Path, seed: int = 0, num_classes: int = 10, **run_json) -> Path:
    """A run directory as zerosnet-train leaves it: weights, run.json, metrics.json/csv, args.yaml."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model = trained_like_model(seed, num_classes)
    safetensors.torch.save_file(model.state_dict(), str(run_dir / "model.safetensors"))
    ema = trained_like_model(seed + 100, num_classes)
    safetensors.torch.save_file(ema.state_dict(), str(run_dir / "model_ema.safetensors"))
    history = [
        dict(
            epoch=e,
            train_loss=2.0 / e,
            val_loss=1.0 / e,
            top1=60.0 + 10 * e,
            top5=95.0 + e,
            val_samples=10000,
            ema_top1=61.0 + 10 * e,
            ema_top5=96.0,
            ema_val_loss=0.9 / e,
        )
        for e in (1, 2, 3)
    ]
    info = dict(
        format="timm_zerosnet.run/1",
        status="finished",
        error=None,
        model=MODEL,
        model_kwargs={},
        num_classes=num_classes,
        in_chans=3,
        global_pool=None,
        label_names=CIFAR10_LABELS if num_classes == 10 else [f"c{i}" for i in range(num_classes)],
        data_config=dict(
            input_size=[3, 32, 32],
            mean=[0.4914, 0.4822, 0.4465],
            std=[0.2023, 0.1994, 0.2010],
            interpolation="bilinear",
            crop_pct=1.0,
            crop_mode="center",
        ),
        dataset=dict(name="torch/cifar10", data_dir="~/data", train_split="train", val_split="test"),
        weights=dict(final="model.safetensors", ema="model_ema.safetensors", best=None),
        eval_metric="top1",
        metrics=dict(final=history[-1], best=dict(history[-1], source="model")),
        epochs=dict(completed=3, planned=3),
        training=dict(
            recipe="/home/me/timm_zerosnet/recipes/zerosnet_cifar10.yaml",
            opt="sgd",
            lr=0.1,
            weight_decay=1e-4,
            sched="multistep",
            global_batch_size=128,
            seed=seed,
        ),
    )
    info.update(run_json)
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))
    (run_dir / "metrics.json").write_text(json.dumps(history))
    (run_dir / "metrics.csv").write_text("epoch,top1\n" + "".join(f"{r['epoch']},{r['top1']}\n" for r in history))
    (run_dir / "args.yaml").write_text(yaml.safe_dump(dict(model=MODEL, epochs=3)))
    return run_dir


def load_run_model(run_dir: Path, name: str = "model.safetensors") -> torch.nn.Module:
    model = timm.create_model(MODEL, num_classes=json.loads((run_dir / "run.json").read_text())["num_classes"])
    model.load_state_dict(safetensors.torch.load_file(str(run_dir / name)))
    return model.eval()


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache under tmp_path, offline. huggingface_hub reads its env once, at import, so the
    constants are patched as well (for this process) as the variables (for subprocesses)."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    for var, value in (("HF_HOME", home), ("HF_HUB_CACHE", cache), ("HF_HUB_OFFLINE", "1")):
        monkeypatch.setenv(var, str(value))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "runs" / "c10-s0")


@pytest.fixture
def exported(run_dir, tmp_path):
    return export(run_dir, tmp_path / "export", repo_id=REPO).path


def front_matter(readme: str) -> dict:
    m = re.match(r"^---\n(.*?)\n---\n", readme, re.S)
    assert m, "no YAML metadata block"
    return yaml.safe_load(m.group(1))


# ----- the folder -----


def test_export_writes_only_safetensors_and_timm_config(exported, run_dir):
    assert {p.name for p in exported.iterdir()} == EXPORT_FILES == set(EXPORT_NAMES)
    config = json.loads((exported / "config.json").read_text())
    assert config["architecture"] == MODEL
    assert config["num_classes"] == 10 and config["num_features"] == 64 and config["global_pool"] == "avg"
    assert config["label_names"] == CIFAR10_LABELS
    assert config["model_args"] == {"num_classes": 10, "in_chans": 3, "global_pool": "avg"}
    cfg = config["pretrained_cfg"]
    assert cfg["tag"] == "c10" and cfg["license"] == "apache-2.0"
    assert cfg["input_size"] == [3, 32, 32] and cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bilinear"
    assert cfg["mean"] == [0.4914, 0.4822, 0.4465] and cfg["std"] == [0.2023, 0.1994, 0.2010]
    assert cfg["first_conv"] == "conv1" and cfg["classifier"] == "fc" and cfg["paper_ids"] == "arXiv:2206.13100"
    assert "hf_hub_id" not in cfg and "file" not in cfg  # timm strips the source when saving

    trained = load_run_model(run_dir)
    weights = load_weights(exported / "model.safetensors")
    assert weights.keys() == trained.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in trained.state_dict().items())
    assert check_golden(trained, exported / "golden.safetensors").exact

    release = json.loads((exported / "release.json").read_text())
    assert release["model"] == MODEL and release["tag"] == "c10" and release["repo_id"] == REPO
    assert release["dataset"] == "uoft-cs/cifar10" and release["run"] == "c10-s0" and release["weights"] == "final"
    assert release["metrics"] == dict(
        top1=90.0, top5=98.0, loss=1 / 3, epoch=3, samples=10000, weights="final", split="test"
    )


def test_golden_file_holds_a_seeded_batch_and_its_outputs(exported):
    golden = load_weights(exported / "golden.safetensors")
    assert golden["input"].shape == (4, 3, 32, 32)
    assert golden["logits"].shape == (4, 10) and golden["pre_logits"].shape == (4, 64)
    other = trained_like_model(seed=5)
    assert not check_golden(other, exported / "golden.safetensors").exact


def test_model_card_metadata_and_sections(exported):
    from huggingface_hub import ModelCard

    readme = (exported / "README.md").read_text()
    meta = front_matter(readme)
    assert meta["library_name"] == "timm" and meta["license"] == "apache-2.0"
    assert {"image-classification", "timm", "zerosnet"} <= set(meta["tags"])
    assert meta["datasets"] == ["uoft-cs/cifar10"] and meta["metrics"] == ["accuracy"]
    card = ModelCard(readme)  # the Hub's own parser accepts the metadata and the results
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == {"Top-1 accuracy": 90.0, "Top-5 accuracy": 98.0}
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}  # the split the metrics were measured on
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"] == dict(name="CIFAR-10", type="uoft-cs/cifar10", split="test")

    for section in (
        "# Model card for zerosnet20_cifar.c10",
        "## Model Details",
        "## Model Usage",
        "### Image Classification",
        "### Feature Map Extraction",
        "### Image Embeddings",
        "## Evaluation Results",
        "## Citation",
    ):
        assert section in readme
    assert "Params (M): 0.28" in readme and "GMACs: 0.041" in readme and "Activations (M):" in readme
    assert "Image size: 32 x 32" in readme and "https://arxiv.org/abs/2206.13100" in readme
    assert "`zerosnet_cifar10`" in readme and "/home/me" not in readme
    assert "| CIFAR-10 | test | 10000 | 90.00 | 98.00 |" in readme
    assert "eprint={2206.13100}" in readme and "@misc{rw2019timm" in readme
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(snippets) == 4
    for code in snippets:
        assert code.startswith("import timm_zerosnet")
        assert f"'hf-hub:{REPO}'" in code
    assert "features_only=True" in snippets[1] and "num_classes=0" in snippets[2] and "pre_logits=True" in snippets[2]
    assert "check_golden(model" in snippets[3]


@pytest.mark.parametrize(
    "family, arxiv, key",
    [
        ("lmresnet20_cifar", "1710.10121", "lu2018beyond"),
        ("preresnet20_cifar", "1603.05027", "he2016identity"),
        ("preresnet18_diffstride_cifar", "2202.01653", "riad2022learning"),  # the card named no paper's title
        ("preresnet18_spectral_cifar", "2202.01653", "riad2022learning"),  # the paper's spectral-pooling baseline
        ("preresnet18_cifar", "2202.01653", "riad2022learning"),  # and its strided-conv baseline
        ("zerosnet18_diffstride_cifar", "2202.01653", "riad2022learning"),  # it cited ZeroSNet's alone
    ],
)
def test_card_cites_the_family_paper(tmp_path, family, arxiv, key):
    model = timm.create_model(family, num_classes=10)
    safetensors.torch.save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    out = export(tmp_path / "w.safetensors", tmp_path / "out", model=family, tag="c10", dataset="cifar10").path
    readme = (out / "README.md").read_text()
    assert f"https://arxiv.org/abs/{arxiv}" in readme and f"@inproceedings{{{key}" in readme
    if family.startswith("zerosnet"):  # the ZeroSNet scheme on the DiffStride paper's network: both papers
        assert "https://arxiv.org/abs/2206.13100" in readme and "@inproceedings{chen2022zerostability" in readme
        assert "Learning Strides in Convolutional Neural Networks (ICLR 2022)" in readme
    assert "No evaluation results were recorded" in readme  # a bare file: no run.json, no metrics
    assert f"timm.create_model('{family}.c10', pretrained=True)" in readme  # no repo id: the registry name


def test_exported_files_get_the_permissions_of_the_umask(exported):
    """timm's save_for_hf and the golden file go through safetensors, which creates files 0600."""
    import stat

    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in exported.iterdir()}
    assert modes == dict.fromkeys(EXPORT_FILES, 0o666 & ~mask)


def test_exported_files_follow_a_group_writable_umask(run_dir, tmp_path):
    """Under umask 002 every file, the safetensors ones too, is 0664 (the ambient 022 cannot tell 0644 from it)."""
    import stat

    old = os.umask(0o002)
    try:
        out = export(run_dir, tmp_path / "export", repo_id=REPO).path
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == dict.fromkeys(EXPORT_FILES, 0o664)


def test_export_license_reaches_the_card_and_the_config(run_dir, tmp_path, capsys):
    out = tmp_path / "mit"
    assert main(["export", str(run_dir), "--out", str(out), "--repo-id", REPO, "--license", "mit"]) == 0
    assert front_matter((out / "README.md").read_text())["license"] == "mit"
    assert json.loads((out / "config.json").read_text())["pretrained_cfg"]["license"] == "mit"


def test_one_mean_and_std_per_input_channel(tmp_path):
    """A 1-channel checkpoint without run.json: the 3-channel defaults are averaged (and said so); a recorded data
    config with the wrong number of values is refused, naming the fix."""
    weights = tmp_path / "gray.safetensors"
    safetensors.torch.save_file(timm.create_model(MODEL, num_classes=10, in_chans=1).state_dict(), str(weights))
    logs = []
    out = export(weights, tmp_path / "gray", model=MODEL, tag="gray", log=logs.append).path
    cfg = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert cfg["input_size"] == [1, 32, 32]
    assert cfg["mean"] == [pytest.approx((0.4914 + 0.4822 + 0.4465) / 3)] and len(cfg["std"]) == 1
    assert any("averaged for the 1-channel model" in line for line in logs)
    data_config = timm.data.resolve_data_config({}, pretrained_cfg=cfg)
    transform = timm.data.create_transform(**data_config)  # what a user of the weights runs: it must work
    assert transform(PIL.Image.new("L", (40, 40))).shape == (1, 32, 32)
    readme = (out / "README.md").read_text()  # the snippets open the image as the model sees it: grey
    assert readme.count(".convert('L')") == 3 and ".convert('RGB')" not in readme
    assert "  - Image size: 32 x 32 (1 channel)\n" in readme

    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    info["data_config"]["std"] = [0.2, 0.2]
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(HubError, match=r"std .* has 2 values for a 3-channel model; record the run's data_config"):
        export(run, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_recorded_data_config_for_three_channels_is_refused_for_a_one_channel_run(tmp_path):
    """Averaging is for the architecture's defaults only: a run.json that records 3 means and stds for a 1-channel
    model describes other data, so it is refused (nothing written) rather than silently averaged."""
    run = make_run(tmp_path / "run", in_chans=1)
    gray = timm.create_model(MODEL, num_classes=10, in_chans=1)
    safetensors.torch.save_file(gray.state_dict(), str(run / "model.safetensors"))
    assert len(json.loads((run / "run.json").read_text())["data_config"]["mean"]) == 3
    logs = []
    with pytest.raises(
        HubError,
        match=r"mean \(0\.4914, 0\.4822, 0\.4465\) has 3 values for a 1-channel model; record the run's data_config",
    ):
        export(run, tmp_path / "gray", log=logs.append)
    assert not any("averaged" in line for line in logs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_ema_weights_come_with_their_own_metrics(run_dir, tmp_path):
    out = export(run_dir, tmp_path / "ema", weights="ema").path
    release = json.loads((out / "release.json").read_text())
    assert release["weights"] == "ema" and release["metrics"]["top1"] == 91.0
    assert check_golden(load_run_model(run_dir, "model_ema.safetensors"), out / "golden.safetensors").exact
    with pytest.raises(HubError, match=r"no best weights .* --weights"):
        export(run_dir, tmp_path / "best", weights="best")


def test_best_weights_from_the_ema_come_with_the_ema_metrics(tmp_path):
    """Training saves the EMA as best.safetensors when the EMA scored best (metrics.best.source == 'ema'): the card
    must show the EMA's numbers for them, read from run.json and, without its metrics, from metrics.json."""
    run = make_run(tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    shutil.copy(run / "model_ema.safetensors", run / "best.safetensors")
    history = json.loads((run / "metrics.json").read_text())
    info["weights"]["best"] = "best.safetensors"
    info["metrics"]["best"] = dict(history[1], source="ema")
    (run / "run.json").write_text(json.dumps(info))
    metrics = read_run(run, weights="best").metrics
    assert metrics["top1"] == history[1]["ema_top1"] == 81.0 and metrics["loss"] == history[1]["ema_val_loss"]
    assert metrics["weights"] == "best (EMA)" and metrics["epoch"] == 2
    info["metrics"]["best"] = dict(history[1], source="model")
    (run / "run.json").write_text(json.dumps(info))
    assert read_run(run, weights="best").metrics["top1"] == history[1]["top1"] == 80.0
    del info["metrics"]  # metrics.json only: the best top-1 of either, here the EMA's last epoch
    (run / "run.json").write_text(json.dumps(info))
    metrics = read_run(run, weights="best").metrics
    assert metrics["top1"] == 91.0 and metrics["epoch"] == 3 and metrics["weights"] == "best (EMA)"
    assert read_run(run, weights="final").metrics["top1"] == 90.0


def test_read_run_is_tolerant_of_a_minimal_run_json(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "run.json").write_text(json.dumps({"model": MODEL}))
    info = read_run(run)
    assert info.model == MODEL and info.num_classes is None and info.data_config is None
    assert info.metrics["top1"] == 90.0  # from metrics.json
    out = export(run, tmp_path / "out", tag="mini").path
    assert json.loads((out / "config.json").read_text())["num_classes"] == 10  # read from fc.weight


# ----- atomic writes -----


def test_existing_destination_needs_overwrite_which_replaces_only_an_earlier_export(run_dir, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    for overwrite in (False, True):  # the refusal --overwrite would give comes first: it is not advised
        with pytest.raises(HubError, match="not a folder written by export .* Remove it yourself"):
            export(run_dir, dest, overwrite=overwrite)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"] and (dest / "keep.txt").read_text() == "mine"
    (dest / "keep.txt").unlink()
    export(run_dir, dest, overwrite=True)  # an empty folder
    first = (dest / "release.json").read_text()
    export(run_dir, dest, overwrite=True, tag="again")  # an earlier export
    assert {p.name for p in dest.iterdir()} == EXPORT_FILES and (dest / "release.json").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "runs"]  # no temp or backup folder left
    (dest / ".git").mkdir()  # e.g. a clone of the Hub repo holding an earlier export, with notes of its own
    (dest / "NOTES.md").write_text("mine")
    with pytest.raises(HubError, match=r"holds files that export did not write \(\.git, NOTES\.md\)"):
        export(run_dir, dest, overwrite=True)
    assert (dest / "NOTES.md").read_text() == "mine" and (dest / ".git").is_dir()
    assert (dest / "release.json").read_text() != first  # the earlier export is untouched too
    (tmp_path / "file").write_text("x")
    with pytest.raises(HubError, match="exists and is not a folder"):
        export(run_dir, tmp_path / "file", overwrite=True)


def test_an_export_names_what_killed_exports_of_its_out_left(run_dir, tmp_path):
    """A SIGKILL leaves no handler to clean up: a hidden half-written .NAME.tmp-* folder (50 MB for zerosnet18), or
    .NAME.old-*, the earlier export an --overwrite had moved aside, which later exports never mentioned."""
    dest = tmp_path / "dest"
    (tmp_path / ".dest.tmp-0badf00d").mkdir()
    (tmp_path / ".dest.old-12345678").mkdir()
    logged = []
    export(run_dir, dest, log=logged.append)
    notes = [line for line in logged if line.startswith("note: ") and ".dest." in line]
    assert notes == [
        f"note: {tmp_path / '.dest.old-12345678'} is the export that was in {dest} before an --overwrite that was "
        f"killed, and its only copy: move it back (mv {tmp_path / '.dest.old-12345678'} {dest}) or remove it",
        f"note: {tmp_path / '.dest.tmp-0badf00d'} is a half-written export of {dest}, left by one that was killed "
        "(or is still running)",
    ]
    logged.clear()
    export(run_dir, dest, overwrite=True, log=logged.append)  # dest is there now: not the only copy any more
    old = tmp_path / ".dest.old-12345678"
    assert f"note: {old} is the export that was in {dest} before an --overwrite that was killed; remove it" in logged
    assert (tmp_path / ".dest.tmp-0badf00d").is_dir() and (tmp_path / ".dest.old-12345678").is_dir()  # left to the user


def test_overwrite_never_replaces_the_source_or_a_folder_holding_it(run_dir, tmp_path):
    """The run exported from, or its parent, given as --out with --overwrite: refused, the run left whole."""
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for out, word in ((run_dir, "is"), (run_dir.parent, "holds"), (tmp_path, "holds")):
        with pytest.raises(HubError, match=f"--out .* {word} the source .* Choose another --out"):
            export(run_dir, out, overwrite=True)
    with pytest.raises(HubError, match="is the source"):
        export(run_dir / "model.safetensors", run_dir / "model.safetensors", overwrite=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before
    export(run_dir, run_dir / "export")  # a new folder inside the run is fine
    assert (run_dir / "export" / "model.safetensors").is_file() and (run_dir / "run.json").is_file()


def test_a_failure_leaves_nothing_half_written(run_dir, tmp_path, monkeypatch):
    from timm_zerosnet import hub

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hub.export, "model_card", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export(run_dir, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    monkeypatch.undo()
    good = export(run_dir, tmp_path / "old").path
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    monkeypatch.setattr(hub.export, "model_card", broken)
    with pytest.raises(RuntimeError):
        export(run_dir, good, overwrite=True)
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old", "runs"]


def test_a_failed_final_rename_with_overwrite_restores_the_earlier_export(run_dir, tmp_path, monkeypatch):
    """--overwrite moves the earlier export aside, then the new one into place: if that last rename fails, the
    earlier export is moved back, byte for byte, and neither the new folder nor the backup is left beside it."""
    from timm_zerosnet import hub

    dest = export(run_dir, tmp_path / "dest").path
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    real_rename = hub.export.os.rename
    calls = []

    def rename(src, dst, *args, **kwargs):
        src, dst = Path(src), Path(dst)
        calls.append((src.name, dst.name))
        if src.name.startswith(".dest.tmp-") and dst == dest:
            raise OSError("injected: rename failed")
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(hub.export.os, "rename", rename)
    with pytest.raises(OSError, match="injected: rename failed"):
        export(run_dir, dest, overwrite=True, tag="again")
    monkeypatch.undo()
    assert any(src.startswith(".dest.tmp-") and dst == "dest" for src, dst in calls)  # the failure was reached
    assert dest.is_dir() and {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "runs"]  # no .dest.tmp-* nor .dest.old-*
    assert read_export(dest).tag == "c10"


@pytest.fixture
def default_manifest(tmp_path, monkeypatch):
    """The package's manifest, as the hub tool reads it, moved to an empty file under tmp_path: nothing reads or
    writes timm_zerosnet/releases.json."""
    from timm_zerosnet import hub

    path = tmp_path / "default" / "releases.json"
    path.parent.mkdir()
    monkeypatch.setattr(hub.manifest, "manifest_path", lambda: path)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _recorded_message(out: Path, manifest: Path, state: str) -> str:
    sha = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    return (
        f"--out {out} holds the weights of {MODEL}.c10 that {manifest} records as {state} (sha256 {sha[:12]}...): "
        f"--overwrite would delete them, and another export may not reproduce them bit for bit. Choose another --out "
        f"(or, if you really mean to drop those weights, remove {out} yourself first)."
    )


@pytest.mark.parametrize("state", ["staged", "published"])
def test_overwrite_never_replaces_weights_a_manifest_records(exported, tmp_path, default_manifest, capsys, state):
    """Staged weights may not be reproducible bit for bit elsewhere: --overwrite of the folder holding the weights a
    manifest records as staged or published (the package's, or the --manifest of export --stage) deleted the only
    copy, and left the manifest pointing at nothing. Refused before any work, the folder and manifest untouched."""
    from timm_zerosnet.hub.manifest import record_published, stage

    manifest = tmp_path / "releases.json"
    for path in (manifest, default_manifest):
        if state == "staged":
            stage(exported, path)
        else:
            record_published(exported, REPO, "a" * 40, path)
    run2 = make_run(tmp_path / "run2", seed=1)
    before, records = _snapshot(exported), {p: p.read_bytes() for p in (manifest, default_manifest)}

    def untouched():
        assert _snapshot(exported) == before
        assert {p: p.read_bytes() for p in (manifest, default_manifest)} == records
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder

    # the package's manifest records it
    with pytest.raises(HubError) as e:
        export(run2, exported, overwrite=True, tag="again")
    assert str(e.value) == _recorded_message(exported, default_manifest, state)
    untouched()
    # only the --manifest of export --stage records it
    default_manifest.unlink()
    argv = ["export", str(run2), "--out", str(exported), "--overwrite", "--stage", "--repo-id", REPO]
    assert main([*argv, "--manifest", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert err == f"zerosnet-hub export: error: {_recorded_message(exported, manifest, state)}\n"
    assert _snapshot(exported) == before and manifest.read_bytes() == records[manifest]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_a_folder_whose_weights_a_manifest_entry_does_not_record(
    run_dir, tmp_path, default_manifest
):
    """An entry of the same model.tag with other weights (stale: the folder was exported again, or never staged)
    does not protect the folder; the entry that records its weights does."""
    from timm_zerosnet.hub.manifest import read_manifest, stage, write_manifest

    staged = export(run_dir, tmp_path / "staged", repo_id=REPO).path
    stage(staged, default_manifest)
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "other", repo_id=REPO).path  # also c10
    run3 = make_run(tmp_path / "run3", seed=2)
    first = _snapshot(other)
    export(run3, other, overwrite=True, repo_id=REPO)  # c10 is recorded with other weights: replaced
    assert _snapshot(other) != first and read_export(other).name == f"{MODEL}.c10"
    data = read_manifest(default_manifest)
    (entry,) = data["releases"]
    entry["sha256"] = "3" * 64  # a stale entry: not the weights the staged folder holds
    write_manifest(data, default_manifest)
    first = _snapshot(staged)
    export(run3, staged, overwrite=True, repo_id=REPO)
    assert _snapshot(staged) != first
    entry["sha256"] = read_export(other).sha256  # the entry that records the folder's weights protects it
    write_manifest(data, default_manifest)
    before = _snapshot(other)
    with pytest.raises(HubError, match=r"records as staged .* Choose another --out"):
        export(run_dir, other, overwrite=True, tag="again")
    assert _snapshot(other) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_out_that_is_a_symbolic_link_is_refused_naming_its_target(run_dir, tmp_path, capsys, overwrite):
    """--overwrite through a link to an earlier export said it exported, but put a new folder in the link's place,
    left the target holding the old export and a hidden .NAME.old-* link beside it. A link as --out is refused before
    anything is written, naming its target to pass instead; a dangling link too."""
    real = export(run_dir, tmp_path / "real").path
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    listing = sorted(p.name for p in tmp_path.iterdir())
    expected = f"--out {link} is a symbolic link to {real}; export writes a folder, not through a link: pass the target"
    with pytest.raises(HubError, match=re.escape(expected) + rf" folder itself \(--out {re.escape(str(real))}\)\.$"):
        export(run_dir, link, overwrite=overwrite, tag="again")
    argv = ["export", str(run_dir), "--out", str(link), "--tag", "again"] + (["--overwrite"] if overwrite else [])
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert link.is_symlink() and link.resolve() == real and sorted(p.name for p in tmp_path.iterdir()) == listing
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(HubError, match=rf"--out {re.escape(str(dangling))} is a symbolic link to .*gone; "):
        export(run_dir, dangling, overwrite=overwrite)
    assert dangling.is_symlink() and not (tmp_path / "gone").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*listing, "dangling"])


# ----- clear errors -----


def test_corrupt_or_truncated_safetensors(run_dir, tmp_path):
    weights = run_dir / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(HubError, match=r"model\.safetensors: not a readable safetensors file .* corrupt or truncated"):
        export(run_dir, tmp_path / "out")
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(HubError, match=r"model\.safetensors: not a readable safetensors file"):
        export(run_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_state_dict_that_does_not_fit_names_the_file_and_key(tmp_path):
    run = make_run(tmp_path / "run", num_classes=100, label_names=None)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, num_classes=10)))
    with pytest.raises(
        HubError,
        match=r"model\.safetensors: the state dict does not fit zerosnet20_cifar\(num_classes"
        r"=10, in_chans=3\): .*fc\.(weight|bias).* \(100",
    ):
        export(run, tmp_path / "out")
    (run / "run.json").write_text(json.dumps(dict(info, model="zerosnet32_cifar")))
    with pytest.raises(HubError, match=r"does not fit zerosnet32_cifar.*first missing key"):
        export(run, tmp_path / "out")
    with pytest.raises(HubError, match="holds a 'zerosnet32_cifar'.*--model is 'zerosnet20_cifar'"):
        export(run, tmp_path / "out", model=MODEL)
    # a run.json that asks for more classes than the file's head has (the family's cfg has 10): not timm's
    # drop-the-head load, an error naming the head
    ten = make_run(tmp_path / "ten", num_classes=10, label_names=None)
    info = json.loads((ten / "run.json").read_text())
    (ten / "run.json").write_text(json.dumps(dict(info, num_classes=100)))
    with pytest.raises(
        HubError,
        match=r"does not fit zerosnet20_cifar\(num_classes=100.*'fc\.(weight|bias)'.*the checkpoint has 10 classes",
    ):
        export(ten, tmp_path / "out3")
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((run / "model.safetensors").read_bytes())
    with pytest.raises(HubError, match="'resnet18' is not a timm_zerosnet model"):
        export(bare, tmp_path / "out2", model="resnet18", tag="x")


class _NotWeights:
    pass


def test_pickle_checkpoints_are_read_with_weights_only_and_a_warning(tmp_path):
    model = trained_like_model(seed=3)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ckpt.pth")
    with pytest.warns(UserWarning, match=r"ckpt\.pth is a pickle file: loading it with torch\.load\(weights_only=True"):
        out = export(tmp_path / "ckpt.pth", tmp_path / "out", model=MODEL, dataset="torch/cifar10").path
    assert {p.name for p in out.iterdir()} == EXPORT_FILES  # only safetensors come out
    assert check_golden(model, out / "golden.safetensors").exact

    with open(tmp_path / "evil.bin", "wb") as f:
        pickle.dump({"w": _NotWeights()}, f)
    with (
        pytest.warns(UserWarning),
        pytest.raises(
            ReleaseError,
            match=r"evil\.bin: refused by torch\.load\("
            r"weights_only=True\)",
        ),
    ):
        load_weights(tmp_path / "evil.bin")


def test_weights_choice_for_a_file(run_dir, tmp_path):
    """A timm train checkpoint holds state_dict and state_dict_ema: --weights picks one, and without it the file is
    refused (timm's loader takes the EMA, a plain reading the model's); 'model' / 'model_ema' entries alike.
    --weights that contradicts what the run recorded for a file, or asks a file for 'best', is refused."""
    model, ema = trained_like_model(seed=3), trained_like_model(seed=4)
    ckpt = tmp_path / "train.pth.tar"
    torch.save({"epoch": 3, "state_dict": model.state_dict(), "state_dict_ema": ema.state_dict()}, ckpt)
    other = tmp_path / "other.pth"
    torch.save({"model": model.state_dict(), "model_ema": ema.state_dict()}, other)
    with pytest.warns(UserWarning, match="pickle file"):
        for path in (ckpt, other):
            with pytest.raises(
                HubError, match=r"holds several sets of weights .*pass --weights final .* --weights ema"
            ):
                export(path, tmp_path / "default", model=MODEL, tag="c10")
        chosen = export(ckpt, tmp_path / "ema", model=MODEL, tag="c10", weights="ema").path
        final = export(ckpt, tmp_path / "final", model=MODEL, tag="c10", weights="final").path
        other_ema = export(other, tmp_path / "other_ema", model=MODEL, tag="c10", weights="ema").path
    assert check_golden(model, final / "golden.safetensors").exact
    assert check_golden(ema, chosen / "golden.safetensors").exact
    assert check_golden(ema, other_ema / "golden.safetensors").exact
    assert not check_golden(model, chosen / "golden.safetensors").exact
    with pytest.raises(HubError, match="--weights best picks a run directory's best.safetensors"):
        export(ckpt, tmp_path / "best", model=MODEL, tag="c10", weights="best")
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    with pytest.warns(UserWarning), pytest.raises(HubError, match=r"no 'state_dict_ema' or 'model_ema' entry .* drop"):
        export(tmp_path / "plain.pth", tmp_path / "plain", model=MODEL, tag="c10", weights="ema")
    with pytest.raises(HubError, match=r"is the run's final weights, not its ema weights: pass the run directory"):
        export(run_dir / "model.safetensors", tmp_path / "x", weights="ema")
    assert export(run_dir / "model_ema.safetensors", tmp_path / "y", weights="ema").path.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ema",
        "final",
        "other.pth",
        "other_ema",
        "plain.pth",
        "runs",
        "train.pth.tar",
        "y",
    ]


def test_authors_cifar_weights_in_safetensors_export(tmp_path):
    """The channel and class counts come from the stem conv and the classifier themselves: safetensors sorts its keys,
    so in the authors' CIFAR layout 'blocks.0.conv1.weight' (16 channels) comes before the stem's 'conv1.weight'."""
    from test_authors_checkpoints import CASE_BY_NAME, synthetic_authors_state_dict

    state = synthetic_authors_state_dict(CASE_BY_NAME["zerosnet20_cifar_opt"])
    path = tmp_path / "authors.safetensors"
    safetensors.torch.save_file({f"module.{k}": v.contiguous() for k, v in state.items()}, str(path))
    assert next(iter(safetensors.torch.load_file(str(path)))).startswith("module.blocks.")  # the sorted order
    out = export(path, tmp_path / "out", model=MODEL, tag="c10").path
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 10 and config["pretrained_cfg"]["input_size"][0] == 3


def test_a_training_state_exports_with_its_runs_model_labels_and_data_config(run_dir, tmp_path):
    """<run>/checkpoints/state-*: run.json two levels up says what the model is (no --model needed, label names and
    data config kept); the run's metrics are those of its end, so the card has none for the state's weights."""
    state = run_dir / "checkpoints" / "state-e0002-b000000"
    state.mkdir(parents=True)
    model = trained_like_model(seed=7)
    safetensors.torch.save_file(model.state_dict(), str(state / "model.safetensors"))
    (state / "optimizer.bin").write_bytes(b"not read")
    logs = []
    out = export(state, tmp_path / "state", log=logs.append).path
    config = json.loads((out / "config.json").read_text())
    assert config["label_names"] == CIFAR10_LABELS and config["pretrained_cfg"]["std"] == [0.2023, 0.1994, 0.2010]
    release = json.loads((out / "release.json").read_text())
    assert release["metrics"] == {} and release["run"] == run_dir.name and "epochs" not in release["training"]
    assert (release["weights"], release["state"]) == ("final", state.name)
    assert any("the run recorded no evaluation of its final weights" in line for line in logs)
    assert check_golden(model, out / "golden.safetensors").exact
    # --weights ema / best are the state's own (tests/test_run_layout.py exports them): this one has neither
    for weights in ("ema", "best"):
        with pytest.raises(HubError, match=rf"{state} has no {weights} weights"):
            export(state, tmp_path / weights, weights=weights)
    assert not (tmp_path / "ema").exists() and not (tmp_path / "best").exists()


def test_a_training_states_weights_file_exports_as_the_state(run_dir, tmp_path):
    """<state>/model.safetensors (the path the refusal of --weights ema names) is the state's final weights: the same
    record (the run, weights 'final', the state) and the same card note as the state folder, not a run of its own."""
    state = run_dir / "checkpoints" / "state-e0002-b000000"
    state.mkdir(parents=True)
    safetensors.torch.save_file(trained_like_model(seed=7).state_dict(), str(state / "model.safetensors"))
    by_folder = export(state, tmp_path / "folder", repo_id="myorg/s").path
    by_file = export(state / "model.safetensors", tmp_path / "file", repo_id="myorg/s").path
    records = [json.loads((out / "release.json").read_text()) for out in (by_folder, by_file)]
    for record in records:
        record.pop("created", None)
    assert records[0] == records[1]
    assert (records[1]["run"], records[1]["weights"], records[1]["state"]) == (run_dir.name, "final", state.name)
    assert (by_file / "README.md").read_text() == (by_folder / "README.md").read_text()
    assert f"training state `{state.name}`" in (by_file / "README.md").read_text()
    with pytest.raises(HubError, match=rf"final weights of the training state {state.name}, not its ema weights"):
        export(state / "model.safetensors", tmp_path / "ema", weights="ema")


def test_a_runs_weights_file_loaded_as_a_file_warns_of_the_runs_model_kwargs(tmp_path):
    """A run's weights file (or a training state's) given to timm as pretrained_cfg_overlay=dict(file=...) loads into
    the model as built: where the run was trained with other options (run.json's model_kwargs lam=-1.5), the load
    says so and names them; built with them, it warns of nothing and gives the run's outputs."""
    import warnings

    run = make_run(tmp_path / "run")
    torch.manual_seed(0)
    trained = timm.create_model(MODEL, lam=-1.5).eval()
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "model_kwargs": {"lam": -1.5}}))
    state = run / "checkpoints" / "state-e0002-b000000"
    state.mkdir(parents=True)
    for folder in (run, state):
        safetensors.torch.save_file(trained.state_dict(), str(folder / "model.safetensors"))
        overlay = dict(file=str(folder / "model.safetensors"))
        with pytest.warns(UserWarning, match=r"lam=-1.5 recorded, -1.8 built.*its run's run.json") as record:
            timm.create_model(MODEL, pretrained=True, pretrained_cfg_overlay=overlay)
        assert any(f"timm.create_model('{MODEL}', pretrained=True, lam=-1.5, " in str(w.message) for w in record)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = timm.create_model(MODEL, pretrained=True, lam=-1.5, pretrained_cfg_overlay=overlay).eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(loaded(x), trained(x))


def test_a_file_that_holds_no_state_dict_is_a_clear_cli_error(tmp_path, capsys):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.warns(UserWarning):
        code = main(
            ["export", str(tmp_path / "list.pth"), "--model", MODEL, "--tag", "x", "--out", str(tmp_path / "o")]
        )
    err = capsys.readouterr().err
    assert code != 0 and "list.pth: holds a list, not a state dict" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_export_folder_checks(exported):
    config_bytes = (exported / "config.json").read_bytes()
    config = json.loads(config_bytes)
    (exported / "config.json").write_text(json.dumps(dict(config, architecture="resnet18")))
    with pytest.raises(HubError, match=r"config\.json: architecture 'resnet18' is not a timm_zerosnet model"):
        read_export(exported)
    (exported / "config.json").write_bytes(config_bytes)
    torch.save({}, exported / "pytorch_model.bin")
    with pytest.raises(HubError, match=r"holds pickle or numpy files \(pytorch_model\.bin\)"):
        read_export(exported)
    (exported / "pytorch_model.bin").unlink()
    (exported / "extra").mkdir()
    torch.save({}, exported / "extra" / "optimizer.bin")
    with pytest.raises(HubError, match=r"holds pickle or numpy files \(extra/optimizer\.bin\)"):
        read_export(exported)
    shutil.rmtree(exported / "extra")
    torch.save({}, exported / "LAST.PTH")  # the suffix in any case
    with pytest.raises(HubError, match=r"holds pickle or numpy files \(LAST\.PTH\)"):
        read_export(exported)
    (exported / "LAST.PTH").unlink()
    (exported / "extra").mkdir()  # notes may go along (a push uploads them too), other weights may not
    (exported / "extra" / "notes.md").write_text("how these weights were made\n")
    safetensors.torch.save_file({"w": torch.zeros(1)}, str(exported / "extra" / "best.Safetensors"))
    for read in (read_export, lambda folder: push(folder, REPO, dry_run=True)):
        with pytest.raises(HubError, match=r"holds other weights than model\.safetensors \(extra/best\.Safetensors\)"):
            read(exported)
    (exported / "extra" / "best.Safetensors").unlink()
    assert "extra/notes.md" in read_export(exported).files
    shutil.rmtree(exported / "extra")
    outside = exported.parent / "outside.txt"
    outside.write_text("not for the Hub")
    (exported / "notes.txt").symlink_to(outside)
    for read in (read_export, lambda folder: install_local(folder, REPO, cache_dir=exported.parent / "cache")):
        with pytest.raises(HubError, match=r"holds symbolic links \(notes\.txt\); pushing or installing the folder"):
            read(exported)
    assert not (exported.parent / "cache").exists()
    (exported / "notes.txt").unlink()
    read_export(exported)
    (exported / "config.json").write_text(json.dumps(dict(config, label_names=list("abcdefghij"))))
    with pytest.raises(HubError, match=r"config\.json: sha256 .* differs from the one recorded at export"):
        read_export(exported)  # nothing else would notice new label names, mean or std
    (exported / "config.json").write_bytes(config_bytes)
    other = trained_like_model(seed=9)
    safetensors.torch.save_file(other.state_dict(), str(exported / "model.safetensors"))
    with pytest.raises(HubError, match=r"differs from the one recorded at export"):
        verify_export(exported)


def test_verify_reads_a_cache_snapshot_of_symbolic_links(exported, tmp_path, capsys):
    """A snapshot of the Hugging Face cache links to its blobs: verify reads them (a push never takes links)."""
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for path in exported.iterdir():
        (snapshot / path.name).symlink_to(path)
    assert verify_export(snapshot, allow_links=True).golden_exact
    assert main(["verify", str(snapshot)]) == 0
    assert "bit for bit" in capsys.readouterr().out
    with pytest.raises(HubError, match="holds symbolic links"):
        verify_export(snapshot)


def _export_learned_strides(tmp_path, **kwargs):
    """A DiffStride network whose strides learned 2.5 (not their initial 2), and its export."""
    model = timm.create_model("preresnet18_diffstride_cifar", num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "strides"):
                m.strides.fill_(2.5)
    safetensors.torch.save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    weights = tmp_path / "w.safetensors"
    return model, export(weights, tmp_path / "ds", model="preresnet18_diffstride_cifar", tag="c10", **kwargs).path


def test_learned_strides_are_counted_on_the_exported_network(tmp_path):
    """A DiffStride network cannot run on the meta device (its shapes follow its strides): the card counts the
    exported network, at the strides it learned."""
    from torch.utils.flop_counter import FlopCounterMode

    model, out = _export_learned_strides(tmp_path)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    gmacs = counter.get_total_flops() / 2e9
    assert f"  - GMACs: {gmacs:.3f}" in (out / "README.md").read_text()
    fresh = timm.create_model("preresnet18_diffstride_cifar", num_classes=10).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fresh(torch.zeros(1, 3, 32, 32))
    assert abs(counter.get_total_flops() / 2e9 - gmacs) > 0.1  # the strides at init would give another count
    assert verify_export(out).golden_exact
    # config.json's pool_size is that of the learned strides (it was the registered (18, 18) of the init)
    with torch.no_grad():
        size = tuple(model.eval().forward_features(torch.zeros(1, 3, 32, 32)).shape[-2:])
    config = json.loads((out / "config.json").read_text())
    assert tuple(config["pretrained_cfg"]["pool_size"]) == size != (18, 18)
    assert timm.create_model(f"local-dir:{out}", pretrained=True).pretrained_cfg["pool_size"] == size


def test_verify_round_trip_and_cli(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "cli"), "--repo-id", REPO]) == 0
    assert "5 files" in capsys.readouterr().out
    result = verify_export(tmp_path / "cli")
    assert result.golden_exact and result.timm_local_dir_exact and result.golden_max_abs_diff == 0.0
    assert main(["verify", str(tmp_path / "cli")]) == 0
    assert "bit for bit" in capsys.readouterr().out
    assert main(["export", str(run_dir), "--out", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; pass --overwrite" in err and "Traceback" not in err


def test_a_headless_backbone_exports_as_one(tmp_path, monkeypatch):
    """A checkpoint with a stem and no classifier is a backbone (timm's num_classes=0): exported as such, with a
    card that offers no classification snippet, and whose snippets run against the folder."""
    from PIL import Image

    model = timm.create_model(MODEL, num_classes=0)
    safetensors.torch.save_file(model.state_dict(), str(tmp_path / "backbone.safetensors"))
    out = export(tmp_path / "backbone.safetensors", tmp_path / "bb", model=MODEL, tag="c10", repo_id=REPO).path
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 0 and config["model_args"]["num_classes"] == 0
    assert verify_export(out).golden_exact
    readme = (out / "README.md").read_text()
    assert front_matter(readme)["pipeline_tag"] == "image-feature-extraction"
    assert "Image Classification" not in readme and "softmax" not in readme
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(snippets) == 3
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 36), (120, 30, 200)).save("image.png")
    for code in snippets[:2]:
        scope: dict = {}
        exec(compile(code.replace(f"hf-hub:{REPO}", f"local-dir:{out}"), "README.md", "exec"), scope)
        outputs = scope["output"] if isinstance(scope["output"], list) else [scope["output"]]
        assert all(o.shape[0] == 1 for o in outputs)
    assert scope["output"].shape == (1, 64)


# ----- what config.json, release.json and the card say (mutation audit) -----


def test_ema_weights_get_every_number_from_the_ema_columns(run_dir, tmp_path):
    """--weights ema: top-5 and loss are the EMA's too, in release.json and in the card's results row."""
    out = export(run_dir, tmp_path / "ema", weights="ema").path
    release = json.loads((out / "release.json").read_text())
    assert release["metrics"] == dict(
        top1=91.0, top5=96.0, loss=0.9 / 3, epoch=3, samples=10000, weights="ema", split="test"
    )
    assert "| CIFAR-10 | test | 10000 | 91.00 | 96.00 | 0.3000 | ema | 3 |" in (out / "README.md").read_text()


def test_model_card_details_and_results_row(exported):
    from timm_zerosnet.hub.card import model_stats

    readme = (exported / "README.md").read_text()
    release = json.loads((exported / "release.json").read_text())
    assert "trained on CIFAR-10 with timm-zerosnet" in readme and "- **Dataset:** CIFAR-10\n" in readme
    paper = "Zero-Stability Well Predicts Performance of Convolutional Neural Networks (AAAI 2022)"
    assert f"- **Papers:**\n  - {paper}: https://arxiv.org/abs/2206.13100\n" in readme
    assert (
        "- **Recipe:** `zerosnet_cifar10`: opt sgd, lr 0.1, weight_decay 0.0001, sched multistep, global batch 128, "
        "3 epochs\n" in readme
    )
    assert "- **Original:** https://github.com/LongJin-lab/ZeroSNet\n" in readme
    assert f"- **Weights:** `model.safetensors`, sha256 `{release['sha256']}`\n" in readme
    stats = model_stats(MODEL, {"num_classes": 10}, (3, 32, 32))
    assert f"  - Activations (M): {stats['activations_m']:.2f}\n" in readme
    assert "  - Image size: 32 x 32 (3 channels)\n" in readme
    # every column of the results row: images, top-1, top-5, loss (4 decimals), which weights, epoch
    assert "| CIFAR-10 | test | 10000 | 90.00 | 98.00 | 0.3333 | final | 3 |\n" in readme
    assert front_matter(readme)["model-index"][0]["name"] == "zerosnet20_cifar.c10"
    golden_snippet = re.findall(r"```python\n(.*?)```", readme, re.S)[-1]
    assert f"check_golden(model, hf_hub_download('{REPO}', 'golden.safetensors'))" in golden_snippet


def test_release_records_how_the_golden_batch_was_made(exported):
    from timm_zerosnet.release import sha256_file

    golden = json.loads((exported / "release.json").read_text())["golden"]
    batch = load_weights(exported / "golden.safetensors")["input"]
    assert golden["seed"] == 0 and golden["batch"] == batch.shape[0] == 4 and golden["threads"] == 1
    assert golden["torch"] == torch.__version__ and golden["timm"] == timm.__version__
    assert golden["sha256"] == sha256_file(exported / "golden.safetensors")


def test_an_unfinished_run_exports_with_a_warning_its_completed_epochs_and_its_recipe(run_dir, tmp_path):
    """The training fields release.json keeps (no local paths, nothing else) and the card's recipe line; an
    interrupted run is exported with a warning, and its epochs are those it completed, not those it planned."""
    logs = []
    export(run_dir, tmp_path / "finished", log=logs.append)
    assert not any(line.startswith("warning") for line in logs)
    training = dict(
        recipe="/home/me/recipes/cifar_adamw.yml",
        opt="adamw",
        lr=0.001,
        weight_decay=0.05,
        sched="cosine",
        global_batch_size=256,
        seed=1,
        mixed_precision="bf16",
        data_dir="/home/me/data",
        workers=4,
    )
    run = make_run(tmp_path / "run", status="interrupted", epochs=dict(completed=2, planned=3), training=training)
    logs = []
    out = export(run, tmp_path / "out", log=logs.append).path
    assert "warning: the run is 'interrupted', not finished" in logs
    release = json.loads((out / "release.json").read_text())
    kept = {k: v for k, v in training.items() if k not in ("data_dir", "workers")}  # no local paths or machine set-up
    assert release["training"] == dict(kept, recipe="cifar_adamw", epochs=2)  # the recipe's name, not its path
    readme = (out / "README.md").read_text()
    assert (
        "- **Recipe:** `cifar_adamw`: opt adamw, lr 0.001, weight_decay 0.05, sched cosine, global batch 256, "
        "2 epochs\n" in readme
    )
    assert "/home/me" not in readme and "/home/me" not in (out / "release.json").read_text()
    for recipe in ("/home/me/configs/cifar_adamw.json", "C:\\Users\\me\\cifar_adamw.json"):  # any config file
        run = make_run(tmp_path / "run2", training=dict(training, recipe=recipe))
        out = export(run, tmp_path / "out2", overwrite=True).path
        assert json.loads((out / "release.json").read_text())["training"]["recipe"] == "cifar_adamw", recipe
        assert "me" not in (out / "README.md").read_text().split("**Recipe:**")[1].split("\n")[0]


def test_explicit_tag_and_dataset_win_over_the_runs(run_dir, tmp_path):
    out = export(run_dir, tmp_path / "mixup", tag="mixup").path
    assert json.loads((out / "config.json").read_text())["pretrained_cfg"]["tag"] == "mixup"
    assert json.loads((out / "release.json").read_text())["tag"] == "mixup"
    assert "# Model card for zerosnet20_cifar.mixup\n" in (out / "README.md").read_text()
    # an ImageFolder run records no dataset of the Hub: --dataset names it
    run = make_run(tmp_path / "folder_run", dataset=dict(name="folder", val_split="validation"))
    out = export(run, tmp_path / "flowers", tag="flowers", dataset="myorg/flowers").path
    assert json.loads((out / "release.json").read_text())["dataset"] == "myorg/flowers"
    readme = (out / "README.md").read_text()
    assert front_matter(readme)["datasets"] == ["myorg/flowers"] and "- **Dataset:** myorg/flowers\n" in readme


def test_a_run_on_data_without_a_hub_id_gets_no_made_up_one_and_takes_the_hubs_from_dataset(tmp_path):
    """torch/mnist named the Hub dataset 'torch/mnist' in the card's metadata (a dead link), and digits the Hub
    dataset 'digits' (none such); now the card names none, and --dataset ORG/NAME links the run's data to its Hub
    copy, with a note."""
    run = make_run(tmp_path / "run", dataset=dict(name="torch/mnist", val_split="test"))
    out = export(run, tmp_path / "plain", tag="mnist").path
    readme = (out / "README.md").read_text()
    assert "datasets" not in front_matter(readme) and "- **Dataset:** torch/mnist\n" in readme
    digits = make_run(tmp_path / "digits", dataset=dict(name="digits", val_split="validation"))
    meta = front_matter((export(digits, tmp_path / "digits_out").path / "README.md").read_text())
    assert "datasets" not in meta and meta["model-index"][0]["results"][0]["dataset"]["type"] == "digits", meta
    logs: list[str] = []
    out = export(run, tmp_path / "linked", tag="mnist", dataset="ylecun/mnist", log=logs.append).path
    assert json.loads((out / "release.json").read_text())["dataset"] == "ylecun/mnist"
    assert front_matter((out / "README.md").read_text())["datasets"] == ["ylecun/mnist"]
    assert "note: the card links the data the run recorded as torch/mnist to the Hub dataset ylecun/mnist" in logs
    hfds = make_run(tmp_path / "hfds", dataset=dict(name="hfds/MyOrg/Flowers", val_split="validation"))
    out = export(hfds, tmp_path / "flowers", tag="flowers").path
    assert front_matter((out / "README.md").read_text())["datasets"] == ["MyOrg/Flowers"]


def test_a_dataset_that_contradicts_the_run_is_refused(run_dir, tmp_path):
    """The run records CIFAR-10: --dataset digits would have put the CIFAR-10 metrics on a card that calls them
    digits (and tagged the weights so). The same dataset in another spelling is fine."""
    with pytest.raises(
        HubError, match=r"^--dataset digits: the run was trained and evaluated on torch/cifar10 \(its run"
    ):
        export(run_dir, tmp_path / "wrong", dataset="digits")
    assert not (tmp_path / "wrong").exists()
    out = export(run_dir, tmp_path / "same", dataset="torch/cifar10").path
    assert json.loads((out / "release.json").read_text())["tag"] == "c10"


def test_a_known_dataset_is_never_the_hub_copy_of_a_runs_data_without_a_hub_id(tmp_path, capsys):
    """A digits run (data with no Hub id) given --dataset cifar10 exported with a note, and its card said "trained on
    CIFAR-10" (tag c10, datasets uoft-cs/cifar10) over the digits metrics. Only a Hub copy of the run's own data may be
    named so; a dataset the tool knows as another is refused, like a cifar100 run given --dataset cifar10."""
    run = make_run(tmp_path / "digits", dataset=dict(name="digits", val_split="validation"))
    for given in ("cifar10", "uoft-cs/cifar10", "torch/cifar100", "imagenet"):
        with pytest.raises(HubError, match=rf"^--dataset {re.escape(given)}: the run was trained and evaluated on "):
            export(run, tmp_path / "wrong", dataset=given)
    assert main(["export", str(run), "--out", str(tmp_path / "wrong"), "--dataset", "cifar10"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the run was trained and evaluated on digits (its run.json)" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]
    logs: list[str] = []
    out = export(run, tmp_path / "linked", dataset="myorg/digits", log=logs.append).path  # a Hub copy of digits
    release = json.loads((out / "release.json").read_text())
    assert release["tag"] == "digits" and release["dataset"] == "myorg/digits"
    assert "note: the card links the data the run recorded as digits to the Hub dataset myorg/digits" in logs
    mnist = make_run(tmp_path / "mnist", dataset=dict(name="torch/mnist", val_split="test"))
    with pytest.raises(HubError, match=r"^--dataset uoft-cs/cifar10: the run was trained and evaluated on torch/mn"):
        export(mnist, tmp_path / "wrong", tag="mnist", dataset="uoft-cs/cifar10")


def test_cli_refuses_empty_values_a_bad_license_or_branch_and_a_stage_it_cannot_do(run_dir, tmp_path, capsys):
    """Empty --tag / --dataset / --license / --repo-id / --commit-message fell back to defaults without a word, a
    license that is no identifier went into the card, a branch such as 'a b..c' reached the Hub only after the
    repo was created, and export --stage exported before finding out that it could not stage (no --repo-id, or a
    manifest in a folder that does not exist). Each is refused first, with nothing written."""
    out = tmp_path / "out"
    export_argv = ["export", str(run_dir), "--out", str(out)]
    for extra, message in (
        (["--tag", ""], "argument --tag: empty value: give one, or leave the option out"),
        (["--dataset", " "], "argument --dataset: empty value"),
        (["--license", ""], "argument --license: '' is not a Hub license identifier"),
        (["--license", "not a license!"], "'not a license!' is not a Hub license identifier"),
        (["--stage"], "export --stage: add --repo-id ORG/NAME"),
    ):
        with pytest.raises(SystemExit) as e:
            main([*export_argv, *extra])
        assert e.value.code == 2 and message in capsys.readouterr().err, extra
    manifest = tmp_path / "missing" / "releases.json"
    argv = [*export_argv, "--stage", "--repo-id", REPO, "--manifest", str(manifest)]
    assert main(argv) == 1
    assert f"its folder {manifest.parent} does not exist; create it" in capsys.readouterr().err
    assert not out.exists() and not manifest.parent.exists()
    assert main([*export_argv, "--repo-id", REPO, "--license", "cc-by-4.0"]) == 0
    assert front_matter((out / "README.md").read_text())["license"] == "cc-by-4.0"
    for extra, message in (
        (["--revision", ""], "argument --revision: '' is not a branch name"),
        (["--revision", "a b..c"], "'a b..c' is not a branch name"),
        (["--revision", "v1.lock"], "'v1.lock' is not a branch name"),
        (["--commit-message", ""], "argument --commit-message: empty value"),
        (["--repo-id", ""], "argument --repo-id: empty value"),
    ):
        repo = [] if extra[0] == "--repo-id" else ["--repo-id", REPO]
        with pytest.raises(SystemExit) as e:
            main(["push", str(out), *repo, "--dry-run", *extra])
        assert e.value.code == 2 and message in capsys.readouterr().err, extra
    assert main(["push", str(out), "--repo-id", REPO, "--dry-run", "--revision", "exp/lr-0.1"]) == 0
    assert "(revision exp/lr-0.1, public repo)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(model_args=dict(lam="abc")), "model_args .* do not build zerosnet20_cifar"),
        (dict(num_classes="ten"), "timm's local-dir: loader cannot build from it"),
    ],
)
def test_verify_names_a_config_that_does_not_build(exported, capsys, change, message):
    """A config.json edited into values of the wrong type gave ValueError / TypeError tracebacks."""
    config = json.loads((exported / "config.json").read_text())
    (exported / "config.json").write_text(json.dumps({**config, **change}))
    release = json.loads((exported / "release.json").read_text())  # as if edited before export: recorded
    release["config_sha256"] = hashlib.sha256((exported / "config.json").read_bytes()).hexdigest()
    (exported / "release.json").write_text(json.dumps(release))
    assert main(["verify", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(f"{re.escape(str(exported / 'config.json'))}: {message}", err), err


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_an_export_stopped_by_a_signal_leaves_nothing(run_dir, tmp_path, monkeypatch, capsys, signum):
    """SIGTERM half-way (kill, a scheduler) or SIGHUP (the terminal closed) left the hidden temporary folder behind,
    as the default handlers end the process at once; Ctrl-C cleaned up but printed a traceback. All now remove it and
    say so in one line, with the shell's status for the signal."""
    import signal

    from timm_zerosnet.hub import export as export_module

    real = export_module.write_golden

    def stopped_while_writing(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), getattr(signal, signum))

    monkeypatch.setattr(export_module, "write_golden", stopped_while_writing)
    # as in a terminal's foreground job: under `nohup` or a shell's `&`, pytest itself ignores SIGHUP / SIGINT, and
    # main() rightly leaves an ignored signal ignored (test_a_signal_ignored_by_the_caller_stays_ignored)
    sig = getattr(signal, signum)
    outer = signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    try:
        before = [signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)]
        assert main(["export", str(run_dir), "--out", str(tmp_path / "out")]) == 128 + sig
        assert capsys.readouterr().err == f"zerosnet-hub export: interrupted ({signum})\n"
        assert os.listdir(tmp_path) == ["runs"]
        assert [signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)] == before
    finally:
        signal.signal(sig, outer)


def test_a_failed_export_removes_the_folders_it_made_for_out(run_dir, tmp_path, monkeypatch):
    """--out new/folder/model: a failure removed the temporary folder but left new/folder behind, empty."""
    from timm_zerosnet.hub import export as export_module

    def failing(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_golden", failing)
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "new" / "folder" / "model", tmp_path / "kept" / "new" / "model"):
        with pytest.raises(OSError, match="No space left"):
            export_module.export(run_dir, out)
    assert sorted(os.listdir(tmp_path)) == ["kept", "runs"] and os.listdir(tmp_path / "kept") == []


def test_a_signal_ignored_by_the_caller_stays_ignored(run_dir, tmp_path, monkeypatch):
    """`nohup zerosnet-hub push ...` ignores SIGHUP so that the push outlives the terminal: main() must not stop on
    it, and leaves the disposition as it found it."""
    import signal

    from timm_zerosnet.hub import export as export_module

    real = export_module.write_golden

    def hung_up_while_writing(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(export_module, "write_golden", hung_up_while_writing)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert main(["export", str(run_dir), "--out", str(tmp_path / "out")]) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_refusals_name_the_fix_and_write_nothing(run_dir, tmp_path):
    bare = tmp_path / "w.safetensors"
    shutil.copy(run_dir / "model.safetensors", bare)
    with pytest.raises(HubError, match=r"w\.safetensors: no run\.json next to it says which model it is; pass --model"):
        export(bare, tmp_path / "a", tag="c10")
    with pytest.raises(HubError, match=r"no tag: the run names no dataset \(an ImageFolder run or a bare checkpoint"):
        export(bare, tmp_path / "b", model=MODEL)
    folder_run = make_run(run_dir.parent / "folder", dataset=dict(name="", data_dir="/data/x", val_split="validation"))
    with pytest.raises(HubError, match=r"no tag: the run names no dataset .*; pass --tag .*, and --dataset NAME"):
        export(folder_run, tmp_path / "b")
    with pytest.raises(HubError, match=r"no tag: the dataset 'myorg/flowers' has no default tag; pass --tag"):
        export(bare, tmp_path / "b", model=MODEL, dataset="myorg/flowers")
    with pytest.raises(HubError, match=r"weights must be one of \['best', 'ema', 'final'\], got 'last'"):
        export(run_dir, tmp_path / "c", weights="last")
    with pytest.raises(HubError, match=r"missing: no such run directory or checkpoint file"):
        export(tmp_path / "missing", tmp_path / "d", model=MODEL, tag="c10")
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(dict(info, label_names=["a", "b", "c"])))
    with pytest.raises(HubError, match=r"model\.safetensors: run\.json lists 3 label names for 10 classes"):
        export(run_dir, tmp_path / "e")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "w.safetensors"]
    # a bare file: no run, no recorded weights, no metrics
    release = json.loads((export(bare, tmp_path / "bare", model=MODEL, tag="c10").path / "release.json").read_text())
    assert release["run"] is None and release["weights"] is None and release["metrics"] == {}


def test_config_records_the_runs_model_kwargs_and_global_pool(tmp_path):
    """run.json's model_kwargs and global_pool reach config.json's model_args (a drop rate only when given); the
    pretrained cfg is the family's weightless one, not a released tag's (its notes describe other weights). How the
    run loaded its starting weights (pretrained_strict, in the run.json of runs before 2026-12-03) is left out: a
    loader of the published weights would have loaded them non-strict."""
    kwargs = {"lam": -1.5, "drop_path_rate": 0.1, "pretrained_strict": False}
    run = make_run(tmp_path / "run", model_kwargs=kwargs, global_pool="max")
    out = export(run, tmp_path / "out").path
    config = json.loads((out / "config.json").read_text())
    assert config["model_args"] == {
        "lam": -1.5,
        "drop_path_rate": 0.1,
        "num_classes": 10,
        "in_chans": 3,
        "global_pool": "max",
    }
    assert config["global_pool"] == "max"
    cfg = config["pretrained_cfg"]
    assert cfg["tag"] == "c10" and not {"description", "notes", "hf_hub_id"} & set(cfg)
    assert verify_export(out).timm_local_dir_exact


def test_the_runs_data_config_wins_over_the_architectures(tmp_path):
    """Recorded preprocessing replaces the defaults (a single mean / std spread over the channels); a run that
    recorded none gets the defaults, and a warning naming what is missing."""
    data_config = dict(
        input_size=[3, 40, 40], mean=[0.5], std=[0.25], interpolation="bicubic", crop_pct=0.875, crop_mode="squash"
    )
    logs = []
    out = export(make_run(tmp_path / "run", data_config=data_config), tmp_path / "out", log=logs.append).path
    cfg = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert cfg["input_size"] == [3, 40, 40] and cfg["mean"] == [0.5] * 3 and cfg["std"] == [0.25] * 3
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875 and cfg["crop_mode"] == "squash"
    assert not any(line.startswith("warning") for line in logs)
    assert load_weights(out / "golden.safetensors")["input"].shape == (4, 3, 40, 40)
    assert "  - Image size: 40 x 40 (3 channels)\n" in (out / "README.md").read_text()
    logs = []
    run = make_run(tmp_path / "sizeonly", data_config=dict(input_size=[3, 32, 32]))
    cfg = json.loads((export(run, tmp_path / "defaults", log=logs.append).path / "config.json").read_text())
    assert cfg["pretrained_cfg"]["mean"] == [0.4914, 0.4822, 0.4465]
    assert "warning: the run recorded no mean, std: config.json gets the architecture's defaults" in logs


def test_weights_files_named_in_run_json(tmp_path):
    """run.json may record other file names for a run's weights: --weights ema finds them, and the file itself is
    recognised as the run's EMA weights."""
    run = make_run(tmp_path / "run", weights=dict(final="model.safetensors", ema="averaged.safetensors", best=None))
    (run / "model_ema.safetensors").rename(run / "averaged.safetensors")
    ema = load_run_model(run, "averaged.safetensors")
    out = export(run, tmp_path / "ema", weights="ema").path
    assert check_golden(ema, out / "golden.safetensors").exact
    assert json.loads((out / "release.json").read_text())["metrics"]["top1"] == 91.0
    out = export(run / "averaged.safetensors", tmp_path / "file").path
    assert json.loads((out / "release.json").read_text())["weights"] == "ema"


def test_results_without_a_recorded_split_and_with_many_decimals(tmp_path):
    run = make_run(tmp_path / "run", dataset="torch/cifar10")  # a plain name: no val_split
    info = json.loads((run / "run.json").read_text())
    info["metrics"]["final"]["top1"] = 91.23456
    (run / "run.json").write_text(json.dumps(info))
    readme = (export(run, tmp_path / "out").path / "README.md").read_text()
    assert "| CIFAR-10 | validation | 10000 | 91.23 | 98.00 |" in readme
    (result,) = front_matter(readme)["model-index"][0]["results"]
    assert result["dataset"] == dict(name="CIFAR-10", type="uoft-cs/cifar10")
    assert result["metrics"][0]["value"] == pytest.approx(91.23456, abs=1e-4)


def test_dataset_names_as_timm_spells_them(tmp_path):
    from timm_zerosnet.hub.card import dataset_info

    for name, tag in (
        ("torch/cifar10", "c10"),
        ("hfds/uoft-cs/cifar10", "c10"),
        ("hf-hub:uoft-cs/cifar100", "c100"),
        ("CIFAR-100", "c100"),
        ("imagenet-1k", "in1k"),
        ("tfds/imagenet1k", "in1k"),
        ("ILSVRC2012", "in1k"),
        ("hfds/ILSVRC/imagenet-1k", "in1k"),
        ("digits", "digits"),
    ):
        assert dataset_info(name).tag == tag, name
    other = dataset_info("myorg/flowers")
    assert other.tag is None and other.hub_id == "myorg/flowers" and dataset_info("folder").hub_id is None
    # a Hub dataset behind timm's hfds/ prefix keeps its spelling; torch/, tfds/ and wds/ name no Hub dataset
    assert dataset_info("hfds/MyOrg/Flowers").hub_id == "MyOrg/Flowers"
    assert dataset_info("hfids/myorg/stream").hub_id == "myorg/stream"
    for name in ("torch/mnist", "tfds/mnist", "wds/shards/train"):
        assert dataset_info(name).hub_id is None and dataset_info(name).tag is None, name
    assert dataset_info("") is None and dataset_info(None) is None


def test_card_snippets_run_for_few_classes_and_their_shape_comments_are_true(tmp_path, monkeypatch, capsys):
    """Three classes (fewer than a top-5): the classification snippet runs; the feature maps' and the unpooled
    features' shapes the card prints in comments are those the model gives."""
    from PIL import Image

    out = export(make_run(tmp_path / "run", num_classes=3), tmp_path / "out", repo_id=REPO).path
    snippets = re.findall(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 36), (120, 30, 200)).save("image.png")
    scopes = []
    for code in snippets[:3]:
        scopes.append({})
        exec(compile(code.replace(f"hf-hub:{REPO}", f"local-dir:{out}"), "README.md", "exec"), scopes[-1])
    assert scopes[0]["top_class_indices"].shape == (1, 3) and "'c0'" in capsys.readouterr().out
    assert re.findall(r"# (torch\.Size\(\[.*?\]\))", snippets[1]) == [str(o.shape) for o in scopes[1]["output"]]
    unpooled = scopes[2]["model"].forward_features(torch.zeros(1, 3, 32, 32)).shape
    assert f"# unpooled: {tuple(unpooled)}" in snippets[2]
    assert f"# a (1, head_hidden_size) tensor: (1, {unpooled[1]})" in snippets[2]


def test_the_card_says_what_a_fine_tuned_model_started_from(run_dir, tmp_path):
    """A run started from released weights links them (front matter base_model: the Hub's model tree) and says
    whether only the head trained; one from a local run names that run, never its path; one from scratch says
    neither."""
    training = json.loads((run_dir / "run.json").read_text())["training"]
    hub_id = "timm-zerosnet/zerosnet20_cifar.digits"
    released = make_run(
        tmp_path / "from_release",
        training=dict(training, pretrained=True, freeze_backbone=True),
        pretrained_cfg=dict(architecture=MODEL, tag="digits", hf_hub_id=hub_id, file=None),
    )
    local = make_run(
        tmp_path / "from_local",
        training=dict(training, pretrained=False, pretrained_path="/home/me/runs/demo/model.safetensors"),
    )
    cards = {}
    for run in (released, local, run_dir):
        out = export(run, tmp_path / "out" / run.name).path
        readme = (out / "README.md").read_text()
        base = json.loads((out / "release.json").read_text())["training"].get("finetuned_from")
        cards[run.name] = (front_matter(readme).get("base_model"), base, readme)
    meta, base, readme = cards["from_release"]
    assert meta == hub_id and base == {"name": f"{MODEL}.digits", "hf_hub_id": hub_id, "frozen_backbone": True}
    assert (
        f"- **Fine-tuned from:** `{MODEL}.digits` ([{hub_id}](https://huggingface.co/{hub_id})), backbone frozen"
        in readme
    )
    meta, base, readme = cards["from_local"]
    assert meta is None and base == {"local": "demo", "frozen_backbone": False}
    assert "- **Fine-tuned from:** the weights of a local run or file (`demo`, not published)\n" in readme
    assert "/home/me" not in readme
    meta, base, readme = cards[run_dir.name]
    assert meta is None and base is None and "Fine-tuned" not in readme


def test_a_run_fine_tuned_from_a_released_tag_exports_as_its_architecture(run_dir, tmp_path):
    """zerosnet-train records --model as given: 'zerosnet20_cifar.digits' after --pretrained from a released tag,
    'hf-hub:ORG/NAME' from a Hub source (its pretrained cfg then names the architecture). The export builds and
    names the architecture, and --model with a tag is the architecture too."""
    info = json.loads((run_dir / "run.json").read_text())
    cfg = dict(architecture=MODEL, tag="digits", hf_hub_id="timm-zerosnet/zerosnet20_cifar.digits")
    for name, model in ((f"{MODEL}.digits", None), (f"hf-hub:{cfg['hf_hub_id']}", None), (None, f"{MODEL}.digits")):
        run = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(run_dir, run)
        (run / "run.json").write_text(json.dumps(dict(info, model=name or MODEL, pretrained_cfg=cfg)))
        out = export(run, tmp_path / f"out-{run.name}", model=model, tag="ft")
        config = json.loads((out.path / "config.json").read_text())
        assert out.model == MODEL and config["architecture"] == MODEL and out.golden_exact
    (run / "run.json").write_text(json.dumps(dict(info, model="zerosnet32_cifar.digits")))
    with pytest.raises(HubError, match="holds a 'zerosnet32_cifar'.*--model is 'zerosnet20_cifar'"):
        export(run, tmp_path / "refused", model=f"{MODEL}.digits")


def test_a_run_directory_without_the_asked_weights_says_why_and_what_it_has(run_dir, tmp_path):
    """The run layout's own diagnosis (train and validate give the same): an unfinished run has no final weights yet."""
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(dict(info, status="running")))
    (run_dir / "model.safetensors").unlink()
    expected = r"has no final weights \(model\.safetensors\) \(the run is running: final weights are written when it"
    with pytest.raises(HubError, match=expected + r" finishes\); use --weights ema$"):
        export(run_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_run_json_is_one_error_naming_it_for_a_run_a_weights_file_and_a_state(run_dir, tmp_path):
    """Every way into a run (its directory, a weights file in it, one of its training states) reads run.json as
    train and validate do: damaged JSON is a HubError naming the file and what to do, and nothing is written."""
    state = run_dir / "checkpoints" / "state-e0002-b000000"
    state.mkdir(parents=True)
    shutil.copy(run_dir / "model.safetensors", state / "model.safetensors")
    (run_dir / "run.json").write_text('{"model": ')
    expected = rf"{re.escape(str(run_dir / 'run.json'))} is not valid JSON .*: restore it"
    for source in (run_dir, run_dir / "model.safetensors", state):
        with pytest.raises(HubError, match=expected):
            export(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----- the card's shapes are the exported network's; refusals before any work -----


def _card_shapes_are_the_models(out: Path, size: int = 32) -> str:
    """The shapes the card prints (feature maps, unpooled and pooled features) are those of the folder's network,
    loaded as the snippets load it; returns the card."""
    readme = (out / "README.md").read_text()
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        maps = timm.create_model(f"local-dir:{out}", pretrained=True, features_only=True).eval()(x)
        embedder = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=0).eval()
        pooled = embedder(x)
        unpooled = embedder.forward_features(x)
        assert embedder.forward_head(unpooled, pre_logits=True).shape == pooled.shape
    _, features, embeddings = re.findall(r"```python\n(.*?)```", readme, re.S)[:3]
    assert re.findall(r"# (torch\.Size\(\[.*?\]\))", features) == [str(m.shape) for m in maps]
    assert f"# unpooled: {tuple(unpooled.shape)}" in embeddings
    assert f"pre_logits=True)  # {tuple(pooled.shape)}" in embeddings
    assert f"# a (1, head_hidden_size) tensor: {tuple(pooled.shape)}" in embeddings
    return readme


def test_card_gives_the_width_of_features_a_widening_pool_returns(tmp_path):
    """A run trained with --gp catavgmax pools to twice num_features: the card's embedding width is what the model
    returns (it used to print num_features)."""
    run = make_run(tmp_path / "run", global_pool="catavgmax")
    torch.manual_seed(0)
    model = timm.create_model(MODEL, num_classes=10, global_pool="catavgmax")  # its classifier takes 128 features
    safetensors.torch.save_file(model.state_dict(), str(run / "model.safetensors"))
    out = export(run, tmp_path / "out", repo_id=REPO).path
    assert json.loads((out / "config.json").read_text())["model_args"]["global_pool"] == "catavgmax"
    readme = _card_shapes_are_the_models(out)
    assert "tensor: (1, 128)" in readme and "# unpooled: (1, 64, 8, 8)" in readme


def test_card_gives_the_feature_maps_of_learned_strides(tmp_path):
    """DiffStride learns its strides: the card's feature-map and unpooled shapes are measured on the exported network
    (they used to be the input size divided by the nominal reductions)."""
    model, out = _export_learned_strides(tmp_path, repo_id=REPO)
    readme = _card_shapes_are_the_models(out)
    nominal = [
        f"torch.Size([1, {f['num_chs']}, {32 // f['reduction']}, {32 // f['reduction']}])" for f in model.feature_info
    ]
    assert not set(nominal) <= set(re.findall(r"# (torch\.Size\(\[.*?\]\))", readme))  # the strides are not nominal


def test_an_out_under_a_file_is_refused_before_any_work(run_dir, tmp_path, monkeypatch, capsys):
    """--out afile/sub, afile a file: refused naming the file, before the weights are read (it used to fail with
    FileExistsError from mkdir after building the model)."""
    from timm_zerosnet.hub import export as export_module

    afile = tmp_path / "afile"
    afile.write_text("in the way")

    def not_read(*args, **kwargs):
        raise AssertionError("the run was read before --out was checked")

    monkeypatch.setattr(export_module, "read_run", not_read)
    for out in (afile / "sub", afile / "sub" / "deeper"):
        with pytest.raises(HubError, match=re.escape(f"--out {out}: {afile} is a file, not a folder")):
            export(run_dir, out)
    expected = f"--out {afile / 'sub'}: {afile} is a file, not a folder"
    assert main(["export", str(run_dir), "--out", str(afile / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert afile.read_text() == "in the way" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "runs"]


def test_a_release_json_that_is_not_an_object_is_not_an_exports(exported, capsys):
    """A release.json of valid JSON that is no object (an array) is refused as not an export's, by verify, stage,
    push and install-local alike (read_export), and the command line says so in one line."""
    (exported / "release.json").write_text("[]\n")
    expected = f"{exported / 'release.json'}: valid JSON but not an object, so not the release.json of an export"
    with pytest.raises(HubError, match=re.escape(expected) + "; export the folder again"):
        verify_export(exported)
    assert main(["verify", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_a_golden_file_of_another_export_is_refused_by_its_recorded_sha256(exported, tmp_path, capsys):
    """golden.safetensors copied from a 1-channel export made verify (and stage) fail with a conv's RuntimeError
    traceback: release.json records the golden file's sha256, and reading the export now checks it."""
    weights = tmp_path / "gray.safetensors"
    safetensors.torch.save_file(timm.create_model(MODEL, num_classes=10, in_chans=1).state_dict(), str(weights))
    gray = export(weights, tmp_path / "gray", model=MODEL, tag="gray").path
    shutil.copy(gray / "golden.safetensors", exported / "golden.safetensors")
    found = hashlib.sha256((gray / "golden.safetensors").read_bytes()).hexdigest()
    expected = f"{exported / 'golden.safetensors'}: sha256 {found} differs from the one recorded at export"
    reason = "the golden file does not belong to these weights or was changed: export again."
    for check in (read_export, verify_export):
        with pytest.raises(HubError, match=re.escape(expected) + r" \([0-9a-f]{64}\); " + re.escape(reason)):
            check(exported)
    manifest = tmp_path / "releases.json"
    for argv in (["verify", str(exported)], ["stage", str(exported), "--manifest", str(manifest)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err and reason in err and "Traceback" not in err, err
    assert not manifest.exists()


@pytest.mark.parametrize("model_args", [[1], "lam=-1.5", 3])
def test_a_config_whose_model_args_are_no_object_is_one_error(exported, capsys, model_args):
    """A folder without release.json whose config.json has model_args [1] gave "TypeError: cannot convert dictionary
    update sequence element" from verify; reading the export names the field."""
    (exported / "release.json").unlink()
    config = json.loads((exported / "config.json").read_text())
    (exported / "config.json").write_text(json.dumps(dict(config, model_args=model_args)))
    expected = (
        f"{exported / 'config.json'}: model_args is {json.dumps(model_args)}, not an object of model arguments "
        f"(name: value); correct it, or export again."
    )
    with pytest.raises(HubError, match=re.escape(expected)):
        verify_export(exported)
    assert main(["verify", str(exported)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err, err


def test_the_model_kwargs_of_weights_without_a_run_json_are_given_or_warned_and_an_export_is_no_source(tmp_path):
    """The scheme's coefficients (lam) are no tensors: weights without their run.json loaded strictly into the
    default lam and were published as another function, verified against itself. An export folder used as the
    source (it has no run.json) lost its model_args that way; it is refused. A bare file takes --model-kwargs (the
    CLI had none) and is warned about without them; a run.json's are not overridden."""
    run = make_run(tmp_path / "run", model_kwargs={"lam": -1.5})
    first = export(run, tmp_path / "first").path
    for source in (first, first / "model.safetensors"):
        with pytest.raises(
            HubError, match=r"first is an export folder \(config.json, release.json\), not a training run: export again"
        ):
            export(source, tmp_path / "again", model=MODEL, dataset="cifar10")
    assert not (tmp_path / "again").exists()
    bare = tmp_path / "bare.safetensors"
    shutil.copy(run / "model.safetensors", bare)
    logged: list[str] = []
    given = export(
        bare, tmp_path / "given", model=MODEL, dataset="cifar10", model_kwargs={"lam": -1.5}, log=logged.append
    )
    assert not any("default options" in line for line in logged)
    golden = safetensors.torch.load_file(str(first / "golden.safetensors"))
    assert torch.equal(safetensors.torch.load_file(str(given.path / "golden.safetensors"))["logits"], golden["logits"])
    assert json.loads((given.path / "config.json").read_text())["model_args"]["lam"] == -1.5
    logged.clear()
    export(bare, tmp_path / "defaults", model=MODEL, dataset="cifar10", log=logged.append)
    assert (
        f"warning: no run.json next to bare.safetensors: {MODEL} is built with its default options; pass "
        "--model-kwargs (e.g. lam=-1.5) if the weights were trained with others"
    ) in logged
    with pytest.raises(HubError, match=r"--model-kwargs lam=-1.2: the run was trained with lam=-1.5 \(its run.json\)"):
        export(run, tmp_path / "other", model_kwargs={"lam": -1.2})
    assert (
        main(
            [
                str(x)
                for x in (
                    "export",
                    bare,
                    "--out",
                    tmp_path / "cli",
                    "--model",
                    MODEL,
                    "--dataset",
                    "cifar10",
                    "--model-kwargs",
                    "lam=-1.5",
                )
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["model_args"]["lam"] == -1.5


def test_an_export_loads_with_its_own_cfg_through_local_dir_and_its_file_alone_says_whose_cfg_it_gets(exported):
    """pretrained_cfg_overlay=dict(file=...) of an export's weights loaded them into the registry tag's pretrained cfg
    (the digits release's label names) without a word; the folder itself gave timm's bare FileNotFoundError."""
    import warnings

    labels = json.loads((exported / "config.json").read_text())["label_names"]
    default = timm.create_model(MODEL).pretrained_cfg
    assert labels != list(default["label_names"])  # CIFAR-10's names against the default tag's
    with pytest.warns(
        UserWarning, match=rf"config\.json whose label_names differ .*'local-dir:{re.escape(str(exported))}'"
    ):
        net = timm.create_model(
            MODEL, pretrained=True, pretrained_cfg_overlay=dict(file=str(exported / "model.safetensors"))
        )
    assert list(net.pretrained_cfg["label_names"]) == list(default["label_names"])
    with pytest.raises(FileNotFoundError, match=rf"is a folder of weights .*'local-dir:{re.escape(str(exported))}'"):
        timm.create_model(MODEL, pretrained=True, pretrained_cfg_overlay=dict(file=str(exported)))
    net = timm.create_model(f"local-dir:{exported}", pretrained=True)
    assert list(net.pretrained_cfg["label_names"]) == labels
    same = exported.parent / "same"  # a folder whose config.json agrees with the tag's cfg: no warning
    same.mkdir()
    config = json.loads((exported / "config.json").read_text())
    config["label_names"] = list(default["label_names"])
    config["pretrained_cfg"].update(mean=list(default["mean"]), std=list(default["std"]))
    (same / "config.json").write_text(json.dumps(config))
    shutil.copy(exported / "model.safetensors", same / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        timm.create_model(MODEL, pretrained=True, pretrained_cfg_overlay=dict(file=str(same / "model.safetensors")))


def test_model_kwargs_the_model_refuses_or_the_weights_fix_are_one_line_errors(tmp_path, capsys):
    """--model-kwargs lam=abc / lam=0 (refused by the family) and num_classes=5 (refused by timm's save_for_hf)
    printed a raw traceback. Each is now one line naming the fix; num_classes and in_chans, which the weights hold,
    are refused even when they agree, while global_pool (which the weights cannot tell) is taken from a bare file."""
    bare = tmp_path / "bare.safetensors"
    safetensors.torch.save_file(trained_like_model().state_dict(), str(bare))
    expected = {
        "lam=abc": f"--model-kwargs lam=abc: {MODEL} cannot be built with them (ZeroSNet lambda must be a finite "
        "non-zero number, got 'abc'); give the family options the weights were trained with",
        "lam=0": "--model-kwargs lam=0: zerosnet20_cifar cannot be built with them (ZeroSNet lambda must be a finite",
        "num_classes=5": "--model-kwargs num_classes=5: the number of classes is not a family option: export reads "
        "it from the run.json or the weights (bare.safetensors: a classifier of 10 classes). Leave num_classes out; "
        f"to publish a 5-class model, fine-tune these weights (zerosnet-train --pretrained-path {bare} "
        "--num-classes 5) and export that run.",
        "in_chans=1": "(bare.safetensors: a first conv of 3 input channels). Leave in_chans out; to publish a model "
        f"of 1-channel images, fine-tune these weights (zerosnet-train --pretrained-path {bare} --in-chans 1)",
        "num_classes=10": "(bare.safetensors: a classifier of 10 classes). Leave num_classes out.\n",
    }
    for kwarg, message in expected.items():
        args = ["export", str(bare), "--out", str(tmp_path / "out"), "--model", MODEL, "--tag", "t1"]
        assert main([*args, "--model-kwargs", kwarg]) == 1, kwarg
        err = capsys.readouterr().err
        assert err.startswith("zerosnet-hub export: error: ") and err.count("\n") == 1, err
        assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.safetensors"]
    out = export(bare, tmp_path / "max", model=MODEL, tag="t1", model_kwargs={"global_pool": "max"}).path
    assert json.loads((out / "config.json").read_text())["model_args"]["global_pool"] == "max"


def _run_card_snippet(out: Path, image: PIL.Image.Image, section: str = "Image Classification") -> None:
    """Run one of the card's snippets on ``image`` (saved as image.png in the working directory), loading ``out``
    through timm's local-dir: loader instead of the Hub."""
    image.save("image.png")
    readme = (out / "README.md").read_text()
    code = re.search(rf"### {section}\n```python\n(.*?)```", readme, re.S).group(1)
    model_id = re.search(r"timm\.create_model\('([^']+)'", code).group(1)
    exec(code.replace(f"'{model_id}'", f"'local-dir:{out}'"), {})


def test_card_snippets_open_images_in_the_mode_of_the_models_channels(tmp_path, monkeypatch):
    """A 4-channel model's card converted images to 'L' (1 channel), and its snippets failed; RGBA now, whose
    snippets run."""
    monkeypatch.chdir(tmp_path)
    stats = dict(input_size=[4, 32, 32], mean=[0.5] * 4, std=[0.25] * 4, crop_pct=1.0)
    run = make_run(tmp_path / "run", in_chans=4, data_config=stats)
    torch.manual_seed(0)
    net = timm.create_model(MODEL, num_classes=10, in_chans=4)
    safetensors.torch.save_file(net.state_dict(), str(run / "model.safetensors"))
    out = export(run, tmp_path / "rgba").path
    readme = (out / "README.md").read_text()
    assert readme.count(".convert('RGBA')") == 3 and ".convert('L')" not in readme
    assert "  - Image size: 32 x 32 (4 channels)\n" in readme
    for section in ("Image Classification", "Feature Map Extraction", "Image Embeddings"):
        _run_card_snippet(out, PIL.Image.new("RGB", (40, 40), (10, 20, 30)), section)


def test_the_runs_image_mode_reaches_config_json_and_the_card(tmp_path, monkeypatch, capsys):
    """A run trained with --input-img-mode YCbCr was published as if it took RGB images: config.json said nothing,
    the card's snippets converted to RGB, and its metrics could not be reproduced. The mode is now a top-level key of
    config.json (timm's pretrained cfg has no such field, and its loader refuses unknown ones), the card converts to
    it and says so, and stage refuses to make it a registry tag, whose cfg cannot carry it. A mode that does not fit
    the model's channels is refused."""
    from timm_zerosnet.hub.manifest import NotARegistryTag, stage

    monkeypatch.chdir(tmp_path)
    dataset = dict(name="torch/cifar10", val_split="test", input_img_mode="YCbCr")
    out = export(make_run(tmp_path / "run", dataset=dataset), tmp_path / "ycc", repo_id=REPO).path
    config = json.loads((out / "config.json").read_text())
    assert config["input_img_mode"] == "YCbCr" and "input_img_mode" not in config["pretrained_cfg"]
    readme = (out / "README.md").read_text()
    assert readme.count(".convert('YCbCr')") == 3 and ".convert('RGB')" not in readme
    assert "  - Image size: 32 x 32 (3 channels, YCbCr)\n" in readme
    assert "The model was trained and evaluated on images converted to YCbCr (PIL mode `YCbCr`" in readme
    verify_export(out)  # timm's local-dir: loader reads the folder (an unknown pretrained_cfg key would break it)
    image = PIL.Image.new("RGB", (32, 32), (200, 30, 90))
    _run_card_snippet(out, image)
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        logits = model(transform(image.convert("YCbCr")).unsqueeze(0))
    top = torch.topk(logits.softmax(dim=1) * 100, k=5)
    shown = [(CIFAR10_LABELS[i], float(p)) for p, i in zip(top.values[0], top.indices[0])]
    assert capsys.readouterr().out.strip() == str(shown)  # the snippet feeds the model YCbCr, as training did
    with pytest.raises(NotARegistryTag, match=r"trained on YCbCr images \(config.json's input_img_mode\), which a"):
        stage(out, tmp_path / "releases.json")

    rgb = export(make_run(tmp_path / "rgb", dataset=dict(dataset, input_img_mode="RGB")), tmp_path / "rgbout").path
    assert json.loads((rgb / "config.json").read_text())["input_img_mode"] == "RGB"
    rgb_readme = (rgb / "README.md").read_text()  # the channel count's usual mode: the card as before
    assert "(3 channels)\n" in rgb_readme and "images converted to" not in rgb_readme
    assert rgb_readme.count(".convert('RGB')") == 3
    with pytest.raises(
        HubError, match=r"records dataset.input_img_mode 'L', which gives 1-channel images, for a model"
    ):
        export(make_run(tmp_path / "bad", dataset=dict(dataset, input_img_mode="L")), tmp_path / "bad_out")
    assert not (tmp_path / "bad_out").exists()


def test_the_source_as_out_is_refused_without_advising_overwrite(run_dir, tmp_path, capsys):
    """--out naming the run itself (or its parent) said "exists; pass --overwrite to replace it", and --overwrite was
    then refused as the source: one error, the one that says what to do, with or without --overwrite."""
    for out, word in ((run_dir, "is"), (run_dir.parent, "holds")):
        for overwrite in (False, True):
            with pytest.raises(HubError, match=f"--out .* {word} the source .* Choose another --out") as e:
                export(run_dir, out, overwrite=overwrite)
            assert "--overwrite" not in str(e.value)
    assert main(["export", str(run_dir), "--out", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the source" in err and "pass --overwrite" not in err, err
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "run.json").is_file()


def test_a_file_of_no_weights_is_refused_as_such_before_any_warning(run_dir, tmp_path, capsys):
    """A run's run.json or args.yaml given as the source was read as weights of no run: two warnings (no metrics),
    then "unsupported weights format '.json'"; checkpoints/latest asked for --model; a training state's optimizer.bin
    was read as weights. Each is now one error naming what the file is and what to pass instead, in the words of
    every tool that reads weights (the run layout's)."""
    state = run_dir / "checkpoints" / "state-e0003-b000000"
    state.mkdir(parents=True)
    (run_dir / "checkpoints" / "latest").write_text(state.name + "\n")
    (state / "optimizer.bin").write_bytes(b"")  # a .bin was read as weights: "cannot read it"
    (tmp_path / "notes.txt").write_text("not weights")
    cases = {
        run_dir / "run.json": f"is the run's run.json, not a weights file: pass the run folder {run_dir}",
        run_dir / "args.yaml": f"is the run's args.yaml, not a weights file: pass the run folder {run_dir}",
        run_dir / "checkpoints" / "latest": f"names the run's latest training state, {state.name}, and holds no "
        f"weights: pass that state folder {state}",
        state / "optimizer.bin": f"is the optimizer state of the training state {state}, not weights: pass the state "
        "folder",
        tmp_path / "notes.txt": r"is not a weights file \(.safetensors, .bin, .pth, .pt, .ckpt, .tar\)",
    }
    for source, message in cases.items():
        with pytest.raises(HubError, match=message):
            export(source, tmp_path / "out", model=MODEL, tag="c10")
        assert main(["export", str(source), "--out", str(tmp_path / "out"), "--model", MODEL, "--tag", "c10"]) == 1
        captured = capsys.readouterr()
        assert "warning" not in captured.out and captured.err.count("\n") == 1, captured
    assert not (tmp_path / "out").exists()


def test_an_export_without_its_card_is_refused_before_it_is_pushed_or_installed(exported, tmp_path, capsys):
    """An export folder (release.json) whose README.md is gone verified, staged, pushed and installed without a word:
    the Hub repo got weights without a model card."""
    (exported / "README.md").unlink()
    message = "no README.md, the model card export wrote beside release.json; restore it, or export again"
    for check in (
        read_export,
        verify_export,
        lambda folder: push(folder, REPO, dry_run=True),
        lambda folder: install_local(folder, REPO, cache_dir=tmp_path / "cache"),
    ):
        with pytest.raises(HubError, match=message):
            check(exported)
    assert not (tmp_path / "cache").exists()
    assert main(["verify", str(exported)]) == 1
    assert message in capsys.readouterr().err


def test_a_run_trained_on_part_of_its_split_says_so_on_the_card(tmp_path):
    """A run trained with --train-num-samples 64 (run.json: dataset.train_num_samples) was carded as trained on the
    whole dataset; release.json and the card's dataset line now give the subset. A run on all of it (no count
    recorded) says nothing more."""
    dataset = dict(name="torch/cifar10", val_split="test", train_num_samples=64, num_train=64)
    out = export(make_run(tmp_path / "part", dataset=dataset), tmp_path / "part_out").path
    assert json.loads((out / "release.json").read_text())["training"]["train_samples"] == 64
    assert "- **Dataset:** CIFAR-10, a subset of 64 training images\n" in (out / "README.md").read_text()
    whole = export(make_run(tmp_path / "whole"), tmp_path / "whole_out").path
    assert "train_samples" not in json.loads((whole / "release.json").read_text())["training"]
    assert "- **Dataset:** CIFAR-10\n" in (whole / "README.md").read_text()


def test_a_tag_that_names_another_dataset_is_refused(tmp_path, capsys):
    """The tags c10 / c100 / in1k / digits name datasets: --tag c10 (or c10_s1) on a CIFAR-100 run, or on weights of
    100 classes that name no dataset, would publish a CIFAR-100 model as zerosnet20_cifar.c10. Refused, naming both
    and the tag to pass; a tag of the run's own dataset, or one that names none, is taken."""
    c100 = make_run(tmp_path / "c100", num_classes=100, dataset=dict(name="torch/cifar100", val_split="test"))
    for tag in ("c10", "c10_s1", "in1k"):
        with pytest.raises(
            HubError,
            match=rf"--tag {tag} names .*, but the weights were trained on CIFAR-100 "
            rf"\(torch/cifar100\): pass --tag c100 \(or a suffixed one, e\.g\. c100_s1\)",
        ):
            export(c100, tmp_path / tag, tag=tag)
        assert not (tmp_path / tag).exists()
    assert main(["export", str(c100), "--out", str(tmp_path / "cli"), "--tag", "c10"]) != 0
    assert "--tag c10 names CIFAR-10, but the weights were trained on CIFAR-100" in capsys.readouterr().err
    assert export(c100, tmp_path / "ok", tag="c100_s1").tag == "c100_s1"
    assert export(c100, tmp_path / "mine", tag="mine").tag == "mine"
    # timm's fine-tune tags name the data the weights end on after _ft_ (in22k_ft_in1k)
    assert export(c100, tmp_path / "ft", tag="in1k_ft_c100").tag == "in1k_ft_c100"
    with pytest.raises(HubError, match=r"--tag c100_ft_c10 names CIFAR-10, but the weights were trained on CIFAR-100"):
        export(c100, tmp_path / "ft10", tag="c100_ft_c10")
    unnamed = make_run(tmp_path / "unnamed", num_classes=100, dataset=dict(name="", val_split="validation"))
    with pytest.raises(HubError, match=r"--tag c10 names CIFAR-10 \(10 classes\), but the weights have 100 classes"):
        export(unnamed, tmp_path / "u", tag="c10")
    assert export(make_run(tmp_path / "ten", dataset=dict(name="", val_split="test")), tmp_path / "t", tag="c10")


def test_out_that_overwrite_would_refuse_is_refused_first_for_its_reason(run_dir, tmp_path):
    """--out naming a folder that export did not write, or a file, was first told "pass --overwrite", which then
    refused too: the refusal that --overwrite would give now comes first, and --overwrite is advised only where it
    works (an earlier export)."""
    other = tmp_path / "nonempty"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, reason in ((other, "is not a folder written by export"), (a_file, "exists and is not a folder")):
        for overwrite in (False, True):
            with pytest.raises(HubError, match=reason):
                export(run_dir, out, overwrite=overwrite)
    earlier = export(run_dir, tmp_path / "earlier").path
    with pytest.raises(HubError, match="exists; pass --overwrite to replace it"):
        export(run_dir, earlier)
    assert (other / "notes.txt").read_text() == "mine" and a_file.read_text() == "x"


def test_a_wrong_model_for_a_bare_file_is_the_first_error(tmp_path):
    """A bare weights file with a --model that is not ours, or that the weights do not fit, was first asked for
    --tag (after a warning to pass lam=...), and refused only once the tag was given: the decisive error comes
    first, with no warning before it."""
    bare = tmp_path / "bare"
    bare.mkdir()
    safetensors.torch.save_file(trained_like_model().state_dict(), str(bare / "w.safetensors"))
    for model, reason in (
        ("resnet18", "'resnet18' is not a timm_zerosnet model"),
        ("zerosnet56_cifar", "does not fit"),
    ):
        logs = []
        with pytest.raises(HubError, match=reason):
            export(bare / "w.safetensors", tmp_path / "out", model=model, log=logs.append)
        assert logs == []
    with pytest.raises(HubError, match="no tag"):
        export(bare / "w.safetensors", tmp_path / "out", model=MODEL)
