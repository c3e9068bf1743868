"""FactFormer: a transformer PDE surrogate with factorized (axial) attention and latent marching.

The last T_in frames, stacked as channels, are lifted to width D at every grid point. Each of
n_layers layers adds a random-Fourier-feature code of the grid and applies a factorized
attention block with a residual connection (`seqlab.nn.FactorizedAttention`: per-axis learned
projections of the field, per-axis kernels with rotary embeddings of the axis coordinate,
applied along each axis in turn). A latent-marching head then advances the latent field K times
(a learned step embedding plus a pre-norm MLP, residual) and decodes every latent point-wise,
so one pass predicts K = out_frames future frames. Longer horizons roll the model out
autoregressively (`pde.rollout`).

Paper: Zijie Li, Dule Shu, Amir Barati Farimani, "Scalable Transformer for PDE Surrogate
Modeling", NeurIPS 2023, arXiv:2305.17560. Variant: Yang, Wang, Wang, "IFactFormer" (Sci. China
Phys. Mech. Astron., DOI 10.1007/s11433-024-2666-9), arXiv:2412.18840.

Reference behaviour matched: BaratiLab/FactFormer@c9801d1 `examples/turb_ns2d_fact_lm.py`
(`FactorizedTransformer`, `FactFormer2D`), `libs/factorization_module.py`, `libs/attention.py`,
`libs/positional_encoding_module.py`, `configs/ns2d_fact_lm.yml` (defaults below): Linear(T_in, D)
lifting; per layer `u += Linear(GaussianFourierFeatures(grid, D/2, scale 8))`, then
`u = FABlock(u) + u`; `Linear(D, D*latent_multiplier, bias=False)` to the latent; per marching
step `z += step_emb[k]` (init N(0, 0.02^2)) and `z = MLP(LayerNorm(z)) + z`; the head
GroupNorm(8*latent_multiplier) -> grouped 1x1 conv (8 groups) -> GELU -> 1x1 conv -> GELU ->
1x1 conv. PyTorch default init elsewhere. The defaults (KM2d) give the reference's parameter count.
`variant="ifactformer_m"` follows EntropyXi/IFactFormer-m@38f76ac `libs/model.py`: each layer's
block is weight-shared and iterated, `u = u + block(u) / n_iterations`, with the axis kernels
applied in parallel (`FABlock2D_m`).

Deviations:
- Bug fix: the factorized block's domain-wise GroupNorm keeps the field's shape (see
  `seqlab.nn.factorized`); the reference's HEAD fails at the residual sum.
- Several channels: the lifting reads T_in * C values per point and the head writes C (the
  reference has one channel).
- Grid coordinates are the cell positions i * L / n that the datasets store; the reference uses
  linspace(0, 2*pi, n), which puts the periodic end point on the grid (spacing L / (n - 1)).
- The Fourier-feature matrices are buffers (saved, not trained), not frozen parameters.
- 1-D and 3-D grids use the same code (the reference example is 2-D).
- IFactFormer-m keeps FactFormer's lifting and latent-marching head (its reference uses a
  temporal convolution in and a one-frame head out, and masks for ocean data); only the
  processor changes, which is what the paper credits for stable long rollouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pde.models import check_fields
from seqlab.config import require_heads, require_positive, require_probability
from seqlab.nn import FeedForward
from seqlab.nn.factorized import FactorizedAttention, channel_last_group_norm

HEAD_GROUPS = 8  # groups of the head's first 1x1 convolution, fixed in the reference


@dataclass(frozen=True)
class FactFormerConfig:
    in_frames: int = 10
    """Input window T_in, frames stacked as channels (`in_time_window`)."""
    out_frames: int = 4
    """Frames K predicted per pass by latent marching (`max_latent_steps`)."""
    channels: int = 1
    """Physical fields C (`in_dim` = `out_dim`)."""
    spatial_dims: int = 2
    """Grid dimensions d: 1 (X), 2 (Y, X) or 3 (Z, Y, X)."""
    d_model: int = 128
    """Width D of the field at every grid point (`dim`)."""
    n_heads: int = 8
    """Heads H of the factorized attention (`heads`)."""
    d_head: int = 64
    """Value width per head E (`dim_head`)."""
    n_layers: int = 4
    """Factorized attention layers (`depth`)."""
    kernel_multiplier: int = 2
    """Query/key width per head is d_head * kernel_multiplier (`kernel_multiplier`)."""
    latent_multiplier: float = 2.0
    """The marching latent has width D * latent_multiplier (`latent_multiplier`)."""
    fourier_scale: float = 8.0
    """Standard deviation of the random Fourier-feature frequencies of the grid code."""
    rotary_min_freq: float = 1 / 64
    """Rotary embedding of the axis coordinate: positions are scaled by 1 / rotary_min_freq."""
    domain_length: float = 2 * math.pi
    """Side L of the (square) domain; axis coordinates are i * L / n (2*pi: Kolmogorov flow)."""
    dropout: float = 0.0
    """Dropout on the axis kernel matrices (the reference's LowRankKernel dropout, 0)."""
    variant: Literal["factformer", "ifactformer_m"] = "factformer"
    """`factformer`: chained axis kernels, one block per layer. `ifactformer_m`: parallel axis
    kernels and a weight-shared block iterated n_iterations times per layer (IFactFormer-m)."""
    n_iterations: int | None = None
    """Iterations of each weight-shared block (IFactFormer's `n_layer`); None: 1 for factformer,
    10 for ifactformer_m (its reference config)."""

    def __post_init__(self) -> None:
        require_positive(self, "in_frames", "out_frames", "channels", "d_model", "n_heads", "d_head", "n_layers")
        require_positive(self, "kernel_multiplier")
        require_probability(self, "dropout")
        if self.spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {self.spatial_dims}")
        if self.d_model % (2 * HEAD_GROUPS):
            raise ValueError(
                f"d_model must be a multiple of {2 * HEAD_GROUPS} (Fourier pairs, head groups), got {self.d_model}"
            )
        groups = HEAD_GROUPS * self.latent_multiplier
        if groups != int(groups) or groups < 1 or self.latent_dim % int(groups):
            raise ValueError(
                f"latent_multiplier={self.latent_multiplier} must make 8 * latent_multiplier an integer that "
                f"divides the latent width d_model * latent_multiplier = {self.latent_dim}"
            )
        if (self.d_head * self.kernel_multiplier) % 2:
            raise ValueError("d_head * kernel_multiplier must be even (rotary embedding pairs)")
        for name in ("fourier_scale", "rotary_min_freq", "domain_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.n_iterations is not None:
            require_positive(self, "n_iterations")
            if self.variant == "factformer" and self.n_iterations != 1:
                raise ValueError("n_iterations applies to variant 'ifactformer_m'; FactFormer applies each block once")

    @property
    def latent_dim(self) -> int:
        return int(self.d_model * self.latent_multiplier)

    @property
    def iterations(self) -> int:
        if self.n_iterations is not None:
            return self.n_iterations
        return 10 if self.variant == "ifactformer_m" else 1


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features of positions (Tancik et al., NeurIPS 2020), FactFormer's grid code.

    positions (N, d) -> (N, 2F): [sin(2 pi p W), cos(2 pi p W)] with W ~ N(0, scale^2) of shape
    (d, F), drawn once at construction and saved with the weights.
    """

    def __init__(self, n_dims: int, n_features: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.randn(n_dims, n_features) * scale)

    def forward(self, positions: Tensor) -> Tensor:
        phase = 2 * math.pi * positions @ self.frequencies  # (N, F)
        return torch.cat([phase.sin(), phase.cos()], dim=-1)


class LatentMarching(nn.Module):
    """Advance a latent field K times and decode each step: u (B, *S, D) -> (B, K, C, *S).

    z = Linear(u); for k < K: z = z + e_k; z = z + MLP(LayerNorm(z)); frame k = head(z).
    """

    def __init__(self, d_model: int, d_latent: int, n_steps: int, channels: int, norm_groups: int) -> None:
        super().__init__()
        self.expand = nn.Linear(d_model, d_latent, bias=False)
        self.step_embedding = nn.Parameter(torch.randn(n_steps, d_latent) * 0.02)
        self.norm = nn.LayerNorm(d_latent)
        self.propagator = FeedForward(d_latent, d_model, dropout=0.0, act="gelu")
        # Point-wise decoder, held as the reference's 1x1 convolutions (same weights and state dict)
        # and applied channel-last by `decode`.
        self.head = nn.Sequential(
            nn.GroupNorm(norm_groups, d_latent),
            nn.Conv1d(d_latent, d_model, 1, groups=HEAD_GROUPS, bias=False),
            nn.GELU(),
            nn.Conv1d(d_model, d_model // 2, 1, bias=False),
            nn.GELU(),
            nn.Conv1d(d_model // 2, channels, 1),
        )

    def forward(self, u: Tensor) -> Tensor:
        z = self.expand(u)  # (B, *S, L)
        frames = []
        for embedding in self.step_embedding:
            z = z + embedding
            z = z + self.propagator(self.norm(z))
            frames.append(self.decode(z).movedim(-1, 1))  # (B, C, *S)
        return torch.stack(frames, dim=1)  # (B, K, C, *S)

    def decode(self, z: Tensor) -> Tensor:
        """The head on one latent z: (B, *S, L) -> (B, *S, C), without moving the channels first.

        The grouped 1x1 convolution is a per-group matrix product, the others are linear maps.
        """
        norm, grouped, act, mix, act2, out = self.head
        h = channel_last_group_norm(z, norm)
        weight = grouped.weight.view(HEAD_GROUPS, -1, grouped.weight.shape[1])  # (G, D/G, L/G)
        h = torch.einsum("...gi,goi->...go", h.unflatten(-1, (HEAD_GROUPS, -1)), weight).flatten(-2)  # (B, *S, D)
        h = act2(F.linear(act(h), mix.weight.squeeze(-1)))  # (B, *S, D/2)
        return F.linear(h, out.weight.squeeze(-1), out.bias)


class FactFormer(nn.Module):
    """x: (B, T_in, C, *S) -> (B, out_frames, C, *S); `params` is accepted and ignored."""

    config_class: ClassVar[type] = FactFormerConfig

    def __init__(self, config: FactFormerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.lift = nn.Linear(c.in_frames * c.channels, c.d_model)
        self.grid_codes = nn.ModuleList(
            nn.Sequential(GaussianFourierFeatures(c.spatial_dims, c.d_model // 2, c.fourier_scale),
                          nn.Linear(c.d_model, c.d_model))
            for _ in range(c.n_layers)
        )
        self.blocks = nn.ModuleList(
            FactorizedAttention(
                c.d_model,
                c.n_heads,
                c.d_head,
                n_axes=c.spatial_dims,
                kernel_multiplier=c.kernel_multiplier,
                combine="chain" if c.variant == "factformer" else "parallel",
                dropout=c.dropout,
                rotary_min_freq=c.rotary_min_freq,
            )
            for _ in range(c.n_layers)
        )
        self.marching = LatentMarching(
            c.d_model, c.latent_dim, c.out_frames, c.channels, int(HEAD_GROUPS * c.latent_multiplier)
        )

    def grid(self, spatial: tuple[int, ...], device: torch.device) -> list[Tensor]:
        """Cell positions i * L / n of every axis, in the order of S."""
        return [torch.arange(n, device=device, dtype=torch.float32) * (self.config.domain_length / n) for n in spatial]

    def forward(self, x: Tensor, params: Tensor | None = None) -> Tensor:
        c = self.config
        check_fields(x, "FactFormer", c.in_frames, c.channels, c.spatial_dims)
        spatial = tuple(x.shape[3:])
        coords = self.grid(spatial, x.device)
        positions = torch.stack(torch.meshgrid(*coords, indexing="ij"), dim=-1).view(-1, c.spatial_dims)  # (N, d)
        u = self.lift(x.flatten(1, 2).movedim(1, -1))  # (B, *S, D): frames and channels of a point, lifted
        iterations = c.iterations
        for grid_code, block in zip(self.grid_codes, self.blocks):
            u = u + grid_code(positions).view(*spatial, -1)
            for _ in range(iterations):  # once for FactFormer; a weight-shared iteration for IFactFormer-m
                update = block(u, coords)
                u = u + (update if iterations == 1 else update / iterations)
        return self.marching(u)  # (B, K, C, *S)
