"""Concepts: the streamed sampler, the factorization, and the proof on planted parts (issue #29, items 1, 4, 5)."""

import json
import sys

import keras
import numpy as np
import planted
import pytest

import kerasviz as kv
from kerasviz.concepts import factor

PURITY_FLOOR = 0.8
N_CONCEPTS = planted.PARTS + 1  # one per part and one for the background


@pytest.fixture(scope="module")
def planted_model():
    model, accuracy = planted.trained_planted_model()
    assert accuracy > 0.95  # the parts were learned: the proof below is about a model that uses them
    return model


@pytest.fixture(scope="module")
def planted_eval():
    return planted.planted_data(192, seed=5)


def _tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(5, 3, padding="same", name="signed")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")


# ------------------------------------------------------------------------------------------ sampling


@pytest.mark.engine
def test_samples_are_the_layer_output_at_distinct_positions_whatever_the_batch_size():
    model = _tiny_model()
    x = np.random.default_rng(0).random((20, 12, 12, 3)).astype("float32")
    a = kv.sample_activations(model, "c1", x, budget=300, batch_size=3, seed=4)
    b = kv.sample_activations(model, "c1", x, budget=300, batch_size=20, seed=4)
    full = keras.Model(model.inputs, model.get_layer("c1").output).predict(x, verbose=0)
    assert a.vectors.shape == (300, 6) and a.grid == (12, 12) and a.count == 20 and a.labels is None
    np.testing.assert_allclose(a.vectors, full[a.image_index, a.y, a.x], rtol=1e-5, atol=1e-6)
    assert len(set(zip(a.image_index, a.y, a.x, strict=True))) == 300  # without replacement
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("vectors", "image_index", "y", "x"))
    other = kv.sample_activations(model, "c1", x, budget=300, batch_size=3, seed=5)
    assert not np.array_equal(other.image_index, a.image_index)
    assert len(kv.sample_activations(model, "c1", x, budget=10**6)) == 20 * 144  # every position fits


def test_sample_is_uniform_over_images_and_positions():
    model = _tiny_model()
    x = np.random.default_rng(1).random((40, 12, 12, 3)).astype("float32")
    s = kv.sample_activations(model, "c1", x, budget=2880)  # a twentieth of the positions
    per_image = np.bincount(s.image_index, minlength=40)
    assert per_image.min() > 40 and per_image.max() < 110  # expected 72 each
    assert abs(s.y.mean() - 5.5) < 0.3 and abs(s.x.mean() - 5.5) < 0.3


@pytest.mark.engine
def test_iterable_with_labels_keeps_each_vectors_label_and_the_cache_reads_back(tmp_path):
    model = _tiny_model()
    x = np.random.default_rng(2).random((12, 12, 12, 3)).astype("float32")
    batches = [(x[i : i + 5], np.arange(i, min(i + 5, 12)) % 3) for i in range(0, 12, 5)]
    s = kv.sample_activations(model, "c1", batches, budget=100)
    assert np.array_equal(s.labels, s.image_index % 3)
    first = kv.sample_activations(model, "c1", x, budget=100, cache_dir=str(tmp_path))
    assert len(list((tmp_path / "samples").iterdir())) == 1
    again = kv.sample_activations(model, "c1", x, budget=100, cache_dir=str(tmp_path))
    assert again.seconds == 0.0 and np.array_equal(again.vectors, first.vectors)
    assert np.array_equal(first.vectors, s.vectors)  # the same stream and seed: the same sample
    changed = kv.sample_activations(model, "c1", x, budget=100, seed=1, cache_dir=str(tmp_path))
    assert changed.seconds > 0.0 and len(list((tmp_path / "samples").iterdir())) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(budget=0), "budget must be an int >= 1"),
    (dict(batch_size=True), "batch_size must be an int >= 1"),
    (dict(seed=-1), "seed must be an int >= 0"),
])
def test_sample_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kv.sample_activations(_tiny_model(), "c1", np.zeros((2, 12, 12, 3)), **kwargs)


# ------------------------------------------------------------------------------------------ factorization


def test_signed_layer_is_split_and_its_directions_reconstruct_it():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 5))
    vectors = (rng.random((400, 3)) * (rng.random((400, 3)) < 0.4)) @ basis  # signed, 3 concepts
    r = factor.factorize(vectors, 3, method="auto")
    assert r.method == "nmf-split" and r.directions.shape == (3, 5)
    w = r.transform(vectors)
    assert w.min() >= 0.0
    error = np.linalg.norm(w @ r.directions - vectors) / np.linalg.norm(vectors)
    clipped = factor.factorize(vectors, 3, method="nmf")  # negatives dropped: it cannot reconstruct them
    clipped_error = np.linalg.norm(clipped.transform(vectors) @ clipped.directions - vectors) / np.linalg.norm(vectors)
    assert error < 0.2 and error < clipped_error / 4
    unit = r.directions / np.linalg.norm(r.directions, axis=1, keepdims=True)
    cosines = unit @ (basis / np.linalg.norm(basis, axis=1, keepdims=True)).T
    assert cosines.max(axis=0).min() > 0.85  # each planted signed direction is found
    again = factor.factorize(vectors, 3, method="auto")
    assert np.array_equal(again.directions, r.directions)  # deterministic
    assert factor.factorize(np.abs(vectors), 2).method == "nmf"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, r"n \(the number of concepts\) must be an int in \[1, 5\]"),
    (dict(n=3, method="nfm"), ValueError, "Did you mean 'nmf'"),
    (dict(n=11, method="nmf-split"), ValueError, r"in \[1, 10\]"),
])
def test_factorize_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        factor.factorize(np.ones((20, 5)), **kwargs)


def test_missing_sklearn_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)
    with pytest.raises(ImportError, match=r'pip install "kerasviz\[concepts\]"'):
        factor.factorize(np.ones((20, 5)), 2)


def test_concepts_errors_name_the_argument():
    model, x = _tiny_model(), np.zeros((4, 12, 12, 3), "float32")
    with pytest.raises(ValueError, match=r"class_index must be an int in \[0, 5\)"):
        kv.concepts(model, "c1", x, 2, class_index=5)
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        kv.concepts(model, "c1", x, 2, top_k=0)
    with pytest.raises(ValueError, match="Did you mean 'gradient'"):
        kv.concepts(model, "c1", x, 2, importance="gradients")
    with pytest.raises(TypeError, match="Did you mean 'steps'"):
        kv.concepts(model, "c1", x, 2, stepz=3)
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(3, 3, padding="same", name="a")(inputs)
    skip = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Add()([a, inputs]))))
    with pytest.raises(ValueError, match="skip connection"):
        kv.concepts(skip, "a", np.zeros((2, 8, 8, 3)), 2, class_index=0)


# ------------------------------------------------------------------------------------------ planted parts


def _part_votes(maps: np.ndarray, part_map: np.ndarray) -> dict[int, np.ndarray]:
    """For each planted part, the concept that best explains each of its instances: the largest mean
    coefficient (the length along the concept's unit direction) over the part's pixels."""
    n_images, _, rows, cols = maps.shape
    scale = part_map.shape[1] // rows
    up = np.repeat(np.repeat(maps, scale, axis=2), scale, axis=3)
    votes = {k: [] for k in range(planted.PARTS)}
    for i in range(n_images):
        for k in np.unique(part_map[i][part_map[i] >= 0]):
            votes[int(k)].append(int(np.argmax(up[i][:, part_map[i] == k].mean(axis=1))))
    return {k: np.asarray(v) for k, v in votes.items()}


LABEL = planted.CLASSES.index((0, 2))  # the class whose importance is asked: parts 0 and 2, not part 1


@pytest.fixture(scope="module")
def planted_concepts(planted_model, planted_eval):
    images, _, _ = planted_eval
    return kv.concepts(planted_model, planted.LATE_LAYER, images, N_CONCEPTS, class_index=LABEL, budget=4000,
                       top_k=4, preset="fast", size=32, steps=6, seed=0)


def _dominant(concepts, planted_eval) -> tuple[dict, dict]:
    """Each part's concept (the one that best explains most of its instances), and the purity of each part."""
    images, _, part_map = planted_eval
    votes = _part_votes(concepts.maps(images), part_map)
    dominant = {k: int(np.bincount(v).argmax()) for k, v in votes.items()}
    return dominant, {k: float(np.mean(v == dominant[k])) for k, v in votes.items()}


def test_concepts_of_a_late_layer_recover_the_planted_parts(planted_concepts, planted_eval):
    _, _, part_map = planted_eval
    c = planted_concepts
    assert c.method == "nmf" and c.basis.shape == (N_CONCEPTS, 32) and c.pictures.shape == (N_CONCEPTS, 32, 32, 3)
    dominant, purity = _dominant(c, planted_eval)
    print(f"planted-part purity: {purity} (mean {np.mean(list(purity.values())):.3f}), concepts {dominant}")
    assert min(purity.values()) >= PURITY_FLOOR
    assert len(set(dominant.values())) == planted.PARTS  # one concept per part, never two parts in one
    for k, concept in dominant.items():  # the concept's top patches are that part
        for patch in c.patches[concept]:
            top, left, bottom, right = patch.box
            assert (part_map[patch.image_index, top:bottom, left:right] == k).any()
    assert [h.shape for h in c.heatmaps] == [(4, 8, 8)] * N_CONCEPTS
    assert c.top_images.shape == (N_CONCEPTS, 4, 32, 32, 3) and c.overlays(0).shape == (4, 32, 32, 3)


def test_importance_ranks_a_class_own_parts_above_the_others(planted_concepts, planted_eval):
    dominant, _ = _dominant(planted_concepts, planted_eval)
    own = [dominant[k] for k in planted.CLASSES[LABEL]]
    others = [i for i in range(N_CONCEPTS) if i not in own]
    importance = planted_concepts.importance
    print(f"importance for class {LABEL} (parts {planted.CLASSES[LABEL]}): {np.round(importance, 3)}, "
          f"part concepts {dominant}")
    assert min(importance[own]) > max(importance[others])
    assert planted_concepts.settings["class_images"] > 20  # the images the model puts in the class


@pytest.mark.engine
def test_gradient_importance_is_the_ablation_for_a_linear_rest_of_the_model():
    model = _tiny_model()  # after the signed layer: a global mean, linear
    x = np.random.default_rng(3).random((16, 12, 12, 3)).astype("float32")
    logits = model.predict(x, verbose=0)
    label = int(np.bincount(np.argmax(logits, axis=1)).argmax())
    kwargs = dict(class_index=label, budget=2000, top_k=1, preset="fast", size=16, steps=1)
    ablation = kv.concepts(model, "signed", x, 3, importance="ablation", **kwargs)
    gradient = kv.concepts(model, "signed", x, 3, importance="gradient", **kwargs)
    assert ablation.method == "nmf-split"  # a signed layer: no clipping, so the two agree exactly
    np.testing.assert_allclose(gradient.importance, ablation.importance, rtol=1e-3, atol=1e-5)


def test_one_class_images_craft_style_and_determinism(planted_model, planted_eval):
    images, labels, _ = planted_eval
    kwargs = dict(class_index=LABEL, budget=1500, top_k=2, preset="fast", size=32, steps=3, seed=0)
    first = kv.concepts(planted_model, planted.LATE_LAYER, images[labels == LABEL], 3, **kwargs)
    again = kv.concepts(planted_model, planted.LATE_LAYER, images[labels == LABEL], 3, **kwargs)
    assert np.array_equal(again.basis, first.basis) and np.array_equal(again.importance, first.importance)
    assert np.array_equal(again.pictures, first.pictures) and again.patches == first.patches
    other_seed = kv.concepts(planted_model, planted.LATE_LAYER, images[labels == LABEL], 3, **{**kwargs, "seed": 1})
    assert not np.array_equal(other_seed.pictures, first.pictures)


# ------------------------------------------------------------------------------------------ command line


def test_cli_writes_pictures_a_table_and_json(planted_model, tmp_path):
    from kerasviz.cli.main import main

    model_path = tmp_path / "planted.keras"
    planted_model.save(model_path)
    images, _, _ = planted.planted_data(24, seed=7)
    folder = tmp_path / "images"
    for i, image in enumerate(images):
        kv.save_image(image, folder / f"{i:02d}.png")
    out = tmp_path / "out"
    code = main(["concepts", str(model_path), planted.LATE_LAYER, str(folder), "--n", "3", "--out", str(out),
                 "--class-index", "1", "--budget", "500", "--preset", "fast", "--size", "32", "--steps", "3"])
    assert code == 0
    data = json.loads((out / "concepts.json").read_text())
    assert data["layer"] == planted.LATE_LAYER and len(data["concepts"]) == 3
    assert data["concepts"][0]["patches"][0]["source"].endswith(".png")
    assert isinstance(data["concepts"][0]["importance"], float)
    assert (out / "concept_0.png").exists() and (out / "concept_0_patches.png").exists()
    assert "| concept |" in (out / "composition.md").read_text()


def test_a_token_layer_is_sampled_and_factorized_on_its_patch_grid():
    import transformer_models as tm

    vit = tm.tiny_vit()  # 32 px, patch 4: 1 class token + an 8 x 8 grid of patch tokens
    x = np.random.default_rng(4).random((6, 32, 32, 3)).astype("float32")
    s = kv.sample_activations(vit, "block1_mlp1", x, budget=10_000)
    assert s.grid == (8, 8) and s.vectors.shape == (6 * 64, 64)  # every patch token, the class token left out
    c = kv.concepts(vit, "block1_mlp1", x, n=3, top_k=2, preset="fast", size=32, steps=2, progress=False)
    assert c.basis.shape[0] == 3 and c.heatmaps[0].shape[1:] == (8, 8)
