"""A PDE-surrogate experiment end to end: dataset -> split -> model -> Trainer -> rollout test -> MLflow.

The config is built from layers, later ones winning: the defaults, an experiment preset in
`pde/configs/experiments/<name>.yaml` (or any YAML file), and `key=value` overrides. The dataset
is a file (NetCDF, zarr, or a provided .pt/.mat file) or the name of a generation preset, which
is simulated once into `<output_dir>/data/` and reused.

The test is what the field reports: autoregressive rollouts of every test trajectory from its
first `in_frames` frames to its last frame, scored in physical units (nRMSE at t = 1, 10 and the
last step, relative L2, VRMSE, correlation time), plus the trained surrogate as one file
(`surrogate.pt`) that `seqlab pde infer` runs over new initial conditions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pde import metrics
from pde.data import (
    DatasetError,
    FieldStats,
    FrameWindows,
    open_dataset,
    resolve_path,
    sample_params,
    split_by_trajectory,
)
from pde.models import MODELS
from pde.rollout import rollout
from pde.surrogate import PROVENANCE_ATTRS, SURROGATE_FILE, Surrogate
from pde.task import PDETask, PDETaskConfig
from seqlab.config import ConfigError, flatten, to_dict
from seqlab.experiment import ExperimentIdentity, closing_run, layered_config
from seqlab.tracking import NullTracker, Tracker, environment_tags
from seqlab.tracking.runs import TrackingConfig, open_tracker, write_json
from seqlab.train import FitResult, Trainer, TrainConfig
from seqlab.train.runtime import autocast, seed_everything

log = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parent / "configs" / "experiments"
# Model config fields that describe the data; filled from the dataset when left unset.
DATA_FIELDS = ("channels", "spatial_dims", "n_param")


@dataclass(frozen=True)
class PDEDataConfig:
    dataset: str = "ns_tiny"
    """A dataset file or name in the data folders, or a generation preset (`seqlab pde presets`)."""
    data_dir: str | None = None
    """Folder with dataset files (default: $SEQLAB_DATA_DIR, then ../shared/data/pde)."""
    variables: list[str] = field(default_factory=list)
    """Fields the model reads as channels, in order; empty: every (sample, time, ...) variable."""
    params: list[str] = field(default_factory=list)
    """PDE parameters (attrs or per-sample variables) given to the model for conditioning."""
    n_train: int | None = None
    """Training trajectories; None with n_val/n_test None: an 80/10/10 split."""
    n_val: int | None = None
    n_test: int | None = None
    split_seed: int = 0
    """Seed of the shuffle that assigns trajectories to splits."""
    stride: int = 1
    """Frames between the starts of consecutive training windows."""
    val_frames: int | None = None
    """Frames rolled out per validation window; None: the model's out_frames."""
    rollout_steps: int | None = None
    """Frames rolled out per test trajectory; None: every frame after the first in_frames."""

    def __post_init__(self) -> None:
        for name in ("stride", "val_frames", "rollout_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class PDEExperimentConfig(ExperimentIdentity):
    model_name: str = "factformer"
    model: Any = None
    """The model's config dataclass (`pde.models`); channels/spatial_dims/n_param follow the data."""
    data: PDEDataConfig = field(default_factory=PDEDataConfig)
    task: PDETaskConfig = field(default_factory=PDETaskConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(schedule="cosine", patience=None))
    tracking: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="seqlab-pde"))
    output_dir: str = "outputs"
    """Runs write checkpoints, the surrogate and results under <output_dir>/<run key>/."""



def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def build_config(preset: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PDEExperimentConfig:
    """Resolve defaults < experiment preset (a name in pde/configs/experiments or a YAML path) < overrides."""
    return layered_config(PDEExperimentConfig, preset, PRESET_DIR, "PDE experiment", overrides, MODELS,
                          PDEExperimentConfig.model_name, DATA_FIELDS)


# ------------------------------------------------------------------------------------- data
@dataclass
class PDEData:
    path: Path
    variables: list[str]
    attrs: dict[str, Any]
    stats: FieldStats
    train: FrameWindows
    val: FrameWindows | None
    test: Any  # xr.Dataset of the test trajectories
    spatial_dims: int


def resolve_dataset(cfg: PDEExperimentConfig) -> Path:
    """The dataset file; a generation preset is simulated once into <output_dir>/data/."""
    from pde.generate import generate, preset_names as data_presets

    name = cfg.data.dataset
    try:
        return resolve_path(name, cfg.data.data_dir)
    except DatasetError:
        if name not in data_presets():
            raise
    target = Path(cfg.output_dir) / "data" / f"{name}.nc"
    if not target.exists():
        log.info("dataset %s not found: simulating the generation preset into %s", name, target)
        generate(name, target)
    return target


def load_data(cfg: PDEExperimentConfig) -> PDEData:
    path = resolve_dataset(cfg)
    ds = open_dataset(path, chunks=None, variables=cfg.data.variables or None)
    variables = cfg.data.variables or [n for n, v in ds.data_vars.items() if v.dims[:2] == ("sample", "time")]
    if not variables:
        raise DatasetError(f"{path}: no variable with dims (sample, time, ...) to learn")
    if ds.nbytes < 4 * 2**30:  # random window access from memory, not from disk
        ds = ds.load()
    d = cfg.data
    splits = split_by_trajectory(ds, d.n_train, d.n_val, d.n_test, seed=d.split_seed)
    if splits.train.sizes["sample"] == 0 or splits.test.sizes["sample"] == 0:
        raise DatasetError(f"{path}: the split leaves no training or no test trajectory "
                           f"({splits.train.sizes['sample']}/{splits.val.sizes['sample']}/{splits.test.sizes['sample']})")
    stats = FieldStats.fit(splits.train, variables)
    in_frames, out_frames = cfg.model.in_frames, cfg.model.out_frames
    # A push-forward step grades the frames after its no-grad passes: the windows must hold them.
    pushes = cfg.task.pushforward_steps + 1 if cfg.task.pushforward_after is not None else 1
    train = FrameWindows(splits.train, variables, in_frames, out_frames * pushes, stats, d.stride, d.params)
    val = None
    if splits.val.sizes["sample"]:
        val = FrameWindows(splits.val, variables, in_frames, d.val_frames or out_frames, stats, d.stride, d.params)
    spatial = len(ds[variables[0]].dims) - 2
    return PDEData(path, variables, dict(ds.attrs), stats, train, val, splits.test, spatial)


def build_model(cfg: PDEExperimentConfig, data: PDEData) -> tuple[torch.nn.Module, Any]:
    """The model and its config, with the fields that describe the data (channels, ...) taken from it."""
    found = {"channels": len(data.variables), "spatial_dims": data.spatial_dims, "n_param": len(cfg.data.params)}
    model_cfg = dataclasses.replace(cfg.model, **{k: v for k, v in found.items() if hasattr(cfg.model, k)})
    return MODELS.get(cfg.model_name)(model_cfg), model_cfg


# ------------------------------------------------------------------------------------- test
def rollout_test(
    model: torch.nn.Module, data: PDEData, cfg: PDEExperimentConfig, device: torch.device, precision: str
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Roll every test trajectory out from its first in_frames frames; metrics in physical units.

    Returns (metrics, prediction, truth), the fields (B, T, C, *S) in physical units.
    """
    in_frames = cfg.model.in_frames
    test = data.test
    fields = np.stack([np.asarray(test[v].values, dtype=np.float32) for v in data.variables], axis=2)
    truth_all = torch.from_numpy(fields)  # (B, T_all, C, *S)
    steps = cfg.data.rollout_steps or truth_all.shape[1] - in_frames
    if truth_all.shape[1] < in_frames + steps:
        raise DatasetError(f"{data.path}: test trajectories have {truth_all.shape[1]} frames; in_frames + "
                           f"rollout_steps = {in_frames + steps}")
    params = torch.from_numpy(sample_params(test, cfg.data.params)) if cfg.data.params else None
    initial = data.stats.normalize(truth_all[:, :in_frames]).to(device)
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode(), autocast(device, precision):
        result = rollout(model, initial, steps, params.to(device) if params is not None else None)
    seconds = time.perf_counter() - started
    pred = data.stats.denormalize(result.frames.float().cpu())
    truth = truth_all[:, in_frames:in_frames + steps]
    finite = torch.isfinite(pred).flatten(1).all(dim=1)
    dt = float(data.attrs.get("dt", 1.0))
    at = metrics.nrmse_at(pred, truth, (1, 10, steps))
    out = {f"test/nrmse_t{step}": value for step, value in at.items()}
    out.update({
        "test/nrmse_last": at[steps],
        "test/rel_l2": float(metrics.relative_l2(pred, truth).mean()),
        "test/vrmse": float(metrics.vrmse(pred, truth).mean()),
        "test/correlation_time": float(metrics.correlation_time(pred, truth, dt=dt).mean()),
        "test/diverged": float((~finite).sum()),
        "test/rollout_trajectories_per_s": pred.shape[0] / seconds,
        "test/rollout_steps": float(steps),
    })
    return out, pred, truth


# ------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class PDEExperimentResult:
    run_id: str | None
    run_dir: Path
    test: dict[str, float]
    fit: FitResult
    config: PDEExperimentConfig
    surrogate_path: Path


def run_experiment(cfg: PDEExperimentConfig, resume: bool = False, tracker: Tracker | None = None) -> PDEExperimentResult:
    """Train, keep the best (or EMA) weights, roll out the test trajectories, save the surrogate, log it all."""
    data = load_data(cfg)
    seed_everything(cfg.train.seed)
    model, model_cfg = build_model(cfg, data)
    cfg = dataclasses.replace(cfg, model=model_cfg)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    tracker = tracker if tracker is not None else open_tracker(cfg.tracking, cfg.run_dir, cfg.run_key, resume)
    with closing_run(tracker):
        _log_setup(tracker, cfg, data, model)
        task = PDETask(cfg.task, data.stats.mean, data.stats.std)
        trainer = Trainer(model, task, cfg.train, cfg.run_dir, tracker=tracker, fingerprint=cfg.fingerprint)
        task.follow(trainer)
        fit = trainer.fit(data.train, data.val, resume=resume)
        test, pred, truth = rollout_test(trainer.model, data, cfg, trainer.device, trainer.precision)
        test["train/samples_per_s"] = fit.samples_per_second
        test["train/seconds"] = fit.train_seconds
        tracker.log_metrics(test, step=fit.global_step)
        surrogate_path = save_surrogate(cfg, data, trainer.model, cfg.run_dir / SURROGATE_FILE)
        write_json(cfg.run_dir / "result.json", {"run_id": tracker.run_id, "test": test,
                                                 "epochs": fit.epochs_completed, "steps": fit.global_step})
        _log_outputs(tracker, cfg, data, fit, pred, truth, surrogate_path)
    return PDEExperimentResult(tracker.run_id, cfg.run_dir, test, fit, cfg, surrogate_path)


def save_surrogate(cfg: PDEExperimentConfig, data: PDEData, model: torch.nn.Module, path: Path) -> Path:
    physics = {k: v for k, v in data.attrs.items() if k not in PROVENANCE_ATTRS}
    physics = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in physics.items()}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    surrogate = Surrogate(cfg.model_name, to_dict(cfg.model), state, list(data.variables),
                          list(data.stats.mean), list(data.stats.std), physics)
    return surrogate.save(path)


def _log_setup(tracker: Tracker, cfg: PDEExperimentConfig, data: PDEData, model: torch.nn.Module) -> None:
    import yaml

    tracker.set_tags({**environment_tags(), "seqlab.field": "pde", "seqlab.config_hash": cfg.fingerprint,
                      "seqlab.model": cfg.model_name, "seqlab.dataset": str(data.path.name),
                      "seqlab.seed": str(cfg.train.seed)})
    params = flatten(cfg.as_dict())
    params.update({
        "data.path": str(data.path),
        "data.equation": data.attrs.get("equation", "unknown"),
        "data.windows": f"{len(data.train)}/{len(data.val) if data.val else 0}/{data.test.sizes['sample']} traj",
        "model.n_parameters": sum(p.numel() for p in model.parameters()),
    })
    tracker.log_params(params)
    tracker.log_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False), "config.yaml")


def _log_outputs(tracker: Tracker, cfg: PDEExperimentConfig, data: PDEData, fit: FitResult,
                 pred: torch.Tensor, truth: torch.Tensor, surrogate_path: Path) -> None:
    tracker.log_artifact(surrogate_path, "surrogate")
    best = cfg.run_dir / "best.pt"
    if cfg.tracking.log_checkpoint and best.exists():
        tracker.log_artifact(best, "checkpoints")
    if cfg.tracking.plots and not isinstance(tracker, NullTracker):
        from pde import plots

        dt = float(data.attrs.get("dt", 1.0))
        steps = pred.shape[1]
        shown = sorted({1, max(1, steps // 2), steps})
        tracker.log_figure(plots.field_snapshots(pred, truth, shown, dt=dt), "plots/fields.png")
        curve = metrics.error_curve(pred, truth)
        tracker.log_figure(plots.error_curves({cfg.model_name: curve}, dt=dt), "plots/error_vs_time.png")
