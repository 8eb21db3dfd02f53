"""Weights and circuits: conv kernels, the input channels a filter reads most, expanded weights.

A filter is a small network of its own: its kernel says how strongly each channel of the layer before
feeds it (`top_inputs`), and between two layers that are not adjacent, the *expanded weights* of the
Circuits method (Olah et al., "Visualizing Weights", Distill 2020) say the same through the whole path:
replace every ReLU by the identity and every max-pooling by average pooling, and the path becomes one
linear map, a kernel of shape `(size, size, C_from, C_to)` (`expanded_weights`).

Kernel layout is Keras's: `(kh, kw, C_in, C_out)`, channels last. Everything returned is NumPy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz import models

DEFAULT_TOP_K = 6
DEFAULT_EXPANDED_SIZE = 5
DEFAULT_JACOBIAN_BATCH = 64  # target channels per backward pass in `expanded_weights`
FIRST_LAYER_SCALE = 8  # pixels per kernel tap in `first_layer_kernels_image`
KERNEL_TYPES = ("Conv2D",)  # layers whose kernel is (kh, kw, C_in, C_out)
_KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel")
_IDENTITY_TYPES = (  # elementwise or translation-only layers: the identity on the linearized path
    "ReLU", "LeakyReLU", "ELU", "PReLU", "Activation", "Dropout", "SpatialDropout2D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "ZeroPadding2D", "Cropping2D",
)
_CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
_POOL_TYPES = ("MaxPooling2D", "AveragePooling2D")


# ---------------------------------------------------------------------------------------- kernels


def _network(model, weights) -> models.Network:
    return models.as_network(model, weights=weights)


def _conv_layer(network: models.Network, layer: str, argument: str = "layer"):
    """`(path, layer)` of a Conv2D layer, or a ValueError that names the conv layers close by."""
    path, found = models.find_layer(network, layer)
    if type(found).__name__ not in KERNEL_TYPES or not hasattr(found, "kernel"):
        raise ValueError(
            f"{argument}={layer!r} is a {type(found).__name__} layer of {network.name}, not a convolution: "
            f"kernels need a Conv2D layer.{_nearest_convs(network, path)}"
        )
    if getattr(found, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"Layer {path!r} uses data_format={found.data_format!r}; kerasviz needs channels_last.")
    return path, found


def _nearest_convs(network: models.Network, path: str) -> str:
    """' Nearest Conv2D layers: 'x' (before), 'y' (after).' in model order."""
    order = [p for p, _ in models.iter_layers(network.model)]
    convs = set(conv_layers(network))
    here = order.index(path)
    before = [p for p in order[:here] if p in convs][-1:]
    after = [p for p in order[here + 1 :] if p in convs][:1]
    found = [f"{p!r} (before)" for p in before] + [f"{p!r} (after)" for p in after]
    if not found:
        return " The model has no Conv2D layer."
    return " Nearest Conv2D layers: " + ", ".join(found) + "."


def conv_layers(model, *, weights: str | None = None) -> list[str]:
    """The paths of a model's Conv2D layers, in model order (nested models included).

    Args:
        model: a `Network`, `keras.Model` or model name.
        weights: weights for a model given by name. Defaults to None (only the structure is read).

    Returns:
        Layer paths, e.g. `['block1_conv1', 'block1_conv2', ...]` for VGG16.

    Example:
    >>> kv.weights.conv_layers("VGG16")[:2]
    ['block1_conv1', 'block1_conv2']
    """
    network = _network(model, weights)
    return [path for path, layer in models.iter_layers(network.model) if type(layer).__name__ in KERNEL_TYPES]


def kernels(model, layer: str, *, weights: str | None = "imagenet") -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of a Conv2D layer.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: the Conv2D layer's name (or `outer/inner` path).
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        `(kernel, bias)`: float32 `(kh, kw, C_in, C_out)` and float32 `(C_out,)` (zeros when the layer
        has no bias).

    Raises:
        ValueError: no such layer, or the layer is not a Conv2D.

    Example:
    >>> kernel, bias = kv.weights.kernels(net, "block1_conv1")
    >>> kernel.shape
    (3, 3, 3, 64)
    """
    network = _network(model, weights)
    _, conv = _conv_layer(network, layer)
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), "float32")
    bias = getattr(conv, "bias", None)
    bias = np.zeros(kernel.shape[-1], "float32") if bias is None else np.asarray(
        keras.ops.convert_to_numpy(bias), "float32")
    return kernel, bias


def _check_filter(filter: int, n: int, layer: str) -> int:
    if isinstance(filter, bool) or not isinstance(filter, (int, np.integer)):
        raise TypeError(f"filter must be an int. Received: filter={filter!r}.")
    if not 0 <= filter < n:
        raise ValueError(
            f"filter={filter} is out of range for layer {layer!r}, which has {n} filters (valid: 0-{n - 1})."
        )
    return int(filter)


def filter_kernel(model, layer: str, filter: int, *, weights: str | None = "imagenet") -> np.ndarray:
    """One filter's kernel: one `(kh, kw)` slice per input channel.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D layer.
        filter: the filter (output channel) index.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        float32 `(kh, kw, C_in)`; for a grouped convolution, the slices of the filter's own group.

    Raises:
        ValueError: not a Conv2D layer, or `filter` out of range.

    Example:
    >>> kv.weights.filter_kernel("VGG16", "block1_conv1", 0, weights="hed").shape
    (3, 3, 3)
    """
    kernel, _ = kernels(model, layer, weights=weights)
    f = _check_filter(filter, kernel.shape[-1], layer)
    return kernel[..., f]


def first_conv_layer(model, *, weights: str | None = None) -> str:
    """The first Conv2D layer of a model (the one that reads the image).

    Args:
        model: a `Network`, `keras.Model` or model name.
        weights: weights for a model given by name. Defaults to None (only the structure is read).

    Returns:
        The layer's path, a str.

    Raises:
        ValueError: the model has no Conv2D layer.

    Example:
    >>> kv.weights.first_conv_layer("VGG16")
    'block1_conv1'
    """
    convs = conv_layers(model, weights=weights)
    if not convs:
        raise ValueError(f"{_network(model, weights).name} has no Conv2D layer.")
    return convs[0]


def normalize_kernels(kernel: np.ndarray) -> np.ndarray:
    """Scale each filter of a `(kh, kw, C_in, C_out)` kernel to [0, 1] on its own (min to 0, max to 1).

    Args:
        kernel: a Conv2D kernel `(kh, kw, C_in, C_out)`.

    Returns:
        float32 `(C_out, kh, kw, C_in)`, one image per filter; a constant filter becomes 0.5 gray.

    Example:
    >>> kernel = kv.weights.filter_kernel("VGG16", "block1_conv1", 0, weights="hed")[..., None]
    >>> tiles = kv.weights.normalize_kernels(kernel)
    >>> tiles.shape, float(tiles.min()), float(tiles.max())
    ((1, 3, 3, 3), 0.0, 1.0)
    """
    k = np.moveaxis(np.asarray(kernel, "float32"), -1, 0)
    low = k.min(axis=(1, 2, 3), keepdims=True)
    span = k.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (k - low) / np.where(span > 0, span, 1.0), 0.5).astype("float32")


def first_layer_kernels_image(
    model,
    layer: str | None = None,
    *,
    scale: int = FIRST_LAYER_SCALE,
    margin: int = 1,
    cols: int | None = None,
    weights: str | None = "imagenet",
) -> np.ndarray:
    """The first conv layer's kernels as an RGB mosaic: each kernel normalized to [0, 1] on its own.

    For models that read BGR (caffe preprocessing: VGG, ResNet v1) the channels are put back into RGB
    order, so that a kernel that responds to red looks red.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D layer that reads the image (3 or 1 input channels). Defaults to the first one.
        scale: pixels per kernel tap (nearest-neighbour upscaling). Defaults to 8.
        margin: pixels between kernels. Defaults to 1.
        cols: kernels per row. Defaults to a square-ish grid.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        uint8 `(H, W, 3)` (or `(H, W, 1)` for a gray model).

    Raises:
        ValueError: the layer is not a Conv2D, or its input is not 1 or 3 channels.

    Example:
    >>> kv.save_image(kv.weights.first_layer_kernels_image(net), "conv1.png")
    """
    from kerasviz import images

    network = _network(model, weights)
    layer = first_conv_layer(network) if layer is None else layer
    kernel, _ = kernels(network, layer)
    if kernel.shape[2] not in (1, 3):
        raise ValueError(
            f"layer={layer!r} has {kernel.shape[2]} input channels; an image of its kernels needs a layer "
            f"that reads the image (1 or 3 channels), e.g. {first_conv_layer(network)!r}."
        )
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be an int >= 1. Received: scale={scale!r}.")
    tiles = normalize_kernels(kernel)
    if kernel.shape[2] == 3 and getattr(network.preprocess, "bgr", False):
        tiles = tiles[..., ::-1]
    tiles = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)
    return images.stitch(tiles, cols=cols, margin=margin, background=255)


# ---------------------------------------------------------------------------------------- incoming channels


@dataclasses.dataclass
class IncomingChannels:
    """The input channels that feed one filter most, by the L2 norm of their kernel slices.

    Attributes:
        layer: the Conv2D layer (path).
        filter: the filter index.
        input_layer: the layer whose channels the kernel reads: the previous layer with weights
            (a conv), a layer that merges branches, or the model's input layer (see `from_image`).
            Pooling, activation, normalization and dropout layers in between are looked through.
        channels: int `(k,)`, input channel indices, strongest first.
        norms: float32 `(k,)`, the Frobenius norm of each channel's `(kh, kw)` kernel slice.
        slices: float32 `(k, kh, kw)`, the kernel slices themselves.
        all_norms: float32 `(C_in,)`, the norm of every input channel.
        from_image: True when the layer reads the model's input (its channels are colors).
    """

    layer: str
    filter: int
    input_layer: str
    channels: np.ndarray
    norms: np.ndarray
    slices: np.ndarray
    all_norms: np.ndarray
    from_image: bool = False

    def __len__(self):
        return len(self.channels)


def _parents(layer) -> list:
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    return [node.operation for node in nodes[0].parent_nodes]


def _channels(layer) -> int | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return int(shape[-1]) if len(shape) >= 2 and shape[-1] is not None else None


def input_layer_of(model, layer: str, *, weights: str | None = None) -> tuple[str, bool]:
    """The layer whose channels a layer reads, looking through pooling, activation, normalization,
    dropout and padding layers (they keep each channel apart).

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a layer name or path.
        weights: weights for a model given by name. Defaults to None.

    Returns:
        `(path, from_image)`: the first layer back that has a kernel, merges several inputs, or is
        the model's input (then `from_image` is True).

    Example:
    >>> kv.weights.input_layer_of(net, "block2_conv1")
    ('block1_conv2', False)
    """
    network = _network(model, weights)
    path, start = models.find_layer(network, layer)
    prefix = path[: -len(start.name)]
    parents = _parents(start)
    if len(parents) != 1:
        raise ValueError(
            f"Layer {path!r} of {network.name} has {len(parents)} inputs; expected one layer to read channels from."
        )
    current = parents[0]
    while True:
        if type(current).__name__ == "InputLayer":
            return prefix + current.name, True
        if isinstance(current, keras.Model) or any(hasattr(current, a) for a in _KERNEL_ATTRS):
            return prefix + current.name, False
        parents = _parents(current)
        if len(parents) != 1:  # a layer that merges branches (Add, Concatenate) is the source itself
            return prefix + current.name, False
        current = parents[0]


def top_inputs(
    model, layer: str, filter: int, k: int = DEFAULT_TOP_K, *, weights: str | None = "imagenet"
) -> IncomingChannels:
    """Rank the input channels of a filter by the L2 (Frobenius) norm of its kernel slice for each.

    Large-norm channels are those the filter listens to most (with either sign); the kernel slice
    says where in the 3x3 (or kh x kw) window and whether it excites (positive) or inhibits.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D layer.
        filter: the filter index.
        k: how many channels to return. Defaults to 6 (at most C_in are returned).
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        An `IncomingChannels` (channel indices, norms, slices, the input layer's name).

    Raises:
        ValueError: not a Conv2D layer, `filter` out of range, `k < 1`, or an input layer whose channel
            count does not match the kernel.

    Example:
    >>> top = kv.weights.top_inputs(net, "block2_conv1", 0, k=6)
    >>> top.input_layer, top.channels
    ('block1_conv2', array([...]))
    """
    network = _network(model, weights)
    path, conv = _conv_layer(network, layer)
    kernel, _ = kernels(network, path)
    f = _check_filter(filter, kernel.shape[-1], path)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1. Received: k={k!r}.")
    input_layer, from_image = input_layer_of(network, path)
    groups = int(getattr(conv, "groups", 1) or 1)
    per_group_in = kernel.shape[2]
    offset = (f // (kernel.shape[-1] // groups)) * per_group_in if groups > 1 else 0
    _, source = models.find_layer(network, input_layer)
    c_in = _channels(source)
    if c_in is not None and c_in != per_group_in * groups:
        raise ValueError(
            f"Layer {path!r} reads {per_group_in * groups} channels, but the layer found before it, "
            f"{input_layer!r}, has {c_in}."
        )
    slices = np.moveaxis(kernel[..., f], -1, 0)  # (C_in, kh, kw)
    all_norms = np.sqrt(np.sum(slices.astype("float64") ** 2, axis=(1, 2))).astype("float32")
    order = np.argsort(-all_norms, kind="stable")[: int(k)]
    return IncomingChannels(
        layer=path, filter=f, input_layer=input_layer, channels=(order + offset).astype("int64"),
        norms=all_norms[order], slices=slices[order], all_norms=all_norms, from_image=from_image,
    )


# ---------------------------------------------------------------------------------------- expanded weights


def path_between(model, layer_from: str, layer_to: str, *, weights: str | None = None) -> list:
    """The layers from just after `layer_from` up to and including `layer_to`, in order.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer_from: the earlier layer.
        layer_to: the later layer; it must be reached from `layer_from` through single-input layers.
        weights: weights for a model given by name. Defaults to None.

    Returns:
        A list of Keras layers.

    Raises:
        ValueError: the same layer twice, layers in different (nested) models, `layer_from` not before
            `layer_to`, or a layer with several inputs (Add, Concatenate) on the way.

    Example:
    >>> [layer.name for layer in kv.weights.path_between("VGG16", "block1_conv2", "block2_conv1")]
    ['block1_pool', 'block2_conv1']
    """
    network = _network(model, weights)
    path_from, first = models.find_layer(network, layer_from)
    path_to, last = models.find_layer(network, layer_to)
    if first is last:
        raise ValueError(f"layer_from and layer_to are the same layer ({path_from!r}); give two layers.")
    if path_from.rsplit("/", 1)[0:-1] != path_to.rsplit("/", 1)[0:-1]:
        raise ValueError(
            f"layer_from={path_from!r} and layer_to={path_to!r} are in different (nested) models; "
            "expanded weights need both in one model."
        )
    chain, current = [], last
    while current is not first:
        chain.append(current)
        parents = _parents(current)
        if len(parents) > 1:
            raise ValueError(
                f"Layer {current.name!r} ({type(current).__name__}) between {path_from!r} and {path_to!r} has "
                f"{len(parents)} inputs; expanded weights follow a single path (no Add or Concatenate)."
            )
        if not parents or (parents[0] is not first and type(parents[0]).__name__ == "InputLayer"):
            raise ValueError(
                f"layer_from={path_from!r} is not before layer_to={path_to!r}: going back from {path_to!r} "
                f"reaches the model's input without meeting it. Give the earlier layer as layer_from."
            )
        current = parents[0]
    return chain[::-1]


@dataclasses.dataclass(frozen=True)
class _Step:
    """One layer of the linearized path: the layer to run (None: identity) and its receptive-field
    geometry per axis."""

    layer: object
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def _linearize(layer, path_from: str, path_to: str) -> _Step:
    """The linear stand-in of one layer (valid padding, no bias, no activation), as a `_Step`."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"Layer {layer.name!r} uses data_format={layer.data_format!r}; kerasviz needs channels_last.")
    if kind in _CONV_TYPES:
        config = layer.get_config()
        config.update(name=layer.name + "_linear", padding="valid", activation=None, use_bias=False)
        for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "dtype_policy", "dtype"):
            config.pop(key, None)
        new = type(layer).from_config(config)
        size = _pair(layer.kernel_size)
        dilation = _pair(getattr(layer, "dilation_rate", 1))
        effective = tuple((s - 1) * d + 1 for s, d in zip(size, dilation, strict=True))
        bias = getattr(layer, "bias", None)
        values = [keras.ops.convert_to_numpy(v) for v in layer.weights if v is not bias]
        return _Step(_Deferred(new, values), effective, _pair(layer.strides))
    if kind in _POOL_TYPES:
        pool = _pair(layer.pool_size)
        strides = _pair(layer.strides if layer.strides is not None else layer.pool_size)
        return _Step(keras.layers.AveragePooling2D(pool, strides, padding="valid"), pool, strides)
    if kind == "BatchNormalization":
        variance = keras.ops.convert_to_numpy(layer.moving_variance)
        gamma = keras.ops.convert_to_numpy(layer.gamma) if layer.gamma is not None else np.ones_like(variance)
        scale = (gamma / np.sqrt(variance + layer.epsilon)).astype("float32")
        new = keras.layers.DepthwiseConv2D(1, use_bias=False, name=layer.name + "_linear")
        return _Step(_Deferred(new, [scale.reshape(1, 1, -1, 1)]))
    if kind == "Rescaling":
        return _Step(keras.layers.Rescaling(layer.scale, 0.0))
    if kind in _IDENTITY_TYPES or kind == "InputLayer":
        return _Step(None)
    raise ValueError(
        f"expanded_weights cannot linearize layer {layer.name!r} ({kind}) on the path from {path_from!r} to "
        f"{path_to!r}. Supported: Conv2D, DepthwiseConv2D, SeparableConv2D, max/average pooling, "
        "BatchNormalization, activations, dropout and padding."
    )


@dataclasses.dataclass
class _Deferred:
    """A fresh layer and the weights to give it once it is built."""

    layer: keras.layers.Layer
    values: list


def receptive_field(model, layer_from: str, layer_to: str, *, weights: str | None = None) -> tuple[int, int]:
    """How many positions `(rows, cols)` of `layer_from` one position of `layer_to` sees.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer_from: the earlier layer.
        layer_to: the later layer, reached from `layer_from` through single-input layers.
        weights: weights for a model given by name. Defaults to None (only the structure is read).

    Returns:
        `(rows, cols)`.

    Raises:
        ValueError: the layers do not form a single path (see `path_between`).

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.weights.receptive_field(net, "block1_conv2", "block2_conv1")  # 2x2 pool, then 3x3 at stride 2
    (6, 6)
    """
    network = _network(model, weights)
    steps = [_linearize(layer, layer_from, layer_to) for layer in path_between(network, layer_from, layer_to)]
    return _field(steps)[0]


def _field(steps: Sequence[_Step]) -> tuple[tuple[int, int], tuple[int, int]]:
    field, jump = [1, 1], [1, 1]
    for step in steps:
        for axis in (0, 1):
            field[axis] += (step.kernel[axis] - 1) * jump[axis]
            jump[axis] *= step.stride[axis]
    return (field[0], field[1]), (jump[0], jump[1])


def linearized_model(
    model, layer_from: str, layer_to: str, *, weights: str | None = "imagenet"
) -> tuple[keras.Model, tuple[int, int]]:
    """The path from `layer_from` to `layer_to` as one linear model on its receptive field.

    Convolutions keep their kernels but lose bias and activation, max-pooling becomes average pooling,
    ReLUs and other activations become the identity, batch normalization keeps its scale; all padding
    becomes `"valid"`. The model maps a `(rows, cols, C_from)` patch of `layer_from` (its receptive field)
    to the single `(1, 1, C_to)` position of `layer_to` that sees it.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer_from: the earlier layer.
        layer_to: the later layer, a spatial map reached from `layer_from` through single-input layers.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        `(linear_model, (rows, cols))`.

    Raises:
        ValueError: the layers do not form a single path (see `path_between`), `layer_from` has no channel
            axis, or `layer_to` is not a spatial map.

    Example:
    >>> linear, field = kv.weights.linearized_model("VGG16", "block1_conv2", "block2_conv1", weights="hed")
    >>> field, tuple(linear.output.shape)
    ((6, 6), (None, 1, 1, 128))
    """
    network = _network(model, weights)
    chain = path_between(network, layer_from, layer_to)
    steps = [_linearize(layer, layer_from, layer_to) for layer in chain]
    field, _ = _field(steps)
    _, source = models.find_layer(network, layer_from)
    c_from = _channels(source)
    if c_from is None:
        raise ValueError(f"layer_from={layer_from!r} has no channel axis.")
    inputs = keras.Input((field[0], field[1], c_from))
    x = inputs
    for step in steps:
        if step.layer is None:
            continue
        layer = step.layer.layer if isinstance(step.layer, _Deferred) else step.layer
        x = layer(x)
        if isinstance(step.layer, _Deferred):
            layer.set_weights(step.layer.values)
    if len(x.shape) != 4 or tuple(x.shape[1:3]) != (1, 1):
        raise ValueError(
            f"The path from {layer_from!r} to {layer_to!r} does not end in a spatial map (output shape "
            f"{tuple(x.shape)}); expanded weights need a spatial layer_to."
        )
    return keras.Model(inputs, x, name="kerasviz_linear_path"), field


def _center_crop_or_pad(full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop (or zero-pad) the first two axes to `size`, keeping index `(n - 1) // 2` of the field at index
    `size // 2` of the result."""
    out = np.zeros(size + full.shape[2:], full.dtype)
    src, dst = [], []
    for axis in (0, 1):
        n, m = full.shape[axis], size[axis]
        start = (n - 1) // 2 - m // 2  # field index that lands at result index 0
        lo, hi = max(start, 0), min(start + m, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[dst[0], dst[1]] = full[src[0], src[1]]
    return out


def expanded_weights(
    model,
    layer_from: str,
    layer_to: str,
    size: int | None = DEFAULT_EXPANDED_SIZE,
    *,
    filters: Sequence[int] | None = None,
    batch_size: int = DEFAULT_JACOBIAN_BATCH,
    weights: str | None = "imagenet",
) -> np.ndarray:
    """Expanded weights between two layers that need not be adjacent (the Circuits method).

    The path between the layers is linearized (ReLU as identity, max-pooling as average pooling, no
    biases; see `linearized_model`) and the gradient of one `layer_to` position with respect to the
    `layer_from` activations around it is read off: entry `[dy, dx, i, j]` is how much channel `i` of
    `layer_from`, at offset `(dy - size // 2, dx - size // 2)` from the position under the output,
    adds to channel `j` of `layer_to`. For two adjacent convolutions this is exactly the kernel; for
    two 3x3 convolutions in a row it is their composition, a 5x5 kernel.

    Cost: one backward pass through the linearized path per `layer_to` channel, on the receptive field
    (VGG16 on a 2-core CPU: block1_conv2 -> block2_conv1, all 128 channels, 0.4 s; block4_conv1 ->
    block5_conv3, all 512 channels, about 5 minutes, or 2 s for one channel with `filters=[f]`).

    Centre convention: on a receptive field of `n` positions (even when the path has pooling), the
    position "under" the output is index `(n - 1) // 2` (where Keras's "same" padding puts it), and
    it lands at index `size // 2` of the result. Positions outside the field are zero.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer_from: the earlier layer (its output is differentiated against).
        layer_to: the later layer (a spatial map: conv, pooling, activation, ...).
        size: rows and columns of the result around the centre. None gives the whole receptive
            field. Defaults to 5.
        filters: channels of `layer_to` to compute (the last axis follows this order). Defaults to all.
        batch_size: target channels per backward pass. Defaults to 64.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        float32 `(size, size, C_from, C_to)` (`C_to = len(filters)` when `filters` is given).

    Raises:
        ValueError: `layer_from` not before `layer_to`, a branch or an unsupported layer on the path, a
            filter out of range, or `size < 1`.

    Example:
    >>> w = kv.weights.expanded_weights(net, "block1_conv2", "block2_conv1", size=5)
    >>> w.shape
    (5, 5, 64, 128)
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size must be an int >= 1 or None (the whole receptive field). Received: size={size!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}.")
    network = _network(model, weights)
    linear, field = linearized_model(network, layer_from, layer_to)
    c_to = int(linear.outputs[0].shape[-1])
    if filters is None:
        targets = list(range(c_to))
    else:
        targets = [int(f) for f in ([filters] if isinstance(filters, (int, np.integer)) else filters)]
        if not targets:
            raise ValueError("filters is empty: give at least one channel of layer_to, or None for all.")
        for f in targets:
            _check_filter(f, c_to, layer_to)
    c_from = int(linear.inputs[0].shape[-1])
    columns = []
    for start in range(0, len(targets), batch_size):
        chunk = np.asarray(targets[start : start + batch_size], "int32")
        zeros = np.zeros((len(chunk),) + field + (c_from,), "float32")
        grad = _input_gradient(linear, zeros, chunk)  # (n, rows, cols, C_from)
        columns.append(np.moveaxis(grad, 0, -1))
    full = np.concatenate(columns, axis=-1).astype("float32")  # (rows, cols, C_from, C_to)
    if size is None:
        return full
    return _center_crop_or_pad(full, (int(size), int(size)))


def _input_gradient(linear: keras.Model, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d(sum_b out[b, 0, 0, targets[b]]) / d x, on the active Keras backend."""
    def score(inputs):
        out = linear(inputs, training=False)[:, 0, 0, :]
        return keras.ops.sum(keras.ops.take_along_axis(out, keras.ops.convert_to_tensor(targets[:, None]), axis=1))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = score(inputs)
        return tape.gradient(total, inputs).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(score)(x))
    if backend == "torch":
        import torch

        inputs = torch.tensor(x, requires_grad=True)
        score(inputs).backward()
        return inputs.grad.detach().cpu().numpy()
    raise NotImplementedError(f"expanded_weights supports the tensorflow, jax and torch backends, not {backend!r}.")


def top_expanded(
    model,
    layer_from: str,
    layer_to: str,
    filter: int,
    k: int = DEFAULT_TOP_K,
    *,
    size: int | None = DEFAULT_EXPANDED_SIZE,
    weights: str | None = "imagenet",
) -> IncomingChannels:
    """Rank the channels of `layer_from` by the L2 norm of their expanded weights into one filter of
    `layer_to`: `top_inputs` across several layers.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer_from: the earlier layer.
        layer_to: the later layer, reached from `layer_from` through single-input layers.
        filter: the filter (channel) of `layer_to`.
        k: how many input channels to keep, an int >= 1. Defaults to 6.
        size: rows and columns of the expanded weights around the centre; None gives the whole receptive
            field. Defaults to 5.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        An `IncomingChannels` whose `slices` are `(k, size, size)` expanded weights and whose
        `input_layer` is `layer_from`.

    Raises:
        ValueError: `filter` out of range, `k` not an int >= 1, or the layers do not form a single path.

    Example:
    >>> top = kv.weights.top_expanded("VGG16", "block1_conv2", "block2_conv1", 7, k=3, weights="hed")
    >>> top.slices.shape
    (3, 5, 5)
    """
    network = _network(model, weights)
    linear, _ = linearized_model(network, layer_from, layer_to)
    f = _check_filter(filter, int(linear.outputs[0].shape[-1]), layer_to)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1. Received: k={k!r}.")
    w = expanded_weights(network, layer_from, layer_to, size, filters=[f])[..., 0]  # (s, s, C_from)
    slices = np.moveaxis(w, -1, 0)
    all_norms = np.sqrt(np.sum(slices.astype("float64") ** 2, axis=(1, 2))).astype("float32")
    order = np.argsort(-all_norms, kind="stable")[: int(k)]
    path_to, _ = models.find_layer(network, layer_to)
    path_from, _ = models.find_layer(network, layer_from)
    return IncomingChannels(layer=path_to, filter=f, input_layer=path_from, channels=order.astype("int64"),
                            norms=all_norms[order], slices=slices[order], all_norms=all_norms)
