"""Zero observer effect: with the same seed, a run watched by fitwatch ends with bit-identical weights and
optimizer state, and the same loss at every step, as the same run unwatched.

Each run trains with dropout on and a dataset whose ``__getitem__`` draws from Python's, NumPy's and torch's
random generators, so one extra random draw, an extra forward, a train/eval switch, a touched gradient or
optimizer state, or a changed dtype would change the weights. A deliberately intrusive callback (one random
draw at train start) shows that the comparison does notice.
"""

from __future__ import annotations

import random
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from fitwatch import FitWatchRuntimeWarning, FitWatchWarning
from fitwatch.config import DataChecksConfig
from fitwatch.data.split_checks import check_splits
from fitwatch.hf import FitWatchCallback
from fitwatch.lightning import FitWatch
from tests.hf.tiny import SEQ, VOCAB, args, sequence_model
from tests.lightning.digits import CLASS_NAMES, X, Y, trainer

#: Every diagnostic on: the full preset (images, per-class for all, data checks with mislabel tracking and
#: confident mistakes, fingerprint) with the step diagnostics and update ratios at every step.
FULL = {"config": "configs/fitwatch/full.yaml", "diag_every_n_steps": 1, "log_every_n_steps": 1}


class NoisyDigits(torch.utils.data.Dataset):
    """Digits with augmentation noise from all three generators, and the sample id as a third element."""

    def __init__(self, index: torch.Tensor) -> None:
        self.x, self.y = X[index], Y[index]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        noise = 0.05 * torch.randn(64) + 0.05 * float(np.random.standard_normal()) + 0.05 * random.random()
        return self.x[i] + noise, self.y[i], torch.tensor(i)


class RecordingMLP(pl.LightningModule):
    """Dropout MLP that keeps every training loss (a copy, in both the watched and the unwatched run)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))
        self.losses: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.losses.append(loss.detach().clone())
        return {"loss": loss, "logits": logits}

    def validation_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class OneRandomDraw(pl.Callback):
    """The smallest observer effect: one random number drawn when training starts."""

    def on_train_start(self, trainer, pl_module):
        torch.rand(1)


class OneRandomDrawHF(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        torch.rand(1)


def _seed(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fit_lightning(tmp_path, callbacks):
    _seed()
    model = RecordingMLP()
    perm = torch.randperm(len(Y), generator=torch.Generator().manual_seed(0))
    train = torch.utils.data.DataLoader(
        NoisyDigits(perm[:320]), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    val = torch.utils.data.DataLoader(NoisyDigits(perm[320:480]), batch_size=64)
    t = trainer(tmp_path, callbacks, max_epochs=2, log_every_n_steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.fit(model, train, val)
    assert not [w for w in caught if issubclass(w.category, FitWatchRuntimeWarning)]
    return model.state_dict(), torch.stack(model.losses), t.optimizers[0].state_dict()


class NoisySequences(torch.utils.data.Dataset):
    """Token sequences labelled by their first token, with random token noise from all three generators."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(4, VOCAB, (n, SEQ), generator=g)
        self.y = self.x[:, 0] % 3

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i].clone()
        x[1 + int(torch.randint(0, SEQ - 1, ()))] = 4 + int(np.random.randint(0, VOCAB - 4))
        x[1 + random.randrange(SEQ - 1)] = 4
        return {"input_ids": x, "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": self.y[i]}


def _fit_hf(tmp_path, callbacks):
    _seed()
    model = sequence_model(3)  # BERT's default dropout, 0.1
    losses: list[torch.Tensor] = []
    model.register_forward_hook(
        lambda m, a, out: losses.append(out.loss.detach().clone()) if m.training else None
    )
    t = Trainer(
        model=model,
        args=args(tmp_path, num_train_epochs=2, logging_steps=1),
        train_dataset=NoisySequences(96, 0),
        eval_dataset=NoisySequences(48, 1),
        callbacks=callbacks,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.train()
    assert not [w for w in caught if issubclass(w.category, FitWatchRuntimeWarning)]
    return model.state_dict(), torch.stack(losses), t.optimizer.state_dict()


def _assert_identical(watched, unwatched) -> None:
    (weights, losses, opt), (weights0, losses0, opt0) = watched, unwatched
    assert losses.shape == losses0.shape and torch.equal(losses, losses0)
    assert weights.keys() == weights0.keys()
    for name in weights0:
        assert weights[name].dtype == weights0[name].dtype and torch.equal(weights[name], weights0[name]), (
            name
        )
    assert opt["param_groups"] == opt0["param_groups"]
    for i, state in opt0["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(opt["state"][i][key]), torch.as_tensor(value)), (i, key)


def _differs(watched, unwatched) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(watched[0].values(), unwatched[0].values()))


@pytest.fixture(scope="module")
def lightning_unwatched(tmp_path_factory):
    return _fit_lightning(tmp_path_factory.mktemp("plain"), [])


@pytest.fixture(scope="module")
def hf_unwatched(tmp_path_factory):
    return _fit_hf(tmp_path_factory.mktemp("plain"), [])


@pytest.mark.parametrize("settings", [{}, FULL], ids=["default", "every-diagnostic"])
def test_lightning_run_is_bit_identical_with_fitwatch(tmp_path, lightning_unwatched, settings):
    cb = FitWatch(class_names=CLASS_NAMES, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FitWatchWarning
        )  # findings may fire; fitwatch's own failures may not (above)
        watched = _fit_lightning(tmp_path, [cb])
    assert cb.history["performance/accuracy/val"]  # it did watch
    if settings:
        assert cb.history["weights/update_ratio/net.0"] and cb.history["data/duplicate_fraction/val"]
    _assert_identical(watched, lightning_unwatched)


@pytest.mark.parametrize("settings", [{}, FULL], ids=["default", "every-diagnostic"])
def test_hf_run_is_bit_identical_with_fitwatch(tmp_path, hf_unwatched, settings):
    cb = FitWatchCallback(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWatchWarning)
        watched = _fit_hf(tmp_path, [cb])
    assert cb.history["performance/accuracy/val"]
    if settings:
        assert cb.history["performance/step_loss/train"][0][0] == 1  # logged at every step
    _assert_identical(watched, hf_unwatched)


def test_one_random_draw_is_noticed(tmp_path, lightning_unwatched, hf_unwatched):
    """The comparison can fail: a callback that draws a single random number changes both runs."""
    assert _differs(_fit_lightning(tmp_path / "pl", [OneRandomDraw()]), lightning_unwatched)
    assert _differs(_fit_hf(tmp_path / "hf", [OneRandomDrawHF()]), hf_unwatched)


def test_data_checks_leave_pythons_random_state_untouched():
    """Token-id samples switch the near-duplicate search on, whose index (datasketch's ``MinHashLSH``) draws
    from Python's ``random``: the checks must give that state back too (it once moved the HF runs above)."""
    state = random.getstate()
    check_splits(NoisySequences(96, 0), NoisySequences(48, 1), DataChecksConfig())
    assert random.getstate() == state
