"""The per-filter atlas cache.

One PNG and one JSON line per finished filter, written atomically, in a folder keyed by the model's weights
and the settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import threading

import keras
import numpy as np

from kerasviz import nets
from kerasviz.engine import presets

CACHE_VERSION = 1  # bump when the cached files' meaning changes


CACHE_ENV = "KERASVIZ_CACHE"


_TMP_PREFIX = ".tmp-"


def default_cache_dir() -> str:
    """The cache folder used when `cache_dir` is None: `$KERASVIZ_CACHE`, else
    `$XDG_CACHE_HOME/kerasviz/atlas` (`~/.cache/kerasviz/atlas`).

    Returns:
        The folder path, a str (it may not exist yet).

    Example:
    >>> os.environ["KERASVIZ_CACHE"] = "/tmp/kerasviz-cache"
    >>> kv.atlas.default_cache_dir()
    '/tmp/kerasviz-cache'
    """
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kerasviz", "atlas")


def slug(text: str) -> str:
    """`text` as a file name: letters, digits, `_`, `.` and `-` (a nested path's `/` becomes `__`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("/", "__")).strip("._") or "x"


def weights_fingerprint(network: nets.Network, layer: str, pre_activation: bool = True) -> str:
    """A hash of the architecture and weights of the layers between the model's input and `layer`.

    Layers after `layer` do not change its filters' pictures, so they are left out: fine-tuning a
    model's head keeps its convolution atlases cached.

    Args:
        network: a `Network`.
        layer: the layer path.
        pre_activation: whether the layer's ReLU is swapped for a leaky one (see `feature_extractor`).
            Defaults to True.

    Returns:
        32 hex digits, a str.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> len(kv.atlas.weights_fingerprint(net, "block1_conv2"))
    32
    """
    extractor = nets.get_extractor(network, [layer], pre_activation)
    digest = hashlib.blake2b(digest_size=16)
    for sub in extractor.layers:
        try:
            config = dict(sub.get_config())
        except Exception:  # a layer without a config: its type stands for it
            config = {}
        config.pop("name", None)
        digest.update(type(sub).__name__.encode())
        digest.update(json.dumps(presets.jsonable(config), sort_keys=True).encode())
    for w in extractor.weights:
        arr = np.ascontiguousarray(keras.ops.convert_to_numpy(w.value))
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _describe_preprocess(preprocess) -> str:
    if isinstance(preprocess, nets.Preprocessing):
        return repr(preprocess)
    return f"{getattr(preprocess, '__module__', '?')}.{getattr(preprocess, '__qualname__', repr(preprocess))}"


def cache_settings(network: nets.Network, layer: str, settings: presets.Preset, *, seed: int,
                   objective=None) -> dict:
    """What a filter's picture depends on, as a JSON-able dict (the cache key is its hash).

    Args:
        network: a `Network`.
        layer: the layer path.
        settings: the resolved `Preset`.
        seed: the random seed.
        objective: a custom objective, recorded by its description. Defaults to None (the default one).

    Returns:
        A dict: version, model, weights fingerprint, preprocessing, layer, settings, seed, objective, backend.

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> settings = kv.atlas.cache_settings(net, "block1_conv2", kv.presets.get("fast"), seed=0)
    >>> settings["layer"], settings["seed"]
    ('block1_conv2', 0)
    """
    fields = presets.to_dict(settings)
    if fields.get("precision") == "float32":
        del fields["precision"]  # float32 pictures keep the keys they had before the field existed
    return {
        "version": CACHE_VERSION,
        "model": network.name,
        "weights": weights_fingerprint(network, layer, settings.pre_activation),
        "preprocess": _describe_preprocess(network.preprocess),
        "layer": layer,
        "settings": fields,
        "seed": int(seed),
        "objective": objective.description if objective is not None else None,
        "backend": keras.backend.backend(),
    }


def cache_key(settings: dict) -> str:
    """The short hash of `cache_settings(...)`.

    Args:
        settings: the dict `cache_settings` returns (any JSON-able dict).

    Returns:
        16 hex digits, a str.

    Example:
    >>> len(kv.atlas.cache_key({"model": "VGG16", "layer": "block3_conv3"}))
    16
    """
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=8).hexdigest()


def _atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image as PNG file bytes."""
    from PIL import Image

    arr = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def read_png(data: bytes, channels: int) -> np.ndarray:
    """PNG file bytes as a uint8 `(H, W, channels)` image."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 and channels == 1 else arr


class FilterCache:
    """The cached pictures of one layer under one settings key.

    Args:
        folder: the folder (created when the first filter is stored).
        settings: what the key was made of, saved beside the pictures as `settings.json`.
    """

    def __init__(self, folder: str, settings: dict):
        self.folder = folder
        self.settings = settings

    def _paths(self, index: int) -> tuple[str, str]:
        stem = os.path.join(self.folder, f"{index:05d}")
        return stem + ".png", stem + ".json"

    def load(self, index: int, channels: int, *, record: bool = False):
        """`(image, score)` of a stored filter (`(image, score, record)` with `record=True`, the record
        holding `revived`), or None when missing, incomplete or corrupt."""
        png, meta = self._paths(index)
        want_record = record
        try:
            with open(meta, "rb") as f:
                record = json.loads(f.read())
            with open(png, "rb") as f:
                data = f.read()
            if record.get("filter") != index or record.get("png") != hashlib.blake2b(data).hexdigest():
                return None
            image = read_png(data, channels)
            return (image, float(record["score"])) + ((record,) if want_record else ())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, index: int, image: np.ndarray, score: float, seconds: float, *, revived: bool = False) -> None:
        """Write a filter's picture, then its record (the record marks it complete; `revived`: the picture
        came from the revive steps)."""
        os.makedirs(self.folder, exist_ok=True)
        settings_path = os.path.join(self.folder, "settings.json")
        if not os.path.exists(settings_path):
            _atomic_write(settings_path, json.dumps(self.settings, indent=1, sort_keys=True).encode())
        png, meta = self._paths(index)
        data = png_bytes(image)
        _atomic_write(png, data)
        record = {"filter": int(index), "score": float(score), "seconds": float(seconds),
                  "png": hashlib.blake2b(data).hexdigest(), "shape": list(image.shape), "revived": bool(revived)}
        _atomic_write(meta, json.dumps(record).encode())

    def clean_stale(self) -> int:
        """Remove temporary files left by processes that are gone. Returns how many were removed."""
        removed = 0
        if not os.path.isdir(self.folder):
            return 0
        for name in os.listdir(self.folder):
            if not name.startswith(_TMP_PREFIX):
                continue
            try:
                pid = int(name[len(_TMP_PREFIX):].split("-", 1)[0])
            except ValueError:
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.folder, name))
                    removed += 1
        return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
