"""Confusion matrices and reliability diagrams: sizes, what they say, and no garbage left for the collector.

Timings are not asserted here (a shared machine makes them flaky); ``python -m benchmarks.cost --figures``
measures them.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fitwatch.sinks import figures  # noqa: E402
from fitwatch.sinks.figures import confusion_matrix_image, most_confused_classes, reliability_diagram_image  # noqa: E402


def _matrix(k: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 40, (k, k))
    m[np.arange(k), np.arange(k)] += 300
    return m.tolist()


def _reliability(n_bins: int = 15) -> dict[str, list[float]]:
    acc = list(np.linspace(0.1, 0.95, n_bins))
    acc[0] = math.nan  # an empty bin
    acc[5] = 0.7  # accuracy above confidence: the gap must not hide the bar
    return {"accuracy": acc, "confidence": list(np.linspace(0.05, 0.97, n_bins)), "count": [float(10 * i) for i in range(n_bins)]}


def _ink(image: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(image.astype(int) - np.array(color)).max(axis=-1) <= tol).sum())


@pytest.mark.parametrize("k", [2, 10, 12, 40])
def test_confusion_matrix_size_fits_a_tensorboard_card(k):
    image = confusion_matrix_image(_matrix(k), [f"c{i}" for i in range(k)], title="val")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    # wide enough to read (issue 14: was ~200 px of matrix at the card size), narrow enough not to be scaled down
    assert 300 <= image.shape[1] <= 760 and 300 <= image.shape[0] <= 760
    assert image.std() > 10  # something is drawn


def test_same_layout_same_pixels_and_the_data_changes_them():
    names = [f"c{i}" for i in range(5)]
    a = confusion_matrix_image(_matrix(5, 0), names, title="val")
    b = confusion_matrix_image(_matrix(5, 0), names, title="val")
    c = confusion_matrix_image(_matrix(5, 1), names, title="val")
    np.testing.assert_array_equal(a, b)  # the reused figure leaves nothing behind from the previous call
    assert (a != c).any()


def test_class_names_and_counts_are_drawn(monkeypatch):
    """Tick labels carry the (shortened) names, the cells the counts, the title how many classes are shown."""
    drawn: list[str] = []
    stamped: list[str] = []
    original = figures._Digits.stamp

    def record(self, image, text, x, y, color):
        stamped.append(text)
        return original(self, image, text, x, y, color)

    monkeypatch.setattr(figures._Digits, "stamp", record)
    names = [f"label_{i}" for i in range(3)]
    confusion_matrix_image([[5, 0, 1200], [0, 7, 0], [2, 0, 9]], names, title="val step 3")
    drawing = figures._cache[("confusion", 3)]
    drawn = [t.get_text() for t in drawing.parts["ax"].get_xticklabels()]
    assert drawn == names
    assert sorted(stamped) == sorted(["5", "1.2k", "7", "2", "9"])  # zero cells stay blank
    assert drawing.parts["title"].get_text() == "val step 3 confusion matrix"


def test_many_classes_show_the_most_confused():
    k = 30
    m = np.diag(np.full(k, 100))
    m[17, 23] = 90  # 17 is often predicted as 23
    m[4, 9] = 60
    confusion_matrix_image(m.tolist(), [f"c{i}" for i in range(k)], title="val")
    drawing = figures._cache[("confusion", figures.MAX_SHOWN)]
    shown = [t.get_text() for t in drawing.parts["ax"].get_yticklabels()]
    assert {"c17", "c23", "c4", "c9"} <= set(shown) and len(shown) == figures.MAX_SHOWN
    assert f"{figures.MAX_SHOWN} of {k} classes" in drawing.parts["title"].get_text()
    assert most_confused_classes(m, 4) == [4, 9, 17, 23]


def test_reliability_title_carries_the_ece_and_the_legend_every_mark():
    image = reliability_diagram_image(_reliability(), ece=0.0432, title="val")
    assert 400 <= image.shape[1] <= 700 and 400 <= image.shape[0] <= 700
    drawing = figures._cache[("reliability", 15)]
    assert "ECE = 0.0432" in drawing.parts["title"].get_text()
    legend = drawing.figure.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["accuracy per bin", "gap to mean confidence", "perfect calibration", "samples per bin (below)"]
    # accuracy bars are filled, the gap is an outline only: where accuracy > confidence the bar stays visible
    gap = drawing.parts["gap"][5]
    assert not gap.get_fill() and gap.get_visible()
    assert _ink(image, (0x4C, 0x72, 0xB0)) > 1000  # the accuracy colour is on the image, not hidden
    assert not drawing.parts["acc"][0].get_visible()  # an empty bin draws nothing


def test_reliability_without_ece_shows_the_ece_of_its_bins():
    """The TensorBoard sink passes no ``ece``: the title then carries the ECE of the bins drawn."""
    rel = _reliability()
    image = reliability_diagram_image(rel, title="val step 7")
    expected = figures.binned_ece(rel["accuracy"], rel["confidence"], rel["count"])
    title = figures._cache[("reliability", 15)].parts["title"].get_text()
    assert f"ECE = {expected:.4f}" in title and title.startswith("val step 7")
    empty = reliability_diagram_image({}, ece=math.nan)
    assert "ECE" not in figures._cache[("reliability", 1)].parts["title"].get_text()
    assert empty.ndim == 3 and image.ndim == 3


def test_binned_ece_against_a_hand_computed_value():
    acc, conf, n = [math.nan, 0.2, 0.9], [0.05, 0.4, 0.8], [0, 10, 30]
    assert figures.binned_ece(acc, conf, n) == pytest.approx((10 * 0.2 + 30 * 0.1) / 40)
    assert math.isnan(figures.binned_ece([math.nan], [0.5], [0]))


@pytest.mark.parametrize("k", [3, 10, 25])
def test_no_reference_cycles_left_behind(k):
    """Each evaluation's figures used to leave 4,000-52,000 objects in cycles (full collections of 0.5-0.8 s)."""
    names = [f"c{i}" for i in range(k)]
    confusion_matrix_image(_matrix(k), names, title="val")  # the first call builds the reusable figure
    reliability_diagram_image(_reliability(), ece=0.05, title="val")
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for seed in range(3):
            confusion_matrix_image(_matrix(k, seed), names, title="val")
            reliability_diagram_image(_reliability(), ece=0.01 * seed, title="val")
        left = gc.collect()
    finally:
        if was:
            gc.enable()
    assert left <= 10, f"{left} objects in reference cycles after three evaluations"


def test_the_drawings_are_shared_safely_between_threads():
    import threading

    names = [f"c{i}" for i in range(4)]
    expected = confusion_matrix_image(_matrix(4), names)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(confusion_matrix_image(_matrix(4), names))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all((r == expected).all() for r in results)
