"""Metrics the training code logs itself, as series the detectors read.

Most LightningModules return only their loss and log ``val_loss`` / ``val_acc`` with ``self.log``. When no
logits reach fitwatch, those numbers are what it has: :func:`map_logged` maps the usual names (and any the user
names in ``FitWatchConfig.metrics``) onto fitwatch's series, by split. A name is matched after dropping
Lightning's ``_epoch`` suffix (the epoch aggregate); ``_step`` values (one batch) are never used for an
evaluation.

>>> map_logged({"val_loss": 0.62, "val_acc_epoch": 0.81, "train_loss_step": 0.4, "lr-AdamW": 1e-3})
{'val': {'loss': 0.62, 'accuracy': 0.81}}
>>> map_logged({"valid/loss": 1.5, "my_metric": 2.0}, custom={"my_metric": "loss/train"})
{'val': {'loss': 1.5}, 'train': {'loss': 2.0}}

With several validation dataloaders Lightning names each metric ``<name>/dataloader_idx_<i>``: the first is the
primary ``val``, the others ``val_<i>``:

>>> map_logged({"val_loss/dataloader_idx_0": 0.5, "val_loss/dataloader_idx_1": 0.9})
{'val': {'loss': 0.5}, 'val_1': {'loss': 0.9}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["KNOWN_NAMES", "map_logged"]

_VAL = ("val", "valid", "validation", "eval")
_METRICS = {
    "loss": "loss", "nll": "nll", "acc": "accuracy", "accuracy": "accuracy", "f1": "macro_f1",
    "macro_f1": "macro_f1", "f1_macro": "macro_f1", "ece": "ece", "perplexity": "perplexity", "ppl": "perplexity",
    "mse": "mse", "mae": "mae", "r2": "r2",
}
#: The names understood without configuration: ``<split><sep><metric>`` with ``split`` one of ``val``, ``valid``,
#: ``validation``, ``eval`` or ``train``, ``sep`` one of ``_``, ``/``, ``-``, ``.``, and ``metric`` one of the keys of
#: the table below; plus a bare ``loss`` (the training loss Lightning logs from the returned loss).
KNOWN_NAMES = {
    **{f"{split}{sep}{name}": (metric, "val") for split in _VAL for sep in "_/-." for name, metric in _METRICS.items()},
    **{f"train{sep}{name}": (metric, "train") for sep in "_/-." for name, metric in _METRICS.items()},
    "loss": ("loss", "train"),
}
_SUFFIX = re.compile(r"(_epoch)$")
_DATALOADER = re.compile(r"^(?P<name>.+)/dataloader_idx_(?P<index>\d+)$")


def map_logged(metrics: Mapping[str, Any], custom: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """``{split: {metric: value}}`` from logged metrics (floats or one-element tensors); unknown names ignored.

    Names in ``custom`` (``{"logged name": "<metric>/<split>"}``) win over the known ones.
    """
    out: dict[str, dict[str, float]] = {}
    for name, raw in metrics.items():
        if name.endswith("_step"):
            continue
        index = 0
        match = _DATALOADER.match(name)
        if match:
            name, index = match["name"], int(match["index"])
        base = _SUFFIX.sub("", name)
        spec = next((custom[key] for key in (name, base) if custom and key in custom), None)
        target: tuple[str, str] | None
        if spec is not None:
            metric, _, split = spec.partition("/")
            target = (metric, split)
        else:
            target = KNOWN_NAMES.get(base.lower())
        if target is None:
            continue
        value = _number(raw)
        if value is None:
            continue
        metric, split = target
        if index and split == "val":
            split = f"val_{index}"
        out.setdefault(split, {})
        if metric not in out[split] or not name.endswith("_epoch"):
            out[split][metric] = value
    return out


def _number(value: Any) -> float | None:
    try:
        if hasattr(value, "numel") and value.numel() != 1:
            return None
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number  # a NaN or inf loss is a finding (divergence), not a value to drop
