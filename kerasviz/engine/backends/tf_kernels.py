"""Faster TensorFlow kernels for two ops of a transformer's step on a CPU, used while kerasviz traces its own steps.

A ViT-B/16 step (forward and input gradient, TensorFlow on a CPU) spends much of its time outside the matrix
products (`benchmarks/op_profile.py --vit`), in two places that Keras's TensorFlow backend writes as chains of
separate kernels:

- GELU (`keras.ops.gelu`, every MLP block): `tf.nn.gelu` is a chain of element-wise kernels, forward and
  gradient, each a pass over memory. `gelu` here runs the same formula as one XLA-compiled function
  (`jit_compile=True`: XLA fuses the chain and its gradient), in float32 only. In bfloat16 Keras's GELU stays:
  its `Erfc` is slowest there (several times its float32 time), but a fused one rounds once where
  TensorFlow rounds after every op, and that changed a trained test ViT's bfloat16 pictures (one unit in 16 no
  longer its own picture's best), so the bfloat16 step computes what it computed before. (Its `Erfc` and the
  gradient's `Exp` alone, computed in float32 and rounded, give TensorFlow's bfloat16 bits for all 65536
  values and a GELU 2.5x as fast, but grappler's arithmetic optimizer then orders the gradient's products
  differently around the custom gradient: other bits again);
- dot-product attention (`keras.ops.dot_product_attention`, which `MultiHeadAttention` calls): `tf.einsum`
  with the heads between the tokens and the features. `dot_product_attention` here moves the heads next to
  the batch once and multiplies with `tf.matmul` (one batched product over batch x heads), the scores'
  scale and softmax as Keras computes them (float32 at least).

`kernels()` puts both in place of Keras's for the duration of a `with` block; `backends.tensorflow` opens it
around the Python function of each step it compiles, which runs only while `tf.function` traces, so the
compiled step keeps the faster kernels and the user's own calls, eager or compiled, do not see them (save a
call from another thread during the moment a step traces). Each keeps Keras's own signature and hands any
case it does not cover (a mask, a bias, a causal or soft-capped attention, grouped heads, float64) to Keras's
function; where a Keras lays out its TensorFlow backend otherwise, nothing is swapped. The values are those of
Keras's kernels up to float32 rounding (XLA's GELU); the attention gave the same bits in both precisions.
Measured in one process, the two kinds of kernel in turn (ViT-B/16, 12 blocks, batch 16, 224 px, forward and
input gradient; two runs of three pairs, the machine loaded 3-6 on 2 cores): float32 4-5% less time (pairs
0.933-0.969), bfloat16 1-4% (the attention alone; pairs 0.948-0.992); `benchmarks/utilization.py --vit` and
`op_profile.py --vit` measure them.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading

import keras

from kerasviz.engine.deferred import module

tf = module("tensorflow")

_FAST_DTYPES = ("float32", "bfloat16", "float16")  # attention
_lock = threading.RLock()
_open: list = []  # Keras's own (gelu, dot_product_attention), once per open `kernels()` block


def _keras_nn():
    """Keras's TensorFlow `nn` module: what `keras.ops.gelu` and `keras.ops.dot_product_attention` call; None
    where a Keras lays out its backend otherwise (its private path): then Keras's kernels run."""
    try:
        from keras.src.backend.tensorflow import nn
    except ImportError:
        return None
    return nn if all(callable(getattr(nn, name, None)) for name in ("gelu", "dot_product_attention")) else None


@functools.cache
def _gelu_xla():
    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)  # XLA compiles each shape it runs
    def gelu_float32(x, approximate):
        return tf.nn.gelu(x, approximate=approximate)

    return gelu_float32


def gelu(x, approximate=True, *, keras_gelu=None):
    """GELU as `keras.ops.gelu` computes it, as one XLA-compiled function (forward and gradient), for float32.

    Args:
        x: a tensor.
        approximate: the tanh approximation (True) or the exact erf form (False), as for `keras.ops.gelu`.
        keras_gelu: the function to hand other dtypes to (bfloat16, float16, float64: see the module's text).
            Defaults to Keras's.

    Returns:
        A tensor of `x`'s dtype and shape.

    Example:
    >>> from kerasviz.engine.backends import tf_kernels
    >>> x = np.linspace(-3, 3, 7).astype("float32")
    >>> bool(np.allclose(tf_kernels.gelu(x, False), keras.ops.gelu(x, approximate=False), atol=1e-6))
    True
    """
    x = tf.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) != "float32":
        return (keras_gelu or _keras_nn().gelu)(x, approximate)
    return _gelu_xla()(x, bool(approximate))


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None, *, keras_attention=None, **kwargs):
    """`keras.ops.dot_product_attention` on `(batch, tokens, heads, features)` tensors, by batched `tf.matmul`.

    Args:
        query, key, value: 4-D tensors `(batch, tokens, heads, features)`.
        bias, mask, scale, is_causal, flash_attention, attn_logits_soft_cap: as for
            `keras.ops.dot_product_attention`; all but `scale` are handed to Keras's function.
        keras_attention: the function for the cases not covered here. Defaults to Keras's.
        **kwargs: arguments of a later Keras, handed to its function.

    Returns:
        A tensor `(batch, tokens, heads, features)` of the inputs' common dtype.
    """
    query, key, value = (tf.convert_to_tensor(t) for t in (query, key, value))
    dtype = keras.backend.result_type(query.dtype, key.dtype, value.dtype)
    plain = (bias is None and mask is None and not is_causal and not flash_attention and not kwargs
             and attn_logits_soft_cap is None and dtype in _FAST_DTYPES and len(query.shape) == 4
             and query.shape[2] is not None and query.shape[2] == key.shape[2] == value.shape[2]
             and query.shape[-1] is not None)
    if not plain:
        return (keras_attention or _keras_nn().dot_product_attention)(
            query, key, value, bias=bias, mask=mask, scale=scale, is_causal=is_causal,
            flash_attention=flash_attention, attn_logits_soft_cap=attn_logits_soft_cap, **kwargs)
    q, k, v = (tf.transpose(tf.cast(t, dtype), (0, 2, 1, 3)) for t in (query, key, value))  # batch, heads, ...
    logits_dtype = keras.backend.result_type(dtype, "float32")  # as Keras: float32 at least
    scale = 1.0 / math.sqrt(int(query.shape[-1])) if scale is None else scale
    logits = tf.cast(tf.matmul(q, k, transpose_b=True), logits_dtype) * tf.cast(scale, logits_dtype)
    probs = tf.cast(tf.nn.softmax(logits, axis=-1), dtype)
    return tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))


@contextlib.contextmanager
def kernels():
    """Within the block, `keras.ops.gelu` and `keras.ops.dot_product_attention` (TensorFlow backend) run the
    kernels of this module; Keras's own are back when the block ends. Re-entrant; one thread at a time."""
    with _lock:
        nn = _keras_nn()
        if nn is None:
            yield
            return
        originals = _open[0] if _open else (nn.gelu, nn.dot_product_attention)
        _open.append(originals)
        nn.gelu = functools.partial(gelu, keras_gelu=originals[0])
        nn.dot_product_attention = functools.partial(dot_product_attention, keras_attention=originals[1])
        try:
            yield
        finally:
            _open.pop()
            if not _open:
                nn.gelu, nn.dot_product_attention = originals
