"""The design rule in the HF adapter: no host sync from fitwatch in per-step work between logging steps."""

from __future__ import annotations

import pytest
from transformers import Trainer

from fitwatch.hf import FitWatchCallback
from tests.sync_counter import SyncCounter

from .tiny import SequenceData, args, sequence_model



@pytest.mark.filterwarnings("ignore::fitwatch.FitWatchWarning")  # findings of a tiny run are not the subject
def test_no_host_sync_in_per_step_hooks_between_logging_steps(tmp_path, monkeypatch):
    counter = SyncCounter(monkeypatch)

    class Counted(FitWatchCallback):
        """Flags the per-step entry points (forward-hook capture, pre-optimizer, step end) of quiet steps."""

        def _quiet(self, step: int) -> bool:
            observer = self.observer
            special = any(check(s) for check in (observer.is_logging_step, observer.is_diag_step) for s in (step, step - 1))
            # first batch: shape and label checks (one sync, once); first step: the set-up audit; the first step
            # after an evaluation: the re-audit (the model must be back in train mode), one read-back
            return observer.train.initialized and not special and step > 1 and not observer._audit_due

        def _capture(self, module, args_, kwargs, output):
            counter.active = module.training and self._quiet(self._state.global_step)
            try:
                return super()._capture(module, args_, kwargs, output)
            finally:
                counter.active = False

        def on_pre_optimizer_step(self, args_, state, control, **kwargs):
            self._state = state
            counter.active = self._quiet(state.global_step)
            try:
                return super().on_pre_optimizer_step(args_, state, control, **kwargs)
            finally:
                counter.active = False

        def on_step_end(self, args_, state, control, **kwargs):
            counter.active = self._quiet(state.global_step)
            try:
                return super().on_step_end(args_, state, control, **kwargs)
            finally:
                counter.active = False

        def on_train_begin(self, args_, state, control, **kwargs):
            self._state = state
            return super().on_train_begin(args_, state, control, **kwargs)

    cb = Counted(log_every_n_steps=10, diag_every_n_steps=10)
    trainer = Trainer(model=sequence_model(), args=args(tmp_path, num_train_epochs=3, logging_steps=10),
                      train_dataset=SequenceData(160, seed=0), eval_dataset=SequenceData(32, seed=1), callbacks=[cb])
    trainer.train()
    assert trainer.state.global_step == 30 and cb.history["optimizer/lr/group0"]  # the hooks did run
    assert counter.calls == []
