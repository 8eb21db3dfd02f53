"""The engine: parameterizations, transforms, objectives, update rules, presets, and the compiled renderer.

Everything here is written with `keras.ops` and `keras.random` and runs inside the compiled step on any
Keras backend, except `backend.py` (the one backend-specific module) and the placement code in
`distribute.py`. The engine imports the nets wing (feature extractors) and never an app module.
"""

from kerasviz.engine import backend, distribute, objectives, params, presets, progress, render, transforms, updates

__all__ = ["backend", "distribute", "objectives", "params", "presets", "progress", "render", "transforms", "updates"]
