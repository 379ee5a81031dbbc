"""Short real training runs, healthy or with one injected fault, that show what fitwatch catches.

The zoo benchmark (``python -m benchmarks.zoo``) runs all of them; ``fitwatch demo`` trains a healthy and a
faulty one side by side. Each run is a real Lightning ``Trainer.fit`` on the CPU, deterministic given its
seed, with :class:`~fitwatch.lightning.FitWatch` attached:

.. code-block:: python

    from fitwatch.scenarios import SCENARIOS, run_scenario

    result = run_scenario("subtle-overfit-tickets", log_dir="runs/subtle-overfit-tickets")
    result.raised["FW-OVERFIT-SUBTLE"].evaluation, result.onset   # when it was caught, when it began
    result.findings                                               # what FitWatch said

Runs with a ``log_dir`` write TensorBoard files, ``findings.jsonl`` and a checkpoint after every epoch, and
continue from that checkpoint when called again (``resume=True``); ``progress_bar=True`` shows Lightning's
progress bar and ``callbacks=[...]`` adds your own (a progress display of your own, for example).

Scenario names are the keys of :data:`SCENARIOS`; each names its task, data faults, network, recipe,
injected fault, the finding codes expected and how its onset is defined.

Variants of those scenarios live in :data:`~fitwatch.scenarios.registry.VARIANT_SCENARIOS` (``python -m
benchmarks.zoo --variants``): ``<name>-loss-only`` trains a typical module that returns only its loss and logs
``val_loss``/``val_acc`` (FitWatch judges it on what it logs), and ``<healthy name>-accumulate``, ``-two-val``,
``-validate-first`` train healthy runs in the loop shapes of real scripts. ``run_scenario`` and
``get_scenario`` take their names too.

The language-model zoo (GPT-2 fine-tunes on the standard library's docstrings, ``python -m benchmarks.zoo
--lm``) lives in :mod:`fitwatch.scenarios.lm` (``LM_SCENARIOS``, ``run_lm_scenario``) and
:mod:`fitwatch.scenarios.lm_data`; it needs transformers, and peft for its LoRA scenario.

This package imports Lightning (and, for the ticket task, transformers); ``import fitwatch`` never imports it.
"""

from fitwatch.scenarios.registry import ONSETS, SCENARIOS, Scenario, get_scenario
from fitwatch.scenarios.runner import Raised, ScenarioResult, run_scenario

__all__ = ["ONSETS", "SCENARIOS", "Raised", "Scenario", "ScenarioResult", "get_scenario", "run_scenario"]
