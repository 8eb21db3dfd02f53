"""Concepts: what a layer knows, from the user's own images.

`sample_activations` (`sampling`) streams images through a model and keeps a seeded sample of a layer's
spatial activation vectors, memory bounded by a budget. `concepts` (`factor`) factorizes them with
scikit-learn into concepts, each with its channel composition, top image patches with heatmaps, a feature
visualization of its direction and its importance for a class.

This package is imported by `import kerasviz` (for `kv.concepts`, which is the function, not this package),
so it imports nothing heavy: its modules are imported on first use.
"""

from __future__ import annotations

import importlib

# public name -> the module of this package that defines it (imported on first use)
_NAMES = {
    "DEFAULT_BUDGET": "sampling", "Samples": "sampling", "sample_activations": "sampling",
    "Concepts": "factor", "Patch": "factor",
}

_LAZY_MODULES = ("sampling", "factor")


def concepts(model, layer: str, images, n: int = 8, *, class_index: int | None = None, **options):
    """Concepts of a layer: a factorization of its activations over images, each concept shown and scored.

    See `kerasviz.concepts.factor.concepts`, which this calls, for the method, the arguments and an example.
    """
    importlib.import_module("kerasviz.framework").start()
    factor = importlib.import_module("kerasviz.concepts.factor")  # (its `concepts` documents every option)
    return factor.concepts(model, layer, images, n, class_index=class_index, **options)


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        importlib.import_module("kerasviz.framework").start()
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted([*_NAMES, "concepts"])
