"""Lightning modules for a causal LM (HF model inside, or bare logits) and a regressor, with no task argument."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from sklearn.metrics import mean_absolute_error, r2_score

from fitwatch.lightning import FitWatch
from tests.hf.lm import CompletionData, gpt2, next_token_reference

from .digits import trainer


class CausalLM(pl.LightningModule):
    """Returns the logits of a HF causal LM with its own (shifted) loss, as a LightningModule usually does."""

    def __init__(self, vocab: int = 300) -> None:
        super().__init__()
        self.net = gpt2(vocab)

    def training_step(self, batch, batch_idx):
        out = self.net(**batch)
        return {"loss": out.loss, "logits": out.logits}

    def validation_step(self, batch, batch_idx):
        out = self.net(**batch)
        return {"loss": out.loss, "logits": out.logits}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class BareCausalLM(CausalLM):
    """The same model seen without its HF class: the task comes from the logits' width and the loss."""

    def __init__(self) -> None:
        super().__init__(vocab=1500)
        self.net.config.architectures = None

    def training_step(self, batch, batch_idx):
        logits = self.net(input_ids=batch["input_ids"]).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1))
        return {"loss": loss, "logits": logits}

    validation_step = training_step


def loaders(vocab: int):
    dl = torch.utils.data.DataLoader
    return dl(CompletionData(48, 0, vocab), batch_size=8, shuffle=True), dl(CompletionData(24, 1, vocab), batch_size=8)


@pytest.mark.parametrize("module_cls", [CausalLM, BareCausalLM])
def test_causal_lm_module_gets_next_token_numbers(tmp_path, module_cls):
    module = module_cls()
    train, val = loaders(module.net.config.vocab_size)
    cb = FitWatch()
    with _no_fitwatch_warning():
        trainer(tmp_path, [cb], max_epochs=2, logger=False).fit(module, train, val)
    assert cb.observer.task == "causal_lm"
    ref = next_token_reference(module.net, val.dataset)
    assert cb.history["performance/accuracy/val"][-1][1] == pytest.approx(ref["accuracy"], abs=1e-6)
    assert cb.history["calibration/nll/val"][-1][1] == pytest.approx(ref["nll"], rel=1e-4)
    assert not any(k.startswith("per_class/") for k in cb.history)


class _no_fitwatch_warning:
    """Fails if fitwatch warns about the set-up (an inferred task must need no warning)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self._records = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        from fitwatch.warnings import FitWatchRuntimeWarning

        runtime = [str(w.message) for w in self._records if issubclass(w.category, FitWatchRuntimeWarning)]
        assert not runtime, runtime
        return False


class Regressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        pred = self.net(x).squeeze(-1)
        return {"loss": torch.nn.functional.mse_loss(pred, y), "logits": pred}

    validation_step = training_step

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_float_targets_are_regression_with_sklearn_numbers(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 5, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.3 * torch.randn(160, generator=g)
    ds = torch.utils.data.TensorDataset
    train = torch.utils.data.DataLoader(ds(x[:120], y[:120]), batch_size=16, shuffle=True)
    val = torch.utils.data.DataLoader(ds(x[120:], y[120:]), batch_size=16)
    module = Regressor()
    cb = FitWatch()
    trainer(tmp_path, [cb], max_epochs=3, logger=False).fit(module, train, val)
    assert cb.observer.task == "regression"
    with torch.no_grad():
        pred = module.net(x[120:]).squeeze(-1).double().numpy()
    truth = y[120:].double().numpy()
    assert cb.history["performance/r2/val"][-1][1] == pytest.approx(r2_score(truth, pred), rel=1e-5)
    assert cb.history["performance/mae/val"][-1][1] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-5)
    assert not any(k.startswith(("per_class/", "calibration/")) for k in cb.history)
    assert {f.code for f in cb.findings}.isdisjoint({"FW-FAILED-RUN", "FW-CLASS-COLLAPSE", "FW-LABEL-SHIFT"})


def test_accumulation_hands_the_undivided_loss(tmp_path):
    """Lightning divides the loss it passes to callbacks by `accumulate_grad_batches`; fitwatch undoes it."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(128, 5, generator=g)
    y = x.sum(dim=1)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    module = Regressor()
    seen = []

    class Recorder(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            with torch.no_grad():
                seen.append(float(torch.nn.functional.mse_loss(pl_module.net(batch[0]).squeeze(-1), batch[1])))

    cb = FitWatch(log_every_n_steps=1)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(-x[:16], -y[:16]), batch_size=8)
    trainer(tmp_path, [Recorder(), cb], max_epochs=1, logger=False, accumulate_grad_batches=4).fit(module, train, val)
    steps = [v for _, v in cb.history["performance/step_loss/train"]]
    # Each optimizer step averages its 4 micro-batch losses (the weights change only between steps).
    expected = [sum(seen[i : i + 4]) / 4 for i in range(0, len(seen), 4)]
    assert steps == pytest.approx(expected, rel=1e-5)
