"""Downsampling options in the networks: the DiffStride paper's ResNet-18 in its three forms, ZeroSNet with
learnable strides, and what a data-dependent output size means for export tooling."""

from __future__ import annotations

import copy
import warnings

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from timm_zerosnet import DiffStride, FixedSpectralPooling, freeze_diffstride, stride_regularizer

DS_MODELS = ["preresnet18_diffstride_cifar", "zerosnet18_diffstride_cifar"]
POOR = dict(strides=(1, 3, 2, 3), stem_stride=1)  # the paper's (1, 1, 3, 2, 3): stem, then the four stages


def stage_sizes(model, size=32):
    _, inter = model.eval().forward_intermediates(torch.randn(1, 3, size, size))
    return [t.shape[-1] for t in inter]


@pytest.mark.parametrize("name", DS_MODELS)
def test_feature_sizes_at_init_and_with_poor_strides(name):
    # DIFFSTRIDE.md: 32 -> 32 -> 24 -> 20 -> 18 at init; 32 -> 20 -> 18 -> 14 with (1, 1, 3, 2, 3)
    assert stage_sizes(timm.create_model(name)) == [32, 24, 20, 18]
    assert stage_sizes(timm.create_model(name, **POOR)) == [32, 20, 18, 14]
    model = timm.create_model(name)
    out = model.forward_features(torch.randn(1, 3, 32, 32))
    assert tuple(out.shape[-2:]) == tuple(model.pretrained_cfg["pool_size"])


def test_strided_and_spectral_forms():
    assert stage_sizes(timm.create_model("preresnet18_cifar")) == [32, 16, 8, 4]
    assert stage_sizes(timm.create_model("preresnet18_spectral_cifar")) == [32, 16, 8, 4]
    spectral = timm.create_model("preresnet18_spectral_cifar")
    pools = [m for m in spectral.modules() if isinstance(m, FixedSpectralPooling)]
    assert len(pools) == 3 and all(c.stride == (1, 1) for c in spectral.modules() if isinstance(c, torch.nn.Conv2d))
    # same parameters as the strided form: the pooling has none
    assert (
        sum(p.numel() for p in spectral.parameters())
        == sum(p.numel() for p in timm.create_model("preresnet18_cifar").parameters())
        == 11_172_170
    )


@pytest.mark.parametrize("name", DS_MODELS)
def test_one_pooling_instance_per_block_shared_by_every_path(name):
    model = timm.create_model(name)
    assert isinstance(model.stem_pool, DiffStride)
    for stage in model.stages:
        first = stage[0]
        assert isinstance(first.pool, DiffStride)
        assert sum(isinstance(m, DiffStride) for m in first.modules()) == 1
        convs = [first.conv1, first.conv2] + [p.conv for p in (first.shortcut, first.proj_last, first.proj_llast) if p]
        assert all(c.stride == (1, 1) for c in convs)
    # a ZeroSNet transition reads x_n, x_{n-1} and x_{n-2}: all of them go through the block's pool
    if name.startswith("zerosnet"):
        t = model.stages[1][0]
        assert t.reads == 3 and t.proj_last is not None and t.proj_llast is not None
        calls = []
        t.pool.register_forward_hook(lambda m, i, o: calls.append(o.shape))
        model(torch.randn(1, 3, 32, 32))
        assert len(calls) == 4 and len(set(calls)) == 1  # branch, x_n, x_{n-1}, x_{n-2}: one size


@pytest.mark.parametrize("name", ["preresnet18_diffstride_cifar", "preresnet18_spectral_cifar", "preresnet18_cifar"])
def test_a_transition_block_is_the_authors_wiring(name):
    """DIFFSTRIDE.md: the pooling follows the first conv (convs at stride 1), and the projection shortcut is a
    conv1x1 on the RAW input (not the pre-activated one) through the same pooling; the strided form strides the
    first conv and the shortcut instead."""
    import torch.nn.functional as F

    block = timm.create_model(name).eval().stages[1][0]
    for bn in (block.bn1, block.bn2):  # running statistics that are not the identity
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    pool, stride = (block.pool, 1) if block.pool is not None else ((lambda t: t), 2)
    x = torch.randn(1, 64, 32, 32)
    with torch.no_grad():
        branch = F.conv2d(F.relu(block.bn1(x)), block.conv1.weight, stride=stride, padding=1)
        branch = block.conv2(F.relu(block.bn2(pool(branch))))
        shortcut = pool(F.conv2d(x, block.shortcut.conv.weight, stride=stride))
        torch.testing.assert_close(block(x, x, x)[0], branch + shortcut)


@pytest.mark.parametrize("name", DS_MODELS)
def test_strides_learn_and_are_not_weight_decayed(name):
    model = timm.create_model(name).train()
    out = model(torch.randn(2, 3, 32, 32))  # the forward clips strides (S >= H / (H - R)); regularise after it
    reg = stride_regularizer(model)
    strides = [m.strides for m in model.modules() if isinstance(m, DiffStride)]
    assert len(strides) == 5
    areas, expected = 1.0, 0.0
    for s in strides:
        areas = areas / (s[0] * s[1])
        expected = expected + areas
    torch.testing.assert_close(reg, expected)
    (out.square().mean() + 0.1 * reg).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in strides)
    names = {n for n, p in model.named_parameters() if n.endswith("strides")}
    assert names and names <= model.no_weight_decay()


@pytest.mark.parametrize("name", DS_MODELS)
@pytest.mark.parametrize("sizes", [(32, 30), (32, 8)])
def test_grad_checkpointing_with_forwards_at_several_sizes_before_one_backward(name, sizes):
    """A training forward clips the strides in place for its input size. With grad checkpointing the recomputation of
    the first forward ran with the strides the second one had clipped: gradients off by more than 100% (32 then 30),
    or checkpoint's CheckpointError about recomputed shapes (32 then 8)."""
    torch.manual_seed(0)
    model = timm.create_model(name).train()
    with torch.no_grad():  # strides of 1: every input size clips them to its own bound
        for m in model.modules():
            if isinstance(m, DiffStride):
                m.strides.fill_(1.0)
    plain = copy.deepcopy(model)
    model.set_grad_checkpointing(True)
    xs = [torch.randn(2, 3, s, s) for s in sizes]
    for net in (model, plain):
        sum(net(x).square().mean() for x in xs).backward()
    for (n, p), q in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)
        torch.testing.assert_close(p, q, msg=n)  # the strides as the last forward clipped them


def test_bad_strides_are_rejected():
    with pytest.raises(ValueError, match="fractional strides"):
        timm.create_model("preresnet18_cifar", strides=(1, 1.5, 2, 2))
    with pytest.raises(ValueError, match="one stride >= 1 for each"):
        timm.create_model("zerosnet20_cifar", strides=(1, 2))
    with pytest.raises(ValueError, match="downsample must be"):
        timm.create_model("zerosnet20_cifar", downsample="maxpool")
    for name, kwargs in (("preresnet20_cifar", {}), ("preresnet18_spectral_cifar", {}), ("zerosnet18", {})):
        with pytest.raises(ValueError, match=r"stem_stride=2 .* only downsample='diffstride' has"):
            timm.create_model(name, stem_stride=2, **kwargs)  # it was silently ignored
    model = timm.create_model("preresnet20_cifar", downsample="diffstride", stem_stride=2)
    assert model.stem_pool.strides.tolist() == [2.0, 2.0]
    # feature_info's nominal reductions count the stem's stride too (they left it out: [1, 2, 4], [1, 1, 1])
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8]
    flat = timm.create_model("zerosnet20_cifar", downsample="diffstride", stem_stride=4, strides=(1, 1, 1))
    assert [f["reduction"] for f in flat.feature_info] == [4, 4, 4]
    imagenet = timm.create_model("zerosnet18", downsample="diffstride", stem_stride=1.5)
    assert [f["reduction"] for f in imagenet.feature_info] == [2, 6, 12, 24, 48]


def test_every_family_takes_the_downsampling_option():
    families = ("zerosnet20_cifar", "zerosnet20_tra_cifar", "lmresnet20_cifar", "preresnet20_cifar", "zerosnet18")
    for name in families + ("tauresnet20_cifar", "tauresnet20_nobn_cifar"):
        for kind in ("spectral", "diffstride", "subsample"):
            model = timm.create_model(name, downsample=kind).eval()
            size = 32 if name.endswith("_cifar") else 64
            out = model(torch.randn(2, 3, size, size))
            assert out.shape[0] == 2 and torch.isfinite(out).all(), (name, kind)


@pytest.mark.parametrize("name", ["tauresnet20_cifar", "tauresnet20_nobn_cifar", "tauresnet50", "tauresnet50_nobn"])
def test_tau_resnet_downsamples_with_one_layer_shared_by_branch_and_shortcut(name):
    """ARCHITECTURES.md: DiffStride is usable in any of the families; tau-ResNet refused downsample= ('takes no model
    argument'). Its transition blocks run the branch's conv at stride 1, then one layer that the shortcut's input
    goes through too: with 'subsample' that is the strided network itself, with the same weights."""
    size = 32 if name.endswith("_cifar") else 64
    x = torch.randn(2, 3, size, size)
    strided = timm.create_model(name).eval()
    subsampled = timm.create_model(name, downsample="subsample").eval()
    subsampled.load_state_dict(strided.state_dict())  # the same parameters: only the strides move into the layers
    torch.testing.assert_close(subsampled(x), strided(x))
    model = timm.create_model(name, downsample="diffstride").train()
    transitions = [b for stage in model.stages for b in stage if b.pool is not None]
    assert len(transitions) == len(model.stages) - 1 and all(isinstance(b.pool, DiffStride) for b in transitions)
    assert all(b.shortcut is not None and b.pool not in list(b.shortcut.modules()) for b in transitions)
    assert [f["reduction"] for f in model.feature_info] == [f["reduction"] for f in strided.feature_info]
    model(x).square().mean().backward()
    assert all(b.pool.strides.grad is not None and b.pool.strides.grad.abs().sum() > 0 for b in transitions)
    final = strided.feature_info[-1]["reduction"]
    with pytest.raises(ValueError, match=rf"output_stride={final // 2} dilates the stages .* downsample='spectral'"):
        timm.create_model(name, downsample="spectral", output_stride=final // 2)
    # an output_stride that dilates nothing (the network's final reduction, or more) builds the pooled network
    for output_stride in (final, 2 * final):
        same = timm.create_model(name, downsample="subsample", output_stride=output_stride).eval()
        same.load_state_dict(strided.state_dict())
        torch.testing.assert_close(same(x), strided(x))
    with pytest.raises(ValueError, match="downsample must be 'conv', 'spectral', 'subsample' or 'diffstride'"):
        timm.create_model(name, downsample="maxpool")


@pytest.mark.parametrize("name", ["tauresnet20_cifar", "tauresnet20_nobn_cifar"])
def test_tau_resnet_takes_stage_strides_and_a_stem_stride_as_the_other_families(name):
    """tau-ResNet refused strides= and stem_stride= ('takes no model argument'), and with downsample='diffstride'
    had no DiffStride after the stem, which the DiffStride authors' network and the other families have. Now the
    same options build the same downsampling: the feature sizes of a pre-act ResNet-20 with the same options."""
    model = timm.create_model(name, downsample="diffstride")
    assert isinstance(model.stem_pool, DiffStride) and model.stem_pool.strides.tolist() == [1.0, 1.0]
    assert "stem_pool.strides" in model.no_weight_decay()
    from timm.models import group_parameters

    assert "stem_pool.strides" in next(iter(group_parameters(model, model.group_matcher()).values()))
    for kwargs in (
        dict(downsample="diffstride"),
        dict(downsample="diffstride", strides=(1, 3, 1.5), stem_stride=1.5),
        dict(strides=(2, 1, 3)),
        dict(downsample="spectral", strides=(1, 4, 2)),
    ):
        tau = timm.create_model(name, **kwargs)
        sizes = stage_sizes(tau)
        assert sizes == stage_sizes(timm.create_model("preresnet20_cifar", **kwargs)), kwargs
        reductions = [f["reduction"] for f in tau.feature_info]
        assert reductions == [f["reduction"] for f in timm.create_model("preresnet20_cifar", **kwargs).feature_info]
        tau.train()(torch.randn(2, 3, 32, 32)).square().mean().backward()
        assert all(p.grad is not None for p in tau.parameters()), kwargs
    assert stage_sizes(timm.create_model(name, strides=(2, 1, 3))) == [16, 16, 6]
    # an output_stride that dilates nothing keeps fractional strides (int() had cut 1.5 to 1, and it was refused)
    kept = timm.create_model(name, downsample="diffstride", strides=(1, 1.5, 2), output_stride=64)
    assert [f["reduction"] for f in kept.feature_info] == [1, 1.5, 3]
    assert isinstance(timm.create_model(name, strides=(2, 1, 3)).stages[0][0].shortcut, torch.nn.Module)
    with pytest.raises(ValueError, match=r"fractional strides \(1, 1.5, 2\) need downsample='diffstride'"):
        timm.create_model(name, strides=(1, 1.5, 2))
    with pytest.raises(ValueError, match=r"stem_stride=2 .* only downsample='diffstride' has .* 'subsample'"):
        timm.create_model(name, downsample="subsample", stem_stride=2)
    with pytest.raises(ValueError, match=r"must give one stride >= 1 for each of the 3 stages"):
        timm.create_model(name, strides=(1, 2))
    with pytest.raises(ValueError, match=r"strides takes one stride per stage of this network \(3 stages\)"):
        timm.create_model(name, strides=2)


def test_tau_resnet_diffstride_weights_from_before_the_stem_layer_are_refused_in_words(tmp_path):
    """downsample='diffstride' weights of a tau-ResNet saved before a DiffStride layer followed its stem lack
    stem_pool.strides: the load said the checkpoint was of another model, and pretrained_strict=False gives other
    outputs. The error says what they are."""
    from safetensors.torch import save_file

    new = timm.create_model("tauresnet20_cifar", downsample="diffstride")
    old = {k: v for k, v in new.state_dict().items() if not k.startswith("stem_pool.")}
    save_file(old, tmp_path / "old.safetensors")
    overlay = dict(file=str(tmp_path / "old.safetensors"))
    with pytest.raises(ValueError, match=r"no stem_pool\.strides: .* from before a DiffStride layer followed its stem"):
        timm.create_model("tauresnet20_cifar", downsample="diffstride", pretrained=True, pretrained_cfg_overlay=overlay)
    strided = {k: v for k, v in timm.create_model("tauresnet20_cifar").state_dict().items()}
    save_file(strided, tmp_path / "strided.safetensors")  # no learned strides at all: the usual missing-key error
    with pytest.raises(Exception, match=r"stem_pool\.strides|pool\.strides") as e:
        timm.create_model(
            "tauresnet20_cifar",
            downsample="diffstride",
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(tmp_path / "strided.safetensors")),
        )
    assert "from before a DiffStride layer" not in str(e.value)


def test_export_tooling_with_learnable_strides():
    model = timm.create_model("zerosnet18_diffstride_cifar").eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.jit.script(model)
    torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x))
    with pytest.raises(Exception, match="freeze_diffstride"):
        torch.export.export(model, (x,))
    with pytest.raises(RuntimeError, match="torch.jit.trace cannot record.*freeze_diffstride"):
        torch.jit.trace(model, x, check_trace=False)  # it would bake in the sizes and clip outside autograd
    features = timm.create_model("preresnet18_diffstride_cifar", features_only=True)
    assert [f.shape[-1] for f in features(x)] == [32, 24, 20, 18]
    assert features.feature_info.reduction() == [1, 2, 4, 8]  # nominal, documented
    compiled = torch.compile(timm.create_model("preresnet18_diffstride_cifar").eval(), backend="eager")
    assert compiled(x).shape == (2, 10)
    freeze_diffstride(model, x)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))
    torch.testing.assert_close(torch.jit.trace(model, x)(x), model(x))


def _spectral_model(**kwargs):
    torch.manual_seed(0)
    return timm.create_model("preresnet18_spectral_cifar", **kwargs).eval()


def test_spectral_model_torchscript_matches_eager():
    """Fixed spectral pooling has a static output size, so the model contract's TorchScript holds (TIMM.md)."""
    model = _spectral_model()
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def test_spectral_model_fx_trace_matches_eager():
    model = _spectral_model()
    x = torch.randn(2, 3, 32, 32)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


def test_spectral_model_fx_features_match_getter():
    x = torch.randn(2, 3, 32, 32)
    fx_features = _spectral_model(features_only=True, feature_cls="fx")
    getter_features = _spectral_model(features_only=True)
    with torch.no_grad():
        got, expected = fx_features(x), getter_features(x)
    assert [f.shape[-1] for f in got] == [32, 16, 8, 4]
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_learnable_strides_follow_dtype_and_the_stem_group():
    """Every parameter is built in the requested dtype, and the stem's stride belongs to the stem's parameter group
    (layer-wise lr decay scales it like the stem, not like the head)."""
    from timm.models import group_parameters

    model = timm.create_model("zerosnet18_diffstride_cifar", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    groups = group_parameters(model, model.group_matcher())
    first = next(iter(groups.values()))
    assert {"conv1.weight", "stem_pool.strides"} <= set(first)
    assert not any("stem_pool" in n for names in list(groups.values())[1:] for n in names)


def conv_gmacs(model, size=32):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    counts = counter.get_flop_counts()["Global"]
    return sum(v for k, v in counts.items() if "convolution" in str(k)) / 2 / 1e9


def test_conv_cost_of_learnable_strides():
    """DIFFSTRIDE.md: at init DiffStride keeps larger maps, about 7.6x the conv work of the strided ResNet-18."""
    strided = conv_gmacs(timm.create_model("preresnet18_cifar"))
    diff = conv_gmacs(timm.create_model("preresnet18_diffstride_cifar"))
    assert strided == pytest.approx(0.556, rel=0.02)
    assert diff / strided == pytest.approx(7.6, rel=0.01)
    # with pooling the first conv of a downsampling block runs before the pool, at the input resolution
    spectral = conv_gmacs(timm.create_model("preresnet18_spectral_cifar"))
    assert strided < spectral < diff


@pytest.mark.parametrize("name", ["preresnet18_spectral_cifar", "zerosnet18_diffstride_cifar"])
def test_an_empty_batch_gives_an_empty_output_as_timms_resnets_do(name):
    """MKL's FFT refused a batch of 0 images (an empty last shard of a distributed evaluation): 'Inconsistent
    configuration parameters'. The spectral layers now return an empty output of the right size, eval and train,
    as conv layers do, and an empty batch leaves the learned strides as they are. Its backward gives every
    parameter a zero gradient, as timm's resnets do (the empty output had been cut from the input and the strides:
    most gradients stayed None, which DDP without find_unused_parameters does not allow on one rank)."""
    model = timm.create_model(name, num_classes=7).train()
    full = model.forward_intermediates(torch.randn(2, 3, 32, 32), intermediates_only=True)  # clips the strides
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for mode in ("eval", "train"):
        getattr(model, mode)()
        assert model(torch.randn(0, 3, 32, 32)).shape == (0, 7)
        empty = model.forward_intermediates(torch.randn(0, 3, 32, 32), intermediates_only=True)
        assert [f.shape for f in empty] == [(0, *f.shape[1:]) for f in full]
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    model.train()(torch.randn(0, 3, 32, 32)).sum().backward()
    none = [n for n, p in model.named_parameters() if p.grad is None]
    assert not none and all(not p.grad.any() for p in model.parameters()), none
    pool = FixedSpectralPooling(2.0)
    assert torch.jit.script(pool)(torch.randn(0, 3, 8, 8)).shape == (0, 3, 4, 4)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("zerosnet20_cifar", dict(downsample="diffstride")),
        ("preresnet18_diffstride_cifar", dict(strides=(1, 3, 2, 3))),
        ("lmresnet20_cifar", dict(downsample="subsample", output_stride=2)),
        ("tauresnet20_cifar", dict(downsample="diffstride", in_chans=1)),
        ("tauresnet20_cifar", dict(output_stride=2)),
        ("tauresnet20_nobn_cifar", dict(strides=(1, 2, 4))),
    ],
)
def test_pretrained_cfg_pool_size_follows_options_that_change_the_strides(name, kwargs):
    """TIMM.md: forward_features has the cfg's pool_size at its input_size. An option that changed the strides left
    the registered network's value: zerosnet20_cifar with downsample='diffstride' said (8, 8) for 20x20 features,
    the DiffStride paper's poor init (18, 18) for 14x14 (and config.json took it on export)."""
    default = timm.create_model(name).pretrained_cfg["pool_size"]
    model = timm.create_model(name, **kwargs)
    assert model.training and model.default_cfg is model.pretrained_cfg
    size = model.pretrained_cfg["input_size"][1:]
    with torch.no_grad():
        features = model.eval().forward_features(torch.zeros(1, model.in_chans, *size))
    assert model.pretrained_cfg["pool_size"] == tuple(features.shape[-2:]) != default
    assert timm.create_model(name).pretrained_cfg["pool_size"] == default  # the registry's cfg is left as it was
