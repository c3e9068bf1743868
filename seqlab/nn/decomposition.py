"""Trend / remainder decomposition of series by moving averages (Autoformer, DLinear, Pathformer)."""

from __future__ import annotations

import math
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


class FourierSeasonality(nn.Module):
    """Seasonal part of a series rebuilt from its k strongest Fourier frequencies.

    Per window and variate: rFFT over time, drop the frequencies below `low_freq` (the mean at 0)
    and, for even L, the Nyquist frequency; keep the k largest by magnitude and rebuild them in time
    as sum 2|X_f|/L cos(2 pi f t + angle(X_f)), t = 0..L-1 (each positive frequency plus its
    conjugate). A pure sinusoid of an integer number of cycles comes back exactly. Pathformer's
    `FourierLayer(pred_len=0)` (Autoformer/ETSformer lineage). Runs in fp32 under autocast.
    x: (B, L, N) -> seasonal (B, L, N), in the dtype of x.

    Args:
        k: frequencies kept (all of them when the window has fewer).
        low_freq: index of the lowest rFFT frequency considered (1 skips the mean).
    """

    def __init__(self, k: int = 3, low_freq: int = 1) -> None:
        super().__init__()
        if k < 1 or low_freq < 0:
            raise ValueError(f"k must be >= 1 and low_freq >= 0, got k={k}, low_freq={low_freq}")
        self.k = k
        self.low_freq = low_freq

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft(x.float(), dim=1)  # (B, L // 2 + 1, N)
            stop = spectrum.shape[1] - 1 if length % 2 == 0 else spectrum.shape[1]
            spectrum = spectrum[:, self.low_freq : stop]  # (B, F, N)
            freqs = torch.fft.rfftfreq(length, device=x.device)[self.low_freq : stop]  # (F,) cycles per step
            k = min(self.k, spectrum.shape[1])
            if k == 0:
                return torch.zeros_like(x)
            top = spectrum.abs().topk(k, dim=1).indices  # (B, k, N)
            coeffs = spectrum.gather(1, top)  # (B, k, N)
            amplitude = (2.0 / length) * coeffs.abs()
            t = torch.arange(length, device=x.device, dtype=torch.float32)[:, None]  # (L, 1)
            waves = torch.cos(2 * math.pi * freqs[top].unsqueeze(2) * t + coeffs.angle().unsqueeze(2))  # (B, k, L, N)
            seasonal = (amplitude.unsqueeze(2) * waves).sum(dim=1)  # (B, L, N)
        return seasonal.to(x.dtype)
