"""Batches held by reference in a real Lightning loop (issue 15): a loop that rewrites one batch buffer in place at
every step (an iterable dataset filling the same tensors) never makes fitwatch read a batch with another step's
values. The held batches whose buffer moved are dropped at the fold (counted), the split copies from then on, and
the numbers of the next evaluation window equal the module's own."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from fitwatch.lightning import FitWatch

BATCH, FEATURES, CLASSES, STEPS = 16, 8, 3, 6


def _data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, BATCH, FEATURES, generator=g)
    return x, (x[..., 0] > 0).long() + (x[..., 1] > 0.5).long()


class OneBuffer(IterableDataset):
    """Every batch written into the same two tensors (as a pinned staging buffer or a CUDA-graph input would be)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.buffer_x, self.buffer_y = torch.zeros_like(x[0]), torch.zeros_like(y[0])

    def __iter__(self):
        for x, y in zip(self.x, self.y):
            self.buffer_x.copy_(x)
            self.buffer_y.copy_(y)
            yield self.buffer_x, self.buffer_y


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(FEATURES, CLASSES)
        # epoch -> (correct predictions, the label buffer's version) of each training batch, as the step saw them
        self.seen: dict[int, list[tuple[int, int]]] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.seen.setdefault(self.current_epoch, []).append((int((logits.argmax(1) == y).sum()), y._version))
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_rewritten_batch_buffer_is_never_read_with_another_steps_values(tmp_path):
    torch.manual_seed(0)
    train, val = OneBuffer(*_data(0, STEPS)), DataLoader(list(zip(*_data(1, 2))), batch_size=None)
    module, callback = Module(), FitWatch(log_dir=tmp_path / "fw", config={"data_checks": False})
    trainer = pl.Trainer(max_epochs=2, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         log_every_n_steps=1)
    trainer.fit(module, DataLoader(train, batch_size=None), val)
    samples = [v for _, v in callback.history["health/samples/train"]]
    accuracy = [v for _, v in callback.history["performance/accuracy/train"]]
    # First window: the fold (at the evaluation) reads only the batches whose buffer still holds what their step
    # saw (Lightning fetches a batch ahead, so the last two steps saw the same data); never a mix of two steps.
    first = module.seen[0]
    intact = [correct for correct, version in first if version == first[-1][1]]
    assert 0 < len(intact) < STEPS and callback.observer.train.changed == STEPS - len(intact)
    assert samples[0] == len(intact) * BATCH
    assert accuracy[0] == pytest.approx(sum(intact) / samples[0])
    # From then on the batches are copied: the second window is every batch, equal to the module's own count.
    assert samples[1] == STEPS * BATCH
    assert accuracy[1] == pytest.approx(sum(correct for correct, _ in module.seen[1]) / (STEPS * BATCH))
