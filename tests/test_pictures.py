import keras
import numpy as np
import pytest

import kerasviz as kv
from kerasviz import optimize
from kerasviz.atlas import pictures
from kerasviz.engine.progress import FilterBar

KW = dict(preset="fast", size=32, steps=12, batch_size=4)


def _bar():
    return FilterBar(0, False)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_negative_drives_each_unit_below_its_positive_picture(grating_model, tmp_path, precision):
    """In float32 every negative scores below zero; in bfloat16 the grating model's negatives (means of about
    -0.01, within bf16's rounding of the step) are still far below the positive pictures."""
    net = kv.nets.as_network(grating_model)
    kw = dict(KW, precision=precision)
    atlas = kv.atlas.layer_atlas(net, "gabor", range(4), cache_dir=tmp_path, progress=False, **kw)
    negative = pictures.negative_pictures(net, "gabor", range(4), bar=_bar(), cache_dir=tmp_path, **kw)
    assert sorted(negative) == [0, 1, 2, 3]
    for i, f in enumerate(atlas.filters):
        assert negative[f].score < atlas.scores[i] and atlas.scores[i] > 0
        if precision == "float32":
            assert negative[f].score < 0
        else:
            assert negative[f].score < 0.1 * atlas.scores[i]
        assert negative[f].image.shape == atlas.images[i].shape


def _similarity(net, pics):
    """The diversity objective's own measure of a batch: minus the mean Gram cosine similarity to the others."""
    x = np.stack([p.image for p in pics]).astype("float32") / 255.0
    acts = kv.feature_extractor(net, ["gabor"], pre_activation=True)(x)
    scores = kv.objectives.diversity("gabor")(kv.objectives.Context({"gabor": acts}, x, None))
    return float(np.mean(keras.ops.convert_to_numpy(scores)))


def test_diverse_pictures_differ_more_than_without_the_diversity_term(grating_model, tmp_path, monkeypatch):
    net = kv.nets.as_network(grating_model)
    kw = dict(preset="fast", size=32, steps=24)
    diverse = pictures.diverse_pictures(net, "gabor", [1], bar=_bar(), cache_dir=tmp_path, **kw)[1]
    monkeypatch.setattr(pictures, "DIVERSITY_WEIGHT", 0.0)
    plain = pictures.diverse_pictures(net, "gabor", [1], bar=_bar(), cache_dir=tmp_path, **kw)[1]
    assert len(diverse) == len(plain) == pictures.DIVERSE_COUNT
    assert _similarity(net, diverse) > _similarity(net, plain) + 0.3
    # each score is the unit's mean activation in its picture
    ext = kv.feature_extractor(net, ["gabor"], pre_activation=True)
    act = keras.ops.convert_to_numpy(kv.nets.undo_leak(ext(np.stack([p.image for p in diverse]).astype("float32")
                                                             / 255.0)))[..., 1]
    np.testing.assert_allclose([p.score for p in diverse], act.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_the_extra_pictures_are_cached(grating_model, tmp_path, monkeypatch):
    net = kv.nets.as_network(grating_model)
    kw = dict(preset="fast", size=32, steps=2)
    first_neg = pictures.negative_pictures(net, "gabor", [0, 2], bar=_bar(), cache_dir=tmp_path, **kw)
    first_div = pictures.diverse_pictures(net, "gabor", [0, 2], bar=_bar(), cache_dir=tmp_path, **kw)

    def no_run(*args, **kwargs):
        raise AssertionError("computed a cached picture")

    monkeypatch.setattr(optimize.Plan, "run", no_run)
    neg = pictures.negative_pictures(net, "gabor", [0, 2], bar=_bar(), cache_dir=tmp_path, **kw)
    div = pictures.diverse_pictures(net, "gabor", [0, 2], bar=_bar(), cache_dir=tmp_path, **kw)
    assert neg[2].score == pytest.approx(first_neg[2].score)
    np.testing.assert_array_equal(div[2][3].image, first_div[2][3].image)


@pytest.mark.parametrize("views, expected", [(None, ()), ("negative", ("negative",)),
                                             ("diverse, negative,diverse", ("diverse", "negative")),
                                             (["negative"], ("negative",))])
def test_check_views(views, expected):
    assert pictures.check_views(views) == expected


def test_check_views_names_the_views():
    with pytest.raises(ValueError, match=r"Unknown view 'divers'. Expected some of negative, diverse, alpha, "
                                         r"accentuated, concepts, atlas-map. Did you mean 'diverse'\?"):
        pictures.check_views("negative,divers")
