"""Findings as JSON lines (``findings.jsonl``), the scalar history as JSON lines (``history.jsonl``) and, at the
end of the run, as one compact ``history.json``.

Costs do not grow with the run: each evaluation appends the scalars logged since the last one (one line per
``(step, scalars)`` write) and each finding event one line; the whole history is written once, at the end.
Each file fails alone: a history that cannot be written (full disk, file-size limit) is switched off with one
warning while findings keep being written, and the other way round. Writes never leave a partial line or a
``.tmp`` file behind (:mod:`fitwatch.sinks.files`).

``history.jsonl`` lines:

- ``{"step": 12, "scalars": {"performance/loss/val": 0.61, ...}}``: points appended to each tag's series;
- ``{"resume": {"performance/loss/val": 7, ...}}``: a run resumed from a checkpoint whose state held that many
  points of each tag; points written after them (by the process that died) are dropped, tags not named too.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> sink = JsonlSink(d)
>>> sink.record({"gap/loss": 0.1}, 1); sink.record({"gap/loss": 0.2, "gap/ece": 0.0}, 2)
>>> sink.flush({})
>>> read_history(d)
{'gap/loss': [(1, 0.1), (2, 0.2)], 'gap/ece': [(2, 0.0)]}
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fitwatch.findings import Finding
from fitwatch.sinks.base import Sink
from fitwatch.sinks.files import DiskSpace, append_text, megabytes, write_atomic
from fitwatch.warnings import FitWatchRuntimeWarning

__all__ = ["HISTORY_FILE", "HISTORY_LOG", "JsonlSink", "read_findings", "read_history"]

#: The compact history written at the end of a run: ``{tag: [[step, value], ...]}``.
HISTORY_FILE = "history.json"
#: The history appended during the run, one line per ``(step, scalars)`` write.
HISTORY_LOG = "history.jsonl"

History = Mapping[str, Sequence[tuple[int, float]]]


class JsonlSink(Sink):
    """Appends finding events to ``directory/findings_file`` and scalars to ``directory/history.jsonl``; writes
    ``directory/history_file`` once, at the end.

    Each findings line: ``{"event": "new" | "update", "time": <unix seconds>, **Finding.to_dict()}``; the last
    line of a ``(code, subject)`` is its current state.

    Args:
        directory: The run directory (created on first write).
        findings_file: File name of the findings log; ``None`` writes none.
        history_file: File name of the compact history written at the end; ``None`` writes no history at all.
        history_log: File name of the history appended during the run.
        min_free_bytes: Free space under which scalars stop being written (findings go on); ``None`` uses
            :func:`fitwatch.sinks.files.low_disk_threshold` (50 MB, or 1% of the disk up to 1 GB).
        buffer_lines: Scalar writes held in memory between evaluations before they are appended anyway.
    """

    name = "findings file"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        findings_file: str | None = "findings.jsonl",
        history_file: str | None = HISTORY_FILE,
        history_log: str = HISTORY_LOG,
        min_free_bytes: int | None = None,
        buffer_lines: int = 1000,
    ) -> None:
        self.directory = Path(directory)
        self.findings_file = findings_file
        self.history_file = history_file
        self.history_log = history_log
        self.buffer_lines = buffer_lines
        self.disk = DiskSpace(self.directory, min_free_bytes)
        #: Bytes written so far, by file name (appends and whole-file writes).
        self.bytes_written: Counter[str] = Counter()
        #: Why a file is no longer written, by file name.
        self.stopped: dict[str, str] = {}
        self._buffer: list[str] = []
        self._started = False
        self._initial: list[str] = []  # lines that open the history log (a fresh run's points so far, or a marker)
        self._truncate = True

    # ------------------------------------------------------------------ paths
    @property
    def findings_path(self) -> Path | None:
        return None if self.findings_file is None else self.directory / self.findings_file

    @property
    def history_log_path(self) -> Path | None:
        return None if self.history_file is None else self.directory / self.history_log

    def history_source(self) -> str | None:
        return None if self.history_log_path is None else str(self.history_log_path.resolve())

    # ------------------------------------------------------------------ sink methods
    def start(self, history: History, *, resumed_from: str | None = None) -> None:
        if resumed_from is not None and resumed_from == self.history_source():
            # The log already holds ``history``, and perhaps points a killed process wrote after the checkpoint.
            self._initial = [_dumps({"resume": {tag: len(points) for tag, points in history.items()}})]
            self._truncate = False
        else:
            self._initial = [_dumps({"step": s, "scalars": {tag: v}}) for tag, points in history.items() for s, v in points]
            self._truncate = True
        self._started = False

    def record(self, values: Mapping[str, float], step: int) -> None:
        if self.history_log_path is None or self.history_log in self.stopped:
            return
        self._buffer.append(_dumps({"step": int(step), "scalars": values}))
        if len(self._buffer) >= self.buffer_lines:
            self._write_history()

    def finding(self, finding: Finding, *, new: bool) -> None:
        path = self.findings_path
        if path is None or self.findings_file in self.stopped:
            return
        self.directory.mkdir(parents=True, exist_ok=True)  # a directory that cannot be made fails the sink
        record = {"event": "new" if new else "update", "time": round(time.time(), 3), **finding.to_dict()}
        line = _dumps(record)
        try:
            append_text(path, line)
        except OSError as err:
            self._stop(self.findings_file, f"findings could not be written to {path} ({_reason(err)})")
            return
        self.bytes_written[self.findings_file] += len(line.encode("utf-8"))

    def flush(self, history: History) -> None:
        self._write_history()

    def finish(self, history: History) -> None:
        self._write_history()
        if self.history_file is None or self.history_log in self.stopped:
            return
        path = self.directory / self.history_file
        text = json.dumps(
            _clean({tag: [[s, v] for s, v in points] for tag, points in history.items()}), separators=(",", ":")
        )
        try:
            write_atomic(path, text)
        except OSError as err:
            self._stop(self.history_log, f"the history could not be written to {path} ({_reason(err)})")
            return
        self.bytes_written[self.history_file] += len(text.encode("utf-8"))

    # ------------------------------------------------------------------ internals
    def _write_history(self) -> None:
        path = self.history_log_path
        if path is None or self.history_log in self.stopped or (self._started and not self._buffer):
            return
        low, free, threshold = self.disk.low()
        if low:
            self._stop(
                self.history_log,
                f"only {megabytes(free)} is free on the disk of {self.directory} (under {megabytes(threshold)}): "
                "fitwatch stops writing its scalar history there, to leave the space to your logger and checkpoints; "
                "findings are still written and `history` keeps every scalar in memory",
            )
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = ([] if self._started else self._initial) + self._buffer
        text = "".join(lines)
        try:
            if not self._started and self._truncate:
                write_atomic(path, text)
            else:
                append_text(path, text)
        except OSError as err:
            self._stop(self.history_log, f"the history could not be written to {path} ({_reason(err)})")
            return
        self.bytes_written[self.history_log] += len(text.encode("utf-8"))
        self._started = True
        self._initial = []
        self._buffer.clear()

    def _stop(self, file: str | None, why: str) -> None:
        if file is None or file in self.stopped:
            return
        self.stopped[file] = why
        if file == self.history_log:
            self._buffer.clear()
        warnings.warn(
            f"fitwatch: {why}. This file is no longer written for the rest of the run; training and the other "
            "files go on.",
            FitWatchRuntimeWarning,
            stacklevel=4,
        )


def read_history(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """The scalar history a run wrote: ``{tag: [(step, value), ...]}`` (non-finite values read as NaN).

    Args:
        path: A run directory (its ``history.json`` when the run ended, else its ``history.jsonl``), a
            ``history.jsonl`` (resume markers applied; a line cut short by a killed process is skipped) or a
            ``history.json``.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If a ``history.json`` is not a mapping of tags to ``[step, value]`` pairs.
    """
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_FILE if (path / HISTORY_FILE).is_file() else path / HISTORY_LOG
    if path.suffix != ".jsonl":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"Expected {path} to hold a mapping of tags to [step, value] pairs.")
        return {str(tag): [(int(s), _number(v)) for s, v in points] for tag, points in data.items()}
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if isinstance(record.get("resume"), Mapping):
                counts = record["resume"]
                out = {tag: points[: int(counts[tag])] for tag, points in out.items() if tag in counts}
                continue
            scalars, step = record.get("scalars"), record.get("step")
            if not isinstance(scalars, Mapping) or isinstance(step, bool) or not isinstance(step, int):
                continue
            for tag, value in scalars.items():
                out.setdefault(str(tag), []).append((step, _number(value)))
    return out


def read_findings(path: str | os.PathLike[str]) -> list[Finding]:
    """The current state of every cause in a findings file (the last line of each ``(code, subject)``)."""
    latest: dict[tuple[str, str], Finding] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                f = Finding.from_dict(json.loads(line))
                latest[f.key] = f
    return list(latest.values())


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(_clean(record), default=str, separators=(",", ":")) + "\n"


def _reason(err: OSError) -> str:
    return f"{type(err).__name__}: {err.strerror or err}"


def _clean(obj: object) -> object:
    """JSON-safe copy: non-finite floats become null (strict JSON has no NaN), tuples lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
