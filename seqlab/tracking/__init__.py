"""Tracking: the Tracker protocol, MLflow glue (imported lazily), and an in-memory tracker."""

from seqlab.tracking.base import MemoryTracker, NullTracker, Tracker, environment_tags

__all__ = ["MemoryTracker", "NullTracker", "Tracker", "environment_tags"]
