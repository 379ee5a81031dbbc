"""HF Trainer loop shapes (issue 16): several evaluation sets, eval_on_start, evaluate() after training, of()."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer

from fitwatch.hf import FitWatchCallback

from .tiny import SequenceData, args, sequence_model


def accuracy_of(model, dataset) -> float:
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=64)
    correct = 0
    with torch.no_grad():
        for batch in loader:
            pred = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
            correct += int((pred == batch["labels"]).sum())
    return correct / len(dataset)


def test_several_evaluation_sets_eval_on_start_and_evaluate_after(tmp_path):
    cb = FitWatchCallback(stop_on=["critical"])
    model = sequence_model(3)
    main, shifted = SequenceData(64, seed=1), SequenceData(48, seed=2)
    trainer = Trainer(model=model, args=args(tmp_path, eval_on_start=True), train_dataset=SequenceData(192, seed=0),
                      eval_dataset={"main": main, "shifted": shifted}, callbacks=[cb])
    trainer.train()
    val = cb.history["performance/accuracy/val"]
    other = cb.history["performance/accuracy/val_shifted"]
    assert len(val) == len(other) == int(trainer.args.num_train_epochs)  # one record per evaluation, not two
    assert [s for s, _ in cb.history["performance/accuracy/val_start"]] == [0]
    assert [s for s, _ in cb.history["performance/accuracy/val_start_shifted"]] == [0]
    assert val[-1][1] == pytest.approx(accuracy_of(model, main))
    assert other[-1][1] == pytest.approx(accuracy_of(model, shifted))
    assert "FW-FAILED-RUN" not in {f.code for f in cb.findings}
    assert trainer.state.global_step == val[-1][0]  # stop_on=critical did not stop the run
    trainer.evaluate(SequenceData(32, seed=3))
    assert len(cb.history["performance/accuracy/val"]) == len(val)  # evaluate() after training: its own series
    assert len(cb.history["performance/accuracy/eval"]) == 1
    assert FitWatchCallback.of(trainer) is cb


def test_of_names_the_missing_callback():
    class NoCallbacks:
        callback_handler = type("H", (), {"callbacks": []})()

    with pytest.raises(ValueError, match="Expected a Trainer with a FitWatchCallback"):
        FitWatchCallback.of(NoCallbacks())


def test_metric_for_best_model_can_be_a_fitwatch_metric(tmp_path):
    cb = FitWatchCallback()
    trainer = Trainer(model=sequence_model(3), args=args(tmp_path, save_strategy="epoch", metric_for_best_model="fitwatch_val_ece",
                                                          greater_is_better=False, num_train_epochs=3),
                      train_dataset=SequenceData(128, seed=0), eval_dataset=SequenceData(48, seed=1), callbacks=[cb])
    trainer.train()
    eces = [v for _, v in cb.history["calibration/ece/val"]]
    assert trainer.state.best_metric == pytest.approx(min(eces))
