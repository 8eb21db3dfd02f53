"""`kerasviz.gallery` is `kerasviz.atlas.gallery`: the short name stays importable."""

import sys

from kerasviz.atlas import gallery as _module

sys.modules[__name__] = _module
