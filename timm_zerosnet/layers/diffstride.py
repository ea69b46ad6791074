"""Learnable-stride spectral downsampling (DiffStride) and its two static baselines.

Paper: R. Riad, O. Teboul, D. Grangier, N. Zeghidour, "Learning Strides in Convolutional Neural Networks",
ICLR 2022, arXiv 2202.01653. Authors' code: github.com/google-research/diffstride (TensorFlow); the behaviour
reproduced here is the one written down in shared/spec/DIFFSTRIDE.md.

DiffStride crops the 2D Fourier spectrum of a feature map with a soft window whose size follows a learnable,
real-valued stride ``S = (S_h, S_w)``: coefficients up to ``T = H / (2 S)`` pass, a linear ramp of width
``R`` (the smoothness) fades them out, and everything past the ramp is cut away. The output is therefore about
``H / S + 2R`` pixels high, not ``H / S``, and the strides receive a gradient through the ramp values.
``FixedSpectralPooling`` (static spectral crop) and ``Subsample`` (``x[..., ::s, ::s]``) take the same
``strides`` argument so a network can swap one for another.

Data-dependent output size
--------------------------
The output shape of :class:`DiffStride` depends on the *value* of a parameter, so every forward reads the crop
mask back to the host (one device sync per layer) to learn how many rows and columns to keep. What that means
for the usual tooling:

- ``torch.compile``: works, but the graph is split at that host read (a graph break per layer). The code after
  the break specialises on the crop sizes: it recompiles when a stride crosses a size boundary, until Dynamo's
  automatic dynamic shapes take over after the first such recompile. Inductor does not generate code for the
  complex FFT ops (it warns), so the spectral part runs as in eager. ``cropping=False`` and frozen layers (see
  below) have a static shape and compile with ``fullgraph=True``. A compiled training forward always writes the
  in-place stride clip (eager writes only when a value changes), so a loss term that saved the ``strides``
  parameter before that forward (e.g. ``layer.strides.square().sum()``) fails in backward with torch's in-place
  modification error: compute it after the forward, or from ``layer.strides.clone()`` as
  :func:`stride_regularizer` does.
- TorchScript: not supported. ``torch.jit.script`` raises a ``RuntimeError`` that says so (TorchScript is
  deprecated in the PyTorch versions this package supports); use ``torch.compile`` or ``torch.export``.
- FX symbolic tracing: works. The data-dependent part is a ``torch.fx.wrap``-ed function, so tracing a network
  that contains DiffStride records one ``call_function`` node per layer and the traced module keeps learning
  strides (sizes are still decided at run time). Like any ``self.training`` branch, the layer's mode (in-place
  stride clip in training, clipped copy in eval) is recorded as a constant: trace in the mode you will run. The
  layer is also registered as a timm no-trace leaf (timm's FX tools call it as a module, mode included).
- ``torch.export`` / ONNX: need a static graph. Call :func:`freeze_diffstride` (or :meth:`DiffStride.freeze`)
  first: it fixes the crop sizes for one input size and drops the host read (and the in-place stride clip).
  Exporting an unfrozen layer raises a ``RuntimeError`` telling you to freeze it (``strict=True`` export wraps it
  in Dynamo's ``Unsupported`` error, message included). A frozen layer still multiplies by the ramp window built
  from its strides, so the exported graph computes what the eager layer computes. ONNX: export with
  ``torch.onnx.export(..., dynamo=True)`` (the default of recent PyTorch); the older TorchScript-based exporter
  (``dynamo=False``) has no FFT operators, for these layers as for ``FixedSpectralPooling``.
- timm ``features_only`` / ``feature_info``: the reductions a network reports are the nominal (initial)
  strides; with DiffStride the real feature-map sizes drift during training. Ask the layers
  (:meth:`DiffStride.output_size`) or run a forward pass instead of trusting ``feature_info['reduction']``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import operator
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.fx
from timm.layers import register_notrace_module
from torch import nn

__all__ = [
    "DOWNSAMPLE_LAYERS",
    "DiffStride",
    "FixedSpectralPooling",
    "Subsample",
    "create_downsample",
    "diffstride_param_names",
    "freeze_diffstride",
    "stride_regularizer",
]

StrideArg = float | Sequence[float]


def _is_number(value: object) -> bool:
    """A Python or NumPy real number (not a bool) or a one-element tensor."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.dtype.is_complex
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _stride_pair(strides: StrideArg, layer: str) -> tuple[float, float]:
    """Normalise a scalar (a Python or NumPy number, a one-element tensor) or a (height, width) pair of strides to two
    floats; anything else (a string, None) is refused naming what was given."""
    if _is_number(strides):
        return float(strides), float(strides)
    if isinstance(strides, str | bytes) or not isinstance(strides, Sequence) or not all(map(_is_number, strides)):
        raise TypeError(
            f"{layer} needs one stride or a (height, width) pair of numbers, got {strides!r}; pass e.g. strides=2.0 "
            "or strides=(2.0, 2.0)."
        )
    values = tuple(float(s) for s in strides)
    if len(values) != 2:
        raise ValueError(
            f"{layer} needs one stride or a (height, width) pair, got {len(values)} values {values}; "
            "pass e.g. strides=2.0 or strides=(2.0, 2.0)."
        )
    return values[0], values[1]


def _check_spatial_size(x: torch.Tensor, layer: str) -> tuple[int, int]:
    """Return (H, W) of an NCHW input, or raise if the map is too small to be pooled in the Fourier domain."""
    if x.dim() < 2:
        if torch.jit.is_scripting():  # TorchScript has no tuple(x.shape); it prints the shape as a list
            raise ValueError(f"{layer} expects an NCHW input, got a tensor of shape {x.shape}.")
        raise ValueError(f"{layer} expects an NCHW input, got a tensor of shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        # the FFT result was cast back to the input dtype: an integer input came out truncated (uint8 wrapped
        # around), a complex one lost its imaginary part
        if not torch.jit.is_scripting():
            raise TypeError(
                f"{layer} needs a floating-point input, got {x.dtype}; convert it first, e.g. x.float() (for "
                "uint8 images, x.float() / 255)."
            )
        raise TypeError(f"{layer} needs a floating-point input; convert it first, e.g. x.float().")
    height, width = x.shape[-2], x.shape[-1]
    if height < 2 or width < 2:
        raise ValueError(
            f"{layer} needs a feature map of at least 2x2, got {height}x{width}; remove the downsampling layer "
            "for such small maps or feed a larger input."
        )
    return height, width


def _input_hw(input_hw: Sequence[int], what: str, minimum: int) -> tuple[int, int]:
    """An input (height, width) pair of whole numbers >= ``minimum``; a full shape such as ``x.shape`` (whose first
    two entries are batch and channels) or a single number is refused naming what was given."""
    try:
        pair = tuple(input_hw)
        values = tuple(operator.index(v) for v in pair if not isinstance(v, bool))
    except TypeError:
        values = pair = ()
    if len(pair) != 2 or len(values) != 2:
        raise TypeError(
            f"{what} needs the input's (height, width), two whole numbers, got {input_hw!r}; for a tensor x pass "
            "x.shape[-2:]."
        )
    if min(values) < minimum:
        raise ValueError(
            f"{what} got an input of {values[0]}x{values[1]}, smaller than the {minimum}x{minimum} the layer takes."
        )
    return values


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Disable autocast around the FFTs: half-precision FFTs need power-of-two sizes on GPU and lose accuracy."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _fft_dtype(x: torch.Tensor) -> torch.dtype:
    """Real dtype the spectrum is computed in: float32, or float64 for float64 inputs."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------------------------------------------
# DiffStride
# ----------------------------------------------------------------------------------------------------------------


def _min_stride(size: int, smoothness: float) -> float:
    """Smallest stride S with S >= size / (size - R); no bound when the ramp alone covers the whole spectrum."""
    if size <= smoothness:
        return 1.0
    return size / (size - smoothness)


def _clipped_strides(
    strides: torch.Tensor,
    height: int,
    width: int,
    smoothness: float,
    lower_limit: float,
    upper_limit: float | None,
) -> torch.Tensor:
    """Clipped copy of the strides (DIFFSTRIDE.md step 1), without gradient: S >= H / (H - R), then the limits.

    The one place the clip is computed: the in-place projection of training (:func:`_clip_strides_`), the
    straight-through copy of inference and :meth:`DiffStride._plan` all use it.
    """
    bound_h, bound_w = _min_stride(height, smoothness), _min_stride(width, smoothness)
    with torch.no_grad():
        if strides.numel() == 1:
            clipped = strides.clamp(min=max(bound_h, bound_w))
        else:
            clipped = torch.stack([strides[0].clamp(min=bound_h), strides[1].clamp(min=bound_w)])
        return clipped.clamp(min=lower_limit, max=upper_limit)


def _clip_strides_(
    strides: torch.Tensor,
    height: int,
    width: int,
    smoothness: float,
    lower_limit: float,
    upper_limit: float | None,
) -> None:
    """Clip strides in place, without gradient (the projection done by a training forward and by freeze)."""
    clipped = _clipped_strides(strides, height, width, smoothness, lower_limit, upper_limit)
    with torch.no_grad():
        # write only when something changed: an in-place write bumps the parameter's version, which would break
        # the backward of anything that saved the parameter itself earlier in the step
        if torch.compiler.is_compiling() or strides.is_meta or not torch.equal(clipped, strides):
            strides.copy_(clipped)


def _vertical_positions(height: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Distance-to-DC positions of the rfft2 rows, in FFT order."""
    v = torch.arange(height // 2 + height % 2, device=device, dtype=dtype)
    centred = torch.cat([v[height % 2 :].flip(0), v])
    # fftshift, not ifftshift, as in the reference code: the same for even H; for odd H the DC row gets position 1
    # and frequency -1 gets 0 (a quirk we keep so that cropped sizes and values match the authors').
    return torch.roll(centred, height // 2, 0)  # fftshift of 1-D; the ONNX exporters lack fftshift


def _ramp(threshold: torch.Tensor, positions: torch.Tensor, smoothness: float) -> torch.Tensor:
    """Adaptive-span mask clip((R + T - pos) / R, 0, 1): 1 up to T, linear down to 0 at T + R."""
    if smoothness == 0:
        # Limit R -> 0 of the ramp: a hard window, which gives the strides no gradient: a zero one, as past max(., 2).
        # T >= 1, so the clamp adds an exact 0 (nan stays nan) that keeps them in the graph: a lone layer's output
        # could not be backpropagated, and DDP without find_unused_parameters refused strides with no gradient.
        return (positions <= threshold).to(positions.dtype) + threshold.clamp(max=0.0)
    return torch.clamp((smoothness + threshold - positions) / smoothness, 0.0, 1.0)


def _ramp_masks(strides: torch.Tensor, height: int, width: int, smoothness: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical (FFT order, length H) and horizontal (length W // 2 + 1) masks, differentiable in the strides."""
    # At least float32: fp16 strides (model.half()) would round the thresholds and move crop boundaries.
    strides = strides.to(torch.promote_types(strides.dtype, torch.float32))
    stride_h, stride_w = strides[0], strides[-1]
    # max(., 2) keeps at least a 2x2 map and is where the gradient stops for very large strides.
    threshold_h = torch.clamp(height / stride_h, min=2.0) / 2
    threshold_w = torch.clamp(width / stride_w, min=2.0) / 2 + 1
    pos_h = _vertical_positions(height, strides.device, strides.dtype)
    pos_w = torch.arange(width // 2 + 1, device=strides.device, dtype=strides.dtype)
    return _ramp(threshold_h, pos_h, smoothness), _ramp(threshold_w, pos_w, smoothness)


def _crop_plan(mask_h: torch.Tensor, mask_w: torch.Tensor, strides: torch.Tensor) -> tuple[int, int, int]:
    """Rows kept at the front and at the back of the FFT-ordered spectrum, and columns kept: where the mask > 0."""
    height = mask_h.shape[0]
    # The only host sync of the layer: the output size is a Python int decided by parameter values.
    keep = torch.cat([mask_h.detach(), mask_w.detach()]).gt(0).tolist()
    keep_h, keep_w = keep[:height], keep[height:]
    if not (keep_h[0] and keep_w[0]):
        # a finite stride always keeps the DC row and column (T >= 1); only a nan one (a nan mask) keeps nothing,
        # which failed inside irfft2 with "Invalid number of data points (0)"
        raise ValueError(
            f"DiffStride strides are {strides.detach().tolist()}: a nan stride has no output size. Training "
            "diverged (a nan loss or gradient reached the strides); lower the learning rate or resume from a "
            "checkpoint saved before the divergence."
        )
    front = next((i for i, k in enumerate(keep_h) if not k), height)
    back = 0 if front == height else next(i for i, k in enumerate(reversed(keep_h)) if not k)
    cols = sum(keep_w)
    if front + back != sum(keep_h) or any(keep_w[cols:]):
        raise RuntimeError(f"DiffStride internal error: kept rows {keep_h} / columns {keep_w} are not contiguous.")
    return front, back, cols


def _take_rows(t: torch.Tensor, dim: int, front: int, back: int) -> torch.Tensor:
    """Concatenate the first `front` and last `back` entries of `t` along `dim`."""
    size = t.shape[dim]
    if front + back >= size:
        return t
    head = t.narrow(dim, 0, front)
    if back == 0:
        return head
    return torch.cat([head, t.narrow(dim, size - back, back)], dim=dim)


class StridesOnMetaError(ValueError, NotImplementedError):
    """A cropping DiffStride layer on the meta device asked for an output size, which follows its strides' values.
    Also a NotImplementedError, the type torch raises for what the meta device cannot do: code that falls back to a
    real copy of the network on it (the model card's and the model table's GMAC counts) keeps doing so."""


def _require_values(strides: torch.Tensor, cropping: bool, what: str) -> None:
    """A cropping layer's output size follows the strides' values, which a layer built on the meta device does not
    have ('Cannot copy out of meta tensor' deep inside the crop plan before)."""
    if cropping and strides.is_meta:
        raise StridesOnMetaError(
            f"{what}: the strides are on the meta device and hold no value yet, and the output size follows them: "
            "materialise the layer first (module.to_empty(device='cpu') and load_state_dict, or build it without the "
            "meta device)."
        )


def _diffstride_forward(
    x: torch.Tensor,
    strides: torch.Tensor,
    smoothness: float,
    cropping: bool,
    lower_limit: float,
    upper_limit: float | None,
    frozen_plan: tuple[int, int, int, int, int] | None,
    training: bool,
) -> torch.Tensor:
    """DiffStride forward (DIFFSTRIDE.md steps 1-7).

    Unless a frozen plan is given, the strides are clipped every forward: in place when `training` (the
    projection of the reference code), otherwise on a copy that passes the gradient straight through to the
    parameter, so that inference never rewrites the learned strides.
    """
    height, width = _check_spatial_size(x, "DiffStride")
    if x.numel() == 0:
        # MKL's FFT refuses an empty batch: the output size from one zero image; x and the strides stay in the graph
        # (zero gradients, as a conv gives its weight: DDP reduces every parameter on every rank)
        probe = x.new_zeros((1, 1, height, width))
        out = _diffstride_forward(probe, strides, smoothness, cropping, lower_limit, upper_limit, frozen_plan, training)
        # (a 0-d zero: out[:0] would not broadcast against an empty channel dimension)
        return x.reshape(*x.shape[:-2], *out.shape[-2:]) + out.flatten()[:0].sum()
    if frozen_plan is None:
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            raise RuntimeError(
                "DiffStride's output size depends on the value of its strides, which torch.export, ONNX and "
                "torch.jit.trace cannot record (a trace would bake in today's sizes and clip the strides outside "
                "autograd); call timm_zerosnet.layers.diffstride.freeze_diffstride(model, example_input) (or "
                "layer.freeze((H, W))) before exporting or tracing to fix the output size."
            )
        _require_values(strides, cropping, "DiffStride")
        if training:
            _clip_strides_(strides, height, width, smoothness, lower_limit, upper_limit)
        else:
            clipped = _clipped_strides(strides, height, width, smoothness, lower_limit, upper_limit)
            # straight-through: the value is exactly `clipped` (s - s is exactly 0, unlike s + (c - s)), the
            # gradient goes to the parameter unchanged, and the parameter is left as it is
            strides = clipped + (strides - strides.detach())
    elif frozen_plan[:2] != (height, width):
        raise ValueError(
            f"DiffStride was frozen for {frozen_plan[0]}x{frozen_plan[1]} inputs but got {height}x{width}; "
            "call unfreeze() or freeze it again for this input size."
        )
    compute_dtype = _fft_dtype(x)
    with _autocast_off(x.device.type):
        # A copy, so that autograd saves no reference to the parameter that the next clip mutates in place
        # (a layer shared by a residual and its shortcut runs twice per forward).
        mask_h, mask_w = _ramp_masks(strides.clone(), height, width, smoothness)
        spectrum = torch.fft.rfft2(x.to(compute_dtype))
        if cropping:
            front, back, cols = frozen_plan[2:] if frozen_plan is not None else _crop_plan(mask_h, mask_w, strides)
            if cols < spectrum.shape[-1]:  # no no-op slice: the ONNX exporter has no alias of a complex tensor
                spectrum = spectrum[..., :cols]
            spectrum = _take_rows(spectrum, -2, front, back)
            mask_h, mask_w = _take_rows(mask_h, 0, front, back), mask_w[:cols]
        window = (mask_h[:, None] * mask_w[None, :]).to(compute_dtype)
        spectrum = spectrum * window
        # Cropped: the default output length [rows, 2 * (cols - 1)] of the reference (odd widths lose a column).
        # Not cropped: the size is kept (step 6), odd widths included.
        out = torch.fft.irfft2(spectrum) if cropping else torch.fft.irfft2(spectrum, s=(height, width))
    return out.to(x.dtype)


# FX symbolic tracing records this as one opaque call, so networks containing DiffStride can be traced.
torch.fx.wrap("_diffstride_forward")


@register_notrace_module
class DiffStride(nn.Module):
    """Spectral pooling with learnable, real-valued strides (DiffStride, Riad et al., ICLR 2022).

    The forward follows the authors' TensorFlow ``LearnableSpectralPooling``: the strides are clipped (no
    gradient) to ``S >= size / (size - R)`` and then to ``[lower_limit, upper_limit]``; the rfft2 of the
    input is multiplied by the outer product of two ramp masks and cropped to where the mask is non-zero; the
    output is the irfft2 with its default length, so with cropping odd widths lose a column. The FFTs run in
    float32 (float64 for float64 inputs) with autocast disabled, and the result is cast back to the input dtype.

    In training mode the clip is an in-place projection of the ``strides`` parameter, as in the reference code.
    In eval mode (``not self.training``) the forward uses a clipped copy whose gradient goes straight through to
    the parameter, so inference (at any input size) never changes the learned strides. A frozen layer (see
    :meth:`freeze`) does not clip in its forward at all.

    Args:
        strides: Initial stride, one value or (height, width). Must be finite and >= 1.
        smoothness: Width R of the ramp of the mask, in frequency bins; finite and >= 0. R = 0 gives a hard crop
            that passes no gradient to the strides.
        cropping: Crop the spectrum to the support of the mask (the downsampling). If False, masked coefficients
            are only zeroed and the size is kept (a learnable low-pass filter).
        shared_stride: Learn one stride for both axes (parameter of shape (1,) instead of (2,)).
        lower_limit: Smallest stride allowed; finite and > 0.
        upper_limit: Largest stride allowed, >= lower_limit; None (or ``float("inf")``, stored as None) for no
            limit.

    Attributes:
        strides: The learnable strides, an ``nn.Parameter`` of shape (2,) (or (1,) when shared). Exclude it from
            weight decay (see :func:`diffstride_param_names`).
    """

    def __init__(
        self,
        strides: StrideArg = (2.0, 2.0),
        smoothness: float = 4.0,
        cropping: bool = True,
        shared_stride: bool = False,
        lower_limit: float = 1.0,
        upper_limit: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        stride_h, stride_w = _stride_pair(strides, "DiffStride")
        if not (math.isfinite(stride_h) and math.isfinite(stride_w)):
            raise ValueError(
                f"DiffStride strides must be finite, got ({stride_h}, {stride_w}); to cut a map down to 2x2 pass a "
                "large finite stride such as the input size."
            )
        if not (stride_h >= 1 and stride_w >= 1):
            raise ValueError(
                f"DiffStride strides must be >= 1, got ({stride_h}, {stride_w}); a stride below 1 would "
                "upsample. Pass strides=1.0 for a layer that starts without downsampling."
            )
        for flag, value in (("cropping", cropping), ("shared_stride", shared_stride)):
            if not isinstance(value, bool | np.bool_):
                # a string such as "False" from a config is truthy: it would turn the option on without a word
                raise TypeError(f"DiffStride {flag} must be True or False, got {value!r}.")
        for option, value in (("smoothness", smoothness), ("lower_limit", lower_limit), ("upper_limit", upper_limit)):
            if not (_is_number(value) or (option == "upper_limit" and value is None)):
                raise TypeError(
                    f"DiffStride {option} must be a number{' or None' if option == 'upper_limit' else ''}, got "
                    f"{value!r}; the defaults are smoothness=4.0, lower_limit=1.0, upper_limit=None (no limit)."
                )
        cropping, shared_stride = bool(cropping), bool(shared_stride)
        smoothness = float(smoothness)
        if not (math.isfinite(smoothness) and smoothness >= 0):
            raise ValueError(
                f"DiffStride smoothness R must be finite and >= 0, got {smoothness}; the paper and default use "
                "R = 4.0 (R = 0 is a hard crop)."
            )
        if shared_stride and stride_h != stride_w:
            raise ValueError(
                f"shared_stride=True learns one stride for both axes but got different initial values "
                f"({stride_h}, {stride_w}); pass equal values or set shared_stride=False."
            )
        lower_limit = float(lower_limit)
        if not (math.isfinite(lower_limit) and lower_limit > 0):
            raise ValueError(f"DiffStride lower_limit must be finite and > 0, got {lower_limit}; the default is 1.0.")
        if upper_limit is not None:
            upper_limit = float(upper_limit)
            if math.isnan(upper_limit):
                raise ValueError("DiffStride upper_limit is nan; pass a number >= lower_limit or None for no limit.")
            if upper_limit == math.inf:
                upper_limit = None  # no limit
        if upper_limit is not None and upper_limit < lower_limit:
            raise ValueError(
                f"DiffStride upper_limit={upper_limit} is below lower_limit={lower_limit}; pass an upper_limit "
                ">= lower_limit or None for no limit."
            )
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"DiffStride strides are real numbers: dtype must be a floating-point dtype, got {dtype}.")
        init = [stride_h] if shared_stride else [stride_h, stride_w]
        # dtype None: torch's default dtype, as for every other parameter (float32 strides in a model built under
        # torch.set_default_dtype(torch.float64) put float32 thresholds in a float64 network)
        self.strides = nn.Parameter(torch.tensor(init, dtype=dtype or torch.get_default_dtype(), device=device))
        self.smoothness = smoothness
        self.cropping = cropping
        self.shared_stride = shared_stride
        self.lower_limit = lower_limit
        self.upper_limit = upper_limit
        self._frozen_plan: tuple[int, int, int, int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _diffstride_forward(
            x,
            self.strides,
            self.smoothness,
            self.cropping,
            self.lower_limit,
            self.upper_limit,
            self._frozen_plan,
            self.training,
        )

    def _plan(self, input_hw: tuple[int, int]) -> tuple[int, int, int]:
        """Crop plan (front rows, back rows, columns) for an input size with the strides clipped as in forward."""
        height, width = input_hw
        strides = _clipped_strides(self.strides, height, width, self.smoothness, self.lower_limit, self.upper_limit)
        mask_h, mask_w = _ramp_masks(strides, height, width, self.smoothness)
        if not self.cropping:
            return height, 0, width // 2 + 1
        return _crop_plan(mask_h, mask_w, strides)

    def output_size(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Spatial size this layer produces for an input of size `input_hw` with its current strides."""
        height, width = _input_hw(input_hw, "DiffStride.output_size", 2)
        if not self.cropping:
            return height, width
        self._require_values("output_size")
        if self._frozen_plan is not None and self._frozen_plan[:2] == (height, width):
            front, back, cols = self._frozen_plan[2:]
        else:
            front, back, cols = self._plan((height, width))
        return front + back, 2 * (cols - 1)

    def freeze(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Fix the crop sizes for one input size so the forward has a static shape (for torch.export/ONNX).

        The strides are clipped once; they stay a parameter and still receive a gradient through the mask
        values, but the output size no longer follows them. Other input sizes raise until :meth:`unfreeze`.

        Args:
            input_hw: Input (height, width) the layer will see.

        Returns:
            The (height, width) of the output.
        """
        height, width = _input_hw(input_hw, "DiffStride.freeze", 2)
        self._require_values("freeze")
        _clip_strides_(self.strides, height, width, self.smoothness, self.lower_limit, self.upper_limit)
        self._frozen_plan = (height, width, *self._plan((height, width)))
        return self.output_size((height, width))

    def _require_values(self, what: str) -> None:
        _require_values(self.strides, self.cropping, f"DiffStride.{what}")

    def unfreeze(self) -> None:
        """Let the output size follow the strides again."""
        self._frozen_plan = None

    @property
    def frozen(self) -> bool:
        """Whether the crop sizes are fixed by :meth:`freeze`."""
        return self._frozen_plan is not None

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script calls this hook on every submodule; fail here rather than deep inside the compiler.
        raise RuntimeError(
            "DiffStride does not support TorchScript (its output size depends on a parameter value, and "
            "torch.jit.script is deprecated); use torch.compile, or freeze_diffstride() then torch.export."
        )

    def extra_repr(self) -> str:
        if self.strides.is_meta:  # no values to show (a network built on the meta device prints too)
            values = "meta"
        else:
            values = ", ".join(f"{s:.4g}" for s in self.strides.detach().tolist())
        limits = f", upper_limit={self.upper_limit}" if self.upper_limit is not None else ""
        return (
            f"strides=({values}), smoothness={self.smoothness}, cropping={self.cropping}, "
            f"shared_stride={self.shared_stride}, lower_limit={self.lower_limit}{limits}"
            + (", frozen" if self.frozen else "")
        )


# ----------------------------------------------------------------------------------------------------------------
# Static baselines
# ----------------------------------------------------------------------------------------------------------------


def _spectral_pool_size(height: int, width: int, stride_h: float, stride_w: float) -> tuple[int, int]:
    """Fixed spectral pooling's output size: ``H // S_h`` made even and ``W // S_w``, both at least 2."""
    out_h = int(height // stride_h)
    out_h -= out_h % 2
    out_w = int(width // stride_w)
    return max(out_h, 2), max(out_w, 2)


def _spectral_crop(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Keep the rfft2 rows [0, out_h/2) and [H - out_h/2, H) and columns [0, out_w/2 + 1); invert to (out_h, out_w)."""
    spectrum = torch.fft.rfft2(x)
    kept = _take_rows(spectrum[..., : out_w // 2 + 1], -2, out_h // 2, out_h // 2)
    return torch.fft.irfft2(kept, s=(out_h, out_w))


def _fixed_spectral_pool(x: torch.Tensor, stride_h: float, stride_w: float) -> torch.Tensor:
    """FixedSpectralPooling forward: the output size is Python arithmetic on the input's shape."""
    height, width = _check_spatial_size(x, "FixedSpectralPooling")
    out_h, out_w = _spectral_pool_size(height, width, stride_h, stride_w)
    if x.numel() == 0:  # MKL's FFT refuses an empty batch; x stays in the graph (a zero gradient)
        return x.reshape(list(x.shape[:-2]) + [out_h, out_w])
    compute_dtype = _fft_dtype(x)
    if torch.jit.is_scripting():
        # TorchScript compiles only this branch (it has no contextlib); autocast keeps these float32 FFTs in float32
        # anyway (the FFT ops are on its fp32 lists), so the result is the eager one
        out = _spectral_crop(x.to(compute_dtype), out_h, out_w)
    else:
        with _autocast_off(x.device.type):
            out = _spectral_crop(x.to(compute_dtype), out_h, out_w)
    return out.to(x.dtype)


# FX symbolic tracing records this as one call (the sizes are computed from the input's shape at run time), so
# networks with fixed spectral pooling can be traced (torchvision / timm FX feature extraction included).
torch.fx.wrap("_fixed_spectral_pool")


class FixedSpectralPooling(nn.Module):
    """Spectral pooling with fixed strides (Rippel et al., 2015), the static baseline of DiffStride.

    Output size: ``sh = H // S_h`` made even, ``sw = W // S_w``, both at least 2. The rfft2 rows
    ``[0, sh/2)`` and ``[H - sh/2, H)`` and columns ``[0, sw/2 + 1)`` are kept and inverted with output size
    ``(sh, sw)``. FFTs run in float32 (float64 for float64 inputs) with autocast disabled. TorchScript-able and
    FX-traceable (the forward is one ``torch.fx.wrap``-ed call).

    Args:
        strides: One stride or (height, width); fractional values allowed, must be >= 1.
    """

    def __init__(self, strides: StrideArg = (2, 2)) -> None:
        super().__init__()
        self.strides = _stride_pair(strides, "FixedSpectralPooling")
        if not (math.isfinite(self.strides[0]) and math.isfinite(self.strides[1])):
            # an infinite stride gave a 2x2 map whatever the input, with no word (DiffStride refuses it too)
            raise ValueError(
                f"FixedSpectralPooling strides must be finite, got {self.strides}; to cut a map down to 2x2 pass a "
                "large finite stride such as the input size."
            )
        if not (self.strides[0] >= 1 and self.strides[1] >= 1):
            raise ValueError(f"FixedSpectralPooling strides must be >= 1, got {self.strides}; pass 1 to keep the size.")

    def output_size(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Spatial size produced for an input of size `input_hw`."""
        height, width = _input_hw(input_hw, "FixedSpectralPooling.output_size", 2)
        return _spectral_pool_size(height, width, self.strides[0], self.strides[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fixed_spectral_pool(x, self.strides[0], self.strides[1])

    def extra_repr(self) -> str:
        return f"strides={self.strides}"


class Subsample(nn.Module):
    """Plain strided subsampling ``x[..., ::s_h, ::s_w]``: what a strided 1x1 convolution does to its input.

    Args:
        strides: One integer stride or (height, width).
    """

    def __init__(self, strides: StrideArg = (2, 2)) -> None:
        super().__init__()
        pair = _stride_pair(strides, "Subsample")
        if not all(s >= 1 and float(s).is_integer() for s in pair):
            raise ValueError(
                f"Subsample needs integer strides >= 1, got {pair}; use DiffStride or FixedSpectralPooling for "
                "fractional strides."
            )
        self.strides = (int(pair[0]), int(pair[1]))

    def output_size(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Spatial size produced for an input of size `input_hw`."""
        height, width = _input_hw(input_hw, "Subsample.output_size", 0)
        return math.ceil(height / self.strides[0]), math.ceil(width / self.strides[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :: self.strides[0], :: self.strides[1]]

    def extra_repr(self) -> str:
        return f"strides={self.strides}"


DOWNSAMPLE_LAYERS: dict[str, type[nn.Module]] = {
    "diffstride": DiffStride,
    "spectral": FixedSpectralPooling,
    "subsample": Subsample,
}


def create_downsample(kind: str, strides: StrideArg, **kwargs) -> nn.Module:
    """Build one of the interchangeable downsampling layers by name.

    Args:
        kind: ``"diffstride"``, ``"spectral"`` or ``"subsample"``.
        strides: Initial (DiffStride) or fixed stride, one value or (height, width).
        **kwargs: Extra arguments of the layer (e.g. ``smoothness`` for DiffStride).

    Returns:
        The layer.
    """
    if kind not in DOWNSAMPLE_LAYERS:
        raise ValueError(f"Unknown downsampling layer {kind!r}; choose one of {sorted(DOWNSAMPLE_LAYERS)}.")
    return DOWNSAMPLE_LAYERS[kind](strides, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Network-level helpers
# ----------------------------------------------------------------------------------------------------------------


def _check_model(model: object, caller: str) -> None:
    """Refuse what is not a module (None failed with "'NoneType' object has no attribute 'modules'")."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller} takes the network (a torch.nn.Module), got {type(model).__name__}: pass the model.")


def stride_regularizer(model: nn.Module) -> torch.Tensor:
    """Compute J(S): the sum over DiffStride layers l of prod_{i <= l} 1 / (S_h^i S_w^i).

    Each term is the area of layer l's output relative to the network input, so J is a differentiable proxy
    for compute and memory (the paper adds ``lambda * J`` to the loss). Layers are taken in module registration
    order, which is the forward order in a sequential network; a layer shared by two paths counts once.

    J uses the strides as they are when it is called. In the usual order (loss computed after the forward) those
    are the strides the training forward has just clipped; called before the forward it uses the unclipped
    values, and the gradient still reaches the parameters. Either order can be backpropagated: J is computed from
    a copy of each ``strides`` parameter, so the in-place clip of a later forward does not invalidate its graph.

    Args:
        model: Any module.

    Returns:
        A scalar tensor, differentiable in the strides; zero if the model has no DiffStride layer.
    """
    _check_model(model, "stride_regularizer")
    total, area = None, None
    for module in model.modules():
        if isinstance(module, DiffStride):
            # a clone: CloneBackward saves nothing, so autograd keeps no reference to the parameter, which a
            # training forward may clip in place before J is backpropagated
            s = module.strides.clone()
            layer_area = 1.0 / (s[0] * s[-1])
            area = layer_area if area is None else area * layer_area
            total = area if total is None else total + area
    if total is None:
        param = next(model.parameters(), None)
        return torch.zeros((), device=None if param is None else param.device)
    return total


def diffstride_param_names(model: nn.Module) -> list[str]:
    """Names (as in ``model.named_parameters()``) of the DiffStride strides, which must not be weight-decayed."""
    return [f"{name}.strides" if name else "strides" for name, m in model.named_modules() if isinstance(m, DiffStride)]


def freeze_diffstride(model: nn.Module, example_input: torch.Tensor) -> dict[str, tuple[tuple[int, int], ...]]:
    """Freeze every DiffStride layer of `model` at the sizes it sees for `example_input` (before export).

    Runs one forward pass without gradient, in eval mode (a model in training mode would update its BatchNorm
    statistics from the example; its modes are restored afterwards), to record each layer's input size, then calls
    :meth:`DiffStride.freeze` on it.

    Args:
        model: Network containing DiffStride layers.
        example_input: An input of the size the exported model will receive.

    Returns:
        ``{layer name: (input (H, W), output (H, W))}`` for every DiffStride layer the forward reaches; a layer it
        does not reach is left unfrozen, with a warning naming it.

    Raises:
        TypeError: `model` is not a module or `example_input` is not a tensor.
        ValueError: `model` has no DiffStride layer (there is nothing to freeze).
    """
    _check_model(model, "freeze_diffstride")
    if not isinstance(example_input, torch.Tensor):
        hint = " (for a NumPy array x, torch.from_numpy(x).float())" if isinstance(example_input, np.ndarray) else ""
        raise TypeError(
            f"freeze_diffstride needs example_input as a torch.Tensor of the size the exported model will receive, "
            f"got {type(example_input).__name__}; pass e.g. torch.zeros(1, 3, H, W){hint}."
        )
    layers = {name: m for name, m in model.named_modules() if isinstance(m, DiffStride)}
    if not layers:
        # ran a whole forward and returned {}: a model built with another downsampling (conv, spectral, subsample)
        # has a static shape already
        raise ValueError(
            f"freeze_diffstride: {type(model).__name__} has no DiffStride layer, so there is nothing to freeze; pass "
            "a model built with downsample='diffstride' (e.g. preresnet18_diffstride_cifar), or export this one as it "
            "is (its output size is static)."
        )
    seen: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            hw = (int(args[0].shape[-2]), int(args[0].shape[-1]))
            if seen.setdefault(name, hw) != hw:
                raise ValueError(
                    f"DiffStride layer {name!r} sees inputs of sizes {seen[name]} and {hw} in one forward; a "
                    "frozen layer supports one size, so it cannot be frozen."
                )

        return hook

    handles = [m.register_forward_pre_hook(record(name)) for name, m in layers.items()]
    modes = {m: m.training for m in model.modules()}
    try:
        for m in layers.values():
            m.unfreeze()
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.training = training
    unreached = [name or "(the model itself)" for name in layers if name not in seen]
    if unreached:
        # they stay unfrozen: an export that reaches them (another branch, another input) fails there
        warnings.warn(
            f"freeze_diffstride: the example input's forward does not reach DiffStride layer(s) "
            f"{', '.join(unreached)}, so they are left unfrozen; pass an example input that reaches them, or freeze "
            "each with layer.freeze((H, W)) for the size it will see.",
            stacklevel=2,
        )
    return {name: (seen[name], layers[name].freeze(seen[name])) for name in layers if name in seen}
