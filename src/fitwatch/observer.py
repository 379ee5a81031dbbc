"""The torch-side core both adapters share: what to accumulate and read, given *when* to.

An adapter (``fitwatch.lightning``, ``fitwatch.hf``) maps its framework's hooks onto these calls:

==========================  =================================================================
call                        does
==========================  =================================================================
``fit_start``               audits model and optimizers, fingerprints trainable parameters
``train_batch``             accumulates training logits and loss on device (no host sync)
``before_optimizer_step``   on logging steps: hyperparameters, gradient norm; on diag steps:
                            snapshot for update ratios
``after_optimizer_step``    update ratios; on logging steps: one :class:`StepRecord`
``eval_batch``              accumulates validation logits and loss on device
``end_evaluation``          reduces across ranks, computes, logs, feeds the detectors
``end_train_epoch``         logs training metrics if no evaluation took them this epoch
``end``                     flushes and closes the sinks
==========================  =================================================================

Host syncs happen only in ``end_evaluation``, on logging steps, on the first batch (shape and label
checks) and in ``fit_start``; every other call only enqueues device work.
"""

from __future__ import annotations

import dataclasses
from collections import deque
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fitwatch.config import FitWatchConfig
from fitwatch.data.split_checks import check_splits
from fitwatch.detect.records import EvalRecord, StepRecord
from fitwatch.findings import Finding
from fitwatch.metrics.accumulator import PredictionAccumulator, SplitResult
from fitwatch.metrics.audit import audit_model
from fitwatch.metrics.optim import (
    UpdateRatioTracker,
    global_norm,
    hyperparameters,
    parameter_fingerprints,
    trainable_parameters,
)
from fitwatch.monitor import Monitor
from fitwatch.sinks.base import EvaluationDetails, Sink
from fitwatch.sinks.tags import tag
from fitwatch.tasks import (
    CLASSIFICATION_TASKS,
    LANGUAGE_MODEL_TASKS,
    ModelTask,
    build_state,
    channels_first,
    task_from_model,
    task_from_shapes,
)
from fitwatch.tasks.language_model import TRAIN_TOKENS_PER_BATCH
from fitwatch.warnings import FitWatchRuntimeWarning

__all__ = ["HEADLINE", "PER_CLASS_AUTO_MAX", "Observer"]

#: With ``per_class="auto"``, every class gets per-class scalars up to this many classes; beyond, only the
#: ``per_class_top_k`` worst by validation F1 (the history, images and JSON keep all of them).
PER_CLASS_AUTO_MAX = 50
_PERFORMANCE = ("loss", "accuracy", "macro_f1", "weighted_f1", "perplexity", "top5_accuracy", "mse", "rmse", "mae", "r2")
_CALIBRATION = ("ece", "mce", "adaptive_ece", "classwise_ece", "ece_chance", "confidence", "brier", "nll")
_HEALTH = ("samples", "nonfinite_logits", "invalid_targets", "nonfinite_loss", "skipped_batches")
_PER_CLASS = ("precision", "recall", "f1", "support", "predicted")
#: Validation numbers published after each evaluation as ``fitwatch_val_<name>`` (and ``fitwatch_gap_loss``):
#: Lightning ``trainer.callback_metrics``, HF evaluation ``metrics`` (``eval_fitwatch_val_<name>``), so that
#: ``EarlyStopping``/``ModelCheckpoint`` or ``metric_for_best_model`` can use them.
HEADLINE = ("loss", "accuracy", "macro_f1", "ece", "adaptive_ece", "brier", "nll", "perplexity", "top5_accuracy",
            "mse", "mae", "r2")


class Observer:
    """Accumulates predictions, reads optimizer and model state, hands plain numbers to a :class:`Monitor`.

    Args:
        config: The settings.
        on_finding: User hook called with each new finding.
    """

    def __init__(self, config: FitWatchConfig, *, on_finding: Callable[[Finding], Any] | None = None) -> None:
        self.config = config
        self.monitor = Monitor(
            detector_settings=config.detectors,
            stop_on=config.stop_on,
            on_finding=on_finding,
            gap_window=config.gap_window,
            prefix=config.tag_prefix,
            image_budget=config.image_budget,
        )
        #: The task of this run (:mod:`fitwatch.tasks`), decided at the first batch with predictions.
        self.task: str | None = None
        #: What the model's head says about the task (:meth:`inspect_model`).
        self.model_task = ModelTask()
        #: Class names fitwatch derived itself (the model's ``id2label``): a mismatch with the logits drops them
        #: with a warning, where names the user passed are a set-up error.
        self.derived_class_names: tuple[str, ...] | None = None
        self.predictions_off = False
        #: Logits hold their classes in dimension 1 (segmentation, ``[N, C, T]``): moved last at capture.
        self.channels_first = False
        self._accumulator_kwargs: dict[str, Any] = {}
        self.train = self._placeholder(train=True)
        self.val = self._placeholder()
        # Loss-only evaluation (a model that returns no logits): [sum of batch mean losses x weight, weight].
        self._val_loss: Tensor | None = None
        # Evaluations that are not the fit's primary validation (other sets, eval_on_start, validate()/evaluate()
        # outside fit, test()): their states and loss-only sums by split. Summarised, never fed to detectors.
        self._others: dict[str, Any] = {}
        self._other_loss: dict[str, Tensor] = {}
        #: The last primary evaluation's headline numbers (``fitwatch_val_ece``, ...), see :data:`HEADLINE`.
        self.headline: dict[str, float] = {}
        self._window_loss = [0.0, 0]  # training step losses read at logging steps since the last evaluation
        self.log_every_n_steps = config.log_every_n_steps or 50
        self.max_steps: int | None = None
        self.pretrained: bool | None = None
        self._ratios = UpdateRatioTracker()
        self._pending_ratios: dict[str, Tensor] = {}
        self._grad_norm: Tensor | None = None
        self._hparams: dict[str, dict[str, float]] = {}
        # The loss bookkeeping costs one op a micro-batch (a detach): the current step's micro-batches are held as
        # (loss, target whose ignored entries decide if it counts, weight), the completed steps since the last step
        # record (the last `log_every_n_steps` of them) likewise, and all arithmetic waits for the logging step.
        self._micro: list[tuple[Tensor | float, Tensor | None, Tensor | None, bool]] = []
        self._held_steps: deque[list[tuple[Tensor | float, Tensor | None, Tensor | None, bool]]] = deque()
        self._fingerprints: dict[str, Tensor] | None = None
        self._train_flushed = True
        self._warned: set[str] = set()
        self._initial_lrs: list[float] = []
        self._optimizers: list[torch.optim.Optimizer] = []
        self._audit_due = False
        self._deferred: tuple[nn.Module, int, int | None] | None = None
        # Data checks: validation positions of samples duplicated in training (a bool mask on the device),
        # the clean-subset accumulator, the confident-mistakes table, and the per-sample margin tracker.
        self._duplicate_mask: Tensor | None = None
        self.val_clean: PredictionAccumulator | None = None
        self._val_position = 0
        self._positions_known = False
        self.describe: Callable[[int], str] | None = None
        self._mistakes: Any = None
        self._margins: Any = None
        #: Compute the gradient norm in ``before_optimizer_step``. An adapter whose framework clips before that
        #: hook turns it off and hands the framework's own pre-clip norm to :meth:`flush_step` instead.
        self.measure_grad_norm = config.grad_norm

    # ------------------------------------------------------------------ tasks
    def _state_kwargs(self, task: str, class_names: Sequence[str] | None, names_from: str | None, *,
                      train: bool = False) -> dict[str, Any]:
        """The split states' settings. The training split keeps no per-class calibration bins: classwise ECE is a
        validation number (no detector reads it on training batches), and at 1,000 classes its ``classes x bins``
        update was four fifths of the training fold's time."""
        config = self.config
        num_classes = config.num_classes
        if num_classes is None and class_names is not None and task != "binary":
            num_classes = len(class_names)
        return dict(
            num_classes=num_classes,
            ignore_index=config.ignore_index,
            n_bins=config.n_bins,
            classwise_ece=config.classwise_ece and not train,
            confusion_max_classes=config.confusion_matrix_max_classes,
            classes_from=names_from if num_classes is not None and config.num_classes is None else "num_classes",
            # Hold batches (references: no kernel) and fold them 256 at a time or at 8 MiB of logits, whichever
            # comes first (and at every read): a fold is ~120 small kernels, whatever its number of rows.
            buffer_batches=256,
        )

    def _placeholder(self, *, train: bool = False) -> Any:
        """The state before the task is known: a classification accumulator that infers from the first batch
        (and learns the shapes from the other ranks in :meth:`sync` if this rank never sees one)."""
        task = self.config.task if self.config.task in ("multiclass", "binary", "multilabel") else "auto"
        kwargs = self._state_kwargs(task, self.config.class_names, "class_names", train=train)
        return PredictionAccumulator(task=task, **kwargs)

    def inspect_model(self, model: nn.Module | None) -> None:
        """Read what the model's head says about the task (its Hugging Face config), once, before the first batch.

        A classification head's ``id2label`` becomes the class names when the user passed none.
        """
        if model is None or self.task is not None or self.model_task.task is not None:
            return
        try:
            self.model_task = task_from_model(model)
        except Exception:  # noqa: BLE001  (an odd model is no reason to stop; shapes decide then)
            self.model_task = ModelTask()
        if (self.config.class_names is None and self.config.num_classes is None and self.model_task.class_names
                and self.config.task in ("auto", *CLASSIFICATION_TASKS)):
            self.derived_class_names = self.model_task.class_names

    def _resolve(self, logits: Tensor, target: Tensor, loss: Tensor | float | None) -> bool:
        """Decide the task at the first batch with predictions; ``False`` when prediction metrics are off.

        Never raises for what fitwatch inferred itself; a task or class names the user gave that disagree with
        the logits fail in the state's first update, with a message naming the argument.
        """
        if self.predictions_off:
            return False
        if self.task is not None:
            return True
        config, hint = self.config, self.model_task
        if channels_first(logits, target) and config.task in ("auto", "multiclass", "token_classification"):
            self.channels_first = True
            logits = logits.movedim(1, -1)
        names: Sequence[str] | None = config.class_names
        names_from = "class_names"
        if config.task != "auto":
            task = config.task
        else:
            guess = task_from_shapes(logits, target, loss=loss, ignore_index=config.ignore_index)
            task = guess.task
            if hint.task is not None and _fits(hint.task, logits, target):
                task = hint.task
            elif hint.task is not None:
                self.warn_once("task-mismatch", f"fitwatch: the model ({hint.source}) suggests task {hint.task!r}, but "
                               f"the first batch does not fit it ({guess.reason}); using {task!r}. Pass `task=` to set it.")
            if task is None:
                self.predictions_off = True
                self.warn_once("task-unknown", f"fitwatch: {guess.reason}, so per-class, calibration and task metrics "
                               "are off (losses, optimizer and model diagnostics keep working). Pass `task=` or "
                               "`extract=` to choose.")
                return False
            if task in LANGUAGE_MODEL_TASKS and hint.task is None and "assumed" in guess.reason:
                self.warn_once("task-assumed", f"fitwatch: {guess.reason}; pass `task='seq2seq_lm'` if the logits at "
                               "position t predict the label at t.")
        if names is None and self.derived_class_names is not None and task in CLASSIFICATION_TASKS:
            width = 2 if task == "binary" else int(logits.shape[-1])
            if task == "binary" or len(self.derived_class_names) == width:
                names, names_from = self.derived_class_names, "the model's config.id2label"
            else:
                self.warn_once("derived-names", f"fitwatch: the model's config.id2label names "
                               f"{len(self.derived_class_names)} classes but the logits have {width}; the class names "
                               "are not used (classes are numbered). Pass `class_names=` to name them.")
        self.derived_class_names = tuple(names) if names is not None and names is not config.class_names else None
        self.task = task
        kwargs = self._state_kwargs(task, names if task in CLASSIFICATION_TASKS else None, names_from)
        if task not in CLASSIFICATION_TASKS:
            kwargs["num_classes"] = None
        self._accumulator_kwargs = dict(kwargs, task=task)
        if task in CLASSIFICATION_TASKS and isinstance(self.train, PredictionAccumulator) and not self.train.initialized:
            self.train = build_state(task, **dict(kwargs, classwise_ece=False))
            self.val = build_state(task, **kwargs) if not self.val.initialized else self.val
        elif task not in CLASSIFICATION_TASKS:
            self.train = build_state(task, **kwargs, lm_max_tokens=TRAIN_TOKENS_PER_BATCH)
            self.val = build_state(task, **kwargs)
        return True

    # ------------------------------------------------------------------ wiring
    def set_sinks(self, sinks: Sequence[Sink]) -> None:
        """Attach the sinks (an empty list on non-zero ranks)."""
        from fitwatch.sinks.base import GuardedSinks

        self.monitor.sinks = GuardedSinks(sinks)

    @property
    def findings(self) -> list[Finding]:
        return self.monitor.findings

    @property
    def history(self) -> dict[str, list[tuple[int, float]]]:
        return self.monitor.history

    def warn_once(self, key: str, message: str) -> None:
        """A :class:`FitWatchRuntimeWarning` the first time ``key`` is seen, never again in this run; rank zero only."""
        if key not in self._warned:
            self._warned.add(key)
            if _rank() == 0:
                from fitwatch.sinks.base import warn_at_user_code

                warn_at_user_code(message, FitWatchRuntimeWarning)

    def is_logging_step(self, step: int) -> bool:
        """Whether the optimizer step that starts from ``step`` completed steps is a logging step."""
        return (step + 1) % self.log_every_n_steps == 0

    def is_diag_step(self, step: int) -> bool:
        every = self.config.diag_every_n_steps
        return every > 0 and (step + 1) % every == 0

    # ------------------------------------------------------------------ fit
    def fit_start(
        self,
        model: nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        *,
        step: int,
        epoch: int | None,
        max_steps: int | None = None,
        pretrained: bool | None = None,
        log_every_n_steps: int | None = None,
    ) -> None:
        if self.config.log_every_n_steps is None and log_every_n_steps:
            self.log_every_n_steps = int(log_every_n_steps)
        self.max_steps = max_steps if max_steps and max_steps > 0 else None
        self.pretrained = pretrained
        self._fingerprints = parameter_fingerprints(trainable_parameters(model))
        # The LR each group's first step will apply (schedulers set it at construction): a warmup shows here.
        self._initial_lrs = [float(g.get("lr", 0.0)) for o in optimizers for g in o.param_groups] if step == 0 else []
        self._optimizers = list(optimizers)
        # Audit after the first optimizer step, inside the training loop: frameworks switch the model to
        # train mode only then (a model from `from_pretrained` is in eval mode until the first training step).
        self._audit_due = True

    def train_batch(
        self, logits: Tensor | None, target: Tensor | None, loss: Tensor | float | None, sample_ids: Tensor | None = None,
        *, loss_weight: Tensor | None = None,
    ) -> None:
        """One training (micro-)batch. ``loss`` is its mean loss; ``loss_weight``, when given, the number of
        items it is the mean over (tokens), so that the step's loss is the per-item mean over the whole
        accumulation window; without it each micro-batch weighs the same."""
        config = self.config
        if isinstance(loss, Tensor):
            if loss.requires_grad:  # Lightning hands callbacks a detached copy already: no op then
                loss = loss.detach()
        elif loss is not None:
            loss = float(loss)
        if loss is not None:
            decides = target if loss_weight is None and config.ignore_index is not None else None
            self._micro.append((loss, decides, loss_weight, target is not None or loss_weight is not None))
        if (logits is not None and target is not None and config.train_metrics and not self.predictions_off
                and (self.task is not None or self._resolve(logits, target, loss))):
            train = self.train
            if train.initialized:
                train.update(logits.movedim(1, -1) if self.channels_first else logits, target, loss)
                if train.skipped_shapes is not None:
                    self._check_skipped(train, "train")
            else:
                train.strict = train.strict and not self.val.initialized  # set-up checks on the run's first batch
                self._first_update(train, logits.movedim(1, -1) if self.channels_first else logits, target, loss)
                self._check_skipped(train, "train")
            self._train_flushed = False
        if self._margins is not None and logits is not None and target is not None and sample_ids is not None:
            self._margins.update(logits.detach(), target, sample_ids)

    def before_optimizer_step(self, model: nn.Module, optimizers: Sequence[torch.optim.Optimizer], step: int, *,
                              optimizer: torch.optim.Optimizer | None = None, batch_start: int | None = None) -> None:
        """Call just before an optimizer steps. With several optimizers stepping in one batch (a GAN, manual
        optimization), pass the one about to step and the batch's first step: each optimizer's parameters are then
        copied just before their own step, so every block's update ratio covers its own update."""
        if self.is_logging_step(step):
            self._hparams = hyperparameters(optimizers)
            if self.measure_grad_norm:
                grads = [p.grad for _, p in trainable_parameters(model) if p.grad is not None]
                self._grad_norm = global_norm(grads) if grads else None
        # The batch's steps: this one alone, or (several optimizers) one per optimizer from the batch's first.
        if batch_start is None:
            diag = self.is_diag_step(step)
        else:
            first = min(batch_start, step)
            diag = any(self.is_diag_step(s) for s in range(first, max(step, first + len(optimizers) - 1) + 1))
        if diag:
            named = trainable_parameters(model)
            if optimizer is not None:
                mine = {id(p) for group in optimizer.param_groups for p in group["params"]}
                named = [(n, p) for n, p in named if id(p) in mine]
            self._ratios.snapshot(named)

    def after_optimizer_step(self, model: nn.Module, step: int, epoch: int | None, *, defer: bool = False) -> None:
        """Call after the optimizer step; ``step`` counts completed optimizer steps (this one included).

        With ``defer=True`` a logging step's record waits for :meth:`flush_step` (which can add a gradient
        norm the framework computed).
        """
        if self._micro:
            if self._held_steps.maxlen != self.log_every_n_steps:
                self._held_steps = deque(self._held_steps, maxlen=self.log_every_n_steps)
            self._held_steps.append(self._micro)
            self._micro = []
        if self._ratios.pending:
            self._pending_ratios = self._ratios.ratios()
        if self._audit_due and self._optimizers:
            self._audit_due = False
            self._audit(model, step, epoch)
        if self.is_logging_step(step - 1):
            self.flush_step()  # a record still waiting from an earlier step goes first
            self._deferred = (model, step, epoch)
            if not defer:
                self.flush_step()

    def flush_step(self, grad_norm: float | None = None) -> None:
        """Write the logging step record that :meth:`after_optimizer_step` deferred, if any."""
        if self._deferred is None:
            return
        model, step, epoch = self._deferred
        self._deferred = None
        if grad_norm is not None:
            self._grad_norm = torch.tensor(float(grad_norm))
        self._log_step(model, step, epoch)

    @staticmethod
    def any_rank(flag: bool) -> bool:
        """``flag`` OR-reduced over all ranks (itself without torch.distributed). Every rank must call it."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return flag
        backend = torch.distributed.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _log_step(self, model: nn.Module, step: int, epoch: int | None) -> None:
        losses = self._step_losses()
        nonfinite_loss = sum(1 for v in losses if not math.isfinite(v))
        grad_norm = float(self._grad_norm) if self._grad_norm is not None else None
        self._grad_norm = None
        weight_norm = float(global_norm([p for _, p in trainable_parameters(model)])) if self.config.grad_norm else None
        ratios = {block: float(r) for block, r in self._pending_ratios.items()}
        self._pending_ratios = {}
        prefix = self.config.tag_prefix
        scalars: dict[str, float] = {}
        for key, per_group in self._hparams.items():
            for group, value in per_group.items():
                scalars[tag("optimizer", key, subject=group, prefix=prefix)] = value
        finite_losses = [v for v in losses if math.isfinite(v)]
        if finite_losses:
            scalars[tag("performance", "step_loss", split="train", prefix=prefix)] = sum(finite_losses) / len(finite_losses)
            self._window_loss[0] += sum(finite_losses)
            self._window_loss[1] += len(finite_losses)
        if grad_norm is not None:
            scalars[tag("optimizer", "grad_norm", prefix=prefix)] = grad_norm
        if weight_norm is not None:
            scalars[tag("weights", "norm", prefix=prefix)] = weight_norm
        for block, ratio in ratios.items():
            scalars[tag("weights", "update_ratio", subject=block, prefix=prefix)] = ratio
        scalars[tag("health", "nonfinite_loss_steps", prefix=prefix)] = float(nonfinite_loss)
        self.monitor.log(scalars, step)
        nonfinite = {"loss": nonfinite_loss}
        if grad_norm is not None:
            nonfinite["grad"] = 0 if math.isfinite(grad_norm) else 1
        self.monitor.step(
            StepRecord(
                step=step,
                epoch=epoch,
                losses=losses,
                lr=list(self._hparams.get("lr", {}).values()),
                grad_norm=grad_norm,
                weight_norm=weight_norm,
                update_ratios=ratios,
                nonfinite=nonfinite,
                progress=self.progress(step),
            )
        )

    def _step_losses(self) -> list[float]:
        """The mean loss of each step held since the last step record, read back at once (one host transfer);
        a step whose every target was ignored has no loss (0/0: not a non-finite loss, not divergence)."""
        steps, self._held_steps = list(self._held_steps), deque(maxlen=self.log_every_n_steps)
        if not steps:
            return []
        means, counted = [], []
        for micro in steps:
            total: Tensor | None = None
            weight: Tensor | None = None
            for held, decides, given, masked in micro:
                value = torch.as_tensor(held).float().reshape(-1)[0]
                c = given.float().to(value.device) if given is not None else torch.ones((), device=value.device)
                if decides is not None:
                    c = (decides != self.config.ignore_index).any().to(value.device, torch.float32)
                if masked:
                    value = torch.where(c > 0, value * c, torch.zeros_like(value))
                total = value if total is None else total + value.to(total.device)
                weight = c if weight is None else weight + c.to(weight.device)
            assert total is not None and weight is not None
            means.append(total / weight.clamp(min=1))
            counted.append(weight > 0)
        device = means[0].device
        values, keep = torch.stack([torch.stack([m.to(device).float(), c.to(device).float()]) for m, c in zip(means, counted)]).T.tolist()
        return [v for v, k in zip(values, keep) if k]

    def _audit(self, model: nn.Module, step: int, epoch: int | None) -> None:
        record = audit_model(model, self._optimizers, step=step, epoch=epoch, fingerprints=self._fingerprints,
                             pretrained=self.pretrained, max_steps=self.max_steps)
        record = dataclasses.replace(record, current_lrs=tuple(float(g.get("lr", 0.0)) for o in self._optimizers for g in o.param_groups))
        if self._initial_lrs:
            record = dataclasses.replace(record, initial_lrs=tuple(self._initial_lrs))
            self._initial_lrs = []
        else:
            record = dataclasses.replace(record, initial_lrs=())
        self.monitor.audit(record)

    def progress(self, step: int) -> float | None:
        return min(step / self.max_steps, 1.0) if self.max_steps else None

    # ------------------------------------------------------------------ evaluation
    def eval_batch(self, logits: Tensor | None, target: Tensor | None, loss: Tensor | float | None,
                   *, loss_weight: Tensor | None = None, split: str = "val") -> None:
        """One evaluation batch of ``split`` (``"val"``: the fit's primary validation set); without logits (a model
        that returns only its loss) only the loss counts."""
        if logits is None or target is None or not self._resolve(logits, target, loss):
            if loss is not None:
                value = torch.as_tensor(loss).detach().double().reshape(-1)[0]
                weight = torch.ones((), dtype=torch.float64, device=value.device) if loss_weight is None else loss_weight.detach().double().to(value.device)
                pair = torch.stack([torch.where(weight > 0, value * weight, 0.0), weight])
                if split == "val":
                    self._val_loss = pair if self._val_loss is None or self._val_loss.device != pair.device else self._val_loss + pair
                else:
                    known = self._other_loss.get(split)
                    self._other_loss[split] = pair if known is None or known.device != pair.device else known + pair
            return
        if self.channels_first:
            logits = logits.movedim(1, -1)
        if split != "val":
            if split not in self._others:
                self._others[split] = self._clean_state()
            self._others[split].update(logits, target, loss)
            return
        self.val.strict = self.val.strict and not self.train.initialized
        self._first_update(self.val, logits, target, loss)
        if self.predictions_off:
            return
        self._check_skipped(self.val, "val")
        if not (self._positions_known and (self._duplicate_mask is not None or self._mistakes is not None)):
            return
        # Validation runs in dataset order (a sequential sampler), so a sample's position is its index.
        n = target.shape[0]
        positions = torch.arange(self._val_position, self._val_position + n, device=logits.device)
        self._val_position += n
        if self._duplicate_mask is not None and self.val_clean is not None:
            mask = self._duplicate_mask.to(logits.device)
            dup = mask[positions.clamp(max=mask.numel() - 1)] & (positions < mask.numel())
            keep = (~dup).reshape((n,) + (1,) * (target.ndim - 1)).expand_as(target) if self.val.task != "multilabel" else ~dup
            self.val_clean.update(logits, target, loss, mask=keep)
        if self._mistakes is not None and self.val.task in ("multiclass", "binary") and target.ndim == 1:
            flat = logits.detach()
            if self.val.task == "binary":
                z = flat.reshape(-1)
                flat = torch.stack([torch.zeros_like(z), z], dim=1)
            self._mistakes.update(flat.float(), target.long(), positions)

    def end_evaluation(
        self,
        *,
        step: int,
        epoch: int | None,
        training: bool = True,
        split: str = "val",
        source: str | None = None,
        logged: Mapping[str, Mapping[str, float]] | None = None,
    ) -> list[Finding]:
        """Reduce, compute and log validation and training-interval metrics; run the detectors.

        Every rank must call it (the reduction is a collective). ``training=False`` for an evaluation outside
        ``fit`` (``trainer.validate()``, ``trainer.evaluate()``). Returns the findings of this evaluation.

        Only the fit's primary validation (``split="val"``) feeds the detectors and takes the training window;
        any other ``split`` (``"val_<name>"``, ``"val_start"``, ``"eval"``, ``"test"``) is summarised under its own
        series. ``source`` names the split whose batches it reads, when they were accumulated as another one
        (the HF Trainer names its evaluation set only at its end). ``logged`` holds the metrics the training
        code logged itself by split (:func:`fitwatch.metrics.logged.map_logged`): the primary evaluation reads
        them when no logits and no loss reached fitwatch.
        """
        source = source or split
        if split != "val" or source != "val":
            self._summarise(split, source, step)
            return []
        self.val.sync()
        self.train.sync()
        val_loss = self._reduced_val_loss()
        window_sum, window_n = self._window_loss
        self._window_loss = [0.0, 0]
        if not self.val.initialized:  # no batch with logits (empty loader, a loss-only model, or a warned set-up)
            train = None
            if self.train.initialized and not self._train_flushed:  # reduced above already: log, never sync twice
                train = self.train.compute()
                if train.summary.get("batches"):
                    self._log_split(train, "train", step, self.class_names(), rank_by=train)
                else:
                    train = None
                self.train.reset()
                self._train_flushed = True
            logged_val = dict((logged or {}).get("val", {}))
            if val_loss is None and not logged_val:
                return []
            # Losses (or the metrics the code logs) only: the loss-based detectors still judge the run.
            val_summary = self._loss_summary(val_loss) if val_loss is not None else logged_val
            train_summary = _with_loss(train.summary) if train is not None else (
                self._loss_summary(window_sum / window_n) if window_n else dict((logged or {}).get("train", {})))
            scalars = {tag("performance", k, split="val", prefix=self.config.tag_prefix): v for k, v in val_summary.items()}
            if train is None and train_summary:
                scalars.update({tag("performance", k, split="train", prefix=self.config.tag_prefix): v for k, v in train_summary.items()})
            self.monitor.log(scalars, step)
            self._headline(val_summary, train_summary)
            findings = self.monitor.evaluation(EvalRecord(
                step=step, epoch=epoch, val=val_summary, train=train_summary, val_per_class={}, class_names=[],
                lr=list(hyperparameters(self._optimizers)["lr"].values()) if training and self._optimizers else [],
                progress=self.progress(step)))
            self._audit_due = training and bool(self._optimizers)
            self._gather_findings()
            return findings
        val = self.val.compute()
        train = self.train.compute() if self.train.initialized and self.config.train_metrics else None
        if train is not None and not train.summary.get("batches"):
            train = None
        names = self.class_names()
        self._log_split(val, "val", step, names, rank_by=val)
        reliability = val.reliability if "residual_edges" not in val.reliability else {}
        self.monitor.details(
            EvaluationDetails(split="val", class_names=names, confusion=val.confusion, reliability=reliability, per_class=val.per_class),
            step,
        )
        if "residual_edges" in val.reliability:
            edges = val.reliability["residual_edges"]
            width = edges[1] - edges[0] if len(edges) > 1 else 1.0
            # The two overflow bins drawn one bin wide beyond the outer edges.
            self.monitor.histogram(tag("performance", "residuals", split="val", prefix=self.config.tag_prefix),
                                   [edges[0] - width, *edges, edges[-1] + width], val.reliability["residual_counts"], step)
        if train is not None:
            self._log_split(train, "train", step, names, rank_by=val)
        train_summary = _with_loss(train.summary) if train is not None else {}
        if "loss" not in train_summary and window_n:  # the model's own training losses, read at logging steps
            train_summary["loss"] = window_sum / window_n
        self._headline(_with_loss(val.summary), train_summary)
        findings = self.monitor.evaluation(
            EvalRecord(
                step=step,
                epoch=epoch,
                val=_with_loss(val.summary),
                train=train_summary,
                val_per_class=val.per_class,
                class_names=names,
                lr=list(hyperparameters(self._optimizers)["lr"].values()) if training and self._optimizers else [],
                progress=self.progress(step),
            )
        )
        self._audit_due = training and bool(self._optimizers)  # re-audit at the next training step, in train mode
        self._gather_findings()
        self._log_data_views(step, names)
        self.val.reset()
        self.train.reset()
        self._train_flushed = True
        return findings

    def _headline(self, val: Mapping[str, float], train: Mapping[str, float]) -> None:
        """The primary evaluation's headline numbers under the names :data:`HEADLINE` documents, for a framework's
        own early stopping and checkpointing (``EarlyStopping(monitor="fitwatch_val_ece")``)."""
        out = {f"fitwatch_val_{k}": float(val[k]) for k in HEADLINE if k in val}
        if "loss" in val and "loss" in train:
            out["fitwatch_gap_loss"] = float(val["loss"]) - float(train["loss"])
        self.headline = out

    def _first_update(self, state: Any, logits: Tensor, target: Tensor, loss: Tensor | float | None) -> None:
        """``state.update``; the run's first batch is the set-up check. Where the task and classes were the user's
        (``task``, ``num_classes``, ``class_names``) a mismatch fails fast; where fitwatch inferred them itself it
        is one warning and the prediction metrics are off: never the reason a run dies."""
        first = not state.initialized
        try:
            state.update(logits, target, loss)
        except ValueError as err:
            config = self.config
            if not first or config.class_names is not None or config.num_classes is not None or config.task != "auto":
                raise
            self.predictions_off = True
            self.warn_once("inferred-setup", f"fitwatch: {err} The task ({self.task}) and the classes were inferred "
                           "by fitwatch, so per-class, calibration and task metrics are off for this run; losses, "
                           "optimizer and model diagnostics keep working. Pass `task=`, `num_classes=`/`class_names=` "
                           "or `ignore_index=` to turn them on.")

    def _check_skipped(self, state: Any, split: str) -> None:
        """Warn once when a batch did not fit the states (host-side shapes only: no synchronisation)."""
        shapes = getattr(state, "skipped_shapes", None)
        if shapes is not None and f"skipped-{split}" not in self._warned:
            logits, target = shapes
            fits = (f"does not fit the {state.num_classes} classes of the first batch" if state.num_classes is not None
                    else "does not pair predictions with targets one to one")
            self.warn_once(f"skipped-{split}", f"fitwatch: a {split} batch with logits {logits} and targets {target} "
                           f"{fits}; such batches are left out of "
                           f"the metrics (counted in health/skipped_batches/{split}). Check that every batch has the same "
                           f"head, or set `num_classes`/`class_names`. Training is not affected.")

    def has_evaluation(self) -> bool:
        """Whether the primary evaluation saw predictions or a loss (else the logged metrics are all there is)."""
        return self.val.initialized or self._val_loss is not None

    def announce(self, text: str, step: int) -> None:
        """Say once, in plain words, what fitwatch watches in this run (logging and TensorBoard text)."""
        if "watching" in self._warned:
            return
        self._warned.add("watching")
        if _rank() == 0:
            import logging

            logging.getLogger("fitwatch").info("%s", text)
            self.monitor.text(tag("health", "watching", prefix=self.config.tag_prefix), text, step)

    def _summarise(self, split: str, source: str, step: int) -> None:
        """Log an evaluation that is not the fit's primary validation under ``split``; no detector sees it."""
        if source == "val":
            state, loss = self.val, self._reduced_val_loss()
            self._val_position = 0
            if self.val_clean is not None:
                self.val_clean.reset()
            if self._mistakes is not None:
                self._mistakes.reset()
        else:
            state, loss = self._others.get(source), self._reduced_loss(self._other_loss.pop(source, None))
        prefix = self.config.tag_prefix
        if state is not None:
            state.sync()
        if state is not None and state.initialized:
            result = state.compute()
            if result.summary.get("batches"):
                names = self.class_names()
                self._log_split(result, split, step, names, rank_by=result)
                reliability = result.reliability if "residual_edges" not in result.reliability else {}
                self.monitor.details(EvaluationDetails(split=split, class_names=names, confusion=result.confusion,
                                                       reliability=reliability, per_class=result.per_class), step)
            state.reset()
        elif loss is not None:
            self.monitor.log({tag("performance", k, split=split, prefix=prefix): v for k, v in self._loss_summary(loss).items()}, step)

    def _reduced_val_loss(self) -> float | None:
        """The loss-only evaluation's mean loss, summed over ranks (a collective when distributed); resets it."""
        pair, self._val_loss = self._val_loss, None
        return self._reduced_loss(pair)

    def _reduced_loss(self, pair: Tensor | None) -> float | None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            device = pair.device if pair is not None else _collective_device()
            pair = (pair if pair is not None else torch.zeros(2, dtype=torch.float64, device=device)).clone()
            dist.all_reduce(pair)
        if pair is None:
            return None
        total, weight = pair.tolist()
        return total / weight if weight > 0 else None

    def _loss_summary(self, loss: float) -> dict[str, float]:
        summary = {"loss": loss}
        if self.task in LANGUAGE_MODEL_TASKS or (self.task is None and self.model_task.task in LANGUAGE_MODEL_TASKS):
            summary["perplexity"] = math.exp(loss) if loss < 700 else math.inf
        return summary

    def _gather_findings(self) -> None:
        """Show here the causes other ranks found alone (step records hold each rank's own losses), so that rank
        zero reports, and ``stop_on`` reduces, the same set. One ``all_gather_object`` per evaluation."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, [f.to_dict() for f in self.monitor.findings])
        known = {f.key for f in self.monitor.findings}
        for theirs in everyone:
            for data in theirs or []:
                finding = Finding.from_dict(data)
                if finding.key not in known:
                    known.add(finding.key)
                    self.monitor.report(finding)

    def end_train_epoch(self, *, step: int, epoch: int | None) -> None:
        """Log the training metrics of an epoch that had no evaluation."""
        if self._train_flushed or not self.train.initialized:
            return
        self.train.sync()
        train = self.train.compute()
        if train.summary.get("batches"):
            self._log_split(train, "train", step, self.class_names(), rank_by=train)
            self.monitor.sinks.call("flush", self.monitor.history)
        self.train.reset()
        self._train_flushed = True

    @property
    def margins(self) -> Any:
        """The area-under-the-margin tracker (:class:`~fitwatch.data.AreaUnderMargin`) when
        ``data_checks.mislabels`` is on, else ``None``: ``margins.scores()`` ranks every training sample."""
        return self._margins

    def end(self, *, step: int | None = None, epoch: int | None = None) -> None:
        if self._margins is not None and self._margins.dropped:
            self.warn_once(
                "margins-ids",
                f"fitwatch: {self._margins.dropped} training samples had a sample id outside [0, "
                f"{self._margins.num_samples}) and were left out of the mislabel ranking; give each sample its "
                "position in the training set as `sample_id`.",
            )
        if self._margins is not None and step is not None:
            try:
                finding = self._margins.to_finding(step=step, epoch=epoch)
            except Exception as err:  # noqa: BLE001
                self.warn_once("margins", f"fitwatch: the mislabel tracker failed ({type(err).__name__}: {err}); skipped.")
                finding = None
            if finding is not None:
                self.monitor.report(finding)
                self.monitor.text(tag("data", "mislabel_suspects", prefix=self.config.tag_prefix), finding.message, step)
        self.monitor.close()

    # ------------------------------------------------------------------ data checks
    def check_data(self, train_dataset: Any, val_dataset: Any, *, step: int, epoch: int | None, val_in_order: bool) -> None:
        """Run the fit-start data checks (bounded; never raises) and prepare the per-evaluation views.

        Args:
            train_dataset: The training dataset (read with ``dataset[i]``).
            val_dataset: The validation dataset.
            step: Global step for the findings.
            epoch: Epoch for the findings.
            val_in_order: Whether validation batches come in dataset order (a sequential sampler, one
                process); only then can duplicated samples be left out of the clean-subset metrics and
                confident mistakes be traced back to their index.
        """
        checks = self.config.data_checks
        self._positions_known = val_in_order
        if checks.confident_mistakes and self._mistakes is None:
            from fitwatch.data.mistakes import ConfidentMistakes

            self._mistakes = ConfidentMistakes(checks.confident_mistakes, class_names=self.config.class_names,
                                               ignore_index=self.config.ignore_index if self.config.ignore_index is not None else -100)
        if not checks.enabled or train_dataset is None or val_dataset is None:
            return
        hinted = self.task or (self.config.task if self.config.task != "auto" else None) or self.model_task.task
        if checks.label_shift and (hinted in ("regression", *LANGUAGE_MODEL_TASKS) or (hinted is None and _fractional_labels(train_dataset))):
            # Class proportions mean nothing for real-valued targets or next-token labels.
            checks = dataclasses.replace(checks, label_shift=False)
        try:
            result = check_splits(
                train_dataset, val_dataset, checks, class_names=self.config.class_names,
                ignore_index=self.config.ignore_index, step=step, epoch=epoch,
            )
        except Exception as err:  # noqa: BLE001  (odd datasets never stop training)
            self.warn_once("data-checks", f"fitwatch: the data checks could not read the datasets ({type(err).__name__}: {err}); skipped.")
            return
        prefix = self.config.tag_prefix
        for finding in result.findings:
            self.monitor.report(finding)
        self.monitor.text(tag("data", "report", prefix=prefix), result.report.replace("\n", "  \n"), step)
        if result.val_sampled is not None and result.val_sampled.size:
            self.monitor.log({tag("data", "duplicate_fraction", split="val", prefix=prefix): len(result.duplicate_val_indices) / result.val_sampled.size}, step)
        if result.duplicate_val_indices and val_in_order and result.val_sampled is not None:
            mask = torch.zeros(result.val_sampled.size, dtype=torch.bool)
            mask[sorted(result.duplicate_val_indices)] = True
            self._duplicate_mask = mask
            self.val_clean = self._clean_state()

    def fingerprint(self, directory: Any, *, model: nn.Module | None, tokenizer: Any, train_dataset: Any, val_dataset: Any, step: int,
                    training: Mapping[str, Any] | None = None) -> None:
        """Write ``fingerprint.json`` (versions, model/tokenizer/config hashes, data sample hashes, git commit, and
        ``training``: the arguments that change a run, as the adapter read them) to ``directory`` and a summary to
        TensorBoard text. Runs on rank zero; never raises."""
        if not self.config.data_checks.fingerprint or directory is None:
            return
        from fitwatch.data.fingerprint import run_fingerprint, write_fingerprint
        from fitwatch.data.split_checks import fingerprint_items, preserved_rng

        try:
            n = min(self.config.data_checks.max_samples, 1000)
            with preserved_rng():
                fp = run_fingerprint(model=model, tokenizer=tokenizer, train_samples=fingerprint_items(train_dataset, n),
                                     val_samples=fingerprint_items(val_dataset, n),
                                     extra={"fitwatch_config": self.config.to_dict(), "training": dict(training or {})},
                                     max_samples=n)
            path = write_fingerprint(directory, fp)
        except Exception as err:  # noqa: BLE001
            self.warn_once("fingerprint", f"fitwatch: could not write the run fingerprint ({type(err).__name__}: {err}); skipped.")
            return
        versions = ", ".join(f"{k} {v}" for k, v in sorted(fp.get("versions", {}).items()) if v)
        self.monitor.text(tag("data", "fingerprint", prefix=self.config.tag_prefix), f"`{path.name}` written.  \n{versions}", step)

    def track_margins(self, num_samples: int | None) -> None:
        """Start area-under-the-margin tracking (``data_checks.mislabels``) over ``num_samples`` ids."""
        from fitwatch.data.mislabels import AreaUnderMargin

        self._margins = AreaUnderMargin(num_samples=num_samples)

    def _log_data_views(self, step: int, names: Sequence[str]) -> None:
        """Clean-subset metrics and the confident-mistakes table of the evaluation that just ended."""
        prefix = self.config.tag_prefix
        self._val_position = 0
        if self.val_clean is not None:
            self.val_clean.sync()
            if self.val_clean.initialized:
                clean = self.val_clean.compute()
                scalars = {}
                for section, metrics in (("performance", _PERFORMANCE), ("calibration", _CALIBRATION), ("health", ("samples",))):
                    for metric in metrics:
                        value = _with_loss(clean.summary).get(metric)
                        if value is not None:
                            scalars[tag(section, metric, split="val_clean", prefix=prefix)] = value
                self.monitor.log(scalars, step)
                self.val_clean.reset()
        if self._mistakes is not None:
            try:
                table = self._mistakes.table(describe=self.describe)
                self.monitor.text(tag("data", "confident_mistakes", split="val", prefix=prefix), table, step)
                hist = self._mistakes.histograms()
                for outcome in ("correct", "wrong"):
                    self.monitor.histogram(tag("data", f"confidence_{outcome}", split="val", prefix=prefix), hist["edges"], hist[outcome], step)
            except Exception as err:  # noqa: BLE001
                self.warn_once("mistakes", f"fitwatch: the confident-mistakes table failed ({type(err).__name__}: {err}); skipped.")
            self._mistakes.reset()

    def _clean_state(self) -> Any:
        """A state like the validation one, for the clean subset (the task may still be undecided)."""
        if self.task is None or not self._accumulator_kwargs:
            return self._placeholder()
        kwargs = dict(self._accumulator_kwargs)
        return build_state(kwargs.pop("task"), **kwargs)

    def class_names(self) -> list[str]:
        if self.task is not None and self.task not in CLASSIFICATION_TASKS:
            return []
        if self.config.class_names is not None:
            return list(self.config.class_names)
        if self.derived_class_names is not None:
            return list(self.derived_class_names)
        k = self.val.num_classes or self.train.num_classes or 0
        return [str(i) for i in range(k)]

    def _log_split(self, result: SplitResult, split: str, step: int, names: Sequence[str], rank_by: SplitResult) -> None:
        prefix = self.config.tag_prefix
        summary = _with_loss(result.summary)
        invalid = summary.get("invalid_targets", 0.0)
        if invalid and invalid == invalid:
            self.warn_once(f"invalid-targets-{split}", f"fitwatch: {invalid:.0f} {split} targets were outside the "
                           f"{self.train.num_classes or self.val.num_classes} classes or not whole numbers and were left "
                           f"out of every metric (counted in health/invalid_targets/{split}). Check the label mapping, "
                           f"`num_classes`/`class_names`, and `ignore_index` ({self.config.ignore_index}). Training is "
                           "not affected.")
        state = {"train": self.train, "val": self.val}.get(split)
        if state is not None and getattr(state, "skipped", 0):
            summary = {**summary, "skipped_batches": float(state.skipped)}
        scalars: dict[str, float] = {}
        for section, metrics in (("performance", _PERFORMANCE), ("calibration", _CALIBRATION), ("health", _HEALTH)):
            for metric in metrics:
                if metric in summary:
                    scalars[tag(section, metric, split=split, prefix=prefix)] = summary[metric]
        dashboard_classes = self._dashboard_classes(names, rank_by)
        hidden: dict[str, float] = {}
        for metric in _PER_CLASS:
            for i, value in enumerate(result.per_class.get(metric, [])):
                name = tag("per_class", metric, subject=names[i] if i < len(names) else str(i), split=split, prefix=prefix)
                (scalars if i in dashboard_classes else hidden)[name] = value
        self.monitor.log(scalars, step)
        if hidden:
            self.monitor.log(hidden, step, dashboard=False)

    def _dashboard_classes(self, names: Sequence[str], rank_by: SplitResult) -> set[int]:
        mode = self.config.per_class
        k = len(names)
        if mode == "off":
            return set()
        if mode == "all" or (mode == "auto" and k <= PER_CLASS_AUTO_MAX):
            return set(range(k))
        f1 = rank_by.per_class.get("f1", [])
        order = sorted(range(len(f1)), key=lambda i: f1[i])
        return set(order[: self.config.per_class_top_k])

    # ------------------------------------------------------------------ persistence
    def __getstate__(self) -> dict[str, Any]:
        # References into a live training step (model, snapshots, pending device tensors) are not state.
        state = self.__dict__.copy()
        state.update(_deferred=None, _pending_ratios={}, _ratios=UpdateRatioTracker(), _grad_norm=None, _optimizers=[],
                     _micro=[], _held_steps=deque())
        return state

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor.state_dict(),
            "train": self.train.state_dict(),
            "log_every_n_steps": self.log_every_n_steps,
            "task": self.task,
            "class_names": None if self.derived_class_names is None else list(self.derived_class_names),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "monitor" in state:
            self.monitor.load_state_dict(state["monitor"])
        task = state.get("task")
        if isinstance(task, str) and self.task is None:
            names = state.get("class_names")
            self.derived_class_names = tuple(names) if isinstance(names, list) and self.config.class_names is None else None
            self.task = task
            kwargs = self._state_kwargs(task, self.config.class_names or self.derived_class_names, "class_names")
            if task not in CLASSIFICATION_TASKS:
                kwargs["num_classes"] = None
            self._accumulator_kwargs = dict(kwargs, task=task)
            self.train = build_state(task, **dict(kwargs, classwise_ece=False),
                                     lm_max_tokens=TRAIN_TOKENS_PER_BATCH if task in LANGUAGE_MODEL_TASKS else None)
            self.val = build_state(task, **kwargs)
        if state.get("train"):
            self.train.load_state_dict(state["train"])
            self._train_flushed = not self.train.initialized


def _rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def optimizer_arguments(optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, Any]:
    """The optimizer settings that change a run, flat and JSON-safe: class, and per group ``lr``,
    ``weight_decay``, ``momentum``/``betas``, ``eps`` (``group<i>.`` prefixed when there are several groups)."""
    out: dict[str, Any] = {}
    groups = [(o, g) for o in optimizers for g in o.param_groups]
    out["optimizer"] = ", ".join(type(o).__name__ for o in optimizers)
    for i, (_, group) in enumerate(groups):
        prefix = "" if len(groups) == 1 else f"{group.get('name', f'group{i}')}."
        for key in ("lr", "initial_lr", "weight_decay", "momentum", "betas", "eps"):
            value = group.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + key] = float(value)
            elif isinstance(value, (tuple, list)) and all(isinstance(x, (int, float)) for x in value):
                out[prefix + key] = [float(x) for x in value]
    return out


def _fractional_labels(dataset: Any) -> bool:
    """Whether the first training item's label holds a non-integer number (a regression target)."""
    from fitwatch.data.split_checks import preserved_rng

    try:
        with preserved_rng():
            item = dataset[0]
        if isinstance(item, Mapping):
            label = next((item[k] for k in ("labels", "label", "targets", "target", "y") if k in item), None)
        elif isinstance(item, (tuple, list)) and len(item) >= 2:
            label = item[1]
        else:
            return False
        values = torch.as_tensor(label)
        return bool(values.is_floating_point() and values.numel() and (values != values.round()).any())
    except Exception:  # noqa: BLE001  (an odd dataset: the data checks decide for themselves)
        return False


def _collective_device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _fits(task: str, logits: Tensor, target: Tensor) -> bool:
    """Whether a batch's shapes fit ``task`` (what a model's head said), before trusting the model."""
    if task in LANGUAGE_MODEL_TASKS:
        return logits.ndim == 3 and target.shape == logits.shape[:2]
    if task == "regression":
        return logits.numel() == target.numel()
    if task == "multilabel":
        return logits.shape == target.shape
    if task == "token_classification":
        return logits.ndim == 3 and target.shape == logits.shape[:2]
    return logits.ndim == target.ndim + 1 and logits.shape[:-1] == target.shape or (
        task == "binary" and logits.numel() == target.numel())


def _with_loss(summary: Mapping[str, float]) -> dict[str, float]:
    """The summary with ``loss`` filled from the NLL when the training code handed over no loss."""
    out = dict(summary)
    if "loss" not in out and "nll" in out:
        out["loss"] = out["nll"]
    return out
