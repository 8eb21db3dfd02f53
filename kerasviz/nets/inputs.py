"""The inputs of a multi-input model: which ones a layer depends on, and the values the others are held at.

A feature extractor takes only the model inputs that its layers depend on (`depends_on`), so a layer of the image
branch of an image + tabular model needs no value for the tabular input. Where a layer does depend on another
input (a class logit after the merge), that input takes the value given with `other_inputs=`, or zeros, which
`held_at_zeros` names in a one-line note.
"""

from __future__ import annotations

import keras
import numpy as np

OTHER_INPUTS_KEYWORD = "other_inputs"


def depends_on(model: keras.Model, outputs) -> list[int]:
    """The indices of `model.inputs` that the symbolic tensors `outputs` are computed from, in order.

    Args:
        model: a functional `keras.Model`.
        outputs: a symbolic tensor of `model`'s graph, or a list of them.

    Returns:
        A sorted list of input indices.

    Example:
    >>> image, extra = keras.Input((8, 8, 3), name="image"), keras.Input((2,), name="extra")
    >>> conv = keras.layers.Conv2D(2, 3)(image)
    >>> model = keras.Model([image, extra], [conv, keras.layers.Dense(1)(extra)])
    >>> kv.nets.depends_on(model, conv)
    [0]
    """
    wanted = {id(t): i for i, t in enumerate(model.inputs)}
    stack = list(keras.tree.flatten(outputs))
    seen, found = set(), set()
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if id(tensor) in wanted:
            found.add(wanted[id(tensor)])
            continue
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return sorted(found)


def input_shape(model: keras.Model, index: int) -> tuple:
    """The shape of one example of input `index` (no batch axis); None where the model takes any length."""
    return tuple(model.inputs[index].shape[1:])


def _input_name(model: keras.Model, index: int) -> str:
    return model.inputs[index].name


def check_value(model: keras.Model, index: int, value) -> np.ndarray:
    """`value` for input `index` of `model` as an array, checked against the input's shape (one example).

    Args:
        model: the `keras.Model`.
        index: the input's index.
        value: what the user gave with `other_inputs=`: one example, without the batch axis.

    Returns:
        The value as a NumPy array of the input's dtype.

    Raises:
        ValueError: the shape does not fit the input; the message names the input, its shape and the keyword.
    """
    spec = model.inputs[index]
    array = np.asarray(value, dtype=spec.dtype or "float32")
    expected = input_shape(model, index)
    fits = array.ndim == len(expected) and all(e is None or e == a for e, a in zip(expected, array.shape, strict=True))
    if not fits:
        name = _input_name(model, index)
        raise ValueError(
            f"{OTHER_INPUTS_KEYWORD}[{name!r}] has shape {array.shape}, but input {name!r} of {model.name} takes "
            f"{expected} per example. Pass one example without the batch axis: "
            f"{OTHER_INPUTS_KEYWORD}={{{name!r}: array of shape {expected}}}."
        )
    return array


def value_of(model: keras.Model, index: int, given: dict) -> np.ndarray:
    """The value input `index` is held at: the one given (a key of `given`), else zeros of its shape.

    Args:
        model: the `keras.Model`.
        index: the input's index.
        given: the values given, by input index (`Network.other_inputs`).

    Returns:
        One example (no batch axis), a NumPy array of the input's dtype.

    Raises:
        ValueError: no value was given and the input's shape is not fully known (zeros cannot be made); the
            message names the input, its shape and the keyword.
    """
    if index in given:
        return np.asarray(given[index], dtype=model.inputs[index].dtype or "float32")
    shape = input_shape(model, index)
    if None in shape:
        name = _input_name(model, index)
        raise ValueError(
            f"Input {name!r} of {model.name} (shape {shape} per example) has no value, and the layers asked for "
            f"depend on it. Give one example with {OTHER_INPUTS_KEYWORD}={{{name!r}: value}}."
        )
    return np.zeros(shape, dtype=model.inputs[index].dtype or "float32")


def held_at_zeros(model: keras.Model, extractor: keras.Model, image_input: int, given: dict) -> str | None:
    """A one-line note naming the inputs that `extractor` reads but that no value was given for (held at zeros).

    Args:
        model: the `keras.Model` (the network's).
        extractor: a feature extractor of `model` (`feature_extractor`), which takes a subset of its inputs.
        image_input: the index of the input that is optimized.
        given: the values given, by input index.

    Returns:
        The note, or None when every input the extractor reads is the image or has a value.
    """
    zeros = [i for i in extractor_inputs(model, extractor, image_input) if i != image_input and i not in given]
    if not zeros:
        return None
    listed = ", ".join(f"{_input_name(model, i)!r} (shape {input_shape(model, i)})" for i in zeros)
    example = ", ".join(f"{_input_name(model, i)!r}: value" for i in zeros)
    return (f"the layers asked for depend on the input(s) {listed} of {model.name}, held at zeros; "
            f"give their values with {OTHER_INPUTS_KEYWORD}={{{example}}}.")


def extractor_inputs(model: keras.Model, extractor: keras.Model, image_input: int) -> list[int]:
    """The indices (in `model.inputs`) of the inputs `extractor` takes, in its order.

    An extractor with one input takes the image (it may be a copy on a flexible input, under another name);
    with several, they are matched by name.
    """
    if len(extractor.inputs) == 1:
        return [image_input]
    names = [t.name for t in model.inputs]
    return [names.index(t.name) for t in extractor.inputs]


def needed_inputs(model: keras.Model, outputs, image_input: int = 0, layers=()):
    """The inputs a feature extractor of `outputs` takes: those of `model.inputs` that `outputs` depend on.

    Args:
        model: the functional `keras.Model`.
        outputs: the extractor's symbolic outputs, in `model`'s graph.
        image_input: the index of the input that is optimized. Defaults to 0.
        layers: the layer names, for the message.

    Returns:
        One input tensor, or a list of them in `model.inputs` order.

    Raises:
        ValueError: the outputs do not depend on the image input.
    """
    if len(model.inputs) == 1:
        return model.inputs[0]
    used = depends_on(model, outputs)
    if image_input not in used:
        reads = [_input_name(model, i) for i in used]
        raise ValueError(
            f"Layer(s) {list(layers)} of {model.name} do not depend on its input {_input_name(model, image_input)!r} "
            f"that is optimized (they read only {reads}). Choose a layer after that input, or the input to optimize "
            "with image_input=."
        )
    return model.inputs[used[0]] if len(used) == 1 else [model.inputs[i] for i in used]
