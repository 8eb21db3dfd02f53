"""Make the pictures of docs/maco.md: the `quality` and `maco` presets side by side on VGG16 (weights="hed"), and
the maco pictures with their transparency map (`Result.alpha`).

    python docs/make_maco_images.py             # docs/images/maco_vs_quality.png and maco_alpha.png
    python docs/make_maco_images.py --filters 6 --size 128

Offline on the CPU: VGG16's `hed` weights, no download. The same seed gives the same pictures.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))  # the repository root: run from a checkout without installing
OUT = os.path.join(DOCS, "images")
LAYERS = ("block2_conv2", "block3_conv3", "block5_conv3")  # early, mid, late
DPI = 80
MAX_BYTES = 300 * 1024  # as docs/make_images.py


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=4, help="filters per layer (default: 4)")
    parser.add_argument("--size", type=int, default=96, help="picture size in pixels (default: 96)")
    parser.add_argument("--seed", type=int, default=0, help="the random seed (default: 0)")
    args = parser.parse_args(argv)

    import kerasviz as kv

    net = kv.get_model("VGG16", weights="hed")
    filters = list(range(args.filters))
    runs = {}
    for layer in LAYERS:
        runs[layer, "quality"] = kv.visualize_filters(net, layer, filters, size=args.size, seed=args.seed,
                                                      progress=False)
        plan = kv.plan(net, layer, filters, preset="maco", size=args.size, seed=args.seed)
        runs[layer, "maco"] = plan.renderer.run(filters, filters, plan.schedule, seed=args.seed)  # with .alpha
        runs[layer, "maco"].images = kv.to_uint8(runs[layer, "maco"].images)

    save([[(f"{preset}: {layer}", runs[layer, preset].images) for preset in ("quality", "maco")] for layer in LAYERS],
         args.filters, "maco_vs_quality.png")
    # the maco pictures over a white ground, as opaque as their transparency map says
    save([[(f"maco with alpha: {layer}", (runs[layer, "maco"].images * runs[layer, "maco"].alpha[..., None]
                                          + 255 * (1 - runs[layer, "maco"].alpha[..., None])).astype("uint8"))]
          for layer in LAYERS], args.filters, "maco_alpha.png")


def save(rows: list, cols: int, name: str) -> None:
    """A figure of rows of `(title, uint8 images)` panels, each panel `cols` pictures wide, in docs/images."""
    import matplotlib.pyplot as plt

    import kerasviz as kv

    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(len(rows[0]) * 1.6 * cols, 1.9 * len(rows)),
                             squeeze=False)
    for row_axes, row in zip(axes, rows, strict=True):
        for ax, (title, images) in zip(row_axes, row, strict=True):
            ax.imshow(kv.stitch(images, cols=cols, margin=2, background=255))
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    path = os.path.join(OUT, name)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    from PIL import Image

    with Image.open(path) as img:  # 256 colors: the page's pictures stay under MAX_BYTES
        small = img.convert("RGB").quantize(256)
    small.save(path, optimize=True)
    print(path, os.path.getsize(path) <= MAX_BYTES)

if __name__ == "__main__":
    main()
