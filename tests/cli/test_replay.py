"""Records rebuilt from logged series, checked against numbers computed here; faults replayed to codes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from fitwatch.detect.records import EvalRecord, StepRecord
from fitwatch.report.replay import rebuild_records, replay


def _one(points):
    return {"": list(points)}


def test_training_loss_of_an_evaluation_covers_the_interval_since_the_previous_one():
    rng = np.random.default_rng(0)
    train_steps = np.arange(2, 61, 2)
    train = 2.0 * np.exp(-train_steps / 30) + rng.normal(0, 0.02, len(train_steps))
    evals = [20, 40, 60]
    series = {
        "train_loss": _one(zip(train_steps.tolist(), train.tolist())),
        "val_loss": _one((s, 1.0 + s / 100) for s in evals),
    }
    records = [r for r in rebuild_records(series) if isinstance(r, EvalRecord)]
    expected = [
        train[(train_steps > lo) & (train_steps <= hi)].mean() for lo, hi in [(-1, 20), (20, 40), (40, 60)]
    ]
    assert [r.train["loss"] for r in records] == pytest.approx(expected)
    assert [r.val["loss"] for r in records] == pytest.approx([1.2, 1.4, 1.6])
    assert [r.progress for r in records] == pytest.approx([20 / 60, 40 / 60, 1.0])


def test_sparse_training_loss_is_interpolated_and_an_interval_mean_wins():
    series = {
        "train_loss": _one([(0, 2.0), (20, 1.0), (40, 0.5)]),
        "val_loss": _one([(5, 1.5), (10, 1.4), (50, 1.3)]),
    }
    records = [r for r in rebuild_records(series) if isinstance(r, EvalRecord)]
    # (.., 5] holds step 0; (5, 10] holds nothing: interpolated at 10; (10, 50] holds 20 and 40.
    assert [r.train["loss"] for r in records] == pytest.approx(
        [2.0, float(np.interp(10, [0, 20], [2.0, 1.0])), 0.75]
    )
    series["train_mean_loss"] = _one([(10, 1.7)])
    records = [r for r in rebuild_records(series) if isinstance(r, EvalRecord)]
    assert records[1].train["loss"] == 1.7


def test_other_training_metrics_are_averaged_and_validation_read_at_the_step():
    series = {
        "val_accuracy": _one([(10, 0.5), (20, 0.6)]),
        "train_accuracy": _one([(4, 0.3), (8, 0.4), (12, 0.7), (16, 0.8), (20, 0.9)]),
        "val_ece": _one([(10, 0.05), (20, 0.07)]),
    }
    records = rebuild_records(series)
    assert [r.val for r in records] == [{"accuracy": 0.5, "ece": 0.05}, {"accuracy": 0.6, "ece": 0.07}]
    assert [r.train["accuracy"] for r in records] == pytest.approx([0.35, 0.8])


def test_epochs_lrs_and_step_records():
    series = {
        "train_loss": _one([(2, 1.0), (4, math.nan), (6, 0.8)]),
        "val_loss": _one([(4, 0.9), (6, 0.85)]),
        "epoch_progress": _one([(2, 0.5), (4, 1.0), (6, 1.5)]),
        "lr": {"body": [(2, 1e-3), (6, 5e-4)], "head": [(2, 1e-2), (6, 5e-3)]},
        "grad_norm": _one([(2, 1.5), (4, math.inf), (6, 1.2)]),
        "update_ratio": {"layer.0": [(4, 2e-3)]},
    }
    records = rebuild_records(series)
    assert [(type(r).__name__, r.step) for r in records] == [
        ("StepRecord", 2),
        ("StepRecord", 4),
        ("EvalRecord", 4),
        ("StepRecord", 6),
        ("EvalRecord", 6),
    ]
    step4, eval4 = records[1], records[2]
    assert isinstance(step4, StepRecord) and math.isnan(step4.losses[0])
    assert step4.nonfinite == {"grad": 1} and step4.update_ratios == {"layer.0": 2e-3}
    assert step4.lr == [1e-3, 1e-2] and eval4.lr == [1e-3, 1e-2] and records[4].lr == [5e-4, 5e-3]
    # The HF Trainer's epoch 1.0 is the end of the first epoch, epoch 1 in its own numbering, as its callback
    # counts (0.5 is the first epoch in progress: 1 too; 1.5 the second).
    assert [r.epoch for r in records] == [1, 1, 1, 2, 2]
    # The interval (.., 4] holds a finite and a NaN loss: the finite mean (a diverged interval would be NaN).
    assert eval4.train["loss"] == 1.0


def test_epoch_read_before_the_step_on_fitwatch_runs():
    # Lightning logs `epoch` with the steps done before each batch: at step 40 the first batch of epoch 10.
    series = {"val_loss": _one([(40, 1.0)]), "epoch": _one([(39, 9.0), (40, 10.0)])}
    assert rebuild_records(series)[0].epoch == 10
    assert rebuild_records(series, epoch_before_step=True)[0].epoch == 9


def test_per_class_lists_majority_share_and_prediction_counts():
    # 3 classes, 100 validation samples, support 50/30/20; predictions counted here from a confusion matrix.
    confusion = np.array([[40, 10, 0], [5, 25, 0], [15, 5, 0]])  # rows true, columns predicted
    support, predicted, tp = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    precision = np.divide(tp, predicted, out=np.zeros(3), where=predicted > 0)
    recall = tp / support
    names = ["a", "b", "c"]
    series = {
        "val_samples": _one([(10, 100.0)]),
        "class_precision": {n: [(10, float(p))] for n, p in zip(names, precision)},
        "class_recall": {n: [(10, float(r))] for n, r in zip(names, recall)},
        "class_support": {n: [(10, float(s))] for n, s in zip(names, support)},
    }
    (record,) = rebuild_records(series)
    assert record.class_names == names
    assert record.val["majority_fraction"] == 0.5
    # Class c has no true positive; its count follows from the others adding up to the 100 samples.
    assert record.val_per_class["predicted"] == predicted.tolist() == [60, 40, 0]
    assert record.val_per_class["recall"] == pytest.approx(recall.tolist())


def test_prediction_counts_that_the_numbers_do_not_determine_stay_unknown():
    # Two classes without a true positive, 10 predictions between them: which one got them is not known.
    series = {
        "val_samples": _one([(1, 30.0)]),
        "class_precision": {"a": [(1, 1.0)], "b": [(1, 0.0)], "c": [(1, 0.0)]},
        "class_recall": {"a": [(1, 1.0)], "b": [(1, 0.0)], "c": [(1, 0.0)]},
        "class_support": {"a": [(1, 20.0)], "b": [(1, 5.0)], "c": [(1, 5.0)]},
    }
    predicted = rebuild_records(series)[0].val_per_class["predicted"]
    assert predicted[0] == 20 and math.isnan(predicted[1]) and math.isnan(predicted[2])


def _noisy(values, sd, seed):
    rng = random.Random(seed)
    return [v * (1 + rng.gauss(0, sd)) for v in values]


def _hf_like(val, train, lr, *, every=10):
    """Series as the HF Trainer logs them: train/loss every 2 steps, eval/loss every ``every`` steps."""
    return {
        "val_loss": _one((every * (i + 1), v) for i, v in enumerate(val)),
        "train_loss": _one((2 * (i + 1), v) for i, v in enumerate(train)),
        "lr": {"group0": [(2 * (i + 1), v) for i, v in enumerate(lr)]},
    }


def _codes(series):
    return sorted({f.code for f in replay(series).findings})


def test_healthy_run_is_quiet():
    # Training and validation loss fall together (constant gap); the LR decays to zero at the end, as planned.
    def level(step):
        return math.exp(-step / 60) + 0.25

    n = 20
    val = _noisy([level(10 * (i + 1)) + 0.05 for i in range(n)], 0.01, seed=1)
    train = _noisy([level(2 * (i + 1)) for i in range(5 * n)], 0.03, seed=2)
    lr = [3e-4 * (1 - i / (5 * n)) for i in range(5 * n)]
    assert _codes(_hf_like(val, train, lr)) == []


def test_overfitting_run():
    n = 20
    val = _noisy([0.8 * 0.85**i + 0.3 if i < 8 else 0.35 + 0.06 * (i - 8) for i in range(n)], 0.01, seed=3)
    train = _noisy([1.0 * 0.95**i for i in range(5 * n)], 0.02, seed=4)
    assert "FW-OVERFIT" in _codes(_hf_like(val, train, [3e-4] * (5 * n)))


def test_plateau_before_convergence():
    n = 20
    val = _noisy([1.0 * 0.8**i + 1.2 if i < 6 else 1.45 for i in range(n)], 0.003, seed=5)
    train = _noisy([1.0 * 0.9**i + 1.3 if i < 30 else 1.35 for i in range(5 * n)], 0.003, seed=6)
    assert _codes(_hf_like(val, train, [1e-5] * (5 * n))) == ["FW-PLATEAU"]


def test_learning_rate_that_ends_early():
    n = 20
    val = _noisy([1.0 * 0.9**i + 0.2 for i in range(n)], 0.005, seed=7)
    train = _noisy([1.1 * 0.97**i + 0.15 for i in range(5 * n)], 0.01, seed=8)
    lr = [3e-4 * max(0.0, 1 - i / 30) for i in range(5 * n)]  # a schedule planned for 60 of 200 steps
    assert "FW-LR-DECAYED" in _codes(_hf_like(val, train, lr))


def test_divergence_from_a_nan_loss():
    n = 10
    train = [1.0 - 0.005 * i for i in range(30)] + [math.nan] * 20
    result = replay(_hf_like([0.9 - 0.01 * i for i in range(n)], train, [1e-3] * 50))
    (divergence,) = [f for f in result.findings if f.code == "FW-DIVERGENCE"]
    # Raised at the first NaN (step 62, the 31st logged loss) and still held at the last record.
    assert divergence.severity.name == "CRITICAL" and divergence.step == 100
    assert result.first_raised[("FW-DIVERGENCE", "")] == (62, None)
