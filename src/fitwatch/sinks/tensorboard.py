"""TensorBoard: scalars, images, findings text and a custom-scalars layout.

Tags come from :func:`fitwatch.sinks.tags.tag` only. The writer is created lazily from a factory, so
a run that never logs opens no file; with Lightning's ``TensorBoardLogger`` or the HF Trainer's
``TensorBoardCallback`` the factory returns their writer and everything lands in one run directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fitwatch.findings import Finding
from fitwatch.sinks.base import EvaluationDetails, Sink
from fitwatch.sinks.figures import confusion_matrix_image, reliability_diagram_image
from fitwatch.sinks.tags import tag

__all__ = ["TensorBoardSink", "custom_scalars_layout"]

# Metrics overlaid train-vs-val, by section: one chart per metric.
_OVERLAYS = {
    "performance": ("loss", "accuracy", "macro_f1", "weighted_f1"),
    "calibration": ("ece", "adaptive_ece", "classwise_ece", "mce", "nll", "brier"),
}


def custom_scalars_layout(prefix: str = "") -> dict[str, dict[str, list[Any]]]:
    """The layout for ``SummaryWriter.add_custom_scalars``: train and validation overlaid on one chart per
    metric, each gap next to its trend, every class's validation recall/F1 on one chart, and the
    learning rate of every param group together. Charts take tag regexes, so the layout is written once,
    before any tag exists."""

    def rx(section: str, metric: str, rest: str = "") -> str:
        return "^" + re.escape(tag(section, metric, prefix=prefix)) + rest + "$"

    layout: dict[str, dict[str, list[Any]]] = {}
    layout["fitwatch: train vs val"] = {
        metric: ["Multiline", [rx(section, metric, "/(train|val)")]]
        for section, metrics in _OVERLAYS.items()
        for metric in metrics
    }
    layout["fitwatch: train-val gap"] = {
        metric: ["Multiline", [rx("gap", metric), rx("gap", metric + "_slope")]] for metric in ("loss", "accuracy", "ece")
    }
    layout["fitwatch: per class (val)"] = {
        metric: ["Multiline", [rx("per_class", metric, "/.+/val")]] for metric in ("recall", "precision", "f1")
    }
    layout["fitwatch: optimizer"] = {
        "learning rate": ["Multiline", [rx("optimizer", "lr", "/.+")]],
        "update-to-weight ratio": ["Multiline", [rx("weights", "update_ratio", "/.+")]],
        "grad and weight norm": ["Multiline", [rx("optimizer", "grad_norm"), rx("weights", "norm")]],
    }
    return layout


class TensorBoardSink(Sink):
    """Writes through a ``SummaryWriter`` (``torch.utils.tensorboard`` or tensorboardX API).

    Args:
        writer_factory: Returns the writer to use; called once, on first use.
        prefix: The tag prefix (``FitWatchConfig.tag_prefix``).
        images: Draw the confusion matrix and reliability diagram at each evaluation.
        own_writer: Close the writer at the end (False when it belongs to a framework logger).
    """

    name = "TensorBoard"

    def __init__(self, writer_factory: Callable[[], Any], *, prefix: str = "", images: bool = True, own_writer: bool = True) -> None:
        self._factory = writer_factory
        self._writer: Any = None
        self.prefix = prefix
        self.images = images
        self.own_writer = own_writer

    @classmethod
    def for_directory(cls, log_dir: str | os.PathLike[str], **kwargs: Any) -> TensorBoardSink:
        """A sink with its own ``SummaryWriter`` in ``log_dir``."""

        def make() -> Any:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter(log_dir=str(log_dir))

        return cls(make, own_writer=True, **kwargs)

    @property
    def writer(self) -> Any:
        if self._writer is None:
            self._writer = self._factory()
            self._writer.add_custom_scalars(custom_scalars_layout(self.prefix))
        return self._writer

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        writer = self.writer
        for name, value in values.items():
            writer.add_scalar(name, value, global_step=step)

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        if not self.images:
            return
        if details.confusion is not None:
            image = confusion_matrix_image(details.confusion, details.class_names, title=f"{details.split} step {step}")
            self.writer.add_image(tag("per_class", "confusion_matrix", split=details.split, prefix=self.prefix), image, step, dataformats="HWC")
        if details.reliability:
            image = reliability_diagram_image(details.reliability, title=f"{details.split} step {step}")
            self.writer.add_image(tag("calibration", "reliability_diagram", split=details.split, prefix=self.prefix), image, step, dataformats="HWC")

    def finding(self, finding: Finding, *, new: bool) -> None:
        state = "new" if new else "updated"
        subject = f" ({finding.subject})" if finding.subject else ""
        body = (
            f"**{finding.code}**{subject} [{finding.severity.name.lower()}, {state}] {finding.message}\n\n"
            f"*Hint:* {finding.hint}\n\n"
            + "  \n".join(f"`{k}` = {v}" for k, v in finding.evidence.items())
        )
        self.writer.add_text(tag("findings", finding.code, prefix=self.prefix), body, global_step=finding.step)

    def text(self, tag_name: str, text: str, step: int) -> None:
        self.writer.add_text(tag_name, text, global_step=step)

    def histogram(self, tag_name: str, edges: Sequence[float], counts: Sequence[int], step: int) -> None:
        total = float(sum(counts))
        if total == 0:
            return
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        nonzero = [i for i, c in enumerate(counts) if c]
        self.writer.add_histogram_raw(
            tag_name,
            min=edges[nonzero[0]],
            max=edges[nonzero[-1] + 1],
            num=total,
            sum=sum(c * x for c, x in zip(counts, centers)),
            sum_squares=sum(c * x * x for c, x in zip(counts, centers)),
            bucket_limits=list(edges[1:]),
            bucket_counts=list(counts),
            global_step=step,
        )

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            if self.own_writer:
                self._writer.close()
        self._writer = None
