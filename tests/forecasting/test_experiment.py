"""The forecasting experiment end to end: config layering, presets, MLflow logging, the CLI."""

import math
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import torch
from mlflow.tracking import MlflowClient

from forecasting.data import DataError
from forecasting.experiment import (
    PRESET_DIR,
    ForecastDataConfig,
    build_config,
    build_model,
    preset_path,
    run_experiment,
)
from seqlab.cli import main
from seqlab.config import ConfigError, load_yaml, to_dict
from seqlab.registry import UnknownNameError

TINY = {
    "model": {"d_model": 16, "n_heads": 2, "d_ff": 16, "n_layers": 1},
    "data": {"seq_len": 24, "horizon": 12},
    "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "progress": False, "device": "cpu"},
}


@pytest.fixture
def sine_csv(tmp_path):
    start = datetime(2020, 1, 1)
    t = torch.arange(400, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    frame = pl.DataFrame(
        {
            "date": [start + timedelta(hours=i) for i in range(400)],
            "a": (torch.sin(t / 6) + 0.1 * torch.randn(400, generator=g, dtype=torch.float64)).numpy(),
            "b": (torch.cos(t / 12) * 3 + 10).numpy(),
            "OT": (torch.sin(t / 24) * 5 + 0.05 * t).numpy(),
        }
    )
    path = tmp_path / "sine.csv"
    frame.write_csv(path)
    return path


def tiny_config(csv, **overrides):
    from seqlab.config import merge

    return build_config(model="itransformer", data=str(csv), overrides=merge(TINY, overrides))


def preset_cases():
    """Every preset at its own horizon (data.horizon, else the default 96) and at each one it overrides."""
    for path in sorted(PRESET_DIR.glob("*/*.yaml")):
        preset = load_yaml(path)
        base = preset.get("data", {}).get("horizon", ForecastDataConfig.horizon)
        for horizon in [base, *preset.get("horizons", {})]:
            yield pytest.param(path.parent.name, path.stem, horizon, id=f"{path.parent.name}-{path.stem}-H{horizon}")


@pytest.mark.parametrize(("model", "dataset", "horizon"), list(preset_cases()))
def test_every_preset_loads_and_builds(model, dataset, horizon):
    cfg = build_config(model=model, data=dataset, horizon=horizon)
    # The per-horizon values of the preset are the ones in force at that horizon.
    for section, values in load_yaml(preset_path(model, dataset)).get("horizons", {}).get(horizon, {}).items():
        resolved = to_dict(getattr(cfg, section))
        for key, value in values.items():
            assert resolved[key] == value, f"{section}.{key} at H={horizon}"
    net = build_model(cfg, n_variates=7, n_time_features=4)
    x = torch.randn(2, cfg.data.seq_len, 7)
    assert net(x).shape == (2, horizon, 7)


def test_etth1_preset_follows_the_official_script_per_horizon():
    assert build_config(data="ETTh1", horizon=96).model.d_model == 256
    assert build_config(data="ETTh1", horizon=336).model.d_model == 512
    # An explicit value beats the preset's per-horizon value.
    assert build_config(data="ETTh1", horizon=336, overrides={"model": {"d_model": 64}}).model.d_model == 64


def test_layers_config_file_then_overrides(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("train:\n  lr: 5e-4\n  epochs: 4\nmodel: itransformer\n")
    cfg = build_config(config_file=user, overrides={"train": {"epochs": 2}})
    assert cfg.train.lr == 5e-4 and cfg.train.epochs == 2 and cfg.model_name == "itransformer"


def test_logged_config_yaml_reads_back_to_the_same_experiment(tmp_path):
    from forecasting.experiment import to_yaml_experiment

    cfg = build_config(data="ETTh1", horizon=336, overrides={"train": {"epochs": 2}})
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml_experiment(cfg))
    again = build_config(config_file=path)
    assert again == cfg and again.fingerprint == cfg.fingerprint


def test_bad_config_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.lrr'"):
        build_config(overrides={"train": {"lrr": 1}})
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.widht'"):
        build_config(overrides={"model": {"widht": 1}})
    with pytest.raises(ConfigError, match=r"model\.seq_len is taken from data\.seq_len"):
        build_config(overrides={"model": {"seq_len": 48}})


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown forecasting model 'itransfomer'; available: .*itransformer"):
        build_config(model="itransfomer")


def test_run_logs_params_metrics_artifacts_and_plots(sine_csv, tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    cfg = tiny_config(sine_csv, tracking={"tracking_uri": uri, "experiment": "e2e"})
    result = run_experiment(cfg)

    assert set(result.test) >= {"test/mse", "test/mae", "test/mse_orig", "test/mae_orig"}
    assert all(math.isfinite(v) for v in result.test.values())
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    # 400 rows, 70/10/20 %: train rows 0..279, val 256..319, test 296..399; windows = rows - 24 - 12 + 1
    assert run.data.params["model.d_model"] == "16" and run.data.params["data.windows"] == "245/29/69"
    assert run.data.tags["seqlab.config_hash"] == cfg.fingerprint
    assert run.data.metrics["test/mse"] == pytest.approx(result.test["test/mse"])
    assert len(client.get_metric_history(result.run_id, "val/loss")) == 2
    paths = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "checkpoints", "plots"} <= paths
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/loss_curves.png", "plots/test_forecasts.png"}


def test_same_config_same_result_and_resume_reopens_the_run(sine_csv, tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    first = run_experiment(tiny_config(sine_csv, tracking={"tracking_uri": uri}, output_dir=str(tmp_path / "a")))
    second = run_experiment(tiny_config(sine_csv, tracking={"tracking_uri": uri}, output_dir=str(tmp_path / "b")))
    assert first.test == second.test  # seeded: bit-identical
    again = run_experiment(tiny_config(sine_csv, tracking={"tracking_uri": uri}, output_dir=str(tmp_path / "a")),
                           resume=True)
    assert again.run_id == first.run_id and again.test == first.test


def test_batch_size_does_not_change_test_metrics(sine_csv):
    results = [
        run_experiment(tiny_config(sine_csv, tracking={"enabled": False}, train={"eval_batch_size": bs})).test
        for bs in (1, 5, 512)
    ]
    for other in results[1:]:
        for key in results[0]:
            assert other[key] == pytest.approx(results[0][key], rel=1e-6)  # fp32 matmul blocking only


def test_bad_data_fails_before_anything_is_written(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,a\n2020-01-01 00:00:00,1.0\n2020-01-01 01:00:00,oops\n")
    with pytest.raises(DataError, match=r"column 'a' row 2 holds 'oops'"):
        run_experiment(build_config(data=str(bad), overrides={"output_dir": str(tmp_path / "out")}))
    assert not (tmp_path / "out").exists()
    assert not (Path.cwd() / "mlflow.db").exists()


def test_cli_trains_and_reports(sine_csv, capsys, tmp_path):
    args = ["forecast", "train", "--data", str(sine_csv), "--seq-len", "24", "--horizon", "12", "--epochs", "1",
            "model.d_model=16", "model.n_heads=2", "model.d_ff=16", "train.progress=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test (z-scored, as in papers)  MSE" in out and "MLflow run" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["model.bad=1"], "unknown config key 'model.bad'"),
        (["--model", "nope"], "unknown forecasting model 'nope'"),
        (["--data", "ETTh9"], "unknown dataset 'ETTh9'"),
        (["train.lr"], "must look like key=value"),
        (["train.epochs=many"], "train.epochs must be an integer"),
    ],
)
def test_cli_bad_input_is_one_clear_line(extra, message, capsys):
    assert main(["forecast", "train", "--no-track", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
