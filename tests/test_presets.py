import dataclasses

import pytest

import kerasviz as kv
from kerasviz import presets

pytestmark = pytest.mark.engine


def test_every_preset_runs_and_is_listed(tiny_cnn):
    assert set(kv.list_presets()) == {"keras-io", "blog2016", "fast", "lucid", "quality"}
    for name in kv.list_presets():
        result = kv.visualize_filters(tiny_cnn, "conv2", [0, 1], preset=name, size=32, steps=2, progress=False)
        assert result.images.shape[0] == 2 and result.settings["size"] == 32


def test_overrides_win_and_are_recorded(tiny_cnn):
    result = kv.visualize_filters(tiny_cnn, "conv2", [0], preset="lucid", size=20, steps=3, lr=0.1,
                                  transforms=[], progress=False)
    assert result.settings["lr"] == 0.1 and result.settings["transforms"] == []
    assert result.history.shape == (3, 1)


def test_octaves_grow_to_the_final_size(tiny_cnn):
    assert kv.optimize.octave_sizes(100, 3, 1.2) == [(69, 69), (83, 83), (100, 100)]
    result = kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=30, steps=2, octaves=3,
                                  progress=False)
    assert result.images.shape[1:3] == (30, 30) and result.history.shape == (6, 1)


def test_custom_preset_and_lookup_errors():
    custom = dataclasses.replace(presets.get("fast"), steps=7)
    assert presets.get(custom).steps == 7
    assert presets.get(None) is presets.PRESETS[presets.DEFAULT_PRESET]
    assert presets.get("Keras_IO").input_space
    with pytest.raises(ValueError, match="Unknown preset 'lucyd'"):
        presets.get("lucyd")
