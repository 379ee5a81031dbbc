"""Regularization and set-up detectors: the model/optimizer audit, and the weight norm over time.

One detector per code, each over :class:`~fitwatch.detect.records.AuditRecord` (at fit start and from
time to time) except the last, which reads the weight norm of every
:class:`~fitwatch.detect.records.StepRecord`:

==================  =====================  ========  ==================================================
``name``            code                   severity  fires when
==================  =====================  ========  ==================================================
``eval_mode``       FW-REG-EVAL-MODE       WARNING   dropout/norm modules in eval mode while training,
                                                     outside a deliberately frozen backbone
``dropout``         FW-REG-NO-DROPOUT      INFO      dropout modules exist and every one has p = 0
``decay_on_norm``   FW-REG-DECAY-ON-NORM   INFO      weight decay on normalization weights or biases
``no_decay``        FW-REG-NO-DECAY        INFO      a decoupled-decay optimizer at decay 0 everywhere
``missing_params``  FW-REG-MISSING-PARAMS  WARNING   ``requires_grad`` parameters in no param group
``frozen_params``   FW-REG-FROZEN-PARAMS   WARNING   trainable parameters unchanged since fit start
``weight_growth``   FW-REG-WEIGHT-GROWTH   WARNING   the global weight norm grows without leveling off
==================  =====================  ========  ==================================================

Decay on norms and biases and no decay at all are INFO: common and mild. BERT's reference optimizer
excludes LayerNorm and bias parameters from weight decay (Devlin et al. 2019, ``optimization.py``), as do
the HF Trainer and timm; Jia et al. (2018) found the same for batch-norm parameters. AdamW's decay is
decoupled from the gradient (Loshchilov & Hutter 2019), so ``weight_decay=0`` there is a choice someone
made, or the HF ``TrainingArguments`` default.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, Record, register, rounded
from fitwatch.detect.records import AuditRecord, StepRecord
from fitwatch.detect.trends import mann_kendall, theil_sen_slope
from fitwatch.findings import Finding, Severity

__all__ = [
    "DecayOnNormDetector",
    "EvalModeDetector",
    "FrozenParamsDetector",
    "GrowthVerdict",
    "MissingParamsDetector",
    "NoDecayDetector",
    "NoDropoutDetector",
    "WeightGrowthDetector",
    "growth_verdict",
    "is_decoupled_decay",
    "under_any",
]

#: Names shown in a message; evidence keeps up to :data:`EVIDENCE_NAMES`.
SHOWN_NAMES = 3
EVIDENCE_NAMES = 50

#: Optimizers whose weight decay is decoupled from the gradient (Loshchilov & Hutter 2019), by
#: case-insensitive substring of the class name.
_DECOUPLED = ("adamw", "sgdw", "lion", "lamb")


def is_decoupled_decay(name: str) -> bool:
    """Whether an optimizer class name is one with decoupled weight decay (AdamW and kin).

    >>> [is_decoupled_decay(n) for n in ("AdamW", "PagedAdamW8bit", "Adam", "SGD", "Lion")]
    [True, True, False, False, True]
    """
    low = str(name).lower()
    return any(k in low for k in _DECOUPLED)


def under_any(name: str, prefixes: Sequence[str]) -> bool:
    """Whether module ``name`` is one of ``prefixes`` or inside one of them (``""`` is the root).

    >>> under_any("backbone.layer1.bn1", ["backbone"]), under_any("backbone2.bn", ["backbone"])
    (True, False)
    """
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


def _names(items: Sequence[str]) -> tuple[str, dict[str, object]]:
    """``("a, b, c and 4 more", evidence)`` for a list of names."""
    names = [str(n) for n in items]
    shown = ", ".join(f"`{n}`" for n in names[:SHOWN_NAMES])
    more = f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
    return shown + more, {"count": len(names), "names": names[:EVIDENCE_NAMES]}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _g(x: float, digits: int = 4) -> float | None:
    """A number for evidence: ``digits`` significant digits; ``None`` unless finite (strict JSON)."""
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


def _finite(x: object) -> float | None:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class _AuditDetector(Detector):
    """An audit check: one record type, no thresholds unless a subclass adds them."""

    record_types = (AuditRecord,)
    code: str
    severity: Severity

    def __init__(self) -> None:
        """No thresholds: the audit states facts, the check reads them."""

    def update(self, record: Record) -> Finding | None:
        if not isinstance(record, AuditRecord):
            raise TypeError(f"Expected `record` to be an AuditRecord, but got {type(record).__name__}.")
        found = self.check(record)
        if found is None:
            return None
        message, evidence = found
        return Finding(
            code=self.code,
            severity=self.severity,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )

    @abc.abstractmethod
    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        """The finding's message and evidence when ``record`` shows the fault, else ``None``."""


@register
class EvalModeDetector(_AuditDetector):
    """FW-REG-EVAL-MODE: dropout/normalization modules in eval mode while the model trains.

    Modules listed in (or inside) ``frozen_eval_modules_expected``, a frozen backbone kept in eval mode on
    purpose, are left out. The usual cause is an evaluation run by hand that ends without ``model.train()``.
    """

    name = "eval_mode"
    code = "FW-REG-EVAL-MODE"
    severity = Severity.WARNING

    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        expected = [str(m) for m in record.frozen_eval_modules_expected]
        unexpected = [str(m) for m in record.eval_mode_modules if not under_any(str(m), expected)]
        if not unexpected:
            return None
        shown, evidence = _names(unexpected)
        whole = " (the whole model: model.training is False)" if not record.model_training else ""
        verb = "is" if len(unexpected) == 1 else "are"
        message = (
            f"{_plural(len(unexpected), 'dropout/normalization module')} {verb} in eval mode while training"
            f"{whole}: {shown}. Dropout is off and BatchNorm statistics are frozen there."
        )
        return message, {"modules": evidence, "model_training": bool(record.model_training)}


@register
class NoDropoutDetector(_AuditDetector):
    """FW-REG-NO-DROPOUT: the model has dropout modules and every one has ``p == 0``."""

    name = "dropout"
    code = "FW-REG-NO-DROPOUT"
    severity = Severity.INFO

    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        ps = [p for p in (_finite(x) for x in record.dropout_probabilities.values()) if p is not None]
        if not ps or any(p != 0 for p in ps):
            return None
        message = (
            f"All {_plural(len(ps), 'dropout module')} of the model have p = 0: it trains without dropout."
        )
        return message, {"dropout_modules": len(ps)}


@register
class DecayOnNormDetector(_AuditDetector):
    """FW-REG-DECAY-ON-NORM: weight decay applied to normalization weights or biases (INFO: common, mild)."""

    name = "decay_on_norm"
    code = "FW-REG-DECAY-ON-NORM"
    severity = Severity.INFO

    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        names = [str(n) for n in record.decay_on_norm_or_bias]
        if not names:
            return None
        biases = sum(1 for n in names if n == "bias" or n.endswith(".bias"))
        norms = len(names) - biases
        parts = []
        if norms:
            parts.append(_plural(norms, "normalization weight"))
        if biases:
            parts.append(f"{biases} bias{'' if biases == 1 else 'es'}")
        shown, evidence = _names(names)
        message = (
            f"Weight decay applies to {' and '.join(parts)} ({shown}); the usual recipe gives them "
            f"weight_decay=0, since shrinking them toward zero does not regularize."
        )
        return message, {"parameters": evidence, "normalization_weights": norms, "biases": biases}


@register
class NoDecayDetector(_AuditDetector):
    """FW-REG-NO-DECAY: an optimizer with decoupled weight decay (AdamW and kin) at decay 0 on every group."""

    name = "no_decay"
    code = "FW-REG-NO-DECAY"
    severity = Severity.INFO

    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        decoupled = [str(n) for n in record.optimizer_names if is_decoupled_decay(str(n))]
        decays = [d for d in (_finite(x) for x in record.weight_decays.values()) if d is not None]
        if not decoupled or not decays or any(d != 0 for d in decays):
            return None
        opt = ", ".join(dict.fromkeys(decoupled))
        message = (
            f"{opt} runs with weight_decay = 0 on all {_plural(len(decays), 'param group')}: the decoupled "
            f"weight decay it exists for is off."
        )
        return message, {"optimizers": list(dict.fromkeys(decoupled)), "param_groups": len(decays)}


@register
class MissingParamsDetector(_AuditDetector):
    """FW-REG-MISSING-PARAMS: parameters with ``requires_grad=True`` that are in no optimizer param group."""

    name = "missing_params"
    code = "FW-REG-MISSING-PARAMS"
    severity = Severity.WARNING

    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        missing = [str(n) for n in record.missing_from_optimizer]
        if not missing:
            return None
        shown, evidence = _names(missing)
        verb = "is" if len(missing) == 1 else "are"
        message = (
            f"{_plural(len(missing), 'trainable parameter')} {verb} in no optimizer param group, so "
            f"{'it never trains' if len(missing) == 1 else 'they never train'}: {shown}."
        )
        return message, {"parameters": evidence, "trainable_parameters": int(record.trainable_parameters)}


@register
class FrozenParamsDetector(_AuditDetector):
    """FW-REG-FROZEN-PARAMS: trainable parameters whose values have not changed since fit start.

    Parameters ever reported missing from the optimizer are left out (FW-REG-MISSING-PARAMS already says
    why they do not move). Audits before ``min_steps`` are not judged: HF's linear warmup applies
    ``lr = 0`` on the first step, and an fp16 loss scaler skips its first overflowing steps (about 5-20)
    while the scale calibrates down from 2^16.

    Args:
        min_steps: Earliest step at which unchanged parameters are reported (default 25).

    Raises:
        ValueError: If ``min_steps`` is negative.
        TypeError: If ``min_steps`` is not an int, or :meth:`update` gets another record type.
    """

    name = "frozen_params"
    code = "FW-REG-FROZEN-PARAMS"
    severity = Severity.WARNING

    def __init__(self, *, min_steps: int = 25) -> None:
        self.min_steps = v.check_non_negative_int("min_steps", min_steps)
        self.missing_seen: list[str] = []

    def check(self, record: AuditRecord) -> tuple[str, dict[str, object]] | None:
        seen = set(self.missing_seen)
        new = [str(n) for n in record.missing_from_optimizer if str(n) not in seen]
        self.missing_seen.extend(dict.fromkeys(new))
        if record.step < self.min_steps:
            return None
        missing = set(self.missing_seen)
        frozen = [str(n) for n in record.unchanged_parameters if str(n) not in missing]
        if not frozen:
            return None
        shown, evidence = _names(frozen)
        verb = "has" if len(frozen) == 1 else "have"
        lrs = [float(lr) for lr in record.current_lrs]
        if lrs and all(lr == 0.0 for lr in lrs):
            # The cause is the schedule, not the gradients (a resumed scheduler already at its end, lr=0).
            message = (
                f"{_plural(len(frozen), 'trainable parameter')} {verb} not changed in {record.step} steps: "
                f"{shown}. The learning rate is 0 in every param group, so no update can move them (a "
                f"scheduler restored at or past its end, or a warmup that never starts)."
            )
            return message, {"parameters": evidence, "steps": record.step, "learning_rates": lrs}
        message = (
            f"{_plural(len(frozen), 'trainable parameter')} {verb} not changed in {record.step} steps: "
            f"{shown}. They require gradients and sit in the optimizer, but receive no update."
        )
        return message, {"parameters": evidence, "steps": record.step}


@dataclass(frozen=True)
class GrowthVerdict:
    """Result of :func:`growth_verdict`."""

    growth: float
    recent_growth: float
    p_increasing: float
    slope_earlier: float
    slope_recent: float
    runaway: bool


def growth_verdict(
    steps: Sequence[float],
    values: Sequence[float],
    *,
    alpha: float = 0.01,
    slowdown: float = 0.5,
    min_growth: float = 0.5,
    min_recent_growth: float = 0.3,
) -> GrowthVerdict:
    """Whether a series grows without leveling off.

    All of these are required: the recent half of the series rises significantly (one-sided Mann-Kendall
    ``p < alpha``); it has not slowed down much (its Theil-Sen slope is at least ``slowdown`` times the
    earlier half's); the last value exceeds the first by at least ``min_growth``; and the recent half alone
    grows by at least ``min_recent_growth`` (its Theil-Sen slope times its span, over its first value).

    Args:
        steps: Positions of the values (training steps), increasing.
        values: The series (finite values; the first is the reference for the growth).
        alpha: Significance of the Mann-Kendall test.
        slowdown: Smallest ratio of recent to earlier slope that still counts as "not leveling off".
        min_growth: Smallest relative growth since the first value.
        min_recent_growth: Smallest relative growth over the recent half.

    Returns:
        The growths, the p-value, both slopes and the verdict; fewer than 6 points never give a runaway.

    >>> linear = [10.0 + 1.0 * t for t in range(20)]   # +190%, at a constant pace
    >>> growth_verdict(range(20), linear).runaway
    True
    >>> leveling = [10.0 + 10.0 * (1 - math.exp(-t / 3)) for t in range(20)]   # +100%, then flat
    >>> growth_verdict(range(20), leveling).runaway
    False
    """
    n = min(len(steps), len(values))
    if n < 6 or not values[0] > 0:
        return GrowthVerdict(
            growth=math.nan,
            recent_growth=math.nan,
            p_increasing=1.0,
            slope_earlier=math.nan,
            slope_recent=math.nan,
            runaway=False,
        )
    half = n // 2
    xs, ys = list(steps[:n]), list(values[:n])
    earlier = theil_sen_slope(ys[: n - half], xs[: n - half])
    recent = theil_sen_slope(ys[n - half :], xs[n - half :])
    p = mann_kendall(ys[n - half :]).p_increasing
    growth = ys[-1] / ys[0] - 1.0
    recent_growth = recent * (xs[-1] - xs[n - half]) / ys[n - half] if ys[n - half] > 0 else math.nan
    steady = recent > 0 and (earlier <= 0 or recent >= slowdown * earlier)
    return GrowthVerdict(
        growth=growth,
        recent_growth=recent_growth,
        p_increasing=p,
        slope_earlier=earlier,
        slope_recent=recent,
        runaway=bool(p < alpha and steady and growth >= min_growth and recent_growth >= min_recent_growth),
    )


@register
class WeightGrowthDetector(Detector):
    """FW-REG-WEIGHT-GROWTH: the global weight norm keeps growing without leveling off.

    Healthy fine-tunes grow the norm a few percent and level off. Networks trained from scratch often grow
    it 2-4x, fast at first and then ever slower: a digits MLP with Adam at 1e-3 goes 6.8 -> 12.9 in 1300
    steps (-> 15.6 in 4500), its recent half growing 10-11% at a third of the earlier half's pace; on
    separable data the norm grows like ``log t`` (Soudry et al. 2018). A runaway does not slow down as
    much: the same MLP at lr 0.1 grows 11.8 -> 274, its recent half 29-40% at half to 0.6 of the earlier
    pace. :func:`growth_verdict` tells them apart over the whole history since fit start, kept at most
    ``max_points`` long by dropping every other point when full.

    Defaults from simulation (``tests/detect/step_series.py``: 1000 healthy runs, half from scratch with
    50-250% growth of either shape; 1000 runaways, linear or square-root growth of 100-300% from a random
    onset): no false alarm, 88% of runaways found. Asking for 25% recent growth instead of 30% gives 1.7%
    false alarms; a slowdown bar of 0.8 instead of 0.5 misses the real runaway above.

    Args:
        min_growth: Relative growth since the first record required (default 0.5, far beyond a healthy
            fine-tune's few percent).
        min_recent_growth: Relative growth over the recent half of the history required (default 0.3).
        slowdown: A recent-half slope below this fraction of the earlier half's counts as leveling off
            (default 0.5).
        alpha: Significance of the one-sided Mann-Kendall test on the recent half (default 0.01).
        min_points: Records needed before judging (default 16).
        min_steps: Steps the history must span before judging (default 800, 16 records at the default
            logging interval of 50): early on, a healthy from-scratch norm grows at an almost constant
            pace, and its slowdown shows only after about one time constant of its approach.
        max_points: Most points kept (default 64).

    Raises:
        ValueError: If an argument is out of range (``max_points`` must be at least ``min_points``).
        TypeError: If an argument has the wrong type, or :meth:`update` gets another record type.
    """

    name = "weight_growth"
    record_types = (StepRecord,)

    def __init__(
        self,
        *,
        min_growth: float = 0.5,
        min_recent_growth: float = 0.3,
        slowdown: float = 0.5,
        alpha: float = 0.01,
        min_points: int = 16,
        min_steps: int = 800,
        max_points: int = 64,
    ) -> None:
        self.min_growth = v.check_positive_float("min_growth", min_growth)
        self.min_recent_growth = v.check_positive_float("min_recent_growth", min_recent_growth)
        self.slowdown = v.check_fraction("slowdown", slowdown)
        self.alpha = v.check_fraction("alpha", alpha)
        self.min_points = v.check_positive_int("min_points", min_points)
        if self.min_points < 6:
            raise ValueError(f"Expected `min_points` to be an int of at least 6, but got {min_points!r}.")
        self.min_steps = v.check_non_negative_int("min_steps", min_steps)
        self.max_points = v.check_positive_int("max_points", max_points)
        if self.max_points < self.min_points:
            raise ValueError(
                f"Expected `max_points` to be at least `min_points` ({min_points!r}), but got {max_points!r}."
            )
        self.points: list[list[float]] = []  # [step, norm], every `stride`-th finite record
        self.stride = 1
        self.seen = 0

    def update(self, record: Record) -> Finding | None:
        if not isinstance(record, StepRecord):
            raise TypeError(f"Expected `record` to be a StepRecord, but got {type(record).__name__}.")
        norm = _finite(record.weight_norm)
        if norm is None or norm <= 0:
            return None
        point = [float(record.step), norm]
        if self.seen % self.stride == 0:
            self.points.append(point)
            if len(self.points) > self.max_points:
                self.points = self.points[::2]
                self.stride *= 2
        self.seen += 1
        series = self.points if self.points[-1] == point else [*self.points, point]
        if self.seen < self.min_points or series[-1][0] - series[0][0] < self.min_steps:
            return None
        verdict = growth_verdict(
            [p[0] for p in series],
            [p[1] for p in series],
            alpha=self.alpha,
            slowdown=self.slowdown,
            min_growth=self.min_growth,
            min_recent_growth=self.min_recent_growth,
        )
        if not verdict.runaway:
            return None
        first_step, first = series[0]
        pace = (
            "faster than before"
            if verdict.slope_recent >= verdict.slope_earlier
            else f"at {verdict.slope_recent / verdict.slope_earlier:.0%} of its earlier pace"
        )
        message = (
            f"The global weight norm has grown {verdict.growth:.0%} since step {int(first_step)} "
            f"({first:.4g} -> {norm:.4g}) and is not leveling off: the recent half of the run alone added "
            f"{verdict.recent_growth:.0%}, {pace} (Mann-Kendall p = {verdict.p_increasing:.1g})."
        )
        evidence = {
            "growth": _g(verdict.growth),
            "recent_growth": _g(verdict.recent_growth),
            "first_norm": _g(first, 6),
            "weight_norm": _g(norm, 6),
            "first_step": int(first_step),
            "slope_recent": _g(verdict.slope_recent),
            "slope_earlier": _g(verdict.slope_earlier),
            "p_increasing": _g(verdict.p_increasing, 3),
        }
        return Finding(
            code="FW-REG-WEIGHT-GROWTH",
            severity=Severity.WARNING,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )
