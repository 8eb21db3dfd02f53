"""The `kerasviz` command: one parser, a subcommand group per module of this package.

Every user error ends with a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from kerasviz.cli import analysis, circuits, core, examples, gallery
from kerasviz.cli.common import EXIT_USAGE

COMMAND_GROUPS = (core, analysis, circuits, gallery, examples)


def build_parser() -> argparse.ArgumentParser:
    """The `kerasviz` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="kerasviz", description="See what convolutional networks learned.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `kerasviz` command with `argv` (default: `sys.argv[1:]`); returns the exit code."""
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
