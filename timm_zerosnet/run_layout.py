"""The weights files of a run directory (written by ``zerosnet-train``, read by ``zerosnet-validate`` and
``zerosnet-hub``): which file holds a run's final, EMA or best weights, and which of them a given file is; and which
architecture the run trained.

Apart from train.py, which imports accelerate and the training stack: the publishing tool reads run directories
through this module alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WEIGHT_FILES", "architecture_name", "run_architecture", "weights_file_name", "weights_kind"]

WEIGHT_FILES = {"final": "model.safetensors", "ema": "model_ema.safetensors", "best": "best.safetensors"}
"""A run directory's default weights files by kind (run.json's ``weights`` may record other names)."""


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
