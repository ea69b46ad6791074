"""Gradient checkpointing that leaves the batch-norm statistics as an ordinary forward leaves them.

torch's checkpoint runs a block's forward twice in training: once without keeping activations and again in
backward to rebuild them. The batch norms of the block then update their running statistics twice per step (and
count each batch twice), so a model trained with ``set_grad_checkpointing(True)`` evaluates differently from the
same training without it. Here the recomputation normalises with the batch statistics as before but leaves the
running statistics alone: weights, gradients and buffers are those of the plain forward.

The same holds for DiffStride's strides, which a training forward clips in place for its input size: a second
forward at another size before the backward (several resolutions in one step) clipped them again, and the
recomputation of the first one then ran with the second one's strides (wrong gradients, or checkpoint's error about
recomputed shapes). The recomputation runs with the strides its forward had.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
from timm.models._manipulate import checkpoint as timm_checkpoint

from .diffstride import DiffStride


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Batch norms under ``module`` normalise with the batch's statistics (in training), as always, but leave their
    running statistics and batch count as they were: momentum 0 for the duration (the update ``(1 - m) * running +
    m * batch`` is then the running value, exactly), the count put back afterwards. Switching the running buffers
    off instead would save other tensors for backward than the first forward did, which checkpoint refuses."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


@contextlib.contextmanager
def strides_as_recorded(layers: list[DiffStride], recorded: list[torch.Tensor]) -> Iterator[None]:
    """The DiffStride ``layers`` with the strides ``recorded`` after a block's first forward, for its recomputation;
    the strides they have now afterwards. Only a changed value is written (a write bumps the parameter's version)."""
    now = [m.strides.detach().clone() for m in layers]
    changed = [not torch.equal(n, r) for n, r in zip(now, recorded)]
    with torch.no_grad():
        for m, value, change in zip(layers, recorded, changed):
            if change:
                m.strides.copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for m, value, change in zip(layers, now, changed):
                if change:
                    m.strides.copy_(value)


def checkpoint(block: nn.Module, *args: Any) -> Any:
    """``block(*args)`` through timm's checkpoint (non-reentrant), its recomputation in backward without a second
    update of the batch-norm statistics.

    Under torch.compile the block goes to timm's checkpoint as it is: the compiled graph recomputes the activations
    from the traced forward, whose buffer updates happen once, and dynamo refuses the call counter below (a
    mutation from inside the checkpointed function, so ``fullgraph=True`` failed)."""
    if torch.compiler.is_compiling():
        return timm_checkpoint(block, *args)
    calls = 0
    layers = [m for m in block.modules() if isinstance(m, DiffStride)]
    recorded: list[torch.Tensor] = []

    def run(*inputs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            out = block(*inputs)
            recorded.extend(m.strides.detach().clone() for m in layers)  # as the forward clipped them
            return out
        with frozen_running_stats(block), strides_as_recorded(layers, recorded):  # the recomputation
            return block(*inputs)

    return timm_checkpoint(run, *args)
