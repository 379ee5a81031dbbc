"""Faults injected during training, as Lightning callbacks written the way the mistake happens in real code.

Each callback records the global step at which its fault took effect (``onset_step``), so a scenario can
place the fault's onset on the evaluation axis.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from fitwatch import _validation as v

__all__ = ["INJECTIONS", "CorruptsBatch", "ForgetsTrainMode", "ReplacesHead", "build_injection"]


class ForgetsTrainMode(Callback):
    """A probe that scores the model at the end of each training epoch and never switches it back.

    The user's callback calls ``pl_module.eval()`` to get deterministic outputs on a probe batch and
    forgets ``pl_module.train()``. Lightning restores the mode it found before its own validation loop, not
    before the next training epoch, so every epoch after the first trains with dropout off.
    """

    def __init__(self) -> None:
        self.onset_step: int | None = None
        self.probe_accuracy: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.val_dataloaders
        batch = next(iter(loader[0] if isinstance(loader, (list, tuple)) else loader))
        pl_module.eval()
        with torch.no_grad():
            # The network itself, not validation_step: a loss-only module's step returns nothing and logs.
            if isinstance(batch, dict):
                logits, target = pl_module.net(batch["input_ids"], batch["attention_mask"]), batch["labels"]
            else:
                logits, target = pl_module.net(batch[0]), batch[1]
        self.probe_accuracy.append(float((logits.argmax(-1) == target).float().mean()))
        if self.onset_step is None:
            self.onset_step = trainer.global_step + 1  # the next training step runs in eval mode

    def state_dict(self) -> dict[str, Any]:
        return {"onset_step": self.onset_step, "probe_accuracy": list(self.probe_accuracy)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.onset_step = state_dict.get("onset_step")
        self.probe_accuracy = list(state_dict.get("probe_accuracy", []))


class ReplacesHead(Callback):
    """Re-initialises the classification head when training starts, after the optimizer was built.

    A common way to "reset the head between runs": ``configure_optimizers`` already holds the old head's
    parameters, so the new head has ``requires_grad=True`` but is in no param group and never trains.
    """

    def __init__(self) -> None:
        self.onset_step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        old = pl_module.net.head
        pl_module.net.head = nn.Linear(old.in_features, old.out_features).to(old.weight.device)
        self.onset_step = trainer.global_step


class CorruptsBatch(Callback):
    """One training batch carries a NaN feature at ``at`` of training (a record broken upstream, e.g. a
    division by zero in feature engineering), tabular batches only.

    Args:
        at: Share of the planned optimizer steps after which the corrupted batch arrives.
    """

    def __init__(self, at: float = 0.5) -> None:
        self.at = v.check_fraction("at", at)
        self.batch_step: int | None = None
        self.onset_step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.batch_step is None:
            self.batch_step = int(self.at * trainer.estimated_stepping_batches)
            self.onset_step = self.batch_step + 1  # the optimizer step that applies the corrupted batch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.batch_step and not isinstance(batch, dict):
            batch[0][0, 0] = float("nan")  # the collated batch is a fresh tensor: the dataset stays intact

    def state_dict(self) -> dict[str, Any]:
        return {"batch_step": self.batch_step, "onset_step": self.onset_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batch_step = state_dict.get("batch_step", self.batch_step)
        self.onset_step = state_dict.get("onset_step", self.onset_step)


#: Injections by the name scenarios use.
INJECTIONS = {
    "forgets_train_mode": ForgetsTrainMode,
    "replaces_head": ReplacesHead,
    "corrupts_batch": CorruptsBatch,
}


def build_injection(name: str, **kwargs: Any) -> Callback:
    """The callback of injection ``name`` (a key of :data:`INJECTIONS`).

    Raises:
        ValueError: If ``name`` is unknown.
    """
    v.check_choice("injection", name, tuple(INJECTIONS))
    return INJECTIONS[name](**kwargs)
