"""The TensorFlow step's own GELU and attention kernels (`engine/backends/tf_kernels.py`): the same values and
input gradients as Keras's, in the compiled steps only, with Keras's functions back afterwards."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from transformer_models import tiny_vit

import kerasviz as kv
from kerasviz.engine import backend
from kerasviz.engine.backends import tf_kernels

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the kernels replace those of Keras's TensorFlow backend")


@pytest.fixture(scope="module")
def vit():
    return tiny_vit(seed=3)


def _keras_nn():
    from keras.src.backend.tensorflow import nn

    return nn


def _input_gradient(model, x, fast: bool):
    """`(outputs, input gradient of a fixed weighting of them, op types of the traced graph)`."""
    weights = tf.constant(np.random.default_rng(1).standard_normal(model.outputs[0].shape[1:]), "float32")

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(x, training=False)
            out = tf.cast(out[0] if isinstance(out, list) else out, "float32")
            total = tf.reduce_sum(out * weights)
        return out, tape.gradient(total, x)

    compiled = tf.function(grad, autograph=False)
    x = tf.constant(x)
    if fast:
        with tf_kernels.kernels():
            concrete = compiled.get_concrete_function(x)
    else:
        concrete = compiled.get_concrete_function(x)
    out, g = concrete(x)
    return out.numpy(), g.numpy(), {op.type for op in concrete.graph.get_operations()}


def test_a_float32_vit_has_kerass_outputs_and_input_gradient_through_the_fast_kernels(vit):
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    out, g, ops = _input_gradient(vit, x, fast=False)
    out_fast, g_fast, ops_fast = _input_gradient(vit, x, fast=True)
    assert {"Einsum", "Erfc"} <= ops  # Keras's kernels: einsum attention, tf.nn.gelu's erfc
    assert not {"Einsum", "Erfc"} & ops_fast  # batched matmuls, and GELU inside its XLA function
    np.testing.assert_allclose(out_fast, out, atol=1e-5 * np.abs(out).max())
    np.testing.assert_allclose(g_fast, g, atol=1e-5 * np.abs(g).max())


def test_a_bfloat16_vit_computes_the_same_bits_with_keras_gelu_kept(vit):
    model = kv.nets.bfloat16_extractor(vit)
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    out, g, _ = _input_gradient(model, x, fast=False)
    out_fast, g_fast, ops_fast = _input_gradient(model, x, fast=True)
    assert "Einsum" not in ops_fast and "Erfc" in ops_fast  # the attention's matmuls; Keras's bfloat16 GELU
    np.testing.assert_array_equal(out_fast, out)
    np.testing.assert_array_equal(g_fast, g)


def test_the_kernels_hand_what_they_do_not_cover_to_keras():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 5, 2, 4)).astype("float32") for _ in range(3))
    mask = rng.uniform(size=(2, 2, 5, 5)) > 0.3
    x64 = np.linspace(-3, 3, 9)
    with tf_kernels.kernels():
        masked = keras.ops.dot_product_attention(q, k, v, mask=mask).numpy()
        causal = keras.ops.dot_product_attention(q, k, v, is_causal=True).numpy()
        plain = keras.ops.dot_product_attention(q, k, v, scale=0.3).numpy()
        gelu64 = keras.ops.gelu(x64, approximate=False)
        gelu16 = keras.ops.gelu(x64.astype("bfloat16")).numpy()
        tanh_gelu = keras.ops.gelu(x64.astype("float32")).numpy()
    np.testing.assert_array_equal(masked, keras.ops.dot_product_attention(q, k, v, mask=mask).numpy())
    np.testing.assert_array_equal(causal, keras.ops.dot_product_attention(q, k, v, is_causal=True).numpy())
    np.testing.assert_allclose(plain, keras.ops.dot_product_attention(q, k, v, scale=0.3).numpy(), atol=1e-6)
    assert keras.backend.standardize_dtype(gelu64.dtype) == "float64"
    np.testing.assert_array_equal(gelu64.numpy(), keras.ops.gelu(x64, approximate=False).numpy())
    np.testing.assert_array_equal(gelu16, keras.ops.gelu(x64.astype("bfloat16")).numpy())
    np.testing.assert_allclose(tanh_gelu, keras.ops.gelu(x64.astype("float32")).numpy(), atol=1e-6)


def test_kerasviz_steps_trace_with_the_kernels_and_leave_kerass_functions_in_place(vit):
    keras_gelu, keras_attention = _keras_nn().gelu, _keras_nn().dot_product_attention

    def score_fn(values, u, filters):
        return keras.ops.sum(vit(values[0]), axis=-1)

    scores = backend.compile_scores(score_fn, model=vit)
    x = [backend.to_tensor(np.full((2, 32, 32, 3), 0.5, "float32"))]
    filters = backend.to_tensor(np.zeros(2, "int32"))
    ops = {op.type for op in scores.get_concrete_function(x, None, filters).graph.get_operations()}
    assert not {"Einsum", "Erfc"} & ops
    assert _keras_nn().gelu is keras_gelu and _keras_nn().dot_product_attention is keras_attention
    np.testing.assert_allclose(backend.to_numpy(scores(x, None, filters)),
                               keras.ops.sum(vit(x[0]), axis=-1).numpy(), rtol=1e-5, atol=1e-5)


def test_a_keras_laid_out_otherwise_keeps_its_own_kernels(vit, monkeypatch):
    """Where Keras's private backend module is not where the kernels look, steps trace with Keras's own."""
    keras_gelu = _keras_nn().gelu
    monkeypatch.setattr(tf_kernels, "_keras_nn", lambda: None)
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    with tf_kernels.kernels():
        swapped = _keras_nn().gelu is not keras_gelu
        out = vit(x, training=False)
    assert not swapped
    np.testing.assert_allclose(np.asarray(out), np.asarray(vit(x, training=False)), atol=1e-6)
