import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ANGLES, GABOR_SIZE, angle_difference, dominant_orientation, make_grating_model

import kerasviz as kv
from kerasviz.engine import backend, params
from kerasviz.engine import render as rendering


def tutorial_visualize_filter(feature_extractor, filter_index, init):
    """The keras.io tutorial's code, one filter at a time (its init replaced by `init`)."""

    def compute_loss(input_image, filter_index):
        activation = feature_extractor(input_image)
        filter_activation = activation[:, 2:-2, 2:-2, filter_index]
        return tf.reduce_mean(filter_activation)

    @tf.function
    def gradient_ascent_step(img, filter_index, learning_rate):
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = compute_loss(img, filter_index)
        grads = tape.gradient(loss, img)
        grads = tf.math.l2_normalize(grads)
        img += learning_rate * grads
        return loss, img

    img = tf.constant(init)
    for _ in range(30):
        loss, img = gradient_ascent_step(img, filter_index, 10.0)
    return img[0].numpy()


@pytest.fixture(scope="module")
def resnet():
    return kv.get_model("ResNet50V2", weights=None)


def test_keras_io_preset_reproduces_the_tutorial(resnet):
    filters = [0, 5]
    seed = 3
    # like with like: one image per batch, as in the tutorial's loop (oneDNN picks other kernels for a batch
    # of 2, and 30 steps at lr 10 on a random-weight ResNet amplify their round-off)
    result = kv.visualize_filters(resnet, "conv3_block4_out", filters, preset="keras-io", seed=seed,
                                  batch_size=1, progress=False)
    layer = resnet.model.get_layer("conv3_block4_out")
    extractor = keras.Model(inputs=resnet.model.inputs, outputs=layer.output)
    for i, f in enumerate(filters):
        init = params.pixel(init="uniform", scale=0.25, sigmoid=False, decorrelate=False).init(
            1, (180, 180), 3, keys=[f], seed=seed)[0]
        expected = tutorial_visualize_filter(extractor, f, init)
        np.testing.assert_allclose(result.raw[i], expected, atol=1e-4)
    assert result.images.shape == (2, 130, 130, 3) and result.images.dtype == np.uint8


@pytest.mark.engine
def test_batched_filters_match_single_runs_and_seed_repeats(tiny_cnn):
    kw = dict(preset="fast", size=24, steps=6, progress=False, seed=7)
    both = kv.visualize_filters(tiny_cnn, "conv2", [3, 9], **kw)
    alone = kv.visualize_filters(tiny_cnn, "conv2", [9], **kw)
    again = kv.visualize_filters(tiny_cnn, "conv2", [3, 9], **kw)
    np.testing.assert_allclose(both.raw[1], alone.raw[0], atol=1e-5)
    np.testing.assert_array_equal(both.images, again.images)
    other_seed = kv.visualize_filters(tiny_cnn, "conv2", [3, 9], **{**kw, "seed": 8})
    assert not np.array_equal(both.images, other_seed.images)


@pytest.mark.engine
def test_step_is_traced_once_per_shape(tiny_cnn):
    kw = dict(preset="fast", size=16, steps=3, revive_steps=0, progress=False)
    kv.visualize_filters(tiny_cnn, "conv1", [0, 1], **kw)  # warm up this shape
    renderer = kv.optimize.plan(tiny_cnn, "conv1", [0, 1], preset="fast", size=16, steps=3, revive_steps=0).renderer
    before = renderer.traces()
    assert before > 0 or backend.name() == "torch"  # the warm-up traced this renderer (torch never traces)
    result = kv.visualize_filters(tiny_cnn, "conv1", list(range(8)), batch_size=2, **kw)
    # 4 chunks of 2 images, new filter indices each time: no retrace
    assert renderer.traces() == before
    assert result.filters == list(range(8)) and result.history.shape == (3, 8)
    again = kv.visualize_filters(tiny_cnn, "conv1", [5, 6], **{**kw, "steps": 7, "lr": 0.2})
    assert renderer.traces() == before  # other steps and lr: the same compiled step
    assert again.history.shape == (7, 2) and again.settings["steps"] == 7


@pytest.mark.engine
def test_chunks_are_even_and_cover_every_filter():
    chunks = rendering.split_batches(list(range(10)), 4)
    assert [len(c) for c in chunks] == [4, 4, 2] or [len(c) for c in chunks] == [4, 4, 2]
    assert sum(chunks, []) == list(range(10))


@pytest.mark.engine
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_activation_rises_for_every_filter(tiny_cnn, precision):
    result = kv.visualize_filters(tiny_cnn, "conv2", range(16), preset="fast", size=32, steps=20,
                                  progress=False, precision=precision)
    assert result.history.shape == (20, 16)
    # bf16 scores are rounded to 8 significant bits: a filter that barely moves (one of the tiny CNN's sits at
    # -0.387 in both precisions) rises by less than that rounding, so bf16 is held to rise within it
    slack = 0.0 if precision == "float32" else 2.0**-8 * np.abs(result.history[0])
    assert np.all(result.history[-1] > result.history[0] - slack)
    assert np.mean(result.history[-1] > result.history[0]) >= 0.75


@pytest.mark.engine
@pytest.mark.parametrize("preset", ["fast", "quality", "blog2016"])
def test_grating_filters_recover_their_orientation(grating_model, preset):
    result = kv.visualize_filters(grating_model, "gabor", range(4), preset=preset, size=48,
                                  steps=40, progress=False)
    for angle, image in zip(ANGLES, result.raw, strict=True):
        assert angle_difference(dominant_orientation(image), angle) <= 15.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layer="gabr"), "Did you mean 'gabor'"),
        (dict(filters=[4]), r"Filter 4 is out of range for layer 'gabor', which has 4 channels"),
        (dict(steps=0), "steps must be a positive int"),
        (dict(size=12), "too small for layer 'gabor'"),
        (dict(preset="lucyd"), "Did you mean 'lucid'"),
        (dict(filters="some"), "filters must be"),
    ],
)
@pytest.mark.engine
def test_bad_arguments_are_explained(grating_model, kwargs, message):
    call = dict(layer="gabor", filters=[0], progress=False, size=32, steps=2)
    call.update(kwargs)
    layer = call.pop("layer")
    filters = call.pop("filters")
    with pytest.raises(ValueError, match=message):
        kv.visualize_filters(grating_model, layer, filters, **call)


def test_render_any_objective_from_an_image(tiny_cnn):
    photo = np.random.default_rng(0).uniform(size=(1, 24, 24, 3)).astype("float32")
    obj = kv.objectives.deepdream("conv2")
    result = kv.render(tiny_cnn, obj, init=photo, steps=5, lr=0.02, transforms=(), progress=False)
    assert result.raw.shape == photo.shape
    assert result.history[-1, 0] > result.history[0, 0]


@pytest.mark.engine
def test_interrupt_returns_finished_chunks(tiny_cnn):
    calls = {"n": 0}

    class StopAfterFirstChunk(kv.progress.Callback):
        def on_step(self, record):
            if record.chunk == 1:
                calls["n"] += 1
                raise KeyboardInterrupt

    with pytest.warns(UserWarning, match=r"Interrupted: 2 of 4 filters finished; returning those"):
        result = kv.visualize_filters(tiny_cnn, "conv1", range(4), batch_size=2, preset="fast", size=16,
                                      steps=2, progress=False, callbacks=[StopAfterFirstChunk()])
    assert result.interrupted and result.filters == [0, 1] and result.unfinished == [2, 3]
    assert calls["n"] == 1 and result.history.shape == (2, 2) and result.images.shape[0] == 2


def test_hed_vgg16_block3_filters_all_rise_off_gray(hed_vgg16):
    result = kv.visualize_filters(hed_vgg16, "block3_conv3", range(8), size=64, steps=16, progress=False)
    assert np.all(result.history[-1] > result.history[-16])  # within the last octave (scores differ by scale)
    # no flat gray picture: every image has structure
    assert np.all(result.images.reshape(8, -1).std(axis=1) > 10)


def test_sizes_that_do_not_fit_are_explained(tiny_cnn):
    import keras

    # a fixed input size whose layers take any size: any size goes (a flexible input, the same layers)
    fixed = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="c")])
    assert kv.visualize_filters(fixed, "c", [0], size=64, steps=2, progress=False).images.shape[1] == 64
    # a Flatten before the layer: only the model's size goes through
    flat = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                             keras.layers.Dense(3, name="d")])
    with pytest.raises(ValueError, match=r"takes only 32x32 inputs .* need that size .* use size=32"):
        kv.visualize_filters(flat, "d", [0], size=64, progress=False)
    # keras-io drops 2 border positions: a 4x4 map (8 px through one pooling) leaves nothing
    with pytest.raises(ValueError, match="too small to drop 2 positions at each border"):
        kv.visualize_filters(tiny_cnn, "conv2", [0], preset="keras-io", size=8, progress=False)


class _Momentum:
    """SGD with momentum, ascending, written out: what keras.optimizers.SGD(lr, momentum) must do."""

    name = "momentum"

    def __init__(self, lr, momentum):
        self.lr, self.momentum = lr, momentum

    def init(self, values):
        return [keras.ops.zeros_like(v) for v in values]

    def apply(self, values, grads, state, lr, t):
        state = [self.momentum * m + self.lr * g for m, g in zip(state, grads, strict=True)]
        return [v + m for v, m in zip(values, state, strict=True)], state


@pytest.mark.engine
def test_a_keras_optimizer_runs_inside_the_compiled_step(grating_model):
    kw = dict(preset="fast", size=32, steps=10, batch_size=2, revive_steps=0, progress=False)
    ours = kv.visualize_filters(grating_model, "gabor", range(4), update=_Momentum(0.5, 0.9), **kw)
    theirs = kv.visualize_filters(grating_model, "gabor", range(4),
                                  update=keras.optimizers.SGD(0.5, momentum=0.9), **kw)
    np.testing.assert_allclose(theirs.raw, ours.raw, atol=1e-4)  # the second chunk restarted its state
    start = kv.visualize_filters(grating_model, "gabor", range(4), **{**kw, "steps": 1})
    assert np.abs(theirs.raw - start.raw).max() > 0.05  # it did move the images
    assert theirs.settings["update"].startswith("keras.SGD(")


def _dead_and_alive_model():
    """The Gabor model with filter 0's bias far below zero (dead at the start, reachable by a grating)
    and filter 1's above zero (alive from the start)."""
    model = make_grating_model()
    conv = model.get_layer("gabor")
    kernel, bias = conv.get_weights()
    reach = np.maximum(kernel[..., 0], 0).sum()  # the most a [0, 1] image can give filter 0
    bias[0], bias[1] = -0.4 * reach, 0.1
    conv.set_weights([kernel, bias])
    return model


@pytest.mark.parametrize("size", [16, 21, 32])
def test_revive_window_holds_the_center_neuron(tiny_cnn, size):
    network = kv.nets.as_network(tiny_cnn)
    ext = kv.feature_extractor(network, ["relu2"])
    window = rendering.revive_window(network, "relu2", ext, (size, size))
    assert window is not None
    top, left, rows, cols = window
    assert rows < size and cols < size and top % 2 == 0 and (size - rows) % 4 == 0  # stride 2
    x = np.random.default_rng(size).uniform(size=(1, size, size, 3)).astype("float32")
    full, crop = backend.to_numpy(ext(x)), backend.to_numpy(ext(x[:, top:top + rows, left:left + cols]))
    center = full[0, full.shape[1] // 2, full.shape[2] // 2]
    np.testing.assert_allclose(crop[0, crop.shape[1] // 2, crop.shape[2] // 2], center, atol=1e-5)
    assert np.abs(center).max() > 1e-3
    assert rendering.revive_window(network, "gap", kv.feature_extractor(network, ["gap"]), (size, size)) is None


@pytest.mark.engine
def test_revive_on_the_window_matches_the_whole_image(monkeypatch):
    kw = dict(preset="fast", size=32, steps=1, lr=1e-6, revive_steps=30, progress=False)
    model = _dead_and_alive_model()
    ext = kv.feature_extractor(model, ["gabor"])
    assert rendering.revive_window(kv.nets.as_network(model), "gabor", ext, (32, 32)) == (8, 8, 16, 16)
    windowed = kv.visualize_filters(model, "gabor", [0, 1], **kw)
    monkeypatch.setattr(rendering, "revive_window", lambda *args: None)
    whole = kv.visualize_filters(_dead_and_alive_model(), "gabor", [0, 1], **kw)
    assert windowed.revived == whole.revived == [0]
    np.testing.assert_allclose(windowed.images.astype(float), whole.images.astype(float), atol=2)
    np.testing.assert_allclose(windowed.scores, whole.scores, rtol=1e-3, atol=1e-5)


def test_revive_objective_is_the_linear_center_pre_activation():
    """The leaky ReLU's slope jumps 100-fold at zero (Adam then oscillates around it); the revive
    objective reads the linear value where pre_activation made the ReLU leaky, the plain neuron elsewhere."""
    model = _dead_and_alive_model()
    path, layer = kv.nets.find_layer(kv.nets.as_network(model), "gabor")
    gray = np.full((2, GABOR_SIZE, GABOR_SIZE, 3), 0.5, "float32")  # a 1x1 activation map
    kernel, bias = layer.get_weights()
    center = (gray[0, ..., None] * kernel).sum(axis=(0, 1, 2))[:2] + bias[:2]
    filters = np.array([0, 1], "int32")
    for pre_activation, expected in ((True, center), (False, np.maximum(center, 0))):
        obj = rendering.revive_objective(path, layer, kv.presets.Preset(pre_activation=pre_activation))
        ext = kv.feature_extractor(model, [path], pre_activation=pre_activation)
        scores = obj(kv.objectives.Context({path: ext(gray)}, gray, filters))
        np.testing.assert_allclose(backend.to_numpy(scores), expected, rtol=1e-4, atol=1e-5)
    assert center[0] < -1.0  # filter 0 is far below zero: the leaky value would be 100 times smaller


def test_revive_objective_reads_a_softmax_layers_logits_as_they_are(tiny_cnn):
    path, layer = kv.nets.find_layer(kv.nets.as_network(tiny_cnn), "predictions")
    x = np.random.default_rng(4).uniform(size=(2, 16, 16, 3)).astype("float32")
    logits = kv.feature_extractor(tiny_cnn, [path], pre_activation=True)(x)
    obj = rendering.revive_objective(path, layer, kv.presets.Preset(pre_activation=True))
    lowest = backend.to_numpy(logits).argmin(axis=1).astype("int32")  # each image's lowest class
    scores = backend.to_numpy(obj(kv.objectives.Context({path: logits}, x, lowest)))
    expected = backend.to_numpy(logits)[[0, 1], lowest]
    assert expected.min() < 0  # a negative logit would be scaled 100-fold by undo_leak
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


@pytest.mark.engine
def test_filters_still_dead_at_the_end_are_revived_on_their_center_neuron():
    model = _dead_and_alive_model()
    kw = dict(preset="fast", size=32, steps=1, lr=1e-6, progress=False)  # the main run does nothing
    off = kv.visualize_filters(model, "gabor", [0, 1], revive_steps=0, **kw)
    assert off.revived == [] and off.scores[0] <= 0 < off.scores[1]
    records = []

    class Listen(kv.progress.Callback):
        def on_step(self, record):
            records.append(record)

    on = kv.visualize_filters(model, "gabor", [0, 1], revive_steps=60, callbacks=[Listen()], **kw)
    assert on.revived == [0]
    assert on.scores[0] > off.scores[0]
    reviving = [(r.reviving, r.revive_step, r.revive_steps, r.step) for r in records if r.reviving]
    assert reviving == [(1, t, 60, 1) for t in range(1, 61)]  # callbacks hear every revive step

    def relu(images):
        return backend.to_numpy(model(images.astype("float32") / 255.0))[..., 0]

    assert relu(on.images)[0].max() > 0  # alive: its ReLU output is no longer zero everywhere
    assert relu(off.images)[0].max() == 0
    np.testing.assert_array_equal(on.images[1], off.images[1])  # alive filters are left alone
    with pytest.raises(ValueError, match="revive_steps must be an int >= 0"):
        kv.visualize_filters(model, "gabor", [0], revive_steps=-1, **kw)


def test_renderer_run_needs_a_schedule_and_takes_only_the_untraced_settings(tiny_cnn):
    p = kv.optimize.plan(tiny_cnn, "conv2", [0], preset="fast", size=24, steps=2)
    with pytest.raises(TypeError):
        p.renderer.run([0], [0])  # the schedule is required: it used to run the build-time settings silently
    assert not hasattr(p.renderer, "settings")  # the traced ones were read once, when it was built
    out = p.renderer.run([0], [0], p.schedule)
    assert out.history.shape == (2, 1) and p.schedule.steps == (2,)


def test_one_plan_runs_chunks_like_one_call(tiny_cnn):
    p = kv.optimize.plan(tiny_cnn, "conv2", range(6), preset="fast", size=24, steps=3, batch_size=3)
    assert p.chunks() == [[0, 1, 2], [3, 4, 5]] and p.layer == "conv2"
    whole = kv.visualize_filters(tiny_cnn, "conv2", range(6), preset="fast", size=24, steps=3, batch_size=3,
                                 progress=False)
    parts = [p.run(chunk) for chunk in p.chunks()]
    np.testing.assert_array_equal(np.concatenate([r.images for r in parts]), whole.images)


@pytest.mark.parametrize("call", [
    lambda m: kv.render(m, kv.objectives.channel("conv2"), size=24, steps=2, progress=False, stpes=2),
    lambda m: kv.visualize_filters(m, "conv2", [0], size=24, steps=2, progress=False, lrr=0.1),
    lambda m: kv.layer_atlas(m, "conv2", [0], size=24, steps=2, progress=False, octave=2),
    lambda m: kv.caricature(m, "conv2", np.zeros((24, 24, 3)), steps=2, size=24, sise=3),
    lambda m: kv.dream(m, "conv2", np.zeros((24, 24, 3)), steps=2, octaves=1, updte="adam"),
    lambda m: kv.plot.top_filters_figure(m, "conv2", np.zeros((24, 24, 3)), k=1, size=24, steps=2, lr_=0.1),
    lambda m: kv.plot_weights.circuit_figure(m, "conv2", 0, k=1, size=24, steps=2, precison="float32"),
])
def test_every_entry_point_rejects_an_unknown_override(tiny_cnn, call):
    with pytest.raises(TypeError, match="Unknown setting .*Did you mean"):
        call(tiny_cnn)


def test_render_takes_the_model_options(tiny_cnn):
    r = kv.render(tiny_cnn, kv.objectives.channel("conv2", 1), size=24, steps=2, progress=False,
                  input_range=(-1, 1))
    assert r.settings["model"] == "tiny_cnn" and np.isfinite(r.scores).all()


def test_dream_and_the_figures_take_the_model_options_and_overrides(tiny_cnn):
    photo = np.random.default_rng(0).uniform(size=(24, 24, 3)).astype("float32")
    scaled = kv.dream(tiny_cnn, "conv2", photo, steps=2, octaves=1, input_range=(-1, 1), update="l2")
    plain = kv.dream(tiny_cnn, "conv2", photo, steps=2, octaves=1, update="l2")
    assert scaled.shape == photo.shape and not np.array_equal(scaled, plain)  # the input range was used
    fig = kv.plot.top_filters_figure(tiny_cnn, "conv2", photo, k=2, size=24, steps=2, preset="fast",
                                     input_range=(-1, 1), revive_steps=0)
    assert len(fig.axes) >= 3


def test_result_says_score_not_activation(tiny_cnn):
    r = kv.visualize_filters(tiny_cnn, "conv2", [0], size=24, steps=2, progress=False, preset="fast")
    assert not hasattr(r, "activations") and "mean score=" in repr(r) and "activation" not in repr(r)


def test_options_are_checked_where_they_go(tiny_cnn):
    with pytest.raises(TypeError, match=r"Unknown setting 'batch_sise'. Did you mean 'batch_size'"):
        kv.visualize_filters(tiny_cnn, "conv2", [0], size=24, steps=2, batch_sise=2)
    for bad, message in [(dict(batch_size=0), "batch_size must be an int >= 1 or None. Received: batch_size=0"),
                         (dict(memory_budget=-1), "memory_budget must be an int >= 1"),
                         (dict(seed=1.5), "seed must be an int >= 0. Received: seed=1.5")]:
        with pytest.raises(ValueError, match=message):
            kv.visualize_filters(tiny_cnn, "conv2", [0], size=24, steps=2, **bad)


def _float32_scores(model, layer, raw, filters):
    """The channel objective of `raw` ([0, 1] images) through the float32 extractor: bf16 and fp32 pictures
    judged by the same float32 model."""
    from kerasviz.engine import objectives

    net = kv.as_network(model)
    out = kv.nets.get_extractor(net, [layer], True)(net.model_inputs(net.preprocess(backend.to_tensor(raw))))
    out = out[0] if isinstance(out, (list, tuple)) else out
    filters = backend.to_tensor(np.asarray(filters, "int32"))
    return backend.to_numpy(objectives.channel(layer)(objectives.Context({layer: out}, raw, filters)))


@pytest.mark.engine
@pytest.mark.parametrize("model, layer, n, size, steps", [
    ("tiny_cnn", "conv2", 8, 24, 12),
    ("grating_model", "gabor", 4, 48, 40),
])
def test_bfloat16_pictures_score_like_float32(model, layer, n, size, steps, request):
    model = request.getfixturevalue(model)
    policies = [m.dtype_policy.name for m in model.layers]
    weights = [np.array(w) for w in model.get_weights()]
    kw = dict(preset="fast", size=size, steps=steps, revive_steps=0, progress=False, seed=3)
    fp32 = kv.visualize_filters(model, layer, range(n), precision="float32", **kw)
    bf16 = kv.visualize_filters(model, layer, range(n), precision="bfloat16", **kw)
    assert bf16.settings["precision"] == "bfloat16" and fp32.settings["precision"] == "float32"
    assert bf16.images.dtype == np.uint8 and bf16.images.shape == fp32.images.shape
    assert bf16.scores.dtype == bf16.history.dtype == bf16.raw.dtype == np.float32
    # the same images scored by both extractors: within bf16's rounding (8 significant bits, 2**-8 = 0.4%;
    # observed <= 0.42% of the largest score on the three backends), so 1% of the largest score
    scale = np.abs(fp32.scores).max()
    again = _float32_scores(model, layer, bf16.raw, range(n))
    np.testing.assert_allclose(bf16.scores, again, atol=0.01 * scale)
    # the pictures themselves: each step's gradient differs at the 1% level, so the two ascents part ways and
    # reach other images; judged by the float32 model, each bf16 picture scores within 10% of the largest fp32
    # score of its fp32 twin (observed on the three backends: <= 6.0%, TensorFlow on the 15 px Gabor filters;
    # <= 0.8% on the tiny CNN)
    np.testing.assert_allclose(again, _float32_scores(model, layer, fp32.raw, range(n)), atol=0.10 * scale)
    if layer == "gabor":  # and they show the same thing: each grating filter's own orientation
        for angle, image in zip(ANGLES, bf16.raw, strict=True):
            assert angle_difference(dominant_orientation(image), angle) <= 15.0
    # the user's model: the same dtype policies and weights
    assert [m.dtype_policy.name for m in model.layers] == policies
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.engine
def test_precision_is_compiled_in_and_auto_is_the_default(tiny_cnn):
    kw = dict(preset="fast", size=16, steps=2, revive_steps=0)
    fp32 = kv.optimize.plan(tiny_cnn, "conv1", [0], precision="float32", **kw).renderer
    bf16 = kv.optimize.plan(tiny_cnn, "conv1", [0], precision="bfloat16", **kw).renderer
    default = kv.optimize.plan(tiny_cnn, "conv1", [0], **kw).renderer
    assert default is (bf16 if kv.presets.resolve_precision("auto") == "bfloat16" else fp32)
    assert "precision" in rendering.TRACED_SETTINGS and fp32 is not bf16
    assert fp32.precision == "float32" and bf16.precision == "bfloat16"
    assert kv.optimize.plan(tiny_cnn, "conv1", [0], precision="bf16", **kw).renderer is bf16
    assert fp32.extractor is kv.nets.get_extractor(kv.as_network(tiny_cnn), ["conv1"], True)
