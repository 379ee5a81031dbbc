"""Train/validation duplicates: planted exact and near copies, sample kinds, bad input."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

from fitwatch.data import find_duplicates
from fitwatch.data.duplicates import shingles
from fitwatch.findings import Finding

VOCAB = [f"w{i}" for i in range(5000)]


def random_text(rng: random.Random, n_words: int = 20) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n_words))


def edit_words(rng: random.Random, text: str, n_edits: int) -> str:
    words = text.split()
    for position in rng.sample(range(len(words)), n_edits):
        words[position] = rng.choice(VOCAB)
    return " ".join(words)


def jaccard_reference(a: str, b: str, n: int) -> float:
    """Plain definition: |A & B| / |A | B| over word n-gram sets."""

    def grams(text):
        w = text.lower().split()
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)} if len(w) > n else {tuple(w)}

    A, B = grams(a), grams(b)
    return len(A & B) / len(A | B)


@pytest.fixture(scope="module")
def planted():
    """2,000 training texts; 400 validation texts, 40 exact (case/space-changed) and 60 near copies."""
    rng = random.Random(0)
    train = [random_text(rng) for _ in range(2000)]
    val, exact_truth, near_truth = [], set(), {}
    for j in range(400):
        if j < 40:
            i = rng.randrange(len(train))
            val.append("  " + train[i].upper().replace(" ", "   ") + " ")
            exact_truth.add((i, j))
        elif j < 100:
            i = rng.randrange(len(train))
            # Replacing the last word keeps 15 of the 16 word 5-grams: Jaccard 15/17 ~ 0.88.
            words = train[i].split()
            words[-1] = rng.choice(VOCAB)
            val.append(" ".join(words))
            near_truth[(i, j)] = jaccard_reference(train[i], val[-1], 5)
        else:
            val.append(random_text(rng))
    return train, val, exact_truth, near_truth


def test_planted_exact_and_near_recall_and_precision(planted):
    train, val, exact_truth, near_truth = planted
    report = find_duplicates(train, val)
    assert set(report.exact) == exact_truth  # exact: recall and precision 1
    found = {(t, v): s for t, v, s in report.near}
    planted_near = {k for k, s in near_truth.items() if s >= 0.8}
    recall = len(planted_near & found.keys()) / len(planted_near)
    precision = len(planted_near & found.keys()) / len(found)
    assert recall >= 0.9, recall  # LSH at 16 bands x 8 rows finds a 0.88 pair with probability 0.99
    assert precision == 1.0
    for pair, similarity in found.items():  # the reported similarity is the exact Jaccard of the shingle sets
        assert similarity == pytest.approx(jaccard_reference(train[pair[0]], val[pair[1]], 5))
        assert similarity >= 0.8
    assert report.fraction == pytest.approx(len(report.val_indices) / 400)
    assert len(report.val_indices) >= 40 + 0.9 * len(planted_near)
    assert set(report.clean_val_indices).isdisjoint(report.val_indices)
    assert len(report.clean_val_indices) + len(report.val_indices) == 400


def test_threshold_and_shingle_trade_off():
    a = "the quick brown fox jumps over the lazy dog"
    b = "the quick brown fox jumps over the lazy cat"
    assert find_duplicates([a], [b], shingle=5).near == ()  # 4 of 6 5-grams shared: Jaccard 0.67
    (pair,) = find_duplicates([a], [b], shingle=5, threshold=0.6).near
    assert pair[:2] == (0, 0) and pair[2] == pytest.approx(4 / 6)
    (pair,) = find_duplicates([a], [b], shingle=1, threshold=0.75).near  # word sets: 7 of 9 words
    assert pair[2] == pytest.approx(7 / 9)


def test_exact_pairs_expand_to_every_copy():
    report = find_duplicates(["x y", "x  Y", "z"], ["X Y", "z", "x y"], near=False)
    assert report.exact == ((0, 0), (0, 2), (1, 0), (1, 2), (2, 1))
    assert report.fraction == 1.0
    assert not report.near_searched


def test_unicode_normalisation():
    # NFKC folds the non-breaking space and full-width letters; case folding maps "ß" to "ss".
    report = find_duplicates(["strasse\u00a0ＡＢＣ"], ["STRASSE abc", "Straße abc"], near=False)
    assert report.exact == ((0, 0), (0, 1))


def test_near_pairs_exclude_exact_copies_and_report_all_val_copies():
    base = "one two three four five six seven eight nine ten"
    near = "one two three four five six seven eight nine eleven"
    report = find_duplicates([base], [base.upper(), near, near], shingle=2)
    assert report.exact == ((0, 0),)
    assert [p[:2] for p in report.near] == [(0, 1), (0, 2)]
    assert report.near[0][2] == pytest.approx(8 / 10)


def test_token_id_sequences():
    rng = random.Random(1)
    train = [[rng.randrange(30000) for _ in range(40)] for _ in range(50)]
    val = [list(train[3]), train[7][:-1] + [99999], [1, 2, 3]]
    report = find_duplicates(train, val)
    assert report.kind == "token ids"
    assert report.exact == ((3, 0),)
    assert [p[:2] for p in report.near] == [(7, 1)]
    assert report.near[0][2] == pytest.approx(35 / 37)


def test_words_samples():
    report = find_duplicates([["Hello", "World"]], [["hello", "world"], ["bye"]])
    assert report.kind == "words" and report.exact == ((0, 0),)


def test_arrays_and_tensors_by_dtype_shape_and_bytes():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    train = [a, np.ones(3, dtype=np.float32)]
    val = [torch.arange(6).reshape(2, 3), a.reshape(3, 2), a.astype(np.int32), np.ones(3, dtype=np.float32)]
    report = find_duplicates(train, val)
    assert report.kind == "array"
    assert report.exact == ((0, 0), (1, 3))  # same values but another shape or dtype is not a copy
    assert not report.near_searched


def test_dict_samples_by_field_or_all_fields():
    train = [{"text": "A B C", "label": 0}, {"text": "d e f", "label": 1}]
    val = [{"text": "a b c", "label": 1}, {"text": "D E F", "label": 1}]
    assert find_duplicates(train, val, field="text").exact == ((0, 0), (1, 1))
    # All fields: the first pair differs in its label.
    assert find_duplicates(train, val).exact == ((1, 1),)


def test_empty_inputs():
    for train, val in (([], []), (["a"], []), ([], ["a"])):
        report = find_duplicates(train, val)
        assert report.exact == () and report.near == ()
        assert report.fraction == 0.0 and report.ok
        assert report.to_finding() is None


def test_empty_texts_and_sequences():
    report = find_duplicates(["", "a b"], ["", "A  B"])
    assert report.exact == ((0, 0), (1, 1)) and report.near == ()
    report = find_duplicates([[], [1, 2]], [[], [1, 2]])
    assert report.exact == ((0, 0), (1, 1))


def test_streams_generators():
    report = find_duplicates((t for t in ["a b", "c d"]), (t for t in ["C D"]))
    assert report.exact == ((1, 0),) and report.n_train == 2 and report.n_val == 1


def test_finding():
    finding = find_duplicates(["a b c d e f", "x"], ["A B C D E F", "y", "z", "w"]).to_finding(
        step=3, epoch=0
    )
    assert isinstance(finding, Finding)
    assert finding.code == "FW-LEAK-DUPLICATES"
    assert finding.evidence["n_val_with_copy"] == 1 and finding.evidence["fraction"] == 0.25
    assert finding.evidence["exact_examples"] == [[0, 0]]
    assert "1 of 4 validation samples (25.0%)" in finding.message
    assert Finding.from_dict(finding.to_dict()) == finding
    assert "exact: train[0] == val[0]" in str(find_duplicates(["a"], ["a"]))


def test_shingles():
    assert shingles(["a", "b", "c"], 2) == {b"a b", b"b c"}
    assert shingles(["a"], 5) == {b"a"}


@pytest.mark.parametrize(
    ("train", "val", "kwargs", "error", "match"),
    [
        (
            ["a", [1]],
            ["b"],
            {},
            TypeError,
            r"Expected `train\[1\]` to be text like `val\[0\]`, but got token ids \[1\]",
        ),
        (
            ["a", 3],
            ["b"],
            {},
            TypeError,
            r"Expected `train\[1\]` to be text, words, token ids, an array .* but got int 3",
        ),
        (
            ["a"],
            ["b", [1, 2]],
            {},
            TypeError,
            r"Expected `val\[1\]` to be text like `val\[0\]`, but got token ids",
        ),
        (
            ["a"],
            [{1, 2}],
            {},
            TypeError,
            r"Expected `val\[0\]` to be text, words, token ids, an array or a mapping",
        ),
        ([["a", 1]], ["b"], {}, TypeError, r"Expected `train\[0\]` to be text, words, token ids"),
        ([{"t": object()}], [], {}, TypeError, r"Expected `train\[0\]\['t'\]` to be text"),
        (
            [[]],
            ["x"],
            {},
            TypeError,
            r"Expected `train\[0\]` to be text like `val\[0\]`, but got an empty sequence",
        ),
        (
            [],
            [[], "x"],
            {},
            TypeError,
            r"Expected `val\[1\]` to be words or token ids like `val\[0\]`, but got text",
        ),
        (
            ["a"],
            ["b"],
            {"field": "text"},
            TypeError,
            r"Expected `val\[0\]` to be a mapping with the field 'text'",
        ),
        (
            [{"t": "a"}],
            [{"t": "a"}],
            {"field": "text"},
            ValueError,
            r"Expected `val\[0\]` to have the field 'text'",
        ),
        ("abc", ["b"], {}, TypeError, "Expected `train` to be a sequence of samples, but got str"),
        (["a"], {"a": 1}, {}, TypeError, "Expected `val` to be a sequence of samples, but got dict"),
        (
            ["a"],
            ["b"],
            {"threshold": 0.0},
            ValueError,
            r"Expected `threshold` to be a float in \(0, 1\], but got 0.0",
        ),
        (["a"], ["b"], {"threshold": "0.8"}, TypeError, r"Expected `threshold` to be a float in \(0, 1\]"),
        (["a"], ["b"], {"shingle": 0}, ValueError, "Expected `shingle` to be a positive int, but got 0"),
        (["a"], ["b"], {"num_perm": 1.5}, TypeError, "Expected `num_perm` to be a positive int"),
        (["a"], ["b"], {"near": 1}, TypeError, "Expected `near` to be a bool"),
        (["a"], ["b"], {"field": 3}, TypeError, "Expected `field` to be a str or None"),
    ],
)
def test_bad_input(train, val, kwargs, error, match):
    with pytest.raises(error, match=match):
        find_duplicates(train, val, **kwargs)


def test_missing_datasketch_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketch", None)
    with pytest.raises(ImportError, match="pip install datasketch"):
        find_duplicates(["a b"], ["a c"])
    assert find_duplicates(["a b"], ["A B"], near=False).exact == ((0, 0),)  # exact still works without it
