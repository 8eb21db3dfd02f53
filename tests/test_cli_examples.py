"""`kerasviz examples` and `kerasviz caricature`."""

import numpy as np
import pytest
from conftest import make_grating_model, make_tiny_cnn
from PIL import Image

from kerasviz import cli


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny, gratings = folder / "tiny.keras", folder / "gratings.keras"
    make_tiny_cnn().save(tiny)
    make_grating_model().save(gratings)
    return str(tiny), str(gratings)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return str(folder)


def test_examples_on_a_missing_folder_exits_2(capsys, model_files):
    code = cli.main(["examples", model_files[0], "conv1", "/no/such/folder", "--out", "/tmp/kv_never.png"])
    assert code == 2
    assert "No folder at '/no/such/folder'" in capsys.readouterr().err


def test_examples_writes_the_figure(tmp_path, capsys, model_files, image_folder):
    out = tmp_path / "fig.png"
    code = cli.main(["examples", model_files[0], "conv2", image_folder, "-k", "3", "--filters", "0-2",
                     "--size", "24", "--steps", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as fig:
        assert fig.size[0] > 200
    assert "top 3 of 6 images for 3 filters of conv2 (receptive field 8x8 px)" in capsys.readouterr().out


def test_caricature_writes_the_image(tmp_path, capsys, model_files):
    photo = tmp_path / "photo.png"
    yy, xx = np.mgrid[0:40, 0:40]
    Image.fromarray(np.repeat((127 + 100 * np.cos(2 * np.pi * xx / 7.0))[..., None], 3, -1).astype("uint8")
                    ).save(photo)
    out = tmp_path / "c.png"
    code = cli.main(["caricature", model_files[1], "gabor", str(photo), "--preset", "fast", "--size", "40",
                     "--steps", "3", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as picture:
        assert picture.size == (40, 40)
    assert "cosine similarity to the image at gabor" in capsys.readouterr().out


def test_caricature_on_a_missing_image_exits_2(capsys, model_files):
    code = cli.main(["caricature", model_files[1], "gabor", "/no/such.png"])
    assert code == 2 and "No image file at '/no/such.png'" in capsys.readouterr().err



def test_caricature_takes_the_precision(tmp_path, capsys, model_files):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "c.png"
    code = cli.main(["caricature", model_files[1], "gabor", str(photo), "--preset", "fast", "--size", "24",
                     "--steps", "2", "--precision", "bfloat16", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert out.exists()


def test_examples_default_filters_are_clipped_to_a_small_layer(tmp_path, capsys, model_files, image_folder):
    """The gratings layer has 4 channels: the default (the first 8) gives those 4 instead of an error."""
    out = tmp_path / "fig.png"
    code = cli.main(["examples", model_files[1], "gabor", image_folder, "-k", "2", "--size", "24",
                     "--no-visualization", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "for 4 filters of gabor" in capsys.readouterr().out
