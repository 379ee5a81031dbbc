"""``fitwatch report`` and ``diff`` on bad input: never a traceback, every malformed line skipped and counted,
paths that are not UTF-8 read and shown, and one exit status per kind of outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fitwatch import cli
from fitwatch.cli import EXIT_INTERNAL, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, main

from .events import write_scalars

VAL = [(10 * i, 0.3 + 0.7 * 0.8**i if i <= 8 else 0.35 * 1.06 ** (i - 8)) for i in range(1, 21)]
TRAIN = [(2 * i, 0.97**i) for i in range(1, 101)]
GOOD = {"code": "FW-PLATEAU", "severity": "info", "step": 30, "epoch": 1, "message": "flat", "subject": ""}


def _run(directory: Path) -> Path:
    write_scalars(directory, {"eval/loss": VAL, "train/loss": TRAIN})
    return directory


def test_the_exit_statuses_are_distinct():
    statuses = [cli.EXIT_OK, cli.EXIT_FINDINGS, cli.EXIT_USAGE, cli.EXIT_UNREADABLE, cli.EXIT_INTERNAL]
    assert statuses == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "bad",
    [
        dict(GOOD, subject=["a", "b"]),
        '{"code": "FW-PLATEAU", "severity": "info", "step": Infinity, "epoch": 1, "message": "m"}',
        dict(GOOD, message=None),
        dict(GOOD, step=1e400),
        dict(GOOD, evidence=[1, 2]),
        dict(GOOD, code="FW-NOPE"),
        [1, 2],
        "{not json",
    ],
    ids=["subject-list", "step-infinity", "message-null", "step-overflow", "evidence-list", "unknown-code", "a-list", "not-json"],
)
def test_each_malformed_findings_line_is_skipped_and_counted(tmp_path, capsys, bad):
    run = _run(tmp_path / "run")
    lines = [json.dumps(GOOD), bad if isinstance(bad, str) else json.dumps(bad), json.dumps(dict(GOOD, step=40))]
    (run / "findings.jsonl").write_text("\n".join(lines) + "\n")
    status = main(["report", str(run), "--json"])
    captured = capsys.readouterr()
    assert status == EXIT_UNREADABLE and "Traceback" not in captured.err
    (doc_run,) = json.loads(captured.out)["runs"]
    assert doc_run["errors"][0]["error"] == "skipped 1 malformed line(s) of 3 (line 2); the rest was read"
    live = [f for f in doc_run["findings"] if "live" in f["sources"]]
    assert [(f["code"], f["step"], f["first_step"]) for f in live] == [("FW-PLATEAU", 40, 30)]  # the good lines
    assert main(["report", str(run)]) == EXIT_UNREADABLE  # the tables too
    assert "Traceback" not in capsys.readouterr().err


def test_invalid_yaml_to_config_names_the_file_and_the_line(tmp_path, capsys):
    run = _run(tmp_path / "run")
    config = tmp_path / "fw.yaml"
    config.write_text("detectors:\n  plateau: {patience: [\n")
    assert main(["report", str(run), "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"fitwatch report: error: --config {config}: ") and "line 3" in err
    assert "<unicode string>" not in err and "Traceback" not in err


def test_a_fingerprint_that_is_a_list_is_unreadable_input(tmp_path, capsys):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    (a / "fingerprint.json").write_text("[1, 2]")
    (b / "fingerprint.json").write_text("{}")
    assert main(["diff", str(a), str(b)]) == EXIT_UNREADABLE
    err = capsys.readouterr().err
    assert "fingerprint.json holds a JSON list" in err and "Traceback" not in err
    (a / "fingerprint.json").write_text("{not json")
    assert main(["diff", str(a), str(b)]) == EXIT_UNREADABLE
    (a / "fingerprint.json").unlink()
    assert main(["diff", str(a), str(b)]) == EXIT_USAGE  # missing: how to write one is a usage matter


def _undecodable(tmp_path: Path) -> Path:
    """A run directory whose name is not valid UTF-8 (TensorBoard cannot write there: the file is moved in)."""
    staging = _run(tmp_path / "staging")
    target = os.fsencode(str(tmp_path / "logs")) + b"/bad\xff"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(os.fsencode(str(staging)), target)
    return Path(os.fsdecode(target))


def test_a_directory_name_that_is_not_utf8_is_read_and_shown_escaped(tmp_path, capsys):
    bad = _undecodable(tmp_path)
    _run(tmp_path / "logs" / "good")
    (bad / "findings.jsonl").write_text(json.dumps(GOOD) + "\n")
    assert main(["report", str(tmp_path / "logs"), "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    runs = {r["run"]: r for r in json.loads(captured.out)["runs"]}
    (bad_name,) = [name for name in runs if name.endswith("bad\\xff")]
    assert runs[bad_name]["evaluations"] == 20 and runs[bad_name]["live_findings"] == "findings.jsonl"
    assert "FW-OVERFIT" in {f["code"] for f in runs[bad_name]["findings"]}
    html = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "logs"), "--html", str(html)]) == EXIT_OK
    assert "bad\\xff" in capsys.readouterr().out and "bad\\xff" in html.read_text()


def test_an_internal_error_is_one_line_and_the_traceback_comes_with_verbose(tmp_path, capsys, monkeypatch):
    run = _run(tmp_path / "run")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr("fitwatch.report.build.build_report", broken)
    assert main(["report", str(run)]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err == "fitwatch report: internal error: RuntimeError: a bug (run again with -v for the traceback)\n"
    assert main(["report", str(run), "-v"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().endswith("RuntimeError: a bug")


def test_the_console_script_on_bad_input_ends_without_a_traceback(tmp_path):
    run = _run(tmp_path / "run")
    (run / "findings.jsonl").write_text('{"code": "FW-PLATEAU", "step": Infinity}\n' + json.dumps(GOOD) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "fitwatch.cli", "report", str(run)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_UNREADABLE and "Traceback" not in result.stderr
    assert "skipped 1 malformed line(s) of 2 (line 1)" in result.stderr
