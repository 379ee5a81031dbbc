"""A FitWatch run on digits under Lightning DDP (2 CPU processes, gloo) or in one process, for the
distributed tests. Run as a script; Lightning's launcher re-runs it once per extra rank.

    python -m tests.reliability.lightning_ddp --out DIR --devices 2 --scenario even

Each rank writes ``DIR/rank<r>.json`` (its history, findings, the calibration bins and confusion matrix
of every validation, its pid and final step) and sends its stderr to ``DIR/stderr_rank<r>.txt``, so the
test can check what each process wrote and warned.

Scenarios (the validation set is always the same ``VAL_SIZE`` samples, so one process and two see the
same global set):

- ``even``: Lightning's own ``DistributedSampler`` (each rank 100 samples; batches of 32 end short).
- ``uneven``: a sampler of ours; rank 0 gets 136 samples (3 batches), rank 1 64 (1 batch).
- ``zero_row``: as ``uneven``, and rank 1's last batch has no rows at all.
- ``rank_zero_only``: Lightning's sampler, but ``validation_step`` returns logits on rank 0 only (rank 1
  hands fitwatch nothing to accumulate). A loader with no batch at all on one rank is refused by
  Lightning itself (``RuntimeError: DataLoader within local rank has zero length``), before fitwatch runs.
- ``stop``: ``even``, with ``stop_on=["FW-DIVERGENCE"]`` and a NaN loss value on rank 1 only at
  ``NAN_STEP`` (finite gradients, so the weights stay healthy and only rank 1 sees the cause).

The learning rate is 0 and dropout off: training logits depend on the weights only, so training and
validation numbers are functions of the global sets, whatever the sharding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from datetime import timedelta
from pathlib import Path

SCENARIOS = ("even", "uneven", "zero_row", "rank_zero_only", "stop")
N_TRAIN = 256
VAL_SIZE = 200
#: Samples of the validation set that rank 0 reads in the ``uneven`` and ``zero_row`` scenarios.
RANK0_VAL = 136
MAX_EPOCHS = 6
NAN_STEP = 13
#: Collective timeout: a rank waiting on a collective the others never join fails after this instead of
#: hanging (gloo honours it), well inside the test's subprocess timeout.
COLLECTIVE_TIMEOUT_S = 60


def _redirect_stderr(out: Path, rank: int) -> None:
    """Send this process's stderr (Python warnings included) to its own file."""
    fd = os.open(out / f"stderr_rank{rank}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


class _ListSampler:
    """Yields fixed index batches (possibly an empty one, which the collate turns into zero rows)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _collate(items):
    import torch

    if not items:
        return torch.zeros(0, 64), torch.zeros(0, dtype=torch.long)
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys)


def digit_sets():
    """The training and validation sets (``N_TRAIN`` and ``VAL_SIZE`` digits of one fixed permutation)."""
    import torch
    from torch.utils.data import TensorDataset

    from tests.lightning.digits import X, Y

    perm = torch.randperm(len(Y), generator=torch.Generator().manual_seed(0))
    train, val = perm[:N_TRAIN], perm[N_TRAIN : N_TRAIN + VAL_SIZE]
    return TensorDataset(X[train], Y[train]), TensorDataset(X[val], Y[val])


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--scenario", choices=SCENARIOS, default="even")
    parser.add_argument("--no-fitwatch", action="store_true", help="the same run without the callback")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # Lightning's launcher sets it in the processes it starts
    args.out.mkdir(parents=True, exist_ok=True)
    _redirect_stderr(args.out, rank)

    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.strategies import DDPStrategy
    from torch.utils.data import DataLoader, DistributedSampler

    from fitwatch import FitWatchWarning
    from fitwatch.lightning import FitWatch
    from tests.lightning.digits import CLASS_NAMES, DigitsMLP
    from tests.reliability.ranks import record_details

    warnings.simplefilter("always", FitWatchWarning)  # every emission reaches stderr, not the first per line
    torch.manual_seed(0)
    train_set, val_set = digit_sets()
    distributed = args.devices > 1
    ours = distributed and args.scenario in ("uneven", "zero_row")
    per_rank_batch = 32 if distributed else 64  # the same global batch, so the same number of steps
    if ours:
        train = DataLoader(
            train_set,
            batch_size=per_rank_batch,
            sampler=DistributedSampler(train_set, num_replicas=2, rank=rank, shuffle=True, seed=0),
        )
        mine = list(range(RANK0_VAL)) if rank == 0 else list(range(RANK0_VAL, VAL_SIZE))
        batches = _batches(mine, 64)
        if args.scenario == "zero_row" and rank == 1:
            batches.append([])
        val = DataLoader(val_set, batch_sampler=_ListSampler(batches), collate_fn=_collate)
    else:
        train = DataLoader(
            train_set, batch_size=per_rank_batch, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        val = DataLoader(val_set, batch_size=32)

    class Model(DigitsMLP):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            if (
                args.scenario == "stop"
                and self.trainer.global_rank == 1
                and self.trainer.global_step == NAN_STEP
            ):
                # A NaN loss *value* with finite gradients (the constant has no gradient): only this rank sees it.
                out["loss"] = out["loss"] + torch.tensor(float("nan"))
            return out

        def validation_step(self, batch, batch_idx):
            if args.scenario == "rank_zero_only" and self.trainer.global_rank != 0:
                return None
            return super().validation_step(batch, batch_idx)

    model = Model(lr=0.0, dropout=0.0)
    callbacks = []
    cb = None
    details: list[dict] = []
    if not args.no_fitwatch:
        cb = FitWatch(
            class_names=CLASS_NAMES,
            log_every_n_steps=4,
            stop_on=["FW-DIVERGENCE"] if args.scenario == "stop" else None,
        )
        record_details(cb.observer.monitor, details)
        callbacks.append(cb)
    strategy = (
        DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        if distributed
        else "auto"
    )
    trainer = pl.Trainer(
        default_root_dir=args.out,
        max_epochs=MAX_EPOCHS,
        accelerator="cpu",
        devices=args.devices,
        strategy=strategy,
        logger=TensorBoardLogger(args.out, name="tb", version=0),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=4,
        use_distributed_sampler=not ours,
        deterministic=True,
    )
    trainer.fit(model, train, val)
    result = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "pid": os.getpid(),
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "val_batches": [int(n) for n in trainer.num_val_batches],
        "history": cb.history if cb else {},
        "findings": [f.to_dict() for f in cb.findings] if cb else [],
        "details": details,
        "run_dir": str(cb.run_dir) if cb and cb.run_dir else None,
    }
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))
    sys.stderr.flush()


if __name__ == "__main__":
    main()
