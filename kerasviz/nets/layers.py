"""Layers of a model.

Lookup (nested models too, and the layers inside a subclassed layer such as KerasHub's ViT encoder), channels,
listing, the layers worth a picture (`visual_layers`), filter resolution, and the feature extractor (with the
pre-activation of a fused ReLU).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from kerasviz import names
from kerasviz.nets.flexible import on_flexible_input, replay
from kerasviz.nets.inputs import needed_inputs
from kerasviz.nets.network import Network
from kerasviz.nets.sublayers import Tap, inner_layer, inner_layers, inner_shapes
from kerasviz.nets.tokens import token_grid

LEAKY_SLOPE = 0.01  # the slope that replaces a ReLU's zero gradient when pre_activation is on
# (where, value) of the minimum of the activations that fall before they rise: below it a higher output needs a
# lower input, so maximizing the output drives a unit away from ever firing (measured: docs/transformers.md).
_MINIMA = {"gelu": (-0.7517915, -0.1699712), "silu": (-1.2784645, -0.2784645), "hard_silu": (-1.5, -0.375),
           "mish": (-1.1924312, -0.3088434)}


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
    layers.update(_all_inner_layers(keras_model, layers))
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


def _all_inner_layers(keras_model, layers: dict, *, attention: bool = True) -> dict:
    """`{path: layer}` for the layers inside the subclassed layers of `layers` (graph layers by path)."""
    inner = {}
    for path, layer in layers.items():
        if not isinstance(layer, keras.Model):
            inner.update(inner_layers(layer, path, attention=attention))
    return inner


def _split_inner(keras_model, path: str):
    """For a path inside a subclassed layer: `(graph path parts, the graph layer, the inner names)`, else None."""
    parts = path.split("/")
    owner = keras_model
    for i, part in enumerate(parts):
        try:
            layer = owner.get_layer(part) if isinstance(owner, keras.Model) else None
        except ValueError:
            return None
        if layer is None:
            return None
        if not isinstance(layer, keras.Model):
            rest = parts[i + 1:]
            return (parts[:i + 1], layer, rest) if rest and inner_layer(layer, rest) is not None else None
        owner = layer
    return None


def layer_output_shape(model, layer_name: str) -> tuple | None:
    """The output shape (batch first) of a layer given by name or path, a layer inside a subclassed layer too.

    Args:
        model: a `Network` or `keras.Model`.
        layer_name: the layer name or `outer/inner` path.

    Returns:
        The shape, or None where the layer has no single output.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.nets.layer_output_shape(net, "block1_conv1")
    (None, None, None, 64)
    """
    keras_model = model.model if isinstance(model, Network) else model
    path, layer = find_layer(keras_model, layer_name)
    shape = output_shape(layer)
    if shape is not None:
        return shape
    split = _split_inner(keras_model, path)
    if split is None:
        return None
    _, outer, inner = split
    return _inner_shapes(outer).get("/".join(inner))


def _inner_shapes(outer) -> dict:
    """`sublayers.inner_shapes` of a graph layer on its own first call's inputs, kept on the layer."""
    cached = vars(outer).get("_kerasviz_inner_shapes")
    if cached is None:
        cached = inner_shapes(outer, _node_inputs(outer))
        vars(outer)["_kerasviz_inner_shapes"] = cached
    return cached


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
    path, _ = find_layer(model, layer_name)
    shape = layer_output_shape(model, path)
    channels = int(shape[-1]) if shape is not None and len(shape) >= 2 and shape[-1] is not None else None
    if channels is None:
        raise ValueError(
            f"Layer {path!r} has output shape {shape}, with no channel axis to pick filters from. "
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


def list_layers(model, *, attention: bool = False) -> list[LayerInfo]:
    """Every layer of a model (nested ones with `outer/inner` paths): name, type, output shape, channels.

    The layers inside a subclassed layer (a KerasHub ViT's encoder blocks and their MLPs) are listed after it,
    with `outer/inner` paths, and can be visualized like any other.

    Args:
        model: a `keras.Model`, or anything `as_network` takes (a name is built with ImageNet weights).
        attention: also list the internals of attention layers (query, key, value projections, softmax).
            Defaults to False.

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
        if not isinstance(layer, keras.Model):
            for inner_path, inner in inner_layers(layer, path, attention=attention):
                shape = _inner_shapes(layer).get(inner_path[len(path) + 1:])
                channels = int(shape[-1]) if shape and len(shape) >= 2 and shape[-1] is not None else None
                rows.append(LayerInfo(inner_path, type(inner).__name__, shape, channels))
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


def _minimum(layer) -> tuple[float, float] | None:
    """`_MINIMA` of the GELU, swish, hard swish or mish of a Conv/Dense or Activation layer, else None."""
    if type(layer).__name__ not in (*_FUSED_RELU_TYPES, "Activation"):
        return None
    return _MINIMA.get(getattr(getattr(layer, "activation", None), "__name__", ""))


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
    ReLU becomes a leaky ReLU, a softmax goes away (its input is the logit). A GELU, swish, hard swish or mish
    (of a Conv/Dense or an Activation layer) is kept down to its minimum, below which it rises with the slope
    `LEAKY_SLOPE` instead of falling: always at most the real output, so a positive score is a positive output."""

    def __init__(self, inner, **kwargs):
        super().__init__(name=inner.name + "_preact", **kwargs)
        self.inner = inner

    def call(self, x):
        if _minimum(self.inner) is not None:
            return _kept_from_falling(self.inner, x)[1]
        out = type(self.inner).call(_Linear(self.inner), x)
        if getattr(self.inner.activation, "__name__", "") == "softmax":
            return out
        return keras.ops.leaky_relu(out, LEAKY_SLOPE)


def _kept_from_falling(layer, *args, **kwargs):
    """`(output, kept)` of a layer with a GELU, swish, hard swish or mish: its output and the activation kept
    down to its minimum, rising with the slope `LEAKY_SLOPE` below it (one call of the layer with its activation
    switched off)."""
    z = args[0] if type(layer).__name__ == "Activation" else type(layer).call(_Linear(layer), *args, **kwargs)
    (low, floor), out = _minimum(layer), layer.activation(z)
    return out, keras.ops.where(z < low, floor + LEAKY_SLOPE * (z - low), out)


def _node_inputs(layer):
    node = layer._inbound_nodes[0]
    return node.input_tensors[0] if len(node.input_tensors) == 1 else node.input_tensors


def _layer_tensor(model, parts: Sequence[str], pre_activation: bool):
    """The symbolic tensor of layer `parts` (a path) within `model`'s own graph."""
    layer = model.get_layer(parts[0])
    if len(parts) > 1 and not isinstance(layer, keras.Model):  # a layer inside a subclassed layer: tap it
        falls = pre_activation and _minimum(inner_layer(layer, parts[1:])) is not None
        return Tap(layer, parts[1:], split=_kept_from_falling if falls else None)(_node_inputs(layer))
    if len(parts) > 1:
        inner_out = _layer_tensor(layer, parts[1:], pre_activation)
        sub = keras.Model(layer.inputs[0] if len(layer.inputs) == 1 else layer.inputs, inner_out)
        return replay(sub, _node_inputs(layer))  # its layers, not the nested model: it can run at any size
    if pre_activation and has_fused_relu(layer):
        if type(layer).__name__ in ("ReLU", "Activation"):
            if _is_softmax(layer):
                return _node_inputs(layer)  # a classifier's own softmax layer: read its input, the logits
            return keras.layers.LeakyReLU(LEAKY_SLOPE, name=layer.name + "_leaky")(_node_inputs(layer))
        return PreActivation(layer)(_node_inputs(layer))
    if pre_activation and _minimum(layer) is not None:
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
            returned. A GELU, swish, hard swish or mish is kept down to its minimum, and below it rises slowly
            instead of falling (`PreActivation`). Defaults to True.
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
    return on_flexible_input(extractor, image) if flexible else extractor




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


def parent_layers(layer) -> list:
    """The layers (operations) whose outputs `layer` reads, in its first call's graph; [] for an input."""
    nodes = getattr(layer, "_inbound_nodes", [])
    return [node.operation for node in nodes[0].parent_nodes] if nodes else []



_PASS_THROUGH = ("Dropout", "Identity", "LayerScale", "DropPath", "StochasticDepth", "Activation")
_DENSE_TYPES = ("Dense", "EinsumDense")


def _activation_name(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "linear") or "linear"


def _is_mlp_hidden(layer, shape) -> bool:
    """A token layer's MLP hidden layer after its activation: a Dense (own nonlinear activation) or an activation
    layer right after a Dense, wider than the Dense's input."""
    if shape is None or len(shape) != 3:
        return False
    kind = type(layer).__name__
    dense = layer
    if kind in ("Activation", "ReLU") or "GELU" in kind.upper():
        parents = parent_layers(layer)
        dense = parents[0] if len(parents) == 1 else None
        if dense is None or _activation_name(dense) != "linear":
            return False
    elif kind not in _DENSE_TYPES or _activation_name(layer) in ("linear", "softmax"):
        return False
    kernel = getattr(dense, "kernel", None)
    return type(dense).__name__ in _DENSE_TYPES and kernel is not None and kernel.shape[-1] > kernel.shape[0]


def _through(layer):
    """The first layer behind `layer` that is not a pass-through (dropout, layer scale, identity)."""
    while type(layer).__name__ in _PASS_THROUGH[:-1]:
        parents = parent_layers(layer)
        if len(parents) != 1:
            return layer
        layer = parents[0]
    return layer


def _is_block_output(layer, hidden_ids: set) -> bool:
    """A residual `Add` whose branch is the Dense that reads an MLP hidden layer: a transformer block's output."""
    if type(layer).__name__ != "Add":
        return False
    for branch in map(_through, parent_layers(layer)):
        if type(branch).__name__ in _DENSE_TYPES and any(
                id(_through(p)) in hidden_ids or id(p) in hidden_ids for p in parent_layers(branch)):
            return True
    return False


def _inner_visual(path: str, layer, shapes: dict) -> list[str]:
    """Inside a subclassed encoder: each MLP hidden Dense (own activation) and each block (a sublayer holding a
    normalization and an MLP hidden layer)."""
    marks, blocks = [], []
    for inner_path, inner in inner_layers(layer, path):
        rel = inner_path[len(path) + 1:]
        if type(inner).__name__ in _DENSE_TYPES and _activation_name(inner) not in ("linear", "softmax") and \
                shapes.get(rel) is not None and len(shapes[rel]) == 3 and _is_mlp_hidden(inner, shapes[rel]):
            marks.append(inner_path)
            owner = inner_path.rsplit("/", 2)[0] if inner_path.count("/") >= 2 else None
            if owner and owner not in blocks and owner != path:
                blocks.append(owner)
    order = [p for p, _ in inner_layers(layer, path)]
    last = {m: max(i for i, p in enumerate(order) if p == m or p.startswith(m + "/")) for m in marks + blocks}
    return sorted(marks + blocks, key=last.get)  # a block after its MLP: where its output is made


def visual_layers(model) -> list[str]:
    """The layers worth a picture by default, in model order.

    For a vision transformer (layers with a `(batch, tokens, channels)` output): each block's MLP hidden layer
    after its activation (the most informative place to look, Ghiasi et al. 2023) and each block's output;
    inside KerasHub's encoders these are inner paths (`vit_encoder/transformer_block_1/mlp/dense_1`). Attention
    internals are left out (visualize them by path when you want them). For a convnet: its convolution layers
    (`conv_layers`).

    Args:
        model: a `Network` or `keras.Model`.

    Returns:
        A list of layer paths (empty for a model with neither).

    Example:
    >>> kv.nets.visual_layers(kv.get_model("VGG16", weights="hed"))[:2]
    ['block1_conv1', 'block1_conv2']
    """
    keras_model = model.model if isinstance(model, Network) else model
    rows = list(iter_layers(keras_model))
    hidden = [(path, layer) for path, layer in rows if _is_mlp_hidden(layer, output_shape(layer))]
    marks = []
    if hidden:
        hidden_ids = {id(layer) for _, layer in hidden}
        chosen = {path for path, _ in hidden}
        chosen |= {path for path, layer in rows
                   if token_grid(layer) is not None and _is_block_output(layer, hidden_ids)}
        marks = [path for path, _ in rows if path in chosen]
    for path, layer in rows:
        if not isinstance(layer, keras.Model) and list(inner_layers(layer, path)):
            found = _inner_visual(path, layer, _inner_shapes(layer))
            if found:
                marks += found
    return marks or conv_layers(keras_model)
