"""What every field's experiment shares: the config's identity (dict form, fingerprint, run
folder), layered presets with a registry-chosen model section, and closing the tracked run with
the right status whatever happens."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from seqlab.config import ConfigError, config_hash, from_dict, load_yaml, merge, to_dict
from seqlab.registry import Registry
from seqlab.tracking import Tracker

# Train settings that change what is shown or how often, not the trained weights.
DISPLAY_KEYS = ("progress", "log_every", "checkpoint_every")


class ExperimentIdentity:
    """For frozen experiment dataclasses with `model_name`, `model`, `data`, `train`, `tracking` and
    `output_dir`: the dict form, a fingerprint of what shapes the weights, and the run folder.

    Subclasses list the top-level sections that do not shape the weights in `UNWEIGHTED`; the
    default run key names the dataset file (`data.dataset`), the model, the seed and the fingerprint.
    """

    UNWEIGHTED: ClassVar[tuple[str, ...]] = ("tracking", "output_dir")

    def as_dict(self) -> dict[str, Any]:
        """Nested dict that the field's `from_raw`/`build_config` reads back (`model.name` included)."""
        out = to_dict(self)
        out["model"] = {"name": out.pop("model_name"), **(out["model"] or {})}
        return out

    @property
    def fingerprint(self) -> str:
        """Hash of everything that shapes the trained weights (not tracking, paths or display)."""
        cfg = self.as_dict()
        for key in self.UNWEIGHTED:
            cfg.pop(key, None)
        for key in DISPLAY_KEYS:
            cfg["train"].pop(key, None)
        if cfg["train"].get("ema_decay") is None:  # added later: runs without EMA keep their old hash
            cfg["train"].pop("ema_decay", None)
        cfg.get("data", {}).pop("data_dir", None)
        return config_hash(cfg)

    @property
    def run_key(self) -> str:
        dataset = Path(self.data.dataset).stem  # type: ignore[attr-defined]
        return f"{dataset}-{self.model_name}-s{self.train.seed}-{self.fingerprint[:8]}"  # type: ignore[attr-defined]

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.run_key  # type: ignore[attr-defined]


def read_preset(preset: str | Path | None, preset_dir: Path, kind: str) -> dict[str, Any]:
    """The raw values of a preset: a name in `preset_dir` or a YAML path; {} for None."""
    if preset is None:
        return {}
    path = Path(preset)
    if not path.is_file():
        path = preset_dir / f"{preset}.yaml"
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in preset_dir.glob("*.yaml")))
            raise ConfigError(f"unknown {kind} {str(preset)!r}; presets: {names} (or a YAML path)")
    return load_yaml(path)


def typed_config(cls: type, raw: dict[str, Any], models: Registry, default_model: str,
                 data_fields: Sequence[str] = ()) -> Any:
    """`cls` from raw values whose `model` section (`model: name` or `{name: ..., ...}`) is typed by the
    registered model's `config_class`; `data_fields` of the model come from the data, never from config."""
    raw = dict(raw)
    model_raw = raw.pop("model", {}) or {}
    model_raw = {"name": model_raw} if isinstance(model_raw, str) else dict(model_raw)
    model_name = model_raw.pop("name", default_model)
    model_cls = models.get(model_name)
    for key in data_fields:
        if key in model_raw:
            raise ConfigError(f"model.{key} is taken from the data; do not set it")
    base = from_dict(cls, {**raw, "model_name": model_name})
    return dataclasses.replace(base, model=from_dict(model_cls.config_class, model_raw, path="model."))


def layered_config(cls: type, preset: str | Path | None, preset_dir: Path, kind: str,
                   overrides: dict[str, Any] | None, models: Registry, default_model: str,
                   data_fields: Sequence[str] = ()) -> Any:
    """defaults < preset < overrides, typed (see `typed_config`)."""
    raw = merge(read_preset(preset, preset_dir, kind), overrides or {})
    return typed_config(cls, raw, models, default_model, data_fields)


@contextmanager
def closing_run(tracker: Tracker) -> Iterator[Tracker]:
    """Close the tracked run as FINISHED, or KILLED (Ctrl-C) / FAILED, and re-raise."""
    try:
        yield tracker
    except BaseException as exc:
        tracker.close("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker.close("FINISHED")
