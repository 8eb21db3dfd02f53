"""The one backend-specific place: compile the gradient-ascent step for the active Keras backend.

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

How each backend compiles it:
- TensorFlow: `tf.GradientTape` inside `tf.function` (one trace per shape).
- JAX: `jax.value_and_grad` of a pure function inside `jax.jit` (one trace per shape). The weights of
  `model` are arguments of the jitted function (read through a `keras.StatelessScope`, as
  `Layer.stateless_call` does), so they are not baked into the compiled program as constants: a
  changed weight is seen without a retrace, and a big model compiles as fast as a small one.
- PyTorch: eager autograd (`torch.autograd.grad` with respect to the values only), the update under
  `torch.no_grad()`. No tracing, so `traces(step)` stays 0.

And the loop: TensorFlow, a `tf.while_loop` in one `tf.function`; JAX, `jax.lax.fori_loop` (a while loop,
the count being traced) in one `jax.jit`, the weights again as arguments; PyTorch, a Python loop of the
eager step in one call (PyTorch has no per-call compile overhead to save).

The backend is whatever Keras was imported with (`KERAS_BACKEND`); nothing here sets it.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

BACKENDS = ("tensorflow", "jax", "torch")


def traces(compiled: Callable) -> int:
    """How many times `compiled` (from `compile_step`, `compile_loop` or `compile_scores`) has been traced.

    A `tf.function`'s own tracing count on TensorFlow, the `jax.jit` traces on JAX; PyTorch runs eagerly
    and never traces (0).
    """
    if hasattr(compiled, "experimental_get_tracing_count"):
        return int(compiled.experimental_get_tracing_count())
    return int(getattr(compiled, "traced", [0])[0])


def name() -> str:
    """The active Keras backend: `"tensorflow"`, `"jax"` or `"torch"`."""
    return keras.backend.backend()


def _unsupported(backend: str) -> NotImplementedError:
    return NotImplementedError(
        f"kerasviz's optimizer supports the Keras backends {', '.join(BACKENDS)}. "
        f"Received: KERAS_BACKEND={backend!r}. Set KERAS_BACKEND to one of them before importing keras."
    )


def compile_step(score_fn: Callable, update, *, model: keras.Model | None = None) -> Callable:
    """Compile `score_fn(values, u, filters) -> scores [batch]` into an ascent step with `update`.

    Args:
        score_fn: the scores of a batch, written with `keras.ops`; the step maximizes their sum
            (each image's score depends on its own values only, so this is a per-image ascent).
        update: an update rule (`kerasviz.updates`): `init(values)` and
            `apply(values, grads, state, lr, t)`.
        model: the Keras model (or layer) whose weights `score_fn` uses. On JAX they are passed into
            the jitted function instead of being captured as constants; the other backends read the
            live variables and ignore it. Defaults to None (JAX then captures the weights at trace
            time: correct, but slower to compile and blind to later weight changes).

    Returns:
        `step(values, state, t, lr, u, filters) -> (values, state, scores)`.

    Raises:
        NotImplementedError: for a Keras backend other than TensorFlow, JAX or PyTorch.
    """
    backend = name()
    if backend == "tensorflow":
        return _tensorflow_step(score_fn, update)
    if backend == "jax":
        return _jax_step(score_fn, update, model)
    if backend == "torch":
        return _torch_step(score_fn, update)
    raise _unsupported(backend)


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
    >>> loop = kv.engine.backend.compile_loop(score_fn, kv.updates.get("adam"), model=extractor)
    >>> values, state, history = loop(values, state, t0, lr, u_block, filters, count)
    """
    backend = name()
    if backend == "tensorflow":
        return _tensorflow_loop(score_fn, update)
    if backend == "jax":
        return _jax_loop(score_fn, update, model)
    if backend == "torch":
        return _torch_loop(score_fn, update)
    raise _unsupported(backend)


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
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        def scores(values, u, filters):
            return score_fn(values, u, filters)

        return tf.function(scores)
    if backend == "jax":
        return _jax_scores(score_fn, model)
    if backend == "torch":
        import torch

        def torch_scores(values, u, filters):
            with torch.no_grad():
                return score_fn(values, u, filters)

        return torch_scores
    raise _unsupported(backend)


# ------------------------------------------------------------------------ the hardware's bfloat16


def _cpu_has_fast_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU multiplies bfloat16 in hardware: the `avx512_bf16` or `amx_bf16` flag of /proc/cpuinfo."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:  # not Linux: no way to tell, so not fast
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _capability(cc) -> tuple[int, int] | None:
    """A compute capability as `(major, minor)`, from `(8, 0)` or `"8.0"`; None when it is no such thing."""
    try:
        parts = cc.split(".") if isinstance(cc, str) else list(cc)
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (TypeError, ValueError, IndexError, AttributeError):
        return None


def _accelerator() -> tuple[str, tuple[int, int] | None] | None:
    """The accelerator the backend computes on by default, `("gpu", compute capability)` or `("tpu", None)`;
    None for the CPU."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_logical_devices("TPU"):
            return "tpu", None
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return "gpu", _capability(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability"))
        return None
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "tpu":
            return "tpu", None
        if device.platform in ("gpu", "cuda", "rocm"):
            return "gpu", _capability(getattr(device, "compute_capability", None))
        return None
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "gpu", _capability(torch.cuda.get_device_capability())
        return None
    raise _unsupported(backend)


def bfloat16_is_fast() -> bool:
    """Whether the device the backend computes on runs bfloat16 faster than float32: a TPU, a GPU of compute
    capability >= 8.0 (Ampere and later), or, on the TensorFlow backend, a CPU with AVX512-BF16 or AMX (the
    flags of /proc/cpuinfo). On a CPU, JAX and PyTorch stay float32: only TensorFlow's CPU kernels were
    measured faster in bfloat16 (PyTorch's CPU step came out slower in one of two runs; see docs/speed.md).

    Returns:
        A bool. What `precision="auto"` asks.
    """
    device = _accelerator()
    if device is None:
        return name() == "tensorflow" and _cpu_has_fast_bfloat16()
    kind, capability = device
    return kind == "tpu" or (capability is not None and capability >= (8, 0))


# ------------------------------------------------------------------------ TensorFlow


def _tensorflow_ascent(score_fn, update):
    import tensorflow as tf

    def step(values, state, t, lr, u, filters):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(values)
            scores = score_fn(values, u, filters)
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, values)
        values, state = update.apply(values, grads, state, lr, t)
        return values, state, scores

    return step


def _tensorflow_step(score_fn, update):
    import tensorflow as tf

    return tf.function(_tensorflow_ascent(score_fn, update))


def _tensorflow_loop(score_fn, update):
    import tensorflow as tf

    step = _tensorflow_ascent(score_fn, update)

    def loop(values, state, t0, lr, u_block, filters, count):
        k, batch = int(u_block.shape[0]), int(filters.shape[0])
        count = tf.minimum(tf.cast(count, tf.int32), k)

        def body(i, values, state, history):
            values, state, scores = step(values, state, t0 + i, lr, u_block[i], filters)
            row = tf.cast(tf.reshape(scores, (1, batch)), tf.float32)
            history = tf.tensor_scatter_nd_update(history, tf.reshape(i, (1, 1)), row)
            return i + 1, values, state, history

        start = (tf.constant(0, tf.int32), list(values), list(state), tf.zeros((k, batch), tf.float32))
        # one iteration at a time (the steps depend on each other anyway): no op of the next step starts
        # beside this one's, so each op runs with the threads it has in the one-step function
        _, values, state, history = tf.while_loop(lambda i, *_: i < count, body, start, maximum_iterations=k,
                                                  parallel_iterations=1)
        return values, state, history

    return tf.function(loop)


# ------------------------------------------------------------------------ JAX


def _model_variables(model) -> list:
    return [] if model is None else list(model.variables)


def _with_weights(score_fn, variables):
    """`score_fn` with the model's weights as an argument: `fn(weights, values, u, filters)`."""

    def fn(weights, values, u, filters):
        with keras.StatelessScope(state_mapping=list(zip(variables, weights, strict=True))):
            return score_fn(values, u, filters)

    return fn


def _jax_gradient(score_fn, model):
    """The model's variables and `grad_fn(values, weights, u, filters) -> ((total, scores), grads)`, the gradient
    of the scores' sum with respect to the values, with the weights as an argument."""
    import jax

    variables = _model_variables(model)
    scored = _with_weights(score_fn, variables)

    def objective(values, weights, u, filters):
        scores = scored(weights, values, u, filters)
        return jax.numpy.sum(scores), scores

    return variables, jax.value_and_grad(objective, has_aux=True)


def _jax_step(score_fn, update, model):
    import jax

    variables, grad_fn = _jax_gradient(score_fn, model)

    traced = [0]

    def step(weights, values, state, t, lr, u, filters):
        traced[0] += 1  # runs once per trace, not per call
        (_, scores), grads = grad_fn(values, weights, u, filters)
        values, state = update.apply(values, grads, state, lr, t)
        return values, state, scores

    jitted = jax.jit(step)

    def run(values, state, t, lr, u, filters):
        return jitted([v.value for v in variables], list(values), list(state), t, lr, u, filters)

    run.traced = traced
    return run


def _jax_loop(score_fn, update, model):
    import jax

    variables, grad_fn = _jax_gradient(score_fn, model)

    traced = [0]

    def loop(weights, values, state, t0, lr, u_block, filters, count):
        traced[0] += 1  # runs once per trace, not per call
        k, batch = int(u_block.shape[0]), int(filters.shape[0])

        def body(i, carry):
            values, state, history = carry
            (_, scores), grads = grad_fn(values, weights, u_block[i], filters)
            values, state = update.apply(values, grads, state, lr, t0 + i)
            history = history.at[i].set(jax.numpy.reshape(scores, (batch,)).astype("float32"))
            return values, state, history

        count = jax.numpy.minimum(jax.numpy.asarray(count, "int32"), k)
        start = (values, state, jax.numpy.zeros((k, batch), "float32"))
        return jax.lax.fori_loop(jax.numpy.int32(0), count, body, start)

    jitted = jax.jit(loop)

    def run(values, state, t0, lr, u_block, filters, count):
        values, state, history = jitted([v.value for v in variables], list(values), list(state), t0, lr, u_block,
                                        filters, count)
        return list(values), list(state), history

    run.traced = traced
    return run


def _jax_scores(score_fn, model):
    import jax

    variables = _model_variables(model)
    scored = _with_weights(score_fn, variables)

    traced = [0]

    def scores(weights, values, u, filters):
        traced[0] += 1  # runs once per trace, not per call
        return scored(weights, values, u, filters)

    jitted = jax.jit(scores)

    def run(values, u, filters):
        return jitted([v.value for v in variables], list(values), u, filters)

    run.traced = traced
    return run


# ------------------------------------------------------------------------ PyTorch


def _torch_step(score_fn, update):
    import torch

    def step(values, state, t, lr, u, filters):
        values = [v.detach().requires_grad_(True) for v in values]
        scores = score_fn(values, u, filters)
        grads = torch.autograd.grad(scores.sum(), values)
        with torch.no_grad():
            values, state = update.apply([v.detach() for v in values], list(grads), state, lr, t)
        return values, state, scores.detach()

    return step


def _torch_loop(score_fn, update):
    import torch

    step = _torch_step(score_fn, update)

    def loop(values, state, t0, lr, u_block, filters, count):
        k, batch = int(u_block.shape[0]), int(filters.shape[0])
        history = torch.zeros((k, batch), dtype=torch.float32, device=u_block.device)
        for i in range(min(int(count), k)):  # eager: a loop in one call
            values, state, scores = step(values, state, t0 + i, lr, u_block[i], filters)
            history[i] = scores.reshape(batch).to(torch.float32)
        return values, state, history

    return loop


# ------------------------------------------------------------------------ keras optimizers as update rules


def optimizer_reset(optimizer, start: list) -> list:
    """Reset a built `keras.optimizers` optimizer's slots to `start`; returns the update state to carry.

    TensorFlow's optimizers keep their slots in variables (reset here, no state carried); JAX and PyTorch
    run them through `stateless_apply`, so the state is the slot values themselves.
    """
    if name() == "tensorflow":
        for var, value in zip(optimizer.variables, start, strict=True):
            var.assign(value)
        return []
    return [keras.ops.convert_to_tensor(v) for v in start]


def optimizer_apply(optimizer, variables: list, values: list, grads: list, state: list) -> tuple[list, list]:
    """One step of a `keras.optimizers` optimizer on `values` (descending `grads`): `(new values, new state)`.

    On TensorFlow the values go through the optimizer's own `variables` (inside the compiled step); elsewhere
    `stateless_apply` takes and returns the state.
    """
    if name() == "tensorflow":
        for var, value in zip(variables, values, strict=True):
            var.assign(value)
        optimizer.apply(grads, variables)
        return [keras.ops.convert_to_tensor(var) for var in variables], state
    new_values, new_state = optimizer.stateless_apply(state, grads, values)
    return list(new_values), list(new_state)


def input_gradient(fn: Callable, x):
    """The gradient of `sum(fn(x))` with respect to the NumPy array `x`, eagerly, as a NumPy array."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = keras.ops.sum(fn(inputs))
        return tape.gradient(total, inputs).numpy()
    if backend == "jax":
        import jax
        import numpy as np

        return np.asarray(jax.grad(lambda v: keras.ops.sum(fn(v)))(x))
    if backend == "torch":
        import torch

        inputs = torch.tensor(x, requires_grad=True)
        keras.ops.sum(fn(inputs)).backward()
        return inputs.grad.detach().cpu().numpy()
    raise _unsupported(backend)


# ------------------------------------------------------------------------ conversions


def to_tensor(x, dtype=None):
    """A backend tensor from a NumPy array or number."""
    return keras.ops.convert_to_tensor(x, dtype=dtype)


def to_numpy(x):
    """A NumPy array from a backend tensor."""
    if name() == "torch" and hasattr(x, "detach"):
        return x.detach().cpu().numpy()  # what keras does, without NumPy 2's copy-keyword warning
    return keras.ops.convert_to_numpy(x)
