"""`seqlab bench rl`: speed against the peers, and scores on our HalfCheetah-v5 datasets.

Speed, every measurement in a fresh process with a fixed number of intra-op threads (default 1),
the median of several timed repeats after warm-up steps, in fp32 and under bf16 autocast:
- training steps/s of our Decision Transformer against Hugging Face `transformers`'
  `DecisionTransformerModel` at the DT paper's config (D = 128, 3 layers, 1 head, K = 20, batch
  64, HalfCheetah's S = 17, A = 6) on the same synthetic batches, with the same AdamW, masked
  action MSE and gradient clipping; only the training step is timed (target >= 1.5x);
- evaluation env-steps/s of the batched evaluator against the reference-style sequential one
  (`rl.evaluate.evaluate_sequential`) on HalfCheetah-v5, same untrained model (target >= 5x);
- achieved FLOP/s of our training step (matmul FLOPs counted analytically, `train_flops`) against
  a plain `torch.matmul` of the step's largest matmul, on the same machine.

Scores: the DT, AT and BC CPU presets trained on our medium / medium-replay / medium-expert data
for a fixed number of steps, the last checkpoint evaluated in the env, normalized with the
datasets' own random and expert returns, mean ± std over training seeds (and over every
episode). D4RL's published numbers stand beside them for orientation only: another dataset
(D4RL v2, mujoco-py envs), another budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from seqlab.bench import git_commit, in_fresh_process, machine, peak_rss_mb, split_done

REPORT = Path("docs/benchmarks/rl.md")
TRAIN_TARGET = 1.5
"""Our DT training steps/s over the HF model's, same precision."""
EVAL_TARGET = 5.0
"""Batched over sequential evaluation env-steps/s, same precision."""
LEVELS = ("medium", "medium-replay", "medium-expert")
PRESETS = ("dt_cpu", "at_cpu", "bc_cpu")
MODEL_NAMES = {"dt_cpu": "DT", "at_cpu": "AT", "bc_cpu": "BC"}
ENV_STEM = "halfcheetah-v5"
DEFAULT_SEEDS = (0, 1, 2)
# Training steps per run: 27 runs (3 models x 3 datasets x 3 seeds) in under two hours on one core of
# the shared 2-core EPYC with bf16 autocast (measured: DT 46 ms, AT 148 ms, BC 2 ms per step; AT's
# 4-trial evaluation ~1.5 min); --quick: one seed, a tenth of the steps, 5 episodes.
BUDGET_STEPS = {"dt_cpu": 3000, "at_cpu": 800, "bc_cpu": 10000}
QUICK_STEPS = {"dt_cpu": 300, "at_cpu": 80, "bc_cpu": 1000}

# D4RL v2 normalized scores (research notes rl.md §5, rl2.md §1.2): another dataset and budget.
PUBLISHED: dict[tuple[str, str], str] = {
    ("DT", "medium"): "42.6 ± 0.1 (DT paper); 42.2 ± 0.3 (CORL, last)",
    ("DT", "medium-replay"): "36.6 ± 0.8 (DT paper); 38.9 ± 0.5 (CORL, last)",
    ("DT", "medium-expert"): "86.8 ± 1.3 (DT paper); 91.6 ± 1.0 (CORL, last)",
    ("BC", "medium"): "42.4 ± 0.2 (CORL, last)",
    ("BC", "medium-replay"): "35.7 ± 2.3 (CORL, last)",
    ("BC", "medium-expert"): "56.0 ± 7.4 (CORL, last)",
    ("AT", "medium"): "45.1 ± 0.3 (AT paper, max over n)",
    ("AT", "medium-replay"): "46.9 ± 0.3 (AT paper, max over n)",
    ("AT", "medium-expert"): "95.8 ± 0.3 (AT paper, max over n)",
}


@dataclass(frozen=True)
class Sizes:
    """Model and batch sizes of a speed probe; the defaults are the DT paper's on HalfCheetah: width D,
    GPT-2 blocks, heads, context K (steps), batch B, state and action dims S and A, timestep
    embedding rows, and the dropout used everywhere (embeddings, attention weights, residuals)."""

    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 1
    context_len: int = 20
    batch_size: int = 64
    state_dim: int = 17
    action_dim: int = 6
    max_ep_len: int = 1000
    dropout: float = 0.1


PAPER = Sizes()


@dataclass(frozen=True)
class TrainProbe:
    library: str
    """"seqlab" or "transformers"."""
    precision: str
    """"fp32" or "bf16" (autocast)."""
    sizes: Sizes = PAPER
    steps: int = 20
    """Timed training steps per repeat."""
    repeats: int = 5
    warmup: int = 5
    threads: int = 1


@dataclass(frozen=True)
class EvalProbe:
    evaluator: str
    """"batched" or "sequential"."""
    num_envs: int
    precision: str
    episodes: int
    """Episodes per repeat (one round of num_envs for the batched evaluator)."""
    repeats: int = 3
    max_episode_steps: int | None = None
    """None: the env's own limit (HalfCheetah: 1000 steps)."""
    env_id: str = "HalfCheetah-v5"
    sizes: Sizes = PAPER
    threads: int = 1


@dataclass(frozen=True)
class ScoreCase:
    preset: str
    """A training preset in rl/configs/train (dt_cpu, at_cpu, bc_cpu)."""
    level: str
    """medium, medium-replay or medium-expert (our HalfCheetah-v5 data)."""
    seed: int
    steps: int
    """Optimizer steps; warm-up is a tenth of them (at most the preset's)."""
    episodes: int
    """Evaluation episodes per target (per trial for AT)."""
    precision: str = "auto"
    threads: int = 1
    data_dir: str | None = None


# ----------------------------------------------------------------------------------- speed: training
def synthetic_batches(sizes: Sizes, n: int = 8, seed: int = 0) -> list[Any]:
    """Random training batches in model units; a quarter of the rows left-padded to half length,
    as the reference's windows at episode ends."""
    import torch

    from rl.sampling import TrajectoryBatch

    g = torch.Generator().manual_seed(seed)
    b, k = sizes.batch_size, sizes.context_len
    batches = []
    for _ in range(n):
        padding = torch.zeros(b, k, dtype=torch.bool)
        padding[: max(b // 4, 1), : k // 2] = True
        batches.append(TrajectoryBatch(
            states=torch.randn(b, k, sizes.state_dim, generator=g),
            actions=torch.rand(b, k, sizes.action_dim, generator=g) * 2 - 1,
            returns_to_go=torch.randn(b, k, generator=g),
            rewards=torch.zeros(b, k),
            completions=torch.zeros(b, k, dtype=torch.long),
            timesteps=torch.randint(0, sizes.max_ep_len, (b, k), generator=g),
            padding=padding,
            loss_mask=~padding,
        ))
    return batches


def _seqlab_dt(sizes: Sizes) -> tuple[Any, Any]:
    """Our DT, and how it maps a batch to actions (B, K, A)."""
    from rl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig

    config = DecisionTransformerConfig(
        state_dim=sizes.state_dim, action_dim=sizes.action_dim, context_len=sizes.context_len,
        max_ep_len=sizes.max_ep_len, d_model=sizes.d_model, n_heads=sizes.n_heads, n_layers=sizes.n_layers,
        dropout=sizes.dropout, attention_dropout=sizes.dropout)
    return DecisionTransformer(config), lambda model, batch: model(batch)


def _hf_dt(sizes: Sizes) -> tuple[Any, Any]:
    """transformers' DecisionTransformerModel at the same sizes, and its action predictions (B, K, A)."""
    from transformers import DecisionTransformerConfig, DecisionTransformerModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its GPT-2 config warns about token ids it never uses
    config = DecisionTransformerConfig(
        state_dim=sizes.state_dim, act_dim=sizes.action_dim, hidden_size=sizes.d_model, n_layer=sizes.n_layers,
        n_head=sizes.n_heads, n_inner=4 * sizes.d_model, activation_function="relu", max_ep_len=sizes.max_ep_len,
        resid_pdrop=sizes.dropout, embd_pdrop=sizes.dropout, attn_pdrop=sizes.dropout, action_tanh=True)

    def actions(model: Any, batch: Any) -> Any:
        return model(states=batch.states, actions=batch.actions, returns_to_go=batch.returns_to_go[..., None],
                     timesteps=batch.timesteps, attention_mask=(~batch.padding).long(), return_dict=False)[1]

    return DecisionTransformerModel(config), actions


def action_loss(predict: Any, model: Any, batch: Any) -> Any:
    """The DT loss of both implementations: MSE on the real steps' actions (`rl.task`)."""
    from rl.task import masked_action_mse

    return masked_action_mse(predict(model, batch), batch)[0]


def train_speed(probe: TrainProbe) -> dict[str, Any]:
    """Time `probe.repeats` x `probe.steps` training steps (forward, loss, backward, clipping to
    0.25, AdamW lr 1e-4 / wd 1e-4) after `probe.warmup` steps; batches are made beforehand. The
    optimizer is torch's fused AdamW on both sides: what seqlab's Trainer and transformers' Trainer
    (its default for torch >= 2.8) build."""
    import torch

    from seqlab.train.runtime import autocast

    torch.set_num_threads(probe.threads)
    torch.manual_seed(0)
    model, predict = (_seqlab_dt if probe.library == "seqlab" else _hf_dt)(probe.sizes)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=True)
    batches = synthetic_batches(probe.sizes)
    cpu = torch.device("cpu")
    load = os.getloadavg()[0]

    def step(batch: Any) -> None:
        with autocast(cpu, probe.precision):
            loss = action_loss(predict, model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()

    for i in range(probe.warmup):
        step(batches[i % len(batches)])
    wall, cpu_time = _timed(lambda: [step(batches[i % len(batches)]) for i in range(probe.steps)], probe.repeats)
    return {
        "library": probe.library, "precision": probe.precision, "threads": probe.threads,
        "sizes": asdict(probe.sizes), "steps": probe.steps, "repeats": probe.repeats,
        "params": sum(p.numel() for p in model.parameters()),
        "steps_per_s": probe.steps / statistics.median(wall),
        "cpu_ms_per_step": 1000 * statistics.median(cpu_time) / probe.steps,
        "wall_s": wall, "bf16_action_error": _bf16_action_error(model, predict, batches[0]),
        "attention": getattr(model.config, "_attn_implementation", None) or "sdpa (seqlab FullAttention)",
        "load_avg": load, "peak_rss_mb": peak_rss_mb(),
    }


def _bf16_action_error(model: Any, predict: Any, batch: Any) -> float:
    """Largest |action under bf16 autocast - fp32 action| on one batch's real steps, eval mode."""
    import torch

    from seqlab.train.runtime import autocast

    model.eval()
    outputs = []
    with torch.no_grad():
        for precision in ("fp32", "bf16"):
            with autocast(torch.device("cpu"), precision):
                outputs.append(predict(model, batch).float()[batch.loss_mask])
    model.train()
    return float((outputs[1] - outputs[0]).abs().max())


def train_flops(sizes: Sizes, pruned: bool = True) -> float:
    """Matmul FLOPs (2 per multiply-add) of one DT training step, counted analytically.

    Forward: every Linear (2 rows in out) and attention's QK^T and AV over the whole L x L score
    matrix (training uses dropout on the weights, so SDPA's math path computes all of it);
    backward: twice the forward, less the input gradients of the embeddings (their inputs are
    data). LayerNorm, softmax, dropout and the optimizer are not counted. pruned: our model (the
    newest action token dropped; the last block's queries, output projection and feed-forward at
    the K state tokens only); False: every token through every block, as the reference and the HF
    model compute it.
    """
    b, k, d, f = sizes.batch_size, sizes.context_len, sizes.d_model, 4 * sizes.d_model
    n = 3 * k - 1 if pruned else 3 * k  # tokens in the blocks

    def block(rows: int) -> int:
        """A block whose `rows` queries read the keys and values of all n tokens."""
        return 2 * 2 * (rows + n) * d * d + 2 * 2 * rows * n * d + 2 * 2 * rows * d * f

    embed = 2 * k * d * (1 + sizes.state_dim + sizes.action_dim)
    blocks = (sizes.n_layers - 1) * block(n) + block(k if pruned else n)
    head = 2 * k * d * sizes.action_dim
    return float(b * (3 * (embed + blocks + head) - embed))


def matmul_speed(precision: str, m: int, k: int, n: int, repeats: int = 7, threads: int = 1) -> dict[str, Any]:
    """GFLOP/s of a plain (m, k) @ (k, n) torch.matmul in fp32 or bf16, median over repeats."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    calls = 20
    for _ in range(3):
        a @ b
    wall, cpu = _timed(lambda: [a @ b for _ in range(calls)], repeats)
    flops = 2 * m * k * n * calls
    return {"precision": precision, "shape": [m, k, n], "threads": threads,
            "gflop_per_s": flops / statistics.median(wall) / 1e9,
            "gflop_per_cpu_s": flops / statistics.median(cpu) / 1e9}


# --------------------------------------------------------------------------------- speed: evaluation
def eval_speed(probe: EvalProbe) -> dict[str, Any]:
    """Env-steps/s of one evaluator over `probe.repeats` runs of `probe.episodes` episodes with an
    untrained DT (speed only), after a short warm-up run."""
    import numpy as np
    import torch

    from rl.evaluate import EvalConfig, evaluate, evaluate_sequential
    from rl.sampling import Preprocessing

    torch.set_num_threads(probe.threads)
    torch.manual_seed(0)
    model, _ = _seqlab_dt(probe.sizes)
    model.eval()
    s = probe.sizes.state_dim
    prep = Preprocessing(np.zeros(s, np.float32), np.ones(s, np.float32))
    run = evaluate if probe.evaluator == "batched" else evaluate_sequential
    config = EvalConfig(probe.env_id, target_returns=(6000.0,), n_episodes=probe.episodes, num_envs=probe.num_envs,
                        max_episode_steps=probe.max_episode_steps, precision=probe.precision)
    run(model, prep, dataclasses.replace(config, n_episodes=1, num_envs=1, max_episode_steps=25))  # warm-up
    load = os.getloadavg()[0]
    env_steps: list[int] = []
    wall, cpu_time = _timed(lambda: env_steps.append(int(run(model, prep, config)[0].lengths.sum())), probe.repeats)
    steps = env_steps[0]
    return {
        "evaluator": probe.evaluator, "env_id": probe.env_id, "sizes": asdict(probe.sizes),
        "num_envs": probe.num_envs if probe.evaluator == "batched" else 1,
        "precision": probe.precision, "threads": probe.threads, "episodes": probe.episodes,
        "env_steps": steps, "repeats": probe.repeats,
        "env_steps_per_s": steps / statistics.median(wall),
        "cpu_us_per_env_step": 1e6 * statistics.median(cpu_time) / steps,
        "wall_s": wall, "load_avg": load, "peak_rss_mb": peak_rss_mb(),
    }


def _timed(fn: Any, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of each of `repeats` calls of fn."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return wall, cpu


def speed_plan(quick: bool, threads: int, eval_threads: tuple[int, ...] = ()) -> list[tuple[Any, Any]]:
    """(function, probe) pairs in run order; ours and the peer's alternate so load hits both. The
    evaluators also run at each of `eval_threads` (evaluation is what a user runs on every core)."""
    repeats, steps = (3, 10) if quick else (5, 20)
    eval_repeats, episode_steps = (2, 200) if quick else (3, None)
    plan: list[tuple[Any, Any]] = []
    for precision in ("fp32", "bf16"):
        for library in ("seqlab", "transformers"):
            plan.append((train_speed, TrainProbe(library, precision, steps=steps, repeats=repeats, threads=threads)))
    b, n = PAPER.batch_size, 3 * PAPER.context_len
    for precision in ("fp32", "bf16"):
        plan.append((matmul_speed, (precision, b * n, PAPER.d_model, 4 * PAPER.d_model, 7, threads)))
    for n_threads in dict.fromkeys((threads, *eval_threads)):
        for precision in ("fp32", "bf16"):
            plan.append((eval_speed, EvalProbe("sequential", 1, precision, episodes=1 if quick else 2,
                                               repeats=eval_repeats, max_episode_steps=episode_steps,
                                               threads=n_threads)))
            for num_envs in (10, 50):
                plan.append((eval_speed, EvalProbe("batched", num_envs, precision, episodes=num_envs,
                                                   repeats=eval_repeats, max_episode_steps=episode_steps,
                                                   threads=n_threads)))
    return plan


def _call(fn: Any, probe: Any) -> dict[str, Any]:
    return fn(*probe) if isinstance(probe, tuple) else fn(probe)


# ------------------------------------------------------------------------------------------- scores
def run_score(case: ScoreCase) -> dict[str, Any]:
    """Train one preset on one dataset for `case.steps` steps, evaluate the last checkpoint."""
    import torch

    from rl.experiment import build_config, run_experiment
    from seqlab.train.runtime import resolve_precision

    torch.set_num_threads(case.threads)
    with tempfile.TemporaryDirectory(prefix="seqlab-bench-rl-") as out:
        base = build_config(case.preset, {"data": {"dataset": f"{ENV_STEM}-{case.level}"}})
        warmup = min(base.train.warmup_steps, max(case.steps // 10, 1))
        overrides = {
            "data": {"dataset": f"{ENV_STEM}-{case.level}", "data_dir": case.data_dir},
            "train": {"max_steps": case.steps, "warmup_steps": warmup, "seed": case.seed,
                      "precision": case.precision, "progress": False},
            "eval": {"n_episodes": case.episodes, "frames": False},
            "tracking": {"enabled": False},
            "output_dir": out,
        }
        cfg = build_config(case.preset, overrides)
        started = time.perf_counter()
        result = run_experiment(cfg)
        wall = time.perf_counter() - started
    return {
        **asdict(case), "model": MODEL_NAMES.get(case.preset, case.preset), "warmup_steps": warmup,
        "precision": resolve_precision(case.precision, torch.device("cpu")),
        "targets": list(cfg.eval.target_returns), "n_trials": cfg.eval.n_trials,
        "evaluation": result.evaluation, "train_seconds": result.fit.train_seconds,
        "steps_per_s": result.fit.global_step / max(result.fit.train_seconds, 1e-9), "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
    }


def score_plan(seeds: list[int], steps: dict[str, int], episodes: int, levels: tuple[str, ...] = LEVELS,
               data_dir: str | None = None, precision: str = "auto", threads: int = 1) -> list[ScoreCase]:
    """Every preset on every dataset level for every seed, level by level."""
    import torch

    from seqlab.train.runtime import resolve_precision

    # "auto" made concrete, so that a row (which records the precision it ran in) answers its case on --resume
    precision = resolve_precision(precision, torch.device("cpu"))
    return [ScoreCase(preset, level, seed, steps[preset], episodes, precision, threads, data_dir)
            for level in levels for preset in PRESETS for seed in seeds]


def data_folder(data_dir: str | None) -> Path:
    from rl.data import DEFAULT_DATA_DIR

    return Path(data_dir) if data_dir else DEFAULT_DATA_DIR


def dataset_info(data_dir: str | None) -> dict[str, Any] | None:
    """The collect manifest of our HalfCheetah-v5 data (checksums, reference returns); while it is
    not written yet, the same facts from the dataset files already there; None without any."""
    from rl.collect import sha256_file
    from rl.formats.d4rl import read_d4rl_metadata

    folder = data_folder(data_dir)
    path = folder / f"{ENV_STEM}-manifest.json"
    if path.is_file():
        return json.loads(path.read_text())
    datasets, references = {}, {}
    for level in LEVELS:
        file = folder / f"{ENV_STEM}-{level}.hdf5"
        if not file.is_file():
            continue
        meta = read_d4rl_metadata(file)
        low, high = float(meta["ref_min_score"]), float(meta["ref_max_score"])
        references = {"random_return": low, "expert_return": high}
        datasets[level] = {"file": file.name, "sha256": sha256_file(file), "n_steps": meta["n_steps"],
                           "n_episodes": meta["n_episodes"], "mean_return": meta["mean_return"],
                           "normalized_mean_return": 100 * (float(meta["mean_return"]) - low) / (high - low)}
    if not datasets:
        return None
    return {"env_id": meta["env_id"], "references": references, "datasets": datasets,
            "source": "the dataset files (the collect manifest was not written yet)"}


# ------------------------------------------------------------------------------------------- report
def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("nan")


def _verdict(ratio: float, target: float) -> str:
    if ratio >= target:
        return f"**met** ({ratio:.2f}× ≥ {target:g}×)"
    return f"**not met** ({ratio:.2f}× < {target:g}×)"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _pooled_std(means: list[float], stds: list[float]) -> float:
    """Std over every episode of several equally sized groups, from each group's mean and std."""
    grand = statistics.mean(means)
    return math.sqrt(statistics.mean([s * s + (m - grand) ** 2 for m, s in zip(means, stds)]))


def speed_lines(speed: dict[str, list[dict]]) -> list[str]:
    train, evals, matmuls = speed.get("train", []), speed.get("eval", []), speed.get("matmul", [])
    lines: list[str] = []
    if train:
        lines += [
            "### Training: our DT against transformers' DecisionTransformerModel",
            "",
            f"Model: {_describe_sizes(Sizes(**train[0]['sizes']))}; synthetic batches (a quarter of the rows "
            "left-padded to half length); one "
            "step = forward, masked action MSE, backward, clipping to 0.25, fused AdamW (lr 1e-4, wd 1e-4; the default of both libraries' trainers). "
            f"Median of {train[0]['repeats']} repeats of {train[0]['steps']} steps after warm-up. CPU ms is the "
            "process's CPU time per step, less sensitive to other processes than wall time.",
            "",
            "| implementation | precision | params | steps/s (wall) | CPU ms/step | speed-up vs HF (wall) "
            "| speed-up vs HF (CPU) | max abs(a_bf16 − a_fp32) | load avg |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in train:
            peer = _peer(train, row, "library", "transformers")
            up = f"{_ratio(row['steps_per_s'], peer['steps_per_s']):.2f}×" if peer else "—"
            up_cpu = f"{_ratio(peer['cpu_ms_per_step'], row['cpu_ms_per_step']):.2f}×" if peer else "—"
            error = f"{row['bf16_action_error']:.1e}" if row["precision"] == "bf16" else "—"
            name = "seqlab DecisionTransformer" if row["library"] == "seqlab" else f"HF ({row['attention']} attention)"
            lines.append(f"| {name} | {row['precision']} | {row['params']:,} | {row['steps_per_s']:.2f} "
                         f"| {row['cpu_ms_per_step']:.0f} | {up} | {up_cpu} | {error} | {row['load_avg']:.1f} |")
        lines.append("")
        for row in train:
            peer = _peer(train, row, "library", "transformers")
            if row["library"] == "seqlab" and peer:
                lines.append(f"- Target ≥ {TRAIN_TARGET:g}× in {row['precision']}: "
                             f"{_verdict(_ratio(row['steps_per_s'], peer['steps_per_s']), TRAIN_TARGET)} in wall "
                             f"time; {_ratio(peer['cpu_ms_per_step'], row['cpu_ms_per_step']):.2f}× in CPU time.")
        lines.append("")
    if train and matmuls:
        lines += [
            "### Achieved FLOP/s of the training step",
            "",
            "Matmul FLOPs counted analytically (`rl.bench.train_flops`: 2 per multiply-add; every Linear, and "
            "QKᵀ and AV over the whole score matrix; backward = 2 × forward less the embeddings' input "
            "gradients; LayerNorm, softmax, dropout and AdamW not counted). Our model skips the newest action "
            "token and runs the last block's queries, output projection and feed-forward at the state tokens "
            "only, so it does fewer FLOPs "
            "than the HF model for the same result (the count matches `torch.utils.flop_counter` exactly for "
            "ours; HF also runs two heads it never trains, < 0.1%). Reference: a plain `torch.matmul` of the "
            "step's largest matmul (B·3K × D) @ (D × 4D), same threads. Rates per second of process CPU time "
            "(the machine is shared; per wall second in the JSON).",
            "",
            "| implementation | precision | GFLOP/step | CPU ms/step | achieved GFLOP/s | plain matmul GFLOP/s "
            "| fraction of matmul |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in train:
            sizes = Sizes(**row["sizes"])
            flops = train_flops(sizes, pruned=row["library"] == "seqlab")
            mm = next((m for m in matmuls if m["precision"] == row["precision"]), None)
            achieved = flops / row["cpu_ms_per_step"] / 1e6
            ref = f"{mm['gflop_per_cpu_s']:.0f}" if mm else "—"
            frac = f"{achieved / mm['gflop_per_cpu_s']:.0%}" if mm else "—"
            lines.append(f"| {row['library']} | {row['precision']} | {flops / 1e9:.2f} | {row['cpu_ms_per_step']:.0f} "
                         f"| {achieved:.1f} | {ref} | {frac} |")
        lines.append("")
    if evals:
        lines += [
            "### Evaluation: batched against sequential",
            "",
            f"{evals[0]['env_id']} episodes with an untrained DT "
            f"({_describe_sizes(Sizes(**evals[0]['sizes']), batch=False)}; "
            "the returns mean nothing, speed only). Sequential: one env, the reference's loop (histories grown by "
            "`torch.cat`, the window re-padded and the whole window's forward pass every step). Batched: N "
            "vector envs, one forward pass per step for all of them, a fixed context buffer, the newest action "
            "only (`TokenModel.act`). Env-steps/s over whole `evaluate` calls (env construction included), "
            f"median of {evals[0]['repeats']} repeats.",
            "",
            "| evaluator | envs | precision | threads | env-steps | env-steps/s (wall) | CPU µs/env-step "
            "| speed-up vs sequential (wall) | speed-up (CPU) | target ≥ 5× | load avg |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in evals:
            seq = _peer(evals, row, "evaluator", "sequential")
            if row["evaluator"] == "sequential" or seq is None:
                up = up_cpu = verdict = "—"
            else:
                ratio = _ratio(row["env_steps_per_s"], seq["env_steps_per_s"])
                up, up_cpu = f"{ratio:.2f}×", f"{_ratio(seq['cpu_us_per_env_step'], row['cpu_us_per_env_step']):.2f}×"
                verdict = "met" if ratio >= EVAL_TARGET else "not met"
            lines.append(f"| {row['evaluator']} | {row['num_envs']} | {row['precision']} | {row.get('threads', 1)} "
                         f"| {row['env_steps']} "
                         f"| {row['env_steps_per_s']:.0f} | {row['cpu_us_per_env_step']:.0f} | {up} | {up_cpu} "
                         f"| {verdict} | {row['load_avg']:.1f} |")
        sequential = [r for r in evals if r["evaluator"] == "sequential"]
        batched = [r for r in evals if r["evaluator"] == "batched"]
        if sequential and batched:
            fastest, best = (max(rows, key=lambda r: r["env_steps_per_s"]) for rows in (sequential, batched))
            lines += ["", f"Fastest batched ({best['num_envs']} envs, {best['precision']}, {best.get('threads', 1)} "
                      f"thread(s)) against the fastest sequential ({fastest['precision']}, "
                      f"{fastest.get('threads', 1)} thread(s)): "
                      f"{_ratio(best['env_steps_per_s'], fastest['env_steps_per_s']):.2f}×."]
        lines.append("")
    if train or evals:
        saved = 1 - train_flops(PAPER) / train_flops(PAPER, pruned=False)
        lines += [
            "### Reading the numbers",
            "",
            "- Training: both implementations spend most of a step in the same matmuls (see the FLOP table), so "
            "what separates them is the work ours skips: the newest action token and the last block's "
            f"queries and feed-forward at non-state tokens ({saved:.0%} of the matmul FLOPs at the paper config; "
            "`rl/models/gpt.py`); then the CPU fast paths of `seqlab.nn` (docs/concepts/training.md): dropout "
            "masks drawn as 16-bit random levels instead of with `bernoulli_` (dropout was 14% of our step), and in bf16 "
            "attention as explicit bf16 matmuls where torch's fused SDPA kernel is slower on this CPU. "
            "torch.compile made our step slower on this CPU (fp32 and bf16), so it is not used.",
            "- Evaluation: per env-step both evaluators run a forward pass over the whole K-step window; the "
            "batched one asks for the newest action only (29% fewer matmul FLOPs at the paper config) and "
            "spreads Python and small-matmul overhead over N envs. In fp32 its step already runs near the plain "
            "matmul rate, so beyond that the gain has to come from bf16 matmuls. The sequential evaluator "
            "is slower in bf16 than in fp32 (autocast's casts dominate a one-env forward pass), and slower "
            "with two threads than with one (its matmuls are too small to split), while the batched one "
            "gains from both: compare the rows of one thread count, and the fastest against the fastest.",
            "",
        ]
    return lines


def _describe_sizes(sizes: Sizes, batch: bool = True) -> str:
    which = "the DT paper's config" if sizes == PAPER else "sizes"
    rows = f"batch {sizes.batch_size}, " if batch else ""
    return (f"{which}: D = {sizes.d_model}, layers {sizes.n_layers}, heads {sizes.n_heads}, K = {sizes.context_len}, "
            f"{rows}S = {sizes.state_dim}, A = {sizes.action_dim}, dropout {sizes.dropout}")


def _peer(rows: list[dict], row: dict, key: str, value: str) -> dict | None:
    """The row to compare `row` with: `key` equal to `value`, same precision and thread count."""
    return next((r for r in rows if r[key] == value and r["precision"] == row["precision"]
                 and r.get("threads") == row.get("threads")), None)


def score_lines(scores: list[dict], info: dict[str, Any] | None) -> list[str]:
    lines: list[str] = []
    if info:
        refs = info.get("references", {})
        lines += [
            "### Datasets",
            "",
            f"Our {info.get('env_id', 'HalfCheetah-v5')} data (`seqlab rl collect halfcheetah`, SB3 SAC, D4RL's "
            f"recipe); reference returns: random {refs.get('random_return', float('nan')):.1f}, expert "
            f"{refs.get('expert_return', float('nan')):.1f} (score = 100 (R − random) / (expert − random)); "
            f"from {info.get('source', 'the collect manifest')}.",
            "",
            "| dataset | file | steps | episodes | mean return | normalized | sha256 |",
            "|---|---|---|---|---|---|---|",
        ]
        for level, entry in info.get("datasets", {}).items():
            norm = entry.get("normalized_mean_return")
            lines.append(f"| {level} | {entry['file']} | {entry['n_steps']:,} | {entry['n_episodes']} "
                         f"| {entry['mean_return']:.1f} | {'—' if norm is None else f'{norm:.1f}'} "
                         f"| `{entry['sha256']}` |")
        lines.append("")
    if not scores:
        return lines
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in scores:
        groups.setdefault((row["model"], row["level"]), []).append(row)
    n_trials = max((r["n_trials"] for r in scores), default=1)
    budget = ", ".join(f"{MODEL_NAMES[k]} {v}" for k, v in BUDGET_STEPS.items())
    if any(r["steps"] < BUDGET_STEPS.get(r["preset"], 0) for r in scores):
        lines += [f"**Short run** (e.g. `--quick`): fewer training steps than the CPU budget ({budget} steps); "
                  "the models are barely trained, so these numbers check the pipeline, not the methods.", ""]
    else:
        lines += [f"CPU budget: {budget} optimizer steps per run (presets dt_cpu, at_cpu, bc_cpu; warm-up a "
                  "tenth), sized so that 3 models × 3 datasets × 3 seeds fit in about two hours on one core here.",
                  ""]
    lines += [
        "### Normalized scores (last checkpoint)",
        "",
        "Main column: the score at the preset's first target return, declared before the runs (DT 6000, AT "
        "12000; BC ignores it), mean ± sample std over training seeds of each seed's mean over episodes; "
        "beside it the std over every episode of every seed. Other targets only in their own column. AT: "
        f"n = {n_trials} trials back to back in one context; its main column is the **last** trial, the "
        "first trial and the max over the n trials (the AT paper's protocol, which inflates scores) "
        "separately. Published: D4RL v2 datasets on mujoco-py envs with 100k+ steps of training — "
        "**a different dataset and budget, not a like-for-like comparison**.",
        "",
        "| model | dataset | steps | precision | seeds | score | std over episodes | per target | AT first trial "
        f"| AT max over n={n_trials} | train steps/s | published (D4RL v2, not comparable) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in LEVELS:
        for model in ("DT", "AT", "BC"):
            group = groups.get((model, level))
            if not group:
                continue
            lines.append(_score_row(model, level, group))
    lines.append("")
    lines += _shape_lines(groups)
    return lines


def _score_key(row: dict, target: float, trial: str | None = None) -> str:
    """Metric name of the mean score at `target`; trial "first_", "last_" or "max_" for AT (default: last)."""
    if trial is None:
        trial = "last_" if row["n_trials"] > 1 else ""
    return f"eval/{target:g}/{trial}score_mean"


def _main_key(row: dict) -> str:
    return _score_key(row, row["targets"][0])


def _score_row(model: str, level: str, group: list[dict]) -> str:
    key = _main_key(group[0])
    means = [r["evaluation"][key] for r in group]
    stds = [r["evaluation"][key.replace("_mean", "_std")] for r in group]
    targets = group[0]["targets"]
    per_target = "; ".join(f"{t:g}: {_mean_std([r['evaluation'][_score_key(r, t)] for r in group])}"
                           for t in targets) if len(targets) > 1 else "—"
    first = max_n = "—"
    if group[0]["n_trials"] > 1:
        first = _mean_std([r["evaluation"][_score_key(r, targets[0], "first_")] for r in group])
        max_n = _mean_std([r["evaluation"][_score_key(r, targets[0], "max_")] for r in group])
    speed = statistics.mean(r["steps_per_s"] for r in group)
    return (f"| {model} | {level} | {group[0]['steps']} | {group[0]['precision']} | {len(group)} | "
            f"{_mean_std(means)} | {_pooled_std(means, stds):.1f} | {per_target} | {first} | {max_n} "
            f"| {speed:.1f} | {PUBLISHED.get((model, level), '—')} |")


def _shape_lines(groups: dict[tuple[str, str], list[dict]]) -> list[str]:
    """The papers' expected ordering (rl2.md §1.2) checked on our numbers."""
    def score(model: str, level: str) -> float | None:
        group = groups.get((model, level))
        if not group:
            return None
        return statistics.mean(r["evaluation"][_main_key(r)] for r in group)

    lines = ["Expected shape (from the papers on D4RL): DT ≥ BC on medium-replay and medium-expert; AT ≥ DT by "
             "its last trial. On our data and budget:", ""]
    checks = [("DT", "BC", "medium-replay"), ("DT", "BC", "medium-expert")] + [("AT", "DT", lv) for lv in LEVELS]
    for better, worse, level in checks:
        a, b = score(better, level), score(worse, level)
        if a is None or b is None:
            continue
        holds = "holds" if a >= b else "does not hold"
        lines.append(f"- {better} ≥ {worse} on {level}: {holds} ({a:.1f} vs {b:.1f})")
    return lines + [""]


def write_report(results: dict[str, Any], command: str, path: Path, notes: list[str] = ()) -> None:
    """docs/benchmarks/rl.md and the raw results beside it (.json)."""
    speed, scores = results.get("speed", {}), results.get("scores", [])
    threads = {r["threads"] for part in speed.values() for r in part} | {r["threads"] for r in scores}
    loads = [r["load_avg"] for part in speed.values() for r in part if "load_avg" in r]
    lines = [
        "# RL benchmark",
        "",
        f"- Command: `{command}`",
        f"- Date: {results.get('date', date.today().isoformat())}; commit {results.get('commit', git_commit())}",
        f"- Machine: {results.get('machine', machine())}",
        f"- Threads: {', '.join(map(str, sorted(threads))) or '—'} intra-op thread(s) per process "
        "(torch.set_num_threads), one fresh process per measurement.",
    ]
    if loads:
        lines.append(f"- Load average (1 min) at the start of the speed measurements: {min(loads):.1f}–"
                     f"{max(loads):.1f} on {os.cpu_count()} cores (the measurements themselves count: a load "
                     "well above a probe's threads means other jobs were running, which makes wall-clock numbers "
                     "pessimistic and noisy, CPU-time numbers less so).")
    lines += [f"- {note}" for note in notes]
    lines += ["", "## Speed", ""] + (speed_lines(speed) if speed else ["Not run (`--scores-only`).", ""])
    lines += ["## Scores", ""] + (score_lines(scores, results.get("manifest")) if scores or results.get("manifest")
                                  else ["Not run.", ""])
    lines += ["Raw results: `rl.json` beside this file.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps({"command": command, "notes": list(notes), **results}, indent=2))


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seqlab bench rl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and shorter episodes for speed; one seed, a tenth of the steps and 5 "
                             "episodes for scores")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--speed-only", action="store_true", help="only the speed part (keeps earlier scores)")
    part.add_argument("--scores-only", action="store_true", help="only the scores part (keeps earlier speed)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--steps", nargs="+", default=None, metavar="PRESET=N",
                        help=f"training steps per preset (default {BUDGET_STEPS}, --quick {QUICK_STEPS})")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="precision of the score runs (auto: bf16 where the CPU has native bf16)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per measurement process")
    parser.add_argument("--eval-threads", type=int, nargs="*", default=None,
                        help="also time the evaluators at these thread counts (default: every core as well)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the score runs the report's .json already has for this plan; run the rest")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    command = "seqlab bench rl " + " ".join(argv or [])
    previous = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else {}
    commands = previous.get("commands") or {"speed": previous.get("command"), "scores": previous.get("command")}
    kept = "scores" if args.speed_only else "speed" if args.scores_only else None
    results: dict[str, Any] = {
        "date": date.today().isoformat(), "commit": git_commit(), "machine": machine(),
        "speed": previous.get("speed", {}) if kept == "speed" else {},
        "scores": previous.get("scores", []) if kept == "scores" else [],
        "manifest": previous.get("manifest"),
        "commands": {part: command if part != kept else commands.get(part) for part in ("speed", "scores")},
    }
    notes: list[str] = []
    if kept:
        earlier = results["commands"][kept]
        notes.append(f"This run did only the {'speed' if kept == 'scores' else 'scores'} part; the {kept} part "
                     + (f"comes from an earlier run (`{earlier}`, same machine)." if earlier else "was not run."))
    if not args.scores_only:
        results["speed"] = {"train": [], "matmul": [], "eval": []}
        have_hf = _has_transformers()
        eval_threads = tuple(args.eval_threads if args.eval_threads is not None else [os.cpu_count() or 1])
        for fn, probe in speed_plan(args.quick, args.threads, eval_threads):
            if isinstance(probe, TrainProbe) and probe.library == "transformers" and not have_hf:
                continue
            row = in_fresh_process(_call, fn, probe)
            part = {train_speed: "train", matmul_speed: "matmul", eval_speed: "eval"}[fn]
            results["speed"][part].append(row)
            write_report(results, command, args.out, notes)  # after every measurement
            print(f"[speed] {part}: {_describe(row)}", flush=True)
        if not have_hf:
            notes.append("transformers is not installed (pip install -e '.[bench]'): no HF comparison.")
    if not args.speed_only:
        info = results["manifest"] = dataset_info(args.data_dir)
        levels = tuple(level for level in LEVELS if info and level in info["datasets"])
        if len(levels) < len(LEVELS):
            missing = ", ".join(level for level in LEVELS if level not in levels)
            notes.append(f"Scores not run on {missing}: no {ENV_STEM} file in {data_folder(args.data_dir)} "
                         "(`seqlab rl collect halfcheetah` writes them).")
            print(notes[-1], flush=True)
        if levels:
            seeds = args.seeds or ([DEFAULT_SEEDS[0]] if args.quick else list(DEFAULT_SEEDS))
            steps = _parse_steps(args.steps, args.quick)
            cases = score_plan(seeds, steps, 5 if args.quick else 10, levels, args.data_dir, args.precision,
                               args.threads)
            results["scores"], cases = split_done(cases, previous.get("scores", []) if args.resume else [])
            for i, case in enumerate(cases, 1):
                row = in_fresh_process(run_score, case)
                results["scores"].append(row)
                write_report(results, command, args.out, notes)
                print(f"[scores {i}/{len(cases)}] {row['model']} {case.level} seed {case.seed}: "
                      f"{row['evaluation'][_main_key(row)]:.1f}, {row['wall_seconds']:.0f} s", flush=True)
    write_report(results, command, args.out, notes)
    print(f"report written to {args.out}")
    return 0


def _parse_steps(items: list[str] | None, quick: bool) -> dict[str, int]:
    steps = dict(QUICK_STEPS if quick else BUDGET_STEPS)
    for item in items or ():
        preset, _, value = item.partition("=")
        if preset not in steps or not value.isdigit():
            raise SystemExit(f"--steps: expected PRESET=N with PRESET in {sorted(steps)}, got {item!r}")
        steps[preset] = int(value)
    return steps


def _has_transformers() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


def _describe(row: dict) -> str:
    if "steps_per_s" in row:
        return (f"{row['library']} {row['precision']}: {row['steps_per_s']:.2f} steps/s, "
                f"{row['cpu_ms_per_step']:.0f} CPU ms")
    if "env_steps_per_s" in row:
        return (f"{row['evaluator']} x{row['num_envs']} {row['precision']}: {row['env_steps_per_s']:.0f} env-steps/s, "
                f"{row['cpu_us_per_env_step']:.0f} CPU us/step")
    return f"matmul {row['precision']} {row['shape']}: {row['gflop_per_s']:.0f} GFLOP/s"


if __name__ == "__main__":
    sys.exit(main())
