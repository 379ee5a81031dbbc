"""fitwatch's numbers in the loggers the user already has: every Lightning logger, and the run that the HF
Trainer's ``report_to`` integrations (MLflow, W&B, Comet) opened.

Each logger is one sink, so that :class:`~fitwatch.sinks.base.GuardedSinks` disables a logger that fails
(warned once) and keeps the others and training going. Scalars keep fitwatch's tag names
(``performance/accuracy/val``) and its step. Images (confusion matrix, reliability diagram), text and the
findings go where the logger can hold them: MLflow artifacts under ``fitwatch/``, W&B media and a
``wandb.Table``, Comet images, text and an asset; loggers that only hold numbers (CSV and the rest) get the
scalars, including each finding's ``findings/<code>`` severity track.

TensorBoard is not written here: :class:`~fitwatch.sinks.tensorboard.TensorBoardSink` writes through the
Trainer's TensorBoard writer (scalars, images, text, histograms and the custom-scalars layout), and the logger
it uses is passed as ``skip`` so that nothing is written twice.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fitwatch.findings import Finding
from fitwatch.sinks.base import EvaluationDetails, Sink
from fitwatch.sinks.figures import confusion_matrix_image, reliability_diagram_image
from fitwatch.sinks.tags import tag

__all__ = [
    "CometSink",
    "LoggerSink",
    "MLflowSink",
    "WandbSink",
    "integration_sinks",
    "logger_sinks",
    "mlflow_metric_name",
]

#: Characters MLflow accepts in a metric name on every platform (the colon is refused on Windows).
_MLFLOW_UNSAFE = re.compile(r"[^\w./\- ]")


def mlflow_metric_name(name: str) -> str:
    """``name`` with the characters MLflow rejects replaced by ``_`` (slashes kept, so tags still group).

    >>> mlflow_metric_name("per_class/recall/New York (NY)/val")
    'per_class/recall/New York _NY_/val'
    >>> mlflow_metric_name("findings/FW-OVERFIT")
    'findings/FW-OVERFIT'
    """
    return _MLFLOW_UNSAFE.sub("_", name)


def evaluation_images(details: EvaluationDetails, step: int, prefix: str = "") -> list[tuple[str, Any]]:
    """``[(tag, HWC uint8 image)]``: the confusion matrix and reliability diagram of one evaluation, with the
    tags :class:`~fitwatch.sinks.tensorboard.TensorBoardSink` gives them."""
    images = []
    if details.confusion is not None:
        images.append((
            tag("per_class", "confusion_matrix", split=details.split, prefix=prefix),
            confusion_matrix_image(details.confusion, details.class_names, title=f"{details.split} step {step}"),
        ))
    if details.reliability:
        images.append((
            tag("calibration", "reliability_diagram", split=details.split, prefix=prefix),
            reliability_diagram_image(details.reliability, title=f"{details.split} step {step}"),
        ))
    return images


def findings_markdown(findings: Iterable[Finding]) -> str:
    """The current state of every cause as a markdown table (one row per cause)."""
    rows = ["| code | subject | severity | step | message | hint |", "|---|---|---|---|---|---|"]
    for f in findings:
        cells = [f.code, f.subject or "", f.severity.name.lower(), str(f.step), f.message, f.hint]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows) + "\n"


class _FindingsTable:
    """Every line a cause was shown with (``findings.jsonl``) and each cause's latest state, with a flag set
    when something changed since the table was last written (written at flush, so not per finding)."""

    columns = ("code", "subject", "severity", "step", "epoch", "message", "hint")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.latest: dict[tuple[str, str], Finding] = {}
        self.changed = False

    def add(self, finding: Finding) -> None:
        self.lines.append(json.dumps(finding.to_dict(), sort_keys=True, default=str))
        self.latest[finding.key] = finding
        self.changed = True

    def jsonl(self) -> str:
        return "\n".join(self.lines) + "\n"

    def rows(self) -> list[list[Any]]:
        return [
            [f.code, f.subject or "", f.severity.name.lower(), f.step, f.epoch, f.message, f.hint]
            for f in self.latest.values()
        ]


class LoggerSink(Sink):
    """Scalars through a Lightning logger's ``log_metrics(metrics, step)`` (CSV and any other logger).

    ``flush`` calls the logger's ``save()`` so that a CSV file holds each evaluation's numbers when it ends.
    """

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.name = type(logger).__name__

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self.logger.log_metrics(dict(values), step)

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        save = getattr(self.logger, "save", None)
        if callable(save):
            save()


class MLflowSink(Sink):
    """One MLflow run: scalars with ``MlflowClient.log_batch``, images and text as artifacts under ``fitwatch/``
    (``fitwatch/<tag>/step_<step>.png``, ``fitwatch/text/<tag>/step_<step>.md``), and the findings as
    ``fitwatch/findings.jsonl`` (every line, as the run directory's ``findings.jsonl``) and
    ``fitwatch/findings.md`` (a table of the current causes).

    Args:
        client: Returns the ``MlflowClient`` to use.
        run_id: Returns the run's id, or ``None`` while the run is not open yet: scalars are then held and
            written once it is.
        prefix: Put before every metric name (``MLFlowLogger(prefix=...)`` joins with ``-``).
        images: Log the evaluation images.
        tag_prefix: fitwatch's tag prefix (``FitWatchConfig.tag_prefix``), for the images' names.
    """

    name = "MLflow"

    def __init__(
        self,
        client: Callable[[], Any],
        run_id: Callable[[], str | None],
        *,
        prefix: str = "",
        images: bool = True,
        tag_prefix: str = "",
        name: str = "MLflow",
    ) -> None:
        self._client_factory, self._run_id_factory = client, run_id
        self._client: Any = None
        self._run_id: str | None = None
        self.prefix = prefix
        self.images = images
        self.tag_prefix = tag_prefix
        self.name = name
        self._pending: list[tuple[dict[str, float], int]] = []
        self._findings = _FindingsTable()

    @classmethod
    def for_logger(cls, logger: Any, *, images: bool = True, tag_prefix: str = "") -> MLflowSink:
        """For Lightning's ``MLFlowLogger``: its client (``logger.experiment``) and run (``logger.run_id``).

        Metrics are logged with the client, not with ``logger.log_metrics``, whose name filter drops the
        ``-`` of finding codes (``findings/FW-OVERFIT``) that MLflow itself accepts.
        """
        prefix = getattr(logger, "_prefix", "") or ""
        join = getattr(logger, "LOGGER_JOIN_CHAR", "-")
        return cls(lambda: logger.experiment, lambda: logger.run_id, prefix=prefix + join if prefix else "",
                   images=images, tag_prefix=tag_prefix, name=type(logger).__name__)

    @classmethod
    def for_callback(cls, callback: Any, *, images: bool = True, tag_prefix: str = "") -> MLflowSink:
        """For the HF Trainer's ``MLflowCallback``: the run it started (or found active), read when first
        needed, so fitwatch's metrics land in the Trainer's own run even after the callback ends it."""

        def run_id() -> str | None:
            mlflow = getattr(callback, "_ml_flow", None)
            if mlflow is None or not getattr(callback, "_initialized", False):
                return None
            run = mlflow.active_run()
            return run.info.run_id if run is not None else None

        def client() -> Any:
            from mlflow import MlflowClient

            return MlflowClient()

        return cls(client, run_id, images=images, tag_prefix=tag_prefix, name="MLflowCallback")

    def _run(self) -> tuple[Any, str] | None:
        if self._run_id is None:
            self._run_id = self._run_id_factory()
            if self._run_id is None:
                return None
        if self._client is None:
            self._client = self._client_factory()
        return self._client, self._run_id

    def _metric_name(self, name: str) -> str:
        return mlflow_metric_name(self.prefix + name)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self._pending.append((dict(values), int(step)))
        self._write_pending()

    def _write_pending(self) -> None:
        run = self._run()
        if run is None or not self._pending:
            return
        from mlflow.entities import Metric

        client, run_id = run
        pending, self._pending = self._pending, []
        now = int(time.time() * 1000)
        metrics = [Metric(key=self._metric_name(k), value=float(v), timestamp=now, step=step) for values, step in pending for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's log_batch takes at most 1000 metrics
            client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        run = self._run() if self.images else None
        if run is None:
            return
        client, run_id = run
        for name, image in evaluation_images(details, step, self.tag_prefix):
            client.log_image(run_id, image, artifact_file=f"fitwatch/{mlflow_metric_name(name)}/step_{step:08d}.png")

    def text(self, tag_name: str, text: str, step: int) -> None:
        run = self._run()
        if run is not None:
            run[0].log_text(run[1], text, artifact_file=f"fitwatch/text/{mlflow_metric_name(tag_name)}/step_{step:08d}.md")

    def finding(self, finding: Finding, *, new: bool) -> None:
        self._findings.add(finding)

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        self._write_pending()
        run = self._run()
        if run is None or not self._findings.changed:
            return
        client, run_id = run
        client.log_text(run_id, self._findings.jsonl(), artifact_file="fitwatch/findings.jsonl")
        client.log_text(run_id, findings_markdown(self._findings.latest.values()), artifact_file="fitwatch/findings.md")
        self._findings.changed = False


class WandbSink(Sink):
    """One W&B run: scalars with ``run.log`` next to a step key (W&B's own step only grows, so fitwatch's step
    goes in ``step_key``, as the frameworks do), images as ``wandb.Image``, text and the findings as
    ``wandb.Table`` (``fitwatch/findings``, the current causes, logged at flush when they changed).

    Args:
        run: Returns the ``wandb`` run, or ``None`` while it is not open.
        step_key: The step metric of the framework's integration (``trainer/global_step`` for Lightning,
            ``train/global_step`` for the HF Trainer).
        images: Log the evaluation images.
    """

    def __init__(
        self, run: Callable[[], Any], *, step_key: str, images: bool = True, tag_prefix: str = "", name: str = "W&B"
    ) -> None:
        self._run_factory = run
        self.step_key = step_key
        self.images = images
        self.tag_prefix = tag_prefix
        self.name = name
        self._findings = _FindingsTable()

    @classmethod
    def for_logger(cls, logger: Any, *, images: bool = True, tag_prefix: str = "") -> WandbSink:
        """For Lightning's ``WandbLogger``."""
        return cls(lambda: logger.experiment, step_key="trainer/global_step", images=images, tag_prefix=tag_prefix,
                   name=type(logger).__name__)

    @classmethod
    def for_callback(cls, callback: Any, *, images: bool = True, tag_prefix: str = "") -> WandbSink:
        """For the HF Trainer's ``WandbCallback``: the run it opened."""
        return cls(lambda: getattr(getattr(callback, "_wandb", None), "run", None), step_key="train/global_step",
                   images=images, tag_prefix=tag_prefix, name="WandbCallback")

    def _log(self, values: Mapping[str, Any], step: int) -> None:
        run = self._run_factory()
        if run is not None:
            run.log({**values, self.step_key: step})

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self._log(values, step)

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        if self.images:
            import wandb

            self._log({name: wandb.Image(image) for name, image in evaluation_images(details, step, self.tag_prefix)}, step)

    def text(self, tag_name: str, text: str, step: int) -> None:
        import wandb

        self._log({tag_name: wandb.Table(columns=["text"], data=[[text]])}, step)

    def finding(self, finding: Finding, *, new: bool) -> None:
        self._findings.add(finding)

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        if not self._findings.changed:
            return
        import wandb

        step = max(f.step for f in self._findings.latest.values())
        self._log({"fitwatch/findings": wandb.Table(columns=list(_FindingsTable.columns), data=self._findings.rows())}, step)
        self._findings.changed = False


class CometSink(Sink):
    """One Comet experiment: ``log_metrics(values, step=)``, ``log_image``, ``log_text``, and the findings as
    the asset ``fitwatch/findings.jsonl`` (overwritten at flush when they changed)."""

    def __init__(self, experiment: Callable[[], Any], *, images: bool = True, tag_prefix: str = "", name: str = "Comet") -> None:
        self._experiment = experiment
        self.images = images
        self.tag_prefix = tag_prefix
        self.name = name
        self._findings = _FindingsTable()

    @classmethod
    def for_logger(cls, logger: Any, *, images: bool = True, tag_prefix: str = "") -> CometSink:
        """For Lightning's ``CometLogger``."""
        return cls(lambda: logger.experiment, images=images, tag_prefix=tag_prefix, name=type(logger).__name__)

    @classmethod
    def for_callback(cls, callback: Any, *, images: bool = True, tag_prefix: str = "") -> CometSink:
        """For the HF Trainer's ``CometCallback``."""
        return cls(lambda: getattr(callback, "_experiment", None), images=images, tag_prefix=tag_prefix, name="CometCallback")

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        experiment = self._experiment()
        if experiment is not None:
            experiment.log_metrics(dict(values), step=step)

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        experiment = self._experiment() if self.images else None
        if experiment is not None:
            for name, image in evaluation_images(details, step, self.tag_prefix):
                experiment.log_image(image, name=name, step=step)

    def text(self, tag_name: str, text: str, step: int) -> None:
        experiment = self._experiment()
        if experiment is not None:
            experiment.log_text(text, step=step, metadata={"tag": tag_name})

    def finding(self, finding: Finding, *, new: bool) -> None:
        self._findings.add(finding)

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        experiment = self._experiment()
        if experiment is None or not self._findings.changed:
            return
        experiment.log_asset_data(self._findings.jsonl(), name="fitwatch/findings.jsonl", overwrite=True)
        self._findings.changed = False


#: Lightning logger class name -> the sink built for it (by name, so no logger package is imported here).
_LOGGER_SINKS: dict[str, Callable[..., Sink]] = {
    "MLFlowLogger": MLflowSink.for_logger,
    "WandbLogger": WandbSink.for_logger,
    "CometLogger": CometSink.for_logger,
}

#: HF ``report_to`` callback class name -> the sink built for it.
_CALLBACK_SINKS: dict[str, Callable[..., Sink]] = {
    "MLflowCallback": MLflowSink.for_callback,
    "WandbCallback": WandbSink.for_callback,
    "CometCallback": CometSink.for_callback,
}


def logger_sinks(
    loggers: Iterable[Any], *, skip: Iterable[Any] = (), images: bool = True, tag_prefix: str = ""
) -> list[Sink]:
    """One sink per Lightning logger (``trainer.loggers``), except those in ``skip`` (the TensorBoard logger
    whose writer :class:`~fitwatch.sinks.tensorboard.TensorBoardSink` already uses).

    MLflow, W&B and Comet loggers get their own sink (images, text, findings); every other logger, CSV
    included, gets its scalars through ``log_metrics``.
    """
    skipped = {id(s) for s in skip}
    sinks = []
    for logger in loggers:
        if id(logger) in skipped:
            continue
        factory = next((_LOGGER_SINKS[c.__name__] for c in type(logger).__mro__ if c.__name__ in _LOGGER_SINKS), None)
        sinks.append(factory(logger, images=images, tag_prefix=tag_prefix) if factory is not None else LoggerSink(logger))
    return sinks


def integration_sinks(callbacks: Iterable[Any], *, images: bool = True, tag_prefix: str = "") -> list[Sink]:
    """One sink per HF Trainer ``report_to`` integration that fitwatch can write through (MLflow, W&B, Comet),
    found among the Trainer's ``callbacks``. TensorBoard is left to
    :class:`~fitwatch.sinks.tensorboard.TensorBoardSink`; other integrations are not written to."""
    sinks = []
    for callback in callbacks:
        factory = next((_CALLBACK_SINKS[c.__name__] for c in type(callback).__mro__ if c.__name__ in _CALLBACK_SINKS), None)
        if factory is not None:
            sinks.append(factory(callback, images=images, tag_prefix=tag_prefix))
    return sinks
