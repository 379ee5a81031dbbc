"""The language-model zoo: ``python -m benchmarks.zoo --lm`` (or ``python -m benchmarks.zoo.lm``).

Trains every scenario of :data:`fitwatch.scenarios.lm.LM_SCENARIOS` (a GPT-2 from a config fine-tuned on
the standard library's docstrings, Lightning on the CPU, FitWatch attached with ``task="causal_lm"``) and
prints the classifier zoo's table for them: expected codes, codes raised, onset, detection and delay, and
where the usual stopping rules (:mod:`benchmarks.zoo.anchors`) would have stopped on the same validation
loss; then the headline numbers and, per run, what the fault did to the run's own loss curves. It writes
the tables into ``docs/benchmarks.md`` between ``<!-- lm-zoo:start -->`` and ``<!-- lm-zoo:end -->`` and
the raw results into ``benchmarks/zoo/results_lm.json``.

Options as the classifier zoo's: ``--only``, ``--seeds``, ``--jobs``, ``--quick``, ``--write``,
``--no-write``, ``--render``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

__all__ = ["LM_END_MARKER", "LM_START_MARKER", "main", "render_lm", "run_lm_one", "run_lm_zoo"]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = Path(__file__).resolve().parent / "results_lm.json"
LM_START_MARKER = "<!-- lm-zoo:start -->"
LM_END_MARKER = "<!-- lm-zoo:end -->"


def run_lm_one(name: str, seed: int, quick: bool = False) -> dict[str, Any]:
    """Train one LM scenario at one seed; its JSON-safe result with the anchors' verdicts added (on the
    run's own token-mean validation loss) and the largest distance between FitWatch's loss series and the
    run's own."""
    from benchmarks.zoo.anchors import anchors
    from fitwatch.scenarios.lm import run_lm_scenario

    logging.getLogger("fitwatch").addHandler(logging.NullHandler())
    logging.getLogger("fitwatch").propagate = False
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        result = run_lm_scenario(name, seed=seed, quick=quick)
    out = result.to_dict()
    out["expected_text"] = result.scenario.expected_text
    val, train = list(result.series["raw_val_loss"]), list(result.series["raw_train_loss"])
    out["anchors"] = anchors(val, train)
    out["loss_agreement"] = {
        split: _max_abs_diff(result.series[f"{split}_loss"], result.series[f"raw_{split}_loss"])
        for split in ("val", "train")
    }
    return out


def _max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float | None:
    diffs = [abs(x - y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    return max(diffs) if diffs else None


def run_lm_zoo(
    names: Sequence[str], seeds: Sequence[int] | None = None, *, jobs: int = 1, quick: bool = False
) -> list[dict[str, Any]]:
    """Every (LM scenario, seed) run, in registry order; ``seeds`` replaces each scenario's own."""
    from fitwatch.scenarios.lm import LM_SCENARIOS

    plan = [(n, s) for n in names for s in (seeds if seeds is not None else LM_SCENARIOS[n].seeds)]
    if jobs <= 1:
        runs = []
        for name, seed in plan:
            runs.append(run_lm_one(name, seed, quick))
            _progress(runs[-1])
        return runs
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        runs = [f.result() for f in [pool.submit(run_lm_one, n, s, quick) for n, s in plan]]
    for run in runs:
        _progress(run)
    return runs


def _progress(run: Mapping[str, Any]) -> None:
    codes = ", ".join(run["raised"]) or "none"
    print(
        f"  {run['scenario']} (seed {run['seed']}): {codes} [{run['wall_s']:.0f} s]",
        file=sys.stderr,
        flush=True,
    )


def _curve(run: Mapping[str, Any]) -> str:
    """Two table cells: the run's own validation loss (first, minimum at its evaluation, last) and its last
    training loss."""
    val = [x for x in run["series"]["raw_val_loss"] if x is not None and math.isfinite(x)]
    train = [x for x in run["series"]["raw_train_loss"] if x is not None and math.isfinite(x)]
    if not val:
        return "- | -"
    best = min(range(len(val)), key=val.__getitem__)
    text = f"{val[0]:.2f} → min {val[best]:.2f} (eval {best}) → {val[-1]:.2f}"
    return text + " | " + (f"{train[-1]:.2f}" if train else "-")


def render_lm(runs: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """The classifier zoo's table and summary for the LM runs, then the loss curves of each run."""
    from benchmarks.zoo.report import render

    table = render(runs, summary)
    diffs = {
        split: [d for r in runs if (d := (r.get("loss_agreement") or {}).get(split)) is not None]
        for split in ("val", "train")
    }
    if any(diffs.values()):
        agreement = (
            "- FitWatch's token-mean losses against the run's own, largest difference over every evaluation: "
            + ", ".join(
                f"{'validation' if k == 'val' else 'training'} {max(v):.2g}" for k, v in diffs.items() if v
            )
            + "."
        )
        head, sep, tail = table.partition("\n\nWhat the data faults did")
        table = head + "\n" + agreement + sep + tail
    lines = [table]
    lines += [
        "",
        "The runs' own token-mean losses (computed outside FitWatch; what each fault does to the curves):",
        "",
        "| scenario | seed | validation loss: first → min (eval) → last | last training loss | final LR |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        lr = [x for x in r["series"].get("lr", []) if x is not None and math.isfinite(x)]
        lines.append(
            f"| {r['scenario']} | {r['seed']} | {_curve(r)} | {lr[-1]:.1e} |"
            if lr
            else f"| {r['scenario']} | {r['seed']} | {_curve(r)} | - |"
        )
    return "\n".join(lines)


def _docs_section(table: str, *, quick: bool, environment: Mapping[str, Any]) -> str:
    from fitwatch.scenarios.lm import LM_SCENARIOS

    described = "; ".join(f"`{s.name}`: {s.description}" for s in LM_SCENARIOS.values())
    return (
        "Generated by `python -m benchmarks.zoo --lm`" + (" --quick" if quick else "") + " (one row per run; "
        "evaluations are 0-based, one per epoch). A GPT-2 built from a config (2 layers, width 64, 2 heads, "
        "48 positions, a 2,048-word vocabulary built from the corpus; nothing downloaded) is fine-tuned with "
        "Lightning on the CPU on prompt/completion pairs made from the standard library's docstrings "
        "(`fitwatch.scenarios.lm_data`: parsed with `ast`, deduplicated exactly and nearly; prompt "
        "`below is a python function . write its docstring . function : <name> docstring :`, completion the "
        'docstring\'s first paragraph, prompt positions at -100), with `FitWatch(task="causal_lm")`. Columns '
        "as in the classifier zoo above; the anchors run on the run's own token-mean validation loss. "
        f"Scenarios: {described}. "
        f"Run with Python {environment.get('python', '?')} ({environment.get('documents', '?')} documents "
        "in the deduplicated corpus of that Python's standard library).\n\n" + table
    )


def _parser() -> argparse.ArgumentParser:
    from benchmarks.zoo.cli import add_run_options

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.zoo --lm", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--lm", action="store_true", help=argparse.SUPPRESS)
    add_run_options(parser, names="LM scenario names", results="results_lm.json", log_dir=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 1 when a fault run missed its codes or a healthy run raised a warning."""
    from benchmarks.zoo.report import summarize, write_between_markers
    from fitwatch.scenarios.lm import LM_SCENARIOS

    args = _parser().parse_args(argv)
    if args.render:
        saved = json.loads(RESULTS.read_text())
        table = render_lm(saved["runs"], saved["summary"])
        print(table)
        if not args.no_write:
            section = _docs_section(table, quick=False, environment=saved.get("environment", {}))
            write_between_markers(
                DOCS, section, start=LM_START_MARKER, end=LM_END_MARKER, title="The language-model zoo"
            )
        return _status(saved["summary"])
    names = list(LM_SCENARIOS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in LM_SCENARIOS]
    if unknown:
        print(
            f"Unknown LM scenario(s) {unknown}; expected some of: {', '.join(LM_SCENARIOS)}.", file=sys.stderr
        )
        return 2
    try:
        seeds = None if not args.seeds else [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"Expected --seeds to be comma-separated ints, but got {args.seeds!r}.", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"Expected --jobs to be a positive int, but got {args.jobs}.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    runs = run_lm_zoo(names, seeds, jobs=args.jobs, quick=args.quick)
    summary = summarize(runs)
    summary["elapsed_s"] = round(time.perf_counter() - started, 1)
    table = render_lm(runs, summary)
    print(table)
    partial = args.quick or bool(args.only) or seeds is not None
    if not args.no_write and (args.write or not partial):
        from fitwatch.scenarios.lm_data import sft_corpus

        environment = {"python": platform.python_version(), "documents": len(sft_corpus()[1])}
        section = _docs_section(table, quick=args.quick, environment=environment)
        write_between_markers(
            DOCS, section, start=LM_START_MARKER, end=LM_END_MARKER, title="The language-model zoo"
        )
        payload = {"summary": summary, "environment": environment, "runs": runs}
        RESULTS.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
        print(f"\nWrote {DOCS.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}.", file=sys.stderr)
    return _status(summary)


def _status(summary: Mapping[str, Any]) -> int:
    return 1 if summary["missed"] or summary["healthy_with_false_alarm"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
