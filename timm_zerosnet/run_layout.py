"""The weights files of a run directory (written by ``zerosnet-train``, read by ``zerosnet-validate`` and
``zerosnet-hub``): which file holds a run's final, EMA or best weights, and which of them a given file is.

Apart from train.py, which imports accelerate and the training stack: the publishing tool reads run directories
through this module alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WEIGHT_FILES", "weights_file_name", "weights_kind"]

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
