"""seqlab core: shared building blocks, the Trainer, configs, tracking and the CLI.

The core knows nothing of any field (forecasting, pde, rl); fields plug in through entry points.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
