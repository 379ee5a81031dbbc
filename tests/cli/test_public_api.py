"""fitwatch.report's public surface, and a ``fitwatch`` command that starts without the heavy imports."""

from __future__ import annotations

import subprocess
import sys

from fitwatch import report


def test_all_is_sorted_and_complete():
    assert report.__all__ == sorted(report.__all__, key=lambda s: (not s.isupper(), s))
    assert all(hasattr(report, name) for name in report.__all__)


def test_the_command_imports_its_heavy_modules_only_when_a_subcommand_runs():
    heavy = ("torch", "tensorboard", "matplotlib", "rich", "lightning", "transformers")
    code = f"import sys, fitwatch.cli; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
