"""Tiny hand-built models shared by the tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ANGLES = (0.0, 45.0, 90.0, 135.0)
GABOR_SIZE = 15
GABOR_WAVELENGTH = 7.0


def gabor_kernel(angle_deg: float, size: int = GABOR_SIZE, wavelength: float = GABOR_WAVELENGTH):
    """A zero-mean Gabor kernel whose stripes run across the direction `angle_deg` (the direction of
    its wave vector, in image coordinates: x to the right, y down)."""
    r = size // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype("float64")
    t = np.deg2rad(angle_deg)
    envelope = np.exp(-(x**2 + y**2) / (2 * (size / 4) ** 2))
    g = envelope * np.cos(2 * np.pi * (x * np.cos(t) + y * np.sin(t)) / wavelength)
    return (g - g.mean()).astype("float32")


def make_grating_model(channels: int = 3) -> keras.Model:
    """One Conv2D whose 4 filters are Gabor gratings at 0/45/90/135 degrees (same kernel on every
    input channel), followed by a ReLU: the known answer of each filter is its own grating."""
    inputs = keras.Input((None, None, channels))
    conv = keras.layers.Conv2D(len(ANGLES), GABOR_SIZE, padding="valid", activation="relu", name="gabor")
    out = conv(inputs)
    model = keras.Model(inputs, out, name="grating")
    kernel = np.stack([gabor_kernel(a) for a in ANGLES], axis=-1)  # [k, k, 4]
    kernel = np.repeat(kernel[:, :, None, :], channels, axis=2) / channels
    conv.set_weights([kernel, np.zeros(len(ANGLES), "float32")])
    return model


def make_tiny_cnn(seed: int = 0, channels: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, out, name="tiny_cnn")


@pytest.fixture(scope="session")
def grating_model():
    return make_grating_model()


@pytest.fixture(scope="session")
def tiny_cnn():
    return make_tiny_cnn()


@pytest.fixture(scope="session")
def hed_vgg16():
    import kerasviz as kv

    return kv.get_model("VGG16", weights="hed")


@pytest.fixture(scope="session")
def hopper():
    """Matplotlib's Grace Hopper photo, small, as float RGB in [0, 1]."""
    from matplotlib import cbook

    import kerasviz as kv

    return kv.load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), size=(40, 32))


@pytest.fixture(scope="session")
def cat():
    """scikit-image's Chelsea the cat, small, as float RGB in [0, 1]."""
    from skimage import data

    import kerasviz as kv

    return kv.load_image(data.chelsea(), size=(36, 48))


def dominant_orientation(image: np.ndarray, min_cycles: float = 2.5) -> float:
    """The dominant direction (degrees in [0, 180)) of a gray image's 2-D FFT: the power-weighted
    mean of the doubled wave-vector angles, over frequencies above `min_cycles` per image."""
    gray = image.astype("float64").mean(axis=-1)
    gray = gray - gray.mean()
    h, w = gray.shape
    power = np.abs(np.fft.fft2(gray * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    fy = np.fft.fftfreq(h)[:, None] * np.ones((1, w))
    fx = np.fft.fftfreq(w)[None, :] * np.ones((h, 1))
    keep = np.hypot(fy * h, fx * w) > min_cycles
    doubled = np.exp(2j * np.arctan2(fy, fx))
    mean = np.sum(power[keep] * doubled[keep])
    return float(np.rad2deg(np.angle(mean) / 2) % 180.0)


def angle_difference(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)
