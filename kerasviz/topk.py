"""The pieces of dataset examples (`kerasviz.examples.dataset_examples`): the reader that turns one batch of a
layer's output into each filter's best position, the running top-k over the stream, and the crops.

A token layer (a vision transformer's `(batch, tokens, channels)`) is read as its patch grid
(`kerasviz.nets.tokens.to_grid`): its positions are patches and its crops are windows of patches
(`token_field`), or, with `tokens="class"`, its class token, read as a layer without positions (whole images).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz import nets
from kerasviz.nets.receptive_field import ReceptiveField, positions_field
from kerasviz.nets.tokens import TokenGrid, layer_grid, to_grid

CROP_PAD_VALUE = 0.5  # gray fills the part of a crop that lies outside the image


TOKEN_CROP_PATCHES = 3  # a token's crop: its patch in the middle of a window of 3 x 3 patches


EXAMPLE_TOKENS = ("patches", "class")  # what dataset examples of a token layer read


class PositionMax(keras.layers.Layer):
    """For the chosen channels: the maximum over positions and the `(row, col)` where it is.

    A token layer is read as its patch grid (`grid`), or by its class token alone (`class_token=True`: a
    layer without positions, whose positions are `(-1, -1)`).
    """

    def __init__(self, filters: Sequence[int], grid: TokenGrid | None = None, class_token: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = [int(f) for f in filters]
        self.grid = grid
        self.class_token = class_token

    def call(self, x):
        x = keras.ops.take(keras.ops.cast(x, "float32"), self.filters, axis=-1)
        if self.class_token:
            x = x[:, 0]
        elif self.grid is not None:
            x = to_grid(x, self.grid)
        if len(x.shape) == 2:
            return x, keras.ops.full(keras.ops.shape(x) + (2,), -1, dtype="int32")
        shape = keras.ops.shape(x)
        flat = keras.ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))
        best = keras.ops.max(flat, axis=1)
        where = keras.ops.cast(keras.ops.argmax(flat, axis=1), "int32")
        width = keras.ops.cast(shape[2], "int32")
        return best, keras.ops.stack([where // width, where % width], axis=-1)


def token_field(grid: TokenGrid, image_size: Sequence[int], patch: ReceptiveField | None = None) -> ReceptiveField:
    """The crop window of a token layer's positions: the patch, centered in `TOKEN_CROP_PATCHES` patches a side.

    Before the first attention layer a patch token sees exactly its patch; after it, it sees the whole
    image (`ReceptiveField.mixed`). The crops take the patch, with one patch of context around it, for every
    token layer: a whole-image crop would say nothing about where the filter fired, and a token's own patch
    stays the strongest part of it through the residual stream (docs/analysis.md, "Token layers").

    Args:
        grid: the layer's `TokenGrid`.
        image_size: the `(height, width)` of the images the model saw.
        patch: the token's own field (`kerasviz.nets.receptive_field.positions_field`), whose geometry the
            window keeps. Defaults to None: the image cut evenly into the grid's patches.

    Returns:
        A `ReceptiveField`: `jump` the patch size, `offset` the first patch's center, `size` the window.

    Example:
    >>> from kerasviz.nets.tokens import TokenGrid
    >>> from kerasviz.topk import token_field
    >>> field = token_field(TokenGrid(rows=14, cols=14, extra=1), (224, 224))
    >>> field.size, field.jump, field.center((0, 1))
    ((48, 48), (16.0, 16.0), (7.5, 23.5))
    """
    if patch is None:
        jump = (image_size[0] / grid.rows, image_size[1] / grid.cols)
        patch = ReceptiveField(size=tuple(int(round(j)) for j in jump), jump=jump,
                               offset=tuple((j - 1) / 2 for j in jump), input_size=tuple(int(s) for s in image_size))
    return dataclasses.replace(patch, size=tuple(int(round(TOKEN_CROP_PATCHES * j)) for j in patch.jump))


def reader(network: nets.Network, path: str, extractor: keras.Model, filters: Sequence[int],
           image_size: Sequence[int], *, tokens: str = "patches", extra_tokens: int | None = None):
    """`(model, field, crop_size)` for images of `image_size`: a model from the network's inputs to each
    filter's best score and position, the receptive field of a position (None without positions), and
    the crop size (the field within the image, or the whole image)."""
    output = extractor.outputs[0]
    rank = len(output.shape)
    if tokens not in EXAMPLE_TOKENS:
        raise ValueError(f"tokens must be one of {EXAMPLE_TOKENS} for dataset examples. Received: tokens={tokens!r}.")
    grid, field = None, None
    if rank == 3:
        grid = layer_grid(tuple(output.shape), path, tuple(image_size), extra_tokens=extra_tokens)
        if tokens == "class" and grid.extra < 1:
            raise ValueError(f"tokens='class' needs a class token; the tokens of layer {path!r} are all patches. "
                             "Use tokens='patches', or tell the token count with extra_tokens=.")
        field = None if tokens == "class" else token_field(
            grid, image_size, positions_field(network, path, tuple(image_size), rank))
    elif rank in (2, 4):
        if tokens != "patches":
            raise ValueError(f"tokens={tokens!r} needs a token layer (batch, tokens, channels); layer {path!r} "
                             f"outputs shape {tuple(output.shape)}. Leave tokens at its default, 'patches'.")
        field = positions_field(network, path, tuple(image_size), rank)
    else:
        raise ValueError(f"dataset_examples needs a layer with output (batch, H, W, C), (batch, tokens, C) or "
                         f"(batch, C); layer {path!r} outputs shape {tuple(output.shape)}.")
    model = keras.Model(extractor.inputs, PositionMax(filters, grid, tokens == "class")(output), name="kerasviz_topk")
    crop_size = tuple(image_size) if field is None else (
        min(field.size[0], image_size[0]), min(field.size[1], image_size[1]))
    return model, field, crop_size


class RunningTopK:
    """A running top-k per filter: scores, ids, positions, labels and crops."""

    def __init__(self, n_filters: int, k: int):
        self.k = k
        self.scores = np.full((n_filters, k), -np.inf, "float32")
        self.ids = np.full((n_filters, k), -1, "int64")
        self.positions = np.full((n_filters, k, 2), -1, "int32")
        self.centers = np.full((n_filters, k, 2), np.nan, "float32")
        self.labels = np.full((n_filters, k), -1, "int64")
        self.crops: np.ndarray | None = None

    def update(self, scores, positions, centers, first_id, labels, cut) -> None:
        """Merge one batch: `scores` `(B, F)`, `positions`/`centers` `(B, F, 2)`; `cut(b, f)` gives
        the crop of image `b` for filter slot `f`."""
        n_filters, k = self.scores.shape
        batch = scores.shape[0]
        ids = first_id + np.arange(batch)
        cand_scores = np.concatenate([self.scores, scores.T], axis=1)
        cand_ids = np.concatenate([self.ids, np.broadcast_to(ids, (n_filters, batch))], axis=1)
        cand_scores = np.where(np.isnan(cand_scores), -np.inf, cand_scores)
        order = np.lexsort((cand_ids, -cand_scores), axis=-1)[:, :k]  # best score, then first image
        rows = np.arange(n_filters)[:, None]
        from_batch = order >= k
        b_index = np.clip(order - k, 0, batch - 1)
        old = np.clip(order, 0, k - 1)
        self.scores = cand_scores[rows, order].astype("float32")
        self.ids = cand_ids[rows, order]
        f_index = np.broadcast_to(np.arange(n_filters)[:, None], order.shape)
        self.positions = np.where(from_batch[..., None], positions[b_index, f_index], self.positions[rows, old])
        self.centers = np.where(from_batch[..., None], centers[b_index, f_index], self.centers[rows, old])
        batch_labels = labels[b_index] if labels is not None else np.full(order.shape, -1)
        self.labels = np.where(from_batch, batch_labels, self.labels[rows, old])
        crops = None if self.crops is None else self.crops[rows, old]
        for f, r in zip(*np.nonzero(from_batch), strict=True):
            crop = cut(int(b_index[f, r]), int(f))
            if crops is None:
                crops = np.zeros((n_filters, k, *crop.shape), "uint8")
            crops[f, r] = crop
        self.crops = crops


def cutter(batch_u8: np.ndarray, positions: np.ndarray, field: ReceptiveField | None, crop_size):
    """A function `(b, f)` -> the crop of image `b` around filter slot `f`'s maximum."""
    ch, cw = crop_size
    pad_level = int(round(CROP_PAD_VALUE * 255))
    padded = np.pad(batch_u8, ((0, 0), (ch, ch), (cw, cw), (0, 0)), constant_values=pad_level)

    def cut(b: int, f: int) -> np.ndarray:
        if field is None:
            return batch_u8[b]
        row, col = positions[b, f]
        cy, cx = field.center((row, col))
        top = int(math.floor(cy - (ch - 1) / 2 + 0.5))
        left = int(math.floor(cx - (cw - 1) / 2 + 0.5))
        return padded[b, top + ch : top + 2 * ch, left + cw : left + 2 * cw]

    return cut


