"""Assembling a report: runs read, roles assigned, records replayed, live findings merged.

For every run, the findings of two sources are merged by cause (``(code, subject)``):

- ``live``: what the callbacks raised while the run trained, read from the run's ``findings.jsonl`` (the last
  line of each cause is its current state), or, when only the event files were kept, from fitwatch's
  ``findings/<code>`` severity tracks (code, severity and step only);
- ``replay``: what the detectors find now on the series in the event files (:mod:`fitwatch.report.replay`).

A cause found by both keeps the live version (the callback saw every step and the exact numbers) and both
sources.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitwatch.findings import CATALOGUE, Finding, Severity
from fitwatch.report.events import ReportInputError, UnreadableFile, printable
from fitwatch.report.replay import Replay, replay, role_series
from fitwatch.report.roles import RoleAssignment, RoleMapping, assign_roles, fold_dashboard_runs
from fitwatch.report.sources import discover_sources, read_source
from fitwatch.sinks.tags import parse_tag

__all__ = [
    "FINDINGS_FILE",
    "Report",
    "ReportedFinding",
    "RunReport",
    "build_report",
    "check_mappings",
    "read_live_findings",
]

#: The callbacks' findings log in a run directory (``FitWatchConfig.findings_file``'s default).
FINDINGS_FILE = "findings.jsonl"


@dataclass(frozen=True)
class ReportedFinding:
    """A cause: its current state, who found it, and where it was first raised.

    Attributes:
        finding: The cause's latest state (its ``step`` is that of the latest update).
        sources: ``("live",)``, ``("replay",)`` or ``("live", "replay")``.
        first_step: Step at which the cause was first raised.
        first_epoch: Epoch at which it was first raised, when known.
    """

    finding: Finding
    sources: tuple[str, ...]
    first_step: int
    first_epoch: int | None = None


@dataclass
class RunReport:
    """The report of one run.

    Attributes:
        run: The run directory.
        files: Its event files, in reading order.
        roles: Which tag carries which role.
        series: The role series the replay read (``role -> {subject: [(step, value), ...]}``).
        replay: What the replay found and the Monitor's history (gaps).
        findings: Live and replayed causes merged, by step.
        live_source: Where the live findings came from: ``"findings.jsonl"``, ``"tensorboard"`` or ``None``.
        errors: Files that could not be read to the end (event files, findings.jsonl lines).
        notes: Anything else the reader should know (detectors that failed on these inputs).
    """

    run: Path
    files: list[Path]
    roles: RoleAssignment
    series: dict[str, dict[str, list[tuple[int, float]]]]
    replay: Replay
    findings: list[ReportedFinding]
    live_source: str | None = None
    errors: list[UnreadableFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Every run's report."""

    runs: list[RunReport]

    def fails(self, level: Severity | str) -> bool:
        """Whether any run has a finding at ``level`` or worse."""
        threshold = Severity.parse(level)
        return any(f.finding.severity >= threshold for run in self.runs for f in run.findings)

    @property
    def unreadable(self) -> bool:
        """Whether some file could not be read to the end."""
        return any(run.errors for run in self.runs)


First = dict[tuple[str, str], tuple[int, int | None]]


def read_live_findings(path: str | os.PathLike[str]) -> tuple[list[Finding], First, list[UnreadableFile]]:
    """The current state of every cause in a ``findings.jsonl``, skipping (and naming) lines that do not
    parse.

    :func:`fitwatch.sinks.jsonl.read_findings` stops at the first bad line; a run killed while writing leaves
    one at the end, and everything before it is still worth reporting.

    Returns:
        The causes' latest states, ``(code, subject) -> (step, epoch)`` of each cause's first line, and the
        file when some lines could not be read.
    """
    latest: dict[tuple[str, str], Finding] = {}
    first: First = {}
    bad: list[int] = []
    errors: list[UnreadableFile] = []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        return [], {}, [UnreadableFile(printable(path), f"{type(err).__name__}: {err.strerror or err}")]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            finding = Finding.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError, OverflowError):  # not JSON, or a field of the wrong kind
            bad.append(number)
            continue
        latest[finding.key] = finding
        first.setdefault(finding.key, (finding.step, finding.epoch))
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        errors.append(
            UnreadableFile(
                printable(path),
                f"skipped {len(bad)} malformed line(s) of {len(lines)} (line {shown}); the rest was read",
            )
        )
    return list(latest.values()), first, errors


def _live_from_tracks(
    scalars: Mapping[str, list[tuple[int, float]]], prefix: str
) -> tuple[list[Finding], First]:
    """Findings from fitwatch's ``findings/<code>`` severity tracks (the last point of each code)."""
    out = []
    first: First = {}
    for tag, points in scalars.items():
        parts = parse_tag(tag, prefix)
        if parts is None or parts.section != "findings" or parts.metric not in CATALOGUE or not points:
            continue
        step, level = points[-1]
        try:
            severity = Severity(int(level))
        except ValueError:
            continue
        spec = CATALOGUE[parts.metric]
        message = (
            f"{spec.title} (raised live; the message is in {FINDINGS_FILE}, which this run directory lacks)"
        )
        out.append(Finding(code=parts.metric, severity=severity, step=int(step), epoch=None, message=message))
        first[(parts.metric, "")] = (int(points[0][0]), None)
    return out, first


def _merge(
    live: Sequence[Finding],
    live_first: First,
    replayed: Sequence[Finding],
    replay_first: First,
    *,
    live_by_code: bool,
) -> list[ReportedFinding]:
    def reported(f: Finding, sources: tuple[str, ...], first: First) -> ReportedFinding:
        step, epoch = first.get(f.key, (f.step, f.epoch))
        return ReportedFinding(f, sources, step, epoch)

    merged: dict[tuple[str, str], ReportedFinding] = {}
    for f in live:
        merged[f.key] = reported(f, ("live",), live_first)
    for f in replayed:
        key = (f.code, "") if live_by_code else f.key
        if key in merged and merged[key].sources == ("live",):
            old = merged[key]
            merged[key] = ReportedFinding(old.finding, ("live", "replay"), old.first_step, old.first_epoch)
        elif f.key not in merged:
            merged[f.key] = reported(f, ("replay",), replay_first)
    return sorted(merged.values(), key=lambda r: (r.first_step, -int(r.finding.severity), r.finding.code))


def check_mappings(mappings: Sequence[RoleMapping], tags_seen: Iterable[str]) -> None:
    """Reject ``--map`` entries that repeat a tag or name a tag no run has.

    Raises:
        ReportInputError: Naming the entry, and for an unknown tag the closest tags the runs have.
    """
    import difflib

    seen = set(tags_seen)
    repeated = sorted({m.tag for m in mappings if sum(n.tag == m.tag for n in mappings) > 1})
    if repeated:
        raise ReportInputError(f"--map gives the tag {repeated[0]!r} more than one role.")
    for m in mappings:
        if m.tag not in seen:
            close = difflib.get_close_matches(m.tag, sorted(seen), n=3, cutoff=0.5)
            names = [repr(c) for c in close]
            either = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
            hint = f"; did you mean {either}?" if close else "."
            raise ReportInputError(f"--map names the tag {m.tag!r}, which no run has{hint}")


def build_report(
    paths: Sequence[str | os.PathLike[str]],
    *,
    mappings: Sequence[RoleMapping] = (),
    detector_settings: Mapping[str, Mapping[str, Any]] | None = None,
    gap_window: int = 5,
) -> Report:
    """Read every run under ``paths``, replay it through the detectors and merge its live findings.

    Args:
        paths: Log directories, run directories, event files, CSVLogger ``metrics.csv`` files, MLflow run
            folders or ``mlflow:<run id>`` (:mod:`fitwatch.report.sources`).
        mappings: ``--map`` entries (:func:`fitwatch.report.roles.parse_mapping`).
        detector_settings: Per-detector settings (``FitWatchConfig.detectors``), as the live run had them.
        gap_window: Evaluations the gap trend looks back over (``FitWatchConfig.gap_window``).

    Raises:
        ReportInputError: If a path does not exist or holds no run, or a mapping names a tag that no run has or
            maps one tag twice.
    """
    # fitwatch's dashboard layout (train/val/class sibling runs) folds back into one run per training run.
    runs = fold_dashboard_runs([read_source(source) for source in discover_sources(paths)])
    if mappings:
        check_mappings(mappings, (tag for run in runs for tag in run.scalars))
    out = []
    for events in runs:
        roles = assign_roles(list(events.scalars), mappings)
        series = role_series(events.scalars, roles)
        result = replay(
            series,
            detector_settings=detector_settings,
            gap_window=gap_window,
            epoch_before_step=roles.fitwatch,
        )
        errors = list(events.unreadable)
        live: list[Finding] = []
        live_first: First = {}
        live_source = None
        jsonl = events.findings_file or events.directory / FINDINGS_FILE
        if jsonl.is_file():
            live, live_first, bad = read_live_findings(jsonl)
            errors += bad
            live_source = FINDINGS_FILE
        elif roles.fitwatch:
            live, live_first = _live_from_tracks(events.scalars, roles.prefix)
            live_source = "tensorboard" if live else None
        notes = list(result.notes)
        if not events.scalars:
            notes.append("no scalar was read from this run's files")
        elif not result.evaluations and not result.step_records:
            notes.append(
                "no series of this run has a role the detectors read; map its tags with --map TAG=ROLE "
                "(see fitwatch report --help)"
            )
        out.append(
            RunReport(
                run=events.directory,
                files=events.files,
                roles=roles,
                series=series,
                replay=result,
                findings=_merge(
                    live,
                    live_first,
                    result.findings,
                    result.first_raised,
                    live_by_code=live_source == "tensorboard",
                ),
                live_source=live_source,
                errors=errors,
                notes=notes,
            )
        )
    return Report(out)
