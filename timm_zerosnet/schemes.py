"""Residual networks as ODE solvers: the update rule each family applies once per block.

A residual block evaluates the branch F once; the family decides how that evaluation is combined with the
current state and its history. Writing x_n for the input of block n and h for the step size:

- ``Euler`` (PreResNet, He et al. 2016):          x_{n+1} = x_n + h F(x_n)
- ``LinearMultistep`` (LM-ResNet, Lu et al. 2018): x_{n+1} = (1 - k_n) x_n + k_n x_{n-1} + h F(x_n)
- ``ZeroStable`` (ZeroSNet, Chen et al. 2022):     x_{n+1} = a0 x_n + a1 x_{n-1} + a2 x_{n-2} + h b0 F(x_n)

A scheme object is a frozen description. The network asks it, block by block, which role the block plays
(a start-up Euler step while the history fills, a plain Euler step that resets the history at a stage
transition, or a full multistep step) and for the ``nn.Module`` that holds that block's coefficients. The
same object and those modules are what the stability analysis reads (``block_coefficients``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .analysis.stability import analyze_scheme, zeros_coefficients
from .layers import fused_combine

__all__ = [
    "Scheme",
    "Euler",
    "LinearMultistep",
    "ZeroStable",
    "EulerUpdate",
    "LinearMultistepUpdate",
    "ZeroStableUpdate",
    "multistep_updates",
    "zeros_coefficients",
    "finite_number",
    "OPT_LAMBDA",
]

OPT_LAMBDA = -9.0 / 5.0  # the ZeroSNet "Opt" choice: double spurious root at -1/3

ROLE_STARTUP = "startup"  # history not yet full: an Euler step
ROLE_RESET = "reset"  # stage transition of a scheme that resets its history: an Euler step
ROLE_MULTISTEP = "multistep"


@dataclass(frozen=True)
class Scheme:
    """A linear multistep update rule with one branch evaluation per block.

    Attributes:
        step_size: h, the factor on the residual branch (tau in tau-ResNet). It scales b, never a, so it never
            changes zero stability.
    """

    name: ClassVar[str] = "scheme"
    steps: ClassVar[int] = 1  # how many past states the update reads (x_n, x_{n-1}, ...)
    resets_at_transition: ClassVar[bool] = True  # else: every history slot is projected across a transition

    step_size: float = 1.0

    def __post_init__(self):
        h = positive_step_size(self.step_size, f"tau (the step size h of the {self.name} scheme)")
        object.__setattr__(self, "step_size", h)

    def role(self, index: int, is_transition: bool) -> str:
        """The role of global block ``index``; ``is_transition`` is True when the block changes the shape."""
        if index < self.steps - 1:
            return ROLE_STARTUP
        if is_transition and self.resets_at_transition:
            return ROLE_RESET
        return ROLE_MULTISTEP

    def make_update(self, device=None, dtype=None) -> nn.Module:
        """The module that combines F(x_n) with the history in a multistep block."""
        raise NotImplementedError


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None; text and booleans are not numbers here (float('1') and float(True)
    would take them)."""
    if isinstance(value, (str, bytes, bool)):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# The checks that a scheme and the update modules it makes share: an update module built directly (it is public)
# took a NaN or 0 step size, a one-number k_init (uniform_'s default high 1.0 filled in) or three coefficients (an
# unpacking error) without a word, or failed inside torch.


def positive_step_size(value: Any, what: str) -> float:
    """``value`` as the step size h, a finite float > 0; ``what`` names the argument in the error."""
    h = finite_number(value)
    if h is None or h <= 0:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}.")
    return h


def k_range(k_init: Any) -> tuple[float, float]:
    """LM-ResNet's ``k_init`` as a (low, high) pair of finite floats with low <= high."""
    pair = k_init if isinstance(k_init, (tuple, list)) else ()
    bounds = [finite_number(v) for v in pair]
    if len(bounds) != 2 or None in bounds or bounds[0] > bounds[1]:
        raise ValueError(
            f"k_init is the (low, high) range of k's uniform initialisation: two finite numbers, low <= high "
            f"(paper: (-0.1, 0.0)), got {k_init!r}."
        )
    return bounds[0], bounds[1]


def four_coefficients(coefficients: Any) -> tuple[float, float, float, float]:
    """ZeroSNet's fixed (a0, a1, a2, b0) as four finite floats."""
    given = coefficients if isinstance(coefficients, (tuple, list)) else ()
    values = [finite_number(c) for c in given]
    if len(values) != 4 or None in values:
        raise ValueError(f"ZeroSNet coefficients must be four finite numbers (a0, a1, a2, b0), got {coefficients!r}.")
    return values[0], values[1], values[2], values[3]


def positive_lam_eps(value: Any) -> float:
    """The guard of a trainable lambda, a finite float > 0."""
    eps = finite_number(value)
    if eps is None or eps <= 0:  # NaN gave NaN logits; inf fixed every coefficient and stopped lambda learning
        raise ValueError(f"lam_eps must be a finite number > 0 (it keeps lambda away from 0), got {value!r}.")
    return eps


class EulerUpdate(nn.Module):
    """x_{n+1} = x_n + h F(x_n). Like every update here, it writes a new tensor and leaves ``f`` (the output of the
    branch's last conv) as it is: a forward hook or an FX feature extractor may keep or differentiate it."""

    def __init__(self, step_size: float = 1.0):
        super().__init__()
        self.step_size = positive_step_size(step_size, "EulerUpdate step_size (h)")

    def forward(self, f: torch.Tensor, x: torch.Tensor, last: torch.Tensor, llast: torch.Tensor) -> torch.Tensor:
        # f first: the sum takes f's memory layout (channels_last), whatever a pooled x_n has, and f * h + x rounds
        # as the weights' golden outputs were computed (before 2026-12-01: eager CPU blocks now fold h into their
        # last conv's weight, PreActBlock._folded_branch, which rounds h F(x_n) differently)
        if self.step_size == 1.0:
            return f + x
        if not torch.jit.is_scripting():
            if not eager():  # a graph's mul node keeps h F(x_n) (traced code: see _lerp_add)
                return torch.mul(f, self.step_size).add(x)
        return torch.mul(f, self.step_size).add_(x)

    def branch_scale(self, like: torch.Tensor) -> float | None:
        """The constant that multiplies F(x_n), for a block that folds it into its last conv (``accumulate_``)."""
        return self.step_size

    def accumulate_(self, fs: torch.Tensor, x: torch.Tensor, last: torch.Tensor, llast: torch.Tensor) -> torch.Tensor:
        """The update with ``fs`` = h F(x_n) given: x_n added into ``fs`` in place. Only for a caller that owns
        ``fs`` (nothing else holds it: no hook saw it) and folded h into the conv that made it."""
        return fs.add_(x)

    def coefficients(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (1.0,), (1.0,)

    def extra_repr(self) -> str:
        return f"h={self.step_size}"


def eager() -> bool:
    """Whether Python code runs op by op: not under torch.compile, a JIT trace or an FX trace, which record a graph
    of plain ops, nor under a ``torch.func`` transform (grad, vmap, jacrev, ...) or a forward-mode AD level, which
    the package's own autograd Functions do not implement. Layers use it to pick an implementation that only pays
    off op by op; the plain-op one serves everything else."""
    return (
        not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.fx._symbolic_trace.is_fx_symbolic_tracing()
        and _PEEK_FUNCTORCH() is None
        and getattr(_forward_ad, "_current_level", -1) < 0
    )


# torch's own state of torch.func transforms and forward-AD levels (private, read only; where a torch lacks them,
# eager() behaves as it did before it read them)
_PEEK_FUNCTORCH = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", lambda: None)
_forward_ad = torch.autograd.forward_ad


def eager_autograd() -> bool:
    """Whether autograd records eager Python code (``eager()`` with gradients enabled): eager training."""
    return torch.is_grad_enabled() and eager()


def _flat_like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor | None:
    """``t`` as a 1-D view in the memory order of ``ref`` (NCHW or channels_last), or None where there is none."""
    if t.stride() != ref.stride():
        return None
    if t.is_contiguous():
        return t.view(-1)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)  # a view: the permuted tensor is contiguous
    return None


# Traced code (torch.compile, torch.export, FX and JIT traces) runs the updates out of place: an FX graph records an
# in-place op as a node that changes its input node's value, so a feature extractor asked for the update's lerp or mul
# node got the finished x_{n+1} (compilers turn in-place ops into out-of-place ones anyway). Eager code and
# TorchScript accumulate into the fresh tensor.


def _lerp_add(
    f: torch.Tensor, x: torch.Tensor, last: torch.Tensor, k: torch.Tensor, h: float, inplace: bool = True
) -> torch.Tensor:
    """LM-ResNet's update as plain ops, (1 - k) x + k last + h f: lerp saves nothing beyond x and last, which stay
    alive anyway (k * (last - x) would save last - x). Used by TorchScript, torch.compile, exports and traces
    (whose compilers fuse the backward; ``inplace=False``) and by ``_LerpAddFunction``'s forward."""
    if inplace:
        return torch.lerp(x, last, k).add_(f, alpha=h)
    return torch.lerp(x, last, k).add(f, alpha=h)


def _zero_stable_sum(
    f: torch.Tensor,
    x: torch.Tensor,
    last: torch.Tensor,
    llast: torch.Tensor,
    hb0: torch.Tensor,
    a0: torch.Tensor,
    inv: torch.Tensor,
    a2: torch.Tensor,
    op_by_op: bool = False,
) -> torch.Tensor:
    """ZeroSNet Tra's update h b0 f + a0 x - (1 / lambda) last + a2 llast with tensor coefficients.

    ``op_by_op`` (eager code): one new tensor, the other terms accumulated into it; the forward of
    ``_ZeroStableTraFunction`` (eager training) and the eager forward without autograd, so that both round alike (an
    eval forward gives the same bits with gradients on or off). Otherwise plain ops, for TorchScript, torch.compile,
    exports and traces (their compilers fuse them)."""
    if op_by_op:
        return torch.mul(x, a0).addcmul_(last, inv, value=-1.0).addcmul_(llast, a2).addcmul_(f, hb0)
    return hb0 * f + a0 * x - inv * last + a2 * llast


class _LerpAddFunction(torch.autograd.Function):
    """lerp(x, last, k) + h f with a leaner backward than autograd's for eager training: the gradient of k is
    sum(g * (last - x)) = <g, last> - <g, x>, two dot products over memory that is alive anyway, where autograd's
    LerpBackward materialises last - x and its product with g (two full-size temporaries per block), and f's
    gradient is g itself when h = 1. x's and last's gradients are one scaling of g each."""

    @staticmethod
    def forward(ctx, f, x, last, k, h: float):
        ctx.save_for_backward(x, last, k)
        ctx.h = h
        return _lerp_add(f, x, last, k, h)

    @staticmethod
    def backward(ctx, g):
        x, last, k = ctx.saved_tensors
        need_f, need_x, need_last, need_k, _ = ctx.needs_input_grad
        g_last = g * k if need_last else None
        g_x = g * (1.0 - k) if need_x else None  # one pass: g - g_last would read two tensors
        g_f = (g if ctx.h == 1.0 else g * ctx.h) if need_f else None
        g_k = None
        if need_k:
            gf, lf, xf = _flat_like(g, g), _flat_like(last, g), _flat_like(x, g)
            if gf is None or lf is None or xf is None:  # mixed or strided layouts: the plain formula
                g_k = (g * (last - x)).sum(dtype=torch.promote_types(g.dtype, torch.float32))
            elif gf.dtype in (torch.float32, torch.float64):
                g_k = torch.dot(gf, lf) - torch.dot(gf, xf)
            else:
                # autocast's bf16 / fp16: one float32 dot with last - x. A bf16 / fp16 torch.dot returns its sum
                # rounded to 8 / 11 bits (on any device), and on the CPU it is a scalar loop: 18.6 ms instead of
                # 0.09 ms for 131072 values, half of an LM-ResNet-20 training step under autocast
                g_k = torch.dot(gf.float(), lf.float().sub_(xf))
            g_k = g_k.to(k.dtype)
        return g_f, g_x, g_last if need_last else None, g_k, None


def _inner_products(g: torch.Tensor, tensors: tuple[torch.Tensor | None, ...]) -> list[torch.Tensor | None]:
    """<g, t> for each t (None stays None), summed in at least float32: dot products over memory that is alive
    anyway where the layouts allow, else sum(g * t)."""
    acc = torch.promote_types(g.dtype, torch.float32)
    gf = _flat_like(g, g)
    gf = gf.to(acc) if gf is not None else None  # one conversion of g for all the dots (none in float32)
    out = []
    for t in tensors:
        tf = _flat_like(t, g) if t is not None and gf is not None else None
        if tf is not None:
            out.append(torch.dot(gf, tf.to(acc)))
        else:
            out.append(None if t is None else (g * t).sum(dtype=acc))
    return out


class _ZeroStableTraFunction(torch.autograd.Function):
    """h b0 f + a0 x - (1 / lambda) last + a2 llast with tensor coefficients (ZeroSNet Tra), for eager training.
    Forward: one new tensor and four kernels (autograd's products and sums make seven of each). Backward: each
    coefficient's gradient is a dot product with g over memory that is alive anyway (autograd makes a full-size
    product per coefficient, then sums it), accumulated in float32 under autocast."""

    @staticmethod
    def forward(ctx, f, x, last, llast, hb0, a0, inv, a2):
        ctx.save_for_backward(f, x, last, llast, hb0, a0, inv, a2)
        return _zero_stable_sum(f, x, last, llast, hb0, a0, inv, a2, op_by_op=True)

    @staticmethod
    def backward(ctx, g):
        f, x, last, llast, hb0, a0, inv, a2 = ctx.saved_tensors
        need = ctx.needs_input_grad
        grads = [g * c if n else None for c, n in zip((hb0, a0, -inv, a2), need[:4])]
        tensors = tuple(t if n else None for t, n in zip((f, x, last, llast), need[4:]))
        coef = _inner_products(g, tensors)
        if coef[2] is not None:
            coef[2] = -coef[2]
        coef = [c.to(ref.dtype) if c is not None else None for c, ref in zip(coef, (hb0, a0, inv, a2))]
        return (*grads, *coef)


class LinearMultistepUpdate(nn.Module):
    """LM-ResNet: x_{n+1} = (1 - k) x_n + k x_{n-1} + h F(x_n), one trainable k per block (paper convention).

    The authors' code stores k' = 1 - k; the checkpoint filter converts.
    """

    def __init__(self, step_size: float = 1.0, k_init: tuple[float, float] = (-0.1, 0.0), device=None, dtype=None):
        super().__init__()
        self.step_size = positive_step_size(step_size, "LinearMultistepUpdate step_size (h)")
        self.k = nn.Parameter(torch.empty((), device=device, dtype=dtype))
        nn.init.uniform_(self.k, *k_range(k_init))

    def forward(self, f: torch.Tensor, x: torch.Tensor, last: torch.Tensor, llast: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return _lerp_add(f, x, last, self.k, self.step_size)
        return self._forward_python(f, x, last)

    @torch.jit.unused
    def _forward_python(self, f: torch.Tensor, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        if eager():
            if fused_combine.usable((f, x, last)):
                # (1 - k) x + k last + h f, each coefficient affine in k
                coefs = ((self.step_size, 0.0), (1.0, -1.0), (0.0, 1.0))
                return fused_combine.combine((f, x, last), coefs, self.k, force=True)  # usable() just held
            if torch.is_grad_enabled():  # eager training
                return _LerpAddFunction.apply(f, x, last, self.k, self.step_size)
        return _lerp_add(f, x, last, self.k, self.step_size, inplace=eager())

    def coefficients(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        k = float(self.k.detach())
        return (1.0 - k, k), (1.0, 0.0)

    def extra_repr(self) -> str:
        return f"h={self.step_size}"


class ZeroStableUpdate(nn.Module):
    """ZeroSNet: x_{n+1} = a0 x_n + a1 x_{n-1} + a2 x_{n-2} + h b0 F(x_n).

    Fixed coefficients are Python floats (nothing is saved for backward). With ``trainable=True`` the block
    owns a scalar lambda and recomputes the coefficients from it at every forward. The coefficients divide by
    lambda, and nothing in the authors' code keeps lambda away from 0: here the value used is lambda with its
    magnitude raised to at least ``lam_eps`` (sign kept, 0 counts as positive). The gradient passes straight
    through the guard, so a lambda pushed into the band can leave it again. With the default 1/3 the guard
    never touches the zero-stable region (lambda <= -1 or lambda > 1/3), and the worst spurious root inside
    the band is 2.69 (lambda = -1/3) instead of unbounded, so a forward stays finite at every registered depth.
    """

    def __init__(
        self,
        coefficients: tuple[float, float, float, float] | None = None,
        lam_init: float | None = None,
        lam_eps: float = 1.0 / 3.0,
        step_size: float = 1.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.step_size = positive_step_size(step_size, "ZeroStableUpdate step_size (h)")
        self.trainable = lam_init is not None
        if self.trainable and coefficients is not None:  # the coefficients were dropped for lambda's
            raise ValueError(
                "ZeroStableUpdate: lam_init makes lambda trainable and the coefficients follow from it, coefficients "
                "fix them; pass either coefficients=(a0, a1, a2, b0) or lam_init=<initial lambda>."
            )
        if not self.trainable and lam_eps != 1.0 / 3.0:
            raise ValueError(
                f"ZeroStableUpdate: lam_eps={lam_eps!r} bounds a trainable lambda away from 0, and without lam_init "
                "the coefficients are fixed; leave lam_eps out, or pass lam_init=<initial lambda>."
            )
        self.lam_eps = positive_lam_eps(lam_eps)
        a0, a1, a2, b0 = four_coefficients(coefficients) if coefficients is not None else (1.0, 0.0, 0.0, 1.0)
        self.a0, self.a1, self.a2, self.hb0 = a0, a1, a2, b0 * self.step_size
        if self.trainable:
            lam = finite_number(lam_init)  # 0 is allowed here: the guard replaces it (see safe_lam)
            if lam is None:
                raise ValueError(
                    f"ZeroStableUpdate lam_init (the initial lambda) must be a finite number, got {lam_init!r}."
                )
            kind = dtype if dtype is not None else torch.get_default_dtype()
            if kind.is_floating_point and abs(lam) > torch.finfo(kind).max:  # torch.full's overflow RuntimeError
                raise ValueError(
                    f"ZeroSNet Tra: the initial lambda {lam:g} does not fit in {kind} (largest "
                    f"{torch.finfo(kind).max:g}); pass a smaller lam (beyond |lambda| = 10 the coefficients barely "
                    "change) or a wider dtype."
                )
            self.lam = nn.Parameter(torch.full((), lam, device=device, dtype=dtype))
        else:
            self.register_parameter("lam", None)

    def safe_lam(self) -> torch.Tensor:
        """lambda as used in the forward: magnitude at least ``lam_eps``, straight-through gradient."""
        lam = self.lam
        assert lam is not None
        mag = lam.detach().abs().clamp(min=self.lam_eps)
        guarded = torch.where(lam.detach() < 0, -mag, mag)
        return lam + (guarded - lam.detach())

    def trainable_coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h b0, a0, 1 / lambda, a2) of the trainable block as differentiable tensors of ``safe_lam()``;
        a1 = -1 / lambda."""
        inv = 1.0 / self.safe_lam()
        b, a0, _, a2 = self._affine_in_inv()
        return b[0] + b[1] * inv, a0[0] + a0[1] * inv, inv, a2[0] + a2[1] * inv

    def _affine_in_inv(
        self,
    ) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]:
        """(h b0, a0, a1, a2) of the trainable block as (k, s): coefficient = k + s / lambda."""
        h = self.step_size
        return (
            (1.5 * h, -0.5 * h),  # h b0 = h (3 lam - 1) / (2 lam)
            (0.75, 0.75),  # a0 = (3 lam + 3) / (4 lam)
            (0.0, -1.0),  # a1 = -1 / lam
            (0.25, 0.25),  # a2 = (lam + 1) / (4 lam)
        )

    def forward(self, f: torch.Tensor, x: torch.Tensor, last: torch.Tensor, llast: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            fused = self._fused(f, x, last, llast)
            if fused is not None:
                return fused
        if self.lam is not None:
            hb0, a0, inv, a2 = self.trainable_coefficients()
            if torch.jit.is_scripting():
                return _zero_stable_sum(f, x, last, llast, hb0, a0, inv, a2)
            return self._trainable_python(f, x, last, llast, hb0, a0, inv, a2)
        # constant coefficients: one new tensor, the other terms accumulated into it, nothing saved for backward;
        # f first, as in EulerUpdate (layout, and the rounding golden outputs were computed with)
        if not torch.jit.is_scripting():
            if not eager():  # traced code: out of place (see _lerp_add)
                return torch.mul(f, self.hb0).add(x, alpha=self.a0).add(last, alpha=self.a1).add(llast, alpha=self.a2)
        return torch.mul(f, self.hb0).add_(x, alpha=self.a0).add_(last, alpha=self.a1).add_(llast, alpha=self.a2)

    def branch_scale(self, like: torch.Tensor) -> float | None:
        """h b0, the constant that multiplies F(x_n), for a block that folds it into its last conv (``accumulate_``)
        in eager code; None with a trainable lambda (the coefficients are tensors), and where the update runs as one
        Triton kernel on tensors like ``like`` (CUDA: that does the whole combination in one pass)."""
        if self.lam is not None or fused_combine.usable((like,)):
            return None
        return self.hb0

    def accumulate_(self, fs: torch.Tensor, x: torch.Tensor, last: torch.Tensor, llast: torch.Tensor) -> torch.Tensor:
        """The fixed update with ``fs`` = h b0 F(x_n) given: the history terms added into ``fs`` in place, in the
        order of ``forward``. Only for a caller that owns ``fs`` (nothing else holds it:
        no hook saw it) and folded h b0 into the conv that made it."""
        return fs.add_(x, alpha=self.a0).add_(last, alpha=self.a1).add_(llast, alpha=self.a2)

    @torch.jit.unused
    def _fused(self, f: torch.Tensor, x: torch.Tensor, last: torch.Tensor, llast: torch.Tensor) -> torch.Tensor | None:
        """The update as one Triton kernel where ``fused_combine`` can run it (eager CUDA), else None."""
        tensors = (f, x, last, llast)
        if not eager() or not fused_combine.usable(tensors):  # eager() first: traces must not reach the checks
            return None
        # force: usable() just held
        if self.lam is None:
            coefs = ((self.hb0, 0.0), (self.a0, 0.0), (self.a1, 0.0), (self.a2, 0.0))
            return fused_combine.combine(tensors, coefs, force=True)
        return fused_combine.combine(tensors, self._affine_in_inv(), 1.0 / self.safe_lam(), force=True)

    @torch.jit.unused
    def _trainable_python(self, f, x, last, llast, hb0, a0, inv, a2) -> torch.Tensor:
        if eager_autograd():
            return _ZeroStableTraFunction.apply(f, x, last, llast, hb0, a0, inv, a2)
        if eager():  # no autograd: the Function's forward itself (same rounding with gradients on or off)
            return _zero_stable_sum(f, x, last, llast, hb0, a0, inv, a2, op_by_op=True)
        return _zero_stable_sum(f, x, last, llast, hb0, a0, inv, a2)

    def coefficients(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.lam is not None:
            lam = float(self.safe_lam().detach())
            if abs(float(self.lam.detach())) <= self.lam_eps:
                # the guard's own lambda: float32 rounds 1/3 up to 1/3 + 1e-8, inside the zero-stable region, while a
                # block held at the guard sits on its edge (lambda = 1/3: a triple root at 1)
                lam = math.copysign(self.lam_eps, lam)
            a0, a1, a2, b0 = zeros_coefficients(lam)
            return (a0, a1, a2), (b0, 0.0, 0.0)
        return (self.a0, self.a1, self.a2), (self.hb0 / self.step_size, 0.0, 0.0)

    def extra_repr(self) -> str:
        if self.lam is not None:
            return f"trainable lambda, lam_eps={self.lam_eps:.4g}, h={self.step_size}"
        return (
            f"a=({self.a0:.4g}, {self.a1:.4g}, {self.a2:.4g}), b0={self.hb0 / self.step_size:.4g}, h={self.step_size}"
        )


def multistep_updates(model: nn.Module) -> list[nn.Module]:
    """The LM-ResNet and ZeroSNet update modules of ``model``: the combinations that run as ``fused_combine``'s
    kernel in eager mode on CUDA (one launch each way per module and step)."""
    return [m for m in model.modules() if isinstance(m, (LinearMultistepUpdate, ZeroStableUpdate))]


@dataclass(frozen=True)
class Euler(Scheme):
    """Forward Euler, the plain (pre-activation) ResNet."""

    name: ClassVar[str] = "euler"
    steps: ClassVar[int] = 1

    def make_update(self, device=None, dtype=None) -> nn.Module:
        return EulerUpdate(self.step_size)


@dataclass(frozen=True)
class LinearMultistep(Scheme):
    """LM-ResNet's 2-step scheme. Block 0 is an Euler start-up step; a stage transition is an Euler step after
    which the history slot x_{n-1} is reset to the projected x_n. k is created only where it is used.

    Attributes:
        k_init: the range of the uniform initialisation of k (paper: U[-0.1, 0]).
    """

    name: ClassVar[str] = "lm"
    steps: ClassVar[int] = 2
    resets_at_transition: ClassVar[bool] = True

    k_init: tuple[float, float] = (-0.1, 0.0)

    def __post_init__(self):
        super().__post_init__()
        low, high = k_range(self.k_init)
        object.__setattr__(self, "k_init", (low, high))
        if low <= -1.0 or high > 1.0:  # built silently, where ZeroSNet's non-zero-stable coefficients warn
            warnings.warn(
                f"LM-ResNet k_init={self.k_init} starts k outside the zero-stable range -1 < k <= 1 (the spurious root "
                "of rho(z) = (z - 1)(z + k) is -k, a double root at 1 for k = -1), so errors grow with depth. Building "
                "it anyway (the paper trains such schemes on purpose).",
                UserWarning,
                stacklevel=3,
            )

    def make_update(self, device=None, dtype=None) -> nn.Module:
        return LinearMultistepUpdate(self.step_size, self.k_init, device=device, dtype=dtype)


@dataclass(frozen=True)
class ZeroStable(Scheme):
    """ZeroSNet's zero-stable 3-step scheme. Blocks 0 and 1 are Euler start-up steps; across a stage
    transition each history slot whose shape differs gets its own 1x1 projection.

    Attributes:
        lam: lambda of the fixed ("Opt") variant; with ``coefficients`` given it must stay at its default.
        coefficients: arbitrary fixed (a0, a1, a2, b0), zero stable or not (a non-zero-stable choice warns).
        trainable: the "Tra" variant, one lambda per multistep block, initialised at ``lam`` (an initial lambda
            outside the zero-stable region warns, as fixed coefficients do).
        lam_eps: the smallest |lambda| a trainable block uses (see ``ZeroStableUpdate``); only with ``trainable``.
    """

    name: ClassVar[str] = "zeros"
    steps: ClassVar[int] = 3
    resets_at_transition: ClassVar[bool] = False

    lam: float = OPT_LAMBDA
    coefficients: tuple[float, float, float, float] | None = None
    trainable: bool = False
    lam_eps: float = 1.0 / 3.0

    def __post_init__(self):
        super().__post_init__()
        if self.trainable and self.coefficients is not None:
            raise ValueError(
                "ZeroSNet: trainable=True learns lambda, so explicit coefficients cannot be used with it; "
                "pass either coefficients=(a0, a1, a2, b0) or trainable=True with lam=<initial lambda>."
            )
        if not isinstance(self.trainable, bool):  # trainable='no' made the lambdas trainable
            raise ValueError(f"ZeroSNet trainable must be True or False, got {self.trainable!r}.")
        if self.coefficients is not None:
            object.__setattr__(self, "coefficients", four_coefficients(self.coefficients))
        lam = finite_number(self.lam)
        if lam is None or lam == 0:
            raise ValueError(f"ZeroSNet lambda must be a finite non-zero number, got {self.lam!r}.")
        object.__setattr__(self, "lam", lam)
        eps = positive_lam_eps(self.lam_eps)
        object.__setattr__(self, "lam_eps", eps)
        # options the fixed scheme would drop without a word (the model entrypoints refuse them too)
        if self.coefficients is not None and lam != OPT_LAMBDA:
            raise ValueError(
                f"ZeroSNet: lam={lam:g} and coefficients both fix the coefficients (lam through the Opt family), and "
                "the coefficients would win; pass one of them."
            )
        if not self.trainable and eps != 1.0 / 3.0:
            raise ValueError(
                f"ZeroSNet: lam_eps={eps:g} bounds a trainable lambda away from 0, and this scheme's coefficients are "
                "fixed; leave lam_eps out, or pass trainable=True."
            )
        if self.trainable and abs(lam) < eps:
            # the guard would replace it in every forward: at lam_eps = 1/3, b0 = 0 and no branch would learn
            guarded = eps if lam > 0 else -eps
            raise ValueError(
                f"ZeroSNet Tra: the initial lambda {lam:g} lies inside the guard band |lambda| < lam_eps = {eps:g}, "
                f"so every block would start from lambda = {guarded:g} instead; pass lam with |lam| >= {eps:g} (the "
                "zero-stable region is lam <= -1 or lam > 1/3) or a smaller lam_eps."
            )
        self._warn_if_not_zero_stable()

    @property
    def fixed_coefficients(self) -> tuple[float, float, float, float]:
        return self.coefficients if self.coefficients is not None else zeros_coefficients(self.lam)

    def _warn_if_not_zero_stable(self):
        a0, a1, a2, b0 = self.fixed_coefficients
        report = analyze_scheme((a0, a1, a2), (b0, 0.0, 0.0))
        if not report.zero_stable:
            # a repeated root on the unit circle has modulus 1 (it said "modulus 1 > 1"): the report names it
            if report.reason.startswith("repeated root"):
                why = f"the characteristic polynomial has a {report.reason}"
            else:
                why = f"the largest root of the characteristic polynomial has modulus {report.max_modulus:.4g} > 1"
            # a Tra scheme starting there was built without a word: its blocks start from these coefficients
            what = (
                f"ZeroSNet Tra's initial lambda {self.lam:g} (zero stable: lambda <= -1 or lambda > 1/3) gives "
                f"coefficients (a0, a1, a2, b0) = {self.fixed_coefficients} that"
                if self.trainable
                else f"ZeroSNet coefficients (a0, a1, a2, b0) = {self.fixed_coefficients}"
            )
            warnings.warn(
                f"{what} are not zero stable: {why}, so errors grow with depth. Building it anyway (the paper trains "
                "such schemes on purpose).",
                UserWarning,
                stacklevel=4,
            )

    def make_update(self, device=None, dtype=None) -> nn.Module:
        if self.trainable:
            return ZeroStableUpdate(
                lam_init=self.lam, lam_eps=self.lam_eps, step_size=self.step_size, device=device, dtype=dtype
            )
        return ZeroStableUpdate(coefficients=self.fixed_coefficients, step_size=self.step_size)
