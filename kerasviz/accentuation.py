"""Feature accentuation: change a photo as little as needed for a unit to fire much more.

Hamblin, Fel et al. (2024), "Feature Accentuation: Revealing 'What' Features Respond to in Natural Images".
The picture starts as the photo and is optimized in the photo's own Fourier space: the phase is optimized,
the magnitude is the photo's, gated (each frequency's magnitude times a sigmoid that starts near 1, so it can
only shrink), under random transforms; a regularizer keeps the activations of an earlier layer close to the
photo's. Its weight is the ratio of the two gradients' magnitudes at the first step (times `reg_weight`), so
that neither term drowns the other whatever the layers' scales. What the picture gains over the photo is what
the unit responds to in it.

Every (photo, filter) pair is one image of one batch: the pairs run in one compiled step, chunked by the batch
size, through `optimize.plan`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np
from keras import ops

from kerasviz import images, nets, optimize
from kerasviz.engine import backend, objectives, params, presets, transforms

# faccent's gate: the magnitude is multiplied by sigmoid(gate), which starts at sigmoid(5) = 0.993
GATE_INIT = 5.0
DISTANCE_EPS = 1e-12  # inside the square root of the regularizer's per-position distance (no NaN at zero)
RATIO_EPS = 1e-12  # the regularizer's gradient magnitude is at least this in the weight's ratio
REG_DEPTH = 0.5  # the default regularized layer: this far (in convolution layers) from the first to `layer`'s own
ACCENT_STEPS = 96  # faccent runs about 100 steps of Adam at 0.05
ACCENT_LR = 0.05
ACCENT_SIZE = 128
ACCENT_CROPS = 4  # faccent's box crops with noise, as `transforms.crops`: 4 crops of half to all of the picture
ACCENT_CROP_SCALE = (0.5, 1.0)
ACCENT_NOISE = 0.02  # faccent's noise_std
REG_WEIGHT = 1.0  # the regularizer's weight over faccent's balance: faccent's `accent_reg_alpha` default
EAGER_BATCH = 16  # images per eager pass (the measurements and the first-step gradients)


@dataclasses.dataclass(frozen=True)
class PhotoSpectrum:
    """A photo's own spectrum: phase optimized, magnitude fixed to the photo's and gated (faccent).

    Values per image: the Fourier phase `(C, H, W)` (optimized), the photo's magnitude `(C, H, W)` (behind
    `stop_gradient`: the update rules leave it as it is, and every image of a batch keeps its own photo's
    spectrum in one compiled step) and the gate logits `(C, H, W)` (optimized; the magnitude is multiplied by
    their sigmoid, so it can only shrink). `encode` is `params.Maco(magnitude="image", standardize=False)`'s:
    the spectrum of the logit of the pixels in the decorrelated colors; `draw(encode(x))` is `x` but for the
    gate's start (sigmoid(5) = 0.993 of the magnitude).

    Args:
        gate_init: the gate logits' start. Defaults to 5.0 (faccent's).
        alpha: accumulate the transparency map (the input gradient's magnitude over the steps, as faccent shows
            it): `Accentuation.alpha`. Defaults to True.
    """

    gate_init: float = GATE_INIT
    alpha: bool = True

    name = "photo_spectrum"

    def init(self, batch, size, channels=3, keys=None, seed=0):
        raise ValueError("The photo_spectrum parameterization starts from photos: give init= images (kv.accentuate "
                         "does), or use param='maco' to start from noise.")

    def encode(self, images_):
        phase, magnitude = params.Maco(magnitude="image", standardize=False).encode(images_)
        return [phase, magnitude, np.full(phase.shape, self.gate_init, "float32")]

    def draw(self, values):
        phase, magnitude, gate = values
        magnitude = ops.stop_gradient(magnitude) * ops.sigmoid(gate)
        real, _ = ops.ifft2((magnitude * ops.cos(phase), magnitude * ops.sin(phase)))
        x = ops.transpose(real, (0, 2, 3, 1))
        if x.shape[-1] == 3:
            x = ops.matmul(x, params.COLOR_CORRELATION.T)
        return ops.sigmoid(x)


@dataclasses.dataclass
class Accentuation:
    """What `accentuate` returns: one picture per (photo, filter) pair.

    Attributes:
        images: uint8 `(N, H, W, 3)`, the accentuated photos.
        photos: int `(N,)`, the photo each picture starts from (an index into `inputs`).
        filters: int `(N,)`, the filter each picture accentuates. One photo: N = len(filters); P photos: N =
            P * len(filters), photo-major; `pairs=True`: photo i with filter i.
        gains: float `(N,)`, the filter's mean activation on the picture over that on the photo (inf where the
            photo leaves the filter at zero).
        distances: float `(N,)`, the pixel distance to the photo: the root mean square difference in [0, 1].
        feature_distances: float `(N,)`, the distance at `reg_layer`: the L2 norm of the activations'
            difference over the photo's (0 at the photo).
        before: float `(N,)`, the filter's mean activation on the photo (after its ReLU).
        after: float `(N,)`, the same on the picture.
        inputs: float32 `(P, H, W, 3)`, the photos as the model saw them (resized), in [0, 1].
        alpha: float32 `(N, H, W)` in [0, 1], the transparency map (where the input gradient was largest over
            the steps, faccent's view of what the unit looked at), or None (a param without one).
        layer: the layer of the filters.
        reg_layer: the earlier layer kept close to the photo's (None: the pixels).
        settings: the settings used (the preset's fields, `reg_weight`, the regularizer's weight per picture, ...).
    """

    images: np.ndarray
    photos: np.ndarray
    filters: np.ndarray
    gains: np.ndarray
    distances: np.ndarray
    feature_distances: np.ndarray
    before: np.ndarray
    after: np.ndarray
    inputs: np.ndarray
    alpha: np.ndarray | None
    layer: str
    reg_layer: str | None
    settings: dict

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        return (f"Accentuation({len(self)} pictures of {self.layer!r}, regularized at {self.reg_layer!r}, median gain "
                f"{np.median(self.gains):.2f}, median distance {np.median(self.distances):.3f})")


def default_reg_layer(network, layer: str) -> str | None:
    """The earlier layer `accentuate` keeps close to the photo's by default: the convolution layer halfway (in
    convolution layers) from the first one to `layer`'s own (`layer` itself, or the last convolution before it,
    e.g. the one a separate ReLU or BatchNorm layer follows).

    Why halfway: the regularized layer must be early enough to leave `layer` room to change (at `layer`'s own
    convolution the two terms fight over the same activations), and late enough to hold what the photo shows,
    not only its pixels (a first-layer distance is nearly a pixel distance, which the gated spectrum already
    bounds). For VGG16 this gives `block2_conv2` for `block3_conv3`, `block3_conv1` for `block4_conv3`,
    `block3_conv3` for `block5_conv3`.

    Args:
        network: a `Network` or `keras.Model`.
        layer: the layer of the filters (a path).

    Returns:
        A layer path, or None where `layer`'s own convolution is the first one (the pixels are then kept close).

    Example:
    >>> kv.accentuation.default_reg_layer(kv.get_model("VGG16", weights="hed"), "block4_conv3")
    'block3_conv1'
    """
    model = network.model if isinstance(network, nets.Network) else network
    order = [path for path, _ in nets.iter_layers(model)]
    position = order.index(layer) if layer in order else len(order)
    convs = [c for c in nets.conv_layers(model) if order.index(c) <= position]
    return convs[int(REG_DEPTH * (len(convs) - 1))] if len(convs) > 1 else None


def _read_photos(image, channels: int, side: int) -> np.ndarray:
    """`(P, side, side, channels)` in [0, 1] from one image (path, PIL image, `(H, W[, C])` array) or several (a
    sequence, or a `(P, H, W, C)` array)."""
    if isinstance(image, np.ndarray) and image.ndim == 4:
        many = list(image)
    elif isinstance(image, (list, tuple)):
        many = list(image)
    else:
        many = [image]
    if not many:
        raise ValueError("image is empty: give a photo (a path, a PIL image, an array) or a list of them.")
    return np.stack([images.load_image(im, size=(side, side), channels=channels) for im in many])


def _pairs(n_photos: int, filters: list[int], pairs: bool) -> tuple[np.ndarray, np.ndarray]:
    if pairs:
        if n_photos != len(filters):
            raise ValueError(f"pairs=True pairs photo i with filter i: give as many filters as photos. Received "
                             f"{n_photos} photos and {len(filters)} filters.")
        return np.arange(n_photos), np.asarray(filters)
    return np.repeat(np.arange(n_photos), len(filters)), np.tile(np.asarray(filters), n_photos)


class _Features:
    """The activations of one layer (or the pixels, for None) as the model computes them from [0, 1] images, in
    `keras.ops`: what the regularizer reads inside the step and what the distances are measured with."""

    def __init__(self, network, layer: str | None, pre_activation: bool = False, precision: str = "float32"):
        self.network, self.layer = network, layer
        if layer is not None:
            self.extractor = nets.get_extractor(network, [layer], pre_activation, precision)
            self.size = nets.input_size(self.extractor, network.image_input)

    def __call__(self, x):
        if self.layer is None:
            return x
        if self.size is not None and tuple(x.shape[1:3]) != self.size:
            x = ops.image.resize(x, self.size, interpolation="bilinear")
        out = self.extractor(self.network.model_inputs(self.network.preprocess(x), self.extractor), training=False)
        return ops.cast(out[0] if isinstance(out, (list, tuple)) else out, "float32")

    def numpy(self, x: np.ndarray) -> np.ndarray:
        parts = [ops.convert_to_numpy(self(ops.convert_to_tensor(x[i : i + EAGER_BATCH])))
                 for i in range(0, len(x), EAGER_BATCH)]
        return np.concatenate(parts).astype("float32")


def _distance(acts, target):
    """Per image: the mean over positions of the L2 norm over channels of `acts - target` (faccent's)."""
    diff = ops.cast(acts, "float32") - target
    if len(diff.shape) == 4 and tuple(target.shape[1:3]) != tuple(acts.shape[1:3]):
        diff = ops.cast(acts, "float32") - ops.image.resize(target, tuple(acts.shape[1:3]), interpolation="bilinear")
    norms = ops.sqrt(ops.sum(ops.square(diff), axis=-1) + DISTANCE_EPS)
    return ops.mean(ops.reshape(norms, (ops.shape(norms)[0], -1)), axis=1)


def accent_objective(layer: str, features: _Features, channels, photos, targets, weights) -> objectives.Objective:
    """The accentuation objective for a batch of (photo, filter) pairs, each image's `filters` entry being its
    pair's index: the mean activation of the pair's channel at `layer`, less its weight times the distance of the
    picture's `features` (untransformed) to its photo's.

    Args:
        layer: the layer of the filters.
        features: the regularized layer's activations (`_Features`).
        channels: int `(N,)`, each pair's channel.
        photos: int `(N,)`, each pair's photo.
        targets: float32 `(P, ...)`, the photos' features.
        weights: float32 `(N,)`, each pair's regularizer weight.

    Returns:
        An `Objective` whose key holds a digest of its arrays (the same pairs reuse the compiled steps).
    """
    arrays = [np.asarray(channels, "int32"), np.asarray(photos, "int32"), np.asarray(targets, "float32"),
              np.asarray(weights, "float32")]
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:12]
    channel = objectives.channel(layer)

    def fn(c: objectives.Context):
        ch, ph, tg, w = (ops.convert_to_tensor(a) for a in arrays)
        pair = ops.cast(c.filters, "int32")
        score = channel(objectives.Context(c.acts, c.images, ops.take(ch, pair, axis=0)))
        # under `crops`, each picture comes once per crop (the untransformed picture, repeated): its distance too
        target = ops.take(tg, ops.take(ph, pair, axis=0), axis=0)
        return score - ops.take(w, pair, axis=0) * _distance(features(c.images), target)

    return objectives.Objective(fn, f"accentuate({layer!r}, reg={features.layer!r})", (layer,),
                                key=("accentuate", layer, features.layer, digest))


def _gradient_sizes(fn, values: list[np.ndarray]) -> np.ndarray:
    """Per image, the sum of |gradient| of `fn`'s scores over the optimized values (phase and gate)."""
    free = np.stack([values[0], values[2]], axis=1)  # [n, 2, C, H, W]
    held = values[1]
    grad = backend.input_gradient(lambda v: fn([v[:, 0], ops.convert_to_tensor(held), v[:, 1]]), free)
    return np.abs(grad).reshape(len(grad), -1).sum(axis=1)


def _weights(plan, keys, param, features, photos, targets, starts, reg_weight) -> np.ndarray:
    """faccent's balance: per pair, `reg_weight` times the ratio of the objective's gradient magnitude to the
    regularizer's at the first step. The objective's is the step's own (`plan`: the accentuation objective without
    its regularizer, under the first step's random transforms); the regularizer's is on the untransformed start, as
    the step computes it."""
    if reg_weight == 0:
        return np.zeros(len(keys), "float32")
    renderer, out = plan.renderer, []
    for i in range(0, len(keys), EAGER_BATCH):
        chunk = list(range(i, min(i + EAGER_BATCH, len(keys))))
        u = ops.convert_to_tensor(renderer.draw_uniforms([keys[j] for j in chunk], plan.seed, 1, 0)[0])
        pairs = ops.convert_to_tensor(np.asarray(chunk, "int32"))
        tg = ops.convert_to_tensor(np.asarray(targets)[photos[chunk]])
        values = param.encode(starts[chunk])

        def score(v, u=u, pairs=pairs):
            return renderer.score_fn(v, u, pairs)

        def reg(v, tg=tg):
            return _distance(features(param.draw(v)), tg)

        out.append(_gradient_sizes(score, values) / np.maximum(_gradient_sizes(reg, values), RATIO_EPS))
    return (float(reg_weight) * np.concatenate(out)).astype("float32")


def measure(model, layer: str, filters, pictures, photos, *, reg_layer: str | None = None, **options) -> dict:
    """How far pictures moved from their photos, and what their filters gained: what `accentuate` reports, for
    any pictures made from photos (DeepDream's too, to compare).

    Args:
        model: a model name, `keras.Model` or `Network`.
        layer: the layer of the filters.
        filters: int `(N,)`, each picture's filter.
        pictures: `(N, H, W, C)` in [0, 1] (or uint8), the pictures.
        photos: `(N, H, W, C)` in [0, 1] (or uint8), each picture's photo.
        reg_layer: the layer of the feature distance; None: the pixels. Defaults to None.
        **options: the model options (`weights`, `preprocess`, `input_range`, ...).

    Returns:
        A dict of float arrays `(N,)`: `before` and `after` (the filter's mean activation after its ReLU on the
        photo and on the picture), `gains` (`after / before`; inf where `before` is 0), `distances` (the root mean
        square pixel difference in [0, 1]) and `feature_distances` (the L2 norm of the difference of the
        `reg_layer` activations over the photo's).

    Example:
    >>> photo = kv.load_image("cat.jpg", size=(48, 48))
    >>> m = kv.accentuation.measure("VGG16", "block3_conv3", [5], photo[None], photo[None], weights="hed")
    >>> float(m["distances"][0]), float(m["feature_distances"][0])
    (0.0, 0.0)
    """
    network, _, rest = optimize.split_options(model, options)
    if rest:
        raise TypeError(f"measure takes the model options only ({', '.join(optimize.NETWORK_OPTIONS)}). Received: "
                        f"{', '.join(sorted(rest))}.")
    path = nets.find_layer(network, layer)[0]
    reg_path = None if reg_layer is None else nets.find_layer(network, reg_layer)[0]
    pictures = np.stack([images.load_image(p, channels=network.input_channels) for p in pictures])
    photos = np.stack([images.load_image(p, channels=network.input_channels) for p in photos])
    channels = np.asarray(filters, "int64")
    if not len(pictures) == len(photos) == len(channels):
        raise ValueError(f"Give one photo and one filter per picture. Received {len(pictures)} pictures, "
                         f"{len(photos)} photos and {len(channels)} filters.")
    means = []
    for x in (photos, pictures):
        acts = _Features(network, path).numpy(x)
        acts = acts.reshape(len(acts), -1, acts.shape[-1]).mean(axis=1)
        means.append(acts[np.arange(len(acts)), channels].astype("float64"))
    before, after = means
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = np.where(before > 0, after / np.where(before > 0, before, 1.0), np.inf)
    features = _Features(network, reg_path)
    ref, feats = features.numpy(photos), features.numpy(pictures)
    axes = tuple(range(1, ref.ndim))
    norm = np.sqrt(np.sum(np.square(ref.astype("float64")), axis=axes))
    return dict(before=before, after=after, gains=gains,
                distances=np.sqrt(np.mean(np.square(pictures - photos), axis=(1, 2, 3), dtype="float64")),
                feature_distances=np.sqrt(np.sum(np.square(feats - ref, dtype="float64"), axis=axes)) / np.maximum(
                    norm, 1e-12))


def settings_for(network, layer: str, preset, overrides: dict) -> presets.Preset:
    """The settings of an accentuation: the preset's (defaults: faccent's recipe, see `accentuate`) with the
    overrides, fitted to a model with a fixed input size."""
    base = presets.Preset(size=ACCENT_SIZE, steps=ACCENT_STEPS, lr=ACCENT_LR, param=PhotoSpectrum(),
                          transforms=(transforms.crops(ACCENT_CROPS, ACCENT_CROP_SCALE, noise=ACCENT_NOISE),),
                          update="adam")
    base = base if preset is None else presets.get(preset)
    settings = presets.resolve_settings(base, overrides)
    settings, _ = optimize.fit_size(network, [layer], settings, preset=base, overrides=overrides)  # noted by plan
    if settings.input_space:
        raise ValueError("accentuate optimizes [0, 1] images; choose a preset without input_space (or none: "
                         f"the default is faccent's recipe). Received: preset={preset!r}.")
    return settings


def accentuate(
    model,
    layer: str,
    filters: int | Sequence[int] | str,
    image,
    *,
    pairs: bool = False,
    reg_layer: str | None = None,
    reg_weight: float = REG_WEIGHT,
    preset: str | presets.Preset | None = None,
    progress: bool = False,
    **options,
) -> Accentuation:
    """Accentuate filters in photos: change each photo as little as needed for the filter to fire much more.

    Feature accentuation (Hamblin, Fel et al., 2024): each picture starts as its photo, whose Fourier phase is
    optimized with the photo's own magnitude, gated (`PhotoSpectrum`), to raise the filter's mean activation
    under random transforms, while a regularizer keeps the activations of an earlier layer, `reg_layer`, close
    to the photo's (the mean over positions of their L2 distance, on the untransformed picture). The
    regularizer's weight is `reg_weight` times the ratio of the two gradients' magnitudes at the first step
    (faccent's balance), per picture. Every (photo, filter) pair is one image of a batch: one compiled step for
    all of them.

    Args:
        model: a `keras.applications` name, a `.keras` path, a `keras.Model` or a `Network`.
        layer: the layer of the filters (a name or path).
        filters: a filter index, a list of them, or `"all"`.
        image: one photo (a path, a PIL image, an `(H, W, C)` array in [0, 1] or uint8) or several (a list of
            them, or a `(P, H, W, C)` array). Each is resized to `size` x `size`.
        pairs: False: every filter in every photo (P * F pictures, photo-major). True: photo i with filter i
            (as many filters as photos). Defaults to False.
        reg_layer: the layer kept close to the photo's. Defaults to `default_reg_layer` (the convolution layer
            halfway to `layer`; the pixels for a first convolution layer).
        reg_weight: the regularizer's weight over faccent's balance (faccent's `accent_reg_alpha`); 0 turns it
            off, larger values keep the picture closer to the photo. Defaults to 1.0 (faccent's).
        preset: a preset name or `Preset` (not an input-space one), e.g. to use its transforms. Defaults to
            faccent's recipe: the `PhotoSpectrum` param, 96 steps of Adam at lr 0.05, 128 px, one octave, 4
            crops of half to all of the picture with noise of 0.02 (`transforms.crops`) per step.
        progress: show a progress bar. Defaults to False.
        **options: as in `kv.visualize_filters`: the model options (`weights`, `preprocess`, `input_range`,
            `other_inputs`), the run options (`seed`, `batch_size`, ...) and `Preset` fields (`steps`, `lr`,
            `size`, `transforms`, `param`, `pre_activation`, `precision`, ...).

    Returns:
        An `Accentuation`: the pictures, which photo and filter each one is, the gains and the distances.

    Raises:
        ValueError: an unknown layer or reg_layer, a filter out of range, an unreadable photo, `pairs=True`
            with unequal counts, a negative `reg_weight`, an input-space preset, a size too small for the layer.
        TypeError: an unknown option (the message suggests close names).

    Example:
    >>> a = kv.accentuate("VGG16", "block3_conv3", [1, 2], "cat.jpg", weights="hed", size=48, steps=4)
    >>> a.images.shape, a.photos.tolist(), a.filters.tolist()
    ((2, 48, 48, 3), [0, 0], [1, 2])
    >>> bool(np.all(a.gains > 1))
    True
    """
    network, run, given = optimize.split_options(model, options)
    path, _ = nets.find_layer(network, layer)
    channel_list = nets.resolve_filters(filters, nets.channels_of(network, path), path, default=None)
    if isinstance(reg_weight, bool) or not isinstance(reg_weight, (int, float, np.number)) or not reg_weight >= 0:
        raise ValueError(f"reg_weight must be a number >= 0 (0: no regularizer). Received: reg_weight={reg_weight!r}.")
    reg_path = default_reg_layer(network, path) if reg_layer is None else nets.find_layer(network, reg_layer)[0]
    settings = settings_for(network, path, preset, given)
    optimize.check_size(network, path, settings.size, settings.pre_activation)
    photos_in = _read_photos(image, network.input_channels, settings.size)
    photo_of, channels = _pairs(len(photos_in), channel_list, pairs)
    starts = photos_in[photo_of]
    param = params.get(settings.param)
    features = _Features(network, reg_path)
    targets = features.numpy(photos_in)
    pairs_ = list(range(len(channels)))  # each image's `filters` entry: its pair, which the objective reads
    keys = [int(c) for c in channels]  # keyed by its filter, a pair's random draws (so its picture) do not
    # depend on the other pairs of the call
    unweighted = accent_objective(path, features, channels, photo_of, targets, np.zeros(len(channels)))
    first = optimize.plan(network, objective=unweighted, filters=pairs_, preset=settings, **run.keywords())
    weights = _weights(first, keys, param, features, photo_of, targets, starts, reg_weight)
    objective = accent_objective(path, features, channels, photo_of, targets, weights)
    p = optimize.plan(network, objective=objective, filters=pairs_, preset=settings, **run.keywords())
    result = p.run(keys, filters=pairs_, init=starts, progress=progress)
    done = np.arange(len(result.images))  # every pair, unless Ctrl-C stopped the run (the finished come first)
    pictures = np.clip(result.raw, 0.0, 1.0)
    m = measure(network, path, channels[done], pictures, starts[done], reg_layer=reg_path)
    record = dict(result.settings, layer=path, reg_layer=reg_path, reg_weight=float(reg_weight),
                  reg_weights=weights[done].tolist(), pairs=bool(pairs), interrupted=result.interrupted)
    return Accentuation(images=result.images, photos=photo_of[done], filters=channels[done],
                        gains=m["gains"], distances=m["distances"], feature_distances=m["feature_distances"],
                        before=m["before"], after=m["after"], inputs=photos_in, alpha=result.alpha, layer=path,
                        reg_layer=reg_path, settings=record)


__all__ = ["Accentuation", "PhotoSpectrum", "accent_objective", "accentuate", "default_reg_layer", "measure",
           "settings_for"]
