"""The engine's one door to the Keras backend: the gradient-ascent step compiled for the active backend.

Everything else (params, transforms, preprocessing, objectives, updates) is written with `keras.ops`
and runs unchanged inside the step. The step's signature is the same on every backend:

    step(values, state, t, lr, u, filters) -> (values, state, scores)

`values`: the parameterization's tensors; `state`: the update rule's slots; `t`: the step number
(int32 tensor); `lr`: the learning rate (float32 tensor); `u`: `[batch, n_random]` uniform draws for
this step's transforms; `filters`: int32 `[batch]`. Shapes define the trace: filter indices, learning
rates and the number of steps change without retracing.

`compile_loop` compiles many steps into one call, the loop itself inside the compiled program:

    loop(values, state, t0, lr, u_block, filters, count) -> (values, state, history)

`u_block`: `[K, batch, n_random]`, the draws of steps `t0 .. t0 + K - 1`; `count` (int32, at most K) how
many of them to run; `history`: `[K, batch]` float32, the scores of each step run (rows past `count` are
zero). `count` is a tensor, so any number of steps up to K runs on one trace; only K (the static first
dimension of `u_block`) and the other shapes define it. Step for step it computes what `compile_step`
computes, so it gives the same pictures.

How each backend compiles them lives in its own module of `kerasviz.engine.backends`: `tensorflow`
(`tf.GradientTape` in `tf.function`, the loop a `tf.while_loop`), `jax` (`jax.value_and_grad` in
`jax.jit`, the loop a `jax.lax.fori_loop`, the model's weights passed in as arguments), `torch` (eager
autograd, the loop a Python loop; nothing traced).

The backend is whatever Keras was imported with (`KERAS_BACKEND`); nothing here sets it. It is chosen
once: `active()` loads its object (`kerasviz.engine.backends`: one `Backend` subclass per framework, behind
one interface) on first use, and every function here delegates to that object.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import keras

from kerasviz.engine.backends import Backend

BACKENDS = ("tensorflow", "jax", "torch")


def load(backend: str) -> Backend:
    """The object of the Keras backend named `backend` (its framework imported when first used).

    Args:
        backend: `"tensorflow"`, `"jax"` or `"torch"`.

    Returns:
        A `kerasviz.engine.backends.Backend`.

    Raises:
        NotImplementedError: for another name.

    Example:
    >>> kv.engine.backend.load("torch").name
    'torch'
    """
    if backend not in BACKENDS:
        raise NotImplementedError(
            f"kerasviz's optimizer supports the Keras backends {', '.join(BACKENDS)}. "
            f"Received: KERAS_BACKEND={backend!r}. Set KERAS_BACKEND to one of them before importing keras.")
    return importlib.import_module(f"kerasviz.engine.backends.{backend}").BACKEND


@functools.cache
def active() -> Backend:
    """The object of the backend Keras was imported with, chosen on the first call and kept.

    Raises:
        NotImplementedError: for a Keras backend other than TensorFlow, JAX or PyTorch.

    Example:
    >>> kv.engine.backend.active().name == keras.backend.backend()
    True
    """
    return load(keras.backend.backend())


def name() -> str:
    """The active Keras backend: `"tensorflow"`, `"jax"` or `"torch"`.

    Example:
    >>> kv.engine.backend.name() in kv.engine.backend.BACKENDS
    True
    """
    return keras.backend.backend()


def traces(compiled: Callable) -> int:
    """How many times `compiled` (from `compile_step`, `compile_loop` or `compile_scores`) has been traced.

    A `tf.function`'s own tracing count on TensorFlow, the `jax.jit` traces on JAX; PyTorch runs eagerly
    and never traces (0).
    """
    return active().traces(compiled)


def compile_step(score_fn: Callable, update, *, model: keras.Model | None = None) -> Callable:
    """Compile `score_fn(values, u, filters) -> scores [batch]` into an ascent step with `update`.

    Args:
        score_fn: the scores of a batch, written with `keras.ops`; the step maximizes their sum
            (each image's score depends on its own values only, so this is a per-image ascent).
        update: an update rule (`kerasviz.engine.updates`): `init(values)` and
            `apply(values, grads, state, lr, t)`.
        model: the Keras model (or layer) whose weights `score_fn` uses. On JAX they are passed into
            the jitted function instead of being captured as constants; the other backends read the
            live variables and ignore it. Defaults to None (JAX then captures the weights at trace
            time: correct, but slower to compile and blind to later weight changes).

    Returns:
        `step(values, state, t, lr, u, filters) -> (values, state, scores)`.

    Raises:
        NotImplementedError: for a Keras backend other than TensorFlow, JAX or PyTorch.

    Example:
    >>> from kerasviz.engine import backend, updates
    >>> def score_fn(values, u, filters):  # highest where every value is 1
    ...     return -keras.ops.sum(keras.ops.square(values[0] - 1.0), axis=(1, 2, 3))
    >>> step = backend.compile_step(score_fn, updates.get("l2"))
    >>> values = [backend.to_tensor(np.zeros((2, 4, 4, 1), "float32"))]
    >>> t, lr = backend.to_tensor(np.int32(0)), backend.to_tensor(np.float32(0.5))
    >>> u, filters = backend.to_tensor(np.zeros((2, 1), "float32")), backend.to_tensor(np.zeros(2, "int32"))
    >>> values, state, scores = step(values, [], t, lr, u, filters)
    >>> backend.to_numpy(scores)  # the scores before the step
    array([-16., -16.], dtype=float32)
    >>> backend.to_numpy(values[0])[0, 0, 0]  # each image moved lr along its normalized gradient
    array([0.125], dtype=float32)
    """
    return active().compile_step(score_fn, update, model)


def compile_loop(score_fn: Callable, update, *, model: keras.Model | None = None) -> Callable:
    """Compile `score_fn(values, u, filters) -> scores [batch]` into a loop of ascent steps with `update`.

    The loop runs inside the compiled program (no host round trip between its steps): one call runs up
    to K steps, K being the static first dimension of the `u_block` it is given.

    Args:
        score_fn: as for `compile_step`.
        update: as for `compile_step`. A `keras.optimizers` optimizer on TensorFlow (`KerasOptimizer`, whose
            slots are variables assigned in the step) runs too: the assignments are ordered inside the loop.
        model: as for `compile_step`.

    Returns:
        `loop(values, state, t0, lr, u_block, filters, count) -> (values, state, history)`: `t0` the step
        number of the first step (int32), `u_block` `[K, batch, n_random]` the draws of the K steps, `count`
        (int32 tensor or int, `1 <= count <= K`) the steps to run; `history` `[K, batch]` float32 holds the
        scores of the steps run, in order, and zeros after them. Step `i` computes exactly what
        `compile_step`'s `step(values, state, t0 + i, lr, u_block[i], filters)` computes.

    Raises:
        NotImplementedError: for a Keras backend other than TensorFlow, JAX or PyTorch.

    Example:
    >>> # score_fn, t, lr and filters: as in compile_step's example
    >>> loop = backend.compile_loop(score_fn, updates.get("l2"))
    >>> start = [backend.to_tensor(np.zeros((2, 4, 4, 1), "float32"))]
    >>> u_block = backend.to_tensor(np.zeros((4, 2, 1), "float32"))  # K = 4 steps at most
    >>> values, state, history = loop(start, [], t, lr, u_block, filters, backend.to_tensor(np.int32(3)))
    >>> backend.to_numpy(history)[:, 0]  # three steps run, the fourth row left at zero
    array([-16.  , -12.25,  -9.  ,   0.  ], dtype=float32)
    >>> before = backend.traces(loop)
    >>> _ = loop(start, [], t, lr, u_block, filters, backend.to_tensor(np.int32(1)))  # another count
    >>> backend.traces(loop) - before  # ran on the same trace
    0
    """
    return active().compile_loop(score_fn, update, model)


def compile_scores(score_fn: Callable, *, model: keras.Model | None = None) -> Callable:
    """Compile `score_fn(values, u, filters)` for evaluation (no gradient).

    Args:
        score_fn: as for `compile_step`; `u` may be None.
        model: as for `compile_step`.

    Returns:
        `scores(values, u, filters) -> [batch]`.

    Raises:
        NotImplementedError: for a Keras backend other than TensorFlow, JAX or PyTorch.
    """
    return active().compile_scores(score_fn, model)


def bfloat16_is_fast() -> bool:
    """Whether the device the backend computes on runs bfloat16 faster than float32: a TPU, a GPU of compute
    capability >= 8.0 (Ampere and later), or, on the TensorFlow backend, a CPU with AVX512-BF16 or AMX (the
    flags of /proc/cpuinfo). On a CPU, JAX and PyTorch stay float32: only TensorFlow's CPU kernels were
    measured faster in bfloat16 (PyTorch's CPU step came out slower in one of two runs; see docs/speed.md).

    Returns:
        A bool. What `precision="auto"` asks.
    """
    return active().bfloat16_is_fast()


def runs_strategies() -> bool:
    """Whether a `tf.distribute.Strategy` can place the compiled steps: on the TensorFlow backend only.

    Example:
    >>> kv.engine.backend.runs_strategies() == (kv.engine.backend.name() == "tensorflow")
    True
    """
    return active().strategies


def optimizer_reset(optimizer, start: list) -> list:
    """Reset a built `keras.optimizers` optimizer's slots to `start`; returns the update state to carry.

    TensorFlow's optimizers keep their slots in variables (reset here, no state carried); JAX and PyTorch
    run them through `stateless_apply`, so the state is the slot values themselves.
    """
    return active().optimizer_reset(optimizer, start)


def optimizer_apply(optimizer, variables: list, values: list, grads: list, state: list) -> tuple[list, list]:
    """One step of a `keras.optimizers` optimizer on `values` (descending `grads`): `(new values, new state)`.

    On TensorFlow the values go through the optimizer's own `variables` (inside the compiled step); elsewhere
    `stateless_apply` takes and returns the state.
    """
    return active().optimizer_apply(optimizer, variables, values, grads, state)


def input_gradient(fn: Callable, x):
    """The gradient of `sum(fn(x))` with respect to the NumPy array `x`, eagerly, as a NumPy array.

    Example:
    >>> kv.engine.backend.input_gradient(lambda v: 3.0 * v * v, np.array([1.0, 2.0], "float32"))
    array([ 6., 12.], dtype=float32)
    """
    return active().input_gradient(fn, x)


def to_tensor(x, dtype=None):
    """A backend tensor from a NumPy array or number."""
    return active().to_tensor(x, dtype)


def to_numpy(x):
    """A NumPy array from a backend tensor.

    Example:
    >>> kv.engine.backend.to_numpy(kv.engine.backend.to_tensor([1, 2], "int32"))
    array([1, 2], dtype=int32)
    """
    return active().to_numpy(x)
