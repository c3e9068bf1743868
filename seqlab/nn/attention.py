"""Multi-head attention with pluggable kernels.

`MultiHeadAttention` owns the projections (Q, K, V, output) and the head split; the *kernel* owns
the score computation. A kernel is any module called as

    kernel(q, k, v, mask) -> out        q: (B, H, Lq, E)  k: (B, H, Lk, E)  v: (B, H, Lk, Ev)
                                        out: (B, H, Lq, Ev)

so ProbSparse (Informer), factorized (FactFormer) and windowed (PDE-Transformer) kernels plug in
without touching callers. `FullAttention` is the exact kernel, run through
`torch.nn.functional.scaled_dot_product_attention` (fused CPU/GPU paths).

Incremental decoding: pass a `KVCache` to `MultiHeadAttention.forward` and feed only the new
tokens; their keys and values are appended to the cache and the queries attend causally over
cached + new keys, giving the same outputs as one causal pass over the whole sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.nn.dropout import dropout


@dataclass(frozen=True)
class AttentionMask:
    """Which keys each query may see. Both parts are optional and combine with AND.

    causal: query i sees keys j <= i + causal_offset (aligned at the start; Lq == Lk expected
        unless an offset is given).
    key_padding: (B, Lk) bool, True where the key is padding and must be ignored.
    causal_offset: how many keys precede the first query, i.e. the cached keys of incremental
        decoding (`MultiHeadAttention` sets it from its `KVCache`).
    query_positions: (Lq,) long, where each query sits among the (uncached) tokens when only some
        positions are queried (a causal pass read at a few tokens); None: query i sits at i.
    """

    causal: bool = False
    key_padding: Tensor | None = None
    causal_offset: int = 0
    query_positions: Tensor | None = None

    @property
    def is_empty(self) -> bool:
        return not self.causal and self.key_padding is None

    def allowed(self, lq: int, lk: int, device: torch.device) -> Tensor | None:
        """Boolean (B or 1, 1, Lq, Lk) tensor, True where attention is allowed; None if all is."""
        allowed = None
        if self.causal:
            rows = torch.arange(lq, device=device) if self.query_positions is None else self.query_positions.to(device)
            allowed = (torch.arange(lk, device=device) <= rows[:, None] + self.causal_offset)[None, None]
        if self.key_padding is not None:
            keys = ~self.key_padding.to(device=device, dtype=torch.bool)[:, None, None, :]
            allowed = keys if allowed is None else allowed & keys
        return allowed


NO_MASK = AttentionMask()


class FullAttention(nn.Module):
    """Exact softmax(QK^T / sqrt(E)) V with dropout on the attention weights.

    Queries that may see no key at all (every key padded) return zeros instead of NaN.
    """

    def __init__(self, dropout: float = 0.0, scale: float | None = None) -> None:
        super().__init__()
        self.dropout = dropout
        self.scale = scale

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask = NO_MASK) -> Tensor:
        dropout_p = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and (dropout_p or _bf16_scores_fit(q, k)):
            return self._written_out(q, k, v, mask, dropout_p)
        if mask.key_padding is None:
            if mask.causal and (mask.causal_offset or mask.query_positions is not None):
                # Incremental decoding (queries after cached keys) or a subset of queries.
                allowed = mask.allowed(q.shape[-2], k.shape[-2], q.device)
                return F.scaled_dot_product_attention(
                    q, k, v, attn_mask=allowed, dropout_p=dropout_p, scale=self.scale
                )
            # Fast path: the fused kernels build the causal mask themselves, without an (Lq, Lk)
            # tensor on CPU (flash kernel) as long as dropout_p == 0.
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout_p, is_causal=mask.causal, scale=self.scale
            )
        allowed = mask.allowed(q.shape[-2], k.shape[-2], q.device)
        empty_rows = ~allowed.any(dim=-1, keepdim=True)  # (B, 1, Lq, 1)
        # A row with no visible key would give NaN (softmax of all -inf): let it see everything,
        # then zero its output.
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed | empty_rows, dropout_p=dropout_p, scale=self.scale
        )
        return out.masked_fill(empty_rows, 0.0)

    def _written_out(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, p: float) -> Tensor:
        """The same attention as explicit matmuls, softmax in fp32, for CPU. With dropout, torch's
        SDPA takes such an unfused path anyway but draws the mask with bernoulli_ (see
        `seqlab.nn.dropout`); with bf16 inputs it is faster than the fused kernels (`_bf16_scores_fit`).
        Fewer than SHORT_SOFTMAX keys: the scores are laid out (Lk, Lq) and normalized along the
        strided axis, because torch's CPU softmax over a last axis shorter than one vector register
        runs scalar code (4-5x slower forward + backward at Lk = 11, iTransformer's ETTh1 tokens)."""
        scale = self.scale if self.scale is not None else q.shape[-1] ** -0.5
        allowed = mask.allowed(q.shape[-2], k.shape[-2], q.device)  # (B, 1, Lq, Lk) or None
        if allowed is not None:
            empty_rows = ~allowed.any(dim=-1, keepdim=True)  # as in forward: see all keys, output zeros
            allowed = allowed | empty_rows
        keys_last = k.shape[-2] >= SHORT_SOFTMAX
        if keys_last:
            scores = q @ k.transpose(-2, -1)  # (B, H, Lq, Lk)
        else:
            scores = k @ q.transpose(-2, -1)  # (B, H, Lk, Lq)
            allowed = allowed.transpose(-2, -1) if allowed is not None else None
        scores = scores.float() * scale
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = dropout(scores.softmax(dim=-1 if keys_last else -2), p).to(v.dtype)
        out = (weights if keys_last else weights.transpose(-2, -1)) @ v
        return out if allowed is None else out.masked_fill(empty_rows, 0.0)


SHORT_SOFTMAX = 16
"""Key counts below this take the (Lk, Lq) score layout in `FullAttention._written_out`: torch's CPU
softmax vectorizes along its axis only from 16 fp32 elements (one AVX-512 register) on."""


WRITTEN_OUT_MAX_SCORES = 2**25
"""Largest score matrix (B*H*Lq*Lk elements, 128 MiB in fp32) that bf16 CPU attention writes out."""


def _bf16_scores_fit(q: Tensor, k: Tensor) -> bool:
    """Whether bf16 attention on CPU should skip torch's fused SDPA kernels: they ran 1.5-2.5x slower
    (forward + backward, one thread here) than explicit bf16 matmuls at every size measured, from
    Pathformer's (3584, 48, 2) to (8, 512, 64) per (B*H, L, E); past WRITTEN_OUT_MAX_SCORES the
    fused kernel's memory saving (no (Lq, Lk) matrix) matters more."""
    return q.dtype == torch.bfloat16 and q.shape[:-1].numel() * k.shape[-2] <= WRITTEN_OUT_MAX_SCORES


class ProbSparseAttention(nn.Module):
    """Informer's ProbSparse self-attention (Zhou et al., AAAI 2021, arXiv:2012.07436).

    Only the u = factor * ceil(ln Lq) "active" queries get exact attention over all keys. Queries
    are ranked by a sparsity measure computed on S = factor * ceil(ln Lk) keys sampled per query,
    M(q) = max_j q.k_j - sum_j q.k_j / Lk (the reference divides the sampled sum by the full Lk).
    The other, "lazy" queries return mean(V), or with a causal mask the running sum of V (the
    reference's `cumsum`, kept as is). Matches zhouhaoyi/Informer2020 `models/attn.py: ProbAttention`.

    Deviations:
    - Speed-up: the sparsity measure reads the sampled products out of one dense QK^T matmul,
      which also supplies the active queries' scores (same values; the reference materializes a
      (B, H, Lq, S, E) gather of keys, 3x slower fwd+bwd on CPU at L=96).
    - Bug fix: S and u are at least 1: the reference samples `factor * ceil(ln 1) = 0` keys when Lk = 1
      (e.g. pred_len=1 with label_len=0) and fails.
    - Bug fix: sampling is reproducible: in training it draws from torch's global generator (seeded by the
      Trainer); in eval mode from a generator seeded with `eval_seed`, so one model gives the same
      forecast every time it is asked.
    """

    def __init__(self, factor: int = 5, scale: float | None = None, eval_seed: int = 0) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.factor = factor
        self.scale = scale
        self.eval_seed = eval_seed

    def _count(self, length: int) -> int:
        return min(length, max(1, self.factor * math.ceil(math.log(length))))

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask = NO_MASK) -> Tensor:
        if mask.key_padding is not None:
            raise ValueError("ProbSparse attention does not support key padding masks")
        b, h, lq, e = q.shape
        lk = k.shape[-2]
        if mask.causal and lq != lk:
            raise ValueError(f"causal ProbSparse attention needs as many queries as keys, got {lq} and {lk}")
        n_sample, n_top = self._count(lk), self._count(lq)
        generator = None if self.training else torch.Generator(q.device).manual_seed(self.eval_seed)
        sample = torch.randint(lk, (lq, n_sample), generator=generator, device=q.device)  # (Lq, S)

        # All query-key products in one matmul; the sampled ones are read out of it. The reference
        # gathers a (B, H, Lq, S, E) copy of the keys instead: same numbers, 3x slower on CPU.
        qk = q @ k.transpose(-2, -1)  # (B, H, Lq, Lk)
        qk_sample = qk.gather(-1, sample.expand(b, h, lq, n_sample))  # (B, H, Lq, S)
        sparsity = qk_sample.amax(dim=-1) - qk_sample.sum(dim=-1) / lk  # (B, H, Lq)
        top = sparsity.topk(n_top, dim=-1, sorted=False).indices  # (B, H, u)

        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(e)
        scores = qk.gather(2, top[..., None].expand(-1, -1, -1, lk)) * scale  # (B, H, u, Lk): the active rows
        if mask.causal:
            future = torch.arange(lk, device=q.device) > top[..., None]  # (B, H, u, Lk)
            scores = scores.masked_fill(future, float("-inf"))
            context = v.cumsum(dim=-2)  # (B, H, Lq, Ev)
        else:
            context = v.mean(dim=-2, keepdim=True).expand(b, h, lq, v.shape[-1])
        active = torch.softmax(scores, dim=-1) @ v  # (B, H, u, Ev)
        index = top[..., None].expand(-1, -1, -1, v.shape[-1])
        return context.scatter(2, index, active.to(context.dtype))


class KVCache:
    """Keys and values of the tokens seen so far, for one attention layer (incremental decoding).

    Storage is allocated once, on the first `append`, for `max_len` positions: (B, H, max_len, E)
    for keys and for values; later appends write in place, so decoding T tokens one step at a
    time copies each key once instead of re-concatenating the history every step.
    """

    def __init__(self, max_len: int) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.max_len = max_len
        self.length = 0
        self._k: Tensor | None = None
        self._v: Tensor | None = None

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """k: (B, H, n, E), v: (B, H, n, Ev) -> all keys and values so far, (B, H, length + n, .)."""
        n = k.shape[-2]
        if self.length + n > self.max_len:
            raise ValueError(
                f"KVCache holds {self.length} of max_len={self.max_len} positions and cannot take {n} more; "
                "reset it or allocate a longer cache"
            )
        if self._k is None or self._k.shape[:2] != k.shape[:2] or self._k.dtype != k.dtype:
            if self.length:
                raise ValueError(
                    f"KVCache was filled with batch/heads {tuple(self._k.shape[:2])} and {self._k.dtype}, "
                    f"got {tuple(k.shape[:2])} and {k.dtype}"
                )
            b, h = k.shape[:2]
            self._k = k.new_empty(b, h, self.max_len, k.shape[-1])
            self._v = v.new_empty(b, h, self.max_len, v.shape[-1])
        end = self.length + n
        self._k[:, :, self.length : end] = k
        self._v[:, :, self.length : end] = v
        self.length = end
        return self._k[:, :, :end], self._v[:, :, :end]

    def reset(self) -> None:
        """Forget every cached position (the storage is kept for reuse)."""
        self.length = 0


class MultiHeadAttention(nn.Module):
    """Projections and head split around an attention kernel.

    Args:
        d_model: model width D.
        n_heads: number of heads H; each head has width D / H unless `d_head` is given.
        kernel: the score computation (defaults to `FullAttention()`).
        d_head: per-head width of queries, keys and values.
        bias: whether the four projections have a bias.
        mix: read the kernel's (B, H, L, E) output as (B, L, H*E) without moving the head axis
            back, as Informer's `mix=True` decoder self-attention does (it interleaves heads and
            positions; kept for faithfulness).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        kernel: nn.Module | None = None,
        d_head: int | None = None,
        bias: bool = True,
        mix: bool = False,
    ) -> None:
        super().__init__()
        if d_head is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
            d_head = d_model // n_heads
        self.n_heads = n_heads
        self.d_head = d_head
        inner = n_heads * d_head
        self.q_proj = nn.Linear(d_model, inner, bias=bias)
        self.k_proj = nn.Linear(d_model, inner, bias=bias)
        self.v_proj = nn.Linear(d_model, inner, bias=bias)
        self.out_proj = nn.Linear(inner, d_model, bias=bias)
        self.kernel = kernel if kernel is not None else FullAttention()
        self.mix = mix

    def _split(self, x: Tensor) -> Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, E)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: AttentionMask = NO_MASK,
        cache: KVCache | None = None,
    ) -> Tensor:
        """query: (B, Lq, D); key, value: (B, Lk, D), default to `query` (self-attention).

        cache: keys and values of earlier tokens; the new ones are appended to it, and a causal
        mask is shifted by the number of cached keys (a key padding mask must then cover all
        cached + new keys).
        """
        key = query if key is None else key
        value = key if value is None else value
        q = self._split(self.q_proj(query))
        k = self._split(self.k_proj(key))
        v = self._split(self.v_proj(value))
        if cache is not None:
            offset = cache.length
            k, v = cache.append(k, v)  # (B, H, offset + Lk, E)
            if mask.causal:
                mask = replace(mask, causal_offset=mask.causal_offset + offset)
        out = self.kernel(q, k, v, mask)  # (B, H, Lq, E)
        b, _, lq, _ = out.shape
        if not self.mix:
            out = out.transpose(1, 2)  # (B, Lq, H, E)
        out = out.reshape(b, lq, self.n_heads * self.d_head)  # (B, Lq, H*E)
        return self.out_proj(out)
