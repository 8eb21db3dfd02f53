"""KerasHub models: presets by name (built-in names, `kaggle://`, `hf://`, `modelscope://` handles, a local preset
folder), backbones and task models as objects, and the input range their image converters say.

A `keras_hub.models.Backbone` of a CNN family is a Functional model, and a task model (`ImageClassifier`) is a
Functional model with its backbone nested as a layer: both work as they are wherever a `keras.Model` does. What
KerasHub keeps outside the graph is the preprocessing: a task model's `preprocessor.image_converter` maps raw
pixels (0..255) to the model's inputs with `x * scale + offset` (per channel: a mean and std are
`scale = 1 / (255 * std)`, `offset = -mean / std`) at the `image_size` the model was trained at. `keras_hub` is
an extra (`pip install "kerasviz[hub]"`), imported only here, inside the functions that use it.
"""

from __future__ import annotations

import importlib.util
import json
import os

from kerasviz.catalog import hub_presets, require_keras_hub
from kerasviz.nets.network import Network, Preprocessing

PRESET_SCHEMES = ("kaggle://", "hf://", "modelscope://")
RAW_PIXEL_MAX = 255.0  # a KerasHub image converter takes raw pixels in 0..255
PRESET_WEIGHTS = "imagenet"  # get_model's default weights: for a preset, the preset's own weights
_NETWORK_ERRORS = ("ConnectionError", "MaxRetryError", "NameResolutionError", "Timeout", "ConnectTimeout",
                   "ReadTimeout", "gaierror", "URLError")
MAX_CAUSES = 10  # how far down an exception's causes a network error is looked for
MAX_REASON = 160  # characters of the original message quoted


def is_hub_model(model) -> bool:
    """Whether `model` is a KerasHub model (a `Backbone` or a task), without importing keras_hub.

    Example:
    >>> kv.nets.hub.is_hub_model(kv.get_model("VGG16", weights="hed").model)
    False
    """
    return any(c.__module__.startswith("keras_hub.") for c in type(model).__mro__)


def has_keras_hub() -> bool:
    """Whether the `keras_hub` package is installed (found without importing it)."""
    return importlib.util.find_spec("keras_hub") is not None


def is_preset(name) -> bool:
    """Whether `name` is a KerasHub preset handle: `kaggle://`, `hf://` or `modelscope://`, or a folder saved with
    `save_to_preset` (a `config.json` of a KerasHub object). Built-in preset names are found by `get_model` after
    the `keras.applications` names.

    Example:
    >>> kv.nets.hub.is_preset("hf://keras/resnet_50_imagenet"), kv.nets.hub.is_preset("VGG16")
    (True, False)
    """
    if not isinstance(name, (str, os.PathLike)):
        return False
    text = os.fspath(name)
    if text.lower().startswith(PRESET_SCHEMES):
        return True
    config = os.path.join(text, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as f:
            return str(json.load(f).get("registered_name", "")).startswith("keras_hub>")
    except (OSError, ValueError, AttributeError):
        return False


def is_builtin_preset(name: str) -> bool:
    """Whether `name` is one of KerasHub's built-in presets (False when keras_hub is not installed)."""
    return has_keras_hub() and name in hub_presets(families=None)


def load_preset(name: str, weights: str | None = PRESET_WEIGHTS, *, include_top: bool = False, **kwargs) -> Network:
    """Load a KerasHub preset as a `Network`, its preprocessing read from the preset's image converter.

    Args:
        name: a built-in preset name (`"resnet_50_imagenet"`), a `kaggle://`, `hf://` or `modelscope://` handle, or
            a local preset folder. Downloaded by KerasHub on first use, then cached.
        weights: `"imagenet"` (the preset's own weights, whatever they were trained on) or None (random weights,
            the preset's configuration). Defaults to `"imagenet"`.
        include_top: load the preset's `ImageClassifier` (needed for class objectives) instead of its backbone.
            Defaults to False.
        **kwargs: passed to KerasHub's `from_preset` (`dtype`, ...).

    Returns:
        A `Network` named after the preset.

    Raises:
        ValueError: keras_hub is not installed, the preset cannot be downloaded (no internet access) or loaded,
            `weights` is neither `"imagenet"` nor None, or the preset is not an image model. One line each.

    Example:
    >>> import keras_hub
    >>> backbone = keras_hub.models.VGGBackbone(stackwise_num_repeats=[1], stackwise_num_filters=[4])
    >>> backbone.save_to_preset("tiny_vgg")
    >>> kv.nets.hub.load_preset("tiny_vgg").model.get_layer("block1_conv1").filters
    4
    """
    keras_hub = require_keras_hub(f"The KerasHub preset {name!r}")
    if weights not in (PRESET_WEIGHTS, None):
        raise ValueError(f"weights for the KerasHub preset {name!r} must be 'imagenet' (the preset's own weights) or "
                         f"None (random). Received: weights={weights!r}.")
    try:
        if include_top:
            model = keras_hub.models.ImageClassifier.from_preset(name, load_weights=weights is not None, **kwargs)
            converter = image_converter(model)
        else:
            model = keras_hub.models.Backbone.from_preset(name, load_weights=weights is not None, **kwargs)
            converter = _preset_converter(keras_hub, name)
    except Exception as e:  # KerasHub and its download clients raise many kinds: one line says which
        raise ValueError(_load_error(name, e, include_top, kwargs.get("image_shape"))) from e
    shape = model.inputs[0].shape if len(model.inputs) == 1 else ()
    if len(shape) != 4:
        raise ValueError(f"The KerasHub preset {name!r} is a {type(model).__name__}, not an image model with one "
                         f"(batch, height, width, channels) input. kerasviz visualizes image models: see "
                         "kv.list_models(hub=True).")
    preprocess = converter_preprocessing(converter, int(shape[-1] or 3), model_size=tuple(shape[1:3]))
    shown = os.path.basename(os.path.normpath(name)) if os.path.isdir(name) else name
    return Network(model, shown, preprocess or Preprocessing.from_range(0.0, 1.0, int(shape[-1] or 3)),
                   weights=name if weights is not None else None)


def _preset_converter(keras_hub, name: str):
    try:
        return keras_hub.layers.ImageConverter.from_preset(name)
    except (ValueError, FileNotFoundError):  # a preset without an image converter
        return None


def _causes(e: BaseException) -> list[BaseException]:
    chain = [e]
    while len(chain) < MAX_CAUSES and (chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:MAX_REASON]}" if text else type(e).__name__


def _load_error(name: str, e: Exception, include_top: bool, image_shape=None) -> str:
    text = str(e).strip()
    reason = _first_line(e)
    chain = _causes(e)
    if any(type(c).__name__ in _NETWORK_ERRORS or isinstance(c, (ConnectionError, TimeoutError)) for c in chain):
        return (f"Could not download the KerasHub preset {name!r} (no internet access?): presets are downloaded "
                "from Kaggle or Hugging Face on first use, then cached. Connect once, or pass a local preset folder "
                f"(saved with save_to_preset). ({_first_line(chain[-1])})")
    if "has no config.json" in text:
        return (f"Could not load the KerasHub preset {name!r}: no config.json there. Check the handle, and that "
                "this machine can reach it (presets are downloaded on first use).")
    if include_top and ("Unable to find a subclass" in text or "num_classes" in text):  # no task, or no head
        return (f"The KerasHub preset {name!r} has no ImageClassifier: load its backbone with include_top=False. "
                f"({reason})")
    if image_shape is not None and "position_embedding" in text:
        return (f"The KerasHub preset {name!r} cannot take image_shape={tuple(image_shape)}: its position embeddings "
                "fix its input size, and its model does not interpolate them (KerasHub's DINOv2 does, ViT does not). "
                "Leave image_shape out to load it at its own size.")
    return f"Could not load the KerasHub preset {name!r}: {reason}."


def image_converter(model):
    """A KerasHub task model's image converter (`model.preprocessor.image_converter`), or None."""
    return getattr(getattr(model, "preprocessor", None), "image_converter", None)


def _per_channel(value, default: float, channels: int) -> tuple[float, ...]:
    if value is None:
        return (default,) * channels
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    return tuple(values) if len(values) == channels else (values[0],) * channels


def converter_preprocessing(converter, channels: int = 3, *, owner: str = "its image converter",
                            model_size: tuple | None = None) -> Preprocessing | None:
    """The preprocessing a KerasHub image converter says: it maps raw pixels `p` in 0..255 to `p * scale + offset`,
    so a [0, 1] image `x` goes in as `x * 255 * scale + offset`.

    Args:
        converter: a `keras_hub.layers.ImageConverter` (or None).
        channels: the number of input channels. Defaults to 3.
        owner: whose converter it is, for the note. Defaults to `"its image converter"`.
        model_size: the model's own `(height, width)`, for the note where it differs from the converter's
            `image_size` (a DINOv2 preset loaded with another `image_shape=`). Defaults to None.

    Returns:
        A `Preprocessing` whose `source` says what was read (scale, offset, the image size the preset takes) and
        what a [0, 1] image becomes (a range, or a mean and std per channel), or None for no converter.

    Example:
    >>> import keras_hub
    >>> converter = keras_hub.layers.ResNetImageConverter(image_size=(64, 64), scale=1 / 127.5, offset=-1.0)
    >>> p = kv.nets.hub.converter_preprocessing(converter)
    >>> p.scale, p.offset
    ((2.0, 2.0, 2.0), (-1.0, -1.0, -1.0))
    >>> p.source.split(": ")[-1]
    'a [0, 1] image enters as [-1, 1]'
    """
    if converter is None:
        return None
    scale = _per_channel(converter.scale, 1.0, channels)
    offset = _per_channel(converter.offset, 0.0, channels)
    size = getattr(converter, "image_size", None)
    shown = f"scale={_short(scale)}, offset={_short(offset)}"
    trained = f", at {size[0]}x{size[1]}" if size and None not in size else ""
    if trained and model_size and None not in model_size and tuple(model_size) != tuple(size):
        trained += f" (the preset's size; this model takes {model_size[0]}x{model_size[1]})"
    return Preprocessing("image-converter", tuple(RAW_PIXEL_MAX * s for s in scale), offset,
                         source=f"{owner} {type(converter).__name__}({shown}) takes raw pixels in 0..255{trained}"
                                f"{_what_an_image_becomes(scale, offset)}")


def _what_an_image_becomes(scale: tuple[float, ...], offset: tuple[float, ...]) -> str:
    if len(set(scale)) == 1 and len(set(offset)) == 1:
        return f": a [0, 1] image enters as [{offset[0]:.4g}, {RAW_PIXEL_MAX * scale[0] + offset[0]:.4g}]"
    if 0.0 in scale:
        return ""
    std = tuple(1.0 / (RAW_PIXEL_MAX * s) for s in scale)  # scale = 1 / (255 * std), offset = -mean / std
    mean = tuple(-o * d for o, d in zip(offset, std, strict=True))
    return f": a [0, 1] image x enters as (x - mean) / std, mean={_short(mean)}, std={_short(std)}"


def _short(values: tuple[float, ...]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:.4g}"
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def task_preprocessing(model, channels: int = 3, path: str | None = None) -> Preprocessing | None:
    """The preprocessing of a KerasHub task model read from its preprocessor's image converter, or None (not a
    KerasHub model, or one without a converter).

    Args:
        model: a model.
        channels: the number of input channels. Defaults to 3.
        path: for a task model nested in another model, its path there (for the note). Defaults to None.

    Example:
    >>> kv.nets.hub.task_preprocessing(kv.get_model("VGG16", weights="hed").model) is None
    True
    """
    if not is_hub_model(model):
        return None
    owner = f"the image converter of its nested {path!r}," if path else "its image converter"
    return converter_preprocessing(image_converter(model), channels, owner=owner)
