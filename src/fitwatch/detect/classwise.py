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
from fitwatch.detect.base import Detector, register, rounded
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
#: Share of the planned training before which nothing is reported: undertrained models learn the easy
#: classes first and flicker between the others.
MIN_PROGRESS = 0.2
#: With the progress unknown, evaluations before which nothing is reported.
MIN_EVALUATIONS = 3
#: A class counts as learned once its recall reached this, and the other classes must reach it on average
#: for the aggregate to look healthy (a class at zero among classes still at 0.3 is an undertrained model).
LEARNED = 0.5
#: A class that was never learned is reported as INFO ("not learned yet") before this share of training and
#: as WARNING from it on. Minority classes are learned late: on the zoo's healthy support-ticket runs (a
#: 2-layer BERT from scratch, the 5% class) the minority class was first predicted at 40-60% of training.
#: A class that was learned and is lost again is a WARNING at once.
WARN_PROGRESS = 0.5
#: With the progress unknown, evaluations from which a never-learned class is a WARNING.
WARN_EVALUATIONS = 6


def _at(epoch: int | None, index: int) -> str:
    return f"epoch {epoch}" if epoch is not None else f"evaluation {index + 1}"


def _names(record: EvalRecord, count: int) -> list[str]:
    names = [str(n) for n in record.class_names]
    return names + [str(k) for k in range(len(names), count)]


def _progressed(record: EvalRecord, fraction: float, evaluations: int, count: int) -> bool:
    """Whether training got past ``fraction`` of its plan (``count >= evaluations`` without a plan)."""
    progress = record.progress
    if isinstance(progress, (int, float)) and not isinstance(progress, bool) and math.isfinite(progress):
        return progress >= fraction
    return count >= evaluations


def _when(record: EvalRecord) -> str:
    progress = finite_or_none(record.progress)
    return f" at {100 * progress:.0f}% of training" if progress is not None else ""


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

    Severity: WARNING when the class was learned (its best recall reached ``others_learned``) and is lost, or
    fell significantly; a class near zero that was never learned is INFO ("not learned yet") before
    ``warn_progress`` of training (``warn_evaluations`` evaluations when the progress is unknown), WARNING
    from then on: minority classes are learned late (see :data:`WARN_PROGRESS`).

    ``subject`` is the class name. When several classes collapse, each evaluation reports the one
    reported least often so far (the worst on ties), so every cause reaches the Monitor; the evidence
    lists them all.

    Args:
        min_support: Smallest number of validation samples of a class for it to be judged.
        near_zero: Recall at or below this is near zero.
        min_progress: Share of the planned training before which nothing is reported (when known).
        min_evaluations: Evaluations before which nothing is reported when the progress is unknown.
        others_learned: The mean recall of the other classes (with enough support, not near zero themselves)
            must reach this for the average to "look healthy": a class at zero among classes still at 0.3 is
            an undertrained model.
        drop_ratio: Recall at or below this share of its best has fallen far ...
        min_z: ... when the two-proportion z statistic of the fall is at least this.
        confirmations: Consecutive evaluations the condition must hold.
        healthy_margin: Margin above the majority baseline for accuracy to look healthy.
        warn_progress: Share of training from which a never-learned class is a WARNING.
        warn_evaluations: Evaluations from which a never-learned class is a WARNING without a known progress.

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
    resolves: ClassVar[bool] = True
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
        min_progress: float = MIN_PROGRESS,
        min_evaluations: int = MIN_EVALUATIONS,
        others_learned: float = LEARNED,
        warn_progress: float = WARN_PROGRESS,
        warn_evaluations: int = WARN_EVALUATIONS,
    ) -> None:
        self.min_support = v.check_positive_int("min_support", min_support)
        self.min_progress = v.check_fraction("min_progress", min_progress)
        self.min_evaluations = v.check_positive_int("min_evaluations", min_evaluations)
        self.others_learned = v.check_fraction("others_learned", others_learned)
        self.warn_progress = v.check_fraction("warn_progress", warn_progress)
        self.warn_evaluations = v.check_positive_int("warn_evaluations", warn_evaluations)
        self.near_zero = v.check_fraction("near_zero", near_zero)
        self.drop_ratio = v.check_fraction("drop_ratio", drop_ratio)
        self.min_z = v.check_positive_float("min_z", min_z)
        self.confirmations = v.check_positive_int("confirmations", confirmations)
        self.healthy_margin = v.check_fraction("healthy_margin", healthy_margin)
        self.best: dict[str, list[Any]] = {}  # class -> [value, support, epoch label]
        self.streak: dict[str, int] = {}
        self.reports: dict[str, int] = {}
        self.evaluations = 0

    def holding(self) -> set[str]:
        return {name for name, streak in self.streak.items() if streak >= self.confirmations}

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        self.evaluations += 1
        per_class = record.val_per_class
        metric = "recall" if "recall" in per_class else "f1"
        values, support = _column(per_class, metric), _column(per_class, "support")
        predicted = _column(per_class, "predicted")
        names = _names(record, len(values))
        label = _at(record.epoch, self.evaluations - 1)
        healthy = self._aggregate_healthy(record.val)
        early = not _progressed(record, self.min_progress, self.min_evaluations, self.evaluations)
        late = _progressed(record, self.warn_progress, self.warn_evaluations, self.evaluations)
        collapsed: dict[str, dict[str, Any]] = {}
        for k, (name, value) in enumerate(zip(names, values)):
            n = support[k] if k < len(support) else None
            if value is None or n is None or n < self.min_support:
                self.streak[name] = 0
                continue
            best = self.best.get(name)
            cause = (
                None if early or not self._others_learned(k, values, support) else self._cause(value, n, best)
            )
            never = k < len(predicted) and predicted[k] == 0
            holds = cause is not None and healthy and not never
            self.streak[name] = self.streak.get(name, 0) + 1 if holds else 0
            if holds and self.streak[name] >= self.confirmations:
                learned = best is not None and best[0] >= self.others_learned
                collapsed[name] = {
                    "value": value,
                    "support": n,
                    "cause": cause,
                    "best": None if best is None else best[0],
                    "best_at": None if best is None else best[2],
                    "learned": learned,
                    "severity": Severity.WARNING if cause == "fallen" or learned or late else Severity.INFO,
                }
            if best is None or value > best[0]:
                self.best[name] = [value, n, label]
        if not collapsed:
            return None
        subject = min(
            collapsed,
            key=lambda c: (-collapsed[c]["severity"], self.reports.get(c, 0), collapsed[c]["value"]),
        )
        self.reports[subject] = self.reports.get(subject, 0) + 1
        return self._finding(record, metric, subject, collapsed)

    def _others_learned(
        self, k: int, values: Sequence[float | None], support: Sequence[float | None]
    ) -> bool:
        # The other judged classes, leaving out those near zero themselves (they may be collapsing too).
        others = [
            x
            for j, x in enumerate(values)
            if j != k
            and x is not None
            and x > self.near_zero
            and j < len(support)
            and support[j] is not None
            and support[j] >= self.min_support
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
        if c["cause"] == "fallen" or c["learned"]:
            what += ": the class is collapsing and the aggregate metrics hide it"
        elif c["severity"] is Severity.WARNING:
            what += (
                f"{_when(record)}: the model has not learned this class, and the aggregate metrics hide it"
            )
        else:
            what += (
                f"{_when(record)}: the model has not learned this class yet; minority classes are often "
                f"learned late, so this becomes a warning if it persists"
            )
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
            "learned": c["learned"],
            "accuracy": accuracy,
            "progress": finite_or_none(record.progress),
            "collapsed_classes": sorted(collapsed),
        }
        return Finding(
            code="FW-CLASS-COLLAPSE",
            severity=c["severity"],
            step=int(record.step),
            epoch=record.epoch,
            message=what,
            evidence=rounded(evidence),
            subject=subject,
        )


@register
class NeverPredictedDetector(Detector):
    """``FW-CLASS-NEVER-PREDICTED``: a class with validation samples that the model predicts for no sample.

    Reported when it persists: the same class unpredicted on ``confirmations`` consecutive evaluations, not
    while training has barely begun (before ``min_progress`` of the planned steps when that is known, else
    before ``min_evaluations`` evaluations), and only while the other classes are learned (their mean recall
    at least ``others_learned``, when recalls are reported): an undertrained model predicts few classes, and a
    run that learned nothing is ``FW-FAILED-RUN``'s case. Classes with fewer than ``min_support`` samples are
    skipped (see :data:`MIN_SUPPORT_PREDICTED`). One finding lists every such class (``subject`` is empty: one
    cause, "the model ignores classes", updated as the set changes).

    Severity: WARNING when a class that was learned (recall at least ``others_learned`` at some evaluation)
    is no longer predicted, or from ``warn_progress`` of training on (``warn_evaluations`` evaluations when
    the progress is unknown); before that a class never learned is INFO, "not learned yet": minority classes
    are learned late (see :data:`WARN_PROGRESS`).

    Args:
        min_support: Smallest number of validation samples of a class for it to be judged.
        confirmations: Consecutive evaluations a class must go unpredicted; at least 2.
        min_progress: Share of the planned training before which nothing is reported (when known).
        min_evaluations: Evaluations before which nothing is reported when the progress is unknown.
        others_learned: The mean recall of the other judged classes must reach this; a class whose recall
            reached it counts as learned.
        warn_progress: Share of training from which a never-learned class is a WARNING.
        warn_evaluations: Evaluations from which a never-learned class is a WARNING without a known progress.

    Raises:
        ValueError: If ``min_support`` is not positive, ``confirmations`` < 2 or a fraction not in [0, 1].
        TypeError: If an argument has the wrong type.

    >>> det = NeverPredictedDetector()
    >>> def record(i, predicted, recall):
    ...     return EvalRecord(step=i, epoch=i, val={}, progress=(i + 1) / 8,
    ...                       val_per_class={"support": [50, 30, 20], "predicted": predicted,
    ...                                      "recall": recall},
    ...                       class_names=["a", "b", "c"])
    >>> rows = [([60, 40, 0], [0.9, 0.8, 0.0])] * 4
    >>> [None if (f := det.update(record(i, *r))) is None else f.severity.name for i, r in enumerate(rows)]
    [None, 'INFO', 'INFO', 'WARNING']
    >>> print(det.update(record(4, [80, 20, 0], [0.95, 0.6, 0.0])).message)  # doctest: +NORMALIZE_WHITESPACE
    class 'c' (20 validation samples) was predicted for no validation sample in the last 5 evaluations
    (at 62% of training): the model has not learned to predict it
    """

    name: ClassVar[str] = "never_predicted"
    resolves: ClassVar[bool] = True
    record_types: ClassVar[tuple[type, ...]] = (EvalRecord,)

    def __init__(
        self,
        *,
        min_support: int = MIN_SUPPORT_PREDICTED,
        confirmations: int = CONFIRMATIONS,
        min_progress: float = MIN_PROGRESS,
        min_evaluations: int = MIN_EVALUATIONS,
        others_learned: float = LEARNED,
        warn_progress: float = WARN_PROGRESS,
        warn_evaluations: int = WARN_EVALUATIONS,
    ) -> None:
        self.min_support = v.check_positive_int("min_support", min_support)
        self.min_progress = v.check_fraction("min_progress", min_progress)
        self.min_evaluations = v.check_positive_int("min_evaluations", min_evaluations)
        self.others_learned = v.check_fraction("others_learned", others_learned)
        self.warn_progress = v.check_fraction("warn_progress", warn_progress)
        self.warn_evaluations = v.check_positive_int("warn_evaluations", warn_evaluations)
        self.confirmations = v.check_positive_int("confirmations", confirmations)
        if confirmations < 2:
            raise ValueError(
                f"Expected `confirmations` to be at least 2 (the first evaluation alone never decides), "
                f"but got {confirmations}."
            )
        self.evaluations = 0
        self.learned: list[str] = []  # classes whose recall reached `others_learned` at some evaluation
        self.streak: dict[str, int] = {}

    def holding(self) -> set[str]:
        return {""} if any(streak >= self.confirmations for streak in self.streak.values()) else set()

    def update(self, record: EvalRecord) -> Finding | None:  # type: ignore[override]
        per_class = record.val_per_class
        support, predicted = _column(per_class, "support"), _column(per_class, "predicted")
        recall = _column(per_class, "recall")
        names = _names(record, len(support))
        self.evaluations += 1
        unpredicted = {}
        for k, (name, n) in enumerate(zip(names, support)):
            p = predicted[k] if k < len(predicted) else None
            r = recall[k] if k < len(recall) else None
            holds = n is not None and n >= self.min_support and p == 0
            if r is not None and r >= self.others_learned and name not in self.learned:
                self.learned.append(name)
            self.streak[name] = self.streak.get(name, 0) + 1 if holds else 0
            if holds and self.streak[name] >= self.confirmations:
                unpredicted[name] = (n, self.streak[name])
        early = not _progressed(record, self.min_progress, self.min_evaluations, self.evaluations)
        if not unpredicted or early or not self._others_learned(names, support, recall, unpredicted):
            return None
        stopped = [c for c in unpredicted if c in self.learned]
        late = _progressed(record, self.warn_progress, self.warn_evaluations, self.evaluations)
        severity = Severity.WARNING if stopped or late else Severity.INFO
        listed = ", ".join(f"'{c}' ({n:.0f} validation samples)" for c, (n, _) in unpredicted.items())
        runs = min(r for _, r in unpredicted.values())
        plural = len(unpredicted) > 1
        subject = f"classes {listed} were" if plural else f"class {listed} was"
        progress = finite_or_none(record.progress)
        when = f" (at {100 * progress:.0f}% of training)" if progress is not None else ""
        text = (
            f"{subject} predicted for no validation sample in the last {runs}{' or more' if plural else ''} "
            f"evaluations{when}: "
        )
        them = "them" if plural else "it"
        if stopped:
            text += (
                f"the model has stopped predicting {', '.join(repr(c) for c in stopped)} after learning it"
            )
        elif severity is Severity.WARNING:
            text += f"the model has not learned to predict {them}"
        else:
            text += (
                f"the model has not learned to predict {them} yet; minority classes are often learned late, "
                f"so this becomes a warning if it persists"
            )
        evidence = {
            "classes": sorted(unpredicted),
            "support": {c: n for c, (n, _) in unpredicted.items()},
            "evaluations": {c: r for c, (_, r) in unpredicted.items()},
            "stopped": sorted(stopped),
            "progress": progress,
        }
        return Finding(
            code="FW-CLASS-NEVER-PREDICTED",
            severity=severity,
            step=int(record.step),
            epoch=record.epoch,
            message=text,
            evidence=rounded(evidence),
        )

    def _others_learned(
        self,
        names: Sequence[str],
        support: Sequence[float | None],
        recall: Sequence[float | None],
        unpredicted: Mapping[str, Any],
    ) -> bool:
        others = [
            recall[k]
            for k, name in enumerate(names)
            if name not in unpredicted
            and k < len(recall)
            and recall[k] is not None
            and support[k] is not None
            and support[k] >= self.min_support
        ]
        return not others or sum(others) / len(others) >= self.others_learned  # type: ignore[arg-type]
