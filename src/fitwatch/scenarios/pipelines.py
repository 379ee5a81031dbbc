"""The data fault that is not a training run: ticket preprocessing that runs in another order at inference.

Training cleans a ticket in three stages: lower-case it, expand the support team's acronyms ("vat" -> "value
added tax"), remove stop words. The serving code was written later and removes stop words first. Stop-word
lists are lower-case and the removal compares words as they are, so at inference every capitalised stop word
("The", "My", "I") survives, and the model sees inputs it never saw in training; no error is raised anywhere.
:func:`run_pipeline_scenario` runs a sample of generated tickets (the golden records) through both pipelines
with :func:`fitwatch.data.compare_pipelines`, which must raise ``FW-PIPELINE-DRIFT`` and trace the
difference back to the moved stage, ``remove_stop_words``. The same pipeline on both sides is its healthy
control: it must agree on every record.

>>> result = run_pipeline_scenario("pipeline-order-tickets", records=20)
>>> result.codes, result.named_stage
(('FW-PIPELINE-DRIFT',), 'remove_stop_words')
>>> run_pipeline_scenario("pipeline-same-order-tickets", records=20).codes
()
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fitwatch import _validation as v
from fitwatch.data import PipelineComparison, compare_pipelines
from fitwatch.findings import Finding

__all__ = [
    "GOLDEN_RECORDS",
    "PIPELINE_SCENARIOS",
    "TICKET_ACRONYMS",
    "PipelineResult",
    "PipelineScenario",
    "expand_acronyms",
    "lowercase",
    "remove_stop_words",
    "run_pipeline_scenario",
]

#: The support team's shorthand found in the generated tickets, lower-case (expansion runs after lower-casing).
TICKET_ACRONYMS: Mapping[str, str] = {
    "api": "application programming interface",
    "csv": "comma separated values",
    "mb": "megabytes",
    "pc": "personal computer",
    "ps": "postscript",
    "vat": "value added tax",
}
#: Golden records compared by default: generated tickets, the first of the seed's set.
GOLDEN_RECORDS = 200
_WORD = re.compile(r"\b[A-Za-z]+\b")
_PUNCTUATION = ".,!?:;\"'()"


def lowercase(text: str) -> str:
    """Lower-case a ticket.

    >>> lowercase("My VAT invoice")
    'my vat invoice'
    """
    return text.lower()


def expand_acronyms(text: str) -> str:
    """Replace each lower-case acronym of :data:`TICKET_ACRONYMS` by its expansion (whole words only).

    >>> expand_acronyms("the vat on my invoice. ps: thanks")
    'the value added tax on my invoice. postscript: thanks'
    """
    return _WORD.sub(lambda m: TICKET_ACRONYMS.get(m.group(0), m.group(0)), text)


@cache
def _stop_words() -> frozenset[str]:
    # scikit-learn's English list (318 words, from the Glasgow Information Retrieval Group), lower-case.
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def remove_stop_words(text: str) -> str:
    """Drop the words that are English stop words, compared as written (the list is lower-case).

    Punctuation around a word is ignored when comparing, and the word goes with it.

    >>> remove_stop_words("the box was opened. The lamp is missing")
    'box opened. The lamp missing'
    """
    stop = _stop_words()
    return " ".join(w for w in text.split() if w.strip(_PUNCTUATION) not in stop)


Stage = tuple[str, Callable[[str], str]]
#: The training pipeline, in order.
TRAINING: tuple[Stage, ...] = (
    ("lowercase", lowercase),
    ("expand_acronyms", expand_acronyms),
    ("remove_stop_words", remove_stop_words),
)
#: The serving code's pipeline: stop words removed first.
STOP_WORDS_FIRST: tuple[Stage, ...] = (
    ("remove_stop_words", remove_stop_words),
    ("lowercase", lowercase),
    ("expand_acronyms", expand_acronyms),
)


@dataclass(frozen=True, kw_only=True)
class PipelineScenario:
    """Training and inference preprocessing compared on golden records.

    Args:
        name: Registry name.
        description: The fault in one sentence (for the control, what it compares).
        inference: The inference pipeline (training is always :data:`TRAINING`).
        expected: Finding codes the comparison must raise (empty for the control).
        moved: The stage the report must name as the cause, for a fault.
    """

    name: str
    description: str
    inference: tuple[Stage, ...]
    expected: tuple[str, ...] = ()
    moved: str | None = None

    @property
    def healthy(self) -> bool:
        """Whether the two pipelines are the same (nothing to find)."""
        return not self.expected


#: The pipeline scenarios by name, the control first.
PIPELINE_SCENARIOS: Mapping[str, PipelineScenario] = {
    s.name: s
    for s in (
        PipelineScenario(
            name="pipeline-same-order-tickets",
            description="control: inference runs the training pipeline's stages in the training order",
            inference=TRAINING,
        ),
        PipelineScenario(
            name="pipeline-order-tickets",
            description="stage order swapped: training lower-cases, expands acronyms, removes stop words; "
            "inference removes stop words first",
            inference=STOP_WORDS_FIRST,
            expected=("FW-PIPELINE-DRIFT",),
            moved="remove_stop_words",
        ),
    )
}


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """What one pipeline comparison gave.

    Attributes:
        scenario: The scenario.
        seed: Seed of the generated tickets.
        comparison: The comparison; ``str(comparison)`` is the report a person reads.
        finding: Its ``FW-PIPELINE-DRIFT`` finding, when the pipelines differ.
        wall_s: Seconds spent comparing.
    """

    scenario: PipelineScenario
    seed: int
    comparison: PipelineComparison
    finding: Finding | None
    wall_s: float

    @property
    def codes(self) -> tuple[str, ...]:
        """The finding codes raised."""
        return (self.finding.code,) if self.finding is not None else ()

    @property
    def named_stage(self) -> str | None:
        """The stage the report traces most differing records back to (``None`` when none differ)."""
        culprits = self.comparison.culprit_counts
        return next(iter(culprits)) if culprits else None

    @property
    def detected(self) -> bool:
        """Whether the expected codes were raised and the moved stage named (for the control: nothing raised)."""
        if self.scenario.healthy:
            return not self.codes
        return set(self.scenario.expected) <= set(self.codes) and self.named_stage == self.scenario.moved

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary, with the report's summary lines and its first record."""
        report = str(self.comparison).split("\n\n")
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "healthy": self.scenario.healthy,
            "expected": list(self.scenario.expected),
            "raised": list(self.codes),
            "detected": self.detected,
            "records": self.comparison.n_samples,
            "differ": len(self.comparison.differences),
            "named_stage": self.named_stage,
            "moved": self.scenario.moved,
            "report_head": report[0],
            "report_example": report[1] if len(report) > 1 else "",
            "wall_s": round(self.wall_s, 3),
        }


def run_pipeline_scenario(
    scenario: str | PipelineScenario, *, seed: int = 0, records: int = GOLDEN_RECORDS
) -> PipelineResult:
    """Compare the training and inference preprocessing of ``scenario`` on ``records`` generated tickets.

    Raises:
        ValueError: If the scenario is unknown or ``records`` is not positive.
        TypeError: If ``seed`` or ``records`` is not an int.
    """
    from fitwatch.datasets import support_tickets

    if isinstance(scenario, str):
        if scenario not in PIPELINE_SCENARIOS:
            raise ValueError(
                f"Expected a pipeline scenario name ({', '.join(PIPELINE_SCENARIOS)}), but got {scenario!r}."
            )
        scenario = PIPELINE_SCENARIOS[scenario]
    v.check_non_negative_int("seed", seed)
    v.check_positive_int("records", records)
    golden = support_tickets(n=records, seed=seed).texts
    started = time.perf_counter()
    comparison = compare_pipelines(list(TRAINING), list(scenario.inference), golden)
    wall = time.perf_counter() - started
    return PipelineResult(
        scenario=scenario, seed=seed, comparison=comparison, finding=comparison.to_finding(), wall_s=wall
    )
