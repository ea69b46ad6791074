"""LM-ResNet: a residual network as the 2-step linear multistep scheme.

Paper: Lu, Zhong, Li, Dong, "Beyond Finite Layer Neural Networks: Bridging Deep Architectures and Numerical
Differential Equations", ICML 2018 (arXiv:1710.10121).

    x_{n+1} = (1 - k_n) x_n + k_n x_{n-1} + F(x_n),   one trainable k_n per block, init U[-0.1, 0]

Paper convention throughout; the public code stores k' = 1 - k (init U[1.0, 1.1]) and the checkpoint filter
converts. Block 0 is an Euler start-up step whose shortcut becomes the history slot x_{n-1}; a stage transition is
a plain Euler step through the pre-activated 1x1 projection, after which the history is reset to that projected
x_n. k exists only where it is used. The paper's stochastic-depth training (linear death rate) is timm's
``drop_path_rate``.

There is no public ImageNet LM-ResNet: ``lmresnet{18,...,152}`` are our construction, the same rules applied to the
pre-activation ImageNet skeleton of the ZeroSNet authors (7x7 stem, shortcuts that read relu(bn1(x)), no final
norm). ``tau`` is the step size h that multiplies F.
"""

from __future__ import annotations

from typing import Any

from timm.models import generate_default_cfgs, register_model

from ..release import with_released
from ..schemes import LinearMultistep
from .multistep import MultistepResNet, NetCfg, cifar_cfg, cifar_net, create_multistep, imagenet_cfg, imagenet_net


def _create_lmresnet(
    variant: str,
    pretrained: bool,
    net: NetCfg,
    /,
    *,
    k_init: tuple[float, float] = (-0.1, 0.0),
    tau: float = 1.0,
    **kwargs: Any,
) -> MultistepResNet:
    scheme = LinearMultistep(k_init=k_init, step_size=tau)
    return create_multistep(variant, pretrained, net, scheme, family_creators=(_create_lmresnet,), **kwargs)


_PAPER = dict(
    paper_ids="arXiv:1710.10121",
    paper_name="Beyond Finite Layer Neural Networks: Bridging Deep Architectures and Numerical Differential Equations",
)

default_cfgs = generate_default_cfgs(
    with_released(
        {
            **{f"lmresnet{d}_cifar.untrained": cifar_cfg(**_PAPER) for d in (20, 32, 44, 56, 110, 164)},
            **{f"lmresnet{d}.untrained": imagenet_cfg(**_PAPER) for d in (18, 34, 50, 101, 152)},
        }
    )
)


@register_model
def lmresnet20_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet20_cifar", pretrained, cifar_net((3, 3, 3)), **kwargs)


@register_model
def lmresnet32_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet32_cifar", pretrained, cifar_net((5, 5, 5)), **kwargs)


@register_model
def lmresnet44_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet44_cifar", pretrained, cifar_net((7, 7, 7)), **kwargs)


@register_model
def lmresnet56_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet56_cifar", pretrained, cifar_net((9, 9, 9)), **kwargs)


@register_model
def lmresnet110_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet110_cifar", pretrained, cifar_net((18, 18, 18)), **kwargs)


@register_model
def lmresnet164_cifar(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet164_cifar", pretrained, cifar_net((18, 18, 18), "bottleneck"), **kwargs)


@register_model
def lmresnet18(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet18", pretrained, imagenet_net((2, 2, 2, 2)), **kwargs)


@register_model
def lmresnet34(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet34", pretrained, imagenet_net((3, 4, 6, 3)), **kwargs)


@register_model
def lmresnet50(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet50", pretrained, imagenet_net((3, 4, 6, 3), "bottleneck"), **kwargs)


@register_model
def lmresnet101(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet101", pretrained, imagenet_net((3, 4, 23, 3), "bottleneck"), **kwargs)


@register_model
def lmresnet152(pretrained=False, **kwargs) -> MultistepResNet:
    return _create_lmresnet("lmresnet152", pretrained, imagenet_net((3, 8, 36, 3), "bottleneck"), **kwargs)
