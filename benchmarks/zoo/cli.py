"""The options every zoo command shares (the classifier zoo, ``--lm`` and ``--variants``)."""

from __future__ import annotations

import argparse


def add_run_options(
    parser: argparse.ArgumentParser, *, names: str, results: str, log_dir: bool = True
) -> None:
    """``--only``, ``--seeds``, ``--jobs``, ``--quick``, ``--log-dir`` (when the runs can keep their files),
    ``--write``, ``--no-write`` and ``--render``; ``names`` says what ``--only`` selects, ``results`` which
    file ``--render`` reads."""
    parser.add_argument("--only", help=f"comma-separated {names} (default: all)")
    parser.add_argument("--seeds", help="comma-separated seeds for every run (default: each scenario's own)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs (default 1)")
    parser.add_argument("--quick", action="store_true", help="each scenario's short version")
    if log_dir:
        parser.add_argument(
            "--log-dir", help="keep each run's TensorBoard files and checkpoints under this directory"
        )
    parser.add_argument(
        "--write", action="store_true", help="write docs and results even with --quick/--only"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--render", action="store_true", help=f"re-render the table and docs from {results}, without training"
    )
