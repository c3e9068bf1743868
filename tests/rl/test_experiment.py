"""The offline-RL experiment end to end on a small InvertedPendulum dataset written in the D4RL
layout: it trains, evaluates the last weights in the env, logs, and leaves an agent file that
evaluates to the same returns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rl.data import EpisodeDataset, make_episode
from rl.evaluate import evaluate
from rl.experiment import PRESET_DIR, Agent, build_config, run_experiment
from rl.formats.d4rl import write_d4rl
from rl.models import MODELS
from seqlab.config import ConfigError
from seqlab.tracking import MemoryTracker

ENV = "InvertedPendulum-v5"


def random_dataset(path, n_episodes=6, seed=0):
    """Episodes of a random policy; the metadata carries reference returns so scores exist."""
    env = gym.make(ENV)
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        rows = {"obs": [], "act": [], "rew": [], "term": [], "trunc": []}
        done = False
        while not done:
            action = rng.uniform(-3, 3, size=1).astype(np.float32)
            next_obs, reward, term, trunc, _ = env.step(action)
            for key, value in zip(rows, (obs, action, reward, term, trunc)):
                rows[key].append(value)
            obs, done = next_obs, term or trunc
        episodes.append(make_episode(np.array(rows["obs"]), np.array(rows["act"]), np.array(rows["rew"]),
                                     np.array(rows["term"]), np.array(rows["trunc"]), final_observation=obs))
    env.close()
    metadata = {"ref_min_score": 5.0, "ref_max_score": 1000.0, "dataset_name": "pendulum-random"}
    write_d4rl(EpisodeDataset(episodes, ENV, metadata), path)
    return path


TINY = {"d_model": 16, "n_layers": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return random_dataset(tmp_path_factory.mktemp("rl-data") / "pendulum.hdf5")


def run(dataset, tmp_path, preset="dt_cpu", **overrides):
    cfg = build_config(preset, {
        "model": TINY, "data": {"dataset": str(dataset)}, "output_dir": str(tmp_path),
        "train": {"max_steps": 6, "warmup_steps": 2, "batch_size": 8, "precision": "fp32", "progress": False},
        "eval": {"target_returns": [50.0], "n_episodes": 2, "num_envs": 2, "every_steps": 3, "frames": False},
        **overrides,
    })
    tracker = MemoryTracker()
    return run_experiment(cfg, tracker=tracker), tracker


def test_dt_run_trains_evaluates_the_last_weights_and_logs(dataset, tmp_path):
    result, tracker = run(dataset, tmp_path)
    assert result.fit.global_step == 6 and tracker.status == "FINISHED"
    final = result.evaluation
    assert final["eval/50/score_mean"] == pytest.approx(100 * (final["eval/50/return_mean"] - 5) / 995)
    assert [step for step, _ in tracker.history("eval/50/return_mean")] == [3, 6]  # periodic, then the last
    assert "agent/agent.pt" in tracker.artifacts and "plots/return_vs_step.png" in tracker.figures


def test_agent_file_evaluates_to_the_reported_returns(dataset, tmp_path):
    result, _ = run(dataset, tmp_path)
    agent = Agent.load(result.agent_path)
    model, prep = agent.build()
    again = evaluate(model, prep, result.config.eval.for_env(ENV, "fp32"), agent.score_fn())
    assert again[0].summary()["return_mean"] == pytest.approx(result.evaluation["eval/50/return_mean"])


@pytest.mark.parametrize("preset", ["at_cpu", "bc_cpu"])
def test_other_models_run_end_to_end(dataset, tmp_path, preset):
    overrides = {"model": {**TINY, "context_len": 8}} if preset == "at_cpu" else {}
    eval_overrides = {"n_trials": 2, "use_kv_cache": True} if preset == "at_cpu" else {}
    cfg_eval = {"target_returns": [50.0], "n_episodes": 2, "num_envs": 2, "frames": False, **eval_overrides}
    result, _ = run(dataset, tmp_path, preset, **overrides, eval=cfg_eval)
    assert result.fit.global_step == 6
    key = "eval/50/last_return_mean" if preset == "at_cpu" else "eval/50/return_mean"
    assert np.isfinite(result.evaluation[key])


def test_every_training_preset_builds():
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        cfg = build_config(path, {"data": {"dataset": "x.hdf5"}})
        assert isinstance(cfg.model, MODELS.get(cfg.model_name).config_class), path.name
        # one epoch of max_steps: without checkpoints inside it, --resume would start over
        assert cfg.train.checkpoint_every and cfg.train.checkpoint_every < cfg.train.max_steps, path.name


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="data.dataset is required"):
        build_config("dt_cpu")
    with pytest.raises(ConfigError, match="model.state_dim is taken from the data"):
        build_config("dt_cpu", {"data": {"dataset": "x.hdf5"}, "model": {"state_dim": 3}})
    with pytest.raises(ConfigError, match="data.top_fraction"):
        build_config("dt_cpu", {"data": {"dataset": "x.hdf5", "top_fraction": 0}})
    with pytest.raises(ConfigError, match="target_returns"):
        build_config("dt_cpu", {"data": {"dataset": "x.hdf5"}, "eval": {"target_returns": ["high"]}})
    # evaluation settings fail when the config is built, before any training
    with pytest.raises(ConfigError, match=r"eval\.n_episodes must be >= 1"):
        build_config("dt_cpu", {"data": {"dataset": "x.hdf5"}, "eval": {"n_episodes": 0}})
    with pytest.raises(ConfigError, match="every_steps must be >= 1"):
        build_config("dt_cpu", {"data": {"dataset": "x.hdf5"}, "eval": {"every_steps": 0}})
    with pytest.raises(ConfigError, match=r"eval\.target_returns must name at least one"):
        build_config("dt_cpu", {"data": {"dataset": "x.hdf5"}, "eval": {"target_returns": []}})


def test_cli_trains_and_evaluates_the_saved_agent(dataset, tmp_path, capsys):
    from seqlab.cli import main

    assert main(["rl", "train", "bc_cpu", "--data", str(dataset), "--output-dir", str(tmp_path), "--no-track",
                 "model.d_model=16", "train.max_steps=3", "train.batch_size=8", "eval.n_episodes=2",
                 "eval.num_envs=2", "eval.frames=false", "train.progress=false"]) == 0
    trained = capsys.readouterr().out
    agent = next(tmp_path.glob("*/agent.pt"))
    # targets and episodes default to the ones the agent was trained and evaluated with
    assert main(["rl", "evaluate", str(agent.parent), "--num-envs", "2", "--seed", "10000"]) == 0
    evaluated = capsys.readouterr().out
    line = next(line for line in evaluated.splitlines() if "eval/0/return_mean" in line)
    assert line in trained  # same agent, same seeds: the same returns
    assert "MLflow run" in evaluated

    # an explicit 0 is refused, not replaced by the stored value
    assert main(["rl", "evaluate", str(agent.parent), "--episodes", "0", "--no-track"]) != 0
    assert "n_episodes must be >= 1" in capsys.readouterr().err

    # an agent file from before the protocol was stored asks for --targets instead of guessing
    from seqlab.train.checkpoint import load_checkpoint, save_checkpoint

    old = {k: v for k, v in load_checkpoint(agent).items() if k != "evaluation"}
    save_checkpoint(old, tmp_path / "old.pt")
    assert main(["rl", "evaluate", str(tmp_path / "old.pt"), "--no-track"]) != 0
    assert "does not record the target returns" in capsys.readouterr().err


def test_frames_are_rendered_when_the_machine_can(dataset):
    from rl.evaluate import EvalConfig, evaluate_sequential
    from rl.sampling import Preprocessing

    model = MODELS.get("bc")(MODELS.get("bc").config_class(state_dim=4, action_dim=1, d_model=8, n_layers=1))
    prep = Preprocessing(np.zeros(4, np.float32), np.ones(4, np.float32), 1000.0,
                         np.array([-3.0], np.float32), np.array([3.0], np.float32))
    try:
        result = evaluate_sequential(model, prep, EvalConfig(ENV, n_episodes=1, frame_every=2))[0]
    except Exception as exc:  # no OpenGL backend on this machine
        pytest.skip(f"MuJoCo cannot render here: {exc}")
    assert len(result.frames) == int(result.lengths[0, 0]) // 2
    assert result.frames[0].ndim == 3 and result.frames[0].shape[2] == 3


def test_a_run_killed_inside_its_one_epoch_resumes_to_the_same_agent(dataset, tmp_path, monkeypatch):
    """The presets train one epoch of max_steps batches; checkpoint_every makes --resume continue it."""
    import torch

    import rl.experiment as experiment

    def config(out):
        return build_config("dt_cpu", {
            "model": TINY, "data": {"dataset": str(dataset)}, "output_dir": str(out),
            "train": {"max_steps": 6, "warmup_steps": 2, "batch_size": 8, "precision": "fp32", "progress": False,
                      "checkpoint_every": 2},
            "eval": {"target_returns": [50.0], "n_episodes": 1, "num_envs": 1, "frames": False},
        })

    whole = run_experiment(config(tmp_path / "whole"), tracker=MemoryTracker())

    class Crash(Exception):
        pass

    steps = []

    class WatchedTrainer(experiment.Trainer):
        def __init__(self, *args, callbacks=(), **kwargs):
            def watch(trainer, state):
                steps.append(state.global_step)
                if state.global_step == 5 and not resumed:
                    raise Crash

            super().__init__(*args, callbacks=[*callbacks, watch], **kwargs)

    monkeypatch.setattr(experiment, "Trainer", WatchedTrainer)
    resumed = False
    with pytest.raises(Crash):
        run_experiment(config(tmp_path / "killed"), tracker=MemoryTracker())
    resumed = True
    result = run_experiment(config(tmp_path / "killed"), resume=True, tracker=MemoryTracker())
    assert result.fit.global_step == 6
    assert steps == [1, 2, 3, 4, 5, 5, 6]  # the second run went on from the step-4 checkpoint
    for name, tensor in Agent.load(whole.agent_path).state_dict.items():
        assert torch.equal(tensor, Agent.load(result.agent_path).state_dict[name]), name
