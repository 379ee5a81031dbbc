"""``fitwatch diff``: what changed between two runs (their fingerprints), next to how their final metrics
moved.

When a retrained model is quietly worse, the first question is what changed. Each run directory holds the
``fingerprint.json`` written at fit start (:func:`fitwatch.data.write_fingerprint`); the differences come from
:func:`fitwatch.data.diff_fingerprints`. The final metrics are the last points of the validation series both
runs have (:data:`FINAL_METRICS`), read from their event files with the same roles as ``fitwatch report``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitwatch.data.fingerprint import FINGERPRINT_FILE, FingerprintChange, diff_fingerprints, read_fingerprint
from fitwatch.report.events import ReportInputError, UnreadableInputError, discover_runs, printable, read_run
from fitwatch.report.replay import role_series
from fitwatch.report.roles import RoleMapping, assign_roles

__all__ = [
    "FINAL_METRICS",
    "MetricChange",
    "RunDiff",
    "diff_document",
    "diff_runs",
    "final_metrics",
    "print_diff",
]

#: Metrics compared by ``fitwatch diff``, as ``(label, role)``.
FINAL_METRICS = (
    ("validation loss", "val_loss"),
    ("validation accuracy", "val_accuracy"),
    ("validation ECE", "val_ece"),
    ("validation macro F1", "val_f1"),
)

_HOW_TO_FINGERPRINT = (
    "write one at fit start with fitwatch.data.write_fingerprint(log_dir, fitwatch.data.run_fingerprint("
    "model=model, tokenizer=tokenizer, train_samples=train_texts, val_samples=val_texts)) into the run's log "
    "directory, next to its event files"
)


@dataclass(frozen=True)
class MetricChange:
    """The final value of one metric in each run.

    Attributes:
        metric: What it is, for people (``"validation loss"``).
        role: The role it was read from.
        a: Final value in the first run.
        b: Final value in the second run.
        a_step: Step of ``a``.
        b_step: Step of ``b``.
    """

    metric: str
    role: str
    a: float
    b: float
    a_step: int
    b_step: int

    @property
    def change(self) -> float:
        """``b - a``."""
        return self.b - self.a


@dataclass
class RunDiff:
    """Two runs compared.

    Attributes:
        a: The first run directory.
        b: The second run directory.
        changes: Fingerprint differences (versions, platform, git, model, tokenizer, data, extra).
        metrics: Final metrics both runs have.
        notes: Why some comparison is missing.
    """

    a: Path
    b: Path
    changes: list[FingerprintChange]
    metrics: list[MetricChange]
    notes: list[str] = field(default_factory=list)


def _fingerprint(run: Path, name: str) -> dict[str, Any]:
    if not run.exists():
        raise ReportInputError(f"{name} {run}: no such directory.")
    shown = printable(run)
    try:
        fingerprint = read_fingerprint(run)
    except FileNotFoundError:
        raise ReportInputError(f"{name} {shown} has no {FINGERPRINT_FILE}; {_HOW_TO_FINGERPRINT}.") from None
    except (OSError, ValueError) as err:
        raise UnreadableInputError(f"{name} {shown}: {FINGERPRINT_FILE} could not be read ({err}).") from None
    if not isinstance(fingerprint, dict):
        raise UnreadableInputError(
            f"{name} {shown}: {FINGERPRINT_FILE} holds a JSON {type(fingerprint).__name__}, not the mapping "
            f"fitwatch writes; {_HOW_TO_FINGERPRINT}."
        )
    return fingerprint


def final_metrics(
    run: str | os.PathLike[str], mappings: Sequence[RoleMapping] = ()
) -> tuple[dict[str, tuple[int, float]], str | None]:
    """The last point of each :data:`FINAL_METRICS` role in the run under ``run``.

    Returns:
        ``role -> (step, value)`` and a note when nothing could be compared (no event files, or several runs
        under ``run``).
    """
    try:
        found = discover_runs([run])
    except ReportInputError:
        return {}, f"{run}: no event files, so its final metrics are unknown"
    if len(found) > 1:
        return {}, f"{run} holds {len(found)} runs; name the run directory itself to compare final metrics"
    events = read_run(*found[0])
    series = role_series(events.scalars, assign_roles(list(events.scalars), mappings))
    out = {}
    for _, role in FINAL_METRICS:
        points = next(iter(series.get(role, {}).values()), [])
        if points:
            out[role] = points[-1]
    return out, None


def diff_runs(
    a: str | os.PathLike[str], b: str | os.PathLike[str], *, mappings: Sequence[RoleMapping] = ()
) -> RunDiff:
    """Compare two runs' fingerprints and final metrics.

    Raises:
        ReportInputError: If a run directory does not exist or has no ``fingerprint.json`` (the message says
            how to write one).
        UnreadableInputError: If a ``fingerprint.json`` is not JSON or not a mapping.
    """
    run_a, run_b = Path(a), Path(b)
    fingerprint_a, fingerprint_b = _fingerprint(run_a, "RUN_A"), _fingerprint(run_b, "RUN_B")
    metrics_a, note_a = final_metrics(run_a, mappings)
    metrics_b, note_b = final_metrics(run_b, mappings)
    metrics = [
        MetricChange(
            label, role, metrics_a[role][1], metrics_b[role][1], metrics_a[role][0], metrics_b[role][0]
        )
        for label, role in FINAL_METRICS
        if role in metrics_a and role in metrics_b
    ]
    notes = [n for n in (note_a, note_b) if n]
    if not metrics and not notes:
        notes.append("the two runs log no validation metric in common (loss, accuracy, ECE, macro F1)")
    return RunDiff(run_a, run_b, diff_fingerprints(fingerprint_a, fingerprint_b), metrics, notes)


def diff_document(diff: RunDiff) -> dict[str, Any]:
    """The comparison as a JSON-safe document (:data:`~fitwatch.report.schema.DIFF_SCHEMA`)."""
    from fitwatch import __version__
    from fitwatch.report.render import display_path, json_safe
    from fitwatch.report.schema import DIFF_SCHEMA_ID

    return json_safe(
        {
            "schema": DIFF_SCHEMA_ID,
            "fitwatch_version": __version__,
            "a": display_path(diff.a),
            "b": display_path(diff.b),
            "changes": [
                {
                    "key": c.key,
                    "kind": c.kind,
                    "before": json.loads(json.dumps(c.before, default=str)),
                    "after": json.loads(json.dumps(c.after, default=str)),
                }
                for c in diff.changes
            ],
            "metrics": [
                {
                    "metric": m.metric,
                    "role": m.role,
                    "a": m.a,
                    "b": m.b,
                    "change": m.change,
                    "a_step": m.a_step,
                    "b_step": m.b_step,
                }
                for m in diff.metrics
            ],
        }
    )


def print_diff(diff: RunDiff, console: Any = None) -> None:
    """Print the fingerprint changes and the final metrics side by side (rich tables)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fitwatch.report.render import display_path

    console = console or Console()
    a, b = display_path(diff.a), display_path(diff.b)
    if diff.changes:
        table = Table(title=escape(f"What changed: {a} -> {b}"), title_justify="left")
        table.add_column("key", no_wrap=True)
        table.add_column("A")
        table.add_column("B")
        for change in diff.changes:
            before, _, after = str(change)[len(change.key) + 2 :].partition(" -> ")
            table.add_row(escape(change.key), escape(before), escape(after))
        console.print(table)
    else:
        console.print(escape(f"{a} and {b}: same fingerprint (versions, configs, data hashes)."))
    if diff.metrics:
        table = Table(title="Final metrics", title_justify="left")
        for column in ("metric", "A", "B", "change"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for m in diff.metrics:
            table.add_row(
                m.metric, f"{m.a:.4g} (step {m.a_step})", f"{m.b:.4g} (step {m.b_step})", f"{m.change:+.4g}"
            )
        console.print(table)
    for note in diff.notes:
        console.print(f"note: {escape(note)}", highlight=False)
