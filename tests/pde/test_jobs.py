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
from pde.rollout import rollout
from pde.surrogate import Surrogate, SurrogateMismatchError, resolve_surrogate
from seqlab.errors import SeqlabError
from seqlab.train.checkpoint import load_checkpoint, save_checkpoint

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
    with pytest.raises(JobError, match=r"advances trajectories: give the number of steps"):
        run_job(surrogate_path, ics, tmp_path / "c.zarr", InferConfig(steps=None))
    assert not (tmp_path / "c.zarr").exists()  # refused before anything is written


def test_nan_initial_conditions_are_named(setup, tmp_path):
    surrogate_path, ics = setup
    ds = xr.open_dataset(ics).load()
    ds["vorticity"][5, 0, 1, 1] = np.nan
    ds.to_netcdf(tmp_path / "nan.nc", engine="h5netcdf")
    with pytest.raises(JobError, match=r"variable vorticity holds NaN/inf .* samples \[5\]"):
        run_job(surrogate_path, tmp_path / "nan.nc", tmp_path / "out.zarr", InferConfig(steps=2))


def test_a_diverging_trajectory_is_reported_by_its_sample_label_and_the_rest_go_on(setup, tmp_path, caplog, capsys):
    from seqlab.cli import main

    surrogate_path, ics = setup
    ds = xr.open_dataset(ics).load().assign_coords(sample=np.arange(100, 100 + N_SAMPLES))  # labels, not positions
    ds["vorticity"][3] = 1e30  # finite input whose rollout overflows float32
    ds.to_netcdf(tmp_path / "wild.nc", engine="h5netcdf")
    with caplog.at_level("WARNING", logger="pde.jobs"):
        report = run_job(surrogate_path, tmp_path / "wild.nc", tmp_path / "out.zarr",
                         InferConfig(steps=3, chunk_size=2))
    out = read(tmp_path / "out.zarr")
    diverged = out["diverged_at"].values  # by position in the store, as before
    step = int(diverged[3])
    assert step >= 0 and report.diverged == [(103, step)]
    assert f"sample 103 diverged (NaN/inf) at step {step}" in caplog.text
    assert (np.delete(diverged, 3) == -1).all() and out["sample"].values.tolist() == list(range(100, 107))
    assert np.isfinite(np.delete(out["vorticity"].values, 3, axis=0)).all()
    assert main(["pde", "infer", str(surrogate_path), str(tmp_path / "wild.nc"), str(tmp_path / "cli.zarr"),
                 "--steps", "3"]) == 0
    assert f"sample 103 diverged at step {step}" in capsys.readouterr().out


def conditioned_surrogate(path):
    """A PDE-Transformer conditioned on one parameter, its zero-initialized conditioning made live
    (as training would), saved as a surrogate that reads `viscosity` per sample."""
    config = {"in_frames": 1, "out_frames": 1, "channels": 1, "n_param": 1, "hidden_size": 8, "n_heads": 2,
              "depths": [2, 1, 2], "patch_size": 2, "window_size": 2}
    torch.manual_seed(0)
    model = build_model("pde_transformer", config).eval()
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(0.1 * torch.randn_like(weight))
    physics = {k: v for k, v in PHYSICS.items() if k != "viscosity"}  # a parameter, not fixed physics
    Surrogate("pde_transformer", config, model.state_dict(), ["vorticity"], [0.1], [2.0], physics,
              params=["viscosity"]).save(path)
    return model


def test_a_parameter_conditioned_surrogate_reads_each_samples_parameters(tmp_path):
    model = conditioned_surrogate(tmp_path / "s.pt")
    ds = xr.open_dataset(make_initial_conditions(tmp_path / "ics.nc")).load()
    del ds.attrs["viscosity"]
    viscosity = np.linspace(1e-3, 1e-2, N_SAMPLES, dtype=np.float32)
    ds["viscosity"] = ("sample", viscosity)
    ds.to_netcdf(tmp_path / "params.nc", engine="h5netcdf")
    run_job(tmp_path / "s.pt", tmp_path / "params.nc", tmp_path / "out.zarr", InferConfig(steps=2, chunk_size=3))
    out = read(tmp_path / "out.zarr")["vorticity"].values

    initial = (torch.from_numpy(ds["vorticity"].values[:, :1, None]) - 0.1) / 2.0  # (B, 1, 1, Y, X) normalized
    params = torch.from_numpy(viscosity)[:, None]  # (B, 1)
    expected = rollout(model, initial, 2, params).frames * 2.0 + 0.1
    # float32 kernels round differently for chunks of 3 than for all 7 samples: ~1e-5 of the field's range
    np.testing.assert_allclose(out, expected[:, :, 0].numpy(), rtol=1e-4, atol=1e-3)
    others = rollout(model, initial, 2, params.flip(0)).frames * 2.0 + 0.1  # another sample's parameters
    assert np.abs(out - others[:, :, 0].numpy()).max() > 0.1

    ds.drop_vars("viscosity").to_netcdf(tmp_path / "no_params.nc", engine="h5netcdf")
    with pytest.raises(JobError, match=r"no_params.nc: parameter 'viscosity' is neither .* "
                                       r"data.params=\['viscosity'\]"):
        run_job(tmp_path / "s.pt", tmp_path / "no_params.nc", tmp_path / "b.zarr", InferConfig(steps=2))


def test_a_surrogate_file_without_the_newer_keys_still_loads(setup, tmp_path):
    surrogate_path, _ = setup
    state = load_checkpoint(surrogate_path)
    for key in ("params", "inputs", "input_mean", "input_std"):
        del state[key]
    save_checkpoint(state, tmp_path / "old.pt")
    old = Surrogate.load(tmp_path / "old.pt")
    assert old.params == [] and not old.steady and old.variables == ["vorticity"]


def test_malformed_mlflow_uris_name_the_uri_and_the_expected_forms():
    forms = r"runs:/<run id>/<artifact path>, models:/<name>/<version or @alias>, or a surrogate.pt path"
    for uri in ("runs:/", "runs:/nope/surrogate", "models:/x"):
        with pytest.raises(SeqlabError, match=rf"'{uri}' from MLflow \(.+\); expected {forms}"):
            resolve_surrogate(uri)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="steps"):
        InferConfig(steps=0)
    with pytest.raises(ValueError, match="start_frame"):
        InferConfig(steps=1, start_frame=-1)
