"""Where a field's dataset files are looked for.

One rule for every field: an explicit directory alone; otherwise `$SEQLAB_DATA_DIR` (its
`<field>` subfolder when it has one), then `../shared/data/<field>` beside the repository or
beside the working directory, when they exist. A field may append folders of its own (e.g. files
shipped inside its package).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SEQLAB_DATA_DIR"
REPO_PARENT = Path(__file__).resolve().parents[2]


def shared_data_dir(field: str) -> Path:
    """`../shared/data/<field>` beside the repository (it may not exist)."""
    return REPO_PARENT / "shared" / "data" / field


def field_data_dirs(field: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders to search for `field`'s dataset files, in order."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs: list[Path] = []
    if os.environ.get(ENV_VAR):
        env = Path(os.environ[ENV_VAR])
        dirs.append(env / field if (env / field).is_dir() else env)
    for shared in (shared_data_dir(field), Path.cwd().parent / "shared" / "data" / field):
        if shared.is_dir() and shared not in dirs:
            dirs.append(shared)
    return dirs
