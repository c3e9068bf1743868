"""`seqlab forecast ...`: train and inspect forecasting models.

Only argparse is imported at registration; torch, polars and mlflow load when a command runs.
"""

from __future__ import annotations

import argparse

from seqlab.cli import add_run_arguments, run_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("forecast", help="long-horizon time-series forecasting")
    commands = parser.add_subparsers(dest="forecast_command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model on a dataset, test it, and log the run to MLflow",
        description="Train with the reference script's hyper-parameters for (model, dataset, horizon), "
        "then test on every test window. Extra KEY=VALUE arguments override any config key, "
        "e.g. train.epochs=3 model.d_model=128 train.precision=bf16.",
    )
    train.add_argument("--data", default=None, help="catalogue name (ETTh1, ETTh2, ETTm1, ETTm2, Weather, "
                       "Exchange, ILI) or a CSV path; default ETTh1")
    train.add_argument("--model", default=None, help="registry name; default itransformer")
    train.add_argument("--horizon", type=int, default=None, help="forecast horizon H; default 96")
    train.add_argument("--seq-len", type=int, default=None, help="look-back length L; default 96")
    train.add_argument("--config", default=None, help="YAML file with config values")
    train.add_argument("--data-dir", default=None, help="folder with the dataset files (or SEQLAB_DATA_DIR)")
    train.add_argument("--epochs", type=int, default=None, help="maximum epochs (train.epochs)")
    add_run_arguments(train)
    train.set_defaults(func=_train)

    listing = commands.add_parser("list", help="list models, datasets and reference presets")
    listing.add_argument("--data-dir", default=None)
    listing.set_defaults(func=_list)


def _train(args: argparse.Namespace) -> int:
    from forecasting.experiment import build_config, run_experiment

    flags = {"model": "model.name", "data": "data.name", "horizon": "data.horizon", "seq_len": "data.seq_len",
             "data_dir": "data.data_dir", "epochs": "train.epochs"}
    cfg = build_config(config_file=args.config, overrides=run_overrides(args, flags))
    d = cfg.data
    print(f"training {cfg.model_name} on {d.name} (L={d.seq_len}, H={d.horizon}) for up to "
          f"{cfg.train.epochs} epochs; run folder {cfg.run_dir}")
    result = run_experiment(cfg, resume=args.resume)
    t, fit = result.test, result.fit
    print(f"test (z-scored, as in papers)  MSE {t['test/mse']:.4f}  MAE {t['test/mae']:.4f}")
    print(f"test (original units)          MSE {t['test/mse_orig']:.4f}  MAE {t['test/mae_orig']:.4f}")
    print(f"best epoch {fit.best_epoch} of {fit.epochs_completed}; {fit.train_seconds:.1f} s of training at "
          f"{fit.samples_per_second:.0f} windows/s")
    if result.run_id:
        print(f"MLflow run {result.run_id} (experiment {cfg.tracking.experiment!r}); browse it with `seqlab ui`")
    return 0


def _list(args: argparse.Namespace) -> int:
    from forecasting.data import CATALOGUE, resolve_dataset
    from forecasting.experiment import PRESET_DIR
    from forecasting.models import MODELS
    from seqlab.errors import SeqlabError

    print("models:", ", ".join(MODELS.names()))
    print("datasets:")
    for name in CATALOGUE:
        try:
            where = str(resolve_dataset(name, args.data_dir)[0])
        except SeqlabError:
            where = "(file not found)"
        print(f"  {name:<9} {where}")
    print("reference presets:")
    for path in sorted(PRESET_DIR.glob("*/*.yaml")):
        print(f"  {path.parent.name} / {path.stem}")
    return 0
