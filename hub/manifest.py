"""Writing the release manifest (``timm_zerosnet/releases.json``): stage an export, record a publication.

Reading it, and turning it into pretrained cfgs, is the package's job (``timm_zerosnet.release``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from timm_zerosnet.release import (
    ReleaseError,
    empty_manifest,
    find_release,
    load_manifest,
    manifest_path,
    repo_id_problem,
    tag_problem,
    validate_manifest,
)

from . import HubError
from .card import default_image_mode
from .export import ExportedFolder, read_export, verify_export

__all__ = [
    "NotARegistryTag",
    "read_manifest",
    "write_manifest",
    "check_writable",
    "check_recordable",
    "manifest_entry",
    "stage",
    "record_published",
]

_DATA_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")
_ARCH_ARGS = ("num_classes", "in_chans")  # what a registry tag may set: its cfg carries them


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _not_a_folder(path: Path) -> None:
    if path.is_dir():
        raise HubError(
            f"{path} is a folder, not a manifest file: pass --manifest with the path of the file (e.g. "
            f"{path / 'releases.json'})."
        )


def read_manifest(path: str | Path | None = None, *, must_exist: bool = False) -> dict[str, Any]:
    """The manifest at ``path`` (default: the package's releases.json), validated; a missing file reads as empty,
    except a ``path`` given with ``must_exist`` (a --manifest to read from: a mistyped path is no empty manifest)."""
    given = path is not None
    path = Path(path) if given else manifest_path()
    _not_a_folder(path)
    if not path.exists():
        if given and must_exist:
            raise HubError(f"no manifest at {path}: check the --manifest path (or leave it out for the package's).")
        return empty_manifest()
    try:
        return load_manifest(path)
    except ReleaseError as e:
        raise HubError(str(e)) from None


def check_writable(path: str | Path | None = None) -> Path:
    """The manifest path, if it can be written (checked before anything irreversible, such as a push)."""
    given = path is not None
    path = Path(path) if given else manifest_path()
    _not_a_folder(path)
    if not path.parent.is_dir():
        raise HubError(
            f"{path}: its folder {path.parent} does not exist; create it, or name a manifest in an existing folder."
        )
    # the atomic write creates a temporary file beside the manifest, so its folder must be writable too
    targets = (path.parent, path) if path.exists() else (path.parent,)
    if not all(os.access(t, os.W_OK) for t in targets):
        advice = (
            "name a manifest you can write"
            if given
            else "run from a checkout of timm-zerosnet (pip install -e .) or pass --manifest PATH"
        )
        raise HubError(f"{path} is not writable (the file and its folder must be): {advice}.")
    return path


def write_manifest(manifest: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Validate and write atomically, entries sorted by model and tag."""
    path = check_writable(path)
    try:
        manifest = validate_manifest(manifest, str(path))
    except ReleaseError as e:
        raise HubError(str(e)) from None
    manifest["releases"] = sorted(manifest["releases"], key=lambda e: (e["model"], e["tag"]))
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class NotARegistryTag(HubError):
    """Weights that can be pushed and loaded with ``hf-hub:`` but never become a registry tag."""


def manifest_entry(ex: ExportedFolder, repo_id: str | None = None) -> dict[str, Any]:
    """The manifest entry (state 'staged') describing an export folder."""
    recorded = ex.release.get("repo_id")
    if repo_id and repo_id_problem(repo_id):  # before any advice to export again with it
        raise HubError(f"--repo-id: {repo_id_problem(repo_id)}.")
    if repo_id and recorded and repo_id != recorded:
        raise HubError(
            f"{ex.path} was exported for {recorded} (its card loads that repo) but --repo-id is "
            f"{repo_id}; export again with --repo-id {repo_id}."
        )
    repo_id = repo_id or recorded
    if not repo_id:
        raise HubError(f"{ex.path}: no Hub repo recorded at export; pass --repo-id ORG/NAME.")
    if tag_problem(ex.tag):
        raise HubError(
            f"{ex.path}: its pretrained {tag_problem(ex.tag)} to be a release; export it with "
            f"`zerosnet-hub export --tag NAME`."
        )
    extra = {k: v for k, v in (ex.config.get("model_args") or {}).items() if k not in _ARCH_ARGS}
    if extra.get("global_pool", "avg") == "avg":
        extra.pop("global_pool", None)
    if extra:
        raise NotARegistryTag(
            f"{ex.path}: {ex.architecture} was trained with model arguments {extra}, which a registry tag cannot "
            f"carry (timm's pretrained tags do not set model arguments). Push it and load it with 'hf-hub:{repo_id}', "
            f"which reads them from config.json, instead of staging it."
        )
    if not ex.config.get("num_classes"):
        raise NotARegistryTag(
            f"{ex.path}: {ex.architecture} has no classifier (num_classes 0), and a registry tag is a classifier "
            f"(its pretrained cfg names the classes). Push it and load it with 'hf-hub:{repo_id}', which builds it "
            f"headless from config.json, instead of staging it; or export the run's weights with their head."
        )
    cfg = ex.config.get("pretrained_cfg") or {}
    img_mode, usual = ex.config.get("input_img_mode"), default_image_mode(int(cfg["input_size"][0]))
    if img_mode and img_mode != usual:
        raise NotARegistryTag(
            f"{ex.path}: {ex.architecture} was trained on {img_mode} images (config.json's input_img_mode), which a "
            f"registry tag cannot carry (timm's pretrained cfgs have no image mode: its users would feed "
            f"{usual or 'other'} images without a word). Push it and load it with 'hf-hub:{repo_id}', whose card "
            f"converts images to {img_mode}, instead of staging it."
        )
    training = ex.release.get("training") or {}
    return dict(
        model=ex.architecture,
        tag=ex.tag,
        repo_id=repo_id,
        state="staged",
        hub_commit=None,
        sha256=ex.sha256,
        size=ex.files["model.safetensors"]["size"],
        files=ex.files,
        num_classes=ex.config["num_classes"],
        label_names=ex.config.get("label_names"),
        in_chans=int(cfg["input_size"][0]),
        data_config={k: cfg[k] for k in _DATA_KEYS if cfg.get(k) is not None},
        dataset=ex.release.get("dataset"),
        metrics=ex.release.get("metrics") or {},
        recipe=training.get("recipe"),
        license=cfg.get("license") or "apache-2.0",
        staged=_now(),
        published=None,
    )


def _upsert(manifest: dict[str, Any], entry: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    name = f"{entry['model']}.{entry['tag']}"
    releases = manifest["releases"]
    for other in releases:
        if other["repo_id"] == entry["repo_id"] and (other["model"], other["tag"]) != (entry["model"], entry["tag"]):
            raise HubError(
                f"{entry['repo_id']} already holds {other['model']}.{other['tag']}; one repo per tag: export "
                f"{name} again with a --repo-id of its own (e.g. {entry['repo_id'].split('/')[0]}/{name})."
            )
    for i, old in enumerate(releases):
        if (old["model"], old["tag"]) != (entry["model"], entry["tag"]):
            continue
        if old["state"] == "published" and entry["state"] == "staged":
            if old["sha256"] == entry["sha256"]:
                log(f"{name} is already published with these weights; manifest unchanged")
                return old
            raise HubError(
                f"{name} is already published with other weights (sha256 {old['sha256'][:12]}...): "
                f"published weights never change; export under a new tag."
            )
        if old["sha256"] != entry["sha256"]:
            log(f"{name}: replacing the staged weights {old['sha256'][:12]}... with {entry['sha256'][:12]}...")
        releases[i] = entry
        return entry
    releases.append(entry)
    return entry


def stage(
    folder: str | Path,
    manifest: str | Path | None = None,
    repo_id: str | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Verify an export (round trip to the golden outputs) and add or update its manifest entry as 'staged'."""
    path = check_writable(manifest)
    result = verify_export(folder)
    entry = manifest_entry(result.folder, repo_id)
    data = read_manifest(path)
    entry = _upsert(data, entry, log)
    write_manifest(data, path)
    log(f"staged {entry['model']}.{entry['tag']} ({entry['repo_id']}, sha256 {entry['sha256'][:12]}...) in {path}")
    return entry


def _with_published(
    data: dict[str, Any], ex: ExportedFolder, repo_id: str, commit: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """Mark the export's entry of ``data`` 'published' at ``commit`` (added if it was never staged); validated."""
    entry = find_release(ex.architecture, ex.tag, data)
    if entry is None or entry["state"] == "staged":
        entry = dict(manifest_entry(ex, repo_id), staged=(entry or {}).get("staged") or _now())
    entry.update(state="published", hub_commit=commit, repo_id=repo_id, published=_now())
    _upsert(data, entry, log)
    try:
        validate_manifest(data, "the manifest with this release")
    except ReleaseError as e:
        raise HubError(str(e)) from None
    return entry


def check_recordable(ex: ExportedFolder, repo_id: str, manifest: str | Path | None = None) -> None:
    """Raise HubError now if ``record_published`` would refuse the folder after its upload (nothing is written)."""
    check_writable(manifest)
    _with_published(read_manifest(manifest), ex, repo_id, "0" * 40, lambda msg: None)


def record_published(
    folder: str | Path,
    repo_id: str,
    commit: str,
    manifest: str | Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Mark an export's entry 'published' at a Hub commit (adding the entry if the folder was never staged)."""
    path = check_writable(manifest)
    data = read_manifest(path)
    entry = _with_published(data, read_export(folder), repo_id, commit, log)
    write_manifest(data, path)
    log(f"recorded {entry['model']}.{entry['tag']} as published at {repo_id}@{commit[:12]} in {path}")
    return entry
