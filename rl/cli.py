"""`seqlab rl ...`: offline RL datasets (and, later, training and evaluation).

Only argparse is imported at registration; gymnasium, SB3 and torch load when a command runs.
Each command is one `_add_<command>(commands)` function, so new ones slot in beside `collect`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rl", help="offline RL: datasets, decision transformers")
    commands = parser.add_subparsers(dest="rl_command", required=True, metavar="COMMAND")
    _add_collect(commands)


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
    # REMAINDER, parsed again below: `<preset> --out DIR key=value` must work in any order.
    collect.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE")
    collect.set_defaults(func=_collect)


def _collect(args: argparse.Namespace) -> int:
    from rl.collect import LEVELS, collect, load_collect_config
    from seqlab.config import parse_overrides

    rest = argparse.ArgumentParser(prog="seqlab rl collect", add_help=False)
    rest.add_argument("--out", default=args.out)
    rest.add_argument("overrides", nargs="*")
    extra = rest.parse_intermixed_args(args.overrides)
    overrides = parse_overrides(extra.overrides)
    if extra.out is not None:
        overrides.setdefault("out_dir", extra.out)
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
