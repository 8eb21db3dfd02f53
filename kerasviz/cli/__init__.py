"""The `kerasviz` command line: `main` and the helpers its command groups share."""

from kerasviz.cli.common import (
    EXIT_USAGE,
    UsageError,
    add_model_args,
    check_writable,
    load_network,
    parse_filters,
    parse_weights,
)
from kerasviz.cli.main import build_parser, main

__all__ = ["EXIT_USAGE", "UsageError", "add_model_args", "build_parser", "check_writable", "load_network", "main",
           "parse_filters", "parse_weights"]
