"""The adapters' sink lists with the logger sinks added, as ``_setup_sinks`` builds them once the wiring
lines are in the adapters: the tests add them here so that they do not depend on that wiring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fitwatch.sinks.loggers import integration_sinks, logger_sinks


def _with_extra_sinks(callback: Any, extra: Callable[[], list]) -> None:
    """``callback._setup_sinks`` attaches ``extra()`` after the sinks it builds (never on a rank that writes
    nothing)."""
    setup = callback._setup_sinks

    def wired(*args: Any) -> None:
        observer = callback.observer
        attach = observer.set_sinks
        observer.set_sinks = lambda sinks: attach([*sinks, *extra()] if sinks else sinks)
        try:
            setup(*args)
        finally:
            del observer.set_sinks

    callback._setup_sinks = wired


def lightning_with_loggers(trainer: Any, callback: Any) -> None:
    """``FitWatch`` writing through every logger of ``trainer``; the first TensorBoardLogger stays with
    ``TensorBoardSink``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    def extra() -> list:
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        return logger_sinks(trainer.loggers, skip=[tb] if tb is not None else [], images=callback.config.images,
                            tag_prefix=callback.config.tag_prefix)

    _with_extra_sinks(callback, extra)


def hf_with_integrations(trainer: Any, callback: Any) -> None:
    """``FitWatchCallback`` writing through the Trainer's ``report_to`` integrations."""
    _with_extra_sinks(callback, lambda: integration_sinks(
        trainer.callback_handler.callbacks, images=callback.config.images, tag_prefix=callback.config.tag_prefix))
