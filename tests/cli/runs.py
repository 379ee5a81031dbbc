"""Real training runs that write TensorBoard event files: a plain HF Trainer, plain Lightning, and Lightning
with fitwatch's callback. Small enough for 2 CPU cores (a few seconds each)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..lightning.digits import X, Y


def hf_run(tmp_path: Path, *, overfit: bool, callbacks: list | None = None) -> Path:
    """A plain HF ``Trainer`` run (tiny BERT from a config, ``report_to=["tensorboard"]``, accuracy and macro
    F1 from ``compute_metrics``); returns its TensorBoard run directory.

    ``overfit``: 32 training samples (15% of labels flipped), 20 epochs at a constant 3e-3, evaluated every
    epoch: validation loss bottoms out near epoch 9 and then nearly doubles. Otherwise 256 samples, 2 epochs
    with warmup and linear decay, evaluated every 2 steps: validation loss falls throughout.
    """
    from sklearn.metrics import f1_score
    from transformers import Trainer

    from ..hf.tiny import SequenceData, args, sequence_model

    def metrics(prediction):
        predicted, labels = prediction.predictions.argmax(-1), prediction.label_ids
        return {
            "accuracy": float((predicted == labels).mean()),
            "f1": float(f1_score(labels, predicted, average="macro")),
        }

    if overfit:
        settings = {
            "num_train_epochs": 20,
            "learning_rate": 3e-3,
            "lr_scheduler_type": "constant",
            "logging_steps": 1,
        }
        train, val = SequenceData(32, seed=0), SequenceData(64, seed=1)
    else:
        settings = {
            "num_train_epochs": 2,
            "learning_rate": 3e-3,
            "warmup_steps": 2,
            "logging_steps": 2,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "per_device_train_batch_size": 32,
        }
        train, val = SequenceData(256, seed=0), SequenceData(96, seed=1)
    trainer = Trainer(
        model=sequence_model(3),
        args=args(tmp_path, **settings),
        train_dataset=train,
        eval_dataset=val,
        compute_metrics=metrics,
        callbacks=callbacks,
    )
    trainer.train()
    (run,) = (tmp_path / "runs").iterdir()
    return run


class LoggingMLP(pl.LightningModule):
    """An MLP on digits that logs as most Lightning users do: ``self.log("train_loss")``, ``val_loss``,
    ``val_acc`` and an epoch-level ``train_acc``; returns ``{"loss", "logits"}`` for fitwatch's callback."""

    def __init__(self, lr: float, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("train_loss", loss)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
        return {"loss": loss, "logits": logits}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("val_loss", loss)
        self.log("val_acc", (logits.argmax(1) == y).float().mean())
        return {"loss": loss, "logits": logits}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def lightning_run(tmp_path: Path, *, overfit: bool, callbacks: list | None = None) -> Path:
    """A Lightning run with ``TensorBoardLogger`` and ``LearningRateMonitor``; returns its log directory.

    ``overfit``: 200 digits with 30% of the training labels redrawn at random, 40 epochs of Adam at 1e-2: the
    model memorises the noise and validation loss climbs from epoch 9 on. Otherwise 1200 clean digits, 4
    epochs at 1e-3.
    """
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import TensorBoardLogger

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(Y), generator=g)
    train_idx, val_idx = order[: 200 if overfit else 1200], order[1200:]
    labels = Y[train_idx].clone()
    if overfit:
        noisy = torch.rand(len(labels), generator=g) < 0.3
        labels[noisy] = torch.randint(0, 10, (int(noisy.sum()),), generator=g)
    train = DataLoader(
        TensorDataset(X[train_idx], labels),
        batch_size=50,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(TensorDataset(X[val_idx], Y[val_idx]), batch_size=256)
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=40 if overfit else 4,
        logger=logger,
        callbacks=[LearningRateMonitor(), *(callbacks or [])],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        deterministic=True,
        log_every_n_steps=1,
    )
    trainer.fit(LoggingMLP(lr=1e-2 if overfit else 1e-3), train, val)
    return Path(logger.log_dir)


def event_values(run: Path, tag: str) -> np.ndarray:
    """One tag's values, read with TensorBoard's ``EventAccumulator`` directly (the reference reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
    accumulator.Reload()
    return np.array([e.value for e in accumulator.Scalars(tag)])
