"""A FitWatchCallback run of a tiny BERT (built from a config) in the Hugging Face ``Trainer``, under
``torchrun --nproc_per_node 2`` (CPU, gloo) or in one process, for the distributed tests.

    torchrun --standalone --nproc_per_node 2 -m tests.reliability.hf_ddp --out DIR --eval-size 72
    python -m tests.reliability.hf_ddp --out DIR --eval-size 72

Each rank writes ``DIR/rank<r>.json`` (history, findings, calibration bins and confusion matrix of every
evaluation, pid, final step) and sends its stderr to ``DIR/stderr_rank<r>.txt``.

The learning rate is 0 and dropout off, so training and evaluation numbers depend on the global sets
only, whatever the sharding. Accelerate shards evaluation batch by batch (``EVAL_BATCH`` per rank) and,
when the set is not a multiple of ``EVAL_BATCH`` x world size, completes the last batches with samples
from the start of the set (``even_batches``); ``--eval-size`` chooses which case runs.
``--stop`` adds ``stop_on=["FW-DIVERGENCE"]`` and a NaN loss value (finite gradients) on rank 1 only at
its ``NAN_STEP``-th training forward.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

N_TRAIN = 128
EVAL_BATCH = 20
EPOCHS = 6
NAN_STEP = 9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--eval-size", type=int, default=72)
    parser.add_argument("--stop", action="store_true")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    args.out.mkdir(parents=True, exist_ok=True)
    fd = os.open(args.out / f"stderr_rank{rank}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)

    import torch
    from transformers import BertForSequenceClassification, Trainer

    from fitwatch import FitWatchWarning
    from fitwatch.hf import FitWatchCallback
    from tests.hf.tiny import SequenceData, bert_config
    from tests.hf.tiny import args as training_args
    from tests.reliability.ranks import record_details

    warnings.simplefilter("always", FitWatchWarning)

    class Model(BertForSequenceClassification):
        """Counts training forwards; with ``--stop``, rank 1's ``NAN_STEP``-th loss value is NaN."""

        calls = 0

        def forward(self, **kwargs):
            out = super().forward(**kwargs)
            if self.training:
                if args.stop and rank == 1 and self.calls == NAN_STEP:
                    out.loss = out.loss + torch.tensor(float("nan"))  # a constant: the gradients stay finite
                self.calls += 1
            return out

    torch.manual_seed(0)
    model = Model(bert_config(3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    cb = FitWatchCallback(
        class_names=["a", "b", "c"], log_every_n_steps=2, stop_on=["FW-DIVERGENCE"] if args.stop else None
    )
    details: list[dict] = []

    trainer = Trainer(
        model=model,
        args=training_args(
            args.out,
            num_train_epochs=EPOCHS,
            learning_rate=0.0,
            per_device_train_batch_size=32 // world,
            per_device_eval_batch_size=EVAL_BATCH,
            remove_unused_columns=False,
            ddp_find_unused_parameters=False,
            ddp_backend="gloo" if world > 1 else None,
        ),
        train_dataset=SequenceData(N_TRAIN, seed=0),
        eval_dataset=SequenceData(args.eval_size, seed=1),
        callbacks=[cb],
    )
    assert cb.observer is not None  # built at on_init_end
    record_details(cb.observer.monitor, details)
    trainer.train()
    result = {
        "rank": trainer.args.process_index,
        "world_size": trainer.args.world_size,
        "pid": os.getpid(),
        "global_step": trainer.state.global_step,
        "history": cb.history,
        "findings": [f.to_dict() for f in cb.findings],
        "details": details,
        "run_dir": str(cb.run_dir) if cb.run_dir else None,
    }
    (args.out / f"rank{trainer.args.process_index}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
