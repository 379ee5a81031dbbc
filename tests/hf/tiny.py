"""Tiny BERT models built from configs (no download) and learnable synthetic token data."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification, TrainingArguments

VOCAB = 64
SEQ = 12


def bert_config(num_labels: int, **kwargs) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=SEQ + 4, num_labels=num_labels, **kwargs,
    )


def sequence_model(num_labels: int = 3, seed: int = 0, **kwargs) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(bert_config(num_labels, **kwargs))


def token_model(num_labels: int = 4, seed: int = 0) -> BertForTokenClassification:
    torch.manual_seed(seed)
    return BertForTokenClassification(bert_config(num_labels))


class SequenceData(torch.utils.data.Dataset):
    """The label is the first token modulo ``num_labels`` (learnable), some labels flipped (not trivial)."""

    def __init__(self, n: int, seed: int, num_labels: int = 3, multilabel: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(4, VOCAB, (n, SEQ), generator=g)
        if multilabel:
            self.y = torch.stack([(self.x[:, i] % 2 == 0) for i in range(num_labels)], dim=1).float()
        else:
            y = self.x[:, 0] % num_labels
            flip = torch.rand(n, generator=g) < 0.15
            self.y = torch.where(flip, torch.randint(0, num_labels, (n,), generator=g), y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": self.y[i]}


class TokenData(torch.utils.data.Dataset):
    """Per-token labels (token id modulo ``num_labels``); padding positions and the first token get -100."""

    def __init__(self, n: int, seed: int, num_labels: int = 4) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(4, VOCAB, (n, SEQ), generator=g)
        lengths = torch.randint(SEQ // 2, SEQ + 1, (n,), generator=g)
        self.mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
        self.y = torch.where(self.mask.bool(), self.x % num_labels, torch.full_like(self.x, -100))
        self.y[:, 0] = -100

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "attention_mask": self.mask[i], "labels": self.y[i]}


def args(tmp_path, **kwargs) -> TrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=16, per_device_eval_batch_size=32,
        eval_strategy="epoch", logging_steps=2, report_to=["tensorboard"], save_strategy="no", use_cpu=True,
        disable_tqdm=True, learning_rate=5e-4, seed=0, data_seed=0,
    )
    defaults.update(kwargs)
    return TrainingArguments(**defaults)
