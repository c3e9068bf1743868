"""Calendar features of timestamps, the references' `timeF` encoding.

Each feature is scaled to [-0.5, 0.5] exactly as in TSLib / Informer2020
(`utils/timefeatures.py`): e.g. hour-of-day = hour / 23 - 0.5, day-of-month = (day - 1) / 30 - 0.5.
Which features a frequency gets, and in which order, follows the same table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from seqlab.errors import SeqlabError

Feature = Callable[[pl.Expr], pl.Expr]

_FEATURES: dict[str, Feature] = {
    "second_of_minute": lambda d: d.dt.second() / 59 - 0.5,
    "minute_of_hour": lambda d: d.dt.minute() / 59 - 0.5,
    "hour_of_day": lambda d: d.dt.hour() / 23 - 0.5,
    "day_of_week": lambda d: (d.dt.weekday() - 1) / 6 - 0.5,  # polars: Monday = 1
    "day_of_month": lambda d: (d.dt.day() - 1) / 30 - 0.5,
    "day_of_year": lambda d: (d.dt.ordinal_day() - 1) / 365 - 0.5,
    "month_of_year": lambda d: (d.dt.month() - 1) / 11 - 0.5,
    "week_of_year": lambda d: (d.dt.week() - 1) / 52 - 0.5,
}

_DAILY = ["day_of_week", "day_of_month", "day_of_year"]
FEATURES_BY_FREQ: dict[str, list[str]] = {
    "y": [],
    "m": ["month_of_year"],
    "w": ["day_of_month", "week_of_year"],
    "d": _DAILY,
    "h": ["hour_of_day", *_DAILY],
    "t": ["minute_of_hour", "hour_of_day", *_DAILY],
    "s": ["second_of_minute", "minute_of_hour", "hour_of_day", *_DAILY],
}


def time_features(dates: pl.Series, freq: str) -> np.ndarray:
    """(T,) datetimes -> (T, k) float32 features for frequency code `freq` (see FEATURES_BY_FREQ)."""
    if freq not in FEATURES_BY_FREQ:
        raise SeqlabError(f"unknown time-feature frequency {freq!r}; expected one of {sorted(FEATURES_BY_FREQ)}")
    names = FEATURES_BY_FREQ[freq]
    if not names:
        return np.zeros((len(dates), 0), dtype=np.float32)
    frame = pl.DataFrame({"d": dates}).select(_FEATURES[n](pl.col("d")).alias(n) for n in names)
    return frame.to_numpy().astype(np.float32)


def infer_freq(dates: pl.Series) -> str:
    """Frequency code from the median spacing of sorted timestamps."""
    if len(dates) < 2:
        raise SeqlabError("cannot infer a frequency from fewer than two timestamps")
    step = dates.diff().drop_nulls().median()
    seconds = step.total_seconds()
    if seconds < 60:
        return "s"
    if seconds < 3600:
        return "t"
    if seconds < 86400:
        return "h"
    if seconds < 7 * 86400:
        return "d"
    if seconds < 28 * 86400:
        return "w"
    if seconds < 365 * 86400:
        return "m"
    return "y"
