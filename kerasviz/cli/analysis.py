"""`kerasviz top|dream|predict|maps|heatmap`: what an image activates, from the command line.

Registered by `kerasviz.cli.main`. The image is read before the model is built, so a
bad image path fails at once; every user error is a `ValueError` that `kerasviz.cli.main` turns into a
one-line message and exit code 2.
"""

from __future__ import annotations

import os
import time

from kerasviz.cli.common import (
    LAYER_HELP,
    add_extra_tokens_arg,
    add_model_args,
    add_precision_arg,
    add_seed_arg,
    check_writable,
    load_network,
    parse_weights,
    save_figure,
)


def _layers(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"LAYER must be a layer name or comma-separated names. Received: {text!r}.")
    return names


def _read_image(path: str):
    from kerasviz import images

    return images.load_image(path)


def _positive(name: str, value, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}. Received: {value}.")


def _check_out(path: str, kind: str) -> None:
    """Fail before any work when `--out` cannot be written: a parent that is a file, a read-only folder,
    or an extension that matplotlib (`kind="figure"`) or PIL (`kind="image"`) cannot write."""
    probe = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"Cannot write {path!r}: {probe!r} is a file, not a folder.")
    check_writable(path)
    if kind == "figure":
        from matplotlib.figure import Figure

        extensions = sorted("." + e for e in Figure().canvas.get_supported_filetypes())
    else:
        from PIL import Image

        extensions = sorted(e for e, f in Image.registered_extensions().items() if f in Image.SAVE)
    ext = os.path.splitext(path)[1].lower()
    if ext not in extensions:
        shown = ", ".join(e for e in (".png", ".jpg", ".pdf", ".svg") if e in extensions)
        raise ValueError(f"--out must end in one of {shown} (or another {kind} format). Received: {path!r}.")


def _cmd_top(args) -> None:
    from kerasviz import analysis, plot

    _positive("-k", args.k)
    _positive("--steps", args.steps)
    _positive("--size", args.size, 8)
    _check_out(args.out, "figure")
    image = _read_image(args.image)
    net = load_network(args)
    tokens = dict(tokens=args.tokens, extra_tokens=args.extra_tokens)
    ranking = analysis.top_filters(net, args.layer, image, args.k, by=args.by, size=args.image_size, **tokens)
    fig = plot.top_filters_figure(net, args.layer, image, args.k, by=args.by, preset=args.preset,
                                  size=args.size, steps=args.steps, seed=args.seed,
                                  image_size=args.image_size, precision=args.precision, **tokens)
    save_figure(fig, args.out)
    print(f"{'rank':>4}  {'filter':>6}  {args.by} activation")
    for rank, (i, v) in enumerate(zip(ranking.indices, ranking.values, strict=True), 1):
        print(f"{rank:>4}  {int(i):>6}  {v:.4g}")
    print(f"wrote {args.out}")


def _cmd_dream(args) -> None:
    from kerasviz import images, inversion

    _positive("--steps", args.steps)
    _positive("--octaves", args.octaves)
    _positive("--size", args.size, inversion.MIN_DREAM_SIZE)
    _check_out(args.out, "image")
    image = _read_image(args.image)
    net = load_network(args)
    layers = _layers(args.layer)
    start = time.perf_counter()
    out = inversion.dream(net, layers[0] if len(layers) == 1 else layers, image, steps=args.steps,
                          lr=args.lr, octaves=args.octaves, octave_scale=args.octave_scale,
                          jitter=args.jitter, size=args.size, seed=args.seed, progress=args.progress)
    images.save_image(out, args.out)
    print(f"{args.out}: {out.shape[1]}x{out.shape[0]} dream of {', '.join(layers)} "
          f"({args.octaves} octaves x {args.steps} steps) in {time.perf_counter() - start:.1f} s")


def _cmd_predict(args) -> None:
    from kerasviz import analysis, nets

    _positive("--top", args.top)
    image = _read_image(args.image)
    if nets.is_model_path(args.model):
        net = load_network(args)
    else:  # a keras.applications name: with its classifier
        net = nets.as_network(nets.get_model(args.model, weights=parse_weights(args.weights), include_top=True),
                              preprocess=args.preprocess,
                              input_range=tuple(args.input_range) if args.input_range else None)
    for p in analysis.predict(net, image, top=args.top):
        print(f"{p.probability:8.4f}  {p.class_id:>4}  {p.class_name}")


def _cmd_maps(args) -> None:
    from kerasviz import plot
    from kerasviz.cli.common import parse_filters

    _check_out(args.out, "figure")
    image = _read_image(args.image)
    net = load_network(args)
    filters = None if args.filters in (None, "all") else parse_filters(args.filters)
    fig = plot.feature_maps_figure(net, args.layer, image, filters=filters, cols=args.cols,
                                   image_size=args.image_size, extra_tokens=args.extra_tokens)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")


def _cmd_heatmap(args) -> None:
    from kerasviz import plot

    _check_out(args.out, "figure")
    image = _read_image(args.image)
    net = load_network(args)
    fig = plot.heatmap_figure(net, args.layer, args.filter, image, image_size=args.image_size,
                              extra_tokens=args.extra_tokens)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")


def register(subparsers) -> None:
    """Add the image-analysis subcommands to the `kerasviz` parser."""
    p = subparsers.add_parser("top", help="the filters of a layer an image activates most, as a figure")
    add_model_args(p)
    p.add_argument("layer", help=LAYER_HELP)
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("-k", type=int, default=6, help="how many top filters (default: 6)")
    p.add_argument("--by", choices=("mean", "max"), default="mean", help="rank by mean or max activation")
    p.add_argument("--tokens", choices=("patches", "all", "class"), default="patches",
                   help="for a transformer's token layer, the tokens that rank the filters: the patch tokens, all "
                        "tokens, or the class token alone (default: patches)")
    add_extra_tokens_arg(p)
    p.add_argument("--out", default="top.png", help="output figure (default: top.png)")
    p.add_argument("--preset", default=None, help="preset of the filter pictures (default: quality)")
    add_precision_arg(p)
    p.add_argument("--size", type=int, default=None, help="size of the filter pictures in pixels")
    p.add_argument("--steps", type=int, default=None, help="optimization steps of the filter pictures")
    p.add_argument("--image-size", type=int, default=None, help="resize the image to this square size first")
    add_seed_arg(p)
    p.set_defaults(run=_cmd_top)

    p = subparsers.add_parser("dream", help="DeepDream: make a photo excite a layer more")
    add_model_args(p)
    p.add_argument("layer", help="a layer, or comma-separated layers (their sum)")
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--out", default="dream.png", help="output image (default: dream.png)")
    p.add_argument("--steps", type=int, default=20, help="steps per octave (default: 20)")
    p.add_argument("--size", type=int, default=None,
                   help="work at this size (longest side, px); the result has the input's size")
    p.add_argument("--octaves", type=int, default=3, help="number of scales (default: 3)")
    p.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (default: 1.4)")
    p.add_argument("--lr", type=float, default=0.01, help="step size in [0, 1] pixel units (default: 0.01)")
    p.add_argument("--jitter", type=int, default=4, help="random shift per step, px (default: 4)")
    add_seed_arg(p)
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(run=_cmd_dream)

    p = subparsers.add_parser("predict", help="the ImageNet classes a classifier sees in an image")
    add_model_args(p)
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=5, help="how many classes (default: 5)")
    p.set_defaults(run=_cmd_predict)

    p = subparsers.add_parser("maps", help="a layer's feature maps for an image, as a grid")
    add_model_args(p)
    p.add_argument("layer", help="a layer with spatial maps (convolution, pooling, activation) or a transformer's "
                                 "token layer (its patch grid), by name or path")
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    add_extra_tokens_arg(p)
    p.add_argument("--filters", default=None, help="e.g. 0-63, 0,3,5-7 or all (default: all)")
    p.add_argument("--cols", type=int, default=16, help="maps per row (default: 16)")
    p.add_argument("--image-size", type=int, default=None, help="resize the image to this square size first")
    p.add_argument("--out", default="maps.png", help="output figure (default: maps.png)")
    p.set_defaults(run=_cmd_maps)

    p = subparsers.add_parser("heatmap", help="where one filter fires on an image")
    add_model_args(p)
    p.add_argument("layer", help="a layer with spatial maps (convolution, pooling, activation) or a transformer's "
                                 "token layer (its patch grid), by name or path")
    p.add_argument("filter", type=int, help="the filter (channel) index of LAYER, from 0")
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    add_extra_tokens_arg(p)
    p.add_argument("--image-size", type=int, default=None, help="resize the image to this square size first")
    p.add_argument("--out", default="heatmap.png", help="output figure (default: heatmap.png)")
    p.set_defaults(run=_cmd_heatmap)
