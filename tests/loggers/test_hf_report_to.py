"""HF Trainer with ``report_to=["mlflow"]``: fitwatch's scalars land in the Trainer's own MLflow run (a real
local tracking store), equal to the TensorBoard values fitwatch wrote for the same run."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("transformers")

from fitwatch.hf import FitWatchCallback  # noqa: E402
from fitwatch.sinks.tags import parse_tag  # noqa: E402

from .runs import as_in_tensorboard, equal_to_tensorboard  # noqa: E402


def test_report_to_mlflow_holds_fitwatch_scalars_in_the_trainers_run(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri
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
    # MLflowCallback takes MLFLOW_TRACKING_URI only when no URI is set in the process; another test's
    # MlflowClient may have set one, so point the process at this test's store while it trains.
    with _use_tracking_uri(uri):
        trainer.train()

    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "tiny-bert"]
    (run,) = client.search_runs([experiment.experiment_id])  # one run: the Trainer's, not a second one
    metrics = run.data.metrics
    assert {"loss", "eval_loss"} <= set(metrics)  # the Trainer's own
    names = [n for n in metrics if parse_tag(n) is not None]
    assert {t for t, p in callback.history.items() if as_in_tensorboard(t, p) is not None} <= set(names)
    logged = {
        name: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: (m.step, m.timestamp))]
        for name in names
    }
    compared = equal_to_tensorboard(logged, callback.run_dir)
    assert len(compared) > 20 and {"performance/loss/val", "performance/accuracy/val"} <= set(compared)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "fitwatch")}
    assert "fitwatch/per_class" in artifacts and "fitwatch/calibration" in artifacts
