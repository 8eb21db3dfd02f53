"""The optimizer on every Keras backend: TensorFlow, JAX and PyTorch.

Tests marked `engine` run in-process on whatever backend pytest was started with
(`KERAS_BACKEND=jax python -m pytest -m engine`). The cross-backend test runs the other two backends in
subprocesses (the backend is fixed when keras is imported) and compares their pictures with this one's.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import ANGLES

import kerasviz as kv
from kerasviz.engine import backend, updates
from kerasviz.engine.backends import Backend, capability, cpu_has_fast_bfloat16

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
OTHER_FRAMEWORKS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
# Same seed, same pictures: raw model-input images after 10 steps of the keras-io preset agree to this
# absolute tolerance between backends (their convolutions sum in different orders; the values are of
# order 1; the largest difference measured was 1.4e-6).
CROSS_BACKEND_ATOL = 1e-4
HED_FEATURES_RTOL = 1e-4


def numpy_weighted_cnn() -> keras.Model:
    """A small CNN whose weights come from NumPy, so that it is the same on every backend (Keras's own
    initializers draw from each backend's random generator, and on JAX compile a kernel per shape)."""
    conv = dict(padding="same", activation="relu", kernel_initializer="zeros")
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, name="conv1", **conv)(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(12, 3, name="conv2", **conv)(x)
    model = keras.Model(inputs, x, name="numpy_cnn")
    rng = np.random.default_rng(0)
    model.set_weights([(rng.normal(size=w.shape) * 0.3).astype("float32") for w in model.get_weights()])
    return model


def backend_run(out_dir: str) -> dict:
    """What each backend computes for the comparison: the keras-io preset on `numpy_weighted_cnn`, and
    the `weights="hed"` VGG16's block3_conv3 features of a fixed image. Saves `.npy` files in `out_dir`
    and returns facts about the process."""
    name = keras.backend.backend()
    result = kv.visualize_filters(numpy_weighted_cnn(), "conv2", [0, 3, 7], preset="keras-io", size=48,
                                  steps=10, seed=3, progress=False)
    np.save(os.path.join(out_dir, f"{name}-raw.npy"), result.raw)
    net = kv.get_model("VGG16", weights="hed")
    image = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype("float32")
    features = keras.Model(net.model.inputs, net.model.get_layer("block3_conv3").output)
    np.save(os.path.join(out_dir, f"{name}-hed.npy"),
            keras.ops.convert_to_numpy(features(backend.to_tensor(net.preprocess(image)))))
    return {
        "backend": name,
        "env": os.environ.get("KERAS_BACKEND"),
        "result_backend": result.settings["backend"],
        "imported": sorted(m for m in OTHER_FRAMEWORKS if m in sys.modules),
    }


def launch(name: str, out_dir: str) -> subprocess.Popen:
    env = dict(os.environ, KERAS_BACKEND=name, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, TESTS, os.environ.get("PYTHONPATH")) if p))
    code = f"import json, test_backends as t; print(json.dumps(t.backend_run({out_dir!r})))"
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_every_backend_gives_the_same_pictures_and_loads_hed(tmp_path):
    here = keras.backend.backend()
    others = [b for b in backend.BACKENDS if b != here]
    procs = {b: launch(b, str(tmp_path)) for b in others}  # both run while this one computes
    facts = {here: backend_run(str(tmp_path))}
    for b, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"KERAS_BACKEND={b} failed:\n{err[-3000:]}"
        facts[b] = json.loads(out.strip().splitlines()[-1])
    for b in backend.BACKENDS:
        # the backend is the one asked for: importing kerasviz did not choose one
        assert facts[b]["backend"] == facts[b]["result_backend"] == b
        if b != here:
            assert facts[b]["env"] == b
    for b in ("jax", "torch"):  # the JAX and PyTorch runs never pulled TensorFlow in
        assert "tensorflow" not in facts[b]["imported"], facts[b]
    ref_raw = np.load(tmp_path / f"{here}-raw.npy")
    ref_hed = np.load(tmp_path / f"{here}-hed.npy")
    assert ref_raw.shape == (3, 48, 48, 3) and ref_hed.shape == (1, 8, 8, 256)
    assert np.abs(ref_hed).max() > 0
    for b in others:
        np.testing.assert_allclose(np.load(tmp_path / f"{b}-raw.npy"), ref_raw, atol=CROSS_BACKEND_ATOL,
                                   err_msg=f"{b} vs {here}")
        np.testing.assert_allclose(np.load(tmp_path / f"{b}-hed.npy"), ref_hed, rtol=HED_FEATURES_RTOL,
                                   atol=HED_FEATURES_RTOL * np.abs(ref_hed).max(), err_msg=f"{b} vs {here}")


# ---------------------------------------------------------------- in-process, on the active backend


def quadratic_score(values, u, filters):
    """-||v - c||^2 per image, with c the image's uniform draw of this step: the gradient is known."""
    v = values[0]
    c = keras.ops.reshape(u[:, 0], (-1, 1, 1, 1))
    return -keras.ops.sum(keras.ops.square(v - c), axis=(1, 2, 3))


def step_inputs(batch=2, steps=3):
    rng = np.random.default_rng(0)
    v0 = rng.normal(size=(batch, 4, 4, 1)).astype("float32")
    u_all = rng.uniform(size=(steps, batch, 1)).astype("float32")
    return v0, u_all


@pytest.mark.engine
@pytest.mark.parametrize("rule", ["l2", "adam"])
def test_step_follows_the_update_rule(rule):
    update = updates.get(rule)
    step = backend.compile_step(quadratic_score, update)
    v0, u_all = step_inputs()
    values = [backend.to_tensor(v0)]
    t, lr = 1, 0.5
    out, state, scores = step(values, update.init(values), backend.to_tensor(np.int32(t)),
                              backend.to_tensor(np.float32(lr)), backend.to_tensor(u_all[t]),
                              backend.to_tensor(np.zeros(2, "int32")))
    c = u_all[t, :, 0].reshape(-1, 1, 1, 1)  # the step used the draws it was given
    g = -2.0 * (v0 - c)
    if rule == "l2":
        norm = np.sqrt(np.sum(g**2, axis=(1, 2, 3), keepdims=True))
        expected = v0 + lr * g / norm
    else:  # Adam's first step at t=1: m = 0.1 g, v = 0.001 g^2, bias corrections at step 2
        m, v = 0.1 * g, 0.001 * g**2
        expected = v0 + lr * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
        assert len(state) == 2
    np.testing.assert_allclose(backend.to_numpy(scores), -np.sum((v0 - c) ** 2, axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(out[0]), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.engine
def test_model_weights_are_read_at_each_call_without_retracing():
    layer = keras.layers.Dense(1, use_bias=False)
    model = keras.Sequential([keras.Input((4,)), layer])
    model.set_weights([np.ones((4, 1), "float32")])

    def score(values, u, filters):
        return model(values[0])[:, 0]

    step = backend.compile_step(score, updates.get("l2"), model=model)
    evaluate = backend.compile_scores(score, model=model)
    x = [backend.to_tensor(np.arange(8, dtype="float32").reshape(2, 4))]
    args = (backend.to_tensor(np.int32(0)), backend.to_tensor(np.float32(0.1)),
            backend.to_tensor(np.zeros((2, 1), "float32")), backend.to_tensor(np.zeros(2, "int32")))
    before = backend.traces(step) + backend.traces(evaluate)
    _, _, first = step(x, [], *args)
    np.testing.assert_allclose(backend.to_numpy(first), [6.0, 22.0])
    np.testing.assert_allclose(backend.to_numpy(evaluate(x, None, args[-1])), [6.0, 22.0])
    traced = backend.traces(step) + backend.traces(evaluate) - before
    model.set_weights([np.full((4, 1), 2.0, "float32")])
    _, _, second = step(x, [], *args)
    np.testing.assert_allclose(backend.to_numpy(second), [12.0, 44.0])  # the new weights, not stale ones
    np.testing.assert_allclose(backend.to_numpy(evaluate(x, None, args[-1])), [12.0, 44.0])
    assert backend.traces(step) + backend.traces(evaluate) - before == traced  # and no new trace for them
    assert traced == (0 if backend.name() == "torch" else 2)  # one step + one scoring trace; torch is eager


@pytest.mark.engine
def test_filters_rise_on_this_backend(grating_model):
    result = kv.visualize_filters(grating_model, "gabor", range(len(ANGLES)), preset="fast", size=32, steps=8,
                                  progress=False, seed=1)
    assert result.settings["backend"] == keras.backend.backend()
    assert np.all(result.history[-1] > result.history[0])
    assert result.images.dtype == np.uint8 and np.all(result.images.reshape(4, -1).std(axis=1) > 5)


@pytest.mark.engine
def test_an_unknown_backend_is_named_in_the_error():
    with pytest.raises(NotImplementedError, match=r"tensorflow, jax, torch\. Received: KERAS_BACKEND='numpy'"):
        backend.load("numpy")


@pytest.mark.engine
def test_the_backend_is_chosen_once():
    assert backend.active() is backend.active() is backend.load(backend.name())
    assert backend.active().name == keras.backend.backend()


class OnDevice(Backend):
    """A backend on a given device, whose CPU bfloat16 counts or not."""

    def __init__(self, device, cpu_bfloat16):
        self.device, self.cpu_bfloat16 = device, cpu_bfloat16

    def accelerator(self):
        return self.device


def test_bfloat16_is_fast_on_new_gpus_tpus_and_cpus_with_bf16_where_measured(tmp_path):
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    slow.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_has_fast_bfloat16(str(fast)) and not cpu_has_fast_bfloat16(str(slow))
    assert not cpu_has_fast_bfloat16(str(tmp_path / "missing"))
    assert capability("8.6") == (8, 6) and capability((7, 5)) < (8, 0) and capability("gfx90a") is None
    assert OnDevice(None, cpu_bfloat16=True).bfloat16_is_fast(str(fast))
    assert not OnDevice(None, cpu_bfloat16=True).bfloat16_is_fast(str(slow))
    assert not OnDevice(None, cpu_bfloat16=False).bfloat16_is_fast(str(fast))  # JAX, PyTorch: not measured faster
    assert OnDevice(("gpu", (9, 0)), cpu_bfloat16=False).bfloat16_is_fast(str(slow))  # every backend
    assert not OnDevice(("gpu", (7, 5)), cpu_bfloat16=True).bfloat16_is_fast(str(fast))
    assert OnDevice(("tpu", None), cpu_bfloat16=False).bfloat16_is_fast(str(slow))


@pytest.mark.engine
def test_only_tensorflow_takes_cpu_bfloat16_and_strategies():
    """On a CPU with bf16 instructions only TensorFlow's step was measured faster in bf16."""
    assert backend.active().cpu_bfloat16 is (backend.name() == "tensorflow")
    assert backend.runs_strategies() is (backend.name() == "tensorflow")


@pytest.mark.engine
@pytest.mark.parametrize("rule", ["l2", "adam"])
def test_the_loop_computes_what_the_steps_compute(rule):
    update = updates.get(rule)
    step = backend.compile_step(quadratic_score, update)
    loop = backend.compile_loop(quadratic_score, update)
    v0, u_all = step_inputs(steps=5)
    lr, filters = backend.to_tensor(np.float32(0.3)), backend.to_tensor(np.zeros(2, "int32"))
    values = [backend.to_tensor(v0)]
    state = update.init(values)
    scores = []
    for t in range(2, 5):  # steps 2, 3, 4 one call each
        values, state, s = step(values, state, backend.to_tensor(np.int32(t)), lr, backend.to_tensor(u_all[t]),
                                filters)
        scores.append(backend.to_numpy(s))
    u_block = np.zeros((6, 2, 1), "float32")  # K = 6 rows, 3 of them run
    u_block[:3] = u_all[2:5]
    start = [backend.to_tensor(v0)]
    out, out_state, history = loop(start, update.init(start), backend.to_tensor(np.int32(2)), lr,
                                   backend.to_tensor(u_block), filters, backend.to_tensor(np.int32(3)))
    # bit for bit, but on JAX: XLA's CPU compiler emits a reduction inside a while loop's body with another
    # summation order than the same fused reduction compiled on its own (the optimized HLO is the same), so
    # the L2 rule's per-image norm can differ in its last bit (1-2 ulp seen)
    same = np.testing.assert_array_equal if backend.name() != "jax" else (
        lambda a, b: np.testing.assert_array_max_ulp(a, b, maxulp=8))
    same(backend.to_numpy(out[0]), backend.to_numpy(values[0]))
    for a, b in zip(out_state, state, strict=True):
        same(backend.to_numpy(a), backend.to_numpy(b))
    history = backend.to_numpy(history)
    assert history.shape == (6, 2) and history.dtype == np.float32
    same(history[:3], np.stack(scores))
    np.testing.assert_array_equal(history[3:], 0.0)  # the rows not run
    traced = backend.traces(loop)
    for count, t0, rate in ((1, 0, 0.1), (6, 7, 0.5)):  # other counts, start steps and rates: no retrace
        loop(start, update.init(start), backend.to_tensor(np.int32(t0)), backend.to_tensor(np.float32(rate)),
             backend.to_tensor(u_block), filters, backend.to_tensor(np.int32(count)))
    assert backend.traces(loop) == traced == (0 if backend.name() == "torch" else 1)


@pytest.mark.engine
def test_the_loop_reads_the_model_weights_at_each_call():
    layer = keras.layers.Dense(1, use_bias=False)
    model = keras.Sequential([keras.Input((4,)), layer])
    model.set_weights([np.ones((4, 1), "float32")])

    def score(values, u, filters):
        return model(values[0])[:, 0]

    loop = backend.compile_loop(score, updates.get("l2"), model=model)
    x = [backend.to_tensor(np.arange(8, dtype="float32").reshape(2, 4))]
    args = (backend.to_tensor(np.int32(0)), backend.to_tensor(np.float32(0.0)),
            backend.to_tensor(np.zeros((2, 2, 1), "float32")), backend.to_tensor(np.zeros(2, "int32")),
            backend.to_tensor(np.int32(2)))
    np.testing.assert_allclose(backend.to_numpy(loop(x, [], *args)[2]), [[6.0, 22.0]] * 2)
    model.set_weights([np.full((4, 1), 2.0, "float32")])
    np.testing.assert_allclose(backend.to_numpy(loop(x, [], *args)[2]), [[12.0, 44.0]] * 2)
    assert backend.traces(loop) == (0 if backend.name() == "torch" else 1)
