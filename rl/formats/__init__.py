"""Readers and writers of offline RL file formats, all mapping to `rl.data.EpisodeDataset`.

`d4rl`: D4RL's flat HDF5 layout (read and write); `minari`: Minari datasets (read and write,
through the `minari` package); `kzl`: the pickle of the Decision Transformer reference code (read).
`rl.data.load_dataset` picks the reader from the path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    For writers that need a file name rather than a file object (h5py), so a reader never sees
    a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
