import numpy as np
import pytest
from keras import ops

from kerasviz.engine import backend, updates

pytestmark = pytest.mark.engine


def t(x):
    return ops.convert_to_tensor(np.asarray(x, "float32"))


def test_l2_normalizes_each_image_on_its_own():
    g = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    g[1] *= 100
    (v,), _ = updates.L2().apply([t(np.zeros_like(g))], [t(g)], [], t(2.0), t(0))
    norms = np.linalg.norm(np.asarray(v).reshape(2, -1), axis=1)
    np.testing.assert_allclose(norms, [2.0, 2.0], rtol=1e-5)


def test_rms_normalizes_each_image_on_its_own():
    g = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    g[0] *= 0.01
    (v,), _ = updates.RMS().apply([t(np.zeros_like(g))], [t(g)], [], t(1.0), t(0))
    rms = np.sqrt((np.asarray(v).reshape(2, -1) ** 2).mean(axis=1))
    np.testing.assert_allclose(rms, [1.0, 1.0], rtol=1e-2)


def test_adam_ascends_a_concave_function():
    rule = updates.Adam()
    x = [t(np.zeros((1, 3)))]
    state = rule.init(x)
    target = np.array([[1.0, -2.0, 0.5]], "float32")
    for step in range(300):
        grad = [t(2 * (target - np.asarray(x[0])))]  # gradient of -(x - target)^2
        x, state = rule.apply(x, grad, state, t(0.05), t(step))
    np.testing.assert_allclose(np.asarray(x[0]), target, atol=0.05)


def test_get():
    assert isinstance(updates.get("ADAM"), updates.Adam)
    with pytest.raises(ValueError, match="Did you mean 'rms'"):
        updates.get("rmss")
    with pytest.raises(TypeError, match="update must be"):
        updates.get(1.0)


def _ascend(rule, steps=60, lr=0.05):
    x = [t(np.zeros((2, 3)))]
    state = rule.init(x)
    target = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1]], "float32")
    path = []
    for step in range(steps):
        grad = [t(2 * (target - np.asarray(x[0])))]
        x, state = rule.apply(x, grad, state, t(lr), t(step))
        path.append(backend.to_numpy(x[0]).copy())
    return np.stack(path)


def test_a_keras_optimizer_is_an_update_rule_that_ascends_like_adam():
    import keras

    given = keras.optimizers.Adam(0.05, epsilon=1e-8)
    rule = updates.get(given)
    assert isinstance(rule, updates.KerasOptimizer) and rule.name == "keras.Adam"
    np.testing.assert_allclose(_ascend(rule, lr=123.0), _ascend(updates.Adam()), atol=1e-4)  # its own lr
    assert not given.built  # the optimizer given is copied, never built or stepped


def test_a_keras_optimizer_restarts_at_every_init():
    import keras

    rule = updates.get(keras.optimizers.SGD(0.05, momentum=0.9))
    first, second = _ascend(rule, steps=20), _ascend(rule, steps=20)
    np.testing.assert_allclose(second, first, atol=1e-6)  # momentum and iterations were reset
    assert np.abs(first[-1] - first[0]).max() > 0.5  # and it moved toward the target


def test_keras_optimizers_compare_by_config():
    import keras

    a = updates.get(keras.optimizers.RMSprop(0.01))
    assert a == updates.get(keras.optimizers.RMSprop(0.01))
    assert a != updates.get(keras.optimizers.RMSprop(0.02))
    assert "learning_rate=0.01" in repr(a)
