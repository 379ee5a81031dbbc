"""The dashboard layout of the event files (docs/dashboard.md), read back with TensorBoard's own reader from a
default 10-class Lightning run: chart count, train and validation on one chart, groups in question order."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import torch

from fitwatch.lightning import FitWatch
from fitwatch.report.roles import fold_dashboard_runs
from fitwatch.report.sources import discover_sources, read_source
from fitwatch.sinks.tags import DASHBOARD_SECTIONS, dashboard_scalar, history_tag
from tests.lightning.digits import CLASS_NAMES, DigitsMLP, loaders, trainer


def _runs(logdir: Path) -> dict[str, dict[str, set[str]]]:
    """``run (relative path) -> kind -> tags``, as TensorBoard lists them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"images": 0, "tensors": 0})
        acc.Reload()
        for kind, tags in acc.Tags().items():
            if isinstance(tags, list):
                out[str(path.parent.relative_to(logdir))][kind] |= set(tags)
    return out


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dash")
    torch.manual_seed(0)
    cb = FitWatch(class_names=CLASS_NAMES)  # default settings, 10 classes
    train, val = loaders()
    t = trainer(tmp_path, [cb], max_epochs=3, log_every_n_steps=5)
    t.fit(DigitsMLP(two_groups=True), train, val)
    return cb, Path(t.logger.log_dir)


def test_a_default_ten_class_run_has_at_most_forty_charts(default_run):
    _, logdir = default_run
    runs = _runs(logdir)
    charts = set().union(*(kinds["scalars"] for kinds in runs.values()))
    assert 20 <= len(charts) <= 40, sorted(charts)  # 150 in the earlier layout
    assert {"train", "val"} <= set(runs)
    assert {f"class/{name}" for name in CLASS_NAMES} <= set(runs)


def test_train_and_validation_loss_share_a_chart(default_run):
    _, logdir = default_run
    runs = _runs(logdir)
    for metric in ("loss", "accuracy", "macro_f1"):
        tag = f"1_performance/{metric}"
        assert tag in runs["train"]["scalars"] and tag in runs["val"]["scalars"], metric
    assert "4_calibration/reliability_diagram" in runs["val"]["images"]
    assert "5_per_class/confusion_matrix" in runs["val"]["images"]


def test_groups_sort_in_question_order_performance_first(default_run):
    _, logdir = default_run
    groups = sorted({tag.split("/")[0] for kinds in _runs(logdir).values() for tag in kinds["scalars"]})
    assert groups[0] == "1_performance"
    assert groups == [g for g in DASHBOARD_SECTIONS.values() if g in groups]  # sorted == question order


def test_no_flat_zero_charts_and_findings_tracks_are_levels(default_run, event_scalars):
    _, logdir = default_run
    raw = event_scalars(logdir, raw=True)
    for tag, points in raw.items():
        if tag.startswith("9_health/") and tag != "9_health/samples":
            raise AssertionError(f"{tag} written although zero: {points[:3]}")
        if tag.startswith("2_findings/FW-"):
            assert {v for _, v in points} <= {0.0, 1.0, 2.0, 3.0}, tag


def test_the_event_files_fold_back_to_the_history_names(default_run):
    cb, logdir = default_run
    (run,) = fold_dashboard_runs([read_source(s) for s in discover_sources([logdir])])
    assert run.directory == logdir
    for name in ("performance/loss/val", "performance/loss/train", "per_class/recall/3/val", "gap/loss",
                 "optimizer/lr/body", "calibration/nll/val", "health/nonfinite_logits/val"):
        assert name in run.scalars, name
    assert [v for _, v in run.scalars["performance/loss/val"]] == pytest.approx(
        [v for _, v in cb.history["performance/loss/val"]])


@pytest.mark.parametrize(
    "name, value",
    [("performance/loss/val", 0.5), ("performance/step_loss/train", 1.0), ("per_class/f1/New_York/val", 0.25),
     ("gap/ece_slope", -0.01), ("optimizer/lr/head", 1e-3), ("findings/FW-OVERFIT", 50.0), ("findings/count", 2.0),
     ("calibration/ece/val_clean", 0.1), ("health/nonfinite_logits/train", 3.0), ("weights/update_ratio/net.0", 1e-3)],
)
def test_dashboard_and_history_names_round_trip(name, value):
    for prefix in ("", "fw/"):
        run, tag, shown = dashboard_scalar(prefix + name, value, prefix=prefix)
        assert history_tag(run, tag, shown, prefix=prefix) == (prefix + name, value)


def test_fitwatch_report_piped_keeps_every_word_and_starts_with_a_verdict(default_run):
    """``fitwatch report RUN | cat``: stdout is a pipe, so no terminal width; every word of every message and
    of the title is printed whole (wrapped, never cut)."""
    import re
    import subprocess
    import sys

    cb, logdir = default_run
    done = subprocess.run([sys.executable, "-m", "fitwatch.cli", "report", str(logdir)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr
    tokens = set(re.findall(r"[\w.\-]+", done.stdout))
    assert "training points)" in done.stdout.replace("\n", " ") or "points)" in done.stdout
    for finding in cb.findings:
        for word in re.findall(r"[\w.\-]+", finding.message):
            assert word in tokens, (word, finding.message)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    import fitwatch.report.build as build

    if "fold_dashboard_runs" not in Path(build.__file__).read_text():
        pytest.xfail("report/build.py does not fold the dashboard layout's sibling runs yet (docs/dashboard.md)")
    assert lines[1].startswith(("healthy:", "info:", "warning:", "critical:")), lines[:3]
    assert any(line.strip().startswith("best checkpoint") for line in lines)
    assert any(line.strip().startswith("final validation:") for line in lines)


def test_version_and_demo_help_are_clean():
    import subprocess
    import sys

    from fitwatch import __version__

    out = subprocess.run([sys.executable, "-m", "fitwatch.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"fitwatch {__version__}"
    demo = subprocess.run([sys.executable, "-m", "fitwatch.cli", "demo", "--help"], capture_output=True, text=True,
                          check=False)
    assert "``" not in demo.stdout
