"""Weights and circuits: kernels, incoming channels and expanded weights on models with known weights."""

import keras
import numpy as np
import pytest

from kerasviz import nets
from kerasviz import weights as kvw


def _set(model, name, kernel, bias=None):
    layer = model.get_layer(name)
    values = [np.asarray(kernel, "float32")]
    if layer.bias is not None:
        values.append(np.zeros(kernel.shape[-1], "float32") if bias is None else np.asarray(bias, "float32"))
    layer.set_weights(values)


def _random(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def compose(k1, k2):
    """Two stride-1 convolutions (cross-correlations) in a row as one kernel: (a+b-1, a+b-1, C0, C2)."""
    a, b = k1.shape[0], k2.shape[0]
    out = np.zeros((a + b - 1, a + b - 1, k1.shape[2], k2.shape[3]), "float64")
    for p in range(a):
        for q in range(a):
            for r in range(b):
                for s in range(b):
                    out[p + r, q + s] += k1[p, q].astype("float64") @ k2[r, s].astype("float64")
    return out


@pytest.fixture(scope="module")
def chain():
    """input(2) -> conv a 3x3 (3, fused relu) -> ReLU -> conv b 3x3 (4, same), known random weights."""
    rng = np.random.default_rng(1)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="a")(inputs)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    out = keras.layers.Conv2D(4, 3, padding="same", name="b")(x)
    model = keras.Model(inputs, out, name="chain")
    k1, k2 = _random(rng, 3, 3, 2, 3), _random(rng, 3, 3, 3, 4)
    _set(model, "a", k1, _random(rng, 3))
    _set(model, "b", k2, _random(rng, 4))
    return model, k1, k2


@pytest.fixture(scope="module")
def pooled():
    """conv a 3x3 (2 -> 3) -> MaxPooling 2x2 -> conv b 3x3 valid (3 -> 2)."""
    rng = np.random.default_rng(2)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="a")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    out = keras.layers.Conv2D(2, 3, padding="valid", name="b")(x)
    model = keras.Model(inputs, out, name="pooled")
    k1, k2 = _random(rng, 3, 3, 2, 3), _random(rng, 3, 3, 3, 2)
    _set(model, "a", k1)
    _set(model, "b", k2)
    return model, k1, k2


# ---------------------------------------------------------------------------------------- kernels


def test_kernels_returns_the_weights_that_were_set(chain):
    model, k1, _ = chain
    kernel, bias = kvw.kernels(model, "a")
    np.testing.assert_array_equal(kernel, k1)
    np.testing.assert_array_equal(bias, model.get_layer("a").get_weights()[1])
    assert kernel.dtype == np.float32 and bias.shape == (3,)


def test_kernels_without_bias_gives_zero_bias():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(5, 3, use_bias=False, name="c")(inputs))
    kernel, bias = kvw.kernels(model, "c")
    assert kernel.shape == (3, 3, 3, 5)
    np.testing.assert_array_equal(bias, np.zeros(5, "float32"))


@pytest.mark.parametrize(
    "layer, error",
    [
        ("pool1", "layer='pool1' is a MaxPooling2D layer of tiny_cnn, not a convolution: kernels need a Conv2D "
                  "layer. Nearest Conv2D layers: 'conv1' \\(before\\), 'conv2' \\(after\\)."),
        ("predictions", "'predictions' is a Dense layer.*Nearest Conv2D layers: 'conv2' \\(before\\)."),
        ("conv3", "Layer 'conv3' not found in tiny_cnn. Did you mean"),
    ],
)
def test_kernels_of_a_layer_that_is_not_a_conv_is_an_error(tiny_cnn, layer, error):
    with pytest.raises(ValueError, match=error):
        kvw.kernels(tiny_cnn, layer)


def test_filter_kernel_checks_the_filter(tiny_cnn):
    kernel = kvw.kernels(tiny_cnn, "conv2")[0]
    np.testing.assert_array_equal(kvw.filter_kernel(tiny_cnn, "conv2", 15), kernel[..., 15])
    expected = r"Filter 16 is out of range for layer 'conv2', which has 16 channels \(valid: 0-15\)"
    with pytest.raises(ValueError, match=expected):
        kvw.filter_kernel(tiny_cnn, "conv2", 16)
    with pytest.raises(ValueError, match="Filter -1 is out of range"):
        kvw.filter_kernel(tiny_cnn, "conv2", -1)
    with pytest.raises(TypeError, match="filter must be an int. Received: filter=1.5"):
        kvw.filter_kernel(tiny_cnn, "conv2", 1.5)


def test_first_conv_layer_is_the_first_kernel_layer(tiny_cnn):
    assert nets.conv_layers(tiny_cnn, types=kvw.KERNEL_TYPES) == ["conv1", "conv2"]
    assert kvw.first_conv_layer(tiny_cnn) == "conv1"
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="has no Conv2D layer"):
        kvw.first_conv_layer(keras.Model(inputs, keras.layers.Dense(2)(inputs), name="mlp"))


def test_normalize_kernels_scales_each_filter_on_its_own():
    kernel = np.zeros((2, 2, 3, 3), "float32")
    kernel[..., 0] = np.arange(12).reshape(2, 2, 3)  # 0..11
    kernel[..., 1] = -5.0 * np.arange(12).reshape(2, 2, 3)
    kernel[..., 2] = 7.0  # constant
    tiles = kvw.normalize_kernels(kernel)
    assert tiles.shape == (3, 2, 2, 3)
    np.testing.assert_allclose(tiles[0], np.arange(12).reshape(2, 2, 3) / 11)
    np.testing.assert_allclose(tiles[1], 1 - np.arange(12).reshape(2, 2, 3) / 11)
    np.testing.assert_array_equal(tiles[2], 0.5)


def test_first_layer_kernels_image_is_a_grid_of_normalized_kernels(tiny_cnn):
    image = kvw.first_layer_kernels_image(tiny_cnn, scale=4, margin=1)
    # 8 kernels of 3x3 taps, 4 px per tap: a 3x3 grid of 12 px tiles with 1 px margins
    assert image.shape == (3 * 12 + 2, 3 * 12 + 2, 3) and image.dtype == np.uint8
    tile = image[:12, :12]
    expected = kvw.normalize_kernels(kvw.kernels(tiny_cnn, "conv1")[0])[0]
    np.testing.assert_array_equal(tile[::4, ::4], np.round(expected * 255).astype("uint8"))
    assert tile.min() == 0 and tile.max() == 255


def test_first_layer_kernels_image_shows_bgr_models_in_rgb(hed_vgg16):
    image = kvw.first_layer_kernels_image(hed_vgg16, scale=1, margin=1)
    kernel = kvw.kernels(hed_vgg16, "block1_conv1")[0]
    expected = kvw.normalize_kernels(kernel)[0][..., ::-1]  # VGG16 reads BGR
    np.testing.assert_array_equal(image[:3, :3], np.round(expected * 255).astype("uint8"))


def test_first_layer_kernels_image_needs_a_layer_that_reads_the_image(tiny_cnn):
    with pytest.raises(ValueError, match="layer='conv2' has 8 input channels.*e.g. 'conv1'"):
        kvw.first_layer_kernels_image(tiny_cnn, "conv2")
    with pytest.raises(ValueError, match="scale must be an int >= 1"):
        kvw.first_layer_kernels_image(tiny_cnn, scale=0)


# ---------------------------------------------------------------------------------------- incoming channels


def test_top_inputs_ranks_input_channels_by_kernel_slice_norm(tiny_cnn):
    kernel = np.zeros((3, 3, 8, 16), "float32")
    for c in range(8):
        kernel[1, 1, c, 5] = (c - 3.5) * (1 if c % 2 else -1)  # norms |c - 3.5|: 0 and 7 largest
    kernel[0, 0, 2, 5] = 10.0  # channel 2: sqrt(1.5^2 + 10^2), the strongest
    model = keras.models.clone_model(tiny_cnn)
    _set(model, "conv2", kernel)
    top = kvw.top_inputs(model, "conv2", 5, k=3)
    assert top.input_layer == "conv1"  # looks through pool1 (and conv1's fused ReLU)
    assert not top.from_image
    assert top.layer == "conv2" and top.filter == 5 and len(top) == 3
    np.testing.assert_array_equal(top.channels, [2, 0, 7])
    np.testing.assert_allclose(top.norms, [np.hypot(1.5, 10.0), 3.5, 3.5], rtol=1e-6)
    np.testing.assert_array_equal(top.slices[0], kernel[:, :, 2, 5])
    assert top.all_norms.shape == (8,)


def test_top_inputs_caps_k_at_the_input_channels_and_checks_arguments(tiny_cnn):
    assert len(kvw.top_inputs(tiny_cnn, "conv2", 0, k=100)) == 8
    with pytest.raises(ValueError, match="k must be an int >= 1. Received: k=0"):
        kvw.top_inputs(tiny_cnn, "conv2", 0, k=0)
    with pytest.raises(ValueError, match="Filter 16 is out of range"):
        kvw.top_inputs(tiny_cnn, "conv2", 16)
    with pytest.raises(ValueError, match="not a convolution"):
        kvw.top_inputs(tiny_cnn, "relu2", 0)


def test_top_inputs_of_a_first_layer_reads_the_image(tiny_cnn):
    top = kvw.top_inputs(tiny_cnn, "conv1", 0, k=3)
    assert top.from_image
    assert top.input_layer == tiny_cnn.layers[0].name
    assert sorted(top.channels.tolist()) == [0, 1, 2]


def test_top_inputs_agree_with_numpy_on_vgg16(hed_vgg16):
    top = kvw.top_inputs(hed_vgg16, "block2_conv1", 0, k=6)
    kernel = hed_vgg16.model.get_layer("block2_conv1").get_weights()[0]
    norms = np.linalg.norm(kernel[:, :, :, 0].reshape(9, 64), axis=0)
    assert top.input_layer == "block1_conv2"  # through block1_pool
    np.testing.assert_array_equal(top.channels, np.argsort(-norms)[:6])
    np.testing.assert_allclose(top.norms, np.sort(norms)[::-1][:6], rtol=1e-5)


def test_input_layer_of_stops_at_a_merge():
    inputs = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="b")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="act")(x)
    out = keras.layers.Conv2D(2, 3, name="c")(x)
    model = keras.Model(inputs, out)
    assert kvw.input_layer_of(model, "c") == ("add", False)
    assert kvw.top_inputs(model, "c", 1).input_layer == "add"


# ---------------------------------------------------------------------------------------- expanded weights


def test_expanded_weights_of_two_convs_are_their_composed_kernel(chain):
    model, k1, k2 = chain
    first = model.layers[0].name  # the input: expanded weights from the image to conv b
    full = kvw.expanded_weights(model, first, "b", size=None)
    np.testing.assert_allclose(full, compose(k1, k2), rtol=1e-5, atol=1e-5)  # ReLUs, biases, dropout: gone
    assert nets.field_between(model, first, "b") == (5, 5)


def test_expanded_weights_crop_and_pad_around_the_centre(chain):
    model, k1, k2 = chain
    first = model.layers[0].name
    reference = compose(k1, k2)
    np.testing.assert_allclose(kvw.expanded_weights(model, first, "b", size=3), reference[1:4, 1:4], atol=1e-5)
    padded = kvw.expanded_weights(model, first, "b", size=7)
    assert padded.shape == (7, 7, 2, 4)
    np.testing.assert_allclose(padded[1:6, 1:6], reference, atol=1e-5)
    assert not padded[0].any() and not padded[:, 6].any()


def test_expanded_weights_of_adjacent_convs_are_the_kernel(chain):
    model, _, k2 = chain
    np.testing.assert_allclose(kvw.expanded_weights(model, "a", "b", size=3), k2, atol=1e-6)
    np.testing.assert_allclose(kvw.expanded_weights(model, "relu", "b", size=3), k2, atol=1e-6)


def test_expanded_weights_replace_max_pooling_by_average_pooling(pooled):
    model, k1, k2 = pooled
    first = model.layers[0].name
    full = kvw.expanded_weights(model, first, "b", size=None)
    # conv a (3) at stride 1, 2x2 average at stride 2, conv b (3) at stride 2: 1 + 2 + 1 + 2 * 2 = 8
    assert full.shape == (8, 8, 2, 2)
    reference = np.zeros_like(full, dtype="float64")
    for r in range(3):
        for s in range(3):
            for u in range(2):
                for v in range(2):
                    for p in range(3):
                        for q in range(3):
                            reference[2 * r + u + p, 2 * s + v + q] += k1[p, q] @ k2[r, s] / 4.0
    np.testing.assert_allclose(full, reference, atol=1e-5)
    # centre convention: field index (8 - 1) // 2 = 3 lands at index size // 2
    np.testing.assert_allclose(kvw.expanded_weights(model, first, "b", size=5), reference[1:6, 1:6], atol=1e-5)


def test_expanded_weights_keep_the_batch_norm_scale():
    rng = np.random.default_rng(3)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(3, 1, name="a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Conv2D(1, 1, use_bias=False, name="b")(x)
    model = keras.Model(inputs, out)
    gamma, beta = np.array([1.0, 2.0, -1.0], "f"), np.ones(3, "f")
    mean, var = np.array([5.0, 5.0, 5.0], "f"), np.array([4.0, 1.0, 0.25], "f")
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    k2 = _random(rng, 1, 1, 3, 1)
    _set(model, "b", k2)
    eps = model.get_layer("bn").epsilon
    w = kvw.expanded_weights(model, "a", "b", size=1)
    np.testing.assert_allclose(w[0, 0, :, 0], k2[0, 0, :, 0] * gamma / np.sqrt(var + eps), rtol=1e-5)


def test_expanded_weights_between_vgg16_blocks(hed_vgg16):
    w = kvw.expanded_weights(hed_vgg16, "block1_conv2", "block2_conv1", size=5)
    assert w.shape == (5, 5, 64, 128) and w.dtype == np.float32
    assert nets.field_between(hed_vgg16, "block1_conv2", "block2_conv1") == (6, 6)
    some = kvw.expanded_weights(hed_vgg16, "block1_conv2", "block2_conv1", size=5, filters=[7, 0], batch_size=1)
    np.testing.assert_allclose(some, w[..., [7, 0]], atol=1e-6)
    # a 2x2 average then a 3x3 kernel at stride 2: every expanded weight is a quarter of a kernel tap
    kernel = kvw.kernels(hed_vgg16, "block2_conv1")[0]
    full = kvw.expanded_weights(hed_vgg16, "block1_conv2", "block2_conv1", size=None, filters=[0])
    np.testing.assert_allclose(full[::2, ::2, :, 0], kernel[..., 0] / 4, atol=1e-6)


@pytest.mark.parametrize(
    "layer_from, layer_to, error",
    [
        ("b", "a", "layer_from='b' is not before layer_to='a'"),
        ("a", "a", "layer_from and layer_to are the same layer"),
        ("a", "nope", "Layer 'nope' not found"),
    ],
)
def test_expanded_weights_need_an_earlier_and_a_later_layer(chain, layer_from, layer_to, error):
    with pytest.raises(ValueError, match=error):
        kvw.expanded_weights(chain[0], layer_from, layer_to)


def test_expanded_weights_reject_branches_unsupported_layers_and_bad_sizes(chain, tiny_cnn):
    inputs = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    x = keras.layers.Add(name="add")([a, keras.layers.Conv2D(4, 1, name="skip")(a)])
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(x))
    with pytest.raises(ValueError, match="'add' \\(Add\\) between 'a' and 'c' has 2 inputs"):
        kvw.expanded_weights(model, "a", "c")
    with pytest.raises(ValueError, match="cannot linearize layer 'gap' \\(GlobalAveragePooling2D\\)"):
        kvw.expanded_weights(tiny_cnn, "conv1", "predictions")
    with pytest.raises(ValueError, match="size must be an int >= 1 or None"):
        kvw.expanded_weights(chain[0], "a", "b", size=0)
    with pytest.raises(ValueError, match="Filter 4 is out of range for layer 'b'"):
        kvw.expanded_weights(chain[0], "a", "b", filters=[0, 4])


def test_top_expanded_ranks_earlier_channels_by_expanded_weight_norm(pooled):
    model, _, _ = pooled
    w = kvw.expanded_weights(model, model.layers[0].name, "b", size=5)[..., 1]
    norms = np.sqrt((w**2).sum(axis=(0, 1)))
    top = kvw.top_expanded(model, model.layers[0].name, "b", 1, k=2, size=5)
    np.testing.assert_array_equal(top.channels, np.argsort(-norms)[:2])
    np.testing.assert_allclose(top.norms, np.sort(norms)[::-1][:2], rtol=1e-5)
    assert top.slices.shape == (2, 5, 5) and top.input_layer == model.layers[0].name


def test_expanded_weights_in_a_nested_model(chain):
    model, _, k2 = chain
    inputs = keras.Input((None, None, 2))
    outer = keras.Model(inputs, keras.layers.ReLU(name="head")(model(inputs)), name="outer")
    path, _ = nets.find_layer(outer, "b")
    assert path == "chain/b"
    np.testing.assert_allclose(kvw.expanded_weights(outer, "chain/a", "chain/b", size=3), k2, atol=1e-6)
    assert kvw.top_inputs(outer, "b", 0).input_layer == "chain/a"


def _impulse_expanded(model, size, c_from, hw=15):
    """Expanded weights read off a linear stride-1 model's impulse responses: an impulse in channel i at
    offset d from the centre moves output channel j at the centre by w[d, i, j]."""
    c, r = hw // 2, size // 2
    batch = np.zeros((size * size * c_from, hw, hw, c_from), "float32")
    index = 0
    for dy in range(size):
        for dx in range(size):
            for i in range(c_from):
                batch[index, c + dy - r, c + dx - r, i] = 1.0
                index += 1
    out = keras.ops.convert_to_numpy(model(batch))[:, c, c, :]
    return out.reshape(size, size, c_from, -1)


@pytest.mark.parametrize(
    "middle",
    [
        lambda: keras.layers.Conv2D(3, 3, dilation_rate=2, padding="same", use_bias=False, name="m"),
        lambda: keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="m"),
        lambda: keras.layers.SeparableConv2D(3, 3, padding="same", use_bias=False, name="m"),
        lambda: keras.layers.ZeroPadding2D(0, name="m"),
    ],
    ids=["dilated", "depthwise", "separable", "padding"],
)
def test_expanded_weights_equal_the_impulse_response_of_a_linear_model(middle):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name="a")(inputs)
    x = middle()(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name="b")(x)
    model = keras.Model(inputs, out)
    bn = model.get_layer("bn")
    channels = bn.gamma.shape[0]
    bn.set_weights([np.linspace(0.5, 2, channels), np.zeros(channels), np.zeros(channels), np.linspace(1, 3, channels)])
    expanded = kvw.expanded_weights(model, model.layers[0].name, "b", size=7)  # from the input, through a
    np.testing.assert_allclose(expanded, _impulse_expanded(model, 7, 2), atol=1e-5)


def test_each_name_has_one_home_across_the_nets_and_weights_wings():
    assert not set(kvw.__all__) & set(nets.__all__)  # e.g. field_between and conv_layers live in nets only
    assert not hasattr(kvw, "receptive_field")  # kv.receptive_field: input pixels; field_between: positions


def test_expanded_weights_of_an_int_filter_is_that_one_filter(chain):
    """`filters=1` is filter 1 (one column), the same as `[1]`, not `range(1)`."""
    model = chain[0]
    one = kvw.expanded_weights(model, "a", "b", size=3, filters=1)
    assert one.shape[-1] == 1
    np.testing.assert_array_equal(one, kvw.expanded_weights(model, "a", "b", size=3, filters=[1]))
    assert kvw.expanded_weights(model, "a", "b", size=3, filters="all").shape[-1] == model.get_layer("b").filters
    with pytest.raises(ValueError, match=r"Filter 9 is out of range for layer 'b'.*\(valid: 0-"):
        kvw.expanded_weights(model, "a", "b", filters=9)
