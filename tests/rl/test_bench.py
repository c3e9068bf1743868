"""The RL benchmark: report tables and verdicts from fake results, the FLOP count against torch's
counter, one tiny real measurement per side, and the exactness of the speed-ups it measures."""

import importlib.util
import json
from dataclasses import asdict

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rl.bench import (
    BUDGET_STEPS,
    PAPER,
    EvalProbe,
    Sizes,
    TrainProbe,
    _hf_dt,
    _seqlab_dt,
    action_loss,
    dataset_info,
    eval_speed,
    main,
    score_plan,
    synthetic_batches,
    train_flops,
    train_speed,
    write_report,
)
from rl.models.agentic_transformer import AgenticTransformer, AgenticTransformerConfig
from rl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig

TINY = Sizes(d_model=16, n_layers=2, context_len=5, batch_size=4, state_dim=4, action_dim=2, max_ep_len=50)


def train_row(library, precision, steps_per_s, cpu_ms):
    return {"library": library, "precision": precision, "threads": 1, "sizes": asdict(PAPER), "steps": 20,
            "repeats": 5, "params": 727_558, "steps_per_s": steps_per_s, "cpu_ms_per_step": cpu_ms,
            "bf16_action_error": 0.004, "attention": "sdpa", "load_avg": 3.0}


def eval_row(evaluator, num_envs, precision, rate, threads=1):
    return {"evaluator": evaluator, "env_id": "HalfCheetah-v5", "sizes": asdict(PAPER), "num_envs": num_envs,
            "precision": precision, "threads": threads, "episodes": num_envs, "env_steps": 1000 * num_envs,
            "repeats": 3, "env_steps_per_s": rate, "cpu_us_per_env_step": 1e6 / rate, "load_avg": 3.0}


def score_row(model, level, seed, score, std=10.0, n_trials=1, targets=(6000.0,)):
    evaluation = {}
    for target in targets:
        views = {"": 0.0} if n_trials == 1 else {"first_": -5.0, "last_": 0.0, "max_": 8.0}
        for prefix, shift in views.items():
            evaluation[f"eval/{target:g}/{prefix}score_mean"] = score + shift
            evaluation[f"eval/{target:g}/{prefix}score_std"] = std
    return {"preset": model.lower() + "_cpu", "model": model, "level": level, "seed": seed, "steps": 100,
            "episodes": 10, "precision": "bf16", "threads": 1, "targets": list(targets), "n_trials": n_trials,
            "evaluation": evaluation, "steps_per_s": 10.0}


def test_speed_report_says_which_targets_are_met(tmp_path):
    speed = {
        "train": [train_row("seqlab", "fp32", 2.0, 100.0), train_row("transformers", "fp32", 1.0, 180.0),
                  train_row("seqlab", "bf16", 1.2, 150.0), train_row("transformers", "bf16", 1.0, 160.0)],
        "matmul": [{"precision": "fp32", "shape": [3840, 128, 512], "threads": 1, "gflop_per_s": 50.0, "gflop_per_cpu_s": 50.0},
                   {"precision": "bf16", "shape": [3840, 128, 512], "threads": 1, "gflop_per_s": 200.0, "gflop_per_cpu_s": 200.0}],
        "eval": [eval_row("sequential", 1, "fp32", 100.0), eval_row("batched", 50, "fp32", 600.0),
                 eval_row("sequential", 1, "bf16", 100.0), eval_row("batched", 50, "bf16", 300.0),
                 # at 2 threads each batched row is compared with the sequential row at 2 threads
                 eval_row("sequential", 1, "fp32", 110.0, threads=2), eval_row("batched", 50, "fp32", 880.0, threads=2)],
    }
    path = tmp_path / "rl.md"
    write_report({"speed": speed, "scores": []}, "seqlab bench rl --speed-only", path)
    text = path.read_text()
    assert "Target ≥ 1.5× in fp32: **met** (2.00× ≥ 1.5×) in wall time; 1.80× in CPU time." in text
    assert "Target ≥ 1.5× in bf16: **not met** (1.20× < 1.5×)" in text
    assert "| batched | 50 | fp32 | 1 | 50000 | 600 | 1667 | 6.00× | 6.00× | met |" in text
    assert "| batched | 50 | bf16 | 1 | 50000 | 300 | 3333 | 3.00× | 3.00× | not met |" in text
    assert "| batched | 50 | fp32 | 2 | 50000 | 880 | 1136 | 8.00× |" in text
    achieved = train_flops(PAPER) / 0.1 / 1e9  # our fp32 step: counted FLOPs per 100 CPU ms
    assert f"| seqlab | fp32 | {train_flops(PAPER) / 1e9:.2f} | 100 | {achieved:.1f} | 50 | {achieved / 50:.0%} |" in text
    assert ("Fastest batched (50 envs, fp32, 2 thread(s)) against the fastest sequential (fp32, 2 thread(s)): "
            "8.00×.") in text
    assert json.loads(path.with_suffix(".json").read_text())["speed"]["eval"][1]["env_steps_per_s"] == 600.0


def test_score_report_keeps_at_trials_apart_and_marks_published_numbers(tmp_path):
    scores = [score_row("DT", "medium-replay", seed, score, targets=(6000.0, 12000.0))
              for seed, score in ((0, 40.0), (1, 44.0))]
    scores += [score_row("BC", "medium-replay", seed, score, targets=(0.0,)) for seed, score in ((0, 30.0), (1, 34.0))]
    scores += [score_row("AT", "medium-replay", seed, score, n_trials=4, targets=(12000.0,))
               for seed, score in ((0, 38.0), (1, 40.0))]
    info = {"env_id": "HalfCheetah-v5", "references": {"random_return": -290.0, "expert_return": 11000.0},
            "datasets": {"medium-replay": {"file": "halfcheetah-v5-medium-replay.hdf5", "sha256": "ab" * 32,
                                           "n_steps": 60000, "n_episodes": 60, "mean_return": 2500.0,
                                           "normalized_mean_return": 24.7}}}
    path = tmp_path / "rl.md"
    write_report({"speed": {}, "scores": scores, "manifest": info}, "seqlab bench rl --scores-only", path)
    text = path.read_text()
    # DT: mean ± sample std over seeds; over every episode sqrt(10^2 + 2^2); per-target column.
    assert "| DT | medium-replay | 100 | bf16 | 2 | 42.0 ± 2.8 | 10.2 | 6000: 42.0 ± 2.8; 12000: 42.0 ± 2.8 | — | — |" in text
    # AT: the main column is the last trial; first trial and max over n apart, n stated.
    assert "| AT | medium-replay | 100 | bf16 | 2 | 39.0 ± 1.4 | 10.0 | — | 34.0 ± 1.4 | 47.0 ± 1.4 |" in text
    assert "AT max over n=4" in text and "not a like-for-like comparison" in text
    assert "36.6 ± 0.8 (DT paper)" in text
    assert "- DT ≥ BC on medium-replay: holds (42.0 vs 32.0)" in text
    assert "- AT ≥ DT on medium-replay: does not hold (39.0 vs 42.0)" in text
    assert f"`{'ab' * 32}`" in text
    assert "**Short run**" in text  # 100 steps, below every preset's budget


def test_switches_keep_the_other_part_and_say_when_data_are_missing(tmp_path):
    out = tmp_path / "rl.md"
    earlier = {"command": "seqlab bench rl --speed-only", "speed": {
        "train": [train_row("seqlab", "fp32", 2.0, 100.0), train_row("transformers", "fp32", 1.0, 180.0)]}}
    out.with_suffix(".json").write_text(json.dumps(earlier))
    main(["--scores-only", "--data-dir", str(tmp_path / "no-data"), "--out", str(out)])
    text = out.read_text()
    assert "Target ≥ 1.5× in fp32: **met**" in text  # the speed part of the earlier run is kept
    assert "the speed part comes from an earlier run (`seqlab bench rl --speed-only`, same machine)" in text
    assert "Scores not run on medium, medium-replay, medium-expert: no halfcheetah-v5 file in" in text


def test_resume_runs_only_the_score_cases_the_report_lacks(tmp_path, monkeypatch):
    import rl.bench as bench

    ran = []

    def fake_fresh_process(fn, case):
        ran.append(case)
        return {**score_row(bench.MODEL_NAMES[case.preset], case.level, case.seed, 30.0), **asdict(case),
                "wall_seconds": 1.0}

    monkeypatch.setattr(bench, "in_fresh_process", fake_fresh_process)
    monkeypatch.setattr(bench, "dataset_info", lambda data_dir: {"datasets": {"medium": {
        "file": "m.hdf5", "n_steps": 1000, "n_episodes": 1, "mean_return": 1.0, "sha256": "ab"}}})
    plan = score_plan([0, 1], {"dt_cpu": 100, "at_cpu": 50, "bc_cpu": 200}, 10, ("medium",), None, "bf16")
    earlier = [{**score_row("DT", "medium", 0, 11.0), **asdict(plan[0])},
               {**score_row("DT", "medium", 1, 12.0), **asdict(plan[1]), "steps": 99}]  # another budget: rerun
    out = tmp_path / "rl.md"
    out.with_suffix(".json").write_text(json.dumps({"command": "x", "scores": earlier}))
    main(["--scores-only", "--resume", "--precision", "bf16", "--seeds", "0", "1", "--steps", "dt_cpu=100",
          "at_cpu=50", "bc_cpu=200", "--out", str(out)])
    assert ran == plan[1:]
    scores = json.loads(out.with_suffix(".json").read_text())["scores"]
    assert len(scores) == len(plan) and scores[0]["evaluation"] == earlier[0]["evaluation"]


def test_speed_plan_times_the_evaluators_at_each_thread_count_once():
    from rl.bench import speed_plan

    evals = [probe for fn, probe in speed_plan(True, 1, (2, 1)) if fn is eval_speed]
    assert sorted({p.threads for p in evals}) == [1, 2] and len(evals) == 12  # 2 precisions x 3 evaluators x 2


def test_score_plan_covers_every_model_dataset_and_seed():
    cases = score_plan([0, 1, 2], BUDGET_STEPS, episodes=10)
    assert len(cases) == 27 and len({(c.preset, c.level, c.seed) for c in cases}) == 27
    assert {c.steps for c in cases if c.preset == "dt_cpu"} == {BUDGET_STEPS["dt_cpu"]}
    assert {c.level for c in score_plan([0], BUDGET_STEPS, 10, levels=("medium",))} == {"medium"}


def test_dataset_facts_come_from_the_files_until_the_manifest_exists(tmp_path):
    import numpy as np

    from rl.collect import sha256_file
    from rl.data import Episode, EpisodeDataset
    from rl.formats.d4rl import write_d4rl

    rng = np.random.default_rng(0)
    episode = Episode(rng.normal(size=(5, 17)).astype(np.float32), rng.uniform(-1, 1, (5, 6)).astype(np.float32),
                      np.ones(5, np.float32), np.zeros(5, bool), np.r_[np.zeros(4, bool), True])
    meta = {"ref_min_score": 0.0, "ref_max_score": 10.0, "mean_return": 5.0, "n_steps": 5, "n_episodes": 1}
    path = write_d4rl(EpisodeDataset([episode], "HalfCheetah-v5", meta), tmp_path / "halfcheetah-v5-medium.hdf5")
    info = dataset_info(str(tmp_path))
    assert set(info["datasets"]) == {"medium"} and info["datasets"]["medium"]["sha256"] == sha256_file(path)
    assert info["datasets"]["medium"]["normalized_mean_return"] == pytest.approx(50.0)
    (tmp_path / "halfcheetah-v5-manifest.json").write_text(json.dumps({"datasets": {}, "from": "manifest"}))
    assert dataset_info(str(tmp_path))["from"] == "manifest"


@pytest.mark.parametrize("sizes", [TINY, PAPER])
def test_flop_count_matches_torch_flop_counter(sizes):
    """The analytic count is exactly what our training step multiplies; the HF model computes the
    full sequence, plus the forward of its state and return heads, which the loss never uses."""
    s = sizes
    unused_heads = s.batch_size * 2 * s.context_len * s.d_model * (s.state_dim + 1)
    sides = [(_seqlab_dt, True, 0)]
    if importlib.util.find_spec("transformers") is not None:  # the peer comes with the bench extra
        sides.append((_hf_dt, False, unused_heads))
    for build, pruned, extra in sides:
        model, predict = build(sizes)
        model.train()
        with FlopCounterMode(display=False) as counter:
            action_loss(predict, model, synthetic_batches(sizes, n=1)[0]).backward()
        assert counter.get_total_flops() == train_flops(sizes, pruned) + extra
    assert train_flops(sizes, pruned=True) < train_flops(sizes, pruned=False)


def test_one_tiny_training_measurement_per_side():
    pytest.importorskip("transformers")
    for library in ("seqlab", "transformers"):
        row = train_speed(TrainProbe(library, "bf16", sizes=TINY, steps=2, repeats=1, warmup=1))
        assert row["steps_per_s"] > 0 and row["cpu_ms_per_step"] > 0 and row["params"] > 0
        assert 0 < row["bf16_action_error"] < 0.1


def test_one_tiny_evaluation_measurement_per_evaluator():
    tiny = Sizes(d_model=16, n_layers=1, context_len=4)  # HalfCheetah's dims
    for evaluator, num_envs in (("sequential", 1), ("batched", 2)):
        row = eval_speed(EvalProbe(evaluator, num_envs, "fp32", episodes=num_envs, repeats=1, max_episode_steps=3,
                                   sizes=tiny))
        assert row["env_steps"] == 3 * num_envs and row["env_steps_per_s"] > 0


# The speed-ups the benchmark measures must not change what the models compute.
def models():
    torch.manual_seed(0)
    dt = DecisionTransformer(DecisionTransformerConfig(state_dim=4, action_dim=2, context_len=5, d_model=16,
                                                       n_layers=2, n_heads=2, max_ep_len=50))
    at = AgenticTransformer(AgenticTransformerConfig(state_dim=4, action_dim=2, context_len=5, d_model=16,
                                                     n_layers=2, n_heads=2, max_ep_len=50))
    return [dt.eval(), at.eval()]


def full_sequence_actions(model, batch):
    """The unpruned computation: every token through every block, actions read at state tokens."""
    p = model.tokens_per_step
    padding = None if batch.padding is None else batch.padding.repeat_interleave(p, dim=1)
    hidden = model.gpt(model.embed(batch), padding)
    return model.predict_action(hidden[:, model.state_token :: p])


@pytest.mark.parametrize("model", models(), ids=["dt", "at"])
def test_pruned_forward_and_act_equal_the_full_computation(model):
    batch = synthetic_batches(TINY, n=1, seed=3)[0]  # a quarter of the rows left-padded
    with torch.no_grad():
        full = full_sequence_actions(model, batch)
        torch.testing.assert_close(model(batch), full)
        torch.testing.assert_close(model.act(batch), full[:, -1])
        unpadded = batch._replace(padding=None)
        torch.testing.assert_close(model.act(unpadded), full_sequence_actions(model, unpadded)[:, -1])


def test_pruned_training_step_has_the_full_gradients():
    torch.manual_seed(0)
    model = DecisionTransformer(DecisionTransformerConfig(state_dim=4, action_dim=2, context_len=5, d_model=16,
                                                          n_layers=2, max_ep_len=50, dropout=0.0,
                                                          attention_dropout=0.0))
    batch = synthetic_batches(TINY, n=1)[0]
    grads = []
    for forward in (model, lambda b: full_sequence_actions(model, b)):
        model.zero_grad()
        ((forward(batch) - batch.actions) ** 2)[batch.loss_mask].mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for pruned, full in zip(*grads, strict=True):
        torch.testing.assert_close(pruned, full)
