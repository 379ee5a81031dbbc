"""A real Lightning run written through four loggers at once, shared by the logger and report tests."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from fitwatch.lightning import FitWatch

from ..cli.runs import LoggingMLP


def fit_with_loggers(tmp_path: Path, monkeypatch, *, wandb: bool = False):
    """The overfitting digits run of ``tests/cli/runs.py`` (raises FW-OVERFIT) with four loggers."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    from ..lightning.digits import X, Y

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(Y), generator=g)
    train_idx, val_idx = order[:200], order[1200:]
    labels = Y[train_idx].clone()
    noisy = torch.rand(len(labels), generator=g) < 0.3
    labels[noisy] = torch.randint(0, 10, (int(noisy.sum()),), generator=g)
    train = DataLoader(TensorDataset(X[train_idx], labels), batch_size=50, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(X[val_idx], Y[val_idx]), batch_size=256)
    loggers = [
        TensorBoardLogger(tmp_path, name="tb"),
        CSVLogger(tmp_path, name="csv"),
        MLFlowLogger(experiment_name="digits", tracking_uri=f"file:{tmp_path / 'mlruns'}"),
    ]
    if wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(tmp_path), offline=True, project="fitwatch-test"))
    callback = FitWatch(class_names=[str(i) for i in range(10)])
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=30, logger=loggers, callbacks=[callback],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         accelerator="cpu", deterministic=True, log_every_n_steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(LoggingMLP(lr=1e-2), train, val)
    return trainer, callback, loggers, caught


def run_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:  # type: ignore[no-untyped-def]
    """The scalars of the event files directly in ``run_dir`` (one TensorBoard run; sub-runs such as a
    per-split folder for overlays are other runs), read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {t: [(e.step, e.value) for e in accumulator.Scalars(t)] for t in accumulator.Tags()["scalars"]}



def as_in_tensorboard(name: str, points: list[tuple[int, float]]) -> tuple[str, str, list[tuple[int, float]]] | None:
    """Where fitwatch's TensorBoard sink puts the points a logger got under the history name ``name``:
    ``(sub-run, tag, points)``, or ``None`` when they stay off TensorBoard. The loggers keep history names and
    values; the event files use the dashboard layout when ``fitwatch.sinks.tags`` has one
    (``dashboard_scalar``), else the history names themselves."""
    try:
        from fitwatch.sinks.tags import dashboard_scalar
    except ImportError:
        return "", name, points
    placed = [(step, dashboard_scalar(name, value)) for step, value in points]
    kept = [(step, p) for step, p in placed if p is not None]
    if not kept:
        return None
    run, tag, _ = kept[0][1]
    return run, tag, [(step, p[2]) for step, p in kept]


def _same(a, b):
    assert [s for s, _ in a] == [s for s, _ in b]
    # TensorBoard keeps float32; MLflow and CSV keep the float64 fitwatch wrote.
    assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) for (_, x), (_, y) in zip(a, b))


def equal_to_tensorboard(logged, run_dir):
    """Every series a logger got equals what the TensorBoard sink wrote of it in ``run_dir`` (those the sink
    keeps off the dashboard aside); returns the names compared."""
    compared = []
    for name, points in logged.items():
        placed = as_in_tensorboard(name, points)
        if placed is None:
            continue
        sub, tag, expected = placed
        directory = Path(run_dir) / sub
        written = run_scalars(directory).get(tag, []) if directory.is_dir() else []
        if not written:
            continue  # a series the TensorBoard sink leaves off its dashboard
        assert [s for s, _ in expected] == [s for s, _ in written], (name, sub, tag)
        _same(expected, written)
        compared.append(name)
    return compared
