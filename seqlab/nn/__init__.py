"""Building blocks shared by every model: attention, transformer layers, embeddings, norms."""

from seqlab.nn.attention import (
    NO_MASK,
    AttentionMask,
    FullAttention,
    KVCache,
    MultiHeadAttention,
    ProbSparseAttention,
)
from seqlab.nn.blocks import Decoder, DecoderLayer, Encoder, EncoderLayer, FeedForward, activation, encoder_stack
from seqlab.nn.dropout import FastDropout
from seqlab.nn.embeddings import (
    ConvTokenEmbedding,
    LearnedPositionalEmbedding,
    SinusoidalPositionalEmbedding,
    TimeFeatureEmbedding,
    TimestepEmbedding,
)
from seqlab.nn.factorized import FactorizedAttention, LowRankKernel, channel_last_group_norm
from seqlab.nn.norms import InstanceStats, RevIN
from seqlab.nn.rotary import RotaryEmbedding
from seqlab.nn.windowed import CosineAttention, WindowAttention, WindowMask

__all__ = [
    "NO_MASK",
    "AttentionMask",
    "ConvTokenEmbedding",
    "CosineAttention",
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FactorizedAttention",
    "FastDropout",
    "FeedForward",
    "FullAttention",
    "InstanceStats",
    "KVCache",
    "LearnedPositionalEmbedding",
    "LowRankKernel",
    "MultiHeadAttention",
    "ProbSparseAttention",
    "RevIN",
    "RotaryEmbedding",
    "SinusoidalPositionalEmbedding",
    "TimeFeatureEmbedding",
    "TimestepEmbedding",
    "WindowAttention",
    "WindowMask",
    "activation",
    "channel_last_group_norm",
    "encoder_stack",
]
