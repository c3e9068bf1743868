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
    assert "Wall time of the 3 runs above" in text
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
    slow = [{**rows[0], "train_windows_per_s": 0.19927}, rows[1]]
    assert "| 0.2 | 100 |" in report_lines(slow)[2]  # a rate below 10/s keeps two digits, not "0"


def test_a_tiny_seqlab_peer_case_runs_end_to_end():
    result = run_peer_case(PeerCase("seqlab", "itransformer", steps=3, precision="fp32"))
    assert result["test_mse"] > 0 and result["train_windows_per_s"] > 0 and result["peak_rss_mb"] > 0


def test_a_tiny_neuralforecast_peer_case_runs_end_to_end():
    pytest.importorskip("neuralforecast")
    result = run_peer_case(PeerCase("neuralforecast", "itransformer", steps=2, precision="fp32"))
    assert result["test_windows"] == 2785 and result["test_mse"] > 0


def test_the_raced_itransformers_are_the_same_function():
    """With neuralforecast's weights loaded, seqlab's race model gives neuralforecast's forecast:
    the race compares two implementations of one model (same tokens, same layers)."""
    pytest.importorskip("neuralforecast")
    import torch
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import iTransformer

    from forecasting.experiment import build_config, build_model
    from forecasting.peers import SEQLAB_OVERRIDES

    peer = iTransformer(h=96, input_size=96, n_series=7, hidden_size=256, n_heads=8, e_layers=2, d_ff=256,
                        dropout=0.1, loss=MSE()).eval()
    cfg = build_config(model="itransformer", data="ETTh1", horizon=96, overrides=SEQLAB_OVERRIDES["itransformer"])
    ours = build_model(cfg, 7, 4).eval()
    theirs = list(peer.state_dict().values())  # the same parameters in the same order; Conv1d(k=1) = Linear
    assert len(theirs) == len(ours.state_dict())
    ours.load_state_dict({name: w.reshape(mine.shape)
                          for (name, mine), w in zip(ours.state_dict().items(), theirs, strict=True)})
    x, marks = torch.randn(4, 96, 7), torch.randn(4, 96, 4)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, marks), peer.forecast(x.clone()), atol=1e-5, rtol=1e-4)


def test_dataset_average_says_whether_the_target_is_met(tmp_path):
    from forecasting.bench import average_lines

    def group(dataset, horizon, mse):
        return {("itransformer", dataset, horizon, "bf16"): [{**row("bf16", 1, mse, 0.4), "dataset": dataset,
                                                               "horizon": horizon}]}

    published = {h: PUBLISHED[("itransformer", "ETTh1", h)][0] for h in (96, 192, 336, 720)}
    avg = sum(published.values()) / 4
    met = {k: v for h in published for k, v in group("ETTh1", h, published[h] - 0.01).items()}
    missed = {k: v for h in published for k, v in group("ETTh2", h, 1.0).items()}
    partial = group("Exchange", 96, 0.1)  # one horizon only: no average
    text = "\n".join(average_lines({**met, **missed, **partial}))
    etth1 = next(line for line in text.splitlines() if line.startswith("| itransformer | ETTh1 |"))
    assert etth1.endswith("| -0.0100 | met |") and f"| {avg:.3f}" in etth1
    assert "| itransformer | ETTh2 | bf16 | 1.0000 |" in text and "**not met**" in text
    # every ETTh2 horizon at 1.0: the lowest published figure gaps most
    worst = min(published, key=lambda h: PUBLISHED[("itransformer", "ETTh2", h)][0])
    assert f"- itransformer on ETTh2 (bf16) misses mostly at H={worst}" in text
    assert "outside our seed spread" in text and "misses mostly" not in text.split("ETTh2 (bf16)")[0]
    assert "Exchange" not in text


def test_resume_keeps_finished_runs_and_skips_datasets_without_a_preset(tmp_path, monkeypatch, capsys):
    import json

    import forecasting.bench as bench

    ran = []

    def fake_fresh_process(fn, case, data_dir):
        ran.append(case)
        return {**row(case.precision, case.seed, 0.5, 0.5), "dataset": case.dataset, "horizon": case.horizon,
                "threads": case.threads}

    monkeypatch.setattr(bench, "in_fresh_process", fake_fresh_process)
    out = tmp_path / "forecasting.md"
    earlier = {**row("bf16", 2023, 0.123, 0.4), "horizon": 96, "threads": 1}
    probe = {"precision": "bf16", "compile": False, "ms_per_step": 20.0, "warmup_seconds": 0.1}
    raced = {"model": "itransformer", "library": "neuralforecast", "precision": "fp32", "steps": 5, "test_mse": 0.4,
             "test_mae": 0.4, "train_windows_per_s": 100.0, "test_windows_per_s": 100.0, "peak_rss_mb": 1.0}
    out.with_suffix(".json").write_text(json.dumps({"command": "x", "runs": [earlier], "step_probes": [probe],
                                                    "peers": [raced]}))
    bench.main(["--datasets", "ETTh1", "ILI", "--horizons", "96", "--seeds", "2023", "2024", "--precisions", "bf16",
                "--threads", "1", "--no-peers", "--no-compile-probe", "--resume", "--out", str(out)])
    assert [(c.dataset, c.seed) for c in ran] == [("ETTh1", 2024)]
    assert "itransformer: no reference preset for ILI" in capsys.readouterr().out
    report = json.loads(out.with_suffix(".json").read_text())
    assert [r["mse"] for r in report["runs"]] == [0.123, 0.5]
    # neither probed nor raced this time: the earlier probe and race stay in the report
    assert report["step_probes"] == [probe] and report["peers"] == [raced]


def test_peers_only_reraces_the_named_models_and_keeps_the_others(tmp_path, monkeypatch):
    import json

    from forecasting import bench

    def peer(model, library, precision, mse):
        return {"model": model, "library": library, "precision": precision, "steps": 5, "test_mse": mse,
                "test_mae": mse, "train_windows_per_s": 100.0, "test_windows_per_s": 100.0, "peak_rss_mb": 1.0}

    raced = []

    def fake_fresh_process(fn, case, data_dir):
        raced.append((case.library, case.model, case.precision))
        return peer(case.model, case.library, case.precision, 0.5)

    monkeypatch.setattr(bench, "in_fresh_process", fake_fresh_process)
    find_spec = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec",  # neuralforecast as if installed
                        lambda name, *a: object() if name == "neuralforecast" else find_spec(name, *a))
    out = tmp_path / "forecasting.md"
    earlier = [peer("informer", "seqlab", "fp32", 0.9), peer("itransformer", "seqlab", "fp32", 0.1)]
    out.with_suffix(".json").write_text(json.dumps({"command": "x", "runs": [], "step_probes": [], "peers": earlier}))
    bench.main(["--peers-only", "--peer-models", "itransformer", "--out", str(out)])
    assert {model for _, model, _ in raced} == {"itransformer"} and len(raced) == 4
    peers = json.loads(out.with_suffix(".json").read_text())["peers"]
    assert [(p["model"], p["test_mse"]) for p in peers] == [("informer", 0.9)] + [("itransformer", 0.5)] * 4
