"""Make the explorer's screenshots of docs/explorer.md from a real site: VGG16 (`weights="hed"`), a few units of
block3_conv3, block4_conv2 and block4_conv3, preset "fast", with every view (negative, diverse, dataset examples from
`skimage.data` photos, the heatmap over the cat photo), browsed in headless Chromium.

    python docs/make_explorer_images.py [--out /tmp/explorer-site] [--unit block4_conv3/f00005.html]

Writes docs/images/explorer-unit-vgg16.png and docs/images/explorer-layer-vgg16.png, and prints how long each
part took. The atlas cache (`--cache`) makes a second run a few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))
sys.path.insert(0, os.path.join(os.path.dirname(DOCS), "tests"))  # tests/browser.py finds the Chromium

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel")
LAYERS = ("block3_conv3", "block4_conv2", "block4_conv3")
# the first units of each layer, and the block4_conv2 units that block4_conv3 #5 reads most (its incoming thumbnails)
FILTERS = (0, 1, 2, 3, 4, 5, 6, 34, 77, 101, 372, 495)
SHOT_WIDTH = 1100


def _photos(folder: str) -> None:
    """The skimage photos, each also mirrored and its centre cut out: 24 images."""
    from PIL import Image
    from skimage import data

    for name in PHOTOS:
        img = getattr(data, name)()
        Image.fromarray(img).save(os.path.join(folder, f"{name}.png"))
        Image.fromarray(img[:, ::-1]).save(os.path.join(folder, f"{name}_mirrored.png"))
        h, w = img.shape[:2]
        Image.fromarray(img[h // 4: 3 * h // 4, w // 4: 3 * w // 4]).save(os.path.join(folder, f"{name}_centre.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "explorer-site"))
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "explorer-cache"))
    parser.add_argument("--unit", default="block4_conv3/f00005.html", help="the unit page to capture")
    args = parser.parse_args()

    import kerasviz as kv
    from kerasviz.atlas import gallery

    photos = os.path.join(args.cache, "photos")
    os.makedirs(photos, exist_ok=True)
    _photos(photos)
    cat = os.path.join(photos, "chelsea.png")
    t0 = time.perf_counter()
    net = kv.get_model("VGG16", weights="hed")
    index, result = gallery.make_gallery(net, args.out, list(LAYERS), filters=FILTERS, preset="fast",
                                         views="negative,diverse", examples=photos, image=cat,
                                         cache_dir=args.cache, title="VGG16 (hed)")
    print(result.summary())
    print(f"site with every view: {time.perf_counter() - t0:.1f} s")

    from browser import find_chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": SHOT_WIDTH, "height": 900})
        page.goto("file://" + os.path.join(os.path.abspath(args.out), args.unit))
        page.screenshot(path=os.path.join(DOCS, "images", "explorer-unit-vgg16.png"), full_page=True)
        page.goto("file://" + os.path.join(os.path.abspath(args.out), LAYERS[-1], "index.html"))
        page.click('button[data-sort="score"]')
        page.screenshot(path=os.path.join(DOCS, "images", "explorer-layer-vgg16.png"))
        browser.close()
    from PIL import Image

    for name in ("explorer-unit-vgg16.png", "explorer-layer-vgg16.png"):  # 256 colours: well under 300 KB
        path = os.path.join(DOCS, "images", name)
        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


if __name__ == "__main__":
    main()
