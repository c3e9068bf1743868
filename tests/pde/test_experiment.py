"""The PDE experiment end to end on a tiny generated Navier-Stokes set: it trains, tests by rollout,
logs, and leaves a surrogate that a batch job turns into the same forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pde.data import DatasetError
from pde.experiment import PRESET_DIR, build_config, load_data, run_experiment
from pde.jobs import InferConfig, run_job
from pde.models import MODELS
from pde.surrogate import Surrogate
from seqlab.config import ConfigError
from seqlab.tracking import MemoryTracker
from seqlab.train import Trainer

TINY = {
    "model": {"d_model": 16, "n_heads": 2, "d_head": 8, "n_layers": 1},
    "data": {"n_train": 6, "n_val": 1, "n_test": 1, "rollout_steps": 4},
    "train": {"epochs": 1, "precision": "fp32", "progress": False},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("pde-run")
    cfg = build_config("factformer_ns_tiny", {**TINY, "output_dir": str(out)})
    tracker = MemoryTracker()
    return run_experiment(cfg, tracker=tracker), tracker


def test_run_trains_tests_by_rollout_and_logs(finished):
    result, tracker = finished
    assert result.fit.global_step > 0 and tracker.status == "FINISHED"
    for key in ("test/nrmse_t1", "test/nrmse_last", "test/rel_l2", "test/vrmse", "test/correlation_time"):
        assert np.isfinite(result.test[key]), key
    assert result.test["test/rollout_steps"] == 4
    assert "surrogate/surrogate.pt" in tracker.artifacts
    assert {"plots/fields.png", "plots/error_vs_time.png"} <= set(tracker.figures)
    assert tracker.params["model.channels"] == 1 and tracker.params["data.equation"] == "navier_stokes_2d"


def test_split_is_by_trajectory_and_stats_come_from_training_trajectories(finished):
    result, _ = finished
    data = load_data(result.config)
    test_samples = set(data.test["sample"].values.tolist())
    assert test_samples.isdisjoint(data.train.samples.tolist())
    ds = xr.open_dataset(data.path, engine="h5netcdf")
    train = ds["vorticity"].sel(sample=data.train.samples)
    assert data.stats.mean[0] == pytest.approx(float(train.astype("float64").mean()), rel=1e-9)


def test_surrogate_job_reproduces_the_tested_rollout(finished, tmp_path):
    result, _ = finished
    data = load_data(result.config)
    ics = tmp_path / "ics.nc"
    data.test.to_netcdf(ics, engine="h5netcdf")
    run_job(result.surrogate_path, ics, tmp_path / "out.zarr", InferConfig(steps=4))
    out = xr.open_zarr(tmp_path / "out.zarr", consolidated=False)["vorticity"].values
    truth = data.test["vorticity"].values[:, 2:6]
    error = np.linalg.norm(out - truth) / np.linalg.norm(truth)
    assert error == pytest.approx(result.test["test/rel_l2"], rel=1e-4)


def test_every_experiment_preset_builds():
    import importlib.util

    for path in sorted(PRESET_DIR.glob("*.yaml")):
        if "fno" in path.stem and importlib.util.find_spec("neuralop") is None:
            continue  # the FNO peer comes with the bench extra
        cfg = build_config(path)
        assert cfg.model_name in MODELS, path.name
        assert isinstance(cfg.model, MODELS.get(cfg.model_name).config_class)
        if cfg.train.epochs == 1 and cfg.train.max_steps:  # one epoch: --resume needs checkpoints inside it
            assert cfg.train.checkpoint_every and cfg.train.checkpoint_every < cfg.train.max_steps, path.name


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.channels is taken from the data"):
        build_config("factformer_ns_tiny", {"model": {"channels": 3}})
    with pytest.raises(ConfigError, match="unknown PDE experiment 'nope'"):
        build_config("nope")
    with pytest.raises(ConfigError, match="data.rollout_steps"):
        build_config("factformer_ns_tiny", {"data": {"rollout_steps": 0}})


def test_cli_trains_then_infers_with_the_surrogate(tmp_path, capsys):
    from seqlab.cli import main

    overrides = ["model.d_model=16", "model.n_heads=2", "model.d_head=8", "model.n_layers=1", "train.epochs=1",
                 "data.rollout_steps=3", "train.progress=false"]
    assert main(["pde", "train", "factformer_ns_tiny", "--output-dir", str(tmp_path), "--no-track", *overrides]) == 0
    assert "surrogate:" in capsys.readouterr().out
    surrogate = next(tmp_path.glob("*/surrogate.pt"))
    ics = tmp_path / "data" / "ns_tiny.nc"
    assert main(["pde", "infer", str(surrogate.parent), str(ics), str(tmp_path / "out.zarr"), "--steps", "3",
                 "--chunk-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "8 samples x 3 steps (2 of 2 chunks this run)" in printed
    assert "the solver that made the input took" in printed  # the speed-up over the generating solver
    assert xr.open_zarr(tmp_path / "out.zarr", consolidated=False)["vorticity"].shape == (8, 3, 32, 32)


def test_push_forward_training_gets_windows_long_enough(tmp_path):
    overrides = {**TINY, "output_dir": str(tmp_path), "tracking": {"enabled": False},
                 "task": {"pushforward_after": 0, "pushforward_every": 1, "pushforward_steps": 2}}
    result = run_experiment(build_config("factformer_ns_tiny", overrides))
    assert result.fit.global_step > 0 and np.isfinite(result.test["test/rel_l2"])


def test_a_too_long_test_rollout_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "fit", lambda *args, **kwargs: pytest.fail("trained before checking rollout_steps"))
    overrides = {**TINY, "data": {**TINY["data"], "rollout_steps": 50}, "output_dir": str(tmp_path),
                 "tracking": {"enabled": False}}
    with pytest.raises(DatasetError, match=r"ns_tiny.nc: test trajectories have 12 frames; in_frames \+ "
                                           r"rollout_steps = 52"):
        run_experiment(build_config("factformer_ns_tiny", overrides))


def test_a_parameter_conditioned_surrogate_runs_as_a_batch_job(finished, tmp_path):
    result, _ = finished
    dataset = result.run_dir.parent / "data" / "ns_tiny.nc"
    cfg = build_config("pde_transformer_ns64", {
        "model": {"hidden_size": 8, "n_heads": 2, "depths": [1, 1, 1], "patch_size": 2, "window_size": 2},
        "data": {"dataset": str(dataset), "params": ["viscosity"], "n_train": 6, "n_test": 2, "rollout_steps": 3},
        "train": {"max_steps": 2, "warmup_steps": 0, "precision": "fp32", "progress": False},
        "tracking": {"enabled": False}, "output_dir": str(tmp_path)})
    trained = run_experiment(cfg)
    surrogate = Surrogate.load(trained.surrogate_path)
    assert surrogate.params == ["viscosity"] and "viscosity" not in surrogate.physics  # an input, not fixed physics
    test = load_data(trained.config).test
    test.attrs["viscosity"] = 2 * test.attrs["viscosity"]  # another flow of the family: accepted
    test.to_netcdf(tmp_path / "ics.nc", engine="h5netcdf")
    run_job(trained.surrogate_path, tmp_path / "ics.nc", tmp_path / "out.zarr", InferConfig(steps=3))
    out = xr.open_zarr(tmp_path / "out.zarr", consolidated=False)["vorticity"].values
    model = surrogate.build()
    initial = torch.from_numpy(test["vorticity"].values[:, :1, None])
    expected, _ = surrogate.rollout(model, initial, 3, torch.full((2, 1), float(test.attrs["viscosity"])))
    np.testing.assert_allclose(out, expected[:, :, 0].numpy(), rtol=1e-5, atol=1e-5)
