"""Batches held by reference until a fold, and the checks that make that safe (issue 15).

A training step hands fitwatch its logits, targets and loss; copying them costs a kernel each on every step, and
folding them into the metric states at once costs a hundred small kernels. The split states hold them instead,
as they are (a ``detach`` view where a tensor carries a graph: no kernel, no device allocation), with each
tensor's version counter, and fold many at a time. :func:`intact` is what the fold checks first: a tensor changed
in place after its step (its version moved) or an output buffer written again by a later step (two held batches
at one address: held references keep their memory, so a fresh tensor can never get that address, while a
CUDA-graph replay writes the same static buffer) is never read with other values than its step's.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["HeldBatch", "flat_rows", "intact", "loss_of", "version_of", "views_a_larger_storage"]


@dataclass(slots=True)
class HeldBatch:
    """One held batch: logits and targets in their own shapes, its mean loss (as given), its row mask (flat), its
    number of rows and how wide a target row is; ``versions``: the tensors' version counters when they are held by
    reference (``None`` for copies, which nobody else can change)."""

    logits: Tensor
    target: Tensor
    loss: Tensor | float | None
    mask: Tensor | None
    rows: int
    target_width: int  # 1: a class id per row; 2: a distribution (soft targets) or multi-hot row
    versions: tuple[int, int, int, int] | None = None


def version_of(t: Any) -> int:
    """A tensor's version counter (bumped by every in-place change); ``-1`` for what has none (an inference tensor,
    which nothing outside inference mode can change, or no tensor)."""
    if not isinstance(t, Tensor) or t.is_inference():
        return -1
    return t._version


def flat_rows(t: Tensor, width: int | None) -> Tensor:
    """``t`` as rows: ``[N]`` (``width`` None) or ``[N, width]``; no op when it already is."""
    if width is None:
        return t if t.ndim == 1 else t.reshape(-1)
    return t if t.ndim == 2 else t.reshape(-1, width)


def views_a_larger_storage(t: Tensor) -> bool:
    """Whether holding ``t`` would keep much more memory alive than ``t`` itself (a column of a whole batch)."""
    try:
        return t.untyped_storage().nbytes() > 2 * t.numel() * t.element_size() + 65536
    except (RuntimeError, NotImplementedError):  # a tensor subclass or a storage that cannot be inspected
        return True


def loss_of(loss: Tensor | float | None, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A batch's mean loss as a one-element tensor (zero for a batch without one: its weight is masked out)."""
    if not isinstance(loss, Tensor):  # a fill, not a copy from the host: no synchronisation
        return torch.full((1,), float(loss) if loss is not None else 0.0, dtype=torch.float32, device=device).to(dtype)
    return loss.detach().to(device).float().reshape(-1)[:1].to(dtype)


def intact(batches: list[HeldBatch]) -> tuple[list[HeldBatch], int]:
    """The held batches whose tensors still hold what their step produced, and how many were dropped (or lost
    their loss): a version counter that moved since the batch was held (a tensor changed in place), or logits at
    the address of a later batch's (an output buffer written again, as a CUDA-graph replay does; held references
    keep their memory, so a fresh tensor can never get that address). Logs once per fold that drops any."""
    if all(b.versions is None for b in batches):
        return batches, 0
    kept: list[HeldBatch | None] = []
    addresses: dict[tuple[int, tuple[int, ...]], int] = {}
    changed = 0
    for b in batches:
        if b.versions is not None:
            try:
                now = (version_of(b.logits), version_of(b.target), version_of(b.loss), version_of(b.mask))
                address = (b.logits.data_ptr(), tuple(b.logits.shape)) if b.logits.numel() else None
            except RuntimeError:  # a storage freed under us (a CUDA-graph tree invalidates overwritten outputs)
                changed += 1
                continue
            if now != b.versions:
                changed += 1
                if now[2] == b.versions[2] or now[:2] != b.versions[:2] or now[3] != b.versions[3]:
                    continue
                b = dataclasses.replace(b, loss=None)  # only its loss moved: the rows still count, the loss not
            if address is not None:
                # Held references keep their memory, so a later step's logits at the same address are the same
                # buffer written again: the earlier rows are gone.
                earlier = addresses.get(address)
                if earlier is not None and kept[earlier] is not None:
                    kept[earlier] = None
                    changed += 1
                addresses[address] = len(kept)
        kept.append(b)
    if changed:
        logging.getLogger("fitwatch").info(
            "fitwatch: %d held batch(es) changed after their step (a tensor modified in place, or an output "
            "buffer reused by the next step); they are left out and batches are copied from now on.", changed)
    return [b for b in kept if b is not None], changed
