"""Deprecated: `kerasviz.models` is now `kerasviz.nets`."""

import sys
import warnings

from kerasviz import nets as _module

warnings.warn("kerasviz.models is now kerasviz.nets.", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
