"""Training objectives and validation metrics of PDE surrogates, for the shared Trainer.

Objectives (FactFormer's training, BaratiLab/FactFormer@c9801d1 `examples/turb_ns2d_fact_lm.py`,
`train_utils.py: CurriculumSampler`, `loss_fn.py: rel_l2_loss`):
- One step: the model's frames of one pass against the next target frames.
- Curriculum on frames: the number of graded frames k grows linearly from `curriculum_start` to
  the model's T_out over `curriculum_length` optimizer steps, k(s) = start + floor((T_out -
  start) * min(s, length) / length); only the first k predicted frames enter the loss (a
  latent-marching model's first k frames do not depend on the later ones).
- Push-forward: on some steps the model first runs `pushforward_steps` times without gradient,
  each pass advancing the input window by its k predicted frames, and the loss grades the next
  pass against target frames [P*k, (P+1)*k). The gradient flows through that last pass only, so
  the model learns to correct its own errors (Brandstetter et al., ICLR 2022) at one pass's cost.
- Loss: relative L2 (per sample and channel, norms over time and space, mean over both) or MSE.

Validation rolls the model out autoregressively over all target frames (`pde.rollout`) and
reports `loss` (the configured loss, normalized units), `rel_l2` (FactFormer's test metric:
relative L2 of the whole rollout, de-normalized when the training statistics are given), `mse`
(normalized) and `diverged` (fraction of trajectories that turned non-finite).

Batches are `PDEBatch(inputs (B, T_in, C, *S), targets (B, T, C, *S), params (B, P) | None)`, or
plain `(inputs, targets[, params])` tuples, or mappings with those keys. Training needs T >= k
frames of targets, and T >= (P + 1) * k on push-forward steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from pde.rollout import advance, rollout
from seqlab.config import require_positive
from seqlab.errors import SeqlabError


class PDEBatch(NamedTuple):
    inputs: Tensor
    """(B, T_in, C, *S) normalized input window."""
    targets: Tensor
    """(B, T, C, *S) the frames that follow the window, normalized."""
    params: Tensor | None = None
    """(B, P) PDE parameters for conditioning, if any."""


class BatchLayoutError(SeqlabError, ValueError):
    """A batch does not have the layout the PDE task reads; the message names what was expected."""


@dataclass(frozen=True)
class PDETaskConfig:
    loss: Literal["rel_l2", "mse"] = "rel_l2"
    """Training loss: relative L2 (FactFormer) or mean squared error (PDE-Transformer)."""
    curriculum_start: int = 1
    """Frames graded at step 0 of the curriculum (the reference's `curriculum_start`)."""
    curriculum_length: int = 0
    """Optimizer steps over which the graded frames grow to the model's T_out; 0 grades all
    T_out frames from the start (reference KM2d: 6000)."""
    pushforward_after: int | None = None
    """Push-forward steps begin after this many optimizer steps; None never pushes forward
    (reference KM2d: 8000)."""
    pushforward_every: int = 1
    """Push forward on every n-th optimizer step once begun (reference KM2d: 3)."""
    pushforward_steps: int = 2
    """No-grad passes before the graded one on a push-forward step (reference: 2)."""

    def __post_init__(self) -> None:
        require_positive(self, "curriculum_start", "pushforward_every", "pushforward_steps")
        if self.curriculum_length < 0:
            raise ValueError(f"curriculum_length must be >= 0, got {self.curriculum_length}")
        if self.pushforward_after is not None and self.pushforward_after < 0:
            raise ValueError(f"pushforward_after must be >= 0 or null, got {self.pushforward_after}")

    def frames_at(self, step: int, out_frames: int) -> int:
        """Frames k graded at optimizer step `step` (0-based) for a model predicting `out_frames`."""
        if self.curriculum_length == 0 or self.curriculum_start >= out_frames:
            return out_frames
        progress = min(step, self.curriculum_length)
        return self.curriculum_start + (out_frames - self.curriculum_start) * progress // self.curriculum_length

    def pushes_forward_at(self, step: int) -> bool:
        """Whether optimizer step `step` (0-based) is a push-forward step (the reference's rule)."""
        after = self.pushforward_after
        return after is not None and step > after and step % self.pushforward_every == 0


def relative_l2(pred: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """(B, C) relative L2 errors ||pred - target|| / ||target||, norms over time and space.

    pred, target: (B, T, C, *S). Squared target norms below eps count as eps (the reference's guard).
    """
    error = (pred - target).square().transpose(1, 2).flatten(2).sum(-1)  # (B, C)
    norm = target.square().transpose(1, 2).flatten(2).sum(-1).clamp_min(eps)  # (B, C)
    return (error / norm).sqrt()


def sample_losses(pred: Tensor, target: Tensor, loss: str) -> Tensor:
    """(B,) per-sample loss: relative L2 averaged over channels, or MSE."""
    if loss == "rel_l2":
        return relative_l2(pred, target).mean(dim=1)
    return (pred - target).square().flatten(1).mean(dim=1)


def unpack_batch(batch: Any) -> PDEBatch:
    """A PDEBatch from a PDEBatch, an (inputs, targets[, params]) sequence or a mapping."""
    if isinstance(batch, Mapping):
        if "inputs" not in batch or "targets" not in batch:
            raise BatchLayoutError(f"a PDE batch mapping needs keys 'inputs' and 'targets', got {sorted(batch)}")
        batch = PDEBatch(batch["inputs"], batch["targets"], batch.get("params"))
    elif isinstance(batch, Sequence) and not isinstance(batch, PDEBatch) and len(batch) in (2, 3):
        batch = PDEBatch(*batch)
    if not isinstance(batch, PDEBatch):
        raise BatchLayoutError(
            f"a PDE batch is (inputs, targets[, params]), got {type(batch).__name__} "
            f"of length {len(batch) if isinstance(batch, Sequence) else '?'}"
        )
    if batch.inputs.dim() < 4 or batch.targets.shape[0] != batch.inputs.shape[0] or (
        batch.targets.shape[2:] != batch.inputs.shape[2:]
    ):
        raise BatchLayoutError(
            f"batch inputs {tuple(batch.inputs.shape)} and targets {tuple(batch.targets.shape)} must be "
            "(B, T_in, C, *S) and (B, T, C, *S) with the same B, C and grid"
        )
    return batch


class PDETask:
    """The Task of PDE surrogates: models map (B, T_in, C, *S) [+ params] -> (B, T_out, C, *S).

    Args:
        config: objective settings.
        mean, std: (C,) per-channel statistics of the training split, to report `rel_l2` in
            physical units; None reports it in normalized units.

    The curriculum and the push-forward schedule follow the optimizer step. Call
    `follow(trainer)` so the step is read from the Trainer (exact on resume); otherwise the task
    counts its own `training_step` calls.
    """

    def __init__(self, config: PDETaskConfig | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std (the training split's per-channel statistics) or neither")
        self.config = config or PDETaskConfig()
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.calls = 0
        self._step_source: Callable[[], int] | None = None

    def follow(self, trainer: Any) -> None:
        """Read the optimizer step from `trainer.state.global_step` (a seqlab Trainer)."""
        self._step_source = lambda: trainer.state.global_step

    @property
    def step(self) -> int:
        """The 0-based optimizer step the next `training_step` belongs to."""
        return self._step_source() if self._step_source is not None else self.calls

    def training_step(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        cfg = self.config
        inputs, targets, params = unpack_batch(batch)
        step = self.step
        self.calls += 1
        kwargs = {} if params is None else {"params": params}
        window, offset = inputs, 0
        pushforward = cfg.pushes_forward_at(step)
        if pushforward:
            with torch.no_grad():  # warm-up passes on the model's own predictions, no gradient
                for _ in range(cfg.pushforward_steps):
                    pred = model(window, **kwargs)  # (B, T_out, C, *S)
                    frames = cfg.frames_at(step, pred.shape[1])
                    window = advance(window, pred[:, :frames].to(window.dtype))
                    offset += frames
        pred = model(window, **kwargs)  # (B, T_out, C, *S): the graded pass
        frames = cfg.frames_at(step, pred.shape[1])
        if targets.shape[1] < offset + frames:
            raise BatchLayoutError(
                f"batch targets hold {targets.shape[1]} frames; step {step} grades frames "
                f"[{offset}, {offset + frames}) (push-forward: {pushforward}); give windows with more target frames"
            )
        target = targets[:, offset : offset + frames]
        loss = sample_losses(pred[:, :frames].float(), target.float(), cfg.loss).mean()
        return loss, {"frames": float(frames), "pushforward": float(pushforward)}

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
        """Autoregressive rollout over every target frame of each batch; means over trajectories."""
        sums = {"loss": 0.0, "rel_l2": 0.0, "mse": 0.0, "diverged": 0.0}
        count = 0
        for batch in batches:
            inputs, targets, params = unpack_batch(batch)
            result = rollout(model, inputs, targets.shape[1], params)
            pred, target = result.frames.float(), targets.float()  # (B, T, C, *S)
            sums["loss"] += float(sample_losses(pred, target, self.config.loss).sum())
            sums["mse"] += float(sample_losses(pred, target, "mse").sum())
            sums["rel_l2"] += float(relative_l2(self._physical(pred), self._physical(target)).mean(dim=1).sum())
            sums["diverged"] += float(result.diverged.sum())
            count += inputs.shape[0]
        return {name: total / max(count, 1) for name, total in sums.items()}

    def _physical(self, fields: Tensor) -> Tensor:
        """(B, T, C, *S) normalized -> physical units with the training statistics (if given)."""
        if self.mean is None or self.std is None:
            return fields
        shape = (1, 1, -1) + (1,) * (fields.dim() - 3)
        return fields * self.std.to(fields.device).view(shape) + self.mean.to(fields.device).view(shape)
