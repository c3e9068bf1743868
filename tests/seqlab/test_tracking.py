import torch
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import TensorDataset

from seqlab.tracking.mlflow import MlflowTracker, resolve_tracking_uri
from seqlab.train import LossTask, Trainer, TrainConfig


def tiny_fit(tracker, out_dir):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = TensorDataset(x, x.sum(dim=1, keepdim=True))
    model = nn.Linear(3, 1)
    loss = LossTask(lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-2, progress=False, device="cpu", log_every=2)
    Trainer(model, loss, cfg, out_dir, tracker=tracker).fit(data, data)


def test_short_run_logs_params_metrics_and_artifacts_to_sqlite(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    tracker = MlflowTracker("unit", run_name="tiny", tracking_uri=uri)
    tracker.set_tags({"seqlab.seed": "0"})
    tracker.log_params({"train.lr": 0.01, "model.name": "linear", "long": "x" * 7000})
    tiny_fit(tracker, tmp_path / "run")
    tracker.log_artifact(tmp_path / "run" / "best.pt", "checkpoints")
    tracker.log_text("a: 1\n", "config.yaml")
    tracker.close()

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.01" and len(run.data.params["long"]) == 6000
    assert run.data.tags["seqlab.seed"] == "0"
    assert [m.step for m in client.get_metric_history(tracker.run_id, "val/loss")] == [1, 2, 3]
    assert len(client.get_metric_history(tracker.run_id, "train/loss_step")) == 6  # 12 steps, every 2nd
    artifacts = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert {"checkpoints", "config.yaml"} <= artifacts
    assert [a.path for a in client.list_artifacts(tracker.run_id, "checkpoints")] == ["checkpoints/best.pt"]


def test_metrics_are_buffered_until_flush(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    tracker = MlflowTracker("unit", tracking_uri=uri, flush_every=1000)
    client = MlflowClient(tracking_uri=uri)
    for step in range(5):
        tracker.log_metrics({"a": float(step)}, step=step)
    assert client.get_metric_history(tracker.run_id, "a") == []
    tracker.flush()
    assert [m.value for m in client.get_metric_history(tracker.run_id, "a")] == [0, 1, 2, 3, 4]


def test_reopening_a_run_continues_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    first = MlflowTracker("unit", tracking_uri=uri)
    first.log_params({"p": 1})
    first.log_metrics({"m": 1.0}, step=1)
    first.close("KILLED")
    again = MlflowTracker("unit", tracking_uri=uri, run_id=first.run_id)
    again.log_params({"p": 1})  # already there: not logged twice
    again.log_metrics({"m": 2.0}, step=2)
    again.close()
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(first.run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(first.run_id, "m")] == [1, 2]


def test_default_store_is_sqlite_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team-server:5000")
    assert resolve_tracking_uri() == "http://team-server:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
