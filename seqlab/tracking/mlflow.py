"""MLflow behind the Tracker protocol.

With nothing configured, runs go to MLflow's default embedded SQLite store, `mlflow.db` in the
working directory (artifacts under `mlruns/`), so the model registry works without a server;
`MLFLOW_TRACKING_URI` or an explicit URI points it elsewhere. mlflow is imported only when a
tracker is created, keeping the CLI fast. Metrics are buffered and sent in batches: one
`log_metric` call costs a SQL commit or an HTTP round trip (~18 ms here).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000  # MLflow's limit on one param value
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI > MLFLOW_TRACKING_URI > sqlite:///<cwd>/mlflow.db (MLflow's own default)."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


class MlflowTracker:
    """One MLflow run.

    Args:
        experiment: experiment name; created when missing.
        run_name: display name of a new run.
        tracking_uri: see `resolve_tracking_uri`.
        run_id: reopen this existing run (to continue a resumed training) instead of creating one.
        flush_every: send buffered metrics once this many are waiting.
    """

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        run_id: str | None = None,
        flush_every: int = 200,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        if run_id is not None:
            run = self.client.get_run(run_id)
            self.client.update_run(run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run = self.client.create_run(experiment_id, run_name=run_name)
        self._run_id = run.info.run_id
        self.experiment_id = run.info.experiment_id
        self.flush_every = flush_every
        self._pending: list[Any] = []

    @property
    def run_id(self) -> str:
        return self._run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        existing = self.client.get_run(self._run_id).data.params
        items = [p for p in items if p.key not in existing]  # a resumed run already has them
        for start in range(0, len(items), MAX_BATCH_PARAMS):
            self.client.log_batch(self._run_id, params=items[start : start + MAX_BATCH_PARAMS])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if len(self._pending) >= self.flush_every:
            self.flush()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self._run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self._run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self._run_id, text, name)

    def log_figure(self, figure: Any, name: str) -> None:
        self.client.log_figure(self._run_id, figure, name)

    def flush(self) -> None:
        while self._pending:
            chunk, self._pending = self._pending[:MAX_BATCH_METRICS], self._pending[MAX_BATCH_METRICS:]
            self.client.log_batch(self._run_id, metrics=chunk)

    def close(self, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self._run_id, status=status)

    def artifact_dir(self) -> Path | None:
        """Local directory of the run's artifacts, when the store keeps them on this machine."""
        uri = self.client.get_run(self._run_id).info.artifact_uri
        if uri.startswith("file://"):
            return Path(uri[len("file://") :])
        if "://" not in uri and not uri.startswith("mlflow-artifacts:"):
            return Path(uri)
        return None


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."

