"""A notebook session stays quiet: no framework retracing warning from kerasviz's own compiled functions.

TensorFlow warns "5 out of the last 5 calls to <function ...> triggered tf.function retracing" when the
`tf.function`s of one Python function (one code object) trace often. Each renderer compiles its own step,
loop and scoring functions, so visualizing a few layers in one process used to trip it, although each of
them traces once. The user's own retracing functions must still warn.
"""

import logging

import keras
import numpy as np
import pytest
from conftest import make_grating_model, make_tiny_cnn

import kerasviz as kv

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the retracing warning is TensorFlow's")
RETRACING = "triggered tf.function retracing"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def tensorflow_log():
    """The messages of the `tensorflow` logger (where `tf.function` warns) while the test runs."""
    logger = logging.getLogger("tensorflow")
    handler = Collect()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_several_models_and_layers_in_one_session_do_not_warn(tensorflow_log):
    models = {make_tiny_cnn(0): ["conv1", "conv2", "relu2"], make_tiny_cnn(1): ["conv1", "conv2"],
              make_grating_model(): ["gabor"]}
    for model, layers in models.items():  # 6 renderers: 6 steps, loops and scorers, each traced once
        for layer in layers:
            kv.visualize_filters(model, layer, [0, 1], preset="fast", size=24, steps=2, progress=False)
    kv.visualize_filters(make_tiny_cnn(0), "conv2", [0, 1], preset="fast", size=24, steps=2, progress=False)
    assert [m for m in tensorflow_log if RETRACING in m] == []


def test_a_users_own_retracing_function_still_warns(tensorflow_log):
    import tensorflow as tf

    kv.visualize_filters(make_tiny_cnn(0), "conv1", [0], preset="fast", size=24, steps=2, progress=False)

    @tf.function
    def users_function(x):
        return x * 2.0

    for n in range(1, 8):  # a new shape each call: a retrace each call
        users_function(tf.constant(np.ones(n, "float32")))
    warned = [m for m in tensorflow_log if RETRACING in m]
    assert warned and all("users_function" in m for m in warned)
    assert logging.getLogger("tensorflow").isEnabledFor(logging.WARNING)
