"""Activation maximization: images that a model's units respond to most, optimized by gradient ascent.

The method, in the order one step runs it (compiled once per shape by `kerasviz.engine.render`):

1. a parameterization (`kerasviz.engine.params`: Fourier or pixels, decorrelated colors) draws the images
   from the values optimized;
2. random transforms (`kerasviz.engine.transforms`: jitter, scale, rotation) move each image a little, so
   that only features that survive them are kept;
3. the model's own preprocessing maps the [0, 1] RGB images to its inputs (inside the step);
4. the model (a feature extractor up to the layers read) computes the activations;
5. the objective (`kerasviz.engine.objectives`: by default each image's own channel) scores each image;
6. an update rule (`kerasviz.engine.updates`: Adam, L2-normalized or RMS steps) moves the values up the
   gradient of the score.

Octaves grow the images between rounds of steps; at the end, filters that still score <= 0 get revive steps
on their center neuron. `plan` resolves all of this once (network, layer, filters, settings, compiled steps,
where the batches run); `Plan.run` runs any chunk of it; `visualize_filters` and `render` are the two entry
points; they return a `Result`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from kerasviz import names, nets
from kerasviz.engine import backend, objectives, presets
from kerasviz.engine import distribute as distribute_
from kerasviz.engine import render as rendering
from kerasviz.engine import result as results
from kerasviz.engine.fitting import check_size, fit_size
from kerasviz.engine.progress import Callback, ProgressBar, StepRecord, run_callbacks
from kerasviz.engine.result import Result

NETWORK_OPTIONS = ("weights", "preprocess", "input_range", "image_input", "other_inputs")  # for nets.as_network


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, apart from what it draws: the options that travel together from an entry
    point (`visualize_filters`, `render`, the atlases) to its plans.

    Attributes:
        batch_size: images per compiled batch, per replica of a Strategy. None: what fits `memory_budget`.
        memory_budget: bytes of activations (and their gradients) per batch for the automatic batch size.
            None: `kerasviz.engine.render.DEFAULT_MEMORY_BUDGET` (2 GiB).
        distribute: where the batches run (see `kerasviz.distribute.read`): None (the default device), a
            `tf.distribute.Strategy` (its replicas split each batch) or, for the atlases, a
            `kv.distribute.Ray(...)`. The pictures are the same everywhere.
        seed: the random seed; the same seed gives the same pictures.
        block_steps: steps per compiled call: None chooses them from the model's activation size; 1 runs the
            step loop (see `kerasviz.engine.render.Schedule`).
        tokens: on a token layer (a transformer's `(batch, tokens, channels)`), what a filter's default objective
            averages: `"patches"` (the patch tokens), `"all"` (class and register tokens too) or `"class"` (the
            class token alone). Defaults to `"patches"` (see `objectives.channel`).
        extra_tokens: the class/register tokens before a token layer's patch tokens. None: detected from the
            token count against the image's shape (`nets.token_grid`).

    Raises:
        ValueError: a `batch_size`, `memory_budget`, `seed` or `block_steps` that is not a whole number in range.

    Example:
    >>> kv.optimize.RunOptions(batch_size=8, seed=3).seed
    3
    """

    batch_size: int | None = None
    memory_budget: int | None = None
    distribute: Any = None
    seed: int = 0
    block_steps: int | None = None
    tokens: str = "patches"
    extra_tokens: int | None = None

    def keywords(self, **changes) -> dict:
        """These options as keywords for another entry point (`plan`, `render`, ...), with `changes` applied."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, **changes}

    def __post_init__(self):
        for name, low in (("batch_size", 1), ("memory_budget", 1), ("seed", 0)):
            value = getattr(self, name)
            if value is None and name != "seed":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}{'' if name == 'seed' else ' or None'}. "
                                 f"Received: {name}={value!r}.")
        rendering.Schedule(size=8, steps=(1,), lr=0.0, block_steps=self.block_steps)  # checks block_steps
        nets.tokens.check_tokens(self.tokens)
        nets.tokens.check_extra_tokens(self.extra_tokens)


def split_options(model, options: dict) -> tuple[nets.Network, RunOptions, dict]:
    """An entry point's keyword options, each where it goes: `NETWORK_OPTIONS` build the `Network` (once: what is
    passed on is the network), the `RunOptions` fields make the run options, and the rest are `Preset` overrides.

    Args:
        model: a model name, model file, `keras.Model` or `Network`.
        options: the keyword options.

    Returns:
        `(network, run_options, overrides)`.

    Raises:
        TypeError: a name that is none of these (the message suggests close names).
        ValueError: a bad value (see `RunOptions`, `nets.as_network`).

    Example:
    >>> net, run, overrides = kv.optimize.split_options("VGG16", dict(weights="hed", seed=2, size=64))
    >>> run.seed, overrides
    (2, {'size': 64})
    """
    rest = dict(options)
    run_names = [f.name for f in dataclasses.fields(RunOptions)]
    settings = [f.name for f in dataclasses.fields(presets.Preset)]
    known = [*NETWORK_OPTIONS, *run_names, *settings]
    unknown = [k for k in rest if k not in known]
    if unknown:
        raise TypeError(f"Unknown setting {unknown[0]!r}.{names.did_you_mean(unknown[0], known)} Options are the "
                        f"model's ({', '.join(NETWORK_OPTIONS)}), the run's ({', '.join(run_names)}) and the Preset "
                        f"fields ({', '.join(settings)}).")
    network_options = {k: rest.pop(k) for k in NETWORK_OPTIONS if k in rest}
    run = RunOptions(**{k: rest.pop(k) for k in run_names if k in rest})
    return nets.as_network(model, **network_options), run, rest


@dataclasses.dataclass
class Plan:
    """Everything a run needs, resolved once: call `run(items)` per chunk, as often as needed.

    Built by `plan`. Every entry point that optimizes (`visualize_filters`, `render`, atlases, the
    training callback, caricatures, dreams, the figures) builds one plan and runs it, so the network,
    layer, filters, settings, size check and compiled steps are resolved once per call, not per chunk.

    Attributes:
        network: the `Network` (model, preprocessing, image input).
        layer: the layer path, or None for an objective given on its own (`render`).
        items: the filters (or keys) the plan covers when `run` is given none.
        objective: the `Objective` optimized.
        settings: the `Preset` with the overrides applied.
        seed: the random seed.
        batch_size: images per compiled batch (for all replicas of a Strategy together).
        renderer: the compiled machinery (`kerasviz.engine.render.Renderer`).
        schedule: what the renderer reads at each run (`kerasviz.engine.render.Schedule`: the untraced settings
            and the steps per compiled call).
        executor: where the batches run (`kerasviz.distribute.read`), built once for every chunk.
        revive: the revive objective (the center neuron), or None.
        note: what was adapted to a model with a fixed input size (see `fit_size`), or None; printed once
            when the plan is made.
    """

    network: nets.Network
    layer: str | None
    items: list
    objective: objectives.Objective
    settings: presets.Preset
    seed: int
    batch_size: int
    renderer: rendering.Renderer
    schedule: rendering.Schedule
    executor: Any = dataclasses.field(default_factory=distribute_.Local)
    revive: objectives.Objective | None = None
    note: str | None = None

    def chunks(self, items: Sequence | None = None) -> list[list]:
        """`items` (default: the plan's) in batches of at most `batch_size`, as even as possible."""
        items = list(self.items if items is None else items)
        return rendering.split_batches(items, self.batch_size) if items else []

    def run(
        self,
        items: Iterable | None = None,
        *,
        filters: Sequence | None = None,
        init=None,
        seed: int | None = None,
        progress: bool = False,
        callbacks: Sequence[Callback] | None = None,
    ) -> Result:
        """Optimize `items` (filter indices or keys; default: the plan's), in chunks of `batch_size`.

        Args:
            items: one key per image: it seeds the image's start and transforms, and is its filter
                unless `filters` is given. Defaults to the plan's `items`.
            filters: the per-image channel for objectives that follow it. Defaults to `items`.
            init: start from these images (`[N, H, W, C]` in [0, 1], one per item) instead of noise.
            seed: the random seed. Defaults to the plan's.
            progress: show a progress bar. Defaults to False.
            callbacks: `Callback` objects told about every step.

        Returns:
            A `Result`: after Ctrl-C, the items that ran all their steps (`interrupted` set, the others in
            `unfinished`); it warns of nothing (the entry points do: `kerasviz.engine.result.report`).

        Raises:
            ValueError: `init` of the wrong shape, or `filters` not one per item.
            KeyboardInterrupt: Ctrl-C before any item finished.
        """
        keys = [int(k) for k in (self.items if items is None else items)]
        per_image = keys if filters is None else list(filters)
        if len(per_image) != len(keys):
            raise ValueError(f"filters gives {len(per_image)} entries for {len(keys)} items: give one per item.")
        if init is not None:
            init = _check_init(init, self.network, len(keys))
            if self.settings.input_space and isinstance(self.network.preprocess, nets.Preprocessing):
                init = self.network.preprocess(init)
        key_chunks = self.chunks(keys)
        sizes = [len(c) for c in key_chunks]
        bounds = np.cumsum([0] + sizes)
        filter_chunks = [per_image[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        init_chunks = [None if init is None else init[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return _run_chunks(self, key_chunks, filter_chunks, init_chunks, self.seed if seed is None else seed,
                           _callbacks(progress, callbacks))


def _check_init(init, network, n: int) -> np.ndarray:
    init = np.asarray(init, "float32")
    if init.ndim != 4 or init.shape[-1] != network.input_channels or len(init) != n:
        raise ValueError(
            f"init must be a batch ({n}, H, W, {network.input_channels}) of images in [0, 1], one per image. "
            f"Received shape {init.shape}."
        )
    return init


def plan(
    model,
    layer: str | None = None,
    filters: int | Iterable[int] | str | None = None,
    *,
    objective: objectives.Objective | None = None,
    preset: str | presets.Preset | None = None,
    **options,
) -> Plan:
    """Resolve a run once: the network, the layer and its filters, the settings, the objective, the
    compiled renderer and where the batches run. `plan(...).run()` is `visualize_filters(...)`; `run(chunk)`
    runs any part.

    Args:
        model: a `keras.applications` name (`"ResNet50V2"`), a model file path, a `keras.Model`, or a
            `Network` from `get_model`.
        layer: the layer name (or `outer/inner` path) whose filters are visualized. None when `objective`
            stands alone (as for `render`).
        filters: with `layer`: an index, a list/range of indices, or `"all"`; defaults to the first 64.
            Without: the keys of the images (their seeds); defaults to `[0]`.
        objective: replaces the default `channel(layer)` objective; with a layer it must follow each
            image's filter (e.g. `objectives.channel(layer) - 0.05 * objectives.total_variation()`).
        preset: `"quality"` (default), `"fast"`, `"lucid"`, `"keras-io"` or `"blog2016"`, or a `Preset`.
        **options: the model's options (`weights`, default `"imagenet"`, for a model given by name;
            `preprocess` and `input_range` for a `keras.Model`; `image_input` and `other_inputs` for a model
            with several inputs: see `nets.as_network`); the run's options
            (`batch_size`, `memory_budget`, `distribute`, `seed`, `block_steps`: see `RunOptions`); and
            `Preset` fields to override: `size`, `steps` (one int, or one per octave), `lr`, `param`,
            `transforms`, `update`, `octaves`, `octave_scale`, `octave_blur`, `border`, `pre_activation`,
            `revive_steps`, ... (see `Preset`). None leaves a field as the preset has it.

    Returns:
        A `Plan`.

    Raises:
        ValueError: an unknown model or layer, a model whose input is not an image, the model's input layer,
            a filter out of range, bad settings, a size that does not fit the model or is too small for the
            layer, or `distribute=kv.distribute.Ray(...)` (Ray runs atlases: `kv.layer_atlas`, `kv.model_atlas`).
        TypeError: an unknown option (the message suggests close names), a bad `distribute`, or neither
            `layer` nor `objective`.

    Example:
    >>> p = kv.optimize.plan("VGG16", "block3_conv3", range(4), weights="hed", preset="fast", size=32, steps=2)
    >>> first = p.run(p.items[:2]); rest = p.run(p.items[2:])
    >>> len(first) + len(rest)
    4
    """
    network, run, overrides = split_options(model, options)
    _check_image_input(network)
    executor = distribute_.read(run.distribute, ray=False)
    revive = None
    if layer is not None:
        path, layer_obj = nets.find_layer(network, layer)
        _check_layer(network, path, layer_obj)
        items = nets.resolve_filters(filters, nets.channels_of(network, path), path)
        s = presets.resolve_settings(preset, overrides)
        obj = objective if objective is not None else _default_objective(path, s, run)
        if objective is None:
            revive = rendering.revive_objective(path, layer_obj, s, run.extra_tokens)  # compiled only when used
    elif objective is None:
        raise TypeError("plan needs a layer (its filters are visualized) or an objective. Received neither.")
    else:
        path, obj = None, objective
        items = [0] if filters is None else [int(k) for k in np.atleast_1d(filters)]
        s = presets.resolve_settings(preset, overrides)
    if not isinstance(obj, objectives.Objective):
        raise TypeError(f"objective must be an Objective (see kerasviz.objectives). Received: {obj!r}.")
    reads = [path] if path is not None else list(obj.layers)
    note = None
    if reads:
        s, note = fit_size(network, reads, s, preset=preset, overrides=overrides)
        note = nets.notes_for(network, reads, s.pre_activation, note)  # the input range read, inputs held at zeros
    if path is not None:
        check_size(network, path, min(rendering.octave_sizes(s.size, s.octaves, s.octave_scale)[0]), s.pre_activation,
                   s.border)
    obj.validate(network)
    _check_input_space(network, s)
    renderer = rendering.get_renderer(network, obj, s, revive=revive)
    if path is not None and not renderer.extractor.weights:
        warnings.warn(f"Layer {path!r} of {network.name} has no learned weights before it: its channels are the "
                      "image's colors, remapped, so their pictures are flat colors. Use a layer after a "
                      f"convolution, e.g. {_first_conv(network)}.", stacklevel=3)
    per_replica = run.batch_size or rendering.estimate_batch_size(
        renderer.extractor, (s.size, s.size), network.input_channels,
        run.memory_budget or rendering.DEFAULT_MEMORY_BUDGET)
    for line in (note or "").splitlines():
        print(f"kerasviz: note: {line}", file=sys.stderr)
    return Plan(network=network, layer=path, items=items, objective=obj, settings=s, seed=int(run.seed),
                batch_size=executor.replicas * int(per_replica), renderer=renderer,
                schedule=rendering.Schedule.of(s, run.block_steps), executor=executor, revive=revive, note=note)


def _default_objective(path: str, s: presets.Preset, run: RunOptions) -> objectives.Objective:
    """`channel(path)` following each image's filter, with the token options where they differ from the default."""
    tokens = {k: v for k, v in (("tokens", run.tokens), ("extra_tokens", run.extra_tokens))
              if v != RunOptions.__dataclass_fields__[k].default}
    return objectives.channel(path, border=s.border, **tokens)


def _check_image_input(network) -> None:
    shape = tuple(network.model.inputs[network.image_input].shape)
    if len(shape) != 4:
        raise ValueError(f"kerasviz draws images: this model's input is {shape}, not an image (batch, height, "
                         "width, channels). Give a model whose input is an image.")


def _first_conv(network) -> str:
    convs = nets.conv_layers(network)
    return repr(convs[0]) if convs else "a convolution layer"


def _check_layer(network, path: str, layer) -> None:
    """Refuse a layer whose channels are the image's own: the model's input."""
    if isinstance(layer, keras.layers.InputLayer):
        raise ValueError(f"Layer {path!r} is the input of {network.name}: its channels are the image's colors, "
                         "which no picture maximizes but a flat one. Use a layer with learned weights, e.g. "
                         f"{_first_conv(network)} (`kerasviz layers` lists them).")


def _check_input_space(network, s: presets.Preset) -> None:
    """Warn where a preset that optimizes the model's input directly (keras-io) starts from noise made for
    ResNet50V2's [-1, 1] inputs and the model reads another range."""
    pre = network.preprocess
    if not s.input_space or not isinstance(pre, nets.Preprocessing):
        return
    low, high = np.asarray(pre.offset), np.asarray(pre.offset) + np.asarray(pre.scale)
    if not (np.allclose(low, -1) and np.allclose(high, 1)):
        warnings.warn(f"The keras-io preset's start is made for ResNet50V2's [-1, 1] inputs; {network.name} reads "
                      f"{pre.name} inputs, so its pictures may stay noise. Use preset='quality' or 'fast'.",
                      stacklevel=4)


def render(
    model,
    objective: objectives.Objective,
    *,
    keys: Iterable[int] | None = None,
    batch: int | None = None,
    filters: Sequence[int] | None = None,
    init=None,
    preset: str | presets.Preset | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    **options,
) -> Result:
    """Optimize images for any objective (one batch): the general form of `visualize_filters`.

    Args:
        model: a model name, model file, `keras.Model` or `Network`.
        objective: an `Objective` (see `kerasviz.objectives`); use `objectives.per_image` to give each
            image its own.
        keys: one key per image: seeds each image's random start and transforms (and is its
            `filters` entry unless `filters` is given). Defaults to `range(batch)`.
        batch: number of images when `keys` is None. Defaults to 1 (or `len(init)`).
        filters: the per-image channel for objectives that follow it. Defaults to `keys`.
        init: start from these images (`[batch, H, W, C]` in [0, 1]) instead of noise, e.g. a photo
            for DeepDream.
        preset: a preset name or `Preset`. Defaults to `"quality"`.
        progress: show a progress bar. Defaults to True.
        callbacks: `Callback` objects told about every step.
        **options: the model's options (`weights`, `preprocess`, `input_range`, `other_inputs`), the run's (`seed`,
            `distribute`, ...: see `RunOptions`) and `Preset` fields (`size`, `steps`, `lr`, `param`,
            `transforms`, `update`, ...), as in `plan`.

    Returns:
        A `Result`.

    Raises:
        ValueError: bad settings, or `init` that is not a batch of images.
        TypeError: an unknown option.

    Example:
    >>> photo = kv.load_image("cat.jpg", size=(64, 64))
    >>> dream = kv.render("VGG16", kv.objectives.deepdream("block4_conv3"), init=photo[None],
    ...                   weights="hed", steps=2, progress=False)
    >>> dream.images.shape
    (1, 64, 64, 3)
    """
    if init is not None:
        batch = len(np.asarray(init))
    keys = list(range(batch or 1)) if keys is None else [int(k) for k in keys]
    p = plan(model, objective=objective, filters=keys, preset=preset, **{"batch_size": max(1, len(keys)), **options})
    result = p.run(keys, filters=filters, init=init, progress=progress, callbacks=callbacks)
    results.report(result)
    return result


def _callbacks(progress, callbacks):
    cbs = list(callbacks or [])
    if progress:
        cbs.insert(0, ProgressBar())
    return cbs


def _run_chunks(plan: Plan, key_chunks, filter_chunks, init_chunks, seed, cbs) -> Result:
    """Run every chunk; the filters whose steps all ran make the `Result`. Ctrl-C at any point stops the run:
    the chunk in flight keeps only its finished filters (those done before revive steps that were cut)."""
    renderer, network, s = plan.renderer, plan.network, plan.settings
    start = time.perf_counter()
    everything = [k for keys in key_chunks for k in keys]
    parts = []  # per chunk, its finished filters' (keys, images, scores, history, revived, alpha): one append each
    interrupted = False
    steps_total = sum(presets.octave_steps(s))
    with run_callbacks(cbs, n_items=len(everything), steps=steps_total) as notify:
        try:
            for i, (keys, filt, init) in enumerate(zip(key_chunks, filter_chunks, init_chunks, strict=True)):
                def on_step(n, total, revive=(0, 0, 0), i=i):
                    notify(StepRecord(step=n, steps=total, chunk=i, chunks=len(key_chunks),
                                      items_done=sum(len(p[0]) for p in parts), items=len(everything),
                                      reviving=revive[0], revive_step=revive[1], revive_steps=revive[2]))

                batch = renderer.run(keys, filt, plan.schedule, seed=seed, init=init, on_step=on_step,
                                     executor=plan.executor)
                keep = [j for j, k in enumerate(keys) if k not in batch.unfinished]
                if keep:
                    kept = [keys[j] for j in keep]
                    parts.append((kept, batch.images[keep], batch.scores[keep], batch.history[:, keep],
                                  [k for k in batch.revived if k in kept],
                                  None if batch.alpha is None else batch.alpha[keep]))
                if batch.interrupted:
                    interrupted = True
                    break
                notify(StepRecord(step=steps_total, steps=steps_total, chunk=i, chunks=len(key_chunks),
                                  items_done=sum(len(p[0]) for p in parts), items=len(everything)))
        except KeyboardInterrupt:  # anywhere but in the steps (which the renderer catches): the same
            interrupted = True
    if not parts:  # nothing to return: the interruption goes on up (a dream, a training callback stop too)
        what = "filters" if plan.layer is not None else "images"
        raise KeyboardInterrupt(f"Interrupted: 0 of {len(everything)} {what} finished.")
    done, revived = [k for p in parts for k in p[0]], [k for p in parts for k in p[4]]
    raw, scores = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    imgs, clipped = results.deprocess(raw, s, network)
    dead, flat = results.check(done, imgs, scores, layer=plan.layer)
    settings = presets.to_dict(s)
    settings.update(seed=seed, model=network.name, weights=network.weights,
                    objective=renderer.objective.description, backend=backend.name())
    finished = set(done)
    return Result(images=imgs, scores=scores, history=np.concatenate([p[3] for p in parts], axis=1), filters=done,
                  layer=plan.layer, raw=raw, settings=settings, seconds=time.perf_counter() - start,
                  clipped=clipped, interrupted=interrupted, unfinished=[k for k in everything if k not in finished],
                  revived=revived, dead=dead, flat=flat, alpha=results.crop_alpha([p[5] for p in parts], s))


def visualize_filters(
    model,
    layer: str,
    filters: int | Iterable[int] | str | None = None,
    *,
    preset: str | presets.Preset | None = None,
    objective: objectives.Objective | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = None,
    **options,
) -> Result:
    """Images that maximally excite filters of a layer, one per filter, optimized in batches.

    Each image is scored by the mean activation of its own filter and optimized by gradient ascent in
    one compiled step per shape; the model's preprocessing runs inside the step, so images stay in
    [0, 1] RGB (except for the `"keras-io"` preset, which works in the model's input space exactly as
    the tutorial does). A filter's picture depends only on the seed and the filter, not on the batch.

    Args:
        model: a `keras.applications` name (`"ResNet50V2"`), a model file path, a `keras.Model`, or a
            `Network` from `get_model`.
        layer: the layer name (or `outer/inner` path).
        filters: an index, a list/range of indices, or `"all"`. Defaults to the first 64.
        preset: `"quality"` (default), `"fast"`, `"lucid"`, `"keras-io"` or `"blog2016"`, or a `Preset`.
        objective: replaces the default `channel(layer)` objective; it must follow each image's filter
            (e.g. `objectives.channel(layer) - 0.05 * objectives.total_variation()`).
        progress: show a progress bar (a widget in Jupyter). Defaults to True.
        callbacks: extra `Callback` objects.
        **options: keyword options, each where it goes (see `split_options`):

            - the model's: `weights` (for a model given by name; defaults to `"imagenet"`), `preprocess`
              (a family name or a callable) or `input_range` (`(low, high)`), for a `keras.Model`; `image_input`
              and `other_inputs` (`{name: one example}`; zeros and a note by default) for several inputs;
            - the run's (`RunOptions`): `batch_size` (per replica; defaults to what fits `memory_budget`),
              `distribute` (None, or a `tf.distribute.Strategy` whose replicas split each batch: the same
              pictures), `seed` (the same seed, the same pictures; defaults to 0), `block_steps`;
            - `Preset` fields: `size`, `steps`, `lr`, `param`, `transforms`, `update`, `octaves`,
              `octave_scale`, `octave_blur`, `pre_activation`, `revive_steps`, ... `steps` may give one
              count per octave, e.g. `steps=(8, 16, 24)` (which sets `octaves=3` unless given).
              `revive_steps` gives the filters still at zero at the end extra steps on their center
              neuron (listed in `Result.revived`); 0 turns it off.

    Ctrl-C stops the run at any point and returns the filters that ran all their steps, with a warning saying
    how many (the others are in `Result.unfinished`; with none finished, the `KeyboardInterrupt` goes on).
    Filters that end dead (score <= 0) or flat (a nearly uniform picture) are listed in `Result.dead` and
    `Result.flat` and named in one warning line.

    Returns:
        A `Result` with `images` (uint8), `scores`, `history` and the settings.

    Raises:
        ValueError: unknown model or layer, a model whose input is not an image, the model's input layer, a
            filter out of range, a layer without channels, a size too small for the layer, `steps <= 0`, or
            `distribute=kv.distribute.Ray(...)` (Ray runs atlases: `kv.layer_atlas`, `kv.model_atlas`,
            `kerasviz gallery --ray`).
        TypeError: an unknown option (the message suggests close names).

    Example:
    >>> result = kv.visualize_filters("VGG16", "block3_conv3", range(4), weights="hed", preset="fast",
    ...                               size=32, steps=4, progress=False)
    >>> kv.save_image(kv.stitch(result.images), "atlas.png")
    'atlas.png'
    >>> result.images.shape
    (4, 32, 32, 3)
    """
    p = plan(model, layer, filters, objective=objective, preset=preset, **options)
    result = p.run(progress=progress, callbacks=callbacks)
    results.report(result)
    return result
