"""Matplotlib figures of what an image activates, of dataset examples and of visualization results.

Every function returns a `matplotlib.figure.Figure` built without pyplot, so it works headless (the Agg
canvas), leaves no figure open behind it, and shows itself when it is the last value of a Jupyter cell.
Save one with `fig.savefig("fig.png")`.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Sequence

import matplotlib
import numpy as np

from kerasviz import analysis, examples, images, nets, optimize

MAPS_PER_ROW = 16  # feature-map grids: 16 maps per row
TILE_INCHES = 1.6  # size of one small panel
MAP_INCHES = 0.9  # size of one feature map in a grid
MAP_GAP = 0.05  # white between feature maps in a grid, as a fraction of a map's longer side (at least 1 pixel)
CURVE_COLOR = "#4c72b0"
MARK_COLOR = "#dd3333"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _show_image(ax, image, title: str | None = None) -> None:
    arr = np.asarray(image)
    arr = arr if arr.dtype == np.uint8 else images.to_uint8(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        ax.imshow(arr[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(arr)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)


def top_filters_figure(
    model,
    layer: str,
    image,
    k: int = 6,
    *,
    by: str = "mean",
    preset=None,
    image_size: int | tuple[int, int] | None = None,
    visualizations: optimize.Result | None = None,
    progress: bool = False,
    **options,
):
    """The fastai notebook's figure: an image, the activation of every filter of a layer on it with the
    top `k` marked, and below, what each of those `k` filters looks for (`kv.visualize_filters`).

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer: the layer name.
        image: a path, PIL image or array (see `kv.analysis.prepare_image`).
        k: how many top filters to mark and visualize. Defaults to 6.
        by: rank filters by `"mean"` or `"max"` activation. Defaults to `"mean"`.
        preset: the preset of the filter pictures (see `kv.visualize_filters`).
        image_size: resize the image before the forward pass. Defaults to its own size.
        visualizations: a `Result` that already holds the top filters' pictures (skips the optimization).
        progress: show a progress bar while visualizing. Defaults to False.
        **options: as in `kv.visualize_filters`: the model options (`weights`, `preprocess`, `input_range`),
            the run options (`seed`, ...; on a token layer `tokens=` `"patches"`, `"all"` or `"class"` chooses
            the tokens that rank the filters and that their pictures excite, `extra_tokens=` the class and
            register tokens before the patches) and `Preset` fields for the filter pictures (`size`, `steps`, `lr`,
            `octaves`, `precision`, ...).

    Returns:
        A `Figure`: axes 0 is the image, axes 1 the curve, then one axes per top filter
        (titled `filter <i>`).

    Raises:
        ValueError: as `top_filters` and `visualize_filters`, or `visualizations` that lack a top filter.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> fig = kv.plot.top_filters_figure(net, "block4_conv3", "cat.jpg", k=3, preset="fast", size=48, steps=2,
    ...                                  image_size=64)
    >>> fig.savefig("top.png")
    """
    network, run, overrides = optimize.split_options(model, options)
    img = analysis.prepare_image(network, image, image_size)
    act = analysis.activations(network, layer, img)[layer]
    scores = analysis.filter_scores(act, by, tokens=run.tokens, image_size=img.shape[:2],
                                    extra_tokens=run.extra_tokens, layer=layer)
    top = analysis.rank_filters(scores, k)
    if visualizations is None:
        visualizations = optimize.plan(network, layer, [int(i) for i in top.indices], preset=preset,
                                       **run.keywords(), **overrides).run(progress=progress)
    pictures = _pick_images(visualizations, top.indices)

    cols = max(int(k), 3)
    fig = _figure(cols * TILE_INCHES, 2 * TILE_INCHES + 0.6)
    grid = fig.add_gridspec(2, cols)
    _show_image(fig.add_subplot(grid[0, 0]), img, "image")
    curve = fig.add_subplot(grid[0, 1:])
    curve.plot(np.arange(len(scores)), scores, color=CURVE_COLOR, linewidth=0.8)
    curve.scatter(top.indices, top.values, color=MARK_COLOR, s=14, zorder=3)
    for i, v in zip(top.indices, top.values, strict=True):
        curve.annotate(str(int(i)), (i, v), textcoords="offset points", xytext=(3, 3), fontsize=7,
                       color=MARK_COLOR)
    curve.set_xlim(-0.5, len(scores) - 0.5)
    curve.set_xlabel("filter")
    curve.set_ylabel(f"{by} activation")
    curve.set_title(f"{layer}: top {k} of {len(scores)} filters", fontsize=9)
    for j, (i, v) in enumerate(zip(top.indices, top.values, strict=True)):
        _show_image(fig.add_subplot(grid[1, j]), pictures[j], f"filter {int(i)} ({v:.3g})")
    return fig


def _pick_images(result: optimize.Result, indices) -> list[np.ndarray]:
    where = {int(f): n for n, f in enumerate(result.filters)}
    missing = [int(i) for i in indices if int(i) not in where]
    if missing:
        raise ValueError(f"visualizations has no picture of filter(s) {missing}; it holds {list(result.filters)}.")
    return [result.images[where[int(i)]] for i in indices]


def _normalize(fmap: np.ndarray) -> np.ndarray:
    lo, hi = float(fmap.min()), float(fmap.max())
    return (fmap - lo) / (hi - lo) if hi > lo else np.zeros_like(fmap, dtype="float32")


def feature_maps_figure(
    model,
    layer: str,
    image,
    *,
    filters: Sequence[int] | None = None,
    cols: int = MAPS_PER_ROW,
    cmap: str = "viridis",
    image_size: int | tuple[int, int] | None = None,
    weights: str | None = "imagenet",
    extra_tokens: int | None = None,
):
    """A layer's feature maps for an image, as a grid: each map normalized to its own range.

    A token layer's maps are its patch grids (`rows x cols`, one cell per patch token; the class and
    register tokens are left out).

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer: a layer with a spatial output (convolution, pooling, activation) or a token layer.
        image: a path, PIL image or array (see `kv.analysis.prepare_image`).
        filters: which maps to draw: a list or range of indices (`range(4)` gives four). Defaults to all
            channels (a 512-channel layer makes 32 rows).
        cols: maps per row. Defaults to 16.
        cmap: the matplotlib colormap. Defaults to `"viridis"`.
        image_size: resize the image before the forward pass. Defaults to its own size.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        extra_tokens: class and register tokens before the patches, for a token layer. Defaults to None
            (read from the token count against the patch grid).

    Returns:
        A `Figure` with one axes: the maps stitched row by row into one image (white gaps between them,
        `MAP_GAP` of a map's longer side, so that they stay visible at the figure's size whatever the
        maps' size), so that a 512-map layer draws as fast as a 16-map one. The map in row r,
        column c is `filters[r * cols + c]`: the row's tick label is its first filter, the column's
        label the offset (`+3`); for `filters=None` the filter is the row label plus the column
        offset. Each map is scaled from its own minimum (dark) to maximum (bright); a constant map
        is drawn dark.

    Raises:
        ValueError: the layer has no spatial output or patch grid, a filter index out of range, or `cols < 1`.

    Example:
    >>> fig = kv.plot.feature_maps_figure(net, "block1_conv2", "cat.jpg", filters=range(32), image_size=64)
    """
    network = nets.as_network(model, weights=weights)
    img = analysis.prepare_image(network, image, image_size)
    act = analysis.check_spatial_map(analysis.activations(network, layer, img)[layer], layer, image_size=img.shape[:2],
                                     extra_tokens=extra_tokens)
    n_channels = act.shape[-1]
    chosen = list(range(n_channels)) if filters is None else [int(f) for f in filters]
    bad = [f for f in chosen if not 0 <= f < n_channels]
    if not chosen or bad:
        raise ValueError(f"filters must be indices in 0-{n_channels - 1} for layer {layer!r}. "
                         f"Received: {list(filters)!r}.")
    if not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"cols must be a positive int. Received: cols={cols!r}.")
    cols = min(int(cols), len(chosen))
    rows = math.ceil(len(chosen) / cols)
    h, w = act.shape[:2]
    colormap = matplotlib.colormaps[cmap]
    tiles = [images.to_uint8(colormap(_normalize(act[..., f]))[..., :3]) for f in chosen]
    margin = max(1, math.ceil(MAP_GAP * max(h, w)))  # in map pixels: a map is drawn MAP_INCHES wide at any size
    mosaic = images.stitch(tiles, cols=cols, margin=margin, background=255)
    fig = _figure(cols * MAP_INCHES, rows * MAP_INCHES * h / w + 0.5)
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    # read a map's filter as row label + column label: labels on ticks scale to 512 maps, texts do not
    ax.set_xticks([c * (w + margin) + (w - 1) / 2 for c in range(cols)], [f"+{c}" for c in range(cols)],
                  fontsize=6)
    ax.set_yticks([r * (h + margin) + (h - 1) / 2 for r in range(rows)],
                  [str(chosen[r * cols]) for r in range(rows)], fontsize=6)
    ax.tick_params(length=0, pad=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{layer}: {len(chosen)} feature maps ({h}x{w})", fontsize=9)
    return fig


def heatmap_figure(
    model,
    layer: str,
    index: int,
    image,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    image_size: int | tuple[int, int] | None = None,
    weights: str | None = "imagenet",
    extra_tokens: int | None = None,
):
    """Where one filter fires on an image: the image beside its activation map laid over it.

    The map is upsampled (bilinear) to the image's size; the overlay's colors run from 0 to the map's
    maximum, so the brightest spot is the filter's strongest response.

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer: a layer with a spatial output, or a token layer (its patch grid is drawn).
        index: the filter.
        image: a path, PIL image or array (see `kv.analysis.prepare_image`).
        alpha: opacity of the heatmap over the image. Defaults to 0.5.
        cmap: the matplotlib colormap. Defaults to `"jet"`.
        image_size: resize the image before the forward pass. Defaults to its own size.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        extra_tokens: class and register tokens before the patches, for a token layer. Defaults to None.

    Returns:
        A `Figure`: axes 0 the image, axes 1 the overlay (its second image is the heatmap, the size of
        the image), axes 2 the colorbar.

    Raises:
        ValueError: as `kv.analysis.heatmap`, or `alpha` outside [0, 1].

    Example:
    >>> fig = kv.plot.heatmap_figure(net, "block4_conv3", 42, "cat.jpg", image_size=64)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}.")
    network = nets.as_network(model, weights=weights)
    img = analysis.prepare_image(network, image, image_size)
    heat = analysis.heatmap(network, layer, index, img, extra_tokens=extra_tokens)
    h, w = heat.shape
    fig = _figure(2 * 3.0 * min(w / h, 2.0) + 0.8, 3.2)
    ax_img, ax_heat = fig.subplots(1, 2)
    _show_image(ax_img, img, "image")
    _show_image(ax_heat, img, f"{layer} filter {index}")
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    shown = ax_heat.imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=max(float(heat.max()), 1e-12),
                           extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    ax_heat.plot([peak[1]], [peak[0]], marker="+", color="white", markersize=10)
    fig.colorbar(shown, ax=ax_heat, shrink=0.8, label="activation")
    return fig


def results_grid(
    result: optimize.Result,
    *,
    cols: int | None = None,
    titles: Sequence[str] | None = None,
    label: str = "fmap",
    show_activation: bool = False,
):
    """A grid of visualizations from a `Result`, each titled with its filter (`fmap 12`).

    Args:
        result: what `kv.visualize_filters` or `kv.render` returned.
        cols: pictures per row. Defaults to `ceil(sqrt(N))`.
        titles: one title per picture. Defaults to `f"{label} {filter}"`.
        label: the word before each filter index. Defaults to `"fmap"`.
        show_activation: add each picture's final activation to its title. Defaults to False.

    Returns:
        A `Figure` with one axes per picture, in the result's order (empty cells switched off).

    Raises:
        ValueError: an empty result, or `titles` of the wrong length.

    Example:
    >>> result = kv.visualize_filters(net, "block3_conv3", range(4), preset="fast", size=48, steps=2, progress=False)
    >>> kv.plot.results_grid(result).savefig("grid.png")
    """
    n = len(result.images)
    if n == 0:
        raise ValueError("result holds no images to draw.")
    if titles is None:
        titles = [f"{label} {f}" for f in result.filters[:n]]
    elif len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    titles = list(titles)
    if show_activation:
        titles = [f"{t} ({a:.3g})" for t, a in zip(titles, result.scores[:n], strict=True)]
    rows, cols = images.grid_shape(n, cols)
    fig = _figure(cols * TILE_INCHES, rows * (TILE_INCHES + 0.25))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show_image(ax, result.images[i], titles[i])
        else:
            ax.set_axis_off()
    return fig


def _visualization_image(visualization, filter: int):
    if visualization is None:
        return None
    if hasattr(visualization, "images") and hasattr(visualization, "filters"):
        if filter not in list(visualization.filters):
            return None
        return visualization.images[list(visualization.filters).index(filter)]
    if isinstance(visualization, dict):
        return visualization.get(filter)
    arr = np.asarray(visualization)
    if arr.ndim == 3:
        return arr
    raise ValueError("visualization must be a kerasviz Result, a dict filter -> image, or one image (H, W, C). "
                     f"Received an array of shape {arr.shape}.")


def examples_figure(result: examples.DatasetExamples, filter: int | Sequence[int] | None = None, visualization=None):
    """A figure with one row per filter: its optimized image (when given) beside its top-k crops.

    Args:
        result: what `kv.examples.dataset_examples` returned.
        filter: a filter index (`filter=3` is filter 3) or a list of them. Defaults to all the filters
            in `result`.
        visualization: the filters' optimized images: a `Result` of `visualize_filters`, a dict
            filter -> image, or one image (for one filter). Defaults to None (crops only).

    Returns:
        A matplotlib `Figure` (save it with `fig.savefig("examples.png")`), one column per example found:
        from 6 images with `k=9`, 6 columns under the title "top 6 of 6 images", no empty cells.

    Example:
    >>> ex = kv.examples.dataset_examples(net, "block3_conv3", "photos/", k=2, filters=[3], size=64)
    >>> pictures = kv.visualize_filters(net, "block3_conv3", [3], preset="fast", size=48, steps=2, progress=False)
    >>> fig = kv.plot.examples_figure(ex, 3, pictures)
    """
    chosen = result.filters if filter is None else ([filter] if isinstance(filter, (int, np.integer)) else
                                                      list(filter))
    rows = [result.slot(int(f)) for f in chosen]
    pictures = [_visualization_image(visualization, int(f)) for f in chosen]
    lead = 1 if any(p is not None for p in pictures) else 0
    k = max(1, int((result.ids[rows] >= 0).sum(axis=1).max()))  # fewer images than asked: as many columns
    fig = _figure(1.4 * (lead + k), 1.6 * len(rows))
    axes = fig.subplots(len(rows), lead + k, squeeze=False)
    for r, (slot, f, picture) in enumerate(zip(rows, chosen, pictures, strict=True)):
        for ax in axes[r]:
            ax.set_axis_off()
        if lead:
            if picture is not None:
                axes[r, 0].imshow(np.squeeze(picture), cmap="gray")
            axes[r, 0].set_title(f"filter {f}", fontsize=8)
        for c in range(k):
            if result.ids[slot, c] < 0:
                continue
            ax = axes[r, lead + c]
            ax.imshow(np.squeeze(result.crops[slot, c]), cmap="gray")
            name = posixpath.basename(str(result.sources[slot, c]))  # a file's name, or "#<index>"
            ax.set_title(f"{name[:14]}\n{result.scores[slot, c]:.3g}", fontsize=6)
        if not lead:
            axes[r, 0].text(-0.08, 0.5, f"filter {f}", transform=axes[r, 0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=8)
    fig.suptitle(f"{result.layer}: top {k} of {result.count} images", fontsize=9)
    return fig
