"""A run directory as ``zerosnet-train`` writes it, for the tools that read one (``zerosnet-validate``,
``zerosnet-analyze``, ``zerosnet-hub``, ``--pretrained-path``): its run.json, which file holds a run's final, EMA or
best weights (and which of them a given file is), and which architecture the run trained. A training state
(``<run>/checkpoints/state-*``) and a file in one are read as part of their run: the run's model, its options and
data config, with the state's own weights.

Apart from train.py, which imports accelerate and the training stack: the publishing and analysis tools read run
directories through this module alone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "EXPORT_RECORDS",
    "ExportFolderError",
    "LOADING_OPTIONS",
    "RUN_RECORDS",
    "STATE_FIELD",
    "STATE_OBJECTS",
    "STATE_WEIGHT_FILES",
    "WEIGHT_FILES",
    "architecture_name",
    "architecture_options",
    "check_output_file",
    "is_export_folder",
    "published_config",
    "file_in_the_way",
    "read_run_info",
    "run_info_problem",
    "resolve_weights",
    "run_architecture",
    "run_files",
    "is_states_folder",
    "state_object_file",
    "state_weights_kind",
    "training_state",
    "weights_file_name",
    "weights_kind",
]

WEIGHT_FILES = {"final": "model.safetensors", "ema": "model_ema.safetensors", "best": "best.safetensors"}
"""A run directory's default weights files by kind (run.json's ``weights`` may record other names)."""

LOADING_OPTIONS = ("pretrained_strict",)
"""timm.create_model arguments that say how weights load, not what the model is: a run records them in its options as
given (args.yaml), never among the options its model was built with (run.json's ``model_kwargs``, an export's
``model_args``), which whoever loads the published weights passes on."""

EXPORT_RECORDS = ("config.json", "release.json")
"""The files beside the weights by which an export folder of ``zerosnet-hub export`` is known."""

RUN_RECORDS = ("run.json", "args.yaml", "metrics.csv", "metrics.json", "curves.png")
"""The files beside the weights in which zerosnet-train records a run (its training states are in checkpoints/)."""

CHECKPOINT_ENTRIES = {"final": ("state_dict", "model"), "ema": ("state_dict_ema", "model_ema")}
"""The entries of a training checkpoint file that hold the model's weights and their EMA, by kind: timm's train.py
writes the first of each (model_best.pth.tar), other trainers the second."""

STATE_OBJECTS = ("scheduler", "progress", "ema")
"""The objects zerosnet-train registers for checkpointing, in the order it registers them (the EMA with --model-ema
only): accelerate saves them in a training state as custom_checkpoint_<i>.pkl, i by that order."""


def state_object_file(kind: str) -> str:
    """The file of a training state that holds the object ``kind`` of ``STATE_OBJECTS``."""
    return f"custom_checkpoint_{STATE_OBJECTS.index(kind)}.pkl"


STATE_WEIGHT_FILES = {"final": "model.safetensors", "ema": state_object_file("ema"), "best": "best.safetensors"}
"""A training state's weights files by kind: its model's (accelerate's), its EMA's (a torch.save of timm's ModelEmaV3
state dict, whose ``module.`` prefix the loaders strip: timm's ``clean_state_dict``) and a copy of the run's best
weights so far (which a resume restores)."""

_STATE_PROGRESS_FILE = state_object_file("progress")  # the state's progress and settings (train.TrainState)
_STATE_OTHER_FILES = {  # the files of a state that hold no weights, by what they hold
    state_object_file("scheduler"): "scheduler state",
    _STATE_PROGRESS_FILE: "progress and settings",
    "optimizer.bin": "optimizer state",
}

STATE_FIELD = "training_state"
"""The field that :func:`read_run_info` adds to the run.json it reads for a training state (the state's folder): no
field of run.json itself. Its weights are the state's, none of the run's final, EMA or best files."""

_RUN_END_FIELDS = ("metrics", "weights", "epochs")  # what run.json says of the run's end, not of one of its states


def architecture_options(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Model options without the ``LOADING_OPTIONS``."""
    return {k: v for k, v in (kwargs or {}).items() if k not in LOADING_OPTIONS}


def run_files(run_dir: Path, info: dict[str, Any] | None) -> set[Path]:
    """Every file of ``run_dir`` that zerosnet-train wrote or may write: its records and weights files (the names
    run.json records included). A tool must not write over them."""
    names = set(RUN_RECORDS) | set(WEIGHT_FILES.values())
    names |= {v for v in ((info or {}).get("weights") or {}).values() if isinstance(v, str) and v}
    return {run_dir / n for n in names}


def file_in_the_way(folder: str | Path) -> Path | None:
    """The file that stands where ``folder`` or one of its parents would have to be a folder (the nearest of them
    that exists, when it is not a directory), or None: what the tools check before writing a run, a results file or
    an export, so that they fail before any work instead of in ``mkdir``."""
    folder = Path(folder).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def check_output_file(path: str | Path, option: str, kind: str, is_kind: Callable[[Path], bool]) -> Path:
    """Refuse the output file of a tool's ``option`` before any work is done, and return it as a Path: a folder,
    a path under a file, a folder that cannot be written in, a file of any run directory (one with a run.json: its
    records and weights, and its training states under checkpoints/), or an existing file that is not an earlier
    output of this ``kind`` (``is_kind`` says whether it is). Such a file is the user's data, written over only
    when named again by mistake.

    Raises:
        ValueError: what is wrong with the path, and what to do.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; name a file in it")
    blocked = file_in_the_way(path.parent)
    if blocked is not None:
        raise ValueError(f"{option} {path}: {blocked} is a file, not a folder; name another path")
    for folder in (path.parent, *(p.parent for p in path.parents if p.name == "checkpoints")):
        if not (folder / "run.json").is_file():
            continue
        try:
            info = read_run_info(folder)
        except ValueError:  # a damaged run.json: its run's default files are still the run's
            info = None
        if path.resolve() in run_files(folder.resolve(), info) or folder != path.parent:
            raise ValueError(
                f"{option} {path} would overwrite {path.relative_to(folder)} of the run in {folder}; name a file "
                "of its own (not a record, weights file or training state of the run)"
            )
    if path.exists() and not is_kind(path):
        raise ValueError(f"{option} {path} exists and is not {kind}; name another file, or move that one away")
    ancestor = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as e:
        why = f"cannot write in {ancestor} ({e.strerror})"
        raise ValueError(f"{option} {path}: {why}; name a path you can write") from None
    return path


def weights_file_name(info: dict[str, Any] | None, which: str) -> str:
    """The file of a run's ``which`` weights ('final', 'ema' or 'best'): the name run.json records, else the
    default."""
    return ((info or {}).get("weights") or {}).get(which) or WEIGHT_FILES[which]


def weights_kind(file_name: str, info: dict[str, Any] | None) -> str | None:
    """Which of a run's weights the file ``file_name`` of its directory is ('final', 'ema', 'best'; the names
    run.json records win over the defaults); None without a run.json (``info`` None), for another file, or for a file
    of a training state (``info`` read for one: it is none of the run's weights files)."""
    if info is None or info.get(STATE_FIELD):
        return None
    names = {**WEIGHT_FILES, **{k: v for k, v in (info.get("weights") or {}).items() if v}}
    return next((k for k, v in names.items() if v == file_name), None)


def architecture_name(name: str) -> str:
    """timm's architecture of a model name: the name without a pretrained tag (``zerosnet20_cifar.digits`` ->
    ``zerosnet20_cifar``). A name with a source (``hf-hub:ORG/NAME``, ``local-dir:PATH``) stays as it is: only its
    config says what it builds."""
    return name if ":" in name else name.split(".", 1)[0]


def run_architecture(info: dict[str, Any]) -> str | None:
    """The architecture a run trained. run.json's ``model`` is ``--model`` as given, which may carry a pretrained
    tag or a source; for a source, the architecture the model's pretrained cfg recorded."""
    name = info.get("model")
    if name and ":" in name:
        return (info.get("pretrained_cfg") or {}).get("architecture") or name
    return architecture_name(name) if name else None


def training_state(path: Path) -> Path | None:
    """The training state that ``path`` is, or that the file ``path`` is in: a folder ``<run>/checkpoints/state-*``
    as zerosnet-train saves them (without a run.json of its own); else None."""
    folder = path if path.is_dir() else path.parent
    if folder.name.startswith("state-") and folder.parent.name == "checkpoints" and not (folder / "run.json").exists():
        return folder
    return None


def is_states_folder(path: Path) -> bool:
    """Whether ``path`` is a run's folder of training states: ``<run>/checkpoints``, beside the run's run.json."""
    return path.name == "checkpoints" and (path.parent / "run.json").is_file()


def _refuse_states_folder(path: Path, given: str, run_weights: str) -> None:
    """Refuse a run's folder of training states (``<run>/checkpoints``) and its ``latest`` pointer (a one-line file
    naming the latest state), which hold no weights of their own: name the run folder and the states to pass.
    ``given``: how the path was given (an option and the path, or the path); ``run_weights``: what the run folder
    gives the command, for the message."""
    folder = path.parent if path.is_file() and path.name == "latest" else path
    if folder.name != "checkpoints" or not folder.is_dir():
        return
    states = sorted(p.name for p in folder.iterdir() if p.is_dir() and training_state(p) == p)
    if not is_states_folder(folder) and not states:
        return
    run = folder.parent
    if path.is_file():
        named = path.read_text(encoding="utf-8", errors="replace").strip()
        if named in states:
            raise ValueError(
                f"{given} names the run's latest training state, {named}, and holds no weights: pass that state "
                f"folder {folder / named}, or the run folder {run}"
            )
        shown = f"names {named[:80]!r}, which is none of its training states" if named else "is empty"
        raise ValueError(
            f"{given}, the pointer to the run's latest training state, {shown}: pass a state folder in "
            f"{folder}" + (f" ({', '.join(states)})" if states else "") + f", or the run folder {run}"
        )
    latest = folder / "latest"
    named = latest.read_text(encoding="utf-8", errors="replace").strip() if latest.is_file() else ""
    shown = f"the latest, {folder / named}" if named in states else f"{folder / states[-1]}" if states else ""
    raise ValueError(
        f"{given} is the folder of the run's training states, not a run: pass the run folder {run} ({run_weights})"
        + (f", or one of its states, e.g. {shown}" if shown else "")
    )


def refuse_what_holds_no_weights(path: Path, given: str, run_weights: str) -> None:
    """Refuse a path of a run that holds no weights, naming what to pass instead: the run's folder of training states
    and its ``latest`` pointer, its records (run.json, args.yaml, ...: not a checkpoint that torch.load refuses) and
    a training state's other files (optimizer, scheduler, random number states). ``given`` and ``run_weights``: as
    for ``_refuse_states_folder``. Every tool that reads weights refuses them so (ValueError)."""
    _refuse_states_folder(path, given, run_weights)
    if path.is_file() and path.name in RUN_RECORDS:
        raise ValueError(
            f"{path} is the run's {path.name}, not a weights file: pass the run folder {path.parent} (its final, ema "
            "or best weights), or a weights file"
        )
    state = training_state(path)
    if state is not None and path.is_file() and (path.name in _STATE_OTHER_FILES or path.name.startswith("random_")):
        raise ValueError(
            f"{path} is the {_STATE_OTHER_FILES.get(path.name, 'random number state')} of the training state "
            f"{state}, not weights: pass the state folder (its model's weights), or {state / 'model.safetensors'}"
        )


def state_weights_kind(path: Path) -> str | None:
    """Which of a training state's weights (``STATE_WEIGHT_FILES``: 'final', 'ema', 'best') the file ``path`` is;
    None for a folder or any other file."""
    state = training_state(path)
    if state is None or path.is_dir() or path.parent != state:
        return None
    return next((kind for kind, name in STATE_WEIGHT_FILES.items() if name == path.name), None)


def read_run_info(path: Path) -> dict | None:
    """run.json of a run directory, or of the run a weights file belongs to. For a training state, or a file in one
    (:func:`training_state`): the run's run.json (``<state>/../../run.json``) without what it says of the run's end
    (its metrics, weights files and epochs), with ``STATE_FIELD``: the state's folder.

    Raises:
        ValueError: the run.json is damaged, or is of another model than the training state was saved with.
    """
    state = training_state(path)
    if state is not None:
        info = _read_run_json(state.parent.parent / "run.json")
        if info is None:
            return None
        _check_state_of_run(state, info)
        return {**{k: v for k, v in info.items() if k not in _RUN_END_FIELDS}, STATE_FIELD: str(state)}
    return _read_run_json(path / "run.json" if path.is_dir() else path.parent / "run.json")


def _read_run_json(candidate: Path) -> dict | None:
    if candidate.is_file():
        try:
            with open(candidate) as f:
                info = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{candidate} is not valid JSON ({e}): restore it, or copy the weights file out of its folder and "
                "pass --model and the options it was trained with"
            ) from None
        if not isinstance(info, dict) or not isinstance(info.get("weights") or {}, dict):
            raise ValueError(
                f"{candidate} is not a run.json of zerosnet-train (another file was written over it?): restore it, or "
                "copy the weights file out of its folder and pass --model and the options it was trained with"
            )
        problem = run_info_problem(info)
        if problem is not None:
            raise ValueError(
                f"{candidate}: {problem} (was it edited by hand?): restore it, or copy the weights file out of its "
                "folder and pass --model and the options it was trained with"
            )
        return info
    return None


def _state_settings(state: Path) -> dict | None:
    """The settings a training state was saved with (train.Trainer.settings: its model, --model-ema, ...); None where
    none can be read (a state of an older version, a damaged progress file: resuming it says what is wrong)."""
    import torch

    try:
        progress = torch.load(state / _STATE_PROGRESS_FILE, map_location="cpu", weights_only=True)
    except Exception:  # torch.load signals a missing or damaged file with unrelated types
        return None
    settings = progress.get("settings") if isinstance(progress, dict) else None
    return settings if isinstance(settings, dict) else None


def _check_state_of_run(state: Path, info: dict[str, Any]) -> None:
    """Refuse a state whose settings name another model than the run.json of the run it is in (copied there)."""
    saved = (_state_settings(state) or {}).get("model")
    if isinstance(saved, str) and info.get("model") and saved != info["model"]:
        run_json = state.parent.parent / "run.json"
        raise ValueError(
            f"{state} is a training state of {saved!r} (its settings) but {run_json} is of {info['model']!r}: the "
            f"state is not of this run (copied into it?). Move it back to its own run, or copy its "
            f"{STATE_WEIGHT_FILES['final']} out of the run folder and pass --model {saved} and the options it was "
            "trained with"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_file_name(value: Any) -> bool:
    return value is None or (isinstance(value, str) and Path(value).name == value and value not in ("", ".", ".."))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# the fields the tools read, with what zerosnet-train writes there (each may be missing or null)
_RUN_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "model": ("a model name", lambda v: isinstance(v, str) and bool(v.strip())),
    "model_kwargs": ("an object of model arguments", lambda v: isinstance(v, dict)),
    "num_classes": ("a class count >= 1", _is_count),
    "in_chans": ("a channel count >= 1", _is_count),
    "global_pool": ("a pool type", lambda v: isinstance(v, str)),
    "label_names": ("a list of names", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)),
    "data_config": ("an object", lambda v: isinstance(v, dict)),
    "dataset": ("a name or an object", lambda v: isinstance(v, (str, dict))),
    "weights": ("an object of file names in the run folder", lambda v: all(map(_is_file_name, v.values()))),
    "metrics": (
        "an object of evaluations",
        lambda v: isinstance(v, dict) and all(m is None or isinstance(m, dict) for m in v.values()),
    ),
    "training": ("an object", lambda v: isinstance(v, dict)),
    "epochs": ("an object", lambda v: isinstance(v, dict)),
    "pretrained_cfg": ("an object", lambda v: isinstance(v, dict)),
    "status": ("a status word", lambda v: isinstance(v, str)),
}


def run_info_problem(info: dict[str, Any]) -> str | None:
    """What is wrong with a run.json's fields, as the tools read them (types, the input size, the metrics), or
    None. Each field may be missing or null."""
    for field, (want, ok) in _RUN_FIELDS.items():
        value = info.get(field)
        if value is not None and not ok(value):
            return f"{field} is {value!r}, not {want}"
    size = (info.get("data_config") or {}).get("input_size")
    if size is not None and not (isinstance(size, list) and len(size) == 3 and all(_is_count(n) for n in size)):
        return f"data_config.input_size is {size!r}, not [channels, height, width] of counts >= 1"
    for kind, values in (info.get("metrics") or {}).items():
        for name, value in (values or {}).items():  # null: no evaluation yet (a run stopped before its first)
            if name.startswith(("top", "val_", "train_")) and value is not None and not _is_number(value):
                return f"metrics.{kind}.{name} is {value!r}, not a number"
    return None


def is_export_folder(folder: Path) -> bool:
    """Whether ``folder`` is a folder written by ``zerosnet-hub export`` (its EXPORT_RECORDS are there)."""
    return all((folder / name).is_file() for name in EXPORT_RECORDS)


def published_config(model: Any) -> dict[str, Any] | None:
    """The config.json of the published model that ``model`` was built from (``local-dir:`` or ``hf-hub:``, timm's
    cached copy), found through its pretrained cfg; None for any other model, or where there is none to read. It
    holds what timm's pretrained cfg has no field for: ``model_args`` (passed on to the model by timm's loader) and
    ``input_img_mode``."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    try:
        if cfg.get("source") == "local-dir":
            path = Path(cfg["file"]) / "config.json"
        elif cfg.get("source") == "hf-hub":
            from huggingface_hub import hf_hub_download

            repo_id, _, revision = str(cfg["hf_hub_id"]).partition("@")
            path = Path(hf_hub_download(repo_id, "config.json", revision=revision or None))
        else:
            return None
        config = json.loads(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):  # no config.json to read: timm built the model without one
        return None
    return config if isinstance(config, dict) else None


class ExportFolderError(ValueError):
    """A weights path inside a ``zerosnet-hub export`` folder, given where a run or a bare weights file is read: the
    folder's config.json holds the model's arguments (a scheme's lambda or tau are no tensors) and data config, which
    the weights alone would load without."""

    def __init__(self, folder: Path):
        self.folder = folder
        super().__init__(
            f"{folder} is an export folder ({', '.join(EXPORT_RECORDS)}), not a training run: its weights alone "
            "would be built with the default model arguments and data config, not those its config.json records; "
            f"load it whole through timm's local-dir: source (--model local-dir:{folder} --pretrained, or "
            f"timm.create_model('local-dir:{folder}', pretrained=True))"
        )


def resolve_weights(
    path: str | Path, which: str = "final", pass_file_as: tuple[str, str] | None = None, option: str | None = None
) -> tuple[Path, dict | None]:
    """A weights file and its run.json (if any) from a file or a run directory ('final', 'ema' or 'best').
    ``pass_file_as``: (verb, option) of a command that takes a weights file but no ``--weights`` (zerosnet-train's
    ("fine-tune", "--pretrained-path")), for the advice about a run directory without ``which`` weights.
    ``option``: the command's option that gave ``path`` (``--checkpoint``), named where a run's folder of training
    states or its ``latest`` pointer is refused (neither holds weights); default ``pass_file_as``'s.

    A training state (``<run>/checkpoints/state-*``) or a weights file in one gives the state's weights with its run's
    run.json (:func:`read_run_info`): of the state folder 'final' is its model's weights, 'ema' its EMA's and 'best'
    the copy of the run's best weights so far that it keeps (``STATE_WEIGHT_FILES``), never the run's own files.

    Raises:
        ExportFolderError: ``path`` is (a file in) an export folder of ``zerosnet-hub export``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such weights file or run directory")
    option = option or (pass_file_as[1] if pass_file_as else None)
    run_weights = "its final weights" if pass_file_as else "its final, ema or best weights with --weights"
    refuse_what_holds_no_weights(path, f"{option} {path}" if option else str(path), run_weights)
    state = training_state(path)
    info = read_run_info(path)
    folder = path if path.is_dir() else path.parent
    if info is None and is_export_folder(folder):
        raise ExportFolderError(folder)
    if path.is_dir():
        if which not in WEIGHT_FILES:
            raise ValueError(f"weights must be one of {sorted(WEIGHT_FILES)}, got {which!r}")
        if state is not None:
            return _state_weights(state, which, info, pass_file_as), info
        run_dir, path = path, path / weights_file_name(info, which)
        if not path.is_file():
            raise FileNotFoundError(_missing_weights(run_dir, which, info, pass_file_as))
    if not path.is_file():
        raise FileNotFoundError(f"No weights at {path}")
    return path, info


def _state_weights(state: Path, which: str, info: dict | None, pass_file_as: tuple[str, str] | None) -> Path:
    """The file of a training state's ``which`` weights (``STATE_WEIGHT_FILES``), or why it has none and where its
    run's are (FileNotFoundError)."""
    run_dir, path = state.parent.parent, state / STATE_WEIGHT_FILES[which]
    run_file = run_dir / weights_file_name(info, which)
    if not run_file.is_file():
        elsewhere = f"{pass_file_as[0]} another state's weights" if pass_file_as else "pass another state"
    elif pass_file_as:
        verb, option = pass_file_as
        elsewhere = f"{verb} another state's weights, or the run's {which} weights with {option} {run_file}"
    else:
        elsewhere = f"pass another state, or the run folder {run_dir} with --weights {which} (its {run_file.name})"
    if which == "ema":
        recorded = ((info or {}).get("training") or {}).get("model_ema")
        recorded = (_state_settings(state) or {}).get("model_ema", recorded)
        if recorded is False:
            why = "its run was trained without --model-ema"
        elif recorded is None and not path.is_file() and not run_file.is_file():
            # a run that recorded nothing (an older run.json) and holds no EMA either was trained without one
            why = f"neither it ({path.name}) nor its run ({run_file.name}) holds an EMA: trained without --model-ema?"
        else:
            why = None
        if why is not None:
            raise FileNotFoundError(
                f"{state} has no ema weights: {why}; use the state's model weights "
                f"(--weights final, or {state / STATE_WEIGHT_FILES['final']})"
            )
        if not path.is_file():
            resume = f"zerosnet-train -c {run_dir.absolute() / 'args.yaml'} --resume {state.absolute()}"
            raise FileNotFoundError(
                f"{state} has no ema weights ({path.name}, the EMA's state that accelerate saves, is missing: was the "
                f"run trained without --model-ema, or is the state incomplete?); resume the state to go on with its "
                f"EMA (`{resume}`), or {elsewhere}"
            )
    elif not path.is_file():
        why = "saved before the run's first evaluation, or by an older version" if which == "best" else "incomplete?"
        raise FileNotFoundError(f"{state} has no {which} weights ({path.name}; {why}): {elsewhere}")
    return path


def _looks_like_weights(name: str) -> bool:
    return name.endswith((".safetensors", ".pth", ".pth.tar", ".pt", ".bin", ".ckpt"))


def _missing_weights(run_dir: Path, which: str, info: dict | None, pass_file_as: tuple[str, str] | None) -> str:
    """Why a run directory has no ``which`` weights, and which ones it has (named as ``--weights`` choices, or as
    files to pass with ``pass_file_as``)."""
    have = [k for k in WEIGHT_FILES if (run_dir / weights_file_name(info, k)).is_file()]
    why = ""
    if info is None:
        why = " (no run.json: is it a run directory of zerosnet-train?)"
    elif which == "ema" and not (info.get("training") or {}).get("model_ema"):
        why = " (the run was trained without --model-ema)"
    elif info.get("status") not in (None, "finished"):
        why = f" (the run is {info.get('status')}: final weights are written when it finishes)"
    advice = f"; use --weights {' or '.join(have)}" if have else "; it holds no weights files yet"
    if have and pass_file_as:
        verb, option = pass_file_as
        files = " or ".join(f"{option} {run_dir / weights_file_name(info, k)}" for k in have)
        advice = f"; {verb} its {' or '.join(have)} weights with {files}"
    others = [] if have else sorted(p.name for p in run_dir.iterdir() if p.is_file() and _looks_like_weights(p.name))
    if others:  # e.g. timm's train.py output: model_best.pth.tar, last.pth.tar, checkpoint-N.pth.tar
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        advice = f"; it holds {shown}, which are no run's {which} weights: pass one of those files itself"
    if info is not None and info.get("status") in ("interrupted", "failed") and (run_dir / "args.yaml").is_file():
        advice += f" (`zerosnet-train -c {run_dir.absolute() / 'args.yaml'} --resume auto` continues it)"
    return f"{run_dir} has no {which} weights ({weights_file_name(info, which)}){why}{advice}"
