"""Bad input after the first batch never kills training and is never dropped without a word (issue 17);
stop_on acts at the logging step of a per-step finding."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from fitwatch.lightning import FitWatch
from fitwatch.warnings import FitWatchRuntimeWarning, FitWatchWarning
from tests.lightning.digits import DigitsMLP, loaders, trainer


class WiderAtStep6(DigitsMLP):
    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if batch_idx == 5:  # one batch with an extra logit column (a head swapped mid-run, a bug in a collate)
            out["logits"] = torch.cat([out["logits"], out["logits"][:, :1]], dim=1)
        return out


class ClampedLoss(DigitsMLP):
    """Computes its loss on clamped labels, so only fitwatch sees the bad ones."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return {"loss": nn.functional.cross_entropy(logits, y.clamp(max=9)), "logits": logits}

    validation_step = training_step


def test_a_wider_batch_mid_run_is_skipped_counted_and_warned_once(tmp_path):
    cb = FitWatch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(WiderAtStep6(lr=5e-3), *loaders(n_train=320))
    ours = [str(w.message) for w in record if issubclass(w.category, FitWatchRuntimeWarning)]
    assert len([m for m in ours if "does not fit" in m]) == 1
    assert cb.history["health/skipped_batches/train"][-1][1] == 1
    assert cb.history["health/samples/train"][-1][1] == 320 - 32


def test_out_of_range_training_labels_after_the_first_batch_are_counted_and_warned(tmp_path):
    train, val = loaders(n_train=320)
    x, y = train.dataset.tensors
    y = y.clone()
    y[64:96:2] = 20  # 16 labels out of range, in the third batch (no shuffling)
    bad = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    cb = FitWatch()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer(tmp_path, [cb], max_epochs=1, logger=False).fit(ClampedLoss(lr=5e-3), bad, val)
    ours = [str(w.message) for w in record if issubclass(w.category, FitWatchRuntimeWarning)]
    assert any("16 train targets were outside the 10 classes" in m for m in ours), ours
    assert cb.history["health/invalid_targets/train"][-1][1] == 16


def test_out_of_range_validation_labels_do_not_kill_the_first_validation(tmp_path):
    train, val = loaders(n_train=320)
    x, y = val.dataset.tensors
    bad = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.where(y == 3, torch.full_like(y, 12), y)), batch_size=128)

    cb = FitWatch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWatchWarning)
        trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(ClampedLoss(lr=5e-3), train, bad)
    assert len(cb.history["performance/accuracy/val"]) == 2
    assert cb.history["health/invalid_targets/val"][-1][1] == int((y == 3).sum())


class Diverges(DigitsMLP):
    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if self.global_step >= 4:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_stop_on_acts_at_the_logging_step_of_a_divergence(tmp_path):
    cb = FitWatch(stop_on="FW-DIVERGENCE", log_every_n_steps=5)
    t = trainer(tmp_path, [cb], max_epochs=5, logger=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(Diverges(lr=5e-3), *loaders(n_train=640))  # 20 steps an epoch
    assert "FW-DIVERGENCE" in {f.code for f in cb.findings}
    assert t.global_step == 5  # stopped at the logging step that saw it, not at the end of epoch 1 (step 20)
