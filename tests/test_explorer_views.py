"""The explorer's views made from the user's images (accentuated examples, concepts, the activation atlas): one
small site with every one of them, browsed in Chromium: every page exists and loads, every link resolves, every
image decodes, each view shows what it says, and hostile file names show as text and run nothing."""

import os
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from browser import browse
from PIL import Image

from kerasviz import optimize
from kerasviz.atlas import gallery

QUICK = dict(preset="fast", size=16, steps=2, progress=False, batch_size=4)
VIEWS = ("accentuated", "concepts")
HOSTILE = "<svg onload=window.__pwned=1>.png"
HOSTILE_ATTRIBUTE = '"><img src=x onerror=window.__pwned=1>.png'
N_IMAGES = 10


def _folder(path):
    """A folder of small images with hostile names among them: noise of varied brightness and contrast."""
    path.mkdir()
    rng = np.random.default_rng(0)
    names = [HOSTILE, HOSTILE_ATTRIBUTE] + [f"img{i}.png" for i in range(N_IMAGES - 2)]
    for name in names:
        base = rng.uniform(0.1, 0.9, (1, 1, 3))
        image = np.clip(base + rng.normal(0, 1, (24, 24, 3)) * rng.uniform(0.05, 0.3), 0, 1)
        Image.fromarray((image * 255).astype("uint8")).save(path / name)
    return str(path)


def make_small_cnn():
    """The conftest's tiny CNN at a fixed 24 px input, so that a folder's images are read at 24 px (not 224)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="predictions")(x), name="small_cnn")


def _options(tmp_path_factory):
    return dict(layers=["conv2"], filters=range(3), examples=_folder(tmp_path_factory.mktemp("data") / "photos"),
                views=VIEWS, class_index=1, top_k=2, **QUICK)


@pytest.fixture(scope="module")
def small_cnn():
    return make_small_cnn()


@pytest.fixture(scope="module")
def site(small_cnn, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    options = _options(tmp_path_factory)
    index, result = gallery.make_gallery(small_cnn, tmp_path_factory.mktemp("site"), cache_dir=cache, **options)
    return index, result, cache, options


def _url(path):
    return "file://" + os.path.abspath(path)


def _pages(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".html"))


def test_every_page_loads_links_resolve_images_decode_and_nothing_runs(site):
    index, _, _, _ = site
    pages = _pages(os.path.dirname(index))

    def check(page):
        for path in pages:
            page.goto(_url(path))
            assert page.evaluate("() => window.__pwned") is None, path
            undecoded = page.eval_on_selector_all(
                "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            assert undecoded == [], path
            for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
                target = urlparse(href)
                assert target.scheme == "file" and os.path.isfile(unquote(target.path)), (path, href)

    browse(check)


def test_unit_pages_show_their_top_examples_accentuated(site):
    index, _, _, _ = site
    root = os.path.dirname(index)

    def check(page):
        page.goto(_url(os.path.join(root, "conv2", "f00001.html")))
        assert page.locator("h2", has_text="Accentuated").count() == 1
        figures = page.locator(".accentuated figure")
        assert figures.count() == 3 and figures.first.locator("img").count() == 2  # before, after
        captions = figures.all_inner_texts()
        gains = [float(t.split("gain ")[1].split(" ")[0]) for t in captions]
        assert all(np.isfinite(g) for g in gains)
        names = " ".join(captions)
        shown = [n for n in (HOSTILE, HOSTILE_ATTRIBUTE) if n in names]
        examples = page.locator(".examples:not(.accentuated) figure").all_inner_texts()
        assert shown == [n for n in (HOSTILE, HOSTILE_ATTRIBUTE) if n in " ".join(examples[:3])]

    browse(check)


def test_the_concepts_page_ranks_concepts_links_their_units_and_shows_their_patches(site):
    index, _, _, _ = site
    root = os.path.dirname(index)

    def check(page):
        page.goto(_url(os.path.join(root, "conv2", "index.html")))
        with page.expect_navigation():
            page.click("a[href='concepts.html']")
        sections = page.locator("section.concept")
        assert sections.count() == 8
        importance = [float(t.split("importance ")[1]) for t in page.locator("section.concept h2").all_inner_texts()]
        assert importance == sorted(importance, reverse=True)
        assert page.locator("section.concept .patch").count() >= 8
        names = {HOSTILE, HOSTILE_ATTRIBUTE} | {f"img{i}.png" for i in range(N_IMAGES - 2)}
        assert set(page.locator(".patch .source").all_inner_texts()) <= names  # hostile names as text
        assert page.eval_on_selector_all(".patch img", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
        # the composition links the units the gallery holds (0, 1, 2 of conv2's 16), names the others
        linked = page.eval_on_selector_all(".composition a", "links => links.map(a => a.textContent)")
        assert linked and set(linked) <= {"#0", "#1", "#2"}
        with page.expect_navigation():
            page.locator(".composition a").first.click()
        assert page.url.endswith(f"/conv2/f0000{linked[0][1]}.html")

    browse(check)


def test_a_second_run_computes_nothing_and_writes_the_same_pages(site, small_cnn, tmp_path, monkeypatch):
    index, _, cache, options = site

    def no_run(*args, **kwargs):
        raise AssertionError("computed something on a resumed run")

    monkeypatch.setattr(optimize.Plan, "run", no_run)
    out = tmp_path / "again"
    gallery.make_gallery(small_cnn, out, cache_dir=cache, **options)
    root = os.path.dirname(index)
    for name in ("f00001.html", "f00001-acc0.png", "f00002-acc2-photo.png", "concepts.html", "concept3.png",
                 "concept0-h0.png"):
        with open(os.path.join(root, "conv2", name), "rb") as f, open(out / "conv2" / name, "rb") as g:
            assert f.read() == g.read(), name


def test_views_from_images_need_the_images(small_cnn, tmp_path):
    with pytest.raises(ValueError, match="views='accentuated' need your images: give examples="):
        gallery.make_gallery(small_cnn, tmp_path / "site", views="accentuated", **QUICK)
    assert not os.path.exists(tmp_path / "site")


def make_tiny_vit():
    """A ViT in plain Keras layers: 4 px patches of a 16 px image (a 4 x 4 grid and a class token), one block."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Reshape((16, 8), name="tokens")(keras.layers.Conv2D(8, 4, strides=4, name="patches")(inputs))
    cls = keras.layers.Lambda(lambda t: keras.ops.zeros_like(t[:, :1]), name="cls_zero")(x)
    x = keras.layers.Concatenate(axis=1, name="with_cls")([cls, x])
    for b in range(1):
        h = keras.layers.LayerNormalization(name=f"block{b}_ln")(x)
        h = keras.layers.Dense(16, activation="gelu", name=f"block{b}_mlp_hidden")(h)
        x = keras.layers.Add(name=f"block{b}_out")([x, keras.layers.Dense(8, name=f"block{b}_mlp_out")(h)])
    out = keras.layers.Dense(3, name="head")(keras.layers.Lambda(lambda t: t[:, 0], name="cls")(x))
    return keras.Model(inputs, out, name="tiny_vit")


def test_a_vit_gallery_shows_each_blocks_mlp_hidden_layer_and_output(tmp_path):
    index, result = gallery.make_gallery(make_tiny_vit(), tmp_path / "site", filters=range(2), revive_steps=0,
                                         cache_dir=tmp_path / "cache", **dict(QUICK, size=None))
    assert list(result.layers) == ["block0_mlp_hidden", "block0_out"]

    def check(page):
        page.goto(_url(index))
        assert page.locator(".strip img").count() == 2 * 2
        page.goto(_url(tmp_path / "site" / "block0_mlp_hidden" / "f00001.html"))
        assert page.eval_on_selector("img.big", "i => i.complete && i.naturalWidth") == 16

    browse(check)
