"""The steady-operator experiment (`seqlab pde train darcy_*`) on tiny synthetic Darcy-like files: it
trains on static pairs, tests at the training and a finer resolution, logs, and saves a surrogate
that reproduces the reported error; data of the wrong kind fail before training, naming the dims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from pde import metrics
from pde.data import DatasetError, open_dataset, split_by_trajectory
from pde.experiment import build_config, run_experiment
from pde.jobs import InferConfig, JobError, run_job
from pde.surrogate import Surrogate
from seqlab.config import ConfigError
from seqlab.tracking import MemoryTracker
from seqlab.train import Trainer

TINY = {"model": {"d_model": 16, "n_heads": 2, "d_head": 8, "n_layers": 1},
        "train": {"epochs": 1, "batch_size": 4, "precision": "fp32", "progress": False}}


def write_static(path, n_samples, resolution, seed=0):
    """A Darcy-like file: a 0/1 coefficient mask and a smooth solution that depends on it."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, resolution)
    coefficient = (rng.standard_normal((n_samples, resolution, resolution)) > 0).astype(np.float32)
    bump = np.outer(np.sin(np.pi * grid), np.sin(np.pi * grid)).astype(np.float32)
    solution = bump * (1.0 + coefficient.mean(axis=(1, 2), keepdims=True)) + 0.1 * coefficient
    xr.Dataset(
        {"coefficient": (("sample", "y", "x"), coefficient), "solution": (("sample", "y", "x"), solution)},
        coords={"sample": np.arange(n_samples), "y": grid, "x": grid},
        attrs={"equation": "darcy_2d", "domain_length": 1.0, "resolution": resolution, "boundary": "dirichlet",
               "source": path.name, "seqlab_version": "0.1.0"},
    ).to_netcdf(path, engine="h5netcdf")
    return path


def write_trajectories(path):
    grid = np.arange(8) / 8
    xr.Dataset(
        {"vorticity": (("sample", "time", "y", "x"), np.random.default_rng(0).standard_normal((4, 3, 8, 8)))},
        coords={"sample": np.arange(4), "time": np.arange(3.0), "y": grid, "x": grid},
        attrs={"equation": "navier_stokes_2d", "domain_length": 1.0, "resolution": 8, "dt": 1.0, "source": "test",
               "seqlab_version": "0.1.0"},
    ).to_netcdf(path, engine="h5netcdf")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("darcy")
    return (write_static(folder / "train8.nc", 12, 8), write_static(folder / "t8.nc", 5, 8, seed=1),
            write_static(folder / "t16.nc", 5, 16, seed=2))


def operator_config(files, tmp_path, **data):
    train, t8, t16 = files
    return build_config("darcy_factformer16", {**TINY, "output_dir": str(tmp_path), "data": {
        "dataset": str(train), "test_datasets": [str(t8), str(t16)], "n_val": 2, **data}})


@pytest.fixture(scope="module")
def finished(files, tmp_path_factory):
    tracker = MemoryTracker()
    return run_experiment(operator_config(files, tmp_path_factory.mktemp("run")), tracker=tracker), tracker


def test_trains_on_pairs_and_tests_at_both_resolutions(finished):
    result, tracker = finished
    assert result.fit.global_step > 0 and tracker.status == "FINISHED"
    for key in ("test/t8/rel_l2", "test/t16/rel_l2"):
        assert np.isfinite(result.test[key]) and result.test[key] > 0, key
        assert (key, result.test[key], result.fit.global_step) in tracker.metrics
    assert "surrogate/surrogate.pt" in tracker.artifacts
    assert {"plots/test_t8_fields.png", "plots/test_t16_fields.png"} <= set(tracker.figures)
    assert tracker.params["model.channels"] == 1 and tracker.params["data.input"] == "coefficient"


def test_surrogate_reproduces_the_zero_shot_error(finished, files):
    result, _ = finished
    surrogate = Surrogate.load(result.surrogate_path)
    assert surrogate.steady and surrogate.inputs == ["coefficient"] and surrogate.variables == ["solution"]
    test = open_dataset(files[2], chunks=None)
    with torch.inference_mode():
        pred = surrogate.apply(surrogate.build(), torch.from_numpy(test["coefficient"].values[:, None]))  # (B, 1, Y, X)
    truth = torch.from_numpy(test["solution"].values[:, None, None])
    error = float(metrics.relative_l2(pred[:, None], truth).mean())
    assert error == pytest.approx(result.test["test/t16/rel_l2"], rel=1e-5)


def test_each_field_is_normalized_by_its_training_statistics(finished, files):
    result, _ = finished
    surrogate = Surrogate.load(result.surrogate_path)
    ds = open_dataset(files[0], chunks=None)
    train = split_by_trajectory(ds, None, 2, 0, seed=0).train  # the run's split: 10 train, 2 validation
    assert train.sizes["sample"] == 10
    for name, mean, std in (("coefficient", surrogate.input_mean, surrogate.input_std),
                            ("solution", surrogate.mean, surrogate.std)):
        values = train[name].values.astype(np.float64)
        assert (mean[0], std[0]) == pytest.approx((values.mean(), values.std()), rel=1e-9), name


def test_a_batch_job_applies_the_operator_chunk_by_chunk_at_any_resolution(finished, files, tmp_path):
    """The job writes, per sample, what `Surrogate.apply` gives (here zero-shot at 16^2 after
    training at 8^2), in chunks marked done; its inputs need no output field."""
    import zarr

    result, _ = finished
    surrogate = Surrogate.load(result.surrogate_path)
    test = open_dataset(files[2], chunks=None)
    inputs = tmp_path / "coefficients.nc"
    test[["coefficient"]].to_netcdf(inputs, engine="h5netcdf")
    out = tmp_path / "solutions.zarr"
    report = run_job(result.surrogate_path, inputs, out, InferConfig(steps=None, chunk_size=2))
    assert (report.n_trajectories, report.steps, report.chunks_run, report.chunks_total) == (5, 1, 3, 3)
    written = xr.open_zarr(out, consolidated=False)
    assert written["solution"].dims == ("sample", "y", "x") and "time" not in written.dims
    with torch.inference_mode():
        expected = surrogate.apply(surrogate.build(), torch.from_numpy(test["coefficient"].values[:, None]))[:, 0]
    np.testing.assert_allclose(written["solution"].values, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert written["diverged_at"].values.tolist() == [-1] * 5 and report.diverged == []
    assert zarr.open_group(str(out), mode="r").attrs["operator_inputs"] == ["coefficient"]
    again = run_job(result.surrogate_path, inputs, out, InferConfig(steps=None, chunk_size=2))
    assert again.chunks_run == 0  # every chunk is marked done
    huge = test[["coefficient"]].copy(deep=True)
    huge["coefficient"][3] = 3e38  # finite input, overflowing output
    huge.to_netcdf(tmp_path / "huge.nc", engine="h5netcdf")
    report = run_job(result.surrogate_path, tmp_path / "huge.nc", tmp_path / "huge.zarr", InferConfig(steps=None))
    assert report.diverged == [(3, 0)]
    assert xr.open_zarr(tmp_path / "huge.zarr", consolidated=False)["diverged_at"].values.tolist() == [-1, -1, -1, 0, -1]


def test_a_batch_job_names_what_a_steady_operator_cannot_take(finished, files, tmp_path):
    result, _ = finished
    inputs = tmp_path / "coefficients.nc"
    open_dataset(files[1], chunks=None)[["coefficient"]].to_netcdf(inputs, engine="h5netcdf")
    with pytest.raises(JobError, match=r"steady operator \(coefficient -> solution\) is applied once"):
        run_job(result.surrogate_path, inputs, tmp_path / "a.zarr", InferConfig(steps=5))
    with pytest.raises(JobError, match=r"ns.nc: variable coefficient has dims \('sample', 'time', 'y', 'x'\); a steady "
                                       r"operator .* reads static fields \(sample, ...spatial\)"):
        ns = write_trajectories(tmp_path / "ns.nc")
        xr.open_dataset(ns).rename({"vorticity": "coefficient"}).assign_attrs(equation="darcy_2d").to_netcdf(
            tmp_path / "ns2.nc", engine="h5netcdf")
        (tmp_path / "ns2.nc").rename(tmp_path / "ns.nc")
        run_job(result.surrogate_path, tmp_path / "ns.nc", tmp_path / "b.zarr", InferConfig(steps=None))
    with pytest.raises(Exception, match=r"reads variables \['coefficient'\]; missing"):
        run_job(result.surrogate_path, write_trajectories(tmp_path / "other.nc"), tmp_path / "c.zarr",
                InferConfig(steps=None))


def test_cli_trains_a_darcy_preset(files, tmp_path, capsys):
    from seqlab.cli import main

    train, t8, t16 = files
    args = ["pde", "train", "darcy_factformer16", "--data", str(train), "--output-dir", str(tmp_path), "--no-track",
            f"data.test_datasets=[{t8}, {t16}]", "model.d_model=16", "model.n_heads=2", "model.d_head=8",
            "model.n_layers=1", "train.epochs=1", "train.batch_size=4", "train.progress=false"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "steady operator coefficient -> solution, test rel-L2: t8 " in printed and ", t16 " in printed
    assert next(tmp_path.glob("*/surrogate.pt")).is_file()
    assert main(["pde", "presets"]) == 0
    assert any(line.split() == ["darcy_fno16", "steady", "operator"] for line in capsys.readouterr().out.splitlines())


def test_the_wrong_kind_of_data_fails_before_training(files, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "fit", lambda *args, **kwargs: pytest.fail("trained on the wrong kind of data"))
    trajectories = write_trajectories(tmp_path / "ns.nc")
    with pytest.raises(DatasetError, match=r"ns.nc: a steady operator .* dims \(sample, y, x\) or \(sample, x\); "
                                           r"the file has vorticity \('sample', 'time', 'y', 'x'\)"):
        run_experiment(operator_config(files, tmp_path, dataset=str(trajectories)))
    with pytest.raises(DatasetError, match=r"ns.nc: a steady operator"):  # test files are checked as early
        run_experiment(operator_config(files, tmp_path, test_datasets=[str(files[1]), str(trajectories)]))
    static = build_config("factformer_ns_tiny", {**TINY, "output_dir": str(tmp_path),
                                                 "data": {"dataset": str(files[0])}})
    with pytest.raises(DatasetError, match=r"dims \(sample, time, \.\.\.\); found coefficient \('sample', 'y', 'x'\)"
                                           r".* set data.input and data.output"):
        run_experiment(static)


def test_config_errors_name_the_field(files, tmp_path):
    with pytest.raises(ConfigError, match="data.input and data.output go together"):
        build_config("factformer_ns_tiny", {"data": {"input": "coefficient"}})
    with pytest.raises(ConfigError, match="data.test_datasets is for steady operators"):
        build_config("factformer_ns_tiny", {"data": {"test_datasets": ["darcy_test_16"]}})
    with pytest.raises(ConfigError, match="data.rollout_steps is for trajectory experiments"):
        build_config("darcy_factformer16", {"data": {"rollout_steps": 3}})
    with pytest.raises(ConfigError, match=r"model.in_frames and model.out_frames must be 1 .* got \(2, 1\)"):
        build_config("darcy_factformer16", {"model": {"in_frames": 2}})
