"""Make the pictures of docs/activation_atlas.md: activation atlases of the planted-parts CNN (tests/planted.py,
trained in seconds) and of VGG16 (`weights="hed"`, offline) over `skimage.data` photos.

    python docs/make_atlas_images.py [--only planted|vgg16]

Writes into docs/images/: `activation_atlas_planted.png` (the atlas of conv3), `activation_atlas_planted_map.png`
(its UMAP map, each position coloured by the planted part it sits on), `activation_atlas_planted_class.png`
(the class-filtered atlas of one class) and `activation_atlas_vgg16.png` (block4_conv3), and prints what each
took and the neighbourhood purity of the planted map.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))
sys.path.insert(0, os.path.join(os.path.dirname(DOCS), "tests"))  # planted.py
IMAGES = os.path.join(DOCS, "images")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel")
PLANTED_CLASS = 3  # parts 1 and 2: vertical stripes (green) and checks (blue)


def _photos():
    """The skimage photos at 160 px, each also mirrored and its centre cut out: 24 images, float [0, 1]."""
    import numpy as np
    from skimage import data

    from kerasviz import images

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]
        h, w = img.shape[:2]
        for view in (img, img[:, ::-1], img[h // 4: 3 * h // 4, w // 4: 3 * w // 4]):
            out.append(images.resize(view.astype("float32") / 255, (160, 160)))
    return np.stack(out)


def _map_figure(atlas, part_map, path: str) -> float:
    """The planted atlas's UMAP map, each position coloured by the part its 4 x 4 cell lies on; returns the
    kNN purity of the positions whose part is certain (the test's measure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import planted
    from sklearn.neighbors import NearestNeighbors

    s = atlas.samples
    cell = planted.IMAGE_SIZE // s.grid[0]
    part = np.array([part_map[i, y * cell + cell // 2, x * cell + cell // 2]
                     for i, y, x in zip(s.image_index, s.y, s.x, strict=True)])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(*atlas.coords[part < 0].T, s=2, c="0.8", label="background")
    for k in range(planted.PARTS):
        ax.scatter(*atlas.coords[part == k].T, s=4, color=planted.PART_COLORS[k], label=f"part {k}")
    ax.set(xlim=(0, 1), ylim=(1, 0), xticks=[], yticks=[], title=f"UMAP map of {atlas.layer} (row 0 at the top)")
    ax.legend(loc="lower right", fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    on = part >= 0
    _, near = NearestNeighbors(n_neighbors=11).fit(atlas.coords[on]).kneighbors(atlas.coords[on])
    return float(np.mean(part[on][near[:, 1:]] == part[on][:, None]))


def planted_pictures() -> None:
    import planted

    import kerasviz as kv

    t0 = time.perf_counter()
    model, accuracy = planted.trained_planted_model()
    net = kv.as_network(model, input_range=(0, 1))
    images, _, part_map = planted.planted_data(512, seed=7)
    print(f"planted CNN trained in {time.perf_counter() - t0:.0f} s (accuracy {accuracy:.2f})")
    t0 = time.perf_counter()
    atlas = kv.activation_atlas(net, planted.LATE_LAYER, images, grid=10, budget=4000, min_count=6, size=48,
                                steps=96, preset="fast")
    kv.save_image(atlas.image, os.path.join(IMAGES, "activation_atlas_planted.png"))
    purity = _map_figure(atlas, part_map, os.path.join(IMAGES, "activation_atlas_planted_map.png"))
    print(f"{atlas} in {time.perf_counter() - t0:.0f} s; kNN purity of the part positions (centre pixel) "
          f"{purity:.3f}; top classes {[c.top_class for c in atlas.cells]}")
    t0 = time.perf_counter()
    focused = kv.activation_atlas(net, planted.LATE_LAYER, images, grid=6, budget=4000, min_count=4, size=48,
                                  steps=96, preset="fast", class_index=PLANTED_CLASS)
    kv.save_image(focused.image, os.path.join(IMAGES, "activation_atlas_planted_class.png"))
    print(f"{focused} (parts {planted.class_parts(PLANTED_CLASS)}) in {time.perf_counter() - t0:.0f} s")


def vgg16_pictures() -> None:
    import kerasviz as kv

    t0 = time.perf_counter()
    atlas = kv.activation_atlas("VGG16", "block4_conv3", _photos(), grid=8, budget=4000, min_count=8,
                                weights="hed", size=48, steps=48, preset="fast")
    kv.save_image(atlas.image, os.path.join(IMAGES, "activation_atlas_vgg16.png"))
    print(f"{atlas} in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("planted", "vgg16"), default=None)
    args = parser.parse_args()
    if args.only in (None, "planted"):
        planted_pictures()
    if args.only in (None, "vgg16"):
        vgg16_pictures()


if __name__ == "__main__":
    main()
