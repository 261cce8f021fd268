"""The pipeline engine: configs, the stage graph, cache and manifests, the runner."""
from . import compat  # noqa: F401  (stack fixes first)

__version__ = "0.1.0"
