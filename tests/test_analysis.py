"""Image analysis on real photos (matplotlib's Grace Hopper, scikit-image's Chelsea the cat) with the offline
HED VGG16: predictions with offline class names, activations, top filters, heatmaps, DeepDream."""

import json
import re

import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz import analysis, nets


def direct_activation(net, layer, image):
    """The reference: caffe preprocessing written out by hand, and a plain Keras sub-model."""
    x = image[None, ..., ::-1] * 255.0 - np.array(nets.CAFFE_MEAN_BGR)
    sub = keras.Model(net.model.inputs[0], net.model.get_layer(layer).output)
    return keras.ops.convert_to_numpy(sub(x.astype("float32")))[0]


def make_classifier(bias, activation="softmax", classes=1000):
    """GAP + Dense(classes) whose scores are `bias`, whatever the image."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(classes, activation=activation, name="predictions")
    model = keras.Model(inputs, dense(x), name="toy_classifier")
    dense.set_weights([np.zeros((3, classes), "float32"), np.asarray(bias, "float32")])
    return model


# ------------------------------------------------------------------------------------------ classes


def test_class_index_has_keras_format_and_names():
    with open(analysis.CLASS_INDEX_PATH, encoding="utf-8") as f:
        raw = json.load(f)
    assert list(raw) == [str(i) for i in range(1000)]
    assert all(isinstance(v, list) and len(v) == 2 for v in raw.values())
    wnids = [v[0] for v in raw.values()]
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids) and len(set(wnids)) == 1000
    assert wnids == sorted(wnids)  # ILSVRC orders the classes by WordNet id
    index = analysis.imagenet_class_index()
    assert index[0] == ("n01440764", "tench")
    assert index[285] == ("n02124075", "Egyptian_cat")
    assert index[652] == ("n03763968", "military_uniform")
    assert index[999] == ("n15075141", "toilet_tissue")
    assert not any(" " in name for _, name in index.values())


def test_predict_ranks_classes_with_imagenet_names(hopper):
    bias = np.zeros(1000)
    bias[[285, 281, 7]] = [5.0, 4.0, 3.0]
    preds = analysis.predict(make_classifier(bias), hopper, top=3)
    assert [p.class_id for p in preds] == [285, 281, 7]
    assert [p.class_name for p in preds] == ["Egyptian_cat", "tabby", "cock"]
    expected = np.exp(bias - bias.max()) / np.exp(bias - bias.max()).sum()
    np.testing.assert_allclose([p.probability for p in preds], expected[[285, 281, 7]], rtol=1e-4)
    class_id, name, prob = preds[0]  # a plain tuple too
    assert (class_id, name) == (285, "Egyptian_cat") and 0 < prob < 1


def test_predict_applies_softmax_to_logits_and_takes_class_names(hopper):
    model = make_classifier([0.0, 2.0, 1.0], activation=None, classes=3)
    preds = analysis.predict(model, hopper, top=3, class_names=["cat", "dog", "bird"])
    assert [p.class_name for p in preds] == ["dog", "bird", "cat"]
    assert sum(p.probability for p in preds) == pytest.approx(1.0, abs=1e-5)
    generic = analysis.predict(model, hopper, top=1)
    assert generic[0].class_name == "class 1"


def test_predict_mobilenet_with_its_top_resizes_the_photo(hopper):
    net = kv.get_model("MobileNetV2", weights=None, include_top=True, alpha=0.35, input_shape=(96, 96, 3))
    preds = analysis.predict(net, hopper)  # a 40x32 photo into a 96x96 classifier
    assert len(preds) == 5
    probs = [p.probability for p in preds]
    assert probs == sorted(probs, reverse=True) and all(0.0 <= p <= 1.0 for p in probs)
    names = analysis.imagenet_class_names()
    assert all(p.class_name == names[p.class_id] for p in preds)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(top=0), r"top must be an int in 1-3"),
        (dict(top=4), r"top must be an int in 1-3"),
        (dict(class_names=["a", "b"]), r"class_names has 2 names for a model with 3 classes"),
    ],
)
def test_predict_rejects_bad_arguments(hopper, kwargs, message):
    with pytest.raises(ValueError, match=message):
        analysis.predict(make_classifier([0.0, 1.0, 2.0], classes=3), hopper, **kwargs)


def test_predict_needs_a_classifier(hed_vgg16, hopper):
    with pytest.raises(ValueError, match=r"include_top=True"):
        analysis.predict(hed_vgg16, hopper)


# ------------------------------------------------------------------------------------------ activations


def test_activations_match_a_direct_keras_computation(hed_vgg16, cat):
    acts = analysis.activations(hed_vgg16, ["block1_conv2", "block2_conv2"], cat)
    assert list(acts) == ["block1_conv2", "block2_conv2"]
    assert acts["block1_conv2"].shape == (36, 48, 64)
    assert acts["block2_conv2"].shape == (18, 24, 128)
    for layer, act in acts.items():
        assert act.min() >= 0.0  # post-ReLU
        np.testing.assert_allclose(act, direct_activation(hed_vgg16, layer, cat), rtol=1e-4, atol=1e-3)


def test_activations_accept_uint8_and_paths(hed_vgg16, tmp_path, cat):
    photo = kv.to_uint8(cat)
    path = kv.save_image(photo, tmp_path / "cat.png")
    from_array = analysis.activations(hed_vgg16, "block1_conv1", photo)["block1_conv1"]
    from_path = analysis.activations(hed_vgg16, "block1_conv1", path)["block1_conv1"]
    np.testing.assert_allclose(from_array, from_path, atol=1e-4)


@pytest.mark.parametrize("by", ["mean", "max"])
def test_top_filters_agree_with_numpy(hed_vgg16, hopper, by):
    direct = direct_activation(hed_vgg16, "block3_conv3", hopper)
    scores = direct.mean(axis=(0, 1)) if by == "mean" else direct.max(axis=(0, 1))
    expected = np.argsort(-scores, kind="stable")[:6]
    top = analysis.top_filters(hed_vgg16, "block3_conv3", hopper, k=6, by=by)
    np.testing.assert_array_equal(top.indices, expected)
    np.testing.assert_allclose(top.values, scores[expected], rtol=1e-4)
    assert np.all(np.diff(top.values) <= 0)
    indices, values = top  # unpacks like a pair
    assert len(indices) == len(values) == 6


def test_mean_activations_is_the_spatial_mean(hed_vgg16, cat):
    means = analysis.mean_activations(hed_vgg16, "block2_conv1", cat)
    act = analysis.activations(hed_vgg16, "block2_conv1", cat)["block2_conv1"]
    assert means.shape == (128,) and means.dtype == np.float32
    np.testing.assert_allclose(means, act.mean(axis=(0, 1)), rtol=1e-5)


def test_rank_filters_orders_ties_by_index():
    top = analysis.rank_filters(np.array([1.0, 3.0, 3.0, 2.0]), 3)
    assert top.indices.tolist() == [1, 2, 3]
    assert top.values.tolist() == [3.0, 3.0, 2.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=0), r"k must be an int in 1-64 \(the layer's channels\). Received: k=0"),
        (dict(k=65), r"k must be an int in 1-64"),
        (dict(k=2, by="median"), r"by must be 'mean' or 'max'. Received: by='median'"),
        (dict(k=2, layer="block1_conv3"), r"Layer 'block1_conv3' not found in VGG16. Did you mean"),
    ],
)
def test_top_filters_rejects_bad_arguments(hed_vgg16, cat, kwargs, message):
    layer = kwargs.pop("layer", "block1_conv1")
    with pytest.raises(ValueError, match=message):
        analysis.top_filters(hed_vgg16, layer, cat, **kwargs)


# ------------------------------------------------------------------------------------------ heatmaps


def edge_image(position: int, vertical: bool, size: int = 48) -> np.ndarray:
    img = np.full((size, size, 3), 0.3, "float32")
    if vertical:
        img[:, position:] = 0.7
    else:
        img[position:, :] = 0.7
    return img


def flat_baseline(net, layer):
    """Mean activations on the two flat grays the edge images are made of."""
    return sum(analysis.mean_activations(net, layer, np.full((48, 48, 3), g, "float32")) for g in (0.3, 0.7)) / 2


@pytest.mark.parametrize("vertical", [True, False])
def test_heatmap_peaks_where_the_edge_is(hed_vgg16, vertical):
    baseline = flat_baseline(hed_vgg16, "block1_conv2")
    peaks, filters = [], set()
    for position in (14, 34):
        img = edge_image(position, vertical)
        # the edge filter: the one whose mean activation the edge raises most over flat gray
        f = int(analysis.rank_filters(analysis.mean_activations(hed_vgg16, "block1_conv2", img) - baseline,
                                      1).indices[0])
        heat = analysis.heatmap(hed_vgg16, "block1_conv2", f, img)
        assert heat.shape == (48, 48)
        inner = heat[4:-4, 4:-4]  # away from the zero-padded border
        profile = inner.mean(axis=0 if vertical else 1)
        peak = int(np.argmax(profile)) + 4
        assert abs(peak - position) <= 1, (position, peak)
        assert profile.max() > 10 * (np.median(profile) + 1e-3)  # a ridge on the edge, little elsewhere
        peaks.append(peak)
        filters.add(f)
    assert peaks[1] - peaks[0] == pytest.approx(20, abs=1)  # the peak follows the edge
    assert len(filters) == 1  # the same edge filter wins at both positions


def test_heatmap_upsamples_deep_maps_to_the_image(hed_vgg16, cat):
    heat = analysis.heatmap(hed_vgg16, "block3_conv3", 3, cat)
    assert heat.shape == cat.shape[:2] and heat.dtype == np.float32
    act = analysis.activations(hed_vgg16, "block3_conv3", cat)["block3_conv3"][..., 3]
    assert heat.max() <= act.max() + 1e-4 and heat.min() >= act.min() - 1e-4


@pytest.mark.parametrize(
    "layer, index, message",
    [
        ("gap", 0, r"Layer 'gap' outputs shape \(16,\) per image, with no spatial map"),
        ("conv2", 16, r"Filter 16 is out of range for layer 'conv2', which has 16 channels \(valid: 0-15\)"),
        ("conv2", -1, r"Filter -1 is out of range"),
    ],
)
def test_heatmap_rejects_bad_layers_and_filters(tiny_cnn, cat, layer, index, message):
    with pytest.raises(ValueError, match=message):
        analysis.heatmap(tiny_cnn, layer, index, cat)


# ------------------------------------------------------------------------------------------ bad images


def _text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    return str(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (_text_file, r"is not an image file PIL can read"),
        (lambda p: str(p / "missing.jpg"), r"No image file at"),
        (lambda p: np.zeros((16, 16, 5), "float32"), r"Expected an image with 3 channels; received 5"),
        (lambda p: np.full((16, 16, 3), 2.0, "float32"), r"must have values in \[0, 1\]"),
        (lambda p: np.zeros((2, 16, 16, 3), "float32"), r"not a batch"),
        (lambda p: np.zeros((4, 4, 4, 4, 3), "float32"), r"must be \(H, W\) or \(H, W, C\)"),
    ],
)
def test_bad_images_get_clear_errors(tiny_cnn, tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        analysis.activations(tiny_cnn, "conv1", make(tmp_path))


def test_grayscale_images_are_repeated_to_rgb(hed_vgg16, cat):
    gray = cat.mean(axis=-1)  # (H, W): the documented conversion repeats it on R, G and B
    from_gray = analysis.top_filters(hed_vgg16, "block1_conv2", gray, k=4)
    from_rgb = analysis.top_filters(hed_vgg16, "block1_conv2", np.repeat(gray[..., None], 3, axis=-1), k=4)
    np.testing.assert_array_equal(from_gray.indices, from_rgb.indices)
    np.testing.assert_allclose(from_gray.values, from_rgb.values, rtol=1e-5)


def test_one_image_batches_are_accepted(tiny_cnn, cat):
    a = analysis.mean_activations(tiny_cnn, "conv1", cat[None])
    b = analysis.mean_activations(tiny_cnn, "conv1", cat)
    np.testing.assert_allclose(a, b)


def test_activations_of_a_two_input_model_hold_the_other_input():
    """A layer after the merge reads both inputs: the other one is held at zeros (or its other_inputs= value)."""
    image, table = keras.Input((32, 32, 3), name="image"), keras.Input((4,), name="table")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(image))
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, name="dense_table")(table)])
    model = keras.Model([image, table], keras.layers.Dense(3, name="head")(x))
    photo = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype("float32")
    acts = kv.activations(model, ["conv", "head"], photo)
    assert acts["conv"].shape == (30, 30, 4) and acts["head"].shape == (3,)
    held = kv.activations(kv.as_network(model, other_inputs={"table": np.ones(4, "float32")}), "head", photo)
    assert not np.allclose(held["head"], acts["head"])  # the given value reaches the head
