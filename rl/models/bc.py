"""Behaviour cloning baselines of the Decision Transformer paper: BC, %BC and return-conditioned BC.

An MLP maps the last `context_len` states (oldest first, zeros before the window starts), and
optionally the current return-to-go, to the action through tanh. %BC is the same model trained on
the top X% of the data by episode return (`rl.sampling.top_episodes`); return-conditioned BC
appends R̂_t to the input (as RvS-R / the "conditioned BC" ablations of DT's follow-ups).

Paper: Chen et al., "Decision Transformer: Reinforcement Learning via Sequence Modeling",
NeurIPS 2021, arXiv:2106.01345 (Section 5.3, %BC).

Reference behaviour matched: kzl/decision-transformer@e2d82e6 `gym/decision_transformer/models/
mlp_bc.py`: Linear(k S, D), then (n_layers - 1) x [ReLU, Dropout, Linear(D, D)], then ReLU,
Dropout, Linear(D, A), Tanh; D = 128, 3 layers, dropout 0.1.

Deviations:
- The MLP predicts the action of every step of a window from that step's own history, and the
  loss covers every real step; the reference predicts only the window's last action. Training
  on single-step windows (context_len = 1, the default) is the same either way.
- context_len defaults to 1 (plain BC on the current state); the reference script passes its DT
  context K = 20, available as context_len=20.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rl.models.dims import check_dims, require_dims
from rl.sampling import TrajectoryBatch
from seqlab.config import require_positive, require_probability
from seqlab.nn import FastDropout


@dataclass(frozen=True)
class BCConfig:
    state_dim: int | None = None
    """State dimension S; None: taken from the data."""
    action_dim: int | None = None
    """Action dimension A; None: taken from the data."""
    context_len: int = 1
    """States k the MLP sees, the current one and k - 1 before it (the reference's `max_length`)."""
    d_model: int = 128
    """Hidden width (`hidden_size`)."""
    n_layers: int = 3
    """Hidden layers (`n_layer`)."""
    dropout: float = 0.1
    condition_on_return: bool = False
    """Append the scaled return-to-go to the input (return-conditioned BC)."""

    def __post_init__(self) -> None:
        check_dims(self)
        require_positive(self, "context_len", "d_model", "n_layers")
        require_probability(self, "dropout")


class BehaviorCloning(nn.Module):
    """TrajectoryBatch (states (B, K, S), returns_to_go (B, K)) -> predicted actions (B, K, A)."""

    config_class: ClassVar[type] = BCConfig

    def __init__(self, config: BCConfig) -> None:
        super().__init__()
        self.config = c = config
        state_dim, action_dim = require_dims(c)
        layers: list[nn.Module] = [nn.Linear(c.context_len * state_dim + int(c.condition_on_return), c.d_model)]
        for _ in range(c.n_layers - 1):
            layers += [nn.ReLU(), FastDropout(c.dropout), nn.Linear(c.d_model, c.d_model)]
        layers += [nn.ReLU(), FastDropout(c.dropout), nn.Linear(c.d_model, action_dim), nn.Tanh()]
        self.mlp = nn.Sequential(*layers)

    def forward(self, batch: TrajectoryBatch) -> Tensor:
        k = self.config.context_len
        states = F.pad(batch.states, (0, 0, k - 1, 0))  # (B, K + k - 1, S): zeros before the window
        history = states.unfold(1, k, 1).transpose(2, 3)  # (B, K, k, S), oldest first
        x = history.flatten(2)  # (B, K, k S)
        if self.config.condition_on_return:
            x = torch.cat([x, batch.returns_to_go[..., None].to(x.dtype)], dim=-1)  # (B, K, k S + 1)
        return self.mlp(x)  # (B, K, A)
