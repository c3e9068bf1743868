"""The pickle of the Decision Transformer reference code (kzl/decision-transformer), read.

Chen et al., "Decision Transformer: Reinforcement Learning via Sequence Modeling", NeurIPS 2021,
arXiv 2106.01345. `gym/data/download_d4rl_datasets.py` writes `data/{env}-{dataset}-v2.pkl`: a
list with one dict per episode, keys `observations, next_observations, actions, rewards,
terminals` (research notes rl.md §7.2). It has no timeouts: an episode whose last step is not
terminal ended at the time limit, so that step becomes a truncation.

Deviations:
- Unpickling is restricted to numpy arrays and plain containers, so a file cannot run code
  (pickle's usual risk); anything else is a DatasetError.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rl.data import DatasetError, EpisodeDataset, make_episode, resolve_env_id

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the globals numpy arrays need."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_kzl_pickle(path: str | os.PathLike, env_id: str | None = None) -> EpisodeDataset:
    """Read a list-of-episode-dicts pickle; `env_id` is needed (the file does not record one)."""
    path = Path(path)
    try:
        paths = _ArrayUnpickler(io.BytesIO(path.read_bytes())).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable pickle of numpy arrays ({type(exc).__name__}: {exc})") from None
    if not isinstance(paths, list) or not all(isinstance(p, dict) for p in paths):
        raise DatasetError(f"{path}: expected a list of episode dicts, got {type(paths).__name__}")
    episodes = []
    for i, p in enumerate(paths):
        missing = [key for key in REQUIRED_KEYS if key not in p]
        if missing:
            raise DatasetError(f"{path}: episode {i}: missing key(s) {', '.join(map(repr, missing))}; "
                               f"each episode dict holds {', '.join(REQUIRED_KEYS)} (and next_observations)")
        arrays = {key: np.asarray(value) for key, value in p.items()}
        n = len(arrays["rewards"])
        for key in (*REQUIRED_KEYS, "next_observations"):
            if key in arrays and len(arrays[key]) != n:
                raise DatasetError(f"{path}: episode {i}: key {key!r} has {len(arrays[key])} rows, "
                                   f"'rewards' has {n}")
        terminals = arrays["terminals"].astype(bool).reshape(-1)
        final = arrays["next_observations"][-1] if "next_observations" in arrays and n else None
        episodes.append(make_episode(arrays["observations"], arrays["actions"], arrays["rewards"],
                                     terminals, np.zeros_like(terminals), final))
    metadata = {"format": "kzl_pickle", "source": str(path), "dataset_name": path.stem}
    dataset = EpisodeDataset(episodes, resolve_env_id(None, env_id, str(path)), metadata)
    dataset.validate()
    return dataset
