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

    def __init__(self, *, ignore_index: int | None = None, **_: Any) -> None:
        self._sums: Tensor | None = None
        self._health: Tensor | None = None
        self._hist: Tensor | None = None
        self._edges: Tensor | None = None

    @property
    def initialized(self) -> bool:
        return self._sums is not None

    def update(self, logits: Tensor, target: Tensor, loss: Tensor | float | None = None, *,
               mask: Tensor | None = None) -> None:
        """Add one batch (no host sync, except the first batch's target spread for the histogram edges)."""
        pred = logits.detach().reshape(-1)
        y = target.detach().to(pred.device, non_blocking=True).reshape(-1)
        if pred.shape != y.shape:
            raise ValueError(
                f"Expected regression predictions and targets with the same number of values, but got predictions "
                f"{tuple(logits.shape)} and targets {tuple(target.shape)}."
            )
        if not self.initialized:
            self._allocate(pred.device, y)
        elif self._sums.device != pred.device:  # type: ignore[union-attr]
            self._move_to(pred.device)
        assert self._sums is not None and self._health is not None and self._hist is not None and self._edges is not None
        dtype = self._sums.dtype
        pred, y = pred.to(dtype), y.to(dtype)
        finite_p, finite_y = torch.isfinite(pred), torch.isfinite(y)
        keep = finite_p & finite_y
        if mask is not None:
            keep = keep & mask.to(keep.device).reshape(-1)
        w = keep.to(dtype)
        y0 = torch.where(keep, y, 0.0)
        res = torch.where(keep, pred - y, 0.0)
        n = w.sum()
        loss_sum = torch.zeros((), dtype=dtype, device=pred.device)
        loss_weight = torch.zeros((), dtype=dtype, device=pred.device)
        nonfinite_loss = torch.zeros((), dtype=torch.long, device=pred.device)
        if loss is not None:
            value = (loss.detach().to(pred.device).reshape(-1)[0].to(dtype) if isinstance(loss, Tensor)
                     else torch.tensor(float(loss), dtype=dtype, device=pred.device))
            ok = torch.isfinite(value)
            loss_sum, loss_weight = torch.where(ok, value * n, 0.0), torch.where(ok, n, 0.0)
            nonfinite_loss = (~ok).long()
        self._sums += torch.stack([n, y0.sum(), (y0 * y0).sum(), res.sum(), (res * res).sum(), res.abs().sum(),
                                   loss_sum, loss_weight])
        bucket = torch.bucketize(res, self._edges)
        self._hist.index_add_(0, bucket, w)
        ones = torch.ones((), dtype=torch.long, device=pred.device)
        self._health += torch.stack([(~finite_p).sum(), (~finite_y & finite_p).sum(), nonfinite_loss, ones])

    def tensors(self) -> list[Tensor]:
        return [] if not self.initialized else [self._sums, self._hist, self._edges, self._health]  # type: ignore[list-item]

    def _reduced(self) -> list[Tensor]:
        # The edges are the same on every rank (set from the first batch there) and are not summed.
        return [] if not self.initialized else [self._sums, self._hist, self._health]  # type: ignore[list-item]

    def compute(self) -> SplitResult:
        """Read the sums back (one transfer) and compute MSE, RMSE, MAE, R2 and the residual histogram."""
        if not self.initialized:
            return SplitResult(summary={}, per_class={})
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
