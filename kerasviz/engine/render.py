"""The renderer: the compiled step and its loop over octaves and revive steps, batch sizing and the renderer cache.

A `Renderer` compiles the step of one (network, objective, traced settings) once per shape; `Renderer.run`
optimizes one batch under a `Schedule` (the settings read at each run) on an executor (see
`kerasviz.engine.distribute`) and returns a `Rendered` record. The steps of an octave run in blocks: one
compiled call runs several steps, as many as compute about `BLOCK_ELEMENTS` activation elements
(`steps_per_call`, from the model's activation size: a rule of shapes, not of times measured).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import keras
import numpy as np

from kerasviz import images, nets
from kerasviz.engine import backend, objectives, params, presets, transforms, updates
from kerasviz.engine import distribute as distribute_

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of activations (and their gradients) per chunk


ACTIVATION_OVERHEAD = 3  # forward activations + gradients + workspace, per activation element


MAX_AUTO_BATCH = 64


# The compiled loop (`backend.compile_loop`): up to LOOP_STEPS steps per call, as many as compute about
# BLOCK_ELEMENTS activation elements (the batch's, summed over the steps). See `steps_per_call`.
LOOP_STEPS = 64
BLOCK_ELEMENTS = 64 * 1024**2
MIN_LOOP_STEPS = 8  # fewer steps per call than this: the step loop (the dispatch cost no longer matters)


def _graph_outputs(extractor) -> list:
    """The output tensor of every operation of `extractor`'s own graph (not of the graphs its layers were
    first called in: a flexible copy of a fixed-size model shares their layers, whose `.output` is the
    original model's)."""
    nodes = getattr(extractor, "_nodes_by_depth", None)
    if nodes:
        outs = [t for depth in sorted(nodes) for node in nodes[depth]  # layers only (not the bf16 copy's casts)
                if isinstance(node.operation, keras.layers.Layer)
                and not isinstance(node.operation, keras.layers.InputLayer) for t in node.outputs]
    else:
        outs = [layer.output for layer in extractor.layers if not isinstance(layer, keras.layers.InputLayer)]
    return [t for t in outs if not isinstance(t, (list, tuple)) and len(t.shape) >= 2]


def activation_elements(extractor, size: tuple[int, int], channels: int) -> int | None:
    """Activation elements per image of `extractor`'s layers at `size`, from a probe at 32x32 (or the
    extractor's fixed input size) scaled by the pixels; None for a graph the probe cannot read."""
    fixed = nets.input_size(extractor) if len(extractor.inputs) == 1 else None
    probe_hw = fixed or (32, 32)
    try:
        sizer = keras.Model(extractor.inputs[0], _graph_outputs(extractor))
        acts = sizer(np.zeros((1, *probe_hw, channels), "float32"))
        elements = sum(int(np.prod(a.shape)) for a in acts)
    except Exception:  # an exotic graph
        return None
    scale = 1.0 if fixed else (size[0] * size[1]) / (probe_hw[0] * probe_hw[1])  # a fixed size is the size
    return int(elements * scale)


def estimate_batch_size(extractor, size: tuple[int, int], channels: int, memory_budget: int) -> int:
    """How many images fit `memory_budget` bytes of activations, from `activation_elements` (8 for a graph
    the probe cannot read)."""
    elements = activation_elements(extractor, size, channels)
    if elements is None:
        return 8
    per_image = elements * 4 * ACTIVATION_OVERHEAD
    return int(max(1, min(MAX_AUTO_BATCH, memory_budget // max(per_image, 1))))


def split_batches(items: list, batch_size: int) -> list[list]:
    """`items` in consecutive batches of at most `batch_size`, as even in size as possible.

    Args:
        items: a list (filter indices, keys).
        batch_size: the most items per batch, >= 1.

    Returns:
        A list of lists: `ceil(len(items) / batch_size)` batches, all of one size but the last.

    Example:
    >>> kv.engine.render.split_batches(list(range(10)), 4)
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    n_chunks = math.ceil(len(items) / batch_size)
    per = math.ceil(len(items) / n_chunks)
    return [items[i : i + per] for i in range(0, len(items), per)]


def steps_per_call(batch: int, elements: int | None, block_elements: int = BLOCK_ELEMENTS) -> int:
    """Steps per compiled call for `batch` images of `elements` activation elements each: as many as compute
    `block_elements`, in 1 .. `LOOP_STEPS`; `MIN_LOOP_STEPS` for a graph the probe cannot read (None).

    Under `MIN_LOOP_STEPS`, the renderer runs the step loop (one compiled call per step) instead. A function of
    shapes only, never of a time measured, so the same call takes the same path, and gives the same pictures,
    at every run.

    Example:
    >>> kv.engine.render.steps_per_call(2, 1000, block_elements=16000)
    8
    >>> kv.engine.render.steps_per_call(2, 1000)
    64
    """
    if elements is None:
        return MIN_LOOP_STEPS
    return int(min(LOOP_STEPS, max(1, block_elements // max(1, batch * elements))))


def octave_sizes(size, octaves: int, scale: float) -> list[tuple[int, int]]:
    """`(height, width)` of each octave, ending at `size` (an int or a pair): `size / scale**k` for
    k = octaves-1 .. 0."""
    if octaves < 1:
        raise ValueError(f"octaves must be >= 1. Received: {octaves}.")
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    return [(max(8, int(round(h / scale**k))), max(8, int(round(w / scale**k))))
            for k in range(octaves - 1, -1, -1)]


# The settings the compiled step depends on; the others (size, steps, lr, octaves, revive_steps, ...) make the
# `Schedule` given to `Renderer.run`, so changing them reuses the compiled steps (new shapes still trace).
TRACED_SETTINGS = ("param", "transforms", "update", "pre_activation", "input_space", "precision")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What `Renderer.run` reads at each run: the settings that are not compiled in, and the block size.

    Attributes:
        size: the final image size in pixels (unless the run starts from `init` images, which give it).
        steps: the steps of each octave, smallest octave first.
        lr: the learning rate.
        octave_scale: growth factor between octaves.
        octave_blur: Gaussian blur sigma (px) applied between octaves; 0 for none.
        revive_steps: extra steps on the center neuron for the images that score <= 0 at the end.
        revive_lr: the learning rate of those steps.
        block_steps: steps per compiled call: None chooses them from the model's activation size
            (`steps_per_call`); 1 runs the step loop (one compiled call per step).

    Example:
    >>> kv.engine.render.Schedule.of(kv.presets.get("quality")).steps
    (16, 16, 16, 16)
    """

    size: int
    steps: tuple[int, ...]
    lr: float
    octave_scale: float = 1.2
    octave_blur: float = 0.0
    revive_steps: int = 0
    revive_lr: float = 0.05
    block_steps: int | None = None

    def __post_init__(self):
        b = self.block_steps
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1):
            raise ValueError(f"block_steps must be None (chosen from the model's activation size) or an int >= 1 "
                             f"(1: the step loop). Received: block_steps={b!r}.")

    @classmethod
    def of(cls, settings: presets.Preset, block_steps: int | None = None) -> Schedule:
        """The schedule of `settings` (a resolved `Preset`), with `block_steps` steps per compiled call."""
        return cls(size=settings.size, steps=tuple(presets.octave_steps(settings)), lr=float(settings.lr),
                   octave_scale=settings.octave_scale, octave_blur=settings.octave_blur,
                   revive_steps=settings.revive_steps, revive_lr=settings.revive_lr, block_steps=block_steps)


@dataclasses.dataclass
class Rendered:
    """What `Renderer.run` returns for one batch.

    Attributes:
        images: float32 `(N, H, W, C)`, in the space the param draws (see `Preset.input_space`).
        scores: float32 `(N,)`, each image's objective on the final image, without transforms.
        history: float32 `(steps, N)`, the score at every step run.
        interrupted: True when Ctrl-C stopped the run; the images are those of the steps finished.
        revived: the keys whose image came from the revive steps.
        unfinished: the keys whose steps did not all run: every key when Ctrl-C stopped the main steps, those
            being revived when it stopped the revive steps.
        alpha: float32 `(N, H, W)` in [0, 1], the transparency map (see `alpha_map`), where the param asks for
            it (`Maco.alpha`); None otherwise.
    """

    images: np.ndarray
    scores: np.ndarray
    history: np.ndarray
    interrupted: bool = False
    revived: list = dataclasses.field(default_factory=list)
    unfinished: list = dataclasses.field(default_factory=list)
    alpha: np.ndarray | None = None


ALPHA_PERCENTILE = 99.0  # the transparency map is 1 from this percentile of an image's accumulated gradient up


def alpha_map(accumulated: np.ndarray) -> np.ndarray:
    """The transparency map of accumulated input-gradient magnitudes `(N, H, W, C)`: their mean over the
    channels, divided by each image's `ALPHA_PERCENTILE` percentile and clipped to [0, 1] (1: the pixels that
    moved the score most over the steps).

    Example:
    >>> acc = np.zeros((1, 4, 4, 3), "float32"); acc[0, 1, 2] = 5.0
    >>> kv.engine.render.alpha_map(acc)[0, 1, 2], kv.engine.render.alpha_map(acc)[0, 0, 0]
    (np.float32(1.0), np.float32(0.0))
    """
    a = np.abs(np.asarray(accumulated, "float32")).mean(axis=-1)
    top = np.percentile(a.reshape(len(a), -1), ALPHA_PERCENTILE, axis=1).reshape(-1, 1, 1)
    top = np.where(top > 0, top, np.maximum(a.reshape(len(a), -1).max(axis=1).reshape(-1, 1, 1), 1e-12))
    return np.clip(a / top, 0.0, 1.0).astype("float32")


def get_renderer(network, objective, settings: presets.Preset, revive=None) -> Renderer:
    """A cached `Renderer`: the same model, objective and traced settings reuse the compiled steps."""
    cache = nets.model_cache(network.model, "renderers")
    key = (objective.key, tuple(getattr(settings, f) for f in TRACED_SETTINGS), repr(network.preprocess),
           revive.key if revive is not None else None)
    renderer = cache.get(key)
    if renderer is None:
        renderer = cache[key] = Renderer(network, objective, settings, revive=revive)
    return renderer


class Renderer:
    """Compiled machinery for one (network, objective, settings): call `run(keys, filters, schedule)` per chunk.

    The step is compiled once per shape and reused for every chunk of the same size; of `settings`, only
    the `TRACED_SETTINGS` are read here, the others come in each run's `Schedule`. `revive`, an objective on the
    same layer that reads its center position (the center neuron for `visualize_filters`), is optimized
    without transforms for `revive_steps` on the images that still score <= 0 at the end, on the
    `revive_window` of the images.
    """

    def __init__(self, network, objective, settings: presets.Preset, *, revive=None):
        self.network = network
        self.objective = objective
        self.param = params.get(settings.param)
        self.update = updates.get(settings.update)
        self.transform = transforms.compose(list(settings.transforms))
        # the transparency map: a zero image (the probe, the last value) added to the drawn images; the update
        # rule leaves it zero and accumulates its gradient's magnitude (`updates.Probed`)
        self.alpha = bool(getattr(self.param, "alpha", False))
        self.step_update = updates.Probed(self.update) if self.alpha else self.update
        layers = list(objective.layers)
        if not layers:
            raise ValueError(f"The objective {objective.description} reads no layer.")
        self.layers = layers
        # in bfloat16, a copy of the extractor on the same weight variables; its outputs come back float32
        self.precision = presets.resolve_precision(settings.precision)
        self.extractor = nets.get_extractor(network, layers, settings.pre_activation, self.precision)
        # a model whose layers need its fixed input size sees every image resized to it (smaller octaves
        # are upsampled inside the step); None: any size goes in as it is
        self.model_size = nets.input_size(self.extractor, network.image_input)
        self.channels = network.input_channels
        preprocess = (lambda x: x) if settings.input_space else network.preprocess
        extractor, param, model_size = self.extractor, self.param, self.model_size

        def scorer(objective_, transform, crop=None, probe=False):
            """`score_fn(values, u, filters)` for `objective_`: the drawn images (plus the probe, the last
            value, if `probe`), through `transform` unless `u` is None (or `transform` is None: never), cut by
            `crop` if given, the model, the objective. A transform that makes K copies of each image (`crops`)
            gives each image the mean of its copies' scores."""

            def score_fn(values, u, filters):
                imgs = param.draw(values[:-1]) + values[-1] if probe else param.draw(values)
                copies = 1 if u is None or transform is None else transform.copies
                x = imgs if u is None or transform is None else transform(imgs, u)
                if crop is not None:
                    x = imgs = crop(x)
                if model_size is not None and tuple(x.shape[1:3]) != model_size:
                    x = keras.ops.image.resize(x, model_size, interpolation="bilinear")
                outs = extractor(network.model_inputs(preprocess(x), extractor), training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                acts = dict(zip(layers, outs, strict=True))
                if copies == 1:
                    return objective_(objectives.Context(acts, imgs, filters))
                context = objectives.Context(acts, keras.ops.repeat(imgs, copies, axis=0),
                                             keras.ops.repeat(filters, copies, axis=0))
                return keras.ops.mean(keras.ops.reshape(objective_(context), (-1, copies)), axis=1)

            return score_fn

        score_fn = self.score_fn = scorer(objective, self.transform)  # `score_fn(values, u, filters)`
        step_fn = scorer(objective, self.transform, probe=self.alpha)
        self._step = backend.compile_step(step_fn, self.step_update, model=self.extractor)
        self._loop = backend.compile_loop(step_fn, self.step_update, model=self.extractor)
        self._clean = backend.compile_scores(score_fn, model=self.extractor)
        self._block_sizes = {}  # (batch, image size) -> steps per call
        self.local = distribute_.Local()  # the default device: where a run goes without an executor
        self._revive_step = None
        if revive is not None:
            if not set(revive.layers) <= set(layers):
                raise ValueError(f"The revive objective {revive.description} reads layers the objective does not.")
            self._windows = {}
            # the steps see only the window around the center neuron's receptive field (the same neuron,
            # the same gradient, a fraction of the compute); the check sees the whole image
            revive_fn = scorer(revive, None)  # no transforms
            self._revive_step = backend.compile_step(scorer(revive, None, crop=self._revive_crop), updates.Adam(),
                                                     model=self.extractor)
            self._revive_scores = backend.compile_scores(revive_fn, model=self.extractor)

    def traces(self) -> int:
        """How many times this renderer's compiled functions have been traced (0 on PyTorch, which runs eagerly):
        a new image size or batch size traces again; new filters, steps or learning rates do not."""
        compiled = [self._step, self._loop, self._clean]
        if self._revive_step is not None:
            compiled += [self._revive_step, self._revive_scores]
        return sum(backend.traces(f) for f in compiled)

    def _revive_crop(self, imgs):
        """`imgs` cut to `revive_window` of their (static) size, for the revive steps."""
        h, w = int(imgs.shape[1]), int(imgs.shape[2])
        if (h, w) not in self._windows:
            self._windows[(h, w)] = revive_window(self.network, self.layers[0], self.extractor, (h, w))
        window = self._windows[(h, w)]
        if window is None:
            return imgs
        top, left, rows, cols = window
        return imgs[:, top : top + rows, left : left + cols, :]

    def draw_uniforms(self, keys, seed, steps, octave):
        """The transforms' random draws of `steps` steps of one octave, `[steps, batch, n]`: one stream per
        key (its seed), so an image's draws do not depend on its batch."""
        n = self.transform.n_random
        rows = [params.rng(seed, k).spawn(octave + 1)[-1].uniform(size=(steps, n)) for k in keys]
        return np.stack(rows, axis=1).astype("float32")  # [steps, batch, n]

    def run(self, keys: Sequence[int], filters: Sequence[int], schedule: Schedule, *, seed: int = 0, init=None,
            on_step=None, executor=None) -> Rendered:
        """Optimize one batch under `schedule`.

        Args:
            keys: one key per image: seeds its start and transforms.
            filters: the per-image channel for objectives that follow it.
            schedule: the `Schedule` (size, steps, lr, ..., block size).
            seed: the random seed. Defaults to 0.
            init: start from these images (`[N, H, W, C]`) instead of noise. Defaults to None.
            on_step: called as `on_step(done, total)` after each block (and with `revive=` during revive steps).
            executor: where the batch runs (`distribute.read`): the default device when None, or the replicas of
                a Strategy, which split the batch.

        Returns:
            A `Rendered` record.

        Raises:
            ValueError: a `keras.optimizers` optimizer across the replicas of a Strategy.
        """
        s = schedule
        ex = executor or self.local
        if ex.replicas > 1 and isinstance(self.update, updates.KerasOptimizer):
            raise ValueError("A keras.optimizers optimizer cannot run across the replicas of a Strategy (its "
                             "slots are variables); use update='adam', 'nadam', 'l2' or 'rms'.")
        n_given = len(keys)
        if ex.replicas > 1:  # pad to a multiple of the replicas; the copies are dropped at the end
            keys, filters = distribute_.pad(list(keys), ex.replicas), distribute_.pad(list(filters), ex.replicas)
            if init is not None:
                init = np.concatenate([init, np.repeat(init[-1:], len(keys) - n_given, axis=0)])
        batch = len(keys)
        final = tuple(np.asarray(init).shape[1:3]) if init is not None else s.size
        sizes = octave_sizes(final, len(s.steps), s.octave_scale)
        filters_t = ex.put(np.asarray(filters, "int32"))
        lr = backend.to_tensor(np.float32(s.lr))
        history, values, interrupted, accumulated = [], None, False, None
        steps_per = s.steps
        total = sum(steps_per)
        done = 0
        for octave, size in enumerate(sizes):
            if values is None and init is None:
                arrays = self.param.init(batch, size, self.channels, keys=keys, seed=seed)
            else:
                start = np.asarray(init, "float32") if values is None else self._current(values, ex)
                if start.shape[1:3] != size:
                    start = np.stack([images.resize(np.clip(im, 0, 1), size) for im in start])
                if s.octave_blur and values is not None:
                    start = backend.to_numpy(transforms.blur_images(backend.to_tensor(start),
                                                                    s.octave_blur))
                arrays = self.param.encode(start)
            if self.alpha:  # the probe; the map so far goes on at the new size
                arrays = [*arrays, np.zeros((batch, *size, self.channels), "float32")]
            values = [ex.put(a) for a in arrays]
            state = ex.call(self.step_update.init, values)
            if accumulated is not None:
                state = [*state[:-1], ex.put(_resized_sum(accumulated, size))]
            u_all = self.draw_uniforms(keys, seed, steps_per[octave], octave)  # drawn up front, on the host
            try:
                for n, finished, reached, scores in self._blocks(ex, values, state, lr, u_all, filters_t, size,
                                                                 s.block_steps):
                    values, state = finished, reached  # after the block: what an interruption returns
                    history.append(scores)
                    done += n
                    if on_step is not None:
                        on_step(done, total)
            except KeyboardInterrupt:
                interrupted = True
            if self.alpha:
                accumulated = ex.get(state[-1])
                values = values[:-1]
            if interrupted:
                break
        final = ex.get(ex.call(self._clean, values, None, filters_t))
        hist = (np.concatenate([h if isinstance(h, np.ndarray) else ex.get(h)[None] for h in history])
                if history else np.zeros((0, batch)))
        if ex.replicas > 1:  # back on the default device, without the padding
            values = [backend.to_tensor(ex.get(v)[:n_given]) for v in values]
            keys, filters, final, hist = keys[:n_given], filters[:n_given], final[:n_given], hist[:, :n_given]
        revived, unfinished = [], list(keys) if interrupted else []
        if self._revive_step is not None and s.revive_steps > 0 and not interrupted:
            values, final, revived, unfinished = self._revive(values, final, keys, filters, s, on_step, total)
        alpha = None if accumulated is None else alpha_map(accumulated[:n_given])
        return Rendered(self._current(values), final.astype("float32"), hist.astype("float32"),
                        interrupted or bool(unfinished), revived, unfinished, alpha)

    def _blocks(self, ex, values, state, lr, u_all, filters_t, size, forced=None):
        """The steps of one octave, in blocks: yields `(steps done in the block, values, state, scores)`, the scores
        `[steps, batch]` on the host, or one step's scores `[batch]` still on the device (the step loop).

        How many steps a call runs: `forced` (the schedule's `block_steps`) if set, else `steps_per_call` for the
        batch and the model's activation size at this image size, at most `LOOP_STEPS` (the static first
        dimension of the draws given to the loop; how many of them run is a tensor, so the last, shorter block
        costs no trace). Fewer than `MIN_LOOP_STEPS` per call, the step loop runs (one compiled call per step,
        no host sync in between; see docs/speed.md for why). The first chosen block of an octave is one step
        (the first progress report comes after one step, as in the step loop)."""
        steps = u_all.shape[0]
        auto = self._auto_block(u_all.shape[1], size) if forced is None else None
        if (forced is not None and int(forced) == 1) or (auto is not None and auto < MIN_LOOP_STEPS):
            for t in range(steps):
                values, state, scores = ex.call(self._step, values, state, backend.to_tensor(np.int32(t)), lr,
                                                ex.put(u_all[t]), filters_t)
                yield 1, values, state, scores
            return
        k = LOOP_STEPS if forced is None else int(forced)
        u_block = np.zeros((k, *u_all.shape[1:]), "float32")
        t = 0
        while t < steps:  # chosen blocks: the first of an octave is one step, so progress is heard at once
            n = min(k if forced is not None else auto if t else 1, steps - t)
            u_block[:n] = u_all[t : t + n]
            u_block[n:] = 0.0
            values, state, scores = self._call_loop(ex, values, state, np.int32(t), lr, u_block, filters_t, n)
            t += n
            yield n, values, state, scores

    def _auto_block(self, batch: int, size) -> int:
        """`steps_per_call` for `batch` images of `size`, from the extractor's activation size (kept per shape)."""
        key = (batch, tuple(size))
        if key not in self._block_sizes:
            self._block_sizes[key] = steps_per_call(batch, activation_elements(self.extractor, tuple(size),
                                                                               self.channels))
        return self._block_sizes[key]

    def _call_loop(self, ex, values, state, t0, lr, u_block, filters_t, n):
        """One call of the compiled loop on `ex`: `(values, state, scores [n, batch] on the host)`. On replicas
        the batch travels on axis 0 (how `ex.put` and `ex.get` split and join it)."""
        t0, count = backend.to_tensor(t0), backend.to_tensor(np.int32(n))
        if isinstance(ex, distribute_.Local):
            values, state, history = self._loop(values, state, t0, lr, backend.to_tensor(u_block), filters_t, count)
            return values, state, ex.get(history)[:n]
        loop = self._loop

        def replica(values, state, t0, lr, u, filters, count):
            values, state, history = loop(values, state, t0, lr, keras.ops.transpose(u, (1, 0, 2)), filters, count)
            return values, state, keras.ops.transpose(history)

        u = ex.put(np.ascontiguousarray(u_block.transpose(1, 0, 2)))
        values, state, history = ex.call(replica, values, state, t0, lr, u, filters_t, count)
        return values, state, ex.get(history).T[:n]

    def _revive(self, values, final, keys, filters, s, on_step=None, total=0):
        """More steps of the revive objective for the images scoring <= 0. A new image is kept where it
        brought the revive objective above zero (the filter is alive) or raised the main score. Returns
        `(values, scores, revived keys, unfinished keys)`: Ctrl-C leaves the images as they were and the keys
        being revived unfinished.

        The sub-batch is padded to a power of two (at most the batch) so that few shapes get compiled."""
        dead = np.flatnonzero(final <= 0)
        if not dead.size:
            return values, final, [], []
        n = min(len(final), 2 ** math.ceil(math.log2(dead.size)))
        index = np.concatenate([dead, np.full(n - dead.size, dead[0])])
        arrays = [backend.to_numpy(v) for v in values]
        sub = [backend.to_tensor(a[index]) for a in arrays]
        sub_filters = backend.to_tensor(np.asarray(filters, "int32")[index])
        state = updates.Adam().init(sub)
        lr = backend.to_tensor(np.float32(s.revive_lr))
        u = backend.to_tensor(np.zeros((n, max(1, self.transform.n_random)), "float32"))  # unused: no transforms
        try:  # one step per call: few steps on a sub-batch, and the progress hears each of them
            for t in range(s.revive_steps):
                sub, state, _ = self._revive_step(sub, state, backend.to_tensor(np.int32(t)), lr, u, sub_filters)
                if on_step is not None:
                    on_step(total, total, revive=(dead.size, t + 1, s.revive_steps))
        except KeyboardInterrupt:
            return values, final, [], [keys[i] for i in dead]
        scores = backend.to_numpy(self._clean(sub, None, sub_filters))[: dead.size]
        alive = backend.to_numpy(self._revive_scores(sub, None, sub_filters))[: dead.size] > 0
        better = alive | (scores > final[dead])
        sub_arrays = [backend.to_numpy(v) for v in sub]
        for a, b in zip(arrays, sub_arrays, strict=True):
            a[dead[better]] = b[: dead.size][better]
        final = final.copy()
        final[dead[better]] = scores[better]
        return [backend.to_tensor(a) for a in arrays], final, [keys[i] for i in dead[better]], []

    def _current(self, values, ex=None):
        """The images the values draw, on the host (gathered from the replicas of `ex`)."""
        ex = ex or self.local
        return ex.get(ex.call(self.param.draw, values)).astype("float32")


def _resized_sum(accumulated: np.ndarray, size) -> np.ndarray:
    """An accumulated gradient map `(N, h, w, C)` at another `size`, for the next octave."""
    if tuple(accumulated.shape[1:3]) == tuple(size):
        return accumulated
    top = max(float(accumulated.max()), 1e-12)
    return np.stack([images.resize(a / top, size) * top for a in accumulated]).astype("float32")


def revive_window(network, layer: str, extractor, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The smallest centered window of a `size` image that holds the whole receptive field of `layer`'s
    center position and in which that position is again the center one.

    The window starts at a multiple of the layer's stride `S` and its side differs from the image's by a
    multiple of `2 S`, so every layer pads it as it pads the image and positions map one to one; the
    center position's value, and its gradient, are then the same on the window as on the image.

    Args:
        network: the `Network`.
        layer: the layer name (or path).
        extractor: the feature extractor whose first output is `layer` (gives the map size).
        size: `(height, width)` of the image.

    Returns:
        `(top, left, height, width)`, or None when no smaller window exists (the field covers the image or
        reaches its padding, the stride is not a whole number, the model takes several inputs or a fixed
        input size, or the receptive field of the layer cannot be worked out).

    Example:
    >>> net = kv.get_model("VGG16", weights="hed")
    >>> kv.engine.render.revive_window(net, "block3_conv3", kv.feature_extractor(net, ["block3_conv3"]), (128, 128))
    (40, 40, 48, 48)
    """

    if len(network.model.inputs) != 1 or nets.input_size(extractor) is not None:
        return None  # several inputs, or layers that need the model's fixed input size
    h, w = size
    try:
        field = nets.receptive_field(network, layer, input_size=(h, w))
        spec = extractor.compute_output_spec(keras.KerasTensor((1, h, w, network.input_channels)))
    except Exception:  # a layer the receptive field walk does not know: optimize the whole image
        return None
    spec = spec[0] if isinstance(spec, (list, tuple)) else spec
    rows, cols = int(spec.shape[1]), int(spec.shape[2])
    top, left, bottom, right = field.box((rows // 2, cols // 2))
    window = []
    for n, lo, hi, jump in ((h, top, bottom, field.jump[0]), (w, left, right, field.jump[1])):
        stride = int(round(jump))
        if stride < 1 or abs(stride - jump) > 1e-6 or lo < 0 or hi > n:
            return None
        k = min(lo // stride, (n - hi) // stride)  # strides cut from each side
        window.append((k * stride, n - 2 * k * stride))
    if window[0][1] == h and window[1][1] == w:
        return None
    return window[0][0], window[1][0], window[0][1], window[1][1]


def revive_objective(path: str, layer, s: presets.Preset, extra_tokens: int | None = None) -> objectives.Objective:
    """The revive objective: the center neuron of each image's filter (on a token layer, the center patch, with
    the run's `extra_tokens`). Where the extractor made the layer's ReLU leaky, the neuron's linear
    pre-activation (`nets.undo_leak`): with the leaky value, whose slope jumps 100-fold at zero, Adam oscillates
    around zero and rarely crosses it."""
    center = objectives.neuron(path, extra_tokens=extra_tokens)
    if not (s.pre_activation and nets.leaks_under_pre_activation(layer)):
        return center  # no leak to undo: a plain output, or a softmax layer's logits
    return objectives.Objective(lambda c: nets.undo_leak(center(c)), f"undo_leak({center.description})",
                                center.layers, key=("undo_leak", center.key))
