"""MACO (#30): the phase-only parameterization, the spectrum, the crops-with-noise transform, the transparency
map, the preset and the cache keys."""

import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz.engine import params, presets, render, transforms


def draw(param, values):
    return keras.ops.convert_to_numpy(param.draw([keras.ops.convert_to_tensor(v) for v in values]))


def to_space(images):
    """Images -> the space Maco draws from: logit, colors decorrelated, `(N, C, H, W)`."""
    x = np.log(images / (1 - images)) @ np.linalg.inv(params.COLOR_CORRELATION.T)
    return np.transpose(x, (0, 3, 1, 2))


@pytest.mark.engine
def test_maco_with_crops_ascends_and_accumulates_alpha(grating_model):
    # one compiled step and one scoring function (block_steps=1): cheap on every backend
    p = kv.plan(grating_model, "gabor", [0, 1], preset="fast", size=24, steps=8, param="maco", update="nadam",
                lr=0.5, transforms=[transforms.crops(3, (0.6, 1.0), output=20), transforms.jitter(1)],
                revive_steps=0, block_steps=1)
    rendered = p.renderer.run([0, 1], [0, 1], p.schedule)
    assert rendered.history.shape == (8, 2) and rendered.images.shape == (2, 24, 24, 3)
    assert np.all(rendered.history[-1] > rendered.history[0]), rendered.history
    alpha = rendered.alpha
    assert alpha.shape == (2, 24, 24) and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() == 1.0 and 0 < alpha.mean() < 1
    # the grating's 15 px kernel: the centre pixels feed every position and every crop, the corners few
    assert alpha[:, 10:14, 10:14].mean() > alpha[:, :2, :2].mean()


def test_maco_ascends_in_bfloat16_over_octaves(grating_model):
    p = kv.plan(grating_model, "gabor", [0, 1], preset="fast", size=24, steps=(4, 4), param="maco",
                update="nadam", lr=0.5, transforms=(), revive_steps=0, precision="bfloat16", block_steps=1)
    rendered = p.renderer.run([0, 1], [0, 1], p.schedule)
    assert np.all(rendered.history[-1] > rendered.history[0]) and rendered.alpha.shape == (2, 24, 24)
    fourier = kv.plan(grating_model, "gabor", [0], preset="fast", size=24, steps=2, revive_steps=0)
    assert fourier.renderer.run([0], [0], fourier.schedule).alpha is None


def test_magnitude_is_the_spectrum_and_encode_is_exact():
    spectrum = params.power_law((16, 18), 3)
    plain = params.maco(spectrum=spectrum, standardize=False)
    images = draw(plain, plain.init(2, (16, 18), 3, seed=0))
    mag = np.abs(np.fft.fft2(to_space(images.astype("float64"))))
    np.testing.assert_allclose(mag[:, :, 1:, 1:], np.broadcast_to(spectrum[:, 1:, 1:], mag[:, :, 1:, 1:].shape),
                               rtol=2e-3, atol=2e-3)
    photos = np.random.default_rng(0).uniform(0.1, 0.9, size=(2, 15, 20, 3)).astype("float32")
    own = params.maco(standardize=False, magnitude="image")
    np.testing.assert_allclose(draw(own, own.encode(photos)), photos, atol=1e-5)
    standardized = draw(params.maco(), params.maco().init(1, (16, 16), 3, seed=0))
    assert 0 < standardized.min() and standardized.max() < 1 and standardized.std() > 0.05


def test_spectrum_recovers_a_known_power_law():
    rng = np.random.default_rng(0)
    size, slope = 64, 1.5
    f = np.maximum(np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None] ** 2), 1 / size)
    for channels in (1, 3):
        noise = np.fft.fft2(rng.normal(size=(channels, size, size)))  # a real image's (Hermitian) phase
        spec = f**-slope * np.exp(1j * np.angle(noise))
        x = np.real(np.fft.ifft2(spec))
        x = np.transpose(x / x.std() * 0.8, (1, 2, 0))
        x = x @ params.COLOR_CORRELATION.T if channels == 3 else x
        images = (1 / (1 + np.exp(-x)))[None].astype("float32")
        magnitude = kv.spectrum(images, size=size)
        assert magnitude.shape == (channels, size, size)
        band = (f > 2 / size) & (f < 0.3)
        fitted = -np.polyfit(np.log(f[band]), np.log(magnitude.mean(axis=0)[band]), 1)[0]
        assert abs(fitted - slope) < 0.02, fitted
        assert kv.spectrum(images, size=size) is magnitude  # cached per content and size
        assert kv.spectrum(images, size=32).shape == (channels, 32, 32)


def test_default_spectrum_is_natural_and_resizes():
    magnitude = params.power_law(128)
    f = np.maximum(np.sqrt(np.fft.fftfreq(128)[:, None] ** 2 + np.fft.fftfreq(128)[None] ** 2), 1 / 128)
    band = (f > 0.02) & (f < 0.4)
    fitted = -np.polyfit(np.log(f[band]), np.log(magnitude[0][band]), 1)[0]
    assert abs(fitted - params.natural_spectrum()["slope"]) < 1e-3
    small = params.resize_spectrum(magnitude, 64)
    np.testing.assert_allclose(small[0][8, 8] / small[0][4, 4], magnitude[0][16, 16] / magnitude[0][8, 8], rtol=0.02)


def test_crops_cut_each_image_k_times_image_major():
    t = transforms.crops(2, (1.0, 1.0), output=1.0, noise=0.0)  # the whole canvas, twice
    images = np.stack([np.full((8, 8, 3), v, "float32") for v in (0.2, 0.7)])
    out = keras.ops.convert_to_numpy(t(images, np.full((2, t.n_random), 0.5, "float32")))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.2, 0.2, 0.7, 0.7], atol=1e-5)
    both = transforms.compose([t, transforms.jitter(2)])
    assert both.copies == 2 and both.n_random == t.n_random + 2
    noisy = transforms.crops(2, (0.5, 0.5), output=4, noise=0.1)
    u = np.random.default_rng(0).uniform(size=(2, noisy.n_random)).astype("float32")
    a, b = (keras.ops.convert_to_numpy(noisy(images, u)) for _ in range(2))
    np.testing.assert_array_equal(a, b)  # the same draws, the same crops and noise
    assert a.shape == (4, 4, 4, 3) and 0.05 < float((a - np.repeat([0.2, 0.7], 2)[:, None, None, None]).std()) < 0.2


@pytest.mark.parametrize("make, message", [
    (lambda: transforms.crops(0), "n must be an int >= 1"),
    (lambda: transforms.crops(4, (0.5, 1.5)), "0 < low <= high <= 1"),
    (lambda: transforms.crops(4, output=1.5), "a float in (0, 1]"),
    (lambda: params.maco(magnitude="photo"), "'spectrum' or 'image'"),
    (lambda: params.maco(spectrum=np.ones((8, 8))), "(channels, height, width)"),
    (lambda: params.maco(spectrum=np.ones((3, 8, 8))).init(1, (8, 8), 1), "kv.spectrum(images)"),
])
def test_bad_arguments_say_what_was_expected(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_cache_keys_keep_parameterizations_apart(tiny_cnn):
    net = kv.as_network(tiny_cnn)

    def key(**overrides):
        s = presets.resolve_settings("fast", overrides)
        return kv.atlas.cache_key(kv.atlas.cache_settings(net, "conv2", s, seed=0))

    photo = np.random.default_rng(1).uniform(size=(16, 16, 3)).astype("float32")
    keys = [key(), key(param="maco"), key(param="pixel"), key(param=params.maco(spectrum=kv.spectrum(photo, size=16))),
            key(param=params.maco(standardize=False))]
    assert len(set(keys)) == len(keys)
    assert key(param="maco") == key(param=params.maco())  # the same param made twice: the same key


def test_cache_stores_the_alpha_map_beside_the_picture(tmp_path):
    cache = kv.atlas.FilterCache(str(tmp_path / "c"), {})
    alpha = np.linspace(0, 1, 16, dtype="float32").reshape(4, 4)
    result = kv.Result(images=np.zeros((2, 4, 4, 3), "uint8"), scores=np.ones(2, "float32"),
                       history=np.zeros((1, 2)), filters=[3, 5], layer="conv2", raw=np.zeros((2, 4, 4, 3)),
                       settings={}, alpha=np.stack([alpha, 1 - alpha]))
    assert cache.store_result(result, 1.0) == [3, 5]
    maps = cache.load_alphas([3, 5, 7])
    assert sorted(maps) == [3, 5]
    np.testing.assert_allclose(maps[3], alpha, atol=1 / 255)
    cache.store(7, np.zeros((4, 4, 3), "uint8"), 1.0, 0.1)  # no map: none loaded
    assert 7 not in cache.load_alphas([7]) and 7 in cache.load_many([7], 3)


def test_maco_preset_and_cli_param():
    s = presets.get("maco")
    assert isinstance(s.param, params.Maco) and s.transforms[0].copies == 4 and s.update == "nadam"
    assert presets.resolve_settings(None, {"param": "maco"}).param == params.maco()
    from kerasviz.cli.main import build_parser

    args = build_parser().parse_args(["gallery", "VGG16", "--param", "maco", "--preset", "maco"])
    assert kv.cli.common.run_options(args)["param"] == "maco"
    assert render.alpha_map(np.zeros((1, 2, 2, 3))).max() == 0.0  # a map of no gradient stays 0


@pytest.mark.engine
def test_result_carries_the_transparency_map_only_where_the_preset_makes_one(grating_model):
    maco = kv.visualize_filters(grating_model, "gabor", [0, 1], preset="maco", size=24, steps=2, crop=2,
                                progress=False)
    assert maco.alpha.shape == (2, 20, 20) and maco.alpha.dtype == np.float32  # cropped as the pictures are
    assert 0.0 <= maco.alpha.min() and maco.alpha.max() <= 1.0 and maco.alpha.max() > 0
    plain = kv.visualize_filters(grating_model, "gabor", [0], preset="fast", size=24, steps=2, progress=False)
    assert plain.alpha is None
