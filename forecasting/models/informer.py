"""Informer: ProbSparse self-attention, self-attention distilling and a generative decoder.

The encoder embeds the look-back (circular Conv1d value embedding + sinusoidal positions + a
linear map of the calendar features), runs post-norm layers with ProbSparse self-attention, and
halves the length between layers with a distilling convolution. The decoder reads the last
`label_len` known steps followed by zeros for the H future steps (with the future calendar
features), applies masked ProbSparse self-attention and full cross-attention to the encoder
output, and predicts all H steps in one forward pass.

Paper: Haoyi Zhou, Shanghang Zhang, Jieqi Peng, Shuai Zhang, Jianxin Li, Hui Xiong, Wancai Zhang,
"Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting", AAAI 2021,
arXiv:2012.07436.

Reference behaviour matched: zhouhaoyi/Informer2020@29f2a73 `models/model.py`, `models/attn.py`,
`models/encoder.py`, `models/decoder.py`, `models/embed.py`, `exp/exp_informer.py` (decoder input).
`variant="tslib"` switches to the Time-Series-Library port (thuml/Time-Series-Library@4e938a1
`models/Informer.py`): ProbSparse also in cross-attention, the head-interleaving `mix` read in
every ProbSparse layer, distilling padding 2 (96 -> 98 -> 49) and bias-free value and time-feature
embeddings.

Deviations (bug fixes, see `seqlab.nn.ProbSparseAttention`):
- ProbSparse samples at least one key and keeps at least one query, so pred_len=1 with
  label_len=0 works (the reference computes factor * ceil(ln 1) = 0 and fails).
- The distilling convolution's padding is 1, chosen by the model, not by comparing torch version
  strings (`'1.10' >= '1.5'` is False as strings, so the reference picks 2 on torch 1.10-1.13).
- Key sampling is reproducible: the Trainer's seeded generator in training, a fixed generator at
  inference (the same model always gives the same forecast).
- The FFN uses Linear layers instead of kernel-size-1 Conv1d (the same map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from seqlab.config import require_heads, require_positive, require_probability
from seqlab.nn import (
    AttentionMask,
    ConvTokenEmbedding,
    Decoder,
    DecoderLayer,
    FastDropout,
    FeedForward,
    FullAttention,
    MultiHeadAttention,
    ProbSparseAttention,
    SinusoidalPositionalEmbedding,
    TimeFeatureEmbedding,
    encoder_stack,
)


@dataclass(frozen=True)
class InformerConfig:
    seq_len: int = 96
    """Look-back length L (`seq_len`)."""
    horizon: int = 96
    """Forecast horizon H (`pred_len`)."""
    label_len: int = 48
    """Known steps that start the decoder input (`label_len`), at most L."""
    n_variates: int | None = None
    """Series N (`enc_in` = `dec_in` = `c_out`); None: taken from the data."""
    n_time_features: int | None = None
    """Calendar features k per step; None: taken from the data's frequency."""
    d_model: int = 512
    n_heads: int = 8
    n_layers: int = 2
    """Encoder layers (`e_layers`)."""
    n_decoder_layers: int = 1
    """Decoder layers (`d_layers`)."""
    d_ff: int = 2048
    factor: int = 5
    """ProbSparse sampling factor c: c * ceil(ln L) queries and sampled keys."""
    dropout: float = 0.05
    activation: Literal["gelu", "relu"] = "gelu"
    attention: Literal["prob", "full"] = "prob"
    """Self-attention kernel; "full" gives the paper's Informer-dagger ablation."""
    distil: bool = True
    """Halve the length between encoder layers."""
    mix: bool = True
    """Informer's head-interleaving read of the decoder self-attention output."""
    variant: Literal["original", "tslib"] = "original"

    def __post_init__(self) -> None:
        require_positive(self, "seq_len", "horizon", "d_model", "n_heads", "n_layers", "n_decoder_layers", "d_ff",
                         "factor")
        if not 0 <= self.label_len <= self.seq_len:
            raise ValueError(f"label_len must be in [0, seq_len={self.seq_len}], got {self.label_len}")
        require_heads(self)
        require_probability(self, "dropout")


class DataEmbedding(nn.Module):
    """Values + positions + calendar features. x: (B, L, N), marks: (B, L, k) | None -> (B, L, D)."""

    def __init__(self, n_variates: int, n_time_features: int, d_model: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.value = ConvTokenEmbedding(n_variates, d_model, bias=bias)
        self.position = SinusoidalPositionalEmbedding(d_model)
        self.time = TimeFeatureEmbedding(n_time_features, d_model, bias=bias) if n_time_features else None
        self.dropout = FastDropout(dropout)

    def forward(self, x: Tensor, marks: Tensor | None) -> Tensor:
        h = self.value(x) + self.position(x)
        if self.time is not None and marks is not None:
            h = h + self.time(marks)
        return self.dropout(h)


class DistillingConv(nn.Module):
    """Conv1d(k=3, circular) -> BatchNorm -> ELU -> MaxPool(3, stride 2): (B, L, D) -> (B, ~L/2, D)."""

    def __init__(self, d_model: int, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=padding, padding_mode="circular")
        self.norm = nn.BatchNorm1d(d_model)
        self.act = nn.ELU()
        self.pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pool(self.act(self.norm(self.conv(x.transpose(1, 2)))))  # (B, D, L')
        return y.transpose(1, 2)


class Informer(nn.Module):
    """(x: (B, L, N), x_mark: (B, L, k) | None, y_mark: (B, H, k) | None) -> (B, H, N)."""

    config_class: ClassVar[type] = InformerConfig

    def __init__(self, config: InformerConfig) -> None:
        super().__init__()
        if config.n_variates is None:
            raise ValueError("InformerConfig.n_variates must be set (the experiment fills it from the data)")
        self.config = c = config
        tslib = c.variant == "tslib"
        n_marks = c.n_time_features or 0

        def self_kernel() -> nn.Module:
            return ProbSparseAttention(c.factor) if c.attention == "prob" else FullAttention(c.dropout)

        def attention(kernel: nn.Module, mix: bool) -> MultiHeadAttention:
            return MultiHeadAttention(c.d_model, c.n_heads, kernel, mix=mix)

        def feed_forward() -> FeedForward:
            return FeedForward(c.d_model, c.d_ff, c.dropout, c.activation)

        self.enc_embed = DataEmbedding(c.n_variates, n_marks, c.d_model, c.dropout, bias=not tslib)
        self.dec_embed = DataEmbedding(c.n_variates, n_marks, c.d_model, c.dropout, bias=not tslib)
        distilling = [DistillingConv(c.d_model, padding=2 if tslib else 1) for _ in range(c.n_layers - 1)]
        self.encoder = encoder_stack(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation,
                                     kernel=self_kernel, between=distilling if c.distil else (),
                                     mix=tslib and c.attention == "prob")  # TSLib reads every ProbSparse output mixed
        self.decoder = Decoder(
            [
                DecoderLayer(
                    attention(self_kernel(), c.mix),
                    attention(ProbSparseAttention(c.factor), True) if tslib else attention(FullAttention(c.dropout), False),
                    feed_forward(),
                    c.d_model,
                    c.dropout,
                )
                for _ in range(c.n_decoder_layers)
            ],
            norm=nn.LayerNorm(c.d_model),
        )
        self.head = nn.Linear(c.d_model, c.n_variates)

    def forward(self, x: Tensor, x_mark: Tensor | None = None, y_mark: Tensor | None = None) -> Tensor:
        c = self.config
        b, length, n = x.shape
        # Decoder input: the last label_len known values, then zeros in place of the horizon.
        known = x[:, length - c.label_len :]  # (B, label_len, N)
        dec_x = torch.cat([known, x.new_zeros(b, c.horizon, n)], dim=1)  # (B, label_len + H, N)
        dec_mark = None
        if x_mark is not None and y_mark is not None:
            dec_mark = torch.cat([x_mark[:, length - c.label_len :], y_mark], dim=1)  # (B, label_len + H, k)
        memory = self.encoder(self.enc_embed(x, x_mark))  # (B, ~L / 2^(n_layers-1), D)
        h = self.decoder(self.dec_embed(dec_x, dec_mark), memory, self_mask=AttentionMask(causal=True))
        return self.head(h)[:, -c.horizon :]  # (B, H, N)
