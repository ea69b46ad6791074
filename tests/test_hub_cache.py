"""install-local and the offline round trip: run dir -> export -> stage -> local HF cache -> timm, bit for bit.

Every load here runs with HF_HUB_OFFLINE=1 against a cache under tmp_path (see ``hf_cache``); a temporary manifest
registers the tag, so the package's releases.json is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import scan_cache_dir, try_to_load_from_cache
from test_hub_export import MODEL, REPO, hf_cache, load_run_model, make_run  # noqa: F401  (hf_cache: a fixture)

from timm_zerosnet.hub import HubError
from timm_zerosnet.hub.cache import install_local, local_revision
from timm_zerosnet.hub.cli import main
from timm_zerosnet.hub.export import export
from timm_zerosnet.hub.manifest import stage
from timm_zerosnet.release import (
    ReleaseError,
    check_golden,
    empty_manifest,
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
    ) as refused:
        resolve_release_file(entry, cache_dir=empty_cache)
    # the advice installs into the cache that was asked for, not the default one (where it would not be found)
    assert f"--repo-id {entry['repo_id']} --cache-dir {empty_cache}`" in str(refused.value)
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
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(empty_manifest()))
    derived = install_local(other, REPO, cache_dir=tmp_path / "c5", manifest=empty).revision
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


# ----- mutation audit: what install-local leaves behind, and which revision it files under -----


def test_a_failed_copy_leaves_no_half_written_blob_and_the_next_install_completes(release, tmp_path, monkeypatch):
    """Blobs are copied to a temporary name and renamed: a copy that fails half-way leaves neither a truncated blob
    under the etag nor the temporary file, and installing again gives a cache that loads."""
    import shutil
    from pathlib import Path

    from timm_zerosnet import hub

    real_copy = shutil.copyfile

    def half_copy(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise OSError("disk full")

    cache = tmp_path / "c6"
    monkeypatch.setattr(hub.cache.shutil, "copyfile", half_copy)
    with pytest.raises(OSError, match="disk full"):
        install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"])
    blobs = cache / "models--testorg--zerosnet20_cifar.c10" / "blobs"
    assert [p.name for p in blobs.iterdir()] == []
    monkeypatch.setattr(hub.cache.shutil, "copyfile", real_copy)
    result = install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"])
    for name, link in result.files.items():
        assert link.read_bytes() == (release["folder"] / name).read_bytes()


def test_a_corrupt_blob_is_replaced_when_installing_again(release):
    """A truncated blob (an interrupted copy or download) under the right name is copied again, not kept."""
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    blob = release["installed"].files["model.safetensors"].resolve()
    blob.write_bytes(blob.read_bytes()[:-8])
    with pytest.raises(ReleaseError, match="its sha256 is"):
        resolve_release_file(entry)
    install_local(release["folder"], REPO, manifest=release["manifest"])
    assert blob.read_bytes() == (release["folder"] / "model.safetensors").read_bytes()
    assert resolve_release_file(entry) == str(release["installed"].files["model.safetensors"])


def test_snapshot_links_are_relative_so_a_moved_cache_still_loads(release, tmp_path):
    """huggingface_hub links snapshots to blobs with relative paths: the cache folder can be moved or mounted
    elsewhere and still resolve."""
    import os
    import shutil
    from pathlib import Path

    for link in release["installed"].files.values():
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    moved = tmp_path / "moved"
    shutil.move(str(release["cache"]), moved)
    path = try_to_load_from_cache(REPO, "model.safetensors", cache_dir=moved)
    assert isinstance(path, str)
    assert Path(path).read_bytes() == (release["folder"] / "model.safetensors").read_bytes()


def test_cache_dir_with_a_tilde_is_the_home_folder(release, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = install_local(release["folder"], REPO, cache_dir="~/hf-cache", manifest=release["manifest"])
    assert result.repo_dir == tmp_path / "home" / "hf-cache" / "models--testorg--zerosnet20_cifar.c10"
    assert try_to_load_from_cache(REPO, "config.json", cache_dir=tmp_path / "home" / "hf-cache")
    assert not (tmp_path / "~").exists()


def test_a_file_in_a_subfolder_of_the_export_is_installed_too(release, tmp_path):
    """Everything a push would upload, subfolders included, lands in the snapshot."""
    import shutil
    from pathlib import Path

    folder = tmp_path / "with_extra"
    shutil.copytree(release["folder"], folder)
    (folder / "extra").mkdir()
    (folder / "extra" / "notes.md").write_text("how these weights were made\n")
    result = install_local(folder, REPO, cache_dir=tmp_path / "c7", manifest=release["manifest"])
    assert result.files["extra/notes.md"].read_text() == "how these weights were made\n"
    path = try_to_load_from_cache(REPO, "extra/notes.md", cache_dir=tmp_path / "c7")
    assert isinstance(path, str) and Path(path).read_text() == "how these weights were made\n"


def test_local_revision_depends_on_the_files_not_their_order():
    etags = {"model.safetensors": "a" * 64, "config.json": "b" * 40}
    assert local_revision(etags) == local_revision(dict(reversed(etags.items())))
    assert local_revision(etags) != local_revision({"model.safetensors": "a" * 64, "config.jsonx": "b" * 40})


def test_the_hub_commit_of_another_repo_is_not_used(release, tmp_path):
    """The manifest's hub_commit belongs to its repo: the same weights installed as another repo get the revision
    derived from their files, not that repo's commit."""
    import shutil

    manifest = json.loads(release["manifest"].read_text())
    manifest["releases"][0].update(state="published", hub_commit="d" * 40)
    release["manifest"].write_text(json.dumps(manifest))
    folder = tmp_path / "bare"
    shutil.copytree(release["folder"], folder)
    release_json = json.loads((folder / "release.json").read_text())
    (folder / "release.json").write_text(json.dumps(dict(release_json, repo_id=None)))
    other = install_local(folder, "testorg/elsewhere", cache_dir=tmp_path / "c8", manifest=release["manifest"])
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(empty_manifest()))
    derived = install_local(folder, "testorg/elsewhere", cache_dir=tmp_path / "c9", manifest=empty)
    assert other.revision == derived.revision != "d" * 40


def test_install_local_cli_forwards_the_revision(release, tmp_path, capsys):
    commit = "e" * 40
    cache = tmp_path / "c10"
    argv = ["install-local", str(release["folder"]), "--repo-id", REPO, "--cache-dir", str(cache), "--revision", commit]
    assert main(argv) == 0
    assert f"(revision {commit})" in capsys.readouterr().out
    assert (cache / "models--testorg--zerosnet20_cifar.c10" / "refs" / "main").read_text() == commit
    assert try_to_load_from_cache(REPO, "model.safetensors", cache_dir=cache, revision=commit)


def test_a_large_file_of_any_name_is_named_by_its_sha256(tmp_path):
    """The Hub keeps files over 10 MB in LFS whatever their suffix, and serves their sha256 as the etag."""
    from timm_zerosnet.hub.cache import blob_etag

    big = tmp_path / "extra.txt"
    data = bytes(range(256)) * (11 * 4096)  # 11 MiB
    big.write_bytes(data)
    assert blob_etag(big) == hashlib.sha256(data).hexdigest()
    small = tmp_path / "notes.txt"
    small.write_bytes(data[:1000])
    assert blob_etag(small) == hashlib.sha1(b"blob 1000\0" + data[:1000]).hexdigest()


def test_installing_again_repairs_a_broken_snapshot_and_keeps_links(release):
    """A snapshot entry that no longer points at a blob (a cache cleaned by hand) is linked again; installing an
    intact cache again keeps every entry a link, as a download leaves it."""
    import os

    link = release["installed"].files["model.safetensors"]
    link.unlink()
    os.symlink("../../blobs/" + "0" * 64, link)  # dangling
    assert link.is_symlink() and not link.exists()
    again = install_local(release["folder"], REPO, manifest=release["manifest"])
    assert again.revision == release["installed"].revision
    for name, path in again.files.items():
        assert path.is_symlink() and path.read_bytes() == (release["folder"] / name).read_bytes(), name


def test_without_symbolic_links_the_snapshot_holds_copies(release, tmp_path, monkeypatch):
    """Where symlinks are not allowed (Windows without developer mode) huggingface_hub copies; so does install-local,
    and the copies load."""
    from timm_zerosnet import hub

    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(hub.cache.os, "symlink", no_symlinks)
    cache = tmp_path / "c11"
    result = install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"])
    for name, path in result.files.items():
        assert not path.is_symlink() and path.read_bytes() == (release["folder"] / name).read_bytes(), name
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    assert resolve_release_file(entry, cache_dir=cache) == str(result.files["model.safetensors"])


def test_a_failed_write_of_the_ref_keeps_the_earlier_one(release, monkeypatch):
    """refs/main is replaced through a temporary file: a write that fails leaves the revision it held, and no
    temporary ref (huggingface_hub's cache scan reported the repo as corrupted for it)."""
    from pathlib import Path

    from huggingface_hub import scan_cache_dir

    ref = release["cache"] / "models--testorg--zerosnet20_cifar.c10" / "refs" / "main"
    before = ref.read_text()

    def half_write(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[:5])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(OSError, match="disk full"):
        install_local(release["folder"], REPO, revision="f" * 40, manifest=release["manifest"])
    monkeypatch.undo()
    assert ref.read_text() == before
    assert [p.name for p in ref.parent.iterdir()] == ["main"]
    assert not scan_cache_dir(release["cache"]).warnings


# ----- mutation audit: loading a released tag from the cache -----


def _published(release, commit):
    manifest = json.loads(release["manifest"].read_text())
    manifest["releases"][0].update(state="published", hub_commit=commit)
    release["manifest"].write_text(json.dumps(manifest))
    return manifest["releases"][0]


def test_a_published_tag_is_read_at_its_commit_whatever_main_holds(release, tmp_path):
    """Installed under its Hub commit, then other weights installed for the same repo (refs/main moves to them):
    the tag still loads its own weights, offline. Installed before it was published (under the revision derived
    from its files), it is found through refs/main."""
    weights = (release["folder"] / "model.safetensors").read_bytes()
    entry = _published(release, "a" * 40)
    cache = tmp_path / "c12"
    install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"])
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    install_local(other, REPO, cache_dir=cache, manifest=release["manifest"])
    path = resolve_release_file(entry, cache_dir=cache)
    assert f"/snapshots/{'a' * 40}/" in path and open(path, "rb").read() == weights
    # release["cache"] holds it under the derived revision only (installed while staged)
    assert release["installed"].revision != "a" * 40
    assert open(resolve_release_file(entry), "rb").read() == weights


def test_a_published_tag_missing_from_the_cache_is_downloaded_at_its_commit_and_checked(release, tmp_path, monkeypatch):
    """Not in the cache: downloaded at the recorded commit into the given cache, then its sha256 is checked; offline,
    one error that names the repo, the commit and the way out."""
    import huggingface_hub

    commit = "c" * 40
    entry = _published(release, commit)
    cache = tmp_path / "empty"
    with pytest.raises(ReleaseError, match=rf"could not be downloaded from {REPO}@{'c' * 12} .*install-local"):
        resolve_release_file(entry, cache_dir=cache)
    calls = []
    served = {"file": release["folder"] / "model.safetensors"}

    def fake_download(repo_id, filename, **kwargs):
        calls.append(dict(kwargs, repo_id=repo_id, filename=filename))
        return str(served["file"])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert resolve_release_file(entry, cache_dir=cache) == str(served["file"])
    assert calls == [dict(repo_id=REPO, filename="model.safetensors", revision=commit, cache_dir=str(cache))]
    served["file"] = release["folder"] / "golden.safetensors"  # what a corrupted download would hand back
    with pytest.raises(ReleaseError, match=r"refusing .*golden\.safetensors: its sha256 is"):
        resolve_release_file(entry, cache_dir=cache)


def test_overlay_leaves_a_local_dir_source_and_another_hub_repo_alone(release):
    with use_manifest(release["manifest"]):
        cfg = timm.models.get_pretrained_cfg(f"{MODEL}.{TAG}")
        assert release_weights_overlay(dict(cfg.__dict__, source="local-dir")) is None
        assert release_weights_overlay(dict(cfg.__dict__, hf_hub_id="testorg/elsewhere"), {"a": 1}) == {"a": 1}
        assert release_weights_overlay(dict(cfg.__dict__, state_dict={}), {"a": 1}) == {"a": 1}


def test_check_golden_compares_both_outputs_and_leaves_the_model_and_threads_as_they_were(release, tmp_path):
    """A golden file whose pooled features alone differ is not reproduced, and the difference is reported; the
    check runs in eval mode on one thread and gives back training mode and the thread count."""
    import safetensors.torch

    model = load_run_model(release["run"]).train()
    golden = release["folder"] / "golden.safetensors"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert check_golden(model, golden).exact and model.training and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    tensors = safetensors.torch.load_file(str(golden))
    tensors["pre_logits"] = tensors["pre_logits"] + 0.5
    altered = tmp_path / "altered.safetensors"
    safetensors.torch.save_file(tensors, str(altered))
    result = check_golden(model, altered)
    assert not result.exact and result.max_abs_diff == pytest.approx(0.5, abs=1e-4)


def test_install_local_cli_looks_the_commit_up_in_the_manifest_given(release, tmp_path, capsys):
    _published(release, "9" * 40)
    cache = tmp_path / "c13"
    argv = ["install-local", str(release["folder"]), "--repo-id", REPO, "--cache-dir", str(cache)]
    assert main([*argv, "--manifest", str(release["manifest"])]) == 0
    assert f"(revision {'9' * 40})" in capsys.readouterr().out
    assert (cache / "models--testorg--zerosnet20_cifar.c10" / "refs" / "main").read_text() == "9" * 40


def test_installing_other_weights_over_a_staged_tag_says_the_tag_will_refuse_them(release, tmp_path, capsys):
    """A staged tag is read through refs/main: other weights installed for its repo take refs/main, and the tag then
    refuses them (their sha256 is not the staged one). install-local says so; installing the staged folder again
    makes the tag load, with no note. A published tag is read at its own commit: no note."""
    cache = tmp_path / "c-notes"
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    cli = ["install-local", str(other), "--repo-id", REPO, "--cache-dir", str(cache), "--manifest"]
    assert main([*cli, str(release["manifest"])]) == 0
    out = capsys.readouterr().out
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    assert f"the manifest stages other weights as {MODEL}.{TAG} (sha256 {entry['sha256'][:12]}..." in out
    assert f"timm.create_model('{MODEL}.{TAG}', pretrained=True) refuses them" in out
    with use_manifest(release["manifest"]), pytest.raises(ReleaseError, match="release manifest records"):
        timm.create_model(f"{MODEL}.{TAG}", pretrained=True, cache_dir=cache)
    lines = []
    install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"], log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("installed ")
    with use_manifest(release["manifest"]):
        timm.create_model(f"{MODEL}.{TAG}", pretrained=True, cache_dir=cache)
    _published(release, "e" * 40)
    install_local(other, REPO, cache_dir=cache, manifest=release["manifest"], log=lines.append)
    assert len(lines) == 2 and lines[1].startswith("installed ")


def test_a_manifest_given_to_install_local_must_exist(release, tmp_path, capsys, monkeypatch):
    """A mistyped --manifest is no empty manifest (it would file a published release under another revision): it is
    refused, through the command line as one line; without --manifest the package's releases.json is read as
    before, and a missing one is still no releases."""
    from timm_zerosnet.hub import manifest as manifest_module

    cache, typo = tmp_path / "c11", tmp_path / "relases.json"
    with pytest.raises(HubError, match=rf"^no manifest at {re.escape(str(typo))}: check the --manifest path"):
        install_local(release["folder"], REPO, cache_dir=cache, manifest=typo)
    argv = ["install-local", str(release["folder"]), "--repo-id", REPO, "--cache-dir", str(cache)]
    assert main([*argv, "--manifest", str(typo)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no manifest at {typo}" in err and "Traceback" not in err
    assert not cache.exists() and not typo.exists()
    monkeypatch.setattr(manifest_module, "manifest_path", lambda: tmp_path / "missing" / "releases.json")
    assert main(argv) == 0
    assert "installed zerosnet20_cifar.c10" in capsys.readouterr().out


def test_paths_with_a_tilde_and_unreadable_weights_files(release, tmp_path, monkeypatch):
    """cache_dir='~/...' found a released tag's weights through hf-hub: but not through the tag ('not pushed yet');
    pretrained_cfg_overlay=dict(file='~/w.safetensors') ended in timm's bare FileNotFoundError(); a truncated
    weights file in the overlay gave safetensors' header error or torch's 'OSError: [Errno 22]', naming no file."""
    import shutil

    from timm_zerosnet.release import ReleaseError, load_weights

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    install_local(release["folder"], REPO, cache_dir=home / "hf", manifest=release["manifest"])
    expected = load_weights(release["folder"] / "model.safetensors")
    with use_manifest(release["manifest"]):
        tagged = timm.create_model(f"{MODEL}.{TAG}", pretrained=True, cache_dir="~/hf")
    assert all(torch.equal(tagged.state_dict()[k], v) for k, v in expected.items())
    shutil.copy(release["folder"] / "model.safetensors", home / "w.safetensors")
    filed = timm.create_model(MODEL, pretrained=True, pretrained_cfg_overlay=dict(file="~/w.safetensors"))
    assert all(torch.equal(filed.state_dict()[k], v) for k, v in expected.items())
    whole = (home / "w.safetensors").read_bytes()
    (home / "cut.safetensors").write_bytes(whole[: len(whole) // 2])
    torch.save(expected, home / "cut.pth")
    (home / "cut.pth").write_bytes((home / "cut.pth").read_bytes()[:30000])
    for name in ("cut.safetensors", "cut.pth"):
        for family in (MODEL, "tauresnet20_cifar"):
            with pytest.raises(ReleaseError, match=rf"{family}: .*{name} cannot be read as weights .*corrupt or trunc"):
                timm.create_model(family, pretrained=True, pretrained_cfg_overlay=dict(file=str(home / name)))
    # a weights file missing from the cache, or a network failure, is not called corrupt
    from huggingface_hub.errors import LocalEntryNotFoundError

    from timm_zerosnet.models import multistep

    for error in (LocalEntryNotFoundError("not in the cache"), ConnectionError("no network")):
        with pytest.raises(type(error)):
            with multistep.unreadable_weights_named(
                MODEL, True, {"pretrained_cfg_overlay": dict(file=str(home / "w.safetensors"))}
            ):
                raise error


def test_a_cache_dir_under_a_file_is_one_line_naming_the_file(release, tmp_path, capsys):
    """--cache-dir under a file gave mkdir's "[Errno 20] Not a directory: '.../models--.../blobs'", a folder the user
    never named; the error now names the file in the way and the option to change."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    args = ["install-local", str(release["folder"]), "--repo-id", REPO, "--manifest", str(release["manifest"])]
    for cache in (blocker, blocker / "cache"):
        with pytest.raises(HubError, match=f"{re.escape(str(blocker))} is a file, not a folder; pass another --cache"):
            install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"])
        assert main([*args, "--cache-dir", str(cache)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file, not a folder" in err and "Errno" not in err, err
    assert blocker.read_text() == "not a folder"


# ----- audit: a snapshot that holds other files, a failed install, weights under another revision -----


def test_install_local_refuses_other_files_under_an_existing_revision(release, tmp_path):
    """Other weights installed with --revision of a snapshot that exists replaced its files in place: the cache then
    claimed the revision held files it never held, and the tag filed there refused its own weights. Now nothing is
    changed and the error says what to do; the same files again are still a no-op."""
    installed = release["installed"]
    before = {name: (link.read_bytes(), os.readlink(link)) for name, link in installed.files.items()}
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    with pytest.raises(HubError, match=r"already holds other .*model\.safetensors.*nothing was installed") as e:
        install_local(other, REPO, revision=installed.revision, manifest=release["manifest"])
    assert "Leave --revision out" in str(e.value)
    assert {name: (link.read_bytes(), os.readlink(link)) for name, link in installed.files.items()} == before
    assert install_local(release["folder"], REPO, revision=installed.revision, manifest=release["manifest"])
    with use_manifest(release["manifest"]):
        timm.create_model(f"{MODEL}.{TAG}", pretrained=True)


def test_a_failed_install_leaves_no_partial_snapshot(release, tmp_path, monkeypatch):
    """An install that fails while linking its snapshot (disk full) left the new revision's snapshot with some of the
    files; now the snapshot is built aside and renamed: nothing of it is left, refs/main keeps the earlier revision
    and installing again completes."""
    import shutil

    from timm_zerosnet import hub

    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    repo_dir = release["installed"].repo_dir
    real_symlink, real_copy, calls = os.symlink, shutil.copyfile, []

    def symlink(*args, **kwargs):
        calls.append(args)
        if len(calls) > 2:
            raise OSError("disk full")
        return real_symlink(*args, **kwargs)

    def copyfile(src, dst):
        if Path(dst).parent.name != "blobs":  # blobs are copied; a snapshot's fallback copy fails
            raise OSError("disk full")
        return real_copy(src, dst)

    monkeypatch.setattr(hub.cache.os, "symlink", symlink)
    monkeypatch.setattr(hub.cache.shutil, "copyfile", copyfile)
    with pytest.raises(OSError, match="disk full"):
        install_local(other, REPO, manifest=release["manifest"])
    monkeypatch.undo()
    assert len(calls) == 3
    assert [p.name for p in (repo_dir / "snapshots").iterdir()] == [release["installed"].revision]
    assert sorted(p.name for p in repo_dir.iterdir()) == ["blobs", "refs", "snapshots"]
    assert (repo_dir / "refs" / "main").read_text() == release["installed"].revision
    assert not scan_cache_dir(release["cache"]).warnings
    result = install_local(other, REPO, manifest=release["manifest"])
    for name, link in result.files.items():
        assert link.is_symlink() and link.read_bytes() == (other / name).read_bytes(), name


def test_a_tag_loads_its_weights_from_another_snapshot_of_the_cache(release, tmp_path):
    """refs/main moved to other weights installed for the same repo: the staged tag refused the file there ("delete
    it"), and a published tag whose commit is not cached said offline that its weights were not in the cache, though
    the very weights (same sha256) sat in another snapshot. They are found there now; install-local no longer says
    the tag will refuse them."""
    weights = (release["folder"] / "model.safetensors").read_bytes()
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    lines = []
    moved = install_local(other, REPO, manifest=release["manifest"], log=lines.append)
    assert moved.revision != release["installed"].revision and len(lines) == 1
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    staged = resolve_release_file(entry)
    assert f"/snapshots/{release['installed'].revision}/" in staged and open(staged, "rb").read() == weights
    published = resolve_release_file(dict(entry, state="published", hub_commit="a" * 40))
    assert open(published, "rb").read() == weights
    with use_manifest(release["manifest"]):
        model = timm.create_model(f"{MODEL}.{TAG}", pretrained=True)
    assert check_golden(model, release["folder"] / "golden.safetensors").exact


def test_weights_refused_in_the_cache_say_how_to_put_the_right_ones_there(release, tmp_path):
    """A corrupt staged file was answered "delete it and download or install it again": a staged tag is never
    downloaded, and deleting the snapshot's link leaves the corrupt blob. The staged tag now names install-local
    (which copies a corrupt blob again); a published one the repo folder to delete."""
    blob = release["installed"].files["model.safetensors"].resolve()
    blob.write_bytes(blob.read_bytes()[:-8])
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    with pytest.raises(ReleaseError, match="its sha256 is") as refused:
        resolve_release_file(entry)
    assert f"install the staged export folder again with `zerosnet-hub install-local EXPORT_DIR --repo-id {REPO}`" in (
        str(refused.value)
    )
    published = dict(entry, state="published", hub_commit=release["installed"].revision)
    with pytest.raises(ReleaseError, match="its sha256 is") as refused:
        resolve_release_file(published)  # offline, huggingface_hub hands back the cached file at that commit
    assert f"delete {release['installed'].repo_dir} (`hf cache rm`) and load again" in str(refused.value)
    install_local(release["folder"], REPO, manifest=release["manifest"])
    assert open(resolve_release_file(entry), "rb").read() == (release["folder"] / "model.safetensors").read_bytes()


# ----- audit: installs of one revision running at once (two jobs of a cluster array, a test and a user) -----

_MOMENTS = {"renaming its snapshot": "rename", "writing its blobs": "copyfile"}


def _another_install_meanwhile(monkeypatch, moment, folder, **kwargs):
    """Run another install of ``folder`` to its end when the next install is about to rename its snapshot into place
    or to write its first blob; the list returned receives that install's result."""
    import shutil

    module = os if _MOMENTS[moment] == "rename" else shutil
    real, done = getattr(module, _MOMENTS[moment]), []

    def meanwhile(*args, **kw):
        if not done:
            done.append(None)  # first: the other install calls this too
            done[0] = install_local(folder, REPO, **kwargs)
        return real(*args, **kw)

    monkeypatch.setattr(module, _MOMENTS[moment], meanwhile)
    return done


def _assert_whole_install(cache, folder, revision):
    """One snapshot of ``revision`` holding exactly the files of ``folder``, refs/main on it, no temporary leftovers."""
    repo_dir = cache / "models--testorg--zerosnet20_cifar.c10"
    assert sorted(p.name for p in repo_dir.iterdir()) == ["blobs", "refs", "snapshots"]
    assert [p.name for p in (repo_dir / "snapshots").iterdir()] == [revision]
    assert [p.name for p in (repo_dir / "refs").iterdir()] == ["main"]
    assert (repo_dir / "refs" / "main").read_text() == revision
    assert all(re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", p.name) for p in (repo_dir / "blobs").iterdir())
    snapshot = repo_dir / "snapshots" / revision
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if not p.is_dir()) == names
    for name in names:
        assert (snapshot / name).is_symlink() and (snapshot / name).read_bytes() == (folder / name).read_bytes(), name
    assert not scan_cache_dir(cache).warnings


@pytest.mark.parametrize("moment", list(_MOMENTS))
def test_an_install_of_the_same_files_that_finishes_first_is_the_same_install(release, tmp_path, monkeypatch, moment):
    """Two installs of one new revision at once: the second to rename its snapshot into place failed with the bare
    "[Errno 39] Directory not empty" of os.rename. The snapshot there holds the same files, so it is the same install:
    both succeed and nothing is left aside."""
    cache = tmp_path / "c_same"
    first = _another_install_meanwhile(
        monkeypatch, moment, release["folder"], cache_dir=cache, manifest=release["manifest"]
    )
    result = install_local(release["folder"], REPO, cache_dir=cache, manifest=release["manifest"])
    monkeypatch.undo()
    assert first[0].revision == result.revision == release["installed"].revision
    _assert_whole_install(cache, release["folder"], result.revision)
    entry = find_release(MODEL, TAG, json.loads(release["manifest"].read_text()))
    assert resolve_release_file(entry, cache_dir=cache) == str(result.files["model.safetensors"])


@pytest.mark.parametrize("moment", list(_MOMENTS))
def test_an_install_of_other_files_under_the_revision_that_finishes_first_is_refused(
    release, tmp_path, monkeypatch, moment
):
    """Other weights filed under the same --revision by an install that finished meanwhile: renaming failed with a bare
    OSError, and once the snapshot was there before the blobs were written the files were replaced in place (the
    revision then claimed files it never held). Now refused as when the snapshot was there from the start, with the
    first install's snapshot whole."""
    other = export(make_run(tmp_path / "run2", seed=1), tmp_path / "export2", repo_id=REPO).path
    cache, revision = tmp_path / "c_other", "c" * 40
    first = _another_install_meanwhile(
        monkeypatch, moment, other, cache_dir=cache, revision=revision, manifest=release["manifest"]
    )
    with pytest.raises(HubError, match=r"already holds other .*model\.safetensors.*nothing was installed") as e:
        install_local(release["folder"], REPO, cache_dir=cache, revision=revision, manifest=release["manifest"])
    monkeypatch.undo()
    assert "Leave --revision out" in str(e.value)
    assert first[0].revision == revision
    _assert_whole_install(cache, other, revision)


def _install_in_step(folder, manifest, caches, barrier, errors):
    """One of the processes of the test below: installs ``folder`` in each cache as soon as the other process does."""
    for cache in caches:
        barrier.wait(timeout=120)
        try:
            install_local(folder, REPO, cache_dir=cache, manifest=manifest)
        except Exception as e:  # reported to the test, which names the cache
            errors.put(f"{cache.name}: {type(e).__name__}: {e}")


def test_two_processes_installing_the_same_folder_at_once_both_succeed(release, tmp_path):
    """Two processes (spawned, as two jobs of an array) install the same folder into a fresh cache at the same moment,
    many times over: every install succeeds and every cache holds one whole snapshot, with nothing left aside."""
    import multiprocessing
    import queue

    ctx = multiprocessing.get_context("spawn")
    caches = [tmp_path / f"c_proc{i}" for i in range(50)]
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    args = (release["folder"], release["manifest"], caches, barrier, errors)
    procs = [ctx.Process(target=_install_in_step, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        if p.is_alive():
            p.kill()
    failed = []
    while True:
        try:
            failed.append(errors.get(timeout=1))
        except queue.Empty:
            break
    assert not failed, failed
    assert [p.exitcode for p in procs] == [0, 0]
    for cache in caches:
        _assert_whole_install(cache, release["folder"], release["installed"].revision)
