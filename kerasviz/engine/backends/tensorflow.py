"""The TensorFlow backend: `tf.GradientTape` inside `tf.function` (one trace per shape).

The loop is a `tf.while_loop` in one `tf.function`. A `keras.optimizers` optimizer keeps its slots in
variables here, assigned inside the step, instead of `stateless_apply`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import keras

from kerasviz.engine.backends import Backend, capability, tf_kernels
from kerasviz.engine.deferred import module

tf = module("tensorflow")


class _OwnFunction:
    """`fn` as a callable object of its own, for `tf.function`.

    TensorFlow warns about frequent retracing ("5 out of the last 5 calls to <function ...> triggered
    tf.function retracing") by counting the traces of every `tf.function` whose Python function has the same
    code object. Each renderer compiles its own step, loop and scoring functions (new closures of the same
    code), each traced once per shape, so a session that visualizes five layers would add up to one function
    "retraced" five times. A callable object is counted on its own (TensorFlow keys it by the object), so the
    warning keeps its meaning: it still fires when one of these functions really retraces too often, and for
    the user's own functions, whose counts this does not touch.

    Its call (made only while `tf.function` traces) also puts `tf_kernels`' GELU and attention in place of
    Keras's when the step runs on the CPU, where they were measured faster.
    """

    def __init__(self, fn: Callable, fast_kernels: bool = False):
        self.fn = fn
        self.fast_kernels = fast_kernels
        self.__name__ = fn.__name__  # tf.function names its graphs after it

    def __call__(self, *args):
        with tf_kernels.kernels() if self.fast_kernels else contextlib.nullcontext():
            return self.fn(*args)


def _function(fn: Callable):
    # no autograph: the step has no Python control flow on tensors (it runs under jax.jit too), so there is
    # nothing to convert, and a score function defined where its source cannot be read (a doctest) traces
    return tf.function(_OwnFunction(fn, fast_kernels=BACKEND.accelerator() is None), autograph=False)


def _ascent(score_fn, update):
    def step(values, state, t, lr, u, filters):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(values)
            scores = score_fn(values, u, filters)
            total = tf.reduce_sum(scores)
        # zeros for values the score does not depend on (a MACO magnitude behind stop_gradient)
        grads = tape.gradient(total, values, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        values, state = update.apply(values, grads, state, lr, t)
        return values, state, scores

    return step


class TensorFlow(Backend):
    name = "tensorflow"
    cpu_bfloat16 = True  # the one backend measured faster in bfloat16 on a CPU with bfloat16 instructions
    strategies = True

    def compile_step(self, score_fn, update, model):
        return _function(_ascent(score_fn, update))

    def compile_loop(self, score_fn, update, model):
        step = _ascent(score_fn, update)

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

        return _function(loop)

    def compile_scores(self, score_fn, model):
        def scores(values, u, filters):
            return score_fn(values, u, filters)

        return _function(scores)

    def traces(self, compiled):
        return int(compiled.experimental_get_tracing_count())

    def input_gradient(self, fn, x):
        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = keras.ops.sum(fn(inputs))
        return tape.gradient(total, inputs).numpy()

    def accelerator(self):
        if tf.config.list_logical_devices("TPU"):
            return "tpu", None
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return "gpu", capability(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability"))
        return None

    def optimizer_reset(self, optimizer, start):
        for var, value in zip(optimizer.variables, start, strict=True):
            var.assign(value)
        return []  # the slots are the optimizer's variables: no state carried

    def optimizer_apply(self, optimizer, variables, values, grads, state):
        for var, value in zip(variables, values, strict=True):
            var.assign(value)
        optimizer.apply(grads, variables)
        return [keras.ops.convert_to_tensor(var) for var in variables], state


BACKEND = TensorFlow()
