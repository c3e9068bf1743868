"""Pathformer: a mixture of patch-size experts, routed per window by its multi-scale character.

Every scalar becomes a D-wide token (B, L, N, D). Each of `n_layers` adaptive multi-scale (AMS)
layers holds one expert per patch size; a router looks at the series (plus its Fourier
seasonality and multi-scale trend), picks the top-k experts for each window, and mixes their
outputs in log space. An expert attends inside each patch (a learned query per patch and variate,
variate-specific keys and values) and across patches (patches as tokens), then applies an FFN. A
linear head maps each variate's L x D tokens to its H future values. Training adds the router's
load-balance loss, which the model leaves in `aux_loss` after every forward
(`forecasting.task.ForecastTask.training_step` adds it).

Paper: Peng Chen, Yingying Zhang, Yunyao Cheng, Yang Shu, Yihang Wang, Qingsong Wen, Bin Yang,
Chenjuan Guo, "Pathformer: Multi-scale Transformers with Adaptive Pathways for Time Series
Forecasting", ICLR 2024, arXiv:2402.05956.

Reference behaviour matched: decisionintelligence/pathformer@ea85d82 `models/PathFormer.py`,
`layers/AMS.py`, `layers/Layer.py` (Transformer_Layer, Intra/Inter_Patch_Attention,
WeightGenerator), `utils/Other.py` (SparseDispatcher, FourierLayer, series_decomp_multi),
`layers/RevIN.py`; defaults from its `run.py`.

Deviations:
- The reference's Python loop over patches (intra-patch attention, one Linear per patch) is one
  batched computation here (tested equal to the loop). Its single query per patch attends by
  elementwise products over the 1 + P keys (a fused attention kernel is slower at this size), and
  the query token's keys and values, the same for every window, are computed once per batch.
- Experts run on the windows routed to them, as the reference's SparseDispatcher does, but the
  combine log(sum_i g_i exp(y_i)) is computed as a stable log-sum-exp. It equals the reference
  wherever the reference's exp neither overflows (inf) nor underflows to exactly 0 (where it
  substitutes machine eps, i.e. log(eps) = -36.04).
- The hard-coded dropouts (0.1 inter-patch input and residual, 0.1 projection, 0.2 FFN) are
  config fields with those defaults.
- The router (decomposition, gating, balance loss) and the combine run in fp32 under autocast.
- Unused reference modules (AMS.end_MLP, AMS.MLPs) are left out; the non-factorized
  `weights_generator_shared` is written as Linear(D, D)-ReLU-Linear(D, D) (the same map with the
  same initialization law).

Kept as in the reference: routing is per window (all variates share the gates); each expert's
BatchNorm sees only the windows routed to it; the inter-patch output is reshaped
(B, N, M, D*P) -> (B, P*M, N, D) without a permute, which mixes the variate, patch and width axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.nn import FastDropout, FullAttention, MultiHeadAttention, RevIN
from seqlab.nn.decomposition import FourierSeasonality, MultiScaleDecomposition

DEFAULT_PATCH_SIZES = ((16, 12, 8, 32), (12, 8, 6, 4), (8, 6, 4, 2))


@dataclass(frozen=True)
class PathformerConfig:
    seq_len: int = 96
    """Look-back length L (`seq_len`); every patch size must divide it."""
    horizon: int = 96
    """Forecast horizon H (`pred_len`)."""
    n_variates: int | None = None
    """Variates N (`num_nodes`); None takes it from the data. Sizes the router and per-variate weights."""
    d_model: int = 16
    """Width D of each scalar's token (`d_model`); even (2 intra-patch heads)."""
    d_ff: int = 64
    """Hidden width of the expert FFN (`d_ff`)."""
    n_layers: int = 3
    """AMS layers (`layer_nums`)."""
    n_experts: int = 4
    """Experts per AMS layer, one per patch size (`num_experts_list`)."""
    patch_sizes: tuple[tuple[int, ...], ...] = DEFAULT_PATCH_SIZES
    """Patch size P of each expert: n_layers rows of n_experts sizes (`patch_size_list`, reshaped)."""
    k: int = 2
    """Experts each window is routed to, per layer (`k`)."""
    residual: bool = False
    """Add the layer input to the mixed expert output (`residual_connection`)."""
    batch_norm: bool = False
    """BatchNorm after the attention sum and after the FFN in each expert (`batch_norm`)."""
    revin: bool = True
    """Normalize each window per variate (mean, std; no affine) and undo it on the forecast (`revin`)."""
    noisy_gating: bool = True
    """Add learned Gaussian noise to the router logits in training (Shazeer et al. 2017)."""
    dropout: float = 0.1
    """Dropout on the inter-patch input and before the FFN (hard-coded 0.1 in the reference)."""
    proj_dropout: float = 0.1
    """Dropout after the inter-patch attention's output projection (reference: 0.1)."""
    ffn_dropout: float = 0.2
    """Dropout inside the FFN, after GELU (reference: 0.2)."""
    balance_coef: float = 1e-2
    """Weight of the load-balance loss, cv^2(importance) + cv^2(load) (`loss_coef`)."""

    def __post_init__(self) -> None:
        for name in ("seq_len", "horizon", "d_model", "d_ff", "n_layers", "n_experts", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_variates is not None and self.n_variates < 1:
            raise ValueError(f"n_variates must be >= 1 or null, got {self.n_variates}")
        if self.d_model % 2:
            raise ValueError(f"d_model={self.d_model} must be even (intra-patch attention has 2 heads)")
        if self.k > self.n_experts:
            raise ValueError(f"k={self.k} must not exceed n_experts={self.n_experts}")
        for name in ("dropout", "proj_dropout", "ffn_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.balance_coef < 0:
            raise ValueError(f"balance_coef must be >= 0, got {self.balance_coef}")
        shape = [len(row) for row in self.patch_sizes]
        if shape != [self.n_experts] * self.n_layers:
            raise ValueError(f"patch_sizes must hold n_layers={self.n_layers} rows of n_experts={self.n_experts} "
                             f"sizes, got rows of {shape}")
        for layer, row in enumerate(self.patch_sizes):
            for size in row:
                if size < 1 or self.seq_len % size:
                    raise ValueError(f"patch_sizes: patch size {size} of layer {layer} does not divide "
                                     f"seq_len={self.seq_len}")


class NodeWeights(nn.Module):
    """Variate-specific linear maps generated from a learned memory per variate (factorized).

    W_n = P @ M_n @ Q and b_n = g_n @ B, with g_n = MLP(memory_n) (100 numbers) and M_n = g_n as
    10 x 10: the reference's factorized `WeightGenerator` (memory 16, rank 10).
    () -> weights (n_maps, N, D_in, D_out), biases (n_maps, N, D_out).
    """

    def __init__(self, n_nodes: int, d_in: int, d_out: int, n_maps: int = 2, memory: int = 16,
                 rank: int = 10) -> None:
        super().__init__()
        self.rank = rank
        self.memory = nn.Parameter(torch.randn(n_nodes, memory))
        self.generator = nn.Sequential(nn.Linear(memory, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                       nn.Linear(64, rank * rank))
        # The reference's kaiming_uniform(a=sqrt(5)) on 2-D (rows, cols) tensors: bound 1/sqrt(cols).
        self.P = nn.Parameter(torch.empty(n_maps, d_in, rank).uniform_(-rank**-0.5, rank**-0.5))
        self.Q = nn.Parameter(torch.empty(n_maps, rank, d_out).uniform_(-d_out**-0.5, d_out**-0.5))
        self.B = nn.Parameter(torch.empty(n_maps, rank * rank, d_out).uniform_(-d_out**-0.5, d_out**-0.5))

    def forward(self) -> tuple[Tensor, Tensor]:
        g = self.generator(self.memory)  # (N, r*r)
        biases = torch.einsum("ng,wgo->wno", g, self.B)
        core = g.view(-1, self.rank, self.rank)  # (N, r, r)
        weights = torch.einsum("wir,nrs,wso->wnio", self.P, core, self.Q)
        return weights, biases


class IntraPatchAttention(nn.Module):
    """One learned query per (patch, variate) attends over itself and the patch's P tokens.

    Keys and values use variate-specific maps, the query is not projected, 2 heads; a shared
    Linear-ReLU-Linear follows; Linear(M, M*P) maps the M patch summaries back to L steps.
    x: (B, L, N, D) -> (B, L, N, D).
    """

    n_heads = 2

    def __init__(self, seq_len: int, patch_size: int, n_variates: int, d_model: int) -> None:
        super().__init__()
        self.patch_size, self.n_patches = patch_size, seq_len // patch_size
        m, bound = self.n_patches, 16**-0.5  # bound: nn.Linear(16, D)'s default init
        self.query_seed = nn.Parameter(torch.rand(m, n_variates, 16))
        self.query_weight = nn.Parameter(torch.empty(m, 16, d_model).uniform_(-bound, bound))
        self.query_bias = nn.Parameter(torch.empty(m, 1, d_model).uniform_(-bound, bound))
        self.kv = NodeWeights(n_variates, d_model, d_model, n_maps=2)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, d_model))
        self.to_time = nn.Linear(m, m * patch_size)

    def queries(self) -> Tensor:
        """(M, N, D): the per-patch Linear(16, D) of each patch's query seeds."""
        return torch.einsum("mnf,mfd->mnd", self.query_seed, self.query_weight) + self.query_bias

    def forward(self, x: Tensor) -> Tensor:
        b, _, n, d = x.shape
        m, p, h = self.n_patches, self.patch_size, self.n_heads
        weights, biases = self.kv()  # (2, N, D, D), (2, N, D)
        query = self.queries()  # (M, N, D), the same for every window
        # Keys and values through each variate's own maps, the query token's once for the batch.
        kv_query = torch.einsum("mnd,wnde->wmne", query, weights) + biases[:, None]  # (2, M, N, D)
        patches = x.reshape(b, m, p, n, d)  # (B, M, P, N, D)
        kv = torch.einsum("bmpnd,wnde->wbmnpe", patches, weights) + biases[:, None, None, :, None]  # (2, B, M, N, P, D)
        split = (h, d // h)
        q, k_query, v_query = (t.unflatten(-1, split) for t in (query, *kv_query))  # (M, N, h, D/h)
        k, v = (t.unflatten(-1, split) for t in kv)  # (B, M, N, P, h, D/h)
        # One query over 1 + P keys per head: elementwise products beat a batched matmul this small.
        scale = (d // h) ** -0.5
        own = (q * k_query).sum(-1).unsqueeze(-2).expand(b, m, n, 1, h)  # (B, M, N, 1, h)
        scores = torch.cat([own, (q.unsqueeze(-3) * k).sum(-1)], dim=-2) * scale  # (B, M, N, 1+P, h)
        attn = scores.softmax(dim=-2).unsqueeze(-1)  # (B, M, N, 1+P, h, 1)
        out = attn[..., 0, :, :] * v_query + (attn[..., 1:, :, :] * v).sum(-3)  # (B, M, N, h, D/h)
        out = self.mlp(out.flatten(-2))  # (B, M, N, D), heads concatenated
        return self.to_time(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, N, D, M) -> (B, L, N, D)


class InterPatchAttention(nn.Module):
    """Patches as tokens: each variate's M patches, flattened to D*P, attend to each other.

    n_heads = D (head width P), PatchTST-style learned positions; the output is reshaped back
    without a permute, as the reference does. x: (B, L, N, D) -> (B, L, N, D).
    """

    def __init__(self, seq_len: int, patch_size: int, d_model: int, dropout: float, proj_dropout: float) -> None:
        super().__init__()
        self.patch_size, self.n_patches = patch_size, seq_len // patch_size
        width = d_model * patch_size
        self.embed = nn.Linear(width, width)
        self.position = nn.Parameter(torch.empty(self.n_patches, width).uniform_(-0.02, 0.02))
        self.dropout = FastDropout(dropout)
        self.attention = MultiHeadAttention(width, n_heads=d_model, kernel=FullAttention())
        self.proj_dropout = FastDropout(proj_dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, length, n, d = x.shape
        m, p = self.n_patches, self.patch_size
        tokens = x.unfold(1, p, p).permute(0, 2, 1, 3, 4).reshape(b * n, m, d * p)  # (B*N, M, D*P), D-major
        tokens = self.dropout(self.embed(tokens) + self.position)
        out = self.proj_dropout(self.attention(tokens))  # (B*N, M, D*P)
        # Reference quirk, kept: (B, N, M, D*P) is read as (B, P*M, N, D) without moving any axis.
        return out.reshape(b, length, n, d)


class PatchExpert(nn.Module):
    """One patch size: x + intra + inter attention, optional BatchNorm, dropout, FFN with residual.

    The reference's BatchNorm1d(D) over a (B*N, L, D) reshape normalizes each channel over all
    tokens, which is what BatchNorm over the flattened tokens does. x: (B, L, N, D) -> (B, L, N, D).
    """

    def __init__(self, c: PathformerConfig, patch_size: int) -> None:
        super().__init__()
        self.intra = IntraPatchAttention(c.seq_len, patch_size, c.n_variates, c.d_model)
        self.inter = InterPatchAttention(c.seq_len, patch_size, c.d_model, c.dropout, c.proj_dropout)
        self.norm_attn = nn.BatchNorm1d(c.d_model) if c.batch_norm else None
        self.norm_ffn = nn.BatchNorm1d(c.d_model) if c.batch_norm else None
        self.dropout = FastDropout(c.dropout)
        self.ffn = nn.Sequential(nn.Linear(c.d_model, c.d_ff), nn.GELU(), FastDropout(c.ffn_dropout),
                                 nn.Linear(c.d_ff, c.d_model))

    @staticmethod
    def _norm(norm: nn.BatchNorm1d | None, x: Tensor) -> Tensor:
        return x if norm is None else norm(x.reshape(-1, x.shape[-1])).view_as(x)

    def forward(self, x: Tensor) -> Tensor:
        out = self._norm(self.norm_attn, x + self.intra(x) + self.inter(x))
        out = self.dropout(out)
        return self._norm(self.norm_ffn, self.ffn(out) + out)


class MultiScaleRouter(nn.Module):
    """Noisy top-k gating over the experts from the series, its seasonality and its trend.

    Reads hidden channel 0: z = x0 + FourierSeasonality(k=3)(x0) + trend([4, 8, 12])(x0), mixes the
    variates with Linear(N, 1), then Linear(L, E) logits (+ softplus-scaled noise in training).
    x: (B, L, N, D) -> gates (B, E) (softmax over the top k, zero elsewhere), balance loss ().
    """

    def __init__(self, seq_len: int, n_variates: int, n_experts: int, k: int, noisy: bool, coef: float) -> None:
        super().__init__()
        self.k, self.n_experts, self.noisy, self.coef = k, n_experts, noisy, coef
        self.seasonality = FourierSeasonality(k=3)
        self.trend = MultiScaleDecomposition([4, 8, 12])
        self.mix_variates = nn.Linear(n_variates, 1)
        self.w_gate = nn.Linear(seq_len, n_experts)
        self.w_noise = nn.Linear(seq_len, n_experts)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x0 = x[..., 0].float()  # (B, L, N)
            z = x0 + self.seasonality(x0) + self.trend(x0)[1]
            z = self.mix_variates(z).squeeze(-1)  # (B, L)
            clean = self.w_gate(z)  # (B, E)
            noisy = self.noisy and self.training
            if noisy:
                std = F.softplus(self.w_noise(z)) + 1e-2
                logits = clean + torch.randn_like(clean) * std
            else:
                logits = clean
            top, top_idx = logits.topk(min(self.k + 1, self.n_experts), dim=1)
            gates = torch.zeros_like(logits).scatter(1, top_idx[:, : self.k], top[:, : self.k].softmax(dim=1))
            if noisy and self.k < self.n_experts:
                load = self._prob_in_top_k(clean, logits, std, top).sum(0)
            else:
                load = (gates > 0).sum(0).float()
            balance = self.coef * (cv_squared(gates.sum(0)) + cv_squared(load))
        return gates, balance

    def _prob_in_top_k(self, clean: Tensor, noisy: Tensor, std: Tensor, top: Tensor) -> Tensor:
        """Probability, under fresh noise, that each expert is in the top k (smooth load estimate)."""
        threshold_in, threshold_out = top[:, self.k : self.k + 1], top[:, self.k - 1 : self.k]  # (B, 1)
        is_in = noisy > threshold_in
        return torch.where(is_in, torch.special.ndtr((clean - threshold_in) / std),
                           torch.special.ndtr((clean - threshold_out) / std))


def cv_squared(x: Tensor) -> Tensor:
    """Squared coefficient of variation, var / (mean^2 + 1e-10) (unbiased var; 0 for one element)."""
    if x.numel() == 1:
        return x.new_zeros(())
    return x.var() / (x.mean() ** 2 + 1e-10)


def combine_in_log_space(gates: Tensor, routed: list[Tensor], outputs: list[Tensor]) -> Tensor:
    """log(sum_i g_i exp(y_i)) over the experts each sample was routed to (SparseDispatcher.combine).

    gates: (B, E); routed[i]: indices of the samples with gates[:, i] > 0, in batch order;
    outputs[i]: expert i's output for those samples, (len(routed[i]), ...) -> (B, ...) in fp32.
    """
    terms = []
    for i, (rows, out) in enumerate(zip(routed, outputs, strict=True)):
        if rows.numel() == 0:
            continue
        weighted = out.float() + gates[rows, i].log().view(-1, *[1] * (out.dim() - 1))
        full = weighted.new_full((gates.shape[0], *out.shape[1:]), float("-inf"))
        terms.append(full.index_copy(0, rows, weighted))
    return torch.logsumexp(torch.stack(terms), dim=0)


class AdaptiveMultiScaleLayer(nn.Module):
    """AMS: route each window to k patch-size experts and mix their outputs in log space.

    x: (B, L, N, D) -> (B, L, N, D), balance loss ().
    """

    def __init__(self, c: PathformerConfig, patch_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.router = MultiScaleRouter(c.seq_len, c.n_variates, c.n_experts, c.k, c.noisy_gating, c.balance_coef)
        self.experts = nn.ModuleList(PatchExpert(c, p) for p in patch_sizes)
        self.residual = c.residual

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        gates, balance = self.router(x)  # (B, E), ()
        routed = [gates[:, i].nonzero().squeeze(1) for i in range(len(self.experts))]
        # Each expert sees only its own windows (as the reference), so BatchNorm statistics match.
        outputs = [expert(x[rows]) if rows.numel() else x[:0] for expert, rows in zip(self.experts, routed)]
        out = combine_in_log_space(gates, routed, outputs).to(x.dtype)  # (B, L, N, D)
        return (out + x if self.residual else out), balance


class Pathformer(nn.Module):
    """(x: (B, L, N), x_mark: unused, y_mark: unused) -> (B, H, N); sets `aux_loss` (balance loss)."""

    config_class: ClassVar[type] = PathformerConfig

    def __init__(self, config: PathformerConfig) -> None:
        super().__init__()
        if config.n_variates is None:
            raise ValueError("n_variates must be set to build Pathformer (build_model fills it from the data)")
        self.config = c = config
        self.norm = RevIN(affine=False) if c.revin else None
        self.embed = nn.Linear(1, c.d_model)
        self.layers = nn.ModuleList(AdaptiveMultiScaleLayer(c, sizes) for sizes in c.patch_sizes)
        self.head = nn.Linear(c.seq_len * c.d_model, c.horizon)
        # Sum of the layers' balance losses of the latest forward; ForecastTask.training_step adds it.
        self.aux_loss: Tensor | None = None

    def forward(self, x: Tensor, x_mark: Tensor | None = None, y_mark: Tensor | None = None) -> Tensor:
        b, _, n = x.shape
        if self.norm is not None:
            x, stats = self.norm.normalize(x)  # (B, L, N); mean and std detached
        h = self.embed(x.unsqueeze(-1))  # (B, L, N, D): one token per scalar
        balance = x.new_zeros((), dtype=torch.float32)
        for layer in self.layers:
            h, layer_balance = layer(h)  # (B, L, N, D)
            balance = balance + layer_balance
        self.aux_loss = balance
        y = self.head(h.permute(0, 2, 1, 3).reshape(b, n, -1)).transpose(1, 2)  # (B, N, L*D) -> (B, H, N)
        if self.norm is not None:
            y = self.norm.denormalize(y, stats)
        return y
