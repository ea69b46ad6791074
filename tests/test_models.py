"""The timm model contract, for every registered model of every family (timm's tests/test_models.py in spirit).

Cheap checks run on the registered models themselves (on the meta device where shapes are all that matter);
checks that run real arithmetic use a tiny version with the same scheme and skeleton (conftest.tiny_model);
compile / export / script / ONNX run on one representative per distinct architecture.
"""

from __future__ import annotations

import copy
import io
import re

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models._features import FeatureGetterNet
from torch.export import Dim

from conftest import REPRESENTATIVES, distinct_tiny, family_models, tiny_input, tiny_model

MODELS = family_models()
TINY = distinct_tiny(MODELS)  # one name per distinct tiny model: depths of one skeleton and scheme share it

# ARCHITECTURES.md "used params" tables (10 classes for CIFAR, 1000 for ImageNet).
SPEC_PARAMS = {
    "zerosnet20_cifar": 277_402,
    "zerosnet32_cifar": 471_834,
    "zerosnet44_cifar": 666_266,
    "zerosnet56_cifar": 860_698,
    "zerosnet110_cifar": 1_735_642,
    "zerosnet164_cifar": 1_786_234,
    "zerosnet18": 12_030_888,
    "zerosnet34": 22_139_048,
    "zerosnet50": 31_050_408,
    "zerosnet101": 50_042_536,
    "lmresnet20_cifar": 272_384,
    "lmresnet32_cifar": 466_822,
    "lmresnet44_cifar": 661_260,
    "lmresnet56_cifar": 855_698,
    "lmresnet110_cifar": 1_730_669,
    "lmresnet164_cifar": 1_703_725,
    "preresnet20_cifar": 272_378,
    "preresnet32_cifar": 466_810,
    "preresnet44_cifar": 661_242,
    "preresnet56_cifar": 855_674,
    "preresnet110_cifar": 1_730_618,
    "preresnet164_cifar": 1_703_674,
    "preresnet18": 11_686_824,
    "preresnet34": 21_794_984,
    "preresnet50": 25_545_384,
    "preresnet101": 44_537_512,
}
# "Tra adds one lambda per multistep block": blocks - 2 on CIFAR; 6 / 14 / 14 / 31 on ImageNet 18 / 34 / 50 / 101.
TRA_EXTRA = {"18": 6, "34": 14, "50": 14, "101": 31, "152": 48}


def shape_device(name: str) -> str:
    """The meta device saves building an ImageNet-size model's weights; a 32x32 model runs faster on the CPU (meta
    kernels dispatch through Python: tauresnet1202_cifar took 6 s there, 0.4 s on the CPU), and DiffStride decides
    its output size from real values."""
    return "cpu" if name.endswith("_cifar") else "meta"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_issue_model_is_registered():
    cifar = [f"{f}{d}_cifar" for f in ("zerosnet", "lmresnet", "preresnet") for d in (20, 32, 44, 56, 110, 164)]
    cifar += [f"zerosnet{d}_tra_cifar" for d in (20, 32, 44, 56, 110, 164)]
    imagenet = [f"{f}{d}" for f in ("zerosnet", "lmresnet", "preresnet") for d in (18, 34, 50, 101, 152)]
    imagenet += [f"zerosnet{d}_tra" for d in (18, 34, 50, 101, 152)]
    diffstride = ["preresnet18_cifar", "preresnet18_spectral_cifar", "preresnet18_diffstride_cifar"]
    diffstride += ["zerosnet18_diffstride_cifar"]
    tau = [f"tauresnet{d}{v}_cifar" for d in (20, 32, 44, 56, 110, 1202) for v in ("", "_nobn")]
    tau += [f"tauresnet{d}{v}" for d in (50, 101, 152) for v in ("", "_nobn")]
    assert sorted(cifar + imagenet + diffstride + tau) == MODELS


@pytest.mark.parametrize("name", sorted(SPEC_PARAMS))
def test_param_count_equals_spec(name):
    assert n_params(timm.create_model(name, device="meta")) == SPEC_PARAMS[name]


# ARCHITECTURES.md 1.3 (and 4 for tau-ResNet): blocks per stage of the ImageNet depths
IMAGENET_LAYERS = {
    "18": (2, 2, 2, 2),
    "34": (3, 4, 6, 3),
    "50": (3, 4, 6, 3),
    "101": (3, 4, 23, 3),
    "152": (3, 8, 36, 3),
}


@pytest.mark.parametrize("name", [n for n in MODELS if re.fullmatch(r"[a-z]+(\d+)(_tra|_nobn)?", n)])
def test_imagenet_layer_lists_follow_the_spec(name):
    model = timm.create_model(name, device="meta")
    depth = re.search(r"\d+", name).group()
    assert model.net.layers == IMAGENET_LAYERS[depth]
    assert model.net.block == ("basic" if depth in ("18", "34") else "bottleneck")


@pytest.mark.parametrize("name", [n for n in MODELS if "_tra" in n])
def test_tra_adds_one_lambda_per_multistep_block(name):
    tra = timm.create_model(name, device="meta")
    opt = timm.create_model(name.replace("_tra", ""), device="meta")
    blocks = sum(tra.net.layers)
    extra = blocks - 2 if name.endswith("_cifar") else TRA_EXTRA[re.search(r"(\d+)", name).group(1)]
    assert n_params(tra) - n_params(opt) == extra == len([k for k in tra.state_dict() if k.endswith(".lam")])


@pytest.mark.parametrize("name", MODELS)
def test_default_cfg_consistency(name):
    model = timm.create_model(name, device=shape_device(name))
    cfg = model.pretrained_cfg
    x = torch.zeros((1, *cfg["input_size"]), device=shape_device(name))
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features == model.head_hidden_size
    assert tuple(feats.shape[-2:]) == tuple(cfg["pool_size"])
    assert model(x).shape == (1, cfg["num_classes"]) == (1, model.num_classes)
    params = dict(model.named_parameters())
    assert cfg["first_conv"] + ".weight" in params and params[cfg["first_conv"] + ".weight"].shape[1] == 3
    assert cfg["classifier"] + ".weight" in params
    assert params[cfg["classifier"] + ".weight"].shape == (cfg["num_classes"], model.num_features)
    for key in ("mean", "std", "crop_pct", "interpolation", "license", "paper_ids"):
        assert cfg.get(key), key
    # RECIPES.md's CIFAR-10 normalisation, no crop; ImageNet-style: timm's ImageNet statistics, its 0.875 crop
    if name.endswith("_cifar"):
        stats = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 1.0, (3, 32, 32))
    else:
        stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.875, (3, 224, 224))
    assert (tuple(cfg["mean"]), tuple(cfg["std"]), cfg["crop_pct"], tuple(cfg["input_size"])) == stats


# each family's own model arguments (its _create_<family>), beside the model class's
FAMILY_ARGS = {
    "zerosnet": {"lam", "coefficients", "trainable", "lam_eps", "tau", "downsample", "strides", "stem_stride"},
    "lmresnet": {"k_init", "tau", "downsample", "strides", "stem_stride"},
    "preresnet": {"tau", "downsample", "strides", "stem_stride"},
    "tauresnet": {"tau", "downsample", "strides", "stem_stride"},
}
MODEL_ARGS = {
    "num_classes",
    "in_chans",
    "global_pool",
    "drop_rate",
    "drop_path_rate",
    "output_stride",
    "device",
    "dtype",
}


@pytest.mark.parametrize("name", MODELS)
def test_unknown_kwarg_is_refused_naming_the_arguments_there_are(name):
    """timm ResNet's drop_block_rate (or any stranger) is a TypeError, as Python's would be, that lists every
    argument the model takes, and nothing the entrypoint sets itself."""
    with pytest.raises(TypeError, match=rf"^{name} takes no model argument drop_block_rate, not_an_option\. ") as exc:
        timm.create_model(name, device="meta", not_an_option=1, drop_block_rate=0.1)
    listed = set(re.search(r"Its model arguments are ([\w, ]+);", str(exc.value)).group(1).split(", "))
    assert listed == FAMILY_ARGS[re.match("[a-z]+", name).group()] | MODEL_ARGS


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "zerosnet50_tra", "lmresnet18", "preresnet20_cifar"])
@pytest.mark.parametrize("arg", ["net", "scheme", "variant"])
def test_what_the_entrypoint_sets_is_refused_as_a_model_argument(name, arg):
    """net=, scheme= and variant= collided with the entrypoint's own ("got multiple values for keyword argument
    'net'", which named no fix): refused as any argument the model does not take."""
    with pytest.raises(TypeError, match=rf"^{name} takes no model argument {arg}\. Its model arguments are "):
        timm.create_model(name, device="meta", **{arg: 1})


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet18", "preresnet20_cifar", "tauresnet20_cifar"])
def test_feature_wrappers_that_cannot_run_the_model_are_refused(name):
    """timm's FeatureListNet / FeatureDictNet run the top-level modules as a chain, which these forwards are not:
    refused with what to pass instead (timm's own error was an AssertionError about missing layers). The wrappers
    that work still do, and feature options without features_only say what they need."""
    from timm.models import FeatureDictNet, FeatureListNet

    for feature_cls in ("list", "dict", "Dict", FeatureListNet, FeatureDictNet):
        with pytest.raises(ValueError, match="is not such a chain .*pass 'hook' or 'fx'"):
            timm.create_model(name, features_only=True, feature_cls=feature_cls, device="meta")
    with pytest.raises(ValueError, match="feature_cls='lists' is not a feature wrapper of timm that runs"):
        timm.create_model(name, features_only=True, feature_cls="lists", device="meta")
    with pytest.raises(TypeError, match="^out_indices choose the feature maps of features_only=True: add it"):
        timm.create_model(name, out_indices=(1,), device="meta")
    size = 32 if name.endswith("_cifar") else 64
    for feature_cls in ("getter", "hook", "fx"):
        model = timm.create_model(name, features_only=True, feature_cls=feature_cls, out_indices=(1,))
        (feat,) = model(torch.zeros(1, 3, size, size))
        assert feat.shape[1] == model.feature_info.channels()[0]
    # timm's feature_cfg (a TypeError, "got multiple values for keyword argument 'feature_cfg'", before): its
    # out_indices and feature_cls are checked as create_model's, which win over them as in timm's builder
    model = timm.create_model(name, features_only=True, feature_cfg=dict(feature_cls="hook", out_indices=(1,)))
    assert type(model).__name__ == "FeatureHookNet" and len(model.feature_info.channels()) == 1
    both = timm.create_model(name, features_only=True, feature_cfg=dict(out_indices=(1,)), out_indices=(0, 1))
    assert both.feature_info.channels() == timm.create_model(name, features_only=True).feature_info.channels()[:2]
    with pytest.raises(ValueError, match="is not such a chain"):
        timm.create_model(name, features_only=True, feature_cfg=dict(feature_cls="list"), device="meta")
    with pytest.raises(TypeError, match="^feature_cfg choose the feature maps of features_only=True"):
        timm.create_model(name, feature_cfg=dict(out_indices=(1,)), device="meta")
    with pytest.raises(TypeError, match="^feature_cfg must be a dict"):
        timm.create_model(name, features_only=True, feature_cfg=3, device="meta")
    # NHWC maps: the getter refused them at the first forward only, the hook and fx wrappers returned NCHW ones
    for feature_cls in ("getter", "hook", "fx"):
        with pytest.raises(ValueError, match=r"^feature_cfg output_fmt='NHWC': .* feature maps are NCHW only"):
            cfg = dict(output_fmt="NHWC", feature_cls=feature_cls)
            timm.create_model(name, features_only=True, feature_cfg=cfg, device="meta")
    nchw = timm.create_model(name, features_only=True, feature_cfg=dict(output_fmt="NCHW"), device="meta")
    assert type(nchw).__name__ == "FeatureGetter"


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "tauresnet20_cifar"])
def test_feature_cfg_and_builder_options_the_model_would_ignore_or_lacks_are_refused(name):
    """timm's FeatureGetterNet, the default wrapper here, stores return_dict and out_map and returns a list anyway
    (a user asking for a dict got a list without a word); an option no wrapper takes was a bare TypeError from
    inside timm's builder, pruned=True a FileNotFoundError for timm/models/_pruned/<name>.txt, and the builder's
    pretrained_filter_fn / model_cfg clashed with the family's own. Each is refused at create_model, naming what to
    pass; the wrappers that honour an option still take it."""
    for cfg in (dict(return_dict=True), dict(out_map=("a", "b", "c")), dict(feature_cls="getter", return_dict=True)):
        with pytest.raises(ValueError, match=r"^feature_cfg (return_dict|out_map)=.* ignores it and returns a list\. "):
            timm.create_model(name, features_only=True, feature_cfg=cfg, device="meta")
    for cfg, wrapper in ((dict(foo=1), "FeatureGetterNet"), (dict(feature_cls="fx", norm=True), "FeatureGraphNet")):
        with pytest.raises(TypeError, match=rf"^feature_cfg (foo|norm): not an option of timm's {wrapper}, .* takes "):
            timm.create_model(name, features_only=True, feature_cfg=cfg, device="meta")
    with pytest.raises(ValueError, match=rf"^pruned=True builds .* {name} has none\. Leave pruned out"):
        timm.create_model(name, pruned=True, device="meta")
    # builder arguments the family sets itself: "got multiple values for keyword argument", a model class's cfg=
    for kwargs in (dict(pretrained_filter_fn=lambda state_dict, model: state_dict), dict(model_cfg={})):
        with pytest.raises(TypeError, match=rf"^{name} takes no model argument {next(iter(kwargs))}\. "):
            timm.create_model(name, **kwargs, device="meta")
    x = torch.zeros(1, 3, 32, 32)
    hook = timm.create_model(name, features_only=True, feature_cfg=dict(feature_cls="hook", return_dict=True))
    assert len(hook(x)) == 3 and isinstance(hook(x), dict)
    fx = timm.create_model(name, features_only=True, feature_cls="fx", feature_cfg=dict(return_dict=True))
    assert isinstance(fx(x), dict)
    getter = timm.create_model(name, features_only=True, feature_cfg=dict(return_dict=False, norm=True, prune=False))
    assert isinstance(getter(x), list)


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet18", "tauresnet20_cifar"])
def test_feature_indices_that_select_no_level_are_refused_naming_the_levels(name):
    """out_indices / indices that select nothing, a level the network lacks or no integer: a ValueError naming the
    levels, from create_model, forward_intermediates and prune_intermediate_layers alike (timm's own failures were
    max() of an empty sequence, an AssertionError, gone under python -O, and slice errors). timm's forms still work:
    a count, negative indices, NumPy integers, a range."""
    import numpy as np

    levels = 3 if name.endswith("_cifar") else 5
    size = 32 if name.endswith("_cifar") else 64
    x = torch.zeros(2, 3, size, size)
    for bad in ((), (levels,), (-levels - 1,), 0, levels + 1, "a", (1.0,), [0, "1"], True):
        with pytest.raises(ValueError, match=rf"^out_indices=.*: .*the network has {levels} feature levels \(0 to "):
            timm.create_model(name, features_only=True, out_indices=bad, device="meta")
    model = timm.create_model(name).eval()
    with pytest.raises(ValueError, match=rf"^indices=\[\]: the network has {levels} feature levels"):
        model.forward_intermediates(x, indices=[])
    with pytest.raises(ValueError, match=rf"^indices=\[{levels}\]: no level {levels}; the network has"):
        model.prune_intermediate_layers(indices=[levels])
    for twice in ((0, 0), (0, -levels)):
        with pytest.raises(ValueError, match=r"^out_indices=.* names a level twice .*Name each level once\."):
            timm.create_model(name, features_only=True, out_indices=twice, device="meta")
        with pytest.raises(ValueError, match=r"^indices=.* names a level twice"):
            model.forward_intermediates(x, indices=list(twice))
    goods = ((1, [levels - 1]), ((-1, 0), [0, levels - 1]), ((np.int64(1),), [1]), (range(2), [0, 1]))
    # a NumPy integer or a 0-d tensor as a count: timm's feature_take_indices iterated it (a TypeError)
    goods += ((np.int64(2), [levels - 2, levels - 1]), (torch.tensor(1), [levels - 1]))
    for good, want in goods:
        features = timm.create_model(name, features_only=True, out_indices=good).eval()
        assert [f.shape[1] for f in features(x)] == [model.feature_info[i]["num_chs"] for i in want]
        taken = model.forward_intermediates(x, indices=good, intermediates_only=True)
        assert [f.shape[1] for f in taken] == [model.feature_info[i]["num_chs"] for i in want]
    assert copy.deepcopy(model).prune_intermediate_layers(np.int64(1)) == [levels - 1]


@pytest.mark.parametrize("name", ["preresnet20_cifar", "lmresnet20_cifar", "zerosnet20_cifar", "zerosnet20_tra_cifar"])
def test_a_tau_the_weights_dtype_cannot_hold_is_refused_in_every_family(name):
    """tau-ResNet refused a step size its dtype cannot hold; the multistep families built the model: tau=1e-50 made
    every residual branch 0 in float32 without a word, tau=1e5 in float16 gave NaN logits."""
    for tau, dtype, match in (
        (1e-50, None, r"^tau=1e-50 is below what the model's torch\.float32 holds \(1\.18e-38 to .* underflow to 0"),
        (1e39, None, r"^tau=1e\+39 is above what the model's torch\.float32 holds .* and would be inf"),
        (1e5, torch.float16, r"^tau=100000\.0 is above what the model's torch\.float16 holds .* and would be inf"),
    ):
        with pytest.raises(ValueError, match=match + r" there: pass a tau in that range, or leave tau out for the"):
            timm.create_model(name, tau=tau, dtype=dtype, device="meta")
    model = timm.create_model(name, tau=1e39, dtype=torch.float64, device="meta")  # a dtype that holds it
    assert model.scheme.step_size == 1e39


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "tauresnet50"])
def test_hook_wrapper_options_that_run_the_modules_as_a_chain_are_refused(name):
    """feature_cls='hook' with flatten_sequential=True or no_rewrite=False calls the top-level modules one after
    another, which these forwards are not: the first forward failed deep in torch ("Module [ModuleList] is missing
    the required "forward" function"). Refused at create_model; the hook wrapper's own way still runs."""
    for cfg in (dict(flatten_sequential=True), dict(no_rewrite=False), dict(flatten_sequential=True, no_rewrite=False)):
        with pytest.raises(ValueError, match=r"^feature_cfg (flatten_sequential|no_rewrite)=.* not such a chain"):
            timm.create_model(name, features_only=True, feature_cls="hook", feature_cfg=cfg, device="meta")
    size = 32 if name.endswith("_cifar") else 64
    for cfg in (dict(no_rewrite=True), dict(flatten_sequential=False)):
        hook = timm.create_model(name, features_only=True, feature_cls="hook", feature_cfg=cfg).eval()
        assert [m.shape[1] for m in hook(torch.zeros(1, 3, size, size))] == hook.feature_info.channels()


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "tauresnet50"])
@pytest.mark.parametrize("feature_cls", [None, "hook", "fx"])
def test_feature_info_lists_the_maps_in_the_order_they_come_out(name, feature_cls):
    """out_indices out of network order: the getter and fx wrappers returned the maps in network order and
    feature_info listed them as asked ((2, 0) gave the 16-channel map first and channels() [64, 16]); now both are
    in network order, for every wrapper."""
    size = 32 if name.endswith("_cifar") else 64
    kwargs = {} if feature_cls is None else dict(feature_cls=feature_cls)
    for out_indices in ((2, 0), (-1, 0)):
        features = timm.create_model(name, features_only=True, out_indices=out_indices, **kwargs).eval()
        maps = features(torch.zeros(1, 3, size, size))
        maps = list(maps.values()) if isinstance(maps, dict) else maps
        assert [m.shape[1] for m in maps] == features.feature_info.channels()
        assert [size // m.shape[-1] for m in maps] == features.feature_info.reduction()
    if feature_cls is not None:  # out_map names the maps of the levels in the order given (hook and fx wrappers)
        cfg = dict(out_map=("last", "first"), return_dict=True)
        features = timm.create_model(name, features_only=True, out_indices=(-1, 0), feature_cfg=cfg, **kwargs).eval()
        maps = features(torch.zeros(1, 3, size, size))
        full = timm.create_model(name, device="meta").feature_info
        assert {k: m.shape[1] for k, m in maps.items()} == dict(last=full[-1]["num_chs"], first=full[0]["num_chs"])


@pytest.mark.parametrize(
    "name", ["zerosnet20_cifar", "lmresnet20_cifar", "preresnet20_cifar", "tauresnet20_nobn_cifar"]
)
def test_model_arguments_out_of_range_are_refused_saying_the_range(name):
    """A negative drop rate built a network that never dropped, one of 1 or more failed in the first training
    forward (bernoulli_), num_classes=-1 gave pooled features, an unknown pool an AssertionError and
    global_pool='' with classes a matmul error at the first forward: each is now a ValueError naming the range,
    from create_model and reset_classifier alike. The edges still build."""
    for kwargs, message in (
        (dict(drop_path_rate=-0.1), r"^drop_path_rate is the stochastic depth .* in \[0, 1\); got -0\.1\."),
        (dict(drop_path_rate=1.0), r"^drop_path_rate .*got 1\.0\."),
        (dict(drop_path_rate="0.1"), r"^drop_path_rate .*got '0\.1'\."),
        (dict(drop_rate=2.0), r"^drop_rate is dropout before the classifier, a probability in \[0, 1\); got 2\.0"),
        (dict(drop_rate=float("nan")), r"^drop_rate .*got nan\."),
        (dict(in_chans=0), r"^in_chans is the number of input image channels, an int >= 1; got 0\."),
        (dict(in_chans=3.0), r"^in_chans .*got 3\.0\."),
        (dict(num_classes=-1), r"^num_classes is the classifier's number of outputs, an int >= 0 .*got -1\."),
        (dict(num_classes=True), r"^num_classes .*got True\."),
        (dict(global_pool="mean"), r"^global_pool='mean' is no pooling of timm's: pass one of '', 'avg', "),
        (dict(global_pool=""), r"^global_pool='' leaves the feature map unpooled, .* 10 classes needs pooled"),
    ):
        with pytest.raises(ValueError, match=message):
            timm.create_model(name, num_classes=kwargs.pop("num_classes", 10), **kwargs, device="meta")
    model = timm.create_model(name, num_classes=10, drop_rate=0.0, drop_path_rate=0.99)
    with pytest.raises(ValueError, match=r"^num_classes .*got -2\."):
        model.reset_classifier(-2)
    with pytest.raises(ValueError, match=r"^global_pool='' leaves the feature map unpooled, .* 5 classes"):
        model.reset_classifier(5, "")
    assert model.fc.out_features == model.num_classes == 10  # a refused head leaves the old one
    model.reset_classifier(0, "")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, model.num_features, 32 // 4, 32 // 4)
    with pytest.raises(ValueError, match=r"^global_pool='fastCatAvgMax' is no pooling"):
        model.reset_classifier(3, "fastCatAvgMax")  # timm's pool took it, its feat_mult() did not: a 64-wide fc
    model.reset_classifier(3, "fastcatavgmax")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet18", "preresnet20_cifar", "zerosnet18_diffstride_cifar"])
def test_forward_hooks_see_every_layer_and_pruning_trains(name):
    """The strided projections ran their conv's weight through faster forms without calling the conv, so hooks on
    it never fired (activation recorders, FLOP counters) and a pruned one failed at the second training step
    ('backward through the graph a second time'), as timm's resnets do not. A watched conv is now called; the
    results are those of the unwatched network (in float64: the watched network also runs its combinations
    unfolded, and the float32 gradients of DiffStride's last stage at batch 2 are 6% off float64 either way)."""
    import torch.nn.utils.prune as prune

    from timm_zerosnet.models.multistep import plain_conv

    size = 32 if name.endswith("_cifar") else 64
    torch.manual_seed(0)
    model = timm.create_model(name).double().train()
    twin = timm.create_model(name).double().train()
    twin.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    leaves = {
        n: m
        for n, m in model.named_modules()
        if not any(m.children()) and next(m.parameters(recurse=False), None) is not None
    }
    called = set()
    for n, m in leaves.items():
        m.register_forward_hook(lambda m, i, o, n=n: called.add(n))
    out = model(x)
    out.square().sum().backward()
    assert called == set(leaves)
    want = twin(x)
    want.square().sum().backward()
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
    for (n, p), q in zip(model.named_parameters(), twin.parameters()):  # sums in another order
        assert (p.grad - q.grad).abs().max() <= 1e-9 * q.grad.abs().max().clamp(min=1), n

    projections = [m.conv for m in twin.modules() if type(m).__name__ == "Projection" and max(m.conv.stride) > 1]
    assert all(plain_conv(c) for c in projections)  # the fast forms stay for plain convs
    if not projections:  # DiffStride downsamples by its pooling layer: no strided projection to prune
        assert "diffstride" in name
        return
    conv = projections[0]
    prune.l1_unstructured(conv, "weight", amount=0.5)
    assert not plain_conv(conv)
    opt = torch.optim.SGD(twin.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        twin(x).square().mean().backward()
        opt.step()
    assert conv.weight_orig.grad is not None and (conv.weight == 0).float().mean() >= 0.5
    hooked = torch.nn.Conv2d(1, 1, 1)
    hooked.register_forward_pre_hook(lambda m, i: None)
    assert not plain_conv(hooked) and plain_conv(torch.nn.Conv2d(1, 1, 1))
    assert not plain_conv(torch.ao.nn.qat.Conv2d(1, 1, 1, qconfig=torch.ao.quantization.get_default_qat_qconfig()))


class _ActivationOps(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the multiplies and out-of-place additions whose output is an activation (4-D, batch first)."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch, self.count = batch, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        if packet in (torch.ops.aten.mul, torch.ops.aten.add) and out.dim() == 4 and out.shape[0] == self.batch:
            self.count += 1
        return out


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("zerosnet20_cifar", {}),
        ("zerosnet20_cifar", {"tau": 0.5}),
        ("preresnet20_cifar", {"tau": 0.5}),
        ("preresnet20_cifar", {}),
        ("zerosnet18_diffstride_cifar", {}),
        ("zerosnet50", {}),
    ],
)
def test_cpu_eager_blocks_fold_the_branch_coefficient_into_the_last_conv(name, kwargs):
    """On the CPU in eager mode a fixed combination (ZeroSNet Opt, Euler) scales the last conv's weight by the
    coefficient of F(x_n) and adds the history terms into that conv's output: no activation-sized multiply or new
    sum in an inference forward (with autograd only where the coefficient is 1, which saves nothing more). It
    computes what the update modules compute:
    a hook on them (which must see them called) turns the folding off."""
    from timm_zerosnet.schemes import EulerUpdate, ZeroStableUpdate

    batch, size = 3, (32 if name.endswith("_cifar") else 64)
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).double().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(batch, 3, size, size, dtype=torch.float64)
    updates = [m for m in model.modules() if isinstance(m, (EulerUpdate, ZeroStableUpdate))]
    scaled = sum(u.branch_scale(x) != 1.0 for u in updates)

    def step():
        model.load_state_dict(state)
        model.zero_grad()
        with _ActivationOps(batch) as forward:
            out = model(x)
        with _ActivationOps(batch) as backward:
            out.square().sum().backward()
        return out.detach(), [p.grad for p in model.parameters()], forward.count, backward.count

    out, grads, fwd_ops, bwd_ops = step()
    seen = []
    hooks = [u.register_forward_hook(lambda m, i, o: seen.append(m)) for u in updates]
    want, want_grads, plain_fwd_ops, plain_bwd_ops = step()
    for h in hooks:
        h.remove()
    assert seen == updates
    # in training only blocks whose coefficient is 1 fold (a scaled weight would stay saved for backward); every
    # plain update makes a new tensor (a mul, or f + x)
    assert plain_fwd_ops - fwd_ops == len(updates) - scaled and plain_bwd_ops == bwd_ops
    with torch.no_grad(), _ActivationOps(batch) as inference:
        model.eval()(x)
    assert inference.count == 0 or "diffstride" in name  # spectral pooling multiplies activations itself
    hooks = [u.register_forward_hook(lambda m, i, o: None) for u in updates]
    with torch.no_grad(), _ActivationOps(batch) as plain_inference:
        model(x)
    for h in hooks:
        h.remove()
    assert plain_inference.count - inference.count == len(updates)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10 * w.abs().max().item())


def test_zerosnet_options_that_a_fixed_scheme_would_ignore_are_refused():
    """lam beside coefficients, and lam_eps on a fixed-coefficient model, were dropped without a word (the
    coefficients won; lam_eps bounds only a trainable lambda). Each alone, and lam_eps on a Tra model, still build."""
    with pytest.raises(ValueError, match="^zerosnet20_cifar: lam and coefficients both fix the coefficients"):
        timm.create_model("zerosnet20_cifar", coefficients=(1 / 3, 5 / 9, 1 / 9, 16 / 9), lam=-2.0, device="meta")
    with pytest.raises(ValueError, match="^zerosnet20_cifar: lam_eps bounds a trainable lambda away from 0"):
        timm.create_model("zerosnet20_cifar", lam_eps=0.5, device="meta")
    coefficients = (1 / 3, 5 / 9, 1 / 9, 16 / 9)
    assert timm.create_model("zerosnet20_cifar", coefficients=coefficients, device="meta").scheme.coefficients
    assert timm.create_model("zerosnet20_cifar", lam=-2.0, device="meta").scheme.lam == -2.0
    assert timm.create_model("zerosnet20_tra_cifar", lam_eps=0.5, device="meta").scheme.lam_eps == 0.5


@pytest.mark.parametrize("name", MODELS)
def test_builds_on_meta_device_with_every_layer(name):
    model = timm.create_model(name, device="meta")
    assert all(t.device.type == "meta" for t in model.state_dict().values())


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet20_cifar", "preresnet20_cifar", "tauresnet20_cifar"])
@pytest.mark.parametrize("feature_cls", [None, "getter"])
def test_features_only_takes_grad_checkpointing_as_timms_resnet_features_do(name, feature_cls):
    """timm's FeatureGetterNet has no set_grad_checkpointing (timm's resnet18 features, a FeatureListNet, have)."""
    kwargs = {} if feature_cls is None else dict(feature_cls=feature_cls)
    features = timm.create_model(name, features_only=True, **kwargs).train()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    plain = features(x)
    (want,) = torch.autograd.grad(sum(f.square().sum() for f in plain), x)
    features.set_grad_checkpointing(True)
    assert all(stage.grad_checkpointing for stage in features.model.stages)
    checkpointed = features(x)
    (got,) = torch.autograd.grad(sum(f.square().sum() for f in checkpointed), x)
    for a, b in zip(checkpointed, plain, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", MODELS)
def test_features_only_every_stride_level(name):
    model = timm.create_model(name, features_only=True, device=shape_device(name))
    info = model.feature_info
    full = timm.create_model(name, device="meta")
    size = full.pretrained_cfg["input_size"][-1]
    feats = model(torch.zeros(1, 3, size, size, device=shape_device(name)))
    reductions = info.reduction()
    stages = len(full.stages)
    assert len(feats) == len(reductions) == stages + (0 if name.endswith("_cifar") else 1)
    assert reductions == sorted(set(reductions)), "one entry per stride level"
    for f, chs, red in zip(feats, info.channels(), reductions):
        assert f.shape[1] == chs
        if "diffstride" not in name:  # learnable strides: the reductions are nominal (test_diffstride_models.py)
            assert f.shape[-1] == size // red
    # TIMM.md: feature_info names real submodules (timm's hook wrapper finds them by name), and no_weight_decay real
    # parameters (timm's optimizer factory matches them by name)
    modules, parameters = dict(full.named_modules()), dict(full.named_parameters())
    assert all(entry["module"] in modules for entry in full.feature_info), full.feature_info
    assert all(n in parameters for n in full.no_weight_decay()), set(full.no_weight_decay()) - set(parameters)


@pytest.mark.parametrize("name", TINY)
def test_forward_backward_every_parameter_gets_a_gradient(name):
    model = tiny_model(name).train()
    x = tiny_input(model)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"no (finite) gradient for {no_grad[:5]}"


@pytest.mark.parametrize("name", TINY)
def test_grad_checkpointing_matches(name):
    model = tiny_model(name).train()
    x = tiny_input(model)
    model.eval()
    ref = model(x)
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing and all(stage.grad_checkpointing for stage in model.stages)
    torch.testing.assert_close(model(x), ref)
    # gradients through recomputed blocks (train mode; BN statistics are per batch so recompute is exact), and the
    # batch norms' running statistics and batch counts of one step (the recomputation updated them a second time)
    model.train()
    model.set_grad_checkpointing(False)
    plain = copy.deepcopy(model)
    plain(x).sum().backward()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for (n, p), q in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)
    buffers = dict(plain.named_buffers())
    assert bool(buffers) == ("nobn" not in name), "batch norm statistics to compare"
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n]), n
    # what it is for: the checkpointed stages keep (almost) nothing for backward
    saved = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        count = [0]

        def pack(t, count=count):
            count[0] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        saved.append(count[0])
    assert saved[1] < saved[0] / 2, saved


@pytest.mark.parametrize("name", TINY)
def test_forward_intermediates_and_prune(name):
    model = tiny_model(name).eval()
    x = tiny_input(model)
    feats = model.forward_features(x)
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, feats)
    assert [t.shape[1] for t in inter] == [i["num_chs"] for i in model.feature_info]
    only = model.forward_intermediates(x, indices=2, intermediates_only=True)
    for a, b in zip(only, inter[-2:]):
        torch.testing.assert_close(a, b)
    normed = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[0]
    torch.testing.assert_close(normed, feats)
    early = model.forward_intermediates(x, indices=[0], stop_early=True, intermediates_only=True)
    torch.testing.assert_close(early[0], inter[0])
    # stopping early at level 1 (not the last): the final output is that level's state, no later stage, no norm
    final1, early1 = model.forward_intermediates(x, indices=[1], stop_early=True)
    assert len(early1) == 1
    torch.testing.assert_close(early1[0], inter[1])
    torch.testing.assert_close(final1, inter[1])
    unpruned = copy.deepcopy(model)
    taken = model.prune_intermediate_layers(indices=[0, 1], prune_head=True)
    assert taken == [0, 1]
    pruned = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert len(pruned) == 2
    for a, b in zip(pruned, inter[:2]):
        torch.testing.assert_close(a, b)
    assert model.num_features == model.feature_info[1]["num_chs"]
    # the levels left count: a pruned one is refused in words (it gave no map and no error), -1 is the last left
    with pytest.raises(ValueError, match=r"no level 2; the network has 2 feature levels \(0 to 1\)"):
        model.forward_intermediates(x, indices=[2])
    torch.testing.assert_close(model.forward_intermediates(x, indices=[-1], intermediates_only=True)[0], inter[1])
    assert len(model.forward_intermediates(x, intermediates_only=True)) == 2
    # the pruned network ends at level 1: forward_features is that state, and the head (dropped) passes it on
    assert len(model.stages) == 2 - int(model.has_stem_level)
    torch.testing.assert_close(model.forward_features(x), inter[1])
    torch.testing.assert_close(model(x), inter[1])
    # prune_head=False still resets a head that the pruned width no longer fits
    unpruned.prune_intermediate_layers(indices=[0, 1], prune_head=False)
    torch.testing.assert_close(unpruned.forward_features(x), inter[1])
    assert unpruned(x).shape == inter[1].shape


@pytest.mark.parametrize("name", TINY)
def test_reset_classifier_and_pooling(name):
    model = tiny_model(name).eval()
    x = tiny_input(model)
    feats = model.forward_features(x)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3
    # timm's ResNet API: the classifier's attribute name (a TypeError before)
    assert getattr(model, model.get_classifier(name_only=True)) is model.get_classifier()
    model.reset_classifier(0)
    torch.testing.assert_close(model(x), feats.mean((2, 3)))
    model.reset_classifier(0, "")
    torch.testing.assert_close(model(x), feats)
    model.train()
    model.reset_classifier(5, "avg")
    assert model.fc.training and model(x).shape == (2, 5)
    # None keeps the pool (TIMM.md), and the head follows the model's mode and dtype
    model.reset_classifier(0, "catavgmax")
    model.eval().double()
    model.reset_classifier(4)
    assert model.global_pool.pool_type == "catavgmax" and model.head_hidden_size == 2 * model.num_features
    assert not model.fc.training and not model.global_pool.training
    assert model.fc.weight.dtype == torch.float64 and model.fc.in_features == 2 * model.num_features
    assert model(x.double()).shape == (2, 4)


@pytest.mark.parametrize("name", MODELS)
def test_no_classes_gives_the_pooled_features(name):
    pooled = timm.create_model(name, num_classes=0, device=shape_device(name))
    x = torch.zeros(1, *pooled.pretrained_cfg["input_size"], device=shape_device(name))
    assert pooled(x).shape == (1, pooled.num_features)


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet18", "tauresnet20_cifar", "tauresnet50"])
def test_head_hidden_size_is_the_width_of_the_pooled_features(name):
    """As timm's ResNet: a concatenating pool doubles the pre-logits width, at build and after reset_classifier,
    so a new head sized from head_hidden_size fits."""
    model = tiny_model(name, global_pool="catavgmax").eval()
    x = tiny_input(model)
    for reset in (None, (0, "catavgmax"), (3, "avg"), (0, "avgmax")):
        if reset is not None:
            model.reset_classifier(*reset)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (2, model.head_hidden_size)
        assert model.head_hidden_size == model.num_features * (2 if model.global_pool.pool_type == "catavgmax" else 1)
        assert torch.nn.Linear(model.head_hidden_size, 3)(pooled).shape == (2, 3)


@pytest.mark.parametrize("name", [n for n in REPRESENTATIVES if not n.endswith("_cifar")] + ["zerosnet18:diffstride"])
def test_prune_to_the_stem_level_ends_at_the_stem_feature(name):
    """prune_intermediate_layers(indices=[0]) of an ImageNet stem: forward_features is feature 0 (before the
    max-pool, and before a learnable stem stride), as in timm's ResNet."""
    name, _, downsample = name.partition(":")
    model = tiny_model(name, **(dict(downsample=downsample) if downsample else {})).eval()
    x = tiny_input(model)
    with torch.no_grad():
        stem_feature = model.forward_intermediates(x, indices=[0], intermediates_only=True)[0]
        model.prune_intermediate_layers(indices=[0])
        torch.testing.assert_close(model.forward_features(x), stem_feature)
    assert stem_feature.shape[-1] == x.shape[-1] // model.feature_info[0]["reduction"]


@pytest.mark.parametrize("name", ["preresnet20_cifar", "zerosnet20_cifar", "lmresnet20_cifar", "zerosnet50"])
def test_hooks_see_the_branch_output_unchanged(name):
    """The update must not write into the output of the branch's last conv: a forward hook (Grad-CAM, probing,
    feature distillation) keeps that tensor, and may put it into a loss."""
    model = tiny_model(name).train()
    block = model.stages[1][1]  # a multistep block (not a start-up step) in every family
    last_conv = block.conv3 if hasattr(block, "conv3") else block.conv2
    seen = []
    last_conv.register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    logits = model(tiny_input(model))
    ((inp, out),) = seen
    torch.testing.assert_close(out, last_conv(inp), rtol=0, atol=0)
    (logits.sum() + out.square().mean()).backward()  # an in-place write would fail here (version counter)
    assert last_conv.weight.grad is not None


@pytest.mark.parametrize("name", TINY)
def test_bf16_forward(name):
    model = tiny_model(name).eval()
    x = tiny_input(model)
    ref = model(x)
    out = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.1


@pytest.mark.parametrize("name", TINY)
def test_drop_path_is_linear_and_stochastic(name):
    model = tiny_model(name, drop_path_rate=0.5).train()
    blocks = [b for s in model.stages for b in s]
    rates = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    # ARCHITECTURES.md: p_i = i / (N - 1) * rate over all N blocks, the kept branch scaled by 1 / (1 - p_i)
    assert rates == pytest.approx([0.5 * i / (len(blocks) - 1) for i in range(len(blocks))])
    assert all(b.drop_path.scale_by_keep for b in blocks if isinstance(b.drop_path, DropPath))
    x = tiny_input(model)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x)), "drop path must change the training forward"
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_registry_names_are_ours_and_timm_untouched():
    assert sorted(timm.list_models("zerosnet*")) == [n for n in MODELS if n.startswith("zerosnet")]
    for module in ("zerosnet", "lmresnet", "preresnet"):
        names = timm.list_models(module=module)
        assert names and all(n.startswith(module) for n in names)
        for n in names:
            assert timm.models.model_entrypoint(n).__module__ == f"timm_zerosnet.models.{module}"
    # timm's own models keep their own entrypoints, and none of ours shadows one of them
    for n in ("resnet50", "resnet18", "resnetv2_50"):
        assert timm.models.model_entrypoint(n).__module__.startswith("timm.models.")
    timm_names = [n for n in timm.list_models() if timm.models.model_entrypoint(n).__module__.startswith("timm.")]
    assert not set(timm_names) & set(MODELS)
    # list_pretrained shows exactly the release manifest's tags; models without weights keep the tag `untrained`
    from timm_zerosnet.release import load_manifest

    released = sorted(f"{r['model']}.{r['tag']}" for r in load_manifest()["releases"])
    assert sorted(n for n in timm.list_pretrained() if n.split(".")[0] in MODELS) == released
    assert "zerosnet56_cifar.untrained" in timm.list_models("zerosnet56_cifar*", include_tags=True)


def test_pretrained_without_weights_is_an_error_not_random_weights():
    with pytest.raises(RuntimeError, match=r"zerosnet56_cifar\.untrained has no released weights.*zerosnet-train"):
        timm.create_model("zerosnet56_cifar", pretrained=True)


# ----- the expensive parts of the contract, on one representative per architecture -----


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_torchscript(name):
    model = tiny_model(name).eval()
    x = tiny_input(model)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), model(x))
    # the features_only model too (timm's getter wrapper scripts forward_intermediates), as timm's resnets script
    levels = tuple(range(len(model.feature_info)))
    features = FeatureGetterNet(tiny_model(name), out_indices=levels).eval()  # what features_only=True builds
    for got, want in zip(torch.jit.script(features)(x), features(x), strict=True):
        # TorchScript runs the update modules; eager CPU code folds their coefficient of F(x_n) into the last conv's
        # weight (PreActBlock._folded_branch), which rounds differently (about 1e-6 of the largest value)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_fx_trace_and_feature_extraction(name):
    from torchvision.models.feature_extraction import create_feature_extractor

    model = tiny_model(name).eval()
    x = tiny_input(model)
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(x), model(x))
    extractor = create_feature_extractor(model, return_nodes={"global_pool": "pooled", "fc": "logits"})
    out = extractor(x)
    torch.testing.assert_close(out["logits"], model(x))
    torch.testing.assert_close(out["pooled"], model.forward_head(model.forward_features(x), pre_logits=True))


@pytest.mark.parametrize(
    "name, kwargs, first_op",
    [("zerosnet20_cifar", {}, "mul"), ("lmresnet20_cifar", {}, "lerp"), ("preresnet20_cifar", {"tau": 0.5}, "mul")],
)
def test_fx_nodes_inside_an_update_keep_their_own_values(name, kwargs, first_op):
    """The updates accumulated their terms in place in traces too: FX recorded add_ nodes that changed the first op's
    value, so a feature extractor asked for stages.0.2.update.mul got the finished x_{n+1}, not h b0 F(x_n)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    model = timm.create_model(name, **kwargs).eval()
    update = model.stages[0][2].update
    h = update.hb0 if hasattr(update, "hb0") else update.step_size
    block = "stages.0.2"
    nodes = [f"{block}.conv2", f"{block}.update.{first_op}", block]
    out = create_feature_extractor(model, return_nodes=nodes)(torch.randn(2, 3, 32, 32))
    f, first, x_next = out[nodes[0]], out[nodes[1]], out[block]  # the block's node: its x_{n+1}
    assert first.shape == f.shape == x_next.shape
    if first_op == "mul":
        torch.testing.assert_close(first, f * h, rtol=0, atol=0)
    else:  # lerp(x_n, x_{n-1}, k) = x_{n+1} - h F(x_n)
        torch.testing.assert_close(first, x_next - h * f)
    assert (first - x_next).abs().max() > 0.1


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_torch_compile_fullgraph(name):
    torch._dynamo.reset()
    model = tiny_model(name).eval()
    x = tiny_input(model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["zerosnet20_tra_cifar", "tauresnet20_cifar"])
def test_torch_compile_fullgraph_trains_with_grad_checkpointing(name):
    """Dynamo refused the checkpoint's call counter (a mutation inside the checkpointed function), so a compiled
    checkpointed model failed with fullgraph=True; compiled, it trains as the plain eager model does: the same output,
    gradients and batch-norm statistics (updated once)."""
    torch._dynamo.reset()
    model = tiny_model(name).train()
    x = tiny_input(model)
    plain = copy.deepcopy(model)
    model.set_grad_checkpointing(True)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.sum().backward()
    ref = plain(x)
    ref.sum().backward()
    torch.testing.assert_close(out, ref)
    for (n, p), q in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)
    buffers = dict(plain.named_buffers())
    for n, b in model.named_buffers():
        torch.testing.assert_close(b, buffers[n], msg=n)


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_torch_export(name):
    model = tiny_model(name).eval()
    x = tiny_input(model)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("name", ["tauresnet20_cifar", "tauresnet20_nobn_cifar", "preresnet20_cifar", "zerosnet50"])
def test_torch_export_with_a_dynamic_batch_and_image_size(name):
    """The CIFAR tau-ResNets' zero-pad shortcut (He et al.'s option A) subsampled with a slice, of size ceil(H / 2),
    which torch.export could not prove equal to the strided conv's floor((H - 1) / 2) + 1: 'Constraints violated'
    for a dynamic height and width, where the other families export."""
    model = tiny_model(name).eval()
    x = tiny_input(model)
    size = Dim("size", min=x.shape[-1] // 2 + 1, max=x.shape[-1] * 2)  # 1x1 features: specialised (timm's too)
    exported = torch.export.export(model, (x,), dynamic_shapes=({0: Dim("batch"), 2: size, 3: size},))
    for batch, side in ((2, x.shape[-1]), (3, x.shape[-1] // 2 + 1), (1, x.shape[-1] + 3)):
        y = torch.randn(batch, 3, side, side)
        torch.testing.assert_close(exported.module()(y), model(y))


@pytest.mark.parametrize(
    "name",
    [
        "zerosnet20_tra_cifar",
        "lmresnet18",
        "preresnet164_cifar",
        "zerosnet50",
        "tauresnet20_nobn_cifar",
        "zerosnet18_diffstride_cifar",  # frozen first; its stride-1 stem layer exported a complex alias ONNX lacks
        "preresnet18_spectral_cifar",
    ],
)
def test_onnx_export(name):
    onnx = pytest.importorskip("onnx", reason="ONNX export is checked where the onnx package is installed")
    from onnx.reference import ReferenceEvaluator

    from timm_zerosnet.layers.diffstride import freeze_diffstride

    model = tiny_model(name).eval()
    x = tiny_input(model, batch=1)
    if "diffstride" in name:
        assert freeze_diffstride(model, x)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=True, verbose=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    (out,) = ReferenceEvaluator(proto).run(None, {proto.graph.input[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_pretrained_adaptation_in_chans_and_num_classes(name, tmp_path):
    src = timm.create_model(name, num_classes=timm.create_model(name, device="meta").num_classes).eval()
    path = tmp_path / "weights.pth"
    torch.save(src.state_dict(), path)
    size = src.pretrained_cfg["input_size"][-1]
    x = torch.randn(1, 3, size, size)
    same = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    torch.testing.assert_close(same(x), src(x))
    five = timm.create_model(name, pretrained=True, num_classes=5, pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert five(x).shape == (1, 5)
    torch.testing.assert_close(five.forward_features(x), src.forward_features(x))
    grey = timm.create_model(name, pretrained=True, in_chans=1, pretrained_cfg_overlay=dict(file=str(path))).eval()
    torch.testing.assert_close(grey.conv1.weight, src.conv1.weight.sum(1, keepdim=True))
    g = torch.randn(1, 1, size, size)
    torch.testing.assert_close(grey(g), src(g.expand(-1, 3, -1, -1)), atol=1e-3, rtol=1e-3)


def test_group_matcher_and_layer_decay_groups():
    from timm.optim import create_optimizer_v2

    model = tiny_model("zerosnet20_tra_cifar")
    groups = timm.models.group_parameters(model, model.group_matcher())
    assert len(groups) > 2
    opt = create_optimizer_v2(model, "sgd", lr=0.1, weight_decay=1e-4, layer_decay=0.7)
    assert len({g["lr_scale"] for g in opt.param_groups}) > 2
    lam_names = {n for n, _ in model.named_parameters() if n.endswith(".lam")}
    assert lam_names and lam_names <= model.no_weight_decay()
    params = dict(model.named_parameters())
    for g in opt.param_groups:
        for p in g["params"]:
            if any(p is params[n] for n in lam_names):
                assert g["weight_decay"] == 0.0


@pytest.mark.parametrize(
    "name", ["zerosnet20_tra_cifar", "zerosnet18", "lmresnet20_cifar", "tauresnet20_cifar", "tauresnet50_nobn"]
)
def test_group_matcher_has_a_group_per_block_and_the_stem_first(name):
    """Fine groups: the stem, one group per block, the head; coarse: one per stage. Layer decay
    scales the lr by group, so the shared tau (tau-ResNet) and the stem's learnable stride sit in the stem's group."""
    model = tiny_model(name)
    fine = list(timm.models.group_parameters(model, model.group_matcher()).values())
    coarse = list(timm.models.group_parameters(model, model.group_matcher(coarse=True)).values())
    assert len(fine) == sum(model.net.layers) + 2 and len(coarse) == len(model.stages) + 2
    assert set(fine[0]) == set(coarse[0]) and any(n.startswith("conv1") for n in fine[0])
    if "tau" in dict(model.named_parameters()):
        assert "tau" in fine[0]
    for group in fine[1:-1]:  # the final norm joins the last block's group (timm's (99999,), as its ResNetV2)
        blocks = {".".join(n.split(".")[:3]) for n in group if not n.startswith("norm.")}
        assert len(blocks) == 1 and next(iter(blocks)).startswith("stages."), group
    assert set(fine[-1]) == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "tauresnet20_cifar", "zerosnet18"])
def test_drop_rate_drops_pre_logits_in_training_only(name):
    model = tiny_model(name, drop_rate=0.5)
    feats = model.forward_features(tiny_input(model)).detach()
    model.eval()
    assert torch.equal(model.forward_head(feats), model.forward_head(feats))
    pooled = model.forward_head(feats, pre_logits=True)
    model.train()
    dropped = model.forward_head(feats, pre_logits=True)
    assert float((dropped == 0).float().mean()) > 0.3  # half of the pooled features, the rest scaled by 2
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], 2 * pooled[kept])


def test_the_resnet18_cifar_variants_downsample_as_named():
    """The DiffStride paper's three ResNet-18s differ only in their downsampling: strided convs, fixed spectral
    pooling, learned strides."""
    from timm_zerosnet.layers.diffstride import DiffStride, FixedSpectralPooling, Subsample

    for name, downsample in (
        ("preresnet18_cifar", "conv"),
        ("preresnet18_spectral_cifar", "spectral"),
        ("preresnet18_diffstride_cifar", "diffstride"),
        ("zerosnet18_diffstride_cifar", "diffstride"),
    ):
        model = timm.create_model(name, device="meta" if downsample != "diffstride" else "cpu")
        assert model.net.downsample == downsample, name
        pools = [m for m in model.modules() if isinstance(m, (DiffStride, FixedSpectralPooling, Subsample))]
        assert (len(pools) == 0) == (downsample == "conv"), name


def test_cross_entropy_step_runs_on_every_family_head():
    """A classification step on a real registered model, not a tiny one."""
    model = timm.create_model("zerosnet20_cifar", num_classes=10)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)


def test_checkpoint_with_another_head_names_num_classes(tmp_path):
    full = timm.create_model("zerosnet20_cifar", num_classes=100)
    path = tmp_path / "c100.pth"
    torch.save(full.state_dict(), path)
    with pytest.raises(ValueError, match=r"classifier 'fc.weight'.*has 100 classes.*pass num_classes=100"):
        timm.create_model("zerosnet20_cifar", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    kept = timm.create_model(
        "zerosnet20_cifar",
        pretrained=True,
        num_classes=100,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=100),
    )
    torch.testing.assert_close(kept.fc.weight, full.fc.weight)
    ten = tmp_path / "c10.pth"
    torch.save(timm.create_model("zerosnet20_cifar", num_classes=10).state_dict(), ten)
    # same classes, wider pooled features: the advice is about global_pool, not num_classes
    with pytest.raises(ValueError, match=r"takes 64 features but the model's takes 128.*global_pool='catavgmax'"):
        timm.create_model(
            "zerosnet20_cifar", pretrained=True, global_pool="catavgmax", pretrained_cfg_overlay=dict(file=str(ten))
        )
    new_head = timm.create_model(
        "zerosnet20_cifar", pretrained=True, num_classes=7, pretrained_cfg_overlay=dict(file=str(path))
    )
    torch.testing.assert_close(new_head.conv1.weight, full.conv1.weight)
    # a new head of the cfg's own 10 classes: the error's advice (the checkpoint's classes in the overlay) works
    with pytest.raises(ValueError, match=r"For a new head pass pretrained_cfg_overlay=dict\(num_classes=100, \.\.\.\)"):
        timm.create_model(
            "zerosnet20_cifar", pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(file=str(path))
        )
    ten_classes = timm.create_model(
        "zerosnet20_cifar",
        pretrained=True,
        num_classes=10,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=100),
    )
    assert ten_classes.fc.out_features == 10
    torch.testing.assert_close(ten_classes.conv1.weight, full.conv1.weight)


def _backbone_equal(model, source) -> None:
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "tauresnet20_cifar"])
def test_checkpoints_whose_head_timm_discards_load(name, tmp_path):
    """timm loads a features_only model as num_classes=0 and drops the classifier whenever num_classes differs from
    the cfg's, so a headless (backbone) checkpoint or one with another head must load there, as into timm's resnet."""
    source = timm.create_model(name, num_classes=0).eval()
    backbone = tmp_path / "backbone.pth"
    torch.save(source.state_dict(), backbone)
    c100 = tmp_path / "c100.pth"
    torch.save(timm.create_model(name, num_classes=100).state_dict(), c100)
    x = torch.randn(2, 3, 32, 32)
    for path in (backbone, c100):
        overlay = dict(file=str(path))
        new_head = timm.create_model(name, pretrained=True, num_classes=5, pretrained_cfg_overlay=overlay)
        _backbone_equal(
            new_head, timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        )
        feats = timm.create_model(name, pretrained=True, features_only=True, pretrained_cfg_overlay=overlay).eval()
        if path == backbone:
            _backbone_equal(new_head, source)
            expected = source.forward_intermediates(x, intermediates_only=True)
            for a, b in zip(feats(x), expected):
                torch.testing.assert_close(a, b)
    # the default head kept: a checkpoint without one is refused, unless the user loads non-strict
    with pytest.raises(ValueError, match=r"first missing key 'fc.weight'.*pretrained_strict=False"):
        timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(backbone)))
    loose = timm.create_model(
        name, pretrained=True, pretrained_strict=False, pretrained_cfg_overlay=dict(file=str(backbone))
    )
    _backbone_equal(loose, source)


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "tauresnet20_cifar"])
def test_non_strict_load_takes_the_keys_that_fit(name, tmp_path, caplog):
    source = timm.create_model(name)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("conv1.")}
    state["aux_head.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"first unexpected key 'aux_head.weight'"):
        timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    with caplog.at_level("WARNING"):
        model = timm.create_model(
            name, pretrained=True, pretrained_strict=False, pretrained_cfg_overlay=dict(file=str(path))
        )
    assert "aux_head.weight" in caplog.text
    torch.testing.assert_close(model.fc.weight, source.fc.weight)
    assert not torch.equal(model.conv1.weight, source.conv1.weight)  # missing: left as built
    # a shape that does not fit is an error even non-strict (as torch's load_state_dict)
    state = dict(source.state_dict(), **{"stages.0.0.conv1.weight": torch.zeros(16, 16, 1, 1)})
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"'stages.0.0.conv1.weight' has shape \(16, 16, 1, 1\)"):
        timm.create_model(name, pretrained=True, pretrained_strict=False, pretrained_cfg_overlay=dict(file=str(path)))


# zerosnet56_cifar: no released weights at all (zerosnet20_cifar has a staged tag, whose hub id could hide a refusal)
@pytest.mark.parametrize("name", ["zerosnet20_cifar", "zerosnet56_cifar"])
def test_state_dict_overlay_loads_what_a_file_loads(tmp_path, name):
    """timm's file loader takes a checkpoint's EMA first and strips DDP / torch.compile prefixes; a checkpoint dict
    given as pretrained_cfg_overlay=dict(state_dict=...) loads the same weights, also for a model with no release."""
    model, ema = timm.create_model(name), timm.create_model(name)
    ckpt = {"epoch": 3, "state_dict": model.state_dict(), "state_dict_ema": ema.state_dict()}
    path = tmp_path / "train.pth"
    torch.save(ckpt, path)
    by_file = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    by_dict = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=ckpt))
    for loaded in (by_file, by_dict):
        _backbone_equal(loaded, ema)
    for prefix in ("_orig_mod.", "_orig_mod.module.", "module._orig_mod.", "model."):  # model.: the authors' wrapper
        wrapped = {f"{prefix}{k}": v for k, v in model.state_dict().items()}
        loaded = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=wrapped))
        _backbone_equal(loaded, model)


def test_new_head_does_not_loosen_the_backbone_check(tmp_path):
    """timm itself loads non-strict once it drops a head; here another family's weights stay refused."""
    path = tmp_path / "lm.pth"
    torch.save(timm.create_model("lmresnet20_cifar").state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit zerosnet20_cifar"):
        timm.create_model(
            "zerosnet20_cifar", pretrained=True, num_classes=5, pretrained_cfg_overlay=dict(file=str(path))
        )


def test_first_release_is_staged_and_says_so(tmp_path):
    """The digits demo weights are staged in releases.json: without the exported folder in the cache the error says
    so, instead of a 404 from deep inside huggingface_hub."""
    from timm_zerosnet.release import ReleaseError, find_release

    entry = find_release("zerosnet20_cifar", "digits")
    assert entry is not None and entry["state"] == "staged" and entry["hub_commit"] is None
    with pytest.raises(ReleaseError, match="staged but has not been pushed yet.*zerosnet-hub install-local"):
        timm.create_model("zerosnet20_cifar.digits", pretrained=True, cache_dir=str(tmp_path))


def _randomise_norms(model) -> None:
    """BatchNorm statistics and affine parameters away from their identity init, so eval mode is a real map."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 1.5), (m.weight, 0.5, 1.5)):
                t.data.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (hi - lo) + lo)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g, dtype=m.bias.dtype) * 0.4 - 0.2)


# subsampling after the conv (the strided conv's values), also where a pooled stage keeps its channel count
_SUBSAMPLED = dict(downsample="subsample", strides=(2, 2, 2))


@pytest.mark.parametrize(
    "name,kwargs",
    [(n, {}) for n in REPRESENTATIVES]
    + [("preresnet18_cifar", dict(downsample="subsample"))]
    + [(n, _SUBSAMPLED) for n in ("preresnet20_cifar", "lmresnet20_cifar", "zerosnet20_cifar")],
)
def test_output_stride_dilates_with_the_strided_weights(name, kwargs):
    """output_stride (timm's option for dense prediction): once the reduction reaches it, a stage dilates its 3x3
    convs instead of striding. The parameters are those of the strided network, and in eval mode each strided
    feature map is every k-th pixel of the dilated one (k = strided reduction / dilated reduction), exactly."""
    strided = tiny_model(name, **kwargs).double().eval()
    _randomise_norms(strided)
    stem = 4 if strided.net.stem == "imagenet" else 1
    x = tiny_input(strided).double()
    reductions = [f["reduction"] for f in strided.feature_info]
    ref = strided.forward_intermediates(x, intermediates_only=True)
    for output_stride in (reductions[-1] // 2, stem):
        dilated = tiny_model(name, output_stride=output_stride, **kwargs).double().eval()
        dilated.load_state_dict(strided.state_dict())  # strict: the same parameters and buffers
        assert [f["reduction"] for f in dilated.feature_info] == [min(r, output_stride) for r in reductions]
        with torch.no_grad():
            feats = dilated.forward_intermediates(x, intermediates_only=True)
            out = dilated(x)
        assert len(feats) == len(ref)
        for r, a, b in zip(reductions, ref, feats):
            k = r // min(r, output_stride)
            assert b.shape[-1] == a.shape[-1] * k
            torch.testing.assert_close(b[..., ::k, ::k], a, rtol=1e-9, atol=1e-9)
        assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["preresnet20_cifar", "zerosnet20_cifar", "lmresnet20_cifar", "zerosnet18"])
def test_output_stride_with_spectral_pooling_is_refused_where_it_would_dilate(name):
    """Spectral pooling crops the spectrum, which a dilated stage cannot reproduce: the dilated network dropped the
    low-pass and gave other features with the strided weights, without a word (the output_stride test above holds
    them to the strided ones). An output_stride that dilates nothing builds the strided network."""
    cifar = name.endswith("_cifar")
    final = 4 if cifar else 32  # the reduction after the last stage
    for output_stride in (1, 2) if cifar else (4, 8, 16):
        with pytest.raises(ValueError, match=rf"output_stride={output_stride} cannot be used with downsample='spec"):
            tiny_model(name, downsample="spectral", output_stride=output_stride)
    strided = tiny_model(name, downsample="spectral").eval()
    same = tiny_model(name, downsample="spectral", output_stride=final).eval()
    same.load_state_dict(strided.state_dict())
    x = tiny_input(same)
    assert same.feature_info == strided.feature_info and torch.equal(same(x), strided(x))


@pytest.mark.parametrize("name", ["zerosnet50", "lmresnet18", "tauresnet50_nobn", "zerosnet20_cifar"])
def test_output_stride_through_timm_features_only(name):
    """timm passes output_stride to the model; features_only reports the dilated reductions."""
    stem = 1 if name.endswith("_cifar") else 4
    model = timm.create_model(name, features_only=True, output_stride=stem * 4, device="meta")
    expected = [2, 4, 8, 16, 16] if stem == 4 else [1, 2, 4]
    expected = [min(r, stem * 4) for r in expected]
    assert model.feature_info.reduction() == expected
    # the strided network's output stride (or any larger one) changes nothing
    default = timm.create_model(name, device="meta")
    for same in (default.feature_info[-1]["reduction"], 64):
        assert timm.create_model(name, output_stride=same, device="meta").feature_info == default.feature_info


@pytest.mark.parametrize("name", ["zerosnet18", "preresnet20_cifar", "tauresnet50"])
@pytest.mark.parametrize("output_stride", [12, 0, -8, 8.0, True, "16"])
def test_output_stride_not_reached_is_refused(name, output_stride):
    if name.endswith("_cifar") and output_stride in (12, 8.0, "16"):
        output_stride = 3  # 12 or 16 are >= a CIFAR network's final reduction (4): valid, no dilation
    with pytest.raises(ValueError, match=r"output_stride=.*reaches the reductions .*pass one of them"):
        timm.create_model(name, output_stride=output_stride, device="meta")


def test_output_stride_with_learned_strides_is_refused():
    with pytest.raises(ValueError, match="cannot be used with downsample='diffstride'"):
        timm.create_model("zerosnet18_diffstride_cifar", output_stride=8)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("norm_act", [False, True])
@pytest.mark.parametrize("size,stride", [(8, 2), (7, 2), (10, 3), (16, 2), (17, 2), (25, 3)])
def test_strided_projection_is_the_strided_conv(channels_last, norm_act, size, stride):
    """A strided history / shortcut projection of an NCHW tensor runs as the matrix product of the subsampled input
    where the output has at least 8x8 pixels (inference and training), and in training otherwise as the stride-1
    conv of the subsampled input: outputs and all gradients equal those of the strided conv, odd sizes included."""
    import copy

    from timm_zerosnet.models.multistep import _MIN_MATMUL_PIXELS, Projection

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out_size = -(-size // stride)
    matmul = not channels_last and out_size * out_size >= _MIN_MATMUL_PIXELS
    proj = Projection(4, 6, stride, norm_act=norm_act).double()
    ref = copy.deepcopy(proj)
    conv_calls = []
    conv_forward = proj.conv.forward
    proj.conv.forward = lambda x: conv_calls.append(1) or conv_forward(x)
    x = torch.randn(2, 4, size, size, dtype=torch.float64).contiguous(memory_format=fmt)
    with torch.no_grad():
        torch.testing.assert_close(
            proj.eval()(x), F.conv2d(F.relu(ref.eval().norm(x)) if norm_act else x, ref.conv.weight, stride=stride)
        )
    assert len(conv_calls) == (0 if matmul else 1)  # small outputs and channels-last keep the strided conv
    proj.train(), ref.train()
    conv_calls.clear()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = proj(xa)
    assert len(conv_calls) == (1 if channels_last else 0)  # training on NCHW never reaches the strided conv
    if matmul:
        assert type(out.grad_fn).__name__ == "_SubsampledConv1x1Backward"
    h = F.relu(ref.norm(xb)) if norm_act else xb
    expect = F.conv2d(h, ref.conv.weight, stride=stride)
    assert out.shape == expect.shape == (2, 6, out_size, out_size)
    torch.testing.assert_close(out, expect)
    g = torch.randn_like(expect)
    out.backward(g)
    expect.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(proj.conv.weight.grad, ref.conv.weight.grad)
    if norm_act:
        torch.testing.assert_close(proj.norm.weight.grad, ref.norm.weight.grad)
        torch.testing.assert_close(proj.norm.running_mean, ref.norm.running_mean)
    # earlier layers frozen (fine-tuning): an input that needs no gradient, a weight that still gets its own
    proj.zero_grad(), ref.zero_grad()
    out = proj(x)
    expect = F.conv2d(F.relu(ref.norm(x)) if norm_act else x, ref.conv.weight, stride=stride)
    out.backward(g)
    expect.backward(g)
    assert proj.conv.weight.grad is not None
    torch.testing.assert_close(proj.conv.weight.grad, ref.conv.weight.grad)


def test_subsampled_projection_backward_is_exact():
    """The matrix-product projection's own backward against numerical gradients (odd size, unequal strides)."""
    from timm_zerosnet.models.multistep import _SubsampledConv1x1

    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _SubsampledConv1x1.apply(x, w, 2, 3), (x, w))
    assert torch.autograd.gradgradcheck(lambda x, w: _SubsampledConv1x1.apply(x, w, 2, 3), (x, w))  # e.g. R1 penalty
    out = _SubsampledConv1x1.apply(x, w, 2, 3)
    torch.testing.assert_close(out, F.conv2d(x, w, stride=(2, 3)))


def test_projection_under_autocast_keeps_the_conv():
    """bf16 autocast casts convs, not our matrix product: under autocast the conv runs, in bf16."""
    from timm_zerosnet.models.multistep import Projection

    proj = Projection(4, 6, 2)
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = proj(x)
    assert out.dtype == torch.bfloat16 and type(out.grad_fn).__name__ != "_SubsampledConv1x1Backward"
    out.float().sum().backward()
    assert x.grad.shape == x.shape


def test_compiled_projection_keeps_the_strided_conv(monkeypatch):
    """Under torch.compile the strided conv is the faster form: the graph must record it, not the subsampling."""
    from timm_zerosnet.models.multistep import Projection

    proj = Projection(4, 6, 2)
    calls = []
    conv_forward = proj.conv.forward
    proj.conv.forward = lambda x: calls.append(x.shape) or conv_forward(x)
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    proj(x)
    assert calls == []  # eager NCHW training subsamples
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    out = proj(x)
    assert calls == [x.shape] and out.shape == (2, 6, 8, 8)


@pytest.mark.parametrize("name", ["preresnet20_cifar", "lmresnet20_cifar", "zerosnet20_tra_cifar", "zerosnet20_cifar"])
def test_torch_func_transforms_and_forward_mode_ad(name):
    """torch.func.grad / vmap and forward-mode AD take the plain-op paths (the package's own autograd Functions,
    which eager training uses for the strided projections and the LM / Tra updates, implement neither): gradients
    equal autograd's, vmap equals the batched call, and jvp equals a central difference."""
    import torch.autograd.forward_ad as fwAD
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    model = timm.create_model(name).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}
    grads = grad(lambda p: functional_call(model, p, (x,)).sum())(params)
    model(x).sum().backward()
    for k, p in model.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(vmap(lambda xi: model(xi[None])[0])(x), model(x), rtol=1e-12, atol=1e-12)
        t = torch.randn_like(x)
        with fwAD.dual_level():
            tangent = fwAD.unpack_dual(model(fwAD.make_dual(x, t))).tangent
        eps = 1e-6
        central = (model(x + eps * t) - model(x - eps * t)) / (2 * eps)
    torch.testing.assert_close(tangent, central, rtol=1e-6, atol=1e-7)


def _params(name: str, **kwargs) -> int:
    return sum(p.numel() for p in timm.create_model(name, device="meta", **kwargs).parameters())


def test_cifar100_heads_add_the_spec_parameter_counts():
    """ARCHITECTURES.md 1.4: 64*90+90 = 5,850 (basic) and 256*90+90 = 23,130 (bottleneck) more than 10 classes."""
    for name, extra in (("zerosnet20_cifar", 5_850), ("zerosnet164_cifar", 23_130)):
        assert _params(name, num_classes=100) - _params(name, num_classes=10) == extra


def test_zerosnet50_costs_the_spec_share_more_than_preresnet50():
    """ARCHITECTURES.md 1.3: the wide history projections give ZeroSNet-50 about 21.5% more parameters and about
    15% more multiply-adds than a pre-act ResNet-50 (at 224 x 224)."""
    from torch.utils.flop_counter import FlopCounterMode

    assert _params("zerosnet50") / _params("preresnet50") == pytest.approx(1.215, abs=0.005)
    flops = []
    for name in ("zerosnet50", "preresnet50"):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            timm.create_model(name).eval()(torch.randn(1, 3, 224, 224))
        flops.append(counter.get_total_flops())
    assert flops[0] / flops[1] == pytest.approx(1.15, abs=0.005)


@pytest.mark.parametrize("name", ["zerosnet56_cifar", "lmresnet56_cifar", "zerosnet18", "preresnet18"])
def test_initialisation_follows_the_spec(name):
    """ARCHITECTURES.md 1.2 / 1.3: convs N(0, sqrt(2 / (k * k * out))) (Kaiming fan-out), BN weight 1 and bias 0
    (no zero-init of any BN), Linear at PyTorch's default U(-1/sqrt(in), 1/sqrt(in))."""
    torch.manual_seed(0)
    model = timm.create_model(name)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    big = max(convs, key=lambda m: m.weight.numel())  # >= 36,864 values: the std is known to better than 2%
    out, _, kh, kw = big.weight.shape
    assert big.weight.std().item() == pytest.approx((2.0 / (kh * kw * out)) ** 0.5, rel=0.02)
    assert abs(big.weight.mean().item()) < 0.02 * big.weight.std().item()
    for m in convs:  # every conv, small ones too: the same law (looser, fewer values)
        o, _, h, w = m.weight.shape
        assert m.weight.std().item() == pytest.approx((2.0 / (h * w * o)) ** 0.5, rel=0.25)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bool((m.weight == 1).all()) and bool((m.bias == 0).all()) for m in bns)
    bound = model.fc.in_features**-0.5
    assert model.fc.weight.abs().max().item() <= bound and model.fc.weight.abs().max().item() > 0.9 * bound
    assert model.fc.bias.abs().max().item() <= bound


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "preresnet20_cifar", "lmresnet164_cifar"])
def test_forward_intermediates_norm_applies_to_the_last_level_only(name):
    """norm=True puts the final BN-ReLU on the last level (as forward_features ends), and on no earlier one, when
    every level is asked for."""
    model = tiny_model(name).eval()
    x = tiny_input(model)
    with torch.no_grad():
        plain = model.forward_intermediates(x, intermediates_only=True)
        normed = model.forward_intermediates(x, norm=True, intermediates_only=True)
        feats = model.forward_features(x)
    assert len(normed) == len(plain) == len(model.feature_info)
    for a, b in zip(normed[:-1], plain[:-1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(normed[-1], feats)
    assert not torch.equal(normed[-1], plain[-1])


def test_a_stage_without_blocks_is_refused():
    """A skeleton built by hand (MultistepResNet, cifar_net are public) needs at least one block per stage: a stage
    of zero blocks would have no block to change the width, nor a feature level of its own."""
    from timm_zerosnet.models.multistep import MultistepResNet, cifar_net
    from timm_zerosnet.schemes import ZeroStable

    for layers in ((3, 0, 3), (0, 1, 1)):
        with pytest.raises(ValueError, match=r"must give at least one block for each of the widths"):
            MultistepResNet(cifar_net(layers), ZeroStable(), device="meta")


@pytest.mark.parametrize(
    "kwargs", [dict(strides=(1, 0, 2)), dict(strides=(1, -2, 2)), dict(downsample="diffstride", strides=(1, 0.5, 2))]
)
def test_strides_below_one_are_refused(kwargs):
    """A stage stride is a downsampling factor >= 1: 0, a negative one or an upsampling 0.5 (even as a learnable
    DiffStride initialisation) is an error at build time, naming the rule."""
    with pytest.raises(ValueError, match=r"must give one stride >= 1 for each of the 3 stages"):
        timm.create_model("zerosnet20_cifar", **kwargs)


def test_strides_are_one_per_stage_not_a_number():
    with pytest.raises(ValueError, match=r"strides takes one stride per stage of zerosnet20_cifar \(3 stages\), e.g."):
        timm.create_model("zerosnet20_cifar", strides=2, device="meta")  # a TypeError of tuple()


@pytest.mark.parametrize("stride", [float("nan"), float("inf"), "2", None, True])
@pytest.mark.parametrize("name", ["zerosnet20_cifar", "preresnet18_diffstride_cifar"])
def test_a_stride_that_is_no_finite_number_is_refused_naming_the_rule(name, stride):
    """A stage stride that is no finite number failed deep in the build (nan: "cannot convert float NaN to integer",
    inf an OverflowError, '2' or None "'<' not supported") or, a bool, built the network with stride 1."""
    strides = (1, stride, 2) if name == "zerosnet20_cifar" else (1, 2, stride, 2)
    with pytest.raises(ValueError, match=r"must give one stride >= 1 for each of the \d stages \(finite numbers, e.g."):
        timm.create_model(name, strides=strides, device="meta")


def test_output_stride_keeps_the_parameters_where_a_strided_stage_keeps_its_width():
    """Roles and projections follow the strided network also where a strided stage keeps the channel count (a
    hand-built skeleton): the dilated network loads the strided one's weights strictly, and each of its feature maps
    holds the strided one's every k-th pixel."""
    from timm_zerosnet.models.multistep import MultistepResNet, cifar_net
    from timm_zerosnet.schemes import LinearMultistep, ZeroStable

    net = cifar_net((2, 2, 1), widths=(16, 16, 32))
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    for scheme in (ZeroStable(), LinearMultistep()):
        strided = MultistepResNet(net, scheme, num_classes=7).double().eval()
        _randomise_norms(strided)
        dilated = MultistepResNet(net, scheme, num_classes=7, output_stride=1).double().eval()
        dilated.load_state_dict(strided.state_dict())
        with torch.no_grad():
            ref = strided.forward_intermediates(x, intermediates_only=True)
            feats = dilated.forward_intermediates(x, intermediates_only=True)
        for r, a, b in zip((1, 2, 4), ref, feats):
            torch.testing.assert_close(b[..., ::r, ::r], a, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("downsample,strides", [("spectral", (1, 2, 2)), ("diffstride", (1, 1, 2))])
def test_pooled_stage_that_keeps_its_width_adds_no_projection(downsample, strides):
    """A pooled block whose width does not change needs no 1x1 conv: the shared pooling layer alone brings x_n (and
    every history slot it reads) to the output size. Such a block is still a stage transition (LM-ResNet resets its
    history there: an Euler step without k), and ZeroSNet's history follows it through the pooling. Hand-built
    skeletons (widths 16, 16, 32); the DiffStride paper's ResNet-18 has such a stage too."""
    from timm_zerosnet.models.multistep import MultistepResNet, cifar_net
    from timm_zerosnet.schemes import LinearMultistep, ZeroStable

    net = cifar_net((2, 2, 1), widths=(16, 16, 32), downsample=downsample, strides=strides)
    x = torch.randn(2, 3, 32, 32)
    for scheme in (ZeroStable(), LinearMultistep()):
        model = MultistepResNet(net, scheme, num_classes=7).eval()
        block = model.stages[1][0]
        assert block.pool is not None
        assert block.shortcut is None and block.proj_last is None and block.proj_llast is None
        roles = [r["role"] for r in model.block_coefficients()]
        assert roles[2] == ("multistep" if scheme.steps == 3 else "reset"), roles
        assert model(x).shape == (2, 7)
    strided = n_params(timm.create_model("preresnet18_cifar", device="meta"))
    assert n_params(timm.create_model("preresnet18_diffstride_cifar")) == strided + 2 * 5  # (S_h, S_w) per layer


def test_filter_keeps_a_head_that_fits_for_callers_that_load_it_themselves():
    """With a num_classes other than the cfg's, timm drops the checkpoint's classifier; checkpoint_filter_fn still
    returns one that fits the model (a caller may load the filtered dict itself), and drops only one that does not."""
    from timm_zerosnet.models.multistep import checkpoint_filter_fn

    model = timm.create_model("zerosnet20_cifar", num_classes=5)
    fits = timm.create_model("zerosnet20_cifar", num_classes=5).state_dict()
    out = checkpoint_filter_fn(fits, model)
    assert set(out) == set(fits)
    torch.testing.assert_close(out["fc.weight"], fits["fc.weight"], rtol=0, atol=0)
    other = checkpoint_filter_fn(timm.create_model("zerosnet20_cifar", num_classes=100).state_dict(), model)
    assert set(other) == set(fits) - {"fc.weight", "fc.bias"}


def test_filter_drops_the_head_for_a_model_built_without_one():
    """A model built with num_classes=0 has no classifier to fill, also one built by hand (no pretrained cfg to
    compare num_classes with): the checkpoint's head is dropped and the backbone loads strictly."""
    from timm_zerosnet.models.multistep import MultistepResNet, checkpoint_filter_fn

    source = timm.create_model("zerosnet20_cifar")
    model = MultistepResNet(source.net, source.scheme, num_classes=0)
    out = checkpoint_filter_fn(source.state_dict(), model)
    assert not any(k.startswith("fc.") for k in out)
    model.load_state_dict(out)
    _backbone_equal(model, source)


@pytest.mark.parametrize("name", ["lmresnet20_cifar", "zerosnet20_tra_cifar", "tauresnet20_nobn_cifar"])
def test_a_network_on_the_meta_device_names_its_scheme_placeholders_until_materialised(name):
    """block_coefficients / scheme_state of a network built on the meta device failed with 'Tensor.item() cannot be
    called on meta tensors'; they name the placeholder and the way to give it values, and read them once loaded."""
    reference = timm.create_model(name)
    with torch.device("meta"):
        model = timm.create_model(name)
    for report in (model.block_coefficients, model.scheme_state):
        with pytest.raises(ValueError, match=r"\b(k|lam|tau) is on the meta device and holds no value yet: .*to_empty"):
            report()
    model.to_empty(device="cpu").load_state_dict(reference.state_dict())
    assert model.scheme_state() == reference.scheme_state()
    assert model.block_coefficients() == reference.block_coefficients()


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet18", "preresnet20_cifar", "zerosnet20_tra_cifar"])
def test_an_input_that_is_no_float_image_batch_is_refused_naming_the_fix(name):
    """One image without its batch dimension passed conv2d and failed in BatchNorm ("expected 4D input"), uint8
    pixels were "expected scalar type Byte but found Float", a grayscale batch, float64 or NumPy input a bare error of
    torch's conv: forward, forward_features and forward_intermediates now name what the model takes and the fix.
    Under autocast the input's float dtype need not be the weights'."""
    model = tiny_model(name, num_classes=3).eval()
    x = tiny_input(model)
    takes = rf"^{name} takes a float batch of images of shape \(N, 3, H, W\); got "
    for bad, error, message in (
        (x[0], ValueError, r"a tensor of shape \(3, \d+, \d+\): add the batch dimension, x\.unsqueeze\(0\)\.$"),
        (x[None], ValueError, r"a tensor of shape \(1, 2, 3, \d+, \d+\): stack the images into one batch\.$"),
        ((x * 50).to(torch.uint8), TypeError, r"torch\.uint8 pixels: convert and normalise them .*x\.float\(\) / 255"),
        (x[:, :1], ValueError, r"1 channels .*x\.expand\(-1, 3, -1, -1\)\) or build the model with in_chans=1\.$"),
        (
            x.double(),
            TypeError,
            r"torch\.float64 but its weights are torch\.float32: .*\(model\.to\(torch\.float64\)\)\.$",
        ),
        (x.numpy(), TypeError, r"an object of type ndarray: convert it with torch\.as_tensor\(x\)\.$"),
    ):
        for call in (model, model.forward_features, model.forward_intermediates):
            with pytest.raises(error, match=takes + message):
                call(bad)
    with pytest.raises(TypeError, match=r"torch\.float16 but its weights .*\) or run it under torch\.autocast\.$"):
        model(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.bfloat16()(x).shape == (2, 3)
    assert model.double()(x.double()).shape == (2, 3)


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet18"])
def test_forward_head_refuses_features_that_are_pooled_already(name):
    """forward_head pools its input itself: pooled (N, C) features were pooled again into a (1, 1) matrix, a matmul
    error with classes and a silently wrong (1, 1) result without; a map of other channels gave a matmul error."""
    model = tiny_model(name, num_classes=3).eval()
    feats = model.forward_features(tiny_input(model))
    pooled = model.forward_head(feats, pre_logits=True)
    for bad, got in ((pooled, r"\(2, \d+\)"), (feats[:, :5], r"\(2, 5, \d+, \d+\)")):
        for classes in (3, 0):
            model.reset_classifier(classes)
            with pytest.raises(ValueError, match=rf"^forward_head takes the unpooled feature map .*; got {got}\. Pass"):
                model.forward_head(bad)
    model.reset_classifier(3)
    torch.testing.assert_close(model.get_classifier()(pooled), model.forward_head(feats))


@pytest.mark.parametrize("fmt", [None, "NHWC", 1])
def test_forward_intermediates_names_an_output_format_that_is_no_string(fmt):
    """output_fmt=None was a TypeError of str + None inside the check."""
    model = tiny_model("zerosnet20_cifar").eval()
    with pytest.raises(ValueError, match=rf"^output_fmt must be 'NCHW', got {re.escape(repr(fmt))}: leave it out"):
        model.forward_intermediates(tiny_input(model), output_fmt=fmt)


@pytest.mark.parametrize(
    "name, trained_with, shown",
    [
        ("zerosnet20_cifar", dict(lam=-1.5), "lam=-1.5"),
        ("zerosnet20_cifar", dict(strides=(1, 1, 2)), "strides=[1, 1, 2]"),  # a list in JSON
        ("tauresnet20_cifar", dict(tau=0.5), "tau=0.5"),
    ],
)
def test_file_beside_a_config_warns_of_other_model_args(tmp_path, name, trained_with, shown):
    """A weights file loaded with pretrained_cfg_overlay=dict(file=...) beside a config.json (an export) whose
    model_args build another network (a fixed lambda, tau, strides: no key differs) says so and names the arguments
    to pass; built with them, it loads without the warning and gives the trained network's outputs."""
    import json
    import warnings

    torch.manual_seed(0)
    trained = timm.create_model(name, **trained_with).eval()
    folder = tmp_path / "export"
    folder.mkdir()
    torch.save(trained.state_dict(), folder / "model.pth")
    cfg = trained.pretrained_cfg
    config = dict(
        architecture=name,
        num_classes=10,
        model_args={**trained_with, "num_classes": 10, "in_chans": 3, "global_pool": "avg"},
        pretrained_cfg=dict(mean=list(cfg["mean"]), std=list(cfg["std"])),
    )
    (folder / "config.json").write_text(json.dumps(config))
    overlay = dict(file=str(folder / "model.pth"))
    with pytest.warns(UserWarning, match=r"trained as another network") as record:
        timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    message = str(next(w.message for w in record if "another network" in str(w.message)))
    assert f"timm.create_model('{name}', pretrained=True, {shown}, pretrained_cfg_overlay=" in message
    assert f"local-dir:{folder}" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **config["model_args"]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))


def test_file_beside_a_config_loads_without_a_warning_for_how_the_model_is_used(tmp_path):
    """output_stride (dilating the last stages for dense prediction) and a new head change how the weights are used,
    not which network they were trained as: no warning of other model arguments."""
    import json
    import warnings

    folder = tmp_path / "export"
    folder.mkdir()
    torch.save(timm.create_model("zerosnet20_cifar").state_dict(), folder / "model.pth")
    model_args = {"num_classes": 10, "in_chans": 3, "global_pool": "avg"}
    (folder / "config.json").write_text(json.dumps(dict(model_args=model_args, pretrained_cfg={})))
    overlay = dict(file=str(folder / "model.pth"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = timm.create_model("zerosnet20_cifar", pretrained=True, pretrained_cfg_overlay=overlay, output_stride=2)
        timm.create_model("zerosnet20_cifar", pretrained=True, pretrained_cfg_overlay=overlay, num_classes=5)
    assert any(m.dilation != (1, 1) for m in model.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize(
    "name, trained_with",
    [
        ("zerosnet20_tra_cifar", dict(lam=0.5)),  # a trainable lambda's initial value
        ("lmresnet20_cifar", dict(k_init=(-0.3, -0.2))),
        ("tauresnet20_nobn_cifar", dict(tau=0.5)),  # the learnable tau's initial value
        ("zerosnet20_cifar", dict(downsample="diffstride", strides=(1, 1.5, 2), stem_stride=1.5)),
    ],
)
def test_arguments_that_only_initialise_parameters_the_file_holds_give_no_warning(tmp_path, name, trained_with):
    """The model-args warning fired for arguments that only set the initial value of a parameter (a trainable lambda,
    k, a learnable tau, DiffStride's strides): the file overwrites them, and the outputs are the trained network's."""
    import json
    import warnings

    torch.manual_seed(0)
    trained = timm.create_model(name, **trained_with).eval()
    folder = tmp_path / "export"
    folder.mkdir()
    torch.save(trained.state_dict(), folder / "model.pth")
    model_args = {**trained_with, "num_classes": 1000, "in_chans": 3, "global_pool": "avg"}
    (folder / "config.json").write_text(json.dumps(dict(model_args=model_args, pretrained_cfg={})))
    kept = {"downsample": "diffstride"} if "downsample" in trained_with else {}  # a layer, not an initial value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=dict(file=str(folder / "model.pth")), **kept
        )
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), trained(x))


def test_a_runs_pooling_is_compared_too(tmp_path):
    """A run trained with --gp max records the pooling beside its model_kwargs: loading its file into an avg-pooled
    model gave other outputs without a word (an export's config.json, which has it in model_args, warned)."""
    import json

    trained = timm.create_model("zerosnet20_cifar", num_classes=10, global_pool="max").eval()
    run = tmp_path / "run"
    run.mkdir()
    torch.save(trained.state_dict(), run / "model.pth")
    info = {"model": "zerosnet20_cifar", "model_kwargs": {}, "num_classes": 10, "global_pool": "max"}
    (run / "run.json").write_text(json.dumps(info))
    overlay = dict(file=str(run / "model.pth"))
    with pytest.warns(UserWarning, match=r"global_pool='max' recorded, 'avg' built.* global_pool='max'"):
        timm.create_model("zerosnet20_cifar", pretrained=True, num_classes=10, pretrained_cfg_overlay=overlay)
