"""Images within a share of the run's time (issue 15): an evaluation's images are drawn when the drawing so far plus
this one stays within ``image_budget`` of the wall time since the run's first record, the latest skipped ones are
drawn at the end, and ``None`` draws at every evaluation."""

from __future__ import annotations

import time

import pytest

from fitwatch.config import FitWatchConfig
from fitwatch.monitor import Monitor
from fitwatch.sinks.base import EvaluationDetails, Sink


class SlowImages(Sink):
    """A sink whose images take ``seconds`` to draw; records the steps it drew."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.drawn: list[tuple[str, int]] = []

    def evaluation(self, details: EvaluationDetails, step: int) -> None:
        time.sleep(self.seconds)
        self.drawn.append((details.split, step))


def _details(split: str = "val") -> EvaluationDetails:
    return EvaluationDetails(split=split, class_names=["a", "b"], confusion=[[1, 0], [0, 1]], reliability={}, per_class={})


def test_images_over_budget_are_skipped_and_the_last_is_drawn_at_the_end():
    sink = SlowImages(0.02)
    monitor = Monitor(detectors=[], sinks=[sink], image_budget=0.01)
    monitor.first_images_s = 0.02
    time.sleep(0.05)
    monitor.details(_details(), 1)  # 0.02 s of images after 0.05 s: over 1%
    assert sink.drawn == []
    monitor._image_clock -= 3.0  # three seconds of training later: one 0.02 s drawing is within 1%, two are not
    monitor.details(_details(), 2)
    for step in range(3, 6):  # evaluations back to back: drawing would be 40% of the time since
        monitor.details(_details(), step)
    assert sink.drawn == [("val", 2)]
    assert monitor.images_skipped == 4
    monitor.close()
    assert sink.drawn == [("val", 2), ("val", 5)]


def test_images_within_budget_are_drawn_at_every_evaluation():
    sink = SlowImages(0.0)
    monitor = Monitor(detectors=[], sinks=[sink], image_budget=0.5)
    monitor.first_images_s = 0.001
    monitor._image_clock = time.perf_counter()  # the run's first step (a record) starts the clock
    for step in range(1, 4):
        time.sleep(0.01)
        monitor.details(_details(), step)
        monitor.details(_details("test"), step)
    monitor.close()
    assert [s for _, s in sink.drawn] == [1, 1, 2, 2, 3, 3] and monitor.images_skipped == 0


def test_no_budget_draws_every_evaluation():
    sink = SlowImages(0.01)
    monitor = Monitor(detectors=[], sinks=[sink], image_budget=None)
    for step in range(1, 5):
        monitor.details(_details(), step)
    monitor.close()
    assert [s for _, s in sink.drawn] == [1, 2, 3, 4]


def test_image_budget_is_validated():
    assert FitWatchConfig().image_budget == 0.01
    assert FitWatchConfig(image_budget=None).image_budget is None
    with pytest.raises(ValueError, match="image_budget"):
        FitWatchConfig(image_budget=1.5)
    with pytest.raises(TypeError, match="image_budget"):
        FitWatchConfig(image_budget="often")
