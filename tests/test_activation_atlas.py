"""The activation atlas on planted structure: the map separates the planted parts, the icons are one batched plan,
the cell data agree with the samples, the class filter keeps the class's own parts, bad inputs fail clearly."""

import json

import keras
import numpy as np
import planted
import pytest

import kerasviz as kv
from kerasviz import optimize
from kerasviz.concepts import activation_atlas as aa
from kerasviz.engine import objectives
from kerasviz.engine import render as rendering

LAYER = planted.LATE_LAYER  # conv3: an 8 x 8 map of 32 channels, then global max, then the logits
GRID = 8
BUDGET = 1000  # of the 256 * 64 positions
ICON = dict(size=32, steps=4, preset="fast", progress=False)
RF_HALF = 9  # conv3's receptive field is 18 px: a position farther than this from every part sees background
KNN = 10
# Neighbourhood purity (kNN label agreement in the 2-D map), per label, of the positions whose label is certain: on
# one part (their 4 x 4 cell wholly on it) or on background (no part in their receptive field). Measured (seed 0):
# 0.99 for the background and 1.0 for each part, whose chance level (its share of the positions) is 0.03-0.04. A
# map that mixed two parts, or a part with the background, would put a part's positions among the others' and
# take its agreement towards its share; 0.8 (the concepts' purity bar) leaves room for a few strays at a border.
PURITY = 0.8
OWN_PARTS = 0.9  # of the class-filtered vectors on a part, the share on the class's own two parts (measured 1.0)


@pytest.fixture(scope="module")
def planted_net():
    model, accuracy = planted.trained_planted_model()
    assert accuracy > 0.9  # the parts are learnt: the map has something to show
    return kv.as_network(model, input_range=(0, 1))


@pytest.fixture(scope="module")
def planted_images():
    return planted.planted_data(256, seed=7)


@pytest.fixture(scope="module")
def counted_atlas(planted_net, planted_images):
    """The atlas, with the calls to `optimize.plan`, `Plan.run` and `Renderer.run` (one per chunk) counted."""
    calls = {"plan": 0, "run": 0, "chunks": 0}
    originals = optimize.plan, optimize.Plan.run, rendering.Renderer.run

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    optimize.plan = counting("plan", originals[0])
    optimize.Plan.run = counting("run", originals[1])
    rendering.Renderer.run = counting("chunks", originals[2])
    try:
        atlas = aa.activation_atlas(planted_net, LAYER, planted_images[0], grid=GRID, budget=BUDGET, min_count=4,
                                    batch_size=16, **ICON)
    finally:
        optimize.plan, optimize.Plan.run, rendering.Renderer.run = originals
    return atlas, calls


def _labels(samples, part_map):
    """Each sample's certain label: its part (its cell wholly on it), -1 (no part in its receptive field), -2 else."""
    cell = planted.IMAGE_SIZE // samples.grid[0]
    out = np.full(len(samples.vectors), -2)
    for m, (i, y, x) in enumerate(zip(samples.image_index, samples.y, samples.x, strict=True)):
        here = part_map[i, y * cell:(y + 1) * cell, x * cell:(x + 1) * cell]
        cy, cx = y * cell + cell // 2, x * cell + cell // 2
        if (part_map[i, max(0, cy - RF_HALF):cy + RF_HALF, max(0, cx - RF_HALF):cx + RF_HALF] < 0).all():
            out[m] = -1
        elif here.min() == here.max() >= 0:
            out[m] = here.flat[0]
    return out


def _knn_purity(coords, labels, k=KNN) -> dict[int, float]:
    """Per label: the mean share of its positions' `k` nearest neighbours on the map that carry the same label."""
    from sklearn.neighbors import NearestNeighbors

    _, near = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    agree = np.mean(labels[near[:, 1:]] == labels[:, None], axis=1)
    return {int(label): float(agree[labels == label].mean()) for label in np.unique(labels)}


def test_the_map_separates_the_planted_parts(counted_atlas, planted_images):
    atlas, _ = counted_atlas
    labels = _labels(atlas.samples, planted_images[2])
    certain = labels >= -1
    purity = _knn_purity(atlas.coords[certain], labels[certain])
    shares = {k: round(float(np.mean(labels[certain] == k)), 3) for k in purity}
    print(f"neighbourhood purity per label {purity} over {certain.sum()} positions (chance: the shares {shares})")
    assert set(purity) == set(range(-1, planted.PARTS))
    assert min(purity.values()) >= PURITY


def test_icons_are_one_plan_in_chunks(counted_atlas):
    atlas, calls = counted_atlas
    n = len(atlas.cells)
    assert calls["plan"] == 1 and calls["run"] == 1
    assert calls["chunks"] == -(-n // 16)  # batch_size=16: one compiled batch per 16 icons
    assert atlas.image.shape == (GRID * 32, GRID * 32, 3) and atlas.image.dtype == np.uint8


def test_cells_agree_with_the_samples(counted_atlas, planted_net):
    atlas, _ = counted_atlas
    assert len(atlas.coords) == len(atlas.samples.vectors) == BUDGET
    assert atlas.coords.min() >= 0 and atlas.coords.max() <= 1
    bins = np.minimum((atlas.coords * GRID).astype(int), GRID - 1)
    places = [(c.row, c.col) for c in atlas.cells]
    assert places == sorted(set(places))
    head = planted_net.model.get_layer("logits")
    logits = keras.ops.convert_to_numpy(head(np.stack([c.direction for c in atlas.cells])))
    for cell, logit in zip(atlas.cells, logits, strict=True):
        inside = np.flatnonzero((bins[:, 1] == cell.row) & (bins[:, 0] == cell.col))
        assert cell.count == len(inside) >= 4
        np.testing.assert_allclose(cell.direction, atlas.samples.vectors[inside].mean(axis=0), rtol=1e-5, atol=1e-6)
        assert set(cell.members) <= set(inside) and len(cell.members) == min(aa.MEMBERS, len(inside))
        assert cell.top_class == int(np.argmax(logit))  # the Dense head read on the direction
        tile = atlas.image[cell.row * 32:(cell.row + 1) * 32, cell.col * 32:(cell.col + 1) * 32]
        assert np.array_equal(tile, cell.icon)
    assert atlas.head == "dense"
    data = atlas.cells_data()
    assert [d["count"] for d in data] == [c.count for c in atlas.cells]
    assert data[0]["members"][0]["source"] == f"#{data[0]['members'][0]['image']}"


def test_the_class_filter_keeps_the_class_own_parts(planted_net, planted_images):
    label = len(planted.CLASSES) - 1  # a class with two parts
    atlas = aa.activation_atlas(planted_net, LAYER, planted_images[0], grid=4, budget=BUDGET, min_count=2,
                                class_index=label, size=24, steps=2, progress=False)
    parts = _labels(atlas.samples, planted_images[2])
    on_parts = parts[parts >= 0]
    share = np.mean(np.isin(on_parts, planted.class_parts(label)))
    print(f"class {label} {planted.class_parts(label)}: {len(atlas.samples)} vectors kept, {len(on_parts)} on parts, "
          f"{share:.2f} of them on its own")
    assert len(atlas.samples) <= round(aa.CLASS_SHARE * BUDGET) and len(on_parts) >= 20
    assert share >= OWN_PARTS and atlas.class_index == label


def test_same_seed_same_atlas(planted_net, planted_images):
    runs = [aa.activation_atlas(planted_net, LAYER, planted_images[0][:64], grid=4, budget=300, min_count=2,
                                seed=1, size=24, steps=2, progress=False) for _ in range(2)]
    assert np.array_equal(runs[0].coords, runs[1].coords) and np.array_equal(runs[0].image, runs[1].image)
    assert [c.members.tolist() for c in runs[0].cells] == [c.members.tolist() for c in runs[1].cells]
    assert not np.array_equal(aa.layout(runs[0].samples.vectors, seed=2), runs[0].coords)  # the seed is UMAP's


@pytest.mark.engine
def test_icon_objective_is_each_image_own_direction():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(5, 6)).astype("float32")
    acts = rng.normal(size=(3, 4, 4, 6)).astype("float32")
    filters = np.array([4, 0, 2])
    context = objectives.Context(acts={"l": keras.ops.convert_to_tensor(acts)}, images=None,
                                 filters=keras.ops.convert_to_tensor(filters))
    got = keras.ops.convert_to_numpy(aa.icon_objective("l", directions, cosine_power=2.0)(context))
    for i, f in enumerate(filters):
        one = objectives.direction("l", directions[f], cosine_power=2.0)
        single = objectives.Context(acts={"l": keras.ops.convert_to_tensor(acts[i:i + 1])}, images=None, filters=None)
        np.testing.assert_allclose(got[i], keras.ops.convert_to_numpy(one(single))[0], rtol=1e-5)
    again = aa.icon_objective("l", directions.copy(), cosine_power=2.0)
    assert again.key == aa.icon_objective("l", directions, cosine_power=2.0).key  # one compiled step per atlas


def test_the_head_is_found_only_where_a_pooled_dense_head_follows(planted_net):
    assert [lyr.name for lyr in aa.dense_head(planted_net, LAYER)] == ["logits"]
    assert aa.dense_head(planted_net, "conv2") is None  # more convolutions after it


@pytest.mark.engine
def test_head_logits_are_the_model_top_on_a_constant_map():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 3, activation="relu", name="c")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    head = aa.dense_head(kv.as_network(model, input_range=(0, 1)), "c")
    assert [type(lyr).__name__ for lyr in head] == ["Dense", "Dropout", "Dense"]
    v = np.random.default_rng(0).random((4, 5)).astype("float32")
    top = keras.Sequential(model.layers[2:])  # the head, run on a map that holds each direction everywhere
    probs = keras.ops.convert_to_numpy(top(np.broadcast_to(v[:, None, None], (4, 6, 6, 5)), training=False))
    logits = aa.head_logits(head, v)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), probs, rtol=1e-4)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(grid=0), ValueError, "grid must be an int >= 1. Received: grid=0"),
    (dict(budget=1.5), ValueError, "budget must be an int >= 2"),
    (dict(min_count=0), ValueError, "min_count must be an int >= 1"),
    (dict(class_share=0), ValueError, "class_share must be in (0, 1]"),
    (dict(sizes=32), TypeError, "Unknown setting 'sizes'. Did you mean 'size'"),
    (dict(class_index=len(planted.CLASSES)), ValueError,
     f"class_index must be an int in 0-{len(planted.CLASSES) - 1} (planted_cnn has {len(planted.CLASSES)} classes)"),
    (dict(layer="conv2", class_index=0), ValueError, "a pooled Dense head"),
    (dict(layer="conv33"), ValueError, "conv3"),
    (dict(grid=2, min_count=1000), ValueError, "No cell of the 2x2 grid holds 1000 of the 300 vectors"),
])
def test_bad_inputs_are_named(planted_net, planted_images, kwargs, error, words):
    kwargs = dict(dict(layer=LAYER, budget=300, progress=False), **kwargs)
    with pytest.raises(error) as caught:
        aa.activation_atlas(planted_net, kwargs.pop("layer"), planted_images[0][:32], **kwargs)
    assert words in str(caught.value)


def test_the_command_writes_the_atlas_and_cells(tmp_path, capsys, planted_net, planted_images):
    from kerasviz.cli.main import main
    from kerasviz.images import save_image

    model_path = tmp_path / "planted.keras"
    planted_net.model.save(model_path)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(planted_images[0][:24]):
        save_image(image, folder / f"{i:02d}.png")
    out = tmp_path / "map"
    code = main(["atlas-map", str(model_path), LAYER, str(folder), "--grid", "3", "--budget", "400", "--min-count",
                 "2", "--input-range", "0", "1", "--size", "24", "--steps", "2", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "cells.json").read_text())
    assert data["layer"] == LAYER and data["grid"] == 3 and sum(c["count"] for c in data["cells"]) <= 400
    assert data["cells"][0]["members"][0]["source"].endswith(".png")
    assert kv.load_image(str(out / "atlas.png")).shape[:2] == (3 * 24, 3 * 24)
    assert "atlas.png" in capsys.readouterr().out
