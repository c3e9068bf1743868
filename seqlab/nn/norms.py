"""Instance normalization for forecasting inputs (RevIN and its non-affine variants)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class InstanceStats:
    """Per-instance, per-variate statistics of one input window: (B, 1, N) each."""

    loc: Tensor
    scale: Tensor


class RevIN(nn.Module):
    """Reversible instance normalization (Kim et al., ICLR 2022).

    Normalizes each variate of each window by its own mean and standard deviation over time, and
    maps outputs back with the same statistics. The statistics are returned to the caller rather
    than stored on the module, so one module can serve concurrent or nested calls.

    Args:
        n_variates: number of variates N (needed only for the affine weights).
        affine: learn a per-variate scale and shift applied after normalization.
        eps: added to the variance before the square root.
        subtract_last: centre on the last value of the window instead of the mean.
        detach_std: stop gradients through the standard deviation. RevIN detaches both
            statistics; the non-stationary normalization of iTransformer detaches only the mean.
    """

    def __init__(
        self,
        n_variates: int | None = None,
        affine: bool = True,
        eps: float = 1e-5,
        subtract_last: bool = False,
        detach_std: bool = True,
    ) -> None:
        super().__init__()
        if affine and n_variates is None:
            raise ValueError("RevIN(affine=True) needs n_variates")
        self.eps = eps
        self.subtract_last = subtract_last
        self.detach_std = detach_std
        self.affine_weight = nn.Parameter(torch.ones(n_variates)) if affine else None
        self.affine_bias = nn.Parameter(torch.zeros(n_variates)) if affine else None

    def normalize(self, x: Tensor) -> tuple[Tensor, InstanceStats]:
        """x: (B, L, N) -> normalized (B, L, N) and the statistics to invert it."""
        loc = x[:, -1:, :] if self.subtract_last else x.mean(dim=1, keepdim=True)
        loc = loc.detach()
        scale = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        if self.detach_std:
            scale = scale.detach()
        x = (x - loc) / scale
        if self.affine_weight is not None:
            x = x * self.affine_weight + self.affine_bias
        return x, InstanceStats(loc, scale)

    def denormalize(self, y: Tensor, stats: InstanceStats) -> Tensor:
        """y: (B, H, N) in normalized units -> original units of the window it came from."""
        if self.affine_weight is not None:
            y = (y - self.affine_bias) / (self.affine_weight + self.eps * self.eps)
        return y * stats.scale + stats.loc
