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
VIEWS = ("alpha", "accentuated", "concepts", "atlas-map")
VIEW_SETTINGS = {"concepts": {"n": 4}, "atlas-map": {"grid": 4, "budget": 1000, "min_count": 2}}
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
                views=VIEWS, view_settings=VIEW_SETTINGS, class_index=1, top_k=2, **QUICK)


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


def _from_the_layer_page(page, site, link):
    """Open conv2's layer page and follow its link to `link` (the index links it too)."""
    page.goto(_url(site[0]))
    assert page.locator(f"a.layer-page[href='conv2/{link}']").count() == 1
    page.goto(_url(os.path.join(os.path.dirname(site[0]), "conv2", "index.html")))
    with page.expect_navigation():
        page.click(f"a[href='{link}']")


def test_the_concepts_page_ranks_concepts_links_their_units_and_shows_their_patches(site):
    def check(page):
        _from_the_layer_page(page, site, "concepts.html")
        sections = page.locator("section.concept")
        assert sections.count() == 4
        importance = [float(t.split("importance ")[1]) for t in page.locator("section.concept h2").all_inner_texts()]
        assert importance == sorted(importance, reverse=True)
        assert page.locator("section.concept .patch").count() >= 4
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


def test_the_atlas_page_links_every_cell_to_its_page(site):
    def check(page):
        _from_the_layer_page(page, site, "atlas-map.html")
        assert page.eval_on_selector(".atlas-map img", "i => i.complete && i.naturalWidth > 0")
        cells = page.locator(".atlas-map a.cell")
        assert cells.count() >= 1
        # each cell's link covers its place on the image: inside the image, none on top of another
        boxes = page.eval_on_selector_all(".atlas-map a.cell", "as => as.map(a => a.getBoundingClientRect())"
                                          ".map(r => [r.left, r.top, r.width, r.height])")
        frame = page.eval_on_selector(".atlas-map img", "i => { const r = i.getBoundingClientRect(); "
                                                        "return [r.left, r.top, r.width, r.height]; }")
        assert all(b[0] >= frame[0] - 1 and b[1] >= frame[1] - 1 and b[0] + b[2] <= frame[0] + frame[2] + 1
                   and abs(b[2] - frame[2] / 4) < 1 for b in boxes)
        assert len({(round(b[0]), round(b[1])) for b in boxes}) == len(boxes)
        with page.expect_navigation():
            cells.first.click()
        assert "/conv2/cell-r" in page.url
        assert "activation vectors in this cell" in page.inner_text("body")
        assert page.eval_on_selector_all("img", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator(".examples figure").count() >= 1
        with page.expect_navigation():
            page.click("a[rel='up']")
        assert page.url.endswith("/conv2/atlas-map.html")

    browse(check)


def test_the_alpha_view_shows_each_units_maco_picture_and_the_maps_its_cache_holds(site, small_cnn):
    """The alpha view of a `fast` atlas: every unit gets its MACO picture, and its transparency exactly where the
    MACO run stored a map (`Result.alpha` through `FilterCache`; the drawing is checked on a cache that holds maps
    in `test_an_atlas_whose_cache_holds_transparency_maps_shows_them`)."""
    from kerasviz import atlas
    from kerasviz.atlas import pictures

    index, _, cache, _ = site
    folder = os.path.join(os.path.dirname(index), "conv2")
    quick = {k: v for k, v in QUICK.items() if k != "preset"}
    maco = atlas.layer_atlas(small_cnn, "conv2", range(3), cache_dir=cache, preset="maco", **quick)
    assert maco.computed == []  # the view's pictures are this atlas, cached
    for f in range(3):
        with open(os.path.join(folder, f"f0000{f}.html"), encoding="utf-8") as page:
            text = page.read()
        assert f'src="f0000{f}-maco.png"' in text and "maco · " in text
        shown = np.asarray(Image.open(os.path.join(folder, f"f0000{f}-maco.png")))
        np.testing.assert_array_equal(shown, maco.images[f])
    with_map = {f for f in range(3) if os.path.exists(os.path.join(folder, f"f0000{f}-maco-alpha.png"))}
    assert with_map == set(pictures.alpha_maps(maco))


def _layer_atlas(name, pictures, cache_path):
    """A `LayerAtlas` of `pictures` (one per filter, all cached) as the gallery gets it."""
    from kerasviz.atlas import LayerAtlas

    n = len(pictures)
    return LayerAtlas(layer=name, filters=list(range(n)), images=pictures, scores=np.ones(n, "float32"), computed=[],
                      cached=list(range(n)), seconds=0.0, batch_size=n, interrupted=False, layer_type="Conv2D",
                      output_shape=(None, None, None, n), channels=n, settings={}, cache_path=cache_path)


def test_an_atlas_whose_cache_holds_transparency_maps_shows_them(tmp_path):
    from kerasviz.atlas import FilterCache

    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    cache = FilterCache(str(tmp_path / "cache"), {})
    cache.store(0, pictures[0], score=1.0, seconds=0.1, alpha=np.linspace(0, 1, 256).reshape(16, 16))
    cache.store(1, pictures[1], score=1.0, seconds=0.1)  # no map
    gallery.write_gallery(_layer_atlas("conv", pictures, str(tmp_path / "cache")), tmp_path / "site")
    shown = np.asarray(Image.open(tmp_path / "site" / "conv" / "f00000-alpha.png")).astype(int)
    assert np.abs(shown[-1, -1] - pictures[0][-1, -1]).max() <= 1  # opaque where the map is 1
    assert shown[0, 0].tolist() in ([102] * 3, [153] * 3)  # the checkerboard where it is 0
    assert not os.path.exists(tmp_path / "site" / "conv" / "f00001-alpha.png")
    with open(tmp_path / "site" / "conv" / "f00000.html", encoding="utf-8") as f:
        assert "transparency" in f.read()


def test_a_second_run_computes_nothing_and_writes_the_same_pages(site, small_cnn, tmp_path, monkeypatch):
    index, _, cache, options = site

    def no_run(*args, **kwargs):
        raise AssertionError("computed something on a resumed run")

    monkeypatch.setattr(optimize.Plan, "run", no_run)
    out = tmp_path / "again"
    gallery.make_gallery(small_cnn, out, cache_dir=cache, **options)
    root = os.path.dirname(index)
    names = [x for x in os.listdir(os.path.join(root, "conv2")) if x.startswith("cell-r")][:2]
    for name in ("f00001.html", "f00001-acc0.png", "f00002-acc2-photo.png", "f00001-maco.png",
                 "concepts.html", "concept3.png", "concept0-h0.png", "atlas-map.html", "atlas-map.png", *names):
        with open(os.path.join(root, "conv2", name), "rb") as f, open(out / "conv2" / name, "rb") as g:
            assert f.read() == g.read(), name


def test_views_from_images_need_the_images(small_cnn, tmp_path):
    with pytest.raises(ValueError, match="views='accentuated' need your images: give examples="):
        gallery.make_gallery(small_cnn, tmp_path / "site", views="accentuated", **QUICK)
    with pytest.raises(ValueError, match=r"view_settings names views not asked for: \['concepts'\]"):
        gallery.make_gallery(small_cnn, tmp_path / "site", views="negative", view_settings={"concepts": {"n": 2}},
                             **QUICK)
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
    photos = np.random.default_rng(0).uniform(size=(6, 16, 16, 3)).astype("float32")
    index, result = gallery.make_gallery(make_tiny_vit(), tmp_path / "site", filters=range(2), examples=photos,
                                         image=photos[0], cache_dir=tmp_path / "cache", **dict(QUICK, size=None))
    assert list(result.layers) == ["block0_mlp_hidden", "block0_out"]

    def check(page):
        page.goto(_url(index))
        assert page.locator(".strip img").count() == 2 * 2
        page.goto(_url(tmp_path / "site" / "block0_mlp_hidden" / "f00001.html"))
        assert page.eval_on_selector("img.big", "i => i.complete && i.naturalWidth") == 16
        # the token layer's heatmap is the patch grid over the image; its examples are patches of the photos
        assert page.eval_on_selector("img.overlay", "i => [i.naturalWidth, i.naturalHeight]") == [16, 16]
        assert page.locator(".examples figure").count() == 6
        assert page.eval_on_selector_all(".examples img", "imgs => imgs.every(i => i.complete && i.naturalWidth)")

    browse(check)


def test_cli_gallery_flags_for_the_views_from_images(small_cnn, tmp_path, capsys):
    from kerasviz import cli

    path = str(tmp_path / "small.keras")
    small_cnn.save(path)
    out = tmp_path / "site"
    argv = ["gallery", path, "--weights", "none", "--layers", "conv2", "--filters", "0-1", "--preset", "fast",
            "--size", "16", "--steps", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert cli.main([*argv, "--atlas-map"]) == 2
    assert "views='atlas-map' need your images: give examples=" in capsys.readouterr().err
    folder = _folder(tmp_path / "photos")
    assert cli.main([*argv, "--examples", folder, "--accentuated", "--concepts", "--class-index", "2"]) == 0
    names = os.listdir(out / "conv2")
    assert "concepts.html" in names and "f00001-acc2.png" in names and "atlas-map.html" not in names
    with open(out / "conv2" / "concepts.html", encoding="utf-8") as f:
        assert "for class 2" in f.read()


def test_the_layer_pages_escape_layer_and_file_names(tmp_path):
    from kerasviz.atlas import layer_views

    evil = '<script>alert("x")</script>'
    tile = np.zeros((8, 8, 3), "uint8")
    card = dict(index=0, picture="concept0", importance=None, composition=[[1, 0.5, 1.0]],
                patches=[dict(crop="concept0-p0", heat=None, score=1.0, source=evil)])
    concepts = layer_views.LayerPage("concepts", dict(method="nmf", ranked=False, class_index=None, cards=[card]),
                                     {"concept0": tile, "concept0-p0": tile})
    cell = dict(file="cell-r00-c00", row=0, col=0, count=7, top_class=None,
                patches=[dict(crop="cell-r00-c00-p0", source=evil)])
    atlas_map = layer_views.LayerPage("atlas-map", dict(grid=2, total=9, cells=[cell], whole=False, class_index=None),
                                      {"atlas-map": tile, "cell-r00-c00": tile, "cell-r00-c00-p0": tile})
    views = {evil: gallery.LayerViews(pages={"concepts": concepts, "atlas-map": atlas_map})}
    pictures = np.zeros((3, 8, 8, 3), "uint8")
    gallery.write_gallery([_layer_atlas(evil, pictures, "")], tmp_path, views=views)
    folder = tmp_path / "script_alert_x___script"
    assert {"concepts.html", "atlas-map.html", "cell-r00-c00.html"} <= set(os.listdir(folder))
    for name in ("concepts.html", "atlas-map.html", "cell-r00-c00.html", "index.html"):
        with open(folder / name, encoding="utf-8") as f:
            text = f.read()
        assert "<script>alert" not in text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text, name
    with open(folder / "concepts.html", encoding="utf-8") as f:
        assert 'href="f00001.html"' in f.read()  # the composition links the unit page the gallery holds
