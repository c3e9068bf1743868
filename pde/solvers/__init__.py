"""Numerical solvers that make PDE datasets, by name.

Each solver is a typed config dataclass plus a `simulate(cfg, device, on_frames) -> xr.Dataset`
function; both are resolved lazily, so listing names imports no torch.
"""

from __future__ import annotations

from seqlab.registry import Registry

_TABLE = {
    "navier_stokes": ("pde.solvers.navier_stokes", "NavierStokesConfig", "simulate_navier_stokes"),
    "kolmogorov": ("pde.solvers.navier_stokes", "KolmogorovConfig", "simulate_kolmogorov"),
    "burgers": ("pde.solvers.spectral1d", "BurgersConfig", "simulate_1d"),
    "ks": ("pde.solvers.spectral1d", "KSConfig", "simulate_1d"),
    "kdv": ("pde.solvers.spectral1d", "KdVConfig", "simulate_1d"),
    "diffusion_reaction": ("pde.solvers.diffusion_reaction", "DiffusionReactionConfig",
                           "simulate_diffusion_reaction"),
}
CONFIGS = Registry("PDE solver", {name: f"{module}:{config}" for name, (module, config, _) in _TABLE.items()})
"""Solver name -> its config dataclass."""
SIMULATORS = Registry("PDE solver", {name: f"{module}:{fn}" for name, (module, _, fn) in _TABLE.items()})
"""Solver name -> simulate(cfg, device="cpu", on_frames=None) -> xarray.Dataset."""
