"""The explorer's computed views of a unit: its dataset examples and its heatmap over a user image.

`unit_examples` streams a folder (or an array, or a `tf.data` pipeline) through the model once for all
the requested filters of a layer and keeps each filter's top images, cropped to the layer's receptive
field (`kerasviz.examples.dataset_examples` does the work). The result is cached beside the atlas: one
`.npz` per layer and data under `<cache root>/examples/`, so the explorer's site resumes without reading
an image again. `unit_heatmaps` draws where each filter fires on one image, from one forward pass.

Both are computed only when asked for; `unit_examples` says what it costs in its progress bar
(`examples block3_conv3: 1,234 images`, with images/s).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from kerasviz import analysis, images, nets
from kerasviz import examples as kv_examples
from kerasviz.atlas import cache

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
# The example files are read and written through the atlas cache's storage (`cache.read_file`,
# `cache.write_file`): a local folder (atomic write by rename) or an fsspec URL, fsspec imported only for a URL.


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts]) if cache.is_url(root) else os.path.join(root, *parts)


# ------------------------------------------------------------------------------------------ keys


def folder_fingerprint(folder: str | os.PathLike, names: Sequence[str] | None = None) -> str:
    """A hash of a folder's image files: their sorted relative paths, sizes and modification times.

    No file is opened, so it is cheap for tens of thousands of images; adding, removing, renaming or
    rewriting an image changes it.

    Args:
        folder: the folder of images.
        names: its image files (as `kerasviz.examples.list_images` gives them). Defaults to listing them.

    Returns:
        32 hex digits, a str.

    Raises:
        ValueError: `folder` is not a folder or holds no image.

    Example:
    >>> len(kv.atlas.views.folder_fingerprint("photos"))
    32
    """
    folder = os.fspath(folder)
    names = kv_examples.list_images(folder) if names is None else names
    digest = hashlib.blake2b(digest_size=16)
    for name in names:
        stat = os.stat(os.path.join(folder, name))
        digest.update(json.dumps([name.replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns]).encode())
    return digest.hexdigest()


def array_fingerprint(array: np.ndarray) -> str:
    """A hash of an array's shape, dtype and bytes.

    Args:
        array: any NumPy array.

    Returns:
        32 hex digits, a str.

    Example:
    >>> len(kv.atlas.views.array_fingerprint(np.zeros((2, 8, 8, 3))))
    32
    """
    arr = np.ascontiguousarray(array)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str((arr.shape, arr.dtype.str)).encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


def examples_settings(network: nets.Network, layer: str, data: str, *, top_k: int, size) -> dict:
    """What a layer's dataset examples depend on, as a JSON-able dict (the file's key is its hash).

    Args:
        network: a `Network`.
        layer: the layer path.
        data: the data's fingerprint (`folder_fingerprint`, `array_fingerprint`) or the caller's key.
        top_k: images kept per filter.
        size: the `(height, width)` the images are seen at.

    Returns:
        A dict: version, model, weights fingerprint (post-ReLU), preprocessing, layer, data, top_k, size.
    """
    return {
        "version": EXAMPLES_VERSION,
        "model": network.name,
        "weights": cache.weights_fingerprint(network, layer, pre_activation=False),
        "preprocess": cache._describe_preprocess(network.preprocess),
        "layer": layer,
        "data": data,
        "top_k": int(top_k),
        "size": None if size is None else [int(s) for s in size],
    }


def examples_path(root: str, layer: str, settings: dict) -> str:
    """Where a layer's example file lives: `<root>/examples/<layer>-<key>.npz`."""
    return _join(root, EXAMPLES_FOLDER, f"{cache.slug(layer)}-{cache.cache_key(settings)}.npz")


# ------------------------------------------------------------------------------------------ the file


@dataclasses.dataclass
class _Stored:
    filters: list[int]
    crops: np.ndarray  # uint8 (F, k, h, w, C)
    activations: np.ndarray  # float32 (F, k), -inf where no image
    sources: np.ndarray  # str (F, k), "" where no image
    count: int


def _load(path: str, settings: dict) -> _Stored | None:
    data = cache.read_file(path)
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if json.loads(str(z["settings"])) != settings:
                return None
            stored = _Stored([int(f) for f in z["filters"]], z["crops"], z["activations"].astype("float32"),
                             z["sources"].astype(str), int(z["count"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None  # a corrupt or foreign file is recomputed
    n = len(stored.filters)
    if not (stored.crops.shape[:1] == stored.activations.shape[:1] == stored.sources.shape[:1] == (n,)):
        return None
    return stored


def _save(path: str, settings: dict, stored: _Stored) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, settings=np.array(json.dumps(settings, sort_keys=True)),
             filters=np.asarray(stored.filters, "int64"), crops=stored.crops,
             activations=stored.activations.astype("float32"), sources=np.asarray(stored.sources, dtype=str),
             count=np.asarray(stored.count, "int64"))
    cache.write_file(path, buffer.getvalue())


def _merge(old: _Stored | None, new: _Stored) -> _Stored:
    if old is None or old.crops.shape[1:] != new.crops.shape[1:] or old.sources.shape[1:] != new.sources.shape[1:]:
        return new
    return _Stored(old.filters + new.filters, np.concatenate([old.crops, new.crops]),
                   np.concatenate([old.activations, new.activations]), np.concatenate([old.sources, new.sources]),
                   new.count)


# ------------------------------------------------------------------------------------------ streams


def _batch_length(item) -> int:
    x = item[0] if isinstance(item, (tuple, list)) and item else item
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) == 0:
        return 1
    return 1 if len(shape) == 3 else int(shape[0])


def _counted(stream: Iterable, bar) -> Iterator:
    """`stream`, moving `bar` by each batch's images as it is read."""
    for item in stream:
        if bar is not None:
            bar.update(_batch_length(item))
        yield item


def _folder_batches(folder: str, names: Sequence[str], *, size, channels: int, batch_size: int) -> Iterator:
    """The folder's images, resized to `size`, in batches of `batch_size` (an unreadable file: gray)."""
    for i in range(0, len(names), batch_size):
        loaded = []
        for name in names[i : i + batch_size]:
            try:
                loaded.append(images.load_image(os.path.join(folder, name), size=size, channels=channels))
            except ValueError as e:
                warnings.warn(f"Skipping {name!r}: {e}", stacklevel=4)
                loaded.append(np.full((*size, channels), kv_examples.CROP_PAD_VALUE, "float32"))
        yield np.stack(loaded)


def _progress_bar(enabled: bool, layer: str, total: int | None, n_filters: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    what = f"{total:,} images" if total is not None else "a dataset"
    return tqdm(total=total, unit="image", desc=f"examples {layer}: {what}", leave=True,
                postfix=f"{n_filters} filters")


# ------------------------------------------------------------------------------------------ examples


def _image_size(network: nets.Network, size) -> tuple[int, int]:
    if size is None:
        fixed = tuple(network.model.inputs[0].shape[1:3])
        return fixed if None not in fixed else (kv_examples.DEFAULT_IMAGE_SIZE,) * 2
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    return int(size[0]), int(size[1])


def _check_filters(network: nets.Network, path: str, filters) -> list[int]:
    if isinstance(filters, (int, np.integer)) and not isinstance(filters, bool):
        filters = [filters]
    if isinstance(filters, (str, bytes)) or not isinstance(filters, Iterable):
        raise TypeError(f"filters must be a list of filter indices. Received: filters={filters!r}.")
    n_channels = nets.channels_of(network, path)
    checked = [nets.check_filter(f, n_channels, path) for f in filters]
    if not checked:
        raise ValueError(f"filters is empty: give at least one filter of layer {path!r}.")
    return list(dict.fromkeys(checked))


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
    >>> ex = kv.atlas.views.unit_examples(net, "block3_conv3", [0, 5], "photos/")
    >>> ex[5][0].source, ex[5][0].crop.shape
    ('dogs/rex.jpg', (40, 40, 3))
    """
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}.")
    is_folder = isinstance(examples, (str, os.PathLike))
    names = kv_examples.list_images(examples) if is_folder else None  # a missing folder fails first
    network = nets.as_network(network)
    path, _ = nets.find_layer(network, layer)
    filters = _check_filters(network, path, filters)
    size = _image_size(network, size) if is_folder else None
    if is_folder:
        fingerprint = folder_fingerprint(examples, names)
    elif isinstance(examples, np.ndarray):
        if examples.ndim != 4:
            raise ValueError(f"A NumPy examples array must be images (N, H, W, C). Received shape {examples.shape}.")
        fingerprint = array_fingerprint(examples)
        size = examples.shape[1:3]
    else:
        fingerprint = None
    if examples_key is not None:
        fingerprint = f"key:{examples_key}"
    settings = file = stored = None
    if cache_results and fingerprint is not None:
        settings = examples_settings(network, path, fingerprint, top_k=top_k, size=size)
        file = examples_path(cache_dir or cache.default_cache_dir(), path, settings)
        stored = _load(file, settings)
    missing = [f for f in filters if stored is None or f not in stored.filters]
    if missing:
        fresh = _compute(network, path, missing, examples, names, size=size, top_k=int(top_k),
                         batch_size=int(batch_size), progress=progress)
        stored = _merge(stored, fresh)
        if file is not None:
            _save(file, settings, stored)
    return {f: _examples_of(stored, stored.filters.index(f)) for f in filters}


def _compute(network, path, filters, examples, names, *, size, top_k, batch_size, progress) -> _Stored:
    """One pass over the data for `filters`, through `dataset_examples`, with a progress bar."""
    if names is not None:
        total = len(names)
        stream = _folder_batches(os.fspath(examples), names, size=size, channels=network.input_channels,
                                 batch_size=batch_size)
    elif isinstance(examples, np.ndarray):
        total = len(examples)
        stream = (examples[i : i + batch_size] for i in range(0, len(examples), batch_size))
    else:
        if not isinstance(examples, Iterable):
            raise TypeError("examples must be a folder path, a NumPy array (N, H, W, C) in [0, 1], or a "
                            f"tf.data.Dataset / iterable of batches. Received: {type(examples).__name__}.")
        total, stream = None, examples
    bar = _progress_bar(progress, path, total, len(filters))
    try:
        result = kv_examples.dataset_examples(network, path, _counted(stream, bar), k=top_k, filters=filters,
                                              batch_size=batch_size)
    finally:
        if bar is not None:
            bar.close()
    ids = result.ids
    if names is not None:
        sources = np.array([[names[i].replace(os.sep, "/") if i >= 0 else "" for i in row] for row in ids], dtype=str)
    else:
        sources = np.array([[f"#{i}" if i >= 0 else "" for i in row] for row in ids], dtype=str)
    return _Stored(list(result.filters), result.crops, result.scores.astype("float32"), sources, result.count)


def _examples_of(stored: _Stored, slot: int) -> list[Example]:
    return [Example(crop=stored.crops[slot, r], activation=float(stored.activations[slot, r]),
                    source=str(stored.sources[slot, r]))
            for r in range(stored.sources.shape[1]) if stored.sources[slot, r] != ""]


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
    >>> maps = kv.atlas.views.unit_heatmaps(net, "block3_conv3", [0, 5], "cat.jpg")
    >>> kv.save_image(maps[5], "cat_5.png")
    """
    network = nets.as_network(network)
    path, _ = nets.find_layer(network, layer)
    filters = _check_filters(network, path, filters)
    shown = images.load_image(image, size=size, channels=network.input_channels)
    act = analysis.activations(network, path, analysis.prepare_image(network, shown))[path]
    if act.ndim != 3:
        raise ValueError(f"Layer {path!r} outputs shape {act.shape} per image, with no spatial map to draw; "
                         "choose a convolution, pooling or activation layer.")
    out = {}
    for f in filters:
        heat = analysis.upsample(act[..., f], shown.shape[:2])
        low, high = min(0.0, float(heat.min())), float(heat.max())
        out[f] = overlay(shown, (heat - low) / (high - low) if high > low else np.zeros_like(heat), cmap=cmap,
                         alpha=alpha)
    return out


__all__ = ["EXAMPLES_FOLDER", "EXAMPLES_VERSION", "Example", "array_fingerprint", "examples_path",
           "examples_settings", "folder_fingerprint", "overlay", "unit_examples", "unit_heatmaps"]
