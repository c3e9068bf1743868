"""The FNO peer: neuralop's FNO behind the PDE model contract, trainable by the experiment."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

pytest.importorskip("neuralop")

from pde.experiment import build_config, run_experiment  # noqa: E402
from pde.models import MODELS, FieldShapeError, build_model  # noqa: E402
from pde.peers import FNOPeer, FNOPeerConfig, MissingPeerError  # noqa: E402
from pde.surrogate import Surrogate  # noqa: E402
from seqlab.config import ConfigError  # noqa: E402
from seqlab.errors import SeqlabError  # noqa: E402
from seqlab.tracking import MemoryTracker  # noqa: E402
from seqlab.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from seqlab.train.runtime import seed_everything  # noqa: E402

SMALL = {"n_modes": 4, "hidden_channels": 8, "n_layers": 2}


def test_maps_frames_and_channels_per_the_contract():
    model = build_model("fno", {"in_frames": 3, "out_frames": 2, "channels": 2, **SMALL})
    assert isinstance(model, FNOPeer)
    assert model(torch.randn(4, 3, 2, 16, 12)).shape == (4, 2, 2, 16, 12)
    line = build_model("fno", {"in_frames": 2, "out_frames": 1, "channels": 1, "spatial_dims": 1, **SMALL})
    assert line(torch.randn(3, 2, 1, 32)).shape == (3, 1, 1, 32)


def test_stacks_frames_frame_major_into_the_library_model():
    torch.manual_seed(0)
    model = build_model("fno", {"in_frames": 3, "out_frames": 2, "channels": 2, **SMALL}).eval()
    x = torch.randn(2, 3, 2, 8, 8)
    stacked = torch.cat([x[:, t] for t in range(3)], dim=1)  # channels t * C + c
    expected = model.fno(stacked)  # (B, T_out * C, Y, X)
    out = model(x)
    for t in range(2):
        torch.testing.assert_close(out[:, t], expected[:, 2 * t : 2 * t + 2])


def test_wrong_input_shape_is_a_clear_error():
    model = build_model("fno", {"in_frames": 3, **SMALL})
    with pytest.raises(FieldShapeError, match=r"FNO input x has shape \(2, 4, 1, 8, 8\); expected \(B, T_in=3"):
        model(torch.randn(2, 4, 1, 8, 8))


@pytest.mark.parametrize(("field", "value"), [("n_modes", 0), ("hidden_channels", -1), ("spatial_dims", 4),
                                             ("domain_padding", 1.5), ("factorization", "svd"), ("rank", 0.0)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises((ConfigError, ValueError), match=field):
        FNOPeerConfig(**{field: value})


def test_state_dict_holds_tensors_only_and_round_trips(tmp_path):
    model = build_model("fno", {"in_frames": 2, **SMALL})
    state = model.state_dict()
    assert "_metadata" not in state and all(isinstance(v, torch.Tensor) for v in state.values())
    save_checkpoint({"model": state}, tmp_path / "fno.pt")
    copy = build_model("fno", {"in_frames": 2, **SMALL})
    copy.load_state_dict(load_checkpoint(tmp_path / "fno.pt")["model"])  # weights_only loading
    x = torch.randn(1, 2, 1, 8, 8)
    torch.testing.assert_close(copy.eval()(x), model.eval()(x))


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuralop", None)
    monkeypatch.setitem(sys.modules, "neuralop.models", None)
    monkeypatch.delitem(sys.modules, "pde.peers")
    # A fresh import defines a fresh MissingPeerError class: match its bases and the message.
    with pytest.raises(ImportError, match=r"pip install -e '\.\[bench\]'") as raised:
        importlib.import_module("pde.peers")
    assert isinstance(raised.value, SeqlabError) and type(raised.value).__name__ == MissingPeerError.__name__
    with pytest.raises(ImportError, match="neuraloperator"):
        MODELS.get("fno")


def test_trains_one_step_through_the_experiment(tmp_path):
    overrides = {
        "model": {"in_frames": 2, "out_frames": 1, **SMALL},
        "data": {"dataset": "ns_tiny", "n_train": 6, "n_val": 1, "n_test": 1, "rollout_steps": 3},
        "train": {"max_steps": 1, "epochs": 1, "batch_size": 4, "warmup_steps": 0, "precision": "fp32",
                  "progress": False},
        "output_dir": str(tmp_path),
    }
    cfg = build_config("fno_ns64", overrides)
    result = run_experiment(cfg, tracker=MemoryTracker())
    assert result.fit.global_step == 1
    assert result.test["test/rollout_steps"] == 3 and torch.isfinite(torch.tensor(result.test["test/rel_l2"]))
    surrogate = Surrogate.load(result.surrogate_path)
    trained = surrogate.build()
    seed_everything(cfg.train.seed)  # the experiment's initialization, before the one step
    initial = MODELS.get("fno")(result.config.model)
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, initial.state_dict()[k])]
    assert changed, "one optimizer step left every weight unchanged"
