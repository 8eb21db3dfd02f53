"""The one backend-specific place: compile the gradient-ascent step for the active Keras backend.

Everything else (params, transforms, preprocessing, objectives, updates) is written with `keras.ops`
and runs unchanged inside the step. The step's signature is the same on every backend:

    step(values, state, t, lr, u_all, filters) -> (values, state, scores)

`values`: the parameterization's tensors; `state`: the update rule's slots; `t`: the step number
(int32 tensor); `lr`: the learning rate (float32 tensor); `u_all`: `[steps, batch, n_random]` uniform
draws for the transforms; `filters`: int32 `[batch]`. Shapes define the trace: filter indices and
learning rates change without retracing.
"""

from __future__ import annotations

import keras

_TRACES = {"count": 0}


def trace_count() -> int:
    """How many times a step or scoring function has been traced (compiled) in this process."""
    return _TRACES["count"]


def name() -> str:
    return keras.backend.backend()


def compile_step(score_fn, update):
    """Compile `score_fn(values, u, filters) -> scores [batch]` into an ascent step with `update`."""
    backend = name()
    if backend == "tensorflow":
        return _tensorflow_step(score_fn, update)
    raise NotImplementedError(
        f"kerasviz's optimizer supports the TensorFlow backend; KERAS_BACKEND={backend!r} is not "
        "supported yet."
    )


def compile_scores(score_fn):
    """Compile `score_fn(values, u, filters)` for evaluation (no gradient)."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        def scores(values, u, filters):
            _TRACES["count"] += 1
            return score_fn(values, u, filters)

        return tf.function(scores)
    raise NotImplementedError(f"Unsupported backend {backend!r}.")


def _tensorflow_step(score_fn, update):
    import tensorflow as tf

    def step(values, state, t, lr, u_all, filters):
        _TRACES["count"] += 1
        u = tf.gather(u_all, t)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(values)
            scores = score_fn(values, u, filters)
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, values)
        values, state = update.apply(values, grads, state, lr, t)
        return values, state, scores

    return tf.function(step)


def to_tensor(x, dtype=None):
    return keras.ops.convert_to_tensor(x, dtype=dtype)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)
