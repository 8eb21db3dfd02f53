"""Where a kerasviz model step's time goes, op by op (TensorFlow): the forward pass and input gradient of the
extractor kerasviz uses, traced once with TensorFlow's step statistics, its op time summed by kind.

    python benchmarks/op_profile.py --vit --precision bfloat16      # ViT-B/16 sized, 224 px, batch 16
    python benchmarks/op_profile.py --layers block3_conv3           # VGG16 hed, 128 px

The step is the one `utilization.py` times (`model_step`, traced with the GELU and attention kernels kerasviz's
steps use, or Keras's own with `--keras-kernels`): the compiled function's graph, with its variables frozen to
constants, run in a session with a full trace. The session runs one op at a time (`--inter-op 1`, the default):
where TensorFlow runs independent ops side by side (a ViT's query, key and value projections), each one's time
stretches while they share the cores, and a kind's share then says more about its neighbours than about its
kernel (with the default inter-op threads, the projections looked ~2/3 as fast as the MLP's products; one at a
time they run as fast). The kinds:

- `MatMul`: 2-D matrix products (a Dense layer on flattened tokens, its input gradient);
- `BatchMatMulV2`: products of a 3-D tensor with a matrix (`EinsumDense`: a ViT's query, key, value and output
  projections, and their gradients) and, with kerasviz's kernels, attention's scores and their mix over the
  values (batch x heads products) and their gradients;
- `Einsum`: attention's products with Keras's kernels (`--keras-kernels`);
- `PartitionedCall`: a float32 GELU and its gradient, each one XLA-compiled function (kerasviz's kernels);
- `Conv2D*`: convolutions (a ViT's patch embedding);
- the rest: element-wise work (GELU's `Erfc`, `Mul`, LayerNorm's moments, softmax's `Exp`, `Cast` between
  bfloat16 and float32), which moves memory and does no matrix product.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import utilization  # noqa: E402


def op_times(net, layer: str, precision: str, batch: int, size: int, inter_op: int = 1,
             keras_kernels: bool = False) -> tuple[dict, dict, float]:
    """`({op kind: summed ms}, {op kind: count}, wall seconds of the traced run)` of one model step, its ops run
    `inter_op` at a time (0: TensorFlow's default)."""
    import contextlib

    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    import kerasviz as kv
    from kerasviz.engine.backends import tf_kernels

    extractor = kv.nets.get_extractor(net, [layer], True, precision)
    one_hot = tf.constant(np.eye(int(extractor.outputs[0].shape[-1]), dtype="float32")[np.arange(batch) % 16])

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            acts = extractor(x, training=False)
            acts = acts[0] if isinstance(acts, list) else acts
            loss = tf.reduce_sum(tf.reduce_mean(acts, axis=tuple(range(1, len(acts.shape) - 1))) * one_hot)
        return tape.gradient(loss, x)

    x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, net.input_channels)).astype("float32")
    with contextlib.nullcontext() if keras_kernels else tf_kernels.kernels():
        frozen = convert_variables_to_constants_v2(grad.get_concrete_function(tf.constant(x)))
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, x.shape)
        out, = tf.import_graph_def(frozen.graph.as_graph_def(), input_map={frozen.inputs[0].name: image},
                                   return_elements=[frozen.outputs[0].name])
        config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=inter_op)
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            session.run(out, {image: x})  # warm
            options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
            metadata = tf.compat.v1.RunMetadata()
            start = time.perf_counter()
            session.run(out, {image: x}, options=options, run_metadata=metadata)
            wall = time.perf_counter() - start
    ms, count = collections.Counter(), collections.Counter()
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            label = node.timeline_label
            kind = label.split(" = ", 1)[1].split("(", 1)[0] if " = " in label else node.node_name
            kind = kind.removeprefix("_Mkl").removeprefix("Native")
            ms[kind] += node.all_end_rel_micros / 1e3
            count[kind] += 1
    return dict(ms), dict(count), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="VGG16")
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--layers", nargs="+", default=["block3_conv3"])
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=("float32", "bfloat16"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--vit", action="store_true", help="a ViT-B/16-sized KerasHub ViTBackbone (as utilization.py)")
    parser.add_argument("--vit-blocks", type=int, default=12, help="with --vit: the first N blocks (default: 12)")
    parser.add_argument("--inter-op", type=int, default=1,
                        help="ops run side by side (default: 1, each op's own time; 0: TensorFlow's default)")
    parser.add_argument("--keras-kernels", action="store_true",
                        help="trace with Keras's own GELU and attention kernels instead of kerasviz's")
    parser.add_argument("--top", type=int, default=12, help="op kinds shown (default: 12)")
    args = parser.parse_args()

    import keras

    import kerasviz as kv

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("op_profile.py reads TensorFlow's step statistics: run it with KERAS_BACKEND=tensorflow.")
    if args.vit:
        net, layer = utilization.vit_b16(blocks=args.vit_blocks)
        args.model, args.weights, args.layers, args.size = f"ViT-B/16 ({args.vit_blocks} blocks)", None, [layer], 224
    else:
        net = kv.get_model(args.model, weights=None if args.weights.lower() == "none" else args.weights)
    for precision in args.precision:
        for layer in args.layers:
            ms, count, wall = op_times(net, layer, precision, args.batch, args.size, args.inter_op,
                                       args.keras_kernels)
            total = sum(ms.values())
            kernels = "Keras's" if args.keras_kernels else "kerasviz's"
            print(f"\n{args.model}, {layer}, {precision}, batch {args.batch}, {args.size} px, {kernels} kernels, "
                  f"inter-op {args.inter_op or 'default'}: traced step {1e3 * wall:.0f} ms wall, {total:.0f} ms of op "
                  f"time [{utilization._load()}]")
            print("| op | ms | share of op time | ops |")
            print("| --- | ---: | ---: | ---: |")
            for kind, t in sorted(ms.items(), key=lambda kv_: -kv_[1])[:args.top]:
                print(f"| {kind} | {t:.0f} | {100 * t / total:.1f}% | {count[kind]} |")


if __name__ == "__main__":
    main()
