"""What a model is to kerasviz: networks by name or file, their layers, feature extractors and receptive fields.

The nets wing imports nothing of the engine or the apps: it turns what the user names (a
`keras.applications` name, a model file, a `keras.Model`) into a `Network`, finds layers and channels, and
builds the feature extractors that the engine differentiates.
"""

from kerasviz.catalog import FAMILY_OF, list_models, module_name
from kerasviz.nets.applications import (
    HED_LAYERS,
    as_network,
    get_model,
    hed_weights_path,
    infer_preprocessing,
    is_model_path,
    load_hed_weights,
    load_model_file,
    range_from_layers,
)
from kerasviz.nets.extractors import BF16_POLICY, bfloat16_extractor, get_extractor
from kerasviz.nets.filters import DEFAULT_FILTER_COUNT, check_filter, resolve_filters
from kerasviz.nets.flexible import input_size
from kerasviz.nets.inputs import depends_on, needed_inputs
from kerasviz.nets.layers import (
    LEAKY_SLOPE,
    LayerInfo,
    PreActivation,
    channels_of,
    conv_layers,
    feature_extractor,
    find_layer,
    has_fused_relu,
    iter_layers,
    layer_output_shape,
    leaks_under_pre_activation,
    list_layers,
    model_cache,
    output_channels,
    output_shape,
    parent_layers,
    undo_leak,
    visual_layers,
)
from kerasviz.nets.network import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    Network,
    Preprocessing,
)
from kerasviz.nets.notes import notes_for
from kerasviz.nets.receptive_field import ReceptiveField, field_between, receptive_field
from kerasviz.nets.scale import family_of_name, layer_range, read_input_range
from kerasviz.nets.tokens import TokenGrid, extra_tokens, to_grid, token_grid

__all__ = [
    "BF16_POLICY", "CAFFE_MEAN_BGR", "DEFAULT_FILTER_COUNT", "FAMILY_OF", "HED_LAYERS", "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB", "LEAKY_SLOPE", "LayerInfo", "Network", "PreActivation", "Preprocessing", "ReceptiveField",
    "as_network", "bfloat16_extractor", "channels_of", "check_filter", "conv_layers", "feature_extractor",
    "field_between",
    "find_layer", "get_extractor", "get_model", "has_fused_relu", "hed_weights_path", "infer_preprocessing",
    "input_size", "is_model_path", "iter_layers", "leaks_under_pre_activation", "list_layers", "list_models",
    "load_hed_weights", "load_model_file", "model_cache", "module_name", "output_channels", "output_shape",
    "parent_layers", "range_from_layers",
    "receptive_field", "resolve_filters", "undo_leak",
    "TokenGrid", "extra_tokens", "layer_output_shape", "to_grid", "token_grid", "visual_layers",
    "depends_on", "family_of_name", "layer_range", "needed_inputs", "notes_for", "read_input_range",
]
