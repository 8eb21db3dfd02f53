"""The explorer shows hostile names as text and runs none of them: layer, model and file names that hold HTML
and script, through every kind of page (index, layer, pending, unit), in Chromium.

The payloads run by themselves where they are not escaped: an `<img>` whose source fails runs its `onerror`, an
`<svg>` its `onload`, and `">` breaks out of an attribute first. Keras refuses only `/` in a layer or model name
(so no closing tag such as `</script>`); a file name can hold anything but `/`. TensorFlow, though, refuses `<`,
spaces, `=` and quotes in the name scopes of a model it runs: on that backend the gallery that computes its
pictures gets hostile file names only, and the hostile layer and model names go through `write_gallery` (atlases
named so, the model built but never run); on JAX and PyTorch the computed gallery gets every hostile name.
"""

import os
import shutil

import keras
import numpy as np
import pytest
from browser import browse
from PIL import Image

from kerasviz import atlas, nets
from kerasviz.atlas import gallery
from kerasviz.engine.progress import Callback

HOSTILE = dict(model="<img src=y onerror=window.__pwned=1>", conv1="<img src=x onerror=window.__pwned=1>",
               pool='"><svg onload=window.__pwned=1>', conv2="<svg onload=window.__pwned=1>")
PLAIN = dict(model="plain_model", conv1="conv1", pool="pool1", conv2="conv2")
EXAMPLE = "<svg onload=window.__pwned2=1>.png"
EXAMPLE_ATTRIBUTE = '"><img src=x onerror=window.__pwned2=1>.png'  # breaks out of the example's title="..."
IMAGE = "<svg onload=window.__pwned3=1>.png"  # the heatmap's image, named in its caption
PWNED = "() => [window.__pwned, window.__pwned2, window.__pwned3]"
QUICK = dict(filters=range(4), preset="fast", size=16, steps=2, batch_size=2, progress=False)


def _model(names: dict) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=names["conv1"])(inputs)
    x = keras.layers.MaxPooling2D(name=names["pool"])(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=names["conv2"])(x)
    return keras.Model(inputs, x, name=names["model"])


class _StopInSecondBatch(Callback):
    """Stops the run at the end of its second batch: the first batch is kept, the second is lost."""

    def __init__(self):
        self.batches = 0

    def on_end(self):
        self.batches += 1
        if self.batches == 2:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """`make_gallery` with examples from a folder of hostile file names: the site while its second layer is
    pending (a copy), then the same site finished, with examples and a heatmap."""
    names = PLAIN if keras.backend.backend() == "tensorflow" else HOSTILE
    root = tmp_path_factory.mktemp("computed")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in (EXAMPLE, EXAMPLE_ATTRIBUTE, "plain.png"):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(photos / name)
    model, out, cache = _model(names), root / "site", root / "cache"
    _, partial = gallery.make_gallery(model, out, cache_dir=cache, callbacks=[_StopInSecondBatch()], **QUICK)
    assert partial.interrupted and list(partial.layers) == [names["conv1"]] and len(partial[names["conv1"]]) == 2
    shutil.copytree(out, root / "pending")
    image = root / IMAGE
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(image)
    _, done = gallery.make_gallery(model, out, cache_dir=cache, examples=photos, image=image, **QUICK)
    assert not done.interrupted and list(done.layers) == [names["conv1"], names["conv2"]]
    return names, root / "pending", out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """`write_gallery` of atlases of layers with hostile names, from a model with hostile names."""
    root = tmp_path_factory.mktemp("written")
    rng = np.random.default_rng(0)
    layers = [atlas.LayerAtlas(
        layer=HOSTILE[key], filters=list(range(4)), images=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8),
        scores=np.arange(4, dtype="float32"), computed=list(range(4)), cached=[], seconds=0.0, batch_size=4,
        interrupted=False, layer_type="Conv2D", output_shape=(None, None, None, 4), channels=4,
        settings={"model": HOSTILE["model"], "layer": HOSTILE[key], "settings": {"size": 8}}, cache_path="")
        for key in ("conv1", "conv2")]
    gallery.write_gallery(layers, root, network=nets.as_network(_model(HOSTILE)))
    return root


def _pages(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".html"))


def _check_site(page, root, names: dict, count: int, seen: set) -> None:
    """Every page of the site at `root` (`count` of them) loads without running a name, and shows the names
    as text."""
    pages = _pages(root)
    assert len(pages) == count, root
    page.goto(f"file://{root}/index.html")
    links = page.eval_on_selector_all("tr td:first-child a", "as => as.map(a => [a.href, a.textContent])")
    shown = {href.split("/")[-2]: text for href, text in links}  # layer folder -> the name shown
    assert list(shown.values()) == [names["conv1"], names["conv2"]] and all("<" not in f for f in shown)
    for path in pages:
        page.goto("file://" + path)
        page.wait_for_timeout(20)  # an image's error event, were there one
        assert page.evaluate(PWNED) == [None, None, None], path
        assert page.locator("svg").count() == 0, path  # no element made from a name
        kind, heading = page.get_attribute("body", "class"), page.inner_text("h1")
        if kind == "index":
            assert page.title() == names["model"] and heading == names["model"], path
            seen.add("index")
            continue
        layer = shown[os.path.basename(os.path.dirname(path))]
        assert page.get_attribute("body", "data-layer") == layer, path
        if kind == "layer":
            assert heading == f"{names['model']} · {layer}", path
            seen.add("pending" if "Pending:" in page.inner_text("body") else "layer")
            continue
        assert heading.startswith(f"{layer} filter ") and page.inner_text('a[rel="up"]') == layer, path
        seen.add("unit")
        if layer == names["conv2"]:  # its incoming units come through the pooling, named in the notes
            assert f"via {names['pool']} (MaxPooling2D)" in page.inner_text("body"), path
        if page.locator(".examples").count():
            seen.add("examples")
            sources = page.eval_on_selector_all(".examples .source", "s => s.map(x => x.innerText)")
            titles = page.eval_on_selector_all(".examples img", "s => s.map(x => x.title)")
            assert sorted(sources) == sorted(titles) == sorted([EXAMPLE, EXAMPLE_ATTRIBUTE, "plain.png"]), path
            assert f"where in {IMAGE} this unit fires" in page.inner_text("body"), path


def test_a_computed_gallery_runs_no_file_name_and_shows_it_as_text(computed):
    names, pending, done = computed
    seen = set()

    def check(page):
        _check_site(page, pending, names, 1 + (1 + 2) + 1, seen)
        _check_site(page, done, names, 1 + 2 * (1 + 4), seen)

    browse(check)
    assert seen == {"index", "pending", "layer", "unit", "examples"}


def test_a_written_gallery_runs_no_layer_or_model_name_and_shows_them_as_text(written):
    seen = set()
    browse(lambda page: _check_site(page, written, HOSTILE, 1 + 2 * (1 + 4), seen))
    assert seen == {"index", "layer", "unit"}
