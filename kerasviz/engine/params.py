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
import functools
import json
import os

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


# The default MACO magnitude: a power law A_c / f**slope per channel of the decorrelated (logit) space, whose
# constants scripts/make_spectrum.py fits to public-domain and CC0 photos bundled with scikit-image (which, and
# their licenses: that script) and writes here.
NATURAL_SPECTRUM = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "maco_spectrum.json")
STANDARDIZE_EPS = 1e-5


@functools.cache
def natural_spectrum() -> dict:
    """The power law fitted to photos (`scripts/make_spectrum.py`): `slope`, `amplitudes` (one per decorrelated
    channel, the largest 1), `dc` (each channel's mean, in units of the top channel's standard deviation) and
    what it was fitted to.

    Example:
    >>> 0.8 < kv.params.natural_spectrum()["slope"] < 1.4
    True
    """
    with open(NATURAL_SPECTRUM, encoding="utf-8") as f:
        return json.load(f)


def _self_conjugate(h: int, w: int) -> np.ndarray:
    """The frequencies equal to their own negative (DC and the Nyquist rows/columns' crossings): their
    Fourier coefficient is real for a real image."""
    mask = np.zeros((h, w), bool)
    for y in {0, h // 2} if h % 2 == 0 else {0}:
        for x in {0, w // 2} if w % 2 == 0 else {0}:
            mask[y, x] = True
    return mask


def power_law(size, channels: int = 3, *, slope: float | None = None, amplitudes=None, dc=None) -> np.ndarray:
    """The default MACO magnitude: `A_c / f**slope` per channel (`f` in cycles per pixel, at least one cycle
    per image), scaled so that the image it draws has a standard deviation of 1 in its top channel; the DC term
    is `dc_c` times the pixels (the channel's mean).

    Args:
        size: `(height, width)` or one int.
        channels: the channel count; past the amplitudes given, channels repeat the last one. Defaults to 3.
        slope: the decay of the magnitude with frequency. Defaults to the photos' (`natural_spectrum`).
        amplitudes: one relative amplitude per channel. Defaults to the photos'.
        dc: one mean per channel (in units of the top channel's standard deviation). Defaults to the photos'
            for 3 channels, 0 otherwise.

    Returns:
        float32 `(channels, height, width)`, the full (not half) spectrum layout of `numpy.fft.fft2`.

    Example:
    >>> kv.params.power_law(32).shape
    (3, 32, 32)
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    natural = natural_spectrum()
    slope = natural["slope"] if slope is None else slope
    amps = list(natural["amplitudes"] if amplitudes is None else amplitudes)
    dcs = list((natural["dc"] if channels == 3 else [0.0]) if dc is None else dc)
    f = np.maximum(_freqs(h, w), 1.0 / max(h, w))
    shape = f ** -float(slope)
    shape[0, 0] = 0.0
    shape *= h * w / np.sqrt(np.sum(shape**2))  # Parseval: std 1 in pixels
    out = np.stack([shape * amps[min(c, len(amps) - 1)] / max(amps) for c in range(channels)])
    out[:, 0, 0] = [dcs[min(c, len(dcs) - 1)] * h * w for c in range(channels)]
    return out.astype("float32")


def resize_spectrum(magnitude: np.ndarray, size) -> np.ndarray:
    """A `(C, h, w)` magnitude (full `fft2` layout) at another `(height, width)`: interpolated linearly in
    frequency (cycles per pixel) and rescaled with the pixels, so it draws the same picture at the new size."""
    magnitude = np.asarray(magnitude, "float64")
    c, h, w = magnitude.shape
    th, tw = (size, size) if isinstance(size, (int, np.integer)) else size
    if (h, w) == (th, tw):
        return magnitude.astype("float32")
    src = np.fft.fftshift(magnitude, axes=(1, 2))
    fy, fx = np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w))
    ty, tx = np.fft.fftfreq(th), np.fft.fftfreq(tw)
    rows = np.stack([np.stack([np.interp(tx, fx, src[ch, i]) for i in range(h)]) for ch in range(c)])
    out = np.stack([np.stack([np.interp(ty, fy, rows[ch, :, j]) for j in range(tw)], axis=1) for ch in range(c)])
    out *= (th * tw) / (h * w)
    out[:, 0, 0] = magnitude[:, 0, 0] * (th * tw) / (h * w)
    return out.astype("float32")


def _as_batch(images) -> list[np.ndarray]:
    from kerasviz.images import load_image

    if isinstance(images, (str, os.PathLike)) and os.path.isdir(images):
        folder = os.fspath(images)
        images = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                  if n.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".webp"))]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
        images = [images]
    out = []
    for im in images:
        if isinstance(im, np.ndarray) and im.ndim == 3 and im.shape[-1] not in (1, 3, 4):
            out.append(load_image(im, channels=im.shape[-1]))  # any channel count
        elif isinstance(im, np.ndarray) and im.ndim == 3:
            out.append(load_image(im, channels=im.shape[-1] if im.shape[-1] != 4 else 3))
        else:
            out.append(load_image(im))
    return out


_SPECTRA: dict = {}  # (fingerprint, size) -> magnitude; the last MAX_SPECTRA computed
MAX_SPECTRA = 16


def spectrum(images, *, size: int | tuple[int, int] = 128) -> np.ndarray:
    """The mean Fourier magnitude of `images` in the space `Maco` draws from: the logit of the pixels, colors
    decorrelated for RGB. What MACO fixes while it optimizes the phase (`maco(spectrum=...)`).

    Each image is cut to the aspect of `size` (centered) and resized to it. The result is cached per content
    of the images and size, so calling it again on the same photos costs nothing.

    Args:
        images: an image or several: file paths, a folder (its JPEG and PNG files), arrays `(H, W, C)` or
            `(N, H, W, C)` (uint8, or float in [0, 1]), any channel count (1 for a grayscale model); files are
            read as RGB.
        size: the spectrum's `(height, width)` (one int: both); `Maco` resizes it to any image size.
            Defaults to 128.

    Returns:
        float32 `(C, height, width)`, the `numpy.fft.fft2` layout (DC first), not shifted; read-only.

    Raises:
        ValueError: no images, or images of different channel counts.

    Example:
    >>> kv.spectrum("photos", size=64).shape
    (3, 64, 64)
    """
    import hashlib

    from kerasviz.images import center_crop, resize

    th, tw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    batch = _as_batch(images)
    if not batch:
        raise ValueError("spectrum needs at least one image. Received none.")
    if len({im.shape[-1] for im in batch}) > 1:
        raise ValueError(f"spectrum needs images of one channel count. Received "
                         f"{sorted({im.shape[-1] for im in batch})}.")
    digest = hashlib.sha1()
    for im in batch:
        digest.update(str(im.shape).encode())
        digest.update(np.ascontiguousarray(im).tobytes())
    key = (digest.hexdigest(), th, tw)
    if key not in _SPECTRA:
        total = 0.0
        for im in batch:
            h, w = im.shape[:2]
            scale = min(h / th, w / tw)
            im = center_crop(im[None], (int(round(th * scale)), int(round(tw * scale))))[0]
            x = _from_valid(resize(im, (th, tw))[None], True, True)[0].astype("float64")
            total = total + _magnitude(np.fft.fft2(np.transpose(x, (2, 0, 1))))
        result = (total / len(batch)).astype("float32")
        result.flags.writeable = False
        while len(_SPECTRA) >= MAX_SPECTRA:
            _SPECTRA.pop(next(iter(_SPECTRA)))
        _SPECTRA[key] = result
    return _SPECTRA[key]


def _magnitude(spec: np.ndarray) -> np.ndarray:
    """|spec|, with the real (self-conjugate) coefficients kept signed: `Maco` then draws them exactly."""
    mag = np.abs(spec)
    mask = _self_conjugate(*spec.shape[-2:])
    mag[..., mask] = spec.real[..., mask]
    return mag


def _fingerprint(array) -> str:
    if array is None:
        return "None"
    import hashlib

    a = np.ascontiguousarray(array, "float32")
    return f"{a.shape}:{hashlib.sha1(a.tobytes()).hexdigest()[:12]}"


@dataclasses.dataclass(frozen=True, eq=False)
class Maco:
    """MACO (Fel et al., 2023): only the Fourier phase is optimized; the magnitude is fixed, by default to
    the spectrum of natural photos (`power_law`), so the pictures keep the statistics of photos.

    The image is `sigmoid(recorrelate(standardize(ifft2(M * exp(i phase)))))`: the phase is made antisymmetric
    (so the image is real and its spectrum's magnitude is exactly `M`), and standardized first, as in the
    authors' code (`standardize`). Values: `[phase, magnitude]`, each `(B, C, H, W)`; the magnitude goes
    through `stop_gradient`, so the update rules leave it as it is. With `alpha` (the default), the renderer
    accumulates the magnitude of the gradient with respect to the image: `Result.alpha`, the transparency map.

    Args:
        spectrum: the magnitude `(C, H, W)` (`fft2` layout, e.g. `kv.spectrum(photos)`), resized to every
            image size; None: `power_law` (natural photos). Defaults to None.
        phase: the starting phase `(C, H, W)` of every image (resized to the image size by nearest
            frequency), e.g. `numpy.angle` of a photo's `fft2`; None: random, `sd * N(0, 1)` per image.
            Defaults to None.
        sd: the standard deviation of the random starting phase. Defaults to 1.0.
        standardize: standardize the phase and the image before the sigmoid (xplique, Horama). False: the
            image is `ifft2(M * exp(i phase))` as it is, and `encode` is exact (starting from a photo with
            `magnitude="image"` draws the photo). Defaults to True.
        magnitude: what `encode` (a start from images, a new octave) keeps: `"spectrum"` (the fixed magnitude;
            the images give their phase) or `"image"` (the images' own magnitude and phase). Defaults to
            `"spectrum"`.
        alpha: accumulate the transparency map. Defaults to True.
    """

    spectrum: np.ndarray | None = None
    phase: np.ndarray | None = None
    sd: float = 1.0
    standardize: bool = True
    magnitude: str = "spectrum"
    alpha: bool = True

    name = "maco"

    def __post_init__(self):
        if self.magnitude not in ("spectrum", "image"):
            raise ValueError(f"magnitude must be 'spectrum' or 'image'. Received: magnitude={self.magnitude!r}.")
        for field in ("spectrum", "phase"):
            value = getattr(self, field)
            if value is not None and np.ndim(value) != 3:
                raise ValueError(f"{field} must be a (channels, height, width) array (numpy.fft.fft2 layout). "
                                 f"Received shape {np.shape(value)}.")

    def _key(self):
        return (_fingerprint(self.spectrum), _fingerprint(self.phase), self.sd, self.standardize, self.magnitude,
                self.alpha)

    # arrays compare by content: the same spectrum made twice is the same param (one compiled step, one
    # cache key); the repr names them by a digest
    def __eq__(self, other):
        return isinstance(other, Maco) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        spectrum = "None" if self.spectrum is None else f"<{_fingerprint(self.spectrum)}>"
        phase = "None" if self.phase is None else f"<{_fingerprint(self.phase)}>"
        return (f"Maco(spectrum={spectrum}, phase={phase}, sd={self.sd}, standardize={self.standardize}, "
                f"magnitude={self.magnitude!r}, alpha={self.alpha})")

    def _magnitude_at(self, size, channels):
        if self.spectrum is None:
            return power_law(size, channels)
        if np.shape(self.spectrum)[0] != channels:
            raise ValueError(f"The MACO spectrum has {np.shape(self.spectrum)[0]} channels; the model takes "
                             f"{channels}. Compute one from images of {channels} channels: kv.spectrum(images).")
        return resize_spectrum(self.spectrum, size)

    def init(self, batch, size, channels=3, keys=None, seed=0):
        h, w = size
        mag = self._magnitude_at((h, w), channels)
        if self.phase is None:
            phases = np.stack([rng(seed, k).normal(size=(channels, h, w)) * self.sd for k in _keys(batch, keys)])
        else:
            p = np.asarray(self.phase, "float32")
            rows = np.round(np.fft.fftfreq(h) * p.shape[1]).astype(int) % p.shape[1]
            cols = np.round(np.fft.fftfreq(w) * p.shape[2]).astype(int) % p.shape[2]
            phases = np.repeat(p[:, rows][:, :, cols][None], batch, axis=0)
        return [phases.astype("float32"), np.repeat(mag[None], batch, axis=0).astype("float32")]

    def draw(self, values):
        phase, mag = values[0], ops.stop_gradient(values[1])
        axes = (1, 2, 3)
        if self.standardize:
            phase = phase - ops.mean(phase, axis=axes, keepdims=True)
            phase = phase / (ops.std(phase, axis=axes, keepdims=True) + STANDARDIZE_EPS)
        # antisymmetric: phase(-f) = -phase(f), so the spectrum is Hermitian and the image real
        mirrored = ops.roll(ops.flip(phase, axis=(2, 3)), shift=(1, 1), axis=(2, 3))
        phase = 0.5 * (phase - mirrored)
        real, _ = ops.ifft2((mag * ops.cos(phase), mag * ops.sin(phase)))
        x = ops.transpose(real, (0, 2, 3, 1))
        if self.standardize:
            x = x - ops.mean(x, axis=axes, keepdims=True)
            x = x / (ops.std(x, axis=axes, keepdims=True) + STANDARDIZE_EPS)
        return _to_valid(x, True, True)

    def encode(self, images):
        x = np.transpose(_from_valid(images, True, True).astype("float64"), (0, 3, 1, 2))
        spec = np.fft.fft2(x)
        phase = np.angle(spec)
        if self.magnitude == "image":
            mag = _magnitude(spec)
            phase[..., _self_conjugate(*spec.shape[-2:])] = 0.0  # the sign is in the magnitude
        else:
            mag = np.repeat(self._magnitude_at(x.shape[2:], x.shape[1])[None], len(x), axis=0)
        return [phase.astype("float32"), mag.astype("float32")]


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


def maco(**kwargs) -> Maco:
    """A MACO parameterization: the phase optimized, the magnitude fixed (see `Maco`).

    Args:
        **kwargs: `Maco` fields: `spectrum` (a `(C, H, W)` magnitude, e.g. `kv.spectrum(photos)`; defaults to
            `power_law`, natural photos), `phase` (a starting phase; defaults to random), `sd`, `standardize`,
            `magnitude` (`"spectrum"` or `"image"`: what a start from images keeps), `alpha`.

    Returns:
        A `Maco`.

    Example:
    >>> param = kv.params.maco(spectrum=kv.spectrum("cat.jpg", size=32))
    >>> result = kv.visualize_filters("VGG16", "block3_conv3", 0, weights="hed", preset="fast", size=32,
    ...                               steps=3, param=param, progress=False)
    """
    return Maco(**kwargs)


PARAMS = {"pixel": pixel, "fourier": fourier, "maco": maco}


def get(param) -> Pixel | Fourier | Maco:
    """A parameterization from a name (`"pixel"`, `"fourier"`, `"maco"`) or a spec object.

    Args:
        param: `"pixel"`, `"fourier"` or `"maco"` (case/punctuation-insensitive), or an object with `init` and
            `draw` methods (a `Pixel`, a `Fourier`, a `Maco`, or your own), returned as is.

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
    raise TypeError(f"param must be 'pixel', 'fourier', 'maco' or a parameterization. Received: {param!r}.")
