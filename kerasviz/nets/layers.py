"""Layers of a model.

Lookup (nested models too), channels, listing, filter resolution, and the feature extractor (with the pre-
activation of a fused ReLU).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz import names
from kerasviz.nets.inputs import needed_inputs
from kerasviz.nets.network import Network

LEAKY_SLOPE = 0.01  # the slope that replaces a ReLU's zero gradient when pre_activation is on


CONV_TYPES = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv2D",
              "SeparableConv1D", "SeparableConv2D")
_FUSED_RELU_TYPES = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Dense")


def _sublayers(model) -> list:
    return list(getattr(model, "layers", []))


def iter_layers(model, prefix: str = ""):
    """Yield `(path, layer)` for every layer, nested models included (`"outer/inner"` paths).

    Args:
        model: a `keras.Model` (or a layer with sublayers).
        prefix: prepended to every path. Defaults to `""`.

    Returns:
        A generator of `(path, layer)` pairs, outer layers before their inner ones.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> [path for path, _ in kv.nets.iter_layers(net.model)][1:3]
    ['block1_conv1', 'block1_conv2']
    """
    for layer in _sublayers(model):
        path = prefix + layer.name
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, path + "/")


def find_layer(model, name: str) -> tuple[str, keras.layers.Layer]:
    """Find a layer by name or `outer/inner` path, searching nested models too.

    A bare name also matches the last part of a nested path, when only one layer has that name.

    Args:
        model: a `Network` or `keras.Model`.
        name: the layer name or `outer/inner` path.

    Returns:
        `(path, layer)`: the full path and the Keras layer.

    Raises:
        ValueError: no such layer (the message suggests close names), or a bare name that layers of several
            nested models have (the message lists their paths).
        TypeError: `name` is not a string.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> path, layer = kv.find_layer(net, "block3_conv3")
    >>> path
    'block3_conv3'
    """
    keras_model = model.model if isinstance(model, Network) else model
    label = model.name if isinstance(model, Network) else keras_model.name
    if not isinstance(name, str):
        raise TypeError(f"layer must be a layer name (str). Received: {type(name).__name__}.")
    layers = dict(iter_layers(keras_model))
    if name in layers:
        return name, layers[name]
    by_leaf = [p for p in layers if p.rsplit("/", 1)[-1] == name]
    if len({id(layers[p]) for p in by_leaf}) > 1:
        raise ValueError(f"Layer name {name!r} is ambiguous in {label}: it names {len(by_leaf)} layers of nested "
                         f"models ({', '.join(map(repr, by_leaf))}). Pass the path of the one you mean, e.g. "
                         f"layer={by_leaf[0]!r}.")
    if by_leaf:
        return by_leaf[0], layers[by_leaf[0]]
    leaves = sorted({p.rsplit("/", 1)[-1] for p in layers} | set(layers))
    raise ValueError(f"Layer {name!r} not found in {label}.{names.did_you_mean(name, leaves)}")


def channels_of(model, layer_name: str) -> int:
    """The number of channels (last axis) of a layer's output.

    Args:
        model: a `Network` or `keras.Model`.
        layer_name: the layer name or `outer/inner` path.

    Returns:
        The channel count, an int.

    Raises:
        ValueError: no such layer, or the layer's output has no channel axis.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.nets.channels_of(net, "block1_conv1")
    64
    """
    path, layer = find_layer(model, layer_name)
    channels = output_channels(layer)
    if channels is None:
        raise ValueError(
            f"Layer {path!r} has output shape {output_shape(layer)}, with no channel axis to pick filters from. "
            "Choose a convolution, pooling, activation or dense layer."
        )
    return channels


def output_shape(layer) -> tuple | None:
    """The shape of `layer`'s output (batch first), or None where it has no single output (not built, or several)."""
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    return tuple(out.shape)


def output_channels(layer) -> int | None:
    """The channel count (last axis) of `layer`'s output, or None where it has no single output of known width."""
    shape = output_shape(layer)
    return int(shape[-1]) if shape is not None and len(shape) >= 2 and shape[-1] is not None else None


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One row of `list_layers`."""

    path: str
    type: str
    output_shape: tuple | None
    channels: int | None


def list_layers(model) -> list[LayerInfo]:
    """Every layer of a model (nested ones with `outer/inner` paths): name, type, output shape, channels.

    Args:
        model: a `keras.Model`, or anything `as_network` takes (a name is built with ImageNet weights).

    Returns:
        A list of `LayerInfo` (`path`, `type`, `output_shape`, `channels`), one per layer.

    Example:
    >>> rows = kv.list_layers(kv.get_model("VGG16", weights="hed"))
    >>> rows[1].path, rows[1].channels
    ('block1_conv1', 64)
    """
    keras_model = as_network_lazily(model).model if not isinstance(model, keras.Model) else model
    rows = []
    for path, layer in iter_layers(keras_model):
        rows.append(LayerInfo(path, type(layer).__name__, output_shape(layer), output_channels(layer)))
    return rows


def has_fused_relu(layer) -> bool:
    """True for a Conv/Dense layer with a built-in ReLU (or softmax: its input is the logit), or a
    ReLU/Activation('relu') layer.

    Args:
        layer: a Keras layer.

    Returns:
        A bool: whether `feature_extractor(..., pre_activation=True)` replaces the layer's activation.

    Example:
    >>> kv.nets.has_fused_relu(keras.layers.Conv2D(8, 3, activation="relu"))
    True
    """
    kind = type(layer).__name__
    activation = getattr(layer, "activation", None)
    is_relu = getattr(activation, "__name__", "") in ("relu", "relu6", "softmax")
    if kind in _FUSED_RELU_TYPES or kind == "Activation":
        return is_relu
    return kind == "ReLU"


def leaks_under_pre_activation(layer) -> bool:
    """Whether `feature_extractor(..., pre_activation=True)` outputs a leaky ReLU for this layer.

    True for the layers whose ReLU it replaces (see `has_fused_relu`), False for a softmax (a Dense layer's
    own or an `Activation("softmax")` layer: the logits come out as they are) and for every layer it leaves
    alone.

    Args:
        layer: a Keras layer.

    Returns:
        A bool: whether `undo_leak` gives back the layer's value before its activation.

    Example:
    >>> kv.nets.leaks_under_pre_activation(keras.layers.Dense(10, activation="softmax"))
    False
    """
    return has_fused_relu(layer) and not _is_softmax(layer)  # a softmax's logits come out as they are


def _is_softmax(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


def undo_leak(x):
    """The value before the activation, from the output of a ReLU that `pre_activation` made leaky.

    The leaky ReLU scales negative values by `LEAKY_SLOPE`, so its slope jumps 100-fold at zero; an
    adaptive optimizer (Adam) driving a negative value up then oscillates around zero instead of crossing
    it. Dividing the negative part by the slope gives back the linear value, whose gradient is smooth.

    Args:
        x: a tensor read from a `feature_extractor(..., pre_activation=True)` output of a layer for which
            `leaks_under_pre_activation` is True (anywhere else the result is meaningless).

    Returns:
        A tensor of the same shape: `x` where `x >= 0`, `x / LEAKY_SLOPE` elsewhere.

    Example:
    >>> float(kv.nets.undo_leak(keras.ops.convert_to_tensor([-0.05, 2.0]))[0])
    -5.0
    """
    return keras.ops.where(x < 0, x / LEAKY_SLOPE, x)


class _Linear:
    """`inner` seen with its activation switched off: every attribute is the layer's own (the same weights),
    except `activation`. Nothing of the layer changes, so threads that share it are safe."""

    def __init__(self, inner):
        self._inner = inner

    activation = None

    def __getattr__(self, name):
        return getattr(self._inner, name)


class PreActivation(keras.layers.Layer):
    """Calls a Conv/Dense layer's own `call` with the activation switched off, sharing its weights; a
    ReLU becomes a leaky ReLU, a softmax goes away (its input is the logit)."""

    def __init__(self, inner, **kwargs):
        super().__init__(name=inner.name + "_preact", **kwargs)
        self.inner = inner

    def call(self, x):
        out = type(self.inner).call(_Linear(self.inner), x)
        if getattr(self.inner.activation, "__name__", "") == "softmax":
            return out
        return keras.ops.leaky_relu(out, LEAKY_SLOPE)


def _node_inputs(layer):
    node = layer._inbound_nodes[0]
    return node.input_tensors[0] if len(node.input_tensors) == 1 else node.input_tensors


def _layer_tensor(model, parts: Sequence[str], pre_activation: bool):
    """The symbolic tensor of layer `parts` (a path) within `model`'s own graph."""
    layer = model.get_layer(parts[0])
    if len(parts) > 1:
        inner_out = _layer_tensor(layer, parts[1:], pre_activation)
        sub = keras.Model(layer.inputs[0] if len(layer.inputs) == 1 else layer.inputs, inner_out)
        return _replay(sub, _node_inputs(layer))  # its layers, not the nested model: it can run at any size
    if pre_activation and has_fused_relu(layer):
        if type(layer).__name__ in ("ReLU", "Activation"):
            if _is_softmax(layer):
                return _node_inputs(layer)  # a classifier's own softmax layer: read its input, the logits
            return keras.layers.LeakyReLU(LEAKY_SLOPE, name=layer.name + "_leaky")(_node_inputs(layer))
        return PreActivation(layer)(_node_inputs(layer))
    return layer.output


def feature_extractor(
    model, layers: Sequence[str], *, pre_activation: bool = True, flexible: bool = True
) -> keras.Model:
    """A model from the network's input to the given layers' outputs (a list, in order).

    Args:
        model: a `Network` or `keras.Model`.
        layers: layer names or `outer/inner` paths.
        pre_activation: for a layer that applies a ReLU (Conv2D/Dense with `activation="relu"`, or a ReLU
            layer), replace the ReLU by a leaky ReLU (slope `LEAKY_SLOPE`), so that filters whose
            output starts at zero still get a gradient; positive values are unchanged. A softmax (a
            layer's own or an `Activation("softmax")` layer) is dropped: its input, the logit, is
            returned. Defaults to True.
        flexible: for a model with a fixed input size, rebuild the extractor on a flexible spatial input
            when the layers up to `layers` take any size (the same layers and weights); see `input_size`
            for what came out. Defaults to True.

    Returns:
        A `keras.Model` with one output per layer, taking only the model inputs that the layers depend on
        (the image alone for a layer of the image branch of a multi-input model).

    Raises:
        ValueError: a layer is not found, or does not depend on the image input.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> extractor = kv.feature_extractor(net, ["block1_conv2", "block2_conv2"])
    >>> [tuple(a.shape) for a in extractor(np.zeros((1, 32, 32, 3)))]
    [(1, 32, 32, 64), (1, 16, 16, 128)]
    """
    keras_model = model.model if isinstance(model, Network) else model
    outputs = []
    for name in layers:
        path, _ = find_layer(keras_model, name)
        outputs.append(_layer_tensor(keras_model, path.split("/"), pre_activation))
    image_input = model.image_input if isinstance(model, Network) else 0
    inputs = needed_inputs(keras_model, outputs, image_input, layers)  # only those the layers depend on
    extractor = keras.Model(inputs, outputs, name="kerasviz_extractor")
    image = [t is keras_model.inputs[image_input] for t in keras.tree.flatten(inputs)].index(True)
    return _on_flexible_input(extractor, image) if flexible else extractor


FLEX_PROBE_MARGIN = 32  # pixels added to a fixed input size to check that the layers take other sizes


def input_size(model: keras.Model, index: int = 0) -> tuple[int, int] | None:
    """The `(height, width)` a model's (or extractor's) image input must have, or None when it takes any size.

    Args:
        model: a `keras.Model`, e.g. from `feature_extractor`.
        index: which input is the image (for a model with several). Defaults to 0.

    Returns:
        `(height, width)`, or None.

    Example:
    >>> small = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(6, 3, name="g1")])
    >>> kv.nets.input_size(small), kv.nets.input_size(kv.feature_extractor(small, ["g1"]))
    ((28, 28), None)
    """
    shape = tuple(model.inputs[index if len(model.inputs) > 1 else 0].shape[1:3])
    return None if None in shape else (int(shape[0]), int(shape[1]))


def _replay(model, inputs):
    """`model`'s layers called on the symbolic `inputs`, each nested model (Functional or Sequential) replaced by
    its own layers, at any depth: the same layers and weights in a graph without nested models, whose fixed-size
    `Input` would refuse another image size."""
    if isinstance(model, keras.Sequential):
        x = inputs
        for layer in model.layers:
            x = _replay(layer, x) if isinstance(layer, keras.Model) else layer(x)
        return x

    def operation(op):
        if isinstance(op, keras.Model):
            return lambda *args, **kwargs: _replay(op, args[0])
        return op

    return model._run_through_graph(inputs, operation_fn=operation)


def _on_flexible_input(extractor: keras.Model, image: int = 0) -> keras.Model:
    """`extractor` rebuilt on a `(None, None, C)` image input when that input has a fixed size and its layers take
    any size: the same layer objects (the same weights, nothing copied) called on the new input (its other inputs,
    if any, as they are). Kept as it is when the layers need the fixed size (a `Flatten`, `Reshape` or `Dense` on
    flattened maps before the outputs): a forward pass at a larger size decides."""
    fixed = input_size(extractor, image)
    if fixed is None:
        return extractor
    new_inputs, probes = [], []
    for i, spec in enumerate(extractor.inputs):
        shape = (None, None) + tuple(spec.shape[3:]) if i == image else tuple(spec.shape[1:])
        new_inputs.append(keras.Input(shape, dtype=spec.dtype, name=spec.name))
        probe_shape = (fixed[0] + FLEX_PROBE_MARGIN, fixed[1] + FLEX_PROBE_MARGIN) + shape[2:] if i == image else shape
        probes.append(np.zeros((1,) + tuple(d or 1 for d in probe_shape), spec.dtype or "float32"))
    single = len(new_inputs) == 1
    try:
        flexible = keras.Model(new_inputs[0] if single else new_inputs,
                               _replay(extractor, new_inputs[0] if single else new_inputs), name=extractor.name)
        flexible(probes[0] if single else probes, training=False)
    except Exception:  # any failure means: these layers need the model's own size
        return extractor
    return flexible


DEFAULT_FILTER_COUNT = 64  # an 8x8 atlas


CACHE_ATTRIBUTE = "_kerasviz_caches"


def model_cache(model, name: str) -> dict:
    """A dict of kerasviz's compiled things for `model` (extractors, renderers), kept on the model itself.

    A module-level cache keyed by the model would keep every model alive, since what it holds (extractors,
    compiled steps) refers back to the model; held by the model, they form a cycle that the garbage
    collector frees with the model once the user lets it go. Written into the model's `__dict__`, so Keras
    does not track it as a layer attribute (it is never saved or cloned).

    Args:
        model: a `keras.Model`.
        name: which cache (`"extractors"`, `"renderers"`).

    Returns:
        The dict, created empty on first use.
    """
    caches = vars(model).setdefault(CACHE_ATTRIBUTE, {})
    return caches.setdefault(name, {})


def resolve_filters(filters, n_channels: int, layer: str, default: int | None = DEFAULT_FILTER_COUNT) -> list[int]:
    """Filter indices from what the user wrote, checked against the layer's channels.

    Args:
        filters: an int, an iterable of ints, `"all"`, or None for the first `default`. An int is one
            filter index: `filters=4` is filter 4 (the result lists `[4]`); `range(4)` gives four.
        n_channels: the layer's channel count.
        layer: the layer name (for the error message).
        default: how many filters None gives, clipped to the layer's channels (a layer with 8 channels
            gives 8); None gives all. Defaults to 64 (the keras.io 8x8 atlas).

    Returns:
        A list of ints.

    Raises:
        ValueError: an empty list, an index the user gave out of range (the message gives the valid
            range), or another string than `"all"`.

    Example:
    >>> kv.nets.resolve_filters(range(3), 64, "block1_conv1")
    [0, 1, 2]
    >>> kv.nets.resolve_filters(4, 64, "block1_conv1")  # one filter: number 4
    [4]
    >>> kv.nets.resolve_filters(None, 8, "conv1")  # the default 64, clipped to 8 channels
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    if filters is None:
        return list(range(n_channels if default is None else min(default, n_channels)))
    if isinstance(filters, str):
        if filters == "all":
            return list(range(n_channels))
        raise ValueError(f"filters must be an int, a list of ints or 'all'. Received: {filters!r}.")
    if isinstance(filters, (int, np.integer)):
        filters = [int(filters)]
    filters = [int(f) for f in filters]
    if not filters:
        raise ValueError("filters is empty: give at least one filter index.")
    for f in filters:
        check_filter(f, n_channels, layer)
    return filters


def as_network_lazily(model, **kwargs):
    """`applications.as_network(model, **kwargs)`, imported when called: applications reads this module."""
    from kerasviz.nets.applications import as_network

    return as_network(model, **kwargs)


def conv_layers(model, *, types: Sequence[str] = CONV_TYPES) -> list[str]:
    """Paths of a model's convolution layers (nested models searched), in model order.

    Args:
        model: a `Network` or `keras.Model`.
        types: the layer class names that count. Defaults to `CONV_TYPES` (Conv1D/2D/3D, transposed,
            depthwise and separable convolutions).

    Returns:
        A list of layer paths.

    Example:
    >>> kv.nets.conv_layers(kv.get_model("VGG16", weights="hed"))[:2]
    ['block1_conv1', 'block1_conv2']
    """
    keras_model = model.model if isinstance(model, Network) else model
    return [path for path, layer in iter_layers(keras_model)
            if type(layer).__name__ in types and not isinstance(layer, keras.Model)]


def check_filter(index, n_channels: int, layer: str) -> int:
    """`index` as an int, checked against a layer's channel count: the one range check of the package.

    Args:
        index: the filter (channel) index the user gave.
        n_channels: the layer's channel count.
        layer: the layer name (for the message).

    Returns:
        `int(index)`.

    Raises:
        TypeError: `index` is not an int.
        ValueError: `index` is not in `0 .. n_channels - 1`.

    Example:
    >>> kv.nets.check_filter(3, 64, "block1_conv1")
    3
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"filter must be an int. Received: filter={index!r} (layer {layer!r}).")
    if not 0 <= index < n_channels:
        raise ValueError(f"Filter {int(index)} is out of range for layer {layer!r}, which has {n_channels} channels "
                         f"(valid: 0-{n_channels - 1}).")
    return int(index)


def parent_layers(layer) -> list:
    """The layers (operations) whose outputs `layer` reads, in its first call's graph; [] for an input."""
    nodes = getattr(layer, "_inbound_nodes", [])
    return [node.operation for node in nodes[0].parent_nodes] if nodes else []

