"""Fixtures of the command-line tests: every detector registered, event files written in the test."""

from __future__ import annotations

import importlib
import pkgutil

import pytest


@pytest.fixture(autouse=True, scope="session")
def registered_detectors():
    """Import every detector module so that ``build_detectors()`` builds them all, as a real install does once
    ``fitwatch.detect`` imports its modules itself."""
    import fitwatch.detect

    for module in pkgutil.iter_modules(fitwatch.detect.__path__):
        importlib.import_module(f"fitwatch.detect.{module.name}")
    from fitwatch.detect import DETECTORS

    assert {"overfitting", "gap", "plateau", "lr_decayed", "divergence", "calibration"} <= set(DETECTORS)
