"""1-D periodic Burgers, Kuramoto-Sivashinsky and Korteweg-de Vries with ETDRK4.

Each equation is u_t = L u + N(u) with a diagonal linear part in Fourier space and the
nonlinearity -(c/2) (u^2)_x, integrated exactly in L and fourth-order in N:

    Burgers  u_t + (u^2/2)_x = nu u_xx        L = -nu k^2,       c = 1
    KS       u_t + u u_x + u_xx + u_xxxx = 0  L = k^2 - k^4,     c = 1
    KdV      u_t + 6 u u_x + u_xxx = 0        L = i k^3,         c = 6

Method: Cox & Matthews, "Exponential time differencing for stiff systems", J. Comput. Phys. 2002,
with the coefficients of Kassam & Trefethen, "Fourth-order time-stepping for stiff PDEs", SIAM
J. Sci. Comput. 2005 (contour integrals over M = 32 points of a unit circle around each h L,
which avoids the cancellation of the phi-functions near 0). Batched real FFTs, 2/3 dealiasing
of the nonlinear term, float64. Random initial conditions (research notes pde.md 5a): five sine
modes j = 1..5 with amplitudes U(0, 1) / j and uniform phases, scaled to max |u| = 1.

Deviations:
- The contour is the full circle for every equation (Kassam-Trefethen use the upper half and a
  real part for real L, e.g. KS); the full circle also serves the imaginary L of KdV, and for
  real L both give the same coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import xarray as xr
from torch import Tensor

from pde.solvers.common import (
    Integrator,
    OnFrames,
    SolverConfig,
    generator,
    periodic_grid,
    require_positive_number,
    simulate,
    to_dataset,
)
from pde.solvers.spectral import dealias_mask_1d

SOLVER_NAME = "pseudo-spectral ETDRK4 (Kassam-Trefethen, M=32), 2/3 dealiasing"
CONTOUR_POINTS = 32


def etdrk4_coefficients(linear: Tensor, h: float, m: int = CONTOUR_POINTS) -> tuple[Tensor, ...]:
    """ETDRK4 coefficients (E, E2, Q, f1, f2, f3) for a diagonal complex operator `linear` (K,).

    Each phi-type function is averaged over m points of the unit circle centred on h L.
    """
    hl = h * linear.to(torch.complex128)  # (K,)
    roots = torch.exp(2j * math.pi * (torch.arange(1, m + 1, dtype=torch.float64) - 0.5) / m)
    lr = hl[:, None] + roots[None, :]  # (K, M)
    exp_lr = torch.exp(lr)
    q = h * ((torch.exp(lr / 2) - 1) / lr).mean(dim=1)
    f1 = h * ((-4 - lr + exp_lr * (4 - 3 * lr + lr**2)) / lr**3).mean(dim=1)
    f2 = h * ((2 + lr + exp_lr * (lr - 2)) / lr**3).mean(dim=1)
    f3 = h * ((-4 - 3 * lr - lr**2 + exp_lr * (4 - lr)) / lr**3).mean(dim=1)
    return torch.exp(hl), torch.exp(hl / 2), q, f1, f2, f3


class ETDRK4Stepper:
    """ETDRK4 for u_t = L u - (c/2)(u^2)_x on a periodic axis, batched, in rfft space (B, N//2+1)."""

    def __init__(self, resolution: int, length: float, linear: Tensor, c: float, h: float,
                 device: torch.device | str = "cpu") -> None:
        self.n = resolution
        k = 2 * math.pi / length * torch.fft.rfftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
        self.coeffs = [c.to(device) for c in etdrk4_coefficients(linear, h)]
        # -(c/2) i k, zeroed outside the 2/3 band
        self.nonlinear_factor = (-0.5j * c * k * dealias_mask_1d(resolution)).to(device)

    def nonlinear(self, u_hat: Tensor) -> Tensor:
        u = torch.fft.irfft(u_hat, n=self.n)  # (B, N)
        return self.nonlinear_factor * torch.fft.rfft(u * u)

    def step(self, v: Tensor) -> Tensor:
        e, e2, q, f1, f2, f3 = self.coeffs
        nv = self.nonlinear(v)
        a = e2 * v + q * nv
        na = self.nonlinear(a)
        b = e2 * v + q * na
        nb = self.nonlinear(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = self.nonlinear(c)
        return e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc

    def integrator(self) -> Integrator[Tensor]:
        return Integrator(step=self.step, observe=lambda v: torch.fft.irfft(v, n=self.n)[:, None])


@dataclass(frozen=True)
class Spectral1DConfig(SolverConfig):
    """Grid, time sampling and initial-condition family shared by the 1-D equations."""

    equation: ClassVar[str]
    nonlinear_coefficient: ClassVar[float]
    """c in the nonlinearity -(c/2)(u^2)_x."""

    resolution: int = 256
    n_frames: int = 101
    t_start: float = 0.0
    domain_length: float = 2 * math.pi
    """Period L of the domain [0, L)."""
    n_modes: int = 5
    """Sine modes j = 1..n_modes in the random initial condition."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_number(self, "domain_length")
        if self.n_modes < 1 or self.n_modes >= self.resolution // 3:
            raise ValueError(f"n_modes must be in [1, resolution/3), got {self.n_modes}")

    def linear(self, k: Tensor) -> Tensor:
        """Fourier symbol L(k) of the linear part, complex128."""
        raise NotImplementedError

    def physics(self) -> dict[str, float]:
        """The equation's parameters, for the dataset attrs."""
        return {}


@dataclass(frozen=True)
class BurgersConfig(Spectral1DConfig):
    """Viscous Burgers u_t + (u^2/2)_x = nu u_xx on [0, 2 pi), T = 2 (notes 5a)."""

    equation: ClassVar[str] = "burgers_1d"
    nonlinear_coefficient: ClassVar[float] = 1.0
    dt: float = 0.02
    substeps: int = 20
    viscosity: float = 0.01
    """Viscosity nu."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_number(self, "viscosity")

    def linear(self, k: Tensor) -> Tensor:
        return (-self.viscosity * k**2).to(torch.complex128)

    def physics(self) -> dict[str, float]:
        return {"viscosity": float(self.viscosity)}


@dataclass(frozen=True)
class KSConfig(Spectral1DConfig):
    """Kuramoto-Sivashinsky u_t + u u_x + u_xx + u_xxxx = 0 on [0, 64), T = 100 (notes 5a)."""

    equation: ClassVar[str] = "ks_1d"
    nonlinear_coefficient: ClassVar[float] = 1.0
    domain_length: float = 64.0
    dt: float = 1.0
    substeps: int = 20

    def linear(self, k: Tensor) -> Tensor:
        return (k**2 - k**4).to(torch.complex128)


@dataclass(frozen=True)
class KdVConfig(Spectral1DConfig):
    """Korteweg-de Vries u_t + 6 u u_x + u_xxx = 0 on [0, 32 pi), T = 5 (notes 5a)."""

    equation: ClassVar[str] = "kdv_1d"
    nonlinear_coefficient: ClassVar[float] = 6.0
    domain_length: float = 32 * math.pi
    dt: float = 0.05
    substeps: int = 50

    def linear(self, k: Tensor) -> Tensor:
        return 1j * k.to(torch.complex128) ** 3


def sine_initial_conditions(n_samples: int, resolution: int, length: float, n_modes: int,
                            gen: torch.Generator) -> Tensor:
    """sum_j U(0,1)/j sin(2 pi j x / L + phase_j), scaled to max |u| = 1: (N, X) float64."""
    x = torch.from_numpy(periodic_grid(resolution, length))
    j = torch.arange(1, n_modes + 1, dtype=torch.float64)
    amplitude = torch.rand(n_samples, n_modes, generator=gen, dtype=torch.float64) / j
    phase = 2 * math.pi * torch.rand(n_samples, n_modes, generator=gen, dtype=torch.float64)
    u = (amplitude[:, :, None] * torch.sin(2 * math.pi * j[None, :, None] * x / length + phase[:, :, None])).sum(1)
    return u / u.abs().amax(dim=1, keepdim=True)


def stepper_for(cfg: Spectral1DConfig, device: torch.device | str = "cpu") -> ETDRK4Stepper:
    k = 2 * math.pi / cfg.domain_length * torch.fft.rfftfreq(cfg.resolution, d=1.0 / cfg.resolution,
                                                             dtype=torch.float64)
    return ETDRK4Stepper(cfg.resolution, cfg.domain_length, cfg.linear(k), cfg.nonlinear_coefficient, cfg.step,
                         device)


def simulate_1d(cfg: Spectral1DConfig, device: torch.device | str = "cpu",
                on_frames: OnFrames | None = None) -> xr.Dataset:
    """Burgers, KS or KdV (by config type): Dataset with `u` (sample, time, x)."""
    stepper = stepper_for(cfg, device)
    u0 = sine_initial_conditions(cfg.n_samples, cfg.resolution, cfg.domain_length, cfg.n_modes,
                                 generator(cfg.seed)).to(device)
    frames = simulate(u0, torch.fft.rfft, stepper.integrator(), cfg, on_frames)
    return to_dataset({"u": frames[:, :, 0]}, cfg, {"x": periodic_grid(cfg.resolution, cfg.domain_length)},
                      {"equation": cfg.equation, "solver": SOLVER_NAME, "domain_length": float(cfg.domain_length),
                       "boundary": "periodic",
                       "initial_condition": f"{cfg.n_modes} sine modes, amplitude U(0,1)/j, max|u|=1",
                       **cfg.physics()})
