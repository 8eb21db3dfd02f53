"""`kerasviz atlas`, `layers`, `models` and `presets`: the main job and the listings."""

from __future__ import annotations

import os
import sys
import warnings

from kerasviz.cli.common import (
    LAYER_HELP,
    add_model_args,
    add_param_arg,
    add_precision_arg,
    add_ray_args,
    add_seed_arg,
    check_writable,
    load_network,
    parse_filters,
    ray_cluster,
    run_options,
)


def _cmd_atlas(args) -> None:
    import kerasviz as kv

    check_writable(args.out)
    cluster = ray_cluster(args)
    net = load_network(args)
    # a cached layer atlas (here, or on Ray with the workers writing into the shared cache): the same command
    # run again after Ctrl-C resumes where it stopped
    filters = parse_filters(args.filters)
    with warnings.catch_warnings(record=True) as caught:
        result = kv.atlas.layer_atlas(net, args.layer, filters, distribute=cluster, **run_options(args))
    _say(caught)
    done = len(result.filters)
    if done:
        atlas = kv.stitch(result.images, margin=args.margin, cols=args.cols,
                          labels=result.filters if args.labels else None)
        kv.save_image(atlas, args.out)
        cached = f", {len(result.cached)} from the cache" if result.cached else ""
        print(f"{args.out}: {done} filters of {result.layer} in {result.seconds:.1f} s "
              f"({result.seconds / max(len(result.computed), 1):.2f} s per filter computed{cached}), "
              f"mean score {result.scores.mean():.3g}")
    if result.interrupted:
        asked = len(set(kv.nets.resolve_filters(filters, result.channels, result.layer)))  # None: the default
        print(f"kerasviz: Interrupted: {done} of {asked} filters finished"
              + (f", written to {args.out}" if done else "") + "; run the same command again to resume from "
              f"the cache ({result.cache_path})", file=sys.stderr)
        raise KeyboardInterrupt


def _say(caught) -> None:
    """kerasviz's own warnings as one line each (`kerasviz: warning: ...`), an interruption left to the command's
    own line; any other warning as Python shows it."""
    import kerasviz

    home = os.path.dirname(kerasviz.__file__)
    for w in caught:
        text = str(w.message)
        if not w.filename.startswith(home):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        elif not text.startswith("Interrupted: "):
            print(f"kerasviz: warning: {text}", file=sys.stderr)


def _cmd_layers(args) -> None:
    from kerasviz import nets

    net = load_network(args)
    rows = nets.list_layers(net.model, attention=args.attention)
    marked = set(nets.visual_layers(net.model))
    width = max(len(r.path) for r in rows)
    print(f"  {'layer':<{width}}  {'type':<24} {'output shape':<24} channels")
    for r in rows:
        shape = str(r.output_shape) if r.output_shape is not None else "-"
        mark = "*" if r.path in marked else " "
        print(f"{mark} {r.path:<{width}}  {r.type:<24} {shape:<24} {r.channels if r.channels else '-'}")
    print("(*) the layers worth a picture by default (a transformer: each block's MLP hidden layer and output; "
          "a convnet: its convolutions)")


def _cmd_models(args) -> None:
    from kerasviz import catalog  # the tables alone: no framework starts, unless --hub asks keras_hub

    if args.hub:
        from kerasviz import framework

        framework.start(loud=args.verbose)
    for name in catalog.list_models(args.pattern, hub=args.hub):
        print(name)


def _cmd_presets(args) -> None:
    from kerasviz.engine import presets

    for name, p in presets.PRESETS.items():
        default = " (default)" if name == presets.DEFAULT_PRESET else ""
        steps = presets.octave_steps(p)
        shown = f"{steps[0]} steps" if len(set(steps)) == 1 else "+".join(map(str, steps)) + " steps"
        print(f"{name}{default}: {p.size} px, {shown} x {p.octaves} octave(s), "
              f"{p.param.name}, {p.update} lr {p.lr:g}, {len(p.transforms)} transforms")


def register(sub) -> None:
    """Add the `atlas`, `layers`, `models` and `presets` subcommands."""

    p = sub.add_parser("atlas", help="visualize filters of a layer and save them as a mosaic")
    add_model_args(p)
    p.add_argument("layer", help=LAYER_HELP)
    p.add_argument("--filters", default=None,
                   help="e.g. 0-63, 0,3,5-7 or all; a single number is that one filter (default: the first 64, "
                        "or every channel of a smaller layer)")
    p.add_argument("--out", default="atlas.png", help="output image (default: atlas.png)")
    p.add_argument("--preset", default=None, help="quality (default), fast, lucid, keras-io, blog2016, maco")
    add_param_arg(p)
    p.add_argument("--size", type=int, default=None, help="image size in pixels")
    p.add_argument("--steps", type=int, default=None, help="optimization steps")
    add_precision_arg(p)
    add_seed_arg(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="filters per compiled batch (default: as many as fit the memory budget)")
    p.add_argument("--margin", type=int, default=5, help="white pixels between tiles of the mosaic (default: 5)")
    p.add_argument("--cols", type=int, default=None, help="tiles per row of the mosaic (default: a square-ish grid)")
    p.add_argument("--labels", action="store_true", help="write each filter's index on its tile")
    add_ray_args(p)
    p.add_argument("--cache-dir", default=None,
                   help="the cache of finished filters, from which the same command resumes; with --ray, storage "
                        "every worker reaches (default: $KERASVIZ_CACHE or ~/.cache/kerasviz/atlas)")
    p.set_defaults(run=_cmd_atlas)

    p = sub.add_parser("layers", help="list a model's layers: name, type, output shape, channels; * marks the "
                                      "layers worth a picture")
    add_model_args(p, weights_default=None)
    p.add_argument("--attention", action="store_true",
                   help="also list the internals of attention layers (query, key, value projections, softmax)")
    p.set_defaults(run=_cmd_layers)

    p = sub.add_parser("models", help="list the keras.applications models kerasviz knows (and KerasHub presets)")
    p.add_argument("pattern", nargs="?", default=None, help="e.g. 'resnet*'")
    p.add_argument("--hub", action="store_true",
                   help="also list KerasHub's image-model presets: CNNs, ViT, DINOv2 (needs keras_hub: pip install "
                        "\"kerasviz[hub]\"); any of them, or a kaggle:// or hf:// handle, is a model name")
    p.set_defaults(run=_cmd_models, framework=False)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(run=_cmd_presets, framework=False)
