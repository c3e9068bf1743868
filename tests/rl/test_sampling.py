"""Windows, chains and the input bookkeeping of rl.sampling, checked against explicit loops."""

import numpy as np
import pytest
import torch

from rl.data import Episode
from rl.sampling import (
    ChainSampler,
    Preprocessing,
    SampledDataset,
    WindowSampler,
    chain_order,
    top_episodes,
)
from seqlab.errors import ConfigError, SeqlabError

SCALE = 10.0


def tagged_episode(tag: int, length: int, reward: float | np.ndarray = 1.0) -> Episode:
    """States (tag, t, (-1)^t) so a sampled step can be traced back to its episode and step; the
    last entry never normalizes to 0, which tells real steps from padding."""
    rng = np.random.default_rng(tag)
    states = np.stack([np.full(length, tag), np.arange(length), (-1.0) ** np.arange(length)], axis=1)
    rewards = np.broadcast_to(np.asarray(reward, np.float32), (length,)).copy()
    return Episode(states.astype(np.float32), rng.uniform(-1, 1, (length, 2)).astype(np.float32), rewards,
                   np.zeros(length, bool), np.zeros(length, bool))


def decode(prep: Preprocessing, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Episode tag and timestep of each sampled step, from its de-normalized state."""
    raw = states.numpy() * prep.state_std + prep.state_mean
    return np.rint(raw[..., 0]).astype(int), np.rint(raw[..., 1]).astype(int)


@pytest.fixture
def episodes():
    return [tagged_episode(i, n, reward=float(i + 1)) for i, n in enumerate([7, 12, 3, 20])]


def test_preprocessing_statistics_cover_every_state_and_round_trip(episodes):
    prep = Preprocessing.from_episodes(episodes, rtg_scale=SCALE)
    states = np.concatenate([ep.observations for ep in episodes]).astype(np.float64)
    np.testing.assert_allclose(prep.state_mean, states.mean(0), rtol=1e-6)
    np.testing.assert_allclose(prep.state_std, states.std(0) + 1e-6, rtol=1e-6)
    again = Preprocessing.from_dict(prep.to_dict())
    np.testing.assert_array_equal(again.normalize_states(states), prep.normalize_states(states))
    bounded = Preprocessing.from_episodes(episodes, action_bounds=(np.array([-2.0, 0.0]), np.array([2.0, 1.0])))
    actions = np.array([[-2.0, 0.0], [1.0, 0.75]])
    np.testing.assert_allclose(bounded.normalize_actions(actions), [[-1.0, -1.0], [0.5, 0.5]])
    np.testing.assert_allclose(bounded.denormalize_actions(bounded.normalize_actions(actions)), actions, rtol=1e-6)
    np.testing.assert_allclose(Preprocessing.from_dict(bounded.to_dict()).action_high, [2.0, 1.0])


@pytest.mark.parametrize("pad", ["left", "right"])
def test_windows_hold_normalized_states_and_returns_to_go_of_their_episode(episodes, pad):
    prep = Preprocessing.from_episodes(episodes, rtg_scale=SCALE)
    batch = WindowSampler(episodes, prep, context_len=5, pad=pad).sample(np.random.default_rng(0), 200)
    tags, steps = decode(prep, batch.states)
    real = batch.loss_mask.numpy()
    for row in range(200):
        tag, t = tags[row][real[row]], steps[row][real[row]]
        assert len(set(tag)) == 1 and np.all(np.diff(t) == 1)  # consecutive steps of one episode
        ep = episodes[tag[0]]
        future_return = np.array([ep.rewards[i:].sum() for i in t])  # explicit sum, gamma = 1
        np.testing.assert_allclose(batch.returns_to_go[row][real[row]].numpy(), future_return / SCALE, rtol=1e-6)
        np.testing.assert_array_equal(batch.timesteps[row][real[row]].numpy(), t)
        np.testing.assert_allclose(batch.states[row][real[row]].numpy(), prep.normalize_states(ep.observations[t]))
        np.testing.assert_allclose(batch.actions[row][real[row]].numpy(), ep.actions[t])
        n = real[row].sum()
        assert n == min(5, len(ep) - t[0])  # windows run to the episode end, not past it
        expected_real = np.arange(5) >= 5 - n if pad == "left" else np.arange(5) < n
        np.testing.assert_array_equal(real[row], expected_real)
    assert (batch.padding is None) == (pad == "right")
    if pad == "left":
        np.testing.assert_array_equal(batch.padding.numpy(), ~real)
    assert (~real).any(), "no padded window was drawn; the test did not exercise padding"
    for field in (batch.states, batch.actions, batch.returns_to_go, batch.timesteps):
        assert torch.all(field[torch.from_numpy(~real)] == 0)


def test_mask_marks_real_steps_even_when_their_values_look_like_padding():
    """A real step whose normalized state, action, RTG and timestep are all 0 stays real."""
    ep = Episode(np.array([[1.0], [-1.0]], np.float32), np.zeros((2, 1), np.float32), np.array([0.0, 0.0], np.float32),
                 np.zeros(2, bool), np.zeros(2, bool))
    prep = Preprocessing(np.array([1.0], np.float32), np.array([1.0], np.float32))  # step 0 normalizes to 0
    batch = WindowSampler([ep], prep, context_len=4, pad="left").sample(np.random.default_rng(1), 64)
    starts_at_zero = batch.loss_mask.sum(1) == 2  # windows holding both steps
    assert starts_at_zero.any()
    np.testing.assert_array_equal(batch.loss_mask[starts_at_zero].numpy(), [[False, False, True, True]] * int(starts_at_zero.sum()))


def test_trajectories_are_drawn_in_proportion_to_length():
    episodes = [tagged_episode(0, 10), tagged_episode(1, 90)]
    prep = Preprocessing.from_episodes(episodes)
    batch = WindowSampler(episodes, prep, context_len=1).sample(np.random.default_rng(0), 4000)
    tags, steps = decode(prep, batch.states)
    assert abs((tags[:, 0] == 1).mean() - 0.9) < 0.03
    assert set(steps[tags[:, 0] == 0, 0]) == set(range(10))  # every start of an episode is drawn


def test_top_episodes_keeps_the_best_within_the_step_budget(episodes):
    returns = {id(ep): ep.total_return for ep in episodes}  # episode i returns (i + 1) * len
    kept = top_episodes(episodes, 0.5)  # 21 of 42 steps
    ranked = sorted(episodes, key=lambda ep: returns[id(ep)], reverse=True)
    assert kept[0] is ranked[0]
    assert sum(len(ep) for ep in kept) <= 21 or len(kept) == 1
    assert [returns[id(ep)] for ep in kept] == sorted((returns[id(ep)] for ep in kept), reverse=True)
    assert top_episodes(episodes, 1.0) == ranked
    with pytest.raises(ConfigError, match="fraction"):
        top_episodes(episodes, 0.0)


def test_chain_order_is_ascending_by_return():
    returns = np.array([3.0, -1.0, 7.0, 3.0])
    np.testing.assert_array_equal(chain_order(returns), [1, 0, 3, 2])


def test_chains_are_sorted_relabelled_to_the_max_and_mark_completion():
    # Episode 3 overshoots its final return mid-way (cumulative 5, 10, 7, 8): completion is on
    # only at steps where the reward so far reaches R_max.
    episodes = [tagged_episode(0, 4, 1.0), tagged_episode(1, 6, 2.0), tagged_episode(2, 5, 0.5),
                tagged_episode(3, 4, np.array([5.0, 5.0, -3.0, 1.0]))]
    prep = Preprocessing.from_episodes(episodes, rtg_scale=SCALE)
    sampler = ChainSampler(episodes, prep, context_len=40, n_trajectories=3, min_trajectories=2)
    batch = sampler.sample(np.random.default_rng(3), 64)
    tags, steps = decode(prep, batch.states)
    real = np.abs(batch.states[..., 2].numpy()) > 0.5  # padding normalizes to exactly 0
    n_real = real.sum(1)
    for row in range(64):
        tag, t = tags[row, : n_real[row]], steps[row, : n_real[row]]
        assert real[row, : n_real[row]].all() and not real[row, n_real[row]:].any()  # right-padded
        starts = np.flatnonzero(t == 0)
        members = np.split(np.arange(len(t)), starts[1:])
        assert starts[0] == 0 and 2 <= len(members) <= 3
        chain_returns = [episodes[tag[m[0]]].total_return for m in members]
        assert chain_returns == sorted(chain_returns)  # ascending by total return
        r_max = max(chain_returns)
        for k, m in enumerate(members):
            ep = episodes[tag[m[0]]]
            assert np.all(tag[m] == tag[m[0]])
            np.testing.assert_array_equal(t[m], np.arange(len(m)))  # timesteps restart per trajectory
            before = np.concatenate([[0.0], np.cumsum(ep.rewards)[:-1]])[: len(m)]
            np.testing.assert_allclose(batch.returns_to_go[row, m].numpy(), (r_max - before) / SCALE, rtol=1e-6)
            np.testing.assert_allclose(batch.rewards[row, m].numpy(), ep.rewards[: len(m)] / SCALE, rtol=1e-6)
            reached = np.cumsum(ep.rewards)[: len(m)] >= r_max
            np.testing.assert_array_equal(batch.completions[row, m].numpy(), reached.astype(int))
            np.testing.assert_array_equal(batch.loss_mask[row, m].numpy(), k == len(members) - 1)
    assert batch.padding is None


def test_chain_window_ends_in_the_best_trajectory_and_keeps_earlier_context():
    episodes = [tagged_episode(i, 30, float(i)) for i in range(3)]  # return grows with the tag
    prep = Preprocessing.from_episodes(episodes)
    sampler = ChainSampler(episodes, prep, context_len=8, n_trajectories=3, min_trajectories=3)
    batch = sampler.sample(np.random.default_rng(0), 128)
    loss = batch.loss_mask.numpy()
    assert loss[:, -1].all()  # chains of 90 steps fill the window, which ends in the best trajectory
    tags, _ = decode(prep, batch.states)
    reaching_back = [row for row in range(128) if not loss[row].all()]
    assert reaching_back, "no window reached into an earlier trajectory"
    for row in reaching_back:
        assert tags[row][~loss[row]].max() <= tags[row][loss[row]].min()  # earlier context is no better


def test_sampled_dataset_batches_depend_only_on_their_indices(episodes):
    prep = Preprocessing.from_episodes(episodes)
    data = SampledDataset(WindowSampler(episodes, prep, context_len=4), n_samples=100, seed=7)
    a, b = data.get_batch(torch.arange(8)), data.get_batch(torch.arange(8))
    c = data.get_batch(torch.arange(8, 16))
    torch.testing.assert_close(a.states, b.states)
    assert not torch.equal(a.states, c.states)
    assert len(data) == 100


def test_bad_sampler_input_is_a_clear_error(episodes):
    prep = Preprocessing.from_episodes(episodes)
    with pytest.raises(ConfigError, match="context_len"):
        WindowSampler(episodes, prep, context_len=0)
    with pytest.raises(ConfigError, match="pad"):
        WindowSampler(episodes, prep, context_len=2, pad="middle")
    with pytest.raises(ConfigError, match="min_trajectories"):
        ChainSampler(episodes, prep, context_len=2, n_trajectories=2, min_trajectories=3)
    with pytest.raises(SeqlabError, match="at least one episode"):
        WindowSampler([], prep, context_len=2)
    with pytest.raises(ConfigError, match="rtg_scale"):
        Preprocessing(prep.state_mean, prep.state_std, rtg_scale=0.0)
