"""kerasviz: see what convolutional networks learned. Fast, batched feature visualization for Keras 3."""

from kerasviz import (
    analysis,
    atlas,
    callbacks,
    data,
    distribute,
    gallery,
    images,
    models,
    objectives,
    params,
    plot,
    plot_weights,
    presets,
    progress,
    transforms,
    updates,
    weights,
)
from kerasviz.analysis import activations, dream, heatmap, mean_activations, predict, top_filters
from kerasviz.atlas import LayerAtlas, ModelAtlas, layer_atlas, model_atlas
from kerasviz.callbacks import FilterAtlas
from kerasviz.caricature import caricature
from kerasviz.data import dataset_examples, examples_figure, receptive_field
from kerasviz.gallery import make_gallery, write_gallery
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
from kerasviz.weights import IncomingChannels, expanded_weights, kernels, top_inputs

__version__ = "0.1.0"

__all__ = [
    "FilterAtlas", "callbacks", "caricature", "data", "dataset_examples", "examples_figure", "receptive_field",
    "IncomingChannels", "LayerAtlas", "ModelAtlas", "Network", "Preprocessing", "Preset", "Result",
    "activations", "analysis", "as_network", "atlas", "center_crop", "deprocess", "distribute", "dream",
    "expanded_weights", "feature_extractor", "find_layer", "gallery", "get_model", "heatmap", "images",
    "kernels", "layer_atlas", "list_layers", "list_models", "list_presets", "load_image", "make_gallery",
    "mean_activations", "model_atlas", "models", "objectives", "params", "plot", "plot_weights", "predict",
    "presets", "progress", "render", "save_image", "show", "stitch", "to_uint8", "top_filters",
    "top_inputs", "transforms", "updates", "visualize_filters", "weights", "write_gallery",
]
