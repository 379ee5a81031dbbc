"""Task inference from the model's head (with the default two-entry id2label every config carries) and shapes."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2Config,
    GPT2LMHeadModel,
)

from fitwatch.tasks import task_from_model, task_from_shapes


def bert(**kwargs) -> BertConfig:
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, **kwargs)


def gpt2() -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=16, n_embd=16, n_layer=1, n_head=2))


@pytest.mark.parametrize(
    ("build", "task", "names"),
    [
        (gpt2, "causal_lm", None),
        (lambda: BertForSequenceClassification(bert(num_labels=3)), "multiclass", ("LABEL_0", "LABEL_1", "LABEL_2")),
        (lambda: BertForSequenceClassification(bert(num_labels=2, id2label={0: "neg", 1: "pos"})), "multiclass", ("neg", "pos")),
        (lambda: BertForSequenceClassification(bert(num_labels=1)), "regression", None),
        (lambda: BertForSequenceClassification(bert(num_labels=4, problem_type="regression")), "regression", None),
        (lambda: BertForSequenceClassification(bert(num_labels=4, problem_type="multi_label_classification")), "multilabel", None),
        (lambda: BertForTokenClassification(bert(num_labels=5)), "token_classification", None),
        (lambda: BartForConditionalGeneration(BartConfig(vocab_size=60, d_model=16, encoder_layers=1, decoder_layers=1,
                                                          encoder_attention_heads=2, decoder_attention_heads=2,
                                                          encoder_ffn_dim=16, decoder_ffn_dim=16)), "seq2seq_lm", None),
    ],
)
def test_task_from_the_head(build, task, names):
    model = build()
    got = task_from_model(model)
    assert got.task == task
    if names is not None:
        assert got.class_names == names
    if task in ("causal_lm", "regression", "seq2seq_lm"):
        assert got.class_names is None  # the default id2label of these configs is never taken as classes


def test_task_seen_through_peft_and_a_lightning_style_wrapper():
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(gpt2(), LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
    assert task_from_model(peft_model).task == "causal_lm"

    class Module(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = gpt2()

    assert task_from_model(Module()).task == "causal_lm"
    assert task_from_model(torch.nn.Linear(2, 2)).task is None


@pytest.mark.parametrize(
    ("logits", "target", "task"),
    [
        (torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]), "multiclass"),
        (torch.zeros(4), torch.tensor([0, 1, 1, 0]), "binary"),
        (torch.zeros(4, 1), torch.tensor([[0.0], [1.0], [1.0], [0.0]]), "binary"),
        (torch.zeros(4, 1), torch.tensor([0, 1, 1, 0]), "binary"),
        (torch.zeros(4, 3), torch.tensor([[0, 1, 1]] * 4).float(), "multilabel"),
        (torch.zeros(4), torch.tensor([0.3, 1.7, 2.0, -1.0]), "regression"),
        (torch.zeros(4, 1), torch.tensor([0.3, 1.7, 2.0, -1.0]), "regression"),
        (torch.zeros(2, 6, 9), torch.zeros(2, 6, dtype=torch.long), "token_classification"),
        (torch.zeros(2, 6, 5000), torch.zeros(2, 6, dtype=torch.long), "causal_lm"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, dtype=torch.long), None),
    ],
)
def test_task_from_shapes(logits, target, task):
    assert task_from_shapes(logits, target).task == task


def test_alignment_from_the_returned_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 10, 1200)
    labels = torch.randint(0, 1200, (2, 10))
    shifted = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 1200), labels[:, 1:].reshape(-1))
    aligned = torch.nn.functional.cross_entropy(logits.reshape(-1, 1200), labels.reshape(-1))
    assert task_from_shapes(logits, labels, loss=shifted).task == "causal_lm"
    assert task_from_shapes(logits, labels, loss=aligned).task == "seq2seq_lm"
