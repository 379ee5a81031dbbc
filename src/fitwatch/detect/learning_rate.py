"""Learning-rate detectors over step records and the set-up audit.

Three detectors, three codes:

- :class:`UpdateRatioDetector` (``update_ratio``): FW-LR-TOO-HIGH / FW-LR-TOO-LOW from the per-block
  update-to-weight ratio ``||delta theta|| / ||theta||``.
- :class:`LossSpikeDetector` (``loss_spikes``): FW-LOSS-SPIKES, the training loss at least twice its
  recent mean on several consecutive steps.
- :class:`WarmupDetector` (``warmup``): FW-LR-NO-WARMUP, a pretrained model fine-tuned at a large
  learning rate from the very first step.

Why the update ratio reads the way it does. The rule of thumb (cs231n, "Neural Networks Part 3";
Karpathy, "Building makemore Part 3", 2022) is a ratio near 1e-3. With SGD the update is ``lr * g``, so the
ratio is ``lr * ||g|| / ||theta||`` and depends on the gradient scale. Adam normalises each element, so
its step is about ``lr * |m_hat| / sqrt(v_hat)`` with ``|m_hat| / sqrt(v_hat) <= 1`` (Kingma & Ba 2015,
Sec. 2.1): about 1 while gradients agree from step to step, about ``sqrt((1 - b1) / (1 + b1)) = 0.23`` once
they are mostly noise. The ratio is therefore ``(0.2 .. 1) * lr / rms(theta)``. Measured here on real runs
(median over blocks): all-MiniLM-L6 (rms(theta) = 0.06) fine-tuned with AdamW at lr 2e-5 moves
1.2e-4 .. 1.7e-4 per step at the peak and settles at a noise floor of 6e-5 .. 7e-5 once rescaled to the
peak learning rate; a scikit-learn digits MLP trained from scratch with Adam at 1e-3 moves 5e-4 .. 2.7e-3
(1.4e-2 .. 2e-2 on Adam's very first step, where ``m_hat / sqrt(v_hat) = +-1``). Too high a learning rate
does not push Adam's ratio up without bound: the weights grow until the ratio falls back to roughly
``1 / sqrt(step)``; the same MLP at lr 0.1 and 1.0 sits at 0.9e-2 .. 3.3e-2. Hence the asymmetric
defaults: ``high = 1e-2`` (one decade above the rule of thumb) and ``low = 5e-6`` (below the lowest healthy
noise floor measured, with room for fine-tuning learning rates down to ~2e-6).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import median

from fitwatch import _validation as v
from fitwatch.detect.base import Detector, Record, register, rounded
from fitwatch.detect.records import AuditRecord, StepRecord
from fitwatch.detect.trends import finite
from fitwatch.findings import Finding, Severity

__all__ = [
    "LossSpikeDetector",
    "UpdateRatioDetector",
    "WarmupDetector",
    "geometric_mean",
    "optimizer_family",
    "schedule_phase",
]

#: The update-to-weight ratio rule of thumb (cs231n; Karpathy 2022): "somewhere around 1e-3".
RULE_OF_THUMB_RATIO = 1e-3


def geometric_mean(values: Iterable[float]) -> float:
    """Geometric mean of the finite, positive values; NaN when there are none.

    Ratios spread over decades, so their typical value is a mean of logarithms.

    >>> geometric_mean([1e-4, 1e-2])
    0.001
    >>> math.isnan(geometric_mean([0.0, float("nan")]))
    True
    """
    logs = [math.log(x) for x in finite(values) if x > 0]
    return float(f"{math.exp(sum(logs) / len(logs)):.12g}") if logs else math.nan


def schedule_phase(lr: float, previous_lr: float | None, peak_lr: float, decay_fraction: float) -> str:
    """Where a learning-rate schedule stands: ``"warmup"``, ``"decayed"``, ``"steady"`` or ``"unknown"``.

    Args:
        lr: Learning rate applied now.
        previous_lr: Learning rate at the previous record, ``None`` at the first one.
        peak_lr: Largest learning rate seen so far (including ``lr``).
        decay_fraction: Below this fraction of ``peak_lr`` the schedule has decayed.

    Returns:
        ``"warmup"`` while the rate rises, ``"decayed"`` once it is below ``decay_fraction * peak_lr``,
        ``"unknown"`` when a rate is not finite or the peak is not positive, else ``"steady"``.

    >>> schedule_phase(2e-5, 1e-5, 2e-5, 0.5)
    'warmup'
    >>> schedule_phase(8e-6, 9e-6, 2e-5, 0.5)
    'decayed'
    >>> schedule_phase(1.8e-5, 2e-5, 2e-5, 0.5)
    'steady'
    """
    if not (math.isfinite(lr) and math.isfinite(peak_lr) and peak_lr > 0):
        return "unknown"
    # A relative tolerance so that float noise in a constant schedule does not read as a rise.
    if previous_lr is not None and math.isfinite(previous_lr) and lr > previous_lr * (1.0 + 1e-6):
        return "warmup"
    if lr < decay_fraction * peak_lr:
        return "decayed"
    return "steady"


#: Optimizers whose per-element step is normalised by a second-moment estimate (about ``lr`` per element).
_ADAPTIVE = ("adam", "lamb", "lion", "adabelief", "adafactor", "rmsprop", "adan", "sophia")
#: Adam with a variance rectification that does the job of warmup (Liu et al. 2020).
_RECTIFIED = ("radam",)
_SGD = ("sgd",)


def optimizer_family(name: str) -> str:
    """Family of an optimizer class name: ``"rectified"``, ``"adaptive"``, ``"sgd"`` or ``"unknown"``.

    Matching is by case-insensitive substring, so fused, 8-bit and paged variants fall in their family.

    >>> [optimizer_family(n) for n in ("AdamW", "PagedAdamW8bit", "RAdam", "SGD", "LBFGS")]
    ['adaptive', 'adaptive', 'rectified', 'sgd', 'unknown']
    """
    low = str(name).lower()
    if any(k in low for k in _RECTIFIED):
        return "rectified"
    if any(k in low for k in _ADAPTIVE):
        return "adaptive"
    if any(k in low for k in _SGD):
        return "sgd"
    return "unknown"


def _check_record(record: Record, types: tuple[type, ...]) -> None:
    if not isinstance(record, types):
        expected = " or ".join(t.__name__ for t in types)
        article = "an" if expected[0] in "AEIOU" else "a"
        raise TypeError(f"Expected `record` to be {article} {expected}, but got {type(record).__name__}.")


def _max_finite(values: Sequence[float]) -> float:
    vals = finite(values)
    return max(vals) if vals else math.nan


def _g(x: float | None) -> float | None:
    """A number for evidence: 4 significant digits, ``None`` unless finite (evidence is strict JSON)."""
    return float(f"{x:.4g}") if x is not None and math.isfinite(x) else None


@register
class UpdateRatioDetector(Detector):
    """FW-LR-TOO-HIGH / FW-LR-TOO-LOW: update-to-weight ratios persistently far from ~1e-3.

    On each diagnostic record (one with ``update_ratios``) the detector takes the median ratio over the
    parameter blocks: one block alone does not speak for the learning rate (a zero-initialised LoRA ``B``
    or bias block starts at an infinite ratio and decays like ``1 / step``; sparse embedding updates and
    LayerNorm gains sit near 1e-5 in healthy runs), so the worst block is named in the message but the
    verdict is the typical block's. The verdict is the geometric mean of the last ``patience`` judged
    records, which lets one odd record pass. The run's first diagnostic record is skipped: Adam's first
    step moves every element by exactly ``lr`` (``m_hat / sqrt(v_hat) = +-1``), 10-20x a typical step.
    Records before ``min_step`` are not judged either: at the start of training gradients agree from step to
    step, so Adam moves every weight by about ``lr``, and a freshly initialised network's weights are small
    (``rms(theta)`` ~0.07); measured on the zoo's healthy runs trained from scratch with AdamW at 1e-3 (digits
    MLP, 2-layer BERT) and with SGD at 0.01 (momentum 0.9), the median ratio is 1.0e-2 .. 1.4e-2 over the
    first 10-90 steps and below 7e-3 from step 110 on. At the default diagnostic interval (50 steps) the first
    record is skipped anyway, so this matters only for shorter intervals.

    Records are judged only while the schedule is steady: not while the learning rate rises (warmup) and
    not once it is below ``decay_fraction`` of the peak seen (a schedule decaying towards its end makes
    the ratio small on purpose). Either resets the window. For the low side the ratio is rescaled to the
    peak learning rate (Adam's ratio is proportional to it), so a decay that has begun does not count
    against the run; the high side uses the raw ratio. With no learning rate in the records, every
    diagnostic record is judged.

    Args:
        high: Ratio above which the learning rate is too high. Default ``1e-2``, one decade above the rule
            of thumb; see the module docstring for the measured ranges behind it.
        low: Ratio (rescaled to the peak learning rate) below which it is too low. Default ``5e-6``.
        patience: Consecutive judged diagnostic records the geometric mean runs over (default 3, i.e. 150
            steps at the default diagnostic interval of 50).
        min_step: Records before this step are not judged (default 100, the early transient above).
        decay_fraction: Records with a learning rate below this fraction of the peak are not judged
            (default 0.5).

    Raises:
        ValueError: If ``high`` is not above ``low``, or an argument is out of range.
        TypeError: If an argument has the wrong type, or :meth:`update` gets another record type.
    """

    name = "update_ratio"
    record_types = (StepRecord,)

    def __init__(
        self,
        *,
        high: float = 1e-2,
        low: float = 5e-6,
        patience: int = 3,
        decay_fraction: float = 0.5,
        min_step: int = 100,
    ) -> None:
        self.high = v.check_positive_float("high", high)
        self.low = v.check_positive_float("low", low)
        if not self.high > self.low:
            raise ValueError(f"Expected `high` to be greater than `low` ({low!r}), but got {high!r}.")
        self.patience = v.check_positive_int("patience", patience)
        self.min_step = v.check_non_negative_int("min_step", min_step)
        self.decay_fraction = v.check_fraction("decay_fraction", decay_fraction)
        self.peak_lr: float | None = None
        self.previous_lr: float | None = None
        self.diagnostics = 0
        # The last `patience` judged diagnostic records, each [step, median ratio, median ratio rescaled to
        # the peak lr, highest block, its ratio, lowest block, its ratio, lr]. A list, as state is JSON.
        self.judged: list[list] = []

    def update(self, record: Record) -> Finding | None:
        _check_record(record, self.record_types)
        assert isinstance(record, StepRecord)
        lr = _max_finite(record.lr)
        phase = "unknown"
        if math.isfinite(lr):
            self.peak_lr = lr if self.peak_lr is None else max(self.peak_lr, lr)
            phase = schedule_phase(lr, self.previous_lr, self.peak_lr, self.decay_fraction)
            self.previous_lr = lr
        ratios = {str(k): float(r) for k, r in record.update_ratios.items() if _finite_non_negative(r)}
        if not ratios:
            return None
        self.diagnostics += 1
        if self.diagnostics == 1 or record.step < self.min_step:
            return None  # Adam's first update is lr * sign(g) on every element, then the early transient
        if phase in ("warmup", "decayed") or (math.isfinite(lr) and phase == "unknown"):
            # "unknown" with a finite lr means a zero peak: nothing moves on purpose (lr = 0 at warmup start).
            self.judged.clear()
            return None
        typical = median(ratios.values())
        top = max(ratios, key=ratios.__getitem__)
        bottom = min(ratios, key=ratios.__getitem__)
        scale = self.peak_lr / lr if math.isfinite(lr) and lr > 0 and self.peak_lr else 1.0
        if not math.isfinite(typical * scale):
            return None  # absurd magnitudes: nothing to judge, and the state stays strict JSON
        applied = lr if math.isfinite(lr) else None
        self.judged.append(
            [record.step, typical, typical * scale, top, ratios[top], bottom, ratios[bottom], applied]
        )
        del self.judged[: -self.patience]
        if len(self.judged) < self.patience:
            return None
        raw = geometric_mean(j[1] for j in self.judged)
        at_peak = geometric_mean(j[2] for j in self.judged)
        if math.isfinite(raw) and raw > self.high:
            return self._finding(record, "FW-LR-TOO-HIGH", raw, len(ratios))
        # All-zero ratios (nothing moves at a positive lr) have no geometric mean: the lowest possible ratio.
        if (math.isfinite(at_peak) and at_peak < self.low) or all(j[2] == 0 for j in self.judged):
            return self._finding(
                record, "FW-LR-TOO-LOW", 0.0 if math.isnan(at_peak) else at_peak, len(ratios)
            )
        return None

    def _finding(self, record: StepRecord, code: str, typical: float, n_blocks: int) -> Finding:
        step0, _, _, top, top_ratio, bottom, bottom_ratio, lr = self.judged[-1]
        worst, worst_ratio = (top, top_ratio) if code == "FW-LR-TOO-HIGH" else (bottom, bottom_ratio)
        first_step = self.judged[0][0]
        lr_text = f" at learning rate {lr:.1e}" if lr is not None else ""
        if code == "FW-LR-TOO-HIGH":
            factor = typical / RULE_OF_THUMB_RATIO
            message = (
                f"Each step changes the weights by {typical:.1e} of their norm (median over {n_blocks} "
                f"blocks, steps {first_step}-{step0}){lr_text}, {factor:.0f}x the ~1e-3 rule of thumb; "
                f"block `{worst}` moves {worst_ratio:.1e}. The learning rate looks too high by about "
                f"{factor:.0f}x."
            )
        else:
            factor = RULE_OF_THUMB_RATIO / typical if typical > 0 else math.inf
            shown = f"{factor:.0f}x below" if math.isfinite(factor) else "far below"
            message = (
                f"Each step changes the weights by only {typical:.1e} of their norm (median over {n_blocks} "
                f"blocks, steps {first_step}-{step0}, rescaled to the peak learning rate){lr_text}, {shown} "
                f"the ~1e-3 rule of thumb (block `{worst}`: {worst_ratio:.1e}): training barely moves the "
                f"weights. The learning rate looks too low."
            )
        evidence = {
            "median_update_ratio": _g(typical),
            "rule_of_thumb": RULE_OF_THUMB_RATIO,
            "threshold": self.high if code == "FW-LR-TOO-HIGH" else self.low,
            "diagnostic_records": len(self.judged),
            "first_step": first_step,
            "blocks": n_blocks,
            "worst_block": worst,
            "worst_update_ratio": _g(worst_ratio),
            "lr": _g(lr),
            "peak_lr": _g(self.peak_lr),
            "factor": _g(factor),
        }
        return Finding(
            code=code,
            severity=Severity.WARNING,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )


def _finite_non_negative(x: object) -> bool:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f >= 0


@register
class LossSpikeDetector(Detector):
    """FW-LOSS-SPIKES: the training loss at least ``ratio`` times its recent mean on consecutive steps.

    A step is a spike when both hold (Lightning's ``SpikeDetection`` also pairs a relative with an
    absolute tolerance): ``loss >= ratio * mean`` and ``loss - mean >= floor``, where ``mean`` and the
    standard deviation ``sd`` are those of the last ``window`` non-spike steps and
    ``floor = max(noise_multiplier * sd, min_rise * initial)`` with ``initial`` the median of the first
    five losses. The floor is what keeps healthy runs quiet: late in training minibatch losses are
    heavy-tailed in ratio (mean 0.02, one hard example in a batch makes it 0.08), and ``sd`` measures
    exactly that spread; ``min_rise`` covers windows that happen to hold no hard batch. Spike steps do not
    enter the reference window, so a long excursion is still measured against the level before it; after
    ``window`` steps at a new level that level becomes the reference.

    The finding is returned on every record during which a run of at least ``min_consecutive`` spike
    steps was under way.

    Args:
        ratio: Loss-to-recent-mean ratio of a spike step (default 2.0, as the issue specifies).
        min_consecutive: Consecutive spike steps needed (default 6). On simulated heavy-tailed healthy
            runs (2000 seeds, 6 million steps) five in a row happened once, six never; a learning rate
            too high for a stretch keeps the loss up for tens of steps.
        window: Steps in the reference mean (default 100).
        noise_multiplier: Rise over the mean required, in standard deviations of the window (default 3).
        min_rise: Rise over the mean required, as a fraction of the initial loss (default 0.05).
        min_history: Steps in the window before anything is judged (default 20).

    Raises:
        ValueError: If an argument is out of range (``ratio`` must exceed 1).
        TypeError: If an argument has the wrong type, or :meth:`update` gets another record type.
    """

    name = "loss_spikes"
    record_types = (StepRecord,)

    def __init__(
        self,
        *,
        ratio: float = 2.0,
        min_consecutive: int = 6,
        window: int = 100,
        noise_multiplier: float = 3.0,
        min_rise: float = 0.05,
        min_history: int = 20,
    ) -> None:
        self.ratio = v.check_positive_float("ratio", ratio)
        if self.ratio <= 1.0:
            raise ValueError(f"Expected `ratio` to be a float greater than 1, but got {ratio!r}.")
        self.min_consecutive = v.check_positive_int("min_consecutive", min_consecutive)
        self.window = v.check_positive_int("window", window)
        self.noise_multiplier = v.check_positive_float("noise_multiplier", noise_multiplier)
        self.min_rise = v.check_fraction("min_rise", min_rise)
        self.min_history = v.check_positive_int("min_history", min_history)
        if self.min_history > self.window:
            raise ValueError(
                f"Expected `min_history` to be at most `window` ({window!r}), but got {min_history!r}."
            )
        self.reference: list[float] = []  # the last `window` non-spike losses (a list: state is JSON)
        self.ref_sum = 0.0
        self.ref_sumsq = 0.0
        self.first_losses: list[float] = []
        self.run: list[float] = []  # losses of the current run of spike steps (not in the reference)
        # The current run: first step, reference mean when it began, length and peak so far.
        self.run_start: int | None = None
        self.run_mean: float | None = None
        self.run_length = 0
        self.run_peak: float | None = None
        # The latest run that reached `min_consecutive` (an episode): [start, mean, length, peak, ongoing].
        self.episode: list | None = None
        self.episodes = 0

    @property
    def initial(self) -> float:
        return median(self.first_losses) if self.first_losses else math.nan

    def update(self, record: Record) -> Finding | None:
        _check_record(record, self.record_types)
        assert isinstance(record, StepRecord)
        first_step = record.step - len(record.losses) + 1
        hit = False
        for i, raw in enumerate(record.losses):
            try:
                x = float(raw)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(x):
                continue  # divergence's business; a NaN neither makes nor breaks a run
            if len(self.first_losses) < 5:
                self.first_losses.append(x)
            if self._is_spike(x):
                if not self.run:
                    self.run_start = first_step + i
                    self.run_mean = self.ref_sum / len(self.reference)
                    self.run_length, self.run_peak = 0, x
                self.run.append(x)
                self.run_length += 1
                self.run_peak = max(self.run_peak if self.run_peak is not None else x, x)
                if self.run_length == self.min_consecutive:
                    self.episodes += 1
                if self.run_length >= self.min_consecutive:
                    hit = True
                    self.episode = [self.run_start, self.run_mean, self.run_length, self.run_peak, True]
                if len(self.run) > self.window:  # a lasting new level becomes the reference
                    self._push(self.run.pop(0))
            else:
                if self.run and self.episode is not None and self.episode[0] == self.run_start:
                    self.episode[4] = False
                for y in self.run:
                    self._push(y)
                self.run = []
                self._push(x)
        if not hit:
            return None
        return self._finding(record)

    def _is_spike(self, x: float) -> bool:
        n = len(self.reference)
        if n < self.min_history:
            return False
        mean = self.ref_sum / n
        if mean <= 0:
            return False  # a ratio to the mean means nothing for losses that reach zero or below
        var = max(0.0, self.ref_sumsq / n - mean * mean)
        initial = self.initial
        floor = max(self.noise_multiplier * math.sqrt(var), self.min_rise * initial if initial > 0 else 0.0)
        return x >= self.ratio * mean and x - mean >= floor

    def _push(self, x: float) -> None:
        if len(self.reference) == self.window:
            old = self.reference.pop(0)
            self.ref_sum -= old
            self.ref_sumsq -= old * old
        self.reference.append(x)
        self.ref_sum += x
        self.ref_sumsq += x * x
        if not (math.isfinite(self.ref_sum) and math.isfinite(self.ref_sumsq)):
            # An absurd loss (|x| > 1e154 squares to inf) entered or left the window: recount rather than
            # keep inf - inf = NaN once it is gone (plain sums: math.fsum raises on overflow).
            self.ref_sum = sum(self.reference)
            self.ref_sumsq = sum(y * y for y in self.reference)

    def _finding(self, record: StepRecord) -> Finding:
        # The latest episode was under way during this record; it may have ended since.
        assert self.episode is not None
        start, mean, length, peak, ongoing = self.episode
        state = "and is still up" if ongoing else "then came back down"
        message = (
            f"Training loss jumped to at least {self.ratio:g}x its recent mean of {mean:.3g} on {length} "
            f"consecutive steps from step {start}, peaking at {peak:.3g}, {state}; "
            f"{self.episodes} such episode{'s' if self.episodes != 1 else ''} so far."
        )
        evidence = {
            "recent_mean": _g(mean),
            "peak_loss": _g(peak),
            "consecutive_steps": length,
            "onset_step": start,
            "episodes": self.episodes,
            "ratio": self.ratio,
            "ongoing": ongoing,
        }
        return Finding(
            code="FW-LOSS-SPIKES",
            severity=Severity.WARNING,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )


@register
class WarmupDetector(Detector):
    """FW-LR-NO-WARMUP: a pretrained model fine-tuned at a large learning rate from the first step.

    Fires on an audit with ``pretrained`` True when some param group starts at (nearly) its base rate,
    ``initial_lr >= no_warmup_fraction * base_lr``, and that rate is large for the optimizer's family.
    Adam-family steps are about ``lr`` per element from the first step, while the second-moment estimate
    rests on a handful of gradients (Liu et al. 2020); BERT fine-tuning recipes use 2e-5 .. 5e-5 with a
    10% linear warmup (Devlin et al. 2019), and fine-tuning at 1e-4 and above without it fails often
    (Mosbach et al. 2021). RAdam rectifies that variance itself (Liu et al. 2020) and is never flagged.
    For SGD the reference is Goyal et al. (2017): 0.1 per 256 samples trains ImageNet from scratch
    without warmup, above it they need one; a pretrained model is more fragile, so 0.1 is where
    "large" starts. With several optimizers of different families the higher threshold applies, so a
    mixed set-up is never judged by the stricter family.

    Only the first audit of a run that starts from step 0 carries ``initial_lrs`` and is judged: a later audit reads each group's learning rate as it is then (after
    a warmup it equals the base rate), and a run resumed mid-schedule has no warmup to miss.

    Args:
        adaptive_lr: Smallest "large" learning rate for Adam-family optimizers (default 1e-4).
        sgd_lr: Smallest "large" learning rate for SGD (default 0.1).
        no_warmup_fraction: A group whose first learning rate is at least this fraction of its base rate
            has no warmup worth the name (default 0.5; torch's ``LinearLR`` warmup starts at 1/3, HF's
            linear warmup at 0).

    Raises:
        ValueError: If an argument is out of range.
        TypeError: If an argument has the wrong type, or :meth:`update` gets another record type.
    """

    name = "warmup"
    record_types = (AuditRecord,)

    def __init__(
        self, *, adaptive_lr: float = 1e-4, sgd_lr: float = 0.1, no_warmup_fraction: float = 0.5
    ) -> None:
        self.adaptive_lr = v.check_positive_float("adaptive_lr", adaptive_lr)
        self.sgd_lr = v.check_positive_float("sgd_lr", sgd_lr)
        self.no_warmup_fraction = v.check_fraction("no_warmup_fraction", no_warmup_fraction)

    def threshold(self, optimizer_names: Sequence[str]) -> float | None:
        """The "large" learning rate for these optimizers, or ``None`` when none of them is judged.

        >>> WarmupDetector().threshold(["AdamW"]), WarmupDetector().threshold(["RAdam"])
        (0.0001, None)
        """
        families = {optimizer_family(n) for n in optimizer_names}
        if not families or families & {"rectified", "unknown"}:
            return None
        return max(self.adaptive_lr if f == "adaptive" else self.sgd_lr for f in families)

    def update(self, record: Record) -> Finding | None:
        _check_record(record, self.record_types)
        assert isinstance(record, AuditRecord)
        # The adapters fill `initial_lrs` only in the first audit of a run that starts at step 0 (the LR the
        # first optimizer step applies); later audits and resumed runs leave it empty.
        if not record.initial_lrs or record.pretrained is not True:
            return None
        threshold = self.threshold(record.optimizer_names)
        if threshold is None:
            return None
        initial = [float(x) if _finite_non_negative(x) else math.nan for x in record.initial_lrs]
        base = [float(x) if _finite_non_negative(x) else math.nan for x in record.base_lrs] or list(initial)
        flagged = [
            (i, lr, b)
            for i, (lr, b) in enumerate(zip(initial, base, strict=False))  # base may be shorter
            if lr >= threshold and b > 0 and lr >= self.no_warmup_fraction * b
        ]
        if not flagged:
            return None
        group, lr, b = max(flagged, key=lambda t: t[1])
        names = ", ".join(dict.fromkeys(str(n) for n in record.optimizer_names))
        groups = f"param group {group}" if len(initial) > 1 else "the only param group"
        message = (
            f"The pretrained model is fine-tuned with {names} at learning rate {lr:.1e} from the first step "
            f"({groups} starts at {lr / b:.0%} of its base rate {b:.1e}): there is no warmup. At or above "
            f"{threshold:.0e} this often destabilises fine-tuning."
        )
        evidence = {
            "initial_lr": _g(lr),
            "base_lr": _g(b),
            "threshold": threshold,
            "groups_without_warmup": [i for i, _, _ in flagged],
            "optimizers": list(dict.fromkeys(str(n) for n in record.optimizer_names)),
        }
        return Finding(
            code="FW-LR-NO-WARMUP",
            severity=Severity.WARNING,
            step=record.step,
            epoch=record.epoch,
            message=message,
            evidence=rounded(evidence),
        )
