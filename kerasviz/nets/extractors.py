"""The cached feature extractors, and the extractor in bfloat16: a copy of its layers under Keras's
`mixed_bfloat16` policy that reads the user's own weight variables.

Each layer of the extractor is made again from its config with `dtype="mixed_bfloat16"` (variables float32,
compute bfloat16), and while the copy builds, its `add_weight` hands back the original layer's variable of the
same name and shape instead of creating one. The copy therefore holds the very same variable objects: nothing is
copied, a later change of the model's weights (training) is seen at once, and on JAX the weights are passed to the
compiled step as for the float32 extractor. Under the copy's policy each variable is read through Keras's
autocast, so the user's layers, their dtype policies and their variables never change.

A layer that cannot be copied this way (no `get_config`/`from_config`, sublayers made in `build`, weights under
other names) stays the original layer: it computes in float32 (its own `__call__` casts its bfloat16 input), so
the result is right, only that layer is not faster. The outputs are cast to float32, so objectives and scores see
float32 activations.
"""

from __future__ import annotations

import keras

from kerasviz.nets.layers import PreActivation, feature_extractor, model_cache
from kerasviz.nets.network import Network

BF16_POLICY = "mixed_bfloat16"


def _own_weights(layer) -> list:
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def _sharing_add_weight(layer, failed: set):
    """An `add_weight` for the copy of `layer`: the original variable of that name and shape."""
    own = {v.name: v for v in _own_weights(layer)}

    def add_weight(*args, shape=None, name=None, **kwargs):
        var = own.get(name)
        if var is None or (shape is not None and tuple(var.shape) != tuple(shape)):
            failed.add(id(layer))
            return type(copy_of[0]).add_weight(copy_of[0], *args, shape=shape, name=name, **kwargs)
        return var

    copy_of = []  # filled with the copy once made (the closure needs it for a fallback variable)
    return add_weight, copy_of


def _copier(keep: set, failed: set, made: list):
    """The `clone_function`: a `mixed_bfloat16` copy of each layer, sharing its variables; the layers in `keep`
    (by id) as they are."""

    def clone(layer):
        if id(layer) in keep or not isinstance(layer, keras.layers.Layer):  # an op of the graph (ConvertToTensor)
            return layer
        if isinstance(layer, PreActivation):  # calls the user's layer's `call` itself: the wrapper's policy rules
            return PreActivation(layer.inner, dtype=BF16_POLICY)
        try:
            config = layer.get_config()
            config["dtype"] = BF16_POLICY
            copy = type(layer).from_config(config)
        except Exception:  # a layer without a working config: it stays as it is (float32)
            return layer
        add_weight, copy_of = _sharing_add_weight(layer, failed)
        copy_of.append(copy)
        object.__setattr__(copy, "add_weight", add_weight)  # on the instance only, removed once built
        made.append((layer, copy))
        return copy

    return clone


def _shares_all(layer, copy) -> bool:
    """Whether the copy holds exactly the original's weight variables (the same objects)."""
    ids = {id(v) for v in layer.weights}
    return len(copy.weights) == len(layer.weights) and all(id(v) in ids for v in copy.weights)


def bfloat16_extractor(extractor: keras.Model) -> keras.Model:
    """`extractor` computing in bfloat16, on the same weight variables, with float32 outputs.

    Args:
        extractor: a feature extractor (`feature_extractor`): a functional `keras.Model`.

    Returns:
        A `keras.Model` with the same inputs and outputs (cast to float32) whose layers compute in bfloat16
        (`mixed_bfloat16`), except those that cannot be copied (see the module's text), which are the original
        layers. Its weight variables are the extractor's own objects.

    Example:
    >>> small = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="g")])
    >>> fast = kv.nets.bfloat16_extractor(kv.feature_extractor(small, ["g"]))
    >>> out = fast(np.zeros((1, 8, 8, 1)))[0]
    >>> fast.variables[0] is small.layers[0].kernel, keras.backend.standardize_dtype(out.dtype)
    (True, 'float32')
    """
    keep: set = set()
    for _ in range(3):  # a layer that fails to share its weights is kept as it is, and the copy made again
        failed: set = set()
        made: list = []
        copy = keras.models.clone_model(extractor, clone_function=_copier(keep, failed, made), recursive=True)
        for layer, new in made:
            vars(new).pop("add_weight", None)
            if new.built and not _shares_all(layer, new):
                failed.add(id(layer))
        if not failed:
            break
        keep |= failed
    else:
        return _float32_outputs(extractor)
    return _float32_outputs(copy)


def _float32_outputs(model: keras.Model) -> keras.Model:
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    outputs = [keras.ops.cast(o, "float32") for o in model.outputs]
    return keras.Model(inputs, outputs, name="kerasviz_extractor_bf16")


def get_extractor(network: Network, layers, pre_activation: bool, precision: str = "float32"):
    """A cached feature extractor for `layers` of `network`, held by the model (`model_cache`).

    Args:
        network: the `Network`.
        layers: layer names or paths.
        pre_activation: as for `feature_extractor`.
        precision: `"float32"` (the model's own layers) or `"bfloat16"` (`bfloat16_extractor` of that one, on the
            same weight variables). Defaults to `"float32"`.

    Returns:
        A `keras.Model`, the same object for the same arguments.

    Raises:
        ValueError: another precision (`"auto"` is resolved by the engine, `presets.resolve_precision`).
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16' here. Received: precision={precision!r}.")
    cache = model_cache(network.model, "extractors")
    key = (tuple(layers), bool(pre_activation))
    if key not in cache:
        cache[key] = feature_extractor(network, layers, pre_activation=pre_activation)
    if precision == "float32":
        return cache[key]
    key_bf16 = key + (precision,)
    if key_bf16 not in cache:
        cache[key_bf16] = bfloat16_extractor(cache[key])
    return cache[key_bf16]
