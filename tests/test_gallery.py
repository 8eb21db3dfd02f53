import os
import re

import numpy as np
import pytest
from browser import browse
from PIL import Image

from kerasviz import atlas, cli
from kerasviz.atlas import gallery

QUICK = dict(preset="fast", size=16, steps=2, progress=False, batch_size=4)
VIEWPORT = {"width": 1000, "height": 720}


@pytest.fixture(scope="module")
def site(tiny_cnn, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    cache = tmp_path_factory.mktemp("cache")
    index, result = gallery.make_gallery(tiny_cnn, out, cache_dir=cache, views="negative,diverse", **QUICK)
    return index, result


def fake_layer(name, n=3, layer_type="Conv2D"):
    rng = np.random.default_rng(0)
    return atlas.LayerAtlas(
        layer=name, filters=list(range(n)), images=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
        scores=np.arange(n, dtype="float32"), computed=list(range(n)), cached=[], seconds=0.0, batch_size=n,
        interrupted=False, layer_type=layer_type, output_shape=(None, None, None, n), channels=n,
        settings={"model": "m", "layer": name, "settings": {"size": 8}}, cache_path="",
    )


def test_gallery_in_headless_chromium(site):
    index, result = site
    assert list(result.layers) == ["conv1", "conv2"]
    all_loaded = "imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"

    def check(page):
        page.goto("file://" + os.path.abspath(index))
        assert page.title() == "tiny_cnn"
        assert page.locator("table").first.locator("tr").count() == 3  # header + 2 layers
        assert page.eval_on_selector_all("img.thumb", all_loaded)
        assert page.locator(".strip").first.locator("img").count() == 8  # conv1's 8 units, strongest first

        with page.expect_navigation():
            page.locator('a[href="conv2/index.html"]').first.click()
        assert page.url.endswith("/conv2/index.html")
        assert page.locator(".grid img").count() == 16
        assert page.eval_on_selector_all(".grid img", all_loaded)

        with page.expect_navigation():
            page.locator(".grid a").nth(5).click()
        assert page.url.endswith("/conv2/f00005.html")
        assert page.eval_on_selector_all("img.big", all_loaded)
        assert page.eval_on_selector("img.big", "i => i.naturalWidth") == 16
        assert "rank" in page.inner_text("body")

        # incoming units: thumbnails of conv1's own pictures, linked to their pages, with kernel heatmaps
        assert page.locator("h2", has_text="Incoming").count() == 1
        incoming = page.locator("h2:has-text('Incoming') + p + .cards .card")
        assert incoming.count() == 6
        assert page.eval_on_selector_all(".card img.kernel", all_loaded)
        assert "via pool1 (MaxPooling2D): no weights" in incoming.first.inner_text()
        with page.expect_navigation():
            incoming.first.locator("a").first.click()
        assert "/conv1/f0000" in page.url
        assert page.eval_on_selector_all("img.big", all_loaded)
        # outgoing: the conv2 units that read this conv1 unit most, linked back
        outgoing = page.locator("h2:has-text('Outgoing') + p + .cards .card a")
        assert outgoing.count() == 2 * 6
        with page.expect_navigation():
            outgoing.first.click()
        assert "/conv2/f000" in page.url
        with page.expect_navigation():
            page.locator('a[rel="next"], a[rel="prev"]').first.click()
        assert "/conv2/f000" in page.url

    browse(check)


def test_every_page_exists_and_no_link_is_broken(site):
    index, result = site
    root = os.path.dirname(index)
    for layer in ("conv1", "conv2"):
        names = set(os.listdir(os.path.join(root, layer)))
        n = len(result[layer].filters)
        assert len([x for x in names if re.fullmatch(r"f\d{5}\.png", x)]) == n
        assert len([x for x in names if re.fullmatch(r"f\d{5}-(neg|div[0-3])\.png", x)]) == 5 * n
        assert len([x for x in names if x.endswith(".html") and x.startswith("f")]) == n

    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".html"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    text = f.read()
                for link in re.findall(r'(?:href|src)="([^"]+)"', text):
                    if not link.startswith("data:"):
                        assert os.path.exists(os.path.join(folder, link)), (name, link)
                assert "http://" not in text and "https://" not in text


def test_all_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    index = gallery.write_gallery([fake_layer(evil, layer_type='"><b>t</b>'), fake_layer("plain")], tmp_path,
                                  title="<i>title</i>")
    pages = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".html")]
    assert len(pages) == 1 + 2 * (1 + 3)
    for path in pages:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert "<script>" not in text and "<i>title" not in text and "<b>t</b>" not in text
    with open(index, encoding="utf-8") as f:
        text = f.read()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text and "&lt;i&gt;title&lt;/i&gt;" in text
    assert sorted(os.listdir(tmp_path)) == ["index.html", "plain", "script_alert_x___script", "static"]
    with open(os.path.join(tmp_path, "static", "site.js"), encoding="utf-8") as f:
        data = f.read()
    assert "<" not in data and ">" not in data and "\\u003cscript\\u003e" in data


def test_write_gallery_rejects_what_it_cannot_show(tmp_path):
    with pytest.raises(TypeError, match="atlases must be a ModelAtlas, a LayerAtlas or a list of LayerAtlas. "
                                        "Received: str"):
        gallery.write_gallery("conv1", tmp_path)
    empty = fake_layer("conv1", n=0)
    with pytest.raises(ValueError, match="hold no picture"):
        gallery.write_gallery(empty, tmp_path)


def test_cli_gallery_runs_then_resumes_from_the_cache(tiny_cnn, tmp_path, capsys):
    path = str(tmp_path / "tiny.keras")
    tiny_cnn.save(path)
    out, cache = str(tmp_path / "site"), str(tmp_path / "cache")
    argv = ["gallery", path, "--weights", "none", "--layers", "conv1", "--filters", "0-3", "--preset", "fast",
            "--size", "16", "--steps", "2", "--batch-size", "4", "--out", out, "--cache-dir", cache, "--quiet"]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert "conv1" in first and os.path.exists(os.path.join(out, "index.html"))
    assert sorted(x for x in os.listdir(os.path.join(out, "conv1")) if x.endswith(".png")) == [
        "f00000.png", "f00001.png", "f00002.png", "f00003.png", "thumb.png"]
    assert cli.main(argv) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("conv1")][0]
    assert row.split()[1:4] == ["4", "0", "4"]  # filters, computed, cached
    assert cli.main([*argv[:5], "conv9", *argv[6:]]) == 2
    assert "Layer 'conv9' not found" in capsys.readouterr().err


def test_a_layer_named_static_does_not_take_the_static_folder(tmp_path):
    gallery.write_gallery([fake_layer("static"), fake_layer("plain")], tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["index.html", "plain", "static", "static_2"]
    assert sorted(os.listdir(tmp_path / "static")) == ["explorer.css", "explorer.js", "site.js"]


def test_the_revived_line_counts_the_revived_units_and_marks_them(tmp_path):
    plain, revived = fake_layer("plain"), fake_layer("conv")
    revived.revived = [1]
    gallery.write_gallery([plain, revived], tmp_path)
    with open(tmp_path / "conv" / "index.html", encoding="utf-8") as f:
        text = f.read()
    assert "1 of 3 units revived" in text and text.count('class="revived"') == 1 and "#1 · 1 ↻" in text
    with open(tmp_path / "conv" / "f00001.html", encoding="utf-8") as f:
        assert "revived ↻" in f.read()
    with open(tmp_path / "plain" / "index.html", encoding="utf-8") as f:
        text = f.read()
    assert "No unit of the 3 needed reviving" in text and 'class="revived"' not in text


def _url(path):
    return "file://" + os.path.abspath(path)


def test_explorer_every_page_loads_every_link_resolves_every_image_decodes(site):
    from urllib.parse import unquote, urlparse

    index, _ = site
    root = os.path.dirname(index)
    pages = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".html"))
    assert len(pages) == 1 + (1 + 8) + (1 + 16)

    def check(page):
        for path in pages:
            page.goto(_url(path))
            assert page.evaluate("() => window.KV_SITE.layers.length") == 2, path
            assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(17, 17, 17)"
            undecoded = page.eval_on_selector_all(
                "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            assert page.locator("img").count() > 0 and undecoded == [], path
            for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
                target = urlparse(href)
                assert target.scheme == "file" and os.path.isfile(unquote(target.path)), (path, href)

    browse(check, viewport=VIEWPORT)


def test_explorer_sort_search_and_keys(site):
    index, result = site
    root = os.path.dirname(index)
    conv2 = result["conv2"]
    by_score = [int(conv2.filters[i]) for i in np.argsort(-conv2.scores, kind="stable")]
    assert by_score != list(conv2.filters)
    units = "figs => figs.map(f => Number(f.dataset.unit))"

    def check(page):
        page.goto(_url(os.path.join(root, "conv2", "index.html")))
        assert page.eval_on_selector_all(".grid figure", units) == list(range(16))
        assert "Conv2D" in page.inner_text(".layer-info") and "(None, None, None, 16)" in page.inner_text(
            ".layer-info")
        page.click('button[data-sort="score"]')
        assert page.eval_on_selector_all(".grid figure", units) == by_score
        assert page.get_attribute('button[data-sort="score"]', "aria-pressed") == "true"
        page.click('button[data-sort="index"]')
        assert page.eval_on_selector_all(".grid figure", units) == list(range(16))
        # a bare unit number on a layer page; an unknown one says so and stays
        page.keyboard.press("/")
        assert page.evaluate("() => document.activeElement.id") == "search"
        page.keyboard.type("99")
        page.keyboard.press("Enter")
        assert "not in this gallery" in page.inner_text("#search-message")
        page.fill("#search", "7")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith("/conv2/f00007.html")

        # keys on a unit page: right, left, up
        with page.expect_navigation():
            page.keyboard.press("ArrowRight")
        assert page.url.endswith("/conv2/f00008.html")
        with page.expect_navigation():
            page.keyboard.press("ArrowLeft")
        assert page.url.endswith("/conv2/f00007.html")
        with page.expect_navigation():
            page.keyboard.press("ArrowUp")
        assert page.url.endswith("/conv2/index.html")

        # layer:unit from the model index
        page.goto(_url(index))
        page.keyboard.press("Enter")  # nothing typed, focus on the body: no navigation, no error
        page.keyboard.press("/")
        page.keyboard.type("conv2:3")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith("/conv2/f00003.html")
        assert page.inner_text("h1") == "conv2 filter 3"
        page.keyboard.press("/")
        page.keyboard.type("conv1:3")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith("/conv1/f00003.html")

    browse(check, viewport=VIEWPORT)


def test_explorer_screenshots(site, tmp_path):
    """Screenshots of a unit page and a layer page; KERASVIZ_SCREENSHOTS=docs writes them into docs/images."""
    index, _ = site
    root = os.path.dirname(index)
    shots = {"explorer_unit.png": os.path.join(root, "conv2", "f00003.html"),
             "explorer_layer.png": os.path.join(root, "conv2", "index.html")}
    docs = os.environ.get("KERASVIZ_SCREENSHOTS") == "docs"
    folder = os.path.join(os.path.dirname(__file__), "..", "docs", "images") if docs else str(tmp_path)

    def check(page):
        for name, path in shots.items():
            page.goto(_url(path))
            if name == "explorer_layer.png":
                page.click('button[data-sort="score"]')
            page.screenshot(path=os.path.join(folder, name), full_page=name == "explorer_layer.png")

    browse(check, viewport=VIEWPORT)
    for name in shots:
        assert os.path.getsize(os.path.join(folder, name)) > 2000


def test_unit_page_shows_negative_and_diverse_pictures_labelled_with_scores(site):
    index, _ = site
    root = os.path.dirname(index)

    def check(page):
        page.goto(_url(os.path.join(root, "conv2", "f00003.html")))
        captions = page.eval_on_selector_all(".views figcaption", "fs => fs.map(f => f.textContent)")
        assert [c.split(" · ")[0] for c in captions] == ["positive", "negative"] + [f"diverse {j}" for j in range(1, 5)]
        assert all(np.isfinite(float(c.split(" · ")[1])) for c in captions)
        sizes = page.eval_on_selector_all(".views img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert sizes == [16] * 6

    browse(check, viewport=VIEWPORT)
    folder = os.path.join(root, "conv2")
    pictures = [np.asarray(Image.open(os.path.join(folder, f"f00003-div{j}.png"))) for j in range(4)]
    assert min(np.abs(a.astype(int) - b).mean() for i, a in enumerate(pictures) for b in pictures[i + 1:]) > 1


def test_a_second_run_computes_nothing_and_writes_the_same_site(site, tiny_cnn, tmp_path, monkeypatch):
    from kerasviz import optimize

    index, first = site
    cache = os.path.join(os.path.dirname(first["conv1"].cache_path), "..")

    def no_run(*args, **kwargs):
        raise AssertionError("computed something on a resumed run")

    monkeypatch.setattr(optimize.Plan, "run", no_run)
    out = tmp_path / "again"
    _, again = gallery.make_gallery(tiny_cnn, out, cache_dir=cache, views="negative,diverse", **QUICK)
    assert all(a.computed == [] for a in again.layers.values())
    root = os.path.dirname(index)
    for name in ("f00003.html", "f00003-neg.png", "f00003-div2.png", "index.html"):
        with open(os.path.join(root, "conv2", name), "rb") as f, open(out / "conv2" / name, "rb") as g:
            assert f.read() == g.read(), name


def _dead_and_alive():
    from conftest import make_grating_model

    model = make_grating_model()
    conv = model.get_layer("gabor")
    kernel, bias = conv.get_weights()
    bias[0], bias[1] = -0.4 * np.maximum(kernel[..., 0], 0).sum(), 0.1  # filter 0 dead at the start
    conv.set_weights([kernel, bias])
    return model


def test_revived_units_are_marked_from_a_real_run_and_from_the_cache(tmp_path):
    import json

    options = dict(layers=["gabor"], filters=[0, 1], preset="fast", size=32, steps=1, lr=1e-6, revive_steps=60,
                   progress=False, cache_dir=tmp_path / "cache")
    for run in range(2):
        _, result = gallery.make_gallery(_dead_and_alive(), tmp_path / "site", **options)
        assert result["gabor"].revived == [0] and len(result["gabor"].computed) == (2 if run == 0 else 0)
        with open(tmp_path / "site" / "gabor" / "index.html", encoding="utf-8") as f:
            text = f.read()
        assert "1 of 2 units revived" in text and text.count('class="revived"') == 1
    with open(os.path.join(result["gabor"].cache_path, "00000.json"), encoding="utf-8") as f:
        assert json.load(f)["revived"] is True


def test_pages_appear_as_layers_finish_and_unfinished_units_show_as_pending(tiny_cnn, tmp_path):
    import shutil

    from kerasviz.engine.progress import Callback

    out, snapshot = tmp_path / "site", tmp_path / "while-running"

    class SnapshotThenStop(Callback):
        """Copies the site once conv1 is done, stops conv2 after its first batch."""

        def __init__(self):
            self.conv2_batches = 0

        def on_end(self):
            if (out / "conv1" / "f00000.html").exists():
                if not snapshot.exists():
                    shutil.copytree(out, snapshot)
                self.conv2_batches += 1
                if self.conv2_batches == 2:
                    raise KeyboardInterrupt

    options = dict(QUICK, cache_dir=tmp_path / "cache")
    _, result = gallery.make_gallery(tiny_cnn, out, callbacks=[SnapshotThenStop()], **options)
    assert result.interrupted and len(result["conv2"].filters) == 4

    def check(page):
        page.goto(_url(snapshot / "index.html"))
        rows = page.locator("tr")
        assert "pending" in rows.nth(2).inner_text() and "pending" not in rows.nth(1).inner_text()
        page.goto(_url(snapshot / "conv2" / "index.html"))
        assert "Pending" in page.inner_text("body")
        page.goto(_url(snapshot / "conv1" / "f00002.html"))
        page.keyboard.press("/")
        page.keyboard.type("conv2:3")
        page.keyboard.press("Enter")
        assert "still being computed" in page.inner_text("#search-message")
        page.goto(_url(out / "conv2" / "index.html"))
        assert page.locator(".grid figure.pending").count() == 12 and page.locator(".grid figure img").count() == 4
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            assert os.path.isfile(href[len("file://"):]), href

    browse(check, viewport=VIEWPORT)
    _, resumed = gallery.make_gallery(tiny_cnn, out, **options)
    assert len(resumed["conv2"].computed) == 12 and not resumed.interrupted
    assert not os.path.exists(out / "conv2" / "pending")
    with open(out / "conv2" / "index.html", encoding="utf-8") as f:
        assert 'class="pending"' not in f.read()


def test_cli_gallery_views_flag(tiny_cnn, tmp_path, capsys):
    path = str(tmp_path / "tiny.keras")
    tiny_cnn.save(path)
    out = str(tmp_path / "site")
    argv = ["gallery", path, "--weights", "none", "--layers", "conv1", "--filters", "0-1", "--preset", "fast",
            "--size", "16", "--steps", "2", "--batch-size", "4", "--out", out, "--cache-dir",
            str(tmp_path / "cache"), "--quiet"]
    assert cli.main([*argv, "--views", "negative"]) == 0
    assert sorted(x for x in os.listdir(os.path.join(out, "conv1")) if x.endswith(".png")) == [
        "f00000-neg.png", "f00000.png", "f00001-neg.png", "f00001.png", "thumb.png"]
    capsys.readouterr()
    assert cli.main([*argv, "--views", "negativ"]) == 2
    assert ("Unknown view 'negativ'. Expected some of negative, diverse, alpha, accentuated, concepts, atlas-map. "
            "Did you mean 'negative'?") in capsys.readouterr().err


def test_dataset_examples_and_the_image_heatmap_on_unit_pages(tiny_cnn, hopper, tmp_path):
    photos = np.random.default_rng(0).uniform(size=(12, 24, 24, 3)).astype("float32")
    out = tmp_path / "site"
    index, _ = gallery.make_gallery(tiny_cnn, out, layers=["conv2"], filters=range(4), examples=photos,
                                    image=hopper, cache_dir=tmp_path / "cache", **QUICK)

    def check(page):
        page.goto(_url(out / "conv2" / "f00002.html"))
        assert page.locator("h2", has_text="Dataset examples").count() == 1
        examples = page.locator(".examples figure")
        assert examples.count() == 9
        activations = [float(t.split("\n")[0]) for t in examples.all_inner_texts()]
        assert activations == sorted(activations, reverse=True)
        assert examples.first.locator("img").get_attribute("title").startswith("#")
        assert page.eval_on_selector_all(".examples img, img.overlay",
                                         "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
        assert page.eval_on_selector("img.overlay", "i => [i.naturalWidth, i.naturalHeight]") == [32, 40]
        assert "your image" in page.inner_text("body")

    browse(check, viewport=VIEWPORT)


def test_cli_gallery_examples_and_image_flags(tiny_cnn, tmp_path, capsys):
    path = str(tmp_path / "tiny.keras")
    tiny_cnn.save(path)
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    out = tmp_path / "site"
    argv = ["gallery", path, "--weights", "none", "--layers", "conv1", "--filters", "0-1", "--preset", "fast",
            "--size", "16", "--steps", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--examples", str(folder), "--image", str(folder / "p0.png")]
    assert cli.main(argv) == 0
    names = os.listdir(out / "conv1")
    assert sorted(x for x in names if x.startswith("f00001-")) == [
        "f00001-ex0.png", "f00001-ex1.png", "f00001-ex2.png", "f00001-ex3.png", "f00001-ex4.png", "f00001-heat.png"]
    with open(out / "conv1" / "f00001.html", encoding="utf-8") as f:
        text = f.read()
    assert "p0.png" in text and "Over your image" in text
    capsys.readouterr()
    assert cli.main([*argv[:-4], "--examples", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_an_unknown_option_fails_before_anything_is_written(tiny_cnn, tmp_path):
    with pytest.raises(TypeError, match="Unknown setting 'sise'. Did you mean 'size'"):
        gallery.make_gallery(tiny_cnn, tmp_path / "site", sise=16, **QUICK)
    assert not os.path.exists(tmp_path / "site")


def test_explorer_leads_with_the_layers_and_scales_pictures_smoothly(site):
    """The index opens on its layers (the settings collapsed after them), and the 16 px pictures drawn at 128 or
    512 px are scaled smoothly, not blown up as pixel blocks; only kernel heatmaps keep hard edges."""
    index, _ = site
    rendering = "imgs => imgs.map(i => getComputedStyle(i).imageRendering)"

    def check(page):
        page.goto("file://" + os.path.abspath(index))
        first = page.locator("body > table, body > details, body > h2").first
        assert first.evaluate("e => e.tagName") == "TABLE" and "layer" in first.locator("th").first.inner_text()
        settings = page.locator("details.settings")
        assert settings.count() == 1 and not settings.evaluate("d => d.open")
        assert settings.evaluate("d => d.previousElementSibling.tagName") == "TABLE"
        assert set(page.eval_on_selector_all(".strip img", rendering)) == {"auto"}
        page.goto("file://" + os.path.abspath(os.path.join(os.path.dirname(index), "conv2", "index.html")))
        assert set(page.eval_on_selector_all(".grid img", rendering)) == {"auto"}
        page.goto("file://" + os.path.abspath(os.path.join(os.path.dirname(index), "conv2", "f00001.html")))
        assert page.eval_on_selector_all("img.big", rendering) == ["auto"]
        assert set(page.eval_on_selector_all(".views img, .card img.tile", rendering)) == {"auto"}
        assert set(page.eval_on_selector_all(".card img.kernel", rendering)) == {"pixelated"}
        assert page.locator("details.settings").count() == 1

    browse(check)
