"""TensorBoard: scalars, images, findings text and a custom-scalars layout.

The event files use the dashboard layout of :func:`fitwatch.sinks.tags.dashboard_scalar` (docs/dashboard.md):
train and validation are sibling runs (``<run>/train``, ``<run>/val``) under one tag, so every Scalars chart
overlays them, as the Keras TensorBoard callback does; per-class validation metrics are sibling runs
``<run>/class/<name>``; groups sort by question (``1_performance`` first). ``cb.history`` and ``history.json``
keep the history names (``performance/loss/val``). The writer is created lazily from a factory, so a run that
never logs opens no file; with Lightning's ``TensorBoardLogger`` or the HF Trainer's ``TensorBoardCallback`` the
factory returns their writer, and the sibling runs are written below its directory.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fitwatch.findings import Finding
from fitwatch.sinks.base import EvaluationDetails, Sink
from fitwatch.sinks.figures import confusion_matrix_image, reliability_diagram_image
from fitwatch.sinks.tags import CLASS_RUN, DASHBOARD_SECTIONS, dashboard_name, dashboard_scalar, parse_tag, tag

__all__ = ["TensorBoardSink", "custom_scalars_layout"]

#: Per-class runs are written up to this many classes; beyond it the per-class detail is in the confusion matrix
#: (most confused classes), ``history.json`` and ``fitwatch report``.
MAX_CLASS_RUNS = 20


def custom_scalars_layout(prefix: str = "") -> dict[str, dict[str, list[Any]]]:
    """The layout for ``SummaryWriter.add_custom_scalars``: one chart per question. Lines are runs, so train and
    validation (sibling runs) get their own colour and name; each gap and its slope have their own chart (their
    scales differ); per-class charts draw one coloured line per class (sibling runs ``class/<name>``).

    >>> layout = custom_scalars_layout()
    >>> list(layout)[0], layout["1. performance (train vs validation)"]["loss"]
    ('1. performance (train vs validation)', ['Multiline', ['^1_performance/loss$']])
    """

    def rx(section: str, metric: str, rest: str = "") -> str:
        return "^" + re.escape(prefix + DASHBOARD_SECTIONS[section] + "/" + metric) + rest + "$"

    return {
        "1. performance (train vs validation)": {
            "loss": ["Multiline", [rx("performance", "loss")]],
            "accuracy": ["Multiline", [rx("performance", "accuracy")]],
            "macro F1": ["Multiline", [rx("performance", "macro_f1")]],
            "training loss per step": ["Multiline", [rx("performance", "step_loss")]],
        },
        "2. findings (0 resolved, 1 info, 2 warning, 3 critical)": {
            "findings raised": ["Multiline", [rx("findings", "count")]],
            "severity per finding": ["Multiline", [rx("findings", "FW-", ".*")]],
        },
        "3. train-validation gap (validation minus training)": {
            "loss gap": ["Multiline", [rx("gap", "loss")]],
            "loss gap: slope per evaluation": ["Multiline", [rx("gap", "loss_slope")]],
            "accuracy gap": ["Multiline", [rx("gap", "accuracy")]],
            "accuracy gap: slope per evaluation": ["Multiline", [rx("gap", "accuracy_slope")]],
            "ECE gap": ["Multiline", [rx("gap", "ece")]],
            "ECE gap: slope per evaluation": ["Multiline", [rx("gap", "ece_slope")]],
        },
        "4. calibration (train vs validation)": {
            "expected calibration error": ["Multiline", [rx("calibration", "ece")]],
            "negative log-likelihood": ["Multiline", [rx("calibration", "nll")]],
            "mean confidence": ["Multiline", [rx("calibration", "confidence")]],
            "Brier score": ["Multiline", [rx("calibration", "brier")]],
        },
        "5. per class (validation, one line per class)": {
            metric: ["Multiline", [rx("per_class", key)]]
            for metric, key in (("recall", "recall"), ("precision", "precision"), ("F1", "f1"))
        },
        "6. optimizer and weights": {
            "learning rate per param group": ["Multiline", [rx("optimizer", "lr", "/.+")]],
            "gradient norm": ["Multiline", [rx("optimizer", "grad_norm")]],
            "weight norm": ["Multiline", [rx("weights", "norm")]],
            "update-to-weight ratio per block": ["Multiline", [rx("weights", "update_ratio", "/.+")]],
        },
    }


def _log_dir(writer: Any) -> str | None:
    for name in ("get_logdir", "log_dir", "logdir"):
        value = getattr(writer, name, None)
        value = value() if callable(value) else value
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
    return None


class TensorBoardSink(Sink):
    """Writes through a ``SummaryWriter`` (``torch.utils.tensorboard`` or tensorboardX API).

    Args:
        writer_factory: Returns the writer of the run directory; called once, on first use.
        prefix: The tag prefix (``FitWatchConfig.tag_prefix``).
        images: Draw the confusion matrix and reliability diagram at each evaluation.
        own_writer: Close that writer at the end (False when it belongs to a framework logger). The sibling
            runs' writers are fitwatch's and always closed.
        max_class_runs: Most classes written as per-class runs (:data:`MAX_CLASS_RUNS`).
    """

    name = "TensorBoard"

    def __init__(
        self,
        writer_factory: Callable[[], Any],
        *,
        prefix: str = "",
        images: bool = True,
        own_writer: bool = True,
        max_class_runs: int = MAX_CLASS_RUNS,
    ) -> None:
        self._factory = writer_factory
        self._writer: Any = None
        self._runs: dict[str, Any] = {}
        self.prefix = prefix
        self.images = images
        self.own_writer = own_writer
        self.max_class_runs = max_class_runs
        self._classes: set[str] = set()
        #: Splits whose NLL equals their loss (cross-entropy training): the NLL chart would repeat the loss chart.
        self._nll_is_loss: dict[str, bool] = {}

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

    def run(self, name: str) -> Any:
        """The writer of sibling run ``name`` (``""``: the run directory's own writer)."""
        if not name:
            return self.writer
        writer = self._runs.get(name)
        if writer is None:
            root = _log_dir(self.writer)
            if root is None:  # a writer that does not say where it writes: everything in one run
                return self.writer
            writer = type(self.writer)(os.path.join(root, *name.split("/")))
            self._runs[name] = writer
        return writer

    def _skip_nll(self, values: Mapping[str, float], split: str) -> bool:
        known = self._nll_is_loss.get(split)
        if known is None:
            loss = values.get(tag("performance", "loss", split=split, prefix=self.prefix))
            nll = values.get(tag("calibration", "nll", split=split, prefix=self.prefix))
            if loss is None or nll is None or not (math.isfinite(loss) and math.isfinite(nll)):
                return False
            known = self._nll_is_loss[split] = abs(loss - nll) <= 1e-3 * max(abs(loss), 1e-12)
        return known

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            parts = parse_tag(name, self.prefix)
            if parts is not None and parts.section == "calibration" and parts.metric == "nll" and parts.split:
                if self._skip_nll(values, parts.split):
                    continue
            placed = dashboard_scalar(name, value, prefix=self.prefix)
            if placed is None:
                continue
            run, name, value = placed
            if run.startswith(CLASS_RUN + "/"):
                if run not in self._classes and len(self._classes) >= self.max_class_runs:
                    continue
                self._classes.add(run)
            self.run(run).add_scalar(name, value, global_step=step)

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        if not self.images:
            return
        # Images sit in the split's run under a tag without the split, so the Images tab shows train and
        # validation side by side at the same step slider.
        writer = self.run(details.split)
        name = DASHBOARD_SECTIONS["per_class"] + "/confusion_matrix"
        if details.confusion is not None:
            image = confusion_matrix_image(details.confusion, details.class_names, title=f"{details.split}, step {step}")
            writer.add_image(self.prefix + name, image, step, dataformats="HWC")
        if details.reliability:
            image = reliability_diagram_image(details.reliability, title=f"{details.split}, step {step}")
            writer.add_image(self.prefix + DASHBOARD_SECTIONS["calibration"] + "/reliability_diagram", image, step, dataformats="HWC")

    def finding(self, finding: Finding, *, new: bool) -> None:
        state = "resolved" if getattr(finding, "resolved_step", None) is not None else ("new" if new else "updated")
        subject = f" ({finding.subject})" if finding.subject else ""
        body = (
            f"**{finding.severity.name}** · **{finding.code}**{subject} · {state}\n\n{finding.message}\n\n"
            f"*Hint:* {finding.hint}\n\n"
            + "  \n".join(f"`{k}` = {_shown(v)}" for k, v in finding.evidence.items())
        )
        _, name = dashboard_name(tag("findings", finding.code, prefix=self.prefix), prefix=self.prefix)
        self.writer.add_text(name, body, global_step=finding.step)

    def text(self, tag_name: str, text: str, step: int) -> None:
        run, name = dashboard_name(tag_name, prefix=self.prefix)
        self.run(run).add_text(name, text, global_step=step)

    def histogram(self, tag_name: str, edges: Sequence[float], counts: Sequence[int], step: int) -> None:
        total = float(sum(counts))
        if total == 0:
            return
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        nonzero = [i for i, c in enumerate(counts) if c]
        run, tag_name = dashboard_name(tag_name, prefix=self.prefix)
        self.run(run).add_histogram_raw(
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
        for writer in [self._writer, *self._runs.values()]:
            if writer is not None:
                writer.flush()

    def close(self) -> None:
        for writer in self._runs.values():
            writer.close()
        self._runs = {}
        if self._writer is not None:
            self._writer.flush()
            if self.own_writer:
                self._writer.close()
        self._writer = None


def _shown(value: Any) -> str:
    """An evidence value for the text card: floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)
