"""`kerasviz.transforms` is `kerasviz.engine.transforms`: the short name stays importable."""

import sys

from kerasviz.engine import transforms as _module

sys.modules[__name__] = _module
