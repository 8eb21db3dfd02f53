"""`kerasviz.updates` is `kerasviz.engine.updates`: the short name stays importable."""

import sys

from kerasviz.engine import updates as _module

sys.modules[__name__] = _module
