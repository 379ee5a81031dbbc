"""The zoo's smoke subset: real short Lightning runs of a few scenarios on the CPU.

Each fault scenario here must raise its expected code; the healthy one must raise nothing at warning level.
Quick versions of tabular scenarios keep the whole module well under a minute.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from fitwatch.findings import CATALOGUE, Severity
from fitwatch.scenarios import ONSETS, SCENARIOS, Scenario, get_scenario, run_scenario
from fitwatch.scenarios.data import TASKS, load_task
from fitwatch.scenarios.models import ModelSpec, Recipe, ScenarioModule, TabularMLP

SMOKE_FAULTS = ("missing-params-wine", "eval-mode-breast-cancer", "nan-digits", "lr-decayed-digits")
SMOKE_HEALTHY = "healthy-breast-cancer"


@pytest.fixture(scope="module")
def results():
    return {name: run_scenario(name, quick=True) for name in (*SMOKE_FAULTS, SMOKE_HEALTHY)}


@pytest.mark.parametrize("name", SMOKE_FAULTS)
def test_fault_scenarios_raise_their_expected_codes(results, name):
    r = results[name]
    assert r.detected, (name, dict(r.raised))
    # Each of these faults is caught at the first evaluation after it takes effect.
    assert r.onset is not None and r.delay == 0, (r.onset, r.detection)
    assert r.false_alarms == [], r.false_alarms


def test_healthy_run_has_no_warning_level_finding(results):
    r = results[SMOKE_HEALTHY]
    assert r.scenario.healthy and r.warnings == [], {c: x.severity for c, x in r.raised.items()}
    assert r.onset is None and r.delay is None and r.detected


def test_result_numbers_come_from_the_run(results):
    r = results["nan-digits"]
    # Evaluations once per epoch; the series align with them; NaN after the corrupted batch.
    assert len(r.evaluation_steps) == r.epochs and r.evaluation_steps[-1] == r.steps
    assert all(len(v) == len(r.evaluation_steps) for v in r.series.values())
    assert math.isfinite(r.series["val_loss"][r.onset - 1]) and math.isnan(r.series["val_loss"][r.onset])
    raised = r.raised["FW-DIVERGENCE"]
    assert raised.severity is Severity.CRITICAL and raised.step >= r.onset_step
    # The summary is strict JSON (NaN as null).
    data = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert data["series"]["val_loss"][-1] is None and data["detected"] is True


def test_runs_are_deterministic_given_the_seed():
    a = run_scenario("missing-params-wine", epochs=2)
    b = run_scenario("missing-params-wine", epochs=2)
    c = run_scenario("missing-params-wine", epochs=2, seed=1)
    assert a.series == b.series and a.evaluation_steps == b.evaluation_steps
    assert a.series["val_loss"] != c.series["val_loss"]


def test_a_run_resumes_from_its_log_dir(tmp_path):
    first = run_scenario("missing-params-wine", epochs=2, log_dir=tmp_path)
    assert (tmp_path / "last.ckpt").is_file() and (tmp_path / "findings.jsonl").is_file()
    resumed = run_scenario("missing-params-wine", epochs=4, log_dir=tmp_path)
    straight = run_scenario("missing-params-wine", epochs=4)
    assert resumed.steps == straight.steps and resumed.evaluation_steps == straight.evaluation_steps
    # FitWatch's state came back with the checkpoint: the history holds the first two epochs and the finding
    # raised at step 1, before the resume.
    assert resumed.series["val_loss"][:2] == first.series["val_loss"]
    assert resumed.raised["FW-REG-MISSING-PARAMS"].step == 1


def test_registry_covers_the_brief():
    healthy = [s for s in SCENARIOS.values() if s.healthy]
    assert sum(len(s.seeds) for s in healthy) >= 10 and {s.task for s in healthy} == set(TASKS)
    for s in SCENARIOS.values():
        assert all(code in CATALOGUE for group in s.expected for code in group)
        assert s.onset in ONSETS and (s.onset == "none") is s.healthy
        assert get_scenario(s.name) is s


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "mnist"}, ValueError, "Expected `task` to be one of"),
        ({"onset": "later"}, ValueError, "Expected `onset` to be one of"),
        ({"expected": (("FW-NOPE",),), "onset": "fit_start"}, ValueError, "Expected finding codes"),
        ({"expected": (("FW-PLATEAU",),)}, ValueError, "Expected a fault scenario to name an onset"),
        ({"epochs": 0}, ValueError, "Expected `epochs` to be a positive int"),
        ({"injection": "unplug"}, ValueError, "Expected `injection` to be one of"),
    ],
)
def test_scenario_rejects_bad_arguments(kwargs, error, match):
    args = {"name": "x", "task": "wine", "description": "x", "epochs": 1, "quick_epochs": 1, **kwargs}
    with pytest.raises(error, match=match):
        Scenario(**args)


def test_argument_errors_of_the_public_functions():
    with pytest.raises(ValueError, match="Expected a scenario name"):
        get_scenario("healthy-mnist")
    with pytest.raises(ValueError, match="Expected `seed` to be a non-negative int"):
        run_scenario("healthy-wine", seed=-1)
    with pytest.raises(TypeError, match="Expected `epochs` to be a positive int"):
        run_scenario("healthy-wine", epochs=1.5)
    with pytest.raises(ValueError, match="Expected `threads` to be a positive int"):
        run_scenario("healthy-wine", threads=0)
    with pytest.raises(ValueError, match="Expected `train_size` to be at most"):
        load_task("wine", train_size=10_000)
    with pytest.raises(ValueError, match="Expected `class_shares` to hold 3 positive shares"):
        load_task("wine", class_shares=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"Expected `label_noise` to be a float in \[0, 1\]"):
        load_task("wine", label_noise=1.5)
    with pytest.raises(ValueError, match="Expected `schedule` to be one of"):
        Recipe(schedule="step")


def test_data_faults_change_the_training_part_only():
    clean = load_task("wine", seed=0)
    noisy = load_task("wine", seed=0, label_noise=0.25)
    tiny = load_task("wine", seed=0, train_size=40)
    skewed = load_task("wine", seed=0, class_shares=(0.6, 0.3, 0.1))
    y_clean = clean.train.tensors[1]
    assert noisy.flipped == round(0.25 * len(y_clean)) == int((noisy.train.tensors[1] != y_clean).sum())
    assert torch.equal(noisy.val.tensors[1], clean.val.tensors[1])
    assert abs(len(tiny.train) - 40) <= 3 and set(tiny.train.tensors[1].tolist()) == {0, 1, 2}
    counts = torch.bincount(skewed.train.tensors[1], minlength=3).float()
    assert torch.allclose(counts / counts.sum(), torch.tensor([0.6, 0.3, 0.1]), atol=0.03)


def test_recipes_build_the_param_groups_they_describe():
    careful = ScenarioModule(TabularMLP(4, 3, ModelSpec(hidden=8)), Recipe(weight_decay=0.01))
    plain = ScenarioModule(
        TabularMLP(4, 3, ModelSpec(hidden=8)), Recipe(weight_decay=0.01, decay_norm_and_bias=True)
    )
    groups = careful.configure_optimizers().param_groups
    assert [(g["name"], g["weight_decay"], len(g["params"])) for g in groups] == [
        ("decay", 0.01, 2),
        ("no_decay", 0.0, 2),
    ]
    assert [g["weight_decay"] for g in plain.configure_optimizers().param_groups] == [0.01]
