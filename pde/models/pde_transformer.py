"""PDE-Transformer: a multi-scale shifted-window transformer surrogate with adaLN conditioning.

The input frames are cut into p x p patches (a strided convolution) and processed by a U-shaped
stack of Swin-V2 window-attention stages: `levels` encoder stages, each followed by token
merging (3x3 conv to D/2 channels, PixelUnshuffle(2): width doubles, grid halves), a latent
stage, and `levels` decoder stages, each preceded by token splitting (3x3 conv to 2D channels,
PixelShuffle(2)), concatenation with the encoder skip and a 1x1 convolution. Inside a stage the
windows are shifted by w/2 in every other block. Every block is a pre-LN residual block whose
LayerNorm outputs are modulated (DiT's adaLN: x * (1 + scale) + shift, branch * (1 + gate)) by
a conditioning vector made of the PDE type and the PDE parameters. A 3x3 conv, an adaLN final
layer and un-patchifying return the predicted frames.

`channel_mode="mixed"` (MC) stacks all frames and channels into one token grid;
`channel_mode="separate"` (SC) embeds each physical channel as its own token stream (patches of
its frames), adds to every block an attention across the channels at each token, and adds a
channel-type embedding to the conditioning.

Paper: Benjamin Holzschuh, Qiang Liu, Georg Kohl, Nils Thuerey, "PDE-Transformer: Efficient and
Versatile Transformers for Physics Simulations", ICML 2025, arXiv:2505.24717.

Reference behaviour matched: tum-pbs/pde-transformer@3f3adee
`pdetransformer/core/mixed_channels/pde_transformer.py` (`PDEImpl`, `PDEStage`, `PDEBlock`,
`WindowAttention2DTime`, `Downsample`, `Upsample`, `PDE_S/B/L`), `core/mixed_channels/udit.py`
(`FinalLayer`), `core/separate_channels/pde_transformer.py` (channel attention, channel-type and
PDE-parameter embedders), `config/ape_2d/supervised/pde-mc-s-mse.yaml` (S size, patch 4,
window 8, periodic, no carrier tokens). As there: qkv without bias, Swin-V2 cosine attention
with the continuous position bias, LayerNorm with affine weights before each branch, the finest
decoder stage at width 2D taking `depths[levels + 1]` blocks (the reference's indexing), one
conditioning embedder per level (decoder level 0 and the head use level 1's), zero-initialized
modulations (so each block starts as a plain pre-LN block) and a zero-initialized output layer
(the model predicts 0 at initialization), Xavier-uniform weights elsewhere, label dropout 0.1
to a "no PDE type" embedding, next frames predicted directly (not as increments).

Deviations:
- No diffusion time: the supervised model always feeds t = 0, whose embedding MLP(sin/cos(0))
  is a learned constant; we keep that constant as a learned vector (`ConditionEmbedder.base`).
  Flow-matching training and carrier tokens (off in the reference configs) are not offered.
- PDE parameters condition both variants through SC's parameter embedder (value x 1000 ->
  sin/cos features -> MLP, plus an embedding of which parameter it is, MLP, summed over
  parameters); the reference's SC multiplies that embedding by 0.0 and MC has none.
- Channel types (SC) are the channel indices 0..C-1 and are never dropped (the reference applies
  label dropout to them as well).
- Each attention has an output projection (`seqlab.nn.MultiHeadAttention` always does); the
  reference returns the concatenated heads unprojected. That adds D^2 weights per attention.
- Un-patchifying uses PixelShuffle: the same map as the reference's einsum up to a fixed
  permutation of the zero-initialized output channels.
- The resolution must be divisible by patch * window * 2^levels; the reference pads small token
  grids with zeros that then take part in attention.
- The hidden width is not capped (the reference's `max_hidden_size=2048` never binds for S/B/L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from pde.models import FieldShapeError, check_fields
from seqlab.config import require_positive, require_probability
from seqlab.errors import ConfigError, SeqlabError
from seqlab.nn import FeedForward, MultiHeadAttention
from seqlab.nn.windowed import CosineAttention, WindowAttention, WindowMask

PARAMETER_SCALE = 1000.0
"""PDE parameters (expected roughly in [0, 1]) are multiplied by this before the sin/cos
features, as the reference scales its parameters, simulation times and diffusion times."""
FREQUENCY_FEATURES = 256
"""Width of the sin/cos features of a scalar (DiT's `frequency_embedding_size`)."""


@dataclass(frozen=True)
class PDETransformerConfig:
    in_frames: int = 1
    """Input frames T_in (stacked as channels; the reference predicts from one frame)."""
    out_frames: int = 1
    """Frames T_out predicted per pass."""
    channels: int = 1
    """Physical fields C (`in_channels` / `out_channels` of one frame)."""
    patch_size: int = 4
    """Patch side p in grid points (`patch_size`); tokens are (Y/p) x (X/p)."""
    window_size: int = 8
    """Attention window side w in tokens (`window_size`), the same at every level."""
    hidden_size: int = 96
    """Token width D at the finest level (`hidden_size`); level l has width D * 2^l."""
    depths: tuple[int, ...] = (2, 5, 8, 5, 2)
    """Blocks per stage (`depth`): `levels` encoder stages, the latent stage, then the decoder
    stages indexed like the reference (decoder level i takes depths[levels + 1 + i])."""
    n_heads: int = 4
    """Attention heads at every level (`num_heads`)."""
    mlp_ratio: float = 4.0
    """Hidden width of each block's MLP as a multiple of the token width (`mlp_ratio`)."""
    channel_mode: Literal["mixed", "separate"] = "mixed"
    """`mixed` (MC): channels share the tokens; `separate` (SC): one token stream per channel
    with attention across channels."""
    periodic: bool = True
    """Shifted windows wrap around the domain (periodic BCs); False masks them at the edges."""
    n_param: int = 0
    """PDE parameters P given to `forward` as `params` (B, P) for conditioning; 0 = none."""
    n_pde_types: int = 0
    """Distinct PDE types (class labels) for conditioning via `pde_type`; 0 = none."""
    label_dropout: float = 0.1
    """Probability that a sample's PDE type is replaced by "unknown" in training
    (`class_dropout_prob`)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "s": {},
        "b": {"hidden_size": 192, "n_heads": 8},
        "l": {"hidden_size": 384, "n_heads": 16},
        # For 2 CPU cores at 64^2 (1.6M weights, ~70 training samples/s on one thread): tokens of
        # 4x4 points, windows of 4x4 tokens at 16^2, 8^2 and 4^2 tokens, two blocks per stage so
        # that every stage has a shifted block.
        "cpu": {"hidden_size": 32, "n_heads": 2, "depths": (2, 2, 2, 2, 2), "window_size": 4},
    }
    """Sizes: S/B/L of the reference (`PDE_S`, `PDE_B`, `PDE_L`) and a CPU profile."""

    def __post_init__(self) -> None:
        require_positive(self, "in_frames", "out_frames", "channels", "patch_size", "window_size")
        require_positive(self, "hidden_size", "n_heads")
        require_probability(self, "label_dropout")
        if len(self.depths) < 3 or len(self.depths) % 2 == 0 or min(self.depths) < 1:
            raise ConfigError(
                f"depths must list an odd number (>= 3) of positive block counts "
                f"(encoder stages, latent, decoder stages), got {self.depths}"
            )
        if self.hidden_size % (2 * self.n_heads):
            raise ConfigError(
                f"hidden_size={self.hidden_size} must be even (token merging halves it) and divisible by "
                f"n_heads={self.n_heads}"
            )
        if self.mlp_ratio <= 0:
            raise ConfigError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.channel_mode not in ("mixed", "separate"):
            raise ConfigError(f"channel_mode must be 'mixed' or 'separate', got {self.channel_mode!r}")
        if self.n_param < 0 or self.n_pde_types < 0:
            raise ConfigError(f"n_param and n_pde_types must be >= 0, got {self.n_param} and {self.n_pde_types}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PDETransformerConfig:
        """A named size ("s", "b", "l", "cpu") with `overrides` on top."""
        if name not in cls.PRESETS:
            raise ConfigError(f"unknown PDE-Transformer preset {name!r}; available: {', '.join(cls.PRESETS)}")
        return replace(cls(), **{**cls.PRESETS[name], **overrides})

    @property
    def levels(self) -> int:
        """Token merging steps between the finest level and the latent stage."""
        return len(self.depths) // 2

    @property
    def resolution_multiple(self) -> int:
        """Each spatial size must be a multiple of this: p * w * 2^levels."""
        return self.patch_size * self.window_size * 2**self.levels

    def check_resolution(self, spatial: tuple[int, ...]) -> None:
        """Raise FieldShapeError unless every level's token grid splits into whole windows."""
        m, p, w = self.resolution_multiple, self.patch_size, self.window_size
        if any(size % m for size in spatial):
            grids = " -> ".join("x".join(f"{s / (p * 2**lv):g}" for s in spatial) for lv in range(self.levels + 1))
            raise FieldShapeError(
                f"PDE-Transformer cannot take resolution {tuple(spatial)}: every spatial size must be a multiple "
                f"of patch_size * window_size * 2^levels = {p} * {w} * {2**self.levels} = {m}, so that the "
                f"token grid at every level ({grids}) splits into windows of {w} tokens"
            )


def sinusoidal_features(values: Tensor, dim: int = FREQUENCY_FEATURES, max_period: float = 10_000.0) -> Tensor:
    """[cos(v f_k), sin(v f_k)] with f_k = max_period^(-k / (dim/2)): (...,) -> (..., dim).

    DiT's `TimestepEmbedder.timestep_embedding` for continuous scalars (dim even).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device) / half)
    args = values.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    """Linear -> SiLU -> Linear, the embedders' MLP."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.SiLU(), nn.Linear(d_out, d_out))


class ParameterEmbedder(nn.Module):
    """PDE parameters -> one vector: params (B, P) -> (B, D).

    Parameter j with value v: MLP(sin/cos(1000 v)) + e_j (a learned vector per parameter), then
    MLP, then the sum over parameters (the SC reference's `PdeParameterEmbedder`).
    """

    def __init__(self, n_param: int, dim: int) -> None:
        super().__init__()
        self.value = mlp(FREQUENCY_FEATURES, dim)
        self.which = nn.Embedding(n_param, dim)
        self.combine = mlp(dim, dim)

    def forward(self, params: Tensor) -> Tensor:
        h = self.value(sinusoidal_features(params * PARAMETER_SCALE)) + self.which.weight  # (B, P, D)
        return self.combine(h).sum(dim=1)


class ConditionEmbedder(nn.Module):
    """The conditioning vector c of one U-level: (B, D), or (B * C, D) with channel types.

    c = base + E_type[pde_type] + ParameterEmbedder(params) (+ E_channel[c] for SC). A missing
    PDE type, and in training a fraction `label_dropout` of them, use the extra "unknown" row.
    """

    def __init__(self, dim: int, n_pde_types: int, n_param: int, n_channel_types: int, label_dropout: float) -> None:
        super().__init__()
        self.base = nn.Parameter(torch.zeros(dim))
        self.pde_type = nn.Embedding(n_pde_types + 1, dim) if n_pde_types else None
        self.params = ParameterEmbedder(n_param, dim) if n_param else None
        self.channel_type = nn.Embedding(n_channel_types, dim) if n_channel_types else None
        self.n_pde_types = n_pde_types
        self.label_dropout = label_dropout

    def forward(self, batch: int, params: Tensor | None, pde_type: Tensor | None) -> Tensor:
        c = self.base.expand(batch, -1)  # (B, D)
        if self.pde_type is not None:
            unknown = torch.full((batch,), self.n_pde_types, dtype=torch.long, device=c.device)
            labels = unknown if pde_type is None else pde_type.long()
            if self.training and self.label_dropout > 0:
                dropped = torch.rand(batch, device=c.device) < self.label_dropout
                labels = torch.where(dropped, unknown, labels)
            c = c + self.pde_type(labels)
        if self.params is not None and params is not None:
            c = c + self.params(params)
        if self.channel_type is not None:
            c = (c[:, None, :] + self.channel_type.weight).flatten(0, 1)  # (B * C, D)
        return c


class AdaLNModulation(nn.Module):
    """SiLU -> Linear(D, k * D): the k shift / scale / gate vectors of a block from c (N, D).

    Zero-initialized, so every modulation starts at 0 (adaLN-Zero).
    """

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.linear = nn.Linear(dim, k * dim)

    def forward(self, c: Tensor) -> tuple[Tensor, ...]:
        return self.linear(nn.functional.silu(c)).chunk(self.k, dim=-1)  # k x (N, D)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x (N, L, D) with per-stream shift, scale (N, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class PDEBlock(nn.Module):
    """Window attention (+ channel attention for SC) and an MLP, each a modulated pre-LN residual
    branch: x = x + f(LN(x) * (1 + scale) + shift) * (1 + gate). x: (N, L, D) -> (N, L, D)."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, channel_attention: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, n_heads, WindowAttention(n_heads), bias=False)
        self.channel_norm = nn.LayerNorm(dim) if channel_attention else None
        self.channel_attention = (
            MultiHeadAttention(dim, n_heads, CosineAttention(n_heads), bias=False) if channel_attention else None
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))
        self.modulation = AdaLNModulation(dim, 9 if channel_attention else 6)

    def forward(self, x: Tensor, c: Tensor, mask: WindowMask, n_channels: int) -> Tensor:
        """x: (N, L, D) tokens of N = B * n_channels streams, c: (N, D)."""
        mods = self.modulation(c)
        shift, scale, gate = mods[:3]
        x = x + self.attention(modulate(self.norm1(x), shift, scale), mask=mask) * (1 + gate[:, None])
        if self.channel_attention is not None:
            shift, scale, gate = mods[3:6]
            h = modulate(self.channel_norm(x), shift, scale)
            n, length, d = h.shape
            h = h.view(n // n_channels, n_channels, length, d).transpose(1, 2).reshape(-1, n_channels, d)
            h = self.channel_attention(h)  # (B * L, C, D): each token attends across channels
            h = h.view(n // n_channels, length, n_channels, d).transpose(1, 2).reshape(n, length, d)
            x = x + h * (1 + gate[:, None])
        shift, scale, gate = mods[-3:]
        return x + self.mlp(modulate(self.norm2(x), shift, scale)) * (1 + gate[:, None])


class PDEStage(nn.Module):
    """`depth` blocks at one resolution; odd blocks shift the windows by w // 2.

    x: (N, D, y, x) -> (N, D, y, x).
    """

    def __init__(
        self, dim: int, depth: int, n_heads: int, mlp_ratio: float, window: int, periodic: bool, separate: bool
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(PDEBlock(dim, n_heads, mlp_ratio, separate) for _ in range(depth))
        self.window = window
        self.periodic = periodic

    def forward(self, x: Tensor, c: Tensor, n_channels: int) -> Tensor:
        n, d, gy, gx = x.shape
        grid, window, half = (gy, gx), (self.window, self.window), self.window // 2
        masks = (
            WindowMask(grid=grid, window=window, periodic=self.periodic),
            WindowMask(grid=grid, window=window, shift=(half, half), periodic=self.periodic),
        )
        tokens = x.flatten(2).transpose(1, 2)  # (N, y * x, D), row-major grid
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, c, masks[i % 2], n_channels)
        return tokens.transpose(1, 2).reshape(n, d, gy, gx)


def token_merging(dim: int) -> nn.Sequential:
    """(N, D, y, x) -> (N, 2D, y/2, x/2): 3x3 conv to D/2 channels, PixelUnshuffle(2)."""
    return nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


def token_splitting(dim: int) -> nn.Sequential:
    """(N, D, y, x) -> (N, D/2, 2y, 2x): 3x3 conv to 2D channels, PixelShuffle(2)."""
    return nn.Sequential(nn.Conv2d(dim, 2 * dim, 3, padding=1, bias=False), nn.PixelShuffle(2))


class FinalLayer(nn.Module):
    """LayerNorm (no affine) modulated by c, then a zero-initialized 3x3 conv to the patch values.

    x: (N, D, y, x), c: (N, D) -> (N, out, y, x).
    """

    def __init__(self, dim: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = AdaLNModulation(dim, 2)
        self.proj = nn.Conv2d(dim, out_channels, 3, padding=1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.modulation(c)
        h = self.norm(x.permute(0, 2, 3, 1))  # (N, y, x, D)
        h = h * (1 + scale[:, None, None]) + shift[:, None, None]
        return self.proj(h.permute(0, 3, 1, 2))


class PDETransformer(nn.Module):
    """x: (B, T_in, C, Y, X), params: (B, P) | None, pde_type: (B,) | None -> (B, T_out, C, Y, X)."""

    config_class: ClassVar[type] = PDETransformerConfig

    def __init__(self, config: PDETransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        levels, separate = c.levels, c.channel_mode == "separate"
        widths = [c.hidden_size * 2**i for i in range(levels + 1)]  # D_l per level
        decoder_widths = [widths[max(i, 1)] for i in range(levels)]  # the finest decoder runs at 2D
        frames_in = c.in_frames if separate else c.in_frames * c.channels
        frames_out = c.out_frames if separate else c.out_frames * c.channels

        def stage(dim: int, depth: int) -> PDEStage:
            return PDEStage(dim, depth, c.n_heads, c.mlp_ratio, c.window_size, c.periodic, separate)

        self.patch_embed = nn.Conv2d(frames_in, widths[0], kernel_size=c.patch_size, stride=c.patch_size)
        self.conditions = nn.ModuleList(
            ConditionEmbedder(w, c.n_pde_types, c.n_param, c.channels if separate else 0, c.label_dropout)
            for w in widths
        )
        self.encoder = nn.ModuleList(stage(widths[i], c.depths[i]) for i in range(levels))
        self.merge = nn.ModuleList(token_merging(widths[i]) for i in range(levels))
        self.latent = stage(widths[levels], c.depths[levels])
        self.split = nn.ModuleList(token_splitting(widths[i + 1]) for i in range(levels))
        self.reduce = nn.ModuleList(nn.Conv2d(2 * widths[i], decoder_widths[i], 1) for i in range(levels))
        self.decoder = nn.ModuleList(stage(decoder_widths[i], c.depths[levels + 1 + i]) for i in range(levels))
        self.output = nn.Conv2d(widths[1], widths[1], 3, padding=1)
        self.final = FinalLayer(widths[1], frames_out * c.patch_size**2)
        self.unpatchify = nn.PixelShuffle(c.patch_size)
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's `initialize_weights`: Xavier-uniform weights and zero biases, the patch
        embedding as a Linear, embeddings N(0, 0.02^2), zero modulations and output layer."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        weight = self.patch_embed.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        for cond in self.conditions:
            for module in cond.modules():
                if isinstance(module, nn.Embedding):
                    nn.init.normal_(module.weight, std=0.02)
            if cond.params is not None:
                for layer in (*cond.params.value, *cond.params.combine):
                    if isinstance(layer, nn.Linear):
                        nn.init.normal_(layer.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, AdaLNModulation):
                nn.init.zeros_(module.linear.weight)
                nn.init.zeros_(module.linear.bias)
        nn.init.zeros_(self.final.proj.weight)
        nn.init.zeros_(self.final.proj.bias)

    def _check_conditioning(self, batch: int, params: Tensor | None, pde_type: Tensor | None) -> None:
        c = self.config
        if c.n_param and (params is None or params.shape != (batch, c.n_param)):
            got = "none" if params is None else tuple(params.shape)
            raise SeqlabError(
                f"PDE-Transformer is conditioned on model.n_param={c.n_param} PDE parameters: pass params of "
                f"shape (B, P) = ({batch}, {c.n_param}), got {got}"
            )
        if pde_type is not None:
            if not c.n_pde_types:
                raise SeqlabError("pde_type was given but the model has no PDE types (model.n_pde_types=0)")
            if pde_type.shape != (batch,) or pde_type.min() < 0 or pde_type.max() >= c.n_pde_types:
                raise SeqlabError(
                    f"pde_type must hold one label in [0, model.n_pde_types={c.n_pde_types}) per sample, shape "
                    f"({batch},); got shape {tuple(pde_type.shape)}"
                )

    def forward(self, x: Tensor, params: Tensor | None = None, pde_type: Tensor | None = None) -> Tensor:
        c = self.config
        check_fields(x, "PDE-Transformer", c.in_frames, c.channels, spatial_dims=2)
        c.check_resolution(tuple(x.shape[-2:]))
        b, _, n_channels, height, width = x.shape
        self._check_conditioning(b, params, pde_type)
        if c.channel_mode == "separate":
            streams = x.transpose(1, 2).flatten(0, 1)  # (B * C, T_in, Y, X): one stream per channel
        else:
            streams, n_channels = x.flatten(1, 2), 1  # (B, T_in * C, Y, X)
        conds = [cond(b, params, pde_type) for cond in self.conditions]  # (N, D_l) per level

        h = self.patch_embed(streams)  # (N, D, Y/p, X/p)
        skips = []
        for stage, merge, cond in zip(self.encoder, self.merge, conds, strict=False):
            h = stage(h, cond, n_channels)
            skips.append(h)
            h = merge(h)  # (N, 2 D_l, y/2, x/2)
        h = self.latent(h, conds[-1], n_channels)
        for i in reversed(range(c.levels)):
            h = self.split[i](h)  # (N, D_i, 2y, 2x)
            h = self.reduce[i](torch.cat([h, skips[i]], dim=1))
            h = self.decoder[i](h, conds[max(i, 1)], n_channels)
        h = self.final(self.output(h), conds[1])  # (N, frames_out * p^2, Y/p, X/p)
        y = self.unpatchify(h)  # (N, frames_out, Y, X)
        if c.channel_mode == "separate":
            return y.view(b, n_channels, c.out_frames, height, width).transpose(1, 2)
        return y.view(b, c.out_frames, c.channels, height, width)
