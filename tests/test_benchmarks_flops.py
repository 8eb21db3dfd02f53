"""benchmarks/flops.py against multiply-adds counted by hand on a tiny model."""

import pathlib
import sys

import keras
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

import flops  # noqa: E402


def tiny_model(size=None) -> keras.Model:
    """conv -> depthwise -> pool -> separable -> transpose, a side branch off the first conv, a nested Sequential
    of a grouped conv after the transpose."""
    L = keras.layers
    inputs = keras.Input((size, size, 3))
    c = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(inputs)
    side = L.Conv2D(7, 1, name="side")(c)  # does not feed the target layers below
    d = L.DepthwiseConv2D(3, name="d")(c)  # valid: 2 px smaller
    p = L.MaxPooling2D(1, name="pool")(d)  # no products
    s = L.SeparableConv2D(5, 3, padding="same", name="s")(p)
    t = L.Conv2DTranspose(4, 2, strides=2, name="t")(s)
    nested = keras.Sequential([L.Conv2D(4, 1, groups=2, name="g")], name="inner")(t)
    return keras.Model(inputs, [side, nested], name="tiny")


def hand_count(size: int) -> dict:
    n = size - 2  # after the valid depthwise conv
    return dict(
        c=size * size * 4 * 3 * 3 * 3,        # positions x filters x kernel x input channels
        d=n * n * 4 * 3 * 3,                   # positions x channels x kernel
        s=n * n * 4 * 3 * 3 + n * n * 4 * 5,   # depthwise + pointwise
        t=n * n * 5 * 2 * 2 * 4,               # input positions x input channels x kernel x filters
        g=(2 * n) ** 2 * 4 * 1 * 2,            # positions x filters x kernel x (4 input channels / 2 groups)
    )


@pytest.mark.parametrize("size", [8, 16])
def test_counts_the_path_to_the_target_by_hand(size):
    rows = dict(flops.forward_macs(tiny_model(), "t", size))
    hand = hand_count(size)
    assert {k: v for k, v in rows.items() if v} == {k: hand[k] for k in "cdst"}  # no side branch, no "g"
    assert rows["pool"] == 0
    assert flops.step_flops(tiny_model(), "t", size) == 2 * 2 * sum(hand[k] for k in "cdst")


def test_walks_into_a_nested_model_and_counts_groups():
    rows = dict(flops.forward_macs(tiny_model(), "inner/g", 8))
    hand = hand_count(8)
    nested = [name for name in rows if name.split("/")[-1] == "g"]  # the extractor runs the nested model's layers
    assert len(nested) == 1 and rows[nested[0]] == hand["g"]
    assert sum(rows.values()) == sum(hand.values())  # the whole path: c, d, s, t, g


def test_dense_on_a_fixed_input_and_a_fused_relu():
    L = keras.layers
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, activation="relu", name="c")(inputs)  # 4x4x3
    x = L.Flatten()(x)
    out = L.Dense(5, activation="relu", name="fc")(x)
    model = keras.Model(inputs, out)
    rows = dict(flops.forward_macs(model, "fc", 6))
    assert rows["c"] == 4 * 4 * 3 * 3 * 3 * 2
    assert rows["fc"] == 48 * 5
    assert flops.layer_macs(model.get_layer("fc"), (3, 48), (3, 5)) == 3 * 48 * 5  # batch counts
