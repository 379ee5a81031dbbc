"""Every evaluation detector declares its per-evaluation lists in ``series``, so that a state saved before one of
them existed loads with all of them aligned (``Detector.load_state_dict`` pads the missing one at the front)."""

from __future__ import annotations

import pytest

from fitwatch.detect.base import DETECTORS, build_detectors
from fitwatch.detect.records import EvalRecord

from . import simulate as sim

N_BEFORE, N_AFTER = 12, 8
EVALUATION_DETECTORS = sorted(
    name
    for name, cls in DETECTORS.items()
    if EvalRecord in cls.record_types and name in {d.name for d in build_detectors()}
)


def _run():
    return sim.subtle_overfitting(seed=3, n_evals=N_BEFORE + N_AFTER, noise=0.01).records


@pytest.mark.parametrize("name", EVALUATION_DETECTORS)
def test_every_per_evaluation_list_is_declared(name):
    det = DETECTORS[name]()
    sim.replay(det, _run()[:N_BEFORE])
    lists = {k for k, v in det.__dict__.items() if isinstance(v, list) and len(v) == N_BEFORE}
    assert lists <= set(det.series), sorted(lists - set(det.series))


@pytest.mark.parametrize(
    ("name", "key"), [(name, key) for name in EVALUATION_DETECTORS for key in DETECTORS[name].series]
)
def test_a_state_without_one_series_loads_aligned_and_runs(name, key):
    records = _run()
    old = DETECTORS[name]()
    sim.replay(old, records[:N_BEFORE])
    state = old.state_dict()
    del state[key]
    det = DETECTORS[name]()
    det.load_state_dict(state)
    assert getattr(det, key) == [DETECTORS[name].series[key]] * N_BEFORE
    sim.replay(det, records[N_BEFORE:])
    assert {len(getattr(det, k)) for k in det.series} == {N_BEFORE + N_AFTER}
