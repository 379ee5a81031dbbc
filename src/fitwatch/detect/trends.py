"""Trend kernels: pure functions over plain numbers (standard library only).

Each kernel ignores non-finite values (NaN, inf) rather than raising: a series from a diverging run
must still be readable. Detectors build on these; they never re-implement them.

>>> theil_sen_slope([1.0, 2.0, 3.0, 40.0, 5.0])
1.0
>>> round(mann_kendall([1, 2, 3, 4, 5, 6, 7, 8]).p_increasing, 6)   # 1 / 8!
2.5e-05
>>> ema([1.0, 1.0, 1.0], alpha=0.1)   # bias-corrected: a constant stays constant from the first value
[1.0, 1.0, 1.0]
>>> relative_improvement(best=2.0, current=1.5, mode="min")
0.25
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist, median

__all__ = [
    "EMA",
    "MannKendall",
    "ema",
    "finite",
    "mann_kendall",
    "relative_improvement",
    "robust_noise",
    "theil_sen_slope",
]

_NORMAL = NormalDist()
#: Up to this many points, Mann-Kendall p-values are exact (inversion-count distribution); beyond, normal.
EXACT_MK_MAX_N = 60


def finite(values: Iterable[float]) -> list[float]:
    """The finite values of ``values``, in order.

    >>> finite([1.0, float("nan"), 2.0, float("inf")])
    [1.0, 2.0]
    """
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """Bias-corrected exponential moving average (Adam-style correction, Kingma & Ba 2015).

    ``m_t = (1 - alpha) m_{t-1} + alpha x_t``, reported as ``m_t / (1 - (1 - alpha)^t)`` so the first
    values are not pulled towards zero. Non-finite inputs leave the average unchanged (and are repeated).

    Raises:
        ValueError: If ``alpha`` is not in (0, 1].
    """
    tracker = EMA(alpha)
    return [tracker.update(v) for v in values]


class EMA:
    """Incremental bias-corrected EMA; :func:`ema` over a stream.

    >>> e = EMA(0.5)
    >>> [e.update(v) for v in (2.0, 4.0)]
    [2.0, 3.3333333333333335]
    """

    def __init__(self, alpha: float) -> None:
        if not (isinstance(alpha, (int, float)) and 0.0 < alpha <= 1.0):
            raise ValueError(f"Expected `alpha` to be a float in (0, 1], but got {alpha!r}.")
        self.alpha = float(alpha)
        self.reset()

    def reset(self) -> None:
        self._m = 0.0
        self._weight = 0.0  # 1 - (1 - alpha)^t over the finite values seen

    @property
    def value(self) -> float:
        return self._m / self._weight if self._weight > 0 else math.nan

    def update(self, x: float) -> float:
        x = float(x)
        if math.isfinite(x):
            self._m = (1.0 - self.alpha) * self._m + self.alpha * x
            self._weight = (1.0 - self.alpha) * self._weight + self.alpha
        return self.value

    def state_dict(self) -> dict[str, float]:
        return {"m": self._m, "weight": self._weight}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self._m = float(state.get("m", 0.0))
        self._weight = float(state.get("weight", 0.0))


def theil_sen_slope(y: Sequence[float], x: Sequence[float] | None = None) -> float:
    """Theil-Sen slope: the median of all pairwise slopes (Sen 1968). Robust to ~29% outliers.

    Args:
        y: Values; non-finite ones are dropped together with their ``x``.
        x: Positions; ``0, 1, 2, ...`` when omitted.

    Returns:
        The slope per unit of ``x``, or NaN with fewer than two finite points.
    """
    xs = range(len(y)) if x is None else x
    pts = [(float(a), float(b)) for a, b in zip(xs, y) if _isfinite(a) and _isfinite(b)]
    slopes = [
        (pts[j][1] - pts[i][1]) / (pts[j][0] - pts[i][0])
        for i in range(len(pts))
        for j in range(i + 1, len(pts))
        if pts[j][0] != pts[i][0]
    ]
    return float(median(slopes)) if slopes else math.nan


@dataclass(frozen=True)
class MannKendall:
    """Result of :func:`mann_kendall`."""

    n: int
    s: int
    tau: float
    p_increasing: float
    p_decreasing: float


def mann_kendall(y: Sequence[float]) -> MannKendall:
    """Mann-Kendall trend test (Mann 1945; Kendall 1975), both one-sided p-values.

    ``S = sum_{i<j} sign(y_j - y_i)``. Without ties and for ``n <= EXACT_MK_MAX_N`` the p-values are
    exact, from the distribution of the number of inversions of a random permutation (the Mahonian
    numbers); with ties or more points, the normal approximation with the tie-corrected variance and
    a continuity correction. Fewer than 3 finite points give p-values of 1.
    """
    v = finite(y)
    n = len(v)
    if n < 3:
        return MannKendall(n=n, s=0, tau=0.0, p_increasing=1.0, p_decreasing=1.0)
    s = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            d = v[j] - v[i]
            s += (d > 0) - (d < 0)
    pairs = n * (n - 1) // 2
    tau = s / pairs
    ties = _tie_groups(v)
    if not ties and n <= EXACT_MK_MAX_N:
        p_inc = _exact_upper_tail(n, s)
        p_dec = _exact_upper_tail(n, -s)
    else:
        var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18.0
        if var <= 0:
            return MannKendall(n=n, s=s, tau=tau, p_increasing=1.0, p_decreasing=1.0)
        sd = math.sqrt(var)
        p_inc = 1.0 - _NORMAL.cdf((s - 1) / sd) if s > 0 else 1.0 - _NORMAL.cdf((s + 1) / sd) if s < 0 else 0.5
        p_dec = 1.0 - _NORMAL.cdf((-s - 1) / sd) if s < 0 else 1.0 - _NORMAL.cdf((-s + 1) / sd) if s > 0 else 0.5
        p_inc, p_dec = min(1.0, max(0.0, p_inc)), min(1.0, max(0.0, p_dec))
    return MannKendall(n=n, s=s, tau=tau, p_increasing=p_inc, p_decreasing=p_dec)


def relative_improvement(best: float, current: float, mode: str = "min") -> float:
    """How much better ``current`` is than ``best``, relative to ``|best|`` (ReduceLROnPlateau's "rel").

    Positive means improvement. With ``best == 0`` the absolute difference is returned.

    Raises:
        ValueError: If ``mode`` is not ``"min"`` or ``"max"``.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"Expected `mode` to be 'min' or 'max', but got {mode!r}.")
    diff = (best - current) if mode == "min" else (current - best)
    scale = abs(best)
    return diff / scale if scale > 0 else diff


def robust_noise(y: Sequence[float]) -> float:
    """Noise level of a series around its trend: 1.4826 x the median absolute deviation of the
    first differences, divided by sqrt(2) (the differences of i.i.d. noise have twice its variance).

    Estimates the standard deviation of i.i.d. noise even when the series has a slow trend.
    Returns NaN with fewer than 3 finite points.

    >>> robust_noise([1.0, 1.0, 1.0, 1.0])
    0.0
    """
    v = finite(y)
    if len(v) < 3:
        return math.nan
    diffs = [b - a for a, b in zip(v, v[1:])]
    med = median(diffs)
    mad = median(abs(d - med) for d in diffs)
    return 1.4826 * mad / math.sqrt(2.0)


def _isfinite(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _tie_groups(v: Sequence[float]) -> list[int]:
    counts: dict[float, int] = {}
    for x in v:
        counts[x] = counts.get(x, 0) + 1
    return [c for c in counts.values() if c > 1]


@lru_cache(maxsize=None)
def _inversion_counts(n: int) -> tuple[int, ...]:
    """Number of permutations of n elements with k inversions, k = 0..n(n-1)/2 (Mahonian numbers)."""
    counts = [1]
    for m in range(2, n + 1):  # insert element m: adds 0..m-1 inversions
        new = [0] * (len(counts) + m - 1)
        window = 0
        for k in range(len(new)):
            if k < len(counts):
                window += counts[k]
            if k - m >= 0:
                window -= counts[k - m]
            new[k] = window
        counts = new
    return tuple(counts)


def _exact_upper_tail(n: int, s: int) -> float:
    """P(S >= s) under H0 (all orderings equally likely, no ties). S = pairs - 2 * inversions."""
    counts = _inversion_counts(n)
    pairs = n * (n - 1) // 2
    # S >= s  <=>  inversions <= (pairs - s) / 2
    k_max = math.floor((pairs - s) / 2)
    if k_max < 0:
        return 0.0
    total = math.factorial(n)
    return min(1.0, sum(counts[: k_max + 1]) / total)
