"""Update rules for gradient ascent, pure functions of `keras.ops` (they run inside the compiled step).

Each rule has `init(values) -> state` and `apply(values, grads, state, lr, t) -> (values, state)`;
all of them ascend (the score is maximized). Per-image rules normalize each image's gradient on its own
(the batch axis is axis 0 of every value tensor), so a batch of N filters behaves like N separate runs.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from kerasviz.engine.deferred import ops

L2_EPSILON = 1e-12  # tf.math.l2_normalize's epsilon on the squared norm, as in the keras.io tutorial
RMS_EPSILON = 1e-5  # the 2016 blog's epsilon


def _per_image(x, fn):
    axes = tuple(range(1, len(x.shape)))
    return fn(x, axes)


class Update(Protocol):
    """What an update rule is: `init(values) -> state`, `apply(values, grads, state, lr, t) -> (values, state)`."""

    def init(self, values): ...

    def apply(self, values, grads, state, lr, t): ...


@dataclasses.dataclass(frozen=True)
class L2:
    """keras.io: `x += lr * g / ||g||`, the L2 norm taken per image."""

    name = "l2"

    def init(self, values):
        return []

    def apply(self, values, grads, state, lr, t):
        out = []
        for v, g in zip(values, grads, strict=True):
            sq = _per_image(g, lambda x, a: ops.sum(ops.square(x), axis=a, keepdims=True))
            out.append(v + lr * g * ops.rsqrt(ops.maximum(sq, L2_EPSILON)))
        return out, state


@dataclasses.dataclass(frozen=True)
class RMS:
    """Chollet's 2016 blog: `x += lr * g / (rms(g) + eps)`, the RMS taken per image."""

    name = "rms"

    def init(self, values):
        return []

    def apply(self, values, grads, state, lr, t):
        out = []
        for v, g in zip(values, grads, strict=True):
            ms = _per_image(g, lambda x, a: ops.mean(ops.square(x), axis=a, keepdims=True))
            out.append(v + lr * g / (ops.sqrt(ms) + RMS_EPSILON))
        return out, state


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam (Lucid's default), ascending. Per-element, so images stay independent."""

    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8

    name = "adam"

    def init(self, values):
        return [ops.zeros_like(v) for v in values] + [ops.zeros_like(v) for v in values]

    def apply(self, values, grads, state, lr, t):
        n = len(values)
        m, v2 = state[:n], state[n:]
        step = ops.cast(t, "float32") + 1.0
        c1 = 1.0 - ops.power(self.beta_1, step)
        c2 = 1.0 - ops.power(self.beta_2, step)
        out, new_m, new_v = [], [], []
        for x, g, mi, vi in zip(values, grads, m, v2, strict=True):
            mi = self.beta_1 * mi + (1.0 - self.beta_1) * g
            vi = self.beta_2 * vi + (1.0 - self.beta_2) * ops.square(g)
            out.append(x + lr * (mi / c1) / (ops.sqrt(vi / c2) + self.epsilon))
            new_m.append(mi)
            new_v.append(vi)
        return out, new_m + new_v


@dataclasses.dataclass(frozen=True)
class Nadam:
    """Adam with Nesterov momentum (Dozat, 2016; without the momentum schedule), ascending: MACO's update rule
    (xplique and Horama run it at lr 1.0). Per-element, so images stay independent."""

    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8

    name = "nadam"

    def init(self, values):
        return Adam.init(self, values)

    def apply(self, values, grads, state, lr, t):
        n = len(values)
        m, v2 = state[:n], state[n:]
        step = ops.cast(t, "float32") + 1.0
        c1 = 1.0 - ops.power(self.beta_1, step)
        c1_next = 1.0 - ops.power(self.beta_1, step + 1.0)
        c2 = 1.0 - ops.power(self.beta_2, step)
        out, new_m, new_v = [], [], []
        for x, g, mi, vi in zip(values, grads, m, v2, strict=True):
            mi = self.beta_1 * mi + (1.0 - self.beta_1) * g
            vi = self.beta_2 * vi + (1.0 - self.beta_2) * ops.square(g)
            nesterov = self.beta_1 * mi / c1_next + (1.0 - self.beta_1) * g / c1
            out.append(x + lr * nesterov / (ops.sqrt(vi / c2) + self.epsilon))
            new_m.append(mi)
            new_v.append(vi)
        return out, new_m + new_v


@dataclasses.dataclass(frozen=True)
class Probed:
    """`inner` on every value but the last, the probe: a zero image added to the drawn images, whose gradient is
    the gradient with respect to the image. The probe stays zero; the last state entry accumulates the
    magnitude of its gradient over the steps (MACO's transparency map). The renderer wraps the update rule in
    it when the parameterization asks for the map (`Maco.alpha`)."""

    inner: object

    @property
    def name(self) -> str:
        return getattr(self.inner, "name", repr(self.inner))

    def init(self, values):
        return list(self.inner.init(values[:-1])) + [ops.zeros_like(values[-1])]

    def apply(self, values, grads, state, lr, t):
        new, inner_state = self.inner.apply(values[:-1], grads[:-1], state[:-1], lr, t)
        return list(new) + [values[-1]], list(inner_state) + [state[-1] + ops.abs(grads[-1])]


class KerasOptimizer:
    """Any `keras.optimizers.Optimizer` as an update rule. It ascends by minimizing the negated score.

    The optimizer keeps its own learning rate (and schedule): the `lr` setting does not apply to it. Each
    run starts from a fresh copy of it (`from_config`), so the optimizer given is never built or changed.
    Element-wise optimizers (SGD, Adam, RMSprop, Adagrad, Nadam, Lion, ...) keep the images of a batch
    independent; global-norm clipping (`global_clipnorm`) would couple them.

    On JAX and PyTorch it runs through `optimizer.stateless_apply`. TensorFlow's optimizers do not
    offer that, so there a copy per shape owns one variable per tensor optimized, its slots are reset to
    their start values at every `init`, and `apply` runs inside the compiled step.

    Args:
        optimizer: a `keras.optimizers.Optimizer` instance.

    Example:
    >>> rule = kv.updates.get(keras.optimizers.SGD(0.05, momentum=0.9))
    >>> rule.name
    'keras.SGD'
    """

    def __init__(self, optimizer):
        import keras

        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"Expected a keras.optimizers.Optimizer. Received: {type(optimizer).__name__}.")
        self.optimizer = optimizer
        self.name = f"keras.{type(optimizer).__name__}"
        self._config = optimizer.get_config()
        self._copies = {}  # shapes -> (optimizer copy, variables, slot start values)

    def __repr__(self):
        shown = {k: f"{v:.7g}" if isinstance(v, float) else repr(v)
                 for k, v in self._config.items() if k != "name" and v is not None}
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in sorted(shown.items()))})"

    def __eq__(self, other):  # equal settings share a compiled step
        return isinstance(other, KerasOptimizer) and repr(other) == repr(self)

    def __hash__(self):
        return hash(repr(self))

    def __deepcopy__(self, memo):  # settings are copied with dataclasses.asdict: share, do not copy
        return self

    def _copy(self, values):
        import keras

        from kerasviz.engine.backend import to_numpy

        key = tuple(tuple(int(d) for d in v.shape) for v in values)
        if key not in self._copies:
            opt = type(self.optimizer).from_config(dict(self._config))
            variables = [keras.Variable(ops.zeros(k), trainable=True) for k in key]
            opt.build(variables)
            start = [np.array(to_numpy(ops.convert_to_tensor(v)), copy=True) for v in opt.variables]  # not a view
            self._copies[key] = (opt, variables, start)
        return self._copies[key]

    def init(self, values):
        from kerasviz.engine import backend

        opt, _, start = self._copy(values)
        return backend.optimizer_reset(opt, start)

    def apply(self, values, grads, state, lr, t):
        from kerasviz.engine import backend

        opt, variables, _ = self._copy(values)
        return backend.optimizer_apply(opt, variables, values, [-g for g in grads], state)


UPDATES = {"l2": L2, "rms": RMS, "adam": Adam, "nadam": Nadam}


def get(update):
    """An update rule from a name (`"l2"`, `"rms"`, `"adam"`, `"nadam"`) or a rule object.

    Args:
        update: `"l2"` (keras.io), `"rms"` (the 2016 blog), `"adam"` (Lucid) or `"nadam"` (MACO),
            case/punctuation-insensitive,
            a `keras.optimizers.Optimizer` (wrapped in `KerasOptimizer`), or an object with `init` and
            `apply` methods, returned as is.

    Returns:
        The update rule.

    Raises:
        ValueError: an unknown name (the message suggests close ones).
        TypeError: neither a name nor a rule object.

    Example:
    >>> kv.updates.get("adam").name
    'adam'
    """
    if isinstance(update, str):
        from kerasviz.names import lookup

        return UPDATES[lookup(update, UPDATES, "update rule")]()
    import keras

    if isinstance(update, keras.optimizers.Optimizer):
        return KerasOptimizer(update)
    if hasattr(update, "apply") and hasattr(update, "init"):
        return update
    raise TypeError(
        "update must be 'l2', 'rms', 'adam', 'nadam', a keras.optimizers.Optimizer or an update rule object. "
        f"Received: {update!r}."
    )
