"""`kerasviz.presets` is `kerasviz.engine.presets`: the short name stays importable."""

import sys

from kerasviz.engine import presets as _module

sys.modules[__name__] = _module
