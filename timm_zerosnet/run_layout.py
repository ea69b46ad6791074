"""A run directory as ``zerosnet-train`` writes it, for the tools that read one (``zerosnet-validate``,
``zerosnet-analyze``, ``zerosnet-hub``, ``--pretrained-path``): its run.json, which file holds a run's final, EMA or
best weights (and which of them a given file is), and which architecture the run trained.

Apart from train.py, which imports accelerate and the training stack: the publishing and analysis tools read run
directories through this module alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_RECORDS",
    "WEIGHT_FILES",
    "architecture_name",
    "file_in_the_way",
    "read_run_info",
    "resolve_weights",
    "run_architecture",
    "run_files",
    "weights_file_name",
    "weights_kind",
]

WEIGHT_FILES = {"final": "model.safetensors", "ema": "model_ema.safetensors", "best": "best.safetensors"}
"""A run directory's default weights files by kind (run.json's ``weights`` may record other names)."""

RUN_RECORDS = ("run.json", "args.yaml", "metrics.csv", "metrics.json", "curves.png")
"""The files beside the weights in which zerosnet-train records a run (its training states are in checkpoints/)."""


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


def weights_file_name(info: dict[str, Any] | None, which: str) -> str:
    """The file of a run's ``which`` weights ('final', 'ema' or 'best'): the name run.json records, else the
    default."""
    return ((info or {}).get("weights") or {}).get(which) or WEIGHT_FILES[which]


def weights_kind(file_name: str, info: dict[str, Any] | None) -> str | None:
    """Which of a run's weights the file ``file_name`` of its directory is ('final', 'ema', 'best'; the names
    run.json records win over the defaults); None without a run.json (``info`` None) or for another file."""
    if info is None:
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


def read_run_info(path: Path) -> dict | None:
    """run.json of a run directory, or of the run a weights file belongs to."""
    candidate = path / "run.json" if path.is_dir() else path.parent / "run.json"
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
        return info
    return None


def resolve_weights(path: str | Path, which: str = "final") -> tuple[Path, dict | None]:
    """A weights file and its run.json (if any) from a file or a run directory ('final', 'ema' or 'best')."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such weights file or run directory")
    info = read_run_info(path)
    if path.is_dir():
        if which not in WEIGHT_FILES:
            raise ValueError(f"weights must be one of {sorted(WEIGHT_FILES)}, got {which!r}")
        run_dir, path = path, path / weights_file_name(info, which)
        if not path.is_file():
            raise FileNotFoundError(_missing_weights(run_dir, which, info))
    if not path.is_file():
        raise FileNotFoundError(f"No weights at {path}")
    return path, info


def _missing_weights(run_dir: Path, which: str, info: dict | None) -> str:
    """Why a run directory has no ``which`` weights, and which ones it has."""
    have = [k for k in WEIGHT_FILES if (run_dir / weights_file_name(info, k)).is_file()]
    why = ""
    if info is None:
        why = " (no run.json: is it a run directory of zerosnet-train?)"
    elif which == "ema" and not (info.get("training") or {}).get("model_ema"):
        why = " (the run was trained without --model-ema)"
    elif info.get("status") not in (None, "finished"):
        why = f" (the run is {info.get('status')}: final weights are written when it finishes)"
    advice = f"; use --weights {' or '.join(have)}" if have else "; it holds no weights files yet"
    return f"{run_dir} has no {which} weights ({weights_file_name(info, which)}){why}{advice}"
