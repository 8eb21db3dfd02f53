"""`kerasviz.progress` is `kerasviz.engine.progress`: the short name stays importable."""

import sys

from kerasviz.engine import progress as _module

sys.modules[__name__] = _module
