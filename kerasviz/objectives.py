"""`kerasviz.objectives` is `kerasviz.engine.objectives`: the short name stays importable."""

import sys

from kerasviz.engine import objectives as _module

sys.modules[__name__] = _module
