"""`python -m kerasviz.cli`: the `kerasviz` command."""

import sys

from kerasviz.cli.main import main

sys.exit(main())
