"""Counting host syncs made by fitwatch's own code (the design rule: none per step between logging steps)."""

from __future__ import annotations

import sys

import torch


class SyncCounter:
    """Counts host-sync calls made from fitwatch's own code while flagged active."""

    NAMES = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch):
        import fitwatch

        self.root = fitwatch.__file__.rsplit("/", 1)[0]
        self.active = False
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def wrapper(tensor, *args, **kwargs):
            if self.active:
                caller = sys._getframe(1).f_code.co_filename
                if caller.startswith(self.root):
                    self.calls.append(f"{name} from {caller}:{sys._getframe(1).f_lineno}")
            return original(tensor, *args, **kwargs)

        return wrapper
