"""Images drawn from plain numbers: confusion matrices and reliability diagrams (matplotlib's object API, Agg).

Each function returns an ``[H, W, 3]`` uint8 array, ready for ``SummaryWriter.add_image(..., dataformats="HWC")``.

Cost (issue 15). Building a matplotlib figure is what costs: axes, ticks and one text artist per annotated cell
took 80-1,350 ms per confusion matrix and ~130 ms per reliability diagram, and left 4,000-52,000 objects in
reference cycles per image for the garbage collector (full collections of 0.5-0.8 s every few evaluations). So
each kind of figure is built once per layout (class count, bin count) and kept; a later call only updates its
data (image values, cell texts and colours, bar heights, titles) and draws again. Nothing is created per call,
so nothing is left for the garbage collector, and a draw costs a few tens of milliseconds. No pyplot: no global
state, no GUI backend, usable from any thread (a lock serialises the shared figures).

Legibility (issue 14): sized for TensorBoard's image card (about 500-650 pixels wide) with 8-10 pt text at
100 dpi. The confusion matrix is one panel: colour is the share of the true class (row-normalised, so a rare
class is as visible as a frequent one), the number in each cell is the count; above :data:`MAX_SHOWN` classes it
shows the :data:`MAX_SHOWN` classes most involved in confusions and says so in its title. The reliability diagram
draws accuracy as filled bars and the gap to the mean confidence as an outline (which never hides the bar
beneath it), with the ECE in its title and a legend entry for every mark.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MAX_SHOWN", "binned_ece", "confusion_matrix_image", "most_confused_classes", "reliability_diagram_image"]

#: Resolution of the images: TensorBoard shows them at their pixel size, capped by its card width.
DPI = 100
#: Most classes a confusion-matrix image shows (cell numbers stay legible at the card width).
MAX_SHOWN = 12
#: Figures kept for reuse (one per kind and layout); the least recently used is dropped beyond this.
_CACHE_SIZE = 6
_ACCURACY = "#4c72b0"
_GAP = "#c44e52"
_COUNTS = "#8c8c8c"

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], _Drawing] = OrderedDict()


class _Drawing:
    """A figure, its canvas, the artists a call updates, and the pixels of everything that does not change.

    Artists in ``dynamic`` are animated: a full draw leaves them out and keeps the result as the background
    (redrawn only when ``static`` changes: other class names or title); a render restores the background and
    draws only them (Agg blitting).
    """

    def __init__(self, width: float, height: float) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure  # the object API needs no global backend or pyplot state

        self.figure = Figure(figsize=(width, height), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self.parts: dict[str, Any] = {}
        self.dynamic: list[Any] = []
        self.static: Any = None
        self._background: Any = None

    def animate(self, *artists: Any) -> None:
        for artist in artists:
            artist.set_animated(True)
            self.dynamic.append(artist)

    def render(self, static: Any) -> np.ndarray:
        if self._background is None or static != self.static:
            self.static = static
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        else:
            self.canvas.restore_region(self._background)
        renderer = self.canvas.get_renderer()
        for artist in self.dynamic:
            if artist.get_visible():
                artist.draw(renderer)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def _drawing(key: tuple[Any, ...], build: Any) -> _Drawing:
    """The cached drawing for ``key``, built by ``build()`` the first time (call with :data:`_lock` held)."""
    drawing = _cache.get(key)
    if drawing is None:
        drawing = build()
        _cache[key] = drawing
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return drawing


def _short(name: Any, width: int = 13) -> str:
    """``name`` within ``width`` characters, keeping its start and its end (where names usually differ).

    >>> _short("class_name_12")
    'class_name_12'
    >>> _short("a_very_long_class_name_12")
    'a_very…ame_12'
    """
    text = str(name)
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _count_text(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


class _Digits:
    """The characters of cell counts (``0-9 . k``), rasterised once by matplotlib's Agg text renderer and stamped
    into the image with numpy: a cell's number then costs microseconds instead of a text layout (~0.3 ms each,
    ~100 per confusion matrix at 10 classes)."""

    CHARS = "0123456789.k"

    def __init__(self, size: float) -> None:
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.font_manager import FontProperties, findfont, get_font

        prop = FontProperties(size=size)
        font = get_font(findfont(prop))
        font.set_size(size, DPI)
        step = int(size * 3)
        height = int(size * 3)
        renderer = RendererAgg(step * len(self.CHARS), height, DPI)
        gc = renderer.new_gc()
        gc.set_foreground((0.0, 0.0, 0.0))
        for i, ch in enumerate(self.CHARS):
            renderer.draw_text(gc, i * step + 2, height * 0.7, ch, prop, 0.0)
        alpha = np.asarray(renderer.buffer_rgba())[..., 3].astype(np.float32) / 255.0
        ink_rows = np.nonzero(alpha.any(axis=1))[0]
        top, bottom = int(ink_rows.min()), int(ink_rows.max()) + 1
        self.height = bottom - top
        self.masks: dict[str, np.ndarray] = {}
        for i, ch in enumerate(self.CHARS):
            advance = int(round(font.load_char(ord(ch)).linearHoriAdvance / 65536))
            self.masks[ch] = alpha[top:bottom, i * step + 2 : i * step + 2 + max(advance, 1)]

    def stamp(self, image: np.ndarray, text: str, x: float, y: float, color: float) -> None:
        """Write ``text`` centred on pixel ``(x, y)`` of ``image`` (``[H, W, 3]`` uint8) in grey level ``color``."""
        masks = [self.masks[ch] for ch in text if ch in self.masks]
        if not masks:
            return
        mask = np.concatenate(masks, axis=1)
        h, w = mask.shape
        y0, x0 = int(round(y - h / 2)), int(round(x - w / 2))
        y1, x1 = min(y0 + h, image.shape[0]), min(x0 + w, image.shape[1])
        y0c, x0c = max(y0, 0), max(x0, 0)
        if y1 <= y0c or x1 <= x0c:
            return
        a = mask[y0c - y0 : y1 - y0, x0c - x0 : x1 - x0, None]
        region = image[y0c:y1, x0c:x1].astype(np.float32)
        image[y0c:y1, x0c:x1] = (region * (1.0 - a) + color * 255.0 * a).astype(np.uint8)


def most_confused_classes(matrix: np.ndarray, k: int, *, keep: Sequence[int] = ()) -> list[int]:
    """The ``k`` classes most involved in confusions (wrong predictions from or to them, as shares of their own
    rows and columns, so that a rare class that is always wrong ranks high), in index order.

    Classes in ``keep`` (the ones shown last time) stay while they rank in the top ``2 k``: the picture stays
    comparable from one evaluation to the next, and its labels need no redrawing.

    >>> most_confused_classes(np.array([[9, 0, 0], [0, 5, 5], [0, 1, 9]]), 2)
    [1, 2]
    >>> most_confused_classes(np.array([[9, 0, 0], [0, 5, 5], [0, 1, 9]]), 1, keep=[2])
    [2]
    """
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.shape[0] <= k:
        return list(range(counts.shape[0]))
    off = counts - np.diag(np.diag(counts))
    rows = counts.sum(axis=1)
    cols = counts.sum(axis=0)
    score = off.sum(axis=1) / np.maximum(rows, 1) + off.sum(axis=0) / np.maximum(cols, 1)
    score = score + 1e-9 * (rows + cols)  # ties: the more frequent class
    order = np.argsort(-score, kind="stable").tolist()
    near = set(order[: 2 * k])
    chosen = [i for i in keep if i in near][:k]
    chosen += [i for i in order if i not in chosen][: k - len(chosen)]
    return sorted(chosen)


def _build_confusion(m: int) -> _Drawing:
    cell = 0.42
    side = max(3.2, cell * m + 1.6)
    drawing = _Drawing(side + 0.3, side + 0.5)
    fig = drawing.figure
    margin_left, margin_bottom = 1.35 / (side + 0.3), 1.3 / (side + 0.5)
    ax = fig.add_axes((margin_left, margin_bottom, 1 - margin_left - 0.03, 1 - margin_bottom - 0.5 / (side + 0.5)))
    image = ax.imshow(np.zeros((m, m)), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(m), [""] * m, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(m), [""] * m, fontsize=8)
    ax.set_xlabel("predicted  (colour: share of the true class)", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.tick_params(length=0)
    title = ax.set_title("", fontsize=10)
    drawing.animate(image, *ax.spines.values(), title)  # the title names the step: it changes every call
    drawing.parts = {"ax": ax, "image": image, "title": title, "digits": _Digits(8 if m <= 8 else 7)}
    return drawing


def confusion_matrix_image(matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str = "") -> np.ndarray:
    """Rows are true classes, columns predictions; colour is the row share, the number the count.

    With more than :data:`MAX_SHOWN` classes, the :data:`MAX_SHOWN` classes most involved in confusions
    (:func:`most_confused_classes`) are shown, and the title says how many of how many.
    """
    counts = np.asarray(matrix, dtype=np.float64).reshape(len(matrix), -1) if len(matrix) else np.zeros((0, 0))
    k = counts.shape[0]
    names = [str(class_names[i]) if i < len(class_names) else str(i) for i in range(k)]
    m = max(min(k, MAX_SHOWN), 1)
    with _lock:
        drawing = _drawing(("confusion", m), lambda: _build_confusion(m))
        previous = drawing.parts.get("shown", ()) if drawing.parts.get("k") == k else ()
    shown = most_confused_classes(counts, MAX_SHOWN, keep=previous) if k > MAX_SHOWN else list(range(k))
    sub = counts[np.ix_(shown, shown)] if shown else np.zeros((1, 1))
    rows = counts[shown].sum(axis=1, keepdims=True) if shown else np.ones((1, 1))  # shares of the whole true class
    share = np.divide(sub, rows, out=np.zeros_like(sub), where=rows > 0)
    label = f"{title} confusion matrix".strip()
    if k > len(shown):
        label += f"\n{len(shown)} of {k} classes, the most confused"
    with _lock:
        drawing = _drawing(("confusion", m), lambda: _build_confusion(m))
        p = drawing.parts
        p["shown"], p["k"] = shown, k
        p["image"].set_data(share)
        labels = [_short(names[i]) for i in shown] or [""]
        if drawing.static != labels:  # new tick labels only when the classes shown change
            p["ax"].set_xticks(range(m), labels)
            p["ax"].set_yticks(range(m), labels)
        p["title"].set_text(label)
        pixels = drawing.render(labels)
        # cell centres in pixels (display y runs up, array rows down)
        centres = p["ax"].transData.transform(np.stack(np.meshgrid(np.arange(m), np.arange(m)), axis=-1).reshape(-1, 2))
        height = pixels.shape[0]
        for (x, y), value, frac in zip(centres, sub.reshape(-1) if shown else [0.0], share.reshape(-1)):
            if value > 0:  # empty cells stay blank
                p["digits"].stamp(pixels, _count_text(value), x, height - y, 1.0 if frac > 0.55 else 0.0)
        return pixels


def binned_ece(accuracy: Sequence[float], confidence: Sequence[float], count: Sequence[float]) -> float:
    """Expected calibration error of equal-width bins: ``sum(n_b / N * |acc_b - conf_b|)`` (Guo et al. 2017);
    NaN without samples. Empty bins (NaN accuracy or confidence) weigh nothing.

    >>> round(binned_ece([0.5, 0.9], [0.6, 0.8], [10, 30]), 4)
    0.1
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    n = np.asarray(count, dtype=np.float64)
    ok = np.isfinite(acc) & np.isfinite(conf) & np.isfinite(n)
    total = n[ok].sum()
    return float((n[ok] * np.abs(acc[ok] - conf[ok])).sum() / total) if total > 0 else math.nan


def _build_reliability(n_bins: int) -> _Drawing:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawing = _Drawing(5.0, 5.6)
    fig = drawing.figure
    ax = fig.add_axes((0.14, 0.33, 0.82, 0.5))
    width = 1.0 / n_bins
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    acc = ax.bar(edges[:-1], np.zeros(n_bins), width=width, align="edge", color=_ACCURACY, edgecolor="white",
                 linewidth=0.5)
    gap = ax.bar(edges[:-1], np.zeros(n_bins), width=width, align="edge", fill=False, edgecolor=_GAP,
                 linewidth=1.8)
    (diagonal,) = ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy", fontsize=9)
    ax.tick_params(labelbottom=False, labelsize=8)
    fig.legend(  # above the axes, so that no bar hides it and it stays in the background
        handles=[Patch(facecolor=_ACCURACY, label="accuracy per bin"),
                 Patch(fill=False, edgecolor=_GAP, linewidth=1.8, label="gap to mean confidence"),
                 Line2D([0], [0], color="k", linestyle="--", linewidth=1, label="perfect calibration"),
                 Patch(facecolor=_COUNTS, label="samples per bin (below)")],
        loc="upper center", bbox_to_anchor=(0.55, 0.955), ncols=2, fontsize=8, frameon=False,
    )
    title = fig.text(0.55, 0.975, "", ha="center", va="top", fontsize=10)
    hist = fig.add_axes((0.14, 0.09, 0.82, 0.2))
    counts = hist.bar(edges[:-1], np.zeros(n_bins), width=width, align="edge", color=_COUNTS, edgecolor="white",
                      linewidth=0.5)
    hist.set_xlim(0, 1)
    hist.set_ylim(0, 100)  # a share, so that the axis (and its tick labels) never change: they are background
    hist.set_yticks([0, 50, 100])
    hist.set_xlabel("confidence", fontsize=9)
    hist.set_ylabel("% of samples", fontsize=9)
    hist.tick_params(labelsize=8)
    drawing.animate(*acc, *gap, diagonal, title, *counts)
    drawing.parts = {"acc": acc, "gap": gap, "counts": counts, "title": title}
    return drawing


def reliability_diagram_image(reliability: Mapping[str, Sequence[float]], *, ece: float | None = None, title: str = "") -> np.ndarray:
    """Accuracy against confidence per bin with the diagonal (Guo et al. 2017, Fig. 1), and bin counts below.

    Empty bins (NaN accuracy) draw nothing. The title carries ``ece``, or when it is ``None`` the ECE of these
    bins (:func:`binned_ece`).
    """
    acc = np.asarray(reliability.get("accuracy", []), dtype=np.float64)
    conf = np.asarray(reliability.get("confidence", []), dtype=np.float64)
    count = np.asarray(reliability.get("count", []), dtype=np.float64)
    n_bins = max(len(acc), 1)
    acc = np.resize(acc, n_bins) if len(acc) else np.full(n_bins, np.nan)
    conf = np.resize(conf, n_bins) if len(conf) else np.full(n_bins, np.nan)
    count = np.resize(count, n_bins) if len(count) else np.zeros(n_bins)
    total = float(np.nansum(count))
    if ece is None:
        ece = binned_ece(acc, conf, count)
    label = f"{title} reliability".strip()
    if ece is not None and math.isfinite(ece):
        label += f"   ECE = {ece:.4f}"
    label += f"   n = {total:,.0f}"
    with _lock:
        drawing = _drawing(("reliability", n_bins), lambda: _build_reliability(n_bins))
        p = drawing.parts
        for i in range(n_bins):
            a, c = acc[i], conf[i]
            seen = math.isfinite(a)
            p["acc"][i].set_height(a if seen else 0.0)
            p["acc"][i].set_visible(seen)
            has_gap = seen and math.isfinite(c)
            p["gap"][i].set_y(min(a, c) if has_gap else 0.0)
            p["gap"][i].set_height(abs(c - a) if has_gap else 0.0)
            p["gap"][i].set_visible(has_gap and abs(c - a) > 0)
            p["counts"][i].set_height(100.0 * count[i] / total if total > 0 and math.isfinite(count[i]) else 0.0)
        p["title"].set_text(label)
        return drawing.render(())
