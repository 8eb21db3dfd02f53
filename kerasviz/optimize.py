"""Feature visualization by gradient ascent, batched and compiled.

The method, in the order it runs: param -> transforms -> preprocess -> model -> objective -> step.
One image per filter, all in one batch with one objective; the step is compiled once per shape.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
import weakref
from collections.abc import Iterable, Sequence

import keras
import numpy as np

from kerasviz import backend, images, models, objectives, params, presets, transforms, updates
from kerasviz import distribute as distribute_
from kerasviz.progress import Callback, ProgressBar, StepRecord, run_callbacks

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of activations (and their gradients) per chunk
ACTIVATION_OVERHEAD = 3  # forward activations + gradients + workspace, per activation element
MAX_AUTO_BATCH = 64
DEFAULT_FILTER_COUNT = 64  # an 8x8 atlas


@dataclasses.dataclass
class Result:
    """What a visualization run returns: data, no drawing.

    Attributes:
        images: uint8 `(N, H, W, C)`, ready to save or stitch.
        activations: float32 `(N,)`, each image's final score (its objective on the final image,
            without transforms).
        history: float32 `(steps, N)`, the score at every step (with that step's transforms).
        filters: the filter index (or key) of each image.
        layer: the layer name, when one layer was visualized.
        raw: float32 images before deprocessing: [0, 1] images, or model inputs for
            `input_space` presets.
        settings: the settings used (preset fields, seed, model, objective).
        seconds: wall time of the run.
        clipped: share of pixels clipped when converting to uint8.
        interrupted: True when the run was stopped early (Ctrl-C); what was done is kept.
        finished: how many of the images (the first ones) ran all their steps; after an interruption
            the rest are the interrupted batch, returned as far as they got.
        revived: the filters whose image came from the revive steps (see `Preset.revive_steps`): their
            filter stayed at zero under the main objective, so the image shows what drives its center
            neuron, without transforms.
    """

    images: np.ndarray
    activations: np.ndarray
    history: np.ndarray
    filters: list
    layer: str | None
    raw: np.ndarray
    settings: dict
    seconds: float = 0.0
    clipped: float = 0.0
    interrupted: bool = False
    finished: int = 0
    revived: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.filters)

    def __repr__(self):
        shape = "x".join(str(s) for s in self.images.shape)
        return (f"Result(layer={self.layer!r}, filters={len(self.filters)}, images={shape}, "
                f"mean activation={float(np.mean(self.activations)) if len(self) else 0:.4g})")


# ------------------------------------------------------------------------ extractors and chunks

_EXTRACTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_extractor(network: models.Network, layers: Sequence[str], pre_activation: bool):
    """A cached feature extractor for `layers` of `network`."""
    cache = _EXTRACTORS.setdefault(network.model, {})
    key = (tuple(layers), bool(pre_activation))
    if key not in cache:
        cache[key] = models.feature_extractor(network, layers, pre_activation=pre_activation)
    return cache[key]


def estimate_batch_size(extractor, size: tuple[int, int], channels: int, memory_budget: int) -> int:
    """How many images fit `memory_budget` bytes of activations, from a probe of the extractor's
    layer sizes at 32x32 scaled to `size`."""
    probe = 32
    try:
        outs = [
            layer.output for layer in extractor.layers
            if not isinstance(layer, keras.layers.InputLayer)
            and not isinstance(layer.output, (list, tuple)) and len(layer.output.shape) >= 2
        ]
        sizer = keras.Model(extractor.inputs[0], outs)
        acts = sizer(np.zeros((1, probe, probe, channels), "float32"))
        elements = sum(int(np.prod(a.shape)) for a in acts)
    except Exception:  # an exotic graph: a safe default
        return 8
    per_image = elements * (size[0] * size[1]) / (probe * probe) * 4 * ACTIVATION_OVERHEAD
    return int(max(1, min(MAX_AUTO_BATCH, memory_budget // max(per_image, 1))))


def split_batches(items: list, batch_size: int) -> list[list]:
    """`items` in consecutive batches of at most `batch_size`, as even in size as possible.

    Args:
        items: a list (filter indices, keys).
        batch_size: the most items per batch, >= 1.

    Returns:
        A list of lists: `ceil(len(items) / batch_size)` batches, all of one size but the last.

    Example:
    >>> kv.optimize.split_batches(list(range(10)), 4)
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    n_chunks = math.ceil(len(items) / batch_size)
    per = math.ceil(len(items) / n_chunks)
    return [items[i : i + per] for i in range(0, len(items), per)]


# ------------------------------------------------------------------------ the renderer


def octave_sizes(size, octaves: int, scale: float) -> list[tuple[int, int]]:
    """`(height, width)` of each octave, ending at `size` (an int or a pair): `size / scale**k` for
    k = octaves-1 .. 0."""
    if octaves < 1:
        raise ValueError(f"octaves must be >= 1. Received: {octaves}.")
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    return [(max(8, int(round(h / scale**k))), max(8, int(round(w / scale**k))))
            for k in range(octaves - 1, -1, -1)]


_RENDERERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The settings the compiled step depends on; the others (size, steps, lr, octaves, revive_steps, ...) are
# arguments of `Renderer.run`, so changing them reuses the compiled steps (new shapes still trace).
TRACED_SETTINGS = ("param", "transforms", "update", "pre_activation", "input_space")


def get_renderer(network, objective, settings: presets.Preset, revive=None) -> Renderer:
    """A cached `Renderer`: the same model, objective and traced settings reuse the compiled steps."""
    cache = _RENDERERS.setdefault(network.model, {})
    key = (objective.description, tuple(getattr(settings, f) for f in TRACED_SETTINGS), repr(network.preprocess),
           revive.description if revive is not None else None)
    renderer = cache.get(key)
    if renderer is None:
        renderer = cache[key] = Renderer(network, objective, settings, revive=revive)
    return renderer


class Renderer:
    """Compiled machinery for one (network, objective, settings): call `run(keys)` per chunk.

    The step is compiled once per shape and reused for every chunk of the same size; of `settings`, only
    the `TRACED_SETTINGS` are fixed here, the others are read at each `run`. `revive`, an objective on the
    same layer that reads its center position (the center neuron for `visualize_filters`), is optimized
    without transforms for `revive_steps` on the images that still score <= 0 at the end, on the
    `revive_window` of the images.
    """

    def __init__(self, network, objective, settings: presets.Preset, *, revive=None):
        self.network = network
        self.objective = objective
        self.settings = settings
        self.param = params.get(settings.param)
        self.update = updates.get(settings.update)
        self.transform = transforms.compose(list(settings.transforms))
        layers = list(objective.layers)
        if not layers:
            raise ValueError(f"The objective {objective.description} reads no layer.")
        self.layers = layers
        self.extractor = get_extractor(network, layers, settings.pre_activation)
        self.channels = network.input_channels
        preprocess = (lambda x: x) if settings.input_space else network.preprocess
        extractor, param = self.extractor, self.param

        def scorer(objective_, transform, crop=None):
            """`score_fn(values, u, filters)` for `objective_`: the drawn images, through `transform`
            unless `u` is None (or `transform` is None: never), cut by `crop` if given, the model, the
            objective."""

            def score_fn(values, u, filters):
                imgs = param.draw(values)
                x = imgs if u is None or transform is None else transform(imgs, u)
                if crop is not None:
                    x = imgs = crop(x)
                outs = extractor(network.model_inputs(preprocess(x)), training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                acts = dict(zip(layers, outs, strict=True))
                return objective_(objectives.Context(acts, imgs, filters))

            return score_fn

        score_fn = scorer(objective, self.transform)
        self._step = backend.compile_step(score_fn, self.update, model=self.extractor)
        self._clean = backend.compile_scores(score_fn, model=self.extractor)
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

    def _draw_uniforms(self, keys, seed, steps, octave):
        n = self.transform.n_random
        rows = [params.rng(seed, k).spawn(octave + 1)[-1].uniform(size=(steps, n)) for k in keys]
        return np.stack(rows, axis=1).astype("float32")  # [steps, batch, n]

    def run(self, keys: Sequence[int], filters: Sequence[int], *, seed: int = 0, init=None,
            on_step=None, settings: presets.Preset | None = None, distribute=None):
        """Optimize one batch. Returns `(images, scores, history, interrupted, revived)`: NumPy arrays
        (`images` in the space the param draws, see `Preset.input_space`), a bool and the revived keys.

        `settings` gives the untraced fields (size, steps, lr, octaves, revive_steps, ...); defaults to
        the settings the renderer was built with. `distribute`, a `tf.distribute.Strategy`, splits the
        batch across its replicas (see `kerasviz.distribute`)."""
        s = settings if settings is not None else self.settings
        ex = distribute_.executor(distribute)
        if ex.replicas > 1 and isinstance(self.update, updates.KerasOptimizer) and backend.name() == "tensorflow":
            raise ValueError("A keras.optimizers optimizer cannot run across the replicas of a Strategy on "
                             "TensorFlow (its slots are variables); use update='adam', 'l2' or 'rms'.")
        n_given = len(keys)
        if ex.replicas > 1:  # pad to a multiple of the replicas; the copies are dropped at the end
            keys, filters = distribute_.pad(list(keys), ex.replicas), distribute_.pad(list(filters), ex.replicas)
            if init is not None:
                init = np.concatenate([init, np.repeat(init[-1:], len(keys) - n_given, axis=0)])
        batch = len(keys)
        final = tuple(np.asarray(init).shape[1:3]) if init is not None else s.size
        sizes = octave_sizes(final, s.octaves, s.octave_scale)
        filters_t = ex.put(np.asarray(filters, "int32"))
        lr = backend.to_tensor(np.float32(s.lr))
        history, values, interrupted = [], None, False
        steps_per = presets.octave_steps(s)
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
            values = [ex.put(a) for a in arrays]
            state = ex.call(self.update.init, values)
            u_all = self._draw_uniforms(keys, seed, steps_per[octave], octave)  # drawn up front, on the host
            try:
                for t in range(steps_per[octave]):
                    values, state, scores = ex.call(
                        self._step, values, state, backend.to_tensor(np.int32(t)), lr, ex.put(u_all[t]), filters_t
                    )
                    history.append(scores)
                    done += 1
                    if on_step is not None:
                        on_step(done, total)
            except KeyboardInterrupt:
                interrupted = True
                break
        final = ex.get(ex.call(self._clean, values, None, filters_t))
        hist = np.stack([ex.get(h) for h in history]) if history else np.zeros((0, batch))
        if ex.replicas > 1:  # back on the default device, without the padding
            values = [backend.to_tensor(ex.get(v)[:n_given]) for v in values]
            keys, filters, final, hist = keys[:n_given], filters[:n_given], final[:n_given], hist[:, :n_given]
        revived = []
        if self._revive_step is not None and s.revive_steps > 0 and not interrupted:
            values, final, revived = self._revive(values, final, keys, filters, s, on_step, total)
        return self._current(values), final.astype("float32"), hist.astype("float32"), interrupted, revived

    def _revive(self, values, final, keys, filters, s, on_step=None, total=0):
        """More steps of the revive objective for the images scoring <= 0. A new image is kept where it
        brought the revive objective above zero (the filter is alive) or raised the main score.

        The sub-batch is padded to a power of two (at most the batch) so that few shapes get compiled."""
        dead = np.flatnonzero(final <= 0)
        if not dead.size:
            return values, final, []
        n = min(len(final), 2 ** math.ceil(math.log2(dead.size)))
        index = np.concatenate([dead, np.full(n - dead.size, dead[0])])
        arrays = [backend.to_numpy(v) for v in values]
        sub = [backend.to_tensor(a[index]) for a in arrays]
        sub_filters = backend.to_tensor(np.asarray(filters, "int32")[index])
        state = updates.Adam().init(sub)
        lr = backend.to_tensor(np.float32(s.revive_lr))
        u = backend.to_tensor(np.zeros((n, max(1, self.transform.n_random)), "float32"))  # unused: no transforms
        try:
            for t in range(s.revive_steps):
                sub, state, _ = self._revive_step(sub, state, backend.to_tensor(np.int32(t)), lr, u, sub_filters)
                if on_step is not None:
                    on_step(total, total, revive=(dead.size, t + 1, s.revive_steps))
        except KeyboardInterrupt:
            return values, final, []  # the images before reviving are complete results
        scores = backend.to_numpy(self._clean(sub, None, sub_filters))[: dead.size]
        alive = backend.to_numpy(self._revive_scores(sub, None, sub_filters))[: dead.size] > 0
        better = alive | (scores > final[dead])
        sub_arrays = [backend.to_numpy(v) for v in sub]
        for a, b in zip(arrays, sub_arrays, strict=True):
            a[dead[better]] = b[: dead.size][better]
        final = final.copy()
        final[dead[better]] = scores[better]
        return [backend.to_tensor(a) for a in arrays], final, [keys[i] for i in dead[better]]

    def _current(self, values, ex=None):
        """The images the values draw, on the host (gathered from the replicas of `ex`)."""
        ex = ex or distribute_.Local()
        return ex.get(ex.call(self.param.draw, values)).astype("float32")


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
    >>> kv.optimize.revive_window(net, "block3_conv3", kv.feature_extractor(net, ["block3_conv3"]), (128, 128))
    (40, 40, 48, 48)
    """
    from kerasviz import data  # data imports this module

    if len(network.model.inputs) != 1 or any(d is not None for d in network.model.inputs[0].shape[1:3]):
        return None  # several inputs, or a fixed input size
    h, w = size
    try:
        field = data.receptive_field(network, layer, input_size=(h, w))
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


def _revive_objective(path: str, layer, s: presets.Preset) -> objectives.Objective:
    """The revive objective: the center neuron of each image's filter. Where the extractor made the
    layer's ReLU leaky, the neuron's linear pre-activation (`models.undo_leak`): with the leaky value,
    whose slope jumps 100-fold at zero, Adam oscillates around zero and rarely crosses it."""
    center = objectives.neuron(path)
    if not (s.pre_activation and models.leaks_under_pre_activation(layer)):
        return center  # no leak to undo: a plain output, or a softmax layer's logits
    return objectives.Objective(lambda c: models.undo_leak(center(c)), f"undo_leak({center.description})",
                                center.layers)


def _deprocess(raw: np.ndarray, s: presets.Preset, network) -> tuple[np.ndarray, float]:
    if s.input_space and isinstance(network.preprocess, models.Preprocessing) and network.preprocess.bgr:
        raw = raw[..., ::-1]  # show caffe models' BGR inputs as RGB
    if s.deprocess == "normalize":
        return images.deprocess(raw, std=s.deprocess_std, crop=s.crop), _clipped_normalized(raw, s)
    if s.deprocess == "clip":
        cropped = images.center_crop(raw, border=s.crop) if s.crop else raw
        return images.to_uint8(cropped), float(np.mean((cropped < 0) | (cropped > 1)))
    raise ValueError(f"deprocess must be 'clip' or 'normalize'. Received: {s.deprocess!r}.")


def _clipped_normalized(raw, s):
    axes = (1, 2, 3)
    x = (raw - raw.mean(axis=axes, keepdims=True)) / (raw.std(axis=axes, keepdims=True) + 1e-5)
    x = x * s.deprocess_std + 0.5
    return float(np.mean((x < 0) | (x > 1)))


def resolve_settings(preset: str | presets.Preset | None, overrides: dict) -> presets.Preset:
    """A preset with the overrides given (None values are ignored), checked.

    Args:
        preset: a preset name, a `Preset`, or None for the default.
        overrides: `Preset` fields to replace, e.g. `dict(size=64, steps=(8, 16))` (a tuple of steps also
            sets `octaves`; a new `size` scales the preset's crop).

    Returns:
        A `Preset`.

    Raises:
        ValueError: an unknown preset, or a field out of range (steps, octave_blur, revive_steps, size, crop).

    Example:
    >>> kv.optimize.resolve_settings("fast", dict(steps=(8, 16), size=None)).octaves
    2
    """
    base = presets.get(preset)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "transforms" in given:
        given["transforms"] = tuple(given["transforms"])
    if "param" in given:
        given["param"] = params.get(given["param"])
    if "update" in given and not isinstance(given["update"], str):
        given["update"] = updates.get(given["update"])  # a keras optimizer gets wrapped
    if isinstance(given.get("steps"), (list, tuple)):  # one count per octave
        given["steps"] = tuple(given["steps"])
        given.setdefault("octaves", len(given["steps"]))
    if "size" in given and "crop" not in given and base.crop and isinstance(given["size"], (int, np.integer)):
        given["crop"] = int(round(base.crop * given["size"] / base.size))  # the crop scales with the image
    s = dataclasses.replace(base, **given)
    counts = s.steps if isinstance(s.steps, tuple) else (s.steps,)
    if not counts or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in counts):
        raise ValueError("steps must be a positive int, or a tuple of positive ints (one per octave). "
                         f"Received: steps={s.steps!r}.")
    if isinstance(s.steps, tuple) and len(s.steps) != s.octaves:
        raise ValueError(f"steps gives {len(s.steps)} counts, one per octave, but octaves={s.octaves}. Pass "
                         f"{s.octaves} counts, or one int for every octave.")
    if not isinstance(s.octave_blur, (int, float, np.number)) or s.octave_blur < 0:
        raise ValueError(f"octave_blur must be a number >= 0 (pixels; 0 for none). Received: "
                         f"octave_blur={s.octave_blur!r}.")
    if not isinstance(s.revive_steps, (int, np.integer)) or s.revive_steps < 0:
        raise ValueError(f"revive_steps must be an int >= 0. Received: revive_steps={s.revive_steps!r}.")
    if not isinstance(s.size, (int, np.integer)) or s.size < 8:
        raise ValueError(f"size must be an int >= 8 (pixels). Received: size={s.size!r}.")
    if s.crop and 2 * s.crop >= s.size:
        raise ValueError(f"crop={s.crop} leaves nothing of a {s.size} px image.")
    return s


def resolve_filters(filters, n_channels: int, layer: str, default: int | None = DEFAULT_FILTER_COUNT) -> list[int]:
    """Filter indices from what the user wrote, checked against the layer's channels.

    Args:
        filters: an int, an iterable of ints, `"all"`, or None for the first `default`.
        n_channels: the layer's channel count.
        layer: the layer name (for the error message).
        default: how many filters None gives; None gives all. Defaults to 64 (the keras.io 8x8 atlas).

    Returns:
        A list of ints.

    Raises:
        ValueError: an empty list, an index out of range, or another string than `"all"`.

    Example:
    >>> kv.optimize.resolve_filters(range(3), 64, "block1_conv1")
    [0, 1, 2]
    """
    if filters is None:
        return list(range(n_channels if default is None else min(default, n_channels)))
    if isinstance(filters, str):
        if filters == "all":
            return list(range(n_channels))
        raise ValueError(f"filters must be an int, a list of ints or 'all'. Received: {filters!r}.")
    if isinstance(filters, (int, np.integer)):
        filters = [int(filters)]
    filters = [int(f) for f in filters]
    if not filters:
        raise ValueError("filters is empty: give at least one filter index.")
    bad = [f for f in filters if not 0 <= f < n_channels]
    if bad:
        raise ValueError(
            f"Filter {bad[0]} is out of range for layer {layer!r}, which has {n_channels} channels "
            f"(valid: 0-{n_channels - 1})."
        )
    return filters


def check_size(network, layer: str, size: int, pre_activation: bool = True, border: int = 0) -> None:
    """Raise a clear error when `size` px does not fit the model (a fixed input size) or is too small
    for `layer` (its map, less `border` positions at each edge, would be empty)."""
    fixed = tuple(network.model.inputs[network.image_input].shape[1:3])
    if all(d is not None for d in fixed) and fixed != (size, size):
        raise ValueError(
            f"{network.name} only takes {fixed[0]}x{fixed[1]} inputs; use size={fixed[0]} (and octaves=1), or "
            "build the model with keras.Input((None, None, channels)) to visualize at other sizes."
        )
    extractor = get_extractor(network, [layer], pre_activation)
    try:
        image = keras.KerasTensor((1, size, size, network.input_channels))
        if len(network.model.inputs) > 1:
            image = [image if i == network.image_input else
                     keras.KerasTensor((1,) + np.shape(network.other_inputs[i]), dtype=t.dtype)
                     for i, t in enumerate(network.model.inputs)]
        out = extractor.compute_output_spec(image)
    except Exception as e:
        raise ValueError(
            f"An image of {size} px is too small for layer {layer!r} of {network.name}: the layers "
            f"before it downsample it to nothing. Use a larger size. ({str(e).splitlines()[0][:120]})"
        ) from e
    out = out[0] if isinstance(out, (list, tuple)) else out
    if len(out.shape) == 4 and (not out.shape[1] or not out.shape[2] or min(out.shape[1:3]) <= 2 * border):
        raise ValueError(
            f"An image of {size} px gives layer {layer!r} a {out.shape[1]}x{out.shape[2]} map, too small to drop "
            f"{border} positions at each border; use a larger size."
        )


def render(
    model,
    objective: objectives.Objective,
    *,
    keys: Iterable[int] | None = None,
    batch: int | None = None,
    filters: Sequence[int] | None = None,
    init=None,
    preset: str | presets.Preset | None = None,
    seed: int = 0,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    **overrides,
) -> Result:
    """Optimize images for any objective (one batch): the general form of `visualize_filters`.

    Args:
        model: a model name, `keras.Model` or `Network`.
        objective: an `Objective` (see `kerasviz.objectives`); use `objectives.per_image` to give each
            image its own.
        keys: one key per image: seeds each image's random start and transforms (and is its
            `filters` entry unless `filters` is given). Defaults to `range(batch)`.
        batch: number of images when `keys` is None. Defaults to 1 (or `len(init)`).
        filters: the per-image channel for objectives that follow it. Defaults to `keys`.
        init: start from these images (`[batch, H, W, C]` in [0, 1]) instead of noise, e.g. a photo
            for DeepDream.
        preset: a preset name or `Preset`. Defaults to `"quality"`.
        seed: the random seed. Defaults to 0.
        progress: show a progress bar. Defaults to True.
        callbacks: `Callback` objects told about every step.
        **overrides: any `Preset` field (`size`, `steps`, `lr`, `param`, `transforms`, `update`, ...).

    Returns:
        A `Result`.

    Example:
    >>> dream = kv.render("VGG16", kv.objectives.deepdream("block4_conv3"), init=photo[None],
    ...                   weights="hed", steps=20)
    """
    weights = overrides.pop("weights", "imagenet")
    network = models.as_network(model, weights=weights)
    s = resolve_settings(preset, overrides)
    objective.validate(network)
    if init is not None:
        init = np.asarray(init, "float32")
        if init.ndim != 4 or init.shape[-1] != network.input_channels:
            raise ValueError(
                f"init must be a batch (N, H, W, {network.input_channels}) of images in [0, 1]. "
                f"Received shape {init.shape}."
            )
        if s.input_space and isinstance(network.preprocess, models.Preprocessing):
            init = network.preprocess(init)
        batch = len(init)
    keys = list(range(batch or 1)) if keys is None else [int(k) for k in keys]
    filters = keys if filters is None else list(filters)
    renderer = get_renderer(network, objective, s)
    cbs = _callbacks(progress, callbacks)
    return _run_chunks(renderer, network, s, [keys], [filters], seed, cbs, layer=None, init=init)


def _callbacks(progress, callbacks):
    cbs = list(callbacks or [])
    if progress:
        cbs.insert(0, ProgressBar())
    return cbs


def _run_chunks(renderer, network, s, key_chunks, filter_chunks, seed, cbs, *, layer, init=None, distribute=None):
    start = time.perf_counter()
    n_total = sum(len(c) for c in key_chunks)
    raws, finals, hists, done_keys, revived = [], [], [], [], []
    interrupted, finished = False, 0
    steps_total = sum(presets.octave_steps(s))
    with run_callbacks(cbs, n_items=n_total, steps=steps_total) as notify:
        for i, (keys, filt) in enumerate(zip(key_chunks, filter_chunks, strict=True)):
            def on_step(done, total, revive=(0, 0, 0), i=i, keys=keys):
                notify(StepRecord(step=done, steps=total, chunk=i, chunks=len(key_chunks),
                                  items_done=len(done_keys), items=n_total, reviving=revive[0],
                                  revive_step=revive[1], revive_steps=revive[2]))

            try:
                raw, final, hist, stopped, revived_keys = renderer.run(keys, filt, seed=seed, init=init,
                                                                       on_step=on_step, settings=s,
                                                                       distribute=distribute)
            except KeyboardInterrupt:
                interrupted = True
                break
            raws.append(raw)
            finals.append(final)
            hists.append(hist)
            done_keys.extend(keys)
            revived.extend(revived_keys)
            if stopped:
                interrupted = True
                break
            finished = len(done_keys)
            notify(StepRecord(step=steps_total, steps=steps_total, chunk=i, chunks=len(key_chunks),
                              items_done=len(done_keys), items=n_total))
    if interrupted:
        warnings.warn(f"Interrupted: returning {len(done_keys)} of {n_total} images, of which the first "
                      f"{finished} finished all steps.", stacklevel=3)
    if not raws:
        raise KeyboardInterrupt("Interrupted before any image was finished.")
    raw = np.concatenate(raws)
    steps = min(h.shape[0] for h in hists)
    hist = np.concatenate([h[:steps] for h in hists], axis=1)
    imgs, clipped = _deprocess(raw, s, network)
    settings = dataclasses.asdict(s)
    settings.update(param=repr(s.param), transforms=[t.name for t in s.transforms], seed=seed,
                    update=s.update if isinstance(s.update, str) else repr(s.update),
                    model=network.name, weights=network.weights,
                    objective=renderer.objective.description, backend=backend.name())
    return Result(images=imgs, activations=np.concatenate(finals), history=hist, filters=done_keys,
                  layer=layer, raw=raw, settings=settings, seconds=time.perf_counter() - start,
                  clipped=clipped, interrupted=interrupted, finished=finished, revived=revived)


def visualize_filters(
    model,
    layer: str,
    filters: int | Iterable[int] | str | None = None,
    *,
    preset: str | presets.Preset | None = None,
    size: int | None = None,
    steps: int | Sequence[int] | None = None,
    lr: float | None = None,
    param=None,
    transforms: Sequence | None = None,
    update: str | None = None,
    octaves: int | None = None,
    octave_scale: float | None = None,
    octave_blur: float | None = None,
    pre_activation: bool | None = None,
    revive_steps: int | None = None,
    objective: objectives.Objective | None = None,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    distribute=None,
    seed: int = 0,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    weights: str | None = "imagenet",
    preprocess=None,
    input_range: tuple[float, float] | None = None,
) -> Result:
    """Images that maximally excite filters of a layer, one per filter, optimized in batches.

    Each image is scored by the mean activation of its own filter and optimized by gradient ascent in
    one compiled step per shape; the model's preprocessing runs inside the step, so images stay in
    [0, 1] RGB (except for the `"keras-io"` preset, which works in the model's input space exactly as
    the tutorial does). A filter's picture depends only on the seed and the filter, not on the batch.

    Args:
        model: a `keras.applications` name (`"ResNet50V2"`), a `.keras` path, a `keras.Model`, or a
            `Network` from `get_model`.
        layer: the layer name (or `outer/inner` path).
        filters: an index, a list/range of indices, or `"all"`. Defaults to the first 64.
        preset: `"quality"` (default), `"fast"`, `"lucid"`, `"keras-io"` or `"blog2016"`, or a `Preset`.
        size, steps, lr, param, transforms, update, octaves, octave_scale, octave_blur, pre_activation, revive_steps:
            override the preset's fields (see `Preset`). `steps` may give one count per octave, e.g.
            `steps=(8, 16, 24)` (which sets `octaves=3` unless given). `revive_steps` gives the filters still at zero at
            the end extra steps on their center neuron (listed in `Result.revived`); 0 turns it off.
        objective: replaces the default `channel(layer)` objective; it must follow each image's filter
            (e.g. `objectives.channel(layer) - 0.05 * objectives.total_variation()`).
        batch_size: images per compiled batch. Defaults to what fits `memory_budget`.
        memory_budget: bytes of activations per batch for the automatic batch size. Defaults to 2 GiB.
        distribute: a `tf.distribute.Strategy` (e.g. `tf.distribute.MirroredStrategy()`): each batch is
            split across its replicas with `strategy.run` (TensorFlow backend; the automatic batch size
            is then per replica). The pictures are the same as on one device. Defaults to None.
        seed: random seed; the same seed gives the same pictures. Defaults to 0.
        progress: show a progress bar (a widget in Jupyter). Defaults to True.
        callbacks: extra `Callback` objects.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        preprocess: the model's preprocessing, for a `keras.Model` (a family name or a callable).
        input_range: `(low, high)` input range, for a `keras.Model` that takes scaled images.

    Returns:
        A `Result` with `images` (uint8), `activations`, `history` and the settings.

    Raises:
        ValueError: unknown model or layer, a filter out of range, a layer without channels, a size too
            small for the layer, or `steps <= 0`.

    Example:
    >>> result = kv.visualize_filters("VGG16", "block3_conv3", range(16), weights="hed")
    >>> kv.save_image(kv.stitch(result.images), "atlas.png")
    """
    network = models.as_network(model, weights=weights, preprocess=preprocess, input_range=input_range)
    path, layer_obj = models.find_layer(network, layer)
    n_channels = models.channels_of(network, path)
    filters = resolve_filters(filters, n_channels, path)
    s = resolve_settings(preset, dict(size=size, steps=steps, lr=lr, param=param, transforms=transforms,
                                       update=update, octaves=octaves, octave_scale=octave_scale,
                                       octave_blur=octave_blur, pre_activation=pre_activation,
                                       revive_steps=revive_steps))
    check_size(network, path, min(octave_sizes(s.size, s.octaves, s.octave_scale)[0]), s.pre_activation, s.border)
    obj = objective if objective is not None else objectives.channel(path, border=s.border)
    obj.validate(network)
    revive = _revive_objective(path, layer_obj, s) if objective is None else None  # compiled only when used
    renderer = get_renderer(network, obj, s, revive=revive)
    ex = distribute_.executor(distribute)
    if batch_size is None:
        batch_size = ex.replicas * estimate_batch_size(renderer.extractor, (s.size, s.size), network.input_channels,
                                                       memory_budget or DEFAULT_MEMORY_BUDGET)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}.")
    chunks = split_batches(filters, batch_size)
    return _run_chunks(renderer, network, s, chunks, chunks, seed, _callbacks(progress, callbacks),
                       layer=path, distribute=distribute)
