"""The cached feature extractors, and the extractor in bfloat16: a copy of its layers under Keras's
`mixed_bfloat16` policy that reads the user's own weight variables.

Each layer of the extractor is made again from its config with `dtype="mixed_bfloat16"` (variables float32,
compute bfloat16), and while the copy builds, its `add_weight` hands back the original layer's variable of the
same name and shape instead of creating one. The copy therefore holds the very same variable objects: nothing is
copied, a later change of the model's weights (training) is seen at once, and on JAX the weights are passed to the
compiled step as for the float32 extractor. Under the copy's policy each variable is read through Keras's
autocast, so the user's layers, their dtype policies and their variables never change.

A layer that cannot be copied this way (no `get_config`/`from_config`, sublayers made in `build`, weights under
other names: KerasHub's ViT encoder and patch embedding, a `Tap` into one) stays the original layer, called
through `SwitchedPolicy`: while it runs, it and every layer inside it that computes in plain float32 take the
`mixed_bfloat16` policy, and get their own policies back as soon as it returns (the policies are read when a
layer is called, so a compiled step keeps bfloat16 after the switch is undone). Only during that call does the
user's layer show another policy. The outputs are cast to float32, so objectives and scores see float32
activations.
"""

from __future__ import annotations

import contextlib

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


def _plain_float32(policy) -> bool:
    return (policy.name == "float32" and policy.quantization_mode is None
            and not isinstance(policy, keras.dtype_policies.DTypePolicyMap))


class SwitchedPolicy(keras.layers.Layer):
    """Calls `layer` with it and the layers inside it under `mixed_bfloat16` for the call's duration.

    Only layers whose own policy is plain `float32` are switched (a quantized or already mixed layer keeps its
    policy); each gets its own policy back when the call returns or raises.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(name=f"bf16_{layer.name}", dtype=BF16_POLICY, **kwargs)
        self.layer = layer

    @contextlib.contextmanager
    def _switched(self):
        switched = [inner for inner in self.layer._flatten_layers(include_self=True, recursive=True)
                    if _plain_float32(inner.dtype_policy)]
        policies = [inner.dtype_policy for inner in switched]
        try:
            for inner in switched:
                inner.dtype_policy = BF16_POLICY
            yield
        finally:
            for inner, policy in zip(switched, policies, strict=True):
                inner.dtype_policy = policy

    def call(self, *args, **kwargs):
        with self._switched():
            return self.layer(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):  # the layer's own (a traced call would open a root name scope)
        with self._switched():
            return self.layer.compute_output_spec(*args, **kwargs)


def _copier(keep: set, failed: set, made: list):
    """The `clone_function`: a `mixed_bfloat16` copy of each layer, sharing its variables; the layers in `keep`
    (by id), and those without a working config, called through `SwitchedPolicy`."""

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):  # an op of the graph (ConvertToTensor)
            return layer
        if id(layer) in keep:
            return SwitchedPolicy(layer)
        if isinstance(layer, PreActivation):  # calls the user's layer's `call` itself: the wrapper's policy rules
            return PreActivation(layer.inner, dtype=BF16_POLICY)
        try:
            config = layer.get_config()
            config["dtype"] = BF16_POLICY
            copy = type(layer).from_config(config)
        except Exception:  # a layer without a working config: the original, switched while it runs
            return SwitchedPolicy(layer)
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
        (`mixed_bfloat16`); those that cannot be copied are the original layers, switched to bfloat16 while they
        run (see the module's text). Its weight variables are the extractor's own objects.

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
