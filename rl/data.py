"""Offline RL datasets: one in-memory episode layout for every file format.

D4RL HDF5, Minari and the kzl pickle all map to a list of `Episode`s; models, samplers and the
evaluator only ever see this layout. The readers and writers live in `rl.formats`; this module
holds the layout, its validation, the env compatibility check and `load_dataset`, which picks
the reader from the path (facts on the formats: research notes rl.md §7).

An episode ends exactly at its last step: the last step is a termination or a truncation, and
no earlier step is either. Flat formats (D4RL) are split on `terminals | timeouts`; a trailing
run of steps that neither terminates nor times out (the data ran out mid-episode) is kept as an
episode truncated at its last step, the same as a time limit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqlab.errors import SeqlabError

if TYPE_CHECKING:
    import gymnasium as gym

log = logging.getLogger(__name__)

MetadataValue = str | int | float
DEFAULT_DATA_DIR = Path("outputs") / "rl" / "data"
"""Where `seqlab rl collect` writes by default; bare dataset names are also looked up here."""
FILE_SUFFIXES = (".hdf5", ".h5", ".pkl", ".pickle")


class DatasetError(SeqlabError):
    """A dataset file is malformed; the message names the file, key or field and what was expected."""


class EnvError(SeqlabError):
    """An env id gymnasium does not know, or an env whose spaces seqlab cannot use."""


@dataclass
class Episode:
    """One episode of T steps.

    observations: (T, S) float32, the state the action was taken in.
    actions: (T, A) float32.
    rewards: (T,) float32, the reward after step t.
    terminations: (T,) bool, True at a step that ended the episode in a terminal state.
    truncations: (T,) bool, True at a step where a time limit cut the episode.
    final_observation: (S,) the observation after the last step, when the format stores it
        (D4RL next_observations, Minari's T+1-th observation); None otherwise.
    infos: per-step extras, each (T, ...), e.g. D4RL's action_log_probs, qpos, qvel.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    final_observation: np.ndarray | None = None
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())

    @property
    def next_observations(self) -> np.ndarray:
        """(T, S): the observation after each step; needs `final_observation`."""
        if self.final_observation is None:
            raise DatasetError("this episode has no final observation, so next_observations is undefined")
        return np.concatenate([self.observations[1:], self.final_observation[None]], axis=0)

    def validate(self, where: str) -> None:
        """Check shapes, dtypes, finiteness and the end-of-episode flags; `where` prefixes errors."""
        T = len(self.rewards)
        if T == 0:
            raise DatasetError(f"{where}: the episode has no steps")
        expected = {
            "observations": (2, self.observations),
            "actions": (2, self.actions),
            "rewards": (1, self.rewards),
            "terminations": (1, self.terminations),
            "truncations": (1, self.truncations),
        }
        for key, (ndim, array) in expected.items():
            if array.ndim != ndim or len(array) != T:
                shape = "(T,)" if ndim == 1 else "(T, dim)"
                raise DatasetError(f"{where}: key {key!r} has shape {array.shape}, expected {shape} with T={T}")
        for key in ("terminations", "truncations"):
            if getattr(self, key).dtype != np.bool_:
                raise DatasetError(f"{where}: key {key!r} must be bool, got {getattr(self, key).dtype}")
        for key, array in self.infos.items():
            if len(array) != T:
                raise DatasetError(f"{where}: key 'infos/{key}' has {len(array)} rows, expected T={T}")
        if self.final_observation is not None and self.final_observation.shape != self.observations.shape[1:]:
            raise DatasetError(f"{where}: the final observation has shape {self.final_observation.shape}, "
                               f"expected {self.observations.shape[1:]}")
        for key in ("observations", "actions", "rewards"):
            bad = ~np.isfinite(getattr(self, key))
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise DatasetError(f"{where}: key {key!r} holds NaN or inf (first at step {step})")
        ends = self.terminations | self.truncations
        if not ends[-1]:
            raise DatasetError(f"{where}: the last step is neither a termination nor a truncation")
        if ends[:-1].any():
            step = int(np.flatnonzero(ends[:-1])[0])
            raise DatasetError(f"{where}: step {step} of {T} ends the episode early (terminations/truncations)")


@dataclass
class EpisodeDataset:
    """Episodes of one env plus where they came from.

    metadata: provenance, e.g. env_id, dataset name, behaviour policy, seed, package versions;
    `ref_min_score` / `ref_max_score` (random and expert returns) when known, `source` (the file).
    """

    episodes: list[Episode]
    env_id: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    @property
    def observation_dim(self) -> int:
        return int(self.episodes[0].observations.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.episodes[0].actions.shape[1])

    @property
    def n_steps(self) -> int:
        return sum(len(ep) for ep in self.episodes)

    @property
    def source(self) -> str:
        """The file the episodes were read from, for error messages."""
        return str(self.metadata.get("source", f"dataset for {self.env_id}"))

    def returns(self) -> np.ndarray:
        """(E,) float64: the undiscounted return of every episode."""
        return np.array([ep.rewards.sum(dtype=np.float64) for ep in self.episodes])

    def lengths(self) -> np.ndarray:
        """(E,) int64: the number of steps of every episode."""
        return np.array([len(ep) for ep in self.episodes], dtype=np.int64)

    def validate(self) -> None:
        """Every episode valid and of the same observation and action dimensions."""
        if not self.episodes:
            raise DatasetError(f"{self.source}: the dataset holds no episodes")
        for i, ep in enumerate(self.episodes):
            ep.validate(f"{self.source}: episode {i}")
            for key, dim in (("observations", self.observation_dim), ("actions", self.action_dim)):
                if getattr(ep, key).shape[1] != dim:
                    raise DatasetError(f"{self.source}: episode {i}: key {key!r} has dimension "
                                       f"{getattr(ep, key).shape[1]}, episode 0 has {dim}")
            if set(ep.infos) != set(self.episodes[0].infos):
                raise DatasetError(f"{self.source}: episode {i} has infos {sorted(ep.infos)}, "
                                   f"episode 0 has {sorted(self.episodes[0].infos)}")

    @classmethod
    def concatenate(cls, datasets: Sequence[EpisodeDataset], metadata: dict[str, MetadataValue]) -> EpisodeDataset:
        """The episodes of `datasets` in order (D4RL's medium-expert = medium + expert)."""
        env_ids = {ds.env_id for ds in datasets}
        if len(env_ids) != 1:
            raise DatasetError(f"cannot concatenate datasets of different envs: {sorted(env_ids)}")
        episodes = [ep for ds in datasets for ep in ds.episodes]
        shared = set.intersection(*(set(ep.infos) for ep in episodes))
        if any(set(ep.infos) != shared for ep in episodes):  # keep only the extras all of them record
            episodes = [Episode(ep.observations, ep.actions, ep.rewards, ep.terminations, ep.truncations,
                                ep.final_observation, {k: ep.infos[k] for k in shared}) for ep in episodes]
        return cls(episodes, env_ids.pop(), dict(metadata))


def make_episode(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
    final_observation: np.ndarray | None = None,
    infos: dict[str, np.ndarray] | None = None,
) -> Episode:
    """An Episode in the canonical dtypes; an unflagged last step (data ran out) becomes a truncation."""
    truncations = np.asarray(truncations, dtype=bool).reshape(-1).copy()
    terminations = np.asarray(terminations, dtype=bool).reshape(-1)
    if len(truncations) and not (terminations[-1] or truncations[-1]):
        truncations[-1] = True
    actions = np.asarray(actions, dtype=np.float32)
    return Episode(
        observations=np.asarray(observations, dtype=np.float32),
        actions=actions.reshape(len(actions), -1),
        rewards=np.asarray(rewards, dtype=np.float32).reshape(-1),
        terminations=terminations,
        truncations=truncations,
        final_observation=None if final_observation is None else np.asarray(final_observation, dtype=np.float32),
        infos=dict(infos or {}),
    )


def resolve_env_id(recorded: str | None, requested: str | None, source: str) -> str:
    """The dataset's env id: the recorded one must match a requested one; one of them must exist."""
    if recorded and requested and recorded != requested:
        raise DatasetError(f"{source} was collected on env {recorded!r}, but env {requested!r} was asked for")
    env_id = recorded or requested
    if not env_id:
        raise DatasetError(f"{source} does not record its env id; pass env_id (a gymnasium id such as "
                           "'HalfCheetah-v5'; D4RL's v2 files were collected on the mujoco-py v3 envs)")
    return env_id


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make`, with unknown ids (and envs that fail to build) as an EnvError naming the id."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise EnvError(f"gymnasium does not know env id {env_id!r}: {exc}") from None
    except ImportError as exc:
        raise EnvError(f"env {env_id!r} needs a package that is not installed: {exc}") from None


def check_env_compat(dataset: EpisodeDataset, env: gym.Env | str) -> None:
    """The dataset's observation and action dimensions match the env's (flat Box) spaces."""
    import gymnasium as gym

    if isinstance(env, str):
        env = make_env(env)
        try:
            check_env_compat(dataset, env)
        finally:
            env.close()
        return
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    for key, space, dim in (("observations", env.observation_space, dataset.observation_dim),
                            ("actions", env.action_space, dataset.action_dim)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise EnvError(f"env {env_id!r}: its {key[:-1]} space {space} is not a flat Box; "
                           "seqlab's RL models need vector observations and continuous actions")
        if space.shape[0] != dim:
            raise DatasetError(f"{dataset.source}: key {key!r} has dimension {dim}, but env {env_id!r} "
                               f"expects {space.shape[0]} ({space})")


def load_dataset(
    path_or_id: str | os.PathLike,
    env_id: str | None = None,
    data_dir: str | os.PathLike | None = None,
    check_env: bool = True,
) -> EpisodeDataset:
    """Read a dataset in any supported format.

    `path_or_id` is one of
    - a D4RL HDF5 file (`*.hdf5`, `*.h5` with flat `observations`, `terminals`, `timeouts`, ...),
    - a kzl pickle (`*.pkl`, `*.pickle`: a list of episode dicts),
    - a Minari dataset directory (holding `data/metadata.json`), its `data/` folder or its
      `main_data.hdf5`,
    - a bare file name or stem, looked up in `data_dir`, $SEQLAB_DATA_DIR/rl,
      ../shared/data/rl and outputs/rl/data,
    - a Minari dataset id (`mujoco/halfcheetah/medium-v0`) under $MINARI_DATASETS_PATH
      (default ~/.minari/datasets); nothing is downloaded.

    `env_id` must match the env the file records; files that record none need it. With
    `check_env`, the env is built and its spaces checked against the data.
    """
    from rl.formats import d4rl, kzl, minari

    path = _resolve_path(Path(path_or_id), data_dir)
    if path is None and Path(path_or_id).suffix in FILE_SUFFIXES:
        folders = ", ".join(str(p) for p in _search_dirs(data_dir))
        raise DatasetError(f"{path_or_id}: no such file (bare names are also looked for in: {folders})")
    if path is None:
        dataset = minari.read_minari_id(str(path_or_id), env_id, searched=_search_dirs(data_dir))
    elif path.is_dir() or minari.is_minari_file(path):
        dataset = minari.read_minari(path, env_id)
    elif path.suffix in (".pkl", ".pickle"):
        dataset = kzl.read_kzl_pickle(path, env_id)
    elif path.suffix in (".hdf5", ".h5"):
        dataset = d4rl.read_d4rl(path, env_id)
    else:
        raise DatasetError(f"{path}: unknown dataset format {path.suffix!r}; expected a D4RL .hdf5/.h5 file, "
                           "a kzl .pkl pickle or a Minari dataset directory")
    if check_env:
        check_env_compat(dataset, dataset.env_id)
    log.info("read %d episodes (%d steps) of %s from %s", len(dataset.episodes), dataset.n_steps,
             dataset.env_id, dataset.source)
    return dataset


def _search_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    from seqlab.datadirs import field_data_dirs

    dirs = field_data_dirs("rl", data_dir)
    return dirs if data_dir is not None else [*dirs, DEFAULT_DATA_DIR]


def _resolve_path(path: Path, data_dir: str | os.PathLike | None) -> Path | None:
    """The file or directory `path` names, trying the data folders for bare names; None if none."""
    if path.exists():
        return path
    if path.is_absolute() or len(path.parts) > 1:
        return None
    for folder in _search_dirs(data_dir):
        for candidate in (folder / path, folder / f"{path}.hdf5"):
            if candidate.exists():
                return candidate
    return None
