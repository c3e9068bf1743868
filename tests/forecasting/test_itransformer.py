"""iTransformer: shapes, symmetries (variate permutation, per-variate affine maps), time tokens,
config validation, and a short training run through the shared Trainer."""

import math
from datetime import datetime, timedelta

import polars as pl
import pytest
import torch

from forecasting.data import WindowDataset
from forecasting.models.itransformer import ITransformer, ITransformerConfig
from forecasting.task import ForecastTask
from forecasting.timefeatures import time_features
from seqlab.train import Trainer, TrainConfig

L, H, K = 24, 12, 4


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    base = dict(seq_len=L, horizon=H, d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=0.1)
    return ITransformer(ITransformerConfig(**{**base, **overrides})).eval()


def inputs(b=3, n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, L, n, generator=g)
    x_mark = torch.rand(b, L, K, generator=g) - 0.5
    y_mark = torch.rand(b, H, K, generator=g) - 0.5
    return x, x_mark, y_mark


@pytest.mark.parametrize("n", [1, 3, 7])
@pytest.mark.parametrize("with_marks", [True, False])
def test_output_shape(n, with_marks):
    x, x_mark, y_mark = inputs(n=n)
    out = tiny()(x, x_mark if with_marks else None, y_mark if with_marks else None)
    assert out.shape == (3, H, n)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("use_time_tokens", [False, True])
def test_permuting_variates_permutes_the_forecast(use_time_tokens):
    model = tiny(use_time_tokens=use_time_tokens)
    x, x_mark, y_mark = inputs(n=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        out, out_perm = model(x, x_mark, y_mark), model(x[..., perm], x_mark, y_mark)
    torch.testing.assert_close(out_perm, out[..., perm], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[..., 0], out[..., 1], atol=1e-3)  # the variates really differ


def affine(x):
    g = torch.Generator().manual_seed(2)
    n = x.shape[-1]
    a = torch.rand(n, generator=g) * 4 + 0.25  # a > 0, per variate
    b = torch.randn(n, generator=g) * 10
    return a, b


def test_with_norm_the_model_is_equivariant_to_per_variate_affine_maps():
    model = tiny(use_norm=True)
    x, x_mark, y_mark = inputs()
    a, b = affine(x)
    with torch.no_grad():
        shifted, expected = model(a * x + b, x_mark, y_mark), a * model(x, x_mark, y_mark) + b
    torch.testing.assert_close(shifted, expected, rtol=1e-4, atol=1e-4)


def test_without_norm_the_affine_equivariance_is_lost():
    model = tiny(use_norm=False)
    x, x_mark, y_mark = inputs()
    a, b = affine(x)
    with torch.no_grad():
        shifted, expected = model(a * x + b, x_mark, y_mark), a * model(x, x_mark, y_mark) + b
    assert not torch.allclose(shifted, expected, rtol=1e-4, atol=1e-4)
    assert (shifted - expected).abs().max() > 0.1


def test_time_tokens_on_read_x_mark():
    model = tiny(use_time_tokens=True)
    x, x_mark, y_mark = inputs()
    with torch.no_grad():
        a, b, c = model(x, x_mark, y_mark), model(x, x_mark.flip(1), y_mark), model(x, None, None)
    assert (a - b).abs().max() > 1e-4
    assert (a - c).abs().max() > 1e-4


def test_time_tokens_off_ignore_x_mark():
    model = tiny(use_time_tokens=False)
    x, x_mark, y_mark = inputs()
    with torch.no_grad():
        out = model(x, x_mark, y_mark)
        assert torch.equal(out, model(x, x_mark.flip(1), y_mark.flip(1)))
        assert torch.equal(out, model(x, None, None))


def test_y_mark_is_unused():
    model = tiny()
    x, x_mark, y_mark = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, x_mark, y_mark), model(x, x_mark, -y_mark))


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout():
    model = tiny(dropout=0.3)
    x, x_mark, y_mark = inputs()
    assert torch.equal(model(x, x_mark), model(x, x_mark))
    model.train()
    assert not torch.equal(model(x, x_mark), model(x, x_mark))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(d_model=30, n_heads=4), r"d_model=30 must be divisible by n_heads=4"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (dict(dropout=-0.1), r"dropout must be in \[0, 1\), got -0.1"),
        (dict(seq_len=0), r"seq_len must be >= 1, got 0"),
        (dict(horizon=0), r"horizon must be >= 1, got 0"),
    ],
)
def test_config_validation_names_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        ITransformerConfig(**overrides)


def sine_windows(start_row, end_row, n=3, rows=400):
    t = torch.arange(rows, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    values = torch.stack([torch.sin(2 * math.pi * t / 24 + k) * (k + 1) for k in range(n)], dim=1)
    values = values + 0.05 * torch.randn(rows, n, generator=g)
    dates = pl.Series([datetime(2020, 1, 1) + timedelta(hours=i) for i in range(rows)])
    marks = torch.from_numpy(time_features(dates, "h"))
    return WindowDataset(values[start_row:end_row], marks[start_row:end_row], L, H)


def test_a_short_training_run_lowers_the_validation_loss(tmp_path):
    train, val = sine_windows(0, 300), sine_windows(300 - L, 400)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, schedule="constant", patience=None, device="cpu",
                      precision="fp32", progress=False, seed=0)
    trainer = Trainer(tiny(dropout=0.0), ForecastTask("mse"), cfg, tmp_path)
    before = trainer.evaluate(val, "val")["val/loss"]
    result = trainer.fit(train, val)
    after = trainer.evaluate(val, "val")["val/loss"]
    assert result.global_step == 3 * math.ceil(len(train) / 32)
    assert after < 0.5 * before, (before, after)
