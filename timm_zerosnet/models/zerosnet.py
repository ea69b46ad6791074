"""ZeroSNet: a zero-stable 3-step residual network.

Paper: Chen, Jin, Shang, "Zero-Stability Well Predicts Performance of Convolutional Neural Networks", AAAI 2022
(arXiv:2206.13100). The authors' code: github.com/LongJin-lab/ZeroSNet.

    x_{n+1} = a0 x_n + a1 x_{n-1} + a2 x_{n-2} + b0 F(x_n)

with the one-parameter family a0 = (3l+3)/(4l), a1 = -1/l, a2 = (l+1)/(4l), b0 = (3l-1)/(2l). "Opt" fixes
lambda = -9/5, i.e. (1/3, 5/9, 1/9, 16/9); "Tra" learns one lambda per multistep block (init 1 on CIFAR, -1.8 on
ImageNet, as in the authors' code). Blocks 0 and 1 are Euler start-up steps; the history is carried through the
whole network, and a stage transition gives each history slot its own bare 1x1 projection. On ImageNet the x_n
projection reads the block's pre-activation relu(bn1(x_n)), as the authors' code does; on CIFAR it reads x_n.
Where the authors' code differs from a clean build: it creates an unused stem BN, an unused bottleneck shortcut in
basic nets and a lambda for the two start-up blocks; none of these exist here, and the checkpoint filter drops them.

Model arguments: ``lam`` (lambda, the initial one for Tra), ``coefficients=(a0, a1, a2, b0)`` (any fixed choice,
also not zero stable: it warns once), ``lam_eps`` (Tra: smallest |lambda| used, see ``ZeroStableUpdate``) and
``tau`` (the step size h, which multiplies b0 F).

``zerosnet18_diffstride_cifar`` is the ZeroSNet scheme on the DiffStride paper's pre-act ResNet-18 for 32x32 with
learnable strides. This combination exists in no published code. What it does: the branch, the x_n shortcut and
the x_{n-1}, x_{n-2} history slots of a stage's first block all pass through that block's one DiffStride layer
(after a stride-1 1x1 conv where the channels change), so the four terms of the update always have the same size
whatever the learned stride; the start-up blocks keep the projected shortcut as x_0.
"""

from __future__ import annotations

from typing import Any

from timm.models import generate_default_cfgs, register_model

from ..release import with_released
from ..schemes import OPT_LAMBDA, ZeroStable
from .multistep import (
    MultistepResNet,
    NetCfg,
    cifar_cfg,
    cifar_net,
    cifar_resnet18_net,
    create_multistep,
    imagenet_cfg,
    imagenet_net,
)


def _create_zerosnet(
    variant: str,
    pretrained: bool,
    net: NetCfg,
    /,
    *,
    lam: float | None = None,
    coefficients: tuple[float, float, float, float] | None = None,
    trainable: bool = False,
    lam_eps: float | None = None,
    tau: float = 1.0,
    **kwargs: Any,
) -> MultistepResNet:
    # options that a fixed scheme would otherwise ignore without a word
    if trainable is False and coefficients is not None and lam is not None:
        raise ValueError(
            f"{variant}: lam and coefficients both fix the coefficients (lam through the Opt family); pass one of them."
        )
    if trainable is False and lam_eps is not None:
        raise ValueError(
            f"{variant}: lam_eps bounds a trainable lambda away from 0, and this model's coefficients are fixed; leave "
            "lam_eps out, or use a _tra model (or trainable=True)."
        )
    scheme = ZeroStable(
        lam=OPT_LAMBDA if lam is None else lam,
        coefficients=coefficients,
        trainable=trainable,
        lam_eps=1.0 / 3.0 if lam_eps is None else lam_eps,
        step_size=tau,
    )
    return create_multistep(variant, pretrained, net, scheme, family_creators=(_create_zerosnet,), **kwargs)


def _cifar(layers, block="basic"):
    # the authors' CIFAR code keeps the raw stem output (not the bottleneck start-up shortcut) as x_0
    return cifar_net(layers, block, startup_history_raw=True)


_TRA_CIFAR = dict(trainable=True, lam=1.0)
_TRA_IMAGENET = dict(trainable=True, lam=-1.8)
_PAPER = dict(
    paper_ids="arXiv:2206.13100", paper_name="Zero-Stability Well Predicts Performance of Convolutional Neural Networks"
)

default_cfgs = generate_default_cfgs(
    with_released(
        {
            **{f"zerosnet{d}_cifar.untrained": cifar_cfg(**_PAPER) for d in (20, 32, 44, 56, 110, 164)},
            **{f"zerosnet{d}_tra_cifar.untrained": cifar_cfg(**_PAPER) for d in (20, 32, 44, 56, 110, 164)},
            **{f"zerosnet{d}.untrained": imagenet_cfg(**_PAPER) for d in (18, 34, 50, 101, 152)},
            **{f"zerosnet{d}_tra.untrained": imagenet_cfg(**_PAPER) for d in (18, 34, 50, 101, 152)},
            # sizes at init; the network of the DiffStride paper, so both papers
            "zerosnet18_diffstride_cifar.untrained": cifar_cfg(
                pool_size=(18, 18), paper_ids=("arXiv:2206.13100", "arXiv:2202.01653"), paper_name=_PAPER["paper_name"]
            ),
        }
    )
)


@register_model
def zerosnet20_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet20_cifar", pretrained, _cifar((3, 3, 3)), **kwargs)


@register_model
def zerosnet32_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet32_cifar", pretrained, _cifar((5, 5, 5)), **kwargs)


@register_model
def zerosnet44_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet44_cifar", pretrained, _cifar((7, 7, 7)), **kwargs)


@register_model
def zerosnet56_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet56_cifar", pretrained, _cifar((9, 9, 9)), **kwargs)


@register_model
def zerosnet110_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet110_cifar", pretrained, _cifar((18, 18, 18)), **kwargs)


@register_model
def zerosnet164_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet164_cifar", pretrained, _cifar((18, 18, 18), "bottleneck"), **kwargs)


@register_model
def zerosnet20_tra_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet20_tra_cifar", pretrained, _cifar((3, 3, 3)), **{**_TRA_CIFAR, **kwargs})


@register_model
def zerosnet32_tra_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet32_tra_cifar", pretrained, _cifar((5, 5, 5)), **{**_TRA_CIFAR, **kwargs})


@register_model
def zerosnet44_tra_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet44_tra_cifar", pretrained, _cifar((7, 7, 7)), **{**_TRA_CIFAR, **kwargs})


@register_model
def zerosnet56_tra_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet56_tra_cifar", pretrained, _cifar((9, 9, 9)), **{**_TRA_CIFAR, **kwargs})


@register_model
def zerosnet110_tra_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet110_tra_cifar", pretrained, _cifar((18, 18, 18)), **{**_TRA_CIFAR, **kwargs})


@register_model
def zerosnet164_tra_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet(
        "zerosnet164_tra_cifar", pretrained, _cifar((18, 18, 18), "bottleneck"), **{**_TRA_CIFAR, **kwargs}
    )


@register_model
def zerosnet18_diffstride_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet18_diffstride_cifar", pretrained, cifar_resnet18_net("diffstride"), **kwargs)


@register_model
def zerosnet18(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet18", pretrained, imagenet_net((2, 2, 2, 2)), **kwargs)


@register_model
def zerosnet34(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet34", pretrained, imagenet_net((3, 4, 6, 3)), **kwargs)


@register_model
def zerosnet50(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet50", pretrained, imagenet_net((3, 4, 6, 3), "bottleneck"), **kwargs)


@register_model
def zerosnet101(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet101", pretrained, imagenet_net((3, 4, 23, 3), "bottleneck"), **kwargs)


@register_model
def zerosnet152(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet152", pretrained, imagenet_net((3, 8, 36, 3), "bottleneck"), **kwargs)


@register_model
def zerosnet18_tra(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet18_tra", pretrained, imagenet_net((2, 2, 2, 2)), **{**_TRA_IMAGENET, **kwargs})


@register_model
def zerosnet34_tra(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet("zerosnet34_tra", pretrained, imagenet_net((3, 4, 6, 3)), **{**_TRA_IMAGENET, **kwargs})


@register_model
def zerosnet50_tra(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet(
        "zerosnet50_tra", pretrained, imagenet_net((3, 4, 6, 3), "bottleneck"), **{**_TRA_IMAGENET, **kwargs}
    )


@register_model
def zerosnet101_tra(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet(
        "zerosnet101_tra", pretrained, imagenet_net((3, 4, 23, 3), "bottleneck"), **{**_TRA_IMAGENET, **kwargs}
    )


@register_model
def zerosnet152_tra(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_zerosnet(
        "zerosnet152_tra", pretrained, imagenet_net((3, 8, 36, 3), "bottleneck"), **{**_TRA_IMAGENET, **kwargs}
    )
