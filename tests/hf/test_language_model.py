"""The HF Trainer on causal LMs, regressors, LoRA and TRL: inferred tasks, next-token numbers, accumulation."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from transformers import Trainer, TrainingArguments

from fitwatch.hf import FitWatchCallback
from fitwatch.warnings import FitWatchRuntimeWarning
from tests.hf.lm import CompletionData, gpt2, next_token_reference
from tests.hf.tiny import SequenceData, sequence_model


def args(tmp_path, **kwargs) -> TrainingArguments:
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, per_device_eval_batch_size=8,
                num_train_epochs=2, eval_strategy="epoch", logging_steps=2, learning_rate=5e-3, report_to=[],
                save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    base.update(kwargs)
    return TrainingArguments(**base)


def fit(tmp_path, model, cb, train, val, **kwargs) -> Trainer:
    trainer = Trainer(model=model, args=args(tmp_path, **kwargs), train_dataset=train, eval_dataset=val, callbacks=[cb])
    trainer.train()
    return trainer


def test_causal_lm_with_default_id2label_trains_and_reports_next_token_numbers(tmp_path):
    model = gpt2()
    assert len(model.config.id2label) == 2  # the default every config carries: not class names
    cb = FitWatchCallback()
    val = CompletionData(24, seed=1)
    fit(tmp_path, model, cb, CompletionData(64, seed=0), val)
    assert cb.observer.task == "causal_lm"
    ref = next_token_reference(model, val)
    assert cb.history["performance/accuracy/val"][-1][1] == pytest.approx(ref["accuracy"], abs=1e-6)
    assert cb.history["calibration/nll/val"][-1][1] == pytest.approx(ref["nll"], rel=1e-4)
    # The model's own eval loss over the same tokens (one batch mean per batch, weighted by tokens).
    assert cb.history["performance/loss/val"][-1][1] == pytest.approx(ref["nll"], rel=1e-4)
    assert cb.history["performance/perplexity/val"][-1][1] == pytest.approx(math.exp(ref["nll"]), rel=1e-4)
    assert cb.history["health/samples/val"][-1][1] == ref["tokens"]
    assert not any(k.startswith("per_class/") for k in cb.history)
    assert "FW-FAILED-RUN" not in {f.code for f in cb.findings}


def test_gradient_accumulation_reads_the_per_token_loss(tmp_path):
    """lr=0: the model never changes, so each window's true per-token loss is computable by hand."""
    model = gpt2(seed=1)
    train = CompletionData(32, seed=0)
    cb = FitWatchCallback(log_every_n_steps=1)
    fit(tmp_path, model, cb, train, None, learning_rate=0.0, per_device_train_batch_size=2,
        gradient_accumulation_steps=4, num_train_epochs=1, eval_strategy="no", logging_steps=1,
        lr_scheduler_type="constant", dataloader_drop_last=True)
    ref = next_token_reference(model, train)  # the whole set: every window is ~ the same model on other data
    losses = [v for _, v in cb.history["performance/step_loss/train"]]
    assert len(losses) == 4
    assert sum(losses) / len(losses) == pytest.approx(ref["nll"], rel=0.02)  # not 1/4 of it


def test_state_and_history_do_not_grow_with_the_vocabulary(tmp_path):
    sizes, keys = [], []
    for vocab in (300, 6000):
        cb = FitWatchCallback()
        fit(tmp_path / str(vocab), gpt2(vocab), cb, CompletionData(32, 0, vocab), CompletionData(16, 1, vocab),
            num_train_epochs=1)
        sizes.append(len(json.dumps(cb.state())))
        keys.append(sorted(cb.history))
    assert keys[0] == keys[1]
    assert abs(sizes[0] - sizes[1]) < 0.1 * sizes[0]


def test_model_without_logits_is_followed_by_its_loss(tmp_path):
    class NoLogits(torch.nn.Module):
        """What TRL's fused-loss paths look like to a callback: a loss, no logits."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = gpt2()
            self.config = self.inner.config

        def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            return {"loss": out.loss}

    cb = FitWatchCallback()
    with pytest.warns(FitWatchRuntimeWarning, match="returns no `logits`"):
        fit(tmp_path, NoLogits(), cb, CompletionData(32, 0), CompletionData(16, 1), num_train_epochs=3)
    assert len(cb.history["performance/loss/val"]) == 3
    assert len(cb.history["performance/perplexity/val"]) == 3
    assert cb.observer.monitor.history  # detectors were fed


def test_regression_head_reports_regression_metrics(tmp_path):
    from sklearn.metrics import mean_squared_error, r2_score

    class Regression(SequenceData):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item["labels"] = (self.x[i, 0].float() / 16.0)
            return item

    model = sequence_model(num_labels=1)
    assert model.config.num_labels == 1 and len(model.config.id2label) == 1
    cb = FitWatchCallback()
    val = Regression(24, seed=1)
    trainer = fit(tmp_path, model, cb, Regression(48, seed=0), val)
    assert cb.observer.task == "regression"
    pred = trainer.predict(val).predictions.reshape(-1)
    y = [float(val[i]["labels"]) for i in range(len(val))]
    assert cb.history["performance/mse/val"][-1][1] == pytest.approx(mean_squared_error(y, pred), rel=1e-4)
    assert cb.history["performance/r2/val"][-1][1] == pytest.approx(r2_score(y, pred), rel=1e-3, abs=1e-4)
    assert not any(k.startswith(("per_class/", "calibration/")) for k in cb.history)


def test_lora_update_ratios_are_named_by_the_adapted_module(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(gpt2(), LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
    cb = FitWatchCallback(diag_every_n_steps=2)
    fit(tmp_path, model, cb, CompletionData(32, 0), CompletionData(16, 1), num_train_epochs=1)
    blocks = {k.split("/")[2] for k in cb.history if k.startswith("weights/update_ratio/")}
    assert blocks == {"transformer.h.0", "transformer.h.1"}
    assert cb.observer.task == "causal_lm"


def test_explicit_class_names_that_disagree_still_fail_fast(tmp_path):
    cb = FitWatchCallback(class_names=["a", "b"], task="multiclass")
    with pytest.raises(ValueError, match="from `class_names`"):
        fit(tmp_path, sequence_model(num_labels=3), cb, SequenceData(16, 0), None, eval_strategy="no")


def test_sft_trainer(tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    data = CompletionData(32, 0)
    rows = [{"input_ids": data.x[i].tolist(), "completion_mask": [0] * 6 + [1] * 18} for i in range(len(data))]
    train = Dataset.from_list(rows)
    val = Dataset.from_list(rows[:16])

    from fitwatch.datasets import load_minilm_tokenizer

    tokenizer = load_minilm_tokenizer()  # the SFTTrainer wants a real tokenizer; the data is already tokenised

    cb = FitWatchCallback()
    warnings.filterwarnings("ignore", category=FutureWarning)  # trl 1.16 reads transformers 5's deprecated fields
    config = trl.SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2,
                           eval_strategy="epoch", logging_steps=2, report_to=[], save_strategy="no", use_cpu=True,
                           completion_only_loss=True, disable_tqdm=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TRL's own advice about padding-free and chat templates
        trainer = trl.SFTTrainer(model=gpt2(), args=config, train_dataset=train, eval_dataset=val,
                                 processing_class=tokenizer, callbacks=[cb])
        trainer.train()
    assert len(cb.history["performance/loss/val"]) == 2
    assert cb.history["performance/loss/val"][-1][1] == pytest.approx(trainer.state.log_history[-2]["eval_loss"], rel=1e-4)
