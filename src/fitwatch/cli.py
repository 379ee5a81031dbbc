"""The ``fitwatch`` command.

.. code-block:: text

    fitwatch report LOGDIR [LOGDIR ...] [--map TAG=ROLE] [--json] [--html OUT.html] [--fail-on LEVEL]
    fitwatch diff RUN_A RUN_B [--json]
    fitwatch demo [--framework hf] [--lm] [--quick] [--out DIR]   (in fitwatch.demo; its own options)

Exit status, one meaning each (:data:`EXIT_OK` ... :data:`EXIT_INTERNAL`):

- 0: the report was made and nothing reached ``--fail-on``;
- 1: a finding at or above ``--fail-on`` (wins over 3);
- 2: usage error: bad arguments, a path that does not exist or holds no event file, a ``--config`` that is not a
  valid fitwatch config (invalid YAML included), a run without ``fingerprint.json`` for ``diff``;
- 3: unreadable input: an event file that could not be read to the end, malformed ``findings.jsonl`` lines
  (skipped and counted), a ``fingerprint.json`` that is not a JSON mapping; the report shows what was read;
- 4: internal error (a bug in fitwatch): one line on stderr, the traceback with ``-v``.

Output cut short by a closed pipe (``fitwatch report runs | head``) ends quietly with 141, as a process ended
by SIGPIPE. Paths that are not valid UTF-8 are read, and shown with ``\\xff`` escapes.

Heavy modules (TensorBoard's reader, matplotlib, rich) are imported by the subcommand that needs them, so
``fitwatch --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_UNREADABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

#: The report was made; no finding at or above ``--fail-on``.
EXIT_OK = 0
#: A finding at or above ``--fail-on``.
EXIT_FINDINGS = 1
#: Bad arguments or inputs (argparse's own status for usage errors).
EXIT_USAGE = 2
#: Some input could not be read (a truncated event file, malformed findings lines, a fingerprint that is not a
#: mapping); the report covers what was read.
EXIT_UNREADABLE = 3
#: A bug in fitwatch: a one-line message (the traceback with ``-v``).
EXIT_INTERNAL = 4
#: The output pipe was closed by its reader (``| head``): the shell's status for a process ended by SIGPIPE.
EXIT_BROKEN_PIPE = 141

_SEVERITIES = ("info", "warning", "critical")


def _mapping(text: str):  # type: ignore[no-untyped-def]
    from fitwatch.report.roles import parse_mapping

    try:
        return parse_mapping(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _roles_epilog() -> str:
    from fitwatch.report.roles import ROLES

    lines = ["roles for --map (ROLE:SUBJECT for the per-subject ones):"]
    for spec in ROLES.values():
        lines.append(f"  {spec.name + (':SUBJECT' if spec.multi else ''):<26} {spec.description}")
    lines.append("")
    lines.append(
        "exit status: 0 ok; 1 a finding at or above --fail-on; 2 usage error; 3 unreadable input (a "
        "truncated event file, malformed findings.jsonl lines: skipped and counted); 4 internal error"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fitwatch`` command (``demo`` is parsed by ``fitwatch.demo`` itself)."""
    parser = argparse.ArgumentParser(
        prog="fitwatch",
        description="Catch the silent failures of fine-tuning runs: reports on TensorBoard logs, run diffs, "
        "a demo.",
    )
    from fitwatch import __version__

    parser.add_argument("--version", action="version", version=f"fitwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "demo",
        help="train a healthy and a quietly failing run side by side and show what fitwatch catches "
        "(--lm: a causal-LM fine-tune that memorises; --framework hf: the Hugging Face Trainer)",
        add_help=False,
    )

    report = commands.add_parser(
        "report",
        help="findings from the TensorBoard event files of any run (fitwatch, HF Trainer, Lightning)",
        description="Read TensorBoard event files (recursively, several runs at once), replay their series "
        "through fitwatch's detectors, merge what fitwatch raised live (findings.jsonl), and print a table "
        "per run.",
        epilog=_roles_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "logdirs", nargs="+", metavar="LOGDIR", help="log directory, run directory or event file"
    )
    report.add_argument(
        "--map",
        dest="mappings",
        action="append",
        type=_mapping,
        default=[],
        metavar="TAG=ROLE",
        help="give a scalar tag a role (repeatable); ROLE:SUBJECT for per-group/per-class roles; "
        "ROLE 'none' ignores the tag",
    )
    report.add_argument(
        "--json",
        action="store_true",
        help="print a JSON document (schema in docs/report.md) instead of tables",
    )
    report.add_argument(
        "--html",
        type=Path,
        metavar="OUT.html",
        help="also write one self-contained HTML page with the curves",
    )
    report.add_argument(
        "--fail-on",
        choices=_SEVERITIES,
        metavar="{info,warning,critical}",
        help="exit with status 1 when a finding of this severity or worse exists",
    )
    report.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also list which tag plays which role in each run (and print the traceback of an internal error)",
    )
    report.add_argument(
        "--config",
        type=Path,
        metavar="FITWATCH.yaml",
        help="a fitwatch config (YAML) whose `detectors` and `gap_window` the live run used",
    )

    diff = commands.add_parser(
        "diff",
        help="what changed between two runs (fingerprint.json) next to their final metrics",
        description="Print the differences between two runs' fingerprint.json (package versions, configs, "
        "data hashes) next to the change in their final validation metrics.",
    )
    diff.add_argument("run_a", metavar="RUN_A", type=Path, help="the first run directory")
    diff.add_argument("run_b", metavar="RUN_B", type=Path, help="the second run directory")
    diff.add_argument(
        "--map",
        dest="mappings",
        action="append",
        type=_mapping,
        default=[],
        metavar="TAG=ROLE",
        help="give a scalar tag a role when reading the final metrics",
    )
    diff.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    diff.add_argument(
        "-v", "--verbose", action="store_true", help="print the traceback of an internal error"
    )
    return parser


def _error(command: str, message: str, status: int = EXIT_USAGE) -> int:
    print(f"fitwatch {command}: error: {message}", file=sys.stderr)
    return status


def _report(args: argparse.Namespace) -> int:
    from fitwatch.report.build import build_report
    from fitwatch.report.events import ReportInputError, UnreadableInputError
    from fitwatch.report.render import print_report, report_document

    settings, gap_window = None, 5
    if args.config is not None:
        from fitwatch.config import FitWatchConfig

        try:
            config = FitWatchConfig.from_yaml(args.config)
        except (OSError, ValueError, TypeError) as err:
            message = err.strerror if isinstance(err, OSError) and err.strerror else err
            return _error("report", f"--config {_shown(args.config)}: {message}")
        settings, gap_window = config.detectors, config.gap_window
        from fitwatch.detect.base import build_detectors

        try:  # detector settings from --config that no detector takes: a usage error, said before reading
            build_detectors(settings)
        except (TypeError, ValueError) as err:
            return _error("report", f"--config {_shown(args.config)}: {err}")
    try:
        report = build_report(
            args.logdirs, mappings=args.mappings, detector_settings=settings, gap_window=gap_window
        )
    except UnreadableInputError as err:
        return _error("report", str(err), EXIT_UNREADABLE)
    except ReportInputError as err:
        return _error("report", str(err))
    if args.json:
        print(json.dumps(report_document(report, fail_on=args.fail_on), indent=2))
    else:
        print_report(report, verbose=args.verbose)
    if args.html is not None:
        from fitwatch.report.page import render_html

        try:
            args.html.write_text(render_html(report), encoding="utf-8", errors="backslashreplace")
        except OSError as err:
            return _error("report", f"--html {_shown(args.html)}: {err.strerror or err}")
        print(f"wrote {_shown(args.html)}", file=sys.stderr)
    for run in report.runs:
        for error in run.errors:
            print(f"fitwatch report: could not read {error.path}: {error.reason}", file=sys.stderr)
    if args.fail_on is not None and report.fails(args.fail_on):
        print(
            f"fitwatch report: findings at or above {args.fail_on!r}: exit status {EXIT_FINDINGS}",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    return EXIT_UNREADABLE if report.unreadable else EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from fitwatch.report.compare import diff_document, diff_runs, print_diff
    from fitwatch.report.events import ReportInputError, UnreadableInputError

    try:
        result = diff_runs(args.run_a, args.run_b, mappings=args.mappings)
    except UnreadableInputError as err:
        return _error("diff", str(err), EXIT_UNREADABLE)
    except ReportInputError as err:
        return _error("diff", str(err))
    if args.json:
        print(json.dumps(diff_document(result), indent=2))
    else:
        print_diff(result)
    return EXIT_OK


def _demo(argv: Sequence[str]) -> int:
    if importlib.util.find_spec("fitwatch.demo") is None:
        return _error(
            "demo", "this installation of fitwatch has no demo (the module fitwatch.demo is missing)."
        )
    try:
        demo = importlib.import_module("fitwatch.demo")
    except ImportError as err:  # an optional dependency of the demo: its message carries the pip hint
        return _error("demo", str(err))
    status = demo.main(list(argv))
    return EXIT_OK if status is None else int(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fitwatch`` command; returns the exit status.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` by default.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "demo":
        return _demo(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 after --help
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    for stream in (sys.stdout, sys.stderr):  # a path that is not UTF-8 is shown escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return _report(args) if args.command == "report" else _diff(args)
    except BrokenPipeError:  # `fitwatch report ... | head`: the reader has gone, which is no error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail again
        return EXIT_BROKEN_PIPE
    except Exception as err:  # noqa: BLE001  (a bug of ours: one line, the traceback on request)
        if args.verbose:
            traceback.print_exc()
        first_line = (str(err).splitlines() or [""])[0]
        print(
            f"fitwatch {args.command}: internal error: {type(err).__name__}: {first_line}"
            + ("" if args.verbose else " (run again with -v for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _shown(path: Path) -> str:
    from fitwatch.report.events import printable

    return printable(path)


if __name__ == "__main__":
    sys.exit(main())
