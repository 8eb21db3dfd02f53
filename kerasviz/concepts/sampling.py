"""A layer's spatial activation vectors over the user's images: streamed, sampled to a budget, cached.

`sample_activations` streams any data `kerasviz.examples.DataSource` reads (a folder, an array, a `tf.data`
pipeline, an iterable of batches) through the model one batch at a time and keeps a uniform random sample of
the layer's positions: every position of every image gets a seeded random key and the `budget` lowest keys are
kept (bottom-k sampling, a reservoir that never holds more than `budget` vectors). Memory is the budget plus
one batch, whatever the number of images; the sample is the same for any `batch_size`. Concepts
(`kerasviz.concepts.factor`) and the activation atlas factorize or project these vectors.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from kerasviz import examples as kv_examples
from kerasviz import nets

SAMPLES_VERSION = 1  # bump when the meaning of the cached sample files changes

SAMPLES_FOLDER = "samples"  # the subfolder of the cache root that holds the sample files

DEFAULT_BUDGET = 100_000  # vectors kept: Lucid's activation atlases sample 100,000 per layer


@dataclasses.dataclass
class Samples:
    """Spatial activation vectors of one layer, sampled over a data set (`sample_activations` returns it).

    Row `m` is the layer's output (after its activation) at position `(y[m], x[m])` of image
    `image_index[m]`; rows are sorted by image, then row, then column.

    Attributes:
        vectors: float32 `(M, C)`.
        image_index: int `(M,)`: each vector's image, its place in the data (`source.source_name(i)` names it).
        y: int `(M,)`: the row of the position in the layer's map.
        x: int `(M,)`: the column.
        grid: `(rows, cols)` of the layer's map (`(1, 1)` for a layer without positions).
        labels: int `(M,)`: the label of each vector's image, for `(images, labels)` data; else None.
        source: the `kerasviz.examples.DataSource` the images came from.
        layer: the layer path.
        count: images seen.
        image_size: `(height, width)` the images were seen at.
        seconds: wall time of the pass (0 when read from the cache).
    """

    vectors: np.ndarray
    image_index: np.ndarray
    y: np.ndarray
    x: np.ndarray
    grid: tuple[int, int]
    labels: np.ndarray | None
    source: kv_examples.DataSource
    layer: str = ""
    count: int = 0
    image_size: tuple[int, int] | None = None
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.vectors)

    def __repr__(self):
        return (f"Samples(layer={self.layer!r}, vectors={self.vectors.shape}, grid={self.grid}, "
                f"images seen={self.count})")


class _Reservoir:
    """The `budget` lowest-keyed vectors seen so far (bottom-k sampling), in preallocated arrays."""

    def __init__(self, budget: int, seed: int):
        self.budget = budget
        self.rng = np.random.default_rng(seed)
        self.filled = 0
        self.keys = np.full(budget, np.inf)
        self.vectors: np.ndarray | None = None
        self.meta = np.full((budget, 4), -1, "int64")  # image, y, x, label

    def offer(self, vectors: np.ndarray, meta: np.ndarray) -> None:
        """Offer `vectors` `(n, C)` with `meta` `(n, 4)`; each draws its key, in stream order."""
        keys = self.rng.random(len(vectors))
        if self.vectors is None:
            self.vectors = np.zeros((self.budget, vectors.shape[1]), "float32")
        take = min(self.budget - self.filled, len(vectors))
        if take:
            slots = slice(self.filled, self.filled + take)
            self.keys[slots], self.vectors[slots], self.meta[slots] = keys[:take], vectors[:take], meta[:take]
            self.filled += take
            keys, vectors, meta = keys[take:], vectors[take:], meta[take:]
        if not len(keys):
            return
        candidates = np.nonzero(keys < self.keys.max())[0]
        if not len(candidates):
            return
        merged = np.concatenate([self.keys, keys[candidates]])
        keep = np.argpartition(merged, self.budget - 1)[: self.budget]
        incoming = keep[keep >= self.budget] - self.budget
        evicted = np.setdiff1d(np.arange(self.budget), keep[keep < self.budget], assume_unique=True)
        chosen = candidates[incoming]
        self.keys[evicted], self.vectors[evicted], self.meta[evicted] = keys[chosen], vectors[chosen], meta[chosen]

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept vectors and meta, sorted by image, row, column."""
        meta = self.meta[: self.filled]
        order = np.lexsort((meta[:, 2], meta[:, 1], meta[:, 0]))
        vectors = self.vectors[: self.filled] if self.vectors is not None else np.zeros((0, 0), "float32")
        return vectors[order], meta[order]


def _spatial(out: np.ndarray, path: str, image_size: tuple[int, int]) -> np.ndarray:
    """A layer's batch output as `(B, rows, cols, C)`; a token layer's as its patch grid (class and register
    tokens left out, `kerasviz.nets.tokens`)."""
    if out.ndim == 4:
        return out
    if out.ndim == 2:
        return out[:, None, None, :]
    if out.ndim == 3:
        return nets.tokens.to_grid(out, nets.tokens.layer_grid(out.shape, path, image_size))
    raise ValueError(f"sample_activations needs a layer with output (batch, H, W, C), a token layer (batch, tokens, C) "
                     f"or (batch, C); layer {path!r} gives shape {out.shape}. Pick a convolution, pooling, activation "
                     "or transformer block layer.")


def forward(network: nets.Network, extractor, x: np.ndarray, path: str) -> np.ndarray:
    """The layer's output `(B, rows, cols, C)` (float32) for images `x` in [0, 1]: one forward pass of `extractor`."""
    inputs = keras.ops.convert_to_numpy(network.preprocess(np.array(x, "float32")))
    out = extractor.predict_on_batch(network.model_inputs(inputs, extractor))
    return _spatial(np.asarray(out[0] if isinstance(out, (list, tuple)) else out, "float32"), path, x.shape[1:3])


def check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}. Received: {name}={value!r}.")
    return int(value)


def samples_settings(network: nets.Network, layer: str, data: str, *, budget: int, seed: int, size,
                     value_range) -> dict:
    """What a layer's samples depend on, as a JSON-able dict (the cache file's key is its hash).

    Args:
        network: a `Network`.
        layer: the layer path.
        data: the data's fingerprint (`DataSource.fingerprint`) or the caller's key.
        budget: vectors kept.
        seed: the sampling seed.
        size: the `(height, width)` the images are seen at, or None.
        value_range: the data's value range, or None.

    Returns:
        A dict: version, model, weights fingerprint (post-activation), preprocessing, layer, data, budget,
        seed, size, value range.
    """
    from kerasviz.atlas import cache

    return {
        "version": SAMPLES_VERSION,
        "model": network.name,
        "weights": cache.weights_fingerprint(network, layer, pre_activation=False),
        "preprocess": cache.describe_preprocess(network.preprocess),
        "layer": layer,
        "data": data,
        "budget": int(budget),
        "seed": int(seed),
        "size": None if size is None else [int(s) for s in size],
        "value_range": None if value_range is None else [float(v) for v in value_range],
    }


def _cache_file(cache_dir: str, layer: str, settings: dict) -> str:
    from kerasviz.atlas import cache, storage

    return storage.join(cache_dir, SAMPLES_FOLDER, f"{cache.slug(layer)}-{cache.cache_key(settings)}.npz")


def _load(path: str, settings: dict, source) -> Samples | None:
    from kerasviz.atlas import storage

    z = storage.read_arrays(path, settings)
    if z is None:
        return None
    try:
        labels = z["labels"] if bool(z["has_labels"]) else None
        return Samples(z["vectors"].astype("float32"), z["image_index"], z["y"], z["x"],
                       tuple(int(g) for g in z["grid"]), labels, source, settings["layer"], int(z["count"]),
                       None if z["image_size"].size == 0 else tuple(int(s) for s in z["image_size"]))
    except (KeyError, TypeError, ValueError):
        return None  # a foreign file: recomputed


def _save(path: str, settings: dict, samples: Samples) -> None:
    from kerasviz.atlas import storage

    storage.write_arrays(path, dict(
        vectors=samples.vectors, image_index=samples.image_index, y=samples.y, x=samples.x,
        grid=np.asarray(samples.grid, "int64"), has_labels=np.asarray(samples.labels is not None),
        labels=samples.labels if samples.labels is not None else np.zeros(0, "int64"),
        count=np.asarray(samples.count, "int64"), image_size=np.asarray(samples.image_size or (), "int64")), settings)


def sample_activations(
    network,
    layer: str,
    images,
    *,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
    batch_size: int = 32,
    size: int | tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    cache_dir: str | None = None,
    data_key: str | None = None,
    progress: bool = False,
) -> Samples:
    """A seeded uniform sample of a layer's spatial activation vectors over a data set, streamed.

    The images go through the model `batch_size` at a time (one forward pass each, up to `layer`); every
    position `(image, row, col)` draws a random key from `seed`, in stream order, and the `budget` positions
    with the lowest keys are kept (bottom-k sampling). So memory is `budget * C` floats plus one batch,
    whatever the number of images, and the sample does not depend on `batch_size`. The vectors are the
    layer's output after its activation (a fused ReLU included).

    With `cache_dir`, the sample is cached like the explorer's dataset examples: one `.npz` per layer and
    data under `<cache_dir>/samples/`, keyed by the weights up to `layer`, the preprocessing, the data's
    fingerprint (a folder's file names, sizes and times; an array's bytes), `budget`, `seed` and the size. A
    `tf.data.Dataset` or other iterable is cached only when named by `data_key`.

    Args:
        network: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path): a layer with output `(batch, H, W, C)`, or `(batch, C)`
            (one vector per image).
        images: a folder of images (searched recursively, resized to `size`), a NumPy array `(N, H, W, C)` in
            [0, 1] or uint8, a `tf.data.Dataset` / iterable of batches (or of `(images, labels)`: the labels
            are kept per vector), or a `kerasviz.examples.DataSource`.
        budget: the most vectors kept. Defaults to 100,000.
        seed: the sampling seed. Defaults to 0.
        batch_size: images per forward pass. Defaults to 32.
        size: the size folder images are resized to. Defaults to the model's fixed input size, else 224.
        value_range: the data's pixel range, e.g. `(0, 255)`. Defaults to [0, 1] for floats, 0-255 for uint8.
        cache_dir: a folder or fsspec URL to cache the sample in. Defaults to None (not cached).
        data_key: names an iterable's data in the cache key (any string that changes when the data does).
        progress: show a progress bar. Defaults to False.

    Returns:
        A `Samples`.

    Raises:
        ValueError: a missing or empty folder, data of the wrong shape or range, an unknown layer (with close
            names), a layer without channels last, `budget`, `batch_size` below 1, or no image in the data.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> s = kv.sample_activations(net, "block3_conv3", "photos/", budget=500, size=64)
    >>> s.vectors.shape, s.grid
    ((500, 256), (16, 16))
    """
    start_time = time.perf_counter()
    budget, batch_size = check_int("budget", budget), check_int("batch_size", batch_size)
    seed = check_int("seed", seed, low=0)
    source = kv_examples.data_source(images, "images")  # a missing folder fails before the model is built
    network = nets.as_network(network)
    path, _ = nets.find_layer(network, layer)
    seen_size = source.image_size(network, size)
    file = settings = None
    if cache_dir is not None and (data_key is not None or source.total is not None):
        data = f"key:{data_key}" if data_key is not None else source.fingerprint()
        settings = samples_settings(network, path, data, budget=budget, seed=seed, size=seen_size,
                                    value_range=value_range)
        file = _cache_file(cache_dir, path, settings)
        cached = _load(file, settings, source)
        if cached is not None:
            return cached
    channels = network.input_channels
    extractor = nets.get_extractor(network, [path], False)
    reservoir = _Reservoir(budget, seed)
    grid = (0, 0)
    seen = 0
    has_labels = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=source.total, unit="image", desc=f"samples {path}", leave=True)
    try:
        for batch in source.batches(size=kv_examples.image_size(network, size), channels=channels,
                                    batch_size=batch_size, value_range=value_range):
            x = batch.images
            if x.shape[-1] != channels:
                raise ValueError(f"The model takes {channels}-channel images; the images have {x.shape[-1]} "
                                 f"channels (batch shape {x.shape}).")
            if has_labels is None:
                has_labels = batch.labels is not None
                seen_size = tuple(int(s) for s in x.shape[1:3])
            acts = forward(network, extractor, x, path)
            b, rows, cols, c = acts.shape
            grid = (max(grid[0], rows), max(grid[1], cols))
            img, yy, xx = np.meshgrid(seen + np.arange(b), np.arange(rows), np.arange(cols), indexing="ij")
            labels = batch.labels if has_labels and batch.labels is not None else np.full(b, -1)
            lab = np.broadcast_to(np.asarray(labels, "int64")[:, None, None], img.shape)
            meta = np.stack([img.ravel(), yy.ravel(), xx.ravel(), lab.ravel()], axis=1)
            reservoir.offer(acts.reshape(-1, c), meta)
            seen += b
            if bar is not None:
                bar.update(b)
    finally:
        if bar is not None:
            bar.close()
    if seen == 0:
        raise ValueError("images holds no images: pass a folder with image files, a non-empty array or dataset.")
    vectors, meta = reservoir.sorted()
    samples = Samples(vectors=vectors, image_index=meta[:, 0].copy(), y=meta[:, 1].copy(), x=meta[:, 2].copy(),
                      grid=grid, labels=meta[:, 3].copy() if has_labels else None, source=source, layer=path,
                      count=seen, image_size=seen_size, seconds=time.perf_counter() - start_time)
    if file is not None:
        _save(file, settings, samples)
    return samples


__all__ = ["DEFAULT_BUDGET", "Samples", "sample_activations", "samples_settings"]
