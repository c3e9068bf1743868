import pytest
import torch
from torch import nn

from seqlab.nn.factorized import channel_last_group_norm


@pytest.mark.parametrize("spatial", [(7,), (5, 6), (3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_channel_last_group_norm_equals_group_norm_on_channels_first(spatial, affine):
    torch.manual_seed(0)
    norm = nn.GroupNorm(3, 12, affine=affine)
    if affine:
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    x = torch.randn(2, *spatial, 12) * 3 + 1  # (B, *S, C)
    expected = norm(x.movedim(-1, 1)).movedim(1, -1)
    out = channel_last_group_norm(x, norm)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    other_sample = channel_last_group_norm(torch.cat([x[:1], x[1:] * 10]), norm)  # statistics per sample
    torch.testing.assert_close(other_sample, expected, rtol=1e-5, atol=1e-5)
