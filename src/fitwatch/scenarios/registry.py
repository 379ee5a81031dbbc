"""The named scenarios of the zoo: what each trains, which fault it injects, what fitwatch should say.

A :class:`Scenario` is plain data: the task and its data faults, the network, the training recipe, an
optional injected fault (:mod:`fitwatch.scenarios.faults`), FitWatch's data-check settings, the finding codes
expected and how the fault's onset is placed on the evaluation axis (:data:`ONSETS`). :data:`SCENARIOS` holds
them by name. (The one data fault that is not a training run, preprocessing that differs between training
and inference, is :mod:`fitwatch.scenarios.pipelines`.)

The healthy runs are what a careful engineer would train: AdamW with weight decay kept off norms and
biases, dropout, a warmup and a decay to zero at the planned end, a number of epochs that reaches the
validation optimum without training far past it. They are not tuned to keep fitwatch quiet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fitwatch import _validation as v
from fitwatch.findings import CATALOGUE
from fitwatch.scenarios.data import TASKS
from fitwatch.scenarios.faults import INJECTIONS
from fitwatch.scenarios.models import ModelSpec, Recipe

__all__ = [
    "LOOP_SHAPE_SCENARIOS",
    "LOSS_ONLY_SCENARIOS",
    "ONSETS",
    "SCENARIOS",
    "SECOND_VAL_NOISE",
    "VARIANT_SCENARIOS",
    "Scenario",
    "get_scenario",
]

#: Standard deviation of the Gaussian noise on the (standardised) features of a tabular scenario's second
#: validation set (``Scenario.second_val``).
SECOND_VAL_NOISE = 0.5

#: How a scenario's onset is placed on the evaluation axis (0-based evaluation index), by name.
ONSETS: Mapping[str, str] = {
    "none": "healthy run: no fault",
    "fit_start": "evaluation 0: the fault is in the set-up",
    "min_val_loss": "the evaluation of minimum validation loss",
    "min_val_nll": "the evaluation of minimum validation NLL",
    "lr_decayed": "the first evaluation at or after the step where the schedule falls below 1% of its peak",
    "injection": "the first evaluation after the injected fault takes effect",
    "fit_end": "the last evaluation: the finding ranks training samples over the whole run, by design",
}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One named run of the zoo.

    Args:
        name: Registry name.
        task: One of :data:`~fitwatch.scenarios.data.TASKS`.
        description: The fault in one sentence (for a healthy run, what it trains).
        expected: Finding codes the run must raise: one code from each group (a group lists equally right
            diagnoses, e.g. a class at zero recall that is still predicted now and then, or never).
        accepted: Further codes that are right about this run (a fault has symptoms of more than one
            kind); any other warning-level code on a faulty run is collateral.
        onset: Key of :data:`ONSETS`.
        seeds: Seeds the zoo runs.
        epochs: Epochs of a full run; ``quick_epochs`` for ``--quick`` and the smoke tests.
        batch_size: Training batch size.
        model: The network's size and dropout.
        recipe: Optimizer, schedule, loss (default: the careful recipe of the healthy runs).
        train_size: Keep only this many training samples.
        class_shares: Class frequencies of the data (imbalance).
        label_noise: Share of training labels flipped.
        duplicate_fraction: Share of resubmitted tickets, left in both splits (train/validation duplicates).
        split_by_time: Split the tickets by time (validation = the latest) instead of at random.
        data_checks: FitWatch ``data_checks`` settings of the run (a ``time_field``, ``mislabels``), on top
            of the defaults (duplicates and label shift at fit start, which every run has).
        injection: Key of :data:`~fitwatch.scenarios.faults.INJECTIONS`, with ``injection_args``.
        loss_only: Train with :class:`~fitwatch.scenarios.models.LossOnlyModule`, a typical module not written
            for fitwatch (returns only its loss, logs ``val_loss``/``val_acc``, calls ``self.net``): FitWatch
            judges the run on the metrics it logs.
        accumulate: Lightning's ``accumulate_grad_batches``.
        second_val: Add a second validation dataloader (tabular: the validation features with Gaussian noise
            of standard deviation :data:`SECOND_VAL_NOISE`; tickets: every other validation ticket), which
            FitWatch summarises as ``val_1``; the first stays the primary ``val`` the detectors judge.
        validate_first: Run ``trainer.validate(model, val)`` before ``trainer.fit`` on the same Trainer (the
            untrained baseline).
    """

    name: str
    task: str
    description: str
    expected: tuple[tuple[str, ...], ...] = ()
    accepted: tuple[str, ...] = ()
    onset: str = "none"
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int
    quick_epochs: int
    batch_size: int = 32
    model: ModelSpec = field(default_factory=ModelSpec)
    recipe: Recipe = field(default_factory=lambda: _CAREFUL)
    train_size: int | None = None
    class_shares: tuple[float, ...] | None = None
    label_noise: float = 0.0
    duplicate_fraction: float = 0.0
    split_by_time: bool = False
    data_checks: Mapping[str, Any] = field(default_factory=dict)
    injection: str | None = None
    injection_args: Mapping[str, Any] = field(default_factory=dict)
    loss_only: bool = False
    accumulate: int = 1
    second_val: bool = False
    validate_first: bool = False

    def __post_init__(self) -> None:
        v.check_choice("task", self.task, TASKS)
        v.check_choice("onset", self.onset, tuple(ONSETS))
        v.check_positive_int("epochs", self.epochs)
        v.check_positive_int("quick_epochs", self.quick_epochs)
        v.check_fraction("label_noise", self.label_noise)
        v.check_fraction("duplicate_fraction", self.duplicate_fraction)
        v.check_bool("split_by_time", self.split_by_time)
        for name in ("loss_only", "second_val", "validate_first"):
            v.check_bool(name, getattr(self, name))
        v.check_positive_int("accumulate", self.accumulate)
        if (self.duplicate_fraction or self.split_by_time) and self.task != "tickets":
            raise ValueError(
                "Expected `duplicate_fraction` and `split_by_time` only with the 'tickets' task, "
                f"but got task {self.task!r}."
            )
        if self.injection is not None:
            v.check_choice("injection", self.injection, tuple(INJECTIONS))
        for code in [c for group in self.expected for c in group] + list(self.accepted):
            if code not in CATALOGUE:
                raise ValueError(
                    f"Expected finding codes from fitwatch.findings.CATALOGUE, but got {code!r}."
                )
        if bool(self.expected) != (self.onset != "none"):
            raise ValueError(
                "Expected a fault scenario to name an onset and a healthy one not to, "
                f"but got {self.onset!r}."
            )

    @property
    def healthy(self) -> bool:
        """Whether the run has no fault (no expected codes)."""
        return not self.expected

    @property
    def expected_text(self) -> str:
        """The expected codes as one line: groups joined by ``+``, alternatives by ``|``."""
        return " + ".join("|".join(group) for group in self.expected) or "-"


# The careful recipe of the healthy runs: AdamW at the usual 1e-3 for networks trained from scratch,
# decay 0.01 off norms and biases, 5% warmup, linear decay to zero at the planned end.
_CAREFUL = Recipe(lr=1e-3, weight_decay=0.01, schedule="linear", warmup=0.05)
# The same networks with every regularizer off and a constant learning rate: what overfits.
_PLAIN = Recipe(lr=1e-3, weight_decay=0.0)
_TICKET_MODEL = ModelSpec(hidden=64, depth=2, dropout=0.1)
_TICKET_PLAIN = ModelSpec(hidden=64, depth=2, dropout=0.0)
_OVERFIT_ACCEPTS = ("FW-GAP-WIDENING", "FW-OVERFIT", "FW-OVERFIT-SUBTLE", "FW-CALIBRATION")
#: Seeds of the healthy tabular runs: five each (a couple of seconds per run), so that with the ticket runs the
#: false-alarm claim rests on more than 20 healthy runs.
_TABULAR_HEALTHY_SEEDS = (0, 1, 2, 3, 4)


def _healthy(
    task: str, seeds: tuple[int, ...], epochs: int, quick: int, what: str, **kwargs: Any
) -> Scenario:
    return Scenario(
        name=f"healthy-{task.replace('_', '-')}",
        task=task,
        description=f"healthy: {what}",
        seeds=seeds,
        epochs=epochs,
        quick_epochs=quick,
        recipe=_CAREFUL,
        **kwargs,
    )


_ALL = (
    _healthy(
        "digits",
        _TABULAR_HEALTHY_SEEDS,
        20,
        6,
        "MLP 64-128-10, dropout 0.1, AdamW 1e-3, warmup and linear decay",
    ),
    _healthy(
        "wine",
        _TABULAR_HEALTHY_SEEDS,
        40,
        10,
        "MLP 13-32-3, dropout 0.1, AdamW 1e-3, warmup and linear decay",
        model=ModelSpec(hidden=32),
        batch_size=16,
    ),
    _healthy(
        "breast_cancer",
        _TABULAR_HEALTHY_SEEDS,
        25,
        8,
        "MLP 30-64-2, dropout 0.1, AdamW 1e-3, warmup and linear decay",
        model=ModelSpec(hidden=64),
    ),
    _healthy(
        "tickets",
        (0, 1, 2),
        5,
        2,
        "2-layer BERT (width 64) from scratch, dropout 0.1, AdamW 1e-3, warmup and linear decay",
        model=_TICKET_MODEL,
    ),
    Scenario(
        name="healthy-tickets-by-time",
        task="tickets",
        description="healthy: the healthy ticket recipe on a split by time (validation: the latest quarter of "
        "the tickets), with the temporal check on",
        seeds=(0, 1, 2),
        epochs=5,
        quick_epochs=2,
        model=_TICKET_MODEL,
        split_by_time=True,
        data_checks={"time_field": "timestamp"},
    ),
    Scenario(
        name="overfit-tickets",
        task="tickets",
        description="plain overfitting: 300 training tickets, no dropout, no weight decay, constant LR, "
        "25 epochs",
        expected=(("FW-OVERFIT",),),
        accepted=(*_OVERFIT_ACCEPTS, "FW-CLASS-NEVER-PREDICTED", "FW-CLASS-COLLAPSE"),
        onset="min_val_loss",
        epochs=25,
        quick_epochs=12,
        batch_size=16,
        train_size=300,
        model=_TICKET_PLAIN,
        recipe=_PLAIN,
    ),
    Scenario(
        name="overfit-breast-cancer",
        task="breast_cancer",
        description="plain overfitting: a wide 2-layer MLP, no dropout, no weight decay, 60 epochs",
        expected=(("FW-OVERFIT",),),
        accepted=_OVERFIT_ACCEPTS,
        onset="min_val_loss",
        epochs=60,
        quick_epochs=30,
        model=ModelSpec(hidden=256, depth=2, dropout=0.0),
        recipe=_PLAIN,
    ),
    Scenario(
        name="subtle-overfit-tickets",
        task="tickets",
        description="subtle overfitting: the healthy ticket recipe trained for 15 epochs instead of 5; "
        "accuracy holds while NLL and ECE rise",
        expected=(("FW-OVERFIT-SUBTLE",),),
        accepted=_OVERFIT_ACCEPTS,
        onset="min_val_nll",
        epochs=15,
        quick_epochs=10,
        model=_TICKET_MODEL,
    ),
    Scenario(
        name="plateau-low-lr-digits",
        task="digits",
        description="plateau: plain SGD at lr 1e-4 (an Adam learning rate kept after switching to SGD)",
        expected=(("FW-PLATEAU",),),
        # Stuck near chance, the run sits at the majority-class baseline too.
        accepted=("FW-LR-TOO-LOW", "FW-FAILED-RUN"),
        onset="fit_start",
        epochs=15,
        quick_epochs=8,
        recipe=Recipe(optimizer="sgd", lr=1e-4, weight_decay=0.0, momentum=0.0),
    ),
    Scenario(
        name="lr-too-high-digits",
        task="digits",
        description="learning rate too high: AdamW at 0.05",
        expected=(("FW-LR-TOO-HIGH",),),
        # The jumps make the validation loss rise while the training loss falls, and the weights grow.
        accepted=(
            "FW-LOSS-SPIKES",
            "FW-DIVERGENCE",
            "FW-PLATEAU",
            "FW-FAILED-RUN",
            "FW-CALIBRATION",
            "FW-OVERFIT",
            "FW-REG-WEIGHT-GROWTH",
        ),
        onset="fit_start",
        epochs=15,
        quick_epochs=6,
        recipe=Recipe(lr=0.05, weight_decay=0.01),
    ),
    Scenario(
        name="lr-decayed-digits",
        task="digits",
        description="schedule ends early: SGD with a linear decay sized for a quarter of the steps "
        "(total steps divided by an accumulate_grad_batches=4 the Trainer does not use)",
        expected=(("FW-LR-DECAYED",),),
        onset="lr_decayed",
        epochs=16,
        quick_epochs=12,
        recipe=Recipe(optimizer="sgd", lr=0.01, weight_decay=0.0, schedule="linear", schedule_steps=0.25),
    ),
    Scenario(
        name="class-collapse-tickets",
        task="tickets",
        description="minority class collapse: 'cancellation' is 1% of the tickets; the healthy recipe "
        "never learns it",
        expected=(("FW-CLASS-COLLAPSE", "FW-CLASS-NEVER-PREDICTED"),),
        onset="fit_start",
        epochs=5,
        quick_epochs=3,
        model=_TICKET_MODEL,
        class_shares=(0.32, 0.29, 0.22, 0.16, 0.01),
    ),
    Scenario(
        name="label-noise-tickets",
        task="tickets",
        description="label noise: 30% of training labels flipped, no regularization, constant LR; the model "
        "memorizes them",
        expected=(("FW-OVERFIT",),),
        # Flipping labels uniformly also shifts the training class mix away from validation's.
        accepted=(*_OVERFIT_ACCEPTS, "FW-LABEL-SHIFT", "FW-MISLABEL-SUSPECTS"),
        onset="min_val_loss",
        epochs=12,
        quick_epochs=8,
        model=_TICKET_PLAIN,
        recipe=_PLAIN,
        label_noise=0.3,
    ),
    Scenario(
        name="eval-mode-breast-cancer",
        task="breast_cancer",
        description="model left in eval mode: a probe callback calls pl_module.eval() after each epoch "
        "and never switches back",
        expected=(("FW-REG-EVAL-MODE",),),
        onset="injection",
        epochs=10,
        quick_epochs=3,
        model=ModelSpec(hidden=64, dropout=0.2),
        injection="forgets_train_mode",
    ),
    Scenario(
        name="missing-params-wine",
        task="wine",
        description="parameters missing from the optimizer: the head is re-initialised after the "
        "optimizer was built",
        expected=(("FW-REG-MISSING-PARAMS",),),
        # A head that never trains leaves classes unpredicted and can leave the run at the baseline.
        accepted=("FW-CLASS-NEVER-PREDICTED", "FW-CLASS-COLLAPSE", "FW-FAILED-RUN"),
        onset="fit_start",
        epochs=40,
        quick_epochs=3,
        batch_size=16,
        model=ModelSpec(hidden=32),
        injection="replaces_head",
    ),
    Scenario(
        name="decay-on-norm-tickets",
        task="tickets",
        description="weight decay on LayerNorm and biases: plain "
        "AdamW(model.parameters(), weight_decay=0.01)",
        expected=(("FW-REG-DECAY-ON-NORM",),),
        onset="fit_start",
        epochs=5,
        quick_epochs=1,
        model=_TICKET_MODEL,
        recipe=Recipe(lr=1e-3, weight_decay=0.01, decay_norm_and_bias=True, schedule="linear", warmup=0.05),
    ),
    Scenario(
        name="nan-digits",
        task="digits",
        description="NaN injection: one training batch carries a NaN feature at 40% of training",
        expected=(("FW-DIVERGENCE",),),
        accepted=("FW-FAILED-RUN", "FW-CLASS-NEVER-PREDICTED", "FW-CLASS-COLLAPSE"),
        onset="injection",
        epochs=10,
        quick_epochs=4,
        injection="corrupts_batch",
        injection_args={"at": 0.4},
    ),
    Scenario(
        name="duplicates-tickets",
        task="tickets",
        description="train/validation duplicates: 20% of the tickets are resubmissions of an earlier ticket, "
        "split at random and never deduplicated; the healthy recipe",
        expected=(("FW-LEAK-DUPLICATES",),),
        # Validation tickets the model trained on can make validation look better than training.
        accepted=("FW-LEAK-SUSPICIOUS",),
        onset="fit_start",
        epochs=5,
        quick_epochs=2,
        model=_TICKET_MODEL,
        duplicate_fraction=0.2,
    ),
    Scenario(
        name="temporal-tickets",
        task="tickets",
        description="time-ordered tickets split at random: the healthy ticket run with the temporal check "
        "reading each ticket's timestamp",
        expected=(("FW-LEAK-TEMPORAL",),),
        onset="fit_start",
        epochs=5,
        quick_epochs=1,
        model=_TICKET_MODEL,
        data_checks={"time_field": "timestamp"},
    ),
    Scenario(
        name="mislabels-tickets",
        task="tickets",
        description="noisy labels: 20% of the training labels flipped; the healthy recipe, with area under "
        "the margin tracked per sample id",
        expected=(("FW-MISLABEL-SUSPECTS",),),
        # Flipping labels uniformly shifts the training class mix away from validation's.
        accepted=("FW-LABEL-SHIFT", *_OVERFIT_ACCEPTS),
        onset="fit_end",
        epochs=5,
        quick_epochs=2,
        model=_TICKET_MODEL,
        label_noise=0.2,
        data_checks={"mislabels": True},
    ),
)

#: Every scenario by name, healthy ones first.
SCENARIOS: Mapping[str, Scenario] = {s.name: s for s in _ALL}


def _loss_only(name: str, seeds: tuple[int, ...] = (0, 1, 2)) -> Scenario:
    base = SCENARIOS[name]
    return dataclasses.replace(
        base,
        name=f"{name}-loss-only",
        description=f"{base.description}; a module that returns only its loss and logs val_loss/val_acc",
        seeds=seeds,
        loss_only=True,
    )


# Loss-only versions of the scenarios whose signal is in the loss, the optimizer or the model set-up: the
# healthy tabular runs and a healthy ticket run, and the faults whose expected codes need no per-class,
# calibration or per-sample numbers (subtle overfitting needs ECE, class collapse per-class recall, the
# mislabel check per-sample margins; the data checks read the datasets, with or without logits). The ticket
# faults are one seed each to keep the whole set under a few minutes of CPU.
_LOSS_ONLY = (
    _loss_only("healthy-digits"),
    _loss_only("healthy-wine"),
    _loss_only("healthy-breast-cancer"),
    _loss_only("healthy-tickets", seeds=(0,)),
    _loss_only("overfit-breast-cancer"),
    _loss_only("overfit-tickets", seeds=(0,)),
    _loss_only("label-noise-tickets", seeds=(0,)),
    _loss_only("plateau-low-lr-digits"),
    _loss_only("lr-too-high-digits"),
    _loss_only("lr-decayed-digits"),
    _loss_only("eval-mode-breast-cancer"),
    _loss_only("missing-params-wine"),
    _loss_only("nan-digits"),
)
#: Loss-only versions of zoo scenarios (``<name>-loss-only``): FitWatch judges them on what the module logs.
LOSS_ONLY_SCENARIOS: Mapping[str, Scenario] = {s.name: s for s in _LOSS_ONLY}

# Accumulation as it is used: batches a quarter as large, accumulated 4 times, so the effective batch and the
# number of optimizer steps are the healthy run's own.
_SHAPES = {
    "accumulate": ({"accumulate": 4}, "batches a quarter the size with accumulate_grad_batches=4"),
    "two-val": ({"second_val": True}, "a second validation dataloader (noisy features), summarised as val_1"),
    "validate-first": (
        {"validate_first": True},
        "trainer.validate(model, val) before trainer.fit on one Trainer",
    ),
}


def _loop_shape(name: str, shape: str, seeds: tuple[int, ...] = (0, 1, 2)) -> Scenario:
    base = SCENARIOS[name]
    changes, what = _SHAPES[shape]
    if "accumulate" in changes:
        changes = {**changes, "batch_size": base.batch_size // changes["accumulate"]}
    return dataclasses.replace(
        base, name=f"{name}-{shape}", description=f"{base.description}; {what}", seeds=seeds, **changes
    )


#: Healthy runs trained in the loop shapes of real scripts (``<name>-<shape>``): gradient accumulation, two
#: validation sets, a validation before the fit. Each must stay free of warning-level findings.
LOOP_SHAPE_SCENARIOS: Mapping[str, Scenario] = {
    s.name: s
    for s in (
        _loop_shape(name, shape)
        for shape in _SHAPES
        for name in ("healthy-digits", "healthy-wine", "healthy-breast-cancer")
    )
}
#: The variants together: ``python -m benchmarks.zoo --variants`` runs them.
VARIANT_SCENARIOS: Mapping[str, Scenario] = {**LOSS_ONLY_SCENARIOS, **LOOP_SHAPE_SCENARIOS}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name`` (in :data:`SCENARIOS` or :data:`VARIANT_SCENARIOS`).

    Raises:
        ValueError: If there is none, naming the ones there are.
    """
    known = {**SCENARIOS, **VARIANT_SCENARIOS}
    if name not in known:
        raise ValueError(f"Expected a scenario name ({', '.join(known)}), but got {name!r}.")
    return known[name]
