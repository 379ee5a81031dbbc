"""Trend kernels against independent references: scipy.stats, numpy, and the papers' formulas written out."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from fitwatch.detect.trends import (
    EMA,
    ema,
    finite_or_none,
    generalization_loss,
    mann_kendall,
    relative_improvement,
    rise_since_best,
    robust_noise,
    theil_sen_slope,
    training_progress,
    trimmed_noise,
    two_proportion_z,
)

NAN, INF = math.nan, math.inf


# ---------------------------------------------------------------------------------- existing kernels


@pytest.mark.parametrize("seed", range(5))
def test_theil_sen_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    y = np.cumsum(rng.normal(size=25)) + 0.3 * np.arange(25)
    assert theil_sen_slope(list(y)) == pytest.approx(stats.theilslopes(y).slope, rel=1e-12)


@pytest.mark.parametrize("n", [3, 5, 8, 12])
@pytest.mark.parametrize("seed", range(4))
def test_mann_kendall_exact_p_matches_scipy_kendall_tau(n, seed):
    """Without ties, MK's S is Kendall's tau against time; scipy's exact tau test gives the same p-values."""
    y = list(np.random.default_rng(seed * 100 + n).permutation(n) + 0.5)
    mk = mann_kendall(y)
    assert mk.p_increasing == pytest.approx(
        stats.kendalltau(range(n), y, method="exact", alternative="greater").pvalue
    )
    assert mk.p_decreasing == pytest.approx(
        stats.kendalltau(range(n), y, method="exact", alternative="less").pvalue
    )


def test_ema_matches_the_bias_corrected_formula():
    xs, alpha = [3.0, 1.0, NAN, 4.0, 1.0], 0.3
    m, t, expected = 0.0, 0, []
    for x in xs:
        if math.isfinite(x):
            t += 1
            m = (1 - alpha) * m + alpha * x
        expected.append(m / (1 - (1 - alpha) ** t))
    assert ema(xs, alpha) == pytest.approx(expected)
    tracker = EMA(alpha)
    for x in xs[:3]:
        tracker.update(x)
    restored = EMA(alpha)
    restored.load_state_dict(tracker.state_dict())
    assert [restored.update(x) for x in xs[3:]] == pytest.approx(expected[3:])


def test_relative_improvement_both_modes():
    assert relative_improvement(2.0, 1.5, mode="min") == pytest.approx(0.25)
    assert relative_improvement(2.0, 2.5, mode="max") == pytest.approx(0.25)
    assert relative_improvement(0.0, -1.0) == pytest.approx(1.0)  # best 0: absolute difference


# ---------------------------------------------------------------------------------- added kernels


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.5, 0.5),
        (NAN, None),
        (INF, None),
        (-INF, None),
        (None, None),
        ("abc", None),
        (True, None),
        (np.float32(2.5), 2.5),
    ],
)
def test_finite_or_none(value, expected):
    assert finite_or_none(value) == expected


@pytest.mark.parametrize(
    ("current", "best", "expected"),
    [
        (0.538, 0.412, 100 * (0.538 / 0.412 - 1)),
        (0.5, 0.5, 0.0),
        (0.4, 0.5, -20.0),
        (1.0, 0.0, NAN),
        (NAN, 0.5, NAN),
        (1.0, -1.0, NAN),
    ],
)
def test_generalization_loss_is_prechelts_formula(current, best, expected):
    got = generalization_loss(current, best)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("strip", "expected"),
    [
        ([0.5, 0.4, 0.3, 0.25, 0.2], 1000 * (sum([0.5, 0.4, 0.3, 0.25, 0.2]) / (5 * 0.2) - 1)),
        ([0.2, 0.2], 0.0),
        ([0.3, NAN, 0.2], 1000 * (0.25 / 0.2 - 1)),
        ([0.3], NAN),
        ([0.0, 0.1], NAN),
    ],
)
def test_training_progress_is_prechelts_formula(strip, expected):
    got = training_progress(strip)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def numpy_robust_noise(y, order):
    d = np.diff(np.asarray(y, dtype=float), n=order)
    return 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(math.comb(2 * order, order))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("seed", range(3))
def test_robust_noise_matches_numpy_and_estimates_sigma(order, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(400)
    # A curve that turns (down then up) plus i.i.d. noise of sd 0.05: second differences see only noise.
    y = 0.00002 * (t - 150) ** 2 + rng.normal(scale=0.05, size=t.size)
    assert robust_noise(list(y), order=order) == pytest.approx(numpy_robust_noise(y, order), rel=1e-12)
    if order == 2:
        assert robust_noise(list(y), order=2) == pytest.approx(0.05, rel=0.15)


def numpy_trimmed_noise(y, order, keep):
    d = np.diff(np.asarray(y, dtype=float), n=order)
    dev = np.sort(np.abs(d - np.median(d)))
    k = min(len(dev), max(2, round(keep * len(dev))))
    share = k / len(dev)
    c = stats.norm.ppf(0.5 + share / 2)
    kept = 1 - 2 * c * stats.norm.pdf(c) / share if share < 1 else 1.0
    return math.sqrt(np.mean(dev[:k] ** 2) / kept / math.comb(2 * order, order))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("keep", [0.5, 0.8, 1.0])
def test_trimmed_noise_matches_numpy_and_estimates_sigma(order, keep):
    rng = np.random.default_rng(order * 10 + int(keep * 10))
    t = np.arange(2000)
    y = 0.000002 * (t - 900) ** 2 + rng.normal(scale=0.05, size=t.size)
    assert trimmed_noise(list(y), order=order, keep=keep) == pytest.approx(
        numpy_trimmed_noise(y, order, keep), rel=1e-9
    )
    if order == 2:
        # The truncation correction makes it unbiased for normal noise (the differences are correlated,
        # which changes the spread of the estimate, not its centre).
        assert trimmed_noise(list(y), order=2, keep=keep) == pytest.approx(0.05, rel=0.06)


def test_trimmed_noise_is_robust_to_a_few_outliers_and_tighter_than_the_mad():
    rng = np.random.default_rng(0)
    y = rng.normal(scale=1.0, size=40)
    spiked = y.copy()
    spiked[[10, 25]] += 20.0  # two wild evaluations
    assert trimmed_noise(list(spiked)) < 1.6 * trimmed_noise(list(y))
    trimmed, mad = [], []
    for seed in range(400):
        z = list(np.random.default_rng(seed).normal(size=20))
        trimmed.append(trimmed_noise(z))
        mad.append(robust_noise(z, order=2))
    assert np.std(trimmed) < np.std(mad)  # lower variance: fewer underestimates, fewer false alarms
    assert np.quantile(trimmed, 0.02) > np.quantile(mad, 0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"order": 0}, "Expected `order` to be 1 or 2, but got 0"),
        ({"keep": 0.0}, r"Expected `keep` to be a float in \(0, 1\], but got 0.0"),
        ({"keep": 1.5}, r"Expected `keep` to be a float in \(0, 1\], but got 1.5"),
    ],
)
def test_trimmed_noise_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trimmed_noise([1.0, 2.0, 3.0, 5.0], **kwargs)


def test_robust_noise_second_differences_ignore_a_turn():
    v = [1.0, 0.8, 0.6, 0.4, 0.6, 0.8, 1.0]
    assert robust_noise(v, order=1) > 0.1  # first differences are bimodal (-0.2, +0.2)
    assert robust_noise(v, order=2) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(robust_noise([1.0, 2.0, 3.0], order=2))


def test_robust_noise_rejects_other_orders():
    with pytest.raises(ValueError, match="Expected `order` to be 1 or 2, but got 3"):
        robust_noise([1.0, 2.0, 3.0, 4.0], order=3)


def test_rise_since_best_against_plain_formulas():
    values = [1.0, 0.8, 0.7, None, 0.72, NAN, 0.8, 0.9, 1.0, 1.1]
    r = rise_since_best(values, window=8, noise_factor=4.0, gl_floor=2.0)
    finite = [x for x in values if x is not None and math.isfinite(x)]
    noise_pct = 100 * numpy_trimmed_noise(np.log(finite), 2, 0.8)
    assert (r.best_index, r.best, r.current, r.since_best) == (2, 0.7, 1.1, 7)
    assert r.gl == pytest.approx(100 * (1.1 / 0.7 - 1))
    assert r.noise_pct == pytest.approx(noise_pct)
    assert r.threshold == pytest.approx(max(2.0, 4.0 * noise_pct))
    assert r.p_increasing == pytest.approx(mann_kendall(values[-8:]).p_increasing)


def test_rise_since_best_edge_cases():
    assert rise_since_best([1.0, NAN]) is None
    assert rise_since_best([0.0, 1.0, 2.0]) is None  # non-positive best: GL undefined
    r = rise_since_best([1.0, 0.9, 0.8, NAN])
    assert r.since_best == 1 and math.isnan(r.current) and math.isnan(r.gl)
    assert rise_since_best([1.0, 0.9, 0.8]).noise_pct == 0.0  # too few points for second differences


@pytest.mark.parametrize(
    ("p1", "n1", "p2", "n2"),
    [(0.8, 50, 0.2, 50), (0.95, 300, 0.9, 1000), (0.1, 20, 0.3, 40), (0.5, 10, 0.5, 10)],
)
def test_two_proportion_z_matches_the_pooled_formula(p1, n1, p2, n2):
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    expected = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert two_proportion_z(p1, n1, p2, n2) == pytest.approx(expected)


def test_two_proportion_z_degenerate():
    assert two_proportion_z(1.0, 10, 1.0, 10) == 0.0
    assert math.isnan(two_proportion_z(0.5, 0, 0.5, 10))
    assert math.isnan(two_proportion_z(NAN, 10, 0.5, 10))


def test_two_proportion_z_calibrated_on_binomial_draws():
    """Under equal proportions the statistic exceeds 3 about as often as a standard normal does (0.13%)."""
    rng = random.Random(0)
    hits = sum(
        two_proportion_z(
            sum(rng.random() < 0.7 for _ in range(200)) / 200,
            200,
            sum(rng.random() < 0.7 for _ in range(200)) / 200,
            200,
        )
        >= 3
        for _ in range(2000)
    )
    assert hits <= 12
