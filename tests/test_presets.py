import dataclasses

import numpy as np
import pytest

import kerasviz as kv
from kerasviz.engine import presets

pytestmark = pytest.mark.engine


def test_every_preset_runs_and_is_listed(tiny_cnn):
    assert set(kv.list_presets()) == {"keras-io", "blog2016", "fast", "lucid", "quality", "maco"}
    for name in kv.list_presets():
        result = kv.visualize_filters(tiny_cnn, "conv2", [0, 1], preset=name, size=32, steps=2, progress=False)
        assert result.images.shape[0] == 2 and result.settings["size"] == 32


def test_overrides_win_and_are_recorded(tiny_cnn):
    result = kv.visualize_filters(tiny_cnn, "conv2", [0], preset="lucid", size=20, steps=3, lr=0.1,
                                  transforms=[], progress=False)
    assert result.settings["lr"] == 0.1 and result.settings["transforms"] == []
    assert result.history.shape == (3, 1)


def test_octaves_grow_to_the_final_size(tiny_cnn):
    assert kv.engine.render.octave_sizes(100, 3, 1.2) == [(69, 69), (83, 83), (100, 100)]
    result = kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=30, steps=2, octaves=3,
                                  progress=False)
    assert result.images.shape[1:3] == (30, 30) and result.history.shape == (6, 1)


def test_steps_per_octave_run_more_steps_in_the_later_rounds(tiny_cnn):
    seen = []

    class Sizes(kv.progress.Callback):
        def on_step(self, record):
            seen.append(record.steps)

    result = kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=30, steps=[1, 2, 4],
                                  progress=False, callbacks=[Sizes()])
    assert result.settings["octaves"] == 3 and result.settings["steps"] == [1, 2, 4]  # octaves follow
    assert result.history.shape == (7, 1) and set(seen) == {7}
    assert presets.octave_steps(presets.Preset(steps=(1, 2, 4), octaves=3)) == [1, 2, 4]
    assert presets.octave_steps(presets.Preset(steps=5, octaves=2)) == [5, 5]
    with pytest.raises(ValueError, match=r"steps gives 2 counts, one per octave, but octaves=3"):
        kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=30, steps=(2, 4), octaves=3,
                             progress=False)
    with pytest.raises(ValueError, match=r"octave_blur must be a number >= 0"):
        kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=30, octave_blur=-1, progress=False)
    for bad in ((2, 0), (), 2.5, (2, True)):
        with pytest.raises(ValueError, match="steps must be a positive int, or a tuple of positive ints"):
            kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=30, steps=bad, progress=False)


def test_octave_blur_smooths_the_image_between_rounds(tiny_cnn):
    kw = dict(preset="fast", size=32, steps=(3, 1), lr=1e-6, revive_steps=0, transforms=(), progress=False)
    sharp = kv.visualize_filters(tiny_cnn, "conv2", [0], **kw).images.astype(float)
    blurred = kv.visualize_filters(tiny_cnn, "conv2", [0], octave_blur=1.5, **kw).images.astype(float)

    def roughness(x):
        return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()

    assert roughness(blurred) < 0.7 * roughness(sharp)


def test_custom_preset_and_lookup_errors():
    custom = dataclasses.replace(presets.get("fast"), steps=7)
    assert presets.get(custom).steps == 7
    assert presets.get(None) is presets.PRESETS[presets.DEFAULT_PRESET]
    assert presets.get("Keras_IO").input_space
    with pytest.raises(ValueError, match="Unknown preset 'lucyd'"):
        presets.get("lucyd")


def test_update_is_typed_as_a_name_or_a_rule():
    hint = {f.name: f.type for f in dataclasses.fields(presets.Preset)}["update"]
    assert "Update" in str(hint)


def test_unknown_settings_suggest_close_names():
    with pytest.raises(TypeError, match=r"Unknown setting 'stpes'\. Did you mean 'steps'\?"):
        presets.resolve_settings("fast", dict(stpes=3))


@pytest.mark.engine
def test_precision_defaults_to_auto_and_keras_io_stays_float32():
    auto = presets.resolve_precision("auto")
    assert presets.Preset().precision == "auto"
    pinned = {name: p.precision for name, p in presets.PRESETS.items() if p.precision != "auto"}
    assert pinned == {"keras-io": "float32"}
    assert presets.resolve_settings("keras-io", {}).precision == "float32"
    assert presets.resolve_settings(None, {}).precision == auto
    assert presets.resolve_settings("fast", dict(precision="bfloat16")).precision == "bfloat16"
    assert presets.resolve_settings("fast", dict(precision="BF16")).precision == "bfloat16"
    assert presets.resolve_settings("fast", dict(precision="fp32")).precision == "float32"
    assert presets.resolve_settings("fast", dict(precision=None)).precision == auto  # None: the preset's
    assert presets.resolve_settings("keras-io", dict(precision="bfloat16")).precision == "bfloat16"  # asked for


@pytest.mark.engine
def test_auto_precision_resolves_to_what_the_hardware_runs_fast():
    from kerasviz.engine import backend

    auto = presets.resolve_settings("fast", dict(precision="auto")).precision
    assert auto == ("bfloat16" if backend.bfloat16_is_fast() else "float32")
    assert presets.resolve_precision("auto") == auto


@pytest.mark.engine
@pytest.mark.parametrize("value, message", [
    ("bfloat61", r"Unknown precision 'bfloat61'\. Did you mean 'bfloat16'"),
    ("half", r"Unknown precision 'half'\..*must be one of 'float32', 'bfloat16', 'auto'"),
    (16, r"precision must be one of 'float32', 'bfloat16', 'auto'\. Received: precision=16"),
])
def test_a_bad_precision_is_explained(value, message):
    with pytest.raises(ValueError, match=message):
        presets.resolve_settings("fast", dict(precision=value))


def test_the_command_line_offers_the_same_precisions():
    from kerasviz.cli import common

    assert common.PRECISIONS == presets.PRECISIONS
