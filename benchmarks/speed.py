"""Speed: the keras.io tutorial loop (one filter at a time, as the tutorial writes it) against
`kv.visualize_filters` (batched), same filters, size and steps, in one process.

    python benchmarks/speed.py                       # ResNet50V2 conv3_block4_out, 64 filters, 180 px, 30 steps
    python benchmarks/speed.py --filters 8 --model VGG16 --weights hed --layer block3_conv3
    python benchmarks/speed.py --precision float32 bfloat16      # the batched run in both precisions

Prints seconds per filter for both, the ratio, and the mean final activation of both (the batched run
must reach an equal or higher activation). The batched run uses the `keras-io` preset, in each precision
given with `--precision` (float32 by default); its activation is the tutorial's own loss (float32 model, 2
border positions dropped) on the model inputs it returns (`Result.raw`), so a bfloat16 run is judged by the
same float32 measure as the tutorial. The tutorial loop always runs as the tutorial writes it (float32).
weights=None is fine for speed.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def compute_loss(extractor, input_image, filter_index):
    """The tutorial's loss: the filter's mean activation, 2 positions dropped at each border."""
    import tensorflow as tf

    activation = extractor(input_image)
    return tf.reduce_mean(activation[:, 2:-2, 2:-2, filter_index])


def tutorial_loop(extractor, filters, size, steps, lr):
    """The keras.io tutorial's functions, verbatim in spirit: one filter at a time."""
    import tensorflow as tf

    def compute_loss_(input_image, filter_index):
        return compute_loss(extractor, input_image, filter_index)

    @tf.function
    def gradient_ascent_step(img, filter_index, learning_rate):
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = compute_loss_(img, filter_index)
        grads = tf.math.l2_normalize(tape.gradient(loss, img))
        return loss, img + learning_rate * grads

    losses = []
    for f in filters:
        img = (tf.random.uniform((1, size, size, 3)) - 0.5) * 0.25
        for _ in range(steps):
            loss, img = gradient_ascent_step(img, f, lr)
        img.numpy()
        losses.append(float(compute_loss_(img, f)))
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ResNet50V2")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--layer", default="conv3_block4_out")
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--size", type=int, default=180)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--precision", nargs="+", default=["float32"], choices=("float32", "bfloat16", "auto"),
                        help="run the batched keras-io preset in each of these precisions (default: float32)")
    parser.add_argument("--skip-tutorial", action="store_true")
    args = parser.parse_args()

    import keras
    import numpy as np

    import kerasviz as kv

    weights = None if args.weights.lower() == "none" else args.weights
    net = kv.get_model(args.model, weights=weights)
    filters = list(range(args.filters))
    print(f"{args.model} ({weights}) {args.layer}: {len(filters)} filters, {args.size} px, {args.steps} steps, "
          f"backend {keras.backend.backend()}")

    layer = net.model.get_layer(args.layer)
    extractor = keras.Model(net.model.inputs[0], layer.output)  # the tutorial's float32 model, to judge both

    def activation(raw):  # the tutorial's loss on each returned model input, in float32
        return float(np.mean([compute_loss(extractor, raw[i : i + 1], f) for i, f in enumerate(filters)]))

    chunk = len(filters) if args.batch_size is None else args.batch_size
    batched = []
    for precision in args.precision:
        # warm-up (compilation), reported apart
        t = time.perf_counter()
        kv.visualize_filters(net, args.layer, filters[:1], preset="keras-io", size=args.size, steps=1,
                             progress=False, batch_size=args.batch_size, precision=precision)
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        ours = kv.visualize_filters(net, args.layer, filters, preset="keras-io", size=args.size, steps=args.steps,
                                    lr=args.lr, progress=False, batch_size=args.batch_size, precision=precision)
        ours_s = time.perf_counter() - t
        act = activation(ours.raw)
        batched.append((ours.settings["precision"], ours_s, act))
        print(f"kerasviz {batched[-1][0]:>8}: {ours_s / len(filters):7.3f} s/filter  ({ours_s:.1f} s total, first "
              f"compile {compile_s:.1f} s, batch <= {chunk}), mean activation {act:.4g}  "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    if args.skip_tutorial:
        return
    tutorial_loop(extractor, filters[:1], args.size, 1, args.lr)  # compile
    t = time.perf_counter()
    losses = tutorial_loop(extractor, filters, args.size, args.steps, args.lr)
    tut_s = time.perf_counter() - t
    tut_act = float(np.mean(losses))
    print(f"keras.io loop    : {tut_s / len(filters):7.3f} s/filter  ({tut_s:.1f} s total), "
          f"mean activation {tut_act:.4g}  (load {os.getloadavg()[0]:.1f})")
    for precision, ours_s, act in batched:
        equal = "equal or higher activation" if act >= tut_act else f"LOWER activation ({act / tut_act:.1%})"
        print(f"speed-up {precision:>8}: {tut_s / ours_s:.2f}x, {equal}")


if __name__ == "__main__":
    main()
