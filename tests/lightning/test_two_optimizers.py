"""Two optimizers stepping in one batch (a GAN, manual optimization): each block's update ratio covers its own
optimizer's step, against the ratio the module measures itself."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from fitwatch.lightning import FitWatch


class GAN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        torch.manual_seed(0)
        self.gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))
        self.disc = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        self.disc_ratio: dict[int, float] = {}  # disc.0's update ratio per batch, by the step count after it

    def training_step(self, batch, batch_idx):
        (x,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(x), 4)
        fake = self.gen(z)
        d_loss = nn.functional.softplus(self.disc(fake.detach())).mean() + nn.functional.softplus(-self.disc(x)).mean()
        before = [p.detach().clone() for p in self.disc[0].parameters()]
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        after = list(self.disc[0].parameters())
        delta = torch.sqrt(sum(((a.detach() - b) ** 2).sum() for a, b in zip(after, before)))
        weight = torch.sqrt(sum((b**2).sum() for b in before))
        g_loss = nn.functional.softplus(-self.disc(self.gen(z))).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.disc_ratio[self.trainer.global_step] = float(delta / weight)
        return g_loss

    def configure_optimizers(self):
        return [torch.optim.Adam(self.gen.parameters(), 1e-3), torch.optim.Adam(self.disc.parameters(), 1e-3)]


def test_each_optimizers_parameters_are_measured_across_their_own_step(tmp_path):
    module = GAN()
    cb = FitWatch(diag_every_n_steps=4, log_every_n_steps=4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(256, 8)), batch_size=16)
    pl.Trainer(default_root_dir=tmp_path, max_epochs=1, callbacks=[cb], logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(module, data)
    got = cb.history["weights/update_ratio/disc.0"]
    assert got and all(v > 0 for _, v in got)  # was exactly 0.0: copied after the discriminator had stepped
    for step, value in got:
        assert value == pytest.approx(module.disc_ratio[step], rel=1e-5)
    assert all(v > 0 for _, v in cb.history["weights/update_ratio/gen.0"])
