"""The JSON-lines sink: files whose per-evaluation cost does not grow with the run, whole lines and no
temporary files left behind, each file failing alone, scalars stopped on a nearly full disk, and an unchanged
finding not written again."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from fitwatch.detect.records import EvalRecord
from fitwatch.findings import Finding, Severity
from fitwatch.monitor import Monitor
from fitwatch.sinks import files as sink_files
from fitwatch.sinks.jsonl import JsonlSink, read_history
from fitwatch.warnings import FitWatchRuntimeWarning

TAGS = [f"per_class/recall/c{i}/val" for i in range(10)]


def _evaluate(monitor: Monitor, e: int) -> None:
    step = 10 * (e + 1)
    monitor.log({tag: 0.5 + 0.01 * i + 0.001 * e for i, tag in enumerate(TAGS)}, step)
    monitor.evaluation(
        EvalRecord(step=step, epoch=e, val={"loss": 1.0 - 0.001 * e}, train={"loss": 0.9 - 0.002 * e})
    )


def test_each_evaluation_appends_only_what_it_logged_and_history_json_comes_at_the_end(tmp_path):
    sink = JsonlSink(tmp_path)
    monitor = Monitor(detectors=[], sinks=[sink])
    written, lines = [], []
    for e in range(60):
        before = sink.bytes_written["history.jsonl"]
        _evaluate(monitor, e)
        written.append(sink.bytes_written["history.jsonl"] - before)
        lines.append(len((tmp_path / "history.jsonl").read_text().splitlines()))
    # The same scalars each evaluation: the same lines appended (the per-class write and the gaps; the slope
    # from the third evaluation on), and the bytes flat up to the width of the numbers, where a full rewrite
    # would grow 60-fold.
    assert [b - a for a, b in zip(lines, lines[1:])] == [2] * 59
    assert max(written[3:]) <= 1.25 * min(written[3:]), written
    assert sink.bytes_written["history.jsonl"] == (tmp_path / "history.jsonl").stat().st_size
    assert not (tmp_path / "history.json").exists()  # written once, at the end
    monitor.close()
    saved = json.loads((tmp_path / "history.json").read_text())
    # Independent reference: the numbers fed above, read back in the format history.json always had.
    assert saved[TAGS[3]] == [[10 * (e + 1), 0.5 + 0.03 + 0.001 * e] for e in range(60)]
    assert [s for s, _ in saved["gap/loss"]] == [10 * (e + 1) for e in range(60)]
    assert read_history(tmp_path / "history.jsonl") == {k: [tuple(p) for p in v] for k, v in saved.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "history.jsonl"]


def test_a_resume_marker_drops_what_a_killed_process_wrote_after_the_checkpoint(tmp_path):
    log = tmp_path / "history.jsonl"
    lines = [
        {"step": 1, "scalars": {"a": 1.0, "b": 2.0}},
        {"step": 2, "scalars": {"a": 1.5, "c": 9.0}},
        {"resume": {"a": 1, "b": 1}},
        {"step": 2, "scalars": {"a": 1.25, "b": None}},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 3, "scal')  # cut short
    history = read_history(log)
    assert history["a"] == [(1, 1.0), (2, 1.25)] and "c" not in history
    assert history["b"][0] == (1, 2.0) and math.isnan(history["b"][1][1])


def test_an_unchanged_finding_is_written_once_and_a_changed_one_again(tmp_path):
    class Repeats:
        name = "repeats"
        record_types = (EvalRecord,)
        script = [
            ("info", "flat for 4 evaluations at 0.512"),
            ("info", "flat for 4 evaluations at 0.512"),  # identical: no line
            ("info", "flat for 4 evaluations at 0.513"),  # a number moved within noise: no line
            ("info", "flat for 9 evaluations at 0.512"),  # a number that matters, the step doubled: a line
            ("warning", "flat for 9 evaluations at 0.512"),  # severity: a line
            ("warning", "flat for 9 evaluations at 0.512"),
            ("warning", "flat for 11 evaluations at 0.512"),  # numbers moved, step 6 < 2 x 4: not yet
            ("warning", "flat for 12 evaluations at 0.512"),  # ... nor at 7; the latest comes at the end
            ("warning", "flat for 12 evaluations, and still at 0.512"),  # other words: a line at once
            ("warning", "flat for 19 evaluations, and still at 0.512"),  # written at close
        ]

        def update(self, record):
            severity, message = self.script[record.epoch]
            return Finding(code="FW-PLATEAU", severity=severity, step=record.step, epoch=record.epoch, message=message)

    monitor = Monitor(detectors=[Repeats()], sinks=[JsonlSink(tmp_path)])
    for e in range(len(Repeats.script)):
        monitor.evaluation(EvalRecord(step=e, epoch=e, val={"loss": 1.0}))
    assert monitor.findings[0].step == 9  # the in-memory state is always the latest
    monitor.close()
    lines = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert [(x["event"], x["epoch"], x["severity"]) for x in lines] == [
        ("new", 0, "info"),
        ("update", 3, "info"),
        ("new", 4, "warning"),
        ("update", 8, "warning"),
        ("update", 9, "warning"),
    ]


def _monitor_script(directory: Path, *, limit: int | None) -> str:
    """A child process: a file-size limit (``RLIMIT_FSIZE``) that the history reaches before the findings do."""
    return textwrap.dedent(
        f"""
        import resource, signal, warnings
        from fitwatch.detect.records import EvalRecord
        from fitwatch.findings import Finding
        from fitwatch.monitor import Monitor
        from fitwatch.sinks.jsonl import JsonlSink

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        if {limit!r} is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, ({limit!r}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        CODES = ["FW-PLATEAU", "FW-OVERFIT", "FW-GAP-WIDENING", "FW-CLASS-COLLAPSE", "FW-CALIBRATION",
                 "FW-DIVERGENCE"]

        class Script:
            name = "script"
            record_types = (EvalRecord,)

            def update(self, record):
                if record.epoch % 20 == 19:
                    code = CODES[record.epoch // 20]
                    return Finding(code=code, severity="info", step=record.step, epoch=record.epoch, message=code)

        monitor = Monitor(detectors=[Script()], sinks=[JsonlSink({str(directory)!r})])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for e in range(120):
                monitor.log({{f"per_class/f1/class_{{i}}/val": 0.5 + e * 1e-3 for i in range(50)}}, e)
                monitor.evaluation(EvalRecord(step=e, epoch=e, val={{"loss": 1.0}}, train={{"loss": 0.5}}))
            monitor.close()
        for w in caught:
            print("WARNING", w.message)
        """
    )


def test_a_history_past_the_file_size_limit_stops_alone_and_findings_go_on(tmp_path):
    """The history outgrows a 64 KB file-size limit mid-run: one warning naming the file; every finding of the
    run is still in findings.jsonl; no partial line and no ``.tmp`` file is left."""
    run = subprocess.run(
        [sys.executable, "-c", _monitor_script(tmp_path, limit=64 * 1024)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 1 and "history.jsonl" in warned[0] and "File too large" in warned[0], warned
    codes = [json.loads(line)["code"] for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert len(set(codes)) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["findings.jsonl", "history.jsonl"]
    text = (tmp_path / "history.jsonl").read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())  # whole lines only


def test_a_nearly_full_disk_stops_the_scalars_once_with_the_path_and_the_free_space(tmp_path, monkeypatch):
    free = {"bytes": 10 * 2**30}
    monkeypatch.setattr(
        sink_files.shutil, "disk_usage", lambda path: sink_files.shutil._ntuple_diskusage(20 * 2**30, 0, free["bytes"])
    )
    sink = JsonlSink(tmp_path)
    monitor = Monitor(detectors=[], sinks=[sink])
    _evaluate(monitor, 0)
    size = (tmp_path / "history.jsonl").stat().st_size
    free["bytes"] = 12 * 2**20
    with pytest.warns(FitWatchRuntimeWarning) as caught:
        for e in range(1, 5):
            _evaluate(monitor, e)
        monitor.report(Finding(code="FW-PLATEAU", severity=Severity.INFO, step=50, epoch=4, message="flat"))
        monitor.close()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "12.0 MB is free" in message and str(tmp_path) in message and "findings are still written" in message
    assert (tmp_path / "history.jsonl").stat().st_size == size  # nothing more
    assert not (tmp_path / "history.json").exists()
    assert json.loads((tmp_path / "findings.jsonl").read_text())["code"] == "FW-PLATEAU"
    assert len(monitor.history[TAGS[0]]) == 5  # in memory, everything


def test_a_whole_file_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    target.write_text("old")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sink_files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        sink_files.write_atomic(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_an_append_that_fails_half_way_is_cut_back_to_whole_lines(tmp_path):
    script = textwrap.dedent(
        f"""
        import resource, signal
        from fitwatch.sinks.files import append_text
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        path = {str(tmp_path / "log.jsonl")!r}
        append_text(path, "a" * 99 + "\\n")
        resource.setrlimit(resource.RLIMIT_FSIZE, (150, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            append_text(path, "b" * 99 + "\\n")
        except OSError as err:
            print("failed", err.errno)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert run.stdout.strip() == "failed 27", run.stderr  # EFBIG
    assert (tmp_path / "log.jsonl").read_text() == "a" * 99 + "\n"


def test_low_disk_threshold_is_fifty_megabytes_or_one_percent_up_to_a_gigabyte():
    assert sink_files.low_disk_threshold(2**30) == 50 * 2**20
    assert sink_files.low_disk_threshold(50 * 2**30) == int(50 * 2**30 * 0.01)
    assert sink_files.low_disk_threshold(2**42) == 2**30


def test_no_warning_on_a_healthy_run(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor = Monitor(detectors=[], sinks=[JsonlSink(tmp_path)])
        for e in range(3):
            _evaluate(monitor, e)
        monitor.close()
