"""Schedules end where training ends: with max_steps, not after all the epochs."""

from __future__ import annotations

import pytest
import torch

from seqlab.train.config import TrainConfig
from seqlab.train.schedules import build_scheduler


def rates(cfg: TrainConfig, steps_per_epoch: int, n: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_schedule_spans_max_steps_when_training_stops_there(schedule):
    cfg = TrainConfig(epochs=1, max_steps=20, lr=1.0, schedule=schedule)
    lr = rates(cfg, steps_per_epoch=1000, n=20)
    assert lr[-1] < 0.05  # decayed by the last step trained, not 1000 steps later
    assert max(lr) == pytest.approx(1.0, rel=0.05)


def test_without_max_steps_cosine_spans_every_epoch():
    lr = rates(TrainConfig(epochs=2, lr=1.0, schedule="cosine"), steps_per_epoch=10, n=20)
    assert lr[10] == pytest.approx(0.5, abs=0.01)  # half way through 20 steps
