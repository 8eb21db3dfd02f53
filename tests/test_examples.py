"""Dataset examples and receptive fields, on a tiny CNN trained here on procedural images."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasviz import examples, nets, plot

SIZE = 32
CLASSES = ("stripes 0", "stripes 45", "stripes 90", "stripes 135", "color blob")


def procedural_dataset(n_per_class: int, size: int = SIZE, seed: int = 0):
    """Images in [0, 1] of 5 classes: stripes at 0/45/90/135 degrees (random wavelength, phase, tint)
    and a red, green or blue Gaussian blob on gray; shuffled, with integer labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    xs, ys = [], []
    for c in range(len(CLASSES)):
        for _ in range(n_per_class):
            if c < 4:
                t = np.deg2rad(45.0 * c)
                wave = np.cos(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / rng.uniform(5, 8)
                              + rng.uniform(0, 2 * np.pi))
                img = np.repeat((0.5 + 0.5 * wave)[..., None], 3, -1) * rng.uniform(0.6, 1.0, 3)
            else:
                cy, cx = rng.uniform(6, size - 6, 2)
                blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(3, 6) ** 2))
                img = 0.3 + blob[..., None] * (np.eye(3)[rng.integers(3)] - 0.3)
            xs.append(np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1))
            ys.append(c)
    order = rng.permutation(len(ys))
    return np.stack(xs).astype("float32")[order], np.array(ys)[order]


def make_classifier(size: int = SIZE) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="procedural_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def dataset():
    return procedural_dataset(60)


@pytest.fixture(scope="module")
def trained(dataset):
    x, y = dataset
    model = make_classifier()
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return model


def max_activations(model, layer, x):
    acts = keras.Model(model.inputs, model.get_layer(layer).output).predict(x, verbose=0)
    flat = acts.reshape(len(x), -1, acts.shape[-1])
    return flat.max(axis=1), flat.argmax(axis=1), acts.shape[2]


def test_examples_of_a_class_selective_filter_come_from_that_class(trained, dataset):
    x, y = dataset
    best, _, _ = max_activations(trained, "conv2", x)
    means = np.stack([best[y == c].mean(axis=0) for c in range(len(CLASSES))])  # [class, filter]
    selectivity = means.max(axis=0) / (means.mean(axis=0) + 1e-6)
    f = int(np.argmax(selectivity))
    preferred = int(np.argmax(means[:, f]))
    result = examples.dataset_examples(trained, "conv2", x, k=9, filters=[f], batch_size=25)
    from_class = int(np.sum(y[result.ids[0]] == preferred))
    assert from_class >= 5, (f, CLASSES[preferred], y[result.ids[0]])  # chance: 9 / 5 images
    assert result.count == len(x) and result.crops.shape == (1, 9, 8, 8, 3)


def test_streaming_top_k_matches_all_activations_at_once(trained, dataset):
    x, y = dataset
    filters = [0, 5, 11]
    best, where, width = max_activations(trained, "conv2", x)
    from_array = examples.dataset_examples(trained, "conv2", x, k=5, filters=filters, batch_size=7)
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    from_stream = examples.dataset_examples(trained, "conv2", stream, k=5, filters=filters, batch_size=10)
    for i, f in enumerate(filters):
        expected = np.lexsort((np.arange(len(x)), -best[:, f]))[:5]
        np.testing.assert_array_equal(from_array.ids[i], expected)
        np.testing.assert_array_equal(from_stream.ids[i], expected)
        np.testing.assert_allclose(from_array.scores[i], best[expected, f], rtol=1e-5)
        rows, cols = np.divmod(where[expected, f], width)
        np.testing.assert_array_equal(from_array.positions[i], np.stack([rows, cols], axis=1))
        np.testing.assert_array_equal(from_stream.labels[i], y[expected])
    assert from_array.labels is None


def test_crop_is_the_receptive_field_around_the_maximum(trained, dataset):
    x, _ = dataset
    result = examples.dataset_examples(trained, "conv2", x, k=9, filters=range(16), batch_size=64)
    field = result.receptive_field
    assert field.size == (8, 8) and field.jump == (2.0, 2.0) and field.offset == (0.5, 0.5)
    checked = 0
    for f in range(16):
        for r in range(9):
            top, left, bottom, right = field.box(result.positions[f, r])
            if top >= 0 and left >= 0 and bottom <= SIZE and right <= SIZE:
                expected = np.round(x[result.ids[f, r], top:bottom, left:right] * 255).astype("uint8")
                np.testing.assert_array_equal(result.crops[f, r], expected)
                np.testing.assert_allclose(result.centers[f, r], field.center(result.positions[f, r]))
                checked += 1
    assert checked >= 10


def test_folder_of_images_fewer_than_k(tmp_path, trained, dataset):
    from PIL import Image

    x, _ = dataset
    for i in range(5):
        sub = tmp_path / ("a" if i < 3 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.round(x[i] * 255).astype("uint8")).resize((48, 40)).save(sub / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    result = examples.dataset_examples(trained, "conv2", str(tmp_path), k=7, filters=[1, 2], batch_size=2)
    assert result.names == ["a/img0.png", "a/img1.png", "a/img2.png", "b/img3.png", "b/img4.png"]
    assert result.count == 5
    assert np.all(result.ids[:, :5] >= 0) and np.all(result.ids[:, 5:] == -1)
    assert np.all(np.isneginf(result.scores[:, 5:]))
    assert [e["name"] for e in result.examples(1)] == [result.names[i] for i in result.ids[0, :5]]
    # each example's source name is recorded: its file, with "/"; "" where no image
    assert result.sources.shape == (2, 7) and list(result.sources[0, 5:]) == ["", ""]
    assert list(result.sources[0, :5]) == [result.names[i].replace(os.sep, "/") for i in result.ids[0, :5]]


def test_arrays_and_streams_name_their_examples_by_index(trained, dataset):
    x, y = dataset
    from_array = examples.dataset_examples(trained, "conv2", x[:12], k=3, filters=[4], batch_size=5)
    assert list(from_array.sources[0]) == [f"#{i}" for i in from_array.ids[0]]
    stream = tf.data.Dataset.from_tensor_slices((x[:12], y[:12])).batch(5)
    from_stream = examples.dataset_examples(trained, "conv2", stream, k=3, filters=[4], batch_size=5)
    np.testing.assert_array_equal(from_stream.sources, from_array.sources)


def test_a_data_source_is_checked_once_and_read_the_same_way(tmp_path, dataset):
    x, _ = dataset
    source = examples.data_source(x[:10])
    assert source.total == 10 and len(source.fingerprint()) == 32
    assert examples.data_source(x[:10].copy()).fingerprint() == source.fingerprint()
    assert examples.data_source(x[1:11]).fingerprint() != source.fingerprint()
    assert examples.data_source(source) is source
    assert examples.data_source(iter([x[:2]])).total is None
    assert examples.data_source(iter([x[:2]])).fingerprint() is None
    with pytest.raises(TypeError, match="examples must be a folder path"):
        examples.data_source(42, "examples")
    with pytest.raises(ValueError, match=r"A NumPy data array must be images \(N, H, W, C\)"):
        examples.data_source(x[0])


def test_layer_filters_checks_types_and_drops_repeats(trained):
    net = nets.as_network(trained)
    assert examples.layer_filters(net, "conv2", None) == list(range(16))
    assert examples.layer_filters(net, "conv2", "all") == list(range(16))
    assert examples.layer_filters(net, "conv2", 3) == [3]
    assert examples.layer_filters(net, "conv2", [5, 1, 5]) == [5, 1]
    with pytest.raises(TypeError, match="filter must be an int"):
        examples.layer_filters(net, "conv2", [1.5])
    with pytest.raises(ValueError, match="filters is empty"):
        examples.layer_filters(net, "conv2", [])


def test_the_progress_bar_counts_the_images(trained, dataset, capsys):
    x, _ = dataset
    examples.dataset_examples(trained, "conv2", x[:20], k=2, filters=[0, 1], batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "examples conv2: 20 images" in err and "20/20" in err and "2 filters" in err


def test_vgg16_block3_conv3_receptive_field_is_40_px():
    vgg = keras.applications.VGG16(weights=None, include_top=False)
    field = nets.receptive_field(vgg, "block3_conv3")
    assert field.size == (40, 40) and field.jump == (4.0, 4.0) and field.offset == (1.5, 1.5)
    assert nets.receptive_field(vgg, "block5_pool").size == (212, 212)
    assert nets.receptive_field(vgg, "block1_conv1").size == (3, 3)


@pytest.mark.parametrize("n", [40, 41])
def test_receptive_field_box_is_where_the_gradient_reaches(n):
    """With all-positive kernels and average pooling, an output position's gradient is nonzero exactly
    on its receptive field (clipped to the image): strides, padding ('same' on odd and even sizes),
    zero padding and rectangular kernels."""
    inputs = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(2, 3, strides=2, padding="same", kernel_initializer="ones", name="c1")(inputs)
    h = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(h)
    h = keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool")(h)
    h = keras.layers.Conv2D(2, (5, 3), strides=(2, 1), kernel_initializer="ones", name="c3")(h)
    model = keras.Model(inputs, h)
    field = nets.receptive_field(model, "c3", input_size=n)
    x = tf.random.uniform((1, n, n, 3), seed=1)
    for pos in [(0, 0), (1, 3), (2, 5)]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = model(x)[0, pos[0], pos[1], 0]
        grad = np.abs(tape.gradient(value, x).numpy()[0]).sum(axis=-1)
        rows, cols = np.nonzero(grad.sum(axis=1))[0], np.nonzero(grad.sum(axis=0))[0]
        top, left, bottom, right = field.box(pos)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (
            max(top, 0), max(left, 0), min(bottom, n), min(right, n)), (n, pos, field)


def test_examples_figure_puts_the_visualization_beside_the_crops(trained, dataset):
    import matplotlib

    matplotlib.use("Agg")
    x, _ = dataset
    result = examples.dataset_examples(trained, "conv1", x[:40], k=4, filters=[2, 3])
    picture = np.zeros((16, 16, 3), "uint8")
    fig = plot.examples_figure(result, 3, visualization={3: picture})
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 5 and images[0].get_title() == "filter 3"
    fig = plot.examples_figure(result)
    assert len([ax for ax in fig.axes if ax.images]) == 8


def test_dense_layer_examples_use_whole_images(trained, dataset):
    x, _ = dataset
    result = examples.dataset_examples(trained, "predictions", x[:50], k=3, filters=[4])
    assert result.receptive_field is None and result.crops.shape == (1, 3, SIZE, SIZE, 3)
    assert np.all(result.positions == -1)
    probability = trained.predict(x[:50], verbose=0)[:, 4]
    np.testing.assert_array_equal(result.ids[0], np.argsort(-probability, kind="stable")[:3])


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(data="/no/such/folder"), "No folder at '/no/such/folder'"),
        (dict(k=0), "k must be a positive int"),
        (dict(filters=[99]), "Filter 99 is out of range for layer 'conv2', which has 16 channels"),
        (dict(data=np.full((4, SIZE, SIZE, 3), 200.0, "float32")), "Pass value_range=\\(0, 255\\)"),
        (dict(data=np.zeros((SIZE, SIZE, 3), "float32")), "must be images \\(N, H, W, C\\)"),
        (dict(data=np.zeros((2, SIZE, SIZE, 1), "float32")), "takes 3-channel images; the data has 1"),
        (dict(layer="conv9"), "Layer 'conv9' not found"),
    ],
)
def test_errors_name_the_problem(trained, dataset, kwargs, error):
    args = dict(model=trained, layer="conv2", data=dataset[0][:4], k=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=error):
        examples.dataset_examples(**args)


def test_receptive_field_of_a_layer_without_positions_raises(trained):
    with pytest.raises(ValueError, match="'gap' has no spatial positions"):
        nets.receptive_field(trained, "gap")


def test_value_range_reads_0_255_floats(trained, dataset):
    x, _ = dataset
    scaled = examples.dataset_examples(trained, "conv2", x[:20] * 255.0, k=3, filters=[0], value_range=(0, 255))
    plain = examples.dataset_examples(trained, "conv2", x[:20], k=3, filters=[0])
    np.testing.assert_array_equal(scaled.ids, plain.ids)


def test_squeeze_excitation_gates_do_not_widen_the_field():
    """A global branch that scales the map (squeeze-and-excitation) keeps the local field; a layer
    inside the gate has no positions, and its examples are whole images."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    gate = keras.layers.Conv2D(4, 1, activation="sigmoid", name="excite")(gate)
    x = keras.layers.Multiply(name="scaled")([x, gate])
    x = keras.layers.Dense(2, name="pointwise")(x)  # a Dense on a map acts per position
    model = keras.Model(inputs, x)
    assert nets.receptive_field(model, "pointwise").size == (3, 3)
    with pytest.raises(ValueError, match="'excite' has no spatial positions"):
        nets.receptive_field(model, "excite")
    images = np.random.default_rng(0).uniform(size=(6, SIZE, SIZE, 3)).astype("float32")
    result = examples.dataset_examples(model, "excite", images, k=2, filters=[0])
    assert result.receptive_field is None and result.crops.shape == (1, 2, SIZE, SIZE, 3)


def test_receptive_field_inside_a_nested_model():
    """A layer of a backbone used as a layer: the outer padding counts, and `outer/inner` paths work."""
    inner_in = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c1")(inner_in)
    h = keras.layers.Conv2D(4, 3, name="c2")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    outer_in = keras.Input((64, 64, 3))
    x = keras.layers.ZeroPadding2D(2, name="zp")(outer_in)
    x = keras.layers.MaxPooling2D(name="pool")(backbone(x))
    model = keras.Model(outer_in, x)
    # zp: start -2; c1 (68 px, 'same', stride 2 pads 0 before): start -1, size 3; c2: start 1, size 7
    assert nets.receptive_field(model, "backbone/c2") == nets.ReceptiveField((7, 7), (2.0, 2.0), (1.0, 1.0),
                                                                             (64, 64))
    field = nets.receptive_field(model, "pool")
    assert (field.size, field.jump, field.offset) == ((9, 9), (4.0, 4.0), (2.0, 2.0))
