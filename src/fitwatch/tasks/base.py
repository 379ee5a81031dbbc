"""What the task states share: sum-reducible tensors, a JSON-safe state, a move between devices."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from fitwatch.metrics.accumulator import sum_over_ranks

__all__ = ["SummedState"]


class SummedState(abc.ABC):
    """A split's state made of tensors that add up across batches and ranks.

    Subclasses define :meth:`tensors` (every state tensor, in a fixed order), :meth:`_allocate` and ``task``;
    :meth:`_reduced` (what a rank sums; default: all of them) when some tensor is not a sum.
    """

    task: str
    # A uniform interface with the classification accumulator: bad values are always counted, never raised.
    num_classes = None
    strict = True
    skipped = 0
    skipped_shapes = None

    @property
    @abc.abstractmethod
    def initialized(self) -> bool:
        """Whether the state tensors exist (a batch was seen, or a state was loaded)."""

    @abc.abstractmethod
    def tensors(self) -> list[Tensor]:
        """Every state tensor, in a fixed order (what :meth:`state_dict` saves)."""

    @abc.abstractmethod
    def _allocate(self, device: torch.device) -> None:
        """Create zeroed state tensors on ``device``."""

    def _reduced(self) -> list[Tensor]:
        return self.tensors()

    def reset(self) -> None:
        for t in self._reduced():
            t.zero_()

    def sync(self) -> None:
        """Sum the states over all ranks (one collective); every rank must call it."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        if not self.initialized:  # a rank that saw no batch still takes part, with zeros
            backend = dist.get_backend()
            self._allocate(torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu"))
        sum_over_ranks(self._reduced())

    def _move_to(self, device: torch.device) -> None:
        saved = [t.detach().cpu() for t in self.tensors()]
        self._allocate(device)
        for t, src in zip(self.tensors(), saved):
            t.copy_(src.to(t.dtype))

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe (lists); its size depends on the bins only, never on the data or the vocabulary."""
        return {"task": self.task, "tensors": None if not self.initialized else [t.detach().cpu().tolist() for t in self.tensors()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        tensors = state.get("tensors")
        if not tensors:
            return
        self._allocate(torch.device("cpu"))
        for t, saved in zip(self.tensors(), tensors):
            src = torch.tensor(saved, dtype=t.dtype)
            if src.shape == t.shape:
                t.copy_(src)
