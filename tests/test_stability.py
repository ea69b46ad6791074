"""Zero stability and consistency: every figure of ANALYSIS.md section 1."""

from __future__ import annotations

import json
import re
from fractions import Fraction as Q
from types import SimpleNamespace

import numpy as np
import pytest
import sympy
import torch
from torch import nn

from timm_zerosnet.analysis.stability import (
    DEFAULT_TOL,
    MAX_SCAN_POINTS,
    analyze_scheme,
    characteristic_polynomial,
    consistency_order,
    euler_scheme,
    exact_zero_stable,
    given_scheme,
    is_zero_stable,
    largest_spurious_modulus,
    lm_scheme,
    model_scheme_report,
    zero_stable_region,
    zeros_coefficients,
    zeros_scheme,
)

# ANALYSIS.md: largest spurious-root modulus by lambda, to 3 decimals.
SPURIOUS_TABLE = {
    "-1": 1.000,
    "-1.2": 0.824,
    "-1.5": 0.614,
    "-1.8": 0.333,
    "-2": 0.354,
    "-3": 0.408,
    "-10": 0.474,
    "0.5": 0.866,
    "1": 0.707,
    "2": 0.612,
    "10": 0.524,
}


# --------------------------------------------------------------------------------------------- ZeroSNet


@pytest.mark.parametrize("lam", [Q(-10), Q(-3), Q(-9, 5), Q(-1), Q(-1, 3), Q(1, 5), Q(1, 3), Q(1, 2), Q(2), Q(7, 3)])
def test_zeros_rho_factorises_with_root_one(lam):
    # rho(z) = (z - 1)(4 lam z^2 + (lam - 3) z + (lam + 1)) / (4 lam), compared coefficient by coefficient, exactly.
    z = sympy.symbols("z")
    lam_s = sympy.Rational(lam.numerator, lam.denominator)
    expected = sympy.Poly(sympy.expand((z - 1) * (4 * lam_s * z**2 + (lam_s - 3) * z + (lam_s + 1)) / (4 * lam_s)), z)
    ours = characteristic_polynomial(zeros_scheme(lam).a)
    assert [sympy.Rational(c.numerator, c.denominator) for c in ours] == expected.all_coeffs()


def test_zeros_coefficients_formula_and_opt_constants():
    assert zeros_coefficients(Q(-9, 5)) == (Q(1, 3), Q(5, 9), Q(1, 9), Q(16, 9))
    a0, a1, a2, b0 = zeros_coefficients(-1.8)
    assert (a0, a1, a2, b0) == pytest.approx((1 / 3, 5 / 9, 1 / 9, 16 / 9))
    assert given_scheme(*zeros_coefficients(Q(2))) == zeros_scheme(Q(2))


def test_zeros_lambda_zero_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="lambda = 0 is not a valid ZeroSNet parameter"):
        zeros_coefficients(0)
    with pytest.raises(ValueError, match="lambda = 0"):
        zeros_scheme(0.0)


@pytest.mark.parametrize("lam", [Q(-10), Q(-3), Q(-2), Q(-9, 5), Q(-3, 2), Q(-6, 5), Q(-1), Q(-1, 2), Q(-1, 4)])
def test_zeros_is_order_two_for_negative_lambda(lam):
    assert consistency_order(*zeros_scheme(lam)) == 2


@pytest.mark.parametrize("lam", [Q(1, 10), Q(1, 3), Q(1, 2), Q(1), Q(2), Q(10), Q(1000)])
def test_zeros_is_order_two_for_positive_lambda(lam):
    assert consistency_order(*zeros_scheme(lam)) == 2


def test_zeros_order_three_only_at_minus_one_third():
    assert consistency_order(*zeros_scheme(Q(-1, 3))) == 3
    assert not analyze_scheme(*zeros_scheme(Q(-1, 3))).zero_stable
    # The order-3 residual as a rational function of lambda vanishes only at -1/3.
    lam = sympy.symbols("lam")
    a = [(3 * lam + 3) / (4 * lam), -1 / lam, (lam + 1) / (4 * lam)]
    b0 = (3 * lam - 1) / (2 * lam)
    residual = sum(c * (-j) ** 3 for j, c in enumerate(a)) + 3 * b0 * 0**2 - 1
    assert sympy.solve(sympy.together(residual), lam) == [sympy.Rational(-1, 3)]
    # ... and a dense exact grid agrees with the solver.
    grid = [Q(n, 7) for n in range(-70, 71) if n != 0]
    assert [lam for lam in grid if consistency_order(*zeros_scheme(lam)) >= 3] == []


def test_zeros_float_lambda_uses_tolerance():
    assert consistency_order(*zeros_scheme(-1.8)) == 2
    assert analyze_scheme(*zeros_scheme(-1.8)).exact is False
    assert analyze_scheme(*zeros_scheme(Q(-9, 5))).exact is True


def test_zeros_minus_one_is_leapfrog_and_still_zero_stable():
    report = analyze_scheme(*zeros_scheme(Q(-1)))
    assert sorted(z.real for z in report.roots) == pytest.approx([-1.0, 0.0, 1.0])
    assert report.zero_stable
    assert report.max_spurious_modulus == pytest.approx(1.0)


def test_zeros_one_third_triple_root_is_not_zero_stable():
    report = analyze_scheme(*zeros_scheme(Q(1, 3)))
    assert report.roots == (1, 1, 1)
    assert not report.zero_stable
    assert "repeated root 1" in report.reason


@pytest.mark.parametrize(
    ("lam", "stable"),
    [
        (Q(-101, 100), True),
        (Q(-99, 100), False),
        (Q(-1, 2), False),
        (Q(1, 5), False),
        (Q(333, 1000), False),
        (Q(1, 3), False),  # ANALYSIS.md: at lambda = 1/3 the spurious roots merge with 1 (unstable)
        (Q(334, 1000), True),
        (Q(5), True),
        (-5.0, True),
        (0.3, False),
    ],
)
def test_zeros_stable_region_boundaries(lam, stable):
    assert analyze_scheme(*zeros_scheme(lam)).zero_stable is stable
    assert exact_zero_stable("zeros", lam) is stable


def test_zeros_optimal_lambda_has_double_spurious_root_minus_one_third():
    report = analyze_scheme(*zeros_scheme(Q(-9, 5)))
    assert report.principal_root == 1
    assert [z.real for z in report.spurious_roots] == pytest.approx([-1 / 3, -1 / 3], abs=1e-12)
    assert report.max_spurious_modulus == pytest.approx(1 / 3, abs=1e-12)
    # The discriminant of the spurious quadratic, (lam - 3)^2 - 16 lam (lam + 1), vanishes at -9/5 (and 1/3).
    lam = sympy.symbols("lam")
    assert set(sympy.solve((lam - 3) ** 2 - 16 * lam * (lam + 1), lam)) == {sympy.Rational(-9, 5), sympy.Rational(1, 3)}


def test_zeros_optimal_lambda_minimises_the_spurious_modulus_over_the_stable_region():
    scan = zero_stable_region("zeros", -5, 5, 1001)
    moduli = np.where(scan.zero_stable, scan.max_spurious_modulus, np.inf)
    best = int(np.argmin(moduli))
    assert scan.values[best] == pytest.approx(-1.8)
    assert moduli[best] == pytest.approx(1 / 3, abs=1e-9)


@pytest.mark.parametrize(("lam", "expected"), SPURIOUS_TABLE.items())
def test_zeros_largest_spurious_modulus_table(lam, expected):
    assert round(largest_spurious_modulus(zeros_scheme(Q(lam)).a), 3) == expected
    assert round(analyze_scheme(*zeros_scheme(float(lam))).max_spurious_modulus, 3) == expected


def test_zeros_spurious_modulus_tends_to_one_half():
    for lam in (Q(-(10**6)), Q(10**6)):
        assert largest_spurious_modulus(zeros_scheme(lam).a) == pytest.approx(0.5, abs=1e-3)


def test_zeros_scan_matches_exact_region():
    scan = zero_stable_region("zeros", -3, 3, 601)
    assert scan.region == "lambda <= -1 or lambda > 1/3"
    assert scan.mismatches == ()
    assert scan.intervals == ((-3.0, -1.0), (0.34, 3.0))
    assert np.isnan(scan.max_spurious_modulus[300]) and not scan.zero_stable[300]  # lambda = 0 is undefined
    json.dumps(scan.to_dict())


# --------------------------------------------------------------------------------------------- (1, 1, 1, 1)


def test_coefficients_all_ones_are_neither_zero_stable_nor_consistent():
    report = analyze_scheme(*given_scheme(1, 1, 1, 1))
    assert report.polynomial == (1.0, -1.0, -1.0, -1.0)
    real = [z for z in report.roots if z.imag == 0]
    pair = [z for z in report.roots if z.imag != 0]
    assert [round(z.real, 3) for z in real] == [1.839]
    assert len(pair) == 2 and pair[0] == pair[1].conjugate()
    assert [round(abs(z), 3) for z in pair] == [0.737, 0.737]
    assert report.max_modulus == pytest.approx(1.839, abs=1e-3)
    assert not report.zero_stable
    assert report.principal_root is None  # rho(1) = -2: no root at 1
    assert sum(report.a) == 3
    assert report.consistency_order == -1 and report.consistent is False


# --------------------------------------------------------------------------------------------- LM-ResNet, Euler, tau


@pytest.mark.parametrize("k", [Q(-3, 2), Q(-1), Q(-999, 1000), Q(-1, 2), Q(-1, 20), Q(0), Q(1, 2), Q(1), Q(1001, 1000)])
def test_lm_resnet_zero_stable_iff_k_in_half_open_interval(k):
    report = analyze_scheme(*lm_scheme(k))
    roots = sorted(z.real for z in report.roots)
    assert roots == pytest.approx(sorted([1.0, float(-k)]))  # rho = (z - 1)(z + k)
    assert report.zero_stable is (-1 < k <= 1)
    assert exact_zero_stable("lm", k) is (-1 < k <= 1)


@pytest.mark.parametrize("k", [Q(-1, 2), Q(-1, 20), Q(0), Q(1, 10), Q(1)])
def test_lm_resnet_consistent_only_at_k_zero(k):
    assert consistency_order(*lm_scheme(k)) == (1 if k == 0 else 0)


@pytest.mark.parametrize("k", [Q(-1, 2), Q(-1, 10), Q(1, 2), Q(1)])
def test_lm_resnet_with_k_integrates_the_rescaled_ode(k):
    """ARCHITECTURES.md: with k != 0, LM-ResNet integrates (1 + k) dx/dt = F: rho(1) = 0 and rho'(1) = (1 + k)
    sigma(1), with rho(z) = z^2 - a0 z - a1 and sigma(z) = b0 z + b1."""
    (a0, a1), (b0, b1) = lm_scheme(k)
    assert 1 - a0 - a1 == 0 and 2 - a0 == (1 + k) * (b0 + b1)


def test_a_non_zero_stable_network_grows_like_its_largest_root_per_block():
    """ANALYSIS.md: the error of a non-zero-stable scheme grows like (max |z|)^blocks. With every branch zeroed
    (F = 0), a ZeroSNet-56 with coefficients (1, 1, 1, 1) multiplies its state by 1.839 per block of the first
    stage, and the Opt scheme keeps it (a0 + a1 + a2 = 1)."""
    import timm

    import timm_zerosnet  # noqa: F401

    def stage_norms(model):
        with torch.no_grad():
            for block in model.stages[0]:
                block.conv2.weight.zero_()
            x = model.conv1(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
            state, norms = (x, x, x), []
            for block in model.stages[0]:
                state = block(*state)
                norms.append(float(state[0].norm()))
        return norms

    with pytest.warns(UserWarning, match="not zero stable"):
        unstable = timm.create_model("zerosnet56_cifar", coefficients=(1, 1, 1, 1)).eval()
    norms = stage_norms(unstable)
    assert norms[-1] / norms[-2] == pytest.approx(1.8393, abs=5e-3)
    assert norms[-1] / norms[0] > 1.8 ** (len(norms) - 2)
    opt = stage_norms(timm.create_model("zerosnet56_cifar").eval())
    assert opt[-1] / opt[0] == pytest.approx(1.0, abs=1e-5)


def test_lm_resnet_scan_matches_exact_region():
    scan = zero_stable_region("lm", -3, 3, 601)
    assert scan.region == "-1 < k <= 1"
    assert scan.mismatches == ()
    assert scan.intervals == ((-0.99, 1.0),)


def test_euler_is_zero_stable_order_one():
    report = analyze_scheme(*euler_scheme())
    assert report.polynomial == (1.0, -1.0)
    assert report.roots == (1,)
    assert report.zero_stable and report.consistency_order == 1
    assert report.max_spurious_modulus == 0.0


@pytest.mark.parametrize("scheme", [zeros_scheme(Q(-9, 5)), zeros_scheme(Q(1, 5)), lm_scheme(0.5), euler_scheme()])
@pytest.mark.parametrize("h", [0.01, 0.5, 2.0, 100.0])
def test_step_size_scales_b_and_never_changes_zero_stability(scheme, h):
    base = analyze_scheme(*scheme)
    scaled = analyze_scheme(scheme.a, [h * float(b) for b in scheme.b])
    assert scaled.zero_stable == base.zero_stable
    assert scaled.moduli == pytest.approx(base.moduli)


# --------------------------------------------------------------------------------------------- root condition


def test_tolerance_is_an_argument():
    a = lm_scheme(1 + 1e-8).a  # spurious root -1 - 1e-8
    assert not is_zero_stable(a, tol=1e-9)
    assert is_zero_stable(a, tol=1e-6)
    assert analyze_scheme(a, tol=1e-6).tol == 1e-6


def test_repeated_root_on_circle_is_found_with_float_coefficients():
    report = analyze_scheme(*lm_scheme(-1.0))  # (z - 1)^2
    assert not report.zero_stable and "repeated" in report.reason
    assert is_zero_stable([0.0, 0.0, 1.0])  # z^3 - 1: three simple roots on the circle


@pytest.mark.parametrize(
    "a",
    [
        (Q(-2), Q(-1)),  # (z + 1)^2
        (Q(-1), Q(1), Q(1)),  # (z - 1)(z + 1)^2: consistent, its spurious root -1 double
        (Q(0), Q(-1)),  # (z - i)(z + i): simple roots on the circle, for contrast
    ],
)
def test_repeated_root_on_circle_other_than_one_is_found_exactly(a):
    """ANALYSIS.md section 1: roots with |z| = 1 must be simple. The exact path splits the polynomial into its
    square-free parts with derivatives and gcds; a wrong derivative would call every root simple."""
    report = analyze_scheme(a)
    repeated = a != (Q(0), Q(-1))
    assert report.exact and report.zero_stable is not repeated
    assert is_zero_stable(a) is not repeated
    if repeated:
        assert report.reason == "repeated root -1 on the unit circle"
        # the same verdict and reason in floats, where the double root splits into roots just inside and outside
        floats = analyze_scheme([float(v) for v in a])
        assert not floats.zero_stable and floats.reason == "repeated root -1 on the unit circle"


def test_consistency_order_reaches_the_highest_order_a_scheme_has():
    """The explicit 2-step scheme of order 3, x_{n+1} = -4 x_n + 5 x_{n-1} + h (4 f_n + 2 f_{n-1}) (the textbook
    example of an order that zero stability forbids: its spurious root is -5)."""
    for a, b in (((Q(-4), Q(5)), (Q(4), Q(2))), ((-4.0, 5.0), (4.0, 2.0))):
        assert consistency_order(a, b) == 3
        report = analyze_scheme(a, b)
        assert report.consistency_order == 3 and not report.zero_stable
        assert report.max_modulus == pytest.approx(5.0)


def test_float_triple_root_at_one_keeps_its_principal_root():
    """At lambda = 1/3 in floats the triple root 1 splits by about 1e-5 (the cube root of machine precision):
    the root nearest 1 is still taken as the principal one, and the verdict holds."""
    report = analyze_scheme(*zeros_scheme(1 / 3))
    assert report.principal_root is not None and abs(report.principal_root - 1) < 1e-4
    assert len(report.spurious_roots) == 2 and not report.zero_stable


def test_empty_and_invalid_schemes_raise():
    with pytest.raises(ValueError, match="empty scheme"):
        analyze_scheme([])
    with pytest.raises(ValueError, match="finite"):
        analyze_scheme([float("nan")])
    with pytest.raises(ValueError, match="real number"):
        analyze_scheme(["x"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda: analyze_scheme([10**400]), r"a\[0\] = 1e\+400 is not a finite float", id="analyze_scheme-a"
        ),
        pytest.param(
            lambda: analyze_scheme([1], [Q(-(10**400), 3)]),
            r"b\[0\] = -3\.33333e\+399 is not a finite float",
            id="analyze_scheme-b",
        ),
        pytest.param(
            lambda: is_zero_stable([1, 10**309]), r"a\[1\] = 1e\+309 is not a finite float", id="is_zero_stable"
        ),
        pytest.param(
            lambda: zeros_coefficients(10**400), r"lambda = 1e\+400 is not a finite float", id="zeros_coefficients"
        ),
        pytest.param(lambda: lm_scheme(Q(10**309)), r"k = 1e\+309 is not a finite float", id="lm_scheme"),
        pytest.param(
            lambda: zero_stable_region("zeros", 0, 10**400),
            r"hi = 1e\+400 is not a finite float",
            id="zero_stable_region",
        ),
    ],
)
def test_numbers_beyond_the_float_range_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("lam", [Q(1, 10**400), Q(-1, 10**309), 1e-310])
def test_zeros_lambda_too_close_to_zero_for_a_float_is_rejected(lam):
    # 1e-400 is 0 as a float and -1/lambda overflows for the others: the message must say lambda, not a[1].
    with pytest.raises(ValueError, match="lambda = .* is too close to 0: the coefficient -1/lambda"):
        zeros_coefficients(lam)
    assert zeros_coefficients(Q(1, 10**300))[1] == -(10**300)  # tiny but usable


@pytest.mark.parametrize("lam", [5e307, -5e307, -1e308, 1.7e308])
def test_zeros_float_lambda_beyond_a_quarter_of_the_float_range_gives_its_scheme(lam):
    """4 lambda overflowed: a = (0, ~0, 0) for 5e307 (order -1, 'zero stable' with a spurious root of 1e-154), and
    'too close to 0' for -1e308. The scheme is that of the exact lambda: order 2, spurious roots of modulus 1/2."""
    exact = analyze_scheme(*zeros_scheme(Q(lam)))
    report = analyze_scheme(*zeros_scheme(lam))
    assert report.consistency_order == exact.consistency_order == 2
    assert report.zero_stable and exact.zero_stable
    assert exact.max_spurious_modulus > 0.49
    assert report.max_spurious_modulus == pytest.approx(exact.max_spurious_modulus)
    for got, want in zip(zeros_coefficients(lam), zeros_coefficients(Q(lam))):
        assert got == pytest.approx(float(want), rel=1e-15, abs=1e-320)


@pytest.mark.parametrize("tol", [float("nan"), -1.0, 1.0, float("inf"), None])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda tol: is_zero_stable((1, 1, 1), tol=tol), id="is_zero_stable"),
        pytest.param(lambda tol: analyze_scheme((1, 1, 1), tol=tol), id="analyze_scheme"),
        pytest.param(lambda tol: zero_stable_region("zeros", -3, 3, 7, tol=tol), id="zero_stable_region"),
        pytest.param(lambda tol: model_scheme_report(FakeMultistepNet(), tol=tol), id="model_scheme_report"),
        pytest.param(lambda tol: consistency_order((1,), (1,), tol=tol), id="consistency_order"),
    ],
)
def test_invalid_tolerance_is_rejected(call, tol):
    # NaN used to make every |z| > 1 + tol comparison false, so (1, 1, 1) with its root 1.839 passed as stable.
    with pytest.raises(ValueError, match=r"tol = .* is not a valid tolerance: .* 0 <= tol < 1"):
        call(tol)


def test_invalid_order_tolerance_is_rejected():
    with pytest.raises(ValueError, match=r"order_tol = nan is not a valid tolerance"):
        analyze_scheme((1,), (1,), order_tol=float("nan"))
    assert is_zero_stable(euler_scheme().a, tol=0.0)  # 0 is a valid (strict) tolerance


def test_exact_scheme_stays_exact_when_a_is_shorter_than_b():
    ab2 = (Q(3, 2), Q(-1, 2))  # Adams-Bashforth 2: a = (1,), padded with a zero to the length of b
    report = analyze_scheme((1,), ab2)
    assert report.exact and report.consistency_order == 2
    assert report == analyze_scheme((1, 0), ab2)
    # Off by 1e-12: exact arithmetic sees the first-order condition fail, a float tolerance of 1e-9 would not.
    nearly_ab2 = (Q(3, 2) + Q(1, 10**12), Q(-1, 2))
    assert consistency_order((1,), nearly_ab2) == 0
    assert analyze_scheme((1,), nearly_ab2).consistency_order == 0
    assert consistency_order((1, 0), (Q(1) + Q(1, 10**12),)) == 0  # b shorter than a stays exact too


def test_report_is_json_serialisable_and_b_optional():
    report = analyze_scheme(*zeros_scheme(-1.8))
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["zero_stable"] is True
    assert payload["consistency_order"] == 2
    assert analyze_scheme([1]).consistency_order is None


def test_analysis_import_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, importlib.util, pathlib; "
        "spec = importlib.util.spec_from_file_location('stab', "
        "pathlib.Path(importlib.util.find_spec('timm_zerosnet').origin).parent / 'analysis' / 'stability.py'); "
        "m = sys.modules['stab'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --------------------------------------------------------------------------------------------- model_scheme_report


class FakeMultistepNet(nn.Module):
    """Implements the block_coefficients() contract of timm_zerosnet models: two Euler start-up blocks, then
    ZeroSNet blocks with a trainable lambda and one LM-ResNet block."""

    def __init__(self, lam: float = -1.8, k: float = -0.05):
        super().__init__()
        self.lam = nn.Parameter(torch.tensor(lam, dtype=torch.float64))
        self.k = nn.Parameter(torch.tensor(k, dtype=torch.float64))

    def block_coefficients(self):
        lam, k = float(self.lam.detach()), float(self.k.detach())
        a0, a1, a2, b0 = zeros_coefficients(lam)
        return [
            {"block": "layer1.0", "a": (1.0,), "b": (1.0,), "param": {}},
            {"block": "layer1.1", "a": (1.0,), "b": (1.0,), "param": {}},
            {"block": "layer1.2", "a": (a0, a1, a2), "b": (b0, 0.0, 0.0), "param": {"lam": lam}},
            SimpleNamespace(block="layer2.0", a=(1 - k, k), b=(1.0, 0.0), param={"k": k}),
        ]


def test_model_scheme_report_per_block():
    report = model_scheme_report(FakeMultistepNet())
    assert [b.block for b in report.blocks] == ["layer1.0", "layer1.1", "layer1.2", "layer2.0"]
    assert report.zero_stable and report.unstable_blocks == ()
    assert report.max_modulus == pytest.approx(1.0)
    zeros_block = report.blocks[2]
    assert zeros_block.param == {"lam": pytest.approx(-1.8)}
    assert zeros_block.report.max_spurious_modulus == pytest.approx(1 / 3, abs=1e-6)
    assert report.blocks[3].report.max_spurious_modulus == pytest.approx(0.05)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["blocks"][2]["consistency_order"] == 2


def test_model_scheme_report_flags_unstable_blocks():
    report = model_scheme_report(FakeMultistepNet(lam=0.2, k=1.5))
    assert not report.zero_stable
    assert report.unstable_blocks == ("layer1.2", "layer2.0")
    assert report.max_modulus == pytest.approx(3.0)  # lambda = 0.2: spurious roots 3 and 1/2


def test_model_without_scheme_raises_clear_error():
    with pytest.raises(ValueError, match="model Linear has no multistep scheme"):
        model_scheme_report(nn.Linear(2, 2))

    class Empty(nn.Module):
        def block_coefficients(self):
            return []

    with pytest.raises(ValueError, match="has no multistep scheme: block_coefficients\\(\\) returned no blocks"):
        model_scheme_report(Empty())

    class Broken(nn.Module):
        def block_coefficients(self):
            return [{"block": "x", "b": (1.0,)}]

    with pytest.raises(ValueError, match="entry 0 has no 'a'"):
        model_scheme_report(Broken())


# --------------------------------------------------------------------------------------------- mutation audit


def test_report_lists_the_principal_root_then_the_spurious_roots_by_descending_modulus():
    # lambda = 1/5: rho(z) = (z - 1)(4/5 z^2 - 14/5 z + 6/5) / (4/5), spurious roots 3 and 1/2 (ANALYSIS.md section 1)
    report = analyze_scheme(*zeros_scheme(Q(1, 5)))
    assert report.roots == pytest.approx((1, 3, 0.5))
    assert report.moduli == pytest.approx((1, 3, 0.5))
    assert report.spurious_roots == pytest.approx((3, 0.5))
    # without a principal root (rho(1) = -2) every root is spurious, the largest first
    ones = analyze_scheme(*given_scheme(1, 1, 1, 1))
    assert ones.spurious_roots == ones.roots and len(ones.roots) == 3
    assert ones.moduli == pytest.approx((1.839, 0.737, 0.737), abs=1e-3)


def test_largest_spurious_modulus_of_a_one_step_scheme_is_zero():
    assert largest_spurious_modulus(euler_scheme().a) == 0.0  # rho = z - 1 has only its principal root
    assert largest_spurious_modulus(lm_scheme(Q(-1, 2)).a) == pytest.approx(0.5)  # rho = (z - 1)(z - 1/2)


def test_consistency_order_finds_the_maximal_order_of_a_three_step_scheme():
    """The explicit 3-step scheme of maximal order 2k - 1 = 5 (the unique solution of the conditions q = 0..5):
    x_{n+1} = -18 x_n + 9 x_{n-1} + 10 x_{n-2} + h (9 f_n + 18 f_{n-1} + 3 f_{n-2})."""
    a, b = (Q(-18), Q(9), Q(10)), (Q(9), Q(18), Q(3))
    for q in range(6):  # the order-q conditions of ANALYSIS.md section 1, written out
        lhs = sum(c * (-j) ** q for j, c in enumerate(a))
        if q:
            lhs += q * sum(c * (-j) ** (q - 1) for j, c in enumerate(b))
        assert lhs == 1
    assert consistency_order(a, b) == 5
    assert consistency_order([float(v) for v in a], [float(v) for v in b]) == 5
    assert analyze_scheme(a, b).consistency_order == 5


def test_float_order_tolerance_is_relative_to_the_size_of_the_terms():
    # ANALYSIS.md: ZeroSNet is order 2 for every lambda != 0; near 0 its coefficients are ~1/lambda and rounding in
    # the order conditions far exceeds an absolute 1e-9, so the float check must be relative
    for lam in (1e-9, -1e-9):
        assert consistency_order(*zeros_scheme(lam)) == 2
    assert consistency_order(*zeros_scheme(Q(1, 10**9))) == 2


def test_exact_means_every_coefficient_is_rational():
    assert analyze_scheme((Q(1),), (Q(1),)).exact
    assert not analyze_scheme((Q(1),), (1.0,)).exact  # a float b makes the consistency check a float one
    assert not analyze_scheme((1.0,), (Q(1),)).exact


def test_consistent_means_order_at_least_one():
    report = analyze_scheme(*lm_scheme(Q(1, 2)))  # sum a = 1 (order 0) but not order 1 (ANALYSIS.md: only k = 0)
    assert report.consistency_order == 0 and report.consistent is False
    assert analyze_scheme(*lm_scheme(Q(0))).consistent is True


@pytest.mark.parametrize(("lo", "hi", "num"), [(1, 1, 5), (2, 1, 5), (-3, 3, 1), (-3, 3, 0)])
def test_zero_stable_region_needs_an_increasing_range_and_two_points(lo, hi, num):
    with pytest.raises(ValueError, match="scan needs lo < hi and at least 2 points"):
        zero_stable_region("lm", lo, hi, num)


def test_model_scheme_report_passes_its_tolerance_to_every_block():
    model = FakeMultistepNet(k=1 + 1e-8)  # LM-ResNet spurious root -k = -1 - 1e-8, just outside the circle
    assert model_scheme_report(model).unstable_blocks == ("layer2.0",)
    loose = model_scheme_report(model, tol=1e-6)
    assert loose.zero_stable and loose.unstable_blocks == ()
    assert all(blk.report.tol == 1e-6 for blk in loose.blocks)


def test_tolerance_zero_still_finds_an_exact_double_root_on_the_circle():
    # tol = 0 is valid (strict): exact roots on the circle have | |z| - 1 | = 0 <= tol, and (z + 1)^2 is not simple
    for a in ((Q(-2), Q(-1)), (Q(-1), Q(1), Q(1))):  # (z + 1)^2 and (z - 1)(z + 1)^2
        assert not is_zero_stable(a, tol=0)
        assert analyze_scheme(a, tol=0).reason == "repeated root -1 on the unit circle"
    assert is_zero_stable((Q(0), Q(-1)), tol=0)  # (z - i)(z + i): simple roots on the circle


def test_float_double_root_on_the_circle_is_found_within_sqrt_tol():
    """is_zero_stable: with float coefficients, the copies of a split double root on the circle count as one double
    root. Floating point splits the double root -1 of (z - 1)(z + 1)^2 radially by about sqrt(eps); with a tol just
    above that offset both copies are within tol of the circle, and they are still one repeated root."""
    a = (-1.0, 1.0, 1.0)
    roots = np.roots([1.0, *(-c for c in a)])
    offset = float(np.max(np.abs(np.abs(roots) - 1)))
    tol = 1.5 * offset if offset > 0 else 1e-9
    report = analyze_scheme(a, tol=tol)
    assert not report.zero_stable and report.reason.startswith("repeated root -1")


@pytest.mark.parametrize(
    ("a", "root", "tol"),
    [
        ((1.2, 0.0, 0.0), 1.2, 0.05),  # rho = z^2 (z - 1.2): the CLI's --coefficients 1.2 0 0 1 --tol 0.05
        ((Q(6, 5), Q(0), Q(0)), 1.2, 0.05),
        ((0.51, 0.505), 1.01, 1e-3),  # rho = (z - 1.01)(z + 0.5)
    ],
)
def test_a_root_near_one_of_an_inconsistent_scheme_is_spurious(a, root, tol):
    """The principal root is the root at 1 of a consistent scheme (rho(1) = 1 - sum a = 0). These schemes have
    rho(1) != 0, so their root near 1 is spurious: it is the largest spurious modulus and, lying beyond 1 + tol, makes
    the scheme unstable. A window of sqrt(tol) around 1 took it as the principal root (largest spurious |z| 0)."""
    assert 1 - sum(a) != 0
    report = analyze_scheme(a, tol=tol)
    assert report.principal_root is None and report.spurious_roots == report.roots
    assert report.max_spurious_modulus == pytest.approx(root) and root > 1 + tol
    assert not report.zero_stable and report.reason.startswith(f"root {root:g} lies outside the unit circle")
    assert largest_spurious_modulus(a) == pytest.approx(root)


@pytest.mark.parametrize("a", [(1.2, -0.2, 0.0), (Q(6, 5), Q(-1, 5), Q(0)), zeros_scheme(-1.8).a, lm_scheme(0.5).a])
def test_the_root_at_one_of_a_consistent_scheme_is_principal_at_every_tolerance(a):
    """rho = z (z - 1)(z - 0.2) (sum a = 1) and the float ZeroSNet / LM-ResNet schemes, whose root 1 numpy returns
    off by rounding (1 + 4e-16 at lambda = -1.8): the principal root is 1, the spurious ones are the rest."""
    roots = np.roots([1.0, *(-float(c) for c in a)])
    expected = sorted(np.abs(np.delete(roots, np.argmin(np.abs(roots - 1)))), reverse=True)
    for tol in (0.0, 1e-9, 0.05):
        report = analyze_scheme(a, tol=tol)
        assert report.principal_root == 1 and report.roots[0] == 1
        assert report.moduli[1:] == pytest.approx(expected, abs=1e-7)


def test_tolerance_zero_admits_simple_roots_on_the_circle_up_to_rounding():
    """tol = 0 means exactly, up to floating-point rounding. rho = z^3 + z^2 + z + 1 = (z + 1)(z^2 + 1) has the simple
    roots -1, i and -i on the unit circle, so it is zero stable; numpy returns moduli like 1 + 9e-16, which tol = 0
    took as outside the circle. A root outside by much more than rounding (-1 - 1e-12) still is outside."""
    expected = sorted([-1, 1j, -1j], key=lambda z: (z.real, z.imag))
    for a in ((-1.0, -1.0, -1.0), (Q(-1), Q(-1), Q(-1))):
        report = analyze_scheme(a, tol=0)
        assert sorted(report.roots, key=lambda z: (z.real, z.imag)) == pytest.approx(expected, abs=1e-12)
        assert report.zero_stable and is_zero_stable(a, tol=0)
        assert report.reason == "all roots in the closed unit disc, those on the unit circle simple"
    outside = analyze_scheme(lm_scheme(1 + 1e-12).a, tol=0)
    assert not outside.zero_stable
    assert outside.reason.startswith("root -1 lies outside the unit circle (|z| = 1 + 1e-12")


@pytest.mark.parametrize(
    ("a", "tol"),
    [
        (lm_scheme(-0.999).a, 0.0),  # roots 1 and 0.999: numpy's root 1 is 1 + 1.5e-13
        (zeros_scheme(0.334).a, 0.0),  # near the triple root 1 of lambda = 1/3: 1 + 4e-14
        (zeros_scheme(0.33333344124173775).a, DEFAULT_TOL),  # lambda = 1/3 + 1.1e-7: 1 + 2e-9
        ((Q(-999, 1000), Q(1), Q(999, 1000)), 0.0),  # (z - 1)(z + 1)(z + 0.999), exact: its -1 is -1 - 1.5e-13
        ((-0.9999, 1.0, 0.9999), 0.0),  # the same in floats, with 0.9999: -1 - 1.3e-12
    ],
)
def test_a_simple_root_next_to_a_close_one_is_judged_up_to_rounding(a, tol):
    """A simple root with a close neighbour comes out of numpy less accurately than one alone: these zero-stable schemes
    (LM-ResNet k > -1, ZeroSNet lambda > 1/3) were "not zero stable" because their root on the unit circle came out
    just outside it, and at the default tol the verdict said it lay outside by less than tol. The principal root of a
    consistent scheme is now 1 (as the report shows it), and a root near the circle is refined in exact arithmetic."""
    report = analyze_scheme(a, tol=tol)
    assert report.zero_stable and is_zero_stable(a, tol=tol)
    assert report.reason == "all roots in the closed unit disc, those on the unit circle simple"
    # roots outside the circle next to close ones still fail: k = -1 - 1e-6 (root 1 + 1e-6 next to 1), lambda just
    # below 1/3 (a spurious root 1 + 2e-5 next to 1 and to 1 - 2e-5), and lambda = 1e-300 (a root 7.5e299)
    for outside in (lm_scheme(-1 - 1e-6).a, zeros_scheme(1 / 3 - 1e-10).a, zeros_scheme(Q(1, 3) - Q(1, 10**10)).a):
        assert not is_zero_stable(outside, tol=0)
        assert analyze_scheme(outside, tol=0).reason.startswith("root 1")
    assert not is_zero_stable(zeros_scheme(Q(1, 10**300)).a, tol=0)


@pytest.mark.parametrize("lam", [-10.0, -3.0, -1.8, -1.5, -1.2, 0.5, 1.0, 2.0, 10.0])
def test_float_zerosnet_at_tolerance_zero_follows_the_exact_region(lam):
    """A float lambda gives float coefficients whose root 1 numpy returns off by rounding (1 + 4e-16 at -1.8): with
    tol = 0 the scheme was not zero stable although lambda lies in the exact region (ANALYSIS.md), and so were a
    model's blocks."""
    assert is_zero_stable(zeros_scheme(lam).a, tol=0) is exact_zero_stable("zeros", lam)
    report = model_scheme_report(FakeMultistepNet(lam=lam), tol=0)
    assert report.zero_stable is exact_zero_stable("zeros", lam)
    assert report.unstable_blocks == (() if exact_zero_stable("zeros", lam) else ("layer1.2",))


@pytest.mark.parametrize(
    ("roots", "names"),
    [
        ((-1, -1), ("-1",)),  # (z + 1)^2
        ((1, -1, -1), ("-1",)),  # (z - 1)(z + 1)^2: consistent, its spurious root -1 double
        ((1, 1), ("1",)),  # (z - 1)^2: LM-ResNet at k = -1
        ((1j, 1j, -1j, -1j), ("0+1j", "0-1j")),  # (z^2 + 1)^2
    ],
)
@pytest.mark.parametrize("tol", [0.0, 1e-9])
def test_float_double_root_on_the_circle_is_repeated_not_outside(roots, names, tol):
    """Floating point splits a double root on the unit circle into two roots about sqrt(eps) apart, one just outside
    (|z| = 1 + 5e-9 for the -1 of (z - 1)(z + 1)^2): the verdict said "outside the unit circle" instead of naming the
    repeated root. Copies of one multiple root (coefficients within rounding of it) are now one root."""
    a = tuple(-float(c) for c in np.real(np.poly(roots))[1:])
    report = analyze_scheme(a, tol=tol)
    assert not report.zero_stable and not is_zero_stable(a, tol=tol)
    assert report.reason in {f"repeated root {name} on the unit circle" for name in names}


@pytest.mark.parametrize("tol", [0.0, DEFAULT_TOL])
def test_two_close_roots_are_judged_each_unless_they_are_a_repeated_root_on_the_circle(tol):
    """Roots 1 + 1e-5 and 1 - 2e-5 lie within sqrt(tol) of each other, their mean inside the circle: that mean must not
    hide the root outside (it read "zero stable"), while two close distinct roots inside stay simple."""
    outside = tuple(-float(c) for c in np.real(np.poly([1 + 1e-5, 1 - 2e-5, 0.5]))[1:])
    report = analyze_scheme(outside, tol=tol)
    assert not report.zero_stable and not is_zero_stable(outside, tol=tol)
    assert report.reason.startswith("root 1.00001 lies outside the unit circle")
    inside = tuple(-float(c) for c in np.real(np.poly([1.0, 1 - 1e-5, 1 - 2e-5]))[1:])
    assert analyze_scheme(inside, tol=tol).zero_stable and is_zero_stable(inside, tol=tol)


def test_zerosnet_warning_words_a_repeated_root_on_the_circle_from_the_report():
    """(a0, a1, a2) = (2, -1, 0): rho = z^3 - 2 z^2 + z = z (z - 1)^2, a double root 1 of modulus 1. The warning said
    "the largest root ... has modulus 1 > 1"; it names the repeated root as the report does."""
    from timm_zerosnet.schemes import ZeroStable

    reason = analyze_scheme((2.0, -1.0, 0.0)).reason
    assert reason == "repeated root 1 on the unit circle"
    with pytest.warns(UserWarning, match="not zero stable") as record:
        ZeroStable(coefficients=(2, -1, 0, 1))
    (message,) = [str(w.message) for w in record if "zero stable" in str(w.message)]
    assert f"the characteristic polynomial has a {reason}, so errors grow with depth" in message
    assert "> 1" not in message


def test_zero_stable_region_passes_its_tolerance_to_the_root_condition():
    # LM-ResNet's spurious root is -k: with tol = 0.25 every k <= 1.25 passes the numerical root condition, and the
    # scan reports where that disagrees with the exact region -1 < k <= 1
    scan = zero_stable_region("lm", Q(9, 10), Q(13, 10), 5, tol=0.25)
    assert scan.zero_stable == (True, True, True, True, False)
    assert scan.mismatches == pytest.approx((1.1, 1.2))
    assert zero_stable_region("lm", Q(9, 10), Q(13, 10), 5).zero_stable == (True, True, False, False, False)


@pytest.mark.parametrize(
    "call", [lambda: lm_scheme(True), lambda: analyze_scheme([True]), lambda: consistency_order((1,), (False,))]
)
def test_booleans_are_not_coefficients(call):
    with pytest.raises(ValueError, match="must be a real number, got the boolean"):
        call()


def test_model_scheme_report_names_the_model_by_its_timm_architecture():
    model = FakeMultistepNet()
    assert model_scheme_report(model).model == "FakeMultistepNet"  # no pretrained_cfg: the class name
    model.pretrained_cfg = {"architecture": "zerosnet20_cifar"}  # what timm.create_model attaches
    assert model_scheme_report(model).model == "zerosnet20_cifar"
    assert model_scheme_report(model).to_dict()["model"] == "zerosnet20_cifar"


def test_float_bounds_build_the_decimal_grid():
    """0.9 .. 1.3 in 5 points hits k = 1 (LM-ResNet's stable edge, -1 < k <= 1): Fraction(0.9) is 0.9 + 2e-17, so
    the point shown as 1.0 lay just above 1 and was reported as a mismatch of the scan with the exact region."""
    scan = zero_stable_region("lm", 0.9, 1.3, 5)
    assert scan.values == (0.9, 1.0, 1.1, 1.2, 1.3)
    assert scan.zero_stable == (True, True, False, False, False)
    assert scan.mismatches == () and scan.intervals == ((0.9, 1.0),)


# --------------------------------------------------------------------------------------------- audit: tol, str, range

MONOTONE_TOLS = (0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.99)
MONOTONE_SCHEMES = {
    **{f"lm-k={k}": lm_scheme(k).a for k in (Q(-3, 2), Q(-1), Q(-1, 2), Q(-1, 20), Q(0), Q(1, 2), Q(1), Q(6, 5))},
    **{f"lm-k={k!r}": lm_scheme(k).a for k in (-1.5, -1.0, -0.5, -0.05, 0.5, 1.0, 1.2)},
    **{f"zeros-lam={lam}": zeros_scheme(Q(lam)).a for lam in (*SPURIOUS_TABLE, "-9/5", "-1/3", "1/5", "1/3")},
    **{
        f"zeros-lam={lam}-float": zeros_scheme(float(Q(lam))).a
        for lam in (*SPURIOUS_TABLE, "-9/5", "-1/3", "1/5", "1/3")
    },
    "ones": given_scheme(1, 1, 1, 1).a,
    "(z-1)(z+1)^2": (-1.0, 1.0, 1.0),
    "roots-1e-3-apart": tuple(-float(c) for c in np.real(np.poly([1.0, 1 - 1e-3, -0.5]))[1:]),
}


@pytest.mark.parametrize("a", MONOTONE_SCHEMES.values(), ids=MONOTONE_SCHEMES.keys())
def test_a_larger_tolerance_never_makes_the_verdict_stricter(a):
    """tol admits roots slightly outside the unit circle, so raising it can only turn "not zero stable" into "zero
    stable". With float coefficients roots closer than sqrt(tol) were one root at their mean, so at tol = 0.99 the roots
    1 and 0.5 of LM-ResNet k = -0.5 became a "repeated root" 0.75 on the circle, and every LM block of
    lmresnet20_cifar read NOT zero stable; a tol wide enough to reach a double root inside the circle (ZeroSNet's
    -1/3 at lambda = -9/5) did the same."""
    verdicts = [is_zero_stable(a, tol=tol) for tol in MONOTONE_TOLS]
    assert [analyze_scheme(a, tol=tol).zero_stable for tol in MONOTONE_TOLS] == verdicts
    assert verdicts == sorted(verdicts), dict(zip(MONOTONE_TOLS, verdicts))


def test_a_larger_tolerance_keeps_lm_resnet_and_optimal_zerosnet_zero_stable():
    assert is_zero_stable((1.5, -0.5), tol=0.5) and is_zero_stable((1.5, -0.5), tol=0.1)  # LM-ResNet k = -0.5
    report = analyze_scheme((1.5, -0.5), tol=0.99)
    assert report.zero_stable and report.reason == "all roots in the closed unit disc, those on the unit circle simple"
    assert analyze_scheme(*zeros_scheme(Q(-9, 5)), tol=0.99).zero_stable  # double root -1/3: inside, not on circle
    assert model_scheme_report(FakeMultistepNet(), tol=0.99).unstable_blocks == ()
    # repeated roots on the circle stay unstable at every tolerance, exact or float
    for a in ((Q(-1), Q(1), Q(1)), (-1.0, 1.0, 1.0), lm_scheme(-1.0).a, zeros_scheme(1 / 3).a):
        for tol in MONOTONE_TOLS:
            report = analyze_scheme(a, tol=tol)
            assert not report.zero_stable and report.reason.startswith("repeated root"), (a, tol, report.reason)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: analyze_scheme("21"), "a must be a sequence of coefficients, got '21'"),
        (lambda: analyze_scheme(b"\x01"), "a must be a sequence of coefficients, got b'\\x01'"),
        (lambda: analyze_scheme(bytearray(b"\x01")), "a must be a sequence of coefficients, got bytearray"),
        (lambda: characteristic_polynomial("11"), "a must be a sequence of coefficients, got '11'"),
        (lambda: is_zero_stable("11"), "a must be a sequence of coefficients, got '11'"),
        (lambda: analyze_scheme((1,), "1"), "b must be a sequence of coefficients, got '1'"),
        (lambda: consistency_order((1,), "1"), "b must be a sequence of coefficients, got '1'"),
    ],
    ids=["str", "bytes", "bytearray", "characteristic_polynomial", "is_zero_stable", "b-str", "consistency_order"],
)
def test_a_string_is_not_a_sequence_of_coefficients(call, message):
    """A str or bytes is a Sequence, so '21' was read as the coefficients (2.0, 1.0) and b'\\x01' as (1.0,)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@pytest.mark.parametrize("a", [(1e308, -1e308, 1e308), (Q(10**308), -Q(10**308), Q(10**308)), zeros_scheme(1e-100).a])
def test_coefficients_whose_roots_floating_point_cannot_find_are_refused(a):
    """rho = z^3 - 1e308 (z^2 - z + 1) has the roots 0.5 +- 0.866j next to 1e308 (the CLI's --coefficients 1e308 -1e308
    1e308 1); numpy's companion matrix lost them, and the CLI printed "roots: 1 (principal), 1e+308, 0". A computed
    root that leaves |rho(z)| far above rounding is now refused with what to do."""
    message = r"the roots of rho cannot be computed accurately in floating point: .* give coefficients of less extreme"
    with pytest.raises(ValueError, match=message):
        analyze_scheme(a)
    with pytest.raises(ValueError, match=message):
        is_zero_stable(a, tol=0.5)


def test_extreme_coefficients_whose_roots_floating_point_finds_still_work():
    assert analyze_scheme(*lm_scheme(1e308)).roots == (1, -1e308)  # rho = (z - 1)(z + 1e308)
    assert is_zero_stable((1e-300, 1.0, 1e-300))  # roots 1, -1 and -1e-300 (found as 0)
    assert analyze_scheme(*zeros_scheme(Q(1, 10**300))).principal_root == 1  # exact: the root 1 divided out first
    assert analyze_scheme(*zeros_scheme(1e-38)).max_spurious_modulus == pytest.approx(7.5e37)


@pytest.mark.parametrize(
    ("num", "message"),
    [
        (2.5, "num = 2.5 is not a number of grid points: pass an int from 2"),
        ("11", "num = '11' is not a number of grid points"),
        (True, "num = True is not a number of grid points"),
        (MAX_SCAN_POINTS + 1, "grid points is too many: a scan takes at most 200,000"),
        (10**12, "num = 1,000,000,000,000 grid points is too many"),
    ],
    ids=["float", "str", "bool", "one-too-many", "huge"],
)
def test_zero_stable_region_refuses_a_grid_size_that_is_no_count_of_points(num, message):
    """num = 2.5 or '11' ended in a bare TypeError from range() or '<', True scanned a 1-point grid under the
    message 'lo < hi and at least 2 points', and 10**12 built a list of 10**12 Fractions until memory ran out (the
    CLI's --num caps it at 200,000; the function did not)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        zero_stable_region("zeros", -3, 3, num)
    assert len(zero_stable_region("lm", -1, 1, np.int64(5)).values) == 5  # numpy integers are counts too


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: analyze_scheme(["1", "0.5"]), "a[0] must be a real number, got the string '1'; convert it first"),
        (lambda: analyze_scheme((1,), ("1",)), "b[0] must be a real number, got the string '1'"),
        (lambda: zeros_scheme("-1.8"), "lambda must be a real number, got the string '-1.8'"),
        (lambda: lm_scheme("0.5"), "k must be a real number, got the string '0.5'"),
        (lambda: zeros_scheme(np.bool_(True)), "lambda must be a real number, got the boolean True"),
        (lambda: analyze_scheme([np.bool_(True)]), "a[0] must be a real number, got the boolean True"),
        (lambda: analyze_scheme({1.0: 0, 0.5: 1}), "a must be an ordered sequence of coefficients (a_0, a_1, ...), "),
        (lambda: analyze_scheme({1.5, -0.5}), "got a set {"),
        (lambda: analyze_scheme((1,), frozenset({1})), "b must be an ordered sequence of coefficients"),
        (lambda: analyze_scheme(np.array(1.0)), "a must be a one-dimensional sequence of coefficients, got an array "),
        (lambda: analyze_scheme(np.ones((2, 2))), "got an array of shape (2, 2)"),
        (lambda: exact_zero_stable("zeros", "x"), "lambda must be a real number, got the string 'x'"),
        (lambda: exact_zero_stable("lm", float("nan")), "k must be finite, got nan"),
    ],
    ids=[
        "str-in-a",
        "str-in-b",
        "str-lambda",
        "str-k",
        "numpy-bool-lambda",
        "numpy-bool-in-a",
        "dict",
        "set",
        "frozenset-b",
        "0d-array",
        "2d-array",
        "exact-str",
        "exact-nan",
    ],
)
def test_coefficients_that_are_not_an_ordered_list_of_numbers_are_refused(call, message):
    """'1' was parsed by float() (a number read from a file, still text, went through unnoticed), numpy's True was a
    1, a dict gave its keys and a set its elements in hash order (a = {1.5, -0.5} could be analysed as (-0.5, 1.5)),
    a 0-d array raised numpy's bare 'iteration over a 0-d array', and exact_zero_stable said "could not convert string
    to float: 'x'" or called NaN unstable."""
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: analyze_scheme((np.complex128(0.5 + 2j), 0.5)),
        lambda: analyze_scheme(np.array([0.5 + 2j, 0.5])),
        lambda: analyze_scheme((1.0,), (np.complex64(1 + 0j),)),
        lambda: zeros_scheme(np.complex128(-1.8 + 0.1j)),
        lambda: lm_scheme(np.array(0.5 + 1j)),
        lambda: analyze_scheme((torch.tensor(0.5 + 2j), 0.5)),
        lambda: analyze_scheme((1j, 0.5)),
    ],
    ids=["numpy-complex", "complex-array", "complex-b", "complex-lambda", "0d-complex-k", "torch-complex", "python"],
)
def test_complex_coefficients_are_refused(call):
    """The schemes have real coefficients. numpy's complex values went through float(), which keeps the real part with
    only a ComplexWarning: a = (0.5 + 2j, 0.5) was analysed as (0.5, 0.5), zero stable; a complex tensor raised torch's
    bare RuntimeError 'value cannot be converted to type double without overflow'."""
    with pytest.raises(ValueError, match=r"must be a real number, got the complex "):
        call()
