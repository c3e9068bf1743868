"""`seqlab bench forecasting`: the long-horizon benchmark, written to docs/benchmarks/forecasting.md.

Each (dataset, horizon, seed, precision) trains with the reference script's hyper-parameters in a
fresh process (so peak memory is per run), tests on every test window, and reports mean ± std
over seeds beside the published figure. A step-time probe compares eager and torch.compile.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from forecasting.peers import PEER_STEPS
from seqlab.bench import git_commit, in_fresh_process, machine, peak_rss_mb, split_done

# Published results at look-back 96 (MSE, MAE), as collected in ../shared/research/forecasting.md
# §4.1: iTransformer from its paper (ICLR 2024); PatchTST, DLinear and Informer from the same table
# and the TimesNet paper (TSLib runs). Single runs, not re-checked against every paper.
PUBLISHED: dict[tuple[str, str, int], tuple[float, float]] = {
    ("itransformer", "ETTh1", 96): (0.386, 0.405),
    ("itransformer", "ETTh1", 192): (0.441, 0.436),
    ("itransformer", "ETTh1", 336): (0.487, 0.458),
    ("itransformer", "ETTh1", 720): (0.503, 0.491),
    ("patchtst", "ETTh1", 96): (0.414, 0.419),
    ("patchtst", "ETTh1", 192): (0.46, 0.445),
    ("patchtst", "ETTh1", 336): (0.501, 0.466),
    ("patchtst", "ETTh1", 720): (0.5, 0.488),
    ("dlinear", "ETTh1", 96): (0.386, 0.4),
    ("dlinear", "ETTh1", 192): (0.437, 0.432),
    ("dlinear", "ETTh1", 336): (0.481, 0.459),
    ("dlinear", "ETTh1", 720): (0.519, 0.516),
    ("informer", "ETTh1", 96): (0.865, 0.713),
    ("informer", "ETTh1", 192): (1.008, 0.792),
    ("informer", "ETTh1", 336): (1.107, 0.809),
    ("informer", "ETTh1", 720): (1.181, 0.865),
    ("itransformer", "ETTh2", 96): (0.297, 0.349),
    ("itransformer", "ETTh2", 192): (0.38, 0.4),
    ("itransformer", "ETTh2", 336): (0.428, 0.432),
    ("itransformer", "ETTh2", 720): (0.427, 0.445),
    ("patchtst", "ETTh2", 96): (0.302, 0.348),
    ("patchtst", "ETTh2", 192): (0.388, 0.4),
    ("patchtst", "ETTh2", 336): (0.426, 0.433),
    ("patchtst", "ETTh2", 720): (0.431, 0.446),
    ("dlinear", "ETTh2", 96): (0.333, 0.387),
    ("dlinear", "ETTh2", 192): (0.477, 0.476),
    ("dlinear", "ETTh2", 336): (0.594, 0.541),
    ("dlinear", "ETTh2", 720): (0.831, 0.657),
    ("informer", "ETTh2", 96): (3.755, 1.525),
    ("informer", "ETTh2", 192): (5.602, 1.931),
    ("informer", "ETTh2", 336): (4.721, 1.835),
    ("informer", "ETTh2", 720): (3.647, 1.625),
    ("itransformer", "ETTm1", 96): (0.334, 0.368),
    ("itransformer", "ETTm1", 192): (0.377, 0.391),
    ("itransformer", "ETTm1", 336): (0.426, 0.42),
    ("itransformer", "ETTm1", 720): (0.491, 0.459),
    ("patchtst", "ETTm1", 96): (0.329, 0.367),
    ("patchtst", "ETTm1", 192): (0.367, 0.385),
    ("patchtst", "ETTm1", 336): (0.399, 0.41),
    ("patchtst", "ETTm1", 720): (0.454, 0.439),
    ("dlinear", "ETTm1", 96): (0.345, 0.372),
    ("dlinear", "ETTm1", 192): (0.38, 0.389),
    ("dlinear", "ETTm1", 336): (0.413, 0.413),
    ("dlinear", "ETTm1", 720): (0.474, 0.453),
    ("informer", "ETTm1", 96): (0.672, 0.571),
    ("informer", "ETTm1", 192): (0.795, 0.669),
    ("informer", "ETTm1", 336): (1.212, 0.871),
    ("informer", "ETTm1", 720): (1.166, 0.823),
    ("itransformer", "ETTm2", 96): (0.18, 0.264),
    ("itransformer", "ETTm2", 192): (0.25, 0.309),
    ("itransformer", "ETTm2", 336): (0.311, 0.348),
    ("itransformer", "ETTm2", 720): (0.412, 0.407),
    ("patchtst", "ETTm2", 96): (0.175, 0.259),
    ("patchtst", "ETTm2", 192): (0.241, 0.302),
    ("patchtst", "ETTm2", 336): (0.305, 0.343),
    ("patchtst", "ETTm2", 720): (0.402, 0.4),
    ("dlinear", "ETTm2", 96): (0.193, 0.292),
    ("dlinear", "ETTm2", 192): (0.284, 0.362),
    ("dlinear", "ETTm2", 336): (0.369, 0.427),
    ("dlinear", "ETTm2", 720): (0.554, 0.522),
    ("informer", "ETTm2", 96): (0.365, 0.453),
    ("informer", "ETTm2", 192): (0.533, 0.563),
    ("informer", "ETTm2", 336): (1.363, 0.887),
    ("informer", "ETTm2", 720): (3.379, 1.338),
    ("itransformer", "Weather", 96): (0.174, 0.214),
    ("itransformer", "Weather", 192): (0.221, 0.254),
    ("itransformer", "Weather", 336): (0.278, 0.296),
    ("itransformer", "Weather", 720): (0.358, 0.349),
    ("patchtst", "Weather", 96): (0.177, 0.218),
    ("patchtst", "Weather", 192): (0.225, 0.259),
    ("patchtst", "Weather", 336): (0.278, 0.297),
    ("patchtst", "Weather", 720): (0.354, 0.348),
    ("dlinear", "Weather", 96): (0.196, 0.255),
    ("dlinear", "Weather", 192): (0.237, 0.296),
    ("dlinear", "Weather", 336): (0.283, 0.335),
    ("dlinear", "Weather", 720): (0.345, 0.381),
    ("informer", "Weather", 96): (0.3, 0.384),
    ("informer", "Weather", 192): (0.598, 0.544),
    ("informer", "Weather", 336): (0.578, 0.523),
    ("informer", "Weather", 720): (1.059, 0.741),
    ("itransformer", "Exchange", 96): (0.086, 0.206),
    ("itransformer", "Exchange", 192): (0.177, 0.299),
    ("itransformer", "Exchange", 336): (0.331, 0.417),
    ("itransformer", "Exchange", 720): (0.847, 0.691),
    ("patchtst", "Exchange", 96): (0.088, 0.205),
    ("patchtst", "Exchange", 192): (0.176, 0.299),
    ("patchtst", "Exchange", 336): (0.301, 0.397),
    ("patchtst", "Exchange", 720): (0.901, 0.714),
    ("dlinear", "Exchange", 96): (0.088, 0.218),
    ("dlinear", "Exchange", 192): (0.176, 0.315),
    ("dlinear", "Exchange", 336): (0.313, 0.427),
    ("dlinear", "Exchange", 720): (0.839, 0.695),
    ("informer", "Exchange", 96): (0.847, 0.752),
    ("informer", "Exchange", 192): (1.204, 0.895),
    ("informer", "Exchange", 336): (1.672, 1.036),
    ("informer", "Exchange", 720): (2.478, 1.31),
    # Pathformer paper Table 1 (input 96), recalled in the notes §4.3 and not re-checked against the
    # paper; its runs dropped up to 19.5% of the test windows (drop_last), ours use every window.
    ("pathformer", "ETTh1", 96): (0.382, 0.400),
    ("pathformer", "ETTh1", 192): (0.440, 0.427),
    ("pathformer", "ETTh1", 336): (0.454, 0.432),
    ("pathformer", "ETTh1", 720): (0.479, 0.461),
    ("pathformer", "ETTh2", 96): (0.279, 0.331),
    ("pathformer", "ETTh2", 192): (0.349, 0.380),
    ("pathformer", "ETTh2", 336): (0.348, 0.382),
    ("pathformer", "ETTh2", 720): (0.398, 0.424),
    ("pathformer", "ETTm1", 96): (0.316, 0.346),
    ("pathformer", "ETTm1", 192): (0.366, 0.370),
    ("pathformer", "ETTm1", 336): (0.386, 0.394),
    ("pathformer", "ETTm1", 720): (0.460, 0.432),
    ("pathformer", "ETTm2", 96): (0.170, 0.248),
    ("pathformer", "ETTm2", 192): (0.238, 0.295),
    ("pathformer", "ETTm2", 336): (0.293, 0.331),
    ("pathformer", "ETTm2", 720): (0.390, 0.389),
    ("pathformer", "Weather", 96): (0.156, 0.192),
    ("pathformer", "Weather", 192): (0.206, 0.240),
    ("pathformer", "Weather", 336): (0.254, 0.282),
    ("pathformer", "Weather", 720): (0.340, 0.336),
}
TARGETED = ("itransformer", "pathformer", "informer")
"""Models whose issue sets an accuracy target: the published average MSE per dataset, or lower."""
DEFAULT_SEEDS = (2023, 2024, 2025)
REPORT = Path("docs/benchmarks/forecasting.md")


@dataclass(frozen=True)
class Case:
    model: str
    dataset: str
    horizon: int
    seed: int
    precision: str
    threads: int = 0
    """Intra-op threads of the run's process; 0: one per core."""


def run_case(case: Case, data_dir: str | None) -> dict:
    """Train and test one case in this process; returns metrics, speed and peak memory."""
    import torch

    from forecasting.experiment import build_config, run_experiment

    torch.set_num_threads(case.threads or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="seqlab-bench-") as out:
        overrides = {
            "train": {"seed": case.seed, "precision": case.precision, "progress": False},
            "tracking": {"enabled": False},
            "output_dir": out,
        }
        if data_dir:
            overrides["data"] = {"data_dir": data_dir}
        cfg = build_config(model=case.model, data=case.dataset, horizon=case.horizon, overrides=overrides)
        started = time.perf_counter()
        result = run_experiment(cfg)
        wall = time.perf_counter() - started
    return {
        **asdict(case),
        "mse": result.test["test/mse"],
        "mae": result.test["test/mae"],
        "epochs": result.fit.epochs_completed,
        "best_epoch": result.fit.best_epoch,
        "train_windows_per_s": result.fit.samples_per_second,
        "test_windows_per_s": result.test_samples_per_second,
        "train_seconds": result.fit.train_seconds,
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
    }


def step_time_probe(precision: str, compile_model: bool, steps: int = 40, warmup: int = 5) -> dict:
    """Milliseconds per training step of the ETTh1 H=96 iTransformer, eager or compiled."""
    import torch

    from forecasting.data import load_forecast_data
    from forecasting.experiment import build_config, build_model
    from forecasting.task import ForecastTask
    from seqlab.train.runtime import autocast

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    cfg = build_config(data="ETTh1", horizon=96)
    data = load_forecast_data("ETTh1", 96, 96)
    model = build_model(cfg, data.n_variates, data.n_time_features)
    forward = torch.compile(model) if compile_model else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    task = ForecastTask()
    device = torch.device("cpu")
    batches = [data.train.get_batch(torch.arange(i * 32, (i + 1) * 32)) for i in range(steps + warmup)]
    compile_started = time.perf_counter()
    for i, batch in enumerate(batches):
        if i == warmup:
            started = time.perf_counter()
            first_steps = started - compile_started
        with autocast(device, precision):
            loss = task.training_step(forward, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ms = (time.perf_counter() - started) / steps * 1000
    return {"precision": precision, "compile": compile_model, "ms_per_step": ms, "warmup_seconds": first_steps}


def _datasets(args: argparse.Namespace, model: str) -> list[str]:
    """The datasets with a reference preset for the model among --datasets (ETTh1 with --quick, else
    all): without the reference script's hyper-parameters there is nothing faithful to run."""
    from forecasting.experiment import PRESET_DIR

    presets = sorted(path.stem for path in (PRESET_DIR / model).glob("*.yaml"))
    wanted = args.datasets or (["ETTh1"] if args.quick else presets)
    missing = [name for name in wanted if name not in presets]
    if missing:
        print(f"{model}: no reference preset for {', '.join(missing)} (forecasting/configs/{model}/); not run",
              flush=True)
    return [name for name in wanted if name in presets]


def _horizons(args: argparse.Namespace, dataset: str) -> list[int]:
    """Explicit --horizons; else the protocol's: 24..60 for ILI (look-back 36), 96..720 otherwise."""
    if args.horizons:
        return args.horizons
    if args.quick:
        return [96, 192]
    return [24, 36, 48, 60] if dataset == "ILI" else [96, 192, 336, 720]


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def average_lines(groups: dict[tuple, list[dict]]) -> list[str]:
    """Per model, dataset and precision with every protocol horizon run: the MSE averaged over the
    horizons (each the mean over seeds) beside the published average, and whether the target
    (at or below the published average, to its three decimals) is met."""
    rows, misses = [], []
    by_dataset: dict[tuple, dict[int, list[dict]]] = {}
    for (model, dataset, horizon, precision), group in groups.items():
        by_dataset.setdefault((model, dataset, precision), {})[horizon] = group
    for (model, dataset, precision), per_horizon in sorted(by_dataset.items()):
        horizons = [24, 36, 48, 60] if dataset == "ILI" else [96, 192, 336, 720]
        if sorted(per_horizon) != horizons:
            continue
        ours = statistics.mean(statistics.mean(r["mse"] for r in per_horizon[h]) for h in horizons)
        published = [PUBLISHED.get((model, dataset, h)) for h in horizons]
        if all(published):
            avg = statistics.mean(p[0] for p in published)
            verdict = ("met" if round(ours, 3) <= round(avg, 3) else "**not met**") if model in TARGETED else "—"
            if verdict == "**not met**":
                misses.append(_miss_line(model, dataset, precision, per_horizon))
            rows.append(f"| {model} | {dataset} | {precision} | {ours:.4f} | {avg:.4f} | {ours - avg:+.4f} | {verdict} |")
        else:
            rows.append(f"| {model} | {dataset} | {precision} | {ours:.4f} | — | — | — |")
    if not rows:
        return []
    return [
        "",
        "### Average over the four horizons (the issue's accuracy targets)",
        "",
        "| model | dataset | precision | avg MSE (ours) | avg MSE (published) | Δ | target |",
        "|---|---|---|---|---|---|---|",
        *rows,
        *([""] + misses if misses else []),
    ]


def _miss_line(model: str, dataset: str, precision: str, per_horizon: dict[int, list[dict]]) -> str:
    """Where a missed average comes from: the horizon furthest above its published figure, with
    our seeds' range there (a published single run inside that range is within seed noise)."""
    def gap(h: int) -> float:
        return statistics.mean(r["mse"] for r in per_horizon[h]) - PUBLISHED[(model, dataset, h)][0]

    worst = max(per_horizon, key=gap)
    mses = [r["mse"] for r in per_horizon[worst]]
    published = PUBLISHED[(model, dataset, worst)][0]
    inside = min(mses) <= published <= max(mses)
    return (f"- {model} on {dataset} ({precision}) misses mostly at H={worst}: {statistics.mean(mses):.4f} vs "
            f"{published:.3f} published ({gap(worst):+.4f}); our {len(mses)} seeds span {min(mses):.4f}–"
            f"{max(mses):.4f}, so the published single run is "
            + ("inside our seed spread." if inside else "outside our seed spread."))


def write_report(rows: list[dict], probes: list[dict], command: str, path: Path, peers: list[dict] = ()) -> None:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["dataset"], row["horizon"], row["precision"]), []).append(row)
    lines = [
        "# Forecasting benchmark",
        "",
        f"- Command: `{command}`",
        f"- Date: {date.today().isoformat()}; commit {git_commit()}",
        f"- Machine: {machine()}",
        "- Protocol: look-back 96, the reference script's hyper-parameters (forecasting/configs), "
        "scaler fitted on the training split, every test window (no `drop_last`), "
        "MSE/MAE on z-scored data as in the papers; mean ± sample std over seeds "
        f"{sorted({r['seed'] for r in rows})}; intra-op threads per run: "
        f"{', '.join(str(t or 'one per core') for t in sorted({r.get('threads', 0) for r in rows}))}.",
        "- Published: look-back-96 tables (iTransformer paper; TimesNet/TSLib runs for the baselines and Informer; "
        "Pathformer paper Table 1 as recalled in the research notes, not re-checked, evaluated with `drop_last`); "
        "single runs.",
        "",
        "## Accuracy",
        "",
        "| model | dataset | H | precision | MSE (ours) | MAE (ours) | MSE / MAE (published) | ΔMSE | ΔMAE | epochs (best) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, dataset, horizon, precision), group in sorted(groups.items()):
        mses, maes = [r["mse"] for r in group], [r["mae"] for r in group]
        published = PUBLISHED.get((model, dataset, horizon))
        pub = f"{published[0]:.3f} / {published[1]:.3f}" if published else "—"
        d_mse = f"{statistics.mean(mses) - published[0]:+.4f}" if published else "—"
        d_mae = f"{statistics.mean(maes) - published[1]:+.4f}" if published else "—"
        epochs = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in group)
        lines.append(f"| {model} | {dataset} | {horizon} | {precision} | {_mean_std(mses)} | {_mean_std(maes)} "
                     f"| {pub} | {d_mse} | {d_mae} | {epochs} |")
    lines += average_lines(groups)
    lines += [
        "",
        "## Speed and memory (same run, same machine)",
        "",
        "| model | dataset | H | precision | train windows/s | test windows/s | train time (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (model, dataset, horizon, precision), group in sorted(groups.items()):
        mean = lambda key: statistics.mean(r[key] for r in group)  # noqa: E731
        lines.append(f"| {model} | {dataset} | {horizon} | {precision} | {mean('train_windows_per_s'):.0f} "
                     f"| {mean('test_windows_per_s'):.0f} | {mean('train_seconds'):.1f} | {mean('peak_rss_mb'):.0f} |")
    by_precision: dict[str, list[float]] = {}
    for row in rows:
        by_precision.setdefault(row["precision"], []).append(row["train_windows_per_s"])
    if "fp32" in by_precision and "bf16" in by_precision:
        ratio = statistics.mean(by_precision["bf16"]) / statistics.mean(by_precision["fp32"])
        lines += ["", f"bf16 autocast vs fp32, training throughput: **{ratio:.2f}×**."]
    if rows:
        per_model = {}
        for row in rows:
            per_model[row["model"]] = per_model.get(row["model"], 0.0) + row["wall_seconds"]
        spent = ", ".join(f"{model} {seconds / 3600:.1f} h" for model, seconds in sorted(per_model.items()))
        lines += ["", f"Wall time of the {len(rows)} runs above (train + test, each in its own process): "
                      f"{sum(per_model.values()) / 3600:.1f} h ({spent})."]
    if probes:
        eager = {p["precision"]: p["ms_per_step"] for p in probes if not p["compile"]}
        lines += [
            "",
            "## torch.compile (ETTh1, H=96, batch 32, one training step)",
            "",
            "| precision | mode | ms/step | speed-up vs eager | first steps incl. compile (s) |",
            "|---|---|---|---|---|",
        ]
        for p in probes:
            speedup = eager[p["precision"]] / p["ms_per_step"] if p["precision"] in eager else float("nan")
            mode = "compiled" if p["compile"] else "eager"
            lines.append(f"| {p['precision']} | {mode} | {p['ms_per_step']:.1f} | {speedup:.2f}× "
                         f"| {p['warmup_seconds']:.1f} |")
    if peers:
        from forecasting.peers import report_lines

        lines += [
            "",
            "## Against neuralforecast (same ETTh1 split, same steps, same windows per step)",
            "",
            "Both libraries train the official ETTh1 hyper-parameters for a fixed number of optimizer steps",
            "(batch 32, lr 1e-4, constant rate, no early stopping) on data z-scored with the same",
            "training-split statistics, and forecast every test window. neuralforecast's test time is its",
            "`cross_validation(use_fitted=True)` on the fitted model. Both iTransformers attend over the 7 variate",
            "tokens (seqlab's calendar tokens off: neuralforecast's model has none without exogenous columns).",
            "Its Informer is the univariate TSLib port without",
            "calendar features; its windows are counted as N-variate windows (7 univariate = 1). Informer",
            "trains only 50 steps here (a d_model=512 step takes seconds on these CPUs): its errors compare",
            "speed, not accuracy. Speed-ups are against neuralforecast in fp32.",
            "",
            *report_lines(list(peers)),
        ]
    lines += ["", f"Raw results: `{path.with_suffix('.json').name}` beside this file.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(
        json.dumps({"command": command, "runs": rows, "step_probes": probes, "peers": list(peers)}, indent=2)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seqlab bench forecasting", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="only ETTh1 at H=96 and 192 (default: every dataset with a preset, H=96..720)")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--horizons", nargs="+", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=["itransformer"])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--no-compile-probe", action="store_true", help="skip the torch.compile step-time probe")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the race against neuralforecast (skipped anyway when it is not installed)")
    parser.add_argument("--peers-only", action="store_true",
                        help="keep the runs and probes of the existing report (its .json) and redo only the race")
    parser.add_argument("--peer-models", nargs="+", default=list(PEER_STEPS), choices=list(PEER_STEPS),
                        help="models raced against neuralforecast (with --peers-only, the others keep their rows)")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads per run (default one per core; 1 when another job shares the machine)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs the report's .json already has for this plan (an interrupted table "
                             "goes on where it stopped); run the rest")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    command = "seqlab bench forecasting " + " ".join(argv or [])
    cases = [Case(m, d, h, s, p, args.threads) for m in args.models for d in _datasets(args, m)
             for h in _horizons(args, d) for p in args.precisions for s in args.seeds]
    rows, probes, peers = [], [], []
    if args.resume and args.out.with_suffix(".json").exists():
        previous = json.loads(args.out.with_suffix(".json").read_text())
        rows, cases = split_done(cases, previous["runs"])
        # What this invocation will not redo stays in the report.
        probes = previous["step_probes"] if args.no_compile_probe else []
        peers = previous.get("peers", []) if args.no_peers else []
    if args.peers_only:
        previous = json.loads(args.out.with_suffix(".json").read_text())
        rows, probes, cases = previous["runs"], previous["step_probes"], []
        peers = [p for p in previous.get("peers", []) if p["model"] not in args.peer_models]
        command = previous.get("command", command)
    for i, case in enumerate(cases, 1):
        row = in_fresh_process(run_case, case, args.data_dir)
        rows.append(row)
        write_report(rows, probes, command, args.out)  # after every run, so a long table is never lost
        print(f"[{i}/{len(cases)}] {case.model} {case.dataset} H={case.horizon} {case.precision} seed={case.seed}: "
              f"MSE {row['mse']:.4f} MAE {row['mae']:.4f}, {row['train_windows_per_s']:.0f} windows/s, "
              f"{row['wall_seconds']:.0f} s", flush=True)
    if not args.no_compile_probe and not args.peers_only:
        for precision in args.precisions:
            for compiled in (False, True):
                probes.append(in_fresh_process(step_time_probe, precision, compiled))
    write_report(rows, probes, command, args.out, peers)  # a report even if the peer race fails below
    if not args.no_peers and importlib.util.find_spec("neuralforecast") is not None:
        from forecasting.peers import default_cases, run_peer_case

        for case in default_cases(models=tuple(args.peer_models)):
            try:
                row = in_fresh_process(run_peer_case, case, args.data_dir)
            except Exception as exc:  # a peer's failure (e.g. bf16 unsupported) must not lose the report
                print(f"[peer] {case.library} {case.model} {case.precision} failed: {exc!r}", flush=True)
                continue
            peers.append(row)
            write_report(rows, probes, command, args.out, peers)  # after every race, so none is lost
            print(f"[peer] {case.library} {case.model} {case.precision}: MSE {row['test_mse']:.4f}, "
                  f"{row['train_windows_per_s']:.0f} train / {row['test_windows_per_s']:.0f} test windows/s",
                  flush=True)
    elif not args.no_peers:
        print("neuralforecast is not installed (pip install -e '.[bench]'): skipping the peer comparison")
    write_report(rows, probes, command, args.out, peers)
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
