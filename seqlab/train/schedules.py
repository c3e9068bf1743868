"""Learning-rate schedules, all stepped once per optimizer step.

Expressing every schedule per step keeps resume exact: the scheduler's whole state is a step count.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from seqlab.train.config import TrainConfig


def type1_factor(step: int, steps_per_epoch: int) -> float:
    """The references' `lradj=type1`: after epoch e (1-based) they set lr * 0.5**(e-1), so epochs
    1 and 2 run at lr, epoch 3 at lr/2, epoch 4 at lr/4, ..."""
    epoch = step // steps_per_epoch  # 0-based epoch this step belongs to
    return 0.5 ** max(0, epoch - 1)


def cosine_factor(step: int, total_steps: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LRScheduler:
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.max_steps is not None:  # training stops there: the schedule must end there too
        total = max(1, min(total, cfg.max_steps))
    if cfg.schedule == "onecycle":
        return OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=cfg.onecycle_pct_start)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.schedule == "type1":
            return warm * type1_factor(step, steps_per_epoch)
        if cfg.schedule == "cosine":
            return warm * cosine_factor(max(0, step - cfg.warmup_steps), max(1, total - cfg.warmup_steps))
        return warm

    return LambdaLR(optimizer, factor)
