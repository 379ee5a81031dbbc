"""The one place that names TensorBoard tags.

Scheme: ``[prefix]<section>/<metric>[/<subject>][/<split>]``

- ``section`` groups the TensorBoard dashboard: one of :data:`SECTIONS`.
- ``metric``: ``ece``, ``recall``, ``lr``, ...
- ``subject``: a class name (per-class), a param group (optimizer) or a parameter block (weights).
- ``split``: ``train``, ``val``, or ``val_clean`` (validation without the samples duplicated in training), last, so the two splits of one metric sit side by side and a
  custom-scalars chart can overlay them with one regex.

>>> tag("calibration", "ece", split="val")
'calibration/ece/val'
>>> tag("per_class", "recall", subject="cat", split="train")
'per_class/recall/cat/train'
>>> tag("optimizer", "lr", subject="head")
'optimizer/lr/head'
>>> parse_tag("per_class/recall/cat/train")
TagParts(section='per_class', metric='recall', subject='cat', split='train')
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SECTIONS", "SPLITS", "TagParts", "is_split", "parse_tag", "sanitize", "tag"]

#: Dashboard sections, in the order the custom-scalars layout shows them.
SECTIONS = (
    "performance",  # loss, accuracy, macro/weighted F1
    "per_class",  # precision, recall, f1, support per class
    "calibration",  # ece, mce, adaptive_ece, classwise_ece, brier, nll
    "gap",  # validation minus training, and its Theil-Sen slope
    "optimizer",  # lr, momentum, weight_decay per param group; grad_norm
    "weights",  # weight norm, update-to-weight ratio per block
    "health",  # non-finite counts, skipped batches
    "findings",  # count of findings, one track per code
    "data",  # data checks (duplicates, label shift, clean-subset metrics)
)
SPLITS = ("train", "val", "val_clean", "val_start", "eval", "test")
#: Other evaluation sets of a fit are ``val_<name>`` (a second Lightning dataloader, an HF ``eval_dataset`` dict).


def is_split(name: str) -> bool:
    """Whether ``name`` is a split: one of :data:`SPLITS`, or ``val_<name>`` for another evaluation set.

    >>> is_split("val_ood"), is_split("cat")
    (True, False)
    """
    return name in SPLITS or (name.startswith("val_") and sanitize(name) == name)

_UNSAFE = re.compile(r"[^\w.\-]+")


def sanitize(name: str) -> str:
    """A class, group or block name made safe for a tag path (no slashes, no spaces).

    >>> sanitize("New York / NY")
    'New_York_NY'
    """
    return _UNSAFE.sub("_", str(name)).strip("_") or "_"


def tag(section: str, metric: str, *, subject: str | None = None, split: str | None = None, prefix: str = "") -> str:
    """Build a tag. Raises ``ValueError`` on an unknown section or split (a bug, not user input)."""
    if section not in SECTIONS:
        raise ValueError(f"Expected `section` to be one of {SECTIONS}, but got {section!r}.")
    if split is not None and not is_split(split):
        raise ValueError(f"Expected `split` to be one of {SPLITS}, but got {split!r}.")
    parts = [section, metric]
    if subject is not None:
        parts.append(sanitize(subject))
    if split is not None:
        parts.append(split)
    return prefix + "/".join(parts)


class TagParts(NamedTuple):
    section: str
    metric: str
    subject: str | None
    split: str | None


def parse_tag(name: str, prefix: str = "") -> TagParts | None:
    """The parts of a tag built by :func:`tag`, or ``None`` for a tag fitwatch did not build."""
    if prefix:
        if not name.startswith(prefix):
            return None
        name = name[len(prefix) :]
    parts = name.split("/")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        return None
    split = parts.pop() if len(parts) > 2 and is_split(parts[-1]) else None
    if len(parts) == 2 and is_split(parts[1]) and split is None:
        return None
    subject = "/".join(parts[2:]) if len(parts) > 2 else None
    return TagParts(parts[0], parts[1], subject, split)
