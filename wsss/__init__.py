"""The WSSS library the pipeline stages compose (datasets, maps, metrics, CRF, models, random walk)."""
import pipeline.compat  # noqa: F401  (stack fixes before torch/torchvision/mmcv are imported)
