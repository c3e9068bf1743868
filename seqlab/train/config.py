"""The training settings every field shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrainConfig:
    """How a model is fitted: optimization, schedule, stopping, precision, checkpoints."""

    epochs: int = 10
    """Maximum number of passes over the training set."""
    max_steps: int | None = None
    """Stop after this many optimizer steps, even inside an epoch (which then ends early)."""
    batch_size: int = 32
    """Training windows per optimizer step."""
    eval_batch_size: int = 256
    """Windows per forward pass in validation and test; metrics do not depend on it."""
    drop_last: bool = False
    """Drop the last, smaller training batch of each epoch (the references' train loader does)."""
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    """Peak learning rate."""
    weight_decay: float = 0.0
    schedule: Literal["constant", "type1", "cosine", "onecycle"] = "type1"
    """`type1`: the references' halving of the rate every epoch after the first two; `cosine`:
    per-step cosine decay to zero; `onecycle`: torch's OneCycleLR with max_lr = lr."""
    warmup_steps: int = 0
    """Linear warm-up over this many optimizer steps: step i (from 0) runs at lr * (i + 1) / warmup_steps
    (not with `onecycle`, which warms up itself)."""
    onecycle_pct_start: float = 0.3
    """Fraction of the steps spent increasing the rate under `onecycle`."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value."""
    ema_decay: float | None = None
    """Keep an exponential moving average of the weights with this decay (e.g. 0.999); validation,
    the best checkpoint and the weights `fit` ends with are then the averaged ones."""
    patience: int | None = 3
    """Stop after this many epochs without improvement of `monitor`; None disables early stopping."""
    monitor: str = "loss"
    """Validation metric (a key of the task's `evaluate` result) that is minimized."""
    min_delta: float = 0.0
    """Smallest decrease of `monitor` that counts as an improvement."""
    seed: int = 2023
    device: str = "auto"
    """"auto" (cuda > mps > cpu) or a torch device string."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast dtype for forward passes; fp16 also uses a gradient scaler. "auto" picks bf16 on
    hardware with native bf16 matmuls (recent GPUs, CPUs with AVX512-BF16 or AMX), else fp32."""
    compile: bool = False
    """Run the model through torch.compile."""
    checkpoint_every: int | None = None
    """Also checkpoint every this many optimizer steps inside an epoch (always at epoch end)."""
    log_every: int = 50
    """Log the training loss every this many optimizer steps."""
    progress: bool = True
    """Show a progress bar (only when stderr is a terminal)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_steps and self.schedule == "onecycle":
            raise ValueError("warmup_steps does not combine with schedule 'onecycle', which warms up itself")
        if not 0 < self.onecycle_pct_start < 1:
            raise ValueError(f"onecycle_pct_start must be in (0, 1), got {self.onecycle_pct_start}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or null, got {self.patience}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 or null, got {self.checkpoint_every}")
