"""`seqlab pde ...`: make PDE datasets from presets.

Only argparse is imported at registration; torch and xarray load when a command runs.
"""

from __future__ import annotations

import argparse

from seqlab.cli import IntermixedParser


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pde", help="PDE surrogates: datasets from numerical solvers")
    commands = parser.add_subparsers(dest="pde_command", required=True, metavar="COMMAND",
                                     parser_class=IntermixedParser)

    generate = commands.add_parser(
        "generate",
        help="simulate a dataset preset and write it to NetCDF (.nc) or zarr (.zarr)",
        description="Run the preset's solver (see `seqlab pde presets`) and write the dataset with its "
        "physics and provenance in attrs. Extra KEY=VALUE arguments override config values, "
        "e.g. n_samples=100 seed=1 resolution=128.",
    )
    generate.add_argument("preset", help="preset name or a YAML file with `solver:` and config values")
    generate.add_argument("--out", required=True, help="output file, .nc or .zarr")
    generate.add_argument("--device", default="cpu", help="torch device for the solver, e.g. cuda; default cpu")
    generate.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    generate.set_defaults(func=_generate)

    presets = commands.add_parser("presets", help="list the dataset presets")
    presets.set_defaults(func=_presets)


def _generate(args: argparse.Namespace) -> int:
    from pde.data import open_dataset
    from pde.generate import generate

    path = generate(args.preset, args.out, args.overrides, device=args.device)
    ds = open_dataset(path, chunks=None)
    sizes = " x ".join(f"{dim} {n}" for dim, n in ds.sizes.items())
    print(f"wrote {path}: {', '.join(map(str, ds.data_vars))} ({sizes}); solver {ds.attrs['solver_seconds']:.1f} s")
    ds.close()
    return 0


def _presets(args: argparse.Namespace) -> int:
    from pde.generate import load_preset, preset_names

    for name in preset_names():
        solver, cfg = load_preset(name)
        print(f"  {name:<24} {solver:<19} {cfg.n_samples} x {cfg.n_frames} frames, {cfg.resolution} points/axis")
    return 0
