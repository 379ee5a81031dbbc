"""The most confidently wrong predictions of an evaluation, with bounded memory.

Aggregate metrics say how often a model is wrong; the samples it is most sure about and still gets wrong
say why (a wrong label, a duplicate with another label, a preprocessing bug, a shortcut).
:class:`ConfidentMistakes` keeps, over one evaluation, the ``k`` wrong predictions with the highest
confidence overall and for each true class, plus histograms of confidence for correct and wrong
predictions (a well-calibrated model is rarely wrong at high confidence).

Memory is O(classes x k): each update merges the batch into the kept top-k with ``torch.topk`` (overall)
and one sort (per class), on the logits' device, with static shapes, so no update synchronises with the
host. Values are read when :meth:`ConfidentMistakes.table` or :meth:`ConfidentMistakes.mistakes` is called.

>>> import torch
>>> cm = ConfidentMistakes(k=2, class_names=["cat", "dog"])
>>> logits = torch.tensor([[4.0, 0.0], [0.0, 2.0], [0.0, 3.0], [1.0, 0.0]])
>>> cm.update(logits, torch.tensor([1, 1, 0, 0]))
>>> [(m.ref, m.label, m.prediction, round(m.confidence, 3)) for m in cm.mistakes()]
[(0, 1, 0, 0.982), (2, 0, 1, 0.953)]
>>> print(cm.table())  # doctest: +NORMALIZE_WHITESPACE
**Most confidently wrong** (2 of 4 predictions wrong)
<BLANKLINE>
| # | sample | label | prediction | confidence |
|---|---|---|---|---|
| 1 | 0 | dog | cat | 0.982 |
| 2 | 2 | cat | dog | 0.953 |
<BLANKLINE>
**Per class**
<BLANKLINE>
| label | # | sample | prediction | confidence |
|---|---|---|---|---|
| cat | 1 | 2 | dog | 0.953 |
| dog | 1 | 0 | cat | 0.982 |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fitwatch._validation import check_positive_int
from fitwatch.metrics.calibration import bin_index

__all__ = ["ConfidentMistakes", "Mistake"]

#: Bins of the confidence histograms over [0, 1]: equal width, right-closed ``((m-1)/M, m/M]`` like the
#: calibration bins of :mod:`fitwatch.metrics.calibration` (Guo et al. 2017 use 15 for ECE; 20 gives
#: 0.05-wide bins that read directly as percentages).
N_BINS = 20
#: Label value that marks a position without a target (Hugging Face pads token labels with -100).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Mistake:
    """One wrong prediction.

    Attributes:
        ref: The sample's reference: its id from ``sample_ids``, or its position in the evaluation order.
        label: True class index.
        prediction: Predicted class index.
        confidence: Softmax probability of the predicted class.
    """

    ref: int
    label: int
    prediction: int
    confidence: float


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


class ConfidentMistakes:
    """The ``k`` most confidently wrong predictions, overall and per true class, and confidence histograms.

    Args:
        k: Mistakes kept overall and per class.
        class_names: Names of the classes for the table; indices are shown when ``None``.
        n_bins: Equal-width bins of the confidence histograms over ``[0, 1]``.
        ignore_index: Target value to skip (padding).

    Raises:
        TypeError: If ``k`` or ``n_bins`` is not an int, or ``class_names`` is not a sequence of strings.
        ValueError: If ``k`` or ``n_bins`` is not positive.
    """

    def __init__(
        self,
        k: int = 10,
        *,
        class_names: Sequence[str] | None = None,
        n_bins: int = N_BINS,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.k = check_positive_int("k", k)
        self.n_bins = check_positive_int("n_bins", n_bins)
        if class_names is not None and (
            isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names)
        ):
            raise TypeError(f"Expected `class_names` to be a sequence of str, but got {class_names!r}.")
        self.class_names = None if class_names is None else list(class_names)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (call at the start of each evaluation)."""
        self._overall: dict[str, torch.Tensor] = {}
        self._per_class: dict[str, torch.Tensor] = {}
        self._hist: torch.Tensor | None = None
        self._num_classes: int | None = None
        self._offset = 0

    def _init_state(self, num_classes: int, device: torch.device) -> None:
        k = self.k

        def empty(*shape: int) -> dict[str, torch.Tensor]:
            return {
                "confidence": torch.full(shape, float("-inf"), device=device),
                "ref": torch.full(shape, -1, dtype=torch.long, device=device),
                "label": torch.full(shape, -1, dtype=torch.long, device=device),
                "prediction": torch.full(shape, -1, dtype=torch.long, device=device),
            }

        self._num_classes = num_classes
        self._overall = empty(k)
        self._per_class = empty(num_classes * k)
        # Row 0 correct, row 1 wrong; one extra slot collects ignored positions and is dropped on read.
        self._hist = torch.zeros(2 * self.n_bins + 1, dtype=torch.long, device=device)

    @torch.no_grad()
    def update(
        self, logits: torch.Tensor, targets: torch.Tensor, sample_ids: torch.Tensor | None = None
    ) -> None:
        """Merge one evaluation batch.

        Args:
            logits: ``(batch, classes)`` logits.
            targets: ``(batch,)`` true class indices (``ignore_index`` skips a position).
            sample_ids: ``(batch,)`` integer references shown in the table; ``None`` numbers samples in the
                order they arrive since the last :meth:`reset`.

        Raises:
            TypeError: If ``logits`` or ``targets`` is not a tensor, or targets/ids are not integers.
            ValueError: If the shapes do not match or the number of classes changes between updates.
        """
        for name, value in (("logits", logits), ("targets", targets)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(value).__name__}.")
        if logits.ndim != 2 or logits.shape[1] < 2:
            raise ValueError(
                f"Expected `logits` to have shape (batch, classes) with at least 2 classes, but got "
                f"{tuple(logits.shape)}; flatten token positions into the batch."
            )
        n, num_classes = logits.shape
        if sample_ids is None:
            sample_ids = torch.arange(self._offset, self._offset + n, device=logits.device)
        for name, value in (("targets", targets), ("sample_ids", sample_ids)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(value).__name__}.")
            if value.shape != (n,):
                raise ValueError(
                    f"Expected `{name}` to have shape ({n},) like the logits' batch, "
                    f"but got {tuple(value.shape)}."
                )
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                raise TypeError(f"Expected `{name}` to hold integers, but got {value.dtype}.")
        if self._num_classes is None:
            self._init_state(num_classes, logits.device)
        elif num_classes != self._num_classes:
            raise ValueError(
                f"Expected `logits` to have {self._num_classes} classes as before, but got {num_classes}."
            )
        self._offset += n
        device = self._hist.device
        probs = torch.softmax(logits.detach().float(), dim=1).to(device)
        targets = targets.to(device=device, dtype=torch.long)
        refs = sample_ids.to(device=device, dtype=torch.long)
        confidence, prediction = probs.max(dim=1)
        valid = (targets != self.ignore_index) & (targets >= 0) & (targets < num_classes)
        wrong = valid & (prediction != targets)

        bins = bin_index(confidence, self.n_bins)
        slot = torch.where(valid, wrong.long() * self.n_bins + bins, torch.full_like(bins, 2 * self.n_bins))
        self._hist.index_add_(0, slot, torch.ones_like(slot))

        batch = {
            "confidence": torch.where(wrong, confidence, float("-inf")),
            "ref": refs,
            "label": torch.where(valid, targets, 0),
            "prediction": prediction,
        }
        self._merge_overall(batch)
        self._merge_per_class(batch)

    def _merge_overall(self, batch: dict[str, torch.Tensor]) -> None:
        merged = {key: torch.cat([self._overall[key], batch[key]]) for key in batch}
        top = torch.topk(merged["confidence"], self.k).indices
        self._overall = {key: value[top] for key, value in merged.items()}

    def _merge_per_class(self, batch: dict[str, torch.Tensor]) -> None:
        # One static-shape pass: sort by confidence, then stably by class, rank within each class, and
        # scatter the first k of every class into its k slots (the rest into one discarded slot).
        k, num_classes = self.k, self._num_classes
        merged = {key: torch.cat([self._per_class[key], batch[key]]) for key in batch}
        owner = torch.cat(
            [torch.arange(num_classes, device=merged["label"].device).repeat_interleave(k), batch["label"]]
        )
        by_confidence = torch.argsort(merged["confidence"], descending=True, stable=True)
        order = by_confidence[torch.argsort(owner[by_confidence], stable=True)]
        sorted_owner = owner[order]
        starts = torch.searchsorted(sorted_owner, torch.arange(num_classes, device=sorted_owner.device))
        rank = torch.arange(sorted_owner.numel(), device=sorted_owner.device) - starts[sorted_owner]
        slot = torch.where(rank < k, sorted_owner * k + rank, torch.full_like(rank, num_classes * k))
        new = {}
        for key, value in merged.items():
            out = torch.empty(num_classes * k + 1, dtype=value.dtype, device=value.device)
            out.scatter_(0, slot, value[order])
            new[key] = out[:-1]
        self._per_class = new

    def _rows(self, state: dict[str, torch.Tensor]) -> list[Mistake]:
        host = {key: value.tolist() for key, value in state.items()}
        return [
            Mistake(ref=r, label=lab, prediction=p, confidence=c)
            for c, r, lab, p in zip(host["confidence"], host["ref"], host["label"], host["prediction"])
            if c != float("-inf")
        ]

    def mistakes(self) -> list[Mistake]:
        """The kept mistakes overall, most confident first."""
        return self._rows(self._overall) if self._overall else []

    def per_class(self) -> dict[int, list[Mistake]]:
        """The kept mistakes per true class index, most confident first (classes without mistakes omitted)."""
        if not self._per_class:
            return {}
        rows = self._rows(self._per_class)
        out: dict[int, list[Mistake]] = {}
        for row in rows:
            out.setdefault(row.label, []).append(row)
        return dict(sorted(out.items()))

    def histograms(self) -> dict[str, list[float] | list[int]]:
        """Confidence histograms: ``edges`` (``n_bins + 1`` values), ``correct`` and ``wrong`` counts."""
        edges = [i / self.n_bins for i in range(self.n_bins + 1)]
        if self._hist is None:
            return {"edges": edges, "correct": [0] * self.n_bins, "wrong": [0] * self.n_bins}
        counts = self._hist.tolist()
        return {
            "edges": edges,
            "correct": counts[: self.n_bins],
            "wrong": counts[self.n_bins : 2 * self.n_bins],
        }

    def _name(self, index: int) -> str:
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return _escape(self.class_names[index])
        return str(index)

    def table(self, describe: Callable[[int], Any] | None = None) -> str:
        """The kept mistakes as a markdown table (overall, then per class), for TensorBoard text.

        Args:
            describe: Maps a sample reference to what the table shows for it (the decoded text, a file name);
                the reference itself when ``None``.
        """
        show = (lambda ref: str(ref)) if describe is None else (lambda ref: _escape(str(describe(ref))))
        hist = self.histograms()
        n_wrong, n_total = sum(hist["wrong"]), sum(hist["wrong"]) + sum(hist["correct"])
        lines = [f"**Most confidently wrong** ({n_wrong} of {n_total} predictions wrong)", ""]
        overall = self.mistakes()
        if not overall:
            lines.append("No wrong prediction.")
            return "\n".join(lines)
        lines += ["| # | sample | label | prediction | confidence |", "|---|---|---|---|---|"]
        for rank, m in enumerate(overall, start=1):
            lines.append(
                f"| {rank} | {show(m.ref)} | {self._name(m.label)} | {self._name(m.prediction)} "
                f"| {m.confidence:.3f} |"
            )
        lines += [
            "",
            "**Per class**",
            "",
            "| label | # | sample | prediction | confidence |",
            "|---|---|---|---|---|",
        ]
        for label, rows in self.per_class().items():
            for rank, m in enumerate(rows, start=1):
                lines.append(
                    f"| {self._name(label)} | {rank} | {show(m.ref)} | {self._name(m.prediction)} "
                    f"| {m.confidence:.3f} |"
                )
        return "\n".join(lines)
