"""`kerasviz.distribute` is `kerasviz.engine.distribute`: the short name stays importable."""

import sys

from kerasviz.engine import distribute as _module

sys.modules[__name__] = _module
