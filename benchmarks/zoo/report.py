"""The zoo's table and summary, from the runs' plain results (no torch, no Lightning).

A *run* here is the JSON-safe dict of :meth:`fitwatch.scenarios.ScenarioResult.to_dict` plus
``"anchors"`` (:func:`benchmarks.zoo.anchors.anchors` on its validation and training losses) and
``"expected_text"``. :func:`summarize` reduces the runs to the headline numbers; :func:`render` writes
the one markdown table with those numbers under it; :func:`write_between_markers` puts it in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

__all__ = ["ANCHOR_COLUMNS", "END_MARKER", "START_MARKER", "render", "summarize", "write_between_markers"]

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


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The headline numbers of the zoo.

    Returns:
        ``fault_runs`` and ``detected`` (fault runs whose expected codes were all raised), ``missed`` (their
        names), ``median_delay`` (evaluations from onset to detection over the detected fault runs),
        ``healthy_runs``, ``healthy_with_false_alarm`` and ``false_alarms`` (``{scenario/seed: codes}``: every
        warning-level finding on a healthy run), ``collateral`` (warning-level codes a fault run raised that
        its scenario neither expects nor accepts), ``wall_s`` (total training time).

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
    return {
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


def render(runs: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """The zoo table as markdown (one row per run) and the summary under it."""
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
        "- Other warning-level codes on fault runs (neither expected nor accepted): "
        + ("; ".join(f"{k}: {', '.join(v)}" for k, v in s["collateral"].items()) or "none")
        + ".",
        f"- Training time of all runs: {s['wall_s']:.0f} s"
        + (f" ({s['elapsed_s']:.0f} s in all, with data preparation)." if "elapsed_s" in s else "."),
    ]
    return "\n".join(lines)


def write_between_markers(path: str | Path, content: str) -> None:
    """Replace what lies between :data:`START_MARKER` and :data:`END_MARKER` in ``path`` with ``content``.

    A missing file is created with a title and the markers; a file without the markers gets them appended,
    so other sections of the page (written by other tools between their own markers) stay as they are.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "b.md"
    >>> write_between_markers(p, "one"); write_between_markers(p, "two")
    >>> p.read_text().count("two"), "one" in p.read_text()
    (1, False)
    """
    path = Path(path)
    block = f"{START_MARKER}\n{content.rstrip()}\n{END_MARKER}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Benchmarks\n\n## The zoo: real runs, healthy and broken\n\n{block}\n")
        return
    text = path.read_text()
    pattern = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + f"\n\n## The zoo: real runs, healthy and broken\n\n{block}\n"
    path.write_text(text)
