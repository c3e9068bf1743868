"""iTransformer: attention over variates instead of time steps.

Each variate's whole look-back window becomes one token (a linear map of its L values); a
post-norm Transformer encoder mixes the N variate tokens; a linear head maps each token to its H
future values. Calendar features enter as extra tokens, one per feature.

Paper: Yong Liu, Tengge Hu, Haoran Zhang, Haixu Wu, Shiyu Wang, Lintao Ma, Mingsheng Long,
"iTransformer: Inverted Transformers Are Effective for Time Series Forecasting", ICLR 2024,
arXiv:2310.06625.

Reference behaviour matched: thuml/iTransformer@c2426e6 `model/iTransformer.py`,
`layers/Embed.py` (DataEmbedding_inverted), `layers/Transformer_EncDec.py`,
`layers/SelfAttention_Family.py`: non-stationary normalization of the look-back (mean detached,
std = sqrt(var + 1e-5) not detached, no affine), `Linear(L, D)` embedding + dropout, time-feature
tokens appended (the official `timeF` default), post-norm encoder layers with dropout on the
attention weights, after attention and inside the feed-forward, a final LayerNorm, and
`Linear(D, H)` whose outputs for the time-feature tokens are discarded. PyTorch default init.

Deviations:
- The feed-forward uses Linear layers instead of kernel-size-1 Conv1d: the same map, the same
  default initialization distribution.
- Attention runs through `scaled_dot_product_attention` (same math, fused kernel).
- `output_attention` is not offered (it is broken in the reference's experiment code).
- Speed-up: the last layer and the head run at the N variate tokens only (the reference computes
  the time tokens' outputs there and discards them); keys and values still come from every token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from seqlab.config import require_heads, require_positive, require_probability
from seqlab.nn import FastDropout, RevIN, encoder_stack


@dataclass(frozen=True)
class ITransformerConfig:
    seq_len: int = 96
    """Look-back length L (`seq_len`)."""
    horizon: int = 96
    """Forecast horizon H (`pred_len`)."""
    d_model: int = 512
    """Token width D."""
    n_heads: int = 8
    """Attention heads (`n_heads`)."""
    n_layers: int = 2
    """Encoder layers (`e_layers`)."""
    d_ff: int = 2048
    """Hidden width of the feed-forward (`d_ff`)."""
    dropout: float = 0.1
    activation: Literal["gelu", "relu"] = "gelu"
    use_norm: bool = True
    """Normalize each look-back window per variate and de-normalize the forecast (`use_norm`)."""
    use_time_tokens: bool = True
    """Append one token per calendar feature (the reference's default `embed=timeF`)."""

    def __post_init__(self) -> None:
        require_positive(self, "seq_len", "horizon", "d_model", "n_heads", "n_layers", "d_ff")
        require_heads(self)
        require_probability(self, "dropout")


class ITransformer(nn.Module):
    """(x: (B, L, N), x_mark: (B, L, k) | None, y_mark: unused) -> (B, H, N)."""

    config_class: ClassVar[type] = ITransformerConfig

    def __init__(self, config: ITransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.norm = RevIN(affine=False, detach_std=False) if c.use_norm else None
        self.embed = nn.Linear(c.seq_len, c.d_model)
        self.embed_dropout = FastDropout(c.dropout)
        # Post-norm layers with full attention over the variate tokens, then a final LayerNorm.
        self.encoder = encoder_stack(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation)
        self.head = nn.Linear(c.d_model, c.horizon)

    def forward(self, x: Tensor, x_mark: Tensor | None = None, y_mark: Tensor | None = None) -> Tensor:
        n_variates = x.shape[-1]
        if self.norm is not None:
            x, stats = self.norm.normalize(x)  # (B, L, N), stats (B, 1, N)
        tokens = x.transpose(1, 2)  # (B, N, L): one token per variate
        if self.config.use_time_tokens and x_mark is not None:
            tokens = torch.cat([tokens, x_mark.transpose(1, 2).to(tokens.dtype)], dim=1)  # (B, N + k, L)
        h = self.embed_dropout(self.embed(tokens))  # (B, N + k, D)
        h = self.encoder(h, outputs=slice(0, n_variates))  # (B, N, D): the time tokens' outputs go unread
        y = self.head(h).transpose(1, 2)  # (B, H, N)
        if self.norm is not None:
            y = self.norm.denormalize(y, stats)
        return y

