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


# ------------------------------------------------------------------------------------------ data faults


@pytest.fixture(scope="module")
def data_runs():
    return {
        "temporal-tickets": run_scenario("temporal-tickets", quick=True),
        "duplicates-tickets": run_scenario("duplicates-tickets", epochs=1),
        "mislabels-tickets": run_scenario("mislabels-tickets", quick=True),
        "healthy-tickets-by-time": run_scenario("healthy-tickets-by-time", epochs=1),
    }


def test_random_split_of_timed_tickets_is_caught_at_fit_start(data_runs):
    r = data_runs["temporal-tickets"]
    assert r.detected and r.delay == 0 and r.raised["FW-LEAK-TEMPORAL"].step == 0
    data = load_task("tickets", seed=0)
    train_times = [data.train[i]["timestamp"].item() for i in range(len(data.train))]
    val_times = [data.val[i]["timestamp"].item() for i in range(len(data.val))]
    latest = max(train_times)
    assert r.data["val_not_later_fraction"] == pytest.approx(
        sum(t <= latest for t in val_times) / len(val_times)
    )
    # The same check on the split by time finds nothing.
    assert "FW-LEAK-TEMPORAL" not in data_runs["healthy-tickets-by-time"].raised


def test_planted_duplicates_are_caught_and_the_inflation_is_measured(data_runs):
    from fitwatch.data import find_duplicates
    from fitwatch.scenarios.data import _token_lists

    r = data_runs["duplicates-tickets"]
    assert r.detected and r.delay == 0 and r.false_alarms == []
    data = load_task("tickets", seed=0, duplicate_fraction=0.2)
    reference = find_duplicates(_token_lists(data.train.items), _token_lists(data.val.items))
    assert r.data["duplicate_fraction"] == pytest.approx(reference.fraction) and reference.fraction > 0.2
    # Clean-subset accuracy is logged next to the plain one: both are accuracies of the same evaluation.
    assert 0 < r.data["val_clean_accuracy"] < 1 and r.data["val_accuracy"] == r.series["val_accuracy"][-1]


def test_area_under_the_margin_ranks_the_flipped_labels_first(data_runs):
    r = data_runs["mislabels-tickets"]
    assert r.detected and r.onset == len(r.evaluation_steps) - 1 and r.delay == 0
    data = load_task("tickets", seed=0, label_noise=0.2)
    flipped = set(data.flipped_ids)
    assert r.data["flipped"] == len(flipped) == 300
    finding = next(f for f in r.findings if f.code == "FW-MISLABEL-SUSPECTS")
    listed = [i for i, _ in finding.evidence["suspects"]]
    assert r.data["precision_at_listed"] == sum(i in flipped for i in listed) / len(listed)
    # Far above the 20% a random ranking gives, after two epochs already.
    assert r.data["precision_at_listed"] >= 0.6 and r.data["precision_at_flipped"] >= 0.5


def test_ticket_items_carry_timestamps_and_position_ids():
    data = load_task("tickets", seed=0, split_by_time=True, label_noise=0.1)
    first, last = data.train[0], data.train[len(data.train) - 1]
    assert first["sample_id"].item() == 0 and last["sample_id"].item() == len(data.train) - 1
    assert first["timestamp"].dtype == torch.float64
    latest_train = max(data.train[i]["timestamp"].item() for i in range(len(data.train)))
    assert min(data.val[i]["timestamp"].item() for i in range(len(data.val))) > latest_train
    labels = [data.train[i]["labels"].item() for i in data.flipped_ids]
    clean = load_task("tickets", seed=0, split_by_time=True)
    assert all(y != clean.train[i]["labels"].item() for i, y in zip(data.flipped_ids, labels))
    assert len(data.flipped_ids) == round(0.1 * len(data.train))


def test_data_fault_arguments_are_checked():
    with pytest.raises(
        ValueError, match="Expected `duplicate_fraction` and `split_by_time` only for the 'tickets'"
    ):
        load_task("wine", split_by_time=True)
    with pytest.raises(ValueError, match=r"Expected `duplicate_fraction` to be a float in \[0, 1\]"):
        load_task("tickets", duplicate_fraction=2.0)
    with pytest.raises(TypeError, match="Expected `split_by_time` to be a bool"):
        load_task("tickets", split_by_time=1)
    args = {"name": "x", "task": "wine", "description": "x", "epochs": 1, "quick_epochs": 1}
    with pytest.raises(
        ValueError, match="Expected `duplicate_fraction` and `split_by_time` only with the 'tickets'"
    ):
        Scenario(**args, duplicate_fraction=0.1)
    with pytest.raises(ValueError, match=r"Expected `label_noise` to be a float in \[0, 1\]"):
        Scenario(**args, label_noise=-0.1)
