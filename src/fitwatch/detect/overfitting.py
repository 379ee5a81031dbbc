"""Overfitting, three ways: the validation loss rises (``FW-OVERFIT``), the model grows overconfident behind
a steady accuracy (``FW-OVERFIT-SUBTLE``), the train-validation gap widens (``FW-GAP-WIDENING``).

All three read :class:`~fitwatch.detect.records.EvalRecord` and judge a rise against the run's own noise:

- Prechelt's (1998) generalization loss ``GL = 100 (E_va / E_opt - 1)`` says how far the validation loss
  is above its best. A fixed GL threshold is wrong because runs differ in noise, so the threshold is
  ``noise_factor`` times the relative noise of the validation loss estimated from the run itself
  (:func:`~fitwatch.detect.trends.trimmed_noise`), never below Prechelt's GL2.
- The rise must be a trend, not one noisy evaluation, in one of two ways: a one-sided Mann-Kendall test
  over the last ``window`` evaluations at ``alpha`` (a slow rise), or a GL above ``sharp_factor`` times
  the relative noise with the loss still going up from one evaluation to the next (a sharp rise, which a
  Mann-Kendall test over a window that still holds the descent cannot see for several evaluations);
  either must hold on ``confirmations`` consecutive evaluations.
- Or the rise is corroborated by what the validation loss alone does not show: held above the best on every
  evaluation since it (at least ``confirmations`` of them), the training loss down by ``train_fall`` meanwhile,
  and for ``FW-OVERFIT`` the ECE up beyond what chance gives at this set's size or the accuracy down beyond its
  binomial noise (``FW-OVERFIT-SUBTLE`` has its own ECE and accuracy facts). Then a GL of
  ``corroborated_factor`` (2) noise units suffices instead of 4, with no trend test.

Why these defaults (``window=8, alpha=0.01, gl_floor=2, confirmations=2``): simulated on i.i.d. noise,
a plain patience rule or a Mann-Kendall test at alpha 0.05 alone false-alarms in 35-65% of 50-evaluation
runs; Mann-Kendall at 0.01 over 8 evaluations with GL > 2 and two consecutive confirmations stays at
0.5-5% and still catches a 0.5%-per-evaluation rise. Scaling the GL thresholds to the run's own noise
(``noise_factor=4`` with the trend, ``sharp_factor=5`` without) brings the false alarms on simulated
healthy runs (10-60 evaluations, 0.5-5% noise) to the rates measured in ``tests/detect``, and detects a
rise of 8% per evaluation at 1% noise a median of 2 evaluations after the minimum.

What limits the delay on short real runs is knowing the noise, not the test. On the zoo's overfitting runs
(tickets and breast cancer, 24 runs) the validation minimum comes at evaluation 1-8; over the whole run the
relative noise of the validation loss is 0.3-6% and it then rises 0.6-8% per evaluation, but three
evaluations after the minimum the noise estimated from the run so far is 1.4-20%, 2-10 times the whole-run
value, because the few points after the descent hold the curvature of the turn, not noise. Given the
whole-run noise from the start, a one-sided CUSUM (Page 1954) on the log excess over the best (k = 1,
h = 4-6, the best's downward bias removed with Blom's expected maximum) flags them a median 2 evaluations
after the minimum with 0-2 false alarms in 800 simulated healthy runs; with the noise estimated as the run
goes, the same CUSUM needs a median of 6, no better than the rule above at the same false-alarm rate. The
corroborated path is what brings the zoo's median from 6 to 4 (ticket runs +2 to +4) at an unchanged
false-alarm rate (3 in 800); runs whose ECE and accuracy stay flat (breast cancer) still wait for the noise.
The usual stopping rules are faster because they ignore the noise: on the same 800 simulated healthy runs
Lightning's ``EarlyStopping(patience=3)`` stops 62%, HF ``patience=1`` 94% and Prechelt's GL2 63%
(``tests/zoo/test_limits.py``; ``python -m benchmarks.zoo.limits`` prints the zoo numbers).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, register, rounded
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import (
    Rise,
    finite,
    finite_or_none,
    generalization_loss,
    mann_kendall,
    rise_since_best,
    theil_sen_slope,
    training_progress,
    trimmed_noise,
)
from fitwatch.findings import Finding, Severity

__all__ = [
    "GapDetector",
    "OverfittingDetector",
    "SubtleOverfittingDetector",
    "ece_rise",
    "score_tolerance",
    "settled_noise",
]

#: Mann-Kendall window, in evaluations (see the module docstring).
WINDOW = 8
#: One-sided significance of the Mann-Kendall rise.
ALPHA = 0.01
#: GL threshold in units of the validation loss's own relative noise.
NOISE_FACTOR = 4.0
#: GL threshold, in units of the relative noise, above which no Mann-Kendall trend is needed (a sharp rise).
SHARP_FACTOR = 5.0
#: Smallest GL threshold, percent: Prechelt's (1998) GL2.
GL_FLOOR = 2.0
#: Consecutive evaluations the condition must hold before it is reported.
CONFIRMATIONS = 2
#: Finite validation losses needed before the noise estimate means anything.
MIN_EVALUATIONS = 4
#: Prechelt's (1998) training strip length k for the training progress P_k and PQ = GL / P_k.
STRIP = 5
#: The noise of the validation loss is measured once its initial descent is over: from the first evaluation
#: whose loss is within this share of its total fall (in log space) above the best. The second differences of
#: the initial descent are its curvature, not noise: on the zoo's real runs (support tickets, a 2-layer BERT)
#: they doubled or tripled the estimate (7-10% instead of 3-4%), so rises of 20-30% went unreported.
SETTLED_SHARE = 0.25
#: Fewest evaluations the settled part needs for an estimate of its own; with fewer, the whole series is used.
SETTLED_MIN = 6
#: GL threshold of a corroborated rise, in units of the relative noise: half of ``NOISE_FACTOR``, because the
#: rise must also be held on every evaluation since the best and be backed by evidence the validation loss does
#: not give (see the module docstring).
CORROBORATED_FACTOR = 2.0
#: A corroborated rise needs the training loss to have fallen by this share of its value at the best validation
#: evaluation: the model is still fitting the training set fast. On simulated healthy runs a 10% fall let
#: plateau noise through (9 false alarms in 800 runs against 3); 20% and 30% gave the same rates.
TRAIN_FALL = 0.2
#: Accuracy counts as "holding" when it is within this much of its value at the best NLL (absolute) ...
ACCURACY_TOLERANCE = 0.01
#: ... or within this many binomial standard errors of it, whichever is larger.
ACCURACY_SE = 2.0
#: ECE counts as risen when it is above its level around the best NLL by this many ``ece_chance``
#: (the ECE a perfectly calibrated model shows on a set of this size) ...
ECE_CHANCE_FACTOR = 1.0
#: ... and by at least this much absolute ECE (also used alone when ``ece_chance`` is unknown).
ECE_MIN_RISE = 0.01


def settled_noise(values: Sequence[float | None]) -> float:
    """Relative noise of a positive series after its initial descent (see :data:`SETTLED_SHARE`).

    :func:`~fitwatch.detect.trends.trimmed_noise` of the logarithm, from the first value within
    ``SETTLED_SHARE`` of the fall (in log space) above the minimum; over the whole series when that part has
    fewer than :data:`SETTLED_MIN` values. NaN with fewer than 4 positive finite values.

    >>> descent = [2.0, 1.0, 0.6, 0.45]                      # steep curvature ...
    >>> plateau = [0.41, 0.42, 0.40, 0.41, 0.42, 0.40, 0.41]  # ... then a noisy plateau
    >>> series = descent + plateau
    >>> round(100 * settled_noise(series), 1), round(100 * trimmed_noise([math.log(x) for x in series]), 1)
    (3.9, 5.7)
    """
    logs = [math.log(f) for x in values if (f := finite_or_none(x)) is not None and f > 0]
    if len(logs) < 4:
        return math.nan
    low, first = min(logs), logs[0]
    start = next(i for i, x in enumerate(logs) if x - low <= SETTLED_SHARE * (first - low))
    tail = logs[start:]
    return trimmed_noise(tail if len(tail) >= SETTLED_MIN else logs)


def _at(epoch: int | None, index: int) -> str:
    return f"epoch {epoch}" if epoch is not None else f"evaluation {index + 1}"


def _pct(x: float) -> str:
    return f"{x:.0f}%" if abs(x) >= 10 else f"{x:.1f}%"


#: A score change smaller than this reads as "flat" in a message (what three decimals can show).
SCORE_FLAT = 0.01


def score_move(name: str, then: float, now: float) -> str:
    """How a score moved, in the words both overfitting findings use, so that one report never says
    "accuracy fell" in one finding and "accuracy holds" in another for the same evaluations.

    >>> score_move("accuracy", 0.903, 0.879), score_move("accuracy", 0.903, 0.905), score_move("macro F1", 0.5, 0.6)
    ('accuracy fell from 0.903 to 0.879', 'accuracy is flat at 0.905', 'macro F1 rose from 0.500 to 0.600')
    """
    if now - then <= -SCORE_FLAT:
        return f"{name} fell from {then:.3f} to {now:.3f}"
    if now - then < SCORE_FLAT:
        return f"{name} is flat at {now:.3f}"
    return f"{name} rose from {then:.3f} to {now:.3f}"


def gap_move(label: str, then: float, now: float, digits: str = ".3g") -> str:
    """How a signed gap (validation worse than training when positive) grew, with a verb that follows the signs:
    a gap that grows from a negative value toward zero *narrowed*; one that crosses zero *turned positive*.

    >>> gap_move("the loss gap", 0.05, 0.2)
    'the loss gap widened from 0.05 to 0.2'
    >>> gap_move("the loss gap", -0.189, -0.02)
    'the loss gap narrowed from -0.189 to -0.02 (validation still better than training)'
    >>> gap_move("the loss gap", -0.189, 0.0103)
    'the loss gap rose from -0.189 to 0.0103, crossing zero (validation now worse than training)'
    """
    a, b = format(then, digits), format(now, digits)
    if then >= 0:
        return f"{label} widened from {a} to {b}"
    if now <= 0:
        return f"{label} narrowed from {a} to {b} (validation still better than training)"
    return f"{label} rose from {a} to {b}, crossing zero (validation now worse than training)"


def score_tolerance(score: float, samples: float | None, *, tolerance: float, se_factor: float) -> float:
    """How far an accuracy (or F1) may move and still count as unchanged: ``max(tolerance, se_factor x SE)``,
    with the binomial standard error ``sqrt(s (1 - s) / n)`` at ``samples`` (ignored when unknown).

    >>> round(score_tolerance(0.9, 1000, tolerance=0.01, se_factor=2.0), 4)   # 2 x 0.0095
    0.019
    >>> score_tolerance(0.9, None, tolerance=0.01, se_factor=2.0)
    0.01
    """
    se = math.sqrt(max(score * (1.0 - score), 0.0) / samples) if samples and samples > 0 else 0.0
    return max(tolerance, se_factor * se)


def ece_rise(
    ece: Sequence[float | None],
    best_index: int,
    chance: float | None,
    *,
    min_rise: float,
    chance_factor: float,
) -> tuple[float, float, float] | None:
    """``(ECE around the best, ECE now, margin)`` when the last ECE exceeds the median of the three evaluations
    up to ``best_index`` by more than ``margin = max(min_rise, chance_factor x chance)``; else None.

    The median, not the single value at the best, so that one lucky evaluation does not set the bar.

    >>> ece_rise([0.05, 0.03, 0.04, 0.031, 0.09], 3, 0.02, min_rise=0.01, chance_factor=1.0)
    (0.031, 0.09, 0.02)
    >>> ece_rise([0.05, 0.03, 0.04, 0.031, 0.05], 3, 0.02, min_rise=0.01, chance_factor=1.0) is None
    True
    """
    now = ece[-1] if ece else None
    before = sorted(finite([x for x in ece[max(0, best_index - 2) : best_index + 1] if x is not None]))
    if now is None or not before:
        return None
    then = before[len(before) // 2]
    margin = max(min_rise, chance_factor * chance if chance is not None else 0.0)
    return (then, now, margin) if now - then > margin else None


def _check_common(
    window: int, alpha: float, noise_factor: float, gl_floor: float, confirmations: int, min_evaluations: int
) -> None:
    v.check_positive_int("window", window)
    if window < 3:
        raise ValueError(f"Expected `window` to be at least 3 (a trend needs 3 points), but got {window}.")
    v.check_fraction("alpha", alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"Expected `alpha` to be a float in (0, 1), but got {alpha!r}.")
    v.check_positive_float("noise_factor", noise_factor)
    v.check_positive_float("gl_floor", gl_floor)
    v.check_positive_int("confirmations", confirmations)
    v.check_positive_int("min_evaluations", min_evaluations)
    if min_evaluations < 3:
        raise ValueError(
            f"Expected `min_evaluations` to be at least 3 (a trend needs 3 points), "
            f"but got {min_evaluations}."
        )


class _RiseDetector(Detector):
    """Shared state and the confirmed-rise test of the overfitting family."""

    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        window: int,
        alpha: float,
        noise_factor: float,
        gl_floor: float,
        confirmations: int,
        min_evaluations: int,
        sharp_factor: float,
        corroborated_factor: float = CORROBORATED_FACTOR,
        train_fall: float = TRAIN_FALL,
    ) -> None:
        _check_common(window, alpha, noise_factor, gl_floor, confirmations, min_evaluations)
        self.sharp_factor = v.check_positive_float("sharp_factor", sharp_factor)
        self.corroborated_factor = v.check_positive_float("corroborated_factor", corroborated_factor)
        self.train_fall = v.check_fraction("train_fall", train_fall)
        self.window = window
        self.alpha = float(alpha)
        self.noise_factor = float(noise_factor)
        self.gl_floor = float(gl_floor)
        self.confirmations = confirmations
        self.min_evaluations = min_evaluations
        self.epochs: list[int | None] = []
        self.steps: list[int] = []
        self.streak = 0

    def _append(self, record: EvalRecord) -> None:
        self.epochs.append(record.epoch)
        self.steps.append(int(record.step))

    def _rise(self, series: list[float | None]) -> Rise | None:
        """The rise of ``series`` when it is a confirmed trend at this evaluation, else None."""
        if len(finite(series)) < self.min_evaluations:
            return None
        rise = rise_since_best(
            series, window=self.window, noise_factor=self.noise_factor, gl_floor=self.gl_floor
        )
        noise = settled_noise(series)
        if rise is not None and math.isfinite(noise):
            rise = dataclasses.replace(
                rise, noise_pct=100.0 * noise, threshold=max(self.gl_floor, self.noise_factor * 100.0 * noise)
            )
        if rise is None or rise.since_best < 1 or not math.isfinite(rise.gl) or rise.gl <= rise.threshold:
            return None
        previous = finite_or_none(series[-2]) if len(series) > 1 else None
        rising = rise.since_best == 1 or (previous is not None and rise.current > previous)
        sharp = rising and rise.gl > max(self.gl_floor, self.sharp_factor * rise.noise_pct)
        return rise if (sharp or rise.p_increasing < self.alpha) else None

    def _confirm(self, holds: bool) -> bool:
        self.streak = self.streak + 1 if holds else 0
        return self.streak >= self.confirmations

    def _sustained_rise(self, series: list[float | None], train: list[float | None]) -> Rise | None:
        """The rise of ``series`` when other evidence may confirm it early, else None.

        The series must have stayed above its best by more than ``gl_floor`` on every one of at least
        ``confirmations`` evaluations since the best, be no lower now than right after it, and exceed the best by
        ``corroborated_factor`` times its relative noise; the training loss must have fallen by ``train_fall``
        (a share of its value at the best) meanwhile. The caller adds the corroboration (ECE, accuracy).
        """
        if len(finite(series)) < self.min_evaluations:
            return None
        rise = rise_since_best(series, window=self.window, gl_floor=self.gl_floor)
        if rise is None or rise.since_best < self.confirmations or not math.isfinite(rise.gl):
            return None
        noise = settled_noise(series)
        noise_pct = 100.0 * noise if math.isfinite(noise) else rise.noise_pct
        rise = dataclasses.replace(
            rise, noise_pct=noise_pct, threshold=max(self.gl_floor, self.corroborated_factor * noise_pct)
        )
        after = series[rise.best_index + 1 :]
        if any(x is None or generalization_loss(x, rise.best) <= self.gl_floor for x in after):
            return None
        if rise.current < after[0] or rise.gl <= rise.threshold:  # type: ignore[operator]
            return None
        then, now = train[rise.best_index], train[-1]
        if then is None or now is None or now > (1.0 - self.train_fall) * then:
            return None
        return rise


@register
class OverfittingDetector(_RiseDetector):
    """``FW-OVERFIT``: validation loss rising as a confirmed trend while training loss falls.

    Two ways to confirm the rise: on its own (noise-scaled GL with a Mann-Kendall trend or a sharp rise, on
    ``confirmations`` consecutive evaluations), or corroborated early: held on every evaluation since the best,
    with the training loss down by ``train_fall`` and either the ECE up beyond what chance gives at this set's
    size (the model grows overconfident) or the accuracy down beyond its binomial noise (it got worse), with a
    GL bar of only ``corroborated_factor`` noise units (see the module docstring).

    Args:
        window: Evaluations the one-sided Mann-Kendall test reads.
        alpha: Its significance level.
        noise_factor: GL threshold in units of the validation loss's relative noise.
        gl_floor: Smallest GL threshold, percent (Prechelt's GL2).
        confirmations: Consecutive evaluations the condition must hold.
        min_evaluations: Finite validation losses needed before anything is reported.
        sharp_factor: GL threshold, in units of the relative noise, above which a still-rising loss needs no
            Mann-Kendall trend (a sharp rise).
        strip: Prechelt's training strip length ``k``, for the reported ``P_k`` and ``PQ`` (evidence only).
        corroborated_factor: GL threshold of a corroborated rise, in units of the relative noise.
        train_fall: Share by which the training loss must have fallen since the best for a corroborated rise.
        accuracy_tolerance: Smallest accuracy drop that corroborates, absolute ...
        accuracy_se: ... and in binomial standard errors at ``val["samples"]``, whichever is larger.
        ece_chance_factor: Smallest ECE rise that corroborates, in units of ``val["ece_chance"]`` ...
        ece_min_rise: ... and absolute, whichever is larger.

    Raises:
        ValueError: If ``window`` < 3, ``alpha`` is not in (0, 1), ``min_evaluations`` < 3, ``train_fall`` is
            not in [0, 1], or a count, factor or tolerance is not positive.
        TypeError: If a count is not an int or a factor not a number.

    The training-loss condition is skipped when the records carry no training loss; a training loss that
    rose too is not overfitting (it is divergence or a learning rate too high, other detectors' cases).

    >>> det = OverfittingDetector()
    >>> losses = [0.9, 0.6, 0.45, 0.41, 0.43, 0.47, 0.52, 0.58]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"loss": x}, train={"loss": 0.8 * 0.7**i}))
    ...          for i, x in enumerate(losses)]
    >>> [f is not None for f in found]
    [False, False, False, False, False, False, True, True]
    >>> print(found[-1].message)  # doctest: +NORMALIZE_WHITESPACE
    validation loss has risen for 4 evaluations since epoch 3 (0.41 -> 0.58, +41%) while training loss
    fell 76%; this is overfitting

    With the ECE rising beyond chance as well, the same run is caught two evaluations earlier:

    >>> det = OverfittingDetector()
    >>> ece = [0.1, 0.06, 0.04, 0.03, 0.05, 0.07, 0.08, 0.09]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"loss": x, "ece": e, "ece_chance": 0.02},
    ...                                train={"loss": 0.8 * 0.7**i}))
    ...          for i, (x, e) in enumerate(zip(losses, ece))]
    >>> [f is not None for f in found]
    [False, False, False, False, False, True, True, True]
    >>> print(found[5].message)  # doctest: +NORMALIZE_WHITESPACE
    validation loss has risen for 2 evaluations since epoch 3 (0.41 -> 0.47, +15%) while training loss
    fell 51%; ECE rose from 0.040 to 0.070, so the model also grows overconfident; this is overfitting
    """

    name: ClassVar[str] = "overfitting"

    def __init__(
        self,
        *,
        window: int = WINDOW,
        alpha: float = ALPHA,
        noise_factor: float = NOISE_FACTOR,
        gl_floor: float = GL_FLOOR,
        confirmations: int = CONFIRMATIONS,
        min_evaluations: int = MIN_EVALUATIONS,
        sharp_factor: float = SHARP_FACTOR,
        strip: int = STRIP,
        corroborated_factor: float = CORROBORATED_FACTOR,
        train_fall: float = TRAIN_FALL,
        accuracy_tolerance: float = ACCURACY_TOLERANCE,
        accuracy_se: float = ACCURACY_SE,
        ece_chance_factor: float = ECE_CHANCE_FACTOR,
        ece_min_rise: float = ECE_MIN_RISE,
    ) -> None:
        super().__init__(
            window=window,
            alpha=alpha,
            noise_factor=noise_factor,
            gl_floor=gl_floor,
            confirmations=confirmations,
            min_evaluations=min_evaluations,
            sharp_factor=sharp_factor,
            corroborated_factor=corroborated_factor,
            train_fall=train_fall,
        )
        self.strip = v.check_positive_int("strip", strip)
        self.accuracy_tolerance = v.check_positive_float("accuracy_tolerance", accuracy_tolerance)
        self.accuracy_se = v.check_positive_float("accuracy_se", accuracy_se)
        self.ece_chance_factor = v.check_positive_float("ece_chance_factor", ece_chance_factor)
        self.ece_min_rise = v.check_positive_float("ece_min_rise", ece_min_rise)
        self.val_loss: list[float | None] = []
        self.train_loss: list[float | None] = []
        self.accuracy: list[float | None] = []
        self.ece: list[float | None] = []

    #: Per-evaluation lists, with the value that stands for "unknown" (a state saved without one of them, such as
    #: ``ece``, added later).
    series: ClassVar[Mapping[str, Any]] = {
        "epochs": None,
        "steps": 0,
        "val_loss": None,
        "train_loss": None,
        "accuracy": None,
        "ece": None,
    }

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self._append(record)
        self.val_loss.append(finite_or_none(record.val.get("loss")))
        self.train_loss.append(finite_or_none(record.train.get("loss")))
        self.accuracy.append(finite_or_none(record.val.get("accuracy")))
        self.ece.append(finite_or_none(record.val.get("ece")))
        rise = self._rise(self.val_loss)
        holds = rise is not None and not self._train_rose(rise)
        if self._confirm(holds):
            assert rise is not None
            return self._finding(record, rise, self._train_fall(rise), None)
        early = self._sustained_rise(self.val_loss, self.train_loss)
        backing = self._backing(early, record.val) if early is not None else None
        if early is None or backing is None:
            return None
        return self._finding(record, early, self._train_fall(early), backing)

    def _backing(self, rise: Rise, val: Any) -> dict[str, float] | None:
        """What corroborates an early rise: the ECE up beyond chance, or the accuracy down beyond its noise."""
        chance = finite_or_none(val.get("ece_chance"))
        ece = ece_rise(
            self.ece,
            rise.best_index,
            chance,
            min_rise=self.ece_min_rise,
            chance_factor=self.ece_chance_factor,
        )
        if ece is not None:
            return {"ece_then": ece[0], "ece_now": ece[1], "ece_margin": ece[2]}
        then, now = self.accuracy[rise.best_index], self.accuracy[-1]
        if then is None or now is None:
            return None
        tolerance = score_tolerance(
            now,
            finite_or_none(val.get("samples")),
            tolerance=self.accuracy_tolerance,
            se_factor=self.accuracy_se,
        )
        if then - now <= tolerance:
            return None
        return {"accuracy_then": then, "accuracy_now": now, "accuracy_tolerance": tolerance}

    def _train_fall(self, rise: Rise | None) -> float | None:
        """Relative fall of the training loss since the best validation evaluation, percent (or None)."""
        if rise is None:
            return None
        then, now = self.train_loss[rise.best_index], self.train_loss[-1]
        if then is None or now is None or then <= 0:
            return None
        return 100.0 * (then - now) / then

    def _train_rose(self, rise: Rise) -> bool:
        """Whether the training loss rose beyond its own noise since the best validation evaluation.

        Then the validation rise is not overfitting but the whole run getting worse (divergence, a learning
        rate too high): other detectors' cases.
        """
        then, now = self.train_loss[rise.best_index], self.train_loss[-1]
        growth = generalization_loss(now, then) if then is not None and now is not None else math.nan
        if not math.isfinite(growth):
            return False
        noise = trimmed_noise([math.log(x) for x in finite(self.train_loss) if x > 0])
        return growth > max(self.gl_floor, self.noise_factor * 100.0 * noise if math.isfinite(noise) else 0.0)

    def _finding(
        self, record: EvalRecord, rise: Rise, train_fall: float | None, backing: dict[str, float] | None
    ) -> Finding:
        b = rise.best_index
        text = (
            f"validation loss has risen for {rise.since_best} evaluations since {_at(self.epochs[b], b)} "
            f"({rise.best:.3g} -> {rise.current:.3g}, +{_pct(rise.gl)})"
        )
        if train_fall is not None:
            then, now = self.train_loss[b], self.train_loss[-1]
            text += (
                f" while training loss fell {_pct(train_fall)}"
                if train_fall >= 1.0
                else f" while training loss stayed flat ({then:.3g} -> {now:.3g})"
            )
        acc_then, acc_now = self.accuracy[b], self.accuracy[-1]
        if acc_then is not None and acc_now is not None:
            text += "; " + score_move("accuracy", acc_then, acc_now)
            text += "" if acc_now - acc_then <= -SCORE_FLAT else ", so it hides this"
        if backing is not None and "ece_now" in backing:
            text += (
                f"; ECE rose from {backing['ece_then']:.3f} to {backing['ece_now']:.3f}, so the model also grows "
                "overconfident"
            )
        text += "; this is overfitting"
        p_k = training_progress([x for x in self.train_loss[-self.strip :] if x is not None])
        evidence: dict[str, Any] = {
            "best_loss": rise.best,
            "best_epoch": self.epochs[b],
            "best_step": self.steps[b],
            "loss": rise.current,
            "evaluations_since_best": rise.since_best,
            "generalization_loss_pct": rise.gl,
            "generalization_loss_threshold_pct": rise.threshold,
            "noise_pct": rise.noise_pct,
            "p_increasing": rise.p_increasing,
            "train_fall_pct": train_fall,
            "training_progress": p_k,
            "progress_quotient": rise.gl / p_k if p_k and math.isfinite(p_k) and p_k > 0 else None,
            "accuracy_at_best": acc_then,
            "accuracy_now": acc_now,
            "corroborated_by": None if backing is None else "ece" if "ece_now" in backing else "accuracy",
            **(backing or {}),
        }
        return Finding(
            code="FW-OVERFIT",
            severity=Severity.WARNING,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(_with_prechelt_names(evidence)),
        )


def _with_prechelt_names(evidence: dict[str, Any]) -> dict[str, Any]:
    """The readable keys and, for readers written before them, Prechelt's short names (``gl``, ``pq``,
    ``gl_threshold``) with the same values."""
    return {
        **evidence,
        "gl": evidence["generalization_loss_pct"],
        "gl_threshold": evidence["generalization_loss_threshold_pct"],
        "pq": evidence["progress_quotient"],
    }


@register
class SubtleOverfittingDetector(_RiseDetector):
    """``FW-OVERFIT-SUBTLE``: accuracy flat or improving while validation NLL and ECE rise.

    Guo et al. (2017, Fig. 3): NLL overfits while the error rate still falls; the model becomes
    overconfident, which the aggregate accuracy hides. The NLL rise is tested like ``FW-OVERFIT``'s
    (noise-scaled GL, Mann-Kendall or a sharp rise, consecutive confirmations) on ``val["nll"]``, else
    ``val["loss"]``. The accuracy (else macro F1) must be no worse than at the best NLL, within
    ``max(accuracy_tolerance, accuracy_se x binomial SE)``; the ECE must exceed its median over the
    three evaluations up to the best NLL by ``max(ece_min_rise, ece_chance_factor x ece_chance)``.

    The ECE and accuracy facts corroborate the NLL rise, so they may also confirm it early: once it is held on
    every evaluation since the best, ``corroborated_factor`` noise units high, with the training loss down by
    ``train_fall`` (as for ``FW-OVERFIT``).

    Args:
        window: Evaluations the one-sided Mann-Kendall test of the NLL reads.
        alpha: Its significance level.
        noise_factor: GL threshold of the NLL in units of its relative noise.
        gl_floor: Smallest GL threshold of the NLL, percent.
        confirmations: Consecutive evaluations the condition must hold.
        min_evaluations: Finite NLL values needed before anything is reported.
        sharp_factor: GL threshold of the NLL, in units of its relative noise, above which a still-rising NLL
            needs no Mann-Kendall trend.
        accuracy_tolerance: Largest accuracy drop still "flat", absolute.
        accuracy_se: Largest accuracy drop still "flat", in binomial standard errors at ``val["samples"]``.
        ece_chance_factor: Smallest ECE rise in units of ``val["ece_chance"]``.
        ece_min_rise: Smallest ECE rise, absolute.
        corroborated_factor: GL threshold of the NLL for an early confirmation, in units of its noise.
        train_fall: Share by which the training loss must have fallen since the best for an early confirmation.

    Raises:
        ValueError: As :class:`OverfittingDetector`, or if a tolerance is not positive.
        TypeError: If a count is not an int or a factor not a number.
    """

    name: ClassVar[str] = "subtle_overfitting"

    def __init__(
        self,
        *,
        window: int = WINDOW,
        alpha: float = ALPHA,
        noise_factor: float = NOISE_FACTOR,
        gl_floor: float = GL_FLOOR,
        confirmations: int = CONFIRMATIONS,
        min_evaluations: int = MIN_EVALUATIONS,
        sharp_factor: float = SHARP_FACTOR,
        accuracy_tolerance: float = ACCURACY_TOLERANCE,
        accuracy_se: float = ACCURACY_SE,
        ece_chance_factor: float = ECE_CHANCE_FACTOR,
        ece_min_rise: float = ECE_MIN_RISE,
        corroborated_factor: float = CORROBORATED_FACTOR,
        train_fall: float = TRAIN_FALL,
    ) -> None:
        super().__init__(
            window=window,
            alpha=alpha,
            noise_factor=noise_factor,
            gl_floor=gl_floor,
            confirmations=confirmations,
            min_evaluations=min_evaluations,
            sharp_factor=sharp_factor,
            corroborated_factor=corroborated_factor,
            train_fall=train_fall,
        )
        self.accuracy_tolerance = v.check_positive_float("accuracy_tolerance", accuracy_tolerance)
        self.accuracy_se = v.check_positive_float("accuracy_se", accuracy_se)
        self.ece_chance_factor = v.check_positive_float("ece_chance_factor", ece_chance_factor)
        self.ece_min_rise = v.check_positive_float("ece_min_rise", ece_min_rise)
        self.nll: list[float | None] = []
        self.score: list[float | None] = []
        self.score_name = ""
        self.ece: list[float | None] = []
        self.train_loss: list[float | None] = []

    #: Per-evaluation lists, with the value that stands for "unknown" (a state saved without one of them, such as
    #: ``train_loss``, added later).
    series: ClassVar[Mapping[str, Any]] = {
        "epochs": None,
        "steps": 0,
        "nll": None,
        "score": None,
        "ece": None,
        "train_loss": None,
    }

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self._append(record)
        val = record.val
        nll = finite_or_none(val.get("nll"))
        self.nll.append(nll if nll is not None else finite_or_none(val.get("loss")))
        if not self.score_name:
            self.score_name = "accuracy" if "accuracy" in val else "macro_f1" if "macro_f1" in val else ""
        self.score.append(finite_or_none(val.get(self.score_name)) if self.score_name else None)
        self.ece.append(finite_or_none(val.get("ece")))
        self.train_loss.append(finite_or_none(record.train.get("loss")))
        rise = self._rise(self.nll)
        facts = self._facts(rise, val) if rise is not None else None
        if self._confirm(facts is not None):
            assert rise is not None and facts is not None
            return self._finding(record, rise, facts)
        early = self._sustained_rise(self.nll, self.train_loss)
        facts = self._facts(early, val) if early is not None else None
        if early is None or facts is None:
            return None
        return self._finding(record, early, facts)

    def _facts(self, rise: Rise, val: Any) -> dict[str, float] | None:
        """Accuracy holding and ECE risen at this evaluation, with their numbers; None if either fails."""
        b = rise.best_index
        score_then, score_now = self.score[b], self.score[-1]
        if score_then is None or score_now is None:
            return None
        tolerance = score_tolerance(
            score_now,
            finite_or_none(val.get("samples")),
            tolerance=self.accuracy_tolerance,
            se_factor=self.accuracy_se,
        )
        if score_now < score_then - tolerance:
            return None
        ece = ece_rise(
            self.ece,
            b,
            finite_or_none(val.get("ece_chance")),
            min_rise=self.ece_min_rise,
            chance_factor=self.ece_chance_factor,
        )
        if ece is None:
            return None
        ece_then, ece_now, margin = ece
        return {
            "score_then": score_then,
            "score_now": score_now,
            "score_tolerance": tolerance,
            "ece_then": ece_then,
            "ece_now": ece_now,
            "ece_margin": margin,
        }

    def _finding(self, record: EvalRecord, rise: Rise, facts: dict[str, float]) -> Finding:
        b = rise.best_index
        name = "accuracy" if self.score_name == "accuracy" else "macro F1"
        s0, s1, e0, e1 = facts["score_then"], facts["score_now"], facts["ece_then"], facts["ece_now"]
        # The same words as FW-OVERFIT's for the same two evaluations; a fall within the score's noise is named as
        # a fall, with the noise that lets this finding stand.
        if s1 - s0 <= -SCORE_FLAT:
            held = score_move(name, s0, s1) + f" (within its noise, +/-{facts['score_tolerance']:.3f})"
        elif s1 - s0 < SCORE_FLAT:
            held = f"{name} holds at {s1:.3f}"
        else:
            held = f"{name} still improves ({s0:.3f} -> {s1:.3f})"
        ratio = f", {e1 / e0:.1f}x" if e0 > 0 else ""
        text = (
            f"{held} while validation NLL rose {_pct(rise.gl)} since {_at(self.epochs[b], b)} "
            f"({rise.best:.3g} -> {rise.current:.3g}) and ECE went from {e0:.3f} to {e1:.3f}{ratio}: "
            f"the model is becoming overconfident, and the aggregate {name} hides it"
        )
        evidence: dict[str, Any] = {
            "best_nll": rise.best,
            "best_epoch": self.epochs[b],
            "best_step": self.steps[b],
            "nll": rise.current,
            "nll_rise_pct": rise.gl,
            "nll_rise_threshold_pct": rise.threshold,
            "gl_threshold": rise.threshold,
            "p_increasing": rise.p_increasing,
            "score": self.score_name,
            "score_at_best": s0,
            "score_now": s1,
            "score_tolerance": facts["score_tolerance"],
            "ece_at_best": e0,
            "ece_now": e1,
            "ece_margin": facts["ece_margin"],
        }
        return Finding(
            code="FW-OVERFIT-SUBTLE",
            severity=Severity.WARNING,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )


#: The gap must widen by at least this share of the current validation loss (loss gap) ...
MIN_LOSS_WIDENING = 0.1
#: ... or by at least this much accuracy (accuracy gap), and by ``noise_factor`` x its own noise.
MIN_ACCURACY_WIDENING = 0.02
#: Evaluations skipped at the start: the first training numbers average over an untrained model.
SKIP_FIRST = 1


@register
class GapDetector(_RiseDetector):
    """``FW-GAP-WIDENING``: the validation-minus-training loss gap (or training-minus-validation accuracy
    gap) grows with a significant trend.

    The gap of an evaluation compares validation metrics (eval mode) with training metrics measured in
    train mode (dropout on) and averaged over the interval since the previous validation, so the first
    ``skip_first`` evaluations (averaging over a model that started untrained) are left out. In healthy
    fine-tuning the gap grows somewhat as the training loss goes towards zero: the finding is INFO while
    the validation loss is still improving or flat, and WARNING only when the validation loss itself
    rises as a confirmed trend (the same test as ``FW-OVERFIT``, on as many consecutive evaluations).

    A gap widens when, over the last ``window`` evaluations, its one-sided Mann-Kendall p-value is below
    ``alpha``, its Theil-Sen slope is positive, and the widening that slope implies over the window
    exceeds both ``noise_factor`` times the gap's own noise and ``min_loss_widening`` x the validation
    loss (``min_accuracy_widening`` for accuracy), on ``confirmations`` consecutive evaluations.

    Args:
        window: Evaluations the trend test reads (``FitWatchConfig.gap_window``).
        alpha: One-sided Mann-Kendall significance of the widening.
        noise_factor: Smallest widening in units of the gap's noise; also the GL factor of the validation
            test.
        gl_floor: Smallest GL threshold of the validation-loss rise (WARNING), percent.
        confirmations: Consecutive evaluations the condition must hold.
        min_evaluations: Finite gap values needed before anything is reported.
        sharp_factor: As :class:`OverfittingDetector`'s, for the validation-loss rise that makes a WARNING.
        min_loss_widening: Smallest widening of the loss gap, relative to the current validation loss.
        min_accuracy_widening: Smallest widening of the accuracy gap, absolute.
        skip_first: Leading evaluations left out of the gap.

    Raises:
        ValueError: As :class:`OverfittingDetector`, or if a widening is not positive.
        TypeError: If a count is not an int or a factor not a number.
    """

    name: ClassVar[str] = "gap"

    def __init__(
        self,
        *,
        window: int = WINDOW,
        alpha: float = ALPHA,
        noise_factor: float = NOISE_FACTOR,
        gl_floor: float = GL_FLOOR,
        confirmations: int = CONFIRMATIONS,
        min_evaluations: int = MIN_EVALUATIONS,
        sharp_factor: float = SHARP_FACTOR,
        min_loss_widening: float = MIN_LOSS_WIDENING,
        min_accuracy_widening: float = MIN_ACCURACY_WIDENING,
        skip_first: int = SKIP_FIRST,
    ) -> None:
        super().__init__(
            window=window,
            alpha=alpha,
            noise_factor=noise_factor,
            gl_floor=gl_floor,
            confirmations=confirmations,
            min_evaluations=min_evaluations,
            sharp_factor=sharp_factor,
        )
        self.min_loss_widening = v.check_positive_float("min_loss_widening", min_loss_widening)
        self.min_accuracy_widening = v.check_positive_float("min_accuracy_widening", min_accuracy_widening)
        self.skip_first = v.check_non_negative_int("skip_first", skip_first)
        self.val_loss: list[float | None] = []
        self.loss_gap: list[float | None] = []
        self.accuracy_gap: list[float | None] = []
        self.val_accuracy: list[float | None] = []
        self.val_streak = 0

    #: Per-evaluation lists, with the value that stands for "unknown" (a state saved without one of them).
    series: ClassVar[Mapping[str, Any]] = {
        "epochs": None,
        "steps": 0,
        "val_loss": None,
        "loss_gap": None,
        "accuracy_gap": None,
        "val_accuracy": None,
    }

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self._append(record)
        vl, tl = finite_or_none(record.val.get("loss")), finite_or_none(record.train.get("loss"))
        va, ta = finite_or_none(record.val.get("accuracy")), finite_or_none(record.train.get("accuracy"))
        early = len(self.steps) <= self.skip_first
        self.val_loss.append(vl)
        self.val_accuracy.append(va)
        self.loss_gap.append(None if early or vl is None or tl is None else vl - tl)
        self.accuracy_gap.append(None if early or va is None or ta is None else ta - va)
        rise = self._rise(self.val_loss)
        self.val_streak = self.val_streak + 1 if rise is not None else 0
        scale = vl if vl is not None else 0.0
        loss = self._widening(self.loss_gap, self.min_loss_widening * scale) if vl is not None else None
        acc = self._widening(self.accuracy_gap, self.min_accuracy_widening)
        if not self._confirm(loss is not None or acc is not None):
            return None
        return self._finding(record, loss, acc, rise if self.val_streak >= self.confirmations else None)

    def _widening(self, gap: list[float | None], minimum: float) -> dict[str, float] | None:
        recent = gap[-self.window :]
        values = finite(recent)
        if len(values) < self.min_evaluations or len(finite(gap)) < self.min_evaluations:
            return None
        mk = mann_kendall(recent)  # type: ignore[arg-type]
        slope = theil_sen_slope(recent)
        if not (mk.p_increasing < self.alpha and slope > 0):
            return None
        positions = [i for i, g in enumerate(recent) if g is not None]
        widening = slope * (positions[-1] - positions[0])
        noise = trimmed_noise(finite(gap))
        if widening <= max(minimum, self.noise_factor * (noise if math.isfinite(noise) else 0.0)):
            return None
        return {
            "from": values[0],
            "to": values[-1],
            "widening": widening,
            "p_increasing": mk.p_increasing,
            "noise": noise,
            "span": float(positions[-1] - positions[0] + 1),
        }

    def _finding(
        self,
        record: EvalRecord,
        loss: dict[str, float] | None,
        acc: dict[str, float] | None,
        rise: Rise | None,
    ) -> Finding:
        parts = []
        if loss is not None:
            parts.append(
                gap_move("the validation-minus-training loss gap", loss["from"], loss["to"])
                + f" over the last {loss['span']:.0f} evaluations (Mann-Kendall p={loss['p_increasing']:.3g})"
            )
        if acc is not None:
            parts.append(
                gap_move("the training-minus-validation accuracy gap", acc["from"], acc["to"], ".3f")
                + f" over the last {acc['span']:.0f} evaluations (Mann-Kendall p={acc['p_increasing']:.3g})"
            )
        if rise is not None:
            severity = Severity.WARNING
            tail = (
                f" while validation loss rose {_pct(rise.gl)} above its best ({rise.best:.3g} -> "
                f"{rise.current:.3g}): the model fits the training set at the expense of validation"
            )
        else:
            severity = Severity.INFO
            tail = (
                " while validation loss is still improving or flat; some widening is normal as the "
                "training loss goes to zero, worth watching"
            )
        evidence: dict[str, Any] = {"validation_rising": rise is not None}
        for prefix, facts in (("loss_gap", loss), ("accuracy_gap", acc)):
            if facts is not None:
                evidence.update({f"{prefix}_{k}": x for k, x in facts.items()})
        if rise is not None:
            evidence.update({"val_gl": rise.gl, "val_loss_rise_pct": rise.gl, "val_best": rise.best,
                             "val_loss": rise.current})
        return Finding(
            code="FW-GAP-WIDENING",
            severity=severity,
            step=int(record.step),
            epoch=record.epoch,
            message="; ".join(parts) + tail,
            evidence=rounded(evidence),
        )
