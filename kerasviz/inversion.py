"""Images optimized from a photo: caricatures (feature inversion) and DeepDream.

A caricature is a picture whose activations at chosen layers match a photo's. The picture is optimized
with the usual pipeline (parameterization, random transforms, the model's preprocessing inside the compiled
step) to maximize the cosine similarity between its activations and the photo's, computed once. From noise
it shows what the layers keep of the photo; from the photo with `exaggerate > 0` it pushes further along
the photo's own activations: a caricature. DeepDream (`dream`) starts from the photo and changes it, octave
by octave, so that a layer (or any objective) fires more.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from keras import ops

from kerasviz import analysis, images, nets, optimize
from kerasviz.engine import objectives, params, presets, transforms
from kerasviz.engine import render as rendering

COSINE_EPS = 1e-8

# DeepDream defaults: the keras.io example's 3 octaves of scale 1.4 and 20 steps per octave; the step
# moves pixels by `DREAM_LR` (in [0, 1] units) per step on average, the RMS-normalized update of the
# 2016 blog; a small random shift per step keeps the grid of the strided layers out of the picture.
DREAM_STEPS = 20
DREAM_LR = 0.01
DREAM_OCTAVES = 3
DREAM_OCTAVE_SCALE = 1.4
DREAM_JITTER = 4
MIN_DREAM_SIZE = 8  # the smallest octave, in pixels

DreamTarget = str | Sequence[str] | Mapping[str, float] | objectives.Objective


@dataclasses.dataclass
class Caricature:
    """What `caricature` returns.

    Attributes:
        image: uint8 `(H, W, C)`, the optimized picture.
        original: float32 `(H, W, C)` in [0, 1], the photo as the model saw it (resized).
        layers: the layers matched.
        similarity_before: mean cosine similarity over `layers` between the starting picture (the noise,
            or the photo) and the photo, without transforms.
        similarity_after: the same for the final picture.
        per_layer_before: layer -> cosine similarity at the start.
        per_layer_after: layer -> cosine similarity at the end.
        result: the `Result` of the run (history, settings, raw image).
    """

    image: np.ndarray
    original: np.ndarray
    layers: list[str]
    similarity_before: float
    similarity_after: float
    per_layer_before: dict
    per_layer_after: dict
    result: optimize.Result

    def __repr__(self):
        return (f"Caricature(layers={self.layers}, similarity {self.similarity_before:.3f} -> "
                f"{self.similarity_after:.3f})")


def _resize_like(target, acts):
    """The fixed activations `target` `[1, h, w, C]` resized to the spatial size of `acts` (octaves and
    image sizes change it); dense activations pass unchanged."""
    if len(acts.shape) != 4 or tuple(target.shape[1:3]) == tuple(acts.shape[1:3]):
        return target
    return ops.image.resize(target, tuple(int(s) for s in acts.shape[1:3]), interpolation="bilinear")


def _cosine(acts, target):
    """Cosine similarity per image between `acts` `[B, ...]` and `target` `[1, ...]`."""
    a = ops.reshape(ops.cast(acts, "float32"), (ops.shape(acts)[0], -1))
    t = ops.reshape(ops.cast(target, "float32"), (1, -1))
    dot = ops.sum(a * t, axis=1)
    norms = ops.sqrt(ops.sum(ops.square(a), axis=1)) * ops.sqrt(ops.sum(ops.square(t)))
    return dot / (norms + COSINE_EPS)


def match_objective(targets: dict, *, exaggerate: float = 0.0) -> objectives.Objective:
    """The mean over layers of the cosine similarity between a picture's activations and fixed ones.

    Args:
        targets: layer name -> activations `[1, h, w, C]` (or `[1, C]`) to match, e.g. a photo's.
        exaggerate: also add this times the projection of the activations on the target's, relative to
            the target's norm (1 at the target), which rewards going past it. Defaults to 0 (cosine only).

    Returns:
        An `Objective`.
    """
    layers = list(targets)
    fixed = {k: np.asarray(v, "float32") for k, v in targets.items()}
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(fixed[k]).tobytes() for k in layers)).hexdigest()[:10]

    def fn(c: objectives.Context):
        total = 0.0
        for layer in layers:
            acts = c.acts[layer]
            target = _resize_like(ops.convert_to_tensor(fixed[layer]), acts)
            total = total + _cosine(acts, target)
            if exaggerate:
                a = ops.reshape(ops.cast(acts, "float32"), (ops.shape(acts)[0], -1))
                t = ops.reshape(target, (1, -1))
                total = total + exaggerate * ops.sum(a * t, axis=1) / (ops.sum(ops.square(t)) + COSINE_EPS)
        return total / len(layers)

    extra = f", exaggerate={exaggerate:g}" if exaggerate else ""
    # the key, with the photo's digest, lets two calls on the same photo share the compiled steps
    return objectives.Objective(fn, f"match({', '.join(map(repr, layers))}{extra})", tuple(layers),
                                key=("match", tuple(layers), digest, float(exaggerate)))


def _activations(network, layers: Sequence[str], batch: np.ndarray, pre_activation: bool) -> dict:
    extractor = nets.get_extractor(network, list(layers), pre_activation)
    x = network.preprocess(np.asarray(batch, "float32"))
    outs = extractor(network.model_inputs(x, extractor), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {layer: np.asarray(ops.convert_to_numpy(o), "float32") for layer, o in zip(layers, outs, strict=True)}


def _similarities(network, layers, picture: np.ndarray, targets: dict, pre_activation: bool) -> dict:
    acts = _activations(network, layers, picture[None], pre_activation)
    return {
        layer: float(ops.convert_to_numpy(_cosine(acts[layer], _resize_like(targets[layer], acts[layer])))[0])
        for layer in layers
    }


def caricature(
    model,
    layers: str | Sequence[str],
    image,
    from_image: bool = False,
    *,
    preset: str | presets.Preset | None = None,
    exaggerate: float = 0.0,
    progress: bool = False,
    **options,
) -> Caricature:
    """Optimize a picture whose activations at `layers` match those of `image` (cosine similarity).

    The photo's activations are computed once; the picture starts from noise (or from the photo) and
    is optimized with the preset's pipeline (parameterization, random transforms, octaves) by
    `kv.render`. Where the picture's activation map is smaller than the photo's (first octaves), the
    photo's is resized to it.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layers: a layer name or a list of them; the score is the mean cosine over them.
        image: a file path, a PIL image or an array `(H, W, C)` in [0, 1] (or uint8).
        from_image: start from the photo instead of noise. Defaults to False.
        preset: a preset name or `Preset` (not an input-space one). Defaults to `"quality"`.
        exaggerate: weight of an extra term that rewards activations past the photo's along its own
            direction (see `match_objective`); try 0.2 with `from_image=True`. Defaults to 0.
        progress: show a progress bar. Defaults to False.
        **options: as in `kv.visualize_filters`: the model options (`weights`, `preprocess`,
            `input_range`, `other_inputs`), the run options (`seed`, ...) and `Preset` fields (`steps` per
            octave, `size`: the side the photo is resized to and of the picture, `lr`, `transforms`, `octaves`, ...).

    Returns:
        A `Caricature`: the picture and the similarity before and after.

    Raises:
        ValueError: an unknown layer, an image that cannot be read, an input-space preset.

    Example:
    >>> c = kv.inversion.caricature("VGG16", "block3_conv3", "cat.jpg", weights="hed", preset="fast", size=48,
    ...                             steps=4)
    >>> kv.save_image(c.image, "cat_caricature.png"), bool(c.similarity_after > c.similarity_before)
    ('cat_caricature.png', True)
    """
    network, run, given = optimize.split_options(model, options)
    seed = run.seed
    layer_names = [layers] if isinstance(layers, str) else list(layers)
    if not layer_names:
        raise ValueError("layers is empty: give at least one layer name.")
    layer_names = [nets.find_layer(network, name)[0] for name in layer_names]
    base = presets.get(preset)
    settings = presets.resolve_settings(base, given)
    settings, _ = optimize.fit_size(network, layer_names, settings, preset=base, overrides=given)  # noted by plan
    if settings.input_space:
        raise ValueError("caricature optimizes [0, 1] images; choose a preset without input_space "
                         f"(e.g. 'quality' or 'fast'). Received: preset={preset!r}.")
    side = settings.size
    photo = images.load_image(image, size=(side, side), channels=network.input_channels)
    optimize.check_size(network, layer_names[-1], min(rendering.octave_sizes(side, settings.octaves,
                                                                             settings.octave_scale)[0]))
    targets = _activations(network, layer_names, photo[None], settings.pre_activation)
    objective = match_objective(targets, exaggerate=exaggerate)
    if from_image:
        start = photo
    else:
        param = settings.param
        values = param.init(1, (side, side), network.input_channels, keys=[0], seed=seed)
        start = np.asarray(ops.convert_to_numpy(param.draw([ops.convert_to_tensor(v) for v in values])))[0]
    before = _similarities(network, layer_names, start, targets, settings.pre_activation)
    result = optimize.render(network, objective, batch=1, init=photo[None] if from_image else None,
                             preset=settings, progress=progress, **run.keywords(batch_size=1))
    final = np.clip(result.raw[0], 0.0, 1.0)
    after = _similarities(network, layer_names, final, targets, settings.pre_activation)
    return Caricature(
        image=result.images[0], original=photo, layers=layer_names,
        similarity_before=float(np.mean(list(before.values()))), similarity_after=float(np.mean(list(after.values()))),
        per_layer_before=before, per_layer_after=after, result=result,
    )


# ------------------------------------------------------------------------------------------ DeepDream


def dream_objective(layer_or_objective: DreamTarget) -> objectives.Objective:
    """DeepDream's objective from a layer name, a list of names, `{name: weight}`, or an `Objective`.

    Args:
        layer_or_objective: a layer name (`deepdream(name)`), a non-empty list of names (their sum), a
            non-empty `{name: weight}` dict (the weighted sum), or an `Objective` (returned as is).

    Returns:
        An `Objective`.

    Raises:
        TypeError: `layer_or_objective` is none of these.

    Example:
    >>> objective = kv.inversion.dream_objective({"block3_conv3": 1.0, "block4_conv3": 0.5})
    """
    if isinstance(layer_or_objective, objectives.Objective):
        return layer_or_objective
    if isinstance(layer_or_objective, str):
        return objectives.deepdream(layer_or_objective)
    if isinstance(layer_or_objective, Mapping) and layer_or_objective:
        return sum(float(w) * objectives.deepdream(name) for name, w in layer_or_objective.items())
    if isinstance(layer_or_objective, Sequence) and layer_or_objective and all(
        isinstance(n, str) for n in layer_or_objective
    ):
        return sum(objectives.deepdream(name) for name in layer_or_objective)
    received = (f"an array of shape {np.shape(layer_or_objective)} (the image comes after the layer: "
                "dream(model, layer, image))" if isinstance(layer_or_objective, np.ndarray)
                else repr(layer_or_objective))
    raise TypeError(
        "layer_or_objective must be a layer name, a list of names, a {name: weight} dict or an Objective. "
        f"Received: {received}."
    )


def dream(
    model,
    layer_or_objective: DreamTarget,
    image,
    *,
    steps: int = DREAM_STEPS,
    lr: float = DREAM_LR,
    octaves: int = DREAM_OCTAVES,
    octave_scale: float = DREAM_OCTAVE_SCALE,
    jitter: int = DREAM_JITTER,
    size: int | None = None,
    progress: bool = False,
    **options,
) -> np.ndarray:
    """DeepDream: change a photo so that a layer (or any objective) fires more, octave by octave.

    The keras.io recipe: the photo is shrunk to the smallest octave, optimized by gradient ascent on
    the mean squared activation of the layer (`objectives.deepdream`, post-ReLU), enlarged to the next
    octave with the detail lost by shrinking added back, optimized again, up to full size. Each step
    moves pixels by `lr` on average (RMS-normalized gradient) under a random shift of up to `jitter`
    pixels. Runs through `kv.render(..., init=photo)`.

    Args:
        model: a `Network`, `keras.Model`, name or `.keras` path.
        layer_or_objective: a layer name (`"block5_conv3"`), a list of layers (their sum), a
            `{layer: weight}` dict (the keras.io mix), or any `Objective`.
        image: the photo: a path, PIL image or array in [0, 1] / uint8.
        steps: steps per octave. Defaults to 20.
        lr: step size in [0, 1] pixel units. Defaults to 0.01.
        octaves: number of scales. Defaults to 3.
        octave_scale: size ratio between octaves. Defaults to 1.4.
        jitter: random shift per step in pixels; 0 for none. Defaults to 4.
        size: work at this size (longest side, in pixels; the aspect ratio is kept); the result is
            resized back to the input's size. Defaults to the input's size.
        progress: show a progress bar. Defaults to False.
        **options: as in `kv.visualize_filters`: the model options (`weights`, `preprocess`, `input_range`,
            `other_inputs`), the run options (`seed`: of the random shifts, defaults to 0; ...) and other
            `Preset` fields of each octave's run (`update`, `transforms`, `param`, `pre_activation`,
            `precision`, ...); `octaves`,
            `octave_scale` and `size` are the dream's own, above.

    Returns:
        The dreamed image: float32 `(H, W, 3)` in [0, 1], the size of the input image.

    Raises:
        ValueError: an unreadable image, an unknown layer, bad settings, or an image whose smallest
            octave is too small for the layer, or a fixed-size model whose layers up to the objective's
            need that size (a `Flatten` or `Dense` on the way).

    Example:
    >>> out = kv.inversion.dream(kv.get_model("VGG16", weights="hed"), "block3_conv3", "cat.jpg", size=48, steps=2,
    ...                          octaves=2)
    >>> out.shape, kv.save_image(out, "dream.png")
    ((96, 128, 3), 'dream.png')
    """
    network, run, overrides = optimize.split_options(model, options)
    seed = run.seed
    objective = dream_objective(layer_or_objective)
    for layer in objective.layers:
        nets.find_layer(network, layer)  # an unknown layer fails here, named with the network's name
    objective.validate(network)
    for name, value in (("steps", steps), ("octaves", octaves)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}.")
    if not octave_scale > 1.0:
        raise ValueError(f"octave_scale must be > 1. Received: octave_scale={octave_scale!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be > 0. Received: lr={lr!r}.")
    fixed = nets.input_size(network.model, network.image_input)
    extractor = nets.get_extractor(network, list(objective.layers), False)
    if fixed and nets.input_size(extractor, network.image_input) is not None:
        # a fixed-size model whose layers up to the objective's take any size runs on a flexible copy of
        # them (`nets.feature_extractor`); a Flatten or Dense on the way ties them to the model's size
        raise ValueError(
            f"dream needs layers that take any image size; {network.name} takes only {fixed[0]}x{fixed[1]} and its "
            f"layers up to {', '.join(map(repr, objective.layers))} need that size "
            f"({nets.flexible.why_fixed(extractor)}). Dream a convolution layer before them."
        )
    # at the photo's own size, also for a fixed-size model (its layers up to the objective's take any size)
    original = analysis.prepare_image(network, image) if not fixed else images.load_image(
        image[0] if isinstance(image, np.ndarray) and image.ndim == 4 and len(image) == 1 else image,
        channels=network.input_channels)
    input_hw = original.shape[:2]
    work = original
    if size is not None:
        if not isinstance(size, (int, np.integer)) or size < MIN_DREAM_SIZE:
            raise ValueError(f"size must be an int >= {MIN_DREAM_SIZE} (pixels). Received: size={size!r}.")
        ratio = size / max(input_hw)
        work = images.resize(original, (max(1, round(input_hw[0] * ratio)), max(1, round(input_hw[1] * ratio))))
    sizes = rendering.octave_sizes(work.shape[:2], octaves, octave_scale)
    for layer in objective.layers:
        optimize.check_size(network, layer, min(sizes[0]), pre_activation=False)
    settings = dict(
        steps=int(steps), lr=float(lr), octaves=1, update="rms", pre_activation=False,
        param=params.pixel(sigmoid=False, decorrelate=False),
        transforms=(_jitter(int(jitter)),) if jitter else (),
        deprocess="clip", crop=0,
    )
    settings.update(overrides)
    current = images.resize(work, sizes[0])
    shrunk = current
    # one plan for every octave; each octave is a run from the enlarged dream with the lost detail added back
    p = optimize.plan(network, objective=objective, filters=[0], **run.keywords(batch_size=1), **settings)
    for octave, hw in enumerate(sizes):
        if octave:
            # enlarge the dream and add back the detail that shrinking the photo lost
            detail = images.resize(work, hw) - _resize_free(shrunk, hw)
            current = np.clip(_resize_free(current, hw) + detail, 0.0, 1.0)
            shrunk = images.resize(work, hw)
        result = p.run([0], init=current[None], seed=seed + octave, progress=progress)
        current = np.clip(result.raw[0], 0.0, 1.0)
    if current.shape[:2] != tuple(input_hw):
        current = images.resize(current, input_hw)
    return current.astype("float32")


@functools.lru_cache(maxsize=8)
def _jitter(pixels: int) -> transforms.Transform:
    """One `jitter` transform per size, so that repeated dreams reuse the compiled steps (the
    renderer cache compares settings, and a new transform object would not compare equal)."""
    return transforms.jitter(pixels)


def _resize_free(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float image without clipping (detail differences may be negative)."""
    from PIL import Image

    h, w = size
    return np.stack([
        np.asarray(Image.fromarray(image[..., c].astype("float32"), mode="F").resize((w, h), Image.BICUBIC),
                   dtype="float32")
        for c in range(image.shape[-1])
    ], axis=-1)


__all__ = ["Caricature", "DreamTarget", "caricature", "dream", "dream_objective", "match_objective"]
