"""The zoo's table and summary, from the runs' plain results (no torch, no Lightning).

A *run* here is the JSON-safe dict of :meth:`fitwatch.scenarios.ScenarioResult.to_dict` plus
``"anchors"`` (:func:`benchmarks.zoo.anchors.anchors` on its validation and training losses) and
``"expected_text"``; a *check* is the dict of :meth:`fitwatch.scenarios.pipelines.PipelineResult.to_dict`
(preprocessing compared without training). :func:`summarize` reduces them to the headline numbers;
:func:`render` writes the markdown table of the runs with those numbers under it, then what the data faults
did in numbers and the pipeline checks; :func:`write_between_markers` puts it in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

__all__ = [
    "ANCHOR_COLUMNS",
    "END_MARKER",
    "START_MARKER",
    "data_facts_text",
    "render",
    "summarize",
    "write_between_markers",
]

START_MARKER = "<!-- zoo:start -->"
END_MARKER = "<!-- zoo:end -->"
#: Anchor keys of :func:`benchmarks.zoo.anchors.anchors` and their column titles.
ANCHOR_COLUMNS = {
    "lightning_es_p3": "ES p3",
    "hf_es_p1": "HF p1",
    "reduce_lr_on_plateau": "RLROP",
    "prechelt_gl2": "GL2",
    "prechelt_pq0.75": "PQ0.75",
    "prechelt_up2": "UP2",
}
_SEVERITY_LETTER = {"info": "I", "warning": "W", "critical": "C"}


def summarize(runs: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The headline numbers of the zoo.

    Returns:
        ``fault_runs`` and ``detected`` (fault runs whose expected codes were all raised), ``missed`` (their
        names), ``median_delay`` (evaluations from onset to detection over the detected fault runs),
        ``healthy_runs``, ``healthy_with_false_alarm`` and ``false_alarms`` (``{scenario/seed: codes}``: every
        warning-level finding on a healthy run), ``collateral`` (warning-level codes a fault run raised that
        its scenario neither expects nor accepts), ``wall_s`` (total training time); for the pipeline checks,
        ``pipeline_faults`` and ``pipeline_detected`` (raised their code and named the moved stage),
        ``pipeline_controls`` and ``pipeline_false_alarms`` (controls that raised anything); for the runs whose
        onset is a validation minimum (``onset_rule`` ``min_val_loss`` or ``min_val_nll``), ``overfit_runs``,
        ``overfit_median_delay`` and ``anchor_median_delay`` (each anchor's median offset from the onset over
        those runs), and ``anchor_healthy_stops`` (healthy runs each anchor would have stopped).

    >>> def run(name, healthy, delay, false_alarms=()):
    ...     return {"scenario": name, "seed": 0, "healthy": healthy, "detected": True, "delay": delay,
    ...             "false_alarms": list(false_alarms), "wall_s": 2}
    >>> runs = [run("a", False, 1), run("b", False, 4), run("h", True, None, ["FW-PLATEAU"])]
    >>> s = summarize(runs)
    >>> s["detected"], s["median_delay"], s["healthy_with_false_alarm"], s["false_alarms"]
    (2, 2.5, 1, {'h/0': ['FW-PLATEAU']})
    """
    faults = [r for r in runs if not r["healthy"]]
    healthy = [r for r in runs if r["healthy"]]
    delays = [r["delay"] for r in faults if r["detected"] and r["delay"] is not None]
    false_alarms = {
        f"{r['scenario']}/{r['seed']}": list(r["false_alarms"]) for r in healthy if r["false_alarms"]
    }
    collateral = {
        f"{r['scenario']}/{r['seed']}": list(r["false_alarms"]) for r in faults if r["false_alarms"]
    }
    overfit = [r for r in faults if r.get("onset_rule") in ("min_val_loss", "min_val_nll")]
    overfit_delays = [r["delay"] for r in overfit if r["detected"] and r["delay"] is not None]
    anchor_delays = {
        key: [r["anchors"][key] - r["onset"] for r in overfit if r.get("anchors", {}).get(key) is not None]
        for key in ANCHOR_COLUMNS
    }
    return {
        "overfit_runs": len(overfit),
        "overfit_median_delay": median(overfit_delays) if overfit_delays else None,
        "anchor_median_delay": {k: median(v) if v else None for k, v in anchor_delays.items()},
        "anchor_healthy_stops": {
            key: sum(1 for r in healthy if r.get("anchors", {}).get(key) is not None)
            for key in ANCHOR_COLUMNS
        },
        "fault_runs": len(faults),
        "detected": sum(1 for r in faults if r["detected"]),
        "missed": [f"{r['scenario']}/{r['seed']}" for r in faults if not r["detected"]],
        "median_delay": median(delays) if delays else None,
        "delays": delays,
        "healthy_runs": len(healthy),
        "healthy_with_false_alarm": len(false_alarms),
        "false_alarms": false_alarms,
        "collateral": collateral,
        "wall_s": round(sum(float(r["wall_s"]) for r in runs), 1),
        "pipeline_faults": sum(1 for c in checks if not c["healthy"]),
        "pipeline_detected": sum(1 for c in checks if not c["healthy"] and c["detected"]),
        "pipeline_controls": sum(1 for c in checks if c["healthy"]),
        "pipeline_false_alarms": sum(1 for c in checks if c["healthy"] and c["raised"]),
    }


def _codes(run: Mapping[str, Any]) -> str:
    expected = {c for group in run["expected"] for c in group}
    parts = []
    for code, raised in run["raised"].items():
        text = f"{code} ({_SEVERITY_LETTER.get(raised['severity'], '?')})"
        parts.append(f"**{text}**" if code in expected else text)
    return ", ".join(parts) or "-"


def _anchor(index: int | None, onset: int | None) -> str:
    if index is None:
        return "-"
    if onset is None:
        return str(index)
    return f"{index} ({index - onset:+d})"


def _delay(run: Mapping[str, Any]) -> str:
    if run["healthy"]:
        return ""
    if not run["detected"]:
        return "missed"
    if run["delay"] is None:
        return f"at {run['detection']}"
    return f"{run['detection']} ({run['delay']:+d})"


def render(
    runs: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    checks: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The zoo table as markdown (one row per run), the summary under it, then the data faults in numbers
    (runs whose ``data`` is not empty) and the pipeline checks."""
    head = ["scenario", "seed", "expected", "codes raised (severity)", "onset", "detected at (delay)"]
    head += list(ANCHOR_COLUMNS.values()) + ["s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in runs:
        onset = r.get("onset")
        row = [
            r["scenario"],
            str(r["seed"]),
            r.get("expected_text") or "-",
            _codes(r),
            "" if onset is None else str(onset),
            _delay(r),
            *(_anchor(r["anchors"].get(key), onset) for key in ANCHOR_COLUMNS),
            f"{float(r['wall_s']):.0f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    s = summary
    delay = "n/a" if s["median_delay"] is None else f"{s['median_delay']:g}"
    lines += [
        "",
        f"- Fault runs that raised their expected codes: **{s['detected']} of {s['fault_runs']}**"
        + (f" (missed: {', '.join(s['missed'])})" if s["missed"] else "")
        + f"; median detection **{delay} evaluations** after onset.",
        f"- Healthy runs with a warning-level finding (false alarm): **{s['healthy_with_false_alarm']} of "
        f"{s['healthy_runs']}**"
        + (
            ": " + "; ".join(f"{k}: {', '.join(v)}" for k, v in s["false_alarms"].items())
            if s["false_alarms"]
            else ""
        )
        + ".",
        *_overfit_line(s),
        "- Other warning-level codes on fault runs (neither expected nor accepted): "
        + ("; ".join(f"{k}: {', '.join(v)}" for k, v in s["collateral"].items()) or "none")
        + ".",
        f"- Training time of all runs: {s['wall_s']:.0f} s"
        + (f" ({s['elapsed_s']:.0f} s in all, with data preparation)." if "elapsed_s" in s else "."),
    ]
    data_rows = [r for r in runs if r.get("data")]
    if data_rows:
        lines += [
            "",
            "What the data faults did, in numbers:",
            "",
            "| scenario | seed | measured |",
            "|---|---|---|",
        ]
        lines += [f"| {r['scenario']} | {r['seed']} | {data_facts_text(r['data'])} |" for r in data_rows]
    if checks:
        lines += [
            "",
            (
                "Preprocessing compared without training (`fitwatch.data.compare_pipelines` on generated "
                "tickets, the golden records):"
            ),
            "",
            "| scenario | seed | expected | codes raised | records that differ | stage named | s |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in checks:
            named = c["named_stage"] or "-"
            if not c["healthy"]:
                named = f"{named} ({'the moved stage' if c['detected'] else 'expected ' + str(c['moved'])})"
            expected = ", ".join(f"**{x}**" for x in c["expected"]) or "-"
            row = [c["scenario"], str(c["seed"]), expected, ", ".join(c["raised"]) or "-"]
            row += [f"{c['differ']} of {c['records']}", named, f"{float(c['wall_s']):.2f}"]
            lines.append("| " + " | ".join(row) + " |")
        lines += [
            "",
            (
                f"- Swapped pipelines reported with the moved stage named: **{s.get('pipeline_detected', 0)} of "
                f"{s.get('pipeline_faults', 0)}**; controls with a finding: "
                f"**{s.get('pipeline_false_alarms', 0)} of {s.get('pipeline_controls', 0)}**."
            ),
        ]
        example = next((c for c in checks if not c["healthy"] and c.get("report_head")), None)
        if example is not None:
            report = example["report_head"] + (
                "\n\n" + example["report_example"] if example["report_example"] else ""
            )
            lines += [
                "",
                f"The report of `{example['scenario']}` (seed {example['seed']}), first record:",
                "",
                "```",
            ]
            lines += [report, "```"]
    return "\n".join(lines)


def _overfit_line(s: Mapping[str, Any]) -> list[str]:
    """The overfitting runs against the anchors: delays on them, stops on the healthy runs."""
    if not s.get("overfit_runs") or s.get("overfit_median_delay") is None:
        return []
    delays = ", ".join(
        f"{title} {d:+g}"
        for key, title in ANCHOR_COLUMNS.items()
        if (d := s["anchor_median_delay"].get(key)) is not None
    )
    stops = ", ".join(
        f"{title} {s['anchor_healthy_stops'].get(key, 0)}" for key, title in ANCHOR_COLUMNS.items()
    )
    line = (
        f"- Overfitting runs (onset at the validation minimum, {s['overfit_runs']} runs): FitWatch's median "
        f"delay **{s['overfit_median_delay']:+g} evaluations**; the anchors' medians on the same runs: {delays}. "
        f"On the {s['healthy_runs']} healthy runs the anchors would have stopped: {stops}; FitWatch warned on "
        f"{s['healthy_with_false_alarm']}."
    )
    return [line]


def data_facts_text(facts: Mapping[str, Any]) -> str:
    """One table cell that says what a run's data fault did (see ``ScenarioResult.data``).

    >>> data_facts_text({"duplicate_fraction": 0.25, "val_accuracy": 0.9, "val_clean_accuracy": 0.87})
    '25.0% of validation has a copy in training; final validation accuracy 0.900, 0.870 on the part with no copy (+3.0 points of inflation)'
    >>> data_facts_text({"duplicate_fraction": 0.2, "val_loss": 5.40, "val_clean_loss": 5.45})
    '20.0% of validation has a copy in training; final validation loss 5.400, 5.450 on the part with no copy (+0.050 hidden by the copies)'
    >>> data_facts_text({"flipped": 300, "listed": 20, "precision_at_listed": 0.9, "precision_at_flipped": 0.7})
    '300 training labels flipped; 18 of the 20 suspects named are flipped (precision 0.90); precision at 300 (the 300 lowest areas under the margin) 0.70'
    """
    parts = []
    if facts.get("train_loss") is not None:
        nll = facts.get("train_nll")
        parts.append(
            f"final training loss {facts['train_loss']:.4f}"
            + (f", NLL of the same batches' logits {nll:.4f}" if nll is not None else "")
        )
    if "val_1_loss" in facts:
        one = facts["val_1_loss"]
        val = facts.get("val_loss")
        parts.append(
            f"final loss val {'not recorded' if val is None else f'{val:.4f}'}, val_1 "
            + ("not recorded" if one is None else f"{one:.4f}")
        )
    if "eval_loss" in facts:
        base = facts["eval_loss"]
        parts.append(
            "validate() before fit: "
            + ("not recorded" if base is None else f"loss {base:.4f} under eval")
            + (
                f"; first val loss of the fit {facts['first_val_loss']:.4f}"
                if facts.get("first_val_loss") is not None
                else ""
            )
        )
    if facts.get("duplicate_fraction") is not None:
        part = f"{facts['duplicate_fraction']:.1%} of validation has a copy in training"
        acc, clean = facts.get("val_accuracy"), facts.get("val_clean_accuracy")
        if acc is not None and clean is not None:
            part += (
                f"; final validation accuracy {acc:.3f}, {clean:.3f} on the part with no copy "
                f"({100 * (acc - clean):+.1f} points of inflation)"
            )
        loss, clean_loss = facts.get("val_loss"), facts.get("val_clean_loss")
        if acc is None and loss is not None and clean_loss is not None:
            part += (
                f"; final validation loss {loss:.3f}, {clean_loss:.3f} on the part with no copy "
                f"({clean_loss - loss:+.3f} hidden by the copies)"
            )
        parts.append(part)
    if facts.get("val_not_later_fraction") is not None:
        parts.append(
            f"{facts['val_not_later_fraction']:.1%} of validation is not later than the latest training sample"
        )
    if facts.get("flipped"):
        part = f"{facts['flipped']} training labels flipped"
        listed, precision = facts.get("listed"), facts.get("precision_at_listed")
        if listed and precision is not None:
            part += (
                f"; {round(precision * listed)} of the {listed} suspects named are flipped "
                f"(precision {precision:.2f})"
            )
        if facts.get("precision_at_flipped") is not None:
            n = facts["flipped"]
            part += f"; precision at {n} (the {n} lowest areas under the margin) {facts['precision_at_flipped']:.2f}"
        parts.append(part)
    return "; ".join(parts) or "-"


def write_between_markers(
    path: str | Path,
    content: str,
    *,
    start: str = START_MARKER,
    end: str = END_MARKER,
    title: str = "The zoo: real runs, healthy and broken",
) -> None:
    """Replace what lies between the ``start`` and ``end`` markers (default: :data:`START_MARKER` and
    :data:`END_MARKER`) in ``path`` with ``content``.

    A missing file is created with a title and the markers; a file without the markers gets them appended
    under a ``## title`` heading, so other sections of the page (written by other tools between their own
    markers) stay as they are.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "b.md"
    >>> write_between_markers(p, "one"); write_between_markers(p, "two")
    >>> p.read_text().count("two"), "one" in p.read_text()
    (1, False)
    """
    path = Path(path)
    block = f"{start}\n{content.rstrip()}\n{end}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Benchmarks\n\n## {title}\n\n{block}\n")
        return
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n{block}\n"
    path.write_text(text)
