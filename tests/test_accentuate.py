"""Feature accentuation (`kv.accentuate`): it raises the unit, stays closer to the photo than DeepDream at
equal gain, batches photos x filters, and says what is wrong with bad inputs."""

import keras
import numpy as np
import pytest
import transformer_models
from conftest import make_tiny_cnn
from PIL import Image

import kerasviz as kv
from kerasviz import cli
from kerasviz.accentuation import PhotoSpectrum, default_reg_layer

SIZE = 24  # pixels of the photos and pictures
CLASSES = 4  # gratings at 0, 45, 90 and 135 degrees


def gratings(n_per_class: int, seed: int = 0):
    """Oriented RGB gratings of `SIZE` px in class order (tests/transformer_models.py), wavelengths 4-7 px."""
    return transformer_models.gratings(n_per_class, SIZE, seed, wavelengths=(4, 7), shuffle=False)


@pytest.fixture(scope="module")
def trained():
    """Conv-ReLU-pool twice, global pooling, softmax: trained for a few seconds on gratings."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = inputs
    for i in (1, 2):
        x = keras.layers.Conv2D(8, 3, activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x_train, y_train = gratings(24)
    model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def photos():
    return gratings(1, seed=1)[0]  # one photo per class


@pytest.mark.engine
def test_the_photo_spectrum_draws_the_photo(photos):
    """The start is the photo: exactly with a wide-open gate, within the gate's 0.7% of contrast with faccent's."""
    for gate, tolerance in ((30.0, 2e-4), (5.0, 0.01)):  # 1e-4: the logit clips pixels at 0 and 1
        param = PhotoSpectrum(gate_init=gate)
        drawn = keras.ops.convert_to_numpy(param.draw([keras.ops.convert_to_tensor(v) for v in param.encode(photos)]))
        assert np.abs(drawn - photos).max() < tolerance


@pytest.mark.engine
def test_accentuation_raises_the_unit_and_batches_photos_by_filters(tiny_cnn, photos):
    a = kv.accentuate(tiny_cnn, "relu2", [1, 2], photos[:2], steps=6, size=SIZE)
    assert a.images.shape == (4, SIZE, SIZE, 3) and a.images.dtype == np.uint8
    assert a.photos.tolist() == [0, 0, 1, 1] and a.filters.tolist() == [1, 2, 1, 2]  # photo-major
    assert a.reg_layer == "conv1"
    alive = a.before > 0
    assert alive.sum() >= 2 and np.all(a.gains[alive] > 1.01)  # each unit the photo excites fires more
    assert np.all(a.distances > 0)
    assert a.alpha.shape == (4, SIZE, SIZE) and 0 <= a.alpha.min() and a.alpha.max() <= 1  # where the photo changed


def test_one_photo_and_pairs_give_the_same_pictures_as_the_full_batch(trained, photos):
    """A pair's picture depends on its photo, its filter and the seed, not on the batch it ran in."""
    full = kv.accentuate(trained, "conv3", [1, 2], photos[:2], steps=3, size=SIZE)
    one = kv.accentuate(trained, "conv3", [1, 2], photos[1], steps=3, size=SIZE)
    pairs = kv.accentuate(trained, "conv3", [2, 1], photos[:2], pairs=True, steps=3, size=SIZE)
    assert one.photos.tolist() == [0, 0] and one.filters.tolist() == [1, 2]
    assert pairs.photos.tolist() == [0, 1] and pairs.filters.tolist() == [2, 1]
    np.testing.assert_allclose(one.images, full.images[2:4], atol=2)  # batch sizes round alike, nearly
    np.testing.assert_allclose(pairs.images, full.images[[1, 2]], atol=2)


def _dream_to_gain(model, layer, f, photo, gain, reg_layer, rounds=40):
    """DeepDream of filter `f` from `photo` in rounds of 2 steps until the unit's gain reaches `gain`: the
    measures there (or at the last round)."""
    current = photo
    for r in range(rounds):
        current = kv.dream(model, kv.objectives.channel(layer, f), current, steps=2, lr=0.004, octaves=1, seed=r)
        m = kv.accentuation.measure(model, layer, [f], current[None], photo[None], reg_layer=reg_layer)
        if m["gains"][0] >= gain:
            break
    return m


def test_accentuation_stays_closer_to_the_photo_than_deepdream_at_equal_gain(trained, photos):
    """At the gain the accentuation reached, DeepDream from the same photo has moved the regularized layer's
    activations further."""
    photo = photos[0]
    f = int(np.argmax(kv.accentuation.measure(trained, "conv3", range(8), np.repeat(photo[None], 8, 0),
                                              np.repeat(photo[None], 8, 0))["before"]))
    a = kv.accentuate(trained, "conv3", f, photo, steps=24, size=SIZE)
    assert a.gains[0] > 1.05
    d = _dream_to_gain(trained, "conv3", f, photo, a.gains[0], a.reg_layer)
    assert d["gains"][0] >= a.gains[0]
    assert a.feature_distances[0] < d["feature_distances"][0]


def test_the_default_regularized_layer_is_halfway_to_the_layers_own_convolution(trained):
    tiny = make_tiny_cnn()
    assert default_reg_layer(tiny, "relu2") == "conv1"  # relu2's own convolution is conv2
    assert default_reg_layer(tiny, "conv1") is None  # the first convolution: the pixels
    assert default_reg_layer(trained, "conv3") == "conv2"
    assert default_reg_layer(trained, "conv2") == "conv1"
    assert default_reg_layer(trained, "probabilities") == "conv2"  # conv3 is its last convolution


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(filters=[0, 1], pairs=True), ValueError, "give as many filters as photos. Received 3 photos and 2 filters"),
    (dict(reg_weight=-1.0), ValueError, "reg_weight must be a number >= 0"),
    (dict(reg_layer="conv"), ValueError, "Did you mean"),
    (dict(filters=[9]), ValueError, "out of range"),
    (dict(image=[]), ValueError, "image is empty"),
    (dict(steps=0), ValueError, "steps must be a positive int"),
    (dict(preset="keras-io"), ValueError, "accentuate optimizes [0, 1] images"),
    (dict(stepz=3), TypeError, "Did you mean 'steps'"),
])
def test_bad_inputs_say_what_is_wrong(trained, photos, kwargs, error, message):
    args = dict(filters=[0], image=photos[:3], size=SIZE, steps=1)
    args.update(kwargs)
    with pytest.raises(error) as e:
        kv.accentuate(trained, "conv3", args.pop("filters"), args.pop("image"), **args)
    assert message in str(e.value)


def test_the_photo_spectrum_needs_a_photo():
    with pytest.raises(ValueError, match="starts from photos"):
        PhotoSpectrum().init(1, (8, 8))


def test_the_command_writes_the_photo_and_its_accentuations(tmp_path, capsys, trained, photos):
    model, photo, out = tmp_path / "m.keras", tmp_path / "p.png", tmp_path / "a.png"
    trained.save(model)
    Image.fromarray((photos[0] * 255).astype("uint8")).save(photo)
    code = cli.main(["accentuate", str(model), "conv3", str(photo), "--filters", "0,2", "--size", str(SIZE),
                     "--steps", "2", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as picture:
        assert picture.size == (3 * SIZE + 2 * 5, SIZE)  # the photo and 2 filters, 5 px apart
    printed = capsys.readouterr().out
    assert "filters 0, 2 of conv3 accentuated (regularized at conv2)" in printed and "filter 2: activation x" in printed
    assert cli.main(["accentuate", str(model), "conv3", str(photo), "--out", str(out)]) == 2
    assert "--filters is required" in capsys.readouterr().err
