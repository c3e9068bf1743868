import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from seqlab.tracking import MemoryTracker
from seqlab.train import CheckpointError, LossTask, NonFiniteLossError, Trainer, TrainConfig
from seqlab.train.checkpoint import load_checkpoint, save_checkpoint


def regression_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))


def mse_loss(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def config(**overrides):
    base = dict(epochs=3, batch_size=16, lr=1e-2, patience=None, progress=False, device="cpu", seed=7)
    return TrainConfig(**{**base, **overrides})


class Crash(RuntimeError):
    pass


def crash_at(step):
    def callback(trainer, state):
        if state.global_step == step:
            raise Crash(step)

    return callback


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("crash_step", [3, 4, 6, 13])
def test_interrupted_and_resumed_run_matches_uninterrupted_bitwise(tmp_path, crash_step):
    train, val = regression_data(), regression_data(32, seed=1)  # 6 steps per epoch
    cfg = config(checkpoint_every=2)
    reference = Trainer(make_model(), LossTask(mse_loss), cfg, tmp_path / "ref")
    reference.fit(train, val)

    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        Trainer(make_model(), LossTask(mse_loss), cfg, run_dir, callbacks=[crash_at(crash_step)]).fit(train, val)
    # A different initialization proves the weights come from the checkpoint.
    resumed = Trainer(make_model(seed=99), LossTask(mse_loss), cfg, run_dir)
    result = resumed.fit(train, val, resume=True)

    assert result.global_step == 18
    assert_bitwise_equal(params(resumed.model), params(reference.model))
    ref_opt, res_opt = reference.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for key in ref_opt:
        assert torch.equal(ref_opt[key]["exp_avg"], res_opt[key]["exp_avg"])
    assert [h["val/loss"] for h in result.history] == [h["val/loss"] for h in reference.state.history]


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from torch import nn
    sys.path.insert(0, {tests!r})
    from test_trainer import regression_data, make_model, mse_loss, config
    from seqlab.train import LossTask, Trainer

    out, mode = sys.argv[1], sys.argv[2]
    def kill(trainer, state):
        if mode == "kill" and state.global_step == 7:
            os.kill(os.getpid(), signal.SIGKILL)
    trainer = Trainer(make_model(seed=3 if mode == "resume" else 0), LossTask(mse_loss),
                      config(checkpoint_every=3), out, callbacks=[kill])
    trainer.fit(regression_data(), regression_data(32, seed=1), resume=(mode == "resume"))
    torch.save(trainer.model.state_dict(), os.path.join(out, "final.pt"))
    """
)


def test_sigkill_then_resume_reproduces_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, mode):
        return subprocess.run([sys.executable, str(script), str(out), mode], env=env, capture_output=True, text=True)

    ref = run(tmp_path / "ref", "plain")
    assert ref.returncode == 0, ref.stderr
    killed = run(tmp_path / "run", "kill")
    assert killed.returncode == -9, killed.stderr
    assert load_checkpoint(tmp_path / "run" / "last.pt")["state"]["global_step"] == 6
    assert not list((tmp_path / "run").glob(".*.tmp"))
    resumed = run(tmp_path / "run", "resume")
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "ref" / "final.pt")
    b = torch.load(tmp_path / "run" / "final.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_of_another_experiment(tmp_path):
    Trainer(make_model(), LossTask(mse_loss), config(epochs=1), tmp_path, fingerprint="aaa").fit(regression_data())
    other = Trainer(make_model(), LossTask(mse_loss), config(epochs=2), tmp_path, fingerprint="bbb")
    with pytest.raises(CheckpointError, match="belongs to experiment 'aaa'"):
        other.fit(regression_data(), resume=True)


def test_resume_from_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):
        Trainer(make_model(), LossTask(mse_loss), config(), tmp_path).fit(regression_data(), resume=tmp_path / "nope.pt")


# --------------------------------------------------------------------------------- early stopping
class ScriptedValTask(LossTask):
    """Validation losses come from a script, so the best epoch is known in advance."""

    def __init__(self, losses):
        super().__init__(mse_loss)
        self.losses = iter(losses)

    def evaluate(self, model, batches):
        return {"loss": next(self.losses)}


def test_early_stopping_restores_the_best_epoch_weights(tmp_path):
    snapshots = {}

    def snapshot(trainer, state):
        if state.batch_in_epoch == 6:  # last step of the epoch
            snapshots[state.epoch + 1] = params(trainer.model)

    trainer = Trainer(make_model(), ScriptedValTask([3.0, 1.0, 2.0, 2.5, 0.5]), config(epochs=5, patience=2),
                      tmp_path, callbacks=[snapshot])
    result = trainer.fit(regression_data(), regression_data(32, seed=1))
    assert result.stopped_early and result.epochs_completed == 4
    assert result.best_epoch == 2 and result.best_metric == 1.0
    assert_bitwise_equal(params(trainer.model), snapshots[2])
    assert not all(torch.equal(a, b) for a, b in zip(params(trainer.model), snapshots[4]))


def test_a_tie_counts_as_improvement_like_the_references(tmp_path):
    trainer = Trainer(make_model(), ScriptedValTask([2.0, 2.0, 3.0]), config(epochs=3, patience=5), tmp_path)
    assert trainer.fit(regression_data(), regression_data(32)).best_epoch == 2


# --------------------------------------------------------------------------------- guards and schedules
def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    calls = {"n": 0}

    def exploding(model, batch):
        calls["n"] += 1
        loss = mse_loss(model, batch)
        return loss * float("nan") if calls["n"] == 5 else loss

    trainer = Trainer(make_model(), LossTask(exploding), config(checkpoint_every=2), tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 5"):
        trainer.fit(regression_data())
    assert load_checkpoint(tmp_path / "last.pt")["state"]["global_step"] == 4


def test_type1_schedule_halves_the_rate_after_the_second_epoch(tmp_path):
    trainer = Trainer(make_model(), LossTask(mse_loss), config(epochs=4, lr=1e-3, schedule="type1"), tmp_path)
    history = trainer.fit(regression_data()).history
    assert [h["lr"] for h in history] == [1e-3, 1e-3, 5e-4, 2.5e-4]


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_other_schedules_run_and_learn(tmp_path, schedule):
    cfg = config(epochs=4, schedule=schedule, warmup_steps=0 if schedule == "onecycle" else 3)
    result = Trainer(make_model(), LossTask(mse_loss), cfg, tmp_path).fit(regression_data())
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]


def test_bf16_autocast_trains_on_cpu(tmp_path):
    trainer = Trainer(make_model(), LossTask(mse_loss), config(epochs=4, precision="bf16"), tmp_path)
    result = trainer.fit(regression_data(), regression_data(32, seed=1))
    assert result.history[-1]["val/loss"] < result.history[0]["val/loss"]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32


def test_evaluation_does_not_depend_on_batch_size(tmp_path):
    val = regression_data(50, seed=2)
    results = [
        Trainer(make_model(), LossTask(mse_loss), config(eval_batch_size=bs), tmp_path).evaluate(val, "val")["val/loss"]
        for bs in (1, 7, 64)
    ]
    assert results[0] == pytest.approx(results[1], rel=1e-6) == pytest.approx(results[2], rel=1e-6)


def test_metrics_reach_the_tracker(tmp_path):
    tracker = MemoryTracker()
    Trainer(make_model(), LossTask(mse_loss), config(epochs=2, log_every=3), tmp_path, tracker=tracker).fit(
        regression_data(), regression_data(32, seed=1)
    )
    assert [step for step, _ in tracker.history("val/loss")] == [1, 2]
    assert [step for step, _ in tracker.history("train/loss_step")] == [3, 6, 9, 12]


# --------------------------------------------------------------------------------- checkpoint files
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_files_get_the_mode_an_ordinary_file_would(tmp_path):
    import os
    import stat

    ordinary = tmp_path / "plain"
    ordinary.write_bytes(b"x")
    save_checkpoint({"step": 1}, tmp_path / "last.pt")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "last.pt") == mode(ordinary)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"weights": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"last.pt cannot be read"):
        load_checkpoint(path)


def test_checkpoint_of_another_format_version_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format_version": 0, "model": {}}, path)
    with pytest.raises(CheckpointError, match="format version 0"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {Path.cwd() / 'pwned'}",))


def test_hostile_pickle_does_not_run(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format_version": 1, "model": Payload()}, protocol=2))
    with pytest.raises(CheckpointError, match="evil.pt cannot be read"):
        load_checkpoint(path)
    assert not (Path.cwd() / "pwned").exists()


# --------------------------------------------------------------------------------- runtime
def test_device_auto_selection_and_clear_error_for_missing_cuda():
    from seqlab.config import ConfigError
    from seqlab.train.runtime import select_device

    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ConfigError, match="not a device"):
        select_device("gpu0")


def test_progress_bar_stays_quiet_without_a_terminal(tmp_path, capsys):
    Trainer(make_model(), LossTask(mse_loss), config(epochs=1, progress=True), tmp_path).fit(regression_data())
    captured = capsys.readouterr()
    assert "epoch 1/1" not in captured.err and "it/s" not in captured.err


def test_auto_precision_uses_bf16_only_where_it_is_native(monkeypatch):
    from seqlab.train import runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "has_fast_bf16", lambda device: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "has_fast_bf16", lambda device: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert runtime.resolve_precision("fp16", cpu) == "fp16"


def test_resolved_device_and_precision_are_tagged(tmp_path):
    tracker = MemoryTracker()
    Trainer(make_model(), LossTask(mse_loss), config(epochs=1, precision="fp32"), tmp_path, tracker=tracker).fit(
        regression_data()
    )
    assert tracker.tags == {"seqlab.device": "cpu", "seqlab.precision": "fp32"}


def test_max_steps_stops_inside_an_epoch(tmp_path):
    result = Trainer(make_model(), LossTask(mse_loss), config(epochs=5, max_steps=8), tmp_path).fit(
        regression_data(), regression_data(32, seed=1)
    )
    assert result.global_step == 8 and result.epochs_completed == 2  # 6 steps, then 2 of the second epoch
    assert len(result.history) == 2


def test_gradient_clipping_bounds_the_update(tmp_path):
    """With SGD-like steps, the first update's norm equals lr * clip when the raw gradient is larger."""

    def huge(model, batch):
        return 1e6 * mse_loss(model, batch)

    before = params(make_model())
    trainer = Trainer(make_model(), LossTask(huge), config(epochs=1, grad_clip=0.5, max_steps=1, optimizer="adamw",
                                                            weight_decay=0.0), tmp_path)
    grads = {}
    trainer.callbacks.append(lambda t, s: grads.update(norm=float(torch.nn.utils.get_total_norm(
        [p.grad for p in t.model.parameters()]))))
    trainer.fit(regression_data())
    assert grads["norm"] == pytest.approx(0.5, rel=1e-4)  # clipped gradients stay in .grad
    assert not all(torch.equal(a, b) for a, b in zip(before, params(trainer.model)))


def test_fp16_autocast_with_gradient_scaling_trains_on_cpu(tmp_path):
    trainer = Trainer(make_model(), LossTask(mse_loss), config(epochs=3, precision="fp16"), tmp_path)
    result = trainer.fit(regression_data(), regression_data(32, seed=1))
    assert trainer.scaler.is_enabled()
    assert result.history[-1]["val/loss"] < result.history[0]["val/loss"]


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_cpu_optimizers_are_torchs_fused_kernels(tmp_path, name, cls):
    """torch's CPU default loops over the tensors in Python; the fused kernel is ~4x faster per step."""
    optimizer = Trainer(make_model(), LossTask(mse_loss), config(optimizer=name), tmp_path)._build_optimizer()
    assert isinstance(optimizer, cls) and optimizer.defaults["fused"] is True
