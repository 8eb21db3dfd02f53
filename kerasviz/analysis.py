"""What an image activates: class predictions, layer activations, top filters, heatmaps (forward passes only).

Every function takes images the way users have them (a file path, a PIL image, or an array in [0, 1]
or uint8) and applies the network's own preprocessing, so the numbers are the ones the model computes
on that photo. Activations are read after the layer's activation (post-ReLU), as feature-map plots show
them.

Token layers (a vision transformer's `(batch, tokens, channels)` outputs) work as convolutions do: their
patch tokens form the spatial map (`check_spatial_map`, `kerasviz.nets.tokens.to_grid`), and the class and
register tokens in front of them are left out of maps, heatmaps and filter scores unless `tokens=` asks for
them. The number of those leading tokens is read from the token count against the patch grid, or told
with `extra_tokens=`.

Image conversions (documented once, done by `kerasviz.images.load_image`): a grayscale image is repeated
to RGB, an alpha channel is dropped, uint8 is divided by 255. A float array outside [0, 1], an array
with another channel count (e.g. 5), or a file that is not an image raises a `ValueError`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from typing import NamedTuple

import keras
import numpy as np

from kerasviz import images, nets

CLASS_INDEX_PATH = os.path.join(os.path.dirname(__file__), "resources", "imagenet_class_index.json")
IMAGENET_CLASSES = 1000


class Prediction(NamedTuple):
    """One row of `predict`: the class index, its name, and the probability the model gives it."""

    class_id: int
    class_name: str
    probability: float


class TopFilters(NamedTuple):
    """What `top_filters` returns: filter indices, most active first, and their scores."""

    indices: np.ndarray
    values: np.ndarray


# ------------------------------------------------------------------------------------------ classes


@functools.lru_cache(maxsize=1)
def imagenet_class_index() -> dict[int, tuple[str, str]]:
    """The 1000 ImageNet classes, shipped with kerasviz (no download): index -> (WordNet id, name).

    The same table as Keras's `imagenet_class_index.json` (`{"0": ["n01440764", "tench"], ...}`),
    built from the ILSVRC-2012 synsets (the `imagenet-classes` package's mappings, MIT license): the
    name is the synset's first lemma with spaces as underscores.

    Returns:
        A dict from class index (0-999) to `(wnid, name)`.

    Example:
    >>> kv.analysis.imagenet_class_index()[285]
    ('n02124075', 'Egyptian_cat')
    """
    with open(CLASS_INDEX_PATH, encoding="utf-8") as f:
        raw = json.load(f)
    return {int(k): (v[0], v[1]) for k, v in raw.items()}


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names, in index order (`'tench'`, `'goldfish'`, ...).

    Returns:
        A list of 1000 str.

    Example:
    >>> kv.analysis.imagenet_class_names()[:2]
    ['tench', 'goldfish']
    """
    index = imagenet_class_index()
    return [index[i][1] for i in range(len(index))]


# ------------------------------------------------------------------------------------------ inputs


def prepare_image(network: nets.Network, image, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Load `image` for `network`: float32 `(H, W, C)` in [0, 1], with the network's channel count.

    The image is resized to the model's input size when the model has a fixed one (a classifier),
    else to `size` when given, else kept as it is.

    Args:
        network: a `Network`.
        image: a path, a PIL image, or an array `(H, W)`, `(H, W, C)` or `(1, H, W, C)`.
        size: the size to work at, for models that take any size: one int (both sides) or
            `(height, width)`. Defaults to the image's own size.

    Returns:
        float32 `(H, W, C)` in [0, 1].

    Raises:
        ValueError: the image cannot be read, is a batch of more than one, or has the wrong shape (see
            `kerasviz.images.load_image`).

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.analysis.prepare_image(net, np.zeros((64, 48, 3)), size=32).shape
    (32, 32, 3)
    """
    if isinstance(image, np.ndarray) and image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(
                f"Expected one image (H, W, C), not a batch. Received shape {image.shape}; "
                "pass the images one at a time."
            )
        image = image[0]
    fixed = nets.input_size(network.model, network.image_input)
    if fixed is not None:
        size = fixed
    return images.load_image(image, size=size, channels=network.input_channels)


def _model_input(network: nets.Network, image: np.ndarray) -> np.ndarray:
    # keras.applications' preprocess_input changes NumPy arrays in place: hand it a copy.
    x = network.preprocess(np.array(image[None], dtype="float32", copy=True))
    return keras.ops.convert_to_numpy(x).astype("float32") if not isinstance(x, np.ndarray) else x


def _to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


# ------------------------------------------------------------------------------------------ predict


def predict(
    model,
    image,
    top: int = 5,
    *,
    class_names: Sequence[str] | None = None,
    weights: str | None = "imagenet",
) -> list[Prediction]:
    """The classes a classifier sees in an image, most probable first, with ImageNet names offline.

    Args:
        model: a classifier: a `Network` (e.g. `kv.get_model("VGG16", include_top=True)`), a
            `keras.Model`, a name (built with `include_top=True`) or a `.keras` path.
        image: a path, PIL image or array (see `prepare_image`); resized to the model's input size.
        top: how many classes to return. Defaults to 5.
        class_names: one name per output class. Defaults to the ImageNet names for a 1000-class
            output, else `"class <i>"`.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        A list of `Prediction(class_id, class_name, probability)`. A model whose last layer has no
        softmax has one applied to its outputs.

    Raises:
        ValueError: the model has no classifier (`include_top=False`), `top` is out of range, or the
            image cannot be read.

    Example:
    >>> clf = kv.get_model("MobileNetV2", include_top=True, weights=None)  # ImageNet weights: "imagenet"
    >>> kv.analysis.predict(clf, "cat.jpg", top=3)  # random weights: three classes, about 1/1000 each
    [Prediction(class_id=..., class_name=..., probability=...), ...]
    """
    if isinstance(model, str) and not model.endswith(".keras"):
        network = nets.get_model(model, weights=weights, include_top=True)
    else:
        network = nets.as_network(model, weights=weights)
    out_shape = tuple(network.model.outputs[0].shape)
    if len(network.model.outputs) != 1 or len(out_shape) != 2:
        raise ValueError(
            f"predict needs a classifier with one (batch, classes) output; {network.name} outputs shape "
            f"{out_shape}. Build it with its top: kv.get_model({network.name!r}, include_top=True)."
        )
    n_classes = int(out_shape[1])
    if class_names is None:
        class_names = imagenet_class_names() if n_classes == IMAGENET_CLASSES else None
    elif len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} names for a model with {n_classes} classes.")
    if not isinstance(top, (int, np.integer)) or not 1 <= top <= n_classes:
        raise ValueError(f"top must be an int in 1-{n_classes}. Received: top={top!r}.")
    x = _model_input(network, prepare_image(network, image))
    probs = _to_numpy(network.model(x, training=False))[0].astype("float64")
    activation = getattr(network.model.layers[-1], "activation", None)
    if getattr(activation, "__name__", "") != "softmax":
        probs = np.exp(probs - probs.max())
        probs = probs / probs.sum()
    order = np.argsort(-probs, kind="stable")[:top]
    return [
        Prediction(int(i), class_names[i] if class_names is not None else f"class {i}", float(probs[i]))
        for i in order
    ]


# ------------------------------------------------------------------------------------------ activations


def activations(
    model,
    layers: str | Sequence[str],
    image,
    *,
    size: int | tuple[int, int] | None = None,
    weights: str | None = "imagenet",
) -> dict[str, np.ndarray]:
    """The activations of one or more layers for an image, from one forward pass.

    Values are read after the layer's activation (post-ReLU), in the model's own units.

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layers: a layer name (or `outer/inner` path), or a list of them.
        image: a path, PIL image or array in [0, 1] / uint8 (see `prepare_image`).
        size: resize the image first (models that take any size). Defaults to its own size.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        A dict from each name in `layers` (as given) to its activation for the image, without the
        batch axis: `(H', W', C)` for a convolution, `(C,)` for a dense layer, `(tokens, C)` for a token
        layer (class and register tokens first; `check_spatial_map` gives its patch grid `(rows, cols, C)`).

    Raises:
        ValueError: unknown layer (with close names) or an unreadable image.

    Example:
    >>> acts = kv.analysis.activations(net, ["block1_conv2", "block3_conv3"], "cat.jpg", size=64)
    >>> acts["block3_conv3"].shape
    (16, 16, 256)
    """
    network = nets.as_network(model, weights=weights)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty: give at least one layer name.")
    paths = [nets.find_layer(network, name)[0] for name in names]
    x = _model_input(network, prepare_image(network, image, size))
    extractor = nets.get_extractor(network, paths, pre_activation=False)
    outs = extractor(network.model_inputs(x, extractor), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {name: _to_numpy(out)[0] for name, out in zip(names, outs, strict=True)}


def token_values(
    activation: np.ndarray,
    layer: str = "layer",
    tokens: str = "patches",
    *,
    image_size: tuple[int, int] | None = None,
    extra_tokens: int | None = None,
) -> np.ndarray:
    """The positions a filter's score reads, one row each: every position of a map, the chosen tokens of a
    token layer.

    Args:
        activation: one image's activation: `(H, W, C)`, `(tokens, C)` or a dense layer's `(C,)`.
        layer: the layer's name (for the messages). Defaults to `"layer"`.
        tokens: for a token layer: `"patches"` (the patch tokens only), `"all"` (the class and register
            tokens too) or `"class"` (the class token alone: the first token). Defaults to `"patches"`;
            a map or a dense layer takes only `"patches"` (its positions).
        image_size: the `(height, width)` the model saw, to find the patch grid. Defaults to None (a square
            grid is looked for).
        extra_tokens: the number of class and register tokens before the patches. Defaults to None (read
            from the token count against the patch grid).

    Returns:
        `(positions, C)`: `(H * W, C)` for a map, `(rows * cols, C)` patch tokens, all `(tokens, C)`, the
        class token `(1, C)`, or a dense layer's `(1, C)`.

    Raises:
        ValueError: an unknown `tokens`, a token choice for a layer without tokens, `"class"` for a layer
            with no token before its patches, or tokens that form no patch grid.

    Example:
    >>> act = np.zeros((1 + 4 * 4, 8)); act[0, 3] = 9.0  # a class token, then a 4 x 4 grid of patches
    >>> kv.analysis.token_values(act).shape, float(kv.analysis.token_values(act, tokens="class")[0, 3])
    ((16, 8), 9.0)
    """
    nets.tokens.check_tokens(tokens)
    act = np.asarray(activation)
    if act.ndim != 2:
        if tokens != "patches":
            raise ValueError(f"tokens={tokens!r} needs a token layer (tokens, channels); layer {layer!r} outputs "
                             f"shape {act.shape} per image. Leave tokens at its default, 'patches'.")
        return act.reshape(-1, act.shape[-1])
    if tokens == "all":
        return act
    grid = nets.tokens.layer_grid((None, *act.shape), layer, image_size, extra_tokens=extra_tokens)
    if tokens == "patches":
        return act[grid.extra :]
    if grid.extra < 1:
        raise ValueError(f"tokens='class' needs a class token; the {act.shape[0]} tokens of layer {layer!r} are all "
                         "patches. Use tokens='patches', or tell the token count with extra_tokens=.")
    return act[:1]


def filter_scores(
    act: np.ndarray,
    by: str = "mean",
    *,
    tokens: str = "patches",
    image_size: tuple[int, int] | None = None,
    extra_tokens: int | None = None,
    layer: str = "layer",
) -> np.ndarray:
    """One score per filter from one image's activation `(..., C)`: its `"mean"` or `"max"` over the
    spatial positions (a dense layer's `(C,)` is returned as it is).

    A token layer's `(tokens, C)` is scored over its patch tokens: the class and register tokens are left
    out, as they are in the engine's channel objective (`tokens=` chooses, see `token_values`).

    Args:
        act: one image's activation, `(H, W, C)`, `(tokens, C)` or `(C,)`.
        by: `"mean"` or `"max"`. Defaults to `"mean"`.
        tokens: `"patches"`, `"all"` or `"class"`, for a token layer (see `token_values`). Defaults to
            `"patches"`.
        image_size: the `(height, width)` the model saw (finds a non-square patch grid). Defaults to None.
        extra_tokens: class and register tokens before the patches. Defaults to None (read from the count).
        layer: the layer's name, for the messages. Defaults to `"layer"`.

    Returns:
        `(C,)` scores.

    Raises:
        ValueError: `by` is neither `"mean"` nor `"max"`, or a token choice that does not fit (see
            `token_values`).

    Example:
    >>> kv.analysis.filter_scores(np.arange(8.0).reshape(2, 2, 2), by="max")
    array([6., 7.])
    """
    if by not in ("mean", "max"):
        raise ValueError(f"by must be 'mean' or 'max'. Received: by={by!r}.")
    values = token_values(act, layer, tokens, image_size=image_size, extra_tokens=extra_tokens)
    return values.mean(axis=0) if by == "mean" else values.max(axis=0)


def mean_activations(
    model,
    layer: str,
    image,
    *,
    size: int | tuple[int, int] | None = None,
    weights: str | None = "imagenet",
    tokens: str = "patches",
    extra_tokens: int | None = None,
) -> np.ndarray:
    """Each filter's mean activation over the image (post-ReLU), one value per channel.

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer: the layer name.
        image: a path, PIL image or array (see `prepare_image`).
        size: resize the image first. Defaults to its own size.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        tokens: for a token layer: `"patches"`, `"all"` or `"class"` (see `token_values`). Defaults to
            `"patches"`: the class and register tokens are left out.
        extra_tokens: class and register tokens before the patches. Defaults to None (read from the count).

    Returns:
        float32 `(C,)`.

    Example:
    >>> means = kv.analysis.mean_activations(net, "block4_conv3", "cat.jpg", size=64)
    >>> means.shape
    (512,)
    """
    network = nets.as_network(model, weights=weights)
    img = prepare_image(network, image, size)
    act = activations(network, layer, img)[layer]
    return filter_scores(act, "mean", tokens=tokens, image_size=img.shape[:2], extra_tokens=extra_tokens,
                         layer=layer).astype("float32")


def rank_filters(scores, k: int) -> TopFilters:
    """The `k` largest of per-filter `scores`, largest first (ties: the lower index first).

    Args:
        scores: `(C,)` per-filter scores.
        k: how many to keep, an int in 1-C.

    Returns:
        A `TopFilters` (`indices`, `values`).

    Raises:
        ValueError: `k` is not an int in 1-C.

    Example:
    >>> kv.analysis.rank_filters([0.1, 0.9, 0.5], 2).indices
    array([1, 2])
    """
    scores = np.asarray(scores)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= len(scores):
        raise ValueError(f"k must be an int in 1-{len(scores)} (the layer's channels). Received: k={k!r}.")
    order = np.argsort(-scores, kind="stable")[: int(k)]
    return TopFilters(order.astype("int64"), scores[order].astype("float32"))


def top_filters(
    model,
    layer: str,
    image,
    k: int = 6,
    *,
    by: str = "mean",
    size: int | tuple[int, int] | None = None,
    weights: str | None = "imagenet",
    tokens: str = "patches",
    extra_tokens: int | None = None,
) -> TopFilters:
    """The filters of a layer that an image activates most (the fastai notebook's "top activations").

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer: the layer name.
        image: a path, PIL image or array (see `prepare_image`).
        k: how many filters. Defaults to 6.
        by: `"mean"` (mean activation over the map) or `"max"` (its strongest position).
            Defaults to `"mean"`.
        size: resize the image first. Defaults to its own size.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        tokens: for a token layer: `"patches"` (the patch tokens), `"all"` (with the class and register
            tokens) or `"class"` (the class token alone). Defaults to `"patches"`.
        extra_tokens: class and register tokens before the patches. Defaults to None (read from the count).

    Returns:
        `TopFilters(indices, values)`: int64 filter indices, most active first, and their scores.

    Raises:
        ValueError: `k` outside 1..channels, unknown `by` or `tokens`, unknown layer or unreadable image.

    Example:
    >>> indices, values = kv.analysis.top_filters(net, "block4_conv3", "cat.jpg", k=6, size=64)
    >>> len(indices), bool(values[0] >= values[-1])
    (6, True)
    """
    network = nets.as_network(model, weights=weights)
    img = prepare_image(network, image, size)
    act = activations(network, layer, img)[layer]
    scores = filter_scores(act, by, tokens=tokens, image_size=img.shape[:2], extra_tokens=extra_tokens, layer=layer)
    return rank_filters(scores, k)


def upsample(activation_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D map to `(height, width)` with bilinear interpolation (values not clipped).

    Args:
        activation_map: a 2-D array, e.g. one channel of an activation.
        size: the output `(height, width)`.

    Returns:
        float32 `(height, width)`.

    Example:
    >>> kv.analysis.upsample(np.ones((7, 7)), (224, 224)).shape
    (224, 224)
    """
    from PIL import Image

    h, w = size
    img = Image.fromarray(np.asarray(activation_map, "float32"), mode="F")
    return np.asarray(img.resize((int(w), int(h)), Image.BILINEAR), dtype="float32")


def check_spatial_map(
    activation: np.ndarray,
    layer: str,
    *,
    image_size: tuple[int, int] | None = None,
    extra_tokens: int | None = None,
) -> np.ndarray:
    """One image's spatial map `(H, W, C)`: the check of every drawing of maps.

    A convolution's map is returned as it is; a token layer's `(tokens, C)` becomes its patch grid
    `(rows, cols, C)` (`kerasviz.nets.tokens.to_grid`), the class and register tokens left out.

    Args:
        activation: one image's activation (`activations(...)[layer]`).
        layer: the layer's name (for the message).
        image_size: the `(height, width)` the model saw, to find a non-square patch grid. Defaults to None.
        extra_tokens: class and register tokens before the patches. Defaults to None (read from the count).

    Returns:
        `(H, W, C)`.

    Raises:
        ValueError: `activation` has no spatial map or token grid (a dense or pooled layer's `(C,)`).

    Example:
    >>> kv.analysis.check_spatial_map(np.zeros((7, 7, 4)), "block5_conv3").shape
    (7, 7, 4)
    >>> kv.analysis.check_spatial_map(np.zeros((1 + 14 * 14, 4)), "encoder_block_3").shape  # class token left out
    (14, 14, 4)
    """
    if np.ndim(activation) == 2:
        grid = nets.tokens.layer_grid((None, *np.shape(activation)), layer, image_size, extra_tokens=extra_tokens)
        return nets.to_grid(np.asarray(activation)[None], grid)[0]
    if np.ndim(activation) != 3:
        raise ValueError(f"Layer {layer!r} outputs shape {np.shape(activation)} per image, with no spatial map or "
                         "token grid to draw; choose a convolution, pooling or activation layer, or a transformer's "
                         "token layer (batch, tokens, channels).")
    return activation


def heatmap(
    model,
    layer: str,
    index: int,
    image,
    *,
    size: int | tuple[int, int] | None = None,
    weights: str | None = "imagenet",
    extra_tokens: int | None = None,
) -> np.ndarray:
    """Where in the image one filter fires: its activation map, upsampled to the image's size.

    A token layer's map is its patch grid (the class and register tokens left out): each patch's value sits
    at the patch's center, so the brightest spot of the heatmap lies on the patch that fires most.

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer: a convolutional layer or a token layer (its output has a spatial map or a patch grid).
        index: the filter.
        image: a path, PIL image or array (see `prepare_image`).
        size: resize the image first. Defaults to its own size.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        extra_tokens: class and register tokens before the patches, for a token layer. Defaults to None
            (read from the token count against the patch grid).

    Returns:
        float32 `(H, W)` activation values (post-ReLU, model units), bilinear-upsampled to the size of
        the image the model saw.

    Raises:
        ValueError: the layer has no spatial map or patch grid, or `index` is out of range.

    Example:
    >>> kv.analysis.heatmap(net, "block1_conv2", 29, "cat.jpg", size=64).shape
    (64, 64)
    """
    network = nets.as_network(model, weights=weights)
    img = prepare_image(network, image, size)
    act = check_spatial_map(activations(network, layer, img)[layer], layer, image_size=img.shape[:2],
                            extra_tokens=extra_tokens)
    index = nets.check_filter(index, act.shape[-1], layer)
    return upsample(act[..., int(index)], img.shape[:2])
