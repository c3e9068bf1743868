import pytest
import torch
from torch import nn

from seqlab.train import CheckpointError, LossTask, Trainer, TrainConfig
from seqlab.train.checkpoint import load_checkpoint
from seqlab.train.ema import EMA
from tests.seqlab.test_trainer import Crash, assert_bitwise_equal, config, crash_at, make_model, mse_loss, params, regression_data


def set_weights(model, value):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_ema_follows_the_hand_computed_average():
    model = nn.Linear(2, 1)
    set_weights(model, 1.0)
    ema = EMA(model, decay=0.9)
    expected = 1.0
    for value in (2.0, -1.0, 4.0):
        set_weights(model, value)
        ema.update(model)
        expected = 0.9 * expected + 0.1 * value
    # 0.9^3 * 1 + 0.1 * (0.9^2 * 2 + 0.9 * -1 + 4) = 0.729 + 0.1 * 4.72 = 1.201
    assert expected == pytest.approx(1.201)
    for shadow in ema.shadow.values():
        torch.testing.assert_close(shadow, torch.full_like(shadow, 1.201))
    assert ema.num_updates == 3


def test_applied_to_swaps_the_weights_in_and_back():
    model = nn.Linear(2, 1)
    set_weights(model, 3.0)
    ema = EMA(model, decay=0.5)
    set_weights(model, 5.0)
    ema.update(model)  # shadow 4.0
    x = torch.ones(1, 2)
    with ema.applied_to(model):
        assert model(x).item() == pytest.approx(4.0 * 2 + 4.0)
    assert model(x).item() == pytest.approx(5.0 * 2 + 5.0)
    ema.copy_to(model)
    assert all(torch.all(p == 4.0) for p in model.parameters())


def test_state_dict_round_trip():
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.99)
    set_weights(model, 0.5)
    ema.update(model)
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.99 and other.num_updates == 1
    assert all(torch.equal(other.shadow[k], ema.shadow[k]) for k in ema.shadow)
    with pytest.raises(KeyError, match="averages"):
        EMA(nn.Linear(3, 2, bias=False), 0.9).load_state_dict(ema.state_dict())


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(1, 1), decay=0.0)


# --------------------------------------------------------------------------------- in the Trainer
@pytest.mark.parametrize("crash_step", [4, 13])
def test_resume_with_ema_is_exact(tmp_path, crash_step):
    train, val = regression_data(), regression_data(32, seed=1)
    cfg = config(checkpoint_every=2, ema_decay=0.8)
    reference = Trainer(make_model(), LossTask(mse_loss), cfg, tmp_path / "ref")
    reference.fit(train, val)
    with pytest.raises(Crash):
        crashing = Trainer(make_model(), LossTask(mse_loss), cfg, tmp_path / "run", callbacks=[crash_at(crash_step)])
        crashing.fit(train, val)
    resumed = Trainer(make_model(seed=99), LossTask(mse_loss), cfg, tmp_path / "run")
    result = resumed.fit(train, val, resume=True)
    assert_bitwise_equal(params(resumed.model), params(reference.model))
    assert all(torch.equal(resumed.ema.shadow[k], reference.ema.shadow[k]) for k in reference.ema.shadow)
    assert [h["val/loss"] for h in result.history] == [h["val/loss"] for h in reference.state.history]


class WeightsAsMetric(LossTask):
    """Validation 'loss' is the sum of the weights it sees, and a script picks the best epoch."""

    def __init__(self, ranks):
        super().__init__(mse_loss)
        self.ranks = iter(ranks)
        self.seen = []

    def evaluate(self, model, batches):
        self.seen.append(float(sum(p.sum() for p in model.parameters())))
        return {"loss": next(self.ranks)}


def test_validation_and_best_checkpoint_use_the_averaged_weights(tmp_path):
    raw, averaged = {}, {}

    def snapshot(trainer, state):
        if state.batch_in_epoch == 6:  # last step of the epoch, EMA already updated
            raw[state.epoch + 1] = params(trainer.model)
            averaged[state.epoch + 1] = [trainer.ema.shadow[n].clone() for n, _ in trainer.model.named_parameters()]

    task = WeightsAsMetric([3.0, 1.0, 2.0])
    trainer = Trainer(make_model(), task, config(ema_decay=0.9), tmp_path, callbacks=[snapshot])
    result = trainer.fit(regression_data(), regression_data(32, seed=1))
    assert result.best_epoch == 2
    assert task.seen == pytest.approx([float(sum(t.sum() for t in averaged[e])) for e in (1, 2, 3)])
    best = load_checkpoint(tmp_path / "best.pt")["model"]
    names = [n for n, _ in trainer.model.named_parameters()]
    assert all(torch.equal(best[n], t) for n, t in zip(names, averaged[2]))
    assert_bitwise_equal(params(trainer.model), averaged[2])  # fit ends with the best averaged weights
    assert not all(torch.equal(a, b) for a, b in zip(raw[2], averaged[2]))
    # last.pt keeps the raw weights for training on, and the average beside them
    last = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.equal(last["model"][n], t) for n, t in zip(names, raw[3]))
    assert all(torch.equal(last["ema"]["shadow"][n], t) for n, t in zip(names, averaged[3]))


def test_without_validation_fit_ends_with_the_averaged_weights(tmp_path):
    trainer = Trainer(make_model(), LossTask(mse_loss), config(epochs=2, ema_decay=0.5), tmp_path)
    trainer.fit(regression_data())
    assert_bitwise_equal(params(trainer.model), [trainer.ema.shadow[n] for n, _ in trainer.model.named_parameters()])


def test_resuming_a_checkpoint_without_ema_state_is_refused(tmp_path):
    Trainer(make_model(), LossTask(mse_loss), config(epochs=1), tmp_path).fit(regression_data())
    with pytest.raises(CheckpointError, match="no EMA weights"):
        Trainer(make_model(), LossTask(mse_loss), config(epochs=2, ema_decay=0.9), tmp_path).fit(
            regression_data(), resume=True
        )
