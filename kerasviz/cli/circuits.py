"""`kerasviz circuit`, `kerasviz kernels` and `kerasviz expanded`: weights and circuits from the command line.

    kerasviz circuit VGG16 block3_conv1 7 -k 6 --out circuit.png --weights hed --preset fast
    kerasviz circuit vit.keras block3_mlp_out 7 -k 6                  # the MLP hidden units feeding channel 7
    kerasviz kernels VGG16 --out conv1.png --weights hed              # first-layer RGB kernels
    kerasviz kernels VGG16 block2_conv1 --filter 0 --out kernel.png   # one filter's kernel slices
    kerasviz expanded VGG16 block1_conv2 block2_conv2 5 -k 8 --out expanded.png
"""

from __future__ import annotations

import argparse

from kerasviz.cli.common import (
    UsageError,
    add_model_args,
    add_precision_arg,
    add_seed_arg,
    check_writable,
    load_network,
    save_figure,
)


def _check_k(k: int) -> None:
    if k < 1:
        raise UsageError(f"-k must be >= 1. Received: {k}.")


def _cmd_circuit(args) -> None:
    from kerasviz import plot_weights, weights

    _check_k(args.k)
    check_writable(args.out)
    net = load_network(args)
    top = weights.top_inputs(net, args.layer, args.filter, args.k)  # validates before any optimization
    fig = plot_weights.circuit_figure(net, top.layer, top.filter, args.k, preset=args.preset, size=args.size,
                                      steps=args.steps, seed=args.seed, precision=args.precision)
    save_figure(fig, args.out)
    listed = ", ".join(f"{c} ({n:.3g})" for c, n in zip(top.channels, top.norms, strict=True))
    print(f"{args.out}: {top.layer} filter {top.filter}; top {len(top)} inputs from {top.input_layer} "
          f"(channel (weight norm)): {listed}")


def _cmd_kernels(args) -> None:
    from kerasviz import plot_weights, weights

    check_writable(args.out)
    net = load_network(args)
    if args.filter is None:
        layer = args.layer or weights.first_conv_layer(net)
        if args.raw:
            from kerasviz import images

            images.save_image(weights.first_layer_kernels_image(net, layer), args.out)
        else:
            save_figure(plot_weights.first_layer_kernels_figure(net, layer), args.out)
        print(f"{args.out}: kernels of {layer}")
        return
    if args.layer is None:
        raise UsageError("--filter needs a LAYER: kerasviz kernels MODEL LAYER --filter F.")
    save_figure(plot_weights.kernel_figure(net, args.layer, args.filter), args.out)
    print(f"{args.out}: kernel slices of {args.layer} filter {args.filter}")


def _cmd_expanded(args) -> None:
    from kerasviz import plot_weights, weights

    _check_k(args.k)
    if args.size < 1:
        raise UsageError(f"--size must be >= 1. Received: {args.size}.")
    check_writable(args.out)
    net = load_network(args)
    top = weights.top_expanded(net, args.layer_from, args.layer_to, args.filter, args.k, size=args.size)
    fig = plot_weights.expanded_weights_figure(net, args.layer_from, args.layer_to, args.filter, args.k,
                                               size=args.size)
    save_figure(fig, args.out)
    listed = ", ".join(f"{c} ({n:.3g})" for c, n in zip(top.channels, top.norms, strict=True))
    print(f"{args.out}: expanded weights {top.input_layer} -> {top.layer} filter {top.filter}: {listed}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `circuit`, `kernels` and `expanded` subcommands."""
    p = subparsers.add_parser("circuit", help="a filter beside the input channels it weighs most")
    add_model_args(p)
    p.add_argument("layer", help="a Conv2D layer, or a Dense layer such as a transformer MLP's, by name or nested "
                                 "path (list them: kerasviz layers MODEL)")
    p.add_argument("filter", type=int, help="the filter (output channel) index of LAYER, from 0")
    p.add_argument("-k", type=int, default=6, help="how many input channels, strongest first (default: 6)")
    p.add_argument("--out", default="circuit.png", help="output figure (default: circuit.png)")
    p.add_argument("--preset", default=None, help="visualization preset: quality (default), fast, lucid, ...")
    add_precision_arg(p)
    p.add_argument("--size", type=int, default=None,
                   help="visualization size in pixels (default: the preset's)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps (default: the preset's)")
    add_seed_arg(p)
    p.set_defaults(run=_cmd_circuit)

    p = subparsers.add_parser("kernels", help="first-layer RGB kernels, or one filter's kernel slices")
    add_model_args(p)
    p.add_argument("layer", nargs="?", default=None, help="a Conv2D layer (default: the first one)")
    p.add_argument("--filter", type=int, default=None,
                   help="draw this filter's kernel slices, one per input channel (needs LAYER; "
                        "default: the RGB kernels of the first layer)")
    p.add_argument("--raw", action="store_true", help="save the first-layer mosaic itself, not a figure")
    p.add_argument("--out", default="kernels.png", help="output image (default: kernels.png)")
    p.set_defaults(run=_cmd_kernels)

    p = subparsers.add_parser("expanded", help="expanded weights between two conv layers into one filter")
    add_model_args(p)
    p.add_argument("layer_from", help="the earlier layer, whose channels are ranked (e.g. block1_conv2)")
    p.add_argument("layer_to", help="the later layer, reached from LAYER_FROM through single-input layers "
                                    "(e.g. block2_conv2)")
    p.add_argument("filter", type=int, help="the filter (output channel) index of LAYER_TO, from 0")
    p.add_argument("-k", type=int, default=8, help="how many channels of layer_from (default: 8)")
    p.add_argument("--size", type=int, default=5, help="rows and columns around the centre (default: 5)")
    p.add_argument("--out", default="expanded.png", help="output figure (default: expanded.png)")
    p.set_defaults(run=_cmd_expanded)
