"""PDE-Transformer: shapes over resolutions, frames and both channel variants; adaLN-Zero start;
conditioning that matters; clear errors for resolutions and inputs it cannot take; gradients."""

import pytest
import torch
from torch import nn

from pde.models import MODELS, FieldShapeError, build_model
from pde.models.pde_transformer import AdaLNModulation, PDEBlock, PDETransformer, PDETransformerConfig
from seqlab.errors import ConfigError, SeqlabError
from seqlab.nn.windowed import WindowMask

# Tiny: patch 2, window 2, one merge -> resolutions must be multiples of 2 * 2 * 2 = 8.
TINY = dict(hidden_size=8, n_heads=2, depths=(2, 1, 2), patch_size=2, window_size=2, channels=2)


def tiny(**overrides) -> PDETransformer:
    torch.manual_seed(0)
    return PDETransformer(PDETransformerConfig(**{**TINY, **overrides}))


def wake(model: PDETransformer) -> PDETransformer:
    """Give the zero-initialized layers (modulations, output conv) random weights, as training would."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, AdaLNModulation):
            nn.init.normal_(module.linear.weight, std=0.3)
            nn.init.normal_(module.linear.bias, std=0.3)
    nn.init.normal_(model.final.proj.weight, std=0.3)
    return model


def fields(b=2, t=1, c=2, y=8, x=8, seed=0):
    return torch.randn(b, t, c, y, x, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["mixed", "separate"])
@pytest.mark.parametrize(("resolution", "frames"), [((8, 8), (1, 1)), ((16, 24), (3, 2)), ((24, 16), (2, 4))])
def test_output_shape(mode, resolution, frames):
    model = wake(tiny(channel_mode=mode, in_frames=frames[0], out_frames=frames[1]))
    out = model(fields(t=frames[0], y=resolution[0], x=resolution[1]))
    assert out.shape == (2, frames[1], 2, *resolution)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", ["mixed", "separate"])
def test_output_shape_with_conditioning(mode):
    model = wake(tiny(channel_mode=mode, n_param=3, n_pde_types=4)).eval()
    x, params = fields(), torch.rand(2, 3)
    for pde_type in (torch.tensor([0, 3]), None):
        assert model(x, params=params, pde_type=pde_type).shape == (2, 1, 2, 8, 8)


@pytest.mark.parametrize("mode", ["mixed", "separate"])
def test_starts_at_zero_output_and_ignores_conditioning_until_trained(mode):
    model = tiny(channel_mode=mode, n_param=2, n_pde_types=3).eval()
    modulations = [m for m in model.modules() if isinstance(m, AdaLNModulation)]
    assert modulations and all(not m.linear.weight.any() and not m.linear.bias.any() for m in modulations)
    x = fields()
    a = model(x, params=torch.zeros(2, 2), pde_type=torch.tensor([0, 1]))
    b = model(x, params=torch.ones(2, 2), pde_type=torch.tensor([2, 2]))
    assert not a.any() and not b.any()  # zero-initialized output layer


def test_zero_modulation_leaves_a_plain_pre_norm_block():
    torch.manual_seed(0)
    block = PDEBlock(dim=8, n_heads=2, mlp_ratio=4.0, channel_attention=False)
    nn.init.zeros_(block.modulation.linear.weight)
    nn.init.zeros_(block.modulation.linear.bias)
    x, c = torch.randn(3, 16, 8), torch.randn(3, 8)
    mask = WindowMask(grid=(4, 4), window=(2, 2), shift=(1, 1))
    h = x + block.attention(block.norm1(x), mask=mask)
    expected = h + block.mlp(block.norm2(h))
    torch.testing.assert_close(block(x, c, mask, n_channels=1), expected)


@pytest.mark.parametrize("mode", ["mixed", "separate"])
def test_parameters_and_pde_type_change_the_output(mode):
    model = wake(tiny(channel_mode=mode, n_param=2, n_pde_types=3)).eval()
    x = fields()
    base = model(x, params=torch.tensor([[0.1, 0.5]] * 2), pde_type=torch.tensor([0, 0]))
    other_params = model(x, params=torch.tensor([[0.1, 0.6]] * 2), pde_type=torch.tensor([0, 0]))
    other_type = model(x, params=torch.tensor([[0.1, 0.5]] * 2), pde_type=torch.tensor([1, 1]))
    assert (base - other_params).abs().max() > 1e-4
    assert (base - other_type).abs().max() > 1e-4


def test_label_dropout_replaces_pde_types_by_unknown_in_training():
    model = wake(tiny(n_pde_types=3, label_dropout=0.999999)).train()
    x = fields()
    torch.manual_seed(0)
    dropped = model(x, pde_type=torch.tensor([1, 2]))
    torch.manual_seed(0)
    unknown = model(x)
    torch.testing.assert_close(dropped, unknown)


@pytest.mark.parametrize("mode", ["mixed", "separate"])
def test_channels_interact(mode):
    model = wake(tiny(channel_mode=mode)).eval()
    x = fields()
    x2 = x.clone()
    x2[:, :, 1] += 1.0
    assert (model(x2)[:, :, 0] - model(x)[:, :, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("mode", ["mixed", "separate"])
def test_gradients_reach_every_parameter(mode):
    model = wake(tiny(channel_mode=mode, n_param=2, n_pde_types=3)).train()
    out = model(fields(), params=torch.rand(2, 2), pde_type=torch.tensor([0, 2]))
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("resolution", [(12, 8), (8, 20)])
def test_bad_resolution_names_the_sizes(resolution):
    model = tiny()
    with pytest.raises(FieldShapeError, match=r"resolution \(\d+, \d+\).*2 \* 2 \* 2 = 8") as info:
        model(fields(y=resolution[0], x=resolution[1]))
    assert str(resolution) in str(info.value)


def test_resolution_rule_covers_every_level():
    config = PDETransformerConfig()  # S: patch 4, window 8, two merges
    assert config.resolution_multiple == 128
    config.check_resolution((256, 128))
    with pytest.raises(FieldShapeError, match="64"):
        config.check_resolution((64, 64))  # 16^2 tokens would leave a 4^2 latent grid


def test_wrong_frames_or_channels_are_named():
    model = tiny()
    with pytest.raises(FieldShapeError, match="T_in=1, C=2"):
        model(fields(c=3))


def test_conditioning_inputs_are_checked():
    model = tiny(n_param=2, n_pde_types=3)
    with pytest.raises(SeqlabError, match="n_param=2"):
        model(fields())
    with pytest.raises(SeqlabError, match="n_pde_types=3"):
        model(fields(), params=torch.zeros(2, 2), pde_type=torch.tensor([0, 3]))
    with pytest.raises(SeqlabError, match="n_pde_types=0"):
        tiny()(fields(), pde_type=torch.tensor([0, 0]))
    assert tiny()(fields(), params=torch.zeros(2, 5)).shape == (2, 1, 2, 8, 8)  # unused params are ignored


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(depths=(2, 2)), "depths"),
        (dict(hidden_size=10, n_heads=4), "hidden_size"),
        (dict(channel_mode="both"), "channel_mode"),
        (dict(n_param=-1), "n_param"),
        (dict(label_dropout=1.0), "label_dropout"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        PDETransformerConfig(**overrides)


def test_presets_and_registry():
    cpu = PDETransformerConfig.preset("cpu", channels=1)
    assert (cpu.hidden_size, cpu.window_size, cpu.resolution_multiple) == (32, 4, 64)
    model = build_model("pde_transformer", {"channels": 1, "hidden_size": 32, "n_heads": 2, "depths": [2, 2, 2, 2, 2],
                                            "window_size": 4})
    assert isinstance(model, MODELS.get("pde_transformer"))
    assert model.config == cpu
    assert wake(model)(torch.randn(1, 1, 1, 64, 64)).shape == (1, 1, 1, 64, 64)
    with pytest.raises(ConfigError, match="unknown PDE-Transformer preset 'xl'"):
        PDETransformerConfig.preset("xl")


@pytest.mark.parametrize(("mode", "low", "high"), [("mixed", 32e6, 35e6), ("separate", 44e6, 47e6)])
def test_s_size_matches_the_published_parameter_count(mode, low, high):
    """docs/pretrained-weights.md of the reference: MC-S ~33M, SC-S ~46M weights (2 channels)."""
    model = PDETransformer(PDETransformerConfig.preset("s", channels=2, channel_mode=mode))
    assert low < sum(p.numel() for p in model.parameters()) < high
