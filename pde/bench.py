"""`seqlab bench pde`: FactFormer, PDE-Transformer and neuraloperator's FNO side by side, written
to docs/benchmarks/pde.md (+ .json).

Navier-Stokes: one generated split of FNO's nu = 1e-3 data at 64^2 (data preset ns_nu1e-3_64).
Each model trains from its preset (pde/configs/experiments/*_ns64.yaml) for the same optimizer
steps and batch, in fp32 and in bf16 autocast, each run in a fresh process (so peak memory is
its own). Every model then rolls the test trajectories out from the same frame (frame 10, FNO's
T_in) to the last one, under the precision it trained in, scored in physical units. The
numerical solver that made the data is timed on the same trajectories and frames, from the same
state, for the surrogates' speed-up.

Darcy: each model trains on neuraloperator's 16^2 file and is tested at 16^2 and, zero-shot, at
32^2, beside the library's documented FNO figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from seqlab.bench import git_commit, in_fresh_process, machine, peak_growth_mb, peak_rss_mb

NS_PRESET = "ns_nu1e-3_64"
NS_MODELS = {"factformer": "factformer_ns64", "pde_transformer": "pde_transformer_ns64", "fno": "fno_ns64"}
DARCY_MODELS = {"fno": "darcy_fno16", "factformer": "darcy_factformer16", "pde_transformer": "darcy_pde_transformer16"}
OURS = ("factformer", "pde_transformer")
PEER = "fno"
CONTEXT = 10
"""Frames known before the first scored frame: every model starts its test rollout at frame 10."""
DARCY_DOCUMENTED = {16: 0.101, 32: 0.146}
"""neuraloperator's documented FNO Darcy example, test rel-L2 at 16^2 and zero-shot 32^2
(measured with neuraloperator 2.0.0 in ../shared/research/pde.md §6)."""
SPEEDUP_TARGET = 10.0
REFERENCE_DT = 1e-4
"""The time step of FNO's NS data generator (forward Euler + CN), for the speed-up in context."""
REPORT = Path("docs/benchmarks/pde.md")
WORK_DIR = Path("outputs/bench-pde")


@dataclass(frozen=True)
class Setting:
    """Data, split and budget of one benchmark setting."""

    n_samples: int
    """NS trajectories generated (the preset holds 1200)."""
    n_frames: int
    """Stored frames per trajectory (the preset's 50: t = 1..50)."""
    n_train: int
    n_test: int
    steps: int
    """Optimizer steps per NS run, the same for every model."""
    batch_size: int
    darcy_epochs: int
    darcy_train: int
    """Darcy training samples used (of 1000)."""


FULL = Setting(n_samples=1200, n_frames=50, n_train=1000, n_test=100, steps=2000, batch_size=16,
               darcy_epochs=20, darcy_train=1000)
QUICK = Setting(n_samples=48, n_frames=50, n_train=40, n_test=8, steps=60, batch_size=8,
                darcy_epochs=2, darcy_train=1000)


@dataclass(frozen=True)
class NSCase:
    model: str
    preset: str
    precision: str
    dataset: str
    n_train: int
    n_test: int
    steps: int
    batch_size: int
    output_dir: str
    seed: int = 2023


@dataclass(frozen=True)
class DarcyCase:
    model: str
    preset: str
    epochs: int
    n_train: int
    output_dir: str
    data_dir: str | None = None
    seed: int = 2023


def n_parameters(model: Any) -> int:
    """Real-valued weights; a complex weight (FNO's spectral weights) counts as two."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


# ------------------------------------------------------------------------------ Navier-Stokes
def ns_dataset(setting: Setting, work_dir: Path) -> Path:
    """The NS file of this setting, simulated once into <work_dir>/data/ and reused after."""
    from pde.generate import generate

    path = work_dir / "data" / f"{NS_PRESET}-{setting.n_samples}x{setting.n_frames}.nc"
    if not path.exists():
        generate(NS_PRESET, path, {"n_samples": setting.n_samples, "n_frames": setting.n_frames}, progress=False)
    return path


def ns_config(case: NSCase) -> Any:
    """The case's experiment config: its preset with the benchmark's data, split and budget.

    The preset's step-counted settings (warm-up, curriculum, push-forward start) scale with the
    budget; `epochs` is set to cover `steps`. The experiment's own test is cut to one step: the
    bench re-tests every model from the same frame (`aligned_test`).
    """
    from pde.data import open_dataset
    from pde.experiment import build_config

    base = build_config(case.preset)
    n_frames = open_dataset(case.dataset, chunks=None).sizes["time"]
    windows = case.n_train * (n_frames - base.model.in_frames - base.model.out_frames + 1)
    epochs = math.ceil(case.steps / math.ceil(windows / case.batch_size))
    scale = case.steps / (base.train.max_steps or case.steps)
    task = {"curriculum_length": round(base.task.curriculum_length * scale)}
    if base.task.pushforward_after is not None:
        task["pushforward_after"] = round(base.task.pushforward_after * scale)
    return build_config(case.preset, {
        "data": {"dataset": case.dataset, "n_train": case.n_train, "n_val": 0, "n_test": case.n_test,
                 "rollout_steps": 1},
        "train": {"max_steps": case.steps, "epochs": epochs, "batch_size": case.batch_size,
                  "warmup_steps": round(base.train.warmup_steps * scale), "precision": case.precision,
                  "seed": case.seed, "progress": False},
        "task": task,
        "tracking": {"enabled": False},
        "output_dir": case.output_dir,
    })


def step_memory_mb(cfg: Any, spatial: tuple[int, ...]) -> float:
    """Peak memory of one forward + backward pass at the training batch (MiB), over the memory in
    use before it: the activations (and gradients) a training step needs."""
    import torch

    from pde.models import MODELS
    from seqlab.train.runtime import autocast

    model_cfg = dataclasses.replace(cfg.model, **{k: v for k, v in (("channels", 1), ("spatial_dims", len(spatial)))
                                                  if hasattr(cfg.model, k)})
    model = MODELS.get(cfg.model_name)(model_cfg)
    x = torch.randn(cfg.train.batch_size, model_cfg.in_frames, 1, *spatial)

    def step() -> None:
        with autocast(torch.device("cpu"), cfg.train.precision):
            loss = model(x).float().square().mean()
        loss.backward()

    return peak_growth_mb(step)


def aligned_test(cfg: Any, model: Any) -> dict[str, float]:
    """Roll the test trajectories out from frame CONTEXT to the last, whatever the model's T_in."""
    import torch

    from pde.experiment import load_data, rollout_test

    data = load_data(cfg)
    n_frames = data.test.sizes["time"]
    data.test = data.test.isel(time=slice(CONTEXT - cfg.model.in_frames, None))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, rollout_steps=n_frames - CONTEXT))
    metrics, _, _ = rollout_test(model, data, cfg, torch.device("cpu"), cfg.train.precision)
    return metrics


def run_ns_case(case: NSCase) -> dict:
    """Train and test one model at one precision in this process; metrics, speed and memory."""
    from pde.experiment import run_experiment
    from pde.surrogate import Surrogate
    from seqlab.tracking import NullTracker

    cfg = ns_config(case)
    memory = step_memory_mb(cfg, (64, 64))
    started = time.perf_counter()
    result = run_experiment(cfg, tracker=NullTracker())
    model = Surrogate.load(result.surrogate_path).build()
    test = aligned_test(result.config, model)
    last = int(test["test/rollout_steps"])
    return {
        "model": case.model,
        "precision": case.precision,
        "params": n_parameters(model),
        "in_frames": cfg.model.in_frames,
        "out_frames": cfg.model.out_frames,
        "steps": result.fit.global_step,
        "batch_size": case.batch_size,
        "nrmse_t1": test["test/nrmse_t1"],
        "nrmse_t10": test[f"test/nrmse_t{min(10, last)}"],  # clipped to the rollout (short test settings)
        "nrmse_last": test["test/nrmse_last"],
        "last_step": last,
        "rel_l2": test["test/rel_l2"],
        "vrmse": test["test/vrmse"],
        "correlation_time": test["test/correlation_time"],
        "diverged": int(test["test/diverged"]),
        "rollout_trajectories_per_s": test["test/rollout_trajectories_per_s"],
        "train_samples_per_s": result.fit.samples_per_second,
        "train_seconds": result.fit.train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "step_memory_mb": memory,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_solver_case(dataset: str, n_train: int, n_test: int, split_seed: int = 0) -> dict:
    """Time the solver that made `dataset` on the test trajectories: from frame CONTEXT's state to
    the last frame, the frames the surrogates predict, in one batch like the generation."""
    import numpy as np
    import torch
    import yaml

    from pde import metrics
    from pde.data import DatasetError, open_dataset, split_by_trajectory
    from pde.solvers.navier_stokes import DTYPES, NavierStokesConfig, VorticityStepper, fno_forcing
    from seqlab.config import from_dict

    ds = open_dataset(dataset, chunks=None, variables=["vorticity"])
    if ds.attrs.get("equation") != "navier_stokes_2d" or "config" not in ds.attrs:
        raise DatasetError(f"{dataset}: the solver timing needs a generated navier_stokes_2d dataset with its "
                           f"solver config in attr 'config'; got equation={ds.attrs.get('equation')!r}")
    cfg = from_dict(NavierStokesConfig, yaml.safe_load(ds.attrs["config"]))
    frames = torch.from_numpy(np.asarray(split_by_trajectory(ds, n_train, 0, n_test, seed=split_seed)
                                         .test["vorticity"].values, dtype=np.float32))  # (B, T, Y, X)
    steps = frames.shape[1] - CONTEXT
    forcing = fno_forcing(cfg.resolution, cfg.forcing_amplitude)
    dtype = DTYPES[cfg.precision]

    def make_stepper(step: float, scheme: str) -> VorticityStepper:
        return VorticityStepper(cfg.resolution, float(ds.attrs["domain_length"]), cfg.viscosity, 0.0, forcing,
                                step, scheme, dtype)

    stepper = make_stepper(cfg.step, cfg.scheme)
    started = time.perf_counter()
    w_hat = stepper.to_spectral(frames[:, CONTEXT - 1].to(dtype))
    out = []
    for _ in range(steps):
        for _ in range(cfg.substeps):
            w_hat = stepper.step(w_hat)
        out.append(stepper.to_physical(w_hat))
    seconds = time.perf_counter() - started
    pred = torch.stack(out, dim=1)[:, :, None].float()  # (B, steps, 1, Y, X)
    # Context, not the target: the same trajectories with the FNO data generator's update (CN +
    # forward Euler at dt 1e-4, 100x our steps), timed over one frame and scaled to all of them.
    reference = make_stepper(REFERENCE_DT, "euler")
    per_frame = round(cfg.step * cfg.substeps / REFERENCE_DT)
    began = time.perf_counter()
    w_hat = reference.to_spectral(frames[:, CONTEXT - 1].to(dtype))
    for _ in range(per_frame):
        w_hat = reference.step(w_hat)
    reference.to_physical(w_hat)
    reference_seconds = (time.perf_counter() - began) * steps
    return {
        "solver": str(ds.attrs["solver"]),
        "resolution": cfg.resolution,
        "solver_dt": cfg.step,
        "substeps": cfg.substeps,
        "trajectories": frames.shape[0],
        "steps": steps,
        "seconds": seconds,
        "trajectories_per_s": frames.shape[0] / seconds,
        "reference_dt": REFERENCE_DT,
        "reference_trajectories_per_s": frames.shape[0] / reference_seconds,
        # The same computation as the stored data: differences are float32 round-off, grown by the flow.
        "rel_l2_vs_data": float(metrics.relative_l2(pred, frames[:, CONTEXT:, None]).mean()),
    }


# ------------------------------------------------------------------------------ Darcy
def run_darcy_case(case: DarcyCase) -> dict:
    """Train the preset's steady operator on the Darcy 16^2 file (coefficient -> solution, the
    experiment of `seqlab pde train darcy_*`), tested at 16^2 and zero-shot at 32^2: mean relative L2
    per sample in physical units."""
    from pde.experiment import build_config, run_experiment
    from pde.surrogate import Surrogate
    from seqlab.tracking import NullTracker

    cfg = build_config(case.preset, {
        "data": {"dataset": "darcy_train_16", "data_dir": case.data_dir, "n_train": case.n_train, "n_val": 0,
                 "n_test": 0, "test_datasets": [f"darcy_test_{resolution}" for resolution in DARCY_DOCUMENTED]},
        "train": {"epochs": case.epochs, "seed": case.seed, "precision": "fp32", "progress": False},
        "tracking": {"enabled": False},
        "output_dir": case.output_dir,
    })
    result = run_experiment(cfg, tracker=NullTracker())
    model = Surrogate.load(result.surrogate_path).build()
    row = {"model": case.model, "params": n_parameters(model), "epochs": result.fit.epochs_completed,
           "n_train": case.n_train, "train_samples_per_s": result.fit.samples_per_second,
           "train_seconds": result.fit.train_seconds}
    for resolution in DARCY_DOCUMENTED:
        row[f"rel_l2_{resolution}"] = result.test[f"test/darcy_test_{resolution}/rel_l2"]
    return row


# ------------------------------------------------------------------------------ report
def speedup(row: dict, solver: dict | None) -> float | None:
    """Surrogate rollout over solver, for the same trajectories and frames (None: no solver timing)."""
    if not solver or "rollout_trajectories_per_s" not in row:
        return None
    return row["rollout_trajectories_per_s"] / solver["trajectories_per_s"]


def targets(ns: list[dict], solver: dict | None) -> list[str]:
    """The issue's two targets, each with the numbers that decide it and whether it is met."""
    done = [r for r in ns if "error" not in r]
    lines = []
    for precision in sorted({r["precision"] for r in done}):
        rows = {r["model"]: r for r in done if r["precision"] == precision}
        ours = [rows[m] for m in OURS if m in rows]
        if PEER not in rows or not ours:
            continue
        best = min(ours, key=lambda r: r["nrmse_last"])
        met = best["nrmse_last"] < rows[PEER]["nrmse_last"]
        lines.append(f"- Long-rollout error, {precision}: best transformer {best['model']} "
                     f"nRMSE(t={best['last_step']}) {best['nrmse_last']:.4f} vs FNO {rows[PEER]['nrmse_last']:.4f}: "
                     f"**{'met' if met else 'not met'}**.")
    ratios = [(speedup(r, solver), r) for r in done if r["model"] in OURS]
    ratios = [(s, r) for s, r in ratios if s is not None]
    if ratios:
        s, r = max(ratios, key=lambda item: item[0])
        lines.append(f"- Rollout vs solver: fastest transformer {r['model']} ({r['precision']}) {s:.1f}x "
                     f"(target {SPEEDUP_TARGET:g}x): **{'met' if s >= SPEEDUP_TARGET else 'not met'}**.")
        if solver.get("reference_trajectories_per_s"):
            ref = r["rollout_trajectories_per_s"] / solver["reference_trajectories_per_s"]
            fewer = round(solver["solver_dt"] / solver["reference_dt"])
            lines.append(f"  In context: against the same solver with FNO's data-generator step (forward Euler, "
                         f"dt {solver['reference_dt']:g}) the same rollout is {ref:.0f}x faster. The target is judged "
                         f"against the solver that made our data (Heun, dt {solver['solver_dt']:g}: {fewer}x fewer "
                         "steps).")
    return lines or ["- Not decided: the runs that decide the targets are missing."]


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _table(header: list[str], lead: tuple[str, ...], rows: list[dict], cells: Callable[[dict], list[str]]) -> list[str]:
    """A markdown table; a failed run keeps its `lead` cells and says why in the next one."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        row = ([str(r.get(k)) for k in lead] + [f"failed: {r['error']}"] + [""] * (len(header) - len(lead) - 1)
               if "error" in r else cells(r))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def ns_table(ns: list[dict], solver: dict | None) -> list[str]:
    header = ["model", "precision", "params", "T_in → T_out", "nRMSE t=1", "nRMSE t=10", "nRMSE last (t)", "rel-L2",
              "VRMSE", "corr. time", "train samples/s", "train (s)", "rollout traj/s", "× solver", "step memory (MB)",
              "peak RSS (MB)"]

    def cells(r: dict) -> list[str]:
        return [r["model"], r["precision"], f"{r['params']:,}", f"{r['in_frames']} → {r['out_frames']}",
                f"{r['nrmse_t1']:.4f}", f"{r['nrmse_t10']:.4f}", f"{r['nrmse_last']:.4f} ({r['last_step']})",
                f"{r['rel_l2']:.4f}", f"{r['vrmse']:.4f}", f"{r['correlation_time']:.1f}",
                f"{r['train_samples_per_s']:.1f}", f"{r['train_seconds']:.0f}",
                f"{r['rollout_trajectories_per_s']:.2f}",
                _fmt(speedup(r, solver), ".1f"), f"{r['step_memory_mb']:.0f}", f"{r['peak_rss_mb']:.0f}"]

    lines = _table(header, ("model", "precision"), ns, cells)
    throughput: dict[str, dict[str, float]] = {}
    for r in ns:
        if "error" not in r:
            throughput.setdefault(r["model"], {})[r["precision"]] = r["train_samples_per_s"]
    ratios = ", ".join(f"{m} {t['bf16'] / t['fp32']:.2f}×" for m, t in throughput.items() if len(t) == 2)
    if ratios:
        lines += ["", f"bf16 autocast over fp32, training throughput: {ratios}."]
    return lines


def darcy_table(darcy: list[dict]) -> list[str]:
    header = ["model", "params", "train samples", "epochs", "rel-L2 16²", "rel-L2 32² (zero-shot)",
              "neuralop FNO documented 16² / 32²", "train samples/s", "train (s)"]

    def cells(r: dict) -> list[str]:
        return [r["model"], f"{r['params']:,}", str(r["n_train"]), str(r["epochs"]), f"{r['rel_l2_16']:.4f}",
                f"{r['rel_l2_32']:.4f}", f"{DARCY_DOCUMENTED[16]:.3f} / {DARCY_DOCUMENTED[32]:.3f}",
                f"{r['train_samples_per_s']:.1f}", f"{r['train_seconds']:.0f}"]

    return _table(header, ("model",), darcy, cells)


def full_estimate(ns: list[dict]) -> str:
    """Training hours of the full setting at the throughputs measured in this run."""
    rates = [r["train_samples_per_s"] for r in ns if "error" not in r and r["train_samples_per_s"] > 0]
    if not rates:
        return ""
    hours = sum(FULL.steps * FULL.batch_size / rate for rate in rates) / 3600
    return (f"At the training throughputs measured here, the full setting's {len(rates)} training runs take "
            f"≈ {hours:.1f} h (plus generating {FULL.n_samples} trajectories and the rollouts).")


def write_report(ns: list[dict], solver: dict | None, darcy: list[dict], meta: dict, path: Path) -> None:
    """docs/benchmarks/pde.md and its .json, from the runs so far (rewritten after every run)."""
    s = meta["setting"]
    lines = [
        "# PDE benchmark",
        "",
        f"- Command: `{meta['command']}`",
        f"- Date: {date.today().isoformat()}; commit {git_commit()}",
        f"- Machine: {machine()}; 1-minute load average {meta.get('load_start', '?')} at the start, "
        f"{meta.get('load', '?')} at the last run (a shared machine: timings are noisy when the load exceeds the "
        "core count)",
        f"- Setting: {meta['setting_name']}: {s['n_samples']} NS trajectories × {s['n_frames']} frames at 64² "
        f"({meta.get('dataset', '')}), {s['n_train']} train / {s['n_test']} test trajectories (split by trajectory, "
        f"no validation), {s['steps']} optimizer steps × batch {s['batch_size']} for every model and precision; "
        f"Darcy {s['darcy_epochs']} epochs on {s['darcy_train']} samples.",
        "- Protocol: models from `pde/configs/experiments/{factformer,pde_transformer,fno}_ns64.yaml` (one optimizer "
        "recipe: AdamW lr 1e-3, wd 1e-4, clip 1.0, warm-up then constant; each model's reference window and loss), "
        "each run in a fresh process. Every model rolls the test trajectories out from frame "
        f"{CONTEXT} (it reads its last T_in frames) to the last frame, in the precision it trained in; errors in "
        "physical units: PDEBench nRMSE per step (t = steps after frame 10), relative L2 over the rollout, VRMSE, "
        "correlation time (first step with Pearson correlation < 0.95, Kochkov et al.). Speed-up: rollout "
        "trajectories/s over the solver's on the same trajectories and frames from the same state (same machine, "
        "same threads). Step memory: peak resident memory of one forward + backward pass at the training batch "
        "over the memory in use before it; peak RSS: the whole run's process, data included. Parameters count "
        "complex weights twice.",
        "",
        "## Targets",
        "",
        *targets(ns, solver),
        "",
        "## Navier–Stokes ν = 1e-3, 64²",
        "",
        *ns_table(ns, solver),
    ]
    if solver:
        lines += [
            "",
            f"Solver ({solver['solver']}, {solver['resolution']}², step {solver['solver_dt']:g}, {solver['substeps']} "
            f"steps per frame): {solver['trajectories']} trajectories × {solver['steps']} frames in "
            f"{solver['seconds']:.1f} s = {solver['trajectories_per_s']:.3f} trajectories/s; it reproduces the stored "
            f"frames to rel-L2 {solver['rel_l2_vs_data']:.1e}.",
        ]
    if darcy:
        lines += ["", "## Darcy 16² → 32² zero-shot (neuraloperator's files, fp32)", "", *darcy_table(darcy), "",
                  "Each model trains on coefficient → pressure pairs at 16² (both fields normalized with training "
                  "statistics; presets `pde/configs/experiments/darcy_*16.yaml`) and is tested on the 50-sample files "
                  "at 16² and 32²: mean relative L2 per sample in physical units. neuralop's figure: its docs "
                  "example (1000 samples, 20 epochs, H1 training loss)."]
    estimate = full_estimate(ns)
    lines += ["", "## Settings", "",
              f"- `--quick`: {QUICK.n_samples} trajectories, {QUICK.n_train}/{QUICK.n_test} split, "
              f"{QUICK.steps} steps × batch {QUICK.batch_size}, Darcy {QUICK.darcy_epochs} epochs (about 15 minutes "
              "on one thread of the shared 2-core machine). Too short a budget for accuracy claims: it checks the "
              "pipeline and measures speed.",
              f"- Full (no flag): {FULL.n_samples} trajectories (the preset), {FULL.n_train}/{FULL.n_test} split, "
              f"{FULL.steps} steps × batch {FULL.batch_size}, Darcy {FULL.darcy_epochs} epochs. {estimate}",
              "", "Raw results: `pde.json` beside this file.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(
        {**meta, "date": date.today().isoformat(), "commit": git_commit(), "machine": machine(),
         "navier_stokes": ns, "solver": solver, "darcy": darcy}, indent=2))


# ------------------------------------------------------------------------------ main
def _setting(args: argparse.Namespace) -> Setting:
    base = QUICK if args.quick else FULL
    given = {name: getattr(args, name) for name in
             ("n_samples", "n_frames", "n_train", "n_test", "steps", "batch_size", "darcy_epochs", "darcy_train")
             if getattr(args, name) is not None}
    return dataclasses.replace(base, **given)


def _run(label: str, fn: Any, *args: Any) -> dict:
    """fn(*args) in a fresh process; a failure becomes an error row, so the report keeps the rest."""
    try:
        return in_fresh_process(fn, *args)
    except Exception as exc:  # noqa: BLE001 - any failure of one run must not lose the others
        print(f"[{label}] failed: {exc!r}", flush=True)
        case = args[0]
        return {"model": getattr(case, "model", label), "precision": getattr(case, "precision", "fp32"),
                "error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seqlab bench pde", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small split and budget (~15 min on one CPU thread)")
    parser.add_argument("--models", nargs="+", default=list(NS_MODELS), choices=list(NS_MODELS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--darcy-models", nargs="*", default=list(DARCY_MODELS), choices=list(DARCY_MODELS),
                        help="models of the Darcy case (none: skip it)")
    parser.add_argument("--no-solver", action="store_true", help="skip timing the solver")
    for name in ("n-samples", "n-frames", "n-train", "n-test", "steps", "batch-size", "darcy-epochs", "darcy-train"):
        parser.add_argument(f"--{name}", type=int, default=None, help="override the setting's value")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of every run (default: torch's)")
    parser.add_argument("--data-dir", default=None, help="folder with neuraloperator's Darcy files")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="generated data and runs")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every fresh process
    setting = _setting(args)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + " ".join(["seqlab bench pde", *(argv or [])])
    base = QUICK if args.quick else FULL
    name = ("quick" if args.quick else "full") + (" with overrides" if setting != base else "")
    meta: dict[str, Any] = {"command": command, "setting_name": name,
                            "setting": asdict(setting), "load_start": _load(), "load": _load()}
    runs_dir = str(args.work_dir / "runs")
    dataset = ns_dataset(setting, args.work_dir)
    meta["dataset"] = _dataset_line(dataset)
    ns: list[dict] = []
    darcy: list[dict] = []
    solver = None
    if not args.no_solver:
        solver = _run("solver", run_solver_case, str(dataset), setting.n_train, setting.n_test)
        solver = None if "error" in solver else solver
        if solver:
            print(f"[solver] {solver['trajectories']} trajectories x {solver['steps']} frames: "
                  f"{solver['trajectories_per_s']:.3f} trajectories/s", flush=True)
    cases = [NSCase(m, NS_MODELS[m], p, str(dataset), setting.n_train, setting.n_test, setting.steps,
                    setting.batch_size, runs_dir) for p in args.precisions for m in args.models]
    for i, case in enumerate(cases, 1):
        row = _run(f"{case.model} {case.precision}", run_ns_case, case)
        ns.append(row)
        meta["load"] = _load()
        write_report(ns, solver, darcy, meta, args.out)  # after every run, so no result is lost
        if "error" not in row:
            print(f"[{i}/{len(cases)}] {case.model} {case.precision}: nRMSE t=1 {row['nrmse_t1']:.4f} "
                  f"t={row['last_step']} {row['nrmse_last']:.4f}, {row['train_samples_per_s']:.1f} samples/s, "
                  f"{row['rollout_trajectories_per_s']:.2f} traj/s, {row['wall_seconds']:.0f} s", flush=True)
    for model in args.darcy_models:
        row = _run(f"darcy {model}", run_darcy_case, DarcyCase(model, DARCY_MODELS[model], setting.darcy_epochs,
                                                              setting.darcy_train, runs_dir, args.data_dir))
        darcy.append(row)
        meta["load"] = _load()
        write_report(ns, solver, darcy, meta, args.out)
        if "error" not in row:
            print(f"[darcy] {model}: rel-L2 {row['rel_l2_16']:.4f} (16²), {row['rel_l2_32']:.4f} (32²)", flush=True)
    write_report(ns, solver, darcy, meta, args.out)
    print(f"report written to {args.out}")
    return 0


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _dataset_line(path: Path) -> str:
    from pde.data import open_dataset

    ds = open_dataset(path, chunks=None)
    seconds = ds.attrs.get("solver_seconds")
    made = f", simulated in {float(seconds):.0f} s" if seconds is not None else ""
    return f"`{path}`, seed {ds.attrs.get('seed')}{made}"


if __name__ == "__main__":
    sys.exit(main())
