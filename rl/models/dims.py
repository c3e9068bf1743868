"""State and action dimensions of RL model configs: filled from the data, checked once."""

from __future__ import annotations

from typing import Any

from seqlab.errors import ConfigError


def check_dims(config: Any) -> None:
    """For `__post_init__`: state_dim and action_dim are None (filled from the data) or >= 1."""
    for name in ("state_dim", "action_dim"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1 or null (taken from the data), got {value}")


def require_dims(config: Any) -> tuple[int, int]:
    """(S, A) of a config about to build a model; a clear error if the data has not filled them."""
    if config.state_dim is None or config.action_dim is None:
        raise ConfigError(f"{type(config).__name__}.state_dim and .action_dim must be set (taken from the data)")
    return config.state_dim, config.action_dim
