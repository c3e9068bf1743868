"""What the Trainer asks of a field: the loss of a batch, and metrics over a split."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class Task(Protocol):
    """The meaning of a batch. The Trainer stays field-agnostic; a field's `task.py` implements this.

    `training_step` returns the loss to minimize and optionally extra scalars to log.
    `evaluate` consumes a whole split (batches already on the model's device, model in eval mode,
    no grad) and returns metrics by name; the Trainer prefixes them with the split name.
    """

    def training_step(self, model: nn.Module, batch: Any) -> Tensor | tuple[Tensor, dict[str, Tensor]]: ...

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]: ...


class LossTask:
    """Wrap a plain `loss_fn(model, batch) -> loss`; evaluation is the sample-weighted mean loss."""

    def __init__(self, loss_fn: Callable[[nn.Module, Any], Tensor]) -> None:
        self.loss_fn = loss_fn

    def training_step(self, model: nn.Module, batch: Any) -> Tensor:
        return self.loss_fn(model, batch)

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            n = batch_size_of(batch)
            total += float(self.loss_fn(model, batch)) * n
            count += n
        return {"loss": total / max(count, 1)}


def batch_size_of(batch: Any) -> int:
    """Leading dimension of the first tensor found in a (nested) batch."""
    if isinstance(batch, Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        if isinstance(value, (Tensor, dict, list, tuple)):
            return batch_size_of(value)
    raise TypeError(f"no tensor in batch of type {type(batch).__name__}")


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to `device`; NamedTuples keep their type."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
