"""Where a run's files go when fitwatch writes its own: one versioned folder per run.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> next_version(root).name
'version_0'
>>> (root / "version_0").mkdir(); (root / "version_3").mkdir()
>>> next_version(root).name
'version_1'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["next_version"]


def next_version(root: Path) -> Path:
    """``root/version_N`` with the first ``N`` not taken (Lightning's scheme for its loggers' folders), so that
    two runs never share event files, findings or history."""
    taken: set[int] = set()
    if root.is_dir():
        for path in root.glob("version_*"):
            suffix = path.name.split("_", 1)[1]
            if suffix.isdigit():
                taken.add(int(suffix))
    n = 0
    while n in taken:
        n += 1
    return root / f"version_{n}"
