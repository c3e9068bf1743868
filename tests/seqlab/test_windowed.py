"""Window attention: partitioning round-trips, unshifted windows equal full attention inside each
window, shifted windows (periodic and masked) equal a naive per-query computation, and the kernel
plugs into MultiHeadAttention."""

import itertools
import math

import pytest
import torch

from seqlab.nn import AttentionMask, FullAttention, MultiHeadAttention
from seqlab.nn.windowed import (
    CosineAttention,
    WindowAttention,
    WindowMask,
    roll_grid,
    window_partition,
    window_reverse,
)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def qkv(grid, b=2, h=3, e=4, seed=0):
    n = math.prod(grid)
    return randn(b, h, n, e, seed=seed), randn(b, h, n, e, seed=seed + 1), randn(b, h, n, e, seed=seed + 2)


def positions(grid):
    """Row-major grid coordinates of every token: list of tuples."""
    return list(itertools.product(*(range(g) for g in grid)))


@pytest.mark.parametrize(("grid", "window"), [((8, 12), (4, 3)), ((12,), (4,)), ((4, 4, 6), (2, 2, 3))])
def test_partition_round_trip_and_layout(grid, window):
    x = randn(2, 5, math.prod(grid), 3)
    windows = window_partition(x, grid, window)
    assert windows.shape == (2, 5, math.prod(grid) // math.prod(window), math.prod(window), 3)
    torch.testing.assert_close(window_reverse(windows, grid, window), x)
    # Window n, token j holds the grid point (window origin + offset j), both row-major.
    counts = [g // w for g, w in zip(grid, window)]
    coords = positions(grid)
    for n, origin in enumerate(itertools.product(*(range(c) for c in counts))):
        for j, offset in enumerate(itertools.product(*(range(w) for w in window))):
            point = tuple(o * w + d for o, w, d in zip(origin, window, offset))
            torch.testing.assert_close(windows[:, :, n, j], x[:, :, coords.index(point)])


def test_roll_grid_moves_tokens_by_the_shift():
    grid = (4, 6)
    x = torch.arange(24.0).view(1, 24, 1)
    rolled = roll_grid(x, grid, (1, -2))
    coords = positions(grid)
    for i, (y, xx) in enumerate(coords):
        assert rolled[0, coords.index(((y + 1) % 4, (xx - 2) % 6)), 0] == x[0, i, 0]


@pytest.mark.parametrize(("grid", "window"), [((8, 6), (4, 3)), ((12,), (4,))])
def test_unshifted_window_attention_equals_full_attention_per_window(grid, window):
    q, k, v = qkv(grid)
    kernel = WindowAttention(n_heads=3, n_dims=len(grid), cosine=False, position_bias=False)
    out = kernel(q, k, v, WindowMask(grid=grid, window=window))
    coords = positions(grid)
    expected = torch.empty_like(v)
    counts = [g // w for g, w in zip(grid, window)]
    for origin in itertools.product(*(range(c) for c in counts)):
        members = [
            coords.index(tuple(o * w + d for o, w, d in zip(origin, window, offset)))
            for offset in itertools.product(*(range(w) for w in window))
        ]
        expected[:, :, members] = FullAttention()(q[:, :, members], k[:, :, members], v[:, :, members])
    torch.testing.assert_close(out, expected)


def naive_window_attention(q, k, v, kernel, grid, window, shift, periodic):
    """Per query, loop over the keys it may see under the cyclic shift and do the softmax by hand.

    A token at p sits at p' = (p - s) mod G in the rolled grid; two tokens share a window iff
    p'_q // w == p'_k // w on every axis. Without periodicity they must also lie on the same side
    of the seam the roll created (p' + s >= G means the token wrapped around). The logit is
    tau_h * cos(q, k) + bias_h(p'_q - p'_k).
    """
    b, h, n, _ = q.shape
    coords = positions(grid)
    rolled = [tuple((c - s) % g for c, s, g in zip(p, shift, grid)) for p in coords]
    wrapped = [tuple(r + s >= g for r, s, g in zip(p, shift, grid)) for p in rolled]
    tau = kernel.cosine.logit_scale.detach().clamp(max=math.log(100)).exp().view(h)
    out = torch.zeros_like(v)
    for i in range(n):
        keys = [
            j
            for j in range(n)
            if all(a // w == c // w for a, c, w in zip(rolled[i], rolled[j], window))
            and (periodic or wrapped[i] == wrapped[j])
        ]
        offsets = torch.tensor([[a - c for a, c in zip(rolled[i], rolled[j])] for j in keys])
        bias = kernel.position_bias.at(offsets, window).detach().T  # (H, n_keys)
        qi = torch.nn.functional.normalize(q[:, :, i], dim=-1)  # (B, H, E)
        kj = torch.nn.functional.normalize(k[:, :, keys], dim=-1)  # (B, H, n_keys, E)
        logits = tau[:, None] * torch.einsum("bhe,bhke->bhk", qi, kj) + bias
        out[:, :, i] = torch.einsum("bhk,bhke->bhe", torch.softmax(logits, dim=-1), v[:, :, keys])
    return out


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize(
    ("grid", "window", "shift"), [((8, 12), (4, 4), (2, 2)), ((8, 6), (4, 3), (2, 1)), ((12,), (4,), (2,))]
)
def test_shifted_window_attention_equals_naive_masked_computation(grid, window, shift, periodic):
    torch.manual_seed(0)
    kernel = WindowAttention(n_heads=3, n_dims=len(grid), bias_hidden=16)
    with torch.no_grad():
        kernel.cosine.logit_scale.copy_(torch.tensor([0.5, 2.0, 4.0]).view(3, 1, 1))
    q, k, v = qkv(grid)
    out = kernel(q, k, v, WindowMask(grid=grid, window=window, shift=shift, periodic=periodic))
    expected = naive_window_attention(q, k, v, kernel, grid, window, shift, periodic)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_masked_shift_keeps_opposite_edges_apart_and_periodic_shift_joins_them():
    grid, window, shift = (8,), (4,), (2,)
    kernel = WindowAttention(n_heads=1, n_dims=1, cosine=False, position_bias=False)
    q, k, v = qkv(grid, h=1)
    v2 = v.clone()
    v2[..., 7, :] += 10.0  # the last token; token 0 shares its rolled window
    for periodic, changes in [(False, False), (True, True)]:
        mask = WindowMask(grid=grid, window=window, shift=shift, periodic=periodic)
        moved = kernel(q, k, v2, mask)[..., 0, :] - kernel(q, k, v, mask)[..., 0, :]
        assert bool(moved.abs().max() > 1e-3) == changes


def test_window_kernel_in_multi_head_attention_equals_full_attention_when_one_window_covers_the_grid():
    torch.manual_seed(0)
    windowed = MultiHeadAttention(12, 3, WindowAttention(3, cosine=False, position_bias=False))
    full = MultiHeadAttention(12, 3, FullAttention())
    full.load_state_dict(windowed.state_dict())
    x = randn(2, 4 * 6, 12)
    out = windowed(x, mask=WindowMask(grid=(4, 6), window=(4, 6)))
    torch.testing.assert_close(out, full(x))


def test_cosine_attention_with_causal_mask_equals_explicit_softmax():
    kernel = CosineAttention(n_heads=3)
    q, k, v = qkv((5,))
    out = kernel(q, k, v, AttentionMask(causal=True))
    cos = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).transpose(-2, -1)
    logits = (10.0 * cos).masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(out, torch.softmax(logits, dim=-1) @ v)


def test_logit_scale_is_clamped_at_100():
    kernel = CosineAttention(n_heads=1)
    q, k, v = qkv((6,), h=1)
    with torch.no_grad():
        kernel.logit_scale.fill_(math.log(100.0))
    at_cap = kernel(q, k, v)
    with torch.no_grad():
        kernel.logit_scale.fill_(10.0)
    torch.testing.assert_close(kernel(q, k, v), at_cap)


def test_gradients_reach_position_bias_and_temperature():
    kernel = WindowAttention(n_heads=2, bias_hidden=8)
    q, k, v = (t.requires_grad_() for t in qkv((4, 4), h=2))
    kernel(q, k, v, WindowMask(grid=(4, 4), window=(2, 2), shift=(1, 1), periodic=False)).square().sum().backward()
    for tensor in (q, k, v, kernel.cosine.logit_scale, *kernel.position_bias.parameters()):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(grid=(6, 8), window=(4, 4)), "window 4 must divide the token grid 6"),
        (dict(grid=(8, 8), window=(4, 4), shift=(4, 0)), "shift 4 must lie in"),
        (dict(grid=(8, 8), window=(4,)), "one entry per axis"),
        (dict(window=(4,)), "needs the token grid"),
    ],
)
def test_window_mask_rejects_bad_layouts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowMask(**kwargs)


def test_window_kernel_needs_a_window_mask():
    q, k, v = qkv((4, 4))
    with pytest.raises(TypeError, match="WindowMask"):
        WindowAttention(3)(q, k, v, AttentionMask())
