"""The Trainer and what it needs: config, schedules, precision, checkpoints, the Task protocol."""

from seqlab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from seqlab.train.config import TrainConfig
from seqlab.train.task import LossTask, Task
from seqlab.train.trainer import FitResult, NonFiniteLossError, Trainer

__all__ = [
    "CheckpointError",
    "FitResult",
    "LossTask",
    "NonFiniteLossError",
    "Task",
    "TrainConfig",
    "Trainer",
    "load_checkpoint",
    "save_checkpoint",
]
