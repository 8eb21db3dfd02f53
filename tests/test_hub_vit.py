"""KerasHub ViT and DINOv2 presets by name (#28 item 3): the whole by-name path, offline. Tiny models built from
their constructors (random weights) are saved as presets the way KerasHub's conversion scripts save the real ones
(a ViT `ImageClassifier` with its preprocessor; a ViT backbone with its preprocessor; a DINOv2 backbone with its
image converter); `kagglehub.model_download`, the one call keras_hub makes to fetch a preset file, hands back
those folders, so keras_hub's own name -> Kaggle handle resolution runs. The converters carry the real presets'
settings (keras-hub tools/checkpoint_conversion: ViT mean = std = 0.5, bilinear; DINOv2 ImageNet mean/std,
bicubic)."""

import os

import keras
import keras_hub  # the `hub` extra, part of `dev`
import numpy as np
import pytest

import kerasviz as kv
from kerasviz import cli

M = keras_hub.models
SIZE, PATCH, DIM, HIDDEN, REGISTERS = 32, 8, 16, 32, 4
GRID = SIZE // PATCH
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet's, as DINOv2's
VIT, VIT_21K, DINO = "vit_base_patch16_224_imagenet", "vit_base_patch16_224_imagenet21k", "dinov2_with_registers_small"
RUN = dict(preset="fast", steps=8, seed=0, revive_steps=0, progress=False)
VIT_HIDDEN = "vit_encoder/transformer_block_1/mlp/dense_1"
DINO_BLOCK = "dinov2_backbone_encoder/layers_1"


def _vit_converter():
    return keras_hub.layers.ViTImageConverter(image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1.0,
                                              interpolation="bilinear")


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """`{variant: (preset folder, the model saved there)}`, laid out as the real presets are."""
    root = tmp_path_factory.mktemp("kaggle")
    keras.utils.set_random_seed(0)
    vit = M.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=PATCH, num_layers=2, num_heads=2, hidden_dim=DIM,
                        mlp_dim=HIDDEN)
    preprocessor = M.ViTImageClassifierPreprocessor(image_converter=_vit_converter())
    M.ViTImageClassifier(backbone=vit, num_classes=3, preprocessor=preprocessor).save_to_preset(str(root / VIT))
    vit.save_to_preset(str(root / VIT_21K))  # a backbone preset: no head
    preprocessor.save_to_preset(str(root / VIT_21K))
    dino = M.DINOV2Backbone(patch_size=PATCH, num_layers=2, hidden_dim=DIM, num_heads=2, intermediate_dim=HIDDEN,
                            num_register_tokens=REGISTERS, image_shape=(SIZE, SIZE, 3),
                            position_embedding_shape=(SIZE, SIZE), name="dinov2_backbone")  # not the next free name
    dino.save_to_preset(str(root / DINO))
    keras_hub.layers.DINOV2ImageConverter(
        image_size=(SIZE, SIZE), scale=(1 / (255 * STD)).tolist(), offset=(-MEAN / STD).tolist(),
        interpolation="bicubic").save_to_preset(str(root / DINO))
    return {VIT: (str(root / VIT), vit), VIT_21K: (str(root / VIT_21K), vit), DINO: (str(root / DINO), dino)}


@pytest.fixture
def kaggle(presets, monkeypatch):
    """The Kaggle handles keras_hub asked for; each file comes from the folder of the handle's variant."""
    import kagglehub

    asked = []

    def model_download(handle, path=None, **kwargs):
        asked.append(handle)
        file = os.path.join(presets[handle.split("/")[3]][0], path)  # org/model/framework/variant[/version]
        if not os.path.exists(file):
            raise ValueError(f"'{path}' is not present in the model files.")  # kagglehub's words
        return file

    monkeypatch.setattr(kagglehub, "model_download", model_download)
    return asked


def _assert_same_weights(loaded, saved):
    for a, b in zip(loaded.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


VIT_NOTE = ("input range read from vit_base_patch16_224_imagenet: its image converter ViTImageConverter(scale=0.007843,"
            " offset=-1) takes raw pixels in 0..255, at 32x32: a [0, 1] image enters as [-1, 1]; pass input_range= or "
            "preprocess= to set another.")


def test_a_vit_preset_by_name_loads_through_its_kaggle_handle_with_its_converter(kaggle, presets, capsys):
    net = kv.get_model(VIT)
    assert isinstance(net.model, M.ViTBackbone) and net.name == VIT
    _assert_same_weights(net.model, presets[VIT][1])
    assert set(kaggle) == {keras_hub.models.Backbone.presets[VIT]["kaggle_handle"].removeprefix("kaggle://")}
    np.testing.assert_allclose(net.preprocess(np.array([[0.0, 0.5, 1.0]], "float32")), [[-1, 0, 1]], atol=1e-6)
    assert kv.nets.visual_layers(net) == [VIT_HIDDEN, "vit_encoder/transformer_block_1",
                                          "vit_encoder/transformer_block_2/mlp/dense_1",
                                          "vit_encoder/transformer_block_2"]
    result = kv.visualize_filters(net, VIT_HIDDEN, range(2), **RUN)
    assert result.images.shape == (2, SIZE, SIZE, 3) and result.settings["size"] == SIZE  # its own size
    err = capsys.readouterr().err
    assert VIT_NOTE in err and f"takes only {SIZE}x{SIZE} inputs" in err
    task = kv.get_model(VIT, include_top=True)
    assert isinstance(task.model, M.ViTImageClassifier) and task.preprocess == net.preprocess
    assert kv.visualize_filters(task, "predictions", [0, 1], **RUN).images.shape == (2, SIZE, SIZE, 3)


def test_a_dinov2_preset_by_name_reads_its_register_tokens(kaggle, presets):
    net = kv.get_model(DINO)
    assert isinstance(net.model, M.DINOV2Backbone)
    _assert_same_weights(net.model, presets[DINO][1])  # under its layer names with the "dinov2_backbone_" prefix
    first = "dinov2_backbone_encoder/layers_0"
    assert kv.nets.visual_layers(net)[:2] == [f"{first}/mlp/fc1", first]
    rows = {r.path: r for r in kv.list_layers(net)}
    for layer in (DINO_BLOCK, f"{DINO_BLOCK}/mlp/fc1"):  # a class token and the registers before the patches
        assert kv.nets.token_grid(rows[layer].output_shape, (SIZE, SIZE)) == kv.nets.TokenGrid(GRID, GRID,
                                                                                              1 + REGISTERS)
    np.testing.assert_allclose(net.preprocess(np.full((1, 3), 0.5, "float32")).ravel(),
                               (0.5 - MEAN) / STD, rtol=1e-5)  # ImageNet mean and std
    image = np.random.default_rng(0).random((SIZE, SIZE, 3)).astype("float32")
    act = kv.activations(net, DINO_BLOCK, image)[DINO_BLOCK]
    top = kv.top_filters(net, DINO_BLOCK, image, k=1)  # the patch tokens' mean: registers left out
    np.testing.assert_allclose(top.values, act[1 + REGISTERS:].mean(axis=0).max(), rtol=1e-5)
    result = kv.visualize_filters(net, f"{DINO_BLOCK}/mlp/fc1", [0, 2], **RUN)
    assert result.images.shape == (2, SIZE, SIZE, 3)
    assert np.any(result.history[-1] > result.history[0])  # the gradient reaches the image through the encoder


def test_the_cli_lists_and_draws_presets_by_name(kaggle, tmp_path, capsys):
    assert cli.main(["layers", DINO]) == 0
    out = capsys.readouterr().out
    assert f"* {DINO_BLOCK}/mlp/fc1 " in out and f"  {DINO_BLOCK}/mlp/fc2 " in out
    png = tmp_path / "vit.png"
    assert cli.main(["atlas", VIT, "vit_encoder/transformer_block_2", "--filters", "0-1", "--preset", "fast",
                     "--steps", "4", "--out", str(png), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert png.exists() and "takes only 32x32 inputs" in capsys.readouterr().err


def test_dinov2_takes_another_image_shape_and_vit_says_it_cannot(kaggle):
    net = kv.get_model(DINO, image_shape=(16, 16, 3))  # KerasHub interpolates DINOv2's position embeddings
    assert net.model.input_shape == (None, 16, 16, 3)
    assert "at 32x32 (the preset's size; this model takes 16x16)" in net.preprocess.source
    with pytest.raises(ValueError) as e:
        kv.get_model(VIT, image_shape=(64, 64, 3))
    assert str(e.value) == (f"The KerasHub preset {VIT!r} cannot take image_shape=(64, 64, 3): its position "
                            "embeddings fix its input size, and its model does not interpolate them (KerasHub's "
                            "DINOv2 does, ViT does not). Leave image_shape out to load it at its own size.")


@pytest.mark.parametrize("name, cause", [
    (VIT_21K, "TypeError: ViTImageClassifier.__init__() missing 1 required positional argument: 'num_classes'"),
    (DINO, f"ValueError: Unable to find a subclass of ImageClassifier that is compatible with DINOV2Backbone found "
           f"in preset '{DINO}'."),
])
def test_a_preset_without_a_head_says_so_with_include_top(kaggle, name, cause):
    with pytest.raises(ValueError) as e:
        kv.get_model(name, include_top=True, weights=None)
    assert str(e.value) == (f"The KerasHub preset {name!r} has no ImageClassifier: load its backbone with "
                            f"include_top=False. ({cause})")
