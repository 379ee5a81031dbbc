"""The runs ``fitwatch report`` reads, whatever logger wrote them: TensorBoard event files, a Lightning
``CSVLogger``'s ``metrics.csv``, and a local MLflow run.

Every source becomes the same :class:`~fitwatch.report.events.RunEvents` (``tag -> [(step, value), ...]``),
so roles, replay and findings do not care which logger wrote a run:

- TensorBoard: a directory of event files (:mod:`fitwatch.report.events`).
- CSV: a ``metrics.csv`` as Lightning's ``CSVLogger`` writes it (a ``step`` column, one column per metric,
  empty cells where a row lacks a metric), or the folder holding it. ``epoch`` is a series, as in TensorBoard.
- MLflow: a run folder of a ``file:`` tracking store (``mlruns/<experiment>/<run id>``, with ``meta.yaml``
  and ``metrics/``), read as files with no MLflow installed; or ``mlflow:<run id>``, read with
  ``MlflowClient`` from the store ``MLFLOW_TRACKING_URI`` names. The callbacks' ``findings.jsonl`` is read
  from the run's ``fitwatch/findings.jsonl`` artifact.

A directory is searched at every depth for all three; a Lightning log folder with a TensorBoardLogger and a
CSVLogger gives one run per logger.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fitwatch.report.events import (
    ReportInputError,
    RunEvents,
    UnreadableFile,
    _event_directories,
    _is_event_file,
    _resumed,
    printable,
    read_run,
)

__all__ = ["MLFLOW_SCHEME", "RunSource", "discover_sources", "read_source"]

#: ``mlflow:<run id>`` names a run in the store ``MLFLOW_TRACKING_URI`` points to.
MLFLOW_SCHEME = "mlflow:"
CSV_NAME = "metrics.csv"
#: Where :class:`~fitwatch.sinks.loggers.MLflowSink` keeps the findings in a run's artifacts.
MLFLOW_FINDINGS = ("fitwatch", "findings.jsonl")


@dataclass(frozen=True)
class RunSource:
    """One run to read: its ``kind`` (``tensorboard``, ``csv``, ``mlflow``), its directory (for an MLflow run
    given by id, ``mlflow:<run id>``) and its files (event files, the CSV file, or the metric files)."""

    kind: str
    directory: Path
    files: list[Path] = field(default_factory=list)
    run_id: str | None = None


def _is_mlflow_run(directory: Path) -> bool:
    return (directory / "meta.yaml").is_file() and (directory / "metrics").is_dir()


def _is_csv_log(path: Path) -> bool:
    """A CSV whose header has a ``step`` column (Lightning's ``metrics.csv``)."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f), [])
    except OSError:
        return False
    return "step" in header


def _sources_in(path: Path) -> list[RunSource]:
    found: list[RunSource] = []
    for directory in sorted(_event_directories(path)):
        run = Path(directory)
        files = sorted(p for p in run.iterdir() if p.is_file() and _is_event_file(p))
        if files:
            found.append(RunSource("tensorboard", run, files))
    for directory, dirs, names in sorted(os.walk(path)):
        here = Path(directory)
        if _is_mlflow_run(here):
            found.append(RunSource("mlflow", here))
            dirs[:] = []  # a run's artifacts are not runs
            continue
        if CSV_NAME in names and _is_csv_log(here / CSV_NAME):
            found.append(RunSource("csv", here, [here / CSV_NAME]))
    return found


def discover_sources(paths: Sequence[str | os.PathLike[str]]) -> list[RunSource]:
    """Every run under ``paths``, in path order.

    A path may be a log directory (searched at every depth), a run directory, one event file, a CSVLogger's
    ``metrics.csv``, an MLflow run folder, or ``mlflow:<run id>``.

    Raises:
        ReportInputError: If a path does not exist, is a file fitwatch cannot read as a run, or holds no run
            at any depth.
    """
    runs: list[RunSource] = []
    seen: set[tuple[str, ...]] = set()
    for raw in paths:
        text = os.fspath(raw)
        if isinstance(text, str) and text.startswith(MLFLOW_SCHEME):
            run_id = text[len(MLFLOW_SCHEME) :].strip()
            if not run_id:
                raise ReportInputError(f"{printable(text)}: expected mlflow:<run id>.")
            found = [RunSource("mlflow", Path(text), run_id=run_id)]
        else:
            path = Path(raw)
            if not path.exists():
                raise ReportInputError(f"{printable(raw)}: no such file or directory.")
            if path.is_file():
                if _is_event_file(path):
                    found = [RunSource("tensorboard", path.parent, [path])]
                elif path.suffix == ".csv" and _is_csv_log(path):
                    found = [RunSource("csv", path.parent, [path])]
                else:
                    raise ReportInputError(
                        f"{printable(raw)}: not a TensorBoard event file (a name containing 'tfevents'), a "
                        "CSVLogger metrics.csv (with a 'step' column) or a directory."
                    )
            else:
                found = _sources_in(path)
                if not found:
                    raise ReportInputError(
                        f"{printable(raw)}: no run in this directory or below it: no TensorBoard event files "
                        "(events.out.tfevents.*), CSVLogger metrics.csv or MLflow run folder (meta.yaml and "
                        "metrics/)."
                    )
        for run in found:
            key = (run.kind, run.run_id or "", *(str(f.resolve()) for f in (run.files or [run.directory])))
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs


def read_source(source: RunSource) -> RunEvents:
    """The scalars of one run, as :func:`fitwatch.report.events.read_run` gives them for TensorBoard."""
    if source.kind == "tensorboard":
        return read_run(source.directory, source.files)
    if source.kind == "csv":
        return read_csv(source.files[0])
    if source.run_id is not None:
        return read_mlflow_run_id(source.run_id)
    return read_mlflow_folder(source.directory)


def read_csv(path: str | os.PathLike[str]) -> RunEvents:
    """A CSVLogger ``metrics.csv``: every column but ``step`` is a series of the rows where it has a value.

    A row whose step goes back (a resumed run appending to the file) replaces the points at or after it, as
    for event files.
    """
    path = Path(path)
    run = RunEvents(directory=path.parent, files=[path])
    points: dict[str, list[tuple[int, float]]] = {}
    bad = 0
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            try:
                step = int(float(row.get("step") or ""))
            except ValueError:
                bad += 1
                continue
            for name, cell in row.items():
                if name in (None, "step") or cell in (None, ""):
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    continue  # a text column: not a scalar
                points.setdefault(name, []).append((step, value))
    if bad:
        run.unreadable.append(UnreadableFile(printable(path), f"skipped {bad} row(s) without a step"))
    run.scalars = {name: _resumed(series) for name, series in points.items()}
    return run


def read_mlflow_folder(directory: str | os.PathLike[str]) -> RunEvents:
    """A run folder of MLflow's file store, read as files: ``metrics/<name>`` holds one
    ``<timestamp> <value> <step>`` line per point, a name with ``/`` being nested folders."""
    directory = Path(directory)
    metrics = directory / "metrics"
    files = sorted(p for p in metrics.rglob("*") if p.is_file())
    run = RunEvents(directory=directory, files=files)
    for file in files:
        name = file.relative_to(metrics).as_posix()
        series = []
        try:
            lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as err:
            run.unreadable.append(UnreadableFile(printable(file), f"{type(err).__name__}: {err.strerror or err}"))
            continue
        for line in lines:
            parts = line.split()
            try:
                series.append((int(parts[2]) if len(parts) > 2 else 0, float(parts[1])))
            except (IndexError, ValueError):
                run.unreadable.append(UnreadableFile(printable(file), "a line that is not '<timestamp> <value> <step>'"))
                break
        run.scalars[name] = _resumed(series)  # lines are appended as logged: file order is logging order
    findings = directory.joinpath("artifacts", *MLFLOW_FINDINGS)
    run.findings_file = findings if findings.is_file() else None
    return run


def read_mlflow_run_id(run_id: str) -> RunEvents:
    """A run of the tracking store ``MLFLOW_TRACKING_URI`` names, read with ``MlflowClient``.

    Raises:
        ReportInputError: If MLflow is not installed or the store has no such run.
    """
    try:
        from mlflow import MlflowClient
    except ImportError as err:
        raise ReportInputError(
            f"mlflow:{run_id}: reading an MLflow run by id needs MLflow: pip install 'fitwatch[mlflow]' "
            "(or give the run's folder in a file: store)."
        ) from err
    client = MlflowClient()
    try:
        info = client.get_run(run_id)
    except Exception as err:  # noqa: BLE001  (MlflowException, or the store's own error)
        raise ReportInputError(f"mlflow:{run_id}: no such run in {client.tracking_uri} ({type(err).__name__}).") from err
    local = _local_path(info.info.artifact_uri)
    run = RunEvents(directory=Path(f"{MLFLOW_SCHEME}{run_id}"), files=[])
    for name in info.data.metrics:
        history = client.get_metric_history(run_id, name)
        # The store's order, stably by timestamp where it keeps another (a database store): logging order.
        ordered = sorted(history, key=lambda m: m.timestamp)
        run.scalars[name] = _resumed([(int(m.step), float(m.value)) for m in ordered])
    if local is not None:
        findings = local.joinpath(*MLFLOW_FINDINGS)
        run.findings_file = findings if findings.is_file() else None
    else:
        try:
            target = tempfile.mkdtemp(prefix="fitwatch-mlflow-")
            run.findings_file = Path(client.download_artifacts(run_id, "/".join(MLFLOW_FINDINGS), target))
        except Exception:  # noqa: BLE001  (no findings artifact: replayed findings only)
            run.findings_file = None
    return run


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("file:"):
        return Path(uri[len("file:") :])
    if "://" not in uri and not uri.startswith(("mlflow-artifacts:", "dbfs:", "s3:", "gs:")):
        return Path(uri)
    return None

