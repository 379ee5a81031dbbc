"""Each finding reaches the console once (the warning, or the log record when it is not warned), and a
warning names the user's line (``trainer.fit``), not fitwatch's frames."""

from __future__ import annotations

import logging
import re
import sys
import warnings

import pytest

from fitwatch.findings import Finding, Severity
from fitwatch.sinks.warn import WarningSink
from fitwatch.warnings import FitWatchWarning


def _console(capsys, caplog) -> str:
    """What a terminal shows: stderr (warnings) plus the log records logging prints by default (WARNING and
    above, through its last-resort handler when no handler is configured)."""
    records = [r.getMessage() for r in caplog.records if r.name.startswith("fitwatch") and r.levelno >= logging.WARNING]
    return capsys.readouterr().err + "\n".join(records)


def test_a_real_fit_shows_each_finding_once_at_the_users_line(tmp_path, capsys, caplog):
    from fitwatch.lightning import FitWatch

    from ..cli.runs import lightning_run

    caplog.set_level(logging.DEBUG, logger="fitwatch")
    callback = FitWatch()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        # Print as a plain interpreter does (pytest otherwise collects warnings for its summary).
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        lightning_run(tmp_path, overfit=True, callbacks=[callback])  # noqa: the warnings' expected location
    console = _console(capsys, caplog)
    # Every time the sink showed a cause (new, or escalated back to a warning), its message reached the
    # console exactly once: as the warning, with the log record at DEBUG.
    warned = [r.getMessage() for r in caplog.records if r.name == "fitwatch" and r.funcName == "finding"
              and r.levelno == logging.DEBUG and r.getMessage().startswith("[FW-")]
    assert any(m.startswith("[FW-OVERFIT]") for m in warned)
    for message in warned:
        assert console.count(message) == 1, message
    # INFO findings are logged at INFO: off a default console, as before.
    for record in caplog.records:
        if record.name == "fitwatch" and record.funcName == "finding" and record.levelno == logging.INFO:
            assert record.getMessage() not in console
    # The warning names the line that called trainer.fit: the test helper, not a fitwatch or Lightning file.
    located = re.findall(r"^(.*?):\d+: OverfittingWarning: \[FW-OVERFIT\]", console, flags=re.M)
    assert located and all(path.endswith("tests/cli/runs.py") for path in located), located
    # The record is still there for log files, at DEBUG.
    assert any("[FW-OVERFIT]" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


def _finding(severity=Severity.WARNING) -> Finding:
    return Finding(code="FW-PLATEAU", severity=severity, step=10, epoch=1, message="validation loss is flat")


def test_warned_finding_is_logged_at_debug_only(caplog):
    caplog.set_level(logging.DEBUG, logger="fitwatch")
    with pytest.warns(FitWatchWarning, match="FW-PLATEAU") as record:
        WarningSink().finding(_finding(), new=True)
    assert len(record) == 1 and record[0].filename == __file__
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


@pytest.mark.parametrize(
    "sink, filters",
    [
        (WarningSink(warn=False), ()),  # warnings off: logging shows it
        (WarningSink(), ("ignore", FitWatchWarning)),  # the user silenced the warnings: logging shows it
        (WarningSink(min_severity=Severity.CRITICAL), ()),  # below the warning threshold
    ],
)
def test_an_unwarned_finding_is_logged_at_its_level(sink, filters, caplog, recwarn):
    caplog.set_level(logging.DEBUG, logger="fitwatch")
    with warnings.catch_warnings():
        if filters:
            warnings.simplefilter(*filters)
        sink.finding(_finding(), new=True)
    assert not [w for w in recwarn if issubclass(w.category, FitWatchWarning)]
    assert [(r.levelno, "[FW-PLATEAU]" in r.getMessage()) for r in caplog.records] == [(logging.WARNING, True)]


def test_an_update_is_never_on_the_console(caplog, recwarn):
    caplog.set_level(logging.DEBUG, logger="fitwatch")
    WarningSink().finding(_finding(), new=False)
    assert not recwarn.list and [r.levelno for r in caplog.records] == [logging.DEBUG]
