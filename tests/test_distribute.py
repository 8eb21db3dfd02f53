import numpy as np
import pytest

from kerasviz.engine import backend, distribute


def test_the_local_executor_is_the_identity():
    ex = distribute.executor(None)
    assert ex.replicas == 1
    x = np.arange(6, dtype="float32").reshape(3, 2)
    np.testing.assert_array_equal(ex.get(ex.call(lambda a, k: a * k, ex.put(x), 2.0)), 2 * x)


def test_pad_repeats_the_last_item_to_a_multiple_of_the_replicas():
    assert distribute.pad([3, 5, 9], 2) == [3, 5, 9, 9]
    assert distribute.pad([3, 5], 2) == [3, 5]
    assert distribute.pad([1, 2, 3, 4, 5], 4) == [1, 2, 3, 4, 5, 5, 5, 5]


def test_a_strategy_splits_the_batch_and_gathers_it_back():
    import tensorflow as tf

    ex = distribute.executor(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert isinstance(ex, distribute.Replicated) and ex.replicas == 1
    x = np.arange(8, dtype="float32").reshape(4, 2)
    out = ex.call(tf.function(lambda a, k: a + k), ex.put(x), ex.put(np.float32(1.0)))
    np.testing.assert_array_equal(ex.get(out), x + 1)


def test_bad_distribute_values_are_explained(monkeypatch):
    with pytest.raises(TypeError, match="distribute must be a tf.distribute.Strategy"):
        distribute.executor("gpu")
    monkeypatch.setattr(backend, "name", lambda: "jax")
    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        distribute.executor(object())
