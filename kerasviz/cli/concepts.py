"""`kerasviz concepts`: the concepts of a layer over a folder of images, written as pictures, a table and JSON."""

from __future__ import annotations

import json
import os

COMPOSITION_CHANNELS = 5  # channels listed per concept in the composition table

PATCH_SIDE = 96  # the side the patches of the patch strip are resized to


def _write_outputs(result, out: str) -> dict:
    """Write each concept's picture, patches and heatmaps, `composition.md` and `concepts.json` into `out`."""
    from kerasviz import images

    os.makedirs(out, exist_ok=True)
    rows, entries = [], []
    for i in range(len(result)):
        files = {"picture": f"concept_{i}.png", "patches": f"concept_{i}_patches.png",
                 "heatmaps": f"concept_{i}_heatmaps.png"}
        images.save_image(result.pictures[i], os.path.join(out, files["picture"]))
        if result.crops[i]:
            tiles = [images.resize(c.astype("float32") / 255.0, (PATCH_SIDE, PATCH_SIDE)) for c in result.crops[i]]
            for tiled, name in ((tiles, "patches"), (list(result.overlays(i)), "heatmaps")):
                images.save_image(images.stitch(tiled, cols=len(tiled), margin=2), os.path.join(out, files[name]))
        composition = result.composition(i, COMPOSITION_CHANNELS)
        importance = None if result.importance is None else float(result.importance[i])
        patches = [dict(image_index=p.image_index, source=result.source.source_name(p.image_index), box=list(p.box),
                        score=p.score) for p in result.patches[i]]
        entries.append(dict(index=i, importance=importance, files=files,
                            composition=[dict(channel=c, weight=w) for c, w in composition], patches=patches))
        channels = ", ".join(f"{c} ({w:+.2f})" for c, w in composition)
        sources = ", ".join(p["source"] for p in patches[:3])
        score = "" if importance is None else f"{importance:+.3g}"
        rows.append(f"| {i} | ![]({files['picture']}) | {score} | {channels} | {sources} |")
    table = ["| concept | picture | importance | channels (weight in the unit direction) | top images |",
             "| --- | --- | --- | --- | --- |", *rows]
    with open(os.path.join(out, "composition.md"), "w", encoding="utf-8") as f:
        f.write(f"# Concepts of {result.layer} ({result.method})\n\n" + "\n".join(table) + "\n")
    data = dict(layer=result.layer, method=result.method, class_index=result.class_index,
                settings=result.settings, images=result.samples.count, seconds=result.seconds, concepts=entries)
    with open(os.path.join(out, "concepts.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    return data


def _cmd_concepts(args) -> None:
    from kerasviz import examples
    from kerasviz.cli import common

    examples.data_source(args.images, "IMAGES")  # a missing or empty folder fails before the model is loaded
    common.check_writable(os.path.join(args.out, "concepts.json"))
    for name in ("n", "top_k", "budget"):
        if getattr(args, name) < 1:
            raise common.UsageError(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}.")
    net = common.load_network(args)
    from kerasviz.concepts import factor

    try:
        result = factor.concepts(net, args.layer, args.images, args.n, class_index=args.class_index,
                                 importance=args.importance, method=args.method, budget=args.budget,
                                 top_k=args.top_k, image_size=args.image_size,
                                 progress=not args.quiet, **common.run_options(args))
    except ImportError as e:  # scikit-learn missing: the one line naming the extra
        raise common.UsageError(str(e)) from e
    _write_outputs(result, args.out)
    print(f"{args.out}: {len(result)} concepts of {result.layer} ({result.method}) from {result.samples.count} images "
          f"({len(result.samples)} vectors) in {result.seconds:.1f} s")


def register(subparsers) -> None:
    """Add the `concepts` subcommand."""
    from kerasviz.cli import common

    p = subparsers.add_parser("concepts", help="what a layer knows: NMF concepts of its activations over a folder of "
                                               "images, each with its picture, top patches, heatmaps and importance")
    common.add_model_args(p)
    p.add_argument("layer", help=common.LAYER_HELP)
    p.add_argument("images", help="a folder of images (searched recursively; streamed, any number)")
    p.add_argument("--n", type=int, default=8, help="number of concepts (default: 8)")
    p.add_argument("--out", default="concepts", help="output folder (default: concepts)")
    p.add_argument("--class-index", type=int, default=None,
                   help="score each concept's importance for this class (a classifier's output index)")
    p.add_argument("--importance", default="ablation", choices=("ablation", "gradient"),
                   help="ablation: the logit's drop without the concept (default); gradient: gradient x input")
    p.add_argument("--method", default="auto", choices=("auto", "nmf", "nmf-split"),
                   help="auto: NMF for a non-negative layer, NMF on [x+, x-] for a signed one (default: auto)")
    p.add_argument("--budget", type=int, default=20_000, help="activation vectors sampled (default: 20000)")
    p.add_argument("--top-k", type=int, default=6, help="top images per concept (default: 6)")
    p.add_argument("--image-size", type=int, default=None,
                   help="images are resized to this (default: the model's input size, else 224)")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: 32)")
    p.add_argument("--cache-dir", default=None, help="cache the sampled activations in this folder or fsspec URL")
    p.add_argument("--preset", default=None, help="preset of the concepts' pictures: quality (default), fast, ...")
    common.add_precision_arg(p)
    p.add_argument("--size", type=int, default=None, help="size of the concepts' pictures (default: the preset's)")
    p.add_argument("--steps", type=int, default=None, help="optimization steps of the pictures (default: the preset's)")
    common.add_seed_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_cmd_concepts)
