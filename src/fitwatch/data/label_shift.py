"""Label distribution shift between training and validation.

A validation set whose class proportions differ from training scores a different problem: accuracy
moves with the mix, thresholds tuned on it do not transfer, and a class absent from one split is either
never learned or never evaluated. :func:`label_shift` reports the per-class proportions, Pearson's
chi-square test of homogeneity on the 2 x K table of counts (p-value from :mod:`fitwatch.data.chi_square`),
the total-variation distance between the two distributions, and the classes present in one split only.

A significant p-value alone is not worth a warning: with 100,000 samples a shift of half a percentage
point is significant and harmless. The finding therefore needs both evidence (``p < ALPHA``) and size
(``TV >= MIN_TV``), or a class missing from a split where it would be expected at least
``MIN_EXPECTED`` times.

>>> report = label_shift([0] * 80 + [1] * 20, [0] * 50 + [1] * 50, class_names=["neg", "pos"])
>>> report.train_proportions, report.val_proportions
({'neg': 0.8, 'pos': 0.2}, {'neg': 0.5, 'pos': 0.5})
>>> round(report.tv, 3), report.dof, report.p_value < 1e-4
(0.3, 1, True)
>>> report.to_finding().code
'FW-LABEL-SHIFT'
"""

from __future__ import annotations

import math
import numbers
import sys
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitwatch.data.chi_square import chi2_sf
from fitwatch.findings import Finding, Severity

__all__ = ["ALPHA", "MIN_EXPECTED", "MIN_TV", "LabelShiftReport", "label_shift"]

#: Significance level of the chi-square test for a finding.
ALPHA = 0.01
#: Smallest total-variation distance worth a finding: 5 percentage points of probability mass moved
#: between classes. A judgment, not a literature constant: below it, the mix changes accuracy by at most
#: 5 points even if the per-class accuracies differ by 100 points.
MIN_TV = 0.05
#: A class missing from a split counts only if its expected count there is at least 5: the classic
#: rule of thumb for chi-square cells (Cochran 1954). Below it, absence is what chance gives.
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class LabelShiftReport:
    """Result of :func:`label_shift`.

    Attributes:
        names: Class names, in order.
        train_counts: Training samples per class.
        val_counts: Validation samples per class.
        chi2: Pearson's chi-square statistic over the classes present in either split.
        dof: Its degrees of freedom (classes present in either split, minus one; 0 if fewer than two).
        p_value: Probability of a statistic at least this large if both splits had the same distribution.
        tv: Total-variation distance between the two class distributions, in ``[0, 1]``.
    """

    names: tuple[str, ...]
    train_counts: tuple[int, ...]
    val_counts: tuple[int, ...]
    chi2: float
    dof: int
    p_value: float
    tv: float

    @property
    def n_train(self) -> int:
        return sum(self.train_counts)

    @property
    def n_val(self) -> int:
        return sum(self.val_counts)

    @property
    def train_proportions(self) -> dict[str, float]:
        n = self.n_train
        return {name: (c / n if n else 0.0) for name, c in zip(self.names, self.train_counts)}

    @property
    def val_proportions(self) -> dict[str, float]:
        n = self.n_val
        return {name: (c / n if n else 0.0) for name, c in zip(self.names, self.val_counts)}

    @property
    def train_only(self) -> tuple[str, ...]:
        """Classes with training samples and no validation sample (when validation is not empty)."""
        if not self.n_val:
            return ()
        return tuple(n for n, t, v in zip(self.names, self.train_counts, self.val_counts) if t and not v)

    @property
    def val_only(self) -> tuple[str, ...]:
        """Classes with validation samples and no training sample (when training is not empty)."""
        if not self.n_train:
            return ()
        return tuple(n for n, t, v in zip(self.names, self.train_counts, self.val_counts) if v and not t)

    def missing_expected(self, min_expected: float = MIN_EXPECTED) -> tuple[str, ...]:
        """Classes absent from one split although the other split predicts ``min_expected`` samples there."""
        train_p, val_p = self.train_proportions, self.val_proportions
        out = [n for n in self.train_only if train_p[n] * self.n_val >= min_expected]
        out += [n for n in self.val_only if val_p[n] * self.n_train >= min_expected]
        return tuple(out)

    def _moves(self, limit: int = 3) -> str:
        train_p, val_p = self.train_proportions, self.val_proportions
        ranked = sorted(self.names, key=lambda n: -abs(train_p[n] - val_p[n]))[:limit]
        return ", ".join(
            f"'{n}' {train_p[n]:.1%} -> {val_p[n]:.1%}" for n in ranked if train_p[n] != val_p[n]
        )

    def __str__(self) -> str:
        head = (
            f"Label distribution: {self.n_train} training and {self.n_val} validation samples, "
            f"total variation {self.tv:.3f}, chi-square {self.chi2:.2f} with {self.dof} dof "
            f"(p = {self.p_value:.3g})."
        )
        lines = [head]
        width = max([len(n) for n in self.names] + [5])
        lines.append(f"  {'class':<{width}}  {'train':>7}  {'val':>7}")
        train_p, val_p = self.train_proportions, self.val_proportions
        for name in self.names:
            lines.append(f"  {name:<{width}}  {train_p[name]:>7.1%}  {val_p[name]:>7.1%}")
        if self.train_only:
            lines.append(f"  in training only: {', '.join(self.train_only)}")
        if self.val_only:
            lines.append(f"  in validation only: {', '.join(self.val_only)}")
        return "\n".join(lines)

    def to_finding(
        self,
        step: int = 0,
        epoch: int | None = None,
        *,
        alpha: float = ALPHA,
        min_tv: float = MIN_TV,
        min_expected: float = MIN_EXPECTED,
    ) -> Finding | None:
        """A ``FW-LABEL-SHIFT`` finding, or ``None`` when the shift is not both significant and large.

        Args:
            step: Global step to stamp on the finding.
            epoch: Epoch to stamp on the finding.
            alpha: The chi-square p-value must be below this.
            min_tv: The total-variation distance must be at least this.
            min_expected: A class missing from one split is reported when the other split predicts at least
                this many samples of it.
        """
        shifted = self.p_value < alpha and self.tv >= min_tv
        missing = self.missing_expected(min_expected)
        if not shifted and not missing:
            return None
        parts = []
        if shifted:
            parts.append(
                f"Class proportions differ between training and validation (total variation {self.tv:.2f}, "
                f"chi-square {self.chi2:.1f} with {self.dof} dof, p = {self.p_value:.2g}): {self._moves()}"
            )
        train_missing = [n for n in missing if n in self.train_only]
        val_missing = [n for n in missing if n in self.val_only]
        if train_missing:
            parts.append(f"{', '.join(repr(n) for n in train_missing)} in training only (never evaluated)")
        if val_missing:
            parts.append(f"{', '.join(repr(n) for n in val_missing)} in validation only (never learned)")
        evidence = {
            "n_train": self.n_train,
            "n_val": self.n_val,
            "tv": self.tv,
            "chi2": self.chi2,
            "dof": self.dof,
            "p_value": self.p_value,
            "train_proportions": self.train_proportions,
            "val_proportions": self.val_proportions,
            "train_only": list(self.train_only),
            "val_only": list(self.val_only),
            "alpha": alpha,
            "min_tv": min_tv,
        }
        return Finding(
            code="FW-LABEL-SHIFT",
            severity=Severity.WARNING,
            step=step,
            epoch=epoch,
            message="; ".join(parts),
            evidence=evidence,
        )


def _counts(name: str, labels: Any, ignore_index: int | None) -> Counter[Hashable]:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, np.ndarray):
        # Token-level labels (batch x tokens) count every token.
        flat = labels.reshape(-1)
        if flat.dtype.hasobject:
            labels = flat.tolist()
        else:
            values, counts = np.unique(flat, return_counts=True)
            out = Counter({v.item(): int(c) for v, c in zip(values, counts)})
            out.pop(ignore_index, None)
            return out
    if isinstance(labels, (str, bytes, Mapping)) or not isinstance(labels, Iterable):
        raise TypeError(f"Expected `{name}` to be a sequence of labels, but got {type(labels).__name__}.")
    out: Counter[Hashable] = Counter()
    for index, label in enumerate(labels):
        if isinstance(label, np.generic):
            label = label.item()
        if not isinstance(label, Hashable) or (isinstance(label, float) and math.isnan(label)):
            raise TypeError(
                f"Expected `{name}[{index}]` to be a class label (int or str), but got {label!r}."
            )
        out[label] += 1
    out.pop(ignore_index, None)
    return out


def _order(labels: set[Hashable]) -> list[Hashable]:
    try:
        return sorted(labels)
    except TypeError:  # int and str labels together: group by type, then sort within
        return sorted(labels, key=lambda v: (type(v).__name__, str(v)))


def _names(
    labels: list[Hashable], class_names: Sequence[str] | Mapping[Hashable, str] | None
) -> tuple[list[Hashable], list[str]]:
    if class_names is None:
        return labels, [str(v) for v in labels]
    if isinstance(class_names, Mapping):
        unknown = [v for v in labels if v not in class_names]
        if unknown:
            raise ValueError(f"Expected `class_names` to name every label, but got none for {unknown[:5]}.")
        ordered = list(class_names)
        return ordered, [str(class_names[v]) for v in ordered]
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(
            "Expected `class_names` to be a sequence of names or a mapping, "
            f"but got {type(class_names).__name__}."
        )
    bad = [v for v in labels if not (isinstance(v, numbers.Integral) and 0 <= v < len(class_names))]
    if bad:
        raise ValueError(
            f"Expected labels to be ints in [0, {len(class_names)}) to index `class_names`, "
            f"but got {bad[:5]}."
        )
    return list(range(len(class_names))), [str(n) for n in class_names]


def label_shift(
    train_labels: Iterable[Hashable],
    val_labels: Iterable[Hashable],
    class_names: Sequence[str] | Mapping[Hashable, str] | None = None,
    *,
    ignore_index: int | None = None,
) -> LabelShiftReport:
    """Compare the class distributions of the training and validation labels.

    Args:
        train_labels: One label per training sample (ints, strings, or a numpy array or torch tensor;
            arrays of token labels are flattened).
        val_labels: One label per validation sample.
        class_names: Names of the classes: a sequence indexed by int labels (every class is listed, even one
            absent from both splits), or a mapping from label to name. ``None`` names classes by their label.
        ignore_index: A label to skip (``-100`` for padded token labels in Hugging Face).

    Returns:
        A :class:`LabelShiftReport`. With an empty split or fewer than two classes, ``chi2`` is 0,
        ``p_value`` 1 and ``dof`` 0.

    Raises:
        TypeError: If the labels are not a sequence of hashable labels, or ``class_names`` is neither a
            sequence nor a mapping.
        ValueError: If a label is outside ``class_names``, or two classes have the same name.
    """
    train = _counts("train_labels", train_labels, ignore_index)
    val = _counts("val_labels", val_labels, ignore_index)
    labels, names = _names(_order(set(train) | set(val)), class_names)
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"Expected distinct class names, but got {duplicated} more than once.")
    t = np.array([train.get(v, 0) for v in labels], dtype=np.float64)
    w = np.array([val.get(v, 0) for v in labels], dtype=np.float64)
    n_t, n_v = t.sum(), w.sum()
    present = (t + w) > 0
    dof = int(present.sum()) - 1
    if n_t and n_v and dof > 0:
        table = np.stack([t[present], w[present]])
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        p_value = chi2_sf(chi2, dof)
        tv = float(0.5 * np.abs(t / n_t - w / n_v).sum())
    else:
        chi2, p_value, dof = 0.0, 1.0, 0
        tv = 0.0
    return LabelShiftReport(
        names=tuple(names),
        train_counts=tuple(int(c) for c in t),
        val_counts=tuple(int(c) for c in w),
        chi2=chi2,
        dof=dof,
        p_value=p_value,
        tv=tv,
    )
