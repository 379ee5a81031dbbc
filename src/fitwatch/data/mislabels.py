"""Suspected mislabeled training samples, tracked per sample id during training.

Two training-dynamics signals, both read from the logits the training step already computes:

- :class:`AreaUnderMargin` (Pleiss et al. 2020, "Identifying Mislabeled Data using the Area Under the
  Margin Ranking"): the margin of a sample at one presentation is its assigned-class logit minus the
  largest other logit; its AUM is the mean margin over all presentations. A correctly labelled hard
  sample has a small positive AUM (its label eventually wins); a mislabeled one keeps a negative AUM,
  because the features of its true class pull against the label it was given.
- :class:`ForgettingEvents` (Toneva et al. 2019, "An Empirical Study of Example Forgetting during Deep
  Neural Network Learning"): a forgetting event is a presentation at which a sample that was classified
  correctly at its previous presentation is now misclassified. Samples never learned rank first (the
  paper counts them as forgotten infinitely often), then the most forgotten.

Both keep dense per-id tensors on the logits' device and update them with vectorised scatter operations:
no per-sample Python loop and no host synchronisation per update. With ``num_samples`` given (the
training set size), the state is allocated once and every update is asynchronous. Without it, updates
are queued on the device and folded in every ``flush_every`` updates (and before any read), at the cost of
one host read of the largest id per flush, which grows the state to the ids seen.

>>> import torch
>>> aum = AreaUnderMargin(num_samples=3)
>>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.5]])
>>> aum.update(logits, torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]))
>>> aum.top_k(2)   # sample 1's label (0) loses to class 1 by a margin of 1
[(1, -1.0), (0, 2.0)]
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from fitwatch._validation import check_positive_int
from fitwatch.findings import Finding, Severity

__all__ = ["AreaUnderMargin", "ForgettingEvents"]

#: Updates queued before they are folded into the dense state when ``num_samples`` is unknown: one host
#: read of the largest id per this many training steps.
FLUSH_EVERY = 50
#: Suspects listed in a finding by default.
TOP_K = 20


def _check_batch(logits: torch.Tensor, targets: torch.Tensor, sample_ids: torch.Tensor) -> None:
    for name, value in (("logits", logits), ("targets", targets), ("sample_ids", sample_ids)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(value).__name__}.")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(
            "Expected `logits` to have shape (batch, classes) with at least 2 classes, "
            f"but got {tuple(logits.shape)}."
        )
    n = logits.shape[0]
    for name, value in (("targets", targets), ("sample_ids", sample_ids)):
        if value.shape != (n,):
            raise ValueError(
                f"Expected `{name}` to have shape ({n},) like the logits' batch, "
                f"but got {tuple(value.shape)}."
            )
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"Expected `{name}` to hold integers, but got {value.dtype}.")


class _PerSampleTracker(abc.ABC):
    """Dense per-sample-id state, grown on demand, updated without host synchronisation."""

    #: (name, dtype, fill value) of each dense state tensor.
    _fields: ClassVar[tuple[tuple[str, torch.dtype, float], ...]]

    def __init__(self, *, num_samples: int | None = None, flush_every: int = FLUSH_EVERY) -> None:
        if num_samples is not None:
            check_positive_int("num_samples", num_samples)
        check_positive_int("flush_every", flush_every)
        self.num_samples = num_samples
        self.flush_every = flush_every
        self.reset()

    def reset(self) -> None:
        """Forget every sample (the settings stay)."""
        self._state: dict[str, torch.Tensor] = {}
        self._pending: list[tuple[torch.Tensor, ...]] = []
        self.updates = 0

    @property
    def _size(self) -> int:
        return next(iter(self._state.values())).shape[0] if self._state else 0

    @property
    def capacity(self) -> int:
        """Number of sample ids the dense state currently holds."""
        return self._size if self.num_samples is None else min(self._size, self.num_samples)

    def _allocate(self, size: int, device: torch.device) -> None:
        old = self._state
        self._state = {}
        for name, dtype, fill in self._fields:
            tensor = torch.full((size,), fill, dtype=dtype, device=device)
            if name in old:
                tensor[: old[name].shape[0]] = old[name].to(device)
            self._state[name] = tensor

    @abc.abstractmethod
    def _batch_values(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-sample values of one batch, computed on the device (no host read)."""

    @abc.abstractmethod
    def _fold(self, ids: torch.Tensor, *values: torch.Tensor) -> None:
        """Scatter one batch's values into the dense state."""

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor, sample_ids: torch.Tensor) -> None:
        """Record one training batch.

        Args:
            logits: ``(batch, classes)`` logits of the training forward pass.
            targets: ``(batch,)`` assigned (possibly wrong) class indices.
            sample_ids: ``(batch,)`` non-negative integer id of each sample in the training set, below
                ``num_samples`` when it is given (ids outside are left out and counted in :attr:`dropped`).

        Raises:
            TypeError: If an argument is not a tensor, or targets or ids are not integers.
            ValueError: If the shapes do not match.
        """
        _check_batch(logits, targets, sample_ids)
        device = logits.device
        ids = sample_ids.to(device=device, dtype=torch.long)
        values = self._batch_values(logits.detach(), targets.to(device=device, dtype=torch.long))
        self.updates += 1
        if self._state and self._state_device(device) != device:
            # A state restored on the CPU follows the model to its device once.
            self._state = {name: tensor.to(device) for name, tensor in self._state.items()}
        if self.num_samples is not None:
            # One extra slot takes every id outside [0, num_samples): a wrong id must not crash training, and
            # checking the ids on the host would cost a sync per batch. Its count is `dropped`.
            if self._size < self.num_samples + 1:
                self._allocate(self.num_samples + 1, device)
            inside = (ids >= 0) & (ids < self.num_samples)
            self._fold(torch.where(inside, ids, self.num_samples), *values)
            return
        self._pending.append((ids, *values))
        if len(self._pending) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        device = self._pending[0][0].device
        if self.num_samples is None:
            largest = torch.stack(
                [batch[0].max() for batch in self._pending if batch[0].numel()]
                or [torch.tensor(-1, device=device)]
            ).max()
            needed = max(int(largest) + 1, 1)  # the one host read per flush
            if needed > self.capacity:
                self._allocate(max(needed, 2 * self.capacity), self._state_device(device))
        for batch in self._pending:
            self._fold(*batch)
        self._pending.clear()

    def _state_device(self, default: torch.device) -> torch.device:
        return next(iter(self._state.values())).device if self._state else default

    def _read(self) -> dict[str, torch.Tensor]:
        self._flush()
        if self.num_samples is not None:
            return {name: tensor[: self.num_samples] for name, tensor in self._state.items()}
        return self._state

    @property
    def dropped(self) -> int:
        """Updates whose sample id was outside ``[0, num_samples)`` (left out; reads the device once)."""
        if self.num_samples is None or self._size <= self.num_samples or "count" not in self._state:
            return 0
        return int(self._state["count"][self.num_samples])

    def state_dict(self) -> dict[str, Any]:
        """Settings and the dense state (on the CPU), for checkpoints."""
        return {
            "num_samples": self.num_samples,
            "flush_every": self.flush_every,
            "updates": self.updates,
            **{name: tensor.detach().cpu().clone() for name, tensor in self._read().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; keys missing from older states keep their defaults."""
        self.reset()
        self.num_samples = state.get("num_samples", self.num_samples)
        self.flush_every = state.get("flush_every", self.flush_every)
        self.updates = int(state.get("updates", 0))
        tensors = {name: state[name] for name, _, _ in self._fields if name in state}
        if tensors:
            size = max(t.shape[0] for t in tensors.values())
            device = next(iter(tensors.values())).device
            self._allocate(size, device)
            for name, tensor in tensors.items():
                self._state[name][: tensor.shape[0]] = tensor.to(self._state[name].dtype)


class AreaUnderMargin(_PerSampleTracker):
    """Area under the margin (Pleiss et al. 2020), per training sample id.

    Args:
        num_samples: Size of the training set (ids are in ``[0, num_samples)``); allocates the state once so
            that no update ever synchronises. ``None`` grows the state to the largest id seen.
        flush_every: With ``num_samples=None``, updates queued between two folds into the state.

    Raises:
        TypeError: If ``num_samples`` or ``flush_every`` is not an int.
        ValueError: If ``num_samples`` or ``flush_every`` is not positive.
    """

    _fields = (("margin_sum", torch.float32, 0.0), ("count", torch.int64, 0))

    def _batch_values(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = logits.float()
        assigned = logits.gather(1, targets[:, None]).squeeze(1)
        others = logits.scatter(1, targets[:, None], float("-inf")).amax(dim=1)
        return (assigned - others,)

    def _fold(self, ids: torch.Tensor, margins: torch.Tensor) -> None:
        self._state["margin_sum"].index_add_(0, ids, margins.to(self._state["margin_sum"].device))
        self._state["count"].index_add_(0, ids, torch.ones_like(ids, device=self._state["count"].device))

    def scores(self) -> torch.Tensor:
        """AUM per sample id (NaN for ids never seen), on the state's device."""
        state = self._read()
        if not state:
            return torch.empty(0)
        count = state["count"]
        return torch.where(count > 0, state["margin_sum"] / count.clamp(min=1), torch.nan)

    def top_k(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` samples with the lowest AUM (the most likely mislabeled), as ``(sample_id, aum)``.

        Raises:
            TypeError: If ``k`` is not an int.
            ValueError: If ``k`` is not positive.
        """
        check_positive_int("k", k)
        scores = self.scores()
        if not scores.numel():
            return []
        seen = int((~scores.isnan()).sum())
        values, ids = torch.topk(torch.where(scores.isnan(), -math.inf, -scores), min(k, seen))
        return [(int(i), float(-v)) for i, v in zip(ids.tolist(), values.tolist())]

    def to_finding(self, step: int = 0, epoch: int | None = None, *, k: int = TOP_K) -> Finding | None:
        """A ``FW-MISLABEL-SUSPECTS`` finding listing up to ``k`` samples with a negative AUM, or ``None``."""
        suspects = [(i, a) for i, a in self.top_k(k) if a < 0]
        if not suspects:
            return None
        scores = self.scores()
        n_seen = int((~scores.isnan()).sum())
        n_negative = int((scores < 0).sum())
        listed = ", ".join(f"id {i} ({a:+.2f})" for i, a in suspects[:5])
        message = (
            f"{n_negative} of {n_seen} training samples have a negative area under the margin "
            f"(Pleiss et al. 2020): "
            f"on average through training their given label loses to another class, the signature of a wrong "
            f"label. Lowest: {listed}"
        )
        evidence = {
            "n_seen": n_seen,
            "n_negative": n_negative,
            "suspects": [[i, round(a, 4)] for i, a in suspects],
            "updates": self.updates,
        }
        return Finding(
            code="FW-MISLABEL-SUSPECTS",
            severity=Severity.INFO,
            step=step,
            epoch=epoch,
            message=message,
            evidence=evidence,
            subject="aum",
        )


class ForgettingEvents(_PerSampleTracker):
    """Forgetting events (Toneva et al. 2019), per training sample id.

    Args:
        num_samples: Size of the training set (ids are in ``[0, num_samples)``); allocates the state once so
            that no update ever synchronises. ``None`` grows the state to the largest id seen.
        flush_every: With ``num_samples=None``, updates queued between two folds into the state.

    Raises:
        TypeError: If ``num_samples`` or ``flush_every`` is not an int.
        ValueError: If ``num_samples`` or ``flush_every`` is not positive.
    """

    # last: -1 never seen, 0 misclassified, 1 correct at the latest presentation.
    _fields = (
        ("last", torch.int8, -1),
        ("forgotten", torch.int64, 0),
        ("learned", torch.int8, 0),
        ("count", torch.int64, 0),
    )

    def _batch_values(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return ((logits.argmax(dim=1) == targets).to(torch.int8),)

    def _fold(self, ids: torch.Tensor, correct: torch.Tensor) -> None:
        state = self._state
        correct = correct.to(state["last"].device)
        forgot = (state["last"][ids] == 1) & (correct == 0)
        state["forgotten"].index_add_(0, ids, forgot.long())
        state["learned"].scatter_reduce_(0, ids, correct, reduce="amax")
        state["count"].index_add_(0, ids, torch.ones_like(ids))
        state["last"][ids] = correct

    def scores(self) -> torch.Tensor:
        """Forgetting events per sample id: ``inf`` if never classified correctly, NaN if never seen."""
        state = self._read()
        if not state:
            return torch.empty(0)
        forgotten = state["forgotten"].double()
        scores = torch.where(state["learned"] > 0, forgotten, math.inf)
        return torch.where(state["count"] > 0, scores, torch.nan)

    def top_k(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` most forgettable samples (never learned first), as ``(sample_id, forgetting_events)``.

        Raises:
            TypeError: If ``k`` is not an int.
            ValueError: If ``k`` is not positive.
        """
        check_positive_int("k", k)
        scores = self.scores()
        if not scores.numel():
            return []
        seen = int((~scores.isnan()).sum())
        # Ties (many samples forgotten once) keep the lower id first: a stable, reproducible order.
        order = torch.argsort(torch.where(scores.isnan(), -1.0, scores), descending=True, stable=True)
        order = order[: min(k, seen)]
        return [(int(i), float(v)) for i, v in zip(order.tolist(), scores[order].tolist())]

    def to_finding(self, step: int = 0, epoch: int | None = None, *, k: int = TOP_K) -> Finding | None:
        """A ``FW-MISLABEL-SUSPECTS`` finding: up to ``k`` never-learned or forgotten samples, or ``None``."""
        suspects = [(i, f) for i, f in self.top_k(k) if f > 0]
        if not suspects:
            return None
        scores = self.scores()
        n_seen = int((~scores.isnan()).sum())
        n_never = int(torch.isinf(scores).sum())
        listed = ", ".join(
            f"id {i} ({'never learned' if math.isinf(f) else f'{int(f)} forgotten'})" for i, f in suspects[:5]
        )
        message = (
            f"{n_never} of {n_seen} training samples were never classified correctly and others are "
            f"forgotten "
            f"repeatedly (Toneva et al. 2019); wrong labels sit among them. Most forgettable: {listed}"
        )
        evidence = {
            "n_seen": n_seen,
            "n_never_learned": n_never,
            "suspects": [[i, None if math.isinf(f) else int(f)] for i, f in suspects],
            "updates": self.updates,
        }
        return Finding(
            code="FW-MISLABEL-SUSPECTS",
            severity=Severity.INFO,
            step=step,
            epoch=epoch,
            message=message,
            evidence=evidence,
            subject="forgetting",
        )
