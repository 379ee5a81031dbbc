"""The language-model zoo: supervised fine-tunes of a small GPT-2 on the standard library's docstrings,
healthy and broken, run with FitWatch attached.

Each :class:`LMScenario` trains a GPT-2-shaped model built from a ``transformers.GPT2Config`` (2 layers,
width 64, :data:`~fitwatch.scenarios.lm_data.VOCAB_SIZE` words, 48 positions; nothing is downloaded) on
the prompt/completion items of :mod:`fitwatch.scenarios.lm_data`, with a :class:`LMModule` whose steps
return ``{"loss", "logits"}``, logits ``[batch, tokens, vocabulary]`` and the batch a dict with
``input_ids``, ``attention_mask`` and ``labels`` (Hugging Face convention: not shifted, -100 where not
trained). :data:`LM_SCENARIOS` holds them by name; :func:`run_lm_scenario` trains one and returns a
:class:`~fitwatch.scenarios.runner.ScenarioResult`, as :func:`~fitwatch.scenarios.run_scenario` does for
the classifiers.

The healthy runs are what a careful engineer trains: AdamW at 1e-3 with weight decay kept off LayerNorm
and biases, dropout 0.1, a 5% warmup and a linear decay to zero at the planned end, as many epochs as reach
the validation optimum; and LoRA adapters (rank 8) on a base model pretrained on other documents of the
corpus. The faults are written the way the mistake is made in real code: a small set trained for many
epochs with every regularizer off; a learning rate thirty times too high; a schedule
sized for a quarter of the steps; validation documents copied into the training set; the optimizer built
before ``peft.get_peft_model`` (it holds the frozen base weights, not the adapters); a LoRA alpha left at 0;
a collator that trains the prompt as well as the completion.

Each run also records, outside FitWatch, the token-mean training and validation losses it computed itself
(``raw_train_loss``/``raw_val_loss`` in ``series``): what the faults do to the loss curves is checked on
those, and FitWatch's own loss series are compared with them.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.utils.data import DataLoader

from fitwatch import _validation as v
from fitwatch.findings import CATALOGUE
from fitwatch.scenarios.lm_data import MAX_LENGTH, PAD, LMData, load_lm_data
from fitwatch.scenarios.models import Recipe, schedule_factor
from fitwatch.scenarios.registry import ONSETS
from fitwatch.scenarios.runner import (
    FITWATCH_SETTINGS,
    LOG_EVERY_N_STEPS,
    ScenarioResult,
    _aligned,
    _lr_at,
    _raised,
    _run_settings,
    evaluation_at,
)
from fitwatch.sinks.tags import tag

__all__ = [
    "LM_SCENARIOS",
    "LM_SERIES",
    "LMModelSpec",
    "LMModule",
    "LMScenario",
    "LossRecorder",
    "build_lm",
    "get_lm_scenario",
    "run_lm_scenario",
]

#: Per-evaluation series read from FitWatch's history, by name, with their tags.
LM_SERIES = {
    "val_loss": tag("performance", "loss", split="val"),
    "train_loss": tag("performance", "loss", split="train"),
    "val_perplexity": tag("performance", "perplexity", split="val"),
    "val_accuracy": tag("performance", "accuracy", split="val"),
    "val_top5_accuracy": tag("performance", "top5_accuracy", split="val"),
    "val_nll": tag("calibration", "nll", split="val"),
    "val_ece": tag("calibration", "ece", split="val"),
    "val_clean_accuracy": tag("performance", "accuracy", split="val_clean"),
    "val_clean_loss": tag("performance", "loss", split="val_clean"),
}


@dataclass(frozen=True, kw_only=True)
class LMModelSpec:
    """The GPT-2 shape and the LoRA set-up.

    Args:
        width: ``n_embd``.
        layers: ``n_layer``.
        heads: ``n_head``.
        dropout: GPT-2's residual, embedding and attention dropout.
        lora_rank: With a rank, the base model is frozen and LoRA adapters (``peft``) of that rank are put on
            the attention and MLP projections (``c_attn``, ``c_proj``, ``c_fc``); 0 trains every weight.
        lora_alpha: LoRA's alpha.
        optimizer_before_lora: Build the optimizer over the model's parameters *before* wrapping it with
            ``get_peft_model`` (the fault): it holds the frozen base weights and none of the adapters.
        base_epochs: Pretrain the base model first, for this many epochs of plain language modelling on
            :data:`BASE_DOCUMENTS` documents of the corpus that are in neither split (every token trained);
            LoRA adapts a base model that knows the language, as it does in practice. 0: random weights.
    """

    width: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.1
    lora_rank: int = 0
    lora_alpha: float = 16.0
    optimizer_before_lora: bool = False
    base_epochs: int = 0


@dataclass(frozen=True, kw_only=True)
class LMScenario:
    """One named run of the LM zoo (fields as :class:`~fitwatch.scenarios.registry.Scenario`'s).

    Args:
        name: Registry name.
        description: The fault in one sentence (for a healthy run, what it trains).
        expected: Groups of finding codes the run must raise (one code of each group).
        accepted: Further codes that are right about this run.
        onset: Key of :data:`~fitwatch.scenarios.registry.ONSETS`.
        seeds: Seeds the zoo runs.
        epochs: Epochs of a full run; ``quick_epochs`` for ``--quick`` and the smoke tests.
        batch_size: Training batch size.
        train_size: Training documents.
        val_size: Validation documents.
        model: The GPT-2 shape and LoRA set-up.
        recipe: Optimizer and schedule.
        completion_only: Labels on the completion only; ``False`` trains the prompt (the fault).
        duplicate_fraction: Share of validation documents copied into the training set.
        data_checks: FitWatch ``data_checks`` settings on top of the defaults.
    """

    name: str
    description: str
    expected: tuple[tuple[str, ...], ...] = ()
    accepted: tuple[str, ...] = ()
    onset: str = "none"
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int
    quick_epochs: int = 1
    batch_size: int = 16
    train_size: int = 1200
    val_size: int = 300
    model: LMModelSpec = field(default_factory=LMModelSpec)
    recipe: Recipe = field(default_factory=lambda: _CAREFUL)
    completion_only: bool = True
    duplicate_fraction: float = 0.0
    data_checks: Mapping[str, Any] = field(default_factory=dict)

    task = "causal_lm"

    def __post_init__(self) -> None:
        v.check_choice("onset", self.onset, tuple(ONSETS))
        v.check_positive_int("epochs", self.epochs)
        v.check_positive_int("quick_epochs", self.quick_epochs)
        v.check_fraction("duplicate_fraction", self.duplicate_fraction)
        for code in [c for group in self.expected for c in group] + list(self.accepted):
            if code not in CATALOGUE:
                raise ValueError(
                    f"Expected finding codes from fitwatch.findings.CATALOGUE, but got {code!r}."
                )
        if bool(self.expected) != (self.onset != "none"):
            raise ValueError(
                "Expected a fault scenario to name an onset and a healthy one not to, "
                f"but got {self.onset!r}."
            )

    @property
    def healthy(self) -> bool:
        """Whether the run has no fault (no expected codes)."""
        return not self.expected

    @property
    def expected_text(self) -> str:
        """The expected codes as one line: groups joined by ``+``, alternatives by ``|``."""
        return " + ".join("|".join(group) for group in self.expected) or "-"


_CAREFUL = Recipe(lr=1e-3, weight_decay=0.01, schedule="linear", warmup=0.05)
_OVERFIT_ACCEPTS = ("FW-GAP-WIDENING", "FW-OVERFIT", "FW-OVERFIT-SUBTLE", "FW-CALIBRATION")
#: LoRA as it is used: adapters on a base model that was pretrained (here on documents in neither split).
_LORA = LMModelSpec(lora_rank=8, lora_alpha=16.0, base_epochs=2)

_ALL = (
    LMScenario(
        name="healthy-lm-sft",
        description="healthy: GPT-2 (2 layers, width 64) on 1200 docstrings, dropout 0.1, AdamW 1e-3, "
        "warmup and linear decay",
        seeds=(0, 1, 2, 3, 4),
        epochs=6,
        quick_epochs=2,
    ),
    LMScenario(
        name="healthy-lm-lora",
        description="healthy LoRA: rank-8 adapters (alpha 16) on c_attn, c_proj and c_fc of a base GPT-2 "
        "pretrained on other docstrings, 600 docstrings, AdamW 2e-3, warmup and linear decay",
        epochs=4,
        quick_epochs=2,
        train_size=600,
        model=_LORA,
        recipe=Recipe(lr=2e-3, weight_decay=0.01, schedule="linear", warmup=0.05),
    ),
    LMScenario(
        name="memorise-lm",
        description="memorisation: 128 docstrings for 30 epochs, no dropout, no weight decay, "
        "constant LR 3e-3",
        expected=(("FW-OVERFIT",),),
        accepted=_OVERFIT_ACCEPTS,
        onset="min_val_loss",
        epochs=30,
        quick_epochs=10,
        train_size=128,
        model=LMModelSpec(dropout=0.0),
        recipe=Recipe(lr=3e-3, weight_decay=0.0),
    ),
    LMScenario(
        name="lr-too-high-lm",
        description="learning rate too high: AdamW at 0.03 (30x), no warmup, constant",
        expected=(("FW-LR-TOO-HIGH", "FW-LOSS-SPIKES", "FW-DIVERGENCE"),),
        accepted=(
            "FW-LR-TOO-HIGH",
            "FW-LOSS-SPIKES",
            "FW-DIVERGENCE",
            "FW-LR-NO-WARMUP",
            "FW-PLATEAU",
            "FW-REG-WEIGHT-GROWTH",
            "FW-FAILED-RUN",
            *_OVERFIT_ACCEPTS,
        ),
        onset="fit_start",
        epochs=5,
        quick_epochs=2,
        train_size=600,
        recipe=Recipe(lr=0.03, weight_decay=0.01),
    ),
    LMScenario(
        name="lr-decayed-lm",
        description="schedule ends early: linear decay sized for a quarter of the steps (total steps divided "
        "by a gradient accumulation of 4 the Trainer does not use)",
        expected=(("FW-LR-DECAYED",),),
        accepted=("FW-PLATEAU",),
        onset="lr_decayed",
        epochs=16,
        quick_epochs=8,
        train_size=300,
        recipe=Recipe(lr=1e-3, weight_decay=0.01, schedule="linear", warmup=0.05, schedule_steps=0.25),
    ),
    LMScenario(
        name="duplicates-lm",
        description="duplicate documents across splits: 20% of the validation docstrings also in training",
        expected=(("FW-LEAK-DUPLICATES",),),
        onset="fit_start",
        epochs=3,
        quick_epochs=1,
        train_size=600,
        duplicate_fraction=0.2,
    ),
    LMScenario(
        name="lora-frozen-lm",
        description="LoRA that never trains: AdamW(model.parameters()) built before get_peft_model, so it "
        "holds the frozen base weights and none of the rank-8 adapters",
        expected=(("FW-REG-MISSING-PARAMS", "FW-REG-FROZEN-PARAMS"),),
        accepted=(
            "FW-REG-MISSING-PARAMS",
            "FW-REG-FROZEN-PARAMS",
            "FW-PLATEAU",
            "FW-FAILED-RUN",
            "FW-LR-TOO-LOW",
        ),
        onset="fit_start",
        epochs=3,
        quick_epochs=1,
        train_size=600,
        model=dataclasses.replace(_LORA, optimizer_before_lora=True),
    ),
    LMScenario(
        name="lora-alpha-zero-lm",
        description="LoRA scaled to nothing: lora_alpha=0 (a config field left at 0), so the adapters' "
        "output is multiplied by alpha/r = 0 and lora_B never gets a gradient",
        expected=(("FW-REG-FROZEN-PARAMS",),),
        accepted=("FW-REG-MISSING-PARAMS", "FW-PLATEAU", "FW-FAILED-RUN", "FW-LR-TOO-LOW"),
        onset="fit_start",
        epochs=3,
        # Parameters count as frozen after ~40 unchanged steps.
        quick_epochs=2,
        train_size=600,
        model=dataclasses.replace(_LORA, lora_alpha=0.0),
    ),
    LMScenario(
        name="prompt-trained-lm",
        description="completion mask missing: the collator copies input_ids into labels, so the prompt "
        "template is trained along with the docstring",
        expected=(("FW-LM-PROMPT-TRAINED",),),
        onset="fit_start",
        epochs=3,
        quick_epochs=1,
        train_size=600,
        completion_only=False,
    ),
)

#: Every LM scenario by name, healthy ones first.
LM_SCENARIOS: Mapping[str, LMScenario] = {s.name: s for s in _ALL}


def get_lm_scenario(name: str) -> LMScenario:
    """The LM scenario called ``name``.

    Raises:
        ValueError: If there is none, naming the ones there are.
    """
    if name not in LM_SCENARIOS:
        raise ValueError(f"Expected an LM scenario name ({', '.join(LM_SCENARIOS)}), but got {name!r}.")
    return LM_SCENARIOS[name]


def build_lm(vocab_size: int, spec: LMModelSpec, *, max_length: int = MAX_LENGTH) -> nn.Module:
    """A ``GPT2LMHeadModel`` from a config (random weights), wrapped with LoRA when ``spec.lora_rank``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=max_length,
        n_embd=spec.width,
        n_layer=spec.layers,
        n_head=spec.heads,
        resid_pdrop=spec.dropout,
        embd_pdrop=spec.dropout,
        attn_pdrop=spec.dropout,
        bos_token_id=2,
        eos_token_id=4,
        pad_token_id=PAD,
    )
    return GPT2LMHeadModel(config)


def _wrap_lora(model: nn.Module, spec: LMModelSpec) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("The LoRA scenarios need peft: pip install peft") from err
    config = LoraConfig(
        r=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        target_modules=["c_attn", "c_proj", "c_fc"],
        lora_dropout=0.0,
        fan_in_fan_out=True,  # GPT-2's projections are Conv1D (weight stored as in x out)
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _is_norm_or_bias(name: str, module: nn.Module) -> bool:
    return name.endswith("bias") or isinstance(module, nn.LayerNorm)


class LMModule(pl.LightningModule):
    """Trains a causal LM under a :class:`~fitwatch.scenarios.models.Recipe`.

    Both steps return ``{"loss", "logits"}`` with the model's own loss (the token mean over the labels that
    are not -100, after the causal shift) and logits ``[batch, tokens, vocabulary]``.

    Args:
        model: A ``GPT2LMHeadModel`` (with ``spec.lora_rank``, wrapped here).
        recipe: The optimizer and schedule.
        spec: The LoRA set-up.
    """

    def __init__(self, model: nn.Module, recipe: Recipe, spec: LMModelSpec | None = None) -> None:
        super().__init__()
        spec = spec or LMModelSpec()
        # The fault: `optimizer = AdamW(model.parameters())` written before `model = get_peft_model(model)`.
        self._early_params = list(model.named_parameters()) if spec.optimizer_before_lora else None
        self.model = _wrap_lora(model, spec) if spec.lora_rank else model
        self.recipe = recipe
        #: First step at which the schedule's learning rate is below 1% of its peak (``None`` if never).
        self.decayed_step: int | None = None

    def _step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
        return {"loss": out.loss, "logits": out.logits}

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._step(batch)

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._step(batch)

    def configure_optimizers(self) -> Any:
        r = self.recipe
        named = self._early_params if self._early_params is not None else list(self.named_parameters())
        named = [(n, p) for n, p in named if p.requires_grad or self._early_params is not None]
        owners = {
            f"{m}.{p}" if m else p: mod
            for m, mod in self.named_modules()
            for p, _ in mod.named_parameters(recurse=False)
        }
        owner = {id(p): owners.get(f"model.{n}", owners.get(n)) for n, p in named}
        plain = [p for n, p in named if not _is_norm_or_bias(n, owner[id(p)] or nn.Identity())]
        exempt = [p for n, p in named if _is_norm_or_bias(n, owner[id(p)] or nn.Identity())]
        groups = [
            {"params": plain, "weight_decay": r.weight_decay, "name": "decay"},
            {"params": exempt, "weight_decay": 0.0, "name": "no_decay"},
        ]
        optimizer = torch.optim.AdamW(groups, lr=r.lr, weight_decay=r.weight_decay)
        if r.schedule == "constant" and r.warmup == 0:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches * r.schedule_steps))
        warm = max(1, round(r.warmup * total)) if r.warmup else 0
        factor = schedule_factor(r.schedule, warmup=warm, total=total)
        if r.schedule != "constant":
            self.decayed_step = next(t for t in range(warm, total + 1) if factor(t) < 0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LossRecorder(Callback):
    """The run's own token-mean losses, outside FitWatch: per evaluation, the validation loss over every
    trained token and the training loss over the steps since the previous evaluation (each step's mean
    weighted by its trained tokens); the learning rate of the first param group at every step."""

    def __init__(self) -> None:
        self.evaluation_steps: list[int] = []
        self.val_loss: list[float] = []
        self.train_loss: list[float] = []
        self.lr: list[tuple[int, float]] = []
        self._train = [0.0, 0]
        self._val = [0.0, 0]

    @staticmethod
    def _tokens(batch: Mapping[str, Tensor]) -> int:
        return int((batch["labels"][:, 1:] != -100).sum())

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self._tokens(batch)
        self._train[0] += float(outputs["loss"].detach()) * n
        self._train[1] += n
        self.lr.append((trainer.global_step, float(trainer.optimizers[0].param_groups[0]["lr"])))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val = [0.0, 0]

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        n = self._tokens(batch)
        self._val[0] += float(outputs["loss"].detach()) * n
        self._val[1] += n

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.evaluation_steps.append(trainer.global_step)
        self.val_loss.append(self._val[0] / max(self._val[1], 1))
        self.train_loss.append(self._train[0] / self._train[1] if self._train[1] else math.nan)
        self._train = [0.0, 0]


def run_lm_scenario(
    scenario: str | LMScenario,
    *,
    seed: int | None = None,
    epochs: int | None = None,
    quick: bool = False,
    watch: bool = True,
    threads: int | None = 1,
    max_steps: int | None = None,
    fitwatch: Mapping[str, Any] | None = None,
) -> ScenarioResult:
    """Train one LM scenario (with FitWatch attached unless ``watch=False``) and return what it found.

    Args:
        scenario: An :class:`LMScenario` or the name of one.
        seed: The seed (default: the scenario's first): the split, the initialization, the shuffling.
        epochs: Epochs to train (default: the scenario's, or its ``quick_epochs`` with ``quick``).
        quick: Train the scenario's short version.
        watch: Attach FitWatch (``task="causal_lm"``). Without it the result holds only the run's own losses
            (``raw_*`` series), which is how the faults' symptoms are checked independently of FitWatch.
        threads: torch threads during the run; ``None`` leaves them as they are.
        max_steps: Stop after this many optimizer steps (smoke tests).
        fitwatch: FitWatch settings over :data:`~fitwatch.scenarios.runner.FITWATCH_SETTINGS`.

    Raises:
        ValueError: If the scenario is unknown or an argument is out of range.
    """
    spec = get_lm_scenario(scenario) if isinstance(scenario, str) else scenario
    seed = spec.seeds[0] if seed is None else v.check_non_negative_int("seed", seed)
    epochs = (
        (spec.quick_epochs if quick else spec.epochs)
        if epochs is None
        else v.check_positive_int("epochs", epochs)
    )
    with _run_settings(threads), tempfile.TemporaryDirectory(prefix="fitwatch-lm-scenario-") as scratch:
        pl.seed_everything(seed, verbose=False)
        data = load_lm_data(
            seed=seed,
            train_size=spec.train_size,
            val_size=spec.val_size,
            completion_only=spec.completion_only,
            duplicate_fraction=spec.duplicate_fraction,
        )
        model = build_lm(len(data.tokenizer), spec.model)
        if spec.model.base_epochs:
            model.load_state_dict(_pretrained_base(seed, spec.model, len(data.tokenizer), data))
        module = LMModule(model, spec.recipe, spec.model)
        train = DataLoader(
            data.train,
            batch_size=spec.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        val = DataLoader(data.val, batch_size=100)
        recorder = LossRecorder()
        callbacks: list[Callback] = [recorder]
        observer = None
        if watch:
            from fitwatch.lightning import FitWatch

            config = {**FITWATCH_SETTINGS, **(fitwatch or {})}
            if spec.data_checks:
                config["data_checks"] = dict(spec.data_checks)
            observer = FitWatch(task="causal_lm", config=config, log_dir=scratch)
            callbacks.insert(0, observer)
        trainer = pl.Trainer(
            max_epochs=epochs,
            max_steps=-1 if max_steps is None else max_steps,
            accelerator="cpu",
            devices=1,
            deterministic=True,
            log_every_n_steps=LOG_EVERY_N_STEPS,
            num_sanity_val_steps=0,
            logger=False,
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=scratch,
        )
        started = time.perf_counter()
        trainer.fit(module, train, val)
        wall = time.perf_counter() - started
    return _lm_result(
        spec, seed, epochs, trainer.global_step, observer, recorder, module.decayed_step, wall, data
    )


#: Documents a base model is pretrained on (:attr:`LMModelSpec.base_epochs`).
BASE_DOCUMENTS = 1200
_BASES: dict[tuple[Any, ...], dict[str, Tensor]] = {}


def _pretrained_base(seed: int, spec: LMModelSpec, vocab_size: int, data: LMData) -> dict[str, Tensor]:
    """The weights of a base model pretrained on documents in neither split (AdamW 1e-3, batch 16, every
    token a label), kept per process: every LoRA scenario of one seed adapts the same base."""
    shape = (spec.width, spec.layers, spec.heads, spec.dropout)
    key = (seed, shape, vocab_size, spec.base_epochs, len(data.train), len(data.val))
    if key not in _BASES:
        from fitwatch.scenarios.lm_data import SFTDataset, encode_example

        # Its own random stream, restored afterwards: a run draws the same numbers whether its base was
        # trained in this process or found already trained.
        with torch.random.fork_rng():
            torch.manual_seed(10_000 + seed)
            model = build_lm(vocab_size, dataclasses.replace(spec, lora_rank=0, optimizer_before_lora=False))
            model.train()
            docs = data.rest_docs[:BASE_DOCUMENTS]
            items = SFTDataset([encode_example(data.tokenizer, d, completion_only=False) for d in docs])
            loader = DataLoader(items, batch_size=16, shuffle=True)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
            for _ in range(spec.base_epochs):
                for batch in loader:
                    model(**batch).loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
        _BASES[key] = {k: t.detach().clone() for k, t in model.state_dict().items()}
    return _BASES[key]


def _lm_result(
    spec: LMScenario,
    seed: int,
    epochs: int,
    steps: int,
    observer: Any,
    recorder: LossRecorder,
    decayed_step: int | None,
    wall: float,
    data: LMData,
) -> ScenarioResult:
    history = {k: list(pts) for k, pts in observer.history.items()} if observer is not None else {}
    evaluation_steps = tuple(recorder.evaluation_steps)
    series: dict[str, tuple[float, ...]] = {
        name: _aligned(history.get(t, []), evaluation_steps) for name, t in LM_SERIES.items()
    }
    series["raw_val_loss"] = tuple(recorder.val_loss)
    series["raw_train_loss"] = tuple(recorder.train_loss)
    lr_tags = sorted(t for t in history if t.startswith(tag("optimizer", "lr") + "/"))
    lr_points = history.get(lr_tags[0], []) if lr_tags else recorder.lr
    series["lr"] = _lr_at(lr_points, evaluation_steps)
    raised = _raised(history, evaluation_steps)
    onset_step = decayed_step if spec.onset == "lr_decayed" else None
    result = ScenarioResult(
        scenario=spec,  # type: ignore[arg-type]  (an LMScenario has the fields a result reads)
        seed=seed,
        epochs=epochs,
        steps=steps,
        evaluation_steps=evaluation_steps,
        series=series,
        raised=raised,
        findings=tuple(observer.findings) if observer is not None else (),
        history=history,
        onset=_lm_onset(spec, series, evaluation_steps, onset_step),
        onset_step=onset_step,
        wall_s=wall,
        log_dir=None,
    )
    return dataclasses.replace(result, data=_lm_facts(result, data))


def _lm_onset(
    spec: LMScenario,
    series: Mapping[str, Sequence[float]],
    evaluation_steps: Sequence[int],
    onset_step: int | None,
) -> int | None:
    if spec.onset == "none" or not evaluation_steps:
        return None
    if spec.onset == "fit_start":
        return 0
    if spec.onset == "min_val_loss":
        # The run's own validation loss: the onset does not depend on what FitWatch logged.
        finite = [(x, i) for i, x in enumerate(series["raw_val_loss"]) if math.isfinite(x)]
        return min(finite)[1] if finite else None
    return None if onset_step is None else evaluation_at(onset_step, evaluation_steps)


def _lm_facts(result: ScenarioResult, data: LMData) -> dict[str, Any]:
    """What the data faults did, in numbers: with duplicates, how many, and the final validation loss on the
    whole set and on its part with no copy in training (FitWatch's ``val_clean`` split)."""
    facts: dict[str, Any] = {}
    if data.duplicated:
        facts["duplicated"] = data.duplicated
        facts["duplicate_fraction"] = data.duplicated / len(data.val)
        for name in ("val_loss", "val_clean_loss"):
            values = [x for x in result.series[name] if math.isfinite(x)]
            facts[name] = values[-1] if values else None
    return facts
