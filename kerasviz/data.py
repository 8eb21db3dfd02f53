"""Deprecated: `kerasviz.data` is now `kerasviz.examples`."""

import sys
import warnings

from kerasviz import examples as _module

warnings.warn("kerasviz.data is now kerasviz.examples.", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
