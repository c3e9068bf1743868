"""Embeddings: positions, timesteps and calendar time features.

Each returns a tensor to be *added* to token embeddings of width D.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalPositionalEmbedding(nn.Module):
    """Fixed sin/cos position code of "Attention Is All You Need".

    Even channels 2i hold sin(pos / 10000^(2i/D)), odd channels cos of the same angle. x: (B, L, ...)
    -> (1, L, D), the code of positions 0..L-1.
    """

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div[: d_model // 2])
        self.register_buffer("pe", pe[None], persistent=False)
        self.max_len = max_len

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        return self.pe[:, :length]


class LearnedPositionalEmbedding(nn.Module):
    """One trainable vector per position. x: (B, L, ...) -> (1, L, D)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        if length > self.weight.shape[1]:
            raise ValueError(f"sequence length {length} exceeds max_len={self.weight.shape[1]}")
        return self.weight[:, :length]


class TimestepEmbedding(nn.Module):
    """Learned embedding of an integer timestep (the episode step of Decision Transformer).

    timesteps: (B, L) int64 in [0, max_timestep) -> (B, L, D).
    """

    def __init__(self, max_timestep: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_timestep, d_model)

    def forward(self, timesteps: Tensor) -> Tensor:
        return self.embedding(timesteps)


class TimeFeatureEmbedding(nn.Module):
    """Linear map of k continuous calendar features (the references' `timeF` embedding).

    marks: (B, L, k) -> (B, L, D). Informer2020 uses a bias, Time-Series-Library does not.
    """

    def __init__(self, n_features: int, d_model: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(n_features, d_model, bias=bias)

    def forward(self, marks: Tensor) -> Tensor:
        return self.proj(marks)


class ConvTokenEmbedding(nn.Module):
    """Value embedding of multivariate series by a width-3 circular convolution over time.

    x: (B, L, N) -> (B, L, D). The token embedding of Informer, Autoformer and their successors;
    Kaiming-normal init (fan_in, leaky_relu) as in their reference code.
    """

    def __init__(self, n_variates: int, d_model: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_variates, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=bias)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)
