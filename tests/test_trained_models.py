"""Models as users build them, trained here for a few seconds on synthetic data, visualized at the first call
with the defaults: fixed input sizes, BatchNorm + separate ReLU layers, a softmax Activation head, a legacy
`.h5` file. Every filter's picture is alive, each filter's own picture excites it most, and each class image
is classified as its class."""

import keras
import numpy as np
import pytest
import transformer_models

import kerasviz as kv

CLASSES = transformer_models.CLASSES  # stripes at 0, 45, 90 and 135 degrees


def gratings(n_per_class: int, size: int, channels: int, seed: int = 0):
    """Oriented gratings (wavelength 4-7 px, random phase and, for RGB, tint) with noise; shuffled, with labels."""
    return transformer_models.gratings(n_per_class, size, seed, wavelengths=(4, 7), channels=channels)


def classifier(size: int, channels: int, *, flatten: bool) -> keras.Model:
    """Conv -> BatchNorm -> ReLU layers (twice), then a Flatten or a global pooling, Dense logits and a
    softmax Activation layer: the shape of a student's model, with a fixed input size."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, channels))
    x = inputs
    for i, filters in enumerate((8, 8), start=1):
        x = keras.layers.Conv2D(filters, 3, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.8, name=f"bn{i}")(x)  # settles in a short training
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x) if flatten else keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(CLASSES, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"gratings_{size}px")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module", params=[(28, 1, True), (32, 3, False)], ids=["28px-gray-flatten", "32px-rgb-gap"])
def trained(request):
    size, channels, flatten = request.param
    x, y = gratings(40, size, channels)
    model = classifier(size, channels, flatten=flatten)
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    accuracy = model.evaluate(x, y, verbose=0)[1]
    assert accuracy > 0.9, f"the test model did not learn its gratings (accuracy {accuracy:.2f})"
    return model


def _channel_means(model, layer, images):
    """Each channel's mean over each picture, as the model's own layers compute it (on a flexible input: the
    pictures are 128 px)."""
    acts = np.asarray(kv.feature_extractor(model, [layer], pre_activation=False)(images))
    return acts.mean(axis=(1, 2))  # [picture, channel]


def test_filters_of_a_fixed_size_model_come_alive_at_the_first_call(trained, capsys):
    result = kv.visualize_filters(trained, "relu2", progress=False)  # the defaults: quality, 128 px, octaves
    assert "flexible input" in capsys.readouterr().err  # the one-line note says what was adapted
    assert result.images.shape == (8, 128, 128, trained.inputs[0].shape[-1])
    assert np.all(result.scores > 0)  # every filter alive
    means = _channel_means(trained, "relu2", result.images.astype("float32") / 255)
    assert list(means.argmax(axis=0)) == list(range(8))  # each filter's own picture excites it most


def test_class_images_of_a_softmax_head_are_classified_as_their_class(trained, capsys):
    result = kv.visualize_filters(trained, "probabilities", progress=False)  # the logits, read through the softmax
    note = capsys.readouterr().err
    size = trained.inputs[0].shape[1]
    if any(isinstance(layer, keras.layers.Flatten) for layer in trained.layers):
        assert result.images.shape[1] == size and f"need that size: the images are {size} px" in note
    else:  # global pooling: the classifier takes any size
        assert result.images.shape[1] == 128 and "flexible input" in note
    # classified by the model's own layers, at the pictures' size
    probabilities = kv.feature_extractor(trained, ["probabilities"], pre_activation=False)
    predicted = np.asarray(probabilities(result.images.astype("float32") / 255)).argmax(axis=1)
    assert list(predicted) == list(range(CLASSES))


def test_the_extractor_reads_a_softmax_layers_logits(trained):
    x, _ = gratings(2, trained.inputs[0].shape[1], trained.inputs[0].shape[-1], seed=1)
    logits = keras.Model(trained.inputs, trained.get_layer("logits").output).predict(x, verbose=0)
    read = np.asarray(kv.feature_extractor(trained, ["probabilities"])(x))
    np.testing.assert_allclose(read, logits, rtol=1e-5, atol=1e-5)


def test_a_legacy_h5_file_visualizes_with_the_defaults(trained, tmp_path):
    path = str(tmp_path / "model.h5")
    trained.save(path)
    result = kv.visualize_filters(path, "relu1", [0, 1], progress=False)
    assert result.settings["model"] == trained.name and np.all(result.scores > 0)


def test_an_explicit_size_that_the_layers_cannot_take_is_explained():
    model = classifier(28, 1, flatten=True)  # a Flatten before the logits: only 28x28 goes through
    with pytest.raises(ValueError, match=r"takes only 28x28 inputs .* need that size.*use size=28"):
        kv.visualize_filters(model, "logits", [0], size=64, progress=False)
    assert kv.visualize_filters(model, "relu2", [0], size=64, steps=2, progress=False).images.shape[1] == 64
