"""The zoo's table, summary and command line: runs as plain dicts, one real quick run through ``run_one``."""

from __future__ import annotations

import json

import pytest

from benchmarks.zoo import main, run_one
from benchmarks.zoo.anchors import anchors
from benchmarks.zoo.report import END_MARKER, START_MARKER, render, summarize, write_between_markers


def run(name, *, healthy=False, detected=True, delay=0, raised=None, false_alarms=(), expected=(("FW-X",),)):
    raised = raised if raised is not None else {"FW-X": {"severity": "warning", "evaluation": 3}}
    return {
        "scenario": name,
        "seed": 0,
        "healthy": healthy,
        "expected": [] if healthy else [list(g) for g in expected],
        "expected_text": "-" if healthy else " + ".join("|".join(g) for g in expected),
        "detected": detected,
        "detection": None if healthy or not detected else 3,
        "delay": None if healthy or not detected else delay,
        "onset": None if healthy else 3 - delay,
        "raised": raised,
        "false_alarms": list(false_alarms),
        "anchors": {"lightning_es_p3": 5, "hf_es_p1": None},
        "wall_s": 1.5,
    }


def test_summary_counts_detections_delays_and_false_alarms():
    runs = [
        run("a", delay=0),
        run("b", delay=4),
        run("c", detected=False, raised={}),
        run("d", delay=2, false_alarms=["FW-PLATEAU"]),
        run("h", healthy=True, raised={"FW-GAP-WIDENING": {"severity": "info"}}),
        run(
            "g",
            healthy=True,
            raised={"FW-CALIBRATION": {"severity": "warning"}},
            false_alarms=["FW-CALIBRATION"],
        ),
    ]
    s = summarize(runs)
    assert (s["fault_runs"], s["detected"], s["missed"]) == (4, 3, ["c/0"])
    assert s["median_delay"] == 2 and s["delays"] == [0, 4, 2]
    assert (s["healthy_runs"], s["healthy_with_false_alarm"]) == (2, 1)
    assert s["false_alarms"] == {"g/0": ["FW-CALIBRATION"]} and s["collateral"] == {"d/0": ["FW-PLATEAU"]}
    assert s["wall_s"] == 9.0


def test_table_has_one_row_per_run_with_expected_codes_in_bold_and_anchor_offsets():
    runs = [run("overfit", delay=2), run("healthy-x", healthy=True, raised={})]
    table = render(runs, summarize(runs))
    lines = table.splitlines()
    assert lines[0].startswith(
        "| scenario | seed | expected | codes raised (severity) | onset | detected at (delay) |"
    )
    rows = [line for line in lines[2:] if line.startswith("| ")]
    assert len(rows) == 2
    assert "**FW-X (W)**" in rows[0] and "| 3 (+2) |" in rows[0] and "| 5 (+4) |" in rows[0]
    assert rows[1].split(" | ")[3] == "-" and "| 5 |" in rows[1]  # healthy: absolute anchor indices
    assert "**1 of 1**" in table and "median detection **2 evaluations**" in table and "**0 of 1**" in table


def test_write_between_markers_keeps_the_rest_of_the_page(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n<!-- overhead:start -->\nkeep me\n<!-- overhead:end -->\n")
    write_between_markers(page, "first")
    write_between_markers(page, "second")
    text = page.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count(START_MARKER) == 1 and text.count(END_MARKER) == 1
    fresh = tmp_path / "docs" / "new.md"
    write_between_markers(fresh, "table")
    assert (
        fresh.read_text().startswith("# Benchmarks")
        and f"{START_MARKER}\ntable\n{END_MARKER}" in fresh.read_text()
    )


def test_run_one_adds_the_anchors_to_a_real_quick_run():
    out = run_one("missing-params-wine", 0, quick=True)
    assert out["scenario"] == "missing-params-wine" and out["detected"]
    val = [x for x in out["series"]["val_loss"]]
    assert out["anchors"] == anchors(val, out["series"]["train_loss"])
    json.dumps(out, allow_nan=False)  # what results.json holds


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "healthy-mnist"], "Unknown scenario(s) ['healthy-mnist']"),
        (["--seeds", "one"], "Expected --seeds to be comma-separated ints, but got 'one'."),
        (["--jobs", "0"], "Expected --jobs to be a positive int, but got 0."),
    ],
)
def test_command_line_rejects_bad_arguments_before_training(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_doctests_pass():
    import doctest

    from benchmarks.zoo import report

    assert doctest.testmod(report).failed == 0


def test_render_rewrites_the_docs_from_saved_results_without_training(tmp_path, monkeypatch, capsys):
    from benchmarks import zoo

    runs = [run("overfit", delay=2), run("healthy-x", healthy=True, raised={})]
    (tmp_path / "results.json").write_text(json.dumps({"summary": summarize(runs), "runs": runs}))
    monkeypatch.setattr(zoo, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(zoo, "DOCS", tmp_path / "benchmarks.md")
    assert main(["--render"]) == 0
    assert "| overfit | 0 |" in capsys.readouterr().out
    assert "| healthy-x | 0 |" in (tmp_path / "benchmarks.md").read_text()


def check(name, *, healthy=False, detected=True, named="remove_stop_words"):
    return {
        "scenario": name,
        "seed": 0,
        "healthy": healthy,
        "expected": [] if healthy else ["FW-PIPELINE-DRIFT"],
        "raised": [] if healthy else ["FW-PIPELINE-DRIFT"],
        "detected": detected,
        "records": 200,
        "differ": 0 if healthy else 163,
        "named_stage": None if healthy else named,
        "moved": None if healthy else "remove_stop_words",
        "report_head": ""
        if healthy
        else "Training and inference pipelines differ on 163 of 200 golden records.",
        "report_example": "" if healthy else "record 0: 'x'",
        "wall_s": 0.1,
    }


def test_data_facts_and_pipeline_checks_are_rendered_under_the_table():
    runs = [
        run("overfit", delay=2),
        {
            **run("duplicates", delay=0),
            "data": {"duplicate_fraction": 0.3, "val_accuracy": 0.9, "val_clean_accuracy": 0.86},
        },
    ]
    checks = [
        check("pipeline-same", healthy=True),
        check("pipeline-order"),
        check("pipeline-bad", detected=False, named="lowercase"),
    ]
    s = summarize(runs, checks)
    assert (
        s["pipeline_faults"],
        s["pipeline_detected"],
        s["pipeline_controls"],
        s["pipeline_false_alarms"],
    ) == (
        2,
        1,
        1,
        0,
    )
    table = render(runs, s, checks)
    assert (
        "| duplicates | 0 | 30.0% of validation has a copy in training; final validation accuracy 0.900, "
        in table
    )
    assert "(+4.0 points of inflation) |" in table
    assert (
        "| pipeline-order | 0 | **FW-PIPELINE-DRIFT** | FW-PIPELINE-DRIFT | 163 of 200 | remove_stop_words "
        "(the moved stage) | 0.10 |" in table
    )
    assert "lowercase (expected remove_stop_words)" in table
    assert "Swapped pipelines reported with the moved stage named: **1 of 2**" in table
    assert (
        "```\nTraining and inference pipelines differ on 163 of 200 golden records.\n\nrecord 0: 'x'\n```"
        in table
    )


def test_exit_status_counts_an_unreported_pipeline_swap(tmp_path, monkeypatch):
    from benchmarks import zoo

    runs = [run("overfit", delay=2)]
    checks = [check("pipeline-bad", detected=False)]
    (tmp_path / "results.json").write_text(
        json.dumps({"summary": summarize(runs, checks), "runs": runs, "checks": checks})
    )
    monkeypatch.setattr(zoo, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(zoo, "DOCS", tmp_path / "benchmarks.md")
    assert main(["--render"]) == 1
    assert "pipeline-bad" in (tmp_path / "benchmarks.md").read_text()


def test_only_runs_pipeline_checks_without_training(capsys):
    assert main(["--only", "pipeline-order-tickets", "--seeds", "0", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "| pipeline-order-tickets | 0 | **FW-PIPELINE-DRIFT** | FW-PIPELINE-DRIFT |" in out
    assert "remove_stop_words (the moved stage)" in out


def test_overfitting_runs_are_set_against_the_anchors():
    over = [
        {**run("o1", delay=2), "onset_rule": "min_val_loss", "anchors": {"lightning_es_p3": 4, "hf_es_p1": 2}},
        {**run("o2", delay=4), "onset_rule": "min_val_nll", "anchors": {"lightning_es_p3": 4, "hf_es_p1": None}},
        {**run("other", delay=0), "onset_rule": "fit_start"},
    ]
    healthy = [{**run("h", healthy=True, raised={}), "anchors": {"lightning_es_p3": None, "hf_es_p1": 3}}]
    s = summarize(over + healthy)
    # Onsets at 3 - delay: 1 and -1; ES p3 at 4 is +3 and +5 from them, HF p1 at 2 is +1.
    assert (s["overfit_runs"], s["overfit_median_delay"]) == (2, 3)
    assert s["anchor_median_delay"]["lightning_es_p3"] == 4 and s["anchor_median_delay"]["hf_es_p1"] == 1
    assert s["anchor_healthy_stops"]["hf_es_p1"] == 1 and s["anchor_healthy_stops"]["lightning_es_p3"] == 0
    line = next(x for x in render(over + healthy, s).splitlines() if x.startswith("- Overfitting runs"))
    assert "FitWatch's median delay **+3 evaluations**" in line and "ES p3 +4, HF p1 +1" in line
    assert "would have stopped: ES p3 0, HF p1 1," in line and "FitWatch warned on 0." in line
