"""Networks: backbones (torchvision, output stride 16) and the CAM/BAS classifiers.

Other model modules (BAO head, affinity net) live beside these and import what they need directly.
"""
import pipeline.compat  # noqa: F401  (stack fixes before torch/torchvision)

from .backbones import BACKBONES, Backbone, build_backbone
from .classifier import Classifier, build_classifier, load_classifier, save_classifier

__all__ = ["BACKBONES", "Backbone", "Classifier", "build_backbone", "build_classifier", "load_classifier",
           "save_classifier"]
