"""2-D diffusion-reaction (FitzHugh-Nagumo activator u / inhibitor v), PDEBench's equations.

    u_t = D_u Laplace(u) + u - u^3 - k - v
    v_t = D_v Laplace(v) + u - v

on [-1, 1]^2 with no-flux boundaries, D_u = 1e-3, D_v = 5e-3, k = 5e-3, initial u, v iid N(0, 1)
per cell, T = 5 with 101 stored frames.

Paper: Takamoto, Praditia, Leiteritz, MacKinlay, Alesiani, Pflueger, Niepert, "PDEBench: An
Extensive Benchmark for Scientific Machine Learning", NeurIPS 2022 Datasets and Benchmarks,
arXiv 2210.07182. Reference matched: pdebench/PDEBench@03c02f4d38ca347a8e9f77b64081d8dfe1d03456,
`pdebench/data_gen/configs/diff-react.yaml` and `src/sim_diff_react.py` (equations, constants,
domain, initial condition, time sampling).

Deviations:
- Cell-centred finite differences with replicated edge cells (zero normal gradient) and a fixed
  step RK4 in torch, batched (the reference uses a finite-volume scheme and scipy's adaptive
  RK45, one trajectory at a time). Research notes pde.md 5c: dt 5e-3 and 2.5e-3 agree to 7e-7.
- Default resolution 64^2 (the reference stores 128^2), the size our benchmarks train on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import Tensor

from pde.solvers.common import (
    Integrator,
    OnFrames,
    SolverConfig,
    generator,
    require_nonnegative,
    simulate,
    to_dataset,
)

SOLVER_NAME = "finite differences (no-flux, replicate padding), RK4"
DOMAIN = (-1.0, 1.0)
RK4_REAL_LIMIT = 2.785  # RK4 is stable for h * lambda in [-2.785, 0] on the real axis


@dataclass(frozen=True)
class DiffusionReactionConfig(SolverConfig):
    """PDEBench's 2-D diffusion-reaction data; defaults give 101 frames over T = 5."""

    n_frames: int = 101
    dt: float = 0.05
    substeps: int = 10
    diffusion_u: float = 1e-3
    """Activator diffusivity D_u."""
    diffusion_v: float = 5e-3
    """Inhibitor diffusivity D_v."""
    k: float = 5e-3
    """Reaction constant k in u - u^3 - k - v."""
    precision: Literal["float32", "float64"] = "float32"
    """Arithmetic of the solver (stored data are float32)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_nonnegative(self, "diffusion_u", "diffusion_v")
        if not math.isfinite(self.k):
            raise ValueError(f"k must be a finite number, got {self.k}")
        dx = (DOMAIN[1] - DOMAIN[0]) / self.resolution
        limit = RK4_REAL_LIMIT * dx**2 / (8 * max(self.diffusion_u, self.diffusion_v, 1e-300))
        if self.step > limit:
            raise ValueError(f"substeps={self.substeps} gives a step dt/substeps={self.step:g} above RK4's "
                             f"diffusive limit {limit:.3g} at resolution {self.resolution}; "
                             f"use substeps >= {math.ceil(self.dt / limit)}")


def laplacian(fields: Tensor, dx: float) -> Tensor:
    """5-point Laplacian with zero normal gradient at the walls: (B, C, Y, X) -> (B, C, Y, X)."""
    p = F.pad(fields, (1, 1, 1, 1), mode="replicate")
    return (p[..., 1:-1, 2:] + p[..., 1:-1, :-2] + p[..., 2:, 1:-1] + p[..., :-2, 1:-1] - 4 * fields) / dx**2


class DiffusionReactionRHS:
    """Right-hand side of the FitzHugh-Nagumo system for a batch (B, 2, Y, X) (channels u, v)."""

    def __init__(self, cfg: DiffusionReactionConfig, device: torch.device | str, dtype: torch.dtype) -> None:
        self.dx = (DOMAIN[1] - DOMAIN[0]) / cfg.resolution
        self.diffusion = torch.tensor([cfg.diffusion_u, cfg.diffusion_v], device=device, dtype=dtype)[:, None, None]
        self.k = cfg.k

    def __call__(self, state: Tensor) -> Tensor:
        u, v = state[:, 0], state[:, 1]
        reaction = torch.stack([u - u**3 - self.k - v, u - v], dim=1)
        return self.diffusion * laplacian(state, self.dx) + reaction


def rk4(rhs: DiffusionReactionRHS, h: float) -> Integrator[Tensor]:
    def step(y: Tensor) -> Tensor:
        k1 = rhs(y)
        k2 = rhs(y + 0.5 * h * k1)
        k3 = rhs(y + 0.5 * h * k2)
        k4 = rhs(y + h * k3)
        return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)

    return Integrator(step=step, observe=lambda y: y)


def simulate_diffusion_reaction(cfg: DiffusionReactionConfig, device: torch.device | str = "cpu",
                                on_frames: OnFrames | None = None) -> xr.Dataset:
    """Dataset with `u` (activator) and `v` (inhibitor), dims (sample, time, y, x)."""
    dtype = torch.float32 if cfg.precision == "float32" else torch.float64
    n = cfg.resolution
    initial = torch.randn(cfg.n_samples, 2, n, n, generator=generator(cfg.seed), dtype=torch.float64)
    frames = simulate(initial.to(device, dtype), lambda fields: fields,
                      rk4(DiffusionReactionRHS(cfg, device, dtype), cfg.step), cfg, on_frames)  # (N, T, 2, Y, X)
    dx = (DOMAIN[1] - DOMAIN[0]) / n
    centres = DOMAIN[0] + dx * (np.arange(n, dtype=np.float64) + 0.5)
    return to_dataset(
        {"u": frames[:, :, 0], "v": frames[:, :, 1]}, cfg, {"y": centres, "x": centres},
        {"equation": "diffusion_reaction_2d", "solver": SOLVER_NAME, "domain_length": DOMAIN[1] - DOMAIN[0],
         "domain_start": DOMAIN[0], "boundary": "no-flux", "diffusion_u": float(cfg.diffusion_u),
         "diffusion_v": float(cfg.diffusion_v), "k": float(cfg.k),
         "initial_condition": "iid N(0,1) per cell for u and v"},
    )
