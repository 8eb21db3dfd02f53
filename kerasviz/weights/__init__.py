"""What the weights connect: kernels, incoming channels, paths between layers and expanded weights (circuits)."""

from kerasviz.weights.expanded import (
    DEFAULT_EXPANDED_SIZE,
    DEFAULT_JACOBIAN_BATCH,
    expanded_weights,
    linearized_model,
    top_expanded,
)
from kerasviz.weights.kernels import (
    DEFAULT_TOP_K,
    FIRST_LAYER_SCALE,
    KERNEL_TYPES,
    IncomingChannels,
    filter_kernel,
    first_conv_layer,
    first_layer_kernels_image,
    input_layer_of,
    kernels,
    normalize_kernels,
    path_between,
    top_inputs,
)

__all__ = [
    "DEFAULT_EXPANDED_SIZE", "DEFAULT_JACOBIAN_BATCH", "DEFAULT_TOP_K", "FIRST_LAYER_SCALE", "IncomingChannels",
    "KERNEL_TYPES", "expanded_weights", "filter_kernel", "first_conv_layer", "first_layer_kernels_image",
    "input_layer_of", "kernels", "linearized_model", "normalize_kernels", "path_between", "top_expanded",
    "top_inputs",
]
