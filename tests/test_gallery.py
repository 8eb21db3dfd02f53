import os

import numpy as np
import pytest

from kerasviz import atlas, cli
from kerasviz.atlas import gallery

QUICK = dict(preset="fast", size=16, steps=2, progress=False, batch_size=4)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tiny_cnn, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    cache = tmp_path_factory.mktemp("cache")
    index, result = gallery.make_gallery(tiny_cnn, out, cache_dir=cache, **QUICK)
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
    from browser import find_chromium
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium, "No Chromium: run scripts/dev-setup.sh (the README's set-up) or set KERASVIZ_CHROMIUM"
    index, result = site
    assert list(result.layers) == ["conv1", "conv2"]
    problems, external = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else external.append(r.url))
            all_loaded = "imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"

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

            # incoming channels come from kerasviz.weights.top_inputs and link to conv1's pages
            assert page.locator("h2", has_text="Strongest incoming channels").count() == 1
            with page.expect_navigation():
                page.locator("table").first.locator("a").first.click()
            assert "/conv1/f0000" in page.url
            assert page.eval_on_selector_all("img.big", all_loaded)
            with page.expect_navigation():
                page.locator('a[rel="next"], a[rel="prev"]').first.click()
            assert "/conv1/f0000" in page.url
        finally:
            browser.close()
    assert problems == [] and external == []


def test_every_page_exists_and_no_link_is_broken(site):
    index, result = site
    root = os.path.dirname(index)
    for layer in ("conv1", "conv2"):
        names = set(os.listdir(os.path.join(root, layer)))
        n = len(result[layer].filters)
        assert len([x for x in names if x.endswith(".png") and x.startswith("f")]) == n
        assert len([x for x in names if x.endswith(".html") and x.startswith("f")]) == n
    import re

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
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text and "&lt;i&gt;title&lt;/i&gt;" in text
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


def test_the_revived_line_shows_only_when_the_atlas_says_which_were_revived(tmp_path):
    plain, revived = fake_layer("plain"), fake_layer("conv")
    revived.revived = [1]  # LayerAtlas carries no revived list yet; the gallery reads one where there is
    gallery.write_gallery([plain, revived], tmp_path)
    with open(tmp_path / "conv" / "index.html", encoding="utf-8") as f:
        text = f.read()
    assert "1 of 3 units revived" in text and text.count('class="revived"') == 1
    with open(tmp_path / "plain" / "index.html", encoding="utf-8") as f:
        assert "revived" not in f.read()


def _browse(check):
    """Run `check(browser, problems, external)` in headless Chromium."""
    from browser import find_chromium
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium, "No Chromium: run scripts/dev-setup.sh (the README's set-up) or set KERASVIZ_CHROMIUM"
    problems, external = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 720})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else external.append(r.url))
            check(page)
        finally:
            browser.close()
    assert problems == [] and external == []


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

    _browse(check)


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

    _browse(check)


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

    _browse(check)
    for name in shots:
        assert os.path.getsize(os.path.join(folder, name)) > 2000
