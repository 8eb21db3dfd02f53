"""The `keras.applications` models kerasviz knows, by name and preprocessing family, without importing Keras; and
KerasHub's built-in presets of image models (CNNs, ViT, DINOv2), listed offline by the installed `keras_hub` (an extra).

Plain tables, so that `kerasviz models` answers without starting a framework; `nets.applications` builds the
models from them, and `nets.hub` loads the presets.
"""

from __future__ import annotations

from kerasviz import names

FAMILIES = {
    "caffe": ("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152"),
    "tf": ("ResNet50V2", "ResNet101V2", "ResNet152V2", "MobileNet", "MobileNetV2", "InceptionV3",
           "InceptionResNetV2", "Xception", "NASNetMobile", "NASNetLarge"),
    "torch": ("DenseNet121", "DenseNet169", "DenseNet201"),
    "none": ("EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4",
             "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1",
             "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S", "EfficientNetV2M",
             "EfficientNetV2L", "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge",
             "ConvNeXtXLarge", "MobileNetV3Small", "MobileNetV3Large"),
}


PREPROCESS_MODULES = {
    "VGG16": "vgg16", "VGG19": "vgg19", "ResNet50": "resnet", "ResNet101": "resnet",
    "ResNet152": "resnet", "ResNet50V2": "resnet_v2", "ResNet101V2": "resnet_v2",
    "ResNet152V2": "resnet_v2", "MobileNet": "mobilenet", "MobileNetV2": "mobilenet_v2",
    "InceptionV3": "inception_v3", "InceptionResNetV2": "inception_resnet_v2", "Xception": "xception",
    "NASNetMobile": "nasnet", "NASNetLarge": "nasnet", "DenseNet121": "densenet",
    "DenseNet169": "densenet", "DenseNet201": "densenet", "MobileNetV3Small": "mobilenet_v3",
    "MobileNetV3Large": "mobilenet_v3",
}


FAMILY_OF = {name: family for family, members in FAMILIES.items() for name in members}


HUB_EXTRA = 'pip install "kerasviz[hub]"'


# the image-model families (a preset's "path") kerasviz is tested on: the CNNs, ViT and DINOv2
HUB_IMAGE_FAMILIES = ("cspnet", "densenet", "dinov2", "efficientnet", "mobilenet", "resnet", "vgg", "vit", "xception")


def module_name(name: str) -> str:
    """The `keras.applications` submodule that holds `preprocess_input` for constructor `name`.

    Args:
        name: a `keras.applications` constructor name, e.g. `"ResNet50V2"`.

    Returns:
        The submodule name, a str (`"convnext"` for names it does not know).

    Example:
    >>> kv.catalog.module_name("EfficientNetB0")
    'efficientnet'
    """
    if name in PREPROCESS_MODULES:
        return PREPROCESS_MODULES[name]
    if name.startswith("EfficientNetV2"):
        return "efficientnet_v2"
    if name.startswith("EfficientNet"):
        return "efficientnet"
    return "convnext"


def list_models(pattern: str | None = None, *, hub: bool = False) -> list[str]:
    """The `keras.applications` constructors that `get_model` knows, optionally filtered; with `hub=True`, the
    KerasHub presets of image models (CNNs, ViT, DINOv2) after them.

    Args:
        pattern: a shell-style pattern, case-insensitive (`"resnet*"`). Defaults to all.
        hub: add KerasHub's built-in presets of image models: CNNs, ViT, DINOv2 (`hub_presets`; needs
            keras_hub, which starts Keras). Defaults to False: the keras.applications names alone, without Keras.

    Returns:
        Sorted constructor names, then (with `hub=True`) sorted preset names.

    Raises:
        ValueError: `hub=True` without keras_hub installed (the message says how to install it).

    Example:
    >>> kv.list_models("vgg*")
    ['VGG16', 'VGG19']
    >>> kv.list_models("vgg*", hub=True)
    ['VGG16', 'VGG19', 'vgg_11_imagenet', 'vgg_13_imagenet', 'vgg_16_imagenet', 'vgg_19_imagenet']
    """
    found = sorted(names.filter_names(FAMILY_OF, pattern))
    return found + hub_presets(pattern) if hub else found


def hub_presets(pattern: str | None = None, *, families: tuple[str, ...] | None = HUB_IMAGE_FAMILIES) -> list[str]:
    """KerasHub's built-in presets, listed offline from the installed keras_hub, optionally filtered.

    Args:
        pattern: a shell-style pattern, case-insensitive (`"resnet*"`). Defaults to all.
        families: the model families to keep (a preset's `metadata["path"]`), or None for every preset.
            Defaults to the image families kerasviz is tested on (`HUB_IMAGE_FAMILIES`).

    Returns:
        Sorted preset names.

    Raises:
        ValueError: keras_hub is not installed (the message says how to install it).

    Example:
    >>> "resnet_50_imagenet" in kv.catalog.hub_presets("resnet*")
    True
    """
    presets = require_keras_hub("Listing KerasHub presets").models.Backbone.presets
    found = [n for n, p in presets.items() if families is None or p.get("metadata", {}).get("path") in families]
    return sorted(names.filter_names(found, pattern))


def require_keras_hub(what: str):
    """The `keras_hub` module, imported now; `what` needs it.

    Raises:
        ValueError: keras_hub is not installed: one line, `what` and how to install it.
    """
    try:
        import keras_hub
    except ImportError as e:
        raise ValueError(f"{what} needs the keras_hub package, which is not installed: {HUB_EXTRA}.") from e
    return keras_hub
