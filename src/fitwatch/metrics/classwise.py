"""Per-class precision, recall, F1 and support from count vectors (and an optional confusion matrix).

Counts are O(classes): true positives, predictions and targets per class. The full confusion matrix,
O(classes^2), is kept only up to a configurable number of classes. Zero divisions give 0, as
scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)``.

>>> import torch
>>> counts = class_counts(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), num_classes=3)
>>> scores = per_class_scores(*counts)
>>> [round(x, 3) for x in scores["f1"].tolist()]
[1.0, 0.667, 0.667]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ClassCountsState", "class_counts", "per_class_scores", "summary_scores"]


def class_counts(
    preds: Tensor, target: Tensor, num_classes: int, weights: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(true_positives, predicted, actual)`` per class for integer ``preds`` and ``target`` of shape ``[N]``.

    Uses ``scatter_add`` into fixed-size tensors (no data-dependent shapes, so no host sync on GPU).
    """
    w = torch.ones_like(target, dtype=torch.long) if weights is None else weights.long()
    tp = torch.zeros(num_classes, dtype=torch.long, device=target.device)
    tp.scatter_add_(0, target, (preds == target).long() * w)
    predicted = torch.zeros_like(tp).scatter_add_(0, preds, w)
    actual = torch.zeros_like(tp).scatter_add_(0, target, w)
    return tp, predicted, actual


def per_class_scores(tp: Tensor, predicted: Tensor, actual: Tensor) -> dict[str, Tensor]:
    """Precision, recall, F1 and support per class (float64 tensors; 0 where undefined)."""
    tp, predicted, actual = tp.double(), predicted.double(), actual.double()
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(tp))
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual, "predicted": predicted}


def summary_scores(tp: Tensor, predicted: Tensor, actual: Tensor, *, multilabel: bool = False) -> dict[str, float]:
    """Accuracy (micro), macro and weighted F1 and the majority-class share.

    Macro F1 averages over the classes present in the targets *or* the predictions (as scikit-learn's
    ``average="macro"`` over the labels it sees). For multilabel, ``accuracy`` is the micro F1 over all
    labels (exact-match accuracy would need per-sample state).
    """
    scores = per_class_scores(tp, predicted, actual)
    total = float(actual.sum())
    if total == 0:
        return {"accuracy": math.nan, "macro_f1": math.nan, "weighted_f1": math.nan, "majority_fraction": math.nan}
    seen = (actual > 0) | (predicted > 0)
    macro = float(scores["f1"][seen].mean()) if bool(seen.any()) else math.nan
    weighted = float((scores["f1"] * actual.double()).sum()) / total
    if multilabel:
        tp_sum, pred_sum = float(tp.sum()), float(predicted.sum())
        accuracy = 2 * tp_sum / (pred_sum + total) if pred_sum + total > 0 else math.nan
    else:
        accuracy = float(tp.sum()) / total
    return {
        "accuracy": accuracy,
        "macro_f1": macro,
        "weighted_f1": weighted,
        "majority_fraction": float(actual.max()) / total,
    }


class ClassCountsState:
    """Per-class counts of one split, plus the confusion matrix when ``num_classes <= confusion_max``.

    States are ``int64`` tensors on the predictions' device that reduce by ``sum`` across ranks.
    """

    def __init__(self, num_classes: int, *, confusion_max: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.counts = torch.zeros(3, num_classes, dtype=torch.long, device=device)  # tp, predicted, actual
        keep = num_classes <= confusion_max
        self.confusion = torch.zeros(num_classes if keep else 0, num_classes if keep else 0, dtype=torch.long, device=device)

    @property
    def has_confusion(self) -> bool:
        return self.confusion.numel() > 0

    def tensors(self) -> list[Tensor]:
        return [self.counts, self.confusion]

    def update(self, preds: Tensor, target: Tensor, weights: Tensor) -> None:
        # The three count vectors in one scatter_add_ over [tp | predicted | actual] (same as class_counts).
        k = self.num_classes
        w = weights.long()
        index = torch.cat([target, preds + k, target + 2 * k])
        values = torch.cat([(preds == target).long() * w, w, w])
        self.counts.view(-1).scatter_add_(0, index, values)
        if self.has_confusion:
            self.confusion.view(-1).scatter_add_(0, target * k + preds, w)

    def update_multilabel(self, preds: Tensor, target: Tensor, weights: Tensor) -> None:
        """Multi-hot ``preds``/``target`` ``[N, L]``: per-label counts (no confusion matrix)."""
        w = weights.long().unsqueeze(1)
        p, t = preds.long() * w, target.long() * w
        self.counts += torch.stack([(p * t).sum(0), p.sum(0), t.sum(0)])

    def compute(self, *, multilabel: bool = False) -> tuple[dict[str, float], dict[str, list[float]]]:
        """``(summary, per_class)``: aggregate scores and per-class lists, read back in one transfer."""
        tp, predicted, actual = self.counts.detach().cpu()
        per_class = {k: v.tolist() for k, v in per_class_scores(tp, predicted, actual).items()}
        return summary_scores(tp, predicted, actual, multilabel=multilabel), per_class

    def confusion_matrix(self) -> list[list[int]] | None:
        return self.confusion.detach().cpu().tolist() if self.has_confusion else None

    def reset(self) -> None:
        for t in self.tensors():
            t.zero_()
