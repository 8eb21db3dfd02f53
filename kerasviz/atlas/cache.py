"""The per-filter atlas cache.

One PNG (and one of its transparency map, where the run made one) and one JSON line per finished filter,
written atomically (through `storage`), in a folder keyed by the model's weights and the settings. The folder is a
local path or an fsspec URL (`file://`, `s3://`, `gs://`, `memory://`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import time
from collections.abc import Iterable

import keras
import numpy as np

from kerasviz import nets
from kerasviz.atlas.storage import TMP_PREFIX, join, png_bytes, read_png, store_for
from kerasviz.engine import presets

CACHE_VERSION = 2  # bump when the cached files' meaning changes
CACHE_ENV = "KERASVIZ_CACHE"


def default_cache_dir() -> str:
    """The cache folder used when `cache_dir` is None: `$KERASVIZ_CACHE`, else
    `$XDG_CACHE_HOME/kerasviz/atlas` (`~/.cache/kerasviz/atlas`).

    `$KERASVIZ_CACHE` may be a local path or an fsspec URL (`s3://bucket/kerasviz`): a cluster's workers
    and its driver then share one cache.

    Returns:
        The folder path or URL, a str (it may not exist yet).

    Example:
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"KERASVIZ_CACHE": "s3://bucket/kerasviz"}):
    ...     kv.atlas.default_cache_dir()
    's3://bucket/kerasviz'
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
        arr = np.ascontiguousarray(w.numpy())
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def describe_preprocess(preprocess) -> str:
    """A stable text for a network's preprocessing, for cache keys: a `Preprocessing`'s repr, else the
    callable's module and qualified name.

    Args:
        preprocess: a `Preprocessing` or a callable (a `Network`'s `preprocess`).

    Returns:
        A str.

    Example:
    >>> kv.atlas.cache.describe_preprocess(kv.nets.Preprocessing.family("tf"))[:23]
    "Preprocessing(name='tf'"
    """
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
    return {
        "version": CACHE_VERSION,
        "model": network.name,
        "weights": weights_fingerprint(network, layer, settings.pre_activation),
        "preprocess": describe_preprocess(network.preprocess),
        "layer": layer,
        "settings": presets.to_dict(settings),
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


def folder_for(root: str | os.PathLike, model_name: str, layer_path: str, key: str) -> str:
    """The cache folder of one layer under one key: `<root>/<model>/<layer>-<key>`.

    Args:
        root: the cache root, a local path or an fsspec URL.
        model_name: the model's name.
        layer_path: the layer's path (a nested layer's `/` becomes `__`).
        key: the settings key (`cache_key(...)`).

    Returns:
        A str: a local path joined with the OS's separator, or a URL joined with `/`.

    Example:
    >>> kv.atlas.cache.folder_for("s3://bucket/kv", "VGG16", "block1_conv2", "0123456789abcdef")
    's3://bucket/kv/VGG16/block1_conv2-0123456789abcdef'
    """
    return join(root, slug(model_name), f"{slug(layer_path)}-{key}")


class FilterCache:
    """The cached pictures of one layer under one settings key.

    A filter's entry is its picture `00012.png` and then its record `00012.json` (score, seconds, the
    picture's hash): the record marks it complete, so an entry whose record is missing, unreadable or names
    another picture reads as missing. Each file is written whole: on a local folder (a path or `file://`)
    through a temporary file, fsync and rename; on an object store (`s3://`, `gs://`, `memory://`, any fsspec
    URL) with one put.

    Args:
        folder: the folder (created when the first filter is stored): a local path or an fsspec URL.
        settings: what the key was made of, saved beside the pictures as `settings.json`.

    Raises:
        ImportError: when `folder` is a URL whose protocol needs a package that is not installed (s3fs, gcsfs).
        ValueError: when `folder` is a URL of a protocol fsspec does not know.

    Example:
    >>> cache = kv.atlas.FilterCache("memory://kv/VGG16/block1_conv2-0123", {"layer": "block1_conv2"})
    >>> cache.store(3, np.zeros((8, 8, 3), "uint8"), score=1.5, seconds=0.2)
    >>> sorted(cache.load_many(range(8), channels=3))
    [3]
    """

    _RETRIES = 10

    def __init__(self, folder: str | os.PathLike, settings: dict):
        self.folder = folder
        self.settings = settings
        self._store = store_for(folder)
        self._settings_written = False

    @staticmethod
    def _names(index: int) -> tuple[str, str]:
        return f"{index:05d}.png", f"{index:05d}.json"

    @staticmethod
    def _parse(index: int, record_bytes: bytes, data: bytes, channels: int, with_record: bool = False):
        try:
            record = json.loads(record_bytes)
            if record.get("filter") != index or record.get("png") != hashlib.blake2b(data).hexdigest():
                return None
            hit = read_png(data, channels), float(record["score"])
            return (*hit, record) if with_record else hit
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def load(self, index: int, channels: int, *, record: bool = False):
        """`(image, score)` of a stored filter (`(image, score, record)` with `record=True`: the record's dict,
        which holds `revived`), or None when missing, incomplete or corrupt."""
        want_record = record
        png, meta = self._names(index)
        try:
            record = self._store.read(meta)
            data = self._store.read(png)
        except (OSError, ValueError):
            return None
        return self._parse(index, record, data, channels, want_record)

    def store_result(self, result, seconds: float) -> list[int]:
        """Store the filters of a `Result` (it holds finished ones only: see `Result.unfinished`), each with its
        share of `seconds` and whether it was revived: what every batch does, in process (`layer_atlas`) or on a
        Ray worker.

        Returns:
            The filters stored, in `result`'s order.
        """
        stored = [int(f) for f in result.filters]
        done = len(stored)
        alpha = getattr(result, "alpha", None)
        for i, f in enumerate(stored):
            self.store(f, result.images[i], float(result.scores[i]), seconds / max(done, 1),
                       revived=f in result.revived, alpha=None if alpha is None else alpha[i])
        return stored

    def load_alphas(self, indices: Iterable[int]) -> dict:
        """The transparency maps (`Result.alpha`, e.g. `preset="maco"`) stored beside the pictures of `indices`:
        a dict filter -> float32 `(H, W)` in [0, 1] (8 bits), for the complete entries whose record names the map.

        Example:
        >>> cache = kv.atlas.FilterCache("memory://kv/alpha", {})
        >>> cache.store(2, np.zeros((4, 4, 3), "uint8"), score=0.5, seconds=0.1, alpha=np.ones((4, 4)))
        >>> {f: float(a.mean()) for f, a in cache.load_alphas([1, 2]).items()}
        {2: 1.0}
        """
        present, found = self._store.names(), {}
        names = {int(i): (self._names(int(i))[1], self._alpha_name(int(i))) for i in indices}
        complete = [i for i, pair in names.items() if all(n in present for n in pair)]
        files = self._store.read_many([n for i in complete for n in names[i]])
        for i in complete:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                if json.loads(files[names[i][0]]).get("alpha") == hashlib.blake2b(files[names[i][1]]).hexdigest():
                    found[i] = read_png(files[names[i][1]], 1)[..., 0].astype("float32") / 255.0
        return found

    @staticmethod
    def _alpha_name(index: int) -> str:
        return f"{index:05d}.alpha.png"

    def load_many(self, indices: Iterable[int], channels: int, *, record: bool = False) -> dict:
        """The stored filters among `indices`, from one listing of the folder.

        Only the entries the listing shows complete (picture and record) are read, in one batch: on an object
        store this is one list and one batched read instead of two probes per filter.

        Args:
            indices: the filter indices wanted.
            channels: the model's input channels (1 for grayscale pictures).
            record: also return each entry's record (a dict: score, seconds, `revived`, ...). Defaults to False.

        Returns:
            A dict filter -> `(image, score)` (`(image, score, record)` with `record=True`), holding only the
            complete and intact entries.

        Example:
        >>> cache = kv.atlas.FilterCache("memory://kv/doc", {})
        >>> cache.store(1, np.full((4, 4, 3), 7, "uint8"), score=0.5, seconds=0.1)
        >>> {f: score for f, (image, score) in cache.load_many([0, 1, 2], 3).items()}
        {1: 0.5}
        """
        present = self._store.names()
        wanted = [int(i) for i in dict.fromkeys(indices)]
        complete = [i for i in wanted if all(n in present for n in self._names(i))]
        files = self._store.read_many([n for i in complete for n in self._names(i)])
        found = {}
        for i in complete:
            png, meta = self._names(i)
            if png in files and meta in files:
                hit = self._parse(i, files[meta], files[png], channels, record)
                if hit is not None:
                    found[i] = hit
        return found

    def store(self, index: int, image: np.ndarray, score: float, seconds: float, *, revived: bool = False,
              alpha: np.ndarray | None = None) -> None:
        """Write a filter's picture (and its transparency map `alpha`, `(H, W)` in [0, 1], as a grayscale PNG
        `00012.alpha.png`, if given), then its record (the record marks it complete; `revived`: the picture
        came from the revive steps, kept in the record).

        An intact entry already there is kept (a finished filter is never written twice). Writers racing on
        the same entry (two workers given the same filter) each check, after writing, that the record on
        store names the picture on store, and write again when another writer's file came in between: the
        entry left behind is one writer's picture with its own record (or, should they collide every time,
        an entry that reads as missing, never a picture with another's score).
        """
        self._store.makedirs()
        if not self._settings_written:
            if not self._store.exists("settings.json"):
                self._store.write("settings.json", json.dumps(self.settings, indent=1, sort_keys=True).encode())
            self._settings_written = True
        png, meta = self._names(index)
        data = png_bytes(image)
        digest = hashlib.blake2b(data).hexdigest()
        entry = {"filter": int(index), "score": float(score), "seconds": float(seconds), "png": digest,
                 "shape": list(image.shape), "revived": bool(revived)}
        alpha_data = None
        if alpha is not None:
            alpha_data = png_bytes(np.round(np.clip(np.asarray(alpha, "float32"), 0, 1) * 255).astype("uint8"))
            entry["alpha"] = hashlib.blake2b(alpha_data).hexdigest()
        record = json.dumps(entry).encode()
        for attempt in range(self._RETRIES):
            if self._consistent(png, meta):  # an intact entry is there (another writer's, or ours): keep it
                return
            if attempt:
                time.sleep(random.uniform(0, 0.002 * attempt))  # writers that collided fall out of step
            if alpha_data is not None:
                self._store.write(self._alpha_name(index), alpha_data)
            self._store.write(png, data)
            self._store.write(meta, record)

    def _consistent(self, png: str, meta: str) -> bool:
        try:
            on_store = json.loads(self._store.read(meta)).get("png")
            return on_store == hashlib.blake2b(self._store.read(png)).hexdigest()
        except (OSError, ValueError, AttributeError):
            return False

    def clean_stale(self) -> int:
        """Remove temporary files left by processes that are gone. Returns how many were removed.

        Only local folders have temporary files; on an object store this does nothing and returns 0.
        """
        if not self._store.local:
            return 0
        removed = 0
        for name in self._store.names():
            if not name.startswith(TMP_PREFIX):
                continue
            try:
                pid = int(name[len(TMP_PREFIX):].split("-", 1)[0])
            except ValueError:
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    self._store.remove(name)
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
