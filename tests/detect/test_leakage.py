"""FW-LEAK-SUSPICIOUS: near-perfect validation early and persistently better than training warns; either
alone is INFO; validation better than training at the first evaluation is normal. Tables, round trips,
simulations."""

from __future__ import annotations

import math

import pytest

from fitwatch.detect.leakage import LeakSuspiciousDetector
from fitwatch.detect.trends import two_proportion_z
from fitwatch.findings import Severity

from . import simulate as sim

NAN, INF = math.nan, math.inf


def severities(findings):
    return [None if f is None else f.severity.name for f in findings]


def run(val_acc, train_acc, *, samples=2000, train_samples=8000, **columns):
    n = len(val_acc)
    records = sim.records_from(
        val_accuracy=val_acc,
        train_accuracy=train_acc,
        val_samples=[samples] * n,
        train_samples=[train_samples] * n,
        **columns,
    )
    return sim.replay(LeakSuspiciousDetector(), records)


def test_warns_when_near_perfect_early_and_persistently_better():
    found = run([0.995, 0.998, 0.998, 0.999], [0.55, 0.78, 0.86, 0.90])
    assert severities(found) == [None, None, "WARNING", "WARNING"]
    f = found[2]
    assert f.code == "FW-LEAK-SUSPICIOUS" and f.evidence["comparison"] == ["accuracy", 0.998, 0.86]
    assert f.message == (
        "validation accuracy reached 0.995 by epoch 0 and validation accuracy has beaten training accuracy "
        "at every "
        "evaluation since the first (0.998 vs 0.86 now): too good to be true this early, the usual cause is "
        "validation samples leaked into training; run fitwatch.data.find_duplicates on the training and "
        "validation "
        "sets, and fitwatch.data.check_temporal_split if the data are ordered in time"
    )


@pytest.mark.parametrize(
    ("val_acc", "train_acc", "kwargs", "expected"),
    [
        # Validation ahead at the first evaluation only (training averaged over an untrained start): normal.
        ([0.80, 0.85, 0.88, 0.9], [0.55, 0.86, 0.9, 0.93], {}, [None, None, None, None]),
        # Near perfect early, but training catches up: an easy task. INFO while validation stays near perfect.
        ([0.992, 0.995, 0.996, 0.997], [0.6, 0.97, 0.99, 0.995], {}, [None, None, "INFO", "INFO"]),
        # Persistently better but far from perfect (heavy dropout in the training numbers?): INFO.
        ([0.80, 0.85, 0.87, 0.88], [0.55, 0.70, 0.75, 0.78], {}, [None, None, "INFO", "INFO"]),
        # Near perfect and better, but on 60 samples (wine-sized): one lucky draw away, INFO.
        (
            [1.0, 1.0, 1.0, 1.0],
            [0.6, 0.8, 0.85, 0.9],
            {"samples": 60, "train_samples": 240},
            [None, None, "INFO", "INFO"],
        ),
        # A lead of 0.06 on 200 samples each has z = 1.6: not clearly better.
        (
            [0.80, 0.85, 0.87, 0.88],
            [0.55, 0.79, 0.81, 0.82],
            {"samples": 200, "train_samples": 200},
            [None] * 4,
        ),
        # Near perfect only after the early evaluations: not "very early".
        ([0.9, 0.95, 0.97, 0.995, 0.998], [0.6, 0.9, 0.95, 0.97, 0.98], {}, [None] * 5),
    ],
)
def test_table(val_acc, train_acc, kwargs, expected):
    assert severities(run(val_acc, train_acc, **kwargs)) == expected


def test_clearly_better_uses_the_two_proportion_z():
    assert two_proportion_z(0.88, 200, 0.82, 200) < 3 <= two_proportion_z(0.87, 2000, 0.75, 8000)


def test_losses_stand_in_for_missing_accuracies():
    records = sim.records_from(val_loss=[0.05, 0.03, 0.02, 0.02], train_loss=[0.9, 0.4, 0.2, 0.15])
    found = sim.replay(LeakSuspiciousDetector(), records)
    assert severities(found) == [None, None, "INFO", "INFO"]  # without accuracies nothing is "near perfect"
    assert found[2].evidence["comparison"] == ["loss", 0.02, 0.2]
    assert (
        "validation loss has beaten training loss at every evaluation since the first (0.02 vs 0.2 now)"
        in found[2].message
    )


def test_the_finding_stops_when_the_picture_changes():
    found = run([0.995, 0.998, 0.998, 0.93], [0.55, 0.78, 0.86, 0.97])
    assert severities(found) == [None, None, "WARNING", None]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"early_evaluations": 1}, ValueError, "Expected `early_evaluations` to be at least 2"),
        ({"early_evaluations": 2.5}, TypeError, "Expected `early_evaluations` to be a positive int"),
        ({"near_perfect": 1.01}, ValueError, r"Expected `near_perfect` to be a float in \[0, 1\]"),
        ({"min_samples": 0}, ValueError, "Expected `min_samples` to be a positive int"),
        ({"min_gap": None}, TypeError, r"Expected `min_gap` to be a float in \[0, 1\]"),
        ({"min_z": -3.0}, ValueError, "Expected `min_z` to be a positive float"),
        ({"loss_ratio": 2.0}, ValueError, r"Expected `loss_ratio` to be a float in \[0, 1\]"),
    ],
)
def test_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        LeakSuspiciousDetector(**kwargs)


@pytest.mark.parametrize("split", [1, 2, 3, 7])
def test_state_round_trip_mid_series(split):
    records = sim.leaky(seed=7, n_evals=12).records
    straight = sim.as_dicts(sim.replay(LeakSuspiciousDetector(), records))
    assert any(straight)
    assert sim.as_dicts(sim.resumed(LeakSuspiciousDetector, records, split)) == straight


def test_reset_forgets_history_but_keeps_thresholds():
    det = LeakSuspiciousDetector(early_evaluations=4)
    sim.replay(det, sim.leaky(seed=1).records)
    det.reset()
    assert det.state_dict() == LeakSuspiciousDetector(early_evaluations=4).state_dict()


def test_garbage_values_never_raise():
    junk = [NAN, INF, -INF, None, "x", 0.0, -1.0, 1e308]
    cols = ["val_accuracy", "train_accuracy", "val_samples", "train_samples", "val_loss", "train_loss"]
    sim.replay(
        LeakSuspiciousDetector(),
        sim.records_from(**{c: [junk[(i + 3 * k) % 8] for i in range(24)] for k, c in enumerate(cols)}),
    )


# ----------------------------------------------------------------------------------------- simulation


def test_no_findings_on_healthy_runs():
    alarms = sum(
        sim.first_index(
            sim.replay(LeakSuspiciousDetector(), sim.healthy(seed, 10 + (seed * 7) % 51, noise).records),
            severity=Severity.INFO,
        )
        is not None
        for noise in (0.01, 0.05)
        for seed in range(200)
    )
    assert alarms == 0


def test_warns_on_leaky_runs_once_the_early_window_is_in():
    hits = [
        sim.first_index(sim.replay(LeakSuspiciousDetector(), sim.leaky(seed).records)) for seed in range(100)
    ]
    assert set(hits) == {2}  # the third evaluation closes the early window
