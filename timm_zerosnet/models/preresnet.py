"""Pre-activation ResNet, the forward-Euler baseline both multistep papers compare against.

Paper: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016 (arXiv:1603.05027).

    x_{n+1} = x_n + F(x_n)

CIFAR: the skeleton of the ZeroSNet / LM-ResNet authors' code (3x3 stem conv without norm, transition shortcut
BN-ReLU-conv1x1/2 with its own BN, BN-ReLU before the pool). ImageNet: the ZeroSNet authors' pre-act baseline
(shortcut conv applied to relu(bn1(x)), no final BN-ReLU). ``tau`` is the step size h that multiplies F.

``preresnet18{,_spectral,_diffstride}_cifar`` are the pre-act ResNet-18 for 32x32 of the DiffStride paper (Riad et
al., ICLR 2022, arXiv:2202.01653): strided convs, fixed spectral pooling, or learnable strides (a DiffStride layer
after the stem and in the first block of each stage; ``strides=(1, 3, 2, 3)`` with ``stem_stride=1`` is the paper's
poor initialisation (1, 1, 3, 2, 3)). Every family takes the same ``downsample`` / ``strides`` arguments.
"""

from __future__ import annotations

from typing import Any

from timm.models import generate_default_cfgs, register_model

from ..release import with_released
from ..schemes import Euler
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


def _create_preresnet(variant: str, pretrained: bool, net: NetCfg, /, *, tau: float = 1.0, **kwargs: Any):
    # positional-only, as in create_multistep
    scheme = Euler(step_size=tau)
    return create_multistep(variant, pretrained, net, scheme, family_creators=(_create_preresnet,), **kwargs)


_PAPER = dict(paper_ids="arXiv:1603.05027", paper_name="Identity Mappings in Deep Residual Networks")

_DIFFSTRIDE = dict(paper_ids="arXiv:2202.01653", paper_name="Learning Strides in Convolutional Neural Networks")

default_cfgs = generate_default_cfgs(
    with_released(
        {
            **{f"preresnet{d}_cifar.untrained": cifar_cfg(**_PAPER) for d in (20, 32, 44, 56, 110, 164)},
            "preresnet18_cifar.untrained": cifar_cfg(pool_size=(4, 4), **_DIFFSTRIDE),
            "preresnet18_spectral_cifar.untrained": cifar_cfg(pool_size=(4, 4), **_DIFFSTRIDE),
            "preresnet18_diffstride_cifar.untrained": cifar_cfg(pool_size=(18, 18), **_DIFFSTRIDE),  # sizes at init
            **{f"preresnet{d}.untrained": imagenet_cfg(**_PAPER) for d in (18, 34, 50, 101, 152)},
        }
    )
)


@register_model
def preresnet20_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet20_cifar", pretrained, cifar_net((3, 3, 3)), **kwargs)


@register_model
def preresnet32_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet32_cifar", pretrained, cifar_net((5, 5, 5)), **kwargs)


@register_model
def preresnet44_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet44_cifar", pretrained, cifar_net((7, 7, 7)), **kwargs)


@register_model
def preresnet56_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet56_cifar", pretrained, cifar_net((9, 9, 9)), **kwargs)


@register_model
def preresnet110_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet110_cifar", pretrained, cifar_net((18, 18, 18)), **kwargs)


@register_model
def preresnet164_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet164_cifar", pretrained, cifar_net((18, 18, 18), "bottleneck"), **kwargs)


@register_model
def preresnet18_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet18_cifar", pretrained, cifar_resnet18_net(), **kwargs)


@register_model
def preresnet18_spectral_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet18_spectral_cifar", pretrained, cifar_resnet18_net("spectral"), **kwargs)


@register_model
def preresnet18_diffstride_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet18_diffstride_cifar", pretrained, cifar_resnet18_net("diffstride"), **kwargs)


@register_model
def preresnet18(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet18", pretrained, imagenet_net((2, 2, 2, 2)), **kwargs)


@register_model
def preresnet34(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet34", pretrained, imagenet_net((3, 4, 6, 3)), **kwargs)


@register_model
def preresnet50(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet50", pretrained, imagenet_net((3, 4, 6, 3), "bottleneck"), **kwargs)


@register_model
def preresnet101(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet101", pretrained, imagenet_net((3, 4, 23, 3), "bottleneck"), **kwargs)


@register_model
def preresnet152(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_preresnet("preresnet152", pretrained, imagenet_net((3, 8, 36, 3), "bottleneck"), **kwargs)
