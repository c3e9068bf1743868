"""A PDE-surrogate experiment end to end: dataset -> split -> model -> Trainer -> rollout test -> MLflow.

The config is built from layers, later ones winning: the defaults, an experiment preset in
`pde/configs/experiments/<name>.yaml` (or any YAML file), and `key=value` overrides. The dataset
is a file (NetCDF, zarr, or a provided .pt/.mat file) or the name of a generation preset, which
is simulated once into `<output_dir>/data/` and reused.

The test is what the field reports: autoregressive rollouts of every test trajectory from its
first `in_frames` frames to its last frame, scored in physical units (nRMSE at t = 1, 10 and the
last step, relative L2, VRMSE, correlation time), plus the trained surrogate as one file
(`surrogate.pt`) that `seqlab pde infer` runs over new initial conditions.

A preset that names `data.input` and `data.output` (Darcy's coefficient -> solution) is a steady
operator instead: static fields, one map, no rollout; `run_experiment` hands it to `pde.operator`.
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
from torch.utils.data import Dataset

from pde import metrics
from pde.data import (
    DatasetError,
    FieldStats,
    FrameWindows,
    data_variables,
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
from seqlab.experiment import ExperimentIdentity, closing_run, layered_config, read_preset
from seqlab.tracking import NullTracker, Tracker, environment_tags
from seqlab.tracking.runs import TrackingConfig, open_tracker, write_json
from seqlab.train import FitResult, Trainer, TrainConfig
from seqlab.train.runtime import autocast, seed_everything

log = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parent / "configs" / "experiments"
# Model config fields that describe the data; filled from the dataset when left unset.
DATA_FIELDS = ("channels", "spatial_dims", "n_param")
# Data fields of steady operators; trajectory configs leave them out of their dict (and run key).
OPERATOR_FIELDS = ("input", "output", "test_datasets")


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
    """Training trajectories (samples of a steady operator); None with n_val/n_test None: an 80/10/10 split."""
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
    input: str | None = None
    """Steady operator: the static field (dims (sample, *S)) the model maps from, e.g. Darcy's
    `coefficient`; None (with `output` None): a trajectory experiment."""
    output: str | None = None
    """Steady operator: the static field the model predicts, e.g. Darcy's `solution`."""
    test_datasets: list[str] = field(default_factory=list)
    """Steady operator: further test files (names or paths; another resolution is a zero-shot
    test), each scored beside the training file's own test split."""

    def __post_init__(self) -> None:
        for name in ("stride", "val_frames", "rollout_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}")
        if (self.input is None) != (self.output is None):
            raise ConfigError(f"data.input and data.output go together (a steady operator maps input -> output); "
                              f"got input={self.input!r}, output={self.output!r}")
        if self.steady:
            if self.input == self.output:
                raise ConfigError(f"data.input and data.output must be two fields, got {self.input!r} twice")
            for name in ("variables", "params", "rollout_steps", "val_frames"):
                if getattr(self, name):
                    raise ConfigError(f"data.{name} is for trajectory experiments; a steady operator reads "
                                      "data.input and data.output")
        elif self.test_datasets:
            raise ConfigError("data.test_datasets is for steady operators (set data.input and data.output); "
                              "a trajectory experiment tests on its own split")

    @property
    def steady(self) -> bool:
        """A steady operator (input field -> output field), not trajectories."""
        return self.input is not None


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

    def __post_init__(self) -> None:
        if not self.data.steady or self.model is None:
            return
        frames = (self.model.in_frames, self.model.out_frames)
        if frames != (1, 1):
            raise ConfigError(f"model.in_frames and model.out_frames must be 1 for a steady operator "
                              f"(data.input -> data.output), got {frames}")
        if self.task.pushforward_after is not None:
            raise ConfigError("task.pushforward_after must be null for a steady operator: there is no rollout")

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        if not self.data.steady:  # trajectory runs keep the fingerprints they had before these fields
            for key in OPERATOR_FIELDS:
                out["data"].pop(key)
        return out


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_kind(name: str) -> str:
    """"steady operator" or "trajectories", from the preset's YAML (no model is imported)."""
    data = read_preset(name, PRESET_DIR, "PDE experiment").get("data") or {}
    return "steady operator" if data.get("input") is not None else "trajectories"


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
    variables = cfg.data.variables or data_variables(ds)
    if not variables or any(ds[v].dims[:2] != ("sample", "time") for v in variables):
        found = ", ".join(f"{name} {ds[name].dims}" for name in (variables or ds.data_vars))
        raise DatasetError(f"{path}: a trajectory experiment learns variables with dims (sample, time, ...); found "
                           f"{found}. Static fields (sample, y, x), such as Darcy's, are learned by a steady "
                           "operator: set data.input and data.output (see the darcy_* presets)")
    if ds.nbytes < 4 * 2**30:  # random window access from memory, not from disk
        ds = ds.load()
    d = cfg.data
    splits = split_by_trajectory(ds, d.n_train, d.n_val, d.n_test, seed=d.split_seed)
    if splits.train.sizes["sample"] == 0 or splits.test.sizes["sample"] == 0:
        raise DatasetError(f"{path}: the split leaves no training or no test trajectory "
                           f"({splits.train.sizes['sample']}/{splits.val.sizes['sample']}/{splits.test.sizes['sample']})")
    in_frames, out_frames = cfg.model.in_frames, cfg.model.out_frames
    rollout_length(path, splits.test.sizes["time"], in_frames, d.rollout_steps)  # fail before training, not after
    stats = FieldStats.fit(splits.train, variables)
    # A push-forward step grades the frames after its no-grad passes: the windows must hold them.
    pushes = cfg.task.pushforward_steps + 1 if cfg.task.pushforward_after is not None else 1
    train = FrameWindows(splits.train, variables, in_frames, out_frames * pushes, stats, d.stride, d.params)
    val = None
    if splits.val.sizes["sample"]:
        val = FrameWindows(splits.val, variables, in_frames, d.val_frames or out_frames, stats, d.stride, d.params)
    spatial = len(ds[variables[0]].dims) - 2
    return PDEData(path, variables, dict(ds.attrs), stats, train, val, splits.test, spatial)


def build_model(cfg: PDEExperimentConfig, channels: int, spatial_dims: int) -> tuple[torch.nn.Module, Any]:
    """The model and its config, with the fields that describe the data (channels, ...) taken from it."""
    found = {"channels": channels, "spatial_dims": spatial_dims, "n_param": len(cfg.data.params)}
    model_cfg = dataclasses.replace(cfg.model, **{k: v for k, v in found.items() if hasattr(cfg.model, k)})
    return MODELS.get(cfg.model_name)(model_cfg), model_cfg


# ------------------------------------------------------------------------------------- test
def rollout_length(path: Path, n_frames: int, in_frames: int, rollout_steps: int | None) -> int:
    """Frames rolled out per test trajectory of `n_frames` frames: `rollout_steps`, or every frame
    after the first `in_frames`; a DatasetError when the trajectories are too short."""
    steps = rollout_steps or n_frames - in_frames
    if steps < 1 or n_frames < in_frames + steps:
        raise DatasetError(f"{path}: test trajectories have {n_frames} frames; in_frames + rollout_steps = "
                           f"{in_frames + max(steps, 1)}")
    return steps


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
    steps = rollout_length(data.path, truth_all.shape[1], in_frames, cfg.data.rollout_steps)
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
    """Train, keep the best (or EMA) weights, roll out the test trajectories, save the surrogate, log it all.

    A steady-operator config (`data.input`, `data.output`) runs `pde.operator.run_operator` instead.
    """
    if cfg.data.steady:
        from pde.operator import run_operator

        return run_operator(cfg, resume, tracker)
    data = load_data(cfg)
    cfg, model, tracker = start_run(cfg, len(data.variables), data.spatial_dims, tracker, resume)
    with closing_run(tracker):
        split = f"{len(data.train)}/{len(data.val) if data.val else 0}/{data.test.sizes['sample']} traj"
        log_setup(tracker, cfg, data.path, data.attrs, split, model)
        trainer, fit = fit_model(cfg, model, tracker, data.stats, data.train, data.val, resume)
        test, pred, truth = rollout_test(trainer.model, data, cfg, trainer.device, trainer.precision)
        surrogate = make_surrogate(cfg, trainer.model, data.attrs, data.stats)
        surrogate_path = record_result(tracker, cfg, fit, test, surrogate)
        if cfg.tracking.plots and not isinstance(tracker, NullTracker):
            _log_plots(tracker, cfg, data, pred, truth)
    return PDEExperimentResult(tracker.run_id, cfg.run_dir, test, fit, cfg, surrogate_path)


def start_run(cfg: PDEExperimentConfig, channels: int, spatial_dims: int, tracker: Tracker | None,
              resume: bool) -> tuple[PDEExperimentConfig, torch.nn.Module, Tracker]:
    """Seed, build the model for the data, make the run folder and open the tracked run (unless given).
    Returns the config with the model's data fields filled in, the model and the tracker."""
    seed_everything(cfg.train.seed)  # the initial weights too
    model, model_cfg = build_model(cfg, channels, spatial_dims)
    cfg = dataclasses.replace(cfg, model=model_cfg)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    tracker = tracker if tracker is not None else open_tracker(cfg.tracking, cfg.run_dir, cfg.run_key, resume)
    return cfg, model, tracker


def fit_model(cfg: PDEExperimentConfig, model: torch.nn.Module, tracker: Tracker, stats: FieldStats,
              train: Dataset, val: Dataset | None, resume: bool) -> tuple[Trainer, FitResult]:
    """The shared Trainer on the PDE task; `stats` (of the predicted fields) put `val/rel_l2` in physical units."""
    task = PDETask(cfg.task, stats.mean, stats.std)
    trainer = Trainer(model, task, cfg.train, cfg.run_dir, tracker=tracker, fingerprint=cfg.fingerprint)
    task.follow(trainer)
    return trainer, trainer.fit(train, val, resume=resume)


def make_surrogate(cfg: PDEExperimentConfig, model: torch.nn.Module, attrs: dict[str, Any], stats: FieldStats,
                   input_stats: FieldStats | None = None) -> Surrogate:
    """The trained model as a Surrogate; `input_stats` for a steady operator's input field.

    The physics it checks later are the dataset attrs minus provenance and minus the PDE
    parameters the model is conditioned on (those vary by input, they are read per sample)."""
    physics = {k: v for k, v in attrs.items() if k not in PROVENANCE_ATTRS and k not in cfg.data.params}
    physics = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in physics.items()}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    inputs = {} if input_stats is None else {
        "inputs": list(input_stats.variables), "input_mean": list(input_stats.mean), "input_std": list(input_stats.std)}
    return Surrogate(cfg.model_name, to_dict(cfg.model), state, list(stats.variables), list(stats.mean),
                     list(stats.std), physics, params=list(cfg.data.params), **inputs)


def record_result(tracker: Tracker, cfg: PDEExperimentConfig, fit: FitResult, test: dict[str, float],
                  surrogate: Surrogate) -> Path:
    """Log the test metrics and training speed, save the surrogate and result.json, log the artifacts."""
    test["train/samples_per_s"] = fit.samples_per_second
    test["train/seconds"] = fit.train_seconds
    tracker.log_metrics(test, step=fit.global_step)
    path = surrogate.save(cfg.run_dir / SURROGATE_FILE)
    write_json(cfg.run_dir / "result.json", {"run_id": tracker.run_id, "test": test,
                                             "epochs": fit.epochs_completed, "steps": fit.global_step})
    tracker.log_artifact(path, "surrogate")
    best = cfg.run_dir / "best.pt"
    if cfg.tracking.log_checkpoint and best.exists():
        tracker.log_artifact(best, "checkpoints")
    return path


def log_setup(tracker: Tracker, cfg: PDEExperimentConfig, path: Path, attrs: dict[str, Any], split: str,
              model: torch.nn.Module) -> None:
    """Tags, the flattened config and the data's description as params, and config.yaml."""
    import yaml

    tracker.set_tags({**environment_tags(), "seqlab.field": "pde", "seqlab.config_hash": cfg.fingerprint,
                      "seqlab.model": cfg.model_name, "seqlab.dataset": str(path.name),
                      "seqlab.seed": str(cfg.train.seed)})
    params = flatten(cfg.as_dict())
    params.update({
        "data.path": str(path),
        "data.equation": attrs.get("equation", "unknown"),
        "data.windows": split,
        "model.n_parameters": sum(p.numel() for p in model.parameters()),
    })
    tracker.log_params(params)
    tracker.log_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False), "config.yaml")


def _log_plots(tracker: Tracker, cfg: PDEExperimentConfig, data: PDEData, pred: torch.Tensor,
               truth: torch.Tensor) -> None:
    from pde import plots

    dt = float(data.attrs.get("dt", 1.0))
    steps = pred.shape[1]
    shown = sorted({1, max(1, steps // 2), steps})
    tracker.log_figure(plots.field_snapshots(pred, truth, shown, dt=dt), "plots/fields.png")
    curve = metrics.error_curve(pred, truth)
    tracker.log_figure(plots.error_curves({cfg.model_name: curve}, dt=dt), "plots/error_vs_time.png")
