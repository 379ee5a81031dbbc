"""Event files written in the tests: TensorBoard's ``SummaryWriter`` (torch's) with chosen tags and values."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_scalars(
    directory: str | os.PathLike[str],
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    order: int | None = None,
) -> Path:
    """Write ``tag -> [(step, value), ...]`` to a new event file in ``directory``; returns the file's path.

    Points are written in step order across tags, as a training loop logs them. With ``order``, the file is
    named so that it sorts at that place among the directory's files (TensorBoard reads them in name order;
    the writer's own names hold a per-process counter that sorts 10 before 9).
    """
    from torch.utils.tensorboard import SummaryWriter

    before = set(Path(directory).glob("*tfevents*")) if Path(directory).is_dir() else set()
    writer = SummaryWriter(log_dir=str(directory))
    points = sorted(
        (step, i, tag, value) for i, (tag, values) in enumerate(series.items()) for step, value in values
    )
    for step, _, tag, value in points:
        writer.add_scalar(tag, value, global_step=step)
    writer.close()
    (path,) = set(Path(directory).glob("*tfevents*")) - before
    if order is not None:
        path = path.rename(path.with_name(f"events.out.tfevents.{order:010d}.test"))
    return path


def truncate(path: str | os.PathLike[str], drop_bytes: int) -> None:
    """Cut the last ``drop_bytes`` bytes of a file (a run killed while writing)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:-drop_bytes])
