"""A trained PDE surrogate as one self-contained file: model, normalization and the physics it learned.

A batch job, a notebook or another machine needs nothing else to roll the model out: the file
holds the model's registry name and config, its weights, the dataset variables it reads (the
channel order), their training-split mean/std, and the dataset attrs that define the physics
(equation, resolution, viscosity, dt, ...). Before a rollout the surrogate checks those attrs
against the input dataset, so a model trained on ν=1e-3 at 64² is not silently applied to
another flow. Files are written atomically and read with `torch.load(weights_only=True)`.

A surrogate conditioned on PDE parameters (`data.params`) records their names, so that a batch
job reads each trajectory's values from its input (a per-sample variable or an attr) and passes
them to `rollout`; they are not part of the checked physics. A steady operator
(Darcy's coefficient -> solution) also records its input field and that field's statistics, and
is applied once (`apply`) instead of rolled out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqlab.errors import SeqlabError
from seqlab.train.checkpoint import load_checkpoint, save_checkpoint

SURROGATE_FILE = "surrogate.pt"

# Keys that older surrogate files lack; such files load with the defaults.
OPTIONAL_KEYS = ("params", "inputs", "input_mean", "input_std")

# Dataset attrs that describe where data came from, not the physics: they may differ freely.
PROVENANCE_ATTRS = frozenset({
    "seed", "seqlab_version", "source", "solver", "created", "n_samples", "note", "preset",
    "solver_seconds", "solver_device", "solver_threads", "solver_dt", "config", "t_start",
    "initial_condition",
})


class SurrogateMismatchError(SeqlabError):
    """The input dataset describes other physics than the surrogate was trained on."""


@dataclass
class Surrogate:
    """Everything needed to roll a trained model out on new initial conditions.

    model_name: registry name in `pde.models.MODELS`.
    model_config: the model's config as a plain dict.
    state_dict: the trained weights.
    variables: dataset variables read as channels, in channel order (a steady operator's output).
    mean, std: per-channel statistics of the training split (physical units).
    physics: the training dataset's attrs minus provenance (equation, resolution, dt, ...).
    params: PDE parameters the model is conditioned on (`data.params`), in order; empty: none.
    inputs, input_mean, input_std: a steady operator's input fields and their training statistics;
        empty for a trajectory surrogate (it reads `variables`).
    """

    model_name: str
    model_config: dict[str, Any]
    state_dict: dict[str, Tensor]
    variables: list[str]
    mean: list[float]
    std: list[float]
    physics: dict[str, Any]
    params: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    input_mean: list[float] = field(default_factory=list)
    input_std: list[float] = field(default_factory=list)

    @property
    def in_frames(self) -> int:
        return int(self.model_config["in_frames"])

    @property
    def steady(self) -> bool:
        """A steady operator (inputs -> variables), applied once rather than rolled out."""
        return bool(self.inputs)

    def build(self) -> nn.Module:
        """The model with its trained weights, in eval mode."""
        from pde.models import build_model

        model = build_model(self.model_name, self.model_config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    # ------------------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        state = {
            "model_name": self.model_name,
            "model_config": self.model_config,
            "state_dict": self.state_dict,
            "variables": list(self.variables),
            "mean": [float(m) for m in self.mean],
            "std": [float(s) for s in self.std],
            "physics": self.physics,
            "params": list(self.params),
            "inputs": list(self.inputs),
            "input_mean": [float(m) for m in self.input_mean],
            "input_std": [float(s) for s in self.input_std],
        }
        return save_checkpoint({"kind": "pde-surrogate", **state}, path)

    @classmethod
    def load(cls, path: str | Path) -> Surrogate:
        state = load_checkpoint(path)
        if state.get("kind") != "pde-surrogate":
            raise SeqlabError(f"{path} is not a PDE surrogate file (kind={state.get('kind')!r})")
        required = ("model_name", "model_config", "state_dict", "variables", "mean", "std", "physics")
        return cls(**{k: state[k] for k in required}, **{k: state[k] for k in OPTIONAL_KEYS if k in state})

    # ------------------------------------------------------------------------------ checks
    def check_dataset(self, attrs: Mapping[str, Any], variables: Sequence[str], source: str) -> list[str]:
        """Raise when the dataset's physics disagrees; return the physics attrs it lacks (a warning).

        A steady operator reads its input fields, at any resolution (zero-shot super-resolution is
        what the field's operators are tested on); a trajectory surrogate its own variables, at the
        resolution it learned."""
        read = self.inputs if self.steady else self.variables
        missing_vars = [v for v in read if v not in variables]
        if missing_vars:
            raise SurrogateMismatchError(f"{source}: the surrogate reads variables {read}; missing {missing_vars}")
        absent = []
        for key, trained in self.physics.items():
            if self.steady and key == "resolution":
                continue
            if key not in attrs:
                absent.append(key)
            elif not _same(attrs[key], trained):
                raise SurrogateMismatchError(
                    f"{source}: attr {key}={_plain(attrs[key])!r} but the surrogate was trained on "
                    f"{key}={_plain(trained)!r}"
                )
        return absent

    # ------------------------------------------------------------------------------ rollout
    def normalize(self, fields: Tensor) -> Tensor:
        """(B, T, C, *S) physical -> normalized."""
        mean, std = _shaped(self.mean, fields), _shaped(self.std, fields)
        return (fields - mean) / std

    def denormalize(self, fields: Tensor) -> Tensor:
        return fields * _shaped(self.std, fields) + _shaped(self.mean, fields)

    def rollout(self, model: nn.Module, initial: Tensor, steps: int,
                params: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, T_in, C, *S) in physical units [+ params (B, P), in `self.params` order] ->
        ((B, steps, C, *S) physical, diverged_at (B,))."""
        from pde.rollout import rollout

        if self.steady:
            raise SeqlabError(f"this surrogate is a steady operator ({', '.join(self.inputs)} -> "
                              f"{', '.join(self.variables)}); apply it with Surrogate.apply, it has no rollout")
        found = 0 if params is None else params.shape[-1]
        if found != len(self.params):
            raise SeqlabError(f"the surrogate is conditioned on {len(self.params)} PDE parameters {self.params}; "
                              f"got {found}")
        result = rollout(model, self.normalize(initial), steps, params)
        return self.denormalize(result.frames), result.diverged_at

    def apply(self, model: nn.Module, inputs: Tensor) -> Tensor:
        """A steady operator on its input fields: (B, C_in, *S) physical -> (B, C, *S) physical."""
        if not self.steady:
            raise SeqlabError("this surrogate advances trajectories; roll it out with Surrogate.rollout")
        frame = inputs[:, None]  # (B, 1, C_in, *S): one input frame
        normalized = (frame - _shaped(self.input_mean, frame)) / _shaped(self.input_std, frame)
        return self.denormalize(model(normalized))[:, 0]  # (B, C, *S)


def _shaped(values: Sequence[float], like: Tensor) -> Tensor:
    """Per-channel values broadcastable over `like` (B, T, C, *S)."""
    shape = (1, 1, len(values)) + (1,) * (like.dim() - 3)
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values, for messages and comparisons."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0))
    if isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        return a_arr.shape == b_arr.shape and bool(np.all(a_arr == b_arr))
    return a == b


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


URI_FORMS = "runs:/<run id>/<artifact path>, models:/<name>/<version or @alias>, or a surrogate.pt path"


def resolve_surrogate(ref: str | Path) -> Path:
    """A surrogate file path, or an MLflow URI (`runs:/<id>/surrogate`, `models:/<name>/<version>`)
    whose artifacts hold `surrogate.pt` -> a local file."""
    text = str(ref)
    if "://" not in text and ":/" not in text:
        path = Path(text)
        if path.is_dir():
            path = path / SURROGATE_FILE
        if not path.is_file():
            raise SeqlabError(f"surrogate {ref} does not exist (expected a {SURROGATE_FILE} file or an MLflow URI)")
        return path
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    except MlflowException as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SeqlabError(f"cannot fetch the surrogate {text!r} from MLflow ({reason}); expected {URI_FORMS}") from None
    found = [local] if local.is_file() else sorted(local.rglob(SURROGATE_FILE))
    if not found:
        raise SeqlabError(f"MLflow artifacts at {ref} hold no {SURROGATE_FILE}")
    return found[0]
