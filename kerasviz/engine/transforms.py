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
        copies: how many images it makes of each image (`crops`: K crops per image, image-major: the K
            crops of image 0 first). The renderer scores each crop and gives each image the mean of its
            crops' scores, so a batch of N images still has N scores.
    """

    name: str
    n_random: int
    fn: Callable
    matrix: Callable | None = None
    fill_mode: str = "reflect"
    copies: int = 1

    def __call__(self, images, u):
        return self.fn(images, u)

    # Transforms compare by name: `jitter(4)` made twice is the same transform, so settings that use
    # it reuse the compiled step. Names carry every argument.
    def __eq__(self, other):
        return isinstance(other, Transform) and (self.name, self.n_random, self.copies) == (
            other.name, other.n_random, other.copies)

    def __hash__(self):
        return hash((self.name, self.n_random, self.copies))

    def __repr__(self):
        return self.name


# the image side of Lucid's standard set (its 8 and 4 px jitters); smaller images jitter in proportion
REFERENCE_SIZE = 128


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


def jitter(pixels: int, *, fill_mode: str = "reflect", reference_size: int | None = None) -> Transform:
    """Shift each image by a random whole number of pixels in `[-pixels, pixels]` on each axis.

    With `reference_size`, `pixels` is the shift of an image whose shorter side is `reference_size` or more;
    a smaller image shifts in proportion to its side (rounded, at least 1 px), so the shift is the same share
    of every image: of each octave, and of the model's input where a fixed-size model sees the octaves
    upsampled.

    Args:
        pixels: the largest shift, an int >= 0.
        fill_mode: how pixels shifted in from outside are filled: `"reflect"`, `"constant"` (0.5 gray),
            `"nearest"` or `"wrap"`. Defaults to `"reflect"`.
        reference_size: the image side (px) from which on the shift is `pixels`; None (the default): `pixels`
            at every size.

    Returns:
        A `Transform` that draws 2 random numbers per image.

    Raises:
        ValueError: `pixels` is negative, or `reference_size` is not a positive int.

    Example:
    >>> kv.transforms.jitter(8).name
    'jitter(8)'
    >>> kv.transforms.jitter(8, reference_size=128).name  # 2 px on a 32 px image
    'jitter(8, reference_size=128)'
    """
    if pixels < 0:
        raise ValueError(f"jitter pixels must be >= 0. Received: {pixels}.")
    if reference_size is not None and (isinstance(reference_size, bool) or not isinstance(reference_size, int)
                                       or reference_size < 1):
        raise ValueError(f"jitter reference_size must be a positive int (an image side in pixels) or None. "
                         f"Received: reference_size={reference_size!r}.")

    def matrix(u, h, w):
        shift = jitter_pixels(pixels, (h, w), reference_size)
        span = 2 * shift + 1
        tx = ops.floor(u[:, 0] * span) - shift
        ty = ops.floor(u[:, 1] * span) - shift
        return _translation(tx, ty)

    reference = "" if reference_size is None else f", reference_size={reference_size}"
    return Transform(f"jitter({pixels}{_fill(fill_mode)}{reference})", 2, _affine_fn(matrix, fill_mode), matrix,
                     fill_mode)


def jitter_pixels(pixels: int, size, reference_size: int | None) -> int:
    """The largest shift `jitter(pixels, reference_size=...)` makes on an image of `size` `(height, width)`.

    Args:
        pixels: the shift at `reference_size` and above.
        size: `(height, width)` of the image (ints; an unknown side counts as large).
        reference_size: the side from which on the shift is `pixels`; None: always `pixels`.

    Returns:
        An int: `pixels * min(1, side / reference_size)` rounded, at least 1 (0 only for `pixels=0`).

    Example:
    >>> [kv.transforms.jitter_pixels(8, (s, s), 128) for s in (32, 47, 65, 91, 128, 224)]
    [2, 3, 4, 6, 8, 8]
    """
    sides = [int(s) for s in size if s is not None]
    if reference_size is None or not pixels or not sides:
        return int(pixels)
    return max(1, math.floor(pixels * min(1.0, min(sides) / reference_size) + 0.5))


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


# Noise inside the step without a random op (keras.random takes no seed tensor inside a compiled step): a
# hash of fixed per-pixel phases shifted by the image's draw, `frac(sin(phase + shift) * HASH_GAIN)`.
HASH_GAIN = 43758.5453
NOISE_PHASES_SEED = 20230613  # the fixed phases' seed (any number: they only decorrelate the pixels)


def _hashed_uniform(shape, shift, stream: int):
    """Uniform-looking draws in [0, 1) of `shape` (`[batch, H, W, C]`), one field per `shift` (`[batch]`, in
    [0, 1)): the same shift gives the same field, nearby shifts unrelated ones. `stream` picks the phases."""
    phases = np.random.default_rng([NOISE_PHASES_SEED, stream]).uniform(0, 2 * np.pi, size=shape[1:])
    arg = ops.convert_to_tensor(phases.astype("float32"))[None] + ops.reshape(shift * 997.0, (-1, 1, 1, 1))
    v = ops.sin(arg) * HASH_GAIN
    return v - ops.floor(v)


def add_noise(images, u, sd: float):
    """`images` plus Gaussian noise of standard deviation `sd` and uniform noise in `[-sd/2, sd/2]` (xplique's
    MACO noise), drawn from `u` (`[batch, 1]` uniform draws: one new field per draw).

    Example:
    >>> images = np.full((2, 8, 8, 3), 0.5, "float32")
    >>> noisy = keras.ops.convert_to_numpy(kv.transforms.add_noise(images, np.array([[0.1], [0.2]], "float32"), 0.1))
    >>> 0.05 < float(noisy.std()) < 0.2
    True
    """
    if sd <= 0:
        return images
    shape, shift = tuple(images.shape), u[:, 0]
    h1 = _hashed_uniform(shape, shift, 1)
    h2 = _hashed_uniform(shape, shift, 2)
    gauss = ops.sqrt(-2.0 * ops.log(ops.maximum(h1, 1e-7))) * ops.cos(2.0 * np.pi * h2)
    uniform = _hashed_uniform(shape, shift, 3) - 0.5
    return images + sd * gauss + sd * uniform


def noise(sd: float = 0.04) -> Transform:
    """Add Gaussian noise (standard deviation `sd`) and uniform noise (in `[-sd/2, sd/2]`) to every pixel, a new
    field at every step (see `add_noise`).

    Args:
        sd: the noise's standard deviation, in [0, 1] image units; 0 adds none. Defaults to 0.04 (xplique's
            0.08 on its (-1, 1) range).

    Returns:
        A `Transform` that draws 1 random number per image.

    Example:
    >>> kv.transforms.noise(0.05).name
    'noise(0.05)'
    """
    return Transform(f"noise({sd:g})", 1, lambda images, u: add_noise(images, u, sd))


CROP_DRAWS = 4  # per crop: center x, center y, side, noise


def crops(n: int = 8, scale: tuple[float, float] = (0.25, 0.6), *, output: int | float | None = None,
          noise: float = 0.04) -> Transform:
    """MACO's augmentation: `n` random square crops of each image (the canvas), each resized to `output`
    pixels, with noise added (Fel et al., 2023). Each image gets `n` crops, scored by the renderer as one: the
    mean of its crops' scores.

    A crop's side is a share of the canvas's shorter side drawn uniformly in `scale` (Horama draws it in a
    range; xplique shrinks it over the steps); its box lies inside the canvas, anywhere with equal chance.

    Args:
        n: crops per image, >= 1. Defaults to 8.
        scale: `(low, high)`, the share of the canvas a crop's side takes, in (0, 1]. Defaults to (0.25, 0.6).
        output: the crops' side (the size the model sees): an int, in pixels, at most the canvas's; a float in
            (0, 1], a share of the canvas's shorter side (so it follows the size); None: the canvas's shorter
            side. Defaults to None.
        noise: the noise's standard deviation (see `noise`); 0 for none. Defaults to 0.04.

    Returns:
        A `Transform` with `copies=n` that draws `4 * n` random numbers per image.

    Raises:
        ValueError: `n` < 1, `scale` not in (0, 1], `output` a float outside (0, 1], or `noise` < 0.

    Example:
    >>> t = kv.transforms.crops(4, (0.5, 0.8), output=16)
    >>> images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    >>> u = np.random.default_rng(1).uniform(size=(2, t.n_random)).astype("float32")
    >>> tuple(t(images, u).shape)
    (8, 16, 16, 3)
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"crops n must be an int >= 1 (crops per image). Received: n={n!r}.")
    low, high = scale
    if not 0 < low <= high <= 1:
        raise ValueError(f"crops scale must be (low, high) with 0 < low <= high <= 1 (shares of the canvas). "
                         f"Received: scale={scale!r}.")
    if noise < 0:
        raise ValueError(f"crops noise must be >= 0. Received: noise={noise!r}.")
    if isinstance(output, float) and not 0 < output <= 1:
        raise ValueError(f"crops output must be an int (pixels) or a float in (0, 1] (a share of the canvas). "
                         f"Received: output={output!r}.")

    def fn(images, u):
        h, w = int(images.shape[1]), int(images.shape[2])
        side_out = (min(h, w) if output is None else int(output) if isinstance(output, (int, np.integer))
                    else max(1, int(round(float(output) * min(h, w)))))
        if side_out > min(h, w):
            raise ValueError(f"crops output={side_out} is larger than the {h}x{w} canvas: use a larger size or "
                             "a smaller output.")
        draws = ops.reshape(u[:, : CROP_DRAWS * n], (-1, CROP_DRAWS))  # [batch * n, 4], image-major
        side = (low + (high - low) * draws[:, 2]) * min(h, w)  # the crop's side in canvas pixels
        left = draws[:, 0] * (w - side)
        top = draws[:, 1] * (h - side)
        s = side / side_out
        zero, one = ops.zeros_like(s), ops.ones_like(s)
        m = ops.stack([ops.stack([s, zero, left], -1), ops.stack([zero, s, top], -1),
                       ops.stack([zero, zero, one], -1)], axis=1)
        x = apply_matrix(ops.repeat(images, n, axis=0), m, "reflect")[:, :side_out, :side_out, :]
        return add_noise(x, draws[:, 3:4], noise)

    out = "" if output is None else f", output={output:g}"
    return Transform(f"crops({n}, ({low:g}, {high:g}){out}, noise={noise:g})", CROP_DRAWS * n, fn, copies=n)


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
    copies = math.prod(t.copies for t in transforms)

    def fn(images, u):
        start, i, rep = 0, 0, 1

        def draws(t):  # a transform after `crops` sees each image's draws on every one of its crops
            part = u[:, start : start + t.n_random]
            return ops.repeat(part, rep, axis=0) if rep > 1 else part

        while i < len(transforms):
            t = transforms[i]
            if t.matrix is None:
                images = t(images, draws(t))
                start += t.n_random
                rep *= t.copies
                i += 1
                continue
            m, fill_mode = None, t.fill_mode
            while i < len(transforms) and transforms[i].matrix is not None and transforms[i].fill_mode == fill_mode:
                t = transforms[i]
                mi = t.matrix(draws(t), images.shape[1], images.shape[2])
                m = mi if m is None else ops.matmul(m, mi)
                start += t.n_random
                i += 1
            images = apply_matrix(images, m, fill_mode)
        return images

    return Transform("compose(" + ", ".join(t.name for t in transforms) + ")", n, fn, copies=copies)


def standard_transforms() -> list[Transform]:
    """Lucid's standard robustness set, as a share of the image: jitter 8 px, scale 0.9-1.1, rotate up to 10
    degrees, jitter 4 px (reflect fill instead of Lucid's gray padding). The jitters are Lucid's at 128 px
    and up, and in proportion on smaller images and octaves (`reference_size=128`; why: docs/transformers.md,
    "Jitter in proportion").

    Returns:
        A list of 4 `Transform`.

    Example:
    >>> [t.name for t in kv.transforms.standard_transforms()]
    ['jitter(8, reference_size=128)', 'scale(0.9, 1.1)', 'rotate(10)', 'jitter(4, reference_size=128)']
    """
    return [jitter(8, reference_size=REFERENCE_SIZE), scale(0.9, 1.1), rotate(10.0),
            jitter(4, reference_size=REFERENCE_SIZE)]


def none() -> list[Transform]:
    """No transforms.

    Returns:
        An empty list (for the `transforms` argument).

    Example:
    >>> kv.transforms.none()
    []
    """
    return []
