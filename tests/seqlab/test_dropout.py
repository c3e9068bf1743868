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
