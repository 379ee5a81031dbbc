"""Calibration getting worse: ECE high for this validation set's size, and rising (``FW-CALIBRATION``).

A fixed ECE threshold is wrong on small sets: a perfectly calibrated model shows an ECE of about
0.06-0.09 on 100 samples and 0.02-0.03 on 1000 (15 bins), because each bin's accuracy deviates from its
confidence by binomial noise. ``val["ece_chance"]`` is the ECE such a model shows on this set (see
:mod:`fitwatch.detect.records`); the detector compares the ECE with it, and with the run's own earlier
calibration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, register, rounded
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import finite, finite_or_none, theil_sen_slope
from fitwatch.findings import Finding, Severity

__all__ = ["CalibrationDetector"]

#: "High": ECE at least this many times what a perfectly calibrated model shows on this set. The chance ECE
#: is a mean; when most samples sit in one or two confidence bins (the common case) the ECE of a calibrated
#: model is close to ``|Z|`` scaled to that mean, which exceeds 2x the mean on 11% of evaluations and
#: 2.5x on 4.6%; with two confirmations 2.5x leaves ~0.2% per evaluation pair.
CHANCE_FACTOR = 2.5
#: "High" also needs at least this absolute ECE: temperature scaling brings models to ECE 0.01-0.02
#: (Guo et al. 2017, Table 1), so below 0.02 calibration is as good as post-hoc fixes make it.
MIN_ECE = 0.02
#: "Rising": above the run's best smoothed earlier ECE by this many ``ece_chance`` ...
RISE_FACTOR = 1.0
#: ... and by at least this much absolute ECE (used alone when ``ece_chance`` is unknown).
MIN_RISE = 0.01
#: Evaluations the Theil-Sen slope (which must be positive) reads.
WINDOW = 5
#: Consecutive evaluations the condition must hold.
CONFIRMATIONS = 2


def _underconfident(val: Mapping[str, float]) -> bool:
    confidence, accuracy = finite_or_none(val.get("confidence")), finite_or_none(val.get("accuracy"))
    return confidence is not None and accuracy is not None and confidence < accuracy


def _at(epoch: int | None, index: int) -> str:
    return f"epoch {epoch}" if epoch is not None else f"evaluation {index + 1}"


@register
class CalibrationDetector(Detector):
    """``FW-CALIBRATION``: ECE high for the set's size and rising above the run's own earlier calibration.

    On ``confirmations`` consecutive evaluations: the ECE is at least ``chance_factor x ece_chance``
    and at least ``min_ece`` (high); it exceeds the run's best earlier level (the lowest median of three
    consecutive earlier evaluations, so one lucky evaluation does not set the bar) by at least
    ``max(min_rise, rise_factor x ece_chance)``; and its Theil-Sen slope over the last ``window``
    evaluations is positive (rising); and the model is not underconfident (mean confidence below accuracy:
    normal early in training, and what label smoothing does on purpose). Without ``ece_chance`` only the
    absolute floors apply.

    Args:
        chance_factor: "High" in units of ``ece_chance``.
        min_ece: "High" also needs at least this ECE.
        rise_factor: Smallest rise over the earlier best, in units of ``ece_chance``.
        min_rise: Smallest rise, absolute.
        window: Evaluations of the slope.
        confirmations: Consecutive evaluations the condition must hold.

    Raises:
        ValueError: If a factor or count is not positive, a floor not in [0, 1], or ``window`` < 3.
        TypeError: If an argument has the wrong type.

    >>> det = CalibrationDetector()
    >>> eces = [0.030, 0.025, 0.024, 0.026, 0.052, 0.060, 0.075]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"ece": e, "ece_chance": 0.02, "samples": 1000}))
    ...          for i, e in enumerate(eces)]
    >>> [f is not None for f in found]
    [False, False, False, False, False, True, True]
    >>> print(found[-1].message)  # doctest: +NORMALIZE_WHITESPACE
    ECE rose to 0.075 from 0.025 around epoch 1, 3.8x the 0.02 a perfectly calibrated model shows on these
    1000 validation samples: predicted confidences no longer match accuracy
    """

    name: ClassVar[str] = "calibration"
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        chance_factor: float = CHANCE_FACTOR,
        min_ece: float = MIN_ECE,
        rise_factor: float = RISE_FACTOR,
        min_rise: float = MIN_RISE,
        window: int = WINDOW,
        confirmations: int = CONFIRMATIONS,
    ) -> None:
        self.chance_factor = v.check_positive_float("chance_factor", chance_factor)
        self.min_ece = v.check_fraction("min_ece", min_ece)
        self.rise_factor = v.check_positive_float("rise_factor", rise_factor)
        self.min_rise = v.check_fraction("min_rise", min_rise)
        self.window = v.check_positive_int("window", window)
        if window < 3:
            raise ValueError(
                f"Expected `window` to be at least 3 (a trend needs 3 points), but got {window}."
            )
        self.confirmations = v.check_positive_int("confirmations", confirmations)
        self.ece: list[float | None] = []
        self.epochs: list[int | None] = []
        self.streak = 0

    #: Per-evaluation lists, with the value that stands for "unknown" (a state saved without one of them).
    series: ClassVar[Mapping[str, Any]] = {"ece": None, "epochs": None}

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        ece = finite_or_none(record.val.get("ece"))
        chance = finite_or_none(record.val.get("ece_chance"))
        earlier = self._earlier_best()
        self.ece.append(ece)
        self.epochs.append(record.epoch)
        holds = False
        if ece is not None and earlier is not None:
            high = ece >= self.min_ece and (chance is None or ece >= self.chance_factor * chance)
            margin = max(self.min_rise, self.rise_factor * chance if chance is not None else 0.0)
            slope = theil_sen_slope(self.ece[-self.window :])  # type: ignore[arg-type]
            holds = high and ece - earlier[0] >= margin and slope > 0 and not _underconfident(record.val)
        self.streak = self.streak + 1 if holds else 0
        if self.streak < self.confirmations:
            return None
        assert ece is not None and earlier is not None
        best, best_index = earlier
        text = f"ECE rose to {ece:.3f} from {best:.3f} around {_at(self.epochs[best_index], best_index)}"
        if chance is not None:
            samples = finite_or_none(record.val.get("samples"))
            on = f"these {samples:.0f} validation samples" if samples is not None else "this validation set"
            text += f", {ece / chance:.1f}x the {chance:.3g} a perfectly calibrated model shows on {on}"
        text += ": predicted confidences no longer match accuracy"
        evidence = {
            "ece": ece,
            "ece_chance": chance,
            "earlier_best": best,
            "earlier_best_epoch": self.epochs[best_index],
            "ratio_to_chance": None if not chance else ece / chance,
            "evaluations": self.streak,
        }
        return Finding(
            code="FW-CALIBRATION",
            severity=Severity.WARNING,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )

    def _earlier_best(self) -> tuple[float, int] | None:
        """Lowest median of three consecutive earlier ECEs (fewer at the start), and its middle index."""
        if not finite(self.ece):
            return None
        best: tuple[float, int] | None = None
        for i in range(len(self.ece)):
            window = finite(self.ece[max(0, i - 1) : i + 2])
            if not window or self.ece[i] is None:
                continue
            med = sorted(window)[len(window) // 2]
            if best is None or med < best[0]:
                best = (med, i)
        return best
