"""Released weights: the manifest, the pretrained cfgs generated from it, and the checks made when loading them.

``releases.json`` (next to this file) lists every released tag: model, tag, Hub repo id, sha256 of the weights, the
data config and metrics they were trained and evaluated with, and their state: ``staged`` (exported and verified,
not on the Hub yet) or ``published`` (pushed; the Hub commit is recorded). The family files build their pretrained
cfgs from it (``with_released``), so ``timm.list_pretrained()`` shows exactly the released weights.

Loading a released tag goes through ``release_weights_overlay`` (called by the builder): the weights file is taken
from the local Hugging Face cache (a staged tag never touches the network and fails with "has not been pushed yet"
when it is not there; a published tag is downloaded at its recorded commit when missing), its sha256 is checked
against the manifest, and timm then loads that file. So a cached tag loads with HF_HUB_OFFLINE=1.

The publishing tool (``zerosnet-hub``, package ``hub``) writes the manifest; nothing here writes files except
``write_golden``.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "ReleaseError",
    "repo_id_problem",
    "MANIFEST_FORMAT",
    "WEIGHTS_NAME",
    "GOLDEN_NAME",
    "manifest_path",
    "empty_manifest",
    "load_manifest",
    "validate_manifest",
    "active_manifest",
    "use_manifest",
    "find_release",
    "released_cfgs",
    "with_released",
    "release_weights_overlay",
    "resolve_release_file",
    "sha256_file",
    "verify_sha256",
    "load_weights",
    "is_our_model",
    "golden_input",
    "write_golden",
    "check_golden",
    "GoldenCheck",
    "WEIGHTS_SUFFIXES",
]

MANIFEST_FORMAT = "timm_zerosnet.releases/1"
WEIGHTS_NAME = "model.safetensors"
GOLDEN_NAME = "golden.safetensors"
GOLDEN_FORMAT = "timm_zerosnet.golden/1"
STATES = ("staged", "published")
PICKLE_WEIGHTS_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".tar")
WEIGHTS_SUFFIXES = (".safetensors", *PICKLE_WEIGHTS_SUFFIXES)
"""The weights files ``load_weights`` reads: safetensors, and pickles with ``torch.load(weights_only=True)``."""

_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REQUIRED = ("model", "tag", "repo_id", "state", "sha256", "num_classes", "data_config")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")  # timm's str_to_interp_mode names
_CROP_MODES = ("center", "squash", "border")


class ReleaseError(RuntimeError):
    """A release that cannot be used: missing, not pushed, corrupt, or not matching the manifest."""


def tag_problem(tag: Any) -> str | None:
    """What is wrong with ``tag`` as the pretrained tag of a release, or None."""
    if not isinstance(tag, str) or not _TAG_RE.match(tag) or tag == "untrained":
        return f"tag {tag!r} must match [a-z0-9_]+ and not be 'untrained'"
    return None


def repo_id_problem(repo_id: Any) -> str | None:
    """What is wrong with ``repo_id`` as the Hub model repo of a release, or None: it must be 'org/name' as the Hub
    accepts it (``huggingface_hub``'s own check: no '--' or '..', no '.' or '-' at either end, at most 96
    characters) and outside timm's organisation (any case), whose repos belong to timm's own weights."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not _REPO_RE.match(repo_id):
        return f"repo id {repo_id!r} must be 'org/name'"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        return f"repo id {repo_id!r} is not a valid Hub repo id ({e})"
    if repo_id.split("/", 1)[0].lower() == "timm":
        return f"repo id {repo_id!r} is in timm's own organisation; publish under yours"
    return None


# ----- the manifest -----


def manifest_path() -> Path:
    """The manifest shipped with the package."""
    return Path(__file__).with_name("releases.json")


def empty_manifest() -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "releases": []}


def _is_number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _data_config_problem(data: Any) -> str | None:
    """What is wrong with an entry's data_config (what timm's transforms and pretrained cfg take from it), or None."""
    if not isinstance(data, Mapping):
        return f"data_config must be an object, got {data!r}"
    size = data.get("input_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
    ):
        return f"data_config needs input_size (C, H, W): 3 whole numbers >= 1, got {size!r}"
    for key in ("mean", "std"):
        value = data.get(key)
        if value is not None and (
            not isinstance(value, (list, tuple))
            or len(value) != size[0]
            or not all(_is_number(v) and (key == "mean" or v > 0) for v in value)
        ):
            what = "positive numbers" if key == "std" else "numbers"
            return f"data_config {key} must be {size[0]} {what} (one per input channel), got {value!r}"
    crop_pct = data.get("crop_pct")
    if crop_pct is not None and not (_is_number(crop_pct) and crop_pct > 0):
        return f"data_config crop_pct must be a number > 0, got {crop_pct!r}"
    for key, allowed in (("interpolation", INTERPOLATIONS), ("crop_mode", _CROP_MODES)):
        if data.get(key) is not None and data[key] not in allowed:
            return f"data_config {key} must be one of {', '.join(allowed)}, got {data[key]!r}"
    return None


def validate_manifest(manifest: Mapping[str, Any], source: str = "the release manifest") -> dict[str, Any]:
    """Check the structure of a manifest; returns a deep copy. Raises ReleaseError naming the first problem."""
    if not isinstance(manifest, Mapping):
        raise ReleaseError(
            f"{source}: a manifest is a JSON object with 'format' {MANIFEST_FORMAT!r} and 'releases', got "
            f"{type(manifest).__name__}."
        )
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ReleaseError(f"{source}: 'format' must be {MANIFEST_FORMAT!r}, got {manifest.get('format')!r}.")
    releases = manifest.get("releases")
    if not isinstance(releases, list):
        raise ReleaseError(f"{source}: 'releases' must be a list.")
    seen = set()
    for i, entry in enumerate(releases):
        where = f"{source}, releases[{i}]"
        if not isinstance(entry, Mapping):
            raise ReleaseError(f"{where}: not an object.")
        missing = [k for k in _REQUIRED if entry.get(k) in (None, "")]
        if missing:
            raise ReleaseError(f"{where}: missing {', '.join(missing)}.")
        name = f"{entry['model']}.{entry['tag']}"
        if not isinstance(entry["model"], str) or not re.fullmatch(r"[A-Za-z0-9_]+", entry["model"]):
            raise ReleaseError(f"{where}: model must be the name of an architecture (no tag), got {entry['model']!r}.")
        if tag_problem(entry["tag"]):
            raise ReleaseError(f"{where} ({name}): {tag_problem(entry['tag'])}.")
        problem = repo_id_problem(entry["repo_id"])
        if problem:
            raise ReleaseError(f"{where} ({name}): {problem}.")
        if entry["state"] not in STATES:
            raise ReleaseError(f"{where} ({name}): state must be one of {STATES}, got {entry['state']!r}.")
        if not _SHA256_RE.match(str(entry["sha256"])):
            raise ReleaseError(f"{where} ({name}): sha256 must be 64 lowercase hex digits.")
        if entry["state"] == "published" and not _COMMIT_RE.match(str(entry.get("hub_commit") or "")):
            raise ReleaseError(f"{where} ({name}): a published release needs its 40-hex hub_commit.")
        if entry.get("hub_commit") is not None and not _COMMIT_RE.match(str(entry["hub_commit"])):
            raise ReleaseError(
                f"{where} ({name}): hub_commit must be null or 40 lowercase hex digits, got {entry['hub_commit']!r}."
            )
        count = entry["num_classes"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ReleaseError(f"{where} ({name}): num_classes must be a count >= 1, got {count!r}.")
        metrics = entry.get("metrics")
        if metrics is not None and (
            not isinstance(metrics, Mapping)
            or not all(
                _is_number_or_none(metrics.get(k))
                for k in ("top1", "top5", "loss", "epoch", "samples", "val_num_samples")
            )
        ):
            raise ReleaseError(f"{where} ({name}): metrics must give top1, top5, loss as numbers, got {metrics!r}.")
        problem = _data_config_problem(entry["data_config"])
        if problem:
            raise ReleaseError(f"{where} ({name}): {problem}.")
        in_chans = entry.get("in_chans")
        if in_chans is not None and in_chans != entry["data_config"]["input_size"][0]:
            raise ReleaseError(
                f"{where} ({name}): in_chans {in_chans!r} is not the channel count of data_config's input_size "
                f"{list(entry['data_config']['input_size'])}."
            )
        for key in ("dataset", "license"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise ReleaseError(f"{where} ({name}): {key} must be a string, got {entry[key]!r}.")
        labels = entry.get("label_names")
        if labels is not None and (
            not isinstance(labels, list)
            or not all(isinstance(v, str) for v in labels)
            or len(labels) != entry["num_classes"]
        ):
            raise ReleaseError(f"{where} ({name}): label_names must be a list of num_classes strings.")
        if name in seen:
            raise ReleaseError(f"{where}: {name} is listed twice.")
        seen.add(name)
    return copy.deepcopy(dict(manifest))


def load_manifest(path: str | Path | None = None) -> dict[str, Any]:
    """Read and validate a manifest (default: the package's ``releases.json``)."""
    path = Path(path) if path is not None else manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseError(f"{path}: release manifest not found.") from None
    except IsADirectoryError:
        raise ReleaseError(f"{path} is a folder, not a release manifest: give the path of the file.") from None
    except UnicodeDecodeError as e:
        raise ReleaseError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 JSON.") from None
    except OSError as e:
        raise ReleaseError(f"{path}: cannot read the release manifest ({e.strerror or e}).") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReleaseError(f"{path}: not valid JSON ({e}).") from None
    return validate_manifest(manifest, str(path))


_active: dict[str, Any] | None = None


def active_manifest() -> dict[str, Any]:
    """The manifest the registered pretrained cfgs were generated from (read once, on first use)."""
    global _active
    if _active is None:
        _active = load_manifest()
    return _active


def find_release(model: str, tag: str | None, manifest: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The manifest entry of ``model.tag``, or None."""
    manifest = active_manifest() if manifest is None else manifest
    for entry in manifest["releases"]:
        if entry["model"] == model and entry["tag"] == tag:
            return entry
    return None


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, Mapping):
        return dict(cfg)
    return {k: v for k, v in vars(cfg).items() if v is not None}  # a timm PretrainedCfg


def _pool_size(base: Mapping[str, Any], input_size: tuple[int, ...]) -> tuple[int, ...] | None:
    base_input, base_pool = base.get("input_size"), base.get("pool_size")
    if not base_pool or not base_input:
        return None
    if tuple(base_input[1:]) == tuple(input_size[1:]):
        return tuple(base_pool)
    reduction = [i // p for i, p in zip(base_input[1:], base_pool)]
    if any(s % r for s, r in zip(input_size[1:], reduction)):
        return None
    return tuple(s // r for s, r in zip(input_size[1:], reduction))


def _describe(entry: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    metrics = entry.get("metrics") or {}
    dataset = entry.get("dataset") or "an unnamed dataset"
    description = f"Trained on {dataset}"
    if metrics.get("top1") is not None:
        split = f"its {metrics.get('split') or 'validation'} split"
        if metrics.get("val_num_samples"):  # measured on zerosnet-train --val-num-samples images of it
            split = f"an evenly spaced subset of {metrics['val_num_samples']:,} images of {split}"
        description += f", top-1 {metrics['top1']:.2f}% on {split}"
    notes = [f"sha256 {entry['sha256']}"]
    if entry["state"] == "published":
        notes.append(f"published, Hub commit {entry['hub_commit']}")
    else:
        notes.append("staged: not pushed to the Hub yet")
    notes += [f"{k} {v}" for k, v in metrics.items() if k in ("top1", "top5") and v is not None]
    return description + ".", tuple(notes)


def released_cfgs(
    model_name: str,
    manifest: Mapping[str, Any] | None = None,
    base: Any = None,
) -> dict[str, dict[str, Any]]:
    """Pretrained cfg kwargs of every released tag of ``model_name``, by tag.

    Args:
        model_name: a registered architecture name (no tag).
        manifest: default: the active manifest.
        base: the family's own cfg for the model (paper ids, first_conv, classifier, pool_size); the release adds its
            Hub id, data config, class count, label names, license and a description with its metrics.
    """
    base = _cfg_dict(base)
    out = {}
    for entry in (active_manifest() if manifest is None else manifest)["releases"]:
        if entry["model"] != model_name:
            continue
        data = entry["data_config"]
        input_size = tuple(int(v) for v in data["input_size"])
        description, notes = _describe(entry)
        cfg = {k: v for k, v in base.items() if k not in ("architecture", "tag", "url", "file", "hf_hub_id", "source")}
        cfg.update(
            hf_hub_id=entry["repo_id"],
            num_classes=int(entry["num_classes"]),
            input_size=input_size,
            pool_size=_pool_size(base, input_size),
            license=entry.get("license") or base.get("license") or "apache-2.0",
            description=description,
            notes=notes,
        )
        for key in ("mean", "std"):
            if data.get(key) is not None:
                cfg[key] = tuple(float(v) for v in data[key])
        for key in ("interpolation", "crop_pct", "crop_mode"):
            if data.get(key) is not None:
                cfg[key] = data[key]
        if entry.get("label_names"):
            cfg["label_names"] = tuple(entry["label_names"])
        if entry["state"] == "published":
            cfg["origin_url"] = f"https://huggingface.co/{entry['repo_id']}"
        out[entry["tag"]] = cfg
    return out


def with_released(cfgs: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A family's ``{'model.tag': cfg}`` dict with the manifest's released tags of those models added.

    Use it around the dict given to ``generate_default_cfgs``; the first released tag becomes a model's default, the
    family's own (weightless) tags stay registered after it.
    """
    out: dict[str, Any] = {}
    done = set()
    for key, cfg in cfgs.items():
        model = key.split(".", 1)[0]
        if model not in done:
            done.add(model)
            for tag, release_cfg in released_cfgs(model, manifest, base=cfg).items():
                out[f"{model}.{tag}"] = release_cfg
        out[key] = cfg
    return out


def _reregister(models: set[str], manifest: Mapping[str, Any]) -> None:
    """Regenerate the pretrained cfgs of registered timm_zerosnet ``models`` from ``manifest``."""
    from timm.models import generate_default_cfgs, is_model, model_entrypoint, register_model

    for model in sorted(models):
        if not is_model(model):
            continue
        fn = model_entrypoint(model)
        module = sys.modules.get(fn.__module__)
        if not fn.__module__.startswith("timm_zerosnet.") or model not in getattr(module, "default_cfgs", {}):
            continue
        family = {
            f"{model}.{tag}" if tag else model: cfg
            for tag, cfg in module.default_cfgs[model].cfgs.items()
            if not cfg.has_weights
        }
        module.default_cfgs[model] = generate_default_cfgs(with_released(family, manifest))[model]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm warns when a name is registered again
            register_model(fn)


@contextlib.contextmanager
def use_manifest(manifest: Mapping[str, Any] | str | Path) -> Iterator[dict[str, Any]]:
    """Register the tags of another manifest for the duration of a block (tests, trying a release locally).

    The registry and the active manifest are restored on exit.
    """
    global _active
    if isinstance(manifest, Mapping):
        new = validate_manifest(manifest)
    elif manifest is None or isinstance(manifest, (str, os.PathLike)):  # None: the package's own
        new = load_manifest(manifest)
    else:
        raise TypeError(
            f"use_manifest takes a manifest (a dict as releases.json holds) or the path of one, got "
            f"{type(manifest).__name__}."
        )
    _check_architectures(new, str(manifest) if not isinstance(manifest, Mapping) else "the release manifest")
    old = active_manifest()
    models = {e["model"] for e in old["releases"]} | {e["model"] for e in new["releases"]}
    try:  # a registry left half-switched would serve the other manifest's tags after the error
        _active = new
        _reregister(models, new)
        yield new
    finally:
        _active = old
        _reregister(models, old)


def _check_architectures(manifest: Mapping[str, Any], source: str) -> None:
    """Refuse an entry whose model is no timm_zerosnet architecture: its tag would not be registered at all, and
    loading it would say it has no released weights (or is an unknown model) without naming the manifest."""
    for i, entry in enumerate(manifest["releases"]):
        if is_our_model(entry["model"]):
            continue
        from timm.models import list_models

        ours = [m for m in list_models() if is_our_model(m)]
        close = difflib.get_close_matches(entry["model"], ours, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ReleaseError(
            f"{source}, releases[{i}] ({entry['model']}.{entry['tag']}): {entry['model']!r} is not an architecture "
            f"of timm_zerosnet{hint}; fix the model name (no tag) or remove the entry."
        )


# ----- files -----

_sha_memo: dict[tuple[str, int, int], str] = {}


def respect_umask(path: str | Path) -> None:
    """Give a file written by safetensors the permissions of any other new file (0666 less the umask): its writer
    creates them 0600, so a run's weights or an export could not be read by the group that reads the rest."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (remembered per path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]


def verify_sha256(path: str | Path, expected: str, what: str, advice: str | None = None) -> None:
    """Refuse ``path`` unless its sha256 is ``expected`` (the manifest's value for ``what``); ``advice`` says what to
    do (default: delete the file and download or install it again)."""
    actual = sha256_file(path)
    if actual != expected:
        raise ReleaseError(
            f"refusing {path}: its sha256 is {actual} but the release manifest records {expected} for {what}. "
            f"The file is corrupt, truncated or not the released export: "
            f"{advice or 'delete it and download or install it again'}."
        )


def load_weights(path: str | Path) -> dict[str, Any]:
    """Read a weights file with a clear error for each way it can be wrong.

    ``.safetensors`` is read as is; pickle-based files (``.bin``, ``.pth``, ``.pt``, ``.ckpt``, ``.tar``) only with
    ``torch.load(weights_only=True)`` and a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise ReleaseError(f"{path}: no such weights file.")
    if path.suffix == ".safetensors":
        import safetensors.torch

        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as e:  # SafetensorError, OSError: corrupt or truncated
            raise ReleaseError(
                f"{path}: not a readable safetensors file ({_first_line(e)}); it is corrupt or truncated: export or "
                f"download it again."
            ) from None
    if path.suffix in PICKLE_WEIGHTS_SUFFIXES:
        warnings.warn(
            f"{path} is a pickle file: loading it with torch.load(weights_only=True), which accepts tensors and plain "
            f"containers only. Prefer .safetensors.",
            UserWarning,
            stacklevel=2,
        )
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError (refused object), EOFError / RuntimeError (truncated)
            raise ReleaseError(
                f"{path}: refused by torch.load(weights_only=True) ({_first_line(e)}); it is corrupt, truncated or "
                f"holds more than weights. Convert it to .safetensors where you trust its origin."
            ) from None
    raise ReleaseError(f"{path}: unsupported weights format {path.suffix!r}; use .safetensors (or .bin / .pth).")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def is_our_model(architecture: str) -> bool:
    """True for an architecture registered by timm_zerosnet."""
    from timm.models import is_model, model_entrypoint

    return (
        bool(architecture)
        and is_model(architecture)
        and model_entrypoint(architecture).__module__.startswith("timm_zerosnet.")
    )


# ----- loading a released tag -----


def resolve_release_file(entry: Mapping[str, Any], cache_dir: str | Path | None = None) -> str:
    """The verified local weights file of a manifest entry.

    Staged: from the local Hugging Face cache only (never the network). Published: from the cache, else downloaded at
    the recorded Hub commit. In both cases the sha256 must match the manifest.
    """
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    name, repo_id, commit = f"{entry['model']}.{entry['tag']}", entry["repo_id"], entry.get("hub_commit")
    cache = str(Path(cache_dir).expanduser()) if cache_dir else constants.HF_HUB_CACHE  # '~/...' as install-local
    repo_dir = Path(cache) / repo_folder_name(repo_id=repo_id, repo_type="model")
    mismatched = None
    for revision in ([commit] if commit else []) + [None]:
        path = try_to_load_from_cache(repo_id, WEIGHTS_NAME, cache_dir=cache, revision=revision)
        if isinstance(path, str):
            if sha256_file(path) == entry["sha256"]:
                return path
            mismatched = path
    # the very weights under another revision (refs/main moved to other weights installed since): the sha256 says
    # they are the released file, wherever they were filed
    found = cached_by_sha256(repo_dir, entry)
    if found:
        return found
    # the cache asked for (cache_dir=, or HF_HUB_CACHE): install-local writes to the default one without it
    into = f" --cache-dir {cache}" if cache_dir else ""
    if entry["state"] != "published":
        if mismatched:  # install-local copies a corrupt blob again and points refs/main at the staged files
            verify_sha256(
                mismatched,
                entry["sha256"],
                name,
                f"install the staged export folder again with `zerosnet-hub install-local EXPORT_DIR --repo-id "
                f"{repo_id}{into}`",
            )
        raise ReleaseError(
            f"{name} is staged but has not been pushed yet: {repo_id} is not on the Hugging Face Hub and its weights "
            f"are not in the local cache ({cache}). Put the exported folder there with `zerosnet-hub install-local "
            f"EXPORT_DIR --repo-id {repo_id}{into}`, or publish it with `zerosnet-hub push EXPORT_DIR --repo-id "
            f"{repo_id}`."
        )
    try:
        path = hf_hub_download(repo_id, WEIGHTS_NAME, revision=commit, cache_dir=cache)
    except Exception as e:  # offline, no network, repo or file gone: one message either way
        raise ReleaseError(
            f"{name}: the weights are not in the local cache ({cache}) and could not be downloaded from "
            f"{repo_id}@{commit[:12]} ({type(e).__name__}: {_first_line(e)}). Connect to the network (and unset "
            f"HF_HUB_OFFLINE), or install the exported folder with `zerosnet-hub install-local`."
        ) from None
    verify_sha256(
        path,
        entry["sha256"],
        name,
        f"delete {repo_dir} (`hf cache rm`) and load again, or install the exported folder with `zerosnet-hub "
        f"install-local EXPORT_DIR --repo-id {repo_id}{into}`",
    )
    return path


def cached_by_sha256(repo_dir: Path, entry: Mapping[str, Any]) -> str | None:
    """A snapshot's weights file of ``repo_dir`` whose sha256 is the entry's, or None. A link is looked at only when
    it points to the blob named by that sha256 (the Hub's etag of an LFS file), a copy only when its size is the
    entry's: nothing else is hashed."""
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    for snapshot in sorted(snapshots.iterdir()):
        path = snapshot / WEIGHTS_NAME
        if path.is_symlink():
            if Path(os.readlink(path)).name != entry["sha256"]:
                continue
        elif entry.get("size") is not None and path.is_file() and path.stat().st_size != entry["size"]:
            continue
        if path.is_file() and sha256_file(path) == entry["sha256"]:
            return str(path)
    return None


def _get(cfg: Any, key: str) -> Any:
    return cfg.get(key) if isinstance(cfg, Mapping) else getattr(cfg, key, None)


def release_weights_overlay(
    cfg: Any,
    overlay: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
) -> Mapping[str, Any] | None:
    """The ``pretrained_cfg_overlay`` a builder should use for the resolved pretrained ``cfg``.

    For a manifest tag it points timm at the verified local weights file (see ``resolve_release_file``); anything
    else (another tag, an ``hf-hub:`` / ``local-dir:`` source, an explicit file or state dict) is returned unchanged.
    """
    if _get(cfg, "source") in ("hf-hub", "local-dir") or _get(cfg, "file") or _get(cfg, "state_dict") is not None:
        return overlay
    entry = find_release(_get(cfg, "architecture"), _get(cfg, "tag"))
    if entry is None or _get(cfg, "hf_hub_id") != entry["repo_id"]:
        return overlay
    return {**(overlay or {}), "file": resolve_release_file(entry, cache_dir)}


# ----- golden outputs -----


@contextlib.contextmanager
def _fixed_threads(n: int = 1) -> Iterator[None]:
    # the same reduction order whatever the caller's thread count: reproducible bit for bit on one machine
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def golden_input(input_size: tuple[int, int, int], batch: int = 4, seed: int = 0) -> torch.Tensor:
    """A seeded batch at the model's input size (normalised space)."""
    return torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _outputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        with _fixed_threads():
            features = model.forward_features(x)
            return {
                "pre_logits": model.forward_head(features, pre_logits=True).contiguous(),
                "logits": model.forward_head(features).contiguous(),
            }
    finally:
        model.train(was_training)


def write_golden(model: torch.nn.Module, path: str | Path, input_size: tuple[int, int, int], seed: int = 0) -> None:
    """Save a seeded input batch and the model's eval-mode logits and pooled features for it.

    The file holds the input itself, so checking it needs no RNG; one metadata key keeps the bytes reproducible.
    """
    import safetensors.torch

    x = golden_input(tuple(input_size), seed=seed)
    tensors = {"input": x, **_outputs(model, x)}
    safetensors.torch.save_file(tensors, str(path), metadata={"format": GOLDEN_FORMAT})
    respect_umask(path)


@dataclass(frozen=True)
class GoldenCheck:
    """How far a model's outputs are from the golden ones (``exact``: bit for bit)."""

    exact: bool
    max_abs_diff: float

    def __bool__(self) -> bool:
        return self.exact


def check_golden(model: torch.nn.Module, path: str | Path) -> GoldenCheck:
    """Run the golden input through ``model`` and compare logits and pooled features with the stored ones."""
    golden = load_weights(path)
    missing = [k for k in ("input", "logits", "pre_logits") if k not in golden]
    if missing:
        raise ReleaseError(f"{path}: not a golden-outputs file (missing {', '.join(missing)}).")
    out = _outputs(model, golden["input"])
    diff = 0.0
    for key in ("logits", "pre_logits"):
        if out[key].shape != golden[key].shape:
            raise ReleaseError(
                f"{path}: {key} of shape {tuple(golden[key].shape)} but the model gives {tuple(out[key].shape)}."
            )
        diff = max(diff, float((out[key] - golden[key]).abs().max()))
    exact = all(torch.equal(out[k], golden[k]) for k in ("logits", "pre_logits"))
    return GoldenCheck(exact=exact, max_abs_diff=diff)
