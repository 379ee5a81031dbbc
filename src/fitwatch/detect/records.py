"""What detectors read: plain-number records, built by the Monitor from the metrics layer.

Three kinds of moment, three records:

- :class:`EvalRecord` at each validation (aggregate, per-class and calibration numbers for the
  validation set and for the training batches seen since the previous validation);
- :class:`StepRecord` at each logging step (per-step losses since the previous record, learning
  rates, gradient and weight norms, per-block update ratios on diagnostic steps);
- :class:`AuditRecord` at fit start and from time to time (facts about the model and optimizer set-up).

Metric names used as keys of :attr:`EvalRecord.val` / :attr:`EvalRecord.train` (absent when unknown):
``loss``, ``accuracy``, ``macro_f1``, ``weighted_f1``, ``ece``, ``mce``, ``adaptive_ece``,
``classwise_ece``, ``brier``, ``nll``, ``samples`` (number of evaluated targets),
``majority_fraction`` (share of the most frequent class among the targets), ``confidence`` (mean
top-label confidence: above ``accuracy`` the model is overconfident, below underconfident),
``ece_chance`` (the ECE a perfectly calibrated model would show on a set of this size with these
confidences: ``sum_b (n_b/n) sqrt(2/pi) sqrt(conf_b (1 - conf_b) / n_b)``, the expected absolute
deviation of each bin's accuracy from its confidence), ``nonfinite_logits`` (rows with NaN/inf
logits, excluded from the other numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["AuditRecord", "EvalRecord", "StepRecord"]


@dataclass(frozen=True)
class EvalRecord:
    """One validation, as plain numbers.

    Args:
        step: Global optimizer step of the validation.
        epoch: Epoch, when the loop has epochs.
        val: Aggregate validation metrics (see the module docstring for the keys).
        train: The same metrics over the training batches since the previous validation (train mode,
            so with dropout on); empty when the adapter saw no training logits.
        val_per_class: Per-class validation lists, each of length ``len(class_names)``: ``precision``,
            ``recall``, ``f1``, ``support`` (targets of the class), ``predicted`` (predictions of it).
        class_names: Names of the classes, in index order.
        lr: Learning rate of each param group at this step.
        progress: Fraction of the planned training done (``step / max_steps``), when known.
    """

    step: int
    epoch: int | None
    val: Mapping[str, float]
    train: Mapping[str, float] = field(default_factory=dict)
    val_per_class: Mapping[str, Sequence[float]] = field(default_factory=dict)
    class_names: Sequence[str] = ()
    lr: Sequence[float] = ()
    progress: float | None = None


@dataclass(frozen=True)
class StepRecord:
    """One logging step, as plain numbers.

    Args:
        step: Global optimizer step of this record.
        epoch: Epoch, when the loop has epochs.
        losses: Training loss of every step since the previous record, oldest first
            (read from a device buffer at this step, not synchronised per step).
        lr: Learning rate of each param group, as applied at this step.
        grad_norm: Global 2-norm of the gradients before clipping (None when not measured).
        weight_norm: Global 2-norm of the trainable weights (None when not measured).
        update_ratios: ``||delta theta|| / ||theta||`` per parameter block, on diagnostic steps only.
        nonfinite: Counts of non-finite values since the previous record: keys ``loss``, ``logits``, ``grad``.
        progress: Fraction of the planned training done, when known.
    """

    step: int
    epoch: int | None
    losses: Sequence[float] = ()
    lr: Sequence[float] = ()
    grad_norm: float | None = None
    weight_norm: float | None = None
    update_ratios: Mapping[str, float] = field(default_factory=dict)
    nonfinite: Mapping[str, int] = field(default_factory=dict)
    progress: float | None = None


@dataclass(frozen=True)
class AuditRecord:
    """Facts about the model and optimizer set-up, as plain data.

    Args:
        step: Global step of the audit (0 at fit start).
        epoch: Epoch, when the loop has epochs.
        model_training: ``model.training`` while the training loop runs.
        eval_mode_modules: Dropout / normalization modules found in eval mode while training.
        frozen_eval_modules_expected: Names of modules in eval mode whose parameters are all frozen
            (``requires_grad=False``): a deliberate frozen backbone, not a bug.
        dropout_probabilities: ``p`` of every dropout module (by module name).
        optimizer_names: Class names of the optimizers.
        weight_decays: Weight decay of every param group (``group_name -> value``).
        decay_on_norm_or_bias: Names of normalization weights and biases that get weight decay > 0.
        missing_from_optimizer: Names of ``requires_grad=True`` parameters in no param group.
        unchanged_parameters: Names of trainable parameters unchanged since fit start (empty at step 0).
        trainable_parameters: Number of trainable parameter tensors.
        pretrained: Whether the model was loaded from pretrained weights, when known.
        initial_lrs: Learning rate of each param group as the first step will apply it (schedulers set
            it at construction, so a warmup shows as a small value here).
        base_lrs: The scheduler's base learning rate of each group (``group["initial_lr"]``), else the
            group's learning rate.
        max_steps: Planned number of optimizer steps, when known.
        current_lrs: Learning rate of each param group at the audit (0 everywhere: nothing can move).
    """

    step: int
    epoch: int | None
    model_training: bool = True
    eval_mode_modules: Sequence[str] = ()
    frozen_eval_modules_expected: Sequence[str] = ()
    dropout_probabilities: Mapping[str, float] = field(default_factory=dict)
    optimizer_names: Sequence[str] = ()
    weight_decays: Mapping[str, float] = field(default_factory=dict)
    decay_on_norm_or_bias: Sequence[str] = ()
    missing_from_optimizer: Sequence[str] = ()
    unchanged_parameters: Sequence[str] = ()
    trainable_parameters: int = 0
    pretrained: bool | None = None
    initial_lrs: Sequence[float] = ()
    base_lrs: Sequence[float] = ()
    max_steps: int | None = None
    current_lrs: Sequence[float] = ()
