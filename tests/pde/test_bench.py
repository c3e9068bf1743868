"""The PDE benchmark's bookkeeping (report, targets, budget) and its measurements on tiny data."""

from __future__ import annotations

import json
import mmap

import pytest
import torch
from torch import nn

from pde import bench
from pde.experiment import build_config
from pde.generate import generate

pytest.importorskip("neuralop")


def ns_row(model, precision, nrmse_last, rollout=4.0, samples=20.0, **extra):
    return {"model": model, "precision": precision, "params": 1_200_000, "in_frames": 10, "out_frames": 1,
            "steps": 60, "batch_size": 8, "nrmse_t1": 0.05, "nrmse_t10": 0.2, "nrmse_last": nrmse_last,
            "last_step": 40, "rel_l2": 0.3, "vrmse": 0.31, "correlation_time": 12.0, "diverged": 0,
            "rollout_trajectories_per_s": rollout, "train_samples_per_s": samples, "train_seconds": 30.0,
            "wall_seconds": 40.0, "step_memory_mb": 120.0, "peak_rss_mb": 700.0, **extra}


SOLVER = {"solver": "pseudo-spectral", "resolution": 64, "solver_dt": 0.01, "substeps": 100, "trajectories": 8,
          "steps": 40, "seconds": 10.0, "trajectories_per_s": 0.8, "rel_l2_vs_data": 3e-6}
META = {"command": "seqlab bench pde --quick", "setting_name": "quick", "setting": bench.QUICK.__dict__,
        "load_start": "1.0", "load": "2.0", "dataset": "`ns.nc`"}


def test_report_tables_targets_and_json(tmp_path):
    ns = [ns_row("factformer", "fp32", 0.40), ns_row("pde_transformer", "fp32", 0.55, rollout=9.6),
          ns_row("fno", "fp32", 0.50, rollout=4.0, samples=40.0), ns_row("fno", "bf16", 0.52, samples=50.0),
          {"model": "factformer", "precision": "bf16", "error": "RuntimeError: boom"}]
    darcy = [{"model": "fno", "params": 1_192_801, "epochs": 2, "n_train": 1000, "train_samples_per_s": 200.0,
              "train_seconds": 10.0, "rel_l2_16": 0.12, "rel_l2_32": 0.2}]
    path = tmp_path / "pde.md"
    bench.write_report(ns, SOLVER, darcy, META, path)
    text = path.read_text()
    assert ("| factformer | fp32 | 1,200,000 | 10 → 1 | 0.0500 | 0.2000 | 0.4000 (40) | 0.3000 | 0.3100 | 12.0 "
            "| 20.0 | 30 | 4.00 | 5.0 | 120 | 700 |") in text  # 4.00 / 0.8 trajectories/s = 5.0x the solver
    assert "| pde_transformer | fp32 | 1,200,000 | 10 → 1 | 0.0500 | 0.2000 | 0.5500 (40) |" in text
    assert "| factformer | bf16 | failed: RuntimeError: boom |  |" in text
    assert "factformer nRMSE(t=40) 0.4000 vs FNO 0.5000: **met**" in text
    assert "pde_transformer (fp32) 12.0x (target 10x): **met**" in text
    assert "fno 1.25×" in text  # bf16 over fp32 training throughput, per model with both
    assert "| fno | 1,192,801 | 1000 | 2 | 0.1200 | 0.2000 | 0.101 / 0.146 |" in text
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved["command"] == META["command"] and len(saved["navier_stokes"]) == 5 and saved["solver"] == SOLVER


def test_targets_say_not_met_when_fno_wins_or_the_rollout_is_slow():
    ns = [ns_row("factformer", "fp32", 0.6, rollout=2.0), ns_row("pde_transformer", "fp32", 0.7, rollout=7.9),
          ns_row("fno", "fp32", 0.5)]
    lines = bench.targets(ns, SOLVER)
    assert lines[0].endswith("factformer nRMSE(t=40) 0.6000 vs FNO 0.5000: **not met**.")
    assert lines[1].endswith("pde_transformer (fp32) 9.9x (target 10x): **not met**.")
    assert bench.targets([ns_row("fno", "fp32", 0.5)], None)[0].startswith("- Not decided")
    # with the FNO generator's step timed too, the ratio against it is given as context only
    context = bench.targets(ns, {**SOLVER, "reference_dt": 1e-4, "reference_trajectories_per_s": 0.008})
    assert context[1].endswith("**not met**.")
    assert "the same rollout is 988x faster" in context[2] and "100x fewer steps" in context[2]


@pytest.fixture(scope="module")
def tiny_ns(tmp_path_factory):
    """4 trajectories x 14 frames of the benchmark's NS data (64^2): 4 frames after frame 10."""
    path = tmp_path_factory.mktemp("ns") / "ns.nc"
    return generate("ns_nu1e-3_64", path, {"n_samples": 4, "n_frames": 14}, progress=False)


def test_budget_scales_the_step_counted_settings(tiny_ns, tmp_path):
    case = bench.NSCase("factformer", "factformer_ns64", "bf16", str(tiny_ns), 2, 2, 60, 3, str(tmp_path))
    cfg = bench.ns_config(case)
    base = build_config("factformer_ns64")
    assert cfg.train.max_steps == 60 and cfg.train.batch_size == 3 and cfg.train.precision == "bf16"
    assert cfg.train.warmup_steps == round(base.train.warmup_steps * 60 / base.train.max_steps)
    assert cfg.task.curriculum_length == round(base.task.curriculum_length * 60 / base.train.max_steps)
    windows = 2 * (14 - 10 - 4 + 1)  # 2 trajectories, one window each: 60 steps need 60 epochs of 1 batch
    assert cfg.train.epochs * -(-windows // 3) >= 60 and cfg.data.n_val == 0


class Persistence(nn.Module):
    """Repeats the last input frame: its rollout depends only on the frame it starts from."""

    def __init__(self, out_frames: int) -> None:
        super().__init__()
        self.out_frames = out_frames

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        return x[:, -1:].expand(-1, self.out_frames, *x.shape[2:])


def test_every_model_is_tested_from_the_same_frame(tiny_ns, tmp_path):
    scores = []
    for model, preset in (("pde_transformer", "pde_transformer_ns64"), ("fno", "fno_ns64")):
        cfg = bench.ns_config(bench.NSCase(model, preset, "fp32", str(tiny_ns), 2, 2, 1, 1, str(tmp_path)))
        scores.append(bench.aligned_test(cfg, Persistence(cfg.model.out_frames)))
    one_frame, ten_frames = scores  # T_in = 1 and T_in = 10 read different windows ending at frame 10
    assert one_frame["test/rollout_steps"] == ten_frames["test/rollout_steps"] == 4
    for key in ("test/nrmse_t1", "test/nrmse_last", "test/rel_l2"):
        assert one_frame[key] == pytest.approx(ten_frames[key], rel=1e-6) and one_frame[key] > 0


def test_solver_timing_recomputes_the_stored_frames(tiny_ns):
    solver = bench.run_solver_case(str(tiny_ns), n_train=2, n_test=2)
    assert solver["trajectories"] == 2 and solver["steps"] == 4 and solver["trajectories_per_s"] > 0
    assert solver["rel_l2_vs_data"] < 1e-4  # the same computation as the data, from frame 10's state
    assert 0 < solver["reference_trajectories_per_s"] < solver["trajectories_per_s"]  # dt 1e-4: more steps


def test_darcy_case_tests_at_both_resolutions_reproducibly(tmp_path):
    from pde.data import DatasetError, resolve_path

    try:
        resolve_path("darcy_train_16")
    except DatasetError as exc:
        pytest.skip(f"neuraloperator's Darcy files are not in the data folders: {exc}")
    case = bench.DarcyCase("fno", "darcy_fno16", epochs=1, n_train=64, output_dir=str(tmp_path))
    row, again = bench.run_darcy_case(case), bench.run_darcy_case(case)
    assert row["params"] == 1_192_801  # neuralop's documented Darcy FNO
    assert 0 < row["rel_l2_16"] < 1.5 and 0 < row["rel_l2_32"] < 1.5 and row["epochs"] == 1
    assert (again["rel_l2_16"], again["rel_l2_32"]) == (row["rel_l2_16"], row["rel_l2_32"])  # seeded weights


@pytest.mark.slow
def test_main_end_to_end_in_fresh_processes(tmp_path):
    out = tmp_path / "pde.md"
    assert bench.main(["--models", "fno", "--precisions", "fp32", "--n-samples", "4", "--n-frames", "14",
                       "--n-train", "2", "--n-test", "2", "--steps", "2", "--batch-size", "2", "--darcy-models",
                       "fno", "--darcy-epochs", "1", "--darcy-train", "32", "--work-dir", str(tmp_path),
                       "--out", str(out)]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert [r["model"] for r in saved["navier_stokes"]] == ["fno"] and "error" not in saved["navier_stokes"][0]
    assert saved["solver"]["steps"] == 4 and saved["darcy"][0]["n_train"] == 32
    assert "## Darcy 16² → 32² zero-shot" in out.read_text()


def test_peak_growth_sees_a_step_below_an_earlier_peak():
    from seqlab.bench import peak_growth_mb

    # Anonymous maps, touched page by page: fresh memory whatever malloc has cached from other tests.
    def touch(mib: int) -> None:
        with mmap.mmap(-1, mib * 2**20) as block:
            for page in range(0, len(block), mmap.PAGESIZE):
                block[page] = 1

    touch(96)  # an earlier, higher peak (96 MiB) ...
    grown = peak_growth_mb(lambda: touch(48))  # ... must not hide a 48 MiB step
    assert 40 < grown < 96
