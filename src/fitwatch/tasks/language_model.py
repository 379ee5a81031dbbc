"""Causal and seq2seq language models: next-token metrics reduced at capture, O(bins) state.

A language model's logits are ``[N, T, V]`` with a vocabulary ``V`` of 30-250k: holding them, or keeping
per-token-id counts, costs more than the step. :func:`token_statistics` reduces a batch the moment it is
captured, on its device and in the logits' own dtype, to five numbers per position (top-1 confidence, its
log-odds, whether the top-1 and the top-5 contain the label, the label's NLL); :class:`LanguageModelState`
adds them into calibration bins and a handful of sums. Nothing here grows with the vocabulary or the data.

Alignment: a causal LM predicts token ``t + 1`` at position ``t`` (Hugging Face models shift inside their
loss), so position ``t``'s logits are paired with ``labels[:, t + 1]``; a seq2seq decoder's logits are
already aligned with its labels. Positions whose label is ``ignore_index`` (padding, and the prompt of a
completion-only mask) count nowhere.

>>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]])
>>> labels = torch.tensor([[-100, 0, 1]])  # position 0 predicts label[1] = 0, position 1 predicts label[2] = 1
>>> stats = token_statistics(logits, labels, shift=True, ignore_index=-100)
>>> stats.correct.tolist(), stats.weight.tolist()
([1.0, 1.0], [1.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fitwatch.metrics.accumulator import SplitResult
from fitwatch.metrics.calibration import CalibrationState
from fitwatch.tasks.base import SummedState

__all__ = ["TRAIN_TOKENS_PER_BATCH", "LanguageModelState", "TokenStatistics", "token_statistics"]

#: Training batches are reduced on at most about this many positions (an evenly strided subset whose offset
#: turns with each batch, so every position is visited over a window). The training loss always comes from
#: the model's own loss over every token; the subset only feeds token accuracy and calibration, where the
#: thousands of tokens of an evaluation's training window pin the numbers to about a point. The reduction
#: costs one log-sum-exp and one top-5 over ``[positions x vocabulary]`` (on one CPU thread ~70 ms at 512 x 32k,
#: 12 ms at 128, 3 ms at 32): 128 positions were 5-9% of a 230 ms CPU step of a small LM at 32k (issue 15), 32
#: are about 1.5%, and a window of a few hundred steps still holds thousands of tokens. Validation batches are
#: reduced on every position.
TRAIN_TOKENS_PER_BATCH = 32
_TOP_K = 5
# Health counters, in this order (as the classification accumulator's, so the health series line up).
_HEALTH = ("nonfinite_logits", "invalid_targets", "nonfinite_loss", "batches")
_FOLD_EVERY = 32
# [correct, correct_top5, nll, loss_sum, loss_weight, tokens]
_SUMS = ("correct", "correct_top5", "nll", "loss_sum", "loss_weight", "tokens")


@dataclass
class TokenStatistics:
    """Per-position numbers of one batch, flattened: all ``[M]`` (positions with weight 0 count nowhere)."""

    confidence: Tensor
    log_odds: Tensor
    correct: Tensor
    correct_top5: Tensor
    nll: Tensor
    weight: Tensor
    nonfinite: Tensor
    invalid: Tensor


def token_statistics(
    logits: Tensor,
    labels: Tensor,
    *,
    shift: bool,
    ignore_index: int | None = -100,
    stride: int = 1,
    offset: int = 0,
) -> TokenStatistics:
    """Reduce ``[N, T, V]`` (or ``[T, V]``) logits with ``[N, T]`` labels to per-position statistics.

    Reductions run along the vocabulary on views of ``logits`` (the causal shift and the stride are slices,
    never copies of the logits), in their own dtype; only ``[positions]``-sized results are cast to float32.

    Args:
        logits: The model's logits.
        labels: Token ids, ``ignore_index`` where nothing is predicted.
        shift: Pair position ``t`` with ``labels[:, t + 1]`` (causal LM).
        ignore_index: Label value of untrained positions.
        stride: Use every ``stride``-th position only.
        offset: First position used, modulo ``stride``.

    Raises:
        ValueError: If the shapes do not pair up, naming both.
    """
    if logits.ndim == 2:
        logits, labels = logits.unsqueeze(0), labels.reshape(1, -1)
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            "Expected language-model `logits` of shape [N, T, V] with `labels` of shape [N, T], but got logits "
            f"{tuple(logits.shape)} and labels {tuple(labels.shape)}."
        )
    logits = logits.detach()
    labels = labels.detach().to(logits.device, non_blocking=True)
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    if stride > 1:
        offset %= stride
        logits, labels = logits[:, offset::stride], labels[:, offset::stride]
    vocab = logits.shape[-1]
    target = labels.long()
    ignored = target == ignore_index if ignore_index is not None else torch.zeros_like(target, dtype=torch.bool)
    in_range = (target >= 0) & (target < vocab)
    safe = torch.where(in_range & ~ignored, target, torch.zeros_like(target))
    top = logits.topk(min(_TOP_K, vocab), dim=-1)
    top_logit = top.values[..., 0]
    lse = torch.logsumexp(logits, dim=-1)
    label_logit = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    finite = torch.isfinite(lse) & torch.isfinite(top_logit)
    weight = (finite & in_range & ~ignored).float()
    top_logp = (top_logit.float() - lse.float()).clamp(max=0.0)
    confidence = top_logp.exp()
    # log(p / (1 - p)) from log p, without cancellation where p is small; p == 1 in float32 stays finite.
    log_odds = top_logp - torch.log(-torch.expm1(top_logp).clamp(max=-1e-30))
    nll = lse.float() - label_logit.float()
    correct = (top.indices[..., 0] == safe).float()
    correct_top5 = (top.indices == safe.unsqueeze(-1)).any(dim=-1).float()
    keep = weight > 0
    return TokenStatistics(
        confidence=torch.where(keep, confidence, 0.0).reshape(-1),
        log_odds=torch.where(keep, log_odds, 0.0).reshape(-1),
        correct=(correct * weight).reshape(-1),
        correct_top5=(correct_top5 * weight).reshape(-1),
        nll=torch.where(keep, nll, 0.0).reshape(-1),
        weight=weight.reshape(-1),
        nonfinite=(~finite & ~ignored).sum(),
        invalid=(~in_range & ~ignored).sum(),
    )


class LanguageModelState(SummedState):
    """Token-level loss, perplexity, accuracy, top-5 accuracy and calibration of one split.

    Args:
        task: ``"causal_lm"`` (next-token shift) or ``"seq2seq_lm"`` (aligned).
        ignore_index: Label value of untrained positions.
        n_bins: Equal-width calibration bins.
        max_tokens: Reduce each batch on at most about this many positions (``None``: all of them).
    """


    def __init__(self, *, task: str = "causal_lm", ignore_index: int | None = -100, n_bins: int = 15,
                 max_tokens: int | None = None) -> None:
        if task not in ("causal_lm", "seq2seq_lm"):
            raise ValueError(f"Expected `task` to be 'causal_lm' or 'seq2seq_lm', but got {task!r}.")
        self.task = task
        self.shift = task == "causal_lm"
        self.ignore_index = ignore_index
        self.n_bins = n_bins
        self.max_tokens = max_tokens
        self._calibration: CalibrationState | None = None
        self._sums: Tensor | None = None
        self._health: Tensor | None = None
        self._offset = 0
        # Reduced batches waiting to be added in one pass (a few dozen small kernels per fold, not per batch).
        self._pending: list[tuple[TokenStatistics, Tensor | float | None, Tensor | None]] = []

    @property
    def initialized(self) -> bool:
        return self._sums is not None

    def update(self, logits: Tensor, target: Tensor, loss: Tensor | float | None = None, *,
               mask: Tensor | None = None) -> None:
        """Reduce one batch into the states. No host sync. ``loss`` is the batch's mean token loss as the model
        computed it (weighted by the batch's counted tokens); ``mask`` leaves rows (samples) out."""
        if not self.initialized:
            self._allocate(logits.device)
        elif self._sums.device != logits.device:  # type: ignore[union-attr]
            self._move_to(logits.device)
        if mask is not None:
            rows = mask.reshape(mask.shape[0], -1)[:, 0] if mask.ndim > 1 else mask
            target = torch.where(rows.to(target.device).reshape(-1, *([1] * (target.ndim - 1))), target,
                                 torch.full_like(target, self.ignore_index if self.ignore_index is not None else -100))
        stride = 1
        if self.max_tokens:
            positions = target.numel() - (target.shape[0] if self.shift and target.ndim > 1 else 0)
            stride = max(1, math.ceil(positions / self.max_tokens))
        stats = token_statistics(logits, target, shift=self.shift, ignore_index=self.ignore_index, stride=stride,
                                 offset=self._offset)
        self._offset += 1
        held = loss.detach().clone() if isinstance(loss, Tensor) else loss  # the caller may scale it in place
        counted = None
        if stride > 1 and held is not None:
            # The batch's loss is its mean over every counted token: it weighs by all of them, not by the sample.
            labels = target[..., 1:] if self.shift and target.ndim > 1 else target
            counted = (labels != self.ignore_index).sum() if self.ignore_index is not None else None
        self._pending.append((stats, held, counted))
        if len(self._pending) >= _FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if len(pending) == 1 and pending[0][2] is None:
            self._add(*pending[0][:2])
            return
        device = self._sums.device  # type: ignore[union-attr]
        fields = {name: torch.cat([getattr(p[0], name) for p in pending]) for name in
                  ("confidence", "log_odds", "correct", "correct_top5", "nll", "weight")}
        stats = TokenStatistics(**fields, nonfinite=torch.stack([p[0].nonfinite for p in pending]).sum(),
                                invalid=torch.stack([p[0].invalid for p in pending]).sum())
        losses = [p[1] for p in pending]
        if all(loss is None for loss in losses):
            self._add(stats, None)
            return
        # Each batch's mean loss weighs by its own counted tokens (all of them where only a sample was reduced).
        counts = torch.stack([(p[2] if p[2] is not None else p[0].weight.sum()).to(device, torch.float64)
                              for p in pending])
        values = torch.stack([
            (loss.detach().reshape(-1)[0] if isinstance(loss, Tensor) else torch.tensor(0.0 if loss is None else float(loss)))
            .to(device, torch.float64) for loss in losses
        ])
        has = torch.tensor([loss is not None for loss in losses], device=device)
        self._add(stats, None, losses=(values, torch.where(has, counts, 0.0)))

    def _add(self, stats: TokenStatistics, loss: Tensor | float | None, *,
             losses: tuple[Tensor, Tensor] | None = None) -> None:
        assert self._calibration is not None and self._sums is not None and self._health is not None
        dtype = self._sums.dtype
        w = stats.weight.to(dtype)
        conf = stats.confidence.to(dtype)
        correct = stats.correct.to(dtype)
        self._calibration._add_rows(conf, correct, w, stats.log_odds.to(dtype), None, None, None)
        brier = (conf - correct) ** 2 * w
        tokens = w.sum()
        self._calibration.sums += torch.stack([brier.sum(), stats.nll.to(dtype).sum(), tokens])
        loss_sum = torch.zeros((), dtype=dtype, device=self._sums.device)
        loss_weight = torch.zeros((), dtype=dtype, device=self._sums.device)
        nonfinite_loss = torch.zeros((), dtype=torch.long, device=self._sums.device)
        if losses is not None:
            values, counts = losses[0].to(dtype), losses[1].to(dtype)
            ok = torch.isfinite(values) & (counts > 0)
            loss_sum = torch.where(ok, values * counts, 0.0).sum()
            loss_weight = torch.where(ok, counts, 0.0).sum()
            nonfinite_loss = (~torch.isfinite(values) & (counts > 0)).sum()
        elif loss is not None:
            value = (loss.detach().to(self._sums.device).reshape(-1)[0].to(dtype) if isinstance(loss, Tensor)
                     else torch.tensor(float(loss), dtype=dtype, device=self._sums.device))
            ok = torch.isfinite(value)
            loss_sum = torch.where(ok, value * tokens, 0.0)
            loss_weight = torch.where(ok, tokens, 0.0)
            nonfinite_loss = (~ok & (tokens > 0)).long()
        self._sums += torch.stack([correct.sum(), stats.correct_top5.to(dtype).sum(), stats.nll.to(dtype).sum(),
                                   loss_sum, loss_weight, tokens])
        batches = torch.ones((), dtype=torch.long, device=self._sums.device)
        self._health += torch.stack([stats.nonfinite.long(), stats.invalid.long(), nonfinite_loss, batches])

    # ------------------------------------------------------------------ read
    def tensors(self) -> list[Tensor]:
        if not self.initialized:
            return []
        self._fold()
        assert self._calibration is not None
        return [*self._calibration.tensors(), self._sums, self._health]  # type: ignore[list-item]

    def compute(self) -> SplitResult:
        """Read the states back (one transfer) and compute the split's numbers."""
        if not self.initialized:
            return SplitResult(summary={}, per_class={})
        self._fold()
        assert self._calibration is not None and self._sums is not None and self._health is not None
        sums = dict(zip(_SUMS, self._sums.detach().cpu().tolist()))
        tokens = sums["tokens"]
        summary: dict[str, float] = {}
        if tokens > 0:
            summary.update(self._calibration.compute())
            summary["accuracy"] = sums["correct"] / tokens
            summary["top5_accuracy"] = sums["correct_top5"] / tokens
            summary["nll"] = sums["nll"] / tokens
        # The model's own loss when it handed one over (label smoothing, z-loss, ... included), else the NLL.
        if sums["loss_weight"] > 0:
            summary["loss"] = sums["loss_sum"] / sums["loss_weight"]
        elif "nll" in summary:
            summary["loss"] = summary["nll"]
        if "loss" in summary:
            summary["perplexity"] = math.exp(summary["loss"]) if summary["loss"] < 700 else math.inf
        summary["samples"] = float(tokens)
        summary["tokens"] = float(tokens)
        summary.update({k: float(v) for k, v in zip(_HEALTH, self._health.detach().cpu().tolist())})
        return SplitResult(summary=summary, per_class={}, reliability=self._calibration.reliability(), confusion=None)

    def reset(self) -> None:
        self._pending = []
        super().reset()

    @torch.inference_mode(False)  # states made in `validate()` must take in-place updates in `fit()`
    def _allocate(self, device: torch.device) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self._calibration = CalibrationState(1, self.n_bins, classwise=False, device=device, dtype=dtype)
        self._sums = torch.zeros(len(_SUMS), dtype=dtype, device=device)
        self._health = torch.zeros(len(_HEALTH), dtype=torch.long, device=device)
