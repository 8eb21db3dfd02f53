"""A result says when it is not what the user asked for: dead and flat filters listed and named in one line, a
layer or preset that cannot work refused or warned about, a model that is not an image model refused in one
line, and `filters=4` meaning filter 4."""

import warnings

import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz.engine import result as outcomes

QUICK = dict(preset="fast", size=32, steps=4, progress=False)


def test_dead_and_flat_filters_are_listed_and_named_in_one_line(tiny_cnn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = kv.visualize_filters(tiny_cnn, "conv2", range(16), revive_steps=0, **QUICK)
    assert r.dead == [f for f, s in zip(r.filters, r.scores, strict=True) if s <= 0] and r.dead
    std = r.images.reshape(16, -1).std(axis=1)
    assert r.flat == [f for f, v in zip(r.filters, std, strict=True) if v < outcomes.FLAT_STD]
    lines = [str(w.message) for w in caught if "not what was asked" in str(w.message)]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert f"dead (final score <= 0: the picture does not make them fire): {', '.join(map(str, r.dead))}" in lines[0]


def test_a_flat_picture_is_flat_and_a_run_of_good_pictures_says_nothing(grating_model):
    flat = np.full((1, 16, 16, 3), 128, "uint8")
    flat[0, 0, 0] = 131  # a pixel off: still flat
    assert outcomes.check([7], flat, np.array([1.0]), layer="x") == ([], [7])
    assert outcomes.check([7], flat, np.array([-1.0]), layer=None) == ([], [7])  # no layer: no dead
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = kv.visualize_filters(grating_model, "gabor", range(4), preset="fast", size=48, steps=16, progress=False)
    assert r.dead == [] and r.flat == []


def test_a_layer_atlas_lists_dead_and_flat_filters_cached_or_not(tiny_cnn, tmp_path):
    kw = dict(cache_dir=tmp_path, revive_steps=0, **QUICK)
    with pytest.warns(UserWarning, match="of 'conv2' are not what was asked"):
        first = kv.atlas.layer_atlas(tiny_cnn, "conv2", range(8), **kw)
    again = kv.atlas.layer_atlas(tiny_cnn, "conv2", range(8), **kw)
    assert first.dead and again.cached == list(range(8)) and (again.dead, again.flat) == (first.dead, first.flat)


def test_the_input_layer_is_refused_with_what_to_use_instead(tiny_cnn):
    name = tiny_cnn.layers[0].name
    with pytest.raises(ValueError, match=f"Layer '{name}' is the input of tiny_cnn.*e.g. 'conv1'"):
        kv.visualize_filters(tiny_cnn, name, [0], **QUICK)


def test_a_layer_with_no_learned_weights_before_it_is_warned_about():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(2.0, name="scale")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(x))
    with pytest.warns(UserWarning, match="Layer 'scale' of .* has no learned weights before it.*e.g. 'conv'"):
        kv.visualize_filters(model, "scale", [0], **QUICK)


def test_pooling_layers_are_fine(tiny_cnn):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Layer .*", UserWarning)
        assert len(kv.visualize_filters(tiny_cnn, "pool1", [0, 1], **QUICK)) == 2


def test_the_keras_io_preset_warns_when_the_model_does_not_read_minus_one_to_one(tiny_cnn):
    kw = dict(preset="keras-io", size=64, steps=2, progress=False)
    with pytest.warns(UserWarning, match=r"keras-io preset's start is made for ResNet50V2's \[-1, 1\] inputs.*"
                                         r"caffe.*preset='quality' or 'fast'"):
        kv.visualize_filters(tiny_cnn, "conv2", [0], preprocess="caffe", **kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*keras-io.*", UserWarning)
        kv.visualize_filters(tiny_cnn, "conv2", [0], preprocess="tf", **kw)  # [-1, 1]: the tutorial's range


def test_a_model_without_an_image_input_is_refused_in_one_line():
    dense = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, name="hidden"), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"kerasviz draws images: this model's input is \(None, 64\), not an image"):
        kv.visualize_filters(dense, "hidden", [0], **QUICK)


@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_a_unit_of_a_dense_layer_of_an_image_model_is_a_filter(head):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)  # linear: no dead ReLU, every unit moves
    x = keras.layers.Flatten()(x) if head == "flatten" else keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="units")(x))
    r = kv.visualize_filters(model, "units", [1, 3], preset="fast", size=16, steps=8, transforms=(), progress=False)
    assert r.filters == [1, 3] and r.images.shape == (2, 16, 16, 3)
    assert np.all(r.history[-1] > r.history[0])  # each unit's value rises


def test_filters_4_is_filter_4(tiny_cnn):
    r = kv.visualize_filters(tiny_cnn, "conv2", 4, **QUICK)
    assert r.filters == [4] and len(r) == 1


def test_the_repr_names_what_is_wrong(tiny_cnn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = kv.visualize_filters(tiny_cnn, "conv2", range(16), revive_steps=0, **QUICK)
    assert f"dead={r.dead}" in repr(r) and "unfinished" not in repr(r)
