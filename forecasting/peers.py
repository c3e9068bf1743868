"""seqlab against neuralforecast, the library users pick instead, at identical settings.

Both train on the same ETTh1 split (z-scored with the same training-split statistics), for the
same number of optimizer steps with the same windows per step, learning rate and constant
schedule, without early stopping, and are tested on every test window. Each case runs in a fresh
process (see `bench.py`) so peak memory is per run.

Both iTransformers attend over the 7 variate tokens only: neuralforecast's takes calendar
features only as exogenous columns, so seqlab's timeF tokens (its default) are switched off.
What cannot be identical is stated in the report: neuralforecast's Informer is the
Time-Series-Library port applied to each series separately (univariate), without calendar
features. Its throughput is counted in N-variate windows (N univariate windows make one), the
unit seqlab's multivariate models consume.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass

ETTH1_TEST_ROWS = 2880  # 4 months of 30 days


@dataclass(frozen=True)
class PeerCase:
    library: str  # "seqlab" or "neuralforecast"
    model: str  # "itransformer" or "informer"
    steps: int
    precision: str
    seed: int = 2023


# Hyper-parameters of the official ETTh1 scripts (forecasting/configs), in each library's names.
SEQLAB_OVERRIDES = {
    # neuralforecast's iTransformer has no calendar tokens (it takes no exogenous columns here): the
    # same 7 variate tokens on both sides, where seqlab's default appends 4 timeF tokens.
    "itransformer": {"model": {"d_model": 256, "d_ff": 256, "n_layers": 2, "n_heads": 8, "dropout": 0.1,
                               "use_time_tokens": False}},
    "informer": {"model": {"d_model": 512, "d_ff": 2048, "n_layers": 2, "n_decoder_layers": 1, "n_heads": 8,
                           "factor": 3, "dropout": 0.1, "label_len": 48}},
}


PEER_STEPS = {"itransformer": 528, "informer": 50}
"""iTransformer for two epochs' steps (enough to compare accuracy); Informer, whose d_model=512
steps take seconds on CPU, for 50 steps: a speed comparison only."""


def default_cases(seed: int = 2023, models: tuple[str, ...] = tuple(PEER_STEPS)) -> list[PeerCase]:
    """Both libraries, fp32 and bf16, for each of `models` at its PEER_STEPS."""
    cases = []
    for model in models:
        steps = PEER_STEPS[model]
        for library in ("seqlab", "neuralforecast"):
            for precision in ("fp32", "bf16"):
                cases.append(PeerCase(library, model, steps, precision, seed))
    return cases


def report_lines(rows: list[dict]) -> list[str]:
    """The side-by-side table of the benchmark report, ratios against neuralforecast in fp32."""
    lines = [
        "| model | library | precision | steps | test MSE | test MAE | train windows/s | test windows/s "
        "| peak RSS (MB) | train speed-up | test speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peer = next((r for r in rows if r["model"] == row["model"] and r["library"] == "neuralforecast"
                     and r["precision"] == "fp32"), None)
        ratio = lambda key: f"{row[key] / peer[key]:.1f}x" if peer else "n/a"  # noqa: E731
        lines.append(
            f"| {row['model']} | {row['library']} | {row['precision']} | {row['steps']} | {row['test_mse']:.4f} "
            f"| {row['test_mae']:.4f} | {_rate(row['train_windows_per_s'])} | {_rate(row['test_windows_per_s'])} "
            f"| {row['peak_rss_mb']:.0f} | {ratio('train_windows_per_s')} | {ratio('test_windows_per_s')} |"
        )
    return lines


def _rate(per_second: float) -> str:
    """Windows per second, with two significant digits below 10 (Informer's peer trains at 0.2/s)."""
    return f"{per_second:.0f}" if per_second >= 10 else f"{per_second:.2g}"


def run_peer_case(case: PeerCase, data_dir: str | None = None) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    runner = _seqlab if case.library == "seqlab" else _neuralforecast
    return {**asdict(case), **runner(case, data_dir),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _seqlab(case: PeerCase, data_dir: str | None) -> dict:
    import tempfile

    from forecasting.experiment import build_config, run_experiment

    steps_per_epoch = 8449 // 32  # ETTh1 H=96 training windows, last partial batch dropped
    with tempfile.TemporaryDirectory(prefix="seqlab-peer-") as out:
        overrides = {
            **SEQLAB_OVERRIDES[case.model],
            "train": {"epochs": -(-case.steps // steps_per_epoch), "max_steps": case.steps, "batch_size": 32,
                      "drop_last": True, "lr": 1e-4, "schedule": "constant", "patience": None, "seed": case.seed, "precision": case.precision,
                      "progress": False},
            "tracking": {"enabled": False},
            "output_dir": out,
            **({"data": {"data_dir": data_dir}} if data_dir else {}),
        }
        cfg = build_config(model=case.model, data="ETTh1", horizon=96, overrides=overrides)
        result = run_experiment(cfg)
    return {
        "test_mse": result.test["test/mse"],
        "test_mae": result.test["test/mae"],
        "train_windows_per_s": result.fit.samples_per_second,
        "test_windows_per_s": result.test_samples_per_second,
        "train_seconds": result.fit.train_seconds,
    }


def _neuralforecast(case: PeerCase, data_dir: str | None) -> dict:
    import logging

    import numpy as np
    import polars as pl
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import Informer, iTransformer

    from forecasting.data import load_forecast_data

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    data = load_forecast_data("ETTh1", 96, 96, data_dir)
    # Rows [0, end of test) z-scored with the training-split statistics, exactly as seqlab sees them.
    lookback = data.train.seq_len
    scaled = torch.cat([data.train.values, data.val.values[lookback:], data.test.values[lookback:]]).numpy()
    end = len(scaled)
    frame = pl.DataFrame({"ds": data.dates[:end], **{c: scaled[:, i] for i, c in enumerate(data.columns)}})
    long = frame.unpivot(index="ds", variable_name="unique_id", value_name="y").to_pandas()
    n = data.n_variates
    common = dict(h=96, input_size=96, loss=MSE(), learning_rate=1e-4, max_steps=case.steps,
                  val_check_steps=case.steps + 1, scaler_type="identity", random_seed=case.seed,
                  inference_windows_batch_size=256,  # seqlab's eval_batch_size (its default, -1, is all at once)
                  num_lr_decays=0, enable_progress_bar=False, enable_model_summary=False, logger=False,
                  accelerator="cpu", enable_checkpointing=False,
                  **({"precision": "bf16-mixed"} if case.precision == "bf16" else {}))
    if case.model == "itransformer":
        def make():
            return iTransformer(n_series=n, hidden_size=256, n_heads=8, e_layers=2, d_ff=256, dropout=0.1,
                                windows_batch_size=32, batch_size=n, **common)
        windows_per_step = 32
    else:
        def make():
            return Informer(hidden_size=512, n_head=8, encoder_layers=2, decoder_layers=1, conv_hidden_size=2048,
                            factor=3, dropout=0.1, decoder_input_size_multiplier=0.5, windows_batch_size=32,
                            **common)
        windows_per_step = 32 / n  # 32 univariate windows = 32/N of seqlab's N-variate windows

    val_rows = ETTH1_TEST_ROWS
    fit_only = long[long["ds"] < data.dates[end - ETTH1_TEST_ROWS]]
    nf = NeuralForecast(models=[make()], freq="h")
    started = time.perf_counter()
    nf.fit(fit_only, val_size=val_rows)  # trains on the training split only, like seqlab
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()  # every test window with the fitted model, no retraining
    cv = nf.cross_validation(long, val_size=val_rows, test_size=ETTH1_TEST_ROWS, step_size=1, n_windows=None,
                             use_fitted=True)
    test_seconds = time.perf_counter() - started
    column = [c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y")][0]
    err = cv[column].to_numpy() - cv["y"].to_numpy()
    n_windows = cv["cutoff"].nunique()
    return {
        "test_mse": float(np.mean(err**2)),
        "test_mae": float(np.mean(np.abs(err))),
        "train_windows_per_s": case.steps * windows_per_step / fit_seconds,
        "test_windows_per_s": n_windows / test_seconds,
        "train_seconds": fit_seconds,
        "test_windows": int(n_windows),
    }

