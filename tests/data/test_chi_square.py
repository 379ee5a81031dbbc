"""The hand-written chi-square survival function against scipy (a test-only reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from fitwatch.data.chi_square import chi2_sf, regularized_gamma_q


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 10, 30, 99, 500, 5000])
def test_chi2_sf_matches_scipy(dof):
    xs = np.concatenate(
        [np.linspace(0.0, 6.0 * dof + 60.0, 300), [1e-9, 1e-3, dof - 1.0, dof, dof + 1.0, dof + 2.0]]
    )
    for x in xs[xs >= 0]:
        ref = stats.chi2.sf(x, dof)
        got = chi2_sf(float(x), dof)
        if ref > 1e-300:  # below that scipy is in the subnormal range
            assert got == pytest.approx(ref, rel=1e-10, abs=0.0), (x, dof)
        else:
            assert got < 1e-290


@pytest.mark.parametrize("a", [0.05, 0.5, 1.0, 2.5, 17.3, 250.0])
def test_regularized_gamma_q_matches_scipy(a):
    for x in [0.0, 1e-6, 0.1, a / 2, a, a + 1, 2 * a + 5, 10 * a + 50]:
        assert regularized_gamma_q(a, x) == pytest.approx(special.gammaincc(a, x), rel=1e-11, abs=1e-300)


def test_known_values():
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(6.634896601021214, 1) == pytest.approx(0.01, rel=1e-12)
    assert chi2_sf(4.0, 2) == pytest.approx(math.exp(-2.0), rel=1e-14)


@pytest.mark.parametrize(
    ("statistic", "dof", "match"),
    [
        (1.0, 0, "Expected `dof` to be a positive int, but got 0"),
        (1.0, 1.5, "Expected `dof` to be a positive int, but got 1.5"),
        (1.0, True, "Expected `dof` to be a positive int, but got True"),
        (-1.0, 2, "Expected `statistic` to be a non-negative float, but got -1.0"),
        (float("nan"), 2, "Expected `statistic` to be a non-negative float, but got nan"),
    ],
)
def test_chi2_sf_bad_arguments(statistic, dof, match):
    with pytest.raises(ValueError, match=match):
        chi2_sf(statistic, dof)


@pytest.mark.parametrize(
    ("a", "x", "match"),
    [
        (0.0, 1.0, "Expected `a` to be a positive float, but got 0.0"),
        (1.0, -0.5, "Expected `x` to be a non-negative float, but got -0.5"),
        (float("inf"), 1.0, "Expected `a` to be a positive float"),
    ],
)
def test_regularized_gamma_q_bad_arguments(a, x, match):
    with pytest.raises(ValueError, match=match):
        regularized_gamma_q(a, x)
