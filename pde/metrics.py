"""Rollout errors as the PDE-surrogate literature defines them, on (B, T, C, *S) tensors.

`pred` and `target` hold B trajectories of T predicted steps (step 1 is the first prediction,
not a copied input frame), C channels and the spatial grid S = (X,) or (Y, X). Means over S are
plain grid means (uniform grids). Notation: e = pred - target, <.>_S the mean over grid points.

- relative L2 (FNO / neuraloperator `LpLoss`, FactFormer): ||e||_2 / ||target||_2 per sample,
  over every step, channel and point (FactFormer's norm over the whole (t, x, y) block); or per
  step, over channels and points.
- nRMSE (PDEBench `metric_func`, pdebench/PDEBench@03c02f4 `pdebench/models/metrics.py`):
  sqrt(<e^2>_S) / sqrt(<target^2>_S) per (sample, step, channel); PDEBench reports the mean over
  samples, then channels and steps. With `per_channel=False` the ratio is taken jointly over
  (C, S), PDE-Transformer's `SimulationMSE(normalized=True)`.
- VRMSE (The Well, PolymathicAI/the_well `benchmark/metrics/spatial.py`, `norm_mode="std"`):
  sqrt(<e^2>_S / (Var_S(target) + eps)) per (sample, step, channel). Predicting the spatial mean
  of the target scores 1.
- correlation time (Kochkov et al., PNAS 2021: vorticity correlation 0.95; PDE-Refiner, Lippe et
  al., NeurIPS 2023: 0.8 for Kuramoto-Sivashinsky): how long the Pearson correlation between
  predicted and true fields stays at or above a threshold.

Errors are in the units of the tensors given: de-normalize first (`denormalize`) to report
errors in physical units.

Deviations:
- VRMSE divides by the population variance (mean of squared deviations), so the spatial-mean
  prediction scores exactly 1 up to eps; the_well@0313b2e uses `torch.std` (n - 1 in the
  denominator), which scores it sqrt(1 - 1/n), 1 - 1.2e-4 at 64^2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from seqlab.errors import SeqlabError

KOCHKOV_THRESHOLD = 0.95
"""Correlation threshold of Kochkov et al. (2021) for 2-D turbulence (vorticity)."""
VRMSE_EPS = 1e-7
"""The Well's eps in the VRMSE denominator."""


class MetricShapeError(SeqlabError, ValueError):
    """Prediction and target disagree in shape, or lack the (B, T, C, *S) axes."""


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() < 4:
        raise MetricShapeError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape (B, T, C, *S) "
            "with at least one spatial axis"
        )


def _space(x: Tensor) -> tuple[int, ...]:
    return tuple(range(3, x.dim()))


def relative_l2(pred: Tensor, target: Tensor) -> Tensor:
    """||pred - target||_2 / ||target||_2 over (T, C, *S), per sample: (B, T, C, *S) -> (B,)."""
    _check(pred, target)
    dims = tuple(range(1, pred.dim()))
    return torch.linalg.vector_norm(pred - target, dim=dims) / torch.linalg.vector_norm(target, dim=dims)


def relative_l2_per_step(pred: Tensor, target: Tensor) -> Tensor:
    """||pred_t - target_t||_2 / ||target_t||_2 over (C, *S), per sample and step: -> (B, T)."""
    _check(pred, target)
    dims = tuple(range(2, pred.dim()))
    return torch.linalg.vector_norm(pred - target, dim=dims) / torch.linalg.vector_norm(target, dim=dims)


def nrmse(pred: Tensor, target: Tensor, per_channel: bool = True) -> Tensor:
    """sqrt(<(pred - target)^2>_S) / sqrt(<target^2>_S): (B, T, C, *S) -> (B, T, C).

    per_channel=False: the ratio over (C, *S) jointly -> (B, T) (PDE-Transformer's nRMSE). No eps,
    as in PDEBench: an all-zero target gives inf or nan.
    """
    _check(pred, target)
    dims = _space(pred) if per_channel else tuple(range(2, pred.dim()))
    return ((pred - target).square().mean(dim=dims) / target.square().mean(dim=dims)).sqrt()


def pdebench_nrmse(pred: Tensor, target: Tensor) -> Tensor:
    """PDEBench's reported nRMSE: `nrmse` averaged over samples, channels and steps -> scalar."""
    return nrmse(pred, target).mean()


def vrmse(pred: Tensor, target: Tensor, eps: float = VRMSE_EPS) -> Tensor:
    """sqrt(<(pred - target)^2>_S / (Var_S(target) + eps)): (B, T, C, *S) -> (B, T, C)."""
    _check(pred, target)
    space = _space(pred)
    mse = (pred - target).square().mean(dim=space)
    return (mse / (target.var(dim=space, correction=0) + eps)).sqrt()


def error_curve(pred: Tensor, target: Tensor, metric: Callable[[Tensor, Tensor], Tensor] = nrmse) -> Tensor:
    """Error against rollout step: `metric` (per sample and step, maybe per channel) averaged over
    samples and channels -> (T,)."""
    per_step = metric(pred, target)  # (B, T) or (B, T, C)
    return per_step.mean(dim=(0, 2) if per_step.dim() == 3 else 0)


def nrmse_at(pred: Tensor, target: Tensor, steps: Sequence[int] = (1, 10, 50)) -> dict[int, float]:
    """The nRMSE curve (`error_curve(.., nrmse)`) at 1-based rollout `steps`, each clipped to the
    rollout length T: {step: value}. With T = 20, steps (1, 10, 50) give {1, 10, 20}."""
    curve = error_curve(pred, target, nrmse)
    length = curve.shape[0]
    if any(step < 1 for step in steps):
        raise MetricShapeError(f"rollout steps are counted from 1, got {list(steps)}")
    return {min(step, length): float(curve[min(step, length) - 1]) for step in steps}


def spatial_correlation(pred: Tensor, target: Tensor) -> Tensor:
    """Pearson correlation of predicted and true fields over (C, *S), per sample and step:
    (B, T, C, *S) -> (B, T). A constant field has no correlation and scores 0; a non-finite one
    scores NaN."""
    _check(pred, target)
    dims = tuple(range(2, pred.dim()))
    p = pred - pred.mean(dim=dims, keepdim=True)
    t = target - target.mean(dim=dims, keepdim=True)
    cov = (p * t).sum(dim=dims)
    norm = (p.square().sum(dim=dims) * t.square().sum(dim=dims)).sqrt()
    return torch.where(norm == 0, torch.zeros_like(cov), cov / norm)


def correlation_time(pred: Tensor, target: Tensor, threshold: float = KOCHKOV_THRESHOLD, dt: float = 1.0) -> Tensor:
    """How long each rollout stays correlated: (B, T, C, *S) -> (B,), in units of dt.

    With rho_t the `spatial_correlation` at step t = 1..T and k the first step with
    rho_k < threshold, the correlation time is (k - 1) * dt: the time of the last step before the
    drop. A rollout that never drops scores T * dt (a lower bound: it was still correlated at the
    end). A NaN correlation (a diverged rollout) counts as a drop.
    """
    rho = spatial_correlation(pred, target)  # (B, T)
    below = ~(rho >= threshold)  # NaN counts as below
    steps = rho.shape[1]
    never = torch.full_like(below[:, 0], steps, dtype=torch.long)
    first = torch.where(below.any(dim=1), below.float().argmax(dim=1), never)  # k - 1 (argmax: first True)
    return first.to(pred.dtype) * dt


def denormalize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Undo per-channel normalization: x * std_c + mean_c for x (B, T, C, *S), mean / std (C,)."""
    channels = x.shape[2] if x.dim() >= 3 else -1
    if mean.shape != (channels,) or std.shape != (channels,):
        raise MetricShapeError(
            f"mean {tuple(mean.shape)} and std {tuple(std.shape)} must hold one value per channel, "
            f"({channels},), for fields of shape {tuple(x.shape)} (B, T, C, *S)"
        )
    view = (1, 1, channels) + (1,) * (x.dim() - 3)
    return x * std.to(x).view(view) + mean.to(x).view(view)
