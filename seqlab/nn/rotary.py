"""Rotary position embedding (RoPE) of a continuous coordinate.

Queries and keys are rotated, pair of channels by pair of channels, by angles proportional to
their position p, so that the product of a rotated query at p and a rotated key at p' depends on
p - p' only (Su et al., "RoFormer", arXiv:2104.09864). Positions may be integer token indices or
physical coordinates (FactFormer rotates with the grid coordinate of each axis).

The channel layout is the half split of x-transformers / GPT-NeoX, which FactFormer uses
(BaratiLab/FactFormer@c9801d1 `libs/positional_encoding_module.py: RotaryEmbedding`): channel i
pairs with channel i + E/2, and pair i turns by

    theta_i(p) = p * (scale / min_freq) * base^(-2i / E),      i = 0 .. E/2 - 1.

`min_freq=1/64` (FactFormer) stretches coordinates on [0, 2*pi] over ~400 radians of the
fastest pair; `min_freq=1, scale=1` with integer positions is the usual RoPE.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """Rotate the last dimension of x by the angles of its positions.

    Args:
        dim: channels E that are rotated (even); the last dimension of the inputs.
        min_freq: positions are multiplied by scale / min_freq before the frequencies apply.
        scale: see min_freq.
        base: the geometric base of the frequencies (10000 in the papers).

    forward(x: (..., N, E), coords: (N,) or (..., N)) -> (..., N, E), same dtype as x.
    """

    def __init__(self, dim: int, min_freq: float = 1.0, scale: float = 1.0, base: float = 10000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"rotary dim must be even and >= 2, got {dim}")
        if min_freq <= 0 or scale <= 0 or base <= 1:
            raise ValueError(f"need min_freq > 0, scale > 0, base > 1; got {min_freq}, {scale}, {base}")
        self.dim = dim
        self.stretch = scale / min_freq
        inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (E/2,)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def angles(self, coords: Tensor) -> Tensor:
        """coords (..., N) -> angles (..., N, E/2) in radians, computed in float32."""
        return (coords.float() * self.stretch)[..., None] * self.inv_freq

    def forward(self, x: Tensor, coords: Tensor) -> Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"rotary embedding of width {self.dim} got inputs of width {x.shape[-1]}")
        angles = self.angles(coords.to(x.device))  # (..., N, E/2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)  # (..., N, E/2) each: the two channels of every pair
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
