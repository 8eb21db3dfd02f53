import numpy as np
import pytest
from keras import ops

from kerasviz import updates

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
