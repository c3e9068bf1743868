"""Building blocks shared by every model: attention, transformer layers, embeddings, norms."""

from seqlab.nn.attention import NO_MASK, AttentionMask, FullAttention, MultiHeadAttention, ProbSparseAttention
from seqlab.nn.blocks import Decoder, DecoderLayer, Encoder, EncoderLayer, FeedForward, activation, encoder_stack
from seqlab.nn.embeddings import (
    ConvTokenEmbedding,
    LearnedPositionalEmbedding,
    SinusoidalPositionalEmbedding,
    TimeFeatureEmbedding,
    TimestepEmbedding,
)
from seqlab.nn.norms import InstanceStats, RevIN

__all__ = [
    "NO_MASK",
    "AttentionMask",
    "ConvTokenEmbedding",
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "FullAttention",
    "InstanceStats",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "ProbSparseAttention",
    "RevIN",
    "SinusoidalPositionalEmbedding",
    "TimeFeatureEmbedding",
    "TimestepEmbedding",
    "activation",
    "encoder_stack",
]
