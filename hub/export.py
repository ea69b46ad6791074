"""Export a training run (or a checkpoint) as a Hub-ready folder, and read / verify such folders.

A folder holds ``model.safetensors`` and ``config.json`` as timm's ``save_for_hf`` writes them, ``README.md`` (the
model card), ``golden.safetensors`` (a seeded input batch and its outputs, to check a later load bit for bit) and
``release.json`` (tag, dataset, metrics, recipe and sha256 of the weights: what ``stage`` records in the manifest).
Only safetensors weights are written. A folder is built in a temporary directory next to its destination and renamed
into place, so a failure leaves nothing half-written and an existing folder is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath
from typing import Any

from timm_zerosnet.models.multistep import measure_pool_size
from timm_zerosnet.release import (
    GOLDEN_NAME,
    WEIGHTS_NAME,
    WEIGHTS_SUFFIXES,
    ReleaseError,
    check_golden,
    is_our_model,
    load_weights,
    repo_id_problem,
    respect_umask,
    sha256_file,
    tag_problem,
    write_golden,
)
from timm_zerosnet.run_layout import (
    CHECKPOINT_ENTRIES,
    STATE_WEIGHT_FILES,
    WEIGHT_FILES,
    ExportFolderError,
    architecture_name,
    architecture_options,
    file_in_the_way,
    is_export_folder,
    read_run_info,
    refuse_what_holds_no_weights,
    resolve_weights,
    run_architecture,
    state_weights_kind,
    training_state,
    weights_kind,
)

from . import HubError
from .card import dataset_info, dataset_of_tag, model_card, model_stats

__all__ = [
    "RunInfo",
    "read_run",
    "build_model",
    "export",
    "ExportResult",
    "ExportedFolder",
    "read_export",
    "verify_export",
    "VerifyResult",
    "RELEASE_NAME",
    "EXPORT_NAMES",
]

RELEASE_NAME = "release.json"
RELEASE_FORMAT = "timm_zerosnet.export/1"
# everything export writes into its folder (config.json and the weights by timm's save_for_hf)
EXPORT_NAMES = (WEIGHTS_NAME, "config.json", GOLDEN_NAME, RELEASE_NAME, "README.md")
_PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".pkl", ".pickle", ".ckpt", ".tar", ".npy", ".npz", ".joblib")
_DATA_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


# ----- reading a training run -----


@dataclass
class RunInfo:
    """What an export needs from a run directory (or a bare checkpoint); fields the run did not record are None."""

    weights_path: Path
    weights: str | None  # 'final', 'ema', 'best', or None for a file that is not one of a run's weights
    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    in_chans: int | None = None
    global_pool: str | None = None
    label_names: list[str] | None = None
    data_config: dict[str, Any] | None = None
    input_img_mode: str | None = None  # the PIL mode the run converted its images to (--input-img-mode)
    dataset: str | None = None
    split: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    status: str | None = None
    state_key: tuple[str, ...] | None = None  # the entries of a checkpoint dict that may hold the weights to export
    state: str | None = None  # the training state (<run>/checkpoints/<state>) whose weights these are


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HubError(f"{path}: not valid JSON ({e}).") from None


def _run_info(path: Path) -> dict[str, Any]:
    """The run.json of a run directory, or of the run a weights file is in ({} where there is none), read as train
    and validate read it (``run_layout.read_run_info``)."""
    try:
        return read_run_info(path) or {}
    except ValueError as e:  # damaged JSON: its message says what to do
        raise HubError(str(e)) from None


def _metrics_for(info: Mapping[str, Any], weights: str | None, history: list[dict] | None) -> dict[str, Any]:
    """The evaluation of the chosen weights: run.json's metrics.final / metrics.best (or metrics.json rows)."""
    if weights is None:
        return {}
    recorded = info.get("metrics") or {}
    row = recorded.get("best") if weights == "best" else recorded.get("final")
    if not row and history:
        row = history[-1]
        if weights == "best":  # the higher top-1 of the model and of its EMA: training saved that one as best
            scores = [(r[p + "top1"], p, r) for r in history for p in ("", "ema_") if r.get(p + "top1") is not None]
            if scores:
                _, p, best = max(scores, key=lambda t: t[0])
                row = dict(best, source="ema" if p else "model")
    if not row:
        return {}
    # best.safetensors holds the EMA's weights when the EMA scored best (run.json: metrics.best.source == 'ema')
    from_ema = weights == "ema" or (weights == "best" and row.get("source") == "ema")
    prefix, loss_key = ("ema_", "ema_val_loss") if from_ema else ("", "val_loss")
    out = dict(top1=row.get(f"{prefix}top1"), top5=row.get(f"{prefix}top5"), loss=row.get(loss_key))
    out = {k: float(v) for k, v in out.items() if v is not None}
    out.update({k: v for k, v in dict(epoch=row.get("epoch"), samples=row.get("val_samples")).items() if v is not None})
    return dict(out, weights="best (EMA)" if from_ema and weights == "best" else weights)


def _not_a_source(folder: Path) -> HubError:
    # its config.json holds the model's arguments, which a run.json-less export would drop: the scheme's
    # coefficients (lam, ...) are no tensors, so the weights load into the defaults without a word
    return HubError(
        f"{folder} is an export folder (config.json, {RELEASE_NAME}), not a training run: export again from the run "
        f"it came from, or verify / stage / push this folder as it is."
    )


def read_run(
    source: str | Path,
    weights: str | None = None,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> RunInfo:
    """Read a run directory or a checkpoint file (with the run.json next to it, if any).

    This is the one place of the hub tool that knows the layout written by ``zerosnet-train``: ``run.json`` (model,
    model_kwargs, num_classes, in_chans, global_pool, label_names, data_config, dataset {name, val_split,
    input_img_mode}, weights {final, ema, best}, metrics {final, best}, training {...}, epochs {...}) and
    ``metrics.json``. Every field is optional. The weights files are named by ``timm_zerosnet.run_layout``, which
    train and validate read too.

    Args:
        source: a run directory, a training state of one (``<run>/checkpoints/state-*``), or a weights file
            (.safetensors; .bin / .pth are read with weights_only=True).
        weights: which weights: of a run directory 'final' (the default), 'ema' or 'best'; of a training state
            the same, its own (its model's, its EMA's, its copy of the best so far); of a checkpoint file
            that holds both ``state_dict`` and ``state_dict_ema`` (timm's train checkpoints) 'final' or 'ema'
            (required there: without it such a file is refused). A file the run recorded as other weights than asked
            for is refused.
        model: the architecture; required when there is no run.json, must agree with it otherwise.
        model_kwargs: the family options the weights were trained with (e.g. ``lam``), when there is no run.json;
            must agree with the run.json's otherwise.
    """
    source = Path(source).expanduser()
    if weights is not None and weights not in WEIGHT_FILES:
        raise HubError(f"weights must be one of {sorted(WEIGHT_FILES)}, got {weights!r}.")
    kind = state_weights_kind(source) if source.is_file() else None
    if kind is not None and (source.parent.parent.parent / "run.json").is_file():
        # a weights file of a training state (<state>/model.safetensors, the path the refusal of --weights ema names)
        # is that state's weights: the same record and card as the state folder with --weights
        if weights is not None and weights != kind:
            raise HubError(
                f"{source} is the {kind} weights of the training state {source.parent.name}, not its {weights} "
                f"weights: pass the state folder {source.parent} with --weights {weights}, or drop --weights."
            )
        return read_run(source.parent, weights=kind, model=model, model_kwargs=model_kwargs)
    state_key = None
    state = training_state(source) if source.is_dir() else None
    state_of = state.parent.parent if state is not None else None
    if state_of is None or not (state_of / "run.json").is_file():
        state = None  # a state without its run's run.json: read as any other folder of weights
    if state is not None:
        # a training state (<run>/checkpoints/state-*): the run's run.json says what the model is, read as the run
        # layout reads it for a state (without its metrics and weights files: those of the run's end); its final,
        # ema and best weights are the state's own (run_layout.STATE_WEIGHT_FILES), as validate reads them. The run
        # recorded no evaluation of them (its metrics are those of its end), so the card has none
        info = _run_info(source)
        choice, run_dir = weights or "final", state_of
        try:
            weights_path, _ = resolve_weights(source, choice)
        except (FileNotFoundError, ValueError) as e:  # which weights the state lacks, and where else they are
            raise HubError(str(e)) from None
    elif source.is_dir():
        choice, run_dir = weights or "final", source
        try:  # the run layout train and validate read: which file, and why a run lacks it
            weights_path, info = resolve_weights(source, choice)
        except ExportFolderError as e:
            raise _not_a_source(e.folder) from None
        except (FileNotFoundError, ValueError) as e:
            raise HubError(str(e)) from None
        info = info or {}
    elif source.is_file():
        run_dir = source.parent
        _refuse_a_file_of_no_weights(source)
        info = _run_info(source)
        choice = weights_kind(source.name, info or None)
        weights_path = source
        if weights is not None and choice is not None and weights != choice:
            raise HubError(
                f"{source} is the run's {choice} weights, not its {weights} weights: pass the run directory "
                f"{run_dir} with --weights {weights}, or drop --weights."
            )
        if weights is not None and choice is None:
            if weights == "best":
                raise HubError(
                    f"--weights best picks a run directory's best.safetensors; {source} is not one. Pass the run "
                    f"directory, or export the file as it is (no --weights)."
                )
            state_key = CHECKPOINT_ENTRIES[weights]
    else:
        raise HubError(f"{source}: no such run directory or checkpoint file.")

    # the architecture: a run fine-tuned from a released tag (or a hub source) recorded --model as given
    recorded_model = run_architecture(info)
    model = architecture_name(model) if model else None
    if model and recorded_model and model != recorded_model:
        raise HubError(
            f"{weights_path} holds a {recorded_model!r} (see its run.json) but --model is {model!r}; "
            f"drop --model or pass --model {recorded_model}."
        )
    model = model or recorded_model
    if not info and is_export_folder(weights_path.parent):
        raise _not_a_source(weights_path.parent)
    if not model:
        raise HubError(f"{weights_path}: no run.json next to it says which model it is; pass --model NAME.")
    recorded_kwargs = info.get("model_kwargs") or {}
    if model_kwargs and info and dict(model_kwargs) != recorded_kwargs:
        raise HubError(
            f"--model-kwargs {_kwargs_text(model_kwargs)}: the run was trained with "
            f"{_kwargs_text(recorded_kwargs) or 'the defaults'} (its run.json); leave --model-kwargs out (it names the "
            f"options of weights without a run.json)."
        )
    history = None
    if state is None and (run_dir / "metrics.json").is_file() and not info.get("metrics"):
        history = _read_json(run_dir / "metrics.json")
        history = history if isinstance(history, list) else None
    dataset = info.get("dataset")
    dataset_name = dataset.get("name") if isinstance(dataset, Mapping) else dataset
    split = dataset.get("val_split") if isinstance(dataset, Mapping) else None
    img_mode = dataset.get("input_img_mode") if isinstance(dataset, Mapping) else None
    training = dict(info.get("training") or {})
    epochs = info.get("epochs")
    if isinstance(epochs, Mapping):
        training["epochs"] = epochs.get("completed")
    training = {
        k: v
        for k, v in training.items()
        if k
        in ("recipe", "opt", "lr", "weight_decay", "sched", "global_batch_size", "epochs", "seed", "mixed_precision")
    }
    subset = dataset.get("train_num_samples") if isinstance(dataset, Mapping) else None
    if isinstance(subset, int) and not isinstance(subset, bool) and subset > 0:
        # --train-num-samples: trained on part of the split only (run.json records no count when all of it was used)
        training["train_samples"] = subset
    recipe = training.get("recipe")
    if isinstance(recipe, str) and (recipe.endswith((".yaml", ".yml")) or "/" in recipe or "\\" in recipe):
        # a recipe name, never a local path (-c takes any config file: /home/me/cfg.json kept its path before)
        training["recipe"] = PureWindowsPath(recipe).stem  # splits at "/" and "\\" alike
    if base := _finetuned_from(info):
        training["finetuned_from"] = base
    metrics = _metrics_for(info, choice, history) if state is None else {}  # the run's metrics are of its end
    if metrics and split:
        metrics["split"] = split
    val_subset = dataset.get("val_num_samples") if isinstance(dataset, Mapping) else None
    if metrics and isinstance(val_subset, int) and not isinstance(val_subset, bool) and val_subset > 0:
        # --val-num-samples: evaluated on an evenly spaced part of the split (no count when all of it was used)
        metrics["val_num_samples"] = val_subset
    data_config = info.get("data_config")
    return RunInfo(
        weights_path=weights_path,
        weights=choice,
        state_key=state_key,
        model=model,
        # how the run loaded its starting weights (pretrained_strict) is no option of the published model
        model_kwargs=architecture_options(recorded_kwargs if info else model_kwargs),
        num_classes=info.get("num_classes"),
        in_chans=info.get("in_chans"),
        global_pool=info.get("global_pool"),
        label_names=list(info["label_names"]) if info.get("label_names") else None,
        data_config={k: v for k, v in data_config.items() if v is not None} if data_config else None,
        input_img_mode=img_mode or None,
        dataset=dataset_name or None,
        split=split,
        metrics=metrics,
        training=training,
        run_name=run_dir.name if info else None,
        status=info.get("status"),
        state=state.name if state is not None else None,
    )


# the classes of the datasets whose default tags (card.dataset_info) name them
def _check_tag_names_the_data(tag: str, ds: Any, info: RunInfo) -> None:
    """Refuse a tag that names a known dataset (a default tag: ``c10``, ``c100``, ``in1k``, ``digits``, alone or with a
    suffix, ``c10_s1``, or after timm's ``_ft_``: ``in1k_ft_c10``) other than the one the weights were trained on,
    or whose class count the weights do not have: a published tag never changes weights, and ``zerosnet20_cifar.c10``
    would be a CIFAR-100 model."""
    # timm names a fine-tune '<pretraining>_ft_<data>' (in22k_ft_in1k): the data the weights end on comes after _ft_
    base = tag.rsplit("_ft_", 1)[-1].split("_", 1)[0]
    claimed = dataset_of_tag(base)
    if claimed is None:
        return
    if ds is not None and ds.tag and ds.key != claimed.key:
        raise HubError(
            f"--tag {tag} names {claimed.name}, but the weights were trained on {ds.name} ({info.dataset}): pass "
            f"--tag {ds.tag} (or a suffixed one, e.g. {ds.tag}_s1), or leave --tag out for {ds.tag}."
        )
    classes = claimed.num_classes
    if (ds is None or not ds.tag) and info.num_classes and info.num_classes != classes:
        raise HubError(
            f"--tag {tag} names {claimed.name} ({classes} classes), but the weights have {info.num_classes} classes"
            f"{f' (dataset {info.dataset})' if info.dataset else ''}: pass a --tag that names their data, e.g. "
            f"--tag {info.num_classes}cls."
        )


def _refuse_a_file_of_no_weights(source: Path) -> None:
    """A run's records (run.json, args.yaml, ...), checkpoints/latest, a training state's optimizer state or any other
    file load_weights cannot read is refused before any warning about it: it was read as weights of no run, and
    failed only at loading as an 'unsupported weights format' (or, for checkpoints/latest, asked for --model). The
    run layout's refusals are those of every tool that reads weights."""
    try:
        refuse_what_holds_no_weights(source, str(source), "its final, ema or best weights with --weights")
    except ValueError as e:
        raise HubError(f"{e}.") from None
    if source.suffix not in WEIGHTS_SUFFIXES:
        raise HubError(
            f"{source} is not a weights file ({', '.join(WEIGHTS_SUFFIXES)}): pass a run folder, a training state "
            f"folder, or a weights file."
        )


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in kwargs.items())


def _finetuned_from(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The weights a fine-tuning run started from, for the card: a released tag (with its Hub repo) or a local run
    or file (its name, never its path), and whether the backbone was frozen; None for a run trained from scratch."""
    training, cfg = info.get("training") or {}, info.get("pretrained_cfg") or {}
    if training.get("pretrained_path"):
        path = Path(str(training["pretrained_path"]))
        # a weights file inside a run directory is named by its run
        base: dict[str, Any] = {"local": path.parent.name if path.name in set(WEIGHT_FILES.values()) else path.name}
    elif training.get("pretrained") and cfg.get("architecture"):
        tag = f".{cfg['tag']}" if cfg.get("tag") else ""
        base = {"name": f"{cfg['architecture']}{tag}", "hf_hub_id": cfg.get("hf_hub_id")}
    else:
        return None
    return {**base, "frozen_backbone": bool(training.get("freeze_backbone"))}


# ----- building the model -----


def _unwrap(state_dict: Any, path: Path, keys: tuple[str, ...] | None = None) -> Mapping[str, Any]:
    """The state dict inside a loaded file: the first of ``keys`` it holds when asked for, else the one of a
    checkpoint's usual entries it holds, else the file itself. A checkpoint with both the model's and the EMA's
    weights is refused without ``keys``: timm's loader would take the EMA, a plain reading the model's, and a
    release must say which it is."""
    if not isinstance(state_dict, Mapping):
        raise HubError(f"{path}: holds a {type(state_dict).__name__}, not a state dict.")
    if keys is not None:
        found = next((k for k in keys if isinstance(state_dict.get(k), Mapping)), None)
        if found is None:
            entries = sorted(k for k, v in state_dict.items() if isinstance(v, Mapping))
            raise HubError(
                f"{path}: no {' or '.join(repr(k) for k in keys)} entry to export (entries holding dicts: "
                f"{', '.join(entries) or 'none'}); drop --weights to export the file as it is."
            )
        return state_dict[found]
    entries = [
        k
        for k in ("state_dict", "model", "state_dict_ema", "model_ema", "net")
        if isinstance(state_dict.get(k), Mapping)
    ]
    if len(entries) > 1:
        raise HubError(
            f"{path}: holds several sets of weights ({', '.join(entries)}); pass --weights final (the model's) or "
            f"--weights ema (the EMA's, what timm's loader takes from this file)."
        )
    return state_dict[entries[0]] if entries else state_dict


def _shape_of(state_dict: Mapping[str, Any], names: tuple[str, ...]) -> tuple[int, ...] | None:
    """The shape of the top-level tensor called one of ``names`` (the stem conv, the classifier), DataParallel
    prefixes aside. Not the first key that merely ends so: safetensors sorts its keys, and the authors' CIFAR layout
    puts 'blocks.0.conv1.weight' before the stem's 'conv1.weight'."""
    from timm_zerosnet.models.multistep import unwrap_state_dict

    for k, v in unwrap_state_dict(dict(state_dict)).items():
        if k in names and hasattr(v, "shape"):
            return tuple(v.shape)
    return None


def _checkpoint_filter(model: Any, architecture: str) -> Callable[[dict, Any], dict]:
    """The family's own checkpoint filter (it also reads the authors' checkpoints), else no filtering; called with
    ``exact=True``: the export loads strictly into the model as built."""
    from timm_zerosnet.models import family_checkpoint_filter

    return family_checkpoint_filter(model, architecture) or (lambda state_dict, model, **_: dict(state_dict))


def load_into(model: Any, state_dict: Mapping[str, Any], path: Path, architecture: str) -> None:
    """Load a state dict strictly, naming the file and the first key that does not fit."""
    if not isinstance(state_dict, Mapping):
        raise HubError(f"{path}: holds a {type(state_dict).__name__}, not a state dict.")
    what = f"{architecture}(num_classes={model.num_classes}, in_chans={model.in_chans})"
    try:
        state_dict = _checkpoint_filter(model, architecture)(dict(state_dict), model, exact=True)
    except ValueError as e:
        raise HubError(f"{path}: the state dict does not fit {what}: {e}") from None
    ours = model.state_dict()
    wrong = [k for k, v in ours.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if wrong:
        key = wrong[0]
        raise HubError(
            f"{path}: the state dict does not fit {what}: {key} has shape {tuple(state_dict[key].shape)} "
            f"in the file and {tuple(ours[key].shape)} in the model ({len(wrong)} mismatched in all)."
        )
    model.load_state_dict(state_dict, strict=True)


def _load_source_weights(path: Path) -> Any:
    """The weights file of a source as ``load_weights`` reads it; a training state's EMA (a torch.save of timm's
    ModelEmaV3 state dict, ``run_layout.STATE_WEIGHT_FILES``) as validate reads it: ``torch.load(weights_only=True)``,
    ``module.`` prefixes stripped."""
    state = training_state(path)
    if state is not None and path.name == STATE_WEIGHT_FILES["ema"]:
        from timm_zerosnet.validate import read_state_dict  # validate imports train: only for this file

        return read_state_dict(path, instead=f"export another state of {state.parent.parent}")
    return load_weights(path)


def build_model(info: RunInfo) -> Any:
    """The run's model with its weights loaded (strictly), in eval mode."""
    import timm

    if not is_our_model(info.model):
        raise HubError(f"{info.model!r} is not a timm_zerosnet model; this tool publishes only timm_zerosnet weights.")
    try:
        state_dict = _load_source_weights(info.weights_path)
    except (ReleaseError, ValueError) as e:
        raise HubError(str(e)) from None
    flat = _unwrap(state_dict, info.weights_path, info.state_key)
    stem = _shape_of(flat, ("conv1.weight",))
    head = _shape_of(flat, ("fc.weight", "linear.weight"))
    # a stem and no classifier: a headless backbone (timm's num_classes=0), published as such
    held = dict(num_classes=head[0] if head else (0 if stem else None), in_chans=stem[1] if stem else None)
    _refuse_weights_args(info, held)
    num_classes = info.num_classes if info.num_classes is not None else held["num_classes"]
    in_chans = info.in_chans if info.in_chans is not None else held["in_chans"]
    kwargs = dict(info.model_kwargs)
    kwargs.update(
        {
            k: v
            for k, v in dict(num_classes=num_classes, in_chans=in_chans, global_pool=info.global_pool).items()
            if v is not None
        }
    )
    try:
        # the family's weightless cfg: a released tag's cfg (the default one, if any) describes other weights
        model = timm.create_model(f"{info.model}.untrained", **kwargs)
    except (TypeError, ValueError) as e:  # an option the family does not take, or a value it refuses
        reason = str(e).rstrip(".")
        if info.run_name is None and info.model_kwargs:
            raise HubError(
                f"--model-kwargs {_kwargs_text(info.model_kwargs)}: {info.model} cannot be built with them "
                f"({reason}); give the family options the weights were trained with (e.g. lam=-1.5), or leave "
                f"--model-kwargs out for the defaults."
            ) from None
        if info.run_name is not None:
            raise HubError(
                f"{info.weights_path}: {info.model} cannot be built with {kwargs}, what its run.json records "
                f"({reason}); correct the run.json, or export the weights file alone with --model and --model-kwargs."
            ) from None
        raise HubError(f"{info.weights_path}: {info.model} cannot be built with {kwargs} ({reason}).") from None
    load_into(model, flat, info.weights_path, info.model)
    measure_pool_size(model)  # learned strides: config.json's pool_size is that of the weights, not of the init
    return model.eval()


def _refuse_weights_args(info: RunInfo, held: Mapping[str, int | None]) -> None:
    """num_classes and in_chans are no family options: export reads them from the run.json or the weights (``held``),
    and one given as a model kwarg could only repeat the weights or contradict them; it is refused, naming what the
    weights hold and how to publish another value (fine-tune, then export that run). global_pool stays a model kwarg
    of a bare file: the weights cannot tell it (an avg and a max pool feed the same classifier)."""
    source = "--model-kwargs" if info.run_name is None else f"{info.weights_path}: its run.json's model_kwargs"
    for key, option in (("num_classes", "--num-classes"), ("in_chans", "--in-chans")):
        if key not in info.model_kwargs:
            continue
        value, n = info.model_kwargs[key], held[key]
        if key == "num_classes":
            what = "classes"
            found = "no classifier found" if n is None else f"a classifier of {n} classes" if n else "no classifier"
        else:
            what = "input channels"
            found = "no first conv found" if n is None else f"a first conv of {n} input channels"
        other = ""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and value != n:
            model = f"a {value}-class model" if key == "num_classes" else f"a model of {value}-channel images"
            other = (
                f"; to publish {model}, fine-tune these weights (zerosnet-train --pretrained-path "
                f"{info.weights_path} {option} {value}) and export that run"
            )
        raise HubError(
            f"{source} {key}={value}: the number of {what} is not a family option: export reads it from the "
            f"run.json or the weights ({info.weights_path.name}: {found}). Leave {key} out{other}."
        )


# ----- export -----


@dataclass
class ExportResult:
    path: Path
    model: str
    tag: str
    files: dict[str, dict[str, Any]]
    golden_exact: bool


def _data_config(model: Any, recorded: Mapping[str, Any] | None, log: Callable[[str], None]) -> dict[str, Any]:
    """The run's data config over the architecture's defaults, with one mean and std per input channel."""
    cfg = {k: model.pretrained_cfg.get(k) for k in _DATA_KEYS if model.pretrained_cfg.get(k) is not None}
    given = {k: v for k, v in (recorded or {}).items() if k in _DATA_KEYS and v is not None}
    missing = [k for k in ("input_size", "mean", "std") if k not in given]
    if missing:
        log(f"warning: the run recorded no {', '.join(missing)}: config.json gets the architecture's defaults")
    cfg.update(given)
    in_chans = model.in_chans
    cfg["input_size"] = (in_chans, *tuple(cfg["input_size"])[1:])
    for key in ("mean", "std"):
        values = tuple(float(v) for v in cfg[key])
        if len(values) == 1:
            values = values * in_chans
        elif len(values) != in_chans and in_chans == 1 and key not in given:
            values = (sum(values) / len(values),)
            log(f"warning: {key} of the {len(cfg[key])}-channel defaults averaged for the 1-channel model: {values}")
        if len(values) != in_chans:
            raise HubError(
                f"{key} {values} has {len(values)} values for a {in_chans}-channel model; record the run's "
                f"data_config (one {key} per channel) in its run.json."
            )
        cfg[key] = values
    return cfg


def _image_mode(info: RunInfo, in_chans: int) -> str | None:
    """The PIL mode the run converted its images to (run.json's dataset.input_img_mode: YCbCr, RGBA, ...), checked
    against the model's input channels; None where the run recorded none (a bare file: the card assumes the
    channel count's usual mode)."""
    from PIL import Image

    mode = info.input_img_mode
    if mode is None:
        return None
    try:
        bands = Image.getmodebands(mode)
    except (KeyError, ValueError):
        bands = None
    if bands != in_chans:
        what = "is no PIL image mode" if bands is None else f"gives {bands}-channel images"
        raise HubError(
            f"{info.weights_path}: its run.json records dataset.input_img_mode {mode!r}, which {what}, for a model of "
            f"{in_chans} input channels; the card could not say how to feed it. Correct the run.json to the mode the "
            f"run converted its images to."
        )
    return mode


def _files(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            out[rel] = dict(size=path.stat().st_size, sha256=sha256_file(path))
    return out


def _check_not_the_source(out: Path, source: Path) -> None:
    """An existing ``out`` is never the source or a folder that holds it, with or without ``--overwrite``."""
    dst, src = out.resolve(), source.expanduser().resolve()
    if dst == src or dst in src.parents:
        raise HubError(
            f"--out {out} {'is' if dst == src else 'holds'} the source {source}: replacing it would delete the "
            f"source. Choose another --out."
        )


def _json_object(path: Path) -> Mapping[str, Any]:
    """The JSON object in ``path``; {} where there is none (missing, unreadable, not JSON, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, Mapping) else {}


def _check_replaceable(out: Path) -> None:
    """``--overwrite`` replaces an earlier export (or an empty folder) only: never a folder that export did not
    write (the source and a folder holding it are refused before, by ``_check_not_the_source``)."""
    dst = out.resolve()
    if not dst.is_dir():
        raise HubError(f"{out} exists and is not a folder; not replacing it: remove it or choose another --out.")
    ours = _json_object(dst / RELEASE_NAME).get("format") == RELEASE_FORMAT
    if not ours and any(dst.iterdir()):
        raise HubError(
            f"{out} is not a folder written by export (no {RELEASE_NAME} of format {RELEASE_FORMAT}); --overwrite "
            f"replaces only an earlier export. Remove it yourself or choose another --out."
        )
    foreign = sorted(p.name for p in dst.iterdir() if p.name not in EXPORT_NAMES)
    if foreign:
        raise HubError(
            f"{out} holds files that export did not write ({', '.join(foreign)}), which --overwrite would delete: "
            f"move them away, or choose another --out."
        )


def _check_not_recorded(out: Path, manifest: str | Path | None) -> None:
    """``--overwrite`` never replaces weights that a release manifest records as staged or published (the package's
    manifest, and ``manifest`` if given): another export may not reproduce them bit for bit, so the folder can hold
    the only copy of what the manifest points at. An entry of other weights (a stale one) does not protect it."""
    from . import manifest as manifests  # that module imports this one

    dst = out.resolve()
    weights = dst / WEIGHTS_NAME
    if not weights.is_file():
        return
    release, config = _json_object(dst / RELEASE_NAME), _json_object(dst / "config.json")
    cfg = config.get("pretrained_cfg")
    names = {
        (release.get("model"), release.get("tag")),
        (config.get("architecture"), cfg.get("tag") if isinstance(cfg, Mapping) else None),
    }
    paths = [manifests.manifest_path()]
    if manifest is not None and Path(manifest).expanduser().resolve() != paths[0].resolve():
        paths.append(Path(manifest).expanduser())
    sha = None
    for path in paths:
        for entry in manifests.read_manifest(path)["releases"]:
            if (entry["model"], entry["tag"]) not in names or entry["state"] not in ("staged", "published"):
                continue
            sha = sha or sha256_file(weights)  # only for a folder some entry may record
            if entry["sha256"] == sha:
                raise HubError(
                    f"--out {out} holds the weights of {entry['model']}.{entry['tag']} that {path} records as "
                    f"{entry['state']} (sha256 {sha[:12]}...): --overwrite would delete them, and another export may "
                    f"not reproduce them bit for bit. Choose another --out (or, if you really mean to drop those "
                    f"weights, remove {out} yourself first)."
                )


def _left_by_killed_exports(out: Path) -> list[str]:
    """What exports of ``out`` that were killed (SIGKILL, a power cut: no handler ran) left beside it: a hidden
    half-written ``.NAME.tmp-*`` folder, or ``.NAME.old-*``, the earlier export an ``--overwrite`` had moved aside,
    which is then the only copy of it where ``out`` is gone. An export still running has a ``.tmp-*`` too."""
    if not out.parent.is_dir():
        return []
    notes = []
    for left in sorted(out.parent.glob(f".{out.name}.old-*")):
        if out.exists():
            notes.append(f"{left} is the export that was in {out} before an --overwrite that was killed; remove it")
        else:
            notes.append(
                f"{left} is the export that was in {out} before an --overwrite that was killed, and its only copy: "
                f"move it back (mv {left} {out}) or remove it"
            )
    for left in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        notes.append(f"{left} is a half-written export of {out}, left by one that was killed (or is still running)")
    return notes


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move a finished folder into place; an existing one is replaced only with ``overwrite``."""
    if not out.exists():
        os.rename(tmp, out)  # fails rather than merging if ``out`` appeared in the meantime
        return
    if not overwrite:
        raise HubError(f"{out} exists; pass --overwrite to replace it.")
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(
    source: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    tag: str | None = None,
    repo_id: str | None = None,
    dataset: str | None = None,
    weights: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    license: str = "apache-2.0",
    overwrite: bool = False,
    manifest: str | Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> ExportResult:
    """Write a Hub-ready folder for a run directory or checkpoint (see the module docstring).

    Args:
        source: run directory or weights file.
        out: destination folder (must not exist unless ``overwrite``).
        model: architecture, when the source has no run.json.
        tag: pretrained tag (default from the dataset: c10, c100, in1k, digits).
        repo_id: the Hub repo 'org/name' the folder is meant for (the card's snippets load it).
        dataset: dataset name or Hub dataset id, when the run did not record it (or to name an ImageFolder).
        weights: 'final' (default), 'ema' or 'best' weights of a run directory; 'final' / 'ema' of a checkpoint
            file holding state_dict and state_dict_ema (see ``read_run``).
        model_kwargs: the family options (e.g. ``lam``) of weights without a run.json.
        license: the weights' license (Hub metadata and pretrained cfg).
        overwrite: replace an existing destination (atomically), if it is an earlier export (or empty) and does not
            hold the source, nor weights that the package's release manifest (or ``manifest``) records as staged
            or published.
        manifest: a release manifest besides the package's whose staged and published weights ``overwrite`` never
            replaces (the one ``export --stage --manifest`` writes).
        log: receives progress lines.
    """
    import timm
    import torch
    from timm.models import save_for_hf

    out = Path(out).expanduser().absolute()
    if out.is_symlink():  # replacing it would put a new folder in the link's place and leave its target as it was
        target = out.resolve()
        raise HubError(
            f"--out {out} is a symbolic link to {target}; export writes a folder, not through a link: pass the target "
            f"folder itself (--out {target})."
        )
    blocker = file_in_the_way(out.parent)
    if blocker is not None:
        raise HubError(
            f"--out {out}: {blocker} is a file, not a folder, so nothing can be written under it; move it away or "
            f"choose another --out."
        )
    if out.exists():
        _check_not_the_source(out, Path(source))  # first: --overwrite, which the next error advises, would refuse it
        # what --overwrite would refuse first: advise it only where it works
        _check_replaceable(out)
        _check_not_recorded(out, manifest)
        if not overwrite:
            raise HubError(f"{out} exists; pass --overwrite to replace it.")
    if repo_id is not None and repo_id_problem(repo_id):
        raise HubError(f"--repo-id: {repo_id_problem(repo_id)}.")
    for note in _left_by_killed_exports(out):
        log(f"note: {note}")
    info = read_run(source, weights=weights, model=model, model_kwargs=model_kwargs)
    # first: a --model that is not ours or does not fit the weights is the decisive error, before warnings and tags
    net = build_model(info)
    if info.run_name is None and not info.model_kwargs:
        log(
            f"warning: no run.json next to {info.weights_path.name}: {info.model} is built with its default options; "
            f"pass --model-kwargs (e.g. lam=-1.5) if the weights were trained with others"
        )
    if info.status not in (None, "finished"):
        log(f"warning: the run is {info.status!r}, not finished")
    if info.weights is None:
        log(f"warning: {info.weights_path.name} is not one of the run's recorded weights: the card has no metrics")
    recorded = dataset_info(info.dataset) if info.dataset != "folder" else None
    given = dataset_info(dataset)
    if given is not None and recorded is not None and given.key != recorded.key:
        # torch/mnist and the Hub's copy of it; a dataset this tool knows (one with a default tag) is another one
        if recorded.hub_id is None and given.hub_id is not None and given.tag is None:
            log(f"note: the card links the data the run recorded as {info.dataset} to the Hub dataset {given.hub_id}")
        else:
            raise HubError(
                f"--dataset {dataset}: the run was trained and evaluated on {info.dataset} (its run.json), and the "
                f"card's metrics are on that data; leave --dataset out (it names the data of a run that does not "
                f"record it, or the Hub dataset of data that the run names by no Hub id)."
            )
    dataset = dataset or info.dataset
    ds = dataset_info(dataset)
    tag = tag or (ds.tag if ds else None) or (recorded.tag if recorded else None)
    if not tag and dataset in (None, "folder"):  # what an ImageFolder run or a bare checkpoint records
        raise HubError(
            "no tag: the run names no dataset (an ImageFolder run or a bare checkpoint); pass --tag (e.g. --tag c10), "
            "and --dataset NAME to name the data on the card."
        )
    if not tag:
        raise HubError(f"no tag: the dataset {dataset!r} has no default tag; pass --tag (e.g. --tag c10).")
    if tag_problem(tag):
        raise HubError(f"--{tag_problem(tag)}.")
    _check_tag_names_the_data(tag, ds, info)
    if info.state:
        log(
            f"note: {info.weights_path.parent} is a training state: the run recorded no evaluation of its "
            f"{info.weights} weights, so the card has none (`zerosnet-validate --checkpoint {info.weights_path.parent} "
            f"--weights {info.weights}` evaluates them)"
        )
    data_config = _data_config(net, info.data_config, log)
    img_mode = _image_mode(info, net.in_chans)
    if info.label_names and len(info.label_names) != net.num_classes:
        raise HubError(
            f"{info.weights_path}: run.json lists {len(info.label_names)} label names for {net.num_classes} classes."
        )

    made = [d for d in (out.parent, *out.parent.parents) if not d.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        model_config: dict[str, Any] = dict(pretrained_cfg=dict(tag=tag, license=license))
        if info.label_names:
            model_config["label_names"] = list(info.label_names)
        if img_mode:  # top level: timm's pretrained cfg has no such field (and its loader refuses unknown ones)
            model_config["input_img_mode"] = img_mode
        save_for_hf(
            net,
            tmp,
            model_config=model_config,
            model_args=info.model_kwargs or None,
            safe_serialization=True,
            data_config=data_config,
        )
        respect_umask(tmp / WEIGHTS_NAME)
        write_golden(net, tmp / GOLDEN_NAME, data_config["input_size"])
        config = _read_json(tmp / "config.json")
        release = dict(
            format=RELEASE_FORMAT,
            model=info.model,
            tag=tag,
            repo_id=repo_id,
            dataset=ds.hub_id if ds and ds.hub_id else dataset,
            metrics=info.metrics,
            training=info.training,
            run=info.run_name,
            weights=info.weights,
            **({"state": info.state} if info.state else {}),
            sha256=sha256_file(tmp / WEIGHTS_NAME),
            config_sha256=sha256_file(tmp / "config.json"),
            golden=dict(
                sha256=sha256_file(tmp / GOLDEN_NAME),
                seed=0,
                batch=4,
                threads=1,
                torch=torch.__version__,
                timm=timm.__version__,
            ),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        (tmp / RELEASE_NAME).write_text(json.dumps(release, indent=2) + "\n", encoding="utf-8")
        stats = model_stats(info.model, config.get("model_args") or {}, tuple(data_config["input_size"]), net)
        (tmp / "README.md").write_text(model_card(config, release, stats, repo_id=repo_id), encoding="utf-8")
        golden = check_golden(net, tmp / GOLDEN_NAME)
        files = _files(tmp)
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in made:  # the folders made for --out go too, while empty
            try:
                d.rmdir()
            except OSError:
                break
        raise
    log(f"exported {info.model}.{tag} from {info.weights_path} to {out}")
    return ExportResult(path=out, model=info.model, tag=tag, files=files, golden_exact=golden.exact)


# ----- reading and verifying an export -----


@dataclass
class ExportedFolder:
    path: Path
    config: dict[str, Any]
    release: dict[str, Any]
    architecture: str
    tag: str | None
    files: dict[str, dict[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}"

    @property
    def sha256(self) -> str:
        return self.files[WEIGHTS_NAME]["sha256"]


def read_export(folder: str | Path, allow_links: bool = False) -> ExportedFolder:
    """Check an export folder without building the model: files, formats, architecture, tag, hashes.

    ``allow_links`` reads symbolic links as the files they point to (a snapshot of the Hugging Face cache); a folder
    to push never has them."""
    import safetensors

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HubError(f"{folder}: no such export folder.")
    config_path, weights_path = folder / "config.json", folder / WEIGHTS_NAME
    if not config_path.is_file():
        raise HubError(f"{folder}: no config.json; is this a folder written by `zerosnet-hub export`?")
    config = _read_json(config_path)
    architecture = config.get("architecture") if isinstance(config, Mapping) else None
    if not architecture:
        raise HubError(f"{config_path}: no 'architecture' field.")
    if not is_our_model(architecture):
        raise HubError(
            f"{config_path}: architecture {architecture!r} is not a timm_zerosnet model; this tool "
            f"publishes only timm_zerosnet weights."
        )
    entries = sorted(folder.rglob("*"))  # everything a push would upload (or install-local copy), subfolders too
    links = [p.relative_to(folder).as_posix() for p in entries if p.is_symlink()]
    if links and not allow_links:
        raise HubError(
            f"{folder}: holds symbolic links ({', '.join(links)}); pushing or installing the folder would take what "
            f"they point to: replace them by the files themselves or remove them."
        )
    pickles = [p.relative_to(folder).as_posix() for p in entries if p.suffix.lower() in _PICKLE_SUFFIXES]
    if pickles:
        raise HubError(
            f"{folder}: holds pickle or numpy files ({', '.join(pickles)}); only .safetensors weights are "
            f"published: remove them."
        )
    weights = [
        rel
        for rel in (p.relative_to(folder).as_posix() for p in entries if p.suffix.lower() == ".safetensors")
        if rel not in (WEIGHTS_NAME, GOLDEN_NAME)
    ]
    if weights:
        raise HubError(
            f"{folder}: holds other weights than {WEIGHTS_NAME} ({', '.join(weights)}); its config.json and card "
            f"describe {WEIGHTS_NAME} only: move them out of the folder (another set of weights is another export)."
        )
    if not weights_path.is_file():
        raise HubError(f"{folder}: no {WEIGHTS_NAME}.")
    for name in (WEIGHTS_NAME, GOLDEN_NAME):
        if (folder / name).is_file():
            try:
                with safetensors.safe_open(str(folder / name), framework="pt") as f:
                    f.keys()
            except Exception as e:
                raise HubError(
                    f"{folder / name}: not a readable safetensors file ({e}); it is corrupt or truncated: export again."
                ) from None
    release = _read_json(folder / RELEASE_NAME) if (folder / RELEASE_NAME).is_file() else {}
    if not isinstance(release, Mapping):
        raise HubError(
            f"{folder / RELEASE_NAME}: valid JSON but not an object, so not the {RELEASE_NAME} of an export; export "
            f"the folder again."
        )
    tag = (config.get("pretrained_cfg") or {}).get("tag")
    if release and not (folder / "README.md").is_file():  # a push would publish the weights without their card
        raise HubError(
            f"{folder}: no README.md, the model card export wrote beside {RELEASE_NAME}; restore it, or export again."
        )
    if release:
        if release.get("model") != architecture or release.get("tag") != tag:
            raise HubError(
                f"{folder}: release.json is for {release.get('model')}.{release.get('tag')} but "
                f"config.json for {architecture}.{tag}; export again."
            )
    files = _files(folder)
    for path, key in ((weights_path, "sha256"), (config_path, "config_sha256")):
        if release.get(key) and release[key] != files[path.name]["sha256"]:
            raise HubError(
                f"{path}: sha256 {files[path.name]['sha256']} differs from the one recorded at export "
                f"({release[key]}); the file changed after export: export again."
            )
    golden = release.get("golden")
    recorded_golden = golden.get("sha256") if isinstance(golden, Mapping) else None
    if recorded_golden and GOLDEN_NAME in files and recorded_golden != files[GOLDEN_NAME]["sha256"]:
        raise HubError(
            f"{folder / GOLDEN_NAME}: sha256 {files[GOLDEN_NAME]['sha256']} differs from the one recorded at export "
            f"({recorded_golden}); the golden file does not belong to these weights or was changed: export again."
        )
    model_args = config.get("model_args")
    if model_args is not None and not isinstance(model_args, Mapping):
        raise HubError(
            f"{config_path}: model_args is {json.dumps(model_args)}, not an object of model arguments (name: value); "
            f"correct it, or export again."
        )
    return ExportedFolder(folder, config, release, architecture, tag, files)


@dataclass
class VerifyResult:
    folder: ExportedFolder
    golden_exact: bool
    golden_max_abs_diff: float
    timm_local_dir_exact: bool


def verify_export(folder: str | Path, allow_links: bool = False) -> VerifyResult:
    """Round trip: rebuild the model from config.json, load the weights strictly, reproduce the golden outputs bit for
    bit, and do the same through timm's own ``local-dir:`` loader. Raises HubError on the first failure.
    ``allow_links``: as ``read_export``'s (``zerosnet-hub verify`` of a cache snapshot)."""
    import timm

    ex = read_export(folder, allow_links)
    if not (ex.path / GOLDEN_NAME).is_file():
        raise HubError(f"{ex.path}: no {GOLDEN_NAME}: export again.")
    try:
        state_dict = load_weights(ex.path / WEIGHTS_NAME)
    except ReleaseError as e:
        raise HubError(str(e)) from None
    model_args = dict(ex.config.get("model_args") or {})
    model_args.setdefault("num_classes", ex.config.get("num_classes"))
    try:
        model = timm.create_model(ex.architecture, **{k: v for k, v in model_args.items() if v is not None})
    except (TypeError, ValueError) as e:  # an argument nothing takes, or a value of the wrong type
        raise HubError(
            f"{ex.path / 'config.json'}: model_args {model_args} do not build {ex.architecture} ({e})."
        ) from None
    load_into(model, state_dict, ex.path / WEIGHTS_NAME, ex.architecture)
    golden = check_golden(model, ex.path / GOLDEN_NAME)
    if not golden.exact:
        raise HubError(
            f"{ex.path}: the weights do not reproduce {GOLDEN_NAME} (max |diff| "
            f"{golden.max_abs_diff:.3g}); export again on this machine."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            via_timm = timm.create_model(f"local-dir:{ex.path.absolute()}", pretrained=True)
        except (TypeError, ValueError) as e:  # config.json's top-level fields, which only timm's loader reads
            raise HubError(f"{ex.path / 'config.json'}: timm's local-dir: loader cannot build from it ({e}).") from None
    timm_golden = check_golden(via_timm, ex.path / GOLDEN_NAME)
    if not timm_golden.exact:
        raise HubError(
            f"{ex.path}: timm's local-dir: loader does not reproduce {GOLDEN_NAME} (max |diff| "
            f"{timm_golden.max_abs_diff:.3g}); check config.json."
        )
    return VerifyResult(ex, golden.exact, golden.max_abs_diff, timm_golden.exact)
