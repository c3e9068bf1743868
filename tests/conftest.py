"""Shared fixtures: every test runs in its own working directory with its own MLflow store."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_workdir(tmp_path, monkeypatch):
    """Keep outputs/, mlflow.db and mlruns/ out of the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path
