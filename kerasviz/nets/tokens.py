"""Token layers: a `(batch, tokens, channels)` output whose patch tokens form the image's patch grid.

A vision transformer cuts the image into patches, one token per patch, in row-major order, and puts a few
extra tokens in front: a class token, and for DINOv2-style models register tokens. `token_grid` reads the
grid from the token count against the image's shape (the patch size that makes the patches and at most
`MAX_EXTRA_TOKENS` extra tokens add up to the count), or from `extra_tokens=` when the caller knows it.
`to_grid` then turns the patch tokens into a `(batch, rows, cols, channels)` map, the shape every spatial
tool of kerasviz reads (heatmaps, feature maps, dataset examples), and `extra_tokens` gives the others.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MAX_EXTRA_TOKENS = 16  # the most leading class/register tokens detection accepts (DINOv2: 1 class + 4 registers)
TOKEN_CHOICES = ("patches", "all", "class")  # what a channel objective averages over on a token layer


@dataclasses.dataclass(frozen=True)
class TokenGrid:
    """Where a token layer's tokens sit: `extra` leading class/register tokens, then `rows * cols` patch
    tokens in row-major order.

    Attributes:
        rows: patch rows (the image's height over the patch size).
        cols: patch columns.
        extra: leading tokens that are not patches (class and register tokens).

    Example:
    >>> kv.nets.TokenGrid(rows=8, cols=8, extra=1).tokens
    65
    """

    rows: int
    cols: int
    extra: int = 0

    @property
    def patches(self) -> int:
        """The number of patch tokens, `rows * cols`."""
        return self.rows * self.cols

    @property
    def tokens(self) -> int:
        """All tokens, `extra + rows * cols`."""
        return self.extra + self.patches

    def position(self, row: int, col: int) -> int:
        """The token index of the patch at `(row, col)` of the grid."""
        return self.extra + row * self.cols + col


def _shape_of(layer_or_shape) -> tuple | None:
    if isinstance(layer_or_shape, (tuple, list)) or type(layer_or_shape).__name__ == "TensorShape":
        return tuple(layer_or_shape)
    shape = getattr(layer_or_shape, "shape", None)  # a tensor, an array or a KerasTensor
    if shape is not None and not hasattr(layer_or_shape, "_inbound_nodes"):
        return tuple(shape)
    try:
        out = layer_or_shape.output
    except (AttributeError, ValueError):
        return None
    return None if isinstance(out, (list, tuple)) else tuple(out.shape)


def check_extra_tokens(extra_tokens) -> None:
    """Raise a ValueError for an `extra_tokens=` that is neither None nor an int >= 0."""
    if extra_tokens is not None and (isinstance(extra_tokens, bool) or not isinstance(extra_tokens, (int, np.integer))
                                     or extra_tokens < 0):
        raise ValueError(f"extra_tokens must be an int >= 0 (the class and register tokens before the patch "
                         f"tokens) or None to detect it. Received: extra_tokens={extra_tokens!r}.")


def token_grid(layer_or_shape, image_size=None, *, extra_tokens: int | None = None) -> TokenGrid | None:
    """The patch grid of a token layer, or None for a layer whose output is not `(batch, tokens, channels)`.

    Detection: the fewest leading tokens (0 to `MAX_EXTRA_TOKENS`) that leave a `rows x cols` grid of the
    image's aspect ratio (within the rounding of a patch); without `image_size` the grid is square,
    `floor(sqrt(tokens))` on a side. Only the image's shape counts, not its size: an image resized to the
    model's input gives the same grid. `extra_tokens=` skips the detection: the rest must form the grid.

    Args:
        layer_or_shape: a Keras layer (of a built functional model), a tensor or array, or a shape
            `(batch, tokens, channels)`.
        image_size: the image's `(height, width)` (or one int for a square image): its aspect ratio is the
            grid's. Defaults to None (a square grid).
        extra_tokens: how many leading tokens are not patches (1 for a class token). Defaults to None
            (detected).

    Returns:
        A `TokenGrid`, or None where the output is not rank 3, or its token count fits no grid.

    Raises:
        ValueError: `extra_tokens` is not an int >= 0, or leaves a token count that forms no grid of the
            image's shape.

    Example:
    >>> kv.nets.token_grid((None, 197, 768), (224, 224))
    TokenGrid(rows=14, cols=14, extra=1)
    >>> kv.nets.token_grid((None, 14, 14, 768)) is None
    True
    """
    check_extra_tokens(extra_tokens)
    shape = _shape_of(layer_or_shape)
    if shape is None or len(shape) != 3 or shape[1] is None:
        return None
    tokens = int(shape[1])
    if isinstance(image_size, (int, np.integer)):
        image_size = (int(image_size), int(image_size))
    if image_size is not None and None in tuple(image_size):
        image_size = None
    if extra_tokens is not None:
        return _told(tokens, int(extra_tokens), image_size)
    if image_size is None:
        side = math.isqrt(tokens)
        extra = tokens - side * side
        return TokenGrid(side, side, extra) if side and extra <= MAX_EXTRA_TOKENS else None
    h, w = (int(v) for v in image_size)
    for extra in range(min(MAX_EXTRA_TOKENS, tokens - 1) + 1):
        patches = tokens - extra
        for rows in range(1, patches + 1):
            cols, rest = divmod(patches, rows)
            if not rest and abs(rows / cols - h / w) <= (h / w) / (2 * min(rows, cols)):
                return TokenGrid(rows, cols, extra)
    return None


def layer_grid(shape, layer: str, image_size=None, *, extra_tokens: int | None = None) -> TokenGrid:
    """The patch grid of token layer `layer`'s output `shape` `(batch, tokens, channels)`, or a ValueError that
    names the layer and says what is needed: the one check of the apps that read a token layer as a map.

    Raises:
        ValueError: the tokens form no patch grid, or `extra_tokens` leaves a count that forms none.
    """
    try:
        grid = token_grid(tuple(shape), image_size, extra_tokens=extra_tokens)
    except ValueError as e:  # extra_tokens= told, and the rest forms no grid
        raise ValueError(f"Layer {layer!r}: {e}") from e
    if grid is None:
        raise ValueError(
            f"Layer {layer!r} outputs {shape[1]} tokens per image, which form no patch grid. Tell how many class "
            "and register tokens lead the patch tokens with extra_tokens=, or choose a layer whose tokens are patches."
        )
    return grid


def _told(tokens: int, extra: int, image_size) -> TokenGrid:
    patches = tokens - extra
    if image_size is None:
        side = math.isqrt(max(patches, 0))
        if patches > 0 and side * side == patches:
            return TokenGrid(side, side, extra)
    else:
        h, w = (int(v) for v in image_size)
        rows = max(1, round(math.sqrt(max(patches, 0) * h / w)))
        if patches > 0 and patches % rows == 0:
            return TokenGrid(rows, patches // rows, extra)
    where = "square grid" if image_size is None else f"grid of a {image_size[0]}x{image_size[1]} image's shape"
    raise ValueError(f"extra_tokens={extra} leaves {patches} of the layer's {tokens} tokens, which form no {where}. "
                     "Give the number of class and register tokens before the patch tokens (1 for a ViT with a "
                     "class token), or leave extra_tokens out to detect it.")


def _is_numpy(x) -> bool:
    return isinstance(x, np.ndarray)


def to_grid(x, grid: TokenGrid):
    """The patch tokens of `x` as a map: `(batch, tokens, channels)` -> `(batch, rows, cols, channels)`.

    Args:
        x: a token layer's output (a tensor or a NumPy array).
        grid: its `TokenGrid`.

    Returns:
        The same kind as `x` (a NumPy array for a NumPy array, else a backend tensor), patch tokens only.

    Example:
    >>> tokens = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    >>> kv.nets.to_grid(tokens, kv.nets.TokenGrid(2, 2, extra=1)).shape
    (2, 2, 2, 3)
    """
    patches = x[:, grid.extra:grid.extra + grid.patches, :]
    shape = (-1, grid.rows, grid.cols, x.shape[-1])
    if _is_numpy(x):
        return patches.reshape(shape)
    from keras import ops

    return ops.reshape(patches, shape)


def extra_tokens(x, grid: TokenGrid):
    """The leading class/register tokens of `x`: `(batch, extra, channels)` (the class token first).

    Args:
        x: a token layer's output (a tensor or a NumPy array).
        grid: its `TokenGrid`.

    Returns:
        The same kind as `x`, of shape `(batch, grid.extra, channels)`.

    Example:
    >>> tokens = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    >>> kv.nets.extra_tokens(tokens, kv.nets.TokenGrid(2, 2, extra=1)).shape
    (2, 1, 3)
    """
    return x[:, :grid.extra, :]


def check_tokens(tokens: str) -> str:
    """`tokens` checked against `TOKEN_CHOICES` (what a channel objective reads on a token layer).

    Raises:
        ValueError: another value (the message lists the choices).
    """
    if tokens not in TOKEN_CHOICES:
        from kerasviz import names

        raise ValueError(f"tokens must be one of {', '.join(map(repr, TOKEN_CHOICES))}: the patch tokens, every "
                         f"token, or the class token alone. Received: tokens={tokens!r}."
                         f"{names.did_you_mean(str(tokens), TOKEN_CHOICES)}")
    return tokens
