"""Figures render headless (no pyplot, Agg canvas) with the axes, titles and data they promise."""

import matplotlib
import numpy as np
import pytest
from PIL import Image

import kerasviz as kv
from kerasviz import analysis, plot


@pytest.fixture(scope="module")
def tiny_result(tiny_cnn):
    return kv.visualize_filters(tiny_cnn, "conv2", "all", preset="fast", size=16, steps=2, progress=False)


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def assert_saves(fig, path):
    fig.savefig(path, dpi=50)
    with Image.open(path) as img:
        assert img.size[0] > 50 and img.size[1] > 50


def test_top_filters_figure_shows_image_curve_and_top_filters(hed_vgg16, hopper, tmp_path):
    fig = plot.top_filters_figure(hed_vgg16, "block1_conv2", hopper, k=3, preset="fast", size=32, steps=3)
    top = analysis.top_filters(hed_vgg16, "block1_conv2", hopper, k=3)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 2 + 3
    assert titles(fig)[0] == "image"
    assert titles(fig)[1] == "block1_conv2: top 3 of 64 filters"
    assert titles(fig)[2:] == [f"filter {i} ({v:.3g})" for i, v in zip(top.indices, top.values, strict=True)]
    curve = fig.axes[1]
    (line,) = curve.get_lines()
    np.testing.assert_allclose(line.get_ydata(), analysis.mean_activations(hed_vgg16, "block1_conv2", hopper),
                               rtol=1e-5)
    marks = curve.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(marks)[:, 0], top.indices)
    assert [t.get_text() for t in curve.texts] == [str(i) for i in top.indices]
    assert fig.axes[2].images[0].get_array().shape == (32, 32, 3)  # the filter pictures at --size
    assert_saves(fig, tmp_path / "top.png")


def test_top_filters_figure_reuses_given_visualizations(tiny_cnn, tiny_result, hopper):
    fig = plot.top_filters_figure(tiny_cnn, "conv2", hopper, k=4, by="max", visualizations=tiny_result)
    top = analysis.top_filters(tiny_cnn, "conv2", hopper, k=4, by="max")
    for ax, f in zip(fig.axes[2:], top.indices, strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), tiny_result.images[int(f)])
    assert fig.axes[1].get_ylabel() == "max activation"
    partial = kv.visualize_filters(tiny_cnn, "conv2", [0], preset="fast", size=16, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"visualizations has no picture of filter"):
        plot.top_filters_figure(tiny_cnn, "conv2", hopper, k=4, visualizations=partial)


def test_feature_maps_figure_is_a_normalized_viridis_grid(hed_vgg16, cat, tmp_path):
    fig = plot.feature_maps_figure(hed_vgg16, "block1_conv2", cat, filters=range(20))
    (ax,) = fig.axes
    mosaic = ax.images[0].get_array()
    margin = 3  # 5% of the maps' 48 pixels, rounded up
    assert mosaic.shape == (2 * 36 + margin, 16 * 48 + 15 * margin, 3)  # 16 per row, 2 rows
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"+{c}" for c in range(16)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "16"]
    assert ax.get_title() == "block1_conv2: 20 feature maps (36x48)"
    act = analysis.activations(hed_vgg16, "block1_conv2", cat)["block1_conv2"]
    r, c = divmod(17, 16)  # filter 17: row 1, column 1
    tile = mosaic[r * (36 + margin) : r * (36 + margin) + 36, c * (48 + margin) : c * (48 + margin) + 48]
    fmap = act[..., 17]
    expected = kv.to_uint8(matplotlib.colormaps["viridis"]((fmap - fmap.min()) / (fmap.max() - fmap.min()))[..., :3])
    np.testing.assert_allclose(tile.astype(int), expected.astype(int), atol=1)
    empty = mosaic[36 + margin :, 4 * (48 + margin) :]  # cells after the 20th map stay white
    assert (empty == 255).all()
    assert_saves(fig, tmp_path / "maps.png")


def test_feature_maps_figure_draws_every_channel_by_default(tiny_cnn, cat):
    fig = plot.feature_maps_figure(tiny_cnn, "conv1", cat, cols=4)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "4"]  # 8 maps, 4 per row
    assert ax.get_title().startswith("conv1: 8 feature maps")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layer="gap"), r"Layer 'gap' outputs shape \(16,\) per image, with no spatial map"),
        (dict(filters=[3, 8]), r"filters must be indices in 0-7 for layer 'conv1'"),
        (dict(filters=[]), r"filters must be indices in 0-7"),
        (dict(cols=0), r"cols must be a positive int. Received: cols=0"),
    ],
)
def test_feature_maps_figure_rejects_bad_arguments(tiny_cnn, cat, kwargs, message):
    layer = kwargs.pop("layer", "conv1")
    with pytest.raises(ValueError, match=message):
        plot.feature_maps_figure(tiny_cnn, layer, cat, **kwargs)


def test_heatmap_figure_overlays_the_upsampled_map(hed_vgg16, cat, tmp_path):
    fig = plot.heatmap_figure(hed_vgg16, "block2_conv2", 5, cat)
    assert len(fig.axes) == 3  # image, overlay, colorbar
    assert titles(fig)[:2] == ["image", "block2_conv2 filter 5"]
    overlay = fig.axes[1]
    assert len(overlay.images) == 2
    heat = overlay.images[1].get_array()
    assert heat.shape == (36, 48)
    np.testing.assert_allclose(heat, analysis.heatmap(hed_vgg16, "block2_conv2", 5, cat), rtol=1e-5)
    assert overlay.images[1].get_alpha() == 0.5
    (marker,) = overlay.get_lines()  # the peak
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (col, row)
    assert_saves(fig, tmp_path / "heat.png")
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        plot.heatmap_figure(hed_vgg16, "block2_conv2", 5, cat, alpha=2.0)


def test_results_grid_titles_each_visualization(tiny_result, tmp_path):
    fig = plot.results_grid(tiny_result)
    assert len(fig.axes) == 16  # 4x4
    assert titles(fig) == [f"fmap {i}" for i in range(16)]
    np.testing.assert_array_equal(fig.axes[12].images[0].get_array(), tiny_result.images[12])
    assert_saves(fig, tmp_path / "grid.png")


def test_results_grid_options(tiny_result):
    fig = plot.results_grid(tiny_result, cols=6, label="filter", show_activation=True)
    assert len(fig.axes) == 18  # 3 rows of 6, the last two cells switched off
    assert not fig.axes[17].axison and fig.axes[15].get_title().startswith("filter 15 (")
    named = plot.results_grid(tiny_result, titles=[str(i) for i in range(16)])
    assert titles(named)[3] == "3"
    with pytest.raises(ValueError, match=r"Got 2 titles for 16 images"):
        plot.results_grid(tiny_result, titles=["a", "b"])


def test_figures_leave_no_pyplot_figure_open(tiny_cnn, cat):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot.feature_maps_figure(tiny_cnn, "conv1", cat)
    plot.heatmap_figure(tiny_cnn, "conv1", 0, cat)
    assert plt.get_fignums() == before


def _white_runs(line: np.ndarray) -> list[int]:
    """The lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], line.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_feature_maps_figure_shows_the_gaps_at_its_size(tiny_cnn):
    """Large maps drawn small: the gaps between them scale with the maps, so each stays >= 2 pixels on screen
    (a fixed 2-pixel margin vanished under 192-pixel maps drawn 90 pixels wide)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    image = np.random.default_rng(0).uniform(size=(192, 192, 3)).astype("float32")
    fig = plot.feature_maps_figure(tiny_cnn, "conv1", image, cols=4)  # 8 maps of 192x192: 2 rows of 4
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    box = fig.axes[0].images[0].get_window_extent()
    height = rgb.shape[0]
    drawn = rgb[int(height - box.y1) + 2 : int(height - box.y0) - 2, int(box.x0) + 2 : int(box.x1) - 2]
    white = np.all(drawn >= 245, axis=-1)  # viridis has no white: white is a gap
    columns, rows = _white_runs(white.all(axis=0)), _white_runs(white.all(axis=1))
    assert len(columns) == 3 and min(columns) >= 2, columns
    assert len(rows) == 1 and min(rows) >= 2, rows


def test_examples_figure_of_fewer_images_than_k_draws_no_empty_cell(tiny_cnn):
    photos = np.random.default_rng(0).uniform(0, 255, size=(6, 24, 24, 3)).astype("uint8")
    ex = kv.examples.dataset_examples(tiny_cnn, "conv2", photos, k=9, filters=[0, 1], size=24)
    fig = plot.examples_figure(ex)
    assert fig.texts[0].get_text() == "conv2: top 6 of 6 images"
    assert len(fig.axes) == 2 * 6
    assert all(ax.get_images() for ax in fig.axes)  # every cell holds a crop
