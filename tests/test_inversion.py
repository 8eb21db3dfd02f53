"""Images optimized from a photo: caricatures (activations matched by cosine similarity) and DeepDream."""

import keras
import numpy as np
import pytest
from conftest import angle_difference, dominant_orientation, make_grating_model

import kerasviz as kv
from kerasviz import analysis, images, inversion, nets
from kerasviz.engine import objectives, transforms

# the module by its full name: `kv.caricature` may be the function once the package exports it
from kerasviz.inversion import caricature, match_objective

SIZE = 48
# fast's jitters (8 + 4 px) are sized for 96 px pictures; a 48 px caricature matches a spatial map, so 4 px
FAST = dict(preset="fast", size=SIZE, steps=12, transforms=[transforms.jitter(4)])


def grating(angle_deg: float, size: int = SIZE, wavelength: float = 7.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    t = np.deg2rad(angle_deg)
    wave = np.cos(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / wavelength)
    return np.repeat((0.5 + 0.4 * wave)[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def gratings():
    return make_grating_model()


def test_caricature_from_noise_raises_the_cosine_and_keeps_the_orientation(gratings):
    photo = grating(45.0)
    result = caricature(gratings, "gabor", photo, seed=1, **FAST)
    assert result.similarity_before < 0.3
    assert result.similarity_after > result.similarity_before + 0.3
    assert result.per_layer_after == {"gabor": pytest.approx(result.similarity_after)}
    assert result.image.shape == (SIZE, SIZE, 3) and result.image.dtype == np.uint8
    assert angle_difference(dominant_orientation(result.image / 255.0), 45.0) < 15.0
    # the objective's own final score (no transforms) is the similarity reported; in bfloat16 (the default
    # "auto" on a CPU with bf16 units) the score is computed by the bf16 model: within its 1% rounding
    tol = 1e-4 if result.result.settings["precision"] == "float32" else 0.01
    assert result.result.scores[0] == pytest.approx(result.similarity_after, abs=tol)


def test_from_image_starts_at_the_image(gratings):
    photo = grating(90.0)
    result = caricature(gratings, ["gabor"], photo, from_image=True, seed=0, **FAST)
    assert result.similarity_before == pytest.approx(1.0, abs=1e-3)
    assert result.similarity_after > 0.8
    np.testing.assert_allclose(result.original, photo, atol=1e-6)


def test_match_objective_scores_cosine_and_tells_targets_apart():
    target = np.arange(12, dtype="float32").reshape(1, 2, 2, 3)
    acts = np.concatenate([target, 2 * target, -target])  # same direction, scaled, opposite
    obj = match_objective({"layer": target})
    scores = np.asarray(obj(objectives.Context({"layer": acts}, None, None)))
    np.testing.assert_allclose(scores, [1.0, 1.0, -1.0], atol=1e-5)
    other = match_objective({"layer": target + 1})
    assert obj.key != other.key  # distinct compiled-step cache entries
    pushed = match_objective({"layer": target}, exaggerate=0.5)
    scores = np.asarray(pushed(objectives.Context({"layer": acts}, None, None)))
    np.testing.assert_allclose(scores, [1.5, 2.0, -1.5], atol=1e-5)


def test_target_activations_are_resized_to_smaller_maps():
    target = np.ones((1, 8, 8, 2), "float32")
    obj = match_objective({"layer": target})
    scores = np.asarray(obj(objectives.Context({"layer": np.ones((2, 4, 4, 2), "float32")}, None, None)))
    np.testing.assert_allclose(scores, [1.0, 1.0], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(layers="gabr"), "Layer 'gabr' not found.*gabor"),
        (dict(layers=[]), "layers is empty"),
        (dict(image="/no/such/image.png"), "No image file at '/no/such/image.png'"),
        (dict(preset="keras-io"), "choose a preset without input_space"),
        (dict(steps=0), "steps must be a positive int"),
    ],
)
def test_errors_name_the_problem(gratings, kwargs, error):
    args = dict(model=gratings, layers="gabor", image=grating(0.0), preset="fast", size=SIZE, steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=error):
        caricature(**args)


# ------------------------------------------------------------------------------------------ DeepDream


def dream_score(net, layer, image):
    act = analysis.activations(net, layer, image)[layer]
    return float(np.mean(np.square(act)))


def test_dream_starts_from_the_photo_and_raises_the_layer(hed_vgg16, cat):
    photo = cat[:30, :40]
    out = inversion.dream(hed_vgg16, "block2_conv2", photo, steps=4, octaves=2, seed=0)
    assert out.shape == photo.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    change = np.abs(out - photo).mean()
    assert 0.005 < change < 0.25  # changed, yet still the photo
    assert dream_score(hed_vgg16, "block2_conv2", out) > 1.5 * dream_score(hed_vgg16, "block2_conv2", photo)
    again = inversion.dream(hed_vgg16, "block2_conv2", photo, steps=4, octaves=2, seed=0)
    np.testing.assert_allclose(out, again, atol=1e-5)  # same seed, same dream


def test_dream_works_at_a_smaller_size_and_returns_the_input_size(hed_vgg16, cat):
    out = inversion.dream(hed_vgg16, {"block1_conv2": 1.0, "block2_conv1": 0.5}, cat, steps=2, octaves=1,
                          size=24)
    assert out.shape == cat.shape


def test_dream_objective_accepts_names_lists_dicts_and_objectives():
    assert inversion.dream_objective("block4_conv3").description == "deepdream('block4_conv3')"
    mixed = inversion.dream_objective({"block3_conv3": 1.0, "block4_conv3": 0.5})
    assert set(mixed.layers) == {"block3_conv3", "block4_conv3"}
    assert "0.5" in mixed.description
    assert set(inversion.dream_objective(["a", "b"]).layers) == {"a", "b"}
    channel = kv.objectives.channel("block4_conv3", 3)
    assert inversion.dream_objective(channel) is channel
    with pytest.raises(TypeError, match=r"layer_or_objective must be a layer name"):
        inversion.dream_objective(3)


@pytest.mark.parametrize(
    "layer, kwargs, message",
    [
        ("block2_conv2", dict(octaves=0), r"octaves must be a positive int. Received: octaves=0"),
        ("block2_conv2", dict(steps=0), r"steps must be a positive int"),
        ("block2_conv2", dict(octave_scale=1.0), r"octave_scale must be > 1"),
        ("block2_conv2", dict(size=4), r"size must be an int >= 8"),
        ("block5_conv", {}, r"Layer 'block5_conv' not found in VGG16. Did you mean"),
        ("block5_conv3", dict(octaves=3), r"too small for layer 'block5_conv3'"),
    ],
)
def test_dream_rejects_bad_settings(hed_vgg16, layer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        inversion.dream(hed_vgg16, layer, np.full((16, 16, 3), 0.5, "float32"), **kwargs)


def _fixed_size_model(head: bool = False):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="c")(inputs)
    if head:
        x = keras.layers.Dense(3, name="d")(keras.layers.Flatten()(x))
    return keras.Model(inputs, x)


def test_dream_runs_a_fixed_size_model_whose_layers_take_any_size(hopper):
    """A model built for 32x32 dreams a 64x48 photo: its conv layer runs on a flexible copy."""
    photo = images.resize(np.asarray(hopper, "float32") / 255.0, (64, 48))
    net = nets.as_network(_fixed_size_model(), preprocess=None, input_range=(0, 1))
    out = inversion.dream(net, "c", photo, steps=3, octaves=2, seed=0, jitter=0)
    assert out.shape == (64, 48, 3)
    assert dream_score(net, "c", out) > dream_score(net, "c", photo)


def test_dream_refuses_layers_that_need_the_fixed_size(hopper):
    with pytest.raises(ValueError, match=r"dream needs layers that take any image size; .* only 32x32 .* 'd'"):
        inversion.dream(_fixed_size_model(head=True), "d", hopper)
