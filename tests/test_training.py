"""The FilterAtlas training callback: an atlas per epoch, TensorBoard images, a GIF at the end."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_examples import make_classifier, procedural_dataset

from kerasviz import training as callbacks

FAST = dict(preset="fast", steps=4)


@pytest.fixture(scope="module")
def dataset():
    return procedural_dataset(16)


@pytest.fixture(scope="module")
def model():
    """One model for the module: the compiled visualization step is cached per model, layer and
    settings, so later tests reuse the first one's trace (and keep training the same weights)."""
    return make_classifier()


def tensorboard_images(log_dir):
    """(tag, step, image) of every image summary under `log_dir`."""
    found = []
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    strings = tf.make_ndarray(value.tensor)
                    found.append((value.tag, event.step, tf.io.decode_png(strings[2]).numpy()))
    return found


def test_writes_an_atlas_per_epoch_tensorboard_images_and_a_gif(tmp_path, dataset, model):
    x, y = dataset
    atlas = callbacks.FilterAtlas("conv2", range(4), out_dir=tmp_path, **FAST)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[atlas])

    pngs = sorted(p.name for p in tmp_path.glob("atlas_epoch_*.png"))
    assert pngs == ["atlas_epoch_001.png", "atlas_epoch_002.png", "atlas_epoch_003.png"]
    assert [f.epoch for f in atlas.frames] == [1, 2, 3] and atlas.seconds > 0
    first = np.asarray(Image.open(tmp_path / pngs[0]))
    last = np.asarray(Image.open(tmp_path / pngs[-1]))
    assert first.shape == (2 * 32 + 2, 2 * 32 + 2, 3)  # 2x2 tiles of the model's 32 px input, margin 2
    assert not np.array_equal(first, last)  # the filters changed as the model trained

    with Image.open(atlas.gif_path) as gif:
        assert atlas.gif_path == str(tmp_path / "atlas.gif") and gif.n_frames == 3

    summaries = tensorboard_images(tmp_path / "tensorboard")
    assert [(tag, step) for tag, step, _ in summaries] == [("kerasviz/conv2", 1), ("kerasviz/conv2", 2),
                                                          ("kerasviz/conv2", 3)]
    np.testing.assert_array_equal(summaries[-1][2], last)


def test_every_n_epochs_and_the_initial_frame(tmp_path, dataset, model):
    x, y = dataset
    atlas = callbacks.FilterAtlas("conv2", range(4), every_n_epochs=2, out_dir=tmp_path, include_initial=True,
                                  tensorboard=False, **FAST)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[atlas])
    assert [f.epoch for f in atlas.frames] == [0, 2]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["atlas_epoch_000.png", "atlas_epoch_002.png"]
    assert not (tmp_path / "tensorboard").exists()
    with Image.open(tmp_path / "atlas.gif") as gif:
        assert gif.n_frames == 2


def test_a_wrong_layer_fails_before_the_first_epoch(tmp_path, dataset, model):
    x, y = dataset
    atlas = callbacks.FilterAtlas("conv_2", [0], out_dir=tmp_path, tensorboard=False, **FAST)
    with pytest.raises(ValueError, match="Layer 'conv_2' not found.*conv2"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[atlas])
    with pytest.raises(ValueError, match="every_n_epochs must be a positive int"):
        callbacks.FilterAtlas("conv2", [0], every_n_epochs=0)


def test_save_gif_pads_frames_of_different_sizes(tmp_path):
    frames = [np.zeros((10, 12, 3), "uint8"), np.full((14, 8, 3), 255, "uint8")]
    path = callbacks.save_gif(frames, tmp_path / "a.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 2 and gif.size == (12, 14)
