"""FW-CALIBRATION: ECE judged against what chance gives at this set's size and against the run's own
earlier calibration; tables, state round trips and simulated false-alarm / detection rates."""

from __future__ import annotations

import math
import random

import pytest

from fitwatch.detect.calibration import CalibrationDetector
from fitwatch.findings import Severity

from . import simulate as sim

NAN, INF = math.nan, math.inf
RISING = [0.030, 0.025, 0.024, 0.026, 0.052, 0.060, 0.075]


def fired(findings):
    return [i for i, f in enumerate(findings) if f is not None]


def run(ece, chance=0.02, samples=1000, **kwargs):
    n = len(ece)
    records = sim.records_from(val_ece=ece, val_ece_chance=[chance] * n, val_samples=[samples] * n)
    return sim.replay(CalibrationDetector(**kwargs), records)


def test_fires_when_high_and_rising_with_numbers():
    found = run(RISING)
    # Earlier best: the lowest median of three consecutive ECEs, median(0.030, 0.025, 0.024) = 0.025 at
    # epoch 1. Epoch 4 (0.052): high (>= 2.5 x 0.02) and 0.027 above the best (>= max(0.01, 0.02));
    # confirmed at epoch 5.
    assert fired(found) == [5, 6]
    f = found[-1]
    assert (f.code, f.severity) == ("FW-CALIBRATION", Severity.WARNING)
    assert (f.evidence["earlier_best"], f.evidence["earlier_best_epoch"]) == (0.025, 1)
    assert f.evidence["ratio_to_chance"] == pytest.approx(0.075 / 0.02, rel=1e-3)
    assert f.message == (
        "ECE rose to 0.075 from 0.025 around epoch 1, 3.8x the 0.02 a perfectly calibrated model shows on "
        "these "
        "1000 validation samples: predicted confidences no longer match accuracy"
    )


@pytest.mark.parametrize(
    ("ece", "chance", "kwargs", "expected"),
    [
        # The same ECEs on 100 samples (chance 0.08): at chance level, not high.
        (RISING, 0.08, {}, []),
        # High from the start but not rising: the run's own calibration is the reference.
        ([0.08, 0.081, 0.079, 0.08, 0.082, 0.08, 0.081], 0.02, {}, []),
        # Rising but not high enough (below the 0.02 floor and 2 x chance).
        ([0.006, 0.005, 0.005, 0.008, 0.012, 0.016, 0.019], 0.005, {}, []),
        # One bad evaluation is not a trend.
        ([0.03, 0.025, 0.024, 0.026, 0.07, 0.025, 0.026], 0.02, {}, []),
        # A jump, confirmed while it is in the 3-evaluation slope window (epoch 4); once the last three fall
        # (epochs 5, 6) the ECE is high and above its earlier best but no longer rising.
        ([0.03, 0.025, 0.024, 0.09, 0.085, 0.08, 0.075], 0.02, {"window": 3}, [4]),
        # Modest rise: not high for this set size (chance 0.02), but without ece_chance only the floors apply
        # (0.02 high, 0.01 above the best).
        ([0.03, 0.025, 0.024, 0.026, 0.038, 0.039, 0.040], 0.02, {}, []),
        ([0.03, 0.025, 0.024, 0.026, 0.038, 0.039, 0.040], None, {}, [5, 6]),
        # One confirmation: fires as soon as the condition holds.
        (RISING, 0.02, {"confirmations": 1}, [4, 5, 6]),
    ],
)
def test_table(ece, chance, kwargs, expected):
    assert fired(run(ece, chance, **kwargs)) == expected


def test_earlier_best_is_robust_to_one_lucky_evaluation():
    # 0.005 once (a lucky draw) does not become the bar: the median of its neighbours (0.03) does.
    found = run([0.03, 0.005, 0.03, 0.032, 0.05, 0.07, 0.08])
    assert found[-1].evidence["earlier_best"] == pytest.approx(0.03, rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chance_factor": 0.0}, ValueError, "Expected `chance_factor` to be a positive float"),
        ({"min_ece": 1.5}, ValueError, r"Expected `min_ece` to be a float in \[0, 1\]"),
        ({"rise_factor": "1"}, TypeError, "Expected `rise_factor` to be a positive float"),
        ({"min_rise": -0.01}, ValueError, r"Expected `min_rise` to be a float in \[0, 1\]"),
        ({"window": 2}, ValueError, "Expected `window` to be at least 3"),
        ({"confirmations": 0}, ValueError, "Expected `confirmations` to be a positive int"),
    ],
)
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        CalibrationDetector(**kwargs)


@pytest.mark.parametrize("split", [2, 8, 14])
def test_state_round_trip_mid_series(split):
    records = sim.miscalibration(seed=5, n_evals=20).records
    straight = sim.as_dicts(sim.replay(CalibrationDetector(), records))
    assert any(straight)
    assert sim.as_dicts(sim.resumed(CalibrationDetector, records, split)) == straight


def test_reset_forgets_history_but_keeps_thresholds():
    det = CalibrationDetector(window=4)
    sim.replay(det, sim.miscalibration(seed=1).records)
    det.reset()
    assert det.state_dict() == CalibrationDetector(window=4).state_dict()


def test_garbage_values_never_raise():
    junk = [NAN, INF, -INF, None, "x", 0.0, -1.0, 1e308]
    records = sim.records_from(
        val_ece=[junk[i % 8] for i in range(24)],
        val_ece_chance=[junk[(i + 3) % 8] for i in range(24)],
        val_samples=[junk[(i + 5) % 8] for i in range(24)],
    )
    sim.replay(CalibrationDetector(), records)


# ----------------------------------------------------------------------------------------- simulation


@pytest.mark.parametrize("n_val", [100, 300, 1000, 5000])
def test_no_false_alarms_for_a_calibrated_model_at_any_set_size(n_val):
    """ECE of a perfectly calibrated model is ~0.06-0.09 at n=100 and ~0.02 at n=1000: chance, not a fault."""
    alarms, eces = 0, []
    for seed in range(200):
        rng = random.Random(seed)
        draws = [
            sim.calibration_draw(rng, min(0.95, 0.6 + 0.02 * i), 0.0, n_val, 3)
            for i in range(rng.randint(10, 60))
        ]
        eces.append(draws[-1][0])
        records = sim.records_from(
            val_ece=[e for e, _ in draws],
            val_ece_chance=[c for _, c in draws],
            val_samples=[n_val] * len(draws),
        )
        alarms += sim.first_index(sim.replay(CalibrationDetector(), records)) is not None
    assert alarms == 0
    # The simulated calibrated ECE has the size the literature reports (sanity check of the simulation).
    assert {
        100: 0.03 < sim.median(eces) < 0.1,
        300: 0.02 < sim.median(eces) < 0.06,
        1000: 0.01 < sim.median(eces) < 0.035,
        5000: sim.median(eces) < 0.015,
    }[n_val]


def test_no_false_alarms_on_healthy_runs():
    alarms = sum(
        sim.first_index(
            sim.replay(CalibrationDetector(), sim.healthy(seed, 10 + (seed * 7) % 51, noise).records)
        )
        is not None
        for noise in (0.01, 0.05)
        for seed in range(200)
    )
    assert alarms == 0


@pytest.mark.parametrize(("rate", "min_rate", "max_median_delay"), [(0.02, 1.0, 4), (0.01, 0.97, 6)])
def test_detects_growing_overconfidence(rate, min_rate, max_median_delay):
    delays, missed = [], 0
    for seed in range(100):
        run_ = sim.miscalibration(seed, 20, 0.01, rate=rate)
        hit = sim.first_index(sim.replay(CalibrationDetector(), run_.records))
        if hit is None:
            missed += 1
        else:
            delays.append(hit - run_.onset)
    assert 1 - missed / 100 >= min_rate and sim.median(delays) <= max_median_delay, (missed, sorted(delays))
