"""Receptive fields from the architecture alone.

The input pixels one position of a layer sees (`receptive_field`), and how many positions of one layer a
position of a later layer sees (`field_between`): one walk over the graph serves both.

A token of a vision transformer's layer `(batch, tokens, channels)` is given its own patch: the patch embedding's
window, `size = jump = patch size`. That is exactly what it sees up to the first attention layer. After one,
every token has read every other, so strictly each sees the whole image (`ReceptiveField.mixed` says so);
we still give the patch, because the residual stream keeps each token's own patch dominant (a token's picture
and its dataset examples are about its place in the image, as heatmaps of trained ViTs show), and a crop of
the whole image would make every dataset example the same whole photo. Read `mixed` where it matters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz.nets.layers import as_network_lazily, find_layer, parent_layers
from kerasviz.nets.network import Network
from kerasviz.nets.sublayers import inner_layer, inner_layers, is_attention

# Layers that keep every spatial position where it is (elementwise maps, normalizations, merges).
# Anything not listed and not recognized by its attributes is checked by shape (see `_transfer`).
_POINTWISE = (
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "UnitNormalization", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "Rescaling", "Normalization", "Add", "Subtract",
    "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Identity", "Lambda", "TFOpLambda",

)


_GLOBAL = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
           "Flatten")


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """The input patch that one position of a layer's output sees.

    All pairs are `(rows, columns)`. Pixel coordinates put the center of pixel `i` at `i`.

    Attributes:
        size: the side of the patch in input pixels, e.g. `(40, 40)` for VGG16 `block3_conv3`.
        jump: input pixels between neighbouring output positions (the product of the strides).
        offset: input coordinate of the center of output position `(0, 0)`; position `p` is centered
            at `offset + p * jump`.
        input_size: the input size the padding was worked out for, or None (assumed a multiple of
            every stride).
        mixed: True for a token layer after an attention layer: strictly every token sees the whole image;
            `size` is its own patch, the part that dominates it (see the module's note). False elsewhere.
    """

    size: tuple[int, int]
    jump: tuple[float, float]
    offset: tuple[float, float]
    input_size: tuple[int, int] | None = None
    mixed: bool = False

    def center(self, position: Sequence[int]) -> tuple[float, float]:
        """Input coordinates `(y, x)` of the center of output position `(row, col)`."""
        return tuple(float(o + p * j) for o, p, j in zip(self.offset, position, self.jump, strict=True))

    def box(self, position: Sequence[int]) -> tuple[int, int, int, int]:
        """`(top, left, bottom, right)` of the patch of output position `(row, col)`, bottom and right
        exclusive; it may reach outside the image (into the padding)."""
        corner = [
            int(math.floor(c - (s - 1) / 2 + 0.5)) for c, s in zip(self.center(position), self.size, strict=True)
        ]
        return corner[0], corner[1], corner[0] + self.size[0], corner[1] + self.size[1]


@dataclasses.dataclass(frozen=True)
class _Field:
    """Receptive field state per axis while walking the graph; `spatial=False` after a global op."""

    size: tuple[float, float] = (1.0, 1.0)
    jump: tuple[float, float] = (1.0, 1.0)
    start: tuple[float, float] = (0.0, 0.0)
    n: tuple[int | None, int | None] = (None, None)
    spatial: bool = True
    mixed: bool = False  # attention on the way: every token has read every other


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2:
        raise ValueError(f"kerasviz's receptive field handles 2-D layers; got a window of {value}.")
    return int(value[0]), int(value[1])


def _window(field: _Field, kernel, strides, dilation, padding: str, layer_name: str) -> _Field:
    """A sliding window (convolution or pooling) applied to `field`."""
    size, jump, start, n = list(field.size), list(field.jump), list(field.start), list(field.n)
    for a in range(2):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        s = strides[a]
        if padding == "valid":
            left = 0
            n[a] = None if n[a] is None else (n[a] - k_eff) // s + 1
        elif padding == "same":
            out = None if n[a] is None else -(-n[a] // s)
            total = max(k_eff - s, 0) if n[a] is None else max((out - 1) * s + k_eff - n[a], 0)
            left = total // 2
            n[a] = out
        else:
            raise ValueError(
                f"Layer {layer_name!r} has padding={padding!r}; the receptive field handles 'valid' and 'same'."
            )
        start[a] = start[a] + ((k_eff - 1) / 2 - left) * jump[a]
        size[a] = size[a] + (k_eff - 1) * jump[a]
        jump[a] = jump[a] * s
    return dataclasses.replace(field, size=tuple(size), jump=tuple(jump), start=tuple(start), n=tuple(n))


def _transfer(layer, fields: list[_Field], in_shapes, out_shape) -> _Field:
    """The receptive field of `layer`'s output from those of its inputs."""
    kind = type(layer).__name__
    if not fields:
        return _Field()
    # merges: follow the spatial input that sees most (its jump is the same in any well-formed
    # network); a global branch (a squeeze-and-excitation gate) scales positions but does not move them
    spatial = [f for f in fields if f.spatial]
    if not spatial:
        return fields[0]
    field = max(spatial, key=lambda f: f.size[0] * f.size[1])
    if any(f.mixed for f in spatial):  # a residual merge of an attention branch: mixed too
        field = dataclasses.replace(field, mixed=True)
    if "Transpose" in kind:
        raise ValueError(f"Layer {layer.name!r} ({kind}) upsamples by a transposed convolution, which "
                         "receptive_field does not handle.")
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        kernel = _pair(layer.kernel_size)
        return _window(field, kernel, _pair(layer.strides), _pair(getattr(layer, "dilation_rate", 1)),
                       str(layer.padding).lower(), layer.name)
    if hasattr(layer, "pool_size") and hasattr(layer, "strides") and not kind.startswith("Global"):
        strides = layer.strides if layer.strides is not None else layer.pool_size
        return _window(field, _pair(layer.pool_size), _pair(strides), (1, 1), str(layer.padding).lower(),
                       layer.name)
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        n = tuple(None if v is None else v + a + b for v, a, b in zip(field.n, (top, left), (bottom, right),
                                                                       strict=True))
        start = (field.start[0] - top * field.jump[0], field.start[1] - left * field.jump[1])
        return dataclasses.replace(field, start=start, n=n)
    if kind == "Cropping2D":
        (top, bottom), (left, right) = layer.cropping
        n = tuple(None if v is None else v - a - b for v, a, b in zip(field.n, (top, left), (bottom, right),
                                                                       strict=True))
        start = (field.start[0] + top * field.jump[0], field.start[1] + left * field.jump[1])
        return dataclasses.replace(field, start=start, n=n)
    if kind == "UpSampling2D":
        up = _pair(layer.size)
        jump = tuple(j / u for j, u in zip(field.jump, up, strict=True))
        start = tuple(s - (u - 1) / 2 * j for s, u, j in zip(field.start, up, jump, strict=True))
        n = tuple(None if v is None else v * u for v, u in zip(field.n, up, strict=True))
        return dataclasses.replace(field, jump=jump, start=start, n=n)
    if out_shape is not None and len(out_shape) == 3 and kind not in _GLOBAL:
        return _tokens(layer, field, in_shapes)
    if kind in _GLOBAL or (out_shape is not None and len(out_shape) != 4):
        return dataclasses.replace(field, spatial=False)
    if kind in _POINTWISE:
        return field
    if out_shape is not None and len(out_shape) == 4:
        maps = [s for s in in_shapes if s is not None and len(s) == 4]
        if all(tuple(s[1:3]) == tuple(out_shape[1:3]) for s in maps):
            return field  # an unknown layer that keeps the map's shape: pointwise
    raise ValueError(f"receptive_field does not know how layer {layer.name!r} ({kind}) maps positions.")


def _mixes(layer) -> bool:
    """Whether `layer` mixes tokens: an attention layer, or a subclassed layer with one inside."""
    return is_attention(layer) or any(is_attention(inner) for _, inner in inner_layers(layer, "", attention=True))


def _tokens(layer, field: _Field, in_shapes) -> _Field:
    """A token layer's field: a map turned into tokens keeps its positions (a patch embedding inside a
    subclassed layer adds its window); a layer that mixes tokens marks the field `mixed`."""
    if any(s is not None and len(s) == 4 for s in in_shapes):
        convs = [inner for _, inner in inner_layers(layer, "") if hasattr(inner, "kernel_size")]
        if convs:  # a subclassed patch embedding (KerasHub): its convolution's window
            c = convs[0]
            field = _window(field, _pair(c.kernel_size), _pair(c.strides), _pair(getattr(c, "dilation_rate", 1)),
                            str(c.padding).lower(), c.name)
    return dataclasses.replace(field, mixed=True) if _mixes(layer) else field


def _flat(x) -> list:
    return list(keras.tree.flatten(x))


def _history(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    return history[0], history[1], history[2]


def _walk(model, target, input_fields: dict[int, _Field]) -> _Field:
    """The field of symbolic `target` in `model`'s graph, given the fields of the model's inputs."""
    memo: dict[int, _Field] = dict(input_fields)
    stack = [target]
    while stack:
        tensor = stack[-1]
        if id(tensor) in memo:
            stack.pop()
            continue
        history = _history(tensor)
        if history is None:
            memo[id(tensor)] = _Field()
            stack.pop()
            continue
        op, node_index, tensor_index = history
        node = op._inbound_nodes[node_index]
        inputs = _flat(node.input_tensors)
        missing = [t for t in inputs if id(t) not in memo]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        fields = [memo[id(t)] for t in inputs]
        if isinstance(op, keras.Model) and op is not model:
            inner_inputs = _flat(op.inputs)
            inner = {id(t): f for t, f in zip(inner_inputs, fields, strict=False)}
            memo[id(tensor)] = _walk(op, _flat(op.outputs)[tensor_index], inner)
        else:
            in_shapes = [tuple(t.shape) for t in inputs]
            memo[id(tensor)] = _transfer(op, fields, in_shapes, tuple(tensor.shape))
    return memo[id(target)]


def receptive_field(model, layer: str, *, input_size: int | tuple[int, int] | None = None) -> ReceptiveField:
    """The receptive field of one position of a layer's output, from the architecture alone.

    Walks the graph from the input to `layer` and composes every convolution and pooling window
    (kernel, stride, dilation, padding), `ZeroPadding2D`, `Cropping2D` and `UpSampling2D`; elementwise
    layers keep positions. Where branches merge (ResNet, Inception) the larger field wins; a global
    branch that only scales the map (a squeeze-and-excitation gate) is not counted. `"same"`
    padding pads `(k - s) // 2` pixels before the map when the size is a multiple of the stride, which
    is how TensorFlow pads; give `input_size` for the exact offsets at other sizes.

    Args:
        model: a `keras.applications` name, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path) with a spatial output `(batch, H, W, C)`.
        input_size: the input image size (an int or `(height, width)`). Defaults to the model's fixed
            input size, else a multiple of every stride.

    Returns:
        A `ReceptiveField` (size, jump, offset).

    Raises:
        ValueError: the layer has no spatial output (after a global pooling, Flatten or Dense), or a
            layer on the path maps positions in a way not handled (transposed convolutions).

    Example:
    >>> kv.receptive_field("VGG16", "block3_conv3").size
    (40, 40)
    """
    keras_model = _keras_model(model)
    path, _ = find_layer(keras_model, layer)
    if input_size is None:
        shape = tuple(keras_model.inputs[0].shape[1:3])
        input_size = shape if None not in shape else None
    elif isinstance(input_size, (int, np.integer)):
        input_size = (int(input_size), int(input_size))
    start = _Field(n=tuple(input_size) if input_size is not None else (None, None))
    field = _path_field(keras_model, path.split("/"), {id(t): start for t in _flat(keras_model.inputs)})
    if not field.spatial:
        raise ValueError(
            f"Layer {path!r} has no spatial positions (it follows a global pooling, Flatten or Dense "
            "layer): each of its values sees the whole image. Choose a convolution or pooling layer."
        )
    return ReceptiveField(
        size=(int(round(field.size[0])), int(round(field.size[1]))),
        jump=tuple(float(j) for j in field.jump),
        offset=tuple(float(s) for s in field.start),
        input_size=tuple(input_size) if input_size is not None else None,
        mixed=field.mixed,
    )


def _keras_model(model) -> keras.Model:
    """The `keras.Model` of a `Network`, a `keras.Model`, or a name (built without weights: only the
    structure is read)."""
    network = as_network_lazily(model, weights=None) if isinstance(model, str) else model
    return network.model if isinstance(network, Network) else network


def positions_field(network, path: str, input_size, rank: int) -> ReceptiveField | None:
    """The receptive field of `path` (whose output has `rank` axes: 4 for a map, 3 for a token layer, whose
    positions are its patch grid), or None for a layer without positions, whose crops are whole images."""
    if rank not in (3, 4):
        return None
    keras_model = network.model
    start = _Field(n=tuple(int(v) for v in input_size))
    if not _path_field(keras_model, path.split("/"), {id(t): start for t in _flat(keras_model.inputs)}).spatial:
        return None
    return receptive_field(network, path, input_size=input_size)


def _path_field(model, parts: list[str], input_fields: dict[int, _Field]) -> _Field:
    layer = model.get_layer(parts[0])
    if len(parts) == 1:
        return _walk(model, layer.output, input_fields)
    if not isinstance(layer, keras.Model):  # a layer inside a subclassed layer (a KerasHub encoder)
        return _inner_field(model, layer, parts[1:], input_fields)
    node = layer._inbound_nodes[0]
    outer = [_walk(model, t, input_fields) for t in _flat(node.input_tensors)]
    inner = {id(t): f for t, f in zip(_flat(layer.inputs), outer, strict=False)}
    return _path_field(layer, parts[1:], inner)


def _inner_field(model, outer, inner_parts: list[str], input_fields: dict[int, _Field]) -> _Field:
    """The field of a layer inside the subclassed layer `outer`: a convolution's window on `outer`'s input,
    else `outer`'s input field, mixed where an attention layer comes before it inside `outer`."""
    node = outer._inbound_nodes[0]
    field = max((_walk(model, t, input_fields) for t in _flat(node.input_tensors)), key=lambda f: f.size[0])
    target = inner_layer(outer, inner_parts)
    if hasattr(target, "kernel_size"):
        return _window(field, _pair(target.kernel_size), _pair(target.strides),
                       _pair(getattr(target, "dilation_rate", 1)), str(target.padding).lower(), target.name)
    path = "/" + "/".join(inner_parts)
    for inner_path, inner in inner_layers(outer, "", attention=True):
        if inner_path == path or path.startswith(inner_path + "/"):
            break
        if is_attention(inner):
            return dataclasses.replace(field, mixed=True)
    return field


def field_between(model, layer_from: str, layer_to: str) -> tuple[int, int]:
    """How many positions `(rows, cols)` of `layer_from`'s output one position of `layer_to` sees.

    The same walk as `receptive_field`, started at `layer_from` instead of the input: convolution and
    pooling windows compose (kernel, stride, dilation), elementwise layers keep positions.

    Args:
        model: a `keras.applications` name, a `keras.Model` or a `Network`.
        layer_from: the earlier layer (or `outer/inner` path).
        layer_to: the later layer, in the same (nested) model as `layer_from`.

    Returns:
        `(rows, cols)`.

    Raises:
        ValueError: the layers are in different nested models, `layer_from` is not before `layer_to`, or a
            layer between them maps positions in a way not handled.

    Example:
    >>> kv.nets.field_between("VGG16", "block1_conv2", "block2_conv1")  # a 2x2 pool, then a 3x3 conv at stride 2
    (6, 6)
    """
    keras_model = _keras_model(model)
    path_from, _ = find_layer(keras_model, layer_from)
    path_to, _ = find_layer(keras_model, layer_to)
    *outer_from, name_from = path_from.split("/")
    *outer_to, name_to = path_to.split("/")
    if outer_from != outer_to:
        raise ValueError(f"layer_from={path_from!r} and layer_to={path_to!r} are in different nested models; "
                         "give two layers of the same model.")
    inner = keras_model
    for part in outer_from:
        inner = inner.get_layer(part)
    first, last = inner.get_layer(name_from), inner.get_layer(name_to)
    if not _reaches(first, last):
        raise ValueError(f"layer_from={path_from!r} is not before layer_to={path_to!r}: {path_to!r} does not read "
                         f"{path_from!r}'s output. Give the earlier layer as layer_from.")
    start = {id(t): _Field() for t in _flat(first.output)}
    field = _walk(inner, last.output, start)
    return int(round(field.size[0])), int(round(field.size[1]))


def _reaches(first, last) -> bool:
    """Whether `last` reads `first`'s output, directly or through other layers."""
    seen, stack = set(), [last]
    while stack:
        layer = stack.pop()
        if layer is first:
            return True
        if id(layer) not in seen:
            seen.add(id(layer))
            stack.extend(parent_layers(layer))
    return False
