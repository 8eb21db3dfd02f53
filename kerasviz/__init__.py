"""kerasviz: see what convolutional networks learned. Fast, batched feature visualization for Keras 3.

The public API is re-exported here by name; each name is imported from its module on first use, so
`import kerasviz` (and the command line's `--help`) does not import TensorFlow or Keras until a name that
needs them is used. Sub-namespaces keep their documented names: `kv.objectives.channel`, `kv.presets.get`,
`kv.transforms.jitter`, `kv.atlas.layer_atlas`, ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

importlib.import_module("kerasviz.framework").quiet_log_level()  # see kerasviz.framework

# sub-namespace -> the module it is
_MODULES = {
    "accentuation": "kerasviz.accentuation",
    "analysis": "kerasviz.analysis",
    "atlas": "kerasviz.atlas",
    "backend": "kerasviz.engine.backend",
    "inversion": "kerasviz.inversion",
    "catalog": "kerasviz.catalog",
    "cli": "kerasviz.cli",
    "distribute": "kerasviz.engine.distribute",
    "engine": "kerasviz.engine",
    "examples": "kerasviz.examples",
    "framework": "kerasviz.framework",
    "gallery": "kerasviz.atlas.gallery",
    "images": "kerasviz.images",
    "names": "kerasviz.names",
    "nets": "kerasviz.nets",
    "objectives": "kerasviz.engine.objectives",
    "optimize": "kerasviz.optimize",
    "params": "kerasviz.engine.params",
    "plot": "kerasviz.plot",
    "plot_weights": "kerasviz.plot_weights",
    "presets": "kerasviz.engine.presets",
    "progress": "kerasviz.engine.progress",
    "training": "kerasviz.training",
    "transforms": "kerasviz.engine.transforms",
    "updates": "kerasviz.engine.updates",
    "weights": "kerasviz.weights",
}
# public name -> the module that defines it
_NAMES = {
    "Accentuation": "kerasviz.accentuation", "accentuate": "kerasviz.accentuation",
    "activations": "kerasviz.analysis", "dream": "kerasviz.inversion", "heatmap": "kerasviz.analysis",
    "mean_activations": "kerasviz.analysis", "predict": "kerasviz.analysis", "top_filters": "kerasviz.analysis",
    "LayerAtlas": "kerasviz.atlas", "ModelAtlas": "kerasviz.atlas", "layer_atlas": "kerasviz.atlas",
    "model_atlas": "kerasviz.atlas",
    "FilterAtlas": "kerasviz.training", "caricature": "kerasviz.inversion",
    "dataset_examples": "kerasviz.examples", "examples_figure": "kerasviz.plot",
    "receptive_field": "kerasviz.nets",
    "make_gallery": "kerasviz.atlas.gallery", "write_gallery": "kerasviz.atlas.gallery",
    "center_crop": "kerasviz.images", "deprocess": "kerasviz.images", "load_image": "kerasviz.images",
    "save_image": "kerasviz.images", "show": "kerasviz.images", "stitch": "kerasviz.images",
    "to_uint8": "kerasviz.images",
    "Network": "kerasviz.nets", "Preprocessing": "kerasviz.nets", "as_network": "kerasviz.nets",
    "feature_extractor": "kerasviz.nets", "find_layer": "kerasviz.nets", "get_model": "kerasviz.nets",
    "list_layers": "kerasviz.nets", "list_models": "kerasviz.catalog",
    "Plan": "kerasviz.optimize", "Result": "kerasviz.optimize", "plan": "kerasviz.optimize",
    "render": "kerasviz.optimize", "visualize_filters": "kerasviz.optimize",
    "Preset": "kerasviz.engine.presets", "list_presets": "kerasviz.engine.presets",
    "spectrum": "kerasviz.engine.params",
    "IncomingChannels": "kerasviz.weights", "expanded_weights": "kerasviz.weights", "kernels": "kerasviz.weights",
    "top_inputs": "kerasviz.weights",
    "concepts": "kerasviz.concepts", "Concepts": "kerasviz.concepts.factor",
    "Samples": "kerasviz.concepts.sampling", "sample_activations": "kerasviz.concepts.sampling",
    "ActivationAtlas": "kerasviz.concepts.activation_atlas", "activation_atlas": "kerasviz.concepts.activation_atlas",
}

# `kv.concepts` is a function that shares its name with its (light) package: bound here, after the package's
# import, so that no later import of `kerasviz.concepts.*` can leave the package in its place
from kerasviz.concepts import concepts  # noqa: E402, F401

# sub-namespaces that work without Keras (the command line imports it itself, after parsing its arguments)
_NO_FRAMEWORK = {"cli", "framework", "names", "catalog"}

__all__ = sorted(set(_NAMES) | (set(_MODULES) - {"cli", "engine"}) | {"__version__"})


def __getattr__(name: str):
    if (name in _NAMES or name in _MODULES) and name not in _NO_FRAMEWORK:
        importlib.import_module("kerasviz.framework").start()  # quietly, like the command line
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'kerasviz' has no attribute {name!r}")
    globals()[name] = value  # look it up once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from kerasviz.accentuation import Accentuation, accentuate  # noqa: F401
    from kerasviz.analysis import activations, heatmap, mean_activations, predict, top_filters  # noqa: F401
    from kerasviz.atlas import LayerAtlas, ModelAtlas, layer_atlas, model_atlas  # noqa: F401
    from kerasviz.atlas.gallery import make_gallery, write_gallery  # noqa: F401
    from kerasviz.catalog import list_models  # noqa: F401
    from kerasviz.concepts.activation_atlas import ActivationAtlas, activation_atlas  # noqa: F401
    from kerasviz.concepts.factor import Concepts  # noqa: F401
    from kerasviz.concepts.sampling import Samples, sample_activations  # noqa: F401
    from kerasviz.engine.params import spectrum  # noqa: F401
    from kerasviz.engine.presets import Preset, list_presets  # noqa: F401
    from kerasviz.examples import dataset_examples  # noqa: F401
    from kerasviz.images import center_crop, deprocess, load_image, save_image, show, stitch, to_uint8  # noqa: F401
    from kerasviz.inversion import caricature, dream  # noqa: F401
    from kerasviz.nets import (  # noqa: F401
        Network,
        Preprocessing,
        as_network,
        feature_extractor,
        find_layer,
        get_model,
        list_layers,
        receptive_field,
    )
    from kerasviz.optimize import Plan, Result, plan, render, visualize_filters  # noqa: F401
    from kerasviz.plot import examples_figure  # noqa: F401
    from kerasviz.training import FilterAtlas  # noqa: F401
    from kerasviz.weights import IncomingChannels, expanded_weights, kernels, top_inputs  # noqa: F401
