"""Random, differentiable image transforms applied before the model at every step (transformation
robustness, as in Lucid).

A transform is a `Transform`: a function `(images, u) -> images` where `u` is a `[batch, n_random]`
tensor of uniform draws in [0, 1) that the optimizer supplies (drawn on the host from the run's seed,
so the same seed gives the same transforms on every backend). Affine transforms (jitter, scale,
rotate) also expose their per-image matrix, and `compose` fuses neighbouring ones into a single
resampling. Everything inside is `keras.ops`: it runs inside the compiled step on any backend.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from kerasviz.engine.deferred import ops


@dataclasses.dataclass(frozen=True, eq=False)
class Transform:
    """A random transform.

    Attributes:
        name: a description (`"jitter(8)"`).
        n_random: how many uniform draws per image it consumes.
        fn: `(images, u) -> images`.
        matrix: for affine transforms, `(u, height, width) -> [batch, 3, 3]` mapping output pixel
            coordinates `(x, y, 1)` to input coordinates.
        fill_mode: for affine transforms, how pixels from outside the image are filled; `compose` fuses
            neighbouring affine transforms only when they fill alike.
    """

    name: str
    n_random: int
    fn: Callable
    matrix: Callable | None = None
    fill_mode: str = "reflect"

    def __call__(self, images, u):
        return self.fn(images, u)

    # Transforms compare by name: `jitter(4)` made twice is the same transform, so settings that use
    # it reuse the compiled step. Names carry every argument.
    def __eq__(self, other):
        return isinstance(other, Transform) and (self.name, self.n_random) == (other.name, other.n_random)

    def __hash__(self):
        return hash((self.name, self.n_random))

    def __repr__(self):
        return self.name


def _fill(fill_mode: str) -> str:
    return "" if fill_mode == "reflect" else f", fill_mode={fill_mode!r}"


def _affine_fn(matrix, fill_mode):
    def fn(images, u):
        return apply_matrix(images, matrix(u, images.shape[1], images.shape[2]), fill_mode)

    return fn


def apply_matrix(images, m, fill_mode: str = "reflect"):
    """Resample images with per-image 3x3 matrices (output -> input coordinates), bilinear.

    Pixels that map outside an image are filled by `fill_mode` (`"constant"` fills with 0.5 gray).

    Args:
        images: a `[batch, H, W, C]` tensor.
        m: `[batch, 3, 3]` matrices mapping output pixel coordinates `(x, y, 1)` to input coordinates.
        fill_mode: any `fill_mode` of `keras.ops.image.affine_transform` (`"reflect"`, `"constant"`, `"nearest"`, ...).
            Defaults to `"reflect"`.

    Returns:
        The resampled `[batch, H, W, C]` tensor.

    Example:
    >>> images = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    >>> same = kv.transforms.apply_matrix(images, np.tile(np.eye(3, dtype="float32"), (2, 1, 1)))
    >>> np.allclose(keras.ops.convert_to_numpy(same), images, atol=1e-5)
    True
    """
    flat = ops.reshape(m, (-1, 9))[:, :8]
    return ops.image.affine_transform(
        images, flat, interpolation="bilinear", fill_mode=fill_mode, fill_value=0.5
    )


def _translation(tx, ty):
    one, zero = ops.ones_like(tx), ops.zeros_like(tx)
    return ops.stack(
        [ops.stack([one, zero, tx], -1), ops.stack([zero, one, ty], -1), ops.stack([zero, zero, one], -1)],
        axis=1,
    )


def _about_center(m2, h, w):
    """A 2x2 linear map per image, applied about the image center, as 3x3 matrices."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a, b, c, d = m2
    zero, one = ops.zeros_like(a), ops.ones_like(a)
    tx = cx - a * cx - b * cy
    ty = cy - c * cx - d * cy
    return ops.stack(
        [ops.stack([a, b, tx], -1), ops.stack([c, d, ty], -1), ops.stack([zero, zero, one], -1)], axis=1
    )


def jitter(pixels: int, *, fill_mode: str = "reflect") -> Transform:
    """Shift each image by a random whole number of pixels in `[-pixels, pixels]` on each axis.

    Args:
        pixels: the largest shift, an int >= 0.
        fill_mode: how pixels shifted in from outside are filled: `"reflect"`, `"constant"` (0.5 gray),
            `"nearest"` or `"wrap"`. Defaults to `"reflect"`.

    Returns:
        A `Transform` that draws 2 random numbers per image.

    Raises:
        ValueError: `pixels` is negative.

    Example:
    >>> kv.transforms.jitter(8).name
    'jitter(8)'
    """
    if pixels < 0:
        raise ValueError(f"jitter pixels must be >= 0. Received: {pixels}.")

    def matrix(u, h, w):
        span = 2 * pixels + 1
        tx = ops.floor(u[:, 0] * span) - pixels
        ty = ops.floor(u[:, 1] * span) - pixels
        return _translation(tx, ty)

    return Transform(f"jitter({pixels}{_fill(fill_mode)})", 2, _affine_fn(matrix, fill_mode), matrix, fill_mode)


def scale(low: float = 0.9, high: float = 1.1, *, fill_mode: str = "reflect") -> Transform:
    """Zoom each image by a random factor in `[low, high]` about its center.

    Args:
        low: the smallest factor, > 0. Defaults to 0.9.
        high: the largest factor, >= `low`. Defaults to 1.1.
        fill_mode: how pixels zoomed in from outside are filled: `"reflect"`, `"constant"` (0.5 gray),
            `"nearest"` or `"wrap"`. Defaults to `"reflect"`.

    Returns:
        A `Transform` that draws 1 random number per image.

    Raises:
        ValueError: not `0 < low <= high`.

    Example:
    >>> kv.transforms.scale(0.95, 1.05).name
    'scale(0.95, 1.05)'
    """
    if not 0 < low <= high:
        raise ValueError(f"scale needs 0 < low <= high. Received: ({low}, {high}).")

    def matrix(u, h, w):
        s = low + (high - low) * u[:, 0]
        inv = 1.0 / s
        zero = ops.zeros_like(s)
        return _about_center((inv, zero, zero, inv), h, w)

    return Transform(f"scale({low:g}, {high:g}{_fill(fill_mode)})", 1, _affine_fn(matrix, fill_mode), matrix, fill_mode)


def rotate(degrees: float = 10.0, *, fill_mode: str = "reflect") -> Transform:
    """Rotate each image by a random angle in `[-degrees, degrees]` about its center.

    Args:
        degrees: the largest angle, in degrees. Defaults to 10.0.
        fill_mode: how pixels rotated in from outside are filled: `"reflect"`, `"constant"` (0.5 gray),
            `"nearest"` or `"wrap"`. Defaults to `"reflect"`.

    Returns:
        A `Transform` that draws 1 random number per image.

    Example:
    >>> kv.transforms.rotate(5, fill_mode="constant").name
    "rotate(5, fill_mode='constant')"
    """

    def matrix(u, h, w):
        theta = (2.0 * u[:, 0] - 1.0) * (degrees * math.pi / 180.0)
        cos, sin = ops.cos(theta), ops.sin(theta)
        return _about_center((cos, sin, -sin, cos), h, w)

    return Transform(f"rotate({degrees:g}{_fill(fill_mode)})", 1, _affine_fn(matrix, fill_mode), matrix, fill_mode)


def pad(pixels: int, *, mode: str = "reflect", value: float = 0.5) -> Transform:
    """Pad every border by `pixels` (`mode`: `"reflect"` or `"constant"` with `value`); not random.

    Args:
        pixels: the width added at each border, an int >= 0.
        mode: `"reflect"`, `"symmetric"` or `"constant"`. Defaults to `"reflect"`.
        value: the fill value for `"constant"`, in [0, 1]. Defaults to 0.5 (gray).

    Returns:
        A `Transform` that makes images `2 * pixels` larger on each side and draws no random numbers.

    Raises:
        ValueError: `mode` is not one of the three.

    Example:
    >>> kv.transforms.pad(4, mode="constant").name
    "pad(4, 'constant')"
    """
    if mode not in ("reflect", "constant", "symmetric"):
        raise ValueError(f"pad mode must be 'reflect', 'symmetric' or 'constant'. Received: {mode!r}.")

    def fn(images, u):
        widths = ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0))
        if mode == "constant":
            return ops.pad(images, widths, mode="constant", constant_values=value)
        return ops.pad(images, widths, mode=mode)

    return Transform(f"pad({pixels}, {mode!r})", 0, fn)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalized 1-D Gaussian kernel with radius ceil(2 sigma).

    Args:
        sigma: the standard deviation in pixels, > 0.

    Returns:
        float32 array of `2 * radius + 1` weights that sum to 1 (radius at least 1).

    Example:
    >>> kv.transforms.gaussian_kernel(0.5).round(3)
    array([0.107, 0.787, 0.107], dtype=float32)
    """
    radius = max(1, int(math.ceil(2 * sigma)))
    x = np.arange(-radius, radius + 1, dtype="float32")
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype("float32")


def blur_images(images, sigma: float):
    """Separable Gaussian blur of a `[batch, H, W, C]` tensor (reflect padding), any backend.

    Args:
        images: a `[batch, H, W, C]` tensor or array; H and W must exceed the kernel radius, ceil(2 sigma).
        sigma: the standard deviation in pixels; 0 or less returns `images` unchanged.

    Returns:
        The blurred tensor, same shape.

    Example:
    >>> images = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype("float32")
    >>> tuple(kv.transforms.blur_images(images, 1.0).shape)
    (1, 16, 16, 3)
    """
    if sigma <= 0:
        return images
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    c = images.shape[-1]
    x = ops.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    kx = np.tile(k.reshape(1, -1, 1, 1), (1, 1, c, 1))
    ky = np.tile(k.reshape(-1, 1, 1, 1), (1, 1, c, 1))
    x = ops.depthwise_conv(x, kx, padding="valid")
    return ops.depthwise_conv(x, ky, padding="valid")


def blur(sigma: float = 0.5) -> Transform:
    """Gaussian blur with standard deviation `sigma` pixels (not random).

    Args:
        sigma: the standard deviation in pixels; 0 or less leaves images unchanged. Defaults to 0.5.

    Returns:
        A `Transform` that draws no random numbers.

    Example:
    >>> kv.transforms.blur(1.0).name
    'blur(1)'
    """
    return Transform(f"blur({sigma:g})", 0, lambda images, u: blur_images(images, sigma))


def compose(transforms: Sequence[Transform]) -> Transform:
    """Chain transforms left to right into one; neighbouring affine transforms with the same `fill_mode`
    are fused into a single resampling (one bilinear interpolation instead of several).

    Args:
        transforms: a sequence of `Transform`, applied first to last.

    Returns:
        One `Transform` that draws the random numbers of all of them.

    Example:
    >>> t = kv.transforms.compose([kv.transforms.jitter(4), kv.transforms.rotate(5)])
    >>> t.name, t.n_random
    ('compose(jitter(4), rotate(5))', 3)
    """
    transforms = list(transforms)
    n = sum(t.n_random for t in transforms)

    def fn(images, u):
        start, i = 0, 0
        while i < len(transforms):
            t = transforms[i]
            if t.matrix is None:
                images = t(images, u[:, start : start + t.n_random])
                start += t.n_random
                i += 1
                continue
            m, fill_mode = None, t.fill_mode
            while i < len(transforms) and transforms[i].matrix is not None and transforms[i].fill_mode == fill_mode:
                t = transforms[i]
                mi = t.matrix(u[:, start : start + t.n_random], images.shape[1], images.shape[2])
                m = mi if m is None else ops.matmul(m, mi)
                start += t.n_random
                i += 1
            images = apply_matrix(images, m, fill_mode)
        return images

    return Transform("compose(" + ", ".join(t.name for t in transforms) + ")", n, fn)


def standard_transforms() -> list[Transform]:
    """Lucid's standard robustness set, for 64-224 px images: jitter 8 px, scale 0.9-1.1, rotate up to
    10 degrees, jitter 4 px (reflect fill instead of Lucid's gray padding).

    Returns:
        A list of 4 `Transform`.

    Example:
    >>> [t.name for t in kv.transforms.standard_transforms()]
    ['jitter(8)', 'scale(0.9, 1.1)', 'rotate(10)', 'jitter(4)']
    """
    return [jitter(8), scale(0.9, 1.1), rotate(10.0), jitter(4)]


def none() -> list[Transform]:
    """No transforms.

    Returns:
        An empty list (for the `transforms` argument).

    Example:
    >>> kv.transforms.none()
    []
    """
    return []
