"""FW-DIVERGENCE: non-finite values, or a training loss that explodes.

Two ways a run diverges, both CRITICAL:

- **Non-finite values.** Any NaN/inf loss or logits (step records' ``nonfinite`` counts and NaN/inf in
  ``losses``; validation's ``val["nonfinite_logits"]``) fires at once. Non-finite *gradients* with a finite
  loss are different: fp16 training with a dynamic loss scaler (``torch.amp.GradScaler``; Micikevicius et
  al. 2018) overflows on purpose, a handful of steps while the scale calibrates at the start and about
  once per growth interval (2000 steps) afterwards, and skips those steps. Gradients alone therefore fire
  only when they stay non-finite on ``grad_records`` consecutive records spanning at least ``grad_steps``
  steps (every step being skipped: a scaler that cannot recover, or a run that no longer learns). In bf16
  or fp32 a non-finite gradient reaches the weights and the loss turns NaN on the next step, which fires.
- **Loss explosion.** The bias-corrected EMA of the step losses (Kingma & Ba 2015's correction, so the
  first values are not pulled towards zero) above ``factor`` times its best (lowest) value *and* above the
  initial loss level (median of the first five losses). The second bar keeps a healthy run quiet when its
  loss moves from 0.01 to 0.05 late in training: that is 5x, but nowhere near where the run started.
"""

from __future__ import annotations

import math
from statistics import median

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, Record, register, rounded
from fitwatch.detect.records import EvalRecord, StepRecord
from fitwatch.detect.trends import EMA
from fitwatch.findings import Finding, Severity

__all__ = ["DivergenceDetector", "nonfinite_count"]

#: Number of first finite losses whose median is the initial loss level.
INITIAL_LOSSES = 5


def nonfinite_count(value: object) -> int:
    """A count read defensively: non-numbers, NaN and negative values count as 0, inf as 1.

    >>> [nonfinite_count(x) for x in (3, 2.0, float("nan"), float("inf"), None, -1)]
    [3, 2, 0, 1, 0, 0]
    """
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    if math.isnan(f) or f <= 0:
        return 0
    return 1 if math.isinf(f) else int(f)


def _finite(x: object) -> float | None:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _g(x: float | None) -> float | None:
    """A number for evidence: 4 significant digits, ``None`` unless finite (evidence is strict JSON)."""
    return float(f"{x:.4g}") if x is not None and math.isfinite(x) else None


@register
class DivergenceDetector(Detector):
    """FW-DIVERGENCE (CRITICAL): NaN/inf in loss, logits or gradients, or the loss exploding.

    Reads step records (losses, ``nonfinite`` counts) and evaluation records (``nonfinite_logits``).
    Returns the finding on every record on which the condition holds.

    Args:
        factor: Explosion when the loss EMA exceeds this multiple of its best value (default 4, from the
            issue) and the initial loss level.
        alpha: EMA smoothing per step (default 0.1, a horizon of ~10 steps: explosions take tens of
            steps, and one bad batch moves the average by only 10% of its excess). The best value is
            tracked from the ``ceil(1 / alpha)``-th finite loss on, once the average spans several batches.
        grad_records: Consecutive records with non-finite gradients (and a finite loss) needed (default 3).
        grad_steps: Steps those records must span (default 100; a loss scaler's calibration overflows
            last well under 30 steps).

    Raises:
        ValueError: If ``factor`` is not above 1 or another argument is out of range.
        TypeError: If an argument has the wrong type, or :meth:`update` gets another record type.
    """

    name = "divergence"
    record_types = (StepRecord, EvalRecord)

    def __init__(
        self, *, factor: float = 4.0, alpha: float = 0.1, grad_records: int = 3, grad_steps: int = 100
    ) -> None:
        self.factor = v.check_positive_float("factor", factor)
        if self.factor <= 1.0:
            raise ValueError(f"Expected `factor` to be a float greater than 1, but got {factor!r}.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(
                f"Expected `alpha` to be a float in (0, 1], but got {type(alpha).__name__} {alpha!r}."
            )
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Expected `alpha` to be a float in (0, 1], but got {alpha!r}.")
        self.alpha = float(alpha)
        self.grad_records = v.check_positive_int("grad_records", grad_records)
        self.grad_steps = v.check_non_negative_int("grad_steps", grad_steps)
        self.ema = EMA(self.alpha)
        self.settle = math.ceil(1.0 / self.alpha)
        self.finite_losses = 0
        self.best: float | None = None
        self.best_step: int | None = None
        self.first_losses: list[float] = []
        self.first_nonfinite_step: int | None = None
        self.nonfinite_total: dict[str, int] = {}
        self.previous_step: int | None = None
        self.grad_run_records = 0
        self.grad_run_steps = 0
        self.grad_run_start: int | None = None

    @property
    def initial(self) -> float:
        return median(self.first_losses) if self.first_losses else math.nan

    def update(self, record: Record) -> Finding | None:
        if not isinstance(record, self.record_types):
            raise TypeError(
                f"Expected `record` to be a StepRecord or EvalRecord, but got {type(record).__name__}."
            )
        if isinstance(record, EvalRecord):
            rows = nonfinite_count(record.val.get("nonfinite_logits", 0))
            if rows:
                self._count("validation logits", rows, record.step)
                return self._nonfinite_finding(record, {"validation logits": rows}, "in")
            return None
        return self._update_step(record)

    def _update_step(self, record: StepRecord) -> Finding | None:
        span = (
            record.step - self.previous_step if self.previous_step is not None else max(len(record.losses), 1)
        )
        self.previous_step = record.step
        counts = {str(k): nonfinite_count(n) for k, n in record.nonfinite.items()}
        nan_losses = sum(1 for x in record.losses if _finite(x) is None)
        counts["loss"] = max(counts.get("loss", 0), nan_losses)
        peak_ratio, peak_ema, peak_step = 0.0, math.nan, record.step
        first = record.step - len(record.losses) + 1
        for i, x in enumerate(record.losses):
            f = _finite(x)
            if f is None:
                continue
            if len(self.first_losses) < INITIAL_LOSSES:
                self.first_losses.append(f)
            level = self.ema.update(f)
            self.finite_losses += 1
            # The first values of a bias-corrected EMA are single noisy batches: no "best" until it averages.
            if self.finite_losses < self.settle:
                continue
            if self.best is None or level < self.best:
                self.best, self.best_step = level, first + i
            if self._exploded(level) and level / self.best > peak_ratio:  # type: ignore[operator]
                peak_ratio, peak_ema, peak_step = level / self.best, level, first + i  # type: ignore[operator]

        hard = {k: n for k, n in counts.items() if n and k != "grad"}
        grads = counts.get("grad", 0)
        if grads and not hard:
            if not self.grad_run_records:
                self.grad_run_start = record.step
            self.grad_run_records += 1
            self.grad_run_steps += max(span, 0)
        else:
            self.grad_run_records, self.grad_run_steps, self.grad_run_start = 0, 0, None
        grads_persist = self.grad_run_records >= self.grad_records and self.grad_run_steps >= self.grad_steps
        found = dict(hard)
        if grads and (hard or grads_persist):
            found["gradients"] = grads
        for kind, n in found.items():
            since = (
                self.grad_run_start
                if kind == "gradients" and self.grad_run_start is not None
                else record.step
            )
            self._count(kind, n, since)
        if found:
            return self._nonfinite_finding(record, found, "since the previous record in")
        if peak_ratio:
            return self._explosion_finding(record, peak_ema, peak_step)
        return None

    def _exploded(self, level: float) -> bool:
        initial = self.initial
        return (
            self.best is not None
            and self.best > 0
            and level > self.factor * self.best
            and math.isfinite(initial)
            and level > initial
        )

    def _count(self, kind: str, n: int, step: int) -> None:
        self.nonfinite_total[kind] = self.nonfinite_total.get(kind, 0) + n
        if self.first_nonfinite_step is None:
            self.first_nonfinite_step = step

    def _nonfinite_finding(
        self, record: StepRecord | EvalRecord, found: dict[str, int], scope: str
    ) -> Finding:
        where = ", ".join(f"{kind} ({n})" for kind, n in found.items())
        since = (
            f"; the first appeared by step {self.first_nonfinite_step}"
            if self.first_nonfinite_step is not None and self.first_nonfinite_step != record.step
            else ""
        )
        grad_note = (
            f" on {self.grad_run_records} consecutive records ({self.grad_run_steps} steps), more than a "
            f"loss scaler skips"
            if list(found) == ["gradients"]
            else ""
        )
        message = f"NaN/inf values {scope} {where}{grad_note}{since}: the run has diverged."
        evidence = {
            "nonfinite": dict(found),
            "nonfinite_total": dict(self.nonfinite_total),
            "first_nonfinite_step": self.first_nonfinite_step,
        }
        return Finding(
            code="FW-DIVERGENCE",
            severity=Severity.CRITICAL,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )

    def _explosion_finding(self, record: StepRecord, level: float, step: int) -> Finding:
        best = self.best if self.best is not None else math.nan
        ratio = level / best
        message = (
            f"The smoothed training loss reached {level:.3g} at step {step}, {ratio:.1f}x its best of "
            f"{best:.3g} (step {self.best_step}) and above its starting level of {self.initial:.3g}: "
            f"the loss is exploding."
        )
        evidence = {
            "loss_ema": _g(level),
            "best_loss_ema": _g(best),
            "best_step": self.best_step,
            "initial_loss": _g(self.initial),
            "ratio_to_best": _g(ratio),
            "factor": self.factor,
        }
        return Finding(
            code="FW-DIVERGENCE",
            severity=Severity.CRITICAL,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )
