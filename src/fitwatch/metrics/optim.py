"""Optimizer and weight statistics: hyperparameters per param group, norms, update-to-weight ratios.

Norms are returned as device tensors; callers read them back only on logging steps.

>>> parameter_block("bert.encoder.layer.3.attention.self.query.weight")
'bert.encoder.layer.3'
>>> parameter_block("classifier.weight")
'classifier'
>>> parameter_block("bert.embeddings.word_embeddings.weight")
'bert.embeddings'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "UpdateRatioTracker",
    "global_norm",
    "group_names",
    "hyperparameters",
    "parameter_block",
    "parameter_fingerprints",
    "trainable_parameters",
    "unchanged_parameters",
]


#: Path components that wrappers insert and that say nothing about where a parameter sits: PEFT's
#: ``base_model.model`` and ``modules_to_save.<adapter>``, ``torch.compile``'s ``_orig_mod``, DDP's ``module``,
#: Fabric's ``_forward_module``.
_WRAPPER_PREFIXES = ("base_model.model.", "_orig_mod.", "module.", "_forward_module.")


def parameter_block(name: str, max_depth: int = 2) -> str:
    """The block a parameter belongs to, for per-layer statistics.

    Up to and including the first numeric path component (a layer of a stack, ``encoder.layer.3``);
    without one, the first ``max_depth`` components of the owning module's path. Wrapper components are
    dropped first, so a LoRA adapter is named by the module it adapts.

    >>> parameter_block("base_model.model.transformer.h.1.attn.c_attn.lora_A.default.weight")
    'transformer.h.1'
    >>> parameter_block("base_model.model.classifier.modules_to_save.default.weight")
    'classifier'
    """
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    segments = name.split(".")
    if "modules_to_save" in segments:  # <module>.modules_to_save.<adapter>.<param>: the module's trainable copy
        i = segments.index("modules_to_save")
        segments = segments[:i] + segments[i + 2 :]
    name = ".".join(segments)
    parts = name.split(".")[:-1] or name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:max_depth])


def group_names(optimizers: Sequence[torch.optim.Optimizer]) -> list[str]:
    """A unique name per param group: its ``"name"`` key when set, else ``group<i>``; prefixed by the
    optimizer's index when there are several optimizers."""
    names = []
    for j, opt in enumerate(optimizers):
        for i, group in enumerate(opt.param_groups):
            base = str(group.get("name") or f"group{i}")
            names.append(base if len(optimizers) == 1 else f"opt{j}.{base}")
    return names


def hyperparameters(optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, dict[str, float]]:
    """``{"lr" | "momentum" | "weight_decay": {group_name: value}}`` as the next ``step()`` applies them.

    Momentum is ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family); groups without one are left out.
    """
    out: dict[str, dict[str, float]] = {"lr": {}, "momentum": {}, "weight_decay": {}}
    names = iter(group_names(optimizers))
    for opt in optimizers:
        for group in opt.param_groups:
            name = next(names)
            out["lr"][name] = _as_float(group.get("lr"))
            if "betas" in group:
                out["momentum"][name] = _as_float(group["betas"][0])
            elif "momentum" in group:
                out["momentum"][name] = _as_float(group["momentum"])
            if "weight_decay" in group:
                out["weight_decay"][name] = _as_float(group["weight_decay"])
    return out


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def global_norm(tensors: Iterable[Tensor]) -> Tensor:
    """2-norm of all ``tensors`` together, as a 0-dim float32 tensor on their device (0 when empty).

    Sparse gradients are densified; tensors on several devices are reduced on the first one's device.
    """
    ts = [t.to_dense() if t.is_sparse else t for t in tensors]
    if not ts:
        return torch.zeros(())
    device = ts[0].device
    norms = torch._foreach_norm([t.detach() for t in ts]) if all(t.device == device for t in ts) else [
        torch.linalg.vector_norm(t.detach()) for t in ts
    ]
    return torch.linalg.vector_norm(torch.stack([n.to(device=device, dtype=torch.float32) for n in norms]))


class UpdateRatioTracker:
    """``||theta_after - theta_before|| / ||theta_before||`` per parameter block across one optimizer step.

    :meth:`snapshot` copies the trainable parameters (one temporary copy, in their own dtype and
    device) just before ``optimizer.step()``; :meth:`ratios` compares after it and frees the copy. The
    rule of thumb (cs231n) is about 1e-3: far above, the learning rate is too high; far below, too low.
    """

    def __init__(self) -> None:
        self._before: dict[str, list[tuple[nn.Parameter, Tensor]]] | None = None

    @property
    def pending(self) -> bool:
        return self._before is not None

    def snapshot(self, named_parameters: Iterable[tuple[str, nn.Parameter]]) -> None:
        """Copy the parameters before a step; a parameter already copied since the last :meth:`ratios` keeps its
        first copy (with several optimizers in one batch, each copies its own just before its own step)."""
        blocks: dict[str, list[tuple[nn.Parameter, Tensor]]] = self._before if self._before is not None else {}
        seen = {id(p) for pairs in blocks.values() for p, _ in pairs}
        with torch.no_grad():
            for name, p in named_parameters:
                if id(p) not in seen:
                    blocks.setdefault(parameter_block(name), []).append((p, p.detach().clone()))
        self._before = blocks

    def ratios(self) -> dict[str, Tensor]:
        """Per-block ratios as 0-dim device tensors (no host sync); empty without a snapshot."""
        if self._before is None:
            return {}
        out = {}
        with torch.no_grad():
            for block, pairs in self._before.items():
                delta = global_norm([p.detach() - old for p, old in pairs])
                weight = global_norm([old for _, old in pairs])
                out[block] = delta / weight.clamp_min(1e-12)
        self._before = None
        return out


#: Elements of a parameter a fingerprint reads at most (an even stride through it). An optimizer step moves
#: essentially every element of a parameter it updates (a changed embedding row moves all of its columns, and
#: a stride below the row width reads every row), so a sample tells a frozen parameter from a trained one while
#: the audit after each evaluation no longer reads the whole model in float64 (0.9 s at 110M parameters).
FINGERPRINT_SAMPLE = 1 << 16


def parameter_fingerprints(named_parameters: Iterable[tuple[str, nn.Parameter]]) -> dict[str, Tensor]:
    """A cheap per-parameter fingerprint (sum and sum of squares, float64, of at most :data:`FINGERPRINT_SAMPLE`
    evenly strided elements) to tell later whether it changed."""
    out = {}
    with torch.no_grad():
        for n, p in named_parameters:
            flat = p.detach().reshape(-1)
            if flat.numel() > FINGERPRINT_SAMPLE:
                flat = flat[:: flat.numel() // FINGERPRINT_SAMPLE]
            flat = flat.double()
            out[n] = torch.stack([flat.sum(), flat.square().sum()])
    return out


def unchanged_parameters(
    named_parameters: Iterable[tuple[str, nn.Parameter]], fingerprints: Mapping[str, Tensor]
) -> list[str]:
    """Names of parameters whose fingerprint equals the one taken earlier (audit time only: one read-back per
    device, not one per parameter)."""
    now = parameter_fingerprints(named_parameters)
    by_device: dict[torch.device, list[str]] = {}
    for n, fp in now.items():
        if n in fingerprints:
            by_device.setdefault(fp.device, []).append(n)
    unchanged: set[str] = set()
    for device, names in by_device.items():
        same = torch.stack([(now[n] == fingerprints[n].to(device)).all() for n in names]).tolist()
        unchanged.update(n for n, s in zip(names, same) if s)
    return [n for n in now if n in unchanged]


def _as_float(value: Any) -> float:
    if isinstance(value, Tensor):
        return float(value.detach().float().cpu())
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
