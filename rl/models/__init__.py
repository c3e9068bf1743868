"""Offline RL models by registry name.

Every model maps a `rl.sampling.TrajectoryBatch` of K steps to predicted actions (B, K, A) in
[-1, 1], is built from its config dataclass (`Model.config_class`), and has `config.context_len`,
the number of past steps it conditions on.
"""

from seqlab.registry import Registry

MODELS = Registry(
    "RL model",
    {
        "agentic_transformer": "rl.models.agentic_transformer:AgenticTransformer",
        "bc": "rl.models.bc:BehaviorCloning",
        "decision_transformer": "rl.models.decision_transformer:DecisionTransformer",
    },
)
