"""Atlases: every filter of a layer or a model, cached per filter and resumable, and the static gallery site.

`layer_atlas` and `model_atlas` build one `optimize.plan` per layer and run it chunk by chunk; finished
filters go to the cache (`atlas.cache`) as they finish; `atlas.gallery` writes the HTML site;
`atlas.views` computes the explorer's per-unit views (dataset examples, heatmaps), imported on first use.
"""

import importlib

from kerasviz.atlas.atlases import LayerAtlas, ModelAtlas, layer_atlas, model_atlas
from kerasviz.atlas.cache import (
    CACHE_ENV,
    CACHE_VERSION,
    FilterCache,
    cache_key,
    cache_settings,
    default_cache_dir,
    slug,
    weights_fingerprint,
)

__all__ = [
    "CACHE_ENV", "CACHE_VERSION", "FilterCache", "LayerAtlas", "ModelAtlas", "cache_key",
    "cache_settings", "default_cache_dir", "layer_atlas", "model_atlas", "slug",
    "weights_fingerprint",
]


_LAZY_MODULES = ("views",)  # imported on first use: `kv.atlas.views` without an import of its own


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
