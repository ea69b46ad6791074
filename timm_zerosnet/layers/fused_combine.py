"""The multistep combination sum_i (k_i + s_i c) t_i as one Triton kernel, for eager training and inference on CUDA.

Op by op, ZeroSNet's update h b0 f + a0 x + a1 x_{n-1} + a2 x_{n-2} is four kernels that read or write a full
activation eleven times, LM-ResNet's lerp + add six times, where a ResNet's f + x does it three times. On a GPU these
kernels are bound by memory bandwidth: on the H200 lmresnet50's bf16 training step took 65.2 ms of kernel time with
them and 54.6 ms with this kernel (README, Benchmarks). Here the combination is one kernel that reads each input once
and writes once, in float32 with one rounding, and its backward is one kernel too: it writes the inputs' gradients
and, for a trainable coefficient, the partial sums of its gradient (no full-size temporaries, no atomics, so it is
deterministic).

Each coefficient is affine in at most one scalar tensor c (0-dim, trainable): k_i + s_i c with Python floats k_i,
s_i. That covers every scheme of the package: the fixed ZeroSNet coefficients (s = 0), LM-ResNet's (1 - k, k)
in k, and ZeroSNet Tra's four coefficients, affine in 1 / lambda. The gradient of c is sum_i s_i <g, t_i>.

``usable`` says where the kernel runs: CUDA tensors of one float dtype (fp16, bf16, fp32), one shape and one dense
layout (NCHW or channels_last), Triton importable, and ``TIMM_ZEROSNET_TRITON`` not set to 0. Callers check that
they run eagerly (not under torch.compile, a trace or TorchScript, whose compilers fuse the plain ops themselves).
With ``TRITON_INTERPRET=1`` the kernels run on CPU tensors through Triton's interpreter, which is how the tests
without a GPU check them (``combine(..., force=True)``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["ENV_SWITCH", "combine", "disabled", "usable"]

ENV_SWITCH = "TIMM_ZEROSNET_TRITON"  # "0" turns the fused kernels off (the plain ops run instead)

_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_BLOCK = 2048  # elements per program: 8 per thread at 8 warps, 16-byte loads in bf16 / fp16
_MAX_TENSORS = 4

Coef = tuple[float, float]  # (k, s): the coefficient k + s * c


@functools.cache
def _kernels() -> Any:
    """The Triton kernels (imported on first use: Triton is not needed on a CPU-only machine), or None where Triton
    cannot be imported, which a warning says once."""
    try:
        from . import _combine_kernels
    except Exception as e:  # not installed, or a broken install: the plain ops, and a word about it
        warnings.warn(
            f"timm_zerosnet: Triton could not be imported ({type(e).__name__}: {e}); the LM-ResNet / ZeroSNet "
            "combinations run as plain ops on CUDA",
            stacklevel=2,
        )
        return None
    return _combine_kernels


def _launch_failed(e: Exception) -> RuntimeError:
    return RuntimeError(
        f"the fused multistep combination (Triton) failed on this GPU: {type(e).__name__}: {e}. "
        f"Set {ENV_SWITCH}=0 to run the plain ops instead, and please report it"
    )


def _dense(t: torch.Tensor) -> bool:
    if t.is_contiguous():
        return True
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)


def usable(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether ``combine`` runs its kernel on ``tensors`` (see the module docstring); the caller checks eagerness."""
    first = tensors[0]
    if not first.is_cuda or first.dtype not in _DTYPES or not _dense(first):
        return False
    for t in tensors[1:]:
        if t.device != first.device or t.dtype != first.dtype or t.shape != first.shape or t.stride() != first.stride():
            return False
    return os.environ.get(ENV_SWITCH, "1") != "0" and _kernels() is not None


@contextlib.contextmanager
def disabled():
    """Inside the block the combinations run as plain ops, as with ``TIMM_ZEROSNET_TRITON=0`` (to compare the two,
    or to rule the kernel out); the variable's previous value comes back after it."""
    old = os.environ.get(ENV_SWITCH)
    os.environ[ENV_SWITCH] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_SWITCH, None)
        else:
            os.environ[ENV_SWITCH] = old


def combine(
    tensors: Sequence[torch.Tensor],
    coefs: Sequence[Coef],
    c: torch.Tensor | None = None,
    *,
    force: bool = False,
) -> torch.Tensor:
    """sum_i (k_i + s_i c) t_i as a new tensor in the layout of ``tensors[0]``, differentiable in the tensors and in
    ``c``. ``coefs`` gives (k_i, s_i) per tensor; ``c`` is a 0-dim tensor, or None when every s_i is 0. Call it
    where ``usable(tensors)`` holds (``force``: skip that check, where the caller has just made it, or in the tests
    that run Triton's interpreter on CPU tensors)."""
    if not 1 <= len(tensors) <= _MAX_TENSORS or len(coefs) != len(tensors):
        raise ValueError(f"combine takes 1 to {_MAX_TENSORS} tensors and one (k, s) per tensor")
    if c is None and any(s != 0.0 for _, s in coefs):
        raise ValueError("a coefficient with s != 0 needs the scalar c")
    if c is not None and (c.dim() != 0 or c.device != tensors[0].device):
        raise ValueError(f"c must be a 0-dim tensor on {tensors[0].device}, got shape {tuple(c.shape)} on {c.device}")
    if not force and not usable(tensors):
        raise ValueError("combine needs CUDA tensors of one float dtype, shape and dense layout; check usable() first")
    spec = tuple((float(k), float(s)) for k, s in coefs)
    return _Combine.apply(c, spec, *tensors)


def _launch_forward(out: torch.Tensor, tensors: Sequence[torch.Tensor], spec: tuple[Coef, ...], c) -> None:
    kern = _kernels()
    n = out.numel()
    if n == 0:
        return
    ts = list(tensors) + [tensors[0]] * (_MAX_TENSORS - len(tensors))  # unused slots: any valid pointer
    ks, ss, var = _padded_coefficients(spec)
    grid = (_cdiv(n, _BLOCK),)
    try:
        kern.combine_forward[grid](
            out, *ts, c if c is not None else out, *ks, *ss, n,
            NT=len(tensors), VAR0=var[0], VAR1=var[1], VAR2=var[2], VAR3=var[3], BLOCK=_BLOCK, num_warps=8,
        )  # fmt: skip
    except Exception as e:  # a compile or launch error deep in Triton: say what to do
        raise _launch_failed(e) from e


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _padded_coefficients(spec: tuple[Coef, ...]) -> tuple[list[float], list[float], list[bool]]:
    """The kernels' k_i, s_i and VARi (s_i != 0) for all four slots, the unused ones 0."""
    pad = _MAX_TENSORS - len(spec)
    ks = [k for k, _ in spec] + [0.0] * pad
    ss = [s for _, s in spec] + [0.0] * pad
    return ks, ss, [s != 0.0 for s in ss]


class _Combine(torch.autograd.Function):
    """Forward and backward of ``combine`` as one kernel each; it saves only the tensors whose coefficient depends
    on a c that needs a gradient (nothing for constant coefficients)."""

    @staticmethod
    def forward(ctx, c, spec, *tensors):
        out = torch.empty_like(tensors[0])
        _launch_forward(out, tensors, spec, c)
        needs_c = c is not None and c.requires_grad
        ctx.spec = spec
        ctx.n = len(tensors)
        ctx.layout = (out.shape, out.stride(), out.dtype)
        ctx.var = tuple(needs_c and s != 0.0 for _, s in spec)
        saved = [t for t, v in zip(tensors, ctx.var) if v]
        ctx.save_for_backward(c, *saved)
        return out

    @staticmethod
    def backward(ctx, g):
        c, *saved = ctx.saved_tensors
        spec, var = ctx.spec, ctx.var
        need_t = ctx.needs_input_grad[2:]
        need_c = c is not None and ctx.needs_input_grad[0] and any(var)
        it = iter(saved)
        sums_of = [next(it) if v else None for v in var]
        shape, stride, dtype = ctx.layout
        if torch.is_grad_enabled() or g.shape != shape or g.stride() != stride or g.dtype != dtype:
            # a double backward (create_graph=True) records these ops; the kernel's would be invisible to it
            return _backward_plain(g, c, spec, sums_of, need_t, need_c)
        # a constant coefficient 1 passes g on unchanged (to one input only: autograd may add into a gradient
        # that no one else holds)
        grads: list[torch.Tensor | None] = [None] * ctx.n
        write = [False] * ctx.n
        passed = False
        for i, (k, s) in enumerate(spec):
            if not need_t[i]:
                continue
            if s == 0.0 and k == 1.0 and not passed:
                grads[i], passed = g, True
            else:
                grads[i], write[i] = torch.empty_like(g), True
        sums = [need_c and v for v in var]
        if any(write) or any(sums):
            partial = _launch_backward(g, grads, write, sums_of, sums, c, spec)
            dc = partial.sum().to(c.dtype).reshape(c.shape) if partial is not None else None
        else:
            dc = None
        return (dc, None, *grads)


def _launch_backward(g, grads, write, sums_of, sums, c, spec) -> torch.Tensor | None:
    kern = _kernels()
    n = g.numel()
    programs = _cdiv(n, _BLOCK)
    partial = torch.empty(programs, device=g.device, dtype=torch.float32) if any(sums) else None
    if n == 0:
        return partial.zero_() if partial is not None else None
    pad = _MAX_TENSORS - len(spec)
    ds = [d if w else g for d, w in zip(grads, write)] + [g] * pad
    ts = [t if t is not None else g for t in sums_of] + [g] * pad
    ks, ss, var = _padded_coefficients(spec)
    w = list(write) + [False] * pad
    sm = list(sums) + [False] * pad
    try:
        kern.combine_backward[(programs,)](
            g, *ds, *ts, c if c is not None else g, partial if partial is not None else g, *ks, *ss, n,
            VAR0=var[0], VAR1=var[1], VAR2=var[2], VAR3=var[3],
            W0=w[0], W1=w[1], W2=w[2], W3=w[3], S0=sm[0], S1=sm[1], S2=sm[2], S3=sm[3],
            BLOCK=_BLOCK, num_warps=8,
        )  # fmt: skip
    except Exception as e:
        raise _launch_failed(e) from e
    return partial


def _backward_plain(g, c, spec, sums_of, need_t, need_c):
    """The backward as plain ops: for a double backward, and for a gradient whose layout or dtype differs from the
    output's (an expanded gradient of a sum, say)."""
    grads = []
    for (k, s), need in zip(spec, need_t):
        if not need:
            grads.append(None)
        elif s == 0.0:
            grads.append(g * k)
        else:
            grads.append(g * (k + s * c.float()).to(g.dtype))
    dc = None
    if need_c:
        total = sum(s * (g.float() * t.float()).sum() for (_, s), t in zip(spec, sums_of) if t is not None)
        dc = total.to(c.dtype).reshape(c.shape)
    return (dc, None, *grads)
