"""`fitwatch demo`: the healthy run stays quiet, the faulty one is caught, and the output says where to look."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitwatch.cli import main


@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # the faulty run warns, as it should
@pytest.mark.parametrize("framework", ["lightning", pytest.param("hf", marks=pytest.mark.slow)])
def test_demo_catches_the_quiet_failure_and_not_the_healthy_run(tmp_path, capsys, framework):
    status = main(["demo", "--framework", framework, "--out", str(tmp_path), "--quick"])
    captured = capsys.readouterr()
    out = captured.out
    assert status == 0
    assert "healthy-tickets" in out and "quiet: no warning" in out
    assert "FW-OVERFIT-SUBTLE" in out or "FW-OVERFIT" in out
    (folder,) = tmp_path.glob("demo-*")  # a new folder per demo: nothing resumed
    assert f"tensorboard --logdir {folder}" in out
    assert (folder / f"{framework}-healthy-tickets").is_dir()
    assert list((folder / f"{framework}-subtle-overfit-tickets").rglob("findings.jsonl"))
    # "Where to look" names only files that exist.
    where = out.split("Where to look", 1)[1]
    for word in where.split():
        if word.endswith((".jsonl", "history.json")):
            assert Path(word).is_file(), word
    # A line per epoch on standard error while training.
    assert "healthy-tickets: epoch 1/" in captured.err
    if framework == "lightning":  # the HTML report of real runs: verdict first, figures, per-class table
        page = tmp_path / "report.html"
        assert main(["report", str(folder), "--html", str(page)]) == 0
        html = page.read_text()
        assert html.index("class='verdict") < html.index("data-curve='loss'")
        assert html.count("data-figure='confusion_matrix'") == 2 and html.count("data-figure='reliability_diagram'") == 2
        assert html.count("class='per-class'") == 2 and "best checkpoint" in html
        # fitwatch diff of the two real runs names the training argument that differs.
        capsys.readouterr()
        assert main(["diff", str(folder / "lightning-healthy-tickets"),
                     str(folder / "lightning-subtle-overfit-tickets"), "--json"]) == 0
        import json

        keys = {c["key"] for c in json.loads(capsys.readouterr().out)["changes"]}
        assert "training.max_epochs" in keys


def test_a_second_demo_writes_a_new_folder(tmp_path):
    from fitwatch.demo import _new_folder

    first, second = _new_folder(tmp_path), _new_folder(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()


def test_demo_rejects_too_few_epochs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--epochs", "1"])
    assert exit_info.value.code == 2
    assert "--epochs must be at least 3" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")
def test_lm_demo_catches_memorisation_and_not_the_healthy_run(tmp_path, capsys):
    assert main(["demo", "--lm", "--out", str(tmp_path), "--quick"]) == 0
    captured = capsys.readouterr()
    assert "healthy-lm-sft" in captured.out and "quiet: no warning" in captured.out
    assert "FW-OVERFIT" in captured.out.split("memorise-lm (", 1)[1]
    (folder,) = tmp_path.glob("demo-*")
    assert list((folder / "lm-memorise-lm").rglob("findings.jsonl"))
    assert "memorise-lm: epoch 1/" in captured.err


def test_lm_demo_is_lightning_only(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--lm", "--framework", "hf"])
    assert exit_info.value.code == 2 and "--lm runs with Lightning only" in capsys.readouterr().err
