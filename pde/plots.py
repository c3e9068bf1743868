"""Figures logged with PDE runs: predicted against true fields, and error-vs-time curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pde.metrics import MetricShapeError  # noqa: E402


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def field_snapshots(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    steps: Sequence[int] | None = None,
    sample: int = 0,
    channel: int = 0,
    dt: float = 1.0,
    title: str = "",
) -> Figure:
    """Truth, prediction and their difference at several rollout steps of one trajectory.

    pred, target: (B, T, C, *S) with S = (Y, X) or (X,); steps are 1-based (default: four steps
    spread from 1 to T). 2-D fields: rows truth / prediction / difference, one column per step,
    one colour bar per row (truth and prediction share the truth's colour range). 1-D fields:
    rows fields (truth and prediction as lines) / difference.
    """
    p, t = _numpy(pred), _numpy(target)
    if p.shape != t.shape or p.ndim not in (4, 5):
        raise MetricShapeError(f"pred {p.shape} and target {t.shape} must both be (B, T, C, X) or (B, T, C, Y, X)")
    length = p.shape[1]
    steps = sorted({int(s) for s in np.linspace(1, length, min(4, length))}) if steps is None else list(steps)
    if not steps or min(steps) < 1 or max(steps) > length:
        raise MetricShapeError(f"steps {steps} must lie in 1..T = 1..{length}")
    p, t = p[sample, :, channel], t[sample, :, channel]  # (T, *S)
    labels = [f"t = {s * dt:g}" if dt != 1.0 else f"step {s}" for s in steps]
    n = len(steps)
    if p.ndim == 2:
        fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 4.2), squeeze=False, sharey="row")
        for col, (s, label) in enumerate(zip(steps, labels)):
            axes[0, col].plot(t[s - 1], color="black", lw=1, label="truth")
            axes[0, col].plot(p[s - 1], color="tab:red", lw=1, label="prediction")
            axes[1, col].plot(p[s - 1] - t[s - 1], color="tab:blue", lw=1)
            axes[0, col].set_title(label, fontsize=8)
        axes[0, 0].legend(fontsize=7)
        axes[1, 0].set_ylabel("prediction - truth", fontsize=8)
    else:
        fig, axes = plt.subplots(3, n, figsize=(2.4 * n + 1, 7), squeeze=False)
        low, high = float(t.min()), float(t.max())
        diff = p[[s - 1 for s in steps]] - t[[s - 1 for s in steps]]
        bound = float(np.abs(diff).max()) or 1.0
        for row, (name, field) in enumerate((("truth", t), ("prediction", p))):
            for col, s in enumerate(steps):
                image = axes[row, col].imshow(field[s - 1], cmap="RdBu_r", vmin=low, vmax=high, origin="lower")
            fig.colorbar(image, ax=axes[row, :], shrink=0.8)
            axes[row, 0].set_ylabel(name, fontsize=8)
        for col in range(n):
            image = axes[2, col].imshow(diff[col], cmap="PuOr_r", vmin=-bound, vmax=bound, origin="lower")
        fig.colorbar(image, ax=axes[2, :], shrink=0.8)
        axes[2, 0].set_ylabel("prediction - truth", fontsize=8)
        for col, label in enumerate(labels):
            axes[0, col].set_title(label, fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or f"sample {sample}, channel {channel}", fontsize=10)
    return fig


def error_curves(
    curves: Mapping[str, torch.Tensor | np.ndarray | Sequence[float]],
    dt: float = 1.0,
    ylabel: str = "nRMSE",
    log: bool = True,
) -> Figure:
    """Error against rollout step (or time, steps * dt) for one or more models: {name: (T,)}."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve in curves.items():
        values = _numpy(curve)
        ax.plot(np.arange(1, len(values) + 1) * dt, values, marker="o", markersize=2, lw=1, label=name)
    ax.set_xlabel("rollout step" if dt == 1.0 else "time")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
