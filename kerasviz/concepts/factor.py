"""Concepts: a factorization of a layer's activations over the user's images, each concept shown and scored.

The method (CRAFT, Fel et al. 2023; Lucid's neuron groups, Olah et al. 2018):

1. `sampling.sample_activations` streams the images and keeps a seeded sample of the layer's spatial vectors;
2. scikit-learn's NMF factorizes them, `A ~ W H`: each row of `H` is a concept (a non-negative mix of
   channels), each row of `W` says how much of each concept one position holds. A signed layer (one with
   negative values: no ReLU) is split first into `[max(A, 0), max(-A, 0)]` (2C non-negative channels), so
   NMF still gives non-negative coefficients (a concept is present or absent at a position, as for a
   post-ReLU layer) and the concept's direction in the layer is `H+ - H-`, which reconstructs `A` exactly.
   Shifting by the minimum would make "absent" a concept of its own; PCA/ICA give signed coefficients that
   say neither;
3. a second streamed pass scores every image: the top images of each concept (its largest coefficient),
   the receptive-field patch around it, and, for a classifier, the concept's importance for a class: by
   ablation (the logit's drop when `W_i D_i` is taken out of the activations: exact, n passes of the model's
   rest) or by gradient x input through the concept basis (`sum over positions of W * (dlogit/dA . D)`: one
   gradient, first order; on the planted-parts test model, whose head max-pools, it gives a part the class
   needs a negative score that ablation does not), averaged over the images the model puts in that class
   (CRAFT passes only that class's images: the same thing when the model is right; over a mixed set, images
   of other classes would mix in their evidence against it);
4. all concepts are rendered in one batch through `optimize.plan`, image i with a direction objective on
   concept i (`objectives.per_image`).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import keras
import numpy as np

from kerasviz import examples as kv_examples
from kerasviz import images as kv_images
from kerasviz import nets, optimize
from kerasviz.concepts.sampling import Samples, check_int, forward, sample_activations
from kerasviz.engine import objectives
from kerasviz.topk import RunningTopK

CONCEPTS_EXTRA = 'pip install "kerasviz[concepts]"'

IMPORTANCE = ("ablation", "gradient")  # how a concept's importance for a class is measured (see `concepts`)

METHODS = ("auto", "nmf", "nmf-split")  # auto: "nmf" for a non-negative layer, "nmf-split" for a signed one

DEFAULT_BUDGET = 20_000  # vectors factorized: NMF's cost grows with them, and 20,000 spread over a data set suffice

NMF_MAX_ITER = 400

DIRECTION_COSINE_POWER = 1.0  # the pictures' objective: dot x cosine similarity (Lucid's direction_cossim)


def _nmf_class():
    try:
        from sklearn.decomposition import NMF
    except ImportError as e:
        raise ImportError(f"kv.concepts needs scikit-learn, which is not installed: {CONCEPTS_EXTRA}") from e
    return NMF


@dataclasses.dataclass(frozen=True)
class Patch:
    """Where a concept is strongest in one of its top images.

    Attributes:
        image_index: the image's place in the data (`Concepts.source.source_name(i)` names it).
        box: `(top, left, bottom, right)` in the image's pixels (as the model saw it), bottom and right
            exclusive: the receptive field of the strongest position, clipped to the image.
        score: the concept's coefficient there.
    """

    image_index: int
    box: tuple[int, int, int, int]
    score: float


class Reducer:
    """A fitted factorization: `transform` gives the non-negative concept coefficients of activation vectors.

    Attributes:
        method: `"nmf"` or `"nmf-split"`.
        nmf: the fitted `sklearn.decomposition.NMF`.
        order: the concepts' order (strongest first) among the NMF's components.
        directions: float32 `(n, C)`: each concept's unit direction in the layer (`H`, or `H+ - H-` for a
            split, scaled to length 1; the coefficients carry the lengths, so `W @ directions ~ A`).
        norms: float32 `(n,)`: the lengths the directions were divided by.
    """

    def __init__(self, method: str, nmf, order: np.ndarray, channels: int):
        self.method, self.nmf, self.order = method, nmf, order
        h = nmf.components_[order].astype("float32")
        directions = h[:, :channels] - h[:, channels:] if method == "nmf-split" else h
        self.norms = np.maximum(np.linalg.norm(directions, axis=1), 1e-12)  # NMF's W H leaves the scale to W or H
        self.directions = directions / self.norms[:, None]  # unit directions: a coefficient is a length

    @staticmethod
    def prepare(method: str, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, "float32")
        if method == "nmf-split":
            return np.concatenate([np.maximum(vectors, 0.0), np.maximum(-vectors, 0.0)], axis=-1)
        return np.maximum(vectors, 0.0)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Coefficients float32 `(M, n)` of vectors `(M, C)`."""
        return (self.nmf.transform(self.prepare(self.method, vectors))[:, self.order] * self.norms).astype("float32")


def factorize(vectors: np.ndarray, n: int, *, method: str = "auto", seed: int = 0) -> Reducer:
    """Fit `n` concepts to activation vectors with scikit-learn's NMF (split in two for a signed layer).

    Args:
        vectors: float `(M, C)`.
        n: the number of concepts.
        method: `"auto"` (`"nmf"` when every value is >= 0, else `"nmf-split"`), `"nmf"` (negative values are
            clipped to 0) or `"nmf-split"` (NMF on `[max(v, 0), max(-v, 0)]`). Defaults to `"auto"`.
        seed: the NMF's random state (its `nndsvda` start is deterministic; the seed is recorded).

    Returns:
        A `Reducer`, its concepts ordered by how much of the vectors they explain.

    Raises:
        ValueError: an unknown method, `n` not in `[1, C]` (or `2C` for a split), or fewer vectors than `n`.
        ImportError: scikit-learn is missing (`pip install "kerasviz[concepts]"`).

    Example:
    >>> from kerasviz.concepts.factor import factorize
    >>> r = factorize(np.abs(np.random.default_rng(0).normal(size=(200, 6))), 3)
    >>> r.method, r.directions.shape
    ('nmf', (3, 6))
    """
    vectors = np.asarray(vectors, "float32")
    if method not in METHODS:
        from kerasviz import names

        raise ValueError(f"method must be one of {', '.join(METHODS)}. Received: method={method!r}."
                         f"{names.did_you_mean(str(method), METHODS)}")
    if method == "auto":
        method = "nmf-split" if vectors.size and float(vectors.min()) < 0.0 else "nmf"
    width = vectors.shape[1] * (2 if method == "nmf-split" else 1)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= width:
        raise ValueError(f"n (the number of concepts) must be an int in [1, {width}] for this layer "
                         f"({vectors.shape[1]} channels, method {method!r}). Received: n={n!r}.")
    if len(vectors) < n:
        raise ValueError(f"{len(vectors)} activation vectors cannot give {n} concepts: pass more images or a "
                         "larger budget, or ask for fewer concepts.")
    nmf = _nmf_class()(n_components=int(n), init="nndsvda", max_iter=NMF_MAX_ITER, random_state=int(seed))
    x = Reducer.prepare(method, vectors)
    w = nmf.fit_transform(x)
    energy = w.sum(axis=0) * np.linalg.norm(nmf.components_, axis=1)
    order = np.lexsort((np.arange(n), -energy))  # most energy first; ties by component
    return Reducer(method, nmf, order, vectors.shape[1])


@dataclasses.dataclass
class Concepts:
    """What `kv.concepts` returns: `n` concepts of a layer, each shown and scored.

    Attributes:
        layer: the layer path.
        method: `"nmf"` or `"nmf-split"` (see `factorize`).
        basis: float32 `(n, C)`: each concept's unit direction in the layer's channels (its composition).
        pictures: uint8 `(n, H, W, 3)`: a feature visualization of each direction.
        patches: per concept, its top `Patch`es (one per image, strongest first).
        heatmaps: per concept, float32 `(k, rows, cols)`: its coefficients over the layer's grid on each of
            its top images (in the order of `patches`).
        importance: float32 `(n,)`: each concept's importance for `class_index`'s logit (`settings["importance"]`:
            ablation or gradient x input), averaged over the images the model puts in that class
            (`settings["class_images"]` of them), or None.
        source: the `kerasviz.examples.DataSource` of the images.
        class_index: the class the importance is for, or None.
        top_images: uint8 `(n, k, H, W, C)`: the top images themselves, as the model saw them.
        crops: per concept, the uint8 patches cut from its top images (`patch.box`).
        samples: the `Samples` the factorization was fitted on.
        reducer: the fitted `Reducer` (`reducer.transform(vectors)` gives coefficients).
        network: the `Network`.
        settings: what was asked (n, method, budget, seed, top_k, preset).
        seconds: wall time.
    """

    layer: str
    method: str
    basis: np.ndarray
    pictures: np.ndarray
    patches: list[list[Patch]]
    heatmaps: list[np.ndarray]
    importance: np.ndarray | None
    source: kv_examples.DataSource
    class_index: int | None = None
    top_images: np.ndarray | None = None
    crops: list[list[np.ndarray]] = dataclasses.field(default_factory=list)
    samples: Samples | None = dataclasses.field(default=None, repr=False)
    reducer: Reducer | None = dataclasses.field(default=None, repr=False)
    network: nets.Network | None = dataclasses.field(default=None, repr=False)
    settings: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.basis)

    def __repr__(self):
        return (f"Concepts(layer={self.layer!r}, n={len(self)}, method={self.method!r}, "
                f"class_index={self.class_index}, images={self.samples.count if self.samples else '?'})")

    def composition(self, concept: int, top: int = 5) -> list[tuple[int, float]]:
        """The channels that make up a concept: `(channel, weight)` by largest |weight|, `top` of them."""
        row = self.basis[concept]
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        return [(int(c), float(row[c])) for c in order]

    def maps(self, images, *, batch_size: int = 32, value_range=None) -> np.ndarray:
        """Each concept's coefficients over the layer's grid, for new images: float32 `(N, n, rows, cols)`.

        Args:
            images: anything `kv.examples.data_source` takes (seen at the size the concepts were fitted at).
            batch_size: images per forward pass. Defaults to 32.
            value_range: the images' pixel range. Defaults to [0, 1] for floats, 0-255 for uint8.
        """
        out = []
        for acts, _, _ in _stream(self.network, self.layer, kv_examples.data_source(images, "images"),
                                  self.samples.image_size, batch_size, value_range):
            b, rows, cols, c = acts.shape
            out.append(self.reducer.transform(acts.reshape(-1, c)).reshape(b, rows, cols, -1).transpose(0, 3, 1, 2))
        return np.concatenate(out)

    def overlays(self, concept: int) -> np.ndarray:
        """The concept's heatmaps over its top images: uint8 `(k, H, W, 3)` (`atlas.views.overlay`)."""
        from kerasviz.atlas import views

        heat = self.heatmaps[concept]
        top = max(float(heat.max()), 1e-12) if heat.size else 1.0
        out = []
        for image, h in zip(self.top_images[concept], heat, strict=False):
            up = kv_images.resize(h[..., None] / top, image.shape[:2])[..., 0] if h.size else h
            out.append(views.overlay(image.astype("float32") / 255.0, up))
        return np.stack(out) if out else np.zeros((0, 1, 1, 3), "uint8")


def _stream(network, path, source, size, batch_size, value_range):
    """`(activations (B, rows, cols, C), images uint8, first id)` per batch."""
    extractor = nets.get_extractor(network, [path], False)
    first = 0
    for batch in source.batches(size=size, channels=network.input_channels, batch_size=batch_size,
                                value_range=value_range):
        yield forward(network, extractor, batch.images, path), kv_images.to_uint8(batch.images), first
        first += len(batch.images)


def _class_head(network: nets.Network, path: str, class_index: int):
    """A function from the layer's output to the model's class scores `(B, classes)` (the logits: a final
    softmax is left out), checked against `class_index`."""
    model = network.model
    if "/" in path:
        raise ValueError(f"class_index needs a layer of the model itself; {path!r} is inside a nested model. Pick "
                         "a layer of the outer model.")
    last = model.layers[-1]
    target, dense = model.outputs[0], None
    if getattr(getattr(last, "activation", None), "__name__", "") == "softmax":
        target = last.input  # an Activation("softmax") layer's input, or a Dense layer's input and its kernel
        dense = last if hasattr(last, "kernel") else None
    try:
        tail = keras.Model(model.get_layer(path).output, target)
    except Exception as e:  # the graph after the layer reads other tensors too (a skip connection)
        raise ValueError(f"class_index: the rest of {network.name} after layer {path!r} does not depend on that "
                         "layer's output alone (a skip connection passes it), so its class scores cannot be "
                         "taken through the concepts. Pick a layer that every later path goes through (a block's "
                         f"output). ({type(e).__name__}: {e})") from e
    classes = int(dense.units) if dense is not None else int(target.shape[-1])
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not (
            0 <= class_index < classes):
        raise ValueError(f"class_index must be an int in [0, {classes}) for {network.name} ({classes} classes). "
                         f"Received: class_index={class_index!r}.")

    def logits(acts):
        y = tail(acts, training=False)
        if dense is not None:
            y = keras.ops.matmul(y, dense.kernel) + (dense.bias if dense.use_bias else 0.0)
        return y

    return logits


def _importance(head, acts, w, logit, reducer: Reducer, class_index: int, how: str) -> np.ndarray:
    """Each image's importance of each concept for the class: float `(B, n)`.

    `"gradient"`: gradient x input through the basis, `sum over positions W * (dlogit/dA . D)`, a first-order
    estimate. `"ablation"`: the logit's drop when the concept is taken out of the activations (`A - W_i D_i`,
    clipped at 0 for a non-negative layer), one pass of the rest of the model per concept.
    """
    from kerasviz.engine import backend

    b, rows, cols, c = acts.shape
    if how == "gradient":
        grad = backend.input_gradient(lambda a: head(a)[:, class_index], acts).reshape(b, rows * cols, c)
        return np.einsum("bpn,bpn->bn", w, grad @ reducer.directions.T)
    drops = []
    for i, direction in enumerate(reducer.directions):
        ablated = acts - (w[:, :, i, None] * direction).reshape(acts.shape)
        if reducer.method == "nmf":
            ablated = np.maximum(ablated, 0.0)
        drops.append(logit - backend.to_numpy(head(ablated))[:, class_index])
    return np.stack(drops, axis=1)


def _scan(network, path, source, reducer: Reducer, *, size, batch_size, value_range, top_k, head, class_index,
          importance, progress):
    """The second pass: each concept's top images (by its largest coefficient) and, over the images the model
    puts in class `class_index`, its importance."""
    from kerasviz.engine import backend

    n = len(reducer.directions)
    top = RunningTopK(n, top_k)
    total, count, in_class = np.zeros(n, "float64"), 0, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=source.total, unit="image", desc=f"concepts {path}", leave=True)
    try:
        for acts, u8, first in _stream(network, path, source, size, batch_size, value_range):
            b, rows, cols, c = acts.shape
            w = reducer.transform(acts.reshape(-1, c)).reshape(b, rows * cols, n)
            where = np.argmax(w, axis=1)
            pos = np.stack([where // cols, where % cols], axis=-1).astype("int32")
            top.update(w.max(axis=1), pos, np.zeros(pos.shape, "float32"), first, None, lambda i, _f, u8=u8: u8[i])
            if head is not None:
                logits = backend.to_numpy(head(acts))
                mine = np.argmax(logits, axis=-1) == class_index
                if mine.any():
                    total += _importance(head, acts[mine], w[mine], logits[mine, class_index], reducer, class_index,
                                         importance).sum(axis=0)
                    in_class += int(mine.sum())
            count += b
            if bar is not None:
                bar.update(b)
    finally:
        if bar is not None:
            bar.close()
    scores = (total / max(in_class, 1)).astype("float32") if head is not None else None
    return top, scores, in_class


def _patches(network, path, top, reducer: Reducer, size, batch_size: int):
    """Patches, heatmaps, top images and crops per concept, from the kept top images."""
    from kerasviz.nets.receptive_field import positions_field

    n, k = top.ids.shape
    images = top.crops  # uint8 (n, k, H, W, C): whole images
    height, width = images.shape[2:4]
    extractor = nets.get_extractor(network, [path], False)
    flat = images.reshape(n * k, *images.shape[2:]).astype("float32") / 255.0
    acts = np.concatenate([forward(network, extractor, flat[i : i + batch_size], path)
                           for i in range(0, len(flat), batch_size)])
    rows, cols, c = acts.shape[1:]
    maps = reducer.transform(acts.reshape(-1, c)).reshape(n, k, rows, cols, n)
    field = positions_field(network, path, (height, width), 4) if (rows, cols) != (1, 1) else None
    patches, heatmaps, crops = [], [], []
    for i in range(n):
        kept = [r for r in range(k) if top.ids[i, r] >= 0]
        heatmaps.append(np.stack([maps[i, r, :, :, i] for r in kept]).astype("float32"))
        row_patches, row_crops = [], []
        for r in kept:
            if field is None:
                box = (0, 0, height, width)
            else:
                t, left, bottom, right = field.box(tuple(int(p) for p in top.positions[i, r]))
                box = (max(t, 0), max(left, 0), min(bottom, height), min(right, width))
            row_patches.append(Patch(int(top.ids[i, r]), box, float(top.scores[i, r])))
            row_crops.append(images[i, r, box[0] : box[2], box[1] : box[3]])
        patches.append(row_patches)
        crops.append(row_crops)
    return patches, heatmaps, crops


def _render(network, path: str, directions: np.ndarray, preset, run: optimize.RunOptions, overrides: dict):
    """One picture per direction, all in one batch through `optimize.plan`."""
    objs = [objectives.direction(path, tuple(float(v) for v in d), cosine_power=DIRECTION_COSINE_POWER)
            for d in directions]  # tuples, not arrays: the objective's key is its values, so a step is shared
    plan = optimize.plan(network, None, list(range(len(directions))), objective=objectives.per_image(objs),
                         preset=preset, **run.keywords(batch_size=len(directions)), **overrides)
    return plan.run().images


def concepts(
    model,
    layer: str,
    images,
    n: int = 8,
    *,
    class_index: int | None = None,
    importance: str = "ablation",
    method: str = "auto",
    budget: int = DEFAULT_BUDGET,
    top_k: int = 6,
    image_size: int | tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    cache_dir: str | None = None,
    preset=None,
    progress: bool = False,
    **options,
) -> Concepts:
    """Concepts of a layer over your images: NMF of its activations, each concept shown and scored.

    The images are streamed twice (bounded memory: a folder of any size works): once to sample up to
    `budget` spatial activation vectors (`sample_activations`), factorized by scikit-learn's NMF into `n`
    concepts (a signed layer is split into its positive and negative parts first: see
    `kerasviz.concepts.factor`); once to find each concept's top images and, with `class_index`, its
    importance for that class (the logit's drop when the concept is removed, or gradient x input through the
    concept basis; averaged over the images the model puts in that class). Pass the images of one class only
    to find that class's own concepts, as CRAFT does. The concepts' pictures are rendered in one batch, each
    by a direction objective (dot x cosine) on its basis row. Seeded: the same seed gives the same concepts
    and pictures.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path), with output `(batch, H, W, C)`; a late convolution
            block's output finds object parts.
        images: a folder of images, a NumPy array `(N, H, W, C)` in [0, 1] or uint8, a `tf.data.Dataset` or
            iterable of batches, or a `kerasviz.examples.DataSource`.
        n: the number of concepts. Defaults to 8.
        class_index: the class whose logit the importance is for (a classifier's output index), or None for
            no importance. The layer must be one every later path goes through.
        importance: `"ablation"` (the logit's drop when the concept is taken out of the layer's activations:
            exact, one pass of the rest of the model per concept) or `"gradient"` (gradient x input through the
            basis: one gradient, a first-order estimate that a max-pooling head can get wrong). Defaults to
            `"ablation"`.
        method: `"auto"`, `"nmf"` or `"nmf-split"` (see `factorize`). Defaults to `"auto"`.
        budget: activation vectors sampled and factorized. Defaults to 20,000.
        top_k: top images kept per concept. Defaults to 6.
        image_size: the size folder images are resized to. Defaults to the model's input size, else 224.
        value_range: the images' pixel range, e.g. `(0, 255)`. Defaults to [0, 1] for floats, 0-255 for uint8.
        cache_dir: cache the sampled vectors there (see `sample_activations`). Defaults to None.
        preset: the pictures' preset (see `kv.visualize_filters`). Defaults to `"quality"`.
        progress: show progress bars for the two passes. Defaults to False.
        **options: the model's options (`weights`, `preprocess`, `input_range`), the run's (`seed`, and
            `batch_size`: images per forward pass, default 32) and `Preset` fields for the pictures (`size`,
            `steps`, ...), as for `kv.visualize_filters`.

    Returns:
        A `Concepts`.

    Raises:
        ValueError: an unknown layer or method, `n` or `top_k` out of range, a class index out of range, a
            layer that a skip connection passes (with `class_index`), images of the wrong shape or range.
        TypeError: an unknown option (with close names).
        ImportError: scikit-learn is missing (`pip install "kerasviz[concepts]"`).

    Example:
    >>> c = kv.concepts("VGG16", "block3_conv3", "photos/", n=2, weights="hed", image_size=48, budget=300,
    ...                 preset="fast", size=32, steps=2)
    >>> c.basis.shape, c.pictures.shape, len(c.patches[0]) <= 6
    ((2, 256), (2, 32, 32, 3), True)
    """
    start = time.perf_counter()
    check_int("top_k", top_k)
    if importance not in IMPORTANCE:
        from kerasviz import names

        raise ValueError(f"importance must be one of {', '.join(IMPORTANCE)}. Received: importance={importance!r}."
                         f"{names.did_you_mean(str(importance), IMPORTANCE)}")
    source = kv_examples.data_source(images, "images")
    network, run, overrides = optimize.split_options(model, options)
    path, _ = nets.find_layer(network, layer)
    head = _class_head(network, path, class_index) if class_index is not None else None
    batch_size = run.batch_size or 32
    samples = sample_activations(network, path, source, budget=budget, seed=run.seed, batch_size=batch_size,
                                 size=image_size, value_range=value_range, cache_dir=cache_dir, progress=progress)
    reducer = factorize(samples.vectors, n, method=method, seed=run.seed)
    size = samples.image_size
    top, scores, in_class = _scan(network, path, source, reducer, size=size, batch_size=batch_size,
                                      value_range=value_range, top_k=int(top_k), head=head,
                                      class_index=class_index, importance=importance, progress=progress)
    if head is not None and in_class == 0:
        warnings.warn(f"class_index={class_index}: the model puts none of the {samples.count} images in that "
                      "class, so the importance is all zeros. Pass images of that class.", stacklevel=2)
    patches, heatmaps, crops = _patches(network, path, top, reducer, size, batch_size)
    pictures = _render(network, path, reducer.directions, preset, run, overrides)
    settings = dict(n=int(n), method=reducer.method, budget=int(budget), seed=run.seed, top_k=int(top_k),
                    preset=preset if isinstance(preset, (str, type(None))) else repr(preset),
                    image_size=None if size is None else list(size), class_index=class_index, importance=importance,
                    class_images=in_class if head is not None else None)
    return Concepts(layer=path, method=reducer.method, basis=reducer.directions, pictures=pictures,
                    patches=patches, heatmaps=heatmaps, importance=scores, source=source,
                    class_index=class_index, top_images=top.crops, crops=crops, samples=samples, reducer=reducer,
                    network=network, settings=settings, seconds=time.perf_counter() - start)


__all__ = ["CONCEPTS_EXTRA", "DEFAULT_BUDGET", "IMPORTANCE", "METHODS", "Concepts", "Patch", "Reducer", "concepts",
           "factorize"]
