"""The Tracker protocol, and trackers that keep everything in memory or drop it.

Library code logs through a Tracker, never through `mlflow.*` directly, so loops and models stay
free of a tracking backend and tests can inspect what was logged.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    """Where a run's params, metrics, tags and files go. Metric names read `split/metric`."""

    @property
    def run_id(self) -> str | None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_text(self, text: str, name: str) -> None: ...

    def log_figure(self, figure: Any, name: str) -> None: ...

    def flush(self) -> None: ...

    def close(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Logs nothing."""

    run_id = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def log_figure(self, figure: Any, name: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


@dataclass
class MemoryTracker:
    """Keeps everything in lists and dicts; for tests and notebooks."""

    run_id: str | None = "memory"
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    status: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.extend((k, float(v), step) for k, v in metrics.items())

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        name = Path(path).name
        self.artifacts[f"{artifact_path}/{name}" if artifact_path else name] = str(path)

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text

    def log_figure(self, figure: Any, name: str) -> None:
        self.figures.append(name)

    def flush(self) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        self.status = status

    def history(self, key: str) -> list[tuple[int, float]]:
        """(step, value) pairs logged for one metric, in logging order."""
        return [(step, value) for k, value, step in self.metrics if k == key]


def environment_tags() -> dict[str, str]:
    """Versions and the git commit of the working tree, for reproducibility."""
    import torch

    from seqlab import __version__

    tags = {
        "seqlab.version": __version__,
        "torch.version": torch.__version__,
        "python.version": platform.python_version(),
        "host.machine": platform.machine(),
    }
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["seqlab.git.dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower()
    return tags


def _git(*args: str) -> str | None:
    """Output of a git command in the source tree of seqlab, or None outside a checkout."""
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip()
