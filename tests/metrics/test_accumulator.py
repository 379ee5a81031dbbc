"""PredictionAccumulator against scikit-learn on the same predictions, across shapes and bad input."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from fitwatch.metrics.accumulator import PredictionAccumulator, infer_task


def _random_batch(rng, n, k):
    logits = rng.normal(scale=2.0, size=(n, k)).astype(np.float32)
    labels = np.where(rng.random(n) < 0.6, logits.argmax(1), rng.integers(0, k, n))
    return logits, labels


@pytest.mark.parametrize("k", [2, 3, 10])
def test_per_class_scores_match_sklearn(k):
    rng = np.random.default_rng(k)
    logits, labels = _random_batch(rng, 1500, k)
    acc = PredictionAccumulator()
    for chunk in np.array_split(np.arange(len(labels)), 5):
        acc.update(torch.from_numpy(logits[chunk]), torch.from_numpy(labels[chunk]))
    res = acc.compute()
    preds = logits.argmax(1)
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=list(range(k)), zero_division=0)
    np.testing.assert_allclose(res.per_class["precision"], p, atol=1e-12)
    np.testing.assert_allclose(res.per_class["recall"], r, atol=1e-12)
    np.testing.assert_allclose(res.per_class["f1"], f, atol=1e-12)
    np.testing.assert_array_equal(res.per_class["support"], s)
    assert res.summary["accuracy"] == pytest.approx((preds == labels).mean())
    assert res.summary["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert res.summary["weighted_f1"] == pytest.approx(f1_score(labels, preds, average="weighted"))
    assert res.confusion == confusion_matrix(labels, preds, labels=list(range(k))).tolist()
    assert res.summary["samples"] == len(labels)


def test_class_never_predicted_has_zero_precision_like_sklearn():
    logits = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    target = torch.tensor([0, 2, 1])
    acc = PredictionAccumulator()
    acc.update(logits, target)
    res = acc.compute()
    p, r, f, _ = precision_recall_fscore_support([0, 2, 1], [0, 0, 1], labels=[0, 1, 2], zero_division=0)
    assert res.per_class["precision"] == list(p) and res.per_class["recall"] == list(r)
    assert res.per_class["predicted"] == [2.0, 1.0, 0.0]


def test_token_classification_skips_ignore_index():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 9, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=(4, 9))
    labels[:, -3:] = -100  # padding
    labels[0, 0] = -100  # special token
    acc = PredictionAccumulator()
    acc.update(torch.from_numpy(logits), torch.from_numpy(labels))
    res = acc.compute()
    keep = labels.reshape(-1) != -100
    y, pred = labels.reshape(-1)[keep], logits.reshape(-1, 5).argmax(1)[keep]
    _, r, _, s = precision_recall_fscore_support(y, pred, labels=list(range(5)), zero_division=0)
    np.testing.assert_allclose(res.per_class["recall"], r)
    assert res.summary["samples"] == keep.sum() == sum(s)
    assert res.summary["invalid_targets"] == 0


def test_multilabel_matches_sklearn_per_label():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(300, 4)).astype(np.float32)
    target = (rng.random((300, 4)) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    acc = PredictionAccumulator()
    acc.update(torch.from_numpy(logits), torch.from_numpy(target))
    assert acc.task == "multilabel"
    res = acc.compute()
    p, r, f, s = precision_recall_fscore_support(target, logits > 0, zero_division=0)
    np.testing.assert_allclose(res.per_class["f1"], f)
    np.testing.assert_array_equal(res.per_class["support"], s)
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert res.summary["brier"] == pytest.approx(np.mean((prob - target) ** 2), abs=1e-6)
    assert res.summary["accuracy"] == pytest.approx(f1_score(target, logits > 0, average="micro"))


def test_nan_rows_are_counted_and_excluded():
    logits = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [0.0, float("inf")], [0.0, 1.0]])
    acc = PredictionAccumulator()
    acc.update(logits, torch.tensor([0, 0, 1, 1]), loss=torch.tensor(float("nan")))
    s = acc.compute().summary
    assert s["nonfinite_logits"] == 2 and s["nonfinite_loss"] == 1
    assert s["samples"] == 2 and s["accuracy"] == 1.0
    assert np.isfinite(s["ece"]) and np.isfinite(s["nll"]) and "loss" not in s


def test_half_precision_logits_and_target_on_other_dtype():
    logits = torch.randn(64, 3).half()
    target = torch.randint(0, 3, (64,)).int()
    acc = PredictionAccumulator()
    acc.update(logits, target)
    res = acc.compute()
    assert res.summary["accuracy"] == pytest.approx((logits.float().argmax(1) == target.long()).float().mean().item())


def test_loss_is_weighted_by_valid_targets():
    acc = PredictionAccumulator()
    acc.update(torch.zeros(3, 2), torch.tensor([0, 1, -100]), loss=torch.tensor(1.0))  # 2 valid targets
    acc.update(torch.zeros(1, 2), torch.tensor([0]), loss=torch.tensor(4.0))  # 1 valid target
    assert acc.compute().summary["loss"] == pytest.approx((1.0 * 2 + 4.0 * 1) / 3)


def test_first_batch_target_out_of_range_raises():
    acc = PredictionAccumulator()
    with pytest.raises(ValueError, match=r"Expected `target` values in \[0, 3\).*but got 3"):
        acc.update(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_later_out_of_range_targets_are_counted_not_raised():
    acc = PredictionAccumulator()
    acc.update(torch.zeros(2, 3), torch.tensor([0, 1]))
    acc.update(torch.zeros(2, 3), torch.tensor([5, 1]))
    s = acc.compute().summary
    assert s["invalid_targets"] == 1 and s["samples"] == 3


def test_num_classes_disagreeing_with_logits_raises():
    acc = PredictionAccumulator(num_classes=4)
    with pytest.raises(ValueError, match=r"4 classes in the last dimension \(from `num_classes`\).*\(3 classes\)"):
        acc.update(torch.zeros(2, 3), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("logits", "target", "task"),
    [((8, 3), (8,), "multiclass"), ((8,), (8,), "binary"), ((8, 1), (8,), "binary"), ((8, 4), (8, 4), "multilabel"), ((2, 5, 3), (2, 5), "multiclass")],
)
def test_infer_task(logits, target, task):
    assert infer_task(torch.zeros(logits), torch.zeros(target)) == task


def test_infer_task_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"but got logits \(8, 3\) and target \(7,\)"):
        infer_task(torch.zeros(8, 3), torch.zeros(7))


def test_state_dict_round_trip_continues_accumulation():
    rng = np.random.default_rng(4)
    logits, labels = _random_batch(rng, 200, 4)
    whole = PredictionAccumulator()
    whole.update(torch.from_numpy(logits), torch.from_numpy(labels))
    first = PredictionAccumulator()
    first.update(torch.from_numpy(logits[:120]), torch.from_numpy(labels[:120]))
    resumed = PredictionAccumulator()
    resumed.load_state_dict(first.state_dict())
    resumed.update(torch.from_numpy(logits[120:]), torch.from_numpy(labels[120:]))
    a, b = whole.compute(), resumed.compute()
    assert a.per_class == b.per_class
    assert a.summary["ece"] == pytest.approx(b.summary["ece"], abs=1e-12)


def test_memory_does_not_grow_with_samples():
    acc = PredictionAccumulator()
    acc.update(torch.randn(10, 7), torch.randint(0, 7, (10,)))
    before = sum(t.numel() for t in acc.tensors())
    for _ in range(20):
        acc.update(torch.randn(500, 7), torch.randint(0, 7, (500,)))
    assert sum(t.numel() for t in acc.tensors()) == before
