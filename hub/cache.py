"""Put an export folder into the local Hugging Face cache exactly as a download would.

Layout (huggingface_hub's): ``<cache>/models--org--name/blobs/<etag>`` holds each file once, named by the etag the
Hub serves (sha256 for LFS files such as safetensors, the git blob sha1 for small text files);
``snapshots/<revision>/<file>`` are relative symlinks to the blobs (copies where symlinks are not allowed);
``refs/main`` holds the revision. Then ``timm.create_model('hf-hub:org/name', pretrained=True)`` and the registry
tags of the manifest load with HF_HUB_OFFLINE=1.

Installs may run at once (two jobs of a cluster array, a test and a user) without a lock: every file is written under
a temporary name and renamed over its place (blobs, snapshot entries, refs/main), and a new snapshot is built aside and
renamed whole. When another install files the same revision first, the rename finds its snapshot: the same files are
the same install, other files are refused as they are when the snapshot was there from the start. A lock would not
spare that check (huggingface_hub's own downloads fill a snapshot without one), and on the shared file systems of a
cluster flock may be missing, where a lock file left by a job killed at its time limit would block every later install.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from timm_zerosnet.release import cached_by_sha256, repo_id_problem
from timm_zerosnet.run_layout import file_in_the_way

from . import HubError
from .export import read_export
from .manifest import read_manifest

__all__ = ["install_local", "InstallResult", "local_revision", "blob_etag"]

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".msgpack", ".h5")
_GIVEN = "given with --revision"
_LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub stores larger files in LFS whatever their name


@dataclass
class InstallResult:
    repo_dir: Path
    revision: str
    files: dict[str, Path]  # snapshot path per file


def blob_etag(path: Path) -> str:
    """The etag the Hub serves for a file: sha256 for LFS files, else the git blob sha1."""
    size = path.stat().st_size
    h = (
        hashlib.sha256()
        if path.suffix in _LFS_SUFFIXES or size >= _LFS_MIN_SIZE
        else hashlib.sha1(f"blob {size}\0".encode())
    )
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def local_revision(etags: dict[str, str]) -> str:
    """A 40-hex revision determined by the files (stands in for a Hub commit before one exists)."""
    h = hashlib.sha1(b"timm_zerosnet local revision\0")
    for name in sorted(etags):
        h.update(f"{name}\0{etags[name]}\n".encode())
    return h.hexdigest()


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _refuse_other_files(snapshot: Path, sources: dict[str, Path], etags: dict[str, str], origin: str) -> None:
    """Refuse to install over a snapshot that holds other files under these names: a revision's files never change,
    and replacing them would leave the cache claiming that the revision holds files it does not. A missing entry, a
    link to no file (a cache cleaned by hand) or a link to the very blob (re-copied if corrupt) is no conflict."""
    if not snapshot.is_dir():
        return
    other = []
    for name in sources:
        entry = snapshot / name
        if entry.is_symlink() and Path(os.readlink(entry)).name == etags[name]:
            continue
        if entry.is_dir() or (entry.is_file() and blob_etag(entry) != etags[name]):
            other.append(name)
    if other:
        instead = "Leave --revision out (the revision is then derived from the files)"
        if origin != _GIVEN:
            instead = "Pass another --revision"
        raise HubError(
            f"{snapshot} (revision {origin}) already holds other {', '.join(other)}: the files of a revision never "
            f"change, so nothing was installed. {instead}, or delete that snapshot folder first if it holds the wrong "
            f"files."
        )


def _link_snapshot(folder: Path, snapshot: Path, blobs: Path, etags: dict[str, str]) -> None:
    """Link each file into ``folder`` (``snapshot`` itself, or a folder renamed to it later: the links are relative to
    ``snapshot``), each entry replaced atomically."""
    for name, etag in etags.items():
        link = folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.parent / f".{link.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            try:
                os.symlink(os.path.relpath(blobs / etag, (snapshot / name).parent), tmp)
            except OSError:  # no symlinks here (e.g. Windows without developer mode): huggingface_hub copies too
                shutil.copyfile(blobs / etag, tmp)
            os.replace(tmp, link)
        finally:
            tmp.unlink(missing_ok=True)


def _rename_built_snapshot(repo_dir: Path, snapshot: Path, blobs: Path, etags: dict[str, str]) -> bool:
    """Build the snapshot aside and rename it to ``snapshot``: an install that fails leaves no snapshot with some of the
    files. False when ``snapshot`` appeared meanwhile (another install of this revision renamed its own first)."""
    building = repo_dir / f".install-{uuid.uuid4().hex[:8]}"  # as deep as snapshots/<revision>: links hold
    try:
        _link_snapshot(building / "snapshot", snapshot, blobs, etags)
        try:
            os.rename(building / "snapshot", snapshot)
        except OSError:  # onto a folder that is not empty: ENOTEMPTY or EEXIST (POSIX), FileExistsError (Windows)
            if not snapshot.is_dir():
                raise
            return False
        return True
    finally:
        shutil.rmtree(building, ignore_errors=True)


def install_local(
    folder: str | Path,
    repo_id: str,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    manifest: str | Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> InstallResult:
    """Install an export folder into the Hugging Face cache as ``repo_id``.

    Args:
        folder: an export folder.
        repo_id: 'org/name'.
        cache_dir: default: huggingface_hub's (HF_HUB_CACHE, else HF_HOME/hub).
        revision: 40-hex commit to file it under; default: the Hub commit the manifest records for this release,
            else one derived from the files' hashes.
        manifest: where to look up that commit (default: the package's releases.json); a path given must exist.
        log: receives a summary line, and a note when a staged tag of this repo is other weights.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    if repo_id_problem(repo_id):
        raise HubError(f"--repo-id: {repo_id_problem(repo_id)}.")
    ex = read_export(folder)
    recorded = ex.release.get("repo_id")
    if recorded and recorded != repo_id:
        raise HubError(f"{ex.path} was exported for {recorded}, not {repo_id}; pass --repo-id {recorded}.")
    sources = {name: ex.path / name for name in ex.files}
    etags = {name: blob_etag(path) for name, path in sources.items()}
    releases = [e for e in read_manifest(manifest, must_exist=True)["releases"] if e["repo_id"] == repo_id]
    origin = _GIVEN
    if revision is None:
        entry = next((e for e in releases if e.get("hub_commit") and e["sha256"] == ex.sha256), None)
        revision = entry["hub_commit"] if entry else local_revision(etags)
        origin = "recorded in the manifest as the Hub commit of these weights" if entry else "derived from the files"
    if not _COMMIT_RE.match(revision):
        raise HubError(f"--revision must be a 40-hex commit hash, got {revision!r}.")

    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    blocker = file_in_the_way(cache)
    if blocker is not None:  # before mkdir's bare "Not a directory" naming a folder deep inside the cache
        raise HubError(
            f"cache folder {cache}: {blocker} is a file, not a folder; pass another --cache-dir (or HF_HUB_CACHE)."
        )
    repo_dir = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs, snapshot, refs = repo_dir / "blobs", repo_dir / "snapshots" / revision, repo_dir / "refs"
    _refuse_other_files(snapshot, sources, etags, origin)
    for d in (blobs, snapshot.parent, refs):
        d.mkdir(parents=True, exist_ok=True)
    for name, src in sources.items():  # every blob first: a snapshot never links to a blob not written yet
        blob = blobs / etags[name]
        if not blob.is_file() or blob_etag(blob) != etags[name]:
            _atomic_copy(src, blob)
    if snapshot.is_dir() or not _rename_built_snapshot(repo_dir, snapshot, blobs, etags):
        # checked again: another install may have filed this revision since the check above (blobs written here
        # then stay, whole, unreferenced); entries of the revision not in the folder stay, each one replaced atomically
        _refuse_other_files(snapshot, sources, etags, origin)
        _link_snapshot(snapshot, snapshot, blobs, etags)
    installed = {name: snapshot / name for name in sources}
    ref = refs / "main"
    tmp = refs / f".main.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(revision, encoding="utf-8")  # no newline: huggingface_hub reads the file verbatim
        os.replace(tmp, ref)
    finally:  # a leftover ref would make `hf cache scan` report the repo as corrupted
        tmp.unlink(missing_ok=True)
    log(f"installed {ex.name} as {repo_id} (revision {revision}) in {repo_dir}")
    for e in releases:
        # a staged tag is read through refs/main, or from another snapshot that holds its very weights
        if not e.get("hub_commit") and e["sha256"] != ex.sha256 and not cached_by_sha256(repo_dir, e):
            name = f"{e['model']}.{e['tag']}"
            log(
                f"note: refs/main now points to these files, but the manifest stages other weights as {name} "
                f"(sha256 {e['sha256'][:12]}..., these {ex.sha256[:12]}...): timm.create_model('{name}', "
                "pretrained=True) refuses them until this folder is staged (zerosnet-hub stage) or the staged folder "
                "is installed again"
            )
    return InstallResult(repo_dir, revision, installed)
