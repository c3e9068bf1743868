"""Transformer layers shared by every model: feed-forward, encoder and decoder layers.

Dropout sits where the reference forecasting code (TSLib, iTransformer, Informer2020) puts it:
on the attention weights (inside the kernel), on each sub-layer's output before the residual
sum, and after the feed-forward activation. `norm_first` switches between the post-norm layer of
those references (`x = norm(x + f(x))`) and the pre-norm layer of GPT-style models
(`x = x + f(norm(x))`).

Encoder layers and stacks take an optional `KVCache` (one per layer) for incremental decoding:
feed only the new tokens of a causal sequence and get the outputs a full pass would give them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from seqlab.nn.dropout import FastDropout
from seqlab.nn.attention import NO_MASK, AttentionMask, FullAttention, KVCache, MultiHeadAttention

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "elu": nn.ELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(D->F) -> act -> dropout -> Linear(F->D) -> dropout.

    The references write this as two kernel-size-1 Conv1d layers, which is the same map.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, act: str = "gelu") -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ff),
            activation(act),
            FastDropout(dropout),
            nn.Linear(d_ff, d_model),
            FastDropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each with a residual connection. x: (B, L, D) -> (B, L, D)."""

    def __init__(
        self,
        attention: MultiHeadAttention,
        feed_forward: nn.Module,
        d_model: int,
        dropout: float = 0.0,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.attention = attention
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = FastDropout(dropout)
        self.norm_first = norm_first

    def forward(
        self, x: Tensor, mask: AttentionMask = NO_MASK, cache: KVCache | None = None, outputs: slice | None = None
    ) -> Tensor:
        """cache: this layer's keys and values of earlier tokens (see `MultiHeadAttention`).

        outputs: compute only these tokens, (B, L, D) -> (B, L', D), for a caller that reads a part
        of the output: keys and values still come from every token, and only the queried tokens
        pay for queries, output projection, feed-forward and norms. Equal to `self(x)[:, outputs]`.
        """
        if outputs is not None and mask.causal:
            mask = replace(mask, query_positions=torch.arange(x.shape[1], device=x.device)[outputs])
        h = self.norm1(x) if self.norm_first else x
        queries = h if outputs is None else h[:, outputs].contiguous()
        x = x if outputs is None else x[:, outputs].contiguous()
        attended = self.dropout(self.attention(queries, h, h, mask=mask, cache=cache))
        if self.norm_first:
            x = x + attended
            return x + self.feed_forward(self.norm2(x))
        x = self.norm1(x + attended)
        return self.norm2(x + self.feed_forward(x))


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to a memory, feed-forward.

    x: (B, Lq, D), memory: (B, Lk, D) -> (B, Lq, D).
    """

    def __init__(
        self,
        self_attention: MultiHeadAttention,
        cross_attention: MultiHeadAttention,
        feed_forward: nn.Module,
        d_model: int,
        dropout: float = 0.0,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.self_attention = self_attention
        self.cross_attention = cross_attention
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = FastDropout(dropout)
        self.norm_first = norm_first

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: AttentionMask = AttentionMask(causal=True),
        memory_mask: AttentionMask = NO_MASK,
    ) -> Tensor:
        if self.norm_first:
            x = x + self.dropout(self.self_attention(self.norm1(x), mask=self_mask))
            x = x + self.dropout(self.cross_attention(self.norm2(x), memory, mask=memory_mask))
            return x + self.feed_forward(self.norm3(x))
        x = self.norm1(x + self.dropout(self.self_attention(x, mask=self_mask)))
        x = self.norm2(x + self.dropout(self.cross_attention(x, memory, mask=memory_mask)))
        return self.norm3(x + self.feed_forward(x))


class Encoder(nn.Module):
    """A stack of encoder layers with an optional final norm. x: (B, L, D) -> (B, L', D).

    `between` holds one module per gap between layers (len(layers) - 1), applied after each layer
    but the last, e.g. Informer's distilling convolution that halves the length.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        norm: nn.Module | None = None,
        between: Sequence[nn.Module] = (),
    ) -> None:
        super().__init__()
        if between and len(between) != len(layers) - 1:
            raise ValueError(f"need {len(layers) - 1} modules between {len(layers)} layers, got {len(between)}")
        self.layers = nn.ModuleList(layers)
        self.between = nn.ModuleList(between)
        self.norm = norm

    def forward(
        self,
        x: Tensor,
        mask: AttentionMask = NO_MASK,
        cache: Sequence[KVCache] | None = None,
        outputs: slice | None = None,
    ) -> Tensor:
        """cache: one `KVCache` per layer for incremental decoding (not with `between` modules,
        which change the sequence length). outputs: the tokens the caller reads; the last layer
        computes only those (see `EncoderLayer`), so the result is `self(x)[:, outputs]`."""
        if cache is not None:
            if self.between:
                raise ValueError("an encoder with modules between its layers cannot decode incrementally")
            if len(cache) != len(self.layers):
                raise ValueError(f"need one KVCache per layer ({len(self.layers)}), got {len(cache)}")
        for i, layer in enumerate(self.layers):
            extra = {} if cache is None else {"cache": cache[i]}
            if outputs is not None and i == len(self.layers) - 1:
                extra["outputs"] = outputs
            x = layer(x, mask=mask, **extra)
            if i < len(self.between):
                x = self.between[i](x)
        return self.norm(x) if self.norm is not None else x


def encoder_stack(
    n_layers: int,
    d_model: int,
    n_heads: int,
    d_ff: int,
    dropout: float,
    activation: str = "gelu",
    kernel: Callable[[], nn.Module] | None = None,
    norm: nn.Module | None = None,
    between: Sequence[nn.Module] = (),
    norm_first: bool = False,
    mix: bool = False,
) -> Encoder:
    """The usual stack: `n_layers` encoder layers of multi-head attention and a feed-forward.

    kernel: makes each layer's attention kernel (default: full attention with `dropout` on the
    weights). norm: the final norm (default LayerNorm(d_model)). between, norm_first: see Encoder,
    EncoderLayer; mix: see MultiHeadAttention.
    """
    make_kernel = kernel or (lambda: FullAttention(dropout=dropout))
    layers = [
        EncoderLayer(
            MultiHeadAttention(d_model, n_heads, make_kernel(), mix=mix),
            FeedForward(d_model, d_ff, dropout, activation),
            d_model,
            dropout=dropout,
            norm_first=norm_first,
        )
        for _ in range(n_layers)
    ]
    return Encoder(layers, norm=norm if norm is not None else nn.LayerNorm(d_model), between=between)


class Decoder(nn.Module):
    """A stack of decoder layers with an optional final norm. x: (B, Lq, D) -> (B, Lq, D)."""

    def __init__(self, layers: Sequence[nn.Module], norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: AttentionMask = AttentionMask(causal=True),
        memory_mask: AttentionMask = NO_MASK,
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, self_mask=self_mask, memory_mask=memory_mask)
        return self.norm(x) if self.norm is not None else x
