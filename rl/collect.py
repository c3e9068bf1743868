"""Our own D4RL-style datasets: train SAC, snapshot a medium and an expert policy, roll them out.

The recipe of D4RL (Fu et al., "D4RL: Datasets for Deep Data-Driven Reinforcement Learning",
arXiv 2004.07219, §5 / appendix) for the gym-mujoco tasks, with stable-baselines3 SAC on a
gymnasium v5 env (research notes rl.md §9.4):
- expert: N steps of the fully trained SAC policy, actions sampled (log-probs kept);
- medium: N steps of a policy "trained to about a third of the expert's performance";
- medium-replay: SAC's replay buffer up to the medium snapshot (its first random steps included);
- medium-expert: medium then expert.
The random and expert reference returns (mean over K episodes) go into every file's metadata
(`ref_min_score`, `ref_max_score`), so normalized scores are defined (`rl.scores`).

Choices and deviations:
- The medium snapshot is picked in hindsight: SAC trains for `sac_steps` steps with a
  deterministic evaluation (K episodes, the same reset seeds each time) every `eval_every` steps,
  the final actor is the expert and its evaluation the expert reference; medium is the earliest
  snapshot whose return reaches R_random + fraction · (R_expert − R_random). The fraction is taken
  on the normalized scale, so it also means something for negative returns.
- Rollouts stop after exactly N steps; the episode running then is kept, truncated at its end.
- Actions are stored in the env's units (SB3 keeps [-1, 1]-scaled actions in its buffer and
  they are unscaled here); `infos/action_log_probs` is the log-density of the scaled action.
- Seeds: SAC and its env use `seed`, the medium and expert rollouts `seed + 1` and `seed + 2`,
  evaluations reset with seeds `seed + 1000 + i`.
- Resumable where cheap: a file whose metadata holds the same config hash is kept; the trained
  actors are saved (`<env>-sac-policies.pt`), so changing only the dataset size re-rolls without
  retraining.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rl.data import DEFAULT_DATA_DIR, DatasetError, Episode, EpisodeDataset, MetadataValue, make_env
from rl.formats import atomic_output
from rl.formats.d4rl import read_d4rl, read_d4rl_metadata, split_episodes, write_d4rl
from seqlab.config import ConfigError, config_hash, from_dict, load_yaml, merge, require_positive, to_dict, to_yaml
from seqlab.tracking import environment_tags
from seqlab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3 import SAC

log = logging.getLogger(__name__)

PRESET_DIR = Path(__file__).resolve().parent / "configs" / "collect"
LEVELS = ("medium-replay", "medium", "expert", "medium-expert")
PACKAGES = ("seqlab", "gymnasium", "mujoco", "stable-baselines3", "torch", "numpy", "h5py", "minari")
EVAL_SEED_OFFSET = 1000


@dataclass(frozen=True)
class CollectConfig:
    env_id: str = "HalfCheetah-v5"
    """Gymnasium env id the behaviour policy is trained and rolled out on."""
    sac_steps: int = 150_000
    """Env steps of SAC training (one gradient step each after learning_starts); the final actor is the expert."""
    medium_fraction: float = 1 / 3
    """Medium snapshot: first evaluation reaching this fraction of the way from random to expert return."""
    dataset_size: int = 1_000_000
    """N, env steps rolled out for the medium and the expert dataset each."""
    seed: int = 0
    """Seed of SAC and its env; the rollouts and evaluations use offsets of it."""
    n_eval_episodes: int = 10
    """K, episodes per evaluation and per reference return."""
    eval_every: int = 5000
    """Env steps between SAC evaluations (the candidate medium snapshots)."""
    learning_starts: int = 10_000
    """Uniform random steps before SAC's first gradient step."""
    batch_size: int = 256
    """SAC minibatch size (transitions per gradient step)."""
    learning_rate: float = 3e-4
    """Adam learning rate of SAC's actor, critics and entropy coefficient."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the actor's and the critics' hidden layers."""
    gamma: float = 0.99
    """Discount factor of SAC."""
    tau: float = 0.005
    """Polyak coefficient of SAC's target critics."""
    minari: bool = False
    """Also export every dataset as a Minari dataset under <out_dir>/minari."""
    out_dir: str = str(DEFAULT_DATA_DIR)
    """Folder of the dataset files, the saved actors and the manifest."""
    progress: bool = True
    """Progress bars (shown on a terminal only)."""

    def __post_init__(self) -> None:
        require_positive(self, "sac_steps", "dataset_size", "n_eval_episodes", "eval_every", "batch_size")
        if not self.env_id:
            raise ValueError("env_id must name a gymnasium env, e.g. HalfCheetah-v5")
        if not 0 < self.medium_fraction < 1:
            raise ValueError(f"medium_fraction must be in (0, 1), got {self.medium_fraction}")
        if not 0 <= self.learning_starts < self.sac_steps:
            raise ValueError(f"learning_starts must be in [0, sac_steps={self.sac_steps}), got {self.learning_starts}")
        if self.eval_every > self.sac_steps:
            raise ValueError(f"eval_every must be <= sac_steps={self.sac_steps}, got {self.eval_every}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("gamma", "tau"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")

    @property
    def training_hash(self) -> str:
        """Hash of what shapes the SAC run (the actors, medium-replay)."""
        skip = ("dataset_size", "minari", "out_dir", "progress")
        return config_hash({k: v for k, v in to_dict(self).items() if k not in skip})

    @property
    def dataset_hash(self) -> str:
        """Hash of what shapes the rolled-out datasets."""
        return config_hash({"training": self.training_hash, "dataset_size": self.dataset_size})

    @property
    def stem(self) -> str:
        return self.env_id.lower()

    def path(self, level: str) -> Path:
        return Path(self.out_dir) / f"{self.stem}-{level}.hdf5"


@dataclass
class Policies:
    """What the SAC run leaves for the rollouts: two actors and the reference returns."""

    medium_actor: dict[str, torch.Tensor]
    expert_actor: dict[str, torch.Tensor]
    medium_step: int
    random_return: float
    expert_return: float
    eval_steps: list[int]
    eval_returns: list[float]

    @property
    def medium_return(self) -> float:
        return self.eval_returns[self.eval_steps.index(self.medium_step)]


@dataclass
class CollectResult:
    files: dict[str, Path]
    """Dataset level -> D4RL file."""
    sha256: dict[str, str]
    manifest: Path
    policies: Policies
    skipped: list[str] = field(default_factory=list)
    """Levels whose file already existed with the same config hash."""


def load_collect_config(preset: str, overrides: dict[str, Any] | None = None) -> CollectConfig:
    """A preset name (`rl/configs/collect/<name>.yaml`) or a YAML path, plus overrides."""
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
            raise ConfigError(f"unknown collect preset {preset!r}; presets: {names}, or a YAML file path")
    return from_dict(CollectConfig, merge(load_yaml(path), overrides or {}))


def collect(cfg: CollectConfig) -> CollectResult:
    """Train (or reuse) the behaviour policies and write the four datasets; see the module docstring."""
    env = make_env(cfg.env_id)
    policies = _load_policies(cfg)
    skipped: list[str] = []
    if policies is not None and _is_current(cfg.path("medium-replay"), cfg.training_hash):
        skipped.append("medium-replay")
    else:
        policies, replay = train_behaviour_policy(cfg, env)
        _write(cfg, "medium-replay", replay, policies, cfg.training_hash,
               f"SB3 SAC replay buffer, env steps 1-{policies.medium_step} "
               f"(the first {cfg.learning_starts} with uniform random actions)")
        save_checkpoint({"config_hash": cfg.training_hash, **policies.__dict__}, _policies_path(cfg))
    datasets: dict[str, EpisodeDataset] = {}
    for level, actor, seed_offset, step in (("medium", policies.medium_actor, 1, policies.medium_step),
                                            ("expert", policies.expert_actor, 2, cfg.sac_steps)):
        if _is_current(cfg.path(level), cfg.dataset_hash):
            skipped.append(level)
            continue
        episodes = rollout(cfg, env, actor, cfg.dataset_size, cfg.seed + seed_offset, level)
        datasets[level] = _write(cfg, level, episodes, policies, cfg.dataset_hash,
                                 f"SB3 SAC actor after {step} of {cfg.sac_steps} env steps, sampled actions")
    if _is_current(cfg.path("medium-expert"), cfg.dataset_hash):
        skipped.append("medium-expert")
    else:
        parts = [datasets.get(level) or read_d4rl(cfg.path(level)) for level in ("medium", "expert")]
        _write(cfg, "medium-expert", EpisodeDataset.concatenate(parts, {}).episodes, policies, cfg.dataset_hash,
               "medium then expert episodes")
    env.close()
    if cfg.minari:
        _export_minari(cfg)
    files = {level: cfg.path(level) for level in LEVELS}
    sha = {level: sha256_file(path) for level, path in files.items()}
    manifest = _write_manifest(cfg, files, sha, policies)
    for level in LEVELS:
        log.info("%s  sha256 %s", files[level], sha[level])
    return CollectResult(files, sha, manifest, policies, skipped)


def train_behaviour_policy(cfg: CollectConfig, env: gym.Env) -> tuple[Policies, list[Episode]]:
    """SAC for `sac_steps` with periodic evaluations; returns the actors and medium-replay's episodes."""
    from stable_baselines3.common.callbacks import BaseCallback

    eval_env = make_env(cfg.env_id)
    random_return = mean_return(eval_env, _random_policy(eval_env, cfg.seed), cfg.n_eval_episodes, cfg.seed)
    model = _build_sac(cfg, env, buffer_size=cfg.sac_steps)
    steps: list[int] = []
    returns: list[float] = []
    actors: list[dict[str, torch.Tensor]] = []
    bar = tqdm(total=cfg.sac_steps, desc=f"SAC {cfg.env_id}", unit="step", disable=_quiet(cfg))

    class Snapshots(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(1)
            if self.num_timesteps % cfg.eval_every == 0 or self.num_timesteps == cfg.sac_steps:
                ret = mean_return(eval_env, _actor_policy(model, deterministic=True), cfg.n_eval_episodes, cfg.seed)
                steps.append(self.num_timesteps)
                returns.append(ret)
                actors.append(copy.deepcopy(model.actor.state_dict()))
                bar.set_postfix(eval_return=f"{ret:.1f}")
                log.debug("SAC step %d: eval return %.1f", self.num_timesteps, ret)
            return True

    model.learn(total_timesteps=cfg.sac_steps, callback=Snapshots())
    bar.close()
    eval_env.close()
    expert_return = returns[-1]
    target = random_return + cfg.medium_fraction * (expert_return - random_return)
    reached = [i for i, ret in enumerate(returns) if ret >= target]
    if expert_return <= random_return:
        log.warning("the SAC policy (return %.1f) does not beat random actions (%.1f): raise sac_steps",
                    expert_return, random_return)
    medium = reached[0] if reached else len(returns) - 1
    if medium == len(returns) - 1:
        log.warning("only the final SAC policy reaches the medium target %.1f: medium equals expert", target)
    log.info("random return %.1f, expert return %.1f (step %d), medium return %.1f (step %d)",
             random_return, expert_return, steps[-1], returns[medium], steps[medium])
    policies = Policies(actors[medium], actors[-1], steps[medium], random_return, expert_return, steps, returns)
    return policies, replay_episodes(model, policies.medium_step)


def replay_episodes(model: SAC, n_steps: int) -> list[Episode]:
    """The first `n_steps` transitions of SAC's replay buffer (one env), as episodes."""
    buf = model.replay_buffer
    dones = buf.dones[:n_steps, 0].astype(bool)
    timeouts = buf.timeouts[:n_steps, 0].astype(bool)  # SB3: time-limit truncations, counted in dones too
    flat = {
        "observations": buf.observations[:n_steps, 0],
        "next_observations": buf.next_observations[:n_steps, 0],
        "actions": model.policy.unscale_action(buf.actions[:n_steps, 0]),
        "rewards": buf.rewards[:n_steps, 0],
        "terminals": dones & ~timeouts,
        "timeouts": timeouts,
    }
    return split_episodes(flat, {}, "the SAC replay buffer")


def rollout(cfg: CollectConfig, env: gym.Env, actor: dict[str, torch.Tensor], n_steps: int, seed: int,
            desc: str) -> list[Episode]:
    """`n_steps` env steps of the actor with sampled actions, as episodes with D4RL's infos."""
    model = _build_sac(cfg, env, buffer_size=1)
    model.actor.load_state_dict(actor)
    torch.manual_seed(seed)  # after _build_sac, which seeds torch with cfg.seed
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    flat = {
        "observations": np.empty((n_steps, *obs_shape), np.float32),  # (N, S)
        "next_observations": np.empty((n_steps, *obs_shape), np.float32),  # (N, S)
        "actions": np.empty((n_steps, *act_shape), np.float32),  # (N, A)
        "rewards": np.empty(n_steps, np.float32),
        "terminals": np.zeros(n_steps, bool),
        "timeouts": np.zeros(n_steps, bool),
    }
    infos = {"action_log_probs": np.empty(n_steps, np.float32)}
    sim = getattr(env.unwrapped, "data", None)  # MuJoCo state, stored like D4RL's infos/qpos, infos/qvel
    if sim is not None:
        infos.update(qpos=np.empty((n_steps, len(sim.qpos))), qvel=np.empty((n_steps, len(sim.qvel))))
    obs, _ = env.reset(seed=seed)
    for t in tqdm(range(n_steps), desc=f"{desc} rollout", unit="step", disable=_quiet(cfg)):
        with torch.no_grad():
            scaled, log_prob = model.actor.action_log_prob(torch.as_tensor(obs, dtype=torch.float32)[None])
        action = model.policy.unscale_action(scaled.numpy()[0])
        if sim is not None:
            infos["qpos"][t], infos["qvel"][t] = sim.qpos, sim.qvel
        next_obs, reward, terminated, truncated, _ = env.step(action)
        flat["observations"][t], flat["next_observations"][t], flat["actions"][t] = obs, next_obs, action
        flat["rewards"][t], flat["terminals"][t], flat["timeouts"][t] = reward, terminated, truncated
        infos["action_log_probs"][t] = float(log_prob)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return split_episodes(flat, infos, f"the {desc} rollout")


def mean_return(env: gym.Env, policy: Callable[[np.ndarray], np.ndarray], n_episodes: int, seed: int) -> float:
    """Mean undiscounted return over `n_episodes` episodes reset with seeds seed + 1000 + i."""
    totals = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + EVAL_SEED_OFFSET + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        totals.append(total)
    return float(np.mean(totals))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _build_sac(cfg: CollectConfig, env: gym.Env, buffer_size: int) -> SAC:
    from stable_baselines3 import SAC

    # Small MLPs: the CPU is as fast as a GPU here, and the run does not depend on the device.
    return SAC("MlpPolicy", env, learning_rate=cfg.learning_rate, buffer_size=buffer_size,
               learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
               policy_kwargs={"net_arch": list(cfg.hidden_sizes)}, seed=cfg.seed, device="cpu", verbose=0)


def _actor_policy(model: SAC, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            scaled = model.actor(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=deterministic)
        return model.policy.unscale_action(scaled.numpy()[0])

    return act


def _random_policy(env: gym.Env, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    env.action_space.seed(seed)
    return lambda obs: env.action_space.sample()


def _write(cfg: CollectConfig, level: str, episodes: list[Episode], policies: Policies, hash_: str,
           behaviour: str) -> EpisodeDataset:
    """Write one level with its provenance; returns the dataset."""
    import gymnasium

    spec = gymnasium.spec(cfg.env_id)
    dataset = EpisodeDataset(episodes, cfg.env_id)
    returns = dataset.returns()
    metadata: dict[str, MetadataValue] = {
        "dataset": level,
        "dataset_name": cfg.path(level).stem,
        "env_id": cfg.env_id,
        "env_version": int(spec.version or 0),
        "max_episode_steps": int(spec.max_episode_steps or 0),
        "behaviour_policy": behaviour,
        "algorithm": "SAC (stable-baselines3)",
        "seed": cfg.seed,
        "medium_step": policies.medium_step,
        "medium_eval_return": policies.medium_return,
        "ref_min_score": policies.random_return,
        "ref_max_score": policies.expert_return,
        "ref_min_policy": "uniform random actions",
        "ref_max_policy": f"SAC actor after {cfg.sac_steps} steps, deterministic",
        "ref_n_episodes": cfg.n_eval_episodes,
        "n_steps": dataset.n_steps,
        "n_episodes": len(episodes),
        "mean_return": float(returns.mean()),
        "config_hash": hash_,
        "config": to_yaml(cfg),
        "collector": "seqlab rl collect",
        **{f"versions/{name}": v for name, v in package_versions().items()},
    }
    commit = environment_tags().get("mlflow.source.git.commit")
    if commit:
        metadata["git_commit"] = commit
    dataset.metadata = metadata
    write_d4rl(dataset, cfg.path(level))
    log.info("wrote %s: %d steps, %d episodes, mean return %.1f", cfg.path(level), dataset.n_steps,
             len(episodes), metadata["mean_return"])
    return dataset


def _is_current(path: Path, hash_: str) -> bool:
    if not path.is_file():
        return False
    try:
        current = read_d4rl_metadata(path).get("config_hash") == hash_
    except DatasetError:
        current = False
    if current:
        log.info("keeping %s (same config)", path)
    return current


def _policies_path(cfg: CollectConfig) -> Path:
    return Path(cfg.out_dir) / f"{cfg.stem}-sac-policies.pt"


def _load_policies(cfg: CollectConfig) -> Policies | None:
    path = _policies_path(cfg)
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        log.warning("retraining: %s", exc)
        return None
    if state.get("config_hash") != cfg.training_hash:
        return None
    return Policies(**{k: state[k] for k in Policies.__dataclass_fields__})


def _export_minari(cfg: CollectConfig) -> None:
    import shutil

    from rl.formats.minari import read_minari, write_minari

    root = Path(cfg.out_dir) / "minari"
    for level in LEVELS:
        dataset_id = f"seqlab/{cfg.stem}/{level}-v0"
        target = root / dataset_id
        if target.exists():
            if read_minari(target).metadata.get("config_hash") == read_d4rl_metadata(cfg.path(level)).get("config_hash"):
                continue
            shutil.rmtree(target)
        write_minari(read_d4rl(cfg.path(level)), dataset_id, root)
        log.info("wrote Minari dataset %s under %s", dataset_id, root)


def _write_manifest(cfg: CollectConfig, files: dict[str, Path], sha: dict[str, str], policies: Policies) -> Path:
    from rl.scores import ReferenceReturns

    entries = {}
    for level, path in files.items():
        meta = read_d4rl_metadata(path)
        entries[level] = {"file": path.name, "sha256": sha[level], "n_steps": meta["n_steps"],
                          "n_episodes": meta["n_episodes"], "mean_return": meta["mean_return"],
                          "behaviour_policy": meta["behaviour_policy"]}
        if policies.expert_return > policies.random_return:
            refs = ReferenceReturns(policies.random_return, policies.expert_return, "the SAC run")
            entries[level]["normalized_mean_return"] = refs.normalize(float(meta["mean_return"]))
    manifest = {
        "env_id": cfg.env_id,
        "config": to_dict(cfg),
        "training_hash": cfg.training_hash,
        "dataset_hash": cfg.dataset_hash,
        "references": {"random_return": policies.random_return, "expert_return": policies.expert_return,
                       "n_episodes": cfg.n_eval_episodes},
        "medium": {"step": policies.medium_step, "eval_return": policies.medium_return},
        "evaluations": [{"step": s, "return": r} for s, r in zip(policies.eval_steps, policies.eval_returns)],
        "datasets": entries,
        "versions": package_versions(),
    }
    path = Path(cfg.out_dir) / f"{cfg.stem}-manifest.json"
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return path


def _quiet(cfg: CollectConfig) -> bool:
    return not (cfg.progress and sys.stderr.isatty())
