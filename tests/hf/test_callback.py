"""FitWatchCallback in a real transformers Trainer with tiny BERTs built from configs."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support
from transformers import Trainer

from fitwatch.hf import FitWatchCallback
from tests.references import reference_ece

from .tiny import SequenceData, TokenData, args, sequence_model, token_model


def _predict(model, dataset):
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=64)
    logits, labels = [], []
    with torch.no_grad():
        for batch in loader:
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logits.append(out.logits)
            labels.append(batch["labels"])
    return torch.cat(logits), torch.cat(labels)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    cb = FitWatchCallback()
    model = sequence_model(3, id2label={0: "billing", 1: "tech", 2: "account"}, label2id={"billing": 0, "tech": 1, "account": 2})
    val = SequenceData(96, seed=1)
    trainer = Trainer(model=model, args=args(tmp), train_dataset=SequenceData(192, seed=0), eval_dataset=val, callbacks=[cb])
    trainer.train()
    return cb, trainer, val


def test_metrics_equal_a_manual_evaluation_of_the_same_model(trained, event_scalars):
    cb, trainer, val = trained
    logits, labels = _predict(trainer.model, val)
    probs = torch.softmax(logits, 1)
    preds = probs.argmax(1).numpy()
    y = labels.numpy()
    p, r, f, s = precision_recall_fscore_support(y, preds, labels=[0, 1, 2], zero_division=0)
    events = event_scalars(cb.run_dir)
    last = lambda tag: events[tag][-1][1]  # noqa: E731
    for i, name in enumerate(["billing", "tech", "account"]):  # names from model.config.id2label
        assert last(f"per_class/precision/{name}/val") == pytest.approx(p[i], abs=1e-5)
        assert last(f"per_class/recall/{name}/val") == pytest.approx(r[i], abs=1e-5)
        assert last(f"per_class/f1/{name}/val") == pytest.approx(f[i], abs=1e-5)
        assert last(f"per_class/support/{name}/val") == s[i]
    conf = probs.max(1).values.double().numpy()
    assert last("calibration/ece/val") == pytest.approx(reference_ece(conf, (preds == y).astype(float)), abs=1e-5)
    assert last("performance/accuracy/val") == pytest.approx((preds == y).mean(), abs=1e-6)


def test_writes_into_the_trainers_tensorboard_run(trained, event_tags):
    cb, trainer, _ = trained
    tags = event_tags(cb.run_dir)
    assert {"train/loss", "eval/loss"} <= tags["scalars"]  # the Trainer's own TensorBoardCallback, same dir
    assert {"performance/accuracy/val", "performance/accuracy/train", "gap/loss", "calibration/ece/val",
            "optimizer/lr/group0", "optimizer/lr/group1", "optimizer/grad_norm", "weights/norm"} <= tags["scalars"]
    assert {"per_class/confusion_matrix/val", "calibration/reliability_diagram/val"} <= tags["images"]
    assert cb.run_dir.parent == trainer.args.output_dir and False or cb.run_dir.parent.name == "runs"


def test_learning_rate_per_group_at_the_step_it_was_applied(trained):
    """Linear decay without warmup: optimizer step k (0-based) applies lr0 * (1 - k / max_steps). The
    Trainer itself logs the *next* step's value (transformers #35942); fitwatch logs the applied one."""
    cb, trainer, _ = trained
    max_steps = trainer.state.max_steps
    lr0 = trainer.args.learning_rate
    points = cb.history["optimizer/lr/group0"]
    assert len(points) == max_steps // 2
    for x, lr in points:
        assert lr == pytest.approx(lr0 * (1 - (x - 1) / max_steps)), x
    assert [v for _, v in cb.history["optimizer/weight_decay/group1"]] == [0.0] * len(points)


def test_grad_norm_is_the_trainers_pre_clip_norm(trained):
    cb, trainer, _ = trained
    logged = {h["step"]: h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h}
    ours = dict(cb.history["optimizer/grad_norm"])
    assert logged and ours.keys() == logged.keys()
    for step, value in logged.items():
        assert ours[step] == pytest.approx(value, rel=1e-6)


def test_token_classification_skips_ignore_index(tmp_path):
    cb = FitWatchCallback(num_classes=4)
    model = token_model(4)
    val = TokenData(40, seed=1)
    trainer = Trainer(model=model, args=args(tmp_path, num_train_epochs=1), train_dataset=TokenData(64, seed=0), eval_dataset=val, callbacks=[cb])
    trainer.train()
    logits, labels = _predict(trainer.model, val)
    keep = labels.reshape(-1) != -100
    y = labels.reshape(-1)[keep].numpy()
    preds = logits.reshape(-1, 4).argmax(1)[keep].numpy()
    _, r, _, s = precision_recall_fscore_support(y, preds, labels=[0, 1, 2, 3], zero_division=0)
    recall = [cb.history[f"per_class/recall/{i}/val"][-1][1] for i in range(4)]
    np.testing.assert_allclose(recall, r, atol=1e-6)
    assert cb.history["health/samples/val"][-1][1] == keep.sum().item() == s.sum()


def test_multilabel_problem_type(tmp_path):
    cb = FitWatchCallback()
    model = sequence_model(3, problem_type="multi_label_classification")
    val = SequenceData(64, seed=1, multilabel=True)
    trainer = Trainer(model=model, args=args(tmp_path, num_train_epochs=1), train_dataset=SequenceData(64, seed=0, multilabel=True), eval_dataset=val, callbacks=[cb])
    trainer.train()
    logits, labels = _predict(trainer.model, val)
    _, _, f, _ = precision_recall_fscore_support(labels.numpy(), (logits > 0).numpy(), zero_division=0)
    got = [cb.history[f"per_class/f1/LABEL_{i}/val"][-1][1] for i in range(3)]  # names from config.id2label
    np.testing.assert_allclose(got, f, atol=1e-6)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    cb = FitWatchCallback(log_every_n_steps=1)
    trainer = Trainer(model=sequence_model(), args=args(tmp_path, num_train_epochs=1, gradient_accumulation_steps=3, per_device_train_batch_size=8),
                      train_dataset=SequenceData(96, seed=0), eval_dataset=SequenceData(32, seed=1), callbacks=[cb])
    trainer.train()
    steps = [x for x, _ in cb.history["performance/step_loss/train"]]
    assert steps == list(range(1, trainer.state.global_step + 1)) and trainer.state.global_step == 4
    assert cb.history["health/samples/train"][-1][1] == 96


def test_own_writer_without_report_to(tmp_path, event_tags):
    cb = FitWatchCallback()
    trainer = Trainer(model=sequence_model(), args=args(tmp_path, num_train_epochs=1, report_to=[]),
                      train_dataset=SequenceData(64, seed=0), eval_dataset=SequenceData(32, seed=1), callbacks=[cb])
    trainer.train()
    assert cb.run_dir == tmp_path / "runs" / "fitwatch" / "version_0"
    assert "performance/accuracy/val" in event_tags(cb.run_dir)["scalars"]


def on_finding_for_test(finding):  # module-level, so its path survives a resume
    return None


def test_resume_restores_state_through_exportable_state(tmp_path):
    train, val = SequenceData(96, seed=0), SequenceData(32, seed=1)
    first = FitWatchCallback(class_names=["a", "b", "c"], on_finding=on_finding_for_test)
    t1 = Trainer(model=sequence_model(), args=args(tmp_path, num_train_epochs=2, save_strategy="epoch", restore_callback_states_from_checkpoint=True),
                 train_dataset=train, eval_dataset=val, callbacks=[first])
    t1.train()
    saved = json.loads((tmp_path / "checkpoint-12" / "trainer_state.json").read_text())["stateful_callbacks"]["FitWatchCallback"]
    assert saved["args"]["on_finding"].endswith(":on_finding_for_test")

    second = FitWatchCallback(class_names=["a", "b", "c"])
    t2 = Trainer(model=sequence_model(), args=args(tmp_path, num_train_epochs=3, save_strategy="epoch", restore_callback_states_from_checkpoint=True),
                 train_dataset=train, eval_dataset=val, callbacks=[second])
    t2.train(resume_from_checkpoint=str(tmp_path / "checkpoint-12"))
    restored = next(cb for cb in t2.callback_handler.callbacks if isinstance(cb, FitWatchCallback))
    assert restored.on_finding is on_finding_for_test
    steps = [x for x, _ in restored.history["performance/accuracy/val"]]
    assert steps == [6, 12, 18]
    assert restored.history["performance/accuracy/val"][:2] == first.history["performance/accuracy/val"]


def test_pickles(trained):
    cb = trained[0]
    copy = pickle.loads(pickle.dumps(cb))
    assert copy.history == cb.history
