"""The chi-square survival function, through the regularized upper incomplete gamma function.

scipy is not a dependency of fitwatch, so the p-value of a chi-square statistic is computed here:
``P(X >= x) = Q(k / 2, x / 2)`` for ``X ~ chi-square(k)``, with ``Q`` the regularized upper incomplete gamma
function, evaluated by its series (for ``x < a + 1``) or its continued fraction with the modified Lentz
method (otherwise), as in Press et al., *Numerical Recipes* (3rd ed., section 6.2). The continued
fraction returns ``Q`` itself, so very small p-values keep their relative precision.

>>> round(chi2_sf(3.841458820694124, 1), 12)   # the 5% critical value of one degree of freedom
0.05
>>> chi2_sf(0.0, 4)
1.0
"""

from __future__ import annotations

import math

__all__ = ["chi2_sf", "regularized_gamma_q"]

#: Relative precision at which the series and the continued fraction stop (double precision).
EPS = 1e-15
#: Smallest magnitude the Lentz recurrence may divide by (Numerical Recipes' FPMIN).
FPMIN = 1e-300
#: Both expansions converge in O(sqrt(a)) terms; this bounds a in the millions.
MAX_ITER = 100_000


def _prefactor(a: float, x: float) -> float:
    return math.exp(-x + a * math.log(x) - math.lgamma(a))


def _p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * EPS:
            break
    return total * _prefactor(a, x)


def _q_continued_fraction(a: float, x: float) -> float:
    b = x + 1.0 - a
    c = 1.0 / FPMIN
    d = 1.0 / b
    h = d
    for i in range(1, MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = FPMIN if abs(d) < FPMIN else d
        c = b + an / c
        c = FPMIN if abs(c) < FPMIN else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < EPS:
            break
    return _prefactor(a, x) * h


def regularized_gamma_q(a: float, x: float) -> float:
    """``Q(a, x) = Gamma(a, x) / Gamma(a)``, the regularized upper incomplete gamma function.

    Args:
        a: Shape, positive.
        x: Lower limit of the integral, non-negative.

    Raises:
        ValueError: If ``a`` is not positive or ``x`` is negative (or either is not finite).

    >>> round(regularized_gamma_q(1.0, 2.0), 15) == round(math.exp(-2.0), 15)   # Q(1, x) = exp(-x)
    True
    """
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"Expected `a` to be a positive float, but got {a!r}.")
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"Expected `x` to be a non-negative float, but got {x!r}.")
    if x == 0.0:
        return 1.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _p_series(a, x))
    return min(1.0, _q_continued_fraction(a, x))


def chi2_sf(statistic: float, dof: int) -> float:
    """Survival function (p-value) of a chi-square statistic with ``dof`` degrees of freedom.

    Args:
        statistic: The chi-square statistic, non-negative.
        dof: Degrees of freedom, positive.

    Raises:
        ValueError: If ``dof`` is not a positive int or ``statistic`` is negative or not finite.

    >>> round(chi2_sf(10.0, 2), 12) == round(math.exp(-5.0), 12)   # with 2 dof, sf(x) = exp(-x / 2)
    True
    """
    if isinstance(dof, bool) or not isinstance(dof, int) or dof <= 0:
        raise ValueError(f"Expected `dof` to be a positive int, but got {dof!r}.")
    if not (math.isfinite(statistic) and statistic >= 0):
        raise ValueError(f"Expected `statistic` to be a non-negative float, but got {statistic!r}.")
    return regularized_gamma_q(dof / 2.0, statistic / 2.0)
