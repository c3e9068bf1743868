"""PDE metrics: zero against themselves, VRMSE of the spatial mean is 1, relative L2 scales as it
should, nRMSE equals a hand computation, correlation time finds a known decorrelation step,
curves and de-normalization."""

import numpy as np
import pytest
import torch

from pde.metrics import (
    MetricShapeError,
    correlation_time,
    denormalize,
    error_curve,
    nrmse,
    nrmse_at,
    pdebench_nrmse,
    relative_l2,
    relative_l2_per_step,
    spatial_correlation,
    vrmse,
)


def fields(*shape, seed=0, offset=0.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + offset


@pytest.mark.parametrize("shape", [(3, 5, 2, 8, 8), (3, 5, 2, 16)])
def test_a_field_against_itself_has_no_error(shape):
    y = fields(*shape)
    errors = (relative_l2, relative_l2_per_step, nrmse, lambda p, t: nrmse(p, t, per_channel=False), vrmse)
    for error in errors:
        assert torch.all(error(y, y) == 0)
    torch.testing.assert_close(spatial_correlation(y, y), torch.ones(3, 5, dtype=torch.float64))
    assert torch.all(correlation_time(y, y, dt=0.5) == 2.5)  # never decorrelates: T * dt


@pytest.mark.parametrize("shape", [(3, 5, 2, 8, 8), (3, 5, 2, 16)])
def test_vrmse_of_the_spatial_mean_is_one(shape):
    y = fields(*shape, offset=3.0) * 2
    space = tuple(range(3, y.dim()))
    mean_prediction = y.mean(dim=space, keepdim=True).expand_as(y)
    torch.testing.assert_close(vrmse(mean_prediction, y), torch.ones(shape[:3], dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.all(vrmse(mean_prediction + 0.5, y) > 1)  # a biased mean does worse
    halfway = 0.5 * (mean_prediction + y)  # half the deviation from the mean: VRMSE 1/2
    torch.testing.assert_close(vrmse(halfway, y), torch.full(shape[:3], 0.5, dtype=torch.float64), atol=1e-6, rtol=0)


def test_relative_l2_scales_with_the_error_and_not_with_the_units():
    y = fields(4, 3, 2, 8, 8)
    torch.testing.assert_close(relative_l2(1.25 * y, y), torch.full((4,), 0.25, dtype=torch.float64))
    pred = y + 0.1 * fields(4, 3, 2, 8, 8, seed=1)
    torch.testing.assert_close(relative_l2(7 * pred, 7 * y), relative_l2(pred, y))
    # An error confined to step 2 appears only there per step, and in every sample's total.
    pred = y.clone()
    pred[:, 1] *= 1.5
    per_step = relative_l2_per_step(pred, y)
    torch.testing.assert_close(per_step[:, 1], torch.full((4,), 0.5, dtype=torch.float64))
    assert torch.all(per_step[:, [0, 2]] == 0)
    expected = 0.5 * y[:, 1].flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
    torch.testing.assert_close(relative_l2(pred, y), expected)


def test_nrmse_per_channel_equals_a_numpy_hand_computation():
    pred, y = fields(3, 4, 2, 6, 5, seed=1), fields(3, 4, 2, 6, 5, seed=2, offset=0.5)
    p, t = pred.numpy(), y.numpy()
    expected = np.zeros((3, 4, 2))
    for b in range(3):
        for s in range(4):
            for c in range(2):
                err = p[b, s, c] - t[b, s, c]
                expected[b, s, c] = np.sqrt(np.mean(err**2)) / np.sqrt(np.mean(t[b, s, c] ** 2))
    np.testing.assert_allclose(nrmse(pred, y).numpy(), expected, rtol=1e-12)
    assert float(pdebench_nrmse(pred, y)) == pytest.approx(expected.mean(), rel=1e-12)
    joint = np.sqrt(((p - t) ** 2).mean(axis=(2, 3, 4)) / (t**2).mean(axis=(2, 3, 4)))
    np.testing.assert_allclose(nrmse(pred, y, per_channel=False).numpy(), joint, rtol=1e-12)


def test_vrmse_equals_a_numpy_hand_computation():
    pred, y = fields(2, 3, 2, 6, 5, seed=1), fields(2, 3, 2, 6, 5, seed=2, offset=4.0)
    p, t = pred.numpy(), y.numpy()
    mse = ((p - t) ** 2).mean(axis=(3, 4))
    var = ((t - t.mean(axis=(3, 4), keepdims=True)) ** 2).mean(axis=(3, 4))
    np.testing.assert_allclose(vrmse(pred, y).numpy(), np.sqrt(mse / (var + 1e-7)), rtol=1e-12)


def test_correlation_time_finds_the_step_where_a_prediction_decorrelates():
    y = fields(3, 12, 1, 16, 16)
    pred = y.clone()
    pred[0, 4:] = fields(8, 1, 16, 16, seed=5)  # unrelated fields from step 5 on
    pred[1, 9] = -y[1, 9]  # anti-correlated at step 10 only
    pred[2] = 0.5 * y[2] + 0.01 * fields(12, 1, 16, 16, seed=6)  # scaled, still correlated
    torch.testing.assert_close(correlation_time(pred, y, dt=0.1), torch.tensor([0.4, 0.9, 1.2], dtype=torch.float64))
    pred[2, 6] = float("nan")  # a diverged step counts as a drop
    assert spatial_correlation(pred, y)[2, 6].isnan()
    assert correlation_time(pred, y)[2] == 6
    assert spatial_correlation(torch.ones_like(y), y).eq(0).all()  # a constant field: no correlation
    # A lower threshold forgives the partial decorrelation of a mixed field.
    mixed = y.clone()
    mixed[0, 2:] = y[0, 2:] + fields(10, 1, 16, 16, seed=7)  # correlation ~ 1/sqrt(2) ~ 0.71
    assert correlation_time(mixed, y, threshold=0.95)[0] == 2
    assert correlation_time(mixed, y, threshold=0.5)[0] == 12


def test_error_curve_and_steps_clipped_to_the_rollout():
    y = fields(2, 20, 2, 8, 8)
    growth = torch.linspace(0.01, 0.2, 20, dtype=torch.float64).view(1, 20, 1, 1, 1)
    pred = y * (1 + growth)
    curve = error_curve(pred, y)
    torch.testing.assert_close(curve, growth.flatten())
    at = nrmse_at(pred, y, steps=(1, 10, 50))
    assert list(at) == [1, 10, 20]
    assert at[10] == pytest.approx(float(growth.flatten()[9]))
    assert error_curve(pred, y, relative_l2_per_step).shape == (20,)
    with pytest.raises(MetricShapeError, match="counted from 1"):
        nrmse_at(pred, y, steps=(0,))


def test_denormalize_restores_physical_units():
    raw = fields(2, 3, 2, 4, 4) * torch.tensor([2.0, 0.1], dtype=torch.float64).view(1, 1, 2, 1, 1)
    mean = raw.mean(dim=(0, 1, 3, 4))
    std = raw.std(dim=(0, 1, 3, 4))
    normalized = (raw - mean.view(1, 1, 2, 1, 1)) / std.view(1, 1, 2, 1, 1)
    torch.testing.assert_close(denormalize(normalized, mean, std), raw)
    with pytest.raises(MetricShapeError, match=r"one value per channel, \(2,\)"):
        denormalize(normalized, mean[:1], std[:1])


def test_shapes_must_agree():
    with pytest.raises(MetricShapeError, match="same shape"):
        nrmse(fields(2, 3, 1, 8, 8), fields(2, 3, 1, 8, 4))
