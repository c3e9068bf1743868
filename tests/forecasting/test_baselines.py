"""DLinear and PatchTST, the baselines every table carries."""

import pytest
import torch
from torch import nn

from forecasting.models.dlinear import DLinear, DLinearConfig
from forecasting.models.patchtst import PatchTST, PatchTSTConfig
from seqlab.nn.decomposition import MovingAverage, MultiScaleDecomposition, SeriesDecomposition


def test_moving_average_keeps_length_and_equals_explicit_padding_for_odd_and_even_kernels():
    x = torch.randn(2, 30, 3)
    for k in (1, 4, 5, 25):
        front, end = k - 1 - (k - 1) // 2, (k - 1) // 2
        padded = torch.cat([x[:, :1].repeat(1, front, 1), x, x[:, -1:].repeat(1, end, 1)], dim=1)
        expected = torch.stack([padded[:, i : i + k].mean(dim=1) for i in range(30)], dim=1)
        torch.testing.assert_close(MovingAverage(k)(x), expected)


def test_decompositions_add_back_up():
    x = torch.randn(2, 40, 3)
    for decompose in (SeriesDecomposition(25), MultiScaleDecomposition([4, 8, 12])):
        remainder, trend = decompose(x)
        torch.testing.assert_close(remainder + trend, x)


class ReferenceDLinear(nn.Module):
    """The Time-Series-Library formulation: nn.Linear over time on permuted inputs."""

    def __init__(self, seq_len, horizon, n, individual):
        super().__init__()
        self.decompose = SeriesDecomposition(25)
        count = n if individual else 1
        self.seasonal = nn.ModuleList(nn.Linear(seq_len, horizon) for _ in range(count))
        self.trend = nn.ModuleList(nn.Linear(seq_len, horizon) for _ in range(count))
        self.individual = individual

    def forward(self, x):
        s, t = (part.transpose(1, 2) for part in self.decompose(x))  # (B, N, L)
        if not self.individual:
            return (self.seasonal[0](s) + self.trend[0](t)).transpose(1, 2)
        out = [self.seasonal[i](s[:, i]) + self.trend[i](t[:, i]) for i in range(x.shape[-1])]
        return torch.stack(out, dim=-1)


@pytest.mark.parametrize("individual", [False, True])
def test_vectorized_dlinear_equals_the_reference_formulation(individual):
    torch.manual_seed(0)
    model = DLinear(DLinearConfig(seq_len=48, horizon=12, n_variates=3, individual=individual))
    ref = ReferenceDLinear(48, 12, 3, individual)
    with torch.no_grad():
        for i in range(len(ref.seasonal)):
            model.seasonal[i].normal_()
            model.trend[i].normal_()
            ref.seasonal[i].weight.copy_(model.seasonal[i])
            ref.trend[i].weight.copy_(model.trend[i])
            ref.seasonal[i].bias.copy_(model.seasonal_bias[i])
            ref.trend[i].bias.copy_(model.trend_bias[i])
    x = torch.randn(4, 48, 3)
    torch.testing.assert_close(model(x), ref(x))


def test_dlinear_starts_as_a_window_mean():
    model = DLinear(DLinearConfig(seq_len=48, horizon=12))
    with torch.no_grad():
        model.seasonal_bias.zero_()
        model.trend_bias.zero_()
    x = torch.randn(2, 48, 3)
    torch.testing.assert_close(model(x), x.mean(dim=1, keepdim=True).expand(2, 12, 3))


def tiny_patchtst(**overrides):
    return PatchTST(PatchTSTConfig(**{**dict(seq_len=96, horizon=24, d_model=16, n_heads=2, d_ff=32), **overrides}))


def test_patchtst_patch_count_follows_the_reference_formula():
    assert PatchTSTConfig(seq_len=96, patch_len=16, stride=8).n_patches == int((96 - 16) / 8 + 2) == 12
    assert PatchTSTConfig(seq_len=336, patch_len=16, stride=8).n_patches == int((336 - 16) / 8 + 2)


def test_patchtst_is_channel_independent():
    torch.manual_seed(0)
    model = tiny_patchtst().eval()
    x = torch.randn(2, 96, 4)
    changed = x.clone()
    changed[..., 2] = torch.randn(2, 96) * 5
    a, b = model(x), model(changed)
    torch.testing.assert_close(a[..., [0, 1, 3]], b[..., [0, 1, 3]])
    assert not torch.allclose(a[..., 2], b[..., 2])
    assert a.shape == (2, 24, 4)


def test_patchtst_follows_affine_changes_of_each_window():
    torch.manual_seed(0)
    model = tiny_patchtst().eval()
    x = torch.randn(2, 96, 3)
    scale, shift = torch.tensor([2.0, 0.5, 10.0]), torch.tensor([1.0, -3.0, 100.0])
    torch.testing.assert_close(model(x * scale + shift), model(x) * scale + shift, rtol=1e-4, atol=1e-3)
