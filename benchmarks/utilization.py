"""Utilization: achieved GFLOP/s of the kerasviz step beside the matmul peak of the same precision, same backend.

    python benchmarks/utilization.py                             # VGG16 hed, three layers, fp32 and bf16
    python benchmarks/utilization.py --layers block3_conv3 --precision bfloat16 --steps 4
    KERAS_BACKEND=jax python benchmarks/utilization.py --layers block3_conv3
    python benchmarks/utilization.py --vit --steps 2 --warm 1   # a ViT-B/16-sized step: random weights, 224 px

Measured, in this order, for each precision:

- `matmul`: before and after every layer, the best of `--repeats` square matmuls of `--matmul-size` (2048)
  on the backend, float32 tensors or bfloat16 tensors (what a `mixed_bfloat16` layer multiplies);
  GFLOP/s = 2 n^3 / s; the peak is the best of all of them (the least disturbed by other work);
- for each layer (batch `--batch`, `--size` px, one filter per image):
  - `model`: the model's forward pass and input gradient alone (the extractor kerasviz uses, at that
    precision, compiled: `tf.function` / `jax.jit`; eager on torch), on a fixed batch: the cost the FLOP
    count (`flops.py`) describes; on TensorFlow traced with the GELU and attention kernels kerasviz's steps
    use (`kerasviz/engine/backends/tf_kernels.py`), or Keras's own with `--keras-kernels`;
  - `kerasviz`: one step of `kv.visualize_filters(..., preset=--preset)` (Fourier param, transforms, Adam
    update, the objective): the time of a run of `--warm + --steps` steps minus one of `--warm` steps, over
    `--steps`, so compiling, the start and the end of a run cancel;
  - ms per step, GFLOP/s (the FLOP count of `flops.step_flops` x batch over that time), and that as a
    share of the same precision's matmul peak; `other` is the kerasviz step's time beyond the model's
    (param, transforms, update, objective).

Timings on a shared machine move with the load: the load average is printed beside every table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flops  # noqa: E402

LAYERS = ("block1_conv2", "block3_conv3", "block4_conv3")


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak(precision: str, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n matmul on the active Keras backend in `precision` (float32 or bfloat16 tensors)."""
    import keras
    import numpy as np

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    a_np, b_np = (rng.standard_normal((n, n)).astype("float32") for _ in range(2))
    if backend == "tensorflow":
        import tensorflow as tf

        a, b = (tf.cast(tf.constant(m), precision) for m in (a_np, b_np))
        f = tf.function(tf.matmul)
        run = lambda: f(a, b).numpy()  # noqa: E731
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        a, b = (jnp.asarray(m, dtype=precision) for m in (a_np, b_np))
        f = jax.jit(jnp.matmul)
        run = lambda: f(a, b).block_until_ready()  # noqa: E731
    elif backend == "torch":
        import torch

        a, b = (torch.tensor(m).to(getattr(torch, precision)) for m in (a_np, b_np))
        run = lambda: torch.matmul(a, b).sum().item()  # noqa: E731
    else:
        raise ValueError(f"No matmul for backend {backend!r}.")
    run()  # compile, warm the caches
    return 2 * n**3 / _best(run, repeats) / 1e9


def model_step(net, layer: str, precision: str, batch: int, size: int, keras_kernels: bool = False):
    """A function running one compiled forward + input gradient of the extractor for `layer` on a fixed batch
    (one filter per image, mean over positions), returning after the gradient is computed. On TensorFlow it is
    traced with the kernels kerasviz's own steps trace with (`tf_kernels`: GELU, attention) unless
    `keras_kernels`, which keeps Keras's."""
    import contextlib

    import keras
    import numpy as np

    import kerasviz as kv

    extractor = kv.nets.get_extractor(net, [layer], True, precision)
    backend = keras.backend.backend()
    x_np = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, net.input_channels)).astype("float32")
    one_hot = keras.ops.convert_to_tensor(np.eye(int(extractor.outputs[0].shape[-1]), dtype="float32")[
        np.arange(batch) % 16])

    def total(acts):  # a map's positions, or a token layer's tokens
        return keras.ops.sum(keras.ops.mean(acts, axis=tuple(range(1, len(acts.shape) - 1))) * one_hot)

    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x_np)

        from kerasviz.engine.backends import tf_kernels

        @tf.function
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = total(extractor(x, training=False))
            return tape.gradient(loss, x)

        with contextlib.nullcontext() if keras_kernels else tf_kernels.kernels():
            grad.get_concrete_function(x)  # traced here, with the kernels
        return lambda: grad(x).numpy()
    if backend == "jax":
        import jax

        tv = [v.value for v in extractor.trainable_variables]
        ntv = [v.value for v in extractor.non_trainable_variables]
        grad = jax.jit(jax.grad(lambda x, tv, ntv: total(extractor.stateless_call(tv, ntv, x)[0])))
        return lambda: grad(x_np, tv, ntv).block_until_ready()
    if backend == "torch":
        import torch

        def run():
            x = torch.tensor(x_np, requires_grad=True)
            total(extractor(x, training=False)).backward()
            return x.grad.sum().item()

        return run
    raise ValueError(f"No step for backend {backend!r}.")


def kerasviz_step_seconds(net, layer: str, precision: str, args) -> float:
    """Seconds of one `visualize_filters` step (the difference of two runs, over the extra steps)."""
    import kerasviz as kv

    def run(steps):
        t = time.perf_counter()
        kv.visualize_filters(net, layer, range(args.batch), preset=args.preset, size=args.size, steps=steps,
                             octaves=1, revive_steps=0, batch_size=args.batch, precision=precision, progress=False)
        return time.perf_counter() - t

    run(1)  # compile
    short = min(run(args.warm) for _ in range(args.repeats_step))
    long = min(run(args.warm + args.steps) for _ in range(args.repeats_step))
    return (long - short) / args.steps if long > short else float("nan")  # nan: the load hid the steps


VIT_B16 = dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)  # ViT-B/16


def vit_b16(size: int = 224, blocks: int = 12):
    """A KerasHub `ViTBackbone` of ViT-B/16's shape (or its first `blocks` blocks) with random weights, and the
    layer read: the last block's MLP hidden layer (after its GELU)."""
    import keras_hub

    import kerasviz as kv

    model = keras_hub.models.ViTBackbone(image_shape=(size, size, 3), **dict(VIT_B16, num_layers=blocks))
    return kv.nets.as_network(model, input_range=(0, 1)), f"vit_encoder/transformer_block_{blocks}/mlp/dense_1"


def vit_step_flops(size: int = 224, blocks: int = 12) -> int:
    """FLOP of one step (forward + input gradient) of `vit_b16` for one image, up to the last block's MLP hidden
    layer. Forward multiply-adds: the patch embedding; per block the query/key/value/output projections
    (4 N d^2), the attention scores and their mix (2 N^2 d) and the MLP (2 N d m; the last block's second Dense
    is not computed: N d m there). The input gradient of a product with a weight costs what its forward did, but
    both operands of the scores and the mix are activations, each with its own gradient: twice their forward."""
    n_patches = (size // VIT_B16["patch_size"]) ** 2
    n, d, m = n_patches + 1, VIT_B16["hidden_dim"], VIT_B16["mlp_dim"]
    embed = n_patches * d * 3 * VIT_B16["patch_size"] ** 2
    weights = embed + blocks * 4 * n * d * d + (2 * blocks - 1) * n * d * m  # products with a weight
    attention = blocks * 2 * n * n * d  # products of two activations
    return 2 * (2 * weights + 3 * attention)


def set_threads(n: int) -> None:
    """Limit the backend's compute threads to `n` (call before any computation; JAX: before it is imported)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "jax":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                                   f"{'false' if n == 1 else 'true'} intra_op_parallelism_threads={n}").strip()
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    elif backend == "torch":
        import torch

        torch.set_num_threads(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="VGG16")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS))
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=("float32", "bfloat16"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", default="fast", help="the kerasviz step's preset (octaves=1, no revive)")
    parser.add_argument("--warm", type=int, default=2, help="steps of the shorter kerasviz run (default: 2)")
    parser.add_argument("--steps", type=int, default=4, help="extra steps of the longer run (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed model steps and matmuls, best kept")
    parser.add_argument("--repeats-step", type=int, default=1, help="kerasviz runs of each length, best kept")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--skip-kerasviz", action="store_true", help="time the model step only")
    parser.add_argument("--vit", action="store_true",
                        help="a ViT-B/16-sized KerasHub ViTBackbone (random weights, 224 px; --model, --weights, "
                             "--layers and --size are then ignored)")
    parser.add_argument("--vit-blocks", type=int, default=12, help="with --vit: the first N blocks (default: 12)")
    parser.add_argument("--keras-kernels", action="store_true",
                        help="TensorFlow: time the model step with Keras's own GELU and attention kernels instead of "
                             "those kerasviz's steps trace with (engine/backends/tf_kernels.py)")
    parser.add_argument("--threads", type=int, default=None,
                        help="compute threads of the backend (default: its own); 1 gives steadier figures on a "
                             "busy machine: the matmul peak and the steps then share one core")
    args = parser.parse_args()
    if args.threads:
        set_threads(args.threads)

    import keras

    import kerasviz as kv

    weights = None if args.weights.lower() == "none" else args.weights
    if args.vit:
        net, layer = vit_b16(blocks=args.vit_blocks)
        args.model, weights, args.layers, args.size = f"ViT-B/16 ({args.vit_blocks} blocks)", None, [layer], 224
        gflop = {layer: vit_step_flops(args.size, args.vit_blocks) * args.batch / 1e9}
    else:
        net = kv.get_model(args.model, weights=weights)
        gflop = {layer: flops.step_flops(net, layer, args.size) * args.batch / 1e9 for layer in args.layers}
    backend = keras.backend.backend()
    threads = f"{args.threads} thread(s)" if args.threads else "default threads"
    if backend == "tensorflow":
        threads += ", model step with " + ("Keras's kernels" if args.keras_kernels else "kerasviz's kernels")
    print(f"{args.model} ({weights}), batch {args.batch}, {args.size} px, backend {backend}, {threads}, "
          f"bfloat16_is_fast={kv.engine.backend.bfloat16_is_fast()}; {_load()}", flush=True)
    rows, peaks = [], {}

    def peak_of(precision):  # measured again beside every layer; the best seen is the peak (least disturbed)
        peaks[precision] = max(peaks.get(precision, 0.0), matmul_peak(precision, args.matmul_size, args.repeats))
        return peaks[precision]

    for precision in args.precision:
        for layer in args.layers:
            peak = peak_of(precision)
            step = model_step(net, layer, precision, args.batch, args.size, args.keras_kernels)
            step()  # compile
            model_s = _best(step, args.repeats)
            viz_s = None if args.skip_kerasviz else kerasviz_step_seconds(net, layer, precision, args)
            peak = peak_of(precision)
            rows.append((precision, layer, gflop[layer], model_s, viz_s))
            line = (f"  {layer} {precision}: matmul peak so far {peak:.0f} GFLOP/s; model {1e3 * model_s:.0f} ms "
                    f"({gflop[layer] / model_s:.0f} GFLOP/s)")
            if viz_s is not None:
                line += f", kerasviz step {1e3 * viz_s:.0f} ms ({gflop[layer] / viz_s:.0f} GFLOP/s)"
            print(line + f"  [{_load()}]", flush=True)

    print(f"\n{args.model} ({weights}), batch {args.batch}, {args.size} px, backend {backend}, {threads}; {_load()}")
    print("matmul peak: " + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peaks.items())
          + f" ({args.matmul_size}x{args.matmul_size}, the best of every measurement)")
    print("| layer | precision | GFLOP/step | model ms | GFLOP/s | % peak | kerasviz step ms | GFLOP/s | % peak "
          "| other ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for precision, layer, g, model_s, viz_s in rows:
        peak = peaks[precision]
        viz = ("- | - | - | -" if viz_s is None else
               f"{1e3 * viz_s:.0f} | {g / viz_s:.0f} | {100 * g / viz_s / peak:.0f}% | {1e3 * (viz_s - model_s):.0f}")
        print(f"| {layer} | {precision} | {g:.1f} | {1e3 * model_s:.0f} | {g / model_s:.0f} | "
              f"{100 * g / model_s / peak:.0f}% | {viz} |")
    for layer in args.layers:
        by = {r[0]: r for r in rows if r[1] == layer}
        if {"float32", "bfloat16"} <= set(by):
            f32, b16 = by["float32"], by["bfloat16"]
            ratio = f"model {f32[3] / b16[3]:.2f}x"
            if f32[4] and b16[4]:
                ratio += f", kerasviz step {f32[4] / b16[4]:.2f}x"
            print(f"bfloat16 vs float32, {layer}: {ratio}")


if __name__ == "__main__":
    main()
