"""Decision Transformer, Agentic Transformer and BC: token order, masks, causality, training."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rl.data import Episode
from rl.models import MODELS
from rl.models.agentic_transformer import AgenticTransformer, AgenticTransformerConfig
from rl.models.bc import BCConfig, BehaviorCloning
from rl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from rl.sampling import ChainSampler, Preprocessing, SampledDataset, TrajectoryBatch, WindowSampler
from rl.task import ActionTask
from seqlab.errors import ConfigError
from seqlab.train import TrainConfig
from seqlab.train.trainer import Trainer

S, A, K = 3, 2, 6


def tiny(model_cls, **overrides):
    configs = {
        DecisionTransformer: DecisionTransformerConfig(state_dim=S, action_dim=A, context_len=K, d_model=16,
                                                       n_layers=2, n_heads=2, max_ep_len=30),
        AgenticTransformer: AgenticTransformerConfig(state_dim=S, action_dim=A, context_len=K, d_model=16,
                                                     n_layers=2, n_heads=2, max_ep_len=30, n_trajectories=2),
        BehaviorCloning: BCConfig(state_dim=S, action_dim=A, context_len=2, d_model=16, n_layers=2),
    }
    torch.manual_seed(0)
    return model_cls(dataclasses.replace(configs[model_cls], **overrides)).eval()


def random_batch(b=2, k=K, seed=0) -> TrajectoryBatch:
    g = torch.Generator().manual_seed(seed)
    return TrajectoryBatch(
        states=torch.randn(b, k, S, generator=g), actions=torch.rand(b, k, A, generator=g) * 2 - 1,
        returns_to_go=torch.randn(b, k, generator=g), rewards=torch.randn(b, k, generator=g),
        completions=torch.randint(0, 2, (b, k), generator=g), timesteps=torch.arange(k).repeat(b, 1) + 3,
        padding=None, loss_mask=torch.ones(b, k, dtype=torch.bool))


def test_decision_transformer_interleaves_return_state_action_per_step():
    model = tiny(DecisionTransformer)
    batch = random_batch()
    time = model.gpt.timestep(batch.timesteps)  # (B, K, D)
    per_modality = [model.embed_return(batch.returns_to_go[..., None]), model.embed_state(batch.states),
                    model.embed_action(batch.actions)]
    tokens = model.embed(batch)  # (B, 3K, D)
    for t in range(K):
        for m, embedded in enumerate(per_modality):
            expected = model.gpt.embed_norm(embedded[:, t] + time[:, t])  # same timestep for the 3 tokens
            torch.testing.assert_close(tokens[:, 3 * t + m], expected)


def test_agentic_transformer_interleaves_five_tokens_per_step():
    model = tiny(AgenticTransformer)
    batch = random_batch()
    time = model.gpt.timestep(batch.timesteps)
    per_modality = [model.embed_return(batch.returns_to_go[..., None]), model.embed_state(batch.states),
                    model.embed_action(batch.actions), model.embed_reward(batch.rewards[..., None]),
                    model.embed_completion(batch.completions)]
    tokens = model.embed(batch)  # (B, 5K, D)
    for t in range(K):
        for m, embedded in enumerate(per_modality):
            torch.testing.assert_close(tokens[:, 5 * t + m], model.gpt.embed_norm(embedded[:, t] + time[:, t]))


def replace_steps(batch: TrajectoryBatch, steps: slice, **fields: torch.Tensor) -> TrajectoryBatch:
    changed = {}
    for name, value in fields.items():
        tensor = getattr(batch, name).clone()
        tensor[:, steps] = value[:, steps]
        changed[name] = tensor
    return batch._replace(**changed)


@pytest.mark.parametrize("model_cls", [DecisionTransformer, AgenticTransformer])
def test_actions_depend_on_the_past_and_present_only(model_cls):
    model = tiny(model_cls)
    batch, other = random_batch(seed=0), random_batch(seed=1)
    before = model(batch)
    t = 3
    future = replace_steps(batch, slice(t + 1, None), states=other.states, actions=other.actions,
                           returns_to_go=other.returns_to_go, rewards=other.rewards, completions=1 - batch.completions)
    after = model(future)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1])
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])
    # a_t is not visible to its own prediction (read at s_t), but it is to the next step's.
    own_action = model(replace_steps(batch, slice(t, t + 1), actions=other.actions))
    torch.testing.assert_close(own_action[:, t], before[:, t])
    assert not torch.allclose(own_action[:, t + 1], before[:, t + 1])
    # R̂_t and s_t are.
    for name in ("returns_to_go", "states"):
        changed = model(replace_steps(batch, slice(t, t + 1), **{name: getattr(other, name)}))
        assert not torch.allclose(changed[:, t], before[:, t])


@pytest.mark.parametrize("attention_dropout", [0.0, 0.1])
def test_reading_only_the_state_tokens_equals_the_full_pass_read_there(attention_dropout):
    """The last block computed at the read outputs only (with attention dropout: their queries only)
    gives the hidden states of a full pass over every token, padding included."""
    model = tiny(DecisionTransformer, attention_dropout=attention_dropout)
    assert model.gpt.query_subset == (attention_dropout > 0)
    batch = random_batch()
    padding = torch.zeros(2, K, dtype=torch.bool)
    padding[0, :2] = True
    tokens, token_padding = model._tokens(batch._replace(padding=padding))
    outputs = slice(model.state_token, None, model.tokens_per_step)
    full = model.gpt(tokens, token_padding)
    torch.testing.assert_close(model.gpt(tokens, token_padding, outputs=outputs), full[:, outputs])


@pytest.mark.parametrize("model_cls", [DecisionTransformer, AgenticTransformer])
def test_left_and_right_padded_windows_give_the_same_actions_for_real_steps(model_cls):
    model = tiny(model_cls)
    n_real = 4
    real = random_batch(b=2, k=n_real, seed=0)
    junk = random_batch(b=2, k=K - n_real, seed=5)  # padded steps hold junk: the mask must hide it
    junk = junk._replace(states=junk.states * 100)
    join = lambda first, second: TrajectoryBatch(  # noqa: E731
        *(torch.cat([a, b], dim=1) for a, b in zip(first[:6], second[:6], strict=True)), None,
        torch.cat([first.loss_mask, second.loss_mask], 1))
    left = join(junk, real)._replace(padding=torch.arange(K).repeat(2, 1) < K - n_real)
    right = join(real, junk)  # right padding: the causal mask alone hides it
    unpadded = model(real)
    torch.testing.assert_close(model(left)[:, K - n_real :], unpadded)
    torch.testing.assert_close(model(right)[:, :n_real], unpadded)
    # Without its mask the left padding leaks into the real steps: the mask is what the test checks.
    assert not torch.allclose(model(left._replace(padding=None))[:, K - n_real :], unpadded)


@pytest.mark.parametrize("model_cls", [DecisionTransformer, AgenticTransformer])
def test_timesteps_past_max_ep_len_share_the_last_embedding_row(model_cls):
    model = tiny(model_cls, max_ep_len=10)
    batch = random_batch()
    late = model(batch._replace(timesteps=torch.full_like(batch.timesteps, 10_000)))
    clipped = model(batch._replace(timesteps=torch.full_like(batch.timesteps, 9)))
    torch.testing.assert_close(late, clipped)
    assert not torch.allclose(model(batch._replace(timesteps=torch.full_like(batch.timesteps, 8))), clipped)


def test_bc_sees_only_its_last_states_and_optionally_the_return():
    model = tiny(BehaviorCloning)  # context_len 2: states t-1 and t
    batch, other = random_batch(seed=0), random_batch(seed=1)
    before = model(batch)
    old = model(replace_steps(batch, slice(0, 2), states=other.states))  # steps 0, 1 feed predictions 0..2
    torch.testing.assert_close(old[:, 3:], before[:, 3:])
    assert not torch.allclose(old[:, 2], before[:, 2])
    torch.testing.assert_close(model(batch._replace(returns_to_go=other.returns_to_go)), before)
    conditioned = tiny(BehaviorCloning, condition_on_return=True)
    assert not torch.allclose(conditioned(batch._replace(returns_to_go=other.returns_to_go)), conditioned(batch))


def test_agentic_transformer_training_takes_the_fused_causal_attention_path(monkeypatch):
    """Right-padded chains need no explicit mask, so SDPA keeps its memory-efficient kernel."""
    episodes = synthetic_episodes()
    prep = Preprocessing.from_episodes(episodes)
    model = tiny(AgenticTransformer).train()
    batch = ChainSampler(episodes, prep, context_len=K, n_trajectories=2).sample(np.random.default_rng(0), 4)
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((kwargs.get("attn_mask"), kwargs.get("is_causal"), kwargs.get("dropout_p")))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    ActionTask().training_step(model, batch).backward()
    assert calls and all(mask is None and causal and dropout == 0.0 for mask, causal, dropout in calls)


def synthetic_episodes(n=6, seed=0) -> list[Episode]:
    """Episodes whose action is a fixed function of the state, so the loss can fall."""
    rng = np.random.default_rng(seed)
    episodes = []
    for length in rng.integers(8, 20, size=n):
        states = rng.normal(size=(length, S)).astype(np.float32)
        actions = np.tanh(states[:, :A] - states[:, 1:]).astype(np.float32)
        episodes.append(Episode(states, actions, rng.random(length).astype(np.float32),
                                np.zeros(length, bool), np.zeros(length, bool)))
    return episodes


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_trains_with_the_trainer(name, tmp_path):
    model_cls = MODELS.get(name)
    model = tiny(model_cls).train()
    episodes = synthetic_episodes()
    prep = Preprocessing.from_episodes(episodes)
    k = model.config.context_len
    sampler = (ChainSampler(episodes, prep, k, n_trajectories=2) if model_cls is AgenticTransformer
               else WindowSampler(episodes, prep, k))
    task = ActionTask()
    probe = sampler.sample(np.random.default_rng(99), 64)
    model.eval()
    with torch.no_grad():
        before = task.training_step(model, probe).item()
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=3e-3, weight_decay=1e-4,
                         schedule="constant", warmup_steps=5, grad_clip=0.25, patience=None, device="cpu",
                         precision="fp32", progress=False)
    Trainer(model, task, config, tmp_path).fit(SampledDataset(sampler, n_samples=60 * 16, seed=1))
    model.eval()
    with torch.no_grad():
        after = task.training_step(model, probe).item()
        assert model(probe).shape == probe.actions.shape
    assert after < 0.7 * before


def test_loss_covers_only_masked_steps():
    model = tiny(DecisionTransformer)
    batch = random_batch()
    mask = torch.zeros(2, K, dtype=torch.bool)
    mask[:, 2:4] = True
    predicted = model(batch)
    expected = ((predicted[:, 2:4] - batch.actions[:, 2:4]) ** 2).mean()
    torch.testing.assert_close(ActionTask().training_step(model, batch._replace(loss_mask=mask)), expected)


def test_configs_reject_bad_values_naming_the_field():
    with pytest.raises(ConfigError, match="state_dim"):
        DecisionTransformer(DecisionTransformerConfig())
    with pytest.raises(ConfigError, match="action_dim"):
        BCConfig(action_dim=0)
    with pytest.raises(ValueError, match="n_heads"):
        DecisionTransformerConfig(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="dropout"):
        AgenticTransformerConfig(attention_dropout=1.0)
    with pytest.raises(ConfigError, match="min_trajectories"):
        AgenticTransformerConfig(n_trajectories=2, min_trajectories=3)


def test_paper_defaults():
    dt = DecisionTransformerConfig()
    assert (dt.d_model, dt.n_layers, dt.n_heads, dt.context_len, dt.dropout, dt.max_ep_len, dt.ff_width) == (
        128, 3, 1, 20, 0.1, 1000, 512)
    at = AgenticTransformerConfig()
    assert (at.d_model, at.n_layers, at.n_heads, at.activation) == (128, 3, 1, "relu")
