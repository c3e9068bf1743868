"""Batch surrogate jobs: roll a trained model out over a dataset of initial conditions into zarr.

The job a scientist runs: `surrogate + initial conditions (NetCDF/zarr, any size) -> rollouts of
N steps in a zarr store`. How it stays safe:

- Streaming: samples are processed in chunks of `chunk_size`; a chunk is read lazily, rolled
  out, written into its own region of the store and dropped. Memory is one chunk, whatever the
  dataset size.
- Resumable: the store's layout (a template) is written first; each chunk is written to its
  region, and only then is it marked done in the store's `chunk_done` variable (one zarr chunk
  per entry, so each mark is one atomic file write). A killed job re-runs exactly the chunks not
  marked; a half-written chunk is unmarked, so it is rewritten whole. Writes are idempotent,
  which Dask needs as it may run a task twice.
- One job per store: the store records a fingerprint of (surrogate, input, steps, chunking);
  continuing a store made by another job is an error that names the differing field.
- Divergence: a trajectory whose rollout turns NaN/inf is reported by its `sample` label with
  the step where it happened (variable `diverged_at`, -1 when it stayed finite); the other
  trajectories go on.
- PDE parameters: a surrogate trained with `data.params` reads each chunk's per-sample values
  from the input (a variable over `sample`, or an attr) and conditions the rollout on them.
- Steady operators (e.g. Darcy's coefficient -> solution): the same job applies the operator once
  to static input fields (sample, ...spatial) and writes its output fields with the same dims;
  `steps` is left unset. A sample whose output is NaN/inf is reported like a diverged trajectory
  (step 0).
- Scale-out: with a Dask scheduler address the chunks run as tasks on the cluster's workers
  (`dask.distributed`); every worker must see the surrogate file, the input and the store
  (a shared filesystem or object store). Without one, chunks run in this process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pde.data import DatasetError, sample_params
from pde.surrogate import Surrogate, file_sha256, resolve_surrogate
from seqlab.config import require_positive
from seqlab.errors import ConfigError, SeqlabError

log = logging.getLogger(__name__)

DONE = "chunk_done"
SAMPLE = "sample"
TIME = "time"


class JobError(SeqlabError):
    """The output store, input dataset or job settings do not fit together."""


@dataclass(frozen=True)
class InferConfig:
    """Settings of one batch rollout job.

    steps: frames to predict per trajectory; None for a steady operator (applied once).
    start_frame: index of the first input frame; frames [start, start + T_in) seed the rollout.
    chunk_size: trajectories per chunk (one task, one zarr chunk along `sample`).
    threads: torch threads per chunk, the same locally and on workers so results are identical.
    scheduler: a `dask.distributed` scheduler address; None runs the chunks in this process.
    """

    steps: int | None
    start_frame: int = 0
    chunk_size: int = 16
    threads: int = 1
    scheduler: str | None = None

    def __post_init__(self) -> None:
        require_positive(self, "chunk_size", "threads")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be > 0, got {self.steps}")
        if self.start_frame < 0:
            raise ConfigError(f"start_frame must be >= 0, got {self.start_frame}")


@dataclass(frozen=True)
class ChunkSpec:
    """What a chunk task needs; small and picklable, so it travels to Dask workers."""

    surrogate_path: str
    surrogate_sha256: str
    input_path: str
    output_path: str
    variables: tuple[str, ...]
    spatial_dims: tuple[str, ...]
    n_samples: int
    config: InferConfig
    inputs: tuple[str, ...] = ()
    """A steady operator's input fields (empty for a trajectory surrogate)."""

    @property
    def steady(self) -> bool:
        return bool(self.inputs)

    @property
    def dims(self) -> tuple[str, ...]:
        """Dims of each output variable."""
        return (SAMPLE, *self.spatial_dims) if self.steady else (SAMPLE, TIME, *self.spatial_dims)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_samples // self.config.chunk_size)

    def bounds(self, index: int) -> tuple[int, int]:
        start = index * self.config.chunk_size
        return start, min(start + self.config.chunk_size, self.n_samples)


@dataclass(frozen=True)
class ChunkResult:
    index: int
    n_trajectories: int
    seconds: float
    diverged: tuple[tuple[int, int], ...]  # (position in the input, step) of each diverged trajectory


@dataclass
class JobReport:
    """What a job did: counts, timing and every diverged trajectory as (sample label, step)."""

    output_path: str
    n_trajectories: int
    steps: int
    chunks_total: int
    chunks_run: int
    seconds: float
    diverged: list[tuple[int, int]] = field(default_factory=list)
    solver_seconds: float | None = None

    @property
    def throughput(self) -> float:
        """Trajectory-steps (a steady operator: samples) per second over the chunks this invocation ran."""
        done = self.chunks_run / max(self.chunks_total, 1) * self.n_trajectories
        return done * self.steps / self.seconds if self.seconds > 0 else float("nan")

    @property
    def speedup_vs_solver(self) -> float | None:
        """The solver's time for the same trajectory-steps over ours, when the input dataset was generated
        by seqlab (its `solver_seconds` attr); only meaningful on the machine that generated it."""
        if self.solver_seconds is None or self.chunks_run != self.chunks_total or self.seconds <= 0:
            return None
        return self.solver_seconds / self.seconds


# ------------------------------------------------------------------------------------- input
def open_input(path: str | Path) -> Any:
    """The initial conditions, lazily (dask-backed): NetCDF by default, zarr for `.zarr` stores."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise JobError(f"input dataset {path} does not exist")
    try:
        if path.suffix == ".zarr" or (path / "zarr.json").exists():
            return xr.open_zarr(path, consolidated=False)
        return xr.open_dataset(path, engine="h5netcdf", chunks={})
    except (OSError, ValueError) as exc:
        raise JobError(f"input dataset {path} cannot be read as NetCDF or zarr ({type(exc).__name__}: {exc})") from None


def _sample_labels(ds: Any) -> np.ndarray:
    """The input's `sample` coordinate (positions when it has none): how trajectories are named."""
    return ds[SAMPLE].values if SAMPLE in ds.coords else np.arange(ds.sizes[SAMPLE])


def _check_input(ds: Any, surrogate: Surrogate, config: InferConfig, source: str) -> None:
    try:
        sample_params(ds, surrogate.params, source)
    except DatasetError as exc:
        raise JobError(f"{exc}; the surrogate was trained with data.params={surrogate.params}") from None
    absent = surrogate.check_dataset(dict(ds.attrs), list(ds.data_vars), source)
    if absent:
        log.warning("%s lacks attrs %s that the surrogate was trained with; not checked", source, absent)
    if surrogate.steady:
        _check_static_input(ds, surrogate, config, source)
        return
    if config.steps is None:
        raise JobError(f"{surrogate.model_name} advances trajectories: give the number of steps to roll out")
    spatial = None
    for name in surrogate.variables:
        dims = ds[name].dims
        if dims[:2] != (SAMPLE, TIME):
            raise JobError(f"{source}: variable {name} has dims {dims}; expected ({SAMPLE}, {TIME}, ...spatial)")
        spatial = spatial or dims[2:]
        if dims[2:] != spatial:
            raise JobError(f"{source}: variable {name} has spatial dims {dims[2:]}, others {spatial}")
    needed = config.start_frame + surrogate.in_frames
    if ds.sizes[TIME] < needed:
        raise JobError(
            f"{source}: dim {TIME} has {ds.sizes[TIME]} frames; start_frame={config.start_frame} and the "
            f"surrogate's in_frames={surrogate.in_frames} need {needed}"
        )


def _check_static_input(ds: Any, surrogate: Surrogate, config: InferConfig, source: str) -> None:
    operator = f"a steady operator ({', '.join(surrogate.inputs)} -> {', '.join(surrogate.variables)})"
    if config.steps not in (None, 1) or config.start_frame:
        raise JobError(f"{operator} is applied once: leave steps and start_frame unset")
    spatial = None
    for name in surrogate.inputs:
        if name not in ds.data_vars:
            raise JobError(f"{source}: {operator} reads variable {name}, which the input lacks "
                           f"(it has {', '.join(map(str, ds.data_vars))})")
        dims = ds[name].dims
        if dims[0] != SAMPLE or TIME in dims or len(dims) < 2:
            raise JobError(f"{source}: variable {name} has dims {dims}; {operator} reads static fields "
                           f"({SAMPLE}, ...spatial)")
        spatial = spatial or dims[1:]
        if dims[1:] != spatial:
            raise JobError(f"{source}: variable {name} has spatial dims {dims[1:]}, others {spatial}")


# ------------------------------------------------------------------------------------- output
def _fingerprint(spec: ChunkSpec, input_sizes: dict[str, int]) -> str:
    blob = {
        "surrogate_sha256": spec.surrogate_sha256,
        "input": str(Path(spec.input_path).resolve()),
        "input_sizes": input_sizes,
        "variables": list(spec.variables),
        "steps": spec.config.steps,
        "start_frame": spec.config.start_frame,
        "chunk_size": spec.config.chunk_size,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _create_or_check_store(spec: ChunkSpec, ds: Any, surrogate: Surrogate, fingerprint: str) -> None:
    """Write the store's template on the first run; on a later run check it belongs to this job."""
    import dask.array as da
    import xarray as xr
    import zarr

    out = Path(spec.output_path)
    if out.exists():
        try:
            attrs = dict(zarr.open_group(str(out), mode="r").attrs)
        except Exception as exc:  # not a zarr store at all
            raise JobError(f"output {out} exists and is not a zarr store ({exc})") from None
        found = attrs.get("job_fingerprint")
        if found != fingerprint:
            theirs = json.loads(attrs.get("job", "{}"))
            ours = _job_description(spec)
            differing = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k)) or ["job_fingerprint"]
            raise JobError(
                f"output store {out} holds chunks of a different job (fields that differ: {', '.join(differing)}); "
                "choose another output path or delete it"
            )
        return
    cfg = spec.config
    spatial_dims = spec.spatial_dims
    spatial_shape = tuple(ds.sizes[d] for d in spatial_dims)
    frames = () if spec.steady else (cfg.steps,)
    chunks = (cfg.chunk_size, *frames, *spatial_shape)
    shape = (spec.n_samples, *frames, *spatial_shape)
    data_vars: dict[str, Any] = {
        name: (spec.dims, da.zeros(shape, chunks=chunks, dtype=np.float32)) for name in spec.variables
    }
    data_vars["diverged_at"] = ((SAMPLE,), da.full(spec.n_samples, -1, chunks=cfg.chunk_size, dtype=np.int32))
    data_vars[DONE] = (("chunk",), da.zeros(spec.n_chunks, chunks=1, dtype=np.int8))
    coords = {SAMPLE: _sample_labels(ds)}
    if not spec.steady:
        coords[TIME] = _output_times(ds, cfg, surrogate.in_frames)
    coords.update({d: ds[d].values for d in spatial_dims if d in ds.coords})
    attrs = {k: v for k, v in ds.attrs.items() if not isinstance(v, dict)}
    attrs.update(
        {
            "job": json.dumps(_job_description(spec)),
            "job_fingerprint": fingerprint,
            "model_name": surrogate.model_name,
            "surrogate": spec.surrogate_path,
            "surrogate_sha256": spec.surrogate_sha256,
            "input": spec.input_path,
            "seqlab_version": _version(),
        }
    )
    if spec.steady:
        attrs["operator_inputs"] = list(spec.inputs)
    else:
        attrs.update({"steps": cfg.steps, "start_frame": cfg.start_frame})
    template = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    template.to_zarr(out, mode="w-", compute=False, consolidated=False)


def _job_description(spec: ChunkSpec) -> dict[str, Any]:
    cfg = asdict(spec.config)
    cfg.pop("scheduler")  # where it runs does not change what it writes
    cfg.pop("threads")
    return {"surrogate_sha256": spec.surrogate_sha256, "input": str(Path(spec.input_path).resolve()),
            "variables": list(spec.variables), **cfg}


def _output_times(ds: Any, cfg: InferConfig, in_frames: int) -> np.ndarray:
    last = cfg.start_frame + in_frames - 1
    if TIME in ds.coords and "dt" in ds.attrs:
        t0 = float(ds[TIME].values[last])
        return t0 + float(ds.attrs["dt"]) * np.arange(1, cfg.steps + 1)
    return np.arange(last + 1, last + 1 + cfg.steps, dtype=np.float64)


def _done_chunks(spec: ChunkSpec) -> set[int]:
    import zarr

    done = zarr.open_array(store=spec.output_path, path=DONE, mode="r")[:]
    return {int(i) for i in np.flatnonzero(done)}


def _mark_done(spec: ChunkSpec, index: int) -> None:
    import zarr

    zarr.open_array(store=spec.output_path, path=DONE, mode="r+")[index] = 1


def _version() -> str:
    from importlib.metadata import version

    return version("seqlab")


# ------------------------------------------------------------------------------------- chunks
@functools.lru_cache(maxsize=2)
def _load_surrogate(path: str, sha256: str) -> tuple[Surrogate, torch.nn.Module]:
    """Loaded once per process (and per Dask worker); the hash keys the cache to the file's content."""
    surrogate = Surrogate.load(path)
    return surrogate, surrogate.build()


def run_chunk(index: int, spec: ChunkSpec) -> ChunkResult:
    """Roll out one chunk of trajectories and write it; a no-op if it is marked done."""
    if index in _done_chunks(spec):
        return ChunkResult(index, 0, 0.0, ())
    import xarray as xr

    began = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(spec.config.threads)
    try:
        surrogate, model = _load_surrogate(spec.surrogate_path, spec.surrogate_sha256)
        lo, hi = spec.bounds(index)
        if spec.steady:
            inputs = _read_fields(spec, _chunk_input(spec, lo, hi), spec.inputs, frames=None)  # (n, C_in, *S)
            with torch.inference_mode():
                outputs = surrogate.apply(model, inputs)  # (n, C, *S)
            finite = torch.isfinite(outputs.flatten(1)).all(dim=1)
            diverged_at = torch.where(finite, -1, 0)  # step 0: the one application
        else:
            initial, params = _read_chunk(spec, surrogate, lo, hi)
            with torch.inference_mode():
                outputs, diverged_at = surrogate.rollout(model, initial, spec.config.steps, params)
    finally:
        torch.set_num_threads(previous_threads)
    outputs_np = outputs.float().numpy()
    channel_axis = 1 if spec.steady else 2
    region_vars: dict[str, Any] = {name: (spec.dims, np.take(outputs_np, c, axis=channel_axis))
                                   for c, name in enumerate(spec.variables)}
    region_vars["diverged_at"] = ((SAMPLE,), diverged_at.numpy().astype(np.int32))
    xr.Dataset(region_vars).to_zarr(
        spec.output_path, region={SAMPLE: slice(lo, hi)}, mode="r+", consolidated=False
    )
    _mark_done(spec, index)
    diverged = tuple((lo + int(i), int(diverged_at[i])) for i in torch.nonzero(diverged_at >= 0).flatten())
    return ChunkResult(index, hi - lo, time.perf_counter() - began, diverged)


def _read_chunk(spec: ChunkSpec, surrogate: Surrogate, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Samples [lo, hi): (n, T_in, C, *S) float32 initial frames, checked for NaN/inf, and the
    (n, P) PDE parameters when the surrogate is conditioned on any."""
    window = slice(spec.config.start_frame, spec.config.start_frame + surrogate.in_frames)
    ds = _chunk_input(spec, lo, hi)
    initial = _read_fields(spec, ds, spec.variables, frames=window)
    params = torch.from_numpy(sample_params(ds, surrogate.params, spec.input_path)) if surrogate.params else None
    return initial, params


def _chunk_input(spec: ChunkSpec, lo: int, hi: int) -> Any:
    """Samples [lo, hi) of the input, lazily."""
    return open_input(spec.input_path).isel({SAMPLE: slice(lo, hi)})


def _read_fields(spec: ChunkSpec, ds: Any, names: tuple[str, ...], frames: slice | None) -> torch.Tensor:
    """Variables `names` of the chunk `ds` stacked as channels, float32, checked for NaN/inf:
    (n, T, C, *S) for the `frames` of trajectories, (n, C, *S) for static fields (frames None)."""
    channels = []
    for name in names:
        values = np.asarray((ds[name] if frames is None else ds[name].isel({TIME: frames})).values, dtype=np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            labels = _sample_labels(ds)
            samples = sorted({labels[i].item() for i in np.nonzero(bad)[0]})
            where = "fields" if frames is None else "initial frames"
            raise JobError(f"{spec.input_path}: variable {name} holds NaN/inf in the {where} of samples {samples[:10]}")
        channels.append(values)
    return torch.from_numpy(np.stack(channels, axis=1 if frames is None else 2))


# ------------------------------------------------------------------------------------- the job
def run_job(
    surrogate_ref: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    config: InferConfig,
    client: Any = None,
    progress: bool | None = None,
) -> JobReport:
    """Roll the surrogate out over every initial condition in `input_path` into the zarr store
    `output_path`, continuing a store this same job started before.

    client: a `dask.distributed.Client` to run chunks on (overrides `config.scheduler`).
    """
    surrogate_path = resolve_surrogate(surrogate_ref)
    surrogate = Surrogate.load(surrogate_path)
    ds = open_input(input_path)
    _check_input(ds, surrogate, config, str(input_path))
    spec = ChunkSpec(
        surrogate_path=str(surrogate_path.resolve()),
        surrogate_sha256=file_sha256(surrogate_path),
        input_path=str(Path(input_path).resolve()),
        output_path=str(Path(output_path).resolve()),
        variables=tuple(surrogate.variables),
        spatial_dims=tuple(ds[surrogate.inputs[0]].dims[1:] if surrogate.steady else ds[surrogate.variables[0]].dims[2:]),
        n_samples=int(ds.sizes[SAMPLE]),
        config=config,
        inputs=tuple(surrogate.inputs),
    )
    _create_or_check_store(spec, ds, surrogate, _fingerprint(spec, {k: int(v) for k, v in ds.sizes.items()}))
    n_chunks = spec.n_chunks
    done = _done_chunks(spec)
    todo = [i for i in range(n_chunks) if i not in done]
    steps = 1 if spec.steady else config.steps
    log.info("%d of %d chunks to run (%d samples x %d steps)", len(todo), n_chunks, spec.n_samples, steps)
    began = time.perf_counter()
    results = _run_chunks(todo, spec, n_chunks, client, progress)
    seconds = time.perf_counter() - began
    labels = _sample_labels(ds)
    diverged = [(labels[position].item(), step) for position, step in sorted(d for r in results for d in r.diverged)]
    for sample, step in diverged:
        log.warning("sample %s diverged (NaN/inf) at step %d", sample, step)
    solver_seconds = None
    if "solver_seconds" in ds.attrs and not spec.steady:  # the generation's time, scaled to the steps rolled out
        per_frame = float(ds.attrs["solver_seconds"]) / (ds.sizes[SAMPLE] * ds.sizes[TIME])
        solver_seconds = per_frame * spec.n_samples * config.steps
    return JobReport(spec.output_path, spec.n_samples, steps, n_chunks, len(todo), seconds, diverged, solver_seconds)


def _run_chunks(
    todo: list[int], spec: ChunkSpec, n_chunks: int, client: Any, progress: bool | None
) -> list[ChunkResult]:
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=n_chunks, initial=n_chunks - len(todo), unit="chunk", disable=not show, desc="rollout")
    results = []
    owned = None
    if client is None and spec.config.scheduler is not None:
        from dask.distributed import Client

        client = owned = Client(spec.config.scheduler)
    try:
        if client is None:
            for index in todo:
                results.append(run_chunk(index, spec))
                bar.update()
        else:
            from dask.distributed import as_completed

            futures = client.map(run_chunk, todo, spec=spec, pure=False)
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
    finally:
        bar.close()
        if owned is not None:
            owned.close()
    return results
