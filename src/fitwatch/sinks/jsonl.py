"""Findings as JSON lines (``findings.jsonl``) and the scalar history as ``history.json``."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fitwatch.findings import Finding
from fitwatch.sinks.base import Sink

__all__ = ["JsonlSink", "read_findings"]


class JsonlSink(Sink):
    """Appends one JSON object per finding event to ``directory/findings_file``, and rewrites
    ``directory/history.json`` (atomically) after each evaluation.

    Each line: ``{"event": "new" | "update", "time": <unix seconds>, **Finding.to_dict()}``; the last line of
    a ``(code, subject)`` is its current state.
    """

    name = "findings file"

    def __init__(self, directory: str | os.PathLike[str], *, findings_file: str | None = "findings.jsonl", history_file: str | None = "history.json") -> None:
        self.directory = Path(directory)
        self.findings_file = findings_file
        self.history_file = history_file

    @property
    def findings_path(self) -> Path | None:
        return None if self.findings_file is None else self.directory / self.findings_file

    def finding(self, finding: Finding, *, new: bool) -> None:
        if self.findings_path is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"event": "new" if new else "update", "time": round(time.time(), 3), **finding.to_dict()}
        # Opened per event (findings are rare): nothing stays open if the run dies.
        with open(self.findings_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_clean(record), default=str) + "\n")

    def flush(self, history: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        if self.history_file is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / self.history_file
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(_clean({tag: [[s, v] for s, v in points] for tag, points in history.items()})))
        os.replace(tmp, path)



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


def _clean(obj: object) -> object:
    """JSON-safe copy: non-finite floats become null (strict JSON has no NaN), tuples lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
