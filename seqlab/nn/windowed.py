"""Windowed and shifted-window self-attention over a token grid (Swin), as attention kernels.

Tokens on a regular grid (1-D, 2-D, any number of axes) attend only to the tokens of their own
window, a block of `window` tokens per axis. Shifted windows (Liu et al., "Swin Transformer",
ICCV 2021, arXiv:2103.14030) roll the grid by `shift` tokens first, so that alternate layers
connect neighbouring windows. On a periodic domain the rolled windows simply wrap around; on a
bounded one the Swin mask stops a token from attending across the seam that the roll created.
Swin-V2 (Liu et al., CVPR 2022, arXiv:2111.09883) adds scaled cosine attention and a continuous
relative position bias; PDE-Transformer (arXiv:2505.24717) uses both.

The kernels plug into `seqlab.nn.attention.MultiHeadAttention`: `WindowAttention` receives its
(B, H, L, E) queries, keys and values with L = prod(grid) tokens in row-major grid order, and a
`WindowMask` (an `AttentionMask` that says which keys each query may see: the grid, window,
shift and boundary). The projections act on each token alone, so partitioning after them equals
Swin's partition before them. `CosineAttention` is Swin-V2's scaled cosine kernel on plain
sequences (PDE-Transformer's attention across channels).

Reference behaviour matched: tum-pbs/pde-transformer@3f3adee
`pdetransformer/core/mixed_channels/pde_transformer.py` (`WindowAttention2DTime` with
`attn_type='v2'`, `PosEmbMLPSwinv2D`, `PDEStage.get_attn_mask`, `window_partition`).

Deviations:
- Masked logits are -inf (exact) instead of the reference's -100 (added twice there).
- Generic over the number of grid axes (the reference is 2-D with square windows).
- The continuous position bias is evaluated on the (2w-1)^d offset table each call rather than on
  a buffer made at construction, so one kernel serves any window size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.nn.attention import NO_MASK, AttentionMask
from seqlab.nn.dropout import dropout

MAX_LOGIT_SCALE = math.log(100.0)
"""Swin-V2 clamps the learned log temperature of cosine attention at ln 100."""


@dataclass(frozen=True)
class WindowMask(AttentionMask):
    """Query i sees key j iff both lie in the same window of the rolled token grid.

    grid: tokens per axis, e.g. (Y, X); the sequence holds them in row-major order.
    window: window size per axis; each must divide the grid.
    shift: cyclic shift per axis, 0 <= shift < window (empty: no shift). The grid is rolled by
        -shift before partitioning and back afterwards.
    periodic: shifted windows wrap around the domain (PDE-Transformer's `periodic=True`, no
        mask); False applies the Swin mask, so tokens from opposite edges never meet.
    """

    grid: tuple[int, ...] = ()
    window: tuple[int, ...] = ()
    shift: tuple[int, ...] = ()
    periodic: bool = True

    def __post_init__(self) -> None:
        if self.causal or self.key_padding is not None:
            raise ValueError("a WindowMask takes no causal or key padding mask")
        if not self.grid:
            raise ValueError("WindowMask needs the token grid, e.g. grid=(Y, X)")
        shift = self.shift or (0,) * len(self.grid)
        object.__setattr__(self, "shift", tuple(shift))
        if not len(self.grid) == len(self.window) == len(self.shift):
            raise ValueError(
                f"grid {self.grid}, window {self.window} and shift {self.shift} need one entry per axis"
            )
        for axis, (g, w, s) in enumerate(zip(self.grid, self.window, self.shift, strict=True)):
            if w < 1 or g % w:
                raise ValueError(f"axis {axis}: window {w} must divide the token grid {g} (grid {self.grid})")
            if not 0 <= s < w:
                raise ValueError(f"axis {axis}: shift {s} must lie in [0, window={w})")

    @property
    def n_windows(self) -> int:
        return math.prod(g // w for g, w in zip(self.grid, self.window, strict=True))

    @property
    def window_tokens(self) -> int:
        return math.prod(self.window)

    @property
    def shifted(self) -> bool:
        return any(self.shift)


def window_partition(x: Tensor, grid: tuple[int, ...], window: tuple[int, ...]) -> Tensor:
    """Split a row-major token grid into windows: (..., L, E) -> (..., nW, N, E).

    Windows and the tokens inside each window are both in row-major order (Swin's layout).
    """
    lead, e, d = x.shape[:-2], x.shape[-1], len(grid)
    counts = [g // w for g, w in zip(grid, window, strict=True)]
    split = [size for pair in zip(counts, window, strict=True) for size in pair]
    x = x.reshape(*lead, *split, e)  # (..., n_1, w_1, ..., n_d, w_d, E)
    n = len(lead)
    order = [*range(n), *(n + 2 * i for i in range(d)), *(n + 2 * i + 1 for i in range(d)), n + 2 * d]
    return x.permute(order).reshape(*lead, math.prod(counts), math.prod(window), e)


def window_reverse(windows: Tensor, grid: tuple[int, ...], window: tuple[int, ...]) -> Tensor:
    """Inverse of `window_partition`: (..., nW, N, E) -> (..., L, E)."""
    lead, e, d = windows.shape[:-3], windows.shape[-1], len(grid)
    counts = [g // w for g, w in zip(grid, window, strict=True)]
    x = windows.reshape(*lead, *counts, *window, e)  # (..., n_1, ..., n_d, w_1, ..., w_d, E)
    n = len(lead)
    order = [*range(n), *(i for a in range(d) for i in (n + a, n + d + a)), n + 2 * d]
    return x.permute(order).reshape(*lead, math.prod(grid), e)


def roll_grid(x: Tensor, grid: tuple[int, ...], shifts: tuple[int, ...]) -> Tensor:
    """Cyclically shift a row-major token grid: (..., L, E) -> (..., L, E), token p moves to p + shift."""
    lead, e, d = x.shape[:-2], x.shape[-1], len(grid)
    dims = tuple(range(len(lead), len(lead) + d))
    return x.reshape(*lead, *grid, e).roll(shifts, dims).reshape(x.shape)


def shifted_window_mask(mask: WindowMask, device: torch.device | None = None) -> Tensor | None:
    """Swin's mask for shifted windows on a bounded domain: (nW, N, N) bool, True where allowed.

    Along each shifted axis the rolled grid falls into three regions, [0, G-w), [G-w, G-s) and
    [G-s, G); the last window holds tokens of the far edge (region 1) and tokens rolled in from
    the near edge (region 2), which must not see each other. None when nothing is masked.
    """
    if mask.periodic or not mask.shifted:
        return None
    region = torch.zeros(mask.grid, dtype=torch.long, device=device)
    for axis, (g, w, s) in enumerate(zip(mask.grid, mask.window, mask.shift, strict=True)):
        label = torch.zeros(g, dtype=torch.long, device=device)
        label[g - w : g - s] = 1
        label[g - s :] = 2
        view = [1] * len(mask.grid)
        view[axis] = g
        region = region * 3 + label.view(view)
    ids = window_partition(region.reshape(-1, 1), mask.grid, mask.window)[..., 0]  # (nW, N)
    return ids[:, :, None] == ids[:, None, :]


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, dropout_p: float, scale: float) -> Tensor:
    """softmax(scale * q k^T + bias) v over windows, (B, H, nW, N, E) -> (B, H, nW, N, Ev), for
    biases that never block a whole row. On CPU it is written out (softmax in fp32): the window
    axis rules out SDPA's fused kernels, and its math path guards every row against all -inf
    (isneginf, all, where over the scores: 7% of a PDE-Transformer forward) and upcasts bf16."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    scores = (q @ k.transpose(-2, -1)).float() * scale
    if bias is not None:
        scores = scores + bias
    return dropout(scores.softmax(dim=-1), dropout_p).to(v.dtype) @ v


class ContinuousPositionBias(nn.Module):
    """Swin-V2's continuous relative position bias, one value per head for each token offset.

    An offset o (in tokens, per axis) is scaled to 8 * o / (w - 1), log-spaced as
    sign(u) * log2(1 + |u|) / log2(8), fed through Linear(d, hidden) -> ReLU -> Linear(hidden, H)
    and squashed to 16 * sigmoid(.), as `PosEmbMLPSwinv2D` does with pretrained window = window.
    """

    def __init__(self, n_heads: int, n_dims: int = 2, hidden: int = 512) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.mlp = nn.Sequential(nn.Linear(n_dims, hidden), nn.ReLU(), nn.Linear(hidden, n_heads, bias=False))

    def at(self, offsets: Tensor, window: tuple[int, ...]) -> Tensor:
        """offsets: (..., d) token offsets (query minus key) -> (..., H) bias."""
        span = offsets.new_tensor([max(w - 1, 1) for w in window], dtype=torch.float32)
        u = offsets.float() / span * 8
        u = torch.sign(u) * torch.log2(u.abs() + 1.0) / math.log2(8)
        return 16 * torch.sigmoid(self.mlp(u.to(self.mlp[0].weight.dtype)))

    def forward(self, window: tuple[int, ...]) -> Tensor:
        """The bias between every pair of tokens of one window: (H, N, N)."""
        device = self.mlp[0].weight.device
        axes = [torch.arange(w, device=device) for w in window]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(window))  # (N, d)
        offsets = coords[:, None, :] - coords[None, :, :]  # (N, N, d)
        # Evaluate the MLP once per distinct offset ((2w-1)^d of them) and gather.
        table_axes = [torch.arange(-(w - 1), w, device=device) for w in window]
        table = torch.stack(torch.meshgrid(*table_axes, indexing="ij"), dim=-1).reshape(-1, len(window))
        index = torch.zeros(offsets.shape[:2], dtype=torch.long, device=device)
        for axis, w in enumerate(window):
            index = index * (2 * w - 1) + offsets[..., axis] + w - 1
        bias = self.at(table, window)[index]  # (N, N, H)
        return bias.permute(2, 0, 1)


class CosineAttention(nn.Module):
    """Swin-V2 scaled cosine attention: softmax(tau_h * cos(q_i, k_j) + bias_ij) V.

    tau_h = exp(min(theta_h, ln 100)), theta_h learned per head and initialized to ln 10. A kernel
    of `MultiHeadAttention` (any leading batch dims); `bias` is an optional additive float mask
    broadcastable to the logits, combined with `mask` (causal / key padding).
    """

    def __init__(self, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.full((n_heads, 1, 1), math.log(10.0)))
        self.dropout = dropout

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask = NO_MASK, bias: Tensor | None = None
    ) -> Tensor:
        """q: (B, H, ..., Lq, E), k: (B, H, ..., Lk, E), v: (B, H, ..., Lk, Ev) -> (B, H, ..., Lq, Ev)."""
        allowed = mask.allowed(q.shape[-2], k.shape[-2], q.device)
        if allowed is not None:
            blocked = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(~allowed, -math.inf)
            bias = blocked if bias is None else bias + blocked
        extra = q.ndim - 4  # leading dims between heads and tokens (e.g. windows)
        tau = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp().view(-1, *([1] * (extra + 2)))
        q = F.normalize(q, dim=-1) * tau.to(q.dtype)
        k = F.normalize(k, dim=-1)
        dropout_p = self.dropout if self.training else 0.0
        if allowed is None:  # window biases only: no row is blocked whole (a token sees itself)
            return attend(q, k, v, bias, dropout_p, scale=1.0)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=1.0)


class WindowAttention(nn.Module):
    """(Shifted-)window self-attention kernel; the layout comes in a `WindowMask`.

    Args:
        n_heads: heads H (the cosine temperature and the position bias are per head).
        n_dims: grid axes d (2 for (Y, X), 1 for (X,)).
        cosine: Swin-V2 scaled cosine logits; False gives softmax(q.k / sqrt(E)).
        position_bias: add Swin-V2's continuous relative position bias.
        dropout: dropout on the attention weights.
        bias_hidden: hidden width of the position-bias MLP (512 in Swin-V2).
    """

    def __init__(
        self,
        n_heads: int,
        n_dims: int = 2,
        cosine: bool = True,
        position_bias: bool = True,
        dropout: float = 0.0,
        bias_hidden: int = 512,
    ) -> None:
        super().__init__()
        self.n_dims = n_dims
        self.cosine = CosineAttention(n_heads, dropout) if cosine else None
        self.position_bias = ContinuousPositionBias(n_heads, n_dims, bias_hidden) if position_bias else None
        self.dropout = dropout

    def logit_bias(self, mask: WindowMask, dtype: torch.dtype, device: torch.device) -> Tensor | None:
        """Additive logits for every window: (H or 1, nW or 1, N, N); None if there are none."""
        bias = None
        if self.position_bias is not None:
            bias = self.position_bias(mask.window).to(dtype)[:, None]  # (H, 1, N, N)
        allowed = shifted_window_mask(mask, device)  # (nW, N, N) or None
        if allowed is not None:
            blocked = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, -math.inf)
            bias = blocked[None] if bias is None else bias + blocked
        return bias

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask) -> Tensor:
        """q, k: (B, H, L, E), v: (B, H, L, Ev) with L = prod(mask.grid) -> (B, H, L, Ev)."""
        if not isinstance(mask, WindowMask):
            raise TypeError(f"WindowAttention needs a WindowMask describing the token grid, got {type(mask).__name__}")
        if len(mask.grid) != self.n_dims:
            raise ValueError(f"this kernel attends over {self.n_dims}-D grids, the mask describes {mask.grid}")
        if q.shape[-2] != math.prod(mask.grid) or k.shape[-2] != q.shape[-2]:
            raise ValueError(f"{q.shape[-2]} queries and {k.shape[-2]} keys do not fill the token grid {mask.grid}")
        back = tuple(-s for s in mask.shift)

        def windows(x: Tensor) -> Tensor:  # (B, H, L, E) -> (B, H, nW, N, E)
            if mask.shifted:
                x = roll_grid(x, mask.grid, back)
            return window_partition(x, mask.grid, mask.window)

        q, k, v = windows(q), windows(k), windows(v)
        bias = self.logit_bias(mask, q.dtype, q.device)
        if self.cosine is not None:
            out = self.cosine(q, k, v, bias=bias)
        else:
            out = attend(q, k, v, bias, self.dropout if self.training else 0.0, scale=q.shape[-1] ** -0.5)
        out = window_reverse(out, mask.grid, mask.window)  # (B, H, L, Ev)
        return roll_grid(out, mask.grid, mask.shift) if mask.shifted else out
