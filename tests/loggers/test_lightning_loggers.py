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

from ..cli.runs import LoggingMLP  # noqa: E402
from ..conftest import read_event_scalars  # noqa: E402
from .wiring import lightning_with_loggers  # noqa: E402


def _fit(tmp_path: Path, monkeypatch, *, wandb: bool = False):
    """The overfitting digits run of ``tests/cli/runs.py`` (raises FW-OVERFIT) with four loggers."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    from ..lightning.digits import X, Y

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(Y), generator=g)
    train_idx, val_idx = order[:200], order[1200:]
    labels = Y[train_idx].clone()
    noisy = torch.rand(len(labels), generator=g) < 0.3
    labels[noisy] = torch.randint(0, 10, (int(noisy.sum()),), generator=g)
    train = DataLoader(TensorDataset(X[train_idx], labels), batch_size=50, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(X[val_idx], Y[val_idx]), batch_size=256)
    loggers = [
        TensorBoardLogger(tmp_path, name="tb"),
        CSVLogger(tmp_path, name="csv"),
        MLFlowLogger(experiment_name="digits", tracking_uri=f"file:{tmp_path / 'mlruns'}"),
    ]
    if wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(tmp_path), offline=True, project="fitwatch-test"))
    callback = FitWatch(class_names=[str(i) for i in range(10)])
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=30, logger=loggers, callbacks=[callback],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         accelerator="cpu", deterministic=True, log_every_n_steps=1)
    lightning_with_loggers(trainer, callback)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(LoggingMLP(lr=1e-2), train, val)
    return trainer, callback, loggers, caught


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp = tmp_path_factory.mktemp("loggers")
        yield (tmp, *_fit(tmp, monkeypatch))


def _fitwatch_tags(scalars):
    from fitwatch.sinks.tags import parse_tag

    return {t: points for t, points in scalars.items() if parse_tag(t) is not None}


def _same(a, b):
    assert [s for s, _ in a] == [s for s, _ in b]
    # TensorBoard keeps float32; MLflow and CSV keep the float64 fitwatch wrote.
    assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for (_, x), (_, y) in zip(a, b))


def test_mlflow_run_holds_the_tensorboard_values(fit):
    from mlflow import MlflowClient

    tmp, trainer, callback, loggers, caught = fit
    tensorboard = _fitwatch_tags(read_event_scalars(loggers[0].log_dir))
    assert len(tensorboard) > 30 and "performance/accuracy/val" in tensorboard and "findings/FW-OVERFIT" in tensorboard
    mlflow_logger = loggers[2]
    client = MlflowClient(tracking_uri=f"file:{tmp / 'mlruns'}")
    run = client.get_run(mlflow_logger.run_id)
    assert set(tensorboard) <= set(run.data.metrics)  # every fitwatch tag, by the same name (the '-' kept)
    for name, points in tensorboard.items():
        history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: (m.step, m.timestamp))
        _same([(m.step, m.value) for m in history], points)
    assert "val_loss" in run.data.metrics  # the module's own metrics are still there, in the same run
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "fitwatch")}
    assert {"fitwatch/findings.jsonl", "fitwatch/findings.md", "fitwatch/per_class"} <= artifacts
    local = Path(run.info.artifact_uri.removeprefix("file://").removeprefix("file:"))
    lines = [json.loads(line) for line in (local / "fitwatch" / "findings.jsonl").read_text().splitlines()]
    assert {line["code"] for line in lines} == {f.code for f in callback.findings}
    assert "| FW-OVERFIT |" in (local / "fitwatch" / "findings.md").read_text()
    images = list((local / "fitwatch" / "per_class" / "confusion_matrix" / "val").glob("step_*.png"))
    assert len(images) == 30
    assert not [w for w in caught if "sink failed" in str(w.message)]


def test_csv_logger_holds_the_tensorboard_values(fit):
    tmp, trainer, callback, loggers, caught = fit
    tensorboard = _fitwatch_tags(read_event_scalars(loggers[0].log_dir))
    csv_scalars: dict[str, list] = {}
    with open(Path(loggers[1].log_dir) / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for name, value in row.items():
                if name in tensorboard and value != "":
                    csv_scalars.setdefault(name, []).append((int(row["step"]), float(value)))
    assert set(csv_scalars) == set(tensorboard)
    for name, points in tensorboard.items():
        _same(csv_scalars[name], points)


def test_tensorboard_is_written_once(fit):
    """The TensorBoardLogger is TensorBoardSink's: no second copy of a point through log_metrics (each tag
    has as many points as fitwatch logged to the dashboard, which the other loggers got once each)."""
    tmp, trainer, callback, loggers, caught = fit
    tensorboard = _fitwatch_tags(read_event_scalars(loggers[0].log_dir))
    accuracy = tensorboard["performance/accuracy/val"]
    assert len(accuracy) == 30 and len({s for s, _ in accuracy}) == 30
    for name, points in tensorboard.items():
        assert len(points) <= len(callback.history[name]), name


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
    tensorboard = _fitwatch_tags(read_event_scalars(loggers[0].log_dir))
    for name, points in tensorboard.items():
        assert math.isclose(summary[name], points[-1][1], rel_tol=1e-6, abs_tol=1e-7), name
    assert summary["fitwatch/findings"]["_type"] == "table-file"
