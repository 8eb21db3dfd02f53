"""Token layers: the patch grid (detected or told), the channel and neuron objectives on tokens, the layers worth a
picture in a ViT, the layers inside KerasHub's encoders, a token's receptive field, the fixed input size."""

import keras
import numpy as np
import pytest
from transformer_models import tiny_vit

import kerasviz as kv
from kerasviz import cli
from kerasviz.engine import objectives
from kerasviz.nets.tokens import TokenGrid


@pytest.mark.parametrize("shape, image, extra, expected", [
    ((None, 197, 768), (224, 224), None, TokenGrid(14, 14, 1)),  # ViT-B/16: a class token
    ((None, 201, 384), (224, 224), None, TokenGrid(14, 14, 5)),  # DINOv2 with 4 registers
    ((None, 196, 768), (224, 224), None, TokenGrid(14, 14, 0)),  # no class token
    ((None, 99, 8), (224, 112), None, TokenGrid(14, 7, 1)),  # a tall image
    ((None, 65, 8), (22, 22), None, TokenGrid(8, 8, 1)),  # an octave smaller than the model: the same grid
    ((None, 65, 8), None, None, TokenGrid(8, 8, 1)),
    ((None, 65, 8), (32, 32), 1, TokenGrid(8, 8, 1)),
    ((None, 8, 8, 16), (32, 32), None, None),  # a map, not tokens
    ((None, 16), None, None, None),
])
def test_token_grid(shape, image, extra, expected):
    assert kv.nets.token_grid(shape, image, extra_tokens=extra) == expected


@pytest.mark.parametrize("extra, message", [(2, "form no grid"), (-1, "int >= 0"), (1.0, "int >= 0")])
def test_token_grid_refuses_a_bad_extra_tokens(extra, message):
    with pytest.raises(ValueError, match=message):
        kv.nets.token_grid((None, 65, 8), (32, 32), extra_tokens=extra)


def test_to_grid_keeps_row_major_patches_on_numpy_and_tensors():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    grid = TokenGrid(2, 2, extra=1)
    on_grid = kv.nets.to_grid(x, grid)
    assert isinstance(on_grid, np.ndarray) and on_grid.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(on_grid[:, 1, 0], x[:, grid.position(1, 0)])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kv.nets.to_grid(keras.ops.convert_to_tensor(x), grid)),
                                  on_grid)
    np.testing.assert_array_equal(kv.nets.extra_tokens(x, grid), x[:, :1])


@pytest.fixture(scope="module")
def vit():
    return tiny_vit(blocks=2, dim=16, mlp=32)


def _context(acts, size=32):
    return objectives.Context(acts=acts, images=np.zeros((acts["t"].shape[0], size, size, 3), "float32"),
                              filters=keras.ops.convert_to_tensor(np.zeros(acts["t"].shape[0], "int32")))


@pytest.mark.engine
@pytest.mark.parametrize("tokens, expected", [("patches", 1.0), ("all", (64 + 100) / 65), ("class", 100.0)])
def test_channel_on_tokens_averages_the_patches_and_leaves_the_class_token_out(tokens, expected):
    acts = np.ones((1, 65, 2), "float32")
    acts[:, 0] = 100.0  # the class token
    score = objectives.channel("t", 0, tokens=tokens)(_context({"t": acts}))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(score), [expected], rtol=1e-6)


@pytest.mark.engine
def test_neuron_on_tokens_addresses_a_patch_of_the_grid():
    acts = np.zeros((1, 65, 2), "float32")
    acts[0, TokenGrid(8, 8, 1).position(2, 5), 1] = 7.0  # row 2, column 5
    score = objectives.neuron("t", 1, x=5, y=2)(_context({"t": acts}))
    assert float(keras.ops.convert_to_numpy(score)[0]) == 7.0


@pytest.mark.engine
def test_the_revive_neuron_takes_the_runs_extra_tokens():
    """65 tokens read as 8x8 + 1 by default; told 16 extra tokens, they are a 7x7 grid, whose center the revive
    objective of that run scores."""
    from kerasviz.engine import presets, render
    acts = np.zeros((1, 65, 2), "float32")
    acts[0, TokenGrid(7, 7, 16).position(3, 3), 0] = 5.0
    acts[0, TokenGrid(8, 8, 1).position(4, 4), 0] = 9.0
    settings = presets.resolve_settings("fast", {})
    for extra, expected in ((None, 9.0), (16, 5.0)):
        revive = render.revive_objective("t", None, settings, extra)
        assert float(keras.ops.convert_to_numpy(revive(_context({"t": acts})))[0]) == expected


def test_channel_refuses_unknown_tokens_and_a_class_token_that_is_not_there(vit):
    with pytest.raises(ValueError, match="tokens must be one of 'patches', 'all', 'class'"):
        objectives.channel("block0_mlp1", tokens="cls")
    no_class = keras.Model(vit.inputs, vit.get_layer("tokens").output)
    with pytest.raises(ValueError, match="tokens='class' reads the class token"):
        objectives.channel("tokens", 0, tokens="class").validate(kv.nets.as_network(no_class))
    with pytest.raises(ValueError, match="tokens must be one of"):
        kv.visualize_filters(vit, "block0_mlp1", 0, tokens="clas", progress=False)


def test_visual_layers_of_a_vit_are_the_mlp_hidden_layers_and_block_outputs(vit):
    assert kv.nets.visual_layers(vit) == ["block0_mlp1", "block0_out", "block1_mlp1", "block1_out"]
    assert kv.nets.visual_layers(keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="c")])) \
        == ["c"]


def test_layers_command_marks_the_visual_layers(vit, tmp_path, capsys):
    path = str(tmp_path / "vit.keras")
    vit.save(path)
    assert cli.main(["layers", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = [line.split()[1] for line in lines if line.startswith("* ")]
    assert marked == ["block0_mlp1", "block0_out", "block1_mlp1", "block1_out"]
    assert not any("block0_attn/query" in line for line in lines)  # attention internals only when asked


def test_a_token_field_is_its_patch_and_says_when_attention_mixed_it(vit):
    embed = kv.receptive_field(vit, "patch_embed")
    assert (embed.size, embed.jump, embed.mixed) == ((4, 4), (4.0, 4.0), False)
    field = kv.receptive_field(vit, "block1_mlp1")
    assert (field.size, field.jump, field.mixed) == ((4, 4), (4.0, 4.0), True)


def test_a_vit_keeps_its_input_size(vit, capsys):
    result = kv.visualize_filters(vit, "block1_out", range(2), preset="fast", steps=2, revive_steps=0,
                                  progress=False)
    assert result.images.shape == (2, 32, 32, 3)  # the position embeddings fix the size: no interpolation
    assert "only 32x32 inputs" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"\(its position embeddings fix the size\)\. Received: size=64; use size=32"):
        kv.visualize_filters(vit, "block1_out", 0, size=64, progress=False)
    with pytest.raises(ValueError, match=r"dream needs layers that take any image size; .* need that size \(its "
                                         r"position embeddings fix the size\)"):
        kv.dream(vit, "block1_out", np.zeros((32, 32, 3), "float32"))
    with pytest.raises(TypeError, match=r"Received: an array of shape \(32, 32, 3\) \(the image comes after the "
                                        r"layer: dream\(model, layer, image\)\)\."):
        kv.dream(vit, np.zeros((32, 32, 3), "float32"), "block1_out")


@pytest.fixture(scope="module")
def hub_models():
    import keras_hub
    vit_hub = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=4, num_layers=2, num_heads=2,
                                           hidden_dim=16, mlp_dim=32)
    dino = keras_hub.models.DINOV2Backbone(patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
                                           intermediate_dim=32, num_register_tokens=4, image_shape=(32, 32, 3),
                                           position_embedding_shape=(32, 32, 3))
    return vit_hub, dino


def test_kerashub_encoders_show_their_blocks_and_mlps(hub_models):
    vit_hub, dino = hub_models
    assert kv.nets.visual_layers(vit_hub) == [
        "vit_encoder/transformer_block_1/mlp/dense_1", "vit_encoder/transformer_block_1",
        "vit_encoder/transformer_block_2/mlp/dense_1", "vit_encoder/transformer_block_2"]
    assert kv.nets.visual_layers(dino)[:2] == ["encoder/layers_0/mlp/fc1", "encoder/layers_0"]
    rows = {r.path: r for r in kv.list_layers(vit_hub)}
    assert rows["vit_encoder/transformer_block_1/mlp/dense_1"].output_shape == (None, 65, 32)
    assert "vit_encoder/transformer_block_1/mha/query" not in rows  # attention internals only when asked
    assert "vit_encoder/transformer_block_1/mha/query" in {r.path for r in kv.list_layers(vit_hub, attention=True)}
    assert kv.nets.token_grid(rows["vit_encoder/transformer_block_1"].output_shape, (32, 32)) == TokenGrid(8, 8, 1)
    assert kv.receptive_field(dino, "encoder/layers_1").mixed


def test_kerashub_layers_are_visualized_at_the_model_size(hub_models):
    vit_hub, dino = hub_models
    for net, layer in ((vit_hub, "vit_encoder/transformer_block_2/mlp/dense_1"), (dino, "encoder/layers_1")):
        result = kv.visualize_filters(net, layer, range(2), preset="fast", steps=3, revive_steps=0, progress=False)
        assert result.images.shape == (2, 32, 32, 3) and np.all(np.isfinite(result.scores))
    with pytest.raises(ValueError, match="use size=32"):  # DINOv2 would interpolate its position embeddings
        kv.visualize_filters(dino, "encoder/layers_1", 0, size=48, progress=False)


def test_kerashub_encoders_compute_in_bfloat16_and_keep_their_policies(hub_models):
    """KerasHub's encoders cannot be copied from their config (their blocks are made in `build`): the bfloat16
    extractor switches them to bfloat16 while they run, and gives them back their float32 policies."""
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    for net, layer in ((hub_models[0], "vit_encoder/transformer_block_2/mlp/dense_1"),
                       (hub_models[1], "encoder/layers_1/mlp/fc1")):
        fp32 = keras.ops.convert_to_numpy(kv.nets.get_extractor(kv.as_network(net), [layer], True)(x))
        bf16 = keras.ops.convert_to_numpy(kv.nets.get_extractor(kv.as_network(net), [layer], True, "bfloat16")(x))
        error = np.abs(bf16 - fp32).max() / np.abs(fp32).max()
        # bfloat16 keeps 8 significant bits: rounded through two blocks, yet not the float32 result
        assert 1e-4 < error < 0.05, f"{layer}: relative error {error:.2g}"
        assert {inner.dtype_policy.name for inner in net._flatten_layers()} == {"float32"}


@pytest.mark.parametrize("name", ["ConvNeXtTiny", "EfficientNetV2B0"])
def test_modern_convnets_run_at_a_tiny_size(name):
    net = kv.get_model(name, weights=None)
    layer = kv.nets.visual_layers(net)[3]
    result = kv.visualize_filters(net, layer, range(2), preset="fast", size=32, steps=2, revive_steps=0,
                                  progress=False)
    assert result.images.shape == (2, 32, 32, 3)
