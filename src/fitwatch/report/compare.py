"""``fitwatch diff``: what changed between two runs (their fingerprints), next to how their final metrics
moved.

When a retrained model is quietly worse, the first question is what changed. Each run folder holds the
``fingerprint.json`` written at fit start (:func:`fitwatch.data.write_fingerprint`), in the folder given or below
it (the callbacks write it into the logger's version directory; the newest one is used, and the diff says
which); the differences come from :func:`fitwatch.data.diff_fingerprints`, the training arguments (epochs,
steps, learning rates, schedule, batch size, accumulation, precision, seed, optimizer) first, then versions,
platform, model, tokenizer and data hashes. The final metrics are the last points of the validation series both
runs have (:data:`FINAL_METRICS`), read from their event files with the same roles as ``fitwatch report``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitwatch.data.fingerprint import FINGERPRINT_FILE, FingerprintChange, diff_fingerprints, find_fingerprint
from fitwatch.report.events import ReportInputError, UnreadableInputError, printable
from fitwatch.report.replay import role_series
from fitwatch.report.roles import RoleMapping, assign_roles, fold_dashboard_runs

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
        changes: Fingerprint differences (training arguments, versions, platform, git, model, tokenizer, data,
            extra).
        metrics: Final metrics both runs have.
        notes: Why some comparison is missing, and which ``fingerprint.json`` was read when it was found below
            the folder given.
        a_fingerprint: The ``fingerprint.json`` read for ``a``.
        b_fingerprint: The ``fingerprint.json`` read for ``b``.
    """

    a: Path
    b: Path
    changes: list[FingerprintChange]
    metrics: list[MetricChange]
    notes: list[str] = field(default_factory=list)
    a_fingerprint: Path | None = None
    b_fingerprint: Path | None = None

    @property
    def training_changes(self) -> list[FingerprintChange]:
        """The changed training arguments (``training.*``)."""
        return [c for c in self.changes if c.key.startswith("training.")]


def _fingerprint(run: Path, name: str) -> tuple[dict[str, Any], Path, str | None]:
    """The fingerprint of ``run``, the file it came from, and a note naming that file when it was searched for."""
    if not run.exists():
        raise ReportInputError(f"{name} {run}: no such directory.")
    shown = printable(run)
    try:
        path, found = find_fingerprint(run)
    except FileNotFoundError:
        raise ReportInputError(
            f"{name} {shown} has no {FINGERPRINT_FILE}; {_HOW_TO_FINGERPRINT} (none was found below it either)."
        ) from None
    note = None
    if path.parent != run and path != run:
        from fitwatch.report.render import display_path

        note = f"{name}: read {display_path(path)}"
        if len(found) > 1:
            note += f" (the newest of {len(found)} under {display_path(run)}; name a run folder to choose another)"
    try:
        fingerprint = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UnreadableInputError(f"{name} {printable(path)} could not be read ({err}).") from None
    if not isinstance(fingerprint, dict):
        raise UnreadableInputError(
            f"{name} {printable(path)} holds a JSON {type(fingerprint).__name__}, not the mapping "
            f"fitwatch writes; {_HOW_TO_FINGERPRINT}."
        )
    return fingerprint, path, note


def final_metrics(
    run: str | os.PathLike[str], mappings: Sequence[RoleMapping] = (), *, near: str | os.PathLike[str] | None = None
) -> tuple[dict[str, tuple[int, float]], str | None]:
    """The last point of each :data:`FINAL_METRICS` role in the run under ``run``.

    Args:
        run: A run folder (fitwatch's train/val sibling runs below it are one run).
        mappings: Roles for tags the reader does not know.
        near: When ``run`` holds several runs, use the one whose folder holds this path (its fingerprint).

    Returns:
        ``role -> (step, value)`` and a note when nothing could be compared (no event files, or several runs
        under ``run``).
    """
    from fitwatch.report.sources import discover_sources, read_source

    try:
        found = fold_dashboard_runs([read_source(source) for source in discover_sources([run])])
    except ReportInputError:
        return {}, f"{run}: no event files, so its final metrics are unknown"
    if len(found) > 1 and near is not None:
        anchor = Path(near).resolve()
        holding = [r for r in found if anchor.is_relative_to(Path(r.directory).resolve())]
        found = holding[-1:] or found
    if not found:
        return {}, f"{run}: no event files, so its final metrics are unknown"
    if len(found) > 1:
        return {}, f"{run} holds {len(found)} runs; name the run directory itself to compare final metrics"
    events = found[0]
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
    fingerprint_a, path_a, found_a = _fingerprint(run_a, "RUN_A")
    fingerprint_b, path_b, found_b = _fingerprint(run_b, "RUN_B")
    metrics_a, note_a = final_metrics(run_a, mappings, near=path_a)
    metrics_b, note_b = final_metrics(run_b, mappings, near=path_b)
    metrics = [
        MetricChange(
            label, role, metrics_a[role][1], metrics_b[role][1], metrics_a[role][0], metrics_b[role][0]
        )
        for label, role in FINAL_METRICS
        if role in metrics_a and role in metrics_b
    ]
    notes = [n for n in (found_a, found_b, note_a, note_b) if n]
    if not metrics and not (note_a or note_b):
        notes.append("the two runs log no validation metric in common (loss, accuracy, ECE, macro F1)")
    changes = diff_fingerprints(fingerprint_a, fingerprint_b)
    if not any("training" in fp or "training" in (fp.get("extra") or {}) for fp in (fingerprint_a, fingerprint_b)):
        notes.append("neither fingerprint records the training arguments (fitwatch's callbacks write them; pass "
                     "run_fingerprint(training={...}) when writing one by hand)")
    return RunDiff(run_a, run_b, changes, metrics, notes, path_a, path_b)


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
        console.print(escape(f"What changed: {a} -> {b}"), overflow="fold", highlight=False, soft_wrap=True)
        table = Table()
        table.add_column("key", overflow="fold")
        table.add_column("A", overflow="fold")
        table.add_column("B", overflow="fold")
        section = None
        for change in diff.changes:
            head = change.key.split(".")[0]
            if section is not None and head != section:
                table.add_section()  # training arguments, versions, data hashes ... each its own block
            section = head
            before, _, after = str(change)[len(change.key) + 2 :].partition(" -> ")
            table.add_row(escape(change.key), escape(before), escape(after))
        console.print(table)
    else:
        console.print(escape(f"{a} and {b}: same fingerprint (training arguments, versions, configs, data hashes)."))
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
