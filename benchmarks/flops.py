"""Multiply-adds of a kerasviz step: the model's forward pass and the input gradient, from the input to a layer.

The rule (what `step_flops` counts, per image):

- the layers on the path from the model's input to the target layer: those of the feature extractor that
  kerasviz builds for it (`kv.feature_extractor`, flexible input), so a side branch that does not feed the
  target, and every layer after it, counts nothing; the target layer itself counts;
- in each of them, the multiply-adds of its matrix products only, at the output shapes the layer has for an input
  of `size` x `size` (`compute_output_spec` of each node): Conv1D/2D/3D (groups too), DepthwiseConv2D,
  SeparableConv2D (depthwise + pointwise), Conv2DTranspose and Dense (on any leading dimensions); biases,
  activations, pooling, normalization and additions are left out (they are memory work, not matmul work);
- forward + input gradient = 2 x forward: the gradient of a linear layer with respect to its input is the
  transposed product, the same multiply-adds, and it is needed in every layer on the path, the first one too
  (the gradient goes on to the image). Weight gradients are not computed by the step (the tape watches only the
  image's values), so nothing is added for them;
- one multiply-add = 2 FLOP.

The parameterization (Fourier FFTs), the transforms, the objective and the update are not counted: their work is
small beside the model's (see `benchmarks/utilization.py`, which times them apart).

Check: VGG16 to `block3_conv3` at 128 px is 3.048 G multiply-adds forward, 12.2 GFLOP per image and step.

    python benchmarks/flops.py VGG16 block3_conv3 --size 128
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def layer_macs(layer, input_shape, output_shape) -> int:
    """Multiply-adds of one call of `layer` on one input of `input_shape` giving `output_shape` (batch included).

    Args:
        layer: a Keras layer.
        input_shape: the shape of its (first) input, batch first.
        output_shape: the shape of its output, batch first.

    Returns:
        An int: 0 for a layer without a matrix product (pooling, activations, ...).
    """
    import keras

    from kerasviz.nets import PreActivation

    if isinstance(layer, PreActivation):  # the wrapper of a fused ReLU: the inner layer's products
        layer = layer.inner
    L = keras.layers
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"

    def split(shape):  # (batch, spatial dims, channels)
        shape = [int(d) for d in shape]
        if channels_last:
            return shape[0], shape[1:-1], shape[-1]
        return shape[0], shape[2:], shape[1]

    if isinstance(layer, L.Dense):
        rows = math.prod(int(d) for d in output_shape[:-1])
        return rows * int(input_shape[-1]) * int(layer.units)
    if isinstance(layer, L.SeparableConv2D):
        batch, out_spatial, out_ch = split(output_shape)
        _, _, in_ch = split(input_shape)
        positions = batch * math.prod(out_spatial)
        depthwise = positions * in_ch * layer.depth_multiplier * math.prod(layer.kernel_size)
        return depthwise + positions * in_ch * layer.depth_multiplier * out_ch
    if isinstance(layer, L.DepthwiseConv2D):
        batch, out_spatial, out_ch = split(output_shape)
        return batch * math.prod(out_spatial) * out_ch * math.prod(layer.kernel_size)
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        batch, in_spatial, in_ch = split(input_shape)  # every input position scatters the whole kernel
        return batch * math.prod(in_spatial) * in_ch * math.prod(layer.kernel_size) * int(layer.filters)
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        batch, out_spatial, out_ch = split(output_shape)
        _, _, in_ch = split(input_shape)
        groups = int(getattr(layer, "groups", 1) or 1)
        return batch * math.prod(out_spatial) * out_ch * math.prod(layer.kernel_size) * (in_ch // groups)
    return 0


def _shape(x) -> tuple:
    import keras

    return tuple(x.shape) if keras.backend.is_keras_tensor(x) or hasattr(x, "shape") else ()


def path_macs(model, inputs) -> list[tuple[str, int]]:
    """(layer name, multiply-adds) for every node of the functional `model` run on the symbolic `inputs`.

    Nested functional models and `Sequential` models are walked into (their layers are listed as
    `outer/inner`).
    """
    import keras

    rows: list[tuple[str, int]] = []

    def walk(m, x, prefix):
        if isinstance(m, keras.Sequential):
            for layer in m.layers:
                x = record(layer, prefix)(x)
            return x
        return m._run_through_graph(x, operation_fn=lambda op: record(op, prefix))

    def record(op, prefix):
        def run(*args, **kwargs):
            if isinstance(op, keras.Model):
                return walk(op, args[0] if len(args) == 1 else list(args), f"{prefix}{op.name}/")
            out = op.compute_output_spec(*args, **kwargs)
            first = args[0] if args else next(iter(kwargs.values()))
            first = first[0] if isinstance(first, (list, tuple)) else first
            output = out[0] if isinstance(out, (list, tuple)) else out
            if isinstance(op, keras.layers.Layer):
                rows.append((f"{prefix}{op.name}", layer_macs(op, _shape(first), _shape(output))))
            return out

        return run

    walk(model, inputs, "")
    return rows


def forward_macs(model, layer: str, size: int | tuple[int, int]) -> list[tuple[str, int]]:
    """Per layer multiply-adds of one image's forward pass from the input of `model` to `layer`.

    Args:
        model: a `kv.Network`, a `keras.Model` or a model name for `kv.get_model` (weights=None).
        layer: the target layer (name or `outer/inner` path).
        size: the input's height and width in pixels (an int for a square).

    Returns:
        A list of (layer name, multiply-adds), in the order the graph runs them, zeros included.
    """
    import keras

    import kerasviz as kv

    if isinstance(model, str):
        model = kv.get_model(model, weights=None)
    net = model if isinstance(model, kv.Network) else kv.nets.as_network(model)
    extractor = kv.feature_extractor(net, [layer], pre_activation=False)
    h, w = (size, size) if isinstance(size, int) else size
    channels = int(extractor.inputs[0].shape[-1])
    return path_macs(extractor, keras.KerasTensor((1, h, w, channels)))


def step_flops(model, layer: str, size: int | tuple[int, int]) -> int:
    """FLOP of one kerasviz step for one image: forward + input gradient of the model to `layer` (the module's
    rule: 2 x forward multiply-adds x 2 FLOP).

    Args:
        model: as for `forward_macs`.
        layer: the target layer.
        size: the input size in pixels.

    Returns:
        An int.

    Example:
    >>> round(step_flops("VGG16", "block3_conv3", 128) / 1e9, 1)
    12.2
    """
    return 2 * 2 * sum(m for _, m in forward_macs(model, layer, size))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("layer")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--weights", default="none")
    args = parser.parse_args()

    import kerasviz as kv

    net = kv.get_model(args.model, weights=None if args.weights.lower() == "none" else args.weights)
    rows = forward_macs(net, args.layer, args.size)
    for name, macs in rows:
        if macs:
            print(f"{name:>32}: {macs / 1e6:10.1f} M multiply-adds")
    total = sum(m for _, m in rows)
    print(f"{'forward':>32}: {total / 1e9:10.3f} G multiply-adds; step (forward + input gradient): "
          f"{4 * total / 1e9:.2f} GFLOP per image")


if __name__ == "__main__":
    main()
