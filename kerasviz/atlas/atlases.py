"""Layer and model atlases: every filter of a layer (or of every conv layer), cached per filter, resumable."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from kerasviz import images, nets, optimize
from kerasviz.atlas.cache import FilterCache, cache_key, cache_settings, default_cache_dir, folder_for
from kerasviz.engine import distribute as distribution
from kerasviz.engine import presets
from kerasviz.engine import result as outcomes
from kerasviz.engine.progress import Callback, FilterBar


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
        dead: the filters whose final score is <= 0 (see `kerasviz.Result.dead`).
        flat: the filters whose picture is nearly one color (see `kerasviz.Result.flat`).
        chunks: one `(device, filters, seconds)` record per batch computed.
        revived: the filters whose picture came from the revive steps (they scored <= 0 after the main
            steps; see `Preset.revive_steps`), computed now or read from the cache.
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
    dead: list = dataclasses.field(default_factory=list)
    flat: list = dataclasses.field(default_factory=list)
    chunks: list = dataclasses.field(default_factory=list)
    revived: list = dataclasses.field(default_factory=list)

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
    network: nets.Network = dataclasses.field(repr=False, default=None)

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


@dataclasses.dataclass
class _LayerJob:
    """One layer's share of an atlas: its plan, its cache and what is still to compute."""

    plan: optimize.Plan
    layer_type: str
    output_shape: tuple | None
    channels: int
    cache: FilterCache
    found: dict  # filter -> (image, score) read from the cache
    todo: list
    revived: set = dataclasses.field(default_factory=set)  # filters revived, from the cache and computed

    @property
    def path(self) -> str:
        return self.plan.layer


def prepare(network, layer, filters, *, cache_dir, preset, objective, run: optimize.RunOptions,
            overrides: dict) -> _LayerJob:
    """Resolve one layer once (`optimize.plan`) and read what its cache already holds. On Ray the driver's plan
    runs nothing (the workers plan again): it is made for the default device."""
    here = dataclasses.replace(run, distribute=None) if isinstance(run.distribute, distribution.Ray) else run
    plan = optimize.plan(network, layer, filters, objective=objective, preset=preset, **vars(here), **overrides)
    plan.items = list(dict.fromkeys(plan.items))  # each filter once
    path, layer_obj = nets.find_layer(network, plan.layer)
    settings = cache_settings(network, path, plan.settings, seed=run.seed, objective=objective)
    root = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder_for(root, network.name, path, cache_key(settings))
    cache = FilterCache(folder, settings)
    cache.clean_stale()
    hits = cache.load_many(plan.items, network.input_channels, record=True)
    found = {f: hit[:2] for f, hit in hits.items()}
    revived = {f for f, hit in hits.items() if hit[2].get("revived")}
    todo = [f for f in plan.items if f not in found]
    return _LayerJob(plan, type(layer_obj).__name__, nets.output_shape(layer_obj), nets.channels_of(network, path),
                     cache, found, todo, revived)


def _execute(job: _LayerJob, *, bar: FilterBar, callbacks) -> LayerAtlas:
    """Compute and store `job`'s missing filters here, one batch after the other (a Strategy's replicas
    split each batch)."""
    start = time.perf_counter()
    plan = job.plan
    results = dict(job.found)
    computed, chunks_log = [], []
    interrupted = False
    ex = plan.executor
    label = ",".join(ex.strategy.extended.worker_devices) if isinstance(ex, distribution.Replicated) else None
    bar.describe(job.path)
    try:
        for chunk in plan.chunks(job.todo):
            t0 = time.perf_counter()
            cbs = [bar.steps_of(len(chunk)), *(callbacks or [])]
            result = plan.run(chunk, callbacks=cbs)
            seconds = time.perf_counter() - t0
            stored = job.cache.store_result(result, seconds)
            for i, f in enumerate(stored):
                results[f] = (result.images[i], float(result.scores[i]))
            job.revived.update(f for f in stored if f in result.revived)
            computed.extend(stored)
            chunks_log.append((label, stored, seconds))
            if result.interrupted:
                interrupted = True
                break
    except KeyboardInterrupt:  # between batches, or as one was stored: what the cache holds counts as done
        interrupted = True
        late = job.cache.load_many([f for f in job.todo if f not in results], plan.network.input_channels,
                                   record=True)
        for f, (image, score, record) in late.items():
            results[f] = (image, score)
            computed.append(f)
            if record.get("revived"):
                job.revived.add(f)
    return _finish(job, results, computed, chunks_log, interrupted, time.perf_counter() - start)


def _execute_ray(jobs: list[_LayerJob], config: distribution.Ray, bar: FilterBar) -> list[LayerAtlas]:
    """Compute `jobs`' missing filters on a Ray cluster (`cluster.run`), every layer's batches at once so
    that the workers stay busy across layers; the pictures are read back from the cache the workers wrote.
    A layer's `seconds` is then its workers' compute time."""
    from kerasviz.atlas import cluster

    ray = config.connect()
    tasks = []
    for job in jobs:
        p = job.plan
        spec = cluster.model_spec(p.network, ray) if not tasks else tasks[0][0].model  # the model goes once
        task = cluster.LayerTask(model=spec, layer=job.path, settings=p.settings, seed=p.seed,
                                 objective=p.objective if job.cache.settings["objective"] else None,
                                 batch_size=p.batch_size, folder=job.cache.folder, cache_settings=job.cache.settings,
                                 key=cache_key(job.cache.settings))
        tasks.append((task, p.chunks(job.todo)))
    outcomes, _ = cluster.run(tasks, config, bar)  # interrupted: the layers with filters missing
    out = []
    for job, outcome in zip(jobs, outcomes, strict=True):
        results = dict(job.found)
        hits = job.cache.load_many(list(outcome.scores), job.plan.network.input_channels, record=True)
        for f, score in outcome.scores.items():
            if f not in hits:
                raise RuntimeError(f"A Ray worker stored filter {f} of {job.path} in {job.cache.folder}, but this "
                                   "process cannot read it there: the cache must be storage that the driver and "
                                   "every worker share (a network folder or an fsspec URL such as s3://...).")
            results[f] = (hits[f][0], score)
            if hits[f][2].get("revived"):
                job.revived.add(f)
        computed = [f for f in job.plan.items if f in outcome.scores]
        out.append(_finish(job, results, computed, outcome.chunks, False, outcome.seconds))
    return out


def _finish(job: _LayerJob, results: dict, computed: list, chunks_log: list, interrupted: bool,
            seconds: float) -> LayerAtlas:
    """The `LayerAtlas` of `job` from every filter's `(image, score)` in `results`."""
    plan = job.plan
    ordered = [f for f in plan.items if f in results]
    if len(ordered) < len(plan.items):
        warnings.warn(f"Interrupted: {len(ordered)} of {len(plan.items)} filters of {job.path} are done and "
                      "cached; run the same call again to resume.", stacklevel=4)
    if ordered:
        imgs = np.stack([results[f][0] for f in ordered])
    else:
        s = plan.settings
        side = s.size - 2 * s.crop
        imgs = np.zeros((0, side, side, plan.network.input_channels), "uint8")
    scores = np.asarray([results[f][1] for f in ordered], "float32")
    dead, flat = outcomes.check(ordered, imgs, scores, layer=job.path)
    computed_set = set(computed)
    return LayerAtlas(
        layer=job.path, filters=ordered, images=imgs, scores=scores,
        computed=[f for f in ordered if f in computed_set],
        cached=[f for f in ordered if f in job.found], seconds=seconds,
        batch_size=plan.batch_size // plan.executor.replicas, interrupted=interrupted or len(ordered) < len(plan.items),
        layer_type=job.layer_type, output_shape=job.output_shape, channels=job.channels,
        settings=job.cache.settings, cache_path=job.cache.folder, chunks=chunks_log,
        revived=[f for f in ordered if f in job.revived], dead=dead, flat=flat,
    )


def _split(model, options: dict):
    """`optimize.split_options`, and where the batches run (`distribution.read`: Ray allowed)."""
    network, run, overrides = optimize.split_options(model, options)
    return network, run, overrides, distribution.read(run.distribute)


def layer_atlas(
    model,
    layer: str,
    filters: int | Iterable[int] | str = "all",
    *,
    cache_dir: str | os.PathLike | None = None,
    preset: str | presets.Preset | None = None,
    objective=None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    **options,
) -> LayerAtlas:
    """Visualize every filter of a layer, cached on disk per filter: an interrupted run resumes.

    Filters already in the cache (same model weights, layer, settings and seed) are read back; the
    others are computed in batches, and each finished batch is written at once (atomically), so
    Ctrl-C or a killed process loses at most the batch in flight.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer name (or `outer/inner` path).
        filters: `"all"`, an index or a list/range of indices. Defaults to `"all"`.
        cache_dir: the cache folder: a local path or an fsspec URL (`s3://bucket/kv`, `gs://...`, `memory://...`;
            on a Ray cluster, storage every worker reaches). Defaults to `default_cache_dir()` (`$KERASVIZ_CACHE` or
            `~/.cache/kerasviz/atlas`).
        preset: a preset name or `Preset`. Defaults to `"quality"`.
        objective: a custom objective that follows each image's filter (see `visualize_filters`).
        progress: show a progress bar with an ETA. Defaults to True.
        callbacks: extra `Callback` objects, told about each batch's steps.
        **options: as in `visualize_filters`: the model's (`weights`, `preprocess`, `input_range`), the run's
            (`batch_size` filters per compiled batch, `memory_budget`, `seed`, `distribute`, `block_steps`: see
            `kerasviz.optimize.RunOptions`) and `Preset` fields (`size`, `steps`, `lr`, `octaves`, ...).
            `distribute` says where the batches run. None: here, on the default device. A
            `tf.distribute.Strategy` (e.g. `tf.distribute.MirroredStrategy()`): every batch is `batch_size`
            filters per replica, split across the replicas with `strategy.run`, in lockstep. A
            `kv.distribute.Ray(...)`: each batch is one call on a worker of a Ray cluster (or a local Ray),
            which writes its filters into the cache; `cache_dir` must then be storage every worker shares (see
            "Atlases on a cluster"). Either way the pictures are the same as on one device.

    Returns:
        A `LayerAtlas`: `images`, `scores`, `filters`, the mosaic `atlas`, and which filters were
        `computed` or `cached`.

    Raises:
        ValueError: unknown layer, filter out of range, bad settings.
        TypeError: an unknown option (the message suggests close names), or a bad `distribute`.

    Example:
    >>> atlas = kv.atlas.layer_atlas("VGG16", "block4_conv3", range(4), weights="hed", preset="fast", size=32,
    ...                              steps=2, cache_dir="cache", progress=False)
    >>> kv.save_image(atlas.atlas, "block4_conv3.png")
    'block4_conv3.png'
    >>> atlas.computed
    [0, 1, 2, 3]
    """
    network, run, overrides, where = _split(model, options)
    job = prepare(network, layer, filters, cache_dir=cache_dir, preset=preset, objective=objective, run=run,
                   overrides=overrides)
    with FilterBar(len(job.todo), progress, desc=network.name) as bar:
        atlas = _execute_ray([job], where, bar)[0] if isinstance(where, distribution.Ray) else _execute(
            job, bar=bar, callbacks=callbacks)
    line = outcomes.bad_line(len(atlas.filters), atlas.dead, atlas.flat, f" of {atlas.layer!r}")
    if line is not None:
        warnings.warn(line, stacklevel=2)
    return atlas


def model_atlas(
    model,
    layers: Sequence[str] | None = None,
    *,
    filters: Iterable[int] | str = "all",
    cache_dir: str | os.PathLike | None = None,
    preset: str | presets.Preset | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    on_layer: Callable[[LayerAtlas], None] | None = None,
    **options,
) -> ModelAtlas:
    """Atlases of every convolution layer of a model (or the layers named), sharing one cache.

    A single progress bar counts the filters still to compute across all layers, with an ETA; the
    result's `summary()` gives the time per layer. Interrupted, it stops after the batch in flight
    and the next call resumes.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layers: layer names. Defaults to every convolution layer (`kv.nets.conv_layers`).
        filters: `"all"` or indices, applied to each layer; indices past a layer's channel count are
            skipped for that layer. Defaults to `"all"`.
        cache_dir, preset, callbacks, **options: as in `layer_atlas` (the model's, the run's and `Preset`
            options, `distribute` included).
        progress: show a progress bar with an ETA. Defaults to True.
        on_layer: called with each layer's `LayerAtlas` as soon as it is done (the gallery writes its
            pages then; on a Ray cluster, once every layer is done). Defaults to None.

    Returns:
        A `ModelAtlas`.

    Raises:
        ValueError: an unknown layer, a model without convolution layers, bad settings.
        TypeError: an unknown option, or `filters` that is neither `"all"` nor a list of indices.

    Example:
    >>> atlases = kv.atlas.model_atlas("VGG16", ["block1_conv1", "block2_conv1"], weights="hed", preset="fast",
    ...                                filters=range(2), size=32, steps=2, cache_dir="cache", progress=False)
    >>> list(atlases.layers)
    ['block1_conv1', 'block2_conv1']
    """
    start = time.perf_counter()
    network, run, overrides, where = _split(model, options)
    if layers is None:
        layers = nets.conv_layers(network)
        if not layers:
            raise ValueError(f"{network.name} has no convolution layer; name the layers to visualize.")
    elif isinstance(layers, str):
        layers = [layers]
    if isinstance(filters, (int, np.integer)) or (isinstance(filters, str) and filters != "all"):
        raise TypeError(f"filters must be 'all' or a list/range of indices (e.g. range(16) for the first 16 "
                        f"of each layer). Received: {filters!r}.")
    jobs = []
    for name in layers:
        path, _ = nets.find_layer(network, name)
        channels = nets.channels_of(network, path)
        wanted = filters if isinstance(filters, str) else [int(f) for f in filters if int(f) < channels]
        if not isinstance(wanted, str) and not wanted:
            continue
        jobs.append(prepare(network, path, wanted, cache_dir=cache_dir, preset=preset, objective=None, run=run,
                             overrides=overrides))
    out: dict[str, LayerAtlas] = {}
    interrupted = False
    with FilterBar(sum(len(j.todo) for j in jobs), progress, desc=network.name) as bar:
        if isinstance(where, distribution.Ray):
            atlases = _execute_ray(jobs, where, bar)
        else:
            atlases = (_execute(job, bar=bar, callbacks=callbacks) for job in jobs)  # one after the other
        for atlas in atlases:
            out[atlas.layer] = atlas
            if on_layer is not None:
                on_layer(atlas)
            if atlas.interrupted:
                interrupted = True
                if not isinstance(where, distribution.Ray):
                    break  # the local run stopped: the next layers wait for the next call
    return ModelAtlas(model=network.name, layers=out, seconds=time.perf_counter() - start,
                      interrupted=interrupted, network=network)
