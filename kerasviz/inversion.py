"""Caricatures (feature inversion): a picture whose activations at chosen layers match a photo's.

The picture is optimized with the usual pipeline (parameterization, random transforms, the model's
preprocessing inside the compiled step) to maximize the cosine similarity between its activations and
the photo's, computed once. From noise it shows what the layers keep of the photo; from the photo with
`exaggerate > 0` it pushes further along the photo's own activations: a caricature.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np
from keras import ops

from kerasviz import images, nets, optimize
from kerasviz.engine import objectives, presets
from kerasviz.engine import render as rendering

COSINE_EPS = 1e-8


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
    outs = extractor(network.preprocess(np.asarray(batch, "float32")), training=False)
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
    steps: int | None = None,
    *,
    size: int | None = None,
    preset: str | presets.Preset | None = None,
    exaggerate: float = 0.0,
    seed: int = 0,
    progress: bool = False,
    weights: str | None = "imagenet",
    preprocess=None,
    input_range: tuple[float, float] | None = None,
    **overrides,
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
        steps: optimization steps (per octave). Defaults to the preset's.
        size: the side the photo is resized to, and of the picture. Defaults to the preset's size.
        preset: a preset name or `Preset` (not an input-space one). Defaults to `"quality"`.
        exaggerate: weight of an extra term that rewards activations past the photo's along its own
            direction (see `match_objective`); try 0.2 with `from_image=True`. Defaults to 0.
        seed: the random seed. Defaults to 0.
        progress: show a progress bar. Defaults to False.
        weights: weights for a model given by name. Defaults to `"imagenet"`.
        preprocess: the model's preprocessing, for a `keras.Model` (a family name or a callable).
        input_range: `(low, high)` input range, for a `keras.Model` that takes scaled images.
        **overrides: other `Preset` fields (`lr`, `transforms`, `param`, `octaves`, ...).

    Returns:
        A `Caricature`: the picture and the similarity before and after.

    Raises:
        ValueError: an unknown layer, an image that cannot be read, an input-space preset.

    Example:
    >>> from kerasviz.inversion import caricature
    >>> c = caricature("VGG16", "block4_conv3", "cat.jpg", weights="hed")
    >>> kv.save_image(c.image, "cat_caricature.png"); c.similarity_after
    0.83
    """
    network = nets.as_network(model, weights=weights, preprocess=preprocess, input_range=input_range)
    layer_names = [layers] if isinstance(layers, str) else list(layers)
    if not layer_names:
        raise ValueError("layers is empty: give at least one layer name.")
    layer_names = [nets.find_layer(network, name)[0] for name in layer_names]
    base = presets.get(preset)
    given = dict(steps=steps, size=size, **overrides)
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
                             preset=settings, seed=seed, progress=progress)
    final = np.clip(result.raw[0], 0.0, 1.0)
    after = _similarities(network, layer_names, final, targets, settings.pre_activation)
    return Caricature(
        image=result.images[0], original=photo, layers=layer_names,
        similarity_before=float(np.mean(list(before.values()))), similarity_after=float(np.mean(list(after.values()))),
        per_layer_before=before, per_layer_after=after, result=result,
    )


__all__ = ["Caricature", "caricature", "match_objective"]
