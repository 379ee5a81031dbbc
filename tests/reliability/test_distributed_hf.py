"""FitWatchCallback in the Hugging Face ``Trainer`` under ``torchrun --nproc_per_node 2`` (CPU, gloo), against
the same run in one process (``tests/reliability/hf_ddp.py`` in a subprocess with a hard timeout).

What applies to us from the known traps (transformers' callbacks run on every process; Accelerate shards the
evaluation set batch by batch and completes the last batches with samples from the start of the set,
``even_batches``, which ``gather_for_metrics`` drops again): every rank reaches ``on_evaluate``, where the
reduction runs, so uneven or short batches cannot hang it; but the forward hook sees the completed batches,
so an evaluation set that is not a multiple of batch size x world size is over-counted.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from tests.hf.tiny import SequenceData

from .hf_ddp import EPOCHS, N_TRAIN, NAN_STEP
from .ranks import (
    assert_same_details,
    assert_stopped_together,
    assert_same_findings,
    assert_same_history,
    launch,
    python_module,
    stderr_of,
    torchrun,
)

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 240
STEPS_PER_EPOCH = N_TRAIN // 32
LOG_EVERY = 2
#: A multiple of EVAL_BATCH x 2 ranks: no completed batch. 72 is not: rank 1's last batch (12 samples)
#: is completed with 8 samples from the start of the set.
EVEN_SIZE, PADDED_SIZE = 80, 72


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """``run(eval_size, devices=2, stop=False) -> (out_dir, {rank: result})``, each run once per module."""
    root = tmp_path_factory.mktemp("hf_ddp")
    cache: dict = {}

    def run(eval_size: int, devices: int = 2, stop: bool = False):
        key = (eval_size, devices, stop)
        if key not in cache:
            out = root / f"{eval_size}-{devices}{'-stop' if stop else ''}"
            args = ["--out", str(out), "--eval-size", str(eval_size), *(["--stop"] if stop else [])]
            command = (
                torchrun("tests.reliability.hf_ddp", *args)
                if devices > 1
                else python_module("tests.reliability.hf_ddp", *args)
            )
            cache[key] = out, launch(command, out, timeout=RUN_TIMEOUT_S)
        return cache[key]

    return run


def _supports(result, names=("a", "b", "c")) -> list[float]:
    return [result["history"][f"per_class/support/{n}/val"][-1][1] for n in names]


def test_two_processes_report_what_one_process_reports(hf):
    _, one = hf(EVEN_SIZE, devices=1)
    _, two = hf(EVEN_SIZE)
    assert sorted(two) == [0, 1] and two[0]["world_size"] == 2
    counts = Counter(SequenceData(EVEN_SIZE, seed=1).y.tolist())
    assert _supports(one[0]) == [counts[i] for i in range(3)]
    assert "FW-PLATEAU" in {f["code"] for f in one[0]["findings"]}
    for rank in (0, 1):
        assert_same_history(one[0]["history"], two[rank]["history"])
        assert_same_details(one[0]["details"], two[rank]["details"])
        assert_same_findings(one[0]["findings"], two[rank]["findings"])


def test_only_rank_zero_writes_event_files_and_warns(hf):
    out, two = hf(EVEN_SIZE)
    events = sorted(out.rglob("events.out.tfevents.*"))
    assert events and {int(p.name.split(".")[-2]) for p in events} == {two[0]["pid"]}
    assert two[1]["run_dir"] is None
    assert len(list(out.rglob("findings.jsonl"))) == 1 and len(list(out.rglob("history.json"))) == 1
    rank0, rank1 = stderr_of(out, 0), stderr_of(out, 1)
    assert "PlateauWarning: [FW-PLATEAU]" in rank0
    assert "FW-" not in rank1 and "fitwatch" not in rank1


def test_a_short_last_batch_does_not_hang_and_both_ranks_agree(hf):
    _, two = hf(PADDED_SIZE)
    assert two[0]["global_step"] == two[1]["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert_same_history(two[0]["history"], two[1]["history"])


def test_samples_repeated_to_complete_the_last_batch_are_not_counted(hf):
    _, two = hf(PADDED_SIZE)
    counts = Counter(SequenceData(PADDED_SIZE, seed=1).y.tolist())
    assert two[0]["history"]["health/samples/val"][-1][1] == PADDED_SIZE
    assert _supports(two[0]) == [counts[i] for i in range(3)]


def test_a_stop_on_finding_on_one_rank_stops_every_rank_at_the_same_step(hf):
    _, two = hf(EVEN_SIZE, stop=True)
    assert_stopped_together(two, nan_step=NAN_STEP, log_every=LOG_EVERY, steps_per_epoch=STEPS_PER_EPOCH,
                            max_steps=EPOCHS * STEPS_PER_EPOCH)


def test_rank_zero_shows_the_finding_that_stopped_the_run(hf):
    out, _ = hf(EVEN_SIZE, stop=True)
    (path,) = out.rglob("findings.jsonl")
    assert "FW-DIVERGENCE" in {json.loads(line)["code"] for line in path.read_text().splitlines()}
