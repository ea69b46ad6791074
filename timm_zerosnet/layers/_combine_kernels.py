"""Triton kernels of ``fused_combine`` (imported only when they are first needed: Triton may be missing on CPU).

Every tensor is read as flat memory: the caller passes tensors of one shape, dtype and dense layout, so the i-th
element of each is the same (n, c, h, w). Slot i's coefficient is k_i + s_i c where VARi says that s_i != 0 (only
then is the scalar c loaded). Unused slots get any valid pointer and are never read.
"""

import triton
import triton.language as tl


@triton.jit
def _coef(c_ptr, k, s, VAR: tl.constexpr):
    if VAR:
        coef = k + s * tl.load(c_ptr).to(tl.float32)
    else:
        coef = k
    return coef


@triton.jit
def combine_forward(
    out_ptr, t0, t1, t2, t3, c_ptr, k0, k1, k2, k3, s0, s1, s2, s3, n,
    NT: tl.constexpr, VAR0: tl.constexpr, VAR1: tl.constexpr, VAR2: tl.constexpr, VAR3: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    acc = tl.load(t0 + offs, mask=mask).to(tl.float32) * _coef(c_ptr, k0, s0, VAR0)
    if NT > 1:
        acc += tl.load(t1 + offs, mask=mask).to(tl.float32) * _coef(c_ptr, k1, s1, VAR1)
    if NT > 2:
        acc += tl.load(t2 + offs, mask=mask).to(tl.float32) * _coef(c_ptr, k2, s2, VAR2)
    if NT > 3:
        acc += tl.load(t3 + offs, mask=mask).to(tl.float32) * _coef(c_ptr, k3, s3, VAR3)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _slot_backward(g, offs, mask, d_ptr, t_ptr, c_ptr, k, s, VAR: tl.constexpr, W: tl.constexpr, S: tl.constexpr):
    """Writes slot i's gradient g * coef (W) and returns s_i <g, t_i> over this program's elements (S), else 0."""
    if W:
        tl.store(d_ptr + offs, (g * _coef(c_ptr, k, s, VAR)).to(d_ptr.dtype.element_ty), mask=mask)
    part = 0.0
    if S:
        t = tl.load(t_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        part = s * tl.sum(g * t, axis=0)
    return part


@triton.jit
def combine_backward(
    g_ptr, d0, d1, d2, d3, t0, t1, t2, t3, c_ptr, partial_ptr, k0, k1, k2, k3, s0, s1, s2, s3, n,
    VAR0: tl.constexpr, VAR1: tl.constexpr, VAR2: tl.constexpr, VAR3: tl.constexpr,
    W0: tl.constexpr, W1: tl.constexpr, W2: tl.constexpr, W3: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    part = _slot_backward(g, offs, mask, d0, t0, c_ptr, k0, s0, VAR0, W0, S0)
    part += _slot_backward(g, offs, mask, d1, t1, c_ptr, k1, s1, VAR1, W1, S1)
    part += _slot_backward(g, offs, mask, d2, t2, c_ptr, k2, s2, VAR2, W2, S2)
    part += _slot_backward(g, offs, mask, d3, t3, c_ptr, k3, s3, VAR3, W3, S3)
    if S0 or S1 or S2 or S3:
        tl.store(partial_ptr + pid, part)
