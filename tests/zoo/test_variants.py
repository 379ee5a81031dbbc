"""The zoo's variants in quick mode: a loss-only module and a loop shape, real short Lightning runs on the CPU.

The loss-only run's validation loss must be the one the module logged itself (read back from Lightning's
``callback_metrics`` by a callback of the test, the number ``EarlyStopping`` would see), and nothing may have
been captured from logits; the loop-shape run must keep its two validation sets apart and raise no warning.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from lightning.pytorch.callbacks import Callback

from benchmarks.zoo.variants import _caught, render_variants
from fitwatch.scenarios import SCENARIOS, get_scenario, run_scenario
from fitwatch.scenarios.registry import LOOP_SHAPE_SCENARIOS, LOSS_ONLY_SCENARIOS, VARIANT_SCENARIOS
from fitwatch.sinks.tags import tag

VAL_LOSS = tag("performance", "loss", split="val")


class LoggedValLoss(Callback):
    """The ``val_loss`` the module logged, at each validation end of the fit (as EarlyStopping reads it)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and "val_loss" in trainer.callback_metrics:
            self.values.append(float(trainer.callback_metrics["val_loss"]))


@pytest.fixture(scope="module")
def loss_only():
    logged = LoggedValLoss()
    return run_scenario("overfit-breast-cancer-loss-only", quick=True, callbacks=[logged]), logged.values


@pytest.fixture(scope="module")
def two_val():
    return run_scenario("healthy-breast-cancer-two-val", quick=True)


def test_loss_only_run_is_judged_on_the_metrics_it_logs(loss_only):
    r, logged = loss_only
    recorded = [value for _, value in r.history[VAL_LOSS]]
    assert len(recorded) == len(logged) == r.epochs
    assert recorded == pytest.approx(logged, rel=1e-6)
    # Nothing came from logits: no calibration or per-class series, only what was logged and the loss returned.
    assert not any(t.startswith(("calibration/", "per_class/")) for t in r.history)
    assert all(math.isfinite(x) for x in r.series["train_loss"])
    assert r.detected and "FW-OVERFIT" in r.raised and r.false_alarms == []


def test_second_validation_set_is_summarised_apart_and_never_judged(two_val):
    r = two_val
    assert len(r.history[VAL_LOSS]) == r.epochs
    second = r.history[tag("performance", "loss", split="val_1")]
    assert [s for s, _ in second] == list(r.evaluation_steps)
    # The noisy copy is a different set: its loss differs from the primary one's at every evaluation.
    assert all(a != b for (_, a), (_, b) in zip(r.history[VAL_LOSS], second))
    assert r.warnings == [] and r.data["val_1_loss"] == second[-1][1]


def test_variants_registry():
    assert set(VARIANT_SCENARIOS) == set(LOSS_ONLY_SCENARIOS) | set(LOOP_SHAPE_SCENARIOS)
    assert not set(VARIANT_SCENARIOS) & set(SCENARIOS)
    for name, s in LOSS_ONLY_SCENARIOS.items():
        base = SCENARIOS[name.removesuffix("-loss-only")]
        assert s.loss_only and s.expected == base.expected and s.onset == base.onset
        # Only codes a loss-only run can raise are expected of it.
        assert not {c for g in s.expected for c in g} & {
            "FW-OVERFIT-SUBTLE",
            "FW-CLASS-COLLAPSE",
            "FW-CALIBRATION",
        }
    for s in LOOP_SHAPE_SCENARIOS.values():
        assert s.healthy and (s.accumulate > 1) + s.second_val + s.validate_first == 1
    accumulate = get_scenario("healthy-digits-accumulate")
    assert accumulate.batch_size * accumulate.accumulate == SCENARIOS["healthy-digits"].batch_size
    with pytest.raises(TypeError, match="Expected `loss_only` to be a bool"):
        dataclasses.replace(accumulate, loss_only=1)
    with pytest.raises(ValueError, match="Expected `accumulate` to be a positive int"):
        dataclasses.replace(accumulate, accumulate=0)


def test_render_variants(loss_only, two_val):
    runs = []
    for r in (loss_only[0], two_val):
        run = r.to_dict()
        run["expected_text"] = r.scenario.expected_text
        run["anchors"] = {}
        runs.append(run)
    baseline = [{**runs[0], "scenario": "overfit-breast-cancer"}]
    text = render_variants(runs, baseline)
    assert (
        "| overfit-breast-cancer-loss-only | 0 |" in text and "| healthy-breast-cancer-two-val | 0 |" in text
    )
    assert f"| overfit-breast-cancer | {_caught(baseline)} | {_caught(runs[:1])} |" in text
    assert "final loss val" in text
