"""fitwatch on a small Lightning run, driven by a LightningCLI config.

A multilayer perceptron on scikit-learn's 8x8 digits (bundled with scikit-learn: nothing is downloaded),
with the ``FitWatch`` callback registered in ``configs/lightning_digits.yaml``::

    python examples/lightning_digits.py fit --config configs/lightning_digits.yaml
    tensorboard --logdir runs/lightning_digits

Any setting can be overridden on the command line, for example a shorter run with the cheap preset::

    python examples/lightning_digits.py fit --config configs/lightning_digits.yaml \\
        --trainer.max_epochs 3 \\
        --trainer.callbacks.init_args.config configs/fitwatch/minimal.yaml

The module returns ``{"loss": ..., "logits": ...}`` from its steps, which is all ``FitWatch`` needs to
read predictions; batches are ``(x, y, sample_id)`` so the mislabel tracker of the ``full`` preset can
follow each training sample. The module also logs its own ``val_acc``: the number ``FitWatch`` writes as
``performance/accuracy/val`` must equal it (``tests/examples`` checks that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LightningCLI
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from fitwatch.datasets import digits

__all__ = ["DigitsClassifier", "DigitsDataModule", "main"]

# Parameters whose name ends with one of these get no weight decay: decaying biases and normalization
# gains only shrinks them toward zero (Loshchilov & Hutter 2019 decouple decay for the weight matrices).
_NO_DECAY_SUFFIXES = ("bias", "norm.weight")


class DigitsDataModule(pl.LightningDataModule):
    """scikit-learn's digits, standardized with the training statistics and split stratified by class.

    Args:
        batch_size: Training batch size; validation uses batches of 256.
        val_fraction: Share of the 1797 samples held out for validation.
        seed: Seed of the split and of the training shuffle.
    """

    def __init__(self, batch_size: int = 64, val_fraction: float = 0.25, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.class_names: tuple[str, ...] = ()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        split = digits(val_fraction=self.val_fraction, seed=self.seed)
        n_train = len(split.y_train)
        # A third element of integer ids lets FitWatch's mislabel tracker follow each training sample.
        self.train_set = TensorDataset(split.x_train, split.y_train, torch.arange(n_train))
        self.val_set = TensorDataset(
            split.x_val, split.y_val, torch.arange(n_train, n_train + len(split.y_val))
        )
        self.class_names = split.class_names

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return DataLoader(self.val_set, batch_size=256)


class DigitsClassifier(pl.LightningModule):
    """A two-layer perceptron trained with AdamW, linear warmup and cosine decay.

    Args:
        hidden: Width of the hidden layer.
        dropout: Dropout after the hidden layer.
        lr: Peak learning rate.
        weight_decay: AdamW decay of the weight matrices (biases and norm gains get none).
        warmup_fraction: Share of the optimizer steps spent warming the learning rate up from zero.
    """

    def __init__(
        self,
        hidden: int = 128,
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.05,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y, _ = batch
        logits = self(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._step(batch)
        self.log("train_loss", out["loss"], prog_bar=True)
        return out

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._step(batch)
        y = batch[1]
        # Lightning averages epoch-level values weighted by batch_size, so this is the accuracy over the set.
        self.log("val_loss", out["loss"], batch_size=len(y))
        self.log("val_acc", (out["logits"].argmax(1) == y).float().mean(), batch_size=len(y))
        return out

    def configure_optimizers(self) -> dict[str, object]:
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            (no_decay if name.endswith(_NO_DECAY_SUFFIXES) or param.ndim < 2 else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay, "name": "decay"},
                {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
            ],
            lr=self.hparams.lr,
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = max(1, round(self.hparams.warmup_fraction * total))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def main(args: Sequence[str] | None = None, *, run: bool = True) -> LightningCLI:
    """The LightningCLI on ``args`` (default: the command line).

    With ``run=True`` the first argument is a subcommand (``fit``, ``validate``, ...) and it runs; with
    ``run=False`` the model, data module and trainer are only built from the config, as for a notebook.
    """
    return LightningCLI(DigitsClassifier, DigitsDataModule, seed_everything_default=0, args=args, run=run)


if __name__ == "__main__":
    main()
