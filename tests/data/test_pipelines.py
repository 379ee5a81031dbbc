"""Golden-record pipeline comparison: the classic swapped stage, stage drift, failures, structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitwatch.data import assert_pipelines_match, compare_pipelines
from fitwatch.data.pipelines import token_diff, values_equal
from fitwatch.findings import Finding

ACRONYMS = {"us": "united states", "who": "world health organization", "ai": "artificial intelligence"}
STOPWORDS = {"the", "us", "who", "a", "of", "in", "on"}


def lowercase(text: str) -> str:
    return text.lower()


def expand_acronyms(text: str) -> str:
    return " ".join(ACRONYMS.get(w, w) for w in text.split())


def remove_stopwords(text: str) -> str:
    return " ".join(w for w in text.split() if w.lower() not in STOPWORDS)


TRAIN = [("lowercase", lowercase), ("expand_acronyms", expand_acronyms), ("stopwords", remove_stopwords)]
INFERENCE = [("stopwords", remove_stopwords), ("lowercase", lowercase), ("expand_acronyms", expand_acronyms)]
GOLDEN = [
    "The WHO said US cases rose",  # loses both acronyms at inference
    "Stocks fell sharply",  # no acronym, no stop word: same output
    "AI in the US",  # loses "united states" at inference
    "Rates rose on Monday",  # stop word only: same output
]


def test_classic_swap_points_at_the_moved_stage():
    result = compare_pipelines(TRAIN, INFERENCE, GOLDEN)
    assert not result.ok
    assert [d.index for d in result.differences] == [0, 2]
    report = str(result)
    assert "stage 'stopwords' runs at position 3 in training and 1 at inference" in report
    for difference in result.differences:
        assert difference.culprits == ("stopwords",)
        assert difference.stage == "lowercase"
        assert (difference.train_position, difference.inference_position) == (1, 2)
        # The side-by-side values are the real outputs of that stage in each pipeline.
        assert difference.train_value == lowercase(GOLDEN[difference.index])
        assert difference.inference_value == lowercase(remove_stopwords(GOLDEN[difference.index]))
    first = result.differences[0]
    assert first.train_output == "world health organization said united states cases rose"
    assert first.inference_output == "said cases rose"
    assert "[-world health organization-] said [-united states-] cases rose" in report
    assert result.stage_counts == {"lowercase": 2}
    assert result.culprit_counts == {"stopwords": 2}


def test_classic_swap_finding():
    finding = compare_pipelines(TRAIN, INFERENCE, GOLDEN).to_finding(step=7, epoch=1)
    assert isinstance(finding, Finding)
    assert finding.code == "FW-PIPELINE-DRIFT"
    assert (finding.step, finding.epoch) == (7, 1)
    assert "'stopwords' runs at position 3 in training and 1 at inference" in finding.message
    assert finding.evidence["n_differ"] == 2 and finding.evidence["n_samples"] == 4
    assert finding.evidence["culprits"] == {"stopwords": 2}
    assert Finding.from_dict(finding.to_dict()) == finding


def test_identical_pipelines_are_ok():
    result = compare_pipelines(TRAIN, list(TRAIN), GOLDEN)
    assert result.ok
    assert result.to_finding() is None
    assert "agree on all 4 golden records" in str(result)
    assert assert_pipelines_match(TRAIN, TRAIN, GOLDEN) is not None


def test_assert_pipelines_match_raises_with_the_report():
    with pytest.raises(AssertionError, match="runs at position 3 in training and 1 at inference"):
        assert_pipelines_match(TRAIN, INFERENCE, GOLDEN)


def test_moved_stage_with_equal_outputs_is_ok_but_noted():
    # Removing stop words before or after lower-casing agrees when stop-word matching ignores case and no
    # acronym is involved: golden records decide, the structure is still reported.
    train = [("lowercase", lowercase), ("stopwords", remove_stopwords)]
    inference = [("stopwords", remove_stopwords), ("lowercase", lowercase)]
    result = compare_pipelines(train, inference, ["The cat sat on a mat"])
    assert result.ok
    assert any("runs at position" in note for note in result.structure)


def test_same_input_different_output_blames_the_stage():
    def expand_v2(text: str) -> str:  # a changed dictionary at inference
        return " ".join({"us": "usa"}.get(w, w) for w in text.split())

    inference = [("lowercase", lowercase), ("expand_acronyms", expand_v2), ("stopwords", remove_stopwords)]
    result = compare_pipelines(TRAIN, inference, ["US stocks"])
    (difference,) = result.differences
    assert difference.stage == "expand_acronyms"
    assert difference.culprits == ("expand_acronyms",)
    assert "same input" in difference.cause
    assert (difference.train_value, difference.inference_value) == ("united states stocks", "usa stocks")
    assert result.structure == ()


def test_stage_missing_at_inference():
    inference = [("lowercase", lowercase), ("stopwords", remove_stopwords)]
    result = compare_pipelines(TRAIN, inference, ["AI news"])
    assert "Stage 'expand_acronyms' runs in training only (position 2)." in result.structure
    (difference,) = result.differences
    assert difference.stage == "stopwords"
    assert difference.culprits == ("expand_acronyms",)
    assert "'expand_acronyms' runs before it in training only" in difference.cause


def test_extra_final_stage_only_at_inference():
    inference = [*TRAIN, ("truncate", lambda s: s[:5])]
    result = compare_pipelines(TRAIN, inference, ["long enough text"])
    (difference,) = result.differences
    assert difference.stage is None
    assert difference.culprits == ("truncate",)
    assert "'truncate' at inference only" in difference.cause


def test_position_alignment_when_no_name_is_shared():
    train = [("a", str.lower), ("b", str.strip)]
    inference = [("x", str.lower), ("y", str.upper)]
    result = compare_pipelines(train, inference, [" Hi "])
    assert result.alignment == "position"
    (difference,) = result.differences
    assert difference.stage == "b / y"
    assert (difference.train_value, difference.inference_value) == ("hi", " HI ")


def test_plain_callables_compared_end_to_end():
    result = compare_pipelines(str.lower, str.upper, ["Ab", "1"])
    assert result.alignment == "end to end"
    assert [d.index for d in result.differences] == [0]
    assert result.differences[0].stage is None
    assert result.differences[0].train_output == "ab"
    assert result.differences[0].inference_output == "AB"


def test_stage_that_raises_is_reported_and_the_rest_compared():
    def strict_expand(text: str) -> str:
        if "??" in text:
            raise ValueError("unparsable token")
        return expand_acronyms(text)

    inference = [
        ("lowercase", lowercase),
        ("expand_acronyms", strict_expand),
        ("stopwords", remove_stopwords),
    ]
    result = compare_pipelines(TRAIN, inference, ["what ?? now", "US rates"])
    assert result.n_samples == 2
    (difference,) = result.differences  # record 1 agrees: the failure on record 0 did not stop the run
    assert difference.index == 0
    assert difference.stage == "expand_acronyms"
    (error,) = difference.errors
    assert (error.pipeline, error.stage, error.position) == ("inference", "expand_acronyms", 2)
    assert error.error == "ValueError: unparsable token"
    assert "inference stage 'expand_acronyms' (position 2) raised ValueError: unparsable token" in str(result)
    assert result.to_finding().evidence["n_errors"] == 1


def test_stage_that_raises_in_both():
    def boom(_: str) -> str:
        raise KeyError("x")

    result = compare_pipelines([("boom", boom)], [("boom", boom)], ["a"])
    (difference,) = result.differences
    assert {e.pipeline for e in difference.errors} == {"training", "inference"}


def test_in_place_edit_does_not_leak_between_pipelines():
    def pop_last(tokens: list[str]) -> list[str]:
        tokens.pop()
        return tokens

    sample = ["a", "b", "c"]
    result = compare_pipelines(
        [("split", list), ("pop", pop_last)], [("split", list), ("pop", pop_last)], [sample]
    )
    assert result.ok
    assert sample == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("x", "x", True),
        ([1, 2], (1, 2), False),
        ({"ids": [1, 2]}, {"ids": [1, 2]}, True),
        ({"ids": [1, 2]}, {"ids": [1, 3]}, False),
        (np.array([1.0, np.nan]), np.array([1.0, np.nan]), True),
        (np.array([1, 2]), np.array([1, 2], dtype=np.int32), False),
        (np.zeros((2, 1)), np.zeros(2), False),
        (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("nan")]), True),
        (torch.tensor([1, 2]), torch.tensor([1, 2], dtype=torch.int32), False),
        (torch.tensor([1, 2]), torch.tensor([1, 3]), False),
        (float("nan"), float("nan"), True),
        (1, 1.0, False),
    ],
)
def test_values_equal(a, b, equal):
    assert values_equal(a, b) is equal


def test_token_diff_on_token_lists_and_texts():
    assert token_diff("a b c", "a c d") == "a [-b-] c {+d+}"
    assert token_diff(["x"], ["x"]) == "x"
    assert token_diff({"a": 1}, {"a": 1}) is None


def test_tensor_outputs_are_compared():
    def encode(text: str) -> torch.Tensor:
        return torch.tensor([ord(c) for c in text])

    result = compare_pipelines(
        [("lower", str.lower), ("encode", encode)], [("lower", str.upper), ("encode", encode)], ["ab"]
    )
    (difference,) = result.differences
    assert difference.stage == "lower"
    assert "tensor" in str(result)


def test_duplicate_stage_names_are_aligned_by_occurrence():
    train = [("strip", str.strip), ("lower", str.lower), ("strip", lambda s: s.strip("!"))]
    inference = [("strip", str.strip), ("lower", str.lower), ("strip", lambda s: s.strip("?"))]
    result = compare_pipelines(train, inference, ["Hi!"])
    assert result.differences[0].stage == "strip #2"


@pytest.mark.parametrize(
    ("train", "inference", "samples", "error", "match"),
    [
        (
            "not a pipeline",
            TRAIN,
            ["a"],
            TypeError,
            r"Expected `train` to be a list of \(name, callable\) stages",
        ),
        (
            TRAIN,
            [("ok", str.lower), ("bad",)],
            ["a"],
            TypeError,
            r"Expected `inference\[1\]` to be a \(name, callable\) pair",
        ),
        (
            TRAIN,
            [(1, str.lower)],
            ["a"],
            TypeError,
            r"Expected `inference\[0\]` to be a \(name, callable\) pair",
        ),
        (TRAIN, TRAIN, "abc", TypeError, "Expected `samples` to be a collection of golden records"),
        (TRAIN, TRAIN, [], ValueError, "Expected `samples` to hold at least one golden record"),
    ],
)
def test_bad_arguments(train, inference, samples, error, match):
    with pytest.raises(error, match=match):
        compare_pipelines(train, inference, samples)
    with pytest.raises(error, match=match):
        assert_pipelines_match(train, inference, samples)
