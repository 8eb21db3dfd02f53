"""Layers inside a subclassed layer: listed, found by path, and read out of a functional graph.

KerasHub writes a ViT's encoder as one subclassed layer (`ViTEncoder`, `DINOV2Encoder`) whose blocks, MLPs and
attention are its attributes, not nodes of the model's graph: `model.get_layer` cannot reach them and a
functional sub-model cannot end at them. `inner_layers` lists them with `outer/inner` paths (as nested models
are listed) and `Tap` reads one: it calls the outer layer as the model does and returns what the inner layer
gave on the way (the same layers and weights; the outer layer's own output is not used).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

ATTENTION_MARK = "Attention"  # a class name holding this marks an attention layer: its internals are listed on request


def sublayers_of(layer) -> list:
    """The layers a subclassed (non-`keras.Model`) layer tracks as attributes, in the order it made them."""
    if isinstance(layer, keras.Model):
        return []
    return list(getattr(layer, "_layers", []) or [])


def is_attention(layer) -> bool:
    """Whether `layer` is an attention layer (`MultiHeadAttention`, KerasHub's attention layers)."""
    return ATTENTION_MARK in type(layer).__name__


def inner_layers(layer, prefix: str, *, attention: bool = False):
    """Yield `(path, layer)` for the layers inside a subclassed layer, depth first, with `prefix/` paths.

    Args:
        layer: a Keras layer that is not a `keras.Model`.
        prefix: the layer's own path.
        attention: also descend into attention layers (their query/key/value projections and softmax).
            Defaults to False.

    Returns:
        A generator of `(path, layer)` pairs (none for a layer without sublayers).
    """
    if is_attention(layer) and not attention:
        return
    for inner in sublayers_of(layer):
        path = f"{prefix}/{inner.name}"
        yield path, inner
        yield from inner_layers(inner, path, attention=attention)


def inner_layer(layer, names: Sequence[str]):
    """The layer at path `names` (a list of names) inside `layer`, or None."""
    for name in names:
        layer = next((s for s in sublayers_of(layer) if s.name == name), None)
        if layer is None:
            return None
    return layer


class Tap(keras.layers.Layer):
    """Calls `outer` as the model does and returns the output of the layer at path `inner` inside it
    (its first call, where the outer layer calls it more than once).

    `outer` keeps its weights (the tap tracks it, copying nothing); while the tap runs, the inner layer's
    `call` is wrapped on the instance (its class, and every other model that uses it, see nothing). `split`, a
    function `(layer, *args, **kwargs) -> (output, tapped)` that calls the inner layer in its place, gives the
    tap another value than the output (the outer layer goes on with the output).
    """

    def __init__(self, outer, inner: Sequence[str], *, split=None, **kwargs):
        super().__init__(name=f"{outer.name}__{'__'.join(inner)}", **kwargs)
        self.outer = outer
        self.inner = tuple(inner)
        self.split = split
        if inner_layer(outer, self.inner) is None:
            raise ValueError(f"No layer {'/'.join(self.inner)!r} inside {outer.name!r}.")

    def call(self, *args, **kwargs):
        target = inner_layer(self.outer, self.inner)
        seen = []
        original = target.call

        def spy(*a, **k):
            out, tapped = (original(*a, **k),) * 2 if self.split is None else self.split(target, *a, **k)
            seen.append(tapped)
            return out

        object.__setattr__(target, "call", spy)
        try:
            self.outer(*args, **kwargs)
        finally:
            object.__delattr__(target, "call")
        if not seen:
            raise ValueError(f"Layer {'/'.join(self.inner)!r} inside {self.outer.name!r} was not called by it.")
        return seen[0]


def inner_shapes(outer, inputs) -> dict:
    """`{inner path (relative to outer): output shape}` for every layer inside `outer` that it calls on
    `inputs` (specs of its first call; one forward pass of a batch of one, zeros, reads them all). A layer with
    several outputs, or not called, is left out."""
    shapes, wrapped = {}, []
    for path, inner in inner_layers(outer, "", attention=True):
        original = inner.call

        def spy(*a, _original=original, _path=path[1:], **k):
            out = _original(*a, **k)
            if _path not in shapes and hasattr(out, "shape"):
                shapes[_path] = (None, *tuple(out.shape)[1:])
            return out

        object.__setattr__(inner, "call", spy)
        wrapped.append(inner)
    try:
        outer(np.zeros((1, *[d or 1 for d in inputs.shape[1:]]), keras.backend.standardize_dtype(inputs.dtype)))
    except Exception:  # a layer that needs more than its first input: no shapes
        return {}
    finally:
        for inner in wrapped:
            object.__delattr__(inner, "call")
    return shapes
