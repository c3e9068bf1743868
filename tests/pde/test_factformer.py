import math

import pytest
import torch

from pde.models import MODELS, FieldShapeError, build_model
from pde.models.factformer import FactFormer, FactFormerConfig
from seqlab.config import ConfigError
from seqlab.nn.factorized import FactorizedAttention, LowRankKernel
from seqlab.nn.rotary import RotaryEmbedding


def tiny(**overrides):
    base = dict(in_frames=3, out_frames=2, channels=2, d_model=16, n_heads=2, d_head=4, n_layers=2)
    return FactFormerConfig(**{**base, **overrides})


# --------------------------------------------------------------------------------- rotary
def explicit_rotation(x, coords, min_freq):
    """Pair i = (channel i, channel i + E/2) turned by the 2x2 matrix of angle p / min_freq * 10000^(-2i/E)."""
    e = x.shape[-1]
    out = torch.empty_like(x)
    for n, p in enumerate(coords.tolist()):
        for i in range(e // 2):
            theta = p / min_freq * 10000 ** (-2 * i / e)
            c, s = math.cos(theta), math.sin(theta)
            a, b = x[..., n, i], x[..., n, i + e // 2]
            out[..., n, i] = c * a - s * b
            out[..., n, i + e // 2] = s * a + c * b
    return out


def test_rotary_matches_explicit_pair_rotations():
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    coords = torch.tensor([0.0, 0.3, 1.1, 2.0, 6.2])
    rope = RotaryEmbedding(6, min_freq=1 / 64).double()
    torch.testing.assert_close(rope(x, coords), explicit_rotation(x, coords, 1 / 64), rtol=1e-4, atol=1e-4)


def test_rotary_scores_depend_only_on_coordinate_differences():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8, min_freq=1 / 4)
    q, k = torch.randn(1, 8), torch.randn(1, 8)
    p, p2 = torch.tensor([0.7]), torch.tensor([0.2])
    score = (rope(q, p) * rope(k, p2)).sum()
    for shift in (0.5, -1.3, 3.0):
        shifted = (rope(q, p + shift) * rope(k, p2 + shift)).sum()
        torch.testing.assert_close(shifted, score, rtol=1e-4, atol=1e-4)
    other = (rope(q, p + 0.4) * rope(k, p2)).sum()  # a different difference gives a different score
    assert not torch.allclose(other, score, atol=1e-3)
    torch.testing.assert_close(rope(q, p).norm(), q.norm())  # a rotation keeps lengths


# --------------------------------------------------------------------------------- factorized attention
def test_low_rank_kernel_is_unnormalized_qk_times_v():
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 6)
    expected = torch.zeros(2, 3, 5, 6)
    for b in range(2):
        for h in range(3):
            for i in range(5):
                for j in range(7):
                    expected[b, h, i] += 0.5 * (q[b, h, i] @ k[b, h, j]) * v[b, h, j]
    torch.testing.assert_close(LowRankKernel(scale=0.5)(q, k, v), expected, rtol=1e-4, atol=1e-5)


def explicit_factorized(block, u, coords):
    """The block written out: explicit pooling, rotary by 2x2 rotations, one dense kernel over the
    whole grid built from the axis kernels, explicit group norm, then the output MLP."""
    b, ny, nx, d = u.shape
    h, e = block.n_heads, block.d_head
    un = torch.nn.functional.layer_norm(u, (d,), block.in_norm.weight, block.in_norm.bias)
    v = (un @ block.to_v.weight.T).view(b, ny, nx, h, e)  # (B, Y, X, H, E)
    sub = un @ block.to_in.weight.T
    kernels = []
    for axis, n in ((0, ny), (1, nx)):
        proj = block.projections[axis]
        h1 = sub @ proj.proj.weight.T
        pooled = h1.mean(dim=2) if axis == 0 else h1.mean(dim=1)  # (B, n, F)
        sub_axis = proj.mlp(proj.norm(pooled))
        kern = block.kernels[axis]
        q = (sub_axis @ kern.to_q.weight.T).view(b, n, h, -1).transpose(1, 2)
        k = (sub_axis @ kern.to_k.weight.T).view(b, n, h, -1).transpose(1, 2)
        q, k = explicit_rotation(q, coords[axis], 1 / 64), explicit_rotation(k, coords[axis], 1 / 64)
        kernels.append(torch.einsum("bhie,bhje->bhij", q, k) * block.kernel.scale)  # (B, H, n, n)
    k_y, k_x = kernels
    if block.combine == "chain":
        # the separable kernel K((y, x), (y', x')) = K_y(y, y') K_x(x, x') applied over all N points
        full = torch.einsum("bhij,bhlm->bhiljm", k_y, k_x).reshape(b, h, ny * nx, ny * nx)
        out = torch.einsum("bhpq,bqhe->bphe", full, v.reshape(b, ny * nx, h, e))  # (B, N, H, E)
    else:
        along_y = torch.einsum("bhij,bjlhe->bilhe", k_y, v)
        along_x = torch.einsum("bhlm,bimhe->bilhe", k_x, v)
        out = torch.cat([along_y, along_x], dim=-1).reshape(b, ny * nx, h, 2 * e)
    out = out.reshape(b, ny * nx, -1)  # (B, N, C) with C ordered (head, channel)
    groups = h if block.combine == "chain" else out.shape[-1]
    grouped = out.view(b, ny * nx, groups, -1)
    mean = grouped.mean(dim=(1, 3), keepdim=True)
    var = grouped.var(dim=(1, 3), unbiased=False, keepdim=True)
    normed = ((grouped - mean) / torch.sqrt(var + 1e-5)).view(b, ny, nx, -1)
    return block.to_out(normed)


@pytest.mark.parametrize("combine", ["chain", "parallel"])
def test_factorized_attention_equals_explicit_per_axis_computation(combine):
    torch.manual_seed(0)
    block = FactorizedAttention(8, n_heads=2, d_head=3, n_axes=2, kernel_multiplier=2, combine=combine)
    for kernel in block.kernels:  # the reference init gives kernels near zero; make them count
        torch.nn.init.normal_(kernel.to_q.weight, std=0.5)
        torch.nn.init.normal_(kernel.to_k.weight, std=0.5)
    u = torch.randn(2, 5, 4, 8)
    coords = [torch.arange(5) * 2 * math.pi / 5, torch.arange(4) * 2 * math.pi / 4]
    out = block(u, coords)
    assert out.shape == u.shape  # the domain-wise norm keeps the grid (reference bug, notes 1.1)
    torch.testing.assert_close(out, explicit_factorized(block, u, coords), rtol=1e-3, atol=1e-4)


def test_chained_axis_order_does_not_matter():
    """The chained kernels form a separable operator: applying the x kernel first gives the same field."""
    torch.manual_seed(1)
    block = FactorizedAttention(8, 2, 3, n_axes=2)
    u, coords = torch.randn(1, 4, 6, 8), [torch.linspace(0, 1, 4), torch.linspace(0, 1, 6)]
    (qy, ky), (qx, kx) = block.axis_kernels(block.in_norm(u), coords)
    v = block.to_v(block.in_norm(u)).view(1, 4, 6, 2, 3).movedim(-2, 1)
    y_then_x = block._along_axis(block._along_axis(v, 0, qy, ky), 1, qx, kx)
    x_then_y = block._along_axis(block._along_axis(v, 1, qx, kx), 0, qy, ky)
    torch.testing.assert_close(y_then_x, x_then_y, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------- model
@pytest.mark.parametrize("variant", ["factformer", "ifactformer_m"])
@pytest.mark.parametrize(
    ("spatial", "in_frames", "out_frames", "channels"),
    [((8, 8), 3, 2, 2), ((6, 10), 1, 4, 1), ((16, 16), 2, 1, 3), ((12,), 4, 3, 2), ((4, 6, 4), 2, 2, 1)],
)
def test_output_shape(variant, spatial, in_frames, out_frames, channels):
    cfg = tiny(variant=variant, in_frames=in_frames, out_frames=out_frames, channels=channels,
               spatial_dims=len(spatial), n_iterations=2 if variant == "ifactformer_m" else None)
    x = torch.randn(2, in_frames, channels, *spatial)
    y = FactFormer(cfg)(x, params=torch.randn(2, 3))
    assert y.shape == (2, out_frames, channels, *spatial) and y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_one_model_runs_at_several_resolutions():
    model = FactFormer(tiny()).eval()
    for n in (8, 16, 12):
        assert model(torch.randn(1, 3, 2, n, n)).shape == (1, 2, 2, n, n)


@pytest.mark.parametrize("variant", ["factformer", "ifactformer_m"])
def test_gradient_reaches_every_parameter(variant):
    torch.manual_seed(0)
    model = FactFormer(tiny(variant=variant))
    model(torch.randn(2, 3, 2, 6, 6)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_deterministic_under_a_seed():
    x = torch.randn(1, 3, 2, 6, 6)

    def build(seed):
        torch.manual_seed(seed)
        return FactFormer(tiny()).eval()

    a, b, c = build(5), build(5), build(6)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert not torch.allclose(a(x), c(x))
    # the random Fourier matrices are saved with the weights, so a loaded model predicts the same
    c.load_state_dict(a.state_dict())
    torch.testing.assert_close(c(x), a(x), rtol=0, atol=0)


def test_first_frames_do_not_depend_on_the_marching_length():
    """Latent step k only sees steps <= k: grading the first k frames equals running k steps."""
    torch.manual_seed(0)
    long = FactFormer(tiny(out_frames=4)).eval()
    short = FactFormer(tiny(out_frames=2)).eval()
    state = long.state_dict()
    state["marching.step_embedding"] = state["marching.step_embedding"][:2]
    short.load_state_dict(state)
    x = torch.randn(2, 3, 2, 6, 6)
    torch.testing.assert_close(short(x), long(x)[:, :2], rtol=1e-5, atol=1e-6)


def test_ifactformer_iterations_share_weights():
    one = FactFormer(tiny(variant="ifactformer_m", n_iterations=1))
    many = FactFormer(tiny(variant="ifactformer_m", n_iterations=5))
    assert [(k, v.shape) for k, v in one.state_dict().items()] == [(k, v.shape) for k, v in many.state_dict().items()]
    many.load_state_dict(one.state_dict())
    x = torch.randn(1, 3, 2, 6, 6)
    assert not torch.allclose(one(x), many(x))
    assert FactFormerConfig(variant="ifactformer_m").iterations == 10 and FactFormerConfig().iterations == 1


def test_reference_km2d_size_has_the_reference_parameter_count():
    """ns2d_fact_lm.yml: 3,464,001 parameters counting the frozen Fourier matrices (notes 1.2)."""
    model = FactFormer(FactFormerConfig())
    trainable = sum(p.numel() for p in model.parameters())
    fourier = sum(b.numel() for name, b in model.named_buffers() if name.endswith("frequencies"))
    assert trainable + fourier == 3_464_001


# --------------------------------------------------------------------------------- errors and registry
def test_wrong_input_shape_is_a_clear_error():
    model = FactFormer(tiny())
    with pytest.raises(FieldShapeError, match=r"expected \(B, T_in=3, C=2, Y, X\)"):
        model(torch.randn(1, 3, 1, 8, 8))
    with pytest.raises(FieldShapeError, match="T_in=3"):
        model(torch.randn(1, 4, 2, 8, 8))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"d_model": 20}, "d_model"), ({"n_iterations": 3}, "n_iterations"), ({"spatial_dims": 4}, "spatial_dims"),
     ({"latent_multiplier": 1.3}, "latent_multiplier"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        build_model("factformer", {"d_model": 16, "n_heads": 2, "d_head": 4, **overrides})


def test_registry_builds_from_a_mapping():
    assert {"factformer", "pde_transformer"} <= set(MODELS.names())
    model = build_model("factformer", {"in_frames": 2, "d_model": 16, "n_heads": 2, "d_head": 4, "n_layers": 1})
    assert isinstance(model, FactFormer) and model.config.in_frames == 2


# --------------------------------------------------------------------------------- CPU fast paths
def reference_order_block(block, u, coords):
    """The block in the reference's order and layout: to_in and the pooling projection on every point,
    then the mean; values (B, H, *S, E) moved axis by axis; GroupNorm on channels-first."""
    b, *spatial, _ = u.shape
    un = block.in_norm(u)
    v = block.to_v(un).view(b, *spatial, block.n_heads, block.d_head).movedim(-2, 1)  # (B, H, *S, E)
    sub = block.to_in(un)
    applied = []
    for a, (proj, kern) in enumerate(zip(block.projections, block.kernels)):
        others = tuple(1 + o for o in range(len(spatial)) if o != a)
        h = proj.proj(sub)
        h = h.mean(dim=others) if others else h
        q, k = kern(proj.mlp(proj.norm(h)), coords[a])
        source = applied[-1] if applied and block.combine == "chain" else v
        moved = source.movedim(2 + a, 2)
        out = block.kernel(q, k, moved.reshape(*moved.shape[:3], -1)).view(moved.shape).movedim(2, 2 + a)
        applied.append(out)
    out = applied[-1] if block.combine == "chain" else torch.cat(applied, dim=-1)
    out = out.movedim(1, -2).reshape(b, -1, block.n_heads * out.shape[-1])
    out = block.out_norm(out.transpose(1, 2)).transpose(1, 2)
    return block.to_out(out.reshape(b, *spatial, -1))


@pytest.mark.parametrize("combine", ["chain", "parallel"])
@pytest.mark.parametrize("spatial", [(9,), (5, 6), (3, 4, 5)])
def test_fast_block_equals_reference_order(combine, spatial):
    torch.manual_seed(2)
    block = FactorizedAttention(12, n_heads=3, d_head=4, n_axes=len(spatial), combine=combine)
    for kernel in block.kernels:
        torch.nn.init.normal_(kernel.to_q.weight, std=0.5)
        torch.nn.init.normal_(kernel.to_k.weight, std=0.5)
    u = torch.randn(2, *spatial, 12, dtype=torch.float64)
    block = block.double()
    coords = [torch.arange(n, dtype=torch.float64) / n for n in spatial]
    torch.testing.assert_close(block(u, coords), reference_order_block(block, u, coords), rtol=1e-5, atol=1e-5)


def test_channel_last_head_equals_reference_convolutions():
    torch.manual_seed(3)
    marching = FactFormer(tiny(d_model=32, latent_multiplier=2.0)).marching
    for p in marching.head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    z = torch.randn(2, 5, 6, 64)  # (B, Y, X, L)
    expected = marching.head(z.flatten(1, 2).transpose(1, 2)).transpose(1, 2).reshape(2, 5, 6, -1)
    torch.testing.assert_close(marching.decode(z), expected, rtol=1e-5, atol=1e-5)
