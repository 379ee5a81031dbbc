"""The pipeline scenarios: ticket preprocessing in another order at inference, compared without training."""

from __future__ import annotations

import json

import pytest

from fitwatch.datasets import support_tickets
from fitwatch.scenarios.pipelines import (
    PIPELINE_SCENARIOS,
    STOP_WORDS_FIRST,
    TICKET_ACRONYMS,
    TRAINING,
    expand_acronyms,
    lowercase,
    remove_stop_words,
    run_pipeline_scenario,
)


def test_swapped_order_is_reported_with_the_moved_stage():
    result = run_pipeline_scenario("pipeline-order-tickets", records=50)
    assert result.codes == ("FW-PIPELINE-DRIFT",) and result.detected
    assert result.named_stage == "remove_stop_words"
    report = str(result.comparison)
    assert "stage 'remove_stop_words' runs at position 3 in training and 1 at inference" in report
    # Reference: the two orders written out by hand on the same tickets; a record differs when the final
    # texts differ.
    texts = support_tickets(n=50, seed=0).texts
    by_hand = [
        remove_stop_words(expand_acronyms(lowercase(t))) != expand_acronyms(lowercase(remove_stop_words(t)))
        for t in texts
    ]
    assert len(result.comparison.differences) == sum(by_hand) > 0
    assert [d.index for d in result.comparison.differences] == [i for i, d in enumerate(by_hand) if d]


def test_a_capitalised_stop_word_survives_at_inference_only():
    text = "The VAT on my PC invoice"
    trained = remove_stop_words(expand_acronyms(lowercase(text)))
    served = expand_acronyms(lowercase(remove_stop_words(text)))
    assert trained == "value added tax personal computer invoice"
    assert served == "the value added tax personal computer invoice"


def test_the_control_agrees_on_every_record():
    result = run_pipeline_scenario("pipeline-same-order-tickets", records=50, seed=1)
    assert result.codes == () and result.finding is None and result.detected
    assert result.comparison.ok and result.named_stage is None


def test_stages_and_registry():
    assert [name for name, _ in STOP_WORDS_FIRST] == ["remove_stop_words", "lowercase", "expand_acronyms"]
    assert sorted(name for name, _ in STOP_WORDS_FIRST) == sorted(name for name, _ in TRAINING)
    assert all(k == k.lower() and v for k, v in TICKET_ACRONYMS.items())
    # Every acronym occurs in the generated tickets (upper-case, as people write them).
    texts = " ".join(support_tickets(n=2000, seed=0).texts).split()
    assert all(any(w.strip(".,!?:;") == k.upper() for w in texts) for k in TICKET_ACRONYMS)
    assert [s.healthy for s in PIPELINE_SCENARIOS.values()] == [True, False]


def test_result_summary_is_json():
    data = run_pipeline_scenario("pipeline-order-tickets", records=10).to_dict()
    again = json.loads(json.dumps(data, allow_nan=False))
    assert again["named_stage"] == again["moved"] == "remove_stop_words"
    assert again["report_head"].startswith("Training and inference pipelines differ on")
    assert again["differ"] == len(
        run_pipeline_scenario("pipeline-order-tickets", records=10).comparison.differences
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scenario": "pipeline-nope"}, ValueError, "Expected a pipeline scenario name"),
        ({"records": 0}, ValueError, "Expected `records` to be a positive int"),
        ({"seed": 1.5}, TypeError, "Expected `seed` to be a non-negative int"),
    ],
)
def test_argument_errors(kwargs, error, match):
    args = {"scenario": "pipeline-order-tickets", **kwargs}
    with pytest.raises(error, match=match):
        run_pipeline_scenario(args.pop("scenario"), **args)
