"""DLinear: a moving-average split into trend and remainder, one linear map over time for each.

Paper: Ailing Zeng, Muxi Chen, Lei Zhang, Qiang Xu, "Are Transformers Effective for Time Series
Forecasting?", AAAI 2023, arXiv:2205.13504.

Reference behaviour matched: thuml/Time-Series-Library@4e938a1 `models/DLinear.py` (the version
in the benchmark tables): moving average of width 25 with edge replication, `Linear(L, H)` for
the remainder and for the trend, shared by all variates (`individual=False`) or one pair per
variate, weights initialized to 1/L.

Deviations: none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from seqlab.nn.decomposition import SeriesDecomposition


@dataclass(frozen=True)
class DLinearConfig:
    seq_len: int = 96
    """Look-back length L."""
    horizon: int = 96
    """Forecast horizon H."""
    n_variates: int | None = None
    """Series N (needed only with `individual`); None: taken from the data."""
    moving_avg: int = 25
    """Width of the moving average that extracts the trend."""
    individual: bool = False
    """One pair of linear maps per variate instead of one shared pair."""

    def __post_init__(self) -> None:
        for name in ("seq_len", "horizon", "moving_avg"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class DLinear(nn.Module):
    """(x: (B, L, N), x_mark: unused, y_mark: unused) -> (B, H, N)."""

    config_class: ClassVar[type] = DLinearConfig

    def __init__(self, config: DLinearConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.individual and c.n_variates is None:
            raise ValueError("DLinearConfig.n_variates must be set when individual=True")
        self.decompose = SeriesDecomposition(c.moving_avg)
        n_maps = c.n_variates if c.individual else 1
        self.seasonal = nn.Parameter(torch.full((n_maps, c.horizon, c.seq_len), 1.0 / c.seq_len))
        self.trend = nn.Parameter(torch.full((n_maps, c.horizon, c.seq_len), 1.0 / c.seq_len))
        bound = 1.0 / c.seq_len**0.5  # nn.Linear's default bias init
        self.seasonal_bias = nn.Parameter(torch.empty(n_maps, c.horizon).uniform_(-bound, bound))
        self.trend_bias = nn.Parameter(torch.empty(n_maps, c.horizon).uniform_(-bound, bound))

    def forward(self, x: Tensor, x_mark: Tensor | None = None, y_mark: Tensor | None = None) -> Tensor:
        remainder, trend = self.decompose(x)  # (B, L, N) each
        # (B, L, N) x (N or 1, H, L) -> (B, H, N): each variate's window through its own (or the shared) map
        out = torch.einsum("bln,nhl->bhn", remainder, self.seasonal.expand(x.shape[-1], -1, -1))
        out = out + torch.einsum("bln,nhl->bhn", trend, self.trend.expand(x.shape[-1], -1, -1))
        return out + (self.seasonal_bias + self.trend_bias).T  # bias: (H, N or 1)
