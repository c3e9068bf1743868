"""`seqlab rl collect`: the D4RL recipe on the tiny preset (a few seconds), configs and resumption."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from rl import cli
from rl.collect import LEVELS, PRESET_DIR, CollectConfig, collect, load_collect_config, sha256_file
from rl.data import load_dataset, make_env
from rl.formats.d4rl import read_d4rl
from rl.scores import normalized_score
from seqlab.config import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = load_collect_config("tiny", {"out_dir": str(tmp_path_factory.mktemp("collect")), "progress": False})
    result = collect(cfg)
    return cfg, result, {level: read_d4rl(path) for level, path in result.files.items()}


def test_all_four_datasets_are_written_with_checksums(run):
    cfg, result, data = run
    assert set(result.files) == set(LEVELS) and not result.skipped
    manifest = json.loads(result.manifest.read_text())
    for level, path in result.files.items():
        assert result.sha256[level] == sha256_file(path) == manifest["datasets"][level]["sha256"]
        assert data[level].env_id == cfg.env_id
        assert manifest["datasets"][level]["n_steps"] == data[level].n_steps


def test_medium_and_expert_have_n_steps_and_medium_expert_concatenates_them(run):
    cfg, _, data = run
    assert data["medium"].n_steps == data["expert"].n_steps == cfg.dataset_size
    both = data["medium-expert"]
    assert both.n_steps == data["medium"].n_steps + data["expert"].n_steps
    parts = data["medium"].episodes + data["expert"].episodes
    assert len(both.episodes) == len(parts)
    for a, b in zip(both.episodes, parts):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    for level in ("medium", "expert"):
        assert set(data[level].episodes[0].infos) == {"action_log_probs", "qpos", "qvel"}


def test_medium_replay_is_the_sac_buffer_up_to_the_medium_snapshot(run, tmp_path):
    cfg, result, data = run
    replay = data["medium-replay"]
    assert replay.n_steps == result.policies.medium_step
    # SAC's first episode starts from the env reset with the run's seed
    first_obs, _ = make_env(cfg.env_id).reset(seed=cfg.seed)
    np.testing.assert_allclose(replay.episodes[0].observations[0], first_obs, rtol=1e-6)
    # stored in order: inside an episode, next_observations[t] == observations[t + 1]
    with h5py.File(result.files["medium-replay"]) as f:
        obs, nxt = f["observations"][()], f["next_observations"][()]
        ends = f["terminals"][()] | f["timeouts"][()]
    inside = ~ends[:-1]
    np.testing.assert_array_equal(nxt[:-1][inside], obs[1:][inside])
    assert f"env steps 1-{result.policies.medium_step}" in replay.metadata["behaviour_policy"]


def test_actions_are_in_env_units(run):
    cfg, _, data = run
    space = make_env(cfg.env_id).action_space  # [-3, 3]: SB3's [-1, 1] buffer actions must be unscaled
    actions = np.concatenate([ep.actions for ds in data.values() for ep in ds.episodes])
    assert np.all(actions >= space.low) and np.all(actions <= space.high)
    assert np.abs(actions).max() > 1.0


def test_medium_is_the_first_snapshot_past_the_target(run):
    cfg, result, _ = run
    p = result.policies
    assert p.eval_steps[-1] == cfg.sac_steps and p.expert_return == p.eval_returns[-1]
    target = p.random_return + cfg.medium_fraction * (p.expert_return - p.random_return)
    i = p.eval_steps.index(p.medium_step)
    assert p.eval_returns[i] >= target or i == len(p.eval_steps) - 1
    assert all(ret < target for ret in p.eval_returns[:i])


def test_every_file_holds_the_references_and_provenance(run):
    cfg, result, data = run
    p = result.policies
    for level, ds in data.items():
        meta = ds.metadata
        assert meta["ref_min_score"] == p.random_return and meta["ref_max_score"] == p.expert_return
        assert meta["env_id"] == cfg.env_id and meta["env_version"] == 5 and meta["seed"] == cfg.seed
        assert meta["dataset"] == level and meta["behaviour_policy"]
        assert {"versions/gymnasium", "versions/stable-baselines3", "versions/mujoco", "config"} <= set(meta)
        assert meta["config_hash"] in (cfg.training_hash, cfg.dataset_hash)
    expert = data["expert"]
    assert normalized_score(expert, p.expert_return) == pytest.approx(100.0)
    assert normalized_score(expert, p.random_return) == pytest.approx(0.0)


def test_a_second_run_keeps_the_files_and_a_new_size_skips_training(run):
    cfg, result, _ = run
    again = collect(cfg)
    assert sorted(again.skipped) == sorted(LEVELS) and again.sha256 == result.sha256
    bigger = load_collect_config("tiny", {"out_dir": cfg.out_dir, "progress": False,
                                          "dataset_size": cfg.dataset_size + 50})
    third = collect(bigger)
    assert third.skipped == ["medium-replay"]
    assert third.sha256["medium-replay"] == result.sha256["medium-replay"]
    assert load_dataset(third.files["medium"]).n_steps == cfg.dataset_size + 50


def test_cli_collect_runs_a_preset_with_overrides(run, capsys):
    cfg, result, _ = run
    parser = argparse.ArgumentParser(prog="seqlab")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rl", "collect", "tiny", "--out", cfg.out_dir, "progress=false",
                              f"dataset_size={cfg.dataset_size + 50}"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "medium-expert" in out and "(kept)" in out and "sha256" in out


@pytest.mark.parametrize("path", sorted(PRESET_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_loads(path):
    cfg = load_collect_config(path.stem)
    assert cfg == load_collect_config(str(path))
    make_env(cfg.env_id).close()


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match="medium_fraction must be in"):
        load_collect_config("tiny", {"medium_fraction": 1.5})
    with pytest.raises(ConfigError, match="learning_starts must be in"):
        load_collect_config("tiny", {"learning_starts": 5000})
    with pytest.raises(ConfigError, match="unknown config key 'sac_step'"):
        load_collect_config("tiny", {"sac_step": 10})
    with pytest.raises(ConfigError, match="unknown collect preset 'hopper'; presets: halfcheetah, tiny"):
        load_collect_config("hopper")
    with pytest.raises(ValueError, match="dataset_size must be >= 1"):
        CollectConfig(dataset_size=0)


def test_hashes_separate_training_from_rollout_settings():
    base = CollectConfig()
    assert CollectConfig(dataset_size=10).training_hash == base.training_hash
    assert CollectConfig(dataset_size=10).dataset_hash != base.dataset_hash
    assert CollectConfig(out_dir="elsewhere", progress=False).dataset_hash == base.dataset_hash
    assert CollectConfig(seed=1).training_hash != base.training_hash
