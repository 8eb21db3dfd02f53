import numpy as np
import pytest
from PIL import Image

from kerasviz import cli


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """`kerasviz atlas` caches its filters: in this test's folder, not the user's."""
    monkeypatch.setenv("KERASVIZ_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "text, expected", [("0-3", [0, 1, 2, 3]), ("0,3,5-7", [0, 3, 5, 6, 7]), ("all", "all"), ("4", [4])]
)
def test_parse_filters(text, expected):
    assert cli.parse_filters(text) == expected


@pytest.mark.parametrize("text", ["a-b", "5-2", "1,,2"])
def test_parse_filters_rejects_nonsense(text):
    with pytest.raises(ValueError, match="--filters"):
        cli.parse_filters(text)


def test_atlas_writes_a_mosaic(tmp_path, capsys):
    out = tmp_path / "atlas.png"
    code = cli.main(["atlas", "VGG16", "block1_conv2", "--weights", "hed", "--filters", "0-3", "--out", str(out),
                     "--preset", "fast", "--size", "24", "--steps", "2", "--labels"])
    assert code == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (2 * 24 + 5, 2 * 24 + 5, 3)
    assert "4 filters of block1_conv2" in capsys.readouterr().out


def test_atlas_and_gallery_take_a_precision(tmp_path, capsys):
    from kerasviz.cli.main import build_parser

    parser = build_parser()
    for command in (["atlas", "VGG16", "block1_conv2"], ["gallery", "VGG16"]):
        assert parser.parse_args(command).precision is None  # the preset's
        assert parser.parse_args(command + ["--precision", "bfloat16"]).precision == "bfloat16"
    out = tmp_path / "atlas.png"
    assert cli.main(["atlas", "VGG16", "block1_conv2", "--weights", "hed", "--filters", "0-1", "--out", str(out),
                     "--preset", "fast", "--size", "16", "--steps", "2", "--precision", "bfloat16"]) == 0
    assert "2 filters of block1_conv2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["atlas", "VGG16", "block1_conv2", "--precision", "half"])
    assert stop.value.code == 2 and "invalid choice: 'half'" in capsys.readouterr().err


def test_layers_lists_every_layer(capsys):
    assert cli.main(["layers", "VGG16"]) == 0
    out = capsys.readouterr().out
    assert "block3_conv3" in out and "Conv2D" in out and "256" in out


def test_models_and_presets(capsys):
    assert cli.main(["models", "vgg*"]) == 0
    assert capsys.readouterr().out.split() == ["VGG16", "VGG19"]
    assert cli.main(["presets"]) == 0
    assert "quality (default)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["atlas", "VGG61", "block1_conv1", "--weights", "none"], "'VGG16'?"),
        (["atlas", "VGG16", "block9_conv1", "--weights", "none"], "Layer 'block9_conv1' not found"),
        (["atlas", "VGG16", "block1_conv1", "--weights", "none", "--filters", "70"], "Filter 70 is out of range"),
        (["atlas", "VGG16", "block1_conv1", "--weights", "none", "--steps", "0"], "steps must be a positive"),
        (["atlas", "VGG16", "block1_conv1", "--weights", "none", "--out", "/proc/x/a.png"], "Cannot write"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_check_writable_rejects_a_file_as_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        cli.check_writable(str(blocker / "a.png"))
    cli.check_writable(str(tmp_path / "new" / "a.png"))  # missing folders are fine: they get made


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A fixed-size grayscale model saved as a legacy .h5 and a .keras file, a junk weights file, a junk
    model file and a SavedModel-looking folder."""
    import keras

    folder = tmp_path_factory.mktemp("files")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(6, 3, activation="relu", name="g1")],
                             name="gray")
    files = {"h5": folder / "gray.hdf5", "keras": folder / "gray.keras", "junk_weights": folder / "junk.weights.h5",
             "junk_model": folder / "junk.h5", "saved_model": folder / "exported"}
    model.save(files["h5"])
    model.save(files["keras"])
    files["junk_weights"].write_bytes(b"not an HDF5 file")
    files["junk_model"].write_bytes(b"not an HDF5 file")
    files["saved_model"].mkdir()
    (files["saved_model"] / "saved_model.pb").write_bytes(b"")
    return {k: str(v) for k, v in files.items()}


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_atlas_of_a_model_file_with_its_scaling(kind, model_files, tmp_path, capsys):
    out = tmp_path / "atlas.png"
    code = cli.main(["atlas", model_files[kind], "g1", "--filters", "0-1", "--out", str(out), "--preset", "fast",
                     "--steps", "2", "--input-range", "-1", "1"])
    assert code == 0 and out.exists()
    assert "2 filters of g1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["atlas", "VGG16", "block1_conv1", "--weights", "{junk_weights}"],
         "Could not load the weights file '{junk_weights}' into VGG16"),
        (["atlas", "{junk_model}", "g1"], "Could not load the model file '{junk_model}'"),
        (["atlas", "{saved_model}", "g1"], "is a TensorFlow SavedModel folder"),
        (["layers", "{saved_model}"], "save it as a .keras or .h5 file"),
        (["atlas", "{h5}", "g1", "--preprocess", "tf", "--input-range", "0", "1"], "not allowed with argument"),
    ],
)
def test_file_errors_name_the_file_in_one_line(argv, message, model_files, capsys):
    argv = [a.format(**model_files) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own usage error
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message.format(**model_files) in err and "Traceback" not in err
    if "not allowed" not in message:
        assert err.count("\n") == 1


def _run(code: str, *args: str, env_drop=("TF_CPP_MIN_LOG_LEVEL",)):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return subprocess.run([sys.executable, *(["-c", code] if code else []), *args], capture_output=True, text=True,
                          env=env, timeout=300)


FRAMEWORK_LINE = r"(^|\n)[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuda"


@pytest.mark.parametrize("argv", [["--help"], ["atlas", "--help"], ["gallery", "--help"], ["models", "res*"],
                                  ["presets"]])
def test_help_and_listings_start_no_framework(argv):
    code = (f"import sys\nfrom kerasviz.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('imported:', [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules])")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert "imported: []" in out.stdout
    assert not __import__("re").search(FRAMEWORK_LINE, out.stdout + out.stderr)


def test_listings_print_what_the_framework_would(capsys):
    import keras

    from kerasviz import catalog

    assert [n for n in catalog.list_models() if not hasattr(keras.applications, n)] == []  # the same list
    assert cli.main(["models", "efficientnetv2*"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["EfficientNetV2B0", "EfficientNetV2B1"]


def test_a_run_prints_no_framework_line_unless_verbose(tmp_path):
    import re

    argv = ["-m", "kerasviz", "atlas", "VGG16", "block1_conv1", "--weights", "hed", "--filters", "0-1",
            "--size", "24", "--steps", "2", "--preset", "fast", "--out", str(tmp_path / "a.png")]
    quiet = _run("", *argv)
    assert quiet.returncode == 0, quiet.stderr
    assert "2 filters of block1_conv1" in quiet.stdout
    assert not re.search(FRAMEWORK_LINE, quiet.stdout + quiet.stderr), quiet.stderr
    loud = _run("", *argv, "--verbose")
    assert loud.returncode == 0 and re.search(FRAMEWORK_LINE, loud.stderr)


def test_importing_kerasviz_changes_no_setting_of_the_user():
    # keras first: what the framework itself sets at import is not kerasviz's doing
    code = ("import os, logging, warnings, keras\n"
            "state = lambda: (dict(os.environ), logging.root.level, list(logging.root.handlers),\n"
            "                 list(warnings.filters))\n"
            "before = state()\nimport kerasviz as kv\nkv.presets.get('fast'); kv.list_models()\n"
            "kv.nets.as_network(keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name='c')]))\n"
            "print(before == state())")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("True")


def test_atlas_caches_its_filters_and_reads_them_back(tmp_path, capsys):
    argv = ["atlas", "VGG16", "block1_conv2", "--weights", "hed", "--filters", "0-1", "--out", str(tmp_path / "a.png"),
            "--preset", "fast", "--size", "24", "--steps", "2", "--cache-dir", str(tmp_path / "mine")]
    assert cli.main(argv) == 0
    first = np.asarray(Image.open(tmp_path / "a.png"))
    assert cli.main(argv) == 0
    again = capsys.readouterr().out.splitlines()[-1]
    assert "2 filters of block1_conv2" in again and "2 from the cache" in again
    assert not (tmp_path / "cache").exists()  # --cache-dir, not $KERASVIZ_CACHE
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), first)


def test_atlas_filters_4_is_filter_4(tmp_path, capsys):
    out = tmp_path / "a.png"
    assert cli.main(["atlas", "VGG16", "block1_conv2", "--weights", "hed", "--filters", "4", "--out", str(out),
                     "--preset", "fast", "--size", "24", "--steps", "2"]) == 0
    assert np.asarray(Image.open(out)).shape == (24, 24, 3)
    assert "1 filters of block1_conv2" in capsys.readouterr().out
    cached = list((tmp_path / "cache").rglob("0*.json"))
    assert [p.name for p in cached] == ["00004.json"]


def _dense_only(keras):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, name="hidden"), keras.layers.Dense(10)])


def _one_conv(keras):
    inputs = keras.Input((8, 8, 3), name="pixels")
    return keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs))


@pytest.mark.parametrize("make, layer, message", [
    (_dense_only, "hidden", "kerasviz draws images: this model's input is (None, 64), not an image"),
    (_one_conv, "pixels", "Layer 'pixels' is the input of"),
])
def test_atlas_of_what_it_cannot_draw_is_one_line(make, layer, message, tmp_path, capsys):
    import keras

    path = tmp_path / "m.keras"
    make(keras).save(path)
    assert cli.main(["atlas", str(path), layer, "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_atlas_warnings_are_one_line_each(tmp_path, capsys):
    assert cli.main(["atlas", "VGG16", "block1_conv2", "--weights", "hed", "--filters", "0", "--preset", "keras-io",
                     "--size", "64", "--steps", "1", "--out", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert "kerasviz: warning: The keras-io preset's start is made for ResNet50V2's [-1, 1] inputs" in err
    assert "UserWarning" not in err and "Traceback" not in err


def test_atlas_default_filters_are_clipped_to_a_small_layer(model_files, tmp_path, capsys):
    """No --filters on a 6-channel layer: its 6 filters (the default first 64, clipped), not 'Filter 6 is out of
    range'; an index the user gives out of range still fails, with the valid range."""
    assert cli.parse_filters(None) is None
    out = tmp_path / "atlas.png"
    assert cli.main(["atlas", model_files["keras"], "g1", "--out", str(out), "--preset", "fast", "--steps", "2"]) == 0
    assert "6 filters of g1" in capsys.readouterr().out
    assert cli.main(["atlas", model_files["keras"], "g1", "--filters", "6", "--out", str(out)]) == 2
    assert "Filter 6 is out of range for layer 'g1', which has 6 channels (valid: 0-5)" in capsys.readouterr().err


def test_an_interrupted_atlas_with_the_default_filters_counts_them(model_files, tmp_path, capsys, monkeypatch):
    """No --filters (None: the first 64, clipped to the layer's 6 channels), interrupted after 2."""
    from kerasviz import atlas

    def interrupted(network, layer, filters, **options):
        assert filters is None
        return atlas.LayerAtlas(
            layer=layer, filters=[0, 1], images=np.zeros((2, 8, 8, 3), "uint8"), scores=np.ones(2, "float32"),
            computed=[0, 1], cached=[], seconds=1.0, batch_size=2, interrupted=True, layer_type="Conv2D",
            output_shape=(None, 26, 26, 6), channels=6, settings={}, cache_path=str(tmp_path))

    monkeypatch.setattr(atlas, "layer_atlas", interrupted)
    assert cli.main(["atlas", model_files["keras"], "g1", "--out", str(tmp_path / "a.png")]) == 130
    assert "Interrupted: 2 of 6 filters finished" in capsys.readouterr().err
