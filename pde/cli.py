"""`seqlab pde ...`: make PDE datasets, train surrogates, and run them as batch jobs.

Only argparse is imported at registration; torch and xarray load when a command runs.
"""

from __future__ import annotations

import argparse

from seqlab.cli import IntermixedParser, add_run_arguments, run_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pde", help="PDE surrogates: datasets, training, batch rollouts")
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

    presets = commands.add_parser("presets", help="list the dataset and experiment presets")
    presets.set_defaults(func=_presets)

    train = commands.add_parser(
        "train",
        help="train a surrogate, test it by rollout, save it as surrogate.pt (tracked in MLflow)",
        description="Train with an experiment preset of pde/configs/experiments or a YAML file. The dataset "
        "(data.dataset) is a file or a generation preset, simulated once into <output_dir>/data/. A preset "
        "with data.input and data.output (darcy_*) trains a steady operator on static field pairs and tests it "
        "on data.test_datasets. Extra KEY=VALUE arguments override config values, e.g. train.epochs=5 "
        "model.n_layers=2.",
    )
    train.add_argument("preset", help="experiment preset name or YAML file")
    train.add_argument("--data", default=None, help="dataset file or generation preset (data.dataset)")
    train.add_argument("--data-dir", default=None, help="folder with dataset files (or SEQLAB_DATA_DIR)")
    add_run_arguments(train)
    train.set_defaults(func=_train)

    infer = commands.add_parser(
        "infer",
        help="roll a trained surrogate out over a dataset of initial conditions (or apply a steady operator "
        "to a dataset of input fields) into a zarr store",
        description="Streams chunks of samples into the store; a killed job continues where it stopped "
        "when run again with the same arguments. With --scheduler the chunks run on a Dask cluster.",
    )
    infer.add_argument("surrogate", help="surrogate.pt, its run folder, or an MLflow URI (runs:/<id>/surrogate, "
                       "models:/<name>/<version>)")
    infer.add_argument("input", help="initial conditions: NetCDF (.nc) or zarr with dims (sample, time, ...); "
                       "a steady operator's input fields: (sample, ...spatial)")
    infer.add_argument("output", help="output zarr store (.zarr)")
    infer.add_argument("--steps", type=int, default=None,
                       help="frames to predict per trajectory (required for trajectory surrogates; a steady "
                            "operator is applied once to static fields (sample, ...spatial) and takes none)")
    infer.add_argument("--start-frame", type=int, default=0, help="first input frame of the initial condition")
    infer.add_argument("--chunk-size", type=int, default=16, help="trajectories per chunk")
    infer.add_argument("--threads", type=int, default=1, help="torch threads per chunk")
    infer.add_argument("--scheduler", default=None, help="dask.distributed scheduler address, e.g. tcp://host:8786")
    infer.set_defaults(func=_infer)


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
    from pde.experiment import preset_kind
    from pde.experiment import preset_names as experiment_presets
    from pde.generate import load_preset, preset_names

    print("datasets (seqlab pde generate):")
    for name in preset_names():
        solver, cfg = load_preset(name)
        print(f"  {name:<24} {solver:<19} {cfg.n_samples} x {cfg.n_frames} frames, {cfg.resolution} points/axis")
    print("experiments (seqlab pde train):")
    for name in experiment_presets():
        print(f"  {name:<24} {preset_kind(name)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from pde.experiment import build_config, run_experiment

    cfg = build_config(args.preset, run_overrides(args, {"data": "data.dataset", "data_dir": "data.data_dir"}))
    result = run_experiment(cfg, resume=args.resume)
    t = result.test
    head = f"{cfg.model_name} on {cfg.data.dataset}: {result.fit.global_step} steps; "
    if cfg.data.steady:
        # test/rel_l2: the training file's test split; test/<file>/rel_l2: a test file
        scores = [(key.split("/")[1] if key.count("/") == 2 else "split", value)
                  for key, value in t.items() if key.endswith("/rel_l2")]
        print(f"{head}steady operator {cfg.data.input} -> {cfg.data.output}, test rel-L2: "
              + ", ".join(f"{name} {value:.4f}" for name, value in scores))
    else:
        print(f"{head}test rollout of {t['test/rollout_steps']:.0f} steps: nRMSE t=1 {t['test/nrmse_t1']:.4f}, "
              f"last {t['test/nrmse_last']:.4f}, rel-L2 {t['test/rel_l2']:.4f}, "
              f"correlation time {t['test/correlation_time']:.1f}")
    print(f"surrogate: {result.surrogate_path}" + (f"; MLflow run {result.run_id}" if result.run_id else ""))
    return 0


def _infer(args: argparse.Namespace) -> int:
    from pde.jobs import InferConfig, run_job

    config = InferConfig(steps=args.steps, start_frame=args.start_frame, chunk_size=args.chunk_size,
                         threads=args.threads, scheduler=args.scheduler)
    report = run_job(args.surrogate, args.input, args.output, config)
    print(f"wrote {report.output_path}: {report.n_trajectories} samples x {report.steps} steps "
          f"({report.chunks_run} of {report.chunks_total} chunks this run) in {report.seconds:.1f} s, "
          f"{report.throughput:.1f} sample-steps/s")
    if report.speedup_vs_solver is not None:
        print(f"the solver that made the input took {report.solver_seconds:.1f} s for as many steps: "
              f"{report.speedup_vs_solver:.1f}x")
    for sample, step in report.diverged:
        print(f"sample {sample} diverged at step {step}")
    return 0
