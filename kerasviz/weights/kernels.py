"""What the weights connect: kernels, the first layer's filters as pictures, the strongest input channels of a
filter and the single path between two layers."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerasviz import nets
from kerasviz.nets.sublayers import sublayers_of

DEFAULT_TOP_K = 6


FIRST_LAYER_SCALE = 8  # pixels per kernel tap in `first_layer_kernels_image`


KERNEL_TYPES = ("Conv2D",)  # layers whose kernel is (kh, kw, C_in, C_out)


DENSE_TYPES = ("Dense",)  # layers whose kernel is (C_in, C_out): `top_inputs` reads it as a 1 x 1 convolution's


_KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _conv_layer(network: nets.Network, layer: str, argument: str = "layer", *, dense: bool = False):
    """`(path, layer)` of a Conv2D layer (or a Dense one, with `dense=True`), or a ValueError that names the
    layers of that kind close by."""
    path, found = nets.find_layer(network, layer)
    types = KERNEL_TYPES + (DENSE_TYPES if dense else ())
    if type(found).__name__ not in types or not hasattr(found, "kernel"):
        if dense:
            kind = "not a convolution or dense layer: incoming channels need a Conv2D or Dense layer (the Dense"
            need = "layers of a transformer's MLP connect its channels)"
        else:
            kind, need = "not a convolution: kernels need", "a Conv2D layer"
        raise ValueError(
            f"{argument}={layer!r} is a {type(found).__name__} layer of {network.name}, {kind} "
            f"{need}.{_nearest_convs(network, path, types)}"
        )
    if getattr(found, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"Layer {path!r} uses data_format={found.data_format!r}; kerasviz needs channels_last.")
    return path, found


def _nearest_convs(network: nets.Network, path: str, types: tuple[str, ...] = KERNEL_TYPES) -> str:
    """' Nearest Conv2D layers: 'x' (before), 'y' (after).' in model order."""
    order = [p for p, _ in nets.iter_layers(network.model)]
    convs = set(nets.conv_layers(network, types=types))
    here = order.index(path)
    before = [p for p in order[:here] if p in convs][-1:]
    after = [p for p in order[here + 1 :] if p in convs][:1]
    found = [f"{p!r} (before)" for p in before] + [f"{p!r} (after)" for p in after]
    kinds = " or ".join(types)
    if not found:
        return f" The model has no {kinds} layer."
    return f" Nearest {kinds} layers: " + ", ".join(found) + "."


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
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kernel, bias = kv.weights.kernels(net, "block1_conv1")
    >>> kernel.shape
    (3, 3, 3, 64)
    """
    network = nets.as_network(model, weights=weights)
    _, conv = _conv_layer(network, layer)
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), "float32")
    bias = getattr(conv, "bias", None)
    bias = np.zeros(kernel.shape[-1], "float32") if bias is None else np.asarray(
        keras.ops.convert_to_numpy(bias), "float32")
    return kernel, bias


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
    f = nets.check_filter(filter, kernel.shape[-1], layer)
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
    network = nets.as_network(model, weights=weights)
    convs = nets.conv_layers(network, types=KERNEL_TYPES)
    if not convs:
        raise ValueError(f"{network.name} has no Conv2D layer.")
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
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> mosaic = kv.weights.first_layer_kernels_image(net)
    >>> mosaic.shape, mosaic.dtype  # 8 x 8 kernels of 3 x 3 taps, 8 pixels a tap, 1-pixel margins
    ((199, 199, 3), dtype('uint8'))
    >>> kv.save_image(mosaic, "conv1.png")
    'conv1.png'
    """
    from kerasviz import images

    network = nets.as_network(model, weights=weights)
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


@dataclasses.dataclass
class IncomingChannels:
    """The input channels that feed one filter most, by the L2 norm of their kernel slices.

    Attributes:
        layer: the Conv2D or Dense layer (path).
        filter: the filter index.
        input_layer: the layer whose channels the kernel reads: the previous layer with weights
            (a conv), a layer that merges branches, or the model's input layer (see `from_image`).
            Pooling, activation, normalization and dropout layers in between are looked through.
        channels: int `(k,)`, input channel indices, strongest first.
        norms: float32 `(k,)`, the Frobenius norm of each channel's `(kh, kw)` kernel slice.
        slices: float32 `(k, kh, kw)`, the kernel slices themselves (`(k, 1, 1)`, single weights, for a
            Dense layer).
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
    >>> kv.weights.input_layer_of("VGG16", "block2_conv1")  # through block1_pool
    ('block1_conv2', False)
    """
    network = nets.as_network(model, weights=weights)
    path, start = nets.find_layer(network, layer)
    prefix = path[: -len(start.name)]
    parents = nets.parent_layers(start)
    if not parents and "/" in path:  # inside a subclassed layer (KerasHub's encoders): no graph to follow
        sibling = _dense_before(network, path, start)
        if sibling is not None:
            return sibling, False
        raise ValueError(
            f"Layer {path!r} of {network.name} sits inside the subclassed layer {path.rsplit('/', 1)[0]!r}, which "
            "has no graph to follow, and no Dense layer before it there has the width it reads. Inside such a "
            "layer the channels a layer reads are found between Dense layers (a transformer MLP's second Dense "
            "reads its first)."
        )
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
        parents = nets.parent_layers(current)
        if len(parents) != 1:  # a layer that merges branches (Add, Concatenate) is the source itself
            return prefix + current.name, False
        current = parents[0]


def _dense_before(network: nets.Network, path: str, layer) -> str | None:
    """For a Dense layer inside a subclassed layer (a KerasHub MLP, which has no graph of its own): the Dense
    layer made before it in the same outer layer whose width is the one it reads, else None."""
    width = getattr(getattr(layer, "kernel", None), "shape", (None, None))[0]
    outer_path = path.rsplit("/", 1)[0]
    siblings = sublayers_of(nets.find_layer(network, outer_path)[1])
    here = next((i for i, s in enumerate(siblings) if s is layer), 0)
    found = [s for s in siblings[:here] if type(s).__name__ in DENSE_TYPES and getattr(s, "units", None) == width]
    return f"{outer_path}/{found[-1].name}" if width is not None and found else None


def top_inputs(
    model, layer: str, filter: int, k: int = DEFAULT_TOP_K, *, weights: str | None = "imagenet"
) -> IncomingChannels:
    """Rank the input channels of a filter by the L2 (Frobenius) norm of its kernel slice for each.

    Large-norm channels are those the filter listens to most (with either sign); the kernel slice
    says where in the 3x3 (or kh x kw) window and whether it excites (positive) or inhibits.

    A Dense layer's kernel `(C_in, C_out)` is read as a 1 x 1 convolution's: each input channel has one
    weight into the output channel, and its norm is that weight's size. In a transformer's MLP (a Dense
    layer widening each token's channels, then one narrowing them back) this says which hidden units feed
    an output channel of the block; a Dense layer applies the same kernel to every token.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D or Dense layer.
        filter: the filter index.
        k: how many channels to return. Defaults to 6 (at most C_in are returned).
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        An `IncomingChannels` (channel indices, norms, slices, the input layer's name).

    Raises:
        ValueError: not a Conv2D or Dense layer, `filter` out of range, `k < 1`, or an input layer whose
            channel count does not match the kernel.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> top = kv.weights.top_inputs(net, "block2_conv1", 0, k=6)
    >>> top.input_layer, top.channels.shape, bool(top.norms[0] >= top.norms[-1])
    ('block1_conv2', (6,), True)
    """
    network = nets.as_network(model, weights=weights)
    path, conv = _conv_layer(network, layer, dense=True)
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), "float32")
    kernel = kernel[None, None] if kernel.ndim == 2 else kernel  # a Dense kernel as a 1 x 1 convolution's
    f = nets.check_filter(filter, kernel.shape[-1], path)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1. Received: k={k!r}.")
    input_layer, from_image = input_layer_of(network, path)
    groups = int(getattr(conv, "groups", 1) or 1)
    per_group_in = kernel.shape[2]
    offset = (f // (kernel.shape[-1] // groups)) * per_group_in if groups > 1 else 0
    _, source = nets.find_layer(network, input_layer)
    c_in = nets.output_channels(source)
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
    network = nets.as_network(model, weights=weights)
    path_from, first = nets.find_layer(network, layer_from)
    path_to, last = nets.find_layer(network, layer_to)
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
        parents = nets.parent_layers(current)
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
