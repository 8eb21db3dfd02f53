"""The `kerasviz` command.

Core subcommands live here; feature modules add theirs through a `register(subparsers)` function in
the modules named in `COMMAND_MODULES`. Every user error ends with a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ("kerasviz.cli_analysis", "kerasviz.cli_circuits", "kerasviz.cli_gallery",
                   "kerasviz.cli_data")
EXIT_USAGE = 2


class UsageError(ValueError):
    """A command-line argument that cannot be used."""


def parse_filters(text: str) -> list[int] | str:
    """`"0-63"`, `"0,3,5-7"` or `"all"` -> filter indices (or `"all"`)."""
    text = text.strip()
    if text == "all":
        return "all"
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                if int(hi) < int(lo):
                    raise UsageError(f"--filters range {part!r} runs backwards.")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"--filters must look like '0-63', '0,3,5-7' or 'all'. Received: {text!r}.") from e
    return out


def parse_weights(text: str | None):
    if text is None or text.lower() == "none":
        return None
    return text


def add_model_args(p: argparse.ArgumentParser, *, weights_default: str | None = "imagenet") -> None:
    p.add_argument("model", help="keras.applications name (e.g. VGG16) or a .keras file")
    p.add_argument("--weights", default=weights_default,
                   help="imagenet, none, hed (VGG16, offline) or a weights file path "
                        f"(default: {weights_default})")


def load_network(args):
    from kerasviz import models

    return models.as_network(args.model, weights=parse_weights(args.weights))


def check_writable(path: str) -> None:
    """Fail early, before any work, when `path` cannot be written (root ignores permission bits, so
    the folder is probed with a real temporary file)."""
    import tempfile

    parent = os.path.dirname(os.path.abspath(path)) or "."
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UsageError(f"Cannot write {path!r}: {probe!r} is a file, not a folder.")
    try:
        with tempfile.NamedTemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise UsageError(f"Cannot write {path!r}: {probe!r} is not writable ({e.strerror}).") from e


def _cmd_atlas(args) -> None:
    import kerasviz as kv

    check_writable(args.out)
    net = load_network(args)
    result = kv.visualize_filters(
        net, args.layer, parse_filters(args.filters), preset=args.preset, size=args.size,
        steps=args.steps, seed=args.seed, batch_size=args.batch_size,
    )
    atlas = kv.stitch(result.images, margin=args.margin, cols=args.cols,
                      labels=result.filters if args.labels else None)
    kv.save_image(atlas, args.out)
    print(f"{args.out}: {len(result.filters)} filters of {result.layer} in {result.seconds:.1f} s "
          f"({result.seconds / max(len(result.filters), 1):.2f} s per filter), "
          f"mean activation {result.activations.mean():.3g}")


def _cmd_layers(args) -> None:
    from kerasviz import models

    net = load_network(args)
    rows = models.list_layers(net.model)
    width = max(len(r.path) for r in rows)
    print(f"{'layer':<{width}}  {'type':<24} {'output shape':<24} channels")
    for r in rows:
        shape = str(r.output_shape) if r.output_shape is not None else "-"
        print(f"{r.path:<{width}}  {r.type:<24} {shape:<24} {r.channels if r.channels else '-'}")


def _cmd_models(args) -> None:
    from kerasviz import models

    for name in models.list_models(args.pattern):
        print(name)


def _cmd_presets(args) -> None:
    from kerasviz import presets

    for name, p in presets.PRESETS.items():
        default = " (default)" if name == presets.DEFAULT_PRESET else ""
        steps = presets.octave_steps(p)
        shown = f"{steps[0]} steps" if len(set(steps)) == 1 else "+".join(map(str, steps)) + " steps"
        print(f"{name}{default}: {p.size} px, {shown} x {p.octaves} octave(s), "
              f"{p.param.name}, {p.update} lr {p.lr:g}, {len(p.transforms)} transforms")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kerasviz", description="See what convolutional networks learned.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("atlas", help="visualize filters of a layer and save them as a mosaic")
    add_model_args(p)
    p.add_argument("layer")
    p.add_argument("--filters", default="0-63", help="e.g. 0-63, 0,3,5-7 or all (default: 0-63)")
    p.add_argument("--out", default="atlas.png", help="output image (default: atlas.png)")
    p.add_argument("--preset", default=None, help="quality (default), fast, lucid, keras-io, blog2016")
    p.add_argument("--size", type=int, default=None, help="image size in pixels")
    p.add_argument("--steps", type=int, default=None, help="optimization steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--margin", type=int, default=5)
    p.add_argument("--cols", type=int, default=None)
    p.add_argument("--labels", action="store_true", help="write each filter's index on its tile")
    p.set_defaults(run=_cmd_atlas)

    p = sub.add_parser("layers", help="list a model's layers: name, type, output shape, channels")
    add_model_args(p, weights_default=None)
    p.set_defaults(run=_cmd_layers)

    p = sub.add_parser("models", help="list the keras.applications models kerasviz knows")
    p.add_argument("pattern", nargs="?", default=None, help="e.g. 'resnet*'")
    p.set_defaults(run=_cmd_models)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(run=_cmd_presets)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"kerasviz: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kerasviz: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
