import importlib

import h5py
import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz import nets


@pytest.mark.parametrize("name", sorted(nets.FAMILY_OF))
def test_preprocessing_matches_keras_applications(name):
    module = importlib.import_module(f"keras.applications.{nets.module_name(name)}")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 5, 7, 3)).astype("float32")
    expected = module.preprocess_input(x * 255.0)  # keras works in 0-255 (and may change its input)
    ours = kv.Preprocessing.family(nets.FAMILY_OF[name])(x)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-5, atol=1e-4)


def test_preprocessing_inverts():
    p = kv.Preprocessing.family("caffe")
    x = np.random.default_rng(1).uniform(size=(1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(p.invert(p(x)), x, atol=1e-5)


def test_list_models_covers_the_families():
    assert {"ResNet50V2", "VGG16", "EfficientNetB0", "ConvNeXtTiny", "DenseNet121"} <= set(kv.list_models())
    assert kv.list_models("vgg*") == ["VGG16", "VGG19"]


@pytest.mark.parametrize("spelling", ["resnet50v2", "ResNet50_V2", "RESNET50-V2"])
def test_get_model_is_insensitive_to_case_and_punctuation(spelling, monkeypatch):
    seen = {}
    monkeypatch.setattr(keras.applications, "ResNet50V2", lambda **kw: seen.setdefault("kw", kw) and "m")
    net = kv.get_model(spelling, weights=None)
    assert net.name == "ResNet50V2" and net.preprocess.name == "tf"
    assert seen["kw"]["weights"] is None and seen["kw"]["include_top"] is False


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match=r"Unknown model 'ResNet50V3'.*Did you mean 'ResNet50V2'"):
        kv.get_model("ResNet50V3")


def test_failed_download_names_the_offline_ways(monkeypatch):
    def fail(**kw):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x: None -- [Errno -3]")

    monkeypatch.setattr(keras.applications, "VGG19", fail)
    with pytest.raises(ValueError, match=r"Could not download.*weights='hed'.*local weights file"):
        kv.get_model("VGG19")


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("ResNet50V2", {"weights": "hed"}, "fits only VGG16"),
        ("VGG16", {"weights": "hed", "include_top": True}, "no classifier"),
        ("VGG16", {"weights": "/no/such/file.h5"}, "no such file"),
    ],
)
def test_bad_weights_are_explained(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kv.get_model(name, **kwargs)


def test_hed_weights_are_the_shipped_backbone(hed_vgg16):
    with h5py.File(nets.hed_weights_path()) as f:
        kernel = f["block3/layers/conv2d_2/vars/0"][()]
    np.testing.assert_array_equal(hed_vgg16.model.get_layer("block3_conv3").get_weights()[0], kernel)
    assert hed_vgg16.weights == "hed" and hed_vgg16.preprocess.name == "caffe"


def test_keras_model_preprocessing_is_inferred_or_given(tiny_cnn):
    assert kv.as_network(tiny_cnn).preprocess.name == "range(0, 1)"
    assert kv.as_network(tiny_cnn, input_range=(-1, 1)).preprocess.name == "range(-1, 1)"
    assert kv.as_network(tiny_cnn, preprocess="caffe").preprocess.name == "caffe"
    vgg = keras.applications.VGG16(weights=None, include_top=False)
    assert kv.as_network(vgg).preprocess.name == "caffe"


def test_as_network_rejects_other_types():
    with pytest.raises(TypeError, match="keras.applications name"):
        kv.as_network(42)


def test_layer_lookup_suggests_close_names(tiny_cnn):
    with pytest.raises(ValueError, match=r"Layer 'conv3' not found in tiny_cnn\. Did you mean"):
        kv.find_layer(tiny_cnn, "conv3")


def test_nested_layers_are_found_by_name_and_path(tiny_cnn):
    outer = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(1.0), tiny_cnn])
    path, layer = kv.find_layer(outer, "conv2")
    assert path == "tiny_cnn/conv2" and layer.name == "conv2"
    assert kv.find_layer(outer, "tiny_cnn/conv2")[1] is layer
    ext = kv.feature_extractor(outer, ["tiny_cnn/conv2"], pre_activation=False)
    x = np.random.default_rng(0).uniform(size=(1, 8, 8, 3)).astype("float32")
    direct = keras.Model(tiny_cnn.inputs, tiny_cnn.get_layer("conv2").output)(x)
    np.testing.assert_allclose(np.asarray(ext(x)), np.asarray(direct), atol=1e-6)


def test_pre_activation_removes_fused_and_separate_relus(tiny_cnn):
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    pre = kv.feature_extractor(tiny_cnn, ["conv1", "relu2"], pre_activation=True)(x)
    post = kv.feature_extractor(tiny_cnn, ["conv1", "relu2"], pre_activation=False)(x)
    for a, b in zip(pre, post, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.min() < 0 and b.min() >= 0
        np.testing.assert_allclose(np.maximum(a, 0), b, atol=1e-6)
    # the original layer keeps its activation
    assert tiny_cnn.get_layer("conv1").activation.__name__ == "relu"


def test_leaks_under_pre_activation_follows_what_the_extractor_outputs(tiny_cnn):
    x = np.random.default_rng(2).uniform(size=(2, 8, 8, 3)).astype("float32")
    for name, leaky in (("conv1", True), ("relu2", True), ("predictions", False), ("conv2", False)):
        assert nets.leaks_under_pre_activation(tiny_cnn.get_layer(name)) is leaky, name
    pre = keras.ops.convert_to_numpy(kv.feature_extractor(tiny_cnn, ["predictions"], pre_activation=True)(x))
    assert not np.allclose(pre.sum(axis=-1), 1.0)  # the softmax's logits, not leaky values of probabilities


def test_undo_leak_gives_back_the_linear_pre_activation(tiny_cnn):
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype("float32")
    leaky = kv.feature_extractor(tiny_cnn, ["conv1"], pre_activation=True)(x)
    kernel, bias = tiny_cnn.get_layer("conv1").get_weights()
    linear = keras.ops.convert_to_numpy(keras.ops.conv(x, kernel, padding="same")) + bias
    assert linear.min() < -0.05  # negative values are there to be rescaled
    np.testing.assert_allclose(keras.ops.convert_to_numpy(nets.undo_leak(leaky)), linear, atol=1e-5)


def test_channels_and_layer_list(tiny_cnn):
    assert nets.channels_of(tiny_cnn, "conv2") == 16
    rows = {r.path: r for r in kv.list_layers(tiny_cnn)}
    assert rows["conv1"].type == "Conv2D" and rows["conv1"].channels == 8
    assert rows["gap"].output_shape == (None, 16)


def test_layer_without_channels_is_explained():
    inputs = keras.Input((4, 4, 3))
    flat = keras.layers.Reshape((48,))(inputs)
    scalar = keras.layers.Lambda(lambda t: keras.ops.sum(t, axis=-1), name="total")(flat)
    model = keras.Model(inputs, scalar)
    with pytest.raises(ValueError, match="no channel axis"):
        nets.channels_of(model, "total")


def test_input_range_is_read_from_rescaling_and_normalization_layers():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(x))
    p = kv.as_network(model).preprocess
    np.testing.assert_allclose(p(np.ones((1, 1, 1, 3), "float32")), 255.0, rtol=1e-5)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1)(inputs)
    p = kv.as_network(keras.Model(inputs, keras.layers.Conv2D(2, 3)(x))).preprocess
    np.testing.assert_allclose(p(np.ones((1, 1, 1, 3), "float32")), 255.0, rtol=1e-5)
    norm = keras.layers.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.01, 0.04, 0.09])
    inputs = keras.Input((None, None, 3))
    p = kv.as_network(keras.Model(inputs, keras.layers.Conv2D(2, 3)(norm(inputs)))).preprocess
    # [0, 1] spans mean +- 2 std per channel
    np.testing.assert_allclose(np.asarray(p(np.zeros((1, 1, 1, 3), "float32")))[0, 0, 0], [0.3, 0.0, -0.3], atol=1e-5)
    np.testing.assert_allclose(np.asarray(p(np.ones((1, 1, 1, 3), "float32")))[0, 0, 0], [0.7, 0.8, 0.9], atol=1e-5)


def test_multi_input_model_optimizes_one_input_and_holds_the_other():
    image = keras.Input((None, None, 3), name="image")
    gain = keras.Input((1,), name="gain")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(image)
    g = keras.layers.Reshape((1, 1, 1))(gain)
    out = keras.layers.Multiply(name="scaled")([x, g])
    model = keras.Model([image, gain], out)
    with pytest.raises(ValueError, match=r"other_inputs\['gain'\] has shape \(2,\), but input 'gain' .* takes \(1,\)"):
        kv.as_network(model, image_input="image", other_inputs={"gain": np.zeros(2)})
    net = kv.as_network(model, image_input="image", other_inputs={"gain": np.array([2.0], "float32")})
    result = kv.visualize_filters(net, "scaled", [0, 1], preset="fast", size=16, steps=3, progress=False)
    assert result.images.shape == (2, 16, 16, 3)
    assert np.all(np.isfinite(result.scores))


@pytest.mark.parametrize("channels", [1, 4, 13])
def test_any_number_of_input_channels(channels):
    from conftest import make_tiny_cnn

    model = make_tiny_cnn(channels=channels)
    for preset in ("fast", "blog2016"):
        result = kv.visualize_filters(model, "conv2", [0, 1], preset=preset, size=16, steps=3, progress=False)
        assert result.images.shape == (2, 16, 16, channels)
    assert kv.stitch(result.images).shape[-1] == channels


def test_keras_file_paths_work_like_names(tmp_path, tiny_cnn):
    path = str(tmp_path / "tiny.keras")
    tiny_cnn.save(path)
    net = kv.get_model(path)
    assert [layer.name for layer in net.model.layers] == [layer.name for layer in tiny_cnn.layers]
    result = kv.visualize_filters(path, "conv2", [0], preset="fast", size=16, steps=2, progress=False)
    assert result.images.shape == (1, 16, 16, 3)


def test_mixed_float16_model_gives_finite_pictures():
    from conftest import make_tiny_cnn

    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = make_tiny_cnn(seed=1)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.get_layer("conv2").compute_dtype == "float16"
    result = kv.visualize_filters(model, "conv2", [0, 1, 2], preset="fast", size=24, steps=10, progress=False)
    assert np.all(np.isfinite(result.raw)) and np.all(np.isfinite(result.scores))
    assert np.all(result.history[-1] > result.history[0])


def test_pre_activation_never_changes_the_layer():
    """The extractor used to swap a shared layer's activation for the call and back: unsafe when atlas worker
    threads share the model. Now nothing of the layer is set."""
    sets = []

    class Conv2D(keras.layers.Conv2D):  # a Conv2D (by its type's name, as the extractor reads it) that tells
        def __setattr__(self, name, value):
            if name == "activation" and hasattr(self, "activation"):
                sets.append(value)
            super().__setattr__(name, value)

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, Conv2D(4, 3, activation="relu", name="w")(inputs))
    extractor = kv.feature_extractor(model, ["w"], pre_activation=True)
    out = np.asarray(extractor(np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")))
    assert sets == [] and out.min() < 0  # the leaky pre-activation, with the layer untouched


def _visualize(m, photo, tmp):
    kv.visualize_filters(m, "conv2", range(2), size=24, steps=2, progress=False, preset="fast")


LET_GO = {
    "visualize_filters": _visualize,
    "visualize_filters in bfloat16": lambda m, photo, tmp: kv.visualize_filters(
        m, "conv2", range(2), size=24, steps=2, progress=False, preset="fast", precision="bfloat16"),
    "render": lambda m, photo, tmp: kv.render(m, kv.objectives.channel("conv2", 1), size=24, steps=2,
                                              progress=False),
    "layer_atlas": lambda m, photo, tmp: kv.layer_atlas(m, "conv1", range(2), cache_dir=tmp, size=24, steps=2,
                                                        progress=False, preset="fast"),
    "top_filters": lambda m, photo, tmp: kv.top_filters(m, "conv2", photo),
    "dream": lambda m, photo, tmp: kv.dream(m, "conv2", photo, steps=2, octaves=2),
    "caricature": lambda m, photo, tmp: kv.caricature(m, "conv2", photo, steps=2, size=24, octaves=1),
    "figure": lambda m, photo, tmp: kv.plot.top_filters_figure(m, "conv2", photo, k=2, size=24, steps=2,
                                                               preset="fast"),
}


@pytest.mark.engine
@pytest.mark.parametrize("entry", list(LET_GO))
def test_a_model_let_go_is_collected(entry, tmp_path):
    """Extractors and compiled steps are cached on the model itself: dropping the model frees them (a
    module-level cache keyed by the model kept every model of a notebook alive)."""
    import gc
    import weakref

    from conftest import make_tiny_cnn

    photo = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype("float32")
    model = make_tiny_cnn()
    ref = weakref.ref(model)
    LET_GO[entry](model, photo, tmp_path)
    del model
    gc.collect()
    assert ref() is None


@pytest.mark.engine
def test_the_model_cache_still_reuses_compiled_steps(tiny_cnn):
    first = kv.optimize.plan(tiny_cnn, "conv2", [0], preset="fast", size=24, steps=2)
    again = kv.optimize.plan(tiny_cnn, "conv2", [1], preset="fast", size=24, steps=2)
    assert first.renderer is again.renderer


def test_a_model_file_with_custom_layers_loads_with_custom_objects(tmp_path):
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="c")(Doubler(name="double")(inputs)))
    path = str(tmp_path / "custom.keras")
    model.save(path)
    with pytest.raises(ValueError, match=r"Could not load the model file .*custom\.keras.*custom_objects="):
        kv.get_model(path)
    net = kv.as_network(path, custom_objects={"Doubler": Doubler})
    assert nets.find_layer(net, "c")[0] == "c" and nets.is_model_path(path) and not nets.is_model_path("VGG16")


class _Halver(keras.layers.Layer):
    """A custom layer whose `__init__` takes an argument but that has no `get_config`: it cannot be made again
    from its config, so the bfloat16 extractor calls the layer itself, switched to bfloat16 while it runs."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor


@pytest.mark.engine
def test_bfloat16_extractor_shares_the_weights_and_leaves_the_model_alone():
    from conftest import make_tiny_cnn

    tiny = make_tiny_cnn(seed=1)  # its own model: a weight changes below
    outer = keras.Sequential([keras.Input((None, None, 3)), _Halver(0.5), tiny])  # a nested model, a custom layer
    net = kv.as_network(outer)
    layers = ["conv1", "tiny_cnn/relu2"]  # a fused ReLU (made leaky by a wrapper) and a ReLU layer, both nested
    policies = [layer.dtype_policy.name for _, layer in nets.iter_layers(outer)]
    weights = [np.array(w) for w in outer.get_weights()]
    fp32 = nets.get_extractor(net, layers, True)
    bf16 = nets.get_extractor(net, layers, True, "bfloat16")
    assert nets.get_extractor(net, layers, True, "bfloat16") is bf16  # built once, cached on the model
    # the very same variable objects: nothing copied
    assert sorted(map(id, bf16.weights)) == sorted(map(id, fp32.weights)) and len(bf16.weights) == 4
    copies = [layer for _, layer in nets.iter_layers(bf16)]
    assert {"mixed_bfloat16"} == {c.dtype_policy.name for c in copies if c.name in ("conv1", "conv2", "conv1_preact")}
    # the custom layer: the user's own, called through the switch
    assert any(isinstance(c, nets.extractors.SwitchedPolicy) and c.layer is outer.layers[0] for c in copies)
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32")

    def outputs(extractor):
        return [keras.ops.convert_to_numpy(a) for a in extractor(x)]

    for a, b in zip(outputs(fp32), bf16(x), strict=True):
        assert "float32" in str(b.dtype)
        # bfloat16 keeps 8 significant bits: each value rounds to within 2**-8 = 0.4% (observed: <= 0.4% of the
        # largest value over two layers), so 2% of the largest value bounds the error with room for accumulation
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b), a, atol=0.02 * np.abs(a).max())
    # the user's model: the same dtype policies, the same weights
    assert [layer.dtype_policy.name for _, layer in nets.iter_layers(outer)] == policies
    for before, after in zip(weights, outer.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # a later change of the model's weights (training) is seen by the bfloat16 extractor at once
    conv2 = tiny.get_layer("conv2")
    conv2.kernel.assign(keras.ops.convert_to_numpy(conv2.kernel) * 3.0)
    for a, b in zip(outputs(fp32), outputs(bf16), strict=True):
        np.testing.assert_allclose(b, a, atol=0.02 * np.abs(a).max())
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bfloat16'"):
        nets.get_extractor(net, layers, True, "auto")


def test_field_between_counts_positions_of_the_earlier_layer(tiny_cnn):
    # conv1 (3x3) -> 2x2 max pool at stride 2 -> conv2 (3x3 at stride 2 on conv1's map): 2 + 2 * 2 = 6
    assert nets.field_between(tiny_cnn, "conv1", "conv2") == (6, 6)
    assert nets.field_between(tiny_cnn, "conv2", "relu2") == (1, 1)
    assert nets.field_between(tiny_cnn, "conv2", "conv2") == (1, 1)
    assert nets.field_between("VGG16", "block1_conv2", "block2_conv1") == (6, 6)  # a name: the structure only


def test_field_between_wants_the_earlier_layer_first(tiny_cnn):
    with pytest.raises(ValueError, match="layer_from='conv2' is not before layer_to='conv1'"):
        nets.field_between(tiny_cnn, "conv2", "conv1")


def test_no_private_name_crosses_a_module_of_the_nets_and_weights_wings():
    import ast
    import pathlib

    def private(name):
        return name.startswith("_") and not name.startswith("__")

    root = pathlib.Path(kv.__file__).parent
    crossings = []
    for path in [*root.glob("nets/*.py"), *root.glob("weights/*.py"), root / "plot_weights.py"]:
        tree = ast.parse(path.read_text())
        imported = set()  # names bound to kerasviz modules or their members
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kerasviz"):
                crossings += [f"{path.name}: {a.name}" for a in node.names if private(a.name)]
                imported |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.asname or a.name for a in node.names if a.name.startswith("kerasviz")}
        crossings += [f"{path.name}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name)
                      and node.value.id in imported]
    assert not crossings


def test_resolve_filters_clips_the_default_and_reads_an_int_as_one_filter():
    assert nets.resolve_filters(None, 8, "conv1") == list(range(8))  # the default 64, clipped to 8 channels
    assert nets.resolve_filters(None, 100, "conv") == list(range(64))
    assert nets.resolve_filters(None, 8, "conv1", default=None) == list(range(8))
    assert nets.resolve_filters(4, 8, "conv1") == [4]  # filter number 4, listed
    assert nets.resolve_filters(np.int64(4), 8, "conv1") == [4]
    assert nets.resolve_filters(range(4), 8, "conv1") == [0, 1, 2, 3]
    explicit = r"Filter 8 is out of range for layer 'conv1', which has 8 channels \(valid: 0-7\)"
    with pytest.raises(ValueError, match=explicit):
        nets.resolve_filters(8, 8, "conv1")  # what the user asked for explicitly still errors
    with pytest.raises(ValueError, match="filters is empty"):
        nets.resolve_filters([], 8, "conv1")


def test_the_default_filters_of_a_small_layer_are_all_its_channels(tiny_cnn):
    result = kv.visualize_filters(tiny_cnn, "conv1", preset="fast", size=16, steps=1, progress=False)
    assert result.filters == list(range(8))
    assert kv.visualize_filters(tiny_cnn, "conv1", 4, preset="fast", size=16, steps=1, progress=False).filters == [4]
