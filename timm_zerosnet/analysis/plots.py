"""PNG figures of the stability analysis (matplotlib, Agg canvas, no pyplot state)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..release import respect_umask
from .stability import ModelSchemeReport, RegionScan, SchemeReport

__all__ = ["plot_region_scan", "plot_roots"]

#: The largest half-width of the roots plot; a root beyond it is drawn on the edge, labelled with its modulus.
_MAX_EXTENT = 1e100


def plot_roots(
    reports: SchemeReport | ModelSchemeReport | Sequence[tuple[str, SchemeReport]],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Roots of rho in the complex plane against the unit circle.

    Args:
        reports: One scheme, a model report (one series per distinct block scheme) or ``(label, report)`` pairs.
        path: Output PNG file (parent folders are created).
        title: Figure title.

    Returns:
        The written path.
    """
    series = _series(reports)
    fig = Figure(figsize=(5.5, 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    theta = np.linspace(0, 2 * math.pi, 400)
    ax.plot(np.cos(theta), np.sin(theta), color="0.5", lw=1, label="unit circle")
    extent = 1.2
    for i, (label, report) in enumerate(series):
        roots = np.array(report.roots, dtype=complex)
        verdict = "zero stable" if report.zero_stable else "NOT zero stable"
        moduli = np.abs(roots)
        off = moduli > _MAX_EXTENT / 1.1
        if off.any():
            # matplotlib's axis arithmetic overflows near 1e308 (a NaN error for --lm-k 1e308): such a root is drawn
            # on the edge, in its direction, and labelled with its modulus
            roots = np.where(off, roots / np.where(off, moduli, 1.0) * _MAX_EXTENT / 1.1, roots)
            for z, r in zip(roots[off], moduli[off]):
                ax.annotate(f"|z| = {r:.3g} (off scale)", (z.real, z.imag), fontsize=7, ha="center", va="bottom")
        ax.scatter(roots.real, roots.imag, s=45, marker="ox^sdv"[i % 6], label=f"{label} ({verdict})", zorder=3)
        extent = max(extent, 1.1 * float(np.max(np.abs(roots))))
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_title(title or "roots of the first characteristic polynomial")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_region_scan(scan: RegionScan, path: str | Path, *, title: str | None = None) -> Path:
    """Largest spurious-root modulus against the family parameter, with the zero-stable grid points shaded.

    Args:
        scan: Result of :func:`~timm_zerosnet.analysis.stability.zero_stable_region`.
        path: Output PNG file (parent folders are created).
        title: Figure title.

    Returns:
        The written path.
    """
    values = np.array(scan.values, dtype=float)
    moduli = np.array(scan.max_spurious_modulus)
    largest = float(np.max(np.abs(values)))
    # matplotlib's axis arithmetic overflows near 1e308 ('Singular matrix' for --scan -1e308 1e308): beyond
    # _MAX_EXTENT the axis is drawn in units of a power of ten, which its label names
    scale = 10.0 ** math.floor(math.log10(largest)) if largest > _MAX_EXTENT else 1.0
    values = values / scale
    stable = np.array(scan.zero_stable)
    fig = Figure(figsize=(7.0, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = max(1.5, float(np.nanmin([np.nanmax(moduli), 3.0])) * 1.05)
    ax.fill_between(values, 0, top, where=stable, color="tab:green", alpha=0.15, step="mid", label="zero stable")
    ax.plot(values, np.where(np.isnan(moduli), np.nan, np.minimum(moduli, top)), color="tab:blue", lw=1.5)
    ax.axhline(1.0, color="tab:red", lw=1, ls="--", label="|z| = 1")
    ax.set_ylim(0, top)
    ax.set_xlim(values[0], values[-1])
    ax.set_xlabel(scan.parameter if scale == 1.0 else f"{scan.parameter} (x {scale:.0e})")
    ax.set_ylabel("largest spurious |z|")
    family = {"zeros": "ZeroSNet", "lm": "LM-ResNet"}.get(scan.family, scan.family)
    ax.set_title(title or f"{family}: zero stable iff {scan.region}")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def _series(reports: object) -> list[tuple[str, SchemeReport]]:
    if isinstance(reports, SchemeReport):
        return [("scheme", reports)]
    if isinstance(reports, ModelSchemeReport):
        seen: dict[tuple[float, ...], tuple[str, SchemeReport]] = {}
        for blk in reports.blocks:
            seen.setdefault(blk.report.a, (blk.block, blk.report))
        return list(seen.values())
    return [(str(label), report) for label, report in reports]  # type: ignore[union-attr]


def _save(fig: Figure, path: str | Path) -> Path:
    """Write the figure whole or not at all: a failure part-way leaves an earlier plot at ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        respect_umask(tmp)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
