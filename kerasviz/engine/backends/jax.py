"""The JAX backend: `jax.value_and_grad` of a pure function inside `jax.jit` (one trace per shape).

Every compiled function goes through one wrapper, `_jit_with_weights`: the weights of `model` are
arguments of the jitted function (read through a `keras.StatelessScope`, as `Layer.stateless_call` does),
so they are not baked into the compiled program as constants (a changed weight is seen without a
retrace, and a big model compiles as fast as a small one), and its traces are counted. The loop is
`jax.lax.fori_loop` (a while loop, the count being traced) inside the same kind of jitted function.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from kerasviz.engine.backends import Backend, capability
from kerasviz.engine.deferred import module

jax = module("jax")
jnp = module("jax.numpy")


def _jit_with_weights(body: Callable, score_fn: Callable, model) -> Callable:
    """`run(*args)`: `body(scored, weights, *args)` in `jax.jit`, given the current weights of `model`.

    `scored(weights, values, u, filters)` is `score_fn` with the model's weights read from `weights`;
    list and tuple arguments travel as lists (one pytree structure, one trace); `run.traced[0]` counts the
    traces (the body runs once per trace, not per call)."""
    variables = [] if model is None else list(model.variables)

    def scored(weights, values, u, filters):
        with keras.StatelessScope(state_mapping=list(zip(variables, weights, strict=True))):
            return score_fn(values, u, filters)

    traced = [0]

    def counted(weights, *args):
        traced[0] += 1
        return body(scored, weights, *args)

    jitted = jax.jit(counted)

    def run(*args):
        return jitted([v.value for v in variables], *(list(a) if isinstance(a, list | tuple) else a for a in args))

    run.traced = traced
    return run


def _ascent(scored, weights, values, u, filters):
    """`(scores, grads)`: the scores and the gradient of their sum with respect to `values`."""

    def total(values):
        scores = scored(weights, values, u, filters)
        return jnp.sum(scores), scores

    (_, scores), grads = jax.value_and_grad(total, has_aux=True)(values)
    return scores, grads


class JAX(Backend):
    name = "jax"

    def compile_step(self, score_fn, update, model):
        def step(scored, weights, values, state, t, lr, u, filters):
            scores, grads = _ascent(scored, weights, values, u, filters)
            values, state = update.apply(values, grads, state, lr, t)
            return values, state, scores

        return _jit_with_weights(step, score_fn, model)

    def compile_loop(self, score_fn, update, model):
        def loop(scored, weights, values, state, t0, lr, u_block, filters, count):
            k, batch = int(u_block.shape[0]), int(filters.shape[0])

            def body(i, carry):
                values, state, history = carry
                scores, grads = _ascent(scored, weights, values, u_block[i], filters)
                values, state = update.apply(values, grads, state, lr, t0 + i)
                history = history.at[i].set(jnp.reshape(scores, (batch,)).astype("float32"))
                return values, state, history

            count = jnp.minimum(jnp.asarray(count, "int32"), k)
            return jax.lax.fori_loop(jnp.int32(0), count, body, (values, state, jnp.zeros((k, batch), "float32")))

        return _jit_with_weights(loop, score_fn, model)

    def compile_scores(self, score_fn, model):
        def scores(scored, weights, values, u, filters):
            return scored(weights, values, u, filters)

        return _jit_with_weights(scores, score_fn, model)

    def traces(self, compiled):
        return compiled.traced[0]

    def input_gradient(self, fn, x):
        return np.asarray(jax.grad(lambda v: keras.ops.sum(fn(v)))(x))

    def accelerator(self):
        device = jax.devices()[0]
        if device.platform == "tpu":
            return "tpu", None
        if device.platform in ("gpu", "cuda", "rocm"):
            return "gpu", capability(getattr(device, "compute_capability", None))
        return None


BACKEND = JAX()
