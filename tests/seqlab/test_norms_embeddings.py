import math

import pytest
import torch

from seqlab.nn import LearnedPositionalEmbedding, RevIN, SinusoidalPositionalEmbedding, TimeFeatureEmbedding, TimestepEmbedding


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("subtract_last", [False, True])
def test_revin_round_trip(affine, subtract_last):
    torch.manual_seed(0)
    revin = RevIN(n_variates=3, affine=affine, subtract_last=subtract_last)
    if affine:
        with torch.no_grad():
            revin.affine_weight.uniform_(0.5, 2.0)
            revin.affine_bias.uniform_(-1.0, 1.0)
    x = torch.randn(4, 20, 3) * 5 + 7
    normed, stats = revin.normalize(x)
    torch.testing.assert_close(revin.denormalize(normed, stats), x, rtol=1e-4, atol=1e-4)


def test_revin_normalized_window_has_zero_mean_unit_std():
    x = torch.randn(2, 50, 4) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 100
    normed, _ = RevIN(affine=False).normalize(x)
    torch.testing.assert_close(normed.mean(dim=1), torch.zeros(2, 4), atol=1e-4, rtol=0)
    torch.testing.assert_close(normed.std(dim=1, unbiased=False), torch.ones(2, 4), atol=1e-3, rtol=0)


def test_detach_std_controls_gradient_through_the_scale():
    x = torch.randn(1, 10, 2, requires_grad=True)
    for detach, expect_grad_from_scale in ((True, False), (False, True)):
        revin = RevIN(affine=False, detach_std=detach)
        _, stats = revin.normalize(x)
        assert stats.scale.requires_grad is expect_grad_from_scale
        assert not stats.loc.requires_grad


def test_affine_revin_needs_variates():
    with pytest.raises(ValueError, match="n_variates"):
        RevIN(affine=True)


def test_sinusoidal_embedding_values():
    emb = SinusoidalPositionalEmbedding(d_model=6)
    pe = emb(torch.zeros(1, 4, 6))
    assert pe.shape == (1, 4, 6)
    pos, i = 3, 1  # channels 2i and 2i+1
    angle = pos / 10000 ** (2 * i / 6)
    torch.testing.assert_close(pe[0, pos, 2 * i], torch.tensor(math.sin(angle)))
    torch.testing.assert_close(pe[0, pos, 2 * i + 1], torch.tensor(math.cos(angle)))


def test_positional_embeddings_reject_long_sequences():
    with pytest.raises(ValueError, match="max_len"):
        SinusoidalPositionalEmbedding(4, max_len=8)(torch.zeros(1, 9, 4))
    with pytest.raises(ValueError, match="max_len"):
        LearnedPositionalEmbedding(8, 4)(torch.zeros(1, 9, 4))


def test_timestep_and_time_feature_embedding_shapes():
    assert TimestepEmbedding(100, 8)(torch.randint(0, 100, (2, 5))).shape == (2, 5, 8)
    assert TimeFeatureEmbedding(4, 8)(torch.rand(2, 5, 4)).shape == (2, 5, 8)
    assert TimeFeatureEmbedding(4, 8, bias=False).proj.bias is None
