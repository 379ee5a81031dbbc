"""Regression: MSE, RMSE, MAE, R2 and a residual histogram from running sums, O(bins) state.

Predictions and targets of one shape (``[N]``, ``[N, 1]`` or ``[N, D]``, flattened: each output of each
sample is one prediction; for ``D > 1`` R2 is therefore the variance-weighted one). R2 needs the target
variance, which sums give exactly: ``SS_tot = sum(y^2) - sum(y)^2 / n`` (float64 on the device).

The residual histogram has fixed edges, set on the first batch from its targets' spread (``4`` standard
deviations either side in 32 bins, plus an overflow bin at each end), so its state never grows.

>>> state = RegressionState()
>>> state.update(torch.tensor([1.0, 2.0, 3.5]), torch.tensor([1.0, 2.5, 3.0]))
>>> s = state.compute().summary
>>> round(s["mse"], 4), round(s["mae"], 4), round(s["r2"], 4)
(0.1667, 0.3333, 0.7692)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fitwatch.metrics.accumulator import SplitResult
from fitwatch.metrics.held import HeldBatch, intact, loss_of, version_of, views_a_larger_storage
from fitwatch.tasks.base import SummedState

__all__ = ["RESIDUAL_BINS", "RegressionState"]

#: Residual histogram bins between -4 and +4 standard deviations of the first batch's targets.
RESIDUAL_BINS = 32
_SUMS = ("n", "sum_y", "sum_y2", "sum_res", "sum_res2", "sum_abs_res", "loss_sum", "loss_weight")
_HEALTH = ("nonfinite_logits", "invalid_targets", "nonfinite_loss", "batches")


class RegressionState(SummedState):
    """Running sums of one split of a regression task.

    Args:
        ignore_index: Not used for regression (a float target has no ignore value); kept for a uniform signature.
    """

    task = "regression"

    def __init__(self, *, ignore_index: int | None = None, buffer_batches: int = 0, buffer_bytes: int = 8 * 2**20,
                 **_: Any) -> None:
        self._sums: Tensor | None = None
        self._health: Tensor | None = None
        self._hist: Tensor | None = None
        self._edges: Tensor | None = None
        #: Batches held by reference (as :class:`~fitwatch.metrics.PredictionAccumulator` holds them: no kernel a
        #: step, checked at the fold) and folded ``buffer_batches`` at a time; ``0`` folds each batch at once.
        self.buffer_batches = buffer_batches
        self.buffer_bytes = buffer_bytes
        self._pending: list[HeldBatch] = []
        self._pending_bytes = 0
        self._copy = False  # copy every tensor (a held batch was changed after its step)
        self._views: tuple[bool, bool] | None = None  # copy predictions / targets that view a larger storage
        self.changed = 0

    @property
    def initialized(self) -> bool:
        return self._sums is not None

    def update(self, logits: Tensor, target: Tensor, loss: Tensor | float | None = None, *,
               mask: Tensor | None = None) -> None:
        """Add one batch (no host sync, except the first batch's target spread for the histogram edges)."""
        n = logits.numel()
        if target.numel() != n and self.initialized:
            # After the first batch bad input is counted and warned about (by the observer), never raised.
            self.skipped += 1
            self.skipped_shapes = self.skipped_shapes or (tuple(logits.shape), tuple(target.shape))
            return
        if target.numel() != n:
            raise ValueError(
                f"Expected regression predictions and targets with the same number of values, but got predictions "
                f"{tuple(logits.shape)} and targets {tuple(target.shape)}."
            )
        if not self.initialized:
            self._allocate(logits.device, target.detach().to(logits.device).reshape(-1))
        m = mask.reshape(-1) if mask is not None else None
        if self.buffer_batches <= 0:
            self._fold([HeldBatch(logits.detach(), target.detach(), loss, m, n, 1)])
            return
        if self._views is None:  # a target column of the whole batch would keep the batch alive: copy that role
            self._views = (views_a_larger_storage(logits), views_a_larger_storage(target))
        if self._copy:
            with torch.no_grad():
                held = HeldBatch(logits.detach().clone(), target.detach().clone(),
                                 loss.detach().clone() if isinstance(loss, Tensor) else loss,
                                 m.clone() if m is not None else None, n, 1)
        else:
            with torch.no_grad():
                logits = logits.detach().clone() if self._views[0] else logits.detach() if logits.requires_grad else logits
                target = target.detach().clone() if self._views[1] else target.detach() if target.requires_grad else target
            loss = loss.detach() if isinstance(loss, Tensor) and loss.requires_grad else loss
            held = HeldBatch(logits, target, loss, m, n, 1,
                             (version_of(logits), version_of(target), version_of(loss), version_of(m)))
        self._pending.append(held)
        self._pending_bytes += n * logits.element_size()
        if len(self._pending) >= self.buffer_batches or self._pending_bytes >= self.buffer_bytes:
            self._fold_pending()

    def _fold_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        pending, changed = intact(pending)
        if changed:
            self.changed += changed
            self._copy = True
        if pending:
            self._fold(pending)

    @torch.no_grad()
    def _fold(self, batches: list[HeldBatch]) -> None:
        """Add held batches in one pass; each batch's mean loss weighs by its own counted values."""
        assert self._sums is not None and self._health is not None and self._hist is not None and self._edges is not None
        device, dtype = self._sums.device, self._sums.dtype
        if batches[0].logits.device != device:  # restored on CPU, now on GPU
            self._move_to(batches[0].logits.device)
            device = batches[0].logits.device
        pred = torch.cat([b.logits.reshape(-1).to(device, dtype) for b in batches])
        y = torch.cat([b.target.reshape(-1).to(device, dtype) for b in batches])
        finite_p, finite_y = torch.isfinite(pred), torch.isfinite(y)
        keep = finite_p & finite_y
        if any(b.mask is not None for b in batches):
            keep = keep & torch.cat([b.mask.to(device) if b.mask is not None else torch.ones(b.rows, dtype=torch.bool, device=device)
                                     for b in batches])
        w = keep.to(dtype)
        y0 = torch.where(keep, y, 0.0)
        res = torch.where(keep, pred - y, 0.0)
        n = w.sum()
        loss_sum = torch.zeros((), dtype=dtype, device=device)
        loss_weight = torch.zeros((), dtype=dtype, device=device)
        nonfinite_loss = torch.zeros((), dtype=torch.long, device=device)
        if any(b.loss is not None for b in batches):
            # Fills and stacks on the device, never a host list copied over (a synchronising transfer on a GPU).
            values = torch.cat([loss_of(b.loss, device, dtype) for b in batches])
            if len(batches) == 1:
                counts = n.reshape(1)
            else:
                sizes = {b.rows for b in batches}
                owner = (torch.arange(len(batches), device=device).repeat_interleave(sizes.pop()) if len(sizes) == 1 else
                         torch.cat([torch.full((b.rows,), i, device=device) for i, b in enumerate(batches)]))
                counts = torch.zeros(len(batches), dtype=dtype, device=device).index_add_(0, owner, w)
            has = torch.cat([torch.full((1,), b.loss is not None, device=device) for b in batches])
            ok = torch.isfinite(values) & has
            loss_sum = torch.where(ok, values * counts, 0.0).sum()
            loss_weight = torch.where(ok, counts, 0.0).sum()
            nonfinite_loss = (~torch.isfinite(values) & has).sum()
        self._sums += torch.stack([n, y0.sum(), (y0 * y0).sum(), res.sum(), (res * res).sum(), res.abs().sum(),
                                   loss_sum, loss_weight])
        bucket = torch.bucketize(res, self._edges)
        self._hist.index_add_(0, bucket, w)
        batches_seen = torch.full((), len(batches), dtype=torch.long, device=device)
        self._health += torch.stack([(~finite_p).sum(), (~finite_y & finite_p).sum(), nonfinite_loss, batches_seen])

    def reset(self) -> None:
        self._pending, self._pending_bytes = [], 0
        super().reset()

    def tensors(self) -> list[Tensor]:
        if not self.initialized:
            return []
        self._fold_pending()
        return [self._sums, self._hist, self._edges, self._health]  # type: ignore[list-item]

    def _reduced(self) -> list[Tensor]:
        # The edges are the same on every rank (set from the first batch there) and are not summed.
        if not self.initialized:
            return []
        self._fold_pending()
        return [self._sums, self._hist, self._health]  # type: ignore[list-item]

    def compute(self) -> SplitResult:
        """Read the sums back (one transfer) and compute MSE, RMSE, MAE, R2 and the residual histogram."""
        if not self.initialized:
            return SplitResult(summary={}, per_class={})
        self._fold_pending()
        assert self._sums is not None and self._health is not None and self._hist is not None and self._edges is not None
        s = dict(zip(_SUMS, self._sums.detach().cpu().tolist()))
        n = s["n"]
        summary: dict[str, float] = {}
        if n > 0:
            mse = s["sum_res2"] / n
            ss_tot = s["sum_y2"] - s["sum_y"] ** 2 / n
            summary.update(mse=mse, rmse=math.sqrt(mse), mae=s["sum_abs_res"] / n, mean_residual=s["sum_res"] / n,
                           r2=1.0 - s["sum_res2"] / ss_tot if ss_tot > 0 else math.nan)
        if s["loss_weight"] > 0:
            summary["loss"] = s["loss_sum"] / s["loss_weight"]
        elif "mse" in summary:
            summary["loss"] = summary["mse"]
        summary["samples"] = float(n)
        summary.update({k: float(v) for k, v in zip(_HEALTH, self._health.detach().cpu().tolist())})
        edges = self._edges.detach().cpu().tolist()
        return SplitResult(summary=summary, per_class={},
                           reliability={"residual_edges": edges, "residual_counts": self._hist.detach().cpu().tolist()})

    @torch.inference_mode(False)  # states made in `validate()` must take in-place updates in `fit()`
    def _allocate(self, device: torch.device, y: Tensor | None = None) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self._sums = torch.zeros(len(_SUMS), dtype=dtype, device=device)
        self._health = torch.zeros(len(_HEALTH), dtype=torch.long, device=device)
        self._hist = torch.zeros(RESIDUAL_BINS + 2, dtype=dtype, device=device)
        scale = 1.0
        if y is not None:
            finite = y[torch.isfinite(y)].to(torch.float64)
            if finite.numel() > 1:
                std = float(finite.std())  # one read, on the first batch only
                scale = std if std > 0 and math.isfinite(std) else max(float(finite.abs().max()), 1.0)
        self._edges = torch.linspace(-4 * scale, 4 * scale, RESIDUAL_BINS + 1, dtype=dtype, device=device)
