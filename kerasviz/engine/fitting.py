"""Fitting a run to the model: sizes a layer can take, and settings for a model with a fixed input size."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kerasviz import nets
from kerasviz.engine import presets


def check_size(network, layer: str, size: int, pre_activation: bool = True, border: int = 0) -> None:
    """Raise a clear error when `size` px is too small for `layer` (its map, less `border` positions at each
    edge, would be empty). Where the layers before `layer` need the model's fixed input size, images are
    resized to it inside the step, so that size is the one checked."""
    extractor = nets.get_extractor(network, [layer], pre_activation)
    hw = nets.input_size(extractor, network.image_input) or (size, size)
    inputs = network.model_inputs(keras.KerasTensor((1, *hw, network.input_channels)), extractor)
    image = keras.tree.map_structure(lambda t: keras.KerasTensor(t.shape, keras.backend.standardize_dtype(t.dtype)),
                                     inputs)  # the other inputs' values (or zeros) as specs
    try:
        out = extractor.compute_output_spec(image)
    except Exception as e:
        raise ValueError(
            f"An image of {size} px is too small for layer {layer!r} of {network.name}: the layers "
            f"before it downsample it to nothing. Use a larger size. ({str(e).splitlines()[0][:120]})"
        ) from e
    out = out[0] if isinstance(out, (list, tuple)) else out
    if len(out.shape) == 4 and (not out.shape[1] or not out.shape[2] or min(out.shape[1:3]) <= 2 * border):
        raise ValueError(
            f"An image of {size} px gives layer {layer!r} a {out.shape[1]}x{out.shape[2]} map, too small to drop "
            f"{border} positions at each border; use a larger size."
        )


def fit_size(network, layers: Sequence[str], settings: presets.Preset, *, preset, overrides: dict
             ) -> tuple[presets.Preset, str | None]:
    """Settings that fit a model with a fixed input size, and a one-line note saying what was adapted.

    Where the layers up to `layers` take any size, the feature extractor already runs them on a flexible
    input (`nets.feature_extractor`): nothing changes but the note. Where they need the model's size (a
    `Flatten`, `Reshape` or `Dense` on flattened maps on the way, a classifier's logits), `size` defaults
    to the model's, and the octaves' smaller images are upsampled to it inside the step.

    Args:
        network: the `Network`.
        layers: the layers the objective reads.
        settings: the settings resolved from `preset` and `overrides`.
        preset, overrides: what `settings` came from (to resolve them again with the model's size).

    Returns:
        `(settings, note)`; the note is None for a model that takes any size.

    Raises:
        ValueError: an explicit `size` other than the model's where the layers need the model's size.
    """
    model_hw = nets.input_size(network.model, network.image_input)
    if model_hw is None:
        return settings, None
    h, w = model_hw
    extractor = nets.get_extractor(network, list(layers), settings.pre_activation)
    fixed = nets.input_size(extractor, network.image_input)
    where = ", ".join(map(repr, layers))
    if fixed is None:
        return settings, (f"{network.name} takes {h}x{w} inputs; its layers up to {where} take any size, so they "
                          "run on a flexible input (the same layers and weights).")
    side = max(fixed)
    if overrides.get("size") is not None and settings.size != side:
        raise ValueError(f"{network.name} takes only {h}x{w} inputs and its layers before {where} need that size "
                         f"({nets.flexible.why_fixed(extractor)}). Received: size={settings.size}; use size={side}, "
                         "or leave size out.")
    if settings.size != side:
        settings = presets.resolve_settings(preset, {**overrides, "size": side})
    octaves = " and the smaller octaves are upsampled to it inside the step" if settings.octaves > 1 else ""
    return settings, (f"{network.name} takes only {h}x{w} inputs and its layers up to {where} need that size: "
                      f"the images are {side} px{octaves}.")
