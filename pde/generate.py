"""Make a named dataset: a preset (YAML in `pde/configs/data/`) + overrides -> a NetCDF/zarr file.

A preset holds `solver: <name>` and values of that solver's config dataclass; `key=value`
overrides win over it. The written dataset carries the full config, the preset name and the
solver's wall time in its attrs, so it can be regenerated and compared against a surrogate.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from pde.data import check_finite, write_dataset
from pde.solvers import CONFIGS, SIMULATORS
from pde.solvers.common import SolverConfig
from seqlab.config import from_dict, load_yaml, merge, parse_overrides
from seqlab.errors import ConfigError

log = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parent / "configs" / "data"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(preset: str | Path) -> Path:
    """A preset name (`ns_nu1e-3_64`) or a path to a YAML file -> the file."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        return path
    if (PRESET_DIR / f"{preset}.yaml").is_file():
        return PRESET_DIR / f"{preset}.yaml"
    raise ConfigError(f"unknown preset {str(preset)!r}; available: {', '.join(preset_names())} (or a YAML path)")


def load_preset(preset: str | Path, overrides: Mapping[str, Any] | Sequence[str] | None = None,
                ) -> tuple[str, SolverConfig]:
    """(solver name, validated config) of a preset with overrides applied."""
    path = preset_path(preset)
    raw = load_yaml(path)
    extra = parse_overrides(overrides) if isinstance(overrides, Sequence) else dict(overrides or {})
    raw = merge(raw, extra)
    solver = raw.pop("solver", None)
    if not isinstance(solver, str):
        raise ConfigError(f"{path}: key 'solver' must name one of {', '.join(CONFIGS.names())}, got {solver!r}")
    return solver, from_dict(CONFIGS.get(solver), raw)


def generate(
    preset: str | Path,
    out_path: str | Path,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Simulate a preset and write it to `out_path` (.nc or .zarr); returns the path.

    The progress bar (frames of trajectories) shows only on a terminal.
    """
    solver, cfg = load_preset(preset, overrides)
    out_path = Path(out_path)
    if out_path.suffix not in (".nc", ".zarr"):  # fail before the simulation, not after it
        raise ConfigError(f"output {out_path}: must end in .nc (NetCDF) or .zarr")
    name = Path(preset).stem
    log.info("generating %s (%s): %d trajectories x %d frames at %d points per axis", name, solver,
             cfg.n_samples, cfg.n_frames, cfg.resolution)
    bar = tqdm(total=cfg.n_samples * cfg.n_frames, desc=name, unit="frame", dynamic_ncols=True,
               disable=not (progress and sys.stderr.isatty()))
    start = time.perf_counter()
    try:
        ds = SIMULATORS.get(solver)(cfg, device=device, on_frames=bar.update)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    check_finite(ds)
    ds.attrs.update(preset=name, solver_seconds=round(seconds, 3), solver_device=str(torch.device(device)),
                    solver_threads=torch.get_num_threads())
    write_dataset(ds, out_path)
    log.info("wrote %s in %.1f s (%.3f s per trajectory)", out_path, seconds, seconds / cfg.n_samples)
    return out_path
