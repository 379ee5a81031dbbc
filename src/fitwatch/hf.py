"""Hugging Face Trainer adapter: ``FitWatchCallback``, a thin callback over :class:`fitwatch.observer.Observer`.

.. code-block:: python

    from fitwatch.hf import FitWatchCallback

    trainer = Trainer(model=model, args=TrainingArguments(..., eval_strategy="epoch", report_to=["tensorboard"]),
                      train_dataset=train, eval_dataset=val, callbacks=[FitWatchCallback(class_names=labels)])

Trainer callbacks never see predictions, so the callback captures ``logits`` and ``labels`` with a forward
hook on the model, in training and in evaluation, and accumulates them into O(classes x bins) states on
the device: no ``compute_metrics`` wiring and no logits kept for the whole evaluation set.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import CallbackHandler, ExportableState
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("fitwatch.hf needs transformers and accelerate: pip install 'fitwatch[hf]'.") from err
import torch
from torch import Tensor, nn

from fitwatch.config import FitWatchConfig, resolve_config
from fitwatch.findings import Finding
from fitwatch.metrics.audit import looks_pretrained
from fitwatch.observer import Observer
from fitwatch.runs import next_version
from fitwatch.sinks.base import Sink
from fitwatch.sinks.jsonl import JsonlSink
from fitwatch.sinks.loggers import integration_sinks
from fitwatch.sinks.tensorboard import TensorBoardSink
from fitwatch.sinks.warn import WarningSink

__all__ = ["FitWatchCallback"]


class FitWatchCallback(TrainerCallback, ExportableState):
    """Per-class, calibration, optimizer and gap diagnostics for the Hugging Face ``Trainer``, and findings.

    Args:
        class_names: Class (or label) names in index order; ``model.config.id2label`` is used when omitted.
        num_classes: Number of classes when there are no names; inferred from the logits otherwise.
        task: ``"multiclass"``, ``"binary"``, ``"multilabel"`` or ``"auto"`` (sequence and token classification
            are both multiclass; ``problem_type="multi_label_classification"`` gives multilabel).
        n_bins: Calibration bins (default 15).
        log_every_n_steps: Step-diagnostics interval; default: ``TrainingArguments.logging_steps``.
        diag_every_n_steps: Interval of per-block update ratios (0 turns them off; default 50).
        stop_on: Finding codes or severities that stop training (never by default).
        config: Every other setting: a :class:`~fitwatch.config.FitWatchConfig`, a mapping or a YAML path.
        on_finding: Called with every new finding; a module-level function (or its ``"module:name"`` path) is
            restored on resume, a lambda is not.
        log_dir: Where fitwatch writes; default: the run directory of the Trainer's ``TensorBoardCallback``,
            else ``$TENSORBOARD_LOGGING_DIR``, else ``<output_dir>/runs/fitwatch``.

    Resume: the callback implements ``ExportableState``. With
    ``TrainingArguments(restore_callback_states_from_checkpoint=True)`` and
    ``trainer.train(resume_from_checkpoint=...)``, histories, detector windows and raised findings continue.
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        *,
        num_classes: int | None = None,
        task: str | None = None,
        n_bins: int | None = None,
        log_every_n_steps: int | None = None,
        diag_every_n_steps: int | None = None,
        stop_on: Sequence[str] | None = None,
        config: FitWatchConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        on_finding: Callable[[Finding], Any] | str | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._init_args = {
            "class_names": None if class_names is None else list(class_names),
            "num_classes": num_classes,
            "task": task,
            "n_bins": n_bins,
            "log_every_n_steps": log_every_n_steps,
            "diag_every_n_steps": diag_every_n_steps,
            "stop_on": None if stop_on is None else ([stop_on] if isinstance(stop_on, str) else list(stop_on)),
            "log_dir": None if log_dir is None else str(log_dir),
        }
        self.config = resolve_config(
            config,
            class_names=None if class_names is None else tuple(class_names),
            num_classes=num_classes,
            task=task,
            n_bins=n_bins,
            log_every_n_steps=log_every_n_steps,
            diag_every_n_steps=diag_every_n_steps,
            stop_on=None if stop_on is None else ((stop_on,) if isinstance(stop_on, str) else tuple(stop_on)),
        )
        self.on_finding = _resolve_hook(on_finding)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.run_dir: Path | None = None
        self.observer: Observer | None = None
        self._pending_state: Mapping[str, Any] | None = None
        self._hook: torch.utils.hooks.RemovableHandle | None = None
        self._hooked: nn.Module | None = None
        self._sinks_ready = False
        self._optimizers: list[torch.optim.Optimizer] = []
        self._training = False
        self._staged: tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None] | None = None
        self._train_dataset: Any = None
        self._data_checked = False
        self._primary_eval: str | None = None  # name of the fit's first evaluation set ("" for a single one)
        self._items_decided: bool | None = None  # whether the model's loss is normalised by num_items_in_batch
        self._world_size = 1
        self._average_tokens = False  # TrainingArguments.average_tokens_across_devices

    # ------------------------------------------------------------------ public
    @classmethod
    def of(cls, trainer: Any) -> FitWatchCallback:
        """The live callback of ``trainer``. The Trainer rebuilds its callbacks from the checkpoint when it
        resumes (``restore_callback_states_from_checkpoint=True``), so the instance passed to it is not the one
        that ran; this one holds the run's findings and history.

        Raises:
            ValueError: If ``trainer`` has no ``FitWatchCallback``.
        """
        for callback in getattr(getattr(trainer, "callback_handler", None), "callbacks", []):
            if isinstance(callback, cls):
                return callback
        raise ValueError(f"Expected a Trainer with a {cls.__name__} among its callbacks, but found none.")

    @property
    def findings(self) -> list[Finding]:
        """Every cause found so far (its latest state), in the order first raised."""
        return [] if self.observer is None else self.observer.findings

    @property
    def history(self) -> dict[str, list[tuple[int, float]]]:
        """Every scalar written: ``{tag: [(step, value), ...]}``."""
        return {} if self.observer is None else self.observer.history

    # ------------------------------------------------------------------ ExportableState
    def state(self) -> dict[str, Any]:
        """JSON-safe constructor arguments and observer state, saved in ``trainer_state.json``."""
        args = {k: v for k, v in self._init_args.items() if v is not None}
        args["config"] = self.config.to_dict()
        hook = _hook_path(self.on_finding)
        if hook is not None:
            args["on_finding"] = hook
        return {"args": args, "attributes": {"fitwatch_state": self.fitwatch_state}}

    @property
    def fitwatch_state(self) -> dict[str, Any]:
        return self.observer.state_dict() if self.observer is not None else dict(self._pending_state or {})

    @fitwatch_state.setter
    def fitwatch_state(self, value: Mapping[str, Any]) -> None:
        if self.observer is not None:
            self.observer.load_state_dict(value)
        else:
            self._pending_state = value

    # ------------------------------------------------------------------ set-up
    def _observer(self, model: nn.Module | None) -> Observer:
        if self.observer is None:
            self.observer = Observer(self.config, on_finding=self.on_finding)
            if self._pending_state:
                self.observer.load_state_dict(self._pending_state)
                self._pending_state = None
        # The head's task and, for a classifier whose config names its labels, the class names (fitwatch's own
        # inference: a mismatch with the logits turns into a warning, never an error in the training step).
        self.observer.inspect_model(model)
        return self.observer

    def _ensure_hook(self, model: nn.Module | None) -> None:
        if model is None or self._hooked is model:
            return
        if self._hook is not None:
            self._hook.remove()
        self._observer(model)
        self._hook = model.register_forward_hook(self._capture, with_kwargs=True)
        self._hooked = model

    def _setup_sinks(self, args: TrainingArguments, state: TrainerState) -> None:
        if self._sinks_ready or self.observer is None:
            return
        self._sinks_ready = True
        if not state.is_world_process_zero:
            self.observer.set_sinks([])
            return
        tb = _trainer_tensorboard_callback()
        writer = getattr(tb, "tb_writer", None) if tb is not None else None
        sinks: list[Sink] = [WarningSink(warn=self.config.warn)]
        if writer is not None:
            run_dir = self.log_dir or Path(getattr(tb, "logging_dir", None) or writer.log_dir)
            sinks.append(TensorBoardSink(lambda: writer, prefix=self.config.tag_prefix, images=self.config.images, own_writer=False))
        else:
            env = os.getenv("TENSORBOARD_LOGGING_DIR")
            run_dir = self.log_dir or self.run_dir or (
                Path(env).expanduser() if env else next_version(Path(args.output_dir) / "runs" / "fitwatch"))
            sinks.append(TensorBoardSink.for_directory(run_dir, prefix=self.config.tag_prefix, images=self.config.images))
        sinks.append(JsonlSink(run_dir, findings_file=self.config.findings_file))
        # The Trainer's report_to integrations (MLflow, W&B, Comet): fitwatch's numbers in the run they opened.
        sinks += integration_sinks(_trainer_callbacks(), images=self.config.images, tag_prefix=self.config.tag_prefix)
        self.run_dir = Path(run_dir)
        self.observer.set_sinks(sinks)
        logging.getLogger("fitwatch").info("fitwatch: writing to %s", self.run_dir)

    # ------------------------------------------------------------------ capture
    def _capture(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        """Forward hook: hand logits, labels and loss to the observer (device tensors only, no host sync).

        Training batches are accumulated at once. An evaluation batch is only staged, and committed by
        ``on_prediction_step``, which the Trainer calls after each batch of its evaluation loop: a forward
        the user runs outside ``evaluate()`` (inference, a custom metric) never leaks into the numbers.
        """
        observer = self.observer
        if observer is None:
            return
        logits = _field(output, "logits")
        logits = logits if isinstance(logits, Tensor) else None
        labels = kwargs.get("labels")
        labels = labels if isinstance(labels, Tensor) else None
        loss = _field(output, "loss")
        loss = loss if isinstance(loss, Tensor) and loss.numel() == 1 else None
        if labels is None and not module.training:
            return  # a forward without labels at evaluation time is plain inference (or generation)
        mean, weight = loss, None
        num_items = kwargs.get("num_items_in_batch")
        if loss is not None and labels is not None and num_items is not None and self._loss_uses_items(
                module, logits, labels, loss, num_items):
            # The model divided its summed loss by the token count of the whole accumulation window; this
            # micro-batch's per-token mean is loss * num_items / its own count, and it weighs by that count.
            weight = _counted(labels, observer, module)
            mean = torch.where(weight > 0, loss.detach().float() * num_items / weight.clamp(min=1), torch.zeros((), device=loss.device))
        elif loss is not None and (self._world_size > 1 or (self._average_tokens and num_items is not None)):
            # The Trainer scales the loss in place by the number of processes after this hook (`loss *= ...`, with
            # average_tokens_across_devices, even by 1): keep its value now (one scalar copy).
            mean = loss.detach().clone()
        if labels is None or logits is None:
            if weight is None and labels is not None and loss is not None:
                weight = _counted(labels, observer, module)  # a loss-only evaluation weighs batches by tokens
            if labels is None:
                observer.warn_once(
                    "hf-no-labels",
                    "fitwatch: the model's forward received no `labels` in training, so per-class and calibration "
                    "metrics are off; the loss is followed. The Trainer pops labels before the forward when "
                    "label_smoothing_factor > 0 or a compute_loss_func is set; optimizer diagnostics keep working.",
                )
            elif loss is not None:
                observer.warn_once(
                    "hf-no-logits",
                    f"fitwatch: {type(module).__name__}'s forward returns no `logits` (TRL's SFTTrainer and fused-loss "
                    "kernels drop them), so token accuracy and calibration are off; fitwatch follows the loss the "
                    "model returns (overfitting, gap, plateau, LR and divergence checks keep working).",
                )
            if mean is None:
                return
            if module.training:
                observer.train_batch(None, None, mean, loss_weight=weight)
            else:
                self._staged = (None, None, mean.detach(), weight)
            return
        if module.training:
            observer.train_batch(logits, labels, mean, loss_weight=weight)
        else:
            self._staged = (logits.detach(), labels.detach(), None if mean is None else mean.detach(), weight)

    # ------------------------------------------------------------------ events
    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: nn.Module | None = None, **kwargs: Any) -> None:
        self._ensure_hook(model)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None, train_dataloader: Any = None, eval_dataloader: Any = None,
        processing_class: Any = None, **kwargs: Any,
    ) -> None:
        self._ensure_hook(model)
        observer = self._observer(model)
        self._setup_sinks(args, state)
        self._optimizers = [optimizer] if optimizer is not None else []
        self._training = True
        self._world_size = args.world_size
        self._average_tokens = bool(getattr(args, "average_tokens_across_devices", False))
        # The Trainer clips before on_pre_optimizer_step, so the pre-clip norm comes from its own logs.
        observer.measure_grad_norm = False
        if model is not None and self._optimizers:
            observer.fit_start(
                model,
                self._optimizers,
                step=state.global_step,
                epoch=_epoch(state),
                max_steps=state.max_steps,
                pretrained=looks_pretrained(model),
                log_every_n_steps=_logging_steps(args, state),
            )
        self._train_dataset = getattr(train_dataloader, "dataset", None)
        if state.is_world_process_zero:
            observer.fingerprint(self.run_dir, model=model, tokenizer=processing_class, train_dataset=self._train_dataset,
                                 val_dataset=getattr(eval_dataloader, "dataset", None), step=state.global_step,
                                 training=_training_arguments(args, self._optimizers))
        if eval_dataloader is not None:
            self._check_data(args, state, eval_dataloader, processing_class)

    def _check_data(self, args: TrainingArguments, state: TrainerState, eval_dataloader: Any, processing_class: Any) -> None:
        if self._data_checked or self.observer is None or eval_dataloader is None:
            return
        self._data_checked = True
        val_set = getattr(eval_dataloader, "dataset", None)
        sampler = getattr(eval_dataloader, "sampler", None) or getattr(getattr(eval_dataloader, "batch_sampler", None), "sampler", None)
        in_order = args.world_size == 1 and isinstance(sampler, torch.utils.data.SequentialSampler)
        decode = getattr(processing_class, "decode", None)
        if callable(decode) and val_set is not None:
            self.observer.describe = lambda ref: decode(
                val_set[ref]["input_ids"], skip_special_tokens=True, clean_up_tokenization_spaces=True
            )
        self.observer.check_data(self._train_dataset if self._training else None, val_set, step=state.global_step,
                                 epoch=_epoch(state), val_in_order=in_order)

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: nn.Module | None = None, **kwargs: Any) -> None:
        if self.observer is not None and model is not None:
            self.observer.before_optimizer_step(model, self._optimizers, state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: nn.Module | None = None, **kwargs: Any) -> TrainerControl:
        if self.observer is not None and state.is_world_process_zero and "watching" not in self.observer._warned:
            task = self.observer.task
            base = ("the training loss, learning rate and optimizer state per group, gradient/weight norms, update "
                    "ratios and the model set-up")
            text = (f"fitwatch is watching this run from its logits ({task}, captured from the model's forward): "
                    f"token/class metrics, calibration and train-validation gaps, and {base}." if task is not None else
                    f"fitwatch is watching {base}, and the evaluation loss; the model's forward gives no logits with "
                    f"labels, so task metrics are off.")
            self.observer.announce(text, state.global_step)
        if self.observer is not None and model is not None:
            # Defer the step record to on_log, which carries the Trainer's pre-clip gradient norm.
            self.observer.after_optimizer_step(model, state.global_step, _epoch(state), defer=control.should_log)
        return control

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if self.observer is None:
            return
        grad_norm = (logs or {}).get("grad_norm")
        self.observer.flush_step(grad_norm=float(grad_norm) if isinstance(grad_norm, (int, float)) else None)
        if self.config.stop_on and self._training and "loss" in (logs or {}):
            # A per-step finding (divergence) stops the run at the logging step that raised it (every rank logs).
            if self.observer.any_rank(self.observer.monitor.should_stop):
                control.should_training_stop = True

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.observer is None:
            return
        self.observer.flush_step()
        # With evaluations, each takes every training batch since the previous one (and its gap to validation),
        # whatever the cadence; only a run without evaluations logs training metrics per epoch.
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            self.observer.end_train_epoch(step=state.global_step, epoch=_epoch(state))

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, eval_dataloader: Any = None,
        processing_class: Any = None, **kwargs: Any,
    ) -> None:
        if not self._data_checked and self._training:
            self._check_data(args, state, eval_dataloader, processing_class)  # first evaluation set seen
        if self._staged is not None and self.observer is not None:
            logits, labels, loss, weight = self._staged
            if logits is None or labels is None:
                self.observer.eval_batch(None, None, loss, loss_weight=weight)
            else:
                keep = _real_rows(logits.shape[0], args.process_index)
                if keep > 0:
                    self.observer.eval_batch(logits[:keep], labels[:keep], loss, loss_weight=weight)
        self._staged = None

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: nn.Module | None = None,
        metrics: Mapping[str, float] | None = None, **kwargs: Any,
    ) -> TrainerControl:
        observer = self._observer(model)
        self._setup_sinks(args, state)
        observer.flush_step()
        split = self._evaluation_split(state, metrics)
        observer.end_evaluation(step=state.global_step, epoch=_epoch(state), training=self._training and split == "val",
                                split=split, source="val")
        if split == "val" and isinstance(metrics, dict):
            # For metric_for_best_model / EarlyStoppingCallback (list FitWatchCallback before it in `callbacks`).
            metrics.update({f"eval_{name}": value for name, value in observer.headline.items()})
        if self.config.stop_on and observer.any_rank(observer.monitor.should_stop):
            control.should_training_stop = True
        return control

    def _loss_uses_items(self, module: nn.Module, logits: Tensor | None, labels: Tensor, loss: Tensor, num_items: Any) -> bool:
        """Whether the model's loss is its summed loss over ``num_items_in_batch`` (the HF causal-LM losses) or a
        plain mean that ignores it (most classification heads, though the Trainer passes it to every forward with
        ``**kwargs``). Decided once, on the first such batch, against the cross-entropy of its own logits (one
        read); without logits, from the task."""
        if self._items_decided is not None:
            return self._items_decided
        observer = self.observer
        decided = (observer.task or observer.model_task.task) in ("causal_lm", "seq2seq_lm") if observer else False
        if logits is not None and logits.ndim >= 2 and labels.dtype in (torch.long, torch.int, torch.int32):
            try:
                with torch.no_grad():
                    causal = observer is not None and (observer.task or observer.model_task.task) == "causal_lm"
                    z, y = (logits[:, :-1], labels[:, 1:]) if causal and labels.ndim > 1 else (logits, labels)
                    ce = torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]).float(), y.reshape(-1).long(),
                                                           ignore_index=-100)
                    counted = float((y != -100).sum())
                    value, items = float(loss.detach()), float(num_items)
                if counted > 0 and ce == ce:
                    decided = abs(value * items / counted - float(ce)) < abs(value - float(ce))
            except (RuntimeError, ValueError, IndexError, TypeError):
                pass
        self._items_decided = decided
        return decided

    def _evaluation_split(self, state: TrainerState, metrics: Mapping[str, float] | None) -> str:
        """Which series an evaluation belongs to, from the prefix the Trainer gave its metrics: the first
        evaluation set of the fit is ``val`` (the detectors judge it), the other sets of an ``eval_dataset``
        dict are ``val_<name>``, ``eval_on_start`` is ``val_start``, ``evaluate()`` outside training is ``eval``
        and a ``test`` prefix is ``test``."""
        from fitwatch.sinks.tags import sanitize

        prefix = next((k[: -len("_runtime")] for k in (metrics or {}) if k.endswith("_runtime")), "eval")
        name = prefix[len("eval_"):] if prefix.startswith("eval_") else ("" if prefix == "eval" else prefix)
        if prefix.startswith("test"):
            return "test"
        if not self._training:
            return "eval" if not name else f"val_eval_{sanitize(name)}"
        if self._primary_eval is None:
            self._primary_eval = name
        primary = name == self._primary_eval
        if state.global_step == 0:  # before the first step: a baseline, not a point of the training curve
            return "val_start" if primary else f"val_start_{sanitize(name)}"
        return "val" if primary else f"val_{sanitize(name)}"

    def on_predict(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: Any = None, **kwargs: Any) -> None:
        # trainer.predict() runs the same forward: its batches are not a validation, so they are dropped.
        if self.observer is not None:
            self.observer.val.reset()

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._training = False
        if self.observer is not None:
            self.observer.flush_step()
            self.observer.end(step=state.global_step, epoch=_epoch(state))
            self._sinks_ready = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_hook=None, _hooked=None, _sinks_ready=False, _optimizers=[], _staged=None, _train_dataset=None, _data_checked=False)
        return state


def _training_arguments(args: TrainingArguments, optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, Any]:
    """What changes an HF run, for the fingerprint (``fitwatch diff`` compares them key by key)."""
    from fitwatch.observer import optimizer_arguments

    keys = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio",
            "per_device_train_batch_size", "gradient_accumulation_steps", "bf16", "fp16", "seed", "optim",
            "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "label_smoothing_factor")
    out: dict[str, Any] = {"framework": "transformers", "world_size": args.world_size}
    for key in keys:
        value = getattr(args, key, None)
        value = getattr(value, "value", value)  # enums (scheduler type, optimizer name) as their string
        if isinstance(value, (str, int, float, bool)):
            out[key] = value
    out.update(optimizer_arguments(optimizers))
    return out


def _counted(labels: Tensor, observer: Observer, module: nn.Module) -> Tensor:
    """Tokens of ``labels`` the model's loss counts (after the causal shift for a causal LM), as the Trainer
    counts them for ``num_items_in_batch``."""
    ignore = observer.config.ignore_index if observer.config.ignore_index is not None else -100
    causal = (observer.task or observer.model_task.task) == "causal_lm"
    counted = labels[..., 1:] if causal and labels.ndim > 1 else labels
    return (counted != ignore).sum().float()


def _field(output: Any, name: str) -> Any:
    if isinstance(output, (dict, Mapping)):  # a ModelOutput is a dict: the cheap check comes first
        return output.get(name)
    return getattr(output, name, None)


def _real_rows(rows: int, process_index: int) -> int:
    """Rows of this process's evaluation batch that are real samples.

    With ``even_batches`` (the default) Accelerate completes the last batches of every process with samples
    from the start of the set; ``GradientState.remainder`` says how many rows of the gathered last batch
    (process 0's rows first) are real, which is what ``gather_for_metrics`` keeps.
    """
    from accelerate.state import GradientState

    state = GradientState()
    if not state.end_of_dataloader or state.remainder <= 0:
        return rows
    return max(0, min(rows, state.remainder - process_index * rows))


def _epoch(state: TrainerState) -> int | None:
    """The epoch in the HF Trainer's own numbering: its logs say ``epoch 1.0`` at the end of the first epoch, so a
    finding at that evaluation says epoch 1 (and one during the third epoch, 2.4, says epoch 3); 0 before the
    first step. (Lightning's findings keep Lightning's 0-based ``current_epoch``, as its checkpoint names do.)"""
    if state.epoch is None:
        return None
    return max(math.ceil(state.epoch), 0)


def _logging_steps(args: TrainingArguments, state: TrainerState) -> int | None:
    steps = getattr(state, "logging_steps", None) or getattr(args, "logging_steps", None)
    if isinstance(steps, float) and steps < 1:  # a ratio of max_steps
        steps = math.ceil(steps * state.max_steps)
    return int(steps) if steps else None


def _trainer_callbacks() -> list[Any]:
    """Every callback of the Trainer, found through the ``CallbackHandler`` that is calling us (callbacks get no
    reference to the Trainer)."""
    frame = sys._getframe(1)
    for _ in range(10):
        if frame is None:
            break
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, CallbackHandler):
            return list(candidate.callbacks)
        frame = frame.f_back
    return []


def _trainer_tensorboard_callback() -> Any:
    """The Trainer's ``TensorBoardCallback``: reusing its writer puts fitwatch's tags in the same run directory as
    ``train/loss`` and ``eval/loss``, whatever timestamped name it chose."""
    return next((cb for cb in _trainer_callbacks() if type(cb).__name__ == "TensorBoardCallback"), None)


def _hook_path(hook: Callable[..., Any] | None) -> str | None:
    module, name = getattr(hook, "__module__", None), getattr(hook, "__qualname__", "")
    if not module or not name or "<" in name:
        return None
    return f"{module}:{name}"


def _resolve_hook(hook: Callable[[Finding], Any] | str | None) -> Callable[[Finding], Any] | None:
    if hook is None or callable(hook):
        return hook
    if isinstance(hook, str) and ":" in hook:
        module, _, name = hook.partition(":")
        target: Any = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
        if callable(target):
            return target  # type: ignore[no-any-return]
    raise TypeError(f"Expected `on_finding` to be a callable or a 'module:function' path, but got {hook!r}.")
