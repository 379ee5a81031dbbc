"""Tiny GPT-2 language models built from configs (no download) and token data with completion-only labels."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

SEQ = 24
PROMPT = 6


def gpt2(vocab: int = 300, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=SEQ, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel(config)


class CompletionData(torch.utils.data.Dataset):
    """Sequences whose next token is mostly ``(token + 1) % vocab`` (learnable); the first ``PROMPT``
    positions are a prompt (labels -100, as a completion-only collator makes them)."""

    def __init__(self, n: int, seed: int, vocab: int = 300) -> None:
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(1, vocab, (n, 1), generator=g)
        self.x = (start + torch.arange(SEQ)) % vocab
        noise = torch.rand(n, SEQ, generator=g) < 0.2
        self.x = torch.where(noise, torch.randint(1, vocab, (n, SEQ), generator=g), self.x)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        labels = self.x[i].clone()
        labels[:PROMPT] = -100
        return {"input_ids": self.x[i], "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": labels}


@torch.no_grad()
def next_token_reference(model: GPT2LMHeadModel, data: CompletionData) -> dict[str, float]:
    """Token accuracy and mean NLL over the completion tokens, computed by hand (explicit shift)."""
    model.eval()
    correct, total, nll = 0, 0, 0.0
    for i in range(len(data)):
        item = data[i]
        logits = model(input_ids=item["input_ids"][None]).logits[0]
        for pos in range(SEQ - 1):
            label = int(item["labels"][pos + 1])
            if label == -100:
                continue
            correct += int(logits[pos].argmax()) == label
            nll -= float(torch.log_softmax(logits[pos], -1)[label])
            total += 1
    return {"accuracy": correct / total, "nll": nll / total, "tokens": total}
