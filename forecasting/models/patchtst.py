"""PatchTST: each variate's window cut into overlapping patches, a Transformer over the patches.

Channel-independent: all variates share the weights and are processed as separate sequences.
Each window is normalized per variate (as iTransformer), padded at the end by repeating its last
value `stride` times, cut into patches of `patch_len` with step `stride`, embedded linearly with
sinusoidal positions, encoded by post-norm layers with a final BatchNorm, and flattened into a
linear head.

Paper: Yuqi Nie, Nam H. Nguyen, Phanwadee Sinthong, Jayant Kalagnanam, "A Time Series is Worth 64
Words: Long-term Forecasting with Transformers", ICLR 2023, arXiv:2211.14730.

Reference behaviour matched: the Time-Series-Library port used in the benchmark tables,
thuml/Time-Series-Library@3623514 `models/PatchTST.py` with `layers/Embed.py: PatchEmbedding`.

Deviations: the FFN uses Linear layers instead of kernel-size-1 Conv1d (the same map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import Tensor, nn

from seqlab.config import require_heads, require_positive, require_probability
from seqlab.nn import FastDropout, RevIN, SinusoidalPositionalEmbedding, encoder_stack


@dataclass(frozen=True)
class PatchTSTConfig:
    seq_len: int = 96
    """Look-back length L."""
    horizon: int = 96
    """Forecast horizon H."""
    patch_len: int = 16
    """Length of one patch (P)."""
    stride: int = 8
    """Step between patch starts; also the end padding."""
    d_model: int = 512
    n_heads: int = 8
    n_layers: int = 2
    d_ff: int = 2048
    dropout: float = 0.1
    activation: Literal["gelu", "relu"] = "gelu"

    def __post_init__(self) -> None:
        require_positive(self, "seq_len", "horizon", "patch_len", "stride", "d_model", "n_heads", "n_layers", "d_ff")
        if self.patch_len > self.seq_len + self.stride:
            raise ValueError(f"patch_len={self.patch_len} is longer than the padded look-back")
        require_heads(self)
        require_probability(self, "dropout")

    @property
    def n_patches(self) -> int:
        return (self.seq_len + self.stride - self.patch_len) // self.stride + 1


class BatchNormOverTokens(nn.Module):
    """BatchNorm1d over the channel axis of (B, T, D) tokens."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class PatchTST(nn.Module):
    """(x: (B, L, N), x_mark: unused, y_mark: unused) -> (B, H, N)."""

    config_class: ClassVar[type] = PatchTSTConfig

    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.norm = RevIN(affine=False, detach_std=False)
        self.pad = nn.ReplicationPad1d((0, c.stride))
        self.patch_embed = nn.Linear(c.patch_len, c.d_model, bias=False)
        self.position = SinusoidalPositionalEmbedding(c.d_model)
        self.embed_dropout = FastDropout(c.dropout)
        # Post-norm layers over the patches of one variate, then BatchNorm (TSLib's final norm).
        self.encoder = encoder_stack(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation,
                                     norm=BatchNormOverTokens(c.d_model))
        self.head = nn.Linear(c.d_model * c.n_patches, c.horizon)
        self.head_dropout = FastDropout(c.dropout)

    def forward(self, x: Tensor, x_mark: Tensor | None = None, y_mark: Tensor | None = None) -> Tensor:
        c = self.config
        b, _, n = x.shape
        x, stats = self.norm.normalize(x)  # (B, L, N)
        series = self.pad(x.transpose(1, 2))  # (B, N, L + stride)
        patches = series.unfold(-1, c.patch_len, c.stride)  # (B, N, P, patch_len)
        tokens = patches.reshape(b * n, c.n_patches, c.patch_len)  # one sequence per variate
        h = self.embed_dropout(self.patch_embed(tokens) + self.position(tokens))  # (B*N, P, D)
        h = self.encoder(h)  # (B*N, P, D)
        h = h.reshape(b, n, c.n_patches, c.d_model).transpose(2, 3).flatten(2)  # (B, N, D*P), D-major
        y = self.head_dropout(self.head(h)).transpose(1, 2)  # (B, H, N)
        return self.norm.denormalize(y, stats)
