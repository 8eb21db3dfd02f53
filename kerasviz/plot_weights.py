"""Figures of weights and circuits: first-layer kernels, kernel slices, a filter with its inputs.

Every function returns a `matplotlib.figure.Figure` built without pyplot (safe under the Agg backend and
in scripts; Jupyter shows a returned figure). Weights are drawn with the diverging colormap `RdBu_r`
(red excites, blue inhibits) on color limits symmetric around zero, shared by all maps of one figure
so that their strengths compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from kerasviz import nets
from kerasviz import weights as kvweights

WEIGHT_CMAP = "RdBu_r"
DEFAULT_MAX_CHANNELS = 64
MAP_INCHES = 1.1  # size of one small map (a kernel slice, a picture)


def symmetric_limit(values) -> float:
    """The color limit `v` for maps drawn on `[-v, v]`: the largest absolute value (1.0 when all are 0).

    Args:
        values: an array of any shape (may be empty).

    Returns:
        The limit, a float > 0.

    Example:
    >>> kv.plot_weights.symmetric_limit([-3.0, 2.0])
    3.0
    """
    v = float(np.max(np.abs(np.asarray(values)))) if np.size(values) else 0.0
    return v if v > 0 else 1.0


def weight_mosaic(maps, *, cols: int | None = None, gap: int = 1, label_gap: int = 1):
    """Tile float maps `(N, h, w)` into one array with NaN (drawn light gray) between them.

    One image with N tiles draws far faster than N axes, which matters for 64 or 512 kernel slices.

    Args:
        maps: `(N, h, w)` float maps.
        cols: tiles per row. Defaults to `ceil(sqrt(N))`.
        gap: blank columns between tiles. Defaults to 1.
        label_gap: blank rows above each tile, for its label. Defaults to 1.

    Returns:
        `(mosaic, origins)`: the float array and the `(row, col)` of each tile's top-left tap.

    Example:
    >>> mosaic, origins = kv.plot_weights.weight_mosaic(np.zeros((4, 3, 3)))
    >>> mosaic.shape, origins[1]
    ((8, 7), (1, 4))
    """
    maps = np.asarray(maps, "float32")
    n, h, w = maps.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    mosaic = np.full((rows * (h + label_gap), cols * (w + gap) - gap), np.nan, "float32")
    origins = []
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * (h + label_gap) + label_gap, c * (w + gap)
        mosaic[top : top + h, left : left + w] = maps[i]
        origins.append((top, left))
    return mosaic, origins


def _weight_map(ax, data: np.ndarray, limit: float, title: str | None = None):
    cmap = matplotlib.colormaps[WEIGHT_CMAP].with_extremes(bad="0.85")  # gaps in light gray
    im = ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    return im


def _image(ax, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def first_layer_kernels_figure(
    model, layer: str | None = None, *, cols: int | None = None, weights: str | None = "imagenet"
) -> Figure:
    """The first conv layer's kernels as RGB tiles, each normalized to [0, 1] on its own.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D layer that reads the image. Defaults to the first one.
        cols: kernels per row. Defaults to a square-ish grid.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        A `Figure` with one image.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.plot_weights.first_layer_kernels_figure(net).savefig("conv1.png")
    """
    network = nets.as_network(model, weights=weights)
    layer = kvweights.first_conv_layer(network) if layer is None else layer
    mosaic = kvweights.first_layer_kernels_image(network, layer, cols=cols)
    height, width = mosaic.shape[:2]
    fig = Figure(figsize=(6.0, 6.0 * height / width + 0.4), layout="constrained")
    ax = fig.add_subplot()
    _image(ax, mosaic)
    n = kvweights.kernels(network, layer)[0].shape[-1]
    ax.set_title(f"{network.name} {layer}: {n} kernels (each scaled to [0, 1])", fontsize=9)
    return fig


def kernel_figure(
    model,
    layer: str,
    filter: int,
    *,
    channels: Sequence[int] | None = None,
    max_channels: int = DEFAULT_MAX_CHANNELS,
    cols: int | None = None,
    weights: str | None = "imagenet",
) -> Figure:
    """One filter's kernel as heatmaps: one small `(kh, kw)` map per input channel.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D layer.
        filter: the filter index.
        channels: the input channels to draw, in this order. Defaults to all of them when there are at
            most `max_channels`, else the `max_channels` with the largest norm, strongest first.
        max_channels: the most maps drawn by default. Defaults to 64.
        cols: maps per row. Defaults to a square-ish grid.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        A `Figure`: the maps on one symmetric color scale (`RdBu_r`), with a color bar.

    Raises:
        ValueError: not a Conv2D layer, `filter` or a channel out of range.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.plot_weights.kernel_figure(net, "block2_conv1", 0).savefig("kernel.png")
    """
    network = nets.as_network(model, weights=weights)
    kernel = kvweights.filter_kernel(network, layer, filter)  # (kh, kw, C_in)
    c_in = kernel.shape[-1]
    if channels is None:
        if c_in <= max_channels:
            chosen = list(range(c_in))
        else:
            norms = np.sqrt(np.sum(kernel.astype("float64") ** 2, axis=(0, 1)))
            chosen = [int(c) for c in np.argsort(-norms, kind="stable")[:max_channels]]
    else:
        chosen = [int(c) for c in channels]
        bad = [c for c in chosen if not 0 <= c < c_in]
        if not chosen or bad:
            raise ValueError(
                f"channels must be input channels of {layer!r} (0-{c_in - 1}). Received: {list(channels)!r}."
            )
    limit = symmetric_limit(kernel[..., chosen])
    mosaic, origins = weight_mosaic(np.moveaxis(kernel[..., chosen], -1, 0), cols=cols)
    height, width = mosaic.shape
    scale = min(0.12, 9.0 / max(width, height))  # inches per kernel tap
    fig = Figure(figsize=(width * scale + 1.2, height * scale + 0.6), layout="constrained")
    ax = fig.add_subplot()
    im = _weight_map(ax, mosaic, limit)
    ax.set_axis_off()
    for c, (top, left) in zip(chosen, origins, strict=True):
        ax.text(left - 0.5, top - 0.6, str(c), fontsize=5, va="bottom", ha="left")
    fig.colorbar(im, ax=ax, shrink=0.6)
    shown = "" if len(chosen) == c_in else f" ({len(chosen)} of {c_in} input channels)"
    fig.suptitle(f"{layer} filter {filter}: kernel slices{shown}", fontsize=9)
    return fig


def _color_names(network, n: int) -> list[str]:
    if n != 3:
        return [str(i) for i in range(n)]
    return ["B", "G", "R"] if getattr(network.preprocess, "bgr", False) else ["R", "G", "B"]


def _swatch(name: str) -> np.ndarray:
    """A small picture of one image channel: its color for R, G or B, else mid-gray."""
    rgb = {"R": (1.0, 0.0, 0.0), "G": (0.0, 0.6, 0.0), "B": (0.0, 0.0, 1.0)}.get(name, (0.5, 0.5, 0.5))
    return np.broadcast_to(np.asarray(rgb, "float32"), (8, 8, 3))


def _incoming_figure(network, top: kvweights.IncomingChannels, own_image, input_images, *, subtitle: str) -> Figure:
    """The filter beside its top `k` inputs, every cell drawn.

    With the filter's picture (`own_image`): two rows. Column 0 holds the picture, then the norms of all
    inputs; columns 1..k each input's picture (its color swatch for a layer that reads the image) above its
    weights into the filter. Without (expanded weights): one row, the norms and then the weights, each map
    titled with its input channel.
    """
    k = len(top)
    names = _color_names(network, len(top.all_norms)) if top.from_image else None
    labels = [f"{top.input_layer}\n{'channel ' + names[int(c)] if names else int(c)}" for c in top.channels]
    rows = 1 if own_image is None else 2
    fig = Figure(figsize=((k + 1) * MAP_INCHES * 1.25 + 0.6, rows * MAP_INCHES * 1.35 + 0.6), layout="constrained")
    axes = fig.subplots(rows, k + 1, squeeze=False)
    if own_image is not None:
        _image(axes[0, 0], own_image, f"{top.layer}\nfilter {top.filter}")
        for j in range(k):
            picture = input_images[j] if input_images is not None else _swatch(names[int(top.channels[j])])
            _image(axes[0, j + 1], picture, labels[j])
    ax = axes[-1, 0]
    order = np.sort(top.all_norms)[::-1]
    colors = ["tab:red" if i < k else "tab:gray" for i in range(len(order))]
    ax.bar(np.arange(len(order)), order, color=colors, width=1.0)
    ax.set_title("input norms", fontsize=7)
    ax.tick_params(labelsize=5)
    limit = symmetric_limit(top.slices)
    im = None
    for j in range(k):
        title = f"|w| = {top.norms[j]:.3g}" if own_image is not None else f"{labels[j]}\n|w| = {top.norms[j]:.3g}"
        im = _weight_map(axes[-1, j + 1], top.slices[j], limit, title)
    fig.colorbar(im, ax=axes[-1, 1:].tolist(), shrink=0.8)
    fig.suptitle(subtitle, fontsize=9)
    return fig


def circuit_figure(
    model,
    layer: str,
    filter: int,
    k: int = kvweights.DEFAULT_TOP_K,
    *,
    preset: str | None = None,
    progress: bool = False,
    **options,
) -> Figure:
    """A filter beside the `k` input channels it weighs most: their visualizations and kernel slices.

    Top row: the filter's own visualization, then each input channel's (channels of the layer that
    feeds it, found by `weights.input_layer_of`). Bottom row: the norms of all input channels (the top
    `k` in red), then each input channel's kernel slice on one symmetric `RdBu_r` scale. A first layer
    reads colors: each input is pictured by a swatch of its color and labelled with its name (R, G, B).

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer: a Conv2D layer, or a Dense layer (a transformer MLP's: its inputs are the hidden units
            that feed the output channel, each with one weight).
        filter: the filter index.
        k: how many input channels. Defaults to 6.
        preset, progress: as in `visualize_filters` (e.g. `preset="fast", size=32, steps=5` for a quick look).
        **options: as in `kv.visualize_filters`: the model options (`weights`, `preprocess`, `input_range`),
            the run options (`seed`, ...) and `Preset` fields for the pictures (`size`, `steps`, `lr`, ...).

    Returns:
        A `Figure` (the numbers behind it: `weights.top_inputs(model, layer, filter, k)`).

    Raises:
        ValueError: not a Conv2D or Dense layer, `filter` out of range, `k < 1`.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> fig = kv.plot_weights.circuit_figure(net, "block2_conv1", 7, k=3, preset="fast", size=32, steps=5)
    >>> fig.savefig("circuit.png")
    """
    from kerasviz import optimize

    network, run, overrides = optimize.split_options(model, options)
    top = kvweights.top_inputs(network, layer, filter, k)
    options = dict(preset=preset, **run.keywords(), **overrides)
    own = optimize.plan(network, top.layer, [top.filter], **options).run(progress=progress).images[0]
    inputs = None
    if not top.from_image:
        inputs = optimize.plan(network, top.input_layer, [int(c) for c in top.channels],
                               **options).run(progress=progress).images
    fig = _incoming_figure(network, top, own, inputs,
                           subtitle=f"{network.name}: {top.layer} filter {top.filter} and its top {len(top)} "
                                    f"input channels from {top.input_layer}")
    return fig


def expanded_weights_figure(
    model,
    layer_from: str,
    layer_to: str,
    filter: int,
    k: int = 8,
    *,
    size: int | None = kvweights.DEFAULT_EXPANDED_SIZE,
    weights: str | None = "imagenet",
) -> Figure:
    """The `k` channels of `layer_from` with the strongest expanded weights into one filter of
    `layer_to`, as `size x size` heatmaps on one symmetric `RdBu_r` scale.

    Args:
        model: a `Network`, `keras.Model` or model name.
        layer_from: the earlier layer.
        layer_to: the later layer.
        filter: the filter of `layer_to`.
        k: how many channels. Defaults to 8.
        size: rows and columns around the centre (None: the whole receptive field). Defaults to 5.
        weights: weights for a model given by name. Defaults to `"imagenet"`.

    Returns:
        A `Figure` of one row: the norms of all channels of `layer_from` (the top `k` in red), then the
        `k` maps, each titled with its channel and norm.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.plot_weights.expanded_weights_figure(net, "block1_conv2", "block2_conv1", 5, k=4).savefig("ew.png")
    """
    network = nets.as_network(model, weights=weights)
    top = kvweights.top_expanded(network, layer_from, layer_to, filter, k, size=size)
    return _incoming_figure(network, top, None, None,
                            subtitle=f"{network.name}: expanded weights {top.input_layer} -> {top.layer} "
                                     f"filter {top.filter} (top {len(top)} of {len(top.all_norms)})")
