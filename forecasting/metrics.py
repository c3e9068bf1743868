"""Forecast errors accumulated over a whole split.

Sums are kept per variate in float64 and divided once at the end, so the result is the mean over
every window, step and variate, whatever the batch size. Errors in original units come from the
same sums: a z-scored error e of variate v is e * std_v in the units of the data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class ErrorAccumulator:
    """Streaming MSE / MAE on the scaled data and in original units.

    Args:
        scale: (N,) standard deviations used to z-score each variate (None: report scaled only).
    """

    def __init__(self, scale: np.ndarray | None = None) -> None:
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.sq = None
        self.abs = None
        self.count = 0

    def update(self, pred: Tensor, target: Tensor) -> None:
        """pred, target: (B, H, N) in scaled units."""
        err = pred.detach().double() - target.detach().double()
        sq = (err**2).sum(dim=(0, 1)).cpu().numpy()
        ab = err.abs().sum(dim=(0, 1)).cpu().numpy()
        self.sq = sq if self.sq is None else self.sq + sq
        self.abs = ab if self.abs is None else self.abs + ab
        self.count += err.shape[0] * err.shape[1]

    def per_variate(self) -> dict[str, np.ndarray]:
        """(N,) arrays: mse, mae (scaled) and, with a scale, mse_orig, mae_orig."""
        if self.count == 0:
            raise ValueError("no predictions were accumulated")
        out = {"mse": self.sq / self.count, "mae": self.abs / self.count}
        if self.scale is not None:
            out["mse_orig"] = out["mse"] * self.scale**2
            out["mae_orig"] = out["mae"] * np.abs(self.scale)
        return out

    def result(self) -> dict[str, float]:
        """Means over variates of `per_variate`, plus rmse."""
        out = {name: float(values.mean()) for name, values in self.per_variate().items()}
        out["rmse"] = float(np.sqrt(out["mse"]))
        return out


def mse(pred: Tensor, target: Tensor) -> Tensor:
    return torch.mean((pred - target) ** 2)


def mae(pred: Tensor, target: Tensor) -> Tensor:
    return torch.mean((pred - target).abs())
