"""`fitwatch demo`: the healthy run stays quiet, the faulty one is caught, and the output says where to look."""

from __future__ import annotations

import pytest

from fitwatch.cli import main


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # the faulty run warns, as it should
@pytest.mark.parametrize("framework", ["lightning", pytest.param("hf", marks=pytest.mark.slow)])
def test_demo_catches_the_quiet_failure_and_not_the_healthy_run(tmp_path, capsys, framework):
    status = main(["demo", "--framework", framework, "--out", str(tmp_path), "--quick"])
    out = capsys.readouterr().out
    assert status == 0
    assert "healthy-tickets" in out and "quiet: no warning" in out
    assert "FW-OVERFIT-SUBTLE" in out or "FW-OVERFIT" in out
    assert f"tensorboard --logdir {tmp_path}" in out
    assert (tmp_path / f"{framework}-healthy-tickets").is_dir()
    assert list((tmp_path / f"{framework}-subtle-overfit-tickets").rglob("findings.jsonl"))


def test_demo_rejects_too_few_epochs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "1"])
    assert exit_info.value.code == 2
    assert "--epochs must be at least 3" in capsys.readouterr().err
