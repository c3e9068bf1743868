import pytest
import torch

from seqlab.nn import FastDropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_keeps_each_element_with_probability_one_minus_p_and_rescales(dtype):
    torch.manual_seed(0)
    x = torch.ones(200_000, dtype=dtype)
    out = FastDropout(0.3).train()(x)
    assert out.dtype == dtype
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # binomial std ~0.001
    torch.testing.assert_close(out[kept].float(), torch.full((int(kept.sum()),), 1 / 0.7), atol=1e-2, rtol=1e-2)


def test_identity_in_eval_and_at_p_zero_and_zero_at_p_one():
    x = torch.randn(4, 5)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))


def test_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(0)
    x = torch.randn(1000, requires_grad=True)
    out = FastDropout(0.5).train()(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() * 2.0)


def test_reproducible_under_a_seed_and_a_drop_in_for_nn_dropout():
    x = torch.randn(64, 32)
    torch.manual_seed(3)
    a = FastDropout(0.1).train()(x)
    torch.manual_seed(3)
    b = FastDropout(0.1).train()(x)
    assert torch.equal(a, b)
    assert isinstance(FastDropout(0.1), torch.nn.Dropout) and FastDropout(0.1).state_dict() == {}


def test_every_16_bit_lane_of_a_draw_is_uniform():
    """Four keep decisions come from each 64-bit draw: each lane must keep at the asked rate (a
    draw short of 64 random bits would bias one lane)."""
    torch.manual_seed(0)
    for p in (0.5, 0.1):
        kept = FastDropout(p).train()(torch.ones(400_000)) != 0
        for lane in range(4):
            assert abs(kept[lane::4].float().mean().item() - (1 - p)) < 0.005  # binomial std <= 0.0016


@pytest.mark.parametrize("p", [0.1, 0.3, 0.002])
def test_kept_elements_carry_the_inverse_of_the_realized_keep_rate(p):
    """The 16-bit path rounds 1 - p to a multiple of 2^-16 and scales by the inverse of that rate
    (unbiased); rates too close to 0 or 1 for that rounding keep the exact fp32 draw."""
    from seqlab.nn.dropout import LEVELS, keep_mask

    torch.manual_seed(0)
    mask, scale = keep_mask(torch.Size([300_000]), 1 - p)
    rate = 1 / scale
    assert abs(rate - (1 - p)) <= 0.5 / LEVELS
    on_levels = abs(rate * LEVELS - round(rate * LEVELS)) < 1e-6
    assert on_levels == (p >= 1 / 256)  # 16-bit levels, or 1 - p itself
    assert abs(mask.float().mean().item() - rate) < 0.003
    out = FastDropout(p).train()(torch.ones(1000))
    assert torch.all((out == 0) | (out == torch.tensor(scale, dtype=torch.float32)))
