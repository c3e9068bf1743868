"""The batched evaluator against the sequential reference, its KV cache and its bookkeeping."""

import dataclasses

import gymnasium
import numpy as np
import pytest
import torch
from torch import nn

from rl.data import Episode
from rl.evaluate import ContextWindow, EvalConfig, EvalResult, _cached_action, _last_action, evaluate, evaluate_sequential
from rl.models.agentic_transformer import AgenticTransformer, AgenticTransformerConfig
from rl.models.bc import BCConfig, BehaviorCloning
from rl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from rl.sampling import ChainSampler, Preprocessing, WindowSampler
from seqlab.errors import ConfigError, SeqlabError

PENDULUM = "Pendulum-v1"  # 3-d state, 1-d action in [-2, 2], never terminates
INVERTED = "InvertedPendulum-v5"  # 4-d state, 1-d action in [-3, 3], episodes end when it falls


def env_prep(env_id: str, seed: int = 0) -> Preprocessing:
    """State statistics from a short random rollout; action bounds of the env."""
    env = gymnasium.make(env_id)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    states = []
    for _ in range(50):
        states.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    space = env.action_space
    episode = Episode(np.array(states, np.float32), np.zeros((50, 1), np.float32), np.zeros(50, np.float32),
                      np.zeros(50, bool), np.zeros(50, bool))
    return Preprocessing.from_episodes([episode], rtg_scale=100.0, action_bounds=(space.low, space.high))


def build(model_cls, state_dim, **overrides):
    base = {
        DecisionTransformer: DecisionTransformerConfig(state_dim=state_dim, action_dim=1, context_len=5, d_model=16,
                                                       n_layers=2, max_ep_len=12),
        AgenticTransformer: AgenticTransformerConfig(state_dim=state_dim, action_dim=1, context_len=40, d_model=16,
                                                     n_layers=2, max_ep_len=12, n_trajectories=2),
        BehaviorCloning: BCConfig(state_dim=state_dim, action_dim=1, context_len=2, d_model=16,
                                  condition_on_return=True),
    }
    torch.manual_seed(0)
    model = model_cls(dataclasses.replace(base[model_cls], **overrides))
    return model


@pytest.mark.parametrize(("model_cls", "env_id", "n_trials"), [
    (DecisionTransformer, INVERTED, 1), (AgenticTransformer, INVERTED, 2), (BehaviorCloning, PENDULUM, 1)])
def test_batched_returns_equal_sequential_returns_on_the_same_seeds(model_cls, env_id, n_trials):
    prep = env_prep(env_id)
    model = build(model_cls, prep.state_mean.shape[0])
    config = EvalConfig(env_id, target_returns=(30.0, 5.0), n_episodes=5, num_envs=3, seed=11, n_trials=n_trials,
                        max_episode_steps=25)
    batched, sequential = evaluate(model, prep, config), evaluate_sequential(model, prep, config)
    for ours, reference in zip(batched, sequential, strict=True):
        np.testing.assert_array_equal(ours.lengths, reference.lengths)
        np.testing.assert_allclose(ours.returns, reference.returns, rtol=1e-5)
        assert ours.returns.shape == (5, n_trials)
    if env_id == INVERTED:  # episodes ended at different times: rows finished while others ran on
        assert len(np.unique(batched[0].lengths)) > 1


@pytest.mark.parametrize("model_cls", [DecisionTransformer, AgenticTransformer])
def test_kv_cache_actions_equal_full_context_actions(model_cls):
    model = build(model_cls, 3, context_len=6).eval()
    context = ContextWindow(4, 6, 3, 1, torch.device("cpu"))
    cache = model.gpt.new_cache(6 * model.tokens_per_step)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for step in range(6):
            context.push(torch.randn(4, 3, generator=g).numpy(), torch.randn(4, generator=g).numpy(),
                         np.full(4, step))
            cached = _cached_action(model, context, cache)
            full = _last_action(model, context.window(context.count))
            torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-6)
            context.record(cached, torch.randn(4, generator=g).numpy(), np.array([0, 1, 0, step % 2]))


@pytest.mark.parametrize("context_len", [8, 40])  # the window slides after 8 steps; 40 holds every trial
def test_evaluator_with_kv_cache_equals_without(context_len):
    prep = env_prep(PENDULUM)
    model = build(AgenticTransformer, 3, context_len=context_len)
    config = EvalConfig(PENDULUM, target_returns=(-50.0,), n_episodes=2, num_envs=2, n_trials=2, max_episode_steps=15)
    plain = evaluate(model, prep, config)[0]
    cached = evaluate(model, prep, dataclasses.replace(config, use_kv_cache=True))[0]
    np.testing.assert_allclose(cached.returns, plain.returns, rtol=1e-5)


def test_context_window_returns_the_last_k_steps_in_order():
    context = ContextWindow(2, 3, 1, 1, torch.device("cpu"))
    for step in range(8):
        context.push(np.full((2, 1), step), np.full(2, step), np.full(2, step))
        n = min(context.count, 3)
        window = context.window(n)
        expected = torch.arange(step - n + 1, step + 1)
        torch.testing.assert_close(window.timesteps[0], expected)
        torch.testing.assert_close(window.states[1, :, 0], expected.float())


class Spy(nn.Module):
    """Acts 0 whatever it sees, and records the newest step of every input window."""

    def __init__(self, state_dim: int, context_len: int) -> None:
        super().__init__()
        self.config = DecisionTransformerConfig(state_dim=state_dim, action_dim=1, context_len=context_len)
        self.unused = nn.Parameter(torch.zeros(()))
        self.seen: list[dict[str, np.ndarray]] = []

    def forward(self, batch):
        self.seen.append({name: getattr(batch, name)[0, -1].numpy().copy()
                          for name in ("states", "returns_to_go", "rewards", "completions", "timesteps")})
        return torch.zeros(*batch.states.shape[:2], 1)


def replay(env_id: str, seed: int, steps: int) -> Episode:
    """The episode the Spy's constant action produces, collected without the evaluator."""
    env = gymnasium.make(env_id, max_episode_steps=steps)
    obs, _ = env.reset(seed=seed)
    states, rewards, done = [], [], False
    while not done:
        states.append(obs)
        obs, reward, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        rewards.append(reward)
        done = terminated or truncated
    n = len(rewards)
    return Episode(np.array(states, np.float32), np.zeros((n, 1), np.float32), np.array(rewards, np.float32),
                   np.zeros(n, bool), np.zeros(n, bool))


@pytest.mark.parametrize("sequential", [False, True])
def test_evaluation_feeds_the_same_inputs_as_training(sequential):
    """With the target set to the episode's return, every state, RTG, reward, completion and
    timestep the evaluator feeds equals what the training samplers make of that episode."""
    prep = env_prep(PENDULUM)
    episode = replay(PENDULUM, seed=3, steps=20)
    spy = Spy(3, context_len=4)
    run = evaluate_sequential if sequential else evaluate
    run(spy, prep, EvalConfig(PENDULUM, target_returns=(episode.total_return,), n_episodes=1, num_envs=1, seed=3,
                              max_episode_steps=20))
    fed = {name: np.stack([step[name] for step in spy.seen]) for name in spy.seen[0]}
    assert len(spy.seen) == len(episode) == 20
    # The window sampler (DT) and a one-trajectory chain (AT) of that episode, at every step.
    rng = np.random.default_rng(0)
    for batch in (WindowSampler([episode], prep, context_len=4).sample(rng, 32),
                  ChainSampler([episode], prep, context_len=4, n_trajectories=1).sample(rng, 32)):
        real = batch.loss_mask.numpy()
        t = batch.timesteps.numpy()[real]
        np.testing.assert_allclose(batch.states.numpy()[real], fed["states"][t], rtol=1e-6)
        np.testing.assert_allclose(batch.returns_to_go.numpy()[real], fed["returns_to_go"][t], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(t, fed["timesteps"][t])
    # Rewards and completions of step t are known from step t + 1 on: compare the chain's.
    chain = ChainSampler([episode], prep, context_len=20, n_trajectories=1).sample(rng, 64)
    full = chain.loss_mask.sum(1) == 20
    assert full.any()
    row = int(np.flatnonzero(full.numpy())[0])
    np.testing.assert_allclose(chain.rewards[row, :-1].numpy(), prep.scale_rewards(episode.rewards)[:-1], rtol=1e-6)
    recorded_after = evaluate_and_record_window(prep, episode)
    np.testing.assert_allclose(recorded_after["rewards"], chain.rewards[row, :-1].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(recorded_after["completions"], chain.completions[row, :-1].numpy())


def evaluate_and_record_window(prep: Preprocessing, episode: Episode) -> dict[str, np.ndarray]:
    """Rewards and completions of steps 0..T-2 as the evaluator's context holds them at the last step."""

    class WholeWindowSpy(Spy):
        def forward(self, batch):
            self.last = {name: getattr(batch, name)[0].numpy().copy() for name in ("rewards", "completions")}
            return torch.zeros(*batch.states.shape[:2], 1)

    spy = WholeWindowSpy(3, context_len=len(episode))
    evaluate(spy, prep, EvalConfig(PENDULUM, target_returns=(episode.total_return,), n_episodes=1, num_envs=1,
                                   seed=3, max_episode_steps=len(episode)))
    return {name: values[:-1] for name, values in spy.last.items()}


def test_evaluation_is_seeded_and_scores_come_from_the_callable():
    prep = env_prep(PENDULUM)
    model = build(DecisionTransformer, 3)
    config = EvalConfig(PENDULUM, target_returns=(-100.0,), n_episodes=3, num_envs=3, seed=5, max_episode_steps=10)
    score = lambda r: 100 * (r + 1600.0) / 1600.0  # noqa: E731
    first, again = evaluate(model, prep, config, score)[0], evaluate(model, prep, config, score)[0]
    np.testing.assert_array_equal(first.returns, again.returns)
    np.testing.assert_allclose(first.scores, score(first.returns))
    other = evaluate(model, prep, dataclasses.replace(config, seed=6))[0]
    assert not np.allclose(other.returns, first.returns)
    assert list(first.seeds) == [5, 6, 7]


def test_summary_keeps_first_last_and_best_trial_apart():
    returns = np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    summary = EvalResult(0.0, returns, np.ones_like(returns, dtype=int), np.arange(2), scores=returns * 10).summary()
    assert summary["first_return_mean"] == returns[:, 0].mean()
    assert summary["last_return_mean"] == returns[:, -1].mean()
    assert summary["max_return_mean"] == returns.max(1).mean()
    assert summary["max_score_std"] == pytest.approx((returns.max(1) * 10).std())
    single = EvalResult(0.0, returns[:, :1], np.ones((2, 1), int), np.arange(2)).summary()
    assert single["return_mean"] == 2.5 and "first_return_mean" not in single


def test_bad_evaluation_input_is_a_clear_error():
    prep = env_prep(PENDULUM)
    with pytest.raises(ConfigError, match=r"target_returns\[1\]"):
        EvalConfig(PENDULUM, target_returns=(1.0, float("nan")))
    with pytest.raises(ConfigError, match=r"target_returns\[0\]"):
        EvalConfig(PENDULUM, target_returns=("high",))
    with pytest.raises(SeqlabError, match="NoSuchEnv-v0"):
        evaluate(build(DecisionTransformer, 3), prep, EvalConfig("NoSuchEnv-v0"))
    with pytest.raises(SeqlabError, match="state_dim=4"):
        evaluate(build(DecisionTransformer, 4), prep, EvalConfig(PENDULUM, n_episodes=1))
    with pytest.raises(SeqlabError, match="action bounds"):
        evaluate(build(DecisionTransformer, 3), dataclasses.replace(prep, action_low=None, action_high=None),
                 EvalConfig(PENDULUM, n_episodes=1))
    with pytest.raises(ConfigError, match="use_kv_cache"):
        evaluate(build(BehaviorCloning, 3), prep, EvalConfig(PENDULUM, n_episodes=1, use_kv_cache=True))
