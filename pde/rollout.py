"""Autoregressive rollout of a PDE surrogate, with divergence detection per trajectory.

A model maps the last T_in frames to its next T_out frames. The rollout appends each prediction
to the window, keeps the last T_in frames and calls the model again until `steps` frames exist;
a model predicting several frames per pass (FactFormer's latent marching) has its last block
truncated. The start step of a trajectory is whatever window the caller passes in.

A trajectory whose prediction turns NaN or infinite is reported at the first non-finite frame
and filled with NaN from there on, while the others roll on: a batch job keeps its healthy
trajectories and says where the others broke.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqlab.errors import SeqlabError


class NonFiniteInputError(SeqlabError, ValueError):
    """An initial window holds NaN or infinite values; the message names the trajectories."""


@dataclass(frozen=True)
class RolloutResult:
    frames: Tensor
    """(B, steps, C, *S) predicted frames; NaN from a diverged trajectory's first bad frame on."""
    diverged_at: Tensor | None
    """(B,) int64: index (0-based, into `frames`) of the first non-finite frame, -1 where none;
    None when the rollout ran with check_finite=False."""

    @property
    def diverged(self) -> Tensor | None:
        """(B,) bool: which trajectories diverged."""
        return None if self.diverged_at is None else self.diverged_at >= 0


def advance(window: Tensor, frames: Tensor) -> Tensor:
    """The next input window: `frames` (B, k, C, *S) appended, the oldest dropped. -> (B, T_in, C, *S)."""
    return torch.cat([window, frames], dim=1)[:, -window.shape[1] :]


def rollout(
    model: nn.Module,
    initial: Tensor,
    steps: int,
    params: Tensor | None = None,
    check_finite: bool = True,
) -> RolloutResult:
    """Roll `model` out for `steps` frames from the window `initial` (B, T_in, C, *S).

    The model runs under `torch.inference_mode` in whatever train/eval mode it is in (call
    `model.eval()` first for deterministic dropout-free rollouts). `params` (B, P) is passed to
    every call as the keyword `params`. With `check_finite`, a non-finite initial window is a
    NonFiniteInputError and diverging trajectories are reported in `diverged_at`.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if initial.dim() < 4:
        raise ValueError(f"initial must be (B, T_in, C, *S), got shape {tuple(initial.shape)}")
    batch = initial.shape[0]
    if check_finite:
        bad = ~torch.isfinite(initial.flatten(1)).all(dim=1)
        if bad.any():
            raise NonFiniteInputError(
                f"initial window of trajectories {bad.nonzero().flatten().tolist()} holds NaN or inf values"
            )
    kwargs = {} if params is None else {"params": params}
    with torch.inference_mode():
        diverged_at = torch.full((batch,), -1, dtype=torch.long, device=initial.device)
        window, frames, done = initial, None, 0
        while done < steps:
            pred = model(window, **kwargs)  # (B, T_out, C, *S)
            block = pred[:, : steps - done]
            if frames is None:
                frames = block.new_empty(batch, steps, *block.shape[2:])
            if check_finite:
                block = _mark_divergence(block, done, diverged_at)
            frames[:, done : done + block.shape[1]] = block
            done += block.shape[1]
            window = advance(window, block.to(window.dtype))
            if check_finite:
                # A diverged trajectory rolls on from zeros, so its NaN never meets the others.
                window = window.masked_fill((diverged_at >= 0).view(-1, *([1] * (window.dim() - 1))), 0.0)
    return RolloutResult(frames, diverged_at if check_finite else None)


def _mark_divergence(block: Tensor, offset: int, diverged_at: Tensor) -> Tensor:
    """Record the first non-finite frame of each trajectory in `diverged_at` (in place); NaN-fill
    the block from there on for trajectories that have diverged. block: (B, k, C, *S)."""
    finite = torch.isfinite(block.flatten(2)).all(dim=2)  # (B, k)
    first_bad = torch.where(finite.all(dim=1), -1, (~finite).int().argmax(dim=1) + offset)  # (B,)
    newly = (diverged_at < 0) & (first_bad >= 0)
    diverged_at[newly] = first_bad[newly]
    frame_index = torch.arange(offset, offset + block.shape[1], device=block.device)  # (k,)
    dead = (diverged_at[:, None] >= 0) & (frame_index[None, :] >= diverged_at[:, None])  # (B, k)
    return block.masked_fill(dead.view(*dead.shape, *([1] * (block.dim() - 2))), float("nan"))
