import pytest
import torch

from forecasting.models.informer import DistillingConv, Informer, InformerConfig


def tiny(**overrides):
    base = dict(seq_len=96, horizon=24, label_len=48, n_variates=3, n_time_features=4, d_model=16, n_heads=2,
                d_ff=32, factor=3, dropout=0.0)
    return Informer(InformerConfig(**{**base, **overrides})).eval()


def inputs(b=2, length=96, horizon=24, n=3, k=4):
    torch.manual_seed(0)
    return torch.randn(b, length, n), torch.rand(b, length, k) - 0.5, torch.rand(b, horizon, k) - 0.5


def test_output_shape():
    x, xm, ym = inputs()
    assert tiny()(x, xm, ym).shape == (2, 24, 3)


def test_pred_len_one_with_no_label_works():
    x, xm, ym = inputs(horizon=1)
    assert tiny(horizon=1, label_len=0)(x, xm, ym).shape == (2, 1, 3)


def test_distilling_halves_96_to_48_and_the_tslib_padding_gives_49():
    x = torch.randn(2, 96, 16)
    assert DistillingConv(16)(x).shape == (2, 48, 16)
    assert DistillingConv(16, padding=2)(x).shape == (2, 49, 16)


def test_encoder_lengths_through_distilling():
    model = tiny(n_layers=3)
    x, xm, _ = inputs()
    assert model.encoder(model.enc_embed(x, xm)).shape == (2, 24, 16)  # 96 -> 48 -> 24


def test_inference_is_deterministic_and_training_is_seeded():
    x, xm, ym = inputs()
    model = tiny()
    torch.testing.assert_close(model(x, xm, ym), model(x, xm, ym))
    model.train()
    torch.manual_seed(1)
    a = model(x, xm, ym)
    torch.manual_seed(1)
    assert torch.equal(a, model(x, xm, ym))


def test_future_targets_never_enter_the_decoder():
    """The decoder input is built from the look-back alone: zeros stand for the horizon."""
    x, xm, ym = inputs()
    model = tiny()
    dec_inputs = []
    model.dec_embed.register_forward_hook(lambda mod, args, out: dec_inputs.append(args[0]))
    model(x, xm, ym)
    (dec_x,) = dec_inputs
    torch.testing.assert_close(dec_x[:, :48], x[:, -48:])
    assert torch.all(dec_x[:, 48:] == 0)


@pytest.mark.parametrize("variant", ["original", "tslib"])
@pytest.mark.parametrize("attention", ["prob", "full"])
def test_variants_build_and_run(variant, attention):
    x, xm, ym = inputs()
    assert tiny(variant=variant, attention=attention)(x, xm, ym).shape == (2, 24, 3)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="label_len"):
        InformerConfig(seq_len=24, label_len=48)
    with pytest.raises(ValueError, match="n_variates"):
        Informer(InformerConfig())
