"""The zoo's variants: ``python -m benchmarks.zoo --variants`` (or ``python -m benchmarks.zoo.variants``).

Trains the scenarios of :data:`fitwatch.scenarios.registry.VARIANT_SCENARIOS`: loss-only versions of zoo
scenarios (a typical LightningModule that returns only its loss and logs ``val_loss``/``val_acc``, so FitWatch
judges the run on what it logs) and healthy runs in the loop shapes of real scripts (gradient accumulation, two
validation dataloaders, ``trainer.validate()`` before ``trainer.fit()``). It prints one table per kind, with the
headline numbers under each, the loss-only runs next to the zoo's own runs of the same scenarios (from
``benchmarks/zoo/results.json``, logits returned), and what each loop shape left in FitWatch's history. It writes
them into ``docs/benchmarks.md`` between ``<!-- zoo-loss-only:start -->`` and ``<!-- zoo-loss-only:end -->`` and
the raw results into ``benchmarks/zoo/results_variants.json``.

Options as the zoo's: ``--only``, ``--seeds``, ``--jobs``, ``--quick``, ``--write``, ``--no-write``,
``--render``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

__all__ = ["VARIANTS_END_MARKER", "VARIANTS_START_MARKER", "main", "render_variants"]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = Path(__file__).resolve().parent / "results_variants.json"
BASELINE = Path(__file__).resolve().parent / "results.json"
VARIANTS_START_MARKER = "<!-- zoo-loss-only:start -->"
VARIANTS_END_MARKER = "<!-- zoo-loss-only:end -->"
_LOSS_ONLY_SUFFIX = "-loss-only"


def _by_kind(runs: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    loss_only = [r for r in runs if r["scenario"].endswith(_LOSS_ONLY_SUFFIX)]
    shapes = [r for r in runs if not r["scenario"].endswith(_LOSS_ONLY_SUFFIX)]
    return loss_only, shapes


def _caught(runs: Sequence[Mapping[str, Any]]) -> str:
    """``detected of runs, median delay`` of one scenario's runs (``-`` for a healthy scenario's delay).

    >>> _caught([{"healthy": False, "detected": True, "delay": 2}, {"healthy": False, "detected": True, "delay": 4}])
    '2 of 2, median delay +3'
    >>> _caught([{"healthy": True, "detected": True, "delay": None, "false_alarms": []}])
    '0 of 1 with a warning'
    """
    if not runs:
        return "not run"
    if runs[0]["healthy"]:
        return f"{sum(1 for r in runs if r['false_alarms'])} of {len(runs)} with a warning"
    delays = [r["delay"] for r in runs if r["detected"] and r["delay"] is not None]
    text = f"{sum(1 for r in runs if r['detected'])} of {len(runs)}"
    return text + (f", median delay {median(delays):+g}" if delays else "")


def _comparison(loss_only: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per loss-only scenario: the zoo's own runs of it (logits returned) against the loss-only ones."""
    names = list(dict.fromkeys(r["scenario"] for r in loss_only))
    lines = [
        "| scenario | with logits (zoo, all seeds) | loss only |",
        "|---|---|---|",
    ]
    for name in names:
        base = name[: -len(_LOSS_ONLY_SUFFIX)]
        ours = [r for r in loss_only if r["scenario"] == name]
        theirs = [r for r in baseline if r["scenario"] == base]
        lines.append(f"| {base} | {_caught(theirs)} | {_caught(ours)} |")
    return lines


def _without_fault_lines(table: str) -> str:
    """The zoo table of healthy runs only, without the summary lines about fault runs (there are none)."""
    return "\n".join(
        line for line in table.splitlines() if not line.startswith(("- Fault runs", "- Other warning-level"))
    )


def render_variants(runs: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]] = ()) -> str:
    """The variants' tables as markdown: loss-only runs, their comparison with the zoo's, loop shapes."""
    from benchmarks.zoo.report import data_facts_text, render, summarize

    loss_only, shapes = _by_kind(runs)
    lines: list[str] = []
    if loss_only:
        lines += [
            (
                "**Loss-only modules.** The same runs trained by a module that returns only its loss tensor, logs "
                "`train_loss`, `val_loss` and `val_acc` with `self.log`, and calls its network as `self.net(x)` "
                "(nothing for FitWatch to capture): FitWatch reads the logged metrics at each validation end."
            ),
            "",
            render([{**r, "data": {}} for r in loss_only], summarize(loss_only)),
            "",
            "The same scenarios with logits returned (the zoo table above) and loss only:",
            "",
            *_comparison(loss_only, baseline),
        ]
    if shapes:
        lines += [
            "",
            (
                "**Loop shapes, healthy runs.** `-accumulate`: batches a quarter the size with "
                "`accumulate_grad_batches=4` (same effective batch and optimizer steps); `-two-val`: a second "
                "validation dataloader (the validation features plus Gaussian noise of standard deviation 0.5), "
                "summarised as `val_1`, never judged; `-validate-first`: `trainer.validate(model, val)` then "
                "`trainer.fit(...)` on the same Trainer (summarised as `eval`)."
            ),
            "",
            _without_fault_lines(render([{**r, "data": {}} for r in shapes], summarize(shapes))),
            "",
            "What each loop shape left in FitWatch's history (the last evaluation):",
            "",
            "| scenario | seed | measured |",
            "|---|---|---|",
            *(
                f"| {r['scenario']} | {r['seed']} | {data_facts_text(r['data'])} |"
                for r in shapes
                if r.get("data")
            ),
        ]
    return "\n".join(lines).strip()


def _docs_section(table: str, summary: Mapping[str, Any], *, quick: bool) -> str:
    elapsed = f", {summary['elapsed_s']:.0f} s in all with data preparation" if "elapsed_s" in summary else ""
    return (
        "Generated by `python -m benchmarks.zoo --variants`"
        + (" --quick" if quick else "")
        + f" (one row per run; columns as in the zoo table above; {summary['healthy_runs'] + summary['fault_runs']}"
        f" runs, {summary['wall_s']:.0f} s of training{elapsed}).\n\n" + table
    )


def _parser() -> argparse.ArgumentParser:
    from benchmarks.zoo.cli import add_run_options

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.zoo --variants", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--variants", action="store_true", help=argparse.SUPPRESS)
    add_run_options(parser, names="variant names", results="results_variants.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 1 when a fault run missed its codes or a healthy run warned."""
    from benchmarks.zoo import run_zoo
    from benchmarks.zoo.report import summarize, write_between_markers
    from fitwatch.scenarios.registry import VARIANT_SCENARIOS

    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    baseline = json.loads(BASELINE.read_text())["runs"] if BASELINE.is_file() else []
    saved: dict[str, Any] = {}
    if args.render:
        saved = json.loads(RESULTS.read_text())
        runs = saved["runs"]
    else:
        wanted = (
            list(VARIANT_SCENARIOS)
            if not args.only
            else [n.strip() for n in args.only.split(",") if n.strip()]
        )
        unknown = [n for n in wanted if n not in VARIANT_SCENARIOS]
        if unknown:
            print(
                f"Unknown variant(s) {unknown}; expected some of: {', '.join(VARIANT_SCENARIOS)}.",
                file=sys.stderr,
            )
            return 2
        try:
            seeds = None if not args.seeds else [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            print(f"Expected --seeds to be comma-separated ints, but got {args.seeds!r}.", file=sys.stderr)
            return 2
        started = time.perf_counter()
        runs = run_zoo(wanted, seeds, jobs=args.jobs, quick=args.quick, log_dir=args.log_dir)
        elapsed = round(time.perf_counter() - started, 1)
    table = render_variants(runs, baseline)
    print(table)
    summary = summarize(runs)
    summary["elapsed_s"] = saved.get("summary", {}).get("elapsed_s") if args.render else elapsed
    if summary["elapsed_s"] is None:
        del summary["elapsed_s"]
    if not args.no_write and (args.render or args.write or not (args.quick or args.only or args.seeds)):
        write_between_markers(
            DOCS,
            _docs_section(table, summary, quick=args.quick),
            start=VARIANTS_START_MARKER,
            end=VARIANTS_END_MARKER,
            title="The zoo's variants: loss-only modules and loop shapes",
        )
        if not args.render:
            RESULTS.write_text(
                json.dumps({"summary": summary, "runs": runs}, indent=1, allow_nan=False) + "\n"
            )
        print(f"\nWrote {DOCS.relative_to(ROOT)}.", file=sys.stderr)
    return 1 if summary["missed"] or summary["healthy_with_false_alarm"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
