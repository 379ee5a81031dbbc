"""Per-class failures the aggregate metrics hide: a class collapsing (``FW-CLASS-COLLAPSE``) and a class
the model never predicts (``FW-CLASS-NEVER-PREDICTED``).

Both read ``EvalRecord.val_per_class`` (lists in ``class_names`` order: ``recall``, ``f1``, ``support``,
``predicted``). Small classes are noise: a recall measured on ``n`` samples has a binomial standard
error of ``sqrt(r (1 - r) / n)`` (0.11 at r=0.5, n=20), so classes below ``min_support`` are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, register
from fitwatch.detect.records import EvalRecord
from fitwatch.detect.trends import finite_or_none, two_proportion_z
from fitwatch.findings import Finding, Severity

__all__ = ["ClassCollapseDetector", "NeverPredictedDetector"]

#: Smallest support for a class's recall to be judged (see the module docstring).
MIN_SUPPORT = 20
#: A recall (or F1) at or below this is "near zero".
NEAR_ZERO = 0.05
#: "Fallen far from its best": at most this share of the best value ...
DROP_RATIO = 0.5
#: ... and a two-proportion z statistic of the fall of at least this (about p < 0.002 one-sided).
MIN_Z = 3.0
#: Consecutive evaluations the condition must hold for a class (the first evaluation alone never decides).
CONFIRMATIONS = 2
#: Accuracy must beat the majority-class baseline by this much for the aggregate to "look healthy";
#: below it the whole run fails (``FW-FAILED-RUN``), not one class.
HEALTHY_MARGIN = 0.01
#: Smallest support of a class that is never predicted: with 5 samples and a recall of 0.5,
#: 0 predictions by chance has probability 0.5**5 = 3%, and on two evaluations in a row 0.1%.
MIN_SUPPORT_PREDICTED = 5


def _at(epoch: int | None, index: int) -> str:
    return f"epoch {epoch}" if epoch is not None else f"evaluation {index + 1}"


def _names(record: EvalRecord, count: int) -> list[str]:
    names = [str(n) for n in record.class_names]
    return names + [str(k) for k in range(len(names), count)]


def _column(per_class: Mapping[str, Sequence[float]], key: str) -> list[float | None]:
    return [finite_or_none(x) for x in per_class.get(key, ())]


@register
class ClassCollapseDetector(Detector):
    """``FW-CLASS-COLLAPSE``: a class whose recall is near zero, or has fallen far from its best, while
    accuracy looks healthy.

    For every class with at least ``min_support`` validation samples, on ``confirmations`` consecutive
    evaluations: its recall (F1 when recall is not reported) is at most ``near_zero``, or it is at most
    ``drop_ratio`` of the best value seen and the fall is significant (two-proportion z of at least
    ``min_z`` between the best and the current value, each on its own support). The aggregate must look
    healthy: accuracy above ``majority_fraction + healthy_margin`` when both are known (otherwise the
    run as a whole failed, ``FW-FAILED-RUN``). A class predicted for no sample at all is left to
    ``FW-CLASS-NEVER-PREDICTED``.

    ``subject`` is the class name. When several classes collapse, each evaluation reports the one
    reported least often so far (the worst on ties), so every cause reaches the Monitor; the evidence
    lists them all.

    Args:
        min_support: Smallest number of validation samples of a class for it to be judged.
        near_zero: Recall at or below this is near zero.
        min_progress: Share of the planned training before which nothing is reported (when known).
        min_evaluations: Evaluations before which nothing is reported when the progress is unknown.
        others_learned: The mean recall of the other classes (with enough support, not near zero themselves)
            must reach this for the average to "look healthy": a class at zero among classes still at 0.3 is an
            undertrained model.
        drop_ratio: Recall at or below this share of its best has fallen far ...
        min_z: ... when the two-proportion z statistic of the fall is at least this.
        confirmations: Consecutive evaluations the condition must hold.
        healthy_margin: Margin above the majority baseline for accuracy to look healthy.

    Raises:
        ValueError: If a count is not positive or a fraction not in [0, 1].
        TypeError: If an argument has the wrong type.

    >>> det = ClassCollapseDetector()
    >>> def record(i, recall):
    ...     return EvalRecord(step=i, epoch=i, val={"accuracy": 0.9, "majority_fraction": 0.5},
    ...                       val_per_class={"recall": [0.95, recall], "support": [300, 40],
    ...                                      "predicted": [330, 10]},
    ...                       class_names=["neg", "pos"])
    >>> found = [det.update(record(i, r)) for i, r in enumerate([0.6, 0.8, 0.75, 0.1, 0.05])]
    >>> [f is not None for f in found]
    [False, False, False, False, True]
    >>> found[-1].subject
    'pos'
    >>> print(found[-1].message)  # doctest: +NORMALIZE_WHITESPACE
    recall of class 'pos' fell to 0.05 (best 0.8 at epoch 1; 40 validation samples) while accuracy looks
    healthy at 0.900: the class is collapsing and the aggregate metrics hide it
    """

    name: ClassVar[str] = "class_collapse"
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        min_support: int = MIN_SUPPORT,
        near_zero: float = NEAR_ZERO,
        drop_ratio: float = DROP_RATIO,
        min_z: float = MIN_Z,
        confirmations: int = CONFIRMATIONS,
        healthy_margin: float = HEALTHY_MARGIN,
        min_progress: float = 0.2,
        min_evaluations: int = 3,
        others_learned: float = 0.5,
    ) -> None:
        self.min_support = v.check_positive_int("min_support", min_support)
        self.min_progress = v.check_fraction("min_progress", min_progress)
        self.min_evaluations = v.check_positive_int("min_evaluations", min_evaluations)
        self.others_learned = v.check_fraction("others_learned", others_learned)
        self.near_zero = v.check_fraction("near_zero", near_zero)
        self.drop_ratio = v.check_fraction("drop_ratio", drop_ratio)
        self.min_z = v.check_positive_float("min_z", min_z)
        self.confirmations = v.check_positive_int("confirmations", confirmations)
        self.healthy_margin = v.check_fraction("healthy_margin", healthy_margin)
        self.best: dict[str, list[Any]] = {}  # class -> [value, support, epoch label]
        self.streak: dict[str, int] = {}
        self.reports: dict[str, int] = {}
        self.evaluations = 0

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self.evaluations += 1
        per_class = record.val_per_class
        metric = "recall" if "recall" in per_class else "f1"
        values, support = _column(per_class, metric), _column(per_class, "support")
        predicted = _column(per_class, "predicted")
        names = _names(record, len(values))
        label = _at(record.epoch, self.evaluations - 1)
        healthy = self._aggregate_healthy(record.val)
        # Early in training a class's recall is not (yet) a collapse: undertrained models learn the easy
        # classes first and flicker between the others.
        early = (
            record.progress < self.min_progress
            if isinstance(record.progress, (int, float)) and math.isfinite(record.progress)
            else self.evaluations < self.min_evaluations
        )
        collapsed: dict[str, dict[str, Any]] = {}
        for k, (name, value) in enumerate(zip(names, values)):
            n = support[k] if k < len(support) else None
            if value is None or n is None or n < self.min_support:
                self.streak[name] = 0
                continue
            best = self.best.get(name)
            cause = None if early or not self._others_learned(k, values, support) else self._cause(value, n, best)
            never = k < len(predicted) and predicted[k] == 0
            holds = cause is not None and healthy and not never
            self.streak[name] = self.streak.get(name, 0) + 1 if holds else 0
            if holds and self.streak[name] >= self.confirmations:
                collapsed[name] = {
                    "value": value,
                    "support": n,
                    "cause": cause,
                    "best": None if best is None else best[0],
                    "best_at": None if best is None else best[2],
                }
            if best is None or value > best[0]:
                self.best[name] = [value, n, label]
        if not collapsed:
            return None
        subject = min(collapsed, key=lambda c: (self.reports.get(c, 0), collapsed[c]["value"]))
        self.reports[subject] = self.reports.get(subject, 0) + 1
        return self._finding(record, metric, subject, collapsed)

    def _others_learned(self, k: int, values: Sequence[float | None], support: Sequence[float | None]) -> bool:
        # The other judged classes, leaving out those near zero themselves (they may be collapsing too).
        others = [
            x for j, x in enumerate(values)
            if j != k and x is not None and x > self.near_zero
            and j < len(support) and support[j] is not None and support[j] >= self.min_support
        ]
        return not others or sum(others) / len(others) >= self.others_learned

    def _aggregate_healthy(self, val: Mapping[str, float]) -> bool:
        accuracy, majority = finite_or_none(val.get("accuracy")), finite_or_none(val.get("majority_fraction"))
        return accuracy is None or majority is None or accuracy > majority + self.healthy_margin

    def _cause(self, value: float, n: float, best: list[Any] | None) -> str | None:
        if value <= self.near_zero:
            return "near_zero"
        if best is not None and value <= self.drop_ratio * best[0]:
            z = two_proportion_z(best[0], best[1], value, n)
            if math.isfinite(z) and z >= self.min_z:
                return "fallen"
        return None

    def _finding(
        self, record: EvalRecord, metric: str, subject: str, collapsed: dict[str, dict[str, Any]]
    ) -> Finding:
        c = collapsed[subject]
        if (
            c["best"] is not None
            and c["best"] > c["value"]
            and (c["cause"] == "fallen" or c["best"] > 2 * self.near_zero)
        ):
            what = (
                f"{metric} of class '{subject}' fell to {c['value']:.3g} "
                f"(best {c['best']:.3g} at {c['best_at']}; "
            )
        else:
            what = f"{metric} of class '{subject}' is {c['value']:.3g} ("
        what += f"{c['support']:.0f} validation samples)"
        accuracy = finite_or_none(record.val.get("accuracy"))
        if accuracy is not None:
            what += f" while accuracy looks healthy at {accuracy:.3f}"
        what += ": the class is collapsing and the aggregate metrics hide it"
        others = sorted(set(collapsed) - {subject})
        if others:
            what += f" (also collapsing: {', '.join(others)})"
        evidence = {
            "class": subject,
            "metric": metric,
            "value": c["value"],
            "support": c["support"],
            "best": c["best"],
            "cause": c["cause"],
            "accuracy": accuracy,
            "collapsed_classes": sorted(collapsed),
        }
        return Finding(
            code="FW-CLASS-COLLAPSE",
            severity=Severity.WARNING,
            step=int(record.step),
            epoch=record.epoch,
            message=what,
            evidence=evidence,
            subject=subject,
        )


@register
class NeverPredictedDetector(Detector):
    """``FW-CLASS-NEVER-PREDICTED``: a class with validation samples that the model predicts for no sample.

    Reported when it persists: the same class unpredicted on ``confirmations`` consecutive evaluations,
    and not while training has barely begun (before ``min_progress`` of the planned steps when that is
    known, else before ``min_evaluations`` evaluations): an undertrained model predicts few classes. Classes with fewer than ``min_support`` samples
    are skipped (see :data:`MIN_SUPPORT_PREDICTED`). One finding lists every such class (``subject`` is
    empty: one cause, "the model ignores classes", updated as the set changes).

    Args:
        min_support: Smallest number of validation samples of a class for it to be judged.
        confirmations: Consecutive evaluations a class must go unpredicted; at least 2.
        min_progress: Share of the planned training before which nothing is reported (when known).
        min_evaluations: Evaluations before which nothing is reported when the progress is unknown.
        others_learned: The mean recall of the other classes (with enough support, not near zero themselves)
            must reach this for the average to "look healthy": a class at zero among classes still at 0.3 is an
            undertrained model.

    Raises:
        ValueError: If ``min_support`` is not positive or ``confirmations`` < 2.
        TypeError: If an argument is not an int.

    >>> det = NeverPredictedDetector()
    >>> def record(i, predicted):
    ...     return EvalRecord(step=i, epoch=i, val={},
    ...                       val_per_class={"support": [50, 30, 20], "predicted": predicted},
    ...                       class_names=["a", "b", "c"])
    >>> [det.update(record(i, p)) is not None for i, p in enumerate([[60, 40, 0], [70, 30, 0], [75, 25, 0]])]
    [False, False, True]
    >>> print(det.update(record(3, [80, 20, 0])).message)  # doctest: +NORMALIZE_WHITESPACE
    class 'c' (20 validation samples) was predicted for no validation sample in the last 4 evaluations:
    the model has not learned to predict it
    """

    name: ClassVar[str] = "never_predicted"
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        min_support: int = MIN_SUPPORT_PREDICTED,
        confirmations: int = CONFIRMATIONS,
        min_progress: float = 0.2,
        min_evaluations: int = 3,
    ) -> None:
        self.min_support = v.check_positive_int("min_support", min_support)
        self.min_progress = v.check_fraction("min_progress", min_progress)
        self.min_evaluations = v.check_positive_int("min_evaluations", min_evaluations)
        self.evaluations = 0
        self.ever_predicted: list[str] = []
        self.confirmations = v.check_positive_int("confirmations", confirmations)
        if confirmations < 2:
            raise ValueError(
                f"Expected `confirmations` to be at least 2 (the first evaluation alone never decides), "
                f"but got {confirmations}."
            )
        self.streak: dict[str, int] = {}

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        per_class = record.val_per_class
        support, predicted = _column(per_class, "support"), _column(per_class, "predicted")
        names = _names(record, len(support))
        self.evaluations += 1
        unpredicted = {}
        for k, (name, n) in enumerate(zip(names, support)):
            p = predicted[k] if k < len(predicted) else None
            holds = n is not None and n >= self.min_support and p == 0
            if p is not None and p > 0 and name not in self.ever_predicted:
                self.ever_predicted.append(name)
            self.streak[name] = self.streak.get(name, 0) + 1 if holds else 0
            if holds and self.streak[name] >= self.confirmations:
                unpredicted[name] = (n, self.streak[name])
        early = (
            record.progress < self.min_progress
            if isinstance(record.progress, (int, float)) and math.isfinite(record.progress)
            else self.evaluations < self.min_evaluations
        )
        if not unpredicted or early:
            return None
        stopped = all(c in self.ever_predicted for c in unpredicted)
        verb = ("has stopped predicting" if stopped else "has not learned to predict")
        listed = ", ".join(f"'{c}' ({n:.0f} validation samples)" for c, (n, _) in unpredicted.items())
        runs = min(r for _, r in unpredicted.values())
        if len(unpredicted) == 1:
            text = (
                f"class {listed} was predicted for no validation sample in the last {runs} evaluations: "
                f"the model {verb} it"
            )
        else:
            text = (
                f"classes {listed} were predicted for no validation sample in the last {runs} or more "
                f"evaluations: the model {verb} them"
            )
        evidence = {
            "classes": sorted(unpredicted),
            "support": {c: n for c, (n, _) in unpredicted.items()},
            "evaluations": {c: r for c, (_, r) in unpredicted.items()},
        }
        return Finding(
            code="FW-CLASS-NEVER-PREDICTED",
            severity=Severity.WARNING,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=evidence,
        )
