"""The Forecaster as an MLflow pyfunc model ("models from code": MLflow loads this file).

The model's artifact `forecaster` is a directory written by `Forecaster.save`; `predict` takes the
history in the form the model was fitted on (pandas or polars, wide or long) and returns the
forecast frame as pandas.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class ForecasterModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from forecasting.api import Forecaster

        self.forecaster = Forecaster.load(context.artifacts["forecaster"])

    # No type hints here: MLflow reads them as an input schema, and history frames have none fixed.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        return self.forecaster.predict(model_input).to_pandas()


mlflow.models.set_model(ForecasterModel())
