"""Findings: what a detector concluded, as a value.

A :class:`Finding` is a frozen record with a stable ``code`` from :data:`CATALOGUE`. Detectors
return findings; sinks decide how to show them (a Python warning, a log line, TensorBoard
text, a line of ``findings.jsonl``). Nothing in this module prints or warns.

>>> f = Finding(code="FW-PLATEAU", severity=Severity.WARNING, step=120, epoch=3,
...             message="validation loss has not improved for 5 evaluations", evidence={"patience": 5})
>>> f.warning_class.__name__
'PlateauWarning'
>>> Finding.from_dict(f.to_dict()) == f
True
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fitwatch import warnings as fw_warnings

__all__ = ["CATALOGUE", "Finding", "FindingSpec", "Severity", "materially_changed", "spec_for", "words_changed"]


class Severity(enum.IntEnum):
    """How bad a finding is. Values equal the :mod:`logging` levels they are logged at."""

    INFO = 20
    WARNING = 30
    CRITICAL = 50

    @classmethod
    def parse(cls, value: Severity | str | int) -> Severity:
        """Severity from a member, its name in any case, or its logging level.

        >>> Severity.parse("warning") is Severity.WARNING
        True
        """
        if isinstance(value, Severity):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(s.name.lower() for s in cls)
        raise ValueError(f"Expected a severity ({names}), but got {value!r}.")


@dataclass(frozen=True)
class FindingSpec:
    """What one finding code means, for the README catalogue and for sinks."""

    code: str
    warning: type[fw_warnings.FitWatchWarning]
    title: str
    meaning: str
    action: str


def _spec(code: str, warning: type[fw_warnings.FitWatchWarning], title: str, meaning: str, action: str) -> FindingSpec:
    return FindingSpec(code=code, warning=warning, title=title, meaning=meaning, action=action)


_W = fw_warnings
#: Every finding code fitwatch can raise, with its warning class and what to do about it.
CATALOGUE: Mapping[str, FindingSpec] = {
    s.code: s
    for s in (
        _spec("FW-OVERFIT", _W.OverfittingWarning, "Overfitting",
              "Validation loss rises as a confirmed trend (Prechelt GL and a one-sided Mann-Kendall test) "
              "while training loss keeps falling.",
              "Use the checkpoint from the best validation epoch; add regularization (weight decay, dropout, "
              "label smoothing) or data; stop earlier."),
        _spec("FW-OVERFIT-SUBTLE", _W.OverfittingWarning, "Overconfidence behind a steady accuracy",
              "Accuracy or F1 is flat or improving while validation NLL and ECE rise: the model is becoming "
              "overconfident, which the aggregate metrics hide (Guo et al. 2017).",
              "Prefer an earlier checkpoint if probabilities matter; label smoothing or more weight decay; "
              "temperature scaling fixes calibration after training."),
        _spec("FW-GAP-WIDENING", _W.OverfittingWarning, "Widening train-validation gap",
              "The validation-minus-training gap of loss or accuracy grows with a significant trend.",
              "Watch for overfitting; add regularization or data; compare with an earlier checkpoint."),
        _spec("FW-PLATEAU", _W.PlateauWarning, "Plateau",
              "No relative improvement beyond the threshold for the patience window "
              "(ReduceLROnPlateau semantics) and no significant downward trend, before convergence.",
              "Raise the learning rate or change the schedule; check that the model can fit a small batch."),
        _spec("FW-LR-DECAYED", _W.LearningRateWarning, "Schedule ended early",
              "The learning rate decayed to (near) zero while the loss was still improving: the schedule "
              "ends too early, often a miscounted number of total steps.",
              "Check num_training_steps / max_steps given to the scheduler (gradient accumulation, devices)."),
        _spec("FW-LR-TOO-HIGH", _W.LearningRateWarning, "Learning rate too high",
              "Per-layer update-to-weight ratios stay far above ~1e-3.",
              "Lower the learning rate (by the factor shown), add warmup or gradient clipping."),
        _spec("FW-LR-TOO-LOW", _W.LearningRateWarning, "Learning rate too low",
              "Per-layer update-to-weight ratios stay far below ~1e-3: the weights barely move.",
              "Raise the learning rate; check that the scheduler does not start at zero."),
        _spec("FW-LOSS-SPIKES", _W.LearningRateWarning, "Loss spikes",
              "Training loss jumped to at least twice its recent mean on several consecutive steps.",
              "Lower the learning rate, add warmup or gradient clipping; look for bad batches."),
        _spec("FW-LR-NO-WARMUP", _W.LearningRateWarning, "No warmup with a large learning rate",
              "A pretrained model is fine-tuned at a large learning rate from the first step, with no warmup.",
              "Add a linear warmup over the first few percent of steps or lower the learning rate."),
        _spec("FW-REG-EVAL-MODE", _W.RegularizationWarning, "Modules in eval mode during training",
              "Dropout or normalization modules are in eval mode while training (dropout off, BatchNorm frozen).",
              "Call model.train() (or the module's .train()) after any evaluation you run yourself."),
        _spec("FW-REG-NO-DROPOUT", _W.RegularizationWarning, "Dropout disabled everywhere",
              "The model has dropout modules but every one has p=0.",
              "Check the config that builds the model (hidden_dropout_prob, attention dropout)."),
        _spec("FW-REG-DECAY-ON-NORM", _W.RegularizationWarning, "Weight decay on LayerNorm or bias",
              "Weight decay is applied to normalization weights or biases, which it should not shrink.",
              "Put norm weights and biases in a param group with weight_decay=0."),
        _spec("FW-REG-NO-DECAY", _W.RegularizationWarning, "No weight decay",
              "AdamW (or another decoupled optimizer) runs with weight_decay=0 on every group.",
              "Set weight_decay (0.01 is the common default for fine-tuning) if you meant to regularize."),
        _spec("FW-REG-MISSING-PARAMS", _W.RegularizationWarning, "Trainable parameters missing from the optimizer",
              "Parameters with requires_grad=True are in no optimizer param group: they never train.",
              "Build the optimizer from model.parameters() after any layer replacement or freezing change."),
        _spec("FW-REG-FROZEN-PARAMS", _W.RegularizationWarning, "Trainable parameters that never change",
              "Parameters that require gradients have not changed since training started.",
              "Check that they receive gradients (detached paths, unused heads) and sit in the optimizer."),
        _spec("FW-REG-WEIGHT-GROWTH", _W.RegularizationWarning, "Unbounded weight growth",
              "The global weight norm grows steadily without leveling off.",
              "Add or raise weight decay; lower the learning rate."),
        _spec("FW-CLASS-COLLAPSE", _W.ClassCollapseWarning, "A class collapses",
              "One class's recall or F1 is near zero or falling while accuracy and macro F1 look healthy.",
              "Rebalance (class weights, sampling), check that class's labels and its share of the data."),
        _spec("FW-CLASS-NEVER-PREDICTED", _W.ClassCollapseWarning, "A class is never predicted",
              "The model predicts one or more validation classes for no sample at all.",
              "Rebalance the loss or the sampler; check the label mapping for that class."),
        _spec("FW-CALIBRATION", _W.CalibrationWarning, "Calibration is poor and worsening",
              "ECE is high and rising beyond what chance gives at this validation-set size.",
              "Use temperature scaling after training; label smoothing or an earlier checkpoint."),
        _spec("FW-DIVERGENCE", _W.DivergenceWarning, "Divergence",
              "NaN or inf in the loss, logits or gradients, or a loss exploding above 4x its best.",
              "Lower the learning rate, enable gradient clipping, check for fp16 overflow and bad inputs."),
        _spec("FW-FAILED-RUN", _W.FailedRunWarning, "Failed run",
              "After a fair share of training, validation accuracy is at or below the majority-class baseline "
              "(Dodge et al. 2020; Mosbach et al. 2021).",
              "Restart with another seed, a lower learning rate or warmup; check the labels reach the loss."),
        _spec("FW-LEAK-SUSPICIOUS", _W.DataLeakageWarning, "Too good to be true",
              "Validation is clearly better than training from the first evaluations, or near perfect very early.",
              "Run fitwatch.data.find_duplicates and check_temporal_split on your splits."),
        _spec("FW-LEAK-DUPLICATES", _W.DataLeakageWarning, "Train/validation duplicates",
              "Validation samples also appear (exactly or nearly) in the training set.",
              "Deduplicate across splits; report validation metrics on the clean subset."),
        _spec("FW-LEAK-TEMPORAL", _W.DataLeakageWarning, "Validation not later than training",
              "Time-ordered data was split so that validation times overlap training times.",
              "Split by time: validate on data strictly after the training period (plus a gap)."),
        _spec("FW-LABEL-SHIFT", _W.DataQualityWarning, "Label distribution shift",
              "Class proportions differ between training and validation, or a class is in one split only.",
              "Stratify the split; check how the validation set was collected."),
        _spec("FW-PIPELINE-DRIFT", _W.PipelineDriftWarning, "Training and inference preprocessing differ",
              "The same sample preprocessed by the training and the inference pipeline gives different outputs.",
              "Share one preprocessing function; fix the stage named in the report."),
        _spec("FW-MISLABEL-SUSPECTS", _W.DataQualityWarning, "Suspected mislabeled samples",
              "Samples whose margin stays negative through training (area under the margin).",
              "Review the listed samples' labels."),
        _spec("FW-LM-PROMPT-TRAINED", _W.DataQualityWarning, "Prompt tokens are trained",
              "Every token of the sampled language-model items is a label, prompt included, while the items "
              "share a long common prompt prefix: the completion-only mask is missing.",
              "Set the prompt's labels to -100 (a completion-only collator, or assistant_only_loss in TRL)."),
    )
}


def spec_for(code: str) -> FindingSpec:
    """The catalogue entry of ``code``.

    Raises:
        ValueError: If ``code`` is not in :data:`CATALOGUE`.
    """
    try:
        return CATALOGUE[code]
    except KeyError:
        raise ValueError(f"Expected a finding code from fitwatch.findings.CATALOGUE, but got {code!r}.") from None


@dataclass(frozen=True)
class Finding:
    """One conclusion of a detector.

    Args:
        code: Stable identifier from :data:`CATALOGUE`, e.g. ``"FW-OVERFIT"``.
        severity: How bad it is.
        step: Global optimizer step at which it was found.
        epoch: Epoch at which it was found, when the loop has epochs.
        message: One plain-language read with the evidence numbers in it.
        evidence: The numbers behind the message, JSON-safe.
        hint: What to do about it; defaults to the catalogue's action.
        subject: What the finding is about when one code can have several causes at once
            (a class name, a layer, a param group); ``""`` otherwise. ``(code, subject)`` identifies a cause.
        resolved_step: The step from which the condition no longer held (the run recovered), or ``None`` while
            it holds. Only findings about a state the run can leave are ever resolved (a failed run, a class
            never predicted); findings about what happened (no warmup, a duplicate) stand.
    """

    code: str
    severity: Severity
    step: int
    epoch: int | None
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    hint: str = ""
    subject: str = ""
    resolved_step: int | None = None

    @property
    def resolved(self) -> bool:
        return self.resolved_step is not None

    def __post_init__(self) -> None:
        spec_for(self.code)
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        if not self.hint:
            object.__setattr__(self, "hint", CATALOGUE[self.code].action)

    @property
    def key(self) -> tuple[str, str]:
        """``(code, subject)``: one cause. Sinks show a cause once and update it afterwards."""
        return (self.code, self.subject)

    @property
    def warning_class(self) -> type[fw_warnings.FitWatchWarning]:
        return CATALOGUE[self.code].warning

    @property
    def title(self) -> str:
        return CATALOGUE[self.code].title

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (severity as its lower-case name)."""
        return {
            "code": self.code,
            "severity": self.severity.name.lower(),
            "step": self.step,
            "epoch": self.epoch,
            "subject": self.subject,
            "message": self.message,
            "evidence": dict(self.evidence),
            "hint": self.hint,
            **({"resolved_step": self.resolved_step} if self.resolved_step is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Read back :meth:`to_dict`, checking every field (files are input like any other).

        Raises:
            TypeError: If ``data`` is not a mapping, or a field has the wrong type (a ``subject`` that is a list,
                a ``message`` that is null).
            ValueError: On an unknown code or severity, or a step or epoch that is not a finite whole number.
            KeyError: If ``code``, ``severity``, ``step`` or ``message`` is missing.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"Expected a finding to be a mapping, but got {type(data).__name__}.")
        for name in ("code", "message"):
            if not isinstance(data[name], str):
                raise TypeError(f"Expected `{name}` of a finding to be a str, but got {data[name]!r}.")
        for name in ("hint", "subject"):
            if not isinstance(data.get(name, ""), str):
                raise TypeError(f"Expected `{name}` of a finding to be a str, but got {data[name]!r}.")
        evidence = data.get("evidence") or {}
        if not isinstance(evidence, Mapping):
            raise TypeError(f"Expected `evidence` of a finding to be a mapping, but got {evidence!r}.")
        return cls(
            code=data["code"],
            severity=Severity.parse(data["severity"]),
            step=_whole(data["step"], "step"),
            epoch=None if data.get("epoch") is None else _whole(data["epoch"], "epoch"),
            message=data["message"],
            evidence=dict(evidence),
            hint=data.get("hint", ""),
            subject=data.get("subject", ""),
            resolved_step=None if data.get("resolved_step") is None else _whole(data["resolved_step"], "resolved_step"),
        )

    def __str__(self) -> str:
        where = f"step {self.step}" + (f", epoch {self.epoch}" if self.epoch is not None else "")
        resolved = f" Resolved at step {self.resolved_step}: the condition no longer holds." if self.resolved else ""
        return f"[{self.code}] {self.message} ({where}).{resolved} Hint: {self.hint}"


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
        raise ValueError(f"Expected `{name}` of a finding to be a whole number, but got {value!r}.")
    return int(value)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def words_changed(before: Finding, after: Finding) -> bool:
    """Whether an update says something else: another code or severity, or other words (numbers aside).

    >>> f = Finding(code="FW-PLATEAU", severity="info", step=10, epoch=1, message="flat for 4 evaluations")
    >>> words_changed(f, Finding(code="FW-PLATEAU", severity="info", step=20, epoch=2, message="flat for 9 evaluations"))
    False
    """
    return (
        before.severity != after.severity
        or before.code != after.code
        or _NUMBER.sub("#", before.message) != _NUMBER.sub("#", after.message)
    )


def materially_changed(before: Finding, after: Finding, *, rel_tol: float = 0.1) -> bool:
    """Whether an update of a cause is worth showing again: another severity, other words in the message, or a
    number in it that moved by more than ``rel_tol`` of its size. Numbers that drift within noise (a step
    count, a loss at its fourth decimal) do not make a new ``findings.jsonl`` line at every evaluation.

    >>> from dataclasses import replace
    >>> f = Finding(code="FW-PLATEAU", severity="info", step=10, epoch=1, message="flat for 4 evaluations at 0.512")
    >>> materially_changed(f, f)
    False
    >>> materially_changed(f, replace(f, step=20, message="flat for 4 evaluations at 0.513"))
    False
    >>> materially_changed(f, replace(f, message="flat for 6 evaluations at 0.512"))
    True
    >>> materially_changed(f, replace(f, severity=Severity.WARNING))
    True
    """
    if before.message == after.message:
        return before.severity != after.severity or before.code != after.code
    if words_changed(before, after):
        return True
    for a, b in zip(_NUMBER.findall(before.message), _NUMBER.findall(after.message)):
        x, y = float(a), float(b)
        if abs(x - y) > rel_tol * max(abs(x), abs(y)):
            return True
    return False
