"""Normalized scores: D4RL's table, a dataset's own references, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from rl.data import EpisodeDataset
from rl.scores import D4RL_REFERENCE_RETURNS, ReferenceReturns, ScoreError, normalized_score, reference_returns


@pytest.mark.parametrize("env", sorted(D4RL_REFERENCE_RETURNS))
def test_random_scores_0_and_expert_100(env):
    random, expert = D4RL_REFERENCE_RETURNS[env]
    assert normalized_score(env, random) == pytest.approx(0.0)
    assert normalized_score(env, expert) == pytest.approx(100.0)
    assert normalized_score(env, (random + expert) / 2) == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("name", "env"),
    [("halfcheetah-medium-v2", "halfcheetah"), ("hopper_medium_replay-v2", "hopper"),
     ("walker2d-medium-expert-v2", "walker2d"), ("Hopper", "hopper"), ("halfcheetah-v2", "halfcheetah")],
)
def test_d4rl_dataset_names_map_to_their_env(name, env):
    assert reference_returns(name).random == D4RL_REFERENCE_RETURNS[env][0]


def test_scores_are_elementwise_on_arrays():
    random, expert = D4RL_REFERENCE_RETURNS["hopper"]
    scores = normalized_score("hopper-medium-v2", np.array([random, expert, 2 * expert - random]))
    np.testing.assert_allclose(scores, [0.0, 100.0, 200.0])


@pytest.mark.parametrize("name", ["HalfCheetah-v5", "halfcheetah-medium-v5", "ant-medium-v2", "pendulum"])
def test_names_outside_the_table_are_refused(name):
    with pytest.raises(ScoreError, match="pass the dataset"):
        normalized_score(name, 1.0)


def test_a_datasets_own_references_win_over_the_table():
    ds = EpisodeDataset([], "HalfCheetah-v5", {"dataset_name": "halfcheetah-medium-v2",
                                               "ref_min_score": -300.0, "ref_max_score": 6000.0})
    assert normalized_score(ds, -300.0) == pytest.approx(0.0)
    assert normalized_score(ds, 6000.0) == pytest.approx(100.0)
    assert reference_returns(ds).source.startswith("metadata of")
    del ds.metadata["ref_max_score"]  # incomplete references: D4RL's name decides
    assert reference_returns(ds).expert == D4RL_REFERENCE_RETURNS["halfcheetah"][1]
    ds.metadata["dataset_name"] = "my-data"
    with pytest.raises(ScoreError, match="records no reference returns"):
        normalized_score(ds, 1.0)


def test_references_must_span_a_range():
    with pytest.raises(ScoreError, match="must exceed"):
        ReferenceReturns(5.0, 5.0, "test")
    ds = EpisodeDataset([], "X-v0", {"ref_min_score": 10.0, "ref_max_score": 3.0})
    with pytest.raises(ScoreError, match="expert return 3.0 must exceed the random return 10.0"):
        normalized_score(ds, 1.0)
