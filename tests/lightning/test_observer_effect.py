"""Watching never changes the training: bit-identical weights and losses with and without FitWatch."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fitwatch.lightning import FitWatch

from .digits import CLASS_NAMES, X, Y, DigitsMLP

EVERYTHING_ON = {
    "log_every_n_steps": 1,
    "diag_every_n_steps": 1,
    "images": True,
    "data_checks": {"confident_mistakes": 5, "mislabels": False, "max_samples": 200},
}


class Augmented(Dataset):
    """Draws from the global RNG on every read, as random augmentation does."""

    def __init__(self, idx):
        self.idx = idx

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        j = self.idx[i]
        return X[j] + 0.05 * torch.randn(64), Y[j]


class LossRecorder(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


def _fit(tmp_path, callbacks):
    pl.seed_everything(7, workers=True)
    model = DigitsMLP(two_groups=True, scheduler=True, dropout=0.2)
    train = DataLoader(Augmented(torch.arange(0, 320)), batch_size=32, shuffle=True)
    val = DataLoader(Augmented(torch.arange(1400, 1560)), batch_size=64)
    recorder = LossRecorder()
    trainer = pl.Trainer(
        default_root_dir=tmp_path, max_epochs=2, logger=False, callbacks=[recorder, *callbacks], enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu", deterministic=True, num_sanity_val_steps=2,
    )
    trainer.fit(model, train, val)
    return model.state_dict(), recorder.losses


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # findings are not the subject here
@pytest.mark.parametrize("settings", [{}, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_weights_and_losses_are_bit_identical(tmp_path, settings):
    ref_weights, ref_losses = _fit(tmp_path / "plain", [])
    cb = FitWatch(class_names=CLASS_NAMES, config={"detectors": {}, **settings})
    weights, losses = _fit(tmp_path / "watched", [cb])
    assert cb.history["performance/accuracy/val"] and cb.history["per_class/recall/0/train"]  # fitwatch did run
    if settings:
        assert len(cb.history["weights/update_ratio/net.0"]) == 20 and len(cb.history["optimizer/lr/body"]) == 20
    assert losses == ref_losses
    assert weights.keys() == ref_weights.keys()
    for name in weights:
        assert torch.equal(weights[name], ref_weights[name]), name
