"""Streaming forecast errors: equal to a direct computation, independent of batching, correct in
original units, and `ForecastTask.evaluate` reports the training loss it was given."""

import numpy as np
import pytest
import torch
from torch import nn

from forecasting.data import ForecastBatch, StandardScaler
from forecasting.metrics import ErrorAccumulator
from forecasting.task import ForecastTask

B, H, N = 37, 6, 4


def predictions(seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(B, H, N, generator=g)
    target = torch.randn(B, H, N, generator=g) * 2 + 0.5
    return pred, target


def accumulate(pred, target, sizes, scale=None):
    acc = ErrorAccumulator(scale)
    start = 0
    for size in sizes:
        acc.update(pred[start : start + size], target[start : start + size])
        start += size
    assert start == len(pred)
    return acc.result()


def test_accumulated_errors_equal_a_direct_numpy_computation():
    pred, target = predictions()
    result = accumulate(pred, target, [10, 10, 10, 7])
    err = pred.double().numpy() - target.double().numpy()
    assert result["mse"] == pytest.approx(np.mean(err**2), rel=1e-12)
    assert result["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-12)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-12)
    assert "mse_orig" not in result


@pytest.mark.parametrize("sizes", [[37], [1] * 37, [5, 1, 30, 1], [36, 1], [2, 35]])
def test_result_does_not_depend_on_how_windows_are_batched(sizes):
    pred, target = predictions()
    scale = np.array([0.5, 2.0, 3.0, 10.0])
    reference = accumulate(pred, target, [37], scale)
    result = accumulate(pred, target, sizes, scale)
    assert result.keys() == reference.keys()
    for name in reference:
        assert result[name] == pytest.approx(reference[name], rel=1e-12), name


def test_errors_in_original_units_equal_errors_after_inverse_scaling():
    pred, target = predictions(seed=3)
    g = np.random.default_rng(0)
    scaler = StandardScaler(mean=g.normal(size=N) * 100, std=np.array([0.1, 1.0, 7.5, 300.0]))
    result = accumulate(pred, target, [20, 17], scale=scaler.std)
    pred_orig = scaler.inverse(pred.double().numpy())
    target_orig = scaler.inverse(target.double().numpy())
    assert result["mse_orig"] == pytest.approx(np.mean((pred_orig - target_orig) ** 2), rel=1e-10)
    assert result["mae_orig"] == pytest.approx(np.mean(np.abs(pred_orig - target_orig)), rel=1e-10)


def test_an_empty_accumulator_is_an_error():
    with pytest.raises(ValueError, match="no predictions"):
        ErrorAccumulator().result()


class Shift(nn.Module):
    """A fixed 'model': the forecast is the last look-back value plus a constant."""

    def forward(self, x, x_mark=None, y_mark=None):
        return x[:, -1:, :].expand(-1, H, -1) + 0.3


def batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    for size in (8, 8, 3):
        x = torch.randn(size, 10, N, generator=g)
        yield ForecastBatch(x, torch.zeros(size, 10, 2), torch.randn(size, H, N, generator=g), torch.zeros(size, H, 2))


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_evaluate_reports_the_training_loss_as_loss(loss):
    metrics = ForecastTask(loss, scale=np.ones(N)).evaluate(Shift(), batches())
    assert metrics["loss"] == metrics[loss]
    preds = torch.cat([Shift()(b.x) for b in batches()]).double()
    targets = torch.cat([b.y for b in batches()]).double()
    direct = {"mse": ((preds - targets) ** 2).mean().item(), "mae": (preds - targets).abs().mean().item()}
    assert metrics["mse"] == pytest.approx(direct["mse"], rel=1e-9)
    assert metrics["mae"] == pytest.approx(direct["mae"], rel=1e-9)
    assert metrics["mse_orig"] == pytest.approx(direct["mse"], rel=1e-9)  # unit scale


def test_training_step_uses_the_chosen_loss():
    batch = next(batches())
    err = Shift()(batch.x) - batch.y
    assert ForecastTask("mse").training_step(Shift(), batch).item() == pytest.approx((err**2).mean().item(), rel=1e-6)
    assert ForecastTask("mae").training_step(Shift(), batch).item() == pytest.approx(err.abs().mean().item(), rel=1e-6)
