"""The PDE data protocol: file round-trips, lazy reading, trajectory splits, training-only
statistics, window counts and content, parameters, the provided files, presets and the CLI,
and clear errors for bad input."""

import argparse
import os

import dask.array
import numpy as np
import pytest
import torch
import xarray as xr

from pde.cli import register
from pde.data import (
    DatasetError,
    FieldStats,
    FrameWindows,
    check_finite,
    open_dataset,
    sample_params,
    split_by_trajectory,
    validate_dataset,
    write_dataset,
)
from pde.generate import generate, load_preset, preset_names
from pde.solvers.navier_stokes import NavierStokesConfig, simulate_navier_stokes
from seqlab.datadirs import shared_data_dir
from seqlab.errors import ConfigError, SeqlabError

PROVIDED = shared_data_dir("pde")
needs_provided = pytest.mark.skipif(not PROVIDED.is_dir(), reason=f"{PROVIDED} is not present")


@pytest.fixture(scope="module")
def ns():
    """10 trajectories x 6 frames at 16^2."""
    return simulate_navier_stokes(NavierStokesConfig(resolution=16, n_samples=10, n_frames=6, dt=0.5, substeps=10))


# ------------------------------------------------------------------------------- files
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_write_then_open_round_trips_values_coords_and_attrs(ns, tmp_path, suffix):
    ds = ns.assign_attrs(wavenumbers=[1.0, 2.0, 4.0])
    path = write_dataset(ds, tmp_path / f"ns{suffix}")
    loaded = open_dataset(path).load()
    xr.testing.assert_equal(loaded, ds)
    assert set(loaded.attrs) == set(ds.attrs)
    for key, value in ds.attrs.items():
        np.testing.assert_array_equal(loaded.attrs[key], value, err_msg=key)
    assert loaded.vorticity.dtype == np.float32 and loaded.sample.dtype == np.int64


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_open_is_lazy(ns, tmp_path, suffix):
    path = write_dataset(ns, tmp_path / f"ns{suffix}")
    assert isinstance(open_dataset(path).vorticity.data, dask.array.Array)
    plain = open_dataset(path, chunks=None)  # no dask: each index reads from the file
    assert plain.vorticity.chunks is None
    np.testing.assert_array_equal(plain.vorticity[3, 2].values, ns.vorticity[3, 2].values)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_failed_write_leaves_the_old_file_and_no_debris(ns, tmp_path, suffix):
    path = write_dataset(ns, tmp_path / f"ns{suffix}")
    with pytest.raises(DatasetError, match="attr 'note'.*no None or bool"):
        write_dataset(ns.assign_attrs(note=None), path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    xr.testing.assert_equal(open_dataset(path).load(), ns)
    write_dataset(ns.isel(sample=slice(0, 2)), path)  # overwriting replaces the whole store
    assert open_dataset(path).sizes["sample"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_unknown_format_and_missing_file_are_named(ns, tmp_path):
    with pytest.raises(DatasetError, match=r"\.h5.*\.nc.*\.zarr"):
        write_dataset(ns, tmp_path / "ns.h5")
    with pytest.raises(DatasetError, match="'nowhere' not found"):
        open_dataset("nowhere", data_dir=tmp_path)


def test_a_name_is_found_in_the_data_dir_setting(ns, tmp_path, monkeypatch):
    write_dataset(ns, tmp_path / "pde" / "mine.zarr")
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path))
    assert open_dataset("mine").sizes["sample"] == 10


# -------------------------------------------------------------------------- validation
def test_missing_variable_dim_coordinate_and_attr_are_named(ns):
    with pytest.raises(DatasetError, match="no variable 'vorticity'"):
        validate_dataset(ns.rename(vorticity="w"))
    with pytest.raises(DatasetError, match="no variable 'pressure'"):
        validate_dataset(ns, ["pressure"])
    with pytest.raises(DatasetError, match="'vorticity' has no dim 'time'"):
        validate_dataset(ns.isel(time=0))
    with pytest.raises(DatasetError, match="dims .*'x', 'y'.*in this order"):
        validate_dataset(ns.transpose("sample", "time", "x", "y"))
    with pytest.raises(DatasetError, match="no coordinate 'x'"):
        validate_dataset(ns.drop_vars("x"))
    with pytest.raises(DatasetError, match="missing attr 'equation'"):
        validate_dataset(ns.drop_attrs())


def test_nan_input_is_named_with_its_variable_sample_and_time(ns):
    bad = ns.copy(deep=True)
    bad["vorticity"][4, 3, 2, 2] = np.nan
    with pytest.raises(DatasetError, match=r"'vorticity' holds NaN.*sample 4, time 2\.5"):
        check_finite(bad)
    check_finite(ns)
    windows = FrameWindows(bad, ["vorticity"], 2, 1)
    windows[0]  # other trajectories still load
    with pytest.raises(DatasetError, match=r"'vorticity' holds NaN or inf at sample 4, frame 3"):
        windows[4 * windows.windows_per_trajectory + 2]


# ------------------------------------------------------------------------------ splits
def test_split_is_by_trajectory_disjoint_complete_and_seeded(ns):
    splits = split_by_trajectory(ns, fractions=(0.6, 0.2, 0.2), seed=3)
    ids = [set(s.sample.values.tolist()) for s in splits]
    assert [len(i) for i in ids] == [6, 2, 2]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(range(10))
    assert all(s.sizes["time"] == ns.sizes["time"] for s in splits)  # every frame stays with its trajectory
    again = split_by_trajectory(ns, fractions=(0.6, 0.2, 0.2), seed=3)
    assert [s.sample.values.tolist() for s in again] == [sorted(i) for i in ids]
    other = split_by_trajectory(ns, fractions=(0.6, 0.2, 0.2), seed=4)
    assert other.train.sample.values.tolist() != splits.train.sample.values.tolist()


def test_split_by_counts_and_its_errors(ns):
    splits = split_by_trajectory(ns, n_train=5, n_test=3)
    assert [s.sizes["sample"] for s in splits] == [5, 0, 3]
    assert [s.sizes["sample"] for s in split_by_trajectory(ns, n_train=7)] == [7, 0, 3]
    with pytest.raises(DatasetError, match="exceeds the 10 trajectories"):
        split_by_trajectory(ns, n_train=8, n_val=2, n_test=1)
    with pytest.raises(DatasetError, match="summing to 1"):
        split_by_trajectory(ns, fractions=(0.5, 0.1, 0.1))


# ------------------------------------------------------------------------------- stats
def test_stats_come_from_the_training_split_only(ns):
    splits = split_by_trajectory(ns, fractions=(0.6, 0.2, 0.2), seed=0)
    stats = FieldStats.fit(splits.train, ["vorticity"])
    train_values = ns.vorticity.sel(sample=splits.train.sample).values.astype(np.float64)
    np.testing.assert_allclose(stats.mean, [train_values.mean()], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.std, [train_values.std()], rtol=1e-9)
    # Blow up the val/test trajectories: the same split's statistics must not move.
    held_out = np.concatenate([splits.val.sample.values, splits.test.sample.values])
    changed = ns.copy(deep=True)
    changed["vorticity"].loc[{"sample": held_out}] = changed.vorticity.sel(sample=held_out) * 100 + 7
    changed_splits = split_by_trajectory(changed, fractions=(0.6, 0.2, 0.2), seed=0)
    assert FieldStats.fit(changed_splits.train, ["vorticity"]) == stats
    assert FieldStats.fit(changed, ["vorticity"]) != stats  # the test can fail


def test_stats_round_trip_through_a_dict_and_invert(ns):
    stats = FieldStats.fit(ns, ["vorticity"])
    assert FieldStats.from_dict(stats.to_dict()) == stats
    x = torch.randn(2, 3, 1, 16, 16)  # (B, T, C, Y, X)
    torch.testing.assert_close(stats.denormalize(stats.normalize(x)), x)
    with pytest.raises(DatasetError, match="2 channels"):
        stats.normalize(torch.randn(2, 3, 2, 16, 16))
    with pytest.raises(DatasetError, match="variables, mean, std"):
        FieldStats.from_dict({"variables": ["u"]})


def test_stats_of_non_finite_or_constant_data_are_errors(ns):
    bad = ns.copy(deep=True)
    bad["vorticity"][1, 0, 0, 0] = np.inf
    with pytest.raises(DatasetError, match="'vorticity' holds NaN or inf"):
        FieldStats.fit(bad, ["vorticity"])
    with pytest.raises(DatasetError, match="'vorticity' is constant"):
        FieldStats.fit(ns * 0 + 1.0, ["vorticity"])


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize(("in_frames", "out_frames", "stride", "per_trajectory"),
                         [(1, 1, 1, 5), (2, 3, 1, 2), (3, 3, 1, 1), (1, 1, 2, 3), (2, 1, 3, 2)])
def test_window_counts(ns, in_frames, out_frames, stride, per_trajectory):
    windows = FrameWindows(ns, ["vorticity"], in_frames, out_frames, stride=stride)
    if stride == 1:
        assert per_trajectory == ns.sizes["time"] - in_frames - out_frames + 1
    assert windows.windows_per_trajectory == per_trajectory
    assert len(windows) == 10 * per_trajectory
    assert len({windows.locate(i) for i in range(len(windows))}) == len(windows)


def test_window_content_is_the_normalized_frames(ns):
    stats = FieldStats.fit(ns, ["vorticity"])
    windows = FrameWindows(ns, ["vorticity"], 2, 3, stats)
    x, y = windows[7]  # trajectory 3, start frame 1
    assert x.shape == (2, 1, 16, 16) and y.shape == (3, 1, 16, 16) and x.dtype == torch.float32
    raw = torch.from_numpy(ns.vorticity.values[3, 1:6, None])
    torch.testing.assert_close(stats.denormalize(torch.cat([x, y]), channel_dim=1), raw, atol=1e-6, rtol=1e-5)
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=4)))
    assert [t.shape for t in batch] == [(4, 2, 1, 16, 16), (4, 3, 1, 16, 16)]


def test_windows_read_lazy_files_and_several_channels(tmp_path):
    from pde.solvers.diffusion_reaction import DiffusionReactionConfig, simulate_diffusion_reaction

    ds = simulate_diffusion_reaction(DiffusionReactionConfig(resolution=8, n_samples=2, n_frames=4, dt=0.1))
    path = write_dataset(ds, tmp_path / "dr.nc")
    windows = FrameWindows(open_dataset(path, chunks=None), ["v", "u"], 1, 2)
    x, y = windows[1]
    assert x.shape == (1, 2, 8, 8)
    np.testing.assert_array_equal(y[:, 0].numpy(), ds.v.values[0, 2:4])  # channels in the order asked
    np.testing.assert_array_equal(y[:, 1].numpy(), ds.u.values[0, 2:4])


def test_window_errors_name_what_is_wrong(ns):
    with pytest.raises(DatasetError, match="dim 'time' has 6 frames.*7"):
        FrameWindows(ns, ["vorticity"], 4, 3)
    with pytest.raises(DatasetError, match="in_frames must be >= 1"):
        FrameWindows(ns, ["vorticity"], 0, 1)
    with pytest.raises(DatasetError, match="stats are for variables"):
        FrameWindows(ns, ["vorticity"], 1, 1, FieldStats(("u",), (0.0,), (1.0,)))


def test_params_come_from_attrs_or_per_sample_variables(ns):
    np.testing.assert_allclose(sample_params(ns, ["viscosity"]), np.full((10, 1), 1e-3, np.float32))
    mixed = ns.assign(viscosity=("sample", np.linspace(1e-3, 1e-2, 10)))
    windows = FrameWindows(mixed, ["vorticity"], 1, 1, params=("viscosity", "forcing_amplitude"))
    x, y, p = windows[windows.windows_per_trajectory * 9]
    torch.testing.assert_close(p, torch.tensor([1e-2, 0.1]))
    with pytest.raises(DatasetError, match="parameter 'reynolds'"):
        sample_params(ns, ["reynolds"])


# ------------------------------------------------------------------- presets and CLI
def test_every_preset_loads():
    names = preset_names()
    assert {"ns_nu1e-3_64", "ns_tiny", "kolmogorov_64", "burgers_256", "ks_256", "kdv_256",
            "diffusion_reaction_64"} <= set(names)
    for name in names:
        solver, cfg = load_preset(name)
        assert cfg.n_samples >= 1, (name, solver)
    assert load_preset("ns_nu1e-3_64")[1] == NavierStokesConfig(n_samples=1200)  # the preset is FNO's case


def test_generate_is_seeded_and_records_the_preset(tmp_path):
    a = generate("ns_tiny", tmp_path / "a.nc", ["n_samples=2", "n_frames=3"])
    b = generate("ns_tiny", tmp_path / "b.zarr", {"n_samples": 2, "n_frames": 3})
    da, db = open_dataset(a), open_dataset(b)
    np.testing.assert_array_equal(da.vorticity.values, db.vorticity.values)
    assert da.attrs["preset"] == "ns_tiny" and da.attrs["solver_seconds"] > 0
    assert "n_samples: 2" in da.attrs["config"]


def test_unknown_preset_and_bad_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'ns_huge'.*ns_tiny"):
        generate("ns_huge", tmp_path / "x.nc")
    with pytest.raises(ConfigError, match="viscosity"):
        generate("ns_tiny", tmp_path / "x.nc", ["viscosity=-1"])
    with pytest.raises(ConfigError, match="unknown config key 'viscocity'"):
        generate("ns_tiny", tmp_path / "x.nc", ["viscocity=1e-3"])
    with pytest.raises(ConfigError, match=r"\.nc.*\.zarr"):
        generate("ns_tiny", tmp_path / "x.csv")
    bad = tmp_path / "bad.yaml"
    bad.write_text("solver: lattice_boltzmann\nresolution: 8\n")
    with pytest.raises(SeqlabError, match="unknown PDE solver 'lattice_boltzmann'"):
        generate(bad, tmp_path / "x.nc")
    assert not any(p.suffix in (".nc", ".zarr") for p in tmp_path.iterdir())


def cli(argv):
    parser = argparse.ArgumentParser(prog="seqlab")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_generate_takes_overrides_after_the_flags(tmp_path, capsys):
    out = tmp_path / "tiny.nc"
    assert cli(["pde", "generate", "ns_tiny", "--out", str(out), "n_samples=2", "n_frames=3"]) == 0
    assert open_dataset(out).vorticity.shape == (2, 3, 32, 32)
    assert "wrote" in capsys.readouterr().out
    assert cli(["pde", "presets"]) == 0
    assert "ns_nu1e-3_64" in capsys.readouterr().out


# ------------------------------------------------------------------- provided files
@needs_provided
@pytest.mark.parametrize(("name", "variables", "shape"), [
    ("darcy_train_16", ("coefficient", "solution"), (1000, 16, 16)),
    ("darcy_test_32", ("coefficient", "solution"), (50, 32, 32)),
    ("burgers_lowres", ("u",), (1200, 17, 16)),
    ("AC", ("u",), (1, 201, 512)),
    ("KS", ("u",), (1, 201, 512)),
    ("KdV", ("u",), (1, 201, 512)),
    ("NLS", ("u", "v"), (1, 201, 256)),
    ("burgers_shock", ("u",), (1, 100, 256)),
])
def test_provided_files_load_into_the_layout(name, variables, shape):
    ds = open_dataset(name)
    assert tuple(ds.data_vars) == variables
    for var in variables:
        assert ds[var].shape == shape and ds[var].dtype == np.float32
    validate_dataset(ds)
    check_finite(ds)
    assert ds.attrs["source"].startswith(name) and ds.attrs["resolution"] == shape[-1]


@needs_provided
def test_provided_files_keep_their_values():
    darcy = torch.load(PROVIDED / "neuraloperator" / "darcy_test_16.pt", weights_only=True)
    ds = open_dataset("darcy_test_16").load()
    np.testing.assert_array_equal(ds.solution.values, darcy["y"].numpy())
    np.testing.assert_array_equal(ds.coefficient.values, darcy["x"].float().numpy())
    burgers = open_dataset("burgers_lowres")
    assert burgers.attrs["viscosity"] == pytest.approx(0.01) and burgers.time.values[-1] == 1.0
    ks = open_dataset(PROVIDED / "pinns" / "KS.mat")
    assert ks.attrs["domain_length"] == pytest.approx(2.0) and ks.x.values[-1] < 1.0  # x = 1 repeats x = -1
    windows = FrameWindows(burgers, ["u"], 1, 16)
    assert len(windows) == 1200


def test_data_dir_rules_reach_pde(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", os.fspath(tmp_path))
    with pytest.raises(DatasetError, match=str(tmp_path)):
        open_dataset("absent_dataset")


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_generates_finite_data(preset, tmp_path):
    path = generate(preset, tmp_path / f"{preset}.nc", ["n_samples=2", "n_frames=3"])
    ds = open_dataset(path)
    check_finite(ds)
    assert ds.sizes["sample"] == 2 and ds.sizes["time"] == 3
