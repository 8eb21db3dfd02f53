"""`kerasviz.params` is `kerasviz.engine.params`: the short name stays importable."""

import sys

from kerasviz.engine import params as _module

sys.modules[__name__] = _module
