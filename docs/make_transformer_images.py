"""The pictures of docs/transformers.md, from the small ViT of the tests (tests/transformer_models.py: patch 4,
32x32 inputs, two blocks, plain Keras layers) trained here for a few seconds on oriented gratings.

    python docs/make_transformer_images.py      # writes docs/images/transformer_*.png
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import numpy as np  # noqa: E402
import transformer_models as tm  # noqa: E402

import kerasviz as kv  # noqa: E402

UNITS = 8
UPSCALE = 4  # 32 px pictures shown at 128 px


def _big(images: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(images, UPSCALE, axis=1), UPSCALE, axis=2)


def main() -> None:
    out = os.path.join(HERE, "images")
    model = tm.tiny_vit()
    print(f"training accuracy {tm.train(model, epochs=20, n_per_class=48):.2f}")
    for layer in kv.nets.visual_layers(model) + ["logits"]:
        filters = range(UNITS) if layer != "logits" else range(tm.CLASSES)
        result = kv.visualize_filters(model, layer, filters, progress=False)
        path = os.path.join(out, f"transformer_{layer}.png")
        kv.save_image(kv.stitch(_big(result.images), cols=UNITS, labels=list(filters)), path)
        print(f"{path}: patch-grid energy {tm.patch_grid_energy(result.images, tm.PATCH):.2f}, dead {result.dead}")
    x, _ = tm.gratings(1)
    acts = np.asarray(kv.feature_extractor(model, ["block1_mlp1"], pre_activation=False)(x[:4]))
    grid = kv.nets.token_grid(acts.shape, (tm.SIZE, tm.SIZE))
    maps = kv.nets.to_grid(acts, grid)[..., 0]  # unit 0 on the 8x8 patch grid, four gratings
    maps = (maps - maps.min()) / (np.ptp(maps) + 1e-8)
    tiles = np.concatenate([_big((x[:4] * 255).astype("uint8")),
                            _big(np.repeat(np.kron(maps, np.ones((tm.PATCH, tm.PATCH)))[..., None] * 255, 3,
                                           axis=-1).astype("uint8"))])
    path = os.path.join(out, "transformer_patch_grid.png")
    kv.save_image(kv.stitch(tiles, cols=4), path)
    print(path)


if __name__ == "__main__":
    main()
