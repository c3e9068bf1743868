"""`seqlab rl ...`: offline RL datasets, training and evaluation.

Only argparse is imported at registration; gymnasium, SB3 and torch load when a command runs.
Each command is one `_add_<command>(commands)` function, so new ones slot in beside `collect`.
"""

from __future__ import annotations

import argparse

from seqlab.cli import IntermixedParser, add_run_arguments, run_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rl", help="offline RL: datasets, decision transformers")
    commands = parser.add_subparsers(dest="rl_command", required=True, metavar="COMMAND",
                                     parser_class=IntermixedParser)
    _add_collect(commands)
    _add_train(commands)
    _add_evaluate(commands)


def _add_collect(commands: argparse._SubParsersAction) -> None:
    collect = commands.add_parser(
        "collect",
        help="train SAC and write D4RL-style medium / medium-replay / expert / medium-expert datasets",
        description="D4RL's recipe on a gymnasium env: SAC is trained, snapshotted at about a third of the "
        "expert's return (medium) and at the end (expert), and both are rolled out; the files hold the "
        "measured random and expert returns. Files that exist with the same config are kept. Extra "
        "KEY=VALUE arguments override the preset, e.g. dataset_size=200000 seed=1 minari=true.",
    )
    collect.add_argument("--out", default=None, help="output folder (out_dir); default outputs/rl/data")
    collect.add_argument("preset", help="preset in rl/configs/collect (halfcheetah, tiny) or a YAML file")
    collect.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    collect.set_defaults(func=_collect)


def _collect(args: argparse.Namespace) -> int:
    from rl.collect import LEVELS, collect, load_collect_config
    from seqlab.config import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.out is not None:
        overrides.setdefault("out_dir", args.out)
    cfg = load_collect_config(args.preset, overrides)
    print(f"collecting {cfg.env_id}: {cfg.sac_steps} SAC steps, {cfg.dataset_size} steps per rollout, "
          f"seed {cfg.seed}, into {cfg.out_dir}")
    result = collect(cfg)
    p = result.policies
    print(f"reference returns: random {p.random_return:.1f}, expert {p.expert_return:.1f} "
          f"(medium snapshot at step {p.medium_step}, return {p.medium_return:.1f})")
    for level in LEVELS:
        kept = " (kept)" if level in result.skipped else ""
        print(f"  {level:<14} {result.files[level]}  sha256 {result.sha256[level]}{kept}")
    print(f"manifest: {result.manifest}")
    return 0


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a decision transformer (or BC) on an offline dataset and evaluate it in the env",
        description="Train with a preset of rl/configs/train (dt_paper, dt_cpu, at_cpu, bc_cpu) or a YAML file; "
        "the last weights are evaluated in the env and saved as <run dir>/agent.pt. Extra KEY=VALUE "
        "arguments override config values, e.g. train.max_steps=2000 eval.n_episodes=5.",
    )
    train.add_argument("preset", help="preset name or YAML file")
    train.add_argument("--data", default=None, help="dataset: D4RL .hdf5, Minari dataset, kzl .pkl, or a name")
    add_run_arguments(train)
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from rl.experiment import build_config, run_experiment

    cfg = build_config(args.preset, run_overrides(args, {"data": "data.dataset"}))
    result = run_experiment(cfg, resume=args.resume)
    print(f"{cfg.model_name} on {cfg.data.dataset}: {result.fit.global_step} steps; last checkpoint:")
    _print_summary(result.evaluation)
    print(f"agent: {result.agent_path}" + (f"; MLflow run {result.run_id}" if result.run_id else ""))
    return 0


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="evaluate a trained agent (agent.pt or its run folder) in its env",
        description="Roll the agent out in N vector envs at once for each target return; reports returns and "
        "normalized scores (mean and std over episodes; first, last and best trial for the Agentic Transformer).",
    )
    evaluate.add_argument("agent", help="agent.pt, or the run folder holding it")
    evaluate.add_argument("--targets", type=float, nargs="+", default=None,
                          help="target returns (env units; default: the training run's)")
    evaluate.add_argument("--episodes", type=int, default=None, help="episodes per target (default: the training run's)")
    evaluate.add_argument("--num-envs", type=int, default=10)
    evaluate.add_argument("--trials", type=int, default=None,
                          help="trials per episode (Agentic Transformer; default: the training run's)")
    evaluate.add_argument("--seed", type=int, default=10_000)
    evaluate.add_argument("--kv-cache", action="store_true", help="decode against a KV cache")
    evaluate.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    evaluate.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    evaluate.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from rl.evaluate import EvalConfig
    from rl.experiment import evaluate_agent
    from seqlab.config import ConfigError

    def config(env_id: str, stored: dict) -> EvalConfig:
        targets = stored.get("target_returns") if args.targets is None else args.targets
        if not targets:
            raise ConfigError(f"{args.agent} does not record the target returns it was trained for "
                              "(written by an older seqlab): pass --targets")
        def given_or_stored(value: int | None, key: str, default: int) -> int:
            return stored.get(key, default) if value is None else value  # 0 given stays 0: EvalConfig refuses it

        return EvalConfig(env_id=env_id, target_returns=tuple(targets),
                          n_episodes=given_or_stored(args.episodes, "n_episodes", 10), num_envs=args.num_envs,
                          seed=args.seed, n_trials=given_or_stored(args.trials, "n_trials", 1),
                          use_kv_cache=args.kv_cache, precision=args.precision)

    summary, run_id = evaluate_agent(args.agent, config, track=not args.no_track)
    _print_summary(summary)
    if run_id:
        print(f"MLflow run {run_id}")
    return 0


def _print_summary(metrics: dict[str, float]) -> None:
    for key, value in sorted(metrics.items()):
        print(f"  {key:<40} {value:10.2f}")
