"""KerasHub models (#26 item 5): backbones and task models as objects, presets by name or folder, their image
converter's input range, and the one-line errors offline or without keras_hub. Every model is built from its
constructor with random weights; nothing is downloaded."""

import sys

import keras
import keras_hub  # the `hub` extra, part of `dev`
import numpy as np
import pytest

import kerasviz as kv
from kerasviz import cli

M = keras_hub.models

RUN = dict(preset="fast", size=32, steps=24, seed=0, revive_steps=0)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def resnet():
    return M.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
                            stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block")


FAMILIES = {  # a small configuration of each CNN family, and a layer worth a picture
    "resnet": (resnet, "stack0_block0_out"),
    "vgg": (lambda: M.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16]), "block2_conv1"),
    "efficientnet": (lambda: M.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 2, stackwise_depth_coefficients=[1.0] * 2, stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1], stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.25, 0.25], stackwise_strides=[1, 2],
        stackwise_block_types=["v1", "v1"], stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False], num_features=32), "block1a_dwconv_activation"),
    "mobilenet": (lambda: M.MobileNetBackbone(
        stackwise_expansion=[[1], [4]], stackwise_num_blocks=[1, 1], stackwise_num_filters=[[8], [16]],
        stackwise_kernel_size=[[3], [3]], stackwise_num_strides=[[2], [2]], stackwise_se_ratio=[[None], [0.25]],
        stackwise_activation=[["relu"], ["hard_swish"]], stackwise_padding=[[1], [1]], output_num_filters=32,
        depthwise_filters=8, depthwise_stride=2, depthwise_residual=False, last_layer_filter=32,
        input_num_filters=8), "block_1_0"),
    "cspdarknet": (lambda: M.CSPNetBackbone(
        stem_filters=8, stem_kernel_size=3, stem_strides=2, stackwise_depth=[1, 1], stackwise_strides=[1, 2],
        stackwise_num_filters=[16, 32], block_type="dark_block", stage_type="csp", bottle_ratio=[0.5],
        expand_ratio=[2.0]), "stage_1_csp_conv_exp"),
}


@pytest.fixture(scope="module")
def backbones():
    keras.utils.set_random_seed(0)
    return {family: build() for family, (build, _) in FAMILIES.items()}


@pytest.fixture(scope="module")
def classifier(backbones):
    """A ResNet `ImageClassifier` with an ImageNet mean/std image converter at 48x48."""
    converter = keras_hub.layers.ResNetImageConverter(image_size=(48, 48), scale=[1 / (255 * s) for s in STD],
                                                      offset=[-m / s for m, s in zip(MEAN, STD, strict=True)])
    preprocessor = M.ResNetImageClassifierPreprocessor(image_converter=converter)
    return M.ResNetImageClassifier(backbone=backbones["resnet"], num_classes=4, preprocessor=preprocessor)


CONVERTER_NOTE = ("input range read from res_net_image_classifier: its image converter ResNetImageConverter("
                  "scale=(0.01712, 0.01751, 0.01743), offset=(-2.118, -2.036, -1.804)) takes raw pixels in 0..255, at "
                  "48x48: a [0, 1] image x enters as (x - mean) / std, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, "
                  "0.225); pass input_range= or preprocess= to set another.")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_backbone_of_each_cnn_family_lists_its_layers_and_reads_no_range(backbones, family):
    backbone, layer = backbones[family], FAMILIES[family][1]
    rows = kv.nets.list_layers(backbone)
    assert layer in [r.path for r in rows] and all(r.type != "Functional" for r in rows)
    net = kv.as_network(backbone)
    assert net.preprocess.name == "range(0, 1)" and net.preprocess.source is None  # nothing to read: no guess


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "resnet"])  # resnet: through its task model below
def test_a_backbone_of_each_cnn_family_draws_pictures_that_ascend(backbones, family):
    result = kv.visualize_filters(backbones[family], FAMILIES[family][1], filters=range(2), **RUN)
    assert result.images.shape == (2, 32, 32, 3) and not result.flat
    assert np.all(result.history[-1] > result.history[0])  # the gradient reaches the image through the backbone
    assert np.any(result.scores > 0)  # random weights: a filter may stay dead, not all of them


def test_a_task_model_reads_its_image_converter_and_its_backbone_is_nested(classifier, capsys):
    net = kv.as_network(classifier)
    p = net.preprocess
    np.testing.assert_allclose(p(np.full((1, 1, 1, 3), 0.5, "float32")).ravel(),
                               [(0.5 - m) / s for m, s in zip(MEAN, STD, strict=True)], rtol=1e-5)  # (x - mean) / std
    np.testing.assert_allclose(p.invert(p(np.full((1, 3), 0.25, "float32"))), 0.25, rtol=1e-5)
    paths = [r.path for r in kv.nets.list_layers(classifier)]
    assert "res_net_backbone/stack1_block0_2_conv" in paths and "predictions" in paths
    result = kv.visualize_filters(classifier, "stack0_block0_out", filters=[0, 1], **RUN)  # by its own name
    assert result.images.shape == (2, 32, 32, 3) and not result.dead and not result.flat
    assert CONVERTER_NOTE in capsys.readouterr().err
    assert kv.as_network(classifier, input_range=(0, 1)).preprocess.name == "range(0, 1)"  # an explicit range wins


def test_a_task_model_makes_a_layer_atlas_by_its_path(classifier, tmp_path):
    atlas = kv.atlas.layer_atlas(classifier, "res_net_backbone/stack0_block0_out", [0, 1], cache_dir=tmp_path, **RUN)
    assert atlas.filters == [0, 1] and atlas.images.shape == (2, 32, 32, 3) and np.all(atlas.scores > 0)


def test_a_nested_mobilenet_backbone_gets_no_keras_applications_family(backbones):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, backbones["mobilenet"](inputs))  # "mobile_net_backbone" is no MobileNet ("tf")
    assert kv.as_network(model).preprocess.name == "range(0, 1)"


@pytest.fixture(scope="module")
def preset_folder(classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "tiny_resnet"
    classifier.save_to_preset(str(folder))
    return str(folder)


def test_a_preset_folder_loads_through_keras_hub_with_its_converter(preset_folder, classifier, capsys):
    net = kv.get_model(preset_folder)
    assert isinstance(net.model, M.ResNetBackbone) and net.name == "tiny_resnet"
    assert net.preprocess == kv.as_network(classifier).preprocess
    np.testing.assert_allclose(net.model.get_layer("conv1_conv").get_weights()[0],
                               classifier.backbone.get_layer("conv1_conv").get_weights()[0])
    task = kv.get_model(preset_folder, include_top=True)
    assert isinstance(task.model, M.ImageClassifier) and task.preprocess == net.preprocess
    assert cli.main(["layers", preset_folder]) == 0
    assert "stack1_block0_2_conv" in capsys.readouterr().out


def offline(*args, **kwargs):
    import requests

    raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries "
                                              "exceeded")


OFFLINE = ("Could not download the KerasHub preset 'resnet_18_imagenet' (no internet access?): presets are downloaded "
           "from Kaggle or Hugging Face on first use, then cached. Connect once, or pass a local preset folder (saved "
           "with save_to_preset). (ConnectionError: HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries "
           "exceeded)")


def test_a_preset_name_offline_fails_with_one_line(monkeypatch, capsys):
    import kagglehub

    monkeypatch.setattr(kagglehub, "model_download", offline)  # what keras_hub calls to download; here it fails
    with pytest.raises(ValueError) as e:
        kv.get_model("resnet_18_imagenet", weights=None)
    assert str(e.value) == OFFLINE
    assert cli.main(["layers", "resnet_18_imagenet"]) == 2
    assert capsys.readouterr().err == f"kerasviz: error: {OFFLINE}\n"


def test_a_hugging_face_handle_that_cannot_be_reached(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(ValueError) as e:
        kv.get_model("hf://someone/resnet_tiny")
    assert str(e.value) == ("Could not load the KerasHub preset 'hf://someone/resnet_tiny': no config.json there. "
                            "Check the handle, and that this machine can reach it (presets are downloaded on first "
                            "use).")


@pytest.mark.parametrize("name, message", [
    ("resnet_50_imagnet", "Unknown model 'resnet_50_imagnet': neither a keras.applications model nor a KerasHub "
                          "preset. Did you mean 'resnet_50_imagenet' or 'resnet_vd_50_imagenet' or "
                          "'resnet_v2_50_imagenet'? See kv.list_models(hub=True)."),
    ("ResNet50V3", "Unknown model 'ResNet50V3': neither a keras.applications model nor a KerasHub preset. Did you "
                   "mean 'ResNet50V2' or 'ResNet50' or 'ResNet152V2'? See kv.list_models(hub=True)."),
])
def test_a_typo_suggests_close_application_and_preset_names(name, message):
    with pytest.raises(ValueError) as e:
        kv.get_model(name)
    assert str(e.value) == message


def test_weights_a_preset_cannot_take(preset_folder):
    with pytest.raises(ValueError, match=r"weights for the KerasHub preset '.*tiny_resnet' must be 'imagenet' \(the "
                                         r"preset's own weights\) or None \(random\). Received: weights='hed'."):
        kv.get_model(preset_folder, weights="hed")


def test_without_keras_hub_a_preset_name_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub now fails, as where it is not installed
    with pytest.raises(ValueError) as e:
        kv.get_model("resnet_50_imagenet")
    assert str(e.value) == ("Unknown model 'resnet_50_imagenet' in keras.applications. Did you mean 'ResNet50' or "
                            "'ResNet50V2'? KerasHub preset names need the keras_hub package: "
                            "pip install \"kerasviz[hub]\".")
    with pytest.raises(ValueError) as e:
        kv.get_model("hf://keras/resnet_50_imagenet")
    assert str(e.value) == ("The KerasHub preset 'hf://keras/resnet_50_imagenet' needs the keras_hub package, which "
                            "is not installed: pip install \"kerasviz[hub]\".")
    assert cli.main(["models", "--hub"]) == 2
    assert capsys.readouterr().err == ("kerasviz: error: Listing KerasHub presets needs the keras_hub package, which "
                                       "is not installed: pip install \"kerasviz[hub]\".\n")


def test_models_lists_kerashub_presets_on_request(capsys):
    assert cli.main(["models", "resnet*", "--hub"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed[:3] == ["ResNet101", "ResNet101V2", "ResNet152"] and "resnet_50_imagenet" in listed
    assert "bert_base_en" not in kv.list_models(hub=True)  # image models only
    assert "vit_base_patch16_224_imagenet" in kv.list_models("vit*", hub=True)
    assert "dinov2_with_registers_small" in kv.list_models("dinov2*", hub=True)
    assert kv.list_models("vgg*") == ["VGG16", "VGG19"]  # without hub=True: keras.applications alone
