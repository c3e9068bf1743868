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


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("short_softmax", [1, 100], ids=["keys-last", "keys-first"])
def test_weight_dropout_path_is_the_same_attention(monkeypatch, causal, padded, short_softmax):
    """Training with dropout takes the written-out path; with the mask drawn as all-ones it must be
    exactly the masked attention (empty rows zero), and its dropout must hit the weights. Both score
    layouts: (Lq, Lk), and (Lk, Lq) normalized along the strided axis for few keys."""
    monkeypatch.setattr("seqlab.nn.attention.SHORT_SOFTMAX", short_softmax)
    q, k, v = qkv()
    padding = torch.tensor([[False, False, False, True, True], [True, False, False, False, False]])
    mask = AttentionMask(causal=causal, key_padding=padding if padded else None)
    allowed = mask.allowed(5, 5, q.device)
    kernel = FullAttention(dropout=0.3).train()
    seen = []

    def identity(x, p, training=True):
        seen.append((x.shape, p))
        return x

    monkeypatch.setattr("seqlab.nn.attention.dropout", identity)
    torch.testing.assert_close(kernel(q, k, v, mask), naive_attention(q, k, v, allowed))
    assert seen == [((2, 3, 5, 5), 0.3)]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_query_positions_equal_the_full_causal_pass_read_there(monkeypatch, dropout):
    """Queries at a subset of positions see what those positions see in a full causal pass (the
    dropout path with its draw replaced by the identity, so both paths compare exactly)."""
    monkeypatch.setattr("seqlab.nn.attention.dropout", lambda x, p, training=True: x)
    monkeypatch.setattr("seqlab.nn.attention.SHORT_SOFTMAX", 6)  # the subset sees 7 keys: keys last
    q, k, v = qkv(lq=7, lk=7)
    padding = torch.tensor([[True, True, False, False, False, False, False], [False] * 7])
    positions = torch.tensor([0, 1, 4, 6])  # sample 0's first two rows see only padding: zeros
    full = FullAttention()(q, k, v, AttentionMask(causal=True, key_padding=padding))
    subset = AttentionMask(causal=True, key_padding=padding, query_positions=positions)
    out = FullAttention(dropout=dropout).train()(q[:, :, positions], k, v, subset)
    torch.testing.assert_close(out, full[:, :, positions])


def test_bf16_on_cpu_is_written_out_up_to_the_score_limit_and_fused_beyond(monkeypatch):
    q, k, v = (t.bfloat16() for t in qkv(lq=6, lk=6))
    padding = torch.tensor([[True, False, False, False, False, False], [False] * 6])
    mask = AttentionMask(causal=True, key_padding=padding)
    expected = naive_attention(*(t.float() for t in (q, k, v)), mask.allowed(6, 6, q.device))
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(1) or sdpa(*a, **kw))
    written_out = FullAttention()(q, k, v, mask)
    assert not calls and written_out.dtype == torch.bfloat16
    monkeypatch.setattr("seqlab.nn.attention.WRITTEN_OUT_MAX_SCORES", 2 * 3 * 6 * 6 - 1)
    fused = FullAttention()(q, k, v, mask)
    assert calls == [1]
    for out in (written_out, fused):
        torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)


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


# --------------------------------------------------------------------------------- ProbSparse
from seqlab.nn import ProbSparseAttention  # noqa: E402


@pytest.mark.parametrize("causal", [False, True])
def test_probsparse_equals_full_attention_when_every_query_is_active(causal):
    q, k, v = qkv(lq=8, lk=8)
    kernel = ProbSparseAttention(factor=10).eval()  # 10 * ceil(ln 8) >= 8: all queries active
    mask = AttentionMask(causal=causal)
    torch.testing.assert_close(kernel(q, k, v, mask), FullAttention()(q, k, v, mask))


def test_probsparse_lazy_queries_get_the_mean_or_running_sum_of_values():
    q, k, v = qkv(b=1, h=1, lq=30, lk=30)
    kernel = ProbSparseAttention(factor=1).eval()  # u = ceil(ln 30) = 4 active queries
    out = kernel(q, k, v)
    full = FullAttention()(q, k, v)
    exact = torch.isclose(out, full).all(dim=-1)[0, 0]
    lazy = torch.isclose(out, v.mean(dim=-2, keepdim=True).expand_as(out)).all(dim=-1)[0, 0]
    assert exact.sum() == 4 and (exact | lazy).all()
    mask = AttentionMask(causal=True)
    causal_out = kernel(q, k, v, mask)
    running = torch.isclose(causal_out, v.cumsum(dim=-2)).all(dim=-1)[0, 0]
    exact = torch.isclose(causal_out, FullAttention()(q, k, v, mask)).all(dim=-1)[0, 0]
    assert (exact | running).all() and running.sum() >= 30 - 4  # position 0 is both


def reference_probsparse(q, k, v, factor, sample, causal):
    """Informer2020's ProbAttention written out: sampled keys gathered per query, then top-u queries."""
    b, h, lq, e = q.shape
    lk = k.shape[-2]
    n_top = min(lq, factor * math.ceil(math.log(lq)))
    k_sample = k.unsqueeze(-3).expand(b, h, lq, lk, e)[:, :, torch.arange(lq).unsqueeze(1), sample, :]
    qk_sample = (q.unsqueeze(-2) @ k_sample.transpose(-2, -1)).squeeze(-2)
    m = qk_sample.max(-1)[0] - qk_sample.sum(-1) / lk
    top = m.topk(n_top, sorted=False)[1]
    q_top = q[torch.arange(b)[:, None, None], torch.arange(h)[None, :, None], top, :]
    scores = q_top @ k.transpose(-2, -1) / math.sqrt(e)
    if causal:
        scores = scores.masked_fill(torch.arange(lk) > top[..., None], float("-inf"))
        context = v.cumsum(dim=-2)
    else:
        context = v.mean(dim=-2, keepdim=True).expand(b, h, lq, e).clone()
    context[torch.arange(b)[:, None, None], torch.arange(h)[None, :, None], top, :] = torch.softmax(scores, -1) @ v
    return context


@pytest.mark.parametrize("causal", [False, True])
def test_probsparse_fast_path_equals_the_reference_algorithm(causal):
    q, k, v = qkv(b=2, h=2, lq=50, lk=50)
    kernel = ProbSparseAttention(factor=2).train()
    torch.manual_seed(7)
    sample = torch.randint(50, (50, 2 * math.ceil(math.log(50))))
    torch.manual_seed(7)
    ours = kernel(q, k, v, AttentionMask(causal=causal))
    torch.testing.assert_close(ours, reference_probsparse(q, k, v, 2, sample, causal))


def test_probsparse_handles_a_single_key_that_the_reference_cannot():
    q, k, v = qkv(lq=1, lk=1)
    out = ProbSparseAttention(factor=5).eval()(q, k, v, AttentionMask(causal=True))
    torch.testing.assert_close(out, v)


def test_probsparse_is_reproducible():
    q, k, v = qkv(lq=40, lk=40)
    kernel = ProbSparseAttention(factor=1)
    kernel.eval()
    torch.testing.assert_close(kernel(q, k, v), kernel(q, k, v))  # fixed generator at inference
    kernel.train()
    torch.manual_seed(3)
    first = kernel(q, k, v)
    torch.manual_seed(3)
    assert torch.equal(first, kernel(q, k, v))  # the seeded global generator in training


def test_mix_reads_heads_and_positions_interleaved_like_informer():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2, mix=True).eval()
    x = torch.randn(1, 3, 8)
    split = lambda t: t.view(1, 3, 2, 4).transpose(1, 2)  # noqa: E731
    heads = naive_attention(split(mha.q_proj(x)), split(mha.k_proj(x)), split(mha.v_proj(x)))  # (1, 2, 3, 4)
    torch.testing.assert_close(mha(x), mha.out_proj(heads.reshape(1, 3, 8)))
