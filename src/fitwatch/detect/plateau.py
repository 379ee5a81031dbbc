"""Stalled progress, two ways: a plateau before convergence (``FW-PLATEAU``) and a learning-rate schedule
that reached zero while the run was still improving (``FW-LR-DECAYED``).

Both read :class:`~fitwatch.detect.records.EvalRecord`. They are told apart from each other and from
convergence: a plateau is not reported while the learning rate has decayed to (near) zero (that is
``FW-LR-DECAYED``'s case), nor once the training loss is low and flat (the run has converged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, register, rounded
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import finite, finite_or_none, mann_kendall, theil_sen_slope, trimmed_noise
from fitwatch.findings import Finding, Severity

__all__ = ["LRDecayedDetector", "PlateauDetector"]

#: Evaluations without improvement tolerated before a plateau is reported. torch's ReduceLROnPlateau
#: default is 10 epochs, set for training from scratch over hundreds of epochs; a fine-tuning run has
#: 3-20 evaluations, and Lightning's EarlyStopping default (3) sits closer to that scale.
PATIENCE = 4
#: Smallest relative improvement that counts (ReduceLROnPlateau ``threshold_mode="rel"``). torch's
#: 1e-4 is far below the 1-5% noise of a validation loss, so noise alone would count as progress.
THRESHOLD = 0.01
#: The relative threshold is also at least this many times the validation loss's own relative noise.
NOISE_FACTOR = 1.0
#: One-sided Mann-Kendall level at which a downward trend since the best counts as significant.
ALPHA = 0.05
#: A run whose training loss is flat at or below this share of its highest value has converged.
#: A stuck run stays near its starting loss (ratio 0.9-1.0); fine-tuning that converged has typically
#: divided its training loss by several.
CONVERGED_FRACTION = 0.5
#: The "still decreasing" tests read at most this many of the evaluations since the best: Mann-Kendall and
#: Theil-Sen are quadratic in their window, and a plateau hundreds of evaluations long is decided by its end.
TREND_WINDOW = 64
#: A learning rate below this share of the peak seen counts as decayed to (near) zero.
LR_FRACTION = 0.01


def _at(epoch: int | None, index: int) -> str:
    return f"epoch {epoch}" if epoch is not None else f"evaluation {index + 1}"


def _relative_slope(values: Sequence[float | None]) -> tuple[float, float]:
    """Theil-Sen slope per evaluation relative to the median level, and the Mann-Kendall p of a decrease."""
    pts = finite(values)
    if len(pts) < 3:
        return math.nan, 1.0
    level = sorted(pts)[len(pts) // 2]
    slope = theil_sen_slope(values)  # type: ignore[arg-type]
    return (slope / level if level > 0 else math.nan), mann_kendall(values).p_decreasing  # type: ignore[arg-type]


def _lr_ratio(lr_history: list[list[float | None]], current: Sequence[float]) -> float | None:
    """Largest ratio, over param groups with a positive peak, of the current learning rate to its peak.

    Below a fraction only when every group is: a schedule that ends early moves all groups together.
    """
    ratios = []
    for g, lr in enumerate(current):
        peak = max((row[g] for row in lr_history if g < len(row) and row[g] is not None), default=None)
        now = finite_or_none(lr)
        if peak is not None and peak > 0 and now is not None:
            ratios.append(now / peak)
    return max(ratios) if ratios else None


@register
class PlateauDetector(Detector):
    """``FW-PLATEAU``: the validation loss stopped improving before the run converged.

    ReduceLROnPlateau semantics (``mode="min"``, ``threshold_mode="rel"``, no cooldown): an evaluation
    improves when its validation loss is below ``best * (1 - t)``, where ``t`` is the largest of
    ``threshold`` and ``noise_factor`` times the loss's relative noise; otherwise it is a bad evaluation,
    and more than ``patience`` bad evaluations in a row make a candidate plateau, exactly where torch
    would reduce the learning rate. Mapping to torch's defaults (``patience=10, threshold=1e-4``): see
    :data:`PATIENCE` and :data:`THRESHOLD`.

    The candidate is reported only when none of these explains it:

    - the validation loss still goes down as a trend: over the evaluations since the best (at most the last
      :data:`TREND_WINDOW`), a one-sided Mann-Kendall p-value below ``alpha`` and a Theil-Sen slope that
      would gain ``threshold`` within ``patience`` evaluations (a statistically significant but tiny slope
      is still a plateau);
    - the training loss still goes down the same way (the validation loss saturates while the model
      keeps fitting: the gap and overfitting detectors' business, not a stall);
    - the run converged: training loss flat at or below ``converged_fraction`` of its highest value;
    - the learning rate of every param group is below ``lr_fraction`` of its peak (``FW-LR-DECAYED``).

    Severity is WARNING; without training losses convergence cannot be ruled out, so it is INFO.

    Args:
        patience: Bad evaluations tolerated; the plateau is reported at the ``patience + 1``-th.
        threshold: Smallest relative improvement that counts.
        noise_factor: The improvement threshold is at least this many times the relative noise.
        alpha: One-sided Mann-Kendall level of the "still decreasing" tests.
        converged_fraction: Training loss at or below this share of its highest value means converged.
        lr_fraction: Learning rate below this share of its peak means decayed.

    Raises:
        ValueError: If ``patience`` is not positive, or ``threshold``, ``alpha``, ``converged_fraction`` or
            ``lr_fraction`` is not in (0, 1), or ``noise_factor`` is negative.
        TypeError: If an argument has the wrong type.

    >>> det = PlateauDetector()
    >>> val = [2.30, 2.28, 2.27, 2.27, 2.28, 2.27, 2.28, 2.27, 2.28]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"loss": x}, train={"loss": x + 0.01}))
    ...          for i, x in enumerate(val)]
    >>> [f is not None for f in found]
    [False, False, False, False, False, False, False, True, True]
    """

    name: ClassVar[str] = "plateau"
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        patience: int = PATIENCE,
        threshold: float = THRESHOLD,
        noise_factor: float = NOISE_FACTOR,
        alpha: float = ALPHA,
        converged_fraction: float = CONVERGED_FRACTION,
        lr_fraction: float = LR_FRACTION,
    ) -> None:
        self.patience = v.check_positive_int("patience", patience)
        for arg, val in (
            ("threshold", threshold),
            ("alpha", alpha),
            ("converged_fraction", converged_fraction),
            ("lr_fraction", lr_fraction),
        ):
            v.check_fraction(arg, val)
            if not 0.0 < val < 1.0:
                raise ValueError(f"Expected `{arg}` to be a float in (0, 1), but got {val!r}.")
        if isinstance(noise_factor, bool) or not isinstance(noise_factor, (int, float)):
            raise TypeError(
                f"Expected `noise_factor` to be a non-negative float, but got "
                f"{type(noise_factor).__name__} {noise_factor!r}."
            )
        if not (math.isfinite(noise_factor) and noise_factor >= 0):
            raise ValueError(f"Expected `noise_factor` to be a non-negative float, but got {noise_factor!r}.")
        self.threshold = float(threshold)
        self.noise_factor = float(noise_factor)
        self.alpha = float(alpha)
        self.converged_fraction = float(converged_fraction)
        self.lr_fraction = float(lr_fraction)
        self.val_loss: list[float | None] = []
        self.train_loss: list[float | None] = []
        self.lr: list[list[float | None]] = []
        self.epochs: list[int | None] = []
        self.best: float | None = None
        self.best_index = -1
        self.bad = 0

    #: Per-evaluation lists, with the value that stands for "unknown" (a state saved without one of them).
    series: ClassVar[Mapping[str, Any]] = {"val_loss": None, "train_loss": None, "lr": [], "epochs": None}

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        loss = finite_or_none(record.val.get("loss"))
        self.val_loss.append(loss)
        self.train_loss.append(finite_or_none(record.train.get("loss")))
        self.lr.append([finite_or_none(x) for x in record.lr])
        self.epochs.append(record.epoch)
        t = self._effective_threshold()
        if loss is not None and (self.best is None or loss < self.best * (1.0 - t)):
            self.best, self.best_index, self.bad = loss, len(self.val_loss) - 1, 0
        else:
            self.bad += 1  # a missing or non-finite loss is no improvement, as in torch
        if self.best is None or self.bad <= self.patience:
            return None
        return self._judge(record, t)

    def _effective_threshold(self) -> float:
        logs = [math.log(x) for x in finite(self.val_loss) if x > 0]
        noise = trimmed_noise(logs) if len(logs) >= 4 else math.nan
        return max(self.threshold, self.noise_factor * noise if math.isfinite(noise) else 0.0)

    def _still_decreasing(self, values: Sequence[float | None]) -> bool:
        slope, p = _relative_slope(values[-TREND_WINDOW:])
        return p < self.alpha and math.isfinite(slope) and -slope * self.patience >= self.threshold

    def _judge(self, record: EvalRecord, t: float) -> Finding | None:
        since = self.val_loss[self.best_index :]
        if self._still_decreasing(since):
            return None
        lr_ratio = _lr_ratio(self.lr, record.lr)
        if lr_ratio is not None and lr_ratio < self.lr_fraction:
            return None
        train = finite(self.train_loss[self.best_index :])
        highest = max(finite(self.train_loss), default=None)
        evidence: dict[str, Any] = {
            "best_loss": self.best,
            "best_epoch": self.epochs[self.best_index],
            "loss": self.val_loss[-1],
            "bad_evaluations": self.bad,
            "patience": self.patience,
            "threshold": t,
            "lr_ratio": lr_ratio,
        }
        best_at = _at(self.epochs[self.best_index], self.best_index)
        now = self.val_loss[-1]
        text = (
            f"validation loss has not improved by more than {100 * t:.1f}% for {self.bad} evaluations "
            f"(best {self.best:.3g} at {best_at}, now {'n/a' if now is None else f'{now:.3g}'})"
        )
        if train and highest:
            if self._still_decreasing(self.train_loss[self.best_index :]):
                return None
            ratio = train[-1] / highest
            evidence.update({"train_loss": train[-1], "train_ratio_to_highest": ratio})
            if ratio <= self.converged_fraction:
                return None
            text += (
                f" and training loss is flat at {train[-1]:.3g} ({100 * ratio:.0f}% of its highest, "
                f"{highest:.3g}): the run is stuck on a plateau before converging"
            )
            severity = Severity.WARNING
        else:
            text += "; without training losses fitwatch cannot tell a plateau from convergence"
            severity = Severity.INFO
        return Finding(
            code="FW-PLATEAU",
            severity=severity,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )


#: Fraction of training before which a learning rate at (near) zero means the schedule ended early.
#: Linear decay passes 1% of the peak at 99% of training, cosine at ~94%: both stay quiet.
END_PROGRESS = 0.9
#: With ``progress`` unknown, evaluations in a row with a decayed learning rate before reporting
#: (training that goes on with a learning rate of zero; a healthy schedule ends with at most one).
MIN_DECAYED_EVALUATIONS = 2
#: Evaluations before the decay that show whether the curve was still improving ...
LOOKBACK = 4
#: ... by at least this relative improvement of the validation loss over them.
MIN_IMPROVEMENT = 0.01


@register
class LRDecayedDetector(Detector):
    """``FW-LR-DECAYED``: the learning rate reached (near) zero while the run was still improving.

    The learning rate of every param group with a positive peak is below ``lr_fraction`` of the peak seen,
    and over the last ``lookback`` evaluations before it got there the validation loss (else the training
    loss) improved by at least ``min_improvement`` (relative): a schedule that ends too early, typically
    a miscounted number of total steps (gradient accumulation, several devices). A healthy
    decay-to-zero that ends with training must stay quiet: with ``progress`` known, the finding needs
    ``progress < end_progress``; unknown, it needs ``min_decayed_evaluations`` evaluations in a row with
    the decayed learning rate (training that goes on after the schedule ended).

    Args:
        lr_fraction: Share of the peak learning rate below which it counts as decayed.
        end_progress: With progress known, the fraction of training before which a decayed rate is early.
        min_decayed_evaluations: With progress unknown, decayed evaluations in a row needed.
        lookback: Evaluations before the decay read for improvement.
        min_improvement: Smallest relative improvement over them that counts as still improving.

    Raises:
        ValueError: If a fraction is not in (0, 1) or a count is not positive (``lookback`` at least 2).
        TypeError: If an argument has the wrong type.

    >>> det = LRDecayedDetector()
    >>> lrs = [2e-5, 1.5e-5, 1e-5, 5e-6, 0.0, 0.0]
    >>> val = [0.9, 0.7, 0.6, 0.55, 0.53, 0.53]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"loss": x}, lr=[lr], progress=(i + 1) / 20))
    ...          for i, (x, lr) in enumerate(zip(val, lrs))]
    >>> [f is not None for f in found]
    [False, False, False, False, True, True]
    >>> print(found[4].message)  # doctest: +NORMALIZE_WHITESPACE
    learning rate fell to 0 (below 1% of its peak 2e-05) at 25% of training while validation loss was
    still improving (0.9 -> 0.55 over the 4 evaluations before); the schedule ends too early
    """

    name: ClassVar[str] = "lr_decayed"
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        lr_fraction: float = LR_FRACTION,
        end_progress: float = END_PROGRESS,
        min_decayed_evaluations: int = MIN_DECAYED_EVALUATIONS,
        lookback: int = LOOKBACK,
        min_improvement: float = MIN_IMPROVEMENT,
    ) -> None:
        for arg, val in (
            ("lr_fraction", lr_fraction),
            ("end_progress", end_progress),
            ("min_improvement", min_improvement),
        ):
            v.check_fraction(arg, val)
            if not 0.0 < val < 1.0:
                raise ValueError(f"Expected `{arg}` to be a float in (0, 1), but got {val!r}.")
        self.lr_fraction = float(lr_fraction)
        self.end_progress = float(end_progress)
        self.min_improvement = float(min_improvement)
        self.min_decayed_evaluations = v.check_positive_int(
            "min_decayed_evaluations", min_decayed_evaluations
        )
        self.lookback = v.check_positive_int("lookback", lookback)
        if lookback < 2:
            raise ValueError(
                f"Expected `lookback` to be at least 2 (an improvement needs 2 points), but got {lookback}."
            )
        self.lr: list[list[float | None]] = []
        self.val_loss: list[float | None] = []
        self.train_loss: list[float | None] = []
        self.decayed_run = 0
        self.decay_index = -1
        self.decay_progress: float | None = None

    #: Per-evaluation lists, with the value that stands for "unknown" (a state saved without one of them).
    series: ClassVar[Mapping[str, Any]] = {"lr": [], "val_loss": None, "train_loss": None}

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self.lr.append([finite_or_none(x) for x in record.lr])
        self.val_loss.append(finite_or_none(record.val.get("loss")))
        self.train_loss.append(finite_or_none(record.train.get("loss")))
        ratio = _lr_ratio(self.lr, record.lr)
        if ratio is None or ratio >= self.lr_fraction:
            self.decayed_run, self.decay_index = 0, -1
            return None
        if self.decayed_run == 0:
            self.decay_index = len(self.lr) - 1
            self.decay_progress = finite_or_none(record.progress)
        self.decayed_run += 1
        progress = finite_or_none(record.progress)
        if progress is not None:
            if progress >= self.end_progress:
                return None
        elif self.decayed_run < self.min_decayed_evaluations:
            return None
        before = self._improvement()
        if before is None:
            return None
        name, first, last, span, gain = before
        if gain < self.min_improvement:
            return None
        peak = max(x for row in self.lr for x in row if x is not None)
        current = max((x for x in self.lr[-1] if x is not None), default=0.0)
        # When it fell, not where training is now: the finding is updated at every evaluation after.
        fell_at = self.decay_progress if self.decay_progress is not None else progress
        when = (
            f"at {100 * fell_at:.0f}% of training"
            if fell_at is not None
            else (f"and stayed there for {self.decayed_run} evaluations as training went on,")
        )
        text = (
            f"learning rate fell to {current:.3g} "
            f"(below {100 * self.lr_fraction:.0f}% of its peak {peak:.3g}) "
            f"{when} while {name} loss was still improving ({first:.3g} -> {last:.3g} over the {span} "
            f"evaluations before); the schedule ends too early"
        )
        evidence = {
            "lr": current,
            "peak_lr": peak,
            "lr_ratio": ratio,
            "progress": progress,
            "decay_progress": self.decay_progress,
            "decayed_evaluations": self.decayed_run,
            "improvement_before": gain,
            "series": name,
        }
        return Finding(
            code="FW-LR-DECAYED",
            severity=Severity.WARNING,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )

    def _improvement(self) -> tuple[str, float, float, int, float] | None:
        """(series, first, best, count, relative gain) over the ``lookback`` evaluations before the decay."""
        lo = max(0, self.decay_index - self.lookback)
        for name, series in (("validation", self.val_loss), ("training", self.train_loss)):
            window = finite(series[lo : self.decay_index])
            if len(window) >= 2 and window[0] > 0:
                best = min(window[1:])
                return name, window[0], best, len(window), (window[0] - best) / window[0]
        return None
