"""The causal trunk shared by the Decision and Agentic Transformers.

Each environment step becomes P tokens (one per modality: return-to-go, state, action, ...).
The trunk adds one learned timestep embedding to all P tokens of a step (it replaces positional
embeddings), interleaves the modalities step by step, applies LayerNorm and dropout to the
embedded sequence, and runs GPT-2 blocks: pre-norm, causal self-attention, a 4D ReLU MLP with
dropout after its output, residual dropout, and a final LayerNorm. This is the GPT-2 of the DT
reference (kzl/decision-transformer@e2d82e6 `gym/decision_transformer/models/trajectory_gpt2.py`,
HF GPT-2 with the position embedding removed), assembled from `seqlab.nn` blocks.

Every step before the blocks is per token, so embedding a slice of steps gives the same tokens as
embedding the whole sequence: the evaluator embeds only the newest tokens and decodes them
against a KV cache (`TrajectoryGPT.new_cache`).

Speed (exact, same outputs up to float rounding): only the state tokens' outputs are ever read.
The tokens after the newest state token are not fed to the blocks (no action read can see them);
the last block runs its feed-forward only at the positions asked for (`outputs`: in training the
K state tokens) and, when only the newest token is asked for (`TokenModel.act`, the evaluator's
one action per step), its attention too, with that one query. On the DT paper config this removes
15% of a training step's matmul FLOPs and 29% of an evaluation step's (docs/benchmarks/rl.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from rl.models.dims import check_dims, require_dims
from rl.sampling import TrajectoryBatch
from seqlab.config import require_heads, require_positive, require_probability
from seqlab.nn import (
    AttentionMask,
    Encoder,
    EncoderLayer,
    FastDropout,
    FullAttention,
    MultiHeadAttention,
    TimestepEmbedding,
)
from seqlab.nn import activation as make_activation
from seqlab.nn.attention import KVCache

LAST = slice(-1, None)
"""`outputs` that asks for the newest token only."""


@dataclass(frozen=True)
class TrajectoryGPTConfig:
    """What the Decision and Agentic Transformers share; defaults are the DT paper's."""

    state_dim: int | None = None
    """State dimension S; None: taken from the data."""
    action_dim: int | None = None
    """Action dimension A; None: taken from the data."""
    context_len: int = 20
    """Context K, in environment steps (K x tokens per step tokens)."""
    max_ep_len: int = 1000
    """Rows of the timestep embedding; later timesteps share the last row."""
    d_model: int = 128
    """Token width D (`embed_dim`)."""
    n_heads: int = 1
    """Attention heads (`n_head`)."""
    n_layers: int = 3
    """GPT-2 blocks (`n_layer`)."""
    d_ff: int | None = None
    """MLP width; None: 4 D (GPT-2's `n_inner`)."""
    dropout: float = 0.1
    """Dropout on the embedded sequence, after attention and after the MLP."""
    attention_dropout: float = 0.1
    """Dropout on the attention weights (GPT-2's `attn_pdrop`)."""
    activation: Literal["relu", "gelu"] = "relu"
    """MLP non-linearity (`activation_function`)."""

    def __post_init__(self) -> None:
        check_dims(self)
        require_positive(self, "context_len", "max_ep_len", "d_model", "n_heads", "n_layers")
        require_heads(self)
        require_probability(self, "dropout", "attention_dropout")
        if self.d_ff is not None:
            require_positive(self, "d_ff")

    @property
    def ff_width(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model


class TrajectoryGPT(nn.Module):
    """(tokens per modality (B, K, D) x P, timesteps (B, K)) -> hidden states (B, K * P, D).

    Args:
        d_model: token width D. n_layers, n_heads: GPT-2 blocks and heads. d_ff: MLP width.
        dropout: on the embedded sequence, after attention and after the MLP.
        attention_dropout: on the attention weights. torch's CPU attention has a memory-efficient
            kernel only without it (with it, an (L, L) matrix per head is materialized).
        activation: MLP non-linearity. max_ep_len: rows of the timestep embedding; later steps
            share the last row (the references clip timesteps to max_ep_len - 1).
    """

    def __init__(self, d_model: int, n_layers: int, n_heads: int, d_ff: int, dropout: float,
                 attention_dropout: float, activation: str, max_ep_len: int) -> None:
        super().__init__()
        self.max_ep_len = max_ep_len
        self.query_subset = attention_dropout > 0  # see _last_block
        self.timestep = TimestepEmbedding(max_ep_len, d_model)
        self.embed_norm = nn.LayerNorm(d_model)
        self.embed_dropout = FastDropout(dropout)
        layers = [
            EncoderLayer(
                MultiHeadAttention(d_model, n_heads, FullAttention(dropout=attention_dropout)),
                # GPT-2's MLP: no dropout between the two linear maps, unlike seqlab's FeedForward.
                nn.Sequential(nn.Linear(d_model, d_ff), make_activation(activation), nn.Linear(d_ff, d_model),
                              FastDropout(dropout)),
                d_model,
                dropout=dropout,
                norm_first=True,
            )
            for _ in range(n_layers)
        ]
        self.blocks = Encoder(layers, norm=nn.LayerNorm(d_model))
        self._init_weights(n_layers)

    def _init_weights(self, n_layers: int) -> None:
        """GPT-2's scheme inside the blocks: N(0, 0.02) weights, zero biases, and residual output
        projections at N(0, 0.02 / sqrt(2 n_layers)). The embeddings keep torch's defaults, as the
        reference's embedding layers (outside its GPT-2) do."""
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for layer in self.blocks.layers:
            for residual in (layer.attention.out_proj, layer.feed_forward[2]):
                nn.init.normal_(residual.weight, std=0.02 / math.sqrt(2 * n_layers))

    def tokens(self, modalities: Sequence[Tensor], timesteps: Tensor) -> Tensor:
        """P tensors (B, K, D) in per-step order, timesteps (B, K) -> (B, K * P, D), normalized."""
        time = self.timestep(timesteps.clamp(max=self.max_ep_len - 1))  # (B, K, D), shared by a step's tokens
        stacked = torch.stack([m + time for m in modalities], dim=2)  # (B, K, P, D)
        b, k, p, d = stacked.shape
        return self.embed_dropout(self.embed_norm(stacked.reshape(b, k * p, d)))  # (B, K * P, D)

    def forward(self, tokens: Tensor, padding: Tensor | None = None, cache: Sequence[KVCache] | None = None,
                outputs: slice | None = None) -> Tensor:
        """tokens: (B, L, D); padding: (B, L) bool, True at padded tokens (with a cache: (B, cached + L)).

        cache: one KVCache per block; `tokens` are then the newest ones, after the cached.
        outputs: the positions whose hidden states are returned, a slice of the L tokens (None: all);
        -> (B, L', D) for the L' positions of the slice.
        """
        mask = AttentionMask(causal=True, key_padding=padding)
        if outputs is None:
            return self.blocks(tokens, mask=mask, cache=cache)
        layers = self.blocks.layers
        caches = list(cache) if cache is not None else [None] * len(layers)
        x = tokens
        for layer, layer_cache in zip(layers[:-1], caches[:-1]):
            x = layer(x, mask=mask, cache=layer_cache)
        return self.blocks.norm(self._last_block(layers[-1], x, mask, outputs, caches[-1]))

    def _last_block(self, layer: EncoderLayer, x: Tensor, mask: AttentionMask, outputs: slice,
                    cache: KVCache | None) -> Tensor:
        """The pre-norm `EncoderLayer` computed at `outputs` only: (B, L, D) -> (B, L', D).

        Its keys and values still come from every token. The newest token (`LAST`) sees every key
        and needs no causal mask. Other outputs query only their own positions when the attention
        weights are materialized anyway (dropout on them); otherwise the causal pass runs over all
        queries, so that long chains keep the fused kernel, which builds no (L', L) mask.
        """
        if outputs == LAST:
            return layer(x, mask=AttentionMask(key_padding=mask.key_padding), cache=cache, outputs=LAST)
        if self.query_subset:
            return layer(x, mask=mask, cache=cache, outputs=outputs)
        h = layer.norm1(x)  # (B, L, D)
        x = x[:, outputs] + layer.dropout(layer.attention(h, mask=mask, cache=cache)[:, outputs])  # (B, L', D)
        return x + layer.feed_forward(layer.norm2(x))

    def new_cache(self, max_tokens: int) -> list[KVCache]:
        """Empty caches, one per block, for up to `max_tokens` tokens."""
        return [KVCache(max_tokens) for _ in self.blocks.layers]


class TokenModel(nn.Module):
    """A model whose steps are `tokens_per_step` tokens decoded by a `TrajectoryGPT`.

    Built here: a linear embedding each for return-to-go, state and action, the `TrajectoryGPT`
    trunk, and the action head Linear(D, A) + tanh. Subclasses add their other modalities and
    write `embed`; the forward pass and the pieces the evaluator's KV-cache path calls (`embed`,
    `gpt`, `predict_action`) are shared. TrajectoryBatch over (B, K) steps -> actions (B, K, A).
    """

    tokens_per_step: ClassVar[int]
    """P: tokens per environment step."""
    state_token: ClassVar[int]
    """Index of the state token within a step; the action is read from its output."""

    def __init__(self, config: TrajectoryGPTConfig) -> None:
        super().__init__()
        self.config = c = config
        state_dim, action_dim = require_dims(c)
        self.embed_return = nn.Linear(1, c.d_model)
        self.embed_state = nn.Linear(state_dim, c.d_model)
        self.embed_action = nn.Linear(action_dim, c.d_model)
        self.gpt = TrajectoryGPT(c.d_model, c.n_layers, c.n_heads, c.ff_width, c.dropout, c.attention_dropout,
                                 c.activation, c.max_ep_len)
        self.action_head = nn.Sequential(nn.Linear(c.d_model, action_dim), nn.Tanh())

    def embed(self, batch: TrajectoryBatch) -> Tensor:
        """(B, K) steps -> (B, K * P, D) normalized tokens."""
        raise NotImplementedError

    def predict_action(self, hidden: Tensor) -> Tensor:
        """Outputs at state tokens (..., D) -> actions (..., A)."""
        return self.action_head(hidden)

    def _tokens(self, batch: TrajectoryBatch) -> tuple[Tensor, Tensor | None]:
        """Embedded tokens up to the newest state token, (B, n, D), and their padding (B, n) | None.
        The tokens after it (the newest action, ...) cannot influence any action read, so are dropped."""
        p = self.tokens_per_step
        n = (batch.states.shape[1] - 1) * p + self.state_token + 1
        tokens = self.embed(batch)[:, :n]
        padding = None if batch.padding is None else batch.padding.repeat_interleave(p, dim=1)[:, :n]
        return tokens, padding

    def forward(self, batch: TrajectoryBatch) -> Tensor:
        tokens, padding = self._tokens(batch)
        hidden = self.gpt(tokens, padding, outputs=slice(self.state_token, None, self.tokens_per_step))  # (B, K, D)
        return self.predict_action(hidden)  # (B, K, A)

    def act(self, batch: TrajectoryBatch) -> Tensor:
        """The newest step's action (B, A): `forward(batch)[:, -1]` with the last block run at the
        newest state token only."""
        tokens, padding = self._tokens(batch)
        return self.predict_action(self.gpt(tokens, padding, outputs=LAST)[:, 0])  # (B, A)
