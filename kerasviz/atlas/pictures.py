"""A unit's other pictures, for the explorer: its negative (the image that drives it lowest) and a few diverse
pictures (its channel objective plus the diversity objective, in one batch), each with its score, cached per unit
like the atlas so that a gallery resumes.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from kerasviz import nets, optimize
from kerasviz.atlas import atlases
from kerasviz.atlas.cache import FilterCache, cache_key, cache_settings, default_cache_dir, slug
from kerasviz.engine import objectives, presets
from kerasviz.engine.progress import Callback, FilterBar

# the views `make_gallery(views=...)` can add, and those made from the user's images (`examples=`)
VIEWS = ("negative", "diverse", "alpha", "accentuated", "concepts", "atlas-map")
DATA_VIEWS = ("accentuated", "concepts", "atlas-map")
DIVERSE_COUNT = 4  # diverse pictures per unit (one batch: the diversity objective compares them)
DIVERSITY_WEIGHT = 1.0  # weight of `objectives.diversity` beside the unit's channel objective
COSTS = {  # what each view costs, shown beside its progress bar and in the docs
    "negative": "negative: one picture per unit (as long as the atlas)",
    "diverse": f"diverse: {DIVERSE_COUNT} pictures per unit, one batch each (up to {DIVERSE_COUNT}x the atlas)",
    "alpha": "alpha: one MACO picture per unit with its transparency map (none where the atlas has them)",
    "accentuated": "accentuated: each unit's top 3 examples accentuated, 32 per batch",
    "concepts": "concepts: one pass over the images per layer, a factorization, one batch of pictures",
    "atlas-map": "atlas-map: one pass over the images per layer, a UMAP map, one batch of icons per chunk",
}


@dataclasses.dataclass
class UnitPicture:
    """One picture of a unit.

    Attributes:
        image: uint8 `(H, W, C)`.
        score: the unit's mean activation in the picture.
        alpha: float32 `(H, W)` in [0, 1], its transparency map (MACO's), or None.
    """

    image: np.ndarray
    score: float
    alpha: np.ndarray | None = None


class _Advance(Callback):
    """Moves a `FilterBar` counted in units by each run's steps (`scale` units per image)."""

    def __init__(self, bar: FilterBar, scale: float = 1.0):
        self.bar, self.scale, self.size, self.last = bar, scale, 0.0, 0.0

    def on_begin(self, items: int, steps: int) -> None:
        self.size, self.last = items * self.scale, 0.0

    def on_step(self, record) -> None:
        done = self.size * record.step / max(record.steps, 1)
        self.bar.advance(done - self.last)
        self.last = done


def check_views(views) -> tuple[str, ...]:
    """`views` as a tuple of known names (a comma-separated str or a sequence), or a ValueError naming them."""
    from kerasviz.names import did_you_mean

    if views is None:
        return ()
    names = [v.strip() for v in views.split(",")] if isinstance(views, str) else [str(v) for v in views]
    out = []
    for name in filter(None, names):
        if name not in VIEWS:
            raise ValueError(f"Unknown view {name!r}. Expected some of {', '.join(VIEWS)}."
                             f"{did_you_mean(name, VIEWS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def negative_pictures(network: nets.Network, layer: str, filters, *, bar: FilterBar, cache_dir=None, preset=None,
                      **options) -> dict[int, UnitPicture]:
    """The picture that drives each unit lowest: the atlas of `-channel(layer)`, cached like the atlas (driving
    a leaky ReLU down is no trouble for Adam: it is scale-free, and there is no zero to cross).

    Args:
        network: a `Network`.
        layer: the layer's name or path.
        filters: the units.
        bar: the progress bar to move, counted in units.
        cache_dir, preset, **options: as in `kerasviz.atlas.layer_atlas` (the run's options and `Preset`
            fields; `progress` and `callbacks` are this function's own).

    Returns:
        filter -> `UnitPicture` whose score is the unit's mean activation (its linear pre-activation where
        the ReLU was made leaky): the lowest it reached.
    """
    _, _, overrides = optimize.split_options(network, options)
    s = presets.resolve_settings(preset, overrides)
    path, layer_obj = nets.find_layer(network, layer)
    result = atlases.layer_atlas(network, path, list(filters), objective=-objectives.channel(path, border=s.border),
                                 cache_dir=cache_dir, preset=preset, progress=False, callbacks=[_Advance(bar)],
                                 **options)
    bar.advance(len(result.cached))
    units = [int(f) for f in result.filters]
    scores = _mean_activation(network, path, result.images, units, s.pre_activation, layer_obj) if units else []
    return {f: UnitPicture(result.images[i], float(scores[i])) for i, f in enumerate(units)}


SCORE_BATCH = 16  # pictures per forward pass when scoring them


def _mean_activation(network: nets.Network, path: str, pictures: np.ndarray, units, pre_activation: bool,
                     layer) -> np.ndarray:
    """Each picture's unit's mean activation: its linear pre-activation where `pre_activation` made the layer's
    ReLU leaky (so that a negative picture reads below zero, in the layer's own units)."""
    extractor = nets.get_extractor(network, [path], pre_activation)
    scores = []
    for start in range(0, len(pictures), SCORE_BATCH):
        x = network.preprocess(np.array(pictures[start:start + SCORE_BATCH], "float32") / 255.0)
        out = extractor(x, training=False)
        if pre_activation and nets.leaks_under_pre_activation(layer):
            out = nets.undo_leak(out)
        out = np.asarray(keras.ops.convert_to_numpy(out), "float32")
        out = out.reshape(len(out), -1, out.shape[-1])
        picked = np.asarray(units[start:start + SCORE_BATCH])
        scores.append(out[np.arange(len(out)), :, picked].mean(axis=1))
    return np.concatenate(scores)


def diverse_pictures(network: nets.Network, layer: str, filters, *, bar: FilterBar, cache_dir=None, preset=None,
                     count: int = DIVERSE_COUNT, **options) -> dict[int, list[UnitPicture]]:
    """`count` different pictures of each unit: its channel plus `DIVERSITY_WEIGHT` times the diversity
    objective (Lucid's), the unit's pictures in one batch; cached per picture.

    Args:
        network: a `Network`.
        layer: the layer's name or path.
        filters: the units.
        bar: the progress bar to move, counted in units.
        cache_dir, preset, **options: as in `kerasviz.atlas.layer_atlas`, but for `batch_size`: a unit's
            `count` pictures are always one batch (the diversity objective compares them).
        count: pictures per unit. Defaults to 4.

    Returns:
        filter -> `count` `UnitPicture`s, each scored by the unit's mean activation in it.
    """
    _, run, overrides = optimize.split_options(network, options)
    s = presets.resolve_settings(preset, overrides)
    path, layer_obj = nets.find_layer(network, layer)
    objective = objectives.channel(path, border=s.border) + DIVERSITY_WEIGHT * objectives.diversity(path)
    filters = [int(f) for f in filters]
    plan = optimize.plan(network, path, filters[:1], objective=objective, preset=preset,
                         **vars(dataclasses.replace(run, batch_size=count)), **overrides)
    settings = dict(cache_settings(network, path, plan.settings, seed=run.seed, objective=objective), view="diverse",
                    count=count)
    root = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = FilterCache(os.path.join(root, slug(network.name), f"{slug(path)}-{cache_key(settings)}"), settings)
    out = {}
    for f in filters:
        keys = [f * count + j for j in range(count)]
        hits = [cache.load(k, network.input_channels) for k in keys]
        if all(h is not None for h in hits):
            out[f] = [UnitPicture(image, score) for image, score in hits]
            bar.advance(1)
            continue
        result = plan.run(keys, filters=[f] * count, callbacks=[_Advance(bar, 1 / count)])
        if result.interrupted:
            raise KeyboardInterrupt(f"Interrupted in the diverse pictures of {path} {f}.")
        scores = _mean_activation(network, path, result.images, [f] * count, plan.settings.pre_activation, layer_obj)
        for key, image, score in zip(keys, result.images, scores, strict=True):
            cache.store(key, image, float(score), result.seconds / count)
        out[f] = [UnitPicture(image, float(score)) for image, score in zip(result.images, scores, strict=True)]
    return out


MACO_PRESET = "maco"  # the preset of the alpha view's pictures


def alpha_maps(a: atlases.LayerAtlas) -> dict:
    """The transparency maps the atlas's cache holds beside its pictures (a MACO atlas's): filter -> float32
    `(H, W)` in [0, 1]; empty for an atlas without them."""
    if not a.cache_path or not len(a.filters):
        return {}
    return FilterCache(a.cache_path, a.settings).load_alphas([int(f) for f in a.filters])


def maco_pictures(network: nets.Network, layer: str, filters, *, bar: FilterBar, cache_dir=None, preset=None,
                  **options) -> dict[int, UnitPicture]:
    """Each unit's MACO picture with its transparency map (`preset="maco"`, `Result.alpha`), cached like the
    atlas (the map beside the picture); the gallery asks for it only where the atlas has no map of its own.

    Args:
        network: a `Network`.
        layer: the layer's name or path.
        filters: the units.
        bar: the progress bar to move, counted in units.
        cache_dir, **options: as in `kerasviz.atlas.layer_atlas` (the run's options and `Preset` fields).
        preset: the atlas's preset, unused: these pictures are MACO's (`MACO_PRESET`).

    Returns:
        filter -> `UnitPicture` with its `alpha`.
    """
    del preset  # the view is MACO's pictures, whatever the atlas's preset
    result = atlases.layer_atlas(network, layer, list(filters), cache_dir=cache_dir, preset=MACO_PRESET,
                                 progress=False, callbacks=[_Advance(bar)], **options)
    bar.advance(len(result.cached))
    maps = alpha_maps(result)
    return {int(f): UnitPicture(result.images[i], float(result.scores[i]), maps.get(int(f)))
            for i, f in enumerate(result.filters)}


PICTURE_VIEWS = {"negative": negative_pictures, "diverse": diverse_pictures, "alpha": maco_pictures}  # per layer
