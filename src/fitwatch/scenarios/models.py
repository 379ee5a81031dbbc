"""The models and training recipes of the scenarios, and the Lightning module that trains them.

Two networks: :class:`TabularMLP` for the scikit-learn sets and :class:`TicketEncoder`, a small BERT built
from a ``transformers.BertConfig`` (not pretrained) over the MiniLM tokenizer's wordpieces. A
:class:`Recipe` says how they are optimized; the optimizer-side faults (a learning rate too high or too
low, a schedule sized for too few steps, weight decay on LayerNorm and biases) are recipes too, written the
way the mistake is made in real code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from fitwatch import _validation as v

__all__ = [
    "LossOnlyModule",
    "ModelSpec",
    "Recipe",
    "ScenarioModule",
    "TabularMLP",
    "TicketEncoder",
    "build_network",
]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Size of the network.

    Args:
        hidden: Width of the hidden layers (MLP) or of the encoder (tickets).
        depth: Hidden layers (MLP) or encoder layers (tickets).
        dropout: Dropout probability after each hidden layer (MLP) or in the encoder (tickets).
    """

    hidden: int = 128
    depth: int = 1
    dropout: float = 0.1


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How the network is optimized.

    Args:
        optimizer: ``"adamw"`` or ``"sgd"`` (with ``momentum``).
        lr: Peak learning rate.
        weight_decay: Weight decay.
        decay_norm_and_bias: Give every parameter the weight decay, as
            ``AdamW(model.parameters(), weight_decay=...)`` does. ``False`` is the usual recipe (BERT's
            ``optimization.py``, the HF Trainer): norm weights and biases in a group with no decay.
        momentum: SGD momentum.
        schedule: ``"constant"``, ``"linear"`` or ``"cosine"`` decay to zero, after a linear warmup.
        warmup: Share of the schedule's steps spent warming up.
        schedule_steps: The schedule's length as a share of the steps actually trained: 1.0 in a correct
            recipe; below 1 the learning rate reaches zero early (a miscounted number of total steps).
        label_smoothing: Label smoothing of the cross-entropy.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    decay_norm_and_bias: bool = False
    momentum: float = 0.9
    schedule: str = "constant"
    warmup: float = 0.0
    schedule_steps: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        v.check_choice("optimizer", self.optimizer, ("adamw", "sgd"))
        v.check_positive_float("lr", self.lr)
        v.check_choice("schedule", self.schedule, ("constant", "linear", "cosine"))
        v.check_fraction("warmup", self.warmup)
        v.check_positive_float("schedule_steps", self.schedule_steps)
        v.check_fraction("label_smoothing", self.label_smoothing)


class TabularMLP(nn.Module):
    """``depth`` blocks of Linear-ReLU-Dropout and a linear ``head``.

    >>> net = TabularMLP(4, 3, ModelSpec(hidden=8, depth=2))
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 3])
    """

    def __init__(self, num_features: int, num_classes: int, spec: ModelSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = num_features
        for _ in range(spec.depth):
            layers += [nn.Linear(width, spec.hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
            width = spec.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class TicketEncoder(nn.Module):
    """A small BERT encoder built from a ``BertConfig``, trained from scratch, with mean pooling and a head.

    The MiniLM tokenizer has 30522 wordpieces; the tickets use about a thousand. The embedding table covers
    only the ids in ``token_ids`` (the training set's): a lookup buffer maps every tokenizer id to its row,
    and ids never seen in training to one shared unknown row, as a vocabulary built from the training set
    does. That keeps the model small enough to train in seconds on a CPU. The sentence vector is the mean of
    the token states over the attention mask, as MiniLM's own sentence embeddings are.

    Args:
        token_ids: Tokenizer ids that get their own embedding row (id 0, the padding, always does).
        num_classes: Number of classes.
        spec: ``hidden`` is the encoder width (4 x ``hidden`` feed-forward, 64-wide heads), ``depth`` the
            number of layers, ``dropout`` BERT's hidden and attention dropout (and the head's).
        tokenizer_size: Number of ids the tokenizer can produce.
        max_length: Longest input, in tokens.
    """

    def __init__(
        self,
        token_ids: Sequence[int],
        num_classes: int,
        spec: ModelSpec,
        *,
        tokenizer_size: int,
        max_length: int,
    ) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        kept = [0, *sorted({int(t) for t in token_ids} - {0})]
        unknown = len(kept)
        lookup = torch.full((tokenizer_size,), unknown, dtype=torch.long)
        lookup[torch.tensor(kept)] = torch.arange(len(kept))
        self.register_buffer("lookup", lookup, persistent=True)
        config = BertConfig(
            vocab_size=len(kept) + 1,
            hidden_size=spec.hidden,
            num_hidden_layers=spec.depth,
            num_attention_heads=max(1, spec.hidden // 64),
            intermediate_size=4 * spec.hidden,
            max_position_embeddings=max_length,
            hidden_dropout_prob=spec.dropout,
            attention_probs_dropout_prob=spec.dropout,
            pad_token_id=0,
        )
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.hidden, num_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        states = self.encoder(
            input_ids=self.lookup[input_ids], attention_mask=attention_mask
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled))


def build_network(data: Any, spec: ModelSpec) -> nn.Module:
    """The network for a :class:`~fitwatch.scenarios.data.TaskData`: an MLP, or the ticket encoder."""
    if data.num_features is not None:
        return TabularMLP(data.num_features, data.num_classes, spec)
    from fitwatch.scenarios.data import MAX_LENGTH

    return TicketEncoder(
        data.token_ids, data.num_classes, spec, tokenizer_size=data.tokenizer_size, max_length=MAX_LENGTH
    )


def _is_norm_or_bias(name: str, module: nn.Module) -> bool:
    return name.endswith("bias") or isinstance(module, nn.LayerNorm)


class ScenarioModule(pl.LightningModule):
    """Trains a network with cross-entropy under a :class:`Recipe`.

    Both steps return ``{"loss", "logits"}`` (what FitWatch's default extraction reads). Batches are
    ``(x, y[, sample_id])`` tuples or dicts with ``input_ids``, ``attention_mask`` and ``labels``.

    Args:
        net: The network.
        recipe: The optimizer, schedule and loss settings.
    """

    def __init__(self, net: nn.Module, recipe: Recipe) -> None:
        super().__init__()
        self.net = net
        self.recipe = recipe
        #: First step at which the schedule's learning rate is below 1% of its peak (``None`` if it never is).
        self.decayed_step: int | None = None

    def forward(self, batch: Any) -> Tensor:
        if isinstance(batch, dict):
            return self.net(batch["input_ids"], batch["attention_mask"])
        return self.net(batch[0])

    def _step(self, batch: Any) -> dict[str, Tensor]:
        target = batch["labels"] if isinstance(batch, dict) else batch[1]
        logits = self(batch)
        loss = nn.functional.cross_entropy(logits, target, label_smoothing=self.recipe.label_smoothing)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        return self._step(batch)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._step(batch)

    def configure_optimizers(self) -> Any:
        r = self.recipe
        if r.decay_norm_and_bias:
            groups: Any = self.parameters()
        else:
            owners = {
                f"{m}.{p}" if m else p: mod
                for m, mod in self.named_modules()
                for p, _ in mod.named_parameters(recurse=False)
            }
            plain = [(n, p) for n, p in self.named_parameters() if not _is_norm_or_bias(n, owners[n])]
            exempt = [(n, p) for n, p in self.named_parameters() if _is_norm_or_bias(n, owners[n])]
            groups = [
                {"params": [p for _, p in plain], "weight_decay": r.weight_decay, "name": "decay"},
                {"params": [p for _, p in exempt], "weight_decay": 0.0, "name": "no_decay"},
            ]
        if r.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
        else:
            optimizer = torch.optim.AdamW(groups, lr=r.lr, weight_decay=r.weight_decay)
        if r.schedule == "constant" and r.warmup == 0:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches * r.schedule_steps))
        factor = schedule_factor(
            r.schedule, warmup=max(1, round(r.warmup * total)) if r.warmup else 0, total=total
        )
        if r.schedule != "constant":
            warm = max(1, round(r.warmup * total)) if r.warmup else 0
            self.decayed_step = next(t for t in range(warm, total + 1) if factor(t) < 0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def schedule_factor(kind: str, *, warmup: int, total: int) -> Any:
    """The multiplier of the peak learning rate at each step, as the Hugging Face schedules define it.

    Linear warmup over ``warmup`` steps, then ``"constant"``, ``"linear"`` or ``"cosine"`` decay that reaches
    zero at ``total`` steps and stays there (``get_linear_schedule_with_warmup`` clamps at zero too).

    >>> f = schedule_factor("linear", warmup=2, total=10)
    >>> [round(f(s), 3) for s in (0, 1, 2, 6, 10, 12)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    >>> round(schedule_factor("cosine", warmup=0, total=10)(5), 3)
    0.5
    """

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class LossOnlyModule(ScenarioModule):
    """The same training as :class:`ScenarioModule`, written as a typical LightningModule that was not written
    for fitwatch.

    ``training_step`` logs ``train_loss`` and returns the loss tensor alone; ``validation_step`` logs
    ``val_loss`` and ``val_acc`` and returns nothing. Both call the network as ``self.net(...)``, never the
    module itself, so FitWatch's hook on the module's ``forward`` captures nothing: the logged metrics and the
    returned training loss are all it gets (its optimizer and model diagnostics read the module and the
    optimizer, as always). The optimizer and schedule are :class:`ScenarioModule`'s.
    """

    def _net_logits(self, batch: Any) -> tuple[Tensor, Tensor]:
        if isinstance(batch, dict):
            return self.net(batch["input_ids"], batch["attention_mask"]), batch["labels"]
        return self.net(batch[0]), batch[1]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:  # type: ignore[override]
        logits, target = self._net_logits(batch)
        loss = nn.functional.cross_entropy(logits, target, label_smoothing=self.recipe.label_smoothing)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:  # type: ignore[override]
        logits, target = self._net_logits(batch)
        loss = nn.functional.cross_entropy(logits, target, label_smoothing=self.recipe.label_smoothing)
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_acc", (logits.argmax(-1) == target).float().mean())
