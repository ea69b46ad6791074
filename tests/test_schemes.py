"""Scheme behaviour inside the models: coefficients, start-up, history, lambda guard, step size."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch

from conftest import family_models, tiny_input, tiny_model
from timm_zerosnet.schemes import (
    OPT_LAMBDA,
    EulerUpdate,
    LinearMultistep,
    LinearMultistepUpdate,
    ZeroStable,
    ZeroStableUpdate,
    _LerpAddFunction,
    _ZeroStableTraFunction,
    zeros_coefficients,
)

OPT = (1 / 3, 5 / 9, 1 / 9, 16 / 9)


def test_opt_coefficients_are_the_papers():
    assert zeros_coefficients(OPT_LAMBDA) == pytest.approx(OPT, abs=1e-15)
    model = timm.create_model("zerosnet20_cifar", device="meta")
    rows = [r for r in model.block_coefficients() if r["role"] == "multistep"]
    assert len(rows) == sum(model.net.layers) - 2
    for r in rows:
        assert r["a"] == pytest.approx(OPT[:3]) and r["b"][0] == pytest.approx(OPT[3])
    startup = [r for r in model.block_coefficients() if r["role"] == "startup"]
    assert [r["block"] for r in startup] == ["stages.0.0", "stages.0.1"] and all(r["a"] == (1.0,) for r in startup)


def test_lambda_zero_and_bad_coefficients_are_rejected():
    with pytest.raises(ValueError, match="lambda = 0"):
        zeros_coefficients(0.0)
    with pytest.raises(ValueError, match="non-zero"):
        timm.create_model("zerosnet20_cifar", lam=0.0, device="meta")
    with pytest.raises(ValueError, match="four finite numbers"):
        timm.create_model("zerosnet20_cifar", coefficients=(1, 2, 3), device="meta")
    with pytest.raises(ValueError, match="trainable=True"):
        timm.create_model("zerosnet20_tra_cifar", coefficients=OPT, device="meta")


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "zerosnet20_tra_cifar", "lmresnet20_cifar", "preresnet20_cifar"])
@pytest.mark.parametrize("tau", [float("nan"), float("inf"), 0, -0.5, "big"])  # (timm drops None kwargs)
def test_step_size_must_be_finite_and_positive(name, tau):
    with pytest.raises(ValueError, match=r"tau \(the step size h of the \w+ scheme\) must be a finite number > 0"):
        timm.create_model(name, tau=tau, device="meta")


def test_lm_k_init_must_be_a_low_high_pair():
    for bad in [(0.0,), 0.5, (0.1, -0.1), (0.0, float("nan")), ("a", 0.0)]:
        with pytest.raises(ValueError, match=r"k_init is the \(low, high\) range .* got"):
            timm.create_model("lmresnet20_cifar", k_init=bad, device="meta")
    model = timm.create_model("lmresnet20_cifar", k_init=[-0.3, -0.2])
    ks = torch.stack([m.k for m in model.modules() if isinstance(m, LinearMultistepUpdate)])
    assert len(ks) and bool(((ks >= -0.3) & (ks <= -0.2)).all())


def test_non_zero_stable_coefficients_build_and_warn_once():
    with pytest.warns(UserWarning, match=r"not zero stable.*modulus 1\.839") as record:
        model = timm.create_model("zerosnet20_cifar", coefficients=(1, 1, 1, 1))
    assert len([w for w in record if "zero stable" in str(w.message)]) == 1
    assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        timm.create_model("zerosnet20_cifar", coefficients=OPT, device="meta")
        timm.create_model("zerosnet20_cifar", lam=-1.2, device="meta")


def test_multistep_recurrence_of_a_block():
    """x_{n+1} = a0 x_n + a1 x_{n-1} + a2 x_{n-2} + h b0 F(x_n), with F the block's branch."""
    model = tiny_model("zerosnet20_cifar", coefficients=(0.5, 0.3, 0.2, 0.7), tau=0.5).eval()
    block = model.stages[0][2]
    x, last, llast = (torch.randn(2, 16, 8, 8) for _ in range(3))
    out, new_last, new_llast = block(x, last, llast)
    f = block.residual(torch.relu(block.bn1(x)))
    torch.testing.assert_close(out, 0.5 * x + 0.3 * last + 0.2 * llast + 0.5 * 0.7 * f)
    assert new_last is x and new_llast is last


def test_history_through_the_network_matches_the_spec():
    """Run blocks by hand: Euler start-up, raw stem output as x_0, per-slot projections at a transition."""
    model = tiny_model("zerosnet164_cifar").eval()  # bottleneck: the start-up shortcut differs from x_0
    x0 = model.conv1(tiny_input(model))
    b0, b1, b2 = model.stages[0][0], model.stages[0][1], model.stages[0][2]
    f = lambda b, x: b.residual(torch.relu(b.bn1(x)))  # noqa: E731
    x1 = f(b0, x0) + b0.shortcut(x0)
    x2 = f(b1, x1) + x1
    a0, a1, a2, b_0 = OPT
    x3 = b_0 * f(b2, x2) + a0 * x2 + a1 * x1 + a2 * b2.proj_llast(x0)
    cur, last, llast = model.stages[0](x0, x0, x0)
    torch.testing.assert_close(cur, x3)
    # the next stage starts with a transition: all three slots are projected by their own 1x1 convs
    t = model.stages[1][0]
    assert t.shortcut is not None and t.proj_last is not None and t.proj_llast is not None
    assert t.shortcut.norm is None  # bare conv on CIFAR ZeroSNet


def test_lmresnet_k_where_used_and_history_reset():
    model = timm.create_model("lmresnet20_cifar", device="meta")
    ks = [n for n, _ in model.named_parameters() if n.endswith(".k")]
    assert len(ks) == sum(model.net.layers) - 3  # not block 0, not the two transitions
    assert "stages.1.0.update.k" not in ks and "stages.0.0.update.k" not in ks
    real = timm.create_model("lmresnet56_cifar")
    values = torch.stack([p for n, p in real.named_parameters() if n.endswith(".k")])
    assert (values >= -0.1).all() and (values <= 0).all() and values.std() > 0
    # k = 0 is Euler: the output equals the pre-act ResNet with the same weights
    lm = tiny_model("lmresnet20_cifar").eval()
    for m in lm.modules():
        if isinstance(m, LinearMultistepUpdate):
            torch.nn.init.zeros_(m.k)
    pre = tiny_model("preresnet20_cifar").eval()
    pre.load_state_dict({k: v for k, v in lm.state_dict().items() if not k.endswith(".k")})
    x = tiny_input(lm)
    torch.testing.assert_close(lm(x), pre(x))
    # a transition block resets the history to the projected x_n
    t = lm.stages[1][0]
    h = torch.randn(2, 16, 32, 32)
    out, last, llast = t(h, h, h)
    torch.testing.assert_close(last, t.shortcut(h))
    assert llast is last


@pytest.mark.parametrize("name", ["lmresnet18", "lmresnet34", "lmresnet50", "lmresnet101"])
def test_imagenet_lmresnet_has_k_where_the_cifar_rules_use_it(name):
    """ARCHITECTURES.md section 2 on ImageNet: "apply the same rules", k only where used. No k in the first block
    (no history yet) nor in the first block of each later stage (a transition resets the history): blocks - stages."""
    model = timm.create_model(name, device="meta")
    ks = {n for n, _ in model.named_parameters() if n.endswith(".k")}
    assert len(ks) == sum(model.net.layers) - len(model.net.layers)
    assert not {f"stages.{i}.0.update.k" for i in range(len(model.net.layers))} & ks
    assert ks == {f"stages.{i}.{j}.update.k" for i, depth in enumerate(model.net.layers) for j in range(1, depth)}


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("h", [1.0, 0.5])
def test_lm_update_backward_is_exact(channels_last, h):
    """The eager LM update's own backward (k's gradient as two dot products) against numerical gradients."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    f, x, last = (torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=fmt) for _ in range(3))
    k = torch.tensor(0.3, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (f, x, last, k))
    assert torch.autograd.gradcheck(lambda f, x, last, k: _LerpAddFunction.apply(f, x, last, k, h), inputs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_lm_update_k_gradient_of_reduced_precision_is_a_float32_sum(dtype, channels_last):
    """Under autocast the stream is bf16 / fp16 and k float32. k's gradient, a sum of 131072 products, is summed
    in float32 and stays float32: a bf16 / fp16 dot (the CPU's is also a slow scalar loop) rounds the sum itself
    to 8 / 11 bits. The products here are all positive, so the float32 sum is within 1e-5 of the exact one."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    f, x = (torch.randn(8, 16, 32, 32).to(dtype).contiguous(memory_format=fmt) for _ in range(2))
    last = (x.float() + torch.rand_like(x, dtype=torch.float32)).to(dtype).contiguous(memory_format=fmt)
    g = torch.rand(8, 16, 32, 32).to(dtype).contiguous(memory_format=fmt)
    k = torch.tensor(-0.05, requires_grad=True)
    out = _LerpAddFunction.apply(f, x, last, k, 1.0)
    out.backward(g)
    exact = (g.double() * (last.double() - x.double())).sum()
    assert k.grad.dtype == torch.float32 and out.dtype == dtype
    assert abs(k.grad.double() - exact) / exact < 1e-5, (k.grad, exact)


@pytest.mark.parametrize("channels_last", [False, True])
def test_tra_update_backward_is_exact_to_second_order(channels_last):
    """ZeroSNet Tra's eager combination (coefficient gradients as dot products) against numerical gradients, and
    its backward differentiable again (an R1 penalty, say)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ts = tuple(torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=fmt) for _ in range(4))
    cs = tuple(torch.tensor(v, dtype=torch.float64) for v in (1.2, 0.9, -0.7, 0.3))
    inputs = tuple(t.requires_grad_() for t in ts + cs)
    assert torch.autograd.gradcheck(_ZeroStableTraFunction.apply, inputs)
    assert torch.autograd.gradgradcheck(_ZeroStableTraFunction.apply, inputs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tra_update_coefficient_gradients_of_reduced_precision_are_float32_sums(dtype):
    """Under autocast: each coefficient's gradient, a sum of 131072 products, summed in float32 and returned in
    the coefficient's dtype (autograd's own sum rounds it to the stream's 8 / 11 bits)."""
    torch.manual_seed(0)
    ts = tuple(torch.rand(8, 16, 32, 32).to(dtype) for _ in range(4))
    cs = tuple(torch.tensor(v, requires_grad=True) for v in (1.2, 0.9, -0.7, 0.3))
    g = torch.rand(8, 16, 32, 32).to(dtype)
    out = _ZeroStableTraFunction.apply(*ts, *cs)
    out.backward(g)
    assert out.dtype == dtype
    for c, t, sign in zip(cs, ts, (1, 1, -1, 1)):
        exact = sign * (g.double() * t.double()).sum()
        assert c.grad.dtype == torch.float32 and abs(c.grad.double() - exact) / abs(exact) < 1e-5, (c.grad, exact)


@pytest.mark.parametrize("name", ["lmresnet20_cifar", "zerosnet20_tra_cifar", "zerosnet20_cifar"])
def test_an_eval_forward_gives_the_same_bits_with_gradients_on_or_off(name):
    """As timm's models: ZeroSNet Tra's eager forward with gradients (its autograd Function) and without (plain
    ops summed in another order) differed by ~1e-7 relative."""
    model = timm.create_model(name).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:
                p.add_(0.37)  # lambda / k away from their initial values
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        off = model(x)
    assert torch.equal(model(x).detach(), off)


@pytest.mark.parametrize("name", ["lmresnet20_cifar", "zerosnet20_tra_cifar"])
def test_eager_and_traced_paths_agree(monkeypatch, name):
    """Eager training takes the package's own autograd Function (LM-ResNet's, ZeroSNet Tra's); FX-traced (like
    compiled or exported) runs take plain ops. Both give the same outputs and parameter gradients."""
    lm = name.startswith("lm")
    fn, update = (_LerpAddFunction, LinearMultistepUpdate) if lm else (_ZeroStableTraFunction, ZeroStableUpdate)
    model = timm.create_model(name).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    calls = []
    orig = fn.forward

    def counting(ctx, *args):
        calls.append(1)
        return orig(ctx, *args)

    monkeypatch.setattr(fn, "forward", staticmethod(counting))
    results = []
    for run in (model, torch.fx.symbolic_trace(model)):
        model.zero_grad()
        out = run(x)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        if run is model:
            multistep = [m for m in model.modules() if isinstance(m, update) and getattr(m, "lam", True) is not None]
            assert len(calls) == len(multistep) > 0
            calls.clear()
    assert not calls  # the traced graph holds plain ops
    torch.testing.assert_close(results[0][0], results[1][0])
    for n, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][n], msg=n)


@pytest.mark.parametrize("name", [n for n in family_models() if "_tra" in n])
def test_lambda_driven_to_zero_stays_finite(name):
    model = timm.create_model(name, drop_path_rate=0.0)
    size = 32 if name.endswith("_cifar") else 64
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ZeroStableUpdate) and m.lam is not None:
                m.lam.zero_()
    model.train()
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert torch.isfinite(out).all()
    out.mean().backward()
    lams = [m.lam for m in model.modules() if isinstance(m, ZeroStableUpdate) and m.lam is not None]
    assert all(torch.isfinite(p.grad) for p in lams)
    assert any(p.grad != 0 for p in lams), "the guard passes the gradient straight through"


def test_lambda_guard_value_and_sign():
    upd = ZeroStableUpdate(lam_init=0.0, lam_eps=0.25)
    assert float(upd.safe_lam().detach()) == 0.25
    with torch.no_grad():
        upd.lam.fill_(-0.1)
    assert float(upd.safe_lam().detach()) == -0.25
    with torch.no_grad():
        upd.lam.fill_(-1.8)
    assert float(upd.safe_lam().detach()) == pytest.approx(-1.8)
    assert upd.coefficients()[0] == pytest.approx(zeros_coefficients(-1.8)[:3])


@pytest.mark.parametrize("lam", [-3.0, -1.8, -1.0, 0.5, 1.0, 2.0])
def test_tra_coefficients_are_the_formulas_of_lambda(lam):
    """ZeroSNet Tra recomputes (a0, a1, a2, b0) from its lambda with the paper's formulas (zeros_coefficients, which
    test_stability checks against the characteristic polynomial), and its update is that combination."""
    upd = ZeroStableUpdate(lam_init=lam, step_size=0.5, dtype=torch.float64)
    hb0, a0, inv, a2 = (float(t.detach()) for t in upd.trainable_coefficients())
    ra0, ra1, ra2, rb0 = zeros_coefficients(lam)
    assert (a0, -inv, a2, hb0) == pytest.approx((ra0, ra1, ra2, 0.5 * rb0), rel=1e-12)
    f, x, last, llast = torch.randn(4, 2, 3, 4, 4, dtype=torch.float64)
    expected = ra0 * x + ra1 * last + ra2 * llast + 0.5 * rb0 * f
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(upd(f, x, last, llast), expected, rtol=1e-12, atol=1e-12)


def test_scheme_defaults_are_the_documented_ones():
    """The lambda guard of Tra keeps |lambda| >= 1/3 (the edge of the zero-stable region lambda > 1/3), in the
    registered models too; LM-ResNet's k starts in U[-0.1, 0] (the paper's) for every way of building it."""
    assert ZeroStable(trainable=True).lam_eps == ZeroStableUpdate(lam_init=1.0).lam_eps == 1 / 3
    model = timm.create_model("zerosnet20_tra_cifar")
    tra = [m for m in model.modules() if isinstance(m, ZeroStableUpdate) and m.lam is not None]
    for lam, guarded in ((0.31, 1 / 3), (-0.2, -1 / 3), (0.5, 0.5)):  # where training takes lambda
        with torch.no_grad():
            for m in tra:
                m.lam.fill_(lam)
        lams = [float(m.safe_lam().detach()) for m in tra]
        assert lams == pytest.approx([guarded] * 7)
    assert LinearMultistep().k_init == (-0.1, 0.0)
    torch.manual_seed(0)
    ks = torch.stack([LinearMultistep().make_update().k.detach() for _ in range(200)])
    assert bool(((ks >= -0.1) & (ks <= 0.0)).all()) and float(ks.min()) < -0.09 and float(ks.max()) > -0.01


def test_a_tra_block_held_at_the_guard_reports_the_guards_lambda():
    """A trained lambda inside the guard band runs at lambda = lam_eps = 1/3, the edge of the zero-stable region (a
    triple root at 1). Its coefficients were read from the float32 guard, 1/3 + 1e-8, just inside the region: the
    analysis called the block zero stable. They are now those of the guard's lambda itself."""
    from timm_zerosnet.analysis.stability import analyze_scheme

    upd = ZeroStableUpdate(lam_init=0.1)
    a, b = upd.coefficients()
    assert (*a, b[0]) == zeros_coefficients(1 / 3)
    report = analyze_scheme(a, b)
    assert not report.zero_stable and report.reason == "repeated root 1 on the unit circle"
    for lam, expected in ((-0.2, -1 / 3), (0.5, 0.5), (-1.8, -1.8)):  # the negative guard; lambdas outside the band
        with torch.no_grad():
            upd.lam.fill_(lam)
        assert upd.coefficients()[0][1] == pytest.approx(-1 / expected, rel=1e-6)


@pytest.mark.parametrize("name", ["zerosnet20_tra_cifar", "lmresnet20_cifar", "zerosnet18_tra"])
def test_scheme_parameters_are_not_weight_decayed(name):
    model = timm.create_model(name)
    scalars = {n for n, p in model.named_parameters() if n.endswith((".lam", ".k"))}
    assert scalars and model.no_weight_decay() == scalars
    state = model.scheme_state()
    assert set(state) == scalars | {"step_size"}


def test_tra_init_values():
    cifar = timm.create_model("zerosnet20_tra_cifar")
    imagenet = timm.create_model("zerosnet18_tra")
    lams = [v for k, v in cifar.scheme_state().items() if k.endswith(".lam")]
    assert lams == [1.0] * 7  # one per multistep block: 9 blocks, 2 start-up steps
    lams = [r["param"]["lam"] for r in imagenet.block_coefficients() if "lam" in r["param"]]
    assert lams == pytest.approx([-1.8] * 6)
    custom = timm.create_model("zerosnet20_tra_cifar", lam=-1.5)
    assert [v for k, v in custom.scheme_state().items() if k.endswith(".lam")] == [-1.5] * 7


@pytest.mark.parametrize("name", ["zerosnet20_cifar", "lmresnet20_cifar", "preresnet20_cifar"])
def test_step_size_scales_the_branch_only(name):
    base = tiny_model(name).eval()
    scaled = tiny_model(name, tau=0.5).eval()
    scaled.load_state_dict(base.state_dict())
    for rb, rs in zip(base.block_coefficients(), scaled.block_coefficients()):
        assert rb["a"] == rs["a"] and rb["b"] == rs["b"] and rs["param"]["step_size"] == 0.5
    blk_b, blk_s = base.stages[0][1], scaled.stages[0][1]  # x_2 = x_1 + h F(x_1) in all three families here
    x = torch.randn(2, 16, 8, 8)
    f = blk_b.residual(torch.relu(blk_b.bn1(x)))
    torch.testing.assert_close(blk_b(x, x, x)[0] - blk_s(x, x, x)[0], 0.5 * f)
    assert not torch.allclose(base(tiny_input(base)), scaled(tiny_input(base)))


def test_zero_stable_dataclass_is_the_object_the_model_uses():
    model = timm.create_model("zerosnet20_cifar", lam=-1.5, device="meta")
    assert isinstance(model.scheme, ZeroStable) and model.scheme.lam == -1.5 and model.scheme.steps == 3


def test_analysis_reads_the_live_scheme_of_a_model(tmp_path):
    """The stability report of a Tra model follows its trained lambdas, also from a saved checkpoint."""
    from timm_zerosnet.analysis.cli import main as analyze
    from timm_zerosnet.analysis.stability import model_scheme_report

    model = timm.create_model("zerosnet20_tra_cifar")
    report = model_scheme_report(model)
    assert report.zero_stable and len(report.blocks) == sum(model.net.layers)
    blocks = [m for m in model.modules() if isinstance(m, ZeroStableUpdate)]
    with torch.no_grad():
        blocks[0].lam.fill_(-0.5)  # inside the unstable band (-1, 1/3)
    report = model_scheme_report(model)
    assert not report.zero_stable and report.unstable_blocks == ("stages.0.2",)
    path = tmp_path / "tra.pth"
    torch.save(model.state_dict(), path)
    assert analyze(["stability", "--model", "zerosnet20_tra_cifar", "--checkpoint", str(path), "--json"]) == 0
    lm = model_scheme_report(timm.create_model("lmresnet20_cifar"))
    assert lm.zero_stable  # k in [-0.1, 0] at init: spurious root -k inside the unit disc


@pytest.mark.parametrize("update", [EulerUpdate(), EulerUpdate(0.5), ZeroStable().make_update()], ids=repr)
def test_fixed_updates_keep_the_branchs_layout_and_rounding(update):
    """A new tensor (f itself is left as it is, for hooks), in f's memory layout when a pooled x_n comes as NCHW
    into a channels_last network, and rounded as f * (h b0) + a0 x + a1 x_{n-1} + a2 x_{n-2}, the order in which
    released weights' golden outputs were computed."""
    g = torch.Generator().manual_seed(0)
    f, x, last, llast = (torch.randn(2, 8, 5, 5, generator=g) for _ in range(4))
    f = f.contiguous(memory_format=torch.channels_last)
    f_before = f.clone()
    out = update(f, x, last, llast)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(f, f_before, rtol=0, atol=0)
    (a0, *history), (b0, *_) = update.coefficients()
    expected = (f * (b0 * update.step_size)).add_(x, alpha=a0)
    for coefficient, state in zip(history, (last, llast)):
        expected.add_(state, alpha=coefficient)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("k", [-0.1, -0.03, 0.4])
def test_lm_reported_coefficients_are_the_ones_the_update_applies(k):
    """x_{n+1} = (1 - k) x_n + k x_{n-1} + h F(x_n): the (a, b) that block_coefficients and the stability analysis
    read are the weights the update gives x_n, x_{n-1} and F(x_n)."""
    upd = LinearMultistepUpdate(step_size=0.5, dtype=torch.float64)
    with torch.no_grad():
        upd.k.fill_(k)
    (a0, a1), (b0, b1) = upd.coefficients()
    assert (a0, a1, b0, b1) == pytest.approx((1 - k, k, 1.0, 0.0), rel=1e-12)
    f, x, last, llast = torch.randn(4, 2, 3, 4, 4, dtype=torch.float64)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(upd(f, x, last, llast), a0 * x + a1 * last + 0.5 * b0 * f)


@pytest.mark.parametrize("lam", [0.0, 0.1, -0.2, 0.3])
def test_tra_reports_the_coefficients_of_the_guarded_lambda(lam):
    """Inside the guard band |lambda| < lam_eps the forward uses lambda = +-lam_eps (0 counts as positive): the
    coefficients reported to the stability analysis are those of the lambda the forward uses, not of the raw one."""
    upd = ZeroStableUpdate(lam_init=lam, step_size=0.5, dtype=torch.float64)
    guarded = 1 / 3 if lam >= 0 else -1 / 3
    (a0, a1, a2), (b0, *_) = upd.coefficients()
    assert (a0, a1, a2, b0) == pytest.approx(zeros_coefficients(guarded), rel=1e-12)
    f, x, last, llast = torch.randn(4, 2, 3, 4, 4, dtype=torch.float64)
    expected = a0 * x + a1 * last + a2 * llast + 0.5 * b0 * f
    torch.testing.assert_close(upd(f, x, last, llast), expected, rtol=1e-12, atol=1e-12)


def test_tra_model_arguments_reach_every_multistep_block():
    """lam (initial lambda), lam_eps (the guard) and tau (the step size h) given to a registered Tra model are what
    each of its lambda blocks uses: lambda 0.2 sits outside a guard of 0.1, and h scales b0 only."""
    with pytest.warns(UserWarning, match=r"initial lambda 0\.2 .* not zero stable"):  # 0 < lambda <= 1/3
        model = timm.create_model("zerosnet20_tra_cifar", lam=0.2, lam_eps=0.1, tau=0.5)
    tra = [m for m in model.modules() if isinstance(m, ZeroStableUpdate) and m.lam is not None]
    assert len(tra) == sum(model.net.layers) - 2
    a0, a1, a2, b0 = zeros_coefficients(0.2)
    for upd in tra:
        assert upd.lam_eps == pytest.approx(0.1) and upd.step_size == 0.5
        assert float(upd.safe_lam().detach()) == pytest.approx(0.2)
        hb0, c0, inv, c2 = (float(t.detach()) for t in upd.trainable_coefficients())
        assert (c0, -inv, c2, hb0) == pytest.approx((a0, a1, a2, 0.5 * b0), rel=1e-6)
    assert {r["param"]["step_size"] for r in model.block_coefficients()} == {0.5}


def test_scheme_arguments_at_the_edges():
    """k_init=(low, high) with low == high is a valid range (every k starts there); lam_eps must be finite and > 0,
    and Tra's initial lambda non-zero like Opt's; explicit coefficients are exactly four finite numbers."""
    model = timm.create_model("lmresnet20_cifar", k_init=(0.0, 0.0))
    ks = [float(m.k.detach()) for m in model.modules() if isinstance(m, LinearMultistepUpdate)]
    assert ks and all(k == 0.0 for k in ks)
    for lam_eps in (0.0, -0.1, float("nan"), float("inf")):  # NaN gave NaN logits, inf froze lambda
        with pytest.raises(ValueError, match="lam_eps must be a finite number > 0"):
            timm.create_model("zerosnet20_tra_cifar", lam_eps=lam_eps, device="meta")
    with pytest.raises(ValueError, match="lambda must be a finite non-zero number"):
        timm.create_model("zerosnet20_tra_cifar", lam=0.0, device="meta")
    # an initial lambda the guard replaces was taken without a word (at 1/3, b0 = 0: no branch got a gradient)
    for lam, lam_eps, guarded in ((0.2, None, "0.333333"), (-0.1, 0.5, "-0.5")):
        kwargs = dict(lam=lam) if lam_eps is None else dict(lam=lam, lam_eps=lam_eps)
        with pytest.raises(ValueError, match=rf"initial lambda {lam:g} .* start from lambda = {guarded} instead"):
            timm.create_model("zerosnet20_tra_cifar", **kwargs, device="meta")
    with pytest.warns(UserWarning, match=r"initial lambda -0\.333333 .* modulus 2\.686 > 1"):  # worst root in the band
        assert timm.create_model("zerosnet20_tra_cifar", lam=-1 / 3, device="meta").scheme.lam == -1 / 3  # the edge
    with pytest.warns(UserWarning, match="not zero stable"):
        assert timm.create_model("zerosnet20_cifar", lam=0.2, device="meta").scheme.lam == 0.2  # Opt: no guard
    for bad in ((1, 2, 3, 4, 5), (1, float("nan"), 0, 1), (float("inf"), 0, 0, 1), (1, "a", 1, 1), 5):
        with pytest.raises(ValueError, match="four finite numbers"):
            timm.create_model("zerosnet20_cifar", coefficients=bad, device="meta")
    # text and booleans were read as numbers or as truth (trainable='no' trained lambda), or failed in float()
    for kwargs, message in (
        (dict(trainable="no"), "trainable must be True or False, got 'no'"),
        (dict(lam="x"), "lambda must be a finite non-zero number, got 'x'"),
        (dict(lam=True), "lambda must be a finite non-zero number, got True"),
        (dict(tau="1"), r"tau \(the step size h of the zeros scheme\) must be a finite number > 0, got '1'"),
    ):
        with pytest.raises(ValueError, match=message):
            timm.create_model("zerosnet20_cifar", device="meta", **kwargs)
    for tau in ("1", True):
        with pytest.raises(ValueError, match=f"tau is the step size and must be a finite number > 0, got {tau!r}"):
            timm.create_model("tauresnet20_cifar", tau=tau, device="meta")


def test_update_modules_refuse_arguments_they_cannot_use():
    """The update modules are public and are built directly too: a NaN or 0 step size, a one-number k_init (uniform_
    filled in high = 1.0), three coefficients (an unpacking error), a NaN lam_eps (reported as a NaN lambda) were
    taken or failed without saying what to pass, and coefficients beside lam_init were dropped for lambda's."""
    for make in (EulerUpdate, LinearMultistepUpdate, ZeroStableUpdate):
        for h in (float("nan"), float("inf"), 0, -0.5, "2", True):
            with pytest.raises(ValueError, match=rf"{make.__name__} step_size \(h\) must be a finite number > 0, got"):
                make(step_size=h)
    for bad in ((0.1,), (0.1, -0.1), (float("nan"), 0.0), 0.5):  # (0.1, -0.1) failed inside torch's uniform_
        with pytest.raises(ValueError, match=r"k_init is the \(low, high\) range .* got"):
            LinearMultistepUpdate(k_init=bad)
    for bad in ((1, 2, 3), (1, 2, 3, float("nan")), (1, 2, 3, True), "1234"):
        with pytest.raises(ValueError, match="ZeroSNet coefficients must be four finite numbers"):
            ZeroStableUpdate(coefficients=bad)
    with pytest.raises(ValueError, match="pass either coefficients=.* or lam_init="):
        ZeroStableUpdate(coefficients=OPT, lam_init=1.0)
    with pytest.raises(ValueError, match="lam_eps=0.1 bounds a trainable lambda .* pass lam_init"):
        ZeroStableUpdate(coefficients=OPT, lam_eps=0.1)
    for eps in (float("nan"), 0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="lam_eps must be a finite number > 0"):
            ZeroStableUpdate(lam_init=1.0, lam_eps=eps)
    for lam in (float("nan"), float("-inf"), "1", True):
        with pytest.raises(ValueError, match=r"lam_init \(the initial lambda\) must be a finite number"):
            ZeroStableUpdate(lam_init=lam)
    with pytest.raises(ValueError, match=r"initial lambda 1e\+300 does not fit in torch.float32 .* wider dtype"):
        timm.create_model("zerosnet20_tra_cifar", lam=1e300)  # torch.full's overflow RuntimeError
    # what they accept is kept as given: the guard's lambda = 0, a float64 lambda beyond float32
    assert float(ZeroStableUpdate(lam_init=0.0, lam_eps=0.25).safe_lam().detach()) == 0.25
    assert ZeroStable(lam=1e300, trainable=True).make_update(dtype=torch.float64).lam.item() == 1e300
    assert ZeroStableUpdate(coefficients=[0.5, 0.3, 0.2, 0.7]).coefficients() == ((0.5, 0.3, 0.2), (0.7, 0.0, 0.0))


def test_zero_stable_scheme_refuses_options_it_would_ignore():
    """The dataclass built directly (as the model entrypoint already refuses it): lam beside explicit coefficients,
    and lam_eps on fixed coefficients, were dropped without a word."""
    with pytest.raises(ValueError, match=r"lam=-1\.5 and coefficients both fix the coefficients.*pass one of them"):
        ZeroStable(lam=-1.5, coefficients=OPT)
    with pytest.raises(ValueError, match=r"lam_eps=0\.1 bounds a trainable lambda .* pass trainable=True"):
        ZeroStable(lam_eps=0.1)
    assert ZeroStable(coefficients=OPT).fixed_coefficients == pytest.approx(OPT)
    assert ZeroStable(trainable=True, lam=1.0, lam_eps=0.1).lam_eps == 0.1


@pytest.mark.parametrize(
    "kind, value, unstable",
    [
        ("lm", (-1.0, -1.0), True),  # double root at 1
        ("lm", (-2.0, -1.5), True),
        ("lm", (0.5, 1.5), True),
        ("lm", (-0.999, 1.0), False),  # -1 < k <= 1 (ANALYSIS.md)
        ("tra", -0.5, True),
        ("tra", 1 / 3, True),  # triple root at 1
        ("tra", -1.0, False),  # leapfrog, still zero stable
        ("tra", 0.34, False),
    ],
)
def test_unstable_initial_schemes_build_and_warn(kind, value, unstable):
    """ANALYSIS.md: LM-ResNet is zero stable iff -1 < k <= 1, ZeroSNet iff lambda <= -1 or lambda > 1/3. A trainable
    scheme starting outside was built without a word, where fixed non-zero-stable coefficients warn: it builds (the
    paper trains such schemes) and warns once."""
    name, kwargs = (
        ("lmresnet20_cifar", dict(k_init=value)) if kind == "lm" else ("zerosnet20_tra_cifar", dict(lam=value))
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = timm.create_model(name, device="meta", **kwargs)
    messages = [str(w.message) for w in record if "Building it anyway" in str(w.message)]
    assert len(messages) == int(unstable), messages
    if unstable:
        assert ("k_init" if kind == "lm" else f"initial lambda {value:g}") in messages[0]
    assert model.scheme.steps == (2 if kind == "lm" else 3)
