import pytest
import torch
from torch import nn

from pde.models.factformer import FactFormer, FactFormerConfig
from pde.rollout import NonFiniteInputError, advance, rollout


def factformer(in_frames=2, out_frames=1, seed=0):
    torch.manual_seed(seed)
    cfg = FactFormerConfig(in_frames=in_frames, out_frames=out_frames, channels=1, d_model=16, n_heads=2,
                           d_head=4, n_layers=1)
    return FactFormer(cfg).eval()


def single_step_calls(model, window, steps):
    """K explicit calls of a one-frame model."""
    frames = []
    for _ in range(steps):
        pred = model(window)[:, :1]
        frames.append(pred)
        window = torch.cat([window[:, 1:], pred], dim=1)
    return torch.cat(frames, dim=1)


def test_rollout_of_k_steps_equals_k_single_step_calls():
    model = factformer(in_frames=3, out_frames=1)
    initial = torch.randn(2, 3, 1, 8, 8)
    with torch.no_grad():
        expected = single_step_calls(model, initial, 5)
    result = rollout(model, initial, 5)
    assert result.frames.shape == (2, 5, 1, 8, 8)
    torch.testing.assert_close(result.frames, expected, rtol=0, atol=0)
    assert result.diverged_at.tolist() == [-1, -1]


@pytest.mark.parametrize(("in_frames", "out_frames", "steps"), [(3, 2, 5), (2, 3, 7), (1, 4, 4), (4, 2, 1)])
def test_multi_frame_blocks_are_fed_back_and_the_last_block_truncated(in_frames, out_frames, steps):
    model = factformer(in_frames=in_frames, out_frames=out_frames)
    initial = torch.randn(2, in_frames, 1, 6, 6)
    with torch.no_grad():
        frames, window = [], initial
        while sum(f.shape[1] for f in frames) < steps:
            pred = model(window)
            frames.append(pred)
            window = torch.cat([window, pred], dim=1)[:, -in_frames:]  # the last T_in frames
        expected = torch.cat(frames, dim=1)[:, :steps]
    torch.testing.assert_close(rollout(model, initial, steps).frames, expected, rtol=0, atol=0)


def test_rollout_continues_from_any_start_step():
    model = factformer(in_frames=2, out_frames=1)
    initial = torch.randn(1, 2, 1, 6, 6)
    full = rollout(model, initial, 7).frames
    trajectory = torch.cat([initial, full], dim=1)  # (1, 9, 1, 6, 6): frames 0..8
    for start in (1, 4):
        again = rollout(model, trajectory[:, start : start + 2], 7 - start).frames
        torch.testing.assert_close(again, full[:, start:], rtol=0, atol=0)


def test_advance_keeps_the_last_window_frames():
    window = torch.arange(3.0).view(1, 3, 1, 1)
    assert advance(window, torch.full((1, 1, 1, 1), 7.0)).flatten().tolist() == [1.0, 2.0, 7.0]
    assert advance(window, torch.arange(10.0, 15.0).view(1, 5, 1, 1)).flatten().tolist() == [12.0, 13.0, 14.0]


class Geometric(nn.Module):
    """Frame j of a pass is last_frame * factor^(j + 1), per sample: factor 1e10 overflows float32."""

    def __init__(self, factors, out_frames=1):
        super().__init__()
        self.factors = torch.tensor(factors).view(-1, 1, 1, 1)
        self.out_frames = out_frames
        self.calls = []

    def forward(self, window, params=None):
        self.calls.append(window.clone())
        last = window[:, -1:]
        return torch.cat([last * self.factors ** (j + 1) for j in range(self.out_frames)], dim=1)


@pytest.mark.parametrize("out_frames", [1, 2, 3])
def test_divergence_is_reported_at_its_step_for_that_trajectory_only(out_frames):
    model = Geometric([0.5, 1e10, 2.0], out_frames=out_frames)
    initial = torch.ones(3, 1, 1, 4)
    result = rollout(model, initial, 6)
    # sample 1: 1e10, 1e20, 1e30, 1e40 = inf -> the fourth frame (index 3) is the first bad one
    assert result.diverged_at.tolist() == [-1, 3, -1]
    assert result.diverged.tolist() == [False, True, False]
    assert torch.isfinite(result.frames[1, :3]).all() and torch.isnan(result.frames[1, 3:]).all()
    powers = torch.arange(1, 7, dtype=torch.float32)
    torch.testing.assert_close(result.frames[0, :, 0, 0], 0.5**powers)
    torch.testing.assert_close(result.frames[2, :, 0, 0], 2.0**powers)
    # the diverged trajectory is fed zeros afterwards, never its NaN/inf
    assert all(torch.isfinite(window).all() for window in model.calls)


def test_nan_predictions_count_as_divergence():
    class NaNAtSecondCall(nn.Module):
        calls = 0

        def forward(self, window):
            self.calls += 1
            out = window[:, -1:] + 1
            if self.calls == 2:
                out[0, 0, 0, 2] = float("nan")
            return out

    result = rollout(NaNAtSecondCall(), torch.zeros(2, 1, 1, 5), 4)
    assert result.diverged_at.tolist() == [1, -1]
    assert result.frames[1, :, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_without_checks_nothing_is_replaced_or_reported():
    result = rollout(Geometric([1e10]), torch.ones(1, 1, 1, 2), 5, check_finite=False)
    assert result.diverged_at is None and result.diverged is None
    assert torch.isinf(result.frames[0, 3:]).all()


def test_non_finite_initial_window_is_an_error_naming_the_trajectory():
    initial = torch.zeros(3, 2, 1, 4)
    initial[2, 1, 0, 3] = float("inf")
    with pytest.raises(NonFiniteInputError, match=r"trajectories \[2\]"):
        rollout(Geometric([1.0, 1.0, 1.0]), initial, 2)


def test_rollout_needs_no_gradient_and_passes_params():
    class AddParams(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(()))

        def forward(self, window, params=None):
            return window[:, -1:] * self.weight + params.view(-1, 1, 1, 1)

    model = AddParams().train()
    result = rollout(model, torch.zeros(2, 1, 1, 3), 3, params=torch.tensor([[1.0], [-2.0]]))
    assert not result.frames.requires_grad and model.training
    assert result.frames[:, :, 0, 0].tolist() == [[1.0, 2.0, 3.0], [-2.0, -4.0, -6.0]]
