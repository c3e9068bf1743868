"""Pathformer: shapes, routing and balance loss, vectorized == looped pieces, RevIN equivariance,
Fourier seasonality, config validation, and a short training run through the shared Trainer."""

import math

import numpy as np
import pytest
import torch

from forecasting.data import WindowDataset
from forecasting.metrics import mae
from forecasting.models.pathformer import (
    AdaptiveMultiScaleLayer,
    IntraPatchAttention,
    Pathformer,
    PathformerConfig,
    combine_in_log_space,
)
from forecasting.task import ForecastTask
from seqlab.nn.decomposition import FourierSeasonality
from seqlab.train import Trainer, TrainConfig

L, H, N = 24, 12, 3
PATCHES = ((4, 6, 8, 12), (12, 6, 4, 2))


def tiny_config(**overrides) -> PathformerConfig:
    base = dict(seq_len=L, horizon=H, n_variates=N, d_model=4, d_ff=8, n_layers=2, patch_sizes=PATCHES, k=2)
    return PathformerConfig(**{**base, **overrides})


def tiny(**overrides) -> Pathformer:
    torch.manual_seed(0)
    return Pathformer(tiny_config(**overrides))


def test_output_shape_and_a_scalar_aux_loss():
    model = tiny()
    y = model(torch.randn(5, L, N), torch.zeros(5, L, 4), torch.zeros(5, H, 4))
    assert y.shape == (5, H, N)
    assert model.aux_loss.shape == ()


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_gates_sum_to_one_over_the_top_k_experts_and_are_zero_elsewhere(training, k):
    torch.manual_seed(0)
    layer = AdaptiveMultiScaleLayer(tiny_config(k=k), PATCHES[0]).train(training)
    gates, _ = layer.router(torch.randn(16, L, N, 4))
    assert gates.shape == (16, 4)
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(16))
    assert torch.all((gates > 0).sum(dim=1) == k)
    assert torch.all(gates >= 0)


def test_balance_loss_is_positive_and_trains_the_gate_and_noise_weights():
    model = tiny().train()
    model(torch.randn(8, L, N))
    assert model.aux_loss.item() > 0
    model.aux_loss.backward()
    for layer in model.layers:
        for linear in (layer.router.w_gate, layer.router.w_noise):
            assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0


def test_patch_sizes_must_divide_the_look_back():
    with pytest.raises(ValueError, match=r"patch size 5 of layer 1 does not divide seq_len=24"):
        tiny_config(patch_sizes=((4, 6, 8, 12), (12, 6, 4, 5)))
    with pytest.raises(ValueError, match=r"n_layers=2 rows of n_experts=4"):
        tiny_config(patch_sizes=((4, 6, 8, 12), (12, 6, 4)))
    with pytest.raises(ValueError, match=r"k=5 must not exceed n_experts=4"):
        tiny_config(k=5)
    with pytest.raises(ValueError, match=r"d_model=5 must be even"):
        tiny_config(d_model=5)
    with pytest.raises(ValueError, match="n_variates"):
        Pathformer(PathformerConfig())


def looped_intra_attention(module: IntraPatchAttention, x: torch.Tensor) -> torch.Tensor:
    """The reference's formulation: a Python loop over patches, explicit softmax attention."""
    b, _, n, d = x.shape
    p, heads, hs = module.patch_size, module.n_heads, d // module.n_heads
    (wk, wv), (bk, bv) = module.kv()
    summaries = []
    for i in range(module.n_patches):
        query = (module.query_seed[i] @ module.query_weight[i] + module.query_bias[i]).expand(b, 1, n, d)
        tokens = torch.cat([query, x[:, i * p : (i + 1) * p]], dim=1)  # (B, 1+P, N, D)
        key = torch.einsum("btnd,nde->btne", tokens, wk) + bk
        value = torch.einsum("btnd,nde->btne", tokens, wv) + bv
        heads_out = []
        for h in range(heads):
            part = slice(h * hs, (h + 1) * hs)
            scores = torch.einsum("bqnd,btnd->bnqt", query[..., part], key[..., part]) / math.sqrt(hs)
            heads_out.append(torch.einsum("bnqt,btnd->bqnd", scores.softmax(dim=-1), value[..., part]))
        summaries.append(module.mlp(torch.cat(heads_out, dim=-1)))  # (B, 1, N, D)
    out = torch.cat(summaries, dim=1)  # (B, M, N, D)
    return module.to_time(out.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)


@pytest.mark.parametrize("patch", [2, 6, 24])
def test_vectorized_intra_patch_attention_equals_the_per_patch_loop(patch):
    torch.manual_seed(0)
    module = IntraPatchAttention(L, patch, N, d_model=8)
    x = torch.randn(3, L, N, 8)
    torch.testing.assert_close(module(x), looped_intra_attention(module, x), rtol=1e-5, atol=1e-5)


def test_vectorized_combine_equals_a_per_sample_log_of_gated_exponentials():
    torch.manual_seed(0)
    b, e, k = 9, 4, 2
    logits = torch.randn(b, e)
    top = logits.topk(k, dim=1)
    gates = torch.zeros(b, e).scatter(1, top.indices, top.values.softmax(dim=1))
    gates[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # a sample routed to one expert only
    full = torch.randn(e, b, 5, 3, 2) * 3
    routed = [gates[:, i].nonzero().squeeze(1) for i in range(e)]
    got = combine_in_log_space(gates, routed, [full[i, rows] for i, rows in enumerate(routed)])

    eps = np.finfo(float).eps
    expected = torch.empty(b, 5, 3, 2)
    for s in range(b):
        total = sum(gates[s, i] * full[i, s].exp() for i in range(e) if gates[s, i] > 0)
        expected[s] = torch.where(total == 0, torch.full_like(total, eps), total).log()
    torch.testing.assert_close(got, expected)


def test_an_ams_layer_equals_running_each_window_through_its_own_experts():
    torch.manual_seed(0)
    layer = AdaptiveMultiScaleLayer(tiny_config(d_model=8, residual=True), PATCHES[0]).eval()
    x = torch.randn(6, L, N, 8)
    out, _ = layer(x)
    gates, _ = layer.router(x)
    for s in range(6):
        total = sum(g * expert(x[s : s + 1]).exp() for g, expert in zip(gates[s], layer.experts) if g > 0)
        torch.testing.assert_close(out[s : s + 1], total.log() + x[s : s + 1], rtol=1e-5, atol=1e-5)


def test_with_revin_the_forecast_follows_per_variate_affine_changes_of_the_input():
    model = tiny().eval()
    x = torch.randn(4, L, N)
    scale, shift = torch.tensor([2.0, 0.5, 10.0]), torch.tensor([1.0, -3.0, 100.0])
    torch.testing.assert_close(model(x * scale + shift), model(x) * scale + shift, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("length", [96, 45])
def test_fourier_seasonality_rebuilds_sinusoids_of_integer_frequency(length):
    t = torch.arange(length, dtype=torch.float32)
    one = 3 * torch.cos(2 * math.pi * 5 * t / length + 0.7)
    three = one + torch.sin(2 * math.pi * 2 * t / length) + 0.5 * torch.cos(2 * math.pi * 9 * t / length - 1)
    x = torch.stack([one, three], dim=-1)[None]  # (1, L, 2)
    seasonal = FourierSeasonality(k=3)(x + 4.0)  # the mean is not seasonal
    torch.testing.assert_close(seasonal, x, rtol=1e-4, atol=1e-4)


def test_fourier_seasonality_runs_in_fp32_under_autocast_and_has_finite_gradients():
    x = torch.randn(2, 32, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seasonal = FourierSeasonality(k=3)(x)
    assert seasonal.dtype == torch.bfloat16
    assert torch.equal(seasonal, FourierSeasonality(k=3)(x.float()).bfloat16())
    constant = torch.ones(2, 32, 3, requires_grad=True)
    FourierSeasonality(k=3)(constant).sum().backward()
    assert torch.isfinite(constant.grad).all()


def test_training_adds_the_balance_loss_and_evaluation_does_not():
    model = tiny().train()
    windows = sine_windows(0, 120)
    batch = windows.get_batch(torch.arange(8))
    task = ForecastTask("mae")
    torch.manual_seed(3)
    loss = task.training_step(model, batch)
    torch.manual_seed(3)
    prediction = model(batch.x)
    torch.testing.assert_close(loss, mae(prediction, batch.y) + model.aux_loss)
    assert model.aux_loss.item() > 0
    model.eval()
    assert task.evaluate(model, [batch])["loss"] == pytest.approx(mae(model(batch.x), batch.y).item(), rel=1e-6)


def sine_windows(start_row, end_row, rows=400):
    t = torch.arange(rows, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    values = torch.stack([torch.sin(2 * math.pi * t / 12 + k) * (k + 1) for k in range(N)], dim=1)
    values = values + 0.05 * torch.randn(rows, N, generator=g)
    return WindowDataset(values[start_row:end_row], torch.zeros(rows, 4)[start_row:end_row], L, H)


def test_a_short_training_run_lowers_the_validation_loss(tmp_path):
    train, val = sine_windows(0, 200), sine_windows(200 - L, 280)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=5e-3, schedule="onecycle", onecycle_pct_start=0.4, patience=None,
                      device="cpu", precision="fp32", progress=False, seed=0)
    trainer = Trainer(tiny(), ForecastTask("mae"), cfg, tmp_path)
    before = trainer.evaluate(val, "val")["val/loss"]
    result = trainer.fit(train, val)
    after = trainer.evaluate(val, "val")["val/loss"]
    assert result.global_step == 3 * math.ceil(len(train) / 32)
    assert after < 0.6 * before, (before, after)
