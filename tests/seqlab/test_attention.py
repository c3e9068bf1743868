import math

import pytest
import torch

from seqlab.nn import AttentionMask, FullAttention, MultiHeadAttention


def naive_attention(q, k, v, allowed=None):
    """softmax(QK^T / sqrt(E)) V written out; rows with no allowed key give zeros."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v


def qkv(b=2, h=3, lq=5, lk=5, e=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, lq, e, generator=g), torch.randn(b, h, lk, e, generator=g),
            torch.randn(b, h, lk, e, generator=g))


def test_full_attention_equals_naive_without_mask():
    q, k, v = qkv(lq=4, lk=7)
    torch.testing.assert_close(FullAttention()(q, k, v), naive_attention(q, k, v))


def test_full_attention_equals_naive_with_causal_mask():
    q, k, v = qkv()
    allowed = torch.ones(5, 5, dtype=torch.bool).tril()
    torch.testing.assert_close(FullAttention()(q, k, v, AttentionMask(causal=True)), naive_attention(q, k, v, allowed))


@pytest.mark.parametrize("causal", [False, True])
def test_full_attention_equals_naive_with_key_padding(causal):
    q, k, v = qkv()
    padding = torch.tensor([[False, False, False, True, True], [True, False, False, False, False]])
    allowed = ~padding[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(5, 5, dtype=torch.bool).tril()
    out = FullAttention()(q, k, v, AttentionMask(causal=causal, key_padding=padding))
    expected = naive_attention(q, k, v, allowed)
    torch.testing.assert_close(out, expected)
    if causal:  # row 0 of sample 1 sees only a padded key: zeros, not NaN
        assert torch.all(out[1, :, 0] == 0)
    assert torch.isfinite(out).all()


def test_padded_keys_do_not_influence_output():
    q, k, v = qkv()
    padding = torch.tensor([[False, False, False, True, True]] * 2)
    mask = AttentionMask(key_padding=padding)
    k2, v2 = k.clone(), v.clone()
    k2[..., 3:, :] = 100 * torch.randn_like(k2[..., 3:, :])
    v2[..., 3:, :] = 100 * torch.randn_like(v2[..., 3:, :])
    torch.testing.assert_close(FullAttention()(q, k, v, mask), FullAttention()(q, k2, v2, mask))


def test_attention_dropout_only_in_training():
    q, k, v = qkv()
    kernel = FullAttention(dropout=0.5)
    kernel.eval()
    torch.testing.assert_close(kernel(q, k, v), naive_attention(q, k, v))
    kernel.train()
    assert not torch.allclose(kernel(q, k, v), naive_attention(q, k, v))


def test_multi_head_attention_matches_explicit_projections():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=12, n_heads=3).eval()
    x = torch.randn(2, 6, 12)
    out = mha(x, mask=AttentionMask(causal=True))
    split = lambda t: t.view(2, 6, 3, 4).transpose(1, 2)  # noqa: E731
    q, k, v = split(mha.q_proj(x)), split(mha.k_proj(x)), split(mha.v_proj(x))
    heads = naive_attention(q, k, v, torch.ones(6, 6, dtype=torch.bool).tril())
    expected = mha.out_proj(heads.transpose(1, 2).reshape(2, 6, 12))
    torch.testing.assert_close(out, expected)


def test_cross_attention_shapes():
    mha = MultiHeadAttention(d_model=8, n_heads=2)
    assert mha(torch.randn(3, 4, 8), torch.randn(3, 9, 8)).shape == (3, 4, 8)


def test_d_model_must_divide_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(d_model=10, n_heads=3)


class RecordingKernel(torch.nn.Module):
    """A stand-in for ProbSparse / factorized kernels: the module must accept any kernel."""

    def forward(self, q, k, v, mask):
        self.seen = (q.shape, k.shape, v.shape, mask)
        return torch.zeros_like(q)


def test_kernels_are_pluggable():
    kernel = RecordingKernel()
    mha = MultiHeadAttention(d_model=8, n_heads=2, kernel=kernel)
    mask = AttentionMask(causal=True)
    mha(torch.randn(1, 5, 8), mask=mask)
    assert kernel.seen == ((1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4), mask)
