"""Expanded weights (the Circuits method): the linearized path between two layers that need not be adjacent."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz import nets
from kerasviz.weights.kernels import DEFAULT_TOP_K, IncomingChannels, path_between

DEFAULT_EXPANDED_SIZE = 5


DEFAULT_JACOBIAN_BATCH = 64  # target channels per backward pass in `expanded_weights`


_IDENTITY_TYPES = (  # elementwise or translation-only layers: the identity on the linearized path
    "ReLU", "LeakyReLU", "ELU", "PReLU", "Activation", "Dropout", "SpatialDropout2D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "ZeroPadding2D", "Cropping2D",
)


_LINEARIZED_CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")  # kept with their kernels


_POOL_TYPES = ("MaxPooling2D", "AveragePooling2D")


@dataclasses.dataclass(frozen=True)
class _Step:
    """One layer of the linearized path: a fresh layer to run (None: the identity) and the weights to give it
    once it is built (None: its own)."""

    layer: keras.layers.Layer | None
    values: list | None = None


def _linearize(layer, path_from: str, path_to: str) -> _Step:
    """The linear stand-in of one layer (valid padding, no bias, no activation), as a `_Step`."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"Layer {layer.name!r} uses data_format={layer.data_format!r}; kerasviz needs channels_last.")
    if kind in _LINEARIZED_CONV_TYPES:
        config = layer.get_config()
        config.update(name=layer.name + "_linear", padding="valid", activation=None, use_bias=False)
        for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "dtype_policy", "dtype"):
            config.pop(key, None)
        new = type(layer).from_config(config)
        bias = getattr(layer, "bias", None)
        values = [keras.ops.convert_to_numpy(v) for v in layer.weights if v is not bias]
        return _Step(new, values)
    if kind in _POOL_TYPES:
        strides = layer.strides if layer.strides is not None else layer.pool_size
        return _Step(keras.layers.AveragePooling2D(layer.pool_size, strides, padding="valid"))
    if kind == "BatchNormalization":
        variance = keras.ops.convert_to_numpy(layer.moving_variance)
        gamma = keras.ops.convert_to_numpy(layer.gamma) if layer.gamma is not None else np.ones_like(variance)
        scale = (gamma / np.sqrt(variance + layer.epsilon)).astype("float32")
        new = keras.layers.DepthwiseConv2D(1, use_bias=False, name=layer.name + "_linear")
        return _Step(new, [scale.reshape(1, 1, -1, 1)])
    if kind == "Rescaling":
        return _Step(keras.layers.Rescaling(layer.scale, 0.0))
    if kind in _IDENTITY_TYPES or kind == "InputLayer":
        return _Step(None)
    dense = (f" A Dense layer's kernel connects channels directly: kv.top_inputs(model, {layer.name!r}, filter) "
             "ranks the channels that feed it (a transformer MLP's hidden units).") if kind == "Dense" else ""
    raise ValueError(
        f"expanded_weights cannot linearize layer {layer.name!r} ({kind}) on the path from {path_from!r} to "
        f"{path_to!r}. Supported: Conv2D, DepthwiseConv2D, SeparableConv2D, max/average pooling, "
        f"BatchNormalization, activations, dropout and padding.{dense}"
    )


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
    network = nets.as_network(model, weights=weights)
    chain = path_between(network, layer_from, layer_to)
    steps = [_linearize(layer, layer_from, layer_to) for layer in chain]
    field = nets.field_between(network, layer_from, layer_to)
    _, source = nets.find_layer(network, layer_from)
    c_from = nets.output_channels(source)
    if c_from is None:
        raise ValueError(f"layer_from={layer_from!r} has no channel axis.")
    inputs = keras.Input((field[0], field[1], c_from))
    x = inputs
    for step in steps:
        if step.layer is None:
            continue
        x = step.layer(x)
        if step.values is not None:
            step.layer.set_weights(step.values)
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
    filters: int | Sequence[int] | str | None = None,
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
        filters: channels of `layer_to` to compute (the last axis follows this order): a list, `"all"`
            or None (all). An int is one filter index: `filters=4` is filter 4 (a last axis of one);
            `range(4)` gives four. Defaults to None.
        batch_size: target channels per backward pass. Defaults to 64.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        float32 `(size, size, C_from, C_to)` (`C_to = len(filters)` when `filters` is given).

    Raises:
        ValueError: `layer_from` not before `layer_to`, a branch or an unsupported layer on the path, a
            filter out of range, or `size < 1`.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> w = kv.weights.expanded_weights(net, "block1_conv2", "block2_conv1", size=5)
    >>> w.shape
    (5, 5, 64, 128)
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size must be an int >= 1 or None (the whole receptive field). Received: size={size!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}.")
    network = nets.as_network(model, weights=weights)
    linear, field = linearized_model(network, layer_from, layer_to)
    c_to = int(linear.outputs[0].shape[-1])
    targets = nets.resolve_filters(filters, c_to, layer_to, default=None)
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
    from kerasviz.engine import backend

    picked = keras.ops.convert_to_tensor(targets[:, None])

    def score(inputs):
        out = linear(inputs, training=False)[:, 0, 0, :]
        return keras.ops.take_along_axis(out, picked, axis=1)

    return backend.input_gradient(score, x)


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
    network = nets.as_network(model, weights=weights)
    linear, _ = linearized_model(network, layer_from, layer_to)
    f = nets.check_filter(filter, int(linear.outputs[0].shape[-1]), layer_to)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1. Received: k={k!r}.")
    w = expanded_weights(network, layer_from, layer_to, size, filters=[f])[..., 0]  # (s, s, C_from)
    slices = np.moveaxis(w, -1, 0)
    all_norms = np.sqrt(np.sum(slices.astype("float64") ** 2, axis=(1, 2))).astype("float32")
    order = np.argsort(-all_norms, kind="stable")[: int(k)]
    path_to, _ = nets.find_layer(network, layer_to)
    path_from, _ = nets.find_layer(network, layer_from)
    return IncomingChannels(layer=path_to, filter=f, input_layer=path_from, channels=order.astype("int64"),
                            norms=all_norms[order], slices=slices[order], all_norms=all_norms)
