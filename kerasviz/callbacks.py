"""Deprecated: `kerasviz.callbacks` is now `kerasviz.training`."""

import sys
import warnings

from kerasviz import training as _module

warnings.warn("kerasviz.callbacks is now kerasviz.training.", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module
