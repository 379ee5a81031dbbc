"""Language-model metrics against a hand-computed next-token reference (plain numpy, position by position)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fitwatch.tasks.language_model import LanguageModelState, token_statistics
from tests.references import reference_ece_mce


def reference(logits: np.ndarray, labels: np.ndarray, *, shift: bool, ignore: int = -100) -> dict[str, float]:
    """Next-token numbers written the slow way: loop over every (sequence, position) pair."""
    conf, correct, top5, nll = [], [], [], []
    n, t, _ = logits.shape
    for i in range(n):
        for pos in range(t - 1 if shift else t):
            label = labels[i, pos + 1] if shift else labels[i, pos]
            if label == ignore:
                continue
            z = logits[i, pos].astype(np.float64)
            p = np.exp(z - z.max())
            p /= p.sum()
            conf.append(p.max())
            correct.append(float(np.argmax(z) == label))
            top5.append(float(label in np.argsort(-z)[:5]))
            nll.append(-math.log(p[label]))
    ece, mce = reference_ece_mce(np.array(conf), np.array(correct))
    brier = float(np.mean((np.array(conf) - np.array(correct)) ** 2))
    return {"accuracy": float(np.mean(correct)), "top5_accuracy": float(np.mean(top5)), "nll": float(np.mean(nll)),
            "ece": ece, "mce": mce, "brier": brier, "tokens": float(len(conf))}


def batch(seed: int, n: int = 4, t: int = 12, vocab: int = 50, prompt: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, t), generator=g)
    # Logits that often predict the next token, so accuracy is far from 0 and from the unshifted pairing.
    logits = torch.randn(n, t, vocab, generator=g)
    logits[:, :-1].scatter_add_(2, ids[:, 1:].unsqueeze(-1), torch.full((n, t - 1, 1), 3.0))
    labels = ids.clone()
    labels[:, :prompt] = -100
    labels[0, -3:] = -100  # padding at the end of one sequence
    return logits, labels


@pytest.mark.parametrize("prompt", [0, 5])
def test_causal_alignment_matches_the_next_token_reference(prompt):
    state = LanguageModelState(task="causal_lm")
    all_logits, all_labels = [], []
    for seed in range(3):
        logits, labels = batch(seed, prompt=prompt)
        state.update(logits, labels)
        all_logits.append(logits)
        all_labels.append(labels)
    got = state.compute().summary
    ref = reference(torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy(), shift=True)
    for key in ("accuracy", "top5_accuracy", "nll", "ece", "mce", "brier", "tokens"):
        assert got[key] == pytest.approx(ref[key], abs=1e-5), key
    assert got["accuracy"] > 0.5  # the logits predict the *next* token: the unshifted pairing would be near 0
    assert got["perplexity"] == pytest.approx(math.exp(ref["nll"]), rel=1e-5)


def test_completion_only_mask_counts_only_completion_tokens():
    logits, labels = batch(0, prompt=6)
    stats = token_statistics(logits, labels, shift=True)
    # Position p predicts label p+1: the first counted position is the last prompt one (5), never earlier.
    weight = stats.weight.reshape(4, 11)
    assert weight[:, :5].sum() == 0 and weight[1:, 5:].all()
    assert weight[0, -3:].sum() == 0  # the padded end of sequence 0


def test_seq2seq_is_not_shifted():
    logits, labels = batch(1)
    state = LanguageModelState(task="seq2seq_lm")
    state.update(logits, labels)
    ref = reference(logits.numpy(), labels.numpy(), shift=False)
    assert state.compute().summary["accuracy"] == pytest.approx(ref["accuracy"])


def test_model_loss_is_weighted_by_tokens_and_drives_perplexity():
    state = LanguageModelState(task="causal_lm")
    a, la = batch(0)
    b, lb = batch(1, prompt=8)
    state.update(a, la, torch.tensor(2.0))
    state.update(b, lb, torch.tensor(4.0))
    na = float((la[:, 1:] != -100).sum())
    nb = float((lb[:, 1:] != -100).sum())
    summary = state.compute().summary
    assert summary["loss"] == pytest.approx((2.0 * na + 4.0 * nb) / (na + nb))
    assert summary["perplexity"] == pytest.approx(math.exp(summary["loss"]))


def test_strided_training_subset_visits_every_position():
    logits, labels = batch(2, n=2, t=40)
    state = LanguageModelState(task="causal_lm", max_tokens=20)
    for _ in range(4):  # stride 4: four batches cover each position once
        state.update(logits, labels)
    full = reference(logits.numpy(), labels.numpy(), shift=True)
    got = state.compute().summary
    assert got["tokens"] == full["tokens"]
    assert got["accuracy"] == pytest.approx(full["accuracy"])


def test_state_size_does_not_grow_with_the_vocabulary():
    sizes = []
    for vocab in (100, 20_000):
        state = LanguageModelState(task="causal_lm")
        logits = torch.randn(2, 8, vocab)
        state.update(logits, torch.randint(0, vocab, (2, 8)))
        sizes.append(len(json.dumps(state.state_dict())))
    assert abs(sizes[0] - sizes[1]) < 0.05 * sizes[0]


def test_nonfinite_and_out_of_range_tokens_are_counted_not_used():
    logits, labels = batch(3)
    logits[1, 2] = float("nan")
    labels[2, 4] = 10_000
    state = LanguageModelState(task="causal_lm")
    state.update(logits, labels)
    summary = state.compute().summary
    assert summary["nonfinite_logits"] == 1 and summary["invalid_targets"] == 1
    assert math.isfinite(summary["nll"])


def test_bfloat16_logits_agree_with_float32():
    logits, labels = batch(4)
    full, half = LanguageModelState(), LanguageModelState()
    full.update(logits, labels)
    half.update(logits.bfloat16(), labels)
    a, b = full.compute().summary, half.compute().summary
    assert b["nll"] == pytest.approx(a["nll"], rel=0.02)
    assert abs(b["accuracy"] - a["accuracy"]) <= 0.05


def test_state_round_trip():
    logits, labels = batch(5)
    state = LanguageModelState()
    state.update(logits, labels, torch.tensor(3.0))
    clone = LanguageModelState()
    clone.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert clone.compute().summary == state.compute().summary


def test_bad_shapes_name_both():
    with pytest.raises(ValueError, match=r"Expected language-model `logits` of shape \[N, T, V\]"):
        token_statistics(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long), shift=True)
