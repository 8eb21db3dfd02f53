"""Feature accentuation against plain DeepDream from the same photo: the unit's gain at the same distance.

For each model, each sample photo and the filters the photo already excites most at the layer (the units an
accentuation is asked about), `kv.accentuate` runs once (all pairs in one batch), then DeepDream (`kv.dream`
with the filter's channel objective, one octave) runs from the same photo in short rounds, measuring after
each round, so that its path is a curve of (distance, gain). The DeepDream gain at the accentuation's distance
is read off that curve (linear interpolation), for two distances (`kv.accentuation.measure`):

- pixel: the root mean square pixel difference to the photo, in [0, 1];
- feature: the L2 distance of the activations at the accentuation's regularized layer over the photo's.

Printed per case: the medians over the pairs of the accentuation's gain (mean activation after / before, after
the ReLU) and distances, DeepDream's gain at the same pixel and at the same feature distance, and the share of
pairs where the accentuation's gain is the higher one at equal distance. Pairs DeepDream does not move as far
as the accentuation within its rounds count as DeepDream's gain at its last round (a lower bound).

The models: VGG16 (weights="hed", offline) on scikit-image's sample photos (astronaut, coffee, chelsea, rocket:
public domain or CC0, see skimage's data/README), and a small CNN trained here for a few seconds on oriented
gratings (as tests/test_trained_models.py does) on grating photos of its four classes.

    python benchmarks/accentuation.py                 # both models
    python benchmarks/accentuation.py --models cnn    # the trained CNN only
    python benchmarks/accentuation.py --filters 2 --size 96 --steps 64
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
VGG_LAYER = "block4_conv3"
CNN_LAYER = "relu2"
GRATING_CLASSES = 4
DREAM_LR = 0.005  # pixels per step (RMS-normalized): small rounds, so the curve is fine near the photo
DREAM_ROUND = 2  # steps per measured round
DREAM_ROUNDS = 20


def sample_photos(side: int) -> np.ndarray:
    """scikit-image's sample photos, center square, resized to `side`: `(4, side, side, 3)` in [0, 1]."""
    from PIL import Image
    from skimage import data

    out = []
    for name in SAMPLE_PHOTOS:
        img = np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB"))
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(img).resize((side, side), Image.BICUBIC), "float32") / 255.0)
    return np.stack(out)


def gratings(n_per_class: int, size: int, seed: int = 0):
    """Oriented RGB gratings (0, 45, 90, 135 degrees; wavelengths 4-7 px), shuffled, with labels: the tests'
    generator (tests/transformer_models.py)."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import transformer_models

    return transformer_models.gratings(n_per_class, size, seed, wavelengths=(4, 7))


def trained_cnn(size: int = 32):
    """Conv-BN-ReLU-pool twice, global pooling, Dense + softmax; trained for 10 epochs on gratings."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))  # trained at `size`; any size goes in (no note per call)
    x = inputs
    for i, filters in enumerate((8, 8), start=1):
        x = keras.layers.Conv2D(filters, 3, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.8, name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(GRATING_CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="gratings_cnn")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x_train, y_train = gratings(40, size)
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    return model


def top_filters(net, layer: str, photos: np.ndarray, k: int) -> list[list[int]]:
    """Per photo, the `k` filters with the highest mean activation (after the ReLU) on it."""
    import kerasviz as kv

    acts = np.asarray(kv.feature_extractor(net, [layer], pre_activation=False)(net.preprocess(photos)))
    means = acts.mean(axis=(1, 2))
    return [list(np.argsort(-m)[:k]) for m in means]


def dream_curve(net, layer: str, f: int, photo: np.ndarray, reg_layer, rounds: int) -> dict:
    """DeepDream of filter `f` from `photo` in `rounds` rounds: the measures after each round (round 0: the photo)."""
    import kerasviz as kv

    current, pictures = photo, [photo]
    for r in range(rounds):
        current = kv.dream(net, kv.objectives.channel(layer, int(f)), current, steps=DREAM_ROUND, lr=DREAM_LR,
                           octaves=1, seed=r)
        pictures.append(current)
    n = len(pictures)
    return kv.accentuation.measure(net, layer, [f] * n, np.stack(pictures), np.repeat(photo[None], n, 0),
                                   reg_layer=reg_layer)


def at_distance(curve_d: np.ndarray, curve_g: np.ndarray, d: float) -> float:
    """The curve's gain at distance `d` (linear between rounds; the last round's gain past its end)."""
    if d >= curve_d[-1]:
        return float(curve_g[-1])
    order = np.argsort(curve_d)
    return float(np.interp(d, curve_d[order], curve_g[order]))


def run_case(name: str, net, layer: str, photos: np.ndarray, k: int, steps: int, rounds: int,
             reg_weight: float | None = None) -> None:
    import kerasviz as kv

    tops = top_filters(net, layer, photos, k)
    photo_index = [p for p, fs in enumerate(tops) for _ in fs]
    filters = [int(f) for fs in tops for f in fs]
    start = time.perf_counter()
    weight = {} if reg_weight is None else {"reg_weight": reg_weight}
    a = kv.accentuate(net, layer, filters, photos[photo_index], pairs=True, steps=steps, size=photos.shape[1], **weight)
    seconds = time.perf_counter() - start
    reg = a.reg_layer
    pixel_dd, feature_dd = [], []
    for i, f in enumerate(filters):
        curve = dream_curve(net, layer, f, photos[photo_index[i]], reg, rounds)
        pixel_dd.append(at_distance(curve["distances"], curve["gains"], a.distances[i]))
        feature_dd.append(at_distance(curve["feature_distances"], curve["gains"], a.feature_distances[i]))
    pixel_dd, feature_dd = np.array(pixel_dd), np.array(feature_dd)
    print(f"{name}: layer {layer}, regularized at {reg} (reg_weight {a.settings['reg_weight']:g}), "
          f"{len(filters)} (photo, filter) pairs, {steps} steps, "
          f"{photos.shape[1]} px, accentuation {seconds:.1f} s ({seconds / len(filters):.2f} s per pair)")
    print(f"  accentuation: median gain {np.median(a.gains):.2f}, pixel distance {np.median(a.distances):.4f}, "
          f"feature distance {np.median(a.feature_distances):.3f}")
    print(f"  DeepDream at the same pixel distance: median gain {np.median(pixel_dd):.2f}; accentuation higher in "
          f"{np.mean(a.gains > pixel_dd):.0%} of pairs")
    print(f"  DeepDream at the same feature distance: median gain {np.median(feature_dd):.2f}; accentuation higher "
          f"in {np.mean(a.gains > feature_dd):.0%} of pairs")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "vgg16"], choices=["cnn", "vgg16"])
    parser.add_argument("--filters", type=int, default=2, help="filters per photo (its top ones; default: 2)")
    parser.add_argument("--size", type=int, default=128, help="VGG16 photo size in pixels (default: 128)")
    parser.add_argument("--steps", type=int, default=None, help="accentuation steps (default: accentuate's)")
    parser.add_argument("--rounds", type=int, default=DREAM_ROUNDS,
                        help=f"DeepDream rounds of {DREAM_ROUND} steps (default: {DREAM_ROUNDS})")
    parser.add_argument("--reg-weight", type=float, default=None, help="accentuate's reg_weight (default: its own)")
    args = parser.parse_args(argv)
    import kerasviz as kv

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    steps = args.steps or kv.accentuation.ACCENT_STEPS
    if "cnn" in args.models:
        model = trained_cnn()
        photos, labels = gratings(1, 32, seed=1)
        net = kv.as_network(model)
        run_case("trained CNN (gratings, 32 px)", net, CNN_LAYER, photos[np.argsort(labels)], args.filters, steps,
                 args.rounds, args.reg_weight)
    if "vgg16" in args.models:
        net = kv.get_model("VGG16", weights="hed")
        run_case("VGG16 (hed), sample photos", net, VGG_LAYER, sample_photos(args.size), args.filters, steps,
                 args.rounds, args.reg_weight)


if __name__ == "__main__":
    main()
