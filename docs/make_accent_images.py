"""Make the feature-accentuation pictures of docs/accentuation.md: the sample photos accentuated on VGG16 (hed).

    python docs/make_accent_images.py                # docs/images/accent_vgg16.png
    python docs/make_accent_images.py --steps 96 --size 128

For each of scikit-image's sample photos (astronaut, coffee, chelsea, rocket: public domain or CC0, see
skimage's data/README), the two block4_conv3 filters the photo excites most are accentuated (`kv.accentuate`,
all eight pairs in one batch), and DeepDream (`kv.dream`, the filter's channel, one octave) is run from the
same photo to the same gain for comparison. One row per photo: the photo, then per filter its accentuation and
DeepDream's picture, each labelled with its filter. Offline, on the CPU; sizes and steps are kept small.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
sys.path.insert(0, ROOT)  # the repository root: run from a checkout without installing
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # the sample photos and the DeepDream curve

LAYER = "block4_conv3"
FILTERS_PER_PHOTO = 2
MAX_DREAM_ROUNDS = 20


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="photo size in pixels (default: 96)")
    parser.add_argument("--steps", type=int, default=64, help="accentuation steps (default: 64)")
    parser.add_argument("--out", default=os.path.join(DOCS, "images", "accent_vgg16.png"))
    args = parser.parse_args(argv)
    import accentuation as bench  # benchmarks/accentuation.py
    import numpy as np

    import kerasviz as kv

    net = kv.get_model("VGG16", weights="hed")
    photos = bench.sample_photos(args.size)
    tops = bench.top_filters(net, LAYER, photos, FILTERS_PER_PHOTO)
    photo_index = [p for p, fs in enumerate(tops) for _ in fs]
    filters = [int(f) for fs in tops for f in fs]
    a = kv.accentuate(net, LAYER, filters, photos[photo_index], pairs=True, size=args.size, steps=args.steps)
    tiles, labels = [], []
    for p in range(len(photos)):
        tiles.append(kv.to_uint8(photos[p]))
        labels.append(bench.SAMPLE_PHOTOS[p])
        for i in np.flatnonzero(np.asarray(photo_index) == p):  # the pairs of sample photo p
            f = int(a.filters[i])
            current = photos[p]
            for r in range(MAX_DREAM_ROUNDS):  # DeepDream from the same photo, to the accentuation's gain
                current = kv.dream(net, kv.objectives.channel(LAYER, f), current, steps=bench.DREAM_ROUND,
                                   lr=bench.DREAM_LR, octaves=1, seed=r)
                m = kv.accentuation.measure(net, LAYER, [f], current[None], photos[p][None])
                if m["gains"][0] >= a.gains[i]:
                    break
            tiles += [a.images[i], kv.to_uint8(current)]
            labels += [f"{f} accent x{a.gains[i]:.1f}", f"{f} dream x{m['gains'][0]:.1f}"]
            print(f"{bench.SAMPLE_PHOTOS[p]}, filter {f}: accentuation x{a.gains[i]:.2f} at pixel distance "
                  f"{a.distances[i]:.3f}; DeepDream x{m['gains'][0]:.2f} at {m['distances'][0]:.3f}")
    from PIL import Image

    mosaic = kv.stitch(tiles, cols=1 + 2 * FILTERS_PER_PHOTO, labels=labels, margin=4, background=255)
    Image.fromarray(mosaic).quantize(256).save(args.out, optimize=True)  # under 300 KB, like the other pictures
    print(args.out)


if __name__ == "__main__":
    main()
