"""DiffStride and its baselines against the reference values of shared/spec/DIFFSTRIDE.md."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from timm_zerosnet.layers.diffstride import (
    DiffStride,
    FixedSpectralPooling,
    Subsample,
    _vertical_positions,
    create_downsample,
    diffstride_param_names,
    freeze_diffstride,
    stride_regularizer,
)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), DiffStride(2.0), nn.Conv2d(4, 5, 1))


# ----------------------------------------------------------------------------------------------------------------
# Reference values
# ----------------------------------------------------------------------------------------------------------------


def test_sizes_64x64_strides_2_4():
    x = _randn(2, 3, 64, 64)
    assert DiffStride((2.0, 4.0))(x).shape == (2, 3, 40, 24)
    assert FixedSpectralPooling((2, 4))(x).shape == (2, 3, 32, 16)
    assert Subsample((2, 4))(x).shape == (2, 3, 32, 16)


@pytest.mark.parametrize(
    "stride, size", [(1.0, 32), (1.5, 30), (2.0, 24), (2.5, 22), (3.0, 20), (4.0, 16), (8.0, 12), (16.0, 10)]
)
def test_output_size_by_stride_32x32(stride, size):
    layer = DiffStride(stride)
    assert layer(_randn(1, 2, 32, 32)).shape[-2:] == (size, size)
    assert layer.output_size((32, 32)) == (size, size)


@pytest.mark.parametrize("hw, stride, expected", [(7, 1.0, (7, 6)), (15, 2.0, (15, 14))])
def test_odd_width_loses_a_column(hw, stride, expected):
    assert DiffStride(stride)(_randn(1, 1, hw, hw)).shape[-2:] == expected


def test_constant_input_amplitude():
    ones = torch.ones(1, 2, 32, 32)
    out = DiffStride(2.0)(ones)
    # Amplitude scales by H*W / (H_out*W_out) = 1024 / 576.
    torch.testing.assert_close(out, torch.full_like(out, 1024 / 576))
    assert round(out.mean().item(), 2) == 1.78
    torch.testing.assert_close(FixedSpectralPooling(2)(ones), torch.full((1, 2, 16, 16), 4.0))


def test_vertical_positions_follow_the_reference_code():
    # Even H: frequency k -> k, frequency -k -> k - 1.
    assert _vertical_positions(8, torch.device("cpu"), torch.float32).tolist() == [0, 1, 2, 3, 3, 2, 1, 0]
    # Odd H keeps the reference code's fftshift (DC at position 1).
    assert _vertical_positions(7, torch.device("cpu"), torch.float32).tolist() == [1, 2, 3, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "schedule, sizes",
    [((1, 1, 2, 2, 2), [32, 32, 24, 20, 18]), ((1, 1, 3, 2, 3), [32, 32, 20, 18, 14])],
    ids=["init", "poor-init"],
)
def test_preact_resnet18_feature_sizes(schedule, sizes):
    # Stem DiffStride, then the first DiffStride of each stage, chained on feature maps as in the network.
    x, seen = torch.zeros(1, 1, 32, 32), []
    for stride in schedule:
        x = DiffStride(float(stride))(x)
        seen.append(x.shape[-1])
        assert x.shape[-2] == x.shape[-1]
    assert seen == sizes


# ----------------------------------------------------------------------------------------------------------------
# Stride clipping
# ----------------------------------------------------------------------------------------------------------------


def test_strides_clipped_to_size_bound():
    layer = DiffStride(1.0)
    layer(_randn(1, 1, 32, 16))
    torch.testing.assert_close(layer.strides.detach(), torch.tensor([32 / 28, 16 / 12]))
    shared = DiffStride(1.0, shared_stride=True)
    shared(_randn(1, 1, 32, 16))
    assert shared.strides.shape == (1,)
    torch.testing.assert_close(shared.strides.detach(), torch.tensor([16 / 12]))


def test_strides_clipped_to_limits_and_still_differentiable():
    layer = DiffStride((2.0, 5.0), lower_limit=2.5, upper_limit=3.0)
    (layer(_randn(2, 3, 32, 32)) ** 2).sum().backward()
    torch.testing.assert_close(layer.strides.detach(), torch.tensor([2.5, 3.0]))
    assert (layer.strides.grad < 0).all()
    assert DiffStride(3.0, upper_limit=1.0)(_randn(1, 1, 8, 8)).shape[-2:] == (8, 8)


def test_clipping_between_two_uses_in_one_graph():
    # The same instance on two resolutions: the second clip mutates the strides after the first use.
    layer = DiffStride(1.0)
    loss = (layer(_randn(1, 1, 32, 32)) ** 2).sum() + (layer(_randn(1, 1, 8, 8, seed=1)) ** 2).sum()
    loss.backward()
    torch.testing.assert_close(layer.strides.detach(), torch.tensor([2.0, 2.0]))


def test_eval_forward_clips_a_copy_and_leaves_the_strides_alone():
    # Size bound on the height (1.0 -> 32/28 at 32x32, 1.5 at 12x12), upper limit on the width (4.0 -> 3.0).
    layer = DiffStride((1.0, 4.0), upper_limit=3.0).eval()
    initial = layer.strides.detach().clone()
    x = _randn(2, 3, 32, 32)
    with torch.no_grad():
        a = layer(x)
        for hw in ((12, 12), (7, 9), (64, 48)):
            layer(_randn(1, 3, *hw, seed=1))
        b = layer(x)
    assert torch.equal(layer.strides.detach(), initial)  # bit-identical
    assert a.shape[-2:] == (32, 20) == layer.output_size((32, 32))
    torch.testing.assert_close(b, a, rtol=0, atol=0)
    # The straight-through copy passes the gradient to the parameter, still without changing it.
    (layer(x) ** 2).sum().backward()
    eval_grad = layer.strides.grad.clone()
    assert torch.equal(layer.strides.detach(), initial) and (eval_grad < 0).all()
    # Training mode still projects the parameter in place, to the very values eval used (same output, gradient).
    layer.train().zero_grad()
    out = layer(x)
    torch.testing.assert_close(layer.strides.detach(), torch.tensor([32 / 28, 3.0]), rtol=0, atol=0)
    torch.testing.assert_close(out, a, rtol=0, atol=0)
    (out**2).sum().backward()
    torch.testing.assert_close(layer.strides.grad, eval_grad)


def test_eval_forward_under_compile_and_fx_leaves_the_strides_alone():
    torch._dynamo.reset()
    net = _net().eval()
    with torch.no_grad():
        net[1].strides.fill_(1.0)
    initial = net[1].strides.detach().clone()
    x = _randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
        traced = torch.fx.symbolic_trace(net)
        compiled = torch.compile(net, backend="eager")
        for run in (traced, compiled):
            run(_randn(1, 3, 12, 12))
            torch.testing.assert_close(run(x), expected, rtol=0, atol=0)
    assert torch.equal(net[1].strides.detach(), initial)
    torch._dynamo.reset()
    lowpass = DiffStride((1.0, 4.0), cropping=False, upper_limit=3.0).eval()
    y = _randn(1, 2, 16, 16)
    torch.testing.assert_close(torch.compile(lowpass, backend="eager", fullgraph=True)(y), lowpass(y))
    assert lowpass.strides.tolist() == [1.0, 4.0]


# ----------------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------------


def test_stride_gradient_reference_value():
    layer = DiffStride(2.3).double()
    (layer(_randn(2, 3, 32, 32, dtype=torch.float64)) ** 2).sum().backward()
    # The spec's numbers come from numpy.random.default_rng(0).standard_normal((2, 3, 32, 32)).
    assert layer.strides.grad.tolist() == pytest.approx([-1683.72, -1603.96], abs=0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stride_gradient_is_negative(seed):
    torch.manual_seed(seed)
    layer = DiffStride(2.3)
    (layer(torch.randn(2, 3, 32, 32)) ** 2).sum().backward()
    assert (layer.strides.grad < 0).all()
    assert (layer.strides.grad.abs() > 300).all() and (layer.strides.grad.abs() < 5000).all()


@pytest.mark.parametrize("strides, shared", [((2.3, 2.7), False), ((1.7, 1.7), True), ((3.1, 1.3), False)])
def test_stride_gradient_matches_finite_differences(strides, shared):
    x = _randn(2, 3, 32, 24, dtype=torch.float64)
    weight = _randn(2, 3, 40, 40, seed=5, dtype=torch.float64)
    layer = DiffStride(strides, shared_stride=shared).double()

    def loss(values: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            layer.strides.copy_(values)
        out = layer(x)
        return (out**2).sum() + (out * weight[..., : out.shape[-2], : out.shape[-1]]).sum()

    base = layer.strides.detach().clone()
    layer.zero_grad()
    loss(base).backward()
    size = layer.output_size((32, 24))
    eps = 1e-5
    for i in range(base.numel()):
        step = torch.zeros_like(base)
        step[i] = eps
        with torch.no_grad():
            numeric = (loss(base + step) - loss(base - step)) / (2 * eps)
            assert layer.output_size((32, 24)) == size  # finite differences only make sense at constant size
        assert layer.strides.grad[i].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-6)


def test_input_gradient_gradcheck():
    layer = DiffStride((1.8, 2.2)).double()
    x = _randn(1, 1, 6, 8, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(layer, (x,))


@pytest.mark.parametrize("stride", [20.0, 40.0])  # H / S = 1.6 and 0.8
def test_gradient_stops_when_target_below_two(stride):
    # H / S < 2: max(., 2) takes over and the stride no longer changes anything: the output is the one of S = H / 2.
    layer = DiffStride(stride)
    x = _randn(1, 1, 32, 32)
    out = layer(x)
    (out**2).sum().backward()
    assert layer.strides.grad.tolist() == [0.0, 0.0]
    torch.testing.assert_close(out, DiffStride(16.0)(x), rtol=0, atol=0)


def test_without_cropping_size_is_kept_and_high_frequencies_zeroed():
    layer = DiffStride(4.0, cropping=False)
    x = _randn(1, 2, 32, 32)
    out = layer(x)
    assert out.shape == x.shape and layer.output_size((32, 32)) == (32, 32)
    spectrum = torch.fft.rfft2(out)
    # T_h = 4, ramp ends at 8: rows 8..23 (FFT order) and columns from T_w + R = 9 on are zero. In column 0,
    # irfft2 symmetrises rows k and -k, and the reference positions are asymmetric (row 24 = frequency -8 sits at
    # position 7), so row 8 of column 0 picks up half of row 24 (conjugated).
    assert spectrum[..., 8:24, 1:].abs().max() < 1e-3 and spectrum[..., 9:24, 0].abs().max() < 1e-3
    assert spectrum[..., 9:].abs().max() < 1e-3
    (out**2).sum().backward()
    assert (layer.strides.grad < 0).all()


@pytest.mark.parametrize("hw", [(7, 7), (8, 8), (15, 16), (16, 15), (9, 5)])
def test_without_cropping_odd_and_even_sizes_are_kept(hw):
    x = _randn(1, 2, *hw)
    layer = DiffStride(2.0, cropping=False)
    assert layer(x).shape[-2:] == hw == layer.output_size(hw)
    assert layer.freeze(hw) == hw and layer(x).shape[-2:] == hw
    # R = 0 and stride 1: the hard window keeps every coefficient, so the layer is the identity (odd widths too).
    torch.testing.assert_close(DiffStride(1.0, smoothness=0.0, cropping=False)(x), x, atol=1e-5, rtol=0)
    # With cropping the default irfft2 length stays: 7x7 at stride 1 -> 7x6.
    assert DiffStride(1.0)(_randn(1, 1, 7, 7)).shape[-2:] == (7, 6) == DiffStride(1.0).output_size((7, 7))


def _spectral_pool_reference(x: np.ndarray, strides: tuple[int, int]) -> np.ndarray:
    """DIFFSTRIDE.md's fixed spectral pooling in NumPy: sh = H // S_h made even, sw = W // S_w, both at least 2; keep
    the rfft2 rows [0, sh/2) and [H - sh/2, H) and the columns [0, sw/2 + 1), irfft2 to (sh, sw)."""
    height, width = x.shape[-2:]
    sh, sw = height // strides[0], width // strides[1]
    sh, sw = max(sh - sh % 2, 2), max(sw, 2)
    spectrum = np.fft.rfft2(x)
    rows = np.concatenate([spectrum[..., : sh // 2, :], spectrum[..., height - sh // 2 :, :]], axis=-2)
    return np.fft.irfft2(rows[..., : sw // 2 + 1], s=(sh, sw))


@pytest.mark.parametrize(
    "hw, strides",
    [((32, 32), (2, 2)), ((15, 17), (2, 3)), ((31, 9), (3, 2)), ((7, 7), (3, 3)), ((6, 10), (4, 5)), ((8, 4), (1, 4))],
)
def test_fixed_spectral_pooling_follows_the_spec_at_odd_and_even_sizes(hw, strides):
    x = np.random.default_rng(0).standard_normal((2, 3, *hw))
    ref = _spectral_pool_reference(x, strides)
    out = FixedSpectralPooling(strides)(torch.as_tensor(x))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)


def _diffstride_reference(x: np.ndarray, strides: tuple[float, float], shared: bool, cropping: bool) -> np.ndarray:
    """DIFFSTRIDE.md steps 1-7 in NumPy (R = 4, limits [1, inf))."""
    height, width = x.shape[-2:]
    bounds = [size / (size - 4.0) if size > 4.0 else 1.0 for size in (height, width)]
    if shared:
        s_h = s_w = max(strides[0], *bounds, 1.0)
    else:
        s_h, s_w = max(strides[0], bounds[0], 1.0), max(strides[1], bounds[1], 1.0)
    t_h, t_w = max(height / s_h, 2) / 2, max(width / s_w, 2) / 2 + 1
    v = np.arange(height // 2 + height % 2)
    mask_h = np.clip((4.0 + t_h - np.fft.fftshift(np.concatenate([v[height % 2 :][::-1], v]))) / 4.0, 0, 1)
    mask_w = np.clip((4.0 + t_w - np.arange(width // 2 + 1)) / 4.0, 0, 1)
    spectrum = np.fft.rfft2(x) * np.outer(mask_h, mask_w)
    if not cropping:
        return np.fft.irfft2(spectrum, s=(height, width))
    return np.fft.irfft2(spectrum[..., mask_h > 0, :][..., mask_w > 0])


@pytest.mark.parametrize("hw", [(2, 2), (3, 5), (7, 7), (9, 13), (16, 9), (31, 32), (33, 17)])
@pytest.mark.parametrize(
    "strides, shared, cropping",
    [((1.0, 1.0), False, True), ((1.25, 2.75), False, True), ((2.5, 2.5), True, True), ((7.5, 4.25), False, True)]
    + [((1.25, 2.75), False, False), ((2.5, 2.5), True, False)],
)
def test_forward_matches_a_numpy_reference_at_odd_even_and_tiny_sizes(hw, strides, shared, cropping):
    """Values (not only sizes) of the spec's algorithm at non-square, odd (reference fftshift quirk) and 2x2 maps."""
    x = np.random.default_rng(0).standard_normal((2, 3, *hw))
    layer = DiffStride(strides[0] if shared else strides, shared_stride=shared, cropping=cropping).double()
    expected = _diffstride_reference(x, strides, shared, cropping)
    assert layer.output_size(hw) == expected.shape[-2:]
    np.testing.assert_allclose(layer(torch.as_tensor(x)).detach().numpy(), expected, atol=1e-10)


def test_state_dict_round_trip_channels_last_and_batch_independence():
    layer = DiffStride((1.25, 2.75))
    x = _randn(3, 4, 20, 18)
    out = layer(x)
    assert list(layer.state_dict()) == ["strides"]
    restored = DiffStride(2.0)
    restored.load_state_dict(layer.state_dict())
    torch.testing.assert_close(restored(x), out, rtol=0, atol=0)
    torch.testing.assert_close(layer(x.to(memory_format=torch.channels_last)), out, rtol=0, atol=0)
    torch.testing.assert_close(layer(x[1:2]), out[1:2])  # one image of a batch is pooled on its own
    with pytest.raises(RuntimeError, match="size mismatch for strides"):
        DiffStride(2.0, shared_stride=True).load_state_dict(layer.state_dict())


def test_diffstride_defaults_are_the_specs():
    """R = 4.0, cropping on, strides clipped to [1, +inf) by default (no upper limit: None)."""
    layer = DiffStride(2.0)
    assert (layer.smoothness, layer.cropping, layer.lower_limit, layer.upper_limit) == (4.0, True, 1.0, None)
    huge = DiffStride(1000.0).train()
    huge(_randn(1, 1, 32, 32))
    assert huge.strides.tolist() == [1000.0, 1000.0]  # the forward clips strides: not from above


def test_shared_instance_on_residual_and_shortcut():
    pool = DiffStride(2.0)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    x = _randn(2, 3, 16, 16)
    (pool(conv(x)) + pool(x)).pow(2).sum().backward()
    assert pool.strides.grad is not None and (pool.strides.grad != 0).all()


# ----------------------------------------------------------------------------------------------------------------
# Arguments, dtypes, interface
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strides": (0.5, 2.0)}, "must be >= 1"),
        ({"strides": (2.0, 0.5)}, "must be >= 1"),
        ({"strides": 2.0, "lower_limit": 0.0}, "lower_limit must be finite and > 0"),
        ({"strides": 2.0, "smoothness": -1.0}, "smoothness"),
        ({"strides": (2.0, 3.0), "shared_stride": True}, "shared_stride"),
        ({"strides": (2.0, 2.0, 2.0)}, r"\(height, width\) pair"),
        ({"strides": 2.0, "lower_limit": 2.0, "upper_limit": 1.5}, "upper_limit"),
        ({"strides": 2.0, "smoothness": math.inf}, r"smoothness R must be finite and >= 0, got inf.*R = 4\.0"),
        ({"strides": 2.0, "smoothness": math.nan}, r"smoothness R must be finite and >= 0, got nan.*R = 4\.0"),
        ({"strides": (2.0, math.inf)}, "strides must be finite"),
        ({"strides": math.nan}, "strides must be finite"),
        ({"strides": 2.0, "lower_limit": math.inf}, "lower_limit must be finite"),
        ({"strides": 2.0, "lower_limit": math.nan}, "lower_limit must be finite"),
        ({"strides": 2.0, "upper_limit": math.nan}, "upper_limit is nan"),
    ],
)
def test_diffstride_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiffStride(**kwargs)


def test_infinite_upper_limit_means_no_limit():
    layer = DiffStride(40.0, upper_limit=math.inf)
    assert layer.upper_limit is None and "upper_limit" not in repr(layer)
    layer(_randn(1, 1, 32, 32))
    assert layer.strides.tolist() == [40.0, 40.0]


def test_baseline_argument_errors():
    for stride in (1.5, 0, -1):
        with pytest.raises(ValueError, match="integer strides"):
            Subsample(stride)
    for strides in (0.5, (2, 0.5)):
        with pytest.raises(ValueError, match="must be >= 1"):
            FixedSpectralPooling(strides)
    for shape in ((1, 1, 1, 8), (1, 1, 8, 1)):
        with pytest.raises(ValueError, match="at least 2x2"):
            DiffStride(2.0)(torch.zeros(shape))
    with pytest.raises(ValueError, match="at least 2x2"):
        FixedSpectralPooling(2)(torch.zeros(1, 1, 1, 8))
    with pytest.raises(ValueError, match="expects an NCHW input"):
        FixedSpectralPooling(2)(torch.zeros(3))
    with pytest.raises(ValueError, match="choose one of"):
        create_downsample("maxpool", 2)


def test_fft_in_float32_under_autocast():
    layer = DiffStride(2.0)
    x = _randn(2, 3, 20, 20).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        out32 = layer(x.detach().float())
    assert out.dtype == torch.bfloat16 and out32.dtype == torch.float32
    torch.testing.assert_close(out, layer(x.detach().float()).bfloat16(), rtol=0, atol=0)
    out.float().pow(2).sum().backward()
    assert x.grad.dtype == torch.bfloat16 and layer.strides.grad.dtype == torch.float32
    assert FixedSpectralPooling(2)(x.detach().half()).dtype == torch.float16
    # Half-precision strides (model.half()) still build the mask in float32: 2.33203125 is exact in fp16, but
    # 28 / 2.33203125 = 12.0067 is not (fp16 rounds it to 12, and the crop of a 28x28 map from 22 to 20)
    torch.testing.assert_close(DiffStride(2.0).half()(x.detach().half()), layer(x.detach().half()), rtol=0, atol=0)
    odd = DiffStride(2.33203125)
    x28 = _randn(1, 2, 28, 28).half()
    assert odd.output_size((28, 28)) == (22, 22)
    torch.testing.assert_close(odd.half()(x28), odd.float()(x28), rtol=0, atol=0)


def test_layers_are_interchangeable():
    x = _randn(1, 2, 16, 16)
    for kind in ("diffstride", "spectral", "subsample"):
        layer = create_downsample(kind, 2)
        assert layer(x).shape[-2:] == layer.output_size((16, 16))
    torch.testing.assert_close(Subsample(2)(x), x[..., ::2, ::2])
    torch.testing.assert_close(FixedSpectralPooling(1)(x), x, atol=1e-5, rtol=0)
    assert Subsample(3).output_size((16, 16)) == Subsample(3)(x).shape[-2:] == (6, 6)


def test_extra_repr_shows_strides():
    assert "strides=(2, 3)" in repr(DiffStride((2.0, 3.0)))
    assert "strides=(1.5)" in repr(DiffStride(1.5, shared_stride=True))


# ----------------------------------------------------------------------------------------------------------------
# Regulariser and parameter helpers
# ----------------------------------------------------------------------------------------------------------------


def test_stride_regularizer_value_and_gradient():
    first, second = DiffStride((2.0, 3.0)), DiffStride(1.5, shared_stride=True)
    model = nn.Sequential(first, nn.Conv2d(1, 1, 1), second)
    penalty = stride_regularizer(model)
    a1, a2 = 1 / (2.0 * 3.0), 1 / 1.5**2
    assert penalty.item() == pytest.approx(a1 + a1 * a2)
    penalty.backward()
    expected_first = [-(1 + a2) / (2.0**2 * 3.0), -(1 + a2) / (2.0 * 3.0**2)]
    assert first.strides.grad.tolist() == pytest.approx(expected_first)
    assert second.strides.grad.tolist() == pytest.approx([a1 * -2 / 1.5**3])


def _regularizer_from_parameters(model: nn.Module) -> torch.Tensor:
    """J computed straight from the parameters (what stride_regularizer did before it used a copy)."""
    total, area = 0.0, 1.0
    for m in model.modules():
        if isinstance(m, DiffStride):
            area = area / (m.strides[0] * m.strides[-1])
            total = total + area
    return total


def _regularized_net() -> nn.Sequential:
    # The first layer starts at 1.0 and is clipped to 32/28 by the forward (an in-place write), as in the networks.
    torch.manual_seed(0)
    return nn.Sequential(DiffStride(1.0), nn.Conv2d(3, 3, 3, padding=1), DiffStride(2.0, shared_stride=True))


@pytest.mark.parametrize("order", ["forward-first", "regularizer-first"])
def test_stride_regularizer_on_either_side_of_the_forward(order):
    net, x = _regularized_net(), _randn(2, 3, 32, 32)
    if order == "regularizer-first":
        penalty = stride_regularizer(net)
        assert penalty.item() == pytest.approx(1 + 1 / 4)  # the strides as they were when it was called
        out = net(x)
    else:
        out = net(x)
        penalty = stride_regularizer(net)
        assert penalty.item() == pytest.approx((28 / 32) ** 2 * (1 + 1 / 4))  # the clipped strides
    (out.pow(2).sum() + 0.1 * penalty).backward()
    grads = [net[0].strides.grad, net[2].strides.grad]
    assert all(g is not None and torch.isfinite(g).all() and (g != 0).all() for g in grads)
    if order == "forward-first":
        # Same gradient as J built from the parameters themselves.
        reference, y = _regularized_net(), x.clone()
        (reference(y).pow(2).sum() + 0.1 * _regularizer_from_parameters(reference)).backward()
        torch.testing.assert_close(net[0].strides.grad, reference[0].strides.grad, rtol=0, atol=0)
        torch.testing.assert_close(net[2].strides.grad, reference[2].strides.grad, rtol=0, atol=0)


def test_stride_regularizer_before_the_forward_of_a_shared_layer():
    pool = DiffStride(1.0)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.ModuleList([conv, pool])
    x = _randn(2, 3, 16, 16)
    penalty = stride_regularizer(model)
    (pool(conv(x)) + pool(x)).pow(2).sum().add(penalty).backward()
    assert torch.isfinite(pool.strides.grad).all() and (pool.strides.grad != 0).all()
    assert torch.equal(pool.strides.detach(), torch.tensor([16 / 12, 16 / 12]))


def test_stride_regularizer_without_diffstride_is_zero_tensor():
    penalty = stride_regularizer(nn.Sequential(nn.Conv2d(1, 1, 1)))
    assert isinstance(penalty, torch.Tensor) and penalty.item() == 0.0


def test_diffstride_param_names():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Sequential(DiffStride(2.0)), DiffStride(2.0))
    names = diffstride_param_names(model)
    assert names == ["1.0.strides", "2.strides"]
    params = dict(model.named_parameters())
    assert all(params[n].shape == (2,) for n in names)
    assert diffstride_param_names(DiffStride(2.0)) == ["strides"]


# ----------------------------------------------------------------------------------------------------------------
# Tooling: TorchScript, FX, torch.compile, torch.export, ONNX
# ----------------------------------------------------------------------------------------------------------------


def test_torchscript_fails_with_clear_message():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="does not support TorchScript"):
            torch.jit.script(_net())


@pytest.mark.parametrize("strides", [2, (1.5, 3)])
def test_fixed_spectral_pooling_scripts_traces_compiles_and_exports(strides):
    """The static baseline meets the whole model contract and gives the eager result bit for bit."""
    torch._dynamo.reset()
    layer = FixedSpectralPooling(strides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated
        scripted = torch.jit.script(layer)
    traced = torch.fx.symbolic_trace(layer)
    assert any(n.op == "call_function" and "spectral_pool" in n.name for n in traced.graph.nodes)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    x = _randn(2, 3, 15, 17)
    expected = layer(x)
    assert expected.shape[-2:] == layer.output_size((15, 17))
    exported = torch.export.export(layer, (x,)).module()
    for run in (scripted, traced, compiled, exported):
        torch.testing.assert_close(run(x), expected, rtol=0, atol=0)
    # the sizes follow the input at run time, not the one seen when scripting / tracing
    for run in (scripted, traced):
        torch.testing.assert_close(run(_randn(1, 2, 8, 12)), layer(_randn(1, 2, 8, 12)), rtol=0, atol=0)
    for run in (scripted, traced):
        with pytest.raises(Exception, match="at least 2x2"):
            run(torch.zeros(1, 1, 1, 8))
        with pytest.raises(Exception, match="expects an NCHW input"):
            run(torch.zeros(3))


def test_fx_symbolic_trace_keeps_learning_strides():
    net = _net()
    traced = torch.fx.symbolic_trace(net)
    assert any(n.op == "call_function" and "diffstride" in n.name for n in traced.graph.nodes)
    x = _randn(2, 3, 32, 32)
    torch.testing.assert_close(traced(x), net(x))
    traced(x).pow(2).sum().backward()
    assert (net[1].strides.grad < 0).all()
    with torch.no_grad():
        net[1].strides.fill_(3.0)
    assert traced(x).shape[-2:] == (20, 20)


def test_torch_compile_follows_stride_changes():
    torch._dynamo.reset()
    net = _net()
    compiled = torch.compile(net, backend="eager")
    x = _randn(2, 3, 32, 32)
    compiled(x).pow(2).sum().backward()
    grad = net[1].strides.grad.clone()
    net.zero_grad()
    net(x).pow(2).sum().backward()
    torch.testing.assert_close(grad, net[1].strides.grad)
    with torch.no_grad():
        net[1].strides.fill_(3.0)
    assert compiled(x).shape[-2:] == (20, 20)


@pytest.mark.parametrize("frozen", [False, True], ids=["no-cropping", "frozen"])
def test_torch_compile_fullgraph_for_static_shapes(frozen):
    torch._dynamo.reset()
    layer = DiffStride(2.0, cropping=frozen)
    x = _randn(1, 2, 16, 16)
    if frozen:
        layer.freeze((16, 16))
    torch.testing.assert_close(torch.compile(layer, backend="eager", fullgraph=True)(x), layer(x))


def test_sizes_at_the_edges_of_the_ramp():
    """A side equal to R (the ramp alone covers the spectrum: no bound on S) and R = 0 (a hard window, the limit of
    small R: a coefficient exactly at the threshold stays)."""
    out = DiffStride(2.0)(_randn(1, 1, 4, 4))
    assert out.shape[-2:] == (4, 4) and torch.isfinite(out).all()
    hard, small = DiffStride(2.0, smoothness=0.0), DiffStride(2.0, smoothness=1e-3)
    assert hard.output_size((16, 16)) == small.output_size((16, 16))
    assert DiffStride(2.0, smoothness=0.0)(_randn(1, 1, 16, 16)).shape[-2:] == (10, 10)


@pytest.mark.parametrize("cropping", [True, False])
@pytest.mark.parametrize("shared", [False, True])
def test_a_hard_window_gives_the_strides_a_zero_gradient(cropping, shared):
    """R = 0 passes no gradient to the strides, but it left them out of the graph: backward on a lone layer failed with
    "element 0 of tensors does not require grad", and in a network the strides' grad stayed None (DDP without
    find_unused_parameters refuses that), where past max(., 2) they get a zero gradient."""
    layer = DiffStride(2.0, smoothness=0.0, cropping=cropping, shared_stride=shared)
    x = _randn(2, 3, 16, 12)
    out = layer(x)
    # the window of a ramp of width 2^-10 at integer thresholds (T_h = 16 / 4, T_w = 12 / 4 + 1), bit for bit
    torch.testing.assert_close(out, DiffStride(2.0, smoothness=2**-10, cropping=cropping)(x), atol=0, rtol=0)
    out.square().sum().backward()
    assert layer.strides.grad.tolist() == [0.0] * (1 if shared else 2)


def test_a_training_forward_that_clips_nothing_leaves_the_strides_version_alone():
    """A loss term that saved the strides themselves before the forward still backpropagates: the in-place clip
    writes only when it changes something."""
    layer = DiffStride(2.0).train()
    penalty = (layer.strides**2).sum()  # pow saves the parameter for backward
    (penalty + layer(_randn(1, 1, 16, 16)).square().sum()).backward()
    assert layer.strides.grad is not None and torch.isfinite(layer.strides.grad).all()


def test_freeze_clips_the_strides_and_refreezes_for_another_size():
    layer = DiffStride(1.0).eval()
    x = _randn(1, 1, 32, 32)
    expected = layer(x)  # eval clips a copy: S >= 32 / (32 - 4)
    layer.freeze((32, 32))
    assert layer.strides.tolist() == pytest.approx([32 / 28] * 2)
    torch.testing.assert_close(layer(x), expected)
    net = _net().eval()
    freeze_diffstride(net, _randn(1, 3, 32, 32))
    assert freeze_diffstride(net, _randn(1, 3, 16, 16)) == {"1": ((16, 16), net[1].output_size((16, 16)))}
    assert net(_randn(1, 3, 16, 16)).shape[-2:] == net[1].output_size((16, 16))


def test_a_layer_seen_at_two_sizes_cannot_be_frozen():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = DiffStride(2.0)

        def forward(self, x):
            return self.pool(x).mean() + self.pool(x[..., :16, :16]).mean()

    model = Twice().eval()
    with pytest.raises(ValueError, match=r"'pool' sees inputs of sizes \(32, 32\) and \(16, 16\) in one forward"):
        freeze_diffstride(model, _randn(1, 1, 32, 32))
    assert not model.pool.frozen


def test_export_needs_freeze_and_frozen_export_matches():
    net = _net().eval()
    x = _randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="freeze_diffstride"):
        torch.export.export(net, (x,))
    assert freeze_diffstride(net, x) == {"1": ((32, 32), (24, 24))}
    assert net[1].frozen
    exported = torch.export.export(net, (x,))
    torch.testing.assert_close(exported.module()(x), net(x))
    with pytest.raises(ValueError, match="frozen for 32x32"):
        net(_randn(1, 3, 16, 16))
    net[1].unfreeze()
    assert net(_randn(1, 3, 16, 16)).shape[-2:] == (16, 16)


def test_onnx_export_of_frozen_network():
    pytest.importorskip("onnxscript")
    reference = pytest.importorskip("onnx.reference")
    net = _net().eval()
    x = _randn(2, 3, 32, 32)
    freeze_diffstride(net, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (x,), dynamo=True, verbose=False)
    session = reference.ReferenceEvaluator(program.model_proto)
    (out,) = session.run(None, {session.input_names[0]: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, net(x).numpy(), atol=1e-5)
    assert math.prod(out.shape[-2:]) == 24 * 24


# ----------------------------------------------------------------------------------------------------------------
# Mutation-audit additions: argument refusals, devices, exact eval clip, frozen sizes
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [DiffStride, FixedSpectralPooling, Subsample])
@pytest.mark.parametrize("strides", [(2.0,), ()], ids=["one-value", "empty"])
def test_a_strides_sequence_of_the_wrong_length_is_refused(layer, strides):
    with pytest.raises(ValueError, match=rf"one stride or a \(height, width\) pair, got {len(strides)} values"):
        layer(strides)


def test_device_and_dtype_reach_the_strides():
    layer = DiffStride((2.0, 3.0), device="meta", dtype=torch.float64)
    assert layer.strides.is_meta and layer.strides.dtype == torch.float64 and layer.strides.shape == (2,)
    # without cropping the shape is static: shape inference on the meta device works, training-mode clip included
    lowpass = DiffStride(2.0, cropping=False, device="meta").train()
    assert lowpass(torch.zeros(1, 2, 16, 15, device="meta")).shape == (1, 2, 16, 15)
    # J of a model without DiffStride is a zero on the model's device
    assert stride_regularizer(nn.Linear(1, 1, device="meta")).is_meta
    assert lowpass.output_size((16, 15)) == (16, 15)


def test_strides_follow_torchs_default_dtype_as_every_other_parameter():
    """Under torch.set_default_dtype(torch.float64) every parameter of a network was float64 but the strides, which
    stayed float32: float32 thresholds in a float64 network, and a float64 finite-difference check of them failed."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        layer = DiffStride(2.3)
        assert layer.strides.dtype == torch.float64 and layer.strides.tolist() == [2.3, 2.3]
        assert DiffStride(2.0, dtype=torch.float32).strides.dtype == torch.float32  # an explicit dtype still wins
        x = _randn(1, 2, 32, 32, dtype=torch.float64)
        layer(x).square().sum().backward()
        grad = layer.strides.grad[0].item()
        with torch.no_grad():
            layer.strides[0] += 1e-6
            plus = layer(x).square().sum().item()
            layer.strides[0] -= 2e-6
            minus = layer(x).square().sum().item()
        assert grad == pytest.approx((plus - minus) / 2e-6, rel=1e-6)
    finally:
        torch.set_default_dtype(previous)
    assert DiffStride(2.0).strides.dtype == torch.float32


def test_a_layer_on_the_meta_device_prints_and_says_why_it_has_no_output_size():
    """repr (and so print(model) of a network built on the meta device) raised 'Cannot copy out of meta tensor', and
    so did output_size and freeze, where a cropping layer's size follows the strides' values."""
    import timm

    layer = DiffStride((2.0, 3.0), device="meta")
    assert "strides=(meta)" in repr(layer)
    assert "DiffStride(strides=(meta)" in repr(timm.create_model("preresnet18_diffstride_cifar", device="meta"))
    for call, what in ((layer.output_size, "output_size"), (layer.freeze, "freeze")):
        with pytest.raises(ValueError, match=rf"DiffStride\.{what}: the strides are on the meta device .*to_empty"):
            call((32, 32))
    # a forward too, and so freeze_diffstride, the step before export
    model = timm.create_model("preresnet18_diffstride_cifar", device="meta")
    x = torch.zeros(1, 3, 32, 32, device="meta")
    for call in (lambda: layer(x), lambda: freeze_diffstride(model, x)):
        with pytest.raises(ValueError, match=r"DiffStride: the strides are on the meta device .*to_empty"):
            call()
    layer.to_empty(device="cpu")
    with torch.no_grad():
        layer.strides.copy_(torch.tensor([2.0, 3.0]))
    assert "strides=(2, 3)" in repr(layer)
    assert layer.output_size((32, 32)) == DiffStride((2.0, 3.0)).output_size((32, 32))


@pytest.mark.parametrize("initial, limit", [(1000.0, 2.3), (200.0, 3.7)])
def test_eval_uses_exactly_the_clipped_strides(initial, limit):
    """Eval clips a copy to exactly the value training would project to: a stride far above the upper limit gives,
    bit for bit, the output of a layer that starts at the limit (s + (c - s) would be off by float rounding)."""
    x = _randn(2, 3, 32, 32)
    with torch.no_grad():
        out = DiffStride(initial, upper_limit=limit).eval()(x)
        torch.testing.assert_close(out, DiffStride(limit)(x), rtol=0, atol=0)


def test_output_size_of_a_frozen_layer_is_the_frozen_one():
    """After freeze the strides keep learning but the size stays: output_size says what forward does. Other input
    sizes are answered from the live strides, and unfreeze() lets the size follow the strides again."""
    layer = DiffStride(2.0)
    x = _randn(1, 1, 32, 32)
    assert layer.freeze((32, 32)) == (24, 24)
    assert "frozen" in repr(layer)
    with torch.no_grad():
        layer.strides.fill_(4.0)
    assert layer(x).shape[-2:] == (24, 24) == layer.output_size((32, 32))
    assert layer.output_size((16, 16)) == DiffStride(4.0).output_size((16, 16)) != DiffStride(2.0).output_size((16, 16))
    layer.unfreeze()
    assert layer.output_size((32, 32)) == (16, 16) == layer(x).shape[-2:]  # DIFFSTRIDE.md: 32x32 at S=4
    assert "frozen" not in repr(layer)


def test_create_downsample_passes_the_layer_arguments_on():
    layer = create_downsample("diffstride", (2, 3), smoothness=2.0, cropping=False, dtype=torch.float64)
    assert (layer.smoothness, layer.cropping, layer.strides.dtype) == (2.0, False, torch.float64)
    assert layer.strides.tolist() == [2.0, 3.0]
    with pytest.raises(TypeError, match="smoothness"):
        create_downsample("spectral", 2, smoothness=2.0)  # an argument the layer does not take is not dropped


def test_freezing_a_training_model_leaves_its_batchnorm_statistics_alone():
    """freeze_diffstride's recording forward ran in the model's own mode: in training mode it updated every
    BatchNorm's running statistics from the example input. It records in eval mode and restores each module's mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), DiffStride(2.0), nn.Conv2d(4, 5, 1)).train()
    net[3].eval()  # a mixed model keeps its mixture
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    assert freeze_diffstride(net, _randn(2, 3, 32, 32)) == {"2": ((32, 32), (24, 24))}
    assert net[2].frozen and [m.training for m in net] == [True, True, True, False]
    for name, value in net.named_buffers():
        assert torch.equal(value, buffers[name]), name


@pytest.mark.parametrize("layer", [DiffStride, FixedSpectralPooling, Subsample])
def test_strides_are_numbers_as_torch_layers_take_them_and_anything_else_is_named(layer):
    """'23' was read as the strides (2, 3) and '2' refused as "1 values (2.0,)"; a NumPy integer or a one-element
    tensor (which torch's own pooling layers take) and None failed with "object is not iterable"."""
    for given in (np.int64(2), torch.tensor(2.0), 2, (np.float32(2.0), 2)):
        built, reference = layer(given), layer(2.0)
        assert built.output_size((9, 9)) == reference.output_size((9, 9)), given
        x = _randn(1, 2, 9, 9)
        torch.testing.assert_close(built(x), reference(x), msg=str(given))
    for bad in ("23", "2", None, ("2", "3"), (True, 2)):
        with pytest.raises(
            TypeError, match=rf"^{layer.__name__} needs one stride or a \(height, width\) pair of numbers"
        ):
            layer(bad)


@pytest.mark.parametrize("training", [True, False])
def test_nan_strides_name_the_divergence_instead_of_failing_inside_the_fft(training):
    """A nan stride (training diverged) kept no row or column and failed in irfft2 with "Invalid number of data
    points (0) specified"."""
    for value in ([math.nan, math.nan], [2.0, math.nan]):
        layer = DiffStride(2.0).train(training)
        with torch.no_grad():
            layer.strides.copy_(torch.tensor(value))
        with pytest.raises(ValueError, match=r"DiffStride strides are \[.*nan\].*Training diverged"):
            layer(_randn(1, 2, 16, 16))
        with pytest.raises(ValueError, match="Training diverged"):
            layer.freeze((16, 16))
        assert not layer.frozen


@pytest.mark.parametrize("layer", [DiffStride(2.0), FixedSpectralPooling(2)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool, torch.complex64])
def test_spectral_layers_refuse_inputs_that_are_not_floating_point(layer, dtype):
    """The FFT result was cast back to the input dtype: an integer image came out truncated (uint8 wrapped around
    at its negative values), a complex one lost its imaginary part with only a warning."""
    name = type(layer).__name__
    with pytest.raises(TypeError, match=rf"^{name} needs a floating-point input, got {dtype}; convert it first"):
        layer(torch.ones(1, 1, 8, 8, dtype=dtype))
    assert Subsample(2)(torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4)).dtype == torch.uint8  # only slices


def test_output_size_and_freeze_take_a_height_width_pair():
    """x.shape (batch and channels first) was read as (height, width), a 1x1 size froze a plan the forward refuses,
    and 8.5 was truncated, all without a word; a negative size failed inside torch.arange."""
    x = _randn(2, 3, 32, 32)
    layers = {
        "DiffStride.output_size": DiffStride(2.0).output_size,
        "DiffStride.freeze": DiffStride(2.0).freeze,
        "FixedSpectralPooling.output_size": FixedSpectralPooling(2).output_size,
        "Subsample.output_size": Subsample(2).output_size,
    }
    for what, method in layers.items():
        assert method(x.shape[-2:]) == method((np.int64(32), torch.tensor(32))) == method([32, 32])
        for bad in (x.shape, 32, "32", (32.0, 32), (True, 32), (32, 32, 32)):
            with pytest.raises(TypeError, match=rf"^{what} needs the input's \(height, width\).*x\.shape\[-2:\]"):
                method(bad)
        for small in ((-4, 8), (1, 8)) if what != "Subsample.output_size" else ((-4, 8),):
            with pytest.raises(ValueError, match=rf"^{what} got an input of {small[0]}x{small[1]}, smaller than"):
                method(small)
    assert Subsample(2).output_size((1, 1)) == (1, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cropping": "False"}, r"cropping must be True or False, got 'False'"),
        ({"shared_stride": "yes"}, r"shared_stride must be True or False, got 'yes'"),
        ({"smoothness": "4"}, r"smoothness must be a number, got '4'"),
        ({"smoothness": True}, r"smoothness must be a number, got True"),
        ({"lower_limit": "1"}, r"lower_limit must be a number, got '1'"),
        ({"upper_limit": "8"}, r"upper_limit must be a number or None, got '8'"),
        ({"dtype": torch.int64}, r"dtype must be a floating-point dtype, got torch.int64"),
        ({"dtype": torch.complex64}, r"dtype must be a floating-point dtype, got torch.complex64"),
    ],
)
def test_diffstride_options_of_the_wrong_type_are_refused(kwargs, match):
    """cropping='False' (a string from a config) was truthy and cropped; smoothness='4' and True were read as 4.0
    and 1.0; an integer dtype failed inside torch, a complex one gave complex strides."""
    with pytest.raises(TypeError, match=match):
        DiffStride(2.0, **kwargs)
    assert DiffStride(2.0, cropping=np.bool_(False), smoothness=np.float32(4.0)).cropping is False


@pytest.mark.parametrize("shape", [(2, 0, 16, 16), (0, 16, 16), (0, 3, 16, 16)])
def test_diffstride_takes_empty_inputs_of_any_empty_dimension(shape):
    """An input with no channels failed with "The size of tensor a (2) must match the size of tensor b (0)"."""
    layer = DiffStride(2.0)
    x = torch.zeros(shape, requires_grad=True)
    out = layer(x)
    assert out.shape == (*shape[:-2], *layer.output_size((16, 16)))
    out.sum().backward()
    assert x.grad.shape == x.shape and layer.strides.grad.tolist() == [0.0, 0.0]


def test_an_infinite_fixed_spectral_pooling_stride_is_refused_as_diffstride_refuses_it():
    """FixedSpectralPooling(inf) was accepted and gave a 2x2 map whatever the input, while DiffStride refused inf."""
    for strides in (math.inf, (2.0, math.inf)):
        with pytest.raises(ValueError, match=r"strides must be finite.*large finite stride"):
            FixedSpectralPooling(strides)
        with pytest.raises(ValueError, match=r"strides must be finite.*large finite stride"):
            DiffStride(strides)
    assert FixedSpectralPooling(1e9)(_randn(1, 1, 8, 8)).shape == (1, 1, 2, 2)


@pytest.mark.parametrize("call", [stride_regularizer, lambda model: freeze_diffstride(model, _randn(1, 3, 8, 8))])
def test_network_helpers_refuse_what_is_not_a_module(call):
    """None failed with "'NoneType' object has no attribute 'modules'"."""
    with pytest.raises(TypeError, match=r"takes the network \(a torch.nn.Module\), got NoneType: pass the model"):
        call(None)


def test_freeze_diffstride_refuses_an_example_input_that_is_not_a_tensor():
    """A NumPy input failed inside the first conv ("conv2d() received an invalid combination of arguments")."""
    net = _net()
    with pytest.raises(TypeError, match=r"example_input as a torch.Tensor.*got ndarray.*torch.from_numpy\(x\)"):
        freeze_diffstride(net, np.zeros((1, 3, 32, 32), dtype=np.float32))
    assert not net[1].frozen


def test_freeze_diffstride_refuses_a_model_without_diffstride():
    """It ran a forward and returned {} without a word."""
    with pytest.raises(ValueError, match=r"Sequential has no DiffStride layer.*downsample='diffstride'"):
        freeze_diffstride(nn.Sequential(nn.Conv2d(3, 4, 1), FixedSpectralPooling(2)), _randn(1, 3, 8, 8))


def test_freeze_diffstride_warns_about_the_layers_the_forward_does_not_reach():
    """A layer the example forward never reached was left unfrozen without a warning (an export reaching it failed)."""

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.aux = DiffStride(2.0), DiffStride(2.0)

        def forward(self, x):
            return self.used(x)

    model = Branch().eval()
    with pytest.warns(UserWarning, match=r"does not reach DiffStride layer\(s\) aux, so they are left unfrozen"):
        assert freeze_diffstride(model, _randn(1, 1, 16, 16)) == {"used": ((16, 16), model.used.output_size((16, 16)))}
    assert model.used.frozen and not model.aux.frozen
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        freeze_diffstride(_net().eval(), _randn(1, 3, 16, 16))  # all reached: no warning
