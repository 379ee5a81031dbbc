"""``fitwatch diff RUN_A RUN_B``: fingerprint changes next to the change in final metrics."""

from __future__ import annotations

import json

import pytest

from fitwatch.cli import EXIT_OK, EXIT_USAGE, main
from fitwatch.data import diff_fingerprints, run_fingerprint, write_fingerprint
from fitwatch.report.compare import diff_runs
from fitwatch.report.events import ReportInputError
from fitwatch.report.schema import DIFF_SCHEMA

from .events import write_scalars
from .schema_check import errors


@pytest.fixture
def two_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fingerprint_a = run_fingerprint(
        train_samples=["a cat", "a dog"], val_samples=["a cow"], extra={"lr": 3e-5}
    )
    fingerprint_b = run_fingerprint(
        train_samples=["a cat", "a frog"], val_samples=["a cow"], extra={"lr": 1e-5}
    )
    fingerprint_b["versions"]["torch"] = "9.9.9"  # as if retrained after an upgrade
    write_fingerprint(a, fingerprint_a)
    write_fingerprint(b, fingerprint_b)
    write_scalars(
        a,
        {
            "eval/loss": [(10, 0.70), (20, 0.50)],
            "eval/accuracy": [(10, 0.80), (20, 0.875)],
            "eval/ece": [(20, 0.05)],
        },
    )
    write_scalars(b, {"eval/loss": [(10, 0.75), (20, 0.625), (30, 0.6)], "eval/accuracy": [(30, 0.75)]})
    return a, b, diff_fingerprints(fingerprint_a, fingerprint_b)


def test_changes_and_final_metrics(two_runs):
    a, b, expected = two_runs
    diff = diff_runs(a, b)
    assert [str(c) for c in diff.changes] == [str(c) for c in expected]
    assert {c.key for c in diff.changes} >= {"versions.torch", "data.train.hash", "extra.lr"}
    # ECE only in A: not compared. Final = last logged point; values are float32 on disk.
    assert [(m.role, m.a_step, m.b_step) for m in diff.metrics] == [
        ("val_loss", 20, 30),
        ("val_accuracy", 20, 30),
    ]
    assert [m.change for m in diff.metrics] == pytest.approx([0.6 - 0.5, 0.75 - 0.875])


def test_cli_prints_both_tables(two_runs, capsys):
    a, b, _ = two_runs
    assert main(["diff", str(a), str(b)]) == EXIT_OK
    out = capsys.readouterr().out
    for text in (
        "What changed",
        "versions.torch",
        "9.9.9",
        "extra.lr",
        "3e-05",
        "1e-05",
        "Final metrics",
        "validation loss",
        "+0.1",
        "validation accuracy",
        "-0.125",
    ):
        assert text in out, text


def test_cli_json_validates(two_runs, capsys):
    a, b, expected = two_runs
    assert main(["diff", str(a), str(b), "--json"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert errors(document, DIFF_SCHEMA) == []
    assert [c["key"] for c in document["changes"]] == [c.key for c in expected]
    assert document["metrics"][0]["change"] == pytest.approx(0.1)


def test_a_run_without_a_fingerprint_says_how_to_get_one(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    write_fingerprint(tmp_path / "b")
    with pytest.raises(
        ReportInputError,
        match=r"RUN_A .* has no fingerprint.json; write one at fit start with "
        r"fitwatch.data.write_fingerprint\(log_dir, fitwatch.data.run_fingerprint",
    ):
        diff_runs(tmp_path / "a", tmp_path / "b")
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b")]) == EXIT_USAGE
    assert "fitwatch diff: error: RUN_A" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "b"), str(tmp_path / "missing")]) == EXIT_USAGE
    assert (
        f"fitwatch diff: error: RUN_B {tmp_path / 'missing'}: no such directory." in capsys.readouterr().err
    )


def test_runs_without_event_files_compare_fingerprints_only(tmp_path):
    write_fingerprint(tmp_path / "a", run_fingerprint(extra={"seed": 1}))
    write_fingerprint(tmp_path / "b", run_fingerprint(extra={"seed": 2}))
    diff = diff_runs(tmp_path / "a", tmp_path / "b")
    assert [str(c) for c in diff.changes] == ["extra.seed: 1 -> 2"] and diff.metrics == []
    assert all("no event files" in note for note in diff.notes) and len(diff.notes) == 2
