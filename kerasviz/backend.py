"""`kerasviz.backend` is `kerasviz.engine.backend`: the short name stays importable."""

import sys

from kerasviz.engine import backend as _module

sys.modules[__name__] = _module
