"""Training samples from offline episodes, and the input bookkeeping shared with evaluation.

`Preprocessing` is the one object that turns raw environment quantities into model inputs (state
standardization with the dataset's mean/std, returns-to-go and rewards divided by the RTG scale,
actions mapped to [-1, 1]); the samplers here and the evaluator (`rl.evaluate`) both call it, so
training and evaluation cannot drift apart. Returns-to-go are always written as

    rtg_t = (target - reward collected before step t) / rtg_scale

with target = the episode's own return in training (= the sum of rewards from t on, gamma = 1,
as the references' `discount_cumsum`), the chain's best return for the Agentic Transformer, and
the commanded target in evaluation, where it falls by each reward received.

Samplers (Decision Transformer / behaviour cloning: `WindowSampler`; Agentic Transformer:
`ChainSampler`) draw trajectories with probability proportional to their length, gather K-step
windows with numpy fancy indexing from pre-normalized flat arrays, and mark real steps with a mask
that is built from the window lengths *before* any padding is written (CORL#21/#26 built it
from the padded data). `SampledDataset` adapts a sampler to the shared Trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from rl.data import Episode
from seqlab.errors import ConfigError, SeqlabError


class TrajectoryBatch(NamedTuple):
    """K consecutive steps per row, in model units. Shapes: B rows, K steps, S state, A action.

    states (B, K, S) float32 standardized; actions (B, K, A) float32 in [-1, 1] units;
    returns_to_go (B, K) and rewards (B, K) float32 divided by the RTG scale; completions (B, K)
    int64, 1 where the reward so far (this step's included) is at least the target (Agentic
    Transformer); timesteps (B, K) int64, the step within its episode; padding (B, K) bool, True
    at padded steps, or None when any padding sits after every real step (right padding), where
    the causal mask already hides it; loss_mask (B, K) bool, the steps whose actions are trained on.
    """

    states: Tensor
    actions: Tensor
    returns_to_go: Tensor
    rewards: Tensor
    completions: Tensor
    timesteps: Tensor
    padding: Tensor | None
    loss_mask: Tensor


@dataclass(frozen=True, eq=False)
class Preprocessing:
    """Raw environment quantities -> model units; built once from the training data.

    state_mean, state_std: (S,) float32 over every state of the dataset (std + 1e-6, as the
    references). rtg_scale: returns-to-go and rewards are divided by it (1000 for MuJoCo in the
    DT paper). action_low, action_high: (A,) bounds of the env's action space, mapped to [-1, 1]
    for the tanh action head; None when the actions already live in [-1, 1].
    """

    state_mean: np.ndarray
    state_std: np.ndarray
    rtg_scale: float = 1000.0
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.rtg_scale > 0:
            raise ConfigError(f"rtg_scale must be > 0, got {self.rtg_scale}")
        if self.state_mean.shape != self.state_std.shape or self.state_mean.ndim != 1:
            raise ConfigError(
                f"state_mean and state_std must both be (S,), got {self.state_mean.shape} and {self.state_std.shape}"
            )
        if (self.action_low is None) != (self.action_high is None):
            raise ConfigError("action_low and action_high must be given together")
        if self.action_low is not None and not np.all(self.action_high > self.action_low):
            raise ConfigError(f"action_high must exceed action_low, got {self.action_low} and {self.action_high}")

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[Episode],
        rtg_scale: float = 1000.0,
        action_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Preprocessing:
        """Statistics of every state of `episodes` (all of them, before any %BC filtering)."""
        if not episodes:
            raise SeqlabError("cannot compute state statistics of an empty episode list")
        states = np.concatenate([ep.observations for ep in episodes]).astype(np.float64)
        low, high = (None, None) if action_bounds is None else (np.asarray(b, np.float32) for b in action_bounds)
        return cls(
            state_mean=states.mean(0).astype(np.float32),
            state_std=(states.std(0) + 1e-6).astype(np.float32),
            rtg_scale=float(rtg_scale),
            action_low=low,
            action_high=high,
        )

    def normalize_states(self, states: np.ndarray) -> np.ndarray:
        """(..., S) raw -> standardized float32."""
        return (np.asarray(states, np.float32) - self.state_mean) / self.state_std

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """(..., A) env units -> [-1, 1] units, float32."""
        actions = np.asarray(actions, np.float32)
        if self.action_low is None:
            return actions
        return 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0

    def denormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """(..., A) [-1, 1] units -> env units."""
        if self.action_low is None:
            return actions
        return self.action_low + (np.asarray(actions) + 1.0) * 0.5 * (self.action_high - self.action_low)

    def returns_to_go(self, target: np.ndarray | float, reward_before: np.ndarray) -> np.ndarray:
        """(target - reward collected before the step) / rtg_scale, float32."""
        return ((np.asarray(target, np.float64) - reward_before) / self.rtg_scale).astype(np.float32)

    def scale_rewards(self, rewards: np.ndarray) -> np.ndarray:
        return (np.asarray(rewards, np.float64) / self.rtg_scale).astype(np.float32)

    @staticmethod
    def completed(target: np.ndarray | float, reward_after: np.ndarray) -> np.ndarray:
        """Completion token: 1 where the reward collected up to and including the step is at least the target."""
        return (np.asarray(reward_after, np.float64) >= target).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, to store beside a checkpoint."""
        bounds = {} if self.action_low is None else {
            "action_low": self.action_low.tolist(), "action_high": self.action_high.tolist()}
        return {"state_mean": self.state_mean.tolist(), "state_std": self.state_std.tolist(),
                "rtg_scale": self.rtg_scale, **bounds}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        arrays = {k: np.asarray(data[k], np.float32) for k in ("action_low", "action_high") if k in data}
        return cls(np.asarray(data["state_mean"], np.float32), np.asarray(data["state_std"], np.float32),
                   float(data["rtg_scale"]), **arrays)


def top_episodes(episodes: Sequence[Episode], fraction: float) -> list[Episode]:
    """%BC data: the highest-return episodes whose lengths add up to at most `fraction` of all steps.

    The best episode is always kept; then the next best while the step budget allows (the DT
    reference's `pct_traj` rule).
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    budget = max(int(fraction * sum(len(ep) for ep in episodes)), 1)
    ranked = sorted(episodes, key=lambda ep: ep.total_return, reverse=True)
    kept, steps = ranked[:1], len(ranked[0])
    for ep in ranked[1:]:
        if steps + len(ep) > budget:
            break
        kept.append(ep)
        steps += len(ep)
    return kept


class _FlatEpisodes:
    """Every step of every episode in flat arrays, already in model units (except rewards)."""

    def __init__(self, episodes: Sequence[Episode], prep: Preprocessing) -> None:
        if not episodes:
            raise SeqlabError("the sampler needs at least one episode")
        self.lengths = np.array([len(ep) for ep in episodes], np.int64)  # (E,)
        if np.any(self.lengths == 0):
            raise SeqlabError(f"episode {int(np.argmin(self.lengths))} has no steps")
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])  # (E + 1,)
        self.returns = np.array([ep.total_return for ep in episodes], np.float64)  # (E,)
        self.states = prep.normalize_states(np.concatenate([ep.observations for ep in episodes]))  # (N, S)
        self.actions = prep.normalize_actions(np.concatenate([ep.actions for ep in episodes]))  # (N, A)
        rewards = [ep.rewards.astype(np.float64) for ep in episodes]
        self.rewards = np.concatenate(rewards)  # (N,)
        # Reward collected before each step, within its episode.
        self.reward_before = np.concatenate([np.cumsum(r) - r for r in rewards])  # (N,)
        self.timesteps = np.concatenate([np.arange(n) for n in self.lengths])  # (N,)
        self.episode_of = np.repeat(np.arange(len(episodes)), self.lengths)  # (N,)
        self.prob = self.lengths / self.lengths.sum()  # trajectories drawn in proportion to length
        self.prep = prep

    def gather(self, index: np.ndarray, real: np.ndarray, target: np.ndarray, loss: np.ndarray,
               right_padded: bool) -> TrajectoryBatch:
        """index, real, loss: (B, K) global step indices (anything where not real), real-step and
        loss masks; target: (B, K) return each step's RTG counts down from."""
        index = np.where(real, index, 0)
        pad = ~real
        rtg = self.prep.returns_to_go(target, self.reward_before[index])
        completion = self.prep.completed(target, self.reward_before[index] + self.rewards[index])
        fields = [self.states[index], self.actions[index], rtg, self.prep.scale_rewards(self.rewards[index]),
                  completion, self.timesteps[index]]
        for value in fields:  # padding is written only now, after the mask was fixed
            value[pad] = 0
        states, actions, rtg, rewards, completion, timesteps = (torch.from_numpy(v) for v in fields)
        padding = None if right_padded else torch.from_numpy(pad)
        return TrajectoryBatch(states, actions, rtg, rewards, completion, timesteps, padding,
                               torch.from_numpy(real & loss))


class WindowSampler:
    """K-step windows of single episodes (Decision Transformer, behaviour cloning).

    As the DT reference: an episode is drawn with probability proportional to its length, the
    window start uniformly from its steps, so windows near the end are shorter than K and padded;
    RTGs count down from the episode's own return. pad="left" puts the padding before the real
    steps (the DT reference), "right" after them (CORL); both carry a mask, left padding also as
    `padding` for the attention.
    """

    def __init__(self, episodes: Sequence[Episode], prep: Preprocessing, context_len: int,
                 pad: Literal["left", "right"] = "left") -> None:
        if context_len < 1:
            raise ConfigError(f"context_len must be >= 1, got {context_len}")
        if pad not in ("left", "right"):
            raise ConfigError(f"pad must be 'left' or 'right', got {pad!r}")
        self.data = _FlatEpisodes(episodes, prep)
        self.context_len = context_len
        self.pad = pad

    def sample(self, rng: np.random.Generator, batch_size: int) -> TrajectoryBatch:
        d, k = self.data, self.context_len
        episode = rng.choice(len(d.lengths), size=batch_size, p=d.prob)  # (B,)
        length = d.lengths[episode]
        start = (rng.random(batch_size) * length).astype(np.int64)  # uniform in [0, len - 1]
        n_real = np.minimum(k, length - start)[:, None]  # (B, 1)
        column = np.arange(k)[None, :]  # (1, K)
        shift = k - n_real if self.pad == "left" else 0  # where the first real step sits
        real = (column >= shift) & (column < shift + n_real)  # (B, K), fixed before padding
        index = (d.offsets[episode] + start)[:, None] + column - shift  # (B, K)
        target = np.broadcast_to(d.returns[episode][:, None], (batch_size, k))
        return d.gather(index, real, target, np.ones_like(real), right_padded=self.pad == "right")


def chain_order(returns: np.ndarray) -> np.ndarray:
    """Agentic Transformer chain order: ascending by total return (stable for ties)."""
    return np.argsort(returns, kind="stable")


class ChainSampler:
    """Chains of hindsight for the Agentic Transformer (Liu & Abbeel, ICML 2023).

    Per row: n ~ uniform{min_trajectories..n_trajectories} episodes drawn in proportion to length
    (with replacement), sorted ascending by total return and concatenated; every episode's RTG
    counts down from the chain's best return, R_max - reward collected so far in that episode;
    the completion token of a step is 1 where that episode's reward so far, this step's included,
    is at least R_max; timesteps restart at 0 with each episode. A window of K steps is cut from the chain,
    ending at a step drawn uniformly from the steps that carry the loss (loss_on="last": the
    last, best episode; "all": every episode), and is right-padded when the chain is shorter, so
    the causal mask alone hides the padding and attention keeps its memory-efficient path.
    """

    def __init__(self, episodes: Sequence[Episode], prep: Preprocessing, context_len: int,
                 n_trajectories: int, min_trajectories: int = 1,
                 loss_on: Literal["last", "all"] = "last") -> None:
        if context_len < 1:
            raise ConfigError(f"context_len must be >= 1, got {context_len}")
        if not 1 <= min_trajectories <= n_trajectories:
            raise ConfigError(
                f"need 1 <= min_trajectories <= n_trajectories, got {min_trajectories} and {n_trajectories}")
        if loss_on not in ("last", "all"):
            raise ConfigError(f"loss_on must be 'last' or 'all', got {loss_on!r}")
        self.data = _FlatEpisodes(episodes, prep)
        self.context_len, self.loss_on = context_len, loss_on
        self.n_trajectories, self.min_trajectories = n_trajectories, min_trajectories

    def chain(self, rng: np.random.Generator) -> np.ndarray:
        """Episode indices of one chain, ascending by return."""
        d = self.data
        n = rng.integers(self.min_trajectories, self.n_trajectories + 1)
        picked = rng.choice(len(d.lengths), size=n, p=d.prob)
        return picked[chain_order(d.returns[picked])]

    def window(self, chain: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        """Global step indices (n,) of one window of `chain`, its loss mask (n,), and R_max."""
        d, k = self.data, self.context_len
        starts = np.concatenate([[0], np.cumsum(d.lengths[chain])])  # chain position of each episode
        first_loss = starts[-2] if self.loss_on == "last" else 0
        end = rng.integers(first_loss, starts[-1])  # last chain position in the window
        position = np.arange(max(0, end - k + 1), end + 1)  # (n,)
        member = np.searchsorted(starts, position, side="right") - 1  # which episode of the chain
        index = d.offsets[chain[member]] + position - starts[member]
        loss = member == len(chain) - 1 if self.loss_on == "last" else np.ones(len(position), bool)
        return index, loss, float(d.returns[chain].max())

    def sample(self, rng: np.random.Generator, batch_size: int) -> TrajectoryBatch:
        k = self.context_len
        index = np.zeros((batch_size, k), np.int64)
        loss = np.zeros((batch_size, k), bool)
        real = np.zeros((batch_size, k), bool)
        target = np.zeros((batch_size, k))
        for row in range(batch_size):
            idx, row_loss, r_max = self.window(self.chain(rng), rng)
            n = len(idx)
            index[row, :n], loss[row, :n], real[row, :n], target[row] = idx, row_loss, True, r_max
        return self.data.gather(index, real, target, loss, right_padded=True)


class SampledDataset(torch.utils.data.Dataset):
    """A sampler as a Trainer dataset of `n_samples` windows per epoch.

    `get_batch(indices)` draws a batch from a generator seeded with (seed, indices), so a batch
    depends only on its indices: runs are reproducible and resume exactly.
    """

    def __init__(self, sampler: WindowSampler | ChainSampler, n_samples: int, seed: int = 0) -> None:
        if n_samples < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
        self.sampler, self.n_samples, self.seed = sampler, n_samples, seed

    def __len__(self) -> int:
        return self.n_samples

    def get_batch(self, indices: Tensor) -> TrajectoryBatch:
        rng = np.random.default_rng([self.seed, *indices.tolist()])
        return self.sampler.sample(rng, len(indices))
