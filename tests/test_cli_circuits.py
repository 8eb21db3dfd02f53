"""`kerasviz circuit`, `kernels` and `expanded`: figures written, user errors end with exit code 2."""

import os

import numpy as np
import pytest
from PIL import Image

from kerasviz import cli, nets
from kerasviz import weights as kvw

FAST = ["--preset", "fast", "--size", "16", "--steps", "2"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    from conftest import make_tiny_cnn

    path = str(tmp_path_factory.mktemp("models") / "tiny.keras")
    make_tiny_cnn().save(path)
    return path


def _opens_as_image(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_circuit_writes_a_figure_and_lists_the_top_inputs(tiny_path, tmp_path, capsys):
    out = str(tmp_path / "circuit.png")
    assert cli.main(["circuit", tiny_path, "conv2", "3", "-k", "2", "--out", out, "--weights", "none", *FAST]) == 0
    width, height = _opens_as_image(out)
    assert width > height > 100
    top = kvw.top_inputs(nets.load_model_file(tiny_path), "conv2", 3, k=2)
    printed = capsys.readouterr().out
    assert f"top 2 inputs from conv1 (channel (weight norm)): {top.channels[0]} ({top.norms[0]:.3g})" in printed


@pytest.mark.parametrize(
    "args, error",
    [
        (["circuit", "{model}", "conv3", "0"], "Layer 'conv3' not found in tiny_cnn. Did you mean"),
        (["circuit", "{model}", "pool1", "0"], "layer='pool1' is a MaxPooling2D layer of tiny_cnn, not a convolution"),
        (["circuit", "{model}", "conv2", "16"], "Filter 16 is out of range for layer 'conv2', which has 16 channels"),
        (["circuit", "{model}", "conv2", "0", "-k", "0"], "-k must be >= 1. Received: 0."),
        (["kernels", "{model}", "--filter", "0"], "--filter needs a LAYER"),
        (["kernels", "{model}", "conv2"], "layer='conv2' has 8 input channels"),
        (["expanded", "{model}", "conv2", "conv1", "0"], "layer_from='conv2' is not before layer_to='conv1'"),
        (["expanded", "{model}", "conv1", "conv2", "0", "--size", "0"], "--size must be >= 1"),
    ],
)
def test_user_errors_exit_with_code_2(tiny_path, tmp_path, capsys, args, error):
    argv = [a.format(model=tiny_path) for a in args] + ["--out", str(tmp_path / "x.png"), "--weights", "none"]
    assert cli.main(argv) == 2
    assert error in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.png")


def test_kernels_writes_first_layer_kernels_or_one_filters_slices(tiny_path, tmp_path):
    raw = str(tmp_path / "raw.png")
    assert cli.main(["kernels", tiny_path, "--raw", "--out", raw, "--weights", "none"]) == 0
    with Image.open(raw) as im:
        saved = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(saved, kvw.first_layer_kernels_image(nets.load_model_file(tiny_path)))
    figure = str(tmp_path / "filter.png")
    assert cli.main(["kernels", tiny_path, "conv2", "--filter", "1", "--out", figure, "--weights", "none"]) == 0
    assert _opens_as_image(figure)[0] > 100


def test_expanded_writes_a_figure(tiny_path, tmp_path, capsys):
    out = str(tmp_path / "expanded.png")
    assert cli.main(["expanded", tiny_path, "conv1", "conv2", "0", "-k", "3", "--out", out, "--weights", "none"]) == 0
    assert _opens_as_image(out)[0] > 100
    assert "expanded weights conv1 -> conv2 filter 0" in capsys.readouterr().out


def test_circuit_on_offline_vgg16(tmp_path, capsys):
    out = str(tmp_path / "vgg.png")
    argv = ["circuit", "VGG16", "block2_conv1", "0", "-k", "2", "--weights", "hed", "--out", out,
            "--preset", "fast", "--size", "32", "--steps", "2"]
    assert cli.main(argv) == 0
    assert "top 2 inputs from block1_conv2" in capsys.readouterr().out
    assert os.path.getsize(out) > 1000

