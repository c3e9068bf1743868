"""Loss and metrics of forecasting, for the shared Trainer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
from torch import Tensor, nn

from forecasting.data import ForecastBatch
from forecasting.metrics import ErrorAccumulator, mae, mse

LOSSES = {"mse": mse, "mae": mae}


class ForecastTask:
    """Models map (x, x_mark, y_mark) -> (B, H, N); the loss compares with y in scaled units.

    A model may also leave a scalar regularizer in its `aux_loss` attribute during forward (e.g.
    Pathformer's load-balance loss). Training minimizes loss + aux_loss; evaluation ignores it,
    so validation and test metrics (and early stopping) see the forecast error alone.

    Args:
        loss: training loss, "mse" (iTransformer, Informer) or "mae" (Pathformer).
        scale: (N,) scaler standard deviations, to also report errors in original units.
    """

    def __init__(self, loss: Literal["mse", "mae"] = "mse", scale: np.ndarray | None = None) -> None:
        self.loss = loss
        self.scale = scale

    @staticmethod
    def predict(model: nn.Module, batch: ForecastBatch) -> Tensor:
        return model(batch.x, batch.x_mark, batch.y_mark).float()

    def training_step(self, model: nn.Module, batch: ForecastBatch) -> Tensor:
        loss = LOSSES[self.loss](self.predict(model, batch), batch.y)
        aux = getattr(model, "aux_loss", None)  # set by the forward just run
        return loss if aux is None else loss + aux

    def evaluate(self, model: nn.Module, batches: Iterable[ForecastBatch]) -> dict[str, float]:
        """mse, mae, rmse (scaled, comparable to papers), mse_orig, mae_orig, and `loss`."""
        acc = ErrorAccumulator(self.scale)
        for batch in batches:
            acc.update(self.predict(model, batch), batch.y)
        metrics = acc.result()
        metrics["loss"] = metrics[self.loss]
        return metrics
