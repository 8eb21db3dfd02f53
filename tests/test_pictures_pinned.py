"""Pixel checksums taken before the redesign (the three wings): a refactor keeps the pictures, same seed, same
pixels, on this kind of CPU with TensorFlow. They were made in float32, so every call pins `precision="float32"`
(the default, `"auto"`, is bfloat16 on this project's CPU and float32 on others); one bfloat16 case is pinned
apart. The pictures of the presets with jitter (quality, fast, lucid; render, caricature and layer_atlas, which use
them) were taken again when the standard jitters became a share of the image (8 and 4 px at 128 px, in
proportion below: at these 32-40 px sizes 1 or 2 px; docs/transformers.md, "Jitter in proportion to the image"):
a deliberate change of the pictures, measured there."""

import hashlib

import numpy as np
import pytest
from conftest import make_grating_model, make_tiny_cnn

import kerasviz as kv

BEFORE = {  # taken on the code before the move (commit 8a1184c), by the same calls as below; the jittered
    # ones again when the jitters became a share of the image (see above)
    "visualize_filters/quality": "14d25cd9dc50f4b3",
    "visualize_filters/fast": "c5a9291f1e71f4c7",
    "visualize_filters/lucid": "14110fb5c70295a7",
    "visualize_filters/keras-io": "e57fda252f7246c9",
    "visualize_filters/blog2016": "89cee63631e8b30d",
    "render/channel": "7d1e645025231690",
    "dream": "233da0798736257a",
    "caricature": "d09e157faca5e2c6",
    "layer_atlas": "303a569326e8a369",
    "vgg16/block3_conv3/fast": "416ae006531499c8",  # filter 1 comes from the revive steps
}
BFLOAT16 = {  # taken when "auto" became the default (the bfloat16 extractor, this project's AVX512-BF16 CPU),
    # again with the jitters in proportion
    "visualize_filters/fast": "9d2070847a59a5d9",
}
FLOAT32 = dict(precision="float32")


def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def net():
    return make_tiny_cnn()


@pytest.mark.parametrize("preset", ["quality", "fast", "lucid", "keras-io", "blog2016"])
def test_visualize_filters_pixels_are_unchanged(net, preset):
    r = kv.visualize_filters(net, "conv2", range(3), preset=preset, size=32, steps=6, progress=False, **FLOAT32)
    assert _sha(r.images) == BEFORE[f"visualize_filters/{preset}"]


def test_bfloat16_pixels_are_unchanged(net):
    r = kv.visualize_filters(net, "conv2", range(3), preset="fast", size=32, steps=6, progress=False,
                             precision="bfloat16")
    assert r.settings["precision"] == "bfloat16"
    assert _sha(r.images) == BFLOAT16["visualize_filters/fast"]


def test_render_dream_caricature_and_atlas_pixels_are_unchanged(net, tmp_path):
    g = make_grating_model()
    r = kv.render(g, kv.objectives.channel("gabor"), batch=2, size=40, steps=5, progress=False, preset="fast",
                  **FLOAT32)
    photo = np.random.default_rng(0).uniform(size=(40, 40, 3)).astype("float32")
    got = {
        "render/channel": _sha(r.images),
        "dream": _sha(kv.dream(net, "conv2", photo, steps=4, octaves=2, progress=False, **FLOAT32)),
        "caricature": _sha(kv.caricature(net, "conv2", photo, steps=4, size=32, octaves=1, **FLOAT32).image),
        "layer_atlas": _sha(kv.layer_atlas(net, "conv1", range(4), cache_dir=tmp_path, preset="fast", size=32,
                                           steps=5, progress=False, **FLOAT32).images),
    }
    assert got == {k: BEFORE[k] for k in got}


def test_a_trained_vgg16_with_a_revived_filter_keeps_its_pixels(hed_vgg16):
    r = kv.visualize_filters(hed_vgg16, "block3_conv3", range(4), preset="fast", progress=False, **FLOAT32)
    assert r.revived == [1] and _sha(r.images) == BEFORE["vgg16/block3_conv3/fast"]
