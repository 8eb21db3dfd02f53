"""Deprecated: the `kerasviz.caricature` module is now `kerasviz.inversion`; `kv.caricature` is the function."""

import sys
import types
import warnings

from kerasviz import inversion as _module

warnings.warn("the module kerasviz.caricature is now kerasviz.inversion (kv.caricature is the function).",
              DeprecationWarning, stacklevel=2)


class _CallableModule(types.ModuleType):
    """Importing this module makes `kerasviz.caricature` a module; calling it still runs the function."""

    def __call__(self, *args, **kwargs):
        return _module.caricature(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(_module, name)


sys.modules[__name__].__class__ = _CallableModule
