"""What every field's benchmark shares: the machine line, the commit, peak memory, fresh processes.

A benchmark report names the exact machine and commit it ran on, and each run happens in a fresh
process so that its peak memory is its own (`in_fresh_process`, `peak_rss_mb`); `peak_growth_mb`
measures the memory one step of work adds. `split_done` lets an interrupted benchmark resume from
the rows its report already holds.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C")


def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a new spawned interpreter; exceptions propagate. fn must be importable (top level)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def split_done(cases: Sequence[C], rows: Sequence[dict]) -> tuple[list[dict], list[C]]:
    """For `--resume`: the earlier result rows that answer a planned case, in plan order, and the
    cases still to run. A row answers a case (a dataclass) when it holds every field of the case
    with the same value, so a changed setting (steps, seeds, threads...) is run again."""
    done, todo = [], []
    for case in cases:
        fields = asdict(case)
        row = next((r for r in rows if all(k in r and r[k] == v for k, v in fields.items())), None)
        if row is None:
            todo.append(case)
        else:
            done.append(row)
    return done, todo


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"/proc/self/status has no {key} line")


def peak_growth_mb(fn: Callable[[], Any]) -> float:
    """The peak resident memory fn() adds over what is in use before it, in MiB.

    On Linux the peak is first reset to the current use (`/proc/self/clear_refs`), so that an
    earlier, higher peak cannot hide fn's; `peak_rss_mb` then counts from that reset on. Elsewhere
    it is the growth of the process peak (0 when an earlier peak was higher).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        before = _status_mb("VmRSS")
    except OSError:
        before = peak_rss_mb()
        fn()
        return peak_rss_mb() - before
    fn()
    return _status_mb("VmHWM") - before


def machine() -> str:
    """CPU model, cores, OS, Python, torch and its thread count, on one line."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads")


def git_commit() -> str:
    """The short HEAD commit, with "+dirty" when tracked files have changes; "unknown" outside git."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")
