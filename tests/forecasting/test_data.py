"""The data protocol: window counts, split borders, training-only scaling, window content, and
clear errors for bad input files."""

import re
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import torch

from forecasting.data import (
    CATALOGUE,
    PACKAGED_DIR,
    SHARED_DIR,
    DataError,
    WindowDataset,
    load_forecast_data,
    read_wide,
    resolve_dataset,
    split_borders,
)
from seqlab.errors import SeqlabError

needs_shared = pytest.mark.skipif(not SHARED_DIR.is_dir(), reason=f"{SHARED_DIR} is not present")


@pytest.fixture(scope="module")
def etth1():
    return load_forecast_data("ETTh1", 96, 96, data_dir=PACKAGED_DIR)


@pytest.fixture(scope="module")
def etth1_raw():
    """(dates as text, values (17420, 7)) read without our reader."""
    frame = pl.read_csv(PACKAGED_DIR / "ETTh1.csv", try_parse_dates=False)
    return frame, frame.drop("date").to_numpy().astype(np.float64)


def hourly_csv(path, n_rows, columns=("a", "b"), start=datetime(2020, 1, 1)):
    t = np.arange(n_rows, dtype=np.float64)
    frame = pl.DataFrame(
        {"date": [(start + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n_rows)]}
        | {c: np.sin(t / (3 + k)) + k for k, c in enumerate(columns)}
    )
    frame.write_csv(path)
    return path


def write_text(path, text):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------- protocol counts
@pytest.mark.parametrize(("horizon", "counts"), [(96, (8449, 2785, 2785)), (192, (8353, 2689, 2689))])
def test_etth1_window_counts_match_the_protocol(horizon, counts):
    data = load_forecast_data("ETTh1", 96, horizon, data_dir=PACKAGED_DIR)
    assert (len(data.train), len(data.val), len(data.test)) == counts
    assert (data.n_variates, data.freq, data.n_time_features) == (7, "h", 4)


@pytest.mark.parametrize("seq_len", [96, 336])
def test_ett_hour_borders_are_the_references_border1s_border2s(seq_len):
    b = split_borders(17420, "ett_hour", seq_len)
    assert (b.train, b.val, b.test) == ((0, 8640), (8640 - seq_len, 11520), (11520 - seq_len, 14400))


def test_ett_minute_borders_are_four_times_the_hourly_ones():
    b = split_borders(69680, "ett_minute", 96)
    assert (b.train, b.val, b.test) == ((0, 34560), (34560 - 96, 46080), (46080 - 96, 57600))


def test_ett_scheme_refuses_a_table_shorter_than_twenty_months():
    with pytest.raises(DataError, match="needs 14400 rows .* the table has 14399"):
        split_borders(14399, "ett_hour", 96)


@pytest.mark.parametrize("n", [7588, 966, 52696, 40])
def test_ratio_borders_follow_the_references_integer_arithmetic(n):
    seq_len = 96 if n > 100 else 10
    num_train, num_test = int(n * 0.7), int(n * 0.2)
    num_vali = n - num_train - num_test
    b = split_borders(n, "ratio", seq_len)
    border1s = [0, num_train - seq_len, n - num_test - seq_len]
    border2s = [num_train, num_train + num_vali, n]
    assert [b.train[0], b.val[0], b.test[0]] == border1s
    assert [b.train[1], b.val[1], b.test[1]] == border2s


def test_exchange_sized_ratio_borders_by_hand():
    # n = 7588: int(0.7 n) = 5311, int(0.2 n) = 1517 -> val ends at 6071.
    b = split_borders(7588, "ratio", 96)
    assert (b.train, b.val, b.test) == ((0, 5311), (5215, 6071), (5975, 7588))
    assert [b.windows(s, 96, 96) for s in ("train", "val", "test")] == [5120, 665, 1422]


@needs_shared
@pytest.mark.parametrize(("horizon", "n_test"), [(24, 170), (36, 158), (48, 146), (60, 134)])
def test_ili_test_window_counts(horizon, n_test):
    data = load_forecast_data("ILI", 36, horizon, data_dir=SHARED_DIR)
    assert len(data.test) == n_test
    assert data.freq == "w"


@needs_shared
@pytest.mark.parametrize(
    ("name", "horizon", "counts"),
    [
        ("ETTm1", 96, (34369, 11425, 11425)),
        ("Weather", 96, (36696, 5175, 10444)),
        ("Exchange", 720, (4496, 41, 798)),
    ],
)
def test_other_datasets_window_counts_match_the_research_table(name, horizon, counts):
    data = load_forecast_data(name, 96, horizon, data_dir=SHARED_DIR)
    assert (len(data.train), len(data.val), len(data.test)) == counts


# --------------------------------------------------------------------------------- scaling
def test_scaler_is_fitted_on_training_rows_only(tmp_path, etth1, etth1_raw):
    frame, raw = etth1_raw
    series = [c for c in frame.columns if c != "date"]
    later = pl.int_range(pl.len()) >= 8640
    frame.with_columns(pl.when(later).then(pl.col(c) * 1000).otherwise(pl.col(c)).alias(c) for c in series).write_csv(
        tmp_path / "ETTh1.csv"
    )
    poisoned = load_forecast_data("ETTh1", 96, 96, data_dir=tmp_path)

    np.testing.assert_allclose(poisoned.scaler.mean, etth1.scaler.mean, rtol=1e-12)
    np.testing.assert_allclose(poisoned.scaler.std, etth1.scaler.std, rtol=1e-12)
    np.testing.assert_allclose(poisoned.scaler.mean, raw[:8640].mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(poisoned.scaler.std, raw[:8640].std(axis=0, ddof=0), rtol=1e-10)


def test_first_training_window_is_the_z_scored_first_rows(etth1, etth1_raw):
    _, raw = etth1_raw
    mean, std = raw[:8640].mean(axis=0), raw[:8640].std(axis=0)
    window = etth1.train[0]
    expected = torch.from_numpy((raw[:96] - mean) / std).float()
    torch.testing.assert_close(window.x, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(window.y, torch.from_numpy((raw[96:192] - mean) / std).float(), rtol=1e-5, atol=1e-5)


def test_test_windows_look_back_across_the_border_and_end_at_row_14400(etth1, etth1_raw):
    _, raw = etth1_raw
    z = (raw - raw[:8640].mean(axis=0)) / raw[:8640].std(axis=0)
    first, last = etth1.test[0], etth1.test[len(etth1.test) - 1]
    torch.testing.assert_close(first.x, torch.from_numpy(z[11520 - 96 : 11520]).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first.y[0], torch.from_numpy(z[11520]).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last.y[-1], torch.from_numpy(z[14399]).float(), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------- windows
@pytest.fixture
def windows():
    torch.manual_seed(0)
    values, marks = torch.randn(50, 3), torch.rand(50, 4) - 0.5
    return WindowDataset(values, marks, seq_len=8, horizon=5), values, marks


def test_window_count_is_rows_minus_look_back_minus_horizon_plus_one(windows):
    dataset, _, _ = windows
    assert len(dataset) == 50 - 8 - 5 + 1
    assert len(WindowDataset(torch.zeros(12, 1), torch.zeros(12, 1), 8, 5)) == 0


def test_get_batch_equals_per_index_slicing(windows):
    dataset, values, marks = windows
    indices = torch.tensor([0, 1, 17, 36, len(dataset) - 1])
    batch = dataset.get_batch(indices)
    for row, i in enumerate(indices.tolist()):
        assert torch.equal(batch.x[row], values[i : i + 8])
        assert torch.equal(batch.x_mark[row], marks[i : i + 8])
        assert torch.equal(batch.y[row], values[i + 8 : i + 13])
        assert torch.equal(batch.y_mark[row], marks[i + 8 : i + 13])
        single = dataset[i]
        assert all(torch.equal(a, b[row]) for a, b in zip(single, batch))
    assert torch.equal(batch.y[-1, -1], values[-1])  # the last window predicts the last row


@pytest.mark.parametrize("index", [38, 100, -1])  # 38 windows: 0..37
def test_getitem_out_of_range_raises_index_error(windows, index):
    dataset, _, _ = windows
    with pytest.raises(IndexError, match="out of range"):
        dataset[index]


# --------------------------------------------------------------------------------- shipped and shared files
@needs_shared
@pytest.mark.parametrize("path", sorted(SHARED_DIR.glob("*.csv")) if SHARED_DIR.is_dir() else [], ids=lambda p: p.name)
def test_every_shared_csv_reads_with_parsed_dates(path):
    spec = next((s for s in CATALOGUE.values() if s.file == path.name), None)
    frame = read_wide(path, duplicate_timestamps=spec.duplicate_timestamps if spec else "error")
    assert frame.schema["date"] == pl.Datetime("us")
    assert all(dtype == pl.Float64 for name, dtype in frame.schema.items() if name != "date")
    assert frame.height > 100


@needs_shared
def test_exchange_rate_slash_dates_parse():
    dates = read_wide(SHARED_DIR / "exchange_rate.csv")["date"]
    assert dates[0] == datetime(1990, 1, 1) and dates[1] == datetime(1990, 1, 2)
    assert dates[-1] == datetime(2010, 10, 10)


@needs_shared
def test_weather_duplicate_timestamp_is_refused_unless_kept():
    with pytest.raises(DataError, match=r"weather\.csv.*row \d+ \(2020-05-12 06:00:00\) follows"):
        read_wide(SHARED_DIR / "weather.csv")


# --------------------------------------------------------------------------------- bad input
HEADER_AND_TWO_ROWS = "date,a,b\n2020-01-01 00:00:00,1.0,2.0\n2020-01-01 01:00:00,1.5,2.5\n"


def test_data_error_is_a_seqlab_error():
    assert issubclass(DataError, SeqlabError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=re.escape(str(path)) + " does not exist"):
        read_wide(path)
    with pytest.raises(DataError, match=re.escape(str(path)) + " does not exist"):
        load_forecast_data(str(path), 4, 2)


def test_csv_without_date_column(tmp_path):
    path = write_text(tmp_path / "nodate.csv", "time,a\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,2\n")
    with pytest.raises(DataError, match=re.escape(str(path)) + r": no 'date' column; columns are \['time', 'a'\]"):
        read_wide(path)


def test_unparseable_date_names_column_row_and_value(tmp_path):
    path = write_text(tmp_path / "baddate.csv", HEADER_AND_TWO_ROWS + "2020-13-45 02:00:00,1,2\n")
    expected = re.escape(str(path)) + r": column 'date' row 3: cannot parse '2020-13-45 02:00:00'"
    with pytest.raises(DataError, match=expected):
        read_wide(path)


def test_missing_timestamp_names_the_row(tmp_path):
    path = write_text(tmp_path / "nodates.csv", HEADER_AND_TWO_ROWS + ",1,2\n")
    with pytest.raises(DataError, match=re.escape(str(path)) + r": column 'date' row 3: missing timestamp"):
        read_wide(path)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("", r"column 'b' row 3 is empty"), ("abc", r"column 'b' row 3 holds 'abc', which is not a finite number"),
     ("inf", r"column 'b' row 3 holds .*inf.*, which is not a finite number"),
     ("NaN", r"column 'b' row 3 holds 'NaN', which is missing; .*fill_missing='interpolate'")],
    ids=["empty", "text", "inf", "nan"],
)
def test_bad_cell_names_file_column_and_row(tmp_path, cell, expected):
    path = write_text(tmp_path / "cells.csv", HEADER_AND_TWO_ROWS + f"2020-01-01 02:00:00,3.0,{cell}\n")
    with pytest.raises(DataError, match=re.escape(str(path)) + ": " + expected):
        read_wide(path)


@pytest.mark.parametrize(
    ("last_date", "shown"), [("2020-01-01 00:30:00", "00:30:00"), ("2020-01-01 01:00:00", "01:00:00")],
    ids=["decreasing", "duplicate"],
)
def test_non_increasing_timestamps(tmp_path, last_date, shown):
    path = write_text(tmp_path / "order.csv", HEADER_AND_TWO_ROWS + f"{last_date},3,4\n")
    expected = rf": column 'date' is not strictly increasing: row 3 \(2020-01-01 {shown}\) follows row 2"
    with pytest.raises(DataError, match=re.escape(str(path)) + expected):
        read_wide(path)


def test_duplicates_are_accepted_when_kept_but_decreasing_never(tmp_path):
    dup = write_text(tmp_path / "dup.csv", HEADER_AND_TWO_ROWS + "2020-01-01 01:00:00,3,4\n")
    assert read_wide(dup, duplicate_timestamps="keep").height == 3
    dec = write_text(tmp_path / "dec.csv", HEADER_AND_TWO_ROWS + "2020-01-01 00:30:00,3,4\n")
    with pytest.raises(DataError, match="row 3"):
        read_wide(dec, duplicate_timestamps="keep")


def test_series_too_short_for_a_split(tmp_path):
    # 40 rows, ratio split: train (0, 28), val (18, 32) = 14 rows < seq_len + horizon = 15.
    path = hourly_csv(tmp_path / "short.csv", 40)
    expected = r": the val split \(rows 19\.\.32, 14 rows\) is shorter than seq_len \+ horizon = 10 \+ 5"
    with pytest.raises(DataError, match=re.escape(str(path)) + expected):
        load_forecast_data(str(path), 10, 5)
    assert len(load_forecast_data(str(path), 10, 4).val) == 1  # one row fewer fits exactly


def test_unknown_dataset_lists_the_catalogue():
    with pytest.raises(DataError, match=r"unknown dataset 'ETTh9'; use one of ETTh1, ETTh2, ETTm1, .*ILI"):
        resolve_dataset("ETTh9")


def test_catalogue_dataset_missing_from_data_dir(tmp_path):
    with pytest.raises(DataError, match=r"dataset ETTm1: ETTm1\.csv not found in " + re.escape(str(tmp_path))):
        load_forecast_data("ETTm1", 96, 96, data_dir=tmp_path)


# --------------------------------------------------------------------------------- known bugs
def integer_column_csv(path, late_cell, n_rows=10_050, at=10_020):
    start = datetime(2020, 1, 1)
    lines = ["date,a"]
    for i in range(n_rows):
        lines.append(f"{(start + timedelta(hours=i)):%Y-%m-%d %H:%M:%S},{late_cell if i == at else i}")
    return write_text(path, "\n".join(lines) + "\n")


def test_a_decimal_after_row_10000_in_an_integer_column_is_read(tmp_path):
    frame = read_wide(integer_column_csv(tmp_path / "late_decimal.csv", "1.5"))
    assert frame["a"][10_020] == 1.5


def test_a_text_cell_after_row_10000_is_reported_with_its_row(tmp_path):
    path = integer_column_csv(tmp_path / "late_text.csv", "abc")
    with pytest.raises(DataError, match=r"column 'a' row 10021 holds 'abc'"):
        read_wide(path)


# --------------------------------------------------------------------------------- missing values
def sentinel_csv(path, n=400, at=(100, 101), value="-9999"):
    lines = ["date,a,b"]
    start = datetime(2020, 1, 1)
    for i in range(n):
        a = value if i in at else f"{float(i):.1f}"
        lines.append(f"{(start + timedelta(hours=i)):%Y-%m-%d %H:%M:%S},{a},{i % 7}")
    return write_text(path, "\n".join(lines) + "\n")


def test_sentinels_are_missing_only_when_declared(tmp_path):
    path = sentinel_csv(tmp_path / "s.csv")
    assert read_wide(path)["a"][100] == -9999.0  # not declared: a value like any other
    with pytest.raises(DataError, match=r"column 'a' row 101 holds '-9999', which is missing"):
        read_wide(path, missing_values=[-9999])


def test_missing_cells_can_be_interpolated_in_time(tmp_path):
    frame = read_wide(sentinel_csv(tmp_path / "s.csv"), missing_values=[-9999], fill_missing="interpolate")
    assert frame["a"][99:103].to_list() == [99.0, 100.0, 101.0, 102.0]
    edge = read_wide(sentinel_csv(tmp_path / "e.csv", at=(0,), value=""), fill_missing="interpolate")
    assert edge["a"][0] == 1.0  # nearest value at the ends


def test_loading_warns_about_undeclared_sentinels(tmp_path, caplog):
    path = sentinel_csv(tmp_path / "s.csv")
    with caplog.at_level("WARNING", logger="forecasting.data"):
        load_forecast_data(str(path), 24, 12)
    assert "column 'a' holds 2 cells equal to -9999" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="forecasting.data"):
        load_forecast_data(str(path), 24, 12, missing_values=[-9999], fill_missing="interpolate")
    assert "-9999" not in caplog.text
