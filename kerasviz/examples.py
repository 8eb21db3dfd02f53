"""Every data source of kerasviz, and dataset examples.

A folder of images, a NumPy array or a `tf.data` pipeline (any iterable of batches) becomes one `DataSource`
(`data_source`): its batches, its size, its count, its fingerprint and the name of each image. On it,
`dataset_examples` finds the images that excite each filter most, streamed, with crops of each one's
receptive field (`kerasviz.plot.examples_figure` draws them); the explorer (`kerasviz.atlas.views`) caches
those and reads its data the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence

import keras
import numpy as np

from kerasviz import images as kv_images
from kerasviz import nets
from kerasviz.nets.receptive_field import ReceptiveField
from kerasviz.topk import CROP_PAD_VALUE, RunningTopK, cutter, reader

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


DEFAULT_IMAGE_SIZE = 224  # folder images are resized to this when the model has no fixed input size


@dataclasses.dataclass
class _Batch:
    images: np.ndarray  # float32 [B, H, W, C] in [0, 1]
    labels: np.ndarray | None  # int [B] or None


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files under `folder` (recursive, sorted), as paths relative to it.

    Args:
        folder: the folder to search; files ending in a known image extension (`.png`, `.jpg`, ...) count.

    Returns:
        A list of relative paths, sorted folder by folder.

    Raises:
        ValueError: `folder` is not a folder, or holds no image file.

    Example:
    >>> _ = kv.save_image(np.zeros((8, 8, 3)), "shelf/cats/a.png")
    >>> kv.examples.list_images("shelf")
    ['cats/a.png']
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"No folder at {folder!r}. Pass a folder of images, a NumPy array (N, H, W, C) or a "
                         "tf.data.Dataset.")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    if not found:
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder!r}.")
    return found


def _to_unit(x, value_range, where: str) -> np.ndarray:
    """A batch in `value_range` -> float32 in [0, 1]."""
    arr = np.asarray(x)
    if value_range is None:
        if arr.dtype == np.uint8:
            value_range = (0.0, 255.0)
        else:
            arr = arr.astype("float32")
            if arr.size and (arr.min() < -1e-3 or arr.max() > 1.0 + 1e-3):
                raise ValueError(
                    f"{where} has values in [{arr.min():.3g}, {arr.max():.3g}]; images must be in [0, 1] "
                    "(or uint8). Pass value_range=(0, 255) for 0-255 floats, as "
                    "keras.utils.image_dataset_from_directory yields."
                )
            return np.clip(arr, 0.0, 1.0)
    low, high = value_range
    return np.clip((arr.astype("float32") - low) / float(high - low), 0.0, 1.0)


def _labels_of(y, batch: int) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == batch and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype("int64")
    if y.size == batch and np.issubdtype(y.dtype, np.integer) | np.issubdtype(y.dtype, np.floating):
        return y.reshape(batch).astype("int64")
    return None


def _rebatch(stream: Iterable[_Batch], batch_size: int) -> Iterator[_Batch]:
    """Batches of exactly `batch_size` images (the last may be smaller) from batches of any size of
    equal-sized images; a change of image size starts a new batch."""
    pending: list[_Batch] = []
    count = 0
    for b in stream:
        if pending and b.images.shape[1:] != pending[0].images.shape[1:]:
            yield _concat(pending)
            pending, count = [], 0
        pending.append(b)
        count += len(b.images)
        while count >= batch_size:
            merged = _concat(pending)
            yield _Batch(merged.images[:batch_size],
                         None if merged.labels is None else merged.labels[:batch_size])
            rest = _Batch(merged.images[batch_size:],
                          None if merged.labels is None else merged.labels[batch_size:])
            pending, count = ([rest], len(rest.images)) if len(rest.images) else ([], 0)
    if pending:
        yield _concat(pending)


def _concat(parts: list[_Batch]) -> _Batch:
    if len(parts) == 1:
        return parts[0]
    labels = None
    if all(p.labels is not None for p in parts):
        labels = np.concatenate([p.labels for p in parts])
    return _Batch(np.concatenate([p.images for p in parts]), labels)


def _iterable_batches(data, value_range) -> Iterator[_Batch]:
    for i, item in enumerate(data):
        y = None
        if isinstance(item, dict):
            raise TypeError("dataset_examples reads batches of images or (images, labels) tuples; "
                            f"batch {i} is a dict with keys {sorted(item)}.")
        if isinstance(item, (tuple, list)):
            if not item:
                continue
            x, y = item[0], (item[1] if len(item) > 1 else None)
        else:
            x = item
        x = _to_unit(x, value_range, f"Batch {i}")
        if x.ndim == 3:  # an unbatched dataset: one image per element
            x, y = x[None], (None if y is None else np.asarray(y)[None])
        if x.ndim != 4:
            raise ValueError(f"Batch {i} has shape {x.shape}; expected images (batch, H, W, C) "
                             "or one image (H, W, C).")
        yield _Batch(x, _labels_of(y, len(x)))


def image_size(network: nets.Network, size: int | tuple[int, int] | None = None) -> tuple[int, int]:
    """The `(height, width)` folder images are resized to: `size`, else the model's fixed input size, else 224.

    Args:
        network: a `Network`.
        size: one int (both sides), `(height, width)`, or None for the default.

    Returns:
        `(height, width)`, ints.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.examples.image_size(net), kv.examples.image_size(net, 64)
    ((224, 224), (64, 64))
    """
    if size is None:
        return nets.input_size(network.model, network.image_input) or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    return int(size[0]), int(size[1])


def layer_filters(network: nets.Network, layer: str, filters) -> list[int]:
    """The filters of `layer` asked for, checked and without repeats: None or `"all"` for every channel.

    Args:
        network: a `Network`.
        layer: the layer path.
        filters: None, `"all"`, an int or an iterable of ints.

    Returns:
        A list of ints, in the order given.

    Raises:
        ValueError: an empty list or a filter out of range.
        TypeError: a filter that is not an int.

    Example:
    >>> kv.examples.layer_filters(net, "block1_conv1", [3, 1, 3])
    [3, 1]
    """
    n_channels = nets.channels_of(network, layer)
    if isinstance(filters, Iterable) and not isinstance(filters, str):
        filters = [nets.check_filter(f, n_channels, layer) for f in filters]  # ints only: no silent int(1.5)
    return list(dict.fromkeys(nets.resolve_filters(filters, n_channels, layer, default=None)))


@dataclasses.dataclass(frozen=True, eq=False)
class DataSource:
    """Images to stream through a model: a folder, a NumPy array, or a `tf.data` pipeline / iterable of batches.

    Built by `data_source`, which checks the data before any model is built. Every image has an id, its
    place in the stream, and a source name: its file path relative to the folder (with `/`), or `#<id>`.

    Attributes:
        data: the folder path (a str), the array, or the iterable.
        names: a folder's image files (`list_images`), else None.
    """

    data: object
    names: tuple[str, ...] | None = None

    @property
    def total(self) -> int | None:
        """How many images the data holds, None for an iterable (unknown before it is read)."""
        if self.names is not None:
            return len(self.names)
        return len(self.data) if isinstance(self.data, np.ndarray) else None

    def source_name(self, image_id: int) -> str:
        """The source name of image `image_id`: its file path relative to the folder (with `/`), or `#<id>`."""
        if self.names is not None:
            return self.names[image_id].replace(os.sep, "/")
        return f"#{image_id}"

    def fingerprint(self) -> str | None:
        """A hash of the data, for cache keys; None for an iterable (it cannot be hashed without reading it).

        A folder's: its images' sorted relative paths, sizes and modification times; no file is opened, so
        it is cheap for tens of thousands of images, and adding, removing, renaming or rewriting an image
        changes it. An array's: its shape, dtype and bytes.

        Returns:
            32 hex digits (a str), or None.

        Example:
        >>> len(kv.examples.data_source("photos").fingerprint())
        32
        """
        digest = hashlib.blake2b(digest_size=16)
        if self.names is not None:
            for name in self.names:
                stat = os.stat(os.path.join(self.data, name))
                digest.update(json.dumps([name.replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns]).encode())
        elif isinstance(self.data, np.ndarray):
            arr = np.ascontiguousarray(self.data)
            digest.update(str((arr.shape, arr.dtype.str)).encode())
            digest.update(memoryview(arr).cast("B"))
        else:
            return None
        return digest.hexdigest()

    def image_size(self, network: nets.Network, size=None) -> tuple[int, int] | None:
        """The `(height, width)` the model sees the images at: a folder's `image_size(network, size)`, an
        array's own; None for an iterable (known once read)."""
        if self.names is not None:
            return image_size(network, size)
        return tuple(int(s) for s in self.data.shape[1:3]) if isinstance(self.data, np.ndarray) else None

    def batches(self, *, size, channels: int, batch_size: int, value_range=None) -> Iterator[_Batch]:
        """Float32 batches in [0, 1] of at most `batch_size` images, in id order (a folder's images resized
        to `size`; an unreadable file warns and reads as gray)."""
        if self.names is not None:
            return self._folder_batches(size, channels, batch_size)
        if isinstance(self.data, np.ndarray):
            return (_Batch(_to_unit(self.data[i : i + batch_size], value_range, f"data[{i}:{i + batch_size}]"), None)
                    for i in range(0, len(self.data), batch_size))
        return _rebatch(_iterable_batches(self.data, value_range), batch_size)

    def _folder_batches(self, size, channels: int, batch_size: int) -> Iterator[_Batch]:
        for i in range(0, len(self.names), batch_size):
            loaded = []
            for name in self.names[i : i + batch_size]:
                try:
                    loaded.append(kv_images.load_image(os.path.join(self.data, name), size=size, channels=channels))
                except ValueError as e:
                    warnings.warn(f"Skipping {name!r}: {e}", stacklevel=3)
                    loaded.append(np.full((*size, channels), CROP_PAD_VALUE, "float32"))
            yield _Batch(np.stack(loaded), None)


def data_source(data, argument: str = "data") -> DataSource:
    """`data` as a `DataSource`, checked: a folder is listed (and must hold an image), an array must be images.

    Args:
        data: a folder of images (searched recursively), a NumPy array `(N, H, W, C)` in [0, 1] or uint8, a
            `tf.data.Dataset` or any iterable of batches (or of `(images, labels)`), or a `DataSource` (returned
            as is).
        argument: the name of the caller's argument, for the messages. Defaults to `"data"`.

    Returns:
        A `DataSource`.

    Raises:
        ValueError: a missing folder, a folder with no image, an array that is not `(N, H, W, C)`.
        TypeError: `data` is none of these.

    Example:
    >>> kv.examples.data_source("photos").total == len(kv.examples.list_images("photos"))
    True
    >>> kv.examples.data_source(np.zeros((5, 8, 8, 3))).source_name(4)
    '#4'
    """
    if isinstance(data, DataSource):
        return data
    if isinstance(data, (str, os.PathLike)):
        return DataSource(os.fspath(data), tuple(list_images(data)))
    if isinstance(data, np.ndarray):
        if data.ndim != 4:
            raise ValueError(f"A NumPy {argument} array must be images (N, H, W, C). Received shape {data.shape}.")
        return DataSource(data)
    if isinstance(data, Iterable):
        return DataSource(data)
    raise TypeError(
        f"{argument} must be a folder path, a NumPy array (N, H, W, C) in [0, 1], or a tf.data.Dataset / "
        f"iterable of batches. Received: {type(data).__name__}."
    )


def _progress_bar(enabled: bool, layer: str, total: int | None, n_filters: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    what = f"{total:,} images" if total is not None else "a dataset"
    return tqdm(total=total, unit="image", desc=f"examples {layer}: {what}", leave=True,
                postfix=f"{n_filters} filters")


@dataclasses.dataclass
class DatasetExamples:
    """The dataset images that excite each filter most (`dataset_examples` returns it).

    Arrays are indexed `[filter slot, rank]`, best first; slots follow `filters`. Ranks with no image
    (a dataset with fewer than `k` images) hold id -1 and score -inf.

    Attributes:
        layer: the layer name.
        filters: the filter indices.
        ids: int `(F, k)`: each image's position in the data (its index in the array, its file in
            `names`, its place in the dataset's stream).
        scores: float32 `(F, k)`: the filter's maximum activation over the image.
        positions: int `(F, k, 2)`: `(row, col)` of that maximum in the layer's map, the patch grid for a
            token layer (-1 for a layer without positions).
        centers: float32 `(F, k, 2)`: the input pixel `(y, x)` at the center of that position's
            receptive field.
        crops: uint8 `(F, k, h, w, C)`: the receptive field around the maximum, cut from the image
            (gray where it reaches past the border); the whole image for a layer without positions.
        labels: int `(F, k)` class of each image for `(images, labels)` data, else None.
        names: file names by id for a folder, else None.
        sources: str `(F, k)`: each image's source name (`DataSource.source_name`: its path in the folder,
            with `/`, or `#<id>`); `""` where no image.
        receptive_field: the layer's `ReceptiveField` (for a token layer the crop window around a patch,
            `kerasviz.topk.token_field`), None for a layer without positions.
        count: images seen.
        seconds: wall time.
    """

    layer: str
    filters: list[int]
    ids: np.ndarray
    scores: np.ndarray
    positions: np.ndarray
    centers: np.ndarray
    crops: np.ndarray
    labels: np.ndarray | None
    names: list[str] | None
    sources: np.ndarray
    receptive_field: ReceptiveField | None
    count: int
    seconds: float = 0.0

    def slot(self, filter: int) -> int:
        """The row of `filter` in the arrays."""
        if filter not in self.filters:
            raise ValueError(f"Filter {filter} is not in these examples; they hold filters {self.filters}.")
        return self.filters.index(filter)

    def examples(self, filter: int) -> list[dict]:
        """The top images of `filter` as dicts: id, name, score, position, center, label, crop."""
        i = self.slot(filter)
        out = []
        for r in range(self.ids.shape[1]):
            image_id = int(self.ids[i, r])
            if image_id < 0:
                break
            out.append(dict(
                id=image_id, name=self.names[image_id] if self.names else None, score=float(self.scores[i, r]),
                position=tuple(int(p) for p in self.positions[i, r]),
                center=tuple(float(c) for c in self.centers[i, r]),
                label=None if self.labels is None else int(self.labels[i, r]), crop=self.crops[i, r],
            ))
        return out

    def __repr__(self):
        return (f"DatasetExamples(layer={self.layer!r}, filters={len(self.filters)}, k={self.ids.shape[1]}, "
                f"images seen={self.count})")


def dataset_examples(
    model,
    layer: str,
    data,
    k: int = 9,
    filters: int | Sequence[int] | str | None = None,
    batch_size: int = 32,
    *,
    size: int | tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    progress: bool = False,
    weights: str | None = "imagenet",
    preprocess=None,
    input_range: tuple[float, float] | None = None,
    tokens: str = "patches",
    extra_tokens: int | None = None,
) -> DatasetExamples:
    """The dataset images that excite each filter of a layer most, with crops of where they do.

    Streams `data` through the model `batch_size` images at a time and keeps a running top-k per
    filter; each image is scored by the filter's maximum activation over positions (the layer's own
    output, after its ReLU), and the crop is the layer's receptive field around that maximum.

    A token layer (`(batch, tokens, C)`, a vision transformer's) is read as its patch grid: each image is
    scored by its best patch token (class and register tokens left out), and the crop is that patch in
    the middle of a window of 3 x 3 patches (`kerasviz.topk.token_field`: the patch, not the whole image
    that attention lets a token see, so that the crop shows where the filter fired).

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path); a convolution, pooling or activation layer, or a
            token layer (a `(batch, C)` layer works too, with whole images as crops).
        data: a folder of images (searched recursively; resized to `size`), a NumPy array
            `(N, H, W, C)` in [0, 1] (or uint8), a `tf.data.Dataset` / any iterable of batches
            (arrays, or `(images, labels)` tuples; labels are kept with each example), or a `DataSource`.
        k: images kept per filter. Defaults to 9.
        filters: an index, a list of indices or `"all"`. Defaults to all the layer's channels.
        batch_size: images per forward pass; memory is one batch of activations plus `k` uint8 crops
            per filter (`F * k * crop_h * crop_w * C` bytes: 22 MB for 512 filters of VGG16
            `block3_conv3`). Defaults to 32.
        size: the size folder images are resized to. Defaults to the model's fixed input size, else 224.
        value_range: the range of the data's pixel values, e.g. `(0, 255)` for the float batches of
            `keras.utils.image_dataset_from_directory`. Defaults to [0, 1] for floats, 0-255 for uint8.
        progress: show a progress bar (`examples <layer>: <N> images`, with images/s). Defaults to False.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        preprocess: the model's preprocessing, for a `keras.Model` (a family name or a callable).
        input_range: `(low, high)` input range, for a `keras.Model` that takes scaled images.
        tokens: for a token layer: `"patches"` (the best patch token, cropped) or `"class"` (the class
            token, whole images as crops). Defaults to `"patches"`.
        extra_tokens: class and register tokens before the patches, for a token layer. Defaults to None
            (read from the token count against the patch grid).

    Returns:
        A `DatasetExamples`.

    Raises:
        ValueError: a missing or empty folder, data out of range or of the wrong shape, an unknown
            layer, a filter out of range, `k < 1` or `batch_size < 1`, a token layer whose tokens form no
            patch grid, or a `tokens` that does not fit the layer.

    Example:
    >>> ex = kv.examples.dataset_examples(net, "block3_conv3", "photos/", k=2, filters=range(4), size=64)
    >>> ex.crops.shape[:2], ex.examples(0)[0]["name"] in kv.examples.list_images("photos")
    ((4, 2), True)
    """
    start_time = time.perf_counter()
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int (images per filter). Received: k={k!r}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}.")
    source = data_source(data)  # a missing folder fails before the model is built
    network = nets.as_network(model, weights=weights, preprocess=preprocess, input_range=input_range)
    path, _ = nets.find_layer(network, layer)
    filters = layer_filters(network, path, filters)
    channels = network.input_channels
    batches = source.batches(size=image_size(network, size), channels=channels, batch_size=int(batch_size),
                             value_range=value_range)

    extractor = nets.feature_extractor(network, [path], pre_activation=False)
    top = RunningTopK(len(filters), int(k))
    field: ReceptiveField | None = None
    crop_size = None
    seen = 0
    has_labels = None
    bar = _progress_bar(progress, path, source.total, len(filters))
    try:
        for batch in batches:
            x = batch.images
            if x.shape[-1] != channels:
                raise ValueError(f"The model takes {channels}-channel images; the data has {x.shape[-1]} channels "
                                 f"(batch shape {x.shape}).")
            if crop_size is None:
                reducer, field, crop_size = reader(network, path, extractor, filters, x.shape[1:3], tokens=tokens,
                                                   extra_tokens=extra_tokens)
            if has_labels is None:
                has_labels = batch.labels is not None
            inputs = network.preprocess(np.array(x, "float32"))
            best, pos = reducer.predict_on_batch(network.model_inputs(keras.ops.convert_to_numpy(inputs), extractor))
            best, pos = np.asarray(best, "float32"), np.asarray(pos, "int32")
            if field is not None:
                centers = np.asarray(field.offset, "float32") + pos * np.asarray(field.jump, "float32")
            else:
                centers = np.full(pos.shape, np.nan, "float32")
            labels = batch.labels if has_labels and batch.labels is not None else None
            top.update(best, pos, centers, seen, labels, cutter(kv_images.to_uint8(x), pos, field, crop_size))
            seen += len(x)
            if bar is not None:
                bar.update(len(x))
    finally:
        if bar is not None:
            bar.close()
    if seen == 0:
        raise ValueError("data holds no images.")
    sources = np.array([[source.source_name(int(i)) if i >= 0 else "" for i in row] for row in top.ids], dtype=str)
    return DatasetExamples(
        layer=path, filters=filters, ids=top.ids, scores=top.scores, positions=top.positions,
        centers=top.centers, crops=top.crops, labels=top.labels if has_labels else None,
        names=None if source.names is None else list(source.names), sources=sources,
        receptive_field=field, count=seen, seconds=time.perf_counter() - start_time,
    )


__all__ = ["DataSource", "DatasetExamples", "data_source", "dataset_examples", "image_size", "layer_filters",
           "list_images"]
