"""Model and optimizer set-up facts, as plain data for the regularization detectors.

:func:`audit_model` reads module modes, dropout rates, param-group membership and weight decay,
and returns an :class:`~fitwatch.detect.records.AuditRecord`. It decides nothing: whether a fact is a
problem is the detectors' call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fitwatch.detect.records import AuditRecord
from fitwatch.metrics.optim import group_names, trainable_parameters, unchanged_parameters

__all__ = ["audit_model", "is_norm_module", "looks_pretrained"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
# Modules whose forward depends on train/eval mode (LayerNorm does not; BatchNorm with running stats does).
_MODE_DEPENDENT_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def is_norm_module(module: nn.Module) -> bool:
    """Normalization layers by type, or by class name for custom ones (``LlamaRMSNorm``, ``T5LayerNorm``)."""
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, *_MODE_DEPENDENT_NORMS)
    if hasattr(nn, "RMSNorm"):
        norm_types = (*norm_types, nn.RMSNorm)
    return isinstance(module, norm_types) or "norm" in type(module).__name__.lower()


def audit_model(
    model: nn.Module,
    optimizers: Sequence[torch.optim.Optimizer],
    *,
    step: int,
    epoch: int | None,
    fingerprints: Mapping[str, Tensor] | None = None,
    pretrained: bool | None = None,
    max_steps: int | None = None,
) -> AuditRecord:
    """Facts about ``model`` and ``optimizers`` as they are now (call while the training loop runs).

    Args:
        model: The model being trained.
        optimizers: Its optimizers.
        step: Global step of the audit.
        epoch: Epoch of the audit.
        fingerprints: Parameter fingerprints from fit start (:func:`~fitwatch.metrics.optim.parameter_fingerprints`);
            when given, parameters that have not changed since are listed.
        pretrained: Whether the model started from pretrained weights, when the adapter knows.
        max_steps: Planned number of optimizer steps, when known.
    """
    modules = dict(model.named_modules())
    eval_mode, expected = [], []
    for name, module in modules.items():
        if module.training or not _mode_matters(module):
            continue
        root = _eval_subtree_root(name, modules)
        params = list(modules[root].parameters())
        (expected if params and not any(p.requires_grad for p in params) else eval_mode).append(name or type(module).__name__)
    dropout = {name: float(m.p) for name, m in modules.items() if isinstance(m, _DROPOUT)}

    names = group_names(optimizers)
    in_optimizer: dict[int, float] = {}
    decays: dict[str, float] = {}
    initial_lrs, base_lrs = [], []
    gi = 0
    for opt in optimizers:
        for group in opt.param_groups:
            wd = float(group.get("weight_decay", 0.0) or 0.0)
            decays[names[gi]] = wd
            gi += 1
            lr = float(group.get("lr", 0.0))
            initial_lrs.append(lr)
            base_lrs.append(float(group.get("initial_lr", lr)))
            for p in group["params"]:
                in_optimizer[id(p)] = wd
    norm_params = {
        id(p) for m in modules.values() if is_norm_module(m) for p in m.parameters(recurse=False)
    }
    trainable = trainable_parameters(model)
    decay_on_norm = [
        n for n, p in trainable if in_optimizer.get(id(p), 0.0) > 0 and (id(p) in norm_params or n.endswith("bias"))
    ]
    missing = [n for n, p in trainable if id(p) not in in_optimizer]
    unchanged = unchanged_parameters(trainable, fingerprints) if fingerprints is not None and step > 0 else []
    return AuditRecord(
        step=step,
        epoch=epoch,
        model_training=model.training,
        eval_mode_modules=tuple(eval_mode),
        frozen_eval_modules_expected=tuple(expected),
        dropout_probabilities=dropout,
        optimizer_names=tuple(type(o).__name__ for o in optimizers),
        weight_decays=decays,
        decay_on_norm_or_bias=tuple(decay_on_norm),
        missing_from_optimizer=tuple(missing),
        unchanged_parameters=tuple(unchanged),
        trainable_parameters=len(trainable),
        pretrained=pretrained,
        initial_lrs=tuple(initial_lrs),
        base_lrs=tuple(base_lrs),
        max_steps=max_steps,
    )


def looks_pretrained(model: nn.Module) -> bool | None:
    """``True`` when ``model`` holds a Hugging Face model loaded from pretrained weights (its
    ``name_or_path`` is set by ``from_pretrained``); ``None`` when that cannot be told.

    Read through attributes only, so no transformers import is needed.
    """
    for module in model.modules():
        name = getattr(module, "name_or_path", None)
        if isinstance(name, str) and hasattr(module, "config"):
            return bool(name)
    return None


def _mode_matters(module: nn.Module) -> bool:
    if isinstance(module, _DROPOUT):
        return module.p > 0
    if isinstance(module, _MODE_DEPENDENT_NORMS):
        return bool(getattr(module, "track_running_stats", False))
    return False


def _eval_subtree_root(name: str, modules: Mapping[str, nn.Module]) -> str:
    """The outermost ancestor of ``name`` that is in eval mode (where someone called ``.eval()``)."""
    parts = name.split(".") if name else []
    root = name
    for i in range(len(parts) - 1, -1, -1):
        ancestor = ".".join(parts[:i])
        if ancestor in modules and not modules[ancestor].training:
            root = ancestor
        else:
            break
    return root
