"""Forecasting data: validated CSV reading, the benchmark datasets, split borders, windows.

The protocol is the one of the long-horizon papers (TSLib, iTransformer, Informer2020), minus its
known bugs:
- ETT: 12/4/4 months of 30 days (train 8640 h, val 2880 h, test 2880 h; x4 for 15-minute data);
  other files: 70/10/20 % of rows. Val and test windows start `seq_len` rows before their border,
  so their look-back overlaps the previous split.
- The standard scaler is fitted on the training rows only and applied to every split.
- Windows have stride 1: window i reads rows [i, i+L) and predicts [i+L, i+L+H).
- Every test window is used (no `drop_last`), so metrics do not depend on the batch size.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import polars as pl
import torch
from torch import Tensor
from torch.utils.data import Dataset

from forecasting.timefeatures import infer_freq, time_features
from seqlab.datadirs import field_data_dirs, shared_data_dir
from seqlab.errors import SeqlabError

log = logging.getLogger(__name__)

SplitScheme = Literal["ett_hour", "ett_minute", "ratio"]
Duplicates = Literal["error", "keep"]
FillMissing = Literal["error", "interpolate"]
COMMON_SENTINELS = (-9999.0, -999.0, 9999.0)
PACKAGED_DIR = Path(__file__).resolve().parent / "datasets"
SHARED_DIR = shared_data_dir("forecasting")

_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
)


class DataError(SeqlabError, ValueError):
    """Input data is missing or malformed; the message names the file, column or row."""


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark dataset: its file and the split scheme the papers use for it."""

    file: str
    split: SplitScheme
    duplicate_timestamps: Duplicates = "error"


CATALOGUE: dict[str, DatasetSpec] = {
    "ETTh1": DatasetSpec("ETTh1.csv", "ett_hour"),
    "ETTh2": DatasetSpec("ETTh2.csv", "ett_hour"),
    "ETTm1": DatasetSpec("ETTm1.csv", "ett_minute"),
    "ETTm2": DatasetSpec("ETTm2.csv", "ett_minute"),
    # weather.csv repeats one timestamp (2020-05-12 06:00); the references use every row as is.
    "Weather": DatasetSpec("weather.csv", "ratio", duplicate_timestamps="keep"),
    "Exchange": DatasetSpec("exchange_rate.csv", "ratio"),
    "ILI": DatasetSpec("national_illness.csv", "ratio"),
}


# ------------------------------------------------------------------------------------- files
def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Where dataset files are looked for, in order.

    An explicit directory alone; otherwise the shared rule (`seqlab.datadirs`: $SEQLAB_DATA_DIR,
    `../shared/data/forecasting`) followed by the files shipped with seqlab.
    """
    if data_dir is not None:
        return [Path(data_dir)]
    return [*field_data_dirs("forecasting"), PACKAGED_DIR]


def resolve_dataset(name: str, data_dir: str | Path | None = None) -> tuple[Path, DatasetSpec]:
    """A catalogue name (ETTh1, Weather, ...) or a CSV path -> (file, spec)."""
    if name in CATALOGUE:
        spec = CATALOGUE[name]
        searched = data_dirs(data_dir)
        for directory in searched:
            if (directory / spec.file).is_file():
                return directory / spec.file, spec
        raise DataError(
            f"dataset {name}: {spec.file} not found in {', '.join(map(str, searched))}; "
            "set --data-dir or SEQLAB_DATA_DIR to the folder holding it"
        )
    if name.lower().endswith((".csv", ".parquet")) or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise DataError(f"data file {path} does not exist")
        return path, DatasetSpec(path.name, "ratio")
    raise DataError(f"unknown dataset {name!r}; use one of {', '.join(CATALOGUE)} or a path to a CSV file")


def read_wide(
    path: str | Path,
    date_column: str = "date",
    duplicate_timestamps: Duplicates = "error",
    missing_values: Sequence[float] = (),
    fill_missing: FillMissing = "error",
) -> pl.DataFrame:
    """Read a wide table (a date column + one numeric column per series) and validate it.

    Returns the frame with `date_column` as Datetime and every other column as Float64. Each
    problem raises a DataError naming the file, the column and the first offending row (row 1 is
    the first data row after the header).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        else:
            # Every cell as text: types are checked below over all rows, so a bad cell anywhere
            # is reported with its column and row (schema inference would stop at a guess).
            frame = pl.read_csv(path, infer_schema_length=0)
    except Exception as exc:  # polars raises several error types for unreadable files
        raise DataError(f"{path}: cannot be read as a table ({exc.__class__.__name__}: {exc})") from None
    return validate_wide(frame, str(path), date_column, duplicate_timestamps, missing_values, fill_missing)


def validate_wide(
    frame: pl.DataFrame,
    source: str,
    date_column: str = "date",
    duplicate_timestamps: Duplicates = "error",
    missing_values: Sequence[float] = (),
    fill_missing: FillMissing = "error",
) -> pl.DataFrame:
    """Check a wide frame and return it with Datetime dates and Float64 series.

    `source` names the data in messages (a file path, or "DataFrame"). Empty and NaN cells, and
    cells equal to one of `missing_values` (sentinels such as -9999), are missing: an error by
    default, or filled by linear interpolation in time (nearest value at the ends) with
    `fill_missing="interpolate"`. Text and infinite cells are always errors.
    """
    if date_column not in frame.columns:
        raise DataError(
            f"{source}: no {date_column!r} column; columns are {frame.columns}. "
            f"The timestamp column must be named {date_column!r} (or pass its name as date_column)"
        )
    if frame.height == 0:
        raise DataError(f"{source}: has a header but no rows")
    series = [c for c in frame.columns if c != date_column]
    if not series:
        raise DataError(f"{source}: has only the {date_column!r} column; expected one numeric column per series")
    dates = _parse_dates(frame[date_column], source, date_column)
    frame = frame.with_columns(
        [dates.alias(date_column), *(_to_float(frame[c], source, missing_values, fill_missing) for c in series)]
    )
    _check_increasing(frame[date_column], source, date_column, duplicate_timestamps)
    for column, (value, count) in sentinel_counts(frame, date_column).items():
        log.warning(
            "%s: column %r holds %d cells equal to %g, a common missing-value sentinel; they are used as values "
            "(as the benchmark protocol does). Declare them missing with missing_values=[%g] (data.missing_values "
            "in configs) and fill_missing='interpolate'", source, column, count, value, value,
        )
    return frame


def _parse_dates(column: pl.Series, source: str, name: str) -> pl.Series:
    if column.null_count():
        raise DataError(f"{source}: column {name!r} row {column.is_null().arg_max() + 1}: missing timestamp")
    text = column.cast(pl.String)
    inferred = text.str.to_datetime(time_unit="us", strict=False)  # ISO 8601 and polars' own patterns
    attempts = [inferred, *(text.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _DATE_FORMATS)]
    best = min(attempts, key=lambda parsed: parsed.null_count())
    if best.null_count() == 0:
        return best.dt.replace_time_zone(None) if best.dtype.time_zone else best
    row = best.is_null().arg_max()  # first value the most successful format could not read
    raise DataError(
        f"{source}: column {name!r} row {row + 1}: cannot parse {text[row]!r} as a timestamp; "
        "expected e.g. '2016-07-01 00:00:00' or '1990/1/1 0:00'"
    )


def _to_float(column: pl.Series, source: str, missing_values: Sequence[float], fill: FillMissing) -> pl.Series:
    name = column.name
    if column.dtype == pl.Boolean or not (column.dtype.is_numeric() or column.dtype == pl.String):
        raise DataError(f"{source}: column {name!r} has type {column.dtype}; expected numbers")
    values = column.cast(pl.Float64, strict=False)
    text = values.is_null() & column.is_not_null()
    infinite = values.is_infinite().fill_null(False)
    missing = (values.is_null() | values.is_nan() | values.is_in([float(v) for v in missing_values])).fill_null(True) & ~text
    for bad, reason in ((text | infinite, "not a finite number"), (missing if fill == "error" else None, "missing")):
        if bad is not None and bad.any():
            row = bad.arg_max()
            raw = column[row]
            what = "is empty" if raw is None else f"holds {raw!r}, which is {reason}"
            hint = " (or fill missing cells with fill_missing='interpolate')" if reason == "missing" else ""
            raise DataError(
                f"{source}: column {name!r} row {row + 1} {what}; expected a finite number in every cell{hint}"
            )
    if missing.any():
        values = values.set(missing, None).interpolate().fill_null(strategy="forward").fill_null(strategy="backward")
    return values


def sentinel_counts(frame: pl.DataFrame, date_column: str = "date") -> dict[str, tuple[float, int]]:
    """Columns holding a common missing-value sentinel (-9999, -999, 9999): {column: (value, count)}.

    Declared sentinels are already gone (filled or refused) when a validated frame gets here."""
    found = {}
    for name in (c for c in frame.columns if c != date_column):
        for value in COMMON_SENTINELS:
            count = int((frame[name] == value).sum())
            if count:
                found[name] = (value, count)
    return found


def _check_increasing(dates: pl.Series, source: str, name: str, duplicates: Duplicates) -> None:
    step = dates.diff().dt.total_microseconds()
    bad = (step < 0) if duplicates == "keep" else (step <= 0)
    if bad.any():
        row = bad.arg_max()  # 0-based index of the offending row
        raise DataError(
            f"{source}: column {name!r} is not strictly increasing: row {row + 1} ({dates[row]}) "
            f"follows row {row} ({dates[row - 1]}); sort the file and remove duplicate timestamps"
        )


# ------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class Borders:
    """Row ranges [start, end) of each split, including the look-back that precedes val/test."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def windows(self, split: str, seq_len: int, horizon: int) -> int:
        start, end = getattr(self, split)
        return max(0, end - start - seq_len - horizon + 1)


def split_borders(n_rows: int, scheme: SplitScheme, seq_len: int) -> Borders:
    """The references' `border1s/border2s` for a table of `n_rows` rows."""
    if scheme in ("ett_hour", "ett_minute"):
        per_month = 30 * 24 * (4 if scheme == "ett_minute" else 1)
        train_end, val_end, test_end = 12 * per_month, 16 * per_month, 20 * per_month
        if n_rows < test_end:
            raise DataError(f"the ETT protocol needs {test_end} rows (20 months of 30 days), the table has {n_rows}")
    else:
        n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
        train_end, val_end, test_end = n_train, n_rows - n_test, n_rows
    return Borders(
        train=(0, train_end),
        val=(max(0, train_end - seq_len), val_end),
        test=(max(0, val_end - seq_len), test_end),
    )


# ------------------------------------------------------------------------------------- scaling
@dataclass(frozen=True)
class StandardScaler:
    """Per-series mean and standard deviation (ddof 0, as sklearn); a zero std is replaced by 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        std = values.std(axis=0)
        return cls(mean=values.mean(axis=0), std=np.where(std == 0, 1.0, std))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


# ------------------------------------------------------------------------------------- windows
class ForecastBatch(NamedTuple):
    """x: (B, L, N) look-back; x_mark: (B, L, k) its time features; y: (B, H, N) targets;
    y_mark: (B, H, k) time features of the forecast steps."""

    x: Tensor
    x_mark: Tensor
    y: Tensor
    y_mark: Tensor


class WindowDataset(Dataset):
    """Windows over the rows of values: (T, N) with calendar features marks: (T, k).

    `starts` lists the first row of every window; by default every row that leaves room for
    L + H steps (stride 1). Several series stacked into one tensor pass the starts of each, so no
    window crosses from one series into the next.
    """

    def __init__(
        self, values: Tensor, marks: Tensor, seq_len: int, horizon: int, starts: Tensor | None = None
    ) -> None:
        self.values = values
        self.marks = marks
        self.seq_len = seq_len
        self.horizon = horizon
        self.starts = torch.arange(max(0, len(values) - seq_len - horizon + 1)) if starts is None else starts
        self._past = torch.arange(seq_len)
        self._future = torch.arange(seq_len, seq_len + horizon)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> ForecastBatch:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        return ForecastBatch(*(t[0] for t in self.get_batch(torch.tensor([index]))))

    def get_batch(self, indices: Tensor) -> ForecastBatch:
        """Gather a batch of windows in one indexing operation."""
        first = self.starts[indices][:, None]  # (B, 1)
        past, future = first + self._past, first + self._future  # (B, L), (B, H) row numbers
        return ForecastBatch(self.values[past], self.marks[past], self.values[future], self.marks[future])


@dataclass(frozen=True)
class ForecastData:
    """A dataset prepared for one (seq_len, horizon): scaled splits of windows and their provenance."""

    name: str
    path: Path
    columns: list[str]
    freq: str
    dates: pl.Series
    borders: Borders
    scaler: StandardScaler
    train: WindowDataset
    val: WindowDataset
    test: WindowDataset

    @property
    def n_variates(self) -> int:
        return len(self.columns)

    @property
    def n_time_features(self) -> int:
        return self.train.marks.shape[1]


def load_forecast_data(
    name: str,
    seq_len: int,
    horizon: int,
    data_dir: str | Path | None = None,
    freq: str | None = None,
    date_column: str = "date",
    missing_values: Sequence[float] = (),
    fill_missing: FillMissing = "error",
) -> ForecastData:
    """Read, validate, split, scale and window a dataset (catalogue name or CSV path)."""
    path, spec = resolve_dataset(name, data_dir)
    frame = read_wide(path, date_column, spec.duplicate_timestamps, missing_values, fill_missing)
    columns = [c for c in frame.columns if c != date_column]
    borders = split_borders(frame.height, spec.split, seq_len)
    for split in ("train", "val", "test"):
        if borders.windows(split, seq_len, horizon) < 1:
            start, end = getattr(borders, split)
            raise DataError(
                f"{path}: the {split} split (rows {start + 1}..{end}, {end - start} rows) is shorter than "
                f"seq_len + horizon = {seq_len} + {horizon}; use a shorter look-back or horizon, or more data"
            )
    values = np.ascontiguousarray(frame.select(columns).to_numpy(), dtype=np.float64)
    scaler = StandardScaler.fit(values[borders.train[0] : borders.train[1]])
    scaled = torch.from_numpy(scaler.transform(values).astype(np.float32))
    dates = frame[date_column]
    freq = freq or infer_freq(dates)
    marks = torch.from_numpy(time_features(dates, freq))

    def window(split: str) -> WindowDataset:
        start, end = getattr(borders, split)
        return WindowDataset(scaled[start:end], marks[start:end], seq_len, horizon)

    return ForecastData(
        name=name, path=path, columns=columns, freq=freq, dates=dates, borders=borders,
        scaler=scaler, train=window("train"), val=window("val"), test=window("test"),
    )
