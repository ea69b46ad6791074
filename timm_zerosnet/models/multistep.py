"""One multistep residual network for every family.

A residual network integrates dx/dt = F(x) with one branch evaluation per block. The families of this package
share the same skeleton (pre-activation blocks, CIFAR or ImageNet stem) and differ only by their scheme
(``timm_zerosnet.schemes``): how F(x_n) is combined with x_n and its history, how the history fills at the start,
and how it crosses a stage transition. ``NetCfg`` describes a skeleton; ``MultistepResNet`` reads a ``NetCfg`` and
a ``Scheme`` and never knows a family name.

The state that flows from block to block is the triple (x_n, x_{n-1}, x_{n-2}); families that need less history
simply never read the extra slots. Each history slot whose shape differs from a block's output gets its own
1x1 projection in that block (ZeroSNet), or the history is reset to the projected x_n (LM-ResNet).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import numbers
import operator
import os
import pickle
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from timm.layers import BatchNormAct2d, DropPath, create_classifier
from timm.models import build_model_with_cfg
from timm.models._builder import resolve_pretrained_cfg
from timm.models._features import FeatureGetterNet, FeatureHookNet, feature_take_indices
from timm.models._features_fx import FeatureGraphNet
from torch import nn
from torch.nn.modules import module as _module_hooks
from torch.nn.utils import parametrize

from ..layers.checkpointing import checkpoint
from ..layers.diffstride import DOWNSAMPLE_LAYERS, DiffStride, create_downsample
from ..release import ReleaseError, _first_line, release_weights_overlay
from ..schemes import ROLE_MULTISTEP, ROLE_RESET, EulerUpdate, Scheme, eager, finite_number

__all__ = [
    "NetCfg",
    "MultistepResNet",
    "ResNetHeadMixin",
    "cifar_net",
    "cifar_resnet18_net",
    "imagenet_net",
    "create_multistep",
    "checkpoint_filter_fn",
    "cifar_cfg",
    "imagenet_cfg",
    "require_released_weights",
    "check_create_kwargs",
    "check_feature_indices",
    "check_feature_cfg",
    "unreadable_weights_named",
    "unwrap_state_dict",
    "check_shapes",
    "check_fit",
    "timm_drops_head",
    "discarded_head",
    "pretrained_filter",
    "check_skeleton",
    "stage_dilations",
    "conv3x3",
]

_logger = logging.getLogger(__name__)

_HISTORY_NONE, _HISTORY_SHIFT, _HISTORY_SHIFT_RAW, _HISTORY_RESET = 0, 1, 2, 3


@dataclass(frozen=True)
class NetCfg:
    """The skeleton of a pre-activation residual network.

    Attributes:
        layers: blocks per stage.
        block: 'basic' (two 3x3 convs) or 'bottleneck' (1x1, 3x3, 1x1, expansion 4).
        widths: base width per stage (times 4 for bottleneck).
        stem: 'cifar' (3x3 conv, no norm, no activation) or 'imagenet' (7x7/2 conv, BN, ReLU, 3x3/2 max-pool).
        stem_width: output channels of the stem.
        shortcut: how a shape-changing shortcut reads x_n: 'norm_act' (its own BN-ReLU, then 1x1 conv),
            'preact' (1x1 conv of the block's own relu(bn1(x_n)), as a standard pre-act ResNet does) or 'conv'
            (bare 1x1 conv of x_n, as in the DiffStride authors' pre-act ResNet-18).
        final_norm: BN-ReLU before global pooling (CIFAR models).
        startup_history_raw: block 0 hands its raw input, not its projected shortcut, to the history (the quirk of
            the ZeroSNet authors' CIFAR code; matters only for bottleneck nets, where the two differ). Ignored when
            block 0 has a downsampling layer: the raw input would not have the size of the pooled slots.
        strides: stride of each stage (default 1, then 2); fractional values only with DiffStride.
        downsample: how a stage downsamples: 'conv' (strided conv), 'spectral' (fixed spectral pooling) or
            'subsample' after a stride-1 conv where the stride is > 1, or 'diffstride' (learnable strides after the
            stem and in the first block of every stage, initialised at ``stem_stride`` / ``strides``).
        stem_stride: initial stride of the DiffStride layer after the stem.
    """

    layers: tuple[int, ...]
    block: str = "basic"
    widths: tuple[int, ...] = (16, 32, 64)
    stem: str = "cifar"
    stem_width: int = 16
    shortcut: str = "norm_act"
    final_norm: bool = True
    startup_history_raw: bool = False
    strides: tuple[float, ...] | None = None
    downsample: str = "conv"
    stem_stride: float = 1.0

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def stage_strides(self) -> tuple[float, ...]:
        return tuple(self.strides) if self.strides is not None else default_stage_strides(len(self.layers))


def cifar_net(layers: tuple[int, ...], block: str = "basic", **kwargs: Any) -> NetCfg:
    """The 32x32 skeleton: widths 16/32/64, strides 1/2/2, stem conv without norm, BN-ReLU before the pool."""
    return NetCfg(layers=tuple(layers), block=block, **kwargs)


def cifar_resnet18_net(downsample: str = "conv", **kwargs: Any) -> NetCfg:
    """The DiffStride authors' pre-act ResNet-18 for 32x32: widths 64..512, 3x3 stem, bare 1x1 conv shortcuts."""
    return NetCfg(
        layers=(2, 2, 2, 2),
        widths=(64, 128, 256, 512),
        stem="cifar",
        stem_width=64,
        shortcut="conv",
        final_norm=True,
        downsample=downsample,
        **kwargs,
    )


def imagenet_net(layers: tuple[int, ...], block: str = "basic", **kwargs: Any) -> NetCfg:
    """The 224x224 skeleton: widths 64..512, 7x7/2 stem + max-pool, shortcuts read the pre-activation, no final norm."""
    return NetCfg(
        layers=tuple(layers),
        block=block,
        widths=(64, 128, 256, 512),
        stem="imagenet",
        stem_width=64,
        shortcut="preact",
        final_norm=False,
        **kwargs,
    )


# below this many output pixels per image, one matrix product per image is too thin: oneDNN's conv, which multiplies
# the whole batch at once, is faster (1024 -> 2048 channels at 7x7: 0.84-0.87x in inference)
_MIN_MATMUL_PIXELS = 64


def matmul_projection_pays(height: int, width: int, sh: int, sw: int) -> bool:
    """Whether a strided 1x1 projection of an input of ``height`` x ``width`` runs as ``_SubsampledConv1x1`` on CPU:
    its output must have at least ``_MIN_MATMUL_PIXELS`` pixels per image."""
    return -(-height // sh) * -(-width // sw) >= _MIN_MATMUL_PIXELS


class _SubsampledConv1x1(torch.autograd.Function):
    """A strided 1x1 conv of an NCHW CPU tensor as one batched matrix product of the subsampled input:
    out[b] = W @ x[b, :, ::sh, ::sw], with a backward that writes x's sparse gradient with one zero-fill and one
    strided copy (autograd's two slice backwards allocate and fill twice). It saves x itself, which is alive anyway,
    and subsamples it again in backward, so it keeps no extra activation for backward."""

    @staticmethod
    def forward(ctx, x, weight, sh: int, sw: int):
        ctx.save_for_backward(x, weight)
        ctx.strides = (sh, sw)
        xs = x[:, :, ::sh, ::sw]
        b, c, h, w = xs.shape
        o = weight.shape[0]
        # bmm of the broadcast weight: torch.matmul would fold or transpose its operands, with copies
        out = torch.bmm(weight.detach().reshape(o, c).expand(b, o, c), xs.reshape(b, c, h * w))
        return out.view(b, o, h, w)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        if not torch.is_grad_enabled():  # no double backward recorded: plain tensors take the fastest paths
            x, weight = x.detach(), weight.detach()
        sh, sw = ctx.strides
        xs = x[:, :, ::sh, ::sw]
        b, c, h, w = xs.shape
        o = weight.shape[0]
        g3 = g.reshape(b, o, h * w)
        g_x = g_w = None
        if ctx.needs_input_grad[0]:
            g_x = g.new_zeros(x.shape)
            g_x[:, :, ::sh, ::sw] = torch.bmm(weight.reshape(o, c).t().expand(b, c, o), g3).view(b, c, h, w)
        if ctx.needs_input_grad[1]:
            g_w = torch.bmm(g3, xs.reshape(b, c, h * w).transpose(1, 2)).sum(0).view_as(weight)
        return g_x, g_w, None, None


def plain_conv(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` that nothing watches or changes, so that code may apply its weight
    without calling it: no forward or backward hooks (its own or global ones: pruning, legacy spectral norm,
    activation recorders, FLOP counters), no parametrization, and not a subclass (QAT, adapters)."""
    return type(conv) is nn.Conv2d and not parametrize.is_parametrized(conv) and unwatched(conv)


def unwatched(module: nn.Module) -> bool:
    """Whether no forward or backward hook, its own or a global one, would see ``module`` called."""
    own = (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks, module._backward_pre_hooks)
    everyone = (getattr(_module_hooks, name, None) for name in _GLOBAL_HOOKS)
    return not any(own) and not any(everyone)


# torch's module-wide hooks (nn.modules.module.register_module_forward_hook and the like), read, never changed
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


class Projection(nn.Module):
    """1x1 conv that brings a state to a block's output shape, optionally pre-activated by its own BN-ReLU.

    A strided 1x1 conv reads only every ``stride``-th pixel, and oneDNN's strided NCHW kernels pay for the whole
    input. In eager mode on CPU (float32/64, NCHW, no autocast) it runs as ``_SubsampledConv1x1``, one matrix
    product of the subsampled input per image, where the output has at least 8x8 pixels. On an AVX-512 Xeon
    (``benchmarks/bench_projection.py``, time of the strided conv / this form) that is 1.8-2.0x in inference and
    1.8-2.2x in training at the CIFAR shapes, 1.1-1.3x / 1.2-1.9x at ResNet-50's 28x28 and 14x14 outputs; at 7x7
    (0.84-0.87x / 0.94-0.96x) the conv stays. Elsewhere in eager training (CUDA, autocast, small outputs) the conv
    runs on the subsampled input, which saves oneDNN's reorder of the whole input. The strided conv stays where it is
    the better one: channels-last tensors and torch.compile (compiled preresnet20_cifar trained 17% slower with the
    subsampled form); JIT and FX traces record it too.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, norm_act: bool = False, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.norm = nn.BatchNorm2d(in_chs, **dd) if norm_act else None
        self.conv = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = F.relu(self.norm(x), inplace=True)
        sh, sw = self.conv.stride
        if sh > 1 or sw > 1:
            if torch.jit.is_scripting():
                if torch.is_grad_enabled() and x.is_contiguous():
                    return F.conv2d(x[:, :, ::sh, ::sw], self.conv.weight, self.conv.bias)
            else:
                return self._strided_python(x, sh, sw)
        return self.conv(x)

    @torch.jit.unused
    def _strided_python(self, x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
        # compiled and traced graphs keep the strided conv (an FX trace cannot branch on its input's layout anyway);
        # so does a conv that something watches or changes (hooks, pruning, spectral norm, parametrizations,
        # a QAT or adapter class): the faster forms below read its weight without calling it
        if not eager() or not x.is_contiguous() or not plain_conv(self.conv):
            return self.conv(x)
        if (
            x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
            and self.conv.bias is None
            and not torch.is_autocast_enabled("cpu")
            and matmul_projection_pays(x.shape[-2], x.shape[-1], sh, sw)
        ):
            return _SubsampledConv1x1.apply(x, self.conv.weight, sh, sw)
        if torch.is_grad_enabled():
            return F.conv2d(x[:, :, ::sh, ::sw], self.conv.weight, self.conv.bias)
        return self.conv(x)


def conv3x3(in_chs: int, out_chs: int, stride: int = 1, dilation: int = 1, device=None, dtype=None) -> nn.Conv2d:
    """A bias-free 3x3 conv padded to keep the size (divided by the stride) at any dilation."""
    return nn.Conv2d(
        in_chs, out_chs, 3, stride=stride, padding=dilation, dilation=dilation, bias=False, device=device, dtype=dtype
    )


class PreActBlock(nn.Module):
    """A pre-activation residual block that hands (x_{n+1}, x_n, x_{n-1}) to the next one.

    The branch F starts with relu(bn1(x)); ``update`` (from the scheme) combines F(x_n) with the (projected)
    history. Subclasses define the rest of the branch in ``residual``.
    """

    def __init__(
        self,
        update: nn.Module,
        shortcut: Projection | None,
        shortcut_on_preact: bool,
        proj_last: Projection | None,
        proj_llast: Projection | None,
        history: int,
        reads: int = 1,
        pool: nn.Module | None = None,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.update = update
        self.shortcut = shortcut
        self.shortcut_on_preact = shortcut_on_preact
        self.proj_last = proj_last
        self.proj_llast = proj_llast
        self.history = history
        self.reads = reads  # how many history slots the update reads: they are the ones projected / pooled
        self.pool = pool  # downsampling layer shared by the branch and every slot it reads (None: strided convs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        """The branch F after relu(bn1(x)): ``last_conv()(branch_body(pre))``."""
        raise NotImplementedError

    def branch_body(self, pre: torch.Tensor) -> torch.Tensor:
        """The branch up to its last conv: that conv's input."""
        raise NotImplementedError

    @torch.jit.unused
    def last_conv(self) -> nn.Module | None:
        """The branch's last conv (None: a subclass that does not split its branch, which ``_folded_branch`` then
        leaves as it is)."""
        return None

    def forward(
        self,
        x: torch.Tensor,
        last: torch.Tensor,
        llast: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pre = F.relu(self.bn1(x), inplace=True)  # BN's backward does not need its output
        folded: torch.Tensor | None = None
        if not torch.jit.is_scripting():
            folded = self._folded_branch(pre)
        f = self.drop_path(self.residual(pre)) if folded is None else folded
        x_slot, last, llast = self.history_terms(x, pre, last, llast)
        if torch.jit.is_scripting():
            out = self.update(f, x_slot, last, llast)
        else:
            out = self._combine(f, folded, x_slot, last, llast)
        if self.history == 1:  # _HISTORY_SHIFT (literals: TorchScript cannot read module globals)
            return out, x_slot, last
        if self.history == 2:  # _HISTORY_SHIFT_RAW
            return out, x, last
        if self.history == 3:  # _HISTORY_RESET
            return out, x_slot, x_slot
        return out, out, out  # no history kept: nothing extra stays alive

    def history_terms(
        self, x: torch.Tensor, pre: torch.Tensor, last: torch.Tensor, llast: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The terms the update combines with F(x_n): x_n (through the shortcut, which reads ``pre`` = relu(bn1(x_n))
        or x_n), x_{n-1} and x_{n-2}, projected and pooled to the block's output shape."""
        x_slot = x
        if self.shortcut is not None:
            x_slot = self.shortcut(pre) if self.shortcut_on_preact else self.shortcut(x)
        if self.proj_last is not None:
            last = self.proj_last(last)
        if self.proj_llast is not None:
            llast = self.proj_llast(llast)
        if self.pool is not None:
            x_slot = self.pool(x_slot)
            if self.reads >= 2:
                last = self.pool(last)
            if self.reads >= 3:
                llast = self.pool(llast)
        return x_slot, last, llast

    @torch.jit.unused
    def _folded_branch(self, pre: torch.Tensor) -> torch.Tensor | None:
        """h b0 F(x_n) as a fresh tensor, the constant folded into the last conv's weight, where the update will add
        its history terms into it in place (``_combine``); None where the plain path runs.

        Op by op, ZeroSNet's fixed update h b0 f + a0 x + a1 x_{n-1} + a2 x_{n-2} is a multiply and three additions
        into a new tensor; scaling the (small) weight instead and adding into the conv's output leaves three
        additions and no new tensor (``benchmarks/profile_multistep.py --ablate``). In training only a coefficient
        of 1 (Euler's f + x) folds: a scaled weight would stay saved for backward. It runs only where nothing can
        tell: the conv, the update and the drop path are plain modules that no hook watches (a hook sees F(x_n),
        never h b0 F(x_n) or the sum written into it), there is no drop path, the code runs eagerly (compilers fuse
        the plain ops themselves), and the update does not run as one Triton kernel (CUDA), which does the whole
        combination in one pass (``update.branch_scale``)."""
        if not eager():  # first: a trace must not reach the checks below
            return None
        update, conv = self.update, self.last_conv()
        if conv is None or not hasattr(update, "branch_scale") or not isinstance(self.drop_path, nn.Identity):
            return None
        if not unwatched(update) or not unwatched(self.drop_path) or not plain_conv(conv) or conv.bias is not None:
            return None
        scale = update.branch_scale(pre)
        if scale is None or (scale != 1.0 and self.training and torch.is_grad_enabled()):
            # in training the scaled weight would stay saved for backward (a weight-sized tensor per block); an eval
            # forward folds with gradients on or off alike (the same bits)
            return None
        weight = conv.weight if scale == 1.0 else conv.weight * scale
        return conv._conv_forward(self.branch_body(pre), weight, None)

    @torch.jit.unused
    def _combine(self, f: torch.Tensor, folded: torch.Tensor | None, x: torch.Tensor, last, llast) -> torch.Tensor:
        """The update: called as a module, or its history terms added into the folded branch output."""
        if folded is None:
            return self.update(f, x, last, llast)
        return self.update.accumulate_(folded, x, last, llast)


class PreActBasic(PreActBlock):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3; ``dilation`` gives the two convs' dilations."""

    def __init__(self, in_chs: int, width: int, stride: int, dilation=(1, 1), device=None, dtype=None, **kwargs: Any):
        super().__init__(**kwargs)
        dd = dict(device=device, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(in_chs, **dd)
        self.conv1 = conv3x3(in_chs, width, stride, dilation[0], **dd)
        self.bn2 = nn.BatchNorm2d(width, **dd)
        self.conv2 = conv3x3(width, width, 1, dilation[1], **dd)

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.branch_body(pre))

    def branch_body(self, pre: torch.Tensor) -> torch.Tensor:
        out = self.conv1(pre)
        if self.pool is not None:
            out = self.pool(out)
        return F.relu(self.bn2(out), inplace=True)

    @torch.jit.unused
    def last_conv(self) -> nn.Module:
        return self.conv2


class PreActBottleneck(PreActBlock):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1 (expansion 4). Its one 3x3 conv takes the
    first of the two ``dilation`` values."""

    def __init__(self, in_chs: int, width: int, stride: int, dilation=(1, 1), device=None, dtype=None, **kwargs: Any):
        super().__init__(**kwargs)
        dd = dict(device=device, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(in_chs, **dd)
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(width, **dd)
        self.conv2 = conv3x3(width, width, stride, dilation[0], **dd)
        self.bn3 = nn.BatchNorm2d(width, **dd)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False, **dd)

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.branch_body(pre))

    def branch_body(self, pre: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn2(self.conv1(pre)), inplace=True))
        if self.pool is not None:
            out = self.pool(out)
        return F.relu(self.bn3(out), inplace=True)

    @torch.jit.unused
    def last_conv(self) -> nn.Module:
        return self.conv3


class MultistepStage(nn.Sequential):
    """The blocks of one resolution; carries the history triple through them."""

    def __init__(self, *blocks: nn.Module):
        super().__init__(*blocks)
        self.grad_checkpointing = False

    def forward(
        self,
        x: torch.Tensor,
        last: torch.Tensor,
        llast: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for block in self:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x, last, llast = checkpoint(block, x, last, llast)
            else:
                x, last, llast = block(x, last, llast)
        return x, last, llast


def check_skeleton(net: Any, shortcuts: tuple[str, ...]) -> None:
    """The checks every skeleton config shares: block and stem kind, shortcut kind, one width per stage."""
    if net.block not in ("basic", "bottleneck"):
        raise ValueError(f"block must be 'basic' or 'bottleneck', got {net.block!r}.")
    if net.stem not in ("cifar", "imagenet"):
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {net.stem!r}.")
    if net.shortcut not in shortcuts:
        names = ", ".join(repr(s) for s in shortcuts[:-1]) + f" or {shortcuts[-1]!r}"
        raise ValueError(f"shortcut must be {names}, got {net.shortcut!r}.")
    if len(net.layers) != len(net.widths) or min(net.layers) < 1:
        raise ValueError(f"layers {net.layers} must give at least one block for each of the widths {net.widths}.")


def check_downsample(downsample: Any) -> None:
    """The downsampling of a network's stages: 'conv' (strided convs) or a layer of ``DOWNSAMPLE_LAYERS``."""
    if downsample not in ("conv",) + tuple(sorted(DOWNSAMPLE_LAYERS)):
        raise ValueError(f"downsample must be 'conv', 'spectral', 'subsample' or 'diffstride', got {downsample!r}.")


def default_stage_strides(num_stages: int) -> tuple[int, ...]:
    """The stride of each stage of the skeletons here: 1, then 2."""
    return (1,) + (2,) * (num_stages - 1)


def check_stage_strides(strides: Any, num_stages: int, downsample: str, what: str = "this network") -> tuple:
    """The ``strides`` model argument (the stride of each stage), as a tuple: one finite number >= 1 per stage,
    fractional ones only with downsample='diffstride' (the initial values of its learnable strides).

    Raises:
        ValueError: ``strides`` is not a sequence (a TypeError of tuple() before), has the wrong length, or holds
            a value that is no finite number >= 1 (a string or None failed in a comparison, nan / inf in int(), a
            bool passed as the stride 0 or 1), or a fractional stride without DiffStride.
    """
    example = default_stage_strides(num_stages)
    if not isinstance(strides, (tuple, list)):
        raise ValueError(
            f"strides takes one stride per stage of {what} ({num_stages} stages), e.g. {example}; got {strides!r}."
        )
    values = [finite_number(s) for s in strides]
    if len(values) != num_stages or None in values or min(values) < 1:
        raise ValueError(
            f"strides {tuple(strides)} must give one stride >= 1 for each of the {num_stages} stages (finite "
            f"numbers, e.g. {example})."
        )
    if downsample != "diffstride" and any(float(s) != int(s) for s in values):
        raise ValueError(
            f"fractional strides {tuple(strides)} need downsample='diffstride'; strided convs, spectral pooling "
            f"and subsampling take whole strides."
        )
    return tuple(strides)


def check_stem_stride(stem_stride: Any, downsample: str, what: str) -> None:
    """``stem_stride`` is the initial stride of the DiffStride layer after the stem, which only
    downsample='diffstride' has: elsewhere it was silently ignored."""
    if stem_stride is not None and downsample != "diffstride":
        raise ValueError(
            f"stem_stride={stem_stride!r} is the initial stride of the DiffStride layer after the stem, which only "
            f"downsample='diffstride' has ({what} downsamples with {downsample!r}); add "
            f"downsample='diffstride' or leave stem_stride out."
        )


POOL_TYPES = ("", "avg", "max", "avgmax", "catavgmax", "fast", "fastavg", "fastmax", "fastavgmax", "fastcatavgmax")


def check_model_args(in_chans: Any, drop_rate: Any, drop_path_rate: Any) -> None:
    """The input channels and the two dropout rates every network takes: a rate outside [0, 1) built a network that
    either never dropped (a negative one) or failed in its first training forward (``bernoulli_ expects p in
    [0, 1]``), and in_chans below 1 failed in the stem conv.

    Raises:
        ValueError: what was given and the range it must lie in.
    """
    if isinstance(in_chans, bool) or not isinstance(in_chans, numbers.Integral) or in_chans < 1:
        raise ValueError(f"in_chans is the number of input image channels, an int >= 1; got {in_chans!r}.")
    for name, rate in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)):
        value = finite_number(rate)
        if value is None or not 0.0 <= value < 1.0:
            what = "dropout before the classifier" if name == "drop_rate" else "the stochastic depth of the last block"
            raise ValueError(f"{name} is {what}, a probability in [0, 1); got {rate!r}. 0 turns it off.")


def check_step_size_fits(tau: float, given: Any, dtype: Any, default: str) -> None:
    """A step size tau that the weights' dtype cannot hold was 0 there (the branches silently gone) or inf (NaN
    logits, or an overflow error in the first forward).

    Raises:
        ValueError: the range the dtype holds; ``default``: how to get the default tau.
    """
    float_dtype = dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.get_default_dtype()
    info = torch.finfo(float_dtype)
    if not info.tiny <= tau <= info.max:
        low = tau < info.tiny
        raise ValueError(
            f"tau={given!r} is {'below' if low else 'above'} what the model's {float_dtype} holds ({info.tiny:.3g} "
            f"to {info.max:.3g}) and would {'underflow to 0' if low else 'be inf'} there: pass a tau in that "
            f"range, or {default}."
        )


def scheme_values_readable(model: nn.Module) -> None:
    """The scheme's trainable scalars hold values: a network built on the meta device has none to report until it
    is materialised (``Tensor.item() cannot be called on meta tensors`` before).

    Raises:
        ValueError: which parameter is a placeholder, and how to give it values.
    """
    for name, p in model.named_parameters():
        if p.ndim == 0 and p.is_meta:
            raise ValueError(
                f"{name} is on the meta device and holds no value yet: materialise the network first "
                "(model.to_empty(device='cpu') and load_state_dict, or timm.create_model without the meta device)."
            )


def check_head_args(num_classes: Any, pool_type: Any) -> None:
    """The classifier's arguments, for the constructor and ``reset_classifier`` alike (timm's pooling asserted on
    an unknown pool type, and global_pool='' with classes failed at the first forward in a matmul).

    Raises:
        ValueError: what was given and what to pass instead.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 0:
        raise ValueError(
            f"num_classes is the classifier's number of outputs, an int >= 0 (0: no classifier); got {num_classes!r}."
        )
    if not isinstance(pool_type, str) or pool_type not in POOL_TYPES:  # lower case: timm's feat_mult() compares so
        raise ValueError(
            f"global_pool={pool_type!r} is no pooling of timm's: pass one of {', '.join(map(repr, POOL_TYPES))}."
        )
    if not pool_type and num_classes:
        raise ValueError(
            f"global_pool='' leaves the feature map unpooled, and a classifier of {num_classes} classes needs pooled "
            f"features: pass a pool ('avg', ...) or num_classes=0 for the unpooled map."
        )


def stage_dilations(
    stem_reduction: int, strides: tuple[float, ...], output_stride: int | None, what: str = "this network"
) -> list[tuple[int, int, int]]:
    """Per stage (stride, first dilation, dilation) for ``output_stride``, timm's convention: once the reduction has
    reached ``output_stride``, a stage keeps the resolution and dilates its 3x3 convs by what its stride would have
    been; the first conv of such a stage still has the previous stage's dilation. None keeps every stride.

    Raises:
        ValueError: ``output_stride`` is not a reduction the network reaches (nor at least its final reduction).
    """
    if output_stride is None:
        return [(s, 1, 1) for s in strides]
    reachable = [stem_reduction]
    for s in strides:
        reachable.append(reachable[-1] * s)
    if (
        isinstance(output_stride, bool)
        or not isinstance(output_stride, numbers.Integral)
        or (output_stride not in reachable and output_stride < reachable[-1])
    ):
        levels = ", ".join(str(r) for r in dict.fromkeys(reachable))
        raise ValueError(
            f"output_stride={output_stride!r}: {what} reaches the reductions {levels}; pass one of them (the stages "
            f"after it are dilated instead of strided) or one >= {reachable[-1]} (no dilation), or leave it unset."
        )
    if output_stride >= reachable[-1]:  # nothing to dilate: the strides as they are (int() cut a fractional one)
        return [(s, 1, 1) for s in strides]
    out, reduction, dilation, output_stride = [], stem_reduction, 1, int(output_stride)
    for s in strides:
        first = dilation
        if reduction >= output_stride:
            dilation *= int(s)
            s = 1
        reduction *= s
        out.append((int(s), first, dilation))
    return out


def _autocast_casts(x: torch.Tensor) -> bool:
    """Whether autocast casts ``x`` to the conv's dtype itself: it is on for ``x``'s device, and ``x`` holds floats
    other than float64 (which autocast leaves as they are)."""
    return x.is_floating_point() and x.dtype != torch.float64 and torch.is_autocast_enabled(x.device.type)


class ResNetHeadMixin:
    """What every residual network of this package shares: weight init, the classifier head, grad checkpointing,
    pruning to the intermediate layers.

    Expects ``stages`` (modules with a ``grad_checkpointing`` flag), ``num_features``, ``num_classes``,
    ``drop_rate``, ``feature_info`` and ``has_stem_level`` (the stem's output is feature level 0, then ``maxpool``);
    ``_make_head`` builds ``global_pool`` and ``fc``.
    """

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """The classifier, or with ``name_only`` its attribute name, as timm's ResNet."""
        return "fc" if name_only else self.fc

    def _make_head(self, num_classes: int, pool_type: str, device=None, dtype=None) -> None:
        """The pool and classifier; ``head_hidden_size`` is the width of the pooled features (twice
        ``num_features`` for a concatenating pool such as 'catavgmax'), as in timm's ResNet."""
        check_head_args(num_classes, pool_type)
        self.global_pool, self.fc = create_classifier(
            self.num_features, num_classes, pool_type=pool_type, device=device, dtype=dtype
        )
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None):
        ref = next(self.parameters())
        pool_type = global_pool if global_pool is not None else self.global_pool.pool_type
        self._make_head(num_classes, pool_type, device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    def prune_intermediate_layers(
        self,
        indices: int | list[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages (and final norm / head) that the requested intermediates do not need. The levels left
        are those up to the last one asked for: forward_intermediates then counts (and checks) its indices by them,
        as timm's models count their remaining blocks."""
        indices = check_feature_indices(self.num_feature_levels, indices)
        take_indices, max_index = feature_take_indices(self.num_feature_levels, indices)
        keep = max(max_index - int(self.has_stem_level) + 1, 0)
        prune_end = keep < len(self.stages)
        self.stages = self.stages[:keep]
        self._stages_pruned(drop_norm=prune_norm or prune_end)
        if self.has_stem_level and max_index == 0:
            # forward_features then ends at the stem's feature level (before the max-pool), as timm's ResNet
            self.maxpool = nn.Identity()
            if getattr(self, "stem_pool", None) is not None:
                self.stem_pool = None
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        # a pruned level asked for gave no map and no error ([2] and [-1] after pruning to [0, 1])
        self.num_feature_levels = max_index + 1
        return take_indices

    def _stages_pruned(self, drop_norm: bool) -> None:
        """Called by ``prune_intermediate_layers`` once ``stages`` is cut: update what depends on the stages."""

    @torch.jit.unused
    def _check_images(self, x: torch.Tensor) -> None:
        """Refuse an input the stem would misread or fail on deep inside torch: not a tensor, not an (N, C, H, W)
        batch (one (C, H, W) image passed conv2d and failed in BatchNorm), integer pixels ("expected scalar type
        Byte but found Float"), channels or a float dtype other than the first conv's. One cheap test in the hot
        path; compiled, traced and torch.func-transformed graphs (whose tensors show per-sample shapes) keep torch's
        own checks."""
        conv = self.conv1
        # the stored weight: a parametrized one (weight norm, ...) would be computed again just to read its dtype
        weight = getattr(conv, "_parameters", {}).get("weight")
        chans = getattr(conv, "in_channels", None)
        if (
            isinstance(x, torch.Tensor)
            and x.ndim == 4
            and x.is_floating_point()
            and (chans is None or x.shape[1] == chans)
            and (weight is None or x.dtype == weight.dtype)
        ):
            return
        if not eager() or (isinstance(x, torch.Tensor) and _autocast_casts(x)):
            return
        chans = chans if chans is not None else self.in_chans
        takes = f"{self._arch()} takes a float batch of images of shape (N, {chans}, H, W)"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{takes}; got an object of type {type(x).__name__}: convert it with torch.as_tensor(x).")
        shape = tuple(x.shape)
        if x.ndim != 4:
            fix = "add the batch dimension, x.unsqueeze(0)" if x.ndim == 3 else "stack the images into one batch"
            raise ValueError(f"{takes}; got a tensor of shape {shape}: {fix}.")
        if not x.is_floating_point():
            raise TypeError(
                f"{takes}; got {x.dtype} pixels: convert and normalise them as the model was trained (x.float() / "
                f"255, then the pretrained_cfg's mean and std; timm.data.create_transform does both)."
            )
        if x.shape[1] != chans:
            raise ValueError(
                f"{takes}; got {x.shape[1]} channels (shape {shape}): convert the images (grayscale to RGB: "
                f"x.expand(-1, 3, -1, -1)) or build the model with in_chans={x.shape[1]}."
            )
        autocast = "" if x.dtype == torch.float64 else " or run it under torch.autocast"  # which keeps float64
        raise TypeError(
            f"{takes}; got {x.dtype} but its weights are {weight.dtype}: pass x.to({weight.dtype}) or convert the "
            f"model (model.to({x.dtype})){autocast}."
        )

    @torch.jit.unused
    def _check_features(self, x: torch.Tensor) -> None:
        """Refuse features that are no unpooled (N, num_features, H, W) map: ``forward_head`` pools them itself, so
        already pooled (N, C) features were pooled again into a (1, 1) matrix (a matmul error, or with
        num_classes=0 a silently wrong result)."""
        if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] == self.num_features:
            return
        if not eager():
            return
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"forward_head takes the unpooled feature map of forward_features, shape (N, {self.num_features}, H, W), "
            f"and pools it itself; got {shape}. Pass model.forward_features(x); to classify features pooled already, "
            f"call model.get_classifier() on them."
        )

    @torch.jit.unused
    def _refuse_output_fmt(self, output_fmt: str) -> None:
        """forward_intermediates' error for any object (None was a str + None TypeError in the check)."""
        raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}: leave it out, and permute the maps for NHWC.")

    @torch.jit.unused
    def _arch(self) -> str:
        cfg = getattr(self, "pretrained_cfg", None) or {}
        return cfg.get("architecture") or type(self).__name__

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not torch.jit.is_scripting():
            self._check_features(x)
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class MultistepResNet(ResNetHeadMixin, nn.Module):
    """A pre-activation residual network whose blocks follow a linear multistep scheme.

    Args:
        net: the skeleton.
        scheme: the update rule (Euler, LM-ResNet's 2-step, ZeroSNet's 3-step).
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input image channels.
        global_pool: pooling type ('avg', 'max', ...; '' for none).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, linearly increasing over blocks (LM-ResNet's linear death rate).
        output_stride: the largest reduction of the features, e.g. 8 or 16 for dense prediction: the later stages
            dilate their 3x3 convs instead of striding (same parameters, so pretrained weights load). None: strided.
        device: device of every parameter.
        dtype: dtype of every parameter.
    """

    def __init__(
        self,
        net: NetCfg,
        scheme: Scheme,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        output_stride: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        check_skeleton(net, shortcuts=("norm_act", "preact", "conv"))
        check_model_args(in_chans, drop_rate, drop_path_rate)
        check_step_size_fits(scheme.step_size, scheme.step_size, dtype, "leave tau out for the default 1")
        check_downsample(net.downsample)
        check_stage_strides(net.stage_strides, len(net.layers), net.downsample)
        if output_stride is not None and net.downsample == "diffstride":
            raise ValueError(
                f"output_stride={output_stride!r} cannot be used with downsample='diffstride': DiffStride learns its "
                f"strides, so there is no fixed reduction to stop at. Leave output_stride unset, or use "
                f"downsample='conv' / 'spectral' / 'subsample'."
            )
        self.net = net
        self.scheme = scheme
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        # stem
        self.conv1 = nn.Conv2d(
            in_chans, net.stem_width, *((7, 2, 3) if net.stem == "imagenet" else (3, 1, 1)), bias=False, **dd
        )
        self.has_stem_level = net.stem == "imagenet"
        if self.has_stem_level:
            self.bn1 = nn.BatchNorm2d(net.stem_width, **dd)
            self.act1 = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.feature_info = [dict(num_chs=net.stem_width, reduction=2, module="act1")]
            reduction = 4
        else:
            self.bn1 = None
            self.feature_info = []
            reduction = 1
        self.stem_pool = None
        if net.downsample == "diffstride":  # the DiffStride authors' network also learns a stride after the stem
            self.stem_pool = DiffStride(net.stem_stride, **dd)
            reduction = reduction * net.stem_stride  # nominal, as the stages' strides: their initial values

        dilations = stage_dilations(
            reduction,
            net.stage_strides,
            output_stride,
            f"this network ({net.stem} stem, stage strides {net.stage_strides})",
        )
        if net.downsample == "spectral" and any(d[0] != s for d, s in zip(dilations, net.stage_strides)):
            raise ValueError(
                f"output_stride={output_stride!r} cannot be used with downsample='spectral' here: a dilated stage "
                f"keeps the resolution, and spectral pooling's low-pass (a crop of the spectrum) has no dilated "
                f"form, so the features would not be the strided network's. Leave output_stride unset (or >= the "
                f"final reduction), or use downsample='conv' / 'subsample'."
            )
        self.stages = nn.ModuleList(self._make_stages(net, scheme, reduction, dilations, drop_path_rate, dd))
        self.num_feature_levels = len(self.feature_info)  # an int for TorchScript (feature_info mixes types)
        self.num_features = self.head_hidden_size = net.widths[-1] * net.expansion
        self.norm = BatchNormAct2d(self.num_features, **dd) if net.final_norm else nn.Identity()
        self._make_head(num_classes, global_pool, **dd)
        self._init_weights()

    def _make_stages(
        self, net: NetCfg, scheme: Scheme, reduction: int, dilations: list, drop_path_rate: float, dd: dict
    ):
        """Build the blocks, tracking the geometry of each history slot to size its projections.

        A geometry is (channels, nominal reduction, downsampling layers passed, reduction); a learnable stride makes
        the spatial size unpredictable, so a slot may only be read behind the same downsampling layers as x_n. The
        nominal reduction ignores ``output_stride``: roles and projections are those of the strided network (the
        same parameters); the last entry, the real reduction, sets the projections' strides.
        """
        block_cls = PreActBottleneck if net.block == "bottleneck" else PreActBasic
        total = sum(net.layers)
        dprs = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        x_geo = (net.stem_width, reduction, 0 if self.stem_pool is None else 1, reduction)
        last_geo = llast_geo = x_geo  # no history yet: start-up steps never read these slots
        self._roles: list[str] = []
        stages = []
        index = 0
        stage_cfgs = zip(net.layers, net.widths, net.stage_strides, dilations)
        for stage_idx, (depth, width, nominal_stride, (stage_stride, first_dilation, dilation)) in enumerate(
            stage_cfgs
        ):
            blocks = []
            for j in range(depth):
                stride = stage_stride if j == 0 else 1
                pooled = j == 0 and net.downsample != "conv" and (net.downsample == "diffstride" or stride != 1)
                # pooled in the strided network (a dilated stage does not pool): the history and the projections
                # follow the strided network, so that both have the same parameters
                pooled_when_strided = pooled or (j == 0 and net.downsample != "conv" and nominal_stride != 1)
                out_geo = (
                    width * net.expansion,
                    x_geo[1] * (nominal_stride if j == 0 else 1),
                    x_geo[2] + int(pooled),
                    x_geo[3] * stride,
                )
                role = scheme.role(index, x_geo[:3] != out_geo[:3])
                self._roles.append(role)

                def project(
                    geo,
                    norm_act=False,
                    slot="x_n",
                    block=index,
                    pooled=pooled_when_strided,
                    out_geo=out_geo,
                    x_geo=x_geo,
                ):
                    if geo[2] != x_geo[2]:
                        raise ValueError(
                            f"block {block} reads history slot {slot} from behind a different downsampling layer "
                            f"than x_n, so their sizes need not agree; use downsample='conv' for this scheme."
                        )
                    if pooled:  # the shared pooling layer does the spatial part; the conv only maps channels
                        return (
                            Projection(geo[0], out_geo[0], 1, norm_act=norm_act, **dd) if geo[0] != out_geo[0] else None
                        )
                    if geo[:3] == out_geo[:3]:
                        return None
                    return Projection(geo[0], out_geo[0], int(out_geo[3] // geo[3]), norm_act=norm_act, **dd)

                if role == ROLE_MULTISTEP:
                    # every slot the scheme reads gets its own bare 1x1 projection (ZeroSNet's P_x, P_l, P_ll)
                    reads = scheme.steps
                    shortcut = project(x_geo)
                    proj_last = project(last_geo, slot="x_{n-1}") if reads >= 2 else None
                    proj_llast = project(llast_geo, slot="x_{n-2}") if reads >= 3 else None
                    update = scheme.make_update(**dd)
                    history = _HISTORY_SHIFT if reads > 1 else _HISTORY_NONE
                else:
                    reads = 1
                    shortcut = project(x_geo, norm_act=net.shortcut == "norm_act")
                    proj_last = proj_llast = None
                    update = EulerUpdate(scheme.step_size)
                    if scheme.steps == 1:
                        history = _HISTORY_NONE
                    elif role == ROLE_RESET:
                        history = _HISTORY_RESET
                    elif index == 0 and net.startup_history_raw and not pooled_when_strided:
                        history = _HISTORY_SHIFT_RAW
                    else:
                        history = _HISTORY_SHIFT
                pool = None
                if pooled:
                    pool = create_downsample(net.downsample, stride, **(dd if net.downsample == "diffstride" else {}))
                blocks.append(
                    block_cls(
                        x_geo[0],
                        width,
                        1 if pooled else int(stride),
                        dilation=(first_dilation if j == 0 else dilation, dilation),
                        update=update,
                        shortcut=shortcut,
                        shortcut_on_preact=net.shortcut == "preact",
                        proj_last=proj_last,
                        proj_llast=proj_llast,
                        history=history,
                        reads=reads,
                        pool=pool,
                        drop_path=dprs[index],
                        **dd,
                    )
                )
                # what the next block receives: projected / pooled slots take the output geometry
                x_slot_geo = x_geo if history == _HISTORY_SHIFT_RAW else out_geo
                if history == _HISTORY_RESET:
                    last_geo = llast_geo = out_geo
                else:
                    llast_geo = out_geo if reads >= 2 and (proj_last is not None or pooled_when_strided) else last_geo
                    last_geo = x_slot_geo
                x_geo = out_geo
                index += 1
            stages.append(MultistepStage(*blocks))
            red = x_geo[3]
            red = int(red) if float(red).is_integer() else red
            self.feature_info.append(dict(num_chs=x_geo[0], reduction=red, module=f"stages.{stage_idx}"))
        return stages

    # ----- timm model interface -----

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(
            stem=r"^conv1|^bn1|^stem_pool",
            blocks=[(r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)", None), (r"^norm", (99999,))],
        )

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Scheme coefficients (lambda, k, tau) are never weight-decayed."""
        return {
            name for name, _ in self.named_parameters() if name.rsplit(".", 1)[-1] in ("lam", "k", "tau", "strides")
        }

    # ----- the scheme, for analysis and logging -----

    @torch.jit.ignore
    def block_coefficients(self) -> list[dict[str, Any]]:
        """Per block: its role and current coefficients a (weights of x_n, x_{n-1}, ...) and b (of F(x_n)).

        b excludes the step size h, which is reported in ``param``; trained lambda / k values are read live, and a
        trained lambda held at the guard (|lambda| <= lam_eps) also reports the lambda used, ``lam_used``.
        """
        scheme_values_readable(self)
        rows = []
        for (name, block), role in zip(self._named_blocks(), self._roles):
            a, b = block.update.coefficients()
            param: dict[str, float] = {"step_size": float(self.scheme.step_size)}
            for pname, p in block.update.named_parameters():
                param[pname] = float(p.detach())
            lam, eps = param.get("lam"), getattr(block.update, "lam_eps", None)
            if lam is not None and eps is not None and abs(lam) <= eps:  # the guard's lambda runs (safe_lam)
                param["lam_used"] = -eps if lam < 0 else eps
            rows.append(dict(block=name, role=role, a=tuple(a), b=tuple(b), param=param))
        return rows

    @torch.jit.ignore
    def scheme_state(self) -> dict[str, float]:
        """The scheme's trainable scalars by parameter name (for per-epoch logging), plus the step size."""
        scheme_values_readable(self)
        state = {"step_size": float(self.scheme.step_size)}
        for name, p in self.named_parameters():
            if p.ndim == 0 and name.rsplit(".", 1)[-1] in ("lam", "k", "tau"):
                state[name] = float(p.detach())
        return state

    def _named_blocks(self):
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage):
                yield f"stages.{i}.{j}", block

    # ----- forward -----

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            self._check_images(x)
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.maxpool(self.act1(self.bn1(x)))
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        last, llast = x, x
        for stage in self.stages:
            x, last, llast = stage(x, last, llast)
        return self.norm(x)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Forward that also returns the state x_n at every stride level (the history stays internal).

        Args:
            x: input images.
            indices: take the last n levels if int, all if None, the listed ones if a sequence.
            norm: apply the final norm to the last level (CIFAR models).
            stop_early: stop after the last level asked for.
            output_fmt: only 'NCHW'.
            intermediates_only: return only the intermediates.
        """
        if output_fmt != "NCHW":
            if not torch.jit.is_scripting():
                self._refuse_output_fmt(output_fmt)
            raise ValueError("output_fmt must be 'NCHW', got '" + output_fmt + "'.")  # TorchScript: no f-string !r
        intermediates = []
        if not torch.jit.is_scripting():
            self._check_images(x)
            indices = check_feature_indices(self.num_feature_levels, indices)
        take_indices, max_index = feature_take_indices(self.num_feature_levels, indices)
        offset = 1 if self.has_stem_level else 0

        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.act1(self.bn1(x))
            if 0 in take_indices:
                intermediates.append(x)
            x = self.maxpool(x)
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        last, llast = x, x
        last_idx = len(self.stages) - 1 + offset
        if torch.jit.is_scripting() or not stop_early:  # TorchScript cannot slice a ModuleList by a variable
            stages = self.stages
        else:
            stages = self.stages[: max_index - offset + 1]
        feat_idx = offset - 1
        for feat_idx, stage in enumerate(stages, start=offset):
            x, last, llast = stage(x, last, llast)
            if feat_idx in take_indices:
                intermediates.append(self.norm(x) if norm and feat_idx == last_idx else x)

        if intermediates_only:
            return intermediates
        if feat_idx == last_idx:
            x = self.norm(x)
        return x, intermediates

    def _stages_pruned(self, drop_norm: bool) -> None:
        if drop_norm:
            self.norm = nn.Identity()


# ----- checkpoints -----

_AUTHOR_PREFIXES = ("_orig_mod.", "module.", "_orig_mod.", "model.")  # either wrapping order, as timm's cleaning


def unwrap_state_dict(state_dict: dict) -> dict:
    """The weights inside a checkpoint dict, chosen as timm's ``load_state_dict`` chooses them from a file (the EMA
    first), so ``pretrained_cfg_overlay=dict(state_dict=...)`` and ``dict(file=...)`` load the same; DataParallel,
    torch.compile and the authors' wrapper prefixes removed."""
    for key in ("state_dict_ema", "model_ema", "state_dict", "model", "net"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break
    out = {}
    for k, v in state_dict.items():
        for prefix in _AUTHOR_PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def _authors_key(key: str, layers: tuple[int, ...]) -> tuple[str | None, str]:
    """Map one key of the authors' code to ours. Returns (our key or None to drop as dead, kind)."""

    def block_name(i: int) -> str:
        for s, n in enumerate(layers):
            if i < n:
                return f"stages.{s}.{i}"
            i -= n
        return f"stages.?.{i}"  # more blocks than the model has: reported as unexpected

    m = re.match(r"^blocks\.(\d+)\.(.*)$", key)  # CIFAR: one flat list of blocks
    if m:
        rest = m.group(2)
        rest = re.sub(r"^downsample_x\.downsample_\.0\.", "shortcut.conv.", rest)
        rest = re.sub(r"^downsample_l\.downsample_\.0\.", "proj_last.conv.", rest)
        rest = re.sub(r"^downsample_ll\.downsample_\.0\.", "proj_llast.conv.", rest)
        if rest == "coe":
            return f"{block_name(int(m.group(1)))}.update.lam", "scalar"
        return f"{block_name(int(m.group(1)))}.{rest}", "tensor"
    m = re.match(r"^ks\.(\d+)$", key)  # LM-ResNet stores k' = 1 - k
    if m:
        return f"{block_name(int(m.group(1)))}.update.k", "one_minus"
    m = re.match(r"^downsample(\d)(\d)?\.downsample\.(\d)\.(.*)$", key)  # CIFAR shared shortcuts
    if m:
        stage = int(m.group(1)) - 1
        if m.group(2) == "2":
            return None, "dead"  # downsample22 / downsample32 are created but never used
        part = "norm" if m.group(3) == "0" else "conv"
        return f"stages.{stage}.0.shortcut.{part}.{m.group(4)}", "tensor"
    m = re.match(r"^layer(\d)\.(\d+)\.(.*)$", key)  # ImageNet
    if m:
        rest = m.group(3)
        rest = re.sub(r"^shortcut(_x)?\.0\.", "shortcut.conv.", rest)
        rest = re.sub(r"^shortcut_l\.0\.", "proj_last.conv.", rest)
        rest = re.sub(r"^shortcut_ll\.0\.", "proj_llast.conv.", rest)
        name = f"stages.{int(m.group(1)) - 1}.{m.group(2)}"
        if rest == "k":
            return f"{name}.update.lam", "scalar"
        return f"{name}.{rest}", "tensor"
    if key.startswith("bn."):
        return "norm." + key[3:], "tensor"
    if key.startswith("linear."):
        return "fc." + key[7:], "tensor"
    return key, "tensor"


def checkpoint_filter_fn(
    state_dict: dict, model: MultistepResNet, features_only: bool = False, strict: bool = True, exact: bool = False
) -> dict:
    """Load our own checkpoints unchanged and the authors' checkpoints (ZeroSNet, LM-ResNet, pre-act baselines).

    The authors' files wrap the weights as {'state_dict': ...} with DataParallel 'module.' prefixes, use other
    names, store LM-ResNet's k as 1 - k, and hold modules their forward never uses (an unused stem BN on CIFAR,
    the bottleneck-only shortcut in basic nets, spare transition shortcuts, lambda / k of Euler blocks). Those are
    dropped. A classifier that timm discards (see ``timm_drops_head``) may be missing or of any size. Anything else
    that does not fit raises an error naming the first missing or unexpected key, unless ``strict`` is False
    (timm's ``pretrained_strict``): then the keys that fit are loaded and timm reports the rest.

    Args:
        features_only: the model is built for ``features_only`` (timm loads it without a head).
        strict: refuse a checkpoint with missing or unexpected keys.
        exact: the caller loads the result strictly into the model as built (not through timm), so its head, if it
            has one, must be filled by the checkpoint's.
    """
    state_dict = unwrap_state_dict(state_dict)
    ours = model.state_dict()
    layers = tuple(len(s) for s in model.stages)
    drop_head = timm_drops_head(model, features_only, exact)
    out = {}
    unexpected = []
    for key, value in state_dict.items():
        new_key, kind = _authors_key(key, layers) if key not in ours else (key, "tensor")
        if new_key is None or discarded_head(new_key, value, ours, model, drop_head):
            continue
        if new_key not in ours:
            if not _is_dead_in_authors_code(key, new_key, ours):
                unexpected.append(key)
            continue
        if kind in ("scalar", "one_minus") and isinstance(value, torch.Tensor):
            value = value.reshape(ours[new_key].shape)
            if kind == "one_minus":
                value = 1.0 - value
        out[new_key] = value
    variants = "family, depth, CIFAR or ImageNet variant, Opt or Tra, model kwargs"
    check_fit(out, ours, unexpected, model, drop_head, strict, variants, exact)
    return out


def timm_drops_head(model: nn.Module, features_only: bool = False, exact: bool = False) -> bool:
    """Whether timm discards the checkpoint's classifier when it loads pretrained weights into ``model``: it loads a
    ``features_only`` model as num_classes=0, and drops the head (loading non-strict) when that differs from the
    pretrained cfg's num_classes. A model built without a head (num_classes=0) has none to fill either; ``exact``
    (a strict load outside timm) keeps every other head."""
    if model.num_classes == 0 or exact:
        return model.num_classes == 0
    cfg = getattr(model, "pretrained_cfg", None) or {}
    loaded = 0 if features_only else model.num_classes
    return loaded != cfg.get("num_classes", loaded)


def _is_classifier(key: str, model: nn.Module) -> bool:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return key.startswith(cfg.get("classifier", "fc") + ".")


def discarded_head(key: str, value: Any, ours: dict, model: nn.Module, drop_head: bool) -> bool:
    """A classifier tensor that timm discards and that would not fit the model's head (one that fits is kept for
    callers that load the filtered dict themselves; timm drops it anyway)."""
    if not (drop_head and _is_classifier(key, model)):
        return False
    return key not in ours or not isinstance(value, torch.Tensor) or value.shape != ours[key].shape


def check_fit(
    out: dict,
    ours: dict,
    unexpected: list,
    model: nn.Module,
    drop_head: bool,
    strict: bool,
    variants: str,
    exact: bool = False,
) -> None:
    """The checks both checkpoint filters end with: under ``strict``, no missing (a discarded head excepted) or
    unexpected key; always, every tensor of the model's shape (``check_shapes``). Non-strict, the unexpected keys
    are logged and ignored, as timm's non-strict load does (timm logs the missing ones). ``exact``: the caller
    loads the result itself (timm's ``pretrained_strict`` does not apply)."""
    missing = [k for k in ours if k not in out and not (drop_head and _is_classifier(k, model))]
    if strict and (unexpected or missing):
        arch = getattr(getattr(model, "pretrained_cfg", None), "get", lambda *_: None)("architecture")
        what = f"first unexpected key '{unexpected[0]}'" if unexpected else f"first missing key '{missing[0]}'"
        raise ValueError(
            f"the checkpoint does not fit {arch or type(model).__name__}: {what} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected in all). Check that the checkpoint was trained for this exact model "
            f"({variants}), "
            + (
                "and build it as it was trained: that --model, with its model kwargs (a run's run.json lists both; "
                "zerosnet-analyze takes the kwargs as --model-kwargs)."
                if exact
                else "or pass pretrained_strict=False to load the keys that fit and leave the rest as built (to "
                "timm.create_model; zerosnet-train takes it as --model-kwargs pretrained_strict=False)."
            )
        )
    if unexpected and not strict:
        _logger.warning(f"Unexpected keys ({', '.join(unexpected)}) ignored while loading pretrained weights.")
    check_shapes(out, ours, model, drop_head)


def check_shapes(state_dict: dict, ours: dict, model: nn.Module, drop_head: bool) -> None:
    """Name the first tensor whose shape does not fit, except where timm adapts it (first conv, a head it drops:
    ``drop_head``, see ``timm_drops_head``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    first_conv = f"{cfg.get('first_conv', 'conv1')}.weight"
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor) or value.shape == ours[key].shape or key == first_conv:
            continue
        if _is_classifier(key, model):
            if drop_head:
                continue
            if value.dim() == 2 and value.shape[0] == ours[key].shape[0]:
                pool = getattr(getattr(model, "global_pool", None), "pool_type", None)
                raise ValueError(
                    f"the checkpoint's classifier '{key}' takes {value.shape[1]} features but the model's takes "
                    f"{ours[key].shape[1]}: the model pools its features differently (global_pool={pool!r}). Build "
                    f"it with the global_pool the checkpoint was trained with (timm's default is 'avg'), or pass a "
                    f"num_classes other than {cfg.get('num_classes')} for a new head."
                )
            raise ValueError(
                f"the checkpoint's classifier '{key}' has shape {tuple(value.shape)} but the model's has "
                f"{tuple(ours[key].shape)}: the checkpoint has {value.shape[0]} classes. To keep its head pass "
                f"num_classes={value.shape[0]} and pretrained_cfg_overlay=dict(num_classes={value.shape[0]}, ...). "
                f"For a new head pass pretrained_cfg_overlay=dict(num_classes={value.shape[0]}, ...) with the "
                f"num_classes you want: timm replaces the head only where num_classes differs from the pretrained "
                f"cfg's ({cfg.get('num_classes')} here)."
            )
        raise ValueError(
            f"the checkpoint's '{key}' has shape {tuple(value.shape)} but the model expects {tuple(ours[key].shape)}; "
            f"check that the checkpoint was trained for this exact model."
        )


def _is_dead_in_authors_code(key: str, new_key: str, ours: dict) -> bool:
    """Modules the authors create but never call: safe to drop when our model has no counterpart."""
    if key.startswith("bn1."):  # CIFAR stem BN
        return True
    if key.startswith("downsample1."):  # bottleneck start-up shortcut, created in basic nets too
        return True
    for suffix in (".update.lam", ".update.k"):
        # lambda / k of an Euler start-up or transition block; but a trained coefficient loaded into a model that
        # has none of its kind (Tra into Opt, LM-ResNet into PreResNet) is a mismatch, not a dead module
        if new_key.endswith(suffix):
            return bool(re.match(r"^stages\.\d+\.\d+\.update\.", new_key)) and any(k.endswith(suffix) for k in ours)
    return False


# ----- building -----


def require_released_weights(variant: str, kwargs: dict) -> None:
    """For ``pretrained=True``: refuse a cfg without weights (instead of random weights), and point a released tag at
    its verified file. Updates ``kwargs['pretrained_cfg_overlay']``."""
    cfg = resolve_pretrained_cfg(
        variant,
        pretrained_cfg=kwargs.get("pretrained_cfg"),
        pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"),
    )
    if not (cfg.has_weights or cfg.state_dict is not None):
        from timm.models import list_pretrained

        tags = list_pretrained(f"{variant}.*")
        raise ReleaseError(
            f"{variant}{'.' + cfg.tag if cfg.tag else ''} has no released weights "
            f"(released tags for it: {', '.join(tags) if tags else 'none yet'}). Train one with "
            f"`zerosnet-train --model {variant} ...` and publish it with `zerosnet-hub export/push`, load a file with "
            f"pretrained_cfg_overlay=dict(file=PATH), or pass pretrained=False."
        )
    file = cfg.file
    local = cfg.source in ("hf-hub", "local-dir")  # timm resolves these itself (a local-dir file is the folder)
    if not local and isinstance(file, (str, os.PathLike)):
        path = Path(file).expanduser()
        if (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{variant}: pretrained_cfg_overlay file {str(file)!r} is a folder of weights with its config.json "
                f"(an export or a Hub snapshot): load it with timm.create_model('local-dir:{file}', pretrained=True), "
                f"which takes its architecture, classes, label names and mean / std from that config.json"
            )
        if not path.is_file():
            # timm's loader raised a FileNotFoundError without a message or a path
            raise FileNotFoundError(
                f"{variant}: pretrained_cfg_overlay file {str(file)!r} is not a file (a relative path is looked for "
                f"in {Path.cwd()}); give the path of the weights file (a .pth / .safetensors checkpoint, e.g. the "
                f"authors')"
            )
        _warn_of_another_folder_cfg(variant, cfg, path)
        # timm reads the overlay's file as given: '~/w.safetensors' ended in its bare FileNotFoundError
        kwargs["pretrained_cfg_overlay"] = {**(kwargs.get("pretrained_cfg_overlay") or {}), "file": str(path)}
    # a released tag: check the local cache / sha256 and say "not pushed yet" rather than a 404 from the Hub
    kwargs["pretrained_cfg_overlay"] = release_weights_overlay(
        cfg, kwargs.get("pretrained_cfg_overlay"), kwargs.get("cache_dir")
    )


def _folder_config(file: Path) -> dict | None:
    """The config.json beside a weights file, where it is an export's (a dict with a ``pretrained_cfg`` dict); None
    where there is none, or it cannot be read."""
    import json

    try:
        config = json.loads((file.parent / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and isinstance(config.get("pretrained_cfg"), dict) else None


def _warn_of_another_folder_cfg(variant: str, cfg: Any, file: Path) -> None:
    """A weights file beside a config.json (an export folder) loads into the pretrained cfg of ``variant``, not the
    folder's: warn when the two disagree on what a user reads from it (classes, label names, normalisation)."""
    import warnings

    folder_cfg = _folder_config(file)
    if folder_cfg is None:
        return
    theirs = {**folder_cfg["pretrained_cfg"], "label_names": folder_cfg.get("label_names")}
    ours = {"label_names": getattr(cfg, "label_names", None), "mean": cfg.mean, "std": cfg.std}
    differ = [k for k, v in ours.items() if theirs.get(k) is not None and list(theirs[k]) != list(v or ())]
    if differ:
        warnings.warn(
            f"{variant}: {file} sits beside a config.json whose {', '.join(differ)} differ from those of the "
            f"pretrained cfg it is loaded with ({variant}{'.' + cfg.tag if cfg.tag else ''}); the model's "
            f"pretrained_cfg keeps the latter. timm.create_model('local-dir:{file.parent}', pretrained=True) takes the "
            f"folder's own.",
            stacklevel=3,
        )


# model arguments that timm adapts the weights to (a new head, a stem for other channels): no other network
_ADAPTED_ARGS = ("num_classes", "in_chans")


def network_options(model_args: Any) -> dict[str, Any]:
    """The model arguments that build another network than the architecture's defaults (``lam``,
    ``downsample``, ...): all but num_classes and in_chans (timm adapts the weights to them), unset ones and timm's
    default global_pool 'avg'. What a weights file needs passed to build its network."""
    if not isinstance(model_args, Mapping):
        return {}
    return {
        k: v
        for k, v in model_args.items()
        if k not in _ADAPTED_ARGS and v is not None and not (k == "global_pool" and v == "avg")
    }


def _recorded_model_args(file: Path) -> tuple[str, dict] | None:
    """The model arguments recorded beside a weights file, and where: the ``model_args`` of the config.json beside it
    (an export), else the ``model_kwargs`` of the run.json of the run (or training state) it is a file of."""
    from ..run_layout import architecture_options, read_run_info

    config = _folder_config(file)
    if config is not None:
        args = config.get("model_args")
        return (str(file.parent / "config.json"), dict(args)) if isinstance(args, dict) else None
    try:
        info = read_run_info(file)
    except ValueError:  # a damaged run.json: the tools that read runs say what is wrong with it
        return None
    if not info or not isinstance(info.get("model_kwargs") or {}, dict):
        return None
    args = architecture_options(info.get("model_kwargs"))
    if isinstance(info.get("global_pool"), str):  # zerosnet-train --gp: recorded beside the family's options
        args["global_pool"] = info["global_pool"]
    return "its run's run.json", args


def _network(model: nn.Module) -> dict[str, Any]:
    """What of a model decides its outputs besides its weights: its skeleton, its scheme (lambda, tau, ...), how it
    downsamples and pools."""
    pool = getattr(getattr(model, "global_pool", None), "pool_type", None)
    convs = tuple((n, m.stride, m.dilation) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    downsample = getattr(model, "downsample", None)  # tau-ResNet's; the other families' is in their net
    return dict(
        net=getattr(model, "net", None),
        scheme=getattr(model, "scheme", None),
        downsample=downsample if isinstance(downsample, str) else None,
        global_pool=pool,
        strides=convs,
    )


def _initial_values(model: nn.Module) -> set[str]:
    """The fields of a model's scheme and skeleton that only set the initial value of a parameter, which a weights
    file overwrites: a trainable lambda's ``lam``, LM-ResNet's ``k_init``, a learnable tau's ``step_size``
    (tau-ResNet without BN), DiffStride's initial ``strides`` / ``stem_stride``."""
    scheme = getattr(model, "scheme", None)
    names = set()
    if isinstance(getattr(scheme, "k_init", None), tuple):
        names.add("k_init")
    if getattr(scheme, "trainable", False):
        names.add("lam")
    if isinstance(getattr(model, "tau", None), nn.Parameter):
        names.add("step_size")
    if any(isinstance(m, DiffStride) for m in model.modules()):
        names |= {"strides", "stem_stride"}
    return names


def _differences(ours: dict, theirs: dict, initial: set[str] = frozenset()) -> list[str]:
    """The entries of two ``_network`` that differ, with the dataclass fields (``lam``, ``downsample``) that do;
    ``initial``: fields that only initialise parameters (``_initial_values``), whose values the weights replace."""
    out = []
    for key in ours:
        a, b = ours[key], theirs[key]
        if a == b:
            continue
        if is_dataclass(a) and type(a) is type(b):
            out += [
                f"{f.name}={getattr(b, f.name)!r} recorded, {getattr(a, f.name)!r} built"
                for f in fields(a)
                if f.name not in initial and getattr(a, f.name) != getattr(b, f.name)
            ]
        elif key == "strides":
            out.append("the strides of its convolutions")
        else:
            out.append(f"{key}={b!r} recorded, {a!r} built")
    return out


def warn_of_other_model_args(model: nn.Module, used: Mapping[str, Any] | None = None) -> None:
    """A weights file loaded with ``pretrained_cfg_overlay=dict(file=...)`` that sits beside a config.json (an export)
    or in a run records the model arguments it was trained with (``lam=-1.5``, ``downsample='diffstride'``): warn,
    naming them, when the model being built is another network than those arguments build (a fixed lambda or tau,
    strides, pooling: the weights load strictly and give other outputs), as for the label names and mean / std
    (``_warn_of_another_folder_cfg``). num_classes and in_chans are left out: timm adapts the weights to them;
    ``used``: the arguments of how the model is used (output_stride), which the recorded network is built with too."""
    import warnings

    cfg = getattr(model, "pretrained_cfg", None) or {}
    file = cfg.get("file")
    if cfg.get("source") in ("hf-hub", "local-dir") or not isinstance(file, (str, os.PathLike)):
        return
    file = Path(file)
    variant = cfg.get("architecture") or type(model).__name__
    recorded = _recorded_model_args(file) if file.is_file() else None
    if recorded is None:
        return
    where, args = recorded
    import timm

    try:
        with torch.device("meta"):
            theirs = timm.create_model(variant, pretrained=False, **{**args, **(used or {})})
    except Exception:  # arguments of another model: the strict load says what does not fit
        return
    differ = _differences(_network(model), _network(theirs), _initial_values(model))
    if not differ:
        return
    call = ", ".join(f"{k}={v!r}" for k, v in network_options(args).items())
    warnings.warn(
        f"{variant}: {file} was trained as another network than the one it is loaded into ({'; '.join(differ)}): "
        f"{where} records its model arguments {args}. The weights load all the same and give other outputs; build "
        f"the model with those arguments: timm.create_model({variant!r}, pretrained=True, "
        f"{call + ', ' if call else ''}pretrained_cfg_overlay=dict(file={str(file)!r}))"
        + (
            f", or load the folder: timm.create_model('local-dir:{file.parent}', pretrained=True)."
            if where.endswith("config.json")
            else "."
        ),
        stacklevel=2,
    )


@contextlib.contextmanager
def unreadable_weights_named(variant: str, pretrained: bool, kwargs: dict) -> Iterator[None]:
    """A weights file that timm's loader cannot read (truncated, corrupt) is named with what to do, as
    ``release.load_weights`` names it, instead of the reader's bare error (safetensors' header error, an
    ``OSError: [Errno 22] Invalid argument`` of torch.load)."""
    try:
        yield
    except (OSError, EOFError, pickle.UnpicklingError, SafetensorError) as e:
        # a missing file, a download or network failure (OSErrors too) is no unreadable file: it stays as it is
        if not pretrained or isinstance(e, FileNotFoundError | ConnectionError | TimeoutError):
            raise
        cfg = resolve_pretrained_cfg(variant, pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
        if cfg.source == "hf-hub" and cfg.hf_hub_id and not isinstance(e, OSError):  # read from the cache
            what = f"the weights of hf-hub:{cfg.hf_hub_id} in the Hugging Face cache"
            again = "delete that repo's folder in the cache (`hf cache rm` / `hf cache scan`) and download it again"
        elif cfg.file and Path(cfg.file).is_file():
            what, again = str(cfg.file), "export, copy or download it again"
        else:
            raise
        raise ReleaseError(
            f"{variant}: {what} cannot be read as weights ({type(e).__name__}: {_first_line(e)}); the file is "
            f"corrupt or truncated: {again}."
        ) from None


# what timm's builder takes itself (the rest of create_model's kwargs goes to the model class); not the ones the
# family sets itself: a user's pretrained_filter_fn was "got multiple values for keyword argument", and model_cfg
# reached the model class as cfg=
_BUILDER_KWARGS = frozenset(inspect.signature(build_model_with_cfg).parameters) - {
    "model_cls",
    "variant",
    "pretrained",
    "kwargs",
    "pretrained_filter_fn",
    "model_cfg",
} | {"features_only", "pruned"}
# taken by the builder with features_only=True only
_FEATURE_KWARGS = frozenset({"out_indices", "feature_cls", "feature_cfg"})


def check_create_kwargs(variant: str, kwargs: dict, model_cls: type, *creators: Callable) -> None:
    """Refuse ``create_model`` kwargs that neither the model class nor timm's builder takes, naming the ones that
    exist (Python's own error names only the first stranger, from inside timm's builder), and the feature wrappers
    that cannot run these networks. ``creators`` are the family's functions between the entrypoint and the builder:
    their keyword arguments are model arguments too.

    Raises:
        TypeError: an argument none of them takes (e.g. timm ResNet's ``drop_block_rate``), or ``out_indices`` /
            ``feature_cls`` without ``features_only=True``, or a ``feature_cfg`` entry the feature wrapper lacks.
        ValueError: a ``feature_cls`` that cannot run these networks (``'list'``, ``'dict'``) or that timm lacks,
            a ``feature_cfg`` option the wrapper would ignore (the getter's ``return_dict`` / ``out_map``), or
            ``pruned=True`` (timm's pruned channel layouts exist for a few of its EfficientNets only).
    """
    if kwargs.get("pruned"):  # timm read timm/models/_pruned/<variant>.txt: a bare FileNotFoundError
        raise ValueError(
            f"pruned=True builds a pruned channel layout that timm ships for a few of its EfficientNets only; "
            f"{variant} has none. Leave pruned out (to shrink a network, pick a smaller depth)."
        )
    taken = set()
    for fn in (model_cls.__init__, *creators):
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                taken.add(name)
    taken -= {"self", "variant", "pretrained", "net", "scheme", "family_creators"}  # the entrypoint sets these
    features_only = bool(kwargs.get("features_only"))
    if not features_only and _FEATURE_KWARGS & set(kwargs):
        given = " and ".join(sorted(_FEATURE_KWARGS & set(kwargs)))
        raise TypeError(f"{given} choose the feature maps of features_only=True: add it, or leave {given} out.")
    if kwargs.get("feature_cfg") is not None:
        user_cfg = kwargs["feature_cfg"]
        if not isinstance(user_cfg, Mapping):
            raise TypeError(f"feature_cfg must be a dict such as dict(out_indices=(1, 2)), got {user_cfg!r}.")
        # as timm's builder: create_model's own out_indices / feature_cls win over the feature_cfg's; checked below
        user_cfg = dict(user_cfg)
        for key in ("out_indices", "feature_cls"):
            if key in user_cfg:
                kwargs.setdefault(key, user_cfg.pop(key))
        kwargs["feature_cfg"] = user_cfg  # the rest (output_fmt, flatten_sequential, ...): getter_feature_cfg
        fmt = user_cfg.get("output_fmt", "NCHW")
        if str(getattr(fmt, "value", fmt)) != "NCHW":  # the getter refused it at the first forward only
            raise ValueError(
                f"feature_cfg output_fmt={fmt!r}: {variant}'s feature maps are NCHW only (timm's hook and fx wrappers "
                "would return them so whatever output_fmt says); leave output_fmt out and permute the maps "
                "(m.permute(0, 2, 3, 1) for NHWC)."
            )
    unknown = sorted(set(kwargs) - taken - _BUILDER_KWARGS - _FEATURE_KWARGS)
    if unknown:
        raise TypeError(
            f"{variant} takes no model argument {', '.join(unknown)}. Its model arguments are "
            f"{', '.join(sorted(taken))}; timm's create_model adds pretrained_cfg, pretrained_cfg_overlay, cache_dir, "
            f"features_only, out_indices and feature_cls. Leave {', '.join(unknown)} out."
        )
    feature_cls = kwargs.get("feature_cls")
    if features_only and feature_cls is not None:
        name = (feature_cls if isinstance(feature_cls, str) else getattr(feature_cls, "__name__", "")).lower()
        if name in ("list", "dict", "featurelistnet", "featuredictnet"):
            raise ValueError(
                f"feature_cls={feature_cls!r}: timm's FeatureListNet / FeatureDictNet call the model's top-level "
                f"modules one after another, and {variant}'s forward is not such a chain (its stages sit in a "
                f"ModuleList). Leave feature_cls out (the default, 'getter', runs forward_intermediates) or pass "
                f"'hook' or 'fx'."
            )
        if isinstance(feature_cls, str) and "hook" not in name and name not in ("getter", "fx"):
            raise ValueError(
                f"feature_cls={feature_cls!r} is not a feature wrapper of timm that runs {variant}: pass 'getter' "
                f"(the default, forward_intermediates), 'hook' or 'fx'."
            )
    if features_only:
        check_feature_cfg(variant, feature_cls, kwargs.get("feature_cfg") or {})


def check_feature_cfg(variant: str, feature_cls: Any, feature_cfg: Mapping) -> None:
    """Refuse ``feature_cfg`` entries that the feature wrapper ``feature_cls`` (None: the getter) does not take (a
    bare ``TypeError`` from inside timm's builder before) or takes and ignores: timm's FeatureGetterNet stores
    ``return_dict`` and ``out_map`` ("WIP, not supported") and returns a list anyway.

    Raises:
        TypeError: an entry the wrapper does not take, naming those it does.
        ValueError: ``return_dict`` / ``out_map`` for the getter, naming the wrapper that honours them.
    """
    name = feature_cls.lower() if isinstance(feature_cls, str) else None
    if feature_cls is None or name == "getter":
        cls = FeatureGetterNet
    elif name is not None:
        cls = FeatureHookNet if "hook" in name else FeatureGraphNet
    elif isinstance(feature_cls, type):
        cls = feature_cls
    else:
        return
    # timm's builder drops these itself for the wrappers that do not take them
    params = inspect.signature(cls.__init__).parameters
    taken = set(params) - {"self", "model", "out_indices"}
    unknown = sorted(set(feature_cfg) - taken - {"flatten_sequential", "no_rewrite"})
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):  # a user's class may take **kwargs
        raise TypeError(
            f"feature_cfg {', '.join(unknown)}: not an option of timm's {cls.__name__}, the feature wrapper of "
            f"{variant} here; it takes out_indices, feature_cls, {', '.join(sorted(taken))}. Leave "
            f"{', '.join(unknown)} out."
        )
    chain = feature_cfg.get("flatten_sequential") or feature_cfg.get("no_rewrite") is False
    if issubclass(cls, FeatureHookNet) and chain:
        # the first forward failed deep in torch: "Module [ModuleList] is missing the required "forward" function"
        given = ", ".join(f"{k}={feature_cfg[k]!r}" for k in ("flatten_sequential", "no_rewrite") if k in feature_cfg)
        raise ValueError(
            f"feature_cfg {given}: timm's {cls.__name__} then calls {variant}'s top-level modules one after another, "
            f"and its forward is not such a chain (its stages sit in a ModuleList). Leave flatten_sequential and "
            f"no_rewrite out: the hook wrapper then runs the whole model and hooks the feature_info modules."
        )
    if issubclass(cls, FeatureGetterNet):
        ignored = [k for k in ("return_dict", "out_map") if feature_cfg.get(k)]
        if ignored:
            raise ValueError(
                f"feature_cfg {', '.join(f'{k}={feature_cfg[k]!r}' for k in ignored)}: timm's {cls.__name__} (the "
                f"getter, the default wrapper, which runs forward_intermediates) ignores it and returns a list. Pass "
                f"feature_cls='hook', which returns a dict (keys from out_map), or leave {', '.join(ignored)} out."
            )


def check_feature_indices(levels: int, indices: Any, what: str = "indices") -> int | list[int] | None:
    """Refuse feature-level indices that select no level or one the network lacks, or that are not integers
    (timm's ``feature_take_indices`` fails on them with ``max()`` of an empty sequence, an assertion or a slice
    error), or that name a level twice (one map came out, and feature_info listed two). ``indices`` follows timm:
    None for every level, an int n for the last n, or a sequence of levels (negative ones count from the end).

    Returns:
        ``indices`` as timm's ``feature_take_indices`` reads them: a Python int, or a list of them (a NumPy integer
        or a one-element tensor as a count fell through its ``isinstance(indices, int)`` into iterating it).

    Raises:
        ValueError: what was given and what the network takes.
    """
    if indices is None:
        return None
    takes = (
        f"{levels} feature levels (0 to {levels - 1}): pass a non-empty list of level indices in that range "
        f"(negative ones count from the end), an int n for the last n levels (1 to {levels}), or None for all"
    )
    count = _level_index(indices)
    if count is not None:
        if not 1 <= count <= levels:
            raise ValueError(f"{what}={indices!r}: the network has {takes}.")
        return count
    items = list(indices) if isinstance(indices, Sequence) and not isinstance(indices, (str, bytes)) else []
    items = [_level_index(i) for i in items]
    if not items or None in items:
        raise ValueError(f"{what}={indices!r}: the network has {takes}.")
    if outside := [i for i in items if not -levels <= i < levels]:
        raise ValueError(f"{what}={indices!r}: no level {', '.join(map(str, outside))}; the network has {takes}.")
    if len({i % levels for i in items}) < len(items):
        raise ValueError(
            f"{what}={indices!r} names a level twice (negative indices count from the end): the network gives each "
            f"level once, so feature_info would list more maps than come out. Name each level once."
        )
    return items


def _level_index(value: Any) -> int | None:
    """``value`` as an int index (a Python or NumPy integer, not a bool), or None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:  # not an integer (a float, a string, a tensor of several elements, ...)
        return None


class FeatureGetter(FeatureGetterNet):
    """timm's FeatureGetterNet (the feature maps of ``forward_intermediates``) with ``set_grad_checkpointing``, which
    timm's FeatureListNet of its ResNets has and FeatureGetterNet lacks."""

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)


def getter_feature_cfg(levels: int, kwargs: dict) -> dict:
    """The builder's ``feature_cfg`` of these networks: FeatureGetter over every level, also for an explicit
    ``feature_cls='getter'`` in ``kwargs`` (replaced there), with the other entries of a ``feature_cfg`` in ``kwargs``
    (taken from there). Refuses an ``out_indices`` of ``kwargs`` that selects
    no level or one the network lacks (``check_feature_indices``), and puts the levels it lists in network order."""
    if isinstance(kwargs.get("feature_cls"), str) and kwargs["feature_cls"].lower() == "getter":
        kwargs["feature_cls"] = FeatureGetter
    feature_cfg = dict(kwargs.pop("feature_cfg", None) or {})  # a user's, its out_indices and feature_cls moved
    if kwargs.get("features_only") and kwargs.get("out_indices") is not None:
        indices = check_feature_indices(levels, kwargs["out_indices"], "out_indices")
        if isinstance(indices, list):
            # the getter and fx wrappers return the maps in network order whatever the order asked, and feature_info
            # listed them as asked: (2, 0) gave the level-0 map first and feature_info.channels() the level-2 width
            # first. The names of out_map (hook, fx) follow their levels
            order = sorted(range(len(indices)), key=lambda j: indices[j] % levels)
            out_map = feature_cfg.get("out_map")
            if isinstance(out_map, Sequence) and not isinstance(out_map, str) and len(out_map) == len(indices):
                feature_cfg["out_map"] = [out_map[j] for j in order]
            indices = [indices[j] for j in order]
        kwargs["out_indices"] = indices
    return dict(feature_cls=FeatureGetter, out_indices=tuple(range(levels)), **feature_cfg)


def pretrained_filter(filter_fn: Callable, kwargs: dict) -> Callable:
    """``filter_fn`` told what timm's builder does with the head and strictness for these ``create_model`` kwargs
    (timm calls a filter with only the state dict and the model). Before it filters a weights file's state dict, the
    model built is checked against the model arguments recorded beside the file (``warn_of_other_model_args``): the
    filter is where the model is complete, whichever family's creator took its arguments."""
    fit = partial(
        filter_fn, features_only=bool(kwargs.get("features_only", False)), strict=kwargs.get("pretrained_strict", True)
    )

    # how the model is used, not trained: the network the recorded arguments build is compared with the same
    used = {k: kwargs[k] for k in ("output_stride",) if kwargs.get(k) is not None}

    def checked_filter(state_dict: dict, model: nn.Module) -> dict:
        warn_of_other_model_args(model, used)
        return fit(state_dict, model)

    return checked_filter


def create_multistep(
    variant: str,
    pretrained: bool,
    net: NetCfg,
    scheme: Scheme,
    /,
    downsample: str | None = None,
    strides: tuple[float, ...] | None = None,
    stem_stride: float | None = None,
    family_creators: tuple[Callable, ...] = (),
    **kwargs: Any,
) -> MultistepResNet:
    """Build a registered variant with timm's builder; refuse ``pretrained=True`` where no weights exist, and model
    arguments nothing takes.

    ``downsample``, ``strides`` and ``stem_stride`` are model arguments of every family built here (ZeroSNet,
    LM-ResNet, PreResNet; the post-activation tau-ResNet takes them as arguments of its class): they replace the
    skeleton's downsampling (see ``NetCfg``), e.g. ``downsample='diffstride', strides=(1, 3, 2, 3)``.
    ``family_creators``: the family's function that called this one, whose keyword arguments (``lam``, ``tau``, ...)
    are model arguments too. The arguments the entrypoint sets are positional-only in the family's creator and here,
    so that a user's ``net=``, ``scheme=`` or ``variant=`` reaches ``check_create_kwargs`` (Python's "got multiple
    values for argument" named no fix).
    """
    if downsample is not None:
        check_downsample(downsample)
    if strides is not None:
        strides = check_stage_strides(strides, len(net.layers), downsample or net.downsample, variant)
    overrides = dict(downsample=downsample, strides=strides, stem_stride=stem_stride)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        net = replace(net, **overrides)
    check_stem_stride(stem_stride, net.downsample, variant)
    check_create_kwargs(variant, kwargs, MultistepResNet, create_multistep, *family_creators)
    if pretrained:
        require_released_weights(variant, kwargs)
    levels = len(net.layers) + (1 if net.stem == "imagenet" else 0)
    feature_cfg = getter_feature_cfg(levels, kwargs)
    with unreadable_weights_named(variant, pretrained, kwargs):
        model = build_model_with_cfg(
            MultistepResNet,
            variant,
            pretrained,
            net=net,
            scheme=scheme,
            pretrained_filter_fn=pretrained_filter(checkpoint_filter_fn, kwargs),
            feature_cfg=feature_cfg,
            **kwargs,
        )
    if overrides or kwargs.get("output_stride") is not None or net.downsample == "diffstride":
        measure_pool_size(model)  # learnable strides: those of the loaded weights, where pretrained
    return model


def measure_pool_size(model: Any) -> None:
    """Set ``pretrained_cfg['pool_size']`` to the size of the model's unpooled features at the cfg's input size, for a
    model whose options changed its strides (downsample, strides, stem_stride, output_stride) or whose learnable
    strides were loaded: the registered value is the default network's at init (TIMM.md: forward_features has
    pool_size at input_size), and a cfg that says otherwise reaches config.json on export. A features_only model
    has no classifier cfg to keep true; a network with learnable strides built on the meta device cannot be
    measured (its sizes follow the strides' values) and keeps the registered value."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(model, ResNetHeadMixin) or not isinstance(cfg, dict) or cfg.get("input_size") is None:
        return
    param = next(model.parameters())
    if param.is_meta and any(isinstance(m, DiffStride) and m.cropping for m in model.modules()):
        return
    _, height, width = cfg["input_size"]
    x = torch.zeros(1, model.in_chans, height, width, device=param.device, dtype=param.dtype)
    training = model.training
    try:
        with torch.no_grad():
            size = tuple(model.eval().forward_features(x).shape[-2:])
    finally:
        model.train(training)
    cfg["pool_size"] = size  # in place: model.default_cfg is the same dict


def cifar_cfg(**kwargs: Any) -> dict[str, Any]:
    """Pretrained cfg of a 32x32 model (CIFAR-10 normalisation, no crop)."""
    return {
        "url": "",
        "num_classes": 10,
        "input_size": (3, 32, 32),
        "pool_size": (8, 8),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2023, 0.1994, 0.2010),
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
        **kwargs,
    }


def imagenet_cfg(**kwargs: Any) -> dict[str, Any]:
    """Pretrained cfg of a 224x224 ImageNet model."""
    return dict(
        url="",
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=0.875,
        interpolation="bilinear",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        first_conv="conv1",
        classifier="fc",
        license="apache-2.0",
        **kwargs,
    )
