"""Figures logged with forecasting runs: loss curves and forecasts against the truth."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from forecasting.data import ForecastData  # noqa: E402


def loss_curves(history: list[dict[str, float]]) -> Figure:
    """Training and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in history]
    for key, label in (("train/loss", "train"), ("val/loss", "validation")):
        values = [h[key] for h in history if key in h]
        if values:
            ax.plot(epochs[: len(values)], values, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled units)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def test_forecasts(
    model: nn.Module, data: ForecastData, device: torch.device, n_windows: int = 3, max_variates: int = 4
) -> Figure:
    """Look-back, truth and forecast in original units for a few evenly spaced test windows.

    Rows are windows, columns are variates (the last `max_variates` columns, which hold the
    target `OT` in the benchmark files).
    """
    windows = np.linspace(0, len(data.test) - 1, n_windows).astype(int)
    batch = data.test.get_batch(torch.as_tensor(windows))
    model.eval()
    with torch.no_grad():
        pred = model(*(t.to(device) for t in (batch.x, batch.x_mark, batch.y_mark))).float().cpu().numpy()
    x = data.scaler.inverse(batch.x.numpy())
    y = data.scaler.inverse(batch.y.numpy())
    pred = data.scaler.inverse(pred)
    variates = list(range(data.n_variates))[-max_variates:]
    seq_len, horizon = x.shape[1], y.shape[1]
    fig, axes = plt.subplots(len(windows), len(variates), figsize=(3.2 * len(variates), 2.2 * len(windows)),
                             squeeze=False)
    start = data.borders.test[0]
    for row, w in enumerate(windows):
        for col, v in enumerate(variates):
            ax = axes[row, col]
            past, future = np.arange(seq_len), np.arange(seq_len, seq_len + horizon)
            ax.plot(past, x[row, :, v], color="0.4", lw=1, label="look-back")
            ax.plot(future, y[row, :, v], color="black", lw=1, label="truth")
            ax.plot(future, pred[row, :, v], color="tab:red", lw=1, label="forecast")
            if row == 0:
                ax.set_title(data.columns[v], fontsize=9)
            if col == 0:
                ax.set_ylabel(str(data.dates[int(start + w + seq_len)])[:16], fontsize=7)
            ax.tick_params(labelsize=7)
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"{data.name}: test forecasts (original units)", fontsize=10)
    fig.tight_layout()
    return fig
