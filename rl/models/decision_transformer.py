"""Decision Transformer: offline RL as return-conditioned sequence modelling.

A trajectory window of K steps becomes 3K tokens, interleaved per step as (R̂_t, s_t, a_t): the
return-to-go, the state and the action, each mapped to width D by its own linear layer, plus one
learned timestep embedding shared by the three tokens of a step. After LayerNorm on the embedded
sequence, causal GPT-2 blocks mix the tokens, and the action a_t is read from the output at the
*state* token s_t (which has seen R̂_<=t, s_<=t and a_<t) through Linear + tanh. Training
minimizes the MSE between predicted and dataset actions on real (unpadded) steps (`rl.task`).

Paper: Lili Chen, Kevin Lu, Aravind Rajeswaran, Kimin Lee, Aditya Grover, Michael Laskin,
Pieter Abbeel, Aravind Srinivas, Igor Mordatch, "Decision Transformer: Reinforcement Learning
via Sequence Modeling", NeurIPS 2021, arXiv:2106.01345.

Reference behaviour matched: kzl/decision-transformer@e2d82e6 `gym/decision_transformer/models/
decision_transformer.py` and `trajectory_gpt2.py` (GPT-2 without position embeddings, 4D ReLU
MLP, dropout 0.1 on embeddings, attention weights and residuals, GPT-2 initialization inside the
blocks), `gym/experiment.py` (K = 20, D = 128, 3 layers, 1 head, max_ep_len 1000, RTG scale
1000, AdamW lr 1e-4 / wd 1e-4, 10k linear warm-up steps, gradient clipping 0.25, batch 64).

Deviations:
- No state and return prediction heads: the reference builds them but its gym loss uses only
  actions, so they would be unused parameters.
- Query, key and value are three Linear(D, D) maps instead of GPT-2's one Conv1D(D, 3D): the same
  map, the same N(0, 0.02) initialization.
- Attention runs through `scaled_dot_product_attention`; padded keys are excluded with a boolean
  mask (the reference adds -10000), so real steps cannot see padding at all.
- Timesteps >= max_ep_len are clamped inside the model (the reference clips them in its batch
  loader), so training and evaluation cannot clip differently.
- Padded action entries are 0 (the reference writes -10); they are masked, so nothing changes.
- Speed-up (`rl.models.gpt`): the newest action token, which no action read can see, is not fed to
  the blocks, and the last block computes only the state tokens' outputs (in evaluation only the
  newest one's; with attention dropout, also only their queries and output projections); the same
  actions, 20% fewer matmul FLOPs per training step at the paper's sizes.
- `FastDropout` (`seqlab.nn`): the same dropout with a cheaper CPU mask draw (a different stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from rl.models.gpt import TokenModel, TrajectoryGPTConfig
from rl.sampling import TrajectoryBatch


@dataclass(frozen=True)
class DecisionTransformerConfig(TrajectoryGPTConfig):
    """The DT paper's settings (see `TrajectoryGPTConfig` for each field): K = 20 steps, D = 128,
    3 layers, 1 head, 4D ReLU MLP, dropout 0.1 everywhere, max_ep_len 1000."""


class DecisionTransformer(TokenModel):
    """TrajectoryBatch (states (B, K, S), actions (B, K, A), returns_to_go (B, K), timesteps
    (B, K), padding (B, K) | None) -> predicted actions (B, K, A) in [-1, 1].

    Built by `TokenModel`: Linear embeddings of R̂ (1 -> D), s (S -> D) and a (A -> D), the GPT-2
    trunk `TrajectoryGPT`, and the action head Linear(D, A) + tanh.
    """

    config_class: ClassVar[type] = DecisionTransformerConfig
    tokens_per_step: ClassVar[int] = 3
    state_token: ClassVar[int] = 1  # per step: (return-to-go, state, action)

    def embed(self, batch: TrajectoryBatch) -> Tensor:
        """(B, K) steps -> (B, 3K, D) tokens, ordered R̂_1, s_1, a_1, R̂_2, ..."""
        returns = self.embed_return(batch.returns_to_go[..., None])  # (B, K, D)
        states = self.embed_state(batch.states)  # (B, K, D)
        actions = self.embed_action(batch.actions)  # (B, K, D)
        return self.gpt.tokens([returns, states, actions], batch.timesteps)
