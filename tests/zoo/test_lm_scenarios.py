"""The language-model zoo's smoke test: the corpus, the items, the registry and one short real run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fitwatch.findings import CATALOGUE
from fitwatch.scenarios.lm import LM_SCENARIOS, LMScenario, get_lm_scenario, run_lm_scenario
from fitwatch.scenarios.lm_data import (
    EOS,
    MAX_LENGTH,
    SEP,
    VOCAB_SIZE,
    Document,
    encode_example,
    load_corpus,
    load_lm_data,
    sft_corpus,
)


def test_the_corpus_is_standard_library_docstrings_deduplicated():
    docs = load_corpus()
    assert len(docs) > 2000 and len({d.docstring.lower() for d in docs}) == len(docs)
    tokenizer, kept = sft_corpus()
    assert len(tokenizer) == VOCAB_SIZE and 0.9 * len(docs) < len(kept) <= len(docs)


def test_documents_come_from_source_in_path_order_without_tests_or_dunders(tmp_path):
    words = "one two three four five six seven"
    (tmp_path / "b.py").write_text(f'def g():\n    """B {words}."""\n')
    (tmp_path / "a.py").write_text(
        f'class C:\n    def f(self):\n        """A {words}.\n\n        More."""\n'
        f'    def __eq__(self, o):\n        """Eq {words}."""\n'
        'def short():\n    """Too short."""\n'
        'raise SystemExit("never imported")\n'
    )
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.py").write_text(f'def t():\n    """T {words}."""\n')
    docs = load_corpus(str(tmp_path))
    assert docs == (Document("a.C.f", f"A {words}."), Document("b.g", f"B {words}."))


def test_items_train_the_completion_only_unless_told_otherwise():
    tokenizer, _ = sft_corpus()
    doc = Document("json.dumps", "Serialize obj to a JSON formatted str and return it.")
    masked = encode_example(tokenizer, doc)
    plain = encode_example(tokenizer, doc, completion_only=False)
    ids, labels = masked["input_ids"].tolist(), masked["labels"].tolist()
    sep = ids.index(SEP)
    assert len(ids) == MAX_LENGTH and all(x == -100 for x in labels[: sep + 1])
    assert labels[sep + 1 : ids.index(EOS) + 1] == ids[sep + 1 : ids.index(EOS) + 1]
    trained = plain["attention_mask"].bool()
    assert (plain["labels"][trained] == plain["input_ids"][trained]).all()
    assert (plain["labels"][~trained] == -100).all()


def test_splits_are_disjoint_and_duplicates_are_copied_on_request():
    clean = load_lm_data(seed=0, train_size=200, val_size=50)
    assert not set(clean.train_docs) & set(clean.val_docs)
    leaky = load_lm_data(seed=0, train_size=200, val_size=50, duplicate_fraction=0.2)
    assert leaky.duplicated == 10 and len(set(leaky.train_docs) & set(leaky.val_docs)) == 10


def test_the_registry_has_healthy_runs_and_each_fault():
    assert sum(s.healthy for s in LM_SCENARIOS.values()) >= 1
    assert len(get_lm_scenario("healthy-lm-sft").seeds) >= 3
    codes = {c for s in LM_SCENARIOS.values() for g in s.expected for c in g}
    assert {"FW-OVERFIT", "FW-LR-DECAYED", "FW-LEAK-DUPLICATES", "FW-LM-PROMPT-TRAINED"} <= codes
    assert codes <= set(CATALOGUE)
    with pytest.raises(ValueError, match="CATALOGUE"):
        LMScenario(name="x", description="x", expected=(("FW-NOPE",),), onset="fit_start", epochs=1)
    with pytest.raises(ValueError, match="LM scenario name"):
        get_lm_scenario("nope")


def test_a_short_run_with_the_prompt_trained_raises_its_code_and_agrees_on_the_loss():
    spec = dataclasses.replace(get_lm_scenario("prompt-trained-lm"), train_size=64, val_size=32)
    result = run_lm_scenario(spec, epochs=2)
    assert "FW-LM-PROMPT-TRAINED" in result.raised and result.detection == 0 and result.delay == 0
    assert len(result.evaluation_steps) == 2 and result.steps == 8
    # FitWatch's token-mean validation loss is the run's own.
    for ours, theirs in zip(result.series["val_loss"], result.series["raw_val_loss"]):
        assert ours == pytest.approx(theirs, rel=1e-4)
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_pretrained_base_is_cached_and_leaves_the_random_state_alone(monkeypatch):
    import torch

    from fitwatch.scenarios import lm
    from fitwatch.scenarios.lm import LMModelSpec

    monkeypatch.setattr(lm, "BASE_DOCUMENTS", 32)
    monkeypatch.setattr(lm, "_BASES", {})
    data = load_lm_data(seed=0, train_size=64, val_size=32)
    spec = LMModelSpec(lora_rank=8, base_epochs=1)
    before = torch.get_rng_state()
    first = lm._pretrained_base(0, spec, len(data.tokenizer), data)
    assert torch.equal(torch.get_rng_state(), before)
    assert lm._pretrained_base(0, spec, len(data.tokenizer), data) is first
    fresh = lm.build_lm(len(data.tokenizer), LMModelSpec())
    fresh.load_state_dict(first)  # the base fits the scenario's model
