"""PDE surrogate models by registry name.

Every model maps x: (B, T_in, C, *S) -> (B, T_out, C, *S), with S = (X,) or (Y, X), accepts an
optional keyword `params: (B, P)` (PDE parameters; ignored by models without conditioning) and
is built from its config dataclass (`Model.config_class`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from seqlab.config import from_dict
from seqlab.errors import ConfigError, SeqlabError
from seqlab.registry import Registry

MODELS = Registry(
    "PDE model",
    {
        "factformer": "pde.models.factformer:FactFormer",
        "pde_transformer": "pde.models.pde_transformer:PDETransformer",
        "fno": "pde.peers:FNOPeer",
    },
)


class FieldShapeError(SeqlabError, ValueError):
    """A model got fields of the wrong shape; the message names the model and the expected form."""


def build_model(name: str, config: Mapping[str, Any] | Any | None = None) -> nn.Module:
    """The model `name` from its config dataclass, or from a plain mapping of its fields."""
    cls = MODELS.get(name)
    if config is None or isinstance(config, Mapping):
        config = from_dict(cls.config_class, config or {}, path="model.")
    elif not isinstance(config, cls.config_class):
        raise ConfigError(f"model {name!r} needs a {cls.config_class.__name__}, got {type(config).__name__}")
    return cls(config)


def check_fields(x: Tensor, model: str, in_frames: int, channels: int, spatial_dims: int) -> None:
    """Raise FieldShapeError unless x is (B, in_frames, channels, *S) with `spatial_dims` axes in S."""
    if x.dim() != 3 + spatial_dims or x.shape[1] != in_frames or x.shape[2] != channels:
        axes = ", ".join(("Z", "Y", "X")[-spatial_dims:])
        raise FieldShapeError(
            f"{model} input x has shape {tuple(x.shape)}; expected (B, T_in={in_frames}, C={channels}, {axes}) "
            "(model.in_frames, model.channels and model.spatial_dims)"
        )


__all__ = ["MODELS", "FieldShapeError", "build_model", "check_fields"]
