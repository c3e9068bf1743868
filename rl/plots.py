"""Figures of an RL run: the evaluation return against training step, and a strip of frames."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def return_curve(points: Sequence[tuple[int, float]], ylabel: str = "normalized score") -> Figure:
    """Evaluation score (or return) against optimizer step: [(step, value), ...]."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps, values = zip(*sorted(points)) if points else ((), ())
    ax.plot(steps, values, marker="o")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def frame_strip(frames: Sequence[np.ndarray], every: int, title: str = "") -> Figure:
    """Rendered frames (H, W, 3) side by side, labelled with their episode step."""
    fig, axes = plt.subplots(1, len(frames), figsize=(2.2 * len(frames), 2.4), squeeze=False)
    for i, (ax, frame) in enumerate(zip(axes[0], frames)):
        ax.imshow(frame)
        ax.set_title(f"t={(i + 1) * every}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
