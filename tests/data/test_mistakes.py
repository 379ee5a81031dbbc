"""Confident mistakes: bounded top-k against a keep-everything reference, histograms, no host sync, table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fitwatch.data import ConfidentMistakes, Mistake


def batches(n_batches=12, batch=50, classes=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out, offset = [], 1000
    for _ in range(n_batches):
        logits = torch.randn(batch, classes, generator=g) * 3
        targets = torch.randint(0, classes, (batch,), generator=g)
        targets[torch.rand(batch, generator=g) < 0.1] = -100
        out.append((logits, targets, torch.arange(offset, offset + batch)))
        offset += batch
    return out


def reference(all_batches, k):
    """Keep every prediction, then sort: what the bounded merge must reproduce."""
    rows = []
    for logits, targets, ids in all_batches:
        probs = torch.softmax(logits, dim=1)
        for p, y, i in zip(probs.tolist(), targets.tolist(), ids.tolist()):
            if y == -100:
                continue
            pred = max(range(len(p)), key=p.__getitem__)
            rows.append((p[pred], i, y, pred))
    wrong = sorted((r for r in rows if r[2] != r[3]), key=lambda r: -r[0])
    per_class = {}
    for r in wrong:
        per_class.setdefault(r[2], [])
        if len(per_class[r[2]]) < k:
            per_class[r[2]].append(r)
    return rows, wrong[:k], dict(sorted(per_class.items()))


@pytest.mark.parametrize("k", [1, 3, 10, 400])
def test_top_k_matches_reference(k):
    data = batches()
    cm = ConfidentMistakes(k)
    for batch in data:
        cm.update(*batch)
    _, overall, per_class = reference(data, k)
    got = cm.mistakes()
    assert [(m.ref, m.label, m.prediction) for m in got] == [(r[1], r[2], r[3]) for r in overall]
    assert [m.confidence for m in got] == pytest.approx([r[0] for r in overall], abs=1e-6)
    got_per_class = cm.per_class()
    assert got_per_class.keys() == per_class.keys()
    for label, rows in per_class.items():
        assert [m.ref for m in got_per_class[label]] == [r[1] for r in rows]
        assert all(m.label == label for m in got_per_class[label])


def test_histograms_against_reference():
    data = batches(seed=3)
    cm = ConfidentMistakes(5, n_bins=10)
    for batch in data:
        cm.update(*batch)
    rows, _, _ = reference(data, 5)
    correct = np.zeros(10, dtype=int)
    wrong = np.zeros(10, dtype=int)
    for conf, _, y, pred in rows:
        m = min(max(math.ceil(conf * 10) - 1, 0), 9)  # Guo et al. bins ((m-1)/M, m/M]
        (correct if y == pred else wrong)[m] += 1
    hist = cm.histograms()
    assert hist["correct"] == correct.tolist() and hist["wrong"] == wrong.tolist()
    assert hist["edges"] == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert sum(hist["correct"]) + sum(hist["wrong"]) == len(rows)


def test_memory_is_bounded_by_k_and_classes():
    cm = ConfidentMistakes(4)
    for batch in batches(n_batches=30, batch=200):
        cm.update(*batch)
    sizes = {key: value.numel() for key, value in cm._per_class.items()}
    assert set(sizes.values()) == {6 * 4}
    assert {value.numel() for value in cm._overall.values()} == {4}


def test_no_host_sync_per_update():
    cm = ConfidentMistakes(3)
    logits = torch.randn(16, 5, device="meta")
    targets = torch.zeros(16, dtype=torch.long, device="meta")
    for _ in range(4):
        cm.update(logits, targets)  # any .item() or data-dependent shape would raise on meta tensors
    assert cm._hist.device.type == "meta"


def test_running_index_and_reset():
    cm = ConfidentMistakes(2)
    cm.update(torch.tensor([[0.0, 5.0]]), torch.tensor([0]))
    cm.update(torch.tensor([[0.0, 9.0]]), torch.tensor([0]))
    assert [m.ref for m in cm.mistakes()] == [1, 0]
    cm.reset()
    assert cm.mistakes() == [] and cm.per_class() == {}
    assert cm.histograms()["wrong"] == [0] * 20
    cm.update(torch.tensor([[0.0, 9.0]]), torch.tensor([0]))
    assert cm.mistakes()[0].ref == 0


def test_table_with_describe_and_escaping():
    cm = ConfidentMistakes(2, class_names=["spam", "ham"])
    cm.update(torch.tensor([[0.0, 4.0], [3.0, 0.0]]), torch.tensor([0, 0]), torch.tensor([7, 8]))
    texts = {7: "win | money\nnow", 8: "fine"}
    table = cm.table(describe=texts.__getitem__)
    assert "| 1 | win \\| money now | spam | ham | 0.982 |" in table
    assert "(1 of 2 predictions wrong)" in table
    assert "**Per class**" in table
    assert cm.mistakes() == [
        Mistake(ref=7, label=0, prediction=1, confidence=pytest.approx(0.98201, abs=1e-5))
    ]


def test_table_without_mistakes():
    cm = ConfidentMistakes()
    assert "No wrong prediction." in cm.table()
    cm.update(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
    assert "No wrong prediction." in cm.table()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "Expected `k` to be a positive int, but got 0"),
        ({"n_bins": 2.5}, TypeError, "Expected `n_bins` to be a positive int"),
        ({"class_names": "ab"}, TypeError, "Expected `class_names` to be a sequence of str"),
        ({"class_names": [1, 2]}, TypeError, "Expected `class_names` to be a sequence of str"),
    ],
)
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        ConfidentMistakes(**kwargs)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (
            (np.zeros((2, 3)), torch.tensor([0, 1])),
            TypeError,
            "Expected `logits` to be a torch.Tensor, but got ndarray",
        ),
        ((torch.zeros(2, 3, 4), torch.tensor([0, 1])), ValueError, "flatten token positions into the batch"),
        ((torch.zeros(2, 3), torch.tensor([0.0, 1.0])), TypeError, "Expected `targets` to hold integers"),
        (
            (torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([1])),
            ValueError,
            r"Expected `sample_ids` to have shape \(2,\)",
        ),
        (
            (torch.zeros(2, 3), torch.tensor([0, 1]), [1, 2]),
            TypeError,
            "Expected `sample_ids` to be a torch.Tensor",
        ),
    ],
)
def test_bad_update(args, error, match):
    with pytest.raises(error, match=match):
        ConfidentMistakes().update(*args)


def test_class_count_must_not_change():
    cm = ConfidentMistakes()
    cm.update(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="Expected `logits` to have 3 classes as before, but got 4"):
        cm.update(torch.zeros(2, 4), torch.tensor([0, 1]))
