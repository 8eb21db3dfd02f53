import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasviz.engine import params

SPECS = [params.fourier(), params.pixel(), params.pixel(init="uniform", sigmoid=False, decorrelate=False)]


def draw(spec, values):
    return np.asarray(spec.draw([keras.ops.convert_to_tensor(v) for v in values]))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: repr(s)[:30])
def test_draw_shapes_ranges_and_inverse(spec):
    values = spec.init(2, (16, 20), 3, keys=[3, 5], seed=1)
    img = draw(spec, values)
    assert img.shape == (2, 16, 20, 3)
    if getattr(spec, "sigmoid", True):
        assert 0 < img.min() and img.max() < 1
        assert abs(img.mean() - 0.5) < 0.05  # starts near gray
    np.testing.assert_allclose(draw(spec, spec.encode(img)), img, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: repr(s)[:30])
def test_seeds_repeat_per_key(spec):
    a = spec.init(2, (8, 8), 3, keys=[3, 5], seed=1)[0]
    b = spec.init(1, (8, 8), 3, keys=[5], seed=1)[0]
    c = spec.init(1, (8, 8), 3, keys=[5], seed=2)[0]
    np.testing.assert_array_equal(a[1], b[0])
    assert not np.array_equal(b, c)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: repr(s)[:30])
def test_gradients_flow_to_the_values(spec):
    v = tf.Variable(spec.init(1, (8, 8), 3, seed=0)[0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(spec.draw([v])[..., 0])
    g = tape.gradient(loss, v)
    assert g is not None and float(tf.reduce_sum(tf.abs(g))) > 0


def test_fourier_concentrates_power_at_low_frequencies():
    spec = params.fourier()
    img = draw(spec, spec.init(1, (32, 32), 3, seed=0))[0].mean(-1)
    power = np.abs(np.fft.fft2(img - img.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32)))
    assert power[(f > 0) & (f < 0.1)].mean() > 10 * power[f > 0.3].mean()


def test_decorrelation_applies_to_rgb_only():
    spec = params.pixel()
    four = draw(spec, spec.init(1, (4, 4), 4, seed=0))
    assert four.shape == (1, 4, 4, 4)


def test_get_by_name_and_errors():
    assert isinstance(params.get("Fourier"), params.Fourier)
    with pytest.raises(ValueError, match="Did you mean 'pixel'"):
        params.get("pixle")
    with pytest.raises(TypeError, match="param must be"):
        params.get(3)
    with pytest.raises(ValueError, match="init must be"):
        params.pixel(init="zeros").init(1, (4, 4))
