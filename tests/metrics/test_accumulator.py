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


def _mixed_batches(task, seed):
    """Batches with every case the fold treats per batch: varying sizes and sequence lengths, ignored and
    out-of-range targets, non-finite logits, losses missing, NaN, 0-d, [1] and Python floats, and masks."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(23):
        n = int(torch.randint(1, 9, (), generator=g))
        if task == "multiclass":
            t = int(torch.randint(1, 4, (), generator=g))
            logits = torch.randn(n, t, 4, generator=g) * 3
            target = torch.randint(0, 4, (n, t), generator=g)
            target[torch.rand(n, t, generator=g) < 0.15] = -100
            if i == 7:
                target[...] = -100  # nothing counted: its NaN mean loss is not a non-finite loss
            if i == 11:
                target[0, 0] = 9  # out of range: counted as invalid, excluded
            mask = torch.rand(n, t, generator=g) < 0.8 if i % 3 == 0 else None
        elif task == "binary":
            logits = torch.randn(n, generator=g) * 2
            target = torch.randint(0, 2, (n,), generator=g)
            mask = torch.rand(n, generator=g) < 0.8 if i % 3 == 0 else None
        else:
            logits = torch.randn(n, 3, generator=g) * 2
            target = torch.randint(0, 2, (n, 3), generator=g)
            mask = torch.rand(n, generator=g) < 0.8 if i % 3 == 0 else None
        if i == 5:
            logits.view(-1)[0] = float("nan")
        loss = [None, 0.7, torch.tensor(1.3), torch.tensor([0.4]), torch.tensor(float("nan")), torch.tensor(2.0, dtype=torch.float64)][i % 6]
        if i == 7:
            loss = torch.tensor(float("nan"))
        out.append((logits, target, loss, mask))
    return out


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("buffer_batches", [2, 5, 64])
def test_held_batches_fold_to_the_same_numbers(task, buffer_batches):
    batches = _mixed_batches(task, seed=buffer_batches)
    one_by_one = PredictionAccumulator(task=task)
    held = PredictionAccumulator(task=task, buffer_batches=buffer_batches)
    for logits, target, loss, mask in batches:
        one_by_one.update(logits, target, loss, mask=mask)
        held.update(logits, target, loss, mask=mask)
    assert len(held._pending) == len(batches) % buffer_batches  # folded every buffer_batches batches
    want, got = one_by_one.compute(), held.compute()
    assert not held._pending
    assert got.summary.keys() == want.summary.keys()
    for key, value in want.summary.items():
        assert got.summary[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
    assert want.summary["nonfinite_loss"] >= 1 and want.summary["batches"] == len(batches)
    for key, values in want.per_class.items():
        np.testing.assert_allclose(got.per_class[key], values, rtol=1e-9)
    assert got.confusion == want.confusion


def test_held_batches_fold_before_every_read_and_stay_under_the_byte_cap():
    acc = PredictionAccumulator(buffer_batches=100, buffer_bytes=10 * 4 * 4 * 3)  # three batches of [10, 4] float32
    reference = PredictionAccumulator()
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        logits, target = torch.randn(10, 4, generator=g), torch.randint(0, 4, (10,), generator=g)
        acc.update(logits, target, 1.0)
        reference.update(logits, target, 1.0)
        assert acc._pending_bytes < acc.buffer_bytes
    assert len(acc._pending) == 2  # folded at the third and the sixth batch
    state = acc.state_dict()  # a read: folds first
    assert not acc._pending
    assert state == reference.state_dict()
    acc.update(torch.randn(10, 4, generator=g), torch.randint(0, 4, (10,), generator=g))
    acc.reset()  # what is held is dropped with the states
    assert not acc._pending and acc.compute().summary["samples"] == 0


def test_a_batch_of_another_width_after_the_first_is_skipped_and_counted():
    acc = PredictionAccumulator(buffer_batches=8)
    first = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    acc.update(*first)
    acc.update(torch.randn(4, 5), torch.randint(0, 3, (4,)))  # a logit column more: never a crash in the step
    acc.update(torch.randn(3, 3), torch.randint(0, 3, (4,)))  # rows that do not pair up
    assert acc.skipped == 2 and acc.skipped_shapes == ((4, 5), (4,))
    assert acc.compute().summary["samples"] == 4  # only the batch that fits


def test_a_first_batch_that_does_not_pair_up_is_a_set_up_error():
    with pytest.raises(ValueError, match=r"Expected logits and targets that pair up.*logits \(4, 3\) and target \(5,\)"):
        PredictionAccumulator(task="multiclass").update(torch.randn(4, 3), torch.randint(0, 3, (5,)))


def test_fractional_and_out_of_range_targets_after_the_first_batch_are_counted_not_truncated():
    acc = PredictionAccumulator()
    acc.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    acc.strict = False
    acc.update(torch.randn(4, 3), torch.tensor([0.5, 1.0, 7.0, 2.0]))
    summary = acc.compute().summary
    assert summary["invalid_targets"] == 2 and summary["samples"] == 6


def test_a_held_loss_does_not_keep_the_autograd_graph_alive():
    weight = torch.randn(4, 3, requires_grad=True)
    acc = PredictionAccumulator(buffer_batches=8)
    for _ in range(3):
        x = torch.randn(5, 4)
        logits = x @ weight
        loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, 3, (5,)))
        acc.update(logits, torch.randint(0, 3, (5,)), loss)
    assert len(acc._pending) == 3
    assert all(b.loss.grad_fn is None and b.logits.grad_fn is None for b in acc._pending)


def _batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 3, generator=g), torch.randint(0, 3, (6,), generator=g), torch.rand((), generator=g))
            for _ in range(n)]


def test_held_batches_are_references_without_a_single_op():
    # Holding a batch costs no torch op: the tensors are kept as they are (Lightning's outputs are detached).
    held = PredictionAccumulator(buffer_batches=8)
    batches = _batches(4)
    held.update(*batches[0])  # the first batch initialises the states (and checks the targets)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for b in batches[1:]:
            held.update(*b)
    assert [e.name for e in prof.events() if e.name.startswith("aten::")] == []
    reference = PredictionAccumulator()
    for b in batches:
        reference.update(*b)
    assert held.compute().summary == pytest.approx(reference.compute().summary, rel=1e-12, nan_ok=True)


def test_held_batches_changed_in_place_are_dropped_then_copied():
    # The HF Trainer scales the loss by the number of processes in place after the forward pass; a loop may
    # rewrite its label buffer. A held batch whose tensors moved is never read with other values than its step's:
    # it is dropped at the fold (counted) and batches are copied from then on.
    held, reference = PredictionAccumulator(buffer_batches=8), PredictionAccumulator()
    batches = _batches(6)
    for i, (logits, target, loss) in enumerate(batches):
        if i >= 3:
            reference.update(logits, target, loss)
        held.update(logits, target, loss)
        loss *= 2
        logits.add_(5.0)
        target.fill_(0)
        if i == 2:
            held.tensors()  # fold the first three: all changed
            assert held.changed == 3
    assert held.compute().summary == pytest.approx(reference.compute().summary, rel=1e-12, nan_ok=True)
    assert held.changed == 3


def test_a_loss_scaled_in_place_drops_only_the_loss():
    # Only the loss moved (the HF Trainer's `loss *= num_processes`): the rows still count, that batch's loss not.
    held, reference = PredictionAccumulator(buffer_batches=8), PredictionAccumulator()
    batches = _batches(3, seed=3)
    for i, (logits, target, loss) in enumerate(batches):
        held.update(logits, target, loss)
        reference.update(logits, target, loss if i else None)
        if i == 0:
            loss *= 3
    assert held.compute().summary == pytest.approx(reference.compute().summary, rel=1e-12, nan_ok=True)
    assert held.changed == 1


def test_an_output_buffer_reused_by_the_next_step_keeps_only_its_last_rows():
    # A CUDA-graph replay writes its static output buffer again without bumping the version counter (simulated
    # here through `.data`): held references at one address are one buffer, and only the last write is real.
    held, reference = PredictionAccumulator(buffer_batches=8), PredictionAccumulator()
    static = torch.zeros(6, 3)
    batches = _batches(4, seed=1)
    for logits, target, loss in batches:
        static.data.copy_(logits)
        held.update(static, target, loss)
    reference.update(*batches[-1])
    assert held.compute().summary == pytest.approx(reference.compute().summary, rel=1e-12, nan_ok=True)
    assert held.changed == 3


def test_views_of_a_larger_storage_are_copied():
    # A target column of the whole batch (or a slice of a preloaded set) would keep the whole storage alive for 32
    # steps: such a role is copied from the first batch, and the numbers are the same.
    big = torch.randn(4096, 40)
    held, reference = PredictionAccumulator(buffer_batches=8), PredictionAccumulator()
    g = torch.Generator().manual_seed(2)
    for i in range(5):
        logits = big[i * 6:(i + 1) * 6, :3]
        target = torch.randint(0, 3, (6,), generator=g)
        held.update(logits, target)
        reference.update(logits.clone(), target)
        big[i * 6:(i + 1) * 6].zero_()  # the storage moves on; the copies do not
    assert held._copy == (True, False)
    assert held.compute().summary == pytest.approx(reference.compute().summary, rel=1e-12, nan_ok=True)
    assert held.changed == 0
