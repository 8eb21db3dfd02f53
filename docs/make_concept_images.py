"""Make the pictures of docs/concepts.md: the concepts of the planted-parts test model and of VGG16 (`weights="hed"`)
over scikit-image's sample photos.

    python docs/make_concept_images.py [--quick]

Writes docs/images/concepts_planted.png and docs/images/concepts_vgg16.png (one row per concept: its feature
visualization, then its heatmap over its top images) and prints the figures the page quotes (purity, importance,
seconds). Offline: the planted model is trained here in seconds (tests/planted.py), VGG16's weights are HED's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS))
sys.path.insert(0, os.path.join(os.path.dirname(DOCS), "tests"))  # tests/planted.py: the planted data and model

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel")
TILE = 96  # pixels per tile of the figures


def concept_rows(result, labels: list[str]) -> np.ndarray:
    """One row per concept: its picture, then its heatmap over each top image; uint8."""
    import kerasviz as kv

    rows = []
    for i in range(len(result)):
        tiles = [kv.images.resize(result.pictures[i].astype("float32") / 255.0, (TILE, TILE))]
        tiles += [kv.images.resize(o.astype("float32") / 255.0, (TILE, TILE)) for o in result.overlays(i)]
        rows.append(kv.stitch(tiles, cols=len(tiles), margin=3, labels=[labels[i]] + [""] * (len(tiles) - 1),
                              background=255))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return kv.stitch(rows, cols=1, margin=6, background=255)


def planted(quick: bool) -> None:
    import planted as p

    import kerasviz as kv

    start = time.perf_counter()
    model, accuracy = p.trained_planted_model()
    images, labels, part_map = p.planted_data(192, seed=5)
    label = p.CLASSES.index((0, 2))
    result = kv.concepts(model, p.LATE_LAYER, images, p.PARTS + 1, class_index=label, budget=4000, top_k=4,
                         preset="fast", size=64, steps=16 if quick else 128, seed=0)
    maps = np.repeat(np.repeat(result.maps(images), 4, axis=2), 4, axis=3)
    purity = {}
    for k in range(p.PARTS):
        votes = [int(np.argmax(maps[i][:, part_map[i] == k].mean(axis=1))) for i in range(len(images))
                 if (part_map[i] == k).any()]
        purity[k] = float(np.mean(np.asarray(votes) == np.bincount(votes).argmax()))
    names = [f"{i}: {result.importance[i]:+.2f}" for i in range(len(result))]
    kv.save_image(concept_rows(result, names), os.path.join(DOCS, "images", "concepts_planted.png"))
    print(f"planted: test accuracy {accuracy:.3f}, purity per part {purity}, importance for class {label} "
          f"{p.CLASSES[label]}: {np.round(result.importance, 2)} ({time.perf_counter() - start:.1f} s)")


def vgg16(quick: bool) -> None:
    from PIL import Image
    from skimage import data

    import kerasviz as kv

    folder = tempfile.mkdtemp(prefix="kerasviz_photos_")
    for name in PHOTOS:
        img = getattr(data, name)()
        img = np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]
        Image.fromarray(img).save(os.path.join(folder, f"{name}.png"))
        Image.fromarray(img[:, ::-1]).save(os.path.join(folder, f"{name}_mirrored.png"))
    start = time.perf_counter()
    net = kv.get_model("VGG16", weights="hed")
    result = kv.concepts(net, "block4_conv3", folder, 6, budget=20_000, top_k=4,  # hed: no classifier, no importance
                         image_size=112 if quick else 224, preset="fast", size=96 if quick else 128,
                         steps=16 if quick else 256, seed=0)
    names = [f"{i}: ch {result.composition(i, 1)[0][0]}" for i in range(len(result))]
    kv.save_image(concept_rows(result, names), os.path.join(DOCS, "images", "concepts_vgg16.png"))
    print(f"VGG16 block4_conv3 over {result.samples.count} photos: {len(result.samples)} vectors, "
          f"{time.perf_counter() - start:.1f} s")
    for i in range(len(result)):
        sources = [result.source.source_name(q.image_index) for q in result.patches[i]]
        print(f"  concept {i}: channels {result.composition(i, 3)}, top images {sources}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and smaller images, for a check")
    args = parser.parse_args()
    planted(args.quick)
    vgg16(args.quick)


if __name__ == "__main__":
    main()
