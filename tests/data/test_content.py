"""Content digests: what counts as the same sample, per kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitwatch.data.content import content_digest, content_tokens, normalize_text, sample_kind


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Hello  World", "hello world", True),
        ("ﬁne", "fine", True),  # NFKC folds the ligature
        ("hello world", "hello, world", False),  # punctuation is content for exact copies
        (["A", "b"], ["a", "B"], True),
        (["a b"], ["a", "b"], False),
        ([1, 2, 3], [1, 2, 3], True),
        ([1, 2, 3], [3, 2, 1], False),
        ([np.int64(5)], [5], True),
        (np.arange(3), torch.arange(3), True),  # same dtype (int64), shape and values
        (np.arange(3), np.arange(3, dtype=np.int32), False),
        (np.zeros((2, 3)), np.zeros((3, 2)), False),
        (torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16), True),
        (torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.float16), False),
        ({"t": "A", "y": 1}, {"y": 1, "t": "a"}, True),
        ({"t": "A", "y": 1}, {"t": "A", "y": 2}, False),
        ({"t": "A", "y": 1}, {"t": "A", "y": 1.0}, False),
        ({"t": "A", "y": None}, {"t": "A", "y": None}, True),
        ("1 2", [1, 2], False),  # kinds never collide
        ([], (), True),
    ],
)
def test_same_content(a, b, same):
    assert (content_digest(a) == content_digest(b)) is same


def test_requires_grad_and_non_contiguous_tensors():
    x = torch.arange(6.0, requires_grad=True).reshape(2, 3)
    assert content_digest(x.t()) == content_digest(x.detach().t().contiguous())


def test_kinds_and_tokens():
    assert sample_kind(np.array([object()])) is None
    assert sample_kind(3) is None and sample_kind(b"x") is None
    assert content_tokens("Don't STOP-me now!", "text") == ["don", "t", "stop", "me", "now"]
    assert content_tokens(["A", "b"], "words") == ["a", "b"]
    assert content_tokens(np.zeros(2), "array") == []
    assert normalize_text("\tA\u2003B\n") == "a b"


def test_unsupported_samples():
    with pytest.raises(
        TypeError, match=r"Expected `val\[2\]` to be text, words, token ids, an array or a mapping"
    ):
        content_digest({1, 2}, name="val[2]")
    with pytest.raises(TypeError, match=r"Expected `sample\['x'\]` to be text"):
        content_digest({"x": object()})
    with pytest.raises(TypeError, match=r"but got int 3"):
        content_digest(3)
