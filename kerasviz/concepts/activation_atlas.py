"""Activation atlases (Carter et al., Distill 2019): what a layer's spatial activations look like, as one map.

The recipe, after Lucid's `recipes/activation_atlas`:

1. sample spatial activation vectors of `layer` over the user's images, up to a budget
   (`kerasviz.concepts.sampling.sample_activations`: streamed, bounded memory);
2. for a class-filtered atlas (`class_index=`), keep the vectors the class relies on: those whose attribution to
   the class's logit (gradient x activation through the model's pooled Dense head) is highest;
3. project them to 2-D with UMAP (umap-learn; cosine metric, ~50 neighbours, seeded), the map scaled to [0, 1]
   with the 1% outliers at each end clipped (Lucid's `normalize_layout`);
4. lay a `grid` x `grid` grid over the map and drop the cells with fewer than `min_count` vectors;
5. average each cell's vectors into a direction and render every direction by feature visualization, all
   icons through one `optimize.plan` (its chunks are batches of icons, one compiled step), with Lucid's
   dot x cosine^power objective (`objectives.direction` for each image's own direction);
6. tile the icons into the atlas image; each cell keeps its count, its members (the samples nearest its mean)
   and, where the model ends in a pooled Dense head, the class its direction pushes most.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings

import numpy as np
from keras import ops

from kerasviz import images as kv_images
from kerasviz import nets, optimize
from kerasviz.concepts.sampling import Samples, check_int, sample_activations
from kerasviz.engine import objectives

ICON_PRESET = "fast"  # an atlas renders hundreds of icons: the fast preset unless one is given
UMAP_NEIGHBORS = 50  # Lucid's n_neighbors for 100,000 vectors
UMAP_MIN_DIST = 0.05  # Lucid's min_dist
SMALL_SAMPLE_SHARE = 10  # fewer vectors: n_neighbors = M // SMALL_SAMPLE_SHARE (a small sample's local structure)
MIN_NEIGHBORS = 2
OUTLIER_PERCENTILE = 1.0  # outliers beyond the 1% of vectors at each end (Lucid's normalize_layout) ...
LAYOUT_MARGIN = 0.1  # ... and a 10% margin are clipped, so a few strays do not shrink the map
MEMBERS = 9  # members kept per cell: the samples nearest the cell's mean
COSINE_POWER = 2.0  # Lucid's direction_neuron_cossim_S default
CLASS_SHARE = 0.25  # a class-filtered atlas keeps this share of the samples (highest attribution, positive only)
BACKGROUND = 255  # the atlas's empty cells (white, as Lucid's canvas)
INSTALL = 'pip install "kerasviz[concepts]"'
POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling1D")
PASS_THROUGH = ("Dropout", "Activation", "Softmax", "Identity")


@dataclasses.dataclass
class AtlasCell:
    """One cell of an activation atlas.

    Attributes:
        row, col: the cell's place in the grid (row 0 at the top: the map's y, `coords[:, 1]`, grows downward;
            col: the map's x, `coords[:, 0]`).
        count: how many sampled vectors fell in it.
        direction: float32 `(C,)`, the mean of those vectors (what its icon renders).
        icon: uint8 `(h, w, 3)`, the direction's feature visualization.
        top_class: the class whose logit the direction raises most through the model's pooled Dense head, or
            None where the layers after `layer` are not such a head.
        members: int `(k,)`, indices into `ActivationAtlas.samples` of the cell's vectors nearest its mean
            (cosine), nearest first; `samples.image_index[members]`, `.y`, `.x` say where they come from.
    """

    row: int
    col: int
    count: int
    direction: np.ndarray
    icon: np.ndarray
    top_class: int | None
    members: np.ndarray


@dataclasses.dataclass
class ActivationAtlas:
    """An activation atlas: the tiled icons and the data behind each cell.

    Attributes:
        image: uint8 `(grid * h, grid * w, 3)`, the icons at their cells, empty cells white.
        cells: the `AtlasCell`s kept, in row-major order.
        coords: float32 `(M, 2)`, each sample's place on the map, in [0, 1].
        samples: the `Samples` mapped (for a class-filtered atlas: the vectors kept for the class).
        grid: cells per side.
        layer: the layer path.
        class_index: the class a class-filtered atlas keeps, or None.
        head: how `top_class` (and the class filter) reads the class: `"dense"` (the layer's pooled Dense head,
            exact for a direction held at every position) or None (no such head: no `top_class`).
        settings: what made it (the icons' settings, the UMAP settings, `min_count`).
    """

    image: np.ndarray
    cells: list[AtlasCell]
    coords: np.ndarray
    samples: Samples
    grid: int
    layer: str
    class_index: int | None = None
    head: str | None = None
    settings: dict = dataclasses.field(default_factory=dict)

    def cells_data(self) -> list[dict]:
        """The cells as JSON data: `row`, `col`, `count`, `top_class` and `members` (each member's `sample`
        index, `image` id, `source` name and `y`, `x` position on the layer's map)."""
        s = self.samples
        return [dict(row=c.row, col=c.col, count=c.count, top_class=c.top_class,
                     members=[dict(sample=int(m), image=int(s.image_index[m]), source=s.source.source_name(
                         int(s.image_index[m])) if s.source is not None else f"#{int(s.image_index[m])}",
                         y=int(s.y[m]), x=int(s.x[m])) for m in c.members]) for c in self.cells]

    def save(self, folder: str | os.PathLike) -> tuple[str, str]:
        """Write `atlas.png` and `cells.json` (the `cells_data`, with the layer, grid and class) into `folder`.

        Returns:
            The two paths written.
        """
        os.makedirs(folder, exist_ok=True)
        png = kv_images.save_image(self.image, os.path.join(folder, "atlas.png"))
        path = os.path.join(folder, "cells.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(layer=self.layer, grid=self.grid, class_index=self.class_index, head=self.head,
                           icon_size=list(self.cells[0].icon.shape[:2]), cells=self.cells_data()), f, indent=1)
        return png, path

    def __repr__(self):
        cls = f", class_index={self.class_index}" if self.class_index is not None else ""
        return (f"ActivationAtlas(layer={self.layer!r}, grid={self.grid}, cells={len(self.cells)}, "
                f"samples={len(self.coords)}{cls})")


def _import_umap():
    try:
        import umap
    except ImportError as e:
        raise ImportError(f"The activation atlas maps activations with umap-learn: {INSTALL}") from e
    return umap


def layout(vectors: np.ndarray, *, n_neighbors: int | None = None, seed: int = 0) -> np.ndarray:
    """Vectors projected to 2-D by UMAP (cosine metric), scaled to [0, 1] with the outliers clipped.

    Args:
        vectors: float `(M, C)`.
        n_neighbors: UMAP's neighbourhood. Defaults to 50 (Lucid's), or `M // 10` for fewer than 500 vectors.
        seed: UMAP's `random_state`: the same seed gives the same map (UMAP then runs on one thread).

    Returns:
        float32 `(M, 2)` in [0, 1].

    Raises:
        ImportError: umap-learn is not installed (the message says `pip install "kerasviz[concepts]"`).

    Example:
    >>> from kerasviz.concepts.activation_atlas import layout
    >>> xy = layout(np.random.default_rng(0).random((60, 8)), seed=0)
    >>> xy.shape, float(xy.min()), float(xy.max())
    ((60, 2), 0.0, 1.0)
    """
    umap = _import_umap()
    vectors = np.asarray(vectors, "float32")
    m = len(vectors)
    k = n_neighbors or min(UMAP_NEIGHBORS, max(MIN_NEIGHBORS, m // SMALL_SAMPLE_SHARE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's notes on n_jobs with a seed, and numba's
        xy = umap.UMAP(n_components=2, n_neighbors=min(k, m - 1), min_dist=UMAP_MIN_DIST, metric="cosine",
                       random_state=seed, n_jobs=1).fit_transform(vectors)
    low = np.percentile(xy, OUTLIER_PERCENTILE, axis=0)
    high = np.percentile(xy, 100 - OUTLIER_PERCENTILE, axis=0)
    low, high = low - LAYOUT_MARGIN * (high - low), high + LAYOUT_MARGIN * (high - low)
    xy = np.clip(xy, low, high)
    xy = xy - xy.min(axis=0)
    return (xy / np.maximum(xy.max(axis=0), 1e-12)).astype("float32")


def grid_cells(coords: np.ndarray, grid: int, min_count: int) -> list[tuple[int, int, np.ndarray]]:
    """The grid cells holding at least `min_count` points, row-major: `(row, col, indices)` each.

    Args:
        coords: `(M, 2)` in [0, 1] (x, y).
        grid: cells per side.
        min_count: the fewest points a cell keeps.

    Example:
    >>> from kerasviz.concepts.activation_atlas import grid_cells
    >>> grid_cells(np.array([[0.1, 0.1], [0.2, 0.1], [0.9, 0.9]]), 2, 2)
    [(0, 0, array([0, 1]))]
    """
    bins = np.minimum((np.asarray(coords) * grid).astype(int), grid - 1)
    flat = bins[:, 1] * grid + bins[:, 0]
    out = []
    for cell in np.unique(flat):
        members = np.flatnonzero(flat == cell)
        if len(members) >= min_count:
            out.append((int(cell // grid), int(cell % grid), members))
    return out


def _nearest(vectors: np.ndarray, mean: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` vectors nearest `mean` by cosine, nearest first (ties by index)."""
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(mean)), 1e-12)
    cosine = vectors @ mean / np.maximum(norms, 1e-12)
    return np.argsort(-cosine, kind="stable")[:k]


# ------------------------------------------------------------------------------------------ the head


def dense_head(network: nets.Network, layer: str) -> list | None:
    """The layers after `layer` when they are a pooled Dense head: a global pooling, then Dense layers (and
    Dropout or activations) up to the model's only output. None otherwise (a nested layer, more convolutions
    after it, a branch, several outputs)."""
    model = network.model
    top = [lyr.name for lyr in model.layers]
    if layer not in top or len(model.outputs) != 1:
        return None
    after = model.layers[top.index(layer) + 1:]
    kinds = [type(lyr).__name__ for lyr in after]
    if not after or kinds[0] not in POOLING or "Dense" not in kinds:
        return None
    if any(k not in ("Dense", *PASS_THROUGH) for k in kinds[1:]):
        return None
    chain = [model.layers[top.index(layer)], *after]
    for prev, lyr in zip(chain[:-1], chain[1:], strict=True):  # one chain: each layer reads the one before
        nodes = getattr(lyr, "_inbound_nodes", [])  # the first is the model's own; others are later calls
        if not nodes or len(nodes[0].input_tensors) != 1 or nodes[0].input_tensors[0] is not prev.output:
            return None
    return after[1:]


def head_logits(head: list, directions: np.ndarray) -> np.ndarray:
    """The head's logits (before a final softmax) for each direction held at every position of the layer: a
    pooled map of one vector is that vector, so the Dense layers read the direction itself."""
    x = ops.convert_to_tensor(np.asarray(directions, "float32"))
    for i, lyr in enumerate(head):
        last = i == len(head) - 1
        kind = type(lyr).__name__
        if kind == "Dense":
            x = ops.matmul(x, lyr.kernel) + (lyr.bias if lyr.use_bias else 0.0)
            act = getattr(lyr.activation, "__name__", "linear")
            if not (last or act == "softmax" and all(type(r).__name__ in PASS_THROUGH for r in head[i + 1:])):
                x = lyr.activation(x)
        elif kind in ("Activation",) and not last:
            x = lyr(x)
    return np.asarray(ops.convert_to_numpy(x), "float64")


def class_attribution(head: list, vectors: np.ndarray, class_index: int) -> np.ndarray:
    """Each vector's attribution to class `class_index`: the head's logit for the vector held at every position,
    minus the zero vector's. After global average pooling and one Dense layer this is gradient x activation
    exactly (times the number of positions), Lucid's class filter; after max pooling or through hidden Dense
    layers it is this gradient-free difference (the vector's own push on the class), not the gradient."""
    logits = head_logits(head, np.concatenate([np.zeros((1, vectors.shape[1]), "float32"), vectors]))
    return logits[1:, class_index] - logits[0, class_index]


# ------------------------------------------------------------------------------------------ icons


def icon_objective(layer: str, directions: np.ndarray, *, cosine_power: float = COSINE_POWER
                   ) -> objectives.Objective:
    """Each image's own direction, `objectives.direction(layer, directions[i], cosine_power=...)` for the image
    whose filter is `i`: one objective that follows the batch's filters, so the icons run in chunks of one
    compiled step (`objectives.per_image` would score every direction on every image and tie the batch to
    the number of icons).

    Args:
        layer: the layer path.
        directions: float `(K, C)`, one direction per icon.
        cosine_power: as in `objectives.direction`. Defaults to 2.0 (Lucid's icons).

    Returns:
        An `Objective`; its key is the layer, the directions' bytes and the power, so the same atlas made twice
        shares one compiled step.
    """
    d = np.asarray(directions, "float32")
    norms = np.linalg.norm(d, axis=1).astype("float32")

    def fn(c: objectives.Context):
        a = ops.cast(c.acts[layer], "float32")
        shape = (-1,) + (1,) * (len(a.shape) - 2) + (d.shape[1],)
        v = ops.reshape(ops.take(ops.convert_to_tensor(d), c.filters, axis=0), shape)
        dot = ops.sum(a * v, axis=-1)
        if cosine_power:
            n = ops.reshape(ops.take(ops.convert_to_tensor(norms), c.filters, axis=0), shape[:-1])
            norm = ops.sqrt(ops.sum(ops.square(a), axis=-1) + 1e-8) * n
            dot = dot * ops.power(ops.maximum(dot / norm, 1e-2), cosine_power)
        return ops.mean(ops.reshape(dot, (ops.shape(dot)[0], -1)), axis=1)

    def check(network):
        n = nets.channels_of(network, layer)
        if d.ndim != 2 or d.shape[1] != n:
            raise ValueError(f"directions must have shape (icons, {n}) for layer {layer!r}. Received {d.shape}.")

    key = ("activation_atlas.icons", layer, hashlib.blake2b(d.tobytes(), digest_size=16).hexdigest(),
           float(cosine_power))
    return objectives.Objective(fn, f"icons({layer!r}, {len(d)} directions, cosine_power={cosine_power})",
                                (layer,), validate=check, key=key)


def _canvas(cells: list[tuple[int, int]], icons: np.ndarray, grid: int) -> np.ndarray:
    h, w = icons.shape[1:3]
    canvas = np.full((grid * h, grid * w, 3), BACKGROUND, "uint8")
    for (row, col), icon in zip(cells, icons, strict=True):
        canvas[row * h:(row + 1) * h, col * w:(col + 1) * w] = icon[..., :3]
    return canvas


# ------------------------------------------------------------------------------------------ the atlas


def _class_filter(samples: Samples, head, class_index, network, layer: str, share: float):
    if head is None:
        raise ValueError(f"class_index needs a classifier whose layers after {layer!r} are a pooled Dense head "
                         f"(global pooling, then Dense layers); {network.name}'s are not. Use a layer just before "
                         "the head's pooling, or class_index=None.")
    n_classes = int(head[-1].units if type(head[-1]).__name__ == "Dense" else
                    [lyr for lyr in head if type(lyr).__name__ == "Dense"][-1].units)
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or \
            not 0 <= class_index < n_classes:
        raise ValueError(f"class_index must be an int in 0-{n_classes - 1} ({network.name} has {n_classes} "
                         f"classes). Received: class_index={class_index!r}.")
    attribution = class_attribution(head, samples.vectors, int(class_index))
    order = np.argsort(-attribution, kind="stable")[:max(1, int(round(share * len(attribution))))]
    keep = np.sort(order[attribution[order] > 0])
    if len(keep) < 2:
        raise ValueError(f"No sampled vector of {layer!r} raises class {class_index}'s logit: the class filter "
                         "keeps nothing. Give images of that class, or a larger budget.")
    return dataclasses.replace(
        samples, vectors=samples.vectors[keep], image_index=samples.image_index[keep], y=samples.y[keep],
        x=samples.x[keep], labels=None if samples.labels is None else samples.labels[keep])


def activation_atlas(
    model,
    layer: str,
    images,
    *,
    grid: int = 20,
    budget: int = 100_000,
    class_index: int | None = None,
    min_count: int = 6,
    cosine_power: float = COSINE_POWER,
    class_share: float = CLASS_SHARE,
    n_neighbors: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | None = None,
    preset=ICON_PRESET,
    progress: bool = True,
    **options,
) -> ActivationAtlas:
    """An activation atlas of `layer` over `images`: its activation vectors mapped by UMAP, one icon per cell.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path); a spatial layer `(batch, H, W, C)`.
        images: a folder of images, an array `(N, H, W, 3)`, a `tf.data.Dataset` or iterable of batches (or of
            `(images, labels)`): see `kerasviz.examples.data_source`.
        grid: cells per side of the map. Defaults to 20.
        budget: the most activation vectors sampled (spread over the images and positions). Defaults to
            100,000 (Lucid's).
        class_index: for a class-filtered atlas, the class whose vectors are kept: the `class_share` of the
            samples with the highest positive attribution to its logit through the model's pooled Dense head
            (see `class_attribution`: gradient x activation for an average-pooled linear head). None maps every
            sample. Defaults to None.
        min_count: cells with fewer vectors are dropped. Defaults to 6 (Lucid drops 5 or fewer).
        cosine_power: the icons' objective is dot x cosine^power (see `objectives.direction`). Defaults to 2.0.
        class_share: the share of samples a class-filtered atlas keeps. Defaults to 0.25.
        n_neighbors: UMAP's neighbourhood (see `layout`). Defaults to 50, fewer for small samples.
        image_size: the size folder images are resized to for the sampling pass. Defaults to the model's
            input size, else 224 (see `kerasviz.concepts.sampling.sample_activations`).
        cache_dir: cache the sampled vectors there (see `sample_activations`). Defaults to None.
        preset: the icons' preset. Defaults to `"fast"`.
        progress: show the progress bars of the sampling pass and of the icons. Defaults to True.
        **options: the model's options (`weights`, `preprocess`, `input_range`), the run's (`seed`,
            `batch_size`: icons per compiled batch, ...) and `Preset` fields (`size`: the icons' size, `steps`,
            ...), as in `kv.visualize_filters`.

    Returns:
        An `ActivationAtlas`.

    Raises:
        ValueError: a bad `grid`, `budget` or `min_count`, a layer without a spatial map, `class_index` for a
            model without a pooled Dense head or out of its range, or no cell with `min_count` vectors.
        TypeError: an unknown option (close names suggested).
        ImportError: umap-learn is missing (`pip install "kerasviz[concepts]"`).

    Example:
    >>> atlas = kv.activation_atlas("VGG16", "block3_conv3", "photos", grid=3, budget=200, min_count=2,
    ...                             image_size=64, weights="hed", size=32, steps=2, progress=False)
    >>> atlas.image.shape[0] == 3 * atlas.cells[0].icon.shape[0], atlas.head  # VGG16 without its top: no head
    (True, None)
    """
    grid = check_int("grid", grid)
    budget = check_int("budget", budget, low=2)
    min_count = check_int("min_count", min_count)
    if not 0 < class_share <= 1:
        raise ValueError(f"class_share must be in (0, 1]. Received: class_share={class_share!r}.")
    network, run, overrides = optimize.split_options(model, options)
    path, _ = nets.find_layer(network, layer)
    head = dense_head(network, path)
    samples = sample_activations(network, path, images, budget=budget, seed=run.seed, size=image_size,
                                 cache_dir=cache_dir, progress=progress)
    if class_index is not None:
        samples = _class_filter(samples, head, class_index, network, path, class_share)
    if len(samples.vectors) < 3:
        raise ValueError(f"{len(samples.vectors)} vectors of {path!r} are too few to map: give more images or a "
                         "larger budget.")
    coords = layout(samples.vectors, n_neighbors=n_neighbors, seed=run.seed)
    kept = grid_cells(coords, grid, min_count)
    if not kept:
        raise ValueError(f"No cell of the {grid}x{grid} grid holds {min_count} of the {len(coords)} vectors. Use "
                         "a smaller grid or min_count, or a larger budget.")
    directions = np.stack([samples.vectors[m].mean(axis=0) for _, _, m in kept]).astype("float32")
    plan = optimize.plan(network, objective=icon_objective(path, directions, cosine_power=cosine_power),
                         filters=range(len(kept)), preset=preset, **run.keywords(), **overrides)
    result = plan.run(progress=progress)
    if result.unfinished:  # interrupted: keep the icons that finished
        kept = [kept[i] for i in result.filters]
        directions = directions[result.filters]
    top = np.argmax(head_logits(head, directions), axis=1) if head is not None else [None] * len(kept)
    cells = [AtlasCell(row=r, col=c, count=len(m), direction=d, icon=icon, top_class=None if t is None else int(t),
                       members=m[_nearest(samples.vectors[m], d, MEMBERS)])
             for (r, c, m), d, icon, t in zip(kept, directions, result.images, top, strict=True)]
    settings = dict(result.settings, grid=grid, budget=budget, min_count=min_count, cosine_power=cosine_power,
                    umap=dict(metric="cosine", min_dist=UMAP_MIN_DIST, n_neighbors=n_neighbors or "auto"))
    return ActivationAtlas(image=_canvas([(c.row, c.col) for c in cells], result.images, grid), cells=cells,
                           coords=coords, samples=samples, grid=grid, layer=path, class_index=class_index,
                           head="dense" if head is not None else None, settings=settings)


__all__ = ["AtlasCell", "ActivationAtlas", "activation_atlas", "layout", "grid_cells", "icon_objective",
           "dense_head", "head_logits", "class_attribution"]
