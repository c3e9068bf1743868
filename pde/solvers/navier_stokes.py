"""2-D incompressible Navier-Stokes in vorticity form: FNO's dataset and Kolmogorov flow.

    dw/dt + u . grad(w) = nu Laplace(w) - alpha w + f,   u = (d psi/dy, -d psi/dx),  -Laplace(psi) = w

on a periodic square, batched over initial conditions, pseudo-spectral: the advection term is
formed in physical space and 2/3-dealiased, viscosity (and linear drag) are Crank-Nicolson, the
advection and forcing are explicit. One stepper serves both datasets:

- `navier_stokes_2d` (FNO): unit square, GRF initial vorticity (alpha 2.5, tau 7), forcing
  f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)), no drag; nu = 1e-3 and T = 50 in the paper's
  first case. Paper: Li et al., "Fourier Neural Operator for Parametric Partial Differential
  Equations", ICLR 2021, arXiv 2010.08895. Reference matched:
  neuraloperator/neuraloperator@11971af4bfd15880f12aca43f1b5669eadc893ed,
  `data_generation/navier_stokes/ns_2d.py` (`navier_stokes_2d`): the same operators, dealiasing
  mask (|ky|, |kx| <= 2/3 k_max) and, with `scheme="euler"`, the same CN/forward-Euler update.
- `kolmogorov_2d`: [0, 2 pi)^2, velocity forcing (A sin(k y), 0), i.e. vorticity forcing
  -A k cos(k y), linear drag alpha, nu = 1 / Re; the setup of Kochkov et al., "Machine learning-
  accelerated computational fluid dynamics", PNAS 2021, arXiv 2102.01010 (k = 4, alpha = 0.1),
  which FactFormer's Kolmogorov data follow (at Re 1000 on far finer grids).

Deviations:
- Default `scheme="heun"`: CN for the linear terms with Heun (RK2) for the explicit part, at
  dt 1e-2 instead of the reference's forward Euler at 1e-4 (research notes pde.md 5b: 64^2,
  dt 1e-2 Heun matches 256^2, dt 1e-3 subsampled to 3.7e-4 rel-L2 and is ~100x cheaper).
  `scheme="euler"` is the reference update.
- Direct simulation at the stored resolution (64^2) instead of 256^2 then subsampling (same data
  to 1e-4 at nu = 1e-3, notes 5b). Higher Re/lower nu need a finer grid: simulate there and
  `spectral.resample` down.
- The viscous operator uses |k|^2 = 0 for the mean mode (the reference sets it to 1, which would
  damp a nonzero mean vorticity); the mean is then exactly conserved.
- Real FFTs (rfft2) instead of full complex FFTs: the same arithmetic on half the coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import xarray as xr
from torch import Tensor

from pde.solvers.common import (
    Integrator,
    OnFrames,
    SolverConfig,
    generator,
    periodic_grid,
    require_nonnegative,
    require_positive_number,
    simulate,
    to_dataset,
)
from pde.solvers.grf import gaussian_random_field
from pde.solvers.spectral import dealias_mask_2d, wavenumbers_2d

Scheme = Literal["heun", "euler"]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SOLVER_NAMES = {
    "heun": "pseudo-spectral, Crank-Nicolson viscosity + Heun advection/forcing, 2/3 dealiasing",
    "euler": "pseudo-spectral, Crank-Nicolson viscosity + forward-Euler advection/forcing, 2/3 dealiasing",
}


class VorticityStepper:
    """One solver step of the vorticity equation for a batch, in rfft2 space.

    Args:
        resolution: grid points per axis N.
        length: side L of the periodic square.
        viscosity: nu.
        drag: linear drag alpha (0: none).
        forcing: vorticity forcing f, (N, N) in physical space, or None.
        h: solver time step.
        scheme: "heun" (CN + RK2) or "euler" (CN + forward Euler, the FNO reference).
    """

    def __init__(self, resolution: int, length: float, viscosity: float, drag: float, forcing: Tensor | None,
                 h: float, scheme: Scheme = "heun", dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        self.n, self.h, self.scheme = resolution, h, scheme
        ky, kx = wavenumbers_2d(resolution, length, device)  # (N, 1), (1, N//2+1)
        k2 = kx**2 + ky**2
        inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        linear = -viscosity * k2 - drag  # the implicit operator L
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        self.ikx, self.iky = (1j * kx).to(cdtype), (1j * ky).to(cdtype)
        self.inv_k2 = inv_k2.to(dtype)
        self.cn_plus = (1 + 0.5 * h * linear).to(dtype)
        self.cn_inv = (1 / (1 - 0.5 * h * linear)).to(dtype)
        self.dealias = dealias_mask_2d(resolution, device).to(dtype)
        self.forcing_hat = (torch.zeros_like(k2, dtype=cdtype) if forcing is None
                            else self.to_spectral(forcing.to(device, dtype)))

    def to_spectral(self, w: Tensor) -> Tensor:
        return torch.fft.rfft2(w)

    def to_physical(self, w_hat: Tensor) -> Tensor:
        return torch.fft.irfft2(w_hat, s=(self.n, self.n))

    def explicit(self, w_hat: Tensor) -> Tensor:
        """-(u . grad w) dealiased, plus the forcing: (B, N, N//2+1)."""
        psi_hat = w_hat * self.inv_k2
        u = self.to_physical(self.iky * psi_hat)  # d psi / dy   (B, N, N)
        v = self.to_physical(-self.ikx * psi_hat)  # -d psi / dx
        w_x = self.to_physical(self.ikx * w_hat)
        w_y = self.to_physical(self.iky * w_hat)
        advection_hat = self.to_spectral(u * w_x + v * w_y) * self.dealias
        return self.forcing_hat - advection_hat

    def step(self, w_hat: Tensor) -> Tensor:
        """Advance by h: CN on L = -nu |k|^2 - alpha, explicit (Euler or Heun) on the rest."""
        rhs = self.explicit(w_hat)
        predicted = (self.cn_plus * w_hat + self.h * rhs) * self.cn_inv
        if self.scheme == "euler":
            return predicted
        return (self.cn_plus * w_hat + 0.5 * self.h * (rhs + self.explicit(predicted))) * self.cn_inv

    def integrator(self) -> Integrator[Tensor]:
        return Integrator(step=self.step, observe=lambda w_hat: self.to_physical(w_hat)[:, None])


@dataclass(frozen=True)
class VorticityConfig(SolverConfig):
    """What the FNO and Kolmogorov datasets share: scheme, precision, initial-condition GRF."""

    scheme: Scheme = "heun"
    """Explicit part: "heun" (RK2) or "euler" (the FNO reference's forward Euler)."""
    precision: Literal["float32", "float64"] = "float32"
    """Arithmetic of the solver (stored data are float32)."""
    ic_alpha: float = 2.5
    """Smoothness exponent alpha of the initial-vorticity GRF."""
    ic_tau: float = 7.0
    """Inverse length scale tau of the initial-vorticity GRF (angular wavenumber units)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_number(self, "ic_alpha", "ic_tau")


@dataclass(frozen=True)
class NavierStokesConfig(VorticityConfig):
    """FNO's Navier-Stokes data: unit square, GRF vorticity, fixed forcing. Defaults: the nu = 1e-3 case."""

    n_frames: int = 50
    dt: float = 1.0
    substeps: int = 100
    t_start: float = 1.0
    """FNO stores t = 1 .. T (the initial field is kept apart), hence 1."""
    viscosity: float = 1e-3
    """Kinematic viscosity nu."""
    forcing_amplitude: float = 0.1
    """Amplitude of f = A (sin 2 pi (x + y) + cos 2 pi (x + y)); FNO uses 0.1."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_number(self, "viscosity")
        require_nonnegative(self, "forcing_amplitude")


@dataclass(frozen=True)
class KolmogorovConfig(VorticityConfig):
    """Kolmogorov flow on [0, 2 pi)^2 with linear drag; spin-up to t_start before storing."""

    dt: float = 0.25
    substeps: int = 50
    t_start: float = 25.0
    reynolds: float = 200.0
    """Reynolds number Re; nu = 1 / Re (unit forcing amplitude and length). At 64^2 Re <= ~300 is
    resolved (enstrophy beyond the 2/3 cut of 64^2 < 1e-3 of the total in a 128^2 run)."""
    drag: float = 0.1
    """Linear drag coefficient alpha."""
    forcing_wavenumber: int = 4
    """Wavenumber k of the velocity forcing A sin(k y)."""
    forcing_amplitude: float = 1.0
    """Amplitude A of the velocity forcing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_number(self, "reynolds")
        require_nonnegative(self, "drag", "forcing_amplitude")
        if self.forcing_wavenumber < 1 or self.forcing_wavenumber >= self.resolution // 3:
            raise ValueError(f"forcing_wavenumber must be in [1, resolution/3) to survive dealiasing, "
                             f"got {self.forcing_wavenumber} at resolution {self.resolution}")

    @property
    def viscosity(self) -> float:
        return 1.0 / self.reynolds


def fno_forcing(resolution: int, amplitude: float = 0.1) -> Tensor:
    """A (sin 2 pi (x + y) + cos 2 pi (x + y)) on the unit square: (N, N), float64."""
    pos = torch.from_numpy(periodic_grid(resolution, 1.0))
    phase = 2 * math.pi * (pos[:, None] + pos[None, :])
    return amplitude * (torch.sin(phase) + torch.cos(phase))


def kolmogorov_forcing(resolution: int, wavenumber: int, amplitude: float = 1.0) -> Tensor:
    """curl of (A sin(k y), 0) = -A k cos(k y) on [0, 2 pi)^2: (N, N), float64, varying along y (dim 0)."""
    y = torch.from_numpy(periodic_grid(resolution, 2 * math.pi))
    return (-amplitude * wavenumber * torch.cos(wavenumber * y))[:, None].expand(resolution, resolution).clone()


def _simulate_vorticity(cfg: VorticityConfig, length: float, viscosity: float, drag: float, forcing: Tensor,
                        attrs: dict, device: torch.device | str, on_frames: OnFrames | None) -> xr.Dataset:
    dtype = DTYPES[cfg.precision]
    w0 = gaussian_random_field(cfg.n_samples, cfg.resolution, alpha=cfg.ic_alpha, tau=cfg.ic_tau,
                               domain_length=length, generator=generator(cfg.seed), dtype=dtype)
    stepper = VorticityStepper(cfg.resolution, length, viscosity, drag, forcing, cfg.step, cfg.scheme, dtype, device)
    frames = simulate(w0.to(device), stepper.to_spectral, stepper.integrator(), cfg, on_frames)  # (N, T, 1, Y, X)
    pos = periodic_grid(cfg.resolution, length)
    return to_dataset({"vorticity": frames[:, :, 0]}, cfg, {"y": pos, "x": pos},
                      {"solver": SOLVER_NAMES[cfg.scheme], "domain_length": float(length), "boundary": "periodic",
                       "viscosity": float(viscosity), **attrs})


def simulate_navier_stokes(cfg: NavierStokesConfig, device: torch.device | str = "cpu",
                           on_frames: OnFrames | None = None) -> xr.Dataset:
    """FNO's 2-D Navier-Stokes data: Dataset with `vorticity` (sample, time, y, x)."""
    forcing = fno_forcing(cfg.resolution, cfg.forcing_amplitude)
    attrs = {"equation": "navier_stokes_2d", "drag": 0.0, "forcing_amplitude": float(cfg.forcing_amplitude),
             "forcing": f"{cfg.forcing_amplitude:g}*(sin(2*pi*(x+y))+cos(2*pi*(x+y)))",
             "initial_condition": f"GRF alpha={cfg.ic_alpha:g} tau={cfg.ic_tau:g}"}
    return _simulate_vorticity(cfg, 1.0, cfg.viscosity, 0.0, forcing, attrs, device, on_frames)


def simulate_kolmogorov(cfg: KolmogorovConfig, device: torch.device | str = "cpu",
                        on_frames: OnFrames | None = None) -> xr.Dataset:
    """Kolmogorov flow: Dataset with `vorticity` (sample, time, y, x) on [0, 2 pi)^2."""
    forcing = kolmogorov_forcing(cfg.resolution, cfg.forcing_wavenumber, cfg.forcing_amplitude)
    k = cfg.forcing_wavenumber
    attrs = {"equation": "kolmogorov_2d", "reynolds": float(cfg.reynolds), "drag": float(cfg.drag),
             "forcing_wavenumber": int(k), "forcing_amplitude": float(cfg.forcing_amplitude),
             "forcing": f"velocity ({cfg.forcing_amplitude:g}*sin({k}*y), 0); vorticity "
                        f"-{cfg.forcing_amplitude * k:g}*cos({k}*y)",
             "initial_condition": f"GRF alpha={cfg.ic_alpha:g} tau={cfg.ic_tau:g}"}
    return _simulate_vorticity(cfg, 2 * math.pi, cfg.viscosity, cfg.drag, forcing, attrs, device, on_frames)

