"""Label shift: proportions, chi-square against scipy, total variation, one-split classes, thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fitwatch.data import label_shift
from fitwatch.data.label_shift import ALPHA, MIN_TV
from fitwatch.findings import Finding


def test_statistic_p_value_and_tv_against_scipy():
    rng = np.random.default_rng(0)
    train = rng.choice(4, size=3000, p=[0.4, 0.3, 0.2, 0.1])
    val = rng.choice(4, size=800, p=[0.25, 0.25, 0.25, 0.25])
    report = label_shift(train, val)
    table = np.stack([np.bincount(train, minlength=4), np.bincount(val, minlength=4)])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert report.chi2 == pytest.approx(chi2, rel=1e-12)
    assert report.p_value == pytest.approx(p, rel=1e-9)
    assert report.dof == dof == 3
    tv = 0.5 * np.abs(table[0] / table[0].sum() - table[1] / table[1].sum()).sum()
    assert report.tv == pytest.approx(tv, rel=1e-12)
    assert report.train_counts == tuple(table[0]) and report.val_counts == tuple(table[1])


def test_same_distribution_gives_no_finding():
    rng = np.random.default_rng(1)
    false_alarms = 0
    for _ in range(200):
        train = rng.choice(5, size=2000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
        val = rng.choice(5, size=500, p=[0.5, 0.2, 0.15, 0.1, 0.05])
        false_alarms += label_shift(train, val).to_finding() is not None
    assert false_alarms <= 2  # alpha = 0.01 and TV >= 0.05: at most ~1% expected


def test_large_but_tiny_shift_is_not_worth_a_finding():
    # 0.5 percentage point moved on 400k samples: significant, harmless.
    train = [0] * 100_000 + [1] * 100_000
    val = [0] * 101_000 + [1] * 99_000
    report = label_shift(train, val)
    assert report.p_value < ALPHA and report.tv < MIN_TV
    assert report.to_finding() is None
    assert report.to_finding(min_tv=0.001) is not None


def test_shift_finding():
    report = label_shift(["a"] * 70 + ["b"] * 30, ["a"] * 30 + ["b"] * 70)
    finding = report.to_finding(step=2, epoch=0)
    assert isinstance(finding, Finding) and finding.code == "FW-LABEL-SHIFT"
    assert "'a' 70.0% -> 30.0%" in finding.message
    assert finding.evidence["tv"] == pytest.approx(0.4)
    assert Finding.from_dict(finding.to_dict()) == finding


def test_classes_in_one_split_only():
    train = [0] * 50 + [1] * 40 + [2] * 10
    val = [0] * 50 + [1] * 45 + [3] * 5
    report = label_shift(train, val, class_names=["neg", "pos", "rare", "new"])
    assert report.train_only == ("rare",) and report.val_only == ("new",)
    # rare: expected 10% x 100 = 10 in validation; new: expected 5% x 100 = 5 in training.
    assert report.missing_expected() == ("rare", "new")
    finding = report.to_finding()
    assert "'rare' in training only (never evaluated)" in finding.message
    assert "'new' in validation only (never learned)" in finding.message
    # A class that chance may leave out of a small split is not reported.
    small = label_shift([0] * 990 + [1] * 10, [0] * 50)
    assert small.train_only == ("1",) and small.missing_expected() == () and small.to_finding() is None


def test_class_names_list_every_class():
    report = label_shift([0, 0, 1], [0, 1, 1], class_names=["a", "b", "c"])
    assert report.names == ("a", "b", "c")
    assert report.train_counts == (2, 1, 0)
    assert report.dof == 1  # the class absent from both splits is left out of the test
    assert report.val_proportions == {"a": 1 / 3, "b": 2 / 3, "c": 0.0}
    mapped = label_shift(["x", "y"], ["y"], class_names={"x": "ham", "y": "spam"})
    assert mapped.names == ("ham", "spam")


def test_tensors_token_labels_and_ignore_index():
    train = torch.tensor([[0, 1, -100], [1, 1, -100]])
    val = np.array([0, 0, -100])
    report = label_shift(train, val, ignore_index=-100)
    assert report.names == ("0", "1")
    assert report.train_counts == (1, 3) and report.val_counts == (2, 0)


def test_empty_and_single_class():
    empty = label_shift([], [1, 2])
    assert (empty.chi2, empty.p_value, empty.dof, empty.tv) == (0.0, 1.0, 0, 0.0)
    assert empty.train_only == () and empty.val_only == ()
    single = label_shift([1, 1], [1])
    assert single.dof == 0 and single.p_value == 1.0 and single.to_finding() is None
    assert "class" in str(single)


@pytest.mark.parametrize(
    ("train", "val", "names", "error", "match"),
    [
        ("abc", [1], None, TypeError, "Expected `train_labels` to be a sequence of labels, but got str"),
        ([1], [[1, 2]], None, TypeError, r"Expected `val_labels\[0\]` to be a class label"),
        ([1.0, float("nan")], [1.0], None, TypeError, r"Expected `train_labels\[1\]` to be a class label"),
        (
            [0, 5],
            [1],
            ["a", "b"],
            ValueError,
            r"Expected labels to be ints in \[0, 2\) to index `class_names`, but got \[5\]",
        ),
        (
            ["x"],
            ["z"],
            {"x": "a"},
            ValueError,
            "Expected `class_names` to name every label, but got none for \\['z'\\]",
        ),
        ([0], [1], "ab", TypeError, "Expected `class_names` to be a sequence of names or a mapping"),
        ([0], [1], ["a", "a"], ValueError, r"Expected distinct class names, but got \['a'\] more than once"),
    ],
)
def test_bad_input(train, val, names, error, match):
    with pytest.raises(error, match=match):
        label_shift(train, val, class_names=names)
