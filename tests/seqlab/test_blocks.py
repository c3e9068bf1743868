import pytest
import torch
from torch import nn

from seqlab.nn import (
    AttentionMask,
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForward,
    MultiHeadAttention,
)


def encoder_layer(norm_first, d=8):
    return EncoderLayer(MultiHeadAttention(d, 2), FeedForward(d, 16), d, dropout=0.0, norm_first=norm_first)


def test_post_norm_layer_formula():
    torch.manual_seed(0)
    layer = encoder_layer(norm_first=False).eval()
    x = torch.randn(2, 5, 8)
    h = layer.norm1(x + layer.attention(x))
    torch.testing.assert_close(layer(x), layer.norm2(h + layer.feed_forward(h)))


def test_pre_norm_layer_formula():
    torch.manual_seed(0)
    layer = encoder_layer(norm_first=True).eval()
    x = torch.randn(2, 5, 8)
    h = x + layer.attention(layer.norm1(x))
    torch.testing.assert_close(layer(x), h + layer.feed_forward(layer.norm2(h)))


def test_feed_forward_equals_conv1d_form_of_the_references():
    torch.manual_seed(0)
    ff = FeedForward(8, 32).eval()
    conv1, conv2 = nn.Conv1d(8, 32, 1), nn.Conv1d(32, 8, 1)
    with torch.no_grad():
        conv1.weight.copy_(ff.net[0].weight[..., None])
        conv1.bias.copy_(ff.net[0].bias)
        conv2.weight.copy_(ff.net[3].weight[..., None])
        conv2.bias.copy_(ff.net[3].bias)
    x = torch.randn(2, 6, 8)
    reference = conv2(nn.functional.gelu(conv1(x.transpose(1, 2)))).transpose(1, 2)
    torch.testing.assert_close(ff(x), reference)


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_encoder_past_outputs_ignore_the_future(norm_first):
    torch.manual_seed(0)
    encoder = Encoder([encoder_layer(norm_first) for _ in range(2)], norm=nn.LayerNorm(8)).eval()
    x = torch.randn(2, 10, 8)
    changed = x.clone()
    changed[:, 6:] = torch.randn(2, 4, 8) * 10
    mask = AttentionMask(causal=True)
    before, after = encoder(x, mask=mask), encoder(changed, mask=mask)
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_decoder_past_outputs_ignore_the_future():
    torch.manual_seed(0)
    d = 8
    decoder = Decoder(
        [DecoderLayer(MultiHeadAttention(d, 2), MultiHeadAttention(d, 2), FeedForward(d, 16), d) for _ in range(2)],
        norm=nn.LayerNorm(d),
    ).eval()
    x, memory = torch.randn(2, 7, d), torch.randn(2, 11, d)
    changed = x.clone()
    changed[:, 4:] += 5.0
    torch.testing.assert_close(decoder(x, memory)[:, :4], decoder(changed, memory)[:, :4])
    # The whole memory is visible to every position.
    assert not torch.allclose(decoder(x, memory)[:, :1], decoder(x, memory + 1.0)[:, :1])


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="swish"):
        FeedForward(4, 8, act="swish")


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("outputs", [slice(0, 4), slice(1, None, 3), slice(-1, None)])
def test_encoder_computed_at_some_outputs_equals_the_full_pass_read_there(norm_first, causal, outputs):
    """`outputs` prunes the last layer to the tokens read; keys and values still come from all."""
    torch.manual_seed(0)
    layers = [encoder_layer(norm_first) for _ in range(2)]
    encoder = Encoder(layers, norm=nn.LayerNorm(8)).eval()
    x = torch.randn(2, 7, 8)
    padding = torch.tensor([[False] * 5 + [True] * 2, [True] + [False] * 6])
    mask = AttentionMask(causal=causal, key_padding=padding)
    full = encoder(x, mask=mask)
    pruned = encoder(x, mask=mask, outputs=outputs)
    assert pruned.shape == full[:, outputs].shape
    torch.testing.assert_close(pruned, full[:, outputs])
    if not causal:  # an unread token still acts as a key and value of the read ones
        x2 = x.clone()
        x2[:, 4] += torch.randn(2, 8)
        read = slice(0, 4)
        assert not torch.allclose(encoder(x2, mask=mask, outputs=read), encoder(x, mask=mask, outputs=read))
