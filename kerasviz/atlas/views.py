"""The explorer's computed views of a unit: its dataset examples and its heatmap over a user image.

`unit_examples` streams a folder (or an array, or a `tf.data` pipeline) through the model once for all
the requested filters of a layer and keeps each filter's top images, cropped to the layer's receptive
field (`kerasviz.examples` reads the data and does the work). The result is cached beside the atlas: one
`.npz` per layer and data under `<cache root>/examples/`, so the explorer's site resumes without reading
an image again. `unit_heatmaps` draws where each filter fires on one image, from one forward pass.

Both are computed only when asked for; `unit_examples` says what it costs in its progress bar
(`examples block3_conv3: 1,234 images`, with images/s).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from kerasviz import analysis, images, nets
from kerasviz import examples as kv_examples
from kerasviz.atlas import cache, storage

EXAMPLES_VERSION = 1  # bump when the meaning of the cached example files changes

EXAMPLES_FOLDER = "examples"  # the subfolder of the cache root that holds the example files

HEATMAP_CMAP = "inferno"  # matplotlib color map of the heatmap overlay

HEATMAP_ALPHA = 0.55  # weight of the color map in the overlay (the image gets 1 - alpha)


@dataclasses.dataclass
class Example:
    """One of a unit's top dataset images.

    Attributes:
        crop: uint8 `(h, w, C)`: the receptive field of the unit's strongest position, cut from the
            image (gray where it reaches past the border); the whole image for a layer without positions.
        activation: the unit's maximum activation over the image (post-ReLU, model units).
        source: the image's file path relative to the folder, or `"#<index>"` (its place in an array
            or a dataset's stream).
    """

    crop: np.ndarray
    activation: float
    source: str


# ------------------------------------------------------------------------------------------ storage
# The example files are `.npz` files of `storage` (a local folder, or an fsspec URL).


# ------------------------------------------------------------------------------------------ keys


def examples_settings(network: nets.Network, layer: str, data: str, *, top_k: int, size) -> dict:
    """What a layer's dataset examples depend on, as a JSON-able dict (the file's key is its hash).

    Args:
        network: a `Network`.
        layer: the layer path.
        data: the data's fingerprint (`DataSource.fingerprint`) or the caller's key.
        top_k: images kept per filter.
        size: the `(height, width)` the images are seen at.

    Returns:
        A dict: version, model, weights fingerprint (post-ReLU), preprocessing, layer, data, top_k, size.
    """
    return {
        "version": EXAMPLES_VERSION,
        "model": network.name,
        "weights": cache.weights_fingerprint(network, layer, pre_activation=False),
        "preprocess": cache.describe_preprocess(network.preprocess),
        "layer": layer,
        "data": data,
        "top_k": int(top_k),
        "size": None if size is None else [int(s) for s in size],
    }


def examples_path(root: str, layer: str, settings: dict) -> str:
    """Where a layer's example file lives: `<root>/examples/<layer>-<key>.npz`."""
    return storage.join(root, EXAMPLES_FOLDER, f"{cache.slug(layer)}-{cache.cache_key(settings)}.npz")


# ------------------------------------------------------------------------------------------ the file


@dataclasses.dataclass
class _Stored:
    filters: list[int]
    crops: np.ndarray  # uint8 (F, k, h, w, C)
    activations: np.ndarray  # float32 (F, k), -inf where no image
    sources: np.ndarray  # str (F, k), "" where no image
    count: int


def _load(path: str, settings: dict) -> _Stored | None:
    z = storage.read_arrays(path, settings)
    if z is None:
        return None
    try:
        stored = _Stored([int(f) for f in z["filters"]], z["crops"], z["activations"].astype("float32"),
                         z["sources"].astype(str), int(z["count"]))
    except (KeyError, TypeError, ValueError):
        return None  # a foreign file: recomputed
    n = len(stored.filters)
    if not (stored.crops.shape[:1] == stored.activations.shape[:1] == stored.sources.shape[:1] == (n,)):
        return None
    return stored


def _save(path: str, settings: dict, stored: _Stored) -> None:
    storage.write_arrays(path, dict(
        filters=np.asarray(stored.filters, "int64"), crops=stored.crops,
        activations=stored.activations.astype("float32"), sources=np.asarray(stored.sources, dtype=str),
        count=np.asarray(stored.count, "int64")), settings)


def _merge(old: _Stored | None, new: _Stored) -> _Stored:
    if old is None or old.crops.shape[1:] != new.crops.shape[1:] or old.sources.shape[1:] != new.sources.shape[1:]:
        return new
    return _Stored(old.filters + new.filters, np.concatenate([old.crops, new.crops]),
                   np.concatenate([old.activations, new.activations]), np.concatenate([old.sources, new.sources]),
                   new.count)


# ------------------------------------------------------------------------------------------ examples


def unit_examples(
    network,
    layer: str,
    filters: list[int],
    examples,
    *,
    cache_dir: str | None = None,
    top_k: int = 9,
    batch_size: int = 32,
    progress: bool = True,
    size: int | tuple[int, int] | None = None,
    examples_key: str | None = None,
    cache_results: bool = True,
) -> dict[int, list[Example]]:
    """The top `top_k` images of each filter among `examples`, cropped to the layer's receptive field, cached.

    One pass over the data computes every requested filter of the layer. Each image is scored by the
    filter's maximum activation over positions (post-ReLU); the crop is the receptive field around that
    maximum. The result is cached under `<cache root>/examples/` as one `.npz` per layer and data (crops,
    activations, sources, and what the key was made of), written atomically: a second call reads that
    file and opens no image. When some requested filters are in the file and some are not, one pass
    computes only the missing ones and adds them to the file (two processes adding filters to one file at
    once may drop one's additions; they are computed again on the next call, never read half-written).

    The file's key is made of the weights of the layers up to `layer`, the preprocessing, the layer,
    `top_k`, the image size and a fingerprint of the data:

    - a folder: its images' sorted relative paths, sizes and modification times (no file is opened);
      adding, removing or rewriting an image makes a new key;
    - a NumPy array: a hash of its bytes;
    - a `tf.data.Dataset` or another iterable: it cannot be fingerprinted without reading it, so it is
      not cached unless you name it with `examples_key=` (any string that changes when the data does).

    Args:
        network: a `Network`, `keras.Model`, `keras.applications` name or model file.
        layer: the layer name (or `outer/inner` path).
        filters: the filter indices.
        examples: a folder of images (searched recursively and streamed: it need not fit in memory;
            images are resized to `size`), a NumPy array `(N, H, W, C)` in [0, 1] or uint8, or a
            `tf.data.Dataset` / iterable of batches (or of `(images, labels)`), in [0, 1] or uint8.
        cache_dir: the cache root: a folder, or an fsspec URL (`s3://bucket/cache`, `memory://x`; fsspec and
            the store's package are imported only then). Defaults to `kerasviz.atlas.default_cache_dir()`.
        top_k: images kept per filter. Defaults to 9.
        batch_size: images per forward pass. Defaults to 32.
        progress: show a progress bar (`examples <layer>: <N> images`, with images/s) while computing.
            Defaults to True.
        size: the size folder images are resized to. Defaults to the model's fixed input size, else 224.
        examples_key: names the data in the cache key in place of its fingerprint; needed to cache a
            `tf.data.Dataset`. Defaults to None.
        cache_results: read and write the cache. Defaults to True.

    Returns:
        A dict from each filter to its `Example`s, strongest first (fewer than `top_k` when the data holds
        fewer images).

    Raises:
        ValueError: a missing folder or one with no image, an unknown layer (with close names), a filter out
            of range, `top_k < 1` or `batch_size < 1`, data of the wrong shape or range.
        TypeError: a filter that is not an int.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> ex = kv.atlas.views.unit_examples(net, "block3_conv3", [0, 5], "photos/", cache_dir="cache", size=64)
    >>> ex[5][0].source in kv.examples.list_images("photos"), ex[5][0].crop.shape
    (True, (40, 40, 3))
    """
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}.")
    source = kv_examples.data_source(examples, "examples")  # a missing folder fails first
    network = nets.as_network(network)
    path, _ = nets.find_layer(network, layer)
    filters = kv_examples.layer_filters(network, path, filters)
    size = source.image_size(network, size)
    fingerprint = f"key:{examples_key}" if examples_key is not None else None
    settings = file = stored = None
    if cache_results and (fingerprint is not None or source.total is not None):
        settings = examples_settings(network, path, fingerprint or source.fingerprint(), top_k=top_k, size=size)
        file = examples_path(cache_dir or cache.default_cache_dir(), path, settings)
        stored = _load(file, settings)
    missing = [f for f in filters if stored is None or f not in stored.filters]
    if missing:
        result = kv_examples.dataset_examples(network, path, source, k=int(top_k), filters=missing,
                                              batch_size=int(batch_size), size=size, progress=progress)
        stored = _merge(stored, _Stored(list(result.filters), result.crops, result.scores, result.sources,
                                        result.count))
        if file is not None:
            _save(file, settings, stored)
    return {f: _examples_of(stored, stored.filters.index(f)) for f in filters}


def _examples_of(stored: _Stored, slot: int) -> list[Example]:
    return [Example(crop=stored.crops[slot, r], activation=float(stored.activations[slot, r]),
                    source=str(stored.sources[slot, r]))
            for r in range(stored.sources.shape[1]) if stored.sources[slot, r] != ""]


# ------------------------------------------------------------------------------------------ accentuated

ACCENT_FOLDER = "accentuated"  # the subfolder of the cache root that holds the accentuations
ACCENT_TOP_K = 3  # a unit's top dataset examples shown accentuated
ACCENT_CHUNK = 32  # (example, unit) pairs per `accentuate` call: the cache file is rewritten after each


@dataclasses.dataclass
class Accented:
    """One of a unit's top dataset examples, accentuated for the unit (`kerasviz.accentuate`).

    Attributes:
        photo: uint8 `(H, W, 3)`: the example (its crop) as the model saw it (resized to the accentuation's size).
        image: uint8 `(H, W, 3)`: the example changed as little as needed for the unit to fire much more.
        gain: the unit's activation after over before.
        distance: how far the picture moved from the photo: the root mean square pixel difference in [0, 1].
        source: the example's file name, or `"#<index>"`.
    """

    photo: np.ndarray
    image: np.ndarray
    gain: float
    distance: float
    source: str


def _pairs_key(network: nets.Network, layer: str, pairs: list, options: dict) -> str:
    """The cache key of one layer's accentuations: the model's weights, the examples' pixels, the options."""
    digest = hashlib.blake2b(digest_size=8)
    for unit, ex in pairs:
        digest.update(str(unit).encode())
        digest.update(np.ascontiguousarray(ex.crop).tobytes())
    return cache.cache_key({"version": EXAMPLES_VERSION, "model": network.name, "layer": layer,
                            "weights": cache.weights_fingerprint(network, layer, pre_activation=False),
                            "pairs": digest.hexdigest(), "options": json.dumps(options, sort_keys=True, default=str)})


def unit_accentuations(network, layer: str, examples: dict, *, top_k: int = ACCENT_TOP_K, cache_dir=None,
                       bar=None, **options) -> dict[int, list[Accented]]:
    """Each unit's top dataset examples accentuated for it, `ACCENT_CHUNK` pairs per `kerasviz.accentuate`
    call (`pairs=True`: example i with unit i), cached per layer under `<cache root>/accentuated/`.

    Args:
        network: a `Network`.
        layer: the layer's path.
        examples: unit -> its `Example`s, strongest first (as `unit_examples` gives them).
        top_k: examples accentuated per unit. Defaults to 3.
        cache_dir: the cache root. Defaults to `kerasviz.atlas.default_cache_dir()`.
        bar: a `FilterBar` counted in units, moved as the units are done. Defaults to None.
        **options: as in `kerasviz.accentuate` (run options and `Preset` fields).

    Returns:
        unit -> its `Accented` examples.
    """
    from kerasviz.accentuation import accentuate

    pairs = [(int(f), ex) for f, exs in examples.items() for ex in exs[:top_k]]
    path = storage.join(cache_dir or cache.default_cache_dir(), ACCENT_FOLDER,
                 f"{cache.slug(layer)}-{_pairs_key(network, layer, pairs, options)}.npz")
    stored = _load_accented(path, len(pairs))
    for start in range(len(stored), len(pairs), ACCENT_CHUNK):
        chunk = pairs[start:start + ACCENT_CHUNK]
        photos = _same_size([ex.crop for _, ex in chunk])
        result = accentuate(network, layer, [f for f, _ in chunk], photos, pairs=True, progress=False, **options)
        stored += [(result.images[j], images.to_uint8(result.inputs[result.photos[j]]), float(result.gains[j]),
                    float(result.distances[j])) for j in range(len(chunk))]
        _save_accented(path, stored)
        if bar is not None:
            bar.advance(len(chunk) / max(top_k, 1))
    out: dict[int, list[Accented]] = {}
    for (f, ex), (image, photo, gain, distance) in zip(pairs, stored, strict=True):
        out.setdefault(f, []).append(Accented(photo, image, gain, distance, ex.source))
    return out


def _same_size(crops: list) -> np.ndarray:
    """The crops as one uint8 batch, each resized to the first's size where they differ."""
    shape = np.asarray(crops[0]).shape[:2]
    return np.stack([np.asarray(c) if np.asarray(c).shape[:2] == shape else
                     images.to_uint8(images.resize(np.asarray(c, "float32") / 255.0, shape)) for c in crops])


def _load_accented(path: str, n: int) -> list:
    z = storage.read_arrays(path)
    if z is None:
        return []
    try:
        done = [(z["images"][i], z["photos"][i], float(z["gains"][i]), float(z["distances"][i]))
                for i in range(len(z["gains"]))]
    except (KeyError, TypeError, ValueError, IndexError):
        return []  # a foreign file: recomputed
    return done[:n]


def _save_accented(path: str, stored: list) -> None:
    storage.write_arrays(path, dict(images=np.stack([s[0] for s in stored]), photos=np.stack([s[1] for s in stored]),
                                    gains=np.asarray([s[2] for s in stored], "float64"),
                                    distances=np.asarray([s[3] for s in stored], "float64")))


# ------------------------------------------------------------------------------------------ heatmaps


def overlay(image: np.ndarray, heat: np.ndarray, *, cmap: str = HEATMAP_CMAP, alpha: float = HEATMAP_ALPHA
            ) -> np.ndarray:
    """A heat map drawn over an image: `(1 - alpha) * image + alpha * cmap(heat)`.

    Args:
        image: float `(H, W, C)` in [0, 1] (C = 1 or 3).
        heat: float `(H, W)` in [0, 1].
        cmap: a matplotlib color map name. Defaults to `"inferno"`.
        alpha: the color map's weight, in [0, 1]. Defaults to 0.55.

    Returns:
        uint8 `(H, W, 3)`.

    Example:
    >>> kv.atlas.views.overlay(np.zeros((4, 4, 3)), np.ones((4, 4))).shape
    (4, 4, 3)
    """
    import matplotlib

    colors = matplotlib.colormaps[cmap](np.clip(heat, 0.0, 1.0))[..., :3]
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    return images.to_uint8((1.0 - alpha) * rgb + alpha * colors)


def unit_heatmaps(
    network,
    layer: str,
    filters: list[int],
    image,
    *,
    size: int | tuple[int, int] | None = None,
    cmap: str = HEATMAP_CMAP,
    alpha: float = HEATMAP_ALPHA,
) -> dict[int, np.ndarray]:
    """Where each filter fires on an image: its activation map, upsampled, as a color overlay on the image.

    One forward pass serves every filter. Each map (post-ReLU) is bilinear-upsampled to the image and
    scaled by its own peak on this image, so 0 is "not active" and 1 the strongest position (a layer
    without a ReLU is scaled from its lowest value instead); a filter silent everywhere draws as 0.

    Args:
        network: a `Network`, `keras.Model`, `keras.applications` name or model file.
        layer: a layer with a spatial map (convolution, pooling, activation).
        filters: the filter indices.
        image: a path, a PIL image, or an array in [0, 1] or uint8.
        size: resize the image first (for a model that takes any size): one int or `(height, width)`.
            Defaults to the image's own size. A model with a fixed input size sees the image at that size;
            the overlay still has the image's size.
        cmap: a matplotlib color map. Defaults to `"inferno"`.
        alpha: the color map's weight in the blend. Defaults to 0.55.

    Returns:
        A dict from each filter to its overlay, uint8 `(H, W, 3)`, the size of the image (or `size`).

    Raises:
        ValueError: an unknown layer (with close names), a layer without a spatial map, a filter out of
            range, or an unreadable image.
        TypeError: a filter that is not an int.

    Example:
    >>> maps = kv.atlas.views.unit_heatmaps(net, "block3_conv3", [0, 5], "cat.jpg", size=64)
    >>> maps[5].shape, kv.save_image(maps[5], "cat_5.png")
    ((64, 64, 3), 'cat_5.png')
    """
    network = nets.as_network(network)
    path, _ = nets.find_layer(network, layer)
    filters = kv_examples.layer_filters(network, path, filters)
    shown = images.load_image(image, size=size, channels=network.input_channels)
    act = analysis.check_spatial_map(analysis.activations(network, path, analysis.prepare_image(network, shown))[path],
                                     path, image_size=shown.shape[:2])
    out = {}
    for f in filters:
        heat = analysis.upsample(act[..., f], shown.shape[:2])
        low, high = min(0.0, float(heat.min())), float(heat.max())
        out[f] = overlay(shown, (heat - low) / (high - low) if high > low else np.zeros_like(heat), cmap=cmap,
                         alpha=alpha)
    return out


__all__ = ["ACCENT_FOLDER", "Accented", "EXAMPLES_FOLDER", "EXAMPLES_VERSION", "Example", "examples_path",
           "examples_settings", "overlay", "unit_accentuations", "unit_examples", "unit_heatmaps"]
