"""``fitwatch report`` on the event files of real runs: plain HF Trainer, plain Lightning, and FitWatch."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from fitwatch.cli import EXIT_FINDINGS, EXIT_OK, main
from fitwatch.report.build import build_report, read_live_findings
from fitwatch.report.schema import REPORT_SCHEMA

from .runs import event_values, hf_run, lightning_run
from .schema_check import errors

#: Codes only the set-up audit raises (model and optimizer facts, never in event files): reported live only.
AUDIT_ONLY = {
    "FW-REG-EVAL-MODE",
    "FW-REG-NO-DROPOUT",
    "FW-REG-DECAY-ON-NORM",
    "FW-REG-NO-DECAY",
    "FW-REG-MISSING-PARAMS",
    "FW-REG-FROZEN-PARAMS",
    "FW-LR-NO-WARMUP",
}


class _Page(HTMLParser):
    """The figures of a report page: ``[(curve name, decoded image bytes)]``."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.images: list[bytes] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.figures.append(attrs["data-curve"])
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert attrs["src"].startswith(prefix)
            self.images.append(base64.b64decode(attrs["src"][len(prefix) :], validate=True))


def _page(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert len(page.images) == len(page.figures)  # one image per curve
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in page.images)
    return page


def _json_report(capsys, *argv):
    status = main(["report", *map(str, argv), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert errors(document, REPORT_SCHEMA) == []
    return status, document


@pytest.fixture(scope="module")
def hf_overfit(tmp_path_factory):
    return hf_run(tmp_path_factory.mktemp("hf_overfit"), overfit=True)


@pytest.fixture(scope="module")
def lightning_overfit(tmp_path_factory):
    return lightning_run(tmp_path_factory.mktemp("pl_overfit"), overfit=True)


def test_plain_hf_trainer_overfitting_run(hf_overfit, capsys, tmp_path):
    loss = event_values(hf_overfit, "eval/loss")
    best = int(loss.argmin())
    assert (
        loss[-1] > 1.5 * loss[best] and best < len(loss) - 5
    )  # the run does overfit, by the logs themselves
    status, document = _json_report(capsys, hf_overfit, "--fail-on", "warning", "--html", tmp_path / "r.html")
    (run,) = document["runs"]
    findings = {f["code"]: f for f in run["findings"]}
    assert {"FW-OVERFIT", "FW-GAP-WIDENING"} <= set(findings)
    assert all(f["sources"] == ["replay"] for f in run["findings"]) and run["live_findings"] is None
    assert findings["FW-OVERFIT"]["severity"] == "warning"
    eval_steps = [s for s, _ in _steps(hf_overfit, "eval/loss")]
    assert findings["FW-OVERFIT"]["first_step"] > eval_steps[best]  # flagged after the minimum, not before
    assert status == EXIT_FINDINGS and document["failed"] and document["fail_on"] == "warning"
    assert run["roles"]["val_loss"] == {"": "eval/loss"} and run["roles"]["train_loss"] == {"": "train/loss"}
    assert run["evaluations"] == 20 and run["unmapped_tags"] == []
    assert _page(tmp_path / "r.html").figures == ["loss", "accuracy", "gap", "lr"]


def _steps(run, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def test_plain_hf_trainer_healthy_run_passes_the_gate(tmp_path, capsys):
    run = hf_run(tmp_path, overfit=False)
    loss = event_values(run, "eval/loss")
    assert np.all(np.diff(loss) < 0)  # validation loss falls at every evaluation
    assert main(["report", str(run), "--fail-on", "warning"]) == EXIT_OK
    assert "no findings" in capsys.readouterr().out


def test_plain_lightning_overfitting_run(lightning_overfit, capsys):
    loss = event_values(lightning_overfit, "val_loss")
    assert loss[-1] > 1.4 * loss.min() and int(loss.argmin()) < len(loss) - 10
    status = main(["report", str(lightning_overfit), "--fail-on", "warning", "-v"])
    table = capsys.readouterr().out
    assert status == EXIT_FINDINGS
    for text in ("FW-OVERFIT", "FW-GAP-WIDENING", "warning", "replay", "val_loss=val_loss", "lr=lr-Adam"):
        assert text in table
    status, document = _json_report(capsys, lightning_overfit)
    assert status == EXIT_OK  # without --fail-on the gate is off
    (run,) = document["runs"]
    assert run["roles"]["val_accuracy"] == {"": "val_acc"} and run["roles"]["epoch"] == {"": "epoch"}
    assert run["evaluations"] == 40 and run["step_records"] == 160


def test_plain_lightning_healthy_run_passes_the_gate(tmp_path):
    run = lightning_run(tmp_path, overfit=False)
    assert np.all(np.diff(event_values(run, "val_loss")) < 0)
    assert main(["report", str(run), "--fail-on", "warning"]) == EXIT_OK


def _assert_replay_equals_live(cb, run):
    """Every finding the callback raised from the series in the event files comes out of the replay with the
    same code, subject, severity, steps (first and latest) and epochs; set-up audit findings stay live only."""
    live = {f.key: f for f in cb.findings if f.code not in AUDIT_ONLY}
    (report,) = build_report([run]).runs
    replayed = {f.key: f for f in report.replay.findings}
    assert set(replayed) == set(live)
    for key, finding in live.items():
        again = replayed[key]
        assert (again.severity, again.step, again.epoch) == (finding.severity, finding.step, finding.epoch), (
            key
        )
    _, first_live, bad = read_live_findings(run / "findings.jsonl")
    assert bad == [] and {k: first_live[k] for k in live} == report.replay.first_raised
    sources = {r.finding.key: r.sources for r in report.findings}
    assert all(sources[key] == ("live", "replay") for key in live)
    assert all(sources[f.key] == ("live",) for f in cb.findings if f.code in AUDIT_ONLY)
    return live


def test_fitwatch_lightning_run_replays_to_the_findings_the_callback_raised_live(tmp_path, capsys):
    """The issue's "same codes after the fact", on a Lightning run with ``FitWatch``."""
    from fitwatch.lightning import FitWatch

    cb = FitWatch(config={"images": False, "warn": False})
    run = lightning_run(tmp_path, overfit=True, callbacks=[cb])
    live = _assert_replay_equals_live(cb, run)
    assert {"FW-OVERFIT", "FW-GAP-WIDENING", "FW-CALIBRATION"} <= {code for code, _ in live}

    status, document = _json_report(capsys, run, "--html", tmp_path / "fw.html")
    assert status == EXIT_OK
    assert document["runs"][0]["fitwatch_tags"] and document["runs"][0]["live_findings"] == "findings.jsonl"
    page = _page(tmp_path / "fw.html")
    assert page.figures == ["loss", "accuracy", "gap", "calibration", "per_class", "lr"]
    html = (tmp_path / "fw.html").read_text()
    assert "FW-CALIBRATION" in html.split("data-curve='calibration'")[1].split("</figure>")[0]


def test_fitwatch_hf_run_replays_to_the_findings_the_callback_raised_live(tmp_path):
    """The same on an HF Trainer run with ``FitWatchCallback``: per-class causes included (a never-predicted
    class, whose prediction count the replay infers from the other classes')."""
    from fitwatch.hf import FitWatchCallback

    cb = FitWatchCallback(config={"images": False, "warn": False})
    hf_run(tmp_path, overfit=True, callbacks=[cb])
    live = _assert_replay_equals_live(cb, cb.run_dir)
    assert {"FW-OVERFIT", "FW-GAP-WIDENING"} <= {code for code, _ in live}
