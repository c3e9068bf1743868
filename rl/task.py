"""Losses of offline RL models, for the shared Trainer.

Every model maps a `TrajectoryBatch` to predicted actions (B, K, A); the loss is the mean squared
error against the dataset's actions over the steps the batch marks in `loss_mask`: real
(unpadded) steps for DT and BC, the loss-carrying trajectories' real steps for AT. As the DT
reference, the mean runs over those steps and the action dimensions.

Optimization settings of the DT reference (AdamW, lr 1e-4, weight decay 1e-4, linear warm-up over
10k steps then constant, gradient clipping 0.25, batch 64) are `seqlab.train.TrainConfig` fields:
optimizer=adamw, lr, weight_decay, schedule=constant, warmup_steps, grad_clip, batch_size.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from rl.sampling import TrajectoryBatch


def masked_action_mse(predicted: Tensor, batch: TrajectoryBatch) -> tuple[Tensor, Tensor]:
    """(mean squared error over the loss-masked steps and action dims, number of those steps)."""
    mask = batch.loss_mask[..., None].to(predicted.dtype)  # (B, K, 1)
    n_steps = batch.loss_mask.sum()
    squared = (predicted.float() - batch.actions) ** 2 * mask  # (B, K, A)
    return squared.sum() / (n_steps.clamp(min=1) * predicted.shape[-1]), n_steps


class ActionTask:
    """Action MSE on loss-masked steps; evaluation is the step-weighted mean over a split."""

    def training_step(self, model: nn.Module, batch: TrajectoryBatch) -> Tensor:
        loss, _ = masked_action_mse(model(batch), batch)
        return loss

    def evaluate(self, model: nn.Module, batches: Iterable[TrajectoryBatch]) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            loss, n_steps = masked_action_mse(model(batch), batch)
            total += float(loss) * int(n_steps)
            count += int(n_steps)
        return {"loss": total / max(count, 1)}
