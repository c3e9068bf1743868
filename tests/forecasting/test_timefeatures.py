"""Calendar features against the references' `timeF` formulas, and frequency inference."""

import random
import re
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from forecasting.timefeatures import infer_freq, time_features
from seqlab.errors import SeqlabError


def features(stamps, freq):
    return time_features(pl.Series("date", stamps, dtype=pl.Datetime("us")), freq)


def reference(stamp):
    """The TSLib / Informer2020 formulas (utils/timefeatures.py), written out with the stdlib."""
    return {
        "second": stamp.second / 59 - 0.5,
        "minute": stamp.minute / 59 - 0.5,
        "hour": stamp.hour / 23 - 0.5,
        "dow": stamp.weekday() / 6 - 0.5,  # Monday = 0, as pandas' dayofweek
        "dom": (stamp.day - 1) / 30 - 0.5,
        "doy": (stamp.timetuple().tm_yday - 1) / 365 - 0.5,
        "month": (stamp.month - 1) / 11 - 0.5,
        "week": (stamp.isocalendar()[1] - 1) / 52 - 0.5,
    }


ORDER = {
    "h": ["hour", "dow", "dom", "doy"],
    "t": ["minute", "hour", "dow", "dom", "doy"],
    "s": ["second", "minute", "hour", "dow", "dom", "doy"],
    "d": ["dow", "dom", "doy"],
    "w": ["dom", "week"],
    "m": ["month"],
}


@pytest.mark.parametrize(
    ("stamp", "freq", "expected"),
    [
        # 2016-07-01 is a Friday (weekday 4) and day 183 of the leap year 2016.
        (datetime(2016, 7, 1), "h", [0 / 23 - 0.5, 4 / 6 - 0.5, 0 / 30 - 0.5, 182 / 365 - 0.5]),
        (datetime(2016, 7, 1), "d", [4 / 6 - 0.5, -0.5, 182 / 365 - 0.5]),
        (datetime(2016, 7, 1), "m", [6 / 11 - 0.5]),
        # 2017-03-15 12:30 is a Wednesday (2), day 31 + 28 + 15 = 74.
        (datetime(2017, 3, 15, 12, 30), "t", [30 / 59 - 0.5, 12 / 23 - 0.5, 2 / 6 - 0.5, 14 / 30 - 0.5, 73 / 365 - 0.5]),
        # 2016-12-31 23:59:59: Saturday (5), day 366 -> every feature at its top except day of week.
        (datetime(2016, 12, 31, 23, 59, 59), "s", [0.5, 0.5, 0.5, 5 / 6 - 0.5, 0.5, 0.5]),
        # 2018-01-01 00:00 is a Monday in ISO week 1: every feature at its bottom.
        (datetime(2018, 1, 1), "s", [-0.5] * 6),
        (datetime(2018, 1, 1), "w", [-0.5, -0.5]),
        # 2017-01-01 (a Sunday) belongs to ISO week 52 of 2016.
        (datetime(2017, 1, 1), "w", [-0.5, 51 / 52 - 0.5]),
    ],
)
def test_hand_computed_values(stamp, freq, expected):
    np.testing.assert_allclose(features([stamp], freq)[0], expected, atol=1e-6)


@pytest.mark.parametrize("freq", sorted(ORDER))
def test_random_timestamps_match_the_reference_formulas_in_order(freq):
    rng = random.Random(0)
    stamps = [datetime(2012, 1, 1) + timedelta(seconds=rng.randrange(10 * 366 * 86400)) for _ in range(500)]
    got = features(stamps, freq)
    expected = np.array([[reference(s)[name] for name in ORDER[freq]] for s in stamps])
    assert got.shape == (500, len(ORDER[freq])) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.min() >= -0.5 and got.max() <= 0.5


def test_yearly_frequency_has_no_features():
    assert features([datetime(2020, 1, 1), datetime(2021, 1, 1)], "y").shape == (2, 0)


def test_unknown_frequency_is_an_error():
    with pytest.raises(SeqlabError, match=r"unknown time-feature frequency 'q'"):
        features([datetime(2020, 1, 1)], "q")


@pytest.mark.parametrize(
    ("interval", "expected"),
    [("1s", "s"), ("15m", "t"), ("10m", "t"), ("1h", "h"), ("1d", "d"), ("1w", "w"), ("1mo", "m"), ("1y", "y")],
)
def test_infer_freq(interval, expected):
    start = datetime(2016, 7, 1)
    count, unit = re.fullmatch(r"(\d+)(\w+)", interval).groups()
    end = pl.select(pl.lit(start).dt.offset_by(f"{200 * int(count)}{unit}")).item()
    dates = pl.datetime_range(start, end, interval, eager=True)
    assert len(dates) == 201
    assert infer_freq(dates) == expected


def test_infer_freq_uses_the_typical_step_despite_a_gap():
    dates = pl.Series([datetime(2020, 1, 1) + timedelta(hours=i) for i in [*range(50), *range(60, 100)]])
    assert infer_freq(dates) == "h"


def test_infer_freq_needs_two_timestamps():
    with pytest.raises(SeqlabError, match="fewer than two timestamps"):
        infer_freq(pl.Series([datetime(2020, 1, 1)]))
