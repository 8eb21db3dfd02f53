"""Picture quality of the presets, measured on the offline VGG16 (weights="hed").

For each preset, visualize N filters of each layer, then score the uint8 images the user gets by
running them through the model again (ReLU outputs, the filter's mean activation):

- alive: share of filters whose own image activates them (> 0);
- self-recognition: share of filters that respond to their own image more than to every other image
  of the run (same layer);
- robustness: median over filters of activation(after a random shift of up to 10% of the image, reflect
  padding) / activation(unshifted), over filters alive;
- seconds per filter, after compiling (a one-step run of the same shapes first; its time is printed).

With `--precision float32 bfloat16` each preset runs at each precision, side by side (the feature extractor
computes in that precision; the pictures are always judged by the float32 model).

    python benchmarks/quality.py                                  # all layers, 16 filters, default presets
    python benchmarks/quality.py --presets keras-io quality --filters 8 --figure docs/images/presets.png
    python benchmarks/quality.py --fixed-size 128 --presets quality   # VGG16 built for 128x128 inputs only
    python benchmarks/quality.py --presets fast quality --precision float32 bfloat16
    python benchmarks/quality.py --nested --presets quality   # VGG16 as the backbone of a fine-tuned model
    python benchmarks/quality.py --maco --filters 4   # quality against maco, with a naturalness measure (#30)
    python benchmarks/quality.py --transformers --presets quality --precision auto   # the test ViT and ConvNeXt

With `--nested` VGG16 is a user's transfer-learning model as kerasviz meets it at the first call: raw pixels
(0..255) in, an augmentation layer, `vgg16.preprocess_input` in a layer, the VGG16 (fixed 224x224) nested as the
layer `vgg16`, a new head with softmax fused into `Dense`; layers are named by their own names.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# the small trained models and their gratings live with the tests (tests/transformer_models.py,
# tests/test_trained_models.py), which import each other as top-level modules
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402

LAYERS = ("block3_conv3", "block4_conv3", "block5_conv3")
SHIFT_FRACTION = 0.10


def shifted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by a random offset of up to 10% of its size, reflect padding."""
    n, h, w, _ = images.shape
    out = np.empty_like(images)
    for i in range(n):
        dy, dx = (rng.integers(-int(SHIFT_FRACTION * s), int(SHIFT_FRACTION * s) + 1) for s in (h, w))
        pad = max(abs(dy), abs(dx), 1)
        padded = np.pad(images[i], ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        out[i] = padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return out


def score(net, layer: str, filters: list[int], images_u8: np.ndarray, seed: int = 0) -> dict:
    import kerasviz as kv

    extractor = kv.feature_extractor(net, [layer], pre_activation=False)

    def acts(x):
        return np.asarray(extractor(net.preprocess(x.astype("float32") / 255.0))).mean(axis=(1, 2))[:, filters]

    a = acts(images_u8)  # [images, filters]
    own = np.diag(a)
    alive = own > 0
    others = a.copy()
    np.fill_diagonal(others, -np.inf)
    recognized = own > others.max(axis=0)
    shifted_own = np.diag(acts(shifted(images_u8, np.random.default_rng(seed))))
    ratio = np.where(alive, shifted_own / np.where(alive, own, 1.0), np.nan)
    return dict(alive=alive, recognized=recognized, ratio=ratio)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["keras-io", "blog2016", "fast", "quality"])
    parser.add_argument("--layers", nargs="+", default=list(LAYERS))
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--size", type=int, default=None, help="override every preset's size")
    parser.add_argument("--steps", type=int, default=None, help="override every preset's steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", nargs="+", default=["float32"], choices=("float32", "bfloat16", "auto"),
                        help="run every preset at each of these precisions, side by side (default: float32)")
    parser.add_argument("--figure", default=None, help="save a side-by-side figure of the presets (first layer)")
    parser.add_argument("--fixed-size", type=int, default=None,
                        help="build VGG16 with a fixed input_shape of this size, as users' own models have it")
    parser.add_argument("--nested", action="store_true",
                        help="VGG16 nested in a fine-tuned model (preprocessing and augmentation layers in front)")
    parser.add_argument("--maco", action="store_true",
                        help="quality against maco: VGG16 early/mid/late layers, fixed size, trained test models "
                             "(--layers defaults to block2_conv2 block3_conv3 block5_conv3, --size to 96)")
    parser.add_argument("--transformers", action="store_true",
                        help="the small ViT and ConvNeXt-style net of tests/transformer_models.py, trained on "
                             "gratings: alive, own-best and the patch-grid energy of their pictures")
    args = parser.parse_args()
    if args.maco:
        if args.layers == list(LAYERS):
            args.layers = list(MACO_LAYERS)
        return maco_comparison(args)
    if args.transformers:
        return transformers(args)

    import kerasviz as kv

    shape = dict(input_shape=(args.fixed_size, args.fixed_size, 3)) if args.fixed_size else {}
    net = kv.get_model("VGG16", weights="hed", **shape)
    if args.nested:
        net = kv.as_network(fine_tuned(net.model, args.fixed_size or 224))
    filters = list(range(args.filters))
    rows, figure_rows = [], []
    runs = [(preset, precision) for preset in args.presets for precision in args.precision]
    for preset, precision in runs:
        per_layer = []
        seconds = compile_seconds = 0.0
        for layer in args.layers:
            # compile first (the same shapes, one step), so that s/filter is the steady-state time
            warm = kv.visualize_filters(net, layer, filters, preset=preset, size=args.size, steps=1, revive_steps=0,
                                        precision=precision, progress=False)
            compile_seconds += warm.seconds
            result = kv.visualize_filters(net, layer, filters, preset=preset, size=args.size, steps=args.steps,
                                          seed=args.seed, precision=precision, progress=False)
            seconds += result.seconds
            per_layer.append(score(net, layer, filters, result.images, args.seed))
            if layer == args.layers[0]:
                figure_rows.append((f"{preset} ({result.settings['precision']})", result.images))
        alive = np.concatenate([p["alive"] for p in per_layer])
        recognized = np.concatenate([p["recognized"] for p in per_layer])
        ratio = np.concatenate([p["ratio"] for p in per_layer])
        rows.append((preset, result.settings["precision"], alive.mean(), recognized.mean(),
                     np.nanmedian(ratio) if np.any(alive) else np.nan, seconds / (len(filters) * len(args.layers))))
        print(f"{preset:>10} {rows[-1][1]:>8}: alive {rows[-1][2]:.2f}  self-recognition {rows[-1][3]:.2f}  "
              f"robustness {rows[-1][4]:.2f}  {rows[-1][5]:.2f} s/filter  (compile + 1 step: {compile_seconds:.1f} s; "
              f"load {os.getloadavg()[0]:.1f})", flush=True)
        for what, key in (("dead", "alive"), ("not recognized", "recognized")):
            missed = [f"{layer}:{f}" for layer, p in zip(args.layers, per_layer, strict=True)
                      for f, ok in zip(filters, p[key], strict=True) if not ok]
            shown = ", ".join(missed[:8]) + (f", ... ({len(missed)} in all)" if len(missed) > 8 else "")
            print(f"{'':>21}{what}: {shown or 'none'}", flush=True)

    fixed = f", fixed {args.fixed_size}x{args.fixed_size} input" if args.fixed_size else ""
    fixed += ", nested in a fine-tuned model" if args.nested else ""
    print(f"\nVGG16 (hed{fixed}) {', '.join(args.layers)}; {len(filters)} filters per layer")
    print(f"{'preset':>10} | {'precision':>9} | {'alive':>5} | {'self-rec.':>9} | {'robustness':>10} | {'s/filter':>8}")
    for name, precision, alive, rec, rob, sec in rows:
        print(f"{name:>10} | {precision:>9} | {alive:5.2f} | {rec:9.2f} | {rob:10.2f} | {sec:8.2f}")
    if args.figure:
        save_figure(figure_rows, args.layers[0], args.figure)


MACO_LAYERS = ("block2_conv2", "block3_conv3", "block5_conv3")  # early, mid, late
NATURAL_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # bundled with scikit-image: scripts/make_spectrum.py


def spectral_slope(image_u8: np.ndarray) -> float:
    """The slope of a picture's radially averaged log power spectrum against log frequency (luminance,
    mean removed, Hann window), over 2/N .. 0.4 cycles per pixel: about -2 for natural photos (Field, 1987)."""
    x = image_u8.astype("float64").mean(axis=-1)
    h, w = x.shape
    x = (x - x.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(x)) ** 2
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None] ** 2)
    edges = np.geomspace(2 / min(h, w), 0.4, 12)
    centers, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ring = (f >= lo) & (f < hi)
        if ring.any():
            centers.append(np.sqrt(lo * hi))
            means.append(power[ring].mean())
    return float(np.polyfit(np.log(centers), np.log(means), 1)[0])


def maco_comparison(args) -> None:
    """`--maco`: quality against maco (#30) on VGG16 (hed) early, mid and late layers, VGG16 built for a fixed
    input size, and the trained test models; alive, self-recognition, robustness, s/filter, and naturalness: the
    median distance of the pictures' spectral slope (`spectral_slope`) to the mean slope of natural photos at the
    picture's size. MACO fixes the magnitude to a photo-like power law, so the distance favours it by construction
    where its crops and sigmoid leave that spectrum intact; it shows how far each recipe's pictures are from
    photo statistics, not whether they show the unit better (the other scores say that)."""
    import keras
    import skimage.data
    import test_trained_models as trained

    import kerasviz as kv

    size = args.size or 96
    naturals = {}

    def natural(px: int) -> float:
        """The mean spectral slope of the photos at `px` pixels, the reference of pictures of that size."""
        if px not in naturals:
            photos = [kv.load_image(getattr(skimage.data, name)(), size=px) for name in NATURAL_PHOTOS]
            naturals[px] = float(np.mean([spectral_slope((p * 255).astype("uint8")) for p in photos]))
            print(f"natural photos' spectral slope at {px} px: {naturals[px]:.2f}", flush=True)
        return naturals[px]

    cases = [("VGG16 hed", kv.get_model("VGG16", weights="hed"), list(args.layers), size),
             ("VGG16 hed fixed 128", kv.get_model("VGG16", weights="hed", input_shape=(128, 128, 3)),
              [args.layers[1]], None)]
    for px, channels, flatten in ((28, 1, True), (32, 3, False)):
        x, y = trained.gratings(40, px, channels)
        model = trained.classifier(px, channels, flatten=flatten)
        model.fit(x, y, epochs=10, batch_size=32, verbose=0)
        cases.append((f"trained {px}px {'gray' if channels == 1 else 'rgb'}", kv.as_network(model), ["relu2"], None))
    keras.utils.set_random_seed(args.seed)
    rows = []
    for case, net, layers, case_size in cases:
        for preset in ("quality", "maco"):
            seconds, n, parts = 0.0, 0, []
            for layer in layers:
                filters = list(range(min(args.filters, 8)))  # the trained models' relu2 has 8
                kv.visualize_filters(net, layer, filters, preset=preset, size=case_size, steps=1, revive_steps=0,
                                     precision=args.precision[0], progress=False)  # compile first
                result = kv.visualize_filters(net, layer, filters, preset=preset, size=case_size, seed=args.seed,
                                              precision=args.precision[0], progress=False)
                seconds, n = seconds + result.seconds, n + len(filters)
                part = score(net, layer, filters, result.images, args.seed)
                part["slope"] = np.array([spectral_slope(im) for im in result.images]) if net.input_channels == 3 \
                    else np.array([spectral_slope(np.repeat(im, 3, -1)) for im in result.images])
                part["distance"] = np.abs(part["slope"] - natural(result.images.shape[1]))
                parts.append(part)
            alive = np.concatenate([p["alive"] for p in parts])
            slopes = np.concatenate([p["slope"] for p in parts])
            rows.append((case, preset, alive.mean(), np.concatenate([p["recognized"] for p in parts]).mean(),
                         np.nanmedian(np.concatenate([p["ratio"] for p in parts])) if alive.any() else np.nan,
                         seconds / n, float(np.median(np.concatenate([p["distance"] for p in parts]))),
                         float(np.median(slopes))))
            print("  ".join(str(v) if isinstance(v, str) else f"{v:.2f}" for v in rows[-1]),
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\n{args.filters} filters per layer; VGG16 layers {', '.join(args.layers)} at {size} px; the fixed-size "
          f"VGG16 at {args.layers[1]}; natural slopes by size: {naturals}")
    print(f"{'case':>20} | {'preset':>7} | alive | self-rec. | robustness | s/filter | slope distance | slope")
    for case, preset, alive, rec, rob, sec, dist, slope in rows:
        print(f"{case:>20} | {preset:>7} | {alive:5.2f} | {rec:9.2f} | {rob:10.2f} | {sec:8.2f} | {dist:14.2f} | "
              f"{slope:5.2f}")


TRANSFORMER_LAYERS = {"tiny_vit": ("block0_mlp1", "block1_mlp1", "block1_out"),
                      "tiny_convnext": ("stage0_mlp1", "stage1_mlp1", "stage1_out")}


def transformers(args) -> None:
    """The transformer cases: per model, preset and layer, the share of units alive, the share excited most by
    their own picture (patch tokens only, on a token layer) and the patch-grid energy of the pictures (about 1:
    no grid printed; `transformer_models.patch_grid_energy`). Variants of the transforms ride along: jitter of
    one patch and a half instead of the preset's (8 and 4 px at 128 px, in proportion: 1-2 px on these 32 px
    models), and no transforms at all (a grid-printing control)."""
    import transformer_models as tm

    import kerasviz as kv
    from kerasviz.engine import transforms as T

    variants = {"preset": {}, f"jitter({tm.PATCH}),({tm.PATCH // 2})": dict(transforms=(
        T.jitter(tm.PATCH), T.scale(0.9, 1.1), T.rotate(10.0), T.jitter(tm.PATCH // 2))), "no transforms": dict(
        transforms=())}
    print(f"{'model':>13} | {'preset':>7} | {'precision':>9} | {'variant':>13} | {'layer':>11} | alive | own | grid "
          f"| s  (load {os.getloadavg()[0]:.1f})")
    for build in (tm.tiny_vit, tm.tiny_convnext):
        model = build()
        tm.train(model, epochs=20, n_per_class=48)
        for preset, precision, (name, variant) in itertools.product(args.presets, args.precision, variants.items()):
            for layer in TRANSFORMER_LAYERS[model.name]:
                filters = list(range(args.filters))
                result = kv.visualize_filters(model, layer, filters, preset=preset, seed=args.seed,
                                              precision=precision, progress=False, **variant)
                acts = np.asarray(kv.feature_extractor(model, [layer], pre_activation=False)(
                    result.images.astype("float32") / 255))
                grid = kv.nets.token_grid(acts.shape, (tm.SIZE, tm.SIZE))
                acts = kv.nets.to_grid(acts, grid) if grid is not None else acts
                means = acts.reshape(len(acts), -1, acts.shape[-1]).mean(axis=1)[:, :len(filters)]
                own = np.mean(means.argmax(axis=0) == np.arange(len(filters)))
                alive, energy = np.mean(result.scores > 0), tm.patch_grid_energy(result.images, tm.PATCH)
                print(f"{model.name:>13} | {preset:>7} | {result.settings['precision']:>9} | {name:>13} | "
                      f"{layer:>11} | {alive:.2f}  | {own:.2f} | "
                      f"{energy:.2f} | {result.seconds:.0f}  (load {os.getloadavg()[0]:.1f})", flush=True)


def fine_tuned(backbone, size: int):
    """`backbone` (built for any size) rebuilt for `size` px and nested in a transfer-learning classifier."""
    import keras

    vgg16 = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    vgg16.set_weights(backbone.get_weights())
    inputs = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.RandomFlip(name="augment")(inputs)
    x = keras.layers.Lambda(keras.applications.vgg16.preprocess_input, name="preprocess")(x)
    x = keras.layers.GlobalAveragePooling2D()(vgg16(x))
    outputs = keras.layers.Dense(5, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="fine_tuned_vgg16")


def save_figure(figure_rows, layer, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import kerasviz as kv

    n = min(8, len(figure_rows[0][1]))
    fig, axes = plt.subplots(len(figure_rows), 1, figsize=(2 * n, 2.2 * len(figure_rows)))
    for ax, (name, imgs) in zip(np.atleast_1d(axes), figure_rows, strict=True):
        side = min(im.shape[1] for _, im in figure_rows)  # images are (N, H, W, C)
        tiles = kv.center_crop(imgs[:n], side)
        ax.imshow(kv.stitch(tiles, cols=n, margin=4, background=255))
        ax.set_title(f"{name}: VGG16 (hed) {layer}, filters 0-{n - 1}", fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
