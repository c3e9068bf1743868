"""Normalized scores: 100 · (R − R_random) / (R_expert − R_random).

D4RL (Fu et al., arXiv 2004.07219) normalizes returns by a random and an expert policy's return
per env; `d4rl/infos.py` (PyPI d4rl 1.1) holds them as REF_MIN_SCORE / REF_MAX_SCORE, the same for
every dataset of an env (random, medium, medium-replay, medium-expert, expert) and for v0/v1/v2
(research notes rl.md §6). `OfflineEnv.get_normalized_score` returns the fraction; like every
paper, we report 100 times it.

Those constants belong to D4RL's data and the mujoco-py envs it was collected on. Datasets we
collect ourselves (gymnasium v5 envs, our own expert) carry their measured random and expert
returns in their metadata (`ref_min_score`, `ref_max_score`, Minari's names), and Minari datasets
may carry them too; a dataset's own references always win over the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import overload

import numpy as np

from rl.data import EpisodeDataset
from seqlab.errors import SeqlabError

D4RL_SOURCE = "d4rl/infos.py, PyPI d4rl 1.1 (REF_MIN_SCORE, REF_MAX_SCORE)"
D4RL_REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    # env: (random return, expert return)
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}
_D4RL_NAME = re.compile(r"^(?P<env>[a-z0-9]+)([-_][a-z_-]+)?(-v[012])?$")


class ScoreError(SeqlabError, ValueError):
    """No reference returns are known for a name or dataset, or they span no range."""


@dataclass(frozen=True)
class ReferenceReturns:
    """The returns that map to normalized scores 0 (random) and 100 (expert), and where they come from."""

    random: float
    expert: float
    source: str

    def __post_init__(self) -> None:
        if not self.expert > self.random:
            raise ScoreError(f"reference returns from {self.source}: the expert return {self.expert} must exceed "
                             f"the random return {self.random}")

    def normalize(self, ret: float | np.ndarray) -> float | np.ndarray:
        """100 · (ret − random) / (expert − random), elementwise on arrays."""
        score = 100.0 * (np.asarray(ret, dtype=np.float64) - self.random) / (self.expert - self.random)
        return float(score) if np.ndim(score) == 0 else score


def reference_returns(env_or_dataset: str | EpisodeDataset) -> ReferenceReturns:
    """A dataset's own references (metadata), else D4RL's table for a D4RL env or dataset name.

    Names: 'halfcheetah', 'halfcheetah-medium-v2', 'hopper_medium_replay-v2' (D4RL's file stem).
    Gymnasium ids of other versions ('HalfCheetah-v5') are refused: D4RL's constants are not
    references for other envs or experts; pass the dataset, whose metadata holds measured ones.
    """
    if isinstance(env_or_dataset, EpisodeDataset):
        meta = env_or_dataset.metadata
        if meta.get("ref_min_score") is not None and meta.get("ref_max_score") is not None:
            return ReferenceReturns(float(meta["ref_min_score"]), float(meta["ref_max_score"]),
                                    f"metadata of {env_or_dataset.source}")
        name = str(meta.get("dataset_name", ""))
        if _d4rl_env(name) is None:
            raise ScoreError(f"{env_or_dataset.source} records no reference returns (ref_min_score, ref_max_score) "
                             f"and {name!r} is not a D4RL dataset name ({', '.join(D4RL_REFERENCE_RETURNS)})")
        return reference_returns(name)
    env = _d4rl_env(env_or_dataset)
    if env is None:
        raise ScoreError(f"no reference returns for {env_or_dataset!r}: D4RL's table covers "
                         f"{', '.join(D4RL_REFERENCE_RETURNS)} (names like 'halfcheetah-medium-v2'); for other envs "
                         "pass the dataset, whose metadata holds the measured random and expert returns")
    random, expert = D4RL_REFERENCE_RETURNS[env]
    return ReferenceReturns(random, expert, D4RL_SOURCE)


@overload
def normalized_score(env_or_dataset: str | EpisodeDataset, ret: float) -> float: ...
@overload
def normalized_score(env_or_dataset: str | EpisodeDataset, ret: np.ndarray) -> np.ndarray: ...


def normalized_score(env_or_dataset: str | EpisodeDataset, ret: float | np.ndarray) -> float | np.ndarray:
    """100 · (ret − R_random) / (R_expert − R_random); works elementwise on arrays of returns."""
    return reference_returns(env_or_dataset).normalize(ret)


def _d4rl_env(name: str) -> str | None:
    """'halfcheetah_medium_replay-v2' -> 'halfcheetah'; None for names outside D4RL's table."""
    match = _D4RL_NAME.match(name.strip().lower())
    if match is None or match["env"] not in D4RL_REFERENCE_RETURNS:
        return None
    return match["env"]
