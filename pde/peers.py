"""neuraloperator's FNO as a seqlab PDE model: the peer the benchmark races against.

The Fourier Neural Operator is used as the library ships it (`neuralop.models.FNO`), wrapped to
the PDE model contract x: (B, T_in, C, *S) -> (B, T_out, C, *S): the T_in frames of the C fields
are stacked as T_in * C input channels and the T_out * C output channels are unstacked into
frames, as FNO-2D does for Navier-Stokes (ten past vorticity frames in, the next frame out,
rolled out autoregressively). Registered as `fno` in `pde.models.MODELS`, so experiments train it
with the same Trainer, task, data and rollout test as seqlab's own models.

Paper: Zongyi Li, Nikola Kovachki, Kamyar Azizzadenesheli, Burigede Liu, Kaushik Bhattacharya,
Andrew Stuart, Anima Anandkumar, "Fourier Neural Operator for Parametric Partial Differential
Equations", ICLR 2021, arXiv:2010.08895. Library: Kossaifi et al., "A Library for Learning Neural
Operators", arXiv:2412.10354 (PyPI `neuraloperator`, import `neuralop`; 2.0.0 here).

Reference behaviour matched: neuraloperator 2.0.0 `FNO` with its defaults (grid positional
embedding on [0, 1] per axis, lifting and projection channel MLPs, soft-gated channel MLP in each
block, linear skip); the defaults of `FNOPeerConfig` are the documented Darcy example
(`examples/models/plot_FNO_darcy.py`: 16 modes, width 32, projection ratio 2). The NS frame
layout follows FNO's `fourier_2d_time.py` (T_in = 10, one frame per step).

Deviations:
- Frames and fields are stacked frame-major (channel t * C + c), the contract's order; FNO's
  script has one field and stacks only frames.
- Whatever objective the experiment configures (one-step or push-forward, `pde.task`) replaces
  `fourier_2d_time.py`'s loss summed over a full autoregressive rollout with backpropagation
  through every step.
- `params` (PDE parameters) are accepted and ignored, as by the other unconditioned models.
- neuralop's models add a `_metadata` entry (their init arguments, a function among them) to
  every state dict; the peer drops it, so checkpoints and surrogate files hold tensors only and
  load with `weights_only=True`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from pde.models import check_fields
from seqlab.config import require_positive
from seqlab.errors import ConfigError, SeqlabError


class MissingPeerError(SeqlabError, ImportError):
    """The peer library of the benchmark is not installed; the message says how to install it."""


try:
    from neuralop.models import FNO
except ImportError as exc:  # an optional extra: say which one instead of a bare ModuleNotFoundError
    raise MissingPeerError(
        "the FNO peer (model 'fno', pde.peers) needs neuraloperator: pip install -e '.[bench]'"
    ) from exc

FACTORIZATIONS = (None, "tucker", "cp", "tt", "dense")


@dataclass(frozen=True)
class FNOPeerConfig:
    in_frames: int = 10
    """Input frames T_in, stacked with the fields as FNO input channels (FNO-2D NS: T_in = 10)."""
    out_frames: int = 1
    """Frames T_out per pass (FNO-2D NS: one step)."""
    channels: int = 1
    """Physical fields C."""
    spatial_dims: int = 2
    """Grid dimensions d: 1 (X), 2 (Y, X) or 3 (Z, Y, X)."""
    n_modes: int = 16
    """Fourier modes k_max kept per axis (`n_modes`; the real FFT keeps k_max // 2 + 1 on the last)."""
    hidden_channels: int = 32
    """Width d_v of the Fourier layers (`hidden_channels`)."""
    n_layers: int = 4
    """Fourier layers (`n_layers`)."""
    lifting_channel_ratio: float = 2.0
    """Hidden width of the lifting MLP as a multiple of hidden_channels (`lifting_channel_ratio`)."""
    projection_channel_ratio: float = 2.0
    """Hidden width of the projection MLP as a multiple of hidden_channels (`projection_channel_ratio`)."""
    positional_embedding: bool = True
    """Append the grid coordinates (on [0, 1] per axis) as input channels (neuralop's "grid")."""
    domain_padding: float = 0.0
    """Fraction of each axis zero-padded before the Fourier layers (non-periodic data); 0: none."""
    factorization: str | None = None
    """Tensor factorization of the spectral weights (`tucker` gives TFNO); None: dense weights."""
    rank: float = 1.0
    """Rank of the factorization as a fraction of the full weights (`rank`)."""

    def __post_init__(self) -> None:
        require_positive(self, "in_frames", "out_frames", "channels", "n_modes", "hidden_channels", "n_layers")
        if self.spatial_dims not in (1, 2, 3):
            raise ConfigError(f"spatial_dims must be 1, 2 or 3, got {self.spatial_dims}")
        for name in ("lifting_channel_ratio", "projection_channel_ratio", "rank"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.domain_padding < 1:
            raise ConfigError(f"domain_padding must be in [0, 1), got {self.domain_padding}")
        if self.factorization not in FACTORIZATIONS:
            raise ConfigError(f"factorization must be one of {FACTORIZATIONS}, got {self.factorization!r}")


class FNOPeer(nn.Module):
    """neuralop's FNO on stacked frames: x (B, T_in, C, *S) -> (B, T_out, C, *S)."""

    config_class: ClassVar[type] = FNOPeerConfig

    def __init__(self, config: FNOPeerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.fno = FNO(
            n_modes=(c.n_modes,) * c.spatial_dims,
            in_channels=c.in_frames * c.channels,
            out_channels=c.out_frames * c.channels,
            hidden_channels=c.hidden_channels,
            n_layers=c.n_layers,
            lifting_channel_ratio=c.lifting_channel_ratio,
            projection_channel_ratio=c.projection_channel_ratio,
            positional_embedding="grid" if c.positional_embedding else None,
            domain_padding=c.domain_padding or None,
            factorization=c.factorization,
            rank=c.rank,
        )

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().state_dict(*args, **kwargs)
        state.pop("_metadata", None)  # neuralop's init arguments: not a tensor (see Deviations)
        return state

    def forward(self, x: Tensor, params: Tensor | None = None) -> Tensor:
        c = self.config
        check_fields(x, "FNO", c.in_frames, c.channels, c.spatial_dims)
        b, _, _, *spatial = x.shape
        y = self.fno(x.flatten(1, 2))  # (B, T_in * C, *S) -> (B, T_out * C, *S)
        return y.view(b, c.out_frames, c.channels, *spatial)  # (B, T_out, C, *S)
