import keras
import numpy as np

import kerasviz as kv
from kerasviz.atlas.links import Graph


def _graph(model, shown):
    return Graph(kv.nets.as_network(model), {name: set(units) for name, units in shown.items()})


def test_incoming_ranks_the_kernel_slices_like_top_inputs_and_looks_through_pooling(tiny_cnn):
    graph = _graph(tiny_cnn, {"conv1": range(8), "conv2": range(16)})
    links, what = graph.incoming("conv2", 5, 4)
    top = kv.weights.top_inputs(tiny_cnn, "conv2", 5, k=4, weights=None)
    assert [link.unit for link in links] == list(top.channels) and {link.layer for link in links} == {"conv1"}
    np.testing.assert_allclose([link.norm for link in links], top.norms, rtol=1e-6)
    np.testing.assert_array_equal(links[0].kernel, top.slices[0])
    assert links[0].note == f"via pool1 (MaxPooling2D): no weights, channel {links[0].unit} passes unchanged"
    assert "L2 norm of the kernel slice" in what


def test_incoming_of_the_first_layer_names_the_image_colours(tiny_cnn):
    links, what = _graph(tiny_cnn, {"conv1": range(8)}).incoming("conv1", 0, 3)
    assert sorted(link.unit for link in links) == [0, 1, 2] and "image's colours" in what
    assert {link.note for link in links} == {"the image's red channel", "the image's green channel",
                                             "the image's blue channel"}


def test_outgoing_lists_the_next_layers_units_that_read_a_unit_most(tiny_cnn):
    graph = _graph(tiny_cnn, {"conv1": range(8), "conv2": range(16)})
    links = graph.outgoing("conv1", 3, 5)
    kernel = tiny_cnn.get_layer("conv2").kernel.numpy()[:, :, 3, :]
    norms = np.sqrt((kernel.astype("float64") ** 2).sum(axis=(0, 1)))
    assert [link.unit for link in links] == list(np.argsort(-norms, kind="stable")[:5])
    assert all(link.layer == "conv2" and "via pool1 (MaxPooling2D)" in link.note for link in links)
    # conv2 feeds a Dense through ReLU and global pooling: its weights rank the classes
    to_classes = graph.outgoing("conv2", 0, 4)
    dense = tiny_cnn.get_layer("predictions").kernel.numpy()[0]
    assert [link.unit for link in to_classes] == list(np.argsort(-np.abs(dense), kind="stable"))
    assert "via relu2 (ReLU), gap (GlobalAveragePooling2D)" in to_classes[0].note


def _residual():
    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(x)
    b = keras.layers.Conv2D(4, 1, name="b")(x)
    added = keras.layers.Add(name="add")([a, b])
    c = keras.layers.Conv2D(4, 3, padding="same", name="c")(added)
    d = keras.layers.Conv2D(2, 1, name="d")(keras.layers.Concatenate(name="cat")([c, b]))
    return keras.Model(inputs, d, name="residual")


def test_links_through_an_add_and_a_concatenate_say_what_they_mean():
    model = _residual()
    graph = _graph(model, {"a": range(4), "b": range(4), "c": range(4), "d": range(2)})
    incoming, _ = graph.incoming("c", 1, 2)  # c reads the Add: each channel is a's plus b's
    first = [link for link in incoming if link.norm == incoming[0].norm]
    assert {link.layer for link in first} == {"a", "b"} and len({link.unit for link in first}) == 1
    assert "add (Add) has no weights: its channel" in first[0].note
    into_d, _ = graph.incoming("d", 0, 8)
    kernel = model.get_layer("d").kernel.numpy()[0, 0, :, 0]
    strongest = int(np.argmax(np.abs(kernel)))
    assert into_d[0].layer == ("c" if strongest < 4 else "b") and into_d[0].unit == strongest % 4
    assert any("cat (Concatenate) has no weights" in link.note for link in into_d if link.layer == "b")
    # b's channel 2 goes into the Add (to c) and, through the Concatenate, into d as channel 6
    out_of_b = graph.outgoing("b", 2, 20)
    assert {link.layer for link in out_of_b} == {"c", "d"}
    assert any("(as channel 6)" in link.note for link in out_of_b if link.layer == "d")
    assert all("via add (Add)" in link.note for link in out_of_b if link.layer == "c")
