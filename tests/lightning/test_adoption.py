"""Zero-change adoption (issue 13): a LightningModule written without fitwatch in mind, watched as it is."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from fitwatch.lightning import FitWatch
from fitwatch.warnings import FitWatchWarning

from .digits import X, Y, DigitsMLP, loaders, trainer


class Typical(pl.LightningModule):
    """What most modules look like: `self.net(x)`, the loss returned alone, `self.log("val_loss")`."""

    def __init__(self, hidden: int = 64, lr: float = 1e-3, weight_decay: float = 0.01, dropout: float = 0.1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10))
        self.lr, self.weight_decay = lr, weight_decay

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def small_loaders(n_train: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(Y), generator=g)
    tr, va = perm[:n_train], perm[1200:]
    ds = torch.utils.data.TensorDataset
    return (torch.utils.data.DataLoader(ds(X[tr], Y[tr]), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed)),
            torch.utils.data.DataLoader(ds(X[va], Y[va]), batch_size=256))


def test_an_unchanged_loss_only_module_that_overfits_gets_fw_overfit(tmp_path):
    train, val = small_loaders(n_train=48)
    module = Typical(hidden=512, lr=1e-2, weight_decay=0.0, dropout=0.0)  # memorises 48 samples
    cb = FitWatch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWatchWarning)
        trainer(tmp_path, [cb], max_epochs=60, logger=False).fit(module, train, val)
    val_loss = [v for _, v in cb.history["performance/loss/val"]]
    assert len(val_loss) == 60
    assert min(val_loss) < 0.8 * val_loss[-1]  # the run did overfit: validation loss rose from its best
    assert "FW-OVERFIT" in {f.code for f in cb.findings}
    assert not any(k.startswith(("per_class/", "calibration/")) for k in cb.history)  # nothing invented


def test_an_unchanged_healthy_module_gets_no_warning(tmp_path):
    train, val = loaders(n_train=1200, batch_size=32)
    cb = FitWatch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer(tmp_path, [cb], max_epochs=6, logger=False).fit(Typical(lr=3e-3), train, val)
    ours = [str(w.message) for w in record if issubclass(w.category, FitWatchWarning)]
    assert not ours, ours
    assert len(cb.history["performance/accuracy/val"]) == 6  # read from the module's own val_acc


def test_forward_capture_equals_returning_logits(tmp_path):
    class CallsSelf(DigitsMLP):
        """Calls `self(x)` and returns only the loss: the forward hook sees the logits."""

        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx)["loss"]

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    captured, returned = FitWatch(), FitWatch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWatchWarning)  # the same findings either way; the numbers are the point
        torch.manual_seed(0)
        trainer(tmp_path / "a", [captured], max_epochs=2, logger=False).fit(CallsSelf(lr=5e-3), *loaders(n_train=256))
        torch.manual_seed(0)
        trainer(tmp_path / "b", [returned], max_epochs=2, logger=False).fit(DigitsMLP(lr=5e-3), *loaders(n_train=256))
    for key in ("per_class/f1/3/val", "per_class/recall/7/train", "calibration/ece/val", "performance/accuracy/val"):
        assert [s for s, _ in captured.history[key]] == [s for s, _ in returned.history[key]], key
        assert [v for _, v in captured.history[key]] == pytest.approx([v for _, v in returned.history[key]]), key


def test_forward_output_of_another_length_is_never_paired(tmp_path):
    class Pooled(DigitsMLP):
        def forward(self, x):
            return self.net(x).mean(0, keepdim=True)  # one row for the whole batch

        def training_step(self, batch, batch_idx):
            x, y = batch
            _ = self(x)
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            return None

    cb = FitWatch()
    trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(Pooled(), *loaders(n_train=128))
    assert not any(k.startswith("per_class/") for k in cb.history)


def test_early_stopping_and_checkpointing_can_watch_fitwatch_metrics(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    train, val = loaders(n_train=320)
    stop = EarlyStopping(monitor="fitwatch_val_ece", patience=100)
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="fitwatch_val_accuracy", mode="max")
    cb = FitWatch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWatchWarning)
        trainer(tmp_path, [stop, best, cb], max_epochs=3, logger=False, enable_checkpointing=True).fit(DigitsMLP(lr=5e-3), train, val)
    eces = [v for _, v in cb.history["calibration/ece/val"]]
    accuracies = [v for _, v in cb.history["performance/accuracy/val"]]
    assert float(stop.best_score) == pytest.approx(min(eces))
    assert float(best.best_model_score) == pytest.approx(max(accuracies))
