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
    "Rise",
    "ema",
    "finite",
    "finite_or_none",
    "generalization_loss",
    "mann_kendall",
    "relative_improvement",
    "rise_since_best",
    "robust_noise",
    "theil_sen_slope",
    "training_progress",
    "trimmed_noise",
    "two_proportion_z",
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
        p_inc = (
            1.0 - _NORMAL.cdf((s - 1) / sd) if s > 0 else 1.0 - _NORMAL.cdf((s + 1) / sd) if s < 0 else 0.5
        )
        p_dec = (
            1.0 - _NORMAL.cdf((-s - 1) / sd) if s < 0 else 1.0 - _NORMAL.cdf((-s + 1) / sd) if s > 0 else 0.5
        )
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


def robust_noise(y: Sequence[float], *, order: int = 1) -> float:
    """Noise level of a series around its trend: 1.4826 x the median absolute deviation of the
    ``order``-th differences, divided by the square root of the binomial coefficient C(2 order, order)
    (the ``k``-th differences of i.i.d. noise have C(2k, k) times its variance: 2 for k=1, 6 for k=2).

    Estimates the standard deviation of i.i.d. noise even when the series has a trend: first differences
    remove a level, second differences also a slope, so ``order=2`` stays right on a curve that turns
    (a validation loss going down then up), where the first differences are bimodal.
    Returns NaN with fewer than ``order + 2`` finite points.

    Raises:
        ValueError: If ``order`` is not 1 or 2.

    >>> robust_noise([1.0, 1.0, 1.0, 1.0])
    0.0
    >>> round(robust_noise([1.0, 0.8, 0.6, 0.8, 1.0, 1.2], order=2), 12)   # a clean V: no noise
    0.0
    """
    if order not in (1, 2):
        raise ValueError(f"Expected `order` to be 1 or 2, but got {order!r}.")
    v = finite(y)
    if len(v) < order + 2:
        return math.nan
    diffs = [b - a for a, b in zip(v, v[1:])]
    if order == 2:
        diffs = [b - a for a, b in zip(diffs, diffs[1:])]
    med = median(diffs)
    mad = median(abs(d - med) for d in diffs)
    return 1.4826 * mad / math.sqrt(2.0 if order == 1 else 6.0)


def trimmed_noise(y: Sequence[float], *, order: int = 2, keep: float = 0.8) -> float:
    """Noise level of a series around its trend from the trimmed root mean square of its ``order``-th
    differences: the ``keep`` share of them closest to their median, rescaled for the trimming.

    For normal noise the kept values are the central ``keep`` of the distribution, whose variance is
    ``1 - 2 c phi(c) / keep`` times the full one (``c`` the two-sided ``keep`` quantile); dividing by it
    and by C(2 order, order) (see :func:`robust_noise`) gives the noise's standard deviation. Trimming 20%
    keeps it robust to a few large differences (the turn of a curve, an outlier) while using 80% of the
    values: on 20-40 points its 2nd percentile is ~0.5-0.65 of the truth against ~0.45-0.6 for the median
    absolute deviation, and an underestimated noise is what makes a noise-scaled threshold false-alarm.
    Returns NaN with fewer than ``order + 2`` finite points.

    Raises:
        ValueError: If ``order`` is not 1 or 2, or ``keep`` is not in (0, 1].

    >>> round(trimmed_noise([1.0, 0.8, 0.6, 0.4, 0.6, 0.8, 1.0]), 12)   # a clean turn: no noise
    0.0
    >>> round(trimmed_noise([0.0, 1.0] * 10 + [0.0], order=1, keep=1.0), 3)   # differences +-1: 1 / sqrt(2)
    0.707
    """
    if order not in (1, 2):
        raise ValueError(f"Expected `order` to be 1 or 2, but got {order!r}.")
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0.0 < keep <= 1.0:
        raise ValueError(f"Expected `keep` to be a float in (0, 1], but got {keep!r}.")
    v = finite(y)
    if len(v) < order + 2:
        return math.nan
    diffs = [b - a for a, b in zip(v, v[1:])]
    if order == 2:
        diffs = [b - a for a, b in zip(diffs, diffs[1:])]
    med = median(diffs)
    dev = sorted(abs(d - med) for d in diffs)
    k = min(len(dev), max(2, round(keep * len(dev))))
    share = k / len(dev)
    if share < 1.0:
        c = _NORMAL.inv_cdf(0.5 + share / 2.0)
        kept_variance = 1.0 - 2.0 * c * _NORMAL.pdf(c) / share
    else:
        kept_variance = 1.0
    return math.sqrt(sum(d * d for d in dev[:k]) / k / kept_variance) / math.sqrt(2.0 if order == 1 else 6.0)


def finite_or_none(value: object) -> float | None:
    """``value`` as a float when it is a finite number, else ``None``.

    Detectors keep their histories as lists of these: ``None`` marks a missing or non-finite value,
    survives a JSON round trip (NaN does not, in strict JSON) and is skipped by every kernel here.

    >>> finite_or_none(2), finite_or_none(float("nan")), finite_or_none(None), finite_or_none("x")
    (2.0, None, None, None)
    """
    if isinstance(value, bool):
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def generalization_loss(current: float, best: float) -> float:
    """Prechelt's (1998) generalization loss in percent: ``GL = 100 (E_va / E_opt - 1)``.

    ``E_opt`` is the lowest validation error so far. Defined for positive errors; NaN otherwise.

    >>> round(generalization_loss(0.538, 0.412), 2)
    30.58
    >>> generalization_loss(1.0, 0.0)
    nan
    """
    cur, opt = finite_or_none(current), finite_or_none(best)
    if cur is None or opt is None or opt <= 0:
        return math.nan
    return 100.0 * (cur / opt - 1.0)


def training_progress(strip: Sequence[float]) -> float:
    """Prechelt's (1998) training progress over a strip of ``k`` training errors, in per mille.

    ``P_k = 1000 (sum(strip) / (k min(strip)) - 1)``: how much larger the strip's mean is than its
    minimum. High while training still makes progress, near 0 once training error is flat.
    NaN with fewer than 2 finite values or a non-positive minimum.

    >>> round(training_progress([0.5, 0.4, 0.3, 0.25, 0.2]), 6)
    650.0
    >>> training_progress([0.2, 0.2, 0.2])
    0.0
    """
    v = finite(strip)
    if len(v) < 2 or min(v) <= 0:
        return math.nan
    return 1000.0 * (sum(v) / (len(v) * min(v)) - 1.0)


@dataclass(frozen=True)
class Rise:
    """Result of :func:`rise_since_best`: how far and how consistently a series rose above its minimum.

    Attributes:
        best_index: Position of the lowest finite value (the first one on ties).
        best: That value.
        current: The last value (NaN when it is not finite).
        since_best: Number of positions after ``best_index`` (0 when the last value is the best).
        gl: :func:`generalization_loss` of ``current`` against ``best``, percent.
        noise_pct: :func:`trimmed_noise` of the logarithm (second differences), i.e. the relative noise,
            in percent; 0 with fewer than 4 finite values.
        threshold: The GL threshold: ``max(gl_floor, noise_factor * noise_pct)``.
        p_increasing: One-sided Mann-Kendall p-value of an increase over the last ``window`` values.
    """

    best_index: int
    best: float
    current: float
    since_best: int
    gl: float
    noise_pct: float
    threshold: float
    p_increasing: float


def rise_since_best(
    values: Sequence[float | None],
    *,
    window: int = 8,
    noise_factor: float = 4.0,
    gl_floor: float = 2.0,
) -> Rise | None:
    """How far a positive series (a validation loss) rose above its best, measured against its own noise.

    Prechelt's GL says how far; a fixed GL threshold is wrong because validation losses differ in
    noise, so the threshold is ``noise_factor`` times the series' own relative noise
    (:func:`robust_noise`, percent of the best value), never below ``gl_floor`` percent (Prechelt's GL2).
    The one-sided Mann-Kendall p-value over the last ``window`` values says whether the rise is a trend.

    Args:
        values: The series, oldest first; ``None`` and non-finite entries are skipped.
        window: How many of the last values the Mann-Kendall test reads.
        noise_factor: GL threshold in units of the relative noise.
        gl_floor: Smallest GL threshold, percent.

    Returns:
        The :class:`Rise`, or ``None`` with fewer than 3 finite values or a non-positive best.

    >>> r = rise_since_best([1.0, 0.8, 0.7, 0.72, 0.8, 0.9, 1.0, 1.1])
    >>> r.best_index, r.since_best, round(r.gl, 1), round(r.noise_pct, 1), round(r.threshold, 1)
    (2, 5, 57.1, 2.7, 10.6)
    """
    pts = [(i, f) for i, v in enumerate(values) if (f := finite_or_none(v)) is not None]
    if len(pts) < 3:
        return None
    best_index, best = min(pts, key=lambda p: p[1])
    if best <= 0:
        return None
    last = finite_or_none(values[-1]) if values else None
    current = math.nan if last is None else last
    # Relative noise from the logarithm: validation-loss noise scales with the loss level.
    noise = trimmed_noise([math.log(f) for _, f in pts])
    noise_pct = 100.0 * noise if math.isfinite(noise) else 0.0
    threshold = max(gl_floor, noise_factor * noise_pct)
    return Rise(
        best_index=best_index,
        best=best,
        current=current,
        since_best=len(values) - 1 - best_index,
        gl=generalization_loss(current, best),
        noise_pct=noise_pct,
        threshold=threshold,
        p_increasing=mann_kendall(values[-window:]).p_increasing,  # type: ignore[arg-type]
    )


def two_proportion_z(p1: float, n1: float, p2: float, n2: float) -> float:
    """z statistic of ``p1 - p2`` for two binomial proportions, with the pooled variance.

    Positive when ``p1 > p2``. 0 when the pooled proportion is 0 or 1 (no variance), NaN when a count
    is not positive or a value is not finite.

    >>> round(two_proportion_z(0.8, 50, 0.2, 50), 2)
    6.0
    """
    vals = [finite_or_none(x) for x in (p1, n1, p2, n2)]
    if any(x is None for x in vals):
        return math.nan
    a, na, b, nb = vals  # type: ignore[misc]
    if na <= 0 or nb <= 0:
        return math.nan
    pooled = (a * na + b * nb) / (na + nb)
    var = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)
    return (a - b) / math.sqrt(var) if var > 0 else 0.0


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
