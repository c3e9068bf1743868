"""What every field's experiment shares about its MLflow run: the settings, and reattaching a
resumed run to the MLflow run it started (recorded in `<run dir>/run.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.tracking.base import NullTracker, Tracker
from seqlab.train.checkpoint import atomic_write_bytes


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True
    """Log the run to MLflow (False: log nothing)."""
    experiment: str = "seqlab"
    """MLflow experiment name; each field sets its own default (seqlab-forecasting, seqlab-pde, seqlab-rl)."""
    tracking_uri: str | None = None
    """MLflow store; None: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db."""
    run_name: str | None = None
    log_checkpoint: bool = True
    """Log the best checkpoint as an artifact."""
    plots: bool = True
    """Log figures (loss curves and the field's own plots)."""


def open_tracker(cfg: TrackingConfig, run_dir: Path, run_name: str, resume: bool) -> Tracker:
    """An MLflow tracker for this run; on resume, the MLflow run the interrupted attempt started."""
    if not cfg.enabled:
        return NullTracker()
    from seqlab.tracking.mlflow import MlflowTracker

    previous = read_json(run_dir / "run.json").get("run_id") if resume else None
    tracker = MlflowTracker(cfg.experiment, run_name=cfg.run_name or run_name, tracking_uri=cfg.tracking_uri,
                            run_id=previous)
    write_json(run_dir / "run.json", {"run_id": tracker.run_id, "tracking_uri": tracker.tracking_uri})
    return tracker


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as JSON atomically."""
    text = json.dumps(payload, indent=2, default=str).encode()
    atomic_write_bytes(path, lambda f: f.write(text))
