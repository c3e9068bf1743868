"""Trend / remainder decomposition of series by moving averages (Autoformer, DLinear, Pathformer)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class MovingAverage(nn.Module):
    """Centred moving average over time that keeps the length. x: (B, L, N) -> (B, L, N).

    The series is padded by repeating its first value k-1-(k-1)//2 times and its last value
    (k-1)//2 times, then averaged with stride 1. For odd k this is the Autoformer/DLinear padding;
    for even k it is Pathformer's, which keeps the length where the former loses one step.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        self.pool = nn.AvgPool1d(kernel_size, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel_size
        end = (k - 1) // 2
        front = k - 1 - end
        padded = torch.cat([x[:, :1].expand(-1, front, -1), x, x[:, -1:].expand(-1, end, -1)], dim=1)
        return self.pool(padded.transpose(1, 2)).transpose(1, 2)


class SeriesDecomposition(nn.Module):
    """x -> (remainder, trend) with trend = MovingAverage(k)(x). x: (B, L, N)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.moving_average = MovingAverage(kernel_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        trend = self.moving_average(x)
        return x - trend, trend


class MultiScaleDecomposition(nn.Module):
    """Trend as a learned, per-element softmax mixture of moving averages of several widths.

    The mixing weights come from Linear(1, n_kernels) applied to each value (Pathformer's
    `series_decomp_multi`). x: (B, L, N) -> (remainder, trend).
    """

    def __init__(self, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.averages = nn.ModuleList(MovingAverage(k) for k in kernel_sizes)
        self.mix = nn.Linear(1, len(kernel_sizes))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        trends = torch.stack([avg(x) for avg in self.averages], dim=-1)  # (B, L, N, K)
        weights = torch.softmax(self.mix(x.unsqueeze(-1)), dim=-1)  # (B, L, N, K)
        trend = (trends * weights).sum(dim=-1)
        return x - trend, trend
