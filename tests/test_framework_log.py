"""The Python API is quiet like the command line: no TensorFlow C++ log unless asked; the user's warnings stay."""

import os
import subprocess
import sys

SCRIPT = """
import warnings
import kerasviz as kv
import keras  # the user's own import, after kerasviz's: the start-up lines are TensorFlow's, its later log hidden
inputs = keras.Input((None, None, 3))
model = keras.Model(inputs, keras.layers.Conv2D(4, 3, activation="relu", name="c")(inputs))
kv.visualize_filters(model, "c", range(2), preset="fast", size=24, steps=3, progress=False, precision="bfloat16")
warnings.warn("the user's own warning")
"""
CPP_LOG = ("W0000 ", "E0000 ", "remapper failed")  # warnings and errors of the C++ log


def _run(**env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASVIZ_VERBOSE")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_the_api_hides_the_framework_log_and_keeps_user_warnings():
    err = _run()
    assert not [line for line in err.splitlines() if line.startswith(CPP_LOG) or "remapper" in line], err
    assert "the user's own warning" in err


def test_kerasviz_verbose_shows_the_framework_log():
    err = _run(KERASVIZ_VERBOSE="1")
    assert any(line.startswith(CPP_LOG) for line in err.splitlines()), err  # e.g. the CUDA probe, the remapper
