"""The input range a model says it takes, read from the preprocessing layers in front of it.

The rule (docs/fine-tuned.md): from the image input, follow the chain of layers (into nested models, one or two
levels deep). Augmentation layers (`Random*`, dropout, noise; inactive at inference) are passed through; the first
layer that sets the scale says what the raw inputs are:

- a `Rescaling(scale, offset)`: its output spans [0, 1] (offset >= 0) or [-1, 1] (offset < 0), so its raw inputs
  span 0..1/scale (`Rescaling(1/255)`: 0..255; `Rescaling(1/127.5, offset=-1)`: 0..255);
- an adapted `Normalization`: raw pixels 0..255 where its mean +- 2 standard deviations lie there (mean above 2),
  else its mean +- 2 standard deviations per channel;
- a layer that computes a `keras.applications` `preprocess_input` (a `Lambda` or a small layer of your own;
  recognized by its values on a probe): raw pixels 0..255;
- a nested KerasHub task model (`ImageClassifier`) with an image converter: the converter's scale and offset on
  raw pixels 0..255 (`nets.hub`);
- a nested `keras.applications` backbone with nothing of the above in front: that family's preprocessing
  (`"tf"`: -1..1 inputs, `"caffe"`, `"torch"`), read from the backbone's name (never a KerasHub backbone's: its
  preprocessing lives in its image converter, outside the model).

Any other layer ends the search; a model with nothing to read keeps inputs in [0, 1].
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerasviz import names
from kerasviz.catalog import FAMILY_OF
from kerasviz.nets.hub import is_hub_model, task_preprocessing
from kerasviz.nets.network import Preprocessing

NORMALIZATION_SPAN = 2.0  # a Normalization layer's inputs are taken to span mean +- 2 standard deviations
PIXEL_MAX = 255.0  # raw pixels
PIXEL_MEAN_THRESHOLD = 2.0  # a Normalization whose mean lies above this reads raw pixels (0..255), not [0, 1]
MAX_LEADING_LAYERS = 12  # how many layers from the input are looked at, per model
PASS_THROUGH = ("InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "Resizing", "CenterCrop")
PREPROCESS_FAMILIES = ("caffe", "tf", "torch")
_NAME_ALIASES = {"inceptionv3": "tf", "mobilenet": "tf", "nasnet": "tf", "convnext": "none"}


def family_of_name(name: str, channels: int = 3) -> str | None:
    """The `keras.applications` preprocessing family (`"caffe"`, `"tf"`, `"torch"`, `"none"`) a model's name
    says, or None.

    Example:
    >>> kv.nets.family_of_name("xception"), kv.nets.family_of_name("my_classifier")
    ('tf', None)
    """
    if channels != 3:
        return None
    key = names.normalize(name)
    for app, family in sorted(FAMILY_OF.items(), key=lambda item: -len(item[0])):
        if key.startswith(names.normalize(app)):
            return family
    for alias, family in _NAME_ALIASES.items():
        if key.startswith(alias):
            return family
    return None


def read_input_range(model: keras.Model, image_input: int = 0, channels: int | None = None) -> Preprocessing | None:
    """The preprocessing a model's own layers imply, or None (see the module's text for the rule).

    Args:
        model: a `keras.Model`.
        image_input: the index of the image input. Defaults to 0.
        channels: the number of image channels. Defaults to the input's own.

    Returns:
        A `Preprocessing` whose `source` says what was read, or None.

    Example:
    >>> inputs = keras.Input((32, 32, 3))
    >>> x = keras.layers.RandomFlip()(inputs)  # augmentation: passed through
    >>> model = keras.Model(inputs, keras.layers.Rescaling(1 / 255, name="scale")(x))
    >>> kv.nets.read_input_range(model).source
    "its layer 'scale' (Rescaling(scale=0.00392157, offset=0)) takes inputs in 0..255"
    """
    try:
        start = model.inputs[image_input]
    except (AttributeError, IndexError, ValueError):
        return None
    channels = channels or int(start.shape[-1] or 3)
    found, _ = _walk(model, start, channels, "")
    return found


def _operations(model) -> list:
    return list(getattr(model, "operations", None) or getattr(model, "layers", []))


def _consumers(model, tensor) -> list:
    """`(operation, node)` for each call in `model`'s graph that reads `tensor`."""
    found = []
    for op in _operations(model):
        for node in getattr(op, "_inbound_nodes", []):
            if any(t is tensor for t in node.input_tensors):
                found.append((op, node))
    return found


def _chain(model, tensor):
    """The layers that follow `tensor` in `model`, one after the other (a Sequential's in order); a None ends the
    chain where it branches."""
    if isinstance(model, keras.Sequential):
        yield from model.layers[:MAX_LEADING_LAYERS]
        return
    for _ in range(MAX_LEADING_LAYERS):
        consumers = _consumers(model, tensor)
        if not consumers:
            return  # the model's output
        if len(consumers) != 1 or len(consumers[0][1].output_tensors) != 1:
            yield None
            return
        op, node = consumers[0]
        yield op
        tensor = node.output_tensors[0]
    yield None


def _walk(model, tensor, channels: int, prefix: str) -> tuple[Preprocessing | None, bool]:
    """Follow the layers from `tensor` in `model`'s graph. Returns `(found, passed)`: the preprocessing read (or
    None), and whether the whole chain passed the values through unchanged (augmentation only)."""
    for op in _chain(model, tensor):
        if op is None:
            return None, False
        path = prefix + op.name
        if isinstance(op, keras.Model):
            found = task_preprocessing(op, channels, path)
            if found is not None:
                return found, False
            inner = getattr(op, "inputs", None) or []
            if len(inner) != 1:
                return None, False
            found, passed = _walk(op, inner[0], channels, path + "/")
            if found is not None:
                return found, False
            if not passed:
                return _backbone_family(op, path, channels), False
        else:
            found = layer_range(op, channels, path)
            if found is not None:
                return found, False
            if not _passes_through(op):
                return None, False
    return None, True


def _passes_through(layer) -> bool:
    kind = type(layer).__name__
    return kind.startswith("Random") or kind in PASS_THROUGH


def _backbone_family(model, path: str, channels: int) -> Preprocessing | None:
    family = None if is_hub_model(model) else family_of_name(model.name, channels)
    if family is None:
        return None
    return dataclasses.replace(Preprocessing.family(family, channels),
                               source=f"its nested backbone {path!r} is a keras.applications model with nothing in "
                                      f"front of it: its family's preprocessing {family!r} is used")


def layer_range(layer, channels: int = 3, path: str | None = None) -> Preprocessing | None:
    """The preprocessing that one layer implies about its inputs (`Rescaling`, an adapted `Normalization`, a
    `keras.applications` `preprocess_input`), or None.

    Args:
        layer: a Keras layer.
        channels: the number of input channels. Defaults to 3.
        path: the layer's path, for the note. Defaults to its name.

    Returns:
        A `Preprocessing` whose `source` says what was read, or None.

    Example:
    >>> p = kv.nets.layer_range(keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale"))
    >>> p.name, p.source
    ('range(0, 255)', "its layer 'scale' (Rescaling(scale=0.00784314, offset=-1)) takes inputs in 0..255")
    """
    path = path or layer.name
    kind = type(layer).__name__
    if kind == "Rescaling":
        scale = float(np.mean(np.asarray(layer.scale)))
        offset = float(np.mean(np.asarray(layer.offset)))
        if scale <= 0:
            return None
        span = 1.0 if offset >= 0 else -2.0 * offset  # the output spans [0, 1] or [-1, 1]
        high = span / scale
        return dataclasses.replace(
            Preprocessing.from_range(0.0, high, channels),
            source=f"its layer {path!r} (Rescaling(scale={scale:g}, offset={offset:g})) takes inputs in 0..{high:g}")
    if kind == "Normalization" and getattr(layer, "mean", None) is not None:
        return _normalization_range(layer, channels, path)
    if kind == "Lambda" or not type(layer).__module__.startswith("keras"):
        return _preprocess_input_range(layer, channels, path)
    return None


def _normalization_range(layer, channels: int, path: str) -> Preprocessing:
    mean = np.broadcast_to(np.asarray(layer.mean, "float64").reshape(-1), (channels,))
    std = np.sqrt(np.broadcast_to(np.asarray(layer.variance, "float64").reshape(-1), (channels,)))
    low, high = mean - NORMALIZATION_SPAN * std, mean + NORMALIZATION_SPAN * std
    stats = f"mean {np.round(mean, 3).tolist()}, std {np.round(std, 3).tolist()}"
    if np.all(mean > PIXEL_MEAN_THRESHOLD) and np.all(mean < PIXEL_MAX):
        return dataclasses.replace(
            Preprocessing.from_range(0.0, PIXEL_MAX, channels),
            source=f"its adapted layer {path!r} (Normalization, {stats}) reads raw pixels: inputs in 0..255")
    return Preprocessing("normalization-range", tuple(high - low), tuple(low),
                         source=f"its adapted layer {path!r} (Normalization, {stats}): inputs span its mean +- "
                                f"{NORMALIZATION_SPAN:g} std per channel")


def _preprocess_input_range(layer, channels: int, path: str) -> Preprocessing | None:
    """0..255 when `layer` computes a `keras.applications` `preprocess_input` (checked on a probe)."""
    if channels != 3:
        return None
    probe = np.linspace(0.0, PIXEL_MAX, 12, dtype="float32").reshape(1, 2, 2, 3)
    try:
        out = keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(probe)))
    except Exception:  # a layer that does not take such an input is not a preprocess_input
        return None
    for family in PREPROCESS_FAMILIES:
        expected = Preprocessing.family(family)(probe / PIXEL_MAX)
        if out.shape == expected.shape and np.allclose(out, expected, rtol=1e-4, atol=1e-3):
            return dataclasses.replace(
                Preprocessing.from_range(0.0, PIXEL_MAX, channels),
                source=f"its layer {path!r} computes keras.applications' preprocess_input (mode {family!r}) "
                       "and so takes raw pixels in 0..255")
    return None
