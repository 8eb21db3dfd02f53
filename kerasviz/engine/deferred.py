"""`keras.ops`, imported when first used.

The presets and their pieces (parameterizations, transforms, update rules) are plain objects until a step
runs: with `ops` from here, `kerasviz presets` lists them without starting TensorFlow, JAX or PyTorch.
Each name is looked up in `keras.ops` once, then read like any module attribute.
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


ops = _Deferred("keras.ops")
