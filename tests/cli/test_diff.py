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
    assert [n for n in diff.notes if "no event files" in n] == diff.notes[:2] and len(diff.notes) == 3
    assert "training arguments" in diff.notes[2]  # hand-written fingerprints: say what is not compared


# ----------------------------------------------------------------------------- training arguments, search


def _training_fingerprint(epochs: int, lr: float = 1e-3) -> dict:
    """As the callbacks write it: the training arguments under ``extra.training``."""
    return run_fingerprint(
        train_samples=["a cat"],
        extra={"fitwatch_config": {"images": True}, "training": {"max_epochs": epochs, "lr": [lr], "seed": 0,
                                                                   "batch_size": 32, "precision": "32-true"}},
    )


def test_training_arguments_first_and_key_by_key(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write_fingerprint(a / "lightning_logs" / "version_0", _training_fingerprint(5))
    write_fingerprint(b / "lightning_logs" / "version_0", _training_fingerprint(15, lr=3e-4))
    diff = diff_runs(a, b)
    assert [str(c) for c in diff.training_changes] == ["training.lr: [0.001] -> [0.0003]",
                                                        "training.max_epochs: 5 -> 15"]
    assert diff.changes[: len(diff.training_changes)] == diff.training_changes  # training arguments first
    assert all(not c.key.startswith("extra.training") for c in diff.changes)
    assert any("lightning_logs/version_0/fingerprint.json" in n for n in diff.notes)  # says which file it read
    assert main(["diff", str(a), str(b)]) == EXIT_OK
    out = capsys.readouterr().out
    for text in ("training.max_epochs", "5", "15", "training.lr", "version_0/fingerprint.json"):
        assert text in out, text


def test_training_keyword_and_extra_training_compare_equal():
    by_keyword = run_fingerprint(training={"max_epochs": 5})
    by_extra = run_fingerprint(extra={"training": {"max_epochs": 5}})
    assert [c for c in diff_fingerprints(by_keyword, by_extra) if c.key.startswith("training")] == []


def test_newest_fingerprint_under_a_folder_is_used_and_named(tmp_path):
    import os

    from fitwatch.data.fingerprint import find_fingerprint

    old = write_fingerprint(tmp_path / "run" / "version_0", _training_fingerprint(5))
    new = write_fingerprint(tmp_path / "run" / "version_1", _training_fingerprint(7))
    os.utime(old, (1_000_000, 1_000_000))
    path, found = find_fingerprint(tmp_path / "run")
    assert path == new and found == [new, old]
    write_fingerprint(tmp_path / "other", _training_fingerprint(5))
    diff = diff_runs(tmp_path / "other", tmp_path / "run")
    assert [str(c) for c in diff.training_changes] == ["training.max_epochs: 5 -> 7"]
    assert any("newest of 2" in n for n in diff.notes)


def test_no_fingerprint_anywhere_below(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    write_fingerprint(tmp_path / "b")
    with pytest.raises(ReportInputError, match="none was found below it either"):
        diff_runs(tmp_path / "a", tmp_path / "b")
