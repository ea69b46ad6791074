"""Parameter and multiply-add counts of registered models (torch's own flop counter)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ModelProfile:
    name: str
    params: int
    gmacs: float
    input_size: tuple[int, int, int]
    forward_ok: bool
    forward_s: float
    forward_error: str = ""  # why the forward failed: the exception it raised, or what was wrong with its output


def count_gmacs(model: torch.nn.Module, input_size: tuple[int, int, int], device: str = "meta") -> float:
    """Multiply-adds (in G) of one forward of a single image; on the meta device nothing is computed."""
    x = torch.empty((1, *input_size), device=device)
    model = model.to(device).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9


def _exception_line(e: Exception) -> str:
    detail = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def profile_model(name: str, run_forward: bool = True) -> ModelProfile:
    """Build ``name``, count its parameters and GMACs at its pretrained input size, and run one real forward.

    A forward that raises, or returns no finite (1, num_classes) tensor, is reported in ``forward_error`` (GMACs NaN
    when the counting forward raised) rather than raised: one model's failure is a row of a table, not its end.
    """
    meta = timm.create_model(name, device="meta")
    input_size = tuple(meta.pretrained_cfg["input_size"])
    params = sum(p.numel() for p in meta.parameters())
    try:
        try:
            gmacs = count_gmacs(meta, input_size)
        except NotImplementedError:  # learnable strides: the output size depends on real parameter values
            gmacs = count_gmacs(timm.create_model(name), input_size, device="cpu")
    except Exception as e:
        return ModelProfile(name, params, math.nan, input_size, False, 0.0, f"counting GMACs: {_exception_line(e)}")
    if not run_forward:
        return ModelProfile(name, params, gmacs, input_size, False, 0.0)
    model = timm.create_model(name).eval()
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = model(torch.randn(1, *input_size))
    except Exception as e:
        return ModelProfile(name, params, gmacs, input_size, False, time.perf_counter() - start, _exception_line(e))
    seconds = time.perf_counter() - start
    if not isinstance(out, torch.Tensor) or out.shape != (1, model.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        error = f"output {shape}, not (1, {model.num_classes})"
    else:
        error = "" if bool(torch.isfinite(out).all()) else "the output holds NaN or inf"
    return ModelProfile(name, params, gmacs, input_size, not error, seconds, error)


def markdown_table(rows: list[ModelProfile]) -> str:
    lines = ["| model | params | GMACs | input | forward |", "|---|---:|---:|---|---|"]
    for r in rows:
        status = f"ok ({r.forward_s:.2f} s)" if r.forward_ok else ("FAILED" if r.forward_error else "not run")
        gmacs = "n/a" if math.isnan(r.gmacs) else f"{r.gmacs:.3f}"
        lines.append(f"| {r.name} | {r.params:,} | {gmacs} | {'x'.join(map(str, r.input_size))} | {status} |")
    return "\n".join(lines)
