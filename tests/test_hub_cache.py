"""install-local and the offline round trip: run dir -> export -> stage -> local HF cache -> timm, bit for bit.

Every load here runs with HF_HUB_OFFLINE=1 against a cache under tmp_path (see ``hf_cache``); a temporary manifest
registers the tag, so the package's releases.json is never touched.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import timm
import torch
from huggingface_hub import scan_cache_dir, try_to_load_from_cache
from test_hub_export import MODEL, REPO, hf_cache, load_run_model, make_run  # noqa: F401  (hf_cache: a fixture)

from hub import HubError
from hub.cache import install_local, local_revision
from hub.cli import main
from hub.export import export
from hub.manifest import stage
from timm_zerosnet.release import (
    ReleaseError,
    check_golden,
    find_release,
    release_weights_overlay,
    resolve_release_file,
    use_manifest,
)

TAG = "c10"


@pytest.fixture
def release(tmp_path, hf_cache):  # noqa: F811
    """A run exported, staged in a temporary manifest and installed in the offline cache."""
    run = make_run(tmp_path / "run")
    folder = export(run, tmp_path / "export", repo_id=REPO).path
    manifest = tmp_path / "releases.json"
    stage(folder, manifest)
    installed = install_local(folder, REPO, manifest=manifest)
    return dict(run=run, folder=folder, manifest=manifest, installed=installed, cache=hf_cache)


def _outputs(model, x):
    with torch.no_grad():
        return model.eval()(x)


def test_cache_layout_is_what_a_download_leaves(release):
    cache, folder = release["cache"], release["folder"]
    repo_dir = cache / "models--testorg--zerosnet20_cifar.c10"
    revision = (repo_dir / "refs" / "main").read_text()
    assert re.fullmatch(r"[0-9a-f]{40}", revision) and revision == release["installed"].revision
    weights = (folder / "model.safetensors").read_bytes()
    config = (folder / "config.json").read_bytes()
    sha256 = hashlib.sha256(weights).hexdigest()
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()
    assert (repo_dir / "blobs" / sha256).read_bytes() == weights  # LFS file: named by its sha256
    assert (repo_dir / "blobs" / git_sha1).read_bytes() == config  # small file: named by its git blob sha1
    link = repo_dir / "snapshots" / revision / "model.safetensors"
    assert link.is_symlink() and link.resolve() == (repo_dir / "blobs" / sha256).resolve()

    assert try_to_load_from_cache(REPO, "model.safetensors", cache_dir=cache) == str(link)
    assert try_to_load_from_cache(REPO, "config.json", cache_dir=cache, revision=revision)
    info = scan_cache_dir(cache)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.repo_type == "model" and set(repo.refs) == {"main"}
    (rev,) = repo.revisions
    assert rev.commit_hash == revision
    assert {f.file_name for f in rev.files} == {p.name for p in folder.iterdir()}

    again = install_local(folder, REPO, manifest=release["manifest"])  # idempotent, same revision
    assert again.revision == revision and len(scan_cache_dir(cache).repos) == 1


def test_round_trip_is_bit_identical_through_every_route(release):
    trained = load_run_model(release["run"])
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = _outputs(trained, x)
    golden = release["folder"] / "golden.safetensors"
    with use_manifest(release["manifest"]):
        assert f"{MODEL}.{TAG}" in timm.list_pretrained(f"{MODEL}*")
        models = {
            "registry tag": timm.create_model(f"{MODEL}.{TAG}", pretrained=True),
            "registry default": timm.create_model(MODEL, pretrained=True),
            "hf-hub": timm.create_model(f"hf-hub:{REPO}", pretrained=True),
            "local-dir": timm.create_model(f"local-dir:{release['folder']}", pretrained=True),
        }
    for route, model in models.items():
        assert torch.equal(_outputs(model, x), expected), route
        assert check_golden(model, golden).exact, route
    cfg = models["hf-hub"].pretrained_cfg
    assert cfg["label_names"][0] == "airplane" and cfg["mean"][0] == 0.4914 and cfg["tag"] == TAG
    registry_cfg = models["registry tag"].pretrained_cfg
    assert registry_cfg["hf_hub_id"] == REPO and registry_cfg["num_classes"] == 10
    assert registry_cfg["crop_pct"] == 1.0 and registry_cfg["interpolation"] == "bilinear"


@pytest.mark.parametrize("route", ["registry", "hf-hub", "local-dir"])
def test_adapting_head_and_stem_keeps_the_backbone(release, route):
    name = {"registry": f"{MODEL}.{TAG}", "hf-hub": f"hf-hub:{REPO}", "local-dir": f"local-dir:{release['folder']}"}
    trained = load_run_model(release["run"]).state_dict()
    with use_manifest(release["manifest"]):
        five = timm.create_model(name[route], pretrained=True, num_classes=5)
        gray = timm.create_model(name[route], pretrained=True, in_chans=1)
    assert five.fc.weight.shape == (5, 64)
    assert all(torch.equal(v, trained[k]) for k, v in five.state_dict().items() if not k.startswith("fc."))
    assert gray.conv1.weight.shape == (16, 1, 3, 3)
    assert torch.equal(gray.conv1.weight, trained["conv1.weight"].sum(dim=1, keepdim=True))
    assert all(torch.equal(v, trained[k]) for k, v in gray.state_dict().items() if k != "conv1.weight")


def test_card_snippets_run_offline(release, tmp_path, monkeypatch, capsys):
    from PIL import Image

    readme = (release["folder"] / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 36), (120, 30, 200)).save("image.png")
    for code in snippets:
        scope: dict = {}
        exec(compile(code, "README.md", "exec"), scope)
        if "check_golden" in code:
            assert "exact=True" in capsys.readouterr().out
            continue
        outputs = scope["output"] if isinstance(scope["output"], list) else [scope["output"]]
        assert all(o.shape[0] == 1 for o in outputs)


def test_staged_tag_not_in_cache_says_not_pushed(release, tmp_path):
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    empty_cache = tmp_path / "empty"
    with pytest.raises(
        ReleaseError,
        match=r"zerosnet20_cifar\.c10 is staged but has not been pushed yet.*"
        r"zerosnet-hub install-local",
    ):
        resolve_release_file(entry, cache_dir=empty_cache)
    assert resolve_release_file(entry) == str(release["installed"].files["model.safetensors"])


def test_weights_whose_sha256_differs_from_the_manifest_are_refused(release):
    blob = release["installed"].files["model.safetensors"].resolve()
    blob.write_bytes(blob.read_bytes()[:-8])  # a truncated download
    with use_manifest(release["manifest"]):
        cfg = timm.models.get_pretrained_cfg(f"{MODEL}.{TAG}")
        with pytest.raises(
            ReleaseError,
            match=r"refusing .*model\.safetensors: its sha256 is [0-9a-f]{64} but the "
            r"release manifest records [0-9a-f]{64} for zerosnet20_cifar\.c10",
        ):
            release_weights_overlay(cfg)


def test_overlay_leaves_other_sources_alone(release):
    with use_manifest(release["manifest"]):
        cfg = timm.models.get_pretrained_cfg(f"{MODEL}.{TAG}")
        path = release_weights_overlay(cfg, {"num_classes": 10})
        assert path == {"num_classes": 10, "file": str(release["installed"].files["model.safetensors"])}
        assert release_weights_overlay(dict(cfg.__dict__, source="hf-hub")) is None
        assert release_weights_overlay(dict(cfg.__dict__, file="/x.safetensors"), {"a": 1}) == {"a": 1}
        assert release_weights_overlay(timm.models.get_pretrained_cfg(f"{MODEL}.untrained")) is None


def test_builder_refuses_a_staged_tag_missing_from_the_cache(release, tmp_path):
    with use_manifest(release["manifest"]):
        with pytest.raises(ReleaseError, match="has not been pushed yet"):
            timm.create_model(f"{MODEL}.{TAG}", pretrained=True, cache_dir=tmp_path / "empty")


def test_builder_refuses_weights_that_differ_from_the_manifest(release):
    blob = release["installed"].files["model.safetensors"].resolve()
    blob.write_bytes(blob.read_bytes()[:-8])
    with use_manifest(release["manifest"]):
        with pytest.raises(ReleaseError, match="its sha256 is"):
            timm.create_model(f"{MODEL}.{TAG}", pretrained=True)


def test_install_local_files_a_published_release_under_its_hub_commit(release, tmp_path):
    manifest = json.loads(release["manifest"].read_text())
    commit = "a" * 40
    manifest["releases"][0].update(state="published", hub_commit=commit)
    release["manifest"].write_text(json.dumps(manifest))
    result = install_local(release["folder"], REPO, cache_dir=tmp_path / "c2", manifest=release["manifest"])
    assert result.revision == commit
    entry = find_release(MODEL, TAG, manifest)
    assert resolve_release_file(entry, cache_dir=tmp_path / "c2") == str(result.files["model.safetensors"])
    assert local_revision({"a": "1"}) != local_revision({"a": "2"})


def test_other_weights_for_a_published_repo_are_not_filed_under_its_hub_commit(release, tmp_path):
    """The manifest's hub_commit is the commit of the weights it records (its sha256): an export of other weights
    for the same repo_id gets the revision derived from its own files, so the cache never holds other weights
    under the published commit."""
    manifest = json.loads(release["manifest"].read_text())
    commit = "b" * 40
    manifest["releases"][0].update(state="published", hub_commit=commit)
    release["manifest"].write_text(json.dumps(manifest))
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    other_sha256 = hashlib.sha256((other / "model.safetensors").read_bytes()).hexdigest()
    entry = manifest["releases"][0]
    assert entry["repo_id"] == REPO and other_sha256 != entry["sha256"]

    cache = tmp_path / "c4"
    result = install_local(other, REPO, cache_dir=cache, manifest=release["manifest"])
    derived = install_local(other, REPO, cache_dir=tmp_path / "c5", manifest=tmp_path / "none.json").revision
    assert result.revision != commit and result.revision == derived
    repo_dir = cache / "models--testorg--zerosnet20_cifar.c10"
    assert not (repo_dir / "snapshots" / commit).exists()
    assert (repo_dir / "refs" / "main").read_text() == derived
    # the published weights themselves still go under their commit
    assert install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"]).revision == commit


def test_install_local_cli_and_errors(release, tmp_path, capsys):
    cache = tmp_path / "c3"
    assert (
        main(
            [
                "install-local",
                str(release["folder"]),
                "--repo-id",
                REPO,
                "--cache-dir",
                str(cache),
                "--manifest",
                str(release["manifest"]),
            ]
        )
        == 0
    )
    assert "installed zerosnet20_cifar.c10 as testorg/zerosnet20_cifar.c10" in capsys.readouterr().out
    assert try_to_load_from_cache(REPO, "golden.safetensors", cache_dir=cache)
    with pytest.raises(HubError, match="was exported for testorg/zerosnet20_cifar.c10, not other/repo"):
        install_local(release["folder"], "other/repo", cache_dir=cache)
    with pytest.raises(HubError, match="40-hex"):
        install_local(release["folder"], REPO, cache_dir=cache, revision="main")
