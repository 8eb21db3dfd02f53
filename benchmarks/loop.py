"""The compiled loop: time per step of `kv.visualize_filters` with K steps per compiled call (K=1 is the
step loop, one call per step; "auto" the renderer's choice from the measured step time), against a bare
`tf.while_loop` doing the same work in one call, on a small model and on VGG16.

    python benchmarks/loop.py                    # the 28x28 two-conv model, 32 filters, 256 steps; VGG16 hed
    python benchmarks/loop.py --skip-vgg --steps 128

The same work: the bare loop calls the renderer's own score function (the Fourier parameterization's draw,
the default preset's transforms, the preprocessing, the model, the objective) and Adam inside one
`tf.function` holding one `tf.while_loop` over all steps, the draws of every step given up front. The plain
loop is a reference for the model alone: pixels as the variable, no parameterization, no transforms,
`mean(activation[..., filter])`, Adam. Each figure is the median of `--repeats` timed runs after a warm-up
run (which compiles). Prints ms per step and the ratios; TensorFlow backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def small_model():
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    keras.utils.set_random_seed(0)
    return keras.Model(inputs, x, name="two_conv")


def median_seconds(fn, repeats):
    fn()  # warm-up: compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def visualize(model, layer, filters, block_steps, repeats, **kw):
    """Median seconds of `visualize_filters` with `block_steps` steps per compiled call (None: chosen)."""
    import kerasviz as kv

    return median_seconds(lambda: kv.visualize_filters(model, layer, filters, progress=False, block_steps=block_steps,
                                                       **kw), repeats)


def bare_loop(model, layer, filters, steps, repeats, **kw):
    """The same work as `visualize_filters` in one `tf.function`: a `tf.while_loop` over the renderer's
    score function and Adam (init and draws on the host first, as the renderer does)."""
    import numpy as np
    import tensorflow as tf

    import kerasviz as kv
    from kerasviz.engine import backend

    plan = kv.optimize.plan(model, layer, filters, steps=steps, **kw)
    renderer, s = plan.renderer, plan.settings
    update = renderer.update
    keys = list(plan.items)
    batch = len(keys)

    @tf.function
    def run(values, state, u_all, filters_t, lr):
        def body(t, values, state):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(values)
                total = tf.reduce_sum(renderer.score_fn(values, u_all[t], filters_t))
            values, state = update.apply(values, tape.gradient(total, values), state, lr, t)
            return t + 1, values, state

        _, values, _ = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), values, state))
        return values

    def once():
        size = s.size if isinstance(s.size, tuple) else (s.size, s.size)
        arrays = renderer.param.init(batch, size, renderer.channels, keys=keys, seed=0)
        values = [backend.to_tensor(a) for a in arrays]
        u_all = tf.constant(renderer.draw_uniforms(keys, 0, steps, 0))
        out = run(values, update.init(values), u_all, tf.constant(np.asarray(plan.items, "int32")),
                  tf.constant(np.float32(s.lr)))
        return [v.numpy() for v in out]

    return median_seconds(once, repeats)


def plain_loop(model, layer, filters, steps, repeats, size):
    """The model alone: pixels as the variable, mean activation of each image's filter, Adam."""
    import keras
    import numpy as np
    import tensorflow as tf

    extractor = keras.Model(model.inputs, model.get_layer(layer).output)
    batch = len(filters)
    index = tf.constant(np.asarray(filters, "int32"))

    @tf.function
    def run(x, lr):
        def body(t, x, m, v):
            with tf.GradientTape() as tape:
                tape.watch(x)
                act = extractor(x, training=False)
                score = tf.reduce_sum(tf.reduce_mean(tf.gather(act, index, axis=-1, batch_dims=1), axis=(1, 2)))
            g = tape.gradient(score, x)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            step = tf.cast(t, tf.float32) + 1.0
            x = x + lr * (m / (1 - 0.9**step)) / (tf.sqrt(v / (1 - 0.999**step)) + 1e-8)
            return t + 1, x, m, v

        zeros = tf.zeros_like(x)
        return tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), x, zeros, zeros))[1]

    channels = model.inputs[0].shape[-1]
    x0 = np.random.default_rng(0).uniform(size=(batch, size, size, channels)).astype("float32")
    return median_seconds(lambda: run(tf.constant(x0), tf.constant(0.05)).numpy(), repeats)


def report(name, seconds, steps, reference=None):
    line = f"  {name:<44} {1000 * seconds / steps:8.2f} ms/step"
    if reference is not None:
        line += f"   {seconds / reference:5.2f}x the bare loop"
    print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vgg-steps", type=int, default=8)
    parser.add_argument("--skip-vgg", action="store_true")
    args = parser.parse_args()

    import kerasviz as kv

    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores", flush=True)
    model = small_model()
    kw = dict(size=28, octaves=1, revive_steps=0)  # the default preset, one octave of --steps at 28 px
    print(f"28x28 two-conv model, conv2, 32 filters, {args.steps} steps, default preset at 28 px, one octave:")
    bare = bare_loop(model, "conv2", range(32), args.steps, args.repeats, **kw)
    report("bare tf.while_loop (same work, one call)", bare, args.steps)
    report("plain tf.while_loop (model + Adam only)", plain_loop(model, "conv2", list(range(32)), args.steps,
                                                                args.repeats, 28), args.steps)
    for block in (1, 16, 64, None):
        seconds = visualize(model, "conv2", range(32), block, args.repeats, steps=args.steps, **kw)
        report(f"visualize_filters, K={block or 'auto'}" + (" (the step loop)" if block == 1 else ""),
               seconds, args.steps, bare)
    if args.skip_vgg:
        return
    net = kv.get_model("VGG16", weights="hed")
    kw = dict(size=128, octaves=1, revive_steps=0, steps=args.vgg_steps, batch_size=16)
    print(f"VGG16 (hed) block3_conv3, 16 filters in one batch, 128 px, {args.vgg_steps} steps, default preset, "
          "one octave:")
    bare = bare_loop(net, "block3_conv3", range(16), args.vgg_steps, 1, **{k: v for k, v in kw.items()
                                                                           if k != "steps"})
    report("bare tf.while_loop (same work, one call)", bare, args.vgg_steps)
    for block in (1, None):
        seconds = visualize(net, "block3_conv3", range(16), block, 1, **kw)
        report(f"visualize_filters, K={block or 'auto'}" + (" (the step loop)" if block == 1 else ""),
               seconds, args.vgg_steps, bare)
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
