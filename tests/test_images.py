import os

import numpy as np
import pytest
from PIL import Image

import kerasviz as kv
from kerasviz import images


def test_deprocess_follows_the_tutorial():
    x = np.random.default_rng(0).normal(size=(180, 180, 3))
    out = kv.deprocess(x, crop=25)
    assert out.shape == (130, 130, 3) and out.dtype == np.uint8
    ref = x - x.mean()
    ref = ref / (ref.std() + 1e-5) * 0.15
    ref = np.clip(ref[25:-25, 25:-25] + 0.5, 0, 1)
    np.testing.assert_allclose(out, np.round(ref * 255), atol=1)


def test_deprocess_does_not_change_its_input():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
    copy = x.copy()
    kv.deprocess(x)
    np.testing.assert_array_equal(x, copy)


def test_center_crop_by_size_and_border():
    x = np.arange(2 * 10 * 12 * 3).reshape(2, 10, 12, 3)
    assert kv.center_crop(x, 4).shape == (2, 4, 4, 3)
    assert kv.center_crop(x, border=2).shape == (2, 6, 8, 3)
    np.testing.assert_array_equal(kv.center_crop(x, border=2), x[:, 2:-2, 2:-2])
    with pytest.raises(ValueError, match="Cannot crop"):
        kv.center_crop(x, border=5)


@pytest.mark.parametrize("count, shape", [(64, (8, 8)), (10, (3, 4)), (1, (1, 1)), (5, (2, 3))])
def test_grid_shape(count, shape):
    assert images.grid_shape(count) == shape


def test_stitch_places_tiles_with_margins_and_a_partial_last_row():
    tiles = np.stack([np.full((4, 6, 3), 10 * (i + 1), "uint8") for i in range(10)])
    out = kv.stitch(tiles, margin=5)
    rows, cols = 3, 4
    assert out.shape == (rows * 4 + (rows - 1) * 5, cols * 6 + (cols - 1) * 5, 3)
    assert out[0, 0, 0] == 10 and out[0, 11, 0] == 20  # second tile starts at 6 + 5
    assert out[9, 0, 0] == 50  # second row, first tile
    assert out[4, 0, 0] == 0  # margin
    assert np.all(out[-4:, -6:] == 0)  # the empty last tiles


def test_stitch_labels_draw_into_tiles_and_check_counts():
    tiles = np.full((4, 32, 32, 3), 128, "uint8")
    plain = kv.stitch(tiles)
    labelled = kv.stitch(tiles, labels=[0, 1, 2, 3])
    assert not np.array_equal(plain, labelled)
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        kv.stitch(tiles, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        kv.stitch([])


def test_save_and_load_round_trip(tmp_path):
    img = (np.random.default_rng(0).uniform(size=(9, 7, 3)) * 255).astype("uint8")
    path = kv.save_image(img, tmp_path / "sub" / "a.png")
    back = kv.load_image(path)
    assert back.dtype == np.float32 and back.shape == (9, 7, 3)
    np.testing.assert_allclose(back, img / 255.0, atol=1e-6)
    assert kv.load_image(path, size=(4, 5)).shape == (4, 5, 3)


def test_save_image_explains_bad_paths_and_shapes(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="Cannot write image"):
        kv.save_image(np.zeros((4, 4, 3), "uint8"), blocker / "a.png")
    with pytest.raises(ValueError, match="use kv.stitch"):
        kv.save_image(np.zeros((2, 4, 4, 3), "uint8"), tmp_path / "b.png")


def test_load_image_conversions_and_errors(tmp_path):
    gray = Image.fromarray(np.full((5, 5), 200, "uint8"), mode="L")
    assert kv.load_image(gray).shape == (5, 5, 3)  # grayscale is repeated to RGB
    rgba = np.zeros((5, 5, 4), "uint8")
    assert kv.load_image(rgba).shape == (5, 5, 3)  # alpha dropped
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        kv.load_image(text)
    with pytest.raises(ValueError, match="No image file"):
        kv.load_image(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="3 channels; received 5"):
        kv.load_image(np.zeros((5, 5, 5), "float32"))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        kv.load_image(np.full((5, 5, 3), 7.0))


def test_multichannel_images_are_shown_as_rgb_or_a_channel_grid():
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 13)).astype("float32")
    rgb = images.channels_to_rgb(x, (3, 2, 1))
    np.testing.assert_array_equal(rgb[..., 0], x[..., 3])
    assert images.channels_to_rgb(x, (5,)).shape == (2, 6, 6, 3)
    with pytest.raises(ValueError, match="out of range for images with 13 channels"):
        images.channels_to_rgb(x, (0, 1, 13))
    grid = images.channel_grid(x[0], margin=2)
    assert grid.shape == (4 * 6 + 3 * 2, 4 * 6 + 3 * 2, 1)


def test_results_that_hold_one_picture_save_directly(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    picture = np.full((8, 8, 3), 200, "uint8")
    kv.save_image(SimpleNamespace(image=picture), tmp_path / "caricature.png")  # kv.caricature's result
    kv.save_image(SimpleNamespace(images=picture[None]), tmp_path / "one.png")  # a result of one picture
    for name in ("caricature.png", "one.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), picture)
    with pytest.raises(ValueError, match=r"holds 3 pictures: stitch them"):
        kv.save_image(SimpleNamespace(images=np.zeros((3, 8, 8, 3))), tmp_path / "many.png")


def test_show_without_a_display_saves_and_says_where(capsys):
    import matplotlib

    matplotlib.use("Agg")
    path = kv.show(np.zeros((8, 8, 3)))
    assert os.path.isfile(path) and path.endswith(".png")
    assert f"saved the image to {path}" in capsys.readouterr().out
    os.remove(path)
