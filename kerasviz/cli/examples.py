"""`kerasviz examples`, `kerasviz caricature` and `kerasviz accentuate`: the CLI for your own images."""

from __future__ import annotations

import os

EXAMPLES_FILTERS = 8  # the filters `kerasviz examples` shows by default (clipped to the layer's channels)


def _cmd_examples(args) -> None:
    from kerasviz import examples, nets, optimize, plot
    from kerasviz.cli import common

    examples.list_images(args.dir)  # a missing or empty folder fails before the model is loaded
    common.check_writable(args.out)
    if args.k < 1:
        raise common.UsageError(f"-k must be at least 1. Received: {args.k}.")
    net = common.load_network(args)
    path, _ = nets.find_layer(net, args.layer)
    filters = nets.resolve_filters(common.parse_filters(args.filters), nets.channels_of(net, path), path,
                                   default=EXAMPLES_FILTERS)
    result = examples.dataset_examples(net, args.layer, args.dir, k=args.k, filters=filters,
                                   batch_size=args.batch_size, size=args.size, tokens=args.tokens,
                                   extra_tokens=args.extra_tokens)
    visualization = None
    if not args.no_visualization:
        visualization = optimize.visualize_filters(net, result.layer, result.filters, preset=args.preset,
                                                   steps=args.steps, seed=args.seed, precision=args.precision,
                                                   progress=False)
    fig = plot.examples_figure(result, visualization=visualization)
    fig.savefig(args.out, dpi=args.dpi)
    field = result.receptive_field
    rf = f"receptive field {field.size[0]}x{field.size[1]} px" if field else "whole images"
    print(f"{args.out}: top {min(args.k, result.count)} of {result.count} images for {len(result.filters)} filters of "
          f"{result.layer} ({rf}) in {result.seconds:.1f} s")


def _cmd_caricature(args) -> None:
    from kerasviz import images
    from kerasviz.cli import common
    from kerasviz.inversion import caricature

    if not os.path.exists(args.image):
        raise common.UsageError(f"No image file at {args.image!r}.")
    common.check_writable(args.out)
    net = common.load_network(args)
    layers = [name.strip() for name in args.layer.split(",") if name.strip()]
    result = caricature(net, layers, args.image, from_image=args.from_image, steps=args.steps,
                                   size=args.size, preset=args.preset, exaggerate=args.exaggerate,
                                   seed=args.seed, precision=args.precision, progress=not args.quiet)
    images.save_image(result.image, args.out)
    print(f"{args.out}: cosine similarity to the image at {', '.join(result.layers)}: "
          f"{result.similarity_before:.3f} -> {result.similarity_after:.3f} in {result.result.seconds:.1f} s")


def _cmd_accentuate(args) -> None:
    from kerasviz import images
    from kerasviz.accentuation import accentuate
    from kerasviz.cli import common

    if not os.path.exists(args.image):
        raise common.UsageError(f"No image file at {args.image!r}.")
    common.check_writable(args.out)
    if args.filters is None:
        raise common.UsageError("--filters is required: the filters to accentuate, e.g. --filters 0,3,5-7.")
    net = common.load_network(args)
    weight = {} if args.reg_weight is None else {"reg_weight": args.reg_weight}
    result = accentuate(net, args.layer, common.parse_filters(args.filters), args.image, reg_layer=args.reg_layer,
                        **weight, steps=args.steps, size=args.size, seed=args.seed,
                        precision=args.precision, progress=not args.quiet)
    tiles = [images.to_uint8(result.inputs[0]), *result.images]
    labels = ["photo", *[str(f) for f in result.filters]]
    images.save_image(images.stitch(tiles, cols=len(tiles), labels=labels), args.out)
    print(f"{args.out}: the photo, then filters {', '.join(map(str, result.filters))} of {result.layer} accentuated "
          f"(regularized at {result.reg_layer or 'the pixels'})")
    for f, gain, distance in zip(result.filters, result.gains, result.distances, strict=True):
        print(f"  filter {f}: activation x{gain:.2f}, pixel distance {distance:.3f}")


def register(subparsers) -> None:
    """Add the `examples`, `caricature` and `accentuate` subcommands."""
    from kerasviz.cli import common

    p = subparsers.add_parser("examples", help="the images of a folder that excite each filter most, "
                                               "cropped to the receptive field, beside the filter's picture")
    common.add_model_args(p)
    p.add_argument("layer", help=common.LAYER_HELP)
    p.add_argument("dir", help="a folder of images (searched recursively)")
    p.add_argument("-k", type=int, default=9, help="images per filter (default: 9)")
    p.add_argument("--filters", default=None,
                   help="e.g. 0-7, 0,3,5-7 or all; a single number is that one filter (default: the first "
                        f"{EXAMPLES_FILTERS}, or every channel of a smaller layer)")
    p.add_argument("--out", default="examples.png", help="output figure (default: examples.png)")
    p.add_argument("--size", type=int, default=None,
                   help="images are resized to this (default: the model's input size, else 224)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--tokens", choices=("patches", "class"), default="patches",
                   help="for a transformer's token layer: crops of the patch tokens that fire, or whole images "
                        "ranked by the class token (default: patches)")
    common.add_extra_tokens_arg(p)
    p.add_argument("--no-visualization", action="store_true", help="do not draw the filters' own pictures")
    p.add_argument("--preset", default="fast", help="preset of the filters' pictures (default: fast)")
    common.add_precision_arg(p)
    p.add_argument("--steps", type=int, default=None,
                   help="optimization steps of the filters' pictures (default: the preset's)")
    common.add_seed_arg(p)
    p.add_argument("--dpi", type=int, default=150, help="resolution of the saved figure (default: 150)")
    p.set_defaults(run=_cmd_examples)

    p = subparsers.add_parser("caricature", help="a picture whose activations at a layer match an image's")
    common.add_model_args(p)
    p.add_argument("layer", help="a layer name, or several separated by commas")
    p.add_argument("image", help="an image file (PNG, JPEG, ...) whose activations the picture matches")
    p.add_argument("--out", default="caricature.png", help="output image (default: caricature.png)")
    p.add_argument("--from-image", action="store_true", help="start from the image instead of noise")
    p.add_argument("--exaggerate", type=float, default=0.0,
                   help="reward going past the image's activations (try 0.2 with --from-image)")
    p.add_argument("--preset", default=None, help="quality (default), fast, lucid")
    common.add_precision_arg(p)
    p.add_argument("--size", type=int, default=None, help="picture size in pixels (default: the preset's)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps (default: the preset's)")
    common.add_seed_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_caricature)

    p = subparsers.add_parser("accentuate", help="a photo changed as little as needed for filters to fire much more "
                                                 "(feature accentuation)")
    common.add_model_args(p)
    p.add_argument("layer", help=common.LAYER_HELP)
    p.add_argument("image", help="the photo (PNG, JPEG, ...)")
    p.add_argument("--filters", default=None, help="the filters, e.g. 0-7, 0,3,5-7 or all (required)")
    p.add_argument("--out", default="accentuated.png",
                   help="output image: the photo, then one accentuation per filter (default: accentuated.png)")
    p.add_argument("--reg-layer", default=None,
                   help="the earlier layer kept close to the photo's (default: the convolution halfway to the layer)")
    p.add_argument("--reg-weight", type=float, default=None,
                   help="the regularizer's weight over faccent's balance; 0 turns it off (default: 1)")
    common.add_precision_arg(p)
    p.add_argument("--size", type=int, default=None, help="picture size in pixels (default: 128)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps (default: 96)")
    common.add_seed_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_accentuate)
