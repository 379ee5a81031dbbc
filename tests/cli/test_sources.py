"""``fitwatch report`` on the runs other loggers write: one Lightning run written to TensorBoard, CSV and MLflow
at once; read from the CSVLogger's ``metrics.csv`` and from MLflow (the run folder of a file store, and
``mlflow:<run id>``) it gives the findings the callback raised live, the same in both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fitwatch.cli import EXIT_FINDINGS, main
from fitwatch.report.build import build_report
from fitwatch.report.events import ReportInputError
from fitwatch.report.sources import discover_sources, read_csv

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The overfitting digits run (FW-OVERFIT), written to TensorBoard, CSV and MLflow at once."""
    from ..loggers.runs import fit_with_loggers

    tmp = tmp_path_factory.mktemp("sources")
    with pytest.MonkeyPatch.context() as monkeypatch:
        trainer, callback, loggers, caught = fit_with_loggers(tmp, monkeypatch)
        mlflow_dir = next((tmp / "mlruns").glob(f"*/{loggers[2].run_id}"))
        yield {"tmp": tmp, "callback": callback, "tensorboard": Path(loggers[0].log_dir),
               "csv": Path(loggers[1].log_dir) / "metrics.csv", "mlflow": mlflow_dir, "run_id": loggers[2].run_id}


def _replayed(report):
    (run,) = report.runs
    return {(f.code, f.subject, f.step, f.severity) for f in run.replay.findings}


def _causes(report):
    (run,) = report.runs
    return {(r.finding.code, r.finding.subject, r.first_step) for r in run.findings}


def _live(run):
    """The causes the callback raised in this run (code, subject, first step), from its own findings.jsonl."""
    from fitwatch.report.build import read_live_findings

    _, first, _ = read_live_findings(run["callback"].run_dir / "findings.jsonl")
    return {(code, subject, step) for (code, subject), (step, _epoch) in first.items()}


def test_csv_gives_the_findings_the_run_raised(run):
    csv_report = build_report([run["csv"]])
    assert ("FW-OVERFIT", "") in {(c, s) for c, s, *_ in _replayed(csv_report)}
    # Replayed from the CSV alone, every cause the callback raised live is found again, from the same step.
    assert _causes(csv_report) == _live(run)
    assert {f.key for f in csv_report.runs[0].replay.findings} == {(c, s) for c, s, _ in _live(run)}
    (csv_run,) = csv_report.runs
    assert csv_run.live_source == "tensorboard"  # the findings/<code> tracks, as for event files without jsonl
    assert build_report([run["csv"].parent]).runs[0].files == [run["csv"]]  # the folder works too


def test_mlflow_run_gives_the_findings_of_csv(run, monkeypatch):
    csv_report = build_report([run["csv"]])
    folder = build_report([run["mlflow"]])
    assert _replayed(folder) == _replayed(csv_report)  # code, subject, step and severity of every replayed cause
    assert _causes(folder) == _causes(csv_report) == _live(run)
    (mlflow_run,) = folder.runs
    assert mlflow_run.live_source == "findings.jsonl"  # the fitwatch/findings.jsonl artifact
    assert all(r.sources == ("live", "replay") for r in mlflow_run.findings)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{run['tmp'] / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    by_id = build_report([f"mlflow:{run['run_id']}"])
    assert _replayed(by_id) == _replayed(folder) and by_id.runs[0].live_source == "findings.jsonl"
    assert str(by_id.runs[0].run) == f"mlflow:{run['run_id']}"


def test_cli_gates_on_any_logger(run, capsys):
    for source in (run["csv"], run["mlflow"]):
        assert main(["report", str(source), "--fail-on", "warning", "--json"]) == EXIT_FINDINGS
        document = json.loads(capsys.readouterr().out)
        assert "FW-OVERFIT" in {f["code"] for f in document["runs"][0]["findings"]}


def test_a_log_folder_holds_one_run_per_logger(run):
    kinds = [s.kind for s in discover_sources([run["tmp"]])]
    assert set(kinds) == {"csv", "mlflow", "tensorboard"} and kinds.count("csv") == kinds.count("mlflow") == 1


def test_csv_reader(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train_loss,val_loss\n0,0,2.0,\n0,1,1.5,\n0,1,,1.8\n1,2,1.0,\n0,1,1.4,\n")
    events = read_csv(path)
    # The step that goes back (a resume appending to the file) replaces the points from it on.
    assert events.scalars == {"epoch": [(0, 0.0), (1, 0.0)], "train_loss": [(0, 2.0), (1, 1.4)], "val_loss": [(1, 1.8)]}


def test_inputs_that_are_not_runs(tmp_path, monkeypatch):
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReportInputError, match=r"other.csv: not a TensorBoard event file .*, a CSVLogger metrics.csv"):
        discover_sources([tmp_path / "other.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match=r"no run in this directory or below it.*MLflow run folder"):
        discover_sources([tmp_path / "empty"])
    with pytest.raises(ReportInputError, match=r"expected mlflow:<run id>"):
        discover_sources(["mlflow:"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with pytest.raises(ReportInputError, match=r"mlflow:0123abc: no such run in"):
        build_report(["mlflow:0123abc"])
