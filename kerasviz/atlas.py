"""Whole-layer and whole-model atlases: every filter, batched, cached on disk, resumable.

Each filter's picture depends only on the settings, the seed and the filter index (not on which
batch it ran in), so a layer is cut into chunks of uncached filters and every finished filter is
written to the cache at once: an interrupted run (Ctrl-C, a killed process) loses at most the chunk
in flight, and the next run computes only what is missing.

Cache layout (one folder per model, layer and settings key; every file written atomically):

```
cache_dir/<model>/<layer>-<key>/settings.json   what the key was made of
cache_dir/<model>/<layer>-<key>/00012.png       filter 12's picture
cache_dir/<model>/<layer>-<key>/00012.json      its score, written after the PNG: it marks it done
```

The key hashes what changes a filter's picture: the model's name, the architecture and weights of
the layers that feed the layer (not the layers after it), the preprocessing, the layer, every preset
field, the seed and the objective. Batch size, memory budget and devices are not in it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import queue
import re
import threading
import time
import warnings
from collections.abc import Iterable, Sequence

import keras
import numpy as np

from kerasviz import images, models, optimize, presets
from kerasviz.progress import Callback

CACHE_VERSION = 1  # bump when the cached files' meaning changes
CACHE_ENV = "KERASVIZ_CACHE"
CONV_TYPES = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv2D",
              "SeparableConv1D", "SeparableConv2D")
_TMP_PREFIX = ".tmp-"
_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(presets.Preset))


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


# ------------------------------------------------------------------------ results


@dataclasses.dataclass
class LayerAtlas:
    """Every requested filter of one layer, from the cache or computed now.

    Attributes:
        layer: the layer's path.
        filters: filter indices, in the order asked (only those done, after an interruption).
        images: uint8 `(N, H, W, C)`, one picture per filter.
        scores: float32 `(N,)`, each picture's final activation.
        computed: filters computed in this call.
        cached: filters read from the cache.
        seconds: wall time of this call.
        batch_size: filters per compiled batch.
        interrupted: True when the run was stopped before every filter was done; run it again to resume.
        layer_type: the layer's class name.
        output_shape: the layer's output shape.
        channels: the layer's channel count.
        settings: what the cache key was made of (JSON-able).
        cache_path: the folder holding this layer's cached filters.
        chunks: one `(device, filters, seconds)` record per batch computed.
    """

    layer: str
    filters: list
    images: np.ndarray
    scores: np.ndarray
    computed: list
    cached: list
    seconds: float
    batch_size: int
    interrupted: bool
    layer_type: str
    output_shape: tuple | None
    channels: int
    settings: dict
    cache_path: str
    chunks: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.filters)

    def __repr__(self):
        state = ", interrupted" if self.interrupted else ""
        return (f"LayerAtlas({self.layer!r}, filters={len(self.filters)}/{self.channels}, "
                f"computed={len(self.computed)}, cached={len(self.cached)}, {self.seconds:.1f} s{state})")

    def stitch(self, *, cols: int | None = None, margin: int = 5, labels: bool = False) -> np.ndarray:
        """The atlas: every filter's picture in one mosaic (see `kerasviz.stitch`).

        Args:
            cols: tiles per row. Defaults to a square-ish grid.
            margin: pixels between tiles. Defaults to 5.
            labels: write each filter's index on its tile. Defaults to False.
        """
        return images.stitch(self.images, cols=cols, margin=margin, labels=self.filters if labels else None)

    @property
    def atlas(self) -> np.ndarray:
        """The mosaic of every picture, with the default layout (`stitch()`)."""
        return self.stitch()


@dataclasses.dataclass
class ModelAtlas:
    """Atlases of several layers of one model.

    Attributes:
        model: the model's display name.
        layers: `LayerAtlas` per layer path, in model order.
        seconds: wall time of the run.
        interrupted: True when the run stopped early; run it again to resume.
        network: the `Network` the atlases came from.
    """

    model: str
    layers: dict
    seconds: float
    interrupted: bool
    network: models.Network = dataclasses.field(repr=False, default=None)

    def __getitem__(self, layer: str) -> LayerAtlas:
        return self.layers[layer]

    def summary(self) -> str:
        """A table of time per layer: filters, computed, cached, seconds, seconds per computed filter."""
        width = max([len("layer")] + [len(name) for name in self.layers])
        lines = [f"{'layer':<{width}}  {'filters':>7}  {'computed':>8}  {'cached':>6}  {'seconds':>8}  "
                 f"{'s/filter':>8}"]
        for name, a in self.layers.items():
            per = f"{a.seconds / len(a.computed):.3f}" if a.computed else "-"
            lines.append(f"{name:<{width}}  {len(a.filters):>7}  {len(a.computed):>8}  {len(a.cached):>6}  "
                         f"{a.seconds:>8.1f}  {per:>8}")
        total_computed = sum(len(a.computed) for a in self.layers.values())
        lines.append(f"total {total_computed} filters computed in {self.seconds:.1f} s"
                     + (" (interrupted: run again to resume)" if self.interrupted else ""))
        return "\n".join(lines)


# ------------------------------------------------------------------------ cache


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("/", "__")).strip("._") or "x"


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def weights_fingerprint(network: models.Network, layer: str, pre_activation: bool = True) -> str:
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
    extractor = optimize.get_extractor(network, [layer], pre_activation)
    digest = hashlib.blake2b(digest_size=16)
    for sub in extractor.layers:
        try:
            config = dict(sub.get_config())
        except Exception:  # a layer without a config: its type stands for it
            config = {}
        config.pop("name", None)
        digest.update(type(sub).__name__.encode())
        digest.update(json.dumps(_jsonable(config), sort_keys=True).encode())
    for w in extractor.weights:
        arr = np.ascontiguousarray(keras.ops.convert_to_numpy(w.value))
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _describe_preprocess(preprocess) -> str:
    if isinstance(preprocess, models.Preprocessing):
        return repr(preprocess)
    return f"{getattr(preprocess, '__module__', '?')}.{getattr(preprocess, '__qualname__', repr(preprocess))}"


def cache_settings(network: models.Network, layer: str, settings: presets.Preset, *, seed: int,
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
    fields = {f.name: _jsonable(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    fields["param"] = repr(settings.param)
    fields["transforms"] = [t.name for t in settings.transforms]
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


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    arr = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def _read_png(data: bytes, channels: int) -> np.ndarray:
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

    def load(self, index: int, channels: int):
        """`(image, score)` of a stored filter, or None when missing, incomplete or corrupt."""
        png, meta = self._paths(index)
        try:
            with open(meta, "rb") as f:
                record = json.loads(f.read())
            with open(png, "rb") as f:
                data = f.read()
            if record.get("filter") != index or record.get("png") != hashlib.blake2b(data).hexdigest():
                return None
            image = _read_png(data, channels)
            return image, float(record["score"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, index: int, image: np.ndarray, score: float, seconds: float) -> None:
        """Write a filter's picture, then its record (the record marks it complete)."""
        os.makedirs(self.folder, exist_ok=True)
        settings_path = os.path.join(self.folder, "settings.json")
        if not os.path.exists(settings_path):
            _atomic_write(settings_path, json.dumps(self.settings, indent=1, sort_keys=True).encode())
        png, meta = self._paths(index)
        data = _png_bytes(image)
        _atomic_write(png, data)
        record = {"filter": int(index), "score": float(score), "seconds": float(seconds),
                  "png": hashlib.blake2b(data).hexdigest(), "shape": list(image.shape)}
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


# ------------------------------------------------------------------------ devices


@dataclasses.dataclass(frozen=True)
class _Placement:
    """Where the batches run: on `devices`, one worker each pulling from a queue, or on `strategy`,
    whose replicas split each batch with `strategy.run`; with neither, on the default device."""

    devices: tuple[str, ...] = ()
    strategy: object = None

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1


def _placement(distribute) -> _Placement:
    """The `_Placement` for what the user passed as `distribute`."""
    if distribute is None or distribute is False:
        return _Placement()
    import tensorflow as tf

    if distribute is True:
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    elif isinstance(distribute, tf.distribute.Strategy):
        return _Placement(strategy=distribute)
    elif isinstance(distribute, str) or not isinstance(distribute, Iterable):
        raise TypeError(
            "distribute must be True, a tf.distribute.Strategy (e.g. MirroredStrategy) or a list of "
            f"device names. Received: {distribute!r}."
        )
    else:
        devices = [str(d) for d in distribute]
    if not devices:
        raise ValueError("distribute: no device to run on.")
    return _Placement(devices=tuple(devices))


def _replicas(network: models.Network, devices: list[str]) -> list[models.Network]:
    """One network per device, each with its own copy of the weights on that device (the first
    device uses the model itself)."""
    import tensorflow as tf

    out = [network]
    for device in devices[1:]:
        with tf.device(device):
            try:
                clone = keras.models.clone_model(network.model)
                clone.set_weights(network.model.get_weights())
            except Exception:  # a model that cannot be cloned: share it (weights are copied per step)
                clone = network.model
        out.append(dataclasses.replace(network, model=clone))
    return out


# ------------------------------------------------------------------------ progress


class _FilterProgress(Callback):
    """Forwards a chunk's step progress to a shared per-filter counter."""

    def __init__(self, tracker, size: int):
        self.tracker, self.size, self._last = tracker, size, 0.0

    def on_step(self, record):
        done = self.size * record.step / max(record.steps, 1)
        self.tracker.advance(done - self._last)
        self._last = done


class _Tracker:
    """A thread-safe tqdm bar counted in filters (fractions while a chunk runs), with an ETA."""

    def __init__(self, total: int, enabled: bool, desc: str = "kerasviz atlas"):
        self._lock = threading.Lock()
        self._bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="filter", desc=desc, leave=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} filters "
                                        "[{elapsed}<{remaining}, {rate_fmt}] {postfix}")

    def advance(self, amount: float) -> None:
        if self._bar is not None and amount:
            with self._lock:
                self._bar.update(amount)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ------------------------------------------------------------------------ one layer


@dataclasses.dataclass
class _Plan:
    network: models.Network
    path: str
    layer_type: str
    output_shape: tuple | None
    channels: int
    filters: list
    settings: presets.Preset
    cache: FilterCache
    found: dict  # filter -> (image, score) read from the cache
    todo: list
    batch_size: int


def _check_overrides(overrides: dict) -> dict:
    unknown = sorted(set(overrides) - set(_SETTING_NAMES))
    if unknown:
        raise TypeError(f"Unknown setting(s) {', '.join(map(repr, unknown))}. Expected preset fields: "
                        f"{', '.join(_SETTING_NAMES)}.")
    return overrides


def _plan(network, layer, filters, *, cache_dir, preset, overrides, seed, objective, batch_size,
          memory_budget) -> _Plan:
    path, layer_obj = models.find_layer(network, layer)
    channels = models.channels_of(network, path)
    wanted = optimize.resolve_filters(filters, channels, path)
    wanted = list(dict.fromkeys(wanted))  # each filter once
    s = optimize.resolve_settings(preset, _check_overrides(dict(overrides)))
    settings = cache_settings(network, path, s, seed=seed, objective=objective)
    root = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = os.path.join(root, _slug(network.name), f"{_slug(path)}-{cache_key(settings)}")
    cache = FilterCache(folder, settings)
    cache.clean_stale()
    found = {}
    for f in wanted:
        hit = cache.load(f, network.input_channels)
        if hit is not None:
            found[f] = hit
    todo = [f for f in wanted if f not in found]
    if batch_size is None:
        extractor = optimize.get_extractor(network, [path], s.pre_activation)
        batch_size = optimize.estimate_batch_size(extractor, (s.size, s.size), network.input_channels,
                                                  memory_budget or optimize.DEFAULT_MEMORY_BUDGET)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: batch_size={batch_size!r}.")
    shape = models._output_shape(layer_obj)
    return _Plan(network, path, type(layer_obj).__name__, shape, channels, wanted, s, cache, found, todo,
                 int(batch_size))


def _execute(plan: _Plan, *, seed, objective, placement: _Placement, tracker, callbacks) -> LayerAtlas:
    start = time.perf_counter()
    results = dict(plan.found)
    computed, chunks_log = [], []
    interrupted = False
    strategy = placement.strategy
    chunks = optimize.split_batches(plan.todo, plan.batch_size * placement.replicas) if plan.todo else []
    log_lock = threading.Lock()
    tracker.describe(plan.path)

    def run_chunk(network, chunk, device) -> bool:
        """Compute and store one chunk; False when it was interrupted."""
        t0 = time.perf_counter()
        cbs = [_FilterProgress(tracker, len(chunk)), *(callbacks or [])]
        context = contextlib.nullcontext()
        if device is not None and strategy is None:
            import tensorflow as tf

            context = tf.device(device)
        try:
            with context, warnings.catch_warnings():
                if device is None:  # (warning filters are process-wide: leave them alone in threads)
                    warnings.filterwarnings("ignore", "Interrupted: returning", UserWarning)
                result = optimize.visualize_filters(
                    network, plan.path, chunk, preset=plan.settings, seed=seed, objective=objective,
                    batch_size=len(chunk), progress=False, callbacks=cbs, distribute=strategy,
                )
        except KeyboardInterrupt:
            return False
        seconds = time.perf_counter() - t0
        done = result.finished
        for i in range(done):
            f = int(result.filters[i])
            plan.cache.store(f, result.images[i], float(result.activations[i]), seconds / max(done, 1))
            with log_lock:
                results[f] = (result.images[i], float(result.activations[i]))
                computed.append(f)
        with log_lock:
            chunks_log.append((device, [int(f) for f in result.filters[:done]], seconds))
        return not result.interrupted

    if not placement.devices:
        label = ",".join(strategy.extended.worker_devices) if strategy is not None else None
        try:
            for chunk in chunks:
                if not run_chunk(plan.network, chunk, label):
                    interrupted = True
                    break
        except KeyboardInterrupt:  # between batches: what was stored stays stored
            interrupted = True
    elif chunks:
        interrupted = _run_on_devices(plan, chunks, list(placement.devices), run_chunk)
    ordered = [f for f in plan.filters if f in results]
    if len(ordered) < len(plan.filters):
        warnings.warn(f"Interrupted: {len(ordered)} of {len(plan.filters)} filters of {plan.path} are done and "
                      "cached; run the same call again to resume.", stacklevel=3)
    if ordered:
        imgs = np.stack([results[f][0] for f in ordered])
    else:
        s = plan.settings
        side = s.size - 2 * s.crop
        imgs = np.zeros((0, side, side, plan.network.input_channels), "uint8")
    scores = np.asarray([results[f][1] for f in ordered], "float32")
    computed_set = set(computed)
    return LayerAtlas(
        layer=plan.path, filters=ordered, images=imgs, scores=scores,
        computed=[f for f in ordered if f in computed_set],
        cached=[f for f in ordered if f in plan.found], seconds=time.perf_counter() - start,
        batch_size=plan.batch_size, interrupted=interrupted or len(ordered) < len(plan.filters),
        layer_type=plan.layer_type, output_shape=plan.output_shape, channels=plan.channels,
        settings=plan.cache.settings, cache_path=plan.cache.folder, chunks=chunks_log,
    )


def _run_on_devices(plan: _Plan, chunks: list, devices: list[str], run_chunk) -> bool:
    """Run chunks on several devices at once, one worker thread per device pulling from a queue.
    Returns True when interrupted."""
    replicas = _replicas(plan.network, devices)
    for replica in replicas:  # build the extractors here, not concurrently in the workers
        optimize.get_extractor(replica, [plan.path], plan.settings.pre_activation)
    work: queue.Queue = queue.Queue()
    for chunk in chunks:
        work.put(chunk)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(network, device):
        while not stop.is_set():
            try:
                chunk = work.get_nowait()
            except queue.Empty:
                return
            try:
                if not run_chunk(network, chunk, device):
                    stop.set()
            except BaseException as e:  # noqa: B036 - handed to the main thread
                errors.append(e)
                stop.set()

    threads = [threading.Thread(target=worker, args=(net, dev), daemon=True)
               for net, dev in zip(replicas, devices, strict=True)]
    for t in threads:
        t.start()
    interrupted = False
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:  # finish the chunks in flight (they are stored), start no more
        interrupted = True
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return interrupted or stop.is_set()


def layer_atlas(
    model,
    layer: str,
    filters: int | Iterable[int] | str = "all",
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    preset: str | presets.Preset | None = None,
    seed: int = 0,
    objective=None,
    distribute=None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    weights: str | None = "imagenet",
    preprocess=None,
    input_range: tuple[float, float] | None = None,
    **settings,
) -> LayerAtlas:
    """Visualize every filter of a layer, cached on disk per filter: an interrupted run resumes.

    Filters already in the cache (same model weights, layer, settings and seed) are read back; the
    others are computed in batches, and each finished batch is written at once (atomically), so
    Ctrl-C or a killed process loses at most the batch in flight.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path).
        filters: `"all"`, an index or a list/range of indices. Defaults to `"all"`.
        cache_dir: the cache folder. Defaults to `default_cache_dir()` (`$KERASVIZ_CACHE` or
            `~/.cache/kerasviz/atlas`).
        batch_size: filters per compiled batch. Defaults to what fits `memory_budget`.
        memory_budget: bytes of activations per batch for the automatic batch size. Defaults to 2 GiB.
        preset: a preset name or `Preset`. Defaults to `"quality"`.
        seed: random seed. Defaults to 0.
        objective: a custom objective that follows each image's filter (see `visualize_filters`).
        distribute: spread the work over devices. A `tf.distribute.Strategy` (e.g.
            `tf.distribute.MirroredStrategy()`): every batch is `batch_size` filters per replica, split
            across the replicas with `strategy.run`, in lockstep. True (every GPU, else every logical CPU)
            or a list of device names: each device gets its own copy of the weights and pulls whole
            batches from a queue, independently. Either way the pictures are the same as on one device.
            Defaults to None (one device).
        progress: show a progress bar with an ETA. Defaults to True.
        callbacks: extra `Callback` objects, told about each batch's steps.
        weights, preprocess, input_range: as in `visualize_filters`, for a model given by name or a
            `keras.Model`.
        **settings: preset fields to override (`size`, `steps`, `lr`, `octaves`, ...).

    Returns:
        A `LayerAtlas`: `images`, `scores`, `filters`, the mosaic `atlas`, and which filters were
        `computed` or `cached`.

    Raises:
        ValueError: unknown layer, filter out of range, bad settings.
        TypeError: an unknown setting name, or a bad `distribute`.

    Example:
    >>> atlas = kv.atlas.layer_atlas("VGG16", "block4_conv3", weights="hed", preset="fast")
    >>> kv.save_image(atlas.atlas, "block4_conv3.png")
    """
    network = models.as_network(model, weights=weights, preprocess=preprocess, input_range=input_range)
    plan = _plan(network, layer, filters, cache_dir=cache_dir, preset=preset, overrides=settings, seed=seed,
                 objective=objective, batch_size=batch_size, memory_budget=memory_budget)
    placement = _placement(distribute)
    tracker = _Tracker(len(plan.todo), progress, desc=network.name)
    try:
        return _execute(plan, seed=seed, objective=objective, placement=placement, tracker=tracker,
                        callbacks=callbacks)
    finally:
        tracker.close()


# ------------------------------------------------------------------------ whole models


def conv_layers(model) -> list[str]:
    """Paths of a model's convolution layers (nested models searched), in model order.

    Args:
        model: a `Network` or `keras.Model`.

    Returns:
        A list of layer paths (Conv1D/2D/3D, transposed, depthwise and separable convolutions).

    Example:
    >>> kv.atlas.conv_layers(kv.get_model("VGG16", weights="hed"))[:2]
    ['block1_conv1', 'block1_conv2']
    """
    keras_model = model.model if isinstance(model, models.Network) else model
    return [path for path, layer in models.iter_layers(keras_model)
            if type(layer).__name__ in CONV_TYPES and not isinstance(layer, keras.Model)]


def model_atlas(
    model,
    layers: Sequence[str] | None = None,
    *,
    filters: Iterable[int] | str = "all",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    preset: str | presets.Preset | None = None,
    seed: int = 0,
    distribute=None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    weights: str | None = "imagenet",
    preprocess=None,
    input_range: tuple[float, float] | None = None,
    **settings,
) -> ModelAtlas:
    """Atlases of every convolution layer of a model (or the layers named), sharing one cache.

    A single progress bar counts the filters still to compute across all layers, with an ETA; the
    result's `summary()` gives the time per layer. Interrupted, it stops after the batch in flight
    and the next call resumes.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layers: layer names. Defaults to every convolution layer (`conv_layers`).
        filters: `"all"` or indices, applied to each layer; indices past a layer's channel count are
            skipped for that layer. Defaults to `"all"`.
        cache_dir, batch_size, memory_budget, preset, seed, distribute, callbacks, weights, preprocess,
            input_range, **settings: as in `layer_atlas`.
        progress: show a progress bar with an ETA. Defaults to True.

    Returns:
        A `ModelAtlas`.

    Raises:
        ValueError: an unknown layer, a model without convolution layers, bad settings.

    Example:
    >>> atlases = kv.atlas.model_atlas("VGG16", weights="hed", preset="fast", filters=range(16))
    >>> print(atlases.summary())
    """
    start = time.perf_counter()
    network = models.as_network(model, weights=weights, preprocess=preprocess, input_range=input_range)
    if layers is None:
        layers = conv_layers(network)
        if not layers:
            raise ValueError(f"{network.name} has no convolution layer; name the layers to visualize.")
    elif isinstance(layers, str):
        layers = [layers]
    if isinstance(filters, (int, np.integer)) or (isinstance(filters, str) and filters != "all"):
        raise TypeError(f"filters must be 'all' or a list/range of indices (e.g. range(16) for the first 16 "
                        f"of each layer). Received: {filters!r}.")
    plans = []
    for name in layers:
        path, _ = models.find_layer(network, name)
        channels = models.channels_of(network, path)
        wanted = filters if isinstance(filters, str) else [int(f) for f in filters if int(f) < channels]
        if not isinstance(wanted, str) and not wanted:
            continue
        plans.append(_plan(network, path, wanted, cache_dir=cache_dir, preset=preset, overrides=settings,
                           seed=seed, objective=None, batch_size=batch_size, memory_budget=memory_budget))
    placement = _placement(distribute)
    tracker = _Tracker(sum(len(p.todo) for p in plans), progress, desc=network.name)
    out: dict[str, LayerAtlas] = {}
    interrupted = False
    try:
        for plan in plans:
            atlas = _execute(plan, seed=seed, objective=None, placement=placement, tracker=tracker,
                             callbacks=callbacks)
            out[plan.path] = atlas
            if atlas.interrupted:
                interrupted = True
                break
    finally:
        tracker.close()
    return ModelAtlas(model=network.name, layers=out, seconds=time.perf_counter() - start,
                      interrupted=interrupted, network=network)
