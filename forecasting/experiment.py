"""A forecasting experiment end to end: config -> data -> model -> Trainer -> test -> MLflow.

An experiment config is built from layers, later ones winning: the model's defaults, the preset
of the reference script for (model, dataset) in `forecasting/configs/<model>/<dataset>.yaml`
(with its per-horizon values), a user YAML file, and `key=value` overrides.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from forecasting.data import CATALOGUE, ForecastData, load_forecast_data
from forecasting.models import MODELS
from forecasting.task import ForecastTask
from seqlab.config import ConfigError, flatten, from_dict, load_yaml, merge, to_dict
from seqlab.experiment import ExperimentIdentity, closing_run
from seqlab.tracking import NullTracker, Tracker, environment_tags
from seqlab.tracking.runs import TrackingConfig, open_tracker, read_json, write_json
from seqlab.train import FitResult, Trainer, TrainConfig
from seqlab.train.runtime import seed_everything

log = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class ForecastDataConfig:
    name: str = "ETTh1"
    """A dataset of the catalogue (ETTh1, ETTh2, ETTm1, ETTm2, Weather, Exchange, ILI) or a CSV path."""
    data_dir: str | None = None
    """Folder holding the catalogue files (default: $SEQLAB_DATA_DIR, ../shared/data, shipped files)."""
    seq_len: int = 96
    """Look-back length L."""
    horizon: int = 96
    """Forecast horizon H."""
    freq: str | None = None
    """Time-feature frequency code (h, t, d, w, m, s); None infers it from the timestamps."""
    date_column: str = "date"
    missing_values: list[float] = field(default_factory=list)
    """Cell values that mean "missing" (e.g. [-9999]); empty and NaN cells always do."""
    fill_missing: Literal["error", "interpolate"] = "error"
    """Missing cells are an error, or filled by linear interpolation in time."""

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.horizon < 1:
            raise ValueError(f"seq_len and horizon must be >= 1, got {self.seq_len} and {self.horizon}")


@dataclass(frozen=True)
class ForecastExperimentConfig(ExperimentIdentity):
    model_name: str = "itransformer"
    model: Any = None
    """The model's config dataclass; its seq_len and horizon always equal the data's."""
    data: ForecastDataConfig = field(default_factory=ForecastDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: str = "mse"
    tracking: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="seqlab-forecasting"))
    output_dir: str = "outputs"
    """Runs write their checkpoints and results under <output_dir>/<run key>/."""

    def as_dict(self) -> dict[str, Any]:
        """Nested dict that `from_raw` reads back; model keys derived from the data are left out."""
        out = to_dict(self)
        model = {k: v for k, v in (out["model"] or {}).items() if k not in ("seq_len", "horizon")}
        model = {k: v for k, v in model.items() if not (k in DATA_FIELDS and v is None)}
        out["model"] = {"name": out.pop("model_name"), **model}
        return out

    @property
    def run_key(self) -> str:
        d = self.data
        name = Path(d.name).stem if d.name not in CATALOGUE else d.name
        return f"{name}-{self.model_name}-L{d.seq_len}-H{d.horizon}-s{self.train.seed}-{self.fingerprint[:8]}"


def preset_path(model_name: str, data_name: str) -> Path:
    return PRESET_DIR / model_name / f"{data_name}.yaml"


def build_config(
    model: str | None = None,
    data: str | None = None,
    horizon: int | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> ForecastExperimentConfig:
    """Resolve defaults < reference preset < config file < explicit arguments < overrides."""
    user = load_yaml(config_file) if config_file else {}
    explicit: dict[str, Any] = {}
    if model is not None:
        explicit["model"] = {"name": model}
    if data is not None:
        explicit.setdefault("data", {})["name"] = data
    if horizon is not None:
        explicit.setdefault("data", {})["horizon"] = horizon
    wanted = merge(merge(_model_as_section(user), explicit), _model_as_section(overrides or {}))

    model_name = wanted.get("model", {}).get("name", ForecastExperimentConfig.model_name)
    data_name = wanted.get("data", {}).get("name", ForecastDataConfig.name)
    raw: dict[str, Any] = {}
    preset = preset_path(model_name, data_name)
    if preset.is_file():
        raw = load_yaml(preset)
    raw = merge(raw, wanted)
    by_horizon = raw.pop("horizons", {}) or {}
    chosen_horizon = raw.get("data", {}).get("horizon", ForecastDataConfig.horizon)
    if chosen_horizon in by_horizon:
        # Per-horizon values of the preset yield to anything the user set explicitly.
        raw = merge(merge(raw, by_horizon[chosen_horizon]), wanted)
    return from_raw(raw)


def _model_as_section(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept `model: itransformer` as shorthand for `model: {name: itransformer}`."""
    if isinstance(raw.get("model"), str):
        return {**raw, "model": {"name": raw["model"]}}
    return raw


def from_raw(raw: dict[str, Any]) -> ForecastExperimentConfig:
    """Typed experiment config from a nested dict (`model.name` picks the model config class)."""
    raw = _model_as_section(dict(raw))
    model_raw = dict(raw.pop("model", {}) or {})
    model_name = model_raw.pop("name", ForecastExperimentConfig.model_name)
    model_cls = MODELS.get(model_name)
    for key in ("seq_len", "horizon"):
        if key in model_raw:
            raise ConfigError(f"model.{key} is taken from data.{key}; set data.{key} instead")
    base = from_dict(ForecastExperimentConfig, {**raw, "model_name": model_name})
    model_raw.update(seq_len=base.data.seq_len, horizon=base.data.horizon)
    model_cfg = from_dict(model_cls.config_class, model_raw, path="model.")
    if base.loss not in ("mse", "mae"):
        raise ConfigError(f"loss must be 'mse' or 'mae', got {base.loss!r}")
    return dataclasses.replace(base, model=model_cfg)


DATA_FIELDS = ("n_variates", "n_time_features")


def build_model(cfg: ForecastExperimentConfig, n_variates: int, n_time_features: int) -> Any:
    """Instantiate the model, filling the config fields that describe the data (N, k) from it."""
    found = {"n_variates": n_variates, "n_time_features": n_time_features}
    fill = {}
    for name in DATA_FIELDS:
        if not hasattr(cfg.model, name):
            continue
        value = getattr(cfg.model, name)
        if value is None:
            fill[name] = found[name]
        elif value != found[name]:
            raise ConfigError(f"model.{name}={value} but the data {cfg.data.name} has {found[name]}")
    return MODELS.get(cfg.model_name)(dataclasses.replace(cfg.model, **fill))


# ------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class ExperimentResult:
    run_id: str | None
    run_dir: Path
    test: dict[str, float]
    fit: FitResult
    config: ForecastExperimentConfig
    test_samples_per_second: float


def run_experiment(
    cfg: ForecastExperimentConfig, resume: bool = False, tracker: Tracker | None = None
) -> ExperimentResult:
    """Train, restore the best epoch, test on every test window, and log it all."""
    d = cfg.data
    data = load_forecast_data(d.name, d.seq_len, d.horizon, d.data_dir, d.freq, d.date_column, d.missing_values,
                              d.fill_missing)
    if not resume and (cfg.run_dir / "last.pt").exists():
        log.warning("%s holds checkpoints of an earlier run of this config; starting afresh replaces them "
                    "(pass resume to continue that run instead)", cfg.run_dir)
    seed_everything(cfg.train.seed)  # the initial weights are part of the experiment
    model = build_model(cfg, data.n_variates, data.n_time_features)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    tracker = tracker if tracker is not None else open_tracker(cfg.tracking, cfg.run_dir, cfg.run_key, resume)
    with closing_run(tracker):
        _log_setup(tracker, cfg, data, model)
        trainer = Trainer(
            model,
            ForecastTask(cfg.loss, scale=data.scaler.std),
            cfg.train,
            cfg.run_dir,
            tracker=tracker,
            fingerprint=cfg.fingerprint,
        )
        fit = trainer.fit(data.train, data.val, resume=resume)
        started = time.perf_counter()
        test = trainer.evaluate(data.test, prefix="test")
        test_rate = len(data.test) / (time.perf_counter() - started)
        tracker.log_metrics(
            {**test, "test/samples_per_s": test_rate, "train/samples_per_s": fit.samples_per_second,
             "train/seconds": fit.train_seconds},
            step=fit.epochs_completed,
        )
        write_json(cfg.run_dir / "result.json", {"run_id": tracker.run_id, "test": test,
                                                  "best_epoch": fit.best_epoch, "epochs": fit.epochs_completed})
        _log_outputs(tracker, cfg, data, trainer, fit)
    return ExperimentResult(tracker.run_id, cfg.run_dir, test, fit, cfg, test_rate)


def _log_setup(tracker: Tracker, cfg: ForecastExperimentConfig, data: ForecastData, model: Any) -> None:
    tracker.set_tags(
        {
            **environment_tags(),
            "seqlab.field": "forecasting",
            "seqlab.config_hash": cfg.fingerprint,
            "seqlab.model": cfg.model_name,
            "seqlab.dataset": cfg.data.name,
            "seqlab.seed": str(cfg.train.seed),
        }
    )
    params = flatten(cfg.as_dict())
    params.update(
        {
            "data.path": str(data.path),
            "data.freq_resolved": data.freq,
            "data.n_variates": data.n_variates,
            "data.windows": f"{len(data.train)}/{len(data.val)}/{len(data.test)}",
            "model.n_parameters": sum(p.numel() for p in model.parameters()),
        }
    )
    tracker.log_params(params)
    tracker.log_text(to_yaml_experiment(cfg), "config.yaml")


def to_yaml_experiment(cfg: ForecastExperimentConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.as_dict(), sort_keys=False)


def _log_outputs(
    tracker: Tracker, cfg: ForecastExperimentConfig, data: ForecastData, trainer: Trainer, fit: FitResult
) -> None:
    best = cfg.run_dir / "best.pt"
    if cfg.tracking.log_checkpoint and best.exists():
        tracker.log_artifact(best, "checkpoints")
    if cfg.tracking.plots and not isinstance(tracker, NullTracker):
        from forecasting import plots

        tracker.log_figure(plots.loss_curves(fit.history), "plots/loss_curves.png")
        tracker.log_figure(plots.test_forecasts(trainer.model, data, trainer.device), "plots/test_forecasts.png")
