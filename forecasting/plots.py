"""Figures logged with forecasting runs: loss curves and forecasts against the truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Panel:
    """One series in one window: look-back, truth and forecast, each with its x positions."""

    title: str
    past_x: Sequence
    past: Sequence[float]
    future_x: Sequence
    truth: Sequence[float]
    forecast: Sequence[float]


def forecast_panels(panels: list[Panel], title: str, ncols: int = 4) -> Figure:
    """A grid of look-back (grey), truth (black) and forecast (red) plots."""
    ncols = min(ncols, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.2 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        ax.plot(panel.past_x, panel.past, color="0.4", lw=1, label="look-back")
        ax.plot(panel.future_x, panel.truth, color="black", lw=1, label="truth")
        ax.plot(panel.future_x, panel.forecast, color="tab:red", lw=1, label="forecast")
        ax.set_title(panel.title, fontsize=8)
        ax.tick_params(labelsize=6)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
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
    x, y, pred = (data.scaler.inverse(a) for a in (batch.x.numpy(), batch.y.numpy(), pred))
    seq_len, horizon = x.shape[1], y.shape[1]
    past, future = np.arange(seq_len), np.arange(seq_len, seq_len + horizon)
    variates = list(range(data.n_variates))[-max_variates:]
    start = data.borders.test[0]
    panels = [
        Panel(f"{data.columns[v]} @ {str(data.dates[int(start + w + seq_len)])[:16]}", past, x[row, :, v],
              future, y[row, :, v], pred[row, :, v])
        for row, w in enumerate(windows)
        for v in variates
    ]
    return forecast_panels(panels, f"{data.name}: test forecasts (original units)", ncols=len(variates))
