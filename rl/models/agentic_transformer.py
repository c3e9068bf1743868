"""Agentic Transformer: a Decision Transformer trained on chains of hindsight experience.

Training sequences are chains of several trajectories sorted ascending by total return, every
trajectory's return-to-go relabelled to the chain's best return, so the model sees attempts get
better and learns to improve on what is already in its context. Each step is five tokens, in
this order: return-to-go R̂_t, state s_t, action a_t, reward r_t and task completion d_t; the
action is read from the state token (which has seen every earlier token of the chain) through
Linear + tanh, and trained with MSE (autoregressive action prediction). At test time n trials run
back to back in one context, the target reset at the start of each (`rl.evaluate`).

Paper: Hao Liu, Pieter Abbeel, "Emergent Agentic Transformer from Chain of Hindsight Experience",
ICML 2023, arXiv:2305.16554. No official code exists; the facts used are the abstract and the
hyper-parameter table quoted by a reproducibility summary (3 layers, 1 head, D = 128, ReLU,
batch 64). The mechanics the paper leaves open are decided as below (research notes rl.md §2.6,
rl2.md §1; suessmann/Agentic-Transformer-Pytorch@758839c was read for its choices, not copied).

Choices the paper leaves open:
- Chains (`rl.sampling.ChainSampler`): n ~ uniform{min_trajectories..n_trajectories}
  trajectories per chain (the reproduction draws 1..n_max - 1), each drawn with probability proportional to its length (with
  replacement), sorted ascending by total return (ties keep draw order).
- Relabelling: in every trajectory R̂_t = R_max - (reward collected before t in that
  trajectory), R_max the chain's best total return (gamma = 1), divided by the RTG scale.
- Reward token: r_t divided by the same RTG scale, so R̂_(t+1) = R̂_t - r_t in model units.
- Completion token: d_t = 1 at steps where the trajectory's reward so far, step t's included, is
  at least R_max (R̂_(t+1) <= 0), else 0; in the best trajectory with non-negative rewards that is
  its last step only (the reproduction's rule); at test time the same rule against the commanded
  target. A learned 2-row embedding.
- Timesteps restart at 0 with every trajectory (clamped at max_ep_len - 1).
- Loss: loss_on="last" (default) trains only the actions of the last, best trajectory of a
  chain, as the reproduction does; "all" trains every trajectory's actions.
- Context: a window of `context_len` steps cut from the chain, ending at a step drawn uniformly
  among the loss-carrying steps; chains shorter than the window are right-padded. The paper puts
  whole chains (n x 1000 steps) in context; `context_len` >= n_trajectories x max_ep_len does so.
- Evaluation: n_trajectories trials back to back in one context; first-trial, last-trial and
  max-over-n returns are all reported (the paper reports the max, an upward-biased number).

Deviations (from a plain DT trunk): attention dropout defaults to 0, because torch's CPU
attention keeps its memory-efficient kernel only without it (measured: a 4096-token causal pass,
batch 4, used 48 MB without and 1.1 GB with attention dropout); residual and embedding dropout
stay at 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import Tensor, nn

from rl.models.gpt import TokenModel, TrajectoryGPTConfig
from rl.sampling import TrajectoryBatch
from seqlab.config import require_positive
from seqlab.errors import ConfigError


@dataclass(frozen=True)
class AgenticTransformerConfig(TrajectoryGPTConfig):
    """`TrajectoryGPTConfig` (AT's Table 5: D = 128, 3 layers, 1 head, ReLU) plus the chain settings."""

    context_len: int = 4000
    """Context K in environment steps (5K tokens); the default holds whole chains of 4 x 1000 steps."""
    attention_dropout: float = 0.0
    """Dropout on the attention weights; 0 keeps the memory-efficient attention kernel on CPU."""
    n_trajectories: int = 4
    """Most trajectories per training chain, and trials per evaluation context (n)."""
    min_trajectories: int = 1
    """Fewest trajectories per training chain."""
    loss_on: Literal["last", "all"] = "last"
    """Which trajectories of a chain carry the action loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "n_trajectories", "min_trajectories")
        if self.min_trajectories > self.n_trajectories:
            raise ConfigError(
                f"min_trajectories={self.min_trajectories} must not exceed n_trajectories={self.n_trajectories}")


class AgenticTransformer(TokenModel):
    """TrajectoryBatch (states, actions, returns_to_go, rewards, completions, timesteps over
    (B, K)) -> predicted actions (B, K, A) in [-1, 1]."""

    config_class: ClassVar[type] = AgenticTransformerConfig
    tokens_per_step: ClassVar[int] = 5
    state_token: ClassVar[int] = 1  # per step: (return-to-go, state, action, reward, completion)

    def __init__(self, config: AgenticTransformerConfig) -> None:
        # Linear embeddings of R̂, s and a; the GPT-2 trunk; Linear(D, A) + tanh (see TokenModel).
        super().__init__(config)
        self.embed_reward = nn.Linear(1, config.d_model)
        self.embed_completion = nn.Embedding(2, config.d_model)  # d_t in {0, 1}

    def embed(self, batch: TrajectoryBatch) -> Tensor:
        """(B, K) steps -> (B, 5K, D) tokens, ordered R̂_1, s_1, a_1, r_1, d_1, R̂_2, ..."""
        modalities = [
            self.embed_return(batch.returns_to_go[..., None]),  # (B, K, D)
            self.embed_state(batch.states),
            self.embed_action(batch.actions),
            self.embed_reward(batch.rewards[..., None]),
            self.embed_completion(batch.completions),
        ]
        return self.gpt.tokens(modalities, batch.timesteps)
