"""Images drawn from plain numbers: confusion matrices and reliability diagrams (matplotlib, Agg).

Each function returns an ``[H, W, 3]`` uint8 array, ready for ``SummaryWriter.add_image(..., dataformats="HWC")``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["confusion_matrix_image", "reliability_diagram_image"]


#: Resolution of the images: TensorBoard shows them at about this size; more only costs drawing time.
DPI = 72


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure  # the object API needs no global backend or pyplot state

    return Figure(figsize=(width, height), dpi=DPI)


def _to_array(fig) -> np.ndarray:  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def confusion_matrix_image(matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str = "") -> np.ndarray:
    """Counts (left) and row-normalised recall (right) side by side; rows are true classes."""
    counts = np.asarray(matrix, dtype=np.float64)
    k = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = min(4.0 + 0.35 * k, 18.0)
    fig = _figure(2 * size + 1.0, size + 0.6)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.93, wspace=0.25)
    annotate = k <= 20
    for i, (data, label, fmt) in enumerate(((counts, "counts", "{:.0f}"), (normalised, "row-normalised", "{:.2f}"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.imshow(data, cmap="Blues", vmin=0, vmax=1 if i else max(data.max(), 1))
        ax.set_title(f"{title} {label}".strip(), fontsize=10)
        ticks = range(k)
        names = [str(n)[:14] for n in class_names]
        if k <= 40:
            ax.set_xticks(ticks, names, rotation=90, fontsize=7)
            ax.set_yticks(ticks, names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if annotate:
            threshold = data.max() / 2 if data.max() > 0 else 0.5
            for r in range(k):
                for c in range(k):
                    if data[r, c] > 0:  # empty cells stay blank: fewer glyphs to draw, easier to read
                        ax.text(c, r, fmt.format(data[r, c]), ha="center", va="center", fontsize=6,
                                color="white" if data[r, c] > threshold else "black")
    return _to_array(fig)


def reliability_diagram_image(reliability: Mapping[str, Sequence[float]], *, ece: float | None = None, title: str = "") -> np.ndarray:
    """Accuracy vs. confidence per bin with the diagonal (Guo et al. 2017, Fig. 1), and bin counts below."""
    acc = np.asarray(reliability.get("accuracy", []), dtype=np.float64)
    conf = np.asarray(reliability.get("confidence", []), dtype=np.float64)
    count = np.asarray(reliability.get("count", []), dtype=np.float64)
    n_bins = len(acc)
    edges = np.linspace(0, 1, n_bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    width = 1.0 / max(n_bins, 1)
    fig = _figure(5.0, 5.6)
    ax = fig.add_axes((0.13, 0.34, 0.82, 0.58))
    ok = ~np.isnan(acc)
    ax.bar(centers[ok], acc[ok], width=width, edgecolor="black", color="#4c72b0", label="accuracy")
    gap_bottom = np.minimum(acc[ok], conf[ok])
    ax.bar(centers[ok], np.abs(conf[ok] - acc[ok]), bottom=gap_bottom, width=width, color="#dd8452", alpha=0.6,
           edgecolor="#dd8452", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    label = title + (f"  ECE={ece:.4f}" if ece is not None and math.isfinite(ece) else "")
    ax.set_title(label.strip(), fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xticklabels([])
    hist = fig.add_axes((0.13, 0.08, 0.82, 0.2))
    hist.bar(centers, count, width=width, color="gray", edgecolor="black")
    hist.set_xlim(0, 1)
    hist.set_xlabel("confidence")
    hist.set_ylabel("samples")
    return _to_array(fig)
