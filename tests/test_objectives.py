import numpy as np
import pytest
from keras import ops

import kerasviz as kv
from kerasviz.engine import objectives as O

pytestmark = pytest.mark.engine


def context(acts, images=None, filters=(0,)):
    acts = {k: ops.convert_to_tensor(np.asarray(v, "float32")) for k, v in acts.items()}
    images = ops.convert_to_tensor(np.zeros((len(filters), 4, 4, 3), "float32") if images is None else images)
    return O.Context(acts, images, ops.convert_to_tensor(np.asarray(filters, "int32")))


def assert_ascends(model, objective, batch=2, steps=8):
    result = kv.render(model, objective, batch=batch, size=24, steps=steps, preset="fast", transforms=(),
                       progress=False)
    assert np.all(result.history[-1] > result.history[0]), objective.description
    return result


def test_channel_follows_each_images_filter_or_a_fixed_index():
    acts = np.zeros((2, 5, 5, 3))
    acts[0, ..., 1] = 1.0
    acts[1, ..., 2] = 2.0
    c = context({"L": acts}, filters=[1, 2])
    np.testing.assert_allclose(np.asarray(O.channel("L")(c)), [1.0, 2.0])
    np.testing.assert_allclose(np.asarray(O.channel("L", 2)(c)), [0.0, 2.0])


def test_channel_border_drops_edge_positions():
    acts = np.zeros((1, 6, 6, 1))
    acts[0, 0, :, 0] = 100.0  # only the top row is active
    c = context({"L": acts})
    assert float(O.channel("L")(c)[0]) > 0
    assert float(O.channel("L", border=2)(c)[0]) == 0


def test_neuron_reads_the_center_by_default():
    acts = np.zeros((1, 4, 4, 2))
    acts[0, 2, 2, 1] = 5.0  # the documented center of an even map: (H // 2, W // 2)
    assert float(O.neuron("L", 1)(context({"L": acts}))[0]) == 5.0
    assert float(O.neuron("L", 1, x=0, y=0)(context({"L": acts}))[0]) == 0.0


def test_class_probability_is_the_models_softmax_output(tiny_cnn):
    x = np.random.default_rng(3).uniform(size=(2, 16, 16, 3)).astype("float32")
    logits = ops.convert_to_numpy(kv.feature_extractor(tiny_cnn, ["predictions"], pre_activation=True)(x))
    c = context({"predictions": logits}, filters=[0, 3])
    expected = ops.convert_to_numpy(tiny_cnn(x))
    probability = ops.convert_to_numpy(O.class_probability("predictions", 2)(c))
    np.testing.assert_allclose(probability, expected[:, 2], rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(O.class_logit("predictions", 2)(c)), logits[:, 2], rtol=1e-5)


def test_algebra_and_descriptions():
    a, b = O.channel("L", 1), O.deepdream("M")
    combo = a - 0.2 * b
    assert combo.description == "channel('L', 1) + -0.2 * deepdream('M')"
    assert set(combo.layers) == {"L", "M"}
    acts = {"L": np.ones((1, 2, 2, 2)), "M": np.full((1, 2, 2, 1), 2.0)}
    np.testing.assert_allclose(np.asarray(combo(context(acts))), [1 - 0.2 * 4])
    np.testing.assert_allclose(np.asarray((-a)(context(acts))), [-1.0])
    np.testing.assert_allclose(np.asarray((a / 4)(context(acts))), [0.25])
    total = sum([a, a, a])
    np.testing.assert_allclose(np.asarray(total(context(acts))), [3.0])
    with pytest.raises(TypeError, match="multiply by numbers"):
        a * b


def test_indices_are_checked_where_the_user_wrote_them(tiny_cnn):
    with pytest.raises(ValueError, match="index must be a non-negative int"):
        O.channel("conv2", -3)
    with pytest.raises(ValueError, match="Filter 99 is out of range for layer 'conv2', which has 16"):
        O.channel("conv2", 99).validate(kv.as_network(tiny_cnn))
    with pytest.raises(ValueError, match=r"direction vector must have shape \(16,\)"):
        O.direction("conv2", np.ones(3)).validate(kv.as_network(tiny_cnn))


def test_diversity_rewards_different_images():
    same = np.ones((2, 3, 3, 2))
    different = np.stack([np.ones((3, 3, 2)) * [1, 0], np.ones((3, 3, 2)) * [0, 1]])
    d_same = np.asarray(O.diversity("L")(context({"L": same}, filters=[0, 0])))
    d_diff = np.asarray(O.diversity("L")(context({"L": different}, filters=[0, 0])))
    assert np.all(d_diff > d_same)


def test_regularizers_measure_the_image():
    flat = np.full((1, 4, 4, 3), 0.5, "float32")
    noisy = np.random.default_rng(0).uniform(size=(1, 4, 4, 3)).astype("float32")
    for reg in (O.total_variation(), O.l1(), O.l2()):
        assert float(reg(context({}, flat))[0]) == pytest.approx(0.0, abs=1e-6)
        assert float(reg(context({}, noisy))[0]) > 0


def test_per_image_gives_each_image_its_own_objective():
    acts = np.zeros((2, 2, 2, 2))
    acts[:, ..., 0] = 1.0
    acts[:, ..., 1] = 3.0
    obj = O.per_image([O.channel("L", 0), O.channel("L", 1)])
    np.testing.assert_allclose(np.asarray(obj(context({"L": acts}, filters=[0, 0]))), [1.0, 3.0])


@pytest.mark.parametrize(
    "objective",
    [
        O.channel("conv2"),
        O.channel("conv1", 3),
        O.neuron("conv2", 5),
        O.deepdream("conv2"),
        O.class_logit("predictions", 2),
        O.class_probability("predictions", 2),
        O.direction("conv2", np.linspace(-1, 1, 16)),
        O.channel("conv2", 1) + 0.5 * O.diversity("conv2"),
        O.channel("conv2", 1) - 0.1 * O.total_variation(),
    ],
    ids=lambda o: o.description,
)
def test_each_objective_ascends(tiny_cnn, objective):
    assert_ascends(tiny_cnn, objective)


@pytest.mark.engine
def test_adding_a_number_keeps_the_validators(tiny_cnn):
    shifted = O.channel("conv2", 99) + 1.0  # filter 99 of a 16-channel layer
    with pytest.raises(ValueError, match="Filter 99 is out of range"):
        shifted.validate(kv.nets.as_network(tiny_cnn))


@pytest.mark.engine
def test_objectives_with_the_same_description_do_not_share_a_compiled_step(tiny_cnn):
    """The compiled-step cache was keyed by the description: the second objective ran the first's step."""
    up = O.Objective(lambda c: ops.mean(c.acts["conv2"], axis=(1, 2, 3)), "brightness", ("conv2",))
    down = O.Objective(lambda c: -ops.mean(c.acts["conv2"], axis=(1, 2, 3)), "brightness", ("conv2",))
    a = kv.render(tiny_cnn, up, size=24, steps=3, progress=False, preset="fast")
    b = kv.render(tiny_cnn, down, size=24, steps=3, progress=False, preset="fast")
    assert a.scores[0] == pytest.approx(-b.scores[0], rel=0.5) and np.sign(a.scores[0]) != np.sign(b.scores[0])


@pytest.mark.engine
def test_factory_objectives_with_equal_arguments_share_a_key():
    assert O.channel("conv2", 3).key == O.channel("conv2", 3).key
    assert O.channel("conv2", 3).key != O.channel("conv2", 4).key
    assert (0.5 * O.channel("conv2")).key == (0.5 * O.channel("conv2")).key
