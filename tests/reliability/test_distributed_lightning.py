"""FitWatch under Lightning ``strategy="ddp"`` with 2 CPU processes (gloo), against the same run in one process.

Each run is ``tests/reliability/lightning_ddp.py`` in a subprocess with a hard timeout (and a 60 s collective
timeout inside), so a hang fails here instead of blocking the suite.

Hang patterns read before writing these (Lightning #19783/#20561, torchmetrics #3199 and their kin): a
collective that only some ranks reach (a reduction inside ``if trainer.is_global_zero``, a metric synced
by the ranks that saw data only), and per-batch collectives when ranks have different numbers of batches.
fitwatch reduces once per evaluation, from ``on_validation_epoch_end``, which Lightning calls on every rank
whatever its batch count; a rank without logits joins the reduction and learns the shapes from the others.
These tests hold that: uneven batch counts, a batch with no rows, and logits on rank 0 only.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from .lightning_ddp import MAX_EPOCHS, N_TRAIN, NAN_STEP, VAL_SIZE, digit_sets
from .ranks import (
    assert_same_details,
    assert_stopped_together,
    assert_same_findings,
    assert_same_history,
    launch,
    python_module,
    stderr_of,
)

pytestmark = pytest.mark.slow

#: One run takes ~20-30 s on 2 busy cores; far above that is a hang.
RUN_TIMEOUT_S = 240
STEPS_PER_EPOCH = N_TRAIN // 64
LOG_EVERY = 4


@pytest.fixture(scope="module")
def lightning(tmp_path_factory):
    """``run(scenario, devices=2) -> (out_dir, {rank: result})``, each run once per module."""
    root = tmp_path_factory.mktemp("lightning_ddp")
    cache: dict = {}

    def run(scenario: str, devices: int = 2):
        if (scenario, devices) not in cache:
            out = root / f"{scenario}-{devices}"
            command = python_module(
                "tests.reliability.lightning_ddp",
                "--out",
                str(out),
                "--devices",
                str(devices),
                "--scenario",
                scenario,
            )
            cache[scenario, devices] = out, launch(command, out, timeout=RUN_TIMEOUT_S)
        return cache[scenario, devices]

    return run


def _val_labels() -> list[int]:
    return digit_sets()[1].tensors[1].tolist()


def test_two_processes_report_what_one_process_reports(lightning):
    """Per-class metrics, calibration bins, confusion matrices, train/val gaps and findings are the same
    with 2 processes as with 1, on both ranks (the reduction hands every rank the global sums)."""
    _, one = lightning("even", devices=1)
    _, two = lightning("even")
    assert sorted(two) == [0, 1] and two[0]["world_size"] == 2
    reference = one[0]
    # The evaluations really did see the whole set: supports equal the label counts.
    counts = Counter(_val_labels())
    for c in range(10):
        assert [v for _, v in reference["history"][f"per_class/support/{c}/val"]] == [counts[c]] * MAX_EPOCHS
    # lr=0 holds the validation loss still (a plateau) at chance accuracy (a failed run): findings to compare.
    assert {"FW-PLATEAU", "FW-FAILED-RUN"} <= {f["code"] for f in reference["findings"]}
    for rank in (0, 1):
        assert_same_history(reference["history"], two[rank]["history"])
        assert_same_details(reference["details"], two[rank]["details"])
        assert_same_findings(reference["findings"], two[rank]["findings"])


def test_only_rank_zero_writes_event_files_and_warns(lightning):
    out, two = lightning("even")
    events = sorted(out.rglob("events.out.tfevents.*"))
    assert events
    # Event file names end in <hostname>.<pid>.<n>: every one was opened by rank 0's process.
    assert {int(p.name.split(".")[-2]) for p in events} == {two[0]["pid"]}
    assert two[1]["run_dir"] is None  # rank 1 never set up a sink
    lines = [
        json.loads(line) for line in (out / "tb" / "version_0" / "findings.jsonl").read_text().splitlines()
    ]
    assert sorted((e["code"], e["subject"]) for e in lines if e["event"] == "new") == sorted(
        (f["code"], f["subject"]) for f in two[0]["findings"]
    )  # each cause once: no second writer
    rank0, rank1 = stderr_of(out, 0), stderr_of(out, 1)
    # Warnings point at the user's line (here a file whose path holds "lightning", which Lightning's own warning
    # format prints without the category), so the code is what is checked.
    for code in ("FW-PLATEAU", "FW-FAILED-RUN"):
        assert f"[{code}]" in rank0
    assert "FW-" not in rank1 and "fitwatch" not in rank1


def test_uneven_batch_counts_and_an_empty_last_batch_do_not_hang(lightning):
    """Rank 0 reads 136 samples in 3 batches, rank 1 64 in one and then a batch with no rows: no hang, and the
    same numbers as one process (the empty batch's NaN loss aside, see ``test_faults``)."""
    _, one = lightning("even", devices=1)
    _, two = lightning("zero_row")
    assert (two[0]["val_batches"], two[1]["val_batches"]) == ([3], [2])
    for rank in (0, 1):
        assert two[rank]["global_step"] == MAX_EPOCHS * STEPS_PER_EPOCH
        assert_same_history(one[0]["history"], two[rank]["history"], skip=["health/nonfinite_loss/val"])
        assert_same_details(one[0]["details"], two[rank]["details"])
        assert_same_findings(one[0]["findings"], two[rank]["findings"])


def test_logits_on_rank_zero_only_do_not_hang(lightning):
    """``validation_step`` returns logits on rank 0 only: rank 1 joins the reduction with nothing and learns the
    shapes; both ranks then hold rank 0's half of the set (Lightning's sampler: every other sample)."""
    _, two = lightning("rank_zero_only")
    half = Counter(_val_labels()[0::2])
    for rank in (0, 1):
        assert two[rank]["global_step"] == MAX_EPOCHS * STEPS_PER_EPOCH
        assert [v for _, v in two[rank]["history"]["health/samples/val"]] == [VAL_SIZE / 2] * MAX_EPOCHS
        assert [two[rank]["history"][f"per_class/support/{c}/val"][-1][1] for c in range(10)] == [
            half[c] for c in range(10)
        ]


def test_rank_one_does_not_repeat_runtime_warnings(lightning):
    out, _ = lightning("rank_zero_only")
    assert "fitwatch" not in stderr_of(out, 1)


def test_a_stop_on_finding_on_one_rank_stops_every_rank_at_the_same_step(lightning):
    """Rank 1 alone sees a NaN loss at step ``NAN_STEP``; FW-DIVERGENCE is in ``stop_on``. The decision is
    OR-reduced at the next validation, so both ranks stop there, together, long before ``max_epochs``."""
    _, two = lightning("stop")
    assert_stopped_together(two, nan_step=NAN_STEP, log_every=LOG_EVERY, steps_per_epoch=STEPS_PER_EPOCH,
                            max_steps=MAX_EPOCHS * STEPS_PER_EPOCH)


def test_rank_zero_shows_the_finding_that_stopped_the_run(lightning):
    out, _ = lightning("stop")
    codes = {
        json.loads(line)["code"]
        for line in (out / "tb" / "version_0" / "findings.jsonl").read_text().splitlines()
    }
    assert "FW-DIVERGENCE" in codes
