"""Factorized (axial) attention of FactFormer for fields on a regular grid.

Full attention over the N = n_1 * ... * n_d points of a grid costs O(N^2). FactFormer projects
the field onto each axis (a learned pooling, one 1-D "sub-function" per axis), builds one small
kernel K_a = scale * q_a k_a^T per axis from that sub-function, with rotary embeddings of the axis
coordinate, and applies the kernels to the values axis after axis. The result is the separable
kernel K_1(x_1, x_1') ... K_d(x_d, x_d') over the whole grid at O(N * sum_a n_a) cost.

Paper: Zijie Li, Dule Shu, Amir Barati Farimani, "Scalable Transformer for PDE Surrogate
Modeling", NeurIPS 2023, arXiv:2305.17560. Parallel variant: Yang, Wang, Wang, "IFactFormer"
(Sci. China Phys. Mech. Astron.), arXiv:2412.18840.

Reference behaviour matched: BaratiLab/FactFormer@c9801d1 `libs/factorization_module.py`
(`PoolingReducer`, `FABlock2D`/`FABlock3D`) and `libs/attention.py: LowRankKernel` with the
settings FABlock uses (no softmax, no diagonal term, q/k xavier-uniform with gain 0.02, rotary
embedding with min_freq 1/64, scale 1/sqrt(width) only when kernel_multiplier > 4); the parallel
combination of EntropyXi/IFactFormer-m@38f76ac `libs/factorization_module.py: FABlock2D_m`.

How it fits the shared attention design (`seqlab.nn.attention`): the per-axis contraction
out = (scale q k^T) v *is* a kernel of the (q, k, v, mask) signature (`LowRankKernel`): the axis
is the sequence and the other axes fold into the value width. The whole operation cannot be a
`MultiHeadAttention` kernel, though: its queries and keys are projections of per-axis pooled
sub-functions, not of the tokens that give the values, and there is one (q, k) pair per axis.
So `FactorizedAttention` takes `MultiHeadAttention`'s role (it owns the projections and the head
split) and calls a `LowRankKernel` once per axis.

Deviations:
- Bug fix: the output norm is the "domain-wise" GroupNorm of FactFormer HEAD (one group per head,
  statistics over all grid points and the group's channels, no affine) returned in the input's
  shape. The reference module returns it with the spatial axes flattened, (b, nx*ny, c), and the
  residual sum after the block fails (research notes §1.1).
- Any number of axes (1-D, 2-D, 3-D) from one class instead of FABlock2D / FABlock3D.
- Speed-up, order of operations: each axis sub-function averages the normalized field over the
  other axes *before* the bias-free `to_in` and pooling projections (the reference projects every
  grid point, then averages). Averaging commutes with bias-free linear maps, so the result is the
  same up to float rounding, at O(n_a) instead of O(N) matrix products.

Layout (no change to the result): the values are kept head-major with the value channels before
the last axis, (B, H, *S[:-1], E, S[-1]), so that every axis kernel multiplies a view (from the
left for the leading axes, from the right for the last one), and the domain-wise norm runs on the
channel-last field (`channel_last_group_norm`); one copy in and one out instead of one per axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.nn.dropout import FastDropout
from seqlab.nn.attention import NO_MASK, AttentionMask
from seqlab.nn.rotary import RotaryEmbedding


def channel_last_group_norm(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """`norm` (a GroupNorm over channels) applied to a channel-last field x: (B, *S, C) -> (B, *S, C).

    Statistics per sample and group over all points of S, as GroupNorm on (B, C, *S). The field is
    handed to torch as a channels-last image (B, C, N, 1), a view, so neither side is copied.
    """
    b, c = x.shape[0], x.shape[-1]
    image = x.reshape(b, -1, 1, c).permute(0, 3, 1, 2)  # (B, C, N, 1), channels-last in memory
    out = F.group_norm(image, norm.num_groups, norm.weight, norm.bias, norm.eps)
    return out.permute(0, 2, 3, 1).reshape(x.shape)


class LowRankKernel(nn.Module):
    """out = dropout(scale * q k^T) v, without softmax: an integral operator with a learned kernel.

    q: (B, H, Lq, E), k: (B, H, Lk, E), v: (B, H, Lk, Ev) -> (B, H, Lq, Ev). Masks are not
    supported (a field has no padding and no causal order). Dropout acts on the kernel matrix.
    """

    def __init__(self, dropout: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        self.dropout = FastDropout(dropout)
        self.scale = scale

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask = NO_MASK) -> Tensor:
        if not mask.is_empty:
            raise ValueError("LowRankKernel does not support attention masks")
        return self.matrix(q, k) @ v

    def matrix(self, q: Tensor, k: Tensor) -> Tensor:
        """The kernel dropout(scale * q k^T): (B, H, Lq, Lk), for callers that apply it in their own layout."""
        return self.dropout(q @ k.transpose(-2, -1) * self.scale)


class GeGLU(nn.Module):
    """Linear(D_in, 2F) -> GELU(first half) * second half -> Linear(F, D_out). x: (..., D_in) -> (..., D_out)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(d_in, 2 * d_hidden)
        self.proj_out = nn.Linear(d_hidden, d_out)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(F.gelu(gate) * value)


class AxisProjection(nn.Module):
    """Learned projection of a field onto one axis (FactFormer's `PoolingReducer`).

    The reference maps every point by a bias-free linear map, averages over every other spatial
    axis, then applies LayerNorm and a GeGLU MLP. The average commutes with the linear map, so this
    module takes the field already averaged: pooled (B, n_axis, D) -> (B, n_axis, D_out).
    """

    def __init__(self, d_model: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, d_hidden, bias=False)
        self.norm = nn.LayerNorm(d_hidden)
        self.mlp = GeGLU(d_hidden, d_hidden, d_out)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.mlp(self.norm(self.proj(pooled)))


class AxisKernel(nn.Module):
    """Queries and keys of one axis: bias-free projections of its sub-function, rotated by the coordinate.

    sub: (B, n, D_latent), coords: (n,) -> q, k: (B, H, n, E_k) each.
    """

    def __init__(self, d_latent: int, n_heads: int, d_kernel: int, rotary: RotaryEmbedding | None) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.to_q = nn.Linear(d_latent, n_heads * d_kernel, bias=False)
        self.to_k = nn.Linear(d_latent, n_heads * d_kernel, bias=False)
        # The reference's small init: the kernels start near zero, so each block starts near identity.
        nn.init.xavier_uniform_(self.to_q.weight, gain=0.02)
        nn.init.xavier_uniform_(self.to_k.weight, gain=0.02)
        self.rotary = rotary

    def forward(self, sub: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = sub.shape
        q = self.to_q(sub).view(b, n, self.n_heads, -1).transpose(1, 2)  # (B, H, n, E_k)
        k = self.to_k(sub).view(b, n, self.n_heads, -1).transpose(1, 2)
        if self.rotary is not None:
            q, k = self.rotary(q, coords), self.rotary(k, coords)
        return q, k


class FactorizedAttention(nn.Module):
    """FactFormer's factorized attention block (FABlock) over a d-dimensional grid.

    u: (B, *S, D) channel-last field, coords: one (n_a,) tensor of positions per spatial axis ->
    (B, *S, D_out). Not residual: the caller adds the input.

    Args:
        d_model: field width D.
        n_heads: heads H.
        d_head: value width per head E.
        n_axes: spatial dimensions d.
        d_out: output width (default D).
        d_latent: width of each axis sub-function (default D, as the reference builds it).
        kernel_multiplier: query/key width per head is d_head * kernel_multiplier.
        combine: "chain" applies the axis kernels one after the other (FactFormer); "parallel"
            applies each to the values on its own and concatenates the results per head
            (IFactFormer-m), which doubles the width entering the output MLP in 2-D.
        dropout: dropout on the axis kernel matrices.
        rotary_min_freq: see `RotaryEmbedding`; None turns the rotary embedding off.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int,
        n_axes: int,
        d_out: int | None = None,
        d_latent: int | None = None,
        kernel_multiplier: int = 2,
        combine: Literal["chain", "parallel"] = "chain",
        dropout: float = 0.0,
        rotary_min_freq: float | None = 1 / 64,
    ) -> None:
        super().__init__()
        if combine not in ("chain", "parallel"):
            raise ValueError(f"combine must be 'chain' or 'parallel', got {combine!r}")
        d_out = d_out or d_model
        d_latent = d_latent or d_model
        d_kernel = d_head * kernel_multiplier
        self.n_heads, self.d_head, self.n_axes, self.combine = n_heads, d_head, n_axes, combine
        self.in_norm = nn.LayerNorm(d_model)
        self.to_v = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.to_in = nn.Linear(d_model, d_model, bias=False)
        self.projections = nn.ModuleList(AxisProjection(d_model, d_model, d_latent) for _ in range(n_axes))
        self.kernels = nn.ModuleList(
            AxisKernel(
                d_latent,
                n_heads,
                d_kernel,
                RotaryEmbedding(d_kernel, min_freq=rotary_min_freq) if rotary_min_freq is not None else None,
            )
            for _ in range(n_axes)
        )
        # The reference scales the kernel only for wide queries/keys.
        self.kernel = LowRankKernel(dropout, scale=1 / math.sqrt(d_kernel) if kernel_multiplier > 4 else 1.0)
        width = n_heads * d_head * (n_axes if combine == "parallel" else 1)
        # Domain-wise GroupNorm, one group per head (FactFormer); instance norm (IFactFormer-m).
        self.out_norm = nn.GroupNorm(n_heads if combine == "chain" else width, width, affine=False)
        self.to_out = nn.Sequential(
            nn.Linear(width, d_out, bias=False), nn.GELU(), nn.Linear(d_out, d_out, bias=False)
        )

    def axis_kernels(self, u: Tensor, coords: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """The (q, k) pair of every axis, from the normalized field u: (B, *S, D)."""
        pairs = []
        for a, (proj, kernel) in enumerate(zip(self.projections, self.kernels)):
            others = tuple(1 + o for o in range(self.n_axes) if o != a)
            pooled = u.mean(dim=others) if others else u  # (B, n_a, D): pooled first, then projected
            pairs.append(kernel(proj(self.to_in(pooled)), coords[a]))
        return pairs

    def forward(self, u: Tensor, coords: Sequence[Tensor]) -> Tensor:
        b, *spatial, _ = u.shape
        if len(spatial) != self.n_axes or len(coords) != self.n_axes:
            raise ValueError(
                f"factorized attention over {self.n_axes} axes got a field of shape {tuple(u.shape)} "
                f"and {len(coords)} coordinate vectors"
            )
        u = self.in_norm(u)
        d = self.n_axes
        # (B, *S, H, E) -> (B, H, *S[:-1], E, S[-1]): every axis kernel below then acts on a view.
        to_values = (0, d + 1, *range(1, d), d + 2, d)
        v = self.to_v(u).view(b, *spatial, self.n_heads, self.d_head).permute(to_values).contiguous()
        dims = [*range(2, d + 1), d + 2]  # the tensor dim of each spatial axis in v
        applied = []
        for a, (q, k) in enumerate(self.axis_kernels(u, coords)):
            source = applied[-1] if applied and self.combine == "chain" else v
            applied.append(self._along_axis(source, a, q, k, dim=dims[a]))
        out = applied[-1] if self.combine == "chain" else torch.cat(applied, dim=-2)  # (B, H, *S', E', S[-1])
        out = out.permute(0, *dims, 1, d + 1).reshape(b, *spatial, -1)  # (B, *S, H*E'), channels (head, e)
        return self.to_out(channel_last_group_norm(out, self.out_norm))  # (B, *S, D_out)

    def _along_axis(self, v: Tensor, axis: int, q: Tensor, k: Tensor, dim: int | None = None) -> Tensor:
        """Apply the kernel of `axis` to the values v: (B, H, ...), whose tensor dim `dim` holds that
        axis (default 2 + axis: the (B, H, *S, E) layout); the other dims ride along."""
        dim = 2 + axis if dim is None else dim
        kernel = self.kernel.matrix(q, k)  # (B, H, n, n)
        if dim == v.dim() - 1:  # the last dim: v (B, H, rest, n) times the kernel transposed
            return (v.flatten(2, -2) @ kernel.transpose(-2, -1)).view(v.shape)
        grouped = v.reshape(*v.shape[:2], math.prod(v.shape[2:dim]), v.shape[dim], -1)  # (B, H, before, n, after)
        return (kernel.unsqueeze(2) @ grouped).view(v.shape)
