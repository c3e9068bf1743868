"""PDE figures: snapshot grids and error curves have the panels they promise."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from pde.metrics import MetricShapeError
from pde.plots import error_curves, field_snapshots


def fields(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_2d_snapshots_show_truth_prediction_and_difference_per_step():
    y = fields(2, 6, 2, 8, 8)
    fig = field_snapshots(y + 0.1, y, steps=(1, 3, 6), sample=1, channel=1, dt=0.5)
    assert len(fig.axes) == 3 * 3 + 3  # a 3 x 3 grid and one colour bar per row
    assert [ax.get_title() for ax in fig.axes[:3]] == ["t = 0.5", "t = 1.5", "t = 3"]
    difference = fig.axes[6].images[0].get_array()
    np.testing.assert_allclose(difference, np.full((8, 8), 0.1), rtol=1e-5)
    plt.close(fig)


def test_1d_snapshots_default_to_four_steps():
    y = fields(1, 10, 1, 32)
    fig = field_snapshots(y, y)
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["step 1", "step 4", "step 7", "step 10"]
    plt.close(fig)


def test_snapshot_steps_must_be_in_the_rollout():
    y = fields(1, 5, 1, 8, 8)
    with pytest.raises(MetricShapeError, match=r"1\.\.5"):
        field_snapshots(y, y, steps=(0, 6))


def test_error_curves_draw_one_line_per_model():
    fig = error_curves({"PDE-Transformer": torch.linspace(0.01, 0.3, 20), "FNO": np.linspace(0.02, 0.5, 20)}, dt=0.2)
    assert len(fig.axes) == 1
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["PDE-Transformer", "FNO"]
    np.testing.assert_allclose(lines[0].get_xdata()[[0, -1]], [0.2, 4.0])
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)
