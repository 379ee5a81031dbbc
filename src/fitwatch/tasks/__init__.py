"""Tasks: what a batch's predictions mean, how they are aligned with their targets, and what state they feed.

A task is decided once per run, from the model (its Hugging Face config: the head's class, ``architectures``,
``problem_type``, ``num_labels``) and from the first batch's logits, targets and loss, unless the user names it
with ``task=``. It owns how a batch is reduced and summarised:

=======================  ==========================  ===========================  ================================
task                     predictions                 targets                      state (per split)
=======================  ==========================  ===========================  ================================
``multiclass``           ``[N, C]``                  ``[N]`` class ids            per-class counts, calibration
``binary``               ``[N]`` or ``[N, 1]``       ``[N]`` in {0, 1}            (:mod:`fitwatch.metrics`)
``multilabel``           ``[N, L]``                  ``[N, L]`` multi-hot
``token_classification`` ``[N, T, C]``               ``[N, T]``, -100 ignored
``regression``           ``[N]``, ``[N, D]``         floats of the same size      MSE/MAE/R2 sums, residual bins
``causal_lm``            ``[N, T, V]``               ``[N, T]``, shifted by one   token loss/accuracy, top-label
``seq2seq_lm``           ``[N, T, V]``               ``[N, T]``, aligned          calibration bins (O(bins))
=======================  ==========================  ===========================  ================================

Inference never raises: a batch that fits no task turns the prediction metrics off with one warning (the
caller's job); only a task or class names the *user* gave that disagree with the logits are set-up errors.

>>> task_from_shapes(torch.zeros(4, 16, 5000), torch.zeros(4, 16, dtype=torch.long)).task
'causal_lm'
>>> task_from_shapes(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)).task
'multiclass'
>>> task_from_shapes(torch.zeros(4, 1), torch.tensor([[0.5], [1.5], [2.0], [3.0]])).task
'regression'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CLASSIFICATION_TASKS",
    "LANGUAGE_MODEL_TASKS",
    "LM_MIN_VOCABULARY",
    "TASKS",
    "ModelTask",
    "TaskGuess",
    "build_state",
    "channels_first",
    "task_from_model",
    "task_from_shapes",
]

TASKS = ("multiclass", "binary", "multilabel", "token_classification", "regression", "causal_lm", "seq2seq_lm")
CLASSIFICATION_TASKS = ("multiclass", "binary", "multilabel", "token_classification")
LANGUAGE_MODEL_TASKS = ("causal_lm", "seq2seq_lm")
#: ``[N, T, C]`` logits with at least this many columns and no model to ask are read as a language model's
#: vocabulary, not as the classes of a token classifier (NER tag sets have tens of labels, vocabularies 30k+).
LM_MIN_VOCABULARY = 1000


@dataclass(frozen=True)
class ModelTask:
    """What a model's class and config say about its task.

    Attributes:
        task: One of :data:`TASKS`, or ``None`` when the model does not say.
        source: Where that came from, for messages (``"GPT2LMHeadModel"``, ``"config.problem_type"``).
        class_names: ``config.id2label`` in index order, for a classification head only (every config carries
            a default two-entry ``id2label``, which says nothing about a language model or a regressor).
        num_labels: ``config.num_labels`` of a classification or regression head.
    """

    task: str | None = None
    source: str = ""
    class_names: tuple[str, ...] | None = None
    num_labels: int | None = None


@dataclass(frozen=True)
class TaskGuess:
    """A task inferred from one batch, and why."""

    task: str | None
    reason: str


def _hf_models(model: nn.Module) -> list[nn.Module]:
    """The modules that carry a Hugging Face config, outermost first (``model`` itself, a PEFT/compile/DDP
    wrapper's inner model, the models inside a LightningModule)."""
    return [m for m in model.modules() if hasattr(getattr(m, "config", None), "model_type") and not _is_wrapper(m)]


def _is_wrapper(module: nn.Module) -> bool:
    name = type(module).__name__
    return name.startswith("Peft") or name in ("LoraModel", "OptimizedModule", "DistributedDataParallel")


def task_from_model(model: nn.Module | None) -> ModelTask:
    """The task a model's Hugging Face head implies (``ModelTask()`` when it has none or says nothing).

    >>> task_from_model(nn.Linear(2, 2))
    ModelTask(task=None, source='', class_names=None, num_labels=None)
    """
    if model is None:
        return ModelTask()
    for hf in _hf_models(model):
        found = _task_of(hf)
        if found.task is not None:
            return found
    return ModelTask()


def _task_of(hf: nn.Module) -> ModelTask:
    config = hf.config
    names = [type(hf).__name__, *(getattr(config, "architectures", None) or [])]
    problem = getattr(config, "problem_type", None)
    num_labels = getattr(config, "num_labels", None)
    for name in names:
        if name.endswith(("ForCausalLM", "LMHeadModel")) and not getattr(config, "is_encoder_decoder", False):
            return ModelTask("causal_lm", name)
        if name.endswith(("ForConditionalGeneration", "ForSeq2SeqLM", "ForMaskedLM")):
            return ModelTask("seq2seq_lm", name)
        if name.endswith("ForTokenClassification"):
            return ModelTask("token_classification", name, _label_names(config), num_labels)
        if name.endswith(("ForSequenceClassification", "ForImageClassification", "ForAudioClassification")):
            if problem == "regression" or num_labels == 1:
                source = f"{name} with problem_type={problem!r}" if problem else f"{name} with num_labels=1"
                return ModelTask("regression", source, None, num_labels)
            if problem == "multi_label_classification":
                return ModelTask("multilabel", f"{name} with problem_type={problem!r}", _label_names(config), num_labels)
            return ModelTask("multiclass", name, _label_names(config), num_labels)
    return ModelTask()


def _label_names(config: Any) -> tuple[str, ...] | None:
    id2label = getattr(config, "id2label", None)
    if not isinstance(id2label, Mapping) or not id2label:
        return None
    return tuple(str(id2label.get(i, id2label.get(str(i), i))) for i in range(len(id2label)))


def task_from_shapes(logits: Tensor, target: Tensor, *, loss: Tensor | float | None = None,
                     ignore_index: int | None = -100) -> TaskGuess:
    """The task the shapes (and, for ``[N, T, V]`` logits, the loss) of one batch imply.

    A float target of the predictions' shape is binary/multilabel when every value is 0 or 1, regression
    otherwise (one read of the first batch). ``[N, T, V]`` logits with ``V >= LM_MIN_VOCABULARY`` are a
    language model's; the loss the model returned tells the alignment (the next-token shift of a causal LM
    or none), as the cross-entropy of the two pairings that matches it.
    """
    if logits.ndim >= 1 and target.ndim >= 1 and (logits.shape == target.shape or (
            logits.ndim == 2 and logits.shape[-1] == 1 and logits.shape[:1] == target.shape)):
        if logits.ndim == 2 and logits.shape[-1] > 1 and target.is_floating_point() and _distributions(target):
            return TaskGuess("multiclass", "soft or one-hot targets (rows summing to 1) of the logits' shape")
        if target.numel() and not bool(((target == 0) | (target == 1)).all()):
            return TaskGuess("regression", "targets of the predictions' shape that are not all 0 or 1")
        if logits.ndim == 1 or logits.shape[-1] == 1:
            return TaskGuess("binary", "one logit per sample with 0/1 targets")
        return TaskGuess("multilabel", "multi-hot targets of the logits' shape")
    if logits.ndim == target.ndim + 1 and logits.shape[:-1] == target.shape:
        width = logits.shape[-1]
        if width == 1:
            return TaskGuess("binary", "one logit per sample")
        if logits.ndim == 3 and width >= LM_MIN_VOCABULARY:
            shifted = _alignment_from_loss(logits, target, loss, ignore_index)
            if shifted is None:
                return TaskGuess("causal_lm", f"[N, T, {width}] logits (a vocabulary) and no loss to tell the "
                                              "alignment: assumed next-token (causal) alignment")
            if shifted:
                return TaskGuess("causal_lm", "the returned loss matches the next-token (shifted) pairing")
            return TaskGuess("seq2seq_lm", "the returned loss matches the aligned (unshifted) pairing")
        if logits.ndim == 3:
            return TaskGuess("token_classification", f"[N, T, {width}] logits with [N, T] targets")
        return TaskGuess("multiclass", f"[N, {width}] logits with class ids")
    if channels_first(logits, target):
        return TaskGuess("multiclass", f"[N, {logits.shape[1]}, ...] logits with [N, ...] targets: one class per "
                                       "pixel or position")
    return TaskGuess(None, f"logits {tuple(logits.shape)} and targets {tuple(target.shape)} fit no task fitwatch knows")


def channels_first(logits: Tensor, target: Tensor) -> bool:
    """Whether ``logits`` hold the classes in dimension 1 (``[N, C, H, W]`` against ``[N, H, W]``, as
    segmentation models and ``F.cross_entropy`` lay them out) rather than last.

    >>> channels_first(torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8))
    True
    """
    return (logits.ndim >= 3 and logits.ndim == target.ndim + 1 and logits.shape[0] == target.shape[0]
            and logits.shape[2:] == target.shape[1:] and logits.shape[:-1] != target.shape)


def _distributions(target: Tensor) -> bool:
    """Every row a probability distribution: values in [0, 1] summing to 1."""
    if not target.numel():
        return False
    rows = target.reshape(-1, target.shape[-1]).double()
    return bool(((rows >= 0) & (rows <= 1)).all() and (rows.sum(dim=1) - 1).abs().max() < 1e-4)


def _alignment_from_loss(logits: Tensor, target: Tensor, loss: Tensor | float | None,
                         ignore_index: int | None) -> bool | None:
    """Whether the model's loss is the shifted (causal) cross-entropy; ``None`` without a usable loss."""
    if loss is None:
        return None
    value = float(loss.detach().reshape(-1)[0]) if isinstance(loss, Tensor) else float(loss)
    if not value == value:  # NaN
        return None
    ignore = ignore_index if ignore_index is not None else -100
    with torch.no_grad():
        flat = logits.detach()
        labels = target.detach().to(flat.device).long()
        try:
            aligned = torch.nn.functional.cross_entropy(flat.reshape(-1, flat.shape[-1]).float(), labels.reshape(-1),
                                                        ignore_index=ignore)
            shifted = torch.nn.functional.cross_entropy(flat[:, :-1].reshape(-1, flat.shape[-1]).float(),
                                                        labels[:, 1:].reshape(-1), ignore_index=ignore)
        except (RuntimeError, IndexError):
            return None
    da, ds = abs(float(aligned) - value), abs(float(shifted) - value)
    if not (da == da and ds == ds):
        return None
    return ds < da


def build_state(task: str, *, num_classes: int | None = None, ignore_index: int | None = -100, n_bins: int = 15,
                classwise_ece: bool = True, confusion_max_classes: int = 50, classes_from: str = "num_classes",
                buffer_batches: int = 0, lm_max_tokens: int | None = None) -> Any:
    """The per-split state of ``task``: a :class:`~fitwatch.metrics.PredictionAccumulator` for the
    classification tasks, a :class:`~fitwatch.tasks.language_model.LanguageModelState` or a
    :class:`~fitwatch.tasks.regression.RegressionState`."""
    if task in LANGUAGE_MODEL_TASKS:
        from fitwatch.tasks.language_model import LanguageModelState

        return LanguageModelState(task=task, ignore_index=ignore_index, n_bins=n_bins, max_tokens=lm_max_tokens)
    if task == "regression":
        from fitwatch.tasks.regression import RegressionState

        return RegressionState(buffer_batches=buffer_batches)
    from fitwatch.metrics.accumulator import PredictionAccumulator

    return PredictionAccumulator(
        task="multiclass" if task == "token_classification" else task,
        num_classes=num_classes, ignore_index=ignore_index, n_bins=n_bins, classwise_ece=classwise_ece,
        confusion_max_classes=confusion_max_classes, classes_from=classes_from, buffer_batches=buffer_batches,
    )
