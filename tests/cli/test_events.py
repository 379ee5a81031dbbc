"""Finding runs and reading their scalars: several files per run, nested runs, damaged files, bad paths."""

from __future__ import annotations

import pytest

from fitwatch.report.events import ReportInputError, discover_runs, read_run

from .events import truncate, write_scalars


def test_runs_are_directories_and_their_files_are_read_together(tmp_path):
    # A run resumed into the same directory: a second event file that starts again from step 3.
    write_scalars(tmp_path / "a", {"val_loss": [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.75)]}, order=1)
    write_scalars(tmp_path / "a", {"val_loss": [(3, 0.6), (4, 0.5)], "val_acc": [(4, 0.8)]}, order=2)
    write_scalars(tmp_path / "b" / "nested", {"train/loss": [(0, 2.0)]})
    runs = discover_runs([tmp_path])
    assert [(r.relative_to(tmp_path).as_posix(), len(files)) for r, files in runs] == [
        ("a", 2),
        ("b/nested", 1),
    ]
    a = read_run(*runs[0])
    # As TensorBoard treats orphaned data: the resumed points replace those at and after step 3.
    assert list(a.scalars) == ["val_loss", "val_acc"]
    assert [s for s, _ in a.scalars["val_loss"]] == [1, 2, 3, 4]
    assert [v for _, v in a.scalars["val_loss"]] == pytest.approx([0.9, 0.8, 0.6, 0.5])  # float32 on disk
    assert a.scalars["val_acc"] == [(4, pytest.approx(0.8))]
    assert a.unreadable == []


def test_a_single_event_file_is_a_run_of_its_own(tmp_path):
    first = write_scalars(tmp_path, {"val_loss": [(1, 1.0)]}, order=1)
    write_scalars(tmp_path, {"val_loss": [(2, 2.0)]}, order=2)
    runs = discover_runs([first])
    assert runs == [(tmp_path, [first])]
    assert read_run(*runs[0]).scalars == {"val_loss": [(1, 1.0)]}


def test_tf2_scalar_summaries_are_read(tmp_path):
    from tensorboard.plugins.scalar import summary_v2
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step, value in enumerate([1.0, 0.5, 0.25]):
        writer.file_writer.add_summary(summary_v2.scalar_pb("epoch_loss", value), step)
    writer.close()
    assert read_run(*discover_runs([tmp_path])[0]).scalars == {"epoch_loss": [(0, 1.0), (1, 0.5), (2, 0.25)]}


@pytest.mark.parametrize("drop", [1, 7, 20])
def test_a_truncated_file_is_named_and_what_precedes_the_damage_is_kept(tmp_path, drop):
    values = [(s, 1.0 / (s + 1)) for s in range(30)]
    path = write_scalars(tmp_path, {"train/loss": values})
    truncate(path, drop)
    run = read_run(*discover_runs([tmp_path])[0])
    assert [u.path for u in run.unreadable] == [str(path)]
    assert "truncated" in run.unreadable[0].reason
    points = run.scalars["train/loss"]
    # Each scalar event is ~30 bytes: cutting at most 20 loses exactly the last one.
    assert [s for s, _ in points] == list(range(29))
    assert [v for _, v in points] == pytest.approx([v for _, v in values[:29]])


def test_a_corrupt_record_in_the_middle_is_named_and_the_next_file_still_read(tmp_path):
    damaged = write_scalars(tmp_path, {"val_loss": [(s, float(s)) for s in range(20)]}, order=1)
    write_scalars(tmp_path, {"val_loss": [(20, 20.0)]}, order=2)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: a checksum fails there
    damaged.write_bytes(bytes(data))
    run = read_run(*discover_runs([tmp_path])[0])
    assert [u.path for u in run.unreadable] == [str(damaged)]
    assert run.unreadable[0].reason == "corrupt record (checksum mismatch)"
    steps = [s for s, _ in run.scalars["val_loss"]]
    assert 0 < len(steps) < 21 and steps[-1] == 20 and steps[:3] == [0, 1, 2]


def test_missing_path(tmp_path):
    with pytest.raises(ReportInputError, match=r"nope: no such file or directory"):
        discover_runs([tmp_path / "nope"])


def test_directory_without_event_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("hi")
    with pytest.raises(
        ReportInputError, match=r"no TensorBoard event files \(events.out.tfevents.\*\) in this"
    ):
        discover_runs([tmp_path])


def test_a_file_that_is_not_an_event_file(tmp_path):
    (tmp_path / "metrics.csv").write_text("a,b\n")
    with pytest.raises(ReportInputError, match=r"metrics.csv: not a TensorBoard event file"):
        discover_runs([tmp_path / "metrics.csv"])
