"""Calibration from binned sums: ECE, MCE, adaptive ECE, classwise ECE, Brier score and NLL.

Every statistic here is computed from sums that add up across batches and across ranks, so memory
is O(classes x bins) and never O(samples). (torchmetrics' ``MulticlassCalibrationError`` keeps every
confidence; a long validation set or token classification makes that grow without bound.)

Kernels (pure functions on tensors) come first; :class:`CalibrationState` only keeps the sums.

Bins follow Guo et al. (2017), Sec. 2: ``n_bins`` equal-width intervals ``I_m = ((m-1)/M, m/M]``, so a
confidence of exactly 1.0 falls in the last bin and a confidence of exactly 0 in the first.

>>> import torch
>>> conf = torch.tensor([0.95, 0.9, 0.6, 1.0])
>>> correct = torch.tensor([1.0, 0.0, 1.0, 1.0])
>>> bins = bin_sums(conf, correct, n_bins=10)
>>> round(expected_calibration_error(bins), 4)    # (|1.95-1| + |0.6-1| + |1-1|) / 4
0.3375
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "ADAPTIVE_LOGIT_RANGE",
    "ADAPTIVE_RESOLUTION",
    "BIN_FIELDS",
    "CalibrationState",
    "adaptive_calibration_error",
    "bin_index",
    "bin_sums",
    "chance_calibration_error",
    "classwise_calibration_error",
    "expected_calibration_error",
    "maximum_calibration_error",
    "reliability",
]

#: Columns of a bin-sum table: samples, sum of confidences, sum of correct outcomes, and the sum of
#: ``conf * (1 - conf)`` (the variance a calibrated model's accuracy would have in that bin).
BIN_FIELDS = ("count", "confidence", "correct", "variance")

#: Adaptive (equal-mass) ECE needs quantiles of the confidence. Instead of keeping every confidence,
#: fitwatch keeps a fine histogram over the log-odds of the top-label confidence, ``log(p / (1-p))``,
#: on this range with this many bins (resolution 0.02 in log-odds: 0.5% of p around 0.5, finer near 1),
#: and merges fine bins into equal-mass groups at compute time. Log-odds are computed from the logits
#: (``log p_top - logsumexp(log p_others)``), so confidences that round to 1.0 in float32 still spread out.
ADAPTIVE_LOGIT_RANGE = (-10.0, 20.0)
ADAPTIVE_RESOLUTION = 1500


def bin_index(confidences: Tensor, n_bins: int) -> Tensor:
    """Index of the Guo et al. bin ``((m-1)/M, m/M]`` of each confidence (0 goes to the first bin)."""
    inner = torch.linspace(0.0, 1.0, n_bins + 1, device=confidences.device, dtype=confidences.dtype)[1:-1]
    return torch.bucketize(confidences, inner, right=False)


def bin_sums(
    confidences: Tensor,
    correct: Tensor,
    n_bins: int,
    weights: Tensor | None = None,
    *,
    index: Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Bin-sum table ``[n_bins, 4]`` (see :data:`BIN_FIELDS`) of one batch.

    Args:
        confidences: Predicted probabilities in [0, 1], any shape.
        correct: Outcomes (1 correct / positive, 0 otherwise), same shape.
        n_bins: Number of equal-width bins.
        weights: Optional 0/1 weights (rows to skip get 0), same shape.
        index: Precomputed bin index (for a non-uniform binning, as the adaptive histogram uses).
        dtype: Accumulation dtype.
    """
    conf = confidences.reshape(-1).to(dtype)
    corr = correct.reshape(-1).to(dtype)
    w = torch.ones_like(conf) if weights is None else weights.reshape(-1).to(dtype)
    idx = bin_index(conf, n_bins) if index is None else index.reshape(-1)
    values = torch.stack([w, conf * w, corr * w, conf * (1.0 - conf) * w], dim=1)
    out = torch.zeros(n_bins, len(BIN_FIELDS), dtype=dtype, device=conf.device)
    return out.index_add_(0, idx, values)


def expected_calibration_error(bins: Tensor) -> float:
    """ECE = sum_m (|B_m| / n) |acc(B_m) - conf(B_m)| (Guo et al. 2017, Eq. 3); NaN with no samples."""
    n = float(bins[:, 0].sum())
    if n == 0:
        return math.nan
    return float((bins[:, 1] - bins[:, 2]).abs().sum()) / n


def maximum_calibration_error(bins: Tensor) -> float:
    """MCE = max over non-empty bins of |acc(B_m) - conf(B_m)| (Guo et al. 2017, Eq. 5)."""
    counts = bins[:, 0]
    nonempty = counts > 0
    if not bool(nonempty.any()):
        return math.nan
    gaps = (bins[nonempty, 1] - bins[nonempty, 2]).abs() / counts[nonempty]
    return float(gaps.max())


def chance_calibration_error(bins: Tensor) -> float:
    """Expected ECE of a *perfectly calibrated* model with the same bins: the floor of ECE at this size.

    In a bin of calibrated predictions the number correct has variance ``sum_i p_i (1 - p_i)`` (a
    Poisson-binomial), so its expected absolute deviation from the confidence sum is about
    ``sqrt(2/pi) * sqrt(variance)`` (normal approximation). A fixed ECE threshold ignores this: a
    perfectly calibrated model shows ECE ~0.06-0.09 at n=100 and ~0.02-0.03 at n=1000 with 15 bins.
    """
    n = float(bins[:, 0].sum())
    if n == 0:
        return math.nan
    return float(math.sqrt(2.0 / math.pi) * bins[:, 3].clamp_min(0).sqrt().sum()) / n


def adaptive_calibration_error(fine: Tensor, n_bins: int) -> float:
    """Equal-mass ECE (Nguyen & O'Connor 2015; Nixon et al. 2019) from a fine histogram.

    Fine bins, in increasing confidence order, are assigned whole to ``n_bins`` groups of about equal
    count (by the position of their midpoint in the cumulative count), then ECE is taken over the groups.
    With the default resolution this matches the sorted-sample definition within a few 1e-3.
    """
    counts = fine[:, 0]
    n = float(counts.sum())
    if n == 0:
        return math.nan
    mid = torch.cumsum(counts, 0) - counts / 2.0
    group = torch.clamp((mid * n_bins / n).floor().long(), 0, n_bins - 1)
    grouped = torch.zeros(n_bins, fine.shape[1], dtype=fine.dtype).index_add_(0, group, fine)
    return expected_calibration_error(grouped)


def classwise_calibration_error(class_bins: Tensor) -> float:
    """Classwise ECE (Kull et al. 2019): the mean over classes of the one-vs-rest ECE of ``p_k``.

    ``class_bins`` is ``[classes, n_bins, 4]``; every sample contributes to every class's table.
    """
    if class_bins.numel() == 0:
        return math.nan
    n = float(class_bins[0, :, 0].sum())
    if n == 0:
        return math.nan
    per_class = (class_bins[:, :, 1] - class_bins[:, :, 2]).abs().sum(dim=1) / n
    return float(per_class.mean())


def reliability(bins: Tensor) -> dict[str, list[float]]:
    """Per-bin accuracy, mean confidence and count (NaN for empty bins): a reliability diagram's data."""
    counts = bins[:, 0]
    safe = counts.clamp_min(1)
    empty = counts == 0
    acc = torch.where(empty, torch.full_like(safe, math.nan), bins[:, 2] / safe)
    conf = torch.where(empty, torch.full_like(safe, math.nan), bins[:, 1] / safe)
    return {"accuracy": acc.tolist(), "confidence": conf.tolist(), "count": counts.tolist()}


class CalibrationState:
    """Binned sums of one split: top-label bins, the adaptive fine histogram, classwise bins, Brier, NLL.

    All states are tensors on the device of the predictions that reduce by ``sum`` across ranks
    (:meth:`tensors` lists them in a fixed order). Nothing here reads a value back to the host except
    :meth:`compute`.

    Args:
        num_classes: Number of classes (for multilabel: labels).
        n_bins: Equal-width bins for ECE, MCE, classwise ECE and the reliability diagram.
        classwise: Keep ``[num_classes, n_bins, 4]`` sums for classwise ECE.
        device: Where to keep the sums.
        dtype: Accumulation dtype (float64 except where the device lacks it).
    """

    def __init__(self, num_classes: int, n_bins: int, *, classwise: bool, device: torch.device, dtype: torch.dtype) -> None:
        self.num_classes = num_classes
        self.n_bins = n_bins
        self.classwise = classwise
        k = num_classes if classwise else 0
        # One table holds the top-label bins, the fine histogram and the classwise bins, so each batch is
        # a single index_add_ (a few large kernels rather than many small ones); the three are views into it.
        self.table = torch.zeros(n_bins + ADAPTIVE_RESOLUTION + k * n_bins, len(BIN_FIELDS), dtype=dtype, device=device)
        self.bins = self.table[:n_bins]
        self.fine = self.table[n_bins : n_bins + ADAPTIVE_RESOLUTION]
        self.class_bins = self.table[n_bins + ADAPTIVE_RESOLUTION :].view(k, n_bins, len(BIN_FIELDS))
        # [brier_sum, nll_sum, samples]: sample-mean statistics.
        self.sums = torch.zeros(3, dtype=dtype, device=device)
        self._inner_edges = torch.linspace(0.0, 1.0, n_bins + 1, device=device, dtype=dtype)[1:-1]

    def tensors(self) -> list[Tensor]:
        return [self.table, self.sums]

    def _add_rows(self, conf: Tensor, correct: Tensor, w: Tensor, log_odds: Tensor, class_p: Tensor | None, class_y: Tensor | None, class_w: Tensor | None) -> None:
        """One index_add_ of the top-label rows (into the equal-width bins and the fine histogram) and the
        per-class rows (into the classwise bins)."""
        rows = torch.stack([w, conf * w, correct * w, conf * (1.0 - conf) * w], dim=1)
        lo, hi = ADAPTIVE_LOGIT_RANGE
        fine = ((log_odds - lo) * (ADAPTIVE_RESOLUTION / (hi - lo))).floor().clamp_(0, ADAPTIVE_RESOLUTION - 1)
        fine = torch.nan_to_num(fine, nan=0.0).long() + self.n_bins
        index = [torch.bucketize(conf, self._inner_edges), fine]
        values = [rows, rows]
        if class_p is not None and class_y is not None and class_w is not None:
            c = class_p.shape[1]
            offset = self.n_bins + ADAPTIVE_RESOLUTION
            cls = torch.bucketize(class_p, self._inner_edges) + torch.arange(c, device=class_p.device).mul_(self.n_bins).add_(offset)
            index.append(cls.reshape(-1))
            values.append(torch.stack([class_w, class_p * class_w, class_y * class_w, class_p * (1.0 - class_p) * class_w], dim=2).reshape(-1, len(BIN_FIELDS)))
        self.table.index_add_(0, torch.cat(index), torch.cat(values))

    def update_multiclass(self, log_probs: Tensor, target: Tensor, weights: Tensor, *, binary: bool = False,
                          soft: Tensor | None = None) -> None:
        """Add a batch of ``[N, C]`` log-probabilities with integer targets ``[N]`` (weight 0 rows skipped).

        With ``binary=True`` (one logit per sample, expanded to two classes) the Brier score is the
        conventional binary one, ``(p - y)^2``, rather than the two-class sum, which is twice that.
        With ``soft`` (``[N, C]`` target distributions; ``target`` is then their argmax) the Brier score, the
        NLL and the classwise bins are taken against the distribution.
        """
        dtype = self.table.dtype
        log_probs = log_probs.to(dtype)
        probs = log_probs.exp()
        top_logp, pred = log_probs.max(dim=1)
        conf = top_logp.exp()
        correct = (pred == target).to(dtype)
        w = weights.to(dtype)
        # Log-odds of the top label from log-probabilities, exact even when p_top rounds to 1.0.
        others = log_probs.scatter(1, pred.unsqueeze(1), float("-inf")).logsumexp(dim=1)
        if soft is not None or self.classwise:
            one_hot = soft.to(dtype) if soft is not None else torch.nn.functional.one_hot(target, self.num_classes).to(dtype)
            class_w = w.unsqueeze(1).expand_as(probs) if self.classwise else None
            self._add_rows(conf, correct, w, top_logp - others, probs if self.classwise else None, one_hot, class_w)
            brier = ((probs - one_hot) ** 2).sum(dim=1)
        else:
            # sum_j (p_j - [j = y])^2 = sum_j p_j^2 - 2 p_y + 1: no [N, C] one-hot (two passes over the rows, not five).
            self._add_rows(conf, correct, w, top_logp - others, None, None, None)
            brier = torch.linalg.vecdot(probs, probs) - 2.0 * log_probs.gather(1, target.unsqueeze(1)).squeeze(1).exp() + 1.0
        if binary:
            brier = brier / 2.0
        if soft is not None:
            nll = -(one_hot * torch.where(one_hot > 0, log_probs, 0.0)).sum(dim=1)
        else:
            nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        # where() rather than multiplication: a skipped row may hold inf/NaN, and inf * 0 is NaN.
        keep = w > 0
        self.sums += torch.stack([torch.where(keep, brier, 0.0).sum(), torch.where(keep, nll, 0.0).sum(), w.sum()])

    def update_multilabel(self, logits: Tensor, target: Tensor, weights: Tensor) -> None:
        """Add a batch of ``[N, L]`` logits with multi-hot targets ``[N, L]``.

        Each (sample, label) is one binary prediction: the bins compare the predicted probability of the
        positive label with how often it is positive, Brier and NLL are averaged over labels.
        """
        dtype = self.table.dtype
        z = logits.to(dtype)
        p = torch.sigmoid(z)
        y = target.to(dtype)
        w = weights.to(dtype).unsqueeze(1).expand_as(p)
        self._add_rows(p.reshape(-1), y.reshape(-1), w.reshape(-1), z.reshape(-1),
                       p if self.classwise else None, y, w if self.classwise else None)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none").mean(dim=1)
        brier = ((p - y) ** 2).mean(dim=1)
        keep = weights > 0
        self.sums += torch.stack(
            [torch.where(keep, brier, 0.0).sum(), torch.where(keep, bce, 0.0).sum(), weights.to(dtype).sum()]
        )

    def compute(self) -> dict[str, float]:
        """Read the sums back and compute every statistic (one host transfer)."""
        table, sums = (t.detach().cpu() for t in self.tensors())
        n, f = self.n_bins, ADAPTIVE_RESOLUTION
        bins, fine = table[:n], table[n : n + f]
        class_bins = table[n + f :].view(-1, n, len(BIN_FIELDS))
        samples = float(sums[2])
        count = float(bins[:, 0].sum())
        out = {
            "confidence": float(bins[:, 1].sum()) / count if count else math.nan,
            "ece": expected_calibration_error(bins),
            "mce": maximum_calibration_error(bins),
            "adaptive_ece": adaptive_calibration_error(fine, self.n_bins),
            "ece_chance": chance_calibration_error(bins),
            "brier": float(sums[0]) / samples if samples else math.nan,
            "nll": float(sums[1]) / samples if samples else math.nan,
        }
        if self.classwise:
            out["classwise_ece"] = classwise_calibration_error(class_bins)
        return out

    def reliability(self) -> dict[str, list[float]]:
        return reliability(self.bins.detach().cpu())

    def reset(self) -> None:
        for t in self.tensors():
            t.zero_()
