"""Findings wording: the numbers a message quotes are the evidence's, the direction words follow the signs, two
findings on one run never contradict each other, and evidence is rounded and named for people."""

from __future__ import annotations

import math
import re

import pytest

from fitwatch.detect.base import EVIDENCE_DIGITS, build_detectors, rounded
from fitwatch.detect.overfitting import (
    GapDetector,
    OverfittingDetector,
    SubtleOverfittingDetector,
    gap_move,
    score_move,
)
from fitwatch.detect.records import EvalRecord

from . import simulate as sim

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def last(findings):
    return [f for f in findings if f is not None][-1]


def significant_digits(x: float) -> int:
    digits = f"{abs(x):.15g}".replace(".", "").lstrip("0").split("e")[0]
    return len(digits.rstrip("0")) or 1


def floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from floats(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from floats(v)


# ------------------------------------------------------------------------------ FW-GAP-WIDENING: the verb


@pytest.mark.parametrize(
    ("then", "now", "verb", "not_verb"),
    [
        (0.05, 0.2, "widened", "narrowed"),
        (-0.189, -0.02, "narrowed", "widened"),
        (-0.189, 0.0103, "crossing zero", "widened"),
    ],
)
def test_gap_verb_follows_the_signs(then, now, verb, not_verb):
    text = gap_move("the gap", then, now)
    assert verb in text and not_verb not in text
    assert numbers(text)[:2] == [pytest.approx(then, rel=1e-2), pytest.approx(now, rel=1e-2)]


def test_gap_from_below_zero_to_zero_is_not_called_widening():
    # Validation loss starts well below the training loss (dropout, augmentation) and catches up: the signed gap
    # rises toward zero, which is a narrowing in absolute terms, then crosses it.
    val = [0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60]
    train = [0.95, 0.80, 0.78, 0.72, 0.68, 0.64, 0.61, 0.59]
    f = last(sim.replay(GapDetector(), sim.records_from(val_loss=val, train_loss=train)))
    ev = f.evidence
    assert ev["loss_gap_from"] < 0 < ev["loss_gap_to"]
    assert "widened" not in f.message and "crossing zero" in f.message
    quoted = numbers(f.message.split("gap rose from ", 1)[1])[:2]
    assert quoted == [pytest.approx(ev["loss_gap_from"], rel=5e-3), pytest.approx(ev["loss_gap_to"], rel=5e-3)]


def test_gap_widening_quotes_its_evidence():
    records = sim.records_from(val_loss=[0.6] * 8, train_loss=[3.0, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2])
    f = last(sim.replay(GapDetector(), records))
    ev = f.evidence
    assert "widened from" in f.message and ev["loss_gap_from"] >= 0
    quoted = numbers(f.message.split("widened from ", 1)[1])
    assert quoted[:3] == [
        pytest.approx(ev["loss_gap_from"], rel=5e-3),
        pytest.approx(ev["loss_gap_to"], rel=5e-3),
        ev["loss_gap_span"],
    ]
    assert f"p={ev['loss_gap_p_increasing']:.3g}" in f.message


# ------------------------------------------------------------------------------------- FW-OVERFIT


U_VAL = [1.0, 0.8, 0.7, 0.65, 0.63, 0.62, 0.64, 0.70, 0.78, 0.86]
FALLING_TRAIN = [0.9 * 0.8**i for i in range(10)]


@pytest.mark.parametrize(
    ("accuracy", "words"),
    [
        ([0.7, 0.8, 0.85, 0.87, 0.88, 0.903, 0.90, 0.89, 0.885, 0.879], "accuracy fell from 0.903 to 0.879"),
        ([0.7, 0.8, 0.85, 0.87, 0.88, 0.88, 0.88, 0.882, 0.881, 0.884], "accuracy is flat at 0.884, so it hides"),
        ([0.7, 0.8, 0.85, 0.87, 0.88, 0.88, 0.89, 0.90, 0.91, 0.92], "accuracy rose from 0.880 to 0.920, so it hides"),
    ],
)
def test_overfit_quotes_its_evidence(accuracy, words):
    records = sim.records_from(val_loss=U_VAL, train_loss=FALLING_TRAIN, val_accuracy=accuracy)
    f = last(sim.replay(OverfittingDetector(), records))
    ev = f.evidence
    assert words in f.message
    assert ev["accuracy_at_best"] == accuracy[5] and ev["accuracy_now"] == accuracy[-1]
    best, now = numbers(f.message.split("(", 1)[1])[:2]
    assert (best, now) == (pytest.approx(ev["best_loss"], rel=5e-3), pytest.approx(ev["loss"], rel=5e-3))
    assert f"+{ev['generalization_loss_pct']:.0f}%" in f.message
    assert f"fell {ev['train_fall_pct']:.0f}%" in f.message
    assert f"since epoch {ev['best_epoch']}" in f.message
    assert f"risen for {ev['evaluations_since_best']} evaluations" in f.message
    # Prechelt's names next to the readable ones, same values.
    assert ev["gl"] == ev["generalization_loss_pct"] and ev["pq"] == ev["progress_quotient"]
    assert ev["gl_threshold"] == ev["generalization_loss_threshold_pct"]


# ---------------------------------------------------------------------- FW-OVERFIT-SUBTLE, and with FW-OVERFIT


def _subtle_records(accuracy):
    return sim.records_from(
        val_loss=[0.9, 0.6, 0.45, 0.41, 0.42, 0.46, 0.51, 0.55, 0.58],
        val_nll=[0.9, 0.6, 0.45, 0.41, 0.42, 0.46, 0.51, 0.55, 0.58],
        train_loss=[0.9 * 0.8**i for i in range(9)],
        val_accuracy=accuracy,
        val_ece=[0.05, 0.035, 0.03, 0.031, 0.035, 0.045, 0.055, 0.062, 0.068],
        val_ece_chance=[0.02] * 9,
        val_samples=[300] * 9,
    )


def test_subtle_quotes_its_evidence():
    f = last(sim.replay(SubtleOverfittingDetector(), _subtle_records([0.80, 0.88, 0.92, 0.935, 0.94, 0.94, 0.941,
                                                                       0.94, 0.942])))
    ev = f.evidence
    assert f.message.startswith(f"accuracy holds at {ev['score_now']:.3f} while validation NLL rose")
    assert f"rose {ev['nll_rise_pct']:.0f}%" in f.message
    assert f"ECE went from {ev['ece_at_best']:.3f} to {ev['ece_now']:.3f}" in f.message
    assert f"({ev['best_nll']:.3g} -> {ev['nll']:.3g})" in f.message
    assert f"{ev['ece_now'] / ev['ece_at_best']:.1f}x" in f.message


def test_one_run_never_says_accuracy_fell_and_holds():
    # Accuracy 0.903 at the best NLL, 0.879 now: a fall FW-OVERFIT names, within the noise that lets
    # FW-OVERFIT-SUBTLE stand (300 samples: 2 x SE = 0.038). Both must say it fell.
    accuracy = [0.80, 0.88, 0.90, 0.903, 0.90, 0.895, 0.89, 0.885, 0.879]
    records = _subtle_records(accuracy)
    subtle = last(sim.replay(SubtleOverfittingDetector(), records))
    overfit = last(sim.replay(OverfittingDetector(), records))
    for f in (subtle, overfit):
        assert "accuracy fell from 0.903 to 0.879" in f.message, f.code
        assert "holds" not in f.message and "flat" not in f.message and "still improves" not in f.message
    assert f"+/-{subtle.evidence['score_tolerance']:.3f}" in subtle.message


@pytest.mark.parametrize(
    ("then", "now", "expected"),
    [(0.903, 0.879, "fell"), (0.903, 0.897, "is flat"), (0.5, 0.6, "rose")],
)
def test_score_move_direction(then, now, expected):
    assert expected in score_move("accuracy", then, now)


# ----------------------------------------------------------------------------- every family: rounded evidence


def test_rounded_keeps_four_significant_digits():
    assert rounded({"a": 0.1 + 0.2, "b": [1 / 3, float("inf")], "c": (2, "x"), "d": True}) == {
        "a": 0.3, "b": [0.3333, None], "c": (2, "x"), "d": True}


@pytest.mark.parametrize(
    "make",
    [
        lambda s: sim.overfitting(s),
        lambda s: sim.memorizing(s),
        lambda s: sim.subtle_overfitting(s),
        lambda s: sim.stuck(s),
        lambda s: sim.schedule_ends_early(s),
        lambda s: sim.class_collapse(s),
        lambda s: sim.never_predicted(s),
        lambda s: sim.miscalibration(s),
        lambda s: sim.failed(s),
        lambda s: sim.leaky(s),
    ],
)
def test_no_long_floats_in_any_evidence(make):
    detectors = [d for d in build_detectors() if EvalRecord in d.record_types]
    seen = 0
    for seed in range(3):
        for record in make(seed).records:
            for detector in detectors:
                f = detector.update(record)
                if f is None:
                    continue
                seen += 1
                for x in floats(dict(f.evidence)):
                    assert math.isfinite(x) and significant_digits(x) <= EVIDENCE_DIGITS, (f.code, x)
        detectors = [d for d in build_detectors() if EvalRecord in d.record_types]
    assert seen
