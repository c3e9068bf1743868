"""Offline RL datasets: one in-memory episode layout for every file format.

D4RL HDF5, Minari and the kzl pickle all map to a list of `Episode`s; models, samplers and the
evaluator only ever see this layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqlab.errors import SeqlabError


class DatasetError(SeqlabError):
    """A dataset file is malformed; the message names the file, key or field and what was expected."""


@dataclass
class Episode:
    """One episode of T steps.

    observations: (T, S) float32, the state the action was taken in.
    actions: (T, A) float32.
    rewards: (T,) float32, the reward after step t.
    terminations: (T,) bool, True at a step that ended the episode in a terminal state.
    truncations: (T,) bool, True at a step where a time limit cut the episode.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())


@dataclass
class EpisodeDataset:
    """Episodes of one env plus where they came from.

    metadata: provenance, e.g. env_id, dataset name, behaviour policy, seed, package versions.
    """

    episodes: list[Episode]
    env_id: str
    metadata: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def observation_dim(self) -> int:
        return int(self.episodes[0].observations.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.episodes[0].actions.shape[1])

    @property
    def n_steps(self) -> int:
        return sum(len(ep) for ep in self.episodes)
