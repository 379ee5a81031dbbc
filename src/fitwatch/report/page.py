"""One self-contained HTML page for a report: each run's key curves (matplotlib, embedded as base64 PNG)
with every finding marked on its curve at the step it was first raised, and the findings table.

Curves, each drawn when its series exist: training vs validation loss; accuracy and macro F1; the
train-validation gaps the Monitor computed; calibration (ECE and the ECE chance level); per-class
validation recall; the learning rate of each param group.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fitwatch.report.build import Report, ReportedFinding, RunReport
from fitwatch.report.render import SEVERITY_STYLE, display_path, when

__all__ = ["CURVE_OF_CODE", "Curve", "curves", "render_html"]

Points = Sequence[tuple[int, float]]

#: The curve each finding is marked on (the loss curve for codes not listed, or when that curve is not drawn).
CURVE_OF_CODE: Mapping[str, str] = {
    "FW-OVERFIT": "loss",
    "FW-PLATEAU": "loss",
    "FW-DIVERGENCE": "loss",
    "FW-LOSS-SPIKES": "loss",
    "FW-GAP-WIDENING": "gap",
    "FW-OVERFIT-SUBTLE": "calibration",
    "FW-CALIBRATION": "calibration",
    "FW-LR-DECAYED": "lr",
    "FW-LR-TOO-HIGH": "lr",
    "FW-LR-TOO-LOW": "lr",
    "FW-LR-NO-WARMUP": "lr",
    "FW-CLASS-COLLAPSE": "per_class",
    "FW-CLASS-NEVER-PREDICTED": "per_class",
    "FW-FAILED-RUN": "accuracy",
    "FW-LEAK-SUSPICIOUS": "accuracy",
}
_SEVERITY_COLOUR = {"cyan": "#1f77b4", "yellow": "#d08c00", "bold red": "#c62828"}


@dataclass
class Curve:
    """One chart: named lines over steps, and the findings marked on it.

    Attributes:
        name: Stable identifier (``loss``, ``accuracy``, ``gap``, ``calibration``, ``per_class``, ``lr``).
        title: Chart title.
        ylabel: Label of the y axis.
        lines: ``(label, points, dashed)`` per line.
        log_y: Draw the y axis on a log scale.
        findings: Findings marked on this chart.
    """

    name: str
    title: str
    ylabel: str
    lines: list[tuple[str, Points, bool]]
    log_y: bool = False
    findings: list[ReportedFinding] = field(default_factory=list)


def _series(run: RunReport, role: str) -> dict[str, list[tuple[int, float]]]:
    return {k: v for k, v in run.series.get(role, {}).items() if v}


def _one(run: RunReport, role: str) -> list[tuple[int, float]]:
    return next(iter(_series(run, role).values()), [])


def curves(run: RunReport) -> list[Curve]:
    """The charts drawn for ``run``, in page order, each finding placed on one of them."""
    out: list[Curve] = []
    lines = [
        (label, points, dashed)
        for label, points, dashed in (
            ("train (logged)", _one(run, "train_loss"), False),
            ("train (mean since previous validation)", _one(run, "train_mean_loss"), False),
            ("validation", _one(run, "val_loss"), False),
        )
        if points
    ]
    if lines:
        out.append(Curve("loss", "Loss: training vs validation", "loss", lines))
    lines = [
        (label, points, dashed)
        for label, points, dashed in (
            ("train accuracy", _one(run, "train_accuracy"), False),
            ("validation accuracy", _one(run, "val_accuracy"), False),
            ("validation macro F1", _one(run, "val_f1"), True),
        )
        if points
    ]
    if lines:
        out.append(Curve("accuracy", "Accuracy and macro F1", "score", lines))
    lines = [
        (f"{metric} (val - train)", run.replay.history[f"gap/{metric}"], False)
        for metric in ("loss", "accuracy", "ece")
        if run.replay.history.get(f"gap/{metric}")
    ]
    if lines:
        out.append(Curve("gap", "Train-validation gap", "validation minus training", lines))
    lines = [
        (label, points, dashed)
        for label, points, dashed in (
            ("validation ECE", _one(run, "val_ece"), False),
            ("train ECE", _one(run, "train_ece"), False),
            ("ECE of a calibrated model (chance)", _one(run, "val_ece_chance"), True),
        )
        if points
    ]
    if lines:
        out.append(Curve("calibration", "Calibration (expected calibration error)", "ECE", lines))
    recall = _series(run, "class_recall")
    if recall:
        out.append(
            Curve(
                "per_class",
                "Per-class validation recall",
                "recall",
                [(k, v, False) for k, v in recall.items()],
            )
        )
    lrs = _series(run, "lr")
    if lrs:
        positive = all(v > 0 for points in lrs.values() for _, v in points if math.isfinite(v))
        out.append(
            Curve(
                "lr",
                "Learning rate",
                "learning rate",
                [(k, v, False) for k, v in lrs.items()],
                log_y=positive,
            )
        )
    by_name = {c.name: c for c in out}
    for reported in run.findings:
        target = by_name.get(CURVE_OF_CODE.get(reported.finding.code, "loss")) or by_name.get("loss")
        target = target or (out[0] if out else None)
        if target is not None:
            target.findings.append(reported)
    return out


def _png(curve: Curve) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # the object API needs no global backend or pyplot state

    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for label, points, dashed in curve.lines:
        xs = [s for s, _ in points]
        ys = [v if math.isfinite(v) else math.nan for _, v in points]
        ax.plot(
            xs,
            ys,
            "--" if dashed else "-",
            marker="o" if len(points) <= 60 else None,
            markersize=3,
            linewidth=1.2,
            label=label,
        )
    if curve.log_y:
        ax.set_yscale("log")
    at_step: dict[int, list[ReportedFinding]] = {}
    for reported in curve.findings:
        at_step.setdefault(reported.first_step, []).append(reported)
    for step, group in at_step.items():  # one line per step, its codes in one label: no overprinting
        worst = max(group, key=lambda r: r.finding.severity).finding.severity
        colour = _SEVERITY_COLOUR[SEVERITY_STYLE[worst]]
        ax.axvline(step, color=colour, linestyle=":", linewidth=1.5)
        ax.annotate(
            ", ".join(
                r.finding.code + (f" ({r.finding.subject})" if r.finding.subject else "") for r in group
            ),
            xy=(step, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -4),
            textcoords="offset points",
            rotation=90,
            va="top",
            ha="left",
            fontsize=7,
            color=colour,
        )
    ax.set_title(curve.title, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(curve.ylabel)
    ax.grid(alpha=0.3)
    if len(curve.lines) <= 12:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.info { color: #1f77b4; } .warning { color: #b07400; } .critical { color: #c62828; font-weight: bold; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
.meta { font-size: 0.85em; color: #555; } .error { color: #c62828; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _run_section(run: RunReport, name: str) -> str:
    parts = [f"<section class='run'><h2>{_e(name)}</h2>"]
    parts.append(
        f"<p class='meta'>{len(run.files)} event file(s), {run.replay.evaluations} evaluations, "
        f"{run.replay.step_records} training points; live findings: {_e(run.live_source or 'none')}</p>"
    )
    for error in run.errors:
        parts.append(f"<p class='error'>Could not read {_e(error.path)}: {_e(error.reason)}</p>")
    for note in run.notes:
        parts.append(f"<p class='meta'>Note: {_e(note)}</p>")
    if run.findings:
        parts.append(
            "<table><thead><tr><th>code</th><th>severity</th><th>when</th><th>source</th><th>message</th>"
            "<th>hint</th></tr></thead><tbody>"
        )
        for reported in run.findings:
            f = reported.finding
            level = f.severity.name.lower()
            subject = f" [{_e(f.subject)}]" if f.subject else ""
            parts.append(
                f"<tr><td>{_e(f.code)}{subject}</td><td class='{level}'>{level}</td>"
                f"<td>{_e(when(reported.first_step, reported.first_epoch))}</td>"
                f"<td>{_e('+'.join(reported.sources))}</td>"
                f"<td>{_e(f.message)}</td><td>{_e(f.hint)}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No findings.</p>")
    for curve in curves(run):
        data = base64.b64encode(_png(curve)).decode("ascii")
        marked = ", ".join(r.finding.code for r in curve.findings) or "no findings"
        parts.append(
            f"<figure data-curve='{_e(curve.name)}'>"
            f"<img alt='{_e(curve.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(curve.title)} (marked: {_e(marked)})</figcaption></figure>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: Report, *, title: str = "fitwatch report") -> str:
    """The report as one HTML page with no external resource.

    Args:
        report: The report.
        title: Page title.
    """
    sections = [_run_section(run, display_path(Path(run.run))) for run in report.runs]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
