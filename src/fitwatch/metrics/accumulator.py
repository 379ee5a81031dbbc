"""One split's predictions, accumulated into O(classes x bins) states without host syncs.

:class:`PredictionAccumulator` takes logits and targets batch by batch (any of the shapes below),
keeps per-class counts, calibration bin sums, loss sums and health counters on the predictions'
device, and reads them back only in :meth:`PredictionAccumulator.compute`. Every state is a tensor
that reduces by ``sum`` across ranks (:meth:`PredictionAccumulator.sync`).

Shapes and tasks (``task="auto"`` infers from the first batch):

=============  =========================  =====================  ==============================
task           logits                     target                 example
=============  =========================  =====================  ==============================
multiclass     ``[N, C]``, ``[N, T, C]``  ``[N]``, ``[N, T]``    sequence / token classification
binary         ``[N]`` or ``[N, 1]``      ``[N]`` in {0, 1}      one logit per sample
multilabel     ``[N, L]``                 ``[N, L]`` multi-hot   ``problem_type="multi_label..."``
=============  =========================  =====================  ==============================

Rows whose target equals ``ignore_index`` are skipped. Rows with NaN/inf logits are counted in
``nonfinite_logits`` and excluded from every other number; targets outside ``[0, C)`` are counted in
``invalid_targets`` and excluded (on the first batch they raise instead: a wrong ``num_classes`` or
label mapping is a set-up error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fitwatch.metrics.calibration import CalibrationState
from fitwatch.metrics.classwise import ClassCountsState
from fitwatch.metrics.held import HeldBatch, flat_rows, intact, loss_of, version_of, views_a_larger_storage

__all__ = ["PredictionAccumulator", "SplitResult", "infer_task"]

TASKS = ("multiclass", "binary", "multilabel")
# health counters, in this order
HEALTH_FIELDS = ("nonfinite_logits", "invalid_targets", "nonfinite_loss", "batches")


@dataclass
class SplitResult:
    """What one split's accumulator read back: plain Python numbers only."""

    summary: dict[str, float]
    per_class: dict[str, list[float]]
    reliability: dict[str, list[float]] = field(default_factory=dict)
    confusion: list[list[int]] | None = None


def infer_task(logits: Tensor, target: Tensor) -> str:
    """The task implied by the shapes of ``logits`` and ``target`` (see the module table).

    Raises:
        ValueError: If the shapes fit no task, naming both shapes.
    """
    if logits.ndim >= 1 and logits.shape == target.shape:
        return "binary" if logits.ndim == 1 else "multilabel"
    if logits.ndim == target.ndim + 1 and logits.shape[:-1] == target.shape:
        return "binary" if logits.shape[-1] == 1 else "multiclass"
    raise ValueError(
        "Expected `logits` of shape [N, C] (or [N, T, C]) with an integer `target` of shape [N] (or [N, T]), "
        f"or `logits` and a multi-hot `target` of the same shape, but got logits {tuple(logits.shape)} "
        f"and target {tuple(target.shape)}."
    )


class PredictionAccumulator:
    """Per-class, calibration and loss states of one split.

    Args:
        task: ``"multiclass"``, ``"binary"``, ``"multilabel"`` or ``"auto"`` (inferred from the first batch).
        num_classes: Number of classes; inferred from the logits when ``None``.
        ignore_index: Target value to skip, or ``None``.
        n_bins: Equal-width calibration bins.
        classwise_ece: Keep the ``classes x n_bins`` bins for classwise ECE.
        confusion_max_classes: Largest class count for which the confusion matrix is kept.
        classes_from: The user-facing argument ``num_classes`` came from, for error messages.
        buffer_batches: Batches held before they are folded into the states in one pass; ``0`` folds every batch
            at once. A batch is held by reference (no copy, no kernel; see :meth:`update`), where a fold costs a
            hundred small kernels.
        buffer_bytes: Fold earlier when the held logits reach this many bytes (memory stays bounded).
    """

    def __init__(
        self,
        *,
        task: str = "auto",
        num_classes: int | None = None,
        ignore_index: int | None = -100,
        n_bins: int = 15,
        classwise_ece: bool = True,
        confusion_max_classes: int = 50,
        classes_from: str = "num_classes",
        buffer_batches: int = 0,
        buffer_bytes: int = 8 * 2**20,
    ) -> None:
        self.task = task
        self.classes_from = classes_from
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.n_bins = n_bins
        self.classwise_ece = classwise_ece
        self.confusion_max_classes = confusion_max_classes
        self._counts: ClassCountsState | None = None
        self._calibration: CalibrationState | None = None
        self._loss: Tensor | None = None  # [weighted loss sum, weight]
        self._health: Tensor | None = None
        self.buffer_batches = buffer_batches
        self.buffer_bytes = buffer_bytes
        self._pending: list[HeldBatch] = []
        self._pending_bytes = 0
        #: Hold copies rather than references, per role (logits, target): decided on the first held batch (a view
        #: of a much larger storage is copied), and for both roles once a held batch was changed after its step.
        self._copy: tuple[bool, bool] | None = None
        self._fast = False  # the per-step path of :meth:`update` applies (multiclass, held by reference)
        #: Held batches dropped at a fold because their tensors had changed since the step (see :meth:`update`).
        self.changed = 0
        #: Check the first batch's targets and fail fast (a set-up error); off for a split whose run already
        #: started, where bad input is counted and warned about, never raised.
        self.strict = True
        #: Batches whose shapes did not fit the states (a logit column more, a target of another length): skipped
        #: and counted here (host-side shapes, no synchronisation), with the first such pair of shapes.
        self.skipped = 0
        self.skipped_shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def initialized(self) -> bool:
        return self._counts is not None

    # ------------------------------------------------------------------ update
    def update(self, logits: Tensor, target: Tensor, loss: Tensor | float | None = None, *, mask: Tensor | None = None) -> None:
        """Add one batch. No host sync, except for shape/range validation on the very first batch.

        ``mask`` (boolean, the shape of ``target`` for multiclass/binary, ``[N]`` for multilabel) leaves the
        rows where it is False out of every number, as if they were never seen.

        With ``buffer_batches > 0`` the batch is only held and folded into the states together with the next
        ones, in one pass of a few dozen kernels rather than one pass per batch; every read (:meth:`compute`,
        :meth:`tensors`, :meth:`sync`, :meth:`state_dict`) folds what is held first. Holding is by reference:
        no copy and no kernel (a ``detach`` view where the tensor requires grad), with each tensor's version
        counter noted. The fold checks that what it reads is what the step produced: a tensor changed in place
        since (a loss scaled by the loop, a label buffer rewritten: its version moved) or an output buffer handed
        back by a later step (two held batches at one address: a CUDA-graph replay's static output) drops the
        batches it can no longer vouch for (only the loss, when only the loss moved; counted in :attr:`changed`)
        and switches to holding copies. A view of a much larger storage (a column of the whole batch) is copied
        from the start, so holding never keeps more than the rows alive.
        """
        if self._fast and mask is None and logits.ndim == 2 and target.ndim == 1:
            # The training step's path (multiclass [N, C] logits and [N] class ids, held by reference): a few
            # attribute reads; devices, dtypes and shapes of the held batches are reconciled at the fold.
            n, k = logits.shape
            if k == self.num_classes and target.shape[0] == n:
                if logits.requires_grad:
                    logits = logits.detach()
                if isinstance(loss, Tensor) and loss.requires_grad:
                    loss = loss.detach()
                try:
                    versions = (logits._version, target._version, loss._version if isinstance(loss, Tensor) else -1, -1)
                except RuntimeError:  # inference tensors keep no version (and nothing can change them outside it)
                    versions = (version_of(logits), version_of(target), version_of(loss), -1)
                self._pending.append(HeldBatch(logits, target, loss, None, n, 1, versions))
                self._pending_bytes += n * k * logits.element_size()
                if len(self._pending) >= self.buffer_batches or self._pending_bytes >= self.buffer_bytes:
                    self._fold_pending()
                return
        first = not self.initialized
        if first:
            if target.device != logits.device:
                target = target.to(logits.device, non_blocking=True)
            with torch.no_grad():
                self._initialize(logits, target)
        batch = self._as_rows(logits, target, loss, mask)
        if batch is None:
            if first and self.strict:
                raise ValueError(
                    f"Expected logits and targets that pair up row by row for a {self.task} task with "
                    f"{self.num_classes} classes, but got logits {tuple(logits.shape)} and target {tuple(target.shape)}."
                )
            self.skipped += 1
            self.skipped_shapes = self.skipped_shapes or (tuple(logits.shape), tuple(target.shape))
            return
        if self.buffer_batches <= 0:
            self._fold_pending()
            with torch.no_grad():
                self._fold([batch])
            return
        self._fast = self.task == "multiclass" and self._copy == (False, False)
        self._pending.append(batch)
        self._pending_bytes += batch.logits.numel() * batch.logits.element_size()
        if len(self._pending) >= self.buffer_batches or self._pending_bytes >= self.buffer_bytes:
            self._fold_pending()

    def _as_rows(self, logits: Tensor, target: Tensor, loss: Tensor | float | None, mask: Tensor | None) -> HeldBatch | None:
        """The batch to hold, in its own shapes (flattened to rows at the fold: a reshape is an op even when it
        returns a view), or ``None`` when its shape does not fit the states (a set-up error on the first batch;
        skipped and counted afterwards)."""
        k = self.num_classes
        if self.task == "binary":
            rows = logits.numel()
            if target.numel() != rows:
                return None
            target_width = 1
        elif self.task == "multilabel":
            if logits.shape[-1] != k or target.shape != logits.shape:
                return None
            rows, target_width = logits.numel() // k, 2
        elif target.shape == logits.shape and target.is_floating_point() and logits.shape[-1] == k:
            rows, target_width = logits.numel() // k, 2  # soft (or one-hot) targets: a distribution per row
        else:
            if logits.shape[-1] != k or logits.shape[:-1] != target.shape:
                return None
            rows, target_width = (logits.shape[0] if logits.ndim == 2 else logits.numel() // k), 1
        m = mask.reshape(-1) if mask is not None else None
        if m is not None and m.numel() != rows:
            return None
        if self.buffer_batches <= 0:  # folded at once: nothing is held
            return HeldBatch(logits, target, loss, m, rows, target_width)
        return self._hold(logits, target, loss, m, rows, target_width)

    def _hold(self, logits: Tensor, target: Tensor, loss: Tensor | float | None, mask: Tensor | None, rows: int,
              target_width: int) -> HeldBatch:
        """The batch as held until the fold: by reference (views, no kernel), or copies where :attr:`_copy` says."""
        if self._copy is None:
            self._copy = (views_a_larger_storage(logits), views_a_larger_storage(target))
        copy_logits, copy_target = self._copy
        if copy_logits or copy_target:
            with torch.no_grad():  # one op each; a held loss that required grad would keep the step's graph alive
                logits = logits.detach().clone() if copy_logits else logits
                target = target.detach().clone() if copy_target else target
                if copy_logits and copy_target:
                    loss = loss.detach().clone() if isinstance(loss, Tensor) else loss
                    return HeldBatch(logits, target, loss, mask.clone() if mask is not None else None, rows, target_width)
        # A detach only where the tensor carries a graph (Lightning hands callbacks detached outputs already).
        if logits.requires_grad:
            logits = logits.detach()
        if target.requires_grad:
            target = target.detach()
        if isinstance(loss, Tensor) and loss.requires_grad:
            loss = loss.detach()
        return HeldBatch(logits, target, loss, mask, rows, target_width,
                         (version_of(logits), version_of(target), version_of(loss), version_of(mask)))

    def _fold_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        pending = self._intact(pending)
        # Batches fold together while their logits share a device and dtype and their targets a width (a
        # change mid-window, e.g. autocast turned on, starts another pass).
        runs: list[list[HeldBatch]] = []
        for b in pending:
            last = runs[-1][-1] if runs else None
            if (last is None or b.logits.device != last.logits.device or b.logits.dtype != last.logits.dtype
                    or b.target_width != last.target_width):
                runs.append([b])
            else:
                runs[-1].append(b)
        with torch.no_grad():
            for run in runs:
                if self._health.device != run[0].logits.device:  # type: ignore[union-attr]  (restored on CPU, now on GPU)
                    self._move_to(run[0].logits.device)
                self._fold(run)

    def _intact(self, batches: list[HeldBatch]) -> list[HeldBatch]:
        """The held batches whose tensors still hold what their step produced (see :meth:`update`)."""
        kept, changed = intact(batches)
        if changed:
            self.changed += changed
            self._copy, self._fast = (True, True), False
        return kept

    def _fold(self, batches: list[HeldBatch]) -> None:
        """Add held batches to the states in one pass; per-batch quantities (the mean loss of each batch, the
        batch count) are kept per batch through segment sums."""
        assert self._counts is not None and self._calibration is not None and self._health is not None
        assert self._loss is not None
        k = self.num_classes
        assert k is not None
        device = self._health.device
        one = len(batches) == 1
        cat = (lambda ts: ts[0]) if one else torch.cat
        # Rows: [N] logits for a binary task, [N, C] otherwise; targets [N] (class ids) or [N, C] (distributions).
        width = None if self.task == "binary" else k
        logits = cat([flat_rows(b.logits, width) for b in batches])
        target = cat([flat_rows(b.target if b.target.device == device else b.target.to(device), None if b.target_width == 1 else k)
                      for b in batches])
        mask = None
        if any(b.mask is not None for b in batches):
            mask = cat([b.mask.to(device) if b.mask is not None else torch.ones(b.rows, dtype=torch.bool, device=device) for b in batches])
        logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        if self.task == "multilabel":
            logits2 = logits.reshape(-1, logits.shape[-1])
            target2 = target.reshape(-1, target.shape[-1])
            finite = torch.isfinite(logits2).all(dim=1)
            valid_t = ((target2 == 0) | (target2 == 1)).all(dim=1)
            if self.ignore_index is not None:
                valid_t = valid_t & ~(target2 == self.ignore_index).any(dim=1)
            keep = mask.to(finite.device) if mask is not None else torch.ones_like(finite)
            weights = finite & valid_t & keep
            logits2 = torch.where(finite.unsqueeze(1), logits2, 0.0)
            target2 = torch.where(weights.unsqueeze(1), target2, torch.zeros_like(target2))
            self._counts.update_multilabel(logits2 > 0, target2, weights)
            self._calibration.update_multilabel(logits2, target2, weights)
            invalid = (~valid_t & finite & keep).sum()
            targeted = valid_t & keep
        else:
            if self.task == "binary":
                z = logits.reshape(-1)
                logits2 = torch.stack([torch.zeros_like(z), z], dim=1)  # softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
            else:
                logits2 = logits.reshape(-1, logits.shape[-1])
            soft = None
            if target.ndim == 2 and target.is_floating_point() and self.task == "multiclass":
                # Soft targets: accuracy and per-class counts against the most likely class, NLL and Brier
                # against the distribution (as F.cross_entropy computes the loss).
                soft = target.to(logits2.dtype)
                target = soft.argmax(dim=1)
            whole = target.reshape(-1) == target.reshape(-1).floor() if target.is_floating_point() else None
            target1 = target.reshape(-1).long()
            finite = torch.isfinite(logits2).all(dim=1)
            ignored = (target1 == self.ignore_index) if self.ignore_index is not None else torch.zeros_like(finite)
            in_range = (target1 >= 0) & (target1 < k)
            if whole is not None:  # a fractional class id is no class: counted invalid, never truncated
                in_range = in_range & whole
            keep = mask.to(finite.device) if mask is not None else torch.ones_like(finite)
            weights = finite & in_range & ~ignored & keep
            logits2 = torch.where(finite.unsqueeze(1), logits2, 0.0)
            target1 = torch.where(weights, target1, torch.zeros_like(target1))
            log_probs = torch.log_softmax(logits2, dim=1)
            self._counts.update(log_probs.argmax(dim=1), target1, weights)
            if soft is not None:
                soft = torch.where(weights.unsqueeze(1), soft, 0.0)
            self._calibration.update_multiclass(log_probs, target1, weights, binary=self.task == "binary", soft=soft)
            invalid = (~in_range & ~ignored & finite & keep).sum()
            targeted = in_range & ~ignored & keep
        nonfinite = (~finite & keep).sum()
        loss_nonfinite = torch.zeros((), dtype=torch.long, device=device)
        if any(b.loss is not None for b in batches):
            dtype = self._loss.dtype
            # The mean loss of each batch, weighted by its counted rows; a batch without a loss adds nothing.
            held = [b.loss for b in batches]
            if all(isinstance(x, Tensor) and x.numel() == 1 and x.device == held[0].device for x in held):
                # One stack for all the held losses, not a handful of ops each.
                losses = torch.stack([x.reshape(()) if x.ndim else x for x in held]).to(device, dtype)  # type: ignore[union-attr]
            else:
                losses = torch.cat([loss_of(x, device, dtype) for x in held])
            if one:
                n_valid = weights.sum().to(dtype).reshape(1)
                any_targeted = targeted.any().reshape(1)
            else:
                # Which batch each row came from, built on the device (a host list would be a synchronising copy).
                sizes = {b.rows for b in batches}
                if len(sizes) == 1:  # batches of one size (all but a last short one): two ops, not one per batch
                    owner = torch.arange(len(batches), device=device).repeat_interleave(sizes.pop())
                else:
                    owner = torch.cat([torch.full((b.rows,), i, device=device) for i, b in enumerate(batches)])
                n_valid = torch.zeros(len(batches), dtype=dtype, device=device).index_add_(0, owner, weights.to(dtype))
                any_targeted = torch.zeros(len(batches), dtype=dtype, device=device).index_add_(0, owner, targeted.to(dtype)) > 0
            finite_loss = torch.isfinite(losses)
            ok, counted = finite_loss, any_targeted
            if not all(b.loss is not None for b in batches):
                has = torch.cat([torch.full((1,), b.loss is not None, device=device) for b in batches])
                ok, counted = finite_loss & has, any_targeted & has
            self._loss += torch.stack([torch.where(ok, losses * n_valid, 0.0).sum(), torch.where(ok, n_valid, 0.0).sum()])
            # A batch without a counted target has a NaN mean loss by definition (0/0): not a non-finite loss.
            loss_nonfinite = (~finite_loss & counted).sum()
        batches_seen = torch.full((), len(batches), dtype=torch.long, device=device)
        self._health += torch.stack([nonfinite, invalid, loss_nonfinite, batches_seen])

    def _initialize(self, logits: Tensor, target: Tensor) -> None:
        task = infer_task(logits, target) if self.task == "auto" else self.task
        if task not in TASKS:
            raise ValueError(f"Expected `task` to be one of {TASKS} or 'auto', but got {task!r}.")
        if task == "binary":
            classes = 2
        else:
            classes = int(logits.shape[-1])
        if self.num_classes is not None and self.num_classes != classes:
            raise ValueError(
                f"Expected logits with {self.num_classes} classes in the last dimension (from `{self.classes_from}`), "
                f"but got logits of shape {tuple(logits.shape)} ({classes} classes)."
            )
        if self.strict:
            _validate_first_batch(task, classes, logits, target, self.ignore_index)
        self.task, self.num_classes = task, classes
        self._allocate(logits.device)

    # ------------------------------------------------------------------ read
    def tensors(self) -> list[Tensor]:
        """Every state, in a fixed order (what :meth:`sync` reduces)."""
        if not self.initialized:
            return []
        self._fold_pending()
        assert self._counts is not None and self._calibration is not None
        return [*self._counts.tensors(), *self._calibration.tensors(), self._loss, self._health]  # type: ignore[list-item]

    def compute(self) -> SplitResult:
        """Read every state back and compute the split's numbers. Empty result before the first batch."""
        if not self.initialized:
            return SplitResult(summary={}, per_class={})
        self._fold_pending()
        assert self._counts is not None and self._calibration is not None
        multilabel = self.task == "multilabel"
        summary, per_class = self._counts.compute(multilabel=multilabel)
        summary.update(self._calibration.compute())
        loss_sum, loss_weight = self._loss.detach().cpu().tolist()  # type: ignore[union-attr]
        if loss_weight > 0:
            summary["loss"] = loss_sum / loss_weight
        health = dict(zip(HEALTH_FIELDS, self._health.detach().cpu().tolist()))  # type: ignore[union-attr]
        summary["samples"] = float(sum(per_class["support"])) if not multilabel else float(self._calibration.sums[2])
        summary.update({k: float(v) for k, v in health.items()})
        return SplitResult(
            summary=summary,
            per_class=per_class,
            reliability=self._calibration.reliability(),
            confusion=self._counts.confusion_matrix(),
        )

    def reset(self) -> None:
        self._pending, self._pending_bytes = [], 0
        for t in self.tensors():
            t.zero_()

    # ------------------------------------------------------------------ distributed
    def sync(self) -> None:
        """Sum every state over all ranks (one collective). Every rank must call it.

        A rank that saw no batch first learns the shapes from the others, so an empty or missing
        last batch on one rank never deadlocks the collective.
        """
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        if torch.distributed.get_world_size() == 1:
            return
        device = _collective_device(self.tensors())
        meta = torch.tensor(
            [self.num_classes or 0, TASKS.index(self.task) + 1 if self.initialized else 0], device=device
        )
        torch.distributed.all_reduce(meta, op=torch.distributed.ReduceOp.MAX)
        classes, task_code = (int(x) for x in meta.tolist())
        if classes == 0:
            return  # no rank saw a batch
        if not self.initialized:
            self.task = TASKS[task_code - 1]
            self.num_classes = classes
            self._allocate(device)
        sum_over_ranks(self.tensors())

    def _move_to(self, device: torch.device) -> None:
        saved = [t.detach().cpu() for t in self.tensors()]
        self._allocate(device)
        for t, src in zip(self.tensors(), saved):
            t.copy_(src)

    @torch.inference_mode(False)  # states made in `validate()` must take in-place updates in `fit()`
    def _allocate(self, device: torch.device) -> None:
        k = self.num_classes
        assert k is not None
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self._counts = ClassCountsState(k, confusion_max=self.confusion_max_classes, device=device)
        self._calibration = CalibrationState(k, self.n_bins, classwise=self.classwise_ece, device=device, dtype=dtype)
        self._loss = torch.zeros(2, dtype=dtype, device=device)
        self._health = torch.zeros(len(HEALTH_FIELDS), dtype=torch.long, device=device)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-safe state (lists), so a resumed run keeps a half-accumulated epoch."""
        if not self.initialized:
            return {"task": self.task, "num_classes": self.num_classes, "tensors": None}
        return {
            "task": self.task,
            "num_classes": self.num_classes,
            "tensors": [t.detach().cpu().tolist() for t in self.tensors()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        tensors = state.get("tensors")
        if tensors is None:
            return
        self.task = state.get("task") or self.task
        # The counts ([tp | predicted | actual] x classes) come first: they carry the class count when the key
        # is missing (a state saved by another version).
        self.num_classes = state.get("num_classes") or self.num_classes or len(tensors[0][0])
        self._allocate(torch.device("cpu"))
        for t, saved in zip(self.tensors(), tensors):
            src = torch.tensor(saved, dtype=t.dtype)
            if src.shape == t.shape:
                t.copy_(src)


def sum_over_ranks(tensors: Sequence[Tensor]) -> None:
    """Sum ``tensors`` in place over all ranks in one collective (float64 holds int64 counts exactly up to 2**53)."""
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    torch.distributed.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view(t.shape).to(t.dtype))
        offset += t.numel()


def _collective_device(tensors: Sequence[Tensor]) -> torch.device:
    if tensors:
        return tensors[0].device
    backend = torch.distributed.get_backend()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _validate_first_batch(task: str, classes: int, logits: Tensor, target: Tensor, ignore_index: int | None) -> None:
    """Range checks on the first batch (one host sync, once): a wrong class count fails fast and clearly."""
    if task == "multilabel":
        if target.numel() and not bool(((target == 0) | (target == 1) | (target == (ignore_index if ignore_index is not None else 0))).all()):
            raise ValueError("Expected a multi-hot `target` with values in {0, 1} for a multilabel task, but got other values.")
        return
    if target.shape == logits.shape and task == "multiclass":
        if not bool(((target >= 0) & (target <= 1)).all()):
            raise ValueError("Expected soft `target` probabilities in [0, 1] (one row per sample), but got other values.")
        return
    if target.is_floating_point() and target.numel():
        if not bool((target == target.round()).all()):
            raise ValueError(f"Expected an integer class `target` for a {task} task, but got fractional values ({target.dtype}).")
    t = target.reshape(-1).long()
    if ignore_index is not None:
        t = t[t != ignore_index]
    if t.numel() == 0:
        return
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= classes:
        bad = hi if hi >= classes else lo
        raise ValueError(
            f"Expected `target` values in [0, {classes}) for {classes} classes (from the logits' last dimension), "
            f"but got {bad}. Check `num_classes`/`class_names` and the label mapping; if {bad} marks positions to "
            f"skip (void pixels, padding), set `ignore_index={bad}` (it is {ignore_index})."
        )

