"""Policy evaluation in gymnasium environments: batched, and a sequential reference.

`evaluate` steps N environments of a `gymnasium.make_vec` vector env together and runs one
forward pass per step for all of them. The context lives in a preallocated buffer
(`ContextWindow`) written so that the last K steps are always one contiguous slice: no step copies
the history (the DT reference `torch.cat`s every tensor of the history at every step). Episodes
run in rounds of N, episode i of every target reset with seed `seed + i`; the vector env uses
autoreset mode DISABLED, and every env whose episode ends is reset explicitly at once, so a
finished env keeps stepping harmlessly while its row no longer counts. All rows of a round take
their steps together, so every row's context holds the same number of steps and needs no padding.

Input bookkeeping is `rl.sampling.Preprocessing`, the object the samplers use in training:
states standardized with the dataset's statistics, R̂_t = (target - reward so far) / rtg_scale (the
training RTG of an episode whose return equals the target), rewards scaled alike, completion
tokens d_t = 1 where the reward so far is at least the target, timesteps clamped in the model.

KV cache (`use_kv_cache`, token models only): while the context has not filled (step < K), each
step embeds only its new tokens (the previous step's tokens after its state token, then R̂_t and
s_t) and decodes them against per-layer caches, which is exact. Once the window slides, the oldest
step leaves the context and every later token's hidden state changes, so cached keys and values
of layers above the first are stale: from then on every step recomputes the full window. The cache
pays off when the context holds whole episodes (the Agentic Transformer's in-context trials);
with DT's K = 20 on 1000-step episodes only the first 20 steps use it.

Multiple trials (`n_trials`, the Agentic Transformer): when a trial ends, the env is reset
(without a new seed, continuing its generator) and the next trial starts in the same context with
the target, the reward so far and the timestep reset; the returns of every trial are kept, and
`EvalResult.summary` reports first-trial, last-trial and max-over-n separately.

`evaluate_sequential` is the reference's way (kzl/decision-transformer@e2d82e6
`gym/decision_transformer/evaluation/evaluate_episodes.py`, `evaluate_episode_rtg` and the model's
`get_action`): one env, one episode at a time, every history tensor grown by `torch.cat` each step,
the whole state history normalized each step, the last K steps left-padded to K with a padding
mask, and a forward pass over the whole window whose last action is kept (the batched evaluator
asks a token model for the newest action alone, `TokenModel.act`). Both evaluators feed the model
the same numbers and give the same returns on the same seeds (tested on short episodes; on chaotic
MuJoCo dynamics, rounding-level differences between batch sizes or between cached and recomputed
attention, ~1e-7 in the actions, can grow over hundreds of steps into visibly different episodes).
The benchmark compares their speed.

Deviations from the reference: episodes are seeded (the reference resets unseeded); the target
return is validated; finished episodes stop counting while their env idles until the round ends.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor, nn

from rl.models.gpt import LAST, TokenModel
from rl.sampling import Preprocessing, TrajectoryBatch
from seqlab.config import require_positive
from seqlab.errors import ConfigError, SeqlabError
from seqlab.nn.attention import KVCache
from seqlab.train.runtime import autocast

# MuJoCo renders off-screen through EGL when there is no display (servers, CI); it reads the
# setting when it is first imported, so it is set before any env is made.
if "DISPLAY" not in os.environ:
    os.environ.setdefault("MUJOCO_GL", "egl")

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Maps raw returns to normalized scores, e.g. 100 (R - R_random) / (R_expert - R_random)."""


@dataclass(frozen=True)
class EvalConfig:
    env_id: str
    """gymnasium environment id, e.g. HalfCheetah-v5."""
    target_returns: tuple[float, ...] = (0.0,)
    """Commanded returns, in the env's reward units, one evaluation each (ignored by plain BC)."""
    n_episodes: int = 10
    """Episodes per target (each of n_trials trials for the Agentic Transformer)."""
    num_envs: int = 10
    """Environments stepped together (N)."""
    seed: int = 0
    """Episode i of every target is reset with seed + i."""
    n_trials: int = 1
    """Trials back to back in one context (Agentic Transformer); 1 for DT and BC."""
    use_kv_cache: bool = False
    """Decode new tokens against a KV cache while the context has room (token models only)."""
    vectorization_mode: Literal["sync", "async"] = "sync"
    max_episode_steps: int | None = None
    """Override the env's time limit."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Autocast dtype of the forward passes."""
    frame_every: int = 0
    """Render every n-th step of the first episode into `EvalResult.frames` (sequential evaluator
    only, for a frame strip); 0 renders nothing."""

    def __post_init__(self) -> None:
        require_positive(self, "n_episodes", "num_envs", "n_trials")
        if self.frame_every < 0:
            raise ConfigError(f"frame_every must be >= 0, got {self.frame_every}")
        if not self.target_returns:
            raise ConfigError("target_returns must name at least one target return")
        for i, target in enumerate(self.target_returns):
            if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target):
                raise ConfigError(f"target_returns[{i}] must be a finite number, got {target!r}")
        if self.max_episode_steps is not None:
            require_positive(self, "max_episode_steps")


@dataclass(frozen=True)
class EvalResult:
    """Returns of one target. returns, lengths, scores: (n_episodes, n_trials); seeds: (n_episodes,)."""

    target: float
    returns: np.ndarray
    lengths: np.ndarray
    seeds: np.ndarray
    scores: np.ndarray | None = None
    frames: list[np.ndarray] | None = None
    """RGB frames (H, W, 3) of the first episode, when rendered (`EvalConfig.frame_every`)."""

    def summary(self) -> dict[str, float]:
        """Mean and std over episodes; with several trials per episode the first, last and best
        trial are reported separately (max-over-n alone overstates a policy)."""
        views = {"": slice(None)} if self.returns.shape[1] == 1 else {"first_": 0, "last_": -1, "max_": None}
        out: dict[str, float] = {"length_mean": float(self.lengths.mean())}
        for prefix, which in views.items():
            for name, values in (("return", self.returns), ("score", self.scores)):
                if values is None:
                    continue
                picked = values.max(axis=1) if which is None else values[:, which]
                out[f"{prefix}{name}_mean"] = float(picked.mean())
                out[f"{prefix}{name}_std"] = float(picked.std())
        return out


class ContextWindow:
    """The last K steps of N rows in preallocated tensors.

    Each step is written to slots i % K and i % K + K of a 2K-slot buffer, so the most recent
    n <= K steps always form the contiguous slice starting at slot (count - n) % K.
    """

    def __init__(self, n_rows: int, context_len: int, state_dim: int, action_dim: int, device: torch.device) -> None:
        self.k = context_len
        self.buffers = {name: torch.zeros(n_rows, 2 * context_len, *shape, dtype=dtype, device=device)
                        for name, shape, dtype in _fields(state_dim, action_dim)}  # (N, 2K, ...) each
        self.loss_mask = torch.ones(n_rows, context_len, dtype=torch.bool, device=device)  # unused by models
        self.count = 0

    def clear(self) -> None:
        self.count = 0

    def _write(self, **values: np.ndarray | Tensor) -> None:
        slot = (self.count - 1) % self.k
        for name, value in values.items():
            buffer = self.buffers[name]
            value = torch.as_tensor(value, device=buffer.device).to(buffer.dtype)
            buffer[:, slot] = value
            buffer[:, slot + self.k] = value

    def push(self, states: np.ndarray, returns_to_go: np.ndarray, timesteps: np.ndarray) -> None:
        """Start a step with what is known before acting; its action, reward and completion read 0."""
        self.count += 1
        zero = torch.zeros(())
        self._write(states=states, returns_to_go=returns_to_go, timesteps=timesteps, actions=zero, rewards=zero,
                    completions=zero)

    def record(self, actions: Tensor, rewards: np.ndarray, completions: np.ndarray) -> None:
        """Finish the newest step with what acting produced."""
        self._write(actions=actions, rewards=rewards, completions=completions)

    def window(self, n: int) -> TrajectoryBatch:
        """The most recent n <= min(count, K) steps, as views."""
        start = (self.count - n) % self.k
        return TrajectoryBatch(**{name: b[:, start : start + n] for name, b in self.buffers.items()}, padding=None,
                               loss_mask=self.loss_mask[:, :n])


def _last_action(model: nn.Module, batch: TrajectoryBatch) -> Tensor:
    """The newest step's action (N, A); token models compute only that one (`TokenModel.act`)."""
    return model.act(batch) if isinstance(model, TokenModel) else model(batch)[:, -1]


def _cached_action(model: TokenModel, context: ContextWindow, cache: list[KVCache]) -> Tensor:
    """Decode the newest tokens: after the previous state token, up to and including this one."""
    p, s = model.tokens_per_step, model.state_token
    if context.count == 1:
        tokens = model.embed(context.window(1))[:, : s + 1]  # (N, s + 1, D)
    else:
        tokens = model.embed(context.window(2))[:, s + 1 : p + s + 1]  # (N, P, D)
    hidden = model.gpt(tokens, cache=cache, outputs=LAST)  # (N, 1, D)
    return model.predict_action(hidden[:, 0])  # (N, A)


def _check_env(model: nn.Module, prep: Preprocessing, env_id: str, observation_space: Any,
               action_space: Any) -> None:
    cfg = model.config
    if observation_space.shape != (cfg.state_dim,) or action_space.shape != (cfg.action_dim,):
        raise SeqlabError(
            f"env {env_id} has observations {observation_space.shape} and actions {action_space.shape}, "
            f"but the model was built for state_dim={cfg.state_dim}, action_dim={cfg.action_dim}")
    if prep.state_mean.shape != (cfg.state_dim,):
        raise SeqlabError(f"the state statistics have shape {prep.state_mean.shape}, expected ({cfg.state_dim},)")
    low, high = (-np.ones(cfg.action_dim), np.ones(cfg.action_dim)) if prep.action_low is None else (
        prep.action_low, prep.action_high)
    if not (np.allclose(action_space.low, low) and np.allclose(action_space.high, high)):
        raise SeqlabError(
            f"env {env_id} has actions in [{action_space.low}, {action_space.high}] but the preprocessing maps "
            f"[{low}, {high}] to the model's [-1, 1]; build Preprocessing with the env's action bounds")


def _make(env_id: str, **kwargs: Any) -> Any:
    try:
        return gymnasium.make_vec(env_id, **kwargs) if "num_envs" in kwargs else gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as exc:
        raise SeqlabError(f"env_id {env_id!r} is not a gymnasium environment here: {exc}") from None


def _limit(config: EvalConfig) -> dict[str, int]:
    return {} if config.max_episode_steps is None else {"max_episode_steps": config.max_episode_steps}


def evaluate(model: nn.Module, prep: Preprocessing, config: EvalConfig,
             score_fn: ScoreFn | None = None) -> list[EvalResult]:
    """Roll `model` out in `config.num_envs` environments at once; one result per target return."""
    if config.use_kv_cache and not isinstance(model, TokenModel):
        raise ConfigError(f"use_kv_cache needs a token model (DT, AT), not {type(model).__name__}")
    n = min(config.num_envs, config.n_episodes)
    envs = _make(config.env_id, num_envs=n, vectorization_mode=config.vectorization_mode,
                 vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED}, **_limit(config))
    try:
        _check_env(model, prep, config.env_id, envs.single_observation_space, envs.single_action_space)
        # One autocast region for every step: the weights' low-precision copies are made once, not per step.
        with autocast(next(model.parameters()).device, config.precision):
            return [_evaluate_target(model, prep, config, envs, float(target), score_fn)
                    for target in config.target_returns]
    finally:
        envs.close()


@torch.no_grad()
def _evaluate_target(model: nn.Module, prep: Preprocessing, config: EvalConfig, envs: Any, target: float,
                     score_fn: ScoreFn | None) -> EvalResult:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    n, k = envs.num_envs, model.config.context_len
    context = ContextWindow(n, k, model.config.state_dim, model.config.action_dim, device)
    cache = model.gpt.new_cache(k * model.tokens_per_step) if config.use_kv_cache else None
    returns = np.zeros((config.n_episodes, config.n_trials))
    lengths = np.zeros((config.n_episodes, config.n_trials), np.int64)
    rows = np.arange(n)
    for first in range(0, config.n_episodes, n):
        episode = first + rows  # (N,) episode index of each row
        running = episode < config.n_episodes  # rows with an episode in this round
        obs, _ = envs.reset(seed=[config.seed + int(e) for e in episode])
        context.clear()
        for layer_cache in cache or ():
            layer_cache.reset()
        trial, t = np.zeros(n, np.int64), np.zeros(n, np.int64)
        reward_so_far = np.zeros(n)
        while running.any():
            context.push(prep.normalize_states(obs), prep.returns_to_go(target, reward_so_far), t)
            if cache is not None and context.count <= k:
                action = _cached_action(model, context, cache)
            else:
                action = _last_action(model, context.window(min(context.count, k)))
            action = action.float()
            obs, reward, terminated, truncated, _ = envs.step(prep.denormalize_actions(action.cpu().numpy()))
            reward_so_far += reward
            context.record(action, prep.scale_rewards(reward), prep.completed(target, reward_so_far))
            live = rows[running]
            returns[episode[live], trial[live]] += reward[live]
            lengths[episode[live], trial[live]] += 1
            t += 1
            ended = terminated | truncated
            trial_over = ended & running
            trial[trial_over] += 1
            reward_so_far[trial_over], t[trial_over] = 0.0, 0
            running &= trial < config.n_trials
            if ended.any():  # autoreset is off: reset now, so every env can take the next step
                obs, _ = envs.reset(options={"reset_mask": ended})
    model.train(was_training)
    seeds = config.seed + np.arange(config.n_episodes)
    return EvalResult(target, returns, lengths, seeds, None if score_fn is None else score_fn(returns))


@torch.no_grad()
def evaluate_sequential(model: nn.Module, prep: Preprocessing, config: EvalConfig,
                        score_fn: ScoreFn | None = None) -> list[EvalResult]:
    """The reference's evaluation: one env, one episode at a time, histories grown by torch.cat,
    the whole state history normalized and the window left-padded every step (for tests and the
    speed benchmark)."""
    render = {"render_mode": "rgb_array"} if config.frame_every else {}
    env = _make(config.env_id, **_limit(config), **render)
    _check_env(model, prep, config.env_id, env.observation_space, env.action_space)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    k, s_dim, a_dim = model.config.context_len, model.config.state_dim, model.config.action_dim
    mean, std = (torch.as_tensor(v, device=device) for v in (prep.state_mean, prep.state_std))
    results = []
    for target in map(float, config.target_returns):
        returns = np.zeros((config.n_episodes, config.n_trials))
        lengths = np.zeros((config.n_episodes, config.n_trials), np.int64)
        frames: list[np.ndarray] = []
        for episode in range(config.n_episodes):
            obs, _ = env.reset(seed=config.seed + episode)
            history = {name: torch.zeros(0, *shape, dtype=dtype, device=device)
                       for name, shape, dtype in _fields(s_dim, a_dim)}
            for trial in range(config.n_trials):
                if trial:
                    obs, _ = env.reset()
                reward_so_far, t, done = np.zeros(1), 0, False
                while not done:
                    step = {"states": np.asarray(obs[None], np.float32), "actions": np.zeros((1, a_dim)),
                            "returns_to_go": prep.returns_to_go(target, reward_so_far), "rewards": [0.0],
                            "completions": [0], "timesteps": [t]}
                    history = {name: torch.cat([history[name], torch.as_tensor(step[name], device=device)
                                                .to(history[name].dtype)]) for name in history}
                    window = _padded_window(history, mean, std, k)
                    with autocast(device, config.precision):  # the reference's full forward pass
                        action = model(window).float()[0, -1]
                    obs, reward, terminated, truncated, _ = env.step(prep.denormalize_actions(action.cpu().numpy()))
                    reward_so_far += reward
                    history["actions"][-1] = action
                    history["rewards"][-1] = float(prep.scale_rewards(np.array(reward)))
                    history["completions"][-1] = int(prep.completed(target, reward_so_far)[0])
                    returns[episode, trial] += reward
                    lengths[episode, trial] += 1
                    t += 1
                    done = terminated or truncated
                    if render and episode == 0 and trial == 0 and t % config.frame_every == 0:
                        frames.append(env.render())
        results.append(EvalResult(target, returns, lengths, config.seed + np.arange(config.n_episodes),
                                  None if score_fn is None else score_fn(returns), frames or None))
    env.close()
    model.train(was_training)
    return results


def _padded_window(history: dict[str, Tensor], mean: Tensor, std: Tensor, k: int) -> TrajectoryBatch:
    """The reference's input: the whole history's states normalized, the last K steps kept and
    left-padded to K with zeros and a padding mask."""
    steps = {**history, "states": (history["states"] - mean) / std}
    n = min(len(steps["states"]), k)
    window = {name: torch.cat([h.new_zeros(k - n, *h.shape[1:]), h[-n:]])[None] for name, h in steps.items()}
    padding = (torch.arange(k, device=mean.device) < k - n)[None]  # (1, K)
    return TrajectoryBatch(**window, padding=padding if k > n else None, loss_mask=~padding)


def _fields(state_dim: int, action_dim: int) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """Name, per-step shape and dtype of each step field of a TrajectoryBatch."""
    return [("states", (state_dim,), torch.float32), ("actions", (action_dim,), torch.float32),
            ("returns_to_go", (), torch.float32), ("rewards", (), torch.float32),
            ("completions", (), torch.long), ("timesteps", (), torch.long)]
