"""Episode layout, D4RL / Minari / kzl-pickle readers and writers, and their errors."""

from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pytest

from rl.data import (
    DatasetError,
    EnvError,
    Episode,
    EpisodeDataset,
    check_env_compat,
    load_dataset,
    make_env,
    make_episode,
)
from rl.formats.d4rl import read_d4rl, write_d4rl
from rl.formats.kzl import read_kzl_pickle
from rl.formats.minari import read_minari, write_minari

ENV = "InvertedPendulum-v5"  # S=4, A=1
S, A = 4, 1


def episode(rng: np.random.Generator, length: int, end: str, infos: bool = True) -> Episode:
    """An episode ending in a termination ('term'), a truncation ('trunc') or both."""
    terms = np.zeros(length, bool)
    truncs = np.zeros(length, bool)
    terms[-1] = end in ("term", "both")
    truncs[-1] = end in ("trunc", "both")
    return Episode(
        observations=rng.normal(size=(length, S)).astype(np.float32),
        actions=rng.uniform(-3, 3, size=(length, A)).astype(np.float32),
        rewards=rng.normal(size=length).astype(np.float32),
        terminations=terms,
        truncations=truncs,
        final_observation=rng.normal(size=S).astype(np.float32),
        infos={"action_log_probs": rng.normal(size=length).astype(np.float32)} if infos else {},
    )


@pytest.fixture
def dataset() -> EpisodeDataset:
    rng = np.random.default_rng(0)
    episodes = [episode(rng, 5, "term"), episode(rng, 7, "trunc"), episode(rng, 1, "term"), episode(rng, 4, "both")]
    metadata = {"seed": 3, "behaviour_policy": "random", "ref_min_score": -1.5, "versions/gymnasium": "1.4.0"}
    return EpisodeDataset(episodes, ENV, metadata)


def assert_same_episodes(a: EpisodeDataset, b: EpisodeDataset, infos: bool = True) -> None:
    assert len(a.episodes) == len(b.episodes)
    for x, y in zip(a.episodes, b.episodes):
        for key in ("observations", "actions", "rewards", "terminations", "truncations", "final_observation"):
            np.testing.assert_array_equal(getattr(x, key), getattr(y, key), err_msg=key)
        assert getattr(y, "observations").dtype == np.float32
        if infos:
            assert x.infos.keys() == y.infos.keys()
            for key in x.infos:
                np.testing.assert_array_equal(x.infos[key], y.infos[key])


# --- D4RL ---------------------------------------------------------------------------------------


def test_d4rl_round_trip_keeps_episodes_flags_and_metadata(dataset, tmp_path):
    path = write_d4rl(dataset, tmp_path / "pend-random.hdf5")
    back = read_d4rl(path)
    assert_same_episodes(dataset, back)
    assert back.env_id == ENV
    assert [bool(ep.terminations[-1]) for ep in back.episodes] == [True, False, True, True]
    assert [bool(ep.truncations[-1]) for ep in back.episodes] == [False, True, False, True]
    for key, value in dataset.metadata.items():
        assert back.metadata[key] == value
    assert back.metadata["source"] == str(path)


def test_d4rl_writer_uses_the_flat_d4rl_layout(dataset, tmp_path):
    path = write_d4rl(dataset, tmp_path / "x.hdf5")
    n = dataset.n_steps
    with h5py.File(path) as f:
        assert f["observations"].shape == (n, S) and f["observations"].dtype == np.float32
        assert f["actions"].shape == (n, A)
        assert f["rewards"].shape == (n,)
        assert f["terminals"].dtype == bool and f["timeouts"].dtype == bool
        assert f["next_observations"].shape == (n, S)
        assert f["infos/action_log_probs"].shape == (n,)
        assert f["metadata/env_id"][()].decode() == ENV
        # next_observations[t] is observations[t+1] inside an episode and the final observation at its end
        np.testing.assert_array_equal(f["next_observations"][:4], f["observations"][1:5])
        np.testing.assert_array_equal(f["next_observations"][4], dataset.episodes[0].final_observation)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


def write_flat(path, n=10, **overrides):
    """A file laid out the way D4RL's gym-mujoco v2 files are (rewards (N, 1), policy weights)."""
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(n, S)).astype(np.float32)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[2] = True
    timeouts[6] = True
    arrays = {
        "observations": obs,
        "next_observations": rng.normal(size=(n, S)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, A)).astype(np.float32),
        "rewards": rng.normal(size=(n, 1)).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "infos/qpos": rng.normal(size=(n, 2)),
        "metadata/algorithm": b"SAC",
        "metadata/iteration": 1000,
        "metadata/policy/fc0/weight": rng.normal(size=(8, S)),
    }
    arrays.update(overrides)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value is not None:
                f[key] = value
    return arrays


def test_hand_built_d4rl_file_splits_on_terminals_and_timeouts(tmp_path):
    path = tmp_path / "hopper_medium-v2.hdf5"
    arrays = write_flat(path)
    ds = load_dataset(path, env_id=ENV)
    assert [len(ep) for ep in ds.episodes] == [3, 4, 3]  # ends at 2 (terminal), 6 (timeout), then the rest
    first, second, tail = ds.episodes
    assert first.terminations[-1] and not first.truncations[-1]
    assert second.truncations[-1] and not second.terminations[-1]
    assert tail.truncations[-1] and not tail.terminations[-1]  # data ran out: kept, truncated
    np.testing.assert_array_equal(second.observations, arrays["observations"][3:7])
    np.testing.assert_array_equal(second.rewards, arrays["rewards"][3:7, 0])
    np.testing.assert_array_equal(second.final_observation, arrays["next_observations"][6])
    np.testing.assert_array_equal(tail.infos["qpos"], arrays["infos/qpos"][7:])
    assert ds.metadata["algorithm"] == "SAC" and ds.metadata["iteration"] == 1000
    assert "policy/fc0/weight" not in ds.metadata  # arrays (policy weights) are not metadata
    assert ds.metadata["dataset_name"] == "hopper_medium-v2"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"timeouts": None}, "'timeouts'"),
        ({"actions": np.zeros((9, A), np.float32)}, "'actions' has 9 rows"),
        ({"next_observations": np.zeros((10, S + 1), np.float32)}, "'next_observations'"),
        ({"infos/qpos": np.zeros((8, 2))}, "'infos/qpos' has 8 rows"),
        ({"rewards": np.zeros((10, 2), np.float32)}, "'rewards' has shape (10, 2)"),
    ],
)
def test_malformed_d4rl_files_name_the_file_and_key(tmp_path, overrides, expected):
    path = tmp_path / "bad.hdf5"
    write_flat(path, **overrides)
    with pytest.raises(DatasetError) as err:
        load_dataset(path, env_id=ENV)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_nan_names_the_episode_and_key(dataset, tmp_path):
    dataset.episodes[1].observations[3, 2] = np.nan
    path = tmp_path / "nan.hdf5"
    with h5py.File(path, "w") as f:  # written by hand: the writer itself refuses NaNs
        f["observations"] = np.concatenate([ep.observations for ep in dataset.episodes])
        f["actions"] = np.concatenate([ep.actions for ep in dataset.episodes])
        f["rewards"] = np.concatenate([ep.rewards for ep in dataset.episodes])
        f["terminals"] = np.concatenate([ep.terminations for ep in dataset.episodes])
        f["timeouts"] = np.concatenate([ep.truncations for ep in dataset.episodes])
    with pytest.raises(DatasetError, match=r"nan\.hdf5: episode 1: key 'observations' holds NaN or inf \(first at step 3\)"):
        load_dataset(path, env_id=ENV)
    with pytest.raises(DatasetError, match="episode 1"):
        write_d4rl(dataset, tmp_path / "out.hdf5")


def test_not_an_hdf5_file_is_a_dataset_error(tmp_path):
    path = tmp_path / "junk.hdf5"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match="junk.hdf5: not a readable HDF5 file"):
        load_dataset(path, env_id=ENV)


def test_env_id_must_match_the_recorded_one_or_be_given(dataset, tmp_path):
    path = write_d4rl(dataset, tmp_path / "x.hdf5")
    with pytest.raises(DatasetError, match=r"x\.hdf5 was collected on env 'InvertedPendulum-v5', but env 'Hopper-v5'"):
        load_dataset(path, env_id="Hopper-v5")
    write_flat(tmp_path / "flat.hdf5")
    with pytest.raises(DatasetError, match=r"flat\.hdf5 does not record its env id; pass env_id"):
        load_dataset(tmp_path / "flat.hdf5")


# --- env compatibility --------------------------------------------------------------------------


def test_env_compat_checks_observation_and_action_dims(dataset):
    check_env_compat(dataset, ENV)
    with pytest.raises(DatasetError, match=r"'observations' has dimension 4, but env 'Hopper-v5' expects 11"):
        check_env_compat(dataset, "Hopper-v5")
    dataset.metadata["source"] = "pend.hdf5"
    env = make_env("Pendulum-v1")  # S=3: fails on observations first
    with pytest.raises(DatasetError, match=r"pend\.hdf5: key 'observations'"):
        check_env_compat(dataset, env)


def test_load_dataset_checks_the_env_shapes(tmp_path):
    write_flat(tmp_path / "f.hdf5")
    with pytest.raises(DatasetError, match=r"f\.hdf5: key 'observations' has dimension 4, but env 'Hopper-v5'"):
        load_dataset(tmp_path / "f.hdf5", env_id="Hopper-v5")


def test_unknown_env_id_names_the_id():
    with pytest.raises(EnvError, match="gymnasium does not know env id 'NoSuchEnv-v9'"):
        make_env("NoSuchEnv-v9")
    with pytest.raises(EnvError, match="'HalfCheetah-v99'"):
        make_env("HalfCheetah-v99")


# --- Minari -------------------------------------------------------------------------------------


def test_minari_round_trip_with_minaris_own_reader(dataset, tmp_path, monkeypatch):
    import minari

    target = write_minari(dataset, "seqlab/pendulum/test-v0", tmp_path / "minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    theirs = minari.load_dataset("seqlab/pendulum/test-v0")
    assert theirs.total_episodes == 4 and theirs.total_steps == dataset.n_steps
    assert theirs.env_spec.id == ENV
    assert "ref_min_score" not in theirs.storage.metadata  # minari stores references only as a pair
    for ours, ep in zip(dataset.episodes, theirs.iterate_episodes()):
        assert ep.observations.shape == (len(ours) + 1, S)  # Minari keeps the final observation
        np.testing.assert_array_equal(ep.observations[:-1], ours.observations)
        np.testing.assert_array_equal(ep.observations[-1], ours.final_observation)
        np.testing.assert_array_equal(ep.actions, ours.actions)
        np.testing.assert_array_equal(ep.terminations, ours.terminations)
        np.testing.assert_array_equal(ep.truncations, ours.truncations)
    for source in (target, target / "data", target / "data" / "main_data.hdf5", "seqlab/pendulum/test-v0"):
        back = load_dataset(source)
        assert_same_episodes(dataset, back, infos=False)
        assert back.env_id == ENV and back.metadata["seed"] == 3 and back.metadata["format"] == "minari"


def test_minari_reference_scores_reach_minaris_metadata(dataset, tmp_path, monkeypatch):
    import minari

    dataset.metadata.update(ref_min_score=-10.0, ref_max_score=90.0)
    write_minari(dataset, "seqlab/pendulum/refs-v0", tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    theirs = minari.load_dataset("seqlab/pendulum/refs-v0")
    np.testing.assert_allclose(minari.get_normalized_score(theirs, np.array([-10.0, 90.0])), [0.0, 1.0])


def test_minari_for_another_env_is_refused(dataset, tmp_path):
    target = write_minari(dataset, "seqlab/pendulum/test-v0", tmp_path)
    with pytest.raises(DatasetError, match=r"collected on env 'InvertedPendulum-v5', but env 'Hopper-v5'"):
        read_minari(target, env_id="Hopper-v5")


def test_minari_writer_needs_final_observations_and_a_new_id(dataset, tmp_path):
    write_minari(dataset, "seqlab/pendulum/test-v0", tmp_path)
    with pytest.raises(DatasetError, match="already exists"):
        write_minari(dataset, "seqlab/pendulum/test-v0", tmp_path)
    dataset.episodes[2].final_observation = None
    with pytest.raises(DatasetError, match="episode 2 has no final observation"):
        write_minari(dataset, "seqlab/pendulum/other-v0", tmp_path)


def test_unknown_minari_id_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(DatasetError, match=r"no local Minari dataset 'mujoco/hopper/medium-v0' under .*does not download"):
        load_dataset("mujoco/hopper/medium-v0")


# --- kzl pickle ---------------------------------------------------------------------------------


def kzl_paths(dataset: EpisodeDataset) -> list[dict]:
    return [
        {"observations": ep.observations, "next_observations": ep.next_observations, "actions": ep.actions,
         "rewards": ep.rewards, "terminals": ep.terminations}
        for ep in dataset.episodes
    ]


def test_kzl_pickle_reads_episodes_and_infers_truncations(dataset, tmp_path):
    path = tmp_path / "pendulum-medium-v2.pkl"
    path.write_bytes(pickle.dumps(kzl_paths(dataset)))
    back = load_dataset(path, env_id=ENV)
    for ours, theirs in zip(dataset.episodes, back.episodes):
        np.testing.assert_array_equal(theirs.observations, ours.observations)
        np.testing.assert_array_equal(theirs.final_observation, ours.final_observation)
        np.testing.assert_array_equal(theirs.terminations, ours.terminations)
        # no timeouts in the pickle: a non-terminal last step is a truncation
        assert theirs.truncations[-1] == (not ours.terminations[-1])


def test_kzl_pickle_errors_name_the_file_and_key(dataset, tmp_path):
    paths = kzl_paths(dataset)
    del paths[1]["rewards"]
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(paths))
    with pytest.raises(DatasetError, match=r"bad\.pkl: episode 1: missing key\(s\) 'rewards'"):
        read_kzl_pickle(path, ENV)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps(kzl_paths(dataset)))
    with pytest.raises(DatasetError, match=r"good\.pkl does not record its env id"):
        read_kzl_pickle(good)


class _Hostile:
    def __reduce__(self):
        return (os.getcwd, ())


def test_kzl_pickle_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"observations": _Hostile()}]))
    with pytest.raises(DatasetError, match=r"evil\.pkl: not a readable pickle .*refusing to load posix\.getcwd"):
        read_kzl_pickle(path, ENV)


# --- load_dataset dispatch and the layout -------------------------------------------------------


def test_bare_names_are_looked_up_in_the_data_dir(dataset, tmp_path):
    write_d4rl(dataset, tmp_path / "data" / "pend-expert.hdf5")
    back = load_dataset("pend-expert", data_dir=tmp_path / "data")
    assert back.n_steps == dataset.n_steps
    with pytest.raises(DatasetError, match=r"missing\.hdf5: no such file \(bare names are also looked for in: .*data\)"):
        load_dataset("missing.hdf5", data_dir=tmp_path / "data")
    with pytest.raises(DatasetError, match="unknown dataset format '.txt'"):
        (tmp_path / "x.txt").write_text("")
        load_dataset(tmp_path / "x.txt")


def test_make_episode_closes_an_unflagged_last_step():
    ep = make_episode(np.zeros((3, S)), np.zeros(3), np.ones(3), np.zeros(3), np.zeros(3))
    assert ep.truncations.tolist() == [False, False, True] and ep.actions.shape == (3, 1)
    assert ep.observations.dtype == np.float32 and ep.rewards.dtype == np.float32


def test_episode_validation_catches_early_ends_and_bad_shapes(dataset):
    ep = dataset.episodes[1]
    ep.terminations[2] = True
    with pytest.raises(DatasetError, match="where: step 2 of 7 ends the episode early"):
        ep.validate("where")
    ep = dataset.episodes[0]
    ep.actions = ep.actions[:-1]
    with pytest.raises(DatasetError, match=r"key 'actions' has shape \(4, 1\), expected \(T, dim\) with T=5"):
        ep.validate("where")


def test_returns_lengths_and_concatenation(dataset):
    np.testing.assert_allclose(dataset.returns(), [ep.rewards.sum() for ep in dataset.episodes], rtol=1e-6)
    assert dataset.lengths().tolist() == [5, 7, 1, 4]
    both = EpisodeDataset.concatenate([dataset, dataset], {"dataset": "both"})
    assert both.n_steps == 2 * dataset.n_steps and both.episodes[4] is dataset.episodes[0]
    other = EpisodeDataset(dataset.episodes, "Hopper-v5")
    with pytest.raises(DatasetError, match="different envs"):
        EpisodeDataset.concatenate([dataset, other], {})
