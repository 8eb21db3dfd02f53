"""The explorer's computed views: dataset examples (cached) and heatmaps, on a tiny seeded CNN."""

import os

import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf

import kerasviz as kv
from kerasviz import images, nets
from kerasviz.atlas import views

SIZE = 24
N_IMAGES = 20
LAYER = "conv2"
FILTERS = [0, 3, 5]


def make_model() -> keras.Model:
    """Two convolutions with weights drawn by NumPy (the same model on every backend)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x), name="views_cnn")
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model


def random_images(n: int, seed: int) -> np.ndarray:
    """uint8 images: noise of varied brightness and contrast, so the filters' maxima differ by image."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.9, (n, 1, 1, 3))
    noise = rng.normal(0, 1, (n, SIZE, SIZE, 3)) * rng.uniform(0.05, 0.3, (n, 1, 1, 1))
    return images.to_uint8(np.clip(base + noise, 0, 1))


@pytest.fixture(scope="module")
def network():
    return nets.as_network(make_model())


@pytest.fixture()
def photos(tmp_path):
    """A folder of 20 PNGs, some in a subfolder, and the same pictures as an array in the folder's order."""
    folder = tmp_path / "photos"
    arr = random_images(N_IMAGES, seed=0)
    names = [f"img{i:02d}.png" if i < 12 else f"sub/img{i:02d}.png" for i in range(N_IMAGES)]
    for name, image in zip(names, arr, strict=True):
        kv.save_image(image, str(folder / name))
    assert kv.examples.list_images(folder) == [n.replace("/", os.sep) for n in names]
    return str(folder), names, arr


@pytest.fixture()
def counted_loads(monkeypatch):
    """Counts the images the views read from files."""
    calls = []
    real = images.load_image

    def counting(image, *args, **kwargs):
        calls.append(image)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(images, "load_image", counting)
    return calls


def brute_force(network, arr: np.ndarray, filters, k=9):
    """Each filter's top-k image indices and scores, from the layer's maximum over space, computed directly."""
    extractor = nets.feature_extractor(network, [LAYER], pre_activation=False)
    x = network.preprocess(arr.astype("float32") / 255.0)
    act = np.asarray(keras.ops.convert_to_numpy(extractor(x)))
    best = act.max(axis=(1, 2))  # (N, C)
    out = {}
    for f in filters:
        order = np.argsort(-best[:, f], kind="stable")[:k]
        out[f] = (list(order), best[order, f])
    return out


def test_top_9_of_a_folder_is_the_brute_force_top_9(network, photos, tmp_path):
    folder, names, arr = photos
    got = views.unit_examples(network, LAYER, FILTERS, folder, cache_dir=str(tmp_path / "cache"), size=SIZE,
                              progress=False)
    expected = brute_force(network, arr, FILTERS)
    assert sorted(got) == FILTERS
    field = nets.receptive_field(network.model, LAYER)
    for f in FILTERS:
        order, scores = expected[f]
        assert [e.source for e in got[f]] == [names[i] for i in order]
        np.testing.assert_allclose([e.activation for e in got[f]], scores, rtol=1e-4, atol=1e-5)
        for e in got[f]:
            assert e.crop.dtype == np.uint8 and e.crop.shape == (*field.size, 3)


def test_the_second_call_reads_the_cache_and_opens_no_image(network, photos, tmp_path, counted_loads):
    folder, _, _ = photos
    root = str(tmp_path / "cache")
    first = views.unit_examples(network, LAYER, FILTERS, folder, cache_dir=root, size=SIZE, progress=False)
    assert len(counted_loads) == N_IMAGES
    files = os.listdir(os.path.join(root, views.EXAMPLES_FOLDER))
    assert len(files) == 1 and files[0].startswith("conv2-") and files[0].endswith(".npz")
    counted_loads.clear()
    second = views.unit_examples(network, LAYER, FILTERS[::-1], folder, cache_dir=root, size=SIZE, progress=False)
    assert counted_loads == []
    assert list(second) == FILTERS[::-1]
    for f in FILTERS:
        assert [e.source for e in second[f]] == [e.source for e in first[f]]
        assert [e.activation for e in second[f]] == [e.activation for e in first[f]]
        np.testing.assert_array_equal(np.stack([e.crop for e in second[f]]), np.stack([e.crop for e in first[f]]))


def test_only_the_missing_filters_are_computed_and_added_to_the_file(network, photos, tmp_path, counted_loads):
    folder, _, arr = photos
    root = str(tmp_path / "cache")
    views.unit_examples(network, LAYER, [0, 1], folder, cache_dir=root, size=SIZE, progress=False)
    counted_loads.clear()
    got = views.unit_examples(network, LAYER, [1, 2], folder, cache_dir=root, size=SIZE, progress=False)
    assert len(counted_loads) == N_IMAGES  # one pass, for filter 2
    (name,) = os.listdir(os.path.join(root, views.EXAMPLES_FOLDER))
    with np.load(os.path.join(root, views.EXAMPLES_FOLDER, name)) as z:
        assert list(z["filters"]) == [0, 1, 2]
    expected = brute_force(network, arr, [2])
    np.testing.assert_allclose([e.activation for e in got[2]], expected[2][1], rtol=1e-4, atol=1e-5)
    counted_loads.clear()
    views.unit_examples(network, LAYER, [0, 1, 2], folder, cache_dir=root, size=SIZE, progress=False)
    assert counted_loads == []


def test_the_key_changes_when_a_file_is_added_or_the_settings_change(network, photos, tmp_path, counted_loads):
    folder, _, _ = photos
    root = str(tmp_path / "cache")
    before = kv.examples.data_source(folder).fingerprint()
    views.unit_examples(network, LAYER, [0], folder, cache_dir=root, size=SIZE, progress=False)
    kv.save_image(random_images(1, seed=9)[0], os.path.join(folder, "sub", "new.png"))
    assert kv.examples.data_source(folder).fingerprint() != before
    counted_loads.clear()
    got = views.unit_examples(network, LAYER, [0], folder, cache_dir=root, size=SIZE, progress=False)
    assert len(counted_loads) == N_IMAGES + 1
    views.unit_examples(network, LAYER, [0], folder, cache_dir=root, size=SIZE, top_k=4, progress=False)
    assert len(os.listdir(os.path.join(root, views.EXAMPLES_FOLDER))) == 3
    assert len(got[0]) == 9


def test_arrays_and_tf_data_give_the_folder_s_answer(network, photos, tmp_path):
    folder, _, arr = photos
    root = str(tmp_path / "cache")
    from_folder = views.unit_examples(network, LAYER, FILTERS, folder, cache_dir=root, size=SIZE, progress=False)
    from_array = views.unit_examples(network, LAYER, FILTERS, arr, cache_dir=root, progress=False)
    dataset = tf.data.Dataset.from_tensor_slices(arr).batch(7)
    from_dataset = views.unit_examples(network, LAYER, FILTERS, dataset, cache_dir=root, batch_size=5,
                                       progress=False)
    expected = brute_force(network, arr, FILTERS)
    for f in FILTERS:
        sources = [f"#{i}" for i in expected[f][0]]
        assert [e.source for e in from_array[f]] == sources
        assert [e.source for e in from_dataset[f]] == sources
        np.testing.assert_array_equal(np.stack([e.crop for e in from_array[f]]),
                                      np.stack([e.crop for e in from_folder[f]]))
    # the folder and the array are cached; the dataset, without a key, is not
    assert len(os.listdir(os.path.join(root, views.EXAMPLES_FOLDER))) == 2


def test_a_dataset_is_cached_under_its_examples_key(network, tmp_path):
    root = str(tmp_path / "cache")
    arr = random_images(12, seed=1)

    class Batches:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return iter([arr[:5], arr[5:]])

    data = Batches()
    first = views.unit_examples(network, LAYER, [1], data, cache_dir=root, examples_key="noise-v1", progress=False)
    second = views.unit_examples(network, LAYER, [1], data, cache_dir=root, examples_key="noise-v1",
                                 progress=False)
    assert data.passes == 1
    assert [e.source for e in second[1]] == [e.source for e in first[1]]
    views.unit_examples(network, LAYER, [1], data, cache_dir=root, examples_key="noise-v2", progress=False)
    assert data.passes == 2


def test_fewer_images_than_top_k(network, tmp_path):
    got = views.unit_examples(network, LAYER, [0], random_images(4, seed=2), cache_dir=str(tmp_path), progress=False)
    assert len(got[0]) == 4
    assert [e.activation for e in got[0]] == sorted((e.activation for e in got[0]), reverse=True)


def test_the_progress_bar_says_what_it_costs(network, photos, tmp_path, capsys):
    folder, _, _ = photos
    views.unit_examples(network, LAYER, FILTERS, folder, cache_dir=str(tmp_path / "cache"), size=SIZE)
    err = capsys.readouterr().err
    assert f"examples {LAYER}: {N_IMAGES} images" in err and ("image/s" in err or "s/image" in err)
    assert f"{N_IMAGES}/{N_IMAGES}" in err and f"{len(FILTERS)} filters" in err


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(layer="conv3"), ValueError, "'conv3' not found in views_cnn. Did you mean 'conv2'"),
    (dict(filters=[0, 6]), ValueError, "Filter 6 is out of range for layer 'conv2', which has 6 channels"),
    (dict(filters=[1.5]), TypeError, "filter must be an int"),
    (dict(filters=[]), ValueError, "filters is empty"),
    (dict(top_k=0), ValueError, "top_k must be a positive int"),
    (dict(examples="missing"), ValueError, "No folder at"),
    (dict(examples="empty"), ValueError, "No image files"),
    (dict(examples=np.zeros((4, 8, 8))), ValueError, r"\(N, H, W, C\)"),
    (dict(examples=42), TypeError, "examples must be a folder path"),
])
def test_clear_errors_of_unit_examples(network, tmp_path, kwargs, error, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image here")
    args = dict(layer=LAYER, filters=[0], examples=random_images(2, seed=0))
    args.update(kwargs)
    if isinstance(args["examples"], str):
        args["examples"] = str(tmp_path / args["examples"])
    with pytest.raises(error, match=message):
        views.unit_examples(network, args.pop("layer"), args.pop("filters"), args.pop("examples"),
                            cache_dir=str(tmp_path / "cache"), progress=False, **args)


def _heat_from_overlay(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The heat values an overlay was drawn with: its colors, unblended, matched to the color map."""
    colors = (out.astype("float64") / 255.0 - (1 - views.HEATMAP_ALPHA) * image) / views.HEATMAP_ALPHA
    lut = matplotlib.colormaps[views.HEATMAP_CMAP](np.linspace(0, 1, 256))[:, :3]
    distance = ((colors[..., None, :] - lut) ** 2).sum(-1)
    return distance.argmin(-1) / 255.0


def test_heatmaps_peak_where_the_activation_map_peaks(network):
    image = random_images(1, seed=5)[0][:, :20]  # 24 x 20, uint8
    maps = views.unit_heatmaps(network, LAYER, FILTERS, image)
    assert sorted(maps) == FILTERS
    act = kv.analysis.activations(network, LAYER, image)[LAYER]  # (12, 10, 6)
    scale = image.shape[0] // act.shape[0]  # 2: the layer's stride
    for f in FILTERS:
        out = maps[f]
        assert out.dtype == np.uint8 and out.shape == (24, 20, 3)
        heat = _heat_from_overlay(out, image / 255.0)
        unit = act[..., f]
        upsampled = kv.analysis.upsample(unit, image.shape[:2])
        expected = upsampled / upsampled.max()
        np.testing.assert_allclose(heat, expected, atol=0.02)  # the overlay draws the unit's own map
        peak_y, peak_x = np.unravel_index(np.argmax(unit), unit.shape)
        hot_y, hot_x = np.unravel_index(np.argmax(heat), heat.shape)
        # the hottest pixel lies on a position as strong as the peak (up to a near tie), and the peak's
        # cell holds a pixel about as hot as the hottest
        assert unit[hot_y // scale, hot_x // scale] >= 0.9 * unit.max()
        assert heat[scale * peak_y : scale * (peak_y + 1), scale * peak_x : scale * (peak_x + 1)].max() >= 0.95
        assert heat.max() > 0.97


def test_heatmaps_of_a_path_at_a_size_and_on_a_fixed_size_model(network, tmp_path):
    path = kv.save_image(random_images(1, seed=6)[0], str(tmp_path / "photo.png"))
    maps = views.unit_heatmaps(network, LAYER, [2], path, size=(16, 12))
    assert maps[2].shape == (16, 12, 3)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    fixed = keras.Model(inputs, keras.layers.Conv2D(4, 3, activation="relu", name="c")(inputs))
    maps = views.unit_heatmaps(fixed, "c", [0, 3], random_images(1, seed=7)[0] / 255.0)
    assert maps[0].shape == maps[3].shape == (SIZE, SIZE, 3)  # the model saw 16 x 16; the overlay is the image's


@pytest.mark.parametrize("layer, filters, message", [
    ("conv9", [0], "Did you mean"),
    (LAYER, [6], "Filter 6 is out of range"),
    ("gap", [0], "no spatial map"),
])
def test_clear_errors_of_unit_heatmaps(network, layer, filters, message):
    with pytest.raises(ValueError, match=message):
        views.unit_heatmaps(network, layer, filters, random_images(1, seed=0)[0])


def test_the_folder_is_listed_once_and_its_file_names_come_back_with_the_examples(network, photos, tmp_path,
                                                                               monkeypatch):
    folder, names, _ = photos
    listed = []
    real = kv.examples.list_images
    monkeypatch.setattr(kv.examples, "list_images", lambda f: listed.append(f) or real(f))
    got = views.unit_examples(network, LAYER, [1], folder, cache_dir=str(tmp_path / "cache"), size=SIZE, progress=False)
    assert listed == [folder]  # one data path: no second listing to rebuild the names
    assert {e.source for e in got[1]} <= set(names)


def test_the_module_is_reachable_from_the_package():
    assert kv.atlas.views is views


def test_a_corrupt_file_is_computed_again_and_replaced(network, photos, tmp_path, counted_loads):
    folder, _, _ = photos
    root = str(tmp_path / "cache")
    first = views.unit_examples(network, LAYER, [4], folder, cache_dir=root, size=SIZE, progress=False)
    (name,) = os.listdir(os.path.join(root, views.EXAMPLES_FOLDER))
    with open(os.path.join(root, views.EXAMPLES_FOLDER, name), "r+b") as f:
        f.truncate(100)
    counted_loads.clear()
    again = views.unit_examples(network, LAYER, [4], folder, cache_dir=root, size=SIZE, progress=False)
    assert len(counted_loads) == N_IMAGES
    assert [e.source for e in again[4]] == [e.source for e in first[4]]
    assert os.listdir(os.path.join(root, views.EXAMPLES_FOLDER)) == [name]  # replaced, no temporary left
    counted_loads.clear()
    views.unit_examples(network, LAYER, [4], folder, cache_dir=root, size=SIZE, progress=False)
    assert counted_loads == []


def test_the_cache_root_may_be_an_fsspec_url(network, photos, counted_loads):
    import fsspec

    folder, _, _ = photos
    root = "memory://views-test-cache"
    first = views.unit_examples(network, LAYER, [2], folder, cache_dir=root, size=SIZE, progress=False)
    fs = fsspec.filesystem("memory")
    assert len(fs.ls("/views-test-cache/examples")) == 1
    counted_loads.clear()
    second = views.unit_examples(network, LAYER, [2], folder, cache_dir=root, size=SIZE, progress=False)
    assert counted_loads == []
    assert [e.source for e in second[2]] == [e.source for e in first[2]]
    fs.rm("/views-test-cache", recursive=True)


def test_a_file_url_cache_root(network, photos, tmp_path, counted_loads):
    folder, _, _ = photos
    root = "file://" + str(tmp_path / "url-cache")
    views.unit_examples(network, LAYER, [2], folder, cache_dir=root, size=SIZE, progress=False)
    assert len(os.listdir(tmp_path / "url-cache" / views.EXAMPLES_FOLDER)) == 1
    counted_loads.clear()
    views.unit_examples(network, LAYER, [2], folder, cache_dir=root, size=SIZE, progress=False)
    assert counted_loads == []
