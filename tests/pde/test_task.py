import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from pde.models.factformer import FactFormer, FactFormerConfig
from pde.task import BatchLayoutError, PDEBatch, PDETask, PDETaskConfig, relative_l2, unpack_batch
from seqlab.train import Trainer, TrainConfig


class Scale(nn.Module):
    """pred = last input frame * a, repeated over `out_frames` frames: one scalar weight."""

    def __init__(self, a=1.5, out_frames=1):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.out_frames = out_frames
        self.calls = 0

    def forward(self, window, params=None):
        self.calls += 1
        return (window[:, -1:] * self.a).expand(-1, self.out_frames, *window.shape[2:])


# --------------------------------------------------------------------------------- schedules
def test_curriculum_grows_the_graded_frames_like_the_reference():
    """CurriculumSampler(1, 4, 6000): 1 + int(3 * step / 6000), step capped at 6000."""
    cfg = PDETaskConfig(curriculum_start=1, curriculum_length=6000)
    steps = [0, 1999, 2000, 3999, 4000, 5999, 6000, 50_000]
    assert [cfg.frames_at(s, out_frames=4) for s in steps] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert [PDETaskConfig().frames_at(s, out_frames=4) for s in (0, 10)] == [4, 4]  # no curriculum
    assert cfg.frames_at(0, out_frames=1) == 1


def test_pushforward_schedule_follows_the_reference_rule():
    cfg = PDETaskConfig(pushforward_after=8000, pushforward_every=3)
    assert [s for s in range(7995, 8011) if cfg.pushes_forward_at(s)] == [8001, 8004, 8007, 8010]
    assert not any(PDETaskConfig().pushes_forward_at(s) for s in range(100))


# --------------------------------------------------------------------------------- losses
def test_relative_l2_per_sample_and_channel():
    target = torch.randn(2, 3, 2, 4, 4)
    pred = target.clone()
    pred[0, :, 0] *= 3.0  # error 2 * |target| -> 2
    pred[1, :, 1] = 0.0  # error |target| -> 1
    torch.testing.assert_close(relative_l2(pred, target), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    # hand computation on one entry, norms over (time, space)
    noisy = target + 0.1 * torch.randn_like(target)
    expected = math.sqrt(((noisy - target)[1, :, 0] ** 2).sum() / (target[1, :, 0] ** 2).sum())
    assert relative_l2(noisy, target)[1, 0].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", ["rel_l2", "mse"])
def test_one_step_loss_grades_the_curriculum_frames_only(loss):
    model = Scale(a=1.0, out_frames=4)
    inputs = torch.randn(2, 1, 1, 5)
    targets = inputs.expand(-1, 4, -1, -1).clone()
    targets[:, 2:] += 100.0  # frames 3 and 4 are far off: graded only once the curriculum reaches them
    task = PDETask(PDETaskConfig(loss=loss, curriculum_length=30))
    losses = []
    for _ in range(31):
        value, extras = task.training_step(model, PDEBatch(inputs, targets))
        losses.append((extras["frames"], float(value.detach())))
    assert losses[0] == (1.0, 0.0) and losses[10] == (2.0, 0.0)
    assert losses[20][0] == 3.0 and losses[20][1] > 0.5 and losses[30][0] == 4.0


def test_pushforward_backpropagates_through_the_last_pass_only():
    a = 1.3
    model = Scale(a=a)
    x = torch.rand(4, 1, 1, 6) + 0.5
    targets = torch.randn(4, 3, 1, 6)
    task = PDETask(PDETaskConfig(loss="mse", pushforward_after=0, pushforward_every=1, pushforward_steps=2))
    task.calls = 1  # step 1: a push-forward step
    loss, extras = task.training_step(model, PDEBatch(x, targets))
    loss.backward()
    assert model.calls == 3 and extras["pushforward"] == 1.0
    # two no-grad passes give the window a^2 x, a constant; the graded pass a * (a^2 x) meets target frame 2
    window = a**2 * x
    y = targets[:, 2:3]
    expected_loss = ((a * window - y) ** 2).mean()
    expected_grad = (2 * (a * window - y) * window).mean()
    unrolled_grad = (2 * (a**3 * x - y) * 3 * a**2 * x).mean()  # what a full backprop would give
    torch.testing.assert_close(loss, expected_loss)
    torch.testing.assert_close(model.a.grad, expected_grad)
    assert not torch.allclose(model.a.grad, unrolled_grad)


def test_pushforward_advances_the_window_by_the_graded_frames():
    model = Scale(a=1.0, out_frames=4)
    x = torch.randn(2, 3, 1, 4)
    targets = torch.randn(2, 12, 1, 4)
    cfg = PDETaskConfig(curriculum_length=100, pushforward_after=0, pushforward_every=1)
    task = PDETask(cfg)
    task.follow(SimpleNamespace(state=SimpleNamespace(global_step=50)))  # k = 1 + 3 * 50 // 100 = 2
    _, extras = task.training_step(model, PDEBatch(x, targets))
    assert extras["frames"] == 2.0
    # identity model: every frame equals the last input frame, so the loss compares it with targets[:, 4:6]
    loss, _ = task.training_step(model, PDEBatch(x, targets))
    expected = relative_l2(x[:, -1:].expand(-1, 2, -1, -1), targets[:, 4:6]).mean()
    torch.testing.assert_close(loss, expected)


def test_too_few_target_frames_is_a_clear_error():
    task = PDETask(PDETaskConfig(pushforward_after=0, pushforward_every=1))
    task.calls = 1
    with pytest.raises(BatchLayoutError, match=r"targets hold 2 frames; step 1 grades frames \[2, 3\)"):
        task.training_step(Scale(), PDEBatch(torch.randn(1, 1, 1, 4), torch.randn(1, 2, 1, 4)))


def test_batch_layouts():
    x, y, p = torch.randn(2, 3, 1, 4), torch.randn(2, 5, 1, 4), torch.randn(2, 2)
    assert unpack_batch((x, y)).params is None
    assert unpack_batch([x, y, p]).params is p
    assert unpack_batch({"inputs": x, "targets": y}).targets is y
    with pytest.raises(BatchLayoutError, match="'inputs' and 'targets'"):
        unpack_batch({"x": x})
    with pytest.raises(BatchLayoutError, match="same B, C and grid"):
        unpack_batch((x, torch.randn(2, 5, 2, 4)))


# --------------------------------------------------------------------------------- evaluation
class Extrapolate(nn.Module):
    """next = 2 * last - previous: exact on fields that are linear in time."""

    def forward(self, window, params=None):
        return 2 * window[:, -1:] - window[:, -2:-1]


def linear_in_time(n=5, frames=8):
    base = torch.randn(n, 1, 1, 6)
    return base * torch.arange(1.0, frames + 1).view(1, -1, 1, 1)  # (n, frames, 1, 6)


def test_evaluation_of_an_exact_model_is_zero_and_independent_of_batching():
    traj = linear_in_time()
    task = PDETask()
    metrics = task.evaluate(Extrapolate(), [PDEBatch(traj[:, :2], traj[:, 2:])])
    assert metrics == pytest.approx({"loss": 0.0, "rel_l2": 0.0, "mse": 0.0, "diverged": 0.0}, abs=1e-6)
    wrong = Scale(a=1.0)  # persistence: a real error
    whole = task.evaluate(wrong, [PDEBatch(traj[:, :2], traj[:, 2:])])
    split = task.evaluate(wrong, [PDEBatch(traj[i : i + 1, :2], traj[i : i + 1, 2:]) for i in range(5)])
    assert whole == pytest.approx(split, rel=1e-6) and whole["rel_l2"] > 0.1


def test_rel_l2_is_reported_in_physical_units():
    traj = linear_in_time(n=3, frames=4)
    mean, std = 5.0, 2.0
    task = PDETask(mean=[mean], std=[std])
    metrics = task.evaluate(Scale(a=0.0), [PDEBatch(traj[:, :1], traj[:, 1:])])  # predicts zeros
    target = traj[:, 1:]
    physical = ((std * target).square().sum(dim=(1, 2, 3)) / (std * target + mean).square().sum(dim=(1, 2, 3))).sqrt()
    assert metrics["rel_l2"] == pytest.approx(physical.mean().item(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(1.0)  # normalized units: predicting zero is 100 % error


def test_evaluation_counts_diverged_trajectories():
    class BlowUpFirst(nn.Module):
        def forward(self, window, params=None):
            out = window[:, -1:].clone()
            out[0] = float("inf")
            return out

    traj = linear_in_time(n=4, frames=4)
    metrics = PDETask().evaluate(BlowUpFirst(), [PDEBatch(traj[:, :1], traj[:, 1:])])
    assert metrics["diverged"] == 0.25 and math.isnan(metrics["rel_l2"])


# --------------------------------------------------------------------------------- with the Trainer
class Windows(TensorDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return PDEBatch(x, y)

    def get_batch(self, idx):
        x, y = self.tensors
        return PDEBatch(x[idx], y[idx])


def waves(n=24):
    torch.manual_seed(0)
    traj = torch.sin(torch.linspace(0, 2 * math.pi, 8)).view(1, 1, 1, 8) * torch.randn(n, 1, 1, 1)
    traj = traj * torch.linspace(1.0, 0.5, 8).view(1, 8, 1, 1)  # (n, 8 frames, 1, 8): decaying waves
    return Windows(traj[:, :2], traj[:, 2:])  # 2 input frames, 6 targets = (2 + 1) * 2 for push-forward


def fit(out_dir, callbacks=(), resume=False):
    torch.manual_seed(1)
    model = FactFormer(FactFormerConfig(in_frames=2, out_frames=2, channels=1, spatial_dims=1, d_model=16,
                                        n_heads=2, d_head=4, n_layers=1, domain_length=1.0))
    task = PDETask(PDETaskConfig(curriculum_length=6, pushforward_after=6, pushforward_every=2))
    cfg = TrainConfig(epochs=6, batch_size=8, lr=3e-3, patience=None, progress=False, device="cpu",
                      schedule="constant", checkpoint_every=2)
    trainer = Trainer(model, task, cfg, out_dir, callbacks=list(callbacks))
    task.follow(trainer)
    return trainer, trainer.fit(waves(), waves(), resume=resume)


def test_trainer_fits_factformer_with_curriculum_and_pushforward(tmp_path):
    _, result = fit(tmp_path)
    assert result.global_step == 18
    assert result.history[-1]["val/loss"] < result.history[0]["val/loss"]
    assert set(result.history[0]) >= {"val/rel_l2", "val/mse", "val/diverged"}


def test_curriculum_and_pushforward_resume_exactly(tmp_path):
    """Steps 7..17 mix curriculum frames and push-forward; a run killed at step 7 resumes bit for bit."""

    def crash(trainer, state):
        if state.global_step == 7:
            raise KeyboardInterrupt

    reference, _ = fit(tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "run", callbacks=[crash])
    resumed, _ = fit(tmp_path / "run", resume=True)
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
