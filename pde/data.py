"""PDE datasets: the xarray layout, files, the provided data, splits, statistics and windows.

Layout (docs/pde/data.md): one variable per physical field, dims `(sample, time, y, x)` or
`(sample, time, x)` (static fields such as Darcy's: `(sample, y, x)`), coordinates `sample`,
`time`, `x`, `y`, and the physics and provenance in NetCDF-safe attrs. Files are NetCDF (`.nc`,
h5netcdf) or zarr (`.zarr`), written atomically and opened lazily. The protocol: trajectories are
split into train/val/test whole (never by time step), and the normalization statistics come from
the training split only.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr
from torch import Tensor
from torch.utils.data import Dataset

import seqlab
from seqlab.datadirs import field_data_dirs
from seqlab.errors import SeqlabError

SPATIAL = {1: ("x",), 2: ("y", "x")}
EQUATIONS: dict[str, tuple[int, tuple[str, ...], bool]] = {
    # equation: (spatial dims, variables, time-dependent)
    "navier_stokes_2d": (2, ("vorticity",), True),
    "kolmogorov_2d": (2, ("vorticity",), True),
    "diffusion_reaction_2d": (2, ("u", "v"), True),
    "darcy_2d": (2, ("coefficient", "solution"), False),
    "burgers_1d": (1, ("u",), True),
    "ks_1d": (1, ("u",), True),
    "kdv_1d": (1, ("u",), True),
    "allen_cahn_1d": (1, ("u",), True),
    "nls_1d": (1, ("u", "v"), True),  # real and imaginary part of h = u + i v
}
REQUIRED_ATTRS = ("equation", "domain_length", "resolution", "source", "seqlab_version")
FORMATS = (".nc", ".zarr", ".pt", ".mat")
CHUNK_BYTES = 4 * 2**20
PINNS = {  # file stem: (equation, boundary); equation parameters are not in the files
    "AC": ("allen_cahn_1d", "periodic"),
    "KS": ("ks_1d", "periodic"),
    "KdV": ("kdv_1d", "periodic"),
    "NLS": ("nls_1d", "periodic"),
    "burgers_shock": ("burgers_1d", "dirichlet"),
}


class DatasetError(SeqlabError, ValueError):
    """A PDE dataset is missing, unreadable or not in the layout; the message names the file,
    variable, dim or attr and what was expected."""


# ------------------------------------------------------------------------------------ layout
def data_variables(ds: xr.Dataset) -> list[str]:
    """The dataset's time-dependent fields, in dataset order: the default model channels."""
    return [name for name, da in ds.data_vars.items() if da.dims[:2] == ("sample", "time")]


def _source(ds: xr.Dataset) -> str:
    return str(ds.attrs.get("source", "dataset"))


def validate_dataset(ds: xr.Dataset, variables: Sequence[str] | None = None, source: str | None = None) -> None:
    """Check attrs, variables, dims and coordinates against the layout; raise DatasetError naming the first gap.

    `variables` defaults to the fields of the dataset's `equation` (for an equation seqlab does
    not know: every variable with more dims than `sample`).
    """
    where = source or _source(ds)
    for attr in REQUIRED_ATTRS:
        if attr not in ds.attrs:
            raise DatasetError(f"{where}: missing attr {attr!r}; a PDE dataset needs attrs {', '.join(REQUIRED_ATTRS)}")
    equation = ds.attrs["equation"]
    fields = tuple(name for name, da in ds.data_vars.items() if da.ndim > 1)
    ndim, known_vars, timed = EQUATIONS.get(equation, (None, fields, "time" in ds.dims))
    for name in variables if variables is not None else known_vars:
        if name not in ds.data_vars:
            raise DatasetError(f"{where}: no variable {name!r} (equation {equation}); variables are "
                               f"{sorted(map(str, ds.data_vars))}")
        dims = ds[name].dims
        n_spatial = ndim or max(1, min(2, len(dims) - (2 if "time" in dims else 1)))
        expected = ("sample", *(("time",) if timed else ()), *SPATIAL[n_spatial])
        for dim in expected:
            if dim not in dims:
                raise DatasetError(f"{where}: variable {name!r} has no dim {dim!r}: its dims are {dims}, expected "
                                   f"{expected}")
        if dims != expected:
            raise DatasetError(f"{where}: variable {name!r} has dims {dims}, expected {expected} (in this order)")
        for dim in dims:
            if dim not in ds.coords:
                raise DatasetError(f"{where}: no coordinate {dim!r} for dim {dim!r} of variable {name!r}")
    if timed and "dt" not in ds.attrs:
        raise DatasetError(f"{where}: missing attr 'dt' (time between stored frames)")


def check_finite(ds: xr.Dataset, variables: Sequence[str] | None = None) -> None:
    """Raise DatasetError naming the variable, sample and time of the first NaN/inf value."""
    for name in variables if variables is not None else list(ds.data_vars):
        da = ds[name]
        other = [d for d in da.dims if d != "sample"]
        bad = np.asarray((~np.isfinite(da)).any(dim=other))  # (N,), streams through lazy data
        if bad.any():
            s = int(np.argmax(bad))
            where = f"sample {int(ds['sample'][s])}"
            if "time" in da.dims:
                per_time = np.asarray((~np.isfinite(da.isel(sample=s))).any(dim=[d for d in other if d != "time"]))
                where += f", time {float(ds['time'][int(np.argmax(per_time))]):g}"
            raise DatasetError(f"{_source(ds)}: variable {name!r} holds NaN or inf values (first at {where})")


def _check_attrs(ds: xr.Dataset, path: Path) -> None:
    for key, value in ds.attrs.items():
        ok = isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if isinstance(value, (list, tuple, np.ndarray)):
            ok = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                     for v in np.asarray(value).ravel().tolist())
        if not ok:
            raise DatasetError(f"{path}: attr {key!r} = {value!r} cannot be stored; attrs must be str, int, float "
                               "or lists of numbers (no None or bool)")


# ------------------------------------------------------------------------------------- files
def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write `ds` to `.nc` (h5netcdf) or `.zarr`, atomically: a reader sees the old file or the new one.

    Fields are stored in chunks of whole trajectories (about 4 MiB), so a lazy reader fetches one
    trajectory without touching the others.
    """
    path = Path(path)
    if path.suffix not in (".nc", ".zarr"):
        raise DatasetError(f"{path}: unknown format {path.suffix!r}; write .nc (NetCDF) or .zarr")
    _check_attrs(ds, path)
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}
    encoding = {name: _chunk_encoding(da, path.suffix) for name, da in ds.data_vars.items() if "sample" in da.dims}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        if path.suffix == ".nc":
            ds.to_netcdf(tmp / path.name, engine="h5netcdf", encoding=encoding)
            os.replace(tmp / path.name, path)
        else:
            for name, enc in encoding.items():  # dask chunks must match the stored ones
                if ds[name].chunks:
                    ds[name] = ds[name].chunk(dict(zip(ds[name].dims, enc["chunks"])))
            ds.to_zarr(tmp / path.name, mode="w-", encoding=encoding, consolidated=False)
            _replace_dir(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _chunk_encoding(da: xr.DataArray, suffix: str) -> dict[str, Any]:
    per_sample = max(1, da.dtype.itemsize * math.prod(da.shape[1:]))
    chunks = (max(1, min(da.shape[0], CHUNK_BYTES // per_sample)), *da.shape[1:])
    return {"chunksizes": chunks} if suffix == ".nc" else {"chunks": chunks}


def _replace_dir(new: Path, target: Path) -> None:
    """Move directory `new` to `target`, replacing an existing one with two renames."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()


def resolve_path(name: str | Path, data_dir: str | Path | None = None) -> Path:
    """A path, or a dataset name looked up (with any of .nc/.zarr/.pt/.mat, also one folder down)
    in the explicit dir, $SEQLAB_DATA_DIR, then ../shared/data/pde."""
    path = Path(name)
    if path.exists():
        return path
    searched = field_data_dirs("pde", data_dir)
    stems = [path.name] if path.suffix in FORMATS else [path.name + s for s in FORMATS]
    for directory in searched:
        for folder in (directory, *sorted(p for p in directory.glob("*") if p.is_dir() and p.suffix != ".zarr")):
            for stem in stems:
                if (folder / stem).exists():
                    return folder / stem
    raise DatasetError(f"dataset {str(name)!r} not found: no such file, and no {' / '.join(stems)} in "
                       f"{', '.join(map(str, searched)) or '(no data folder)'}; pass a path, --data-dir or set "
                       "SEQLAB_DATA_DIR")


def open_dataset(
    name: str | Path,
    chunks: Mapping[str, int] | str | None = "disk",
    variables: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
) -> xr.Dataset:
    """Open a dataset lazily and check its layout.

    Args:
        name: a `.nc`/`.zarr` path, a provided `.pt`/`.mat` file, or a name found in the data
            folders (`resolve_path`).
        chunks: "disk" (dask, the stored chunks), a dask chunk spec, or None for lazily indexed
            arrays without dask (cheapest for random access to single trajectories).
        variables: the fields the caller needs; each missing one is an error that names it.
    """
    path = resolve_path(name, data_dir)
    dask_chunks = {} if chunks == "disk" else chunks
    try:
        if path.suffix == ".nc":
            ds = xr.open_dataset(path, engine="h5netcdf", chunks=dask_chunks)
        elif path.suffix == ".zarr":
            ds = xr.open_zarr(path, chunks=dask_chunks, consolidated=False)
        elif path.suffix == ".pt":
            ds = load_neuraloperator(path)
        elif path.suffix == ".mat":
            ds = load_pinns(path)
        else:
            raise DatasetError(f"{path}: unknown format {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot be read as a dataset ({type(exc).__name__}: {exc})") from None
    if path.suffix in (".pt", ".mat") and dask_chunks is not None:
        ds = ds.chunk(dask_chunks)
    validate_dataset(ds, variables, source=str(path))
    return ds


# ---------------------------------------------------------------------------- provided files
def _provenance(path: Path, equation: str, resolution: int, domain_length: float, **attrs: Any) -> dict[str, Any]:
    return {"equation": equation, "resolution": int(resolution), "domain_length": float(domain_length),
            "source": path.name, "seqlab_version": seqlab.__version__, **attrs}


def load_neuraloperator(path: str | Path) -> xr.Dataset:
    """neuraloperator's small `.pt` files (read with weights_only=True) in the layout.

    Darcy (`x` bool permeability mask, `y` pressure) -> `coefficient`, `solution` (sample, y, x)
    on the unit square's nodes. Burgers (`input`, `output` (N, 17, 16), `visc`) -> `u` (sample,
    time, x); the files record no grid, so neuraloperator's assumption is used: x in [0, 1)
    periodic, t in [0, 1].
    """
    path = Path(path)
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types for unreadable files
        raise DatasetError(f"{path}: cannot be read with torch.load ({type(exc).__name__}: {exc})") from None
    keys = set(data) if isinstance(data, dict) else set()
    if {"x", "y"} <= keys:
        coefficient, solution = data["x"].to(torch.float32).numpy(), data["y"].to(torch.float32).numpy()
        n = solution.shape[-1]
        grid = np.linspace(0.0, 1.0, n)
        return xr.Dataset(
            {"coefficient": (("sample", "y", "x"), coefficient), "solution": (("sample", "y", "x"), solution)},
            coords={"sample": np.arange(len(solution), dtype=np.int64), "y": grid, "x": grid},
            attrs=_provenance(path, "darcy_2d", n, 1.0, boundary="dirichlet",
                              note="coefficient is FNO's thresholded GRF mask (0/1); its two values are not recorded"),
        )
    if {"output", "visc"} <= keys:
        u = data["output"].to(torch.float32).numpy()  # (N, T, X)
        n_time, n = u.shape[1:]
        return xr.Dataset(
            {"u": (("sample", "time", "x"), u)},
            coords={"sample": np.arange(len(u), dtype=np.int64), "time": np.linspace(0.0, 1.0, n_time),
                    "x": np.arange(n) / n},
            attrs=_provenance(path, "burgers_1d", n, 1.0, boundary="periodic", dt=1.0 / (n_time - 1),
                              viscosity=float(data["visc"].reshape(-1)[0]),
                              note="grid and time spacing not recorded; neuraloperator's x in [0,1), t in [0,1]"),
        )
    raise DatasetError(f"{path}: expected a dict with keys x, y (Darcy) or input, output, visc (Burgers), "
                       f"got {sorted(keys) or type(data).__name__}")


def load_pinns(path: str | Path, equation: str | None = None) -> xr.Dataset:
    """A PINNs `.mat` reference trajectory (`uu`/`usol` (space, time), `x`, `tt`/`t`) as one sample.

    Complex fields (NLS) become `u` (real) and `v` (imaginary part). A duplicated periodic end
    point (KS.mat holds x = -1 and x = 1) is dropped.
    """
    import scipy.io

    path = Path(path)
    if equation is None:
        if path.stem not in PINNS:
            raise DatasetError(f"{path}: unknown PINNs file; name one of {', '.join(PINNS)} or pass equation=")
        equation, boundary = PINNS[path.stem]
    else:
        boundary = PINNS.get(path.stem, (equation, "periodic"))[1]
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for unreadable files
        raise DatasetError(f"{path}: cannot be read as a MATLAB file ({type(exc).__name__}: {exc})") from None
    field_key = next((k for k in ("uu", "usol") if k in mat), None)
    time_key = next((k for k in ("tt", "t") if k in mat), None)
    if field_key is None or time_key is None or "x" not in mat:
        raise DatasetError(f"{path}: expected keys uu or usol, tt or t, and x; got "
                           f"{sorted(k for k in mat if not k.startswith('__'))}")
    field, x, t = mat[field_key].T, mat["x"].ravel().astype(np.float64), mat[time_key].ravel().astype(np.float64)
    dx = float(x[1] - x[0])
    if boundary == "periodic" and np.allclose(field[:, 0], field[:, -1]) and len(x) % 2:
        field, x = field[:, :-1], x[:-1]
    length = dx * len(x) if boundary == "periodic" else float(x[-1] - x[0])
    parts = {"u": field.real, "v": field.imag} if np.iscomplexobj(field) else {"u": field}
    return xr.Dataset(
        {name: (("sample", "time", "x"), values[None].astype(np.float32)) for name, values in parts.items()},
        coords={"sample": np.array([0], dtype=np.int64), "time": t, "x": x},
        attrs=_provenance(path, equation, len(x), length, boundary=boundary, dt=float(t[1] - t[0]),
                          domain_start=float(x[0]),
                          note="single reference trajectory; equation parameters are not stored in the file"),
    )


# --------------------------------------------------------------------------- splits and stats
class Splits(NamedTuple):
    train: xr.Dataset
    val: xr.Dataset
    test: xr.Dataset


def split_by_trajectory(
    ds: xr.Dataset,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Splits:
    """Shuffle the trajectories with `seed` and cut them into train/val/test; frames stay together.

    With counts, `n_val` defaults to 0 and `n_test` to the rest; without, `fractions` (val and
    test rounded, train the rest). Each split keeps its trajectories' `sample` labels, in order.
    """
    n = ds.sizes["sample"]
    if n_train is None and n_val is None and n_test is None:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
            raise DatasetError(f"fractions must be three numbers >= 0 summing to 1, got {fractions}")
        n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
        n_train = n - n_val - n_test
    else:
        n_train = n_train if n_train is not None else n - (n_val or 0) - (n_test or 0)
        n_val = n_val or 0
        n_test = n_test if n_test is not None else n - n_train - n_val
    counts = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    for key, value in counts.items():
        if value < 0:
            raise DatasetError(f"{key}={value} must be >= 0")
    if sum(counts.values()) > n:
        raise DatasetError(f"n_train + n_val + n_test = {sum(counts.values())} exceeds the {n} trajectories")
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([0, n_train, n_val, n_test])
    return Splits(*(ds.isel(sample=np.sort(order[a:b])) for a, b in zip(cuts[:-1], cuts[1:])))


@dataclass(frozen=True)
class FieldStats:
    """Per-channel mean and std (over samples, frames and grid points) for normalization."""

    variables: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, train: xr.Dataset, variables: Sequence[str]) -> FieldStats:
        """Statistics of the training split `train` (pass only it: val/test must not leak in)."""
        means, stds = [], []
        for name in variables:
            if name not in train.data_vars:
                raise DatasetError(f"{_source(train)}: no variable {name!r}; variables are {sorted(train.data_vars)}")
            da = train[name].astype(np.float64)
            with np.errstate(invalid="ignore"):  # inf values are reported by name below
                mean, std = float(da.mean()), float(da.std())
            if not (math.isfinite(mean) and math.isfinite(std)):
                check_finite(train, [name])
            if std == 0:
                raise DatasetError(f"{_source(train)}: variable {name!r} is constant ({mean:g}); it cannot be "
                                   "normalized by its std")
            means.append(mean)
            stds.append(std)
        return cls(tuple(variables), tuple(means), tuple(stds))

    def _shaped(self, values: tuple[float, ...], x: Tensor, channel_dim: int) -> Tensor:
        dim = channel_dim % x.ndim
        if x.shape[dim] != len(self.variables):
            raise DatasetError(f"tensor has {x.shape[dim]} channels at dim {channel_dim}, stats have "
                               f"{len(self.variables)} ({', '.join(self.variables)})")
        return torch.tensor(values, dtype=x.dtype, device=x.device).view(-1, *([1] * (x.ndim - dim - 1)))

    def normalize(self, x: Tensor, channel_dim: int = 2) -> Tensor:
        """(x - mean) / std per channel; channels at `channel_dim` ((B, T, C, *S) by default)."""
        return (x - self._shaped(self.mean, x, channel_dim)) / self._shaped(self.std, x, channel_dim)

    def denormalize(self, x: Tensor, channel_dim: int = 2) -> Tensor:
        return x * self._shaped(self.std, x, channel_dim) + self._shaped(self.mean, x, channel_dim)

    def to_dict(self) -> dict[str, list]:
        """Plain lists, for checkpoints and JSON."""
        return {"variables": list(self.variables), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FieldStats:
        try:
            stats = cls(tuple(map(str, state["variables"])), tuple(map(float, state["mean"])),
                        tuple(map(float, state["std"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"field stats must hold lists variables, mean, std; got {dict(state)!r}") from exc
        if not len(stats.variables) == len(stats.mean) == len(stats.std):
            raise DatasetError(f"field stats have {len(stats.variables)} variables but {len(stats.mean)} means and "
                               f"{len(stats.std)} stds")
        return stats


def sample_params(ds: xr.Dataset, names: Sequence[str], source: str | Path | None = None) -> np.ndarray:
    """PDE parameters per trajectory, (N, P) float32: a variable over `sample`, else a dataset attr.

    `source` names the dataset in errors (default: its `source` attr)."""
    columns = []
    for name in names:
        if name in ds.data_vars and ds[name].dims == ("sample",):
            columns.append(np.asarray(ds[name], dtype=np.float32))
        elif name in ds.attrs and isinstance(ds.attrs[name], (int, float, np.number)):
            columns.append(np.full(ds.sizes["sample"], ds.attrs[name], dtype=np.float32))
        else:
            raise DatasetError(f"{source or _source(ds)}: parameter {name!r} is neither a variable over 'sample' "
                               "nor a numeric attr")
    return np.stack(columns, axis=1) if columns else np.zeros((ds.sizes["sample"], 0), np.float32)


# ---------------------------------------------------------------------------------- windows
class FrameWindows(Dataset):
    """Windows of consecutive frames of each trajectory, for one-step or multi-step training.

    Window (s, t) reads frames [t, t + in_frames) of trajectory s as input and the next
    `out_frames` as target; starts are `stride` apart, so a trajectory of T frames gives
    (T - in_frames - out_frames) // stride + 1 windows. Items are float32 tensors
    x (T_in, C, *S), y (T_out, C, *S), normalized with `stats` when given, plus the PDE
    parameters p (P,) when `params` names any. Data are read per item, so a lazily opened
    dataset is never loaded whole. `variables` None takes every time-dependent field, in
    dataset order.
    """

    def __init__(self, ds: xr.Dataset, variables: Sequence[str] | None, in_frames: int, out_frames: int,
                 stats: FieldStats | None = None, stride: int = 1, params: Sequence[str] = ()) -> None:
        variables = data_variables(ds) if variables is None else list(variables)
        for name, value in (("in_frames", in_frames), ("out_frames", out_frames), ("stride", stride)):
            if value < 1:
                raise DatasetError(f"{name} must be >= 1, got {value}")
        validate_dataset(ds, variables)
        if stats is not None and tuple(stats.variables) != tuple(variables):
            raise DatasetError(f"stats are for variables {stats.variables}, windows for {tuple(variables)}")
        n_time = ds.sizes["time"]
        if n_time < in_frames + out_frames:
            raise DatasetError(f"{_source(ds)}: dim 'time' has {n_time} frames; a window needs in_frames + "
                               f"out_frames = {in_frames + out_frames}")
        self.variables, self.in_frames, self.out_frames, self.stride = tuple(variables), in_frames, out_frames, stride
        self.stats, self.source = stats, _source(ds)
        self.samples = np.asarray(ds["sample"])
        self._fields = [ds[name].variable for name in variables]  # (N, T, *S), lazy if ds is
        self.params = torch.from_numpy(sample_params(ds, params)) if params else None
        self.n_samples = ds.sizes["sample"]
        self.windows_per_trajectory = (n_time - in_frames - out_frames) // stride + 1

    def __len__(self) -> int:
        return self.n_samples * self.windows_per_trajectory

    def locate(self, index: int) -> tuple[int, int]:
        """Item index -> (trajectory position, first frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        s, w = divmod(index, self.windows_per_trajectory)
        return s, w * self.stride

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        s, t = self.locate(index)
        span = self.in_frames + self.out_frames
        block = np.stack([np.asarray(f[s, t:t + span].values, dtype=np.float32) for f in self._fields], axis=1)
        if not np.isfinite(block).all():  # (T_in + T_out, C, *S)
            frame, channel = np.argwhere(~np.isfinite(block))[0][:2]
            raise DatasetError(f"{self.source}: variable {self.variables[channel]!r} holds NaN or inf at sample "
                               f"{self.samples[s]}, frame {t + frame}")
        frames = torch.from_numpy(block)
        if self.stats is not None:
            frames = self.stats.normalize(frames, channel_dim=1)
        x, y = frames[:self.in_frames], frames[self.in_frames:]
        return (x, y) if self.params is None else (x, y, self.params[s])
