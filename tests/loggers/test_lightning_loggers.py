"""Lightning: fitwatch's scalars, images and findings through every logger the Trainer has, read back from a
real local MLflow store (``MlflowClient``), the CSVLogger's ``metrics.csv`` and W&B's offline run, and
compared with the TensorBoard values of the same run."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from fitwatch.lightning import FitWatch  # noqa: E402
from fitwatch.sinks.loggers import LoggerSink, MLflowSink, logger_sinks  # noqa: E402

from .runs import as_in_tensorboard, equal_to_tensorboard as _equal_to_tensorboard, run_scalars  # noqa: E402
from .runs import fit_with_loggers as _fit  # noqa: E402


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp = tmp_path_factory.mktemp("loggers")
        yield (tmp, *_fit(tmp, monkeypatch))


def _fitwatch_tags(scalars):
    from fitwatch.sinks.tags import parse_tag

    return {t: points for t, points in scalars.items() if parse_tag(t) is not None}


def test_mlflow_run_holds_the_tensorboard_values(fit):
    from mlflow import MlflowClient

    tmp, trainer, callback, loggers, caught = fit
    dashboard = {t: p for t, p in callback.history.items() if as_in_tensorboard(t, p) is not None}
    mlflow_logger = loggers[2]
    client = MlflowClient(tracking_uri=f"file:{tmp / 'mlruns'}")
    run = client.get_run(mlflow_logger.run_id)
    names = _fitwatch_tags(run.data.metrics)
    assert "performance/accuracy/val" in names and "findings/FW-OVERFIT" in names  # history names, '-' kept
    assert set(dashboard) <= set(names)  # every series on fitwatch's dashboard is in the MLflow run
    logged = {
        name: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: (m.step, m.timestamp))]
        for name in names
    }
    compared = _equal_to_tensorboard(logged, loggers[0].log_dir)
    assert len(compared) >= 30 and {"performance/accuracy/val", "performance/loss/train", "gap/loss", "findings/FW-OVERFIT"} <= set(compared)
    assert "val_loss" in run.data.metrics  # the module's own metrics are still there, in the same run
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "fitwatch")}
    assert {"fitwatch/findings.jsonl", "fitwatch/findings.md", "fitwatch/per_class"} <= artifacts
    local = Path(run.info.artifact_uri.removeprefix("file://").removeprefix("file:"))
    lines = [json.loads(line) for line in (local / "fitwatch" / "findings.jsonl").read_text().splitlines()]
    assert {line["code"] for line in lines} == {f.code for f in callback.findings}
    assert "| FW-OVERFIT |" in (local / "fitwatch" / "findings.md").read_text()
    images = list((local / "fitwatch" / "per_class" / "confusion_matrix" / "val").glob("step_*.png"))
    # Images within the default image_budget (1% of the run's time): the last evaluation's always.
    evaluations = [s for s, _ in callback.history["performance/accuracy/val"]]
    assert len(evaluations) == 30 and 1 <= len(images) <= 30
    assert f"step_{evaluations[-1]:08d}.png" in {p.name for p in images}
    assert not [w for w in caught if "sink failed" in str(w.message)]


def test_csv_logger_holds_the_tensorboard_values(fit):
    tmp, trainer, callback, loggers, caught = fit
    csv_scalars: dict[str, list] = {}
    with open(Path(loggers[1].log_dir) / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for name, value in row.items():
                if name in callback.history and value != "":
                    csv_scalars.setdefault(name, []).append((int(row["step"]), float(value)))
    dashboard = {t for t, p in callback.history.items() if as_in_tensorboard(t, p) is not None}
    assert dashboard <= set(csv_scalars)
    compared = _equal_to_tensorboard(csv_scalars, loggers[0].log_dir)
    assert len(compared) >= 30 and {"performance/accuracy/val", "performance/loss/train", "gap/loss", "findings/FW-OVERFIT"} <= set(compared)


def test_loggers_get_each_point_once(fit):
    """The TensorBoardLogger is TensorBoardSink's (no second copy through log_metrics), and each other logger
    gets every dashboard point once."""
    tmp, trainer, callback, loggers, caught = fit
    assert not [t for t in run_scalars(loggers[0].log_dir) if t == "performance/accuracy/val"] or len(
        run_scalars(loggers[0].log_dir)["performance/accuracy/val"]) == 30
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{tmp / 'mlruns'}")
    accuracy = client.get_metric_history(loggers[2].run_id, "performance/accuracy/val")
    assert len(accuracy) == 30 and len({m.step for m in accuracy}) == 30


def test_each_logger_gets_its_sink(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

    tb, csv_logger = TensorBoardLogger(tmp_path), CSVLogger(tmp_path)
    ml = MLFlowLogger(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    sinks = logger_sinks([tb, csv_logger, ml], skip=[tb])
    assert [type(s) for s in sinks] == [LoggerSink, MLflowSink]
    assert [s.name for s in sinks] == ["CSVLogger", "MLFlowLogger"]


class _Broken:
    def log_metrics(self, metrics, step):
        raise ConnectionError("tracking server unreachable")


def test_a_failing_logger_is_warned_once_and_skipped(tmp_path):
    from fitwatch.monitor import Monitor
    from fitwatch.warnings import FitWatchRuntimeWarning

    class Recorder:
        def __init__(self):
            self.rows = []

        def log_metrics(self, metrics, step):
            self.rows.append((step, dict(metrics)))

    good = Recorder()
    monitor = Monitor(detectors=[], sinks=logger_sinks([_Broken(), good]))
    with pytest.warns(FitWatchRuntimeWarning, match=r"_Broken sink failed in scalars\(\).*tracking server unreachable") as record:
        monitor.log({"performance/loss/val": 1.0}, 1)
        monitor.log({"performance/loss/val": 0.5}, 2)
    assert len(record) == 1
    assert record[0].filename == __file__  # the user's line, not fitwatch's
    assert good.rows == [(1, {"performance/loss/val": 1.0}), (2, {"performance/loss/val": 0.5})]


def test_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer, callback, loggers, caught = _fit(tmp_path, monkeypatch, wandb=True)
    run = loggers[3].experiment
    assert not [w for w in caught if "sink failed" in str(w.message)]
    summary = dict(run.summary)
    for name, points in callback.history.items():
        if as_in_tensorboard(name, points) is not None:
            assert math.isclose(summary[name], points[-1][1], rel_tol=1e-9, abs_tol=1e-12), name
    assert summary["fitwatch/findings"]["_type"] == "table-file"
