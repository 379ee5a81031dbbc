"""HF Trainer with ``report_to=["mlflow"]``: fitwatch's scalars land in the Trainer's own MLflow run (a real
local tracking store), equal to the TensorBoard values fitwatch wrote for the same run."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("transformers")

from fitwatch.hf import FitWatchCallback  # noqa: E402
from fitwatch.sinks.tags import parse_tag  # noqa: E402

from ..conftest import read_event_scalars  # noqa: E402
from .wiring import hf_with_integrations  # noqa: E402


def test_report_to_mlflow_holds_fitwatch_scalars_in_the_trainers_run(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from transformers import Trainer

    from ..hf.tiny import SequenceData, args, sequence_model

    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tiny-bert")
    callback = FitWatchCallback()
    trainer = Trainer(
        model=sequence_model(3),
        args=args(tmp_path, report_to=["mlflow"], num_train_epochs=3),
        train_dataset=SequenceData(96, seed=0),
        eval_dataset=SequenceData(64, seed=1),
        callbacks=[callback],
    )
    hf_with_integrations(trainer, callback)
    trainer.train()

    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "tiny-bert"]
    (run,) = client.search_runs([experiment.experiment_id])  # one run: the Trainer's, not a second one
    metrics = run.data.metrics
    assert {"loss", "eval_loss"} <= set(metrics)  # the Trainer's own
    tensorboard = {t: p for t, p in read_event_scalars(callback.run_dir).items() if parse_tag(t) is not None}
    assert "performance/loss/val" in tensorboard and len(tensorboard) > 20
    assert set(tensorboard) <= set(metrics)
    for name, points in tensorboard.items():
        history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: (m.step, m.timestamp))
        assert [m.step for m in history] == [s for s, _ in points], name
        assert all(math.isclose(m.value, v, rel_tol=1e-6, abs_tol=1e-7) for m, (_, v) in zip(history, points)), name
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "fitwatch")}
    assert "fitwatch/per_class" in artifacts and "fitwatch/calibration" in artifacts
