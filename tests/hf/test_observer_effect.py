"""Watching never changes the training: bit-identical weights and losses with and without FitWatchCallback."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer

from fitwatch.hf import FitWatchCallback

from .tiny import SequenceData, args, sequence_model

EVERYTHING_ON = {"log_every_n_steps": 1, "diag_every_n_steps": 1, "images": True, "data_checks": {"confident_mistakes": 5}}


def _train(tmp_path, callbacks):
    model = sequence_model(3, seed=3)
    trainer = Trainer(
        model=model, args=args(tmp_path, num_train_epochs=2, logging_steps=1, warmup_steps=2, weight_decay=0.01),
        train_dataset=SequenceData(96, seed=0), eval_dataset=SequenceData(48, seed=1), callbacks=callbacks,
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {k: v.clone() for k, v in model.state_dict().items()}, losses


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # findings are not the subject here
@pytest.mark.parametrize("settings", [{}, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_weights_and_losses_are_bit_identical(tmp_path, settings):
    ref_weights, ref_losses = _train(tmp_path / "plain", [])
    cb = FitWatchCallback(config=settings)
    weights, losses = _train(tmp_path / "watched", [cb])
    assert cb.history["performance/accuracy/val"] and cb.history["optimizer/lr/group0"]  # fitwatch did run
    assert losses == ref_losses and len(losses) == 12
    for name in weights:
        assert torch.equal(weights[name], ref_weights[name]), name
