"""A synthetic data set with planted parts and a small CNN trained on it: the known answer for concepts and atlases.

Each image is gray noise with up to two of `PARTS` parts pasted at random non-overlapping places. A part is a
small colored texture (a color and a stripe/check pattern). There is one class per set of at most two parts
(`CLASSES`: none, each part alone, each pair), so telling the classes apart needs every part detected on its own:
with two parts in every image, a network could leave one part undetected and infer it from the others.
`planted_data` also returns, per image, the part under each pixel (-1 for background): the ground truth the
concept tests score against.

Shared by tests/test_concepts.py and the activation-atlas tests (import `planted` from the tests folder) and by
docs/make_concept_images.py. Everything is seeded: the same seed gives the same images, labels and weights.
"""

from __future__ import annotations

import functools
import itertools

import keras
import numpy as np

IMAGE_SIZE = 32
PART_SIZE = 10
PARTS = 3  # K planted parts
CLASSES = tuple(c for size in range(3) for c in itertools.combinations(range(PARTS), size))  # class c: parts CLASSES[c]
PART_COLORS = np.array([[0.95, 0.1, 0.1], [0.1, 0.85, 0.1], [0.15, 0.25, 0.95]], "float32")  # one per part
NOISE = 0.08  # background: gray 0.5 plus this much uniform noise
LATE_LAYER = "conv3"  # the late layer whose concepts recover the parts (8 x 8 grid, post-ReLU)


def _pattern(kind: int) -> np.ndarray:
    """The texture of part `kind`: (PART_SIZE, PART_SIZE) in [0, 1]."""
    y, x = np.mgrid[:PART_SIZE, :PART_SIZE]
    if kind == 0:
        return ((y // 2) % 2).astype("float32")  # horizontal stripes
    if kind == 1:
        return ((x // 2) % 2).astype("float32")  # vertical stripes
    if kind == 2:
        return (((x // 2) + (y // 2)) % 2).astype("float32")  # checks
    return np.ones((PART_SIZE, PART_SIZE), "float32")  # a solid square


def part_image(kind: int) -> np.ndarray:
    """Part `kind` as an RGB patch (PART_SIZE, PART_SIZE, 3) in [0, 1]: its color where its pattern is on,
    dark elsewhere."""
    p = _pattern(kind)[..., None]
    return (p * PART_COLORS[kind] + (1 - p) * 0.1).astype("float32")


def class_parts(label: int) -> tuple[int, ...]:
    """The parts class `label` holds (none, one or two)."""
    return CLASSES[label]


def planted_data(n: int = 256, seed: int = 0):
    """`n` images with planted parts, the classes in turn (shuffled).

    Returns:
        `(images, labels, part_map)`: float32 `(n, 32, 32, 3)` in [0, 1], int `(n,)` in [0, len(CLASSES)), and int
        `(n, 32, 32)`: the part under each pixel, -1 for background.
    """
    rng = np.random.default_rng(seed)
    images = (0.5 + NOISE * (rng.random((n, IMAGE_SIZE, IMAGE_SIZE, 3)) - 0.5)).astype("float32")
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    part_map = np.full((n, IMAGE_SIZE, IMAGE_SIZE), -1, "int64")
    spots = IMAGE_SIZE - PART_SIZE + 1
    for i, label in enumerate(labels):
        placed: list[tuple[int, int]] = []
        for kind in class_parts(int(label)):
            while True:  # a free spot: the two parts never overlap
                top, left = (int(v) for v in rng.integers(0, spots, size=2))
                if all(abs(top - t) >= PART_SIZE or abs(left - s) >= PART_SIZE for t, s in placed):
                    break
            placed.append((top, left))
            images[i, top : top + PART_SIZE, left : left + PART_SIZE] = part_image(kind)
            part_map[i, top : top + PART_SIZE, left : left + PART_SIZE] = kind
    return images, labels.astype("int64"), part_map


def planted_model(seed: int = 0) -> keras.Model:
    """The small CNN (untrained): conv1 (16) -> pool -> conv2 (32) -> pool -> conv3 (32, 8 x 8) -> global max
    -> one logit per class."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name=LATE_LAYER)(x)
    x = keras.layers.GlobalMaxPooling2D(name="gmp")(x)  # max, not mean: a part must fire somewhere on its own
    out = keras.layers.Dense(len(CLASSES), name="logits")(x)
    return keras.Model(inputs, out, name="planted_cnn")


@functools.cache  # trained once per test session, shared by the test modules
def trained_planted_model(n: int = 512, epochs: int = 8, seed: int = 0):
    """`planted_model` trained on `planted_data(n, seed)` for a few seconds.

    Returns:
        `(model, accuracy)`: the model and its accuracy on a fresh seeded set of 256 images.
    """
    images, labels, _ = planted_data(n, seed)
    model = planted_model(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(images, labels, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    test_images, test_labels, _ = planted_data(256, seed + 1000)
    accuracy = float(np.mean(np.argmax(model.predict(test_images, verbose=0), axis=1) == test_labels))
    return model, accuracy
