"""A run that is lost: after a fair share of training, validation accuracy is no better than always
predicting the most frequent class (``FW-FAILED-RUN``).

Fine-tuning large pretrained models fails outright on a sizeable share of random seeds: Dodge et al.
(2020) found many BERT runs on small GLUE tasks that never leave the majority-class baseline, and
Mosbach et al. (2021) define such a run as *failed* when its accuracy ends at or below that baseline
(they trace it to vanishing gradients early in training, not to the data).
"""

from __future__ import annotations

from typing import ClassVar

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, register, rounded
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import finite_or_none, theil_sen_slope
from fitwatch.findings import Finding, Severity

__all__ = ["FailedRunDetector"]

#: Share of training after which a run still at the baseline is judged failed: Mosbach et al. (2021)
#: see failed runs separate from the rest within the first 20-30% of training.
MIN_PROGRESS = 0.25
#: With ``progress`` unknown, evaluations before judging: with the usual 3-10 epochs of fine-tuning and
#: one evaluation per epoch, the third evaluation is past 20-30% of training.
MIN_EVALUATIONS = 3
#: "At the baseline": accuracy at most this far above ``majority_fraction`` (one point of accuracy:
#: a model that close to always predicting the majority class has learned next to nothing).
MARGIN = 0.01
#: Consecutive evaluations at the baseline (the earlier ones may fall before ``min_progress``).
CONFIRMATIONS = 2
#: Evaluations of the Theil-Sen slope of the accuracy: a run below the baseline that still climbs by more
#: than ``margin`` per evaluation is learning slowly, not failed.
WINDOW = 4
#: When ``macro_f1`` is known, it must also be within this of the macro F1 of always predicting the
#: majority class, ``2m / ((1 + m) C)``: a model trained with class weights on imbalanced data can sit
#: below the majority baseline in accuracy while it separates the classes well (high macro F1).
F1_MARGIN = 0.1


@register
class FailedRunDetector(Detector):
    """``FW-FAILED-RUN`` (CRITICAL): validation accuracy at or below the majority-class baseline after
    ``min_progress`` of training (``min_evaluations`` evaluations when ``progress`` is unknown).

    Reads ``val["accuracy"]`` and ``val["majority_fraction"]`` (share of the most frequent class); says
    nothing without them. The accuracy must be at most ``majority_fraction + margin`` on
    ``confirmations`` consecutive evaluations, and not climbing: its Theil-Sen slope over the last
    ``window`` evaluations at most ``margin`` per evaluation (a run below the baseline that still climbs
    is learning slowly, not failed). When ``val["macro_f1"]`` and the number of classes are known, the
    macro F1 must also be within ``f1_margin`` of a constant majority-class predictor's.

    Args:
        min_progress: Share of training after which the run is judged.
        min_evaluations: Evaluations after which it is judged when progress is unknown.
        margin: Largest accuracy above the baseline still counted as "at the baseline".
        confirmations: Consecutive evaluations at the baseline.
        window: Evaluations of the accuracy slope.
        f1_margin: Largest macro F1 above the constant predictor's still counted as failed.

    Raises:
        ValueError: If ``min_progress``, ``margin`` or ``f1_margin`` is not in [0, 1], a count is not
            positive or ``window`` < 2.
        TypeError: If an argument has the wrong type.

    >>> det = FailedRunDetector()
    >>> accs = [0.64, 0.645, 0.65, 0.64]
    >>> found = [det.update(EvalRecord(step=i, epoch=i, val={"accuracy": a, "majority_fraction": 0.65},
    ...                                progress=(i + 1) / 10)) for i, a in enumerate(accs)]
    >>> [f is not None for f in found]
    [False, False, True, True]
    >>> print(found[2].message)  # doctest: +NORMALIZE_WHITESPACE
    after 30% of training, validation accuracy is 0.650, at the majority-class baseline of 0.650 (always
    predicting the most frequent class): the run has failed, and such runs rarely recover
    """

    name: ClassVar[str] = "failed_run"
    resolves: ClassVar[bool] = True
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        min_progress: float = MIN_PROGRESS,
        min_evaluations: int = MIN_EVALUATIONS,
        margin: float = MARGIN,
        confirmations: int = CONFIRMATIONS,
        window: int = WINDOW,
        f1_margin: float = F1_MARGIN,
    ) -> None:
        self.min_progress = v.check_fraction("min_progress", min_progress)
        self.min_evaluations = v.check_positive_int("min_evaluations", min_evaluations)
        self.margin = v.check_fraction("margin", margin)
        self.confirmations = v.check_positive_int("confirmations", confirmations)
        self.window = v.check_positive_int("window", window)
        if window < 2:
            raise ValueError(
                f"Expected `window` to be at least 2 (a slope needs 2 points), but got {window}."
            )
        self.f1_margin = v.check_fraction("f1_margin", f1_margin)
        self.evaluations = 0
        self.streak = 0
        self.streak_step: int | None = None  # step of the last evaluation counted in the streak
        self.accuracy: list[float | None] = []

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self.evaluations += 1
        accuracy = finite_or_none(record.val.get("accuracy"))
        majority = finite_or_none(record.val.get("majority_fraction"))
        self.accuracy = [*self.accuracy[-(self.window - 1) :], accuracy]
        slope = theil_sen_slope(self.accuracy)  # type: ignore[arg-type]
        at_baseline = (
            not slope > self.margin
            and self._degenerate_f1(record, majority)
            and accuracy is not None
            and majority is not None
            and accuracy <= majority + self.margin
        )
        # A confirmation is a later evaluation: two records of one step (two evaluation sets, an evaluation
        # repeated after a resume) are one look at the model, never two.
        if not at_baseline:
            self.streak, self.streak_step = 0, None
        elif self.streak_step != record.step:
            self.streak, self.streak_step = self.streak + 1, int(record.step)
        progress = finite_or_none(record.progress)
        late = (
            progress >= self.min_progress
            if progress is not None
            else self.evaluations >= self.min_evaluations
        )
        if not (late and self.streak >= self.confirmations):
            return None
        assert accuracy is not None and majority is not None
        macro_f1 = finite_or_none(record.val.get("macro_f1"))
        when = (
            f"after {100 * progress:.0f}% of training"
            if progress is not None
            else f"after {self.evaluations} evaluations"
        )
        relation = "below" if accuracy < majority - 1e-9 else "at"
        text = (
            f"{when}, validation accuracy is {accuracy:.3f}, {relation} the majority-class baseline of "
            f"{majority:.3f} (always predicting the most frequent class): the run has failed, and such runs "
            f"rarely recover"
        )
        evidence = {
            "accuracy": accuracy,
            "majority_fraction": majority,
            "progress": progress,
            "evaluations_at_baseline": self.streak,
            "accuracy_slope": slope if slope == slope else None,
            "macro_f1": macro_f1,
        }
        return Finding(
            code="FW-FAILED-RUN",
            severity=Severity.CRITICAL,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )

    def holding(self) -> set[str]:
        return {""} if self.streak >= self.confirmations else set()

    def _degenerate_f1(self, record: EvalRecord, majority: float | None) -> bool:
        """Whether macro F1 is near a constant majority-class predictor's (True when unknown)."""
        macro_f1 = finite_or_none(record.val.get("macro_f1"))
        classes = len(record.class_names) or max((len(x) for x in record.val_per_class.values()), default=0)
        if macro_f1 is None or majority is None or classes < 2:
            return True
        constant = 2.0 * majority / ((1.0 + majority) * classes)
        return macro_f1 <= constant + self.f1_margin
