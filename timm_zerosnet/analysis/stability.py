"""Zero stability and consistency of the linear multistep schemes behind ODE-inspired residual networks.

A residual network whose block ``n`` computes

    x_{n+1} = sum_j a_j x_{n-j} + h * sum_j b_j F(x_{n-j}),   j = 0..k-1,

is a k-step linear multistep scheme with step size ``h`` (``tau`` in tau-ResNet). Whether its error stays
bounded as the number of blocks grows is decided by the first characteristic polynomial

    rho(z) = z^k - a_0 z^{k-1} - ... - a_{k-1}

(root condition, "zero stability"), and how well it follows the ODE by the consistency order.

References:
    Chen, Jin, Shang. "Zero-Stability Well Predicts Performance of Convolutional Neural Networks", AAAI 2022,
    arXiv 2206.13100 (ZeroSNet).
    Lu, Zhong, Li, Dong. "Beyond Finite Layer Neural Networks: Bridging Deep Architectures and Numerical
    Differential Equations", ICML 2018, arXiv 1710.10121 (LM-ResNet).

This module deliberately imports neither torch nor matplotlib so that model code can import
:func:`analyze_scheme` cheaply.
"""

from __future__ import annotations

import decimal
import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_ORDER_TOL",
    "DEFAULT_TOL",
    "KNOWN_REGIONS",
    "MAX_SCAN_POINTS",
    "BlockSchemeReport",
    "ModelSchemeReport",
    "RegionScan",
    "Scheme",
    "SchemeReport",
    "analyze_scheme",
    "characteristic_polynomial",
    "consistency_order",
    "euler_scheme",
    "exact_zero_stable",
    "given_scheme",
    "is_zero_stable",
    "largest_spurious_modulus",
    "lm_scheme",
    "model_scheme_report",
    "polynomial_roots",
    "root_moduli",
    "scheme_for_family",
    "split_roots",
    "zero_stable_region",
    "zeros_coefficients",
    "zeros_scheme",
]

Number = int | float | Fraction

#: A root with ``|z| > 1 + tol`` is outside the unit circle; a simple root with ``|z| <= 1 + tol`` passes (the bound is
#: never below rounding level: tol = 0 means exactly, up to floating-point rounding).
DEFAULT_TOL = 1e-9
#: Rounding level of a computed root relative to ``max(1, |z|)``: numpy's roots of the simple roots of the schemes
#: here lie within a few machine eps of the exact ones (at most about 20 eps on random schemes of degree up to 13).
_ROUNDING = 64 * sys.float_info.epsilon
#: Computed roots of float coefficients are copies of one multiple root when the coefficients lie within this relative
#: distance of a polynomial with that multiple root (4096 eps: split copies of multiple roots of random schemes stay
#: below 10 eps, two roots 3e-5 apart are at 1e5 eps). Independent of tol, so a larger tol never merges more roots.
_MULTIPLE = 2.0**-40
#: Largest relative residual ``|rho(z)|`` of a computed root (against its coefficients' magnitudes): numpy's roots stay
#: below a few hundred eps unless the coefficients span hundreds of orders of magnitude, where they are simply wrong.
_RESIDUAL = 2.0**-26
#: Relative tolerance of the consistency conditions when the coefficients are floats (exact otherwise).
DEFAULT_ORDER_TOL = 1e-9
#: Most grid points of :func:`zero_stable_region` (about a minute; the grid is built whole before the scan).
MAX_SCAN_POINTS = 200_000


class Scheme(NamedTuple):
    """Coefficients of a k-step scheme: ``a`` weighs the states x_{n-j}, ``b`` the branch outputs F(x_{n-j})."""

    a: tuple[Number, ...]
    b: tuple[Number, ...]


# ---------------------------------------------------------------------------------------------------------------
# Constructors for the schemes used in this project
# ---------------------------------------------------------------------------------------------------------------


def zeros_coefficients(lam: Number) -> tuple[Number, Number, Number, Number]:
    """ZeroSNet coefficients ``(a0, a1, a2, b0)`` for the free parameter lambda (ARCHITECTURES.md 1.1).

    Exact rationals in (``int``, ``Fraction``) give exact ``Fraction`` coefficients, floats give floats.

    Args:
        lam: The ZeroSNet parameter lambda (``coe`` / ``k`` in the authors' code); must be non-zero.

    Returns:
        ``(a0, a1, a2, b0)`` = ``((3 lam + 3) / (4 lam), -1 / lam, (lam + 1) / (4 lam), (3 lam - 1) / (2 lam))``.

    Raises:
        ValueError: If ``lam`` is zero, not finite, or so close to 0 that ``-1 / lam`` does not fit in a float.
    """
    lam = _as_number(lam, "lambda")
    if lam == 0:
        raise ValueError(
            "lambda = 0 is not a valid ZeroSNet parameter: every coefficient divides by lambda; "
            "pick a non-zero value (lambda <= -1 or lambda > 1/3 is zero stable, -9/5 is the 'optimal' one)."
        )
    if isinstance(lam, float) and abs(lam) > sys.float_info.max / 4:
        # 4 lam overflows (|lambda| > 4.5e307): the same values as 3/4 + 3/(4 lam) and so on (the quotients came out
        # as 0 or nan: a0 = 0, order -1, 'zero stable', or 'too close to 0' for lambda = -1e308)
        coefficients = 0.75 + 0.75 / lam, -1 / lam, 0.25 + 0.25 / lam, 1.5 - 0.5 / lam
    else:
        coefficients = (3 * lam + 3) / (4 * lam), -1 / lam, (lam + 1) / (4 * lam), (3 * lam - 1) / (2 * lam)
    # The roots are computed in floating point, so a lambda that is 0 as a float (1e-400) or nearly so cannot be used.
    if not all(_fits_float(c) for c in coefficients):
        raise ValueError(
            f"lambda = {_brief(lam)} is too close to 0: the coefficient -1/lambda = {_brief(-1 / lam)} does not fit "
            f"in a float; use |lambda| >= {1 / sys.float_info.max:.2g} "
            "(lambda <= -1 or lambda > 1/3 is zero stable, -9/5 is the 'optimal' one)."
        )
    return coefficients


def zeros_scheme(lam: Number) -> Scheme:
    """ZeroSNet as a 3-step scheme: ``a = (a0, a1, a2)``, ``b = (b0, 0, 0)`` (see :func:`zeros_coefficients`)."""
    a0, a1, a2, b0 = zeros_coefficients(lam)
    return Scheme((a0, a1, a2), (b0, 0, 0))


def given_scheme(a0: Number, a1: Number, a2: Number, b0: Number) -> Scheme:
    """ZeroSNet's "given coefficients" form, e.g. the non-zero-stable ``(1, 1, 1, 1)`` of the paper's study."""
    return Scheme((a0, a1, a2), (b0, 0, 0))


def lm_scheme(k: Number) -> Scheme:
    """LM-ResNet (paper convention): x_{n+1} = (1 - k) x_n + k x_{n-1} + F(x_n), so ``a = (1-k, k)``, ``b = (1, 0)``."""
    k = _as_number(k, "k")
    return Scheme((1 - k, k), (1, 0))


def euler_scheme() -> Scheme:
    """Forward Euler, ``a = (1,)``, ``b = (1,)``: ResNet, and tau-ResNet whose ``tau`` is the step size h.

    As everywhere in this module, ``b`` excludes the step size (the update adds ``h * b_j * F``), so the
    consistency order is that of the ODE dx/dt = F; scaling ``b`` by ``h`` leaves ``a`` and therefore zero
    stability unchanged.
    """
    return Scheme((1,), (1,))


# ---------------------------------------------------------------------------------------------------------------
# Polynomial, roots, root condition, consistency
# ---------------------------------------------------------------------------------------------------------------


def characteristic_polynomial(a: Sequence[Number]) -> tuple[Number, ...]:
    """First characteristic polynomial rho(z) = z^k - a_0 z^{k-1} - ... - a_{k-1}, highest degree first.

    Args:
        a: State coefficients ``(a_0, ..., a_{k-1})``.

    Returns:
        ``(1, -a_0, ..., -a_{k-1})``; exact (``Fraction``) when every ``a_j`` is rational.

    Raises:
        ValueError: If ``a`` is empty or holds a non-finite value.
    """
    coeffs = _as_numbers(a, "a")
    if not coeffs:
        raise ValueError("empty scheme: the state coefficients a are empty; give at least one (Euler is a = (1,)).")
    one = Fraction(1) if all(isinstance(c, Fraction) for c in coeffs) else 1.0
    return (one, *(-c for c in coeffs))


def polynomial_roots(a: Sequence[Number]) -> np.ndarray:
    """Roots of rho, repeated by multiplicity, in no particular order.

    Float coefficients: numpy's companion-matrix eigenvalues; the root at 1 of a consistent scheme (rho(1) = 0 up to
    rounding) is exactly 1. Exact rational coefficients: rho is first split into square-free factors by exact gcds,
    so a multiple root (the triple root 1 of ZeroSNet at lambda = 1/3, the double root -1/3 at lambda = -9/5) comes
    out as one accurate value repeated, and a root at 1 is exactly 1. Either way a simple root near the unit circle is
    refined in exact arithmetic (numpy's is off by much more than rounding next to a close root).
    """
    return _roots_and_groups(a)[0]


def root_moduli(a: Sequence[Number]) -> np.ndarray:
    """Moduli ``|z|`` of the roots of rho."""
    return np.abs(polynomial_roots(a))


def split_roots(roots: Sequence[complex]) -> tuple[complex | None, np.ndarray]:
    """Separate the principal root (the one at z = 1) from the spurious roots.

    A consistent scheme has rho(1) = 0; that root carries the solution, every other root only carries error.
    rho(1) = 0 is decided from the roots themselves: rho(1) = prod(1 - z), which is exactly 0 when 1 is an exact
    root (rational coefficients) and at rounding level relative to prod(1 + |z|) for float coefficients, whatever
    the multiplicity of the root at 1. Otherwise (an inconsistent scheme such as coefficients (1, 1, 1, 1), or
    1.2 0 0 1 whose root 1.2 is no solution root) there is no principal root and every root is spurious. Only one
    root is taken as principal, so the two extra copies of a triple root at 1 stay among the spurious roots.

    Returns:
        ``(principal, spurious)``: the principal root (exactly 1) or ``None``, and the spurious roots sorted by
        descending modulus.
    """
    roots = np.asarray(roots, dtype=complex)
    spurious = roots
    principal = None
    # Each factor |1 - z| / (1 + |z|) is at most 1, so the product neither overflows nor needs a scale.
    if roots.size and float(np.prod(np.abs(1 - roots) / (1 + np.abs(roots)))) <= _ROUNDING:
        principal = 1 + 0j
        spurious = np.delete(roots, int(np.argmin(np.abs(roots - 1))))
    order = np.argsort(-np.abs(spurious), kind="stable")
    return principal, spurious[order]


def largest_spurious_modulus(a: Sequence[Number]) -> float:
    """Largest modulus among the spurious roots of rho (0.0 for a one-step scheme, which has none)."""
    _, spurious = split_roots(polynomial_roots(a))
    return float(np.max(np.abs(spurious))) if spurious.size else 0.0


def is_zero_stable(a: Sequence[Number], tol: float = DEFAULT_TOL) -> bool:
    """Root condition: every root of rho has ``|z| <= 1`` and the roots on the unit circle are simple.

    Args:
        a: State coefficients ``(a_0, ..., a_{k-1})``.
        tol: A root with ``|z| > 1 + tol`` is outside the unit circle, a simple root with ``|z| <= 1 + tol``
            passes: tol admits roots slightly outside, so a larger tol never makes the verdict stricter. The bound
            is never below rounding level (64 machine eps times ``max(1, |z|)``), so ``tol = 0`` means "exactly, up
            to floating-point rounding". A repeated root fails when it lies on the unit circle up to rounding (or
            outside), whatever tol. Repeated roots are found exactly (gcd of rho and rho') when every ``a_j`` is
            rational; with float coefficients, which floating point splits into copies about
            ``eps^(1/multiplicity)`` apart, computed roots count as one multiple root when the coefficients lie
            within 2^-40 (relative) of a polynomial with that multiple root, so a double root on the circle is a
            repeated root, not two roots just inside and just outside it.

    Returns:
        Whether the scheme is zero stable.

    Raises:
        ValueError: If ``a`` is empty or holds a non-finite value, ``tol`` is not in [0, 1), or the coefficients span
            so many orders of magnitude that floating-point root finding fails.
    """
    tol = _check_tol(tol)
    return _root_condition(_roots_and_groups(a)[1], tol)[0]


def consistency_order(a: Sequence[Number], b: Sequence[Number], tol: float = DEFAULT_ORDER_TOL) -> int:
    """Order of consistency p of the scheme (ANALYSIS.md section 1).

    With x_{n+1} at t = 1 and x_{n-j}, F(x_{n-j}) at t = -j, the order-q condition reads
    ``sum_j a_j (-j)^q + q * sum_j b_j (-j)^(q-1) = 1`` (``(-0)^0 = 1``); for q = 0 it is ``sum_j a_j = 1``.
    The result is the largest p such that the conditions hold for every q = 0..p. The scheme is consistent
    iff p >= 1.

    When every coefficient is rational (``int``, ``Fraction``, sympy ``Rational``) the check is exact, so e.g.
    ZeroSNet at lambda = Fraction(-1, 3) is provably order 3; floats are compared with relative tolerance ``tol``.

    Args:
        a: State coefficients ``(a_0, ..., a_{k-1})``.
        b: Branch coefficients ``(b_0, ...)``; padded with zeros to the length of ``a`` (and vice versa).
        tol: Relative tolerance for float coefficients.

    Returns:
        p >= 0, or -1 when even ``sum_j a_j = 1`` fails.

    Raises:
        ValueError: If ``a`` is empty, a coefficient is not a finite real number, or ``tol`` is not in [0, 1).
    """
    tol = _check_tol(tol)
    a_vals, b_vals = _pad(_as_numbers(a, "a"), _as_numbers(b, "b"))
    if not a_vals:
        raise ValueError("empty scheme: the state coefficients a are empty; give at least one (Euler is a = (1,)).")
    exact = all(isinstance(v, Fraction) for v in (*a_vals, *b_vals))
    k = len(a_vals)
    order = -1
    # A k-step scheme has 2k free coefficients, so at most 2k + 1 conditions (q = 0..2k) can hold at once.
    for q in range(2 * k + 2):
        terms = [c * (-j) ** q for j, c in enumerate(a_vals)]
        if q >= 1:
            terms += [q * c * (-j) ** (q - 1) for j, c in enumerate(b_vals)]
        lhs = sum(terms)
        if exact:
            holds = lhs == 1
        else:
            holds = abs(float(lhs) - 1.0) <= tol * max(1.0, sum(abs(float(t)) for t in terms))
        if not holds:
            break
        order = q
    return order


# ---------------------------------------------------------------------------------------------------------------
# Summary used by the models and the CLI
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemeReport:
    """Everything the training-free stability analysis says about one scheme.

    Attributes:
        a: State coefficients as floats.
        b: Branch coefficients as floats (``None`` if not given).
        polynomial: Coefficients of rho, highest degree first.
        roots: Roots of rho: the principal root first (if any), then the spurious roots by descending modulus.
        moduli: ``|z|`` of ``roots``, same order.
        principal_root: The root at z = 1, or ``None`` for an inconsistent scheme without one.
        zero_stable: Root condition verdict.
        max_modulus: Largest ``|z|`` over all roots (the error grows like ``max_modulus ** blocks`` when > 1).
        max_spurious_modulus: Largest ``|z|`` over the spurious roots (0.0 if there are none).
        consistency_order: See :func:`consistency_order`; ``None`` when ``b`` was not given.
        exact: Whether the coefficients were exact rationals (exact consistency and multiplicity checks).
        tol: Unit-circle tolerance used for the root condition.
        reason: One sentence explaining the verdict.
    """

    a: tuple[float, ...]
    b: tuple[float, ...] | None
    polynomial: tuple[float, ...]
    roots: tuple[complex, ...]
    moduli: tuple[float, ...]
    principal_root: complex | None
    zero_stable: bool
    max_modulus: float
    max_spurious_modulus: float
    consistency_order: int | None
    exact: bool
    tol: float
    reason: str

    @property
    def spurious_roots(self) -> tuple[complex, ...]:
        """The roots other than the principal one."""
        return self.roots[1:] if self.principal_root is not None else self.roots

    @property
    def consistent(self) -> bool | None:
        """Consistency (order >= 1); ``None`` when ``b`` was not given."""
        return None if self.consistency_order is None else self.consistency_order >= 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view: complex numbers become ``[real, imag]`` pairs."""
        return {
            "a": list(self.a),
            "b": None if self.b is None else list(self.b),
            "polynomial": list(self.polynomial),
            "roots": [[z.real, z.imag] for z in self.roots],
            "moduli": list(self.moduli),
            "principal_root": None if self.principal_root is None else [self.principal_root.real, 0.0],
            "zero_stable": self.zero_stable,
            "max_modulus": self.max_modulus,
            "max_spurious_modulus": self.max_spurious_modulus,
            "consistency_order": self.consistency_order,
            "consistent": self.consistent,
            "exact": self.exact,
            "tol": self.tol,
            "reason": self.reason,
        }


def analyze_scheme(
    a: Sequence[Number],
    b: Sequence[Number] | None = None,
    *,
    tol: float = DEFAULT_TOL,
    order_tol: float = DEFAULT_ORDER_TOL,
) -> SchemeReport:
    """Roots, root condition and consistency order of ``x_{n+1} = sum a_j x_{n-j} + h sum b_j F(x_{n-j})``.

    The step size ``h`` only scales ``b``, so it never changes zero stability.

    Args:
        a: State coefficients ``(a_0, ..., a_{k-1})``.
        b: Branch coefficients ``(b_0, ...)``; without them the consistency order is not computed.
        tol: Unit-circle tolerance of the root condition (see :func:`is_zero_stable`).
        order_tol: Relative tolerance of the consistency conditions for float coefficients.

    Returns:
        A :class:`SchemeReport`.

    Raises:
        ValueError: If ``a`` is empty, a coefficient is not a finite real number (or too large for a float), or
            ``tol`` / ``order_tol`` is not in [0, 1).
    """
    tol, order_tol = _check_tol(tol), _check_tol(order_tol, "order_tol")
    a_vals = _as_numbers(a, "a")
    b_vals = None if b is None else _as_numbers(b, "b")
    if not a_vals:
        raise ValueError("empty scheme: the state coefficients a are empty; give at least one (Euler is a = (1,)).")
    if b_vals is not None:
        a_vals, b_vals = _pad(a_vals, b_vals)
    exact = all(isinstance(v, Fraction) for v in (*a_vals, *(b_vals or ())))
    raw_roots, groups = _roots_and_groups(a_vals)
    stable, reason = _root_condition(groups, tol)
    principal, spurious = split_roots(raw_roots)
    roots = ((principal,) if principal is not None else ()) + tuple(complex(z) for z in spurious)
    roots = tuple(_clean(z) for z in roots)
    moduli = tuple(abs(z) for z in roots)
    return SchemeReport(
        a=tuple(float(v) for v in a_vals),
        b=None if b_vals is None else tuple(float(v) for v in b_vals),
        polynomial=tuple(float(c) for c in characteristic_polynomial(a_vals)),
        roots=roots,
        moduli=moduli,
        principal_root=None if principal is None else roots[0],
        zero_stable=stable,
        max_modulus=max(moduli),
        max_spurious_modulus=float(np.max(np.abs(spurious))) if spurious.size else 0.0,
        consistency_order=None if b_vals is None else consistency_order(a_vals, b_vals, order_tol),
        exact=exact,
        tol=tol,
        reason=reason,
    )


# ---------------------------------------------------------------------------------------------------------------
# One-parameter families: floating-point scan and the exact regions
# ---------------------------------------------------------------------------------------------------------------

#: Exact zero-stable regions of the two one-parameter families, as ``family -> (parameter, description)``.
KNOWN_REGIONS: dict[str, tuple[str, str]] = {
    "zeros": ("lambda", "lambda <= -1 or lambda > 1/3"),
    "lm": ("k", "-1 < k <= 1"),
}


def scheme_for_family(family: str, value: Number) -> Scheme:
    """The scheme of a one-parameter family: ``'zeros'`` (lambda) or ``'lm'`` (LM-ResNet k)."""
    if family == "zeros":
        return zeros_scheme(value)
    if family == "lm":
        return lm_scheme(value)
    raise ValueError(f"unknown scheme family {family!r}; use 'zeros' (ZeroSNet lambda) or 'lm' (LM-ResNet k).")


def exact_zero_stable(family: str, value: Number) -> bool:
    """Membership in the exact zero-stable region of :data:`KNOWN_REGIONS` (rationals are compared exactly).

    ZeroSNet: rho(z) = (z - 1) q(z) / (4 lambda) with q(z) = 4 lambda z^2 + (lambda - 3) z + (lambda + 1); the
    spurious roots leave the closed unit disc through z = -1 at lambda = -1 and merge with 1 at lambda = 1/3.
    LM-ResNet: rho(z) = (z - 1)(z + k), so the spurious root is -k.
    """
    if family not in KNOWN_REGIONS:
        raise ValueError(f"unknown scheme family {family!r}; use 'zeros' (ZeroSNet lambda) or 'lm' (LM-ResNet k).")
    v = _as_number(value, KNOWN_REGIONS[family][0])
    if family == "zeros":
        return v <= -1 or v > Fraction(1, 3)
    return -1 < v <= 1


@dataclass(frozen=True)
class RegionScan:
    """Result of :func:`zero_stable_region`.

    Attributes:
        family: ``'zeros'`` or ``'lm'``.
        parameter: Name of the scanned parameter (``'lambda'`` or ``'k'``).
        values: Scanned parameter values.
        max_spurious_modulus: Largest spurious-root modulus per value (NaN where the scheme is undefined,
            i.e. lambda = 0).
        zero_stable: Root-condition verdict per value (from the roots, not from the exact region).
        intervals: Maximal runs of consecutive zero-stable grid values, as ``(first, last)`` pairs.
        region: The exact region, e.g. ``'lambda <= -1 or lambda > 1/3'``.
        mismatches: Grid values where the scan disagrees with the exact region (empty when they agree).
    """

    family: str
    parameter: str
    values: tuple[float, ...]
    max_spurious_modulus: tuple[float, ...]
    zero_stable: tuple[bool, ...]
    intervals: tuple[tuple[float, float], ...]
    region: str
    mismatches: tuple[float, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (NaN becomes ``None``)."""
        return {
            "family": self.family,
            "parameter": self.parameter,
            "values": list(self.values),
            "max_spurious_modulus": [None if math.isnan(v) else v for v in self.max_spurious_modulus],
            "zero_stable": list(self.zero_stable),
            "intervals": [list(iv) for iv in self.intervals],
            "region": self.region,
            "mismatches": list(self.mismatches),
        }


def zero_stable_region(family: str, lo: Number, hi: Number, num: int = 601, *, tol: float = DEFAULT_TOL) -> RegionScan:
    """Scan a one-parameter family and compare the root-condition verdicts with the exact region.

    The grid is built in exact rational arithmetic from ``lo`` and ``hi`` (so -3..3 with 601 points hits
    lambda = -1 exactly; a float bound is the decimal it prints as, 0.9 = 9/10), then every scheme goes through the
    same root computation as :func:`analyze_scheme`.

    Args:
        family: ``'zeros'`` (ZeroSNet, parameter lambda) or ``'lm'`` (LM-ResNet, parameter k).
        lo: First parameter value.
        hi: Last parameter value (``hi > lo``).
        num: Number of grid points, an int from 2 to :data:`MAX_SCAN_POINTS`.
        tol: Unit-circle tolerance of the root condition.

    Returns:
        A :class:`RegionScan`.

    Raises:
        ValueError: For an unknown family, ``num`` not an int from 2 to :data:`MAX_SCAN_POINTS`, ``hi <= lo``, a
            bound too large for a float, or ``tol`` not in [0, 1).
    """
    tol = _check_tol(tol)
    if family not in KNOWN_REGIONS:
        raise ValueError(f"unknown scheme family {family!r}; use 'zeros' (ZeroSNet lambda) or 'lm' (LM-ResNet k).")
    lo_q, hi_q = _as_rational(_as_number(lo, "lo")), _as_rational(_as_number(hi, "hi"))
    if isinstance(num, bool | np.bool_) or not isinstance(num, numbers.Integral):
        raise ValueError(
            f"num = {num!r} is not a number of grid points: pass an int from 2 to {MAX_SCAN_POINTS:,} "
            "(both ends are grid points; the default is 601)."
        )
    if num > MAX_SCAN_POINTS:  # the grid is built whole: 10**9 points would exhaust memory before the first root
        raise ValueError(
            f"num = {num:,} grid points is too many: a scan takes at most {MAX_SCAN_POINTS:,} (about a minute); "
            "scan a narrower range or in pieces."
        )
    if num < 2 or hi_q <= lo_q:
        raise ValueError(f"scan needs lo < hi and at least 2 points, got lo={lo}, hi={hi}, num={num}.")
    step = (hi_q - lo_q) / (num - 1)
    grid = [lo_q + i * step for i in range(num)]
    moduli, flags = [], []
    for v in grid:
        if family == "zeros" and v == 0:
            moduli.append(math.nan)
            flags.append(False)
            continue
        scheme = scheme_for_family(family, v)
        report = analyze_scheme(scheme.a, tol=tol)
        moduli.append(report.max_spurious_modulus)
        flags.append(report.zero_stable)
    intervals = []
    start = None
    for i, ok in enumerate([*flags, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            intervals.append((float(grid[start]), float(grid[i - 1])))
            start = None
    parameter, region = KNOWN_REGIONS[family]
    mismatches = tuple(float(v) for v, ok in zip(grid, flags) if ok != exact_zero_stable(family, v))
    return RegionScan(
        family=family,
        parameter=parameter,
        values=tuple(float(v) for v in grid),
        max_spurious_modulus=tuple(moduli),
        zero_stable=tuple(flags),
        intervals=tuple(intervals),
        region=region,
        mismatches=mismatches,
    )


# ---------------------------------------------------------------------------------------------------------------
# Reading the scheme from a model
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockSchemeReport:
    """Scheme of one block of a model: its name, its parameter (``{'lam': -1.8}``, ``{'k': 0.1}``, ``{}``)."""

    block: str
    param: dict[str, float]
    report: SchemeReport

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"block": self.block, "param": dict(self.param), **self.report.to_dict()}


@dataclass(frozen=True)
class ModelSchemeReport:
    """Per-block stability analysis of a model (see :func:`model_scheme_report`)."""

    model: str
    blocks: tuple[BlockSchemeReport, ...]

    @property
    def zero_stable(self) -> bool:
        """Whether every block's scheme is zero stable."""
        return all(blk.report.zero_stable for blk in self.blocks)

    @property
    def max_modulus(self) -> float:
        """Largest root modulus over all blocks."""
        return max(blk.report.max_modulus for blk in self.blocks)

    @property
    def unstable_blocks(self) -> tuple[str, ...]:
        """Names of the blocks whose scheme violates the root condition."""
        return tuple(blk.block for blk in self.blocks if not blk.report.zero_stable)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "model": self.model,
            "zero_stable": self.zero_stable,
            "max_modulus": self.max_modulus,
            "unstable_blocks": list(self.unstable_blocks),
            "blocks": [blk.to_dict() for blk in self.blocks],
        }


def model_scheme_report(model: Any, *, tol: float = DEFAULT_TOL) -> ModelSchemeReport:
    """Analyse the scheme of every block of a model.

    The model must implement ``block_coefficients()``, returning one entry per block (a mapping or an object
    with attributes) with ``block`` (name, e.g. ``'layer1.2'``), ``a`` and ``b`` (tuples of floats) and optionally
    ``param`` (e.g. ``{'lam': -1.8}``, ``{'k': -0.05}``; missing, None or ``{}`` for a fixed scheme).

    Args:
        model: The model (usually a ``torch.nn.Module`` built by ``timm.create_model``).
        tol: Unit-circle tolerance of the root condition.

    Returns:
        A :class:`ModelSchemeReport`.

    Raises:
        ValueError: If the model has no multistep scheme, an entry misses ``block``, ``a`` or ``b``, or ``tol`` is
            not in [0, 1).
    """
    tol = _check_tol(tol)
    name = _model_name(model)
    get_coefficients = getattr(model, "block_coefficients", None)
    if not callable(get_coefficients):
        raise ValueError(
            f"model {name} has no multistep scheme: it does not implement block_coefficients(); "
            "use a ZeroSNet, LM-ResNet, PreResNet or tau-ResNet model from timm_zerosnet."
        )
    entries = list(get_coefficients())
    if not entries:
        raise ValueError(f"model {name} has no multistep scheme: block_coefficients() returned no blocks.")
    blocks = []
    for i, entry in enumerate(entries):
        fields = {}
        for key in ("block", "a", "b", "param"):
            if isinstance(entry, Mapping):
                present, value = key in entry, entry.get(key)
            else:
                present, value = hasattr(entry, key), getattr(entry, key, None)
            if not present and key != "param":
                raise ValueError(
                    f"model {name}: block_coefficients() entry {i} has no {key!r}; each entry needs "
                    "'block', 'a' and 'b' (and 'param' for a scheme with a parameter)."
                )
            fields[key] = value
        param = {str(k): float(v) for k, v in dict(fields["param"] or {}).items()}
        report = analyze_scheme(fields["a"], fields["b"], tol=tol)
        blocks.append(BlockSchemeReport(block=str(fields["block"]), param=param, report=report))
    return ModelSchemeReport(model=name, blocks=tuple(blocks))


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def _as_number(value: Any, what: str) -> Number:
    """Rationals become ``Fraction`` (exact), other reals ``float``; tensors and numpy scalars are accepted."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{what} must be a real number, got the boolean {bool(value)!r}.")
    if isinstance(value, str | bytes | bytearray):  # float('1e3') would parse it: a number read from text by mistake
        raise ValueError(
            f"{what} must be a real number, got the string {value!r}; convert it first (float(text), or "
            "fractions.Fraction(text) for an exact '-9/5')."
        )
    dtype = getattr(value, "dtype", None)  # numpy and torch complex values: float() kept the real part (or overflowed)
    if (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)) or (
        getattr(dtype, "is_complex", False) is True or getattr(dtype, "kind", None) == "c"
    ):
        raise ValueError(
            f"{what} must be a real number, got the complex {value!r}; the schemes here have real coefficients "
            "(pass the real part if the imaginary part is 0)."
        )
    if isinstance(value, numbers.Rational):
        number = Fraction(int(value.numerator), int(value.denominator))
        if not _fits_float(number):
            raise ValueError(_too_large(what, number))
        return number
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a real number, got {value!r}.") from None
    except OverflowError:
        raise ValueError(_too_large(what, value)) from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}.")
    return number


def _as_rational(value: Number) -> Fraction:
    """A float as the shortest decimal that prints as it (0.9 is 9/10, not 0.90000000000000002220...), so that a grid
    from float bounds hits the decimals they name; rationals as they are."""
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _too_large(what: str, value: Any) -> str:
    return (
        f"{what} = {_brief(value)} is not a finite float: the roots are computed in floating point, so its "
        f"magnitude must be at most {sys.float_info.max:.6g}; give a smaller value."
    )


def _fits_float(value: Number) -> bool:
    """Whether ``float(value)`` is finite (an exact ``Fraction(10**400)`` overflows)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _brief(value: Any) -> str:
    """A number for an error message, 6 significant digits, also beyond the float range (``Fraction(10**400)``)."""
    if isinstance(value, numbers.Rational):
        context = decimal.Context(prec=6, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
        quotient = context.divide(decimal.Decimal(int(value.numerator)), decimal.Decimal(int(value.denominator)))
        return format(quotient.normalize(context), "g")
    return repr(value)


def _check_tol(tol: Any, what: str = "tol") -> float:
    """A tolerance as a float in [0, 1): NaN would make every comparison false and pass unstable roots."""
    try:
        value = float(tol)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if not 0 <= value < 1:
        raise ValueError(
            f"{what} = {tol!r} is not a valid tolerance: it must be a finite number with 0 <= {what} < 1 "
            f"(the default is {DEFAULT_TOL:g})."
        )
    return value


def _as_numbers(values: Any, what: str) -> list[Number]:
    if isinstance(values, str | bytes | bytearray):  # a Sequence, but of characters, not coefficients
        raise ValueError(f"{what} must be a sequence of coefficients, got {values!r}.")
    if isinstance(values, AbstractSet | Mapping):  # iterable, but not in the order a_0, a_1, ...
        kind = "mapping" if isinstance(values, Mapping) else "set"
        raise ValueError(
            f"{what} must be an ordered sequence of coefficients ({what}_0, {what}_1, ...), got a {kind} {values!r}; "
            "pass a list or tuple."
        )
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ValueError(
            f"{what} must be a one-dimensional sequence of coefficients, got an array of shape {values.shape}; "
            "pass a list, tuple or 1-D array."
        )
    if not isinstance(values, Sequence | np.ndarray):
        try:
            values = list(values)
        except TypeError:
            raise ValueError(f"{what} must be a sequence of coefficients, got {values!r}.") from None
    return [_as_number(v, f"{what}[{j}]") for j, v in enumerate(values)]


def _pad(a: list[Number], b: list[Number]) -> tuple[list[Number], list[Number]]:
    k = max(len(a), len(b))
    # Fraction zeros keep an all-rational scheme exact (an int 0 would switch the checks to float tolerances).
    return a + [Fraction(0)] * (k - len(a)), b + [Fraction(0)] * (k - len(b))


def _clean(z: complex) -> complex:
    """Drop imaginary parts at rounding level so real roots print as real, and real parts of complex roots so that
    +-i prints as +-1j (not -3.5e-17+1j)."""
    level = 1e-12 * max(1.0, abs(z))
    if abs(z.imag) <= level:
        return complex(z.real, 0.0)
    return complex(0.0 if abs(z.real) <= level else z.real, z.imag)


def _rounding(z: complex) -> float:
    """How far from its exact value a computed root ``z`` may lie through rounding alone."""
    return _ROUNDING * max(1.0, abs(z))


#: Computed roots within this distance of the unit circle are refined (see :func:`_polish`): only they can be judged
#: differently through rounding.
_POLISH_BAND = 2.0**-10


def _polish(poly: list[Fraction], z: complex, roots: np.ndarray) -> complex:
    """A computed simple root ``z`` of ``poly`` near the unit circle, refined by Newton steps evaluated in exact
    rational arithmetic, so that it lies within float rounding of the exact root; ``z`` itself elsewhere, and where a
    step would take it halfway to another computed root. numpy's roots next to a close root are off by much more than
    rounding: at lambda = 0.334 (near the triple root 1 of lambda = 1/3) the spurious roots, and the root -1 of
    (z - 1)(z + 1)(z + 0.999) came out as -1 - 1.5e-13, which the root condition took for a root outside the circle."""
    if abs(abs(z) - 1) > _POLISH_BAND or not poly:
        return z
    others = np.delete(roots, int(np.argmin(np.abs(roots - z))))
    reach = 0.5 * float(np.min(np.abs(others - z))) if others.size else math.inf
    w = z
    try:
        for _ in range(12):
            x, y = Fraction(w.real), Fraction(w.imag)
            pr = pi = dr = di = Fraction(0)
            for c in poly:  # Horner for rho and rho' at x + iy
                dr, di = dr * x - di * y + pr, dr * y + di * x + pi
                pr, pi = pr * x - pi * y + c, pr * y + pi * x
            den = dr * dr + di * di
            if den == 0:
                return z
            new = w - complex(float((pr * dr + pi * di) / den), float((pi * dr - pr * di) / den))
            if new == w:
                break
            w = new
    except OverflowError:
        return z
    return w if abs(w - z) <= reach else z


class _Root(NamedTuple):
    """A distinct root of rho: its value, its computed copies (as many as its multiplicity) and how far from the
    exact root the value may lie (rounding for a simple root; more for a multiple root of float coefficients)."""

    value: complex
    copies: tuple[complex, ...]
    margin: float


def _root_condition(groups: list[_Root], tol: float) -> tuple[bool, str]:
    """The verdict on the distinct roots of :func:`_roots_and_groups`. Only the test for a root outside the circle
    depends on tol (and admits more as tol grows); a repeated root fails on the circle up to its margin, whatever tol,
    so that a larger tol never turns a verdict from stable to unstable."""
    outside = [g.value for g in groups if abs(g.value) > 1 + max(tol, g.margin)]
    if outside:
        worst = max(outside, key=abs)
        return False, f"root {_fmt(worst)} lies outside the unit circle (|z| = {_fmt_modulus(abs(worst))})"
    repeated = [g.value for g in groups if len(g.copies) > 1 and abs(g.value) >= 1 - g.margin]
    if repeated:
        return False, f"repeated root {_fmt(repeated[0])} on the unit circle"
    admitted = [abs(g.value) for g in groups if abs(g.value) > 1 + g.margin]
    if admitted:  # admitted only by a tolerance looser than rounding: say so
        return True, (
            f"every root has |z| <= 1 + tol = {_fmt_modulus(1 + tol)}, those on the unit circle simple; the largest, "
            f"|z| = {_fmt_modulus(max(admitted))}, lies outside the unit circle by less than tol"
        )
    return True, "all roots in the closed unit disc, those on the unit circle simple"


def _roots_and_groups(a: Sequence[Number]) -> tuple[np.ndarray, list[_Root]]:
    """The roots of rho (as :func:`polynomial_roots`) and its distinct roots with their copies: exact (gcds) for
    rational coefficients; for float ones the computed roots that are copies of one multiple root (see
    :func:`_float_root_groups`). Neither depends on the tolerance of the root condition."""
    poly = characteristic_polynomial(a)
    floats = [float(c) for c in poly]
    if all(isinstance(c, Fraction) for c in poly):
        groups = [_Root(z, (z,) * mult, _rounding(z)) for z, mult in _exact_root_groups(list(poly))]
        roots = np.array([z for g in groups for z in g.copies], dtype=complex)
        _check_roots(floats, roots)
        return roots, groups
    roots = np.roots(floats).astype(complex)
    _check_roots(floats, roots)
    groups = _float_root_groups(floats, roots)
    exact = [Fraction(c) for c in floats]
    principal = None
    if float(np.prod(np.abs(1 - roots) / (1 + np.abs(roots)))) <= _ROUNDING:  # rho(1) = 0 up to rounding (split_roots)
        principal = min(range(len(groups)), key=lambda i: abs(groups[i].value - 1))
    for i, g in enumerate(groups):
        if len(g.copies) == 1:
            # the root of a consistent scheme at 1 is exactly 1, as split_roots reports it: numpy put it at 1 + 1.5e-13
            # for LM-ResNet k = -0.999 and at 1 + 2e-9 for ZeroSNet lambda = 1/3 + 1e-7 (next to close roots), which
            # the root condition took for a root outside the unit circle
            value = 1 + 0j if i == principal else _polish(exact, g.value, roots)
            groups[i] = _Root(value, (value,), _rounding(value))
    return np.array([z for g in groups for z in g.copies], dtype=complex), groups


def _check_roots(poly: list[float], roots: np.ndarray) -> None:
    """Refuse roots that numpy got wrong: with coefficients spanning hundreds of orders of magnitude (1e308 next to 1)
    the companion matrix loses the small roots entirely, and the verdict would rest on made-up roots."""
    residuals = [abs(value) / bound for value, bound in (_taylor(poly, complex(z), 0) for z in roots)]
    worst = int(np.argmax(residuals))
    if residuals[worst] <= _RESIDUAL:  # also False for NaN
        return
    sizes = [abs(c) for c in poly if c]
    raise ValueError(
        f"the roots of rho cannot be computed accurately in floating point: its coefficients range from "
        f"{min(sizes):.3g} to {max(sizes):.3g} in magnitude, and the computed root {_fmt(roots[worst])} leaves "
        f"|rho(z)| at {residuals[worst]:.2g} of their size instead of rounding level; give coefficients of less "
        "extreme magnitudes."
    )


def _taylor(poly: list[float], z: complex, j: int) -> tuple[complex, float]:
    """The Taylor coefficient ``t_j = rho^(j)(z) / j!`` of rho at ``z`` and the same sum over coefficient magnitudes,
    both times ``s^j`` (``s = max(1, |z|)``) and divided by ``s^n`` and the largest coefficient, so that nothing
    overflows. ``|t_j| / bound`` is about the relative change of the coefficients that makes ``t_j`` vanish; a
    coefficient below eps times the largest counts as that size (a tiny constant term is noise next to it)."""
    n = len(poly) - 1
    s = max(1.0, abs(z))
    u = z / s
    top = max(abs(c) for c in poly)
    value, bound = 0j, 0.0
    for i, c in enumerate(poly[: n - j + 1]):  # the term c z^d with d = n - i, scaled by s^-n / top
        weight = math.comb(n - i, j) * s**-i
        value += c / top * weight * u ** (n - i - j)
        bound += max(abs(c) / top, sys.float_info.epsilon) * weight * abs(u) ** (n - i - j)
    return value, bound


def _multiple_root(poly: list[float], copies: np.ndarray) -> _Root | None:
    """The copies as one root of multiplicity ``m = len(copies)``, or ``None`` when they are distinct roots.

    They are one root when the coefficients lie within :data:`_MULTIPLE` of a polynomial with an m-fold root at
    their center: every Taylor coefficient t_0 .. t_(m-1) there vanishes to that precision. The center is the mean
    of the copies after one Newton step on rho^(m-1) (the mean of a split multiple root is accurate, its copies only to
    about eps^(1/m)); its margin is how far a perturbation of the coefficients by :data:`_MULTIPLE` moves it.
    """
    m = len(copies)
    center = complex(np.mean(copies))
    if m == 1:
        return _Root(center, (center,), _rounding(center))
    lead, below = _taylor(poly, center, m)[0], _taylor(poly, center, m - 1)[0]
    if lead == 0:
        return None
    center -= max(1.0, abs(center)) * below / (m * lead)
    if any(abs(t) > _MULTIPLE * bound for t, bound in (_taylor(poly, center, j) for j in range(m))):
        return None
    lead, (_, bound) = _taylor(poly, center, m)[0], _taylor(poly, center, m - 1)
    if lead == 0:
        return None
    margin = _MULTIPLE * bound / (m * abs(lead)) * max(1.0, abs(center))
    return _Root(center, tuple(complex(z) for z in copies), max(margin, _rounding(center)))


def _float_root_groups(poly: list[float], roots: np.ndarray) -> list[_Root]:
    """The distinct roots among the computed roots of float coefficients: each root with the most of its nearest
    neighbours (within half its size) that :func:`_multiple_root` takes as copies of one multiple root."""
    left = list(range(len(roots)))
    groups = []
    while left:
        first = roots[left[0]]

        def distance(j: int, first: complex = first) -> float:
            return abs(roots[j] - first) / max(1.0, abs(first), abs(roots[j]))

        near = sorted((j for j in left if distance(j) <= 0.5), key=distance)
        for m in range(len(near), 0, -1):
            group = _multiple_root(poly, roots[near[:m]])
            if group is not None:
                break
        groups.append(group)
        left = [j for j in left if j not in near[:m]]
    return groups


def _exact_root_groups(poly: list[Fraction]) -> list[tuple[complex, int]]:
    """Distinct roots of an exact polynomial with their multiplicities.

    The root 1 is divided out exactly first (it is the principal root of every consistent scheme); the rest is
    split by the classic gcd chain g_0 = p, g_i = gcd(g_{i-1}, g_{i-1}'): h_i = g_{i-1} / g_i holds each root of
    multiplicity >= i once, so h_i / h_{i+1} holds the roots of multiplicity exactly i, found numerically.
    """
    groups: list[tuple[complex, int]] = []
    mult_one = 0
    while len(poly) > 1 and sum(poly) == 0:
        poly = _poly_div(poly, [Fraction(1), Fraction(-1)])
        mult_one += 1
    if mult_one:
        groups.append((1 + 0j, mult_one))
    chain = [poly]
    while len(chain[-1]) > 1:
        chain.append(_poly_gcd(chain[-1], _poly_derivative(chain[-1])))
    squarefree = [_poly_div(chain[i - 1], chain[i]) for i in range(1, len(chain))]
    squarefree.append([Fraction(1)])
    for i in range(1, len(squarefree)):
        exactly_i = _poly_div(squarefree[i - 1], squarefree[i])
        if len(exactly_i) > 1:
            found = np.roots([float(c) for c in exactly_i]).astype(complex)
            groups += [(_polish(exactly_i, complex(z), found), i) for z in found]  # simple roots of exactly_i
    return groups


def _poly_derivative(p: list[Fraction]) -> list[Fraction]:
    return [c * (len(p) - 1 - i) for i, c in enumerate(p[:-1])]


def _poly_div(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
    """Exact quotient of two polynomials (highest degree first) when q divides p."""
    rem = list(p)
    quotient = []
    while len(rem) >= len(q):
        factor = rem[0] / q[0]
        quotient.append(factor)
        for i in range(len(q)):
            rem[i] -= factor * q[i]
        rem = rem[1:]
    return quotient or [Fraction(0)]


def _poly_gcd(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
    """Monic gcd of two polynomials with exact rational coefficients (highest degree first)."""

    def strip(x: list[Fraction]) -> list[Fraction]:
        while x and x[0] == 0:
            x = x[1:]
        return x

    p, q = strip(p), strip(q)
    while q:
        r = list(p)
        while r and len(r) >= len(q):
            factor = r[0] / q[0]
            for i in range(len(q)):
                r[i] -= factor * q[i]
            r = strip(r)
        p, q = q, r
    return [c / p[0] for c in p] if p else [Fraction(1)]


def _fmt(z: complex) -> str:
    z = _clean(complex(z))
    if z.imag == 0:
        return f"{z.real:.6g}"
    return f"{z.real:.6g}{z.imag:+.6g}j"


def _fmt_modulus(m: float) -> str:
    """A modulus above 1 as it prints without looking like 1: ``1 + 1.2e-08`` where six digits would round."""
    return f"{m:.6g}" if m >= 1.0001 else f"1 + {m - 1:.2g}"


def _model_name(model: Any) -> str:
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, Mapping) and cfg.get("architecture"):
        return str(cfg["architecture"])
    return type(model).__name__
