"""Composable objectives: functions from a step's activations to one score per image, higher is better.

The score convention holds everywhere: an objective returns a `[batch]` tensor and the optimizer
maximizes it (it negates in exactly one place). Objectives combine with `+`, `-`, unary `-`, `*` and `/`
by numbers, and `sum()`; their descriptions compose (`0.2 * channel(...)` says 0.2).

An objective sees a `Context`: the activations of the layers it names, the images in [0, 1] before the
random transforms, and `filters`, the per-image channel index that `visualize_filters` assigns (a
`channel(layer)` without an index follows it, so a whole batch of filters is one traced objective).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable

import numpy as np
from keras import ops


@dataclasses.dataclass
class Context:
    """What an objective sees in one step.

    Attributes:
        acts: layer name -> activations `[batch, ...]`.
        images: the images being optimized, `[batch, H, W, C]`, before transforms.
        filters: int tensor `[batch]`, the channel each image works for.
    """

    acts: dict
    images: object
    filters: object


class Objective:
    """A function from a `Context` to a `[batch]` score, with a description and the layers it reads.

    Build objectives with the factories of this module (`channel`, `neuron`, ...) and combine them:
    `channel("block4_conv3", 7) - 0.05 * total_variation()`.
    """

    def __init__(self, fn: Callable, description: str, layers: tuple[str, ...] = (), validate=None, key=None):
        self.fn = fn
        self.description = description
        self.layers = tuple(dict.fromkeys(layers))
        self._validators = [validate] if validate else []
        # what makes two objectives the same for the compiled-step cache: the factory and its arguments
        # for objectives made by `@objective` (when the arguments hash), else this object itself
        self.key = key if key is not None else ("id", id(self))

    def __call__(self, context: Context):
        return self.fn(context)

    def validate(self, network) -> None:
        """Check indices against the network's layers (called before anything is compiled)."""
        for check in self._validators:
            check(network)

    def _derived(self, fn, description, key, others=()):
        """A new objective from this one (and `others`), keeping every validator and layer."""
        obj = Objective(fn, description, self.layers + sum((o.layers for o in others), ()), key=key)
        obj._validators = self._validators + [v for o in others for v in o._validators]
        return obj

    def __add__(self, other):
        if isinstance(other, (int, float)):
            return self._derived(lambda c: self(c) + other, f"{self.description} + {other:g}",
                                 ("+", self.key, float(other)))
        if not isinstance(other, Objective):
            raise TypeError(f"Objectives add to objectives and numbers only. Received: {type(other).__name__}.")
        return self._derived(lambda c: self(c) + other(c), f"{self.description} + {other.description}",
                             ("+", self.key, other.key), (other,))

    def __radd__(self, other):  # makes sum() work
        if isinstance(other, (int, float)) and other == 0:
            return self
        return self.__add__(other)

    def __sub__(self, other):
        return self + (-1 * other)

    def __neg__(self):
        return -1 * self

    def __mul__(self, k):
        if not isinstance(k, (int, float)):
            raise TypeError(f"Objectives multiply by numbers only. Received: {type(k).__name__}.")
        desc = f"-{self.description}" if k == -1 else f"{k:g} * {self.description}"
        return self._derived(lambda c: k * self(c), desc, ("*", self.key, float(k)))

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self * (1.0 / k)

    def __repr__(self):
        return f"Objective({self.description})"


def objective(factory):
    """Decorator: a factory returning a score function becomes one returning an `Objective` whose
    description is the factory's name and arguments, e.g. `channel('block4_conv3', 7)`.

    The factory returns `fn`, or `(fn, layers)`, or `(fn, layers, validate)`: `fn(ctx)` gives one score
    per image, `layers` names the layers it reads, `validate(network)` raises for a bad argument.

    Args:
        factory: the function to wrap.

    Returns:
        The wrapped factory, with the same signature, returning an `Objective`.

    Example:
    >>> @kv.objectives.objective
    ... def brightness():
    ...     return lambda ctx: keras.ops.mean(ctx.images, axis=(1, 2, 3))
    >>> brightness().description
    'brightness()'
    """
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def build(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        shown = [repr(v) for v in bound.args] + [f"{k}={v!r}" for k, v in bound.kwargs.items()]
        made = factory(*args, **kwargs)
        fn, layers, validate = (tuple(made) + (None,) * 2)[:3] if isinstance(made, tuple) else (made, (), None)
        layers = layers or ()
        key = (factory.__module__, factory.__qualname__, tuple(bound.args), tuple(sorted(bound.kwargs.items())))
        try:
            hash(key)
        except TypeError:  # an argument that does not hash (an array): this objective is its own key
            key = None
        return Objective(fn, f"{factory.__name__}({', '.join(shown)})", layers, validate, key=key)

    return build


def _check_channel(layer: str, index):
    def check(network):
        from kerasviz.nets.filters import check_filter
        from kerasviz.nets.layers import channels_of

        n = channels_of(network, layer)
        for i in np.atleast_1d(index) if index is not None else []:
            check_filter(int(i), n, layer)

    return check


def _check_index(index, name):
    if index is not None and (not isinstance(index, (int, np.integer)) or index < 0):
        raise ValueError(f"{name} must be a non-negative int. Received: {name}={index!r}.")


def _crop(x, border: int):
    if border:
        return x[:, border:-border, border:-border, :] if len(x.shape) == 4 else x
    return x


def _pick(x, filters, index):
    """x[..., index] for a fixed index, or each image's own `filters[b]` channel."""
    if index is not None:
        return x[..., index]
    onehot = ops.one_hot(filters, x.shape[-1], dtype=x.dtype)  # [B, C]
    shape = [onehot.shape[0]] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
    return ops.sum(x * ops.reshape(onehot, shape), axis=-1)


def _tokens_of(x, images, tokens: str = "patches", extra_tokens: int | None = None):
    """A token layer's activations `(batch, tokens, channels)` as the objective reads them: the patch tokens on
    their grid `(batch, rows, cols, channels)` (`"patches"`), every token (`"all"`), or the class token alone
    (`"class"`, `(batch, 1, channels)`). Any other activations as they are."""
    from kerasviz.nets.tokens import to_grid, token_grid

    if len(x.shape) != 3 or tokens == "all":
        return x
    grid = token_grid(tuple(x.shape), tuple(images.shape[1:3]), extra_tokens=extra_tokens)
    if grid is None:
        return x
    return x[:, :1, :] if tokens == "class" else to_grid(x, grid)


def _check_tokens(layer: str, tokens: str, extra_tokens, index):
    """Check `channel`'s index and its token options against the network (when validated)."""
    from kerasviz.nets.tokens import check_tokens

    check_tokens(tokens)
    check_index = _check_channel(layer, index)

    def check(network):
        from kerasviz.nets.flexible import input_size
        from kerasviz.nets.layers import layer_output_shape
        from kerasviz.nets.tokens import token_grid

        check_index(network)
        shape = layer_output_shape(network, layer)
        grid = token_grid(shape, input_size(network.model, network.image_input), extra_tokens=extra_tokens)
        if tokens == "class" and grid is not None and grid.extra == 0:
            raise ValueError(f"tokens='class' reads the class token, but layer {layer!r} has {grid.tokens} tokens "
                             f"that are all patches ({grid.rows}x{grid.cols}). Use tokens='patches', or give "
                             "extra_tokens= if the layer has a class token in front.")

    return check


def _mean_per_image(x):
    axes = tuple(range(1, len(x.shape)))
    return ops.mean(x, axis=axes) if axes else x


@objective
def channel(layer: str, index: int | None = None, *, border: int = 0, tokens: str = "patches",
            extra_tokens: int | None = None):
    """The mean activation of one channel (a filter) over the spatial positions.

    On a token layer (a transformer's `(batch, tokens, channels)` output) the positions are the patch tokens:
    the class and register tokens in front are left out (see `kerasviz.nets.token_grid` for how they are told
    apart), since they summarize the whole image rather than a place in it.

    Args:
        layer: the layer name.
        index: the channel, an int >= 0. Defaults to None: each image's own filter (as `visualize_filters`
            assigns).
        border: positions dropped at every border of the map before averaging (the keras.io tutorial
            drops 2); on a token layer, patches at every border of the patch grid. Defaults to 0.
        tokens: on a token layer, the tokens averaged: `"patches"` (the patch tokens), `"all"` (the class
            and register tokens too) or `"class"` (the class token alone). Defaults to `"patches"`.
        extra_tokens: on a token layer, how many tokens before the patches are class/register tokens.
            Defaults to None (detected from the token count against the image's shape).

    Returns:
        An `Objective` scoring each image of the batch.

    Raises:
        ValueError: `index` is negative or `tokens` not one of the three (when built), or out of range for the
            layer, `tokens="class"` on a layer without a class token, or `extra_tokens` that leaves no patch grid
            (when validated).

    Example:
    >>> result = kv.render("VGG16", kv.objectives.channel("block3_conv3", 7), weights="hed", size=32,
    ...                    steps=5, progress=False)
    """
    _check_index(index, "index")
    validate = _check_tokens(layer, tokens, extra_tokens, index)

    def fn(c: Context):
        x = _tokens_of(ops.cast(c.acts[layer], "float32"), c.images, tokens, extra_tokens)
        return _mean_per_image(_pick(_crop(x, border), c.filters, index))

    return fn, (layer,), validate


@objective
def neuron(layer: str, index: int | None = None, x: int | None = None, y: int | None = None, *,
           extra_tokens: int | None = None):
    """The activation of one channel at one spatial position.

    On a token layer the position is a patch: `(x, y)` on the patch grid (the class token is `channel(layer,
    index, tokens="class")`).

    Args:
        layer: the layer name.
        index: the channel, an int >= 0. Defaults to each image's own filter.
        x: the column (of the patch grid on a token layer). Defaults to the center `W // 2` (on an
            even-sized map, the right of the two central columns).
        y: the row. Defaults to the center `H // 2` (on an even-sized map, the lower central row).
        extra_tokens: on a token layer, the class/register tokens before the patches. Defaults to None
            (detected).

    Returns:
        An `Objective` scoring each image of the batch.

    Raises:
        ValueError: `index` is negative (when built), or out of range for the layer (when validated).

    Example:
    >>> kv.objectives.neuron("block3_conv3", 7).description
    "neuron('block3_conv3', 7)"
    """
    _check_index(index, "index")

    def fn(c: Context):
        a = _tokens_of(ops.cast(c.acts[layer], "float32"), c.images, "patches", extra_tokens)
        if len(a.shape) == 4:
            row = a.shape[1] // 2 if y is None else y
            col = a.shape[2] // 2 if x is None else x
            a = a[:, row, col, :]
        return _pick(a, c.filters, index)

    return fn, (layer,), _check_channel(layer, index)


@objective
def deepdream(layer: str):
    """DeepDream: the mean squared activation of a whole layer.

    Args:
        layer: the layer name.

    Returns:
        An `Objective` scoring each image of the batch.

    Example:
    >>> photo = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype("float32")
    >>> dream = kv.render("VGG16", kv.objectives.deepdream("block4_conv3"), init=photo, weights="hed",
    ...                   steps=5, progress=False)
    """

    def fn(c: Context):
        return _mean_per_image(ops.square(ops.cast(c.acts[layer], "float32")))

    return fn, (layer,)


@objective
def class_logit(layer: str, index: int):
    """One class's score at a classifier layer (the model's last Dense layer, e.g. `"predictions"`).

    With `pre_activation=True` (the default of `render`) a softmax layer's input, the logit, is read.

    Args:
        layer: the classifier layer's name.
        index: the class index, an int >= 0.

    Returns:
        An `Objective` scoring each image of the batch.

    Raises:
        ValueError: `index` is negative (when built), or out of range for the layer (when validated).

    Example:
    >>> objective = kv.objectives.class_logit("predictions", 130)  # ImageNet class 130, flamingo
    >>> objective.description
    "class_logit('predictions', 130)"
    """
    _check_index(index, "index")

    def fn(c: Context):
        return _pick(ops.cast(c.acts[layer], "float32"), c.filters, index)

    return fn, (layer,), _check_channel(layer, index)


@objective
def class_probability(layer: str, index: int):
    """One class's softmax probability at a classifier layer, from the logits read there.

    The extractor reads a softmax layer's input, the logits, with `pre_activation=True` (the default);
    this objective applies the softmax itself, so raising it also pushes the other classes down (the
    logit alone does not). With `pre_activation=False` the layer's output is already a probability:
    use `class_logit` there.

    Args:
        layer, index: the classifier layer and the class, as for `class_logit`.

    Returns:
        An `Objective` scoring each image of the batch; raises as `class_logit` does.

    Example:
    >>> kv.objectives.class_probability("predictions", 130).description
    "class_probability('predictions', 130)"
    """
    _check_index(index, "index")

    def fn(c: Context):
        logits = ops.cast(c.acts[layer], "float32")
        return _pick(ops.softmax(logits, axis=-1), c.filters, index)

    return fn, (layer,), _check_channel(layer, index)


@objective
def direction(layer: str, vector, *, cosine_power: float = 0.0):
    """The mean dot product of a layer's activations with a direction in channel space.

    Args:
        layer: the layer name.
        vector: one weight per channel (a sequence or array of shape `(channels,)`).
        cosine_power: also multiply by (cosine similarity)^power, Lucid's "direction_cossim" when > 0.
            Defaults to 0.0 (plain dot product).

    Returns:
        An `Objective` scoring each image of the batch.

    Raises:
        ValueError: `vector` does not have one entry per channel of the layer (when validated).

    Example:
    >>> vector = np.zeros(64)
    >>> vector[[3, 7]] = 1.0
    >>> objective = kv.objectives.direction("block1_conv2", vector, cosine_power=1.0)
    """
    v = np.asarray(vector, "float32")

    def fn(c: Context):
        a = ops.cast(c.acts[layer], "float32")
        dot = ops.sum(a * ops.convert_to_tensor(v), axis=-1)
        if cosine_power:
            norm = ops.sqrt(ops.sum(ops.square(a), axis=-1) + 1e-8) * float(np.linalg.norm(v))
            dot = dot * ops.power(ops.maximum(dot / norm, 1e-2), cosine_power)
        return _mean_per_image(dot)

    def check(network):
        from kerasviz.nets.layers import channels_of

        n = channels_of(network, layer)
        if v.shape != (n,):
            raise ValueError(f"direction vector must have shape ({n},) for layer {layer!r}; got {v.shape}.")

    return fn, (layer,), check


@objective
def diversity(layer: str):
    """Minus the mean cosine similarity of each image's Gram matrix to the other images' (Lucid):
    rewards a batch whose images differ in style. Needs a batch of at least 2.

    Args:
        layer: the layer whose activations' Gram matrices are compared.

    Returns:
        An `Objective` scoring each image of the batch (add it, weighted, to another objective).

    Example:
    >>> objective = kv.objectives.channel("block3_conv3", 7) + 0.1 * kv.objectives.diversity("block2_conv2")
    """

    def fn(c: Context):
        a = ops.cast(c.acts[layer], "float32")
        b, ch = a.shape[0], a.shape[-1]
        flat = ops.reshape(a, (b, -1, ch))
        gram = ops.matmul(ops.transpose(flat, (0, 2, 1)), flat)
        gram = ops.reshape(gram, (b, -1))
        gram = gram / (ops.sqrt(ops.sum(ops.square(gram), axis=1, keepdims=True)) + 1e-8)
        sim = ops.matmul(gram, ops.transpose(gram))
        others = (ops.sum(sim, axis=1) - ops.diagonal(sim)) / max(b - 1, 1)
        return -others

    return fn, (layer,)


@objective
def total_variation():
    """Total variation of each image (mean absolute difference of neighbours): subtract it to smooth.

    Returns:
        An `Objective` scoring each image of the batch.

    Example:
    >>> objective = kv.objectives.channel("block3_conv3", 7) - 0.5 * kv.objectives.total_variation()
    """

    def fn(c: Context):
        x = ops.cast(c.images, "float32")
        dy = ops.abs(x[:, 1:, :, :] - x[:, :-1, :, :])
        dx = ops.abs(x[:, :, 1:, :] - x[:, :, :-1, :])
        return _mean_per_image(dy) + _mean_per_image(dx)

    return fn


@objective
def l1(center: float = 0.5):
    """Mean absolute deviation of the pixels from `center` (subtract it to keep images gray-ish).

    Args:
        center: the pixel value, in [0, 1], deviations are measured from. Defaults to 0.5.

    Returns:
        An `Objective` scoring each image of the batch.

    Example:
    >>> objective = kv.objectives.channel("block3_conv3", 7) - 0.05 * kv.objectives.l1()
    """

    def fn(c: Context):
        return _mean_per_image(ops.abs(ops.cast(c.images, "float32") - center))

    return fn


@objective
def l2(center: float = 0.5):
    """Mean squared deviation of the pixels from `center`.

    Args:
        center: the pixel value, in [0, 1], deviations are measured from. Defaults to 0.5.

    Returns:
        An `Objective` scoring each image of the batch.

    Example:
    >>> objective = kv.objectives.channel("block3_conv3", 7) - 0.1 * kv.objectives.l2(0.5)
    """

    def fn(c: Context):
        return _mean_per_image(ops.square(ops.cast(c.images, "float32") - center))

    return fn


def as_objective(value, layer: str | None = None) -> Objective:
    """An `Objective`, or for a layer name, `channel(layer)` (each image's own filter).

    Args:
        value: an `Objective` (returned as is), or None to use `channel(layer)`.
        layer: the layer name used when `value` is None. Defaults to None.

    Returns:
        An `Objective`.

    Raises:
        TypeError: `value` is not an `Objective` (and not None with a `layer`).

    Example:
    >>> kv.objectives.as_objective(None, "block3_conv3").description
    "channel('block3_conv3')"
    """
    if isinstance(value, Objective):
        return value
    if value is None and layer is not None:
        return channel(layer)
    raise TypeError(f"Expected an Objective. Received: {type(value).__name__}.")


def per_image(objectives: list[Objective]) -> Objective:
    """One objective per image of the batch: image `i` is scored by `objectives[i]` alone.

    Args:
        objectives: a list of `Objective`, one per image (the batch size is its length).

    Returns:
        An `Objective` scoring each image of the batch.

    Example:
    >>> objective = kv.objectives.per_image([kv.objectives.channel("block3_conv3", i) for i in (0, 5)])
    >>> objective.description
    "[channel('block3_conv3', 0), channel('block3_conv3', 5)]"
    """
    objectives = list(objectives)
    n = len(objectives)

    def fn(c: Context):
        scores = [obj(c) for obj in objectives]
        eye = ops.eye(n, dtype="float32")
        return sum(s * eye[i] for i, s in enumerate(scores))

    desc = "[" + ", ".join(o.description for o in objectives) + "]"
    out = Objective(fn, desc, tuple(layer for o in objectives for layer in o.layers),
                    key=("per_image", tuple(o.key for o in objectives)))
    out._validators = [v for o in objectives for v in o._validators]
    return out


__all__ = [  # noqa: RUF022
    "Context", "Objective", "objective", "channel", "neuron", "deepdream", "class_logit", "class_probability",
    "direction", "diversity", "total_variation", "l1", "l2", "as_objective", "per_image",
]
