"""The Forecaster: fit any registered model on a DataFrame, forecast past its end, evaluate, save.

    fc = Forecaster("itransformer", horizon=96, lookback=96)
    fc.fit(df)                 # wide: `date` + one column per series; or long: unique_id, ds, y
    future = fc.predict()      # the 96 steps after the last timestamp, in the data's units
    fc.save("model_dir"); Forecaster.load("model_dir").predict()

Wide frames and long frames whose series share their timestamps are modelled jointly (the N
series are the model's variates). Long frames whose series have different timestamps or lengths
are modelled as a panel: each series is its own univariate input to one global model. Every
series is z-scored with statistics of its own training rows only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch

from forecasting.data import DataError, StandardScaler, WindowDataset, validate_wide
from forecasting.models import MODELS
from forecasting.task import ForecastTask
from forecasting.timefeatures import infer_freq, time_features
from seqlab import __version__
from seqlab.config import flatten, from_dict, to_dict
from seqlab.tracking import NullTracker, Tracker, environment_tags
from seqlab.train import Trainer, TrainConfig
from seqlab.train.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from seqlab.train.runtime import seed_everything

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
LONG_COLUMNS = ("unique_id", "ds", "y")


# ------------------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class Layout:
    """How a user's frame maps onto model inputs, so forecasts come back in the same shape."""

    kind: Literal["wide", "long"]
    series: tuple[str, ...]
    """Column names (wide) or unique_id values (long), in model order."""
    panel: bool
    """Long series with different timestamps: each is a univariate input to one global model."""
    time_column: str
    """`date` (wide) or `ds` (long)."""


@dataclass
class Block:
    """Aligned series: dates (T,) and values (T, n) in the data's units."""

    names: tuple[str, ...]
    dates: pl.Series
    values: np.ndarray

    def __post_init__(self) -> None:
        # Row-major like every tensor built from it: polars hands out column-major arrays, and a
        # different memory layout may pick a different matmul kernel (last-bit differences).
        self.values = np.ascontiguousarray(self.values, dtype=np.float64)


def to_polars(df: Any) -> pl.DataFrame:
    if isinstance(df, pl.DataFrame):
        return df
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        pd = None
    if pd is not None and isinstance(df, pd.DataFrame):
        return pl.from_pandas(df.reset_index(drop=True))
    raise DataError(f"expected a polars or pandas DataFrame, got {type(df).__name__}")


@dataclass(frozen=True)
class DataPolicy:
    """How a Forecaster treats imperfect data; fixed at fit and applied to every later frame."""

    missing_values: tuple[float, ...] = ()
    """Cell values that mean "missing" (sentinels such as -9999); empty and NaN cells always do."""
    fill_missing: Literal["error", "interpolate"] = "error"
    allow_gaps: bool = False
    """Accept unevenly spaced timestamps and treat rows as consecutive steps."""


def read_frame(
    df: Any, date_column: str = "date", layout: Layout | None = None, policy: DataPolicy = DataPolicy()
) -> tuple[Layout, list[Block]]:
    """Validate a wide or long frame and split it into aligned blocks.

    With `layout` (from a fitted Forecaster) the frame must have the same form and series.
    """
    missing = {"missing_values": policy.missing_values, "fill_missing": policy.fill_missing}
    frame = to_polars(df)
    is_long = set(LONG_COLUMNS) <= set(frame.columns)
    if layout is not None and is_long != (layout.kind == "long"):
        expected = "long (unique_id, ds, y)" if layout.kind == "long" else f"wide ({layout.time_column} + series)"
        raise DataError(f"DataFrame: the model was fitted on a {expected} frame; got columns {frame.columns}")
    if not is_long:
        frame = validate_wide(frame, "DataFrame", date_column, **missing)
        names = tuple(c for c in frame.columns if c != date_column)
        found = Layout("wide", names, False, date_column)
        blocks = [Block(names, frame[date_column], frame.select(names).to_numpy())]
    else:
        found, blocks = _read_long(frame, missing)
    if layout is not None:
        unknown = sorted(set(found.series) - set(layout.series))
        missing = sorted(set(layout.series) - set(found.series))
        if unknown or missing:
            problems = [f"series {unknown} were not seen in fit"] if unknown else []
            problems += [f"series {missing} are missing"] if missing else []
            raise DataError(f"DataFrame: {'; '.join(problems)}; the model forecasts exactly {list(layout.series)}")
        blocks = _reorder(blocks, layout)
        found = layout
    return found, blocks


def _read_long(frame: pl.DataFrame, missing: Mapping[str, Any]) -> tuple[Layout, list[Block]]:
    extra = [c for c in frame.columns if c not in LONG_COLUMNS]
    if extra:
        raise DataError(f"DataFrame: unexpected columns {extra} in a long frame; expected exactly unique_id, ds, y")
    frame = frame.with_columns(pl.col("unique_id").cast(pl.String))
    dupes = frame.filter(frame.select(["unique_id", "ds"]).is_duplicated())
    if dupes.height:
        first = dupes.row(0, named=True)
        raise DataError(
            f"DataFrame: {dupes.height} rows repeat a (unique_id, ds) pair, first unique_id={first['unique_id']!r} "
            f"ds={first['ds']}; keep one value per series and timestamp"
        )
    blocks = []
    for (uid,), group in frame.group_by("unique_id", maintain_order=True):
        wide = validate_wide(group.select("ds", pl.col("y").alias(uid)).sort("ds"), f"DataFrame series {uid!r}",
                             "ds", **missing)
        blocks.append(Block((uid,), wide["ds"], wide.select(uid).to_numpy()))
    names = tuple(b.names[0] for b in blocks)
    if all(b.dates.equals(blocks[0].dates) for b in blocks):  # shared timestamps: model jointly
        joint = Block(names, blocks[0].dates, np.concatenate([b.values for b in blocks], axis=1))
        return Layout("long", names, False, "ds"), [joint]
    return Layout("long", names, True, "ds"), blocks


def _reorder(blocks: list[Block], layout: Layout) -> list[Block]:
    if layout.panel:  # one block per series, even when these series happen to share timestamps
        by_name = {name: Block((name,), b.dates, b.values[:, [i]]) for b in blocks for i, name in enumerate(b.names)}
        return [by_name[name] for name in layout.series]
    (block,) = blocks if len(blocks) == 1 else (None,)
    if block is None:
        raise DataError("DataFrame: the series do not share their timestamps, as they did in fit")
    order = [block.names.index(name) for name in layout.series]
    return [Block(layout.series, block.dates, block.values[:, order])]


def step_of(dates: pl.Series) -> str:
    """The polars interval that continues a series' timestamps (e.g. "1h", "15m", "1mo")."""
    seconds = dates.diff().drop_nulls().median().total_seconds()
    days = seconds / 86400
    if 28 <= days <= 31:
        return "1mo"
    if 89 <= days <= 92:
        return "1q"
    if 365 <= days <= 366:
        return "1y"
    return f"{int(round(seconds))}s"


# ------------------------------------------------------------------------------------- the API
class Forecaster:
    """Fit, forecast, evaluate, save and serve one forecasting model.

    Args:
        model: registry name (`seqlab forecast list`).
        horizon: steps to forecast, H.
        lookback: steps of history per forecast, L.
        freq: calendar-feature frequency code (h, t, d, w, m, s); None infers it.
        loss: training loss, "mse" or "mae".
        train: TrainConfig or a mapping of its fields (epochs, lr, batch_size, ...).
        tracker: where to log the fit (an MLflow tracker, a MemoryTracker); None logs nothing.
        **model_params: fields of the model's config (d_model, n_layers, ...).
    """

    def __init__(
        self,
        model: str = "itransformer",
        horizon: int = 96,
        lookback: int = 96,
        *,
        freq: str | None = None,
        loss: Literal["mse", "mae"] = "mse",
        train: TrainConfig | Mapping[str, Any] | None = None,
        tracker: Tracker | None = None,
        **model_params: Any,
    ) -> None:
        self.model_name = model
        self.model_class = MODELS.get(model)
        self.horizon = horizon
        self.lookback = lookback
        self.freq = freq
        self.loss = loss
        self.train_config = train if isinstance(train, TrainConfig) else from_dict(TrainConfig, train or {}, "train.")
        self.tracker = tracker if tracker is not None else NullTracker()
        self.model_params = dict(model_params)
        self.model_config = from_dict(  # validated now, completed with N and k in fit
            self.model_class.config_class, {**model_params, "seq_len": lookback, "horizon": horizon}, "model."
        )
        self.model: torch.nn.Module | None = None
        self.layout: Layout | None = None
        self.policy = DataPolicy()
        self.scalers: list[StandardScaler] = []
        self.history: list[Block] = []

    # ---------------------------------------------------------------------------- fit
    def fit(
        self,
        df: Any,
        val_size: int | None = None,
        date_column: str = "date",
        allow_gaps: bool = False,
        missing_values: Sequence[float] = (),
        fill_missing: Literal["error", "interpolate"] = "error",
    ) -> Forecaster:
        """Train on every series of `df`; the last `val_size` steps of each series validate.

        val_size defaults to 10 % of the shortest series (at least `horizon`); 0 trains without
        validation (no early stopping). Timestamps must be evenly spaced (calendar months and
        years count as even); `allow_gaps=True` accepts gaps and treats rows as consecutive steps,
        as the benchmark protocol does. Empty/NaN cells and cells equal to `missing_values` are
        errors unless `fill_missing="interpolate"`.
        """
        self.policy = DataPolicy(tuple(float(v) for v in missing_values), fill_missing, allow_gaps)
        self.layout, blocks = read_frame(df, date_column, policy=self.policy)
        return self._fit_blocks(blocks, val_size)

    def _read_fitted(self, df: Any, date_column: str | None) -> list[Block]:
        """Blocks of a later frame, checked against the fit's layout, data policy and spacing."""
        layout = self._fitted()
        blocks = read_frame(df, date_column or layout.time_column, layout, self.policy)[1]
        if not self.policy.allow_gaps:
            for block in blocks:
                _check_regular(block, self.step)
        return blocks

    def _fit_blocks(self, blocks: list[Block], val_size: int | None) -> Forecaster:
        shortest = min(len(b.dates) for b in blocks)
        if val_size is None:
            val_size = max(self.horizon, shortest // 10)
        if val_size and val_size < self.horizon:
            raise DataError(f"val_size={val_size} must be 0 or at least the horizon ({self.horizon})")
        need = self.lookback + self.horizon + val_size
        short = [n for b in blocks if len(b.dates) < need for n in b.names]
        if short:
            raise DataError(
                f"DataFrame: series {short} have fewer than lookback + horizon + val_size = "
                f"{self.lookback} + {self.horizon} + {val_size} = {need} steps"
            )
        self.freq = self.freq or infer_freq(blocks[0].dates)
        self.step = step_of(blocks[0].dates)
        if not self.policy.allow_gaps:
            for block in blocks:
                _check_regular(block, self.step)
        # Statistics of the training rows only: validation (and anything later) never leaks in.
        self.scalers = [StandardScaler.fit(b.values[: len(b.dates) - val_size]) for b in blocks]
        train, _ = self._dataset(blocks, [(0, len(b.dates) - val_size) for b in blocks])
        val = None
        if val_size:
            val, _ = self._dataset(blocks, [(len(b.dates) - val_size - self.lookback, len(b.dates)) for b in blocks])
        self.history = [Block(b.names, b.dates[-self.lookback :], b.values[-self.lookback :]) for b in blocks]

        seed_everything(self.train_config.seed)
        n_variates = 1 if self.layout.panel else len(self.layout.series)
        self.model_config = _complete(self.model_config, n_variates, train.marks.shape[1])
        self.model = self.model_class(self.model_config)
        if not isinstance(self.tracker, NullTracker):
            self._log_setup(val_size)
        scale = None if self.layout.panel else self.scalers[0].std
        with tempfile.TemporaryDirectory(prefix="seqlab-forecaster-") as checkpoints:
            trainer = Trainer(self.model, ForecastTask(self.loss, scale), self.train_config, checkpoints,
                              tracker=self.tracker)
            self.fit_result = trainer.fit(train, val)
        self.model.eval()
        if val is not None and not isinstance(self.tracker, NullTracker):
            self._log_validation_plot(blocks, val_size)
        return self

    # ---------------------------------------------------------------------------- evaluation
    def evaluate(self, df: Any, date_column: str | None = None) -> pl.DataFrame:
        """Errors of every stride-1 window of `df`, one row per (series, window).

        The series are scaled with the statistics fitted in `fit`, so `df` (e.g. a test period)
        never informs its own scaling. Columns: unique_id, cutoff (the last look-back timestamp),
        mse, mae (data units), mse_scaled, mae_scaled (z-scored, as in papers).
        """
        blocks = self._read_fitted(df, date_column)
        dataset, origin = self._dataset(blocks, [(0, len(b.dates)) for b in blocks])
        if len(dataset) == 0:
            raise DataError(f"DataFrame: no series has lookback + horizon = {self.lookback + self.horizon} steps")
        err = (self._forecast(dataset) - dataset.get_batch(torch.arange(len(dataset))).y).double().numpy()
        rows = []
        for w, (b, first) in enumerate(origin):
            block, std = blocks[b], self.scalers[b].std
            cutoff = block.dates[first + self.lookback - 1]
            for v, name in enumerate(block.names):
                e = err[w, :, v]
                rows.append((name, cutoff, float(np.mean((e * std[v]) ** 2)), float(np.mean(np.abs(e * std[v]))),
                             float(np.mean(e**2)), float(np.mean(np.abs(e)))))
        return pl.DataFrame(rows, schema=["unique_id", "cutoff", "mse", "mae", "mse_scaled", "mae_scaled"],
                            orient="row")

    def cross_validation(
        self,
        df: Any,
        n_windows: int = 1,
        step: int = 1,
        val_size: int | None = None,
        date_column: str = "date",
        allow_gaps: bool = False,
        missing_values: Sequence[float] = (),
        fill_missing: Literal["error", "interpolate"] = "error",
    ) -> pl.DataFrame:
        """Fit on everything before the last `n_windows` forecast windows, then forecast each.

        Windows start `step` apart and the last one ends at the end of each series. The model and
        its scaler see only the rows before the first forecast window. Returns a long frame:
        unique_id, ds, cutoff (the last timestamp before the window), y, y_hat.
        """
        if n_windows < 1 or step < 1:
            raise DataError(f"n_windows and step must be >= 1, got {n_windows} and {step}")
        self.policy = DataPolicy(tuple(float(v) for v in missing_values), fill_missing, allow_gaps)
        self.layout, blocks = read_frame(df, date_column, policy=self.policy)
        held_out = self.horizon + (n_windows - 1) * step
        train_blocks = [Block(b.names, b.dates[: len(b.dates) - held_out], b.values[: len(b.dates) - held_out])
                        for b in blocks]
        self._fit_blocks(train_blocks, val_size)
        starts = [np.arange(n_windows) * step + len(b.dates) - held_out - self.lookback for b in blocks]
        dataset, origin = self._dataset(blocks, [(0, len(b.dates)) for b in blocks], starts)
        pred = self._forecast(dataset).numpy()
        parts = []
        for w, (b, first) in enumerate(origin):
            block, scaler = blocks[b], self.scalers[b]
            rows = slice(first + self.lookback, first + self.lookback + self.horizon)
            y_hat = scaler.inverse(pred[w])
            cutoff = block.dates[first + self.lookback - 1]
            for v, name in enumerate(block.names):
                parts.append(pl.DataFrame({"unique_id": name, "ds": block.dates[rows], "cutoff": cutoff,
                                           "y": block.values[rows, v], "y_hat": y_hat[:, v]}))
        return pl.concat(parts)

    def _dataset(
        self, blocks: list[Block], spans: list[tuple[int, int]], starts: list[np.ndarray] | None = None
    ) -> tuple[WindowDataset, list[tuple[int, int]]]:
        """Scaled windows over rows [start, end) of every block, stacked without crossing blocks.

        starts: first rows of the wanted windows, per block (default: every window of the span).
        Returns the dataset and, per window, (block index, first row in the block).
        """
        values, marks, firsts, origin, offset = [], [], [], [], 0
        for i, (block, scaler, (start, end)) in enumerate(zip(blocks, self.scalers, spans)):
            scaled = scaler.transform(block.values[start:end])
            values.append(torch.from_numpy(scaled.astype(np.float32)))
            marks.append(torch.from_numpy(time_features(block.dates[start:end], self.freq)))
            local = (np.arange(end - start - self.lookback - self.horizon + 1) if starts is None
                     else np.asarray(starts[i]) - start)
            firsts.append(torch.from_numpy(local + offset))
            origin += [(i, int(r) + start) for r in local]
            offset += end - start
        stacked = torch.cat(values)
        if self.layout.panel:  # each series its own univariate sample: (T_total, 1)
            stacked = stacked.reshape(-1, 1)
        return WindowDataset(stacked, torch.cat(marks), self.lookback, self.horizon, torch.cat(firsts)), origin

    def _forecast(self, dataset: WindowDataset) -> torch.Tensor:
        """(W, H, N) forecasts of every window in scaled units, in eval mode."""
        size = self.train_config.eval_batch_size
        outputs = []
        for first in range(0, len(dataset), size):
            batch = dataset.get_batch(torch.arange(first, min(first + size, len(dataset))))
            outputs.append(self._run(batch.x, batch.x_mark, batch.y_mark))
        return torch.cat(outputs)

    def _run(self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor) -> torch.Tensor:
        """The model in eval mode on its own device; CPU float32 out."""
        self.model.eval()
        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model(x.to(device), x_mark.to(device), y_mark.to(device)).float().cpu()

    # ---------------------------------------------------------------------------- predict
    def predict(self, df: Any | None = None, date_column: str | None = None) -> pl.DataFrame:
        """Forecast the `horizon` steps after the last timestamp of each series.

        df: the history to forecast from (same form and series as in fit); None uses the end of
        the training frame. Returns the same form: wide (time column + series) or long
        (unique_id, ds, y_hat), in the data's units.
        """
        layout = self._fitted()
        blocks = self.history if df is None else self._read_fitted(df, date_column)
        forecasts = []
        for block, scaler in zip(blocks, self.scalers):
            if len(block.dates) < self.lookback:
                raise DataError(f"DataFrame: series {list(block.names)} have {len(block.dates)} steps; "
                                f"forecasting needs the last lookback = {self.lookback}")
            dates = block.dates[-self.lookback :]
            future_dates = _future_dates(dates[-1], self.step, self.horizon)
            x = torch.from_numpy(scaler.transform(block.values[-self.lookback :]).astype(np.float32))
            x = x.reshape(-1, 1) if layout.panel else x
            x_mark = torch.from_numpy(time_features(dates, self.freq))
            y_mark = torch.from_numpy(time_features(future_dates, self.freq))
            y = self._run(x[None], x_mark[None], y_mark[None])[0].numpy()
            forecasts.append((block.names, future_dates, scaler.inverse(y.reshape(self.horizon, -1))))
        return self._to_frame(forecasts, "y_hat")

    def _to_frame(self, forecasts: list[tuple[tuple[str, ...], pl.Series, np.ndarray]], value: str) -> pl.DataFrame:
        layout = self._fitted()
        if layout.kind == "wide":
            (names, dates, values), = forecasts
            return pl.DataFrame({layout.time_column: dates, **{n: values[:, i] for i, n in enumerate(names)}})
        parts = [
            pl.DataFrame({"unique_id": [name] * len(dates), "ds": dates, value: values[:, i]})
            for names, dates, values in forecasts
            for i, name in enumerate(names)
        ]
        return pl.concat(parts)

    def _fitted(self) -> Layout:
        if self.model is None or self.layout is None:
            raise RuntimeError("call fit() (or Forecaster.load()) before using the model")
        return self.layout

    # ---------------------------------------------------------------------------- save / load
    def save(self, path: str | Path) -> Path:
        """Write config, weights, scalers, layout and the last look-back of each series to `path/`."""
        layout = self._fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_checkpoint({"model": self.model.state_dict()}, path / "weights.pt")
        meta = {
            "format_version": FORMAT_VERSION,
            "seqlab_version": __version__,
            "model": self.model_name,
            "model_config": to_dict(self.model_config),
            "train_config": to_dict(self.train_config),
            "loss": self.loss,
            "freq": self.freq,
            "step": self.step,
            "layout": dataclasses.asdict(layout),
            "policy": dataclasses.asdict(self.policy),
            "scalers": [{"mean": s.mean.tolist(), "std": s.std.tolist()} for s in self.scalers],
            "history": [
                {"names": list(b.names), "dates": [d.isoformat() for d in b.dates.to_list()], "values": b.values.tolist()}
                for b in self.history
            ],
        }
        text = json.dumps(meta, indent=1).encode()
        atomic_write_bytes(path / "forecaster.json", lambda f: f.write(text))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        path = Path(path)
        meta_path = path / "forecaster.json"
        if not meta_path.is_file():
            raise DataError(f"{path} is not a saved Forecaster (no forecaster.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{meta_path}: format version {meta.get('format_version')!r} (seqlab {meta.get('seqlab_version')}); "
                f"this seqlab ({__version__}) reads version {FORMAT_VERSION}"
            )
        model_config = dict(meta["model_config"])
        fc = cls(meta["model"], model_config.pop("horizon"), model_config.pop("seq_len"), freq=meta["freq"],
                 loss=meta["loss"], train=meta["train_config"], **model_config)
        fc.step = meta["step"]
        fc.layout = Layout(**{**meta["layout"], "series": tuple(meta["layout"]["series"])})
        policy = meta["policy"]
        fc.policy = DataPolicy(tuple(policy["missing_values"]), policy["fill_missing"], policy["allow_gaps"])
        fc.scalers = [StandardScaler(np.asarray(s["mean"]), np.asarray(s["std"])) for s in meta["scalers"]]
        fc.history = [
            Block(tuple(h["names"]), pl.Series(h["dates"]).str.to_datetime(time_unit="us"), np.asarray(h["values"]))
            for h in meta["history"]
        ]
        fc.model = fc.model_class(fc.model_config)
        fc.model.load_state_dict(load_checkpoint(path / "weights.pt")["model"])
        fc.model.eval()
        return fc

    def _log_setup(self, val_size: int) -> None:
        layout = self._fitted()
        self.tracker.set_tags({**environment_tags(), "seqlab.field": "forecasting", "seqlab.api": "Forecaster",
                               "seqlab.model": self.model_name, "seqlab.seed": str(self.train_config.seed)})
        self.tracker.log_params(flatten({
            "model": {"name": self.model_name, **to_dict(self.model_config)},
            "train": to_dict(self.train_config),
            "data": {"form": layout.kind, "panel": layout.panel, "series": len(layout.series), "val_size": val_size,
                     "freq": self.freq, "step": self.step, **dataclasses.asdict(self.policy)},
            "loss": self.loss,
        }))

    def _log_validation_plot(self, blocks: list[Block], val_size: int) -> None:
        """Look-back, truth and forecast of the last validation window of each series."""
        from forecasting import plots

        starts = [np.array([len(b.dates) - self.horizon - self.lookback]) for b in blocks]
        dataset, origin = self._dataset(blocks, [(0, len(b.dates)) for b in blocks], starts)
        pred = self._forecast(dataset).numpy()
        panels = []
        for w, (b, first) in enumerate(origin):
            block, scaler = blocks[b], self.scalers[b]
            past = slice(first, first + self.lookback)
            future = slice(first + self.lookback, first + self.lookback + self.horizon)
            y_hat = scaler.inverse(pred[w])
            for v, name in enumerate(block.names):
                panels.append(plots.Panel(name, block.dates[past].to_list(), block.values[past, v],
                                          block.dates[future].to_list(), block.values[future, v], y_hat[:, v]))
        figure = plots.forecast_panels(panels[:12], "last validation window (data units)")
        self.tracker.log_figure(figure, "plots/validation_forecasts.png")

    # ---------------------------------------------------------------------------- MLflow
    def log_model(self, name: str = "model", registered_model_name: str | None = None) -> Any:
        """Log this Forecaster as an MLflow pyfunc model in the tracker's run.

        `mlflow.pyfunc.load_model(uri).predict(history)` then returns the same frame as
        `predict(history)`; the input example is the look-back the model keeps from fit.
        """
        import mlflow

        self._fitted()
        run_id = getattr(self.tracker, "run_id", None)
        uri = getattr(self.tracker, "tracking_uri", None)
        if not run_id or not uri:
            raise RuntimeError("log_model needs the Forecaster to be created with an MlflowTracker")
        with tempfile.TemporaryDirectory(prefix="seqlab-pyfunc-") as tmp:
            saved = self.save(Path(tmp) / "forecaster")
            example = self._history_frame().to_pandas()
            mlflow.set_tracking_uri(uri)
            with mlflow.start_run(run_id=run_id):
                return mlflow.pyfunc.log_model(
                    name=name,
                    python_model=str(Path(__file__).with_name("mlflow_model.py")),
                    artifacts={"forecaster": str(saved)},
                    input_example=example,
                    registered_model_name=registered_model_name,
                    # seqlab itself is not on a package index: serve where it is installed
                    # (`mlflow models serve --env-manager local`).
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"polars=={pl.__version__}",
                                      f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
                )

    def _history_frame(self) -> pl.DataFrame:
        """The kept look-back in the fit's form (wide or long)."""
        return self._to_frame([(b.names, b.dates, b.values) for b in self.history], "y")


def _complete(config: Any, n_variates: int, n_time_features: int) -> Any:
    """Fill the config fields that describe the data (N, k) where the model has them."""
    found = {"n_variates": n_variates, "n_time_features": n_time_features}
    fill = {k: v for k, v in found.items() if hasattr(config, k) and getattr(config, k) is None}
    return dataclasses.replace(config, **fill)


def _check_regular(block: Block, step: str) -> None:
    """Refuse unevenly spaced timestamps: windows would silently mix different time spans."""
    if not step.endswith("s"):  # calendar steps (months, quarters, years) vary in length by design
        return
    seconds = block.dates.diff().dt.total_seconds().drop_nulls()
    bad = seconds != int(step[:-1])
    if bad.any():
        row = int(bad.arg_max()) + 1  # 0-based index of the row after the odd step
        raise DataError(
            f"DataFrame: series {list(block.names)} are not evenly spaced: {block.dates[row - 1]} -> "
            f"{block.dates[row]} is {seconds[row - 1]:g} s where the usual step is {step} (row {row + 1}); "
            "fill the gap, or pass allow_gaps=True to treat rows as consecutive steps"
        )


def _future_dates(last: Any, step: str, horizon: int) -> pl.Series:
    """The `horizon` timestamps after `last`, `step` apart (calendar-aware for months and years)."""
    start = pl.Series("ds", [last])
    return pl.concat([start.dt.offset_by(_times(step, i)) for i in range(1, horizon + 1)])


def _times(step: str, n: int) -> str:
    number = int("".join(ch for ch in step if ch.isdigit()))
    unit = "".join(ch for ch in step if not ch.isdigit())
    return f"{number * n}{unit}"
