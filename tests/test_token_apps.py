"""Token layers (a vision transformer's `(batch, tokens, channels)`) in the apps: top filters, feature maps,
heatmaps, dataset examples and circuits read the patch grid, and leave the class token out unless asked.

The ViT here is written with plain Keras layers (patch 4, 32 x 32 input, 2 blocks, a class token in front of
the 8 x 8 patch tokens). `planted_vit` has weights set by hand: channel 0 of the patch embedding is a patch's
mean brightness, attention and the MLP's output add nothing, and the class token holds 5 in channel 3, so
every block output is the patch embedding and a bright patch is where channel 0 fires.
"""

import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz import analysis, plot, plot_weights
from kerasviz import weights as kvw
from kerasviz.cli.main import main

PATCH, SIZE, DIM, HIDDEN, BLOCKS = 4, 32, 16, 32, 2
GRID = SIZE // PATCH
CLASS_CHANNEL, CLASS_VALUE = 3, 5.0


@keras.saving.register_keras_serializable(package="test_token_apps")
class ClassToken(keras.layers.Layer):
    """Puts a learned class token in front of the patch tokens."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros", name="token")

    def call(self, x):
        token = keras.ops.broadcast_to(keras.ops.cast(self.token, x.dtype), (keras.ops.shape(x)[0], 1, x.shape[-1]))
        return keras.ops.concatenate([token, x], axis=1)


@keras.saving.register_keras_serializable(package="test_token_apps")
class PositionEmbedding(keras.layers.Layer):
    def build(self, input_shape):
        self.embedding = self.add_weight(shape=(1, *input_shape[1:]), initializer="zeros", name="embedding")

    def call(self, x):
        return x + keras.ops.cast(self.embedding, x.dtype)


@keras.saving.register_keras_serializable(package="test_token_apps")
class FirstToken(keras.layers.Layer):
    def call(self, x):
        return x[:, 0]


def make_vit(seed: int = 0, classes: int = 4) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(DIM, PATCH, strides=PATCH, name="patch_embed")(inputs)
    x = keras.layers.Reshape((GRID * GRID, DIM), name="patch_tokens")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position")(x)
    for i in range(BLOCKS):
        y = keras.layers.LayerNormalization(name=f"block{i}_ln1")(x)
        y = keras.layers.MultiHeadAttention(2, DIM // 2, name=f"block{i}_attn")(y, y)
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
        y = keras.layers.LayerNormalization(name=f"block{i}_ln2")(x)
        y = keras.layers.Dense(HIDDEN, activation="gelu", name=f"block{i}_mlp_hidden")(y)
        y = keras.layers.Dense(DIM, name=f"block{i}_mlp_out")(y)
        x = keras.layers.Add(name=f"block{i}_out")([x, y])
    x = keras.layers.LayerNormalization(name="final_ln")(x)
    x = FirstToken(name="class_out")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_vit")


def _zero(layer) -> None:
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


@pytest.fixture(scope="module")
def planted_vit():
    model = make_vit(seed=1)
    kernel = np.zeros((PATCH, PATCH, 3, DIM), "float32")
    kernel[..., 0] = 1.0 / (PATCH * PATCH * 3)  # channel 0: the patch's mean brightness
    model.get_layer("patch_embed").set_weights([kernel, np.zeros(DIM, "float32")])
    token = np.zeros((1, 1, DIM), "float32")
    token[..., CLASS_CHANNEL] = CLASS_VALUE
    model.get_layer("class_token").set_weights([token])
    for i in range(BLOCKS):
        _zero(model.get_layer(f"block{i}_attn"))
        _zero(model.get_layer(f"block{i}_mlp_out"))
        hidden = np.zeros((DIM, HIDDEN), "float32")
        hidden[0, 0] = 1.0  # hidden unit 0 reads channel 0 (after the layer norm)
        model.get_layer(f"block{i}_mlp_hidden").set_weights([hidden, np.zeros(HIDDEN, "float32")])
    return model


def _planted(row: int, col: int, brightness: float = 1.0) -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3), "float32")
    image[row * PATCH : (row + 1) * PATCH, col * PATCH : (col + 1) * PATCH] = brightness
    return image


def _peak(heat: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape))


@pytest.mark.parametrize("layer", ["block1_out", "block0_mlp_hidden", "block1_mlp_hidden", "position"])
def test_heatmap_of_a_token_layer_peaks_on_the_planted_patch(planted_vit, layer):
    heat = kv.heatmap(planted_vit, layer, 0, _planted(5, 2), weights=None)
    assert heat.shape == (SIZE, SIZE)
    top, left = _peak(heat)
    assert 5 * PATCH <= top < 6 * PATCH and 2 * PATCH <= left < 3 * PATCH


def test_spatial_maps_of_a_token_layer_are_the_patch_grid_without_the_class_token(planted_vit):
    act = kv.activations(planted_vit, "block1_out", _planted(6, 1), weights=None)["block1_out"]
    assert act.shape == (1 + GRID * GRID, DIM)  # activations: the layer's own tokens, class token first
    grid = analysis.check_spatial_map(act, "block1_out")
    assert grid.shape == (GRID, GRID, DIM)
    assert np.unravel_index(int(np.argmax(grid[..., 0])), grid.shape[:2]) == (6, 1)
    assert float(np.abs(grid[..., CLASS_CHANNEL]).max()) == 0.0  # the class token's 5 is not in the map
    heat = kv.heatmap(planted_vit, "block1_out", CLASS_CHANNEL, _planted(6, 1), weights=None)
    assert float(np.abs(heat).max()) == 0.0


def test_top_filters_read_the_patch_tokens_and_the_class_token_when_asked(planted_vit):
    image = _planted(3, 3)
    patches = kv.top_filters(planted_vit, "block1_out", image, k=2, weights=None)
    assert patches.indices[0] == 0 and patches.values[0] == pytest.approx(1.0 / (GRID * GRID), rel=1e-4)
    assert CLASS_CHANNEL not in patches.indices[:1]
    cls = kv.top_filters(planted_vit, "block1_out", image, k=1, tokens="class", weights=None)
    assert cls.indices[0] == CLASS_CHANNEL and cls.values[0] == pytest.approx(CLASS_VALUE)
    every = kv.top_filters(planted_vit, "block1_out", image, k=1, tokens="all", weights=None)
    assert every.indices[0] == CLASS_CHANNEL and every.values[0] == pytest.approx(CLASS_VALUE / (1 + GRID * GRID))
    means = kv.mean_activations(planted_vit, "block1_out", image, weights=None)
    np.testing.assert_allclose(means[0], 1.0 / (GRID * GRID), rtol=1e-4)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda m, x: kv.heatmap(m, "class_out", 0, x, weights=None),
         r"Layer 'class_out' outputs shape \(16,\) per image, with no spatial map or token grid"),
        (lambda m, x: plot.feature_maps_figure(m, "class_out", x, weights=None), "no spatial map or token grid"),
        (lambda m, x: kv.heatmap(m, "block1_out", 0, x, weights=None, extra_tokens=2),
         "Layer 'block1_out': extra_tokens=2 leaves 63 of the layer's 65 tokens, which form no grid"),
        (lambda m, x: kv.top_filters(m, "patch_tokens", x, tokens="class", weights=None),
         "tokens='class' needs a class token; the 64 tokens of layer 'patch_tokens' are all patches"),
        (lambda m, x: kv.top_filters(m, "patch_embed", x, tokens="class", weights=None),
         "tokens='class' needs a token layer"),
        (lambda m, x: kv.top_filters(m, "block1_out", x, tokens="cls", weights=None),
         "tokens must be one of 'patches', 'all', 'class'.*Received: tokens='cls'"),
        (lambda m, x: kv.dataset_examples(m, "block1_out", x[None], tokens="all", weights=None),
         r"tokens must be one of \('patches', 'class'\) for dataset examples"),
        (lambda m, x: kv.dataset_examples(m, "patch_tokens", x[None], tokens="class", weights=None),
         "tokens='class' needs a class token"),
    ],
)
def test_token_errors_say_what_is_needed(planted_vit, call, error):
    with pytest.raises(ValueError, match=error):
        call(planted_vit, _planted(0, 0))


def test_a_token_layer_without_a_class_token_is_a_grid_too(planted_vit):
    heat = kv.heatmap(planted_vit, "patch_tokens", 0, _planted(7, 7), weights=None)
    assert _peak(heat)[0] >= 7 * PATCH and _peak(heat)[1] >= 7 * PATCH


def test_dataset_examples_of_a_token_layer_crop_the_patch_that_fires(planted_vit):
    spots = [(0, 0), (2, 5), (7, 7), (4, 1), (6, 3)]
    brightness = [0.3, 0.9, 0.5, 0.7, 0.4]
    data = np.stack([_planted(r, c, b) for (r, c), b in zip(spots, brightness, strict=True)])
    ex = kv.dataset_examples(planted_vit, "block1_out", data, k=3, filters=[0], batch_size=2, weights=None)
    assert list(ex.ids[0]) == [1, 3, 2]  # brightest patch first
    assert [tuple(p) for p in ex.positions[0]] == [spots[1], spots[3], spots[2]]
    np.testing.assert_allclose(ex.centers[0, 0], [2 * PATCH + 1.5, 5 * PATCH + 1.5])
    window = 3 * PATCH  # the patch in the middle of 3 x 3 patches
    assert ex.crops.shape == (1, 3, window, window, 3)
    bright = kv.to_uint8(data[1])[2 * PATCH, 5 * PATCH]  # the planted patch's pixel value
    assert (ex.crops[0, 0, PATCH : 2 * PATCH, PATCH : 2 * PATCH] == bright).all() and bright.min() > 200
    assert (ex.crops[0, 0, :PATCH] == 0).all()  # the patches around it are black
    corner = ex.crops[0, 2]  # patch (7, 7): the window reaches past the image, filled with gray
    assert (corner[2 * PATCH :, :] == 128).all() and (corner[PATCH : 2 * PATCH, PATCH : 2 * PATCH] == 128).all()
    assert ex.receptive_field.jump == (PATCH, PATCH) and ex.receptive_field.mixed  # after attention
    before = kv.dataset_examples(planted_vit, "position", data, k=1, filters=[0], weights=None)
    assert before.ids[0, 0] == 1 and not before.receptive_field.mixed  # before attention: the patch is all it sees

    cls = kv.dataset_examples(planted_vit, "block1_out", data, k=2, filters=[CLASS_CHANNEL], tokens="class",
                              weights=None)
    assert cls.crops.shape == (1, 2, SIZE, SIZE, 3) and (cls.positions == -1).all()
    np.testing.assert_allclose(cls.scores, CLASS_VALUE)
    assert cls.receptive_field is None


def test_feature_maps_and_heatmap_figures_of_a_token_layer(planted_vit):
    fig = plot.feature_maps_figure(planted_vit, "block1_mlp_hidden", _planted(2, 6), filters=range(4), weights=None)
    assert fig.axes[0].get_title() == f"block1_mlp_hidden: 4 feature maps ({GRID}x{GRID})"
    fig = plot.heatmap_figure(planted_vit, "block1_out", 0, _planted(2, 6), weights=None)
    assert fig.axes[1].images[1].get_array().shape == (SIZE, SIZE)


def test_command_line_maps_and_heatmap_of_a_token_layer(planted_vit, tmp_path, capsys):
    path = str(tmp_path / "vit.keras")
    planted_vit.save(path)
    image = str(tmp_path / "spot.png")
    kv.save_image(_planted(4, 4), image)
    heat = str(tmp_path / "h.png")
    assert main(["heatmap", path, "block1_out", "0", image, "--extra-tokens", "1", "--out", heat]) == 0
    assert main(["maps", path, "block1_mlp_hidden", image, "--filters", "0-3", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "h.png").exists() and (tmp_path / "m.png").exists()
    capsys.readouterr()
    assert main(["maps", path, "class_out", image, "--out", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert "Layer 'class_out' outputs shape (16,) per image, with no spatial map or token grid" in error


@pytest.fixture(scope="module")
def mlp_vit():
    model = make_vit(seed=2)
    layer = model.get_layer("block1_mlp_out")
    kernel, bias = layer.get_weights()
    kernel[:, 2] = 0.1
    kernel[5, 2], kernel[9, 2] = 3.0, -2.0  # hidden unit 5 excites output channel 2 most, unit 9 inhibits it
    layer.set_weights([kernel, bias])
    return model


def test_top_inputs_of_a_dense_layer_are_the_mlp_hidden_units_that_feed_a_channel(mlp_vit):
    top = kv.top_inputs(mlp_vit, "block1_mlp_out", 2, k=2, weights=None)
    assert top.input_layer == "block1_mlp_hidden" and not top.from_image
    assert list(top.channels) == [5, 9]
    np.testing.assert_allclose(top.norms, [3.0, 2.0])
    np.testing.assert_allclose(top.slices[:, 0, 0], [3.0, -2.0])  # the weights themselves, with their signs
    assert top.all_norms.shape == (HIDDEN,)
    first = kv.top_inputs(mlp_vit, "block0_mlp_hidden", 0, k=3, weights=None)
    assert first.input_layer == "block0_add"  # the residual stream, through the layer norm
    with pytest.raises(ValueError, match="'block0_ln2' is a LayerNormalization layer of tiny_vit, not a "
                                         "convolution or dense layer.*'block0_mlp_hidden' \\(after\\)"):
        kvw.top_inputs(mlp_vit, "block0_ln2", 0)
    with pytest.raises(ValueError, match="not a convolution: kernels need a Conv2D layer"):
        kvw.kernels(mlp_vit, "block1_mlp_out")  # kernel pictures stay Conv2D-only
    with pytest.raises(ValueError, match=r"A Dense layer's kernel connects channels directly: "
                                         r"kv.top_inputs\(model, 'block0_mlp_out', filter\)"):
        kvw.expanded_weights(mlp_vit, "block0_mlp_hidden", "block0_mlp_out")


def test_circuit_figure_of_a_dense_layer_pictures_the_mlp_hidden_units(mlp_vit):
    fig = plot_weights.circuit_figure(mlp_vit, "block1_mlp_out", 2, k=2, preset="fast", steps=2, weights=None)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"block1_mlp_out\nfilter 2", "block1_mlp_hidden\n5", "block1_mlp_hidden\n9"} <= set(titles)


def test_top_filters_figure_ranks_by_the_class_token_when_asked(planted_vit):
    pictures = kv.Result(images=np.zeros((2, 8, 8, 3), "uint8"), scores=np.zeros(2), history=np.zeros((2, 1)),
                         filters=[CLASS_CHANNEL, 0], layer="block1_out", raw=np.zeros((2, 8, 8, 3)), settings={})
    fig = plot.top_filters_figure(planted_vit, "block1_out", _planted(1, 1), k=2, tokens="class",
                                  visualizations=pictures, weights=None)  # tokens= is a run option here
    assert fig.axes[2].get_title() == f"filter {CLASS_CHANNEL} (5)"


def test_keras_hub_vit_and_dinov2_work_in_the_apps_through_their_inner_paths():
    import keras_hub
    backbone = keras_hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=PATCH, num_layers=1, num_heads=2,
                                            hidden_dim=DIM, mlp_dim=HIDDEN)
    mlp = "vit_encoder/transformer_block_1/mlp"
    top = kv.top_inputs(backbone, f"{mlp}/dense_2", 0, k=3, weights=None)
    assert top.input_layer == f"{mlp}/dense_1" and top.all_norms.shape == (HIDDEN,)  # no graph: the MLP's first Dense
    with pytest.raises(ValueError, match="sits inside the subclassed layer .* no Dense layer before it"):
        kv.top_inputs(backbone, f"{mlp}/dense_1", 0, weights=None)
    assert kv.heatmap(backbone, f"{mlp}/dense_1", 0, _planted(1, 2), weights=None).shape == (SIZE, SIZE)
    ex = kv.dataset_examples(backbone, "vit_encoder/transformer_block_1", np.stack([_planted(1, 2), _planted(3, 3)]),
                             k=1, filters=[0, 1], weights=None)
    assert ex.crops.shape == (2, 1, 3 * PATCH, 3 * PATCH, 3)
    dino = keras_hub.models.DINOV2Backbone(patch_size=PATCH, num_layers=1, hidden_dim=DIM, num_heads=2,
                                           intermediate_dim=HIDDEN, num_register_tokens=4, image_shape=(SIZE, SIZE, 3),
                                           position_embedding_shape=(SIZE, SIZE, 3))
    act = kv.activations(dino, "encoder/layers_0", _planted(0, 0), weights=None)["encoder/layers_0"]
    assert act.shape == (1 + 4 + GRID * GRID, DIM)  # a class token and 4 registers before the patches
    assert analysis.check_spatial_map(act, "encoder/layers_0").shape == (GRID, GRID, DIM)
    np.testing.assert_allclose(kv.top_filters(dino, "encoder/layers_0", _planted(0, 0), k=1, tokens="class",
                                              weights=None).values, act[0].max(), rtol=1e-5)
    assert kv.top_inputs(dino, "encoder/layers_0/mlp/fc2", 0, weights=None).input_layer == "encoder/layers_0/mlp/fc1"
