"""The ``fitwatch`` command: exit statuses, clear errors (never a traceback), JSON and HTML, ``demo``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

from fitwatch.cli import EXIT_FINDINGS, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, main
from fitwatch.report.roles import ROLES
from fitwatch.report.schema import REPORT_SCHEMA

from .events import truncate, write_scalars
from .schema_check import errors


def _overfitting(directory: Path, *, order: int | None = None, prefix: str = "") -> Path:
    """HF Trainer tag names: validation loss bottoms out at step 80 and climbs 6% per evaluation after."""
    val = [(10 * i, 0.3 + 0.7 * 0.8**i if i <= 8 else 0.35 * 1.06 ** (i - 8)) for i in range(1, 21)]
    train = [(2 * i, 1.0 * 0.97**i) for i in range(1, 101)]
    lr = [(2 * i, 3e-4) for i in range(1, 101)]
    return write_scalars(
        directory,
        {f"{prefix}eval/loss": val, f"{prefix}train/loss": train, f"{prefix}train/learning_rate": lr},
        order=order,
    )


def _healthy(directory: Path) -> Path:
    val = [(10 * i, math.exp(-i / 6) + 0.3) for i in range(1, 21)]
    train = [(2 * i, math.exp(-i / 30) + 0.25) for i in range(1, 101)]
    return write_scalars(directory, {"eval/loss": val, "train/loss": train})


def test_fail_on_gates_by_severity(tmp_path, capsys):
    _overfitting(tmp_path / "bad")
    _healthy(tmp_path / "good")
    assert main(["report", str(tmp_path), "--fail-on", "warning"]) == EXIT_FINDINGS
    captured = capsys.readouterr()
    assert "findings at or above 'warning': exit status 1" in captured.err
    assert main(["report", str(tmp_path), "--fail-on", "critical"]) == EXIT_OK
    assert main(["report", str(tmp_path / "good"), "--fail-on", "info"]) == EXIT_OK
    assert main(["report", str(tmp_path)]) == EXIT_OK


def test_json_document_validates_and_lists_both_runs(tmp_path, capsys):
    _overfitting(tmp_path / "bad")
    _healthy(tmp_path / "good")
    assert main(["report", str(tmp_path), "--json", "--fail-on", "warning"]) == EXIT_FINDINGS
    document = json.loads(capsys.readouterr().out)  # stdout holds the document alone
    assert errors(document, REPORT_SCHEMA) == []
    runs = {Path(r["run"]).name: r for r in document["runs"]}
    assert set(runs) == {"bad", "good"}
    assert "FW-OVERFIT" in {f["code"] for f in runs["bad"]["findings"]} and runs["good"]["findings"] == []
    assert runs["bad"]["evaluations"] == 20 and runs["bad"]["step_records"] == 100


def test_the_schema_check_rejects_what_the_schema_forbids(tmp_path, capsys):
    _overfitting(tmp_path)
    main(["report", str(tmp_path), "--json"])
    document = json.loads(capsys.readouterr().out)
    finding = document["runs"][0]["findings"][0]
    broken = json.loads(json.dumps(document))
    broken["runs"][0]["findings"][0]["severity"] = "fatal"
    del broken["runs"][0]["errors"]
    broken["extra"] = 1
    found = errors(broken, REPORT_SCHEMA)
    assert any("'fatal' is not one of" in e for e in found)
    assert any("missing 'errors'" in e for e in found) and any("unexpected key 'extra'" in e for e in found)
    assert (
        finding["code"]
        in REPORT_SCHEMA["properties"]["runs"]["items"]["properties"]["findings"]["items"]["properties"][
            "code"
        ]["enum"]
    )


def test_html_page_parses_with_one_image_per_curve_and_escapes_text(tmp_path, capsys):
    _overfitting(tmp_path / "<run & co>", prefix="")
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "--html", str(out)]) == EXIT_OK
    assert f"wrote {out}" in capsys.readouterr().err

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.figures, self.text = 0, [], []

        def handle_starttag(self, tag, attrs):
            self.images += tag == "img"
            if tag == "figure":
                self.figures.append(dict(attrs)["data-curve"])

        def handle_data(self, data):
            self.text.append(data)

    page = Page()
    page.feed(out.read_text())
    assert page.figures == ["loss", "gap", "lr"] and page.images == 3
    assert any("<run & co>" in t for t in page.text)  # escaped in the source, restored by the parser
    assert "<run & co>" not in out.read_text()


def test_truncated_event_file_reports_what_was_read_and_names_the_file(tmp_path, capsys):
    path = _overfitting(tmp_path)
    truncate(path, 5)
    status = main(["report", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    (run,) = document["runs"]
    assert status == EXIT_UNREADABLE
    assert [e["file"] for e in run["errors"]] == [str(path)]
    assert "truncated" in run["errors"][0]["error"]
    assert "FW-OVERFIT" in {f["code"] for f in run["findings"]}  # what was read is still reported
    assert f"could not read {path}" in captured.err and "Traceback" not in captured.err
    assert main(["report", str(tmp_path), "--fail-on", "warning"]) == EXIT_FINDINGS  # 1 wins over 3


def test_missing_path_empty_directory_and_bad_files_are_usage_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == EXIT_USAGE
    assert "fitwatch report: error: " in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == EXIT_USAGE
    assert "no TensorBoard event files" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("x")
    assert main(["report", str(tmp_path / "x.txt")]) == EXIT_USAGE
    assert "not a TensorBoard event file" in capsys.readouterr().err


def test_map_errors(tmp_path, capsys):
    _overfitting(tmp_path)
    assert main(["report", str(tmp_path), "--map", "eval/loss"]) == EXIT_USAGE
    assert "Expected `--map` to be TAG=ROLE, but got 'eval/loss'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--map", "eval/loss=validation_loss"]) == EXIT_USAGE
    assert "but got 'validation_loss'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--map", "eval/los=val_loss"]) == EXIT_USAGE
    assert (
        "--map names the tag 'eval/los', which no run has; did you mean 'eval/loss' or 'train/loss'?"
        in capsys.readouterr().err
    )
    assert (
        main(["report", str(tmp_path), "--map", "eval/loss=val_loss", "--map", "eval/loss=val_nll"])
        == EXIT_USAGE
    )
    assert "--map gives the tag 'eval/loss' more than one role" in capsys.readouterr().err


def test_map_gives_unknown_tags_a_role(tmp_path, capsys):
    val = [(10 * i, 0.3 + 0.7 * 0.8**i if i <= 8 else 0.35 * 1.06 ** (i - 8)) for i in range(1, 21)]
    train = [(2 * i, 0.97**i) for i in range(1, 101)]
    write_scalars(tmp_path, {"metrics/holdout_xent": val, "metrics/fit_xent": train})
    main(["report", str(tmp_path), "--json"])
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["findings"] == [] and run["unmapped_tags"] == ["metrics/fit_xent", "metrics/holdout_xent"]
    assert any("--map TAG=ROLE" in note for note in run["notes"])
    argv = [
        "report",
        str(tmp_path),
        "--json",
        "--map",
        "metrics/holdout_xent=val_loss",
        "--map",
        "metrics/fit_xent=train_loss",
    ]
    main(argv)
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert "FW-OVERFIT" in {f["code"] for f in run["findings"]} and run["unmapped_tags"] == []


def test_config_sets_detector_thresholds(tmp_path, capsys):
    _overfitting(tmp_path / "run")
    config = tmp_path / "fw.yaml"
    config.write_text("detectors:\n  overfitting:\n    enabled: false\n  gap:\n    enabled: false\n")
    main(["report", str(tmp_path / "run"), "--json", "--config", str(config)])
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)["runs"][0]["findings"]}
    assert not codes & {"FW-OVERFIT", "FW-GAP-WIDENING"}
    config.write_text("detectors:\n  overfiting: {}\n")
    assert main(["report", str(tmp_path / "run"), "--config", str(config)]) == EXIT_USAGE
    assert "overfiting" in capsys.readouterr().err


def test_help_lists_every_role_and_the_exit_statuses(capsys):
    assert main(["report", "--help"]) == EXIT_OK
    text = capsys.readouterr().out
    assert all(role in text for role in ROLES)
    assert "exit status: 0 ok; 1 a finding at or above --fail-on; 2 usage error" in text
    assert main([]) == EXIT_USAGE and main(["report", "--fail-on", "fatal", "x"]) == EXIT_USAGE


def test_demo_is_dispatched_to_fitwatch_demo(monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "fitwatch.demo" else real_find_spec(name, *a),
    )
    assert main(["demo", "--quick"]) == EXIT_USAGE
    assert "fitwatch demo: error: this installation of fitwatch has no demo" in capsys.readouterr().err
    monkeypatch.undo()

    calls = []
    fake = types.ModuleType("fitwatch.demo")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fitwatch.demo", fake)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "fitwatch.demo" else real_find_spec(name, *a),
    )
    assert main(["demo", "--framework", "hf", "--quick"]) == EXIT_OK
    assert calls == [["--framework", "hf", "--quick"]]


def test_console_script_runs_without_a_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "fitwatch.cli", "report", str(tmp_path / "empty")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("fitwatch report: error: ") and "Traceback" not in result.stderr
