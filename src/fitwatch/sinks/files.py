"""File writing for the sinks: atomic replacement, appends that leave no partial line, and a free-space guard.

Every helper here either completes its write or leaves the file as it was: a whole-file write goes to a
temporary file next to the target and is renamed over it (the temporary file is removed when the write
fails), and an append that fails half-way is cut back to the file's previous length.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(d / "a.json", "{}")
>>> append_text(d / "a.jsonl", "1\\n2\\n")
>>> (d / "a.json").read_text(), (d / "a.jsonl").read_text(), sorted(p.name for p in d.iterdir())
('{}', '1\\n2\\n', ['a.json', 'a.jsonl'])
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskSpace", "append_text", "low_disk_threshold", "write_atomic"]

#: Free space under which fitwatch stops writing scalars (at least this much is left to the user's logger).
MIN_FREE_BYTES = 50 * 2**20
#: ... or this fraction of the disk, capped at :data:`MAX_FRACTION_BYTES`, whichever is larger.
MIN_FREE_FRACTION = 0.01
MAX_FRACTION_BYTES = 2**30


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) all at once: readers see the old file or the new, never a part.

    The text goes to ``<path>.tmp`` first and is renamed over ``path``; when writing fails (full disk, file-size
    limit) the temporary file is removed and the error raised, and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def append_text(path: str | os.PathLike[str], text: str) -> None:
    """Append ``text`` (whole lines) to ``path``; when the write fails, the file is cut back to its old length,
    so a reader never meets half a line, and the error is raised."""
    data = memoryview(text.encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:  # unbuffered: a write past a limit may land in part before the next one fails
                data = data[os.write(fd, data) :]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def low_disk_threshold(total: int) -> int:
    """Free bytes under which a disk of ``total`` bytes counts as nearly full.

    >>> low_disk_threshold(10 * 2**30) // 2**20           # 1% of 10 GiB
    102
    >>> low_disk_threshold(2**40) // 2**20                 # 1% capped at 1 GiB
    1024
    >>> low_disk_threshold(2**20) // 2**20                 # never under 50 MiB
    50
    """
    return max(MIN_FREE_BYTES, min(int(total * MIN_FREE_FRACTION), MAX_FRACTION_BYTES))


@dataclass
class DiskSpace:
    """Whether the disk holding ``directory`` still has room for scalars (one ``statvfs`` per check).

    Args:
        directory: A directory on the disk to watch (the nearest existing parent is asked).
        min_free_bytes: Free bytes under which the disk counts as nearly full; ``None`` uses
            :func:`low_disk_threshold`.
    """

    directory: Path
    min_free_bytes: int | None = None

    def free(self) -> tuple[int, int]:
        """``(free bytes, threshold)`` of the disk now."""
        where = Path(self.directory)
        while not where.exists() and where.parent != where:
            where = where.parent
        usage = shutil.disk_usage(where)
        threshold = low_disk_threshold(usage.total) if self.min_free_bytes is None else self.min_free_bytes
        return usage.free, threshold

    def low(self) -> tuple[bool, int, int]:
        """``(nearly full, free bytes, threshold)``; a disk that cannot be asked counts as not full."""
        try:
            free, threshold = self.free()
        except OSError:
            return False, -1, 0
        return free < threshold, free, threshold


def megabytes(n: int) -> str:
    """``n`` bytes as a short human size.

    >>> megabytes(3 * 2**20), megabytes(2**30 * 3 // 2)
    ('3.0 MB', '1.5 GB')
    """
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"
