"""An offline-RL experiment end to end: dataset -> sampler -> model -> Trainer -> env evaluation -> MLflow.

The config is built from layers, later ones winning: the defaults, an experiment preset in
`rl/configs/train/<name>.yaml` (or any YAML file), and `key=value` overrides.

What is reported is what the literature should report (research notes rl.md §4): the normalized
score of the **last** checkpoint, mean ± std over evaluation episodes (and over training seeds,
by running several seeds); evaluations during training are logged against the optimizer step
for the return-vs-step plot, never used to pick a checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rl.data import EpisodeDataset, load_dataset, make_env
from rl.evaluate import EvalConfig, EvalResult, evaluate, evaluate_sequential
from rl.models import MODELS
from rl.sampling import ChainSampler, Preprocessing, SampledDataset, WindowSampler, top_episodes
from rl.scores import ScoreError, reference_returns
from rl.task import ActionTask
from seqlab.config import ConfigError, flatten, from_dict, require_positive, to_dict
from seqlab.experiment import ExperimentIdentity, closing_run, layered_config
from seqlab.errors import SeqlabError
from seqlab.tracking import NullTracker, Tracker, environment_tags
from seqlab.tracking.runs import TrackingConfig, open_tracker, write_json
from seqlab.train import FitResult, Trainer, TrainConfig
from seqlab.train.checkpoint import load_checkpoint, save_checkpoint
from seqlab.train.runtime import seed_everything

log = logging.getLogger(__name__)
PRESET_DIR = Path(__file__).resolve().parent / "configs" / "train"
AGENT_FILE = "agent.pt"
DATA_FIELDS = ("state_dim", "action_dim")


@dataclass(frozen=True)
class RLDataConfig:
    dataset: str = ""
    """A D4RL HDF5 file, Minari dataset (directory or id), kzl pickle, or a name in the data folders."""
    data_dir: str | None = None
    env_id: str | None = None
    """The env to evaluate in; must match the one the dataset records (needed when it records none)."""
    rtg_scale: float = 1000.0
    """Returns-to-go and rewards are divided by this (DT: 1000 for MuJoCo)."""
    top_fraction: float = 1.0
    """Train on the best episodes holding this fraction of the steps (%BC: 0.1); states are still
    normalized with every episode's statistics."""
    pad: Literal["left", "right"] = "left"
    """Where a short window's padding goes (DT reference: left)."""

    def __post_init__(self) -> None:
        if not 0 < self.top_fraction <= 1:
            raise ConfigError(f"data.top_fraction must be in (0, 1], got {self.top_fraction}")


@dataclass(frozen=True)
class RLEvalConfig:
    target_returns: list[float] = field(default_factory=lambda: [6000.0, 12000.0])
    """Commanded returns, env reward units (DT on HalfCheetah: 6000 and 12000)."""
    n_episodes: int = 10
    """Episodes per target (per trial for the Agentic Transformer)."""
    num_envs: int = 10
    n_trials: int = 1
    """Trials back to back in one context (Agentic Transformer)."""
    every_steps: int | None = None
    """Also evaluate every this many optimizer steps (for the return-vs-step curve); None: only at the end."""
    use_kv_cache: bool = False
    seed: int = 10_000
    """Episode i is reset with seed + i; far from training seeds."""
    frames: bool = True
    """Log a strip of rendered frames of one episode when the env renders headless."""

    def __post_init__(self) -> None:
        # Checked when the config is built, not after hours of training.
        if self.every_steps is not None:
            require_positive(self, "every_steps")
        try:
            self.for_env("unchecked-env", "fp32")
        except ConfigError as exc:
            raise ConfigError(f"eval.{exc}") from None

    def for_env(self, env_id: str, precision: str) -> EvalConfig:
        """The evaluator's config for `env_id`, with the training run's autocast precision."""
        return EvalConfig(env_id=env_id, target_returns=tuple(self.target_returns), n_episodes=self.n_episodes,
                          num_envs=self.num_envs, seed=self.seed, n_trials=self.n_trials,
                          use_kv_cache=self.use_kv_cache, precision="bf16" if precision == "bf16" else "fp32")


@dataclass(frozen=True)
class RLExperimentConfig(ExperimentIdentity):
    model_name: str = "decision_transformer"
    model: Any = None
    """The model's config dataclass (`rl.models`); state_dim/action_dim follow the data."""
    data: RLDataConfig = field(default_factory=RLDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=1, max_steps=100_000, batch_size=64, optimizer="adamw", lr=1e-4, weight_decay=1e-4,
        schedule="constant", warmup_steps=10_000, grad_clip=0.25, patience=None))
    """The DT paper's optimization (research notes rl.md §3.1); one epoch of max_steps batches."""
    eval: RLEvalConfig = field(default_factory=RLEvalConfig)
    tracking: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="seqlab-rl"))
    output_dir: str = "outputs"

    UNWEIGHTED = ("tracking", "output_dir", "eval")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def build_config(preset: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RLExperimentConfig:
    """Resolve defaults < preset (a name in rl/configs/train or a YAML path) < overrides."""
    cfg = layered_config(RLExperimentConfig, preset, PRESET_DIR, "RL experiment", overrides, MODELS,
                         RLExperimentConfig.model_name, DATA_FIELDS)
    if not cfg.data.dataset:
        raise ConfigError("data.dataset is required: a D4RL HDF5 file, Minari dataset or kzl pickle")
    return cfg


# ------------------------------------------------------------------------------------- the agent
@dataclass
class Agent:
    """A trained policy as one file: model name, config and weights, the preprocessing, the env."""

    model_name: str
    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    preprocessing: dict[str, Any]
    env_id: str
    reference: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)
    """The training run's evaluation protocol (target_returns, n_trials, n_episodes), the defaults
    of `seqlab rl evaluate`; empty in agent files written before it was stored."""

    def build(self) -> tuple[torch.nn.Module, Preprocessing]:
        cls = MODELS.get(self.model_name)
        model = cls(from_dict(cls.config_class, self.model_config, path="model."))
        model.load_state_dict(self.state_dict)
        return model.eval(), Preprocessing.from_dict(self.preprocessing)

    def score_fn(self) -> Any:
        if not self.reference:
            return None
        low, high = self.reference["random"], self.reference["expert"]
        return lambda returns: 100.0 * (np.asarray(returns, np.float64) - low) / (high - low)

    def save(self, path: str | Path) -> Path:
        return save_checkpoint({"kind": "rl-agent", **dataclasses.asdict(self)}, path)

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        path = Path(path)
        if path.is_dir():
            path = path / AGENT_FILE
        state = load_checkpoint(path)
        if state.get("kind") != "rl-agent":
            raise SeqlabError(f"{path} is not an RL agent file (kind={state.get('kind')!r})")
        required = [f for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [f.name for f in required if f.name not in state]
        if missing:
            raise SeqlabError(f"{path} is an RL agent file without {', '.join(missing)}")
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state})


# ------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class RLExperimentResult:
    run_id: str | None
    run_dir: Path
    evaluation: dict[str, float]
    fit: FitResult
    config: RLExperimentConfig
    agent_path: Path


def load_data(cfg: RLExperimentConfig) -> tuple[EpisodeDataset, Preprocessing]:
    dataset = load_dataset(cfg.data.dataset, cfg.data.env_id, cfg.data.data_dir)
    env = make_env(dataset.env_id)
    try:
        space = env.action_space
        bounded = not (np.all(space.low == -1.0) and np.all(space.high == 1.0))
        bounds = (space.low, space.high) if bounded else None
    finally:
        env.close()
    return dataset, Preprocessing.from_episodes(dataset.episodes, cfg.data.rtg_scale, bounds)


def build_sampler(cfg: RLExperimentConfig, dataset: EpisodeDataset, prep: Preprocessing) -> Any:
    episodes = top_episodes(dataset.episodes, cfg.data.top_fraction) if cfg.data.top_fraction < 1 else dataset.episodes
    m = cfg.model
    if cfg.model_name == "agentic_transformer":
        return ChainSampler(episodes, prep, m.context_len, m.n_trajectories, m.min_trajectories, m.loss_on)
    return WindowSampler(episodes, prep, m.context_len, cfg.data.pad)


def summarize(results: list[EvalResult], prefix: str = "eval") -> dict[str, float]:
    """{eval/<target>/<stat>: value} for every target return."""
    out: dict[str, float] = {}
    for result in results:
        for key, value in result.summary().items():
            out[f"{prefix}/{result.target:g}/{key}"] = value
    return out


def run_experiment(cfg: RLExperimentConfig, resume: bool = False, tracker: Tracker | None = None) -> RLExperimentResult:
    """Train for max_steps, evaluate the last weights in the env, save the agent, log it all."""
    dataset, prep = load_data(cfg)
    model_cfg = dataclasses.replace(cfg.model, state_dim=dataset.observation_dim, action_dim=dataset.action_dim)
    cfg = dataclasses.replace(cfg, model=model_cfg)
    seed_everything(cfg.train.seed)
    model = MODELS.get(cfg.model_name)(model_cfg)
    steps = cfg.train.max_steps or 1
    train_data = SampledDataset(build_sampler(cfg, dataset, prep), steps * cfg.train.batch_size, cfg.train.seed)
    try:
        reference = dataclasses.asdict(reference_returns(dataset))
    except ScoreError as exc:
        log.warning("normalized scores unavailable: %s", exc)
        reference = {}
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    tracker = tracker if tracker is not None else open_tracker(cfg.tracking, cfg.run_dir, cfg.run_key, resume)
    with closing_run(tracker):
        _log_setup(tracker, cfg, dataset, model)
        curve: list[tuple[int, float]] = []

        def agent_of(trainer: Trainer) -> Agent:
            state = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
            protocol = {"target_returns": list(cfg.eval.target_returns), "n_trials": cfg.eval.n_trials,
                        "n_episodes": cfg.eval.n_episodes}
            return Agent(cfg.model_name, to_dict(model_cfg), state, prep.to_dict(), dataset.env_id, reference,
                         protocol)

        def evaluate_now(trainer: Trainer, step: int) -> dict[str, float]:
            agent = agent_of(trainer)
            policy, _ = agent.build()
            results = evaluate(policy, prep, cfg.eval.for_env(dataset.env_id, trainer.precision), agent.score_fn())
            metrics = summarize(results)
            tracker.log_metrics(metrics, step=step)
            key = "score_mean" if reference else "return_mean"
            best = max(v for k, v in metrics.items() if k.endswith("/" + key) or k.endswith("/last_" + key))
            curve.append((step, best))
            return metrics

        callbacks = []
        if cfg.eval.every_steps:
            def periodic(trainer: Trainer, state: Any) -> None:
                if state.global_step % cfg.eval.every_steps == 0 and state.global_step < steps:
                    evaluate_now(trainer, state.global_step)
            callbacks.append(periodic)
        trainer = Trainer(model, ActionTask(), cfg.train, cfg.run_dir, tracker=tracker, fingerprint=cfg.fingerprint,
                          callbacks=callbacks)
        fit = trainer.fit(train_data, None, resume=resume)
        final = evaluate_now(trainer, fit.global_step)  # the last checkpoint: the number to report
        agent = agent_of(trainer)
        agent_path = agent.save(cfg.run_dir / AGENT_FILE)
        write_json(cfg.run_dir / "result.json", {"run_id": tracker.run_id, "eval": final, "steps": fit.global_step,
                                                 "reference": reference})
        _log_outputs(tracker, cfg, agent, agent_path, curve)
    return RLExperimentResult(tracker.run_id, cfg.run_dir, final, fit, cfg, agent_path)


def evaluate_agent(path: str | Path, make_config: Any, track: bool = True,
                   tracking: TrackingConfig | None = None) -> tuple[dict[str, float], str | None]:
    """Evaluate a saved agent; `make_config(env_id, stored) -> EvalConfig`, where `stored` is the
    training run's protocol (`Agent.evaluation`). Logged as its own MLflow run (unless track is
    False). Returns (metrics, run id)."""
    agent = Agent.load(path)
    model, prep = agent.build()
    config = make_config(agent.env_id, agent.evaluation)
    metrics = summarize(evaluate(model, prep, config, agent.score_fn()))
    run_id = None
    if track:
        from seqlab.tracking.mlflow import MlflowTracker

        tracking = tracking or TrackingConfig(experiment="seqlab-rl")
        tracker = MlflowTracker(tracking.experiment, run_name=f"evaluate-{Path(path).resolve().parent.name}",
                                tracking_uri=tracking.tracking_uri)
        tracker.set_tags({**environment_tags(), "seqlab.field": "rl", "seqlab.model": agent.model_name,
                          "seqlab.env": agent.env_id, "seqlab.kind": "evaluation"})
        tracker.log_params({"agent": str(Path(path).resolve()), **{f"eval.{k}": v for k, v in
                                                                   dataclasses.asdict(config).items()}})
        tracker.log_metrics(metrics, step=0)
        tracker.close("FINISHED")
        run_id = tracker.run_id
    return metrics, run_id


def _log_setup(tracker: Tracker, cfg: RLExperimentConfig, dataset: EpisodeDataset, model: torch.nn.Module) -> None:
    import yaml

    tracker.set_tags({**environment_tags(), "seqlab.field": "rl", "seqlab.config_hash": cfg.fingerprint,
                      "seqlab.model": cfg.model_name, "seqlab.dataset": Path(cfg.data.dataset).name,
                      "seqlab.env": dataset.env_id, "seqlab.seed": str(cfg.train.seed)})
    params = flatten(cfg.as_dict())
    params.update({"data.episodes": len(dataset.episodes), "data.steps": dataset.n_steps,
                   "model.n_parameters": sum(p.numel() for p in model.parameters())})
    tracker.log_params(params)
    tracker.log_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False), "config.yaml")


def _log_outputs(tracker: Tracker, cfg: RLExperimentConfig, agent: Agent, agent_path: Path,
                 curve: list[tuple[int, float]]) -> None:
    if cfg.tracking.log_checkpoint:
        tracker.log_artifact(agent_path, "agent")
    if not cfg.tracking.plots or isinstance(tracker, NullTracker):
        return
    from rl import plots

    label = "normalized score" if agent.reference else "return"
    tracker.log_figure(plots.return_curve(curve, label), "plots/return_vs_step.png")
    if cfg.eval.frames:
        every = 100
        model, prep = agent.build()
        config = EvalConfig(env_id=agent.env_id, target_returns=(cfg.eval.target_returns[0],), n_episodes=1,
                            seed=cfg.eval.seed, frame_every=every)
        try:
            frames = evaluate_sequential(model, prep, config)[0].frames
        except Exception as exc:  # rendering needs an OpenGL backend (EGL/OSMesa) some machines lack
            log.warning("no frame strip: %s cannot render here (%s)", agent.env_id, exc)
            return
        if frames:
            title = f"{agent.env_id}, target return {cfg.eval.target_returns[0]:g}"
            tracker.log_figure(plots.frame_strip(frames[:10], every, title), "plots/episode_frames.png")
