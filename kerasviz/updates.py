"""Update rules for gradient ascent, pure functions of `keras.ops` (they run inside the compiled step).

Each rule has `init(values) -> state` and `apply(values, grads, state, lr, t) -> (values, state)`;
all of them ascend (the score is maximized). Per-image rules normalize each image's gradient on its own
(the batch axis is axis 0 of every value tensor), so a batch of N filters behaves like N separate runs.
"""

from __future__ import annotations

import dataclasses

from keras import ops

L2_EPSILON = 1e-12  # tf.math.l2_normalize's epsilon on the squared norm, as in the keras.io tutorial
RMS_EPSILON = 1e-5  # the 2016 blog's epsilon


def _per_image(x, fn):
    axes = tuple(range(1, len(x.shape)))
    return fn(x, axes)


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


UPDATES = {"l2": L2, "rms": RMS, "adam": Adam}


def get(update):
    """An update rule from a name (`"l2"`, `"rms"`, `"adam"`) or a rule object.

    Args:
        update: `"l2"` (keras.io), `"rms"` (the 2016 blog) or `"adam"` (Lucid), case/punctuation-insensitive,
            or an object with `init` and `apply` methods, returned as is.

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
    if hasattr(update, "apply") and hasattr(update, "init"):
        return update
    raise TypeError(
        f"update must be 'l2', 'rms', 'adam' or an update rule object. Received: {update!r}."
    )
