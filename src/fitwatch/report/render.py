"""Showing a report: rich tables for people, a JSON document for machines (:mod:`fitwatch.report.schema`)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fitwatch.findings import Severity
from fitwatch.report.build import Report, ReportedFinding, RunReport
from fitwatch.report.schema import REPORT_SCHEMA_ID

__all__ = ["SEVERITY_STYLE", "display_path", "json_safe", "print_report", "report_document", "when"]

#: Rich styles of the severities.
SEVERITY_STYLE = {Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.CRITICAL: "bold red"}


def json_safe(value: Any) -> Any:
    """A strict-JSON copy: non-finite floats become ``null``, tuples lists, keys strings, paths strings.

    >>> json_safe({"a": float("nan"), 1: (2.5, float("inf"))})
    {'a': None, '1': [2.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def when(step: int, epoch: int | None) -> str:
    """Where in training, for people.

    >>> when(120, 3), when(40, None)
    ('step 120 (epoch 3)', 'step 40')
    """
    return f"step {step}" + (f" (epoch {epoch})" if epoch is not None else "")


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when below it; bytes that are not
    UTF-8 shown as ``\\xff`` escapes (:func:`fitwatch.report.events.printable`)."""
    from fitwatch.report.events import printable

    try:
        return printable(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return printable(path)


def _finding_document(reported: ReportedFinding) -> dict[str, Any]:
    f = reported.finding
    doc = f.to_dict()
    doc["title"] = f.title
    doc["first_step"] = reported.first_step
    doc["first_epoch"] = reported.first_epoch
    doc["sources"] = list(reported.sources)
    return doc


def _run_document(run: RunReport) -> dict[str, Any]:
    steps = [p[-1][0] for by_subject in run.series.values() for p in by_subject.values() if p]
    return {
        "run": display_path(run.run),
        "files": [display_path(f) for f in run.files],
        "fitwatch_tags": run.roles.fitwatch,
        "live_findings": run.live_source,
        "evaluations": run.replay.evaluations,
        "step_records": run.replay.step_records,
        "last_step": max(steps) if steps else None,
        "roles": {role: dict(by_subject) for role, by_subject in run.roles.series.items()},
        "unmapped_tags": list(run.roles.unmapped),
        "findings": [_finding_document(f) for f in run.findings],
        "errors": [{"file": display_path(Path(e.path)), "error": e.reason} for e in run.errors],
        "notes": list(run.notes),
    }


def report_document(report: Report, *, fail_on: Severity | str | None = None) -> dict[str, Any]:
    """The report as a JSON-safe document (:data:`~fitwatch.report.schema.REPORT_SCHEMA`)."""
    from fitwatch import __version__

    level = None if fail_on is None else Severity.parse(fail_on)
    return json_safe(
        {
            "schema": REPORT_SCHEMA_ID,
            "fitwatch_version": __version__,
            "fail_on": None if level is None else level.name.lower(),
            "failed": level is not None and report.fails(level),
            "runs": [_run_document(run) for run in report.runs],
        }
    )


def _roles_line(run: RunReport) -> str:
    parts = []
    for role, by_subject in run.roles.series.items():
        tags = list(by_subject.values())
        parts.append(f"{role}={tags[0]}" + (f" (+{len(tags) - 1})" if len(tags) > 1 else ""))
    return ", ".join(parts) if parts else "none"


def _when_cell(reported: ReportedFinding) -> str:
    """``step FIRST[-LATEST]`` and the epoch on a second line: first raised, latest update."""
    f = reported.finding
    steps = f"step {reported.first_step}" + (f"-{f.step}" if f.step != reported.first_step else "")
    return steps + (f"\n[dim]epoch {reported.first_epoch}[/]" if reported.first_epoch is not None else "")


def _last(series: Mapping[str, Mapping[str, list[tuple[int, float]]]], role: str) -> list[tuple[int, float]]:
    points = series.get(role, {}).get("", [])
    return [(s, v) for s, v in points if v == v]  # NaN dropped


def _epoch_at(series: Mapping[str, Mapping[str, list[tuple[int, float]]]], step: int) -> str:
    """The epoch at ``step`` in the framework's own numbering: Lightning's 0-based ``epoch``, the HF Trainer's
    fractional ``train/epoch`` (1.0 at the end of the first epoch)."""
    for role, fmt in (("epoch", "epoch {:.0f} (0-based, as Lightning counts)"),
                      ("epoch_progress", "epoch {:.2f} (as the HF Trainer counts)")):
        points = _last(series, role)
        before = [v for s, v in points if s <= step]
        if before:
            return fmt.format(before[-1])
    return ""


def verdict(run: RunReport) -> str:
    """One line: is the run going wrong, and where first.

    >>> from types import SimpleNamespace as N
    >>> verdict(N(findings=[], replay=N(evaluations=4)))
    'healthy: no findings over 4 evaluations'
    """
    if not run.findings:
        return f"healthy: no findings over {run.replay.evaluations} evaluations"
    worst = max(int(r.finding.severity) for r in run.findings)
    worst_name = next(r.finding.severity.name.lower() for r in run.findings if int(r.finding.severity) == worst)
    first = min(run.findings, key=lambda r: (-int(r.finding.severity), r.first_step))
    n = len(run.findings)
    return (
        f"{worst_name}: {n} finding{'s' if n != 1 else ''}; the worst first raised at step {first.first_step}: "
        f"{first.finding.code}{f' ({first.finding.subject})' if first.finding.subject else ''}"
    )


def summary_lines(run: RunReport) -> list[str]:
    """The verdict, the best checkpoint (lowest validation loss) and the final validation metrics."""
    lines = [verdict(run)]
    series = run.series
    loss = _last(series, "val_loss")
    if loss:
        step, value = min(loss, key=lambda p: p[1])
        epoch = _epoch_at(series, step)
        lines.append(f"best checkpoint (lowest validation loss {value:.4g}): step {step}" + (f", {epoch}" if epoch else ""))
    finals = []
    for role, label in (("val_loss", "loss"), ("val_accuracy", "accuracy"), ("val_f1", "macro F1"), ("val_ece", "ECE")):
        points = _last(series, role)
        if points:
            finals.append(f"{label} {points[-1][1]:.4g}")
    if finals:
        last_step = max(p[0] for role in ("val_loss", "val_accuracy") for p in _last(series, role)) if (
            _last(series, "val_loss") or _last(series, "val_accuracy")) else None
        lines.append("final validation: " + ", ".join(finals) + (f" (step {last_step})" if last_step is not None else ""))
    return lines


def print_report(report: Report, console: Any = None, *, verbose: bool = False) -> None:
    """Print one table of findings per run (code, severity and source, when, message) and what was read.

    Args:
        report: The report.
        console: A ``rich.console.Console``; a new one on standard output by default.
        verbose: Also list the tag behind each role (what the replay read).
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        # Not a terminal (a pipe, a CI log, a file): 100 columns, and every line wraps; nothing is cut.
        console = Console(width=None if sys.stdout.isatty() else 100, soft_wrap=False)
    for run in report.runs:
        title = f"{display_path(run.run)}  ({len(run.files)} event file{'s' if len(run.files) != 1 else ''}, "
        title += f"{run.replay.evaluations} evaluations, {run.replay.step_records} training points)"
        # The run's header stays one line (a long path is not a sentence to wrap): its verdict comes next.
        console.print(escape(title), soft_wrap=True, highlight=False)
        for i, line in enumerate(summary_lines(run)):
            console.print(("[bold]" if i == 0 else "  ") + escape(line) + ("[/]" if i == 0 else ""),
                          overflow="fold", highlight=False)
        if run.findings:
            # Short fixed columns, so that the message keeps most of an 80-column terminal and wraps there;
            # a column too narrow folds its words onto the next line rather than cutting them.
            table = Table(box=box.SIMPLE_HEAD, show_lines=True, expand=False)
            table.add_column("code", overflow="fold")
            table.add_column("severity", overflow="fold")
            table.add_column("when", overflow="fold")
            table.add_column("message", ratio=1, min_width=30, overflow="fold")
            for reported in run.findings:
                f = reported.finding
                code = escape(f.code) + (f"\n[dim]{escape(f.subject)}[/]" if f.subject else "")
                style, sources = SEVERITY_STYLE[f.severity], "+".join(reported.sources)
                severity = f"[{style}]{f.severity.name.lower()}[/]\n[dim]{sources}[/]"
                table.add_row(code, severity, _when_cell(reported), escape(f.message))
            console.print(table)
        else:
            console.print("  [green]no findings[/]")
        if verbose:
            console.print(f"  roles: {escape(_roles_line(run))}", highlight=False)
        if run.roles.unmapped:
            shown = ", ".join(run.roles.unmapped[:8]) + (" ..." if len(run.roles.unmapped) > 8 else "")
            console.print(
                f"  not recognised: {escape(shown)} (give them a role with --map TAG=ROLE)", highlight=False,
                overflow="fold",
            )
        if run.live_source is None and run.roles.fitwatch:
            console.print("  live findings: none recorded (no findings.jsonl)", highlight=False)
        for error in run.errors:
            console.print(
                f"  [red]could not read[/] {escape(display_path(Path(error.path)))}: {escape(error.reason)}",
                highlight=False,
                overflow="fold",
            )
        for note in run.notes:
            console.print(f"  note: {escape(note)}", highlight=False, overflow="fold")
        console.print()
