"""Findings have a lifecycle: a cause whose condition no longer holds is resolved; stop_on ignores it."""

from __future__ import annotations

import json

from fitwatch.detect.records import EvalRecord
from fitwatch.findings import Finding, Severity
from fitwatch.monitor import Monitor
from fitwatch.sinks.base import Sink


class Recorder(Sink):
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple[str, bool, int | None]] = []

    def finding(self, finding: Finding, *, new: bool) -> None:
        self.events.append((finding.code, new, finding.resolved_step))


def record(step: int, accuracy: float) -> EvalRecord:
    per_class = {"support": [50.0, 50.0], "predicted": [100.0 if accuracy < 0.6 else 50.0, 0.0 if accuracy < 0.6 else 50.0],
                 "recall": [1.0, 0.0] if accuracy < 0.6 else [0.9, 0.9], "f1": [0.67, 0.0] if accuracy < 0.6 else [0.9, 0.9]}
    return EvalRecord(step=step, epoch=step // 10, val={"accuracy": accuracy, "majority_fraction": 0.5, "macro_f1": 0.33 if accuracy < 0.6 else 0.9},
                      val_per_class=per_class, class_names=["a", "b"], progress=step / 100)


def test_a_failed_run_that_recovers_is_resolved_and_no_longer_stops():
    sink = Recorder()
    monitor = Monitor(sinks=[sink], stop_on=["critical"])
    for step in (30, 40, 50):
        monitor.evaluation(record(step, 0.5))
    failed = {f.code: f for f in monitor.findings}["FW-FAILED-RUN"]
    assert failed.severity is Severity.CRITICAL and not failed.resolved and monitor.should_stop
    for step in (60, 70):
        monitor.evaluation(record(step, 0.9))
    failed = {f.code: f for f in monitor.findings}["FW-FAILED-RUN"]
    assert failed.resolved_step == 70  # two evaluations in a row above the baseline
    assert not monitor.should_stop
    assert ("FW-FAILED-RUN", False, 70) in sink.events
    assert "Resolved at step 70" in str(failed)
    # The state carries the lifecycle, and a resolved finding round-trips through JSON.
    state = json.loads(json.dumps(monitor.state_dict()))
    clone = Monitor()
    clone.load_state_dict(state)
    assert {f.code: f for f in clone.findings}["FW-FAILED-RUN"].resolved_step == 70
    # It holds again later: raised anew.
    for step in (80, 90):
        monitor.evaluation(record(step, 0.5))
    again = {f.code: f for f in monitor.findings}["FW-FAILED-RUN"]
    assert not again.resolved and ("FW-FAILED-RUN", True, None) in sink.events[-3:]


def test_findings_about_what_happened_are_never_resolved():
    monitor = Monitor()
    monitor.report(Finding(code="FW-LEAK-DUPLICATES", severity=Severity.WARNING, step=0, epoch=0, message="dup"))
    for step in (10, 20, 30):
        monitor.evaluation(record(step, 0.9))
    assert not monitor.findings[0].resolved
