"""`kerasviz top|dream|predict|maps|heatmap` end to end, in process: outputs written, exit code 2 on bad input."""

import re

import keras
import numpy as np
import pytest
from conftest import make_grating_model, make_tiny_cnn
from PIL import Image

import kerasviz as kv
from kerasviz import analysis, cli


@pytest.fixture(scope="module")
def hopper_path():
    from matplotlib import cbook

    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small cat photo, a grayscale photo, a text file, a tiny CNN and a tiny classifier as .keras files."""
    from skimage import data

    root = tmp_path_factory.mktemp("cli_analysis")
    cat = kv.load_image(data.chelsea(), size=(30, 45))
    kv.save_image(cat, root / "cat.png")
    Image.fromarray(kv.to_uint8(cat.mean(axis=-1))).save(root / "gray.png")
    (root / "notes.txt").write_text("not an image")
    make_tiny_cnn().save(root / "tiny.keras")
    make_grating_model().save(root / "grating.keras")
    inputs = keras.Input((None, None, 3))
    dense = keras.layers.Dense(1000, activation="softmax", name="predictions")
    classifier = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)), name="toy")
    bias = np.zeros(1000, "float32")
    bias[[285, 281]] = [6.0, 5.0]
    dense.set_weights([np.zeros((3, 1000), "float32"), bias])
    classifier.save(root / "classifier.keras")
    return {name: str(root / name) for name in
            ("cat.png", "gray.png", "notes.txt", "tiny.keras", "grating.keras", "classifier.keras")} | {"dir": root}


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_top_writes_the_figure_and_prints_the_ranking(files, hopper_path, tmp_path, capsys):
    out = tmp_path / "top.png"
    code, stdout, err = run(["top", files["tiny.keras"], "conv2", hopper_path, "-k", 3, "--image-size", 32,
                             "--preset", "fast", "--size", 16, "--steps", 2, "--out", out], capsys)
    assert code == 0, err
    assert out.exists() and Image.open(out).size[0] > 100
    net = kv.nets.load_model_file(files["tiny.keras"])
    expected = analysis.top_filters(net, "conv2", hopper_path, k=3, size=32)
    assert stdout.splitlines()[0].split() == ["rank", "filter", "mean", "activation"]
    rows = [line.split() for line in stdout.splitlines()[1:4]]
    assert [int(r[1]) for r in rows] == expected.indices.tolist()
    np.testing.assert_allclose([float(r[2]) for r in rows], expected.values, rtol=1e-3)
    assert stdout.splitlines()[-1] == f"wrote {out}"


def test_dream_writes_an_image_the_size_of_the_input(files, tmp_path, capsys):
    out = tmp_path / "dream.png"
    code, stdout, err = run(["dream", "VGG16", "block1_conv2,block2_conv1", files["cat.png"], "--weights", "hed",
                             "--size", 24, "--steps", 2, "--octaves", 1, "--out", out], capsys)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == (45, 30)
        dreamed = np.asarray(img)
    assert np.abs(dreamed.astype(int) - np.asarray(Image.open(files["cat.png"])).astype(int)).mean() > 0.5
    assert "dream of block1_conv2, block2_conv1 (1 octaves x 2 steps)" in stdout


def test_predict_prints_imagenet_names(files, capsys):
    code, stdout, err = run(["predict", files["classifier.keras"], files["cat.png"], "--top", 2], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].split()[1:] == ["285", "Egyptian_cat"]
    assert lines[1].split()[1:] == ["281", "tabby"]


def test_maps_and_heatmap_write_figures(files, tmp_path, capsys):
    code, _, err = run(["maps", files["tiny.keras"], "conv1", files["cat.png"], "--filters", "0-5",
                        "--out", tmp_path / "maps.png"], capsys)
    assert code == 0, err
    assert (tmp_path / "maps.png").exists()
    code, _, err = run(["heatmap", files["tiny.keras"], "conv2", 3, files["cat.png"],
                        "--out", tmp_path / "heat.png"], capsys)
    assert code == 0, err
    assert (tmp_path / "heat.png").exists()


def test_grayscale_images_are_converted(files, tmp_path, capsys):
    code, _, err = run(["maps", files["tiny.keras"], "conv1", files["gray.png"], "--out", tmp_path / "g.png"],
                       capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["top", "{tiny}", "conv1", "{missing}"], r"No image file at"),
        (["top", "{tiny}", "conv1", "{text}"], r"is not an image file PIL can read"),
        (["dream", "{tiny}", "conv1", "{text}"], r"is not an image file PIL can read"),
        (["top", "{tiny}", "conv9", "{cat}", "--out", "{out}"], r"Layer 'conv9' not found .* Did you mean"),
        (["top", "{tiny}", "conv1", "{cat}", "-k", "0"], r"-k must be >= 1. Received: 0"),
        (["top", "{tiny}", "conv1", "{cat}", "-k", "9", "--out", "{out}"], r"k must be an int in 1-8"),
        (["top", "{tiny}", "conv1", "{cat}", "--steps", "0"], r"--steps must be >= 1"),
        (["dream", "{tiny}", "conv1", "{cat}", "--size", "4"], r"--size must be >= 8"),
        (["dream", "{tiny}", ",", "{cat}", "--out", "{out}"], r"LAYER must be a layer name"),
        (["heatmap", "{tiny}", "conv1", "8", "{cat}", "--out", "{out}"], r"Filter 8 is out of range"),
        (["maps", "{tiny}", "conv1", "{cat}", "--filters", "x", "--out", "{out}"], r"--filters must look like"),
        (["predict", "{grating}", "{cat}"], r"predict needs a classifier"),
        (["predict", "VGG16", "{cat}", "--weights", "hed"], r"weights='hed' has no classifier"),
        (["top", "NoSuchNet", "conv1", "{cat}", "--out", "{out}"], r"NoSuchNet"),
        (["top", "{tiny}", "conv1", "{cat}", "--out", "{text}/top.png"], r"Cannot write .*not a folder"),
        (["top", "{tiny}", "conv1", "{cat}", "--out", "{dir}/top.xyz"], r"--out must end in one of .*\.png"),
        (["dream", "{tiny}", "conv1", "{cat}", "--out", "{dir}/dream.xyz"], r"--out must end in one of .*\.png"),
    ],
)
def test_bad_input_exits_with_code_2(files, tmp_path, capsys, argv, message):
    paths = {"tiny": files["tiny.keras"], "missing": str(tmp_path / "missing.jpg"), "text": files["notes.txt"],
             "cat": files["cat.png"], "out": str(tmp_path / "out.png"), "grating": files["grating.keras"],
             "dir": str(tmp_path)}
    code, _, err = run([a.format(**paths) for a in argv], capsys)
    assert code == 2
    assert err.startswith("kerasviz: error: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_missing_arguments_exit_with_code_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["top", "VGG16"])
    assert e.value.code == 2
    assert "the following arguments are required: layer, image" in capsys.readouterr().err
