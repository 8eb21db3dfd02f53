"""A small ViT (patch 4, 32x32, plain Keras layers) and a small ConvNeXt-style net, and the synthetic data they
learn in seconds: oriented gratings, four classes. Shared by tests/test_transformers.py, tests/test_tokens.py,
docs/make_transformer_images.py, benchmarks/quality.py --transformers, and (the gratings)
tests/test_trained_models.py, tests/test_accentuate.py and benchmarks/accentuation.py."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

CLASSES = 4  # stripes at 0, 45, 90 and 135 degrees
SIZE = 32
PATCH = 4


def gratings(n_per_class: int, size: int = SIZE, seed: int = 0, *, wavelengths=(4, 8), shuffle: bool = True,
             channels: int = 3):
    """Oriented gratings (random wavelength in `wavelengths` pixels, phase and tint of `channels` channels) with
    noise, with labels; shuffled, or in class order. Shared by the tests and benchmarks that train on gratings."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    xs, ys = [], []
    for c in range(CLASSES):
        for _ in range(n_per_class):
            t = np.deg2rad(45.0 * c)
            along = xx * np.cos(t) + yy * np.sin(t)
            wave = np.cos(2 * np.pi * along / rng.uniform(*wavelengths) + rng.uniform(0, 6.3))
            img = (0.5 + 0.5 * wave)[..., None] * rng.uniform(0.6, 1.0, channels)
            xs.append(np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1))
            ys.append(c)
    x, y = np.stack(xs).astype("float32"), np.array(ys)
    if not shuffle:
        return x, y
    order = rng.permutation(len(ys))
    return x[order], y[order]


@keras.saving.register_keras_serializable(package="kerasviz_tests")
class ClassTokenAndPosition(layers.Layer):
    """Prepends a learned class token and adds learned position embeddings: `(b, n, d)` -> `(b, n + 1, d)`."""

    def build(self, shape):
        self.cls = self.add_weight(shape=(1, 1, shape[-1]), initializer="zeros", name="cls")
        self.pos = self.add_weight(shape=(1, shape[1] + 1, shape[-1]),
                                   initializer=keras.initializers.RandomNormal(stddev=0.02), name="pos")

    def call(self, x):
        cls = keras.ops.repeat(keras.ops.cast(self.cls, x.dtype), keras.ops.shape(x)[0], axis=0)
        return keras.ops.concatenate([cls, x], axis=1) + keras.ops.cast(self.pos, x.dtype)


@keras.saving.register_keras_serializable(package="kerasviz_tests")
class FirstToken(layers.Layer):
    """The class token: `(b, n, d)` -> `(b, d)`."""

    def call(self, x):
        return x[:, 0]


def tiny_vit(size: int = SIZE, patch: int = PATCH, dim: int = 32, mlp: int = 64, blocks: int = 2, heads: int = 2,
             classes: int = CLASSES, seed: int = 0) -> keras.Model:
    """A ViT of plain Keras layers: patch embedding (a strided convolution), class token, position
    embeddings, pre-norm blocks (`block{i}_mlp1` is the MLP hidden layer after its GELU, `block{i}_out` the
    block's output), the class token's logits (`logits`)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="scale")(inputs)
    x = layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(x)
    x = layers.Reshape(((size // patch) ** 2, dim), name="tokens")(x)
    x = ClassTokenAndPosition(name="cls_pos")(x)
    for b in range(blocks):
        h = layers.LayerNormalization(name=f"block{b}_ln1")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, name=f"block{b}_attn")(h, h)
        x = layers.Add(name=f"block{b}_add")([x, h])
        h = layers.LayerNormalization(name=f"block{b}_ln2")(x)
        h = layers.Dense(mlp, activation="gelu", name=f"block{b}_mlp1")(h)
        h = layers.Dense(dim, name=f"block{b}_mlp2")(h)
        x = layers.Add(name=f"block{b}_out")([x, h])
    x = layers.LayerNormalization(name="final_ln")(x)
    x = FirstToken(name="class_token")(x)
    outputs = layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_vit")


def tiny_convnext(size: int = SIZE, dims=(16, 32), classes: int = CLASSES, seed: int = 0) -> keras.Model:
    """A ConvNeXt-style net: a 4x4 stride-4 stem, blocks of depthwise 5x5 conv, LayerNorm, a 4x wider Dense with
    GELU (`stage{i}_mlp1`) and a Dense back, residual (`stage{i}_out`); a 2x2 downsampling between stages."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="scale")(inputs)
    x = layers.Conv2D(dims[0], 4, strides=4, name="stem")(x)
    for i, dim in enumerate(dims):
        if i:
            x = layers.LayerNormalization(name=f"down{i}_ln")(x)
            x = layers.Conv2D(dim, 2, strides=2, name=f"down{i}")(x)
        h = layers.DepthwiseConv2D(5, padding="same", name=f"stage{i}_dw")(x)
        h = layers.LayerNormalization(name=f"stage{i}_ln")(h)
        h = layers.Dense(4 * dim, activation="gelu", name=f"stage{i}_mlp1")(h)
        h = layers.Dense(dim, name=f"stage{i}_mlp2")(h)
        x = layers.Add(name=f"stage{i}_out")([x, h])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.LayerNormalization(name="head_ln")(x)
    outputs = layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_convnext")


def train(model: keras.Model, epochs: int = 12, n_per_class: int = 48, seed: int = 0) -> float:
    """Train `model` on gratings for a few seconds; returns its training accuracy."""
    x, y = gratings(n_per_class, model.inputs[0].shape[1], seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return float(model.evaluate(x, y, verbose=0)[1])


def patch_grid_energy(images, patch: int) -> float:
    """How strongly pictures print a `patch`-pixel grid: the mean spectral power of the gray images on the rows
    and columns of frequencies that are multiples of `size / patch` (the grid's harmonics), over the power one
    bin beside them. About 1: no grid; well above 1: the patch grid shows."""
    gray = np.asarray(images, "float32").mean(axis=-1)
    gray = gray - gray.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(gray)) ** 2  # [n, h, w]
    size = gray.shape[1]
    step = size // patch
    on = [k for k in range(step, size - step + 1, step)]
    beside = [k + d for k in on for d in (-1, 1) if 0 < k + d < size and (k + d) % step]
    rows_on, rows_beside = power[:, on, :].mean(), power[:, beside, :].mean()
    cols_on, cols_beside = power[:, :, on].mean(), power[:, :, beside].mean()
    return float((rows_on + cols_on) / (rows_beside + cols_beside))
