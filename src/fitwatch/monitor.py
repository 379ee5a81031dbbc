"""The Monitor: keeps the series, feeds the detectors, hands scalars and findings to the sinks.

Framework-free and torch-free: it reads plain-number records, so the callbacks and ``fitwatch report``
(which rebuilds records from TensorBoard event files) share it.

>>> from fitwatch.detect.records import EvalRecord
>>> m = Monitor(detectors=[])
>>> for step, (val, train) in enumerate([(0.9, 1.0), (0.8, 0.6), (0.85, 0.4)]):
...     _ = m.evaluation(EvalRecord(step=step, epoch=step, val={"loss": val}, train={"loss": train}))
>>> [round(v, 2) for _, v in m.history["gap/loss"]]
[-0.1, 0.2, 0.45]
>>> [(step, round(v, 3)) for step, v in m.history["gap/loss_slope"]]
[(2, 0.275)]
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fitwatch.detect.base import Detector, build_detectors
from fitwatch.detect.records import AuditRecord, EvalRecord, StepRecord
from fitwatch.detect.trends import theil_sen_slope
from fitwatch.findings import Finding, Severity, materially_changed, words_changed
from fitwatch.sinks.base import EvaluationDetails, GuardedSinks, Sink
from fitwatch.sinks.tags import tag
from fitwatch.warnings import FitWatchRuntimeWarning

__all__ = ["GAP_METRICS", "Monitor"]

#: Metrics whose validation-minus-training gap (and its trend) is tracked.
GAP_METRICS = ("loss", "accuracy", "ece")
#: What the first evaluation's images are assumed to take before one was timed (building the figures' layout
#: is most of it: 0.1-0.5 s, ``python -m benchmarks.cost --figures``).
FIRST_IMAGES_S = 0.25
#: Records of a resolving detector in a row whose condition no longer holds before its cause is marked resolved.
RESOLVE_AFTER = 2
#: Per-evaluation lists a detector keeps (its ``series``) hold at most the last this many evaluations, so that
#: its state, and every checkpoint, stays bounded however long the run. Trends look back a handful of
#: evaluations; a best value older than this many evaluations has been reported on long before.
DETECTOR_WINDOW = 100

Record = EvalRecord | StepRecord | AuditRecord


class Monitor:
    """Series, detectors and sinks of one run.

    Args:
        detectors: Detector instances; ``None`` builds every registered detector with ``detector_settings``.
        detector_settings: Per-detector settings by name (``FitWatchConfig.detectors``).
        sinks: Where scalars and findings go (none on non-zero ranks).
        stop_on: Finding codes or severity names that make :attr:`should_stop` true.
        on_finding: Called with each new cause (and each escalation of one); exceptions in it are warned
            about once and ignored.
        gap_window: Evaluations the gap trend looks back over; also how many recent points of each series
            :meth:`state_dict` keeps (the whole history lives in the sinks' history file).
        prefix: Tag prefix.
    """

    def __init__(
        self,
        *,
        detectors: Sequence[Detector] | None = None,
        detector_settings: Mapping[str, Mapping[str, Any]] | None = None,
        sinks: Sequence[Sink] = (),
        stop_on: Iterable[str] = (),
        on_finding: Callable[[Finding], Any] | None = None,
        gap_window: int = 5,
        prefix: str = "",
        image_budget: float | None = None,
    ) -> None:
        self.detectors = list(build_detectors(detector_settings) if detectors is None else detectors)
        self.stop_on = (stop_on,) if isinstance(stop_on, str) else tuple(stop_on)
        self.on_finding = on_finding
        self.gap_window = gap_window
        self.prefix = prefix
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._causes: dict[tuple[str, str], Finding] = {}
        self._written: dict[tuple[str, str], Finding] = {}  # what the sinks were last shown of each cause
        self._peak: dict[tuple[str, str], Severity] = {}  # the highest severity each cause has been shown at
        self._owner: dict[tuple[str, str], str] = {}  # cause -> the resolving detector that raised it
        self._absent: dict[tuple[str, str], int] = {}  # records in a row of that detector where it did not hold
        self._broken: set[str] = set()
        self._dropped: dict[str, int] = {}  # points of a series before those in memory (a resume without its file)
        self._history_file: str | None = None  # the history file of the run this state was saved from
        self._resume: dict[str, Any] | None = None  # a loaded state waiting for the sinks, to reload its history
        self._sinks = GuardedSinks([])
        self.sinks = GuardedSinks(sinks)
        #: Images (:meth:`details`) take at most this share of the wall time since the first evaluation.
        self.image_budget = image_budget
        self._image_clock: float | None = None  # when the first evaluation's details came
        self._image_seconds = 0.0  # time spent in the sinks' `evaluation` (drawing)
        self._image_step: int | None = None  # the evaluation step last decided, and whether it draws
        self._image_due = True
        self._image_last: float | None = None  # what the last evaluation's images took
        self.first_images_s = FIRST_IMAGES_S
        self._image_drawn_at: int | None = None
        self._undrawn: dict[str, tuple[EvaluationDetails, int]] = {}  # the latest skipped details per split
        self.images_skipped = 0

    # ------------------------------------------------------------------ sinks
    @property
    def sinks(self) -> GuardedSinks:
        """The sinks (guarded). Setting them starts them with the history held so far; after a resume, the
        whole history is first read back from the saved run's history file when it still matches the state."""
        return self._sinks

    @sinks.setter
    def sinks(self, sinks: GuardedSinks | Sequence[Sink]) -> None:
        self._sinks = sinks if isinstance(sinks, GuardedSinks) else GuardedSinks(sinks)
        if not self._sinks.active:
            return
        resumed_from = None
        if self._resume is not None:
            resume, self._resume = self._resume, None
            sources = [resume["file"], *(s.history_source() for s in self._sinks.active)]
            resumed_from = next((src for src in sources if src and self._reload_history(src, resume)), None)
        self._sinks.call("start", self.history, resumed_from=resumed_from)

    def _reload_history(self, source: str, resume: dict[str, Any], *, exact: bool = False) -> bool:
        """Replace the saved tails by the whole series read from ``source``, when the file holds at least the
        counted points of every series and they end with the saved tails (``exact``: exactly those points, no
        more). Points logged since the state was loaded are kept after them. Returns whether it did."""
        from fitwatch.sinks.jsonl import read_history

        try:
            stored = read_history(source)
        except (OSError, ValueError, TypeError):
            return False
        counts, tails, held = resume["counts"], resume["tails"], resume["held"]
        if exact and (set(stored) != set(counts) or any(len(stored[t]) != n for t, n in counts.items())):
            return False
        full = {}
        for tag, count in counts.items():
            points = stored.get(tag, [])[:count]
            tail = tails.get(tag, [])
            if len(points) != count or not _same_points(points[len(points) - len(tail) :], tail):
                return False
            full[tag] = points
        for tag, points in self.history.items():
            full[tag] = full.get(tag, []) + points[held.get(tag, 0) :]
        self.history = full
        self._dropped = {}
        resume["held"] = dict(counts)
        return True

    # ------------------------------------------------------------------ reading
    @property
    def findings(self) -> list[Finding]:
        """The current state of every cause found so far, in the order first raised."""
        return list(self._causes.values())

    @property
    def should_stop(self) -> bool:
        """Whether a current finding matches ``stop_on`` (a code, or a severity at or above a named one)."""
        if not self.stop_on:
            return False
        codes = {s for s in self.stop_on if s.startswith("FW-")}
        levels = [Severity.parse(s) for s in self.stop_on if not s.startswith("FW-")]
        least = min(levels) if levels else None
        return any(f.code in codes or (least is not None and f.severity >= least)
                   for f in self._causes.values() if not f.resolved)

    # ------------------------------------------------------------------ writing
    def log(self, values: Mapping[str, float], step: int, *, dashboard: bool = True) -> None:
        """Record scalars in :attr:`history`; also send them to the sinks unless ``dashboard=False``."""
        clean = {}
        for name, value in values.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            self.history.setdefault(name, []).append((int(step), v))
            clean[name] = v
        if clean:
            self._sinks.call("record", clean, int(step))
            if dashboard:
                self._sinks.call("scalars", clean, int(step))

    def details(self, details: EvaluationDetails, step: int) -> None:
        """An evaluation's details for the sinks' images, within :attr:`image_budget`: an evaluation's images are
        drawn when the drawing so far plus this one (as long as the last took; the first is assumed to take
        :data:`FIRST_IMAGES_S`) stays within that share of the time since the run's first record. Skipped ones are
        counted and the latest of each split is drawn at :meth:`close`, so the run's last evaluation always has
        its images."""
        if step != self._image_step:  # one decision per evaluation, for all of its splits
            self._image_step = step
            now = time.perf_counter()
            if self._image_clock is None:
                self._image_clock = now
            budget = self.image_budget
            next_cost = self._image_last if self._image_last is not None else self.first_images_s
            self._image_due = budget is None or self._image_seconds + next_cost <= budget * (now - self._image_clock)
            self._image_drawn_at = None
        if not self._image_due:
            self._undrawn[details.split] = (details, int(step))
            self.images_skipped += 1
            return
        self._undrawn.pop(details.split, None)
        self._draw(details, int(step))

    def _draw(self, details: EvaluationDetails, step: int) -> None:
        start = time.perf_counter()
        self.sinks.call("evaluation", details, step)
        spent = time.perf_counter() - start
        self._image_seconds += spent
        # What one evaluation's images take (all of its splits).
        self._image_last = spent + (self._image_last or 0.0) if self._image_drawn_at == step else spent
        self._image_drawn_at = step

    def text(self, name: str, text: str, step: int) -> None:
        self.sinks.call("text", name, text, int(step))

    def histogram(self, name: str, edges: Sequence[float], counts: Sequence[int], step: int) -> None:
        self.sinks.call("histogram", name, edges, counts, int(step))

    # ------------------------------------------------------------------ records
    def step(self, record: StepRecord) -> list[Finding]:
        return self._detect(record)

    def audit(self, record: AuditRecord) -> list[Finding]:
        return self._detect(record)

    def evaluation(self, record: EvalRecord) -> list[Finding]:
        """Log the train-validation gaps and their trends, run the detectors, flush the sinks."""
        gaps = {}
        for metric in GAP_METRICS:
            val, train = record.val.get(metric), record.train.get(metric)
            if val is None or train is None or not (math.isfinite(val) and math.isfinite(train)):
                continue
            name = tag("gap", metric, prefix=self.prefix)
            gaps[name] = val - train
            recent = [v for _, v in self.history.get(name, [])][-(self.gap_window - 1) :] + [val - train]
            if len(recent) >= 3:
                gaps[tag("gap", metric + "_slope", prefix=self.prefix)] = theil_sen_slope(recent)
        self.log(gaps, record.step)
        found = self._detect(record)
        self.sinks.call("flush", self.history)
        return found

    def report(self, finding: Finding) -> bool:
        """Show a finding made outside the detectors (a data check). Returns whether the cause is new."""
        return self._show(finding)

    def _detect(self, record: Record) -> list[Finding]:
        if self._image_clock is None:  # the image budget counts from the run's first record (its first step)
            self._image_clock = time.perf_counter()
        found = []
        for detector in self.detectors:
            if detector.name in self._broken or not isinstance(record, detector.record_types):
                continue
            try:
                finding = detector.update(record)
            except Exception as err:  # noqa: BLE001  (a detector bug must never stop training)
                self._broken.add(detector.name)
                warnings.warn(
                    f"fitwatch: detector {detector.name!r} failed on a {type(record).__name__} at step {record.step} "
                    f"({type(err).__name__}: {err}) and is disabled for the rest of the run.",
                    FitWatchRuntimeWarning,
                    stacklevel=2,
                )
                continue
            _trim(detector, DETECTOR_WINDOW)
            if finding is not None:
                self._show(finding)
                found.append(finding)
            if getattr(detector, "resolves", False):
                self._track(detector, finding, record.step)
        return found

    def _track(self, detector: Detector, finding: Finding | None, step: int) -> None:
        """Causes of a resolving detector whose condition has not held for :data:`RESOLVE_AFTER` of its records in
        a row are marked resolved (in :attr:`findings`, the sinks and ``stop_on``)."""
        if finding is not None:
            self._owner[finding.key] = detector.name
        try:
            holding = detector.holding()
        except Exception:  # noqa: BLE001  (no lifecycle beats a broken run)
            return
        for key, owner in self._owner.items():
            if owner != detector.name:
                continue
            if key[1] in holding or (finding is not None and key == finding.key):
                self._absent[key] = 0
                continue
            self._absent[key] = self._absent.get(key, 0) + 1
            cause = self._causes.get(key)
            if cause is None or cause.resolved or self._absent[key] < RESOLVE_AFTER:
                continue
            resolved = dataclasses.replace(cause, resolved_step=int(step))
            self._causes[key] = resolved
            self._written[key] = resolved
            self.log({tag("findings", resolved.code, prefix=self.prefix): 0.0}, int(step))
            logging.getLogger("fitwatch").info("fitwatch: %s", resolved)
            self._sinks.call("finding", resolved, new=False)

    def _show(self, finding: Finding) -> bool:
        previous = self._causes.get(finding.key)
        # A cause that had resolved and holds again is raised anew; one that goes up and down between two
        # severities is new only the first time it reaches a severity (not at every return to it).
        peak = self._peak.get(finding.key)
        new = previous is None or previous.resolved or (peak is not None and finding.severity > peak)
        self._peak[finding.key] = max(finding.severity, peak) if peak is not None else finding.severity
        self._causes[finding.key] = finding
        shown = self._written.get(finding.key)
        # What the sinks show again: a new or escalated cause, other words or severity at once; numbers alone
        # (a count of evaluations, a p-value) when they moved materially and the step has doubled since the cause
        # was last shown, so a cause that sits for the whole run makes O(log steps) lines, and its latest state
        # is shown at the end (close).
        changed = (
            new
            or shown is None
            or words_changed(shown, finding)
            or (materially_changed(shown, finding) and finding.step >= 2 * max(shown.step, 1))
        )
        if changed:
            self._written[finding.key] = finding
        self.log(
            {
                tag("findings", finding.code, prefix=self.prefix): float(int(finding.severity)),
                tag("findings", "count", prefix=self.prefix): float(len(self._causes)),
            },
            finding.step,
        )
        if changed:  # an unchanged cause is not written again at every evaluation
            self._sinks.call("finding", finding, new=new)
        if new and self.on_finding is not None:
            try:
                self.on_finding(finding)
            except Exception as err:  # noqa: BLE001
                warnings.warn(
                    f"fitwatch: the `on_finding` hook raised {type(err).__name__}: {err}; training continues.",
                    FitWatchRuntimeWarning,
                    stacklevel=2,
                )
        return new

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for details, step in self._undrawn.values():  # the last evaluation's images, skipped for the budget
            self._draw(details, step)
        self._undrawn = {}
        for key, finding in self._causes.items():  # the latest state of causes whose numbers moved since shown
            shown = self._written.get(key)
            if shown is not None and shown is not finding and materially_changed(shown, finding):
                self._written[key] = finding
                self._sinks.call("finding", finding, new=False)
        self._sinks.call("flush", self.history)
        self._sinks.call("finish", self.history)
        self._sinks.call("close")

    def __getstate__(self) -> dict[str, Any]:
        # Writers and open files do not pickle; a copy gets its sinks from its adapter where it runs.
        state = self.__dict__.copy()
        state["_sinks"] = GuardedSinks([])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_sinks", state.pop("sinks", GuardedSinks([])))
        for name, default in (("_written", {}), ("_dropped", {}), ("_history_file", None), ("_resume", None),
                              ("image_budget", None), ("_image_clock", None), ("_image_seconds", 0.0), ("_undrawn", {}),
                              ("images_skipped", 0), ("_image_step", None), ("_image_due", True),
                              ("_image_last", None), ("_image_drawn_at", None), ("first_images_s", FIRST_IMAGES_S)):
            state.setdefault(name, default)
        self.__dict__.update(state)

    @property
    def history_tail(self) -> int:
        """Points of each series a :meth:`state_dict` keeps: what the Monitor reads back (the gap trend)."""
        return self.gap_window

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe state of bounded size: the last :attr:`history_tail` points of each series and how many
        points each has (the whole history is in the sinks' history file, named here), current findings and
        every detector's state. The sinks are flushed first, so that the file holds every counted point."""
        self._sinks.call("flush", self.history)
        tail = self.history_tail
        source = next((s for sink in self._sinks.active if (s := sink.history_source())), self._history_file)
        per_class = f"{self.prefix}per_class/"
        counted = {k: self._dropped.get(k, 0) + len(pts) for k, pts in self.history.items()}
        counted.update({k: n for k, n in self._dropped.items() if k not in self.history})
        return {
            "history": {k: [[s, _json_number(v)] for s, v in pts[-tail:]] for k, pts in self.history.items()
                        if not k.startswith(per_class)},
            "history_counts": counted,
            "history_file": source,
            "findings": [f.to_dict() for f in self._causes.values()],
            "detectors": {d.name: d.state_dict() for d in self.detectors},
            "broken": sorted(self._broken),
            "owners": [[list(k), v, self._absent.get(k, 0)] for k, v in self._owner.items()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; keys added in later versions may be missing.

        The history comes back whole when the saved run's history file holds exactly what the state counts;
        otherwise as the saved tails until sinks are attached (now or later), when the whole history is read
        back from that file, or from the sinks' own, cut to what the state counts, if it still matches.
        """
        self.history = {
            str(k): [(int(s), float(v) if v is not None else math.nan) for s, v in pts]
            for k, pts in state.get("history", {}).items()
        }
        saved_counts = {str(k): int(n) for k, n in state.get("history_counts", {}).items()}
        # Every counted series, those saved without a tail (per class) included: their points are in the file.
        counts = {k: max(saved_counts.get(k, 0), len(self.history.get(k, ()))) for k in {*saved_counts, *self.history}}
        self._dropped = {k: n - len(self.history.get(k, ())) for k, n in counts.items() if n > len(self.history.get(k, ()))}
        self._history_file = state.get("history_file")
        self._causes = {}
        for data in state.get("findings", []):
            f = Finding.from_dict(data)
            self._causes[f.key] = f
        self._written = dict(self._causes)
        self._peak = {key: f.severity for key, f in self._causes.items()}
        saved = state.get("detectors", {})
        for detector in self.detectors:
            if detector.name in saved:
                detector.load_state_dict(saved[detector.name])
        self._broken = set(state.get("broken", []))
        self._owner, self._absent = {}, {}
        for entry in state.get("owners", []):
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], list) and len(entry[0]) == 2:
                key = (str(entry[0][0]), str(entry[0][1]))
                self._owner[key] = str(entry[1])
                self._absent[key] = int(entry[2]) if isinstance(entry[2], int) else 0
        self._resume = {
            "file": self._history_file,
            "counts": counts,
            "tails": {k: list(pts) for k, pts in self.history.items()},
            "held": {k: len(pts) for k, pts in self.history.items()},
        }
        if self._history_file:
            # A file that holds exactly what the state counts is this state's history: read it back now. One
            # that goes on past it (a process killed after the checkpoint) is cut back when the run resumes.
            self._reload_history(self._history_file, self._resume, exact=True)
        if self._sinks.active:
            self.sinks = self._sinks  # attached already: reload and restart them now


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _same_points(a: Sequence[tuple[int, float]], b: Sequence[tuple[int, float]]) -> bool:
    """Equal steps and values, every non-finite value equal to every other (a file stores them as null)."""
    return len(a) == len(b) and all(
        sa == sb and (va == vb or not (math.isfinite(va) or math.isfinite(vb))) for (sa, va), (sb, vb) in zip(a, b)
    )


def _trim(detector: Detector, keep: int) -> None:
    """Drop the oldest entries of a detector's per-evaluation lists beyond ``keep``, all in step."""
    lists = [detector.__dict__.get(name) for name in getattr(detector, "series", ())]
    longest = max((len(x) for x in lists if isinstance(x, list)), default=0)
    if longest <= keep:
        return
    for values in lists:
        if isinstance(values, list) and len(values) > keep:
            del values[: len(values) - keep]
