"""What every solver shares: the time/batch/seed config, the frame-recording loop, the dataset.

A solver supplies an initial state for all samples (drawn from one seeded generator, so the data
do not depend on `batch_size`), a `step` that advances a batch of states by one inner step, and an
`observe` that turns a state into fields `(B, C, *S)`. `simulate` runs the spin-up to `t_start`,
records `n_frames` frames `dt` apart (`substeps` inner steps each) batch by batch, and
`to_dataset` writes the contract layout: dims `(sample, time, [y,] x)`, coordinates, and the
physics and provenance in NetCDF-safe attrs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import xarray as xr
from torch import Tensor

import seqlab
from seqlab.config import require_positive, to_yaml
from seqlab.errors import SeqlabError

State = TypeVar("State")
OnFrames = Callable[[int], None]
"""Progress callback: called with the number of (trajectory, frame) pairs just finished."""

Attr = str | int | float | list[float]


class SolverDivergedError(SeqlabError):
    """A solver's state turned NaN/inf: the step is too large for the resolution and physics."""


@dataclass(frozen=True)
class SolverConfig:
    """Resolution, time sampling, batch and seed of a generated dataset (every solver has these)."""

    resolution: int = 64
    """Grid points per spatial axis (N); even, for the spectral solvers' 2/3 rule."""
    n_samples: int = 16
    """Trajectories (independent initial conditions)."""
    n_frames: int = 50
    """Stored frames per trajectory (T)."""
    dt: float = 1.0
    """Physical time between stored frames."""
    substeps: int = 100
    """Solver steps per stored frame; the solver step is dt / substeps."""
    t_start: float = 0.0
    """Physical time of the first stored frame; the solution before it is simulated, not stored
    (spin-up). A multiple of the solver step."""
    seed: int = 0
    """Seed of the initial conditions; equal seeds give identical data."""
    batch_size: int = 100
    """Trajectories integrated at once (memory vs speed only; the data do not depend on it)."""

    def __post_init__(self) -> None:
        require_positive(self, "resolution", "n_samples", "n_frames", "substeps", "batch_size")
        if self.resolution % 2:
            raise ValueError(f"resolution must be even, got {self.resolution}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a positive number of time units, got {self.dt}")
        if not (math.isfinite(self.t_start) and self.t_start >= 0):
            raise ValueError(f"t_start must be >= 0, got {self.t_start}")
        steps = self.t_start / self.step
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ValueError(f"t_start={self.t_start} must be a multiple of the solver step dt/substeps={self.step}")

    @property
    def step(self) -> float:
        """Solver time step h = dt / substeps."""
        return self.dt / self.substeps

    @property
    def spinup_steps(self) -> int:
        return round(self.t_start / self.step)

    def frame_times(self) -> np.ndarray:
        return self.t_start + self.dt * np.arange(self.n_frames, dtype=np.float64)


def require_nonnegative(cfg: Any, *names: str) -> None:
    """Raise ValueError naming the first of `names` that is negative or not finite."""
    for name in names:
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def require_positive_number(cfg: Any, *names: str) -> None:
    """Raise ValueError naming the first of `names` that is not a finite number > 0."""
    for name in names:
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")


@dataclass(frozen=True)
class Integrator(Generic[State]):
    """How one solver advances and reads a batch of states."""

    step: Callable[[State], State]
    """Advance a batch of states by one solver step h."""
    observe: Callable[[State], Tensor]
    """State -> fields (B, C, *S) in physical space."""


def record(state: State, integrator: Integrator[State], cfg: SolverConfig, on_frames: OnFrames | None,
           ) -> Tensor:
    """Spin up to t_start, then store n_frames frames dt apart: (B, T, C, *S)."""
    for _ in range(cfg.spinup_steps):
        state = integrator.step(state)
    frames = []
    for k in range(cfg.n_frames):
        if k:
            for _ in range(cfg.substeps):
                state = integrator.step(state)
        frame = integrator.observe(state)  # (B, C, *S)
        if not torch.isfinite(frame).all():
            raise SolverDivergedError(
                f"the solution became NaN/inf by t = {cfg.t_start + k * cfg.dt:g} with solver step "
                f"dt/substeps = {cfg.step:g}; raise substeps (smaller steps) or lower the resolution/Reynolds number")
        frames.append(frame.to("cpu", torch.float32))
        if on_frames is not None:
            on_frames(frame.shape[0])
    return torch.stack(frames, dim=1)  # (B, T, C, *S)


def simulate(
    initial: Tensor,
    make_state: Callable[[Tensor], State],
    integrator: Integrator[State],
    cfg: SolverConfig,
    on_frames: OnFrames | None = None,
) -> np.ndarray:
    """Integrate every sample, `batch_size` at a time: float32 array (N, T, C, *S).

    `initial` holds the initial fields of all samples on the compute device, (N, ...);
    `make_state` turns a batch slice of it into the integrator's state.
    """
    out = []
    for start in range(0, cfg.n_samples, cfg.batch_size):
        state = make_state(initial[start:start + cfg.batch_size])
        out.append(record(state, integrator, cfg, on_frames).numpy())
    return np.concatenate(out, axis=0)


def periodic_grid(resolution: int, length: float) -> np.ndarray:
    """Positions i * L / N of a periodic grid starting at 0."""
    return np.arange(resolution, dtype=np.float64) * (length / resolution)


def to_dataset(
    fields: Mapping[str, np.ndarray],
    cfg: SolverConfig,
    coords: Mapping[str, np.ndarray],
    attrs: Mapping[str, Attr],
) -> xr.Dataset:
    """Fields (N, T, *S) named by the physics -> the contract's Dataset.

    `coords` gives the spatial positions in dataset order (`{"y": ..., "x": ...}` or `{"x": ...}`);
    `attrs` the equation, solver, domain_length and physical parameters. Provenance (dt,
    resolution, seed, version, source, the full config as YAML) is added here.
    """
    spatial = tuple(coords)
    dims = ("sample", "time", *spatial)
    n = next(iter(fields.values())).shape[0]
    ds = xr.Dataset(
        {name: (dims, np.ascontiguousarray(values, dtype=np.float32)) for name, values in fields.items()},
        coords={"sample": np.arange(n, dtype=np.int64), "time": cfg.frame_times(),
                **{name: np.asarray(pos, dtype=np.float64) for name, pos in coords.items()}},
    )
    ds.attrs.update(attrs)
    ds.attrs.update(
        dt=float(cfg.dt), solver_dt=float(cfg.step), t_start=float(cfg.t_start), resolution=int(cfg.resolution),
        seed=int(cfg.seed), seqlab_version=seqlab.__version__, source="generated",
        config=to_yaml({f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                        if f.name != "batch_size"}),
    )
    return ds


def generator(seed: int) -> torch.Generator:
    """A CPU generator: draws are the same whatever device the solver then runs on."""
    return torch.Generator().manual_seed(seed)
