"""Model families; importing this package registers them with timm."""

from . import lmresnet, preresnet, tauresnet, zerosnet  # noqa: F401  (registration side effect)
from .multistep import MultistepResNet, NetCfg, checkpoint_filter_fn, cifar_net, imagenet_net
from .tauresnet import TauNetCfg, TauResNet

__all__ = [
    "MultistepResNet",
    "NetCfg",
    "TauNetCfg",
    "TauResNet",
    "checkpoint_filter_fn",
    "cifar_net",
    "family_checkpoint_filter",
    "imagenet_net",
]


def family_checkpoint_filter(model, architecture: str | None = None):
    """The ``checkpoint_filter_fn`` of the model's family (the one timm's pretrained loading applies; it also reads
    the authors' checkpoints), looked up in the module of the model's class, then of ``architecture``'s registered
    entry point; None for a model without one."""
    import sys

    from timm.models import model_entrypoint

    names = [type(model).__module__]
    if architecture is not None:
        names.append(model_entrypoint(architecture).__module__)
    for name in names:
        fn = getattr(sys.modules.get(name), "checkpoint_filter_fn", None)
        if fn is not None:
            return fn
    return None
