"""The renderer's loop over steps: the compiled multi-step loop (`backend.compile_loop`) in blocks, against
the one-step loop (`block_steps=1`): the same pictures, bounded traces, progress per block, interruption."""

import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz.engine import backend
from kerasviz.engine import render as rendering

FAST = dict(preset="fast", size=24, steps=10, revive_steps=0, progress=False, seed=5)


def run(model, layer, filters, block_steps, **kw):
    """`visualize_filters` with `block_steps` steps per compiled call (None: chosen from the activation size)."""
    return kv.visualize_filters(model, layer, filters, block_steps=block_steps, **{**FAST, **kw})


@pytest.mark.engine
@pytest.mark.parametrize("kw", [dict(), dict(preset="quality", size=32, steps=5, revive_steps=3),
                                dict(preset="keras-io", steps=7)], ids=["fast", "quality", "keras-io"])
def test_the_loop_gives_the_step_loops_pictures_pixel_for_pixel(tiny_cnn, kw):
    steps = run(tiny_cnn, "conv2", [0, 3, 5], 1, **kw)
    if backend.name() == "tensorflow":  # these weights (they differ per backend): filter 3 is dead at 5 steps
        assert bool(steps.revived) == ("revive_steps" in kw)  # so the revive steps run, after the loop
    for block in (None, 3, 64):  # from the activation size; blocks of 3 (a shorter last one); one block per octave
        loop = run(tiny_cnn, "conv2", [0, 3, 5], block, **kw)
        np.testing.assert_array_equal(loop.raw, steps.raw, err_msg=f"block_steps={block}")
        np.testing.assert_array_equal(loop.images, steps.images)
        np.testing.assert_array_equal(loop.history, steps.history)
        np.testing.assert_array_equal(loop.scores, steps.scores)
        assert loop.revived == steps.revived


def test_the_loop_runs_on_the_replicas_of_a_strategy(tiny_cnn):
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])  # the two-device run is in tests/test_atlas.py
    kw = dict(preset="quality", size=24, steps=4, octaves=2, revive_steps=2, distribute=strategy)
    steps = run(tiny_cnn, "conv2", [0, 3, 5], 1, **kw)
    loop = run(tiny_cnn, "conv2", [0, 3, 5], 3, **kw)
    np.testing.assert_array_equal(loop.raw, steps.raw)
    np.testing.assert_array_equal(loop.history, steps.history)
    np.testing.assert_array_equal(run(tiny_cnn, "conv2", [0, 3, 5], 3, **{**kw, "distribute": None}).raw, loop.raw)


@pytest.mark.engine
def test_a_keras_optimizer_runs_in_the_loop_with_the_same_pictures(tiny_cnn):
    update = keras.optimizers.SGD(0.05, momentum=0.9)
    steps = run(tiny_cnn, "conv1", [1, 2], 1, update=update)
    loop = run(tiny_cnn, "conv1", [1, 2], 4, update=update)
    np.testing.assert_array_equal(loop.raw, steps.raw)
    np.testing.assert_array_equal(loop.history, steps.history)
    # the slots start again at each run: a second run is the same
    np.testing.assert_array_equal(run(tiny_cnn, "conv1", [1, 2], 4, update=update).raw, loop.raw)


def renderer_of(model, layer, filters, **kw):
    """A new renderer (none of the cached ones, so its traces are its own) and the schedule of a plan, which
    `block_steps` in `kw` sets."""
    p = kv.optimize.plan(model, layer, filters, **{k: v for k, v in {**FAST, **kw}.items() if k != "progress"})
    return rendering.Renderer(p.network, p.objective, p.settings, revive=p.revive), p.schedule


def schedule(steps, lr=0.05, block_steps=None):
    return rendering.Schedule.of(kv.presets.resolve_settings("fast", dict(size=24, steps=steps, lr=lr, revive_steps=0)),
                                 block_steps)


@pytest.mark.engine
def test_progress_comes_per_block_and_the_history_per_step(tiny_cnn):
    renderer, plan_schedule = renderer_of(tiny_cnn, "conv1", [0, 1], block_steps=4)
    calls = []
    out = renderer.run([0, 1], [0, 1], plan_schedule, seed=5, on_step=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 10), (8, 10), (10, 10)]  # a call per block of 4, the last one shorter
    assert isinstance(out, rendering.Rendered) and out.history.shape == (10, 2) and not out.interrupted
    assert out.images.shape == (2, 24, 24, 3) and out.scores.shape == (2,) and out.revived == []


@pytest.mark.engine
@pytest.mark.parametrize("block_steps", [None, 4, 1])  # None: the loop (the tiny model: 64 steps per call)
def test_traces_stay_bounded_for_new_filters_steps_and_learning_rates(tiny_cnn, block_steps):
    renderer, plan_schedule = renderer_of(tiny_cnn, "conv1", [0, 1], block_steps=block_steps)
    renderer.run([0, 1], [0, 1], plan_schedule, seed=5)  # warm up this shape
    before = renderer.traces()
    for steps, lr, filters in ((10, 0.05, [2, 3]), (37, 0.2, [4, 7]), (3, 0.01, [5, 6])):
        out = renderer.run([0, 1], filters, schedule(steps, lr, block_steps), seed=5)
        assert out.history.shape == (steps, 2)
    assert renderer.traces() == before
    if backend.name() != "torch":  # one step (or loop) trace and one scoring trace; torch never traces
        assert before == 2


@pytest.mark.engine
@pytest.mark.parametrize("block_steps", [None, 4])
def test_an_interruption_between_blocks_returns_the_finished_steps(tiny_cnn, block_steps):
    renderer, plan_schedule = renderer_of(tiny_cnn, "conv1", [0, 1], steps=12, block_steps=block_steps)
    seen = []

    def stop_after_8(done, total):
        seen.append(done)
        if done >= 8:
            raise KeyboardInterrupt

    out = renderer.run([0, 1], [0, 1], plan_schedule, seed=5, on_step=stop_after_8)
    assert out.interrupted and out.history.shape == (seen[-1], 2)
    # the images are those of the steps finished: the same as a run of that many steps
    short = renderer.run([0, 1], [0, 1], schedule(seen[-1], block_steps=1), seed=5)
    np.testing.assert_array_equal(out.images, short.images)
    np.testing.assert_array_equal(out.history, short.history)
    np.testing.assert_array_equal(out.scores, short.scores)


def test_bad_block_steps_are_explained(tiny_cnn):
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"block_steps must be None .* or an int >= 1 .*Received: "
                                             f"block_steps={bad!r}"):
            kv.visualize_filters(tiny_cnn, "conv1", [0], block_steps=bad, **FAST)


def test_the_block_size_follows_the_activation_size():
    elements = 24 * 24 * 8  # conv1's output at 24 px
    # 2 images x 8 steps per call; at most LOOP_STEPS; under MIN_LOOP_STEPS the renderer runs the step loop
    assert rendering.steps_per_call(2, elements, block_elements=2 * elements * 8) == 8
    assert rendering.steps_per_call(2, elements, block_elements=10**12) == rendering.LOOP_STEPS
    assert rendering.steps_per_call(2, elements, block_elements=2 * elements * 7) == 7 < rendering.MIN_LOOP_STEPS
    assert rendering.steps_per_call(2, None) == rendering.MIN_LOOP_STEPS  # a graph the probe cannot read


@pytest.mark.engine
def test_the_renderer_runs_its_blocks_from_the_models_activation_size(tiny_cnn):
    renderer, plan_schedule = renderer_of(tiny_cnn, "conv1", [0, 1])
    elements = rendering.activation_elements(renderer.extractor, (24, 24), 3)
    assert elements == 24 * 24 * 8  # conv1's output (the extractor ends there)
    calls = []
    renderer.run([0, 1], [0, 1], plan_schedule, seed=5, on_step=lambda done, total: calls.append(done))
    assert list(np.diff([0, *calls])) == [1, 9]  # the first block of an octave is one step, then the other 9


def test_the_activation_probe_reads_a_fixed_size_models_flexible_extractor():
    """The flexible copy of a 28x28 model shares its layers, whose `.output` belongs to the model's own graph:
    the probe walks the extractor's graph, so the small model gets its long blocks and its batch size."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x))
    net = kv.as_network(model, preprocess=None, input_range=(0, 1))
    extractor = kv.nets.get_extractor(net, ["c2"], True)
    assert kv.nets.input_size(extractor) is None  # the flexible copy
    elements = rendering.activation_elements(extractor, (32, 32), 1)
    assert elements == 30 * 30 * 8 + 28 * 28 * 4  # c1's and c2's outputs at the probe's 32x32
    assert rendering.estimate_batch_size(extractor, (32, 32), 1, 10**6) == 10**6 // (elements * 4 * 3)
