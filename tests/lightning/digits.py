"""A small real Lightning set-up on scikit-learn's digits, shared by the adapter tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

DIGITS = load_digits()
X = torch.tensor(DIGITS.data / 16.0, dtype=torch.float32)
Y = torch.tensor(DIGITS.target)
CLASS_NAMES = [str(n) for n in DIGITS.target_names]


def loaders(n_train: int = 1200, batch_size: int = 32, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(Y), generator=g)
    tr, va = perm[:n_train], perm[n_train:]
    train = DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(X[va], Y[va]), batch_size=128)
    return train, val


class DigitsMLP(pl.LightningModule):
    """Returns ``{"loss", "logits"}`` from both steps, as FitWatch's default extraction expects."""

    def __init__(self, lr: float = 1e-3, two_groups: bool = False, scheduler: bool = False, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 10))
        self.lr, self.two_groups, self.scheduler = lr, two_groups, scheduler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

    def configure_optimizers(self):
        if self.two_groups:
            groups = [
                {"params": self.net[0].parameters(), "name": "body", "weight_decay": 0.01},
                {"params": self.net[3].parameters(), "name": "head", "lr": self.lr * 10, "weight_decay": 0.0},
            ]
        else:
            groups = self.parameters()
        opt = torch.optim.AdamW(groups, lr=self.lr)
        if not self.scheduler:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def trainer(tmp_path, callbacks, *, max_epochs: int = 2, logger: bool = True, **kwargs) -> pl.Trainer:
    from lightning.pytorch.loggers import TensorBoardLogger

    return pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=max_epochs,
        logger=TensorBoardLogger(tmp_path, name="tb") if logger else False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=kwargs.pop("enable_checkpointing", False),
        accelerator="cpu",
        deterministic=True,
        **kwargs,
    )
