"""`kerasviz gallery`: whole-model atlases (cached, resumable) as a static HTML site."""

from __future__ import annotations

import os


def _cmd_gallery(args) -> None:
    from kerasviz.atlas import gallery
    from kerasviz.cli import common

    out = os.path.join(args.out, "index.html")
    common.check_writable(out)
    network = common.load_network(args)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    options = dict(common.run_options(args), filters=common.parse_filters(args.filters),
                   distribute=common.ray_cluster(args), progress=not args.quiet)
    # the explorer's extra views (computed only when asked for)
    views = [v.strip() for v in (args.views or "").split(",") if v.strip()]
    views += [name for name, flag in (("accentuated", args.accentuated), ("concepts", args.concepts),
                                      ("atlas-map", args.atlas_map)) if flag]
    options.update(views=views, examples=args.examples, image=args.image, class_index=args.class_index)
    index, result = gallery.make_gallery(network, args.out, layers, top_k=args.top_k, **options)
    print(result.summary())
    print(f"{index}: {len(result.layers)} layer(s)")
    if result.interrupted:
        raise KeyboardInterrupt("interrupted: run the same command again to resume")


def register(subparsers) -> None:
    """Add the `gallery` subcommand."""
    from kerasviz.cli import common

    p = subparsers.add_parser(
        "gallery", help="visualize whole layers (cached, resumable) and write a browsable HTML gallery",
        description="Visualize every filter of a model's convolution or transformer layers (or those named) "
                    "and write a static HTML site: an index of layers, a page per layer, a page per filter. Finished "
                    "filters are cached: an interrupted run resumes where it stopped.",
    )
    common.add_model_args(p)
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: the layers worth a picture, "
                                                      "as `kerasviz layers` marks them: every conv layer; a ViT's "
                                                      "MLP hidden layers and block outputs)")
    p.add_argument("--out", default="site", help="output folder (default: site)")
    p.add_argument("--filters", default="all", help="per layer: all, 0-15 or 0,3,5-7 (default: all)")
    p.add_argument("--preset", default=None, help="quality (default), fast, lucid, maco, keras-io, blog2016")
    common.add_param_arg(p)
    p.add_argument("--size", type=int, default=None, help="image size in pixels")
    p.add_argument("--steps", type=int, default=None, help="optimization steps")
    common.add_precision_arg(p)
    common.add_seed_arg(p)
    p.add_argument("--batch-size", type=int, default=None, help="filters per batch (default: from memory)")
    p.add_argument("--cache-dir", default=None, help="cache folder or fsspec URL (s3://..., gs://...; default: "
                                                     "$KERASVIZ_CACHE or ~/.cache/kerasviz/atlas)")
    p.add_argument("--top-k", type=int, default=6, help="incoming and outgoing units listed per unit (default: 6)")
    # the explorer's extra views, each computed only when asked for (docs/explorer.md says what each costs)
    p.add_argument("--views", default=None, help="extra pictures per unit, comma-separated: negative (the picture "
                                                 "that drives it lowest: one more run per unit), diverse (4 "
                                                 "different pictures: 4 images per unit), alpha (its MACO picture "
                                                 "over its transparency map, unless the atlas has maps: "
                                                 "--preset maco); also accentuated, concepts, atlas-map (the flags "
                                                 "below) (default: none)")
    p.add_argument("--examples", default=None, metavar="DIR",
                   help="a folder of images: each unit's top 9, cropped to its receptive field (one pass over "
                        "the folder per layer, streamed, cached)")
    p.add_argument("--accentuated", action="store_true",
                   help="each unit's top 3 examples (--examples) accentuated for it: changed as little as needed "
                        "for the unit to fire much more (one accentuation per example)")
    p.add_argument("--concepts", action="store_true",
                   help="a concepts page per layer: the layer's activations over --examples factorized into "
                        "concepts, each with its picture, patches, composition and importance")
    p.add_argument("--atlas-map", action="store_true",
                   help="an activation-atlas page per layer: its activations over --examples mapped to 2-D "
                        "(UMAP), each grid cell's mean rendered; the cells link to their own pages")
    p.add_argument("--class-index", type=int, default=None, metavar="N",
                   help="with --concepts: the class (an output index) whose importance ranks the concepts")
    p.add_argument("--image", default=None, metavar="PATH",
                   help="an image: each unit's activation over it as a heatmap (one forward pass per layer)")
    common.add_ray_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_gallery)
