"""Rebuilding a run's records from its logged series, and running the real :class:`~fitwatch.monitor.Monitor`.

The detectors read records (:mod:`fitwatch.detect.records`); a finished run's event files hold series. The
replay turns the one into the other:

- an :class:`~fitwatch.detect.records.EvalRecord` at every step where a validation series (``val_*`` or
  ``class_*`` roles) has a point. Its validation numbers are the points at that step (or the latest since
  the previous evaluation); its training numbers cover the interval since the previous evaluation, as the
  callbacks' do: ``train_mean_loss`` when logged, else the mean of the ``train_loss`` points in the
  interval, else ``train_loss`` linearly interpolated at the evaluation step (logging sparser than
  evaluation); other ``train_*`` metrics are averaged over the interval. ``lr`` holds the latest logged
  learning rate of each param group, ``progress`` is ``step / last_step`` (a finished run's last step is its
  planned length); ``majority_fraction`` and each class's prediction count, which event files lack, follow
  from the logged per-class numbers (:func:`_complete_per_class`).
- a :class:`~fitwatch.detect.records.StepRecord` at every logging step of the training loss (or of the
  gradient/weight norms): its one logged loss (each logged point stands for the steps since the previous
  one, so step-level detectors see a subsampled series), the learning rates, the norms and update ratios
  logged at that step, and the count of non-finite losses.

At a step with both, the step record goes first, as in a live run (the last training step's logging, then
the validation at the end of the epoch). Audit records (model and optimizer set-up) are not in event
files, so the ``FW-REG-*`` set-up checks and ``FW-LR-NO-WARMUP`` are only reported live.

>>> series = {"val_loss": {"": [(10, 0.9), (20, 0.8)]},
...           "train_loss": {"": [(5, 1.2), (10, 1.0), (15, 0.7), (20, 0.5)]}}
>>> [type(r).__name__ for r in rebuild_records(series)]
['StepRecord', 'StepRecord', 'EvalRecord', 'StepRecord', 'StepRecord', 'EvalRecord']
>>> [r.train["loss"] for r in rebuild_records(series) if hasattr(r, "train")]
[1.1, 0.6]
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fitwatch.detect.records import EvalRecord, StepRecord
from fitwatch.findings import Finding
from fitwatch.monitor import Monitor
from fitwatch.report.roles import CLASS_METRICS, EVAL_METRICS, RoleAssignment

__all__ = ["Replay", "rebuild_records", "replay", "role_series"]

Points = list[tuple[int, float]]
#: ``role -> {subject: [(step, value), ...]}``; subject ``""`` for single-series roles.
Series = Mapping[str, Mapping[str, Points]]
Record = EvalRecord | StepRecord

_STEP_ROLES = ("train_loss", "grad_norm", "weight_norm", "update_ratio", "nonfinite_loss_steps")


def role_series(scalars: Mapping[str, Points], roles: RoleAssignment) -> dict[str, dict[str, Points]]:
    """The series of each role: ``roles`` applied to a run's ``scalars`` (``tag -> points``)."""
    return {
        role: {subject: list(scalars.get(tag, [])) for subject, tag in by_subject.items()}
        for role, by_subject in roles.series.items()
    }


def _single(series: Series, role: str) -> Points:
    by_subject = series.get(role, {})
    return next(iter(by_subject.values()), []) if by_subject else []


def _at(points: Points, step: int) -> float | None:
    """The value at ``step`` exactly (the last one when logged twice), else None."""
    i = bisect.bisect_right(points, (step, math.inf))
    return points[i - 1][1] if i and points[i - 1][0] == step else None


def _latest(points: Points, step: int, after: int | None = None) -> float | None:
    """The last value at or before ``step`` (and after ``after`` when given), else None."""
    i = bisect.bisect_right(points, (step, math.inf))
    if not i or (after is not None and points[i - 1][0] <= after):
        return None
    return points[i - 1][1]


def _window(points: Points, after: int | None, step: int) -> list[float]:
    lo = 0 if after is None else bisect.bisect_right(points, (after, math.inf))
    hi = bisect.bisect_right(points, (step, math.inf))
    return [v for _, v in points[lo:hi]]


def _mean(values: Sequence[float]) -> float | None:
    """The mean of the finite values; NaN when all are non-finite (the run diverged); None when empty."""
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        return sum(finite) / len(finite)
    return math.nan if values else None


def _interpolate(points: Points, step: int) -> float | None:
    """Linear interpolation at ``step`` between the neighbouring points; the last point after the end."""
    i = bisect.bisect_right(points, (step, math.inf))
    if not i:
        return None
    if i == len(points):
        return points[-1][1]
    (s0, v0), (s1, v1) = points[i - 1], points[i]
    if s1 == s0:
        return v1
    return v0 + (v1 - v0) * (step - s0) / (s1 - s0)


def _epoch(series: Series, step: int, *, before: bool = False) -> int | None:
    """The epoch at ``step`` in the framework's own numbering, as the callbacks give it: Lightning's 0-based
    ``epoch`` role, else the HF Trainer's ``epoch_progress`` rounded up (1 at the end of the first epoch).

    With ``before``, the last point strictly before ``step`` (see :func:`rebuild_records`), falling back to
    the one at ``step``.
    """
    value = _latest(_single(series, "epoch"), step - 1 if before else step)
    if before and value is None:
        value = _latest(_single(series, "epoch"), step)
    if value is not None and math.isfinite(value):
        return round(value)
    progress = _latest(_single(series, "epoch_progress"), step)
    if progress is not None and math.isfinite(progress):
        # The HF Trainer counts epochs completed (1.0 at the end of the first), and so does its callback.
        return max(math.ceil(progress), 0)
    return None


def _last_step(series: Series) -> int | None:
    steps = [points[-1][0] for by_subject in series.values() for points in by_subject.values() if points]
    return max(steps) if steps else None


def _eval_steps(series: Series) -> list[int]:
    steps: set[int] = set()
    for role, by_subject in series.items():
        if role.startswith(("val_", "class_")):
            for points in by_subject.values():
                steps.update(s for s, _ in points)
    return sorted(steps)


def _step_steps(series: Series) -> list[int]:
    steps: set[int] = set()
    for role in _STEP_ROLES:
        for points in series.get(role, {}).values():
            steps.update(s for s, _ in points)
    return sorted(steps)


def _train_loss(series: Series, after: int | None, step: int) -> float | None:
    mean_loss = _latest(_single(series, "train_mean_loss"), step, after)
    if mean_loss is not None:
        return mean_loss
    points = _single(series, "train_loss")
    in_interval = _window(points, after, step)
    if in_interval:
        return _mean(in_interval)
    return _interpolate(points, step)


def _eval_record(
    series: Series, step: int, after: int | None, last_step: int | None, epoch: int | None
) -> EvalRecord:
    val: dict[str, float] = {}
    train: dict[str, float] = {}
    for suffix, key in EVAL_METRICS.items():
        value = _latest(_single(series, f"val_{suffix}"), step, after)
        if value is not None:
            val[key] = value
        if suffix != "loss":
            mean = _mean(_window(_single(series, f"train_{suffix}"), after, step))
            if mean is not None:
                train[key] = mean
    loss = _train_loss(series, after, step)
    if loss is not None:
        train["loss"] = loss
    names: list[str] = []
    for metric in CLASS_METRICS:
        for subject in series.get(f"class_{metric}", {}):
            if subject not in names:
                names.append(subject)
    per_class: dict[str, list[float]] = {}
    for metric in CLASS_METRICS:
        by_subject = series.get(f"class_{metric}", {})
        if by_subject:
            values = [_latest(by_subject.get(name, []), step, after) for name in names]
            per_class[metric] = [math.nan if v is None else v for v in values]
    _complete_per_class(per_class, val)
    return EvalRecord(
        step=step,
        epoch=epoch,
        val=val,
        train=train,
        val_per_class=per_class,
        class_names=names if per_class else (),
        lr=_lrs(series, step),
        progress=_progress(step, last_step),
    )


def _complete_per_class(per_class: dict[str, list[float]], val: dict[str, float]) -> None:
    """Fill what event files lack but the logged numbers determine: the majority-class share, and each
    class's prediction count.

    A class with a true positive has ``predicted = recall * support / precision``. Without one the count is
    not in its own numbers (precision is 0 both when nothing and when only wrong predictions were made), but
    in single-label classification every sample gets one prediction, so the counts add up to the number of
    samples: when the known counts already do, the unknown ones are 0; when one is unknown, it is the rest.
    Anything still undetermined stays NaN, and the never-predicted check skips that class.
    """
    support = per_class.get("support")
    if not support:
        return
    finite = [s for s in support if math.isfinite(s)]
    total = sum(finite)
    if finite and total > 0 and len(finite) == len(support):
        val.setdefault("majority_fraction", max(finite) / total)
    precision, recall = per_class.get("precision"), per_class.get("recall")
    if "predicted" in per_class or precision is None or recall is None:
        return
    predicted = [
        float(round(r * n / p)) if math.isfinite(p) and p > 0 and math.isfinite(r * n) else math.nan
        for p, r, n in zip(precision, recall, support)
    ]
    unknown = [k for k, x in enumerate(predicted) if math.isnan(x)]
    samples = val.get("samples")
    single_label = samples is not None and len(finite) == len(support) and abs(samples - total) < 0.5
    if unknown and single_label:
        rest = total - sum(x for x in predicted if not math.isnan(x))
        if abs(rest) < 0.5:
            for k in unknown:
                predicted[k] = 0.0
        elif len(unknown) == 1 and rest > 0:
            predicted[unknown[0]] = float(round(rest))
    per_class["predicted"] = predicted


def _lrs(series: Series, step: int) -> list[float]:
    out = []
    for points in series.get("lr", {}).values():
        value = _latest(points, step)
        if value is not None:
            out.append(value)
    return out


def _progress(step: int, last_step: int | None) -> float | None:
    return min(step / last_step, 1.0) if last_step else None


def _step_record(series: Series, step: int, last_step: int | None, epoch: int | None) -> StepRecord:
    loss = _at(_single(series, "train_loss"), step)
    grad_norm = _at(_single(series, "grad_norm"), step)
    nonfinite: dict[str, int] = {}
    count = _at(_single(series, "nonfinite_loss_steps"), step)
    if count is not None and math.isfinite(count):
        nonfinite["loss"] = int(count)
    if grad_norm is not None:
        nonfinite["grad"] = 0 if math.isfinite(grad_norm) else 1
    ratios = {}
    for block, points in series.get("update_ratio", {}).items():
        value = _at(points, step)
        if value is not None:
            ratios[block] = value
    return StepRecord(
        step=step,
        epoch=epoch,
        losses=[] if loss is None else [loss],
        lr=_lrs(series, step),
        grad_norm=grad_norm,
        weight_norm=_at(_single(series, "weight_norm"), step),
        update_ratios=ratios,
        nonfinite=nonfinite,
        progress=_progress(step, last_step),
    )


def rebuild_records(series: Series, *, epoch_before_step: bool = False) -> list[Record]:
    """The step and evaluation records of a run, in the order a live run would produce them.

    Args:
        series: ``role -> {subject: [(step, value), ...]}`` with points in step order (:func:`role_series`).
        epoch_before_step: Read each record's epoch just before its step. Lightning logs its ``epoch`` scalar
            with the number of optimizer steps done *before* each batch (the first batch of epoch 10 at the
            step where epoch 9 ended), fitwatch's own tags with the number done *after* it; so on runs with
            fitwatch tags and Lightning's ``epoch``, the epoch at a record's step is that of the next epoch.
    """
    last_step = _last_step(series)
    records: list[tuple[int, int, Record]] = []
    for step in _step_steps(series):
        epoch = _epoch(series, step, before=epoch_before_step)
        records.append((step, 0, _step_record(series, step, last_step, epoch)))
    previous: int | None = None
    for step in _eval_steps(series):
        epoch = _epoch(series, step, before=epoch_before_step)
        records.append((step, 1, _eval_record(series, step, previous, last_step, epoch)))
        previous = step
    records.sort(key=lambda r: (r[0], r[1]))
    return [r for _, _, r in records]


@dataclass
class Replay:
    """What the replay of one run found.

    Attributes:
        findings: The current state of every cause the detectors found, in the order first raised.
        first_raised: ``(code, subject) -> (step, epoch)`` where each cause was first raised.
        history: The Monitor's scalar history (train-validation gaps and their trends, finding tracks).
        evaluations: Number of evaluation records fed.
        step_records: Number of step records fed.
        notes: Runtime warnings raised during the replay (a detector that failed on these inputs).
    """

    findings: list[Finding]
    first_raised: dict[tuple[str, str], tuple[int, int | None]]
    history: dict[str, list[tuple[int, float]]]
    evaluations: int
    step_records: int
    notes: list[str] = field(default_factory=list)


def replay(
    series: Series,
    *,
    detector_settings: Mapping[str, Mapping[str, Any]] | None = None,
    gap_window: int = 5,
    epoch_before_step: bool = False,
) -> Replay:
    """Feed a run's rebuilt records to a fresh :class:`~fitwatch.monitor.Monitor` with every registered
    detector (configured by ``detector_settings``), without sinks.

    Args:
        series: The run's role series (:func:`role_series`).
        detector_settings: Per-detector settings by detector name (``FitWatchConfig.detectors``).
        gap_window: Evaluations the gap trend looks back over (``FitWatchConfig.gap_window``).
        epoch_before_step: See :func:`rebuild_records`.

    Raises:
        ValueError: If ``detector_settings`` names an unknown detector or setting.
    """
    first: dict[tuple[str, str], tuple[int, int | None]] = {}

    def remember(finding: Finding) -> None:
        first.setdefault(finding.key, (finding.step, finding.epoch))

    monitor = Monitor(detector_settings=detector_settings, gap_window=gap_window, on_finding=remember)
    records = rebuild_records(series, epoch_before_step=epoch_before_step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for record in records:
            if isinstance(record, EvalRecord):
                monitor.evaluation(record)
            else:
                monitor.step(record)
    return Replay(
        findings=monitor.findings,
        first_raised=first,
        history=monitor.history,
        evaluations=sum(isinstance(r, EvalRecord) for r in records),
        step_records=sum(isinstance(r, StepRecord) for r in records),
        notes=[str(w.message) for w in caught],
    )
