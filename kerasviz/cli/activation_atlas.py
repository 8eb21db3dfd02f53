"""`kerasviz atlas-map`: an activation atlas of a layer over a folder of images (UMAP map, one icon per cell)."""

from __future__ import annotations

import os


def _cmd_atlas_map(args) -> None:
    from kerasviz import examples
    from kerasviz.cli import common
    from kerasviz.concepts.activation_atlas import activation_atlas

    examples.list_images(args.images)  # a missing or empty folder fails before the model is loaded
    common.check_writable(os.path.join(args.out, "atlas.png"))
    net = common.load_network(args)
    atlas = activation_atlas(net, args.layer, args.images, grid=args.grid, budget=args.budget,
                             class_index=args.class_index, min_count=args.min_count, image_size=args.image_size,
                             progress=not args.quiet, **common.run_options(args))
    png, cells = atlas.save(args.out)
    head = "" if atlas.head is None else ", top class per cell from its Dense head"
    print(f"{png}: {len(atlas.cells)} cells of a {atlas.grid}x{atlas.grid} map of {len(atlas.coords)} vectors of "
          f"{atlas.layer}{head}; {cells}: the cells' counts, classes and members")


def register(subparsers) -> None:
    """Add the `atlas-map` subcommand."""
    from kerasviz.cli import common

    p = subparsers.add_parser("atlas-map", help="an activation atlas: a layer's activation vectors over your images, "
                                                "mapped by UMAP, one feature visualization per grid cell")
    common.add_model_args(p)
    p.add_argument("layer", help=common.LAYER_HELP)
    p.add_argument("images", help="a folder of images (searched recursively)")
    p.add_argument("--grid", type=int, default=20, help="cells per side of the map (default: 20)")
    p.add_argument("--budget", type=int, default=100_000, help="the most activation vectors sampled (default: 100000)")
    p.add_argument("--min-count", type=int, default=6, help="cells with fewer vectors are dropped (default: 6)")
    p.add_argument("--class-index", type=int, default=None,
                   help="a class-filtered atlas: keep the vectors with the highest attribution to this class "
                        "(the model must end in a pooled Dense head)")
    p.add_argument("--out", default="atlas-map", help="output folder: atlas.png and cells.json (default: atlas-map)")
    p.add_argument("--image-size", type=int, default=None,
                   help="the images are resized to this for sampling (default: the model's input size, else 224)")
    p.add_argument("--preset", default="fast", help="the icons' preset (default: fast)")
    common.add_precision_arg(p)
    p.add_argument("--size", type=int, default=None, help="icon size in pixels (default: the preset's)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps per icon (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=None, help="icons per compiled batch (default: what fits)")
    common.add_seed_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_atlas_map)
