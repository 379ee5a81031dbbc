"""The zoo: real short training runs, healthy and broken, that validate every detector.

``python -m benchmarks.zoo`` trains every scenario of :data:`fitwatch.scenarios.SCENARIOS` (Lightning on
the CPU, FitWatch attached) and prints one table: scenario, expected codes, codes raised (with severity),
the fault's onset and the evaluation of its detection, and what the usual stopping rules
(:mod:`benchmarks.zoo.anchors`) would have said on the same validation series; then the headline numbers
(fault runs caught, median delay, false alarms on the healthy runs); then what the data faults did in
numbers, and the pipeline checks of :mod:`fitwatch.scenarios.pipelines` (preprocessing compared on golden
records, no training). It writes the tables into
``docs/benchmarks.md`` between ``<!-- zoo:start -->`` and ``<!-- zoo:end -->`` and the raw results into
``benchmarks/zoo/results.json``.

Options: ``--only NAME[,NAME...]`` (scenarios, pipeline checks included), ``--seeds 0,1,...`` (instead of
each scenario's own),
``--jobs N`` (parallel runs, default 1: the machine is shared), ``--quick`` (each scenario's short version;
writes nothing unless ``--write``), ``--log-dir DIR`` (keep each run's TensorBoard files and checkpoints),
``--no-write``, ``--render`` (the table and docs again from ``results.json``, without training).

``--variants`` runs the zoo's variants instead (:mod:`benchmarks.zoo.variants`: loss-only modules and loop
shapes; their own tables between ``<!-- zoo-loss-only:start -->`` and ``<!-- zoo-loss-only:end -->``, results in
``benchmarks/zoo/results_variants.json``).

``--lm`` runs the language-model zoo instead (:mod:`benchmarks.zoo.lm`: GPT-2 fine-tunes on the standard
library's docstrings; its own table between ``<!-- lm-zoo:start -->`` and ``<!-- lm-zoo:end -->``, results in
``benchmarks/zoo/results_lm.json``), with the same options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

__all__ = ["PIPELINE_SEEDS", "main", "run_checks", "run_one", "run_zoo"]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = Path(__file__).resolve().parent / "results.json"
#: Seeds of the generated golden records of each pipeline check (a comparison takes a fraction of a second).
PIPELINE_SEEDS = (0, 1, 2)


def run_one(name: str, seed: int, quick: bool = False, log_dir: str | None = None) -> dict[str, Any]:
    """Train one scenario at one seed; its JSON-safe result with the anchors' verdicts added."""
    from benchmarks.zoo.anchors import anchors
    from fitwatch.scenarios import run_scenario

    # Findings are collected from FitWatch's history; the log lines and Lightning's advice are noise here.
    logging.getLogger("fitwatch").addHandler(logging.NullHandler())
    logging.getLogger("fitwatch").propagate = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        result = run_scenario(
            name,
            seed=seed,
            quick=quick,
            log_dir=None if log_dir is None else Path(log_dir) / f"{name}-{seed}",
        )
    out = result.to_dict()
    out["expected_text"] = result.scenario.expected_text
    out["anchors"] = anchors(list(result.series["val_loss"]), list(result.series["train_loss"]))
    return out


def run_zoo(
    names: Sequence[str],
    seeds: Sequence[int] | None = None,
    *,
    jobs: int = 1,
    quick: bool = False,
    log_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Every (scenario, seed) run, in registry order; ``seeds`` replaces each scenario's own seeds."""
    from fitwatch.scenarios import get_scenario

    plan = [(n, s) for n in names for s in (seeds if seeds is not None else get_scenario(n).seeds)]
    if jobs <= 1:
        runs = []
        for name, seed in plan:
            runs.append(run_one(name, seed, quick, log_dir))
            _progress(runs[-1])
        return runs
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one, name, seed, quick, log_dir) for name, seed in plan]
        runs = [f.result() for f in futures]
    for run in runs:
        _progress(run)
    return runs


def run_checks(names: Sequence[str], seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Every (pipeline check, seed) comparison, in registry order, as JSON-safe dicts."""
    from fitwatch.scenarios.pipelines import run_pipeline_scenario

    checks = [
        run_pipeline_scenario(name, seed=seed).to_dict()
        for name in names
        for seed in (seeds if seeds is not None else PIPELINE_SEEDS)
    ]
    for check in checks:
        print(
            f"  {check['scenario']} (seed {check['seed']}): {', '.join(check['raised']) or 'none'}",
            file=sys.stderr,
        )
    return checks


def _progress(run: dict[str, Any]) -> None:
    codes = ", ".join(run["raised"]) or "none"
    print(
        f"  {run['scenario']} (seed {run['seed']}): {codes} [{run['wall_s']:.0f} s]",
        file=sys.stderr,
        flush=True,
    )


def _parser() -> argparse.ArgumentParser:
    from benchmarks.zoo.cli import add_run_options

    parser = argparse.ArgumentParser(prog="python -m benchmarks.zoo", description=__doc__.split("\n\n")[0])
    add_run_options(parser, names="scenario names", results="results.json")
    parser.add_argument("--lm", action="store_true", help="run the language-model zoo (benchmarks.zoo.lm)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="run the loss-only and loop-shape variants (benchmarks.zoo.variants)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 when a fault run missed its codes)."""
    from benchmarks.zoo.report import render, summarize, write_between_markers
    from fitwatch.scenarios import SCENARIOS
    from fitwatch.scenarios.pipelines import PIPELINE_SCENARIOS

    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--lm" in arguments:
        from benchmarks.zoo.lm import main as lm_main

        return lm_main(arguments)
    if "--variants" in arguments:
        from benchmarks.zoo.variants import main as variants_main

        return variants_main(arguments)
    args = _parser().parse_args(arguments)
    if args.render:
        saved = json.loads(RESULTS.read_text())
        table = render(saved["runs"], saved["summary"], saved.get("checks", []))
        print(table)
        if not args.no_write:
            write_between_markers(DOCS, _docs_section(table, quick=False))
        return _status(saved["summary"])
    every = [*SCENARIOS, *PIPELINE_SCENARIOS]
    wanted = every if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in every]
    if unknown:
        print(f"Unknown scenario(s) {unknown}; expected some of: {', '.join(every)}.", file=sys.stderr)
        return 2
    names = [n for n in wanted if n in SCENARIOS]
    check_names = [n for n in wanted if n in PIPELINE_SCENARIOS]
    try:
        seeds = None if not args.seeds else [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"Expected --seeds to be comma-separated ints, but got {args.seeds!r}.", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"Expected --jobs to be a positive int, but got {args.jobs}.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    runs = run_zoo(names, seeds, jobs=args.jobs, quick=args.quick, log_dir=args.log_dir)
    checks = run_checks(check_names, seeds)
    summary = summarize(runs, checks)
    summary["elapsed_s"] = round(time.perf_counter() - started, 1)
    table = render(runs, summary, checks)
    print(table)
    partial = args.quick or bool(args.only) or seeds is not None
    if not args.no_write and (args.write or not partial):
        write_between_markers(DOCS, _docs_section(table, quick=args.quick))
        payload = {"summary": summary, "runs": runs, "checks": checks}
        RESULTS.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
        print(f"\nWrote {DOCS.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}.", file=sys.stderr)
    return _status(summary)


def _status(summary: Mapping[str, Any]) -> int:
    """Exit status: 1 when a fault run missed its codes or a swapped pipeline went unreported, else 0."""
    missed_check = summary.get("pipeline_detected", 0) < summary.get("pipeline_faults", 0)
    return 1 if summary["missed"] or missed_check else 0


def _docs_section(table: str, *, quick: bool) -> str:
    from fitwatch.scenarios import ONSETS

    onsets = "; ".join(f"`{k}`: {v}" for k, v in ONSETS.items() if k != "none")
    return (
        "Generated by `python -m benchmarks.zoo`"
        + (" --quick" if quick else "")
        + " (one row per run; evaluations are 0-based, one per epoch). "
        "Expected codes in bold; severity I(nfo), W(arning), C(ritical), the highest each code reached. "
        "*detected at (delay)*: the evaluation by which the first expected code was raised (at any severity: "
        "FW-REG-DECAY-ON-NORM is INFO by design, and a class not learned yet is INFO before half of training) "
        "and its distance from the onset; a false alarm is a warning-level finding on a healthy run. The anchor "
        "columns give where each usual rule would have stopped on the same validation-loss series (with its "
        "distance from the onset): Lightning `EarlyStopping(patience=3)`, HF `EarlyStoppingCallback(patience=1)`, "
        "`ReduceLROnPlateau` defaults (first reduction), Prechelt (1998) GL2, PQ0.75 and UP2 (strips of 5 "
        "evaluations). "
        f"Onsets: {onsets}. "
        "Data faults: every run checks duplicates and label shift at fit start; the `temporal-tickets` "
        "and `healthy-tickets-by-time` runs name the tickets' `timestamp` as the time field, "
        "`mislabels-tickets` tracks the area under the margin per training sample id (Pleiss et al. 2020), "
        "whose finding ranks the whole run at its end. FW-OVERFIT and FW-OVERFIT-SUBTLE are confirmed early when the rise is corroborated "
        "(training loss down 20% and ECE up beyond chance or accuracy down beyond its noise); without that, "
        "short runs wait until the noise of the validation loss can be measured: "
        "`python -m benchmarks.zoo.limits` prints, per overfitting run, the noise against the rise per "
        "evaluation and the delay a detector told the noise in advance would reach.\n\n" + table
    )
