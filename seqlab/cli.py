"""The `seqlab` command.

The core owns `seqlab ui` and `seqlab bench <field>`; each field adds its own subcommands
(`seqlab forecast ...`) through the `seqlab.commands` entry-point group, and its benchmark through
`seqlab.benchmarks`. Fields are imported only when their command runs; errors caused by bad input
(`SeqlabError`) print one line, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from importlib.metadata import entry_points

from seqlab.errors import SeqlabError


class IntermixedParser(argparse.ArgumentParser):
    """Parses positionals wherever they stand, so `train PRESET --data F key=value` keeps its
    overrides (plain argparse stops filling positionals once an option has come). Fields pass it
    as `parser_class` of their subcommands."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._inside:  # parse_known_intermixed_args calls back into this method
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every field's `train` command shares (read back by `run_overrides`)."""
    parser.add_argument("--seed", type=int, default=None, help="training seed (train.seed)")
    parser.add_argument("--output-dir", default=None, help="where run folders go; default ./outputs")
    parser.add_argument("--resume", action="store_true",
                        help="continue this config's interrupted run from its last checkpoint")
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")


def run_overrides(args: argparse.Namespace, flags: dict[str, str] | None = None) -> dict:
    """Config overrides from a `train` command: its flags (argument name -> dotted key, plus the
    shared ones) first, KEY=VALUE arguments last, so the most specific setting wins."""
    from seqlab.config import merge, parse_overrides, set_dotted

    out: dict = {}
    for flag, key in {**(flags or {}), "seed": "train.seed", "output_dir": "output_dir"}.items():
        if getattr(args, flag) is not None:
            set_dotted(out, key, getattr(args, flag))
    if args.no_track:
        set_dotted(out, "tracking.enabled", False)
    return merge(out, parse_overrides(args.overrides))


def _add_ui(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ui", help="open the MLflow UI on the runs of this directory's store")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--tracking-uri", default=None,
        help="store to show (default: MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    parser.set_defaults(func=_run_ui)


def _run_ui(args: argparse.Namespace) -> int:
    from seqlab.tracking.mlflow import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    print(f"MLflow UI for {uri} at http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port)]
    # The UI needs no server-side job runner; without it no worker processes linger after Ctrl-C.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    benches = {ep.name: ep for ep in entry_points(group="seqlab.benchmarks")}
    parser = subparsers.add_parser("bench", help="run a field's benchmark and write its report")
    parser.add_argument("field", choices=sorted(benches))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the field's benchmark")
    parser.set_defaults(func=lambda args: benches[args.field].load()(args.args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqlab", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for ep in sorted(entry_points(group="seqlab.commands"), key=lambda e: e.name):
        ep.load()(subparsers)
    _add_bench(subparsers)
    _add_ui(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # mlflow configures its own loggers when imported; this is the setting it reads.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for noisy in ("alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args) or 0
    except SeqlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
