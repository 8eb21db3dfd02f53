"""Figures of weights and circuits: they draw what the weights say, headless (Agg)."""

import io

import keras
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kerasviz import plot_weights
from kerasviz import weights as kvw

FAST = dict(preset="fast", size=16, steps=2)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def _images(fig: Figure):
    return [im for ax in fig.axes for im in ax.get_images()]


def _undrawn_cells(fig: Figure, min_ink: float = 0.3) -> list[int]:
    """The grid cells (axes that are not color bars) whose area is mostly the white background: an empty band."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    height = rgb.shape[0]
    empty = []
    for i, ax in enumerate(fig.axes):
        if ax.get_subplotspec() is None:  # a color bar
            continue
        box = ax.get_window_extent()
        cell = rgb[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)]
        if cell.size == 0 or np.mean(np.any(cell < 250, axis=-1)) < min_ink:
            empty.append(i)
    return empty


def test_symmetric_limit():
    assert plot_weights.symmetric_limit(np.array([-3.0, 2.0])) == 3.0
    assert plot_weights.symmetric_limit(np.zeros(4)) == 1.0


def test_weight_mosaic_tiles_maps_with_blank_gaps():
    maps = np.arange(5 * 2 * 3, dtype="float32").reshape(5, 2, 3)
    mosaic, origins = plot_weights.weight_mosaic(maps, cols=2, gap=1, label_gap=1)
    assert mosaic.shape == (3 * 3, 2 * 4 - 1)
    assert origins[3] == (4, 4)
    for (top, left), m in zip(origins, maps, strict=True):
        np.testing.assert_array_equal(mosaic[top : top + 2, left : left + 3], m)
    assert np.isnan(mosaic).sum() == mosaic.size - maps.size


def test_first_layer_kernels_figure_shows_the_kernel_mosaic(tiny_cnn):
    fig = plot_weights.first_layer_kernels_figure(tiny_cnn)
    assert isinstance(fig, Figure)
    (image,) = _images(fig)
    np.testing.assert_array_equal(image.get_array(), kvw.first_layer_kernels_image(tiny_cnn))
    assert "conv1: 8 kernels" in fig.axes[0].get_title()
    assert _png(fig).startswith(b"\x89PNG")


def test_kernel_figure_draws_every_slice_on_a_symmetric_diverging_scale(tiny_cnn):
    fig = plot_weights.kernel_figure(tiny_cnn, "conv2", 3)
    (image,) = _images(fig)
    kernel = kvw.filter_kernel(tiny_cnn, "conv2", 3)
    limit = np.abs(kernel).max()
    assert image.get_cmap().name.startswith("RdBu_r")
    np.testing.assert_allclose(image.get_clim(), (-limit, limit), rtol=1e-6)
    data = np.ma.filled(image.get_array(), np.nan)
    assert np.sum(~np.isnan(data)) == kernel.size  # all 8 input channels, 3x3 each
    np.testing.assert_allclose(data[1:4, 0:3], kernel[:, :, 0])  # first tile, below its label row
    assert len(fig.axes) == 2  # the mosaic and its color bar
    assert _undrawn_cells(fig) == []
    assert _png(fig)


def test_kernel_figure_keeps_the_strongest_channels_when_there_are_many(tiny_cnn):
    kernel = kvw.filter_kernel(tiny_cnn, "conv2", 0)
    strongest = np.argsort(-np.sqrt((kernel**2).sum(axis=(0, 1))))[:3]
    fig = plot_weights.kernel_figure(tiny_cnn, "conv2", 0, max_channels=3)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == [str(c) for c in strongest]
    assert "3 of 8 input channels" in fig.texts[0].get_text()
    chosen = plot_weights.kernel_figure(tiny_cnn, "conv2", 0, channels=[5, 1])
    assert [t.get_text() for t in chosen.axes[0].texts] == ["5", "1"]


def test_kernel_figure_errors(tiny_cnn):
    with pytest.raises(ValueError, match=r"channels must be input channels of 'conv2' \(0-7\)"):
        plot_weights.kernel_figure(tiny_cnn, "conv2", 0, channels=[8])
    with pytest.raises(ValueError, match="Filter 99 is out of range"):
        plot_weights.kernel_figure(tiny_cnn, "conv2", 99)
    with pytest.raises(ValueError, match="not a convolution"):
        plot_weights.kernel_figure(tiny_cnn, "pool1", 0)


def test_circuit_figure_puts_a_filter_beside_its_top_inputs(tiny_cnn):
    fig = plot_weights.circuit_figure(tiny_cnn, "conv2", 4, k=3, **FAST)
    top = kvw.top_inputs(tiny_cnn, "conv2", 4, k=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "conv2\nfilter 4"
    assert [t for t in titles if t.startswith("conv1\n")] == [f"conv1\n{c}" for c in top.channels]
    assert [t for t in titles if t.startswith("|w|")] == [f"|w| = {n:.3g}" for n in top.norms]
    images = _images(fig)
    assert len(images) == 1 + 3 + 3  # the filter, its 3 inputs, their 3 kernel slices
    assert images[0].get_array().shape == (16, 16, 3)
    slices = [im for im in images if im.get_array().shape == (3, 3)]
    limit = np.abs(top.slices).max()
    for im, expected in zip(slices, top.slices, strict=True):
        np.testing.assert_allclose(im.get_array(), expected)
        np.testing.assert_allclose(im.get_clim(), (-limit, limit), rtol=1e-6)
    assert _undrawn_cells(fig) == []
    assert _png(fig)


def test_circuit_figure_of_a_first_layer_names_colors(hed_vgg16):
    fig = plot_weights.circuit_figure(hed_vgg16, "block1_conv1", 0, k=3, preset="fast", size=32, steps=2)
    labels = [ax.get_title() for ax in fig.axes if "\nchannel " in ax.get_title()]
    assert sorted(labels) == sorted(f"{hed_vgg16.model.layers[0].name}\nchannel {c}" for c in "BGR")
    swatches = {ax.get_title()[-1]: ax.get_images()[0].get_array() for ax in fig.axes if "\nchannel " in ax.get_title()}
    assert np.argmax(swatches["R"][0, 0]) == 0 and np.argmax(swatches["B"][0, 0]) == 2  # each input shows its color
    assert _undrawn_cells(fig) == []


def test_circuit_figure_validates_before_optimizing(tiny_cnn):
    with pytest.raises(ValueError, match="Filter 16 is out of range"):
        plot_weights.circuit_figure(tiny_cnn, "conv2", 16, **FAST)


def test_expanded_weights_figure_shows_the_top_expanded_slices():
    rng = np.random.default_rng(0)
    inputs = keras.Input((None, None, 4))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="a")(inputs)
    out = keras.layers.Conv2D(2, 3, padding="same", name="b")(x)
    model = keras.Model(inputs, out, name="two")
    model.get_layer("a").set_weights([rng.normal(size=(3, 3, 4, 5)).astype("f"), np.zeros(5, "f")])
    fig = plot_weights.expanded_weights_figure(model, model.layers[0].name, "b", 1, k=2, size=5)
    top = kvw.top_expanded(model, model.layers[0].name, "b", 1, k=2, size=5)
    slices = [im for im in _images(fig) if im.get_array().shape == (5, 5)]
    assert len(slices) == 2
    np.testing.assert_allclose(slices[0].get_array(), top.slices[0])
    assert "expanded weights" in fig.texts[0].get_text()
    titles = [ax.get_title() for ax in fig.axes]
    expected = [f"{top.input_layer}\n{c}\n|w| = {n:.3g}" for c, n in zip(top.channels, top.norms, strict=True)]
    assert titles[1:3] == expected


def test_expanded_weights_figure_draws_every_cell(tiny_cnn):
    """No empty band: the figure once kept a row for pictures it never drew (docs/images/expanded_weights.png)."""
    fig = plot_weights.expanded_weights_figure(tiny_cnn, "conv1", "conv2", 3, k=4, size=3)
    assert len([ax for ax in fig.axes if ax.get_subplotspec() is not None]) == 1 + 4  # the norms, 4 maps
    assert _undrawn_cells(fig) == []
