"""The benchmark's bookkeeping: report tables, ratios, and one tiny real case per runner."""

import pytest

from forecasting.bench import PUBLISHED, write_report
from forecasting.peers import PeerCase, report_lines, run_peer_case


def row(precision, seed, mse, mae, speed=1000.0):
    return {"model": "itransformer", "dataset": "ETTh1", "horizon": 96, "seed": seed, "precision": precision,
            "mse": mse, "mae": mae, "epochs": 5, "best_epoch": 3, "train_windows_per_s": speed,
            "test_windows_per_s": 4 * speed, "train_seconds": 10.0, "wall_seconds": 12.0, "peak_rss_mb": 400.0}


def test_report_puts_mean_and_std_beside_the_published_figure(tmp_path):
    rows = [row("fp32", 1, 0.380, 0.400), row("fp32", 2, 0.390, 0.410), row("bf16", 1, 0.381, 0.401, speed=1500)]
    path = tmp_path / "report.md"
    write_report(rows, [], "seqlab bench forecasting --quick", path)
    text = path.read_text()
    published_mse, published_mae = PUBLISHED[("itransformer", "ETTh1", 96)]
    assert f"| itransformer | ETTh1 | 96 | fp32 | 0.3850 ± 0.0071 | 0.4050 ± 0.0071 | {published_mse:.3f} / " in text
    assert f"| {0.385 - published_mse:+.4f} |" in text
    assert "**1.50×**" in text  # bf16 over fp32 training throughput
    assert (tmp_path / "report.json").exists()


def test_peer_table_gives_speed_ups_against_neuralforecast_fp32():
    rows = [
        {"model": "itransformer", "library": "neuralforecast", "precision": "fp32", "steps": 10, "test_mse": 0.4,
         "test_mae": 0.41, "train_windows_per_s": 200.0, "test_windows_per_s": 100.0, "peak_rss_mb": 900.0},
        {"model": "itransformer", "library": "seqlab", "precision": "bf16", "steps": 10, "test_mse": 0.39,
         "test_mae": 0.40, "train_windows_per_s": 1000.0, "test_windows_per_s": 5000.0, "peak_rss_mb": 400.0},
    ]
    lines = report_lines(rows)
    assert lines[2].endswith("| 1.0x | 1.0x |") and lines[3].endswith("| 5.0x | 50.0x |")


def test_a_tiny_seqlab_peer_case_runs_end_to_end():
    result = run_peer_case(PeerCase("seqlab", "itransformer", steps=3, precision="fp32"))
    assert result["test_mse"] > 0 and result["train_windows_per_s"] > 0 and result["peak_rss_mb"] > 0


def test_a_tiny_neuralforecast_peer_case_runs_end_to_end():
    pytest.importorskip("neuralforecast")
    result = run_peer_case(PeerCase("neuralforecast", "itransformer", steps=2, precision="fp32"))
    assert result["test_windows"] == 2785 and result["test_mse"] > 0
