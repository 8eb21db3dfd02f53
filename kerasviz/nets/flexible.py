"""Flexible inputs: a feature extractor of a fixed-size model rebuilt on an input of any size, where its layers allow.

The same layer objects (the same weights) are called on a `(None, None, C)` input; nested models are replayed as
their own layers, whose fixed-size `Input` would refuse another size. Token layers keep the model's size: their
position embeddings fix it (a model that interpolates them would do so silently).
"""

from __future__ import annotations

import keras
import numpy as np

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


def why_fixed(extractor: keras.Model) -> str:
    """Why the layers of a fixed-size `extractor` (`input_size` not None) need the model's size, for messages:
    a token layer's position embeddings, or a layer that flattens the map."""
    if any(len(out.shape) == 3 for out in extractor.outputs):
        return "its position embeddings fix the size"
    return "a Flatten, Reshape or Dense on the way"


def replay(model, inputs):
    """`model`'s layers called on the symbolic `inputs`, each nested model (Functional or Sequential) replaced by
    its own layers, at any depth: the same layers and weights in a graph without nested models, whose fixed-size
    `Input` would refuse another image size."""
    if isinstance(model, keras.Sequential):
        x = inputs
        for layer in model.layers:
            x = replay(layer, x) if isinstance(layer, keras.Model) else layer(x)
        return x

    def operation(op):
        if isinstance(op, keras.Model):
            return lambda *args, **kwargs: replay(op, args[0])
        return op

    return model._run_through_graph(inputs, operation_fn=operation)


def on_flexible_input(extractor: keras.Model, image: int = 0) -> keras.Model:
    """`extractor` rebuilt on a `(None, None, C)` image input when that input has a fixed size and its layers take
    any size: the same layer objects (the same weights, nothing copied) called on the new input (its other inputs,
    if any, as they are). Kept as it is when the layers need the fixed size (a `Flatten`, `Reshape` or `Dense` on
    flattened maps before the outputs): a forward pass at a larger size decides. Kept as it is too when an output
    is a token layer `(batch, tokens, channels)`: the position embeddings fix a transformer's size, and a model
    that interpolates them for another size (DINOv2) would see pictures it was never trained on."""
    fixed = input_size(extractor, image)
    if fixed is None or any(len(out.shape) == 3 for out in extractor.outputs):  # token layers: the model's size
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
                               replay(extractor, new_inputs[0] if single else new_inputs), name=extractor.name)
        flexible(probes[0] if single else probes, training=False)
    except Exception:  # any failure means: these layers need the model's own size
        return extractor
    return flexible
