import numpy as np
import pytest
import tensorflow as tf

from kerasviz.engine import transforms as T


def ramp(h=16, w=16, batch=2):
    y, x = np.mgrid[0:h, 0:w].astype("float32")
    img = np.stack([x / (w - 1), y / (h - 1), np.full_like(x, 0.5)], -1)
    return np.repeat(img[None], batch, 0)


def u(batch, n, value=None, seed=0):
    if value is not None:
        return np.full((batch, n), value, "float32")
    return np.random.default_rng(seed).uniform(size=(batch, n)).astype("float32")


def test_jitter_shifts_by_whole_pixels():
    img = ramp()
    # u -> floor(u * 5) - 2: 0.99 gives +2, 0.0 gives -2
    out = np.asarray(T.jitter(2)(img, np.array([[0.99, 0.5], [0.0, 0.5]], "float32")))
    np.testing.assert_allclose(out[0, :, 4], img[0, :, 6], atol=1e-5)  # output x reads input x + 2
    np.testing.assert_allclose(out[1, :, 4], img[1, :, 2], atol=1e-5)


def test_a_jitter_with_a_reference_size_shifts_in_proportion_to_the_image():
    """`jitter(8, reference_size=128)` shifts a 32 px image by at most 2 px, a 128 px one by 8 (the largest draw)."""
    assert [T.jitter_pixels(8, (side, side), 128) for side in (8, 32, 47, 64, 128, 224)] == [1, 2, 3, 4, 8, 8]
    assert T.jitter_pixels(8, (32, 200), 128) == 2  # the shorter side rules
    assert T.jitter_pixels(8, (32, 32), None) == 8 and T.jitter_pixels(0, (32, 32), 128) == 0
    for side, shift in ((32, 2), (128, 8)):
        img = ramp(side, side, 1)
        out = np.asarray(T.jitter(8, reference_size=128)(img, np.array([[0.999, 0.5]], "float32")))
        np.testing.assert_allclose(out[0, :, 10], img[0, :, 10 + shift], atol=1e-5)
    assert T.jitter(8, reference_size=128) != T.jitter(8)  # another transform: another compiled step


def test_middle_draws_are_the_identity():
    img = ramp()
    for t in (T.scale(0.8, 1.2), T.rotate(20)):
        np.testing.assert_allclose(np.asarray(t(img, u(2, 1, 0.5))), img, atol=1e-5)


def test_rotate_turns_the_image():
    img = ramp(15, 15, 1)
    out = np.asarray(T.rotate(90)(img, u(1, 1, 1.0)))  # +90 degrees
    # a 90 degree turn maps the x ramp onto the y axis (interior, away from the reflect fill)
    assert np.allclose(out[0, 7, 3:12, 0], out[0, 7, 7, 0], atol=1e-4) or np.allclose(
        out[0, 3:12, 7, 0], out[0, 7, 7, 0], atol=1e-4)
    assert not np.allclose(out, img, atol=1e-3)


def test_scale_zooms_about_the_center():
    img = ramp(17, 17, 1)
    out = np.asarray(T.scale(2.0, 2.0)(img, u(1, 1, 0.3)))
    assert out[0, 8, 8, 0] == pytest.approx(img[0, 8, 8, 0], abs=1e-5)  # the center stays
    assert out[0, 8, 16, 0] == pytest.approx(img[0, 8, 12, 0], abs=1e-5)  # x=16 reads x = 8 + 8/2


def test_pad_and_blur():
    img = ramp(8, 8, 1)
    assert np.asarray(T.pad(3)(img, u(1, 0))).shape == (1, 14, 14, 3)
    const = np.asarray(T.pad(2, mode="constant")(img, u(1, 0)))
    assert const[0, 0, 0, 0] == pytest.approx(0.5)
    noise = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype("float32")
    blurred = np.asarray(T.blur(1.0)(noise, u(1, 0)))
    assert blurred.shape == noise.shape and blurred.std() < 0.6 * noise.std()
    np.testing.assert_allclose(blurred.mean(), noise.mean(), atol=0.02)
    with pytest.raises(ValueError, match="pad mode"):
        T.pad(2, mode="wrap")


def test_compose_fuses_affine_transforms_into_one_resampling():
    chain = [T.jitter(3), T.scale(0.9, 1.1), T.rotate(10), T.jitter(2)]
    composed = T.compose(chain)
    assert composed.n_random == 6
    img = ramp(24, 24, 2)
    draws = u(2, 6, seed=3)
    fused = np.asarray(composed(img, draws))
    # fusing equals applying the product of the matrices at once
    m = None
    start = 0
    for t in chain:
        mi = t.matrix(draws[:, start : start + t.n_random], 24, 24)
        m = mi if m is None else np.matmul(m, mi)
        start += t.n_random
    np.testing.assert_allclose(fused, np.asarray(T.apply_matrix(img, m)), atol=1e-5)
    assert fused.shape == img.shape


def test_transforms_pass_gradients():
    x = tf.Variable(ramp(16, 16, 2))
    composed = T.compose(T.standard_transforms() + [T.blur(0.5)])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(composed(x, u(2, composed.n_random)) ** 2)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, x)))) > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="jitter pixels"):
        T.jitter(-1)
    for bad in (0, 12.5, True, "128"):
        with pytest.raises(ValueError, match="reference_size must be a positive int"):
            T.jitter(8, reference_size=bad)
    with pytest.raises(ValueError, match="scale needs"):
        T.scale(1.2, 0.8)


def test_transforms_compare_by_what_they_do():
    assert T.jitter(4) == T.jitter(4) and hash(T.jitter(4)) == hash(T.jitter(4))
    assert T.jitter(4) != T.jitter(5)
    assert T.jitter(4) != T.jitter(4, fill_mode="constant")


@pytest.mark.engine
def test_compose_fuses_only_transforms_that_fill_alike():
    """Two constant-fill jitters composed used to be resampled once with reflect fill: no gray came in."""
    images = np.zeros((1, 16, 16, 3), "float32")
    u = np.ones((1, 4), "float32")  # the largest shift of both jitters
    shifted = T.compose([T.jitter(4, fill_mode="constant"), T.jitter(4, fill_mode="constant")])(images, u)
    assert np.max(np.asarray(shifted)) == pytest.approx(0.5)  # gray (the constant) came in at the edge
    mixed = T.compose([T.jitter(4, fill_mode="constant"), T.jitter(4)])
    step = T.jitter(4)(T.jitter(4, fill_mode="constant")(images, u[:, :2]), u[:, 2:])
    np.testing.assert_allclose(np.asarray(mixed(images, u)), np.asarray(step), atol=1e-6)
