"""Forecasting models by registry name.

Every model maps (x: (B, L, N), x_mark: (B, L, k) | None, y_mark: (B, H, k) | None) -> (B, H, N)
and is built from its config dataclass (`Model.config_class`).
"""

from seqlab.registry import Registry

MODELS = Registry(
    "forecasting model",
    {
        "dlinear": "forecasting.models.dlinear:DLinear",
        "informer": "forecasting.models.informer:Informer",
        "itransformer": "forecasting.models.itransformer:ITransformer",
        "patchtst": "forecasting.models.patchtst:PatchTST",
        "pathformer": "forecasting.models.pathformer:Pathformer",
    },
)
