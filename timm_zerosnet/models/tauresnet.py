"""tau-ResNet: the original post-activation ResNet whose residual branch is scaled by a small step size tau.

Paper: Zhang, Yu, Yi, Chen, Liu, "Convergence Theory of Learning Over-parameterized ResNet: A Full
Characterization" (arXiv:1903.07120), on the ResNet of He, Zhang, Ren, Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016 (arXiv:1512.03385).

    x_{n+1} = relu(shortcut(x_n) + tau * F(x_n)),   tau = 1 / sqrt(L)

In the ODE view tau is the step size h of forward Euler: the model's ``scheme`` is ``Euler(step_size=tau)``, the
object the stability analysis reads; the ReLU after the sum is the post-activation of the original ResNet. F ends
with a BN whose output tau scales. The default tau is 1/sqrt(L) on CIFAR, L the number of residual blocks (54 for
depth 110), and 2/sqrt(L) on ImageNet with L the largest number of blocks in one stage (the authors' choice).

- With BN, tau is a fixed constant and tau = 1 gives back the plain post-activation ResNet exactly: on CIFAR the
  "option A" ResNet (stride subsampling, BN, zero channels appended), on ImageNet timm's / torchvision's
  ``resnet50``-``152``, whose weights load unchanged through ``checkpoint_filter_fn``.
- ``*_nobn``: every BN removed, Fixup-style scalar biases before and after each conv (initialised at 0), and ONE
  learnable tau shared by all blocks. Its gradient is the average, not the sum, of the blocks' contributions, and
  the biases and tau train at lr/10 (``optimizer_param_groups``).

Authors' code (github.com/dayu11/tau-ResNet) differences: the scalars are 0-d here ((1,) there); the shared tau is
one parameter of the model, not also registered in every block (their state_dict repeats it as ``layerN.i.tau``);
its gradient is divided by L inside the forward instead of by a ``scale_tau_grad()`` call after ``backward()``
(the same for every optimizer); option A pads with ``F.pad`` (theirs concatenates ``zeros_like``, so it only
doubles the width). ``checkpoint_filter_fn`` reads their checkpoints.

``downsample='spectral' | 'subsample' | 'diffstride'`` (ARCHITECTURES.md: DiffStride in any family): a stage's first
block runs its strided conv at stride 1, followed by one downsampling layer (initialised at the stage's stride) that
the shortcut's input goes through too, before the shortcut's 1x1 conv or zero channels (both commute with it). With
'subsample' that is the strided network itself, with the same weights. With 'diffstride' a DiffStride layer follows
the stem too (initialised at ``stem_stride``, default 1), as in the other families. ``strides`` sets the stride of
each stage (fractional initial values with 'diffstride'), as in the other families.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ..layers.checkpointing import checkpoint
from ..layers.diffstride import DiffStride, create_downsample
from ..release import with_released
from ..schemes import Euler, eager, finite_number
from .multistep import (
    ResNetHeadMixin,
    check_create_kwargs,
    check_downsample,
    check_feature_indices,
    check_fit,
    check_model_args,
    check_skeleton,
    check_stage_strides,
    check_stem_stride,
    check_step_size_fits,
    cifar_cfg,
    conv3x3,
    default_stage_strides,
    discarded_head,
    getter_feature_cfg,
    imagenet_cfg,
    measure_pool_size,
    pretrained_filter,
    require_released_weights,
    scheme_values_readable,
    stage_dilations,
    timm_drops_head,
    unreadable_weights_named,
    unwrap_state_dict,
)

__all__ = ["TauNetCfg", "TauResNet", "default_tau", "checkpoint_filter_fn"]

SCALAR_LR_SCALE = 0.1  # the paper trains the Fixup biases and tau at lr/10


@dataclass(frozen=True)
class TauNetCfg:
    """The skeleton of a post-activation ResNet.

    Attributes:
        layers: blocks per stage.
        block: 'basic' (two 3x3 convs) or 'bottleneck' (1x1, 3x3 with the stride, 1x1, expansion 4).
        widths: base width per stage (times 4 for bottleneck).
        stem: 'cifar' (3x3 conv, BN, ReLU) or 'imagenet' (7x7/2 conv, BN, ReLU, 3x3/2 max-pool).
        stem_width: output channels of the stem.
        shortcut: a shape-changing shortcut is 'zero_pad' (option A: subsample, BN, append zero channels) or
            'conv' (1x1 conv with the stride, then BN).
        norm: BatchNorm everywhere (False: the normalisation-free variant with Fixup biases and a learnable tau).
    """

    layers: tuple[int, ...]
    block: str = "basic"
    widths: tuple[int, ...] = (16, 32, 64)
    stem: str = "cifar"
    stem_width: int = 16
    shortcut: str = "zero_pad"
    norm: bool = True

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1


def _cifar(layers: tuple[int, ...], norm: bool = True) -> TauNetCfg:
    return TauNetCfg(layers=tuple(layers), norm=norm)


def _imagenet(layers: tuple[int, ...], norm: bool = True) -> TauNetCfg:
    return TauNetCfg(
        layers=tuple(layers),
        block="bottleneck",
        widths=(64, 128, 256, 512),
        stem="imagenet",
        stem_width=64,
        shortcut="conv",
        norm=norm,
    )


def default_tau(net: TauNetCfg) -> float:
    """The paper's tau: 1/sqrt(all blocks) on CIFAR, 2/sqrt(blocks of the longest stage) on ImageNet."""
    if net.stem == "imagenet":
        return 2.0 / math.sqrt(max(net.layers))
    return 1.0 / math.sqrt(sum(net.layers))


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: keep every stride-th pixel, BN (BN variant only), then append zero channels."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, norm: bool = True, device=None, dtype=None):
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(
                f"shortcut='zero_pad' only appends channels, but a block goes from {in_chs} to {out_chs} channels; "
                "use shortcut='conv', or a stem and widths that do not shrink"
            )
        self.stride = stride
        self.pad = out_chs - in_chs
        self.norm = nn.BatchNorm2d(in_chs, device=device, dtype=dtype) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            x = x[:, :, :: self.stride, :: self.stride]
        else:
            x = self._subsample(x)
        return F.pad(self.norm(x), [0, 0, 0, 0, 0, self.pad])

    @torch.jit.unused
    def _subsample(self, x: torch.Tensor) -> torch.Tensor:
        if eager():
            return x[:, :, :: self.stride, :: self.stride]
        # traced code (torch.export, torch.compile, FX and JIT traces): the same pixels as a 1x1 average pool, whose
        # size floor((H - 1) / s) + 1 is the formula of the branch's strided conv, so that torch.export proves the
        # sum's sizes equal for a dynamic height and width (ceil(H / s) of the slice it could not: "Constraints
        # violated"). Eager code keeps the slice: the pool's backward costs more
        return F.avg_pool2d(x, 1, self.stride)


class ConvShortcut(nn.Module):
    """Projection shortcut: 1x1 conv with the stride, then BN (BN variant only)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, norm: bool = True, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False, **dd)
        self.norm = nn.BatchNorm2d(out_chs, **dd) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def _scalar(device=None, dtype=None) -> nn.Parameter:
    return nn.Parameter(torch.zeros((), device=device, dtype=dtype))


class TauBlock(nn.Module):
    """x_{n+1} = relu(shortcut(x_n) + tau * F(x_n)); subclasses define the branch F.

    tau arrives as a 0-d tensor from the model: one shared (and, without BN, learnable) step size for all blocks.
    """

    def __init__(self, shortcut: nn.Module | None, drop_path: float = 0.0, pool: nn.Module | None = None):
        super().__init__()
        self.shortcut = shortcut
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # the downsampling layer of a transition block with downsample='spectral' / 'subsample' / 'diffstride': the
        # branch's strided conv keeps stride 1 and this one instance follows it, and the shortcut's input goes
        # through it too, so that both paths have the same size (None: strided convs)
        self.pool = pool

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` through the block's downsampling layer (unchanged without one): after the branch's strided conv."""
        if self.pool is not None:
            x = self.pool(x)
        return x

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        shortcut = self.pooled(x)  # before the shortcut's 1x1 conv or zero channels: both commute with the pool
        if self.shortcut is not None:
            shortcut = self.shortcut(shortcut)
        return F.relu(shortcut + self.drop_path(self.branch(x) * tau))


class PostActBasic(TauBlock):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN; ``dilation`` gives the two convs' dilations."""

    def __init__(self, in_chs: int, width: int, stride: int, dilation=(1, 1), device=None, dtype=None, **kwargs: Any):
        super().__init__(**kwargs)
        dd = dict(device=device, dtype=dtype)
        self.conv1 = conv3x3(in_chs, width, stride, dilation[0], **dd)
        self.bn1 = nn.BatchNorm2d(width, **dd)
        self.conv2 = conv3x3(width, width, 1, dilation[1], **dd)
        self.bn2 = nn.BatchNorm2d(width, **dd)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.pooled(self.conv1(x))))))


class PostActBottleneck(TauBlock):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN (expansion 4), as timm's / torchvision's ResNet-50. Its
    one 3x3 conv takes the first of the two ``dilation`` values."""

    def __init__(self, in_chs: int, width: int, stride: int, dilation=(1, 1), device=None, dtype=None, **kwargs: Any):
        super().__init__(**kwargs)
        dd = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(width, **dd)
        self.conv2 = conv3x3(width, width, stride, dilation[0], **dd)
        self.bn2 = nn.BatchNorm2d(width, **dd)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False, **dd)
        self.bn3 = nn.BatchNorm2d(width * 4, **dd)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.pooled(self.conv2(x))))
        return self.bn3(self.conv3(x))


class FixupBasic(TauBlock):
    """No BN: conv2(relu(conv1(x + b1a) + b1b) + b2a) + b2b, four scalar biases initialised at 0."""

    def __init__(self, in_chs: int, width: int, stride: int, dilation=(1, 1), device=None, dtype=None, **kwargs: Any):
        super().__init__(**kwargs)
        dd = dict(device=device, dtype=dtype)
        self.conv1 = conv3x3(in_chs, width, stride, dilation[0], **dd)
        self.conv2 = conv3x3(width, width, 1, dilation[1], **dd)
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (_scalar(**dd) for _ in range(4))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pooled(self.conv1(x + self.bias1a)) + self.bias1b)
        return self.conv2(x + self.bias2a) + self.bias2b


class FixupBottleneck(TauBlock):
    """No BN: the bottleneck with a scalar bias before and after each of its three convs (six, initialised at 0).
    Its one 3x3 conv takes the first of the two ``dilation`` values."""

    def __init__(self, in_chs: int, width: int, stride: int, dilation=(1, 1), device=None, dtype=None, **kwargs: Any):
        super().__init__(**kwargs)
        dd = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False, **dd)
        self.conv2 = conv3x3(width, width, stride, dilation[0], **dd)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False, **dd)
        self.bias1a, self.bias1b, self.bias2a, self.bias2b, self.bias3a, self.bias3b = (_scalar(**dd) for _ in range(6))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        x = F.relu(self.pooled(self.conv2(x + self.bias2a)) + self.bias2b)
        return self.conv3(x + self.bias3a) + self.bias3b


class TauStage(nn.Sequential):
    """The blocks of one resolution, all given the same tau."""

    def __init__(self, *blocks: nn.Module):
        super().__init__(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        for block in self:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(block, x, tau)
            else:
                x = block(x, tau)
        return x


class TauResNet(ResNetHeadMixin, nn.Module):
    """Post-activation ResNet with the residual branch scaled by the Euler step size tau.

    Args:
        net: the skeleton.
        tau: the step size; None gives the paper's default (``default_tau``). Fixed with BN; without BN the initial
            value of the one learnable tau.
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input image channels.
        global_pool: pooling type ('avg', 'max', ...; '' for none).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth on tau * F, linearly increasing over blocks.
        output_stride: the largest reduction of the features (e.g. 8 or 16): the later stages dilate their 3x3 convs
            instead of striding, with the same parameters. None: strided.
        downsample: how a stage's first block downsamples: 'conv' (strided convs, the default), or its branch's conv
            at stride 1 followed by a 'spectral' (fixed spectral pooling), 'subsample' (every stride-th pixel) or
            'diffstride' (learnable strides, initialised at the stage's stride) layer, one instance that the
            shortcut's input goes through too. With 'diffstride' the stem is followed by a DiffStride layer too, as
            in the DiffStride authors' network (initialised at ``stem_stride``).
        strides: the stride of each stage (default 1, then 2); fractional values only with 'diffstride'.
        stem_stride: the initial stride of the DiffStride layer after the stem (default 1; 'diffstride' only).
        device: device of every parameter.
        dtype: dtype of every parameter.
    """

    def __init__(
        self,
        net: TauNetCfg,
        tau: float | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        output_stride: int | None = None,
        downsample: str = "conv",
        strides: tuple[float, ...] | None = None,
        stem_stride: float | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        check_skeleton(net, shortcuts=("zero_pad", "conv"))
        check_model_args(in_chans, drop_rate, drop_path_rate)
        check_downsample(downsample)
        num_stages = len(net.layers)
        strides = (
            default_stage_strides(num_stages)
            if strides is None
            else check_stage_strides(strides, num_stages, downsample)
        )
        check_stem_stride(stem_stride, downsample, "this network")
        self.downsample = downsample
        given, tau = tau, default_tau(net) if tau is None else finite_number(tau)
        if tau is None or tau <= 0:  # text and booleans are no numbers ('big' was a ValueError of float())
            raise ValueError(
                f"tau is the step size and must be a finite number > 0, got {given!r}; None gives the "
                f"default {default_tau(net):.4g}."
            )
        check_step_size_fits(tau, given, dtype, f"None for the default {default_tau(net):.4g}")
        self.net = net
        self.scheme = Euler(step_size=tau)  # without BN: the initial step size; the live one is self.tau
        self.tau_init = tau  # the constant with BN, the learnable tau's initial value without
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        # ONE tau for all blocks, owned here (a single state_dict key); blocks receive it in forward
        if net.norm:
            self.register_parameter("tau", None)
        else:
            self.tau = nn.Parameter(torch.full((), tau, **dd))
        self.tau_grad_scale = 1.0 / sum(net.layers)

        # stem
        self.conv1 = nn.Conv2d(
            in_chans, net.stem_width, *((7, 2, 3) if net.stem == "imagenet" else (3, 1, 1)), bias=False, **dd
        )
        self.bn1 = nn.BatchNorm2d(net.stem_width, **dd) if net.norm else nn.Identity()
        self.act1 = nn.ReLU(inplace=True)
        self.has_stem_level = net.stem == "imagenet"
        if self.has_stem_level:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.feature_info = [dict(num_chs=net.stem_width, reduction=2, module="act1")]
        else:
            self.maxpool = nn.Identity()
            self.feature_info = []
        reduction = 4 if self.has_stem_level else 1
        self.stem_pool = None
        if downsample == "diffstride":  # as the DiffStride authors' network and this package's other families
            initial = 1.0 if stem_stride is None else stem_stride
            self.stem_pool = DiffStride(initial, **dd)
            reduction = reduction * initial  # nominal, as the stages': the initial value

        dilations = stage_dilations(
            reduction, strides, output_stride, f"this network ({net.stem} stem, stage strides {tuple(strides)})"
        )
        if downsample != "conv" and any(d != (s, 1, 1) for d, s in zip(dilations, strides)):
            # a dilated stage has no stride to replace: its pooling layer would be left out or keep downsampling
            raise ValueError(
                f"output_stride={output_stride!r} dilates the stages after that reduction, and with "
                f"downsample={downsample!r} they downsample with pooling layers instead of strided convs; pass one of "
                "the two (downsample='conv' for dense features), or an output_stride the network does not go below."
            )
        self.stages = nn.ModuleList(self._make_stages(net, reduction, strides, dilations, drop_path_rate, dd))
        self.num_feature_levels = len(self.feature_info)  # an int for TorchScript (feature_info mixes types)
        self.num_features = self.head_hidden_size = net.widths[-1] * net.expansion
        self._make_head(num_classes, global_pool, **dd)
        self._init_weights()

    def _make_stages(
        self, net: TauNetCfg, reduction: float, strides: tuple, dilations: list, drop_path_rate: float, dd: dict
    ) -> list[TauStage]:
        if net.norm:
            block_cls = PostActBottleneck if net.block == "bottleneck" else PostActBasic
        else:
            block_cls = FixupBottleneck if net.block == "bottleneck" else FixupBasic
        shortcut_cls = ConvShortcut if net.shortcut == "conv" else ZeroPadShortcut
        total = sum(net.layers)
        in_chs = net.stem_width
        self._roles: list[str] = []
        stages = []
        index = 0
        for stage_idx, (depth, width, nominal, (stage_stride, first_dilation, dilation)) in enumerate(
            zip(net.layers, net.widths, strides, dilations)
        ):
            blocks = []
            for j in range(depth):
                stride = stage_stride if j == 0 else 1
                out_chs = width * net.expansion
                # a dilated stage's first block still changes the shape of the strided network: same shortcut
                changes_shape = (j == 0 and nominal != 1) or in_chs != out_chs
                self._roles.append(self.scheme.role(index, changes_shape))
                pool = None
                if self.downsample != "conv" and stride != 1:
                    # the branch's conv and the shortcut keep stride 1; the one layer follows both
                    pool = create_downsample(self.downsample, stride, **(dd if self.downsample == "diffstride" else {}))
                conv_stride = 1 if pool is not None else stride
                shortcut = shortcut_cls(in_chs, out_chs, conv_stride, norm=net.norm, **dd) if changes_shape else None
                drop_path = drop_path_rate * index / max(total - 1, 1)
                blocks.append(
                    block_cls(
                        in_chs,
                        width,
                        conv_stride,
                        dilation=(first_dilation if j == 0 else dilation, dilation),
                        shortcut=shortcut,
                        drop_path=drop_path,
                        pool=pool,
                        **dd,
                    )
                )
                in_chs = out_chs
                reduction *= stride
                index += 1
            stages.append(TauStage(*blocks))
            self.feature_info.append(dict(num_chs=in_chs, reduction=reduction, module=f"stages.{stage_idx}"))
        return stages

    # ----- timm model interface -----

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(
            stem=r"^conv1|^bn1|^stem_pool|^tau$",
            blocks=r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)",
        )

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """The scalar parameters (the shared tau and the Fixup biases of the normalisation-free variant) and the
        strides of DiffStride layers (``downsample='diffstride'``)."""
        return {name for name, p in self.named_parameters() if p.ndim == 0 or name.endswith(".strides")}

    @torch.jit.ignore
    def optimizer_param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Parameter groups for ``torch.optim`` / timm's ``create_optimizer_v2(param_group_fn=...)``.

        Weights with more than one dimension are decayed; 1-d parameters (BN, classifier bias) are not, as timm
        does; tau and the Fixup biases (the 0-d ones) get no decay and ``lr_scale`` 0.1 (the paper's lr/10). timm's
        schedulers multiply ``lr_scale`` in from their construction on; with a torch scheduler, multiply it in
        yourself.
        """
        decay, no_decay, scaled = [], [], []
        for p in self.parameters():
            if not p.requires_grad:
                continue
            (scaled if p.ndim == 0 else no_decay if p.ndim <= 1 else decay).append(p)
        groups = [
            dict(params=decay, lr=lr, weight_decay=weight_decay),
            dict(params=no_decay, lr=lr, weight_decay=0.0),
            dict(params=scaled, lr=lr, weight_decay=0.0, lr_scale=SCALAR_LR_SCALE),
        ]
        return [g for g in groups if g["params"]]

    # ----- the scheme, for analysis and logging -----

    @torch.jit.ignore
    def current_tau(self) -> float:
        """The step size now: the fixed tau with BN, the trained value of the learnable one without."""
        scheme_values_readable(self)
        return self.tau_init if self.tau is None else float(self.tau.detach())

    @torch.jit.ignore
    def block_coefficients(self) -> list[dict[str, Any]]:
        """Per block: forward Euler, a = (1,), b = (1,), with the step size tau in ``param``."""
        param = {"step_size": self.current_tau()}
        return [
            dict(block=name, role=role, a=(1.0,), b=(1.0,), param=dict(param))
            for name, role in zip(self._block_names(), self._roles)
        ]

    @torch.jit.ignore
    def scheme_state(self) -> dict[str, float]:
        """The step size, and the learnable tau under its parameter name (normalisation-free variant)."""
        state = {"step_size": self.current_tau()}
        if self.tau is not None:
            state["tau"] = state["step_size"]
        return state

    def _block_names(self):
        for i, stage in enumerate(self.stages):
            for j in range(len(stage)):
                yield f"stages.{i}.{j}"

    # ----- forward -----

    def block_tau(self, x: torch.Tensor) -> torch.Tensor:
        """tau as the blocks receive it, a 0-d tensor. The learnable tau's value passes unchanged, its gradient is
        divided by the number of blocks (the average of the blocks' contributions): no hook, so it survives
        deepcopy, ``to_empty``, scripting, compile and export."""
        tau = self.tau
        if tau is None:
            return x.new_full((), self.tau_init)
        value = tau.detach()
        return value + (tau - value) * self.tau_grad_scale

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            self._check_images(x)
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        tau = self.block_tau(x)
        for stage in self.stages:
            x = stage(x, tau)
        return x

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Forward that also returns the feature map at every stride level.

        Args:
            x: input images.
            indices: take the last n levels if int, all if None, the listed ones if a sequence.
            norm: accepted for timm's interface; there is no final norm.
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

        x = self.act1(self.bn1(self.conv1(x)))
        if self.has_stem_level and 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        tau = self.block_tau(x)
        if torch.jit.is_scripting() or not stop_early:  # TorchScript cannot slice a ModuleList by a variable
            stages = self.stages
        else:
            stages = self.stages[: max_index - offset + 1]
        for feat_idx, stage in enumerate(stages, start=offset):
            x = stage(x, tau)
            if feat_idx in take_indices:
                intermediates.append(x)

        if intermediates_only:
            return intermediates
        return x, intermediates

    def _stages_pruned(self, drop_norm: bool) -> None:
        """tau's gradient is then averaged over the blocks that remain (there is no final norm to drop)."""
        self._roles = self._roles[: sum(len(s) for s in self.stages)]
        self.tau_grad_scale = 1.0 / max(len(self._roles), 1)


# ----- checkpoints -----

_FIXUP_SCALAR = re.compile(r"(^tau|\.bias\d[ab])$")


def checkpoint_filter_fn(
    state_dict: dict, model: TauResNet, features_only: bool = False, strict: bool = True, exact: bool = False
) -> dict:
    """Load our own checkpoints unchanged, and ResNets saved by timm / torchvision or by the tau-ResNet authors.

    Their names (``layerN.i``, ``downsample.0`` conv / ``downsample.1`` BN) map to ours (``stages.{N-1}.i``,
    ``shortcut.conv`` / ``shortcut.norm``); the authors' (1,)-shaped scalars become 0-d, and the per-block aliases
    ``layerN.i.tau`` of their shared tau are dropped. A classifier that timm discards may be missing or of any size.
    Anything else that does not fit raises an error naming the first missing or unexpected key (unless ``strict`` is
    False, timm's ``pretrained_strict``), or the first tensor of the wrong shape (the first conv excepted: timm
    adapts it). ``features_only``: the model is built for ``features_only`` (timm loads it without a head);
    ``exact``: the caller loads the result strictly into the model as built, so its head must be filled.
    """
    state_dict = unwrap_state_dict(state_dict)
    ours = model.state_dict()
    drop_head = timm_drops_head(model, features_only, exact)
    out = {}
    unexpected = []
    for key, value in state_dict.items():
        if key not in ours:
            key = re.sub(r"^layer(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.", key)
            key = key.replace(".downsample.0.", ".shortcut.conv.").replace(".downsample.1.", ".shortcut.norm.")
        if discarded_head(key, value, ours, model, drop_head):
            continue
        if key not in ours:
            if not re.match(r"^stages\.\d+\.\d+\.tau$", key):
                unexpected.append(key)
            continue
        if _FIXUP_SCALAR.search(key) and isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.reshape(())
        out[key] = value
    learned_strides = any(k.endswith(".pool.strides") for k in out)  # a DiffStride network's weights
    if strict and "stem_pool.strides" in ours and "stem_pool.strides" not in out and learned_strides:
        # downsample='diffstride' before 2026-12-03 had no DiffStride after the stem: that network is no longer built
        # (a stem layer at stride 1 is no identity), so its weights would give other outputs with any filling
        raise ValueError(
            "the weights have no stem_pool.strides: they are of a tau-ResNet with downsample='diffstride' from before "
            "a DiffStride layer followed its stem (timm_zerosnet before 2026-12-03), a network this version no longer "
            "builds. Train it again, or load them with that version; pretrained_strict=False would load them into "
            "the new network, whose outputs differ."
        )
    check_fit(out, ours, unexpected, model, drop_head, strict, "depth, CIFAR or ImageNet skeleton, BN or nobn", exact)
    return out


# ----- building -----


def _create_tauresnet(variant: str, pretrained: bool, net: TauNetCfg, /, **kwargs: Any) -> TauResNet:
    # positional-only: a user's net= or variant= reaches the checks (a bare "got multiple values for keyword argument"
    # TypeError before)
    if "net" in kwargs:
        raise TypeError(
            f"{variant} builds its own skeleton ({net}); it takes no net=. For another skeleton build the class "
            f"itself, TauResNet(TauNetCfg(layers=...), ...), or pick another registered depth."
        )
    check_create_kwargs(variant, kwargs, TauResNet)
    if pretrained:
        require_released_weights(variant, kwargs)
    levels = len(net.layers) + (1 if net.stem == "imagenet" else 0)
    with unreadable_weights_named(variant, pretrained, kwargs):
        model = build_model_with_cfg(
            TauResNet,
            variant,
            pretrained,
            net=net,
            pretrained_filter_fn=pretrained_filter(checkpoint_filter_fn, kwargs),
            feature_cfg=getter_feature_cfg(levels, kwargs),
            **kwargs,
        )
    if (
        any(kwargs.get(k) is not None for k in ("strides", "stem_stride", "output_stride"))
        or kwargs.get("downsample", "conv") != "conv"
    ):
        measure_pool_size(model)  # learnable strides: those of the loaded weights, where pretrained
    return model


_PAPER = dict(
    paper_ids="arXiv:1903.07120",
    paper_name="Convergence Theory of Learning Over-parameterized ResNet: A Full Characterization",
)

_VARIANTS = ("", "_nobn")

default_cfgs = generate_default_cfgs(
    with_released(
        {
            **{
                f"tauresnet{d}{v}_cifar.untrained": cifar_cfg(**_PAPER)
                for d in (20, 32, 44, 56, 110, 1202)
                for v in _VARIANTS
            },
            **{f"tauresnet{d}{v}.untrained": imagenet_cfg(**_PAPER) for d in (50, 101, 152) for v in _VARIANTS},
        }
    )
)


@register_model
def tauresnet20_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet20_cifar", pretrained, _cifar((3, 3, 3)), **kwargs)


@register_model
def tauresnet32_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet32_cifar", pretrained, _cifar((5, 5, 5)), **kwargs)


@register_model
def tauresnet44_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet44_cifar", pretrained, _cifar((7, 7, 7)), **kwargs)


@register_model
def tauresnet56_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet56_cifar", pretrained, _cifar((9, 9, 9)), **kwargs)


@register_model
def tauresnet110_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet110_cifar", pretrained, _cifar((18, 18, 18)), **kwargs)


@register_model
def tauresnet1202_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet1202_cifar", pretrained, _cifar((200, 200, 200)), **kwargs)


@register_model
def tauresnet20_nobn_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet20_nobn_cifar", pretrained, _cifar((3, 3, 3), norm=False), **kwargs)


@register_model
def tauresnet32_nobn_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet32_nobn_cifar", pretrained, _cifar((5, 5, 5), norm=False), **kwargs)


@register_model
def tauresnet44_nobn_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet44_nobn_cifar", pretrained, _cifar((7, 7, 7), norm=False), **kwargs)


@register_model
def tauresnet56_nobn_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet56_nobn_cifar", pretrained, _cifar((9, 9, 9), norm=False), **kwargs)


@register_model
def tauresnet110_nobn_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet110_nobn_cifar", pretrained, _cifar((18, 18, 18), norm=False), **kwargs)


@register_model
def tauresnet1202_nobn_cifar(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet1202_nobn_cifar", pretrained, _cifar((200, 200, 200), norm=False), **kwargs)


@register_model
def tauresnet50(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet50", pretrained, _imagenet((3, 4, 6, 3)), **kwargs)


@register_model
def tauresnet101(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet101", pretrained, _imagenet((3, 4, 23, 3)), **kwargs)


@register_model
def tauresnet152(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet152", pretrained, _imagenet((3, 8, 36, 3)), **kwargs)


@register_model
def tauresnet50_nobn(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet50_nobn", pretrained, _imagenet((3, 4, 6, 3), norm=False), **kwargs)


@register_model
def tauresnet101_nobn(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet101_nobn", pretrained, _imagenet((3, 4, 23, 3), norm=False), **kwargs)


@register_model
def tauresnet152_nobn(pretrained=False, **kwargs) -> TauResNet:
    return _create_tauresnet("tauresnet152_nobn", pretrained, _imagenet((3, 8, 36, 3), norm=False), **kwargs)
