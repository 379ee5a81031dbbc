"""One self-contained HTML page for a report. Per run, first the verdict line, the best checkpoint and the final
validation metrics (the same lines as the text report, :func:`fitwatch.report.render.summary_lines`), then the
findings table, the key curves (matplotlib, embedded as base64 PNG) with every finding marked on its curve at the
step it was first raised, the latest confusion matrix and reliability diagram, and the per-class table.

Axes are scaled to the data that matters: the loss chart's y axis spans the points from the second validation on
(the first losses of an untrained model would otherwise squash a 45% validation rise into a flat line),
and says so when it cuts earlier points off. The confusion matrix and reliability diagram are the images the
callbacks drew at the last evaluation (:mod:`fitwatch.sinks.figures`), read back from the event files.

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
from fitwatch.report.render import SEVERITY_STYLE, display_path, summary_lines, when

__all__ = ["CURVE_OF_CODE", "Curve", "curves", "data_limits", "figures", "per_class_rows", "render_html"]

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
    from_step: int | None = None


def data_limits(lines: Sequence[Points], *, from_step: int | None = None, pad: float = 0.06) -> tuple[float, float] | None:
    """The y range of the finite values of ``lines`` at or after ``from_step``, padded by ``pad`` of the span.

    >>> data_limits([[(0, 2.3), (100, 0.40), (200, 0.58)]], from_step=100)
    (0.3892, 0.5908)
    >>> data_limits([[(0, 1.0)]]) is None
    True
    """
    values = [v for points in lines for s, v in points if math.isfinite(v) and (from_step is None or s >= from_step)]
    if len(values) < 2:
        return None
    low, high = min(values), max(values)
    span = high - low or abs(high) or 1.0
    return round(low - pad * span, 6), round(high + pad * span, 6)


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
        val = _one(run, "val_loss")
        # From the second validation on (the first evaluates a barely trained model): the part where overfitting shows.
        start = val[1][0] if len(val) >= 4 else val[0][0] if val else None
        out.append(Curve("loss", "Loss: training vs validation", "loss", lines, from_step=start))
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
    else:
        limits = data_limits([points for _, points, _ in curve.lines], from_step=curve.from_step)
        if limits is not None and limits[0] < limits[1]:
            ax.set_ylim(*limits)
            cut = any(
                math.isfinite(v) and not limits[0] <= v <= limits[1] for _, points, _ in curve.lines for _, v in points
            )
            if cut:
                ax.text(0.01, 0.02, "y axis scaled to the points from the second validation on",
                        transform=ax.transAxes, fontsize=7, color="#555")
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
.verdict { font-size: 1.1em; font-weight: bold; padding: 6px 10px; border-left: 5px solid #2e7d32; background: #f3f8f3; }
.verdict.info { border-color: #1f77b4; } .verdict.warning { border-color: #d08c00; background: #fff8e6; }
.verdict.critical { border-color: #c62828; background: #fdecea; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def figures(run: RunReport) -> dict[str, bytes]:
    """The latest confusion matrix and reliability diagram the callbacks drew for ``run`` (PNG bytes), validation
    first, read from its event files: ``{"confusion_matrix": ..., "reliability_diagram": ...}`` for those found."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:  # the report reads TensorBoard files with it; other loggers' runs have no images
        return {}
    out: dict[str, tuple[int, int, bytes]] = {}  # name -> (validation first, step, png)
    for directory in sorted({Path(f).parent for f in run.files}):
        try:
            accumulator = EventAccumulator(str(directory), size_guidance={"images": 1, "scalars": 1, "tensors": 1})
            accumulator.Reload()
            tags = accumulator.Tags().get("images", [])
        except Exception:  # noqa: BLE001  (a damaged file: the figures are a bonus, the report stands)
            continue
        for tag in tags:
            name = next((n for n in ("confusion_matrix", "reliability_diagram") if n in tag), None)
            if name is None:
                continue
            events = accumulator.Images(tag)
            if not events:
                continue
            event = events[-1]
            is_val = int("val" in tag.split("/") or directory.name == "val")
            found = (is_val, event.step, event.encoded_image_string)
            if name not in out or found[:2] > out[name][:2]:
                out[name] = found
    return {name: png for name, (_, _, png) in out.items()}


#: Columns of the per-class table, as ``(role, header)``.
_CLASS_COLUMNS = (("class_precision", "precision"), ("class_recall", "recall"), ("class_f1", "F1"),
                  ("class_support", "support"), ("class_predicted", "predicted"))


def per_class_rows(run: RunReport) -> list[tuple[str, list[float | None]]]:
    """``(class, [precision, recall, F1, support, predicted])`` at the last evaluation, worst recall first."""
    names: list[str] = []
    for role, _ in _CLASS_COLUMNS:
        names += [k for k in _series(run, role) if k not in names]
    rows = []
    for name in names:
        row = []
        for role, _ in _CLASS_COLUMNS:
            points = [v for _, v in run.series.get(role, {}).get(name, []) if math.isfinite(v)]
            row.append(points[-1] if points else None)
        rows.append((name, row))
    rows.sort(key=lambda r: (r[1][1] if r[1][1] is not None else math.inf, r[0]))
    return rows


def _cell(value: float | None, column: str) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if column in ("support", "predicted") else f"{value:.3f}"


def _run_section(run: RunReport, name: str) -> str:
    parts = [f"<section class='run'><h2>{_e(name)}</h2>"]
    verdict, *details = summary_lines(run)
    worst = max((r.finding.severity for r in run.findings), default=None)
    level = "healthy" if worst is None else worst.name.lower()
    parts.append(f"<p class='verdict {level}'>{_e(verdict)}</p>")
    if details:
        parts.append("<ul class='summary'>" + "".join(f"<li>{_e(line)}</li>" for line in details) + "</ul>")
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
    drawn = figures(run)
    for key, title in (("confusion_matrix", "Confusion matrix (last evaluation)"),
                       ("reliability_diagram", "Reliability diagram (last evaluation)")):
        png = drawn.get(key)
        if png:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure data-figure='{key}'><img alt='{_e(title)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{_e(title)}</figcaption></figure>")
    rows = per_class_rows(run)
    if rows:
        header = "".join(f"<th>{_e(h)}</th>" for _, h in _CLASS_COLUMNS)
        parts.append(f"<h3>Per class (last evaluation, lowest recall first)</h3><table class='per-class'><thead><tr>"
                     f"<th>class</th>{header}</tr></thead><tbody>")
        for cls, row in rows:
            cells = "".join(f"<td>{_cell(v, h)}</td>" for v, (_, h) in zip(row, _CLASS_COLUMNS))
            parts.append(f"<tr><td>{_e(cls)}</td>{cells}</tr>")
        parts.append("</tbody></table>")
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
