"""A unit that never fires says so on its explorer page, in words, instead of gray crops without comment."""

import numpy as np

from kerasviz.atlas import gallery


def _one_dead_unit():
    from conftest import make_grating_model

    model = make_grating_model()
    conv = model.get_layer("gabor")
    kernel, bias = conv.get_weights()
    bias[0] = -1000.0  # filter 0 is below zero on every image and every picture
    conv.set_weights([kernel, bias])
    return model


def test_a_unit_that_never_fires_says_so(tmp_path):
    photos = np.random.default_rng(0).uniform(size=(6, 32, 32, 3)).astype("float32")
    gallery.make_gallery(_one_dead_unit(), tmp_path / "site", layers=["gabor"], filters=[0, 1], examples=photos,
                         preset="fast", size=32, steps=2, revive_steps=0, progress=False, cache_dir=tmp_path / "cache")
    pages = {f: (tmp_path / "site" / "gabor" / f"f0000{f}.html").read_text(encoding="utf-8") for f in (0, 1)}
    assert "This unit never fired on these images" in pages[0]
    assert "Its picture does not make it fire" in pages[0]
    assert "never fired" not in pages[1] and "does not make it fire" not in pages[1]
