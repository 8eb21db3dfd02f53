"""kerasviz: see what convolutional networks learned. Fast, batched feature visualization for Keras 3."""

from kerasviz import images, models, objectives, params, presets, progress, transforms, updates
from kerasviz.images import center_crop, deprocess, load_image, save_image, show, stitch, to_uint8
from kerasviz.models import (
    Network,
    Preprocessing,
    as_network,
    feature_extractor,
    find_layer,
    get_model,
    list_layers,
    list_models,
)
from kerasviz.optimize import Result, render, visualize_filters
from kerasviz.presets import Preset, list_presets

__version__ = "0.1.0"

__all__ = [
    "Network", "Preprocessing", "Preset", "Result", "as_network", "center_crop", "deprocess",
    "feature_extractor", "find_layer", "get_model", "images", "list_layers", "list_models",
    "list_presets", "load_image", "models", "objectives", "params", "presets", "progress", "render", "save_image",
    "show", "stitch", "to_uint8", "transforms", "updates", "visualize_filters",
]
