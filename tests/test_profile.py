"""Parameter and multiply-add counts of ``timm_zerosnet.profile`` (used by examples/model_table.py)."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from timm_zerosnet.profile import ModelProfile, count_gmacs, markdown_table, profile_model


def _macs_by_hooks(model: nn.Module, input_size: tuple[int, int, int]) -> float:
    """Multiply-adds of the convolutions and linear layers, from their output shapes: out pixels x in channels per
    group x kernel area (convs), in x out features (linear). The rest of a ResNet (BN, ReLU, sums) does none."""
    total = [0]

    def conv(m, _, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, _, out):
        total[0] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device=next(model.parameters()).device))
    for h in hooks:
        h.remove()
    return total[0] / 1e9


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "preresnet20_cifar", "zerosnet18", "tauresnet20_cifar"])
def test_gmacs_are_the_multiply_adds_of_the_convolutions_and_the_classifier(name):
    meta = timm.create_model(name, device="meta")
    size = tuple(meta.pretrained_cfg["input_size"])
    assert count_gmacs(meta, size) == pytest.approx(_macs_by_hooks(meta, size), rel=1e-9)
    profile = profile_model(name, run_forward=False)
    assert profile.gmacs == pytest.approx(_macs_by_hooks(meta, size), rel=1e-9)
    assert profile.params == sum(p.numel() for p in meta.parameters()) and profile.input_size == size
    assert (profile.forward_ok, profile.forward_s) == (False, 0.0)


def test_learnable_strides_are_counted_on_real_values_and_a_forward_is_checked():
    profile = profile_model("zerosnet18_diffstride_cifar")  # its output sizes depend on the strides' values
    model = timm.create_model("zerosnet18_diffstride_cifar")
    assert profile.gmacs == pytest.approx(_macs_by_hooks(model, (3, 32, 32)), rel=1e-9)
    assert profile.forward_ok and profile.forward_s > 0


def test_markdown_table_rows():
    rows = [
        ModelProfile("a", 1234567, 0.04131, (3, 32, 32), True, 0.5),
        ModelProfile("b", 10, 1.0, (3, 224, 224), False, 0.25, "RuntimeError: boom"),
        ModelProfile("c", 10, 1.0, (3, 224, 224), False, 0.0),
        ModelProfile("d", 10, float("nan"), (3, 224, 224), False, 0.0, "counting GMACs: RuntimeError: boom"),
    ]
    lines = markdown_table(rows).splitlines()
    assert lines[2] == "| a | 1,234,567 | 0.041 | 3x32x32 | ok (0.50 s) |"
    assert lines[3].endswith("| FAILED |") and lines[4].endswith("| not run |")
    assert lines[5] == "| d | 10 | n/a | 3x224x224 | FAILED |"


class _Broken(nn.Module):
    """A classifier whose forward fails in one of the ways a forward can: it raises, or returns NaN."""

    def __init__(self, failure: str, device=None):
        super().__init__()
        self.num_classes, self.failure = 10, failure
        self.pretrained_cfg = {"input_size": (3, 8, 8)}
        self.fc = nn.Linear(3 * 8 * 8, 10, device=device)

    def forward(self, x):
        if self.failure == "raise":
            raise RuntimeError("boom at the head\nsecond line")
        out = self.fc(x.flatten(1))
        return out * float("nan") if self.failure == "nan" else out


@pytest.fixture
def broken_models(monkeypatch):
    """timm.create_model builds, for 'raises' / 'nan', a model that fails only on real tensors, and for
    'raises_on_meta' one whose counting forward (on the meta device) fails too."""
    create = timm.create_model

    def fake(name, device=None, **kwargs):
        if name == "raises_on_meta":
            return _Broken("raise", device)
        if name in ("raises", "nan"):
            return _Broken("none" if device == "meta" else name.replace("raises", "raise"), device)
        return create(name, device=device, **kwargs)

    monkeypatch.setattr(timm, "create_model", fake)


def test_a_failing_forward_is_reported_in_the_profile_not_raised(broken_models):
    raised = profile_model("raises")
    assert not raised.forward_ok and raised.forward_error == "RuntimeError: boom at the head"
    assert raised.gmacs == pytest.approx(3 * 8 * 8 * 10 / 1e9) and raised.params == 3 * 8 * 8 * 10 + 10
    nan = profile_model("nan")
    assert not nan.forward_ok and nan.forward_error == "the output holds NaN or inf" and nan.forward_s > 0
    on_meta = profile_model("raises_on_meta", run_forward=False)
    assert on_meta.forward_error == "counting GMACs: RuntimeError: boom at the head" and on_meta.gmacs != on_meta.gmacs
    fine = profile_model("zerosnet20_cifar")
    assert fine.forward_ok and fine.forward_error == ""
