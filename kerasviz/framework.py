"""Starting the framework quietly: Keras (and TensorFlow's C++ runtime) imported with its start-up log hidden.

TensorFlow's C++ runtime prints start-up lines (oneDNN, CUDA probes) to file descriptor 2 before any Python or
environment setting applies, and grappler logs errors such as "remapper failed" about kerasviz's own compiled
functions. Both the command line and the Python API start the framework through `start`: quietly, unless
`KERASVIZ_VERBOSE` is set, the user chose a level with `TF_CPP_MIN_LOG_LEVEL`, or asked for it. Python warnings
(the user's and the framework's) are never touched.
"""

from __future__ import annotations

import contextlib
import os
import sys

VERBOSE_ENV = "KERASVIZ_VERBOSE"


def verbose() -> bool:
    """Whether the user asked for the framework's log: `KERASVIZ_VERBOSE` set to anything but "", "0"."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_stderr():
    """Send what is written to file descriptor 2 to /dev/null meanwhile (the C++ start-up lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_log_level() -> None:
    """Hide TensorFlow's C++ log (TF_CPP_MIN_LOG_LEVEL=3) where the user set no level, asked for no verbose
    output, and TensorFlow is not imported yet (it reads the level once, when it starts)."""
    if not verbose() and "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def start(loud: bool = False) -> None:
    """Import Keras (and so its backend), quietly unless `loud` or `verbose()`.

    Quiet means TF_CPP_MIN_LOG_LEVEL=3 where the user set no level, and the import's own C++ lines dropped.
    Nothing is changed when Keras is already imported.

    Args:
        loud: show the framework's start-up lines and C++ log. Defaults to False.

    Example:
    >>> kv.framework.start()
    """
    if "keras" in sys.modules:
        return
    if loud or verbose():
        import keras  # noqa: F401
        return
    quiet_log_level()
    with quiet_stderr():
        import keras  # noqa: F401
