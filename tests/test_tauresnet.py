"""tau-ResNet (ARCHITECTURES.md section 4): the paper's defaults and claims, and the timm model contract.

The contract mirrors test_models.py: cheap checks on every registered model (on the meta device), checks with real
arithmetic on a tiny version (fewer blocks, same class, skeleton and tau), script / FX / compile / export / pretrained
files on one representative per architecture. tauresnet1202_* only ever runs on the meta device.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from timm_zerosnet.models.tauresnet import TauResNet, checkpoint_filter_fn  # also registers the family
from timm_zerosnet.schemes import ROLE_MULTISTEP, ROLE_RESET, Euler

NAMES = sorted(timm.list_models(module="tauresnet"))
TINY_NAMES = [n for n in NAMES if "1202" not in n]
REPRESENTATIVES = ["tauresnet20_cifar", "tauresnet20_nobn_cifar", "tauresnet50", "tauresnet50_nobn"]


@functools.cache
def meta_model(name: str) -> TauResNet:
    """The registered model on the meta device, built once: read it, never change it."""
    return timm.create_model(name, device="meta")


def tiny_model(name: str, **kwargs) -> TauResNet:
    """The registered model with fewer blocks (every block kind still present) and the registered model's tau."""
    ref = meta_model(name)
    layers = (2, 1, 1) if len(ref.net.layers) == 3 else (2, 1, 1, 1)
    kwargs.setdefault("num_classes", 7)
    kwargs.setdefault("tau", ref.tau_init)
    model = TauResNet(dataclasses.replace(ref.net, layers=layers), **kwargs)
    model.pretrained_cfg = ref.pretrained_cfg
    return model


def tiny_input(model: TauResNet, batch: int = 2, in_chans: int = 3) -> torch.Tensor:
    size = 32 if model.net.stem == "cifar" else 64
    return torch.randn(batch, in_chans, size, size, generator=torch.Generator().manual_seed(0))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize_bn(model: nn.Module) -> nn.Module:
    """BN statistics and affine parameters away from their init, so that every BN really acts."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model


# ----------------------------------------------------------------------------------------------- the paper's numbers


def test_every_tauresnet_is_registered():
    cifar = [f"tauresnet{d}{v}_cifar" for d in (20, 32, 44, 56, 110, 1202) for v in ("", "_nobn")]
    imagenet = [f"tauresnet{d}{v}" for d in (50, 101, 152) for v in ("", "_nobn")]
    assert sorted(cifar + imagenet) == NAMES
    for n in NAMES:
        assert timm.models.model_entrypoint(n).__module__ == "timm_zerosnet.models.tauresnet"
    assert not [n for n in timm.list_pretrained() if n.split(".")[0] in NAMES]
    assert "tauresnet20_cifar.untrained" in timm.list_models("tauresnet20_cifar*", include_tags=True)
    with pytest.raises(RuntimeError, match=r"tauresnet20_cifar\.untrained has no released weights"):
        timm.create_model("tauresnet20_cifar", pretrained=True)


# ARCHITECTURES.md 4: 1/sqrt(L) on CIFAR (L = all blocks), 2/sqrt(L) on ImageNet (L = longest stage)
DEFAULT_TAU = {
    "20": (1 / 3, 1e-9),
    "110": (0.136, 5e-4),
    "1202": (0.0408, 5e-5),
    "50": (0.816, 5e-4),
    "101": (0.417, 5e-4),
    "152": (0.333, 5e-4),
    "32": (1 / math.sqrt(15), 1e-9),
    "44": (1 / math.sqrt(21), 1e-9),
    "56": (1 / math.sqrt(27), 1e-9),
}


@pytest.mark.parametrize("name", NAMES)
def test_default_tau_follows_depth(name):
    model = meta_model(name)
    expected, tol = DEFAULT_TAU[re.search(r"(\d+)", name).group(1)]
    assert isinstance(model.scheme, Euler)
    assert model.scheme.step_size == model.tau_init == pytest.approx(expected, abs=tol)
    if "_nobn" in name:
        assert model.tau.shape == () and model.tau.requires_grad
    else:
        assert model.tau is None and "tau" not in model.state_dict()  # a fixed constant, not a parameter


def test_tau_is_a_model_argument():
    fixed = timm.create_model("tauresnet20_cifar", tau=0.5, device="meta")
    assert fixed.scheme.step_size == 0.5 and fixed.block_coefficients()[0]["param"] == {"step_size": 0.5}
    learnable = timm.create_model("tauresnet20_nobn_cifar", tau=0.25)
    assert float(learnable.tau.detach()) == 0.25 and learnable.scheme_state() == {"step_size": 0.25, "tau": 0.25}
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tau"):
            timm.create_model("tauresnet20_cifar", tau=bad, device="meta")


def _reference_cifar(
    sd: dict, layers: tuple[int, ...], x: torch.Tensor, tau: float, training: bool = False
) -> torch.Tensor:
    """He et al.'s CIFAR ResNet with option-A shortcuts (the tau-ResNet authors' code), written out in functional
    form from the weights alone: relu(shortcut(x) + tau * bn2(conv2(relu(bn1(conv1(x)))))). ``training``: every
    BN normalises with the statistics of its batch (of what it sees: the shortcut's BN the subsampled map)."""

    def bn(t, key):
        return F.batch_norm(
            t,
            sd[f"{key}.running_mean"].clone(),
            sd[f"{key}.running_var"].clone(),
            sd[f"{key}.weight"],
            sd[f"{key}.bias"],
            training=training,
        )

    x = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"))
    for s, depth in enumerate(layers):
        for j in range(depth):
            b, stride = f"stages.{s}.{j}", 2 if s > 0 and j == 0 else 1
            out = F.relu(bn(F.conv2d(x, sd[f"{b}.conv1.weight"], stride=stride, padding=1), f"{b}.bn1"))
            out = bn(F.conv2d(out, sd[f"{b}.conv2.weight"], padding=1), f"{b}.bn2")
            if stride == 2:  # subsample, BN, zero channels appended
                x = bn(x[:, :, ::2, ::2], f"{b}.shortcut.norm")
                x = torch.cat([x, torch.zeros_like(x)], 1)
            x = F.relu(x + tau * out)
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_cifar_equals_option_a_resnet_written_out(tau, training):
    """In training mode too: there the order subsample-then-BN of option A matters (batch statistics of the
    subsampled map), where in eval mode BN is per-channel affine and commutes with subsampling."""
    model = randomize_bn(timm.create_model("tauresnet20_cifar", tau=tau)).train(training)
    x = torch.randn(4, 3, 32, 32)
    ref = _reference_cifar(model.state_dict(), (3, 3, 3), x, tau, training)
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def _reference_nobn(sd: dict, layers: tuple[int, ...], x: torch.Tensor, tau: float, imagenet: bool) -> torch.Tensor:
    """ARCHITECTURES.md's normalisation-free tau-ResNet written out from the weights: stem conv then ReLU (ImageNet:
    7x7/2 and the max pool), per block relu(shortcut(x) + tau * branch) with each conv between its two scalar
    biases, conv(h + b_a) + b_b, a ReLU between the convs, and shortcuts without BN (CIFAR: option A, ImageNet:
    the 1x1 projection)."""
    if imagenet:
        x = F.max_pool2d(F.relu(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)), 3, 2, 1)
    else:
        x = F.relu(F.conv2d(x, sd["conv1.weight"], padding=1))
    convs = ("conv1", "conv2", "conv3") if imagenet else ("conv1", "conv2")
    for s, depth in enumerate(layers):
        for j in range(depth):
            b, stride = f"stages.{s}.{j}", 2 if s > 0 and j == 0 else 1
            h = x
            for i, conv in enumerate(convs, start=1):
                w = sd[f"{b}.{conv}.weight"]
                strided = stride if conv == ("conv2" if imagenet else "conv1") else 1  # the (first) 3x3 conv
                h = F.conv2d(h + sd[f"{b}.bias{i}a"], w, stride=strided, padding=w.shape[-1] // 2) + sd[f"{b}.bias{i}b"]
                if i < len(convs):
                    h = F.relu(h)
            projection = [k for k in sd if k.startswith(f"{b}.shortcut") and k.endswith("weight")]
            if projection:
                x = F.conv2d(x, sd[projection[0]], stride=stride)
            elif stride == 2:  # option A: subsample, zero channels appended (no BN)
                x = x[:, :, ::2, ::2]
                x = torch.cat([x, torch.zeros_like(x)], 1)
            x = F.relu(x + tau * h)
    return F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])


@pytest.mark.parametrize(
    "name, layers, size", [("tauresnet20_nobn_cifar", (3, 3, 3), 32), ("tauresnet50_nobn", (3, 4, 6, 3), 64)]
)
def test_nobn_equals_the_fixup_style_block_written_out(name, layers, size):
    """The biases start at 0 and the classifier is not zero-initialised (ARCHITECTURES.md); with random biases and
    tau the forward is the written-out formula."""
    model = timm.create_model(name).eval()
    scalars = {k: v for k, v in model.state_dict().items() if v.ndim == 0 and k != "tau"}
    assert len(scalars) == (6 if "50" in name else 4) * sum(layers) and all(v == 0 for v in scalars.values())
    assert model.fc.weight.abs().sum() > 0
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:
                p.uniform_(-0.1, 0.1)
        model.tau.fill_(0.4)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = _reference_nobn(model.state_dict(), layers, x, 0.4, imagenet="cifar" not in name)
        torch.testing.assert_close(model(x), ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-5)


def test_imagenet_tau_one_is_timm_resnet50(tmp_path):
    """tau = 1 with BN is the plain post-activation ResNet: timm's resnet50 weights load as they are and give the
    same logits."""
    resnet = randomize_bn(timm.create_model("resnet50")).eval()
    path = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), path)
    ours = timm.create_model("tauresnet50", tau=1.0, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    ours.eval()
    mapped = checkpoint_filter_fn(resnet.state_dict(), ours)
    assert len(mapped) == len(resnet.state_dict()) == len(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    ref = resnet(x)
    assert (ours(x) - ref).abs().max() <= 1e-5 * ref.abs().max()
    scaled = timm.create_model("tauresnet50").eval()  # the default tau 0.816 is a different network
    scaled.load_state_dict(mapped)
    assert not torch.allclose(scaled(x), ref, atol=1e-3)


def test_authors_checkpoint_layout_loads():
    """The authors' names (layerN.i, downsample.1), (1,)-shaped scalars, per-block aliases of the shared tau, a
    DataParallel prefix and a {'state_dict': ...} wrapper."""
    model = tiny_model("tauresnet20_nobn_cifar").eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:
                p.uniform_(0.1, 0.3)
    authors = {}
    for key, value in model.state_dict().items():
        key = re.sub(r"^stages\.(\d+)\.", lambda m: f"layer{int(m.group(1)) + 1}.", key)
        authors[f"module.{key}"] = value.reshape(1) if value.ndim == 0 else value
    for name in (n for n, _ in model.named_modules() if re.fullmatch(r"stages\.\d+\.\d+", n)):
        authors[f"module.layer{int(name.split('.')[1]) + 1}.{name.split('.')[2]}.tau"] = model.tau.detach().reshape(1)
    fresh = tiny_model("tauresnet20_nobn_cifar").eval()
    fresh.load_state_dict(checkpoint_filter_fn({"state_dict": authors}, fresh))
    x = tiny_input(model)
    torch.testing.assert_close(fresh(x), model(x))
    bn = tiny_model("tauresnet20_cifar")
    authors_bn = {
        re.sub(r"^stages\.(\d+)\.", lambda m: f"layer{int(m.group(1)) + 1}.", k): v for k, v in bn.state_dict().items()
    }
    authors_bn = {k.replace(".shortcut.norm.", ".downsample.1."): v for k, v in authors_bn.items()}
    assert checkpoint_filter_fn(authors_bn, bn).keys() == bn.state_dict().keys()
    with pytest.raises(ValueError, match=r"first missing key 'stages\.2\.0\.conv2\.weight'"):
        checkpoint_filter_fn({k: v for k, v in authors.items() if "layer3.0.conv2" not in k}, fresh)
    wrong = dict(bn.state_dict(), **{"stages.0.0.conv1.weight": torch.zeros(16, 16, 1, 1)})
    with pytest.raises(ValueError, match=r"'stages\.0\.0\.conv1\.weight' has shape \(16, 16, 1, 1\)"):
        checkpoint_filter_fn(wrong, bn)


@pytest.mark.parametrize("name", [n for n in NAMES if "_nobn" in n])
def test_nobn_parameters(name):
    """Every BN removed; 4 (basic) or 6 (bottleneck) scalar biases per block; exactly one tau, owned by the model."""
    nobn, bn = meta_model(name), meta_model(name.replace("_nobn", ""))
    blocks = sum(nobn.net.layers)
    per_block = 6 if nobn.net.block == "bottleneck" else 4
    bn_params = sum(p.numel() for m in bn.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in nobn.modules())
    assert n_params(nobn) == n_params(bn) - bn_params + per_block * blocks + 1
    keys = list(nobn.state_dict())
    assert [k for k in keys if k.rsplit(".", 1)[-1] == "tau"] == ["tau"]
    assert len([k for k in keys if re.search(r"\.bias\d[ab]$", k)]) == per_block * blocks
    assert nobn.no_weight_decay() == {"tau"} | {k for k in keys if re.search(r"\.bias\d[ab]$", k)}


def test_nobn_state_dict_is_safetensors_clean(tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model("tauresnet20_nobn_cifar").eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")  # refuses shared tensors
    fresh = tiny_model("tauresnet20_nobn_cifar").eval()
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    x = tiny_input(model)
    torch.testing.assert_close(fresh(x), model(x))


@pytest.mark.parametrize("name", ["tauresnet20_nobn_cifar", "tauresnet50_nobn"])
def test_tau_gradient_is_the_average_over_blocks(name):
    """grad(tau) = (sum of the blocks' contributions) / L, measured against one independent tau per block."""
    model = tiny_model(name).train()
    x = tiny_input(model)
    loss = model(x).square().mean()
    loss.backward()
    grad = model.tau.grad.clone()

    taus, h = [], model.forward_stem(x)
    for stage in model.stages:
        for block in stage:
            taus.append(model.tau.detach().clone().requires_grad_(True))
            h = block(h, taus[-1])
    ref_loss = model.forward_head(h).square().mean()
    per_block = torch.autograd.grad(ref_loss, taus)
    torch.testing.assert_close(loss, ref_loss)  # the forward value is untouched
    assert len(taus) == sum(model.net.layers) > 1
    torch.testing.assert_close(grad, torch.stack(per_block).sum() / len(taus))
    clone = copy.deepcopy(model)  # no hook to lose
    clone.zero_grad()
    clone(x).square().mean().backward()
    torch.testing.assert_close(clone.tau.grad, grad)


def test_optimizer_param_groups_scalars_at_lr_over_10():
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    model = tiny_model("tauresnet20_nobn_cifar")
    groups = model.optimizer_param_groups(lr=0.1, weight_decay=1e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    named = dict(model.named_parameters())
    scaled = [g for g in groups if "lr_scale" in g]
    assert len(scaled) == 1 and scaled[0]["lr_scale"] == 0.1 and scaled[0]["weight_decay"] == 0.0
    assert {id(p) for p in scaled[0]["params"]} == {id(named[n]) for n in model.no_weight_decay()}

    opt = create_optimizer_v2(
        model,
        "sgd",
        lr=0.1,
        weight_decay=1e-4,
        momentum=0.9,
        param_group_fn=lambda m: m.optimizer_param_groups(lr=0.1, weight_decay=1e-4),
    )
    sched, _ = create_scheduler_v2(opt, sched="step", num_epochs=3, decay_epochs=1, decay_rate=0.1, warmup_epochs=0)

    def group_of(p):
        return next(g for g in opt.param_groups if any(q is p for q in g["params"]))

    sched.step(0)  # timm's scheduler multiplies lr_scale in
    assert group_of(model.tau)["lr"] == pytest.approx(0.01) == group_of(named["stages.0.0.bias1a"])["lr"]
    assert group_of(model.conv1.weight)["lr"] == pytest.approx(0.1)
    assert group_of(model.conv1.weight)["weight_decay"] == 1e-4 and group_of(model.fc.bias)["weight_decay"] == 0.0
    sched.step(1)
    assert group_of(model.tau)["lr"] == pytest.approx(0.001) and group_of(model.fc.weight)["lr"] == pytest.approx(0.01)

    bn = tiny_model("tauresnet20_cifar")
    assert bn.no_weight_decay() == set()
    assert [g["weight_decay"] for g in bn.optimizer_param_groups(lr=0.1, weight_decay=1e-4)] == [1e-4, 0.0]
    # learnable strides are never decayed, and train at the full lr (only tau and the biases take lr/10)
    strided = tiny_model("tauresnet20_nobn_cifar", downsample="diffstride")
    strides = {n for n, _ in strided.named_parameters() if n.endswith(".strides")}
    assert strides and strides < strided.no_weight_decay()
    groups = strided.optimizer_param_groups(lr=0.1, weight_decay=1e-4)
    in_scaled = {id(p) for g in groups if "lr_scale" in g for p in g["params"]}
    in_plain = {id(p) for g in groups if "lr_scale" not in g and g["weight_decay"] == 0.0 for p in g["params"]}
    named = dict(strided.named_parameters())
    assert all(id(named[n]) in in_plain and id(named[n]) not in in_scaled for n in strides)

    model.conv1.weight.requires_grad_(False)  # a frozen stem is left out of every group
    model.tau.requires_grad_(False)
    kept = {id(p) for g in model.optimizer_param_groups(lr=0.1, weight_decay=1e-4) for p in g["params"]}
    assert kept == {id(p) for p in model.parameters() if p.requires_grad} and id(model.tau) not in kept


@pytest.mark.parametrize("shortcut", ["zero_pad", "conv"])
def test_a_stage_of_the_same_width_still_downsamples_its_shortcut(shortcut):
    """The first block of every later stage strides, so its shortcut changes the shape even where the width stays."""
    from timm_zerosnet.models.tauresnet import TauNetCfg

    model = TauResNet(TauNetCfg(layers=(1, 1, 1), widths=(16, 16, 16), shortcut=shortcut), num_classes=3).eval()
    assert [stage[0].shortcut is not None for stage in model.stages] == [False, True, True]
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 16, 8, 8)


@pytest.mark.parametrize("name", ["tauresnet20_cifar", "tauresnet20_nobn_cifar", "tauresnet50"])
def test_block_coefficients_and_scheme_state(name):
    from timm_zerosnet.analysis.stability import model_scheme_report

    model = timm.create_model(name)
    rows = model.block_coefficients()
    assert [r["block"] for r in rows] == [f"stages.{i}.{j}" for i, n in enumerate(model.net.layers) for j in range(n)]
    assert all(r["a"] == (1.0,) and r["b"] == (1.0,) for r in rows)
    assert all(r["param"] == {"step_size": model.current_tau()} for r in rows)
    assert model.current_tau() == pytest.approx(model.tau_init)
    transitions = {0, *[sum(model.net.layers[:i]) for i in range(1, len(model.net.layers))]}
    if model.net.stem == "cifar":
        transitions.discard(0)  # 16 -> 16 channels, stride 1: the identity
    assert [r["role"] for r in rows] == [ROLE_RESET if i in transitions else ROLE_MULTISTEP for i in range(len(rows))]
    assert model_scheme_report(model).zero_stable
    if model.tau is None:
        assert model.scheme_state() == {"step_size": model.tau_init}
    else:
        with torch.no_grad():
            model.tau.fill_(0.25)  # a trained tau is read live
        assert model.scheme_state() == {"step_size": 0.25, "tau": 0.25}
        assert rows[0]["param"] != model.block_coefficients()[0]["param"] == {"step_size": 0.25}


def test_nobn_output_scale_explodes_with_tau_one_and_stays_order_one_by_default():
    """ARCHITECTURES.md 4: at init, without BN, depth 110 blows up with tau = 1; tau = 1/sqrt(54) keeps it O(1)."""
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def feature_rms(tau):
        torch.manual_seed(0)
        model = timm.create_model("tauresnet110_nobn_cifar", tau=tau).eval()
        with torch.no_grad():
            return float(model.forward_features(x).square().mean().sqrt())

    exploded, default = feature_rms(1.0), feature_rms(None)  # measured: about 7e8 and 0.4 (input rms 1)
    input_rms = float(x.square().mean().sqrt())
    assert exploded / default > 1e6
    assert 0.1 * input_rms < default < 10 * input_rms


# the timm contract (forward/backward, checkpointing, features, intermediates, heads, bf16, drop path, script,
# FX, compile, export, pretrained adaptation) runs for every tauresnet in tests/test_models.py


def test_group_matcher_and_layer_decay_groups():
    from timm.optim import create_optimizer_v2

    model = tiny_model("tauresnet20_nobn_cifar")
    groups = timm.models.group_parameters(model, model.group_matcher())
    assert len(groups) > 2
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    opt = create_optimizer_v2(model, "sgd", lr=0.1, weight_decay=1e-4, layer_decay=0.7)
    assert len({g["lr_scale"] for g in opt.param_groups}) > 2
    for g in opt.param_groups:
        if any(p is model.tau for p in g["params"]):
            assert g["weight_decay"] == 0.0


# ----------------------------------------------------------------- the expensive parts, one model per architecture


def test_pruned_nobn_model_averages_tau_over_the_blocks_it_keeps():
    model = tiny_model("tauresnet20_nobn_cifar")
    assert model.tau_grad_scale == pytest.approx(1 / sum(model.net.layers))
    model.prune_intermediate_layers(indices=[0, 1])  # CIFAR: no stem level, so stages 0 and 1 stay
    kept = sum(len(stage) for stage in model.stages)
    assert len(model.stages) == 2 and kept == sum(model.net.layers[:2]) < sum(model.net.layers)
    assert model.tau_grad_scale == pytest.approx(1 / kept)


# ------------------------------------------------------------------------------------------ mutation-audit additions


@pytest.mark.parametrize("bad", [math.inf, -math.inf, 0.0])
def test_a_bad_tau_is_refused_by_the_model_with_the_default_named(bad):
    """tau is a step size: +-inf and 0 are refused like nan and negative values, by the model itself, with a message
    that names the default (a bare scheme error would not)."""
    expected = r"tau is the step size and must be a finite number > 0, got .*; None gives the default 0\.3333"
    with pytest.raises(ValueError, match=expected):
        timm.create_model("tauresnet20_nobn_cifar", tau=bad, device="meta")


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(block="bottle"), "block must be 'basic' or 'bottleneck', got 'bottle'"),
        (dict(stem="imagenet64"), "stem must be 'cifar' or 'imagenet', got 'imagenet64'"),
        (dict(shortcut="projection"), "shortcut must be 'zero_pad' or 'conv', got 'projection'"),
        (dict(layers=(3, 0, 3)), r"layers \(3, 0, 3\) must give at least one block for each of the widths"),
        (dict(layers=(3, 3)), r"layers \(3, 3\) must give at least one block for each of the widths \(16, 32, 64\)"),
        # F.pad with a negative amount dropped channels silently
        (
            dict(widths=(8, 16, 32)),
            r"shortcut='zero_pad' only appends channels, but a block goes from 16 to 8 channels",
        ),
        (dict(widths=(16, 32, 24)), r"goes from 32 to 24 channels; use shortcut='conv'"),
    ],
)
def test_a_bad_skeleton_is_refused(changes, match):
    from timm_zerosnet.models.tauresnet import TauNetCfg

    with pytest.raises(ValueError, match=match):
        TauResNet(dataclasses.replace(TauNetCfg(layers=(3, 3, 3)), **changes), device="meta")


def test_drop_path_drops_the_scaled_branch_not_the_shortcut():
    """Stochastic depth acts on tau * F only: a dropped block passes relu(shortcut(x)) on, it does not zero the
    block's output."""
    model = tiny_model("tauresnet20_nobn_cifar", drop_path_rate=0.5).train()
    x = model.forward_stem(tiny_input(model))
    tau = model.block_tau(x)
    dropped = 0
    with torch.no_grad():
        for stage in model.stages:
            for block in stage:
                if isinstance(block.drop_path, nn.Identity):  # the first block's rate is 0
                    x = block(x, tau)
                    continue
                block.drop_path.drop_prob = 1.0  # drop the branch for every sample
                shortcut = x if block.shortcut is None else block.shortcut(x)
                y = block(x, tau)
                torch.testing.assert_close(y, F.relu(shortcut), rtol=0, atol=0)
                assert y.abs().sum() > 0
                x, dropped = y, dropped + 1
    assert dropped == sum(model.net.layers) - 1


def test_forward_intermediates_refuses_other_output_formats():
    model = tiny_model("tauresnet20_cifar").eval()
    with pytest.raises(ValueError, match=r"output_fmt must be 'NCHW', got 'NHWC'"):
        model.forward_intermediates(tiny_input(model), output_fmt="NHWC")


@pytest.mark.parametrize("key", ["tau", "stages.0.0.bias1a"])
def test_a_scalar_of_the_wrong_size_in_a_checkpoint_is_named(key):
    """Only one-element scalars are reshaped to 0-d; a scalar key holding several values is a shape error that names
    the key, not a reshape failure."""
    model = tiny_model("tauresnet20_nobn_cifar")
    state = dict(model.state_dict(), **{key: torch.zeros(2)})
    with pytest.raises(ValueError, match=rf"'{re.escape(key)}' has shape \(2,\) but the model expects \(\)"):
        checkpoint_filter_fn(state, model)


@pytest.mark.parametrize("name", ["tauresnet20_cifar", "tauresnet50_nobn"])
def test_an_input_that_is_no_float_image_batch_is_refused_naming_the_fix(name):
    """As the multistep families (test_models.py): a bare torch error before ("expected 4D input", "expected scalar
    type Byte but found Float", a conv channel error); pooled features to forward_head were pooled again."""
    model = tiny_model(name).eval()
    x = tiny_input(model)
    takes = rf"^{name} takes a float batch of images of shape \(N, 3, H, W\); got "
    for bad, error, message in (
        (x[0], ValueError, r"a tensor of shape \(3, \d+, \d+\): add the batch dimension"),
        ((x * 50).to(torch.uint8), TypeError, r"torch\.uint8 pixels: convert and normalise them"),
        (x[:, :1], ValueError, r"1 channels .*build the model with in_chans=1\.$"),
    ):
        for call in (model, model.forward_intermediates):
            with pytest.raises(error, match=takes + message):
                call(bad)
    with pytest.raises(ValueError, match=r"^forward_head takes the unpooled feature map .*; got \(2, \d+\)\."):
        model.forward_head(model.forward_head(model.forward_features(x), pre_logits=True))
    with pytest.raises(ValueError, match=r"^output_fmt must be 'NCHW', got None: leave it out"):
        model.forward_intermediates(x, output_fmt=None)


@pytest.mark.parametrize("name", ["tauresnet20_cifar", "tauresnet20_nobn_cifar"])
@pytest.mark.parametrize(
    "tau, dtype, match",
    [
        (
            1e-50,
            None,
            r"tau=1e-50 is below what the model's torch\.float32 holds \(1\.18e-38 to .* would underflow to 0",
        ),
        (1e39, None, r"tau=1e\+39 is above what the model's torch\.float32 holds .* and would be inf"),
        (1e5, torch.float16, r"tau=100000\.0 is above what the model's torch\.float16 holds .* and would be inf"),
    ],
    ids=["underflow", "overflow", "float16"],
)
def test_a_tau_the_weights_dtype_cannot_hold_is_refused(name, tau, dtype, match):
    """A finite tau that the model's dtype cannot hold: before, float32 made tau=1e-50 a 0 (every residual branch
    silently gone; without BN current_tau() said 0 and the scheme 1e-50) and 1e39 an inf (NaN logits without BN, an
    overflow error in the first forward with BN)."""
    with pytest.raises(ValueError, match=match + r" there: pass a tau in that range, or None for the default 0\.3333"):
        timm.create_model(name, tau=tau, dtype=dtype, device="meta")
    model = timm.create_model(name, tau=1e39, dtype=torch.float64, device="meta")  # a dtype that holds it
    assert model.tau_init == model.scheme.step_size == 1e39


def test_net_and_variant_given_to_create_model_are_refused_naming_the_fix():
    """The entrypoint sets both: before, a bare "_create_tauresnet() got multiple values for keyword argument 'net'"
    (and 'variant') came from the call inside the entrypoint."""
    from timm_zerosnet.models.tauresnet import TauNetCfg

    with pytest.raises(TypeError, match=r"^tauresnet20_cifar builds its own skeleton .*TauResNet\(TauNetCfg\("):
        timm.create_model("tauresnet20_cifar", net=TauNetCfg(layers=(1, 1, 1)), device="meta")
    with pytest.raises(TypeError, match=r"^tauresnet50_nobn takes no model argument variant\. .*Leave variant out"):
        timm.create_model("tauresnet50_nobn", variant="tauresnet101_nobn", device="meta")
