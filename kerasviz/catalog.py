"""The `keras.applications` models kerasviz knows, by name and preprocessing family, without importing Keras.

Plain tables, so that `kerasviz models` answers without starting a framework; `nets.applications` builds the
models from them.
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


def list_models(pattern: str | None = None) -> list[str]:
    """The `keras.applications` constructors that `get_model` knows, optionally filtered.

    Args:
        pattern: a shell-style pattern, case-insensitive (`"resnet*"`). Defaults to all.

    Returns:
        Sorted constructor names.

    Example:
    >>> kv.list_models("vgg*")
    ['VGG16', 'VGG19']
    """
    return sorted(names.filter_names(FAMILY_OF, pattern))
