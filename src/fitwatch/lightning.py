"""PyTorch Lightning adapter: ``FitWatch``, a thin callback over :class:`fitwatch.observer.Observer`.

.. code-block:: python

    from fitwatch.lightning import FitWatch

    trainer = L.Trainer(logger=TensorBoardLogger("runs"), callbacks=[FitWatch(class_names=["neg", "pos"])])

Predictions come from the step outputs: ``training_step`` / ``validation_step`` return a dict with
``loss`` and ``logits`` and the batch is ``(x, y)`` or a dict with ``labels``; or pass
``extract=fn`` with ``fn(batch, outputs) -> (logits, target)``.
"""

from __future__ import annotations

import logging
import os
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fitwatch.lightning needs PyTorch Lightning: pip install 'fitwatch[lightning]' (or pip install lightning)."
    ) from err
from torch import Tensor
from torch.utils.data import DataLoader, SequentialSampler

from fitwatch.config import FitWatchConfig, resolve_config
from fitwatch.findings import Finding
from fitwatch.metrics.audit import looks_pretrained
from fitwatch.metrics.logged import map_logged
from fitwatch.observer import Observer
from fitwatch.runs import next_version
from fitwatch.sinks.base import Sink
from fitwatch.sinks.jsonl import JsonlSink
from fitwatch.sinks.loggers import logger_sinks
from fitwatch.sinks.tensorboard import TensorBoardSink
from fitwatch.sinks.warn import WarningSink

__all__ = ["FitWatch", "default_extract"]

Extract = Callable[[Any, Any], "tuple[Tensor, Tensor] | None"]
_TARGET_KEYS = ("labels", "label", "targets", "target", "y")
_RETURN_HINT = (
    "return a dict such as {'loss': loss, 'logits': logits} from training_step/validation_step (with batches "
    "as (x, y) or dicts with 'labels'), or pass FitWatch(extract=fn) with fn(batch, outputs) -> (logits, target)"
)


def default_extract(batch: Any, outputs: Any) -> tuple[Tensor, Tensor] | None:
    """``(logits, target)`` from a step's ``outputs`` dict and its ``batch``, or ``None`` when absent.

    Raises:
        TypeError: If ``outputs`` is neither ``None``, a tensor nor a mapping, or ``outputs["logits"]`` is not a tensor.
    """
    if outputs is None or isinstance(outputs, Tensor):
        return None
    if not isinstance(outputs, Mapping):
        raise TypeError(
            f"Expected the step output to be a dict with 'loss' and 'logits' (or a loss tensor), but got "
            f"{type(outputs).__name__}. To use another format, pass FitWatch(extract=fn)."
        )
    logits = outputs.get("logits")
    if logits is None:
        return None
    if not isinstance(logits, Tensor):
        raise TypeError(f"Expected the step output's 'logits' to be a Tensor, but got {type(logits).__name__}.")
    target = _target_of(batch)
    return None if target is None else (logits, target)


def _target_of(batch: Any) -> Tensor | None:
    if isinstance(batch, (dict, Mapping)):  # a plain dict first: the ABC check is the slow one
        for key in _TARGET_KEYS:
            if isinstance(batch.get(key), Tensor):
                return batch[key]
        return None
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], Tensor):
        return batch[1]
    return None


def _first(loaders: Any) -> Any:
    if isinstance(loaders, (list, tuple)):
        return loaders[0] if loaders else None
    if isinstance(loaders, Mapping):
        return next(iter(loaders.values()), None)
    return loaders


def _dataset_of(loaders: Any) -> Any:
    loader = _first(loaders)
    return loader.dataset if isinstance(loader, DataLoader) else None


def _length(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None


def _split(trainer: pl.Trainer, dataloader_idx: int) -> str:
    """The series an evaluation batch belongs to: ``val`` for the first validation dataloader of a fit, ``val_<name>``
    for the others (the key of a dict of dataloaders, else the index), ``eval`` for ``validate()`` outside fit,
    ``test`` for ``test()``."""
    from fitwatch.sinks.tags import sanitize

    fn = str(getattr(trainer.state.fn, "value", trainer.state.fn))
    base = {"fit": "val", "validate": "eval", "test": "test"}.get(fn, "eval")
    if dataloader_idx == 0:
        return base
    loaders = trainer.test_dataloaders if base == "test" else trainer.val_dataloaders
    name = list(loaders)[dataloader_idx] if isinstance(loaders, Mapping) and dataloader_idx < len(loaders) else dataloader_idx
    return f"val_{sanitize(str(name))}" if base == "val" else f"val_{base}_{sanitize(str(name))}"


def _training_arguments(trainer: pl.Trainer) -> dict[str, Any]:
    """What changes a Lightning run, for the fingerprint (``fitwatch diff`` compares them key by key)."""
    from fitwatch.observer import optimizer_arguments

    loader = _first(trainer.train_dataloader)
    out: dict[str, Any] = {
        "framework": "lightning",
        "max_epochs": trainer.max_epochs,
        "max_steps": trainer.max_steps,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "precision": str(trainer.precision),
        "gradient_clip_val": trainer.gradient_clip_val,
        "batch_size": getattr(loader, "batch_size", None),
        "world_size": trainer.world_size,
        "seed": os.environ.get("PL_GLOBAL_SEED"),
        "schedulers": [type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs],
    }
    out.update(optimizer_arguments(trainer.optimizers))
    return {k: v for k, v in out.items() if v is not None}


def _validates(trainer: pl.Trainer) -> bool:
    """Whether this fit runs a validation loop at all."""
    try:
        batches = trainer.num_val_batches
    except Exception:  # noqa: BLE001
        return False
    total = sum(batches) if isinstance(batches, (list, tuple)) else batches
    return trainer.val_dataloaders is not None and bool(total)


def _sample_ids(batch: Any) -> Tensor | None:
    """Per-sample ids for the mislabel tracker: a ``sample_id``/``idx``/``index`` field, or a third tuple element."""
    if isinstance(batch, Mapping):
        return next((batch[k] for k in ("sample_id", "idx", "index") if isinstance(batch.get(k), Tensor)), None)
    if isinstance(batch, (tuple, list)) and len(batch) >= 3 and isinstance(batch[2], Tensor) and not batch[2].is_floating_point():
        return batch[2]
    return None


class FitWatch(Callback):
    """Logs per-class, calibration, optimizer and gap diagnostics to TensorBoard, and warns when a run
    goes quietly wrong.

    Args:
        class_names: Class names in index order (default ``"0", "1", ...``).
        num_classes: Number of classes when there are no names; inferred from the logits otherwise.
        task: ``"multiclass"``, ``"binary"``, ``"multilabel"`` or ``"auto"``.
        n_bins: Calibration bins (default 15).
        log_every_n_steps: Step-diagnostics interval; default: the Trainer's ``log_every_n_steps``.
        diag_every_n_steps: Interval of per-block update ratios (0 turns them off; default 50).
        stop_on: Finding codes or severities that stop training (never by default).
        config: Every other setting: a :class:`~fitwatch.config.FitWatchConfig`, a mapping, or the path of a
            YAML preset (``configs/fitwatch/full.yaml``). Arguments above override it.
        extract: ``fn(batch, outputs) -> (logits, target)`` (or ``None`` to skip a batch) when the step
            outputs are not a dict with ``logits``.
        on_finding: Called with every new finding (for alerts, custom actions).
        describe: ``fn(sample) -> str`` showing a validation sample (``val_dataset[i]``) in the
            confident-mistakes table; the sample's index is shown otherwise.
        log_dir: Where ``findings.jsonl``/``history.json`` go (and the TensorBoard files when the Trainer has
            no ``TensorBoardLogger``); default: the logger's directory, else ``<default_root_dir>/fitwatch``.
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
        extract: Extract | None = None,
        on_finding: Callable[[Finding], Any] | None = None,
        describe: Callable[[Any], str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
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
        if extract is not None and not callable(extract):
            raise TypeError(f"Expected `extract` to be a callable (batch, outputs) -> (logits, target), but got {extract!r}.")
        self.extract = extract
        self.describe = describe
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.on_finding = on_finding
        self.observer = Observer(self.config, on_finding=on_finding)
        self._trainer: weakref.ref[pl.Trainer] | None = None
        self._sinks_ready = False
        self.run_dir: Path | None = None
        self._last_step = -1
        self._checked: set[str] = set()
        self._data_checked = False
        self._splits: list[str] = []  # evaluation sets seen since the last evaluation ended
        # The module's own forward output of the current step (a reference, not a copy), for modules that call
        # `self(x)` but return only their loss; and how many forwards the step ran (only one is unambiguous).
        self._hook: Any = None
        self._forward_output: Tensor | None = None
        self._forwards = 0
        self._sources: dict[str, str] = {}  # step kind -> where its predictions came from
        self._logged_pending = False
        self._announced = False

    # ------------------------------------------------------------------ public
    @property
    def findings(self) -> list[Finding]:
        """Every cause found so far (its latest state), in the order first raised."""
        return self.observer.findings

    @property
    def history(self) -> dict[str, list[tuple[int, float]]]:
        """Every scalar written: ``{tag: [(step, value), ...]}``."""
        return self.observer.history

    @property
    def state_key(self) -> str:
        # Lightning reads it at every hook call of every step (the profiler's action name): built once, since the
        # config is frozen (a repr of 1,000 class names cost 0.4 ms a step).
        key = self.__dict__.get("_state_key")
        if key is None:
            key = self._state_key = self._generate_state_key(class_names=self.config.class_names,
                                                             tag_prefix=self.config.tag_prefix)
        return key

    # ------------------------------------------------------------------ set-up
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        known = self._trainer() if self._trainer is not None else None
        if known is not None and known is not trainer:
            # The instance is reused in another Trainer: that is another run, with its own folder and history.
            self._new_run()
        self._trainer = weakref.ref(trainer)
        # What a Hugging Face model inside the module says about the task (a causal LM head, a regressor).
        self.observer.inspect_model(pl_module)
        if self._hook is None and self.extract is None:
            self._hook = pl_module.register_forward_hook(self._capture)

    def _capture(self, module: Any, args: Any, output: Any) -> None:
        self._forward_output = output if isinstance(output, Tensor) else None
        self._forwards += 1

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._forward_output, self._forwards = None, 0

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        self._forward_output, self._forwards = None, 0

    on_test_batch_start = on_validation_batch_start

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._forward_output = None

    def _new_run(self) -> None:
        self.observer.end()
        self.observer = Observer(self.config, on_finding=self.on_finding)
        self._sinks_ready = False
        self.run_dir = None
        self._last_step = -1
        self._checked = set()
        self._data_checked = False
        self._splits = []
        self._sources = {}
        self._announced = False

    def _setup_sinks(self, trainer: pl.Trainer) -> None:
        if self._sinks_ready:
            return
        self._sinks_ready = True
        if not trainer.is_global_zero:
            self.observer.set_sinks([])
            return
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        sinks: list[Sink] = [WarningSink(warn=self.config.warn)]
        if tb is not None:
            run_dir = Path(self.log_dir or tb.log_dir)
            sinks.append(TensorBoardSink(lambda: tb.experiment, prefix=self.config.tag_prefix, images=self.config.images, own_writer=False))
        else:
            # fitwatch's own TensorBoard run, versioned as Lightning versions its loggers' folders, so that two
            # runs never share event files, findings or history.
            run_dir = Path(self.log_dir) if self.log_dir is not None else next_version(Path(trainer.default_root_dir) / "fitwatch")
            sinks.append(TensorBoardSink.for_directory(run_dir, prefix=self.config.tag_prefix, images=self.config.images))
        sinks.append(JsonlSink(run_dir, findings_file=self.config.findings_file))
        # Every other logger of the Trainer (CSV, MLflow, W&B, ...) gets the same numbers under the same names.
        sinks += logger_sinks(trainer.loggers, skip=[tb] if tb is not None else [], images=self.config.images,
                              tag_prefix=self.config.tag_prefix)
        self.run_dir = run_dir
        self.observer.set_sinks(sinks)
        logging.getLogger("fitwatch").info("fitwatch: writing to %s", run_dir)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._setup_sinks(trainer)
        self._last_step = trainer.global_step
        max_steps = trainer.estimated_stepping_batches
        self.observer.fit_start(
            pl_module,
            trainer.optimizers,
            step=trainer.global_step,
            epoch=trainer.current_epoch,
            max_steps=int(max_steps) if max_steps != float("inf") else None,
            pretrained=looks_pretrained(pl_module),
            log_every_n_steps=trainer.log_every_n_steps,
        )
        train_set = _dataset_of(trainer.train_dataloader)
        if self.config.data_checks.mislabels:
            self.observer.track_margins(_length(train_set))
        if trainer.is_global_zero:
            self.observer.fingerprint(self.run_dir, model=pl_module, tokenizer=getattr(pl_module, "tokenizer", None),
                                      train_dataset=train_set, val_dataset=_dataset_of(trainer.val_dataloaders), step=trainer.global_step,
                                      training=_training_arguments(trainer))
        self._check_data(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._setup_sinks(trainer)
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._check_data(trainer)  # the validation set may first be known now (no sanity check)

    def _check_data(self, trainer: pl.Trainer) -> None:
        val_loader = trainer.val_dataloaders
        if self._data_checked or val_loader is None:
            return
        self._data_checked = True
        val_set = _dataset_of(val_loader)
        in_order = trainer.world_size == 1 and isinstance(getattr(_first(val_loader), "sampler", None), SequentialSampler)
        if self.describe is not None and val_set is not None:
            describe = self.describe
            self.observer.describe = lambda ref: describe(val_set[ref])
        self.observer.check_data(_dataset_of(trainer.train_dataloader), val_set, step=trainer.global_step,
                                 epoch=trainer.current_epoch, val_in_order=in_order)

    # ------------------------------------------------------------------ training
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        pair = self._extract(batch, outputs, "training_step")
        loss = outputs.get("loss") if isinstance(outputs, (dict, Mapping)) else outputs if isinstance(outputs, Tensor) else None
        accumulate = trainer.accumulate_grad_batches
        if accumulate > 1 and isinstance(loss, Tensor) and pl_module.automatic_optimization:
            # Lightning hands the callback the loss it backpropagated, divided by the accumulation factor.
            loss = loss.detach() * accumulate
        observer = self.observer
        if pair is None:
            observer.train_batch(None, None, loss, sample_ids=_sample_ids(batch) if self.config.data_checks.mislabels else None)
        else:
            observer.train_batch(pair[0], pair[1], loss, sample_ids=_sample_ids(batch) if self.config.data_checks.mislabels else None)
        if not self._announced and "training_step" in self._sources:
            self._announce(trainer)
        step = trainer.global_step
        if step != self._last_step:  # an optimizer step happened in this batch
            self._last_step = step
            observer.after_optimizer_step(pl_module, step, trainer.current_epoch)
            if self.config.stop_on and observer.is_logging_step(step - 1):
                # A per-step finding (divergence) stops the run at the logging step that raised it, not at the
                # next evaluation; the decision is reduced across ranks, at steps every rank reaches.
                self._maybe_stop(trainer)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        optimizers = trainer.optimizers
        if len(optimizers) > 1:
            inner = getattr(optimizer, "optimizer", optimizer)  # LightningOptimizer wraps the torch one
            self.observer.before_optimizer_step(pl_module, optimizers, trainer.global_step, optimizer=inner,
                                                batch_start=self._last_step)
        else:
            # The optimizer steps completed so far, as on_train_batch_end last saw them (set at on_train_start): the
            # trainer's global_step walks five of Lightning's loop properties, at every step.
            step = self._last_step if self._last_step >= 0 else trainer.global_step
            self.observer.before_optimizer_step(pl_module, optimizers, step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # With a validation loop, an evaluation's training window is every batch since the previous one, whatever
        # the cadence (every few epochs, or every N steps across epoch ends); only a fit without validation logs
        # its training metrics per epoch.
        if not _validates(trainer):
            self.observer.end_train_epoch(step=trainer.global_step, epoch=trainer.current_epoch)

    # ------------------------------------------------------------------ validation
    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking:
            return
        self._eval_batch(trainer, outputs, batch, dataloader_idx, "validation_step")

    def _eval_batch(self, trainer: pl.Trainer, outputs: Any, batch: Any, dataloader_idx: int, where: str) -> None:
        split = _split(trainer, dataloader_idx)
        if split not in self._splits:
            self._splits.append(split)
        pair = self._extract(batch, outputs, where)
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs if isinstance(outputs, Tensor) else None
        if pair is not None:
            self.observer.eval_batch(*pair, loss, split=split)
        elif isinstance(loss, Tensor):
            self.observer.eval_batch(None, None, loss, split=split)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "fit" and not self.observer.has_evaluation():
            # No logits and no loss from validation_step: the metrics the module logs are aggregated after the
            # epoch-end hooks, so this evaluation is read in on_validation_end (as EarlyStopping reads them).
            self._logged_pending = True
            return
        self._end_evaluations(trainer)
        self._maybe_stop(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._logged_pending or trainer.sanity_checking:
            return
        self._logged_pending = False
        logged = map_logged(trainer.callback_metrics, self.config.metrics)
        if logged.get("val"):
            self._sources.setdefault("logged", ", ".join(sorted(f"{m}/{s}" for s, ms in logged.items() for m in ms)))
        self._end_evaluations(trainer, logged=logged)
        self._maybe_stop(trainer)

    def _maybe_stop(self, trainer: pl.Trainer) -> None:
        if trainer.state.fn == "fit" and self.config.stop_on:
            should_stop = trainer.strategy.reduce_boolean_decision(self.observer.monitor.should_stop, all=False)
            trainer.should_stop = trainer.should_stop or should_stop

    def _announce(self, trainer: pl.Trainer) -> None:
        """Say once what this run is watched from, and the one change that would give the rest."""
        if self._announced:
            return
        self._announced = True
        source = self._sources.get("training_step")
        task = self.observer.task
        base = "the training loss, learning rates and optimizer state per group, gradient/weight norms, update ratios and the model set-up"
        if source in ("outputs", "forward"):
            how = "the step outputs" if source == "outputs" else "the module's forward output (captured, nothing to change)"
            text = (f"fitwatch is watching this run from its logits ({task}, from {how}): per-class, calibration and "
                    f"train-validation gaps, and {base}.")
        else:
            text = (f"fitwatch is watching {base}; at each validation, the metrics the module logs (val_loss, "
                    f"val_acc, ... or `metrics=`) feed the overfitting, gap and plateau checks. For per-class and "
                    f"calibration metrics too, {_RETURN_HINT}.")
        self.observer.announce(text, trainer.global_step)
        if trainer.is_global_zero:
            from lightning.pytorch.utilities import rank_zero_info

            rank_zero_info(text)

    def _end_evaluations(self, trainer: pl.Trainer, logged: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """Close every evaluation set seen since the last call: the fit's primary validation (``val``) feeds the
        detectors; other dataloaders, ``validate()`` outside fit and ``test()`` get their own series."""
        fitting = trainer.state.fn == "fit"
        splits, self._splits = self._splits or [_split(trainer, 0)], []
        if fitting and "val" not in splits:
            splits.insert(0, "val")  # the primary evaluation runs (and reads its window) even if it saw no batch
        for split in sorted(splits, key=lambda name: name != "val"):
            self.observer.end_evaluation(step=trainer.global_step, epoch=trainer.current_epoch, training=fitting,
                                         split=split, logged=logged if split == "val" else None)
        if fitting:
            # fitwatch's headline numbers where EarlyStopping and ModelCheckpoint look (every rank computed them).
            import torch

            for name, value in self.observer.headline.items():
                trainer.callback_metrics[name] = torch.tensor(value)

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._eval_batch(trainer, outputs, batch, dataloader_idx, "test_step")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._setup_sinks(trainer)
        self._end_evaluations(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._setup_sinks(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.observer.end()  # flush what was seen and close the writers; the exception goes on

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.observer.end(step=trainer.global_step, epoch=trainer.current_epoch)

    # ------------------------------------------------------------------ extraction
    def _extract(self, batch: Any, outputs: Any, where: str) -> tuple[Tensor, Tensor] | None:
        """Logits and target of one batch; set-up errors raise on the first batch, later problems warn once."""
        if self.extract is None and type(outputs) is dict and where in self._checked:
            # The usual step output after the first batch: {"loss": ..., "logits": ...} (a plain dict).
            logits = outputs.get("logits")
            if isinstance(logits, Tensor):
                target = _target_of(batch)
                return None if target is None else (logits, target)
        first = where not in self._checked
        self._checked.add(where)
        try:
            pair = (self.extract or default_extract)(batch, outputs)
        except TypeError:
            if first:
                raise
            pair = None
        except Exception as err:  # noqa: BLE001  (a user extract that raises skips the batch, never the run)
            self.observer.warn_once(
                f"extract-raised-{where}",
                f"fitwatch: `extract` raised on a {where} batch; that batch is skipped (warned once).\n"
                + "".join(traceback.format_exception(type(err), err, err.__traceback__)),
            )
            return None
        if pair is None:
            pair = self._captured(batch) if self.extract is None else None
            self._sources.setdefault(where, "forward" if pair is not None else "none")
            return pair
        self._sources.setdefault(where, "outputs")
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(t, Tensor) for t in pair)):
            message = f"Expected `extract` to return (logits, target) tensors or None, but got {type(pair).__name__}."
            if first:
                raise TypeError(message)
            self.observer.warn_once(f"extract-type-{where}", f"fitwatch: {message} Batch skipped.")
            return None
        return pair

    def _captured(self, batch: Any) -> tuple[Tensor, Tensor] | None:
        """The module's forward output as logits, when the step ran exactly one forward and the batch carries a
        target of the same length: never a guess that could pair the wrong tensors."""
        logits, target = self._forward_output, _target_of(batch)
        if self._forwards != 1 or logits is None or target is None or logits.ndim == 0 or target.ndim == 0:
            return None
        return (logits, target) if logits.shape[0] == target.shape[0] else None

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {"observer": self.observer.state_dict(), "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.observer.load_state_dict(state_dict.get("observer", {}))
        self._last_step = state_dict.get("last_step", self._last_step)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_trainer"] = None
        state["_hook"] = None
        state["_forward_output"] = None
        state["_sinks_ready"] = False  # writers and files are reopened where the copy runs
        state["_data_checked"] = False
        return state
