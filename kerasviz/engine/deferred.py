"""Modules imported when first used: `keras.ops` for the engine's pieces, the frameworks for the backends.

The presets and their pieces (parameterizations, transforms, update rules) are plain objects until a step
runs: with `ops` from here, `kerasviz presets` lists them without starting TensorFlow, JAX or PyTorch. The
backend modules (`kerasviz.engine.backends`) name their framework the same way, so importing all three (as
the docs build and the docstring tests do) starts none. Each name is looked up in the module once, then read
like any module attribute.
"""

import importlib
import types


class _Deferred(types.ModuleType):
    def __getattr__(self, name: str):
        value = getattr(importlib.import_module(self.__name__), name)
        setattr(self, name, value)  # found here next time, without this lookup
        return value

    def __reduce__(self):  # pickled by name (closures that use it travel to Ray workers)
        return _Deferred, (self.__name__,)


def module(name: str) -> types.ModuleType:
    """The module `name`, imported when one of its attributes is first read.

    Example:
    >>> from kerasviz.engine import deferred
    >>> deferred.module("keras.ops").sum.__name__
    'sum'
    """
    return _Deferred(name)


ops = module("keras.ops")
