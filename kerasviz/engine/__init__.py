"""The engine: parameterizations, transforms, objectives, update rules, presets, and the compiled renderer.

Everything here is written with `keras.ops` and `keras.random` and runs inside the compiled step on any
Keras backend, except the backend-specific code (`backends/`: one object per framework, chosen once by
`backend.py`, through which the rest of the engine reaches it) and the placement code in `distribute.py`.
The engine imports the nets wing (feature extractors) and never an app module.
"""

import importlib

__all__ = ["backend", "backends", "distribute", "objectives", "params", "presets", "progress", "render",
           "result", "transforms", "updates"]


def __getattr__(name: str):
    if name in __all__:  # `kv.engine.render`: each module imported on first use, so listing presets stays light
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
