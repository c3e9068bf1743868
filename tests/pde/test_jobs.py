"""Batch surrogate jobs: one go, chunked, killed and resumed, and on a 2-worker Dask cluster all
write the same store; bad input is refused with the name of what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from pde import jobs
from pde.jobs import InferConfig, JobError, run_job
from pde.models import build_model
from pde.surrogate import Surrogate, SurrogateMismatchError

N_SAMPLES, N_TIME, RES = 7, 3, 8
MODEL_CONFIG = {"in_frames": 2, "out_frames": 1, "channels": 1, "d_model": 16, "n_heads": 2, "d_head": 8,
                "n_layers": 1}
PHYSICS = {"equation": "navier_stokes_2d", "viscosity": 1e-3, "resolution": RES, "dt": 1.0}


def make_initial_conditions(path, n_samples=N_SAMPLES, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    grid = np.arange(RES) / RES
    ds = xr.Dataset(
        {"vorticity": (("sample", "time", "y", "x"), rng.standard_normal((n_samples, N_TIME, RES, RES)).astype(np.float32))},
        coords={"sample": np.arange(n_samples), "time": np.arange(N_TIME, dtype=float), "y": grid, "x": grid},
        attrs={**PHYSICS, "seed": seed, "source": "test", **attrs},
    )
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def make_surrogate(path, **physics):
    torch.manual_seed(0)
    model = build_model("factformer", MODEL_CONFIG)
    surrogate = Surrogate("factformer", MODEL_CONFIG, model.state_dict(), ["vorticity"], [0.1], [2.0],
                          {**PHYSICS, **physics})
    surrogate.save(path)
    return path


@pytest.fixture
def setup(tmp_path):
    return make_surrogate(tmp_path / "surrogate.pt"), make_initial_conditions(tmp_path / "ics.nc")


def read(store):
    return xr.open_zarr(store, consolidated=False).load()


def test_rollout_store_matches_the_surrogate_and_has_provenance(setup, tmp_path):
    surrogate_path, ics = setup
    report = run_job(surrogate_path, ics, tmp_path / "out.zarr", InferConfig(steps=3, chunk_size=3))
    out = read(tmp_path / "out.zarr")
    assert out["vorticity"].shape == (N_SAMPLES, 3, RES, RES)
    assert report.chunks_total == report.chunks_run == 3 and report.throughput > 0
    surrogate = Surrogate.load(surrogate_path)
    initial = torch.from_numpy(xr.open_dataset(ics)["vorticity"].values[:, :2, None])
    expected, _ = surrogate.rollout(surrogate.build(), initial, 3)
    np.testing.assert_allclose(out["vorticity"].values, expected[:, :, 0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["time"].values, [2.0, 3.0, 4.0])
    assert out.attrs["equation"] == "navier_stokes_2d" and out.attrs["model_name"] == "factformer"
    assert out.attrs["steps"] == 3 and len(out.attrs["surrogate_sha256"]) == 64
    assert (out["diverged_at"].values == -1).all()


def test_chunked_killed_resumed_and_dask_runs_write_identical_stores(setup, tmp_path, monkeypatch):
    surrogate_path, ics = setup
    config = InferConfig(steps=2, chunk_size=2)
    run_job(surrogate_path, ics, tmp_path / "whole.zarr", InferConfig(steps=2, chunk_size=N_SAMPLES))
    run_job(surrogate_path, ics, tmp_path / "chunked.zarr", config)

    # Kill the job while it writes chunk 2: chunk 2's region is half written, it has no marker.
    real_mark = jobs._mark_done

    def dies_at_chunk_2(spec, index):
        if index == 2:
            raise KeyboardInterrupt
        real_mark(spec, index)

    monkeypatch.setattr(jobs, "_mark_done", dies_at_chunk_2)
    with pytest.raises(KeyboardInterrupt):
        run_job(surrogate_path, ics, tmp_path / "resumed.zarr", config)
    monkeypatch.setattr(jobs, "_mark_done", real_mark)
    assert read(tmp_path / "resumed.zarr")["chunk_done"].values.tolist() == [1, 1, 0, 0]
    zarr.open_group(str(tmp_path / "resumed.zarr"), mode="r+")["vorticity"][4:6] = 1e9  # garbage, no marker
    report = run_job(surrogate_path, ics, tmp_path / "resumed.zarr", config)
    assert report.chunks_run == 2  # chunk 2 again, and chunk 3

    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        run_job(surrogate_path, ics, tmp_path / "dask.zarr", config, client=client)

    reference = read(tmp_path / "chunked.zarr").drop_attrs()
    for name in ("whole", "resumed", "dask"):
        store = read(tmp_path / f"{name}.zarr").drop_attrs()
        assert store["chunk_done"].all()
        xr.testing.assert_identical(store.drop_vars("chunk_done"), reference.drop_vars("chunk_done"))
    assert run_job(surrogate_path, ics, tmp_path / "chunked.zarr", config).chunks_run == 0


def test_store_of_another_job_is_refused(setup, tmp_path):
    surrogate_path, ics = setup
    run_job(surrogate_path, ics, tmp_path / "out.zarr", InferConfig(steps=2, chunk_size=4))
    with pytest.raises(JobError, match=r"different job.*steps"):
        run_job(surrogate_path, ics, tmp_path / "out.zarr", InferConfig(steps=3, chunk_size=4))


def test_other_physics_is_refused_naming_the_attr(tmp_path):
    surrogate_path = make_surrogate(tmp_path / "s.pt")
    ics = make_initial_conditions(tmp_path / "ics.nc", viscosity=1e-4)
    with pytest.raises(SurrogateMismatchError, match=r"viscosity=0.0001.*viscosity=0.001"):
        run_job(surrogate_path, ics, tmp_path / "out.zarr", InferConfig(steps=2))


def test_missing_variable_and_short_time_dim_are_named(setup, tmp_path):
    surrogate_path, ics = setup
    xr.open_dataset(ics).rename({"vorticity": "w"}).to_netcdf(tmp_path / "renamed.nc", engine="h5netcdf")
    with pytest.raises(SurrogateMismatchError, match=r"missing \['vorticity'\]"):
        run_job(surrogate_path, tmp_path / "renamed.nc", tmp_path / "a.zarr", InferConfig(steps=2))
    with pytest.raises(JobError, match=r"dim time has 3 frames; start_frame=2"):
        run_job(surrogate_path, ics, tmp_path / "b.zarr", InferConfig(steps=2, start_frame=2))


def test_nan_initial_conditions_are_named(setup, tmp_path):
    surrogate_path, ics = setup
    ds = xr.open_dataset(ics).load()
    ds["vorticity"][5, 0, 1, 1] = np.nan
    ds.to_netcdf(tmp_path / "nan.nc", engine="h5netcdf")
    with pytest.raises(JobError, match=r"variable vorticity holds NaN/inf .* samples \[5\]"):
        run_job(surrogate_path, tmp_path / "nan.nc", tmp_path / "out.zarr", InferConfig(steps=2))


def test_a_diverging_trajectory_is_reported_and_the_others_go_on(setup, tmp_path):
    surrogate_path, ics = setup
    ds = xr.open_dataset(ics).load()
    ds["vorticity"][3] = 1e30  # finite input whose rollout overflows float32
    ds.to_netcdf(tmp_path / "wild.nc", engine="h5netcdf")
    report = run_job(surrogate_path, tmp_path / "wild.nc", tmp_path / "out.zarr", InferConfig(steps=3))
    out = read(tmp_path / "out.zarr")
    diverged = out["diverged_at"].values
    assert [s for s, _ in report.diverged] == [3] and diverged[3] >= 0
    assert (np.delete(diverged, 3) == -1).all()
    assert np.isfinite(np.delete(out["vorticity"].values, 3, axis=0)).all()


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="steps"):
        InferConfig(steps=0)
    with pytest.raises(ValueError, match="start_frame"):
        InferConfig(steps=1, start_frame=-1)
