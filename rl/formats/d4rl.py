"""D4RL's flat HDF5 layout (gym-mujoco v2 files), read and written.

Fu et al., "D4RL: Datasets for Deep Data-Driven Reinforcement Learning", arXiv 2004.07219. The
layout matched is the one `d4rl/offline_env.py::get_dataset` (PyPI d4rl 1.1) reads, per research
notes rl.md §7.1: N transitions as flat arrays

    observations (N, S) float32     actions (N, A) float32     rewards (N,) float32
    terminals (N,) bool             timeouts (N,) bool         next_observations (N, S) float32
    infos/action_log_probs (N,)     infos/qpos (N, nq)         infos/qvel (N, nv)
    metadata/*                      scalars: algorithm, provenance; arrays: policy weights

Episodes end where `terminals | timeouts` is set (`sequence_dataset`'s rule).

Deviations:
- D4RL's `sequence_dataset` drops the steps after the last boundary; they are kept here as one
  episode truncated at its end, so no collected step is lost (the kzl pickle also drops them).
- Rewards stored as (N, 1) by older files are squeezed, as `get_dataset` does.
- v0 files without `timeouts` are refused: their episode boundaries at time limits are lost.
- Non-scalar `metadata/*` entries (the behaviour policy's weights) are not read; only scalars
  become `EpisodeDataset.metadata`. Our files store the env id and provenance there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from rl.data import DatasetError, Episode, EpisodeDataset, MetadataValue, make_episode, resolve_env_id
from rl.formats import atomic_output

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
LAYOUT = "a D4RL file holds flat arrays observations (N, S), actions (N, A), rewards (N,), terminals (N,), timeouts (N,)"
READ_ONLY_METADATA = ("source", "format")
"""Metadata keys that describe a read, not the data; never written back."""


def read_d4rl(path: str | os.PathLike, env_id: str | None = None) -> EpisodeDataset:
    """Read a D4RL HDF5 file and split it into episodes on terminals | timeouts."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED_KEYS if not isinstance(f.get(key), h5py.Dataset)]
            if missing:
                raise DatasetError(f"{path}: missing key(s) {', '.join(map(repr, missing))}; {LAYOUT}")
            flat = {key: f[key][()] for key in (*REQUIRED_KEYS, "next_observations") if key in f}
            infos = _read_tree(f["infos"]) if isinstance(f.get("infos"), h5py.Group) else {}
            metadata = _scalars(_read_tree(f["metadata"])) if isinstance(f.get("metadata"), h5py.Group) else {}
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    _check_flat(path, flat, infos)
    episodes = split_episodes(flat, infos, str(path))
    metadata = {**metadata, "format": "d4rl", "source": str(path)}
    metadata.setdefault("dataset_name", path.stem)
    dataset = EpisodeDataset(episodes, resolve_env_id(_str(metadata.get("env_id")), env_id, str(path)), metadata)
    dataset.validate()
    return dataset


def read_d4rl_metadata(path: str | os.PathLike) -> dict[str, MetadataValue]:
    """The scalar `metadata/*` entries of a D4RL file, without reading its arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _scalars(_read_tree(f["metadata"])) if isinstance(f.get("metadata"), h5py.Group) else {}
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None


def split_episodes(flat: dict[str, np.ndarray], infos: dict[str, np.ndarray], source: str) -> list[Episode]:
    """Flat D4RL arrays -> episodes ending at every terminals | timeouts step (plus a trailing rest)."""
    n = len(flat["observations"])
    obs = flat["observations"].astype(np.float32, copy=False)  # (N, S)
    actions = flat["actions"].astype(np.float32, copy=False).reshape(n, -1)  # (N, A)
    rewards = flat["rewards"].astype(np.float32, copy=False).reshape(n)  # (N,)
    terminals = flat["terminals"].astype(bool).reshape(n)
    timeouts = flat["timeouts"].astype(bool).reshape(n)
    next_obs = flat.get("next_observations")
    if next_obs is not None:
        next_obs = next_obs.astype(np.float32, copy=False)
    stops = np.flatnonzero(terminals | timeouts) + 1
    if len(stops) == 0 or stops[-1] != n:
        log.info("%s ends mid-episode: its last %d steps are kept as an episode truncated at its end",
                 source, n - (stops[-1] if len(stops) else 0))
        stops = np.append(stops, n)
    starts = np.concatenate([[0], stops[:-1]])
    return [
        make_episode(obs[s:e], actions[s:e], rewards[s:e], terminals[s:e], timeouts[s:e],
                     None if next_obs is None else next_obs[e - 1], {k: v[s:e] for k, v in infos.items()})
        for s, e in zip(starts.tolist(), stops.tolist())
    ]


def write_d4rl(dataset: EpisodeDataset, path: str | os.PathLike, compression: str | None = "gzip") -> Path:
    """Write `dataset` in the D4RL layout, atomically; metadata (env id included) under metadata/*."""
    import h5py

    dataset.validate()
    episodes = dataset.episodes
    flat = {
        "observations": np.concatenate([ep.observations for ep in episodes]),
        "actions": np.concatenate([ep.actions for ep in episodes]),
        "rewards": np.concatenate([ep.rewards for ep in episodes]),
        "terminals": np.concatenate([ep.terminations for ep in episodes]),
        "timeouts": np.concatenate([ep.truncations for ep in episodes]),
    }
    if all(ep.final_observation is not None for ep in episodes):
        flat["next_observations"] = np.concatenate([ep.next_observations for ep in episodes])
    else:
        log.warning("%s: some episodes have no final observation; next_observations is not written", path)
    flat.update({f"infos/{k}": np.concatenate([ep.infos[k] for ep in episodes]) for k in episodes[0].infos})
    metadata = {k: v for k, v in dataset.metadata.items() if k not in READ_ONLY_METADATA and v is not None}
    metadata["env_id"] = dataset.env_id
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for key, array in flat.items():
            f.create_dataset(key, data=array, compression=compression)
        for key, value in metadata.items():
            f.create_dataset(f"metadata/{key}", data=value)
    return Path(path)


def _check_flat(path: Path, flat: dict[str, np.ndarray], infos: dict[str, np.ndarray]) -> None:
    obs = flat["observations"]
    if obs.ndim != 2:
        raise DatasetError(f"{path}: key 'observations' has shape {obs.shape}, expected (N, S)")
    n = len(obs)
    if n == 0:
        raise DatasetError(f"{path}: key 'observations' has no rows")
    for key in ("actions", "rewards", "terminals", "timeouts"):
        shape = flat[key].shape
        if not (len(shape) == 1 or (len(shape) == 2 and (key == "actions" or shape[1] == 1))):
            expected = "(N, A)" if key == "actions" else "(N,) or (N, 1)"
            raise DatasetError(f"{path}: key {key!r} has shape {shape}, expected {expected}")
    rows = {key: len(array) for key, array in flat.items()} | {f"infos/{k}": len(v) for k, v in infos.items()}
    for key, count in rows.items():
        if count != n:
            raise DatasetError(f"{path}: key {key!r} has {count} rows, but 'observations' has {n}")
    if "next_observations" in flat and flat["next_observations"].shape != obs.shape:
        raise DatasetError(f"{path}: key 'next_observations' has shape {flat['next_observations'].shape}, "
                           f"expected {obs.shape} like 'observations'")


def _read_tree(group) -> dict[str, np.ndarray]:
    """Every dataset under an h5py group, by path relative to it ('qpos', 'policy/fc0/weight')."""
    import h5py

    out: dict[str, np.ndarray] = {}
    group.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _scalars(tree: dict[str, np.ndarray]) -> dict[str, MetadataValue]:
    """The scalar entries as Python str/int/float (policy weights and other arrays are skipped)."""
    out: dict[str, MetadataValue] = {}
    for key, value in tree.items():
        value = np.asarray(value)
        if value.shape != ():
            continue
        value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        out[key] = int(value) if isinstance(value, (bool, np.bool_)) else value
    return out


def _str(value: MetadataValue | None) -> str | None:
    return None if value is None else str(value)
