"""Finding runs under log directories and reading their scalars with TensorBoard's own reader.

A *run* is a directory holding event files (``events.out.tfevents.*``), as TensorBoard sees it: all the event
files of one directory are one run, read in name order (which is creation order) by one
``EventAccumulator``. Nested directories are separate runs, found with TensorBoard's
``GetLogdirSubdirectories``.

TensorBoard's reader is built to tail files still being written, so a truncated or corrupt record is not an
error to it: it stops reading that file and logs ``"Truncated record in <file> (<reason>)"`` at debug level.
:func:`read_run` listens to that log record to name each file it could not read to the end; everything read
before the damage is kept.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ReportInputError",
    "RunEvents",
    "UnreadableFile",
    "UnreadableInputError",
    "discover_runs",
    "printable",
    "read_run",
]

#: Keep every scalar and tensor event: TensorBoard's default reservoirs sample scalars down to 10,000 per tag.
_SIZE_GUIDANCE = {
    "scalars": 0,
    "tensors": 0,
    "images": 1,
    "audio": 1,
    "histograms": 1,
    "compressedHistograms": 1,
}


class ReportInputError(ValueError):
    """A path given to ``fitwatch report`` that cannot be read as runs (missing, or without event files)."""


class UnreadableInputError(ReportInputError):
    """A file the command needs exists but its content cannot be used (a ``fingerprint.json`` that is not a
    mapping, a file that is not valid JSON): ``fitwatch`` exits with status 3, not 2."""


@dataclass(frozen=True)
class UnreadableFile:
    """A file (or a run directory) that could not be read to the end, and why."""

    path: str
    reason: str


@dataclass
class RunEvents:
    """The scalars of one run.

    Attributes:
        directory: The run directory (the event file's directory when a single file was given).
        files: Its event files, in reading order.
        scalars: ``tag -> [(step, value), ...]`` in step order, tags in the order they first appear.
        unreadable: Files that could not be read to the end.
        findings_file: The callbacks' findings log of this run when it is not ``directory/findings.jsonl``
            (an MLflow run's ``fitwatch/findings.jsonl`` artifact).
    """

    directory: Path
    files: list[Path]
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    unreadable: list[UnreadableFile] = field(default_factory=list)
    findings_file: Path | None = None


def _is_event_file(path: Path) -> bool:
    from tensorboard.backend.event_processing import io_wrapper

    return io_wrapper.IsSummaryEventsFile(str(path))


def _event_directories(path: Path) -> list[str]:
    """Directories at or below ``path`` holding an event file. Walked with ``os.walk`` rather than TensorBoard's
    reader, which encodes every path as UTF-8 and fails on a directory name that is not."""
    return [
        directory
        for directory, _, names in os.walk(path)
        if any(_is_event_file(Path(directory) / name) for name in names)
    ]


def discover_runs(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, list[Path]]]:
    """Every run under ``paths``: ``(run directory, its event files)``, in path order then name order.

    A path may be a log directory (searched recursively), a run directory or one event file (then a run of
    its own).

    Raises:
        ReportInputError: If a path does not exist, is a file that is not an event file, or holds no event
            file at any depth.
    """
    runs: list[tuple[Path, list[Path]]] = []
    seen: set[tuple[Path, ...]] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ReportInputError(f"{printable(raw)}: no such file or directory.")
        if path.is_file():
            if not _is_event_file(path):
                raise ReportInputError(
                    f"{printable(raw)}: not a TensorBoard event file (expected a name containing 'tfevents') "
                    "or a directory."
                )
            found = [(path.parent, [path])]
        else:
            found = []
            for directory in sorted(_event_directories(path)):
                run = Path(directory)
                files = sorted(p for p in run.iterdir() if p.is_file() and _is_event_file(p))
                if files:
                    found.append((run, files))
            if not found:
                raise ReportInputError(
                    f"{printable(raw)}: no TensorBoard event files (events.out.tfevents.*) in this directory "
                    "or below it."
                )
        for run, files in found:
            key = tuple(f.resolve() for f in files)
            if key not in seen:
                seen.add(key)
                runs.append((run, files))
    return runs


class _TruncationListener(logging.Handler):
    """Collects TensorBoard's ``"Truncated record in %s (%s)"`` debug records: the file and the reason."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.damaged: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("Truncated record in") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            path = str(args[0])
            reason = str(args[1]) if len(args) > 1 else "truncated record"
            self.damaged.setdefault(path, _reason(reason))


def _reason(raw: str) -> str:
    # The stub reader words its errors as "b'<path>' has truncated record in data" or "<path> failed
    # event crc32 check"; the path is already named beside the reason, so keep only what happened.
    if "truncated" in raw:
        return "truncated record (the file ends in the middle of an event)"
    if "crc" in raw:
        return "corrupt record (checksum mismatch)"
    return raw


@contextmanager
def _listen_for_truncation() -> Iterator[_TruncationListener]:
    from tensorboard.util import tb_logging

    logger = tb_logging.get_logger()
    listener = _TruncationListener()
    level = logger.level
    logger.addHandler(listener)
    logger.setLevel(logging.DEBUG)
    try:
        yield listener
    finally:
        logger.removeHandler(listener)
        logger.setLevel(level)


def read_run(
    directory: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]] | None = None
) -> RunEvents:
    """Read every scalar of a run with TensorBoard's ``EventAccumulator``.

    Scalars logged with ``add_scalar`` (``simple_value``) and TF2 scalar summaries (tensors of the scalars
    plugin) are both read. When a tag's steps go back (a run resumed from a checkpoint into the same
    directory), the points at or after the step it resumed from are replaced by the resumed ones, as
    TensorBoard does with orphaned data.

    Args:
        directory: The run directory.
        files: Its event files; when a single file is given, only that file is read.

    Returns:
        The run's scalars and the files that could not be read to the end (with what was read before).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    directory = Path(directory)
    files = [Path(f) for f in (files if files is not None else sorted(directory.iterdir()))]
    files = [f for f in files if f.is_file() and _is_event_file(f)]
    # One file is read on its own (it may have been given alone); several are the directory, read as
    # TensorBoard reads it.
    source = str(files[0]) if len(files) == 1 else str(directory)
    run = RunEvents(directory=directory, files=files)
    with _listen_for_truncation() as listener, _utf8_path(source, files) as (readable, original):
        accumulator = EventAccumulator(readable, size_guidance=_SIZE_GUIDANCE)
        try:
            accumulator.Reload()
        except Exception as err:  # noqa: BLE001  (whatever the reader raises: name the run, no traceback)
            run.unreadable.append(UnreadableFile(printable(source), f"{type(err).__name__}: {err}"))
    for path, reason in listener.damaged.items():
        run.unreadable.append(UnreadableFile(printable(original.get(path, path)), reason))
    tags = accumulator.Tags()
    for tag in tags.get("scalars", []):
        run.scalars[tag] = _resumed([(int(e.step), float(e.value)) for e in accumulator.Scalars(tag)])
    for tag in tags.get("tensors", []):
        if tag in run.scalars:
            continue
        points = _tensor_scalars(accumulator, tag)
        if points:
            run.scalars[tag] = _resumed(points)
    return run


def printable(path: str | os.PathLike[str]) -> str:
    """A path as text any terminal, JSON or HTML can show: bytes that are not UTF-8 (a directory named on
    another system) are written as ``\\xff`` escapes instead of failing to encode.

    >>> printable(os.fsdecode(b"runs/bad\\xff"))
    'runs/bad\\\\xff'
    """
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


@contextmanager
def _utf8_path(source: str, files: Sequence[Path]) -> Iterator[tuple[str, dict[str, str]]]:
    """``source`` as a path TensorBoard's reader can open, and the files it stands for by the names the reader
    will use. The reader encodes paths as UTF-8, so a path that is not valid UTF-8 is read through symbolic
    links with plain names in a temporary directory."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield source, {}
        return
    with tempfile.TemporaryDirectory(prefix="fitwatch-report-") as tmp:
        original = {}
        for i, f in enumerate(files):
            link = os.path.join(tmp, f"events.out.tfevents.{i:04d}.fitwatch")
            os.symlink(os.path.abspath(f), link)
            original[link] = str(f)
        yield (tmp if len(files) != 1 else next(iter(original))), original


def _tensor_scalars(accumulator, tag: str) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    from tensorboard.util import tensor_util

    if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
        return []
    points = []
    for event in accumulator.Tensors(tag):
        array = tensor_util.make_ndarray(event.tensor_proto)
        if array.size == 1:
            points.append((int(event.step), float(array.reshape(-1)[0])))
    return points


def _resumed(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Points in reading order, with a step that goes back discarding the earlier points at or after it.

    >>> _resumed([(0, 1.0), (1, 0.9), (2, 0.8), (1, 0.7), (2, 0.6)])
    [(0, 1.0), (1, 0.7), (2, 0.6)]
    >>> _resumed([(0, 1.0), (0, 2.0)])
    [(0, 2.0)]
    """
    out: list[tuple[int, float]] = []
    for step, value in points:
        if out and step <= out[-1][0]:
            while out and out[-1][0] >= step:
                out.pop()
        out.append((step, value))
    return out
