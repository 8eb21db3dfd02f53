"""Image parameterizations: how trainable values become a batch of images.

A parameterization is a small spec object with three pure functions:
- `init(batch, size, channels, keys, seed)`: the starting values (NumPy, batch axis first); image `i` is
  drawn from `keys[i]` and `seed` alone, so a filter's picture does not depend on what else is in its batch;
- `draw(values)`: backend tensors -> images `[batch, H, W, C]`, written with `keras.ops` (runs inside the
  compiled step on any backend);
- `encode(images)`: images -> values, the inverse of `draw` (octaves and starting from a photo use it).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerasviz.engine.deferred import ops

# ImageNet color correlation (Lucid): the square root of the RGB covariance, columns normalized.
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype="float32"
)
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
FOURIER_MAGIC = 4.0  # Lucid divides the inverse FFT by 4 to keep starting values small
SIGMOID_EPS = 1e-4  # encode() clips images to (eps, 1 - eps) before the logit


def rng(seed: int, key: int) -> np.random.Generator:
    """The random generator of image `key` (a filter index) under `seed`: every draw of an image comes
    from here, so results repeat whatever the batch or the backend.

    Args:
        seed: the run's seed.
        key: the image's key, usually its filter index.

    Returns:
        A `numpy.random.Generator`.

    Example:
    >>> float(kv.params.rng(0, 7).uniform()) == float(kv.params.rng(0, 7).uniform())
    True
    """
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(key) & 0xFFFFFFFF])


def _keys(batch: int, keys) -> list[int]:
    keys = list(range(batch)) if keys is None else [int(k) for k in keys]
    if len(keys) != batch:
        raise ValueError(f"Got {len(keys)} keys for a batch of {batch}.")
    return keys


def _logit(images):
    x = np.clip(np.asarray(images, "float64"), SIGMOID_EPS, 1 - SIGMOID_EPS)
    return np.log(x / (1 - x))


def _to_valid(x, decorrelate: bool, sigmoid: bool):
    """Tensor [B, H, W, C] -> images: color correlation (RGB only), then a sigmoid into [0, 1]."""
    if decorrelate and x.shape[-1] == 3:
        x = ops.matmul(x, COLOR_CORRELATION.T)
    return ops.sigmoid(x) if sigmoid else x


def _from_valid(images, decorrelate: bool, sigmoid: bool) -> np.ndarray:
    x = _logit(images) if sigmoid else np.asarray(images, "float64")
    if decorrelate and x.shape[-1] == 3:
        x = x @ np.linalg.inv(COLOR_CORRELATION.T.astype("float64"))
    return x.astype("float32")


@dataclasses.dataclass(frozen=True)
class Pixel:
    """One value per pixel and channel.

    Args:
        init: `"normal"` (values `sd * N(0, 1)`, mid-gray after the sigmoid), or `"uniform"`:
            `(U[0, 1) - 0.5) * scale` (the keras.io tutorial's start with scale 0.25).
        sd: standard deviation for `"normal"`. Defaults to 0.01.
        scale: width for `"uniform"`. Defaults to 0.25.
        offset: center of `"uniform"`. Defaults to 0.
        sigmoid: map values to [0, 1] with a sigmoid. False: the values are the images themselves
            (the tutorial optimizes the model's input directly).
        decorrelate: apply the ImageNet color correlation before the sigmoid (3 channels only).
    """

    init_mode: str = "normal"
    sd: float = 0.01
    scale: float = 0.25
    offset: float = 0.0
    sigmoid: bool = True
    decorrelate: bool = True

    name = "pixel"

    def init(self, batch, size, channels=3, keys=None, seed=0):
        h, w = size
        out = []
        for k in _keys(batch, keys):
            g = rng(seed, k)
            if self.init_mode == "uniform":
                out.append((g.uniform(size=(h, w, channels)) - 0.5) * self.scale + self.offset)
            elif self.init_mode == "normal":
                out.append(g.normal(size=(h, w, channels)) * self.sd)
            else:
                raise ValueError(f"init must be 'normal' or 'uniform'. Received: {self.init_mode!r}.")
        return [np.stack(out).astype("float32")]

    def draw(self, values):
        return _to_valid(values[0], self.decorrelate, self.sigmoid)

    def encode(self, images):
        return [_from_valid(images, self.decorrelate, self.sigmoid)]


def _freqs(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


@dataclasses.dataclass(frozen=True)
class Fourier:
    """Values are a 2-D spectrum per channel, scaled by 1 / frequency^decay_power, so that low
    frequencies dominate (Lucid's `fft_image`); colors decorrelated; a sigmoid maps to [0, 1].

    Args:
        decay_power: how fast high frequencies are damped. Defaults to 1.0.
        sd: standard deviation of the starting spectrum. Defaults to 0.01.
        decorrelate: apply the ImageNet color correlation (3 channels only). Defaults to True.
    """

    decay_power: float = 1.0
    sd: float = 0.01
    decorrelate: bool = True

    name = "fourier"

    def _scale(self, h, w):
        scale = 1.0 / np.maximum(_freqs(h, w), 1.0 / max(h, w)) ** self.decay_power
        return (scale * np.sqrt(h * w)).astype("float32")

    def init(self, batch, size, channels=3, keys=None, seed=0):
        h, w = size
        out = [rng(seed, k).normal(size=(channels, h, w, 2)) * self.sd for k in _keys(batch, keys)]
        return [np.stack(out).astype("float32")]

    def draw(self, values):
        spectrum = values[0]  # [B, C, H, W, 2]
        h, w = spectrum.shape[2], spectrum.shape[3]
        scale = ops.convert_to_tensor(self._scale(h, w))
        real, _ = ops.ifft2((spectrum[..., 0] * scale, spectrum[..., 1] * scale))
        x = real / FOURIER_MAGIC
        x = ops.transpose(x, (0, 2, 3, 1))
        return _to_valid(x, self.decorrelate, True)

    def encode(self, images):
        x = _from_valid(images, self.decorrelate, True).astype("float64") * FOURIER_MAGIC
        x = np.transpose(x, (0, 3, 1, 2))  # [B, C, H, W]
        h, w = x.shape[2], x.shape[3]
        spec = np.fft.fft2(x) / self._scale(h, w)  # the real part of ifft2(spec * scale) is x again
        return [np.stack([spec.real, spec.imag], axis=-1).astype("float32")]


def pixel(**kwargs) -> Pixel:
    """A pixel parameterization (see `Pixel`).

    Args:
        **kwargs: `Pixel` fields: `init` (`"normal"` or `"uniform"`; defaults to `"normal"`), `sd`, `scale`,
            `offset`, `sigmoid`, `decorrelate`.

    Returns:
        A `Pixel`.

    Example:
    >>> kv.params.pixel(init="uniform", sigmoid=False).init_mode
    'uniform'
    """
    return Pixel(**{("init_mode" if k == "init" else k): v for k, v in kwargs.items()})


def fourier(**kwargs) -> Fourier:
    """A Fourier parameterization with decorrelated color (see `Fourier`).

    Args:
        **kwargs: `Fourier` fields: `decay_power` (defaults to 1.0), `sd` (defaults to 0.01),
            `decorrelate` (defaults to True).

    Returns:
        A `Fourier`.

    Example:
    >>> result = kv.visualize_filters("VGG16", "block3_conv3", 0, weights="hed", preset="fast", size=32,
    ...                               steps=5, param=kv.params.fourier(decay_power=1.5), progress=False)
    """
    return Fourier(**kwargs)


PARAMS = {"pixel": pixel, "fourier": fourier}


def get(param) -> Pixel | Fourier:
    """A parameterization from a name (`"pixel"`, `"fourier"`) or a spec object.

    Args:
        param: `"pixel"` or `"fourier"` (case/punctuation-insensitive), or an object with `init` and `draw`
            methods (a `Pixel`, a `Fourier`, or your own), returned as is.

    Returns:
        The parameterization.

    Raises:
        ValueError: an unknown name (the message suggests close ones).
        TypeError: neither a name nor a parameterization.

    Example:
    >>> kv.params.get("fourier")
    Fourier(decay_power=1.0, sd=0.01, decorrelate=True)
    """
    if isinstance(param, str):
        from kerasviz.names import lookup

        return PARAMS[lookup(param, PARAMS, "parameterization")]()
    if hasattr(param, "init") and hasattr(param, "draw"):
        return param
    raise TypeError(f"param must be 'pixel', 'fourier' or a parameterization. Received: {param!r}.")
