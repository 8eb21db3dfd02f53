"""Fine-tuned models as Keras users build them (a backbone nested in their own model, preprocessing and
augmentation layers in front, a fixed input size, a new head, a second input), trained here for a few seconds
on synthetic data, saved and loaded back as `.keras` files, and visualized at the first call with the defaults:
every filter's picture is alive, each filter's own picture excites it most, each class image is classified as
its class. Bad inputs (an extra input of the wrong shape, an ambiguous layer name) get pinned errors."""

import keras
import numpy as np
import pytest
from test_trained_models import CLASSES, gratings

import kerasviz as kv
from kerasviz import cli

SIZE = 32
FILTERS = 4  # each picture run checks the first four filters
RUN = {"size": 48, "progress": False}  # the defaults (preset "quality"), smaller and shorter
TABULAR = 10


@keras.saving.register_keras_serializable(package="kerasviz_tests")
class XceptionPreprocess(keras.layers.Layer):
    """A user's layer around `keras.applications.xception.preprocess_input` (raw pixels 0..255 to [-1, 1])."""

    def call(self, x):
        return keras.applications.xception.preprocess_input(x)


def backbone(name: str = "backbone", front=()) -> keras.Model:
    """The pretrained backbone of the story, as its own Functional model: conv, BatchNorm and ReLU layers, then a
    convolution with a fused ReLU (the layer visualized)."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for layer in front:
        x = layer(x)
    x = keras.layers.Conv2D(8, 3, name="conv1")(x)
    x = keras.layers.BatchNormalization(momentum=0.8, name="bn1")(x)  # keeps the ReLUs alive in a short training
    x = keras.layers.Activation("relu", name="relu1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    return keras.Model(inputs, x, name=name)


def head(x, fused: bool = True):
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if fused:
        return keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    x = keras.layers.Dense(CLASSES, name="predictions")(x)
    return keras.layers.Activation("softmax", name="probabilities")(x)


def augment():
    return keras.Sequential([keras.layers.RandomTranslation(0.1, 0.1), keras.layers.RandomZoom(0.1)],
                            name="augmentation")


def nested_rescaling(data):
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = augment()(inputs)
    x = keras.layers.Rescaling(1 / 255, name="rescaling")(x)
    return keras.Model(inputs, head(backbone()(x), fused=False), name="nested_rescaling")


def sequential_wrapper(data):
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1), backbone(),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES, activation="softmax",
                                                                                       name="predictions")],
                            name="sequential_wrapper")


def two_inputs(data):
    image = keras.Input((SIZE, SIZE, 3), name="image")
    tabular = keras.Input((TABULAR,), name="tabular")
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(backbone()(x))
    t = keras.layers.Dense(4, activation="relu", name="tabular_dense")(tabular)
    x = keras.layers.Concatenate(name="merge")([x, t])
    out = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model([image, tabular], out, name="two_inputs")


def adapted_normalization(data):
    norm = keras.layers.Normalization(name="normalization")
    norm.adapt(data)
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, head(backbone()(norm(augment()(inputs)))), name="adapted_normalization")


def preprocess_input_layer(data):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = XceptionPreprocess(name="xception_preprocess")(inputs)
    return keras.Model(inputs, head(backbone()(x)), name="preprocess_input_layer")


def two_levels(data):
    """The backbone nested in a feature model that holds the preprocessing, nested in the classifier."""
    inner = keras.Input((SIZE, SIZE, 3))
    x = backbone(front=[keras.layers.RandomTranslation(0.1, 0.1)])(keras.layers.Rescaling(1 / 255)(inner))
    features = keras.Model(inner, x, name="features")
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, head(features(inputs)), name="two_levels")


PATTERNS = {  # row: (builder, the layer as the user names it, the class layer, what the note says was read)
    "nested-rescaling-augment-fixed": (nested_rescaling, "conv2", "probabilities", "0..255"),
    "sequential-wrapper": (sequential_wrapper, "backbone/conv2", "predictions", "0..255"),
    "two-inputs": (two_inputs, "conv2", "predictions", "0..255"),
    "adapted-normalization": (adapted_normalization, "conv2", "predictions", "raw pixels: inputs in 0..255"),
    "preprocess-input-layer": (preprocess_input_layer, "conv2", "predictions", "preprocess_input (mode 'tf')"),
    "two-levels": (two_levels, "conv2", "predictions", "'features/rescaling"),
}


def _inputs(model, pixels, tabular):
    return pixels if len(model.inputs) == 1 else [pixels, tabular]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every pattern trained once on raw pixels (0..255), saved as a .keras file: {row: (path, filters)}, with
    the first filters of the row's layer that the training images drive (a ReLU that no image drives died in
    training: no picture can be expected to drive it)."""
    x, y = gratings(40, SIZE, 3)
    pixels = x * 255.0
    tabular = np.random.default_rng(0).normal(size=(len(x), TABULAR)).astype("float32")  # carries no class
    folder = tmp_path_factory.mktemp("fine_tuned")
    paths = {}
    for seed, (row, (build, *_)) in enumerate(PATTERNS.items()):
        keras.utils.set_random_seed(seed)
        model = build(pixels)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(_inputs(model, pixels, tabular), y, epochs=12, batch_size=32, verbose=0)
        accuracy = model.evaluate(_inputs(model, pixels, tabular), y, verbose=0)[1]
        assert accuracy > 0.9, f"{row}: the test model did not learn its gratings (accuracy {accuracy:.2f})"
        path = str(folder / f"{row}.keras")
        model.save(path)
        extractor = kv.feature_extractor(model, [PATTERNS[row][1]], pre_activation=False)
        driven = np.asarray(extractor(pixels)).max(axis=(0, 1, 2)) > 0
        paths[row] = (path, [int(f) for f in np.flatnonzero(driven)[:FILTERS]])
    return paths


@pytest.mark.parametrize("row", list(PATTERNS))
def test_a_fine_tuned_model_file_visualizes_at_the_first_call(trained, row, capsys):
    _, layer, class_layer, read = PATTERNS[row]
    path, filters = trained[row]
    result = kv.visualize_filters(path, layer, filters=filters, **RUN)
    note = capsys.readouterr().err
    assert read in note and "input range read from" in note  # the one-line note says what was read
    assert "held at zeros" not in note  # the image branch needs no value for another input
    assert np.all(result.scores > 0)  # every filter alive
    net = kv.as_network(path)
    pictures = net.preprocess(result.images.astype("float32") / 255)
    means = np.asarray(kv.feature_extractor(net, [layer], pre_activation=False)(pictures)).mean(axis=(1, 2))
    own = means[:, filters].argmax(axis=0) == np.arange(len(filters))  # [picture, filter]: each filter's own wins
    assert own.mean() >= 0.75, f"{row}: filters whose own picture excites them most: {own}"

    # the class layer with the defaults: the logits (read under the softmax) of each class
    classes = kv.visualize_filters(path, class_layer, filters=range(CLASSES), **RUN)
    note = capsys.readouterr().err
    if len(net.model.inputs) > 1:  # the logits depend on the tabular input: held at zeros, and said so
        assert "'tabular' (shape (10,)) of two_inputs, held at zeros; give their values with other_inputs=" in note
    predicted = _outputs(net, class_layer, classes, logits=False).argmax(axis=1)
    assert list(predicted) == list(range(CLASSES)), f"{row}: class images classified as {list(predicted)}"


def _outputs(net, layer, result, *, logits: bool):
    """`layer`'s output for the pictures of `result` (`[picture, class]`), as the model's own layers compute it at
    the pictures' size: the logits or the probabilities."""
    pictures = net.preprocess(result.images.astype("float32") / 255)
    extractor = kv.feature_extractor(net, [layer], pre_activation=logits)
    return np.asarray(extractor(net.model_inputs(pictures, extractor)))


def test_an_explicit_input_range_wins_over_the_one_read(trained, capsys):
    path = trained["nested-rescaling-augment-fixed"][0]
    kv.visualize_filters(path, "conv2", filters=[0], input_range=(0, 1), **RUN)
    assert "input range read from" not in capsys.readouterr().err
    assert kv.as_network(path, input_range=(0, 1)).preprocess.name == "range(0, 1)"


def test_the_extractor_of_an_image_layer_takes_only_the_image(trained):
    net = kv.as_network(trained["two-inputs"][0])
    extractor = kv.feature_extractor(net, ["conv2"])
    assert [t.name for t in extractor.inputs] != ["image", "tabular"] and len(extractor.inputs) == 1
    assert len(kv.feature_extractor(net, ["predictions"]).inputs) == 2


def test_given_other_inputs_are_used(trained, capsys, tmp_path):
    path = trained["two-inputs"][0]
    result = kv.visualize_filters(path, "predictions", filters=[0], other_inputs={"tabular": np.ones(TABULAR)}, **RUN)
    assert "held at zeros" not in capsys.readouterr().err and np.all(np.isfinite(result.scores))
    np.save(tmp_path / "row.npy", np.ones(TABULAR, "float32"))
    out = str(tmp_path / "classes.png")
    args = ["atlas", path, "predictions", "--filters", "0-1", "--size", "48", "--out", out]
    assert cli.main([*args, "--other-input", f"tabular={tmp_path / 'row.npy'}"]) == 0
    assert "held at zeros" not in capsys.readouterr().err
    assert cli.main([*args, "--other-input", "tabular"]) == 2
    assert "--other-input must be NAME=FILE.npy" in capsys.readouterr().err


def _two_backbones():
    inputs = keras.Input((SIZE, SIZE, 3))
    a, b = backbone("left")(inputs), backbone("right")(inputs)
    return keras.Model(inputs, keras.layers.Concatenate()([a, b]), name="two_backbones")


def _sequence_input():
    image, steps = keras.Input((SIZE, SIZE, 3), name="image"), keras.Input((None, 2), name="steps")
    x = keras.layers.GlobalAveragePooling2D()(backbone()(image))
    s = keras.layers.GlobalAveragePooling1D()(steps)
    return keras.Model([image, steps], keras.layers.Dense(2, name="out")(keras.layers.Concatenate()([x, s])),
                       name="image_and_sequence")


BAD_INPUTS = {
    "ambiguous-layer-name": (
        lambda: kv.visualize_filters(_two_backbones(), "conv2", filters=[0], **RUN),
        r"Layer name 'conv2' is ambiguous in two_backbones: it names 2 layers of nested models \('left/conv2', "
        r"'right/conv2'\)\. Pass the path of the one you mean, e\.g\. layer='left/conv2'\."),
    "extra-input-of-the-wrong-shape": (
        lambda: kv.as_network(two_inputs(None), other_inputs={"tabular": np.zeros(3)}),
        r"other_inputs\['tabular'\] has shape \(3,\), but input 'tabular' of two_inputs takes \(10,\) per example\. "
        r"Pass one example without the batch axis: other_inputs=\{'tabular': array of shape \(10,\)\}\."),
    "missing-extra-input-without-a-fixed-shape": (
        lambda: kv.visualize_filters(_sequence_input(), "out", filters=[0], **RUN),
        r"Input 'steps' of image_and_sequence \(shape \(None, 2\) per example\) has no value, and the layers asked "
        r"for depend on it\. Give one example with other_inputs=\{'steps': value\}\."),
    "layer-off-the-image-input": (
        lambda: kv.visualize_filters(two_inputs(None), "tabular_dense", filters=[0], **RUN),
        r"Layer\(s\) \['tabular_dense'\] of two_inputs do not depend on its input 'image' that is optimized \(they "
        r"read only \['tabular'\]\)\. Choose a layer after that input, or the input to optimize with image_input=\."),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_are_explained(case):
    call, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_layers_are_listed_with_their_paths(trained, capsys):
    paths = [row.path for row in kv.list_layers(kv.as_network(trained["two-levels"][0]))]
    assert "features/backbone/conv2" in paths and any(p.startswith("features/rescaling") for p in paths)
    assert cli.main(["layers", trained["two-levels"][0]]) == 0
    assert "features/backbone/conv2  " in capsys.readouterr().out


def _in_front(*layers, image_first: bool = True):
    """A small model: `layers` in front of a convolution; with `image_first=False`, a second input comes first."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = image
    for layer in layers:
        x = layer(x)
    x = keras.layers.Conv2D(2, 3, name="c")(x)
    if image_first:
        return keras.Model(image, x, name="in_front")
    extra = keras.Input((2,), name="extra")
    return keras.Model([extra, image], [keras.layers.Dense(1)(extra), x], name="in_front")


def _mobilenet_nested():
    backbone = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, backbone(keras.layers.RandomFlip()(inputs)), name="fine_tuned_mobilenet")


RANGES = {  # a model -> (the preprocessing read, a part of its note); None: nothing read, [0, 1]
    "caffe-preprocess-lambda": (lambda: _in_front(keras.layers.Lambda(keras.applications.resnet50.preprocess_input)),
                                "range(0, 255)", "preprocess_input (mode 'caffe')"),
    "torch-preprocess-lambda": (lambda: _in_front(keras.layers.Lambda(keras.applications.densenet.preprocess_input)),
                                "range(0, 255)", "preprocess_input (mode 'torch')"),
    "rescaling-0-10": (lambda: _in_front(keras.layers.RandomRotation(0.1), keras.layers.Rescaling(0.1)),
                       "range(0, 10)", "takes inputs in 0..10"),
    "nested-keras-applications-backbone": (_mobilenet_nested, "tf", "'mobilenetv2_1.00_32' is a keras.applications"),
    "second-input-is-the-image": (lambda: _in_front(keras.layers.Rescaling(1 / 255), image_first=False),
                                  "range(0, 255)", "0..255"),
    "an-unknown-lambda": (lambda: _in_front(keras.layers.Lambda(lambda t: t * 3.0)), "range(0, 1)", None),
    "a-convolution-first": (lambda: _in_front(keras.layers.Conv2D(3, 1), keras.layers.Rescaling(1 / 255)),
                            "range(0, 1)", None),
}


@pytest.mark.parametrize("case", list(RANGES))
def test_the_input_range_is_read_from_the_layers_in_front(case):
    build, name, source = RANGES[case]
    net = kv.as_network(build(), image_input="image") if case.startswith("second") else kv.as_network(build())
    assert net.preprocess.name == name
    assert (net.preprocess.source is None) if source is None else (source in net.preprocess.source)


ENTRY_POINTS = {  # every entry point that optimizes takes other_inputs= (the network is built once from it)
    "visualize_filters": lambda model, **kw: kv.visualize_filters(model, "predictions", [0], **kw),
    "render": lambda model, **kw: kv.render(model, kv.objectives.class_logit("predictions", 1), **kw),
    "layer_atlas": lambda model, tmp, **kw: kv.layer_atlas(model, "predictions", [0], cache_dir=str(tmp), **kw),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_takes_other_inputs(entry, tmp_path, capsys):
    call = ENTRY_POINTS[entry]
    kwargs = dict(size=32, steps=2, progress=False, other_inputs={"tabular": np.ones(TABULAR)})
    result = call(two_inputs(None), tmp_path, **kwargs) if entry == "layer_atlas" else call(two_inputs(None), **kwargs)
    assert "held at zeros" not in capsys.readouterr().err and len(result.images) == 1
