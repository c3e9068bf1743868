"""Exponential moving average (EMA) of a model's weights.

After every optimizer step, shadow <- decay * shadow + (1 - decay) * weights; the shadow starts as
a copy of the weights. Evaluating with the shadow smooths the optimizer's noise, which steadies
long autoregressive rollouts (PDE-Transformer trains with EMA 0.999). Only floating-point
parameters are averaged; buffers (e.g. normalization statistics) stay the model's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """Shadow weights of `model`, updated by `update(model)`.

    Args:
        model: the model whose floating-point parameters are averaged.
        decay: weight of the old shadow in each update, in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.dtype.is_floating_point
        }

    def _params(self, model: nn.Module) -> dict[str, Tensor]:
        params = dict(model.named_parameters())
        missing = [name for name in self.shadow if name not in params]
        if missing:
            raise KeyError(f"the model has no parameters {missing} that the EMA averages")
        return {name: params[name] for name in self.shadow}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, param in self._params(model).items():
            self.shadow[name].lerp_(param.detach(), 1.0 - self.decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the shadow weights."""
        for name, param in self._params(model).items():
            param.copy_(self.shadow[name])

    @contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[None]:
        """Run the body with the shadow weights in `model`; its own weights come back afterwards."""
        params = self._params(model)
        backup = {name: p.detach().clone() for name, p in params.items()}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in params.items():
                    param.copy_(backup[name])

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise KeyError(f"EMA state averages {sorted(state['shadow'])}, this model has {sorted(self.shadow)}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        with torch.no_grad():
            for name, value in state["shadow"].items():
                self.shadow[name].copy_(value)
