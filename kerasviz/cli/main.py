"""The `kerasviz` command: one parser, a subcommand group per module of this package.

Every user error ends with a one-line message and exit code 2. `--help`, `models` and `presets` start no
framework; the other commands start it quietly (`--verbose` shows its start-up lines).
"""

from __future__ import annotations

import argparse
import sys

from kerasviz import __version__
from kerasviz.cli import activation_atlas, analysis, circuits, concepts, core, examples, gallery
from kerasviz.cli.common import EXIT_USAGE

COMMAND_GROUPS = (core, analysis, circuits, gallery, examples, concepts, activation_atlas)


def build_parser() -> argparse.ArgumentParser:
    """The `kerasviz` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="kerasviz", description="See what convolutional networks learned.")
    parser.add_argument("--version", action="version", version=f"kerasviz {__version__}",
                        help="print the version of kerasviz and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="show the framework's start-up lines (TensorFlow's C++ log) as well")
    return parser


def start_framework(verbose: bool = False) -> None:
    """Import Keras (and so its backend) for a command: quietly unless `verbose` (see `kerasviz.framework`).
    The command's own run then prints the framework's real warnings and errors as usual."""
    from kerasviz import framework

    framework.start(loud=verbose)


def main(argv: list[str] | None = None) -> int:
    """Run the `kerasviz` command with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "framework", True):
            start_framework(args.verbose)
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
