"""One object per Keras backend, behind one interface: `Backend`.

`kerasviz.engine.backend` picks one of them once, from `keras.backend.backend()`, and its public functions
delegate to it. `Backend` holds the interface and what every backend shares (tensor conversions, the
stateless use of a `keras.optimizers` optimizer, the bfloat16 rule); `tensorflow.py`, `jax.py` and
`torch.py` each hold one subclass, with only what that framework does its own way. Each imports its
framework when first used (`deferred.module`), so listing the modules starts none of them.
"""

from __future__ import annotations

from collections.abc import Callable

import keras


class Backend:
    """What the engine needs of a Keras backend. A subclass per framework; the engine uses the one instance
    `kerasviz.engine.backend.active()` returns.

    Attributes:
        name: the Keras backend name (`"tensorflow"`, `"jax"`, `"torch"`).
        cpu_bfloat16: whether bfloat16 was measured faster than float32 on a CPU with bfloat16 instructions
            for this backend's step (TensorFlow only; see docs/speed.md).
        strategies: whether a `tf.distribute.Strategy` can place this backend's steps (TensorFlow only).
    """

    name = ""
    cpu_bfloat16 = False
    strategies = False

    def compile_step(self, score_fn: Callable, update, model: keras.Model | None) -> Callable:
        """`step(values, state, t, lr, u, filters) -> (values, state, scores)`; see `backend.compile_step`."""
        raise NotImplementedError

    def compile_loop(self, score_fn: Callable, update, model: keras.Model | None) -> Callable:
        """`loop(values, state, t0, lr, u_block, filters, count) -> (values, state, history)`; see
        `backend.compile_loop`."""
        raise NotImplementedError

    def compile_scores(self, score_fn: Callable, model: keras.Model | None) -> Callable:
        """`scores(values, u, filters) -> [batch]`, without gradient; see `backend.compile_scores`."""
        raise NotImplementedError

    def input_gradient(self, fn: Callable, x):
        """The gradient of `sum(fn(x))` with respect to the NumPy array `x`, as a NumPy array."""
        raise NotImplementedError

    def accelerator(self) -> tuple[str, tuple[int, int] | None] | None:
        """The device the backend computes on by default: `("gpu", compute capability)`, `("tpu", None)`, or
        None for the CPU."""
        raise NotImplementedError

    def traces(self, compiled: Callable) -> int:
        """How many times `compiled` (from this backend's `compile_*`) has been traced; 0 when it never is."""
        return 0

    def optimizer_reset(self, optimizer, start: list) -> list:
        """Reset a built `keras.optimizers` optimizer's slots to `start`; returns the update state to carry
        (here the slot values themselves, for `stateless_apply`)."""
        return [keras.ops.convert_to_tensor(v) for v in start]

    def optimizer_apply(self, optimizer, variables: list, values: list, grads: list, state: list):
        """One step of `optimizer` on `values` (descending `grads`): `(new values, new state)`, through
        `stateless_apply`."""
        new_values, new_state = optimizer.stateless_apply(state, grads, values)
        return list(new_values), list(new_state)

    def to_tensor(self, x, dtype=None):
        """A backend tensor from a NumPy array or number."""
        return keras.ops.convert_to_tensor(x, dtype=dtype)

    def to_numpy(self, x):
        """A NumPy array from a backend tensor."""
        return keras.ops.convert_to_numpy(x)

    def bfloat16_is_fast(self, cpuinfo: str = "/proc/cpuinfo") -> bool:
        """Whether the device computes bfloat16 faster than float32: a TPU, a GPU of compute capability >= 8.0,
        or a CPU with bfloat16 instructions (the flags of `cpuinfo`) where `cpu_bfloat16` says so."""
        device = self.accelerator()
        if device is None:
            return self.cpu_bfloat16 and cpu_has_fast_bfloat16(cpuinfo)
        kind, cc = device
        return kind == "tpu" or (cc is not None and cc >= (8, 0))


def cpu_has_fast_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU multiplies bfloat16 in hardware: the `avx512_bf16` or `amx_bf16` flag of /proc/cpuinfo.

    Example:
    >>> from kerasviz.engine.backends import cpu_has_fast_bfloat16
    >>> cpu_has_fast_bfloat16("no/such/file")  # not Linux: no way to tell, so not fast
    False
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def capability(cc) -> tuple[int, int] | None:
    """A compute capability as `(major, minor)`, from `(8, 0)` or `"8.0"`; None when it is no such thing.

    Example:
    >>> from kerasviz.engine.backends import capability
    >>> capability("8.6"), capability((7, 5)), capability("gfx90a")
    ((8, 6), (7, 5), None)
    """
    try:
        parts = cc.split(".") if isinstance(cc, str) else list(cc)
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (TypeError, ValueError, IndexError, AttributeError):
        return None
