"""Minari datasets, read and written through the `minari` package (0.5).

Layout matched (research notes rl.md §7.3): `<root>/<namespace>/<name>/<version>/data/` holds
`metadata.json` (spaces, env spec, `ref_min_score` / `ref_max_score`, ...) and `main_data.hdf5`
with one group `episode_{i}` per episode, whose `observations` have T+1 rows (the observation
after the last step included). Reading goes through `minari.MinariDataset`, so both storage back
ends (HDF5, Arrow) work; writing goes through `minari.create_dataset_from_buffers`, so minari's
own reader accepts what we write (`DataCollector` would need jax, which reading does not).

Deviations:
- seqlab's provenance metadata (seed, versions, config hash, ...) is stored under the extra key
  `seqlab` of metadata.json and read back from there.
- A dataset is written into a temporary root and moved into place, so an interrupted write
  leaves no half dataset that minari would refuse to overwrite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rl.data import DatasetError, EpisodeDataset, MetadataValue, make_episode, resolve_env_id

MAIN_FILE = "main_data.hdf5"
SEQLAB_KEY = "seqlab"
MINARI_KEYS = ("dataset_id", "algorithm_name", "minari_version", "ref_min_score", "ref_max_score",
               "num_episodes_average_score")
"""metadata.json entries copied into `EpisodeDataset.metadata`."""


def is_minari_file(path: Path) -> bool:
    """A Minari `main_data.hdf5` (per-episode groups), as opposed to a flat D4RL file."""
    if path.name == MAIN_FILE:
        return True
    if path.suffix not in (".hdf5", ".h5"):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "episode_0" in f and "observations" not in f
    except OSError:
        return False


def minari_root() -> Path:
    """Where minari keeps local datasets: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def read_minari(path: str | os.PathLike, env_id: str | None = None) -> EpisodeDataset:
    """Read a Minari dataset from its directory, its `data/` folder or its main_data.hdf5."""
    import minari

    data_dir = _data_dir(Path(path))
    try:
        ds = minari.MinariDataset(data_dir)
        raw = [(ep.observations, ep.actions, ep.rewards, ep.terminations, ep.truncations)
               for ep in ds.iterate_episodes()]
    except Exception as exc:  # minari surfaces assertion, key, value and OS errors for bad files
        raise DatasetError(f"{data_dir}: minari cannot read this dataset ({type(exc).__name__}: {exc})") from None
    source = str(data_dir)
    for name, space in (("observation", ds.observation_space), ("action", ds.action_space)):
        if not _is_flat_box(space):
            raise DatasetError(f"{source}: the {name} space {space} is not a flat Box; seqlab reads vector "
                               "observations and continuous actions")
    episodes = []
    for i, (obs, actions, rewards, terminations, truncations) in enumerate(raw):
        if len(obs) != len(rewards) + 1:
            raise DatasetError(f"{source}: episode {i}: key 'observations' has {len(obs)} rows, expected "
                               f"T+1 = {len(rewards) + 1} (Minari stores the observation after the last step)")
        episodes.append(make_episode(obs[:-1], actions, rewards, terminations, truncations, obs[-1]))
    stored = ds.storage.metadata
    metadata: dict[str, MetadataValue] = {k: stored[k] for k in MINARI_KEYS if stored.get(k) is not None}
    metadata.update(stored.get(SEQLAB_KEY) or {})
    metadata.update(format="minari", source=source, dataset_name=str(stored.get("dataset_id", data_dir.parent.name)))
    recorded = ds.env_spec.id if ds.env_spec is not None else None
    dataset = EpisodeDataset(episodes, resolve_env_id(recorded, env_id, source), metadata)
    dataset.validate()
    return dataset


def read_minari_id(dataset_id: str, env_id: str | None, searched: list[Path]) -> EpisodeDataset:
    """Read a local Minari dataset by id (`mujoco/halfcheetah/medium-v0`); nothing is downloaded."""
    root = minari_root()
    data_dir = root / dataset_id / "data"
    if not data_dir.is_dir():
        folders = ", ".join(str(p) for p in searched) or "none"
        raise DatasetError(
            f"no dataset file or folder {dataset_id!r} (also looked in: {folders}) and no local Minari dataset "
            f"{dataset_id!r} under {root} ($MINARI_DATASETS_PATH); seqlab does not download datasets: "
            f"fetch it with `minari download {dataset_id}` on a machine that reaches the hub"
        )
    return read_minari(data_dir, env_id)


def write_minari(dataset: EpisodeDataset, dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    """Write `dataset` as Minari dataset `dataset_id` under `root` (default: minari's own root).

    Every episode needs its final observation (Minari stores T+1 observations). Returns the
    dataset's directory; an existing one is an error, as in minari.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    dataset.validate()
    root = (Path(root) if root is not None else minari_root()).resolve()  # minari mangles relative roots
    target = root / dataset_id
    if target.exists():
        raise DatasetError(f"{target} already exists; a Minari dataset is never overwritten")
    for i, ep in enumerate(dataset.episodes):
        if ep.final_observation is None:
            raise DatasetError(f"{dataset.source}: episode {i} has no final observation; Minari stores T+1 "
                               "observations per episode")
    buffers = [
        EpisodeBuffer(id=i, observations=np.concatenate([ep.observations, ep.final_observation[None]]),
                      actions=ep.actions, rewards=ep.rewards, terminations=ep.terminations,
                      truncations=ep.truncations, infos={})
        for i, ep in enumerate(dataset.episodes)
    ]
    meta = dataset.metadata
    refs = {k: float(meta[k]) for k in ("ref_min_score", "ref_max_score")} if (
        "ref_min_score" in meta and "ref_max_score" in meta) else {}
    provenance = {k: v for k, v in meta.items() if k not in ("source", "format")} | {"env_id": dataset.env_id}
    root.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".minari-", dir=root))
    try:
        with _datasets_path(tmp_root), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")
            created = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=dataset.env_id, algorithm_name=str(meta.get("behaviour_policy", "unknown")),
                author="seqlab", code_permalink=f"seqlab@{meta.get('git_commit', 'unknown commit')}",
                description=str(meta.get("description", f"{dataset.env_id} episodes written by seqlab")), **refs,
            )
            created.storage.update_metadata({SEQLAB_KEY: provenance})
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, target)
        for namespace_file in tmp_root.rglob("namespace_metadata.json"):
            dest = root / namespace_file.relative_to(tmp_root)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(namespace_file, dest)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target


def _data_dir(path: Path) -> Path:
    """The folder holding metadata.json and main_data.hdf5."""
    for candidate in (path.parent if path.is_file() else path, path / "data"):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise DatasetError(f"{path}: not a Minari dataset (expected data/metadata.json and data/{MAIN_FILE})")


def _is_flat_box(space: Any) -> bool:
    import gymnasium as gym

    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


@contextlib.contextmanager
def _datasets_path(root: Path) -> Iterator[None]:
    """Point minari at `root` for the duration (minari reads the variable on every call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old

