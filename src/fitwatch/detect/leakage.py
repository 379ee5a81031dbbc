"""Too good to be true: validation near perfect very early and better than training from the first
evaluations (``FW-LEAK-SUSPICIOUS``), the learning-curve signature of validation samples leaked into
training.

Careful with the baseline: the training numbers of an evaluation come from train-mode logits (dropout on)
averaged over the interval since the previous validation, and the first interval starts from an untrained
model, so validation better than training at the first evaluation is normal, and by a little afterwards
too (dropout). Only near-perfect validation early *and* validation clearly better than training on every
evaluation after the first is a warning; either alone is INFO.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, register, rounded
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import finite_or_none, two_proportion_z
from fitwatch.findings import Finding, Severity

__all__ = ["LeakSuspiciousDetector"]

#: The first evaluations that count as "early".
EARLY_EVALUATIONS = 3
#: Validation accuracy at or above this is near perfect.
NEAR_PERFECT = 0.99
#: Smallest validation set on which near-perfect accuracy means something (on 36 samples, 1.0 is one
#: lucky draw away from 0.97; on 100 samples, 0.99 has a binomial standard error of 0.01).
MIN_SAMPLES = 100
#: "Clearly better": validation accuracy above training accuracy by at least this much ...
MIN_GAP = 0.05
#: ... with a two-proportion z statistic of at least this (when the sample counts are known) ...
MIN_Z = 3.0
#: ... or, without accuracies, a validation loss at most this share of the training loss.
LOSS_RATIO = 0.5

_CHECKS = (
    "run fitwatch.data.find_duplicates on the training and validation sets, and "
    "fitwatch.data.check_temporal_split if the data are ordered in time"
)


def _at(epoch: int | None, index: int) -> str:
    return f"epoch {epoch}" if epoch is not None else f"evaluation {index + 1}"


@register
class LeakSuspiciousDetector(Detector):
    """``FW-LEAK-SUSPICIOUS``: validation near perfect early and clearly better than training from the
    first evaluations.

    Judged once the first ``early_evaluations`` evaluations are in: *near perfect* when validation accuracy
    reached ``near_perfect`` among them (WARNING needs ``val["samples"] >= min_samples``); *persistently
    better* when validation was clearly better than training on every one of them after the first
    (accuracy ahead by ``min_gap`` with a two-proportion z of at least ``min_z``, or without accuracies a
    validation loss at most ``loss_ratio`` of the training loss). Both: WARNING. One: INFO. The finding is
    returned from then on while the current evaluation still shows the same picture.

    Args:
        early_evaluations: How many first evaluations count as early (at least 2).
        near_perfect: Validation accuracy that counts as near perfect.
        min_samples: Smallest validation set for a near-perfect accuracy to warn.
        min_gap: Smallest accuracy lead of validation over training that counts.
        min_z: Smallest two-proportion z of that lead (skipped when sample counts are unknown).
        loss_ratio: Without accuracies, validation loss at most this share of training loss counts.

    Raises:
        ValueError: If ``early_evaluations`` < 2, ``min_samples`` or ``min_z`` not positive, or a fraction
            not in [0, 1].
        TypeError: If an argument has the wrong type.

    >>> det = LeakSuspiciousDetector()
    >>> rows = [(0.995, 0.55), (0.998, 0.78), (0.998, 0.86), (0.999, 0.90)]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"accuracy": va, "samples": 2000},
    ...                                train={"accuracy": ta, "samples": 8000}))
    ...          for i, (va, ta) in enumerate(rows)]
    >>> [None if f is None else f.severity.name for f in found]
    [None, None, 'WARNING', 'WARNING']
    """

    name: ClassVar[str] = "leak_suspicious"
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        early_evaluations: int = EARLY_EVALUATIONS,
        near_perfect: float = NEAR_PERFECT,
        min_samples: int = MIN_SAMPLES,
        min_gap: float = MIN_GAP,
        min_z: float = MIN_Z,
        loss_ratio: float = LOSS_RATIO,
    ) -> None:
        self.early_evaluations = v.check_positive_int("early_evaluations", early_evaluations)
        if early_evaluations < 2:
            raise ValueError(
                f"Expected `early_evaluations` to be at least 2 (the first evaluation alone is normal), "
                f"but got {early_evaluations}."
            )
        self.near_perfect = v.check_fraction("near_perfect", near_perfect)
        self.min_samples = v.check_positive_int("min_samples", min_samples)
        self.min_gap = v.check_fraction("min_gap", min_gap)
        self.min_z = v.check_positive_float("min_z", min_z)
        self.loss_ratio = v.check_fraction("loss_ratio", loss_ratio)
        self.evaluations = 0
        self.near_at: list[Any] | None = None  # [accuracy, epoch label, samples or None]
        self.better: list[bool] = []
        self.last_pair: list[Any] = []

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self.evaluations += 1
        val, train = record.val, record.train
        accuracy = finite_or_none(val.get("accuracy"))
        samples = finite_or_none(val.get("samples"))
        near_now = accuracy is not None and accuracy >= self.near_perfect
        better_now = self._better(val, train)
        if self.evaluations <= self.early_evaluations:
            if near_now and self.near_at is None:
                self.near_at = [accuracy, _at(record.epoch, self.evaluations - 1), samples]
            if self.evaluations > 1:
                self.better.append(better_now)
            if self.evaluations < self.early_evaluations:
                return None
        near = self.near_at is not None and near_now
        better = bool(self.better) and all(self.better) and better_now
        if not (near or better):
            return None
        enough = (
            self.near_at is not None and self.near_at[2] is not None and self.near_at[2] >= self.min_samples
        )
        severity = Severity.WARNING if near and better and enough else Severity.INFO
        return self._finding(record, severity, near, better, accuracy)

    def _better(self, val: Any, train: Any) -> bool:
        va, ta = finite_or_none(val.get("accuracy")), finite_or_none(train.get("accuracy"))
        if va is not None and ta is not None:
            self.last_pair = ["accuracy", va, ta]
            if va - ta < self.min_gap:
                return False
            nv, nt = finite_or_none(val.get("samples")), finite_or_none(train.get("samples"))
            if nv is None:
                return True
            z = two_proportion_z(va, nv, ta, nt if nt is not None else nv)
            return math.isfinite(z) and z >= self.min_z
        vl, tl = finite_or_none(val.get("loss")), finite_or_none(train.get("loss"))
        if vl is not None and tl is not None:
            self.last_pair = ["loss", vl, tl]
            return tl > 0 and vl <= self.loss_ratio * tl
        self.last_pair = []
        return False

    def _finding(
        self, record: EvalRecord, severity: Severity, near: bool, better: bool, accuracy: float | None
    ) -> Finding:
        parts = []
        if near and self.near_at is not None:
            parts.append(f"validation accuracy reached {self.near_at[0]:.3f} by {self.near_at[1]}")
        if better and self.last_pair:
            metric, va, ta = self.last_pair
            parts.append(
                f"validation {metric} has beaten training {metric} at every evaluation since the first "
                f"({va:.3g} vs {ta:.3g} now)"
            )
        text = " and ".join(parts)
        if severity is Severity.WARNING:
            text += (
                ": too good to be true this early, the usual cause is validation samples leaked into "
                "training; " + _CHECKS
            )
        elif near:
            text += f"; if the task is not this easy, {_CHECKS}"
        else:
            text += f"; some of this is dropout in the training numbers, but if it persists, {_CHECKS}"
        evidence = {
            "near_perfect": near,
            "persistently_better": better,
            "accuracy": accuracy,
            "samples": None if self.near_at is None else self.near_at[2],
            "comparison": list(self.last_pair),
        }
        return Finding(
            code="FW-LEAK-SUSPICIOUS",
            severity=severity,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )
