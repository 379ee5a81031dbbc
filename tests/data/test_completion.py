"""The completion-only mask check (FW-LM-PROMPT-TRAINED) on plain lists, and its place in check_splits."""

from __future__ import annotations

import pytest
import torch

from fitwatch.config import DataChecksConfig
from fitwatch.data.completion import MIN_PREFIX, check_completion_mask, shared_prefix
from fitwatch.data.split_checks import check_splits

TEMPLATE = list(range(100, 112))  # 12 tokens shared by every prompt


def _items(n: int = 20, template: list[int] = TEMPLATE, pad: int = 3) -> list[list[int]]:
    return [template + [7, 50 + i, 60 + i % 5, 70 + i] + [0] * pad for i in range(n)]


def _masks(items: list[list[int]], pad: int = 3) -> list[list[int]]:
    return [[1] * (len(x) - pad) + [0] * pad for x in items]


def _labels(items: list[list[int]], *, prompt: int | None, pad: int = 3) -> list[list[int]]:
    """Labels equal to the ids, -100 on the padding and, with ``prompt``, on the first ``prompt`` tokens."""
    out = []
    for x in items:
        labels = list(x[: len(x) - pad]) + [-100] * pad
        if prompt is not None:
            labels[:prompt] = [-100] * prompt
        out.append(labels)
    return out


def test_a_trained_template_is_reported_with_its_numbers():
    items = _items()
    report = check_completion_mask(items, _labels(items, prompt=None), _masks(items))
    assert (report.n_items, report.n_fully_trained, report.prefix_length, report.prefix_share) == (
        20,
        20,
        13,
        1.0,
    )
    finding = report.to_finding(step=0, epoch=0)
    assert (
        finding is not None and finding.code == "FW-LM-PROMPT-TRAINED" and finding.severity.name == "WARNING"
    )
    assert finding.evidence["prefix_length"] == 13 and finding.evidence["trained_fraction"] == 1.0
    assert "13 tokens" in finding.message and finding.hint


def test_a_completion_only_mask_is_quiet():
    items = _items()
    report = check_completion_mask(items, _labels(items, prompt=13), _masks(items))
    assert report.n_fully_trained == 0 and report.ok and report.to_finding() is None


@pytest.mark.parametrize(
    ("template", "expected_ok"),
    [
        (list(range(100, 100 + MIN_PREFIX - 2)), True),  # 6 shared + 1 (token 7) = 7 < 8: ordinary opening
        (list(range(100, 100 + MIN_PREFIX - 1)), False),  # 7 + 1 = 8 shared tokens: a template
    ],
)
def test_the_opening_must_be_min_prefix_tokens_long(template, expected_ok):
    items = _items(template=template)
    assert check_completion_mask(items, _labels(items, prompt=None), _masks(items)).ok is expected_ok


def test_pretraining_documents_without_a_shared_opening_are_quiet():
    items = [[(7 * i + j) % 97 + 1 for j in range(30)] for i in range(40)]
    report = check_completion_mask(items, [list(x) for x in items])
    assert report.trained_fraction == 1.0 and report.prefix_length == 0 and report.ok


def test_the_template_needs_80_percent_of_the_items():
    shared = _items(n=15)
    other = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0] for _ in range(5)]
    items = shared + other  # 75% share the template
    report = check_completion_mask(items, _labels(items, prompt=None), _masks(items))
    assert report.prefix_length == 0 and report.ok
    items = _items(n=16) + other[:4]  # 80%
    assert not check_completion_mask(items, _labels(items, prompt=None), _masks(items)).ok


def test_without_an_attention_mask_trailing_ignored_labels_are_padding():
    items = _items()
    report = check_completion_mask(items, _labels(items, prompt=None))
    assert report.n_fully_trained == 20 and not report.ok
    assert check_completion_mask(items, _labels(items, prompt=13)).ok


def test_left_padding_without_a_mask():
    items = [[0, 0] + x[:-3] for x in _items()]
    labels = [[-100, -100] + x[2:] for x in items]
    report = check_completion_mask(items, labels)
    assert report.prefix_length == 13 and not report.ok


def test_labels_shifted_by_the_user_are_not_a_trained_prompt():
    items = _items()
    shifted = [x[1:] + [-100] for x in _labels(items, prompt=None)]
    assert check_completion_mask(items, shifted, _masks(items)).n_fully_trained == 0


def test_few_items_say_nothing():
    items = _items(n=4)
    assert check_completion_mask(items, _labels(items, prompt=None), _masks(items)).ok


def test_decode_names_the_template_in_the_message():
    items = _items()
    report = check_completion_mask(
        items, _labels(items, prompt=None), _masks(items), decode=lambda ids: " ".join(f"w{i}" for i in ids)
    )
    assert report.prefix_text is not None and report.prefix_text.startswith("w100 w101")
    assert '"w100 w101' in report.to_finding().message


def test_shared_prefix_is_the_longest_with_the_share():
    assert shared_prefix([[1, 2, 3], [1, 2, 4], [1, 2, 3], [1, 5]], min_share=0.75) == ([1, 2], 0.75)
    assert shared_prefix([], min_share=0.8) == ([], 1.0)


@pytest.mark.parametrize("share", [0.5, 0.0, 1.5])
def test_min_share_out_of_range_raises(share):
    with pytest.raises(ValueError, match="min_share"):
        check_completion_mask([[1]], [[1]], min_share=share)
    with pytest.raises(ValueError, match="min_share"):
        shared_prefix([[1]], min_share=share)


def test_min_prefix_must_be_positive():
    with pytest.raises(ValueError, match="min_prefix"):
        check_completion_mask([[1]], [[1]], min_prefix=0)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="same number of items"):
        check_completion_mask([[1, 2]], [])
    with pytest.raises(ValueError, match="as long as its input_ids"):
        check_completion_mask([[1, 2]], [[1]])


def _dataset(items, labels, masks):
    return [
        {"input_ids": torch.tensor(x), "attention_mask": torch.tensor(m), "labels": torch.tensor(y)}
        for x, y, m in zip(items, labels, masks)
    ]


def test_check_splits_reports_a_trained_prompt_and_skips_label_shift_for_lm_items():
    items = _items(n=30)
    train = _dataset(items[:20], _labels(items[:20], prompt=None), _masks(items[:20]))
    val = _dataset(items[20:], _labels(items[20:], prompt=None), _masks(items[20:]))
    result = check_splits(train, val, DataChecksConfig())
    assert [f.code for f in result.findings] == ["FW-LM-PROMPT-TRAINED"]
    assert "completion mask" in result.report and "label shift: skipped" in result.report


def test_check_splits_is_quiet_on_completion_only_lm_items():
    items = _items(n=30)
    train = _dataset(items[:20], _labels(items[:20], prompt=13), _masks(items[:20]))
    val = _dataset(items[20:], _labels(items[20:], prompt=13), _masks(items[20:]))
    result = check_splits(train, val, DataChecksConfig())
    assert result.findings == [] and not result.errors


def test_token_classification_items_keep_the_label_shift_check():
    train = [{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([0, 1, 0])} for _ in range(10)]
    result = check_splits(train, train, DataChecksConfig(duplicates=False))
    assert "completion mask" not in result.report and "label shift:" in result.report
