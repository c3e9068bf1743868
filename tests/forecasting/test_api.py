"""The Forecaster: fit on frames, forecast past the end, evaluate, save, serve through MLflow."""

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from forecasting.api import Forecaster, step_of
from forecasting.data import DataError

TINY = dict(d_model=16, n_heads=2, d_ff=16, n_layers=1)
QUICK = {"epochs": 2, "batch_size": 16, "lr": 1e-3, "progress": False, "device": "cpu"}


def wide_frame(n=300, start=datetime(2021, 1, 1), step=timedelta(hours=1), seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pl.DataFrame(
        {
            "date": [start + i * step for i in range(n)],
            "load": np.sin(t / 8) * 3 + 20 + rng.normal(0, 0.1, n),
            "temp": np.cos(t / 24) * 5 + 10 + rng.normal(0, 0.1, n),
        }
    )


def to_long(frame):
    return frame.unpivot(index="date", variable_name="unique_id", value_name="y").rename({"date": "ds"})


def fitted(frame, model="itransformer", **params):
    return Forecaster(model, horizon=12, lookback=24, train=QUICK, **(params or TINY)).fit(frame)


@pytest.mark.parametrize(
    ("start", "step", "expected"),
    [
        (datetime(2021, 1, 1), timedelta(hours=1), timedelta(hours=1)),
        (datetime(2021, 1, 1), timedelta(minutes=15), timedelta(minutes=15)),
        (datetime(2021, 1, 1), timedelta(days=1), timedelta(days=1)),
        (datetime(2021, 1, 4), timedelta(weeks=1), timedelta(weeks=1)),
    ],
)
def test_predict_continues_the_frequency_after_the_last_timestamp(start, step, expected):
    frame = wide_frame(start=start, step=step)
    forecast = fitted(frame).predict()
    last = frame["date"][-1]
    assert forecast["date"].to_list() == [last + expected * (i + 1) for i in range(12)]
    assert forecast.columns == ["date", "load", "temp"]


def test_monthly_series_continue_by_calendar_month():
    months = pl.datetime_range(datetime(1990, 1, 31), datetime(2020, 12, 31), interval="1mo", eager=True)
    assert step_of(months) == "1mo"
    forecast_start = pl.Series([datetime(2020, 12, 31)]).dt.offset_by("1mo")[0]
    assert forecast_start == datetime(2021, 1, 31)


def test_forecasts_are_in_data_units():
    frame = wide_frame()
    forecast = fitted(frame).predict()
    assert abs(forecast["load"].mean() - 20) < 5 and abs(forecast["temp"].mean() - 10) < 8


def test_save_load_round_trip_gives_identical_forecasts(tmp_path):
    frame = wide_frame()
    fc = fitted(frame)
    loaded = Forecaster.load(fc.save(tmp_path / "model"))
    assert loaded.predict().equals(fc.predict())
    assert loaded.predict(frame).equals(fc.predict(frame))
    assert loaded.layout == fc.layout and loaded.model_config == fc.model_config


def test_wide_and_long_forms_of_the_same_data_give_the_same_forecast():
    frame = wide_frame()
    wide = fitted(frame).predict()
    long = fitted(to_long(frame)).predict()
    assert long.columns == ["unique_id", "ds", "y_hat"]
    for name in ("load", "temp"):
        np.testing.assert_allclose(long.filter(pl.col("unique_id") == name)["y_hat"].to_numpy(),
                                   wide[name].to_numpy(), rtol=1e-6)


def test_pandas_input_is_accepted():
    frame = wide_frame()
    assert fitted(frame.to_pandas()).predict().equals(fitted(frame).predict())


def test_series_of_different_lengths_are_modelled_as_a_panel():
    long = to_long(wide_frame())
    ragged = long.filter((pl.col("unique_id") == "load") | (pl.col("ds") >= datetime(2021, 1, 3)))
    fc = fitted(ragged, model="patchtst", d_model=16, n_heads=2, d_ff=16, n_layers=1)
    assert fc.layout.panel
    forecast = fc.predict()
    assert sorted(forecast["unique_id"].unique()) == ["load", "temp"] and forecast.height == 24


def test_evaluate_gives_one_row_per_series_and_window():
    frame = wide_frame()
    fc = fitted(frame)
    test = frame.tail(60)
    errors = fc.evaluate(test)
    assert errors.height == 2 * (60 - 24 - 12 + 1)
    first = errors.filter(pl.col("unique_id") == "load").row(0, named=True)
    history = test.head(24)
    forecast = fc.predict(history)["load"].to_numpy()
    truth = test["load"].to_numpy()[24:36]
    assert first["cutoff"] == test["date"][23]
    assert first["mse"] == pytest.approx(np.mean((forecast - truth) ** 2), rel=1e-5)


def test_cross_validation_never_fits_on_the_evaluated_windows():
    frame = wide_frame()
    held_out = 12 + 2 * 6  # horizon + (n_windows - 1) * step
    fc = Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, **TINY)
    result = fc.cross_validation(frame, n_windows=3, step=6, val_size=12)
    train_rows = frame.head(frame.height - held_out - 12)["load"].to_numpy()
    assert fc.scalers[0].mean[0] == pytest.approx(train_rows.mean())
    assert fc.scalers[0].std[0] == pytest.approx(train_rows.std())
    assert result.height == 3 * 12 * 2
    assert result["cutoff"].n_unique() == 3
    assert result["ds"].max() == frame["date"][-1]
    # Changing the evaluated rows changes neither the model nor its scaler.
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) >= frame.height - held_out).then(pl.col("load") * 100).otherwise(pl.col("load"))
    )
    again = Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, **TINY)
    again.cross_validation(changed, n_windows=3, step=6, val_size=12)
    assert again.scalers[0].mean[0] == fc.scalers[0].mean[0]


def test_pyfunc_model_from_the_registry_agrees_with_the_forecaster(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from seqlab.tracking.mlflow import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    tracker = MlflowTracker("forecaster", tracking_uri=uri)
    frame = wide_frame()
    fc = Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, tracker=tracker, **TINY).fit(frame)
    info = fc.log_model(registered_model_name="sine-forecaster")
    tracker.close()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("sine-forecaster", "champion", info.registered_model_version)
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model("models:/sine-forecaster@champion")
    history = frame.tail(48).to_pandas()
    expected = fc.predict(history).to_pandas()
    pd.testing.assert_frame_equal(served.predict(history), expected)
    assert "plots/validation_forecasts.png" in {a.path for a in client.list_artifacts(tracker.run_id, "plots")}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: pl.concat([to_long(f), to_long(f).head(1)]), r"repeat a \(unique_id, ds\) pair, first unique_id='load'"),
        (lambda f: to_long(f).with_columns(pl.lit(1).alias("extra")), r"unexpected columns \['extra'\]"),
        (lambda f: f.head(40), r"fewer than lookback \+ horizon \+ val_size = 24 \+ 12 \+ 30"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(mutate, message):
    with pytest.raises(DataError, match=message):
        Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, **TINY).fit(mutate(wide_frame()), val_size=30)


def test_gaps_in_the_timestamps_are_refused_unless_allowed():
    frame = wide_frame()
    gapped = pl.concat([frame.head(150), frame.tail(149)])  # one hour missing
    with pytest.raises(DataError, match=r"not evenly spaced: 2021-01-07 05:00:00 -> 2021-01-07 07:00:00 is 7200 s"):
        Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, **TINY).fit(gapped)
    fc = Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, **TINY).fit(gapped, allow_gaps=True)
    assert fc.predict().height == 12


def test_unknown_series_at_predict_time_are_refused():
    fc = fitted(wide_frame())
    with pytest.raises(DataError, match=r"series \['humidity'\] were not seen in fit"):
        fc.predict(wide_frame().with_columns(pl.col("temp").alias("humidity")))


def test_a_model_saved_in_another_format_is_refused(tmp_path):
    path = fitted(wide_frame()).save(tmp_path / "model")
    meta = json.loads((path / "forecaster.json").read_text())
    meta["format_version"] = 99
    (path / "forecaster.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="format version 99"):
        Forecaster.load(path)


def test_bad_model_parameters_fail_at_construction():
    from seqlab.config import ConfigError

    with pytest.raises(ConfigError, match=r"unknown config key 'model\.widht'"):
        Forecaster("itransformer", widht=3)


def test_a_panel_model_accepts_series_that_happen_to_share_timestamps():
    long = to_long(wide_frame())
    ragged = long.filter((pl.col("unique_id") == "load") | (pl.col("ds") >= datetime(2021, 1, 3)))
    fc = fitted(ragged, model="patchtst", d_model=16, n_heads=2, d_ff=16, n_layers=1)
    aligned = long.filter(pl.col("ds") >= datetime(2021, 1, 5))
    assert fc.predict(aligned).height == 24 and fc.evaluate(aligned).height > 0


def test_the_fit_data_policy_applies_to_later_frames_and_survives_saving(tmp_path):
    frame = wide_frame().with_columns(
        pl.when(pl.int_range(pl.len()) == 280).then(-9999.0).otherwise(pl.col("load")).alias("load")
    )
    fc = Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, **TINY)
    fc.fit(frame, missing_values=[-9999], fill_missing="interpolate")
    loaded = Forecaster.load(fc.save(tmp_path / "model"))
    assert loaded.policy == fc.policy
    assert loaded.predict(frame.tail(30)).equals(fc.predict(frame.tail(30)))  # -9999 filled, not used
    gapped = pl.concat([frame.head(150), frame.tail(149)])
    with pytest.raises(DataError, match="not evenly spaced"):
        fc.predict(gapped)


def test_undeclared_sentinels_are_warned_about(caplog):
    frame = wide_frame().with_columns(
        pl.when(pl.int_range(pl.len()) == 10).then(-9999.0).otherwise(pl.col("temp")).alias("temp")
    )
    with caplog.at_level("WARNING", logger="forecasting.data"):
        fitted(frame)
    assert "column 'temp' holds 1 cells equal to -9999" in caplog.text


def test_a_tracked_fit_logs_params_tags_metrics_and_a_plot():
    from seqlab.tracking import MemoryTracker

    tracker = MemoryTracker()
    Forecaster("itransformer", horizon=12, lookback=24, train=QUICK, tracker=tracker, **TINY).fit(wide_frame())
    assert tracker.params["model.d_model"] == 16 and tracker.params["data.series"] == 2
    assert tracker.tags["seqlab.model"] == "itransformer" and "seqlab.version" in tracker.tags
    assert tracker.history("val/loss") and tracker.figures == ["plots/validation_forecasts.png"]
