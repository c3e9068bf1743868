"""Incremental decoding with a KV cache gives the outputs of one full causal pass."""

import math

import pytest
import torch
from torch import nn

from seqlab.nn import AttentionMask, Encoder, EncoderLayer, FeedForward, FullAttention, MultiHeadAttention
from seqlab.nn.attention import KVCache

CHUNKS = (3, 1, 2, 4)  # token counts fed per call; 10 tokens in all


def chunked(module_call, x, chunks=CHUNKS):
    """Run `module_call(x_chunk)` over consecutive chunks of x: (B, L, D) and concatenate."""
    outs, start = [], 0
    for n in chunks:
        outs.append(module_call(x[:, start : start + n]))
        start += n
    return torch.cat(outs, dim=1)


def test_full_attention_with_causal_offset_equals_shifted_tril():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 2, 3, 4, generator=g), torch.randn(2, 2, 7, 4, generator=g), torch.randn(2, 2, 7, 4, generator=g)
    scores = q @ k.transpose(-2, -1) / math.sqrt(4)
    allowed = torch.ones(3, 7, dtype=torch.bool).tril(4)  # query i sits at position 4 + i
    expected = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v
    out = FullAttention()(q, k, v, AttentionMask(causal=True, causal_offset=4))
    torch.testing.assert_close(out, expected)


def test_multi_head_attention_with_cache_equals_full_causal_pass():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=12, n_heads=3).eval()
    x = torch.randn(2, sum(CHUNKS), 12)
    full = mha(x, mask=AttentionMask(causal=True))
    cache = KVCache(max_len=16)
    incremental = chunked(lambda part: mha(part, mask=AttentionMask(causal=True), cache=cache), x)
    torch.testing.assert_close(incremental, full)
    assert cache.length == sum(CHUNKS)


def test_cache_with_key_padding_over_cached_and_new_keys():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, n_heads=2).eval()
    x = torch.randn(2, sum(CHUNKS), 8)
    padding = torch.zeros(2, sum(CHUNKS), dtype=torch.bool)
    padding[1, :2] = True  # sample 1 is left-padded by two tokens
    full = mha(x, mask=AttentionMask(causal=True, key_padding=padding))
    cache, outs, start = KVCache(max_len=sum(CHUNKS)), [], 0
    for n in CHUNKS:
        mask = AttentionMask(causal=True, key_padding=padding[:, : start + n])
        outs.append(mha(x[:, start : start + n], mask=mask, cache=cache))
        start += n
    torch.testing.assert_close(torch.cat(outs, dim=1), full)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_with_caches_equals_full_causal_pass(norm_first):
    torch.manual_seed(0)
    layers = [
        EncoderLayer(MultiHeadAttention(8, 2), FeedForward(8, 16), 8, norm_first=norm_first) for _ in range(3)
    ]
    encoder = Encoder(layers, norm=nn.LayerNorm(8)).eval()
    x = torch.randn(3, sum(CHUNKS), 8)
    mask = AttentionMask(causal=True)
    full = encoder(x, mask=mask)
    caches = [KVCache(max_len=32) for _ in layers]
    torch.testing.assert_close(chunked(lambda part: encoder(part, mask=mask, cache=caches), x), full)
    # Reset and decode again: the same outputs, the storage reused.
    for cache in caches:
        cache.reset()
    torch.testing.assert_close(chunked(lambda part: encoder(part, mask=mask, cache=caches), x, (1,) * 10), full)


def test_cache_overflow_and_shape_change_are_errors():
    mha = MultiHeadAttention(d_model=4, n_heads=1).eval()
    cache = KVCache(max_len=3)
    mha(torch.randn(1, 2, 4), mask=AttentionMask(causal=True), cache=cache)
    with pytest.raises(ValueError, match="max_len=3"):
        mha(torch.randn(1, 2, 4), mask=AttentionMask(causal=True), cache=cache)
    with pytest.raises(ValueError, match="batch/heads"):
        mha(torch.randn(2, 1, 4), mask=AttentionMask(causal=True), cache=cache)
    with pytest.raises(ValueError, match="max_len"):
        KVCache(0)


def test_encoder_cache_needs_one_cache_per_layer():
    encoder = Encoder([EncoderLayer(MultiHeadAttention(4, 1), FeedForward(4, 8), 4) for _ in range(2)])
    with pytest.raises(ValueError, match="one KVCache per layer"):
        encoder(torch.randn(1, 2, 4), mask=AttentionMask(causal=True), cache=[KVCache(4)])
